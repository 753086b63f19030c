/**
 * The slice of drachtio-srf 5.0.29 that voxgate uses, typed as it behaves at run time. Its bundled
 * typings are wrong in several places (sip-stack.md §1.11): connect() is not a Promise, there is no
 * 'disconnect' event, req.sdp does not exist, destroy() returns a Promise, options() is untyped.
 */

export interface SrfMessage {
  readonly method: string;
  readonly body: string;
  readonly source_address: string;
  readonly source_port: number;
  readonly protocol: string;
  readonly uri: string;
  get(name: string): string | undefined;
  has(name: string): boolean;
}

export interface SrfRequest extends SrfMessage {
  on(event: 'cancel', listener: () => void): void;
}

export interface SrfResponseOptions {
  headers?: Record<string, string>;
  body?: string;
}

export interface SrfResponse {
  readonly finalResponseSent: boolean;
  send(status: number, reason?: string, opts?: SrfResponseOptions): void;
  send(status: number, opts?: SrfResponseOptions): void;
}

export interface SrfReceivedResponse {
  readonly status: number;
  readonly reason: string;
  get(name: string): string | undefined;
}

export interface SrfDialog {
  readonly id: string;
  readonly sip: { callId: string; localTag: string; remoteTag: string };
  readonly local: { sdp: string; uri: string; contact: string };
  readonly remote: { sdp: string; uri: string };
  on(event: 'destroy', listener: (req: SrfMessage, reason?: string) => void): void;
  on(event: 'modify', listener: (req: SrfMessage, res: SrfResponse) => void): void;
  on(event: 'ack', listener: (req: SrfMessage) => void): void;
  on(
    event: 'info' | 'notify' | 'refer' | 'options' | 'update',
    listener: (req: SrfMessage, res: SrfResponse) => void,
  ): void;
  destroy(opts?: { headers?: Record<string, string> }): Promise<unknown>;
  request(opts: {
    method: string;
    headers?: Record<string, string>;
    body?: string;
  }): Promise<SrfReceivedResponse>;
}

export interface SrfConnectOptions {
  host: string;
  port: number;
  secret: string;
  reconnect?: { retryMaxDelay: number; maxAttempts?: number };
}

export type SrfHandler = (req: SrfRequest, res: SrfResponse) => void;

export interface SrfInstance {
  connect(opts: SrfConnectOptions): unknown;
  disconnect(): void;
  on(event: 'connect', listener: (err: Error | null, hostport: string, serverVersion?: string) => void): void;
  on(event: 'error', listener: (err: Error) => void): void;
  on(event: 'close', listener: () => void): void;
  on(event: 'reconnecting', listener: (opts: { delay: number; attempt: number }) => void): void;
  invite(handler: SrfHandler): void;
  options(handler: SrfHandler): void;
  createUAS(
    req: SrfRequest,
    res: SrfResponse,
    opts: { localSdp: string; headers?: Record<string, string> },
  ): Promise<SrfDialog>;
}

export interface SrfSipError extends Error {
  status: number;
  reason: string;
}
