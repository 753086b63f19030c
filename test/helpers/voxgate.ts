// voxgate as a child process (node --import tsx src/main.ts) with its pino JSON log lines collected.
import type { DrachtioServer } from './drachtio.js';
import { REPO_ROOT, spawnManaged, type ExitInfo, type ManagedProcess } from './processes.js';
import { freeTcpPort } from './ports.js';

/** A parsed pino line: an object with at least level/time/msg in practice; validated loosely. */
export type LogRecord = Readonly<Record<string, unknown>>;
export type LogPredicate = (record: LogRecord) => boolean;

/** tsx compiles src/ on first start; under load that plus connecting to drachtio can take several seconds. */
const VOXGATE_READY_TIMEOUT_MS = 20_000;
/** voxgate drains calls for SHUTDOWN_GRACE_MS (set short below) before exiting; then SIGKILL. */
const VOXGATE_STOP_GRACE_MS = 8_000;
/** Readiness contract with src/main.ts. */
export const READY_MSG = 'drachtio connected';

/**
 * Loopback-only defaults for every e2e run (the caller's env overrides them). They keep RTP on
 * 127.0.0.1 and shutdown short, and pin every value a developer's .env file would otherwise supply.
 */
export const VOXGATE_TEST_DEFAULTS: Readonly<Record<string, string>> = {
  DRACHTIO_HOST: '127.0.0.1',
  RTP_BIND_ADDRESS: '127.0.0.1',
  RTP_PUBLIC_ADDRESS: '127.0.0.1',
  SHUTDOWN_GRACE_MS: '1000',
  AI_PROVIDER: 'echo',
};

export interface StartVoxgateOptions {
  /** Wait for the "drachtio connected" log line (default true). */
  waitReady?: boolean;
  readyTimeoutMs?: number;
  /** Entry point relative to the repo root (default src/main.ts). */
  entry?: string;
}

export interface Voxgate {
  readonly process: ManagedProcess;
  /** Every stdout line that parsed as a JSON object, in arrival order. */
  readonly logs: readonly LogRecord[];
  /** Non-JSON stdout lines (e.g. a crash trace printed by Node). */
  readonly otherLines: readonly string[];
  /** Resolve with the first (already seen or future) record matching; rejects on timeout or exit. */
  waitForLog(predicate: LogPredicate, timeoutMs: number): Promise<LogRecord>;
  /** Records matching a predicate so far. */
  findLogs(predicate: LogPredicate): LogRecord[];
  /** SIGTERM, bounded wait, SIGKILL if needed. Idempotent. */
  stop(): Promise<ExitInfo>;
}

/** DRACHTIO_* variables pointing voxgate at a test drachtio-server. */
export function drachtioEnv(server: Pick<DrachtioServer, 'adminPort' | 'secret'>): Record<string, string> {
  return {
    DRACHTIO_HOST: '127.0.0.1',
    DRACHTIO_PORT: String(server.adminPort),
    DRACHTIO_SECRET: server.secret,
  };
}

/** Predicate: record whose `msg` equals (string) or matches (RegExp) the given message. */
export function byMsg(msg: string | RegExp): LogPredicate {
  return (record) => {
    const value = record['msg'];
    if (typeof value !== 'string') return false;
    return typeof msg === 'string' ? value === msg : msg.test(value);
  };
}

function parseLogLine(line: string): LogRecord | undefined {
  const trimmed = line.trim();
  if (!trimmed.startsWith('{')) return undefined;
  try {
    const value: unknown = JSON.parse(trimmed);
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as LogRecord;
  } catch {
    // not JSON
  }
  return undefined;
}

export async function startVoxgate(
  env: Record<string, string>,
  options: StartVoxgateOptions = {},
): Promise<Voxgate> {
  const childEnv: NodeJS.ProcessEnv = {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    HOME: process.env['HOME'] ?? REPO_ROOT,
    ...VOXGATE_TEST_DEFAULTS,
    // Each voxgate gets its own API port, so suites never collide on the default 8080.
    HTTP_PORT: String(await freeTcpPort()),
    ...env,
    LOG_LEVEL: 'debug',
  };
  const proc = spawnManaged(process.execPath, ['--import', 'tsx', options.entry ?? 'src/main.ts'], {
    name: 'voxgate',
    env: childEnv,
    cwd: REPO_ROOT,
    killGraceMs: VOXGATE_STOP_GRACE_MS,
  });

  const logs: LogRecord[] = [];
  const otherLines: string[] = [];
  const waiters = new Set<(record: LogRecord) => void>();
  proc.onLine((line, stream) => {
    if (stream !== 'stdout') return;
    const record = parseLogLine(line);
    if (!record) {
      otherLines.push(line);
      return;
    }
    logs.push(record);
    for (const waiter of waiters) waiter(record);
  });

  const describeTail = (): string => proc.tail();

  const waitForLog = (predicate: LogPredicate, timeoutMs: number): Promise<LogRecord> => {
    const seen = logs.find(predicate);
    if (seen) return Promise.resolve(seen);
    return new Promise<LogRecord>((resolve, reject) => {
      let settled = false;
      const finish = (): void => {
        settled = true;
        clearTimeout(timer);
        waiters.delete(onRecord);
      };
      const onRecord = (record: LogRecord): void => {
        if (!settled && predicate(record)) {
          finish();
          resolve(record);
        }
      };
      const timer = setTimeout(() => {
        if (settled) return;
        finish();
        reject(new Error(`voxgate: no matching log record within ${timeoutMs} ms\n${describeTail()}`));
      }, timeoutMs);
      waiters.add(onRecord);
      void proc.exited.then((exit) => {
        if (settled) return;
        finish();
        reject(
          new Error(
            `voxgate exited (${JSON.stringify(exit)}) before a matching log record\n${describeTail()}`,
          ),
        );
      });
    });
  };

  let stopping: Promise<ExitInfo> | undefined;
  const handle: Voxgate = {
    process: proc,
    logs,
    otherLines,
    waitForLog,
    findLogs: (predicate) => logs.filter(predicate),
    stop() {
      stopping ??= proc.kill('SIGTERM', VOXGATE_STOP_GRACE_MS);
      return stopping;
    },
  };

  if (options.waitReady ?? true) {
    try {
      await waitForLog(byMsg(READY_MSG), options.readyTimeoutMs ?? VOXGATE_READY_TIMEOUT_MS);
    } catch (err) {
      await handle.stop();
      throw err;
    }
  }
  return handle;
}
