// Transfer to a human, end to end: a SIPp caller → drachtio-server → voxgate (child process) with the
// fake OpenAI Realtime server, whose model calls transfer_call once the call is answered. The caller's
// side plays the carrier: it accepts the REFER and reports by NOTIFY, declines it, or does not allow
// it (405), in which case voxgate calls the human (a second SIPp, as UAS) through its trunk and
// relays audio between the two legs. In warm mode voxgate calls the human at once and the agent briefs
// them before the legs are joined; a human who declines sends the caller back to the agent. RTP is
// observed on the wire with dumpcap.
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { describeE2E, startDrachtio, type DrachtioServer } from '../helpers/drachtio.js';
import { REPO_ROOT, artifactsDir, killAll } from '../helpers/processes.js';
import { freeEvenUdpPortRange, freeUdpPort } from '../helpers/ports.js';
import {
  byMsg,
  drachtioEnv,
  startVoxgate,
  type LogPredicate,
  type LogRecord,
  type Voxgate,
} from '../helpers/voxgate.js';
import {
  describeSippRun,
  parseSippMessages,
  runSipp,
  runSippUas,
  sippListening,
  type SippResult,
  type TracedSipMessage,
} from '../helpers/sipp.js';
import { parseRtp, startCapture } from '../helpers/rtp-capture.js';
import { writeRtpPcap, type PcapUdpPacket } from '../helpers/pcap.js';
import {
  FakeOpenAIRealtime,
  type FakeRealtimeOptions,
  type FakeSessionHandle,
} from '../fakes/openai-realtime.js';
import { alignSegments, decodeG711, findReference, rms } from '../helpers/audio-analysis.js';

/**
 * Correlation of `reference` inside `signal`, tolerant of whole 20 ms frames the receiving jitter
 * buffer drops (quiet frames, when it shrinks) or inserts: a single-lag correlation would fall apart
 * after such a shift although every word is there.
 */
function heardIn(
  signal: ArrayLike<number>,
  reference: ArrayLike<number>,
): { correlation: number; lag: number } {
  const { lag } = findReference(signal, reference);
  return { correlation: alignSegments(signal, reference, lag).correlation, lag };
}

const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures');
const fixture = (name: string): string => path.join(FIXTURES, name);
const REPLY_PCMU = readFileSync(fixture('assistant-reply.ulaw'));
const CALLER_SPEECH = ((): Int16Array => {
  const bytes = readFileSync(fixture('caller-speech.s16le'));
  return new Int16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
})();

const SAMPLE_RATE = 8000;
const FRAME_BYTES = 160;
/** The human's line in the bridged test: the first 3.2 s of the assistant clip (a different voice than the caller's). */
const HUMAN_FRAMES = 160;
const HUMAN_PCMU = REPLY_PCMU.subarray(0, HUMAN_FRAMES * FRAME_BYTES);
const HUMAN_LINEAR = decodeG711('PCMU', HUMAN_PCMU);
/** The agent's line in the warm tests (the briefing, or its reply after a failure): the rest of the
 * assistant clip, 3.4 s, so it cannot be mistaken for the human's line. */
const AGENT_LINE_PCMU = REPLY_PCMU.subarray(HUMAN_FRAMES * FRAME_BYTES);
const AGENT_LINE_LINEAR = decodeG711('PCMU', AGENT_LINE_PCMU);

/** The model's tool call goes out once voxgate logs the answer; setup under load can take seconds. */
const ANSWER_TIMEOUT_MS = 10_000;
/** SIPp binds its SIP port within a few hundred ms; an INVITE sent earlier would meet ICMP unreachable. */
const SIPP_READY_TIMEOUT_MS = 5_000;
/** Twilio and others wait up to 32 s for our BYE after the final NOTIFY; we promise to leave at once. */
const MAX_BYE_AFTER_FINAL_NOTIFY_MS = 1000;
/** The scenario's wait between the 202 and the final NOTIFY: the caller hears ringback meanwhile. */
const NOTIFY_PAUSE_MS = 1500;
/** Ringback is on for the first 2 s of its cadence: only look inside that (and after the switch-over). */
const RINGBACK_ON_MS = 2000;
const RINGBACK_SETTLE_MS = 60;
/** Ringback is ~−19 dBm0 per tone (RMS ≈ 2500); silence decodes to |x| ≤ 8. */
const TONE_RMS = 1000;
/** Correlation that says "this is that recording" after a G.711 round trip through the relay. */
const SAME_AUDIO = 0.8;
/** Best correlation of a clip someone never heard (other speech, tones): far below SAME_AUDIO. */
const NOT_HEARD = 0.5;
/** Warm test: the briefing (3.4 s) is over ~4.5 s after the answer; the human and the caller start
 * talking well after that, so whatever they say reaches the other party through the relay. */
const WARM_HUMAN_SPEAKS_AFTER_MS = 6000;
const WARM_CALLER_SPEAKS_AFTER_MS = 7000;
/** Warm hang-up test: the human leaves 1 s into a briefing streamed in real time (3.4 s of deltas). */
const HUMAN_HANGS_UP_AFTER_MS = 1000;
const REALTIME_DELTA_MS = 100;
/** The last 1.5 s of the 3.4 s briefing streams well after the human has left. */
const BRIEFING_END_SAMPLES = 1.5 * SAMPLE_RATE;
/** ...each delta a little sooner than real time, as providers stream, so playout never runs dry. */
const REALTIME_DELTA_INTERVAL_MS = 90;
/** Warm decline test: the human's phone rings this long before the 603. */
const DECLINE_RING_MS = 1500;
/** ...the agent's reply to the failure is over ~5.5 s after the answer; then the caller talks to it. */
const DECLINED_CALLER_SPEAKS_AFTER_MS = 6000;

/** Power of one frequency over a block (Goertzel: a single DFT bin). */
function goertzelPower(samples: Int16Array, frequencyHz: number): number {
  const coefficient = 2 * Math.cos((2 * Math.PI * frequencyHz) / SAMPLE_RATE);
  let s1 = 0;
  let s2 = 0;
  for (const x of samples) {
    const s0 = x + coefficient * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  return (s1 * s1 + s2 * s2 - coefficient * s1 * s2) / samples.length;
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

function header(message: TracedSipMessage, name: string): string | undefined {
  return new RegExp(`^${name}:[ \\t]*(.*?)\\r?$`, 'im').exec(message.text)?.[1];
}

function progress(event: string): LogPredicate {
  return (record) => record['msg'] === 'call progress' && record['event'] === event;
}

function logTime(record: LogRecord): number {
  return Number(record['time']);
}

/** RTP payloads of `packets` from `srcPorts` to `dstPort`, decoded from PCMU, in capture order. */
function heard(packets: PcapUdpPacket[], srcPorts: readonly number[], dstPort: number): Int16Array {
  const payloads = packets
    .filter((p) => srcPorts.includes(p.srcPort) && p.dstPort === dstPort)
    .map((p) => parseRtp(p.payload).payload);
  return decodeG711('PCMU', Buffer.concat(payloads));
}

function udpPortTaken(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket('udp4');
    socket.once('error', () => {
      socket.close();
      resolve(true);
    });
    socket.bind(port, '127.0.0.1', () => socket.close(() => resolve(false)));
  });
}

/**
 * Asserts that the caller heard ringback, not silence, between `fromMs` and `toMs` (wall clock):
 * energy in nearly every frame, and 440 + 480 Hz far above other tones. Returns a log line.
 */
function expectRingback(
  packets: PcapUdpPacket[],
  srcPort: number,
  dstPort: number,
  fromMs: number,
  toMs: number,
): string {
  const window = packets.filter(
    (p) => p.srcPort === srcPort && p.dstPort === dstPort && p.ts * 1000 >= fromMs && p.ts * 1000 <= toMs,
  );
  const frames = window.map((p) => decodeG711('PCMU', parseRtp(p.payload).payload));
  expect(frames.length).toBeGreaterThan(40); // ≥ 0.8 s
  const loud = frames.filter((f) => rms(f) > TONE_RMS).length;
  expect(loud / frames.length).toBeGreaterThan(0.9);
  const audio = Int16Array.from(frames.flatMap((f) => Array.from(f)));
  const tone = Math.min(goertzelPower(audio, 440), goertzelPower(audio, 480));
  const elsewhere = Math.max(...[350, 620, 1000, 1400, 2000].map((f) => goertzelPower(audio, f)));
  expect(tone).toBeGreaterThan(20 * elsewhere);
  return `ringback window ${frames.length} frames, ${loud} loud; 440/480 Hz ${(10 * Math.log10(tone / elsewhere)).toFixed(1)} dB over other tones`;
}

/** Index of the function_call_output for `callId` among the session's client events (-1: none). */
function toolOutputIndex(session: FakeSessionHandle, callId: string): number {
  return session.clientEvents.findIndex((e) => {
    const item = e.event['item'] as Record<string, unknown> | undefined;
    return (
      e.event['type'] === 'conversation.item.create' &&
      item?.['type'] === 'function_call_output' &&
      item['call_id'] === callId
    );
  });
}

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describeE2E('transfer to a human', () => {
  let drachtio: DrachtioServer;
  let fake: FakeOpenAIRealtime | undefined;
  let voxgate: Voxgate | undefined;
  let rtpBase: number;
  let humanPcap: string;

  beforeAll(async () => {
    drachtio = await startDrachtio();
    // The human's RTP, as SIPp replays it (ports are rebased on the lowest destination port).
    humanPcap = path.join(artifactsDir('human-pcap'), 'human-pcmu.pcap');
    writeRtpPcap(
      humanPcap,
      Array.from({ length: HUMAN_FRAMES }, (_, i) => ({
        payloadType: 0,
        seq: 100 + i,
        timestamp: i * FRAME_BYTES,
        ssrc: 0x0b0b0001,
        marker: i === 0,
        payload: HUMAN_PCMU.subarray(i * FRAME_BYTES, (i + 1) * FRAME_BYTES),
      })),
      { srcPort: 6000, dstPort: 6001 },
    );
  });
  afterEach(async () => {
    await voxgate?.stop();
    voxgate = undefined;
    await fake?.stop();
    fake = undefined;
  });
  afterAll(async () => {
    await drachtio?.stop();
    await killAll();
  });

  /** voxgate on the fake OpenAI, no greeting, with a two-call RTP range (caller leg + human leg). */
  async function start(
    env: Record<string, string>,
    fakeOptions: Partial<FakeRealtimeOptions> = {},
  ): Promise<{ vg: Voxgate; server: FakeOpenAIRealtime }> {
    fake = new FakeOpenAIRealtime({ replyAudio: REPLY_PCMU, ...fakeOptions });
    await fake.start();
    rtpBase = await freeEvenUdpPortRange(4);
    voxgate = await startVoxgate({
      ...drachtioEnv(drachtio),
      RTP_PORT_MIN: String(rtpBase),
      RTP_PORT_MAX: String(rtpBase + 3),
      AI_PROVIDER: 'openai',
      OPENAI_API_KEY: 'x',
      OPENAI_REALTIME_URL: fake.url,
      AGENT_GREETING: '',
      ...env,
    });
    return { vg: voxgate, server: fake };
  }

  /** The caller's side refuses REFER, so the human is called through the trunk (a SIPp UAS on uasPort). */
  function bridgeEnv(uasPort: number): Record<string, string> {
    return {
      SIP_TRUNK_URI: `sip:127.0.0.1:${uasPort}`,
      SIP_CALLER_ID: '+15550100002',
      TRANSFER_TARGETS: 'agent=tel:+15550100003',
    };
  }

  /** Once the call is answered, the fake model calls transfer_call; returns the session and call_id. */
  async function modelTransfers(
    vg: Voxgate,
    server: FakeOpenAIRealtime,
    args: Record<string, unknown> = { destination: 'agent' },
  ): Promise<{ session: FakeSessionHandle; callId: string; answered: LogRecord }> {
    const answered = await vg.waitForLog(byMsg('call answered'), ANSWER_TIMEOUT_MS);
    const session = await server.waitForSession();
    const callId = session.startFunctionCall('transfer_call', args);
    if (callId === undefined) throw new Error('the fake could not start the transfer_call response');
    return { session, callId, answered };
  }

  it('REFER accepted: the caller hears ringback until the final NOTIFY, then voxgate hangs up within 1 s', async () => {
    const target = `sip:+15550100@127.0.0.1:${await freeUdpPort()}`;
    const { vg, server } = await start({ TRANSFER_TARGETS: `agent=${target}` });
    const mediaPort = await freeEvenUdpPortRange(4);
    const capture = await startCapture({ udpPorts: [mediaPort] });
    const caller = runSipp({
      scenario: 'uac-refer-accept',
      target: `127.0.0.1:${drachtio.sipPort}`,
      mediaPort,
      vars: { notify_pause_ms: String(NOTIFY_PAUSE_MS) },
      timeoutMs: 20_000,
    });
    const { session, answered } = await modelTransfers(vg, server);
    const sipp = await caller;
    const packets = await capture.stop();
    expect(sipp.code, describeSippRun(sipp)).toBe(0);

    // The REFER named the configured target and said who referred.
    const [refer] = traced(sipp, 'received', /^REFER /);
    expect(header(refer!, 'Refer-To')).toBe(`<${target}>`);
    expect(header(refer!, 'Referred-By')).toMatch(/^<sips?:.+>$/);

    // voxgate left as soon as the carrier reported success.
    const finalNotify = traced(sipp, 'sent', /^NOTIFY /).find((m) =>
      /^Subscription-State: terminated/im.test(m.text),
    );
    const [bye] = traced(sipp, 'received', /^BYE /);
    const byeLatencyMs = sippTimeMs(bye!.time) - sippTimeMs(finalNotify!.time);
    console.log(`transfer: BYE ${byeLatencyMs.toFixed(1)} ms after the final NOTIFY`);
    expect(byeLatencyMs).toBeGreaterThanOrEqual(0);
    expect(byeLatencyMs).toBeLessThan(MAX_BYE_AFTER_FINAL_NOTIFY_MS);

    const ended = await vg.waitForLog(byMsg('call ended'), 5000);
    expect(ended['cause']).toBe('transferred');
    const started = await vg.waitForLog(progress('transfer.started'), 1000);
    const succeeded = await vg.waitForLog(progress('transfer.succeeded'), 1000);
    expect(started['target']).toBe('agent');
    expect(succeeded['mode']).toBe('refer');
    expect(vg.findLogs(progress('transfer.failed'))).toEqual([]);
    const handled = vg.findLogs(byMsg('tool call handled'));
    expect(handled.map((r) => [r['tool'], r['ok']])).toEqual([['transfer_call', true]]);
    expect(
      session.sent.some(
        (e) => e.type === 'response.function_call_arguments.done' && e.event['name'] === 'transfer_call',
      ),
    ).toBe(true);
    await expect.poll(() => session.closed, { timeout: 3000 }).toBe(true);

    // Ringback, not silence, while the carrier was connecting: energy, and 440 + 480 Hz on top.
    const rtpPort = Number(answered['rtpPort']);
    const from = logTime(started) + RINGBACK_SETTLE_MS;
    const to = Math.min(logTime(succeeded), logTime(started) + RINGBACK_ON_MS);
    console.log(`transfer: ${expectRingback(packets, rtpPort, mediaPort, from, to)}`);
  });

  it('REFER declined: the agent is told (ok: false) and carries on; the caller hangs up later', async () => {
    const { vg, server } = await start({ TRANSFER_TARGETS: 'agent=sip:+15550100@127.0.0.1:5999' });
    const caller = runSipp({
      scenario: 'uac-refer-reject',
      target: `127.0.0.1:${drachtio.sipPort}`,
      vars: { call_ms: '2000' },
      timeoutMs: 20_000,
    });
    const { session, callId } = await modelTransfers(vg, server);
    const sipp = await caller;
    expect(sipp.code, describeSippRun(sipp)).toBe(0);
    const [refer] = traced(sipp, 'received', /^REFER /);
    expect(header(refer!, 'Refer-To')).toBe('<sip:+15550100@127.0.0.1:5999>');

    // The function call's output says it failed, and a response follows: the agent speaks again.
    const outputIndex = toolOutputIndex(session, callId);
    expect(outputIndex).toBeGreaterThanOrEqual(0);
    const item = session.clientEvents[outputIndex]!.event['item'] as { output: string };
    const output = JSON.parse(item.output) as { ok: unknown; error: unknown };
    expect(output.ok).toBe(false);
    expect(String(output.error)).toMatch(/603/);
    expect(
      session.clientEvents.slice(outputIndex + 1).some((e) => e.event['type'] === 'response.create'),
    ).toBe(true);
    expect(session.responses.some((r) => r.origin === 'client')).toBe(true);

    const failed = await vg.waitForLog(progress('transfer.failed'), 1000);
    expect(failed['reason']).toMatch(/603/);
    const ended = await vg.waitForLog(byMsg('call ended'), 5000);
    expect(ended['cause']).toBe('caller-hangup');
    expect(vg.findLogs(byMsg('call ended'))).toHaveLength(1);
    expect(vg.findLogs(progress('transfer.succeeded'))).toEqual([]);
    expect(vg.logs.filter((r) => r['cause'] === 'transferred')).toEqual([]);
  });

  it('REFER not allowed (405): voxgate calls the human through its trunk and relays audio both ways', async () => {
    const uasPort = await freeUdpPort();
    const uasMediaPort = await freeEvenUdpPortRange(4);
    let uacMediaPort = await freeEvenUdpPortRange(4);
    while (Math.abs(uacMediaPort - uasMediaPort) < 4) uacMediaPort = await freeEvenUdpPortRange(4);
    const { vg, server } = await start(bridgeEnv(uasPort));
    const capture = await startCapture({ udpPorts: [uacMediaPort, uasMediaPort] });
    const human = runSipp({
      scenario: 'uas-human',
      target: `127.0.0.1:${drachtio.sipPort}`, // unused by a UAS: it answers where Via says
      localPort: uasPort,
      mediaPort: uasMediaPort,
      keys: { pcap: humanPcap },
      vars: { speak_after_ms: '500' },
      timeoutMs: 30_000,
    });
    await waitUntil('the human SIPp to bind', () => udpPortTaken(uasPort), SIPP_READY_TIMEOUT_MS);
    const caller = runSipp({
      scenario: 'uac-refer-bridge',
      target: `127.0.0.1:${drachtio.sipPort}`,
      mediaPort: uacMediaPort,
      keys: { pcap: fixture('caller-speech-pcmu.pcap') },
      vars: { speak_after_ms: '1000', stay_ms: '6500' },
      timeoutMs: 30_000,
    });
    const { session, answered } = await modelTransfers(vg, server);
    const [uac, uas] = await Promise.all([caller, human]);
    const packets = await capture.stop();
    expect(uac.code, describeSippRun(uac)).toBe(0);
    expect(uas.code, describeSippRun(uas)).toBe(0);

    // The human was called through the trunk, with our caller ID, and hung up when the caller left.
    const [invite] = traced(uas, 'received', /^INVITE /);
    expect(invite!.startLine).toBe(`INVITE sip:+15550100003@127.0.0.1:${uasPort} SIP/2.0`);
    expect(header(invite!, 'From')).toMatch(/sip:\+15550100002@/);
    expect(traced(uas, 'received', /^BYE /)).toHaveLength(1);
    const [refer] = traced(uac, 'received', /^REFER /);
    expect(header(refer!, 'Refer-To')).toBe('<tel:+15550100003>');

    const ended = await vg.waitForLog(byMsg('call ended'), 5000);
    expect(ended['cause']).toBe('caller-hangup');
    expect(vg.findLogs(byMsg('call ended'))).toHaveLength(1);
    const succeeded = await vg.waitForLog(progress('transfer.succeeded'), 1000);
    expect(succeeded['mode']).toBe('bridge');
    expect(vg.findLogs(byMsg('REFER not allowed here; bridging the transfer instead'))).toHaveLength(1);

    // The agent left when the human came on, long before the caller hung up.
    expect(session.closed).toBe(true);
    expect(session.closedAt!).toBeLessThan(logTime(succeeded) + 1000);
    expect(session.closedAt!).toBeLessThan(logTime(ended) - 3000);

    // Caller → human and human → caller, each through its own leg.
    const callerPort = Number(answered['rtpPort']);
    const voxgatePorts = [rtpBase, rtpBase + 2];
    const humanLegPorts = voxgatePorts.filter((p) => p !== callerPort);
    expect(humanLegPorts).toHaveLength(1);
    const toHuman = heard(packets, humanLegPorts, uasMediaPort);
    const toCaller = heard(packets, [callerPort], uacMediaPort);
    const callerHeardByHuman = heardIn(toHuman, CALLER_SPEECH);
    const humanHeardByCaller = heardIn(toCaller, HUMAN_LINEAR);
    console.log(
      `bridge: caller→human correlation ${callerHeardByHuman.correlation.toFixed(3)}, human→caller ${humanHeardByCaller.correlation.toFixed(3)}`,
    );
    expect(callerHeardByHuman.correlation).toBeGreaterThan(SAME_AUDIO);
    expect(humanHeardByCaller.correlation).toBeGreaterThan(SAME_AUDIO);
  }, 45_000);

  it('caller hangs up while the human is still ringing: voxgate cancels the human INVITE at once', async () => {
    const uasPort = await freeUdpPort();
    // A transfer timeout far beyond the assertion, so only the caller leaving can explain a prompt CANCEL.
    const { vg, server } = await start({ ...bridgeEnv(uasPort), TRANSFER_TIMEOUT_MS: '15000' });
    const human = runSipp({
      scenario: 'uas-human-no-answer',
      target: `127.0.0.1:${drachtio.sipPort}`, // unused by a UAS: it answers where Via says
      localPort: uasPort,
      timeoutMs: 30_000,
    });
    await waitUntil('the human SIPp to bind', () => udpPortTaken(uasPort), SIPP_READY_TIMEOUT_MS);
    const caller = runSipp({
      scenario: 'uac-refer-bridge',
      target: `127.0.0.1:${drachtio.sipPort}`,
      keys: { pcap: fixture('caller-speech-pcmu.pcap') },
      vars: { speak_after_ms: '1500', stay_ms: '0' },
      timeoutMs: 30_000,
    });
    await modelTransfers(vg, server);
    const [uac, uas] = await Promise.all([caller, human]);
    expect(uac.code, describeSippRun(uac)).toBe(0);
    expect(uas.code, describeSippRun(uas)).toBe(0);

    const [bye] = traced(uac, 'sent', /^BYE /);
    const [cancel] = traced(uas, 'received', /^CANCEL /);
    const cancelLatencyMs = sippTimeMs(cancel!.time) - sippTimeMs(bye!.time);
    console.log(`bridge: human INVITE canceled ${cancelLatencyMs.toFixed(1)} ms after the caller's BYE`);
    expect(cancelLatencyMs).toBeGreaterThanOrEqual(0);
    expect(cancelLatencyMs).toBeLessThan(1000);

    const ended = await vg.waitForLog(byMsg('call ended'), 5000);
    expect(ended['cause']).toBe('caller-hangup');
    expect(vg.findLogs(byMsg('call ended'))).toHaveLength(1);
    expect(vg.findLogs(progress('transfer.succeeded'))).toEqual([]);
    // Both legs' RTP ports went back to the pool.
    await waitUntil(
      'both RTP ports to be released',
      async () => !(await udpPortTaken(rtpBase)) && !(await udpPortTaken(rtpBase + 2)),
      3000,
    );
  });

  it('warm transfer: the agent briefs the human while the caller hears ringback, then caller and human talk', async () => {
    const uasPort = await freeUdpPort();
    const uasMediaPort = await freeEvenUdpPortRange(4);
    let uacMediaPort = await freeEvenUdpPortRange(4);
    while (Math.abs(uacMediaPort - uasMediaPort) < 4) uacMediaPort = await freeEvenUdpPortRange(4);
    const { vg, server } = await start(
      { ...bridgeEnv(uasPort), TRANSFER_MODE: 'warm' },
      { replyAudio: AGENT_LINE_PCMU },
    );
    const capture = await startCapture({ udpPorts: [uacMediaPort, uasMediaPort] });
    const human = runSippUas({
      scenario: 'uas-human',
      localPort: uasPort,
      mediaPort: uasMediaPort,
      keys: { pcap: humanPcap },
      vars: { speak_after_ms: String(WARM_HUMAN_SPEAKS_AFTER_MS) },
      timeoutMs: 40_000,
    });
    await sippListening(uasPort, SIPP_READY_TIMEOUT_MS);
    const caller = runSipp({
      scenario: 'uac-speak-later',
      target: `127.0.0.1:${drachtio.sipPort}`,
      mediaPort: uacMediaPort,
      keys: { pcap: fixture('caller-speech-pcmu.pcap') },
      vars: { speak_after_ms: String(WARM_CALLER_SPEAKS_AFTER_MS), stay_ms: '5000' },
      timeoutMs: 40_000,
    });
    const { session, answered } = await modelTransfers(vg, server, {
      destination: 'agent',
      reason: 'a billing question about invoice 1234',
    });
    const [uac, uas] = await Promise.all([caller, human]);
    const packets = await capture.stop();
    expect(uac.code, describeSippRun(uac)).toBe(0);
    expect(uas.code, describeSippRun(uas)).toBe(0);

    // The human was called through the trunk at once (no REFER in warm mode) and hung up when the caller left.
    const [invite] = traced(uas, 'received', /^INVITE /);
    expect(invite!.startLine).toBe(`INVITE sip:+15550100003@127.0.0.1:${uasPort} SIP/2.0`);
    expect(traced(uas, 'received', /^BYE /)).toHaveLength(1);
    expect(traced(uac, 'received', /^REFER /)).toEqual([]);

    const ended = await vg.waitForLog(byMsg('call ended'), 5000);
    expect(ended['cause']).toBe('caller-hangup');
    expect(vg.findLogs(byMsg('call ended'))).toHaveLength(1);
    const started = await vg.waitForLog(progress('transfer.started'), 1000);
    const succeeded = await vg.waitForLog(progress('transfer.succeeded'), 1000);
    expect(started['mode']).toBe('warm');
    expect(succeeded['mode']).toBe('warm');
    expect(vg.findLogs(progress('transfer.failed'))).toEqual([]);

    // The agent was asked to brief the human, with the model's reason, and did so in full.
    const briefing = session.responses.find((r) => r.origin === 'client');
    expect(briefing?.instructions).toMatch(
      /not the caller.*: a billing question about invoice 1234\. Then stop\.$/,
    );
    expect(briefing?.status).toBe('completed');
    const over = await vg.waitForLog(byMsg('warm transfer: briefing over'), 1000);
    expect(over['outcome']).toBe('played');
    console.log(
      `warm: answer → briefing audio ${String(over['answerToBriefingMs'])} ms, briefing ${String(over['briefingMs'])} ms (clip ${AGENT_LINE_PCMU.length / 8} ms), answer → connect ${String(over['waitedMs'])} ms; started → succeeded ${logTime(succeeded) - logTime(started)} ms`,
    );

    // The agent left once the legs were joined, long before the caller hung up.
    expect(session.closed).toBe(true);
    expect(session.closedAt!).toBeGreaterThanOrEqual(briefing!.endedAt!);
    expect(session.closedAt!).toBeLessThan(logTime(succeeded) + 1000);
    expect(session.closedAt!).toBeLessThan(logTime(ended) - 3000);

    // The human heard the briefing first, then the caller; the caller heard only ringback while the
    // human was briefed, then the human.
    const callerPort = Number(answered['rtpPort']);
    const humanLegPorts = [rtpBase, rtpBase + 2].filter((p) => p !== callerPort);
    expect(humanLegPorts).toHaveLength(1);
    const toHuman = heard(packets, humanLegPorts, uasMediaPort);
    const connectedAt = logTime(succeeded);
    const beforeConnect = packets.filter((p) => p.ts * 1000 < connectedAt);
    const afterConnect = packets.filter((p) => p.ts * 1000 >= connectedAt);
    const briefingHeardByHuman = heardIn(toHuman, AGENT_LINE_LINEAR);
    const callerHeardByHuman = heardIn(toHuman, CALLER_SPEECH);
    const humanHeardByCaller = heardIn(heard(afterConnect, [callerPort], uacMediaPort), HUMAN_LINEAR);
    const briefingHeardByCaller = findReference(
      heard(beforeConnect, [callerPort], uacMediaPort),
      AGENT_LINE_LINEAR,
    );
    console.log(
      `warm: briefing→human ${briefingHeardByHuman.correlation.toFixed(3)} at ${briefingHeardByHuman.lag / 8} ms, caller→human ${callerHeardByHuman.correlation.toFixed(3)} at ${callerHeardByHuman.lag / 8} ms, human→caller ${humanHeardByCaller.correlation.toFixed(3)}, briefing→caller ${briefingHeardByCaller.correlation.toFixed(3)}`,
    );
    expect(briefingHeardByHuman.correlation).toBeGreaterThan(SAME_AUDIO);
    expect(callerHeardByHuman.correlation).toBeGreaterThan(SAME_AUDIO);
    expect(briefingHeardByHuman.lag + AGENT_LINE_LINEAR.length).toBeLessThanOrEqual(callerHeardByHuman.lag);
    expect(humanHeardByCaller.correlation).toBeGreaterThan(SAME_AUDIO);
    expect(briefingHeardByCaller.correlation).toBeLessThan(NOT_HEARD);

    // Ringback, not silence, for the caller while the human was called and briefed.
    const from = logTime(started) + RINGBACK_SETTLE_MS;
    const to = Math.min(logTime(succeeded), logTime(started) + RINGBACK_ON_MS);
    console.log(`warm: ${expectRingback(packets, callerPort, uacMediaPort, from, to)}`);
  }, 60_000);

  it('warm transfer declined: the caller is back with the agent, who is told and speaks again', async () => {
    const uasPort = await freeUdpPort();
    const uacMediaPort = await freeEvenUdpPortRange(4);
    const { vg, server } = await start(
      { ...bridgeEnv(uasPort), TRANSFER_MODE: 'warm' },
      { replyAudio: AGENT_LINE_PCMU },
    );
    const capture = await startCapture({ udpPorts: [uacMediaPort] });
    const human = runSippUas({
      scenario: 'uas-reject',
      localPort: uasPort,
      vars: { status: '603', ring_ms: String(DECLINE_RING_MS) },
      timeoutMs: 30_000,
    });
    await sippListening(uasPort, SIPP_READY_TIMEOUT_MS);
    const caller = runSipp({
      scenario: 'uac-speak-later',
      target: `127.0.0.1:${drachtio.sipPort}`,
      mediaPort: uacMediaPort,
      keys: { pcap: fixture('caller-speech-pcmu.pcap') },
      vars: { speak_after_ms: String(DECLINED_CALLER_SPEAKS_AFTER_MS), stay_ms: '4500' },
      timeoutMs: 30_000,
    });
    const { session, callId, answered } = await modelTransfers(vg, server);
    const [uac, uas] = await Promise.all([caller, human]);
    const packets = await capture.stop();
    expect(uac.code, describeSippRun(uac)).toBe(0);
    expect(uas.code, describeSippRun(uas)).toBe(0);
    expect(traced(uas, 'received', /^INVITE /)).toHaveLength(1);

    // The tool result says it failed and why, and a response follows: the agent speaks again.
    const outputIndex = toolOutputIndex(session, callId);
    expect(outputIndex).toBeGreaterThanOrEqual(0);
    const item = session.clientEvents[outputIndex]!.event['item'] as { output: string };
    const output = JSON.parse(item.output) as { ok: unknown; error: unknown };
    expect(output.ok).toBe(false);
    expect(String(output.error)).toMatch(/603/);
    expect(
      session.clientEvents.slice(outputIndex + 1).some((e) => e.event['type'] === 'response.create'),
    ).toBe(true);

    const started = await vg.waitForLog(progress('transfer.started'), 1000);
    const failed = await vg.waitForLog(progress('transfer.failed'), 1000);
    expect(failed['mode']).toBe('warm');
    expect(failed['reason']).toMatch(/603/);
    expect(vg.findLogs(progress('transfer.succeeded'))).toEqual([]);
    expect(vg.findLogs(byMsg('warm transfer: briefing over'))).toEqual([]); // never answered: no briefing
    const ended = await vg.waitForLog(byMsg('call ended'), 5000);
    expect(ended['cause']).toBe('caller-hangup');
    expect(vg.findLogs(byMsg('call ended'))).toHaveLength(1);
    // Back to active after the failure, and active until the caller's BYE.
    const states = vg.findLogs(byMsg('call state')).map((r) => r['state']);
    expect(states.slice(states.indexOf('transferring'))).toEqual([
      'transferring',
      'active',
      'ending',
      'ended',
    ]);

    // Ringback while the human's phone rang; then the agent's reply, in full, on the caller's line.
    const callerPort = Number(answered['rtpPort']);
    const from = logTime(started) + RINGBACK_SETTLE_MS;
    const to = Math.min(logTime(failed), logTime(started) + RINGBACK_ON_MS);
    console.log(`warm declined: ${expectRingback(packets, callerPort, uacMediaPort, from, to)}`);
    const afterFailure = packets.filter((p) => p.ts * 1000 >= logTime(failed));
    const reply = heardIn(heard(afterFailure, [callerPort], uacMediaPort), AGENT_LINE_LINEAR);
    console.log(
      `warm declined: agent's reply after the failure, correlation ${reply.correlation.toFixed(3)}`,
    );
    expect(reply.correlation).toBeGreaterThan(SAME_AUDIO);

    // The caller's voice reaches the agent again: its speech after the failure is heard (VAD).
    expect(
      session.clientEvents.some(
        (e) => e.event['type'] === 'input_audio_buffer.append' && e.at > logTime(failed),
      ),
    ).toBe(true);
    expect(
      session.sent.some((e) => e.type === 'input_audio_buffer.speech_started' && e.at > logTime(failed)),
    ).toBe(true);

    // Both RTP ports went back to the pool.
    await waitUntil(
      'both RTP ports to be released',
      async () => !(await udpPortTaken(rtpBase)) && !(await udpPortTaken(rtpBase + 2)),
      3000,
    );
  }, 45_000);

  it('warm transfer, human hangs up during the briefing: the caller never hears the rest of it and is back with the agent', async () => {
    const uasPort = await freeUdpPort();
    const uacMediaPort = await freeEvenUdpPortRange(4);
    // The briefing streams in real time, so most of it is still to come when the human leaves; the
    // agent's reply after the failure is a different clip (the human line's audio, reused).
    const { vg, server } = await start(
      { ...bridgeEnv(uasPort), TRANSFER_MODE: 'warm' },
      {
        replyAudio: (index) => (index === 1 ? AGENT_LINE_PCMU : HUMAN_PCMU),
        deltaMs: REALTIME_DELTA_MS,
        deltaIntervalMs: REALTIME_DELTA_INTERVAL_MS,
      },
    );
    const capture = await startCapture({ udpPorts: [uacMediaPort] });
    const human = runSippUas({
      scenario: 'uas-human-hangs-up',
      localPort: uasPort,
      vars: { hang_up_after_ms: String(HUMAN_HANGS_UP_AFTER_MS) },
      timeoutMs: 30_000,
    });
    await sippListening(uasPort, SIPP_READY_TIMEOUT_MS);
    const caller = runSipp({
      scenario: 'uac-speak-later',
      target: `127.0.0.1:${drachtio.sipPort}`,
      mediaPort: uacMediaPort,
      keys: { pcap: fixture('caller-speech-pcmu.pcap') },
      vars: { speak_after_ms: '9500', stay_ms: '1000' },
      timeoutMs: 30_000,
    });
    const { session, callId, answered } = await modelTransfers(vg, server);
    const [uac, uas] = await Promise.all([caller, human]);
    const packets = await capture.stop();
    expect(uac.code, describeSippRun(uac)).toBe(0);
    expect(uas.code, describeSippRun(uas)).toBe(0);

    const failed = await vg.waitForLog(progress('transfer.failed'), 1000);
    expect(failed['mode']).toBe('warm');
    expect(failed['reason']).toBe('transfer target hung up during the briefing');
    const over = await vg.waitForLog(byMsg('warm transfer: briefing over'), 1000);
    expect(over['outcome']).toBe('human left');
    console.log(
      `warm hang-up: answer → briefing audio ${String(over['answerToBriefingMs'])} ms, answer → back to the agent ${String(over['waitedMs'])} ms`,
    );
    expect(vg.findLogs(progress('transfer.succeeded'))).toEqual([]);
    const item = session.clientEvents[toolOutputIndex(session, callId)]!.event['item'] as { output: string };
    expect((JSON.parse(item.output) as { ok: unknown }).ok).toBe(false);
    const ended = await vg.waitForLog(byMsg('call ended'), 5000);
    expect(ended['cause']).toBe('caller-hangup');

    // The caller heard the agent's reply to the failure, and nothing of the briefing.
    const toCaller = heard(packets, [Number(answered['rtpPort'])], uacMediaPort);
    const reply = heardIn(toCaller, HUMAN_LINEAR);
    // Only the briefing's end is sure to stream after the human left (its start went to the human).
    const briefingEnd = AGENT_LINE_LINEAR.subarray(AGENT_LINE_LINEAR.length - BRIEFING_END_SAMPLES);
    const briefingHeard = findReference(toCaller, briefingEnd);
    console.log(
      `warm hang-up: reply→caller ${reply.correlation.toFixed(3)}, briefing→caller ${briefingHeard.correlation.toFixed(3)}`,
    );
    expect(reply.correlation).toBeGreaterThan(SAME_AUDIO);
    expect(briefingHeard.correlation).toBeLessThan(NOT_HEARD);
  }, 45_000);
});
