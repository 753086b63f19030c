// Pure Gemini Live wire helpers: endpoint URLs, JSON Schema → Gemini Schema, server message decoding.
import { describe, expect, it } from 'vitest';
import {
  decodeServerMessage,
  liveUrl,
  modelResource,
  pcmRate,
  redactedUrl,
  toGeminiSchema,
  type EndpointConfig,
} from '../../../src/ai/providers/gemini/protocol.js';

const GEMINI_PATH = '/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent';
const VERTEX_PATH = '/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent';

const gemini = (baseUrl: string | undefined, apiKey = 'k'): EndpointConfig => ({
  backend: 'gemini-api',
  apiKey,
  location: '',
  baseUrl,
});
const vertex = (location: string, baseUrl?: string): EndpointConfig => ({
  backend: 'vertex',
  apiKey: '',
  location,
  baseUrl,
});

describe('liveUrl', () => {
  it('defaults to Google endpoints over wss', () => {
    expect(liveUrl(gemini(undefined, 'AIza x')).toString()).toBe(
      `wss://generativelanguage.googleapis.com${GEMINI_PATH}?key=AIza+x`,
    );
    expect(liveUrl(vertex('us-central1')).toString()).toBe(
      `wss://us-central1-aiplatform.googleapis.com${VERTEX_PATH}`,
    );
    expect(liveUrl(vertex('global')).toString()).toBe(`wss://aiplatform.googleapis.com${VERTEX_PATH}`);
    expect(liveUrl(vertex('eu')).toString()).toBe(`wss://aiplatform.eu.rep.googleapis.com${VERTEX_PATH}`);
  });

  it('maps an http:// base to ws:// and https:// to wss://, keeping host, port and path prefix', () => {
    expect(liveUrl(gemini('http://127.0.0.1:9000')).toString()).toBe(
      `ws://127.0.0.1:9000${GEMINI_PATH}?key=k`,
    );
    expect(liveUrl(gemini('https://proxy.example/gemini/')).toString()).toBe(
      `wss://proxy.example/gemini${GEMINI_PATH}?key=k`,
    );
    expect(liveUrl(vertex('us-central1', 'http://localhost:8080')).toString()).toBe(
      `ws://localhost:8080${VERTEX_PATH}`,
    );
    expect(liveUrl(vertex('x', 'wss://gw.example')).protocol).toBe('wss:');
    expect(() => liveUrl(gemini('ftp://x'))).toThrow(TypeError);
  });

  it('leaves the key out when it is empty, and out of the redacted form always', () => {
    expect(liveUrl(gemini('http://h', '')).search).toBe('');
    expect(redactedUrl(liveUrl(gemini('http://h', 'secret')))).toBe(`ws://h${GEMINI_PATH}`);
  });
});

describe('modelResource', () => {
  it('prefixes models/ on the Gemini API and the publisher path on Vertex; full names pass through', () => {
    expect(modelResource('gemini-api', 'm1', 'p', 'l')).toBe('models/m1');
    expect(modelResource('vertex', 'm1', 'p', 'l')).toBe(
      'projects/p/locations/l/publishers/google/models/m1',
    );
    expect(modelResource('vertex', 'projects/a/locations/b/publishers/google/models/c', 'p', 'l')).toBe(
      'projects/a/locations/b/publishers/google/models/c',
    );
  });
});

describe('toGeminiSchema', () => {
  it('upper-cases types, turns a null type into nullable, const into enum, and drops unknown keywords', () => {
    expect(
      toGeminiSchema({
        type: 'object',
        additionalProperties: false,
        properties: {
          reason: { type: 'string', enum: ['a', 'b'], description: 'why' },
          count: { type: ['integer', 'null'], minimum: 0 },
          tags: { type: 'array', items: { type: 'string', const: 'x' } },
        },
        required: ['reason'],
      }),
    ).toEqual({
      type: 'OBJECT',
      properties: {
        reason: { type: 'STRING', enum: ['a', 'b'], description: 'why' },
        count: { type: 'INTEGER', nullable: true, minimum: 0 },
        tags: { type: 'ARRAY', items: { type: 'STRING', enum: ['x'] } },
      },
      required: ['reason'],
    });
  });
});

describe('decodeServerMessage', () => {
  it('parses the messages voxgate acts on, with goAway.timeLeft in ms', () => {
    const decoded = decodeServerMessage(
      JSON.stringify({ goAway: { timeLeft: '1.5s' }, usageMetadata: { totalTokenCount: 3 } }),
    );
    expect(decoded).toEqual({
      kind: 'message',
      message: { goAway: { timeLeft: 1500 }, usageMetadata: { totalTokenCount: 3 } },
    });
    const content = decodeServerMessage(
      JSON.stringify({
        serverContent: {
          modelTurn: {
            parts: [{ inlineData: { mimeType: 'audio/pcm;rate=24000', data: 'AAA=' } }, { text: 'hi' }],
          },
          turnComplete: true,
        },
      }),
    );
    expect(content.kind).toBe('message');
  });

  it('reports malformed and unknown messages instead of throwing', () => {
    expect(decodeServerMessage('{').kind).toBe('invalid');
    expect(decodeServerMessage('[1]').kind).toBe('invalid');
    expect(decodeServerMessage(JSON.stringify({ toolCall: { functionCalls: [{ id: 1 }] } })).kind).toBe(
      'invalid',
    );
    expect(decodeServerMessage(JSON.stringify({ voiceActivity: {} }))).toEqual({
      kind: 'ignored',
      keys: ['voiceActivity'],
    });
  });
});

describe('pcmRate', () => {
  it('reads the rate of audio/pcm mime types', () => {
    expect(pcmRate('audio/pcm;rate=24000')).toBe(24000);
    expect(pcmRate('audio/pcm; rate=16000')).toBe(16000);
    expect(pcmRate('audio/pcm')).toBe(24000);
    expect(pcmRate('audio/ogg')).toBeUndefined();
  });
});
