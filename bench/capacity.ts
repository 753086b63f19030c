// Capacity: N simulated calls in ONE voxgate process. Each call is a real MediaSession (PortPool lease on
// 127.0.0.1, real UDP socket, the real shared MediaClock, jitter buffer, PLC) bridged by the real
// AudioBridge to the real EchoProvider. A traffic generator child process (other core) sends 50 PCMU
// packets/s to every call and times what voxgate sends back.
//
// Run:   npx tsx bench/capacity.ts --calls 500            (one N, ~40 s)
//        npx tsx bench/capacity.ts --sweep 100,250,500    (one fresh process per N)
// Flags: --duration S (steady window, default 30) --warmup S (default 5) --echo-delay MS (default 400,
//        voxgate's ECHO_DELAY_MS default) --no-pin (do not use taskset) --quiet-wait S (sweep only:
//        before each N wait up to S s, default 120, for the machine to be < 25 % busy; 0 = don't wait)
// Prints numbers; asserts nothing. Not part of npm test.
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createHistogram, monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import pino from 'pino';
import { monotonicClock } from '../src/core/clock.js';
import { MediaClock } from '../src/media/media-clock.js';
import { MediaSession } from '../src/media/media-session.js';
import { PortPool, type PortLease } from '../src/media/port-pool.js';
import type { NegotiatedMedia } from '../src/media/sdp.js';
import { AudioBridge } from '../src/call/audio-bridge.js';
import { EchoProvider } from '../src/ai/providers/echo.js';
import type { RealtimeSession } from '../src/ai/realtime.js';
import type { GeneratorTotals, GeneratorWindow } from './capacity-protocol.js';
import { Generator } from './capacity-driver.js';
import {
  ELD_RESOLUTION_MS,
  RESULT_PREFIX,
  argFlag,
  argNumber,
  argValue,
  fmt,
  cpuSnapshot,
  eldMs,
  gcTracker,
  type GcSummary,
  hasTaskset,
  machineLine,
  machineLoad,
  printResult,
  waitForQuiet,
  printTable,
  sleep,
} from './util.js';

const HOST = '127.0.0.1';
/** RTP range below Linux's ephemeral range (32768+), so the generator's sockets never take our ports. */
const PORT_MIN = 20_000;
/** Spare port pairs beyond N: ports held by other processes are skipped by the pool. */
const PORT_SPARE_PAIRS = 500;
const SAMPLES_PER_FRAME = 160;
/** After the generator stops: echo delay + jitter buffer + a margin, so every queued frame drains. */
const DRAIN_MARGIN_MS = 1_000;
/** Whole-run watchdog: a hung run must still end. */
const WATCHDOG_MARGIN_MS = 120_000;
/** How long the idle MediaClock is timed first (the platform's timer floor). */
const FLOOR_MS = 5_000;
/** Where p99 send-interval error is called "crossed" (the threshold). */
const P99_THRESHOLD_US = 2_000;
const SELF = fileURLToPath(import.meta.url);

export interface CapacityResult {
  calls: number;
  durationS: number;
  pinned: boolean;
  intervals: GeneratorWindow['intervals'];
  /**
   * The same error seen inside voxgate: |time between two onTick calls of one stream − 20 ms| (the
   * shared MediaClock's wake-up jitter), without the generator's receive latency. µs.
   */
  tickIntervals: { p50Us: number; p99Us: number; maxUs: number };
  /** Before any call: the MediaClock ticking one no-op stream (Node timers + this VM). µs. */
  floorIntervals: { p50Us: number; p99Us: number; maxUs: number };
  generator: Omit<GeneratorWindow, 'intervals'>;
  /** % of one core used by the whole voxgate process in the window, and per call. */
  cpuPercent: number;
  cpuPercentPerCall: number;
  /** CPU µs per RTP packet handled (in + out) in the window. */
  cpuUsPerPacket: number;
  packetsPerSecond: number;
  eventLoopDelayP99Ms: number;
  eventLoopDelayMaxMs: number;
  eventLoopUtilization: number;
  /** V8 GC pauses in the window. */
  gc: GcSummary;
  /** Whole machine during the window (all processes, ours included). */
  machineBusyPercent: number;
  machineCpuPressurePercent: number;
  rssPerCallKb: number;
  heapPerCallKb: number;
  /** V8 heap reserved (used or not) per call: the young generation grows with the packet rate. */
  heapTotalPerCallKb: number;
  /** ArrayBuffer/Buffer backing stores outside the V8 heap, per call. */
  externalPerCallKb: number;
  rssBaselineMb: number;
  rssLoadedMb: number;
  losses: {
    generatorSent: number;
    voxgateReceived: number;
    /** Received by voxgate but never handed to the AI as real (non-concealed) audio. */
    lostInsideRx: number;
    framesToAi: number;
    concealedToAi: number;
    jitterLate: number;
    jitterDiscarded: number;
    jitterOverflow: number;
    /** Concealed frames during the steady window only. */
    concealedInWindow: number;
    /** The steady window alone (no start-up transient): packets in, real frames out, drops. */
    window: { received: number; frames: number; late: number; discarded: number; overflow: number };
    aiAudioFrames: number;
    audioFramesSent: number;
    /** AI audio frames never sent as RTP (dropped or still queued after the drain). */
    lostInsideTx: number;
    outboundOverflowBytes: number;
    skippedFrames: number;
    voxgateSent: number;
    generatorReceived: number;
    generatorReceivedAudio: number;
    seqGapsAtGenerator: number;
    /** Datagrams at the generator that were not the call's RTP (RTCP reports aimed at port + 1). */
    ignoredAtGenerator: number;
  };
}

interface Call {
  media: MediaSession;
  ai: RealtimeSession;
  bridge: AudioBridge;
  framesToAi: number;
  aiAudioBytes: number;
}

// ---------------------------------------------------------------------------------------------------

function negotiated(remotePort: number): NegotiatedMedia {
  return {
    codec: 'PCMU',
    payloadType: 0,
    telephoneEventPayloadType: 101,
    remoteAddress: HOST,
    remotePort,
    remoteDirection: 'sendrecv',
    localDirection: 'sendrecv',
    offeredStreams: [{ type: 'audio', protocol: 'RTP/AVP', format: '0 101' }],
    audioIndex: 0,
  };
}

function exposeGc(): () => void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  return () => {
    gc();
    gc();
  };
}

async function measure(
  calls: number,
  durationS: number,
  warmupS: number,
  echoDelayMs: number,
  pin: boolean,
): Promise<CapacityResult> {
  const gc = exposeGc();
  if (pin) execFileSync('taskset', ['-a', '-cp', '0', String(process.pid)], { stdio: 'ignore' });
  const log = pino({ level: 'silent' });
  const mediaClock = new MediaClock(monotonicClock);
  const pool = new PortPool({
    bindAddress: HOST,
    min: PORT_MIN,
    max: PORT_MIN + 2 * (calls + PORT_SPARE_PAIRS),
  });
  const provider = new EchoProvider(echoDelayMs, monotonicClock);
  const generator = new Generator(pin);

  // Platform floor: the real MediaClock driving one no-op stream, no calls, no traffic.
  const floorErrors = createHistogram();
  let lastFloorTick = 0;
  const floorStream = {
    onTick(): void {
      const now = performance.now();
      if (lastFloorTick > 0) floorErrors.record(Math.round(Math.abs(now - lastFloorTick - 20) * 1000) + 1);
      lastFloorTick = now;
    },
  };
  mediaClock.add(floorStream);
  await sleep(FLOOR_MS);
  mediaClock.remove(floorStream);
  gc();
  const mem0 = process.memoryUsage();

  const leases: PortLease[] = [];
  for (let i = 0; i < calls; i++) leases.push(await pool.allocate());
  const ready = await generator.request(
    { type: 'init', voxgatePorts: leases.map((l) => l.port), host: HOST },
    'ready',
  );

  const list: Call[] = [];
  // Sender-side pacing: wrap each session's onTick (MediaClock calls it through the instance).
  const tickErrors = createHistogram();
  let timingTicks = false;
  for (let i = 0; i < calls; i++) {
    const media = new MediaSession(leases[i]!, negotiated(ready.ports[i]!), mediaClock, monotonicClock, log);
    const ai = await provider.connect({ codec: 'PCMU', instructions: '', greeting: '', log });
    const call: Call = {
      media,
      ai,
      bridge: undefined as unknown as AudioBridge,
      framesToAi: 0,
      aiAudioBytes: 0,
    };
    // Count at the AI boundary without changing what the bridge does.
    const sendAudio = ai.sendAudio.bind(ai);
    ai.sendAudio = (data: Uint8Array): void => {
      call.framesToAi++;
      sendAudio(data);
    };
    ai.on('audio', ({ data }) => (call.aiAudioBytes += data.length));
    call.bridge = new AudioBridge(media, ai, { transcript() {}, providerLost() {} }, monotonicClock, log);
    const onTick = media.onTick.bind(media);
    let lastTick = 0;
    media.onTick = (slotTime: number): void => {
      const now = performance.now();
      if (timingTicks && lastTick > 0)
        tickErrors.record(Math.round(Math.abs(now - lastTick - 20) * 1000) + 1);
      lastTick = now;
      onTick(slotTime);
    };
    list.push(call);
  }

  generator.send({ type: 'start' });
  await sleep(warmupS * 1000);

  // ---- steady-state window ----
  const sum = (f: (c: Call) => number): number => list.reduce((a, c) => a + f(c), 0);
  const rxAt = (): number => sum((c) => c.media.endpoint.stats.packetsReceived);
  const txAt = (): number => sum((c) => c.media.endpoint.stats.packetsSent);
  const concealedAt = (): number => sum((c) => c.media.stats().inbound.concealedFrames);
  const inboundAt = (): CapacityResult['losses']['window'] => {
    const w = { received: 0, frames: 0, late: 0, discarded: 0, overflow: 0 };
    for (const c of list) {
      const s = c.media.stats();
      w.received += s.rtp.packetsReceived;
      w.frames += s.inbound.frames;
      w.late += s.jitter.late;
      w.discarded += s.jitter.discarded;
      w.overflow += s.jitter.overflow;
    }
    return w;
  };
  const eld = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS });
  generator.send({ type: 'mark' });
  timingTicks = true;
  eld.enable();
  const rx0 = rxAt();
  const tx0 = txAt();
  const concealed0 = concealedAt();
  const inbound0 = inboundAt();
  const elu0 = performance.eventLoopUtilization();
  const machine0 = cpuSnapshot();
  const gcs = gcTracker();
  gcs.start();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await sleep(durationS * 1000);
  const cpu = process.cpuUsage(cpu0);
  const elapsedMs = performance.now() - t0;
  const elu = performance.eventLoopUtilization(elu0).utilization;
  const machine = machineLoad(machine0, cpuSnapshot());
  const gcStats = gcs.stop();
  eld.disable();
  timingTicks = false;
  const packets = rxAt() - rx0 + (txAt() - tx0);
  const concealedInWindow = concealedAt() - concealed0;
  const inbound1 = inboundAt();
  const inboundWindow = {
    received: inbound1.received - inbound0.received,
    frames: inbound1.frames - inbound0.frames,
    late: inbound1.late - inbound0.late,
    discarded: inbound1.discarded - inbound0.discarded,
    overflow: inbound1.overflow - inbound0.overflow,
  };
  const { window } = await generator.request({ type: 'window' }, 'window');

  gc();
  const mem1 = process.memoryUsage();

  // ---- drain, then account for every packet ----
  await generator.request({ type: 'stopSending' }, 'stopped');
  await sleep(echoDelayMs + DRAIN_MARGIN_MS);
  const stats = list.map((c) => c.media.stats());
  const voxgateSent = stats.reduce((a, s) => a + s.rtp.packetsSent, 0);
  for (const c of list) {
    c.bridge.stop();
    c.ai.close();
    c.media.close(); // same tick as the snapshot above: nothing more is sent
  }
  await sleep(300);
  const { totals }: { totals: GeneratorTotals } = await generator.request({ type: 'totals' }, 'totals');
  generator.exit();

  const st = (f: (s: (typeof stats)[number]) => number): number => stats.reduce((a, s) => a + f(s), 0);
  const voxgateReceived = st((s) => s.rtp.packetsReceived);
  const realFrames = st((s) => s.inbound.frames);
  const aiAudioFrames = sum((c) => c.aiAudioBytes) / SAMPLES_PER_FRAME;
  const audioFramesSent = st((s) => s.outbound.audioFramesSent);
  const cpuUs = cpu.user + cpu.system;
  return {
    calls,
    durationS: elapsedMs / 1000,
    pinned: pin,
    intervals: window.intervals,
    floorIntervals: {
      p50Us: floorErrors.percentile(50) - 1,
      p99Us: floorErrors.percentile(99) - 1,
      maxUs: floorErrors.max - 1,
    },
    tickIntervals: {
      p50Us: tickErrors.percentile(50) - 1,
      p99Us: tickErrors.percentile(99) - 1,
      maxUs: tickErrors.max - 1,
    },
    generator: {
      generatorEldP99Ms: window.generatorEldP99Ms,
      generatorElu: window.generatorElu,
      sendLatenessP99Ms: window.sendLatenessP99Ms,
      sentInWindow: window.sentInWindow,
      receivedInWindow: window.receivedInWindow,
    },
    cpuPercent: (cpuUs / (elapsedMs * 1000)) * 100,
    cpuPercentPerCall: (cpuUs / (elapsedMs * 1000) / calls) * 100,
    cpuUsPerPacket: cpuUs / packets,
    packetsPerSecond: packets / (elapsedMs / 1000),
    eventLoopDelayP99Ms: eldMs(eld.percentile(99)),
    eventLoopDelayMaxMs: eldMs(eld.max),
    eventLoopUtilization: elu,
    gc: gcStats,
    machineBusyPercent: machine.busyPercent,
    machineCpuPressurePercent: machine.cpuPressurePercent,
    rssPerCallKb: (mem1.rss - mem0.rss) / calls / 1024,
    heapPerCallKb: (mem1.heapUsed - mem0.heapUsed) / calls / 1024,
    heapTotalPerCallKb: (mem1.heapTotal - mem0.heapTotal) / calls / 1024,
    externalPerCallKb: (mem1.external - mem0.external) / calls / 1024,
    rssBaselineMb: mem0.rss / 2 ** 20,
    rssLoadedMb: mem1.rss / 2 ** 20,
    losses: {
      generatorSent: totals.sent,
      voxgateReceived,
      lostInsideRx: voxgateReceived - realFrames,
      framesToAi: sum((c) => c.framesToAi),
      concealedToAi: st((s) => s.inbound.concealedFrames),
      jitterLate: st((s) => s.jitter.late),
      jitterDiscarded: st((s) => s.jitter.discarded),
      jitterOverflow: st((s) => s.jitter.overflow),
      concealedInWindow,
      window: inboundWindow,
      aiAudioFrames,
      audioFramesSent,
      lostInsideTx: aiAudioFrames - audioFramesSent,
      outboundOverflowBytes: st((s) => s.outbound.overflowBytes),
      skippedFrames: st((s) => s.outbound.skippedFrames),
      voxgateSent,
      generatorReceived: totals.received,
      generatorReceivedAudio: totals.receivedAudio,
      seqGapsAtGenerator: totals.seqGaps,
      ignoredAtGenerator: totals.ignored,
    },
  };
}

/** Packets that reached voxgate in the steady window but were dropped by the jitter buffer, in %. */
function windowLossPercent(r: CapacityResult): number {
  const w = r.losses.window;
  return ((w.late + w.discarded + w.overflow) / w.received) * 100;
}

function report(r: CapacityResult): void {
  const ms = (us: number): string => fmt(us / 1000, 3);
  const l = r.losses;
  console.log(
    `\n== ${r.calls} calls, ${fmt(r.durationS, 1)} s steady window${r.pinned ? ', voxgate pinned to core 0, generator to core 1' : ', not pinned'} ==`,
  );
  console.log(
    `send-interval error |Δt − 20 ms| at the receiver: p50 ${ms(r.intervals.p50Us)} ms  p99 ${ms(r.intervals.p99Us)} ms  ` +
      `p99.9 ${ms(r.intervals.p999Us)} ms  max ${ms(r.intervals.maxUs)} ms  (${r.intervals.count} intervals; ` +
      `per-stream p99: median ${ms(r.intervals.streamP99MedianUs)} ms, worst ${ms(r.intervals.streamP99WorstUs)} ms)`,
  );
  console.log(
    `floor before any call (MediaClock, one no-op stream, ${FLOOR_MS / 1000} s): p50 ${ms(r.floorIntervals.p50Us)} ms  ` +
      `p99 ${ms(r.floorIntervals.p99Us)} ms  max ${ms(r.floorIntervals.maxUs)} ms`,
  );
  console.log(
    `the same inside voxgate (interval between a stream's onTick calls): p50 ${ms(r.tickIntervals.p50Us)} ms  ` +
      `p99 ${ms(r.tickIntervals.p99Us)} ms  max ${ms(r.tickIntervals.maxUs)} ms`,
  );
  console.log(
    `generator (measurement floor): event-loop delay p99 ${fmt(r.generator.generatorEldP99Ms)} ms, ` +
      `utilization ${fmt(r.generator.generatorElu * 100, 1)} %, send lateness p99 ${fmt(r.generator.sendLatenessP99Ms)} ms`,
  );
  console.log(
    `CPU: ${fmt(r.cpuPercent, 1)} % of one core = ${fmt(r.cpuPercentPerCall, 3)} % per call; ` +
      `${fmt(r.cpuUsPerPacket)} µs per packet (${fmt(r.packetsPerSecond, 0)} packets/s in+out); ` +
      `event-loop utilization ${fmt(r.eventLoopUtilization * 100, 1)} %`,
  );
  console.log(
    `GC: ${r.gc.count} pauses, ${fmt(r.gc.totalMs, 0)} ms in all (${fmt((r.gc.totalMs / (r.durationS * 1000)) * 100, 1)} % of the window), ` +
      `longest ${fmt(r.gc.maxMs, 1)} ms`,
  );
  console.log(
    `machine during the window: ${fmt(r.machineBusyPercent, 0)} % of all cores busy, CPU pressure (PSI some) ` +
      `${fmt(r.machineCpuPressurePercent, 0)} % — both include this benchmark; other load makes every number worse`,
  );
  console.log(
    `event-loop delay: p99 ${fmt(r.eventLoopDelayP99Ms)} ms, max ${fmt(r.eventLoopDelayMaxMs)} ms (monitorEventLoopDelay, its 10 ms timer interval subtracted)`,
  );
  console.log(
    `memory per call: RSS ${fmt(r.rssPerCallKb, 1)} KB, heapUsed ${fmt(r.heapPerCallKb, 1)} KB, ` +
      `heapTotal ${fmt(r.heapTotalPerCallKb, 1)} KB, external ${fmt(r.externalPerCallKb, 1)} KB ` +
      `(RSS ${fmt(r.rssBaselineMb, 1)} MB → ${fmt(r.rssLoadedMb, 1)} MB after GC; target ≤ 256 KB)`,
  );
  console.log(
    `caller → AI: generator sent ${l.generatorSent}, voxgate received ${l.voxgateReceived} ` +
      `(${l.generatorSent - l.voxgateReceived} lost on loopback/socket), real frames to AI ${l.voxgateReceived - l.lostInsideRx} ` +
      `→ lost inside voxgate ${l.lostInsideRx}; jitter late ${l.jitterLate}, discarded ${l.jitterDiscarded}, overflow ${l.jitterOverflow}; ` +
      `concealed frames ${l.concealedToAi} (${l.concealedInWindow} in the window; the rest is the end-of-stream tail, 3 per call)`,
  );
  const w = l.window;
  console.log(
    `caller → AI in the steady window only: ${w.received} packets in, ${w.frames} real frames to the AI; ` +
      `dropped by the jitter buffer ${fmt(windowLossPercent(r), 2)} % (late ${w.late}, discarded ${w.discarded}, ` +
      `overflow ${w.overflow}); concealed ${l.concealedInWindow}`,
  );
  console.log(
    `AI → caller: echo emitted ${l.aiAudioFrames} frames, voxgate sent ${l.audioFramesSent} audio packets → ` +
      `lost inside voxgate ${l.lostInsideTx} (overflow ${l.outboundOverflowBytes} B, skipped slots ${l.skippedFrames}); ` +
      `voxgate sent ${l.voxgateSent} packets in all, generator received ${l.generatorReceived} ` +
      `(${l.generatorReceivedAudio} carrying echo audio, ${l.seqGapsAtGenerator} sequence gaps; ` +
      `${l.ignoredAtGenerator} RTCP/other datagrams ignored)`,
  );
}

function summaryRow(r: CapacityResult): string[] {
  const ms = (us: number): string => fmt(us / 1000, 3);
  return [
    String(r.calls),
    ms(r.intervals.p50Us),
    ms(r.intervals.p99Us),
    ms(r.intervals.maxUs),
    ms(r.tickIntervals.p99Us),
    ms(r.floorIntervals.p99Us),
    fmt(r.cpuPercent, 1),
    fmt(r.cpuPercentPerCall, 3),
    fmt(r.cpuUsPerPacket, 1),
    fmt(r.eventLoopDelayP99Ms, 1),
    fmt(r.rssPerCallKb, 1),
    fmt(r.heapPerCallKb, 1),
    fmt(windowLossPercent(r), 2),
    String(r.losses.lostInsideTx),
    fmt(r.generator.generatorEldP99Ms, 1),
    fmt(r.machineBusyPercent, 0),
  ];
}

export const CAPACITY_HEADER = [
  'calls',
  'p50 err ms',
  'p99 err ms',
  'max err ms',
  'tick p99 ms',
  'idle p99 ms',
  'CPU %core',
  '%/call',
  'µs/pkt',
  'ELD p99 ms',
  'RSS KB/call',
  'heap KB/call',
  'rx lost %',
  'lost tx',
  'gen ELD p99',
  'box busy %',
];

export function printCapacitySummary(results: readonly CapacityResult[]): void {
  printTable([CAPACITY_HEADER, ...results.map(summaryRow)]);
  // Marginal memory: slope between consecutive N (fixed per-process costs cancel out).
  const sorted = [...results].sort((a, b) => a.calls - b.calls);
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1]!;
    const b = sorted[i]!;
    console.log(
      `marginal RSS per call ${a.calls} → ${b.calls}: ` +
        `${fmt(((b.rssLoadedMb - a.rssLoadedMb) * 1024) / (b.calls - a.calls), 1)} KB`,
    );
  }
  const crossed = results.find((r) => r.intervals.p99Us > P99_THRESHOLD_US);
  const held = results.filter((r) => r.intervals.p99Us <= P99_THRESHOLD_US).map((r) => r.calls);
  console.log(
    crossed === undefined
      ? `p99 send-interval error stayed ≤ 2 ms up to ${Math.max(...results.map((r) => r.calls))} calls`
      : `p99 send-interval error first above 2 ms at ${crossed.calls} calls` +
          (held.length > 0 ? ` (≤ 2 ms at ${held.join(', ')})` : ''),
  );
}

/** Runs one N in a fresh child process (clean heap, clean RSS baseline) and returns its result. */
export function runCapacityChild(calls: number, extraArgs: readonly string[] = []): Promise<CapacityResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [...process.execArgv, SELF, '--calls', String(calls), ...extraArgs],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      const text = chunk.toString();
      out += text;
      process.stdout.write(
        text
          .split('\n')
          .filter((line) => !line.startsWith(RESULT_PREFIX))
          .join('\n'),
      );
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const line = out.split('\n').find((l) => l.startsWith(RESULT_PREFIX));
      if (code !== 0 || line === undefined) {
        reject(new Error(`capacity run for ${calls} calls failed (exit ${code})`));
        return;
      }
      const parsed = JSON.parse(line.slice(RESULT_PREFIX.length)) as { result: CapacityResult[] };
      resolve(parsed.result[0]!);
    });
  });
}

async function main(): Promise<void> {
  const durationS = argNumber('duration', 30);
  const warmupS = argNumber('warmup', 5);
  const echoDelayMs = argNumber('echo-delay', 400);
  const pin = !argFlag('no-pin') && hasTaskset();
  const sweep = argValue('sweep');
  /** Before each N of a sweep, wait up to this long for other load on the machine to calm down. */
  const quietWaitS = argNumber('quiet-wait', 120);
  const passThrough = [
    '--duration',
    String(durationS),
    '--warmup',
    String(warmupS),
    '--echo-delay',
    String(echoDelayMs),
  ];
  if (!pin) passThrough.push('--no-pin');

  if (sweep !== undefined) {
    console.log(`capacity sweep: ${machineLine()}`);
    const results: CapacityResult[] = [];
    for (const n of sweep.split(',').map(Number)) {
      if (!Number.isInteger(n) || n <= 0) throw new RangeError(`--sweep: bad call count ${n}`);
      if (quietWaitS > 0) {
        const q = await waitForQuiet(quietWaitS * 1000);
        console.log(
          q.quiet
            ? `machine quiet before ${n} calls (${fmt(q.busy, 0)} % busy)`
            : `machine still ${fmt(q.busy, 0)} % busy after waiting ${quietWaitS} s; measuring ${n} calls anyway`,
        );
      }
      results.push(await runCapacityChild(n, passThrough));
    }
    console.log('\ncapacity summary (send-interval error = |interval − 20 ms| at the receiver)');
    printCapacitySummary(results);
    printResult('capacity', results);
    return;
  }

  const calls = argNumber('calls', 500);
  if (!Number.isInteger(calls) || calls < 1) throw new RangeError('--calls must be a positive integer');
  console.log(`capacity: ${machineLine()}`);
  console.log(
    `${calls} calls, ${warmupS} s warm-up + ${durationS} s steady state, echo delay ${echoDelayMs} ms, ` +
      `${pin ? 'taskset: voxgate core 0, generator core 1' : 'no CPU pinning (taskset missing or --no-pin)'}`,
  );
  const watchdog = setTimeout(
    () => {
      console.error('capacity: watchdog expired, aborting');
      process.exit(3);
    },
    (warmupS + durationS) * 1000 + echoDelayMs + WATCHDOG_MARGIN_MS,
  );
  watchdog.unref();
  const result = await measure(calls, durationS, warmupS, echoDelayMs, pin);
  report(result);
  printResult('capacity', [result]);
  process.exit(0);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
