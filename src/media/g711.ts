import alawmulaw from 'alawmulaw';
import type { G711Codec } from '../core/audio.js';

// Default import only: alawmulaw's named exports do not exist under Node ESM (sip-stack.md §5.1).
const { mulaw, alaw } = alawmulaw;

/** Byte that decodes to (near) zero: used for silence packets. */
export const SILENCE_BYTE: Readonly<Record<G711Codec, number>> = { PCMU: 0xff, PCMA: 0xd5 };

/** Static RTP payload types (RFC 3551). */
export const STATIC_PAYLOAD_TYPE: Readonly<Record<G711Codec, number>> = { PCMU: 0, PCMA: 8 };

interface Tables {
  decode: Int16Array; // 256 entries
  encode: Uint8Array; // 65536 entries, indexed by (sample + 32768)
}

function buildTables(codec: G711Codec): Tables {
  const impl = codec === 'PCMU' ? mulaw : alaw;
  const decode = new Int16Array(256);
  for (let i = 0; i < 256; i++) decode[i] = impl.decodeSample(i);
  const encode = new Uint8Array(65536);
  // encodeSample can return negative numbers for μ-law; mask to a byte.
  for (let s = -32768; s < 32768; s++) encode[s + 32768] = impl.encodeSample(s) & 0xff;
  return { decode, encode };
}

const tables: Partial<Record<G711Codec, Tables>> = {};
function tablesFor(codec: G711Codec): Tables {
  return (tables[codec] ??= buildTables(codec));
}

/** Decodes G.711 bytes into `out` (allocated if absent). Table lookup: no per-sample branching. */
export function decodeG711(codec: G711Codec, input: Uint8Array, out?: Int16Array): Int16Array {
  const { decode } = tablesFor(codec);
  const target = out ?? new Int16Array(input.length);
  for (let i = 0; i < input.length; i++) target[i] = decode[input[i]!]!;
  return target;
}

/** Encodes 16-bit linear samples into `out` (allocated if absent). */
export function encodeG711(codec: G711Codec, input: Int16Array, out?: Uint8Array): Uint8Array {
  const { encode } = tablesFor(codec);
  const target = out ?? new Uint8Array(input.length);
  for (let i = 0; i < input.length; i++) target[i] = encode[input[i]! + 32768]!;
  return target;
}
