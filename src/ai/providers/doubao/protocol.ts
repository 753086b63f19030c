import { z } from 'zod';
import { Compression, MessageType, Serialization, decodeFrame, encodeFrame } from './frames.js';

/**
 * Doubao realtime dialogue events (Volcengine doc 6561/1594356 §2.3): event numbers, builders for the
 * client frames voxgate sends and schemas for the server events it acts on. Pure: no I/O, no state.
 */

export const ClientEvent = {
  StartConnection: 1,
  FinishConnection: 2,
  StartSession: 100,
  FinishSession: 102,
  TaskRequest: 200,
  SayHello: 300,
  ChatTextQuery: 501,
  ConversationTruncate: 513,
} as const;

export const ServerEvent = {
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
export type ServerEventName = keyof typeof ServerEvent;

/** `TTSEnded.status_code` when the model heard the caller wanting to leave (`enable_user_query_exit`). */
export const USER_EXIT_STATUS = '20000002';

/**
 * Doc §5 "On any 5xx, reconnect": codes 5xxxxxxx (server errors, 52000042 audio idle, 55000001
 * ContextCanceled / InvalidSpeaker) leave the session unusable; 4xxxxxxx are request errors.
 */
export function isFatalCode(code: string | number): boolean {
  return /^5\d{7}$/.test(String(code).trim());
}

// ---- model lines ------------------------------------------------------------------------------------

/**
 * The 2.0 generation: O2.0 (`1.2.1.x`, current `1.2.1.1`) and SC2.0 (`2.2.0.x`, current `2.2.0.0`). Only
 * these accept `enable_conversation_truncate` and ConversationTruncate(513) (doc: "仅适用于2.0模型").
 * Legacy names (`O`, `SC`) and unknown ids are treated as not supporting it.
 */
export function isGeneration2Model(model: string): boolean {
  return /^(1\.2\.1|2\.2\.0)\.\d+$/.test(model.trim());
}

/** SC / SC2.0 (Strong Character) take `character_manifest` instead of bot_name/system_role/speaking_style. */
export function isCharacterModel(model: string): boolean {
  const m = model.trim().toUpperCase();
  return m === 'SC' || m.startsWith('2.');
}

// ---- client frames ----------------------------------------------------------------------------------

const EMPTY_JSON = Buffer.from('{}', 'utf8');

function jsonFrame(event: number, sessionId: string | undefined, payload: object | Buffer): Buffer {
  return encodeFrame({
    type: MessageType.FullClientRequest,
    serialization: Serialization.Json,
    compression: Compression.None,
    event,
    ...(sessionId === undefined ? {} : { sessionId }),
    payload: Buffer.isBuffer(payload) ? payload : Buffer.from(JSON.stringify(payload), 'utf8'),
  });
}

export const startConnection = (): Buffer => jsonFrame(ClientEvent.StartConnection, undefined, EMPTY_JSON);
export const finishConnection = (): Buffer => jsonFrame(ClientEvent.FinishConnection, undefined, EMPTY_JSON);
export const finishSession = (sessionId: string): Buffer =>
  jsonFrame(ClientEvent.FinishSession, sessionId, EMPTY_JSON);
export const startSession = (sessionId: string, payload: StartSessionPayload): Buffer =>
  jsonFrame(ClientEvent.StartSession, sessionId, payload);
/** The model speaks `content` verbatim. */
export const sayHello = (sessionId: string, content: string): Buffer =>
  jsonFrame(ClientEvent.SayHello, sessionId, { content });
/** A text user turn; the model answers it (the only documented way to steer a turn with text). */
export const chatTextQuery = (sessionId: string, content: string): Buffer =>
  jsonFrame(ClientEvent.ChatTextQuery, sessionId, { content });
/** Keep only the first `audioEndMs` of reply `itemId` in the context (2.0 models). */
export const conversationTruncate = (sessionId: string, itemId: string, audioEndMs: number): Buffer =>
  jsonFrame(ClientEvent.ConversationTruncate, sessionId, {
    item_id: itemId,
    audio_end_ms: Math.max(0, Math.floor(audioEndMs)),
  });

/** TaskRequest(200): an audio-only frame of raw PCM s16le 16 kHz mono (byte1 0x24, byte2 0x00). */
export const taskRequest = (sessionId: string, pcm: Uint8Array): Buffer =>
  encodeFrame({
    type: MessageType.AudioOnlyRequest,
    serialization: Serialization.Raw,
    compression: Compression.None,
    event: ClientEvent.TaskRequest,
    sessionId,
    payload: pcm,
  });

// ---- StartSession payload ----------------------------------------------------------------------------

/** 'pcm_s16le' = 24 kHz int16 LE; 'pcm' = 24 kHz float32 LE (the session converts it to int16). */
export type DoubaoOutputFormat = 'pcm_s16le' | 'pcm';
export const OUTPUT_SAMPLE_RATE = 24_000;

export interface SessionSettings {
  model: string;
  /** Empty = the server default voice. */
  speaker: string;
  botName: string;
  /** Persona plus the call's instructions, already combined. */
  systemRole: string;
  speakingStyle: string;
  outputFormat: DoubaoOutputFormat;
  hangUpOnUserExit: boolean;
}

export interface StartSessionPayload {
  asr: { extra: Record<string, unknown> };
  tts: {
    speaker?: string;
    audio_config: { channel: 1; format: DoubaoOutputFormat; sample_rate: typeof OUTPUT_SAMPLE_RATE };
    extra: Record<string, unknown>;
  };
  dialog: {
    bot_name?: string;
    system_role?: string;
    speaking_style?: string;
    character_manifest?: string;
    extra: {
      model: string;
      input_mod: 'audio';
      enable_conversation_truncate?: true;
      enable_user_query_exit: boolean;
    };
  };
}

/**
 * The StartSession config. `asr.extra` and `tts.extra` must be objects (null gives 42000020). Audio input
 * stays in the default microphone mode (`input_mod: "audio"`, server VAD); the session keeps it alive
 * with silence while the caller sends nothing (see session.ts).
 */
export function startSessionPayload(s: SessionSettings): StartSessionPayload {
  const nonEmpty = <K extends string>(key: K, value: string): Partial<Record<K, string>> =>
    (value.trim() === '' ? {} : { [key]: value }) as Partial<Record<K, string>>;
  const persona = isCharacterModel(s.model)
    ? nonEmpty('character_manifest', s.systemRole)
    : {
        ...nonEmpty('bot_name', s.botName),
        ...nonEmpty('system_role', s.systemRole),
        ...nonEmpty('speaking_style', s.speakingStyle),
      };
  return {
    asr: { extra: {} },
    tts: {
      ...nonEmpty('speaker', s.speaker),
      audio_config: { channel: 1, format: s.outputFormat, sample_rate: OUTPUT_SAMPLE_RATE },
      extra: {},
    },
    dialog: {
      ...persona,
      extra: {
        model: s.model,
        input_mod: 'audio',
        ...(isGeneration2Model(s.model) ? { enable_conversation_truncate: true as const } : {}),
        enable_user_query_exit: s.hangUpOnUserExit,
      },
    },
  };
}

// ---- server frames ----------------------------------------------------------------------------------

const optId = z.string().optional();
/** Status codes are documented as strings; accept numbers too. */
const statusCode = z.union([z.string(), z.number()]).transform(String);
const withError = z.object({ error: z.string().optional() });
const empty = z.object({});

const serverEventSchemas = {
  ConnectionStarted: empty,
  ConnectionFailed: withError,
  ConnectionFinished: empty,
  SessionStarted: z.object({ dialog_id: z.string().optional() }),
  SessionFinished: empty,
  SessionFailed: withError,
  UsageResponse: empty,
  ConfigUpdated: empty,
  TTSSentenceStart: z.object({
    tts_type: z.string().optional(),
    text: z.string().optional(),
    question_id: optId,
    reply_id: optId,
  }),
  TTSSentenceEnd: z.object({ question_id: optId, reply_id: optId }),
  TTSEnded: z.object({ question_id: optId, reply_id: optId, status_code: statusCode.optional() }),
  ASRInfo: z.object({ question_id: optId }),
  ASRResponse: z.object({
    results: z.array(z.object({ text: z.string(), is_interim: z.boolean().optional() })),
  }),
  ASREnded: empty,
  ChatResponse: z.object({ content: z.string(), question_id: optId, reply_id: optId }),
  ChatTextQueryConfirmed: z.object({ question_id: optId }),
  ChatEnded: z.object({ question_id: optId, reply_id: optId }),
  ConversationTruncated: empty,
  DialogCommonError: z.object({ status_code: statusCode, message: z.string().optional() }),
} as const satisfies Record<Exclude<ServerEventName, 'TTSResponse'>, z.ZodType>;

type JsonEventName = keyof typeof serverEventSchemas;
export type ServerJsonEvent = {
  [K in JsonEventName]: { name: K } & z.output<(typeof serverEventSchemas)[K]>;
}[JsonEventName];

const EVENT_NAMES = new Map<number, ServerEventName>(
  Object.entries(ServerEvent).map(([name, n]) => [n, name as ServerEventName]),
);

/** One decoded server frame, or why it was not used. */
export type ServerMessage =
  | { kind: 'event'; event: ServerJsonEvent; sessionId: string | undefined }
  | { kind: 'audio'; audio: Uint8Array; sessionId: string | undefined }
  | { kind: 'error'; code: number; message: string; event: number | undefined; sessionId: string | undefined }
  | { kind: 'ignored'; event: number | undefined }
  | { kind: 'invalid'; problem: string };

/** Parses one binary WebSocket message from the server. Never throws. */
export function decodeServerMessage(bytes: Uint8Array, maxPayloadBytes?: number): ServerMessage {
  const decoded = decodeFrame(bytes, maxPayloadBytes === undefined ? {} : { maxPayloadBytes });
  if (!decoded.ok) return { kind: 'invalid', problem: decoded.problem };
  const frame = decoded.frame;
  if (frame.type === MessageType.Error) {
    return {
      kind: 'error',
      code: frame.errorCode ?? 0,
      message: errorText(frame.payload),
      event: frame.event,
      sessionId: frame.sessionId,
    };
  }
  if (frame.type === MessageType.AudioOnlyResponse) {
    if (frame.event !== undefined && frame.event !== ServerEvent.TTSResponse)
      return { kind: 'ignored', event: frame.event };
    return { kind: 'audio', audio: frame.payload, sessionId: frame.sessionId };
  }
  if (frame.type !== MessageType.FullServerResponse)
    return { kind: 'invalid', problem: `client message type ${frame.type} from the server` };
  if (frame.event === undefined) return { kind: 'invalid', problem: 'JSON frame without an event number' };
  const name = EVENT_NAMES.get(frame.event);
  if (name === undefined || name === 'TTSResponse') return { kind: 'ignored', event: frame.event };
  let json: unknown = {};
  if (frame.payload.length > 0) {
    try {
      json = JSON.parse(Buffer.from(frame.payload).toString('utf8'));
    } catch {
      return { kind: 'invalid', problem: `${name}: payload is not JSON` };
    }
  }
  const body = serverEventSchemas[name].safeParse(json);
  if (!body.success) {
    const issue = body.error.issues[0];
    return {
      kind: 'invalid',
      problem: `${name}: ${issue?.path.join('.') ?? ''} ${issue?.message ?? ''}`.trim(),
    };
  }
  return { kind: 'event', event: { name, ...body.data } as ServerJsonEvent, sessionId: frame.sessionId };
}

const errorPayload = z.object({ error: z.string() });

/** Error frames carry `{"error": "..."}`; anything else is shown as text. */
function errorText(payload: Uint8Array): string {
  const text = Buffer.from(payload).toString('utf8');
  try {
    const parsed = errorPayload.safeParse(JSON.parse(text));
    if (parsed.success) return parsed.data.error;
  } catch {
    /* not JSON: use the text */
  }
  return text;
}
