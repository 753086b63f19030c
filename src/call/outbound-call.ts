import { randomInt } from 'node:crypto';
import { ProviderError, errorMessage } from '../core/errors.js';
import type { PortLease } from '../media/port-pool.js';
import { SdpNegotiationError, buildOffer, selectMedia, type LocalMediaParams } from '../media/sdp.js';
import type { RealtimeSession } from '../ai/realtime.js';
import {
  OutboundCallFailed,
  type OutboundFailure,
  type OutboundInviteOptions,
} from '../sip/outbound-invite.js';
import type { SipDialog } from '../sip/sip-dialog.js';
import type { Call } from './call.js';
import { EarlyAudio } from './early-audio.js';
import { goLive } from './go-live.js';
import { MediaSession } from '../media/media-session.js';
import type { CallSetupDeps } from './inbound-call.js';
import type { TerminationCause } from './termination.js';

/** What the HTTP API asks for. `to` is E.164 (+15550100…) or a sip: URI, already allow-listed. */
export interface OutboundCallRequest {
  to: string;
  /** Caller ID (E.164); defaults to the trunk's. */
  from?: string;
  instructions?: string;
  greeting?: string;
  voice?: string;
  /** Name from TRANSFER_TARGETS this call transfers to by default. */
  transferTarget?: string;
}

export interface TrunkConfig {
  /** sip:<name>.pstn.twilio.com, sip:pbx.example.com:5080;transport=tcp … */
  uri: string;
  username: string;
  password: string;
  callerId: string;
  /** Optional outbound proxy (sip: URI). */
  proxy: string;
  ringTimeoutMs: number;
}

export interface OutboundCallDeps extends CallSetupDeps {
  trunk: TrunkConfig;
  placeCall(options: OutboundInviteOptions): Promise<SipDialog>;
}

/** The outbound half of the dependencies: the trunk and a way to send INVITEs. */
export type OutboundSetup = Pick<OutboundCallDeps, 'trunk' | 'placeCall'>;

const FAILURE_CAUSE: Readonly<Record<OutboundFailure, TerminationCause>> = {
  busy: 'callee-busy',
  'no-answer': 'no-answer',
  declined: 'callee-declined',
  'not-found': 'callee-not-found',
  'auth-failed': 'trunk-auth-failed',
  unreachable: 'callee-unreachable',
  canceled: 'agent-hangup',
  failed: 'outbound-failed',
};

/** Request-URI for a destination: E.164 numbers go to the trunk host with the trunk's parameters. */
export function requestUri(to: string, trunkUri: string): string {
  if (/^sips?:/i.test(to)) return to;
  const match = /^sips?:(?:[^@]*@)?(.+)$/i.exec(trunkUri);
  const hostAndParams = match?.[1] ?? trunkUri;
  return `sip:${to}@${hostAndParams}`;
}

/**
 * Places one call: the AI session connects while the phone rings and its greeting is generated
 * then, so the callee hears it from the first packet after answer. Ends through call.end() on every path.
 */
export async function runOutboundCall(
  request: OutboundCallRequest,
  call: Call,
  deps: OutboundCallDeps,
): Promise<void> {
  const abort = new AbortController();
  call.once('ended', () => abort.abort());
  let lease: PortLease | undefined;
  let session: RealtimeSession | undefined;
  try {
    lease = await deps.ports.allocate();
    const codec = deps.codecPreference[0]!;
    const local: LocalMediaParams = {
      address: deps.publicAddress,
      port: lease.port,
      sessionId: String(randomInt(1, 2 ** 47)),
      sessionVersion: 1,
      userAgent: deps.userAgent,
    };
    const sessionPromise = deps.provider.connect({
      codec,
      instructions: request.instructions ?? deps.instructions,
      greeting: request.greeting ?? deps.greeting,
      tools: deps.tools,
      ...(request.voice !== undefined ? { voice: request.voice } : {}),
      log: call.log,
      signal: abort.signal,
    });
    // If the AI cannot come up, cancel the INVITE: nobody must answer into dead air.
    sessionPromise.catch(() => abort.abort());
    const from = request.from ?? deps.trunk.callerId;
    let ringing = false;
    let earlyMedia: MediaSession | undefined;
    const invite = deps.placeCall({
      uri: requestUri(request.to, deps.trunk.uri),
      localSdp: buildOffer(local, [codec]),
      from: `<sip:${from}@localhost>`, // drachtio-server replaces localhost with its own address
      ...(deps.trunk.username
        ? { auth: { username: deps.trunk.username, password: deps.trunk.password } }
        : {}),
      ...(deps.trunk.proxy ? { proxy: deps.trunk.proxy } : {}),
      ringTimeoutMs: deps.trunk.ringTimeoutMs,
      onProvisional: (status, sdp) => {
        if ((status === 180 || status === 183) && !ringing) {
          ringing = true;
          call.report({ type: 'ringing' });
        }
        // Early media (183 with SDP): start RTP now, so pinholes open and the callee's network hears
        // us from the first moment; the AI joins at answer.
        if (sdp.trim() !== '' && earlyMedia === undefined && lease !== undefined && !call.isOver) {
          try {
            earlyMedia = new MediaSession(
              lease,
              selectMedia(sdp, [codec]),
              deps.mediaClock,
              deps.clock,
              call.log,
            );
            lease = undefined;
            call.attachMedia(earlyMedia);
            call.log.info({ status }, 'early media started');
          } catch (error) {
            call.log.warn({ err: errorMessage(error) }, 'unusable early-media SDP; waiting for the answer');
          }
        }
      },
      signal: abort.signal,
    });
    invite.catch(() => undefined); // observed below; never an unhandled rejection

    let early: EarlyAudio;
    try {
      session = await sessionPromise;
      early = new EarlyAudio(session);
      call.attachSession(session);
    } catch (error) {
      await invite.then(
        (d) => d.hangUp(),
        () => undefined,
      );
      const detail = error instanceof ProviderError ? `${error.code}: ${error.message}` : errorMessage(error);
      await call.end({ cause: 'provider-failed', detail });
      return;
    }

    let dialog: SipDialog;
    try {
      dialog = await invite;
    } catch (error) {
      if (error instanceof OutboundCallFailed) {
        await call.end({
          cause: FAILURE_CAUSE[error.failure],
          detail: `${error.status} ${error.reason}`.trim(),
          sipStatus: error.status,
        });
        return;
      }
      throw error;
    }
    call.attachDialog(dialog);
    dialog.on(
      'ended',
      ({ by, reason }) =>
        void call.end({ cause: by === 'remote' ? 'callee-hangup' : 'signalling-lost', detail: reason }),
    );
    if (call.isOver) return;

    const negotiated = selectMedia(dialog.remoteSdp, [codec]);
    goLive(call, earlyMedia ?? lease, negotiated, session, early, dialog, deps);
    lease = undefined;
  } catch (error) {
    if (call.isOver) return;
    if (error instanceof SdpNegotiationError) {
      await call.end({ cause: 'negotiation-failed', detail: error.message });
    } else {
      call.log.error({ err: error }, 'outbound call setup failed');
      await call.end({ cause: 'internal-error', detail: errorMessage(error) });
    }
  } finally {
    lease?.release();
    if (session && call.isOver) session.close();
  }
}
