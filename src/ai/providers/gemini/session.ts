import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { TypedEmitter } from '../../../core/events.js';
import { ProviderError, errorMessage } from '../../../core/errors.js';
import { connectAborted, watchSocketSetup } from '../../socket-setup.js';
import type { Logger } from '../../../core/log.js';
import type {
  RealtimeCapabilities,
  RealtimeEvents,
  RealtimeProvider,
  RealtimeSession,
  SessionAudioFormats,
  SessionOptions,
} from '../../realtime.js';
import {
  INPUT_SAMPLE_RATE,
  OUTPUT_SAMPLE_RATE,
  decodeServerMessage,
  encodeAudio,
  liveUrl,
  modelResource,
  pcmRate,
  realtimeAudio,
  redactedUrl,
  setupMessage,
  toolResponse,
  userTurn,
  type FunctionCall,
  type GeminiBackend,
  type ServerContent,
  type ServerMessage,
} from './protocol.js';

/*
 * Why not the official @google/genai SDK (3.1.0)? Its `ai.live.connect` does turn an `http://` base
 * into `ws://` and hands over goAway / sessionResumptionUpdate, but its Node socket has no handshake
 * timeout and no way to abort a pending connect (a stuck connect leaks the socket), reports an HTTP
 * upgrade refusal only as error-message text (no status to map to `http_<status>`), and parses frames
 * in an un-awaited async JSON.parse (a malformed frame becomes an unhandled rejection) with no schema
 * validation. The wire protocol is small JSON, so it is implemented here directly on `ws`; only
 * google-auth-library is used, for Vertex Application Default Credentials.
 */

export interface GeminiConfig {
  backend: 'gemini-api' | 'vertex';
  /** Gemini API key (gemini-api backend). */
  apiKey: string;
  /** Google Cloud project and location (vertex backend). */
  project: string;
  location: string;
  /** Overrides Google's endpoint: http:// → ws://, https:// → wss://. */
  baseUrl: string | undefined;
  model: string;
  voice: string;
  connectTimeoutMs: number;
}

export interface GeminiDeps {
  /** OAuth access token for Vertex, fetched for every connection. Default: ADC via google-auth-library. */
  getAccessToken?: () => Promise<string>;
}

const CLOUD_PLATFORM_SCOPE = 'https://www.googleapis.com/auth/cloud-platform';
/** Largest frame accepted from the server (audio chunks are tens of KB). */
const MAX_FRAME_BYTES = 16 * 1024 * 1024;
/** Close codes the server uses for a bad setup or credentials: invalid argument, policy violation. */
const SETUP_REJECTED_CLOSE_CODES = new Set([1007, 1008]);
/**
 * Wait before each reconnect attempt: the first goes at once (goAway leaves seconds to switch), later
 * ones back off so a flapping endpoint is not hammered. The list length bounds the attempts.
 */
const RECONNECT_DELAYS_MS = [0, 250, 1_000, 2_500] as const;
/** Caller audio held while switching connections: 5 s covers a slow reconnect; older audio is dropped. */
const MAX_SWITCH_BUFFER_MS = 5_000;
/** 16-bit mono PCM at the input rate. */
const INPUT_BYTES_PER_MS = (INPUT_SAMPLE_RATE * 2) / 1000;
const MAX_SWITCH_BUFFER_BYTES = MAX_SWITCH_BUFFER_MS * INPUT_BYTES_PER_MS;
/** Cancelled tool-call ids remembered to ignore late results; a handful per call is plenty. */
const MAX_CANCELLED_CALLS = 64;
/** Codes after which a reconnect attempt is pointless (credentials or request are wrong). */
const FATAL_HTTP = /^http_4(?!08|29)\d\d$/;

function rawText(data: WebSocket.RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  return Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data).toString('utf8');
}

/** Opens Live connections: credentials, URL, the setup exchange. Shared by connect and reconnect. */
class GeminiDialer {
  readonly #config: GeminiConfig;
  readonly #getAccessToken: () => Promise<string>;

  constructor(config: GeminiConfig, deps: GeminiDeps) {
    this.#config = config;
    this.#getAccessToken = deps.getAccessToken ?? adcTokenSource();
  }

  get backend(): GeminiBackend {
    return this.#config.backend;
  }

  /**
   * Opens a socket, sends `setup`, and on `setupComplete` calls `adopt` synchronously (so no message
   * that follows in the same read is lost) and resolves. Rejects with ProviderError; on failure the
   * socket is terminated here.
   */
  dial(setup: object, adopt: (ws: WebSocket) => void, signal: AbortSignal | undefined): Promise<void> {
    const config = this.#config;
    const url = liveUrl(config);
    const where = redactedUrl(url);
    return new Promise<void>((resolve, reject) => {
      let ws: WebSocket | undefined;
      let settled = false;
      let unwatch = (): void => {};
      const cleanup = (): void => {
        settled = true;
        clearTimeout(timer);
        unwatch();
        signal?.removeEventListener('abort', onAbort);
        ws?.off('open', onOpen);
        ws?.off('message', onMessage);
      };
      const fail = (error: ProviderError): void => {
        if (settled) return;
        cleanup();
        if (ws !== undefined) {
          ws.on('error', () => {}); // a late socket error after we gave up must not crash the process
          ws.terminate();
        }
        reject(error);
      };
      const timer = setTimeout(
        () =>
          fail(
            new ProviderError(
              `no setupComplete from ${where} within ${config.connectTimeoutMs} ms`,
              'timeout',
            ),
          ),
        config.connectTimeoutMs,
      );
      const onAbort = (): void => fail(connectAborted());
      const onOpen = (): void => ws?.send(JSON.stringify(setup));
      const onMessage = (data: WebSocket.RawData): void => {
        const decoded = decodeServerMessage(rawText(data));
        if (decoded.kind !== 'message' || decoded.message.setupComplete === undefined) return;
        const socket = ws!;
        cleanup();
        adopt(socket);
        resolve();
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#headers().then(
        (headers) => {
          if (settled) return;
          ws = new WebSocket(url, {
            headers,
            handshakeTimeout: config.connectTimeoutMs,
            maxPayload: MAX_FRAME_BYTES,
          });
          ws.on('open', onOpen);
          ws.on('message', onMessage);
          unwatch = watchSocketSetup(ws, fail, SETUP_REJECTED_CLOSE_CODES);
        },
        (error: unknown) =>
          fail(
            new ProviderError(`cannot get a Vertex access token: ${errorMessage(error)}`, 'auth_failed', {
              cause: error,
            }),
          ),
      );
    });
  }

  setupFor(options: SessionOptions, resumptionHandle: string | undefined): object {
    const { backend, model, project, location, voice } = this.#config;
    return setupMessage({
      model: modelResource(backend, model, project, location),
      instructions: options.instructions,
      voice: options.voice ?? voice,
      tools: options.tools ?? [],
      resumptionHandle,
    });
  }

  /** Vertex: a fresh bearer token per connection (they last about an hour; calls can last longer). */
  async #headers(): Promise<Record<string, string>> {
    if (this.#config.backend !== 'vertex') return {};
    const token = await this.#getAccessToken();
    return { Authorization: `Bearer ${token}` };
  }
}

/** ADC with the cloud-platform scope; the library caches tokens and refreshes them before expiry. */
function adcTokenSource(): () => Promise<string> {
  let auth: Promise<{ getAccessToken(): Promise<string | null | undefined> }> | undefined;
  return async () => {
    auth ??= import('google-auth-library').then(
      ({ GoogleAuth }) => new GoogleAuth({ scopes: [CLOUD_PLATFORM_SCOPE] }),
    );
    const token = await (await auth).getAccessToken();
    if (token === null || token === undefined || token === '')
      throw new Error('Application Default Credentials returned no access token');
    return token;
  };
}

/** One model turn: Gemini has no item ids, so each turn gets one of ours. */
interface ModelTurn {
  id: string;
  /** Barge-in: later audio and transcript of this turn are dropped. */
  interrupted: boolean;
  agentText: string;
  droppedAudioBytes: number;
}

interface PendingCall {
  name: string;
  /** The id the server gave (absent on some Vertex calls). */
  wireId: string | undefined;
}

/**
 * `live`: one socket carries the session. `switching`: a new connection is being dialled with the
 * latest resumption handle (after goAway or a drop); caller audio is buffered. `closing`: close() was
 * called, waiting for the socket. `closed`: 'close' was emitted.
 */
type LinkState = 'live' | 'switching' | 'closing' | 'closed';

/**
 * Held while switching connections, sent in order once the new one is live. Audio is base64-encoded
 * when queued, since the caller may reuse its buffer.
 */
type Queued = { kind: 'audio'; data: string; bytes: number } | { kind: 'turn'; instructions: string };

class GeminiLiveSession extends TypedEmitter<RealtimeEvents> implements RealtimeSession {
  readonly provider = 'gemini';
  readonly capabilities: RealtimeCapabilities = {
    truncate: false,
    toolCalls: true,
    serverVad: true,
    g711Passthrough: false,
  };
  readonly audioFormats: SessionAudioFormats = {
    input: { encoding: 'pcm16', sampleRate: INPUT_SAMPLE_RATE },
    output: { encoding: 'pcm16', sampleRate: OUTPUT_SAMPLE_RATE },
  };
  readonly #dialer: GeminiDialer;
  readonly #options: SessionOptions;
  readonly #log: Logger;
  readonly #tag = randomUUID().slice(0, 8);
  #state: LinkState = 'live';
  /** The socket in use; while switching after goAway, the old one until the new one is ready. */
  #ws: WebSocket | undefined;
  /** Latest resumable session handle from sessionResumptionUpdate. */
  #resumeHandle: string | undefined;
  #switchAbort: AbortController | undefined;
  readonly #queue: Queued[] = [];
  #queuedBytes = 0;
  #overflowBytes = 0;
  #reconnects = 0;
  #turn: ModelTurn | undefined;
  #turnCount = 0;
  #callerText = '';
  readonly #calls = new Map<string, PendingCall>();
  readonly #cancelledCalls = new Set<string>();
  #unnamedCalls = 0;

  constructor(dialer: GeminiDialer, options: SessionOptions, log: Logger) {
    super((error, event) => log.error({ err: error, event }, 'gemini listener threw'));
    this.#dialer = dialer;
    this.#options = options;
    this.#log = log;
  }

  /** Takes over a socket whose setup completed. Called synchronously from the dialer. */
  adopt(ws: WebSocket): void {
    if (this.#state === 'closing' || this.#state === 'closed') {
      ws.on('error', () => {});
      ws.close(1000, 'call ended');
      return;
    }
    const old = this.#ws;
    this.#ws = ws;
    ws.on('message', (data) => this.#onMessage(ws, data));
    ws.on('close', (code, reason) => this.#onSocketClose(ws, code, reason.toString()));
    ws.on('error', (error) => this.#log.warn({ err: error }, 'gemini socket error'));
    if (old !== undefined) {
      old.removeAllListeners();
      old.on('error', () => {});
      if (old.readyState === WebSocket.OPEN) old.close(1000, 'resumed on a new connection');
      else old.terminate();
    }
    if (this.#state === 'switching') this.#resumed();
    this.#state = 'live';
  }

  sendAudio(data: Uint8Array): void {
    if (this.#state === 'live') {
      this.#send(realtimeAudio(encodeAudio(data)));
    } else if (this.#state === 'switching') {
      this.#queue.push({ kind: 'audio', data: encodeAudio(data), bytes: data.byteLength });
      this.#queuedBytes += data.byteLength;
      while (this.#queuedBytes > MAX_SWITCH_BUFFER_BYTES) {
        const oldest = this.#queue.findIndex((q) => q.kind === 'audio');
        if (oldest < 0) break;
        const [dropped] = this.#queue.splice(oldest, 1);
        if (dropped?.kind !== 'audio') break;
        this.#queuedBytes -= dropped.bytes;
        this.#overflowBytes += dropped.bytes;
      }
    }
  }

  /** Gemini assumes real-time playback and trims unheard output itself; nothing to send. */
  truncate(_itemId: string, _playedMs: number): void {}

  sendToolResult(callId: string, output: unknown): void {
    if (this.#cancelledCalls.has(callId)) {
      this.#log.info({ callId }, 'tool result for a cancelled gemini call ignored');
      return;
    }
    const call = this.#calls.get(callId);
    if (call === undefined) {
      this.#log.warn({ callId }, 'tool result for an unknown gemini call ignored');
      return;
    }
    if (this.#state !== 'live') {
      // The resumed session predates the call (handles are not resumable during a tool call).
      this.#cancel(callId, 'connection switching');
      return;
    }
    this.#calls.delete(callId);
    this.#send(toolResponse(call.wireId, call.name, output));
  }

  /** A user turn asking the model to speak (Gemini has no per-response instructions). */
  respond(instructions: string): void {
    if (this.#state === 'live') this.#send(userTurn(instructions));
    else if (this.#state === 'switching') this.#queue.push({ kind: 'turn', instructions });
  }

  close(): void {
    if (this.#state === 'closing' || this.#state === 'closed') return;
    this.#state = 'closing';
    this.#switchAbort?.abort();
    const ws = this.#ws;
    if (ws !== undefined && (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING))
      ws.close(1000, 'call ended');
    else this.#finish(true, 'closed by client');
  }

  #send(message: object): void {
    const ws = this.#ws;
    if (ws === undefined || ws.readyState !== WebSocket.OPEN) return;
    ws.send(JSON.stringify(message));
  }

  #onMessage(ws: WebSocket, data: WebSocket.RawData): void {
    if (ws !== this.#ws || this.#state === 'closed') return;
    const decoded = decodeServerMessage(rawText(data));
    if (decoded.kind === 'invalid') {
      this.#log.warn({ problem: decoded.problem }, 'gemini sent a malformed message; ignored');
      return;
    }
    if (decoded.kind === 'ignored') {
      this.#log.debug({ keys: decoded.keys }, 'gemini message of no interest');
      return;
    }
    this.#handleMessage(decoded.message);
  }

  #handleMessage(message: ServerMessage): void {
    const resumption = message.sessionResumptionUpdate;
    if (resumption?.resumable === true && resumption.newHandle !== undefined && resumption.newHandle !== '')
      this.#resumeHandle = resumption.newHandle;
    if (message.serverContent !== undefined) this.#onServerContent(message.serverContent);
    for (const call of message.toolCall?.functionCalls ?? []) this.#onToolCall(call);
    for (const id of message.toolCallCancellation?.ids ?? []) this.#cancel(id, 'cancelled by the model');
    if (message.goAway !== undefined) {
      this.#log.info({ timeLeftMs: message.goAway.timeLeft }, 'gemini goAway; switching connection');
      this.#startSwitch('goAway');
    }
  }

  #onServerContent(content: ServerContent): void {
    const heard = content.inputTranscription;
    if (heard?.text !== undefined) this.#callerText += heard.text;
    if (heard?.finished === true) this.#flushCallerText();
    if (content.interrupted === true) {
      if (this.#turn !== undefined) this.#turn.interrupted = true;
      this.safeEmit('speechStarted');
    }
    for (const part of content.modelTurn?.parts ?? []) {
      const inline = part.inlineData;
      if (inline === undefined) continue;
      const turn = this.#currentTurn();
      const rate = pcmRate(inline.mimeType);
      const audio = Buffer.from(inline.data, 'base64');
      if (rate !== OUTPUT_SAMPLE_RATE) {
        this.#log.warn({ mimeType: inline.mimeType }, 'gemini audio in an unexpected format; dropped');
      } else if (turn.interrupted) {
        turn.droppedAudioBytes += audio.length;
      } else if (audio.length > 0) {
        this.safeEmit('audio', { data: audio, itemId: turn.id });
      }
    }
    const said = content.outputTranscription?.text;
    if (said !== undefined) {
      const turn = this.#currentTurn();
      if (!turn.interrupted) turn.agentText += said;
    }
    if (content.turnComplete === true) {
      this.#flushCallerText();
      this.#endTurn();
    }
  }

  #currentTurn(): ModelTurn {
    if (this.#turn === undefined) {
      this.#flushCallerText(); // the model answers: the caller's utterance is complete
      this.#turn = {
        id: `gemini-${this.#tag}-turn-${++this.#turnCount}`,
        interrupted: false,
        agentText: '',
        droppedAudioBytes: 0,
      };
    }
    return this.#turn;
  }

  #endTurn(): void {
    const turn = this.#turn;
    if (turn === undefined) return;
    this.#turn = undefined;
    if (turn.droppedAudioBytes > 0)
      this.#log.debug(
        { itemId: turn.id, bytes: turn.droppedAudioBytes },
        'dropped audio of an interrupted turn',
      );
    const text = turn.agentText.trim();
    if (text !== '') this.safeEmit('transcript', { role: 'agent', text });
  }

  #flushCallerText(): void {
    const text = this.#callerText.trim();
    this.#callerText = '';
    if (text !== '') this.safeEmit('transcript', { role: 'caller', text });
  }

  #onToolCall(call: FunctionCall): void {
    const callId = call.id ?? `gemini-${this.#tag}-call-${++this.#unnamedCalls}`;
    this.#calls.set(callId, { name: call.name, wireId: call.id });
    this.safeEmit('toolCall', { callId, name: call.name, args: call.args ?? {} });
  }

  #cancel(callId: string, why: string): void {
    if (!this.#calls.delete(callId)) return;
    this.#cancelledCalls.add(callId);
    if (this.#cancelledCalls.size > MAX_CANCELLED_CALLS)
      this.#cancelledCalls.delete(this.#cancelledCalls.values().next().value!);
    this.#log.info({ callId, why }, 'gemini tool call cancelled; its result will be ignored');
  }

  // ---- connection switching ---------------------------------------------------------------------------

  #onSocketClose(ws: WebSocket, code: number, reason: string): void {
    if (ws !== this.#ws) return;
    this.#ws = undefined;
    const why = `websocket closed (${code}${reason ? ` ${reason}` : ''})`;
    if (this.#state === 'closing') this.#finish(true, why);
    else if (this.#state === 'live') {
      this.#log.warn({ code, reason }, 'gemini connection lost; resuming');
      this.#startSwitch(why);
    }
    // 'switching': the old socket ended after goAway; the dial in progress carries on.
  }

  #startSwitch(why: string): void {
    if (this.#state !== 'live') return;
    this.#state = 'switching';
    const abort = new AbortController();
    this.#switchAbort = abort;
    void this.#reconnect(why, abort.signal);
  }

  async #reconnect(why: string, signal: AbortSignal): Promise<void> {
    let lastError: unknown;
    for (const [attempt, delayMs] of RECONNECT_DELAYS_MS.entries()) {
      try {
        if (delayMs > 0) await sleep(delayMs, undefined, { signal });
        if (this.#state !== 'switching') return;
        const setup = this.#dialer.setupFor(this.#options, this.#resumeHandle);
        await this.#dialer.dial(setup, (ws) => this.adopt(ws), signal);
        this.#log.info(
          { attempt: attempt + 1, reconnects: ++this.#reconnects, why },
          'gemini session continues on a new connection',
        );
        return;
      } catch (error) {
        if (this.#state !== 'switching') return; // closed meanwhile
        lastError = error;
        const code = error instanceof ProviderError ? error.code : 'unknown';
        this.#log.warn({ attempt: attempt + 1, code, err: error }, 'gemini reconnect attempt failed');
        if (code === 'setup_rejected' && this.#resumeHandle !== undefined) {
          this.#log.warn('gemini refused the resumption handle; continuing as a new conversation');
          this.#resumeHandle = undefined;
        } else if (FATAL_HTTP.test(code)) break;
      }
    }
    if (this.#state !== 'switching') return;
    this.#ws?.removeAllListeners();
    this.#ws?.on('error', () => {});
    this.#ws?.terminate();
    this.#ws = undefined;
    this.#finish(false, `reconnect failed after ${why}: ${errorMessage(lastError)}`);
  }

  /** The new connection is ready: close the old turn, retire stale tool calls, flush buffered audio. */
  #resumed(): void {
    this.#switchAbort = undefined;
    this.#flushCallerText();
    this.#endTurn();
    for (const callId of [...this.#calls.keys()]) this.#cancel(callId, 'session resumed before the result');
    const queued = this.#queue.splice(0);
    this.#queuedBytes = 0;
    const ws = this.#ws;
    for (const item of queued)
      ws?.send(
        JSON.stringify(item.kind === 'audio' ? realtimeAudio(item.data) : userTurn(item.instructions)),
      );
    if (this.#overflowBytes > 0) {
      this.#log.warn(
        { droppedMs: this.#overflowBytes / INPUT_BYTES_PER_MS },
        'caller audio dropped while switching gemini connections',
      );
      this.#overflowBytes = 0;
    }
  }

  #finish(expected: boolean, reason: string): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#switchAbort?.abort();
    this.#switchAbort = undefined;
    this.#queue.length = 0;
    this.#queuedBytes = 0;
    this.safeEmit('close', { expected, reason });
    this.removeAllListeners();
  }
}

/** Gemini Live over WebSocket: the Gemini Developer API or Vertex AI, with transparent resumption. */
export class GeminiLiveProvider implements RealtimeProvider {
  readonly name = 'gemini';
  readonly #dialer: GeminiDialer;

  constructor(config: GeminiConfig, deps: GeminiDeps = {}) {
    this.#dialer = new GeminiDialer(config, deps);
  }

  async connect(options: SessionOptions): Promise<RealtimeSession> {
    const log = options.log.child({ provider: 'gemini', backend: this.#dialer.backend });
    const session = new GeminiLiveSession(this.#dialer, options, log);
    await this.#dialer.dial(
      this.#dialer.setupFor(options, undefined),
      (ws) => session.adopt(ws),
      options.signal,
    );
    if (options.greeting !== '') session.respond(options.greeting);
    return session;
  }
}
