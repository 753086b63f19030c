import { gunzipSync, gzipSync } from 'node:zlib';

/**
 * The binary frame of Doubao's realtime dialogue API (Volcengine openspeech v3). Pure: bytes in, values
 * out; no I/O and no state.
 *
 * Sources for the byte layout:
 * - Volcengine doc 6561/1594356 ("端到端实时语音大模型API接入文档") §2.2 "WebSocket二进制协议": the 4-byte
 *   header, the order of the optional fields (error code, sequence, event, connect id, session id), then
 *   payload size and payload; all integers big-endian. Its §2.3 notes carry the byte examples that
 *   test/unit/ai/doubao.frames.test.ts checks (StartConnection, StartSession, TTSResponse).
 * - The official realtime_dialog demos: Python `protocol.py` (generate_header / parse_response: error
 *   frames are code, then payload size) and Go `protocol.go` (readers: sequence or error code first,
 *   then event, then session id for every event except the connection events 1/2/50/51/52, then the
 *   connect id for 50/51/52). Mirrored e.g. in GizClaw/doubao-speech-go docs/端到端实时语音.md.
 *
 * ```
 * byte 0  protocol version (0b0001) << 4 | header size in 4-byte words (0b0001)      -> 0x11
 * byte 1  message type << 4 | message-type-specific flags (0b0100 = event number present)
 * byte 2  serialization (0 raw, 1 JSON) << 4 | compression (0 none, 1 gzip)
 * byte 3  reserved, 0
 * [error code u32]  [sequence i32]  [event u32]  [connect id: u32 size + bytes]  [session id: u32 size + bytes]
 * payload size u32, payload
 * ```
 */

export const PROTOCOL_VERSION = 0b0001;
/** Header size in 4-byte words; only 1 is defined. Larger values mean extension words, which we skip. */
export const HEADER_WORDS = 0b0001;

export const MessageType = {
  /** Client JSON event. */
  FullClientRequest: 0b0001,
  /** Client audio (TaskRequest). */
  AudioOnlyRequest: 0b0010,
  /** Server JSON event. */
  FullServerResponse: 0b1001,
  /** Server audio (TTSResponse). */
  AudioOnlyResponse: 0b1011,
  Error: 0b1111,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

export const Serialization = { Raw: 0b0000, Json: 0b0001 } as const;
export type Serialization = (typeof Serialization)[keyof typeof Serialization];

export const Compression = { None: 0b0000, Gzip: 0b0001 } as const;
export type Compression = (typeof Compression)[keyof typeof Compression];

/** Message-type-specific flag bits. The sequence bits are a 2-bit field; the event bit stands alone. */
export const Flags = {
  /** Sequence > 0, not the last packet: a sequence field follows. */
  PositiveSequence: 0b0001,
  /** Last packet, no sequence field. */
  LastNoSequence: 0b0010,
  /** Last packet with a negative sequence: a sequence field follows. */
  NegativeSequence: 0b0011,
  /** An event number follows. The dialogue API sets it on every frame. */
  WithEvent: 0b0100,
} as const;

const SEQUENCE_BITS = 0b0011;

/** Events whose frames carry no id at all (client StartConnection / FinishConnection). */
const NO_ID_EVENTS: ReadonlySet<number> = new Set([1, 2]);
/** Server connection events carry the connect id instead of a session id. */
const CONNECT_ID_EVENTS: ReadonlySet<number> = new Set([50, 51, 52]);

/** Which id, if any, follows the event number of `event`. */
export function idKind(event: number): 'none' | 'connect' | 'session' {
  if (NO_ID_EVENTS.has(event)) return 'none';
  return CONNECT_ID_EVENTS.has(event) ? 'connect' : 'session';
}

const KNOWN_TYPES: ReadonlySet<number> = new Set(Object.values(MessageType));

export interface Frame {
  type: MessageType;
  serialization: Serialization;
  /** On the wire. `payload` is always the uncompressed bytes. */
  compression: Compression;
  /** Error frames only. */
  errorCode?: number;
  /** Signed; rarely used by the dialogue API. */
  sequence?: number;
  event?: number;
  /** Session-level events. */
  sessionId?: string;
  /** Server connection events 50/51/52. */
  connectId?: string;
  payload: Uint8Array;
}

export interface DecodedFrame extends Frame {
  /** The raw flag nibble as received. */
  flags: number;
}

export type DecodeResult = { ok: true; frame: DecodedFrame } | { ok: false; problem: string };

const U32_MAX = 0xffff_ffff;

/**
 * Encodes one frame. Flags follow from the fields: `event` sets 0b0100, `sequence` sets 0b0001 (> 0) or
 * 0b0011 (< 0). Gzip compresses the payload when `compression` says so. Throws TypeError/RangeError on
 * input that cannot be encoded (a session event without a session id, an out-of-range integer).
 */
export function encodeFrame(frame: Frame): Buffer {
  if (!KNOWN_TYPES.has(frame.type)) throw new RangeError(`unknown message type ${String(frame.type)}`);
  let flags = 0;
  if (frame.sequence !== undefined) {
    if (!Number.isInteger(frame.sequence) || frame.sequence === 0 || Math.abs(frame.sequence) > 2 ** 31)
      throw new RangeError(`sequence must be a non-zero int32, got ${frame.sequence}`);
    flags |= frame.sequence > 0 ? Flags.PositiveSequence : Flags.NegativeSequence;
  }
  let id: Buffer | undefined;
  if (frame.event !== undefined) {
    checkU32(frame.event, 'event');
    flags |= Flags.WithEvent;
    const kind = idKind(frame.event);
    if (kind === 'session') {
      if (frame.sessionId === undefined)
        throw new TypeError(`event ${frame.event} is session-level and needs a session id`);
      id = Buffer.from(frame.sessionId, 'utf8');
    } else if (kind === 'connect') {
      id = Buffer.from(frame.connectId ?? '', 'utf8');
    }
  }
  const isError = frame.type === MessageType.Error;
  if (isError) checkU32(frame.errorCode ?? Number.NaN, 'error code');
  const payload =
    frame.compression === Compression.Gzip
      ? gzipSync(frame.payload)
      : Buffer.from(frame.payload.buffer, frame.payload.byteOffset, frame.payload.byteLength);

  const size =
    4 +
    (isError ? 4 : 0) +
    (frame.sequence !== undefined ? 4 : 0) +
    (frame.event !== undefined ? 4 : 0) +
    (id !== undefined ? 4 + id.length : 0) +
    4 +
    payload.length;
  const out = Buffer.allocUnsafe(size);
  out[0] = (PROTOCOL_VERSION << 4) | HEADER_WORDS;
  out[1] = (frame.type << 4) | flags;
  out[2] = (frame.serialization << 4) | frame.compression;
  out[3] = 0;
  let at = 4;
  if (isError) at = out.writeUInt32BE(frame.errorCode!, at);
  if (frame.sequence !== undefined) at = out.writeInt32BE(frame.sequence, at);
  if (frame.event !== undefined) at = out.writeUInt32BE(frame.event, at);
  if (id !== undefined) {
    at = out.writeUInt32BE(id.length, at);
    at += id.copy(out, at);
  }
  at = out.writeUInt32BE(payload.length, at);
  payload.copy(out, at);
  return out;
}

function checkU32(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > U32_MAX)
    throw new RangeError(`${what} must be a uint32, got ${value}`);
}

/** Options for decodeFrame. */
export interface DecodeOptions {
  /** Largest payload accepted after gunzip (a gzip bomb must not exhaust memory). */
  maxPayloadBytes?: number;
}

const DEFAULT_MAX_PAYLOAD_BYTES = 16 * 1024 * 1024;

/**
 * Decodes one frame. Never throws: malformed input gives `{ ok: false, problem }`. Gzip payloads are
 * inflated; `compression` still reports what was on the wire.
 */
export function decodeFrame(bytes: Uint8Array, options: DecodeOptions = {}): DecodeResult {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 4) return bad(`frame of ${buf.length} bytes is shorter than the 4-byte header`);
  const version = buf[0]! >> 4;
  const headerBytes = (buf[0]! & 0x0f) * 4;
  if (version !== PROTOCOL_VERSION) return bad(`protocol version ${version} is not 1`);
  if (headerBytes < 4) return bad('header size 0');
  if (buf.length < headerBytes) return bad('frame shorter than its header');
  const type = buf[1]! >> 4;
  const flags = buf[1]! & 0x0f;
  const serialization = buf[2]! >> 4;
  const compression = buf[2]! & 0x0f;
  if (!KNOWN_TYPES.has(type)) return bad(`unknown message type 0b${type.toString(2).padStart(4, '0')}`);
  if (serialization !== Serialization.Raw && serialization !== Serialization.Json)
    return bad(`unknown serialization ${serialization}`);
  if (compression !== Compression.None && compression !== Compression.Gzip)
    return bad(`unknown compression ${compression}`);

  let at = headerBytes;
  const need = (n: number, what: string): string | undefined =>
    buf.length < at + n ? `truncated ${what} at byte ${at}` : undefined;
  const frame: DecodedFrame = {
    type: type as MessageType,
    flags,
    serialization,
    compression,
    payload: new Uint8Array(0),
  };
  let problem: string | undefined;
  if (type === MessageType.Error) {
    if ((problem = need(4, 'error code'))) return bad(problem);
    frame.errorCode = buf.readUInt32BE(at);
    at += 4;
  }
  const sequenceBits = flags & SEQUENCE_BITS;
  if (sequenceBits === Flags.PositiveSequence || sequenceBits === Flags.NegativeSequence) {
    if ((problem = need(4, 'sequence'))) return bad(problem);
    frame.sequence = buf.readInt32BE(at);
    at += 4;
  }
  if (flags & Flags.WithEvent) {
    if ((problem = need(4, 'event'))) return bad(problem);
    const event = buf.readUInt32BE(at);
    frame.event = event;
    at += 4;
    const kind = idKind(event);
    if (kind !== 'none') {
      if ((problem = need(4, `${kind} id size`))) return bad(problem);
      const idSize = buf.readUInt32BE(at);
      at += 4;
      if ((problem = need(idSize, `${kind} id`))) return bad(problem);
      const id = buf.toString('utf8', at, at + idSize);
      at += idSize;
      if (kind === 'session') frame.sessionId = id;
      else frame.connectId = id;
    }
  }
  if ((problem = need(4, 'payload size'))) return bad(problem);
  const payloadSize = buf.readUInt32BE(at);
  at += 4;
  if ((problem = need(payloadSize, 'payload'))) return bad(`${problem} (declared ${payloadSize} bytes)`);
  if (buf.length !== at + payloadSize)
    return bad(`${buf.length - at - payloadSize} trailing bytes after the payload`);
  const raw = buf.subarray(at, at + payloadSize);
  const maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  if (compression === Compression.Gzip && raw.length > 0) {
    try {
      frame.payload = gunzipSync(raw, { maxOutputLength: maxPayloadBytes });
    } catch (error) {
      return bad(`gzip payload does not inflate: ${error instanceof Error ? error.message : String(error)}`);
    }
  } else {
    if (raw.length > maxPayloadBytes) return bad(`payload of ${raw.length} bytes exceeds the limit`);
    frame.payload = raw;
  }
  return { ok: true, frame };
}

function bad(problem: string): DecodeResult {
  return { ok: false, problem };
}
