import Srf from 'drachtio-srf';
import { TypedEmitter } from '../core/events.js';
import type { Logger } from '../core/log.js';
import { InboundInvite } from './inbound-invite.js';
import { sendInvite, type OutboundInviteOptions } from './outbound-invite.js';
import type { SipDialog } from './sip-dialog.js';
import type { SrfInstance } from './srf-types.js';

export interface SipAgentOptions {
  host: string;
  port: number;
  secret: string;
  reconnectMaxDelayMs: number;
  userAgent: string;
}

export interface SipAgentEvents extends Record<string, unknown[]> {
  connected: [hostports: string[]];
  disconnected: [];
  invite: [InboundInvite];
}

/**
 * The connection to drachtio-server and the entry point for new requests. The only module (with its
 * siblings in sip/) that touches drachtio-srf.
 */
export class SipAgent extends TypedEmitter<SipAgentEvents> {
  readonly #srf: SrfInstance;
  readonly #options: SipAgentOptions;
  readonly #log: Logger;
  #connected = false;
  #started = false;
  #closed = false;

  constructor(options: SipAgentOptions, log: Logger) {
    super((error, event) => log.error({ err: error, event }, 'sip listener threw'));
    this.#options = options;
    this.#log = log;
    this.#srf = new Srf() as unknown as SrfInstance;
    this.#wire();
  }

  get connected(): boolean {
    return this.#connected;
  }

  /** Connects and keeps reconnecting (capped back-off) until close(). Not a promise: watch 'connected'. */
  connect(): void {
    if (this.#started) return;
    this.#started = true;
    const { host, port, secret, reconnectMaxDelayMs } = this.#options;
    this.#log.info({ host, port }, 'connecting to drachtio-server');
    // retryMaxDelay must be set: srf's back-off is unbounded without it (sip-stack.md §1.2).
    this.#srf.connect({
      host,
      port,
      secret,
      reconnect: { retryMaxDelay: reconnectMaxDelayMs, maxAttempts: 0 },
    });
  }

  /** Out-of-dialog requests (REGISTER to a PBX); valid once connected. */
  get requester(): Pick<SrfInstance, 'request'> {
    return this.#srf;
  }

  /** Places a call through drachtio-server; see sendInvite for outcomes. */
  placeCall(options: OutboundInviteOptions): Promise<SipDialog> {
    return sendInvite(this.#srf, options, this.#options.userAgent);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#connected = false;
    try {
      this.#srf.disconnect();
    } catch (error) {
      this.#log.debug({ err: error }, 'drachtio disconnect failed');
    }
  }

  #wire(): void {
    const srf = this.#srf;
    srf.on('connect', (err, hostport, serverVersion) => {
      if (err) {
        this.#log.error({ err }, 'drachtio-server rejected the connection (check DRACHTIO_SECRET)');
        return;
      }
      this.#connected = true;
      const hostports = hostport.split(',').filter(Boolean);
      this.#log.info({ hostports, serverVersion }, 'drachtio connected');
      this.safeEmit('connected', hostports);
    });
    // An 'error' without a listener would throw and kill the process.
    srf.on('error', (err) => {
      this.#log.debug({ err }, 'drachtio connection error');
    });
    srf.on('close', () => {
      if (!this.#connected) return;
      this.#connected = false;
      if (!this.#closed) this.#log.warn('drachtio-server connection lost; reconnecting');
      this.safeEmit('disconnected');
    });
    srf.on('reconnecting', ({ delay, attempt }) => {
      this.#log.warn(
        { host: this.#options.host, port: this.#options.port, attempt, retryInMs: Math.round(delay) },
        'drachtio-server unreachable; retrying',
      );
    });
    srf.options((_req, res) => {
      res.send(200, {
        headers: {
          Allow: 'INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY',
          Accept: 'application/sdp',
          'User-Agent': this.#options.userAgent,
        },
      });
    });
    srf.invite((req, res) => {
      const invite = new InboundInvite(srf, req, res, this.#options.userAgent);
      if (this.listenerCount('invite') === 0) {
        invite.reject(503);
        return;
      }
      this.safeEmit('invite', invite);
    });
  }
}
