// Small helpers shared by the bench/ scripts: machine line, argument parsing, percentiles, formatting.
// Not part of npm test; nothing here asserts anything.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { PerformanceObserver } from 'node:perf_hooks';

/** CPU model as /proc/cpuinfo names it (falls back to os.cpus()). */
export function cpuModel(): string {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('model name'));
    if (line !== undefined) return line.split(':')[1]!.trim();
  } catch {
    // not Linux
  }
  return os.cpus()[0]?.model ?? 'unknown cpu';
}

function osName(): string {
  try {
    const pretty = readFileSync('/etc/os-release', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('PRETTY_NAME='));
    if (pretty !== undefined) return `${pretty.slice(13).replace(/"/g, '')}, kernel ${os.release()}`;
  } catch {
    // not Linux
  }
  return `${os.type()} ${os.release()}`;
}

/** One line naming the machine and the date, printed at the top of every benchmark (STYLE.md habit 12). */
export function machineLine(): string {
  return (
    `${cpuModel()}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ` +
    `${osName()}, node ${process.version}, load avg ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}, ` +
    `${new Date().toISOString()}`
  );
}

/** True if `taskset` (util-linux) can pin processes to cores here. */
export function hasTaskset(): boolean {
  try {
    execFileSync('taskset', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** `--name value` or `--name=value`; undefined when absent. */
export function argValue(name: string, argv: readonly string[] = process.argv.slice(2)): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === `--${name}`) return argv[i + 1];
    if (a.startsWith(`--${name}=`)) return a.slice(name.length + 3);
  }
  return undefined;
}

export function argFlag(name: string, argv: readonly string[] = process.argv.slice(2)): boolean {
  return argv.includes(`--${name}`);
}

export function argNumber(name: string, fallback: number): number {
  const raw = argValue(name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0)
    throw new RangeError(`--${name} must be a non-negative number, got ${raw}`);
  return n;
}

/** p-th percentile (0..100) of an already sorted array, nearest-rank. */
export function percentileSorted(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export function sortedCopy(values: ArrayLike<number>): Float64Array {
  return Float64Array.from(values).sort();
}

export function mean(values: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i]!;
  return values.length === 0 ? Number.NaN : sum / values.length;
}

export function fmt(value: number, digits = 2): string {
  return Number.isFinite(value) ? value.toFixed(digits) : '—';
}

/** Prints rows as a plain aligned table (first row = header). */
export function printTable(rows: readonly (readonly string[])[]): void {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  rows.forEach((row, r) => {
    console.log(
      row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  '),
    );
    if (r === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  });
}

/** Prefix of the single machine-readable line each benchmark prints last, read by bench/run.ts. */
export const RESULT_PREFIX = 'BENCH_RESULT ';

export function printResult(name: string, result: unknown): void {
  console.log(`${RESULT_PREFIX}${JSON.stringify({ name, result })}`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Machine-wide CPU counters (Linux): busy and total jiffies from /proc/stat, PSI "some" stall µs. */
export interface CpuSnapshot {
  busy: number;
  total: number;
  psiSomeUs: number;
  at: number;
}

export function cpuSnapshot(): CpuSnapshot | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'utf8')
      .split('\n')[0]!
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
    let psiSomeUs = Number.NaN;
    try {
      const m = /some .*total=(\d+)/.exec(readFileSync('/proc/pressure/cpu', 'utf8'));
      if (m) psiSomeUs = Number(m[1]);
    } catch {
      // no PSI in this kernel
    }
    return { busy: total - idle, total, psiSomeUs, at: Date.now() };
  } catch {
    return undefined;
  }
}

/**
 * How busy the whole machine was between two snapshots: all cores' busy %, and the share of time some
 * runnable task waited for a CPU (PSI). Both include the benchmark itself.
 */
export function machineLoad(
  a: CpuSnapshot | undefined,
  b: CpuSnapshot | undefined,
): { busyPercent: number; cpuPressurePercent: number } {
  if (a === undefined || b === undefined) return { busyPercent: Number.NaN, cpuPressurePercent: Number.NaN };
  return {
    busyPercent: ((b.busy - a.busy) / Math.max(1, b.total - a.total)) * 100,
    cpuPressurePercent: ((b.psiSomeUs - a.psiSomeUs) / Math.max(1, (b.at - a.at) * 1000)) * 100,
  };
}

/** Resolution of the event-loop delay monitors (ms). */
export const ELD_RESOLUTION_MS = 10;

/**
 * Event-loop delay in ms from a monitorEventLoopDelay histogram value (ns). Node records the whole
 * interval between its repeating timer's callbacks, i.e. the resolution plus the delay: subtract it.
 */
export function eldMs(valueNs: number): number {
  return Math.max(0, valueNs / 1e6 - ELD_RESOLUTION_MS);
}

/**
 * Waits (bounded) until the rest of the machine is quiet: all cores under `busyPercent` busy over a
 * 2 s sample. Returns the last sample's busy %. Shared machines make timing benchmarks noisy.
 */
export async function waitForQuiet(
  maxWaitMs: number,
  busyPercent = 25,
): Promise<{ quiet: boolean; busy: number }> {
  const deadline = Date.now() + maxWaitMs;
  let busy: number;
  for (;;) {
    const a = cpuSnapshot();
    await sleep(2_000);
    busy = machineLoad(a, cpuSnapshot()).busyPercent;
    if (!(busy >= busyPercent)) return { quiet: true, busy };
    if (Date.now() >= deadline) return { quiet: false, busy };
  }
}

export interface GcSummary {
  count: number;
  totalMs: number;
  maxMs: number;
}

/** Collects V8 garbage-collection pauses (PerformanceObserver 'gc') from `start()` on. */
export function gcTracker(): { start(): void; stop(): GcSummary } {
  let summary: GcSummary = { count: 0, totalMs: 0, maxMs: 0 };
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      summary.count++;
      summary.totalMs += entry.duration;
      summary.maxMs = Math.max(summary.maxMs, entry.duration);
    }
  });
  return {
    start(): void {
      summary = { count: 0, totalMs: 0, maxMs: 0 };
      observer.observe({ entryTypes: ['gc'] });
    },
    stop(): GcSummary {
      observer.disconnect();
      return summary;
    },
  };
}
