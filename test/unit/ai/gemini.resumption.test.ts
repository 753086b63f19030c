// Long calls on Gemini Live: goAway and dropped connections are bridged by a new socket that resumes
// the session with the latest handle, under the same RealtimeSession, without losing caller audio.
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { AgentAudio, RealtimeSession, SessionClosed, SessionOptions } from '../../../src/ai/realtime.js';
import {
  GeminiLiveProvider,
  type GeminiConfig,
  type GeminiDeps,
} from '../../../src/ai/providers/gemini/session.js';
import {
  FakeGeminiLive,
  type FakeConnectionHandle,
  type FakeGeminiLiveOptions,
} from '../../fakes/gemini-live.js';

const log = pino({ level: 'silent' });
const WAIT_MS = 3_000;
const FRAME_MS = 20;
/** 20 ms of 16 kHz PCM16. */
const FRAME_BYTES = 640;

/**
 * Quiet caller audio (RMS far below the fake's VAD threshold) whose bytes encode the frame number, so
 * any loss, duplication or reordering at the fake shows.
 */
function markedFrame(n: number): Buffer {
  const out = Buffer.alloc(FRAME_BYTES);
  for (let i = 0; i < FRAME_BYTES / 2; i++) out.writeInt16LE(((n * 31 + i) % 200) - 100, i * 2);
  return out;
}

function speech(ms: number): Buffer {
  const n = ms * 16;
  const out = Buffer.alloc(n * 2);
  for (let i = 0; i < n; i++)
    out.writeInt16LE(Math.round(10_000 * Math.sin((2 * Math.PI * 440 * i) / 16_000)), i * 2);
  return out;
}

function sendFrames(session: RealtimeSession, audio: Buffer): void {
  for (let i = 0; i < audio.length; i += FRAME_BYTES) session.sendAudio(audio.subarray(i, i + FRAME_BYTES));
}

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
    apiKey: 'AIza-test',
    project: '',
    location: '',
    baseUrl: fake!.httpUrl,
    model: 'gemini-2.5-flash-native-audio-preview-12-2025',
    voice: 'Kore',
    connectTimeoutMs: 2_000,
    ...overrides,
  };
}

const baseOptions: SessionOptions = {
  codec: 'PCMA',
  instructions: 'You are a test agent.',
  greeting: '',
  log,
};

interface Recorded {
  audio: AgentAudio[];
  closes: SessionClosed[];
}

async function open(
  overrides: Partial<GeminiConfig> = {},
  options: Partial<SessionOptions> = {},
  deps: GeminiDeps = {},
): Promise<{ session: RealtimeSession; conn: FakeConnectionHandle; rec: Recorded }> {
  const session = await new GeminiLiveProvider(geminiConfig(overrides), deps).connect({
    ...baseOptions,
    ...options,
  });
  sessions.push(session);
  const rec: Recorded = { audio: [], closes: [] };
  session.on('audio', (a) => rec.audio.push({ data: Uint8Array.from(a.data), itemId: a.itemId }));
  session.on('close', (c) => rec.closes.push(c));
  return { session, conn: await fake!.waitForConnection(0), rec };
}

const timeouts = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

afterEach(async () => {
  for (const s of sessions.splice(0)) s.close();
  const server = fake;
  fake = undefined;
  if (server) {
    await vi.waitFor(() => expect(server.connections.every((c) => c.closed)).toBe(true), {
      timeout: WAIT_MS,
    });
    await server.stop();
  }
});

describe('GeminiLiveSession resumption', () => {
  it('on goAway resumes on a new socket with the latest handle; audio sent during the switch arrives there in order; the same session keeps emitting', async () => {
    const server = await startFake();
    const { session, conn: first, rec } = await open({}, { greeting: 'Say hello.' });
    await vi.waitFor(() => expect(first.modelTurns[0]?.status).toBe('complete'), { timeout: WAIT_MS });
    await vi.waitFor(() => expect(first.issuedHandles.length).toBeGreaterThanOrEqual(2), {
      timeout: WAIT_MS,
    });
    const before = Array.from({ length: 10 }, (_, i) => markedFrame(i));
    for (const f of before) session.sendAudio(f);
    await vi.waitFor(() => expect(first.audioBytes).toBe(10 * FRAME_BYTES), { timeout: WAIT_MS });

    server.opts.setupCompleteDelayMs = 200; // hold the new connection's setup open: a wide switch window
    first.forceGoAway(2_000);
    const second = await server.waitForConnection(1);
    expect(second.setupCompleted).toBe(false);
    const during = Array.from({ length: 30 }, (_, i) => markedFrame(100 + i));
    for (const f of during.slice(0, 25)) session.sendAudio(f);
    session.respond('Tell the caller you are still there.');
    for (const f of during.slice(25)) session.sendAudio(f);
    await vi.waitFor(() => expect(second.audioBytes).toBe(30 * FRAME_BYTES), { timeout: WAIT_MS });
    // Flushed in the order it was given: 25 frames, the turn, 5 frames.
    const kinds = second.clientMessages.map((m) => Object.keys(m.message)[0]);
    expect(kinds).toEqual([
      'setup',
      ...Array<string>(25).fill('realtimeInput'),
      'clientContent',
      ...Array<string>(5).fill('realtimeInput'),
    ]);
    expect(second.textTurns).toEqual(['Tell the caller you are still there.']);

    expect(first.audio().equals(Buffer.concat(before))).toBe(true);
    expect(second.audio().equals(Buffer.concat(during))).toBe(true);
    expect(second.resumedFrom).toBe(first.issuedHandles.at(-1));
    expect(second.setup?.sessionResumption).toEqual({ handle: first.issuedHandles.at(-1) });
    expect(server.conversations).toHaveLength(1);
    expect(server.conversations[0]?.resumptions).toBe(1);
    // The old socket is let go cleanly once the new one is up (before the server's goAway deadline).
    await vi.waitFor(() => expect(first.closedBy).toBe('client'), { timeout: WAIT_MS });
    expect(first.closeCode).toBe(1000);

    const itemsBefore = new Set(rec.audio.map((a) => a.itemId));
    await vi.waitFor(() => expect(second.modelTurns[0]?.status).toBe('complete'), { timeout: WAIT_MS });
    sendFrames(session, Buffer.concat([speech(300), Buffer.alloc(600 * 32)]));
    await vi.waitFor(() => expect(second.modelTurns[1]?.status).toBe('complete'), { timeout: WAIT_MS });
    await vi.waitFor(() => expect(rec.audio.some((a) => !itemsBefore.has(a.itemId))).toBe(true), {
      timeout: WAIT_MS,
    });
    expect(rec.closes).toEqual([]);
  });

  it('keeps a 3 s call of continuous 20 ms audio whole while the server forces goAway every 300 ms', async () => {
    const server = await startFake({ goAwayAfterMs: 300, goAwayTimeLeftMs: 100 });
    const { session, rec } = await open();
    const frames = 3_000 / FRAME_MS;
    const sent: Buffer[] = [];
    await new Promise<void>((resolve) => {
      let n = 0;
      const timer = setInterval(() => {
        const f = markedFrame(n++);
        sent.push(f);
        session.sendAudio(f);
        if (n === frames) {
          clearInterval(timer);
          resolve();
        }
      }, FRAME_MS);
    });
    const conversation = server.conversations[0]!;
    await vi.waitFor(() => expect(conversation.audioBytes).toBe(frames * FRAME_BYTES), { timeout: WAIT_MS });
    expect(conversation.audio().equals(Buffer.concat(sent))).toBe(true);
    expect(server.conversations).toHaveLength(1);
    expect(server.connections.length).toBeGreaterThanOrEqual(6);
    expect(conversation.resumptions).toBe(server.connections.length - 1);
    for (const [i, conn] of server.connections.entries())
      if (i > 0) expect(conn.resumedFrom).toBe(server.connections[i - 1]!.issuedHandles.at(-1));
    expect(rec.closes).toEqual([]);
    expect(server.connections.filter((c) => !c.closed)).toHaveLength(1);
  });

  it('resumes after an unexpected drop (no close frame) and carries on', async () => {
    const server = await startFake();
    const { session, conn: first, rec } = await open();
    await vi.waitFor(() => expect(first.issuedHandles).toHaveLength(1), { timeout: WAIT_MS });
    first.dropConnection();
    const second = await server.waitForConnection(1);
    await vi.waitFor(() => expect(second.setupCompleted).toBe(true), { timeout: WAIT_MS });
    expect(second.resumedFrom).toBe(first.issuedHandles[0]);
    sendFrames(session, Buffer.concat([speech(300), Buffer.alloc(600 * 32)]));
    await vi.waitFor(() => expect(second.modelTurns[0]?.status).toBe('complete'), { timeout: WAIT_MS });
    await vi.waitFor(() => expect(rec.audio.length).toBeGreaterThan(0), { timeout: WAIT_MS });
    expect(rec.closes).toEqual([]);
  });

  it('fetches a fresh Vertex token for the resumed connection', async () => {
    const server = await startFake();
    let n = 0;
    const { conn: first } = await open(
      { backend: 'vertex', project: 'p', location: 'us-central1' },
      {},
      { getAccessToken: () => Promise.resolve(`tok-${++n}`) },
    );
    await vi.waitFor(() => expect(first.issuedHandles).toHaveLength(1), { timeout: WAIT_MS });
    first.forceGoAway(500);
    const second = await server.waitForConnection(1);
    expect(first.bearer).toBe('tok-1');
    expect(second.bearer).toBe('tok-2');
    await vi.waitFor(() => expect(second.setupCompleted).toBe(true), { timeout: WAIT_MS });
  });

  it('drops the result of a tool call left pending across a resume (the resumed session predates it)', async () => {
    const server = await startFake();
    const toolCalls: string[] = [];
    const { session, conn: first } = await open();
    session.on('toolCall', (c) => toolCalls.push(c.callId));
    await vi.waitFor(() => expect(first.issuedHandles).toHaveLength(1), { timeout: WAIT_MS });
    const stale = first.sendToolCall('lookup', { q: 'x' });
    await vi.waitFor(() => expect(toolCalls).toEqual([stale]), { timeout: WAIT_MS });
    first.forceGoAway(300);
    const second = await server.waitForConnection(1);
    await vi.waitFor(() => expect(second.setupCompleted).toBe(true), { timeout: WAIT_MS });
    await vi.waitFor(() => expect(first.closed).toBe(true), { timeout: WAIT_MS });
    session.sendToolResult(stale, 'late');
    const fresh = second.sendToolCall('lookup', { q: 'y' });
    await vi.waitFor(() => expect(toolCalls).toEqual([stale, fresh]), { timeout: WAIT_MS });
    session.sendToolResult(fresh, 'ok');
    await vi.waitFor(() => expect(second.toolResponses).toHaveLength(1), { timeout: WAIT_MS });
    expect(second.toolResponses[0]?.id).toBe(fresh);
    expect(first.toolResponses).toEqual([]);
  });
});

describe('GeminiLiveSession reconnect failure and close', () => {
  it('gives up at once on an HTTP 4xx refusal and emits close {expected: false}', async () => {
    const server = await startFake();
    const { conn, rec } = await open();
    server.opts.rejectUpgradeStatus = 403;
    conn.dropConnection();
    await vi.waitFor(() => expect(rec.closes).toHaveLength(1), { timeout: WAIT_MS });
    expect(rec.closes[0]?.expected).toBe(false);
    expect(rec.closes[0]?.reason).toContain('403');
    expect(server.upgradeAttempts).toBe(2);
  });

  it('retries a failing endpoint a bounded number of times with back-off, then emits close {expected: false}', async () => {
    const server = await startFake();
    const { conn, rec } = await open();
    server.opts.rejectUpgradeStatus = 503;
    const started = Date.now();
    conn.dropConnection();
    await vi.waitFor(() => expect(rec.closes).toHaveLength(1), { timeout: 10_000 });
    expect(rec.closes[0]).toMatchObject({ expected: false });
    expect(server.upgradeAttempts).toBe(1 + 4);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250 + 1_000 + 2_500 - 50);
  });

  it('close() during reconnect back-off stops reconnecting, emits close {expected: true} and leaves no timer', async () => {
    const baseline = timeouts();
    const server = await startFake();
    const { session, conn, rec } = await open();
    server.opts.rejectUpgradeStatus = 503;
    conn.dropConnection();
    await vi.waitFor(() => expect(server.upgradeAttempts).toBe(2), { timeout: WAIT_MS });
    // The first reconnect attempt was refused; the session now waits (a timer) before the next one.
    const waiting = timeouts();
    session.close();
    expect(timeouts()).toBe(waiting - 1);
    expect(rec.closes).toEqual([{ expected: true, reason: 'closed by client' }]);
    await new Promise((r) => setTimeout(r, 600));
    expect(server.upgradeAttempts).toBe(2);
    expect(timeouts()).toBeLessThanOrEqual(baseline);
  });
});
