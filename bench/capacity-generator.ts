// Traffic generator for bench/capacity.ts, run as a child process on the other core: one UDP socket per
// simulated caller on 127.0.0.1, sending 20 ms PCMU RTP at 50 packets/s to that call's voxgate port
// (calls spread evenly over the 20 ms period, as real callers are), and timing every packet voxgate
// sends back with the monotonic clock. Controlled over IPC (capacity-protocol.ts); exits when told to
// or when the parent goes away.
import dgram from 'node:dgram';
import {
  createHistogram,
  monitorEventLoopDelay,
  performance,
  type RecordableHistogram,
} from 'node:perf_hooks';
import { ELD_RESOLUTION_MS, eldMs } from './util.js';
import type { FromGenerator, GeneratorTotals, IntervalStats, ToGenerator } from './capacity-protocol.js';

const FRAME_MS = 20;
const SAMPLES_PER_FRAME = 160;
const RTP_HEADER_BYTES = 12;
const PCMU_PAYLOAD_TYPE = 0;
const PCMU_SILENCE = 0xff;
/** Hard stop in case the parent never says exit (every benchmark self-terminates). */
const MAX_LIFETIME_MS = 30 * 60_000;
/** Catch-up bound after a generator stall: send at most this many overdue packets per stream at once. */
const MAX_BURST = 5;

if (process.send === undefined) {
  console.error('capacity-generator: must be started by bench/capacity.ts (needs an IPC channel)');
  process.exit(2);
}

function send(message: FromGenerator): void {
  process.send!(message);
}

/** μ-law of a 1 kHz-ish tone, a few distinct frames so payloads are not constant. */
function toneFrames(): Uint8Array[] {
  const frames: Uint8Array[] = [];
  for (let k = 0; k < 4; k++) {
    const f = new Uint8Array(SAMPLES_PER_FRAME);
    for (let i = 0; i < SAMPLES_PER_FRAME; i++) {
      const s = Math.round(8000 * Math.sin((2 * Math.PI * (400 + 200 * k) * i) / 8000));
      f[i] = linearToUlaw(s);
    }
    frames.push(f);
  }
  return frames;
}

/** G.711 μ-law encoder (the textbook one; avoids importing src/ into the generator). */
function linearToUlaw(sample: number): number {
  const BIAS = 0x84;
  const CLIP = 32635;
  const sign = sample < 0 ? 0x80 : 0;
  let s = Math.min(CLIP, Math.abs(sample)) + BIAS;
  let exponent = 7;
  for (let mask = 0x4000; (s & mask) === 0 && exponent > 0; mask >>= 1) exponent--;
  const mantissa = (s >> (exponent + 3)) & 0x0f;
  s = ~(sign | (exponent << 4) | mantissa);
  return s & 0xff;
}

interface Stream {
  socket: dgram.Socket;
  voxgatePort: number;
  ssrc: number;
  seq: number;
  timestamp: number;
  /** Monotonic ms when the next packet is due. */
  nextDue: number;
  lastArrival: number;
  lastSeq: number;
  intervals: RecordableHistogram;
  /** Pre-filled packets reused round-robin: only the header changes per send (no allocation). */
  ring: Buffer[];
}

/** Packets in flight per stream before a buffer is reused (sends complete within one loop turn). */
const RING_SIZE = 8;

const frames = toneFrames();
const streams: Stream[] = [];
let host = '127.0.0.1';
let sending = false;
let timer: NodeJS.Timeout | undefined;
const totals: GeneratorTotals = { sent: 0, received: 0, receivedAudio: 0, seqGaps: 0, ignored: 0 };
let sentInWindow = 0;
let receivedInWindow = 0;
let measuring = false;
let all: RecordableHistogram = createHistogram();
let lateness: RecordableHistogram = createHistogram();
const eld = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS });
let eluStart = performance.eventLoopUtilization();

function buildPacket(stream: Stream, marker: boolean): Buffer {
  const packet = stream.ring[stream.seq % RING_SIZE]!;
  packet[1] = (marker ? 0x80 : 0) | PCMU_PAYLOAD_TYPE;
  packet.writeUInt16BE(stream.seq, 2);
  packet.writeUInt32BE(stream.timestamp >>> 0, 4);
  return packet;
}

/** Not all silence: the echoed tone rather than the pacer's filler. */
function isAudio(data: Buffer): boolean {
  for (let i = RTP_HEADER_BYTES; i < data.length; i++) if (data[i] !== PCMU_SILENCE) return true;
  return false;
}

function onPacket(stream: Stream, data: Buffer, fromPort: number): void {
  const now = performance.now();
  // Only the call's RTP: RTCP for another call (sent to its RTP port + 1) can land on this socket.
  if (
    fromPort !== stream.voxgatePort ||
    data.length < RTP_HEADER_BYTES ||
    (data[1]! & 0x7f) !== PCMU_PAYLOAD_TYPE
  ) {
    totals.ignored++;
    return;
  }
  totals.received++;
  if (isAudio(data)) totals.receivedAudio++;
  const seq = data.readUInt16BE(2);
  if (stream.lastSeq >= 0) {
    const gap = (seq - stream.lastSeq - 1) & 0xffff;
    if (gap > 0 && gap < 0x8000) totals.seqGaps += gap;
  }
  stream.lastSeq = seq;
  if (measuring) {
    receivedInWindow++;
    if (stream.lastArrival > 0) {
      // µs, +1 because the HDR histogram only takes values ≥ 1.
      const errorUs = Math.round(Math.abs(now - stream.lastArrival - FRAME_MS) * 1000) + 1;
      stream.intervals.record(errorUs);
      all.record(errorUs);
    }
  }
  stream.lastArrival = now;
}

function tick(): void {
  timer = undefined;
  if (!sending) return;
  const now = performance.now();
  for (const stream of streams) {
    let burst = 0;
    while (stream.nextDue <= now && burst < MAX_BURST) {
      if (measuring) lateness.record(Math.round((now - stream.nextDue) * 1000) + 1);
      stream.socket.send(buildPacket(stream, stream.seq === 0)); // connected: no address lookup
      stream.seq = (stream.seq + 1) & 0xffff;
      stream.timestamp += SAMPLES_PER_FRAME;
      stream.nextDue += FRAME_MS;
      totals.sent++;
      if (measuring) sentInWindow++;
      burst++;
    }
    if (burst === MAX_BURST && stream.nextDue <= now) stream.nextDue = now + FRAME_MS; // stalled: skip
  }
  timer = setTimeout(tick, 1);
}

function intervalStats(): IntervalStats {
  const streamP99 = streams
    .filter((s) => s.intervals.count > 0)
    .map((s) => s.intervals.percentile(99))
    .sort((a, b) => a - b);
  return {
    count: all.count,
    p50Us: all.count > 0 ? all.percentile(50) - 1 : Number.NaN,
    p99Us: all.count > 0 ? all.percentile(99) - 1 : Number.NaN,
    p999Us: all.count > 0 ? all.percentile(99.9) - 1 : Number.NaN,
    maxUs: all.count > 0 ? all.max - 1 : Number.NaN,
    streamP99MedianUs: streamP99.length > 0 ? streamP99[Math.floor(streamP99.length / 2)]! - 1 : Number.NaN,
    streamP99WorstUs: streamP99.length > 0 ? streamP99[streamP99.length - 1]! - 1 : Number.NaN,
  };
}

async function init(voxgatePorts: number[], targetHost: string): Promise<void> {
  host = targetHost;
  for (const voxgatePort of voxgatePorts) {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    // Connected: the kernel delivers only this call's RTP, and send() skips the address lookup.
    await new Promise<void>((resolve) => socket.connect(voxgatePort, host, resolve));
    const ssrc = (Math.random() * 0xffffffff) >>> 0;
    const ring = Array.from({ length: RING_SIZE }, (_, k) => {
      const packet = Buffer.alloc(RTP_HEADER_BYTES + SAMPLES_PER_FRAME);
      packet[0] = 0x80;
      packet.writeUInt32BE(ssrc, 8);
      packet.set(frames[k & 3]!, RTP_HEADER_BYTES);
      return packet;
    });
    const stream: Stream = {
      socket,
      voxgatePort,
      ring,
      ssrc,
      seq: 0,
      timestamp: (Math.random() * 0xffffffff) >>> 0,
      nextDue: 0,
      lastArrival: 0,
      lastSeq: -1,
      intervals: createHistogram(),
    };
    socket.on('message', (data, rinfo) => onPacket(stream, data, rinfo.port));
    socket.on('error', () => {
      // ICMP unreachable after voxgate closed a port: harmless at the end of a run.
    });
    streams.push(stream);
  }
  send({ type: 'ready', ports: streams.map((s) => s.socket.address().port) });
}

function start(): void {
  const t0 = performance.now() + FRAME_MS;
  // Spread the calls evenly over one 20 ms period.
  streams.forEach((s, i) => (s.nextDue = t0 + (i * FRAME_MS) / streams.length));
  sending = true;
  tick();
}

function exit(): void {
  sending = false;
  if (timer !== undefined) clearTimeout(timer);
  for (const s of streams) s.socket.close();
  eld.disable();
  process.exit(0);
}

process.on('message', (raw: unknown) => {
  const message = raw as ToGenerator;
  switch (message.type) {
    case 'init':
      void init(message.voxgatePorts, message.host);
      break;
    case 'start':
      start();
      break;
    case 'mark':
      all = createHistogram();
      lateness = createHistogram();
      for (const s of streams) s.intervals.reset();
      sentInWindow = 0;
      receivedInWindow = 0;
      eld.reset();
      eld.enable();
      eluStart = performance.eventLoopUtilization();
      measuring = true;
      break;
    case 'window': {
      measuring = false;
      eld.disable();
      send({
        type: 'window',
        window: {
          intervals: intervalStats(),
          generatorEldP99Ms: eldMs(eld.percentile(99)),
          generatorElu: performance.eventLoopUtilization(eluStart).utilization,
          sendLatenessP99Ms: lateness.count > 0 ? (lateness.percentile(99) - 1) / 1000 : Number.NaN,
          sentInWindow,
          receivedInWindow,
        },
      });
      break;
    }
    case 'stopSending':
      sending = false;
      send({ type: 'stopped', sent: totals.sent });
      break;
    case 'totals':
      send({ type: 'totals', totals: { ...totals } });
      break;
    case 'exit':
      exit();
      break;
  }
});
process.on('disconnect', exit);
setTimeout(exit, MAX_LIFETIME_MS).unref();
