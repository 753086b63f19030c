// A protocol-faithful fake of the Gemini Live API (BidiGenerateContent) over WebSocket, for tests.
// Shapes follow ../shared/reference/providers.md §2: the Gemini Developer API path with `?key=` and the
// Vertex AI path with `Authorization: Bearer`; the first client message must be `setup` (a bad one
// closes the socket with 1007/1008 and a reason, as the real server does: it sends no JSON errors);
// every server message is JSON in a BINARY frame. Caller audio runs through an energy VAD on *audio
// time* (count of PCM16 samples), never on wall clock, so tests that push audio faster than real time
// stay deterministic. Resumption handles issued by the fake continue the same conversation.
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, STATUS_CODES } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import type { RawData } from 'ws';

// ---------------------------------------------------------------------------------------------------
// Public API

export interface FakeGeminiLiveOptions {
  /** Model audio for each turn, 16-bit LE PCM at 24 kHz (default: a 600 ms counting pattern). */
  replyAudio?: Buffer | ((turnIndex: number) => Buffer);
  /** ms of audio per modelTurn message (default 40) and wall-clock gap between them (default 5):
   * faster than real time, as the real server bursts. */
  chunkMs?: number;
  chunkIntervalMs?: number;
  /** Gemini API: the only key accepted (default: any non-empty key). A wrong key is accepted at the
   * upgrade and refused at setup with close 1007, like the real endpoint. */
  apiKey?: string;
  /** Vertex: the only bearer token accepted (default: any); a wrong one gets HTTP 401. */
  accessToken?: string;
  /** Delay before completing (or rejecting) the WebSocket upgrade. */
  upgradeDelayMs?: number;
  /** Reject every upgrade with this HTTP status (can be changed between connections). */
  rejectUpgradeStatus?: number;
  /** Delay between a valid setup and setupComplete (widens a reconnect window in tests). */
  setupCompleteDelayMs?: number;
  /** Never answer setup (a hung provider). */
  neverCompleteSetup?: boolean;
  /** Energy VAD: RMS of 16-bit samples over 20 ms windows (default 500); silence that ends speech
   * (default 500 ms, the API's silenceDurationMs). */
  vadRmsThreshold?: number;
  vadSilenceMs?: number;
  /** The caller's words (sent as inputTranscription fragments) and the model's (outputTranscription). */
  userTranscript?: string;
  agentTranscript?: string;
  /** Audio chunks of an interrupted turn still sent after `interrupted` (in-flight on the wire). */
  chunksAfterInterrupt?: number;
  /** Every connection gets goAway this long after setupComplete (undefined = never)… */
  goAwayAfterMs?: number;
  /** …announcing this much time left, then the server closes it (default 100). */
  goAwayTimeLeftMs?: number;
}

export interface ClientMessageRecord {
  at: number;
  message: Record<string, unknown>;
}

export interface ServerMessageRecord {
  at: number;
  message: Record<string, unknown>;
}

export type FakeBackend = 'gemini-api' | 'vertex';

/** One conversation: survives reconnects through resumption handles. */
export interface FakeConversationHandle {
  readonly id: string;
  readonly connections: FakeConnectionHandle[];
  /** Setups that continued this conversation with a valid handle. */
  readonly resumptions: number;
  readonly turns: number;
  /** Caller audio over all connections, in arrival order. */
  audio(): Buffer;
  readonly audioBytes: number;
}

export interface FakeConnectionHandle {
  readonly index: number;
  readonly backend: FakeBackend;
  readonly headers: IncomingHttpHeaders;
  /** Request path and query, e.g. /ws/…BidiGenerateContent?key=… */
  readonly url: string;
  readonly path: string;
  readonly apiKey: string | undefined;
  /** The bearer token of a Vertex connection. */
  readonly bearer: string | undefined;
  readonly setup: Record<string, unknown> | undefined;
  readonly setupCompleted: boolean;
  /** The handle the setup resumed from, if any. */
  readonly resumedFrom: string | undefined;
  readonly conversation: FakeConversationHandle | undefined;
  readonly clientMessages: ClientMessageRecord[];
  readonly sent: ServerMessageRecord[];
  /** Caller audio received on this connection, in order. */
  audio(): Buffer;
  readonly audioBytes: number;
  readonly audioMimeTypes: ReadonlySet<string>;
  readonly textTurns: string[];
  readonly toolResponses: Record<string, unknown>[];
  /** Handles issued on this connection (resumable ones only). */
  readonly issuedHandles: string[];
  readonly modelTurns: FakeModelTurnRecord[];
  /** Frames the client sent as text vs binary. */
  readonly closed: boolean;
  readonly closeCode: number | undefined;
  readonly closeReason: string | undefined;
  /** Who closed: the client (close frame or reset) or the fake. */
  readonly closedBy: 'client' | 'server' | undefined;
  sendRaw(data: string | Buffer, binary?: boolean): void;
  forceGoAway(timeLeftMs: number): void;
  dropConnection(): void;
  close(code: number, reason: string): void;
  startModelTurn(): void;
  /** Sends a toolCall; returns its id. While it is pending, no resumable handle is issued. */
  sendToolCall(name: string, args: Record<string, unknown>): string;
  sendToolCallCancellation(ids: string[]): void;
}

export interface FakeModelTurnRecord {
  index: number;
  origin: 'vad' | 'client' | 'tool' | 'test';
  status: 'streaming' | 'complete' | 'interrupted';
  audioChunksSent: number;
  audioBytesSent: number;
  /** Chunks sent after `interrupted` (chunksAfterInterrupt). */
  chunksAfterInterrupt: number;
}

export type FakeGeminiLiveEvents = {
  connection: [FakeConnectionHandle];
  clientMessage: [FakeConnectionHandle, Record<string, unknown>];
};

// ---------------------------------------------------------------------------------------------------
// Constants

export const GEMINI_API_PATH =
  '/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent';
export const VERTEX_PATHS = [
  '/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent',
  '/ws/google.cloud.aiplatform.v1.LlmBidiService/BidiGenerateContent',
];
const OUTPUT_RATE = 24_000;
const OUTPUT_MIME = `audio/pcm;rate=${OUTPUT_RATE}`;
const DEFAULT_CHUNK_MS = 40;
const DEFAULT_CHUNK_INTERVAL_MS = 5;
const DEFAULT_REPLY_MS = 600;
const DEFAULT_VAD_RMS_THRESHOLD = 500;
/** automaticActivityDetection.silenceDurationMs default. */
const DEFAULT_SILENCE_MS = 500;
/** VAD analysis window, in ms of audio time. */
const VAD_WINDOW_MS = 20;
/** Consecutive loud windows that make a speech onset. */
const VAD_ONSET_WINDOWS = 2;
const DEFAULT_GO_AWAY_TIME_LEFT_MS = 100;
/** Close code after the goAway time runs out (going away). */
const GO_AWAY_CLOSE_CODE = 1001;
const DEFAULT_USER_TRANSCRIPT = 'Hello, I would like some help please.';
const DEFAULT_AGENT_TRANSCRIPT = 'Hello, this is the fake Gemini agent. How can I help?';
/** Default wait of waitForConnection. */
const DEFAULT_WAIT_TIMEOUT_MS = 5_000;

/** BidiGenerateContentSetup fields; anything else is an "Unknown name" 1007, as proto JSON parsing does. */
const SETUP_KEYS = new Set([
  'model',
  'generationConfig',
  'systemInstruction',
  'tools',
  'realtimeInputConfig',
  'sessionResumption',
  'contextWindowCompression',
  'inputAudioTranscription',
  'outputAudioTranscription',
  'proactivity',
  'explicitVadSignal',
]);
const GENERATION_CONFIG_KEYS = new Set([
  'candidateCount',
  'maxOutputTokens',
  'temperature',
  'topP',
  'topK',
  'presencePenalty',
  'frequencyPenalty',
  'responseModalities',
  'speechConfig',
  'mediaResolution',
  'enableAffectiveDialog',
  'thinkingConfig',
]);
const CLIENT_MESSAGE_KEYS = new Set(['setup', 'clientContent', 'realtimeInput', 'toolResponse']);
const REALTIME_INPUT_KEYS = new Set([
  'audio',
  'video',
  'text',
  'mediaChunks',
  'activityStart',
  'activityEnd',
  'audioStreamEnd',
]);
const SCHEMA_TYPES = new Set(['STRING', 'NUMBER', 'INTEGER', 'BOOLEAN', 'ARRAY', 'OBJECT', 'NULL']);
const GEMINI_MODEL_RE = /^models\/[\w.-]+$/;
const VERTEX_MODEL_RE = /^projects\/([^/]+)\/locations\/([^/]+)\/publishers\/google\/models\/[\w.-]+$/;
const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

// ---------------------------------------------------------------------------------------------------
// Helpers

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function newId(prefix: string): string {
  return `${prefix}-${randomBytes(8).toString('hex')}`;
}

/** Default model audio: a 16-bit ramp whose bytes show any loss or reordering. */
function defaultReply(turnIndex: number): Buffer {
  const samples = (OUTPUT_RATE * DEFAULT_REPLY_MS) / 1000;
  const out = Buffer.alloc(samples * 2);
  for (let i = 0; i < samples; i++) out.writeInt16LE(((i + turnIndex * 1000) % 2000) - 1000, i * 2);
  return out;
}

/** A protocol violation: the real server closes the socket with a code and reason. */
class CloseError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

function unknownName(name: string, at: string): CloseError {
  return new CloseError(
    1007,
    `Invalid JSON payload received. Unknown name "${name}" at '${at}': Cannot find field.`,
  );
}

function checkSchema(schema: unknown, at: string): void {
  if (!isRecord(schema)) throw new CloseError(1007, `Invalid value at '${at}': expected an object.`);
  if (schema.type !== undefined && (typeof schema.type !== 'string' || !SCHEMA_TYPES.has(schema.type)))
    throw new CloseError(
      1007,
      `Invalid value at '${at}.type' (type.googleapis.com/google.ai.generativelanguage.v1beta.Type), ${JSON.stringify(schema.type)}`,
    );
  if (isRecord(schema.properties))
    for (const [name, sub] of Object.entries(schema.properties))
      checkSchema(sub, `${at}.properties[${name}]`);
  if (schema.items !== undefined) checkSchema(schema.items, `${at}.items`);
  if ('additionalProperties' in schema) throw unknownName('additionalProperties', at);
}

// ---------------------------------------------------------------------------------------------------
// Conversation and connection

class FakeConversation implements FakeConversationHandle {
  readonly id = newId('conv');
  readonly connections: FakeConnectionHandle[] = [];
  resumptions = 0;
  turns = 0;
  readonly handles = new Set<string>();
  private readonly chunks: Buffer[] = [];
  audioBytes = 0;

  addAudio(bytes: Buffer): void {
    this.chunks.push(bytes);
    this.audioBytes += bytes.length;
  }

  audio(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

interface ActiveTurn {
  record: FakeModelTurnRecord;
  audio: Buffer;
  offset: number;
  chunkBytes: number;
  words: string[];
  wordsPerChunk: number;
  timer: NodeJS.Timeout | undefined;
}

interface FakeHost {
  readonly opts: FakeGeminiLiveOptions;
  findConversation(handle: string): FakeConversation | undefined;
  newConversation(): FakeConversation;
  emitClientMessage(connection: FakeConnectionHandle, message: Record<string, unknown>): void;
}

class FakeConnection implements FakeConnectionHandle {
  readonly headers: IncomingHttpHeaders;
  readonly url: string;
  readonly path: string;
  readonly apiKey: string | undefined;
  readonly bearer: string | undefined;
  setup: Record<string, unknown> | undefined;
  setupCompleted = false;
  resumedFrom: string | undefined;
  conversation: FakeConversation | undefined;
  readonly clientMessages: ClientMessageRecord[] = [];
  readonly sent: ServerMessageRecord[] = [];
  readonly audioMimeTypes = new Set<string>();
  readonly textTurns: string[] = [];
  readonly toolResponses: Record<string, unknown>[] = [];
  readonly issuedHandles: string[] = [];
  readonly modelTurns: FakeModelTurnRecord[] = [];
  audioBytes = 0;
  closed = false;
  closeCode: number | undefined;
  closeReason: string | undefined;
  closedBy: 'client' | 'server' | undefined;

  private readonly audioChunks: Buffer[] = [];
  private readonly pendingToolCalls = new Set<string>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private active: ActiveTurn | undefined;
  // VAD, on audio time
  private sampleRate = 16_000;
  private winSumSq = 0;
  private winCount = 0;
  private loudRun = 0;
  private speaking = false;
  private silentMs = 0;
  private carry: number | undefined;

  constructor(
    private readonly host: FakeHost,
    private readonly ws: WebSocket,
    req: IncomingMessage,
    readonly index: number,
    readonly backend: FakeBackend,
  ) {
    this.headers = req.headers;
    this.url = req.url ?? '';
    const url = new URL(this.url, 'http://127.0.0.1');
    this.path = url.pathname;
    this.apiKey = url.searchParams.get('key') ?? headerValue(req.headers['x-goog-api-key']);
    this.bearer = /^Bearer\s+(\S+)$/.exec(req.headers.authorization ?? '')?.[1];
    ws.on('message', (data: RawData, isBinary: boolean) => this.onMessage(data, isBinary));
    ws.on('close', (code: number, reason: Buffer) => this.onClosed(code, reason.toString()));
    ws.on('error', () => {
      /* a reset socket also emits close */
    });
  }

  audio(): Buffer {
    return Buffer.concat(this.audioChunks);
  }

  // ---- test controls ------------------------------------------------------------------------------

  sendRaw(data: string | Buffer, binary = true): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(typeof data === 'string' ? Buffer.from(data) : data, { binary });
  }

  forceGoAway(timeLeftMs: number): void {
    this.send({ goAway: { timeLeft: `${timeLeftMs / 1000}s` } });
    this.later(timeLeftMs, () => this.close(GO_AWAY_CLOSE_CODE, 'session time limit reached'));
  }

  dropConnection(): void {
    this.stopTimers();
    this.closedBy ??= 'server';
    this.ws.terminate();
  }

  close(code: number, reason: string): void {
    this.stopTimers();
    this.closedBy ??= 'server';
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(code, reason);
  }

  startModelTurn(): void {
    if (!this.closed && this.setupCompleted) this.beginTurn('test');
  }

  sendToolCall(name: string, args: Record<string, unknown>): string {
    const id = newId('function-call');
    this.pendingToolCalls.add(id);
    this.send({ toolCall: { functionCalls: [{ id, name, args }] } });
    return id;
  }

  sendToolCallCancellation(ids: string[]): void {
    for (const id of ids) this.pendingToolCalls.delete(id);
    this.send({ toolCallCancellation: { ids } });
  }

  /** On server stop: no close frame, no lingering timers. */
  dispose(): void {
    this.stopTimers();
    if (this.ws.readyState !== WebSocket.CLOSED) this.ws.terminate();
  }

  // ---- plumbing -----------------------------------------------------------------------------------

  private send(message: Record<string, unknown>): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(Buffer.from(JSON.stringify(message)), { binary: true });
    this.sent.push({ at: Date.now(), message });
  }

  private later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.add(timer);
  }

  private stopTimers(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    if (this.active?.timer) clearTimeout(this.active.timer);
    if (this.active) this.active.timer = undefined;
  }

  private onClosed(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.closedBy ??= 'client';
    this.closeCode = code;
    this.closeReason = reason;
    this.stopTimers();
  }

  private onMessage(data: RawData, _isBinary: boolean): void {
    const text = Buffer.isBuffer(data)
      ? data.toString('utf8')
      : Array.isArray(data)
        ? Buffer.concat(data).toString('utf8')
        : Buffer.from(data).toString('utf8');
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    const message = isRecord(parsed) ? parsed : { _raw: text };
    this.clientMessages.push({ at: Date.now(), message });
    this.host.emitClientMessage(this, message);
    if (this.closed) return;
    try {
      if (!isRecord(parsed)) throw new CloseError(1007, 'Invalid JSON payload received.');
      this.dispatch(parsed);
    } catch (e: unknown) {
      if (e instanceof CloseError) this.close(e.code, e.message);
      else this.close(1011, `Fake server bug: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  private dispatch(message: Record<string, unknown>): void {
    const keys = Object.keys(message);
    for (const key of keys) if (!CLIENT_MESSAGE_KEYS.has(key)) throw unknownName(key, '');
    if (keys.length !== 1)
      throw new CloseError(
        1007,
        'Invalid argument: a client message must set exactly one of setup, clientContent, realtimeInput, toolResponse.',
      );
    const key = keys[0]!;
    if (this.setup === undefined && key !== 'setup')
      throw new CloseError(1007, 'Invalid argument: the first message must be setup.');
    switch (key) {
      case 'setup':
        return this.onSetup(message.setup);
      case 'realtimeInput':
        return this.onRealtimeInput(message.realtimeInput);
      case 'clientContent':
        return this.onClientContent(message.clientContent);
      case 'toolResponse':
        return this.onToolResponse(message.toolResponse);
    }
  }

  // ---- setup --------------------------------------------------------------------------------------

  private onSetup(setup: unknown): void {
    if (this.setup !== undefined) throw new CloseError(1007, 'Invalid argument: setup was already sent.');
    if (!isRecord(setup)) throw new CloseError(1007, "Invalid value at 'setup': expected an object.");
    this.setup = setup;
    for (const key of Object.keys(setup)) if (!SETUP_KEYS.has(key)) throw unknownName(key, 'setup');
    if (this.backend === 'gemini-api') {
      const expected = this.host.opts.apiKey;
      if (expected !== undefined && this.apiKey !== expected)
        throw new CloseError(1007, 'API key not valid. Please pass a valid API key.');
    }
    const model = setup.model;
    const modelRe = this.backend === 'gemini-api' ? GEMINI_MODEL_RE : VERTEX_MODEL_RE;
    if (typeof model !== 'string' || !modelRe.test(model))
      throw new CloseError(
        1008,
        `${String(model)} is not found for API version, or is not supported for bidiGenerateContent.`,
      );
    const gen = setup.generationConfig;
    if (gen !== undefined) {
      if (!isRecord(gen)) throw new CloseError(1007, "Invalid value at 'setup.generation_config'.");
      for (const key of Object.keys(gen))
        if (!GENERATION_CONFIG_KEYS.has(key)) throw unknownName(key, 'setup.generation_config');
      const modalities = gen.responseModalities;
      if (modalities !== undefined && (!Array.isArray(modalities) || modalities.length !== 1))
        throw new CloseError(1007, 'Invalid argument: exactly one response modality is supported.');
    }
    const tools = setup.tools;
    if (tools !== undefined) {
      if (!Array.isArray(tools)) throw new CloseError(1007, "Invalid value at 'setup.tools'.");
      for (const [i, tool] of tools.entries()) {
        const decls = isRecord(tool) ? tool.functionDeclarations : undefined;
        if (!Array.isArray(decls)) continue;
        for (const [j, d] of decls.entries()) {
          if (!isRecord(d) || typeof d.name !== 'string')
            throw new CloseError(
              1007,
              `Invalid value at 'setup.tools[${i}].function_declarations[${j}].name'.`,
            );
          if (d.parameters !== undefined)
            checkSchema(d.parameters, `setup.tools[${i}].function_declarations[${j}].parameters`);
        }
      }
    }
    const resumption = setup.sessionResumption;
    const handle =
      isRecord(resumption) && typeof resumption.handle === 'string' ? resumption.handle : undefined;
    if (handle !== undefined) {
      const conversation = this.host.findConversation(handle);
      if (conversation === undefined)
        throw new CloseError(1007, 'Invalid argument: unknown session resumption handle.');
      conversation.resumptions++;
      this.conversation = conversation;
      this.resumedFrom = handle;
    } else {
      this.conversation = this.host.newConversation();
    }
    this.conversation.connections.push(this);
    if (this.host.opts.neverCompleteSetup) return;
    const complete = (): void => {
      if (this.closed) return;
      this.setupCompleted = true;
      this.send({ setupComplete: {} });
      this.issueHandle();
      const after = this.host.opts.goAwayAfterMs;
      if (after !== undefined)
        this.later(after, () =>
          this.forceGoAway(this.host.opts.goAwayTimeLeftMs ?? DEFAULT_GO_AWAY_TIME_LEFT_MS),
        );
    };
    const delay = this.host.opts.setupCompleteDelayMs ?? 0;
    if (delay > 0) this.later(delay, complete);
    else complete();
  }

  private resumptionEnabled(): boolean {
    return isRecord(this.setup?.sessionResumption);
  }

  private issueHandle(): void {
    if (!this.resumptionEnabled() || this.conversation === undefined) return;
    if (this.active !== undefined || this.pendingToolCalls.size > 0) {
      this.send({ sessionResumptionUpdate: { resumable: false } });
      return;
    }
    const handle = newId('handle');
    this.conversation.handles.add(handle);
    this.issuedHandles.push(handle);
    this.send({ sessionResumptionUpdate: { newHandle: handle, resumable: true } });
  }

  // ---- input --------------------------------------------------------------------------------------

  private onRealtimeInput(input: unknown): void {
    if (!isRecord(input)) throw new CloseError(1007, "Invalid value at 'realtime_input'.");
    for (const key of Object.keys(input))
      if (!REALTIME_INPUT_KEYS.has(key)) throw unknownName(key, 'realtime_input');
    if (typeof input.text === 'string') this.onUserText(input.text);
    const audio = input.audio;
    if (audio === undefined) return;
    if (!isRecord(audio) || typeof audio.data !== 'string' || !BASE64_RE.test(audio.data))
      throw new CloseError(1007, "Invalid value at 'realtime_input.audio.data': expected base64 bytes.");
    const mime = audio.mimeType;
    const m = typeof mime === 'string' ? /^audio\/pcm(?:;rate=(\d+))?$/.exec(mime) : null;
    if (m === null)
      throw new CloseError(1007, `Unsupported mime type for realtime_input.audio: ${String(mime)}`);
    this.audioMimeTypes.add(String(mime));
    this.sampleRate = m[1] === undefined ? 16_000 : Number(m[1]);
    const bytes = Buffer.from(audio.data, 'base64');
    this.audioChunks.push(bytes);
    this.audioBytes += bytes.length;
    this.conversation?.addAudio(bytes);
    this.feedVad(bytes);
  }

  private onClientContent(content: unknown): void {
    if (!isRecord(content)) throw new CloseError(1007, "Invalid value at 'client_content'.");
    const turns = content.turns ?? [];
    if (!Array.isArray(turns)) throw new CloseError(1007, "Invalid value at 'client_content.turns'.");
    for (const turn of turns) {
      if (!isRecord(turn) || !Array.isArray(turn.parts))
        throw new CloseError(1007, "Invalid value at 'client_content.turns': expected {role, parts}.");
      for (const part of turn.parts)
        if (isRecord(part) && typeof part.text === 'string') this.textTurns.push(part.text);
    }
    if (content.turnComplete === true) this.onUserText(undefined);
  }

  private onUserText(text: string | undefined): void {
    if (text !== undefined) this.textTurns.push(text);
    if (this.active) this.interrupt();
    this.beginTurn('client');
  }

  private onToolResponse(response: unknown): void {
    if (!isRecord(response) || !Array.isArray(response.functionResponses))
      throw new CloseError(1007, "Invalid value at 'tool_response.function_responses'.");
    for (const fr of response.functionResponses) {
      if (!isRecord(fr) || typeof fr.name !== 'string' || !isRecord(fr.response))
        throw new CloseError(
          1007,
          "Invalid value at 'tool_response.function_responses': expected {id, name, response}.",
        );
      if (this.backend === 'gemini-api' && typeof fr.id !== 'string')
        throw new CloseError(1007, 'Invalid argument: function_responses.id is required.');
      this.toolResponses.push(fr);
      if (typeof fr.id === 'string') this.pendingToolCalls.delete(fr.id);
    }
    if (this.pendingToolCalls.size === 0 && !this.active) this.beginTurn('tool');
  }

  private feedVad(bytes: Buffer): void {
    let i = 0;
    if (this.carry !== undefined && bytes.length > 0) {
      this.feedSample(((((bytes[0] ?? 0) << 8) | this.carry) << 16) >> 16);
      this.carry = undefined;
      i = 1;
    }
    for (; i + 1 < bytes.length; i += 2) this.feedSample(bytes.readInt16LE(i));
    if (i < bytes.length) this.carry = bytes[i];
  }

  private feedSample(sample: number): void {
    this.winSumSq += sample * sample;
    this.winCount++;
    if (this.winCount < (VAD_WINDOW_MS * this.sampleRate) / 1000) return;
    const rms = Math.sqrt(this.winSumSq / this.winCount);
    this.winSumSq = 0;
    this.winCount = 0;
    this.onVadWindow(rms > (this.host.opts.vadRmsThreshold ?? DEFAULT_VAD_RMS_THRESHOLD));
  }

  private onVadWindow(loud: boolean): void {
    if (!this.speaking) {
      this.loudRun = loud ? this.loudRun + 1 : 0;
      if (this.loudRun < VAD_ONSET_WINDOWS) return;
      this.loudRun = 0;
      this.speaking = true;
      this.silentMs = 0;
      if (this.active) this.interrupt();
      return;
    }
    if (loud) {
      this.silentMs = 0;
      return;
    }
    this.silentMs += VAD_WINDOW_MS;
    if (this.silentMs < (this.host.opts.vadSilenceMs ?? DEFAULT_SILENCE_MS)) return;
    this.speaking = false;
    this.silentMs = 0;
    if (isRecord(this.setup?.inputAudioTranscription)) {
      const words = (this.host.opts.userTranscript ?? DEFAULT_USER_TRANSCRIPT).match(/\S+\s*/g) ?? [];
      // Fragments, as the real server streams them; no `finished` marker.
      for (const word of words) this.send({ serverContent: { inputTranscription: { text: word } } });
    }
    this.beginTurn('vad');
  }

  // ---- model turns --------------------------------------------------------------------------------

  private beginTurn(origin: FakeModelTurnRecord['origin']): void {
    const conversation = this.conversation;
    if (this.closed || conversation === undefined || this.active) return;
    const record: FakeModelTurnRecord = {
      index: conversation.turns++,
      origin,
      status: 'streaming',
      audioChunksSent: 0,
      audioBytesSent: 0,
      chunksAfterInterrupt: 0,
    };
    this.modelTurns.push(record);
    const reply = this.host.opts.replyAudio ?? defaultReply;
    const audio = typeof reply === 'function' ? reply(record.index) : reply;
    const chunkBytes = Math.max(
      2,
      Math.round(((this.host.opts.chunkMs ?? DEFAULT_CHUNK_MS) * OUTPUT_RATE) / 1000) * 2,
    );
    const words = isRecord(this.setup?.outputAudioTranscription)
      ? ((this.host.opts.agentTranscript ?? DEFAULT_AGENT_TRANSCRIPT).match(/\S+\s*/g) ?? [])
      : [];
    const chunks = Math.max(1, Math.ceil(audio.length / chunkBytes));
    this.active = {
      record,
      audio,
      offset: 0,
      chunkBytes,
      words,
      wordsPerChunk: Math.ceil(words.length / chunks),
      timer: undefined,
    };
    this.issueHandle(); // not resumable while generating
    this.schedulePump(0);
  }

  private schedulePump(delayMs: number): void {
    const active = this.active;
    if (!active || this.closed) return;
    active.timer = setTimeout(() => {
      active.timer = undefined;
      this.pump(active);
    }, delayMs);
  }

  private sendChunk(active: ActiveTurn): void {
    const chunk = active.audio.subarray(active.offset, active.offset + active.chunkBytes);
    active.offset += chunk.length;
    active.record.audioChunksSent++;
    active.record.audioBytesSent += chunk.length;
    this.send({
      serverContent: {
        modelTurn: { parts: [{ inlineData: { mimeType: OUTPUT_MIME, data: chunk.toString('base64') } }] },
      },
    });
  }

  private pump(active: ActiveTurn): void {
    if (this.active !== active || this.closed) return;
    if (active.offset < active.audio.length) this.sendChunk(active);
    const words = active.words.splice(0, active.wordsPerChunk).join('');
    if (words.length > 0) this.send({ serverContent: { outputTranscription: { text: words } } });
    if (active.offset < active.audio.length) {
      this.schedulePump(this.host.opts.chunkIntervalMs ?? DEFAULT_CHUNK_INTERVAL_MS);
      return;
    }
    const rest = active.words.splice(0).join('');
    if (rest.length > 0) this.send({ serverContent: { outputTranscription: { text: rest } } });
    this.send({ serverContent: { generationComplete: true } });
    this.finishTurn('complete');
  }

  /** Barge-in: `interrupted`, maybe some in-flight chunks, then turnComplete (no generationComplete). */
  private interrupt(): void {
    const active = this.active;
    if (!active) return;
    if (active.timer) clearTimeout(active.timer);
    active.timer = undefined;
    this.send({ serverContent: { interrupted: true } });
    const trailing = this.host.opts.chunksAfterInterrupt ?? 0;
    for (let i = 0; i < trailing && active.offset < active.audio.length; i++) {
      this.sendChunk(active);
      active.record.chunksAfterInterrupt++;
    }
    this.finishTurn('interrupted');
  }

  private finishTurn(status: 'complete' | 'interrupted'): void {
    const active = this.active;
    if (!active) return;
    this.active = undefined;
    active.record.status = status;
    this.send({ serverContent: { turnComplete: true } });
    this.send({
      usageMetadata: {
        promptTokenCount: 100,
        responseTokenCount: Math.ceil(active.record.audioBytesSent / 1600),
        totalTokenCount: 100 + Math.ceil(active.record.audioBytesSent / 1600),
      },
    });
    this.issueHandle();
  }
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

// ---------------------------------------------------------------------------------------------------
// The server

export class FakeGeminiLive extends EventEmitter<FakeGeminiLiveEvents> implements FakeHost {
  readonly connections: FakeConnectionHandle[] = [];
  readonly conversations: FakeConversationHandle[] = [];
  /** Upgrade attempts, including refused ones. */
  upgradeAttempts = 0;
  private readonly impls: FakeConnection[] = [];
  private readonly convs: FakeConversation[] = [];
  private server: Server | undefined;
  private wss: WebSocketServer | undefined;
  private port = 0;
  private stopped = false;
  private readonly pendingUpgrades = new Map<NodeJS.Timeout, Duplex>();

  constructor(readonly opts: FakeGeminiLiveOptions = {}) {
    super();
  }

  /** http://127.0.0.1:port: what GOOGLE_GEMINI_BASE_URL / GOOGLE_VERTEX_BASE_URL would hold. */
  get httpUrl(): string {
    if (!this.server) throw new Error('FakeGeminiLive: call start() first');
    return `http://127.0.0.1:${this.port}`;
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

  /** Resolves with connection `index` (0-based) once it is open. */
  waitForConnection(index: number, timeoutMs = DEFAULT_WAIT_TIMEOUT_MS): Promise<FakeConnectionHandle> {
    const ready = this.connections[index];
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      const onConnection = (): void => {
        const c = this.connections[index];
        if (!c) return;
        clearTimeout(timer);
        this.off('connection', onConnection);
        resolve(c);
      };
      const timer = setTimeout(() => {
        this.off('connection', onConnection);
        reject(new Error(`FakeGeminiLive: no connection #${index} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.on('connection', onConnection);
    });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const [timer, socket] of this.pendingUpgrades) {
      clearTimeout(timer);
      socket.destroy();
    }
    this.pendingUpgrades.clear();
    for (const c of this.impls) c.dispose();
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

  findConversation(handle: string): FakeConversation | undefined {
    return this.convs.find((c) => c.handles.has(handle));
  }

  newConversation(): FakeConversation {
    const c = new FakeConversation();
    this.convs.push(c);
    this.conversations.push(c);
    return c;
  }

  emitClientMessage(connection: FakeConnectionHandle, message: Record<string, unknown>): void {
    this.safeEmit('clientMessage', connection, message);
  }

  // ---- upgrade ----------------------------------------------------------------------------------

  private safeEmit<K extends keyof FakeGeminiLiveEvents>(event: K, ...args: FakeGeminiLiveEvents[K]): void {
    try {
      (this.emit as (e: string, ...a: unknown[]) => boolean).call(this, event, ...args);
    } catch (e: unknown) {
      console.error(`FakeGeminiLive: a '${event}' listener threw`, e);
    }
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.upgradeAttempts++;
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
    let backend: FakeBackend;
    if (url.pathname === GEMINI_API_PATH) backend = 'gemini-api';
    else if (VERTEX_PATHS.includes(url.pathname)) backend = 'vertex';
    else return rejectUpgrade(socket, 404, 'NOT_FOUND', `Method not found: ${url.pathname}`);
    if (this.opts.rejectUpgradeStatus !== undefined)
      return rejectUpgrade(socket, this.opts.rejectUpgradeStatus, 'UNAVAILABLE', 'Fake rejection');
    if (backend === 'gemini-api') {
      const key = url.searchParams.get('key') ?? headerValue(req.headers['x-goog-api-key']);
      if (key === undefined || key === null || key === '')
        return rejectUpgrade(
          socket,
          401,
          'UNAUTHENTICATED',
          "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
        );
    } else {
      const bearer = /^Bearer\s+(\S+)$/.exec(req.headers.authorization ?? '')?.[1];
      const expected = this.opts.accessToken;
      if (bearer === undefined || (expected !== undefined && bearer !== expected))
        return rejectUpgrade(
          socket,
          401,
          'UNAUTHENTICATED',
          'Request had invalid authentication credentials. Expected OAuth 2 access token.',
        );
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      if (this.stopped) {
        ws.terminate();
        return;
      }
      const connection = new FakeConnection(this, ws, req, this.impls.length, backend);
      this.impls.push(connection);
      this.connections.push(connection);
      this.safeEmit('connection', connection);
    });
  }
}

function rejectUpgrade(socket: Duplex, status: number, grpcStatus: string, message: string): void {
  const body = JSON.stringify({ error: { code: status, message, status: grpcStatus } });
  const reason = STATUS_CODES[status] ?? 'Error';
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=UTF-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
