import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { errorMessage } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { TranscriptEntry } from './call-control.js';

/**
 * Call events POSTed to a per-call URL (PlaceCallRequest.webhookUrl) or else the global WEBHOOK_URL.
 *
 * Wire format: `POST <url>`, `Content-Type: application/json`, body `{id, type, callId, timestamp, data}`
 * (`id` is unique per event and stays the same across retries: use it to de-duplicate; `timestamp` is
 * when the event happened, ISO 8601). Headers:
 * - `X-Voxgate-Timestamp`: Unix seconds when this attempt was signed;
 * - `X-Voxgate-Signature: v1=<hex>`: HMAC-SHA256 with WEBHOOK_SECRET over `${timestamp}.${rawBody}`.
 * Receivers verify with {@link verifyWebhookSignature} over the raw body bytes, before parsing.
 *
 * Delivery is at-least-once and unordered between calls. A 2xx is success; network errors, timeouts,
 * 408, 429 and 5xx are retried with exponential back-off and jitter (429/503 Retry-After honoured up to
 * the back-off cap); other statuses (including redirects, which are not followed) are not retried.
 */

export const WEBHOOK_EVENT_TYPES = [
  'call.ringing',
  'call.answered',
  'call.transfer.started',
  'call.transfer.succeeded',
  'call.transfer.failed',
  'call.ended',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

export interface WebhookEventData {
  'call.ringing': { direction: 'inbound' | 'outbound'; from?: string | undefined; to?: string | undefined };
  'call.answered': { direction: 'inbound' | 'outbound' };
  'call.transfer.started': { target: string };
  'call.transfer.succeeded': { target: string };
  'call.transfer.failed': { target: string; reason: string; sipStatus?: number | undefined };
  'call.ended': {
    /** The call layer's TerminationCause, e.g. `caller-hangup`. */
    reason: string;
    detail?: string | undefined;
    sipStatus?: number | undefined;
    durationMs: number;
    transcript: TranscriptEntry[];
  };
}

/** What the call layer hands to dispatch(); the dispatcher adds `id` and `timestamp`. */
export type WebhookEvent = {
  [K in WebhookEventType]: { type: K; callId: string; data: WebhookEventData[K] };
}[WebhookEventType];

/** Attempts per event, the first included: with the default back-off that spans about 30 s. */
export const WEBHOOK_MAX_ATTEMPTS = 5;
/** First retry delay; doubles per attempt. */
export const WEBHOOK_BASE_DELAY_MS = 1_000;
/** Cap on any single retry delay (also caps a receiver's Retry-After). */
export const WEBHOOK_MAX_DELAY_MS = 30_000;
/** Per-attempt timeout: receivers should answer at once and process later. */
export const WEBHOOK_REQUEST_TIMEOUT_MS = 10_000;
/** Events waiting for a delivery slot; beyond this new events are dropped (and counted). */
export const WEBHOOK_MAX_QUEUE = 1_000;
/** Deliveries (including their retry waits) in progress at once. */
export const WEBHOOK_CONCURRENCY = 4;
/** Default for close(): long enough for a first attempt to finish at shutdown, short of a stuck drain. */
export const WEBHOOK_CLOSE_TIMEOUT_MS = 5_000;
/** Suggested receiver tolerance for verifyWebhookSignature (replay window). */
export const WEBHOOK_SIGNATURE_TOLERANCE_S = 300;

export const WEBHOOK_TIMESTAMP_HEADER = 'x-voxgate-timestamp';
export const WEBHOOK_SIGNATURE_HEADER = 'x-voxgate-signature';
const SIGNATURE_VERSION = 'v1';

/** The URL if it is an absolute http(s) URL without credentials, else undefined. */
export function parseWebhookUrl(raw: string): URL | undefined {
  if (!URL.canParse(raw)) return undefined;
  const url = new URL(raw);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  if (url.username !== '' || url.password !== '') return undefined;
  return url;
}

export function isValidWebhookUrl(raw: string): boolean {
  return parseWebhookUrl(raw) !== undefined;
}

/** Hex HMAC-SHA256 over `${timestamp}.${body}`. */
export function signWebhook(secret: string, timestamp: string, body: string | Uint8Array): string {
  return createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex');
}

/**
 * For receivers: true when `header` (`v1=<hex>`, several may be comma-separated during secret rotation)
 * holds a valid signature of `body` at `timestamp`, and the timestamp is within `toleranceS` of now.
 * Compares in constant time. `body` must be the raw bytes received.
 */
export function verifyWebhookSignature(
  secret: string,
  timestamp: string,
  body: string | Uint8Array,
  header: string,
  toleranceS: number,
  nowMs: number = Date.now(),
): boolean {
  if (!/^\d{1,12}$/.test(timestamp)) return false;
  if (Math.abs(nowMs / 1000 - Number(timestamp)) > toleranceS) return false;
  const expected = Buffer.from(signWebhook(secret, timestamp, body), 'hex');
  let valid = false;
  for (const part of header.split(',')) {
    const [version, hex] = part.trim().split('=', 2);
    if (version !== SIGNATURE_VERSION || hex === undefined || !/^[0-9a-f]{64}$/i.test(hex)) continue;
    if (timingSafeEqual(Buffer.from(hex, 'hex'), expected)) valid = true;
  }
  return valid;
}

/** The timers the dispatcher uses (all of them: back-off, per-request timeout, close deadline). */
export interface WebhookTimers {
  setTimeout(callback: () => void, ms: number): NodeJS.Timeout;
  clearTimeout(timer: NodeJS.Timeout): void;
}

const realTimers: WebhookTimers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (timer) => clearTimeout(timer),
};

export interface WebhookDispatcherOptions {
  /** WEBHOOK_SECRET; required, events are never sent unsigned. */
  secret: string;
  /** WEBHOOK_URL: used when dispatch() gets no per-call URL. */
  defaultUrl?: string | undefined;
  logger: Logger;
  maxAttempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  requestTimeoutMs?: number;
  maxQueue?: number;
  concurrency?: number;
  /** Seams for tests. */
  random?: () => number;
  now?: () => number;
  timers?: WebhookTimers;
}

export interface WebhookStats {
  queued: number;
  inFlight: number;
  delivered: number;
  /** Gave up: a non-retryable status, or retries exhausted. */
  failed: number;
  /** Never sent: queue full, unserialisable, bad URL, or left over at close(). */
  dropped: number;
}

interface Job {
  url: string;
  type: WebhookEventType;
  callId: string;
  body: string;
}

type AttemptOutcome =
  { kind: 'delivered' } | { kind: 'retry'; afterMs: number | undefined } | { kind: 'fatal' };

/**
 * Fire-and-forget webhook delivery: dispatch() never blocks or throws; a bounded queue feeds a few
 * concurrent deliveries that retry with back-off; close() drains within a deadline, then aborts what
 * is left and clears every timer it started.
 */
export class WebhookDispatcher {
  readonly #secret: string;
  readonly #defaultUrl: string | undefined;
  readonly #log: Logger;
  readonly #maxAttempts: number;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #requestTimeoutMs: number;
  readonly #maxQueue: number;
  readonly #concurrency: number;
  readonly #random: () => number;
  readonly #now: () => number;
  readonly #timers: WebhookTimers;
  readonly #queue: Job[] = [];
  /** Aborted by close() after its deadline: cancels in-flight requests and retry waits. */
  readonly #shutdown = new AbortController();
  #inFlight = 0;
  #delivered = 0;
  #failed = 0;
  #dropped = 0;
  #closing: Promise<void> | undefined;
  #onIdle: (() => void) | undefined;

  constructor(options: WebhookDispatcherOptions) {
    if (options.secret === '') throw new RangeError('WebhookDispatcher needs a non-empty secret');
    if (options.defaultUrl !== undefined && !isValidWebhookUrl(options.defaultUrl)) {
      throw new TypeError('WEBHOOK_URL must be an http:// or https:// URL without credentials');
    }
    this.#secret = options.secret;
    this.#defaultUrl = options.defaultUrl;
    this.#log = options.logger;
    this.#maxAttempts = Math.max(1, options.maxAttempts ?? WEBHOOK_MAX_ATTEMPTS);
    this.#baseDelayMs = options.baseDelayMs ?? WEBHOOK_BASE_DELAY_MS;
    this.#maxDelayMs = options.maxDelayMs ?? WEBHOOK_MAX_DELAY_MS;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? WEBHOOK_REQUEST_TIMEOUT_MS;
    this.#maxQueue = options.maxQueue ?? WEBHOOK_MAX_QUEUE;
    this.#concurrency = Math.max(1, options.concurrency ?? WEBHOOK_CONCURRENCY);
    this.#random = options.random ?? Math.random;
    this.#now = options.now ?? Date.now;
    this.#timers = options.timers ?? realTimers;
  }

  stats(): WebhookStats {
    return {
      queued: this.#queue.length,
      inFlight: this.#inFlight,
      delivered: this.#delivered,
      failed: this.#failed,
      dropped: this.#dropped,
    };
  }

  /** Queues one event for `url` (else the default URL). Never throws; a no-op when there is no URL. */
  dispatch(event: WebhookEvent, url?: string): void {
    try {
      const target = url ?? this.#defaultUrl;
      if (target === undefined) return;
      if (this.#closing !== undefined) {
        this.#drop(event, 'dispatcher closed');
        return;
      }
      if (!isValidWebhookUrl(target)) {
        this.#drop(event, 'invalid webhook URL');
        return;
      }
      if (this.#queue.length >= this.#maxQueue) {
        this.#drop(event, 'queue full');
        return;
      }
      const body = JSON.stringify({
        id: randomUUID(),
        type: event.type,
        callId: event.callId,
        timestamp: new Date(this.#now()).toISOString(),
        data: event.data,
      });
      this.#queue.push({ url: target, type: event.type, callId: event.callId, body });
      this.#pump();
    } catch (error) {
      // Unserialisable data (a BigInt, a cycle) or a caller passing garbage: count it, never throw.
      this.#dropped++;
      this.#log.warn({ err: errorMessage(error), dropped: this.#dropped }, 'webhook dropped');
    }
  }

  /**
   * Stops accepting events and waits up to `timeoutMs` for queued and in-flight deliveries (retries
   * included); then aborts the rest (counted as dropped). Idempotent; never rejects.
   */
  close(timeoutMs: number = WEBHOOK_CLOSE_TIMEOUT_MS): Promise<void> {
    this.#closing ??= this.#close(timeoutMs);
    return this.#closing;
  }

  async #close(timeoutMs: number): Promise<void> {
    const idle = new Promise<void>((resolve) => {
      this.#onIdle = resolve;
    });
    this.#checkIdle();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((resolve) => {
      timer = this.#timers.setTimeout(() => resolve('timeout'), timeoutMs);
    });
    const outcome = await Promise.race([idle, deadline]);
    if (timer !== undefined) this.#timers.clearTimeout(timer);
    if (outcome === 'timeout') {
      const left = this.#queue.length + this.#inFlight;
      this.#dropped += this.#queue.length;
      this.#queue.length = 0;
      this.#shutdown.abort();
      await idle;
      this.#log.warn({ left }, 'webhook deliveries abandoned at shutdown');
    }
  }

  #drop(event: { type: string; callId: string }, why: string): void {
    this.#dropped++;
    this.#log.warn(
      { type: event.type, callId: event.callId, why, dropped: this.#dropped },
      'webhook dropped',
    );
  }

  #pump(): void {
    while (this.#inFlight < this.#concurrency) {
      const job = this.#queue.shift();
      if (job === undefined) break;
      this.#inFlight++;
      void this.#deliver(job).finally(() => {
        this.#inFlight--;
        this.#pump();
        this.#checkIdle();
      });
    }
  }

  #checkIdle(): void {
    if (this.#inFlight === 0 && this.#queue.length === 0) this.#onIdle?.();
  }

  async #deliver(job: Job): Promise<void> {
    const log = this.#log.child({ type: job.type, callId: job.callId, host: new URL(job.url).host });
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.#attempt(job, log, attempt);
      if (this.#shutdown.signal.aborted) {
        if (outcome.kind === 'delivered') this.#delivered++;
        else this.#dropped++;
        return;
      }
      if (outcome.kind === 'delivered') {
        this.#delivered++;
        return;
      }
      if (outcome.kind === 'fatal' || attempt >= this.#maxAttempts) {
        this.#failed++;
        log.warn({ attempts: attempt }, 'webhook delivery failed; giving up');
        return;
      }
      if (!(await this.#sleep(this.#retryDelay(attempt, outcome.afterMs)))) {
        this.#dropped++;
        return;
      }
    }
  }

  /** Resolves true after `ms`, or false at once when close() gives up; the timer never outlives it. */
  #sleep(ms: number): Promise<boolean> {
    const signal = this.#shutdown.signal;
    if (signal.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const onAbort = (): void => {
        this.#timers.clearTimeout(timer);
        resolve(false);
      };
      const timer = this.#timers.setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve(true);
      }, ms);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  async #attempt(job: Job, log: Logger, attempt: number): Promise<AttemptOutcome> {
    const timestamp = String(Math.floor(this.#now() / 1000));
    // One controller per attempt, aborted by its own (clearable) timeout or by close(). Not
    // AbortSignal.timeout()/any(): that timer cannot be cleared, and close() must leave none behind.
    const controller = new AbortController();
    const onShutdown = (): void => controller.abort(this.#shutdown.signal.reason);
    const timeout = this.#timers.setTimeout(
      () => controller.abort(new Error(`no response within ${this.#requestTimeoutMs} ms`)),
      this.#requestTimeoutMs,
    );
    this.#shutdown.signal.addEventListener('abort', onShutdown, { once: true });
    try {
      const response = await fetch(job.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'voxgate-webhooks/1',
          [WEBHOOK_TIMESTAMP_HEADER]: timestamp,
          [WEBHOOK_SIGNATURE_HEADER]: `${SIGNATURE_VERSION}=${signWebhook(this.#secret, timestamp, job.body)}`,
        },
        body: job.body,
        redirect: 'manual',
        signal: controller.signal,
      });
      // Free the connection; the receiver's body is of no interest.
      await response.body?.cancel().catch(() => {});
      const status = response.status;
      if (status >= 200 && status < 300) return { kind: 'delivered' };
      const retryable = status === 408 || status === 429 || status >= 500;
      log.warn({ status, attempt, retryable }, 'webhook receiver refused the event');
      if (!retryable) return { kind: 'fatal' };
      return { kind: 'retry', afterMs: parseRetryAfterMs(response.headers.get('retry-after'), this.#now()) };
    } catch (error) {
      if (!this.#shutdown.signal.aborted)
        log.warn({ err: errorMessage(error), attempt }, 'webhook request failed');
      return { kind: 'retry', afterMs: undefined };
    } finally {
      this.#timers.clearTimeout(timeout);
      this.#shutdown.signal.removeEventListener('abort', onShutdown);
    }
  }

  /** Exponential back-off with "equal jitter": half fixed, half random, so retries of many events spread. */
  #retryDelay(attempt: number, retryAfterMs: number | undefined): number {
    const exponential = Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** (attempt - 1));
    const jittered = exponential / 2 + (this.#random() * exponential) / 2;
    return Math.min(this.#maxDelayMs, Math.max(jittered, retryAfterMs ?? 0));
  }
}

/** Retry-After as delay-seconds or an HTTP date; undefined when absent or unparsable. */
function parseRetryAfterMs(value: string | null, nowMs: number): number | undefined {
  if (value === null) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMs);
}
