// Streaming polyphase FIR resamplers for the integer ratios between the call's 8 kHz G.711 audio and a
// provider's 16/24 kHz PCM: ×2, ×3, ÷2, ÷3. One Kaiser-windowed sinc lowpass per ratio, designed once
// and cached at module level; each Resampler keeps only its history and decimation phase, so 20 ms
// frames in give exactly the proportional count out (160 → 320, 480 → 160) with no buffering jitter.
// Why not sample dropping or linear interpolation: TTS energy between 4 and 12 kHz would fold straight
// back into the telephone band (sip-stack.md §5.2).

/** Rates voxgate converts between. */
export type ResampleRate = 8000 | 16000 | 24000;

/** The 8 kHz (telephone) side of every supported pair. */
const NARROW_RATE = 8000;

/**
 * Filter half-length in 8 kHz samples: the prototype has 2·factor·D + 1 taps (65 at 16 kHz, 97 at
 * 24 kHz), so its group delay is exactly D samples at 8 kHz (2 ms) and an 8k→16k→8k or 8k→24k→8k round
 * trip is delayed by a whole number of samples. 16 keeps the passband within 0.3 dB up to 3.4 kHz and
 * the cost under ~20 µs per 20 ms frame (bench/resampler.bench.ts).
 */
const HALF_LENGTH_NARROW_SAMPLES = 16;
/** −6 dB point of the lowpass: telephone band edge 3.4 kHz stays flat, aliasing images start above 4.2 kHz. */
const CUTOFF_HZ = 3800;
/** Kaiser β: ≈ 80 dB stopband from 4.6 kHz up (everything that would alias into 0–3.4 kHz). */
const KAISER_BETA = 8;

interface Filter {
  /** Coefficients per output phase, each reversed so a dot product runs oldest → newest sample. */
  readonly coefficients: Float64Array;
  /** Taps per phase = input samples of history each output reads. */
  readonly tapsPerPhase: number;
}

/** Zeroth-order modified Bessel function of the first kind (power series; converges fast for x ≤ 20). */
function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  const quarterSquare = (x * x) / 4;
  for (let k = 1; k < 100; k++) {
    term *= quarterSquare / (k * k);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

/** Kaiser-windowed sinc lowpass with `taps` (odd) coefficients at `sampleRate`, DC gain 1. */
function designLowpass(sampleRate: number, taps: number): Float64Array {
  const h = new Float64Array(taps);
  const centre = (taps - 1) / 2;
  const normalisedCutoff = (2 * CUTOFF_HZ) / sampleRate;
  const windowScale = besselI0(KAISER_BETA);
  let sum = 0;
  for (let n = 0; n < taps; n++) {
    const x = n - centre;
    const sinc = x === 0 ? normalisedCutoff : Math.sin(Math.PI * normalisedCutoff * x) / (Math.PI * x);
    const r = x / centre;
    const window = besselI0(KAISER_BETA * Math.sqrt(Math.max(0, 1 - r * r))) / windowScale;
    h[n] = sinc * window;
    sum += h[n]!;
  }
  for (let n = 0; n < taps; n++) h[n]! /= sum;
  return h;
}

/** ÷factor: one phase holding the whole prototype (symmetric, so already "reversed"). */
function designDecimator(factor: number): Filter {
  const taps = 2 * factor * HALF_LENGTH_NARROW_SAMPLES + 1;
  return { coefficients: designLowpass(NARROW_RATE * factor, taps), tapsPerPhase: taps };
}

/**
 * ×factor: the prototype split into `factor` phases of `tapsPerPhase` taps (zero-padded at the end).
 * Each phase is normalised to sum 1 so DC in gives DC out with no ripple at the 8 kHz rate.
 */
function designInterpolator(factor: number): Filter {
  const prototype = designLowpass(NARROW_RATE * factor, 2 * factor * HALF_LENGTH_NARROW_SAMPLES + 1);
  const tapsPerPhase = Math.ceil(prototype.length / factor);
  const coefficients = new Float64Array(factor * tapsPerPhase);
  for (let phase = 0; phase < factor; phase++) {
    let sum = 0;
    for (let j = 0; j < tapsPerPhase; j++) sum += prototype[j * factor + phase] ?? 0;
    // Output phase p at input m is Σ_j h[j·factor + p]·x[m − j]; stored reversed (index K−1−j).
    for (let j = 0; j < tapsPerPhase; j++)
      coefficients[phase * tapsPerPhase + (tapsPerPhase - 1 - j)] =
        (prototype[j * factor + phase] ?? 0) / sum;
  }
  return { coefficients, tapsPerPhase };
}

const filterCache = new Map<string, Filter>();
function filterFor(kind: 'up' | 'down', factor: number): Filter {
  const key = `${kind}${factor}`;
  let filter = filterCache.get(key);
  if (filter === undefined) {
    filter = kind === 'up' ? designInterpolator(factor) : designDecimator(factor);
    filterCache.set(key, filter);
  }
  return filter;
}

/** True for the pairs Resampler supports: 8000 ↔ 16000 and 8000 ↔ 24000. */
export function isSupportedResample(fromRate: number, toRate: number): boolean {
  return (
    (fromRate === NARROW_RATE && (toRate === 16000 || toRate === 24000)) ||
    (toRate === NARROW_RATE && (fromRate === 16000 || fromRate === 24000))
  );
}

/** Rounds and clamps a filter output to int16 (a full-scale square wave overshoots by ~9%). */
function toInt16(value: number): number {
  if (value >= 32767) return 32767;
  if (value <= -32768) return -32768;
  return Math.round(value);
}

/**
 * A streaming resampler for one direction of one call. State (history, decimation phase) carries over
 * between calls, so splitting the input anywhere gives the same output as one big call. Output is
 * delayed by `delayMs` (the filter's group delay), never buffered: every call returns everything
 * the input it was given produced.
 */
export class Resampler {
  readonly fromRate: ResampleRate;
  readonly toRate: ResampleRate;
  /** Group delay of the filter: output sample k corresponds to input at time k/toRate − delayMs. */
  readonly delayMs: number;
  /** ×factor (`up`) or ÷factor (`down`). */
  readonly #up: boolean;
  readonly #factor: number;
  readonly #coefficients: Float64Array;
  readonly #taps: number;
  /** Last `#taps` input samples, stored twice (at i and i + taps) so every window is contiguous. */
  readonly #history: Float64Array;
  /** Index of the newest sample in the first half of #history. */
  #newest = 0;
  /** ÷factor only: input samples until the next output is due (0 = the next input produces one). */
  #phase = 0;

  constructor(fromRate: ResampleRate, toRate: ResampleRate) {
    if (!isSupportedResample(fromRate, toRate))
      throw new RangeError(`unsupported resample ${fromRate} Hz → ${toRate} Hz`);
    this.fromRate = fromRate;
    this.toRate = toRate;
    this.#up = toRate > fromRate;
    this.#factor = this.#up ? toRate / fromRate : fromRate / toRate;
    const filter = filterFor(this.#up ? 'up' : 'down', this.#factor);
    this.#coefficients = filter.coefficients;
    this.#taps = filter.tapsPerPhase;
    this.#history = new Float64Array(2 * this.#taps);
    this.#newest = this.#taps - 1;
    this.delayMs = (HALF_LENGTH_NARROW_SAMPLES * 1000) / NARROW_RATE;
  }

  /** Samples the next process()/processInto() of `inputLength` samples will produce. */
  outputLength(inputLength: number): number {
    if (this.#up) return inputLength * this.#factor;
    const first = this.#phase; // input index of the first output in this call
    return first >= inputLength ? 0 : Math.floor((inputLength - 1 - first) / this.#factor) + 1;
  }

  /** Resamples `input` into a new array (see processInto() for the allocation-free form). */
  process(input: Int16Array): Int16Array {
    const out = new Int16Array(this.outputLength(input.length));
    this.processInto(input, out);
    return out;
  }

  /**
   * Resamples `input` into the start of `out`; returns the number of samples written
   * (= outputLength(input.length)). Throws RangeError, before touching any state, if `out` is too short.
   */
  processInto(input: Int16Array, out: Int16Array): number {
    const needed = this.outputLength(input.length);
    if (out.length < needed) throw new RangeError(`output holds ${out.length} samples, ${needed} needed`);
    const history = this.#history;
    const coefficients = this.#coefficients;
    const taps = this.#taps;
    const factor = this.#factor;
    let newest = this.#newest;
    let written = 0;
    if (this.#up) {
      for (let i = 0; i < input.length; i++) {
        newest = newest + 1 === taps ? 0 : newest + 1;
        const sample = input[i]!;
        history[newest] = sample;
        history[newest + taps] = sample;
        const start = newest + 1; // oldest of the window history[start .. start + taps)
        for (let phase = 0, base = 0; phase < factor; phase++, base += taps) {
          let acc = 0;
          for (let j = 0; j < taps; j++) acc += coefficients[base + j]! * history[start + j]!;
          out[written++] = toInt16(acc);
        }
      }
    } else {
      let phase = this.#phase;
      for (let i = 0; i < input.length; i++) {
        newest = newest + 1 === taps ? 0 : newest + 1;
        const sample = input[i]!;
        history[newest] = sample;
        history[newest + taps] = sample;
        if (phase === 0) {
          const start = newest + 1;
          let acc = 0;
          for (let j = 0; j < taps; j++) acc += coefficients[j]! * history[start + j]!;
          out[written++] = toInt16(acc);
          phase = factor;
        }
        phase--;
      }
      this.#phase = phase;
    }
    this.#newest = newest;
    return written;
  }

  /** Forgets all history (e.g. after barge-in flushed the stream), as if newly constructed. */
  reset(): void {
    this.#history.fill(0);
    this.#newest = this.#taps - 1;
    this.#phase = 0;
  }
}
