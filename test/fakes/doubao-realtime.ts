// A protocol-faithful fake of Doubao's realtime dialogue API (Volcengine v3, binary frames), for tests.
// Wire format per ../shared/reference/providers.md §3 and Volcengine doc 6561/1594356: 4-byte header
// (0x11, type<<4|flags, serialization<<4|compression, 0), then [error code] [event] [connect/session id]
// payload size + payload, big-endian. The fake frames bytes with its own code (not src/…/frames.ts), so a
// codec bug cannot hide behind a matching bug here.
// The VAD runs on *audio time* (count of received samples), never on wall clock; the 10 s audio-idle
// rule runs on wall clock, as the real server's does.
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, STATUS_CODES } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import { WebSocket, WebSocketServer } from 'ws';
import type { RawData } from 'ws';

// ---------------------------------------------------------------------------------------------------
// Public API

export interface FakeDoubaoOptions {
  /** Assistant audio for each reply as 24 kHz s16le; sent as float32 when the session asks for 'pcm'. */
  replyAudio: Buffer | ((replyIndex: number) => Buffer);
  /** ms of audio per TTSResponse (default 100) and wall-clock gap between them (default 5). */
  chunkMs?: number;
  chunkIntervalMs?: number;
  /** Wire bytes per TTSResponse, overriding chunkMs (e.g. odd sizes that split samples). */
  chunkBytes?: number;
  /** Gzip every Nth TTSResponse and JSON event (default 2: every other one); 0 = never. */
  gzipEvery?: number;
  upgradeDelayMs?: number;
  rejectUpgradeStatus?: number;
  /** Accepted credentials; by default any non-empty value authenticates. */
  credentials?: { apiKey?: string; appId?: string; accessKey?: string };
  /** Wall-clock ms without TaskRequest before error 52000042 and a close (real server: 10 s). */
  audioIdleTimeoutMs?: number;
  /** Energy VAD: RMS over 20 ms windows (default 500); silence that ends a turn (default 500 ms). */
  vadRmsThreshold?: number;
  vadSilenceMs?: number;
  /** Chunks of an interrupted reply still sent after ASRInfo, as if in flight (default 2). */
  lateChunksAfterBargeIn?: number;
  /** Also send a TTSSentenceStart of the interrupted reply (plus one chunk) after ASRInfo. */
  lateSentenceAfterBargeIn?: boolean;
  userText?: string;
  assistantText?: string;
  /** Handshake failures. */
  failConnection?: string;
  failSession?: string;
  /** Never answer StartConnection (connect timeouts). */
  silentSetup?: boolean;
}

export interface ClientFrameRecord {
  at: number;
  type: number;
  flags: number;
  serialization: number;
  compression: number;
  event: number | undefined;
  sessionId: string | undefined;
  /** The frame exactly as received. */
  bytes: Buffer;
  /** Inflated payload. */
  payload: Buffer;
  json: Record<string, unknown> | undefined;
}

export interface SentFrameRecord {
  at: number;
  type: number;
  event: number | undefined;
  errorCode: number | undefined;
  gzip: boolean;
  json: unknown;
  audioBytes: number;
}

export type FakeReplyOrigin = 'vad' | 'hello' | 'text' | 'exit' | 'server';

export interface FakeReplyRecord {
  index: number;
  replyId: string;
  questionId: string;
  origin: FakeReplyOrigin;
  text: string;
  status: 'speaking' | 'done' | 'interrupted';
  /** Wire bytes of TTSResponse payloads sent (before gzip), including late ones. */
  audioBytesSent: number;
  /** The reply's whole audio in the wire format. */
  audio: Buffer;
}

export interface FakeDoubaoSessionHandle {
  headers: IncomingHttpHeaders;
  connectId: string;
  /** The client's session id from StartSession. */
  sessionId: string | undefined;
  startSession: Record<string, unknown> | undefined;
  dialogId: string;
  clientFrames: ClientFrameRecord[];
  sent: SentFrameRecord[];
  /** Caller audio as received (TaskRequest payloads, in order). */
  audio: Buffer[];
  /** TaskRequest frames whose payload is all zeros. */
  silentFrames: number;
  replies: FakeReplyRecord[];
  closed: boolean;
  closedAt?: number;
  /** Why the fake closed the socket, if it did. */
  closeCause: 'finish_connection' | 'audio_idle' | 'dropped' | 'server' | undefined;
  sendError(code: number, message: string): void;
  sendDialogError(statusCode: string, message: string): void;
  sendEvent(event: number, payload: unknown, options?: { gzip?: boolean; sessionId?: string }): void;
  sendAudioChunk(audio: Buffer, options?: { gzip?: boolean }): void;
  sendRaw(data: Buffer | string): void;
  startReply(text?: string): void;
  /** A reply whose TTSEnded carries status_code "20000002" (the caller wants to leave). */
  requestUserExit(): void;
  drop(): void;
  close(code?: number, reason?: string): void;
}

export type FakeDoubaoEvents = {
  session: [FakeDoubaoSessionHandle];
  clientFrame: [FakeDoubaoSessionHandle, ClientFrameRecord];
};

// ---------------------------------------------------------------------------------------------------
// Constants (wire values from the doc; fake-only choices marked)

const PATH = '/api/v3/realtime/dialogue';
const RESOURCE_ID = 'volc.speech.dialog';
const APP_KEY = 'PlgvMymc7f3tQnJ6';

const TYPE_FULL_CLIENT = 0b0001;
const TYPE_AUDIO_CLIENT = 0b0010;
const TYPE_FULL_SERVER = 0b1001;
const TYPE_AUDIO_SERVER = 0b1011;
const TYPE_ERROR = 0b1111;
const FLAG_EVENT = 0b0100;
const SER_RAW = 0;
const SER_JSON = 1;
const COMP_NONE = 0;
const COMP_GZIP = 1;

const EV = {
  StartConnection: 1,
  FinishConnection: 2,
  StartSession: 100,
  FinishSession: 102,
  TaskRequest: 200,
  UpdateConfig: 201,
  SayHello: 300,
  ChatTextQuery: 501,
  ConversationTruncate: 513,
  ConnectionStarted: 50,
  ConnectionFailed: 51,
  ConnectionFinished: 52,
  SessionStarted: 150,
  SessionFinished: 152,
  SessionFailed: 153,
  UsageResponse: 154,
  ConfigUpdated: 251,
  TTSSentenceStart: 350,
  TTSSentenceEnd: 351,
  TTSResponse: 352,
  TTSEnded: 359,
  ASRInfo: 450,
  ASRResponse: 451,
  ASREnded: 459,
  ChatResponse: 550,
  ChatTextQueryConfirmed: 553,
  ChatEnded: 559,
  ConversationTruncated: 570,
  DialogCommonError: 599,
} as const;

const CODE_PARAM = 42_000_020;
const CODE_EMPTY_AUDIO = 45_000_002;
/** Fake-only choice: the doc names no code for a malformed frame. */
const CODE_BAD_FRAME = 45_000_001;
const CODE_AUDIO_IDLE = 52_000_042;
const USER_EXIT_STATUS = '20000002';

const INPUT_RATE = 16_000;
const OUTPUT_RATE = 24_000;
const DEFAULT_CHUNK_MS = 100;
const DEFAULT_CHUNK_INTERVAL_MS = 5;
const DEFAULT_GZIP_EVERY = 2;
const DEFAULT_AUDIO_IDLE_MS = 10_000;
const DEFAULT_VAD_RMS = 500;
const DEFAULT_VAD_SILENCE_MS = 500;
const DEFAULT_LATE_CHUNKS = 2;
const VAD_WINDOW_SAMPLES = (INPUT_RATE / 1000) * 20;
/** Consecutive loud windows that make an onset. */
const VAD_ONSET_WINDOWS = 2;
const BOT_NAME_MAX = 20;
const INPUT_MODES = new Set(['audio', 'keep_alive', 'push_to_talk', 'text', 'audio_file']);
const DEFAULT_WAIT_MS = 5_000;
const DEFAULT_USER_TEXT = '你好，我想查一下订单。';
const DEFAULT_ASSISTANT_TEXT = '好的，请告诉我您的订单号。';

// ---------------------------------------------------------------------------------------------------
// Independent framing

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

function withId(id: string): Buffer {
  const bytes = Buffer.from(id, 'utf8');
  return Buffer.concat([u32(bytes.length), bytes]);
}

/** Server frame: header, [code], [event], [id], size, payload. */
function serverFrame(
  type: number,
  parts: { code?: number; event?: number; id?: string; serialization: number; gzip: boolean },
  payload: Buffer,
): Buffer {
  const body = parts.gzip ? gzipSync(payload) : payload;
  const flags = parts.event === undefined ? 0 : FLAG_EVENT;
  const chunks: Buffer[] = [
    Buffer.from([
      0x11,
      (type << 4) | flags,
      (parts.serialization << 4) | (parts.gzip ? COMP_GZIP : COMP_NONE),
      0,
    ]),
  ];
  if (parts.code !== undefined) chunks.push(u32(parts.code));
  if (parts.event !== undefined) chunks.push(u32(parts.event));
  if (parts.id !== undefined) chunks.push(withId(parts.id));
  chunks.push(u32(body.length), body);
  return Buffer.concat(chunks);
}

class FrameError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

function parseClientFrame(bytes: Buffer): ClientFrameRecord {
  if (bytes.length < 4) throw new FrameError(CODE_BAD_FRAME, 'frame shorter than its header');
  if (bytes[0] !== 0x11) throw new FrameError(CODE_BAD_FRAME, `byte 0 must be 0x11, got ${bytes[0]}`);
  const type = bytes[1]! >> 4;
  const flags = bytes[1]! & 0x0f;
  const serialization = bytes[2]! >> 4;
  const compression = bytes[2]! & 0x0f;
  if (bytes[3] !== 0) throw new FrameError(CODE_BAD_FRAME, 'reserved byte 3 must be 0');
  if (type !== TYPE_FULL_CLIENT && type !== TYPE_AUDIO_CLIENT)
    throw new FrameError(CODE_BAD_FRAME, `message type ${type} is not a client type`);
  if (flags !== FLAG_EVENT)
    throw new FrameError(CODE_BAD_FRAME, `flags 0b${flags.toString(2)} lack the event bit`);
  if (type === TYPE_FULL_CLIENT && serialization !== SER_JSON)
    throw new FrameError(CODE_BAD_FRAME, 'full-client request must be JSON');
  if (type === TYPE_AUDIO_CLIENT && serialization !== SER_RAW)
    throw new FrameError(CODE_BAD_FRAME, 'audio-only request must be raw');
  if (compression !== COMP_NONE && compression !== COMP_GZIP)
    throw new FrameError(CODE_BAD_FRAME, `compression ${compression}`);
  let at = 4;
  const read = (n: number, what: string): Buffer => {
    if (bytes.length < at + n) throw new FrameError(CODE_BAD_FRAME, `truncated ${what}`);
    const out = bytes.subarray(at, at + n);
    at += n;
    return out;
  };
  const event = read(4, 'event').readUInt32BE(0);
  let sessionId: string | undefined;
  if (event !== EV.StartConnection && event !== EV.FinishConnection) {
    const size = read(4, 'session id size').readUInt32BE(0);
    sessionId = read(size, 'session id').toString('utf8');
  }
  const size = read(4, 'payload size').readUInt32BE(0);
  const raw = read(size, 'payload');
  if (at !== bytes.length) throw new FrameError(CODE_BAD_FRAME, `${bytes.length - at} trailing bytes`);
  let payload: Buffer = raw;
  if (compression === COMP_GZIP) {
    try {
      payload = gunzipSync(raw);
    } catch {
      throw new FrameError(CODE_BAD_FRAME, 'gzip payload does not inflate');
    }
  }
  let json: Record<string, unknown> | undefined;
  if (type === TYPE_FULL_CLIENT) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(payload.toString('utf8'));
    } catch {
      throw new FrameError(CODE_BAD_FRAME, `event ${event}: payload is not JSON`);
    }
    if (!isRecord(parsed)) throw new FrameError(CODE_BAD_FRAME, `event ${event}: payload is not an object`);
    json = parsed;
  }
  return {
    at: Date.now(),
    type,
    flags,
    serialization,
    compression,
    event,
    sessionId,
    bytes: Buffer.from(bytes),
    payload,
    json,
  };
}

/** s16le → float32le in [-1, 1] (scale 32767, so int16 → float32 → int16 round-trips exactly). */
function toFloat32(s16: Buffer): Buffer {
  const n = Math.floor(s16.length / 2);
  const out = Buffer.alloc(n * 4);
  for (let i = 0; i < n; i++) out.writeFloatLE(s16.readInt16LE(i * 2) / 32767, i * 4);
  return out;
}

function isGeneration2(model: unknown): boolean {
  return typeof model === 'string' && /^(1\.2\.1|2\.2\.0)\.\d+$/.test(model);
}

// ---------------------------------------------------------------------------------------------------
// One connection

interface ActiveReply {
  record: FakeReplyRecord;
  offset: number;
  chunkBytes: number;
  withChat: boolean;
  exitStatus: boolean;
  timer: NodeJS.Timeout | undefined;
}

interface FakeHost {
  readonly opts: FakeDoubaoOptions;
  frameReceived(session: FakeDoubaoSessionHandle, frame: ClientFrameRecord): void;
}

class FakeConnection implements FakeDoubaoSessionHandle {
  readonly headers: IncomingHttpHeaders;
  readonly connectId: string;
  sessionId: string | undefined;
  startSession: Record<string, unknown> | undefined;
  readonly dialogId = randomUUID();
  readonly clientFrames: ClientFrameRecord[] = [];
  readonly sent: SentFrameRecord[] = [];
  readonly audio: Buffer[] = [];
  silentFrames = 0;
  readonly replies: FakeReplyRecord[] = [];
  closed = false;
  closedAt?: number;
  closeCause: FakeDoubaoSessionHandle['closeCause'];

  private state: 'new' | 'connected' | 'session' | 'finished' = 'new';
  private active: ActiveReply | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly pendingTimers = new Set<NodeJS.Timeout>();
  private sentCount = 0;
  private questionCount = 0;
  // VAD on audio time
  private winSumSq = 0;
  private winCount = 0;
  private loudRun = 0;
  private speaking = false;
  private silentMs = 0;
  private questionId: string | undefined;

  constructor(
    private readonly host: FakeHost,
    private readonly ws: WebSocket,
    req: IncomingMessage,
  ) {
    this.headers = req.headers;
    const connectId = req.headers['x-api-connect-id'];
    this.connectId = typeof connectId === 'string' && connectId !== '' ? connectId : randomUUID();
    ws.on('message', (data: RawData, isBinary: boolean) => this.onMessage(data, isBinary));
    ws.on('close', () => this.onClosed());
    ws.on('error', () => {
      /* a reset socket also emits close */
    });
  }

  private get opts(): FakeDoubaoOptions {
    return this.host.opts;
  }

  private get outputFormat(): string {
    const tts = this.startSession?.tts;
    const config = isRecord(tts) && isRecord(tts.audio_config) ? tts.audio_config : undefined;
    return typeof config?.format === 'string' ? config.format : 'ogg_opus';
  }

  private get dialogExtra(): Record<string, unknown> {
    const dialog = this.startSession?.dialog;
    return isRecord(dialog) && isRecord(dialog.extra) ? dialog.extra : {};
  }

  // ---- controls -----------------------------------------------------------------------------------

  sendError(code: number, message: string): void {
    this.write(
      serverFrame(TYPE_ERROR, { code, serialization: SER_JSON, gzip: false }, this.json({ error: message })),
      {
        type: TYPE_ERROR,
        event: undefined,
        errorCode: code,
        gzip: false,
        json: { error: message },
        audioBytes: 0,
      },
    );
  }

  sendDialogError(statusCode: string, message: string): void {
    this.sendEvent(EV.DialogCommonError, { status_code: statusCode, message });
  }

  sendEvent(event: number, payload: unknown, options: { gzip?: boolean; sessionId?: string } = {}): void {
    const gzip = options.gzip ?? this.nextGzip();
    const connection =
      event === EV.ConnectionStarted || event === EV.ConnectionFailed || event === EV.ConnectionFinished;
    const id = connection ? this.connectId : (options.sessionId ?? this.sessionId ?? '');
    this.write(
      serverFrame(TYPE_FULL_SERVER, { event, id, serialization: SER_JSON, gzip }, this.json(payload)),
      {
        type: TYPE_FULL_SERVER,
        event,
        errorCode: undefined,
        gzip,
        json: payload,
        audioBytes: 0,
      },
    );
  }

  sendAudioChunk(audio: Buffer, options: { gzip?: boolean } = {}): void {
    const gzip = options.gzip ?? this.nextGzip();
    this.write(
      serverFrame(
        TYPE_AUDIO_SERVER,
        { event: EV.TTSResponse, id: this.sessionId ?? '', serialization: SER_RAW, gzip },
        audio,
      ),
      {
        type: TYPE_AUDIO_SERVER,
        event: EV.TTSResponse,
        errorCode: undefined,
        gzip,
        json: undefined,
        audioBytes: audio.length,
      },
    );
  }

  sendRaw(data: Buffer | string): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(data);
  }

  startReply(text?: string): void {
    if (this.state !== 'session' || this.active) return;
    this.beginReply('server', text ?? this.opts.assistantText ?? DEFAULT_ASSISTANT_TEXT, true, false);
  }

  requestUserExit(): void {
    if (this.state !== 'session') return;
    this.stopReply('done');
    this.beginReply('exit', '好的，再见。', true, true);
  }

  drop(): void {
    this.closeCause ??= 'dropped';
    this.dispose();
    this.ws.terminate();
  }

  close(code?: number, reason?: string): void {
    this.closeCause ??= 'server';
    this.dispose();
    this.ws.close(code, reason);
  }

  dispose(): void {
    this.stopReply('interrupted');
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    for (const t of this.pendingTimers) clearTimeout(t);
    this.pendingTimers.clear();
  }

  // ---- plumbing -----------------------------------------------------------------------------------

  private json(payload: unknown): Buffer {
    return Buffer.from(JSON.stringify(payload), 'utf8');
  }

  private nextGzip(): boolean {
    const every = this.opts.gzipEvery ?? DEFAULT_GZIP_EVERY;
    this.sentCount++;
    return every > 0 && this.sentCount % every === 0;
  }

  private write(frame: Buffer, record: Omit<SentFrameRecord, 'at'>): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(frame);
    this.sent.push({ at: Date.now(), ...record });
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.pendingTimers.delete(t);
      fn();
    }, ms);
    this.pendingTimers.add(t);
  }

  private onClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.closedAt = Date.now();
    this.dispose();
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    const bytes = Buffer.isBuffer(data)
      ? data
      : Array.isArray(data)
        ? Buffer.concat(data)
        : Buffer.from(data);
    if (!isBinary) {
      this.sendError(CODE_BAD_FRAME, 'text frames are not part of the protocol');
      return;
    }
    let frame: ClientFrameRecord;
    try {
      frame = parseClientFrame(bytes);
    } catch (error) {
      if (error instanceof FrameError) this.sendError(error.code, error.message);
      return;
    }
    this.clientFrames.push(frame);
    try {
      this.handle(frame);
    } catch (error) {
      if (error instanceof FrameError) this.sendError(error.code, error.message);
      else throw error;
    }
    this.host.frameReceived(this, frame);
  }

  private handle(f: ClientFrameRecord): void {
    const event = f.event!;
    if (event === EV.StartConnection) {
      if (this.state !== 'new') throw new FrameError(CODE_BAD_FRAME, 'StartConnection twice');
      if (this.opts.silentSetup) return;
      if (this.opts.failConnection !== undefined) {
        this.sendEvent(EV.ConnectionFailed, { error: this.opts.failConnection }, { gzip: false });
        return;
      }
      this.state = 'connected';
      this.sendEvent(EV.ConnectionStarted, {}, { gzip: false });
      return;
    }
    if (event === EV.FinishConnection) {
      this.dispose();
      this.state = 'finished';
      this.sendEvent(EV.ConnectionFinished, {}, { gzip: false });
      this.closeCause ??= 'finish_connection';
      this.ws.close(1000, 'connection finished');
      return;
    }
    if (this.state === 'new') throw new FrameError(CODE_BAD_FRAME, `event ${event} before StartConnection`);
    if (event === EV.StartSession) return this.onStartSession(f);
    if (this.state !== 'session') throw new FrameError(CODE_BAD_FRAME, `event ${event} outside a session`);
    if (f.sessionId !== this.sessionId)
      throw new FrameError(
        CODE_BAD_FRAME,
        `session id ${String(f.sessionId)} is not ${String(this.sessionId)}`,
      );
    if (event === EV.TaskRequest) {
      if (f.type !== TYPE_AUDIO_CLIENT)
        throw new FrameError(CODE_BAD_FRAME, 'TaskRequest must be audio-only');
      return this.onAudio(f.payload);
    }
    if (f.type !== TYPE_FULL_CLIENT) throw new FrameError(CODE_BAD_FRAME, `event ${event} must be JSON`);
    const json = f.json!;
    switch (event) {
      case EV.FinishSession:
        this.dispose();
        this.state = 'connected';
        this.sendEvent(EV.SessionFinished, {}, { gzip: false });
        return;
      case EV.SayHello:
        if (typeof json.content !== 'string' || json.content === '')
          throw new FrameError(CODE_PARAM, 'SayHello content is required');
        this.stopReply('interrupted');
        this.beginReply('hello', json.content, false, false);
        return;
      case EV.ChatTextQuery: {
        if (typeof json.content !== 'string' || json.content === '')
          throw new FrameError(CODE_PARAM, 'ChatTextQuery content is required');
        this.stopReply('interrupted');
        this.questionId = `q-${++this.questionCount}`;
        this.sendEvent(EV.ChatTextQueryConfirmed, { question_id: this.questionId });
        this.beginReply('text', this.opts.assistantText ?? DEFAULT_ASSISTANT_TEXT, true, false);
        return;
      }
      case EV.ConversationTruncate:
        if (!isGeneration2(this.dialogExtra.model) || this.dialogExtra.enable_conversation_truncate !== true)
          throw new FrameError(
            CODE_PARAM,
            'ConversationTruncate needs a 2.0 model with enable_conversation_truncate',
          );
        if (
          typeof json.item_id !== 'string' ||
          !Number.isInteger(json.audio_end_ms) ||
          (json.audio_end_ms as number) < 0
        )
          throw new FrameError(
            CODE_PARAM,
            'ConversationTruncate needs item_id and a non-negative integer audio_end_ms',
          );
        this.sendEvent(EV.ConversationTruncated, {});
        return;
      case EV.UpdateConfig:
        this.sendEvent(EV.ConfigUpdated, {});
        return;
      default:
        throw new FrameError(CODE_BAD_FRAME, `unsupported event ${event}`);
    }
  }

  private onStartSession(f: ClientFrameRecord): void {
    if (this.state === 'session') throw new FrameError(CODE_BAD_FRAME, 'a session is already running');
    if (f.type !== TYPE_FULL_CLIENT) throw new FrameError(CODE_BAD_FRAME, 'StartSession must be JSON');
    if (f.sessionId === undefined || f.sessionId === '')
      throw new FrameError(CODE_BAD_FRAME, 'StartSession needs a session id');
    const p = f.json!;
    const asr = p.asr;
    const tts = p.tts;
    const dialog = p.dialog;
    if (!isRecord(asr) || !isRecord(asr.extra))
      throw new FrameError(CODE_PARAM, 'StartSession event payload asr extra is null');
    if (!isRecord(tts) || !isRecord(tts.extra))
      throw new FrameError(CODE_PARAM, 'StartSession event payload tts extra is null');
    if (
      !isRecord(dialog) ||
      !isRecord(dialog.extra) ||
      typeof dialog.extra.model !== 'string' ||
      dialog.extra.model === ''
    )
      throw new FrameError(CODE_PARAM, 'dialog.extra.model is required');
    const mode = dialog.extra.input_mod;
    if (mode !== undefined && (typeof mode !== 'string' || !INPUT_MODES.has(mode)))
      throw new FrameError(CODE_PARAM, `input_mod ${JSON.stringify(mode)}`);
    if (typeof dialog.bot_name === 'string' && [...dialog.bot_name].length > BOT_NAME_MAX)
      throw new FrameError(CODE_PARAM, 'bot_name longer than 20 characters');
    if (tts.audio_config !== undefined) {
      const c = tts.audio_config;
      if (
        !isRecord(c) ||
        c.channel !== 1 ||
        c.sample_rate !== OUTPUT_RATE ||
        (c.format !== 'pcm' && c.format !== 'pcm_s16le')
      )
        throw new FrameError(CODE_PARAM, 'tts.audio_config must be channel 1, 24000 Hz, pcm or pcm_s16le');
    }
    if (this.opts.failSession !== undefined) {
      this.sendEvent(
        EV.SessionFailed,
        { error: this.opts.failSession },
        { gzip: false, sessionId: f.sessionId },
      );
      return;
    }
    this.sessionId = f.sessionId;
    this.startSession = p;
    this.state = 'session';
    this.sendEvent(EV.SessionStarted, { dialog_id: this.dialogId }, { gzip: false });
    this.armIdle();
  }

  // ---- audio in: idle rule and VAD ---------------------------------------------------------------

  private armIdle(): void {
    if (this.dialogExtra.input_mod === 'keep_alive') return;
    const ms = this.opts.audioIdleTimeoutMs ?? DEFAULT_AUDIO_IDLE_MS;
    if (this.idleTimer) {
      this.idleTimer.refresh();
      return;
    }
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      if (this.state !== 'session') return;
      this.sendError(CODE_AUDIO_IDLE, `DialogAudioIdleTimeoutError: no audio for ${ms} ms`);
      this.closeCause = 'audio_idle';
      this.close(1000, 'audio idle');
    }, ms);
  }

  private onAudio(pcm: Buffer): void {
    if (pcm.length === 0) throw new FrameError(CODE_EMPTY_AUDIO, 'empty audio packet');
    if (pcm.length % 2 !== 0) throw new FrameError(CODE_BAD_FRAME, 'odd-length s16le audio');
    this.audio.push(pcm);
    if (pcm.every((b) => b === 0)) this.silentFrames++;
    this.armIdle();
    for (let i = 0; i + 1 < pcm.length; i += 2) {
      const s = pcm.readInt16LE(i);
      this.winSumSq += s * s;
      if (++this.winCount === VAD_WINDOW_SAMPLES) this.vadWindow();
    }
  }

  private vadWindow(): void {
    const rms = Math.sqrt(this.winSumSq / this.winCount);
    this.winSumSq = 0;
    this.winCount = 0;
    const loud = rms >= (this.opts.vadRmsThreshold ?? DEFAULT_VAD_RMS);
    if (!this.speaking) {
      this.loudRun = loud ? this.loudRun + 1 : 0;
      if (this.loudRun >= VAD_ONSET_WINDOWS) this.speechStarted();
      return;
    }
    this.silentMs = loud ? 0 : this.silentMs + 20;
    if (this.silentMs >= (this.opts.vadSilenceMs ?? DEFAULT_VAD_SILENCE_MS)) this.speechStopped();
  }

  private speechStarted(): void {
    this.speaking = true;
    this.silentMs = 0;
    this.loudRun = 0;
    this.questionId = `q-${++this.questionCount}`;
    const interrupted = this.active;
    this.sendEvent(EV.ASRInfo, { question_id: this.questionId });
    if (interrupted) this.interrupt(interrupted);
    const text = this.opts.userText ?? DEFAULT_USER_TEXT;
    this.sendEvent(EV.ASRResponse, { results: [{ text: text.slice(0, 2), is_interim: true }] });
  }

  private speechStopped(): void {
    this.speaking = false;
    this.silentMs = 0;
    const text = this.opts.userText ?? DEFAULT_USER_TEXT;
    this.sendEvent(EV.ASRResponse, { results: [{ text, is_interim: false }] });
    this.sendEvent(EV.ASREnded, {});
    this.stopReply('interrupted');
    this.beginReply('vad', this.opts.assistantText ?? DEFAULT_ASSISTANT_TEXT, true, false);
  }

  /** Barge-in: the server stops generating, but frames already in flight still arrive. */
  private interrupt(reply: ActiveReply): void {
    clearInterval(reply.timer);
    reply.timer = undefined;
    reply.record.status = 'interrupted';
    this.active = undefined;
    for (let i = 0; i < (this.opts.lateChunksAfterBargeIn ?? DEFAULT_LATE_CHUNKS); i++) this.sendChunk(reply);
    if (this.opts.lateSentenceAfterBargeIn) {
      const { replyId, questionId } = reply.record;
      this.sendEvent(EV.TTSSentenceStart, {
        tts_type: 'default',
        text: '',
        question_id: questionId,
        reply_id: replyId,
      });
      this.sendChunk(reply);
    }
  }

  // ---- replies ------------------------------------------------------------------------------------

  private beginReply(origin: FakeReplyOrigin, text: string, withChat: boolean, exitStatus: boolean): void {
    const index = this.replies.length;
    const source =
      typeof this.opts.replyAudio === 'function' ? this.opts.replyAudio(index) : this.opts.replyAudio;
    const float = this.outputFormat === 'pcm';
    const audio = float ? toFloat32(source) : Buffer.from(source);
    const bytesPerMs = (OUTPUT_RATE / 1000) * (float ? 4 : 2);
    const record: FakeReplyRecord = {
      index,
      replyId: `r-${randomUUID()}`,
      questionId: this.questionId ?? `q-${++this.questionCount}`,
      origin,
      text,
      status: 'speaking',
      audioBytesSent: 0,
      audio,
    };
    this.replies.push(record);
    const reply: ActiveReply = {
      record,
      offset: 0,
      chunkBytes: this.opts.chunkBytes ?? (this.opts.chunkMs ?? DEFAULT_CHUNK_MS) * bytesPerMs,
      withChat,
      exitStatus,
      timer: undefined,
    };
    this.active = reply;
    const ids = { question_id: record.questionId, reply_id: record.replyId };
    this.sendEvent(EV.TTSSentenceStart, { tts_type: 'default', text, ...ids });
    if (withChat) {
      const half = Math.ceil(text.length / 2);
      this.sendEvent(EV.ChatResponse, { content: text.slice(0, half), ...ids });
      this.sendEvent(EV.ChatResponse, { content: text.slice(half), ...ids });
    }
    reply.timer = setInterval(() => {
      if (reply.offset >= reply.record.audio.length) this.finishReply(reply);
      else this.sendChunk(reply);
    }, this.opts.chunkIntervalMs ?? DEFAULT_CHUNK_INTERVAL_MS);
  }

  private sendChunk(reply: ActiveReply): void {
    const { audio } = reply.record;
    if (reply.offset >= audio.length) return;
    const chunk = audio.subarray(reply.offset, reply.offset + reply.chunkBytes);
    reply.offset += chunk.length;
    reply.record.audioBytesSent += chunk.length;
    this.sendAudioChunk(chunk);
  }

  private finishReply(reply: ActiveReply): void {
    clearInterval(reply.timer);
    reply.timer = undefined;
    reply.record.status = 'done';
    if (this.active === reply) this.active = undefined;
    const ids = { question_id: reply.record.questionId, reply_id: reply.record.replyId };
    this.sendEvent(EV.TTSSentenceEnd, ids);
    if (reply.withChat) this.sendEvent(EV.ChatEnded, ids);
    this.sendEvent(EV.TTSEnded, reply.exitStatus ? { ...ids, status_code: USER_EXIT_STATUS } : ids);
    this.sendEvent(EV.UsageResponse, {
      usage: { input_audio_tokens: 10, output_audio_tokens: Math.round(reply.record.audio.length / 1000) },
    });
  }

  private stopReply(status: 'done' | 'interrupted'): void {
    const reply = this.active;
    if (!reply) return;
    clearInterval(reply.timer);
    reply.timer = undefined;
    reply.record.status = status;
    this.active = undefined;
  }
}

// ---------------------------------------------------------------------------------------------------
// The server

interface Waiter {
  timer: NodeJS.Timeout;
  reject(err: Error): void;
  cleanup(): void;
}

export class FakeDoubaoRealtime extends EventEmitter<FakeDoubaoEvents> implements FakeHost {
  readonly sessions: FakeDoubaoSessionHandle[] = [];
  private readonly impls: FakeConnection[] = [];
  private server: Server | undefined;
  private wss: WebSocketServer | undefined;
  private port = 0;
  private stopped = false;
  private sessionCursor = 0;
  private readonly sessionWaiters: ((s: FakeDoubaoSessionHandle) => void)[] = [];
  private readonly waiters = new Set<Waiter>();
  private readonly pendingUpgrades = new Map<NodeJS.Timeout, Duplex>();

  constructor(readonly opts: FakeDoubaoOptions) {
    super();
  }

  get url(): string {
    if (!this.server) throw new Error('FakeDoubaoRealtime: call start() first');
    return `ws://127.0.0.1:${this.port}${PATH}`;
  }

  async start(): Promise<void> {
    if (this.server) return;
    this.wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
    const server = createServer((_req, res) => {
      res.writeHead(426, { 'Content-Type': 'text/plain', Connection: 'close' });
      res.end('Upgrade Required');
    });
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.onUpgrade(req, socket, head),
    );
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.port = (server.address() as AddressInfo).port;
  }

  /** The oldest connection not yet handed out, waiting if needed. */
  waitForSession(timeoutMs = DEFAULT_WAIT_MS): Promise<FakeDoubaoSessionHandle> {
    const ready = this.sessions[this.sessionCursor];
    if (ready) {
      this.sessionCursor++;
      return Promise.resolve(ready);
    }
    return new Promise((resolve, reject) => {
      const deliver = (s: FakeDoubaoSessionHandle): void => {
        waiter.cleanup();
        resolve(s);
      };
      const waiter: Waiter = {
        timer: setTimeout(() => {
          waiter.cleanup();
          reject(new Error(`FakeDoubaoRealtime: no connection within ${timeoutMs} ms`));
        }, timeoutMs),
        reject,
        cleanup: () => {
          clearTimeout(waiter.timer);
          this.waiters.delete(waiter);
          const i = this.sessionWaiters.indexOf(deliver);
          if (i >= 0) this.sessionWaiters.splice(i, 1);
        },
      };
      this.waiters.add(waiter);
      this.sessionWaiters.push(deliver);
    });
  }

  /** The first client frame with `event` on `session` after the `skip` earlier ones, waiting if needed. */
  waitForClientEvent(
    session: FakeDoubaoSessionHandle,
    event: number,
    skip = 0,
    timeoutMs = DEFAULT_WAIT_MS,
  ): Promise<ClientFrameRecord> {
    const find = (): ClientFrameRecord | undefined =>
      session.clientFrames.filter((f) => f.event === event)[skip];
    const now = find();
    if (now) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const onFrame = (s: FakeDoubaoSessionHandle): void => {
        if (s !== session) return;
        const got = find();
        if (got) {
          waiter.cleanup();
          resolve(got);
        }
      };
      const waiter: Waiter = {
        timer: setTimeout(() => {
          waiter.cleanup();
          reject(new Error(`FakeDoubaoRealtime: no client event ${event} within ${timeoutMs} ms`));
        }, timeoutMs),
        reject,
        cleanup: () => {
          clearTimeout(waiter.timer);
          this.waiters.delete(waiter);
          this.off('clientFrame', onFrame);
        },
      };
      this.waiters.add(waiter);
      this.on('clientFrame', onFrame);
    });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const w of [...this.waiters]) {
      w.cleanup();
      w.reject(new Error('FakeDoubaoRealtime stopped'));
    }
    for (const [timer, socket] of this.pendingUpgrades) {
      clearTimeout(timer);
      socket.destroy();
    }
    this.pendingUpgrades.clear();
    for (const s of this.impls) s.dispose();
    this.wss?.close();
    const server = this.server;
    if (server) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    }
  }

  frameReceived(session: FakeDoubaoSessionHandle, frame: ClientFrameRecord): void {
    try {
      this.emit('clientFrame', session, frame);
    } catch (e: unknown) {
      console.error('FakeDoubaoRealtime: a clientFrame listener threw', e);
    }
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => {
      /* client went away mid-handshake */
    });
    const delay = this.opts.upgradeDelayMs ?? 0;
    if (delay <= 0) return this.completeUpgrade(req, socket, head);
    const timer = setTimeout(() => {
      this.pendingUpgrades.delete(timer);
      if (!socket.destroyed) this.completeUpgrade(req, socket, head);
    }, delay);
    this.pendingUpgrades.set(timer, socket);
  }

  private completeUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.stopped || !this.wss) {
      socket.destroy();
      return;
    }
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname !== PATH) return rejectUpgrade(socket, 404, `no route ${url.pathname}`);
    if (this.opts.rejectUpgradeStatus !== undefined)
      return rejectUpgrade(socket, this.opts.rejectUpgradeStatus, 'fake rejection');
    const auth = this.authProblem(req.headers);
    if (auth !== undefined) return rejectUpgrade(socket, auth.status, auth.message);
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      if (this.stopped) {
        ws.terminate();
        return;
      }
      const connection = new FakeConnection(this, ws, req);
      this.impls.push(connection);
      this.sessions.push(connection);
      const deliver = this.sessionWaiters[0];
      if (deliver) {
        this.sessionCursor++;
        deliver(connection);
      }
      this.emit('session', connection);
    });
  }

  /** Doc §2.1 headers: resource id fixed; App ID + Access Key (+ the fixed App Key), or X-Api-Key. */
  private authProblem(h: IncomingHttpHeaders): { status: number; message: string } | undefined {
    const get = (name: string): string => {
      const v = h[name];
      return typeof v === 'string' ? v : '';
    };
    if (get('x-api-resource-id') !== RESOURCE_ID)
      return { status: 403, message: `requested resource not granted: ${get('x-api-resource-id')}` };
    const want = this.opts.credentials;
    const apiKey = get('x-api-key');
    if (apiKey !== '') {
      if (want?.apiKey !== undefined && want.apiKey !== apiKey)
        return { status: 401, message: 'invalid api key' };
      return undefined;
    }
    const appId = get('x-api-app-id');
    const accessKey = get('x-api-access-key');
    if (appId === '' || accessKey === '') return { status: 401, message: 'missing credentials' };
    if (get('x-api-app-key') !== APP_KEY) return { status: 401, message: 'invalid X-Api-App-Key' };
    if (
      (want?.appId !== undefined && want.appId !== appId) ||
      (want?.accessKey !== undefined && want.accessKey !== accessKey)
    )
      return { status: 401, message: 'load grant: requested grant not found' };
    return undefined;
  }
}

function rejectUpgrade(socket: Duplex, status: number, message: string): void {
  const body = JSON.stringify({ error: message });
  const reason = STATUS_CODES[status] ?? 'Error';
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
