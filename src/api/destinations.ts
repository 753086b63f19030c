/**
 * Outbound destinations: what `to` may look like, and the allow-list that guards against toll fraud.
 *
 * `to` is either
 * - an E.164 number: `+` then 7-15 digits, no leading 0 (`+14155550100`); or
 * - a `sip:` URI: `sip:[user@]host[:port][;transport=udp|tcp|tls|ws|wss][;user=phone|ip]`, where host
 *   is a DNS name, an IPv4 address or a bracketed IPv6 address. URI headers (`?…`), passwords and other
 *   parameters (notably `maddr`, which would re-route the request to another host) are refused.
 *
 * OUTBOUND_ALLOWED_DESTINATIONS is a comma-separated list; each entry is one of
 * - `+<digits>`: an E.164 prefix; allows E.164 numbers that start with it (`+1555`, `+4420`);
 * - `sip:<host>` or `@<host>`: allows `sip:` URIs whose host is exactly `<host>` (case-insensitive,
 *   any user and port; subdomains are not included, there is no wildcard).
 * E.164 rules never match SIP URIs and domain rules never match numbers. An empty list allows
 * nothing (deny by default); there is deliberately no "allow everything" entry.
 */

export type Destination =
  | { kind: 'e164'; number: string }
  | { kind: 'sip'; user: string | undefined; host: string; port: number | undefined };

export type ParseResult = { ok: true; destination: Destination } | { ok: false; reason: string };

export type DestinationRule = { kind: 'e164-prefix'; prefix: string } | { kind: 'sip-domain'; host: string };

export type DestinationDecision = { allowed: true } | { allowed: false; reason: string };

const E164 = /^\+[1-9]\d{6,14}$/;
const E164_PREFIX = /^\+[1-9]\d{0,14}$/;
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const HOSTNAME = new RegExp(`^(?:${LABEL}\\.)*${LABEL}\\.?$`);
const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const IPV6_BRACKETED = /^\[[0-9A-Fa-f:.]{2,45}\]$/;
/** RFC 3261 user: unreserved, escaped and user-unreserved characters (no `;`, `?`, `/`, `:` or `@`). */
const SIP_USER = /^(?:[A-Za-z0-9\-_.!~*'()&=+$,]|%[0-9A-Fa-f]{2})+$/;
const SIP_PARAMS: Readonly<Record<string, RegExp>> = {
  transport: /^(?:udp|tcp|tls|ws|wss)$/i,
  user: /^(?:phone|ip)$/i,
};
/** Longest `to` we look at; longer values are refused before any parsing. */
const MAX_DESTINATION_LENGTH = 256;

export const DESTINATION_SYNTAX = 'an E.164 number (+ then 7-15 digits) or a sip: URI';

function normaliseHost(host: string): string | undefined {
  const lower = host.toLowerCase();
  if (IPV6_BRACKETED.test(lower)) return lower;
  if (IPV4.test(lower)) return lower;
  // A dotted quad that failed IPV4 is a bad address, not a host name.
  if (/^[\d.]+$/.test(lower)) return undefined;
  if (lower.length > 253 || !HOSTNAME.test(lower)) return undefined;
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

export function parseDestination(raw: string): ParseResult {
  if (raw.length > MAX_DESTINATION_LENGTH) return { ok: false, reason: 'is too long' };
  if (raw.startsWith('+')) {
    return E164.test(raw)
      ? { ok: true, destination: { kind: 'e164', number: raw } }
      : { ok: false, reason: 'is not an E.164 number (+ then 7-15 digits, no leading 0)' };
  }
  if (!/^sip:/i.test(raw)) return { ok: false, reason: `must be ${DESTINATION_SYNTAX}` };
  const rest = raw.slice(4);
  if (rest.includes('?')) return { ok: false, reason: 'must not carry URI headers (?…)' };
  const [address = '', ...params] = rest.split(';');
  for (const param of params) {
    const [name = '', value = ''] = param.split('=', 2);
    const allowed = SIP_PARAMS[name.toLowerCase()];
    if (allowed === undefined)
      return { ok: false, reason: `has a URI parameter that is not allowed: ${name}` };
    if (!allowed.test(value)) return { ok: false, reason: `has an invalid ${name} parameter` };
  }
  const at = address.lastIndexOf('@');
  const user = at === -1 ? undefined : address.slice(0, at);
  const hostPort = at === -1 ? address : address.slice(at + 1);
  if (user !== undefined && !SIP_USER.test(user)) {
    return { ok: false, reason: 'has an invalid user part (passwords are not allowed)' };
  }
  const match = /^(\[[^\]]*\]|[^:]*)(?::(\d{1,5}))?$/.exec(hostPort);
  const host = match?.[1] === undefined ? undefined : normaliseHost(match[1]);
  if (host === undefined) return { ok: false, reason: 'has an invalid host' };
  const port = match?.[2] === undefined ? undefined : Number(match[2]);
  if (port !== undefined && (port < 1 || port > 65535)) return { ok: false, reason: 'has an invalid port' };
  return { ok: true, destination: { kind: 'sip', user, host, port } };
}

/** Parses OUTBOUND_ALLOWED_DESTINATIONS entries; throws naming the first bad entry. Blank entries are skipped. */
export function parseDestinationRules(entries: readonly string[]): DestinationRule[] {
  const rules: DestinationRule[] = [];
  for (const rawEntry of entries) {
    const entry = rawEntry.trim();
    if (entry === '') continue;
    if (entry.startsWith('+')) {
      if (!E164_PREFIX.test(entry)) throw new Error(invalidEntry(entry));
      rules.push({ kind: 'e164-prefix', prefix: entry });
      continue;
    }
    const hostPart = entry.startsWith('@')
      ? entry.slice(1)
      : /^sip:/i.test(entry)
        ? entry.slice(4)
        : undefined;
    const host = hostPart === undefined ? undefined : normaliseHost(hostPart);
    if (host === undefined) throw new Error(invalidEntry(entry));
    rules.push({ kind: 'sip-domain', host });
  }
  return rules;
}

function invalidEntry(entry: string): string {
  return (
    `OUTBOUND_ALLOWED_DESTINATIONS entry "${entry}" is not an E.164 prefix (+1555), ` +
    'a sip:domain or an @domain'
  );
}

/** The allow-list as a value: deny by default, one decision per destination. */
export class DestinationPolicy {
  readonly rules: readonly DestinationRule[];

  constructor(entries: readonly string[]) {
    this.rules = parseDestinationRules(entries);
  }

  check(destination: Destination): DestinationDecision {
    if (this.rules.length === 0) {
      return { allowed: false, reason: 'no outbound destinations are allowed (the allow-list is empty)' };
    }
    const allowed = this.rules.some((rule) =>
      destination.kind === 'e164'
        ? rule.kind === 'e164-prefix' && destination.number.startsWith(rule.prefix)
        : rule.kind === 'sip-domain' && destination.host === rule.host,
    );
    if (allowed) return { allowed: true };
    return {
      allowed: false,
      reason:
        destination.kind === 'e164'
          ? 'the number does not match any allowed E.164 prefix'
          : `the SIP domain ${destination.host} is not allowed`,
    };
  }
}
