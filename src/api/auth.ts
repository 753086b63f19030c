import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';

/** Shorter tokens are refused at startup: 16 random characters is the least worth calling a secret. */
export const MIN_API_TOKEN_LENGTH = 16;

/** Treats an empty API_TOKEN like an absent one. */
export function normaliseToken(token: string | undefined): string | undefined {
  return token === undefined || token === '' ? undefined : token;
}

/** 127.0.0.0/8, ::1, IPv4-mapped 127.x, or the name `localhost`. */
export function isLoopbackHost(host: string): boolean {
  const h = host
    .trim()
    .replace(/^\[(.*)\]$/, '$1')
    .toLowerCase();
  if (h === 'localhost') return true;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h)?.[1];
  const address = mapped ?? h;
  switch (isIP(address)) {
    case 4:
      return address.startsWith('127.');
    case 6:
      return address === '::1' || /^(?:0{1,4}:){7}0{0,3}1$/.test(address);
    default:
      return false;
  }
}

/**
 * Startup guard: the call-control API places real (billable) calls, so it needs API_TOKEN unless it is
 * reachable only from this machine. Throws an Error with an actionable message; call it before listening.
 */
export function assertApiExposureSafe(options: { host: string; token: string | undefined }): void {
  const token = normaliseToken(options.token);
  if (token === undefined) {
    if (isLoopbackHost(options.host)) return;
    throw new Error(
      `refusing to start the HTTP API on ${options.host} without API_TOKEN: anyone who can reach it could ` +
        'place calls. Set API_TOKEN, or set HTTP_BIND_ADDRESS to a loopback address (127.0.0.1 or ::1).',
    );
  }
  assertTokenStrength(token);
}

/** Throws unless the token is long enough and usable in a Bearer header. */
export function assertTokenStrength(token: string): void {
  if (token.length < MIN_API_TOKEN_LENGTH) {
    throw new Error(`API_TOKEN is too short: use at least ${MIN_API_TOKEN_LENGTH} random characters`);
  }
  if (!/^[\x21-\x7e]+$/.test(token)) throw new Error('API_TOKEN must be printable ASCII without spaces');
}

export type BearerResult = 'ok' | 'missing' | 'invalid';

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/**
 * Checks an Authorization header against the expected token in constant time (both sides are hashed
 * first, so neither the content nor the length of the token leaks through timing).
 */
export class BearerAuth {
  readonly #expected: Buffer;

  constructor(token: string) {
    this.#expected = digest(token);
  }

  check(header: string | undefined): BearerResult {
    if (header === undefined) return 'missing';
    const match = /^Bearer[ ]+(\S+)[ ]*$/i.exec(header);
    if (match?.[1] === undefined) return 'invalid';
    return timingSafeEqual(digest(match[1]), this.#expected) ? 'ok' : 'invalid';
  }
}

/** A stable, non-reversible key for per-token state (rate limits) so the token itself is never stored. */
export function tokenKey(header: string | undefined): string | undefined {
  const token = header === undefined ? undefined : /^Bearer[ ]+(\S+)[ ]*$/i.exec(header)?.[1];
  return token === undefined ? undefined : `token:${digest(token).toString('hex').slice(0, 32)}`;
}
