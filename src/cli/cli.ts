// Command-line entry for `voxgate twilio setup`. main.ts reads the environment (through src/config), builds
// the Twilio client factory and calls runCli; this file only parses flags, validates and reports.
import { parseArgs } from 'node:util';
import type { TwilioLike } from './twilio-api.js';
import { redactSecrets } from './twilio-errors.js';
import {
  resolveDesiredTrunk,
  runTwilioSetup,
  TwilioSetupFailure,
  TwilioSetupInputError,
  type TwilioSetupOptions,
  type VoxgateTransferMode,
} from './twilio-setup.js';

/** Settings from the environment; flags override the optional ones. */
export interface TwilioCliConfig {
  /** TWILIO_ACCOUNT_SID: `AC` + 32 hex digits. */
  accountSid: string | undefined;
  /** TWILIO_AUTH_TOKEN: the account's auth token (secret; never printed). */
  authToken: string | undefined;
  /** SIP_PUBLIC_URI: `sip:host[:port][;transport=udp|tcp|tls]`, reachable from Twilio. */
  sipPublicUri: string | undefined;
  /** SIP_TRUNK_USERNAME: 1-32 characters. */
  trunkUsername: string | undefined;
  /** SIP_TRUNK_PASSWORD: 12+ characters, a digit, mixed case (secret; never printed). */
  trunkPassword: string | undefined;
  /** TWILIO_TRUNK_NAME (optional, default 'voxgate'); --friendly-name wins. */
  trunkFriendlyName?: string | undefined;
  /** TWILIO_TRUNK_DOMAIN (optional, `<name>.pstn.twilio.com`); --domain wins. */
  trunkDomain?: string | undefined;
  /** TWILIO_PHONE_NUMBERS (optional, E.164 list); --phone-number flags replace it. */
  phoneNumbers?: readonly string[] | undefined;
  /** TWILIO_IP_ACL (optional, IPv4[/prefix] list); --ip flags replace it. */
  ipAccessList?: readonly string[] | undefined;
  /** TWILIO_TRANSFER_MODE (optional, enable-all | sip-only); --transfer-mode wins. */
  transferMode?: string | undefined;
}

export interface CliDeps {
  /** main.ts passes `createTwilioClient` from ./twilio-api.js; tests pass one aimed at a local fake. */
  createTwilioClient: (accountSid: string, authToken: string) => TwilioLike;
  print: (line: string) => void;
  /** Defaults to print. */
  printError?: (line: string) => void;
}

export const EXIT_OK = 0;
/** Twilio or network failure. */
export const EXIT_FAILURE = 1;
/** Bad usage or invalid settings; nothing was sent to Twilio. */
export const EXIT_USAGE = 2;

export const TWILIO_SETUP_USAGE =
  'usage: voxgate twilio setup [--dry-run] [--rotate-password] [--friendly-name NAME] [--domain NAME.pstn.twilio.com] [--phone-number +E164]... [--ip IPV4[/PREFIX]]... [--transfer-mode enable-all|sip-only]';

const HELP = [
  TWILIO_SETUP_USAGE,
  '',
  'Creates or updates, idempotently, the Twilio Elastic SIP trunk for this voxgate: termination domain,',
  'origination URL (SIP_PUBLIC_URI), credential list for termination, optional IP access control list,',
  'call transfer by SIP REFER, and phone-number routing. Re-running changes only what differs.',
  '',
  '  --dry-run               print the plan, change nothing',
  '  --rotate-password       set SIP_TRUNK_PASSWORD on an existing credential (Twilio cannot show passwords)',
  '  --friendly-name NAME    trunk name (default voxgate; env TWILIO_TRUNK_NAME)',
  '  --domain DOMAIN         termination domain <name>.pstn.twilio.com, globally unique (env TWILIO_TRUNK_DOMAIN)',
  '  --phone-number +E164    route this number of the account to the trunk; repeatable (env TWILIO_PHONE_NUMBERS)',
  '  --ip IPV4[/PREFIX]      allow this source in an IP access control list; repeatable (env TWILIO_IP_ACL)',
  '  --transfer-mode MODE    enable-all (default) or sip-only (env TWILIO_TRANSFER_MODE)',
  '  -h, --help              this help',
  '',
  'Environment: TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, SIP_PUBLIC_URI, SIP_TRUNK_USERNAME, SIP_TRUNK_PASSWORD.',
  'Exit status: 0 done, 1 Twilio or network error, 2 bad usage or settings (nothing sent).',
];

const ACCOUNT_SID_RE = /^AC[0-9a-fA-F]{32}$/;

const FLAGS = {
  'dry-run': { type: 'boolean' },
  'rotate-password': { type: 'boolean' },
  'friendly-name': { type: 'string' },
  domain: { type: 'string' },
  'phone-number': { type: 'string', multiple: true },
  ip: { type: 'string', multiple: true },
  'transfer-mode': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

function isTransferMode(v: string): v is VoxgateTransferMode {
  return v === 'enable-all' || v === 'sip-only';
}

/**
 * Run a voxgate CLI command. `argv` is what follows the program name, e.g. `['twilio', 'setup', '--dry-run']`.
 * Resolves to the process exit code; never throws for expected failures.
 */
export async function runCli(
  argv: readonly string[],
  config: TwilioCliConfig,
  deps: CliDeps,
): Promise<number> {
  const secrets = [config.authToken ?? '', config.trunkPassword ?? ''];
  const print = (line: string): void => deps.print(redactSecrets(line, secrets));
  const printError = (line: string): void => (deps.printError ?? deps.print)(redactSecrets(line, secrets));

  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: FLAGS, allowPositionals: true, strict: true });
  } catch (err) {
    printError(`error: ${err instanceof Error ? err.message : String(err)}`);
    printError(TWILIO_SETUP_USAGE);
    return EXIT_USAGE;
  }
  const { values, positionals } = parsed;
  const isSetup = positionals.length === 2 && positionals[0] === 'twilio' && positionals[1] === 'setup';
  if (values.help === true && (isSetup || positionals.length === 0 || positionals[0] === 'twilio')) {
    for (const line of HELP) print(line);
    return EXIT_OK;
  }
  if (!isSetup) {
    printError(`error: unknown command "${positionals.join(' ')}"`);
    printError(TWILIO_SETUP_USAGE);
    return EXIT_USAGE;
  }

  // Settings, all checked before any request; every problem is reported at once.
  const problems: string[] = [];
  const accountSid = (config.accountSid ?? '').trim();
  if (accountSid === '') problems.push('TWILIO_ACCOUNT_SID is not set');
  else if (!ACCOUNT_SID_RE.test(accountSid))
    problems.push(
      'TWILIO_ACCOUNT_SID must be "AC" followed by 32 hex digits (Twilio Console → Account info)',
    );
  const authToken = (config.authToken ?? '').trim();
  if (authToken === '') problems.push('TWILIO_AUTH_TOKEN is not set');
  else if (/\s/.test(authToken)) problems.push('TWILIO_AUTH_TOKEN must not contain whitespace');
  const transferMode = values['transfer-mode'] ?? config.transferMode ?? 'enable-all';
  if (!isTransferMode(transferMode))
    problems.push(
      `transfer mode must be enable-all or sip-only (got "${transferMode}"); voxgate transfers with SIP REFER`,
    );

  const options: TwilioSetupOptions = {
    friendlyName: values['friendly-name'] ?? config.trunkFriendlyName,
    domainName: values.domain ?? config.trunkDomain,
    sipPublicUri: (config.sipPublicUri ?? '').trim(),
    username: (config.trunkUsername ?? '').trim(),
    password: config.trunkPassword ?? '',
    phoneNumbers: values['phone-number'] ?? config.phoneNumbers ?? [],
    ipAddresses: values.ip ?? config.ipAccessList ?? [],
    transferMode: isTransferMode(transferMode) ? transferMode : 'enable-all',
    dryRun: values['dry-run'] === true,
    rotatePassword: values['rotate-password'] === true,
  };
  try {
    resolveDesiredTrunk(options);
  } catch (err) {
    if (!(err instanceof TwilioSetupInputError)) throw err;
    problems.push(...err.problems);
  }
  if (problems.length > 0) {
    for (const p of problems) printError(`error: ${p}`);
    printError('nothing was sent to Twilio');
    return EXIT_USAGE;
  }

  try {
    await runTwilioSetup(options, { client: deps.createTwilioClient(accountSid, authToken), print });
    return EXIT_OK;
  } catch (err) {
    if (err instanceof TwilioSetupInputError) {
      for (const p of err.problems) printError(`error: ${p}`);
      printError('nothing was changed');
      return EXIT_USAGE;
    }
    if (err instanceof TwilioSetupFailure) {
      printError(err.message);
      if (err.applied.length > 0)
        printError(
          `${err.applied.length} of ${err.planned.length} change(s) were applied before the failure; re-run after fixing it (setup is idempotent)`,
        );
      return EXIT_FAILURE;
    }
    printError(`error: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT_FAILURE;
  }
}
