import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import { TypedEmitter } from '../../../core/events.js';
import { ProviderError } from '../../../core/errors.js';
import { connectAborted, watchSocketSetup } from '../../socket-setup.js';
import { monotonicClock, type Clock } from '../../../core/clock.js';
import type { Logger } from '../../../core/log.js';
import type {
  RealtimeCapabilities,
  RealtimeEvents,
  RealtimeProvider,
  RealtimeSession,
  SessionAudioFormats,
  SessionOptions,
} from '../../realtime.js';
import { PcmNormalizer } from './pcm.js';
import {
  USER_EXIT_STATUS,
  chatTextQuery,
  conversationTruncate,
  decodeServerMessage,
  finishConnection,
  finishSession,
  isFatalCode,
  isGeneration2Model,
  sayHello,
  startConnection,
  startSession,
  startSessionPayload,
  taskRequest,
  type DoubaoOutputFormat,
  type ServerJsonEvent,
} from './protocol.js';

export type { DoubaoOutputFormat } from './protocol.js';

export interface DoubaoConfig {
  /** DOUBAO_DEFAULT_URL, or a ws:// URL for proxies and tests. */
  url: string;
  /** Old-console credentials: App ID and Access Token. Both, or apiKey instead. */
  appId: string;
  accessKey: string;
  /** New-console API key (sent as X-Api-Key); when set, appId/accessKey are not sent. */
  apiKey: string;
  /** `dialog.extra.model`: '1.2.1.1' (O2.0) or '2.2.0.0' (SC2.0). */
  model: string;
  /** `tts.speaker`, e.g. zh_female_vv_jupiter_bigtts; empty = server default. */
  speaker: string;
  /** At most 20 characters; O models only. */
  botName: string;
  /** Persona; the call's instructions are appended to it. */
  systemRole: string;
  speakingStyle: string;
  /** 'pcm_s16le' (recommended) or 'pcm' (float32, converted to int16 here). Both 24 kHz. */
  outputFormat: DoubaoOutputFormat;
  /** Ask the model to flag a caller who wants to leave; the session then emits endRequested. */
  hangUpOnUserExit: boolean;
  connectTimeoutMs: number;
}

/** Seams for tests; production uses the defaults. */
export interface DoubaoTuning {
  /** Caller silence after which the session streams silence frames; a non-finite value disables it. */
  keepAliveAfterMs: number;
  clock: Clock;
}

export const DOUBAO_DEFAULT_URL = 'wss://openspeech.bytedance.com/api/v3/realtime/dialogue';
/** Fixed values from the doc's header table (the App Key is a public constant, not a secret). */
export const DOUBAO_RESOURCE_ID = 'volc.speech.dialog';
export const DOUBAO_APP_KEY = 'PlgvMymc7f3tQnJ6';

/**
 * Keep-alive starts after 1 s without caller audio: ten times inside the server's 10 s audio-idle limit
 * (error 52000042), yet far longer than any RTP jitter or loss burst, so it runs only on hold or when
 * the phone suppresses silence.
 */
export const KEEPALIVE_AFTER_MS = 1_000;
/** One TaskRequest carries 20 ms of 16 kHz s16le: the doc's recommended packet. */
const FRAME_MS = 20;
const SILENCE_FRAME_BYTES = 640;
/** After a stalled event loop, catch up at most this many silence frames at once (no bursts). */
const MAX_CATCH_UP_FRAMES = 5;
/** 24 kHz int16 mono output. */
const OUTPUT_BYTES_PER_MS = 48;
/** Replies whose byte counts / drop marks we remember; one is cancelled per barge-in, so a few suffice. */
const MAX_TRACKED_REPLIES = 16;
/** Largest frame accepted from the server (TTS chunks are a few KB). */
const MAX_FRAME_BYTES = 16 * 1024 * 1024;
const BOT_NAME_MAX_CHARS = 20;
/** The server's default output is Ogg/Opus; seeing it means audio_config was ignored. */
const OGG_MAGIC = Buffer.from('OggS', 'latin1');
const USER_EXIT_REASON = 'user_query_exit';

const DEFAULT_TUNING: DoubaoTuning = { keepAliveAfterMs: KEEPALIVE_AFTER_MS, clock: monotonicClock };

function rawBytes(data: WebSocket.RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
}

function remember<T>(set: Set<T> | Map<T, unknown>, limit: number): void {
  while (set.size > limit) set.delete(set.keys().next().value!);
}

interface SessionParams {
  ws: WebSocket;
  log: Logger;
  sessionId: string;
  model: string;
  outputFormat: DoubaoOutputFormat;
  hangUpOnUserExit: boolean;
  tuning: DoubaoTuning;
}

type SessionState = 'active' | 'closing' | 'closed';

class DoubaoRealtimeSession extends TypedEmitter<RealtimeEvents> implements RealtimeSession {
  readonly provider = 'doubao';
  readonly capabilities: RealtimeCapabilities;
  readonly audioFormats: SessionAudioFormats = {
    input: { encoding: 'pcm16', sampleRate: 16000 },
    output: { encoding: 'pcm16', sampleRate: 24000 },
  };
  readonly #ws: WebSocket;
  readonly #log: Logger;
  readonly #sessionId: string;
  readonly #hangUpOnUserExit: boolean;
  readonly #tuning: DoubaoTuning;
  #state: SessionState = 'active';

  /** The reply whose audio is arriving (352 frames carry no ids: 350 TTSSentenceStart names it). */
  #replyId: string | undefined;
  /** Barge-in: drop audio until a TTSSentenceStart of a reply that was not cancelled. */
  #dropping = false;
  readonly #cancelledReplies = new Set<string>();
  /** Output bytes received per reply: truncate may not exceed it. */
  readonly #receivedBytes = new Map<string, number>();
  readonly #agentText = new Map<string, string>();
  readonly #pcm: PcmNormalizer;
  #syntheticReplies = 0;
  #reportedOgg = false;

  #idleTimer: NodeJS.Timeout | undefined;
  #fillTimer: NodeJS.Timeout | undefined;
  #fillStartedAt = 0;
  #fillSent = 0;
  readonly #silenceFrame: Buffer;

  constructor(p: SessionParams) {
    super((error, event) => p.log.error({ err: error, event }, 'doubao listener threw'));
    this.#ws = p.ws;
    this.#log = p.log;
    this.#sessionId = p.sessionId;
    this.#hangUpOnUserExit = p.hangUpOnUserExit;
    this.#tuning = p.tuning;
    this.#pcm = new PcmNormalizer(p.outputFormat);
    this.capabilities = {
      truncate: isGeneration2Model(p.model),
      toolCalls: false,
      serverVad: true,
      g711Passthrough: false,
    };
    this.#silenceFrame = taskRequest(p.sessionId, new Uint8Array(SILENCE_FRAME_BYTES));
    p.ws.on('message', (data, isBinary) => this.#onMessage(data, isBinary));
    p.ws.on('close', (code, reason) => this.#onClose(code, reason.toString()));
    p.ws.on('error', (error) => this.#log.warn({ err: error }, 'doubao socket error'));
    this.#armKeepAlive();
  }

  sendAudio(data: Uint8Array): void {
    if (this.#state !== 'active' || data.byteLength === 0) return; // an empty packet is error 45000002
    if (this.#fillTimer !== undefined) this.#stopFill();
    this.#idleTimer?.refresh();
    this.#send(taskRequest(this.#sessionId, data));
  }

  truncate(itemId: string, playedMs: number): void {
    if (!this.capabilities.truncate || this.#state !== 'active') return;
    const received = this.#receivedBytes.get(itemId);
    if (received === undefined) return;
    this.#send(
      conversationTruncate(this.#sessionId, itemId, Math.min(playedMs, received / OUTPUT_BYTES_PER_MS)),
    );
  }

  sendToolResult(): void {
    // Doubao's dialogue API has no function calling (capabilities.toolCalls is false).
  }

  /** SayHello(300): the model speaks `content` verbatim. */
  greet(content: string): void {
    if (this.#state !== 'active' || content.trim() === '') return;
    this.#send(sayHello(this.#sessionId, content));
  }

  /**
   * Doubao cannot steer a turn with instructions; the closest documented event is ChatTextQuery(501), a
   * text user turn the model answers. The instructions therefore enter the context as a user message.
   */
  respond(instructions: string): void {
    if (this.#state !== 'active' || instructions.trim() === '') return;
    this.#send(chatTextQuery(this.#sessionId, instructions));
  }

  /** FinishSession(102), FinishConnection(2), then the socket close; idempotent. */
  close(): void {
    if (this.#state !== 'active') return;
    this.#state = 'closing';
    this.#stopKeepAlive();
    this.#send(finishSession(this.#sessionId));
    this.#send(finishConnection());
    if (this.#ws.readyState === WebSocket.OPEN) this.#ws.close(1000, 'call ended');
    else this.#onClose(1000, 'call ended');
  }

  #send(frame: Buffer): void {
    if (this.#ws.readyState !== WebSocket.OPEN) return;
    this.#ws.send(frame);
  }

  // ---- keep-alive ---------------------------------------------------------------------------------
  // The server ends a session that gets no audio for 10 s (52000042). The call layer sends caller audio
  // every 20 ms while RTP flows; on hold (or with silence suppression) it sends nothing. After
  // keepAliveAfterMs without caller audio the session streams 640-byte silence frames at real-time pace,
  // exactly what an open microphone sends, and stops at the next caller frame. (input_mod "keep_alive"
  // is a StartSession-only setting; UpdateConfig(201) does not document input_mod, so it cannot be
  // switched on for a hold.)

  #armKeepAlive(): void {
    const after = this.#tuning.keepAliveAfterMs;
    if (!Number.isFinite(after) || after < 0) return;
    this.#idleTimer = setTimeout(() => this.#startFill(), after);
    this.#idleTimer.unref();
  }

  #startFill(): void {
    if (this.#state !== 'active' || this.#fillTimer !== undefined) return;
    this.#log.debug('doubao keep-alive: no caller audio, streaming silence');
    this.#fillStartedAt = this.#tuning.clock.now();
    this.#fillSent = 0;
    this.#fillTick();
    this.#fillTimer = setInterval(() => this.#fillTick(), FRAME_MS);
    this.#fillTimer.unref();
  }

  /** Sends the silence frames due by the clock, so timer drift never slows the stream below real time. */
  #fillTick(): void {
    const due = Math.floor((this.#tuning.clock.now() - this.#fillStartedAt) / FRAME_MS) + 1;
    if (due - this.#fillSent > MAX_CATCH_UP_FRAMES) this.#fillSent = due - MAX_CATCH_UP_FRAMES;
    for (; this.#fillSent < due; this.#fillSent++) this.#send(this.#silenceFrame);
  }

  #stopFill(): void {
    clearInterval(this.#fillTimer);
    this.#fillTimer = undefined;
  }

  #stopKeepAlive(): void {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    this.#stopFill();
  }

  // ---- server events --------------------------------------------------------------------------------

  #onMessage(data: WebSocket.RawData, isBinary: boolean): void {
    if (this.#state !== 'active') return;
    if (!isBinary) {
      this.#log.warn('doubao sent a text frame; ignored');
      return;
    }
    const message = decodeServerMessage(rawBytes(data), MAX_FRAME_BYTES);
    if (message.kind === 'invalid') {
      this.#log.warn({ problem: message.problem }, 'doubao sent a malformed frame; ignored');
      return;
    }
    if (message.kind === 'ignored') {
      this.#log.debug({ event: message.event }, 'doubao event ignored');
      return;
    }
    if (message.sessionId !== undefined && message.sessionId !== this.#sessionId) {
      this.#log.warn({ event: message.kind }, 'doubao frame for another session; ignored');
      return;
    }
    switch (message.kind) {
      case 'audio':
        return this.#onAudio(message.audio);
      case 'error':
        return this.#onProviderError(message.code, message.message);
      case 'event':
        return this.#onEvent(message.event);
    }
  }

  #onEvent(event: ServerJsonEvent): void {
    switch (event.name) {
      case 'TTSSentenceStart': {
        const id = event.reply_id ?? event.question_id ?? `doubao-reply-${++this.#syntheticReplies}`;
        if (this.#cancelledReplies.has(id)) {
          this.#dropping = true; // a later sentence of a reply the caller talked over
          return;
        }
        if (id !== this.#replyId) this.#pcm.reset();
        this.#replyId = id;
        this.#dropping = false;
        return;
      }
      case 'ASRInfo':
        // Barge-in: the server stops generating; what it already sent of this reply must not play.
        if (this.#replyId !== undefined) {
          this.#cancelledReplies.add(this.#replyId);
          remember(this.#cancelledReplies, MAX_TRACKED_REPLIES);
        }
        this.#dropping = true;
        this.#pcm.reset();
        this.safeEmit('speechStarted');
        return;
      case 'ASRResponse':
        for (const result of event.results) {
          if (result.is_interim !== false || result.text.trim() === '') continue;
          this.safeEmit('transcript', { role: 'caller', text: result.text });
        }
        return;
      case 'ChatResponse': {
        const key = event.reply_id ?? this.#replyId ?? '';
        this.#agentText.set(key, (this.#agentText.get(key) ?? '') + event.content);
        remember(this.#agentText, MAX_TRACKED_REPLIES);
        return;
      }
      case 'ChatEnded': {
        const key = event.reply_id ?? this.#replyId ?? '';
        const text = this.#agentText.get(key);
        this.#agentText.delete(key);
        if (text !== undefined && text.trim() !== '') this.safeEmit('transcript', { role: 'agent', text });
        return;
      }
      case 'TTSEnded':
        if (event.status_code === USER_EXIT_STATUS && this.#hangUpOnUserExit) {
          this.#log.info('doubao: caller wants to end the call');
          this.safeEmit('endRequested', USER_EXIT_REASON);
        }
        return;
      case 'DialogCommonError':
        return this.#onProviderError(event.status_code, event.message ?? '');
      case 'SessionFailed':
      case 'ConnectionFailed':
        return this.#fail(`doubao ${event.name}: ${event.error ?? 'no reason given'}`);
      case 'SessionFinished':
      case 'ConnectionFinished':
        return this.#fail(`doubao ${event.name} without a request`);
      case 'ConnectionStarted':
      case 'SessionStarted':
      case 'UsageResponse':
      case 'ConfigUpdated':
      case 'TTSSentenceEnd':
      case 'ASREnded':
      case 'ChatTextQueryConfirmed':
      case 'ConversationTruncated':
        return;
    }
  }

  #onAudio(audio: Uint8Array): void {
    if (this.#dropping) return; // late audio of the reply the caller interrupted
    const itemId = (this.#replyId ??= `doubao-reply-${++this.#syntheticReplies}`);
    const before = this.#receivedBytes.get(itemId);
    if (before === undefined && OGG_MAGIC.equals(Buffer.from(audio.subarray(0, OGG_MAGIC.length)))) {
      if (!this.#reportedOgg) {
        this.#reportedOgg = true;
        this.safeEmit(
          'error',
          new ProviderError('doubao sent Ogg/Opus audio: tts.audio_config was ignored', 'unexpected_audio'),
        );
      }
      return;
    }
    const pcm = this.#pcm.push(audio);
    if (pcm.length === 0) return;
    this.#receivedBytes.set(itemId, (before ?? 0) + pcm.length);
    remember(this.#receivedBytes, MAX_TRACKED_REPLIES);
    this.safeEmit('audio', { data: pcm, itemId });
  }

  /** 5xxxxxxx: the session is unusable and ends; anything else is reported and the call goes on. */
  #onProviderError(code: string | number, message: string): void {
    const text = `doubao error ${code}${message ? `: ${message}` : ''}`;
    if (isFatalCode(code)) return this.#fail(text);
    this.#log.warn({ code: String(code) }, 'doubao reported an error');
    this.safeEmit('error', new ProviderError(text, String(code)));
  }

  #fail(reason: string): void {
    if (this.#state === 'closed') return;
    this.#log.warn({ reason }, 'doubao session failed');
    this.#state = 'closed';
    this.#stopKeepAlive();
    this.safeEmit('close', { expected: false, reason });
    this.removeAllListeners();
    if (this.#ws.readyState === WebSocket.OPEN) this.#ws.close(1000, 'session failed');
  }

  #onClose(code: number, reason: string): void {
    if (this.#state === 'closed') return;
    const expected = this.#state === 'closing';
    this.#state = 'closed';
    this.#stopKeepAlive();
    this.safeEmit('close', {
      expected,
      reason: `websocket closed (${code}${reason ? ` ${reason}` : ''})`,
    });
    this.removeAllListeners();
  }
}

/**
 * Doubao (Volcengine) end-to-end realtime voice over the v3 binary WebSocket protocol. Takes 16 kHz and
 * gives 24 kHz PCM16; the call layer resamples and paces. The greeting is spoken verbatim (SayHello).
 */
export class DoubaoRealtimeProvider implements RealtimeProvider {
  readonly name = 'doubao';
  readonly #config: DoubaoConfig;
  readonly #tuning: DoubaoTuning;

  /** Throws TypeError/RangeError on a config that can never work (no credentials, bad URL). */
  constructor(config: DoubaoConfig, tuning: Partial<DoubaoTuning> = {}) {
    if (!URL.canParse(config.url) || !/^wss?:$/.test(new URL(config.url).protocol))
      throw new TypeError(`doubao url must be ws:// or wss://, got ${config.url}`);
    if (config.apiKey.trim() === '' && (config.appId.trim() === '' || config.accessKey.trim() === ''))
      throw new TypeError('doubao needs an API key, or an App ID and an Access Key');
    if (config.model.trim() === '') throw new TypeError('doubao model (dialog.extra.model) is required');
    if ([...config.botName].length > BOT_NAME_MAX_CHARS)
      throw new RangeError(`doubao bot name is longer than ${BOT_NAME_MAX_CHARS} characters`);
    if (config.outputFormat !== 'pcm_s16le' && config.outputFormat !== 'pcm')
      throw new TypeError(`doubao output format must be pcm_s16le or pcm`);
    if (!(config.connectTimeoutMs > 0)) throw new RangeError('doubao connect timeout must be positive');
    this.#config = config;
    this.#tuning = { ...DEFAULT_TUNING, ...tuning };
  }

  async connect(options: SessionOptions): Promise<RealtimeSession> {
    const connectId = randomUUID();
    const ws = new WebSocket(this.#config.url, {
      headers: this.#headers(connectId),
      handshakeTimeout: this.#config.connectTimeoutMs,
      maxPayload: MAX_FRAME_BYTES,
    });
    const log = options.log.child({ provider: 'doubao', connectId });
    if (options.tools !== undefined && options.tools.length > 0)
      log.debug({ tools: options.tools.length }, 'doubao has no function calling; tools ignored');
    ws.on('upgrade', (res) => log.info({ logId: res.headers['x-tt-logid'] }, 'doubao connected'));
    let session: DoubaoRealtimeSession;
    try {
      session = await this.#handshake(ws, options, log);
    } catch (error) {
      ws.removeAllListeners();
      ws.on('error', () => {}); // a late socket error after we gave up must not crash the process
      ws.terminate();
      throw error;
    }
    if (options.greeting.trim() !== '') session.greet(options.greeting);
    return session;
  }

  #headers(connectId: string): Record<string, string> {
    const c = this.#config;
    const auth: Record<string, string> =
      c.apiKey.trim() !== ''
        ? { 'X-Api-Key': c.apiKey }
        : { 'X-Api-App-ID': c.appId, 'X-Api-Access-Key': c.accessKey };
    return {
      ...auth,
      'X-Api-Resource-Id': DOUBAO_RESOURCE_ID,
      'X-Api-App-Key': DOUBAO_APP_KEY,
      'X-Api-Connect-Id': connectId,
    };
  }

  /**
   * StartConnection(1) → ConnectionStarted(50) → StartSession(100) → SessionStarted(150). The session
   * takes over the socket synchronously, so no frame that follows in the same read is lost.
   */
  #handshake(ws: WebSocket, options: SessionOptions, log: Logger): Promise<DoubaoRealtimeSession> {
    const config = this.#config;
    const sessionId = randomUUID();
    return new Promise<DoubaoRealtimeSession>((resolve, reject) => {
      const fail = (error: ProviderError): void => {
        cleanup();
        reject(error);
      };
      let unwatch = (): void => {};
      const timer = setTimeout(
        () =>
          fail(
            new ProviderError(
              `no session from ${config.url} within ${config.connectTimeoutMs} ms`,
              'timeout',
            ),
          ),
        config.connectTimeoutMs,
      );
      const onAbort = (): void => fail(connectAborted());
      const rejected = (why: string): void =>
        fail(new ProviderError(`session setup rejected: ${why}`, 'setup_rejected'));
      const onOpen = (): void => {
        ws.send(startConnection());
      };
      const onMessage = (data: WebSocket.RawData, isBinary: boolean): void => {
        if (!isBinary) return;
        const message = decodeServerMessage(rawBytes(data), MAX_FRAME_BYTES);
        if (message.kind === 'error') return rejected(`doubao error ${message.code}: ${message.message}`);
        if (message.kind !== 'event') return;
        const event = message.event;
        switch (event.name) {
          case 'ConnectionStarted':
            ws.send(
              startSession(
                sessionId,
                startSessionPayload({
                  model: config.model,
                  speaker: options.voice ?? config.speaker,
                  botName: config.botName,
                  systemRole: [config.systemRole, options.instructions]
                    .filter((s) => s.trim() !== '')
                    .join('\n\n'),
                  speakingStyle: config.speakingStyle,
                  outputFormat: config.outputFormat,
                  hangUpOnUserExit: config.hangUpOnUserExit,
                }),
              ),
            );
            return;
          case 'SessionStarted':
            if (message.sessionId !== sessionId) return;
            cleanup();
            log.info({ dialogId: event.dialog_id }, 'doubao session started');
            resolve(
              new DoubaoRealtimeSession({
                ws,
                log,
                sessionId,
                model: config.model,
                outputFormat: config.outputFormat,
                hangUpOnUserExit: config.hangUpOnUserExit,
                tuning: this.#tuning,
              }),
            );
            return;
          case 'ConnectionFailed':
          case 'SessionFailed':
            return rejected(`${event.name}: ${event.error ?? 'no reason given'}`);
          case 'DialogCommonError':
            return rejected(`doubao error ${event.status_code}: ${event.message ?? ''}`);
          default:
            return;
        }
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        unwatch();
        options.signal?.removeEventListener('abort', onAbort);
        ws.off('open', onOpen);
        ws.off('message', onMessage);
      };
      if (options.signal?.aborted) return onAbort();
      options.signal?.addEventListener('abort', onAbort, { once: true });
      ws.on('open', onOpen);
      ws.on('message', onMessage);
      unwatch = watchSocketSetup(ws, fail);
    });
  }
}
