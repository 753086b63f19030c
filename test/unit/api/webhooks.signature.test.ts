import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isValidWebhookUrl, signWebhook, verifyWebhookSignature } from '../../../src/api/webhooks.js';

const SECRET = 'whsec-123';
const BODY = '{"type":"call.ended","callId":"c1"}';
const NOW_MS = 1_700_000_000_000;
const TS = String(NOW_MS / 1000);

describe('webhook signatures', () => {
  it('are hex HMAC-SHA256 over `${timestamp}.${body}`', () => {
    const expected = createHmac('sha256', SECRET).update(`${TS}.${BODY}`).digest('hex');
    expect(signWebhook(SECRET, TS, BODY)).toBe(expected);
    expect(signWebhook(SECRET, TS, Buffer.from(BODY))).toBe(expected);
  });

  const good = `v1=${signWebhook(SECRET, TS, BODY)}`;

  it('verify for the right secret, body and timestamp (string or bytes)', () => {
    expect(verifyWebhookSignature(SECRET, TS, BODY, good, 300, NOW_MS)).toBe(true);
    expect(verifyWebhookSignature(SECRET, TS, Buffer.from(BODY), good, 300, NOW_MS)).toBe(true);
  });

  it('accept one valid signature among several (secret rotation)', () => {
    const old = `v1=${signWebhook('old-secret', TS, BODY)}`;
    expect(verifyWebhookSignature(SECRET, TS, BODY, `${old}, ${good}`, 300, NOW_MS)).toBe(true);
  });

  it.each([
    ['a tampered body', SECRET, TS, `${BODY} `, good],
    ['another secret', 'nope', TS, BODY, good],
    ['a different timestamp', SECRET, String(Number(TS) + 1), BODY, good],
    ['an unknown version', SECRET, TS, BODY, good.replace('v1=', 'v0=')],
    ['a truncated signature', SECRET, TS, BODY, good.slice(0, -2)],
    ['a non-numeric timestamp', SECRET, `${TS}x`, BODY, good],
    ['an empty header', SECRET, TS, BODY, ''],
  ])('reject %s', (_name, secret, ts, body, header) => {
    expect(verifyWebhookSignature(secret, ts, body, header, 300, NOW_MS)).toBe(false);
  });

  it('reject a timestamp outside the tolerance, either way (replay guard)', () => {
    expect(verifyWebhookSignature(SECRET, TS, BODY, good, 300, NOW_MS + 301_000)).toBe(false);
    expect(verifyWebhookSignature(SECRET, TS, BODY, good, 300, NOW_MS - 301_000)).toBe(false);
    expect(verifyWebhookSignature(SECRET, TS, BODY, good, 300, NOW_MS + 299_000)).toBe(true);
  });
});

describe('webhook URLs', () => {
  it.each([
    ['https://hooks.example.com/x?y=1', true],
    ['http://127.0.0.1:8080/hook', true],
    ['ftp://hooks.example.com/', false],
    ['file:///etc/passwd', false],
    ['javascript:alert(1)', false],
    ['https://user:pw@hooks.example.com/', false],
    ['/relative/path', false],
    ['', false],
  ])('%j valid: %s', (url, valid) => {
    expect(isValidWebhookUrl(url)).toBe(valid);
  });
});
