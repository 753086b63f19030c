import type { CallState } from '../call/call-state.js';
import type { CallSummary } from '../call/call.js';

/**
 * The port the HTTP API drives. main.ts wires an adapter over the CallManager; tests use a fake.
 * Methods reject/throw errors carrying a `code` as documented in ./errors.ts.
 */
export interface CallControl {
  /** Starts an outbound call. `req.to` has already passed the destination allow-list. */
  placeCall(req: PlaceCallRequest): Promise<CallView>;
  listCalls(): CallView[];
  getCall(id: string): CallView | undefined;
  /** Blind-transfers the call to a named target from the transfer allow-list; resolves once started. */
  transfer(id: string, target: string): Promise<void>;
  /** Hangs up; resolves when the call has ended. */
  hangUp(id: string): Promise<void>;
  readiness(): Readiness;
}

/** A validated POST /v1/calls body. */
export interface PlaceCallRequest {
  /** E.164 (`+14155550100`) or a `sip:` URI; already checked against OUTBOUND_ALLOWED_DESTINATIONS. */
  to: string;
  /** Caller id: E.164 or a `sip:` URI. */
  from?: string | undefined;
  /** AI provider name; the call layer rejects unknown ones with `invalid_argument`. */
  provider?: string | undefined;
  instructions?: string | undefined;
  voice?: string | undefined;
  /** Values for `{{name}}` placeholders in the instructions. */
  variables?: Record<string, string> | undefined;
  /** Name of the transfer target (from the transfer allow-list) the agent may transfer to. */
  transferTarget?: string | undefined;
  /** Per-call webhook URL (http/https); overrides WEBHOOK_URL for this call's events. */
  webhookUrl?: string | undefined;
}

export interface ReadinessCheck {
  ok: boolean;
  detail?: string | undefined;
}

/** e.g. checks `{ drachtio: {ok}, capacity: {ok, detail: '3/50 calls'}, registration: {ok} }`. */
export interface Readiness {
  ready: boolean;
  checks: Record<string, ReadinessCheck>;
}

/** The facts /readyz is decided from; {@link readinessFrom} turns them into a Readiness. */
export interface ReadinessFacts {
  drachtioConnected: boolean;
  activeCalls: number;
  maxCalls: number;
  /** Shutting down: no new calls. */
  draining?: boolean | undefined;
  /** Present only when SIP registration is configured. */
  registration?: { registered: boolean; detail?: string | undefined } | undefined;
}

/** Ready = connected to drachtio-server, below the call limit, not draining, and registered (if configured). */
export function readinessFrom(facts: ReadinessFacts): Readiness {
  const checks: Record<string, ReadinessCheck> = {
    drachtio: {
      ok: facts.drachtioConnected,
      detail: facts.drachtioConnected ? 'connected' : 'not connected',
    },
    capacity: {
      ok: facts.activeCalls < facts.maxCalls && facts.draining !== true,
      detail: `${facts.activeCalls}/${facts.maxCalls} calls${facts.draining === true ? ', draining' : ''}`,
    },
  };
  if (facts.registration !== undefined) {
    checks.registration = {
      ok: facts.registration.registered,
      detail: facts.registration.detail ?? (facts.registration.registered ? 'registered' : 'not registered'),
    };
  }
  return { ready: Object.values(checks).every((c) => c.ok), checks };
}

/**
 * Every state the API can report. Must cover the call layer's CallState (checked below at compile
 * time).
 */
export const CALL_VIEW_STATES = [
  'ringing',
  'answering',
  'active',
  'transferring',
  'bridged',
  'ending',
  'ended',
] as const;
export type CallViewState = (typeof CALL_VIEW_STATES)[number];

export interface TranscriptEntry {
  role: 'caller' | 'agent';
  text: string;
}

export interface RtpStatsView {
  packetsReceived: number;
  bytesReceived: number;
  packetsSent: number;
  bytesSent: number;
  malformed: number;
  ignored: number;
}

export interface OutboundStatsView {
  framesSent: number;
  audioFramesSent: number;
  silenceFramesSent: number;
  overflowBytes: number;
  skippedFrames: number;
}

/** Same shape as the call layer's MediaSessionStats, so `summary.media` can be passed through. */
export interface MediaStatsView {
  rtp: RtpStatsView;
  outbound: OutboundStatsView;
  /** `address:port` the RTP is latched to. */
  latchedTo?: string | undefined;
}

/** Same shape as the call layer's BridgeStats. */
export interface BridgeStatsView {
  firstAgentAudioMs?: number | undefined;
  bargeIns: number;
}

/** What GET /v1/calls/{id} returns. Timestamps are ISO 8601 UTC strings (`Date#toISOString()`). */
export interface CallView {
  id: string;
  direction: 'inbound' | 'outbound';
  state: CallViewState;
  provider: string;
  from?: string | undefined;
  to?: string | undefined;
  timestamps: {
    created: string;
    answered?: string | undefined;
    ended?: string | undefined;
  };
  /** Answer to end (or now), 0 if never answered. */
  durationMs: number;
  /** SIP outcome: the SIP Call-ID and the final response to the INVITE (sent or received). */
  sip: {
    callId?: string | undefined;
    status?: number | undefined;
    reason?: string | undefined;
  };
  /** Set once the call is ending: the call layer's Termination. */
  termination?:
    | {
        cause: string;
        detail: string;
        sipStatus?: number | undefined;
      }
    | undefined;
  /** Transcript so far. */
  transcript: TranscriptEntry[];
  media?: MediaStatsView | undefined;
  bridge?: BridgeStatsView | undefined;
}

// ---- compile-time links to the call layer: tsc fails here when its shapes drift from the API's ----
type Assert<T extends true> = T;
/** Every CallState is a CallViewState (add new states to CALL_VIEW_STATES and the OpenAPI enum). */
type _StatesCovered = Assert<CallState extends CallViewState ? true : false>;
/** CallSummary's stats and termination can be used as-is in a CallView. */
type _SummaryFits = Assert<
  CallSummary['media'] extends CallView['media']
    ? CallSummary['bridge'] extends CallView['bridge']
      ? CallSummary['termination'] extends CallView['termination']
        ? true
        : false
      : false
    : false
>;
