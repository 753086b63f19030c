// DoubaoRealtimeProvider against the protocol-faithful fake Doubao server, over real loopback WebSockets.
import { createServer } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ProviderError } from '../../../src/core/errors.js';
import type {
  AgentAudio,
  RealtimeSession,
  SessionClosed,
  SessionOptions,
  Transcript,
} from '../../../src/ai/realtime.js';
import {
  DOUBAO_APP_KEY,
  DoubaoRealtimeProvider,
  KEEPALIVE_AFTER_MS,
  type DoubaoConfig,
  type DoubaoTuning,
} from '../../../src/ai/providers/doubao/session.js';
import {
  FakeDoubaoRealtime,
  type FakeDoubaoOptions,
  type FakeDoubaoSessionHandle,
} from '../../fakes/doubao-realtime.js';

const log = pino({ level: 'silent' });
/** Bound on every wait for something the fake or the provider does (all loopback, so generous). */
const WAIT_MS = 3_000;
/** 20 ms of 16 kHz s16le: one caller frame as the call layer sends it. */
const FRAME_BYTES = 640;
const EV = {
  StartSession: 100,
  FinishSession: 102,
  FinishConnection: 2,
  TaskRequest: 200,
  SayHello: 300,
} as const;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** The doc's StartConnection byte example. */
const DOC_START_CONNECTION = [17, 20, 16, 0, 0, 0, 0, 1, 0, 0, 0, 2, 123, 125];

/** Distinctive 24 kHz s16le assistant audio: the bytes show any reordering, loss or duplication. */
function clip(bytes: number, seed = 3): Buffer {
  const out = Buffer.alloc(bytes);
  for (let i = 0; i < bytes / 2; i++) out.writeInt16LE(((i * 37 + seed * 1009) % 20_000) - 10_000, i * 2);
  return out;
}

/** Loud 440 Hz tone, 16 kHz s16le: the fake's energy VAD hears it as speech. */
function speech(ms: number): Buffer {
  const n = ms * 16;
  const out = Buffer.alloc(n * 2);
  for (let i = 0; i < n; i++)
    out.writeInt16LE(Math.round(10_000 * Math.sin((2 * Math.PI * 440 * i) / 16_000)), i * 2);
  return out;
}
const silence = (ms: number): Buffer => Buffer.alloc(ms * 32);
/** Quiet but non-zero caller audio (below the VAD threshold, not counted as keep-alive silence). */
const hiss = (ms: number): Buffer => Buffer.alloc(ms * 32, 1);

function sendFrames(session: RealtimeSession, audio: Buffer): void {
  for (let i = 0; i < audio.length; i += FRAME_BYTES) session.sendAudio(audio.subarray(i, i + FRAME_BYTES));
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---- per-test resources, always released ------------------------------------------------------------

let fake: FakeDoubaoRealtime | undefined;
const sessions: RealtimeSession[] = [];

async function startFake(opts: Partial<FakeDoubaoOptions> = {}): Promise<FakeDoubaoRealtime> {
  fake = new FakeDoubaoRealtime({ replyAudio: clip(14_400), ...opts });
  await fake.start();
  return fake;
}

const baseConfig: Omit<DoubaoConfig, 'url'> = {
  appId: '1234567890',
  accessKey: 'test-access-token',
  apiKey: '',
  model: '1.2.1.1',
  speaker: 'zh_female_vv_jupiter_bigtts',
  botName: '小助手',
  systemRole: 'You are the front desk of a test company.',
  speakingStyle: 'Short sentences.',
  outputFormat: 'pcm_s16le',
  hangUpOnUserExit: true,
  connectTimeoutMs: 2_000,
};

function provider(
  url: string,
  overrides: Partial<DoubaoConfig> = {},
  tuning: Partial<DoubaoTuning> = {},
): DoubaoRealtimeProvider {
  return new DoubaoRealtimeProvider({ ...baseConfig, url, ...overrides }, tuning);
}

const baseOptions: SessionOptions = {
  codec: 'PCMU',
  instructions: 'Answer questions about orders.',
  greeting: '',
  log,
};

interface Recorded {
  audio: AgentAudio[];
  speechStarted: number;
  /** Audio bytes received when the first speechStarted fired. */
  audioBytesAtSpeechStarted: number | undefined;
  transcripts: Transcript[];
  errors: Error[];
  ends: string[];
  closes: SessionClosed[];
}

function record(session: RealtimeSession): Recorded {
  const rec: Recorded = {
    audio: [],
    speechStarted: 0,
    audioBytesAtSpeechStarted: undefined,
    transcripts: [],
    errors: [],
    ends: [],
    closes: [],
  };
  session.on('audio', (a) => rec.audio.push({ data: Uint8Array.from(a.data), itemId: a.itemId }));
  session.on('speechStarted', () => {
    rec.speechStarted++;
    rec.audioBytesAtSpeechStarted ??= bytesOf(rec.audio).length;
  });
  session.on('transcript', (t) => rec.transcripts.push(t));
  session.on('error', (e) => rec.errors.push(e));
  session.on('endRequested', (r) => rec.ends.push(r));
  session.on('close', (c) => rec.closes.push(c));
  return rec;
}

/** A connected session plus recordings of everything it emits. */
async function open(
  overrides: Partial<DoubaoConfig> = {},
  options: Partial<SessionOptions> = {},
  tuning: Partial<DoubaoTuning> = {},
): Promise<{ session: RealtimeSession; handle: FakeDoubaoSessionHandle; rec: Recorded }> {
  const server = fake!;
  const session = await provider(server.url, overrides, tuning).connect({ ...baseOptions, ...options });
  sessions.push(session);
  const rec = record(session);
  const handle = await server.waitForSession();
  return { session, handle, rec };
}

const bytesOf = (audio: AgentAudio[]): Buffer => Buffer.concat(audio.map((a) => a.data));
const bytesFor = (audio: AgentAudio[], itemId: string): Buffer =>
  bytesOf(audio.filter((a) => a.itemId === itemId));
const clientEvents = (handle: FakeDoubaoSessionHandle): (number | undefined)[] =>
  handle.clientFrames.map((f) => f.event);

/** Waits until the provider has processed everything the fake sent so far (sentinel: an agent transcript). */
let syncs = 0;
async function sync(handle: FakeDoubaoSessionHandle, rec: Recorded): Promise<void> {
  const token = `sync-${++syncs}`;
  handle.sendEvent(550, { content: token, reply_id: token });
  handle.sendEvent(559, { reply_id: token });
  await vi.waitFor(() => expect(rec.transcripts.map((t) => t.text)).toContain(token), { timeout: WAIT_MS });
}

afterEach(async () => {
  for (const s of sessions.splice(0)) s.close();
  const server = fake;
  fake = undefined;
  if (server) {
    // No socket may outlive the test: every connection the fake saw is closed.
    await vi.waitFor(() => expect(server.sessions.every((s) => s.closed)).toBe(true), { timeout: WAIT_MS });
    await server.stop();
  }
});

// ---- tests ---------------------------------------------------------------------------------------------

describe('DoubaoRealtimeProvider.connect', () => {
  it('sends the console App ID and Access Key with the fixed resource id, App Key and a UUID connect id', async () => {
    await startFake({ credentials: { appId: '1234567890', accessKey: 'test-access-token' } });
    const { handle } = await open();
    expect(handle.headers['x-api-app-id']).toBe('1234567890');
    expect(handle.headers['x-api-access-key']).toBe('test-access-token');
    expect(handle.headers['x-api-resource-id']).toBe('volc.speech.dialog');
    expect(handle.headers['x-api-app-key']).toBe(DOUBAO_APP_KEY);
    expect(DOUBAO_APP_KEY).toBe('PlgvMymc7f3tQnJ6');
    expect(handle.headers['x-api-connect-id']).toMatch(UUID);
    expect(handle.headers['x-api-key']).toBeUndefined();
  });

  it('sends only X-Api-Key (no App ID or Access Key) when an API key is configured', async () => {
    await startFake({ credentials: { apiKey: 'new-console-key' } });
    const { handle } = await open({ apiKey: 'new-console-key', appId: '', accessKey: '' });
    expect(handle.headers['x-api-key']).toBe('new-console-key');
    expect(handle.headers['x-api-app-id']).toBeUndefined();
    expect(handle.headers['x-api-access-key']).toBeUndefined();
    expect(handle.headers['x-api-resource-id']).toBe('volc.speech.dialog');
  });

  it("opens with the doc's StartConnection bytes, then StartSession under a UUID every later frame carries", async () => {
    await startFake();
    const { session, handle } = await open();
    expect([...handle.clientFrames[0]!.bytes]).toEqual(DOC_START_CONNECTION);
    const start = handle.clientFrames[1]!;
    expect(start.event).toBe(EV.StartSession);
    expect(start.sessionId).toMatch(UUID);
    sendFrames(session, hiss(40));
    const audio = await fake!.waitForClientEvent(handle, EV.TaskRequest, 1);
    expect(audio.sessionId).toBe(start.sessionId);
  });

  it('configures the session: persona plus instructions in system_role, 24 kHz s16le, model and user-exit flag', async () => {
    await startFake();
    const { handle } = await open();
    expect(handle.startSession).toEqual({
      asr: { extra: {} },
      tts: {
        speaker: 'zh_female_vv_jupiter_bigtts',
        audio_config: { channel: 1, format: 'pcm_s16le', sample_rate: 24000 },
        extra: {},
      },
      dialog: {
        bot_name: '小助手',
        system_role: 'You are the front desk of a test company.\n\nAnswer questions about orders.',
        speaking_style: 'Short sentences.',
        extra: {
          model: '1.2.1.1',
          input_mod: 'audio',
          enable_conversation_truncate: true,
          enable_user_query_exit: true,
        },
      },
    });
  });

  it('declares 16 kHz PCM in, 24 kHz PCM out, server VAD, no tools; truncation only on 2.0 models', async () => {
    await startFake();
    const o2 = await open({ model: '1.2.1.1' });
    expect(o2.session.audioFormats).toEqual({
      input: { encoding: 'pcm16', sampleRate: 16000 },
      output: { encoding: 'pcm16', sampleRate: 24000 },
    });
    expect(o2.session.capabilities).toEqual({
      truncate: true,
      toolCalls: false,
      serverVad: true,
      g711Passthrough: false,
    });
    const legacy = await open({ model: 'O' });
    expect(legacy.session.capabilities.truncate).toBe(false);
    expect(legacy.handle.startSession).not.toHaveProperty('dialog.extra.enable_conversation_truncate');
  });

  it('speaks the greeting verbatim with SayHello and plays its audio', async () => {
    await startFake();
    const { handle, rec } = await open({}, { greeting: '您好，这里是测试公司，请问有什么可以帮您？' });
    const hello = await fake!.waitForClientEvent(handle, EV.SayHello);
    expect(hello.json).toEqual({ content: '您好，这里是测试公司，请问有什么可以帮您？' });
    await vi.waitFor(() => expect(bytesOf(rec.audio).length).toBe(14_400), { timeout: WAIT_MS });
    expect(handle.replies[0]!.origin).toBe('hello');
    expect(new Set(rec.audio.map((a) => a.itemId))).toEqual(new Set([handle.replies[0]!.replyId]));
  });

  it('sends no SayHello when the greeting is empty', async () => {
    await startFake();
    const { session, handle } = await open();
    sendFrames(session, hiss(20));
    await fake!.waitForClientEvent(handle, EV.TaskRequest);
    expect(clientEvents(handle)).not.toContain(EV.SayHello);
  });

  it('respond() sends the instructions as a ChatTextQuery, which the model answers', async () => {
    await startFake();
    const { session, handle, rec } = await open();
    session.respond('Tell the caller the transfer failed.');
    const query = await fake!.waitForClientEvent(handle, 501);
    expect(query.json).toEqual({ content: 'Tell the caller the transfer failed.' });
    await vi.waitFor(() => expect(bytesOf(rec.audio).length).toBe(14_400), { timeout: WAIT_MS });
  });
});

describe('DoubaoRealtimeProvider audio', () => {
  it('forwards each 640-byte caller frame as one TaskRequest, bytes untouched', async () => {
    await startFake();
    const { session, handle } = await open();
    const audio = hiss(200);
    for (let i = 0; i < audio.length; i++) audio[i] = (i * 13) & 0xff;
    sendFrames(session, audio);
    await fake!.waitForClientEvent(handle, EV.TaskRequest, 9);
    expect(handle.audio.map((a) => a.length)).toEqual(Array(10).fill(640));
    expect(Buffer.concat(handle.audio).equals(audio)).toBe(true);
    const frame = handle.clientFrames.find((f) => f.event === EV.TaskRequest)!;
    expect([frame.bytes[0], frame.bytes[1], frame.bytes[2], frame.bytes[3]]).toEqual([
      0x11, 0x24, 0x00, 0x00,
    ]);
  });

  it('emits the reply as 24 kHz s16le byte for byte, tagged with its reply id, gzipped chunks included', async () => {
    const reply = clip(24_000);
    await startFake({ replyAudio: reply, gzipEvery: 2 });
    const { handle, rec } = await open();
    handle.startReply();
    await vi.waitFor(() => expect(bytesOf(rec.audio).length).toBe(reply.length), { timeout: WAIT_MS });
    expect(bytesOf(rec.audio).equals(reply)).toBe(true);
    expect(new Set(rec.audio.map((a) => a.itemId))).toEqual(new Set([handle.replies[0]!.replyId]));
    const audioFrames = handle.sent.filter((s) => s.event === 352);
    expect(audioFrames.some((s) => s.gzip)).toBe(true);
    expect(audioFrames.some((s) => !s.gzip)).toBe(true);
    expect(rec.errors).toEqual([]);
  });

  it("converts 'pcm' (float32) output to int16, also when chunks split samples", async () => {
    const reply = clip(9_600, 7);
    await startFake({ replyAudio: reply, chunkBytes: 1_001 });
    const { handle, rec } = await open({ outputFormat: 'pcm' });
    expect(handle.startSession).toHaveProperty('tts.audio_config.format', 'pcm');
    handle.startReply();
    await vi.waitFor(() => expect(bytesOf(rec.audio).length).toBe(reply.length), { timeout: WAIT_MS });
    expect(bytesOf(rec.audio).equals(reply)).toBe(true);
    expect(rec.audio.every((a) => a.data.length % 2 === 0)).toBe(true);
  });

  it('ignores malformed frames, text frames and frames of another session, and carries on', async () => {
    await startFake();
    const { handle, rec } = await open();
    handle.sendRaw(Buffer.from([0x11, 0x94, 0x00]));
    handle.sendRaw('{"not":"binary"}');
    handle.sendEvent(450, { question_id: 'x' }, { sessionId: 'some-other-session' });
    handle.startReply();
    await vi.waitFor(() => expect(bytesOf(rec.audio).length).toBe(14_400), { timeout: WAIT_MS });
    expect(rec.speechStarted).toBe(0);
    expect(rec.errors).toEqual([]);
    expect(rec.closes).toEqual([]);
  });
});

describe('DoubaoRealtimeProvider barge-in', () => {
  it("on ASRInfo emits speechStarted and drops the old reply's late audio until the next reply starts", async () => {
    await startFake({
      replyAudio: (i) => clip(96_000, i + 1), // 2 s of audio in 20 chunks, 50 ms apart: still playing when the caller talks
      chunkIntervalMs: 50,
      lateChunksAfterBargeIn: 2,
      lateSentenceAfterBargeIn: true,
    });
    const { session, handle, rec } = await open();
    handle.startReply();
    await vi.waitFor(() => expect(bytesOf(rec.audio).length).toBeGreaterThanOrEqual(9_600), {
      timeout: WAIT_MS,
    });
    sendFrames(session, Buffer.concat([speech(100), silence(600)]));
    await vi.waitFor(() => expect(handle.replies[1]?.status).toBe('done'), { timeout: WAIT_MS });
    await sync(handle, rec);

    const [old, next] = [handle.replies[0]!, handle.replies[1]!];
    expect(rec.speechStarted).toBe(1);
    expect(old.status).toBe('interrupted');
    const heard = bytesFor(rec.audio, old.replyId);
    // Everything after ASRInfo (two late chunks and a late sentence of the old reply) was dropped …
    expect(heard.length).toBe(rec.audioBytesAtSpeechStarted);
    expect(old.audioBytesSent).toBeGreaterThan(heard.length);
    expect(heard.equals(old.audio.subarray(0, heard.length))).toBe(true);
    // … and the next reply plays whole, under its own id.
    expect(bytesFor(rec.audio, next.replyId).equals(next.audio)).toBe(true);
  });
});

describe('DoubaoRealtimeProvider truncate', () => {
  it('on a 2.0 model sends ConversationTruncate with the reply id, clamped to the audio received', async () => {
    await startFake({ replyAudio: clip(14_400) }); // 300 ms at 24 kHz
    const { session, handle, rec } = await open({ model: '1.2.1.1' });
    handle.startReply();
    await vi.waitFor(() => expect(bytesOf(rec.audio).length).toBe(14_400), { timeout: WAIT_MS });
    const itemId = handle.replies[0]!.replyId;
    session.truncate(itemId, 120.7);
    session.truncate(itemId, 5_000);
    session.truncate('unknown-item', 100);
    await fake!.waitForClientEvent(handle, 513, 1);
    await sync(handle, rec);
    expect(handle.clientFrames.filter((f) => f.event === 513).map((f) => f.json)).toEqual([
      { item_id: itemId, audio_end_ms: 120 },
      { item_id: itemId, audio_end_ms: 300 },
    ]);
    expect(rec.errors).toEqual([]); // the fake accepts it only with enable_conversation_truncate
  });

  it('on a legacy model sends nothing', async () => {
    await startFake();
    const { session, handle, rec } = await open({ model: 'O' });
    handle.startReply();
    await vi.waitFor(() => expect(bytesOf(rec.audio).length).toBe(14_400), { timeout: WAIT_MS });
    session.truncate(handle.replies[0]!.replyId, 100);
    sendFrames(session, hiss(20)); // ordered after any truncate on the same socket
    await fake!.waitForClientEvent(handle, EV.TaskRequest);
    expect(clientEvents(handle)).not.toContain(513);
  });
});

describe('DoubaoRealtimeProvider transcripts and hang-up', () => {
  it('emits the final caller transcript (not the interim one) and the agent text on ChatEnded', async () => {
    await startFake({ userText: '我想查订单', assistantText: '好的，请说订单号。' });
    const { session, handle, rec } = await open();
    sendFrames(session, Buffer.concat([speech(200), silence(600)]));
    await vi.waitFor(() => expect(handle.replies[0]?.status).toBe('done'), { timeout: WAIT_MS });
    await vi.waitFor(() => expect(rec.transcripts).toHaveLength(2), { timeout: WAIT_MS });
    expect(rec.transcripts).toEqual([
      { role: 'caller', text: '我想查订单' },
      { role: 'agent', text: '好的，请说订单号。' },
    ]);
  });

  it('emits endRequested when TTSEnded carries status_code 20000002 and hangUpOnUserExit is on', async () => {
    await startFake();
    const { handle, rec } = await open({ hangUpOnUserExit: true });
    handle.requestUserExit();
    await vi.waitFor(() => expect(rec.ends).toEqual(['user_query_exit']), { timeout: WAIT_MS });
    expect(rec.closes).toEqual([]); // hanging up is the call layer's decision
  });

  it('does not emit endRequested when hangUpOnUserExit is off', async () => {
    await startFake();
    const { handle, rec } = await open({ hangUpOnUserExit: false });
    expect(handle.startSession).toHaveProperty('dialog.extra.enable_user_query_exit', false);
    handle.requestUserExit();
    await vi.waitFor(() => expect(handle.replies[0]?.status).toBe('done'), { timeout: WAIT_MS });
    await sync(handle, rec);
    expect(rec.ends).toEqual([]);
  });
});

describe('DoubaoRealtimeProvider keep-alive', () => {
  // Scaled time: the fake's 400 ms idle rule stands for the real 10 s, the provider's 40 ms threshold for
  // its 1 s, and a 1 s pause for a 25 s hold.
  const IDLE_RULE_MS = 400;
  const KEEPALIVE_MS = 40;
  const PAUSE_MS = 1_000;

  it('the production threshold sits well inside the 10 s server rule', () => {
    expect(KEEPALIVE_AFTER_MS).toBeLessThanOrEqual(10_000 / 5);
  });

  it('streams real-time silence while the caller sends nothing, so a long pause does not end the session', async () => {
    await startFake({ audioIdleTimeoutMs: IDLE_RULE_MS });
    const { session, handle, rec } = await open({}, {}, { keepAliveAfterMs: KEEPALIVE_MS });
    sendFrames(session, hiss(100));
    await sleep(PAUSE_MS);
    expect(rec.closes).toEqual([]);
    expect(handle.closed).toBe(false);
    const expected = (PAUSE_MS - KEEPALIVE_MS) / 20;
    expect(handle.silentFrames).toBeGreaterThan(expected * 0.6);
    expect(handle.silentFrames).toBeLessThan(expected * 1.25); // real-time pace, not a flood
    expect(handle.audio.every((a) => a.length === 640)).toBe(true);

    // Caller audio again: the filler stops at once.
    const timer = setInterval(() => session.sendAudio(hiss(20)), 20);
    await sleep(60);
    const silentWhileTalking = handle.silentFrames;
    await sleep(300);
    clearInterval(timer);
    expect(handle.silentFrames).toBe(silentWhileTalking);
    expect(rec.closes).toEqual([]);
  });

  it('without keep-alive the same pause ends the session: error 52000042 closes it unexpectedly', async () => {
    await startFake({ audioIdleTimeoutMs: IDLE_RULE_MS });
    const { session, handle, rec } = await open({}, {}, { keepAliveAfterMs: Number.POSITIVE_INFINITY });
    sendFrames(session, hiss(100));
    await vi.waitFor(() => expect(rec.closes).toHaveLength(1), { timeout: PAUSE_MS + WAIT_MS });
    expect(rec.closes[0]).toEqual({ expected: false, reason: expect.stringContaining('52000042') });
    expect(handle.closeCause).toBe('audio_idle');
    expect(handle.silentFrames).toBe(0);
  });
});

describe('DoubaoRealtimeProvider errors', () => {
  it('reports a 4xxxxxxx error frame as an error event and the session goes on', async () => {
    await startFake();
    const { handle, rec } = await open();
    handle.sendError(45_000_002, 'empty audio packet');
    handle.startReply();
    await vi.waitFor(() => expect(bytesOf(rec.audio).length).toBe(14_400), { timeout: WAIT_MS });
    expect(rec.errors).toHaveLength(1);
    expect(rec.errors[0]).toBeInstanceOf(ProviderError);
    expect((rec.errors[0] as ProviderError).code).toBe('45000002');
    expect(rec.closes).toEqual([]);
  });

  it('ends the session on a 5xxxxxxx error frame: one close {expected:false} naming the code', async () => {
    await startFake();
    const { session, handle, rec } = await open();
    handle.sendError(55_000_001, 'ServerError');
    await vi.waitFor(() => expect(rec.closes).toHaveLength(1), { timeout: WAIT_MS });
    expect(rec.closes[0]).toEqual({ expected: false, reason: 'doubao error 55000001: ServerError' });
    await vi.waitFor(() => expect(handle.closed).toBe(true), { timeout: WAIT_MS });
    const frames = handle.clientFrames.length;
    session.sendAudio(hiss(20));
    session.close();
    await sleep(50);
    expect(handle.clientFrames.length).toBe(frames);
    expect(rec.closes).toHaveLength(1);
  });

  it('treats DialogCommonError the same way: 42000020 is an error, 52000022 ends the session', async () => {
    await startFake();
    const { handle, rec } = await open();
    handle.sendDialogError('42000020', 'bad parameter');
    await vi.waitFor(() => expect(rec.errors).toHaveLength(1), { timeout: WAIT_MS });
    expect(rec.closes).toEqual([]);
    handle.sendDialogError('52000022', 'AudioChatError');
    await vi.waitFor(() => expect(rec.closes).toHaveLength(1), { timeout: WAIT_MS });
    expect(rec.closes[0]).toEqual({ expected: false, reason: 'doubao error 52000022: AudioChatError' });
  });

  it('ends the session when the provider fails it (SessionFailed) or the socket drops', async () => {
    await startFake();
    const a = await open();
    a.handle.sendEvent(153, { error: 'ExceededConcurrentDurationLimit' });
    await vi.waitFor(() => expect(a.rec.closes).toHaveLength(1), { timeout: WAIT_MS });
    expect(a.rec.closes[0]).toEqual({ expected: false, reason: expect.stringContaining('SessionFailed') });

    const b = await open();
    b.handle.drop();
    await vi.waitFor(() => expect(b.rec.closes).toHaveLength(1), { timeout: WAIT_MS });
    expect(b.rec.closes[0]!.expected).toBe(false);
  });
});

describe('DoubaoRealtimeProvider close', () => {
  it('sends FinishSession then FinishConnection, closes the socket and emits close once', async () => {
    await startFake();
    const { session, handle, rec } = await open();
    sendFrames(session, hiss(40));
    session.close();
    session.close();
    await vi.waitFor(() => expect(handle.closed).toBe(true), { timeout: WAIT_MS });
    await vi.waitFor(() => expect(rec.closes).toHaveLength(1), { timeout: WAIT_MS });
    expect(rec.closes[0]!.expected).toBe(true);
    expect(clientEvents(handle).slice(-2)).toEqual([EV.FinishSession, EV.FinishConnection]);
    expect(handle.sent.map((s) => s.event)).toEqual(expect.arrayContaining([152, 52]));

    const frames = handle.clientFrames.length;
    session.sendAudio(hiss(20));
    session.truncate('x', 10);
    session.respond('anything');
    await sleep(60);
    expect(handle.clientFrames.length).toBe(frames);
    expect(rec.closes).toHaveLength(1);
  });

  it('leaves no keep-alive timer behind, even when closed while streaming silence', async () => {
    const KEEPALIVE_MARK_MS = 37; // an unusual delay, to tell the session's timers from others
    const setT = vi.spyOn(globalThis, 'setTimeout');
    const setI = vi.spyOn(globalThis, 'setInterval');
    const clearT = vi.spyOn(globalThis, 'clearTimeout');
    const clearI = vi.spyOn(globalThis, 'clearInterval');
    try {
      await startFake();
      const { session, handle } = await open({}, {}, { keepAliveAfterMs: KEEPALIVE_MARK_MS });
      sendFrames(session, hiss(40));
      await vi.waitFor(() => expect(handle.silentFrames).toBeGreaterThan(3), { timeout: WAIT_MS });
      session.close();
      await vi.waitFor(() => expect(handle.closed).toBe(true), { timeout: WAIT_MS });
      const created: unknown[] = [
        ...setT.mock.calls.flatMap((c, i) =>
          c[1] === KEEPALIVE_MARK_MS ? [setT.mock.results[i]!.value as unknown] : [],
        ),
        ...setI.mock.calls.flatMap((c, i) => (c[1] === 20 ? [setI.mock.results[i]!.value as unknown] : [])),
      ];
      expect(created.length).toBeGreaterThanOrEqual(2); // the idle watchdog and the silence pacer
      const cleared = new Set<unknown>([...clearT.mock.calls, ...clearI.mock.calls].map((c) => c[0]));
      for (const timer of created) expect(cleared.has(timer)).toBe(true);
      const silent = handle.silentFrames;
      await sleep(100);
      expect(handle.silentFrames).toBe(silent);
    } finally {
      vi.restoreAllMocks();
    }
  });
});

describe('DoubaoRealtimeProvider connect failures', () => {
  async function connectError(
    overrides: Partial<DoubaoConfig> = {},
    options: Partial<SessionOptions> = {},
    url?: string,
  ): Promise<ProviderError> {
    const error: unknown = await provider(url ?? fake!.url, overrides)
      .connect({ ...baseOptions, ...options })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(ProviderError);
    return error as ProviderError;
  }

  it('maps a refused upgrade to http_<status> (401 for a wrong API key, 500)', async () => {
    await startFake({ credentials: { apiKey: 'right' } });
    expect((await connectError({ apiKey: 'wrong' })).code).toBe('http_401');
    await fake!.stop();
    await startFake({ rejectUpgradeStatus: 500 });
    expect((await connectError()).code).toBe('http_500');
  });

  it('reports an unreachable provider as unreachable', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    expect((await connectError({}, {}, `ws://127.0.0.1:${port}/api/v3/realtime/dialogue`)).code).toBe(
      'unreachable',
    );
  });

  it('times out when the provider never starts the connection', async () => {
    await startFake({ silentSetup: true });
    const started = Date.now();
    expect((await connectError({ connectTimeoutMs: 300 })).code).toBe('timeout');
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('stops when the call is abandoned while connecting', async () => {
    await startFake({ silentSetup: true });
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 100);
    expect((await connectError({}, { signal: abort.signal })).code).toBe('aborted');
  });

  it('maps ConnectionFailed and SessionFailed to setup_rejected', async () => {
    await startFake({ failConnection: 'quota exceeded' });
    const a = await connectError();
    expect(a.code).toBe('setup_rejected');
    expect(a.message).toContain('quota exceeded');
    await fake!.stop();
    await startFake({ failSession: '55000001 ClientError:InvalidSpeaker' });
    const b = await connectError({ speaker: 'nobody' });
    expect(b.code).toBe('setup_rejected');
    expect(b.message).toContain('InvalidSpeaker');
  });

  it('refuses a config that can never work: no credentials, a long bot name, a non-ws URL', () => {
    expect(() => provider('ws://127.0.0.1:1/x', { appId: '', accessKey: '', apiKey: '' })).toThrow(TypeError);
    expect(() => provider('ws://127.0.0.1:1/x', { accessKey: '' })).toThrow(TypeError);
    expect(() => provider('ws://127.0.0.1:1/x', { botName: 'x'.repeat(21) })).toThrow(RangeError);
    expect(() => provider('https://example.com/')).toThrow(TypeError);
  });
});
