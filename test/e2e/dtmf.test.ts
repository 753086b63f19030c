// Keypad digits end to end: SIPp (caller) → drachtio-server → voxgate (child process) → fake OpenAI
// Realtime. In: RFC 4733 events replayed from a pcap, and SIP INFO bodies, reach the agent once per key
// press as a response.create whose instructions name the digit. Out: the model's send_dtmf tool becomes
// RFC 4733 events on the wire, observed with dumpcap. Plus the DTMF transfer key starting a REFER.
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { describeE2E, startDrachtio, type DrachtioServer } from '../helpers/drachtio.js';
import { REPO_ROOT, artifactsDir, killAll } from '../helpers/processes.js';
import { freeEvenUdpPortRange, freeTcpPort } from '../helpers/ports.js';
import { byMsg, drachtioEnv, startVoxgate, type LogRecord, type Voxgate } from '../helpers/voxgate.js';
import { describeSippRun, runSipp, type SippResult } from '../helpers/sipp.js';
import { parseRtp, startCapture, type ParsedRtp } from '../helpers/rtp-capture.js';
import { writeRtpPcap, type RtpPacketSpec } from '../helpers/pcap.js';
import { FakeOpenAIRealtime, type FakeSessionHandle } from '../fakes/openai-realtime.js';

const fixture = (name: string): string => path.join(REPO_ROOT, 'test', 'fixtures', name);

/** 20 ms of µ-law silence: each agent reply ends at once, so the next digit's response.create is accepted. */
const SHORT_REPLY = Buffer.alloc(160, 0xff);
const PT_PCMU = 0;
/** The telephone-event payload type the SIPp scenarios offer (and voxgate must answer with). */
const PT_EVENT = 101;
const SAMPLES_PER_FRAME = 160;
/** voxgate's default tone: 100 ms at 8 kHz. */
const TONE_SAMPLES = 800;
/** RFC 4733 §2.5.1.4: the final packet goes out three times. */
const END_COPIES = 3;
/** The receiver's end timeout (DTMF_END_TIMEOUT_MS): a digit whose end packets are lost waits this long. */
const END_TIMEOUT_MS = 300;
/** Slack for one SIPp run beyond the call's own length: setup, BYE, trace writing, a loaded machine. */
const SIPP_SLACK_MS = 15_000;

interface TelephoneEventPacket {
  rtp: ParsedRtp;
  event: number;
  end: boolean;
  duration: number;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The digits named by the agent prompts voxgate sent ("The caller pressed 5 on the phone keypad…"), in order. */
function pressedDigits(session: FakeSessionHandle): string[] {
  const digits: string[] = [];
  for (const { event } of session.clientEvents) {
    if (event['type'] !== 'response.create' || !isRecord(event['response'])) continue;
    const instructions = event['response']['instructions'];
    if (typeof instructions !== 'string') continue;
    const match = /\bpressed (\S+) /.exec(instructions);
    if (match) digits.push(match[1]!);
  }
  return digits;
}

function telephoneEvent(rtp: ParsedRtp): TelephoneEventPacket {
  expect(rtp.payload.length).toBe(4);
  return {
    rtp,
    event: rtp.payload[0]!,
    end: (rtp.payload[1]! & 0x80) !== 0,
    duration: rtp.payload.readUInt16BE(2),
  };
}

/** Consecutive event packets grouped by RTP timestamp (one group per key press). */
function groupByTimestamp(packets: readonly TelephoneEventPacket[]): TelephoneEventPacket[][] {
  const groups: TelephoneEventPacket[][] = [];
  for (const packet of packets) {
    const last = groups[groups.length - 1];
    if (last && last[0]!.rtp.timestamp === packet.rtp.timestamp) last.push(packet);
    else groups.push([packet]);
  }
  return groups;
}

/** µ-law silence as a caller would send it, for calls where only voxgate's output matters. */
function writeSilencePcap(ms: number): string {
  const packets: RtpPacketSpec[] = [];
  for (let i = 0; i < ms / 20; i++) {
    packets.push({
      payloadType: PT_PCMU,
      seq: i,
      timestamp: i * SAMPLES_PER_FRAME,
      ssrc: 0x5eed0003,
      marker: i === 0,
      payload: Buffer.alloc(SAMPLES_PER_FRAME, 0xff),
    });
  }
  const file = path.join(artifactsDir('dtmf-silence'), 'silence-pcmu.pcap');
  writeRtpPcap(file, packets, { srcPort: 6000, dstPort: 6001 });
  return file;
}

describeE2E('keypad digits (DTMF) through drachtio-server', () => {
  let drachtio: DrachtioServer;
  let voxgate: Voxgate | undefined;
  let fake: FakeOpenAIRealtime | undefined;

  beforeAll(async () => {
    drachtio = await startDrachtio();
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

  async function startWithFake(env: Record<string, string> = {}): Promise<Voxgate> {
    fake = new FakeOpenAIRealtime({ replyAudio: SHORT_REPLY });
    await fake.start();
    const rtpBase = await freeEvenUdpPortRange(4);
    voxgate = await startVoxgate({
      ...drachtioEnv(drachtio),
      RTP_PORT_MIN: String(rtpBase),
      RTP_PORT_MAX: String(rtpBase + 3),
      // Not the default 8080: other suites' voxgate instances may be running on this machine.
      HTTP_PORT: String(await freeTcpPort()),
      AI_PROVIDER: 'openai',
      OPENAI_API_KEY: 'x',
      OPENAI_REALTIME_URL: fake.url,
      AGENT_GREETING: '',
      ...env,
    });
    return voxgate;
  }

  function playPcap(pcap: string, callMs: number, mediaPort?: number): Promise<SippResult> {
    return runSipp({
      scenario: 'uac-call-pcap',
      target: `127.0.0.1:${drachtio.sipPort}`,
      ...(mediaPort === undefined ? {} : { mediaPort }),
      keys: { pcap },
      vars: { call_ms: String(callMs) },
      timeoutMs: callMs + SIPP_SLACK_MS,
    });
  }

  /** After the call: the 'dtmf digit' records, each checked for its source. */
  async function digitLogs(vg: Voxgate, source: 'rfc4733' | 'info'): Promise<LogRecord[]> {
    await vg.waitForLog(byMsg('call ended'), 10_000);
    const logs = vg.findLogs(byMsg('dtmf digit'));
    for (const record of logs) expect(record['source']).toBe(source);
    return logs;
  }

  it('reports each RFC 4733 key press (1, 5, #) once, in order, to the agent', async () => {
    const vg = await startWithFake();
    const sipp = await playPcap(fixture('caller-dtmf-pcmu.pcap'), 2500);
    expect(sipp.code, describeSippRun(sipp)).toBe(0);
    expect(await digitLogs(vg, 'rfc4733')).toHaveLength(3);
    expect(pressedDigits(fake!.sessions[0]!)).toEqual(['1', '5', '#']);
  });

  it('answers SIP INFO digits (dtmf-relay, dtmf, Signal=11) with 200 and reports 7, 9, # once each', async () => {
    const vg = await startWithFake();
    const sipp = await runSipp({
      scenario: 'uac-info-dtmf',
      target: `127.0.0.1:${drachtio.sipPort}`,
      timeoutMs: SIPP_SLACK_MS,
    });
    // The scenario fails unless each of the three INFOs is answered 200.
    expect(sipp.code, describeSippRun(sipp)).toBe(0);
    expect(sipp.messages.match(/^INFO sip:/gm)).toHaveLength(3);
    expect(await digitLogs(vg, 'info')).toHaveLength(3);
    expect(pressedDigits(fake!.sessions[0]!)).toEqual(['7', '9', '#']);
  });

  it('still reports a key press whose end packets were all lost, once, after the end timeout', async () => {
    const vg = await startWithFake();
    const sipp = await playPcap(fixture('caller-dtmf-lost-end-pcmu.pcap'), 2500);
    expect(sipp.code, describeSippRun(sipp)).toBe(0);
    const logs = await digitLogs(vg, 'rfc4733');
    expect(logs).toHaveLength(3);
    expect(pressedDigits(fake!.sessions[0]!)).toEqual(['1', '5', '#']);
    // '#' starts 240 ms after '5' ended and was reported by timeout, not by a following audio packet.
    const at = logs.map((record) => Number(record['time']));
    expect(at[2]! - at[1]!).toBeGreaterThanOrEqual(END_TIMEOUT_MS);
  });

  it('sends the send_dtmf tool digits to the caller as RFC 4733 events that no audio overlaps', async () => {
    const vg = await startWithFake();
    const mediaPort = await freeEvenUdpPortRange(4);
    const capture = await startCapture({ udpPorts: [mediaPort] });
    const caller = playPcap(writeSilencePcap(2000), 3500, mediaPort);
    const answered = await vg.waitForLog(byMsg('call answered'), 10_000);
    const session = await fake!.waitForSession(10_000);
    await fake!.waitForClientEvent(session, 'session.update', 5000);

    const callId = session.startFunctionCall('send_dtmf', { digits: '42' });
    expect(callId).toBeDefined();
    const created = await fake!.waitForClientEvent(session, 'conversation.item.create', 5000);
    const item = created['item'];
    expect(isRecord(item) && item['type']).toBe('function_call_output');
    expect(isRecord(item) && item['call_id']).toBe(callId);
    const output: unknown = JSON.parse(String(isRecord(item) ? item['output'] : ''));
    expect(output).toEqual({ ok: true });

    const sipp = await caller;
    const packets = await capture.stop();
    expect(sipp.code, describeSippRun(sipp)).toBe(0);
    const rtpPort = Number(answered['rtpPort']);
    const sent = packets
      .filter((p) => p.srcPort === rtpPort && p.dstPort === mediaPort)
      .map((p) => parseRtp(p.payload));
    expect(sent.length).toBeGreaterThan(100);
    // One stream: events take the audio's slots, so seq runs on without gaps across both.
    expect(new Set(sent.map((p) => p.ssrc)).size).toBe(1);
    for (let i = 1; i < sent.length; i++) expect((sent[i]!.seq - sent[i - 1]!.seq) & 0xffff).toBe(1);

    const events = groupByTimestamp(sent.filter((p) => p.payloadType === PT_EVENT).map(telephoneEvent));
    expect(events.map((group) => [...new Set(group.map((p) => p.event))])).toEqual([[4], [2]]);
    for (const group of events) {
      // Marker on the first packet only; the E bit on the last three, which repeat the final duration
      // (RFC 4733 §2.5.1.4). Exact packet counts are not asserted: after an event-loop stall the pacer
      // skips slots and the sender reports the true elapsed time instead of one frame more.
      expect(group.length).toBeGreaterThanOrEqual(END_COPIES + 1);
      expect(group.map((p) => p.rtp.marker)).toEqual(group.map((_, i) => i === 0));
      expect(group.map((p) => p.end)).toEqual(group.map((_, i) => i >= group.length - END_COPIES));
      const updates = group.slice(0, -END_COPIES).map((p) => p.duration);
      expect(updates[0]).toBe(SAMPLES_PER_FRAME);
      for (let i = 1; i < updates.length; i++) expect(updates[i]!).toBeGreaterThan(updates[i - 1]!);
      expect(group.slice(-END_COPIES).map((p) => p.duration)).toEqual([
        TONE_SAMPLES,
        TONE_SAMPLES,
        TONE_SAMPLES,
      ]);
    }
    const audio = sent.filter((p) => p.payloadType === PT_PCMU);
    expect(audio.length + events.flat().length).toBe(sent.length);
    for (const group of events) {
      const start = group[0]!.rtp.timestamp;
      const inside = audio.filter((p) => (p.timestamp - start) >>> 0 < TONE_SAMPLES);
      expect(inside.map((p) => p.timestamp)).toEqual([]);
    }
    expect(vg.findLogs(byMsg('tool call handled')).map((r) => [r['tool'], r['ok']])).toEqual([
      ['send_dtmf', true],
    ]);
  });

  it('starts a transfer when the caller presses DTMF_TRANSFER_KEY, and takes the call back on 603', async () => {
    const vg = await startWithFake({
      DTMF_TRANSFER_KEY: '0',
      TRANSFER_TARGETS: 'agent=sip:someone@127.0.0.1',
    });
    const sipp = await runSipp({
      scenario: 'uac-info-refer-decline',
      target: `127.0.0.1:${drachtio.sipPort}`,
      timeoutMs: SIPP_SLACK_MS,
    });
    expect(sipp.code, describeSippRun(sipp)).toBe(0);
    expect(sipp.messages).toMatch(/^Refer-To: <sip:someone@127\.0\.0\.1>/m);
    expect(await digitLogs(vg, 'info')).toHaveLength(1);
    const progress = vg
      .findLogs(byMsg('call progress'))
      .filter((r) => /^transfer\./.test(String(r['event'])));
    expect(progress.map((r) => r['event'])).toEqual(['transfer.started', 'transfer.failed']);
    expect(progress[0]).toMatchObject({ target: 'agent', mode: 'refer' });
    expect(String(progress[1]!['reason'])).toMatch(/603/);
    // The transfer key is not also handed to the agent.
    expect(pressedDigits(fake!.sessions[0]!)).toEqual([]);
  });
});
