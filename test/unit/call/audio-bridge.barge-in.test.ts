// AudioBridge with a real MediaSession on loopback (real UDP, manual time) and a recording fake provider.
import { createSocket, type Socket } from 'node:dgram';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TypedEmitter } from '../../../src/core/events.js';
import type { Clock } from '../../../src/core/clock.js';
import type {
  RealtimeCapabilities,
  SessionAudioFormats,
  RealtimeEvents,
  RealtimeSession,
} from '../../../src/ai/realtime.js';
import { MediaClock, type Paced } from '../../../src/media/media-clock.js';
import { MediaSession } from '../../../src/media/media-session.js';
import { PortPool } from '../../../src/media/port-pool.js';
import { selectMedia } from '../../../src/media/sdp.js';
import { AudioBridge, type BridgeCallbacks } from '../../../src/call/audio-bridge.js';
import { freeEvenUdpPortRange } from '../../helpers/ports.js';

const log = pino({ level: 'silent' });
const LOOPBACK = '127.0.0.1';
const FRAME_MS = 20;
const FRAME_BYTES = 160;
const PCMU_SILENCE = 0xff;
const WAIT_MS = 2_000;

// ---- seams: time, pacing and the provider ------------------------------------------------------------

/** Monotonic time that moves only when the test says so. */
class ManualClock implements Clock {
  t = 1_000;
  now(): number {
    return this.t;
  }
}

/** A MediaClock that never starts a timer: the test ticks the registered streams itself. */
class ManualMediaClock extends MediaClock {
  readonly streams = new Set<Paced>();
  override add(stream: Paced): void {
    this.streams.add(stream);
  }
  override remove(stream: Paced): void {
    this.streams.delete(stream);
  }
  tick(now: number): void {
    for (const stream of this.streams) stream.onTick(now);
  }
}

/** A provider session that records what the bridge asks of it and lets the test emit its events. */
class FakeRealtimeSession extends TypedEmitter<RealtimeEvents> implements RealtimeSession {
  readonly provider = 'fake';
  readonly capabilities: RealtimeCapabilities;
  readonly audioFormats: SessionAudioFormats = { input: { encoding: 'g711' }, output: { encoding: 'g711' } };
  readonly sent: Uint8Array[] = [];
  readonly truncates: [itemId: string, playedMs: number][] = [];
  constructor(canTruncate = true) {
    super((error) => {
      throw error;
    });
    this.capabilities = { truncate: canTruncate, toolCalls: false, serverVad: true, g711Passthrough: true };
  }
  sendAudio(data: Uint8Array): void {
    this.sent.push(Uint8Array.from(data));
  }
  respond(): void {}
  truncate(itemId: string, playedMs: number): void {
    this.truncates.push([itemId, playedMs]);
  }
  sendToolResult(): void {}
  close(): void {
    this.fire('close', { expected: true, reason: 'closed' });
  }
  fire<K extends keyof RealtimeEvents & string>(event: K, ...args: RealtimeEvents[K]): void {
    this.safeEmit(event, ...args);
  }
}

// ---- the caller: a UDP socket that sends and records RTP ---------------------------------------------

interface Received {
  payloadType: number;
  sequenceNumber: number;
  marker: boolean;
  payload: Buffer;
}

function rtp(payloadType: number, seq: number, timestamp: number, payload: Uint8Array): Buffer {
  const header = Buffer.alloc(12);
  header[0] = 0x80;
  header[1] = payloadType & 0x7f;
  header.writeUInt16BE(seq & 0xffff, 2);
  header.writeUInt32BE(timestamp >>> 0, 4);
  header.writeUInt32BE(0x1234_5678, 8);
  return Buffer.concat([header, payload]);
}

/** A minimal PCMU-only sendrecv offer from the caller's loopback socket. */
function callerOffer(port: number): string {
  return [
    'v=0',
    `o=caller 1 1 IN IP4 ${LOOPBACK}`,
    's=-',
    `c=IN IP4 ${LOOPBACK}`,
    't=0 0',
    `m=audio ${port} RTP/AVP 0`,
    'a=rtpmap:0 PCMU/8000',
    'a=sendrecv',
    '',
  ].join('\r\n');
}

function bindCaller(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    socket.once('error', reject);
    socket.bind(0, LOOPBACK, () => {
      socket.off('error', reject);
      resolve(socket);
    });
  });
}

// ---- fixture -----------------------------------------------------------------------------------------

interface Fixture {
  clock: ManualClock;
  mediaClock: ManualMediaClock;
  media: MediaSession;
  ai: FakeRealtimeSession;
  bridge: AudioBridge;
  caller: Socket;
  received: Received[];
  lost: string[];
  /**
   * Advance time by `frames` × 20 ms, ticking the pacer at each step and waiting for each packet to
   * arrive (one packet in flight at a time, as in production where ticks are 20 ms apart).
   */
  play(frames: number): Promise<void>;
  /** Waits until the caller has received `count` packets in total. */
  untilReceived(count: number): Promise<void>;
}

let cleanup: (() => Promise<void>)[] = [];

async function setup(options: { canTruncate?: boolean } = {}): Promise<Fixture> {
  const min = await freeEvenUdpPortRange(4);
  const pool = new PortPool({ bindAddress: LOOPBACK, min, max: min + 3 });
  const lease = await pool.allocate();
  const caller = await bindCaller();
  const received: Received[] = [];
  caller.on('message', (msg: Buffer) => {
    received.push({
      payloadType: msg[1]! & 0x7f,
      sequenceNumber: msg.readUInt16BE(2),
      marker: (msg[1]! & 0x80) !== 0,
      payload: Buffer.from(msg.subarray(12)),
    });
  });
  // Negotiated from a real offer, so the test follows the NegotiatedMedia shape as sdp.ts evolves.
  const negotiated = selectMedia(callerOffer(caller.address().port), ['PCMU']);
  const clock = new ManualClock();
  const mediaClock = new ManualMediaClock(clock);
  const media = new MediaSession(lease, negotiated, mediaClock, clock, log);
  const ai = new FakeRealtimeSession(options.canTruncate ?? true);
  const lost: string[] = [];
  const callbacks: BridgeCallbacks = { transcript: () => {}, providerLost: (reason) => lost.push(reason) };
  const bridge = new AudioBridge(media, ai, callbacks, clock, log);
  cleanup.push(async () => {
    bridge.stop();
    media.close();
    await new Promise<void>((resolve) => caller.close(() => resolve()));
    expect(pool.inUse).toBe(0);
  });
  return {
    clock,
    mediaClock,
    media,
    ai,
    bridge,
    caller,
    received,
    lost,
    async play(frames: number) {
      for (let i = 0; i < frames; i++) {
        const before = media.outbound.stats.framesSent;
        mediaClock.tick(clock.t);
        clock.t += FRAME_MS;
        const sent = media.outbound.stats.framesSent;
        if (sent > before)
          await vi.waitFor(() => expect(received.length).toBeGreaterThanOrEqual(sent), { timeout: WAIT_MS });
      }
    },
    untilReceived: (count: number) =>
      vi.waitFor(() => expect(received.length).toBeGreaterThanOrEqual(count), { timeout: WAIT_MS }),
  };
}

beforeEach(() => {
  cleanup = [];
});
afterEach(async () => {
  for (const fn of cleanup.splice(0)) await fn();
});

/** Agent audio where byte i of the item is (seed + i) & 0xff, but never the μ-law silence byte. */
function agentAudio(bytes: number, seed = 0): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) out[i] = (seed + i) % 0xff;
  return out;
}

const isSilence = (payload: Buffer): boolean =>
  payload.length === FRAME_BYTES && payload.every((b) => b === PCMU_SILENCE);

// ---- tests -------------------------------------------------------------------------------------------

describe('AudioBridge: caller to provider', () => {
  it('passes each caller RTP payload to ai.sendAudio unchanged and in order', async () => {
    const f = await setup();
    const payloads = [agentAudio(160, 1), agentAudio(160, 2), agentAudio(160, 3)];
    payloads.forEach((p, i) => f.caller.send(rtp(0, 100 + i, i * 160, p), f.media.port, LOOPBACK));
    await vi.waitFor(() => expect(f.media.endpoint.stats.packetsReceived).toBe(3), { timeout: WAIT_MS });
    // Caller audio reaches the provider through the jitter buffer, one frame per 20 ms tick.
    await f.play(6);
    await vi.waitFor(() => expect(f.ai.sent.length).toBeGreaterThanOrEqual(3), { timeout: WAIT_MS });
    // The three real frames first, in order; what follows is concealment after the sender stopped.
    expect(f.ai.sent.slice(0, 3).map((s) => Array.from(s))).toEqual(payloads.map((p) => Array.from(p)));
    expect(f.media.stats().inbound.frames).toBe(3);
  });

  it('does not pass RTP of another payload type to the provider', async () => {
    const f = await setup();
    f.caller.send(rtp(8, 1, 0, agentAudio(160)), f.media.port, LOOPBACK); // PCMA: not negotiated
    f.caller.send(rtp(0, 2, 160, agentAudio(160, 9)), f.media.port, LOOPBACK);
    await vi.waitFor(() => expect(f.media.endpoint.stats.packetsReceived).toBe(1), { timeout: WAIT_MS });
    await f.play(4);
    await vi.waitFor(() => expect(f.ai.sent.length).toBeGreaterThanOrEqual(1), { timeout: WAIT_MS });
    expect(f.ai.sent[0]![0]).toBe(9);
    expect(f.media.stats().inbound.frames).toBe(1);
  });

  it('stops passing caller audio after stop()', async () => {
    const f = await setup();
    f.bridge.stop();
    f.caller.send(rtp(0, 1, 0, agentAudio(160)), f.media.port, LOOPBACK);
    // The endpoint still receives it (stats), the provider does not.
    await vi.waitFor(() => expect(f.media.endpoint.stats.packetsReceived).toBe(1), { timeout: WAIT_MS });
    expect(f.ai.sent).toHaveLength(0);
  });
});

describe('AudioBridge: provider to caller', () => {
  it('queues agent audio and plays it out one 20 ms packet per tick, then silence', async () => {
    const f = await setup();
    const audio = agentAudio(3 * FRAME_BYTES, 5);
    f.ai.fire('audio', { data: audio, itemId: 'item_1' });
    expect(f.media.outbound.queuedMs).toBe(60);
    await f.play(4);
    await f.untilReceived(4);
    expect(f.received.slice(0, 3).map((r) => Array.from(r.payload))).toEqual(
      [0, 1, 2].map((k) => Array.from(audio.subarray(k * FRAME_BYTES, (k + 1) * FRAME_BYTES))),
    );
    expect(isSilence(f.received[3]!.payload)).toBe(true);
    expect(f.received.every((r) => r.payloadType === 0)).toBe(true);
    expect(f.bridge.stats.firstAgentAudioMs).toBe(0);
  });

  it('ignores agent audio after stop()', async () => {
    const f = await setup();
    f.bridge.stop();
    f.ai.fire('audio', { data: agentAudio(FRAME_BYTES), itemId: 'item_1' });
    expect(f.media.outbound.queuedMs).toBe(0);
  });

  it('forwards transcripts to the callback', async () => {
    const f = await setup();
    const seen: unknown[] = [];
    const bridge = new AudioBridge(
      f.media,
      f.ai,
      { transcript: (t) => seen.push(t), providerLost: () => {} },
      f.clock,
      log,
    );
    f.ai.fire('transcript', { role: 'agent', text: 'hello' });
    expect(seen).toEqual([{ role: 'agent', text: 'hello' }]);
    bridge.stop();
  });

  // Regression: dgram.send() reads its buffer after it returns, so an RtpEndpoint that reused one send
  // buffer sent every packet of a synchronous burst (the pacer's catch-up after a stall) with the last
  // packet's header and payload. src/media/rtp-endpoint.ts now rotates through a ring of send buffers.
  it('after an event-loop stall, each catch-up packet carries its own sequence number and audio', async () => {
    const f = await setup();
    const audio = agentAudio(4 * FRAME_BYTES, 1);
    f.ai.fire('audio', { data: audio, itemId: 'item_1' });
    await f.play(1); // frame 0 out, pacer started
    f.clock.t += 3 * FRAME_MS; // the loop stalled: three frames are now due at once
    f.mediaClock.tick(f.clock.t);
    await f.untilReceived(4);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const seqs = f.received.map((r) => r.sequenceNumber);
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(f.received.slice(0, 4).map((r) => Array.from(r.payload))).toEqual(
      [0, 1, 2, 3].map((k) => Array.from(audio.subarray(k * FRAME_BYTES, (k + 1) * FRAME_BYTES))),
    );
  });
});

describe('AudioBridge: barge-in', () => {
  it('flushes the queue at once on speechStarted: the very next packet is silence', async () => {
    const f = await setup();
    f.ai.fire('audio', { data: agentAudio(5 * FRAME_BYTES), itemId: 'item_A' });
    await f.play(2);
    f.ai.fire('speechStarted');
    expect(f.media.outbound.queuedMs).toBe(0);
    await f.play(1);
    await f.untilReceived(3);
    expect(isSilence(f.received[0]!.payload)).toBe(false);
    expect(isSilence(f.received[1]!.payload)).toBe(false);
    expect(isSilence(f.received[2]!.payload)).toBe(true);
    expect(f.bridge.stats.bargeIns).toBe(1);
  });

  it('truncates the playing item at the integer ms actually sent (bytes sent / 8), not the ms received', async () => {
    const f = await setup();
    f.ai.fire('audio', { data: agentAudio(5 * FRAME_BYTES), itemId: 'item_A' }); // 100 ms received
    await f.play(2); // 40 ms sent
    await f.untilReceived(2);
    f.ai.fire('speechStarted');
    expect(f.ai.truncates).toEqual([['item_A', 40]]);
  });

  it('rounds a partly filled last frame down to whole ms', async () => {
    const f = await setup();
    f.ai.fire('audio', { data: agentAudio(FRAME_BYTES + 100), itemId: 'item_A' }); // 32.5 ms
    f.ai.fire('audio', { data: agentAudio(FRAME_BYTES), itemId: 'item_A' }); // still streaming
    await f.play(1);
    f.ai.fire('speechStarted');
    expect(f.ai.truncates).toEqual([['item_A', 20]]);
    const g = await setup();
    g.ai.fire('audio', { data: agentAudio(100), itemId: 'item_B' }); // 12.5 ms, sent within one frame
    await g.play(1);
    g.ai.fire('speechStarted');
    const [, ms] = g.ai.truncates[0] ?? ['', NaN];
    expect(Number.isInteger(ms)).toBe(true);
    expect(ms).toBe(12);
  });

  it('sends no truncate when nothing was playing', async () => {
    const f = await setup();
    await f.play(3); // silence only
    f.ai.fire('speechStarted');
    expect(f.ai.truncates).toEqual([]);
    expect(f.bridge.stats.bargeIns).toBe(0);
  });

  it('sends no truncate when the last reply finished playing long ago', async () => {
    const f = await setup();
    f.ai.fire('audio', { data: agentAudio(2 * FRAME_BYTES), itemId: 'item_A' });
    await f.play(2);
    f.clock.t += 5_000; // caller speaks much later
    f.ai.fire('speechStarted');
    expect(f.ai.truncates).toEqual([]);
  });

  it('does not truncate on a provider that cannot, but still flushes', async () => {
    const f = await setup({ canTruncate: false });
    f.ai.fire('audio', { data: agentAudio(5 * FRAME_BYTES), itemId: 'echo' });
    await f.play(1);
    f.ai.fire('speechStarted');
    expect(f.media.outbound.queuedMs).toBe(0);
    expect(f.ai.truncates).toEqual([]);
  });

  it('truncates a queued item that never started playing at 0 ms', async () => {
    const f = await setup();
    f.ai.fire('audio', { data: agentAudio(FRAME_BYTES), itemId: 'item_A' });
    await f.play(1); // A fully played
    f.ai.fire('audio', { data: agentAudio(3 * FRAME_BYTES), itemId: 'item_B' });
    f.ai.fire('speechStarted'); // before B's first frame
    expect(f.ai.truncates).toContainEqual(['item_B', 0]);
  });
});

describe('AudioBridge: provider close', () => {
  it('reports providerLost when the provider closes unexpectedly', async () => {
    const f = await setup();
    f.ai.fire('close', { expected: false, reason: 'websocket closed (1006)' });
    expect(f.lost).toEqual(['websocket closed (1006)']);
  });

  it('does not report providerLost on an expected close', async () => {
    const f = await setup();
    f.ai.fire('close', { expected: true, reason: 'closed' });
    expect(f.lost).toEqual([]);
  });

  it('does not report providerLost after stop(), even for an unexpected close', async () => {
    const f = await setup();
    f.bridge.stop();
    f.ai.fire('close', { expected: false, reason: 'late' });
    expect(f.lost).toEqual([]);
  });
});
