// voxgate's media engine against an independent RTP implementation, without SIP: ffmpeg sends speech
// as PCMU/PCMA RTP into a MediaSession (built from an SDP offer, real sockets, real MediaClock), the
// session's 'frame' output is looped back into its outbound stream, and a second ffmpeg decodes what
// voxgate sends. Symmetric RTP: voxgate must send to where ffmpeg's packets come from, not to the SDP.
//
// ffmpeg sends from `localport` S and receives on S too, but two ffmpeg processes cannot hold S at the
// same time; so the echo is gated: voxgate records the caller's frames while the sender runs, then the
// receiver binds S and the recorded frames are queued for paced playout.
import { createSocket, type Socket } from 'node:dgram';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { monotonicClock } from '../../src/core/clock.js';
import type { G711Codec } from '../../src/core/audio.js';
import { MediaClock } from '../../src/media/media-clock.js';
import { MediaSession } from '../../src/media/media-session.js';
import { PortPool } from '../../src/media/port-pool.js';
import { selectMedia } from '../../src/media/sdp.js';
import { alignSegments, findReference } from '../helpers/audio-analysis.js';
import { buildRtpPacket } from '../helpers/pcap.js';
import { freeEvenUdpPortRange, udpPortBound } from '../helpers/ports.js';
import { REPO_ROOT, artifactsDir, findOnPath, killAll, spawnManaged } from '../helpers/processes.js';

const LOOPBACK = '127.0.0.1';
const REFERENCE_FILE = path.join(REPO_ROOT, 'test', 'fixtures', 'assistant-reply.s16le');
const REFERENCE_BYTES = readFileSync(REFERENCE_FILE);
const REFERENCE = new Int16Array(
  REFERENCE_BYTES.buffer,
  REFERENCE_BYTES.byteOffset,
  REFERENCE_BYTES.byteLength / 2,
);
const REFERENCE_MS = (REFERENCE.length / 8000) * 1000;

const PAYLOAD_TYPE: Readonly<Record<G711Codec, number>> = { PCMU: 0, PCMA: 8 };
const FFMPEG_ENCODER: Readonly<Record<G711Codec, string>> = { PCMU: 'pcm_mulaw', PCMA: 'pcm_alaw' };

/** One G.711 decode/encode round trip and loopback UDP: the shape survives almost unchanged. */
const MIN_CORRELATION = 0.85;
/** The sender paces the 6.6 s clip in real time; ffmpeg start-up on a busy 2-core box adds seconds. */
const SENDER_EXIT_TIMEOUT_MS = REFERENCE_MS + 15_000;
/** ffmpeg binds its RTP port within ~100 ms normally; under load it can take a few seconds. */
const RECEIVER_BIND_TIMEOUT_MS = 10_000;
/** ffmpeg flushes its output and exits promptly on SIGINT. */
const FFMPEG_STOP_GRACE_MS = 5_000;
/** Poll interval while waiting for ports and queues. */
const POLL_MS = 20;
/** The last echoed frames are in flight / in ffmpeg's reorder queue this long after the queue drains. */
const DRAIN_MS = 400;
/** Packets from a second source after the latch: each must be counted as ignored, none answered. */
const ATTACKER_PACKETS = 20;
/** Window in which an answer to the attacker would have arrived on loopback. */
const ATTACKER_LISTEN_MS = 300;
/** Packets may still be in flight to the SDP address for a moment after the latch. */
const LATCH_GRACE_MS = 60;
const TEST_TIMEOUT_MS = 90_000;

const log = pino({ level: 'silent' });

/** Debian: apt-get install -y ffmpeg. Without it the suite is reported as skipped, never as passed. */
const FFMPEG = process.env['FFMPEG_BIN'] ?? findOnPath('ffmpeg');
if (!FFMPEG) console.log('SKIPPED: ffmpeg not installed');

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function bindUdp(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    socket.once('error', reject);
    socket.bind(port, LOOPBACK, () => {
      socket.off('error', reject);
      resolve(socket);
    });
  });
}

function closeUdp(socket: Socket): Promise<void> {
  return new Promise((resolve) => socket.close(() => resolve()));
}

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(POLL_MS);
  }
}

function offerSdp(codec: G711Codec, port: number): string {
  const pt = PAYLOAD_TYPE[codec];
  return [
    'v=0',
    'o=ffmpeg 1 1 IN IP4 127.0.0.1',
    's=ffmpeg',
    'c=IN IP4 127.0.0.1',
    't=0 0',
    `m=audio ${port} RTP/AVP ${pt}`,
    `a=rtpmap:${pt} ${codec}/8000`,
    'a=ptime:20',
    'a=sendrecv',
    '',
  ].join('\r\n');
}

/** What the receiving ffmpeg reads: voxgate's stream arriving on `port`. */
function receiverSdp(codec: G711Codec, port: number): string {
  const pt = PAYLOAD_TYPE[codec];
  return [
    'v=0',
    'o=- 0 0 IN IP4 127.0.0.1',
    's=voxgate',
    'c=IN IP4 127.0.0.1',
    't=0 0',
    `m=audio ${port} RTP/AVP ${pt}`,
    `a=rtpmap:${pt} ${codec}/8000`,
    '',
  ].join('\n');
}

interface Counter {
  socket: Socket;
  arrivals: number[];
}

async function countingSocket(): Promise<Counter> {
  const socket = await bindUdp(0);
  const arrivals: number[] = [];
  socket.on('message', () => arrivals.push(performance.now()));
  return { socket, arrivals };
}

describe.skipIf(FFMPEG === undefined)('ffmpeg as an independent RTP peer of the media engine', () => {
  const cleanup: (() => Promise<void> | void)[] = [];

  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });
  afterAll(async () => {
    await killAll();
  });

  async function roundTrip(codec: G711Codec, sdpPointsAtDecoy: boolean): Promise<void> {
    const bin = FFMPEG!;
    const dir = artifactsDir(`ffmpeg-${codec.toLowerCase()}`);
    const pt = PAYLOAD_TYPE[codec];
    // ffmpeg's port S (RTP) and S+1 (its RTCP socket); voxgate's one-port range.
    const ffmpegPort = await freeEvenUdpPortRange(2);
    let voxgateBase = await freeEvenUdpPortRange(2);
    while (Math.abs(voxgateBase - ffmpegPort) < 2) voxgateBase = await freeEvenUdpPortRange(2);
    const decoy = await countingSocket();
    cleanup.push(() => closeUdp(decoy.socket));

    const pool = new PortPool({ bindAddress: LOOPBACK, min: voxgateBase, max: voxgateBase + 1 });
    const mediaClock = new MediaClock(monotonicClock);
    const offerPort = sdpPointsAtDecoy ? decoy.socket.address().port : ffmpegPort;
    const negotiated = selectMedia(offerSdp(codec, offerPort), ['PCMU', 'PCMA']);
    expect(negotiated.codec).toBe(codec);
    const media = new MediaSession(await pool.allocate(), negotiated, mediaClock, monotonicClock, log);
    cleanup.push(() => media.close());
    let latchedAt: number | undefined;
    media.endpoint.on('latched', () => (latchedAt ??= performance.now()));

    // Gated echo: keep every frame the jitter buffer hands out (copies: the payload is reused).
    const heardFrames: Uint8Array[] = [];
    let concealed = 0;
    media.on('frame', (payload, isConcealed) => {
      heardFrames.push(Uint8Array.from(payload));
      if (isConcealed) concealed++;
    });

    // (a) ffmpeg sends the clip as 20 ms RTP packets from port S. asetnsamples makes one packet per
    // 20 ms; arealtime paces each packet (ffmpeg -re paces the 128 ms input blocks, i.e. bursts).
    // prettier-ignore
    const sender = spawnManaged(bin, [
      '-hide_banner', '-nostdin', '-loglevel', 'error',
      '-f', 's16le', '-ar', '8000', '-ac', '1', '-i', REFERENCE_FILE,
      '-af', 'asetnsamples=n=160:p=1,arealtime',
      '-c:a', FFMPEG_ENCODER[codec], '-payload_type', String(pt), '-rtpflags', 'skip_rtcp',
      '-f', 'rtp', `rtp://${LOOPBACK}:${media.port}?localport=${ffmpegPort}`,
    ], { name: `ffmpeg-send-${codec}`, cwd: dir });
    cleanup.push(async () => void (await sender.kill('SIGKILL', 0)));

    // (3) RTP bleed: once latched, a second source with the right payload type is ignored.
    await waitFor(() => latchedAt !== undefined, 15_000, 'voxgate to latch to ffmpeg');
    expect(media.stats().latchedTo).toBe(`${LOOPBACK}:${ffmpegPort}`);
    const attacker = await countingSocket();
    cleanup.push(() => closeUdp(attacker.socket));
    const ignoredBefore = media.stats().rtp.ignored;
    for (let i = 0; i < ATTACKER_PACKETS; i++) {
      const packet = buildRtpPacket({
        payloadType: pt,
        seq: 1000 + i,
        timestamp: 160 * i,
        ssrc: 0x0bad0bad,
        marker: i === 0,
        payload: Buffer.alloc(160, codec === 'PCMU' ? 0x00 : 0x2a), // loud: would be audible if mixed in
      });
      attacker.socket.send(packet, media.port, LOOPBACK);
    }
    await delay(ATTACKER_LISTEN_MS);
    expect(media.stats().rtp.ignored - ignoredBefore).toBe(ATTACKER_PACKETS);
    expect(attacker.arrivals).toEqual([]);
    expect(media.stats().latchedTo).toBe(`${LOOPBACK}:${ffmpegPort}`);

    const sent = await Promise.race([sender.exited, delay(SENDER_EXIT_TIMEOUT_MS).then(() => undefined)]);
    expect(sent, `ffmpeg sender did not finish\n${sender.tail()}`).toEqual({ code: 0, signal: null });
    await delay(DRAIN_MS); // the jitter buffer plays out its last frames
    const afterSend = media.stats();
    expect(afterSend.jitter.resyncs, 'the attacker stream must never reach the jitter buffer').toBe(0);
    expect(afterSend.jitter.invalid).toBe(0);
    expect(heardFrames.length).toBeGreaterThanOrEqual(Math.floor(REFERENCE_MS / 20) - 2);

    // Symmetric RTP: after the latch nothing more goes to the SDP address.
    if (sdpPointsAtDecoy) {
      expect(
        decoy.arrivals.length,
        'voxgate sends silence to the SDP address until the latch',
      ).toBeGreaterThan(0);
      expect(decoy.arrivals.filter((t) => t > latchedAt! + LATCH_GRACE_MS)).toEqual([]);
    }

    // (b) ffmpeg receives on S (where voxgate latched) and decodes to 8 kHz linear.
    const sdpFile = path.join(dir, 'recv.sdp');
    const outFile = path.join(dir, 'echo.s16le');
    writeFileSync(sdpFile, receiverSdp(codec, ffmpegPort));
    // prettier-ignore
    const receiver = spawnManaged(bin, [
      '-hide_banner', '-nostdin', '-loglevel', 'error',
      '-protocol_whitelist', 'file,udp,rtp', '-i', sdpFile,
      '-f', 's16le', '-ar', '8000', '-ac', '1', '-y', outFile,
    ], { name: `ffmpeg-recv-${codec}`, cwd: dir });
    cleanup.push(async () => void (await receiver.kill('SIGKILL', 0)));
    // Watch the kernel's socket table: a trial bind of S would race ffmpeg's own bind and make it exit.
    await waitFor(
      () => {
        if (receiver.exitInfo !== undefined) {
          throw new Error(`ffmpeg receiver exited before binding\n${receiver.tail()}`);
        }
        return udpPortBound(ffmpegPort);
      },
      RECEIVER_BIND_TIMEOUT_MS,
      'ffmpeg to bind its RTP port',
    );
    await delay(DRAIN_MS); // ffmpeg opens its RTCP socket and starts reading after binding RTP

    for (const frame of heardFrames) media.outbound.enqueue(frame, 'echo');
    await waitFor(() => media.outbound.queuedMs === 0, REFERENCE_MS + 15_000, 'the echo to play out');
    await delay(DRAIN_MS);
    const exit = await receiver.kill('SIGINT', FFMPEG_STOP_GRACE_MS);
    expect(exit.signal === null || exit.signal === 'SIGINT', receiver.tail()).toBe(true);

    const out = readFileSync(outFile);
    const echo = new Int16Array(out.buffer, out.byteOffset, Math.floor(out.byteLength / 2));
    expect(echo.length, receiver.tail()).toBeGreaterThan(REFERENCE.length);
    const match = findReference(echo, REFERENCE);
    // A stall of this (shared) event loop can make the jitter buffer grow, then later shrink, by one
    // frame mid-clip: compare segment by segment so that a 20 ms shift is not mistaken for distortion.
    const aligned = alignSegments(echo, REFERENCE, match.lag);
    const stats = media.stats();
    console.log(
      `ffmpeg ${codec}: correlation ${aligned.correlation.toFixed(3)} segment-aligned, ` +
        `${match.correlation.toFixed(3)} at one lag (${match.lag}; shifts ${aligned.shifts.join(',')}), ` +
        `jitter ${JSON.stringify({ ...stats.jitter })}, concealed ${concealed}, ` +
        `rtp ${JSON.stringify(stats.rtp)}, outbound ${JSON.stringify(stats.outbound)}`,
    );
    expect(aligned.correlation).toBeGreaterThanOrEqual(MIN_CORRELATION);
    expect(stats.latchedTo).toBe(`${LOOPBACK}:${ffmpegPort}`);
    expect(stats.outbound.audioFramesSent).toBe(heardFrames.length);
  }

  it(
    'PCMU: ffmpeg → voxgate → ffmpeg round trip correlates with the clip, and voxgate sends where ffmpeg sends from, not to the SDP port',
    async () => {
      await roundTrip('PCMU', true);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'PCMA: ffmpeg → voxgate → ffmpeg round trip correlates with the clip, ignoring a second RTP source',
    async () => {
      await roundTrip('PCMA', false);
    },
    TEST_TIMEOUT_MS,
  );
});
