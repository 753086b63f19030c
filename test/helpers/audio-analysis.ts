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
