import { SipDialog } from './sip-dialog.js';
import type { SrfInstance, SrfRequest, SrfResponse, SrfSipError } from './srf-types.js';

/** The caller gave up (CANCEL) before we answered; drachtio-server has already sent 487. */
export class CallCanceledError extends Error {
  override readonly name = 'CallCanceledError';
}

export interface InviteInfo {
  callId: string;
  /** From and To user parts (phone numbers, usually): personal data, log under pii.* only. */
  fromUser: string;
  toUser: string;
  sourceAddress: string;
  sourcePort: number;
  transport: string;
  /** The offer; empty string for a late-offer INVITE. */
  sdp: string;
}

function userPart(header: string | undefined): string {
  if (header === undefined) return '';
  const match = /<?(?:sips?|tel):([^@;>]*)/i.exec(header);
  return match?.[1] ?? '';
}

/** A new INVITE, before we answer it. Exactly one of answer() or reject() may be used. */
export class InboundInvite {
  readonly info: InviteInfo;
  readonly #srf: SrfInstance;
  readonly #req: SrfRequest;
  readonly #res: SrfResponse;
  readonly #userAgent: string;
  #canceled = false;
  readonly #cancelListeners: (() => void)[] = [];

  constructor(srf: SrfInstance, req: SrfRequest, res: SrfResponse, userAgent: string) {
    this.#srf = srf;
    this.#req = req;
    this.#res = res;
    this.#userAgent = userAgent;
    this.info = {
      callId: req.get('Call-ID') ?? '',
      fromUser: userPart(req.get('From')),
      toUser: userPart(req.get('To')),
      sourceAddress: req.source_address,
      sourcePort: req.source_port,
      transport: req.protocol,
      sdp: req.body ?? '',
    };
    // A CANCEL can land during our own async setup, before createUAS listens (sip-stack.md §1.3).
    req.on('cancel', () => {
      this.#canceled = true;
      for (const listener of this.#cancelListeners.splice(0)) listener();
    });
  }

  get canceled(): boolean {
    return this.#canceled;
  }

  header(name: string): string | undefined {
    return this.#req.get(name);
  }

  onCancel(listener: () => void): void {
    if (this.#canceled) listener();
    else this.#cancelListeners.push(listener);
  }

  ringing(): void {
    if (!this.#canceled && !this.#res.finalResponseSent) this.#res.send(180);
  }

  reject(status: number, options: { reason?: string; headers?: Record<string, string> } = {}): void {
    if (this.#canceled || this.#res.finalResponseSent) return;
    const headers = { 'User-Agent': this.#userAgent, ...options.headers };
    if (options.reason !== undefined) this.#res.send(status, options.reason, { headers });
    else this.#res.send(status, { headers });
  }

  /** Sends 200 OK with our SDP. Resolves when the 200 is sent (the ACK comes later, see SipDialog). */
  async answer(localSdp: string): Promise<SipDialog> {
    if (this.#canceled) throw new CallCanceledError('caller canceled');
    try {
      const dialog = await this.#srf.createUAS(this.#req, this.#res, {
        localSdp,
        headers: { 'User-Agent': this.#userAgent, 'Content-Type': 'application/sdp' },
      });
      return new SipDialog(dialog, this.#userAgent);
    } catch (error) {
      if ((error as SrfSipError).status === 487 || this.#canceled)
        throw new CallCanceledError('caller canceled');
      throw error;
    }
  }
}
