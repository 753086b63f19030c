// Child processes for e2e tests: line-buffered output, bounded waits, bounded kills, and one registry
// so `afterAll(killAll)` frees everything a suite started.
//
// Each child runs in its own process group (detached), so kill() also reaches grandchildren; it is
// still tied to this test process by the registry and by an exit hook that SIGKILLs stragglers.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export type LineMatcher = RegExp | ((line: string) => boolean);
export type StreamName = 'stdout' | 'stderr';

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnManagedOptions {
  /** Label used in errors and verbose output. */
  name: string;
  /** Full environment of the child (not merged with process.env). Defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Grace between the first signal and SIGKILL in kill(); default KILL_GRACE_MS. */
  killGraceMs?: number;
}

export interface WaitForLineOptions {
  /** Which stream to search; default both. */
  stream?: StreamName | 'any';
  /** Only consider lines that arrive after this call (default false: earlier lines count too). */
  onlyNew?: boolean;
}

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number | undefined;
  readonly child: ChildProcess;
  readonly stdoutLines: readonly string[];
  readonly stderrLines: readonly string[];
  /** Settles once the process has exited and its output streams are drained. Never rejects. */
  readonly exited: Promise<ExitInfo>;
  /** Set once the process exited. */
  readonly exitInfo: ExitInfo | undefined;
  /** Error from spawn itself (e.g. ENOENT), if any. */
  readonly spawnError: Error | undefined;
  /** Subscribe to every complete output line; returns an unsubscribe function. */
  onLine(listener: (line: string, stream: StreamName) => void): () => void;
  /** Resolve with the first matching line; rejects on timeout or if the process exits first. */
  waitForLine(matcher: LineMatcher, timeoutMs: number, options?: WaitForLineOptions): Promise<string>;
  /** Send `signal` to the process group, SIGKILL after the grace period, wait (bounded) for exit. */
  kill(signal?: NodeJS.Signals, graceMs?: number): Promise<ExitInfo>;
  /** The last `count` output lines of both streams, for error messages. */
  tail(count?: number): string;
}

/** Default grace between SIGTERM/SIGINT and SIGKILL: long enough for a graceful Node/C++ shutdown. */
export const KILL_GRACE_MS = 5_000;
/** After SIGKILL the kernel reaps at once; this bound only guards against a wedged 'close' event. */
const POST_SIGKILL_WAIT_MS = 2_000;
/** Per-stream cap on retained lines so a chatty process cannot exhaust memory in a long test. */
const MAX_RETAINED_LINES = 200_000;
/** Lines shown in timeout/exit errors. */
const DEFAULT_TAIL_LINES = 40;

const registry = new Set<ManagedProcess>();
const verbose = process.env['E2E_VERBOSE'] === '1';
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort if a suite forgot killAll() or the runner is exiting: synchronous SIGKILL of groups.
  process.on('exit', () => {
    for (const proc of registry) {
      if (proc.exitInfo === undefined && proc.pid !== undefined) signalGroup(proc.pid, 'SIGKILL');
    }
  });
}

/** Signal the process group led by `pid`; fall back to the pid alone only while it is known alive. */
function signalGroup(pid: number, signal: NodeJS.Signals, leaderAlive = true): void {
  try {
    process.kill(-pid, signal);
  } catch {
    if (!leaderAlive) return;
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

function matches(matcher: LineMatcher, line: string): boolean {
  if (typeof matcher === 'function') return matcher(line);
  matcher.lastIndex = 0;
  return matcher.test(line);
}

export function spawnManaged(
  cmd: string,
  args: readonly string[],
  options: SpawnManagedOptions,
): ManagedProcess {
  installExitHook();
  const { name } = options;
  const graceDefault = options.killGraceMs ?? KILL_GRACE_MS;
  const child = spawn(cmd, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });

  const lines: Record<StreamName, string[]> = { stdout: [], stderr: [] };
  const interleaved: string[] = [];
  const listeners = new Set<(line: string, stream: StreamName) => void>();
  const exitWaiters = new Set<() => void>();
  let exitInfo: ExitInfo | undefined;
  let spawnError: Error | undefined;

  const pushLine = (stream: StreamName, raw: string): void => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const store = lines[stream];
    store.push(line);
    if (store.length > MAX_RETAINED_LINES) store.shift();
    interleaved.push(`[${stream}] ${line}`);
    if (interleaved.length > MAX_RETAINED_LINES) interleaved.shift();
    if (verbose) console.log(`[${name}:${stream}] ${line}`);
    for (const listener of listeners) {
      try {
        listener(line, stream);
      } catch (err) {
        console.error(`[${name}] line listener threw`, err);
      }
    }
  };

  const pending: Record<StreamName, string> = { stdout: '', stderr: '' };
  const attach = (stream: StreamName): Promise<void> =>
    new Promise((resolve) => {
      const readable = child[stream];
      if (!readable) {
        resolve();
        return;
      }
      readable.setEncoding('utf8');
      readable.on('data', (chunk: string) => {
        const parts = (pending[stream] + chunk).split('\n');
        pending[stream] = parts.pop() ?? '';
        for (const part of parts) pushLine(stream, part);
      });
      readable.on('close', () => {
        if (pending[stream] !== '') pushLine(stream, pending[stream]);
        pending[stream] = '';
        resolve();
      });
      readable.on('error', () => resolve());
    });
  const drained = Promise.all([attach('stdout'), attach('stderr')]);

  const exited = new Promise<ExitInfo>((resolve) => {
    const finish = (info: ExitInfo): void => {
      if (exitInfo !== undefined) return;
      exitInfo = info;
      for (const waiter of exitWaiters) waiter();
      resolve(info);
    };
    child.once('error', (err) => {
      spawnError = err;
      if (child.pid === undefined) finish({ code: null, signal: null });
    });
    child.once('exit', (code, signal) => {
      // Let buffered output arrive before announcing the exit, but never wait on it unboundedly
      // (a grandchild holding the pipe open would otherwise keep us waiting forever).
      void Promise.race([drained, delay(POST_SIGKILL_WAIT_MS)]).then(() => finish({ code, signal }));
    });
  });

  const tail = (count = DEFAULT_TAIL_LINES): string => interleaved.slice(-count).join('\n');

  const handle: ManagedProcess = {
    name,
    pid: child.pid,
    child,
    stdoutLines: lines.stdout,
    stderrLines: lines.stderr,
    exited,
    get exitInfo() {
      return exitInfo;
    },
    get spawnError() {
      return spawnError;
    },
    onLine(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    waitForLine(matcher, timeoutMs, waitOptions = {}) {
      const stream = waitOptions.stream ?? 'any';
      const wanted = (s: StreamName): boolean => stream === 'any' || stream === s;
      if (!waitOptions.onlyNew) {
        for (const s of ['stdout', 'stderr'] as const) {
          if (!wanted(s)) continue;
          const hit = lines[s].find((line) => matches(matcher, line));
          if (hit !== undefined) return Promise.resolve(hit);
        }
      }
      return new Promise<string>((resolve, reject) => {
        const cleanup = (): void => {
          clearTimeout(timer);
          listeners.delete(onLine);
          exitWaiters.delete(onExit);
        };
        const onLine = (line: string, s: StreamName): void => {
          if (wanted(s) && matches(matcher, line)) {
            cleanup();
            resolve(line);
          }
        };
        const onExit = (): void => {
          cleanup();
          reject(
            new Error(
              `${name}: exited (${JSON.stringify(exitInfo)}${spawnError ? `, ${spawnError.message}` : ''}) before a line matched ${String(matcher)}\n${tail()}`,
            ),
          );
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`${name}: no line matched ${String(matcher)} within ${timeoutMs} ms\n${tail()}`));
        }, timeoutMs);
        listeners.add(onLine);
        if (exitInfo !== undefined) onExit();
        else exitWaiters.add(onExit);
      });
    },
    async kill(signal = 'SIGTERM', graceMs = graceDefault) {
      if (exitInfo === undefined && child.pid !== undefined) {
        signalGroup(child.pid, signal);
        const first = await Promise.race([exited, delay(graceMs).then(() => undefined)]);
        if (first === undefined && exitInfo === undefined) {
          signalGroup(child.pid, 'SIGKILL');
          await Promise.race([exited, delay(POST_SIGKILL_WAIT_MS)]);
        }
      }
      // Sweep any group members that outlived the leader (no-op if the group is gone).
      if (child.pid !== undefined) signalGroup(child.pid, 'SIGKILL', false);
      registry.delete(handle);
      return exitInfo ?? { code: null, signal: 'SIGKILL' };
    },
    tail,
  };
  // Exited processes stay registered until kill()/killAll(), so stragglers in their group are swept too.
  registry.add(handle);
  return handle;
}

/** Kill every process started through spawnManaged that has not been killed yet. Never throws. */
export async function killAll(graceMs = KILL_GRACE_MS): Promise<void> {
  const all = [...registry];
  await Promise.all(all.map((proc) => proc.kill('SIGTERM', graceMs).catch(() => undefined)));
}

/** Processes currently tracked (started and not yet killed). */
export function trackedProcesses(): readonly ManagedProcess[] {
  return [...registry];
}

/** Repository root (test/helpers/../..). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Gitignored home of traces, captures and temp configs. */
export const ARTIFACTS_ROOT = path.join(REPO_ROOT, 'test', '.artifacts');

/** A fresh directory under test/.artifacts/ (kept after the run for post-mortems). */
export function artifactsDir(prefix: string): string {
  mkdirSync(ARTIFACTS_ROOT, { recursive: true });
  return mkdtempSync(path.join(ARTIFACTS_ROOT, `${prefix}-`));
}

/** Absolute path of `binary` on PATH, or undefined. */
export function findOnPath(binary: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, binary);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}
