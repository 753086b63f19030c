import type { TypedEmitter } from '../core/events.js';
import type { G711Codec } from '../core/audio.js';
import type { Logger } from '../core/log.js';

/**
 * The provider-neutral realtime session contract. Providers know nothing of RTP or SIP. Each session
 * declares the audio format it takes and gives; the call layer converts between that and the call's
 * G.711 (decode, anti-aliased resampling, encode), so providers hold no DSP code.
 */

/** Audio on the provider side: G.711 in the call's codec (8 kHz), or 16-bit little-endian PCM mono. */
export type AudioFormat = { encoding: 'g711' } | { encoding: 'pcm16'; sampleRate: 8000 | 16000 | 24000 };

export interface SessionAudioFormats {
  /** What sendAudio() expects. */
  input: AudioFormat;
  /** What 'audio' events carry. */
  output: AudioFormat;
}

export interface RealtimeCapabilities {
  /** Can remove unheard assistant audio from the conversation after barge-in. */
  truncate: boolean;
  /** Supports function calling. */
  toolCalls: boolean;
  /** Detects caller speech itself and signals `speechStarted`. */
  serverVad: boolean;
  /** Takes G.711 as is, with no transcoding. */
  g711Passthrough: boolean;
}

export interface AgentAudio {
  /** Audio in the session's `audioFormats.output`. */
  data: Uint8Array;
  /** The assistant item this audio belongs to (what truncate refers to). */
  itemId: string;
}

export interface Transcript {
  role: 'caller' | 'agent';
  text: string;
}

export interface ToolCall {
  callId: string;
  name: string;
  /** Parsed JSON arguments, still untrusted: the tool validates them. */
  args: unknown;
}

/** A function the model may call, declared once and mapped by each provider to its own format. */
export interface ToolDeclaration {
  name: string;
  description: string;
  /** JSON Schema of the arguments (type: object). */
  parameters: Record<string, unknown>;
}

export interface SessionClosed {
  /** True when we asked for it (call ended); false when the provider or the network ended it. */
  expected: boolean;
  reason: string;
}

export interface RealtimeEvents extends Record<string, unknown[]> {
  audio: [AgentAudio];
  /** The caller started talking over the agent: stop playback now. */
  speechStarted: [];
  transcript: [Transcript];
  toolCall: [ToolCall];
  /** The model signalled that the caller wants to end the call (providers without tools, e.g. Doubao). */
  endRequested: [reason: string];
  /** A non-fatal provider error (the session goes on). */
  error: [Error];
  /** The session is over; emitted exactly once. */
  close: [SessionClosed];
}

export interface RealtimeSession extends Pick<TypedEmitter<RealtimeEvents>, 'on' | 'once' | 'off'> {
  readonly provider: string;
  readonly capabilities: RealtimeCapabilities;
  readonly audioFormats: SessionAudioFormats;
  /** Caller audio, one 20 ms frame at a time, in `audioFormats.input`. */
  sendAudio(data: Uint8Array): void;
  /**
   * Barge-in bookkeeping: the caller heard only `playedMs` of `itemId`. Providers that can, cut the
   * conversation there; others ignore it.
   */
  truncate(itemId: string, playedMs: number): void;
  sendToolResult(callId: string, output: unknown): void;
  /**
   * Ask the agent to speak now, following `instructions` (a greeting, or "tell the caller the transfer
   * failed"). Providers without a way to steer a turn speak nothing.
   */
  respond(instructions: string): void;
  /** Ends the session; idempotent. */
  close(): void;
}

export interface SessionOptions {
  codec: G711Codec;
  instructions: string;
  /** Instruction for the first thing the agent says; empty = wait for the caller. */
  greeting: string;
  log: Logger;
  /** Overrides the configured voice for this session. */
  voice?: string;
  /** Functions offered to the model (ignored by providers without function calling). */
  tools?: readonly ToolDeclaration[];
  /** Aborts a connect in progress (e.g. the caller hung up while we were connecting). */
  signal?: AbortSignal;
}

export interface RealtimeProvider {
  readonly name: string;
  /** Resolves once the session is configured and ready for audio; rejects with ProviderError. */
  connect(options: SessionOptions): Promise<RealtimeSession>;
}
