// `voxgate twilio setup`: create or update, idempotently, the Twilio Elastic SIP trunk for this voxgate.
// read the current state → plan (pure) → print → apply (unless --dry-run). Twilio facts used here are in
// ../shared/reference/sip-stack.md §3 (domain rules, origination URL fields, credential rules, REFER).
import { isIPv4, isIPv6 } from 'node:net';
import type {
  IpAddressFields,
  IpAddressRecord,
  NamedRecord,
  OriginationUrlFields,
  OriginationUrlRecord,
  PhoneNumberRecord,
  TransferCallerId,
  TrunkFields,
  TrunkRecord,
  TwilioLike,
} from './twilio-api.js';
import { formatTwilioError, redactSecrets } from './twilio-errors.js';

// ---------------------------------------------------------------------------------------------------
// Options and the desired trunk

/** Transfer modes voxgate accepts: REFER must be allowed, so 'disable-all' is not offered. */
export type VoxgateTransferMode = 'enable-all' | 'sip-only';

export interface TwilioSetupOptions {
  /** Trunk friendly name; also names the origination URL. Default 'voxgate'. 1-64 characters. */
  friendlyName?: string;
  /** Termination domain, `<name>.pstn.twilio.com`. Default: derived from friendlyName. Globally unique. */
  domainName?: string;
  /** SIP_PUBLIC_URI: where Twilio sends inbound calls, e.g. `sip:203.0.113.10:5060;transport=udp`. */
  sipPublicUri: string;
  /** SIP_TRUNK_USERNAME / SIP_TRUNK_PASSWORD: the digest credential voxgate uses for termination. */
  username: string;
  password: string;
  /** Default `<friendlyName>-termination`. */
  credentialListName?: string;
  /** Default `<friendlyName>-termination-ips`; only used when ipAddresses is non-empty. */
  ipAccessControlListName?: string;
  /** IPv4 addresses or CIDR blocks allowed to send termination traffic (optional IP ACL). */
  ipAddresses?: readonly string[];
  /** E.164 numbers of this account to route to the trunk. */
  phoneNumbers?: readonly string[];
  transferMode?: VoxgateTransferMode;
  transferCallerId?: TransferCallerId;
  /** Print the plan and change nothing. */
  dryRun?: boolean;
  /** Set the password of an existing credential (Twilio never returns passwords, so it can't be compared). */
  rotatePassword?: boolean;
}

export interface DesiredTrunk {
  trunk: TrunkFields & { domainName: string };
  originationUrl: OriginationUrlFields;
  /** The password is deliberately absent: a plan must be printable. */
  credentialList: { friendlyName: string; username: string };
  rotatePassword: boolean;
  ipAccessControlList: {
    friendlyName: string;
    addresses: { ipAddress: string; cidrPrefixLength: number }[];
  } | null;
  phoneNumbers: string[];
}

export const DEFAULT_FRIENDLY_NAME = 'voxgate';
/** Twilio's defaults for a single origination target (sip-stack.md §3.2): lower priority = preferred. */
export const ORIGINATION_PRIORITY = 10;
export const ORIGINATION_WEIGHT = 10;

/** Bad input found before any request was sent; `problems` are complete sentences naming the setting. */
export class TwilioSetupInputError extends Error {
  override readonly name = 'TwilioSetupInputError';
  constructor(readonly problems: readonly string[]) {
    super(problems.join('; '));
  }
}

/** A Twilio (or network) failure while reading or applying; `applied` steps had already succeeded. */
export class TwilioSetupFailure extends Error {
  override readonly name = 'TwilioSetupFailure';
  constructor(
    readonly doing: string,
    override readonly cause: unknown,
    readonly applied: readonly Step[],
    readonly planned: readonly Step[],
  ) {
    super(formatTwilioError(cause, doing));
  }
}

// ---------------------------------------------------------------------------------------------------
// Validation (pure)

const FRIENDLY_NAME_MAX = 64;
const USERNAME_MAX = 32;
const PASSWORD_MIN = 12;
/** Twilio rejects longer SIP passwords (error 21223). */
const PASSWORD_MAX = 255;
/** Shorter prefixes would admit a large part of the Internet to the trunk. */
const CIDR_MIN_PREFIX = 8;
const DOMAIN_SUFFIX = '.pstn.twilio.com';
const DOMAIN_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.pstn\.twilio\.com$/;
const HOSTNAME_RE =
  /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;
const E164_RE = /^\+[1-9]\d{1,14}$/;
/** RFC 3261 unreserved characters plus a few safe ones; Twilio rejects "illegal chars" (21222). */
const USERNAME_RE = /^[A-Za-z0-9._~!$&'()*+,=-]+$/;

export function validateDomainName(domain: string): string[] {
  if (!domain.endsWith(DOMAIN_SUFFIX))
    return [
      `the trunk domain "${domain}" must end in pstn.twilio.com (for example voxgate-acme.pstn.twilio.com)`,
    ];
  if (!DOMAIN_RE.test(domain))
    return [
      `the trunk domain "${domain}" must be <name>.pstn.twilio.com with a name of letters, digits and "-" (localized forms such as <name>.pstn.ashburn.twilio.com are derived from it, not configured)`,
    ];
  return [];
}

/** SIP_PUBLIC_URI must be a `sip:` URI Twilio can send INVITEs to: host[:port][;params], no user part. */
export function validateSipPublicUri(uri: string): string[] {
  const example = 'sip:203.0.113.10:5060;transport=udp';
  if (uri === '') return ['SIP_PUBLIC_URI is not set'];
  if (/^sips:/i.test(uri))
    return [
      `SIP_PUBLIC_URI uses sips:, which Twilio does not accept; for TLS use sip:host:5061;transport=tls`,
    ];
  if (!/^sip:/i.test(uri)) return [`SIP_PUBLIC_URI must be a sip: URI such as ${example} (got "${uri}")`];
  const m = /^sip:(?:([^@]*)@)?(\[[^\]]*\]|[^:;?]*)(?::([^;?]*))?((?:;[^;?]*)*)$/i.exec(uri);
  if (m === null) return [`SIP_PUBLIC_URI "${uri}" is not a valid sip: URI (expected the form ${example})`];
  const [, user, host = '', port, params = ''] = m;
  const problems: string[] = [];
  if (user !== undefined)
    problems.push(
      `SIP_PUBLIC_URI must not contain a user part ("${user}@"): Twilio puts the dialled number there`,
    );
  const bracketed = host.startsWith('[') && host.endsWith(']');
  if (bracketed ? !isIPv6(host.slice(1, -1)) : !isIPv4(host) && !HOSTNAME_RE.test(host))
    problems.push(`SIP_PUBLIC_URI has no valid host ("${host}"); use a public IPv4 address or a DNS name`);
  if (port !== undefined && !(/^\d{1,5}$/.test(port) && Number(port) >= 1 && Number(port) <= 65535))
    problems.push(`SIP_PUBLIC_URI has an invalid port "${port}" (1-65535)`);
  for (const param of params.split(';').slice(1)) {
    const [name = '', value] = param.split('=');
    if (name.toLowerCase() === 'transport' && !/^(udp|tcp|tls)$/i.test(value ?? ''))
      problems.push(`SIP_PUBLIC_URI transport must be udp, tcp or tls (got "${value ?? ''}")`);
  }
  return problems;
}

/** Twilio's credential rules: 12+ characters, at least one digit, upper and lower case. Never echoes it. */
export function validateSipPassword(password: string): string[] {
  if (password === '') return ['SIP_TRUNK_PASSWORD is not set'];
  const missing: string[] = [];
  if (password.length < PASSWORD_MIN)
    missing.push(`at least ${PASSWORD_MIN} characters (it has ${password.length})`);
  if (password.length > PASSWORD_MAX) missing.push(`at most ${PASSWORD_MAX} characters`);
  if (!/\d/.test(password)) missing.push('a digit');
  if (!/[a-z]/.test(password)) missing.push('a lower-case letter');
  if (!/[A-Z]/.test(password)) missing.push('an upper-case letter');
  if (missing.length === 0) return [];
  return [
    `SIP_TRUNK_PASSWORD does not meet Twilio's credential rules (12+ characters, a digit, mixed case): it needs ${missing.join(', ')}`,
  ];
}

export function validateSipUsername(username: string): string[] {
  if (username.length === 0) return ['SIP_TRUNK_USERNAME is not set'];
  if (username.length > USERNAME_MAX)
    return [
      `SIP_TRUNK_USERNAME must be at most ${USERNAME_MAX} characters (Twilio's limit; it has ${username.length})`,
    ];
  if (!USERNAME_RE.test(username))
    return [`SIP_TRUNK_USERNAME may only contain letters, digits and . _ ~ ! $ & ' ( ) * + , = -`];
  return [];
}

/** `203.0.113.10` or `203.0.113.0/24` → address + prefix length, or a problem sentence. */
export function parseIpEntry(entry: string): { ipAddress: string; cidrPrefixLength: number } | string {
  const [ip = '', prefix, extra] = entry.split('/');
  if (extra !== undefined || !isIPv4(ip))
    return `IP access list entry "${entry}" is not an IPv4 address or IPv4/prefix (Twilio ACLs are IPv4 only)`;
  if (prefix === undefined) return { ipAddress: ip, cidrPrefixLength: 32 };
  const n = Number(prefix);
  if (!/^\d{1,2}$/.test(prefix) || n < CIDR_MIN_PREFIX || n > 32)
    return `IP access list entry "${entry}" needs a prefix length from /${CIDR_MIN_PREFIX} to /32`;
  return { ipAddress: ip, cidrPrefixLength: n };
}

const slug = (name: string): string =>
  name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '');

/** Validate everything and build the desired trunk; throws TwilioSetupInputError listing every problem. */
export function resolveDesiredTrunk(options: TwilioSetupOptions): DesiredTrunk {
  const problems: string[] = [];
  const friendlyName = (options.friendlyName ?? DEFAULT_FRIENDLY_NAME).trim();
  if (friendlyName.length === 0 || friendlyName.length > FRIENDLY_NAME_MAX)
    problems.push(`the trunk friendly name must be 1-${FRIENDLY_NAME_MAX} characters`);
  const domainName = (options.domainName ?? `${slug(friendlyName)}${DOMAIN_SUFFIX}`).trim().toLowerCase();
  problems.push(...validateDomainName(domainName));
  const sipUrl = options.sipPublicUri.trim();
  problems.push(...validateSipPublicUri(sipUrl));
  problems.push(...validateSipUsername(options.username));
  problems.push(...validateSipPassword(options.password));

  const transferMode = options.transferMode ?? 'enable-all';
  if (transferMode !== 'enable-all' && transferMode !== 'sip-only')
    problems.push(`transfer mode must be enable-all or sip-only (voxgate transfers calls with SIP REFER)`);
  const transferCallerId = options.transferCallerId ?? 'from-transferee';
  if (transferCallerId !== 'from-transferee' && transferCallerId !== 'from-transferor')
    problems.push(`transfer caller ID must be from-transferee or from-transferor`);

  const addresses: { ipAddress: string; cidrPrefixLength: number }[] = [];
  for (const entry of options.ipAddresses ?? []) {
    const parsed = parseIpEntry(entry.trim());
    if (typeof parsed === 'string') problems.push(parsed);
    else if (!addresses.some((a) => sameAddress(a, parsed))) addresses.push(parsed);
  }
  const phoneNumbers: string[] = [];
  for (const raw of options.phoneNumbers ?? []) {
    const number = raw.trim();
    if (!E164_RE.test(number))
      problems.push(`phone number "${number}" is not E.164 (a +, the country code and up to 15 digits)`);
    else if (!phoneNumbers.includes(number)) phoneNumbers.push(number);
  }
  if (problems.length > 0) throw new TwilioSetupInputError(problems);

  return {
    trunk: { friendlyName, domainName, transferMode, transferCallerId, secure: false },
    originationUrl: {
      friendlyName,
      sipUrl,
      priority: ORIGINATION_PRIORITY,
      weight: ORIGINATION_WEIGHT,
      enabled: true,
    },
    credentialList: {
      friendlyName: options.credentialListName ?? `${friendlyName}-termination`,
      username: options.username,
    },
    rotatePassword: options.rotatePassword === true,
    ipAccessControlList:
      addresses.length === 0
        ? null
        : { friendlyName: options.ipAccessControlListName ?? `${friendlyName}-termination-ips`, addresses },
    phoneNumbers,
  };
}

const sameAddress = (
  a: { ipAddress: string; cidrPrefixLength: number },
  b: { ipAddress: string; cidrPrefixLength: number },
): boolean => a.ipAddress === b.ipAddress && a.cidrPrefixLength === b.cidrPrefixLength;

// ---------------------------------------------------------------------------------------------------
// Current state

export interface TrunkState {
  /** The trunk whose domainName matches, or null. */
  trunk: TrunkRecord | null;
  /** Other trunks with the desired friendly name but another domain (reported, never touched). */
  namesakeTrunks: TrunkRecord[];
  originationUrls: OriginationUrlRecord[];
  credentialList: (NamedRecord & { credentials: { sid: string; username: string }[] }) | null;
  trunkCredentialListSids: string[];
  ipAccessControlList: (NamedRecord & { addresses: IpAddressRecord[] }) | null;
  trunkIpAccessControlListSids: string[];
  /** The account's IncomingPhoneNumbers matching the desired numbers (missing ones are absent). */
  phoneNumbers: PhoneNumberRecord[];
  trunkPhoneNumberSids: string[];
}

/** Read everything the plan depends on (GET requests only). */
export async function readTrunkState(client: TwilioLike, desired: DesiredTrunk): Promise<TrunkState> {
  const trunks = await client.listTrunks();
  const trunk = trunks.find((t) => t.domainName.toLowerCase() === desired.trunk.domainName) ?? null;
  const namesakeTrunks = trunks.filter((t) => t !== trunk && t.friendlyName === desired.trunk.friendlyName);

  const credentialLists = await client.listCredentialLists();
  const cl = credentialLists.find((l) => l.friendlyName === desired.credentialList.friendlyName);
  const credentialList =
    cl === undefined ? null : { ...cl, credentials: await client.listCredentials(cl.sid) };

  let ipAccessControlList: TrunkState['ipAccessControlList'] = null;
  if (desired.ipAccessControlList !== null) {
    const name = desired.ipAccessControlList.friendlyName;
    const acl = (await client.listIpAccessControlLists()).find((l) => l.friendlyName === name);
    if (acl !== undefined) ipAccessControlList = { ...acl, addresses: await client.listIpAddresses(acl.sid) };
  }

  const phoneNumbers: PhoneNumberRecord[] = [];
  for (const number of desired.phoneNumbers)
    phoneNumbers.push(...(await client.findIncomingPhoneNumbers(number)));

  if (trunk === null) {
    return {
      trunk,
      namesakeTrunks,
      originationUrls: [],
      credentialList,
      trunkCredentialListSids: [],
      ipAccessControlList,
      trunkIpAccessControlListSids: [],
      phoneNumbers,
      trunkPhoneNumberSids: [],
    };
  }
  return {
    trunk,
    namesakeTrunks,
    originationUrls: await client.listOriginationUrls(trunk.sid),
    credentialList,
    trunkCredentialListSids: await client.listTrunkCredentialLists(trunk.sid),
    ipAccessControlList,
    trunkIpAccessControlListSids:
      desired.ipAccessControlList === null ? [] : await client.listTrunkIpAccessControlLists(trunk.sid),
    phoneNumbers,
    trunkPhoneNumberSids:
      desired.phoneNumbers.length === 0 ? [] : await client.listTrunkPhoneNumbers(trunk.sid),
  };
}

// ---------------------------------------------------------------------------------------------------
// Plan (pure)

export interface FieldChange<T> {
  from: T;
  to: T;
}
export type Changes<T> = { [K in keyof T]?: FieldChange<T[K]> };

/** One change to make. Parents created earlier in the same plan are referred to implicitly (sid null). */
export type Step =
  | { kind: 'create-trunk'; fields: TrunkFields & { domainName: string } }
  | { kind: 'update-trunk'; trunkSid: string; changes: Changes<TrunkFields> }
  | { kind: 'create-origination-url'; fields: OriginationUrlFields }
  | { kind: 'update-origination-url'; sid: string; changes: Changes<OriginationUrlFields> }
  | { kind: 'create-credential-list'; friendlyName: string }
  | { kind: 'create-credential'; credentialList: string; username: string }
  | { kind: 'rotate-credential-password'; credentialList: string; credentialSid: string; username: string }
  | { kind: 'associate-credential-list'; friendlyName: string; credentialListSid: string | null }
  | { kind: 'create-ip-access-control-list'; friendlyName: string }
  | { kind: 'add-ip-address'; ipAccessControlList: string; fields: IpAddressFields }
  | { kind: 'associate-ip-access-control-list'; friendlyName: string; ipAccessControlListSid: string | null }
  | {
      kind: 'associate-phone-number';
      phoneNumber: string;
      phoneNumberSid: string;
      previousTrunkSid: string | null;
    };

/** A requested phone number is not an IncomingPhoneNumber of this account: nothing can be planned for it. */
export class PhoneNumberNotFoundError extends TwilioSetupInputError {}

function diff<T extends object>(current: T, desired: T, keys: readonly (keyof T)[]): Changes<T> {
  const changes: Changes<T> = {};
  for (const key of keys) {
    if (current[key] !== desired[key]) changes[key] = { from: current[key], to: desired[key] };
  }
  return changes;
}

const TRUNK_KEYS = ['friendlyName', 'transferMode', 'transferCallerId', 'secure'] as const;
const ORIGINATION_KEYS = ['friendlyName', 'sipUrl', 'priority', 'weight', 'enabled'] as const;

/** What must be created, updated or associated so Twilio matches `desired`. Empty = nothing to do. */
export function planTwilioSetup(current: TrunkState, desired: DesiredTrunk): Step[] {
  const missing = desired.phoneNumbers.filter((n) => !current.phoneNumbers.some((p) => p.phoneNumber === n));
  if (missing.length > 0) {
    throw new PhoneNumberNotFoundError(
      missing.map(
        (n) =>
          `phone number ${n} is not a number of this Twilio account (buy or port it first, or check the account)`,
      ),
    );
  }
  const steps: Step[] = [];
  const { trunk } = current;

  // Trunk
  if (trunk === null) {
    steps.push({ kind: 'create-trunk', fields: { ...desired.trunk } });
  } else {
    const changes = diff<TrunkFields>(trunk, desired.trunk, TRUNK_KEYS);
    if (Object.keys(changes).length > 0) steps.push({ kind: 'update-trunk', trunkSid: trunk.sid, changes });
  }

  // Origination URL: ours is the one with our sipUrl, else the one with our name (SIP_PUBLIC_URI changed).
  const wanted = desired.originationUrl;
  const ours =
    current.originationUrls.find((u) => u.sipUrl === wanted.sipUrl) ??
    current.originationUrls.find((u) => u.friendlyName === wanted.friendlyName);
  if (ours === undefined) {
    steps.push({ kind: 'create-origination-url', fields: { ...wanted } });
  } else {
    const changes = diff<OriginationUrlFields>(ours, wanted, ORIGINATION_KEYS);
    if (Object.keys(changes).length > 0)
      steps.push({ kind: 'update-origination-url', sid: ours.sid, changes });
  }

  // Credential list (termination digest auth)
  const clName = desired.credentialList.friendlyName;
  const { username } = desired.credentialList;
  const cl = current.credentialList;
  if (cl === null) {
    steps.push({ kind: 'create-credential-list', friendlyName: clName });
    steps.push({ kind: 'create-credential', credentialList: clName, username });
  } else {
    const credential = cl.credentials.find((c) => c.username === username);
    if (credential === undefined) steps.push({ kind: 'create-credential', credentialList: clName, username });
    else if (desired.rotatePassword)
      steps.push({
        kind: 'rotate-credential-password',
        credentialList: clName,
        credentialSid: credential.sid,
        username,
      });
  }
  if (cl === null || !current.trunkCredentialListSids.includes(cl.sid))
    steps.push({
      kind: 'associate-credential-list',
      friendlyName: clName,
      credentialListSid: cl?.sid ?? null,
    });

  // Optional IP access control list
  const wantedAcl = desired.ipAccessControlList;
  if (wantedAcl !== null) {
    const acl = current.ipAccessControlList;
    if (acl === null)
      steps.push({ kind: 'create-ip-access-control-list', friendlyName: wantedAcl.friendlyName });
    for (const address of wantedAcl.addresses) {
      if (acl !== null && acl.addresses.some((a) => sameAddress(a, address))) continue;
      steps.push({
        kind: 'add-ip-address',
        ipAccessControlList: wantedAcl.friendlyName,
        fields: {
          friendlyName: `${desired.trunk.friendlyName} ${address.ipAddress}/${address.cidrPrefixLength}`,
          ...address,
        },
      });
    }
    if (acl === null || !current.trunkIpAccessControlListSids.includes(acl.sid))
      steps.push({
        kind: 'associate-ip-access-control-list',
        friendlyName: wantedAcl.friendlyName,
        ipAccessControlListSid: acl?.sid ?? null,
      });
  }

  // Phone numbers
  for (const number of desired.phoneNumbers) {
    const pn = current.phoneNumbers.find((p) => p.phoneNumber === number);
    if (pn === undefined) continue; // unreachable: checked above
    if (trunk !== null && (current.trunkPhoneNumberSids.includes(pn.sid) || pn.trunkSid === trunk.sid))
      continue;
    steps.push({
      kind: 'associate-phone-number',
      phoneNumber: number,
      phoneNumberSid: pn.sid,
      previousTrunkSid: pn.trunkSid !== null && pn.trunkSid !== trunk?.sid ? pn.trunkSid : null,
    });
  }
  return steps;
}

const show = (v: unknown): string => (typeof v === 'string' ? `"${v}"` : String(v));
const changeList = (changes: Record<string, FieldChange<unknown> | undefined>): string =>
  Object.entries(changes)
    .filter((e): e is [string, FieldChange<unknown>] => e[1] !== undefined)
    .map(([k, c]) => `${k} ${show(c.from)} → ${show(c.to)}`)
    .join(', ');

/** One human line per step (never contains a password). */
export function describeStep(step: Step): string {
  switch (step.kind) {
    case 'create-trunk': {
      const f = step.fields;
      return `+ create trunk "${f.friendlyName}" (domain ${f.domainName}, transferMode ${f.transferMode}, transferCallerId ${f.transferCallerId}, secure ${f.secure})`;
    }
    case 'update-trunk':
      return `~ update trunk ${step.trunkSid}: ${changeList(step.changes)}`;
    case 'create-origination-url': {
      const f = step.fields;
      return `+ create origination URL ${f.sipUrl} ("${f.friendlyName}", priority ${f.priority}, weight ${f.weight}, ${f.enabled ? 'enabled' : 'disabled'})`;
    }
    case 'update-origination-url':
      return `~ update origination URL ${step.sid}: ${changeList(step.changes)}`;
    case 'create-credential-list':
      return `+ create credential list "${step.friendlyName}"`;
    case 'create-credential':
      return `+ create credential "${step.username}" in "${step.credentialList}" (password from SIP_TRUNK_PASSWORD)`;
    case 'rotate-credential-password':
      return `~ set the password of credential "${step.username}" (${step.credentialSid}) to SIP_TRUNK_PASSWORD (--rotate-password)`;
    case 'associate-credential-list':
      return `+ associate credential list "${step.friendlyName}" with the trunk (termination auth)`;
    case 'create-ip-access-control-list':
      return `+ create IP access control list "${step.friendlyName}"`;
    case 'add-ip-address':
      return `+ add ${step.fields.ipAddress}/${step.fields.cidrPrefixLength} to "${step.ipAccessControlList}"`;
    case 'associate-ip-access-control-list':
      return `+ associate IP access control list "${step.friendlyName}" with the trunk`;
    case 'associate-phone-number':
      return `+ route ${step.phoneNumber} (${step.phoneNumberSid}) to the trunk${step.previousTrunkSid !== null ? ` (moves it from trunk ${step.previousTrunkSid})` : ''}`;
  }
}

/** Remarks that go with a plan: things left alone on purpose, things that can't be checked. */
export function planNotes(current: TrunkState, desired: DesiredTrunk): string[] {
  const notes: string[] = [];
  const { username } = desired.credentialList;
  if (!desired.rotatePassword && current.credentialList?.credentials.some((c) => c.username === username)) {
    notes.push(
      `credential "${username}" already exists; Twilio never returns passwords, so SIP_TRUNK_PASSWORD was not compared — run with --rotate-password to set it`,
    );
  }
  const others = current.originationUrls.filter(
    (u) =>
      u.sipUrl !== desired.originationUrl.sipUrl && u.friendlyName !== desired.originationUrl.friendlyName,
  );
  if (others.length > 0)
    notes.push(
      `the trunk also has ${others.length} other origination URL(s), left as they are: ${others.map((u) => `${u.sipUrl} (priority ${u.priority})`).join(', ')}`,
    );
  const acl = current.ipAccessControlList;
  const wantedAcl = desired.ipAccessControlList;
  if (acl !== null && wantedAcl !== null) {
    const extra = acl.addresses.filter((a) => !wantedAcl.addresses.some((w) => sameAddress(w, a)));
    if (extra.length > 0)
      notes.push(
        `"${acl.friendlyName}" also allows ${extra.map((a) => `${a.ipAddress}/${a.cidrPrefixLength}`).join(', ')} (not removed)`,
      );
  }
  for (const t of current.namesakeTrunks)
    notes.push(
      `another trunk named "${t.friendlyName}" (${t.sid}, domain ${t.domainName}) exists and is left alone`,
    );
  const host = /^sip:([^:;]+)/i.exec(desired.originationUrl.sipUrl)?.[1] ?? '';
  if (isPrivateIPv4(host))
    notes.push(
      `SIP_PUBLIC_URI host ${host} is not a public address: Twilio cannot reach it from the Internet`,
    );
  return notes;
}

function isPrivateIPv4(host: string): boolean {
  if (!isIPv4(host)) return false;
  const [a = 0, b = 0] = host.split('.').map(Number);
  return (
    a === 10 ||
    a === 127 ||
    (a === 172 && b >= 16 && b <= 31) ||
    (a === 192 && b === 168) ||
    (a === 169 && b === 254)
  );
}

// ---------------------------------------------------------------------------------------------------
// Run

export interface TwilioSetupDeps {
  client: TwilioLike;
  print: (line: string) => void;
}

interface ApplyContext {
  trunkSid: string | null;
  credentialListSid: string | null;
  ipAccessControlListSid: string | null;
}

/** The new values of a set of changes, as an update payload. */
function targetValues<T>(changes: Changes<T>): Partial<T> {
  const out: Partial<T> = {};
  for (const key of Object.keys(changes) as (keyof T)[]) {
    const change = changes[key];
    if (change !== undefined) out[key] = change.to;
  }
  return out;
}

function need(sid: string | null, what: string): string {
  if (sid === null) throw new Error(`internal: ${what} is not known yet (plan out of order)`);
  return sid;
}

async function applyStep(client: TwilioLike, step: Step, ctx: ApplyContext, password: string): Promise<void> {
  switch (step.kind) {
    case 'create-trunk':
      ctx.trunkSid = (await client.createTrunk(step.fields)).sid;
      return;
    case 'update-trunk':
      await client.updateTrunk(step.trunkSid, targetValues(step.changes));
      return;
    case 'create-origination-url':
      await client.createOriginationUrl(need(ctx.trunkSid, 'trunk'), step.fields);
      return;
    case 'update-origination-url':
      await client.updateOriginationUrl(need(ctx.trunkSid, 'trunk'), step.sid, targetValues(step.changes));
      return;
    case 'create-credential-list':
      ctx.credentialListSid = (await client.createCredentialList(step.friendlyName)).sid;
      return;
    case 'create-credential':
      await client.createCredential(need(ctx.credentialListSid, 'credential list'), step.username, password);
      return;
    case 'rotate-credential-password':
      await client.updateCredentialPassword(
        need(ctx.credentialListSid, 'credential list'),
        step.credentialSid,
        password,
      );
      return;
    case 'associate-credential-list':
      await client.associateCredentialList(
        need(ctx.trunkSid, 'trunk'),
        need(ctx.credentialListSid, 'credential list'),
      );
      return;
    case 'create-ip-access-control-list':
      ctx.ipAccessControlListSid = (await client.createIpAccessControlList(step.friendlyName)).sid;
      return;
    case 'add-ip-address':
      await client.createIpAddress(need(ctx.ipAccessControlListSid, 'IP access control list'), step.fields);
      return;
    case 'associate-ip-access-control-list':
      await client.associateIpAccessControlList(
        need(ctx.trunkSid, 'trunk'),
        need(ctx.ipAccessControlListSid, 'IP access control list'),
      );
      return;
    case 'associate-phone-number':
      await client.associatePhoneNumber(need(ctx.trunkSid, 'trunk'), step.phoneNumberSid);
      return;
  }
}

/** What a step was doing, for error lines ("… while creating trunk x.pstn.twilio.com: …"). */
function doingStep(step: Step): string {
  switch (step.kind) {
    case 'create-trunk':
      return `creating trunk ${step.fields.domainName}`;
    case 'update-trunk':
      return `updating trunk ${step.trunkSid}`;
    case 'create-origination-url':
      return `creating origination URL ${step.fields.sipUrl}`;
    case 'update-origination-url':
      return `updating origination URL ${step.sid}`;
    case 'create-credential-list':
      return `creating credential list "${step.friendlyName}"`;
    case 'create-credential':
      return `creating credential "${step.username}"`;
    case 'rotate-credential-password':
      return `setting the password of credential "${step.username}"`;
    case 'associate-credential-list':
      return `associating credential list "${step.friendlyName}" with the trunk`;
    case 'create-ip-access-control-list':
      return `creating IP access control list "${step.friendlyName}"`;
    case 'add-ip-address':
      return `adding ${step.fields.ipAddress}/${step.fields.cidrPrefixLength} to "${step.ipAccessControlList}"`;
    case 'associate-ip-access-control-list':
      return `associating IP access control list "${step.friendlyName}" with the trunk`;
    case 'associate-phone-number':
      return `routing ${step.phoneNumber} to the trunk`;
  }
}

/**
 * Validate (no request is sent on bad input), read the current state, print the plan, and apply it
 * unless `dryRun`. Throws TwilioSetupInputError (bad input, or a phone number the account doesn't own)
 * or TwilioSetupFailure (Twilio/network error; `applied` lists what had already been done).
 */
export async function runTwilioSetup(
  options: TwilioSetupOptions,
  deps: TwilioSetupDeps,
): Promise<{ steps: Step[]; applied: boolean }> {
  const print = (line: string): void => deps.print(redactSecrets(line, [options.password]));
  const desired = resolveDesiredTrunk(options);
  const { client } = deps;

  let current: TrunkState;
  try {
    current = await readTrunkState(client, desired);
  } catch (err) {
    throw new TwilioSetupFailure('reading the current Twilio configuration', err, [], []);
  }
  const steps = planTwilioSetup(current, desired);

  const where = current.trunk === null ? 'new trunk' : `trunk ${current.trunk.sid}`;
  print(`Twilio Elastic SIP trunk ${desired.trunk.domainName} (${where}, account ${client.accountSid}):`);
  if (steps.length === 0) print('  = no changes: Twilio already matches this configuration');
  for (const step of steps) print(`  ${describeStep(step)}`);
  for (const note of planNotes(current, desired)) print(`  note: ${note}`);

  if (options.dryRun === true) {
    print(`dry run: nothing was changed (${steps.length} change(s) planned)`);
    return { steps, applied: false };
  }

  const ctx: ApplyContext = {
    trunkSid: current.trunk?.sid ?? null,
    credentialListSid: current.credentialList?.sid ?? null,
    ipAccessControlListSid: current.ipAccessControlList?.sid ?? null,
  };
  const applied: Step[] = [];
  for (const step of steps) {
    try {
      await applyStep(client, step, ctx, options.password);
    } catch (err) {
      throw new TwilioSetupFailure(doingStep(step), err, applied, steps);
    }
    applied.push(step);
  }
  if (steps.length > 0) print(`applied ${steps.length} change(s)`);
  print(`termination URI for voxgate's outbound calls: sip:<E.164 number>@${desired.trunk.domainName}`);
  return { steps, applied: true };
}
