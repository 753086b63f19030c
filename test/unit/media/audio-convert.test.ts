// The converters between a call's G.711 and a provider's audio format: G.711 passes through untouched,
// pcm16 comes out little-endian at the provider's rate with exact per-frame sizes, provider chunks may
// split anywhere (even mid-sample) without changing the result, and speech-band audio survives.
import { describe, expect, it } from 'vitest';
import type { G711Codec } from '../../../src/core/audio.js';
import {
  createCallerToProvider,
  createProviderToCaller,
  type ProviderAudioFormat,
} from '../../../src/media/audio-convert.js';
import { decodeG711, encodeG711 } from '../../../src/media/g711.js';

const CODECS: readonly G711Codec[] = ['PCMU', 'PCMA'];
const RATES = [8000, 16000, 24000] as const;
const G711_FRAME_BYTES = 160;
/** G.711 alone gives ≈ 38 dB on a well-levelled tone; the resampler must not eat into that much. */
const MIN_SNR_DB = 25;
/** Samples at 8 kHz skipped before comparing: past the resampler's start-up transient. */
const SETTLE_SAMPLES = 100;

function pcm16(rate: 8000 | 16000 | 24000): ProviderAudioFormat {
  return { encoding: 'pcm16', sampleRate: rate };
}

function tone(rate: number, frequencyHz: number, amplitude: number, samples: number): Int16Array {
  const out = new Int16Array(samples);
  for (let i = 0; i < samples; i++)
    out[i] = Math.round(amplitude * Math.sin((2 * Math.PI * frequencyHz * i) / rate));
  return out;
}

function toLeBytes(samples: Int16Array): Uint8Array {
  const bytes = Buffer.alloc(samples.length * 2);
  samples.forEach((s, i) => bytes.writeInt16LE(s, 2 * i));
  return new Uint8Array(bytes);
}

function fromLeBytes(bytes: Uint8Array): Int16Array {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const out = new Int16Array(bytes.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = buffer.readInt16LE(2 * i);
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

/** Best SNR of `output` against `reference` over lags 0..maxLag (the resampler delays by a few ms). */
function bestLagSnrDb(reference: Int16Array, output: Int16Array, start: number, maxLag: number): number {
  let best = -Infinity;
  for (let lag = 0; lag <= maxLag; lag++) {
    let signal = 0;
    let noise = 0;
    for (let i = start; i + lag < output.length && i < reference.length; i++) {
      const x = reference[i]!;
      const e = output[i + lag]! - x;
      signal += x * x;
      noise += e * e;
    }
    best = Math.max(best, 10 * Math.log10(signal / Math.max(noise, 1e-9)));
  }
  return best;
}

describe('audio-convert: g711 formats pass through', () => {
  it.each(CODECS)('%s: both directions return the very same bytes', (codec) => {
    const payload = Uint8Array.from({ length: G711_FRAME_BYTES }, (_, i) => i);
    expect(createCallerToProvider(codec, { encoding: 'g711' })(payload)).toBe(payload);
    expect(createProviderToCaller(codec, { encoding: 'g711' })(payload)).toBe(payload);
  });
});

describe('audio-convert: caller → provider', () => {
  it.each(RATES)('pcm16@%i: every 160-byte G.711 frame becomes rate/8000 × 320 bytes', (rate) => {
    const toProvider = createCallerToProvider('PCMU', pcm16(rate));
    const frame = encodeG711('PCMU', tone(8000, 440, 8000, G711_FRAME_BYTES));
    for (let k = 0; k < 5; k++) expect(toProvider(frame).length).toBe((rate / 8000) * 320);
  });

  it('pcm16@8000 writes each decoded sample little-endian', () => {
    const payload = Uint8Array.from({ length: 256 }, (_, i) => i); // every G.711 code, both signs
    for (const codec of CODECS) {
      const bytes = createCallerToProvider(codec, pcm16(8000))(payload);
      expect(fromLeBytes(bytes)).toEqual(decodeG711(codec, payload));
    }
  });

  it.each(CODECS)(
    '%s → pcm16@16000: a 1 kHz tone survives G.711 and resampling with ≥ 25 dB SNR',
    (codec) => {
      const toProvider = createCallerToProvider(codec, pcm16(16000));
      const g711 = encodeG711(codec, tone(8000, 1000, 10000, 1600));
      const parts: Uint8Array[] = [];
      for (let at = 0; at < g711.length; at += G711_FRAME_BYTES)
        parts.push(Uint8Array.from(toProvider(g711.subarray(at, at + G711_FRAME_BYTES)))); // copy: buffer is reused
      const received = fromLeBytes(concat(parts));
      expect(received.length).toBe(3200);
      const ideal = tone(16000, 1000, 10000, 3200);
      expect(bestLagSnrDb(ideal, received, 2 * SETTLE_SAMPLES, 100)).toBeGreaterThan(MIN_SNR_DB);
    },
  );

  it('reuses its output buffer between frames (valid until the next call)', () => {
    const toProvider = createCallerToProvider('PCMA', pcm16(16000));
    const frame = encodeG711('PCMA', tone(8000, 440, 8000, G711_FRAME_BYTES));
    expect(toProvider(frame)).toBe(toProvider(frame));
  });
});

describe('audio-convert: provider → caller', () => {
  it.each(RATES)(
    'pcm16@%i: chunks split anywhere, even mid-sample, give the same G.711 as one chunk',
    (rate) => {
      const bytes = toLeBytes(tone(rate, 1234, 12000, rate / 2)); // 500 ms
      const whole = createProviderToCaller('PCMU', pcm16(rate))(bytes);
      expect(whole.length).toBe(4000);

      const toCaller = createProviderToCaller('PCMU', pcm16(rate));
      const sizes = [1, 1, 3, 0, 2, 961, 5, 480, 1, 777, 4096];
      const parts: Uint8Array[] = [];
      for (let at = 0, k = 0; at < bytes.length; k++) {
        const size = Math.min(sizes[k % sizes.length]!, bytes.length - at);
        parts.push(toCaller(bytes.subarray(at, at + size)));
        at += size;
      }
      expect(concat(parts)).toEqual(whole);
    },
  );

  it('keeps an odd trailing byte for the next chunk instead of dropping or misreading it', () => {
    const toCaller = createProviderToCaller('PCMU', pcm16(8000));
    const bytes = toLeBytes(Int16Array.from([0x1234, -1000, 32767]));
    expect(toCaller(bytes.subarray(0, 3))).toEqual(encodeG711('PCMU', Int16Array.from([0x1234])));
    expect(toCaller(bytes.subarray(3, 5))).toEqual(encodeG711('PCMU', Int16Array.from([-1000])));
    expect(toCaller(bytes.subarray(5))).toEqual(encodeG711('PCMU', Int16Array.from([32767])));
  });

  it.each([16000, 24000] as const)(
    'pcm16@%i reads samples little-endian (DC 0x1234 arrives as 0x1234)',
    (rate) => {
      const dc = new Int16Array(rate / 10).fill(0x1234); // a byte swap would read 0x3412
      const g711 = createProviderToCaller('PCMA', pcm16(rate))(toLeBytes(dc));
      expect(g711.length).toBe(800);
      const settled = g711.subarray(SETTLE_SAMPLES);
      expect(settled.every((b) => b === encodeG711('PCMA', Int16Array.from([0x1234]))[0])).toBe(true);
    },
  );

  it.each(CODECS)(
    '%s ← pcm16@24000: a 1 kHz tone survives resampling and G.711 with ≥ 25 dB SNR',
    (codec) => {
      const toCaller = createProviderToCaller(codec, pcm16(24000));
      const bytes = toLeBytes(tone(24000, 1000, 10000, 4800));
      const parts: Uint8Array[] = [];
      for (let at = 0; at < bytes.length; at += 1001) parts.push(toCaller(bytes.subarray(at, at + 1001)));
      const received = decodeG711(codec, concat(parts));
      expect(received.length).toBe(1600);
      expect(bestLagSnrDb(tone(8000, 1000, 10000, 1600), received, SETTLE_SAMPLES, 100)).toBeGreaterThan(
        MIN_SNR_DB,
      );
    },
  );

  it('returns a new array per chunk, so audio the pacer still holds is never overwritten', () => {
    const toCaller = createProviderToCaller('PCMU', pcm16(24000));
    const first = toCaller(toLeBytes(tone(24000, 440, 8000, 480)));
    const kept = Uint8Array.from(first);
    const second = toCaller(toLeBytes(tone(24000, 2000, 3000, 480)));
    expect(second).not.toBe(first);
    expect(first).toEqual(kept);
  });

  it('reset() drops a carried odd byte and the resampler history', () => {
    const toCaller = createProviderToCaller('PCMU', pcm16(24000));
    const chunk = toLeBytes(tone(24000, 700, 9000, 480));
    const fresh = createProviderToCaller('PCMU', pcm16(24000))(chunk);
    toCaller(toLeBytes(tone(24000, 3000, 9000, 481)).subarray(0, 961)); // ends mid-sample, mid-phase
    toCaller.reset();
    expect(toCaller(chunk)).toEqual(fresh);
  });
});
