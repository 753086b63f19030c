// Transfer to a human, end to end: a SIPp caller → drachtio-server → voxgate (child process) with the
// fake OpenAI Realtime server, whose model calls transfer_call once the call is answered. The caller's
// side plays the carrier: it accepts the REFER and reports by NOTIFY, declines it, or does not allow
// it (405), in which case voxgate calls the human (a second SIPp, as UAS) through its trunk and
// relays audio between the two legs. RTP is observed on the wire with dumpcap.
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
  type SippResult,
  type TracedSipMessage,
} from '../helpers/sipp.js';
import { parseRtp, startCapture } from '../helpers/rtp-capture.js';
import { writeRtpPcap, type PcapUdpPacket } from '../helpers/pcap.js';
import { FakeOpenAIRealtime, type FakeSessionHandle } from '../fakes/openai-realtime.js';
import { decodeG711, findReference, rms } from '../helpers/audio-analysis.js';

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
  async function start(env: Record<string, string>): Promise<{ vg: Voxgate; server: FakeOpenAIRealtime }> {
    fake = new FakeOpenAIRealtime({ replyAudio: REPLY_PCMU });
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
  ): Promise<{ session: FakeSessionHandle; callId: string; answered: LogRecord }> {
    const answered = await vg.waitForLog(byMsg('call answered'), ANSWER_TIMEOUT_MS);
    const session = await server.waitForSession();
    const callId = session.startFunctionCall('transfer_call', { destination: 'agent' });
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
    const window = packets.filter(
      (p) => p.srcPort === rtpPort && p.dstPort === mediaPort && p.ts * 1000 >= from && p.ts * 1000 <= to,
    );
    const frames = window.map((p) => decodeG711('PCMU', parseRtp(p.payload).payload));
    expect(frames.length).toBeGreaterThan(40); // ≥ 0.8 s of the 1.5 s pause
    const loud = frames.filter((f) => rms(f) > TONE_RMS).length;
    expect(loud / frames.length).toBeGreaterThan(0.9);
    const audio = Int16Array.from(frames.flatMap((f) => Array.from(f)));
    const tone = Math.min(goertzelPower(audio, 440), goertzelPower(audio, 480));
    const elsewhere = Math.max(...[350, 620, 1000, 1400, 2000].map((f) => goertzelPower(audio, f)));
    console.log(
      `transfer: ringback window ${frames.length} frames, ${loud} loud; 440/480 Hz ${(10 * Math.log10(tone / elsewhere)).toFixed(1)} dB over other tones`,
    );
    expect(tone).toBeGreaterThan(20 * elsewhere);
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
    const outputIndex = session.clientEvents.findIndex((e) => {
      const item = e.event['item'] as Record<string, unknown> | undefined;
      return (
        e.event['type'] === 'conversation.item.create' &&
        item?.['type'] === 'function_call_output' &&
        item['call_id'] === callId
      );
    });
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
    const callerHeardByHuman = findReference(toHuman, CALLER_SPEECH);
    const humanHeardByCaller = findReference(toCaller, HUMAN_LINEAR);
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
});
