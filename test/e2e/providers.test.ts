// Issue 4 end to end: the SIPp caller → drachtio-server → voxgate (child process) → the Gemini Live and
// Doubao realtime fakes over real WebSockets. Audio both ways (with the 8 kHz ↔ 16/24 kHz resampling on
// the path), barge-in, the agent ending the call, and a forced Gemini reconnect with no audio lost.
// RTP and the BYE are observed on the wire with dumpcap.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { Resampler } from '../../src/media/resampler.js';
import { describeE2E, startDrachtio, type DrachtioServer } from '../helpers/drachtio.js';
import { REPO_ROOT, killAll } from '../helpers/processes.js';
import { freeEvenUdpPortRange, freeTcpPort, freeUdpPort } from '../helpers/ports.js';
import { byMsg, drachtioEnv, startVoxgate, type LogRecord, type Voxgate } from '../helpers/voxgate.js';
import { describeSippRun, runSipp, type SippResult } from '../helpers/sipp.js';
import { parseRtp, startCapture, type ParsedRtp } from '../helpers/rtp-capture.js';
import { readPcap } from '../helpers/pcap.js';
import { decodeG711, findReference, rms } from '../helpers/audio-analysis.js';
import { FakeGeminiLive, type FakeGeminiLiveOptions } from '../fakes/gemini-live.js';
import { FakeDoubaoRealtime, type FakeDoubaoOptions } from '../fakes/doubao-realtime.js';

const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures');
const fixture = (name: string): string => path.join(FIXTURES, name);
const CALLER_PCAP = 'caller-speech-pcmu.pcap';

function s16(bytes: Uint8Array): Int16Array {
  const out = new Int16Array(bytes.length >> 1);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = view.getInt16(i * 2, true);
  return out;
}

function s16leBytes(samples: Int16Array): Buffer {
  const out = Buffer.alloc(samples.length * 2);
  samples.forEach((s, i) => out.writeInt16LE(s, i * 2));
  return out;
}

/** The assistant clip at 8 kHz (reference for what the caller hears) and at 24 kHz (what the fakes send). */
const REPLY_8K = s16(readFileSync(fixture('assistant-reply.s16le')));
const REPLY_24K = s16leBytes(new Resampler(8000, 24000).process(REPLY_8K));
/** The caller's sentence alone, 8 kHz. */
const CALLER_SPEECH = s16(readFileSync(fixture('caller-speech.s16le')));
/** The pcap SIPp plays: one 20 ms packet per frame. */
const CALLER_FRAMES = readPcap(fixture(CALLER_PCAP)).length;
const CALLER_AUDIO_MS = CALLER_FRAMES * 20;
/** make-fixtures.ts puts 1.5 s of silence before the sentence. */
const LEADING_SILENCE_MS = 1500;

/** 16-bit mono PCM at 16 kHz: 32 bytes per ms, 640 per 20 ms frame. */
const INPUT_BYTES_PER_MS = 32;
const INPUT_FRAME_BYTES = 640;
/** Silence decodes to |x| ≤ 8; speech frames are far louder. */
const SPEECH_RMS = 200;
/** Digital silence (what the pacer sends when nothing is queued) decodes to exactly 0. */
const SILENT_PEAK = 8;
/** Barge-in budget from the provider's stop signal to silence on the wire (issue 4). */
const BARGE_IN_STOP_MS = 60;
/** Correlation of what the caller hears with the assistant clip (issue 4). */
const HEARD_CORRELATION = 0.85;
/** Caller audio at the provider vs the caller's sentence (G.711 quantisation only: ~0.99). */
const SPOKEN_CORRELATION = 0.9;
/**
 * Energy above 4.8 kHz in the 16 kHz caller audio, relative to the total. The 8 kHz source has nothing
 * there, so it is all resampling images: the project's Kaiser filter keeps them near −80 dB, sample
 * repetition leaves about −15 dB and linear interpolation about −25 dB.
 */
const IMAGE_BAND_HZ = 4800;
const MAX_IMAGE_ENERGY_DB = -45;
/** The sentence is matched in 250 ms pieces, each searched ±100 ms around where it should be. */
const SPEECH_PIECE_MS = 250;
const SPEECH_SEARCH_MS = 100;
/** Share of the sentence's pieces that must correlate > SPOKEN_CORRELATION. */
const MIN_MATCHED_PIECES = 0.7;
/** Frames the jitter buffer may insert or drop across the sentence under load (3 × 20 ms). */
const MAX_JITTER_DRIFT_MS = 60;
/** Per-test bound: a call of ~14 s plus process start-up and teardown on a shared 2-core box. */
const TEST_TIMEOUT_MS = 90_000;
const POLL_MS = 20;
/** Wait after SIPp exits before stopping the capture: the kernel ring releases packets in ~ms blocks. */
const CAPTURE_TAIL_MS = 1000;

interface CallRun {
  sipp: SippResult;
  /** Packets voxgate sent to the caller's media port, with capture times (epoch ms). */
  sent: ParsedRtp[];
  sentAt: number[];
  /** Capture time (epoch ms) of voxgate's BYE, if it sent one. */
  byeAt: number | undefined;
  answered: LogRecord;
  ended: LogRecord;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitFor(what: string, predicate: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(POLL_MS);
  }
}

function byeReason(result: SippResult): string | undefined {
  const at = result.messages.indexOf('BYE sip:');
  return at < 0 ? undefined : /^Reason: (.*)$/m.exec(result.messages.slice(at))?.[1];
}

/** Caller frames voxgate handed to the provider: real and concealed, from the call's media stats. */
function framesToProvider(ended: LogRecord): number {
  const media = ended['media'];
  const inbound = isRecord(media) ? media['inbound'] : undefined;
  if (!isRecord(inbound) || typeof inbound['frames'] !== 'number')
    throw new Error(`no media.inbound stats in the 'call ended' log: ${JSON.stringify(media)}`);
  return (
    inbound['frames'] + (typeof inbound['concealedFrames'] === 'number' ? inbound['concealedFrames'] : 0)
  );
}

function decodedFrames(run: CallRun): Int16Array[] {
  return run.sent.map((p) => decodeG711('PCMU', p.payload));
}

function heardCorrelation(run: CallRun, reference: Int16Array): number {
  return findReference(decodeG711('PCMU', Buffer.concat(run.sent.map((p) => p.payload))), reference)
    .correlation;
}

/** Capture times of the loud (speech) frames voxgate sent before `before`. */
function loudTimes(run: CallRun, before = Infinity): number[] {
  const frames = decodedFrames(run);
  return run.sentAt.filter((t, i) => t < before && rms(frames[i]!) > SPEECH_RMS);
}

/** Start of the digital silence that lasts until `until` (the next reply): where playback really stopped. */
function silenceStartBefore(run: CallRun, until: number): number | undefined {
  const frames = decodedFrames(run);
  let start: number | undefined;
  for (let i = 0; i < frames.length; i++) {
    const t = run.sentAt[i]!;
    if (t >= until) break;
    const peak = frames[i]!.reduce((m, s) => Math.max(m, Math.abs(s)), 0);
    if (peak > SILENT_PEAK) start = undefined;
    else start ??= t;
  }
  return start;
}

// ---- spectrum -----------------------------------------------------------------------------------------

function fft(re: Float64Array, im: Float64Array): void {
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      [re[i], re[j]] = [re[j]!, re[i]!];
      [im[i], im[j]] = [im[j]!, im[i]!];
    }
  }
  for (let len = 2; len <= n; len <<= 1) {
    const half = len >> 1;
    const angle = (-2 * Math.PI) / len;
    for (let i = 0; i < n; i += len) {
      for (let k = 0; k < half; k++) {
        const wr = Math.cos(angle * k);
        const wi = Math.sin(angle * k);
        const a = i + k;
        const b = a + half;
        const vr = re[b]! * wr - im[b]! * wi;
        const vi = re[b]! * wi + im[b]! * wr;
        re[b] = re[a]! - vr;
        im[b] = im[a]! - vi;
        re[a] = re[a]! + vr;
        im[a] = im[a]! + vi;
      }
    }
  }
}

/** Energy at and above `fromHz` relative to the whole band, in dB (Hann-windowed 512-point frames). */
function bandEnergyDb(samples: Int16Array, sampleRate: number, fromHz: number): number {
  const n = 512;
  const re = new Float64Array(n);
  const im = new Float64Array(n);
  let band = 0;
  let total = 0;
  for (let start = 0; start + n <= samples.length; start += n) {
    for (let i = 0; i < n; i++) {
      re[i] = samples[start + i]! * (0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (n - 1)));
      im[i] = 0;
    }
    fft(re, im);
    for (let k = 1; k < n / 2; k++) {
      const power = re[k]! * re[k]! + im[k]! * im[k]!;
      total += power;
      if ((k * sampleRate) / n >= fromHz) band += power;
    }
  }
  return 10 * Math.log10(band / total);
}

/**
 * The caller's audio as the provider received it (16 kHz s16le) is the caller's sentence: byte order
 * and rate right (correlation after bringing it back to 8 kHz), the sentence where the pcap has it, and
 * no resampling images above the telephone band.
 */
function correlationAt(signal: Int16Array, reference: Int16Array, lag: number): number {
  let dot = 0;
  let es = 0;
  let er = 0;
  for (let i = 0; i < reference.length; i++) {
    const x = signal[lag + i]!;
    const r = reference[i]!;
    dot += x * r;
    es += x * x;
    er += r * r;
  }
  return es === 0 || er === 0 ? 0 : dot / Math.sqrt(es * er);
}

interface SpeechMatch {
  /** Spoken pieces of the sentence that correlate > SPOKEN_CORRELATION, of all spoken pieces. */
  matched: number;
  pieces: number;
  /** Median and worst piece. */
  medianCorrelation: number;
  minCorrelation: number;
  /** Where the sentence starts in the received audio. */
  lagMs: number;
  /** Last piece's position minus the first's, minus their distance in the sentence: frames the jitter
   * buffer inserted (+) or dropped (−) in between, or audio lost (−). */
  driftMs: number;
  /** Resampling images above IMAGE_BAND_HZ, relative to the whole spectrum. */
  imageDb: number;
}

/**
 * Finds the caller's sentence, piece by piece, in the audio a provider received (16 kHz s16le): it is
 * there in the right byte order and at the right rate (correlation after bringing it back to 8 kHz),
 * starts where the pcap has it, and has no resampling images above the telephone band. Piece by piece,
 * because the jitter buffer may legitimately insert or drop a 20 ms frame on a loaded machine, which
 * would shift the rest of the sentence and spoil one whole-sentence correlation.
 */
function matchCallerSpeech(bytes: Buffer): SpeechMatch {
  const at16k = s16(bytes);
  const at8k = new Resampler(16000, 8000).process(at16k);
  const rough = findReference(at8k, CALLER_SPEECH).lag;
  const piece = SPEECH_PIECE_MS * 8;
  const window = SPEECH_SEARCH_MS * 8;
  const lags: { offset: number; lag: number }[] = [];
  const correlations: number[] = [];
  for (let offset = 0; offset + piece <= CALLER_SPEECH.length; offset += piece) {
    const reference = CALLER_SPEECH.subarray(offset, offset + piece);
    if (rms(reference) < SPEECH_RMS) continue; // a pause between words: nothing to match
    let best = -1;
    let bestLag = 0;
    const centre = rough + offset;
    const last = Math.min(at8k.length - piece, centre + window);
    for (let lag = Math.max(0, centre - window); lag <= last; lag++) {
      const score = correlationAt(at8k, reference, lag);
      if (score > best) {
        best = score;
        bestLag = lag;
      }
    }
    correlations.push(best);
    lags.push({ offset, lag: bestLag - offset });
  }
  const first = lags[0]!;
  const final = lags[lags.length - 1]!;
  const speech = at16k.subarray(first.lag * 2, (first.lag + CALLER_SPEECH.length) * 2);
  return {
    matched: correlations.filter((c) => c > SPOKEN_CORRELATION).length,
    pieces: correlations.length,
    medianCorrelation: [...correlations].sort((a, b) => a - b)[correlations.length >> 1]!,
    minCorrelation: Math.min(...correlations),
    lagMs: first.lag / 8,
    driftMs: (final.lag - first.lag) / 8,
    imageDb: bandEnergyDb(speech, 16000, IMAGE_BAND_HZ),
  };
}

function expectCallerSpeech(bytes: Buffer): SpeechMatch {
  const match = matchCallerSpeech(bytes);
  expect(match.pieces).toBeGreaterThan(8);
  // A wrong byte order or rate fails every piece; a jitter-buffer frame inserted or dropped (with its
  // PLC cross-fade) spoils one or two.
  expect(match.medianCorrelation).toBeGreaterThan(0.95);
  expect(match.matched / match.pieces).toBeGreaterThanOrEqual(MIN_MATCHED_PIECES);
  expect(Math.abs(match.lagMs - LEADING_SILENCE_MS)).toBeLessThan(60);
  expect(Math.abs(match.driftMs)).toBeLessThanOrEqual(MAX_JITTER_DRIFT_MS);
  expect(match.imageDb).toBeLessThan(MAX_IMAGE_ENERGY_DB);
  return match;
}

describeE2E('realtime providers through drachtio-server', () => {
  let drachtio: DrachtioServer;
  let gemini: FakeGeminiLive | undefined;
  let doubao: FakeDoubaoRealtime | undefined;
  let voxgate: Voxgate | undefined;
  /** Measurements for the report, printed once at the end. */
  const numbers: Record<string, unknown> = {};

  beforeAll(async () => {
    drachtio = await startDrachtio();
  });
  afterEach(async () => {
    await voxgate?.stop();
    voxgate = undefined;
    await gemini?.stop();
    gemini = undefined;
    await doubao?.stop();
    doubao = undefined;
  });
  afterAll(async () => {
    console.log(`provider e2e measurements: ${JSON.stringify(numbers)}`);
    await drachtio?.stop();
    await killAll();
  });

  /** voxgate with a one-call RTP range. */
  async function start(env: Record<string, string>): Promise<Voxgate> {
    const rtpBase = await freeEvenUdpPortRange(2);
    voxgate = await startVoxgate({
      ...drachtioEnv(drachtio),
      RTP_PORT_MIN: String(rtpBase),
      RTP_PORT_MAX: String(rtpBase + 1),
      // The HTTP API on loopback, on a port no other run holds.
      HTTP_BIND_ADDRESS: '127.0.0.1',
      HTTP_PORT: String(await freeTcpPort()),
      ...env,
    });
    return voxgate;
  }

  async function startGemini(
    options: FakeGeminiLiveOptions,
    env: Record<string, string>,
  ): Promise<FakeGeminiLive> {
    gemini = new FakeGeminiLive(options);
    await gemini.start();
    await start({
      AI_PROVIDER: 'gemini',
      GEMINI_API_KEY: 'test',
      GOOGLE_GEMINI_BASE_URL: gemini.httpUrl,
      ...env,
    });
    return gemini;
  }

  async function startDoubao(
    options: FakeDoubaoOptions,
    env: Record<string, string>,
  ): Promise<FakeDoubaoRealtime> {
    doubao = new FakeDoubaoRealtime(options);
    await doubao.start();
    await start({ AI_PROVIDER: 'doubao', DOUBAO_API_KEY: 'test', DOUBAO_REALTIME_URL: doubao.url, ...env });
    return doubao;
  }

  /** One SIPp call playing the caller pcap, captured on the caller's media and SIP ports. */
  async function call(scenario: string, options: { callMs?: number; timeoutMs: number }): Promise<CallRun> {
    const vg = voxgate!;
    const mediaPort = await freeEvenUdpPortRange(4);
    const sipPort = await freeUdpPort();
    const capture = await startCapture({ udpPorts: [mediaPort, sipPort] });
    const sipp = await runSipp({
      scenario,
      target: `127.0.0.1:${drachtio.sipPort}`,
      localPort: sipPort,
      mediaPort,
      keys: { pcap: fixture(CALLER_PCAP) },
      vars: options.callMs === undefined ? {} : { call_ms: String(options.callMs) },
      timeoutMs: options.timeoutMs,
    });
    // dumpcap hands packets over in blocks: give the last ones (the BYE exchange) time to be written.
    await delay(CAPTURE_TAIL_MS);
    const packets = await capture.stop();
    const answered = await vg.waitForLog(byMsg('call answered'), 5000);
    const ended = await vg.waitForLog(byMsg('call ended'), 10_000);
    const rtpPort = Number(answered['rtpPort']);
    const fromVoxgate = packets.filter((p) => p.srcPort === rtpPort && p.dstPort === mediaPort);
    const bye = packets.find(
      (p) => p.dstPort === sipPort && p.payload.subarray(0, 4).toString('latin1') === 'BYE ',
    );
    return {
      sipp,
      sent: fromVoxgate.map((p) => parseRtp(p.payload)),
      sentAt: fromVoxgate.map((p) => p.ts * 1000),
      byeAt: bye === undefined ? undefined : bye.ts * 1000,
      answered,
      ended,
    };
  }

  // ---- Gemini Live ------------------------------------------------------------------------------------

  it(
    'gemini: streams the caller as 16 kHz PCM and plays the 24 kHz reply to the caller',
    async () => {
      const fake = await startGemini({ replyAudio: REPLY_24K }, { AGENT_GREETING: '' });
      const run = await call('uac-call-pcap', { callMs: 14_000, timeoutMs: 30_000 });
      expect(run.sipp.code, describeSippRun(run.sipp)).toBe(0);
      expect(run.answered['codec']).toBe('PCMU');
      expect(run.ended['cause']).toBe('caller-hangup');

      expect(fake.connections).toHaveLength(1);
      const connection = fake.connections[0]!;
      expect(connection.backend).toBe('gemini-api');
      expect(connection.apiKey).toBe('test');
      expect([...connection.audioMimeTypes]).toEqual(['audio/pcm;rate=16000']);
      // Every frame voxgate took from the caller reached the provider, and that is the whole pcap
      // (plus the few frames concealed after its end).
      const frames = framesToProvider(run.ended);
      expect(connection.audioBytes).toBe(frames * INPUT_FRAME_BYTES);
      const receivedMs = connection.audioBytes / INPUT_BYTES_PER_MS;
      expect(Math.abs(receivedMs - CALLER_AUDIO_MS)).toBeLessThanOrEqual(200);
      const spoken = expectCallerSpeech(connection.audio());

      // The fake's VAD heard the sentence end and answered; the caller heard that answer.
      expect(connection.modelTurns[0]).toMatchObject({ origin: 'vad', status: 'complete' });
      const heard = heardCorrelation(run, REPLY_8K);
      expect(heard).toBeGreaterThanOrEqual(HEARD_CORRELATION);
      await expect.poll(() => connection.closed, { timeout: 3000 }).toBe(true);
      numbers['gemini.audio'] = { receivedMs, callerAudioMs: CALLER_AUDIO_MS, ...spoken, heard };
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'gemini: stops the greeting within 60 ms of serverContent.interrupted and drops its late chunks',
    async () => {
      // Chunks at ~1.3× real time, so the 6.6 s greeting is still streaming when the caller speaks.
      const fake = await startGemini(
        { replyAudio: REPLY_24K, chunkMs: 40, chunkIntervalMs: 30, chunksAfterInterrupt: 2 },
        { AGENT_GREETING: 'Greet the caller.' },
      );
      const run = await call('uac-call-pcap', { callMs: 8000, timeoutMs: 30_000 });
      expect(run.sipp.code, describeSippRun(run.sipp)).toBe(0);
      const connection = fake.connections[0]!;
      expect(connection.textTurns).toContain('Greet the caller.');
      expect(connection.modelTurns[0]).toMatchObject({
        origin: 'client',
        status: 'interrupted',
        chunksAfterInterrupt: 2,
      });

      const sent = connection.sent;
      const interruptIndex = sent.findIndex(
        (m) => isRecord(m.message['serverContent']) && m.message['serverContent']['interrupted'] === true,
      );
      expect(interruptIndex).toBeGreaterThan(0);
      const interruptedAt = sent[interruptIndex]!.at;
      const completeIndex = sent.findIndex(
        (m, i) =>
          i > interruptIndex &&
          isRecord(m.message['serverContent']) &&
          m.message['serverContent']['turnComplete'] === true,
      );
      // The reply to the caller's sentence (turn 2) starts later; only the greeting matters here.
      const nextReplyAt =
        sent.find(
          (m, i) =>
            i > completeIndex &&
            isRecord(m.message['serverContent']) &&
            m.message['serverContent']['modelTurn'] !== undefined,
        )?.at ?? Infinity;
      const greeting = loudTimes(run, nextReplyAt);
      // The greeting was audibly playing up to the interruption...
      expect(greeting.filter((t) => t < interruptedAt).length).toBeGreaterThan(25);
      expect(greeting.some((t) => t > interruptedAt - 500 && t <= interruptedAt)).toBe(true);
      // ...and went silent within the budget, staying silent (late chunks dropped) until the next reply.
      const lastLoudMs = greeting[greeting.length - 1]! - interruptedAt;
      const silentFrom = silenceStartBefore(run, Math.min(nextReplyAt, run.sentAt.at(-1)! + 1));
      expect(silentFrom).toBeDefined();
      const stopMs = silentFrom! - interruptedAt;
      expect(lastLoudMs).toBeLessThanOrEqual(BARGE_IN_STOP_MS);
      expect(stopMs).toBeLessThanOrEqual(BARGE_IN_STOP_MS);
      numbers['gemini.bargeIn'] = { stopMs, lastLoudMs };
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'gemini: end_call hangs up after the goodbye with Reason cause 16 and answers the tool call',
    async () => {
      // The goodbye is turn 0; the model says nothing more after the tool result.
      const fake = await startGemini(
        { replyAudio: (turn) => (turn === 0 ? REPLY_24K : Buffer.alloc(0)) },
        { AGENT_GREETING: '' },
      );
      let toolCallId: string | undefined;
      const agent = (async () => {
        const connection = await fake.waitForConnection(0, 15_000);
        await waitFor(
          'the goodbye to be sent',
          () => connection.modelTurns[0]?.status === 'complete',
          20_000,
        );
        toolCallId = connection.sendToolCall('end_call', { reason: 'the caller is done' });
      })();
      const run = await call('uac-pcap-wait-bye', { timeoutMs: 40_000 });
      await agent;
      expect(run.sipp.code, describeSippRun(run.sipp)).toBe(0);
      expect(byeReason(run.sipp)).toBe('Q.850;cause=16;text="Agent ended the call"');
      expect(run.ended['cause']).toBe('agent-hangup');

      const connection = fake.connections[0]!;
      expect(connection.toolResponses).toHaveLength(1);
      expect(connection.toolResponses[0]).toEqual({
        id: toolCallId,
        name: 'end_call',
        response: { output: { ok: true } },
      });
      // The goodbye played out in full before the BYE.
      const heard = heardCorrelation(run, REPLY_8K);
      expect(heard).toBeGreaterThanOrEqual(HEARD_CORRELATION);
      const loud = loudTimes(run);
      expect(run.byeAt).toBeDefined();
      const byeAfterGoodbyeMs = run.byeAt! - loud[loud.length - 1]!;
      expect(byeAfterGoodbyeMs).toBeGreaterThan(0);
      numbers['gemini.endCall'] = { heard, byeAfterGoodbyeMs };
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'gemini: a goAway mid-sentence resumes on a new connection with every caller byte delivered',
    async () => {
      // setupComplete takes 200 ms, so the fake closes the old socket (20 ms after goAway) well before
      // the new one is ready: ~200 ms of caller audio must wait in voxgate's switch buffer.
      const fake = await startGemini(
        { replyAudio: REPLY_24K, setupCompleteDelayMs: 200 },
        { AGENT_GREETING: '' },
      );
      // 2.5 s of audio time: one second into the caller's sentence.
      const switchAtBytes = 2500 * INPUT_BYTES_PER_MS;
      let forced = false;
      fake.on('clientMessage', (connection) => {
        if (forced || connection.index !== 0 || connection.audioBytes < switchAtBytes) return;
        forced = true;
        connection.forceGoAway(20);
      });
      const run = await call('uac-call-pcap', { callMs: 14_000, timeoutMs: 30_000 });
      expect(run.sipp.code, describeSippRun(run.sipp)).toBe(0);
      expect(run.ended['cause']).toBe('caller-hangup');
      expect(forced).toBe(true);

      expect(fake.connections).toHaveLength(2);
      const [first, second] = [fake.connections[0]!, fake.connections[1]!];
      expect(first.closed).toBe(true);
      expect(first.closedBy).toBe('server');
      expect(first.closeCode).toBe(1001);
      expect(second.resumedFrom).toBeDefined();
      expect(first.issuedHandles).toContain(second.resumedFrom);
      expect(second.conversation).toBe(first.conversation);
      const conversation = first.conversation!;
      expect(conversation.resumptions).toBe(1);
      expect(voxgate!.findLogs(byMsg('gemini session continues on a new connection'))).toHaveLength(1);

      // No loss: the provider got exactly what voxgate took from the caller, split over the two sockets.
      const sentBytes = framesToProvider(run.ended) * INPUT_FRAME_BYTES;
      expect(first.audioBytes).toBeGreaterThanOrEqual(switchAtBytes);
      expect(second.audioBytes).toBeGreaterThan(0);
      expect(first.audioBytes + second.audioBytes).toBe(sentBytes);
      expect(conversation.audioBytes).toBe(sentBytes);
      // And in order: the sentence, which spans the switch, is intact (a gap would shift its second half).
      const spoken = expectCallerSpeech(conversation.audio());

      // The call went on: the reply was generated on the new connection and the caller heard it.
      expect(first.modelTurns).toHaveLength(0);
      expect(second.modelTurns[0]).toMatchObject({ origin: 'vad', status: 'complete' });
      const heard = heardCorrelation(run, REPLY_8K);
      expect(heard).toBeGreaterThanOrEqual(HEARD_CORRELATION);

      const goAwayAt = first.sent.find((m) => m.message['goAway'] !== undefined)!.at;
      const readyAt = second.sent.find((m) => m.message['setupComplete'] !== undefined)!.at;
      const audioOf = (c: typeof first): number[] =>
        c.clientMessages.filter((m) => isRecord(m.message['realtimeInput'])).map((m) => m.at);
      const lastOldAudioAt = audioOf(first).at(-1)!;
      const firstNewAudioAt = audioOf(second)[0]!;
      const reconnectMs = readyAt - goAwayAt;
      expect(reconnectMs).toBeLessThan(2000);
      numbers['gemini.reconnect'] = {
        reconnectMs,
        audioGapMs: firstNewAudioAt - lastOldAudioAt,
        oldSocketClosedBy: first.closedBy,
        bytesSent: sentBytes,
        bytesReceived: conversation.audioBytes,
        firstConnectionBytes: first.audioBytes,
        secondConnectionBytes: second.audioBytes,
        ...spoken,
        heard,
      };
    },
    TEST_TIMEOUT_MS,
  );

  // ---- Doubao ---------------------------------------------------------------------------------------------

  it(
    'doubao: sends 640-byte 16 kHz frames at real-time pace and plays the 24 kHz reply',
    async () => {
      const fake = await startDoubao({ replyAudio: REPLY_24K }, { AGENT_GREETING: '' });
      const run = await call('uac-call-pcap', { callMs: 14_000, timeoutMs: 30_000 });
      expect(run.sipp.code, describeSippRun(run.sipp)).toBe(0);
      expect(run.ended['cause']).toBe('caller-hangup');
      expect(fake.sessions).toHaveLength(1);
      const session = fake.sessions[0]!;
      expect(session.headers['x-api-key']).toBe('test');

      const frames = session.clientFrames.filter((f) => f.event === 200);
      expect(frames.every((f) => f.payload.length === INPUT_FRAME_BYTES)).toBe(true);
      // Caller frames, then (1 s after the pcap ends) keep-alive silence: one frame per 20 ms of the
      // call, less the keep-alive's 1 s wait.
      const durationMs = Number(run.ended['durationMs']);
      const framesMs = frames.length * 20;
      expect(framesMs).toBeGreaterThan(durationMs - 1500);
      expect(framesMs).toBeLessThan(durationMs + 100);
      // Real-time pace: the caller's part (the pcap) took as long on the wire as it lasts.
      const callerFrames = framesToProvider(run.ended);
      const callerSpanMs = frames[callerFrames - 1]!.at - frames[0]!.at;
      expect(Math.abs(callerSpanMs - (callerFrames - 1) * 20)).toBeLessThan(250);
      const spoken = expectCallerSpeech(Buffer.concat(frames.map((f) => f.payload)));

      expect(session.replies[0]).toMatchObject({ origin: 'vad', status: 'done' });
      const heard = heardCorrelation(run, REPLY_8K);
      expect(heard).toBeGreaterThanOrEqual(HEARD_CORRELATION);
      numbers['doubao.audio'] = {
        frames: frames.length,
        durationMs,
        framesMs,
        callerFrames,
        callerSpanMs,
        ...spoken,
        heard,
      };
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'doubao: ASRInfo stops the greeting within 60 ms and its in-flight chunks are never played',
    async () => {
      // 100 ms chunks every 60 ms: the greeting is still streaming when the caller speaks.
      const fake = await startDoubao(
        { replyAudio: REPLY_24K, chunkIntervalMs: 60, lateChunksAfterBargeIn: 2 },
        { AGENT_GREETING: '您好，这里是测试客服。' },
      );
      const run = await call('uac-call-pcap', { callMs: 8000, timeoutMs: 30_000 });
      expect(run.sipp.code, describeSippRun(run.sipp)).toBe(0);
      const session = fake.sessions[0]!;
      expect(session.replies[0]).toMatchObject({ origin: 'hello', status: 'interrupted' });

      const asrInfoAt = session.sent.find((f) => f.event === 450)!.at;
      const nextReplyAt = session.sent.find((f) => f.event === 350 && f.at > asrInfoAt)?.at ?? Infinity;
      const greeting = loudTimes(run, nextReplyAt);
      expect(greeting.filter((t) => t < asrInfoAt).length).toBeGreaterThan(25);
      expect(greeting.some((t) => t > asrInfoAt - 500 && t <= asrInfoAt)).toBe(true);
      const lastLoudMs = greeting[greeting.length - 1]! - asrInfoAt;
      const silentFrom = silenceStartBefore(run, Math.min(nextReplyAt, run.sentAt.at(-1)! + 1));
      expect(silentFrom).toBeDefined();
      const stopMs = silentFrom! - asrInfoAt;
      expect(lastLoudMs).toBeLessThanOrEqual(BARGE_IN_STOP_MS);
      expect(stopMs).toBeLessThanOrEqual(BARGE_IN_STOP_MS);
      numbers['doubao.bargeIn'] = { stopMs, lastLoudMs };
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "doubao: the model's user-exit signal hangs up after the goodbye with Reason 'Agent ended the call'",
    async () => {
      const fake = await startDoubao({ replyAudio: REPLY_24K }, { AGENT_GREETING: '' });
      // The caller finishes the sentence; the model answers with a goodbye flagged "user wants to leave".
      let exitRequested = false;
      fake.on('clientFrame', (session) => {
        if (exitRequested || !session.replies.some((r) => r.origin === 'vad')) return;
        exitRequested = true;
        session.requestUserExit();
      });
      const run = await call('uac-pcap-wait-bye', { timeoutMs: 40_000 });
      expect(run.sipp.code, describeSippRun(run.sipp)).toBe(0);
      expect(byeReason(run.sipp)).toBe('Q.850;cause=16;text="Agent ended the call"');
      expect(run.ended['cause']).toBe('agent-hangup');
      expect(run.ended['detail']).toBe('agent: user_query_exit');

      const session = fake.sessions[0]!;
      const goodbye = session.replies.find((r) => r.origin === 'exit');
      expect(goodbye).toMatchObject({ status: 'done' });
      const heard = heardCorrelation(run, REPLY_8K);
      expect(heard).toBeGreaterThanOrEqual(HEARD_CORRELATION);
      const loud = loudTimes(run);
      expect(run.byeAt).toBeDefined();
      const byeAfterGoodbyeMs = run.byeAt! - loud[loud.length - 1]!;
      expect(byeAfterGoodbyeMs).toBeGreaterThan(0);
      numbers['doubao.userExit'] = { heard, byeAfterGoodbyeMs };
    },
    TEST_TIMEOUT_MS,
  );
});
