import WebSocket from 'ws';
import { TypedEmitter } from '../../../core/events.js';
import { ProviderError } from '../../../core/errors.js';
import { connectAborted, watchSocketSetup } from '../../socket-setup.js';
import { g711Ms } from '../../../core/audio.js';
import type { Logger } from '../../../core/log.js';
import type {
  RealtimeCapabilities,
  SessionAudioFormats,
  RealtimeEvents,
  RealtimeProvider,
  RealtimeSession,
  SessionOptions,
} from '../../realtime.js';
import {
  appendAudio,
  createResponse,
  decodeServerEvent,
  functionCallOutput,
  sessionUpdate,
  truncateItem,
  type ServerEvent,
} from './protocol.js';

export interface OpenAIRealtimeConfig {
  apiKey: string;
  /** wss://api.openai.com/v1/realtime, or a ws:// URL for proxies and tests. */
  url: string;
  model: string;
  voice: string;
  transcriptionModel: string;
  connectTimeoutMs: number;
}

/** Error codes that are expected during normal barge-in races and are not worth reporting. */
const BENIGN_ERROR_CODES = new Set(['response_cancel_not_active']);
/** Responses whose late audio we drop; a handful is plenty (one is cancelled per barge-in). */
const MAX_DROPPED_RESPONSES = 16;
/** Largest frame accepted from the server (audio deltas are a few hundred KB at most). */
const MAX_FRAME_BYTES = 16 * 1024 * 1024;

function rawText(data: WebSocket.RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  return Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data).toString('utf8');
}

class OpenAIRealtimeSession extends TypedEmitter<RealtimeEvents> implements RealtimeSession {
  readonly provider = 'openai';
  readonly capabilities: RealtimeCapabilities = {
    truncate: true,
    toolCalls: true,
    serverVad: true,
    g711Passthrough: true,
  };
  readonly audioFormats: SessionAudioFormats = { input: { encoding: 'g711' }, output: { encoding: 'g711' } };
  readonly #ws: WebSocket;
  readonly #log: Logger;
  #activeResponseId: string | undefined;
  readonly #pendingResponses: (string | undefined)[] = [];
  #responseRequested = false;
  readonly #droppedResponses = new Set<string>();
  /** Bytes of assistant audio received per item: truncate may not exceed it. */
  readonly #receivedBytes = new Map<string, number>();
  #closing = false;
  #closed = false;

  constructor(ws: WebSocket, log: Logger) {
    super((error, event) => log.error({ err: error, event }, 'openai listener threw'));
    this.#ws = ws;
    this.#log = log;
    ws.on('message', (data, isBinary) => this.#onMessage(data, isBinary));
    ws.on('close', (code, reason) => this.#onClose(code, reason.toString()));
    ws.on('error', (error) => this.#log.warn({ err: error }, 'openai socket error'));
  }

  sendAudio(data: Uint8Array): void {
    this.#send(appendAudio(data));
  }

  truncate(itemId: string, playedMs: number): void {
    const received = this.#receivedBytes.get(itemId);
    if (received === undefined) return;
    this.#send(truncateItem(itemId, Math.min(playedMs, g711Ms(received))));
  }

  sendToolResult(callId: string, output: unknown): void {
    this.#send(functionCallOutput(callId, output));
    this.#queueResponse(undefined);
  }

  respond(instructions: string): void {
    // Only one response may be active; a request made meanwhile (a keypad digit while the agent talks)
    // is held and sent when the current response is done, never dropped.
    this.#queueResponse(instructions);
  }

  #queueResponse(instructions: string | undefined): void {
    if (this.#activeResponseId !== undefined || this.#responseRequested)
      this.#pendingResponses.push(instructions);
    else this.#requestResponse(instructions);
  }

  #requestResponse(instructions?: string): void {
    this.#responseRequested = true; // until response.created: a second response.create would be refused
    this.#send(createResponse(instructions));
  }

  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    if (this.#ws.readyState === WebSocket.OPEN || this.#ws.readyState === WebSocket.CONNECTING)
      this.#ws.close(1000, 'call ended');
    else this.#onClose(1000, 'call ended');
  }

  #send(event: object): void {
    if (this.#ws.readyState !== WebSocket.OPEN) return;
    this.#ws.send(JSON.stringify(event));
  }

  #onMessage(data: WebSocket.RawData, isBinary: boolean): void {
    const decoded = decodeServerEvent(rawText(data));
    if (decoded.kind === 'invalid') {
      this.#log.warn(
        { problem: decoded.problem, binary: isBinary },
        'openai sent a malformed event; ignored',
      );
      return;
    }
    if (decoded.kind === 'ignored') return;
    this.#handle(decoded.event);
  }

  #handle(event: ServerEvent): void {
    switch (event.type) {
      case 'response.created':
        this.#activeResponseId = event.response.id;
        this.#responseRequested = false;
        break;
      case 'response.done': {
        if (this.#activeResponseId === event.response.id) this.#activeResponseId = undefined;
        if (this.#pendingResponses.length > 0) this.#requestResponse(this.#pendingResponses.shift());
        break;
      }
      case 'response.output_audio.delta': {
        if (this.#droppedResponses.has(event.response_id)) return; // late audio of an interrupted reply
        const audio = Buffer.from(event.delta, 'base64');
        this.#receivedBytes.set(event.item_id, (this.#receivedBytes.get(event.item_id) ?? 0) + audio.length);
        if (this.#receivedBytes.size > MAX_DROPPED_RESPONSES)
          this.#receivedBytes.delete(this.#receivedBytes.keys().next().value!);
        this.safeEmit('audio', { data: audio, itemId: event.item_id });
        break;
      }
      case 'input_audio_buffer.speech_started':
        if (this.#activeResponseId !== undefined) {
          // server_vad with interrupt_response cancels the reply server-side; drop what is still in flight.
          this.#droppedResponses.add(this.#activeResponseId);
          if (this.#droppedResponses.size > MAX_DROPPED_RESPONSES)
            this.#droppedResponses.delete(this.#droppedResponses.values().next().value!);
        }
        this.safeEmit('speechStarted');
        break;
      case 'conversation.item.input_audio_transcription.completed':
        this.safeEmit('transcript', { role: 'caller', text: event.transcript });
        break;
      case 'response.output_audio_transcript.done':
        this.safeEmit('transcript', { role: 'agent', text: event.transcript });
        break;
      case 'response.function_call_arguments.done': {
        let args: unknown;
        try {
          args = JSON.parse(event.arguments);
        } catch {
          args = undefined;
        }
        this.safeEmit('toolCall', { callId: event.call_id, name: event.name, args });
        break;
      }
      case 'error': {
        const code = event.error.code ?? event.error.type ?? 'unknown';
        if (BENIGN_ERROR_CODES.has(code)) return;
        this.safeEmit('error', new ProviderError(event.error.message ?? 'provider error', code));
        break;
      }
      case 'session.created':
      case 'session.updated':
        break;
    }
  }

  #onClose(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.safeEmit('close', {
      expected: this.#closing,
      reason: `websocket closed (${code}${reason ? ` ${reason}` : ''})`,
    });
    this.removeAllListeners();
  }
}

/** OpenAI Realtime over WebSocket, GA interface (no OpenAI-Beta header, `session.type: "realtime"`). */
export class OpenAIRealtimeProvider implements RealtimeProvider {
  readonly name = 'openai';
  constructor(private readonly config: OpenAIRealtimeConfig) {}

  async connect(options: SessionOptions): Promise<RealtimeSession> {
    const url = new URL(this.config.url);
    url.searchParams.set('model', this.config.model);
    const ws = new WebSocket(url, {
      headers: { Authorization: `Bearer ${this.config.apiKey}` },
      handshakeTimeout: this.config.connectTimeoutMs,
      maxPayload: MAX_FRAME_BYTES,
    });
    const log = options.log.child({ provider: 'openai' });
    let session: OpenAIRealtimeSession;
    try {
      session = await this.#handshake(ws, options, log);
    } catch (error) {
      ws.removeAllListeners();
      ws.on('error', () => {}); // a late socket error after we gave up must not crash the process
      ws.terminate();
      throw error;
    }
    if (options.greeting !== '') session.respond(options.greeting);
    return session;
  }

  /**
   * Opens the socket, sends session.update, resolves on session.updated with the live session. The
   * session takes over the socket synchronously, so no event that follows in the same read is lost.
   */
  #handshake(ws: WebSocket, options: SessionOptions, log: Logger): Promise<OpenAIRealtimeSession> {
    const { connectTimeoutMs } = this.config;
    return new Promise<OpenAIRealtimeSession>((resolve, reject) => {
      let sentUpdate = false;
      const fail = (error: ProviderError): void => {
        cleanup();
        reject(error);
      };
      let unwatch = (): void => {};
      const timer = setTimeout(
        () =>
          fail(
            new ProviderError(`no session from ${this.config.url} within ${connectTimeoutMs} ms`, 'timeout'),
          ),
        connectTimeoutMs,
      );
      const onAbort = (): void => fail(connectAborted());
      options.signal?.addEventListener('abort', onAbort, { once: true });
      const onMessage = (data: WebSocket.RawData): void => {
        const decoded = decodeServerEvent(rawText(data));
        if (decoded.kind !== 'event') return;
        const event = decoded.event;
        if (event.type === 'session.created' && !sentUpdate) {
          sentUpdate = true;
          ws.send(
            JSON.stringify(
              sessionUpdate({
                model: this.config.model,
                instructions: options.instructions,
                voice: options.voice ?? this.config.voice,
                codec: options.codec,
                transcriptionModel: this.config.transcriptionModel,
              }),
            ),
          );
        } else if (event.type === 'session.updated') {
          cleanup();
          resolve(new OpenAIRealtimeSession(ws, log));
        } else if (event.type === 'error') {
          fail(
            new ProviderError(
              `session setup rejected: ${event.error.message ?? 'unknown error'}`,
              event.error.code ?? 'setup_error',
            ),
          );
        }
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        unwatch();
        options.signal?.removeEventListener('abort', onAbort);
        ws.off('message', onMessage);
      };
      if (options.signal?.aborted) return onAbort();
      ws.on('message', onMessage);
      unwatch = watchSocketSetup(ws, fail);
    });
  }
}
