// A scripted CallControl for the HTTP API tests: records what the API asked and throws coded errors the
// way the call layer will (plain Errors with a `code`, not src/api classes).
import { pino } from 'pino';
import type { CallControl, CallView, PlaceCallRequest, Readiness } from '../../../src/api/call-control.js';
import { createApiServer, type ApiServer, type ApiServerOptions } from '../../../src/api/server.js';

export const TOKEN = 'test-token-0123456789abcdef';
export const AUTH = { authorization: `Bearer ${TOKEN}` };

export function codedError(code: string, message: string, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(message), { code }, extra);
}

export function callView(id: string, overrides: Partial<CallView> = {}): CallView {
  return {
    id,
    direction: 'outbound',
    state: 'active',
    provider: 'echo',
    to: '+15551230000',
    timestamps: { created: '2025-01-01T00:00:00.000Z', answered: '2025-01-01T00:00:02.000Z' },
    durationMs: 1500,
    sip: { callId: 'abc@host', status: 200, reason: 'OK' },
    transcript: [{ role: 'agent', text: 'Hello' }],
    media: {
      rtp: {
        packetsReceived: 10,
        bytesReceived: 1600,
        packetsSent: 9,
        bytesSent: 1440,
        malformed: 0,
        ignored: 0,
      },
      outbound: {
        framesSent: 9,
        audioFramesSent: 5,
        silenceFramesSent: 4,
        overflowBytes: 0,
        skippedFrames: 0,
      },
      latchedTo: '127.0.0.1:40000',
    },
    bridge: { firstAgentAudioMs: 300, bargeIns: 0 },
    ...overrides,
  };
}

export class FakeCallControl implements CallControl {
  readonly calls = new Map<string, CallView>();
  readonly placed: PlaceCallRequest[] = [];
  readonly transfers: [id: string, target: string][] = [];
  readonly hangUps: string[] = [];
  readinessResult: Readiness = { ready: true, checks: { drachtio: { ok: true }, capacity: { ok: true } } };
  /** When set, placeCall rejects with it. */
  placeError: Error | undefined;
  #next = 1;

  placeCall(req: PlaceCallRequest): Promise<CallView> {
    this.placed.push(req);
    if (this.placeError) return Promise.reject(this.placeError);
    const id = `call-${this.#next++}`;
    const view = callView(id, {
      state: 'ringing',
      to: req.to,
      from: req.from,
      durationMs: 0,
      transcript: [],
    });
    this.calls.set(id, view);
    return Promise.resolve(view);
  }

  listCalls(): CallView[] {
    return [...this.calls.values()];
  }

  getCall(id: string): CallView | undefined {
    return this.calls.get(id);
  }

  transfer(id: string, target: string): Promise<void> {
    const call = this.calls.get(id);
    if (!call) return Promise.reject(codedError('not_found', `no call ${id}`));
    if (call.state === 'ended') return Promise.reject(codedError('invalid_state', 'the call has ended'));
    if (target !== 'sales')
      return Promise.reject(codedError('destination_not_allowed', `unknown target ${target}`));
    this.transfers.push([id, target]);
    return Promise.resolve();
  }

  hangUp(id: string): Promise<void> {
    const call = this.calls.get(id);
    if (!call) return Promise.reject(codedError('not_found', `no call ${id}`));
    this.hangUps.push(id);
    call.state = 'ended';
    return Promise.resolve();
  }

  readiness(): Readiness {
    return this.readinessResult;
  }
}

export const silentLog = pino({ level: 'silent' });

export function makeServer(control: CallControl, overrides: Partial<ApiServerOptions> = {}): ApiServer {
  return createApiServer({
    control,
    token: TOKEN,
    allowedDestinations: ['+1555', 'sip:pbx.example.com'],
    rateLimitPerMinute: 100,
    logger: silentLog,
    ...overrides,
  });
}
