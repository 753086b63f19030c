import { randomInt } from 'node:crypto';
import type { RealtimeSession } from '../ai/realtime.js';
import { errorMessage } from '../core/errors.js';
import { MediaSession } from '../media/media-session.js';
import { MediaRelay } from '../media/relay.js';
import { buildOffer, selectMedia } from '../media/sdp.js';
import { ringbackCadence } from '../media/tones.js';
import { OutboundCallFailed } from '../sip/outbound-invite.js';
import type { SipDialog } from '../sip/sip-dialog.js';
import { AudioBridge } from './audio-bridge.js';
import type { Call } from './call.js';
import { CallControlError } from './errors.js';
import type { CallSetupDeps } from './inbound-call.js';
import { requestUri, type OutboundSetup } from './outbound-call.js';

export type TransferMode = 'refer' | 'bridge' | 'warm';

export interface TransferConfig {
  mode: TransferMode;
  /** Named destinations in configuration order; the first is the default. */
  targets: ReadonlyMap<string, string>;
  /** How long a REFER may take to reach a final NOTIFY, or a bridged INVITE to be answered. */
  timeoutMs: number;
}

export type TransferResult =
  | { ok: true; target: string; mode: TransferMode }
  | { ok: false; target: string; mode: TransferMode; reason: string };

/** REFER refusals that mean "this trunk does not do REFER": fall back to a bridged transfer. */
const REFER_NOT_ALLOWED = new Set([403, 405, 420, 501]);

/** Warm transfer: a realtime reply starts within 1-2 s; one that has not started by then never will
 * (a provider that cannot steer a turn), so the human is connected unbriefed. */
const BRIEFING_START_MAX_MS = 5_000;
/** The briefing is one or two sentences: never keep the caller on ringback (and the human listening) longer. */
const BRIEFING_MAX_MS = 20_000;
/** Queue empty and no agent audio for this long = the briefing has played out (providers stream a
 * reply in bursts far closer together than this). */
const BRIEFING_DONE_QUIET_MS = 600;
/** How often the briefing's playout is checked: one RTP packet time. */
const BRIEFING_POLL_MS = 20;

/**
 * Hands a caller to a human. REFER first (the carrier connects them and we leave at once), falling back
 * to a bridged call through our trunk when REFER is not allowed; or bridged from the start; or warm
 * (bridged, after the agent has briefed the human). The caller hears ringback throughout; on failure
 * the agent is back and told why.
 */
export class Transferrer {
  constructor(
    private readonly config: TransferConfig,
    private readonly deps: Pick<
      CallSetupDeps,
      'ports' | 'mediaClock' | 'clock' | 'publicAddress' | 'userAgent'
    >,
    private readonly outbound: OutboundSetup | undefined,
  ) {}

  get targetNames(): string[] {
    return [...this.config.targets.keys()];
  }

  /** `reason` (from the model) goes into a warm transfer's briefing. */
  async transfer(call: Call, name?: string, reason?: string): Promise<TransferResult> {
    const target = name ?? call.preferredTransferTarget ?? this.targetNames[0];
    const uri = target === undefined ? undefined : this.config.targets.get(target);
    if (target === undefined || uri === undefined) {
      throw new CallControlError(
        'destination_not_allowed',
        `unknown transfer destination ${JSON.stringify(name)}`,
      );
    }
    const media = call.media;
    if (call.state !== 'active' || !media || !call.dialog) {
      throw new CallControlError('invalid_state', `cannot transfer a call in state ${call.state}`);
    }
    call.transition('transferring');
    call.report({ type: 'transfer.started', target, mode: this.config.mode });
    call.bridge?.pause();
    media.outbound.setFiller(ringbackCadence(media.codec));
    media.setTransferInProgress(true);

    let result: TransferResult;
    try {
      result =
        this.config.mode === 'refer'
          ? await this.#refer(call, target, uri)
          : await this.#callHuman(call, target, uri, this.config.mode, reason);
    } catch (error) {
      result = { ok: false, target, mode: this.config.mode, reason: errorMessage(error) };
    }
    if (call.isOver) return result;
    if (result.ok) {
      call.report({ type: 'transfer.succeeded', target, mode: result.mode });
      if (result.mode === 'refer')
        void call.end({ cause: 'transferred', detail: `REFER to ${target} accepted` });
      return result;
    }
    // Back to the agent.
    media.outbound.setFiller(undefined);
    media.setTransferInProgress(false);
    call.transition('active');
    call.bridge?.resume();
    call.report({ type: 'transfer.failed', target, mode: result.mode, reason: result.reason });
    return result;
  }

  async #refer(call: Call, target: string, uri: string): Promise<TransferResult> {
    const outcome = await call.dialog!.refer(uri, this.config.timeoutMs);
    switch (outcome.outcome) {
      case 'succeeded':
        // Twilio and others wait up to 32 s for our BYE after the final NOTIFY: send it now (the caller).
        return { ok: true, target, mode: 'refer' };
      case 'refused':
        if (REFER_NOT_ALLOWED.has(outcome.status) && this.outbound) {
          call.log.info({ status: outcome.status }, 'REFER not allowed here; bridging the transfer instead');
          return this.#callHuman(call, target, uri, 'bridge', undefined);
        }
        return { ok: false, target, mode: 'refer', reason: `REFER refused with ${outcome.status}` };
      case 'failed':
        return {
          ok: false,
          target,
          mode: 'refer',
          reason: `transfer target answered ${outcome.status || 'nothing'}`,
        };
      case 'timeout':
        return { ok: false, target, mode: 'refer', reason: 'no final NOTIFY in time' };
    }
  }

  /**
   * Calls the human through our trunk and relays RTP between the legs; the agent leaves the media path.
   * Warm: before the legs are joined, the agent briefs the human on a second bridge while the caller
   * still hears ringback; if the human declines, does not answer or hangs up first, the caller is back
   * with the agent.
   */
  async #callHuman(
    call: Call,
    target: string,
    uri: string,
    mode: 'bridge' | 'warm',
    reason: string | undefined,
  ): Promise<TransferResult> {
    const failed = (why: string): TransferResult => ({ ok: false, target, mode, reason: why });
    if (!this.outbound)
      return failed(`no trunk configured for a ${mode === 'warm' ? 'warm' : 'bridged'} transfer`);
    const callerMedia = call.media!;
    const session = call.session;
    if (mode === 'warm' && !session) return failed('no agent to brief the transfer target');
    const lease = await this.deps.ports.allocate();
    let handedOver = false;
    let dialog: SipDialog | undefined;
    let humanMedia: MediaSession | undefined;
    // The caller hanging up while the human's phone rings cancels that INVITE at once; during the
    // briefing it ends the wait at once (the human leg is hung up below).
    const callerLeft = new AbortController();
    const onCallEnded = (): void => callerLeft.abort();
    call.once('ended', onCallEnded);
    try {
      const local = {
        address: this.deps.publicAddress,
        port: lease.port,
        sessionId: String(randomInt(1, 2 ** 47)),
        sessionVersion: 1,
        userAgent: this.deps.userAgent,
      };
      const destination = uri.replace(/^tel:/i, '');
      dialog = await this.outbound.placeCall({
        uri: requestUri(destination, this.outbound.trunk.uri),
        localSdp: buildOffer(local, [callerMedia.codec]),
        from: `<sip:${this.outbound.trunk.callerId}@localhost>`,
        ...(this.outbound.trunk.username
          ? { auth: { username: this.outbound.trunk.username, password: this.outbound.trunk.password } }
          : {}),
        ...(this.outbound.trunk.proxy ? { proxy: this.outbound.trunk.proxy } : {}),
        ringTimeoutMs: this.config.timeoutMs,
        signal: callerLeft.signal,
      });
      if (call.isOver) return failed('caller left during the transfer');
      humanMedia = new MediaSession(
        lease,
        selectMedia(dialog.remoteSdp, [callerMedia.codec]),
        this.deps.mediaClock,
        this.deps.clock,
        call.log,
      );
      if (mode === 'warm') {
        const briefing = await this.#brief(call, session!, dialog, humanMedia, reason, callerLeft.signal);
        if (!briefing.ok) return failed(briefing.reason);
        if (call.isOver) return failed('caller left during the transfer');
        // An over-long briefing cut at its bound must not delay what the caller says next.
        humanMedia.outbound.flush();
      }
      callerMedia.outbound.setFiller(undefined);
      callerMedia.setTransferInProgress(false);
      call.attachTransferLeg({ dialog, media: humanMedia, relay: new MediaRelay(callerMedia, humanMedia) });
      handedOver = true;
      call.releaseAgent();
      call.transition('bridged');
      dialog.on(
        'ended',
        ({ reason: why }: { reason: string }) =>
          void call.end({ cause: 'callee-hangup', detail: `transfer target hung up (${why})` }),
      );
      return { ok: true, target, mode };
    } catch (error) {
      return failed(
        error instanceof OutboundCallFailed ? `${error.failure} (${error.status})` : errorMessage(error),
      );
    } finally {
      call.off('ended', onCallEnded);
      if (!handedOver) {
        // Answered but not joined (declined briefing, caller gone, no common codec): no dead air for the human.
        if (dialog && !dialog.ended) await dialog.hangUp().catch(() => undefined);
        if (humanMedia)
          humanMedia.close(); // frees the lease too
        else lease.release();
      }
    }
  }

  /**
   * Warm transfer: the agent speaks to the human on its own bridge (the caller's stays paused, so the
   * caller hears only ringback), then we wait until the briefing has played out, within bounds.
   * Fails when the human hangs up or the caller leaves meanwhile.
   */
  async #brief(
    call: Call,
    session: RealtimeSession,
    dialog: SipDialog,
    humanMedia: MediaSession,
    reason: string | undefined,
    callerLeft: AbortSignal,
  ): Promise<{ ok: true } | { ok: false; reason: string }> {
    const clock = this.deps.clock;
    const answeredAt = clock.now();
    let firstAudioAt: number | undefined;
    let lastAudioAt = -Infinity;
    // The human talked over the briefing: wait for the agent's answer before counting quiet again.
    let awaitingAgent = false;
    const humanLeft = new AbortController();
    const onHumanLeft = (): void => humanLeft.abort();
    const onAudio = (): void => {
      const now = clock.now();
      firstAudioAt ??= now;
      lastAudioAt = now;
      awaitingAgent = false;
    };
    const onHumanSpeech = (): void => {
      awaitingAgent = true;
    };
    // Transcripts and provider loss are the caller's bridge's business: it still listens (paused).
    const bridge = new AudioBridge(
      humanMedia,
      session,
      { transcript: () => undefined, providerLost: () => undefined },
      clock,
      call.log,
    );
    dialog.once('ended', onHumanLeft);
    session.on('audio', onAudio);
    session.on('speechStarted', onHumanSpeech);
    session.respond(briefingInstructions(reason));
    let emptySince: number | undefined;
    type Outcome = 'played' | 'cut' | 'never started' | 'human left' | 'caller left';
    let outcome: Outcome;
    try {
      outcome = await pollUntil<Outcome>(() => {
        const now = clock.now();
        if (humanMedia.outbound.queuedMs > 0) emptySince = undefined;
        else emptySince ??= now;
        if (firstAudioAt === undefined)
          return now - answeredAt >= BRIEFING_START_MAX_MS ? 'never started' : undefined;
        const quiet =
          !awaitingAgent &&
          emptySince !== undefined &&
          now - emptySince >= BRIEFING_DONE_QUIET_MS &&
          now - lastAudioAt >= BRIEFING_DONE_QUIET_MS;
        if (quiet) return 'played';
        return now - answeredAt >= BRIEFING_MAX_MS ? 'cut' : undefined;
      }, [
        [humanLeft.signal, 'human left'],
        [callerLeft, 'caller left'],
      ]);
      bridge.stop();
      if (outcome === 'human left') {
        // The agent may still be streaming the briefing: let it finish (bounded) before the caller's
        // bridge resumes, so none of it is played to the caller.
        await pollUntil<true>(() => {
          const now = clock.now();
          const finished =
            firstAudioAt === undefined
              ? now - answeredAt >= BRIEFING_START_MAX_MS
              : now - lastAudioAt >= BRIEFING_DONE_QUIET_MS;
          return finished || now - answeredAt >= BRIEFING_MAX_MS ? true : undefined;
        }, [[callerLeft, true]]);
      }
    } finally {
      bridge.stop();
      dialog.off('ended', onHumanLeft);
      session.off('audio', onAudio);
      session.off('speechStarted', onHumanSpeech);
    }
    const now = clock.now();
    call.log.info(
      {
        outcome,
        answerToBriefingMs: firstAudioAt === undefined ? undefined : Math.round(firstAudioAt - answeredAt),
        briefingMs: firstAudioAt === undefined ? undefined : Math.round(now - firstAudioAt),
        waitedMs: Math.round(now - answeredAt),
      },
      'warm transfer: briefing over',
    );
    switch (outcome) {
      case 'human left':
        return { ok: false, reason: 'transfer target hung up during the briefing' };
      case 'caller left':
        return { ok: false, reason: 'caller left during the transfer' };
      default:
        // Played, cut at its bound, or never started (a provider that cannot steer a turn): connect.
        return { ok: true };
    }
  }
}

/**
 * Resolves with the first value `check` returns (polled every BRIEFING_POLL_MS), or at once with a
 * stop's value when its signal aborts.
 */
function pollUntil<T>(
  check: () => T | undefined,
  stops: ReadonlyArray<readonly [AbortSignal, T]>,
): Promise<T> {
  return new Promise((resolve) => {
    const cleanups: (() => void)[] = [];
    const finish = (value: T): void => {
      for (const cleanup of cleanups) cleanup();
      resolve(value);
    };
    for (const [signal, value] of stops) {
      if (signal.aborted) return finish(value);
      const onAbort = (): void => finish(value);
      signal.addEventListener('abort', onAbort, { once: true });
      cleanups.push(() => signal.removeEventListener('abort', onAbort));
    }
    const timer = setInterval(() => {
      const value = check();
      if (value !== undefined) finish(value);
    }, BRIEFING_POLL_MS);
    cleanups.push(() => clearInterval(timer));
  });
}

/** What the agent is asked to say to the human before the caller is put through. */
export function briefingInstructions(reason: string | undefined): string {
  return (
    'You are now speaking to the person who will take over this call, not the caller. In one or two ' +
    `sentences, tell them who is calling and what they need${reason ? `: ${reason}` : ''}. Then stop.`
  );
}
