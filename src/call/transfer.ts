import { randomInt } from 'node:crypto';
import { errorMessage } from '../core/errors.js';
import { MediaSession } from '../media/media-session.js';
import { MediaRelay } from '../media/relay.js';
import { buildOffer, selectMedia } from '../media/sdp.js';
import { ringbackCadence } from '../media/tones.js';
import { OutboundCallFailed } from '../sip/outbound-invite.js';
import type { SipDialog } from '../sip/sip-dialog.js';
import type { Call } from './call.js';
import { CallControlError } from './errors.js';
import type { CallSetupDeps } from './inbound-call.js';
import { requestUri, type OutboundSetup } from './outbound-call.js';

export type TransferMode = 'refer' | 'bridge';

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

/**
 * Hands a caller to a human. REFER first (the carrier connects them and we leave at once), falling back
 * to a bridged call through our trunk when REFER is not allowed. The caller hears ringback throughout;
 * on failure the agent is back and told why.
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

  async transfer(call: Call, name?: string): Promise<TransferResult> {
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
          : await this.#bridge(call, target, uri);
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
          return this.#bridge(call, target, uri);
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

  /** Calls the human through our trunk and relays RTP between the legs; the agent leaves the media path. */
  async #bridge(call: Call, target: string, uri: string): Promise<TransferResult> {
    if (!this.outbound)
      return { ok: false, target, mode: 'bridge', reason: 'no trunk configured for a bridged transfer' };
    const callerMedia = call.media!;
    const lease = await this.deps.ports.allocate();
    let handedOver = false;
    let dialog: SipDialog | undefined;
    // The caller hanging up while the human's phone rings cancels that INVITE at once.
    const ringing = new AbortController();
    const onCallEnded = (): void => ringing.abort();
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
        signal: ringing.signal,
      });
      if (call.isOver) {
        await dialog.hangUp();
        return { ok: false, target, mode: 'bridge', reason: 'caller left during the transfer' };
      }
      const humanMedia = new MediaSession(
        lease,
        selectMedia(dialog.remoteSdp, [callerMedia.codec]),
        this.deps.mediaClock,
        this.deps.clock,
        call.log,
      );
      handedOver = true;
      callerMedia.outbound.setFiller(undefined);
      callerMedia.setTransferInProgress(false);
      call.attachTransferLeg({ dialog, media: humanMedia, relay: new MediaRelay(callerMedia, humanMedia) });
      call.releaseAgent();
      call.transition('bridged');
      dialog.on(
        'ended',
        ({ reason }: { reason: string }) =>
          void call.end({ cause: 'callee-hangup', detail: `transfer target hung up (${reason})` }),
      );
      return { ok: true, target, mode: 'bridge' };
    } catch (error) {
      // Answered but unusable (e.g. no common codec): do not leave the human in dead air.
      if (dialog && !handedOver) await dialog.hangUp().catch(() => undefined);
      const reason =
        error instanceof OutboundCallFailed ? `${error.failure} (${error.status})` : errorMessage(error);
      return { ok: false, target, mode: 'bridge', reason };
    } finally {
      call.off('ended', onCallEnded);
      if (!handedOver) lease.release();
    }
  }
}
