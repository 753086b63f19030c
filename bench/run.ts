// All benchmarks in sequence, each in its own process (clean JIT and heap), then one summary table.
//
// Run: npm run bench                       (≈ 5 min: per-packet, resampler, jitter-compare 60 s,
//                                           capacity at 100, 250, 500 calls × 30 s)
//      npm run bench -- --sweep 100,250,500,750,1000 --duration 30 --seconds 60
//      npm run bench -- --quick             (short runs to check the scripts work; numbers are rough)
// Writes nothing to disk; prints numbers; asserts nothing. Not part of npm test.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { CapacityResult } from './capacity.js';
import type { JitterCompareResult } from './jitter-compare.js';
import type { PerPacketRow } from './per-packet.js';
import type { UdpFloorResult } from './udp-floor.js';
import { RESULT_PREFIX, argFlag, argValue, fmt, machineLine, printTable } from './util.js';

const here = (file: string): string => fileURLToPath(new URL(file, import.meta.url));

/** Runs a bench script in a child node (same tsx loader), streams its output, returns its result line. */
function runScript(file: string, args: readonly string[]): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, here(file), ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let buffered = '';
    let result: unknown;
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.startsWith(RESULT_PREFIX))
          result = (JSON.parse(line.slice(RESULT_PREFIX.length)) as { result: unknown }).result;
        else console.log(line);
      }
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (buffered !== '') console.log(buffered);
      if (code === 0) resolve(result);
      else reject(new Error(`${file} exited with ${code}`));
    });
  });
}

async function main(): Promise<void> {
  const quick = argFlag('quick');
  const sweep = argValue('sweep') ?? (quick ? '50,100' : '100,250,500');
  const duration = argValue('duration') ?? (quick ? '5' : '30');
  const floorCalls = sweep.split(',').at(-1) ?? '500';
  const seconds = argValue('seconds') ?? (quick ? '10' : '60');
  console.log(`voxgate benchmarks: ${machineLine()}\n`);

  const failures: string[] = [];
  const step = async <T>(title: string, file: string, args: string[]): Promise<T | undefined> => {
    console.log(`\n######## ${title} ########`);
    try {
      return (await runScript(file, args)) as T;
    } catch (error) {
      failures.push(`${title}: ${error instanceof Error ? error.message : String(error)}`);
      return undefined;
    }
  };

  const perPacket = await step<PerPacketRow[]>('per-packet cost', 'per-packet.ts', []);
  await step<undefined>('resampler', 'resampler.bench.ts', []);
  const jitter = await step<JitterCompareResult>('jitter buffer vs GStreamer', 'jitter-compare.ts', [
    '--seconds',
    seconds,
  ]);
  const capacity = await step<CapacityResult[]>('capacity', 'capacity.ts', [
    '--sweep',
    sweep,
    '--duration',
    duration,
  ]);

  const floor = await step<UdpFloorResult>('platform floor (bare UDP echo)', 'udp-floor.ts', [
    '--calls',
    floorCalls,
    '--duration',
    duration,
  ]);

  console.log(`\n######## summary ########\n${machineLine()}\n`);
  if (perPacket) {
    printTable([
      ['per-packet path', 'mean µs', 'p99 µs'],
      ...perPacket.map((r) => [r.path, fmt(r.meanUs), fmt(r.p99Us ?? Number.NaN)]),
    ]);
    console.log('');
  }
  if (jitter) {
    if (jitter.gstSkipped !== undefined) console.log(`SKIPPED GStreamer part: ${jitter.gstSkipped}`);
    printTable([
      [
        `jitter buffer (${jitter.trace.seconds} s ISSUE3 trace, seed ${jitter.trace.seed})`,
        'delay mean ms',
        'p99 ms',
        'late loss %',
      ],
      ...jitter.rows.map((r) => [
        r.name,
        fmt(r.delayMeanMs, 1),
        fmt(r.delayP99Ms, 1),
        fmt(r.lateLossPercent, 2),
      ]),
    ]);
    console.log('');
  }
  if (floor) {
    const ms = (us: number): string => fmt(us / 1000);
    console.log(
      `platform floor, ${floor.calls} bare UDP echo calls: send-interval error p99 ${ms(floor.intervals.p99Us)} ms ` +
        `at the receiver, ${ms(floor.tickIntervals.p99Us)} ms in-process; CPU ${fmt(floor.cpuPercent, 1)} % of a core\n`,
    );
  }
  if (capacity) {
    const { printCapacitySummary } = await import('./capacity.js');
    printCapacitySummary(capacity);
  }
  if (failures.length > 0) {
    console.log(`\nFAILED: ${failures.join('; ')}`);
    process.exit(1);
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
