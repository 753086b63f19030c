import { randomUUID } from 'node:crypto';
import { InvalidStateError, errorMessage } from '../core/errors.js';
import { TypedEmitter } from '../core/events.js';
import type { Logger } from '../core/log.js';
import type { SrfInstance, SrfReceivedResponse } from './srf-types.js';

/**
 * Backstop for one REGISTER (challenge + credentialled retry included). Beyond sofia's own transaction
 * timeout (64×T1 = 32 s), so a dead registrar normally ends in sofia's 408, which also clears srf's
 * per-Call-ID digest bookkeeping; ours catches what srf never settles (admin socket lost mid-request).
 */
export const REGISTER_TIMEOUT_MS = 40_000;
/** stop() waits this long for a REGISTER already in flight: two REGISTERs with one Call-ID at once confuse srf's digest handling. */
export const STOP_IN_FLIGHT_WAIT_MS = 2_000;
/** Bound on the unregister at shutdown: a challenge round trip plus UDP retransmits; the registrar expires the binding anyway. */
export const UNREGISTER_TIMEOUT_MS = 3_000;
/** First retry delay after a failure; doubles per consecutive failure. */
export const RETRY_BASE_MS = 5_000;
/** Retry delay cap: jambonz regbot's fixed failure retry; slow enough not to trip a registrar's auth-failure ban. */
export const RETRY_MAX_MS = 300_000;
/** ±20 % spread so a fleet that lost its registrar does not come back in lock-step. */
export const RETRY_JITTER_RATIO = 0.2;
/**
 * Floor for the granted expiry. jambonz floors at 30 s, but refreshing later than the registrar's grant
 * lets the binding lapse; 2 s (refresh every 1 s) only stops a hot loop on a 0/1 s grant.
 */
export const MIN_GRANTED_EXPIRES_S = 2;
/** setTimeout fires at once for delays above 2^31-1 ms (~24.8 days). */
const MAX_TIMER_DELAY_MS = 2_147_483_647;

export type RegistrationStatus = 'idle' | 'registering' | 'registered' | 'failed' | 'unregistered';

export interface RegistrationState {
  /**
   * idle: not started. registering: first attempt under way. registered: the last REGISTER succeeded
   * (stays so while a refresh is in flight). failed: the last attempt failed; a retry is scheduled (stays
   * so while it runs). unregistered: stopped.
   */
  status: RegistrationStatus;
  /** When the registrar's binding lapses without a refresh (ms, on the seams' now() clock, Date.now by default). */
  expiresAt?: number;
  /** Why the last attempt failed, e.g. '403 Forbidden'; cleared by a success. */
  lastError?: string;
}

export interface RegistrationEvents extends Record<string, unknown[]> {
  /** Emitted on every status change. */
  state: [RegistrationState];
}

export interface RegistrationOptions {
  /** Registrar URI, e.g. 'sip:pbx.example.com', 'sip:192.0.2.10:5080;transport=tcp'. No user part. */
  registrar: string;
  /** Extension / auth user: the user part of the AOR and of our Contact, and the digest username. */
  user: string;
  password: string;
  /** AOR domain when it differs from the registrar host; the registrar then becomes the outbound proxy. */
  domain?: string;
  /** Requested binding lifetime (Expires). */
  expiresS: number;
  /**
   * Host[:port] for our Contact. Default: drachtio-server's own SIP address, which it writes in for
   * 'localhost' (honouring --external-ip). Set it only when the registrar must reach us by another name.
   */
  contactHost?: string;
  userAgent: string;
}

/** Time and randomness, injectable for tests. */
export interface RegistrationSeams {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  /** Wall-clock ms, used only for expiresAt. */
  now(): number;
  /** In [0, 1): jitter for retry delays. */
  random(): number;
}

const defaultSeams: RegistrationSeams = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
  now: () => Date.now(),
  random: () => Math.random(),
};

type Outcome =
  | { kind: 'response'; res: SrfReceivedResponse; sentContact: string | undefined }
  | { kind: 'timeout' }
  | { kind: 'error'; error: unknown };

interface Target {
  requestUri: string;
  proxy: string | undefined;
  aor: string;
  /** Contact URI in angle brackets, without ;expires. */
  contact: string;
  domain: string;
}

const USER_RE = /^[A-Za-z0-9._~!$&'()*+,=%-]+$/;
const HOST_RE = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?$/;
const REGISTRAR_RE = /^(sips?):(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?((?:;[^;\s]+)*)$/i;

function buildTarget(options: RegistrationOptions): Target {
  const match = REGISTRAR_RE.exec(options.registrar.trim());
  if (!match) {
    throw new TypeError(
      `registrar must look like sip:host[:port][;params] (no user part), got ${options.registrar}`,
    );
  }
  const scheme = (match[1] ?? 'sip').toLowerCase();
  const host = match[2] ?? '';
  const params = match[4] ?? '';
  if (!USER_RE.test(options.user)) throw new TypeError('user must be a non-empty SIP user part');
  const domain = options.domain ?? host;
  if (!HOST_RE.test(domain)) throw new TypeError(`domain must be a host name or address, got ${domain}`);
  const contactHost = options.contactHost ?? 'localhost';
  if (!HOST_RE.test(contactHost)) throw new TypeError(`contactHost must be host[:port], got ${contactHost}`);
  const transport = /;transport=([A-Za-z]+)/i.exec(params)?.[1]?.toLowerCase();
  const sameHost = domain.toLowerCase() === host.toLowerCase();
  return {
    // RFC 3261 §10.2: the Request-URI names the registrar's domain, no user part.
    requestUri: sameHost ? options.registrar.trim() : `${scheme}:${domain}`,
    proxy: sameHost ? undefined : options.registrar.trim(),
    aor: `<${scheme}:${options.user}@${domain}>`,
    contact: `<${scheme}:${options.user}@${contactHost}${transport ? `;transport=${transport}` : ''}>`,
    domain,
  };
}

/** Split a comma-separated header list, ignoring commas inside quotes and <>. */
function splitHeaderList(value: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c === '"' && value[i - 1] !== '\\') quoted = !quoted;
    else if (!quoted && c === '<') depth++;
    else if (!quoted && c === '>') depth = Math.max(0, depth - 1);
    else if (!quoted && depth === 0 && c === ',') {
      parts.push(value.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(value.slice(start).trim());
  return parts.filter(Boolean);
}

function parseNonNegativeInt(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const match = /^\s*(\d{1,10})\s*$/.exec(value);
  return match ? Number(match[1]) : undefined;
}

/** The ;expires= parameter of one Contact value (header params, not URI params). */
function contactExpires(contact: string): number | undefined {
  const close = contact.lastIndexOf('>');
  const params = close >= 0 ? contact.slice(close + 1) : contact.slice(Math.max(0, contact.indexOf(';')));
  const match = /;\s*expires\s*=\s*"?(\d{1,10})"?/i.exec(params);
  return match ? Number(match[1]) : undefined;
}

/** user@host:port of a Contact value, for matching our binding among the registrar's list. */
function contactKey(contact: string): string | undefined {
  const uri = /<([^>]*)>/.exec(contact)?.[1] ?? contact.split(';', 1)[0] ?? '';
  const match = /^(sips?):(?:([^@]*)@)?([^;?]+)/i.exec(uri.trim());
  if (!match) return undefined;
  const scheme = (match[1] ?? 'sip').toLowerCase();
  let hostport = (match[3] ?? '').toLowerCase();
  if (!/:\d+$/.test(hostport)) hostport += scheme === 'sips' ? ':5061' : ':5060';
  return `${match[2] ?? ''}@${hostport}`;
}

/**
 * REGISTER to a PBX/registrar as an extension (RFC 3261 §10): digest auth (answered by srf), refresh at
 * half the granted expiry, 423 Min-Expires, capped jittered back-off on failure, unregister on stop().
 * One Call-ID per instance with an increasing CSeq; never more than one REGISTER in flight.
 *
 * Contact: `<sip:{user}@localhost[;transport=x]>` unless contactHost is set. drachtio-server adds no
 * Contact to a REGISTER (only to INVITE/SUBSCRIBE; a REGISTER without one would merely query bindings),
 * but rewrites '@localhost' in From/To/Contact to the SIP address:port of the transport it sends on, or
 * its --external-ip: exactly where the registrar must send INVITEs for the extension.
 */
export class Registration extends TypedEmitter<RegistrationEvents> {
  readonly #srf: Pick<SrfInstance, 'request'>;
  readonly #options: RegistrationOptions;
  readonly #target: Target;
  readonly #log: Logger;
  readonly #seams: RegistrationSeams;
  readonly #callId = randomUUID();
  /** Highest CSeq that may have been used (a sent request reserves one more for srf's digest retry). */
  #cseq = 0;
  #requestedExpiresS: number;
  #status: RegistrationStatus = 'idle';
  #expiresAt: number | undefined;
  #lastError: string | undefined;
  #failures = 0;
  #timer: unknown;
  #inFlight: Promise<void> | undefined;
  /** A REGISTER may have left a binding at the registrar (so stop() must remove it). */
  #mayHaveBinding = false;
  #stopping: Promise<void> | undefined;

  constructor(
    srf: Pick<SrfInstance, 'request'>,
    options: RegistrationOptions,
    log: Logger,
    seams: Partial<RegistrationSeams> = {},
  ) {
    super((error, event) => log.error({ err: error, event }, 'registration listener threw'));
    if (!Number.isInteger(options.expiresS) || options.expiresS < 1) {
      throw new RangeError(`expiresS must be a positive integer, got ${options.expiresS}`);
    }
    this.#srf = srf;
    this.#options = options;
    this.#target = buildTarget(options);
    this.#requestedExpiresS = options.expiresS;
    this.#seams = { ...defaultSeams, ...seams };
    // Never the options object: it holds the password.
    this.#log = log.child({
      registrar: options.registrar,
      sipUser: options.user,
      sipDomain: this.#target.domain,
    });
  }

  get state(): RegistrationState {
    const state: RegistrationState = { status: this.#status };
    if (this.#expiresAt !== undefined) state.expiresAt = this.#expiresAt;
    if (this.#lastError !== undefined) state.lastError = this.#lastError;
    return state;
  }

  /** Sends the first REGISTER. Idempotent; throws InvalidStateError after stop(). */
  start(): void {
    if (this.#stopping) throw new InvalidStateError('registration already stopped');
    if (this.#status !== 'idle') return;
    this.#log.info({ expiresS: this.#requestedExpiresS }, 'sip registration starting');
    this.#setStatus('registering');
    this.#launch();
  }

  /** Re-REGISTER now (e.g. after drachtio reconnected), unless one is in flight or we are stopped/idle. */
  refresh(): void {
    if (this.#stopping || this.#status === 'idle' || this.#inFlight) return;
    this.#launch();
  }

  /** Cancels refreshes and retries, removes our binding (Expires: 0) with a bounded wait. Idempotent, never rejects. */
  stop(): Promise<void> {
    this.#stopping ??= this.#shutdown();
    return this.#stopping;
  }

  async #shutdown(): Promise<void> {
    this.#clearTimer();
    if (this.#inFlight) {
      // Let the running REGISTER (and srf's digest retry) finish first; see STOP_IN_FLIGHT_WAIT_MS.
      await this.#bounded(this.#inFlight, STOP_IN_FLIGHT_WAIT_MS);
    }
    if (this.#status !== 'idle' && this.#mayHaveBinding) {
      const outcome = await this.#transact(0, UNREGISTER_TIMEOUT_MS);
      if (outcome.kind === 'response' && outcome.res.status >= 200 && outcome.res.status < 300) {
        this.#log.info('sip registration removed');
      } else {
        this.#log.warn(
          { reason: describeFailure(outcome, UNREGISTER_TIMEOUT_MS) },
          'sip unregister failed; the registrar will expire the binding',
        );
      }
    }
    this.#mayHaveBinding = false;
    this.#expiresAt = undefined;
    this.#setStatus('unregistered');
  }

  #launch(): void {
    this.#clearTimer();
    const run = this.#register()
      .catch((error: unknown) => this.#log.error({ err: error }, 'sip registration attempt threw'))
      .finally(() => {
        if (this.#inFlight === run) this.#inFlight = undefined;
      });
    this.#inFlight = run;
  }

  async #register(): Promise<void> {
    this.#mayHaveBinding = true;
    const outcome = await this.#transact(this.#requestedExpiresS, REGISTER_TIMEOUT_MS);
    if (this.#stopping) return; // stop() owns what happens next
    if (outcome.kind === 'response') {
      const { res } = outcome;
      if (res.status >= 200 && res.status < 300) {
        this.#onRegistered(res, outcome.sentContact);
        return;
      }
      if (res.status === 423) {
        const minExpires = parseNonNegativeInt(res.get('Min-Expires'));
        if (minExpires !== undefined && minExpires > this.#requestedExpiresS) {
          this.#log.info(
            { requestedS: this.#requestedExpiresS, minExpiresS: minExpires },
            'registrar wants a longer expiry (423); re-registering',
          );
          this.#requestedExpiresS = minExpires;
          this.#launch(); // replaces this run as #inFlight
          return;
        }
      }
      // A final failure response: nothing new was bound; an earlier binding lives until it expires.
      this.#mayHaveBinding = this.#expiresAt !== undefined && this.#seams.now() < this.#expiresAt;
    }
    this.#onFailure(outcome);
  }

  #onRegistered(res: SrfReceivedResponse, sentContact: string | undefined): void {
    const granted = Math.max(MIN_GRANTED_EXPIRES_S, this.#grantedExpiresS(res, sentContact));
    const wasRegistered = this.#status === 'registered';
    this.#expiresAt = this.#seams.now() + granted * 1000;
    this.#lastError = undefined;
    this.#failures = 0;
    const refreshInMs = Math.min(MAX_TIMER_DELAY_MS, (granted * 1000) / 2);
    this.#schedule(refreshInMs);
    const fields = { grantedS: granted, refreshInMs };
    if (wasRegistered) this.#log.debug(fields, 'sip registration refreshed');
    else this.#log.info(fields, 'sip registration succeeded');
    this.#setStatus('registered');
  }

  #onFailure(outcome: Outcome): void {
    this.#failures++;
    const exp = RETRY_BASE_MS * 2 ** Math.min(this.#failures - 1, 30);
    const jitter = 1 + RETRY_JITTER_RATIO * (2 * this.#seams.random() - 1);
    const retryInMs = Math.round(Math.min(RETRY_MAX_MS, exp * jitter));
    const reason = describeFailure(outcome, REGISTER_TIMEOUT_MS);
    this.#lastError = reason;
    if (this.#expiresAt !== undefined && this.#seams.now() >= this.#expiresAt) this.#expiresAt = undefined;
    this.#schedule(retryInMs);
    this.#log.warn(
      {
        reason,
        status: outcome.kind === 'response' ? outcome.res.status : undefined,
        failures: this.#failures,
        retryInMs,
      },
      'sip registration failed',
    );
    this.#setStatus('failed');
  }

  /** Contact;expires= of our binding in the 200 (else the only Contact's), else Expires, else what we asked for. */
  #grantedExpiresS(res: SrfReceivedResponse, sentContact: string | undefined): number {
    const contacts = splitHeaderList(res.get('Contact') ?? '');
    const ourKey = sentContact === undefined ? undefined : contactKey(sentContact);
    const ours = ourKey === undefined ? undefined : contacts.find((c) => contactKey(c) === ourKey);
    const chosen = ours ?? (contacts.length === 1 ? contacts[0] : undefined);
    const fromContact = chosen === undefined ? undefined : contactExpires(chosen);
    return fromContact ?? parseNonNegativeInt(res.get('Expires')) ?? this.#requestedExpiresS;
  }

  /** One REGISTER; settles on its final response, a request error, or timeoutMs. Never rejects. */
  #transact(expiresS: number, timeoutMs: number): Promise<Outcome> {
    const cseq = this.#cseq + 1;
    this.#cseq = cseq + 1; // srf's digest retry may use cseq + 1; the final response tells us which
    const { requestUri, proxy, aor, contact } = this.#target;
    // A fresh object each time: srf's digest client writes CSeq, call-id, From and Authorization into it.
    const headers: Record<string, string> = {
      From: aor,
      To: aor,
      'call-id': this.#callId, // srf's digest retry uses this lowercase key too (no duplicate header)
      CSeq: `${cseq} REGISTER`,
      Contact: `${contact};expires=${expiresS}`,
      Expires: String(expiresS),
      'User-Agent': this.#options.userAgent,
    };
    const auth = { username: this.#options.user, password: this.#options.password };
    return new Promise<Outcome>((resolve) => {
      let settled = false;
      const timer = this.#seams.setTimeout(() => finish({ kind: 'timeout' }), timeoutMs);
      const finish = (outcome: Outcome): void => {
        if (settled) return;
        settled = true;
        this.#seams.clearTimeout(timer);
        resolve(outcome);
      };
      let sent;
      try {
        sent = this.#srf.request(requestUri, {
          method: 'REGISTER',
          headers,
          auth,
          ...(proxy === undefined ? {} : { proxy }),
        });
      } catch (error) {
        finish({ kind: 'error', error });
        return;
      }
      sent.then(
        (req) => {
          const sentContact = req.get('Contact');
          req.on('response', (res) => {
            if (res.status < 200) return;
            const used = parseNonNegativeInt(res.get('CSeq')?.split(/\s+/, 1)[0]);
            if (!settled && used !== undefined && used >= cseq) this.#cseq = used;
            finish({ kind: 'response', res, sentContact });
          });
        },
        (error: unknown) => finish({ kind: 'error', error }),
      );
    });
  }

  #bounded(promise: Promise<void>, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = this.#seams.setTimeout(resolve, ms);
      const done = (): void => {
        this.#seams.clearTimeout(timer);
        resolve();
      };
      promise.then(done, done);
    });
  }

  #schedule(ms: number): void {
    this.#clearTimer();
    this.#timer = this.#seams.setTimeout(() => {
      this.#timer = undefined;
      if (!this.#stopping && !this.#inFlight) this.#launch();
    }, ms);
  }

  #clearTimer(): void {
    if (this.#timer === undefined) return;
    this.#seams.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #setStatus(status: RegistrationStatus): void {
    if (this.#status === status) return;
    this.#status = status;
    this.safeEmit('state', this.state);
  }
}

function describeFailure(outcome: Outcome, timeoutMs: number): string {
  switch (outcome.kind) {
    case 'timeout':
      return `no final response within ${timeoutMs} ms`;
    case 'error':
      return `request not sent: ${errorMessage(outcome.error)}`;
    case 'response': {
      const { status, reason } = outcome.res;
      const text = `${status} ${reason}`.trim();
      // srf already answered one challenge with our credentials: a second one means they were refused.
      return status === 401 || status === 407 ? `${text} (credentials rejected)` : text;
    }
  }
}
