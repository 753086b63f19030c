// A protocol-faithful fake of the OpenAI Realtime API (GA interface) over WebSocket, for tests.
// Shapes follow ../shared/reference/providers.md §1: path /v1/realtime?model=…, `Authorization: Bearer`,
// no `OpenAI-Beta` header, nested `session.audio.{input,output}`, GA server event names.
// The fake runs an energy VAD on *audio time* (count of appended samples), never on wall clock, so tests
// that push audio faster than real time stay deterministic.
import { randomInt } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, STATUS_CODES } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import type { RawData } from 'ws';

// ---------------------------------------------------------------------------------------------------
// Public API

export interface FakeRealtimeOptions {
  /** Audio the fake "assistant" speaks for each response, as raw bytes in the session's output format
   * (audio/pcmu or audio/pcma; audio/pcm is sent as-is too). Can be a function of the response index. */
  replyAudio: Buffer | ((responseIndex: number, format: string) => Buffer);
  /** ms of audio per response.output_audio.delta (default 100) and wall-clock gap between deltas (default 10). */
  deltaMs?: number;
  deltaIntervalMs?: number;
  /** Delay before completing (or rejecting) the WebSocket upgrade; simulates a slow provider. */
  upgradeDelayMs?: number;
  /** Reject the upgrade with this HTTP status (e.g. 401, 500, 503). */
  rejectUpgradeStatus?: number;
  /** Energy VAD: RMS of decoded 16-bit samples over 20 ms windows (default 500); silence ms that ends
   * speech (default: the session's turn_detection.silence_duration_ms, itself 500 by default). */
  vadRmsThreshold?: number;
  vadSilenceMs?: number;
  /** Text of the assistant's output_audio_transcript and of the user's input transcription. */
  assistantTranscript?: string;
  userTranscript?: string;
}

export interface ClientEventRecord {
  at: number;
  event: Record<string, unknown>;
}

export interface SentEventRecord {
  at: number;
  type: string;
  event: Record<string, unknown>;
}

export type FakeResponseOrigin = 'client' | 'vad' | 'server';

/** One response the fake produced (extension beyond the brief: lets tests assert instructions/origin). */
export interface FakeResponseRecord {
  id: string;
  index: number;
  itemId: string;
  origin: FakeResponseOrigin;
  instructions: string | undefined;
  format: string;
  status: 'in_progress' | 'completed' | 'cancelled';
  audioBytesSent: number;
  startedAt: number;
  endedAt?: number;
}

export interface FakeSessionHandle {
  id: string;
  headers: IncomingHttpHeaders;
  /** Request URL including the query, e.g. /v1/realtime?model=gpt-realtime */
  url: string;
  /** The `model` query parameter (undefined if absent). */
  model: string | undefined;
  clientEvents: ClientEventRecord[];
  /** Wall-clock times of server events sent, by type. */
  sent: SentEventRecord[];
  /** Total base64-decoded input audio bytes received. */
  appendedAudioBytes: number;
  /** Current (merged) session configuration, as last sent in session.created/updated. */
  readonly session: Record<string, unknown>;
  responses: FakeResponseRecord[];
  closed: boolean;
  closedAt?: number;
  sendRaw(data: string | Buffer): void;
  sendError(code: string, message: string): void;
  drop(): void;
  close(code?: number, reason?: string): void;
  startResponse(): void;
  triggerSpeechStarted(): void;
  /** Emit a complete function-call response (e.g. transfer_call); returns its call_id, or undefined
   * when a response is already active or the socket is closed. */
  startFunctionCall(name: string, args: Record<string, unknown>): string | undefined;
}

export type FakeRealtimeEvents = {
  session: [FakeSessionHandle];
  clientEvent: [FakeSessionHandle, Record<string, unknown>];
};

// ---------------------------------------------------------------------------------------------------
// Constants

const REALTIME_PATH = '/v1/realtime';
const DEFAULT_MODEL = 'gpt-realtime';
const DEFAULT_DELTA_MS = 100;
const DEFAULT_DELTA_INTERVAL_MS = 10;
const DEFAULT_VAD_RMS_THRESHOLD = 500;
/** server_vad silence_duration_ms default per providers.md §1.2 */
const DEFAULT_SILENCE_MS = 500;
/** server_vad prefix_padding_ms default; audio_start_ms reports onset minus this padding. */
const DEFAULT_PREFIX_PADDING_MS = 300;
/** VAD analysis window, in ms of audio time. */
const VAD_WINDOW_MS = 20;
/** Consecutive loud windows that make a speech onset. */
const VAD_ONSET_WINDOWS = 2;
/** The real server refuses a manual commit of less than 100 ms of audio. */
const MIN_COMMIT_MS = 100;
/** Default wait in waitForSession/waitForClientEvent: long enough for a child process to connect. */
const DEFAULT_WAIT_TIMEOUT_MS = 5_000;
/** Sessions last 60 minutes in GA (providers.md §1.6); only used for expires_at. */
const SESSION_LIFETIME_S = 3_600;
/** Assistant audio is billed 1 token per 50 ms (providers.md §1.6). */
const OUTPUT_AUDIO_MS_PER_TOKEN = 50;
const DEFAULT_ASSISTANT_TRANSCRIPT = 'Hello, this is the fake assistant. How can I help you today?';
const DEFAULT_USER_TRANSCRIPT = 'Hello, I would like some help please.';

type AudioFormatType = 'audio/pcmu' | 'audio/pcma' | 'audio/pcm';
const AUDIO_FORMATS: readonly AudioFormatType[] = ['audio/pcmu', 'audio/pcma', 'audio/pcm'];
const PCM_RATE = 24_000;

/** Session keys of the GA `session` object a client may send. */
const GA_SESSION_KEYS = new Set([
  'type',
  'model',
  'output_modalities',
  'instructions',
  'audio',
  'include',
  'tracing',
  'tools',
  'tool_choice',
  'max_output_tokens',
  'truncation',
  'prompt',
  'reasoning',
  'parallel_tool_calls',
]);
const GA_AUDIO_INPUT_KEYS = new Set(['format', 'noise_reduction', 'transcription', 'turn_detection']);
const GA_AUDIO_OUTPUT_KEYS = new Set(['format', 'voice', 'speed']);
const TURN_DETECTION_TYPES = new Set(['server_vad', 'semantic_vad']);
const CLIENT_ITEM_TYPES = new Set(['message', 'function_call', 'function_call_output']);

// ---------------------------------------------------------------------------------------------------
// Small helpers

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** For error messages: quote any wire value without '[object Object]'. */
function show(v: unknown): string {
  return typeof v === 'string' ? v : (JSON.stringify(v) ?? 'undefined');
}

function getRecord(obj: unknown, ...path: string[]): Record<string, unknown> | undefined {
  let cur: unknown = obj;
  for (const key of path) {
    if (!isRecord(cur)) return undefined;
    cur = cur[key];
  }
  return isRecord(cur) ? cur : undefined;
}

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
function newId(prefix: string): string {
  let s = `${prefix}_`;
  for (let i = 0; i < 21; i++) s += ALNUM[randomInt(ALNUM.length)];
  return s;
}

function isAudioFormat(v: unknown): v is AudioFormatType {
  return typeof v === 'string' && (AUDIO_FORMATS as readonly string[]).includes(v);
}

function bytesPerMs(format: AudioFormatType): number {
  return format === 'audio/pcm' ? (PCM_RATE / 1000) * 2 : 8;
}

function samplesPerMs(format: AudioFormatType): number {
  return format === 'audio/pcm' ? PCM_RATE / 1000 : 8;
}

function normalizeFormat(type: AudioFormatType): Record<string, unknown> {
  return type === 'audio/pcm' ? { type, rate: PCM_RATE } : { type };
}

const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

// ITU-T G.711 decoders (tables built once).
const MULAW_TABLE = new Int16Array(256);
const ALAW_TABLE = new Int16Array(256);
for (let i = 0; i < 256; i++) {
  const u = ~i & 0xff;
  const uMag = (((u & 0x0f) << 3) + 0x84) << ((u >> 4) & 0x07);
  MULAW_TABLE[i] = u & 0x80 ? 0x84 - uMag : uMag - 0x84;
  const a = i ^ 0x55;
  const aSeg = (a >> 4) & 0x07;
  const aMant = a & 0x0f;
  const aMag = aSeg === 0 ? (aMant << 4) + 8 : ((aMant << 4) + 0x108) << (aSeg - 1);
  ALAW_TABLE[i] = a & 0x80 ? aMag : -aMag;
}

function defaultTurnDetection(type: string): Record<string, unknown> {
  if (type === 'semantic_vad') {
    return { type, eagerness: 'auto', create_response: true, interrupt_response: true };
  }
  return {
    type: 'server_vad',
    threshold: 0.5,
    prefix_padding_ms: DEFAULT_PREFIX_PADDING_MS,
    silence_duration_ms: DEFAULT_SILENCE_MS,
    idle_timeout_ms: null,
    create_response: true,
    interrupt_response: true,
  };
}

function deepMerge(target: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  for (const [key, value] of Object.entries(patch)) {
    const existing = target[key];
    if (isRecord(value) && isRecord(existing)) target[key] = deepMerge(existing, value);
    else target[key] = structuredClone(value);
  }
  return target;
}

class ClientError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly param: string | null = null,
    readonly errorType = 'invalid_request_error',
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------------
// One WebSocket session

interface ItemRecord {
  id: string;
  type: string;
  role: string | undefined;
  /** assistant audio sent for this item, and its format */
  audioBytes: number;
  format: AudioFormatType | undefined;
}

interface ActiveResponse {
  record: FakeResponseRecord;
  itemId: string;
  format: AudioFormatType;
  audio: Buffer;
  offset: number;
  chunkBytes: number;
  words: string[];
  wordsPerChunk: number;
  transcript: string;
  timer: NodeJS.Timeout | undefined;
}

interface FakeHost {
  readonly opts: FakeRealtimeOptions;
  emitClientEvent(session: FakeSessionHandle, event: Record<string, unknown>): void;
  sessionClosed(session: FakeSessionHandle): void;
}

class FakeSession implements FakeSessionHandle {
  readonly id = newId('sess');
  readonly headers: IncomingHttpHeaders;
  readonly url: string;
  readonly model: string | undefined;
  readonly clientEvents: ClientEventRecord[] = [];
  readonly sent: SentEventRecord[] = [];
  readonly responses: FakeResponseRecord[] = [];
  appendedAudioBytes = 0;
  closed = false;
  closedAt?: number;

  private config: Record<string, unknown>;
  private readonly items = new Map<string, ItemRecord>();
  private lastItemId: string | null = null;
  private active: ActiveResponse | undefined;
  private responseCount = 0;
  /** uncommitted input bytes (input_audio_buffer) */
  private bufferBytes = 0;
  /** VAD state, on audio time */
  private vadWindows = 0;
  private winSumSq = 0;
  private winCount = 0;
  private loudRun = 0;
  private speaking = false;
  private silentMs = 0;
  private speechItemId: string | undefined;
  private pcmCarry: number | undefined;

  constructor(
    private readonly host: FakeHost,
    private readonly ws: WebSocket,
    req: IncomingMessage,
    model: string | undefined,
  ) {
    this.headers = req.headers;
    this.url = req.url ?? '';
    this.model = model;
    this.config = {
      type: 'realtime',
      object: 'realtime.session',
      id: this.id,
      model: model ?? DEFAULT_MODEL,
      output_modalities: ['audio'],
      instructions: 'You are a helpful, witty, and friendly AI.',
      tools: [],
      tool_choice: 'auto',
      max_output_tokens: 'inf',
      tracing: null,
      truncation: 'auto',
      prompt: null,
      expires_at: Math.floor(Date.now() / 1000) + SESSION_LIFETIME_S,
      audio: {
        input: {
          format: normalizeFormat('audio/pcm'),
          transcription: null,
          noise_reduction: null,
          turn_detection: defaultTurnDetection('server_vad'),
        },
        output: { format: normalizeFormat('audio/pcm'), voice: 'alloy', speed: 1.0 },
      },
      include: null,
    };
    ws.on('message', (data: RawData, isBinary: boolean) => this.onMessage(data, isBinary));
    ws.on('close', () => this.onClosed());
    ws.on('error', () => {
      /* a reset socket also emits close; nothing else to do */
    });
    this.send({ type: 'session.created', session: structuredClone(this.config) });
  }

  get session(): Record<string, unknown> {
    return this.config;
  }

  // ---- public handle methods ----------------------------------------------------------------------

  sendRaw(data: string | Buffer): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(data);
    let type = '(raw)';
    let event: Record<string, unknown> = { raw: data.toString() };
    try {
      const parsed: unknown = JSON.parse(data.toString());
      if (isRecord(parsed)) {
        event = parsed;
        if (typeof parsed.type === 'string') type = parsed.type;
      }
    } catch {
      /* malformed on purpose */
    }
    this.sent.push({ at: Date.now(), type, event });
  }

  sendError(code: string, message: string): void {
    this.sendErrorEvent(new ClientError(code, message), null);
  }

  drop(): void {
    this.stopTimers();
    this.ws.terminate();
  }

  close(code?: number, reason?: string): void {
    this.stopTimers();
    this.ws.close(code, reason);
  }

  startResponse(): void {
    if (this.closed || this.active) return;
    this.beginResponse('server', undefined);
  }

  triggerSpeechStarted(): void {
    if (this.closed) return;
    const td = this.turnDetection();
    if (td) {
      this.speaking = true;
      this.silentMs = 0;
      this.loudRun = 0;
    }
    this.speechStarted(this.timelineMs(), td === undefined || td.interrupt_response !== false);
  }

  startFunctionCall(name: string, args: Record<string, unknown>): string | undefined {
    if (this.closed || this.active) return undefined;
    const record = this.newResponseRecord('server', undefined, this.outputFormat());
    const itemId = newId('item');
    const callId = newId('call');
    const argsJson = JSON.stringify(args);
    this.send({
      type: 'response.created',
      response: this.responseObject(record, 'in_progress', null, [], null),
    });
    const item = {
      id: itemId,
      object: 'realtime.item',
      type: 'function_call',
      status: 'in_progress',
      call_id: callId,
      name,
      arguments: '',
    };
    this.send({ type: 'response.output_item.added', response_id: record.id, output_index: 0, item });
    this.addItem(
      { id: itemId, type: 'function_call', role: undefined, audioBytes: 0, format: undefined },
      item,
    );
    const base = { response_id: record.id, item_id: itemId, output_index: 0, call_id: callId };
    this.send({ type: 'response.function_call_arguments.delta', ...base, delta: argsJson });
    this.send({ type: 'response.function_call_arguments.done', ...base, name, arguments: argsJson });
    const done = { ...item, status: 'completed', arguments: argsJson };
    this.send({ type: 'response.output_item.done', response_id: record.id, output_index: 0, item: done });
    this.send({ type: 'conversation.item.done', item: done });
    record.status = 'completed';
    record.endedAt = Date.now();
    this.send({ type: 'response.done', response: this.responseObject(record, 'completed', null, [done], 0) });
    return callId;
  }

  /** Called by the server on stop(): no close frame, no lingering timers. */
  dispose(): void {
    this.stopTimers();
    if (this.ws.readyState !== WebSocket.CLOSED) this.ws.terminate();
  }

  // ---- plumbing -----------------------------------------------------------------------------------

  private send(event: Record<string, unknown>): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    const full: Record<string, unknown> = { event_id: newId('event'), ...event };
    this.ws.send(JSON.stringify(full));
    this.sent.push({ at: Date.now(), type: String(full.type), event: full });
  }

  private sendErrorEvent(err: ClientError, clientEventId: string | null): void {
    this.send({
      type: 'error',
      error: {
        type: err.errorType,
        code: err.code,
        message: err.message,
        param: err.param,
        event_id: clientEventId,
      },
    });
  }

  private onClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.closedAt = Date.now();
    this.stopTimers();
    this.host.sessionClosed(this);
  }

  private stopTimers(): void {
    if (this.active?.timer) clearTimeout(this.active.timer);
    if (this.active) this.active.timer = undefined;
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    const text = Buffer.isBuffer(data)
      ? data.toString('utf8')
      : Array.isArray(data)
        ? Buffer.concat(data).toString('utf8')
        : Buffer.from(data).toString('utf8');
    let parsed: unknown;
    try {
      parsed = isBinary ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (!isRecord(parsed)) {
      const raw = { _raw: text };
      this.clientEvents.push({ at: Date.now(), event: raw });
      this.host.emitClientEvent(this, raw);
      this.sendErrorEvent(
        new ClientError(
          'invalid_json',
          'We could not parse the JSON body of your request. Expected a JSON object.',
        ),
        null,
      );
      return;
    }
    this.clientEvents.push({ at: Date.now(), event: parsed });
    this.host.emitClientEvent(this, parsed);
    const clientEventId = typeof parsed.event_id === 'string' ? parsed.event_id : null;
    try {
      this.dispatch(parsed);
    } catch (e: unknown) {
      if (e instanceof ClientError) this.sendErrorEvent(e, clientEventId);
      else {
        const msg = e instanceof Error ? e.message : String(e);
        this.sendErrorEvent(
          new ClientError('server_error', `Fake server bug: ${msg}`, null, 'server_error'),
          clientEventId,
        );
      }
    }
  }

  private dispatch(ev: Record<string, unknown>): void {
    const type = ev.type;
    if (typeof type !== 'string') {
      throw new ClientError('unknown_event', "Missing required parameter: 'type'.", 'type');
    }
    switch (type) {
      case 'session.update':
        return this.onSessionUpdate(ev);
      case 'input_audio_buffer.append':
        return this.onAppend(ev);
      case 'input_audio_buffer.commit':
        return this.onCommit();
      case 'input_audio_buffer.clear':
        return this.onClear();
      case 'response.create':
        return this.onResponseCreate(ev);
      case 'response.cancel':
        return this.onResponseCancel(ev);
      case 'conversation.item.truncate':
        return this.onTruncate(ev);
      case 'conversation.item.create':
        return this.onItemCreate(ev);
      default:
        throw new ClientError(
          'unknown_event',
          `Invalid value: '${type}'. Unknown client event type.`,
          'type',
        );
    }
  }

  // ---- session.update ----------------------------------------------------------------------------

  private onSessionUpdate(ev: Record<string, unknown>): void {
    const patch = ev.session;
    if (!isRecord(patch))
      throw new ClientError(
        'missing_required_parameter',
        "Missing required parameter: 'session'.",
        'session',
      );
    if (patch.type === undefined) {
      throw new ClientError(
        'missing_required_parameter',
        "Missing required parameter: 'session.type'.",
        'session.type',
      );
    }
    if (patch.type !== 'realtime') {
      throw new ClientError(
        'invalid_value',
        `Invalid value: '${show(patch.type)}'. Supported values are: 'realtime'.`,
        'session.type',
      );
    }
    for (const key of Object.keys(patch)) {
      if (!GA_SESSION_KEYS.has(key)) throw unknownParam(`session.${key}`);
    }
    if (patch.output_modalities !== undefined) {
      const m = patch.output_modalities;
      if (!Array.isArray(m) || m.length !== 1 || (m[0] !== 'audio' && m[0] !== 'text')) {
        throw new ClientError(
          'invalid_value',
          "Invalid 'session.output_modalities': expected ['audio'] or ['text'].",
          'session.output_modalities',
        );
      }
    }
    const audio = patch.audio;
    let inFormat: AudioFormatType | undefined;
    let outFormat: AudioFormatType | undefined;
    let td: Record<string, unknown> | null | undefined;
    if (audio !== undefined) {
      if (!isRecord(audio))
        throw new ClientError(
          'invalid_type',
          "Invalid type for 'session.audio': expected an object.",
          'session.audio',
        );
      for (const key of Object.keys(audio)) {
        if (key !== 'input' && key !== 'output') throw unknownParam(`session.audio.${key}`);
      }
      const input = audio.input;
      if (input !== undefined) {
        if (!isRecord(input))
          throw new ClientError(
            'invalid_type',
            "Invalid type for 'session.audio.input'.",
            'session.audio.input',
          );
        for (const key of Object.keys(input)) {
          if (!GA_AUDIO_INPUT_KEYS.has(key)) throw unknownParam(`session.audio.input.${key}`);
        }
        if (input.format !== undefined) inFormat = parseFormat(input.format, 'session.audio.input.format');
        if (input.turn_detection !== undefined) {
          const t = input.turn_detection;
          if (
            t !== null &&
            (!isRecord(t) || (t.type !== undefined && !TURN_DETECTION_TYPES.has(show(t.type))))
          ) {
            throw new ClientError(
              'invalid_value',
              "Invalid 'session.audio.input.turn_detection'.",
              'session.audio.input.turn_detection.type',
            );
          }
          td = t;
        }
      }
      const output = audio.output;
      if (output !== undefined) {
        if (!isRecord(output))
          throw new ClientError(
            'invalid_type',
            "Invalid type for 'session.audio.output'.",
            'session.audio.output',
          );
        for (const key of Object.keys(output)) {
          if (!GA_AUDIO_OUTPUT_KEYS.has(key)) throw unknownParam(`session.audio.output.${key}`);
        }
        if (output.format !== undefined)
          outFormat = parseFormat(output.format, 'session.audio.output.format');
      }
    }

    const prevTd = this.turnDetection();
    const merged = deepMerge(structuredClone(this.config), patch);
    const mergedInput = getRecord(merged, 'audio', 'input');
    const mergedOutput = getRecord(merged, 'audio', 'output');
    if (inFormat && mergedInput) mergedInput.format = normalizeFormat(inFormat);
    if (outFormat && mergedOutput) mergedOutput.format = normalizeFormat(outFormat);
    if (td !== undefined && mergedInput) {
      if (td === null) mergedInput.turn_detection = null;
      else {
        const type =
          typeof td.type === 'string' ? td.type : ((prevTd?.type as string | undefined) ?? 'server_vad');
        const base = prevTd && prevTd.type === type ? prevTd : defaultTurnDetection(type);
        mergedInput.turn_detection = { ...structuredClone(base), ...structuredClone(td), type };
      }
    }
    this.config = merged;
    if (this.turnDetection() === undefined) {
      this.speaking = false;
      this.loudRun = 0;
    }
    this.send({ type: 'session.updated', session: structuredClone(this.config) });
  }

  private turnDetection(): Record<string, unknown> | undefined {
    return getRecord(this.config, 'audio', 'input', 'turn_detection');
  }

  private inputFormat(): AudioFormatType {
    const t = getRecord(this.config, 'audio', 'input', 'format')?.type;
    return isAudioFormat(t) ? t : 'audio/pcm';
  }

  private outputFormat(): AudioFormatType {
    const t = getRecord(this.config, 'audio', 'output', 'format')?.type;
    return isAudioFormat(t) ? t : 'audio/pcm';
  }

  // ---- input audio + VAD ------------------------------------------------------------------------

  private onAppend(ev: Record<string, unknown>): void {
    const audio = ev.audio;
    if (typeof audio !== 'string')
      throw new ClientError('missing_required_parameter', "Missing required parameter: 'audio'.", 'audio');
    if (!BASE64_RE.test(audio)) {
      throw new ClientError(
        'invalid_value',
        "Invalid 'audio'. Expected base64-encoded audio bytes.",
        'audio',
      );
    }
    const bytes = Buffer.from(audio, 'base64');
    this.appendedAudioBytes += bytes.length;
    this.bufferBytes += bytes.length;
    const format = this.inputFormat();
    const vad = this.turnDetection() !== undefined;
    if (format === 'audio/pcm') {
      let i = 0;
      if (this.pcmCarry !== undefined && bytes.length > 0) {
        const lo = this.pcmCarry;
        const hi = bytes[0] ?? 0;
        this.pcmCarry = undefined;
        this.feedSample((((hi << 8) | lo) << 16) >> 16, format, vad);
        i = 1;
      }
      for (; i + 1 < bytes.length; i += 2) this.feedSample(bytes.readInt16LE(i), format, vad);
      if (i < bytes.length) this.pcmCarry = bytes[i];
    } else {
      const table = format === 'audio/pcmu' ? MULAW_TABLE : ALAW_TABLE;
      for (const b of bytes) this.feedSample(table[b] ?? 0, format, vad);
    }
  }

  private feedSample(sample: number, format: AudioFormatType, vad: boolean): void {
    this.winSumSq += sample * sample;
    this.winCount++;
    if (this.winCount < VAD_WINDOW_MS * samplesPerMs(format)) return;
    const rms = Math.sqrt(this.winSumSq / this.winCount);
    this.winSumSq = 0;
    this.winCount = 0;
    this.vadWindows++;
    if (vad) this.onVadWindow(rms);
  }

  private timelineMs(): number {
    return this.vadWindows * VAD_WINDOW_MS + this.winCount / samplesPerMs(this.inputFormat());
  }

  private onVadWindow(rms: number): void {
    const td = this.turnDetection();
    if (!td) return;
    const endMs = this.vadWindows * VAD_WINDOW_MS;
    const loud = rms > (this.host.opts.vadRmsThreshold ?? DEFAULT_VAD_RMS_THRESHOLD);
    if (!this.speaking) {
      if (!loud) {
        this.loudRun = 0;
        return;
      }
      this.loudRun++;
      if (this.loudRun < VAD_ONSET_WINDOWS) return;
      this.speaking = true;
      this.silentMs = 0;
      const onsetMs = endMs - this.loudRun * VAD_WINDOW_MS;
      this.loudRun = 0;
      this.speechStarted(onsetMs, td.interrupt_response !== false);
      return;
    }
    if (loud) {
      this.silentMs = 0;
      return;
    }
    this.silentMs += VAD_WINDOW_MS;
    const configured =
      typeof td.silence_duration_ms === 'number' ? td.silence_duration_ms : DEFAULT_SILENCE_MS;
    if (this.silentMs < (this.host.opts.vadSilenceMs ?? configured)) return;
    this.speaking = false;
    this.silentMs = 0;
    const itemId = this.speechItemId ?? newId('item');
    this.speechItemId = undefined;
    this.send({ type: 'input_audio_buffer.speech_stopped', audio_end_ms: endMs, item_id: itemId });
    this.commitUserItem(itemId);
    if (td.create_response !== false && !this.active) this.beginResponse('vad', undefined);
  }

  private speechStarted(onsetMs: number, interrupt: boolean): void {
    const td = this.turnDetection();
    const padding =
      typeof td?.prefix_padding_ms === 'number' ? td.prefix_padding_ms : DEFAULT_PREFIX_PADDING_MS;
    const itemId = newId('item');
    this.speechItemId = itemId;
    this.send({
      type: 'input_audio_buffer.speech_started',
      audio_start_ms: Math.max(0, Math.round(onsetMs - padding)),
      item_id: itemId,
    });
    if (interrupt && this.active) this.finishResponse('cancelled', 'turn_detected');
  }

  private commitUserItem(itemId: string): void {
    const previous = this.lastItemId;
    this.bufferBytes = 0;
    this.send({ type: 'input_audio_buffer.committed', previous_item_id: previous, item_id: itemId });
    const transcribe = getRecord(this.config, 'audio', 'input', 'transcription') !== undefined;
    const item = {
      id: itemId,
      object: 'realtime.item',
      type: 'message',
      status: 'completed',
      role: 'user',
      content: [{ type: 'input_audio', transcript: null }],
    };
    this.addItem({ id: itemId, type: 'message', role: 'user', audioBytes: 0, format: undefined }, item);
    if (transcribe) {
      this.send({
        type: 'conversation.item.input_audio_transcription.completed',
        item_id: itemId,
        content_index: 0,
        transcript: this.host.opts.userTranscript ?? DEFAULT_USER_TRANSCRIPT,
        usage: { type: 'duration', seconds: 1 },
      });
    }
  }

  private addItem(record: ItemRecord, item: Record<string, unknown>, previousItemId?: string | null): void {
    const previous = previousItemId === undefined ? this.lastItemId : previousItemId;
    this.items.set(record.id, record);
    this.lastItemId = record.id;
    this.send({ type: 'conversation.item.added', previous_item_id: previous, item });
  }

  private onCommit(): void {
    const ms = this.bufferBytes / bytesPerMs(this.inputFormat());
    if (ms < MIN_COMMIT_MS) {
      throw new ClientError(
        'input_audio_buffer_commit_empty',
        `Error committing input audio buffer: buffer too small. Expected at least ${MIN_COMMIT_MS}ms of audio, but buffer only has ${ms.toFixed(2)}ms of audio.`,
      );
    }
    const itemId = this.speechItemId ?? newId('item');
    this.speechItemId = undefined;
    this.speaking = false;
    this.loudRun = 0;
    this.commitUserItem(itemId);
  }

  private onClear(): void {
    this.bufferBytes = 0;
    this.speaking = false;
    this.loudRun = 0;
    this.silentMs = 0;
    this.speechItemId = undefined;
    this.send({ type: 'input_audio_buffer.cleared' });
  }

  // ---- responses ----------------------------------------------------------------------------------

  private onResponseCreate(ev: Record<string, unknown>): void {
    if (this.active) {
      throw new ClientError(
        'conversation_already_has_active_response',
        `Conversation already has an active response in progress: ${this.active.record.id}. Wait until the response is finished before creating a new response.`,
      );
    }
    const response = ev.response;
    if (response !== undefined && !isRecord(response)) {
      throw new ClientError('invalid_type', "Invalid type for 'response': expected an object.", 'response');
    }
    const instructions = response?.instructions;
    if (instructions !== undefined && typeof instructions !== 'string') {
      throw new ClientError(
        'invalid_type',
        "Invalid type for 'response.instructions': expected a string.",
        'response.instructions',
      );
    }
    this.beginResponse('client', instructions);
  }

  private onResponseCancel(ev: Record<string, unknown>): void {
    const wanted = ev.response_id;
    if (!this.active || (typeof wanted === 'string' && wanted !== this.active.record.id)) {
      throw new ClientError('response_cancel_not_active', 'Cancellation failed: no active response found.');
    }
    this.finishResponse('cancelled', 'client_cancelled');
  }

  private newResponseRecord(
    origin: FakeResponseOrigin,
    instructions: string | undefined,
    format: AudioFormatType,
  ): FakeResponseRecord {
    const record: FakeResponseRecord = {
      id: newId('resp'),
      index: this.responseCount++,
      itemId: '',
      origin,
      instructions,
      format,
      status: 'in_progress',
      audioBytesSent: 0,
      startedAt: Date.now(),
    };
    this.responses.push(record);
    return record;
  }

  private beginResponse(origin: FakeResponseOrigin, instructions: string | undefined): void {
    const format = this.outputFormat();
    const record = this.newResponseRecord(origin, instructions, format);
    const reply = this.host.opts.replyAudio;
    const audio = typeof reply === 'function' ? reply(record.index, format) : reply;
    const itemId = newId('item');
    record.itemId = itemId;
    const transcript = this.host.opts.assistantTranscript ?? DEFAULT_ASSISTANT_TRANSCRIPT;
    const words = transcript.match(/\S+\s*/g) ?? [];
    const chunkBytes = Math.max(
      1,
      Math.round((this.host.opts.deltaMs ?? DEFAULT_DELTA_MS) * bytesPerMs(format)),
    );
    const chunks = Math.max(1, Math.ceil(audio.length / chunkBytes));
    this.active = {
      record,
      itemId,
      format,
      audio,
      offset: 0,
      chunkBytes,
      words,
      wordsPerChunk: Math.ceil(words.length / chunks),
      transcript: '',
      timer: undefined,
    };
    this.send({
      type: 'response.created',
      response: this.responseObject(record, 'in_progress', null, [], null),
    });
    const item = {
      id: itemId,
      object: 'realtime.item',
      type: 'message',
      status: 'in_progress',
      role: 'assistant',
      content: [],
    };
    this.send({ type: 'response.output_item.added', response_id: record.id, output_index: 0, item });
    this.addItem({ id: itemId, type: 'message', role: 'assistant', audioBytes: 0, format }, item);
    this.send({
      type: 'response.content_part.added',
      response_id: record.id,
      item_id: itemId,
      output_index: 0,
      content_index: 0,
      part: { type: 'audio', transcript: '' },
    });
    this.scheduleDelta(0);
  }

  private scheduleDelta(delayMs: number): void {
    const active = this.active;
    if (!active || this.closed) return;
    active.timer = setTimeout(() => {
      active.timer = undefined;
      this.pumpDelta(active);
    }, delayMs);
  }

  private pumpDelta(active: ActiveResponse): void {
    if (this.active !== active || this.closed) return;
    const base = { response_id: active.record.id, item_id: active.itemId, output_index: 0, content_index: 0 };
    if (active.offset < active.audio.length) {
      const chunk = active.audio.subarray(active.offset, active.offset + active.chunkBytes);
      active.offset += chunk.length;
      active.record.audioBytesSent += chunk.length;
      const item = this.items.get(active.itemId);
      if (item) item.audioBytes += chunk.length;
      this.send({ type: 'response.output_audio.delta', ...base, delta: chunk.toString('base64') });
    }
    const words = active.words.splice(0, active.wordsPerChunk).join('');
    if (words.length > 0) {
      active.transcript += words;
      this.send({ type: 'response.output_audio_transcript.delta', ...base, delta: words });
    }
    if (active.offset >= active.audio.length) this.finishResponse('completed', undefined);
    else this.scheduleDelta(this.host.opts.deltaIntervalMs ?? DEFAULT_DELTA_INTERVAL_MS);
  }

  private finishResponse(status: 'completed' | 'cancelled', reason: string | undefined): void {
    const active = this.active;
    if (!active) return;
    if (active.timer) clearTimeout(active.timer);
    active.timer = undefined;
    this.active = undefined;
    const base = { response_id: active.record.id, item_id: active.itemId, output_index: 0, content_index: 0 };
    if (status === 'completed' && active.words.length > 0) {
      const rest = active.words.splice(0).join('');
      active.transcript += rest;
      this.send({ type: 'response.output_audio_transcript.delta', ...base, delta: rest });
    }
    const transcript = active.transcript;
    this.send({ type: 'response.output_audio.done', ...base });
    this.send({ type: 'response.output_audio_transcript.done', ...base, transcript });
    this.send({ type: 'response.content_part.done', ...base, part: { type: 'audio', transcript } });
    const item = {
      id: active.itemId,
      object: 'realtime.item',
      type: 'message',
      status: status === 'completed' ? 'completed' : 'incomplete',
      role: 'assistant',
      content: [{ type: 'output_audio', transcript }],
    };
    this.send({ type: 'response.output_item.done', response_id: active.record.id, output_index: 0, item });
    this.send({ type: 'conversation.item.done', item });
    active.record.status = status;
    active.record.endedAt = Date.now();
    const details =
      status === 'cancelled' ? { type: 'cancelled', reason: reason ?? 'client_cancelled' } : null;
    const sentMs = active.record.audioBytesSent / bytesPerMs(active.format);
    this.send({
      type: 'response.done',
      response: this.responseObject(active.record, status, details, [item], sentMs),
    });
    this.send({
      type: 'rate_limits.updated',
      rate_limits: [
        { name: 'requests', limit: 5_000, remaining: 4_999, reset_seconds: 0.012 },
        { name: 'tokens', limit: 40_000, remaining: 39_000, reset_seconds: 1.5 },
      ],
    });
  }

  private responseObject(
    record: FakeResponseRecord,
    status: string,
    statusDetails: Record<string, unknown> | null,
    output: Record<string, unknown>[],
    sentAudioMs: number | null,
  ): Record<string, unknown> {
    const outAudio = sentAudioMs === null ? 0 : Math.ceil(sentAudioMs / OUTPUT_AUDIO_MS_PER_TOKEN);
    const usage =
      sentAudioMs === null
        ? null
        : {
            total_tokens: 120 + outAudio + 10,
            input_tokens: 120,
            output_tokens: outAudio + 10,
            input_token_details: {
              text_tokens: 100,
              audio_tokens: 20,
              image_tokens: 0,
              cached_tokens: 0,
              cached_tokens_details: { text_tokens: 0, audio_tokens: 0, image_tokens: 0 },
            },
            output_token_details: { text_tokens: 10, audio_tokens: outAudio },
          };
    return {
      object: 'realtime.response',
      id: record.id,
      status,
      status_details: statusDetails,
      output,
      conversation_id: `conv_${this.id.slice(5)}`,
      output_modalities: ['audio'],
      max_output_tokens: 'inf',
      audio: {
        output: {
          format: normalizeFormat(isAudioFormat(record.format) ? record.format : 'audio/pcm'),
          voice: getRecord(this.config, 'audio', 'output')?.voice ?? 'alloy',
        },
      },
      usage,
      metadata: null,
    };
  }

  // ---- conversation items -------------------------------------------------------------------------

  private onTruncate(ev: Record<string, unknown>): void {
    const itemId = ev.item_id;
    const contentIndex = ev.content_index;
    const endMs = ev.audio_end_ms;
    const item = typeof itemId === 'string' ? this.items.get(itemId) : undefined;
    if (!item || item.role !== 'assistant' || item.format === undefined) {
      throw new ClientError(
        'invalid_value',
        `Invalid value: '${String(itemId)}'. No assistant message item with this id.`,
        'item_id',
      );
    }
    if (contentIndex !== 0) {
      throw new ClientError(
        'invalid_value',
        `Invalid value: '${String(contentIndex)}'. Only content_index 0 holds audio.`,
        'content_index',
      );
    }
    if (typeof endMs !== 'number' || !Number.isInteger(endMs) || endMs < 0) {
      throw new ClientError(
        'invalid_value',
        `Invalid 'audio_end_ms': expected a non-negative integer, got ${String(endMs)}.`,
        'audio_end_ms',
      );
    }
    const availableMs = item.audioBytes / bytesPerMs(item.format);
    if (endMs > availableMs) {
      throw new ClientError(
        'invalid_value',
        `Audio content of ${availableMs}ms is already shorter than ${endMs}ms`,
        'audio_end_ms',
      );
    }
    this.send({
      type: 'conversation.item.truncated',
      item_id: item.id,
      content_index: 0,
      audio_end_ms: endMs,
    });
  }

  private onItemCreate(ev: Record<string, unknown>): void {
    const item = ev.item;
    if (!isRecord(item))
      throw new ClientError('missing_required_parameter', "Missing required parameter: 'item'.", 'item');
    if (typeof item.type !== 'string' || !CLIENT_ITEM_TYPES.has(item.type)) {
      throw new ClientError(
        'invalid_value',
        `Invalid value: '${String(item.type)}'. Supported values are: 'message', 'function_call', and 'function_call_output'.`,
        'item.type',
      );
    }
    if (item.type === 'function_call_output') {
      if (typeof item.call_id !== 'string')
        throw new ClientError(
          'missing_required_parameter',
          "Missing required parameter: 'item.call_id'.",
          'item.call_id',
        );
      if (typeof item.output !== 'string')
        throw new ClientError(
          'missing_required_parameter',
          "Missing required parameter: 'item.output'.",
          'item.output',
        );
    }
    if (item.type === 'message') {
      if (item.role !== 'user' && item.role !== 'assistant' && item.role !== 'system') {
        throw new ClientError(
          'invalid_value',
          `Invalid value: '${String(item.role)}'. Supported values are: 'user', 'assistant', and 'system'.`,
          'item.role',
        );
      }
      if (!Array.isArray(item.content))
        throw new ClientError(
          'missing_required_parameter',
          "Missing required parameter: 'item.content'.",
          'item.content',
        );
    }
    const id = typeof item.id === 'string' ? item.id : newId('item');
    const previous = typeof ev.previous_item_id === 'string' ? ev.previous_item_id : this.lastItemId;
    const full = { ...structuredClone(item), id, object: 'realtime.item', status: 'completed' };
    this.addItem(
      {
        id,
        type: item.type,
        role: typeof item.role === 'string' ? item.role : undefined,
        audioBytes: 0,
        format: undefined,
      },
      full,
      previous,
    );
    this.send({ type: 'conversation.item.done', item: full });
  }
}

function unknownParam(param: string): ClientError {
  return new ClientError('unknown_parameter', `Unknown parameter: '${param}'.`, param);
}

function parseFormat(format: unknown, param: string): AudioFormatType {
  if (!isRecord(format))
    throw new ClientError('invalid_type', `Invalid type for '${param}': expected an object.`, param);
  if (!isAudioFormat(format.type)) {
    throw new ClientError(
      'invalid_value',
      `Invalid value: '${String(format.type)}'. Supported values are: 'audio/pcm', 'audio/pcmu', and 'audio/pcma'.`,
      `${param}.type`,
    );
  }
  for (const key of Object.keys(format)) {
    if (key !== 'type' && !(key === 'rate' && format.type === 'audio/pcm'))
      throw unknownParam(`${param}.${key}`);
  }
  if (format.rate !== undefined && format.rate !== PCM_RATE) {
    throw new ClientError(
      'invalid_value',
      `Invalid value: '${show(format.rate)}'. Supported values are: ${PCM_RATE}.`,
      `${param}.rate`,
    );
  }
  return format.type;
}

// ---------------------------------------------------------------------------------------------------
// The server

interface Waiter {
  timer: NodeJS.Timeout;
  reject(err: Error): void;
  cleanup(): void;
}

export class FakeOpenAIRealtime extends EventEmitter<FakeRealtimeEvents> implements FakeHost {
  readonly sessions: FakeSessionHandle[] = [];
  private readonly impls: FakeSession[] = [];
  private server: Server | undefined;
  private wss: WebSocketServer | undefined;
  private port = 0;
  private stopped = false;
  private sessionCursor = 0;
  private readonly sessionWaiters: ((s: FakeSessionHandle) => void)[] = [];
  private readonly eventCursors = new WeakMap<FakeSessionHandle, Map<string, number>>();
  private readonly waiters = new Set<Waiter>();
  private readonly pendingUpgrades = new Map<NodeJS.Timeout, Duplex>();

  constructor(readonly opts: FakeRealtimeOptions) {
    super();
  }

  get url(): string {
    if (!this.server) throw new Error('FakeOpenAIRealtime: call start() first');
    return `ws://127.0.0.1:${this.port}${REALTIME_PATH}`;
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

  /** Resolves with the oldest session not yet handed out by an earlier call, waiting if needed. */
  waitForSession(timeoutMs = DEFAULT_WAIT_TIMEOUT_MS): Promise<FakeSessionHandle> {
    const ready = this.sessions[this.sessionCursor];
    if (ready) {
      this.sessionCursor++;
      return Promise.resolve(ready);
    }
    return new Promise<FakeSessionHandle>((resolve, reject) => {
      const deliver = (s: FakeSessionHandle): void => {
        waiter.cleanup();
        resolve(s);
      };
      const waiter: Waiter = {
        timer: setTimeout(() => {
          waiter.cleanup();
          reject(new Error(`FakeOpenAIRealtime: no session within ${timeoutMs} ms`));
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

  /** Resolves with the next client event of `type` on `session` not yet returned by an earlier call
   * (events received before the call count), waiting if needed. */
  waitForClientEvent(
    session: FakeSessionHandle,
    type: string,
    timeoutMs = DEFAULT_WAIT_TIMEOUT_MS,
  ): Promise<Record<string, unknown>> {
    let cursors = this.eventCursors.get(session);
    if (!cursors) {
      cursors = new Map();
      this.eventCursors.set(session, cursors);
    }
    const map = cursors;
    const take = (): Record<string, unknown> | undefined => {
      const seen = map.get(type) ?? 0;
      let n = 0;
      for (const rec of session.clientEvents) {
        if (rec.event.type !== type) continue;
        if (n++ === seen) {
          map.set(type, seen + 1);
          return rec.event;
        }
      }
      return undefined;
    };
    const now = take();
    if (now) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const onEvent = (s: FakeSessionHandle, ev: Record<string, unknown>): void => {
        if (s !== session || ev.type !== type) return;
        const got = take();
        if (got) {
          waiter.cleanup();
          resolve(got);
        }
      };
      const waiter: Waiter = {
        timer: setTimeout(() => {
          waiter.cleanup();
          reject(new Error(`FakeOpenAIRealtime: no client event '${type}' within ${timeoutMs} ms`));
        }, timeoutMs),
        reject,
        cleanup: () => {
          clearTimeout(waiter.timer);
          this.waiters.delete(waiter);
          this.off('clientEvent', onEvent);
        },
      };
      this.waiters.add(waiter);
      this.on('clientEvent', onEvent);
    });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const w of [...this.waiters]) {
      w.cleanup();
      w.reject(new Error('FakeOpenAIRealtime stopped'));
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

  // ---- FakeHost ---------------------------------------------------------------------------------

  emitClientEvent(session: FakeSessionHandle, event: Record<string, unknown>): void {
    this.safeEmit('clientEvent', session, event);
  }

  sessionClosed(_session: FakeSessionHandle): void {
    /* sessions stay listed for assertions */
  }

  // ---- upgrade ----------------------------------------------------------------------------------

  private safeEmit<K extends keyof FakeRealtimeEvents>(event: K, ...args: FakeRealtimeEvents[K]): void {
    try {
      (this.emit as (e: string, ...a: unknown[]) => boolean).call(this, event, ...args);
    } catch (e: unknown) {
      console.error(`FakeOpenAIRealtime: a '${event}' listener threw`, e);
    }
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => {
      /* client went away mid-handshake */
    });
    const delay = this.opts.upgradeDelayMs ?? 0;
    if (delay <= 0) {
      this.completeUpgrade(req, socket, head);
      return;
    }
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
    if (url.pathname !== REALTIME_PATH) {
      rejectUpgrade(socket, 404, 'invalid_request_error', 'not_found', `Invalid URL (GET ${url.pathname})`);
      return;
    }
    if (this.opts.rejectUpgradeStatus !== undefined) {
      const status = this.opts.rejectUpgradeStatus;
      rejectUpgrade(
        socket,
        status,
        status >= 500 ? 'server_error' : 'invalid_request_error',
        null,
        `Fake rejection with HTTP ${status}`,
      );
      return;
    }
    const auth = req.headers.authorization;
    if (typeof auth !== 'string' || !/^Bearer\s+\S+/.test(auth)) {
      rejectUpgrade(
        socket,
        401,
        'invalid_request_error',
        'invalid_api_key',
        "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
      );
      return;
    }
    const model = url.searchParams.get('model') ?? undefined;
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      if (this.stopped) {
        ws.terminate();
        return;
      }
      const session = new FakeSession(this, ws, req, model);
      this.impls.push(session);
      this.sessions.push(session);
      const deliver = this.sessionWaiters[0];
      if (deliver) {
        this.sessionCursor++;
        deliver(session);
      }
      this.safeEmit('session', session);
    });
  }
}

function rejectUpgrade(
  socket: Duplex,
  status: number,
  type: string,
  code: string | null,
  message: string,
): void {
  const body = JSON.stringify({ error: { message, type, param: null, code } });
  const reason = STATUS_CODES[status] ?? 'Error';
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
