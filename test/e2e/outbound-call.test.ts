// Outbound calls end to end: POST /v1/calls on a voxgate child process → drachtio-server → a SIPp UAS
// playing the carrier and the callee (SIP_TRUNK_URI points at it), with the fake OpenAI Realtime server
// as the agent. The greeting is generated while the phone rings and must reach the callee right after
// the answer; RTP is observed on the wire with dumpcap; signed webhooks land in a node:http receiver.
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { z } from 'zod';
import { CallViewSchema, CreatedCall, ErrorBody, ReadinessSchema } from '../../src/api/schemas.js';
import {
  WEBHOOK_SIGNATURE_HEADER,
  WEBHOOK_SIGNATURE_TOLERANCE_S,
  WEBHOOK_TIMESTAMP_HEADER,
  verifyWebhookSignature,
} from '../../src/api/webhooks.js';
import { describeE2E, startDrachtio, type DrachtioServer } from '../helpers/drachtio.js';
import { REPO_ROOT, killAll } from '../helpers/processes.js';
import { freeEvenUdpPortRange, freeTcpPort, freeUdpPort } from '../helpers/ports.js';
import { byMsg, drachtioEnv, startVoxgate, type Voxgate } from '../helpers/voxgate.js';
import {
  describeSippRun,
  parseSippMessages,
  runSippUas,
  sippListening,
  type SippResult,
  type TracedSipMessage,
} from '../helpers/sipp.js';
import { isRtp, parseRtp, startCapture } from '../helpers/rtp-capture.js';
import { FakeOpenAIRealtime, type FakeSessionHandle } from '../fakes/openai-realtime.js';
import { decodeG711, findReference, rms } from '../helpers/audio-analysis.js';

const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures');
const fixture = (name: string): string => path.join(FIXTURES, name);
const REPLY_PCMU = readFileSync(fixture('assistant-reply.ulaw'));
const REPLY_LINEAR = decodeG711('PCMU', REPLY_PCMU);
const CALLEE_PCAP = fixture('caller-speech-pcmu.pcap');

const CALLER_ID = '+15550100001';
const CALLEE = '+15550100123';
const TRUNK_USER = 'voxgate-trunk';
const ASSISTANT_TEXT = 'Hello, this is the assistant calling for you.';
const CALLEE_TEXT = 'Hi, yes, this is the callee speaking.';

const SAMPLE_RATE = 8000;
const FRAME_BYTES = 160;
const FRAME_MS = 20;
/** Silence decodes to |x| ≤ 8; speech frames are far louder. */
const SPEECH_RMS = 200;
/** The greeting clip is 6.64 s; the callee answers it only after it has played (no barge-in). */
const GREETING_MS = (REPLY_PCMU.length / SAMPLE_RATE) * 1000;
const CALLEE_SPEAKS_AFTER_MS = Math.ceil(GREETING_MS) + 800;
/** The UAS rings this long before answering: the greeting is generated meanwhile. */
const RING_MS = 1000;
/** voxgate pre-generates the greeting while ringing, so the callee hears it within tens of ms. */
const MAX_ANSWER_TO_GREETING_MS = 300;
/** Correlation that says "this is that recording" after a G.711 round trip. */
const SAME_AUDIO = 0.9;
/** Ring timeout for the no-answer case: short, so the test does not wait 30 s. */
const SHORT_RING_TIMEOUT_MS = 2000;
/** SIPp binds its SIP port within a few hundred ms; an INVITE sent earlier would meet ICMP unreachable. */
const SIPP_READY_TIMEOUT_MS = 5_000;
/** Call setup (INVITE, AI connect, answer) under load on a shared 2-core box. */
const SETUP_TIMEOUT_MS = 10_000;
/** Webhooks are queued on the event and POSTed at once over loopback. */
const WEBHOOK_TIMEOUT_MS = 5_000;
const POLL_MS = 25;
/** Bound on one UAS run: the longest call (answered, greeting, callee's turn) lasts about 12 s. */
const UAS_TIMEOUT_MS = 40_000;

// ---------------------------------------------------------------------------------------------------
// Webhook receiver: keeps the raw bytes so signatures are checked over exactly what was sent.

const WebhookBody = z.object({
  id: z.string(),
  type: z.string(),
  callId: z.string(),
  timestamp: z.string(),
  data: z.record(z.string(), z.unknown()),
});

interface ReceivedWebhook {
  raw: Buffer;
  headers: IncomingHttpHeaders;
  path: string;
  body: z.infer<typeof WebhookBody>;
}

interface WebhookReceiver {
  url: string;
  received: ReceivedWebhook[];
  forCall(callId: string): ReceivedWebhook[];
  waitFor(callId: string, type: string, timeoutMs: number): Promise<ReceivedWebhook>;
  close(): Promise<void>;
}

async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const received: ReceivedWebhook[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const parsed = WebhookBody.safeParse(JSON.parse(raw.toString('utf8')));
      if (parsed.success)
        received.push({ raw, headers: req.headers, path: req.url ?? '', body: parsed.data });
      res.writeHead(parsed.success ? 204 : 400).end();
    });
  });
  const port = await freeTcpPort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const forCall = (callId: string): ReceivedWebhook[] => received.filter((w) => w.body.callId === callId);
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    received,
    forCall,
    async waitFor(callId, type, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const hit = forCall(callId).find((w) => w.body.type === type);
        if (hit) return hit;
        if (Date.now() > deadline) {
          const seen = forCall(callId).map((w) => w.body.type);
          throw new Error(`no ${type} webhook for ${callId} within ${timeoutMs} ms (got ${seen.join(', ')})`);
        }
        await delay(POLL_MS);
      }
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function header(headers: IncomingHttpHeaders, name: string): string {
  const value = headers[name];
  return typeof value === 'string' ? value : '';
}

// ---------------------------------------------------------------------------------------------------
// Small helpers

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** SIPp trace time ("YYYY-MM-DD HH:MM:SS.uuuuuu", local time) → epoch ms. */
function sippTimeMs(time: string): number {
  const m = /(\d{4})-(\d{2})-(\d{2})\s+(\d{2}):(\d{2}):(\d{2})(\.\d{1,6})/.exec(time);
  if (!m) throw new Error(`unparsable SIPp trace time ${JSON.stringify(time)}`);
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  return new Date(y, mo - 1, d, h, mi, s).getTime() + Number(m[7]) * 1000;
}

function traced(result: SippResult, direction: 'sent' | 'received', start: RegExp): TracedSipMessage[] {
  return parseSippMessages(result.messages).filter(
    (m) => m.direction === direction && start.test(m.startLine),
  );
}

function sipHeader(message: TracedSipMessage, name: string): string | undefined {
  return new RegExp(`^${name}:[ \\t]*(.*?)\\r?$`, 'im').exec(message.text)?.[1];
}

describeE2E('outbound calls through the HTTP API', () => {
  let drachtio: DrachtioServer;
  let hooks: WebhookReceiver;
  let fake: FakeOpenAIRealtime | undefined;
  let voxgate: Voxgate | undefined;
  let baseUrl: string;
  /** The SIPp UAS ("the carrier") listens here; SIP_TRUNK_URI points at it. */
  let trunkPort: number;
  let rtpBase: number;
  const token = randomBytes(24).toString('base64url').slice(0, 32);
  const webhookSecret = randomBytes(24).toString('hex');
  const trunkPassword = randomBytes(12).toString('hex');

  beforeAll(async () => {
    drachtio = await startDrachtio();
    hooks = await startWebhookReceiver();
  });
  afterEach(async () => {
    await voxgate?.stop();
    voxgate = undefined;
    await fake?.stop();
    fake = undefined;
  });
  afterAll(async () => {
    await hooks?.close();
    await drachtio?.stop();
    await killAll();
  });

  /** voxgate on the fake OpenAI with a greeting, the SIPp trunk, the API and webhooks. */
  async function start(
    env: Record<string, string> = {},
  ): Promise<{ vg: Voxgate; server: FakeOpenAIRealtime }> {
    fake = new FakeOpenAIRealtime({
      replyAudio: REPLY_PCMU,
      assistantTranscript: ASSISTANT_TEXT,
      userTranscript: CALLEE_TEXT,
    });
    await fake.start();
    trunkPort = await freeUdpPort();
    rtpBase = await freeEvenUdpPortRange(2);
    const httpPort = await freeTcpPort();
    baseUrl = `http://127.0.0.1:${httpPort}`;
    voxgate = await startVoxgate({
      ...drachtioEnv(drachtio),
      RTP_PORT_MIN: String(rtpBase),
      RTP_PORT_MAX: String(rtpBase + 1),
      AI_PROVIDER: 'openai',
      OPENAI_API_KEY: 'test-key-not-secret',
      OPENAI_REALTIME_URL: fake.url,
      AGENT_GREETING: 'Greet the callee.',
      SIP_TRUNK_URI: `sip:127.0.0.1:${trunkPort}`,
      SIP_CALLER_ID: CALLER_ID,
      OUTBOUND_ALLOWED_DESTINATIONS: '+1555',
      HTTP_PORT: String(httpPort),
      HTTP_BIND_ADDRESS: '127.0.0.1',
      API_TOKEN: token,
      WEBHOOK_URL: hooks.url,
      WEBHOOK_SECRET: webhookSecret,
      ...env,
    });
    await waitForApi();
    return { vg: voxgate, server: fake };
  }

  /** The API listens a moment after "drachtio connected"; wait for /healthz. */
  async function waitForApi(): Promise<void> {
    const deadline = Date.now() + SETUP_TIMEOUT_MS;
    for (;;) {
      try {
        const res = await fetch(`${baseUrl}/healthz`);
        if (res.status === 200) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error('voxgate API did not come up');
      await delay(50);
    }
  }

  async function api(
    method: string,
    route: string,
    options: { body?: unknown; auth?: string | null } = {},
  ): Promise<{ status: number; headers: Headers; json: unknown }> {
    const headers: Record<string, string> = {};
    const auth = options.auth === undefined ? `Bearer ${token}` : options.auth;
    if (auth !== null) headers['authorization'] = auth;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${baseUrl}${route}`, {
      method,
      headers,
      ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
    });
    const text = await res.text();
    return {
      status: res.status,
      headers: res.headers,
      json: text === '' ? undefined : (JSON.parse(text) as unknown),
    };
  }

  async function placeCall(): Promise<string> {
    const res = await api('POST', '/v1/calls', { body: { to: CALLEE } });
    expect(res.status, JSON.stringify(res.json)).toBe(201);
    const created = CreatedCall.parse(res.json);
    expect(created.state).toBe('ringing');
    expect(res.headers.get('location')).toBe(`/v1/calls/${created.id}`);
    return created.id;
  }

  async function getCall(id: string): Promise<z.infer<typeof CallViewSchema>> {
    const res = await api('GET', `/v1/calls/${id}`);
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    return CallViewSchema.parse(res.json);
  }

  /** Polls GET /v1/calls/{id} until `done`; returns that view and every state seen on the way. */
  async function pollCall(
    id: string,
    done: (view: z.infer<typeof CallViewSchema>) => boolean,
    timeoutMs: number,
  ): Promise<{ view: z.infer<typeof CallViewSchema>; states: string[] }> {
    const states: string[] = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const view = await getCall(id);
      if (states.at(-1) !== view.state) states.push(view.state);
      if (done(view)) return { view, states };
      if (Date.now() > deadline) {
        throw new Error(`call ${id} still ${view.state} after ${timeoutMs} ms (seen ${states.join(' → ')})`);
      }
      await delay(POLL_MS);
    }
  }

  /** Every webhook of the call is signed with WEBHOOK_SECRET over its raw body; a changed body fails. */
  function expectSigned(webhooks: readonly ReceivedWebhook[]): void {
    for (const w of webhooks) {
      const timestamp = header(w.headers, WEBHOOK_TIMESTAMP_HEADER);
      const signature = header(w.headers, WEBHOOK_SIGNATURE_HEADER);
      expect(w.path).toBe('/hook');
      expect(
        verifyWebhookSignature(webhookSecret, timestamp, w.raw, signature, WEBHOOK_SIGNATURE_TOLERANCE_S),
      ).toBe(true);
      const tampered = Buffer.from(w.raw.toString('utf8').replace(w.body.callId, 'someone-else'));
      expect(
        verifyWebhookSignature(webhookSecret, timestamp, tampered, signature, WEBHOOK_SIGNATURE_TOLERANCE_S),
      ).toBe(false);
    }
  }

  /** Starts the SIPp UAS on the trunk port; resolves once it listens, with its (later) result. */
  async function runUas(
    scenario: string,
    options: { mediaPort?: number; vars?: Record<string, string>; keys?: Record<string, string> } = {},
  ): Promise<{ result: Promise<SippResult> }> {
    const result = runSippUas({ scenario, localPort: trunkPort, timeoutMs: UAS_TIMEOUT_MS, ...options });
    // A scenario SIPp refuses to load exits at once: say why instead of timing out on the port.
    const exitedEarly = result.then((r) => {
      throw new Error(`SIPp UAS exited before listening\n${describeSippRun(r)}`);
    });
    await Promise.race([sippListening(trunkPort, SIPP_READY_TIMEOUT_MS), exitedEarly]);
    exitedEarly.catch(() => undefined);
    return { result };
  }

  it('places a call that is answered: the greeting plays right after the answer, the callee reaches the AI, DELETE hangs up', async () => {
    const { vg, server } = await start();
    const mediaPort = await freeEvenUdpPortRange(4);
    const capture = await startCapture({ udpPorts: [mediaPort] });
    const uas = await runUas('uas-answer', {
      mediaPort,
      keys: { pcap: CALLEE_PCAP },
      vars: { ring_ms: String(RING_MS), speak_after_ms: String(CALLEE_SPEAKS_AFTER_MS) },
    });
    const sessionsBefore = server.sessions.length;
    const id = await placeCall();

    // ringing → active, as the API reports it.
    const { view: active, states } = await pollCall(id, (v) => v.state !== 'ringing', SETUP_TIMEOUT_MS);
    expect(states).toEqual(['ringing', 'active']);
    expect(active).toMatchObject({ direction: 'outbound', provider: 'openai', from: CALLER_ID, to: CALLEE });
    expect(active.timestamps.answered).toBeDefined();
    expect(active.sip.callId).toBeTruthy();
    const session: FakeSessionHandle = server.sessions[sessionsBefore]!;
    const bytesAtAnswer = session.appendedAudioBytes;

    // The callee answers the greeting; its speech reaches the AI (VAD turn + transcription).
    await expect
      .poll(
        () => session.sent.some((e) => e.type === 'conversation.item.input_audio_transcription.completed'),
        {
          timeout: CALLEE_SPEAKS_AFTER_MS + 8000,
          interval: 100,
        },
      )
      .toBe(true);
    expect(session.appendedAudioBytes - bytesAtAnswer).toBeGreaterThan(8 * 2500); // ≥ 2.5 s of PCMU
    expect(session.sent.some((e) => e.type === 'input_audio_buffer.speech_started')).toBe(true);
    expect((await getCall(id)).transcript).toContainEqual({ role: 'caller', text: CALLEE_TEXT });

    // DELETE hangs up: 204 once the BYE is answered.
    const deleted = await api('DELETE', `/v1/calls/${id}`);
    expect(deleted.status).toBe(204);
    const sipp = await uas.result;
    const packets = await capture.stop();
    expect(sipp.code, describeSippRun(sipp)).toBe(0);
    const [bye] = traced(sipp, 'received', /^BYE /);
    expect(bye, describeSippRun(sipp)).toBeDefined();
    expect(sipHeader(bye!, 'Reason')).toMatch(/^Q\.850;cause=16/);

    const ended = await getCall(id);
    expect(ended.state).toBe('ended');
    expect(ended.termination).toMatchObject({ cause: 'agent-hangup' });
    expect(ended.timestamps.ended).toBeDefined();
    expect(ended.durationMs).toBeGreaterThan(CALLEE_SPEAKS_AFTER_MS);
    expect(ended.sip.status).toBe(200);

    // The INVITE went to the trunk with our caller ID.
    const [invite] = traced(sipp, 'received', /^INVITE /);
    expect(invite!.startLine).toBe(`INVITE sip:${CALLEE}@127.0.0.1:${trunkPort} SIP/2.0`);
    expect(sipHeader(invite!, 'From')).toContain(`sip:${CALLER_ID}@`);

    // What the callee heard: the greeting, from the first packets after the answer.
    const answered = await vg.waitForLog(byMsg('call answered'), 1000);
    const rtpPort = Number(answered['rtpPort']);
    const toCallee = packets
      .filter((p) => p.srcPort === rtpPort && p.dstPort === mediaPort && isRtp(p.payload))
      .map((p) => ({ at: p.ts * 1000, rtp: parseRtp(p.payload) }));
    expect(toCallee.length).toBeGreaterThan(GREETING_MS / FRAME_MS);
    const greetingWindow = toCallee.slice(0, Math.ceil((GREETING_MS + 1000) / FRAME_MS));
    const heard = decodeG711('PCMU', Buffer.concat(greetingWindow.map((p) => p.rtp.payload)));
    const match = findReference(heard, REPLY_LINEAR);
    const firstLoud = toCallee.find((p) => rms(decodeG711('PCMU', p.rtp.payload)) > SPEECH_RMS);
    const [ok200] = traced(sipp, 'sent', /^SIP\/2\.0 200 /).filter((m) =>
      /INVITE/.test(sipHeader(m, 'CSeq') ?? ''),
    );
    const answeredAt = sippTimeMs(ok200!.time);
    const toFirstPacket = toCallee[0]!.at - answeredAt;
    const toGreetingStart = toCallee[Math.floor(match.lag / FRAME_BYTES)]!.at - answeredAt;
    const toFirstLoud = firstLoud!.at - answeredAt;
    console.log(
      `outbound: 200 OK → first RTP ${toFirstPacket.toFixed(1)} ms, → greeting start ${toGreetingStart.toFixed(1)} ms, ` +
        `→ first loud greeting packet ${toFirstLoud.toFixed(1)} ms; greeting correlation ${match.correlation.toFixed(3)}`,
    );
    expect(match.correlation).toBeGreaterThanOrEqual(SAME_AUDIO);
    expect(match.lag).toBeLessThan(MAX_ANSWER_TO_GREETING_MS * (SAMPLE_RATE / 1000));
    expect(toFirstLoud).toBeGreaterThanOrEqual(0);
    expect(toFirstLoud).toBeLessThan(MAX_ANSWER_TO_GREETING_MS);

    // Webhooks: ringing, answered, ended — signed, in order, the ended one with the outcome.
    const endedHook = await hooks.waitFor(id, 'call.ended', WEBHOOK_TIMEOUT_MS);
    const webhooks = hooks.forCall(id);
    expect(webhooks.map((w) => w.body.type)).toEqual(['call.ringing', 'call.answered', 'call.ended']);
    expectSigned(webhooks);
    expect(webhooks[0]!.body.data).toMatchObject({ direction: 'outbound', from: CALLER_ID, to: CALLEE });
    expect(endedHook.body.data).toMatchObject({ reason: 'agent-hangup' });
    const endedData = z
      .object({
        durationMs: z.number(),
        transcript: z.array(z.object({ role: z.enum(['caller', 'agent']), text: z.string() })),
      })
      .parse(endedHook.body.data);
    expect(endedData.durationMs).toBeGreaterThan(CALLEE_SPEAKS_AFTER_MS);
    expect(endedData.transcript).toContainEqual({ role: 'caller', text: CALLEE_TEXT });
    // The greeting's transcript completed while ringing; it still opens the call's transcript.
    expect(endedData.transcript[0]).toEqual({ role: 'agent', text: ASSISTANT_TEXT });
  }, 60_000);

  it('sets up media on a 183 with SDP: RTP flows to the callee before the 200 OK', async () => {
    const { vg } = await start();
    const mediaPort = await freeEvenUdpPortRange(4);
    const capture = await startCapture({ udpPorts: [mediaPort] });
    const uas = await runUas('uas-early-media', {
      mediaPort,
      keys: { pcap: CALLEE_PCAP },
      // The callee talks at once, so the scenario is waiting for our BYE (not pausing) when it comes.
      vars: { ring_ms: '1500', speak_after_ms: '0' },
    });
    const id = await placeCall();
    await vg.waitForLog(byMsg('early media started'), SETUP_TIMEOUT_MS);
    await pollCall(id, (v) => v.state === 'active', SETUP_TIMEOUT_MS);
    expect((await api('DELETE', `/v1/calls/${id}`)).status).toBe(204);
    const sipp = await uas.result;
    expect(sipp.code, describeSippRun(sipp)).toBe(0);
    const packets = (await capture.stop()).filter((p) => p.dstPort === mediaPort && isRtp(p.payload));
    const answered = vg.findLogs(byMsg('call answered'))[0]!;
    const rtpPort = Number(answered['rtpPort']);
    const fromVoxgate = packets.filter((p) => p.srcPort === rtpPort);
    // The 200 OK came ~1.5 s after the 183: voxgate's RTP began during that time, on the same port and SSRC.
    const okAt = Number(answered['time']);
    expect(fromVoxgate.filter((p) => p.ts * 1000 < okAt - 500).length).toBeGreaterThan(10);
    expect(new Set(fromVoxgate.map((p) => parseRtp(p.payload).ssrc)).size).toBe(1);
  });

  it('answers a digest challenge from the trunk with SIP_TRUNK_USERNAME/PASSWORD', async () => {
    await start({ SIP_TRUNK_USERNAME: TRUNK_USER, SIP_TRUNK_PASSWORD: trunkPassword });
    const uas = await runUas('uas-auth-answer', { keys: { user: TRUNK_USER, password: trunkPassword } });
    const id = await placeCall();
    const { states } = await pollCall(id, (v) => v.state !== 'ringing', SETUP_TIMEOUT_MS);
    expect(states).toEqual(['ringing', 'active']);
    expect((await api('DELETE', `/v1/calls/${id}`)).status).toBe(204);
    const sipp = await uas.result;
    // Exit 0 means verifyauth accepted the digest response (a wrong one gets 403 and fails the run).
    expect(sipp.code, describeSippRun(sipp)).toBe(0);
    const invites = traced(sipp, 'received', /^INVITE /);
    expect(invites).toHaveLength(2);
    expect(sipHeader(invites[0]!, 'Authorization')).toBeUndefined();
    expect(sipHeader(invites[1]!, 'Authorization')).toMatch(
      new RegExp(`^Digest .*username="${TRUNK_USER}".*realm="voxgate-e2e"`),
    );
    expect((await getCall(id)).termination).toMatchObject({ cause: 'agent-hangup' });
  });

  const refusals = [
    { status: 486, cause: 'callee-busy' },
    { status: 603, cause: 'callee-declined' },
    { status: 404, cause: 'callee-not-found' },
  ] as const;

  it('reports busy, declined and not-found callees through the API and the call.ended webhook', async () => {
    await start();
    for (const refusal of refusals) {
      const uas = await runUas('uas-reject', {
        vars: { status: String(refusal.status), ring_ms: '500' },
      });
      const id = await placeCall();
      const { view } = await pollCall(id, (v) => v.state === 'ended', SETUP_TIMEOUT_MS);
      const sipp = await uas.result;
      expect(sipp.code, describeSippRun(sipp)).toBe(0);
      expect(view.termination).toMatchObject({ cause: refusal.cause, sipStatus: refusal.status });
      expect(view.sip.status).toBe(refusal.status);
      expect(view.timestamps.answered).toBeUndefined();
      expect(view.durationMs).toBe(0);

      const endedHook = await hooks.waitFor(id, 'call.ended', WEBHOOK_TIMEOUT_MS);
      expect(endedHook.body.data).toMatchObject({
        reason: refusal.cause,
        sipStatus: refusal.status,
        durationMs: 0,
      });
      const webhooks = hooks.forCall(id);
      expect(webhooks.map((w) => w.body.type)).toEqual(['call.ringing', 'call.ended']);
      expectSigned(webhooks);
    }
  }, 60_000);

  it('cancels an unanswered call after OUTBOUND_RING_TIMEOUT_MS and reports no-answer', async () => {
    await start({ OUTBOUND_RING_TIMEOUT_MS: String(SHORT_RING_TIMEOUT_MS) });
    const uas = await runUas('uas-ring-no-answer');
    const postedAt = Date.now();
    const id = await placeCall();
    const { view } = await pollCall(id, (v) => v.state === 'ended', SHORT_RING_TIMEOUT_MS + SETUP_TIMEOUT_MS);
    const sipp = await uas.result;
    expect(sipp.code, describeSippRun(sipp)).toBe(0);
    const [cancel] = traced(sipp, 'received', /^CANCEL /);
    const [invite] = traced(sipp, 'received', /^INVITE /);
    const cancelAfterMs = sippTimeMs(cancel!.time) - sippTimeMs(invite!.time);
    console.log(
      `outbound: CANCEL ${cancelAfterMs.toFixed(0)} ms after the INVITE (ring timeout ${SHORT_RING_TIMEOUT_MS} ms)`,
    );
    expect(cancelAfterMs).toBeGreaterThan(SHORT_RING_TIMEOUT_MS - 200);
    expect(cancelAfterMs).toBeLessThan(SHORT_RING_TIMEOUT_MS + 1000);
    expect(Date.now() - postedAt).toBeGreaterThan(SHORT_RING_TIMEOUT_MS - 200);

    expect(view.termination).toMatchObject({ cause: 'no-answer', sipStatus: 487 });
    expect(view.sip.status).toBe(487);
    const endedHook = await hooks.waitFor(id, 'call.ended', WEBHOOK_TIMEOUT_MS);
    expect(endedHook.body.data).toMatchObject({ reason: 'no-answer', sipStatus: 487 });
    const webhooks = hooks.forCall(id);
    expect(webhooks.map((w) => w.body.type)).toEqual(['call.ringing', 'call.ended']);
    expectSigned(webhooks);
  });

  it('guards the live API: token, allow-list (no INVITE sent), body validation, /readyz, /openapi.json', async () => {
    const { vg } = await start();
    // Nothing may reach the trunk while this test runs: a plain socket stands in for the carrier.
    const trunk = dgram.createSocket('udp4');
    const datagrams: Buffer[] = [];
    trunk.on('message', (msg) => datagrams.push(msg));
    await new Promise<void>((resolve) => trunk.bind(trunkPort, '127.0.0.1', resolve));
    try {
      const noToken = await api('POST', '/v1/calls', { body: { to: CALLEE }, auth: null });
      expect(noToken.status).toBe(401);
      expect(noToken.headers.get('www-authenticate')).toMatch(/^Bearer /);
      expect((await api('GET', '/v1/calls', { auth: 'Bearer wrong-token-wrong-token-wrong' })).status).toBe(
        401,
      );

      const foreign = await api('POST', '/v1/calls', { body: { to: '+442071838750' } });
      expect(foreign.status).toBe(403);
      expect(ErrorBody.parse(foreign.json).error).toBe('destination_not_allowed');

      const bad = await api('POST', '/v1/calls', { body: { too: CALLEE } });
      expect(bad.status).toBe(400);
      const badBody = ErrorBody.parse(bad.json);
      expect(badBody.error).toBe('validation');
      expect(badBody.details?.map((d) => d.field)).toEqual(expect.arrayContaining(['to', 'too']));

      const ready = await api('GET', '/readyz', { auth: null });
      expect(ready.status).toBe(200);
      const readiness = ReadinessSchema.parse(ready.json);
      expect(readiness.ready).toBe(true);
      expect(readiness.checks['drachtio']).toEqual({ ok: true, detail: 'connected' });

      const spec = await api('GET', '/openapi.json', { auth: null });
      expect(spec.status).toBe(200);
      const document = z
        .object({ openapi: z.string(), paths: z.record(z.string(), z.unknown()) })
        .parse(spec.json);
      expect(document.openapi).toBe('3.1.0');
      expect(Object.keys(document.paths)).toEqual(expect.arrayContaining(['/v1/calls', '/v1/calls/{id}']));

      // The refused calls never started: no call, no INVITE.
      await delay(500);
      expect(datagrams).toEqual([]);
      expect(vg.findLogs(byMsg('call started'))).toEqual([]);
      const list = z.object({ calls: z.array(z.unknown()) }).parse((await api('GET', '/v1/calls')).json);
      expect(list.calls).toEqual([]);
    } finally {
      await new Promise<void>((resolve) => trunk.close(() => resolve()));
    }
  });
});
