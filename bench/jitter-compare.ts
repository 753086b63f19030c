// Jitter buffer: voxgate's JitterBuffer vs GStreamer's rtpjitterbuffer on the same impaired trace.
//
// The trace: ≥ 60 s of 20 ms PCMU packets through test/helpers/impair-relay.ts's ISSUE3_PROFILE (5 %
// loss, 0–30 ms uniform jitter that reorders, 2 % duplication) with a fixed seed. A worker thread
// replays it over loopback UDP in real time to several gst-launch-1.0 pipelines at once
// (udpsrc ! rtpjitterbuffer latency=L ! udpsink back to this process), and records when each datagram
// actually left. voxgate's JitterBuffer is then fed exactly those departure times (push) and pulled on
// a 20 ms grid — as MediaSession does on the shared MediaClock — for every grid phase 0..19 ms, since a
// real call's tick phase relative to the caller's packets is arbitrary.
//
// Metrics per played frame: delay = playout time − original send time (includes the 0–30 ms network
// jitter), buffer delay = playout time − arrival time. Late loss = packets that arrived but were never
// played (dropped as late, or discarded) / packets that arrived (unique).
//
// Run: npx tsx bench/jitter-compare.ts [--seconds 60] [--seed 3]      Needs gst-launch-1.0 for (b).
// Prints numbers; asserts nothing. Not part of npm test.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { JitterBuffer } from '../src/media/jitter-buffer.js';
import { ISSUE3_PROFILE, impairSchedule } from '../test/helpers/impair-relay.js';
import {
  argNumber,
  fmt,
  machineLine,
  mean,
  percentileSorted,
  printResult,
  printTable,
  sleep,
  sortedCopy,
} from './util.js';

const FRAME_MS = 20;
const SAMPLES = 160;
const HOST = '127.0.0.1';
const SSRC = 0x2468ace0;
const SEQ_BASE = 61_000; // wraps during the trace: the wrap is part of the test
const TS_BASE = 4_294_000_000;
/** GStreamer latencies compared: the default and two tuned values (LiveKit's 60 ms max, and 40 ms). */
const GST_LATENCIES_MS = [200, 60, 40] as const;
/** Time for gst-launch to reach PLAYING before the replay starts. */
const GST_STARTUP_TIMEOUT_MS = 10_000;
const REPLAY_LEAD_MS = 500;
/** After the last packet: the largest latency plus a margin for the last buffers to come out. */
const TAIL_MS = 1_000;

export interface JitterRow {
  name: string;
  delayMeanMs: number;
  delayP50Ms: number;
  delayP95Ms: number;
  delayP99Ms: number;
  bufferDelayMeanMs: number;
  /** Arrived (unique) but never played / arrived (unique). */
  lateLossPercent: number;
  /** Never played / sent (network loss + late loss). */
  residualLossPercent: number;
  played: number;
  note: string;
}

interface Trace {
  count: number;
  /** Per packet index: its datagram (same bytes for every copy). */
  packets: Buffer[];
  /** Arrivals in send order: packet index and the planned time (ms after t0). */
  plan: { index: number; atMs: number }[];
  dropped: number;
  duplicated: number;
}

function buildTrace(seconds: number, seed: number): Trace {
  const count = Math.round((seconds * 1000) / FRAME_MS);
  const indices = Array.from({ length: count }, (_, i) => i);
  const schedule = impairSchedule(indices, ISSUE3_PROFILE, seed, { intervalMs: FRAME_MS });
  const packets = indices.map((i) => {
    const b = Buffer.alloc(12 + SAMPLES, 0xff);
    b[0] = 0x80;
    b[1] = i === 0 ? 0x80 : 0x00;
    b.writeUInt16BE((SEQ_BASE + i) & 0xffff, 2);
    b.writeUInt32BE((TS_BASE + i * SAMPLES) >>> 0, 4);
    b.writeUInt32BE(SSRC, 8);
    for (let k = 12; k < b.length; k++) b[k] = (i + k) & 0x7e; // some non-silent bytes
    return b;
  });
  return {
    count,
    packets,
    plan: schedule.arrivals.map((a) => ({ index: a.index, atMs: a.atMs })),
    dropped: schedule.dropped.length,
    duplicated: schedule.duplicated.length,
  };
}

// ---------------------------------------------------------------------------------------------------
// Replay (worker thread, so its timers never delay timestamping the outputs on the main thread)

const REPLAY_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const dgram = require('node:dgram');
const { plan, packets, ports, host, t0 } = workerData;
const socket = dgram.createSocket('udp4');
const sentAt = new Float64Array(plan.length);
const now = () => Number(process.hrtime.bigint() - BigInt(t0)) / 1e6;
let next = 0;
function step() {
  // Send everything due; a timer wakes us ~1 ms early and we yield-spin the last stretch.
  while (next < plan.length && plan[next].atMs <= now()) {
    const p = plan[next];
    const data = packets[p.index];
    sentAt[next] = now();
    for (const port of ports) socket.send(data, port, host);
    next++;
  }
  if (next >= plan.length) {
    setTimeout(() => { socket.close(); parentPort.postMessage(sentAt); }, 50);
    return;
  }
  const wait = plan[next].atMs - now();
  if (wait > 2) setTimeout(step, wait - 1.5);
  else setImmediate(step);
}
socket.bind(0, host, step);
`;

function replay(trace: Trace, ports: number[], t0: bigint): Promise<Float64Array> {
  const worker = new Worker(REPLAY_WORKER, {
    eval: true,
    workerData: {
      plan: trace.plan,
      packets: trace.packets.map((b) => new Uint8Array(b)),
      ports,
      host: HOST,
      t0: t0.toString(),
    },
  });
  return new Promise((resolve, reject) => {
    worker.once('message', (sentAt: Float64Array) => {
      void worker.terminate();
      resolve(sentAt);
    });
    worker.once('error', reject);
  });
}

// ---------------------------------------------------------------------------------------------------
// (a) voxgate

function simulateVoxgate(trace: Trace, arrivalsMs: Float64Array, phaseMs: number) {
  const jb = new JitterBuffer();
  const order = trace.plan
    .map((p, k) => ({ index: p.index, at: arrivalsMs[k]! }))
    .sort((a, b) => a.at - b.at);
  const playedAt = new Float64Array(trace.count).fill(Number.NaN);
  const end = (trace.count - 1) * FRAME_MS + 1_000;
  let k = 0;
  let concealed = 0;
  for (let pull = phaseMs; pull <= end; pull += FRAME_MS) {
    while (k < order.length && order[k]!.at <= pull) {
      const { index, at } = order[k++]!;
      const b = trace.packets[index]!;
      jb.push(
        {
          seq: b.readUInt16BE(2),
          timestamp: b.readUInt32BE(4),
          ssrc: SSRC,
          marker: (b[1]! & 0x80) !== 0,
          payload: b.subarray(12),
        },
        at,
      );
    }
    const out = jb.pull(pull);
    if (out.kind === 'audio') {
      const index = (out.seq - SEQ_BASE) & 0xffff;
      if (index < trace.count) playedAt[index] = pull;
    } else if (out.kind === 'lost') concealed++;
  }
  return { playedAt, stats: { ...jb.stats }, concealed };
}

// ---------------------------------------------------------------------------------------------------
// (b) GStreamer

interface GstRun {
  latencyMs: number;
  sync: boolean;
  inPort: number;
  outSocket: dgram.Socket;
  outAt: Float64Array;
  outputs: number;
  process: ChildProcess;
  stderr: string;
}

function gstAvailable(): string | undefined {
  try {
    execFileSync('gst-launch-1.0', ['--version'], { stdio: 'ignore' });
    execFileSync('gst-inspect-1.0', ['rtpjitterbuffer'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'gst-launch-1.0 or the rtpjitterbuffer element (gstreamer1.0-plugins-good) is not installed';
  }
}

async function freePort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, HOST, r));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(r));
  return port;
}

async function portBound(port: number): Promise<boolean> {
  const s = dgram.createSocket('udp4');
  return new Promise((resolve) => {
    s.once('error', () => {
      s.close();
      resolve(true);
    });
    s.bind({ port, address: HOST, exclusive: true }, () => s.close(() => resolve(false)));
  });
}

async function startGst(latencyMs: number, sync: boolean, count: number, t0: () => bigint): Promise<GstRun> {
  const outSocket = dgram.createSocket({ type: 'udp4', recvBufferSize: 1 << 20 });
  await new Promise<void>((r) => outSocket.bind(0, HOST, r));
  const inPort = await freePort();
  const caps = 'application/x-rtp,media=audio,clock-rate=8000,encoding-name=PCMU,payload=0';
  const args = [
    '-q',
    'udpsrc',
    `address=${HOST}`,
    `port=${inPort}`,
    `caps=${caps}`,
    '!',
    'rtpjitterbuffer',
    `latency=${latencyMs}`,
    '!',
    'udpsink',
    `host=${HOST}`,
    `port=${outSocket.address().port}`,
    `sync=${sync}`,
    'async=false',
  ];
  const child = spawn('gst-launch-1.0', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const run: GstRun = {
    latencyMs,
    sync,
    inPort,
    outSocket,
    outAt: new Float64Array(count).fill(Number.NaN),
    outputs: 0,
    process: child,
    stderr: '',
  };
  child.stderr?.on('data', (d: Buffer) => (run.stderr += d.toString()));
  outSocket.on('message', (data) => {
    const at = Number(process.hrtime.bigint() - t0()) / 1e6;
    run.outputs++;
    if (data.length < 12) return;
    const index = (data.readUInt16BE(2) - SEQ_BASE) & 0xffff;
    if (index < count && Number.isNaN(run.outAt[index]!)) run.outAt[index] = at;
  });
  const deadline = Date.now() + GST_STARTUP_TIMEOUT_MS;
  while (!(await portBound(inPort))) {
    if (Date.now() > deadline || child.exitCode !== null)
      throw new Error(`gst-launch-1.0 did not start (${run.stderr.trim() || `exit ${child.exitCode}`})`);
    await sleep(50);
  }
  return run;
}

function stopGst(run: GstRun): Promise<void> {
  run.outSocket.close();
  if (run.process.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => run.process.kill('SIGKILL'), 2_000);
    run.process.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    run.process.kill('SIGINT');
  });
}

// ---------------------------------------------------------------------------------------------------

function summarize(
  name: string,
  trace: Trace,
  firstArrival: Float64Array,
  playedAt: Float64Array,
  note: string,
): JitterRow {
  const delays: number[] = [];
  const bufferDelays: number[] = [];
  let arrived = 0;
  let arrivedNotPlayed = 0;
  let played = 0;
  for (let i = 0; i < trace.count; i++) {
    const a = firstArrival[i]!;
    const p = playedAt[i]!;
    if (!Number.isNaN(a)) {
      arrived++;
      if (Number.isNaN(p)) arrivedNotPlayed++;
    }
    if (!Number.isNaN(p)) {
      played++;
      delays.push(p - i * FRAME_MS);
      bufferDelays.push(p - a);
    }
  }
  const sorted = sortedCopy(delays);
  return {
    name,
    delayMeanMs: mean(delays),
    delayP50Ms: percentileSorted(sorted, 50),
    delayP95Ms: percentileSorted(sorted, 95),
    delayP99Ms: percentileSorted(sorted, 99),
    bufferDelayMeanMs: mean(bufferDelays),
    lateLossPercent: (arrivedNotPlayed / arrived) * 100,
    residualLossPercent: ((trace.count - played) / trace.count) * 100,
    played,
    note,
  };
}

/** Averages rows (voxgate over tick phases). */
function averageRows(name: string, rows: JitterRow[], note: string): JitterRow {
  const avg = (f: (r: JitterRow) => number): number => mean(rows.map(f));
  return {
    name,
    delayMeanMs: avg((r) => r.delayMeanMs),
    delayP50Ms: avg((r) => r.delayP50Ms),
    delayP95Ms: avg((r) => r.delayP95Ms),
    delayP99Ms: avg((r) => r.delayP99Ms),
    bufferDelayMeanMs: avg((r) => r.bufferDelayMeanMs),
    lateLossPercent: avg((r) => r.lateLossPercent),
    residualLossPercent: avg((r) => r.residualLossPercent),
    played: Math.round(avg((r) => r.played)),
    note,
  };
}

export interface JitterCompareResult {
  trace: {
    seconds: number;
    seed: number;
    packets: number;
    dropped: number;
    duplicated: number;
    replayErrorP99Ms: number;
  };
  rows: JitterRow[];
  gstSkipped: string | undefined;
}

export async function runJitterCompare(seconds = 60, seed = 3): Promise<JitterCompareResult> {
  console.log(`jitter-compare: ${machineLine()}`);
  const trace = buildTrace(seconds, seed);
  console.log(
    `trace: ${trace.count} packets (${seconds} s of 20 ms PCMU), ISSUE3_PROFILE (5 % loss, 0–30 ms jitter, ` +
      `2 % duplication), seed ${seed}: ${trace.dropped} dropped, ${trace.duplicated} duplicated`,
  );

  const gstProblem = gstAvailable();
  let t0 = process.hrtime.bigint();
  const runs: GstRun[] = [];
  let gstSkipped = gstProblem;
  if (gstProblem === undefined) {
    try {
      for (const sync of [false, true])
        for (const latency of GST_LATENCIES_MS)
          runs.push(await startGst(latency, sync, trace.count, () => t0));
    } catch (error) {
      gstSkipped = error instanceof Error ? error.message : String(error);
      await Promise.all(runs.map(stopGst));
      runs.length = 0;
    }
  }
  if (gstSkipped !== undefined) console.log(`SKIPPED GStreamer comparison: ${gstSkipped}`);

  // Replay in real time (also without GStreamer, so voxgate sees real departure times either way).
  t0 = process.hrtime.bigint() + BigInt(REPLAY_LEAD_MS * 1e6);
  const ports = runs.length > 0 ? runs.map((r) => r.inPort) : [await freePort()];
  console.log(`replaying in real time to ${runs.length} GStreamer pipeline(s)… (~${seconds + 2} s)`);
  const sentAt = await replay(trace, ports, t0);
  await sleep(TAIL_MS);
  await Promise.all(runs.map(stopGst));

  const replayErrors = sortedCopy(trace.plan.map((p, k) => Math.abs(sentAt[k]! - p.atMs)));
  const firstArrival = new Float64Array(trace.count).fill(Number.NaN);
  trace.plan.forEach((p, k) => {
    if (Number.isNaN(firstArrival[p.index]!)) firstArrival[p.index] = sentAt[k]!;
  });

  const rows: JitterRow[] = [];
  const phaseRows: JitterRow[] = [];
  let late = 0;
  let discarded = 0;
  let concealed = 0;
  let target = 0;
  for (let phase = 0; phase < FRAME_MS; phase++) {
    const sim = simulateVoxgate(trace, sentAt, phase);
    phaseRows.push(summarize(`phase ${phase}`, trace, firstArrival, sim.playedAt, ''));
    late += sim.stats.late;
    discarded += sim.stats.discarded;
    concealed += sim.concealed;
    target += sim.stats.targetDelayMs;
  }
  const best = phaseRows.reduce((a, b) => (b.delayMeanMs < a.delayMeanMs ? b : a));
  const worst = phaseRows.reduce((a, b) => (b.delayMeanMs > a.delayMeanMs ? b : a));
  rows.push(
    averageRows(
      'voxgate JitterBuffer (adaptive, 20–120 ms)',
      phaseRows,
      `mean of 20 tick phases (mean delay ${fmt(best.delayMeanMs, 1)}–${fmt(worst.delayMeanMs, 1)} ms); per run: ` +
        `target delay at the end ${fmt(target / FRAME_MS, 1)} ms, late ${fmt(late / FRAME_MS, 1)}, discarded ${fmt(discarded / FRAME_MS, 1)}, concealed ${fmt(concealed / FRAME_MS, 1)}`,
    ),
  );
  // The same on the planned (ideal) departure times: deterministic for a given seed, so it is the
  // number to compare across machines and code changes.
  const planned = Float64Array.from(trace.plan.map((p) => p.atMs));
  const plannedFirst = new Float64Array(trace.count).fill(Number.NaN);
  trace.plan.forEach((p) => {
    if (Number.isNaN(plannedFirst[p.index]!)) plannedFirst[p.index] = p.atMs;
  });
  const plannedRows: JitterRow[] = [];
  for (let phase = 0; phase < FRAME_MS; phase++)
    plannedRows.push(summarize('', trace, plannedFirst, simulateVoxgate(trace, planned, phase).playedAt, ''));
  rows.push(
    averageRows(
      'voxgate JitterBuffer, planned trace (deterministic)',
      plannedRows,
      'the same, fed the planned departure times instead of the measured ones',
    ),
  );
  for (const run of runs)
    rows.push(
      summarize(
        `GStreamer rtpjitterbuffer latency=${run.latencyMs}${run.latencyMs === 200 ? ' (default)' : ''}, ${run.sync ? 'sync=true' : 'sync=false'}`,
        trace,
        firstArrival,
        run.outAt,
        `${run.outputs} datagrams out`,
      ),
    );

  console.log(
    `replay accuracy: |actual − planned departure| p50 ${fmt(percentileSorted(replayErrors, 50), 3)} ms, ` +
      `p99 ${fmt(percentileSorted(replayErrors, 99), 3)} ms (voxgate is fed the actual departures)\n`,
  );
  printTable([
    ['buffer', 'delay mean', 'p50', 'p95', 'p99', 'in-buffer mean', 'late loss %', 'residual loss %'],
    ...rows.map((r) => [
      r.name,
      fmt(r.delayMeanMs, 1),
      fmt(r.delayP50Ms, 1),
      fmt(r.delayP95Ms, 1),
      fmt(r.delayP99Ms, 1),
      fmt(r.bufferDelayMeanMs, 1),
      fmt(r.lateLossPercent, 2),
      fmt(r.residualLossPercent, 2),
    ]),
  ]);
  console.log(
    '(all delays in ms; delay = playout − original send time, includes the 0–30 ms network jitter)',
  );
  for (const r of rows) if (r.note !== '') console.log(`  ${r.name}: ${r.note}`);
  const vox = rows[0]!;
  for (const r of rows.filter((row) => row.name.startsWith('GStreamer')))
    console.log(
      `  ratio voxgate / ${r.name}: mean delay ${fmt(vox.delayMeanMs / r.delayMeanMs, 2)}, ` +
        `late loss ${fmt(vox.lateLossPercent, 2)} % vs ${fmt(r.lateLossPercent, 2)} %`,
    );
  return {
    trace: {
      seconds,
      seed,
      packets: trace.count,
      dropped: trace.dropped,
      duplicated: trace.duplicated,
      replayErrorP99Ms: percentileSorted(replayErrors, 99),
    },
    rows,
    gstSkipped,
  };
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  runJitterCompare(argNumber('seconds', 60), argNumber('seed', 3))
    .then((result) => {
      printResult('jitter-compare', result);
      process.exit(0);
    })
    .catch((error: unknown) => {
      console.error(error);
      process.exit(1);
    });
}
