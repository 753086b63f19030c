import type { G711Codec } from '../core/audio.js';
import { G711_SAMPLE_RATE } from '../core/audio.js';
import { encodeG711 } from './g711.js';

/**
 * North American ringback (ITU-T E.180 / ANSI T1.401): 440 + 480 Hz, 2 s on, 4 s off, each tone at
 * about −19 dBm0. Callers everywhere recognise it as "the other end is ringing".
 */
const RINGBACK_FREQS_HZ = [440, 480] as const;
const RINGBACK_ON_MS = 2000;
const RINGBACK_OFF_MS = 4000;
/** −19 dBm0 per tone relative to G.711 full scale (+3.17 dBm0) ≈ 0.078 of full scale. */
const RINGBACK_AMPLITUDE = 0.078 * 32767;

const cache = new Map<G711Codec, Uint8Array>();

/** One full ringback cadence (6 s) in `codec`, computed once per codec and shared by all calls. */
export function ringbackCadence(codec: G711Codec): Uint8Array {
  let encoded = cache.get(codec);
  if (encoded) return encoded;
  const onSamples = (RINGBACK_ON_MS / 1000) * G711_SAMPLE_RATE;
  const total = ((RINGBACK_ON_MS + RINGBACK_OFF_MS) / 1000) * G711_SAMPLE_RATE;
  const pcm = new Int16Array(total);
  for (let n = 0; n < onSamples; n++) {
    let sample = 0;
    for (const f of RINGBACK_FREQS_HZ) sample += Math.sin((2 * Math.PI * f * n) / G711_SAMPLE_RATE);
    pcm[n] = Math.round(sample * RINGBACK_AMPLITUDE);
  }
  encoded = encodeG711(codec, pcm);
  cache.set(codec, encoded);
  return encoded;
}
