import { TypedEmitter } from '../core/events.js';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import type { MediaTimeouts } from '../media/media-session.js';
import type { InboundInvite } from '../sip/inbound-invite.js';
import { TWILIO_HEADERS } from '../sip/twilio.js';
import { Call, type CallSummary } from './call.js';
import { runInboundCall, type CallSetupDeps } from './inbound-call.js';
import type { Termination } from './termination.js';
import { runOutboundCall, type OutboundCallRequest, type OutboundSetup } from './outbound-call.js';
import { CallControlError } from './errors.js';

export { CallControlError } from './errors.js';
export type { OutboundSetup } from './outbound-call.js';

export interface CallManagerOptions {
  /** Signalling sources INVITEs are accepted from (403 otherwise). */
  isAllowedSource: (address: string) => boolean;
  maxConcurrent: number;
  busyRetryAfterS: number;
  mediaTimeouts: MediaTimeouts;
}

export interface CallManagerEvents extends Record<string, unknown[]> {
  callStarted: [Call];
  callEnded: [Call, Termination];
}

/** Ended calls kept for the API to report outcomes (≈ 4 KB each). */
const ENDED_HISTORY_SIZE = 1000;

/** How often active calls are checked for media timeouts; one timer for all calls. */
const MEDIA_TIMEOUT_SWEEP_MS = 1000;

/**
 * Admission (call limit, shutdown), the registry of live calls, media-timeout sweeps and graceful
 * drain. Receives its collaborators through the constructor; knows calls only through Call.
 */
export class CallManager extends TypedEmitter<CallManagerEvents> {
  readonly #calls = new Map<string, Call>();
  readonly #ended = new Map<string, CallSummary>();
  readonly #options: CallManagerOptions;
  readonly #deps: CallSetupDeps;
  readonly #clock: Clock;
  readonly #log: Logger;
  #draining = false;
  #sweep: NodeJS.Timeout | undefined;

  readonly #outbound: OutboundSetup | undefined;

  constructor(
    options: CallManagerOptions,
    deps: CallSetupDeps,
    clock: Clock,
    log: Logger,
    outbound?: OutboundSetup,
  ) {
    super((error, event) => log.error({ err: error, event }, 'call manager listener threw'));
    this.#options = options;
    this.#deps = deps;
    this.#clock = clock;
    this.#log = log;
    this.#outbound = outbound;
  }

  get activeCount(): number {
    return this.#calls.size;
  }

  get draining(): boolean {
    return this.#draining;
  }

  list(): CallSummary[] {
    return [...this.#calls.values()].map((c) => c.summary());
  }

  get(id: string): Call | undefined {
    return this.#calls.get(id);
  }

  /** A live call's summary, or an ended call's final one while it is in the recent history. */
  summaryOf(id: string): CallSummary | undefined {
    return this.#calls.get(id)?.summary() ?? this.#ended.get(id);
  }

  /** Live calls, then recently ended ones (newest first). */
  history(): CallSummary[] {
    return [...this.list(), ...[...this.#ended.values()].reverse()];
  }

  /**
   * Starts an outbound call and returns it at once (ringing); the outcome arrives as the call's
   * state and termination. Throws CallControlError('busy') at the call limit or while draining.
   */
  placeCall(request: OutboundCallRequest): Call {
    if (!this.#outbound) throw new CallControlError('not_configured', 'outbound calls need SIP_TRUNK_URI');
    const busy = this.#busyReason();
    if (busy !== undefined) throw new CallControlError('busy', busy);
    const call = new Call('outbound', '', this.#deps.provider.name, this.#log, {
      from: request.from ?? this.#outbound.trunk.callerId,
      to: request.to,
    });
    call.preferredTransferTarget = request.transferTarget;
    this.#register(call);
    call.log.info({ pii: { to: request.to } }, 'call started');
    runOutboundCall(request, call, { ...this.#deps, ...this.#outbound }).catch((error: unknown) => {
      call.log.error({ err: error }, 'outbound call failed');
      void call.end({ cause: 'internal-error', detail: String(error) });
    });
    return call;
  }

  #busyReason(): string | undefined {
    if (this.#draining) return 'shutting down';
    if (this.#calls.size >= this.#options.maxConcurrent) return 'call limit reached';
    return undefined;
  }

  handleInvite(invite: InboundInvite): void {
    if (!this.#options.isAllowedSource(invite.info.sourceAddress)) {
      this.#log.warn(
        { source: invite.info.sourceAddress, sipCallId: invite.info.callId },
        'INVITE from a source not in SIP_ALLOWED_SOURCES; refused',
      );
      invite.reject(403, { headers: { Warning: '399 voxgate "Source not allowed"' } });
      return;
    }
    const busy = this.#busyReason();
    if (busy !== undefined) {
      this.#log.warn({ sipCallId: invite.info.callId, why: busy, active: this.#calls.size }, 'call refused');
      invite.reject(503, {
        headers: { 'Retry-After': String(this.#options.busyRetryAfterS), Warning: `399 voxgate "${busy}"` },
      });
      return;
    }
    const call = new Call('inbound', invite.info.callId, this.#deps.provider.name, this.#log, {
      from: invite.info.fromUser,
      to: invite.info.toUser,
    });
    this.#register(call);
    const twilio = {
      callSid: invite.header(TWILIO_HEADERS.callSid),
      accountSid: invite.header(TWILIO_HEADERS.accountSid),
    };
    if (twilio.callSid !== undefined) call.metadata.twilio = twilio;
    call.log.info(
      {
        ...(twilio.callSid !== undefined ? { twilio } : {}),
        source: `${invite.info.sourceAddress}:${invite.info.sourcePort}`,
        transport: invite.info.transport,
        pii: { from: invite.info.fromUser, to: invite.info.toUser },
      },
      'call started',
    );
    runInboundCall(invite, call, this.#deps).catch((error: unknown) => {
      call.log.error({ err: error }, 'inbound call failed');
      void call.end({ cause: 'internal-error', detail: String(error) });
    });
  }

  /**
   * Graceful shutdown: refuse new calls, wait up to `graceMs` for active ones to end, then hang up the
   * rest. Resolves when every call has ended.
   */
  async drain(graceMs: number): Promise<void> {
    this.#draining = true;
    if (this.#calls.size === 0) return;
    this.#log.info({ active: this.#calls.size, graceMs }, 'draining active calls');
    const allEnded = new Promise<void>((resolve) => {
      const check = (): void => {
        if (this.#calls.size === 0) {
          this.off('callEnded', check);
          resolve();
        }
      };
      this.on('callEnded', check);
    });
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), graceMs);
    });
    const outcome = await Promise.race([allEnded, graceOver]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      this.#log.warn({ remaining: this.#calls.size }, 'grace period over; hanging up remaining calls');
      await Promise.all(
        [...this.#calls.values()].map((c) => c.end({ cause: 'shutdown', detail: 'grace period over' })),
      );
    }
  }

  #register(call: Call): void {
    this.#calls.set(call.id, call);
    call.once('ended', (termination) => {
      this.#calls.delete(call.id);
      this.#ended.set(call.id, call.summary());
      if (this.#ended.size > ENDED_HISTORY_SIZE) this.#ended.delete(this.#ended.keys().next().value!);
      if (this.#calls.size === 0 && this.#sweep !== undefined) {
        clearInterval(this.#sweep);
        this.#sweep = undefined;
      }
      this.safeEmit('callEnded', call, termination);
    });
    this.#sweep ??= setInterval(this.#checkMediaTimeouts, MEDIA_TIMEOUT_SWEEP_MS);
    this.safeEmit('callStarted', call);
  }

  readonly #checkMediaTimeouts = (): void => {
    const now = this.#clock.now();
    for (const call of this.#calls.values()) {
      const expired = call.checkMediaTimeout(this.#options.mediaTimeouts, now);
      if (expired !== undefined) void call.end({ cause: 'media-timeout', detail: expired });
    }
  };
}
