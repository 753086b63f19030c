/** G.711 at 8 kHz, 20 ms packets: the telephone side of every call. */
export type G711Codec = 'PCMU' | 'PCMA';

export const G711_SAMPLE_RATE = 8000;
export const FRAME_MS = 20;
/** Samples (= G.711 bytes) in one 20 ms frame at 8 kHz. */
export const SAMPLES_PER_FRAME = (G711_SAMPLE_RATE * FRAME_MS) / 1000;

/** Milliseconds of G.711 audio in `bytes` (one byte per sample at 8 kHz). */
export function g711Ms(bytes: number): number {
  return bytes / (G711_SAMPLE_RATE / 1000);
}
