// Compare audio by correlation, not bytes: what the caller hears vs. a reference clip.
import alawmulaw from 'alawmulaw';

const { mulaw, alaw } = alawmulaw;

export function decodeG711(codec: 'PCMU' | 'PCMA', bytes: Uint8Array): Int16Array {
  return codec === 'PCMU' ? mulaw.decode(bytes) : alaw.decode(bytes);
}

export function rms(samples: ArrayLike<number>, from = 0, to = samples.length): number {
  let sum = 0;
  for (let i = from; i < to; i++) sum += samples[i]! * samples[i]!;
  return Math.sqrt(sum / Math.max(1, to - from));
}

function normalizedCorrelationAt(
  signal: ArrayLike<number>,
  reference: ArrayLike<number>,
  lag: number,
  length: number,
): number {
  let dot = 0;
  let es = 0;
  let er = 0;
  for (let i = 0; i < length; i++) {
    const s = signal[lag + i]!;
    const r = reference[i]!;
    dot += s * r;
    es += s * s;
    er += r * r;
  }
  return es === 0 || er === 0 ? 0 : dot / Math.sqrt(es * er);
}

export interface Match {
  /** Offset (samples) of the reference inside the signal. */
  lag: number;
  /** Normalized cross-correlation over the whole reference at that lag (1 = identical shape). */
  correlation: number;
}

/**
 * Finds where `reference` occurs in `signal`: coarse search with a 1 s probe from the reference's
 * loudest second, then the full-length correlation at the best lag. Bounded work: O(signal × 8000).
 */
export function findReference(
  signal: ArrayLike<number>,
  reference: ArrayLike<number>,
  sampleRate = 8000,
): Match {
  const probeLength = Math.min(sampleRate, reference.length);
  // Probe from the loudest window of the reference so silence does not dominate.
  let probeStart = 0;
  let best = -1;
  for (let start = 0; start + probeLength <= reference.length; start += probeLength / 4) {
    const level = rms(reference, start, start + probeLength);
    if (level > best) {
      best = level;
      probeStart = start;
    }
  }
  const probe = Array.prototype.slice.call(reference, probeStart, probeStart + probeLength) as number[];
  let bestLag = 0;
  let bestScore = -Infinity;
  for (let lag = 0; lag + probeLength <= signal.length; lag++) {
    const score = normalizedCorrelationAt(signal, probe, lag, probeLength);
    if (score > bestScore) {
      bestScore = score;
      bestLag = lag;
    }
  }
  const lag = bestLag - probeStart;
  if (lag < 0 || lag + reference.length > signal.length) return { lag, correlation: bestScore };
  return { lag, correlation: normalizedCorrelationAt(signal, reference, lag, reference.length) };
}

/** Reference segment of alignSegments(): 250 ms at 8 kHz. */
const SEGMENT_SAMPLES = 2000;
/** Largest shift between neighbouring loud segments: three 20 ms frames inserted or dropped. */
const MAX_SEGMENT_SHIFT = 3 * 160;
/** A segment this loud (RMS) is speech; quieter ones keep the previous lag. */
const DEFAULT_LOUD_RMS = 200;

export interface Aligned {
  /** Σ dot / √(Σ signal² · Σ reference²) over all segments, each at its best lag. */
  correlation: number;
  /** Lag of the segment holding reference sample `i`. */
  lagAt(i: number): number;
  /** Each speech segment's lag minus the global lag, in samples (multiples of 160 = whole frames). */
  shifts: number[];
}

/**
 * Like findReference's full-length correlation, but tolerant of whole frames inserted or dropped (an
 * adaptive jitter buffer growing or shrinking its delay mid-speech shifts everything after that point,
 * which ruins a single-lag correlation although every frame is there). Correlates `reference` with
 * `signal` segment by segment, starting at `lag` (e.g. findReference's) and letting each loud segment
 * move up to three frames from the previous loud one (quiet segments keep the lag: their best shift is
 * noise). Bounded work: segments × 961 × SEGMENT_SAMPLES.
 */
export function alignSegments(
  signal: ArrayLike<number>,
  reference: ArrayLike<number>,
  lag: number,
  options: { loudRms?: number } = {},
): Aligned {
  const loudRms = options.loudRms ?? DEFAULT_LOUD_RMS;
  let dot = 0;
  let es = 0;
  let er = 0;
  let current = lag;
  const lags: number[] = [];
  const shifts: number[] = [];
  for (let start = 0; start < reference.length; start += SEGMENT_SAMPLES) {
    const length = Math.min(SEGMENT_SAMPLES, reference.length - start);
    const loud = rms(reference, start, start + length) > loudRms;
    let best = { lag: current, dot: 0, es: 0, score: -Infinity };
    for (let d = loud ? -MAX_SEGMENT_SHIFT : 0; d <= (loud ? MAX_SEGMENT_SHIFT : 0); d++) {
      const at = current + d + start;
      if (at < 0 || at + length > signal.length) continue;
      let sd = 0;
      let ss = 0;
      for (let i = 0; i < length; i++) {
        const x = signal[at + i]!;
        sd += x * reference[start + i]!;
        ss += x * x;
      }
      const score = ss === 0 ? 0 : sd / Math.sqrt(ss);
      if (score > best.score) best = { lag: current + d, dot: sd, es: ss, score };
    }
    current = best.lag;
    lags.push(current);
    if (loud) shifts.push(current - lag);
    dot += best.dot;
    es += best.es;
    for (let i = start; i < start + length; i++) er += reference[i]! * reference[i]!;
  }
  return {
    correlation: es === 0 || er === 0 ? 0 : dot / Math.sqrt(es * er),
    lagAt: (i) => lags[Math.min(lags.length - 1, Math.floor(i / SEGMENT_SAMPLES))]!,
    shifts,
  };
}
