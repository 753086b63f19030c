// The table-driven G.711 codec: audio survives encode→decode, the tables match the reference
// implementation (alawmulaw) exactly, and the silence byte really is silent.
import alawmulaw from 'alawmulaw';
import { describe, expect, it } from 'vitest';
import { G711_SAMPLE_RATE, type G711Codec } from '../../../src/core/audio.js';
import { SILENCE_BYTE, STATIC_PAYLOAD_TYPE, decodeG711, encodeG711 } from '../../../src/media/g711.js';

// Default import only: alawmulaw's named exports do not exist under Node ESM.
const { mulaw, alaw } = alawmulaw;
const reference = { PCMU: mulaw, PCMA: alaw } as const;
const CODECS: readonly G711Codec[] = ['PCMU', 'PCMA'];

/** G.711 gives about 38 dB SNR for a well-levelled tone; 30 dB leaves room and still catches a broken table. */
const MIN_SNR_DB = 30;
/** |decoded silence| this small is inaudible (A-law has no exact zero; its closest code is ±8). */
const MAX_SILENCE_AMPLITUDE = 8;

function sine(frequencyHz: number, amplitude: number, seconds: number): Int16Array {
  const n = G711_SAMPLE_RATE * seconds;
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++)
    out[i] = Math.round(amplitude * Math.sin((2 * Math.PI * frequencyHz * i) / G711_SAMPLE_RATE));
  return out;
}

function snrDb(original: Int16Array, decoded: Int16Array): number {
  let signal = 0;
  let noise = 0;
  for (let i = 0; i < original.length; i++) {
    const x = original[i]!;
    const e = x - decoded[i]!;
    signal += x * x;
    noise += e * e;
  }
  return 10 * Math.log10(signal / noise);
}

function allSamples(): Int16Array {
  const samples = new Int16Array(65536);
  for (let i = 0; i < samples.length; i++) samples[i] = i - 32768;
  return samples;
}

function allBytes(): Uint8Array {
  return Uint8Array.from({ length: 256 }, (_, i) => i);
}

/** Index of the first difference, or -1; reports one useful position instead of a 65536-element diff. */
function firstDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

describe.each(CODECS)('%s', (codec) => {
  it.each([
    ['loud (-6 dBFS)', 16_384],
    ['quiet (-30 dBFS)', 1_036],
  ])(
    `keeps a 1 kHz sine at ${MIN_SNR_DB} dB SNR or better through encode→decode, %s`,
    (_label, amplitude) => {
      const tone = sine(1000, amplitude, 1);
      const decoded = decodeG711(codec, encodeG711(codec, tone));
      expect(decoded).toHaveLength(tone.length);
      expect(snrDb(tone, decoded)).toBeGreaterThanOrEqual(MIN_SNR_DB);
    },
  );

  it('encodes all 65536 sample values exactly like alawmulaw', () => {
    const samples = allSamples();
    expect(firstDifference(encodeG711(codec, samples), reference[codec].encode(samples))).toBe(-1);
  });

  it('decodes all 256 byte values exactly like alawmulaw', () => {
    const bytes = allBytes();
    expect(firstDifference(decodeG711(codec, bytes), reference[codec].decode(bytes))).toBe(-1);
  });

  it(`decodes its silence byte to at most ±${MAX_SILENCE_AMPLITUDE}`, () => {
    const [value] = decodeG711(codec, Uint8Array.of(SILENCE_BYTE[codec]));
    expect(Math.abs(value!)).toBeLessThanOrEqual(MAX_SILENCE_AMPLITUDE);
  });

  it('encodes digital silence to its silence byte', () => {
    expect(encodeG711(codec, new Int16Array(4))).toEqual(new Uint8Array(4).fill(SILENCE_BYTE[codec]));
  });

  it('writes into a caller-supplied buffer instead of allocating', () => {
    const pcm = new Int16Array(160);
    const bytes = new Uint8Array(160);
    expect(encodeG711(codec, sine(1000, 8000, 0.02), bytes)).toBe(bytes);
    expect(decodeG711(codec, bytes, pcm)).toBe(pcm);
    expect(pcm.some((s) => s !== 0)).toBe(true);
  });
});

describe('G.711 constants', () => {
  it('uses the RFC 3551 static payload types (PCMU 0, PCMA 8)', () => {
    expect(STATIC_PAYLOAD_TYPE).toEqual({ PCMU: 0, PCMA: 8 });
  });

  it('uses 0xFF for PCMU silence and 0xD5 for PCMA silence', () => {
    expect(SILENCE_BYTE).toEqual({ PCMU: 0xff, PCMA: 0xd5 });
  });
});
