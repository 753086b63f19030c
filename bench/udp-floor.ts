// Platform floor: the same traffic as bench/capacity.ts, answered by the least a Node process can do.
// Each "call" is a bare UDP socket (bound by voxgate's PortPool) that keeps the caller's last payload
// and, on voxgate's shared MediaClock, sends one 172-byte RTP packet back per 20 ms. No jitter buffer,
// no PLC, no AI, no RTCP, no emitter. Whatever send-interval error and CPU this shows at N calls, the
// real media engine cannot beat in one Node event loop on the same machine.
//
// Run:   npx tsx bench/udp-floor.ts --calls 500     (5 s warm-up + 20 s window; --duration, --warmup,
//        --no-pin as in capacity.ts). Prints numbers; asserts nothing. Not part of npm test.
import { execFileSync } from 'node:child_process';
import type { Socket } from 'node:dgram';
import { fileURLToPath } from 'node:url';
import type { RecordableHistogram } from 'node:perf_hooks';
import { createHistogram, monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { monotonicClock } from '../src/core/clock.js';
import { MediaClock, type Paced } from '../src/media/media-clock.js';
import { PortPool, type PortLease } from '../src/media/port-pool.js';
import { RTP_FIXED_HEADER_BYTES } from '../src/media/rtp-header.js';
import { Generator } from './capacity-driver.js';
import type { GeneratorWindow } from './capacity-protocol.js';
import {
  ELD_RESOLUTION_MS,
  argFlag,
  argNumber,
  eldMs,
  fmt,
  gcTracker,
  type GcSummary,
  hasTaskset,
  machineLine,
  printResult,
  sleep,
} from './util.js';

const HOST = '127.0.0.1';
const PORT_MIN = 20_000;
const PORT_SPARE_PAIRS = 500;
const PAYLOAD_BYTES = 160;
/** dgram reads a send buffer asynchronously; rotate through a few so none is rewritten in flight. */
const SEND_RING = 4;

export interface UdpFloorResult {
  calls: number;
  durationS: number;
  pinned: boolean;
  intervals: GeneratorWindow['intervals'];
  /** |interval between two ticks of one call − 20 ms| inside this process (no generator latency), µs. */
  tickIntervals: { p50Us: number; p99Us: number; maxUs: number };
  cpuPercent: number;
  cpuUsPerPacket: number;
  eventLoopDelayP99Ms: number;
  eventLoopUtilization: number;
  gc: GcSummary;
  generatorEldP99Ms: number;
}

/** One bare call: latch to the caller, echo its latest payload once per 20 ms slot. */
class BareCall implements Paced {
  received = 0;
  sent = 0;
  readonly #socket: Socket;
  readonly #ring: Buffer[] = [];
  readonly #payload = Buffer.alloc(PAYLOAD_BYTES, 0xff);
  #ringIndex = 0;
  #seq = 0;
  #timestamp = 0;
  #port = 0;
  #address = HOST;
  #lastTick = 0;

  constructor(
    lease: PortLease,
    private readonly tickErrors: RecordableHistogram,
  ) {
    this.#socket = lease.socket;
    for (let i = 0; i < SEND_RING; i++) {
      const packet = Buffer.alloc(RTP_FIXED_HEADER_BYTES + PAYLOAD_BYTES);
      packet[0] = 0x80; // V=2, PT 0 (PCMU)
      packet.writeUInt32BE(0x5eed0000 + lease.port, 8);
      this.#ring.push(packet);
    }
    this.#socket.on('message', (message, rinfo) => {
      this.received++;
      this.#port = rinfo.port;
      this.#address = rinfo.address;
      if (message.length === RTP_FIXED_HEADER_BYTES + PAYLOAD_BYTES)
        message.copy(this.#payload, 0, RTP_FIXED_HEADER_BYTES);
    });
  }

  onTick(): void {
    const now = performance.now();
    if (this.#lastTick > 0)
      this.tickErrors.record(Math.round(Math.abs(now - this.#lastTick - 20) * 1000) + 1);
    this.#lastTick = now;
    if (this.#port === 0) return;
    const packet = this.#ring[this.#ringIndex]!;
    this.#ringIndex = (this.#ringIndex + 1) % SEND_RING;
    packet.writeUInt16BE(this.#seq, 2);
    packet.writeUInt32BE(this.#timestamp, 4);
    this.#payload.copy(packet, RTP_FIXED_HEADER_BYTES);
    this.#seq = (this.#seq + 1) & 0xffff;
    this.#timestamp = (this.#timestamp + PAYLOAD_BYTES) >>> 0;
    this.#socket.send(packet, this.#port, this.#address);
    this.sent++;
  }
}

async function measure(
  calls: number,
  durationS: number,
  warmupS: number,
  pin: boolean,
): Promise<UdpFloorResult> {
  if (pin) execFileSync('taskset', ['-a', '-cp', '0', String(process.pid)], { stdio: 'ignore' });
  const pool = new PortPool({
    bindAddress: HOST,
    min: PORT_MIN,
    max: PORT_MIN + 2 * (calls + PORT_SPARE_PAIRS),
  });
  const mediaClock = new MediaClock(monotonicClock);
  const generator = new Generator(pin);
  const leases: PortLease[] = [];
  for (let i = 0; i < calls; i++) leases.push(await pool.allocate());
  await generator.request({ type: 'init', voxgatePorts: leases.map((l) => l.port), host: HOST }, 'ready');
  const tickErrors = createHistogram();
  const list = leases.map((lease) => new BareCall(lease, tickErrors));
  for (const call of list) mediaClock.add(call);

  generator.send({ type: 'start' });
  await sleep(warmupS * 1000);
  const packetsAt = (): number => list.reduce((sum, c) => sum + c.received + c.sent, 0);
  const eld = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS });
  generator.send({ type: 'mark' });
  tickErrors.reset();
  eld.enable();
  const gcs = gcTracker();
  gcs.start();
  const packets0 = packetsAt();
  const elu0 = performance.eventLoopUtilization();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await sleep(durationS * 1000);
  const cpu = process.cpuUsage(cpu0);
  const elapsedMs = performance.now() - t0;
  const elu = performance.eventLoopUtilization(elu0).utilization;
  const packets = packetsAt() - packets0;
  const gc = gcs.stop();
  eld.disable();
  const { window } = await generator.request({ type: 'window' }, 'window');

  await generator.request({ type: 'stopSending' }, 'stopped');
  for (const call of list) mediaClock.remove(call);
  for (const lease of leases) lease.release();
  generator.exit();
  const cpuUs = cpu.user + cpu.system;
  return {
    calls,
    durationS: elapsedMs / 1000,
    pinned: pin,
    intervals: window.intervals,
    tickIntervals: {
      p50Us: tickErrors.percentile(50) - 1,
      p99Us: tickErrors.percentile(99) - 1,
      maxUs: tickErrors.max - 1,
    },
    cpuPercent: (cpuUs / (elapsedMs * 1000)) * 100,
    cpuUsPerPacket: cpuUs / packets,
    eventLoopDelayP99Ms: eldMs(eld.percentile(99)),
    eventLoopUtilization: elu,
    gc,
    generatorEldP99Ms: window.generatorEldP99Ms,
  };
}

async function main(): Promise<void> {
  const calls = argNumber('calls', 500);
  const durationS = argNumber('duration', 20);
  const warmupS = argNumber('warmup', 5);
  const pin = !argFlag('no-pin') && hasTaskset();
  console.log(`udp-floor: ${machineLine()}`);
  console.log(
    `${calls} bare UDP echo "calls" on the shared MediaClock, ${warmupS} s warm-up + ${durationS} s window, ` +
      `${pin ? 'voxgate core 0, generator core 1' : 'no CPU pinning'}`,
  );
  const r = await measure(calls, durationS, warmupS, pin);
  const ms = (us: number): string => fmt(us / 1000, 3);
  console.log(
    `send-interval error at the receiver: p50 ${ms(r.intervals.p50Us)} ms  p99 ${ms(r.intervals.p99Us)} ms  ` +
      `max ${ms(r.intervals.maxUs)} ms (${r.intervals.count} intervals)`,
  );
  console.log(
    `the same inside this process (interval between a call's ticks): p50 ${ms(r.tickIntervals.p50Us)} ms  ` +
      `p99 ${ms(r.tickIntervals.p99Us)} ms  max ${ms(r.tickIntervals.maxUs)} ms`,
  );
  console.log(
    `CPU: ${fmt(r.cpuPercent, 1)} % of one core, ${fmt(r.cpuUsPerPacket)} µs per packet (in + out); ` +
      `event-loop utilization ${fmt(r.eventLoopUtilization * 100, 1)} %, delay p99 ${fmt(r.eventLoopDelayP99Ms)} ms; ` +
      `GC ${r.gc.count} pauses, longest ${fmt(r.gc.maxMs, 1)} ms; generator ELD p99 ${fmt(r.generatorEldP99Ms)} ms`,
  );
  printResult('udp-floor', r);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
