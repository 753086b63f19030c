import { z } from 'zod';
import type { G711Codec } from '../../../core/audio.js';

/**
 * OpenAI Realtime GA wire format: the server events voxgate acts on, as schemas, and builders for the
 * client events it sends. Pure: no I/O, no state (pipecat's serializer habit).
 */

const errorBody = z.object({
  type: z.string().optional(),
  code: z.string().nullish(),
  message: z.string().optional(),
  param: z.string().nullish(),
});

export const serverEventSchemas = {
  'session.created': z.object({ session: z.object({ id: z.string().optional() }).passthrough() }),
  'session.updated': z.object({ session: z.object({}).passthrough() }),
  error: z.object({ error: errorBody }),
  'response.created': z.object({ response: z.object({ id: z.string() }) }),
  'response.done': z.object({ response: z.object({ id: z.string(), status: z.string().optional() }) }),
  'response.output_audio.delta': z.object({
    response_id: z.string(),
    item_id: z.string(),
    delta: z.string(),
  }),
  'input_audio_buffer.speech_started': z.object({
    item_id: z.string().optional(),
    audio_start_ms: z.number().optional(),
  }),
  'conversation.item.input_audio_transcription.completed': z.object({ transcript: z.string() }),
  'response.output_audio_transcript.done': z.object({ transcript: z.string() }),
  'response.function_call_arguments.done': z.object({
    call_id: z.string(),
    name: z.string(),
    arguments: z.string(),
  }),
} as const;

export type ServerEventType = keyof typeof serverEventSchemas;
export type ServerEvent = {
  [K in ServerEventType]: { type: K } & z.output<(typeof serverEventSchemas)[K]>;
}[ServerEventType];

const envelope = z.object({ type: z.string() }).passthrough();

export type Decoded =
  | { kind: 'event'; event: ServerEvent }
  | { kind: 'ignored'; type: string }
  | { kind: 'invalid'; problem: string };

/** Parses one text frame. Unknown types are 'ignored'; malformed frames are 'invalid', never thrown. */
export function decodeServerEvent(text: string): Decoded {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { kind: 'invalid', problem: 'not JSON' };
  }
  const head = envelope.safeParse(json);
  if (!head.success) return { kind: 'invalid', problem: 'no type field' };
  const type = head.data.type;
  if (!(type in serverEventSchemas)) return { kind: 'ignored', type };
  const schema = serverEventSchemas[type as ServerEventType];
  const body = schema.safeParse(json);
  if (!body.success)
    return {
      kind: 'invalid',
      problem:
        `${type}: ${body.error.issues[0]?.path.join('.') ?? ''} ${body.error.issues[0]?.message ?? ''}`.trim(),
    };
  return { kind: 'event', event: { type, ...body.data } as ServerEvent };
}

export interface SessionConfig {
  model: string;
  instructions: string;
  voice: string;
  codec: G711Codec;
  transcriptionModel: string;
}

const FORMAT: Readonly<Record<G711Codec, string>> = { PCMU: 'audio/pcmu', PCMA: 'audio/pcma' };

/** GA `session.update`: G.711 in and out in the call's codec, so audio passes through untouched. */
export function sessionUpdate(config: SessionConfig): object {
  const format = { type: FORMAT[config.codec] };
  return {
    type: 'session.update',
    session: {
      type: 'realtime',
      model: config.model,
      output_modalities: ['audio'],
      instructions: config.instructions,
      audio: {
        input: {
          format,
          turn_detection: { type: 'server_vad', create_response: true, interrupt_response: true },
          ...(config.transcriptionModel === ''
            ? {}
            : { transcription: { model: config.transcriptionModel } }),
        },
        output: { format, voice: config.voice },
      },
    },
  };
}

export const appendAudio = (audio: Uint8Array): object => ({
  type: 'input_audio_buffer.append',
  audio: Buffer.from(audio.buffer, audio.byteOffset, audio.byteLength).toString('base64'),
});

export const createResponse = (instructions?: string): object =>
  instructions === undefined
    ? { type: 'response.create' }
    : { type: 'response.create', response: { instructions } };

/** `audio_end_ms` must be an integer no larger than the audio received (else the server errors). */
export const truncateItem = (itemId: string, audioEndMs: number): object => ({
  type: 'conversation.item.truncate',
  item_id: itemId,
  content_index: 0,
  audio_end_ms: Math.max(0, Math.floor(audioEndMs)),
});

export const functionCallOutput = (callId: string, output: unknown): object => ({
  type: 'conversation.item.create',
  item: { type: 'function_call_output', call_id: callId, output: JSON.stringify(output) },
});
