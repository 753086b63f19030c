// G.711 Appendix I packet loss concealment: what a lost frame sounds like (continuation of the voice,
// not silence), how a long loss fades out, and that the joins do not click.
import { describe, expect, it } from 'vitest';
import { PacketLossConcealer } from '../../../src/media/plc.js';

const SAMPLE_RATE = 8_000;
const FRAME = 160;
const SUBFRAME = 80;
const AMPLITUDE = 8_000;

/** A voiced-speech-like tone: fundamental `f0` with three decaying harmonics. */
function voiced(f0: number, samples: number): Int16Array {
  const out = new Int16Array(samples);
  const weights = [1, 0.5, 0.3, 0.2];
  const norm = weights.reduce((a, b) => a + b, 0);
  for (let n = 0; n < samples; n++) {
    let v = 0;
    weights.forEach((w, h) => {
      v += w * Math.sin((2 * Math.PI * f0 * (h + 1) * n) / SAMPLE_RATE + h);
    });
    out[n] = Math.round((AMPLITUDE * v) / norm);
  }
  return out;
}

const frameOf = (signal: Int16Array, index: number): Int16Array =>
  signal.slice(index * FRAME, (index + 1) * FRAME);

function rms(x: ArrayLike<number>, from = 0, to = x.length): number {
  let sum = 0;
  for (let i = from; i < to; i++) sum += x[i]! * x[i]!;
  return Math.sqrt(sum / Math.max(1, to - from));
}

function correlation(a: ArrayLike<number>, b: ArrayLike<number>, length: number): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  return aa === 0 || bb === 0 ? 0 : ab / Math.sqrt(aa * bb);
}

function maxStep(x: ArrayLike<number>): number {
  let max = 0;
  for (let i = 1; i < x.length; i++) max = Math.max(max, Math.abs(x[i]! - x[i - 1]!));
  return max;
}

/** Feeds `frames` good frames of `signal` and returns the concealer plus the output so far. */
function primed(signal: Int16Array, frames: number): { plc: PacketLossConcealer; out: number[] } {
  const plc = new PacketLossConcealer();
  const out: number[] = [];
  for (let i = 0; i < frames; i++) out.push(...plc.good(frameOf(signal, i)));
  return { plc, out };
}

describe('PacketLossConcealer', () => {
  it.each([200, 145, 110])(
    'continues a %s Hz voiced tone through one lost frame (correlation ≥ 0.8 over the first 10 ms)',
    (f0) => {
      const signal = voiced(f0, 20 * FRAME);
      const { plc } = primed(signal, 10);
      const concealed = plc.conceal();
      const truth = frameOf(signal, 10);
      expect(correlation(concealed, truth, SUBFRAME)).toBeGreaterThanOrEqual(0.8);
    },
  );

  it('does not answer a single lost frame with silence', () => {
    const signal = voiced(200, 20 * FRAME);
    const { plc } = primed(signal, 10);
    const concealed = plc.conceal();
    expect(rms(concealed)).toBeGreaterThan(0.7 * rms(frameOf(signal, 10)));
  });

  it.each([200, 160])(
    '%s Hz: keeps full level for 10 ms, fades by a fifth per 10 ms, and is silent after 60 ms of loss',
    (f0) => {
      const signal = voiced(f0, 20 * FRAME);
      const { plc } = primed(signal, 10);
      const lost: number[] = [];
      for (let i = 0; i < 5; i++) lost.push(...plc.conceal()); // 100 ms
      const reference = rms(signal);
      const level = Array.from(
        { length: lost.length / SUBFRAME },
        (_, k) => rms(lost, k * SUBFRAME, (k + 1) * SUBFRAME) / reference,
      );
      // Mean gain per 10 ms block: 1, then linear ramps 1→0.8, 0.8→0.6, …, 0.2→0, then silence.
      const envelope = [1, 0.9, 0.7, 0.5, 0.3, 0.1, 0, 0, 0, 0];
      level.forEach((l, k) =>
        expect(Math.abs(l - envelope[k]!), `10 ms block ${k}: ${l}`).toBeLessThan(0.15),
      );
      for (let k = 6; k < level.length; k++) expect(level[k], `10 ms block ${k}`).toBe(0);
    },
  );

  it.each([200, 145])('does not click where the loss starts or where a %s Hz voice resumes', (f0) => {
    const signal = voiced(f0, 20 * FRAME);
    const { plc, out } = primed(signal, 10);
    const concealed = Array.from(plc.conceal());
    const resumed = Array.from(plc.good(frameOf(signal, 11)));
    const joined = [...out.slice(-FRAME), ...concealed, ...resumed];
    expect(maxStep(joined)).toBeLessThanOrEqual(1.3 * maxStep(signal));
  });

  it.each([6, 7, 9, 10])(
    'does not click at the loss start or at the period repeats of an aperiodic sound (loss after %s frames)',
    (frames) => {
      // Inharmonic partials: the last "pitch period" does not line up with the last played sample.
      const sound = Int16Array.from({ length: 20 * FRAME }, (_, n) =>
        Math.round(
          3_000 *
            (Math.sin((2 * Math.PI * 137 * n) / SAMPLE_RATE) +
              Math.sin((2 * Math.PI * 231 * n) / SAMPLE_RATE + 1) +
              0.7 * Math.sin((2 * Math.PI * 389 * n) / SAMPLE_RATE + 2)),
        ),
      );
      const { plc, out } = primed(sound, frames);
      const first = Array.from(plc.conceal());
      const second = Array.from(plc.conceal());
      expect(maxStep([...out.slice(-20), ...first, ...second])).toBeLessThanOrEqual(1.1 * maxStep(sound));
    },
  );

  it.each([
    [145, 0.33],
    [110, 0.5],
  ])('cross-fades into a %s Hz voice that resumes %s of a period away from the prediction', (f0, shift) => {
    const signal = voiced(f0, 20 * FRAME);
    const { plc } = primed(signal, 10);
    const concealed = Array.from(plc.conceal());
    const offset = Math.round((shift * SAMPLE_RATE) / f0);
    const resumed = () => voiced(f0, 12 * FRAME + offset).subarray(11 * FRAME + offset);
    const bound = 1.3 * maxStep(signal);
    // Spliced raw, this join clicks…
    expect(maxStep([...concealed, ...resumed()])).toBeGreaterThan(2 * bound);
    // …merged, it does not.
    expect(maxStep([...concealed, ...plc.good(Int16Array.from(resumed()))])).toBeLessThanOrEqual(bound);
  });

  it('fades the voice back in after a loss long enough to have gone silent', () => {
    const signal = voiced(145, 20 * FRAME);
    const { plc } = primed(signal, 5);
    for (let i = 0; i < 5; i++) plc.conceal();
    const resumed = plc.good(frameOf(signal, 10));
    expect(Math.abs(resumed[0]!)).toBeLessThanOrEqual(0.05 * AMPLITUDE);
    expect(maxStep(resumed)).toBeLessThanOrEqual(1.3 * maxStep(signal));
    expect(Array.from(resumed.subarray(SUBFRAME))).toEqual(
      Array.from(frameOf(signal, 10).subarray(SUBFRAME)),
    );
  });

  it('passes good frames through untouched when nothing was lost, in place', () => {
    const signal = voiced(200, 4 * FRAME);
    const plc = new PacketLossConcealer();
    for (let i = 0; i < 4; i++) {
      const frame = frameOf(signal, i);
      expect(plc.good(frame)).toBe(frame);
      expect(Array.from(frame)).toEqual(Array.from(frameOf(signal, i)));
    }
  });

  it('reuses one output buffer for concealment and conceals silence after reset()', () => {
    const signal = voiced(200, 10 * FRAME);
    const { plc } = primed(signal, 10);
    const first = plc.conceal();
    expect(plc.conceal()).toBe(first);
    plc.reset();
    expect(plc.concealing).toBe(false);
    expect(rms(plc.conceal())).toBe(0);
  });

  it('rejects frames that are not 160 samples', () => {
    expect(() => new PacketLossConcealer().good(new Int16Array(80))).toThrow(RangeError);
  });
});
