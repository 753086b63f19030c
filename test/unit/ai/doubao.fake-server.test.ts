// The fake Doubao server rejects what the real one rejects, so provider tests that pass against it mean
// something. Driven with a raw `ws` client and hand-built frames.
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  decodeServerMessage,
  startConnection,
  startSession,
  taskRequest,
} from '../../../src/ai/providers/doubao/protocol.js';
import { FakeDoubaoRealtime } from '../../fakes/doubao-realtime.js';
import type { ServerMessage } from '../../../src/ai/providers/doubao/protocol.js';

const GOOD_HEADERS = {
  'X-Api-App-ID': 'app',
  'X-Api-Access-Key': 'token',
  'X-Api-Resource-Id': 'volc.speech.dialog',
  'X-Api-App-Key': 'PlgvMymc7f3tQnJ6',
};
const SESSION = '11111111-2222-4333-8444-555555555555';
const GOOD_START = {
  asr: { extra: {} },
  tts: { audio_config: { channel: 1, format: 'pcm_s16le', sample_rate: 24000 }, extra: {} },
  dialog: { extra: { model: '1.2.1.1', input_mod: 'audio' } },
};

let fake: FakeDoubaoRealtime | undefined;
const sockets: WebSocket[] = [];

afterEach(async () => {
  for (const ws of sockets.splice(0)) ws.terminate();
  await fake?.stop();
  fake = undefined;
});

async function server(): Promise<FakeDoubaoRealtime> {
  fake = new FakeDoubaoRealtime({ replyAudio: Buffer.alloc(480) });
  await fake.start();
  return fake;
}

/** Connects and collects every server message, decoded with the provider's own decoder. */
async function client(
  headers: Record<string, string> = GOOD_HEADERS,
): Promise<{ ws: WebSocket; messages: ServerMessage[]; next: (n: number) => Promise<ServerMessage[]> }> {
  const ws = new WebSocket(fake!.url, { headers });
  sockets.push(ws);
  const messages: ServerMessage[] = [];
  ws.on('message', (data: Buffer) => messages.push(decodeServerMessage(data)));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const next = async (n: number): Promise<ServerMessage[]> => {
    for (let i = 0; i < 100 && messages.length < n; i++) await new Promise((r) => setTimeout(r, 10));
    return messages;
  };
  return { ws, messages, next };
}

function upgradeStatus(headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(fake!.url, { headers });
    sockets.push(ws);
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('open', () => resolve(101));
    ws.on('error', reject);
  });
}

describe('fake Doubao server', () => {
  it('answers 401 without credentials or without the fixed App Key, 403 for another resource id', async () => {
    await server();
    const { 'X-Api-Access-Key': _omit, ...noToken } = GOOD_HEADERS;
    expect(await upgradeStatus(noToken)).toBe(401);
    expect(await upgradeStatus({ ...GOOD_HEADERS, 'X-Api-App-Key': 'guess' })).toBe(401);
    expect(await upgradeStatus({ ...GOOD_HEADERS, 'X-Api-Resource-Id': 'volc.other' })).toBe(403);
    expect(await upgradeStatus({ 'X-Api-Key': 'k', 'X-Api-Resource-Id': 'volc.speech.dialog' })).toBe(101);
  });

  it('rejects StartSession with a null asr.extra (42000020) and audio under a foreign session id', async () => {
    await server();
    const { ws, next } = await client();
    ws.send(startConnection());
    ws.send(startSession(SESSION, { ...GOOD_START, asr: { extra: null } } as never));
    const got = await next(2);
    expect(got[0]).toMatchObject({ kind: 'event', event: { name: 'ConnectionStarted' } });
    expect(got[1]).toMatchObject({
      kind: 'error',
      code: 42_000_020,
      message: expect.stringMatching(/asr extra/),
    });

    ws.send(startSession(SESSION, GOOD_START as never));
    ws.send(taskRequest('another-session', Buffer.alloc(640)));
    ws.send(taskRequest(SESSION, Buffer.alloc(0)));
    const all = await next(5);
    expect(all[2]).toMatchObject({ kind: 'event', event: { name: 'SessionStarted' }, sessionId: SESSION });
    expect(all[3]).toMatchObject({ kind: 'error', message: expect.stringMatching(/session id/) });
    expect(all[4]).toMatchObject({ kind: 'error', code: 45_000_002 });
  });
});
