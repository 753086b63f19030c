// The conversion stages between a call's G.711 (8 kHz) and a realtime provider's audio format.
// Pure converters: no I/O, no timers, no knowledge of SIP or AI beyond the format descriptor below.
import type { G711Codec } from '../core/audio.js';
import { decodeG711, encodeG711 } from './g711.js';
import { Resampler } from './resampler.js';

/**
 * A provider's audio format. Structurally identical to `AudioFormat` in src/ai/realtime.ts (media/
 * must not import ai/): `pcm16` is little-endian signed 16-bit mono.
 */
export type ProviderAudioFormat =
  { encoding: 'g711' } | { encoding: 'pcm16'; sampleRate: 8000 | 16000 | 24000 };

/** The telephone side is always 8 kHz. */
const CALL_RATE = 8000;
const BYTES_PER_SAMPLE = 2;

/** Writes `count` samples of `samples` into `bytes` as little-endian int16 (any host byte order). */
function writeLe16(samples: Int16Array, count: number, bytes: Uint8Array): void {
  for (let i = 0, b = 0; i < count; i++, b += 2) {
    const s = samples[i]!;
    bytes[b] = s & 0xff;
    bytes[b + 1] = (s >> 8) & 0xff;
  }
}

/**
 * Caller → provider: G.711 payload (one RTP frame) → the provider's input format.
 *
 * - `g711`: identity, the same Uint8Array is returned.
 * - `pcm16`: decode, resample 8 kHz → `sampleRate` (streaming: keep one converter per call direction),
 *   little-endian bytes (160 G.711 bytes → 320 / 640 / 960 bytes at 8 / 16 / 24 kHz).
 *
 * The returned bytes live in a buffer the converter reuses: they are valid until the next call only.
 * Copy them to keep them (providers already copy in sendAudio(), since RTP reuses its buffers too).
 * With a steady frame size nothing is allocated per frame.
 */
export function createCallerToProvider(
  codec: G711Codec,
  format: ProviderAudioFormat,
): (g711Payload: Uint8Array) => Uint8Array {
  if (format.encoding === 'g711') return (g711Payload) => g711Payload;
  const resampler = format.sampleRate === CALL_RATE ? null : new Resampler(CALL_RATE, format.sampleRate);
  let decoded = new Int16Array(0);
  let resampled = new Int16Array(0);
  let bytes = new Uint8Array(0);
  return (g711Payload) => {
    if (decoded.length !== g711Payload.length) decoded = new Int16Array(g711Payload.length);
    decodeG711(codec, g711Payload, decoded);
    let samples = decoded;
    if (resampler !== null) {
      const count = resampler.outputLength(decoded.length);
      if (resampled.length !== count) resampled = new Int16Array(count);
      resampler.processInto(decoded, resampled);
      samples = resampled;
    }
    if (bytes.length !== samples.length * BYTES_PER_SAMPLE)
      bytes = new Uint8Array(samples.length * BYTES_PER_SAMPLE);
    writeLe16(samples, samples.length, bytes);
    return bytes;
  };
}

/**
 * Provider → caller: the provider's output audio, in chunks of any size, → G.711 bytes at 8 kHz
 * (any length; the outbound pacer frames it).
 *
 * - `g711`: identity, the same Uint8Array is returned.
 * - `pcm16`: little-endian int16 parsed across chunk boundaries (an odd trailing byte is kept for the
 *   next chunk), resampled `sampleRate` → 8 kHz with state kept across chunks, then G.711-encoded.
 *   Splitting the stream differently never changes the output.
 *
 * Each call returns a new Uint8Array the caller owns: the pacer queues chunks by reference, so a
 * reused buffer would be overwritten while still queued. Scratch space for samples is reused.
 * `reset` (on the returned function) drops the carried byte and the resampler history, e.g. after
 * barge-in flushed the cancelled response.
 */
export function createProviderToCaller(
  codec: G711Codec,
  format: ProviderAudioFormat,
): ((providerAudio: Uint8Array) => Uint8Array) & { reset(): void } {
  if (format.encoding === 'g711')
    return Object.assign((providerAudio: Uint8Array) => providerAudio, { reset() {} });
  const resampler = format.sampleRate === CALL_RATE ? null : new Resampler(format.sampleRate, CALL_RATE);
  /** Low byte of a sample split across chunks, or -1. */
  let carry = -1;
  let parsed = new Int16Array(0);
  let resampled = new Int16Array(0);
  const convert = (providerAudio: Uint8Array): Uint8Array => {
    const available = providerAudio.length + (carry >= 0 ? 1 : 0);
    const count = available >> 1;
    if (parsed.length < count) parsed = new Int16Array(Math.max(count, parsed.length * 2));
    let b = 0;
    let i = 0;
    if (carry >= 0 && count > 0) {
      parsed[i++] = ((carry | (providerAudio[b++]! << 8)) << 16) >> 16;
      carry = -1;
    }
    for (; i < count; i++, b += 2)
      parsed[i] = ((providerAudio[b]! | (providerAudio[b + 1]! << 8)) << 16) >> 16;
    if (b < providerAudio.length) carry = providerAudio[b]!; // odd byte out: first half of the next sample
    const samples = parsed.subarray(0, count);
    if (resampler === null) return encodeG711(codec, samples);
    const outCount = resampler.outputLength(count);
    if (resampled.length < outCount) resampled = new Int16Array(Math.max(outCount, resampled.length * 2));
    resampler.processInto(samples, resampled);
    return encodeG711(codec, resampled.subarray(0, outCount));
  };
  return Object.assign(convert, {
    reset(): void {
      carry = -1;
      resampler?.reset();
    },
  });
}
