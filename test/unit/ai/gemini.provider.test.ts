// GeminiLiveProvider against the protocol-faithful fake Live server, over real loopback WebSockets
// (base URL http://127.0.0.1:port, so the provider must dial ws://).
import { createServer } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ProviderError } from '../../../src/core/errors.js';
import type {
  AgentAudio,
  RealtimeSession,
  SessionClosed,
  SessionOptions,
  ToolCall,
  ToolDeclaration,
  Transcript,
} from '../../../src/ai/realtime.js';
import {
  GeminiLiveProvider,
  type GeminiConfig,
  type GeminiDeps,
} from '../../../src/ai/providers/gemini/session.js';
import {
  FakeGeminiLive,
  GEMINI_API_PATH,
  VERTEX_PATHS,
  type FakeConnectionHandle,
  type FakeGeminiLiveOptions,
} from '../../fakes/gemini-live.js';

const log = pino({ level: 'silent' });
const API_KEY = 'AIza-test-key-123';
const MODEL = 'gemini-2.5-flash-native-audio-preview-12-2025';
/** Bound on every wait for the fake or the provider (all loopback, so generous). */
const WAIT_MS = 3_000;
/** 20 ms of 16 kHz PCM16. */
const FRAME_BYTES = 640;
const SAMPLES_PER_MS = 16;

/** A loud 440 Hz tone, PCM16 16 kHz: the fake's energy VAD hears it as speech. */
function speech(ms: number): Buffer {
  const n = ms * SAMPLES_PER_MS;
  const out = Buffer.alloc(n * 2);
  for (let i = 0; i < n; i++)
    out.writeInt16LE(Math.round(10_000 * Math.sin((2 * Math.PI * 440 * i) / 16_000)), i * 2);
  return out;
}
const silence = (ms: number): Buffer => Buffer.alloc(ms * SAMPLES_PER_MS * 2);

function sendFrames(session: RealtimeSession, audio: Buffer): void {
  for (let i = 0; i < audio.length; i += FRAME_BYTES) session.sendAudio(audio.subarray(i, i + FRAME_BYTES));
}

// ---- per-test resources, always released ------------------------------------------------------------

let fake: FakeGeminiLive | undefined;
const sessions: RealtimeSession[] = [];

async function startFake(opts: FakeGeminiLiveOptions = {}): Promise<FakeGeminiLive> {
  fake = new FakeGeminiLive(opts);
  await fake.start();
  return fake;
}

function geminiConfig(overrides: Partial<GeminiConfig> = {}): GeminiConfig {
  return {
    backend: 'gemini-api',
    apiKey: API_KEY,
    project: '',
    location: '',
    baseUrl: fake!.httpUrl,
    model: MODEL,
    voice: 'Kore',
    connectTimeoutMs: 2_000,
    ...overrides,
  };
}

const baseOptions: SessionOptions = {
  codec: 'PCMU',
  instructions: 'You are a test agent.',
  greeting: '',
  log,
};

interface Recorded {
  audio: AgentAudio[];
  speechStarted: number;
  transcripts: Transcript[];
  toolCalls: ToolCall[];
  errors: Error[];
  closes: SessionClosed[];
  /** Every event in order, for ordering assertions. */
  order: string[];
}

function record(session: RealtimeSession): Recorded {
  const rec: Recorded = {
    audio: [],
    speechStarted: 0,
    transcripts: [],
    toolCalls: [],
    errors: [],
    closes: [],
    order: [],
  };
  session.on('audio', (a) => {
    rec.audio.push({ data: Uint8Array.from(a.data), itemId: a.itemId });
    rec.order.push(`audio:${a.itemId}`);
  });
  session.on('speechStarted', () => {
    rec.speechStarted++;
    rec.order.push('speechStarted');
  });
  session.on('transcript', (t) => {
    rec.transcripts.push(t);
    rec.order.push(`transcript:${t.role}`);
  });
  session.on('toolCall', (c) => rec.toolCalls.push(c));
  session.on('error', (e) => rec.errors.push(e));
  session.on('close', (c) => rec.closes.push(c));
  return rec;
}

async function open(
  overrides: Partial<GeminiConfig> = {},
  options: Partial<SessionOptions> = {},
  deps: GeminiDeps = {},
): Promise<{ session: RealtimeSession; conn: FakeConnectionHandle; rec: Recorded }> {
  const server = fake!;
  const before = server.connections.length;
  const session = await new GeminiLiveProvider(geminiConfig(overrides), deps).connect({
    ...baseOptions,
    ...options,
  });
  sessions.push(session);
  const conn = await server.waitForConnection(before);
  return { session, conn, rec: record(session) };
}

async function connectError(
  overrides: Partial<GeminiConfig> = {},
  options: Partial<SessionOptions> = {},
  deps: GeminiDeps = {},
): Promise<ProviderError> {
  const error: unknown = await new GeminiLiveProvider(geminiConfig(overrides), deps)
    .connect({ ...baseOptions, ...options })
    .then((s) => {
      sessions.push(s);
      return undefined;
    })
    .catch((e: unknown) => e);
  expect(error).toBeInstanceOf(ProviderError);
  return error as ProviderError;
}

const bytesOf = (audio: AgentAudio[]): Buffer => Buffer.concat(audio.map((a) => a.data));
const serverContents = (conn: FakeConnectionHandle): Record<string, unknown>[] =>
  conn.sent.map((s) => s.message.serverContent).filter((c): c is Record<string, unknown> => c !== undefined);

afterEach(async () => {
  for (const s of sessions.splice(0)) s.close();
  const server = fake;
  fake = undefined;
  if (server) {
    // No socket may outlive the test: every connection the fake saw is closed.
    await vi.waitFor(() => expect(server.connections.every((c) => c.closed)).toBe(true), {
      timeout: WAIT_MS,
    });
    await server.stop();
  }
});

// ---- tests ---------------------------------------------------------------------------------------------

const transferTool: ToolDeclaration = {
  name: 'transfer_call',
  description: 'Transfer the caller to a person.',
  parameters: {
    $schema: 'http://json-schema.org/draft-07/schema#',
    type: 'object',
    properties: {
      dest: { type: 'string', description: 'E.164 number' },
      urgent: { type: ['boolean', 'null'] },
    },
    required: ['dest'],
    additionalProperties: false,
  },
};

describe('GeminiLiveProvider.connect (Gemini Developer API)', () => {
  it('sends one setup with model, voice, instructions, AUDIO, server VAD, transcription, resumption, sliding-window compression and tools, and resolves only after setupComplete', async () => {
    const server = await startFake({ setupCompleteDelayMs: 150 });
    let completedAtResolve: boolean | undefined;
    const session = await new GeminiLiveProvider(geminiConfig({ voice: 'Puck' }))
      .connect({ ...baseOptions, instructions: 'Be brief.', tools: [transferTool] })
      .then((s) => {
        completedAtResolve = server.connections[0]?.setupCompleted;
        return s;
      });
    sessions.push(session);
    expect(completedAtResolve).toBe(true);
    const conn = server.connections[0]!;
    expect(conn.path).toBe(GEMINI_API_PATH);
    expect(conn.apiKey).toBe(API_KEY);
    expect(conn.headers.authorization).toBeUndefined();
    expect(conn.clientMessages.map((m) => Object.keys(m.message))).toEqual([['setup']]);
    expect(conn.setup).toEqual({
      model: `models/${MODEL}`,
      generationConfig: {
        responseModalities: ['AUDIO'],
        speechConfig: { voiceConfig: { prebuiltVoiceConfig: { voiceName: 'Puck' } } },
      },
      systemInstruction: { parts: [{ text: 'Be brief.' }] },
      tools: [
        {
          functionDeclarations: [
            {
              name: 'transfer_call',
              description: 'Transfer the caller to a person.',
              parameters: {
                type: 'OBJECT',
                properties: {
                  dest: { type: 'STRING', description: 'E.164 number' },
                  urgent: { type: 'BOOLEAN', nullable: true },
                },
                required: ['dest'],
              },
            },
          ],
        },
      ],
      realtimeInputConfig: {
        automaticActivityDetection: { disabled: false },
        activityHandling: 'START_OF_ACTIVITY_INTERRUPTS',
      },
      inputAudioTranscription: {},
      outputAudioTranscription: {},
      sessionResumption: {},
      contextWindowCompression: { slidingWindow: {} },
    });
    expect(session.provider).toBe('gemini');
    expect(session.capabilities).toEqual({
      truncate: false,
      toolCalls: true,
      serverVad: true,
      g711Passthrough: false,
    });
    expect(session.audioFormats).toEqual({
      input: { encoding: 'pcm16', sampleRate: 16000 },
      output: { encoding: 'pcm16', sampleRate: 24000 },
    });
  });

  it('leaves tools out of setup when none are offered, and asks for a greeting with a clientContent turn', async () => {
    const server = await startFake();
    const { conn, rec } = await open({}, { greeting: 'Greet the caller and ask how you can help.' });
    expect(conn.setup).not.toHaveProperty('tools');
    await vi.waitFor(() => expect(conn.modelTurns[0]?.status).toBe('complete'), { timeout: WAIT_MS });
    expect(conn.clientMessages[1]?.message).toEqual({
      clientContent: {
        turns: [{ role: 'user', parts: [{ text: 'Greet the caller and ask how you can help.' }] }],
        turnComplete: true,
      },
    });
    expect(conn.modelTurns[0]?.origin).toBe('client');
    await vi.waitFor(() => expect(bytesOf(rec.audio).length).toBe(conn.modelTurns[0]!.audioBytesSent), {
      timeout: WAIT_MS,
    });
    expect(server.connections).toHaveLength(1);
  });

  it('respond() asks the model to speak with a user turn, mid-call', async () => {
    await startFake();
    const { session, conn, rec } = await open();
    session.respond('Tell the caller the transfer failed.');
    await vi.waitFor(() => expect(conn.modelTurns[0]?.status).toBe('complete'), { timeout: WAIT_MS });
    expect(conn.textTurns).toEqual(['Tell the caller the transfer failed.']);
    await vi.waitFor(() => expect(bytesOf(rec.audio).length).toBe(conn.modelTurns[0]!.audioBytesSent), {
      timeout: WAIT_MS,
    });
  });

  it('sends no greeting turn when the greeting is empty', async () => {
    await startFake();
    const { conn, session } = await open();
    session.sendAudio(silence(20));
    await vi.waitFor(() => expect(conn.audioBytes).toBe(FRAME_BYTES), { timeout: WAIT_MS });
    expect(conn.clientMessages.some((m) => 'clientContent' in m.message)).toBe(false);
  });
});

describe('GeminiLiveProvider.connect (Vertex AI)', () => {
  it('dials the LlmBidiService path with a Bearer token from getAccessToken and the project/location model path', async () => {
    const server = await startFake({ accessToken: 'ya29.token-1' });
    const getAccessToken = vi.fn(() => Promise.resolve('ya29.token-1'));
    const { conn } = await open(
      {
        backend: 'vertex',
        apiKey: '',
        project: 'proj-42',
        location: 'us-central1',
        model: 'gemini-live-2.5-flash-native-audio',
      },
      {},
      { getAccessToken },
    );
    expect(getAccessToken).toHaveBeenCalledTimes(1);
    expect(conn.backend).toBe('vertex');
    expect(conn.path).toBe(VERTEX_PATHS[0]);
    expect(conn.headers.authorization).toBe('Bearer ya29.token-1');
    expect(conn.apiKey).toBeUndefined();
    expect(conn.setup?.model).toBe(
      'projects/proj-42/locations/us-central1/publishers/google/models/gemini-live-2.5-flash-native-audio',
    );
    expect(server.connections).toHaveLength(1);
  });

  it('fetches a fresh token for every connection', async () => {
    await startFake();
    let n = 0;
    const deps: GeminiDeps = { getAccessToken: () => Promise.resolve(`tok-${++n}`) };
    const vertex: Partial<GeminiConfig> = { backend: 'vertex', project: 'p', location: 'europe-west4' };
    const first = await open(vertex, {}, deps);
    const second = await open(vertex, {}, deps);
    expect(first.conn.bearer).toBe('tok-1');
    expect(second.conn.bearer).toBe('tok-2');
  });
});

describe('GeminiLiveSession audio, barge-in and transcripts', () => {
  it('streams caller audio as audio/pcm;rate=16000 and emits model audio (24 kHz) of one turn under one item id, transcripts as whole utterances', async () => {
    await startFake({
      userTranscript: 'I need a plumber today.',
      agentTranscript: 'Sure, let me help you with that.',
    });
    const { session, conn, rec } = await open();
    const sent = Buffer.concat([speech(400), silence(600)]);
    sendFrames(session, sent);
    await vi.waitFor(() => expect(conn.modelTurns[0]?.status).toBe('complete'), { timeout: WAIT_MS });
    await vi.waitFor(() => expect(rec.transcripts).toHaveLength(2), { timeout: WAIT_MS });
    expect(conn.audio().equals(sent)).toBe(true);
    expect([...conn.audioMimeTypes]).toEqual(['audio/pcm;rate=16000']);
    // The fake sent the reply audio as audio/pcm;rate=24000 chunks; the session passes the bytes through.
    const sentChunks = serverContents(conn).flatMap((c) => {
      const parts = (
        c.modelTurn as { parts?: { inlineData?: { mimeType: string; data: string } }[] } | undefined
      )?.parts;
      return parts?.map((p) => p.inlineData!) ?? [];
    });
    expect(new Set(sentChunks.map((c) => c.mimeType))).toEqual(new Set(['audio/pcm;rate=24000']));
    expect(
      bytesOf(rec.audio).equals(Buffer.concat(sentChunks.map((c) => Buffer.from(c.data, 'base64')))),
    ).toBe(true);
    expect(new Set(rec.audio.map((a) => a.itemId)).size).toBe(1);
    // The fake streams both transcripts word by word; each entry is one whole utterance.
    expect(rec.transcripts).toEqual([
      { role: 'caller', text: 'I need a plumber today.' },
      { role: 'agent', text: 'Sure, let me help you with that.' },
    ]);
    expect(rec.order.indexOf('transcript:caller')).toBeLessThan(
      rec.order.findIndex((e) => e.startsWith('audio:')),
    );
    expect(rec.order.at(-1)).toBe('transcript:agent');
  });

  it('gives each model turn its own item id', async () => {
    await startFake();
    const { session, conn, rec } = await open({}, { greeting: 'Say hello.' });
    await vi.waitFor(() => expect(conn.modelTurns[0]?.status).toBe('complete'), { timeout: WAIT_MS });
    sendFrames(session, Buffer.concat([speech(300), silence(600)]));
    await vi.waitFor(() => expect(conn.modelTurns[1]?.status).toBe('complete'), { timeout: WAIT_MS });
    await vi.waitFor(() => expect(rec.transcripts.filter((t) => t.role === 'agent')).toHaveLength(2), {
      timeout: WAIT_MS,
    });
    const ids = [...new Set(rec.audio.map((a) => a.itemId))];
    expect(ids).toHaveLength(2);
  });

  it('on serverContent.interrupted emits speechStarted and drops the rest of that turn, then plays the next turn', async () => {
    const chunkMs = 40;
    await startFake({
      replyAudio: (turn) => Buffer.alloc(24 * 2 * 3_000, turn + 1), // 3 s per turn, a distinct byte per turn
      chunkMs,
      chunkIntervalMs: 20,
      chunksAfterInterrupt: 3,
    });
    const { session, conn, rec } = await open({}, { greeting: 'Say a long hello.' });
    await vi.waitFor(() => expect(rec.audio.length).toBeGreaterThanOrEqual(2), { timeout: WAIT_MS });
    sendFrames(session, speech(200)); // barge in
    await vi.waitFor(() => expect(rec.speechStarted).toBe(1), { timeout: WAIT_MS });
    const first = conn.modelTurns[0]!;
    expect(first.status).toBe('interrupted');
    expect(first.chunksAfterInterrupt).toBe(3);
    const firstId = rec.audio[0]!.itemId;
    // Finish the caller's turn so a second model turn follows.
    sendFrames(session, silence(600));
    await vi.waitFor(() => expect(conn.modelTurns[1]?.audioChunksSent).toBeGreaterThan(0), {
      timeout: WAIT_MS,
    });
    await vi.waitFor(() => expect(rec.audio.some((a) => a.itemId !== firstId)).toBe(true), {
      timeout: WAIT_MS,
    });
    const chunkBytes = chunkMs * 24 * 2;
    const played = rec.audio.filter((a) => a.itemId === firstId);
    // Everything sent before `interrupted` arrived; the 3 in-flight chunks after it were dropped.
    expect(bytesOf(played).length).toBe((first.audioChunksSent - first.chunksAfterInterrupt) * chunkBytes);
    const speechAt = rec.order.indexOf('speechStarted');
    expect(rec.order.slice(speechAt).includes(`audio:${firstId}`)).toBe(false);
    expect(rec.audio.filter((a) => a.itemId !== firstId).every((a) => a.data.every((b) => b === 2))).toBe(
      true,
    );
  });

  it('accepts server messages in text frames as well as binary, and ignores malformed or unknown ones', async () => {
    await startFake();
    const { conn, rec } = await open();
    conn.sendRaw('this is not json');
    conn.sendRaw(JSON.stringify({ somethingNew: { x: 1 } }));
    conn.sendRaw(JSON.stringify({ serverContent: { interrupted: 'yes' } }));
    conn.sendRaw(
      JSON.stringify({ serverContent: { outputTranscription: { text: 'From a text frame.' } } }),
      false,
    );
    conn.sendRaw(JSON.stringify({ serverContent: { turnComplete: true } }), true);
    await vi.waitFor(() => expect(rec.transcripts).toEqual([{ role: 'agent', text: 'From a text frame.' }]), {
      timeout: WAIT_MS,
    });
    expect(rec.speechStarted).toBe(0);
    expect(rec.closes).toEqual([]);
  });
});

describe('GeminiLiveSession tool calls', () => {
  it('emits toolCall with the server id and answers with toolResponse {id, name, response: {output}}; the model then speaks', async () => {
    await startFake();
    const { session, conn, rec } = await open({}, { tools: [transferTool] });
    const id = conn.sendToolCall('transfer_call', { dest: '+15550100' });
    await vi.waitFor(() => expect(rec.toolCalls).toHaveLength(1), { timeout: WAIT_MS });
    expect(rec.toolCalls[0]).toEqual({ callId: id, name: 'transfer_call', args: { dest: '+15550100' } });
    session.sendToolResult(id, { status: 'transferring' });
    await vi.waitFor(() => expect(conn.toolResponses).toHaveLength(1), { timeout: WAIT_MS });
    expect(conn.clientMessages.at(-1)?.message).toEqual({
      toolResponse: {
        functionResponses: [{ id, name: 'transfer_call', response: { output: { status: 'transferring' } } }],
      },
    });
    await vi.waitFor(() => expect(conn.modelTurns[0]?.origin).toBe('tool'), { timeout: WAIT_MS });
    await vi.waitFor(() => expect(rec.audio.length).toBeGreaterThan(0), { timeout: WAIT_MS });
  });

  it('ignores a result for a call the server cancelled (toolCallCancellation), and still answers later calls', async () => {
    await startFake();
    const { session, conn, rec } = await open({}, { tools: [transferTool] });
    const cancelled = conn.sendToolCall('transfer_call', { dest: '+1' });
    conn.sendToolCallCancellation([cancelled]);
    const kept = conn.sendToolCall('transfer_call', { dest: '+2' });
    await vi.waitFor(() => expect(rec.toolCalls).toHaveLength(2), { timeout: WAIT_MS });
    session.sendToolResult(cancelled, 'too late');
    session.sendToolResult('no-such-call', 'unknown');
    session.sendToolResult(kept, 'ok');
    await vi.waitFor(() => expect(conn.toolResponses).toHaveLength(1), { timeout: WAIT_MS });
    expect(conn.toolResponses[0]).toEqual({ id: kept, name: 'transfer_call', response: { output: 'ok' } });
    expect(conn.closed).toBe(false);
  });
});

describe('GeminiLiveProvider.connect failures', () => {
  it('rejects with http_401 when the Gemini API key is missing', async () => {
    await startFake();
    expect((await connectError({ apiKey: '' })).code).toBe('http_401');
  });

  it('rejects with setup_rejected when the server closes with 1007 at setup (invalid key)', async () => {
    const server = await startFake({ apiKey: 'the-right-key' });
    const error = await connectError({ apiKey: 'a-wrong-key' });
    expect(error.code).toBe('setup_rejected');
    expect(error.message).toContain('1007');
    await vi.waitFor(() => expect(server.connections[0]?.closeCode).toBe(1007), { timeout: WAIT_MS });
  });

  it('rejects with setup_rejected when the model name is refused (1008)', async () => {
    await startFake();
    expect((await connectError({ model: 'bad model name' })).code).toBe('setup_rejected');
  });

  it('rejects with http_401 when Vertex refuses the bearer token', async () => {
    await startFake({ accessToken: 'good' });
    const error = await connectError(
      { backend: 'vertex', project: 'p', location: 'us-central1' },
      {},
      { getAccessToken: () => Promise.resolve('stale') },
    );
    expect(error.code).toBe('http_401');
  });

  it('rejects with auth_failed when no Vertex token can be had', async () => {
    const server = await startFake();
    const error = await connectError(
      { backend: 'vertex', project: 'p', location: 'us-central1' },
      {},
      { getAccessToken: () => Promise.reject(new Error('no ADC')) },
    );
    expect(error.code).toBe('auth_failed');
    expect(server.upgradeAttempts).toBe(0);
  });

  it('rejects with http_<status> when the upgrade is refused', async () => {
    await startFake({ rejectUpgradeStatus: 503 });
    expect((await connectError()).code).toBe('http_503');
  });

  it('rejects with unreachable when nothing listens', async () => {
    await startFake();
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const p = (probe.address() as { port: number }).port;
        probe.close(() => resolve(p));
      });
    });
    expect((await connectError({ baseUrl: `http://127.0.0.1:${port}` })).code).toBe('unreachable');
  });

  it('rejects with timeout when setupComplete never comes, and closes the socket', async () => {
    const server = await startFake({ neverCompleteSetup: true });
    const started = Date.now();
    expect((await connectError({ connectTimeoutMs: 300 })).code).toBe('timeout');
    expect(Date.now() - started).toBeLessThan(WAIT_MS);
    await vi.waitFor(() => expect(server.connections[0]?.closed).toBe(true), { timeout: WAIT_MS });
  });

  it('rejects with aborted when the signal fires during connect, or was already aborted', async () => {
    const server = await startFake({ neverCompleteSetup: true });
    const controller = new AbortController();
    const pending = connectError({}, { signal: controller.signal });
    await server.waitForConnection(0);
    controller.abort();
    expect((await pending).code).toBe('aborted');
    expect((await connectError({}, { signal: AbortSignal.abort() })).code).toBe('aborted');
    expect(server.upgradeAttempts).toBe(1);
  });
});

describe('GeminiLiveSession.close', () => {
  it('closes with 1000, emits close {expected: true} once, and never reconnects', async () => {
    const server = await startFake();
    const { session, conn, rec } = await open();
    session.close();
    session.close();
    await vi.waitFor(() => expect(rec.closes).toHaveLength(1), { timeout: WAIT_MS });
    expect(rec.closes[0]?.expected).toBe(true);
    expect(conn.closeCode).toBe(1000);
    expect(conn.closedBy).toBe('client');
    session.sendAudio(silence(20)); // after close: dropped, no throw
    await new Promise((r) => setTimeout(r, 400));
    expect(server.upgradeAttempts).toBe(1);
    expect(rec.closes).toHaveLength(1);
  });
});
