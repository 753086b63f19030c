// The Doubao binary frame codec against the byte examples of the official doc.
// Source: Volcengine doc 6561/1594356 (端到端实时语音大模型API接入文档), §2.3 notes under the client and
// server event tables ("StartConnection事件二进制帧对应的字节数组示例", "StartSession事件…", "TTSResponse事件示例"),
// mirrored in ../shared/reference/providers.md §3.2. Error-frame order (code, then payload size) follows
// the official realtime_dialog Python demo's parse_response.
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  Compression,
  MessageType,
  Serialization,
  decodeFrame,
  encodeFrame,
  idKind,
} from '../../../src/ai/providers/doubao/frames.js';
import { startConnection, taskRequest } from '../../../src/ai/providers/doubao/protocol.js';

/** Doc: StartConnection = header, event 1, payload length 2, `{}`. */
const DOC_START_CONNECTION = [17, 20, 16, 0, 0, 0, 0, 1, 0, 0, 0, 2, 123, 125];

/** Doc: StartSession, session 75a6126e-…, payload {"dialog":{"bot_name":"豆包","dialog_id":"","extra":null}}. */
const DOC_START_SESSION_ID = '75a6126e-427f-49a1-a2c1-621143cb9db3';
const DOC_START_SESSION_JSON = '{"dialog":{"bot_name":"豆包","dialog_id":"","extra":null}}';
// prettier-ignore
const DOC_START_SESSION = [17, 20, 16, 0, 0, 0, 0, 100, 0, 0, 0, 36, 55, 53, 97, 54, 49, 50, 54, 101, 45, 52, 50,
  55, 102, 45, 52, 57, 97, 49, 45, 97, 50, 99, 49, 45, 54, 50, 49, 49, 52, 51, 99, 98, 57, 100, 98, 51, 0, 0, 0, 60,
  123, 34, 100, 105, 97, 108, 111, 103, 34, 58, 123, 34, 98, 111, 116, 95, 110, 97, 109, 101, 34, 58, 34, 232, 177,
  134, 229, 140, 133, 34, 44, 34, 100, 105, 97, 108, 111, 103, 95, 105, 100, 34, 58, 34, 34, 44, 34, 101, 120, 116,
  114, 97, 34, 58, 110, 117, 108, 108, 125, 125];

/** Doc: the first bytes of a server TTSResponse (session 3c791a7d-…, 2044-byte Ogg payload). The doc cuts it short. */
const DOC_TTS_SESSION_ID = '3c791a7d-227a-4446-993b-24f9e302cc98';
// prettier-ignore
const DOC_TTS_RESPONSE_PREFIX = [17, 180, 0, 0, 0, 0, 1, 96, 0, 0, 0, 36, 51, 99, 55, 57, 49, 97, 55, 100, 45, 50,
  50, 55, 97, 45, 52, 52, 52, 54, 45, 57, 57, 51, 98, 45, 50, 52, 102, 57, 101, 51, 48, 50, 99, 99, 57, 56, 0, 0, 7,
  252, 79, 103, 103, 83, 0, 0, 64, 129, 32, 0, 0, 0, 0, 0, 132, 149, 185, 182, 172, 8, 0, 0, 169, 57, 249, 174, 1, 71,
  104, 139, 98, 229, 167, 232, 122, 108, 0, 183, 60, 54, 43, 137, 197, 126, 20, 248, 201, 174];
const DOC_TTS_HEADER_BYTES = 4 + 4 + 4 + 36 + 4;
const DOC_TTS_PAYLOAD_BYTES = 0x07fc; // 2044

const json = (s: string): Buffer => Buffer.from(s, 'utf8');

function decoded(bytes: Uint8Array) {
  const result = decodeFrame(bytes);
  if (!result.ok) throw new Error(`expected a frame, got: ${result.problem}`);
  return result.frame;
}

describe('doubao frames: the doc byte examples', () => {
  it('encodes StartConnection exactly as the doc: no id, event 1, payload {}', () => {
    const bytes = encodeFrame({
      type: MessageType.FullClientRequest,
      serialization: Serialization.Json,
      compression: Compression.None,
      event: 1,
      payload: json('{}'),
    });
    expect([...bytes]).toEqual(DOC_START_CONNECTION);
    expect([...startConnection()]).toEqual(DOC_START_CONNECTION);
  });

  it('encodes StartSession exactly as the doc: event 100, 36-byte session id, 60-byte JSON', () => {
    const bytes = encodeFrame({
      type: MessageType.FullClientRequest,
      serialization: Serialization.Json,
      compression: Compression.None,
      event: 100,
      sessionId: DOC_START_SESSION_ID,
      payload: json(DOC_START_SESSION_JSON),
    });
    expect([...bytes]).toEqual(DOC_START_SESSION);
  });

  it('decodes the doc StartSession bytes back to event, session id and payload', () => {
    const frame = decoded(Uint8Array.from(DOC_START_SESSION));
    expect(frame).toMatchObject({
      type: MessageType.FullClientRequest,
      flags: 0b0100,
      serialization: Serialization.Json,
      compression: Compression.None,
      event: 100,
      sessionId: DOC_START_SESSION_ID,
    });
    expect(Buffer.from(frame.payload).toString('utf8')).toBe(DOC_START_SESSION_JSON);
  });

  it('encodes a server TTSResponse whose first bytes are the doc example (0xB4, event 352, size 2044)', () => {
    const payload = Buffer.alloc(DOC_TTS_PAYLOAD_BYTES);
    Buffer.from(DOC_TTS_RESPONSE_PREFIX.slice(DOC_TTS_HEADER_BYTES)).copy(payload);
    const bytes = encodeFrame({
      type: MessageType.AudioOnlyResponse,
      serialization: Serialization.Raw,
      compression: Compression.None,
      event: 352,
      sessionId: DOC_TTS_SESSION_ID,
      payload,
    });
    expect([...bytes.subarray(0, DOC_TTS_RESPONSE_PREFIX.length)]).toEqual(DOC_TTS_RESPONSE_PREFIX);
    const frame = decoded(bytes);
    expect(frame).toMatchObject({
      type: MessageType.AudioOnlyResponse,
      event: 352,
      sessionId: DOC_TTS_SESSION_ID,
    });
    expect(Buffer.from(frame.payload.subarray(0, 4)).toString('latin1')).toBe('OggS');
  });

  it('reports the doc TTSResponse excerpt as truncated (it declares 2044 bytes) instead of throwing', () => {
    const result = decodeFrame(Uint8Array.from(DOC_TTS_RESPONSE_PREFIX));
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.problem).toMatch(/truncated payload.*2044/);
  });
});

describe('doubao frames: layout rules', () => {
  it('sends audio as an audio-only request: byte1 0x24, byte2 0x00, the PCM untouched', () => {
    const pcm = Buffer.from(Array.from({ length: 640 }, (_, i) => i & 0xff));
    const bytes = taskRequest('s-1', pcm);
    expect([...bytes.subarray(0, 8)]).toEqual([0x11, 0x24, 0x00, 0x00, 0, 0, 0, 200]);
    expect(bytes.readUInt32BE(8)).toBe(3);
    expect(bytes.subarray(12, 15).toString()).toBe('s-1');
    expect(bytes.readUInt32BE(15)).toBe(640);
    expect(bytes.subarray(19).equals(pcm)).toBe(true);
  });

  it('gives connection events 50/51/52 a connect id, 1/2 no id, everything else a session id', () => {
    expect([1, 2].map(idKind)).toEqual(['none', 'none']);
    expect([50, 51, 52].map(idKind)).toEqual(['connect', 'connect', 'connect']);
    expect([100, 150, 200, 352, 450, 599].map(idKind)).toEqual(Array(6).fill('session'));
    const connectId = 'c0ffee00-0000-4000-8000-000000000000';
    // ConnectionStarted as the server sends it: 0x94, event 50, connect id, {}.
    const bytes = Buffer.concat([
      Buffer.from([0x11, 0x94, 0x10, 0x00, 0, 0, 0, 50, 0, 0, 0, 36]),
      Buffer.from(connectId),
      Buffer.from([0, 0, 0, 2, 123, 125]),
    ]);
    const frame = decoded(bytes);
    expect(frame).toMatchObject({ type: MessageType.FullServerResponse, event: 50, connectId });
    expect(frame.sessionId).toBeUndefined();
    expect(
      encodeFrame({
        type: MessageType.FullServerResponse,
        serialization: Serialization.Json,
        compression: Compression.None,
        event: 50,
        connectId,
        payload: json('{}'),
      }).equals(bytes),
    ).toBe(true);
  });

  it('reads an error frame as code then payload (the official demo), with no event', () => {
    const body = json('{"error":"DialogAudioIdleTimeoutError"}');
    const bytes = Buffer.concat([
      Buffer.from([0x11, 0xf0, 0x10, 0x00]),
      Buffer.from([0x03, 0x19, 0x75, 0x2a]), // 52000042 = 0x0319752a
      Buffer.from([0, 0, 0, body.length]),
      body,
    ]);
    const frame = decoded(bytes);
    expect(frame).toMatchObject({ type: MessageType.Error, errorCode: 52_000_042 });
    expect(frame.event).toBeUndefined();
    expect(Buffer.from(frame.payload).toString()).toBe('{"error":"DialogAudioIdleTimeoutError"}');
  });

  it('puts the error code before the event and session id when an error frame carries both', () => {
    const bytes = encodeFrame({
      type: MessageType.Error,
      serialization: Serialization.Json,
      compression: Compression.None,
      errorCode: 45_000_002,
      event: 200,
      sessionId: 'abc',
      payload: json('{"error":"empty audio"}'),
    });
    expect([...bytes.subarray(0, 4)]).toEqual([0x11, 0xf4, 0x10, 0x00]);
    expect(bytes.readUInt32BE(4)).toBe(45_000_002);
    expect(bytes.readUInt32BE(8)).toBe(200);
    expect(decoded(bytes)).toMatchObject({ errorCode: 45_000_002, event: 200, sessionId: 'abc' });
  });

  it('inflates gzip payloads on decode and marks byte2 0x11 / 0x01 on encode', () => {
    const text = '{"content":"你好"}';
    const jsonGz = encodeFrame({
      type: MessageType.FullServerResponse,
      serialization: Serialization.Json,
      compression: Compression.Gzip,
      event: 550,
      sessionId: 's',
      payload: json(text),
    });
    expect(jsonGz[2]).toBe(0x11);
    const frame = decoded(jsonGz);
    expect(frame.compression).toBe(Compression.Gzip);
    expect(Buffer.from(frame.payload).toString()).toBe(text);

    const pcm = Buffer.from([1, 2, 3, 4, 5, 6]);
    const audioGz = Buffer.concat([
      Buffer.from([0x11, 0xb4, 0x01, 0x00, 0, 0, 1, 96, 0, 0, 0, 1]),
      Buffer.from('s'),
      (() => {
        const z = gzipSync(pcm);
        return Buffer.concat([Buffer.from([0, 0, 0, z.length]), z]);
      })(),
    ]);
    expect(Buffer.from(decoded(audioGz).payload).equals(pcm)).toBe(true);
  });

  it('reads a sequence field when the flags say so (0b0101: positive sequence plus event)', () => {
    const bytes = encodeFrame({
      type: MessageType.FullServerResponse,
      serialization: Serialization.Json,
      compression: Compression.None,
      sequence: -1,
      event: 359,
      sessionId: 's',
      payload: json('{}'),
    });
    expect(bytes[1]).toBe(0x97); // 0b1001 << 4 | 0b0111 (negative sequence + event)
    expect(decoded(bytes)).toMatchObject({ sequence: -1, event: 359, sessionId: 's' });
  });
});

describe('doubao frames: bad input', () => {
  const good = Buffer.from(DOC_START_SESSION);
  it.each<[string, Buffer, RegExp]>([
    ['too short for a header', Buffer.from([0x11, 0x14]), /shorter than the 4-byte header/],
    ['protocol version 2', Buffer.from([0x21, ...good.subarray(1)]), /version 2/],
    ['unknown message type 0b0101', Buffer.from([0x11, 0x54, ...good.subarray(2)]), /unknown message type/],
    [
      'a session id longer than the frame',
      Buffer.from([...good.subarray(0, 8), 0, 0, 1, 0]),
      /truncated session id/,
    ],
    ['a payload longer than the frame', good.subarray(0, good.length - 1), /truncated payload/],
    ['trailing bytes', Buffer.concat([good, Buffer.from([0])]), /1 trailing bytes/],
    [
      'a gzip flag on a payload that is not gzip',
      Buffer.from([0x11, 0x94, 0x11, 0x00, 0, 0, 0, 50, 0, 0, 0, 0, 0, 0, 0, 2, 123, 125]),
      /gzip payload does not inflate/,
    ],
  ])('reports %s as a problem, never throws', (_name, bytes, problem) => {
    const result = decodeFrame(bytes);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.problem).toMatch(problem);
  });

  it('refuses to inflate a gzip bomb past the payload limit', () => {
    const bomb = gzipSync(Buffer.alloc(1024 * 1024));
    const bytes = encodeFrame({
      type: MessageType.AudioOnlyResponse,
      serialization: Serialization.Raw,
      compression: Compression.None,
      event: 352,
      sessionId: 's',
      payload: bomb,
    });
    bytes[2] = 0x01; // say gzip
    const result = decodeFrame(bytes, { maxPayloadBytes: 64 * 1024 });
    expect(result.ok).toBe(false);
  });

  it('throws TypeError when a session-level event has no session id', () => {
    expect(() =>
      encodeFrame({
        type: MessageType.FullClientRequest,
        serialization: Serialization.Json,
        compression: Compression.None,
        event: 100,
        payload: json('{}'),
      }),
    ).toThrow(TypeError);
  });
});
