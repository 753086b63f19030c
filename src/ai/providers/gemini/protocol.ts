import { z } from 'zod';
import type { ToolDeclaration } from '../../realtime.js';

/**
 * Gemini Live (BidiGenerateContent) wire format, for both the Gemini Developer API and Vertex AI:
 * endpoints, the server messages voxgate acts on as schemas, and builders for the client messages it
 * sends. Pure: no I/O, no state (pipecat's serializer habit). Shapes follow providers.md §2.
 */

export type GeminiBackend = 'gemini-api' | 'vertex';

/** Caller audio we send: 16-bit LE PCM, mono, 16 kHz (the native input rate). */
export const INPUT_SAMPLE_RATE = 16_000;
export const INPUT_MIME_TYPE = `audio/pcm;rate=${INPUT_SAMPLE_RATE}`;
/** Model audio the server sends: 16-bit LE PCM, mono, 24 kHz. */
export const OUTPUT_SAMPLE_RATE = 24_000;

const GEMINI_API_DEFAULT_BASE = 'https://generativelanguage.googleapis.com';
const GEMINI_API_VERSION = 'v1beta';
/** The SDK's default Vertex API version; live features (resumption, transcription) are there first. */
const VERTEX_API_VERSION = 'v1beta1';
/** Vertex multi-region locations, served from `aiplatform.{loc}.rep.googleapis.com` (js-genai). */
const VERTEX_MULTI_REGIONS = new Set(['us', 'eu']);

export const GEMINI_API_PATH = `/ws/google.ai.generativelanguage.${GEMINI_API_VERSION}.GenerativeService.BidiGenerateContent`;
export const VERTEX_PATH = `/ws/google.cloud.aiplatform.${VERTEX_API_VERSION}.LlmBidiService/BidiGenerateContent`;

export interface EndpointConfig {
  backend: GeminiBackend;
  apiKey: string;
  location: string;
  /** http(s):// or ws(s):// base; undefined = Google's endpoint for the backend (and location). */
  baseUrl: string | undefined;
}

export function defaultBaseUrl(backend: GeminiBackend, location: string): string {
  if (backend === 'gemini-api') return GEMINI_API_DEFAULT_BASE;
  if (location === 'global') return 'https://aiplatform.googleapis.com';
  if (VERTEX_MULTI_REGIONS.has(location)) return `https://aiplatform.${location}.rep.googleapis.com`;
  return `https://${location}-aiplatform.googleapis.com`;
}

/**
 * The WebSocket URL for the backend: `http:` becomes `ws:` and `https:` becomes `wss:` (ws:/wss: pass
 * through), any path prefix of the base is kept. The Gemini API key travels in `?key=` as the SDK does;
 * the URL therefore is a secret and must never be logged (use redactedUrl).
 */
export function liveUrl(config: EndpointConfig): URL {
  const url = new URL(config.baseUrl ?? defaultBaseUrl(config.backend, config.location));
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  else if (url.protocol !== 'ws:' && url.protocol !== 'wss:')
    throw new TypeError(`unsupported base URL scheme ${url.protocol} (want http, https, ws or wss)`);
  const prefix = url.pathname.replace(/\/+$/, '');
  url.search = '';
  url.hash = '';
  if (config.backend === 'gemini-api') {
    url.pathname = `${prefix}${GEMINI_API_PATH}`;
    if (config.apiKey !== '') url.searchParams.set('key', config.apiKey);
  } else {
    url.pathname = `${prefix}${VERTEX_PATH}`;
  }
  return url;
}

/** The URL without its query (which holds the API key), for logs and error messages. */
export function redactedUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

/** `models/<m>` on the Gemini API; the full publisher resource name on Vertex. Full names pass through. */
export function modelResource(
  backend: GeminiBackend,
  model: string,
  project: string,
  location: string,
): string {
  if (model.startsWith('models/') || model.startsWith('projects/')) return model;
  return backend === 'gemini-api'
    ? `models/${model}`
    : `projects/${project}/locations/${location}/publishers/google/models/${model}`;
}

// ---- server messages -----------------------------------------------------------------------------

/** protobuf Duration in JSON: "50s", "0.250s"; tolerated as {seconds, nanos} too. Undefined if odd. */
const duration = z
  .union([
    z.string(),
    z.object({ seconds: z.union([z.string(), z.number()]).optional(), nanos: z.number().optional() }),
  ])
  .transform((value): number | undefined => {
    if (typeof value === 'string') {
      const m = /^(\d+(?:\.\d+)?)s$/.exec(value.trim());
      return m?.[1] === undefined ? undefined : Math.round(Number(m[1]) * 1000);
    }
    const seconds = Number(value.seconds ?? 0);
    if (!Number.isFinite(seconds)) return undefined;
    return Math.round(seconds * 1000 + (value.nanos ?? 0) / 1e6);
  });

const part = z.object({
  text: z.string().optional(),
  thought: z.boolean().optional(),
  inlineData: z.object({ mimeType: z.string().optional(), data: z.string() }).optional(),
});

const transcription = z.object({ text: z.string().optional(), finished: z.boolean().optional() });

const serverContent = z.object({
  modelTurn: z.object({ parts: z.array(part).optional() }).optional(),
  interrupted: z.boolean().optional(),
  generationComplete: z.boolean().optional(),
  turnComplete: z.boolean().optional(),
  inputTranscription: transcription.optional(),
  outputTranscription: transcription.optional(),
});

const functionCall = z.object({
  /** Always set by the Gemini API; may be absent on Vertex. */
  id: z.string().optional(),
  name: z.string(),
  args: z.record(z.string(), z.unknown()).optional(),
});

/** One server message. Each normally carries one of these keys; usageMetadata may ride along. */
const serverMessage = z.object({
  setupComplete: z.object({ sessionId: z.string().optional() }).optional(),
  serverContent: serverContent.optional(),
  toolCall: z.object({ functionCalls: z.array(functionCall).optional() }).optional(),
  toolCallCancellation: z.object({ ids: z.array(z.string()).optional() }).optional(),
  goAway: z.object({ timeLeft: duration.optional() }).optional(),
  sessionResumptionUpdate: z
    .object({ newHandle: z.string().optional(), resumable: z.boolean().optional() })
    .optional(),
  usageMetadata: z.object({ totalTokenCount: z.number().optional() }).optional(),
});

export type ServerMessage = z.output<typeof serverMessage>;
export type ServerContent = z.output<typeof serverContent>;
export type FunctionCall = z.output<typeof functionCall>;

const KNOWN_KEYS = new Set(Object.keys(serverMessage.shape));

export type Decoded =
  | { kind: 'message'; message: ServerMessage }
  | { kind: 'ignored'; keys: string[] }
  | { kind: 'invalid'; problem: string };

/** Parses one frame's text (the server sends JSON in binary frames). Never throws. */
export function decodeServerMessage(text: string): Decoded {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { kind: 'invalid', problem: 'not JSON' };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    return { kind: 'invalid', problem: 'not a JSON object' };
  const keys = Object.keys(json);
  if (!keys.some((k) => KNOWN_KEYS.has(k))) return { kind: 'ignored', keys };
  const parsed = serverMessage.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { kind: 'invalid', problem: `${issue?.path.join('.') ?? ''} ${issue?.message ?? ''}`.trim() };
  }
  return { kind: 'message', message: parsed.data };
}

/** Rate of an `audio/pcm;rate=N` mime type; undefined if not PCM. A missing rate means the default. */
export function pcmRate(mimeType: string | undefined): number | undefined {
  if (mimeType === undefined) return OUTPUT_SAMPLE_RATE;
  const m = /^audio\/(?:pcm|l16)(?:;\s*rate=(\d+))?/i.exec(mimeType.trim());
  if (m === null) return undefined;
  return m[1] === undefined ? OUTPUT_SAMPLE_RATE : Number(m[1]);
}

// ---- client messages -----------------------------------------------------------------------------

export interface SetupConfig {
  /** Full resource name (modelResource). */
  model: string;
  instructions: string;
  /** Prebuilt voice name; empty = the model's default voice. */
  voice: string;
  tools: readonly ToolDeclaration[];
  /** Resumption handle of the session to continue; undefined = a new session. */
  resumptionHandle: string | undefined;
}

/**
 * The `setup` message. generationConfig holds modalities and voice; transcription, VAD, resumption and
 * compression are top-level setup fields (js-genai's live converter).
 */
export function setupMessage(config: SetupConfig): object {
  return {
    setup: {
      model: config.model,
      generationConfig: {
        responseModalities: ['AUDIO'],
        ...(config.voice === ''
          ? {}
          : { speechConfig: { voiceConfig: { prebuiltVoiceConfig: { voiceName: config.voice } } } }),
      },
      ...(config.instructions === ''
        ? {}
        : { systemInstruction: { parts: [{ text: config.instructions }] } }),
      ...(config.tools.length === 0
        ? {}
        : { tools: [{ functionDeclarations: config.tools.map(functionDeclaration) }] }),
      realtimeInputConfig: {
        automaticActivityDetection: { disabled: false },
        activityHandling: 'START_OF_ACTIVITY_INTERRUPTS',
      },
      inputAudioTranscription: {},
      outputAudioTranscription: {},
      sessionResumption: config.resumptionHandle === undefined ? {} : { handle: config.resumptionHandle },
      contextWindowCompression: { slidingWindow: {} },
    },
  };
}

export function functionDeclaration(tool: ToolDeclaration): object {
  return { name: tool.name, description: tool.description, parameters: toGeminiSchema(tool.parameters) };
}

/** Keys of Gemini's OpenAPI-subset `Schema` that carry over from JSON Schema unchanged. */
const PLAIN_SCHEMA_KEYS = [
  'format',
  'title',
  'description',
  'nullable',
  'enum',
  'required',
  'minItems',
  'maxItems',
  'minProperties',
  'maxProperties',
  'minLength',
  'maxLength',
  'pattern',
  'minimum',
  'maximum',
  'default',
  'example',
  'propertyOrdering',
] as const;

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * JSON Schema → Gemini `Schema`: type names become the enum's upper case (`object` → `OBJECT`), a type
 * list with "null" becomes `nullable`, `const` becomes a one-value enum, and keys the API does not know
 * (additionalProperties, $schema, …) are dropped, since the server rejects unknown fields.
 */
export function toGeminiSchema(schema: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const type = schema.type;
  const types = (Array.isArray(type) ? type : [type]).filter((t): t is string => typeof t === 'string');
  const concrete = types.filter((t) => t !== 'null');
  if (concrete[0] !== undefined) out.type = concrete[0].toUpperCase();
  if (types.includes('null')) out.nullable = true;
  for (const key of PLAIN_SCHEMA_KEYS) if (schema[key] !== undefined) out[key] = schema[key];
  if (schema.const !== undefined && out.enum === undefined) out.enum = [schema.const];
  if (isRecord(schema.properties)) {
    const properties: Record<string, unknown> = {};
    for (const [name, sub] of Object.entries(schema.properties))
      if (isRecord(sub)) properties[name] = toGeminiSchema(sub);
    out.properties = properties;
  }
  if (isRecord(schema.items)) out.items = toGeminiSchema(schema.items);
  if (Array.isArray(schema.anyOf)) out.anyOf = schema.anyOf.filter(isRecord).map(toGeminiSchema);
  return out;
}

const base64 = (bytes: Uint8Array): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');

/** Caller audio, already base64: the session buffers encoded chunks during a reconnect. */
export const realtimeAudio = (data: string): object => ({
  realtimeInput: { audio: { data, mimeType: INPUT_MIME_TYPE } },
});

export const encodeAudio = base64;

/** An in-order user turn; with turnComplete the model answers it (used for the greeting). */
export const userTurn = (text: string): object => ({
  clientContent: { turns: [{ role: 'user', parts: [{ text }] }], turnComplete: true },
});

/** `id` is mandatory on the Gemini API (the SDK throws without it); Vertex calls may have none. */
export const toolResponse = (id: string | undefined, name: string, output: unknown): object => ({
  toolResponse: { functionResponses: [{ ...(id === undefined ? {} : { id }), name, response: { output } }] },
});
