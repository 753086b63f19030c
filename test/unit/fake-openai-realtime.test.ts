// Exercises the fake OpenAI Realtime (GA) server itself with a plain `ws` client, so tests that rely on
// it can trust its protocol behaviour.
import alawmulaw from 'alawmulaw';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { RawData } from 'ws';
import { FakeOpenAIRealtime } from '../fakes/openai-realtime.js';
import type { FakeRealtimeOptions } from '../fakes/openai-realtime.js';

const { mulaw, alaw } = alawmulaw;

const SAMPLE_RATE = 8000;
const RTP_FRAME_MS = 20;
const EVENT_TIMEOUT_MS = 3_000;
const AUTH = { Authorization: 'Bearer sk-test' };

function sinePcm(ms: number, amplitude = 8000, freq = 440): Int16Array {
  const n = (ms * SAMPLE_RATE) / 1000;
  const pcm = new Int16Array(n);
  for (let i = 0; i < n; i++)
    pcm[i] = Math.round(amplitude * Math.sin((2 * Math.PI * freq * i) / SAMPLE_RATE));
  return pcm;
}
const speechMulaw = (ms: number): Buffer => Buffer.from(mulaw.encode(sinePcm(ms)));
const speechAlaw = (ms: number): Buffer => Buffer.from(alaw.encode(sinePcm(ms)));
/** 0xFF is μ-law for 0 */
const silenceMulaw = (ms: number): Buffer => Buffer.alloc((ms * SAMPLE_RATE) / 1000, 0xff);
/** 0xD5 is A-law for (almost) 0 */
const silenceAlaw = (ms: number): Buffer => Buffer.alloc((ms * SAMPLE_RATE) / 1000, 0xd5);

type Ev = Record<string, unknown>;

/** Minimal test client: records every server event and lets a test await the next one of a type. */
class Client {
  readonly events: { at: number; event: Ev }[] = [];
  private readonly cursors = new Map<string, number>();
  private readonly listeners = new Set<() => void>();
  closeCode: number | undefined;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: RawData) => {
      const parsed: unknown = JSON.parse(Buffer.isBuffer(data) ? data.toString('utf8') : '{}');
      if (typeof parsed === 'object' && parsed !== null)
        this.events.push({ at: Date.now(), event: parsed as Ev });
      for (const l of [...this.listeners]) l();
    });
    ws.on('error', () => {
      /* surfaced through connect() or close codes */
    });
    ws.on('close', (code: number) => {
      this.closeCode = code;
      for (const l of [...this.listeners]) l();
    });
  }

  static connect(url: string, headers: Record<string, string> = AUTH): Promise<Client> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers });
      const client = new Client(ws);
      ws.once('open', () => resolve(client));
      ws.once('unexpected-response', (req, res) => {
        req.destroy();
        reject(new Error(`HTTP ${res.statusCode}`));
      });
      ws.once('error', reject);
    });
  }

  send(event: Ev | string): void {
    this.ws.send(typeof event === 'string' ? event : JSON.stringify(event));
  }

  appendAudio(audio: Buffer, chunkBytes = (RTP_FRAME_MS * SAMPLE_RATE) / 1000): void {
    for (let i = 0; i < audio.length; i += chunkBytes) {
      this.send({
        type: 'input_audio_buffer.append',
        audio: audio.subarray(i, i + chunkBytes).toString('base64'),
      });
    }
  }

  ofType(type: string): Ev[] {
    return this.events.filter((e) => e.event.type === type).map((e) => e.event);
  }

  types(): string[] {
    return this.events.map((e) => String(e.event.type));
  }

  /** Next not-yet-consumed event of `type` (earlier arrivals count). */
  next(type: string, timeoutMs = EVENT_TIMEOUT_MS): Promise<Ev> {
    const take = (): Ev | undefined => {
      const seen = this.cursors.get(type) ?? 0;
      const ev = this.ofType(type)[seen];
      if (ev) this.cursors.set(type, seen + 1);
      return ev;
    };
    const now = take();
    if (now) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const listener = (): void => {
        const ev = take();
        if (ev) {
          cleanup();
          resolve(ev);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`no '${type}' within ${timeoutMs} ms; got ${this.types().join(', ')}`));
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        this.listeners.delete(listener);
      };
      this.listeners.add(listener);
    });
  }

  waitClose(timeoutMs = EVENT_TIMEOUT_MS): Promise<number> {
    if (this.closeCode !== undefined) return Promise.resolve(this.closeCode);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('socket did not close')), timeoutMs);
      this.ws.once('close', (code: number) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
  }
}

function errorOf(ev: Ev): Ev {
  const err = ev.error;
  if (typeof err !== 'object' || err === null) throw new Error('error event without error object');
  return err as Ev;
}

const GA_PCMU_SESSION = {
  type: 'realtime',
  instructions: 'You are a phone agent.',
  audio: {
    input: { format: { type: 'audio/pcmu' }, transcription: { model: 'gpt-4o-mini-transcribe' } },
    output: { format: { type: 'audio/pcmu' }, voice: 'marin' },
  },
};

let fake: FakeOpenAIRealtime | undefined;
const clients: Client[] = [];

async function setup(opts: Partial<FakeRealtimeOptions> = {}): Promise<FakeOpenAIRealtime> {
  fake = new FakeOpenAIRealtime({ replyAudio: speechMulaw(1000), ...opts });
  await fake.start();
  return fake;
}

async function connected(f: FakeOpenAIRealtime, session: Ev | null = GA_PCMU_SESSION): Promise<Client> {
  const c = await Client.connect(`${f.url}?model=gpt-realtime`);
  clients.push(c);
  await c.next('session.created');
  if (session) {
    c.send({ type: 'session.update', session });
    await c.next('session.updated');
  }
  return c;
}

afterEach(async () => {
  for (const c of clients.splice(0)) c.ws.terminate();
  await fake?.stop();
  fake = undefined;
});

describe('FakeOpenAIRealtime upgrade', () => {
  it('rejects an upgrade without a Bearer token with HTTP 401 and creates no session', async () => {
    const f = await setup();
    await expect(Client.connect(`${f.url}?model=gpt-realtime`, {})).rejects.toThrow('HTTP 401');
    await expect(Client.connect(`${f.url}?model=gpt-realtime`, { Authorization: 'Bearer ' })).rejects.toThrow(
      'HTTP 401',
    );
    expect(f.sessions).toHaveLength(0);
  });

  it('rejects with the configured status and 404s an unknown path', async () => {
    const f = await setup({ rejectUpgradeStatus: 503 });
    await expect(Client.connect(`${f.url}?model=gpt-realtime`)).rejects.toThrow('HTTP 503');
    await f.stop();
    const g = await setup();
    await expect(Client.connect(g.url.replace('/v1/realtime', '/v1/other'))).rejects.toThrow('HTTP 404');
  });

  it('delays the upgrade by upgradeDelayMs', async () => {
    const f = await setup({ upgradeDelayMs: 150 });
    const t0 = Date.now();
    const c = await Client.connect(`${f.url}?model=gpt-realtime`);
    clients.push(c);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
  });

  it('sends a GA session.created and records headers, URL and model', async () => {
    const f = await setup();
    const c = await Client.connect(`${f.url}?model=gpt-realtime-mini`);
    clients.push(c);
    const created = await c.next('session.created');
    const handle = await f.waitForSession();
    expect(created.event_id).toMatch(/^event_/);
    expect(created.session).toMatchObject({
      type: 'realtime',
      object: 'realtime.session',
      id: handle.id,
      model: 'gpt-realtime-mini',
      output_modalities: ['audio'],
      audio: {
        input: {
          format: { type: 'audio/pcm', rate: 24000 },
          turn_detection: { type: 'server_vad', create_response: true, interrupt_response: true },
        },
        output: { format: { type: 'audio/pcm', rate: 24000 }, voice: 'alloy' },
      },
    });
    expect(handle.id).toMatch(/^sess_/);
    expect(handle.model).toBe('gpt-realtime-mini');
    expect(handle.url).toBe('/v1/realtime?model=gpt-realtime-mini');
    expect(handle.headers.authorization).toBe('Bearer sk-test');
  });
});

describe('FakeOpenAIRealtime session.update', () => {
  it('accepts the GA shape and replies with the full merged session', async () => {
    const f = await setup();
    const c = await connected(f, null);
    c.send({ type: 'session.update', session: GA_PCMU_SESSION });
    const updated = await c.next('session.updated');
    expect(updated.session).toMatchObject({
      type: 'realtime',
      model: 'gpt-realtime',
      instructions: 'You are a phone agent.',
      audio: {
        input: {
          format: { type: 'audio/pcmu' },
          transcription: { model: 'gpt-4o-mini-transcribe' },
          turn_detection: { type: 'server_vad', create_response: true, interrupt_response: true },
        },
        output: { format: { type: 'audio/pcmu' }, voice: 'marin' },
      },
    });
    const session = updated.session as { audio: { input: { format: Ev } } };
    expect(session.audio.input.format).toEqual({ type: 'audio/pcmu' });
    const handle = await f.waitForSession();
    const recorded = await f.waitForClientEvent(handle, 'session.update');
    expect(recorded.session).toEqual(GA_PCMU_SESSION);
  });

  it.each([
    ['input_audio_format', { input_audio_format: 'g711_ulaw' }],
    ['modalities', { modalities: ['audio', 'text'] }],
    ['voice', { voice: 'alloy' }],
    ['temperature', { temperature: 0.8 }],
  ])('rejects the beta field %s with unknown_parameter and keeps the connection', async (field, extra) => {
    const f = await setup();
    const c = await connected(f, null);
    c.send({ type: 'session.update', event_id: 'evt_beta', session: { type: 'realtime', ...extra } });
    const err = errorOf(await c.next('error'));
    expect(err).toMatchObject({
      type: 'invalid_request_error',
      code: 'unknown_parameter',
      param: `session.${field}`,
      event_id: 'evt_beta',
    });
    expect(c.ofType('session.updated')).toHaveLength(0);
    c.send({ type: 'session.update', session: GA_PCMU_SESSION });
    await c.next('session.updated');
  });

  it('requires session.type and a supported audio format', async () => {
    const f = await setup();
    const c = await connected(f, null);
    c.send({ type: 'session.update', session: { instructions: 'x' } });
    expect(errorOf(await c.next('error'))).toMatchObject({
      type: 'invalid_request_error',
      code: 'missing_required_parameter',
      param: 'session.type',
    });
    c.send({
      type: 'session.update',
      session: { type: 'realtime', audio: { input: { format: { type: 'audio/opus' } } } },
    });
    expect(errorOf(await c.next('error'))).toMatchObject({
      code: 'invalid_value',
      param: 'session.audio.input.format.type',
    });
    expect(c.ofType('session.updated')).toHaveLength(0);
  });
});

describe('FakeOpenAIRealtime VAD and responses', () => {
  it('detects speech on audio time, commits, transcribes and answers faster than real time', async () => {
    const reply = speechMulaw(1000);
    const f = await setup({
      replyAudio: reply,
      userTranscript: 'hi there',
      assistantTranscript: 'Hello caller.',
    });
    const c = await connected(f);
    const t0 = Date.now();
    c.appendAudio(Buffer.concat([silenceMulaw(500), speechMulaw(1000), silenceMulaw(700)]));

    const started = await c.next('input_audio_buffer.speech_started');
    // onset at 500 ms audio time minus the 300 ms default prefix padding
    expect(started.audio_start_ms).toBe(200);
    const stopped = await c.next('input_audio_buffer.speech_stopped');
    expect(stopped).toMatchObject({ audio_end_ms: 2000, item_id: started.item_id });
    expect(await c.next('input_audio_buffer.committed')).toMatchObject({
      item_id: started.item_id,
      previous_item_id: null,
    });
    const userItem = await c.next('conversation.item.added');
    expect(userItem.item).toMatchObject({ id: started.item_id, type: 'message', role: 'user' });
    expect(await c.next('conversation.item.input_audio_transcription.completed')).toMatchObject({
      item_id: started.item_id,
      content_index: 0,
      transcript: 'hi there',
    });
    // 2.2 s of audio pushed at once: VAD ran on audio time, not wall clock
    expect(Date.now() - t0).toBeLessThan(1500);

    const created = await c.next('response.created');
    const response = created.response as Ev;
    expect(response).toMatchObject({ status: 'in_progress' });
    expect(response.id).toMatch(/^resp_/);
    const added = await c.next('response.output_item.added');
    expect(added.item).toMatchObject({ type: 'message', role: 'assistant' });
    const itemId = (added.item as Ev).id;
    const done = await c.next('response.done');
    expect(done.response).toMatchObject({ id: response.id, status: 'completed' });

    const deltas = c.events.filter((e) => e.event.type === 'response.output_audio.delta');
    expect(deltas).toHaveLength(10);
    for (const d of deltas) {
      expect(d.event).toMatchObject({
        response_id: response.id,
        item_id: itemId,
        output_index: 0,
        content_index: 0,
      });
    }
    const audio = Buffer.concat(deltas.map((d) => Buffer.from(String(d.event.delta), 'base64')));
    expect(audio.equals(reply)).toBe(true);
    // 1 s of audio in 100 ms chunks 10 ms apart: far faster than real time
    expect(deltas.at(-1)!.at - deltas[0]!.at).toBeLessThan(500);
    expect((await c.next('response.output_audio_transcript.done')).transcript).toBe('Hello caller.');

    const types = c.types();
    const order = [
      'input_audio_buffer.speech_stopped',
      'input_audio_buffer.committed',
      'conversation.item.added',
      'conversation.item.input_audio_transcription.completed',
      'response.created',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_audio.delta',
      'response.output_audio.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.done',
    ];
    const positions = order.map((t) => types.indexOf(t));
    expect(positions.every((p) => p >= 0)).toBe(true);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);

    const handle = await f.waitForSession();
    expect(handle.appendedAudioBytes).toBe(2200 * 8);
    expect(handle.responses[0]).toMatchObject({ origin: 'vad', status: 'completed', audioBytesSent: 8000 });
    for (const e of c.events) expect(e.event.event_id).toMatch(/^event_/);
  });

  it('decodes A-law input when the session input format is audio/pcma', async () => {
    const f = await setup();
    const c = await connected(f, {
      type: 'realtime',
      audio: { input: { format: { type: 'audio/pcma' } }, output: { format: { type: 'audio/pcma' } } },
    });
    c.appendAudio(silenceAlaw(400));
    c.appendAudio(speechAlaw(200));
    expect((await c.next('input_audio_buffer.speech_started')).audio_start_ms).toBe(100);
  });

  it('does not detect speech in μ-law silence and sends no transcription when none is configured', async () => {
    const f = await setup();
    const c = await connected(f, {
      type: 'realtime',
      audio: { input: { format: { type: 'audio/pcmu' } }, output: { format: { type: 'audio/pcmu' } } },
    });
    c.appendAudio(silenceMulaw(2000));
    c.send({ type: 'input_audio_buffer.clear' });
    await c.next('input_audio_buffer.cleared');
    expect(c.ofType('input_audio_buffer.speech_started')).toHaveLength(0);
    c.appendAudio(Buffer.concat([speechMulaw(400), silenceMulaw(600)]));
    await c.next('response.created');
    expect(c.ofType('conversation.item.input_audio_transcription.completed')).toHaveLength(0);
  });

  it('barge-in cancels the active response at once and sends no later audio for it', async () => {
    const f = await setup({ replyAudio: speechMulaw(5000), deltaIntervalMs: 50 });
    const c = await connected(f);
    c.send({ type: 'response.create', response: { instructions: 'Greet the caller.' } });
    const created = await c.next('response.created');
    const responseId = (created.response as Ev).id;
    await c.next('response.output_audio.delta');
    await c.next('response.output_audio.delta');

    c.appendAudio(speechMulaw(200));
    const started = await c.next('input_audio_buffer.speech_started');
    const done = await c.next('response.done');
    expect(done.response).toMatchObject({
      id: responseId,
      status: 'cancelled',
      status_details: { type: 'cancelled', reason: 'turn_detected' },
    });
    const types = c.types();
    expect(types.indexOf('input_audio_buffer.speech_started')).toBeLessThan(types.indexOf('response.done'));
    const deltasAtCancel = c.ofType('response.output_audio.delta').length;
    await new Promise((r) => setTimeout(r, 200));
    expect(c.ofType('response.output_audio.delta')).toHaveLength(deltasAtCancel);
    expect(deltasAtCancel).toBeLessThan(50);
    expect(started.item_id).toMatch(/^item_/);

    const handle = await f.waitForSession();
    expect(handle.responses[0]).toMatchObject({
      instructions: 'Greet the caller.',
      origin: 'client',
      status: 'cancelled',
      audioBytesSent: deltasAtCancel * 800,
    });

    // only the audio actually sent can be truncated
    const itemId = (await c.next('response.output_item.added')).item as Ev;
    const sentMs = deltasAtCancel * 100;
    c.send({
      type: 'conversation.item.truncate',
      item_id: itemId.id,
      content_index: 0,
      audio_end_ms: sentMs + 1,
    });
    expect(errorOf(await c.next('error'))).toMatchObject({ code: 'invalid_value', param: 'audio_end_ms' });
    c.send({
      type: 'conversation.item.truncate',
      item_id: itemId.id,
      content_index: 0,
      audio_end_ms: sentMs,
    });
    expect(await c.next('conversation.item.truncated')).toMatchObject({
      item_id: itemId.id,
      audio_end_ms: sentMs,
    });
  });

  it('triggerSpeechStarted interrupts the active response', async () => {
    const f = await setup({ replyAudio: speechMulaw(5000), deltaIntervalMs: 50 });
    const c = await connected(f);
    const handle = await f.waitForSession();
    handle.startResponse();
    await c.next('response.output_audio.delta');
    handle.triggerSpeechStarted();
    await c.next('input_audio_buffer.speech_started');
    expect((await c.next('response.done')).response).toMatchObject({ status: 'cancelled' });
    expect(handle.sent.some((s) => s.type === 'input_audio_buffer.speech_started')).toBe(true);
  });
});

describe('FakeOpenAIRealtime client event validation', () => {
  it('validates conversation.item.truncate', async () => {
    const f = await setup();
    const c = await connected(f);
    c.send({ type: 'response.create' });
    const itemId = ((await c.next('response.output_item.added')).item as Ev).id;
    await c.next('response.done');

    const truncate = (eventId: string, fields: Ev): void =>
      c.send({
        type: 'conversation.item.truncate',
        event_id: eventId,
        item_id: itemId,
        content_index: 0,
        ...fields,
      });
    truncate('t_float', { audio_end_ms: 500.5 });
    truncate('t_big', { audio_end_ms: 1001 });
    truncate('t_neg', { audio_end_ms: -1 });
    truncate('t_item', { item_id: 'item_nope', audio_end_ms: 10 });
    truncate('t_ok', { audio_end_ms: 1000 });
    expect(await c.next('conversation.item.truncated')).toMatchObject({
      item_id: itemId,
      content_index: 0,
      audio_end_ms: 1000,
    });
    const errors = c.ofType('error').map(errorOf);
    expect(errors.map((e) => [e.event_id, e.code, e.param])).toEqual([
      ['t_float', 'invalid_value', 'audio_end_ms'],
      ['t_big', 'invalid_value', 'audio_end_ms'],
      ['t_neg', 'invalid_value', 'audio_end_ms'],
      ['t_item', 'invalid_value', 'item_id'],
    ]);
  });

  it('allows one active response; response.cancel cancels it, then reports nothing to cancel', async () => {
    const f = await setup({ replyAudio: speechMulaw(5000), deltaIntervalMs: 50 });
    const c = await connected(f);
    c.send({ type: 'response.create' });
    await c.next('response.created');
    c.send({ type: 'response.create' });
    expect(errorOf(await c.next('error'))).toMatchObject({
      type: 'invalid_request_error',
      code: 'conversation_already_has_active_response',
    });
    expect(c.ofType('response.created')).toHaveLength(1);
    c.send({ type: 'response.cancel' });
    expect((await c.next('response.done')).response).toMatchObject({
      status: 'cancelled',
      status_details: { reason: 'client_cancelled' },
    });
    c.send({ type: 'response.cancel' });
    expect(errorOf(await c.next('error'))).toMatchObject({ code: 'response_cancel_not_active' });
  });

  it('answers unknown events, bad JSON and bad base64 with error events and stays open', async () => {
    const f = await setup();
    const c = await connected(f);
    c.send({ type: 'foo.bar' });
    c.send('this is not json');
    c.send({ no_type: true });
    c.send({ type: 'input_audio_buffer.append', audio: '***not base64***' });
    c.send({ type: 'input_audio_buffer.clear' });
    await c.next('input_audio_buffer.cleared');
    expect(c.ofType('error').map((e) => errorOf(e).code)).toEqual([
      'unknown_event',
      'invalid_json',
      'unknown_event',
      'invalid_value',
    ]);
    for (const e of c.ofType('error')) expect(errorOf(e).type).toBe('invalid_request_error');
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
    const handle = await f.waitForSession();
    expect(handle.clientEvents.map((r) => r.event.type)).toContain('foo.bar');
    expect(handle.appendedAudioBytes).toBe(0);
  });

  it('echoes conversation.item.create and rejects a too-short manual commit', async () => {
    const f = await setup();
    const c = await connected(f, {
      type: 'realtime',
      audio: {
        input: { format: { type: 'audio/pcmu' }, turn_detection: null },
        output: { format: { type: 'audio/pcmu' } },
      },
    });
    c.send({
      type: 'conversation.item.create',
      item: { type: 'function_call_output', call_id: 'call_1', output: '{"ok":true}' },
    });
    expect((await c.next('conversation.item.added')).item).toMatchObject({
      type: 'function_call_output',
      call_id: 'call_1',
      output: '{"ok":true}',
    });
    c.appendAudio(speechMulaw(60));
    c.send({ type: 'input_audio_buffer.commit' });
    expect(errorOf(await c.next('error'))).toMatchObject({ code: 'input_audio_buffer_commit_empty' });
    c.appendAudio(speechMulaw(100));
    c.send({ type: 'input_audio_buffer.commit' });
    await c.next('input_audio_buffer.committed');
    expect(c.ofType('input_audio_buffer.speech_started')).toHaveLength(0);
    expect(c.ofType('response.created')).toHaveLength(0);
  });

  it('emits a complete function-call response on demand', async () => {
    const f = await setup();
    const c = await connected(f);
    const handle = await f.waitForSession();
    const callId = handle.startFunctionCall('transfer_call', { dest: 'sip:bob@example.com' });
    const done = await c.next('response.function_call_arguments.done');
    expect(done).toMatchObject({
      call_id: callId,
      name: 'transfer_call',
      arguments: '{"dest":"sip:bob@example.com"}',
    });
    expect((await c.next('response.done')).response).toMatchObject({ status: 'completed' });
  });
});

describe('FakeOpenAIRealtime connection control', () => {
  it('drop() resets the connection and close() sends a close frame', async () => {
    const f = await setup();
    const a = await connected(f, null);
    const b = await connected(f, null);
    const ha = await f.waitForSession();
    const hb = await f.waitForSession();
    ha.drop();
    expect(await a.waitClose()).toBe(1006);
    hb.close(4000, 'bye');
    expect(await b.waitClose()).toBe(4000);
    await new Promise((r) => setTimeout(r, 20));
    expect(ha.closed && hb.closed).toBe(true);
    expect(typeof ha.closedAt).toBe('number');
  });

  it('sendRaw and sendError reach the client verbatim', async () => {
    const f = await setup();
    const c = await connected(f, null);
    const handle = await f.waitForSession();
    handle.sendError('server_error', 'boom');
    expect(errorOf(await c.next('error'))).toMatchObject({ code: 'server_error', message: 'boom' });
    handle.sendRaw(JSON.stringify({ type: 'custom.event', x: 1 }));
    expect(await c.next('custom.event')).toEqual({ type: 'custom.event', x: 1 });
  });

  it('stop() closes open sessions and rejects pending waits', async () => {
    const f = await setup();
    const c = await connected(f, null);
    const handle = await f.waitForSession();
    const pending = f.waitForClientEvent(handle, 'response.create', 10_000);
    const stopped = f.stop();
    await expect(pending).rejects.toThrow('stopped');
    await stopped;
    expect(await c.waitClose()).toBe(1006);
  });
});
