import { TypedEmitter } from '../core/events.js';
import { TimeoutError } from '../core/errors.js';
import type { SrfDialog, SrfResponse } from './srf-types.js';
import { isTerminated, sipfragStatus } from './sipfrag.js';

/** A re-INVITE: answer it with our SDP, or reject it. */
export interface ReInvite {
  /** The new offer; empty for an offerless re-INVITE (then our SDP is the offer and the ACK brings the answer). */
  readonly sdp: string;
  accept(localSdp: string): void;
  reject(status: number, warning?: string): void;
}

export interface DialogEnded {
  /**
   * 'remote': the far end sent BYE. 'sip-stack': drachtio-server ended the dialog itself (e.g. no ACK
   * for our 200 OK within 64·T1) and sent the BYE on our behalf.
   */
  by: 'remote' | 'sip-stack';
  reason: string;
}

/** srf's reason for a BYE that came from the network; anything else is the server's own Reason text. */
const NETWORK_BYE_REASON = 'normal release';

/** How a REFER ended (RFC 3515): accepted and connected, refused outright, or failed/unknown later. */
export type ReferOutcome =
  | { outcome: 'succeeded'; status: number }
  | { outcome: 'refused'; status: number }
  | { outcome: 'failed'; status: number }
  | { outcome: 'timeout' };

/** An INFO request carrying DTMF (parsed by the DTMF stage). */
export interface InfoRequest {
  contentType: string | undefined;
  body: string;
}

export interface SipDialogEvents extends Record<string, unknown[]> {
  info: [InfoRequest];
  ended: [DialogEnded];
  reinvite: [ReInvite];
  /** ACK for our 2xx; `sdp` is the answer when our 2xx carried the offer (late offer). */
  ack: [sdp: string];
}

/** How long we wait for the BYE's response before treating the dialog as gone anyway. */
const BYE_TIMEOUT_MS = 5000;

/** An established INVITE dialog. */
type NotifyListener = (
  event: string | undefined,
  subscriptionState: string | undefined,
  body: string,
) => void;

export class SipDialog extends TypedEmitter<SipDialogEvents> {
  readonly #dialog: SrfDialog;
  readonly #notifyListeners = new Set<NotifyListener>();
  readonly #userAgent: string;
  #ended = false;

  constructor(dialog: SrfDialog, userAgent: string) {
    super();
    this.#dialog = dialog;
    this.#userAgent = userAgent;
    dialog.on('destroy', (_req, reason) => {
      if (this.#ended) return;
      this.#ended = true;
      const text = reason ?? NETWORK_BYE_REASON;
      this.safeEmit('ended', { by: text === NETWORK_BYE_REASON ? 'remote' : 'sip-stack', reason: text });
    });
    dialog.on('ack', (req) => this.safeEmit('ack', req.body ?? ''));
    dialog.on('modify', (req, res) => this.safeEmit('reinvite', this.#reinvite(req.body ?? '', res)));
    dialog.on('info', (req, res) => {
      res.send(200);
      this.safeEmit('info', { contentType: req.get('Content-Type'), body: req.body ?? '' });
    });
    dialog.on('notify', (req, res) => {
      res.send(200);
      for (const listener of this.#notifyListeners)
        listener(req.get('Event'), req.get('Subscription-State'), req.body ?? '');
    });
  }

  get id(): string {
    return this.#dialog.id;
  }

  get callId(): string {
    return this.#dialog.sip.callId;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** The far end's current SDP (the answer to our INVITE, or their latest offer). */
  get remoteSdp(): string {
    return this.#dialog.remote.sdp ?? '';
  }

  /** Sends BYE (with an optional RFC 3326 Reason header). Resolves even if the far end never answers. */
  async hangUp(reason?: string): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    const headers: Record<string, string> = { 'User-Agent': this.#userAgent };
    if (reason !== undefined) headers.Reason = reason;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.#dialog.destroy({ headers }),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new TimeoutError('BYE not answered')), BYE_TIMEOUT_MS);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Blind transfer (RFC 3515): REFER, then follow the implicit subscription's sipfrag NOTIFYs until a
   * final status or `timeoutMs`. The NOTIFY listener is in place before the REFER goes out, since the
   * first NOTIFY can race the 202. Does not hang up: the caller decides (BYE on success).
   */
  async refer(referTo: string, timeoutMs: number): Promise<ReferOutcome> {
    if (this.#ended) return { outcome: 'failed', status: 481 };
    let timer: NodeJS.Timeout | undefined;
    let listener: NotifyListener | undefined;
    const final = new Promise<ReferOutcome>((resolve) => {
      timer = setTimeout(() => resolve({ outcome: 'timeout' }), timeoutMs);
      listener = (event, state, body) => {
        if (event !== undefined && !/^refer\b/i.test(event)) return;
        const status = sipfragStatus(body);
        if (status !== undefined && status >= 200) {
          resolve(status < 300 ? { outcome: 'succeeded', status } : { outcome: 'failed', status });
        } else if (isTerminated(state)) {
          resolve({ outcome: 'failed', status: status ?? 0 });
        }
      };
      this.#notifyListeners.add(listener);
      // The caller may hang up mid-transfer: stop waiting at once.
      this.once('ended', () => resolve({ outcome: 'failed', status: 0 }));
    });
    try {
      const response = await this.#dialog.request({
        method: 'REFER',
        headers: {
          'Refer-To': `<${referTo}>`,
          'Referred-By': `<${this.#dialog.local.uri}>`,
          'User-Agent': this.#userAgent,
        },
      });
      if (response.status !== 202 && response.status !== 200)
        return { outcome: 'refused', status: response.status };
      return await final;
    } finally {
      clearTimeout(timer);
      if (listener) this.#notifyListeners.delete(listener);
    }
  }

  #reinvite(sdp: string, res: SrfResponse): ReInvite {
    return {
      sdp,
      accept: (localSdp) => {
        res.send(200, {
          body: localSdp,
          headers: {
            'Content-Type': 'application/sdp',
            Contact: this.#dialog.local.contact,
            'User-Agent': this.#userAgent,
          },
        });
      },
      reject: (status, warning) => {
        res.send(status, { headers: warning === undefined ? {} : { Warning: warning } });
      },
    };
  }
}
