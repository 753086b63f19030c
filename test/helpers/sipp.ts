// SIPp (3.6.1) as a UAC (or, with runSippUas, a UAS) for e2e tests: one call, loopback only, traces into test/.artifacts/.
//
// SIPp quirks this helper hides:
// - `-key k v` values are substituted while the scenario is parsed (at `-sf`), so every -key must come
//   BEFORE -sf; `-set k v` needs the variable declared by `<Global variables="k"/>` in the scenario,
//   so every -set must come AFTER -sf. `[k]` reads a key, `[$k]` a variable.
// - Attributes such as play_pcap_audio accept only a key (`"[pcap]"`), never a `[$var]`.
// - `<pause>` cannot read a string variable: scenarios convert with `<todouble>` and use
//   `<pause variable="...">`.
// - SIPp binds its media sockets on -mp AND -mp+2, and a UDP control socket (default 0.0.0.0:8888):
//   we pin it to 127.0.0.1 with -ci/-cp.
// - A message that matches an optional <recv> but arrives during a <pause> stalls the call for good;
//   scenarios that expect that (uac-cancel) ask for -pause_msg_ign with a `<!-- sipp-args: ... -->`
//   comment, which runSipp() honours.
// - play_pcap_audio sends over a raw socket (root or CAP_NET_RAW) from [media_ip]:[media_port] (= -mp)
//   to the c=/m=audio address of the last SDP received; ports are rebased on the lowest destination
//   port found in the pcap.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { freeEvenUdpPortRange, freeUdpPort, udpPortBound } from './ports.js';
import { REPO_ROOT, artifactsDir, findOnPath, spawnManaged } from './processes.js';

export const SCENARIO_DIR = path.join(REPO_ROOT, 'test', 'e2e', 'scenarios');

/** SIPp itself exits on -timeout; this is extra time for it to write traces before we SIGKILL it. */
const SIPP_EXIT_SLACK_MS = 5_000;
/** SIPp handles SIGTERM/SIGINT by finishing quickly; after this it gets SIGKILL. */
const SIPP_KILL_GRACE_MS = 2_000;
/** Default bound for one scenario run. */
const DEFAULT_SIPP_TIMEOUT_MS = 30_000;
/** How often sippListening() probes the UAS's SIP port. */
const LISTEN_POLL_MS = 25;

export interface RunSippOptions {
  /** Scenario file: absolute, or a name in test/e2e/scenarios/ (".xml" optional). */
  scenario: string;
  /** '127.0.0.1:<drachtio SIP port>'. */
  target: string;
  /** SIP UDP port for SIPp (default: a free one). */
  localPort?: number;
  /** RTP port for SIPp, even; SIPp also binds +2 (default: a free even range of 4). */
  mediaPort?: number;
  /** Scenario variables, passed as `-set k v` (declared in the scenario with <Global>). */
  vars?: Record<string, string>;
  /** Parse-time keywords, passed as `-key k v` (e.g. pcap: absolute path). */
  keys?: Record<string, string>;
  /** Request-URI user ([service]); default 'voxgate'. */
  service?: string;
  /** Overall bound; becomes SIPp's -timeout (rounded up to seconds) plus a kill bound. */
  timeoutMs?: number;
  extraArgs?: readonly string[];
}

export interface SippResult {
  /** SIPp exit code: 0 = all calls succeeded, 1 = a call failed, 97/99/255/254 = see SIPp docs. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The -trace_msg log: every SIP message sent and received. */
  messages: string;
  /** The -trace_err log: unexpected messages and errors ('' when none). */
  errors: string;
  /** SIPp's own stdout/stderr (final statistics screen, warnings). */
  output: string;
  /** Directory holding the traces (under test/.artifacts/). */
  dir: string;
  localPort: number;
  mediaPort: number;
  args: readonly string[];
}

export function findSipp(): string | undefined {
  const fromEnv = process.env['SIPP_BIN'];
  if (fromEnv) return existsSync(fromEnv) ? fromEnv : undefined;
  return findOnPath('sipp');
}

export function resolveScenario(scenario: string): string {
  if (path.isAbsolute(scenario)) return scenario;
  const name = scenario.endsWith('.xml') ? scenario : `${scenario}.xml`;
  return path.join(SCENARIO_DIR, name);
}

/** Extra SIPp flags a scenario asks for in a `<!-- sipp-args: -flag ... -->` comment. */
export function scenarioDeclaredArgs(xml: string): string[] {
  const args: string[] = [];
  for (const match of xml.matchAll(/<!--\s*sipp-args:([^]*?)-->/g)) {
    args.push(...(match[1] ?? '').trim().split(/\s+/).filter(Boolean));
  }
  return args;
}

function readIfExists(file: string): string {
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}

/** Run one SIPp UAC call and collect its traces. Resolves (never rejects) once SIPp has exited. */
export async function runSipp(options: RunSippOptions): Promise<SippResult> {
  if (!/^127\.0\.0\.1:\d+$/.test(options.target)) {
    throw new Error(`runSipp: target must be 127.0.0.1:<port> (loopback only), got ${options.target}`);
  }
  return spawnSipp(options, [options.target]);
}

export interface RunSippUasOptions extends Omit<RunSippOptions, 'target' | 'service' | 'localPort'> {
  /** SIP UDP port the UAS listens on (what voxgate's trunk URI points at). */
  localPort: number;
}

/**
 * Run one SIPp UAS call (a scenario that starts with `<recv>`): no remote host, it answers where Via
 * says. Resolves (never rejects) once SIPp has exited; wait for {@link sippListening} before sending
 * it anything, or the first request meets ICMP port unreachable.
 */
export function runSippUas(options: RunSippUasOptions): Promise<SippResult> {
  return spawnSipp(options, []);
}

/** Resolves once something holds UDP `port` on 127.0.0.1 (SIPp has bound it); rejects after `timeoutMs`. */
export async function sippListening(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await udpPortBound(port))) {
    if (Date.now() > deadline) throw new Error(`sipp: nothing bound UDP ${port} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, LISTEN_POLL_MS));
  }
}

async function spawnSipp(
  options: Omit<RunSippOptions, 'target'>,
  target: readonly string[],
): Promise<SippResult> {
  const bin = findSipp();
  if (!bin) throw new Error('runSipp: sipp not found (apt-get install -y sip-tester, or set SIPP_BIN)');
  const scenarioFile = resolveScenario(options.scenario);
  if (!existsSync(scenarioFile)) throw new Error(`runSipp: no scenario at ${scenarioFile}`);
  const localPort = options.localPort ?? (await freeUdpPort());
  const mediaPort = options.mediaPort ?? (await freeEvenUdpPortRange(4));
  const controlPort = await freeUdpPort();
  const timeoutMs = options.timeoutMs ?? DEFAULT_SIPP_TIMEOUT_MS;
  const dir = artifactsDir(`sipp-${path.basename(scenarioFile, '.xml')}`);
  const messageFile = path.join(dir, 'messages.log');
  const errorFile = path.join(dir, 'errors.log');
  const screenFile = path.join(dir, 'screen.log');
  const logFile = path.join(dir, 'actions.log');

  const scenarioArgs = scenarioDeclaredArgs(readFileSync(scenarioFile, 'utf8'));
  const keyArgs = Object.entries(options.keys ?? {}).flatMap(([k, v]) => ['-key', k, v]);
  const setArgs = Object.entries(options.vars ?? {}).flatMap(([k, v]) => ['-set', k, v]);
  // prettier-ignore
  const args = [
    ...target, // none for a UAS
    ...keyArgs, // before -sf: keys are resolved while the scenario is parsed
    '-sf', scenarioFile,
    ...setArgs, // after -sf: variables must already be declared by the scenario
    '-s', options.service ?? 'voxgate',
    '-m', '1',
    '-l', '1',
    '-t', 'u1',
    '-i', '127.0.0.1',
    '-p', String(localPort),
    '-bind_local',
    '-mi', '127.0.0.1',
    '-mp', String(mediaPort),
    '-ci', '127.0.0.1',
    '-cp', String(controlPort),
    '-nostdin',
    '-timeout', `${Math.max(1, Math.ceil(timeoutMs / 1000))}s`,
    '-timeout_error',
    '-trace_err', '-error_file', errorFile,
    '-trace_msg', '-message_file', messageFile,
    '-trace_screen', '-screen_file', screenFile,
    '-trace_logs', '-log_file', logFile,
    ...scenarioArgs,
    ...(options.extraArgs ?? []),
  ];
  const proc = spawnManaged(bin, args, {
    name: `sipp:${path.basename(scenarioFile)}`,
    cwd: dir,
    killGraceMs: SIPP_KILL_GRACE_MS,
  });
  const bound = setTimeout(() => void proc.kill('SIGTERM'), timeoutMs + SIPP_EXIT_SLACK_MS);
  const exit = await proc.exited;
  clearTimeout(bound);
  await proc.kill('SIGKILL', 0); // unregister and sweep the (already exited) group

  // With -trace_* and an explicit file name SIPp writes exactly that file; older builds append _<pid>.
  const pick = (file: string): string => {
    if (existsSync(file)) return readIfExists(file);
    const base = path.basename(file, '.log');
    const alt = readdirSync(dir).find((f) => f.startsWith(base));
    return alt ? readIfExists(path.join(dir, alt)) : '';
  };
  return {
    code: exit.code,
    signal: exit.signal,
    messages: pick(messageFile),
    errors: pick(errorFile),
    output: [...proc.stdoutLines, ...proc.stderrLines].join('\n'),
    dir,
    localPort,
    mediaPort,
    args,
  };
}

/** Human-readable dump of a failed run, for assertion messages. */
export function describeSippRun(result: SippResult): string {
  return [
    `sipp exit ${String(result.code)} signal ${String(result.signal)} (traces in ${result.dir})`,
    `--- errors ---\n${result.errors.trim()}`,
    `--- output (tail) ---\n${result.output.split('\n').slice(-30).join('\n')}`,
    `--- messages (tail) ---\n${result.messages.split('\n').slice(-60).join('\n')}`,
  ].join('\n');
}

export interface TracedSipMessage {
  direction: 'sent' | 'received';
  /** Timestamp as SIPp printed it ("YYYY-MM-DD HH:MM:SS.uuuuuu"). */
  time: string;
  /** e.g. 'INVITE sip:voxgate@127.0.0.1:5060 SIP/2.0' or 'SIP/2.0 200 OK'. */
  startLine: string;
  /** The whole message (headers and body, CRLF line ends as on the wire). */
  text: string;
  /** Body after the blank line ('' if none), e.g. the SDP. */
  body: string;
}

/** Split a -trace_msg log into its SIP messages, in order. */
export function parseSippMessages(messages: string): TracedSipMessage[] {
  const out: TracedSipMessage[] = [];
  const blocks = messages.split(/^-{20,} ?(.*)$/m);
  // split() with a capture group yields [before, time1, block1, time2, block2, ...]
  for (let i = 1; i + 1 < blocks.length; i += 2) {
    const time = (blocks[i] ?? '').trim();
    const block = blocks[i + 1] ?? '';
    const header = /^\s*(?:UDP|TCP|TLS|SCTP) message (sent|received)[^\n]*\n\n?/.exec(block);
    if (!header) continue;
    const text = block.slice(header[0].length).replace(/\n+$/, '\n');
    const startLine = (text.split(/\r?\n/, 1)[0] ?? '').trim();
    const sep = text.search(/\r?\n\r?\n/);
    const body =
      sep === -1
        ? ''
        : text
            .slice(sep)
            .replace(/^\r?\n\r?\n/, '')
            .replace(/\s+$/, '');
    out.push({ direction: header[1] === 'sent' ? 'sent' : 'received', time, startLine, text, body });
  }
  return out;
}
