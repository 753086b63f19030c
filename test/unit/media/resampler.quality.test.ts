// The polyphase resamplers keep the telephone band clean: downsampling rejects what would alias into
// it, upsampling rejects the images, the passband stays flat, a round trip gives back the signal, and
// streaming in frames of any size gives exactly what one big call gives. Levels are measured
// numerically, so sample dropping or linear interpolation in their place fails these tests.
import { describe, expect, it } from 'vitest';
import { Resampler, isSupportedResample, type ResampleRate } from '../../../src/media/resampler.js';

const NARROW = 8000;
/** −6 dBFS. */
const HALF_SCALE = 16384;
/** Output samples skipped before measuring: well past the filter's start-up transient. */
const SETTLE_SAMPLES = 200;
/** 100 ms at 8 kHz: a whole number of cycles for every tone below (all multiples of 10 Hz). */
const WINDOW_MS = 100;

const UP_PAIRS: readonly [ResampleRate, ResampleRate][] = [
  [8000, 16000],
  [8000, 24000],
];
const DOWN_PAIRS: readonly [ResampleRate, ResampleRate][] = [
  [16000, 8000],
  [24000, 8000],
];
const ALL_PAIRS = [...UP_PAIRS, ...DOWN_PAIRS];

function tone(rate: number, frequencyHz: number, amplitude: number, samples: number): Int16Array {
  const out = new Int16Array(samples);
  for (let i = 0; i < samples; i++)
    out[i] = Math.round(amplitude * Math.sin((2 * Math.PI * frequencyHz * i) / rate));
  return out;
}

/** Amplitude of `frequencyHz` in `samples[start, start + length)` (single-bin DFT, i.e. Goertzel). */
function amplitudeAt(
  samples: Int16Array,
  rate: number,
  frequencyHz: number,
  start: number,
  length: number,
): number {
  expect(start + length).toBeLessThanOrEqual(samples.length);
  let re = 0;
  let im = 0;
  for (let i = 0; i < length; i++) {
    const angle = (2 * Math.PI * frequencyHz * i) / rate;
    const x = samples[start + i]!;
    re += x * Math.cos(angle);
    im += x * Math.sin(angle);
  }
  return (2 * Math.hypot(re, im)) / length;
}

function db(ratio: number): number {
  return 20 * Math.log10(ratio);
}

/** Level of `frequencyHz` in the steady-state output, in dB relative to `referenceAmplitude`. */
function outputLevelDb(
  output: Int16Array,
  rate: number,
  frequencyHz: number,
  referenceAmplitude: number,
): number {
  const settle = (SETTLE_SAMPLES * rate) / NARROW;
  return db(amplitudeAt(output, rate, frequencyHz, settle, (rate * WINDOW_MS) / 1000) / referenceAmplitude);
}

/** Input long enough for the settle time plus one measurement window at the output. */
function inputLength(fromRate: number): number {
  return (fromRate * (SETTLE_SAMPLES / NARROW + (2 * WINDOW_MS) / 1000)) | 0;
}

/** Best SNR of `output` against `reference` over integer lags, with the lag that gives it. */
function bestLagSnr(
  reference: Int16Array,
  output: Int16Array,
  maxLag: number,
): { snrDb: number; lag: number } {
  const start = SETTLE_SAMPLES;
  const end = reference.length - maxLag;
  let best = { snrDb: -Infinity, lag: -1 };
  for (let lag = 0; lag <= maxLag; lag++) {
    let signal = 0;
    let noise = 0;
    for (let i = start; i < end; i++) {
      const x = reference[i]!;
      const e = output[i + lag]! - x;
      signal += x * x;
      noise += e * e;
    }
    const snrDb = 10 * Math.log10(signal / Math.max(noise, 1e-9));
    if (snrDb > best.snrDb) best = { snrDb, lag };
  }
  return best;
}

function inChunks(resampler: Resampler, input: Int16Array, sizes: readonly number[]): Int16Array {
  const parts: Int16Array[] = [];
  for (let offset = 0, k = 0; offset < input.length; k++) {
    const size = Math.min(sizes[k % sizes.length]!, input.length - offset);
    parts.push(resampler.process(input.subarray(offset, offset + size)));
    offset += size;
  }
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

describe('Resampler: alias rejection when downsampling', () => {
  /** Sample dropping leaves the alias at the input level (0 dB); the quality bar is 60 dB below it. */
  const MAX_ALIAS_DB = -60;

  it('24k→8k puts a −6 dBFS 6 kHz tone’s 2 kHz alias at least 60 dB below the tone', () => {
    const input = tone(24000, 6000, HALF_SCALE, inputLength(24000));
    const output = new Resampler(24000, 8000).process(input);
    expect(outputLevelDb(output, NARROW, 2000, HALF_SCALE)).toBeLessThan(MAX_ALIAS_DB);
  });

  it('16k→8k puts a −6 dBFS 6 kHz tone’s 2 kHz alias at least 60 dB below the tone', () => {
    const input = tone(16000, 6000, HALF_SCALE, inputLength(16000));
    const output = new Resampler(16000, 8000).process(input);
    expect(outputLevelDb(output, NARROW, 2000, HALF_SCALE)).toBeLessThan(MAX_ALIAS_DB);
  });

  it.each(DOWN_PAIRS)(
    '%i→%i rejects every tone that would fold into 0–3.4 kHz by at least 60 dB',
    (from, to) => {
      for (let f = 4600; f < from / 2; f += 700) {
        const alias = Math.abs(f - NARROW * Math.round(f / NARROW));
        const output = new Resampler(from, to).process(tone(from, f, HALF_SCALE, inputLength(from)));
        expect(outputLevelDb(output, NARROW, alias, HALF_SCALE), `${f} Hz → ${alias} Hz`).toBeLessThan(
          MAX_ALIAS_DB,
        );
      }
    },
  );
});

describe('Resampler: image rejection when upsampling', () => {
  it('8k→16k leaves the 5 kHz image of a 3 kHz tone at least 50 dB below the tone', () => {
    const output = new Resampler(8000, 16000).process(tone(NARROW, 3000, HALF_SCALE, inputLength(NARROW)));
    const toneDb = outputLevelDb(output, 16000, 3000, HALF_SCALE);
    const imageDb = outputLevelDb(output, 16000, 5000, HALF_SCALE);
    expect(Math.abs(toneDb)).toBeLessThan(1);
    expect(imageDb - toneDb).toBeLessThan(-50);
  });

  it('8k→24k leaves the 5 kHz and 11 kHz images of a 3 kHz tone at least 50 dB below the tone', () => {
    const output = new Resampler(8000, 24000).process(tone(NARROW, 3000, HALF_SCALE, inputLength(NARROW)));
    const toneDb = outputLevelDb(output, 24000, 3000, HALF_SCALE);
    expect(Math.abs(toneDb)).toBeLessThan(1);
    for (const image of [5000, 11000])
      expect(outputLevelDb(output, 24000, image, HALF_SCALE) - toneDb).toBeLessThan(-50);
  });
});

describe('Resampler: passband', () => {
  const PASSBAND_HZ = [300, 500, 1000, 2000, 2500, 3000, 3200, 3400];

  it.each(ALL_PAIRS)('%i→%i keeps 300–3400 Hz flat within ±1 dB', (from, to) => {
    for (const f of PASSBAND_HZ) {
      const output = new Resampler(from, to).process(tone(from, f, HALF_SCALE, inputLength(from)));
      expect(Math.abs(outputLevelDb(output, to, f, HALF_SCALE)), `${f} Hz`).toBeLessThan(1);
    }
  });

  it.each([16000, 24000] as const)('8k→%i→8k round trip of a 1 kHz tone has at least 30 dB SNR', (high) => {
    const input = tone(NARROW, 1000, HALF_SCALE, 4000);
    const output = new Resampler(high, NARROW).process(new Resampler(NARROW, high).process(input));
    expect(output.length).toBe(input.length);
    expect(bestLagSnr(input, output, 100).snrDb).toBeGreaterThan(30);
  });

  it.each([16000, 24000] as const)(
    '8k→%i→8k delays speech-band audio by exactly the documented whole samples',
    (high) => {
      // Three tones with no short common period, so only the true delay lines them up.
      const input = new Int16Array(4000);
      for (let i = 0; i < input.length; i++)
        input[i] = Math.round(
          6000 * (Math.sin((2 * Math.PI * 1010 * i) / NARROW) + Math.sin((2 * Math.PI * 1370 * i) / NARROW)) +
            6000 * Math.sin((2 * Math.PI * 2230 * i) / NARROW),
        );
      const up = new Resampler(NARROW, high);
      const down = new Resampler(high, NARROW);
      const { snrDb, lag } = bestLagSnr(input, down.process(up.process(input)), 100);
      expect(snrDb).toBeGreaterThan(30);
      expect(lag).toBe(((up.delayMs + down.delayMs) * NARROW) / 1000);
    },
  );
});

describe('Resampler: streaming', () => {
  it.each(ALL_PAIRS)('%i→%i returns exactly the proportional count for every 20 ms frame', (from, to) => {
    const resampler = new Resampler(from, to);
    const frame = tone(from, 440, HALF_SCALE, from / 50);
    for (let k = 0; k < 10; k++) {
      expect(resampler.outputLength(frame.length)).toBe(to / 50);
      expect(resampler.process(frame).length).toBe(to / 50);
    }
  });

  it.each(ALL_PAIRS)('%i→%i in 20 ms frames or ragged chunks equals one big call', (from, to) => {
    const input = tone(from, 1234, HALF_SCALE, from / 2);
    const whole = new Resampler(from, to).process(input);
    expect(whole.length).toBe(to / 2);
    expect(inChunks(new Resampler(from, to), input, [from / 50])).toEqual(whole);
    expect(inChunks(new Resampler(from, to), input, [1, 7, 0, 2, 479, 3, 160, 11])).toEqual(whole);
  });

  it.each(ALL_PAIRS)(
    '%i→%i processInto writes the same samples as process and returns the count',
    (from, to) => {
      const input = tone(from, 700, HALF_SCALE, 1001);
      const expected = new Resampler(from, to).process(input);
      const resampler = new Resampler(from, to);
      const out = new Int16Array(expected.length + 5).fill(-7);
      expect(resampler.processInto(input, out)).toBe(expected.length);
      expect(out.subarray(0, expected.length)).toEqual(expected);
      expect(Array.from(out.subarray(expected.length))).toEqual([-7, -7, -7, -7, -7]);
    },
  );

  it('processInto rejects a too-short output with RangeError and keeps its state', () => {
    const input = tone(24000, 700, HALF_SCALE, 480);
    const resampler = new Resampler(24000, 8000);
    expect(() => resampler.processInto(input, new Int16Array(159))).toThrow(RangeError);
    expect(resampler.process(input)).toEqual(new Resampler(24000, 8000).process(input));
  });

  it.each(ALL_PAIRS)('%i→%i after reset() behaves like a new resampler', (from, to) => {
    const resampler = new Resampler(from, to);
    resampler.process(tone(from, 3000, HALF_SCALE, 1001)); // odd length: leaves a decimation phase
    resampler.reset();
    const input = tone(from, 900, HALF_SCALE, from / 10);
    expect(resampler.process(input)).toEqual(new Resampler(from, to).process(input));
  });
});

describe('Resampler: silence, DC and full scale', () => {
  it.each(ALL_PAIRS)('%i→%i turns silence into exact zeros', (from, to) => {
    const output = new Resampler(from, to).process(new Int16Array(from / 10));
    expect(output.length).toBe(to / 10);
    expect(output.every((s) => s === 0)).toBe(true);
  });

  it.each(ALL_PAIRS)('%i→%i passes DC unchanged, with no ripple, once the filter has filled', (from, to) => {
    for (const level of [12345, -32768, 32767]) {
      const output = new Resampler(from, to).process(new Int16Array(from / 10).fill(level));
      const settled = output.subarray((SETTLE_SAMPLES * to) / NARROW);
      expect(
        settled.every((s) => s === level),
        `DC ${level}`,
      ).toBe(true);
    }
  });

  it.each(ALL_PAIRS)(
    '%i→%i clamps the overshoot of a full-scale square wave instead of wrapping',
    (from, to) => {
      const halfPeriod = from / 500; // 250 Hz square wave
      const input = new Int16Array(from / 5);
      for (let i = 0; i < input.length; i++) input[i] = Math.floor(i / halfPeriod) % 2 === 0 ? 32767 : -32767;
      const output = new Resampler(from, to).process(input);
      const settled = output.subarray((SETTLE_SAMPLES * to) / NARROW);
      // The band-limited square rings ~9% past full scale: it must hit the rails...
      expect(Math.max(...settled)).toBe(32767);
      expect(Math.min(...settled)).toBe(-32768);
      // ...and cross zero only at its edges: a wrapped overshoot would flip sign mid-plateau.
      let crossings = 0;
      for (let i = 1; i < settled.length; i++) if (settled[i - 1]! < 0 !== settled[i]! < 0) crossings++;
      const expectedEdges = (settled.length / to) * 500;
      expect(Math.abs(crossings - expectedEdges)).toBeLessThanOrEqual(1);
    },
  );
});

describe('Resampler: construction', () => {
  it('supports 8k↔16k and 8k↔24k only', () => {
    for (const [from, to] of ALL_PAIRS) expect(isSupportedResample(from, to)).toBe(true);
    expect(isSupportedResample(16000, 24000)).toBe(false);
    expect(isSupportedResample(8000, 8000)).toBe(false);
    expect(() => new Resampler(16000, 24000)).toThrow(RangeError);
    expect(() => new Resampler(8000, 8000)).toThrow(RangeError);
  });
});
