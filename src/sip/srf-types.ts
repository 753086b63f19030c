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

export interface SrfProvisional {
  readonly status: number;
  readonly body: string;
  get(name: string): string | undefined;
}

/** The INVITE request createUAC sent; cancel() sends CANCEL (createUAC then rejects with 487). */
export interface SrfOutgoingInvite {
  cancel(): void;
}

export interface SrfCreateUacOptions {
  localSdp: string;
  headers?: Record<string, string>;
  auth?: { username: string; password: string };
  proxy?: string;
}

export interface SrfCreateUacCallbacks {
  /** Real signature is (err, req); the bundled typings wrongly say (req). */
  cbRequest?: (err: Error | null, req?: SrfOutgoingInvite) => void;
  cbProvisional?: (res: SrfProvisional) => void;
}

export interface SrfInstance {
  createUAC(uri: string, opts: SrfCreateUacOptions, callbacks?: SrfCreateUacCallbacks): Promise<SrfDialog>;
  connect(opts: SrfConnectOptions): unknown;
  disconnect(): void;
  on(event: 'connect', listener: (err: Error | null, hostport: string, serverVersion?: string) => void): void;
  on(event: 'error', listener: (err: Error) => void): void;
  on(event: 'close', listener: () => void): void;
  on(event: 'reconnecting', listener: (opts: { delay: number; attempt: number }) => void): void;
  invite(handler: SrfHandler): void;
  options(handler: SrfHandler): void;
  /**
   * Out-of-dialog request (sip-stack.md §1.8). Resolves with the request as sent (headers as on the
   * wire), not the response: final and provisional responses arrive as its 'response' events. With
   * `auth`, srf answers one 401/407 itself (bumped CSeq, same Call-ID) and moves the listeners to the
   * retry, so a 401/407 seen here means the credentials were refused. No timeout: add your own.
   */
  request(
    uri: string,
    opts: {
      method: string;
      headers?: Record<string, string>;
      body?: string;
      /** Next hop, e.g. 'sip:192.0.2.1:5060;transport=udp'; the Request-URI stays `uri`. */
      proxy?: string;
      auth?: { username: string; password: string };
    },
  ): Promise<{
    get(name: string): string | undefined;
    on(event: 'response', listener: (res: SrfReceivedResponse) => void): void;
  }>;
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

export function isSrfSipError(error: unknown): error is SrfSipError {
  return error instanceof Error && typeof (error as Partial<SrfSipError>).status === 'number';
}
