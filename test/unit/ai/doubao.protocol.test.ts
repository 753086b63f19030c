// Doubao event layer (payload builders, server-event validation) and the float32 → int16 converter.
import { describe, expect, it } from 'vitest';
import {
  Compression,
  MessageType,
  Serialization,
  encodeFrame,
} from '../../../src/ai/providers/doubao/frames.js';
import { PcmNormalizer, float32ToInt16 } from '../../../src/ai/providers/doubao/pcm.js';
import {
  decodeServerMessage,
  isFatalCode,
  isGeneration2Model,
  startSessionPayload,
  type SessionSettings,
} from '../../../src/ai/providers/doubao/protocol.js';

const settings: SessionSettings = {
  model: '1.2.1.1',
  speaker: 'zh_female_vv_jupiter_bigtts',
  botName: '小助手',
  systemRole: 'You answer the phone.',
  speakingStyle: 'Brief.',
  outputFormat: 'pcm_s16le',
  hangUpOnUserExit: true,
};

function serverJson(event: number, payload: unknown, sessionId = 's'): Buffer {
  return encodeFrame({
    type: MessageType.FullServerResponse,
    serialization: Serialization.Json,
    compression: Compression.None,
    event,
    sessionId,
    payload: Buffer.from(JSON.stringify(payload)),
  });
}

describe('startSessionPayload', () => {
  it('keeps asr.extra and tts.extra as objects (null is error 42000020) and asks for 24 kHz s16le', () => {
    const p = startSessionPayload(settings);
    expect(p.asr).toEqual({ extra: {} });
    expect(p.tts).toEqual({
      speaker: 'zh_female_vv_jupiter_bigtts',
      audio_config: { channel: 1, format: 'pcm_s16le', sample_rate: 24000 },
      extra: {},
    });
  });

  it('enables conversation truncation for O2.0 (1.2.1.1) but not for the legacy O model', () => {
    expect(startSessionPayload(settings).dialog).toEqual({
      bot_name: '小助手',
      system_role: 'You answer the phone.',
      speaking_style: 'Brief.',
      extra: {
        model: '1.2.1.1',
        input_mod: 'audio',
        enable_conversation_truncate: true,
        enable_user_query_exit: true,
      },
    });
    expect(startSessionPayload({ ...settings, model: 'O' }).dialog.extra).toEqual({
      model: 'O',
      input_mod: 'audio',
      enable_user_query_exit: true,
    });
  });

  it('puts the persona into character_manifest for SC2.0 (2.2.0.0), which has no bot_name/system_role', () => {
    const dialog = startSessionPayload({ ...settings, model: '2.2.0.0' }).dialog;
    expect(dialog.character_manifest).toBe('You answer the phone.');
    expect(dialog).not.toHaveProperty('system_role');
    expect(dialog).not.toHaveProperty('bot_name');
  });

  it('omits empty persona fields and an empty speaker rather than sending ""', () => {
    const p = startSessionPayload({ ...settings, speaker: '', botName: '', speakingStyle: ' ' });
    expect(p.tts).not.toHaveProperty('speaker');
    expect(p.dialog).not.toHaveProperty('bot_name');
    expect(p.dialog).not.toHaveProperty('speaking_style');
  });
});

describe('model and error classification', () => {
  it.each([
    ['1.2.1.1', true],
    ['1.2.1.0', true],
    ['2.2.0.0', true],
    ['O', false],
    ['SC', false],
    ['1.0.0.0', false],
    ['', false],
  ])('isGeneration2Model(%j) is %s', (model, expected) => expect(isGeneration2Model(model)).toBe(expected));

  it.each([
    [52_000_042, true],
    ['55000001', true],
    ['50700000', true],
    [45_000_002, false],
    ['42000020', false],
    ['20000002', false],
    ['5000', false],
  ])('isFatalCode(%j) is %s', (code, expected) => expect(isFatalCode(code)).toBe(expected));
});

describe('decodeServerMessage', () => {
  it('validates event payloads: ASRResponse without results is invalid, not a crash', () => {
    expect(decodeServerMessage(serverJson(451, { text: 'hi' }))).toMatchObject({
      kind: 'invalid',
      problem: expect.stringMatching(/^ASRResponse: results/),
    });
  });

  it('reads DialogCommonError status codes given as numbers as strings', () => {
    expect(decodeServerMessage(serverJson(599, { status_code: 52000042, message: 'idle' }))).toMatchObject({
      kind: 'event',
      event: { name: 'DialogCommonError', status_code: '52000042', message: 'idle' },
    });
  });

  it('treats an empty payload as {} (ASRInfo may come without one)', () => {
    const bytes = encodeFrame({
      type: MessageType.FullServerResponse,
      serialization: Serialization.Json,
      compression: Compression.None,
      event: 450,
      sessionId: 's',
      payload: new Uint8Array(0),
    });
    expect(decodeServerMessage(bytes)).toMatchObject({ kind: 'event', event: { name: 'ASRInfo' } });
  });

  it('ignores unknown events and passes TTSResponse audio through', () => {
    expect(decodeServerMessage(serverJson(777, {}))).toEqual({ kind: 'ignored', event: 777 });
    const audio = encodeFrame({
      type: MessageType.AudioOnlyResponse,
      serialization: Serialization.Raw,
      compression: Compression.None,
      event: 352,
      sessionId: 's',
      payload: Buffer.from([1, 2]),
    });
    expect(decodeServerMessage(audio)).toMatchObject({
      kind: 'audio',
      audio: Buffer.from([1, 2]),
      sessionId: 's',
    });
  });

  it('turns an error frame into code and message from {"error": …}', () => {
    const bytes = encodeFrame({
      type: MessageType.Error,
      serialization: Serialization.Json,
      compression: Compression.None,
      errorCode: 55_000_001,
      payload: Buffer.from('{"error":"ContextCanceled"}'),
    });
    expect(decodeServerMessage(bytes)).toMatchObject({
      kind: 'error',
      code: 55_000_001,
      message: 'ContextCanceled',
    });
  });
});

describe('PCM output normalisation', () => {
  it('converts float32 to int16 with clamping and rounding', () => {
    const f = Buffer.alloc(5 * 4);
    [0, 0.5, -0.5, 1.5, -2].forEach((v, i) => f.writeFloatLE(v, i * 4));
    const out = float32ToInt16(f);
    expect([0, 1, 2, 3, 4].map((i) => out.readInt16LE(i * 2))).toEqual([0, 16384, -16383, 32767, -32767]); // ±16383.5 rounds up
  });

  it('carries a split float32 sample across chunks', () => {
    const f = Buffer.alloc(8);
    f.writeFloatLE(0.25, 0);
    f.writeFloatLE(-0.75, 4);
    const n = new PcmNormalizer('pcm');
    const a = n.push(f.subarray(0, 3));
    const b = n.push(f.subarray(3));
    expect(a.length).toBe(0);
    expect([b.readInt16LE(0), b.readInt16LE(2)]).toEqual([8192, -24575]);
  });

  it('keeps int16 bytes as they are but never emits half a sample', () => {
    const n = new PcmNormalizer('pcm_s16le');
    expect([...n.push(Buffer.from([1, 2, 3]))]).toEqual([1, 2]);
    expect([...n.push(Buffer.from([4, 5]))]).toEqual([3, 4]);
    n.reset();
    expect([...n.push(Buffer.from([6, 7]))]).toEqual([6, 7]);
  });
});
