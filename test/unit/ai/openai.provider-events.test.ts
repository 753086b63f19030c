// OpenAIRealtimeProvider against the protocol-faithful fake GA server, over a real loopback WebSocket.
import { createServer } from 'node:net';
import alawmulaw from 'alawmulaw';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ProviderError } from '../../../src/core/errors.js';
import type { G711Codec } from '../../../src/core/audio.js';
import type {
  AgentAudio,
  RealtimeSession,
  SessionClosed,
  SessionOptions,
  Transcript,
} from '../../../src/ai/realtime.js';
import {
  OpenAIRealtimeProvider,
  type OpenAIRealtimeConfig,
} from '../../../src/ai/providers/openai/session.js';
import {
  FakeOpenAIRealtime,
  type FakeRealtimeOptions,
  type FakeSessionHandle,
} from '../../fakes/openai-realtime.js';

const { mulaw } = alawmulaw;
const log = pino({ level: 'silent' });
const API_KEY = 'sk-test-provider-123';
/** Bound on every wait for something the fake or the provider does (all loopback, so generous). */
const WAIT_MS = 3_000;
const FRAME_BYTES = 160;

/** Distinctive assistant audio: 100 ms deltas, so the bytes show any reordering or loss. */
function clip(bytes: number): Buffer {
  const out = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) out[i] = (i * 7 + 3) & 0xff;
  return out;
}

/** Loud 440 Hz tone as μ-law, which the fake's energy VAD hears as speech. */
function speech(ms: number): Buffer {
  const n = ms * 8;
  const pcm = new Int16Array(n);
  for (let i = 0; i < n; i++) pcm[i] = Math.round(10_000 * Math.sin((2 * Math.PI * 440 * i) / 8000));
  return Buffer.from(mulaw.encode(pcm));
}
const silence = (ms: number): Buffer => Buffer.alloc(ms * 8, 0xff);

function sendFrames(session: RealtimeSession, audio: Buffer): void {
  for (let i = 0; i < audio.length; i += FRAME_BYTES) session.sendAudio(audio.subarray(i, i + FRAME_BYTES));
}

// ---- per-test resources, always released ------------------------------------------------------------

let fake: FakeOpenAIRealtime | undefined;
const sessions: RealtimeSession[] = [];

async function startFake(opts: Partial<FakeRealtimeOptions> = {}): Promise<FakeOpenAIRealtime> {
  fake = new FakeOpenAIRealtime({ replyAudio: clip(1600), ...opts });
  await fake.start();
  return fake;
}

function provider(url: string, overrides: Partial<OpenAIRealtimeConfig> = {}): OpenAIRealtimeProvider {
  return new OpenAIRealtimeProvider({
    apiKey: API_KEY,
    url,
    model: 'gpt-realtime',
    voice: 'marin',
    transcriptionModel: '',
    connectTimeoutMs: 2_000,
    ...overrides,
  });
}

const baseOptions: SessionOptions = {
  codec: 'PCMU',
  instructions: 'You are a test agent.',
  greeting: '',
  log,
};

/** A connected session plus recordings of everything it emits. */
async function open(
  overrides: Partial<OpenAIRealtimeConfig> = {},
  options: Partial<SessionOptions> = {},
): Promise<{ session: RealtimeSession; handle: FakeSessionHandle; rec: Recorded }> {
  const server = fake!;
  const session = await provider(server.url, overrides).connect({ ...baseOptions, ...options });
  sessions.push(session);
  const handle = await server.waitForSession();
  return { session, handle, rec: record(session) };
}

interface Recorded {
  audio: AgentAudio[];
  speechStarted: number;
  transcripts: Transcript[];
  errors: Error[];
  closes: SessionClosed[];
}

function record(session: RealtimeSession): Recorded {
  const rec: Recorded = { audio: [], speechStarted: 0, transcripts: [], errors: [], closes: [] };
  session.on('audio', (a) => rec.audio.push({ data: Uint8Array.from(a.data), itemId: a.itemId }));
  session.on('speechStarted', () => rec.speechStarted++);
  session.on('transcript', (t) => rec.transcripts.push(t));
  session.on('error', (e) => rec.errors.push(e));
  session.on('close', (c) => rec.closes.push(c));
  return rec;
}

const bytesOf = (audio: AgentAudio[]): Buffer => Buffer.concat(audio.map((a) => a.data));
const sentTypes = (handle: FakeSessionHandle): string[] => handle.sent.map((s) => s.type);

/** Sends `event` raw and waits until the provider has processed it (sentinel: an agent transcript). */
async function sendThenSync(handle: FakeSessionHandle, rec: Recorded, raw: string): Promise<void> {
  const before = rec.transcripts.length;
  handle.sendRaw(raw);
  handle.sendRaw(JSON.stringify({ type: 'response.output_audio_transcript.done', transcript: 'sync' }));
  await vi.waitFor(() => expect(rec.transcripts.length).toBe(before + 1), { timeout: WAIT_MS });
}

afterEach(async () => {
  for (const s of sessions.splice(0)) s.close();
  const server = fake;
  fake = undefined;
  if (server) {
    // No socket may outlive the test: every session the fake saw is closed from our side.
    await vi.waitFor(() => expect(server.sessions.every((s) => s.closed)).toBe(true), { timeout: WAIT_MS });
    await server.stop();
  }
});

// ---- tests ---------------------------------------------------------------------------------------------

describe('OpenAIRealtimeProvider.connect', () => {
  it.each<[G711Codec, string]>([
    ['PCMU', 'audio/pcmu'],
    ['PCMA', 'audio/pcma'],
  ])(
    'configures a GA session for %s (format %s in and out) and resolves only after session.updated',
    async (codec, format) => {
      const server = await startFake();
      let atResolve: { clientTypes: string[]; sentTypes: string[] } | undefined;
      const session = await provider(server.url, { voice: 'cedar' })
        .connect({ ...baseOptions, codec, instructions: 'Be brief.' })
        .then((s) => {
          const h = server.sessions[0]!;
          atResolve = {
            clientTypes: h.clientEvents.map((e) => String(e.event.type)),
            sentTypes: sentTypes(h),
          };
          return s;
        });
      sessions.push(session);
      expect(atResolve?.clientTypes).toContain('session.update');
      expect(atResolve?.sentTypes).toContain('session.updated');

      const handle = await server.waitForSession();
      const update = await server.waitForClientEvent(handle, 'session.update');
      expect(update).toMatchObject({
        type: 'session.update',
        session: {
          type: 'realtime',
          instructions: 'Be brief.',
          audio: {
            input: {
              format: { type: format },
              turn_detection: { type: 'server_vad', interrupt_response: true },
            },
            output: { format: { type: format }, voice: 'cedar' },
          },
        },
      });
      // The fake rejects beta-only or unknown fields with an error event; there must be none.
      expect(sentTypes(handle)).not.toContain('error');
      expect(handle.session).toMatchObject({
        audio: { input: { format: { type: format } }, output: { format: { type: format } } },
      });
      expect(session.provider).toBe('openai');
      expect(session.capabilities.truncate).toBe(true);
    },
  );

  it('authenticates with a Bearer key, names the model in the query and sends no OpenAI-Beta header', async () => {
    const server = await startFake();
    const { handle } = await open({ model: 'gpt-realtime' });
    expect(handle.headers.authorization).toBe(`Bearer ${API_KEY}`);
    expect(handle.headers['openai-beta']).toBeUndefined();
    expect(handle.url).toBe('/v1/realtime?model=gpt-realtime');
    expect(handle.model).toBe('gpt-realtime');
    expect(server.sessions).toHaveLength(1);
  });

  it('leaves transcription out of session.update when no transcription model is configured', async () => {
    const server = await startFake();
    const { handle } = await open({ transcriptionModel: '' });
    const update = await server.waitForClientEvent(handle, 'session.update');
    expect(JSON.stringify(update)).not.toContain('transcription');
  });

  it('asks for the greeting with response.create carrying response.instructions', async () => {
    const server = await startFake();
    const { handle } = await open({}, { greeting: 'Greet the caller.' });
    const create = await server.waitForClientEvent(handle, 'response.create');
    expect(create).toMatchObject({
      type: 'response.create',
      response: { instructions: 'Greet the caller.' },
    });
    expect(handle.responses[0]).toMatchObject({ origin: 'client', instructions: 'Greet the caller.' });
  });

  it('sends no response.create when the greeting is empty', async () => {
    const server = await startFake();
    const { session, handle } = await open({}, { greeting: '' });
    session.sendAudio(silence(20));
    await server.waitForClientEvent(handle, 'input_audio_buffer.append');
    expect(handle.clientEvents.map((e) => e.event.type)).not.toContain('response.create');
  });
});

describe('OpenAI session audio', () => {
  it('sends caller audio as input_audio_buffer.append with base64 of exactly the given bytes', async () => {
    const server = await startFake();
    const { session, handle } = await open();
    // A view into the middle of a bigger buffer: only the viewed bytes may go out.
    const backing = Buffer.alloc(400, 0xaa);
    const payload = backing.subarray(100, 260);
    for (let i = 0; i < payload.length; i++) payload[i] = i & 0xff;
    session.sendAudio(payload);
    const append = await server.waitForClientEvent(handle, 'input_audio_buffer.append');
    expect(typeof append.audio).toBe('string');
    expect(Buffer.from(append.audio as string, 'base64').equals(payload)).toBe(true);
    expect(handle.appendedAudioBytes).toBe(160);
  });

  it("emits the reply's audio deltas as 'audio' events whose bytes concatenate to the reply clip", async () => {
    const reply = clip(2_400); // 300 ms → three 100 ms deltas
    const server = await startFake({ replyAudio: reply });
    const { handle, rec } = await open({}, { greeting: 'Hello' });
    await vi.waitFor(() => expect(bytesOf(rec.audio).length).toBe(reply.length), { timeout: WAIT_MS });
    expect(rec.audio.length).toBe(3);
    expect(bytesOf(rec.audio).equals(reply)).toBe(true);
    const itemId = handle.responses[0]!.itemId;
    expect(rec.audio.every((a) => a.itemId === itemId)).toBe(true);
    expect(server.sessions).toHaveLength(1);
  });

  it("emits 'speechStarted' on input_audio_buffer.speech_started and drops late deltas of the cancelled response", async () => {
    const reply = clip(16_000); // 2 s in 20 deltas, 50 ms apart: still streaming when the caller talks
    await startFake({ replyAudio: reply, deltaIntervalMs: 50 });
    const { handle, rec } = await open({}, { greeting: 'Hello' });
    await vi.waitFor(() => expect(rec.audio.length).toBeGreaterThan(0), { timeout: WAIT_MS });
    handle.triggerSpeechStarted();
    await vi.waitFor(() => expect(rec.speechStarted).toBe(1), { timeout: WAIT_MS });
    const cancelled = handle.responses[0]!;
    await vi.waitFor(() => expect(cancelled.status).toBe('cancelled'), { timeout: WAIT_MS });
    const heard = bytesOf(rec.audio).length;
    expect(heard).toBeLessThan(reply.length);

    // A delta of the cancelled response still in flight must not reach the caller...
    const late = {
      type: 'response.output_audio.delta',
      response_id: cancelled.id,
      item_id: cancelled.itemId,
      delta: clip(800).toString('base64'),
    };
    await sendThenSync(handle, rec, JSON.stringify(late));
    expect(bytesOf(rec.audio).length).toBe(heard);
    // ...while audio of another response still does.
    const fresh = { ...late, response_id: 'resp_next', item_id: 'item_next' };
    await sendThenSync(handle, rec, JSON.stringify(fresh));
    expect(rec.audio.at(-1)?.itemId).toBe('item_next');
  });

  it("emits 'speechStarted' when the server VAD hears loud caller audio", async () => {
    const server = await startFake();
    const { session, handle, rec } = await open();
    sendFrames(session, speech(200));
    await vi.waitFor(() => expect(rec.speechStarted).toBe(1), { timeout: WAIT_MS });
    expect(sentTypes(handle)).toContain('input_audio_buffer.speech_started');
    expect(server.sessions).toHaveLength(1);
  });

  it('truncates with an integer audio_end_ms that the server accepts', async () => {
    const reply = clip(1_600); // 200 ms
    const server = await startFake({ replyAudio: reply });
    const { session, handle, rec } = await open({}, { greeting: 'Hello' });
    await vi.waitFor(() => expect(bytesOf(rec.audio).length).toBe(reply.length), { timeout: WAIT_MS });
    const itemId = rec.audio[0]!.itemId;
    session.truncate(itemId, 150.7);
    const truncate = await server.waitForClientEvent(handle, 'conversation.item.truncate');
    expect(truncate).toMatchObject({ item_id: itemId, content_index: 0, audio_end_ms: 150 });
    await vi.waitFor(() => expect(sentTypes(handle)).toContain('conversation.item.truncated'), {
      timeout: WAIT_MS,
    });
    expect(sentTypes(handle)).not.toContain('error');
    expect(rec.errors).toEqual([]);
  });

  it('clamps audio_end_ms to the audio actually received for the item', async () => {
    const reply = clip(1_604); // 200.5 ms: the clamp must also stay an integer
    const server = await startFake({ replyAudio: reply });
    const { session, handle, rec } = await open({}, { greeting: 'Hello' });
    await vi.waitFor(() => expect(bytesOf(rec.audio).length).toBe(reply.length), { timeout: WAIT_MS });
    const itemId = rec.audio[0]!.itemId;
    session.truncate(itemId, 99_999);
    const truncate = await server.waitForClientEvent(handle, 'conversation.item.truncate');
    expect(truncate.audio_end_ms).toBe(200);
    await vi.waitFor(() => expect(sentTypes(handle)).toContain('conversation.item.truncated'), {
      timeout: WAIT_MS,
    });
    expect(sentTypes(handle)).not.toContain('error');
    expect(rec.errors).toEqual([]);
  });

  it('sends no truncate for an item it never received audio for', async () => {
    const server = await startFake();
    const { session, handle } = await open();
    session.truncate('item_unknown', 100);
    session.sendAudio(silence(20)); // sentinel: ordered after any truncate
    await server.waitForClientEvent(handle, 'input_audio_buffer.append');
    expect(handle.clientEvents.map((e) => e.event.type)).not.toContain('conversation.item.truncate');
  });

  it("emits caller and agent transcripts as 'transcript' when transcription is configured", async () => {
    const server = await startFake({
      replyAudio: clip(800),
      userTranscript: 'I need help',
      assistantTranscript: 'Sure, how?',
    });
    const { session, handle, rec } = await open({ transcriptionModel: 'gpt-4o-mini-transcribe' });
    const update = await server.waitForClientEvent(handle, 'session.update');
    expect(update).toMatchObject({
      session: { audio: { input: { transcription: { model: 'gpt-4o-mini-transcribe' } } } },
    });
    // Speech then enough silence for the fake's VAD to end the turn, transcribe it and answer.
    sendFrames(session, Buffer.concat([speech(300), silence(700)]));
    await vi.waitFor(() => expect(rec.transcripts).toHaveLength(2), { timeout: WAIT_MS });
    expect(rec.transcripts).toEqual([
      { role: 'caller', text: 'I need help' },
      { role: 'agent', text: 'Sure, how?' },
    ]);
  });
});

describe('OpenAI session errors and close', () => {
  it("emits a provider error event as 'error' and keeps the session open", async () => {
    const server = await startFake();
    const { session, handle, rec } = await open();
    handle.sendError('rate_limit_exceeded', 'Slow down');
    await vi.waitFor(() => expect(rec.errors).toHaveLength(1), { timeout: WAIT_MS });
    const error = rec.errors[0];
    expect(error).toBeInstanceOf(ProviderError);
    expect((error as ProviderError).code).toBe('rate_limit_exceeded');
    expect(error?.message).toBe('Slow down');
    session.sendAudio(silence(20));
    await server.waitForClientEvent(handle, 'input_audio_buffer.append');
    expect(handle.closed).toBe(false);
    expect(rec.closes).toEqual([]);
  });

  it('does not report the benign response_cancel_not_active error', async () => {
    await startFake();
    const { handle, rec } = await open();
    handle.sendError('response_cancel_not_active', 'Cancellation failed: no active response found.');
    await sendThenSync(handle, rec, JSON.stringify({ type: 'rate_limits.updated', rate_limits: [] }));
    expect(rec.errors).toEqual([]);
  });

  it.each([
    ['not JSON', 'not json'],
    ['JSON without a type', '{"hello":1}'],
    ['a known type with missing fields', '{"type":"response.output_audio.delta"}'],
    ['a JSON array', '[1,2,3]'],
    ['an unknown event type', '{"type":"response.something_new","x":1}'],
  ])('ignores %s from the server without throwing or closing', async (_what, raw) => {
    const server = await startFake();
    const { session, handle, rec } = await open();
    await sendThenSync(handle, rec, raw);
    expect(rec.errors).toEqual([]);
    expect(rec.closes).toEqual([]);
    expect(rec.audio).toEqual([]);
    session.sendAudio(silence(20));
    await server.waitForClientEvent(handle, 'input_audio_buffer.append');
    expect(handle.closed).toBe(false);
  });

  it('emits close {expected:false} once when the server drops the connection', async () => {
    await startFake();
    const { session, handle, rec } = await open();
    handle.drop();
    await vi.waitFor(() => expect(rec.closes).toHaveLength(1), { timeout: WAIT_MS });
    expect(rec.closes[0]?.expected).toBe(false);
    session.close(); // after the fact: no second close event
    expect(rec.closes).toHaveLength(1);
  });

  it('emits close {expected:false} when the server closes cleanly on its own', async () => {
    await startFake();
    const { handle, rec } = await open();
    handle.close(1011, 'server going away');
    await vi.waitFor(() => expect(rec.closes).toHaveLength(1), { timeout: WAIT_MS });
    expect(rec.closes[0]).toMatchObject({ expected: false });
    expect(rec.closes[0]?.reason).toContain('1011');
  });

  it('emits close {expected:true} exactly once on close(), and the server sees the socket closed', async () => {
    await startFake();
    const { session, handle, rec } = await open();
    session.close();
    session.close();
    await vi.waitFor(() => expect(handle.closed).toBe(true), { timeout: WAIT_MS });
    await vi.waitFor(() => expect(rec.closes).toHaveLength(1), { timeout: WAIT_MS });
    expect(rec.closes[0]?.expected).toBe(true);
    session.close();
    expect(rec.closes).toHaveLength(1);
  });

  it('ignores sendAudio and truncate after close()', async () => {
    await startFake();
    const { session, handle } = await open();
    session.close();
    expect(() => session.sendAudio(silence(20))).not.toThrow();
    expect(() => session.truncate('item_x', 10)).not.toThrow();
    await vi.waitFor(() => expect(handle.closed).toBe(true), { timeout: WAIT_MS });
    expect(handle.clientEvents.map((e) => e.event.type)).toEqual(['session.update']);
  });
});

describe('OpenAIRealtimeProvider.connect failures', () => {
  async function connectError(p: Promise<RealtimeSession>): Promise<ProviderError> {
    const outcome = await p.then(
      (s) => {
        sessions.push(s);
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(outcome).toBeInstanceOf(ProviderError);
    return outcome as ProviderError;
  }

  it.each([401, 403, 500, 503])(
    'rejects with code http_%i when the upgrade is refused with that status',
    async (status) => {
      const server = await startFake({ rejectUpgradeStatus: status });
      const error = await connectError(provider(server.url).connect(baseOptions));
      expect(error.code).toBe(`http_${status}`);
      expect(server.sessions).toHaveLength(0);
    },
  );

  it("rejects with code 'unreachable' when nothing listens on the port", async () => {
    const port = await new Promise<number>((resolve, reject) => {
      const probe = createServer();
      probe.once('error', reject);
      probe.listen(0, '127.0.0.1', () => {
        const address = probe.address();
        probe.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
      });
    });
    const error = await connectError(provider(`ws://127.0.0.1:${port}/v1/realtime`).connect(baseOptions));
    expect(error.code).toBe('unreachable');
  });

  it("rejects with code 'timeout' when the upgrade takes longer than connectTimeoutMs, leaving no session behind", async () => {
    const server = await startFake({ upgradeDelayMs: 400 });
    const error = await connectError(provider(server.url, { connectTimeoutMs: 150 }).connect(baseOptions));
    expect(error.code).toBe('timeout');
    // After the fake would have completed the upgrade, no session exists: our socket was torn down.
    await new Promise((resolve) => setTimeout(resolve, 450));
    expect(server.sessions).toHaveLength(0);
  });

  it("rejects with code 'aborted' when the signal aborts mid-connect", async () => {
    const server = await startFake({ upgradeDelayMs: 300 });
    const controller = new AbortController();
    const pending = provider(server.url).connect({ ...baseOptions, signal: controller.signal });
    setTimeout(() => controller.abort(), 30);
    const error = await connectError(pending);
    expect(error.code).toBe('aborted');
    await new Promise((resolve) => setTimeout(resolve, 350));
    expect(server.sessions).toHaveLength(0);
  });

  it("rejects with code 'aborted' at once when the signal is already aborted", async () => {
    const server = await startFake();
    const error = await connectError(
      provider(server.url).connect({ ...baseOptions, signal: AbortSignal.abort() }),
    );
    expect(error.code).toBe('aborted');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(server.sessions.every((s) => s.closed)).toBe(true);
  });
});
