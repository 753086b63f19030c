/**
 * Doubao TTS output to 16-bit PCM. With `tts.audio_config.format = "pcm"` the server sends 24 kHz
 * float32 little-endian samples (the official Go demo plays them as float32); with "pcm_s16le" it sends
 * int16 little-endian. The session contract promises pcm16, so float32 is converted here: clamp to
 * [-1, 1], scale by 32767, round. Pure apart from the carry of a partial sample between chunks (the
 * audio frames need not end on a sample boundary).
 */

export type PcmInputFormat = 'pcm_s16le' | 'pcm';

const FLOAT32_BYTES = 4;
const INT16_BYTES = 2;
const INT16_MAX = 32767;

/** Converts one float32 LE buffer (a whole number of samples) to int16 LE bytes. */
export function float32ToInt16(bytes: Uint8Array): Buffer {
  const samples = Math.floor(bytes.byteLength / FLOAT32_BYTES);
  const view = new DataView(bytes.buffer, bytes.byteOffset, samples * FLOAT32_BYTES);
  const out = Buffer.allocUnsafe(samples * INT16_BYTES);
  for (let i = 0; i < samples; i++) {
    const f = view.getFloat32(i * FLOAT32_BYTES, true);
    const clamped = Number.isNaN(f) ? 0 : f > 1 ? 1 : f < -1 ? -1 : f;
    out.writeInt16LE(Math.round(clamped * INT16_MAX), i * INT16_BYTES);
  }
  return out;
}

/** Turns a stream of arbitrary-length chunks into whole int16 samples. One per assistant reply. */
export class PcmNormalizer {
  readonly #format: PcmInputFormat;
  readonly #sampleBytes: number;
  #carry: Buffer = Buffer.alloc(0);

  constructor(format: PcmInputFormat) {
    this.#format = format;
    this.#sampleBytes = format === 'pcm' ? FLOAT32_BYTES : INT16_BYTES;
  }

  /** Whole int16 samples of `chunk` (plus any carried bytes); the rest waits for the next chunk. */
  push(chunk: Uint8Array): Buffer {
    let input = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (this.#carry.length > 0) input = Buffer.concat([this.#carry, input]);
    const whole = input.length - (input.length % this.#sampleBytes);
    this.#carry = whole === input.length ? Buffer.alloc(0) : Buffer.from(input.subarray(whole));
    const body = input.subarray(0, whole);
    return this.#format === 'pcm' ? float32ToInt16(body) : body;
  }

  /** Drops a partial sample (a new reply starts on a sample boundary). */
  reset(): void {
    this.#carry = Buffer.alloc(0);
  }
}
