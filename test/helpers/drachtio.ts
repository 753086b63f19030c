// drachtio-server for e2e tests: found via DRACHTIO_BIN or PATH, bound to 127.0.0.1 only, configured
// from a private temp config file (never /etc/drachtio.conf.xml), stopped with a bounded kill.
import { existsSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe } from 'vitest';
import { freeTcpPort, freeUdpPort, udpPortBound } from './ports.js';
import { artifactsDir, findOnPath, spawnManaged, type ManagedProcess } from './processes.js';

export const DRACHTIO_SKIP_LINE = 'SKIPPED: drachtio-server not found (set DRACHTIO_BIN)';

/** drachtio-server is listening within ~100 ms normally; a cold start under CPU load can take seconds. */
const DRACHTIO_START_TIMEOUT_MS = 15_000;
/** drachtio exits promptly on SIGTERM; beyond this it is wedged and gets SIGKILL. */
const DRACHTIO_STOP_GRACE_MS = 3_000;
/** Poll interval while waiting for the admin/SIP sockets. */
const READY_POLL_MS = 50;

export interface DrachtioOptions {
  sipPort?: number;
  adminPort?: number;
  secret?: string;
  bin?: string;
  loglevel?: 'notice' | 'error' | 'warning' | 'info' | 'debug';
  sofiaLoglevel?: number;
  /** Extra command-line arguments appended after the defaults. */
  extraArgs?: readonly string[];
}

export interface DrachtioServer {
  readonly bin: string;
  readonly sipPort: number;
  readonly adminPort: number;
  readonly secret: string;
  readonly host: '127.0.0.1';
  readonly args: readonly string[];
  readonly configFile: string;
  readonly process: ManagedProcess;
  stop(): Promise<void>;
}

/** DRACHTIO_BIN if set and present, else `drachtio` on PATH, else undefined. */
export function findDrachtio(): string | undefined {
  const fromEnv = process.env['DRACHTIO_BIN'];
  if (fromEnv) return existsSync(fromEnv) ? fromEnv : undefined;
  return findOnPath('drachtio');
}

let skipLinePrinted = false;

/** The drachtio binary, or undefined after printing the SKIPPED line (once per test file). */
export function requireDrachtio(): string | undefined {
  const bin = findDrachtio();
  if (!bin && !skipLinePrinted) {
    skipLinePrinted = true;
    console.log(DRACHTIO_SKIP_LINE);
  }
  return bin;
}

/**
 * A describe block that runs only when drachtio-server is available; otherwise prints the SKIPPED line
 * and registers the suite as skipped (so the report shows skips, never a silent pass).
 * `bin` is '' inside a skipped suite; its hooks and tests do not run then.
 */
export function describeE2E(name: string, fn: (ctx: { bin: string }) => void): void {
  const bin = requireDrachtio();
  describe.skipIf(bin === undefined)(name, () => fn({ bin: bin ?? '' }));
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function tcpAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

function configXml(sipPort: number, adminPort: number, secret: string): string {
  const esc = (s: string): string =>
    s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
  return `<drachtio>
  <admin port="${adminPort}" secret="${esc(secret)}">127.0.0.1</admin>
  <sip>
    <contacts>
      <contact>sip:127.0.0.1:${sipPort};transport=udp,tcp</contact>
    </contacts>
  </sip>
  <cdrs>false</cdrs>
  <logging>
    <console/>
    <loglevel>info</loglevel>
    <sofia-loglevel>0</sofia-loglevel>
  </logging>
</drachtio>
`;
}

/** Start drachtio-server on 127.0.0.1 and wait until its admin and SIP sockets are up. */
export async function startDrachtio(options: DrachtioOptions = {}): Promise<DrachtioServer> {
  const bin = options.bin ?? findDrachtio();
  if (!bin) throw new Error(DRACHTIO_SKIP_LINE);
  const sipPort = options.sipPort ?? (await freeUdpPort());
  const adminPort = options.adminPort ?? (await freeTcpPort());
  const secret = options.secret ?? `test-${Math.random().toString(36).slice(2, 10)}`;
  const dir = artifactsDir('drachtio');
  const configFile = path.join(dir, 'drachtio.conf.xml');
  writeFileSync(configFile, configXml(sipPort, adminPort, secret));
  // prettier-ignore
  const args = [
    '-f', configFile, // private config: never /etc/drachtio.conf.xml
    '--contact', `sip:127.0.0.1:${sipPort};transport=udp,tcp`,
    '--address', '127.0.0.1',
    '--port', String(adminPort),
    '--secret', secret,
    '--loglevel', options.loglevel ?? 'info',
    '--sofia-loglevel', String(options.sofiaLoglevel ?? 0),
    '--stdout',
    ...(options.extraArgs ?? []),
  ];
  // Only the variables drachtio needs: nothing from the developer's DRACHTIO_* environment leaks in.
  const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir };
  const proc = spawnManaged(bin, args, {
    name: `drachtio:${sipPort}`,
    env,
    cwd: dir,
    killGraceMs: DRACHTIO_STOP_GRACE_MS,
  });

  const deadline = Date.now() + DRACHTIO_START_TIMEOUT_MS;
  let adminUp = false;
  let sipUp = false;
  while (!(adminUp && sipUp)) {
    if (proc.exitInfo !== undefined) {
      throw new Error(`drachtio exited during startup (${JSON.stringify(proc.exitInfo)})\n${proc.tail()}`);
    }
    if (Date.now() > deadline) {
      await proc.kill('SIGKILL');
      throw new Error(
        `drachtio not ready within ${DRACHTIO_START_TIMEOUT_MS} ms (admin ${adminUp}, sip ${sipUp})\n${proc.tail()}`,
      );
    }
    adminUp ||= await tcpAccepts(adminPort);
    sipUp ||= await udpPortBound(sipPort);
    if (!(adminUp && sipUp)) await delay(READY_POLL_MS);
  }

  let stopping: Promise<void> | undefined;
  return {
    bin,
    sipPort,
    adminPort,
    secret,
    host: '127.0.0.1',
    args,
    configFile,
    process: proc,
    stop() {
      stopping ??= proc.kill('SIGTERM', DRACHTIO_STOP_GRACE_MS).then(() => undefined);
      return stopping;
    },
  };
}
