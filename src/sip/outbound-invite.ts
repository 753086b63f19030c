import { SipDialog } from './sip-dialog.js';
import { isSrfSipError, type SrfInstance, type SrfOutgoingInvite } from './srf-types.js';

/** How an outbound INVITE that did not connect ended. */
export type OutboundFailure =
  'busy' | 'no-answer' | 'declined' | 'not-found' | 'auth-failed' | 'unreachable' | 'canceled' | 'failed';

export class OutboundCallFailed extends Error {
  override readonly name = 'OutboundCallFailed';
  constructor(
    readonly failure: OutboundFailure,
    /** Final SIP status (0 when none arrived, e.g. our ring timeout). */
    readonly status: number,
    readonly reason: string,
  ) {
    super(`outbound call failed: ${failure} (${status} ${reason})`);
  }
}

/** RFC 3261 final responses grouped into the outcomes an API caller acts on. */
export function failureOf(status: number): OutboundFailure {
  if (status === 486 || status === 600) return 'busy';
  if (status === 408 || status === 480) return 'no-answer';
  if (status === 603) return 'declined';
  if (status === 404 || status === 604) return 'not-found';
  if (status === 401 || status === 407) return 'auth-failed';
  if (status === 503 || status === 502 || status === 504) return 'unreachable';
  if (status === 487) return 'canceled';
  return 'failed';
}

export interface OutboundInviteOptions {
  /** Request-URI, e.g. sip:+15550100@trunk.pstn.twilio.com. */
  uri: string;
  localSdp: string;
  /** From header value (caller ID). */
  from: string;
  headers?: Record<string, string>;
  auth?: { username: string; password: string };
  /** Outbound proxy (sip: URI) to send the INVITE through. */
  proxy?: string;
  /** No final answer within this → CANCEL, outcome 'no-answer'. */
  ringTimeoutMs: number;
  /** 180/183; `sdp` is the early-media answer when present. */
  onProvisional?: (status: number, sdp: string) => void;
  /** Aborting sends CANCEL (outcome 'canceled'). */
  signal?: AbortSignal;
}

/**
 * Sends an INVITE and resolves with the dialog on 2xx; rejects with OutboundCallFailed otherwise.
 * Digest challenges (401/407) are answered once by srf with `auth`; a second challenge is 'auth-failed'.
 */
export async function sendInvite(
  srf: SrfInstance,
  options: OutboundInviteOptions,
  userAgent: string,
): Promise<SipDialog> {
  if (options.signal?.aborted) throw new OutboundCallFailed('canceled', 0, 'aborted before sending');
  let invite: SrfOutgoingInvite | undefined;
  let cancelCause: OutboundFailure | undefined;
  const cancel = (cause: OutboundFailure): void => {
    cancelCause ??= cause;
    invite?.cancel();
  };
  const timer = setTimeout(() => cancel('no-answer'), options.ringTimeoutMs);
  const onAbort = (): void => cancel('canceled');
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const dialog = await srf.createUAC(
      options.uri,
      {
        localSdp: options.localSdp,
        headers: {
          From: options.from,
          'User-Agent': userAgent,
          'Content-Type': 'application/sdp',
          ...options.headers,
        },
        ...(options.auth ? { auth: options.auth } : {}),
        ...(options.proxy ? { proxy: options.proxy } : {}),
      },
      {
        cbRequest: (err, req) => {
          if (err || !req) return;
          invite = req;
          if (cancelCause !== undefined) req.cancel(); // timeout/abort fired before the request existed
        },
        cbProvisional: (res) => options.onProvisional?.(res.status, res.body ?? ''),
      },
    );
    return new SipDialog(dialog, userAgent);
  } catch (error) {
    if (isSrfSipError(error)) {
      const failure =
        error.status === 487 && cancelCause !== undefined ? cancelCause : failureOf(error.status);
      throw new OutboundCallFailed(failure, error.status, error.reason ?? '');
    }
    throw new OutboundCallFailed('failed', 0, error instanceof Error ? error.message : String(error));
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
  }
}
