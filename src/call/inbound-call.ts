import { randomInt } from 'node:crypto';
import type { Clock } from '../core/clock.js';
import { ProviderError, errorMessage } from '../core/errors.js';
import type { G711Codec } from '../core/audio.js';
import type { MediaClock } from '../media/media-clock.js';
import type { PortLease, PortPool } from '../media/port-pool.js';
import {
  SdpNegotiationError,
  buildAnswer,
  buildOffer,
  selectMedia,
  type LocalMediaParams,
  type NegotiatedMedia,
} from '../media/sdp.js';
import type { RealtimeProvider, RealtimeSession, ToolDeclaration } from '../ai/realtime.js';
import { CallCanceledError, type InboundInvite } from '../sip/inbound-invite.js';
import type { ReInvite, SipDialog } from '../sip/sip-dialog.js';
import { EarlyAudio } from './early-audio.js';
import { goLive } from './go-live.js';
import type { MediaSession } from '../media/media-session.js';
import { withCallContext } from './call-context.js';
import type { OperatorTools } from './operator-tools.js';
import type { DtmfPolicy } from './call-features.js';
import type { Transferrer } from './transfer.js';
import type { Call } from './call.js';

/** What both call directions need to set a call up. */
export interface CallSetupDeps {
  ports: PortPool;
  mediaClock: MediaClock;
  clock: Clock;
  provider: RealtimeProvider;
  /** Address written into our SDP. */
  publicAddress: string;
  codecPreference: readonly G711Codec[];
  userAgent: string;
  instructions: string;
  greeting: string;
  connectTimeoutMs: number;
  busyRetryAfterS: number;
  /** Tools offered to the model (transfer, end_call, send_dtmf). */
  tools: readonly ToolDeclaration[];
  transferrer: Transferrer | undefined;
  dtmf: DtmfPolicy;
  /** Inbound INVITE headers (lower-case) passed to the agent as call context. */
  contextHeaders: readonly string[];
  /** Operator-defined HTTP tools (their declarations are already in `tools`). */
  operatorTools: OperatorTools | undefined;
}

/** How long we wait for the ACK that carries the answer to a late-offer 200 OK (RFC 3261 64·T1). */
const LATE_OFFER_ACK_TIMEOUT_MS = 32_000;

/**
 * Answers one INVITE: negotiate SDP, take a port, connect the AI (refusing with 503 if it cannot be
 * reached, so no caller sits in dead air), answer, and start media. Every failure ends the call
 * through call.end(); resources not yet owned by the call are freed here.
 */
export async function runInboundCall(invite: InboundInvite, call: Call, deps: CallSetupDeps): Promise<void> {
  const abort = new AbortController();
  invite.onCancel(() => {
    abort.abort();
    void call.end({ cause: 'caller-canceled', detail: 'CANCEL before answer' });
  });

  // 1. The offer (or none: late offer, where our 200 OK carries the offer and the ACK the answer).
  const lateOffer = invite.info.sdp.trim() === '';
  let offered: NegotiatedMedia | undefined;
  if (!lateOffer) {
    try {
      offered = selectMedia(invite.info.sdp, deps.codecPreference);
    } catch (error) {
      if (!(error instanceof SdpNegotiationError)) throw error;
      invite.reject(error.sipStatus, { headers: { Warning: error.warning } });
      await call.end({ cause: 'negotiation-failed', detail: error.message, sipStatus: error.sipStatus });
      return;
    }
  }
  // Late offer: we offer one codec, so the AI session's format is known before the answer arrives.
  const codec = offered?.codec ?? deps.codecPreference[0]!;

  // 2. A port, owned by this function until MediaSession takes it.
  let lease: PortLease | undefined;
  try {
    lease = await deps.ports.allocate();
  } catch (error) {
    rejectBusy(invite, deps, 'no RTP port free');
    await call.end({ cause: 'rejected', detail: errorMessage(error), sipStatus: 503 });
    return;
  }

  let session: RealtimeSession | undefined;
  try {
    if (call.isOver) return;
    invite.ringing();

    // 3. The AI, before we answer.
    try {
      session = await deps.provider.connect({
        codec,
        instructions: withCallContext(deps.instructions, {
          from: invite.info.fromUser,
          to: invite.info.toUser,
          headers: Object.fromEntries(
            deps.contextHeaders.flatMap((name) => {
              const value = invite.header(name);
              return value === undefined ? [] : [[name, value]];
            }),
          ),
        }),
        greeting: deps.greeting,
        tools: deps.tools,
        log: call.log,
        signal: abort.signal,
      });
    } catch (error) {
      if (call.isOver) return;
      const detail = error instanceof ProviderError ? `${error.code}: ${error.message}` : errorMessage(error);
      call.log.error({ reason: detail }, 'AI provider unavailable; refusing the call');
      rejectBusy(invite, deps, 'AI provider unavailable');
      await call.end({ cause: 'provider-failed', detail, sipStatus: 503 });
      return;
    }
    if (call.isOver) return;
    call.attachSession(session);
    // The greeting may start streaming before media exists; keep it for the first packets.
    const early = new EarlyAudio(session);

    // 4. Answer.
    const local: LocalMediaParams = {
      address: deps.publicAddress,
      port: lease.port,
      sessionId: String(randomInt(1, 2 ** 47)),
      sessionVersion: 1,
      userAgent: deps.userAgent,
    };
    const localSdp = offered ? buildAnswer(local, offered) : buildOffer(local, [codec]);
    call.transition('answering');
    let dialog: SipDialog;
    try {
      dialog = await invite.answer(localSdp);
    } catch (error) {
      if (error instanceof CallCanceledError) {
        await call.end({ cause: 'caller-canceled', detail: 'CANCEL raced the 200 OK' });
        return;
      }
      throw error;
    }
    call.attachDialog(dialog);
    dialog.on(
      'ended',
      ({ by, reason }) =>
        void call.end({ cause: by === 'remote' ? 'caller-hangup' : 'signalling-lost', detail: reason }),
    );

    // 5. Late offer: the answer arrives in the ACK.
    const negotiated = offered ?? (await answerFromAck(dialog, [codec]));
    if (call.isOver) return;

    // 6. Media and the bridge. From here the call owns the port.
    const media = goLive(call, lease, negotiated, session, early, dialog, deps);
    lease = undefined;
    dialog.on('reinvite', (reinvite) => handleReinvite(reinvite, dialog, media, local, call));
  } catch (error) {
    if (call.isOver) return; // already ending for its own reason (BYE, CANCEL, provider loss)
    if (error instanceof SdpNegotiationError) {
      await call.end({ cause: 'negotiation-failed', detail: error.message });
    } else {
      call.log.error({ err: error }, 'inbound call setup failed');
      invite.reject(500);
      await call.end({ cause: 'internal-error', detail: errorMessage(error), sipStatus: 500 });
    }
  } finally {
    // Anything the call did not take over is ours to free.
    lease?.release();
    if (session && call.isOver) session.close();
  }
}

function rejectBusy(invite: InboundInvite, deps: CallSetupDeps, why: string): void {
  invite.reject(503, {
    headers: { 'Retry-After': String(deps.busyRetryAfterS), Warning: `399 voxgate "${why}"` },
  });
}

function answerFromAck(dialog: SipDialog, codecs: readonly G711Codec[]): Promise<NegotiatedMedia> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new SdpNegotiationError('no ACK with an SDP answer', 400, '399 voxgate "No answer"')),
      LATE_OFFER_ACK_TIMEOUT_MS,
    );
    dialog.once('ack', (sdp) => {
      clearTimeout(timer);
      try {
        resolve(selectMedia(sdp, codecs));
      } catch (error) {
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
    dialog.once('ended', () => {
      clearTimeout(timer);
      reject(new CallCanceledError('dialog ended before the ACK'));
    });
  });
}

/**
 * Re-INVITE: follow the media to a new address, answer hold (sendonly → recvonly, inactive → inactive)
 * per RFC 3264, and resume. The codec is fixed for the call; an offer without it gets 488.
 */
function handleReinvite(
  reinvite: ReInvite,
  dialog: SipDialog,
  media: MediaSession,
  local: LocalMediaParams,
  call: Call,
): void {
  local.sessionVersion++;
  if (reinvite.sdp.trim() === '') {
    // Offerless re-INVITE: we offer, the ACK answers.
    reinvite.accept(buildOffer(local, [media.codec]));
    dialog.once('ack', (sdp) => {
      try {
        media.update(selectMedia(sdp, [media.codec]));
      } catch (error) {
        call.log.warn({ err: errorMessage(error) }, 'unusable SDP in ACK to re-INVITE; media unchanged');
      }
    });
    return;
  }
  let next: NegotiatedMedia;
  try {
    next = selectMedia(reinvite.sdp, [media.codec]);
  } catch (error) {
    local.sessionVersion--;
    const warning = error instanceof SdpNegotiationError ? error.warning : undefined;
    call.log.warn({ err: errorMessage(error) }, 're-INVITE refused; call continues with current media');
    reinvite.reject(error instanceof SdpNegotiationError ? error.sipStatus : 500, warning);
    return;
  }
  media.update(next);
  reinvite.accept(buildAnswer(local, next));
  call.log.info(
    { remoteDirection: next.remoteDirection, remote: `${next.remoteAddress}:${next.remotePort}` },
    'media updated by re-INVITE',
  );
}
