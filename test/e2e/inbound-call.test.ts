// End to end through real peers: SIPp (caller) → drachtio-server → voxgate (child process) → fake
// OpenAI Realtime over a real WebSocket; RTP observed on the wire with dumpcap.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { describeE2E, startDrachtio, type DrachtioServer } from '../helpers/drachtio.js';
import { REPO_ROOT, killAll } from '../helpers/processes.js';
import { freeEvenUdpPortRange, portIsFree } from '../helpers/ports.js';
import { byMsg, drachtioEnv, startVoxgate, type LogRecord, type Voxgate } from '../helpers/voxgate.js';
import { runSipp, type SippResult } from '../helpers/sipp.js';
import { startCapture, parseRtp } from '../helpers/rtp-capture.js';
import type { PcapUdpPacket } from '../helpers/pcap.js';
import { FakeOpenAIRealtime } from '../fakes/openai-realtime.js';
import { alignSegments, decodeG711, findReference, rms } from '../helpers/audio-analysis.js';

const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures');
const fixture = (name: string): string => path.join(FIXTURES, name);
const REPLY = {
  PCMU: readFileSync(fixture('assistant-reply.ulaw')),
  PCMA: readFileSync(fixture('assistant-reply.alaw')),
};
const REPLY_LINEAR = decodeG711('PCMU', REPLY.PCMU);

/** Silence decodes to |x| ≤ 8; speech frames are far louder. */
const SPEECH_RMS = 200;

interface CallRun {
  sipp: SippResult;
  rtpPort: number;
  /** Packets voxgate sent to the caller's media port. */
  sent: ReturnType<typeof parseRtp>[];
  sentAt: number[];
  answered: LogRecord;
  ended: LogRecord;
}

function loudFrames(codec: 'PCMU' | 'PCMA', packets: { payload: Buffer }[]): number[] {
  return packets
    .map((p, i) => (rms(decodeG711(codec, p.payload)) > SPEECH_RMS ? i : -1))
    .filter((i) => i >= 0);
}

describeE2E('inbound call through drachtio-server', () => {
  let drachtio: DrachtioServer;
  let fake: FakeOpenAIRealtime | undefined;
  let voxgate: Voxgate | undefined;
  let rtpBase: number;

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

  /** voxgate with a one-call RTP range: a leaked port makes the next call in the same run fail. */
  async function start(env: Record<string, string>): Promise<Voxgate> {
    rtpBase = await freeEvenUdpPortRange(2);
    voxgate = await startVoxgate({
      ...drachtioEnv(drachtio),
      RTP_PORT_MIN: String(rtpBase),
      RTP_PORT_MAX: String(rtpBase + 1),
      ...env,
    });
    return voxgate;
  }

  async function startWithFake(
    options: ConstructorParameters<typeof FakeOpenAIRealtime>[0],
    env: Record<string, string> = {},
  ): Promise<FakeOpenAIRealtime> {
    fake = new FakeOpenAIRealtime(options);
    await fake.start();
    await start({
      AI_PROVIDER: 'openai',
      OPENAI_API_KEY: 'test-key-not-secret',
      OPENAI_REALTIME_URL: fake.url,
      ...env,
    });
    return fake;
  }

  async function call(scenario: string, pcap: string, callMs: number): Promise<CallRun> {
    const vg = voxgate!;
    const mediaPort = await freeEvenUdpPortRange(4);
    const capture = await startCapture({ udpPorts: [mediaPort] });
    const sipp = await runSipp({
      scenario,
      target: `127.0.0.1:${drachtio.sipPort}`,
      mediaPort,
      keys: { pcap: fixture(pcap) },
      vars: { call_ms: String(callMs) },
      timeoutMs: callMs + 15_000,
    });
    const packets: PcapUdpPacket[] = await capture.stop();
    const answered = await vg.waitForLog(byMsg('call answered'), 5000);
    const ended = await vg.waitForLog(byMsg('call ended'), 10_000);
    const rtpPort = Number(answered['rtpPort']);
    const fromVoxgate = packets.filter((p) => p.srcPort === rtpPort && p.dstPort === mediaPort);
    return {
      sipp,
      rtpPort,
      sent: fromVoxgate.map((p) => parseRtp(p.payload)),
      sentAt: fromVoxgate.map((p) => p.ts * 1000),
      answered,
      ended,
    };
  }

  function expectCleanStream(run: CallRun, payloadType: number): void {
    const { sent, sentAt } = run;
    expect(sent.length).toBeGreaterThan(100);
    expect(new Set(sent.map((p) => p.ssrc)).size).toBe(1);
    expect(sent.every((p) => p.payloadType === payloadType && p.payload.length === 160)).toBe(true);
    for (let i = 1; i < sent.length; i++) {
      expect((sent[i]!.seq - sent[i - 1]!.seq + 65536) % 65536).toBe(1);
      expect((sent[i]!.timestamp - sent[i - 1]!.timestamp) >>> 0).toBe(160);
    }
    // One packet per 20 ms on the wire: the average is exact and no gap or burst stands out.
    const intervals = sentAt.slice(1).map((t, i) => t - sentAt[i]!);
    const mean = intervals.reduce((a, b) => a + b, 0) / intervals.length;
    expect(mean).toBeGreaterThan(19.5);
    expect(mean).toBeLessThan(20.5);
    // A busy 2-core box may delay the odd timer; the pacer then catches up. Allow that rarely, never often.
    const irregular = intervals.filter((i) => i > 30 || i < 10).length;
    expect(irregular / intervals.length).toBeLessThan(0.02);
  }

  it('answers a PCMU caller, streams its speech to OpenAI and plays the reply clip back over RTP', async () => {
    const server = await startWithFake({ replyAudio: REPLY.PCMU }, { AGENT_GREETING: '' });
    const run = await call('uac-call-pcap', 'caller-speech-pcmu.pcap', 12_000);
    expect(run.sipp.code, run.sipp.errors).toBe(0);
    expect(run.answered['codec']).toBe('PCMU');

    const session = server.sessions[0]!;
    expect(session.headers['authorization']).toBe('Bearer test-key-not-secret');
    expect(session.headers['openai-beta']).toBeUndefined();
    const update = session.clientEvents.find((e) => e.event['type'] === 'session.update')!.event as {
      session: {
        type: string;
        audio: { input: { format: { type: string } }; output: { format: { type: string } } };
      };
    };
    expect(update.session.type).toBe('realtime');
    expect(update.session.audio.input.format.type).toBe('audio/pcmu');
    expect(update.session.audio.output.format.type).toBe('audio/pcmu');
    // The caller's audio reached the AI: ~3 s of speech plus silence, 8 bytes per ms.
    expect(session.appendedAudioBytes).toBeGreaterThan(8 * 4000);
    expect(session.responses.length).toBeGreaterThanOrEqual(1);

    expectCleanStream(run, 0);
    const heard = decodeG711('PCMU', Buffer.concat(run.sent.map((p) => p.payload)));
    const match = findReference(heard, REPLY_LINEAR);
    expect(match.correlation).toBeGreaterThan(0.9);

    // BYE released everything: provider socket closed, RTP port bindable again.
    expect(run.ended['cause']).toBe('caller-hangup');
    await expect.poll(() => session.closed, { timeout: 3000 }).toBe(true);
    expect(await portIsFree(run.rtpPort)).toBe(true);
  });

  it('stops playback within 40 ms when the caller talks over the greeting and truncates at what was sent', async () => {
    // A long greeting (the clip twice) so the caller's speech at ~1.5 s lands in the middle of it.
    const server = await startWithFake(
      { replyAudio: Buffer.concat([REPLY.PCMU, REPLY.PCMU]) },
      { AGENT_GREETING: 'Greet the caller.' },
    );
    const run = await call('uac-call-pcap', 'caller-speech-pcmu.pcap', 6000);
    expect(run.sipp.code, run.sipp.errors).toBe(0);
    const session = server.sessions[0]!;
    const speechStarted = session.sent.find((e) => e.type === 'input_audio_buffer.speech_started');
    expect(speechStarted).toBeDefined();
    // Only the greeting's frames: the caller's finished turn starts a new reply afterwards.
    const nextReply = session.responses[1];
    const loud = loudFrames('PCMU', run.sent).filter(
      (i) => nextReply === undefined || run.sentAt[i]! < nextReply.startedAt,
    );
    expect(loud.length).toBeGreaterThan(10);
    const firstAudioAt = run.sentAt[loud[0]!]!;
    // The greeting was still playing when the caller spoke...
    const afterSpeech = loud.filter((i) => run.sentAt[i]! > speechStarted!.at);
    const lastLoudAt = run.sentAt[loud[loud.length - 1]!]!;
    expect(lastLoudAt - speechStarted!.at).toBeLessThanOrEqual(40);
    expect(afterSpeech.length).toBeLessThanOrEqual(2);
    // ...and the truncate names the played item with the integer ms actually sent.
    const truncate = await server.waitForClientEvent(session, 'conversation.item.truncate', 3000);
    const audioEndMs = truncate['audio_end_ms'] as number;
    expect(Number.isInteger(audioEndMs)).toBe(true);
    const playedMs = (loud.length + 0) * 20;
    expect(audioEndMs).toBeGreaterThanOrEqual(playedMs - 100);
    expect(audioEndMs).toBeLessThanOrEqual(speechStarted!.at - firstAudioAt + 100);
    expect(session.sent.some((e) => e.type === 'conversation.item.truncated')).toBe(true);
    expect(session.sent.filter((e) => e.type === 'error')).toEqual([]);
  });

  it('answers a caller offering only PCMA in PCMA, end to end', async () => {
    const server = await startWithFake({ replyAudio: REPLY.PCMA }, { AGENT_GREETING: '' });
    const run = await call('uac-call-pcma-only', 'caller-speech-pcma.pcap', 12_000);
    expect(run.sipp.code, run.sipp.errors).toBe(0);
    expect(run.answered['codec']).toBe('PCMA');
    expect(run.sipp.messages).toMatch(/a=rtpmap:8 PCMA\/8000/);
    const update = server.sessions[0]!.clientEvents.find((e) => e.event['type'] === 'session.update')!
      .event as {
      session: { audio: { input: { format: { type: string } } } };
    };
    expect(update.session.audio.input.format.type).toBe('audio/pcma');
    expectCleanStream(run, 8);
    const heard = decodeG711('PCMA', Buffer.concat(run.sent.map((p) => p.payload)));
    expect(findReference(heard, decodeG711('PCMA', REPLY.PCMA)).correlation).toBeGreaterThan(0.9);
  });

  it('echo provider plays the caller back after the configured delay', async () => {
    await start({ AI_PROVIDER: 'echo', ECHO_DELAY_MS: '400' });
    const run = await call('uac-call-pcap', 'caller-speech-pcmu.pcap', 7000);
    expect(run.sipp.code, run.sipp.errors).toBe(0);
    expectCleanStream(run, 0);
    const callerSpeech = readFileSync(fixture('caller-speech.s16le'));
    const reference = new Int16Array(
      callerSpeech.buffer,
      callerSpeech.byteOffset,
      callerSpeech.byteLength / 2,
    );
    const heard = decodeG711('PCMU', Buffer.concat(run.sent.map((p) => p.payload)));
    // The echo passes through the caller-side jitter buffer, which may drop a quiet frame while it
    // shrinks: align segment by segment so a 20 ms shift between words does not break the comparison.
    const match = alignSegments(heard, reference, findReference(heard, reference).lag);
    expect(match.correlation).toBeGreaterThan(0.9);
  });

  it('rejects a caller offering no G.711 with 488 and a Warning header', async () => {
    await start({ AI_PROVIDER: 'echo' });
    const sipp = await runSipp({
      scenario: 'uac-no-g711',
      target: `127.0.0.1:${drachtio.sipPort}`,
      timeoutMs: 10_000,
    });
    expect(sipp.code, sipp.errors).toBe(0);
    expect(sipp.messages).toMatch(/^Warning: 305 voxgate/m);
    const ended = await voxgate!.waitForLog(byMsg('call ended'), 5000);
    expect(ended['cause']).toBe('negotiation-failed');
  });

  it('refuses with 503 + Retry-After, before answering, when the AI provider cannot be reached', async () => {
    const server = await startWithFake({ replyAudio: REPLY.PCMU, rejectUpgradeStatus: 401 });
    const sipp = await runSipp({
      scenario: 'uac-expect-503',
      target: `127.0.0.1:${drachtio.sipPort}`,
      timeoutMs: 10_000,
    });
    expect(sipp.code, sipp.errors).toBe(0);
    const ended = await voxgate!.waitForLog(byMsg('call ended'), 5000);
    expect(ended['cause']).toBe('provider-failed');
    expect(String(ended['detail'])).toMatch(/401/);
    expect(server.sessions).toHaveLength(0);
    // The single RTP port went back to the pool.
    expect(await portIsFree(rtpBase)).toBe(true);
  });

  it('releases everything when the caller cancels while the AI is still connecting', async () => {
    const server = await startWithFake({ replyAudio: REPLY.PCMU, upgradeDelayMs: 3000 });
    const sipp = await runSipp({
      scenario: 'uac-cancel',
      target: `127.0.0.1:${drachtio.sipPort}`,
      vars: { cancel_after_ms: '500' },
      timeoutMs: 10_000,
    });
    expect(sipp.code, sipp.errors).toBe(0);
    const ended = await voxgate!.waitForLog(byMsg('call ended'), 5000);
    expect(ended['cause']).toBe('caller-canceled');
    expect(await portIsFree(rtpBase)).toBe(true);
    // After the delayed upgrade, voxgate must not keep the provider socket.
    await new Promise((r) => setTimeout(r, 3500));
    expect(server.sessions.every((s) => s.closed)).toBe(true);
  });

  it('takes the answer from the ACK for a late-offer INVITE', async () => {
    await start({ AI_PROVIDER: 'echo' });
    const sipp = await runSipp({
      scenario: 'uac-late-offer',
      target: `127.0.0.1:${drachtio.sipPort}`,
      vars: { call_ms: '1500' },
      timeoutMs: 10_000,
    });
    expect(sipp.code, sipp.errors).toBe(0);
    const answered = await voxgate!.waitForLog(byMsg('call answered'), 5000);
    expect(answered['codec']).toBe('PCMU');
    const ended = await voxgate!.waitForLog(byMsg('call ended'), 5000);
    expect(ended['cause']).toBe('caller-hangup');
  });

  it('answers hold with recvonly and resume with sendrecv', async () => {
    await start({ AI_PROVIDER: 'echo' });
    const sipp = await runSipp({
      scenario: 'uac-hold-resume',
      target: `127.0.0.1:${drachtio.sipPort}`,
      timeoutMs: 15_000,
    });
    expect(sipp.code, sipp.errors).toBe(0);
    const updates = voxgate!.findLogs(byMsg('media updated by re-INVITE'));
    expect(updates.map((u) => u['remoteDirection'])).toEqual(['sendonly', 'sendrecv']);
  });

  it('answers OPTIONS with 200', async () => {
    await start({ AI_PROVIDER: 'echo' });
    const sipp = await runSipp({
      scenario: 'uac-options',
      target: `127.0.0.1:${drachtio.sipPort}`,
      timeoutMs: 10_000,
    });
    expect(sipp.code, sipp.errors).toBe(0);
  });
});

describe('e2e prerequisites', () => {
  it('ships the audio fixtures the e2e suite uses', () => {
    for (const name of [
      'caller-speech-pcmu.pcap',
      'caller-speech-pcma.pcap',
      'caller-speech.s16le',
      'assistant-reply.ulaw',
      'assistant-reply.alaw',
    ]) {
      expect(readFileSync(fixture(name)).length, name).toBeGreaterThan(1000);
    }
  });
});
