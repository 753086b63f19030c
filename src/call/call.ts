import { randomUUID } from 'node:crypto';
import { TypedEmitter } from '../core/events.js';
import { errorMessage } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { MediaSession, MediaSessionStats, MediaTimeouts } from '../media/media-session.js';
import type { MediaRelay } from '../media/relay.js';
import type { RealtimeSession, Transcript } from '../ai/realtime.js';
import type { SipDialog } from '../sip/sip-dialog.js';
import type { AudioBridge, BridgeStats } from './audio-bridge.js';
import { CallStateMachine, type CallState } from './call-state.js';
import { reasonHeader, type Termination } from './termination.js';

/** The second leg of a bridged transfer. */
export interface TransferLeg {
  dialog: SipDialog;
  media: MediaSession;
  relay: MediaRelay;
}

/** Milestones that monitoring (webhooks, metrics) follows; `ended` carries the termination. */
export type CallProgress =
  | { type: 'ringing' }
  | { type: 'answered' }
  | { type: 'transfer.started'; target: string; mode: string }
  | { type: 'transfer.succeeded'; target: string; mode: string }
  | { type: 'transfer.failed'; target: string; mode: string; reason: string };

export interface CallEvents extends Record<string, unknown[]> {
  progress: [CallProgress];
  ended: [Termination];
}

export type CallDirection = 'inbound' | 'outbound';

export interface CallSummary {
  id: string;
  direction: CallDirection;
  state: CallState;
  provider: string;
  durationMs: number;
  termination: Termination | undefined;
  media: MediaSessionStats | undefined;
  bridge: BridgeStats | undefined;
  /** Wall-clock ms: created (INVITE), answered, ended. */
  timestamps: { created: number; answered: number | undefined; ended: number | undefined };
  /** SIP Call-ID (empty for an outbound call until the INVITE is sent). */
  sipCallId: string;
  /** Caller and callee (personal data: for the authenticated API, never for logs). */
  parties: CallParties;
  transcript: Transcript[];
  metadata: Call['metadata'];
}

export interface CallParties {
  from?: string | undefined;
  to?: string | undefined;
}

/** A teardown that takes longer than this is logged as hung (the BYE itself is bounded at 5 s). */
const TEARDOWN_WATCHDOG_MS = 10_000;

/**
 * One phone call. Owns its dialog, media and AI session and frees them through one idempotent
 * end(): BYE first, then media, then the provider; `ended` is emitted exactly once.
 */
export class Call extends TypedEmitter<CallEvents> {
  readonly id = randomUUID();
  readonly log: Logger;
  readonly transcript: Transcript[] = [];
  readonly #machine = new CallStateMachine();
  #dialog: SipDialog | undefined;
  #media: MediaSession | undefined;
  #session: RealtimeSession | undefined;
  #bridge: AudioBridge | undefined;
  #transferLeg: TransferLeg | undefined;
  #termination: Termination | undefined;
  #ending: Promise<void> | undefined;
  /** Media stats taken just before teardown closes the media (close() resets the jitter gauges). */
  #finalMediaStats: MediaSessionStats | undefined;

  /** Carrier identifiers worth recording (e.g. Twilio's CallSid for support tickets). */
  readonly metadata: { twilio?: { callSid: string | undefined; accountSid: string | undefined } } = {};

  /** Transfer destination name this call prefers (API `transferTarget`), else the configured default. */
  preferredTransferTarget: string | undefined;

  constructor(
    readonly direction: CallDirection,
    readonly sipCallId: string,
    readonly provider: string,
    rootLog: Logger,
    readonly parties: CallParties = {},
  ) {
    super((error, event) => this.log.error({ err: error, event }, 'call listener threw'));
    this.log = rootLog.child({ callId: this.id, sipCallId, direction, provider });
  }

  get state(): CallState {
    return this.#machine.state;
  }

  get termination(): Termination | undefined {
    return this.#termination;
  }

  get media(): MediaSession | undefined {
    return this.#media;
  }

  get dialog(): SipDialog | undefined {
    return this.#dialog;
  }

  /** Ending or ended: nothing new may be attached or started. */
  get isOver(): boolean {
    return this.#machine.is('ending', 'ended');
  }

  transition(to: CallState): void {
    this.#machine.transition(to);
    this.log.debug({ state: to }, 'call state');
  }

  attachMedia(media: MediaSession): void {
    this.#media = media;
  }

  attachSession(session: RealtimeSession): void {
    this.#session = session;
  }

  attachDialog(dialog: SipDialog): void {
    this.#dialog = dialog;
  }

  attachBridge(bridge: AudioBridge): void {
    this.#bridge = bridge;
  }

  get bridge(): AudioBridge | undefined {
    return this.#bridge;
  }

  get session(): RealtimeSession | undefined {
    return this.#session;
  }

  /** Bridged transfer: the call now also owns the human's leg and the relay between the two. */
  attachTransferLeg(leg: TransferLeg): void {
    this.#transferLeg = leg;
  }

  /** A media timeout on any of this call's legs, if one expired (paused legs never time out). */
  checkMediaTimeout(timeouts: MediaTimeouts, now: number): string | undefined {
    if (this.state !== 'active' && this.state !== 'bridged') return undefined;
    const caller = this.#media?.checkTimeout(timeouts, now);
    if (caller !== undefined) return caller;
    const human = this.#transferLeg?.media.checkTimeout(timeouts, now);
    return human === undefined ? undefined : `transfer target: ${human}`;
  }

  /** The agent leaves the conversation (bridged transfer): stop the bridge and close the session. */
  releaseAgent(): void {
    this.#bridge?.stop();
    this.#session?.close();
  }

  report(progress: CallProgress): void {
    this.log.info({ ...progress, type: undefined, event: progress.type }, 'call progress');
    this.safeEmit('progress', progress);
  }

  addTranscript(entry: Transcript): void {
    this.transcript.push(entry);
    this.log.debug({ pii: { role: entry.role, text: entry.text } }, 'transcript');
  }

  summary(): CallSummary {
    const t = this.#machine.timestamps;
    const start = t.active ?? t.ringing ?? Date.now();
    return {
      id: this.id,
      direction: this.direction,
      state: this.state,
      provider: this.provider,
      durationMs: t.active === undefined ? 0 : (t.ended ?? Date.now()) - start,
      termination: this.#termination,
      media: this.#finalMediaStats ?? this.#media?.stats(),
      bridge: this.#bridge ? { ...this.#bridge.stats } : undefined,
      timestamps: { created: t.ringing ?? Date.now(), answered: t.active, ended: t.ended },
      sipCallId: this.#dialog?.callId ?? this.sipCallId,
      parties: { ...this.parties },
      transcript: [...this.transcript],
      metadata: this.metadata,
    };
  }

  /** The one teardown path. Safe to call any number of times; the first termination wins. */
  end(termination: Termination): Promise<void> {
    this.#ending ??= this.#teardown(termination);
    return this.#ending;
  }

  async #teardown(termination: Termination): Promise<void> {
    this.#termination = termination;
    if (!this.#machine.is('ending', 'ended')) this.transition('ending');
    const watchdog = setTimeout(
      () => this.log.error({ cause: termination.cause }, 'call teardown is hanging'),
      TEARDOWN_WATCHDOG_MS,
    );
    try {
      this.#bridge?.stop();
      this.#transferLeg?.relay.stop();
      const reason = reasonHeader(termination.cause);
      await Promise.all(
        [this.#dialog, this.#transferLeg?.dialog].map(async (dialog) => {
          if (!dialog || dialog.ended) return;
          try {
            await dialog.hangUp(reason);
          } catch (error) {
            this.log.warn({ err: errorMessage(error) }, 'BYE failed; releasing the call anyway');
          }
        }),
      );
      this.#finalMediaStats = this.#media?.stats();
      this.#media?.close();
      this.#transferLeg?.media.close();
      this.#session?.close();
    } finally {
      clearTimeout(watchdog);
      this.transition('ended');
      const summary = this.summary();
      this.log.info(
        {
          cause: termination.cause,
          detail: termination.detail,
          durationMs: summary.durationMs,
          media: summary.media,
          bridge: summary.bridge,
          pii: { transcript: this.transcript },
        },
        'call ended',
      );
      this.safeEmit('ended', termination);
      this.removeAllListeners();
    }
  }
}
