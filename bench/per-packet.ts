// Per-packet cost of voxgate's media path, in µs per 20 ms packet, driven with the real src/ classes.
//
//   rx  socket message → RtpEndpoint parse/validate/latch → JitterBuffer.push          (fake socket, sync)
//   rx  MediaSession.onTick → JitterBuffer.pull → G.711 decode + PLC history → 'frame'  (sync)
//   rx  both, plus AudioBridge → provider.sendAudio (G.711 passthrough provider)      (sync)
//   tx  OutboundAudio.enqueue + onTick → RtpEndpoint.send into a fake socket           (sync)
//   tx  the same into a real UDP socket on 127.0.0.1 (sink in a child process), timed per batch
//       including the event-loop turn that performs the sendmsg() calls
//   pcm16: caller→provider PCMU → pcm16@16k (decode + resample ×2), provider→caller pcm16@24k → PCMU
//
// Run: npx tsx bench/per-packet.ts      Prints numbers; asserts nothing. Not part of npm test.
import { spawn } from 'node:child_process';
import type { Socket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import type { Clock } from '../src/core/clock.js';
import { monotonicClock } from '../src/core/clock.js';
import type { MediaClock } from '../src/media/media-clock.js';
import { MediaSession } from '../src/media/media-session.js';
import { OutboundAudio } from '../src/media/outbound-audio.js';
import { PortPool } from '../src/media/port-pool.js';
import { RtpEndpoint } from '../src/media/rtp-endpoint.js';
import type { NegotiatedMedia } from '../src/media/sdp.js';
import { encodeG711 } from '../src/media/g711.js';
import { createCallerToProvider, createProviderToCaller } from '../src/media/audio-convert.js';
import { AudioBridge } from '../src/call/audio-bridge.js';
import { TypedEmitter } from '../src/core/events.js';
import type { RealtimeEvents, RealtimeSession } from '../src/ai/realtime.js';
import { fmt, machineLine, mean, percentileSorted, printResult, printTable, sortedCopy } from './util.js';

const WARMUP = 20_000;
const ITERATIONS = 200_000;
const TX_BATCH = 100;
const TX_BATCHES = 2_000;
const FRAME_MS = 20;
const SAMPLES = 160;
const HOST = '127.0.0.1';
const RTP_HEADER_BYTES = 12;
const log = pino({ level: 'silent' });

export interface PerPacketRow {
  path: string;
  meanUs: number;
  p50Us: number;
  p99Us: number;
}

/** A dgram.Socket stand-in: RtpEndpoint only uses on/off/send. */
class FakeSocket extends EventEmitter {
  sent = 0;
  send(): void {
    this.sent++;
  }
  close(): void {}
}

class ManualClock implements Clock {
  t = 0;
  now(): number {
    return this.t;
  }
}

/** A G.711 passthrough provider that only counts (what AudioBridge talks to). */
class NullSession extends TypedEmitter<RealtimeEvents> implements RealtimeSession {
  readonly provider = 'null';
  readonly capabilities = { truncate: false, toolCalls: false, serverVad: false, g711Passthrough: true };
  readonly audioFormats = { input: { encoding: 'g711' as const }, output: { encoding: 'g711' as const } };
  frames = 0;
  sendAudio(): void {
    this.frames++;
  }
  truncate(): void {}
  sendToolResult(): void {}
  respond(): void {}
  close(): void {}
}

const noMediaClock = { add() {}, remove() {} } as unknown as MediaClock;

function negotiated(localDirection: NegotiatedMedia['localDirection'], remotePort = 40_000): NegotiatedMedia {
  return {
    codec: 'PCMU',
    payloadType: 0,
    telephoneEventPayloadType: 101,
    remoteAddress: HOST,
    remotePort,
    remoteDirection: localDirection === 'recvonly' ? 'sendonly' : 'sendrecv',
    localDirection,
    offeredStreams: [{ type: 'audio', protocol: 'RTP/AVP', format: '0 101' }],
    audioIndex: 0,
  };
}

function toneG711(k: number): Uint8Array {
  const s = new Int16Array(SAMPLES);
  for (let i = 0; i < SAMPLES; i++)
    s[i] = Math.round(9000 * Math.sin((2 * Math.PI * (300 + 250 * k) * i) / 8000));
  return encodeG711('PCMU', s);
}

/** Times `op` individually `ITERATIONS` times after a warm-up; subtracts the timer's own cost. */
function timeEach(path: string, op: (i: number) => void): PerPacketRow {
  for (let i = 0; i < WARMUP; i++) op(i);
  const overhead = timerOverheadUs();
  const t = new Float64Array(ITERATIONS);
  for (let i = 0; i < ITERATIONS; i++) {
    const start = process.hrtime.bigint();
    op(WARMUP + i);
    t[i] = Math.max(0, Number(process.hrtime.bigint() - start) / 1000 - overhead);
  }
  const sorted = sortedCopy(t);
  return { path, meanUs: mean(t), p50Us: percentileSorted(sorted, 50), p99Us: percentileSorted(sorted, 99) };
}

let cachedOverhead: number | undefined;
function timerOverheadUs(): number {
  if (cachedOverhead !== undefined) return cachedOverhead;
  const n = 200_000;
  const t = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const start = process.hrtime.bigint();
    t[i] = Number(process.hrtime.bigint() - start) / 1000;
  }
  cachedOverhead = percentileSorted(sortedCopy(t), 50);
  return cachedOverhead;
}

/** Writes an RTP header for packet `i` of a continuous stream into `buf` (payload already in place). */
function writeHeader(buf: Buffer, i: number, ssrc: number): void {
  buf[0] = 0x80;
  buf[1] = i === 0 ? 0x80 : 0x00;
  buf.writeUInt16BE(i & 0xffff, 2);
  buf.writeUInt32BE((1000 + i * SAMPLES) >>> 0, 4);
  buf.writeUInt32BE(ssrc, 8);
}

/** A receive-side MediaSession on a fake socket and a manual clock; `feed(i)` delivers packet i. */
function rxSession(direction: NegotiatedMedia['localDirection']): {
  media: MediaSession;
  clock: ManualClock;
  feed(i: number): void;
} {
  const socket = new FakeSocket();
  const clock = new ManualClock();
  const media = new MediaSession(
    {
      port: 0,
      socket: socket as unknown as Socket,
      rtcpSocket: new FakeSocket() as unknown as Socket,
      release() {},
    },
    negotiated(direction),
    noMediaClock,
    clock,
    log,
  );
  const rinfo = { address: HOST, port: 40_000, family: 'IPv4', size: RTP_HEADER_BYTES + SAMPLES };
  const payloads = [0, 1, 2, 3].map(toneG711);
  // One reused datagram buffer, as the kernel/libuv would hand over (the jitter buffer copies payloads).
  const buf = Buffer.alloc(RTP_HEADER_BYTES + SAMPLES);
  return {
    media,
    clock,
    feed(i: number): void {
      writeHeader(buf, i, 0x1234);
      buf.set(payloads[i & 3]!, RTP_HEADER_BYTES);
      clock.t = i * FRAME_MS + 1; // arrives 1 ms after its slot; pulled 9 ms later
      socket.emit('message', buf, rinfo);
    },
  };
}

function rxBenchmarks(): PerPacketRow[] {
  // recvonly: the pacer keeps time but sends nothing, so only the receive side is timed.
  // (a) packet in + tick, timed together.
  const a = rxSession('recvonly');
  let framesA = 0;
  a.media.on('frame', () => framesA++);
  const combined = timeEach('rx: packet → frame (parse + push + pull + decode/PLC)', (i) => {
    a.feed(i);
    a.media.onTick(i * FRAME_MS + 10);
  });
  a.media.close();

  // (b) the tick alone (packets delivered untimed just before it).
  const b = rxSession('recvonly');
  let framesB = 0;
  b.media.on('frame', () => framesB++);
  for (let i = 0; i < WARMUP; i++) {
    b.feed(i);
    b.media.onTick(i * FRAME_MS + 10);
  }
  const overhead = timerOverheadUs();
  const t = new Float64Array(ITERATIONS);
  for (let k = 0; k < ITERATIONS; k++) {
    const i = WARMUP + k;
    b.feed(i);
    const start = process.hrtime.bigint();
    b.media.onTick(i * FRAME_MS + 10);
    t[k] = Math.max(0, Number(process.hrtime.bigint() - start) / 1000 - overhead);
  }
  b.media.close();
  const sorted = sortedCopy(t);
  const tick: PerPacketRow = {
    path: 'rx: tick → jitter pull + G.711 decode/PLC + frame event',
    meanUs: mean(t),
    p50Us: percentileSorted(sorted, 50),
    p99Us: percentileSorted(sorted, 99),
  };
  const push: PerPacketRow = {
    path: 'rx: RtpEndpoint parse/validate/latch + jitter push (a − b)',
    meanUs: Math.max(0, combined.meanUs - tick.meanUs),
    p50Us: Math.max(0, combined.p50Us - tick.p50Us),
    p99Us: Number.NaN, // a difference of two distributions has no meaningful p99
  };
  if (framesA < ITERATIONS || framesB < ITERATIONS)
    console.log(`warning: frames emitted ${framesA}, ${framesB}`);

  // (c) the whole receive side into AudioBridge and a G.711 provider, plus the packet the pacer sends
  //     each tick (sendrecv, fake socket): one call's complete per-20 ms work minus the syscalls.
  const c = rxSession('sendrecv');
  const ai = new NullSession();
  const bridge = new AudioBridge(c.media, ai, { transcript() {}, providerLost() {} }, c.clock, log);
  const full = timeEach('rx+tx: packet → bridge → provider, and 1 packet out', (i) => {
    c.feed(i);
    c.media.onTick(i * FRAME_MS + 10);
  });
  bridge.stop();
  c.media.close();
  if (ai.frames < ITERATIONS) console.log(`warning: provider got only ${ai.frames} frames`);
  return [push, tick, combined, full];
}

function txFake(): PerPacketRow {
  const socket = new FakeSocket();
  const endpoint = new RtpEndpoint(
    socket as unknown as Socket,
    { address: HOST, port: 40_000, payloadType: 0, telephoneEventPayloadType: 101 },
    log,
    () => 0,
  );
  const outbound = new OutboundAudio({
    codec: 'PCMU',
    payloadType: 0,
    sink: endpoint,
    initialTimestamp: 1,
    maxQueueMs: 120_000,
  });
  const frames = [0, 1, 2, 3].map(toneG711);
  const row = timeEach('tx: enqueue + onTick + RtpEndpoint.send (fake socket)', (i) => {
    outbound.enqueue(frames[i & 3]!, 'item');
    outbound.onTick(i * FRAME_MS);
  });
  endpoint.close();
  return row;
}

/** A UDP sink in a child process (so receiving costs this process nothing); counts what arrives. */
function startSink(): Promise<{ port: number; stop(): Promise<number> }> {
  const code = `
    const s = require('node:dgram').createSocket('udp4');
    let n = 0;
    s.on('message', () => n++);
    s.bind(0, '${HOST}', () => process.send({ port: s.address().port }));
    process.on('message', () => { process.send({ count: n }); setTimeout(() => process.exit(0), 50); });
    process.on('disconnect', () => process.exit(0));
    setTimeout(() => process.exit(0), 600000).unref();
  `;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve) => {
    child.once('message', (m: { port: number }) =>
      resolve({
        port: m.port,
        stop: () =>
          new Promise((done) => {
            child.once('message', (c: { count: number }) => done(c.count));
            child.send('stop');
          }),
      }),
    );
  });
}

async function txReal(): Promise<{ row: PerPacketRow; sent: number; received: number }> {
  const sink = await startSink();
  const pool = new PortPool({ bindAddress: HOST, min: 21_000, max: 21_100 });
  const lease = await pool.allocate();
  const endpoint = new RtpEndpoint(
    lease.socket,
    { address: HOST, port: sink.port, payloadType: 0, telephoneEventPayloadType: 101 },
    log,
    () => monotonicClock.now(),
  );
  const outbound = new OutboundAudio({
    codec: 'PCMU',
    payloadType: 0,
    sink: endpoint,
    initialTimestamp: 1,
    maxQueueMs: 120_000,
  });
  const frames = [0, 1, 2, 3].map(toneG711);
  let i = 0;
  const batch = async (): Promise<number> => {
    const start = process.hrtime.bigint();
    for (let k = 0; k < TX_BATCH; k++, i++) {
      outbound.enqueue(frames[i & 3]!, 'item');
      outbound.onTick(i * FRAME_MS);
    }
    // dgram resolves the address and calls sendmsg() after the current tick: include that turn.
    await new Promise<void>((resolve) => setImmediate(resolve));
    return Number(process.hrtime.bigint() - start) / 1000 / TX_BATCH;
  };
  for (let b = 0; b < TX_BATCHES / 4; b++) await batch();
  const per = new Float64Array(TX_BATCHES);
  for (let b = 0; b < TX_BATCHES; b++) per[b] = await batch();
  await new Promise((r) => setTimeout(r, 200));
  const sent = endpoint.stats.packetsSent;
  endpoint.close();
  lease.release();
  const received = await sink.stop();
  const sorted = sortedCopy(per);
  return {
    row: {
      path: `tx: same, real UDP socket (per packet, batches of ${TX_BATCH})`,
      meanUs: mean(per),
      p50Us: percentileSorted(sorted, 50),
      p99Us: percentileSorted(sorted, 99),
    },
    sent,
    received,
  };
}

function pcm16Benchmarks(): PerPacketRow[] {
  const toProvider = createCallerToProvider('PCMU', { encoding: 'pcm16', sampleRate: 16000 });
  const g711 = [0, 1, 2, 3].map(toneG711);
  const a = timeEach('pcm16: PCMU → decode → resample 8→16 kHz', (i) => void toProvider(g711[i & 3]!));
  const toCaller = createProviderToCaller('PCMU', { encoding: 'pcm16', sampleRate: 24000 });
  const pcm = [0, 1, 2, 3].map((k) => {
    const bytes = new Uint8Array(960);
    for (let n = 0; n < 480; n++) {
      const s = Math.round(9000 * Math.sin((2 * Math.PI * (300 + 250 * k) * n) / 24000));
      bytes[2 * n] = s & 0xff;
      bytes[2 * n + 1] = (s >> 8) & 0xff;
    }
    return bytes;
  });
  const b = timeEach('pcm16: 24 kHz → resample 24→8 kHz → PCMU', (i) => void toCaller(pcm[i & 3]!));
  return [a, b];
}

export async function runPerPacket(): Promise<PerPacketRow[]> {
  console.log(`per-packet: ${machineLine()}`);
  console.log(
    `${ITERATIONS} packets per path after ${WARMUP} warm-up (timer overhead ${fmt(timerOverheadUs(), 3)} µs subtracted)\n`,
  );
  const rows = [...rxBenchmarks(), txFake()];
  const real = await txReal();
  rows.push(real.row, ...pcm16Benchmarks());
  printTable([
    ['path (one 20 ms packet)', 'mean µs', 'p50 µs', 'p99 µs'],
    ...rows.map((r) => [r.path, fmt(r.meanUs), fmt(r.p50Us), fmt(r.p99Us)]),
  ]);
  console.log(
    `\nreal-socket check: ${real.sent} packets sent, ${real.received} received by the sink process`,
  );
  return rows;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  runPerPacket()
    .then((rows) => {
      printResult('per-packet', rows);
      process.exit(0);
    })
    .catch((error: unknown) => {
      console.error(error);
      process.exit(1);
    });
}
