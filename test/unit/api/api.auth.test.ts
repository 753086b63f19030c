import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { assertApiExposureSafe, isLoopbackHost } from '../../../src/api/auth.js';
import { startApiServer, type ApiServer } from '../../../src/api/server.js';
import { AUTH, FakeCallControl, TOKEN, callView, makeServer } from './fake-call-control.js';

let server: ApiServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe('bearer auth on /v1', () => {
  const routes = [
    { method: 'GET', url: '/v1/calls' },
    { method: 'GET', url: '/v1/calls/call-1' },
    { method: 'POST', url: '/v1/calls', payload: { to: '+15551234567' } },
    { method: 'POST', url: '/v1/calls/call-1/transfer', payload: { target: 'sales' } },
    { method: 'DELETE', url: '/v1/calls/call-1' },
  ] as const;

  it.each(routes)('$method $url without a token is 401 with WWW-Authenticate: Bearer', async (route) => {
    const control = new FakeCallControl();
    control.calls.set('call-1', callView('call-1'));
    server = makeServer(control);
    const res = await server.inject({ ...route });
    expect(res.statusCode).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="voxgate"$/);
    expect(res.json()).toMatchObject({ error: 'unauthorized' });
    expect(control.placed).toHaveLength(0);
    expect(control.transfers).toHaveLength(0);
    expect(control.hangUps).toHaveLength(0);
  });

  it.each([
    ['a wrong token', `Bearer ${TOKEN}x`],
    ['a token prefix', `Bearer ${TOKEN.slice(0, -1)}`],
    ['another scheme', `Basic ${Buffer.from(`u:${TOKEN}`).toString('base64')}`],
    ['an empty bearer', 'Bearer '],
  ])('%s is 401 with error="invalid_token"', async (_name, authorization) => {
    server = makeServer(new FakeCallControl());
    const res = await server.inject({ method: 'GET', url: '/v1/calls', headers: { authorization } });
    expect(res.statusCode).toBe(401);
    expect(res.headers['www-authenticate']).toContain('error="invalid_token"');
  });

  it('the right token is accepted (scheme is case-insensitive)', async () => {
    server = makeServer(new FakeCallControl());
    const res = await server.inject({ method: 'GET', url: '/v1/calls', headers: AUTH });
    expect(res.statusCode).toBe(200);
    const lower = await server.inject({
      method: 'GET',
      url: '/v1/calls',
      headers: { authorization: `bearer ${TOKEN}` },
    });
    expect(lower.statusCode).toBe(200);
  });

  it.each(['/healthz', '/readyz', '/openapi.json'])('%s needs no token', async (url) => {
    server = makeServer(new FakeCallControl());
    const res = await server.inject({ method: 'GET', url });
    expect(res.statusCode).toBe(200);
  });

  it('without a configured token, /v1 is open (loopback-only deployments)', async () => {
    server = makeServer(new FakeCallControl(), { token: undefined });
    const res = await server.inject({ method: 'GET', url: '/v1/calls' });
    expect(res.statusCode).toBe(200);
  });

  it('a token shorter than 16 characters is refused at construction', () => {
    expect(() => makeServer(new FakeCallControl(), { token: 'short' })).toThrow(/API_TOKEN is too short/);
  });

  it('never logs the token or the Authorization header', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    const logger = pino({ level: 'trace' }, sink);
    const control = new FakeCallControl();
    control.placeError = new Error('boom'); // an unexpected error is logged with its request
    server = makeServer(control, { logger });
    await server.inject({ method: 'GET', url: '/v1/calls', headers: AUTH });
    await server.inject({
      method: 'GET',
      url: '/v1/calls',
      headers: { authorization: 'Bearer wrong-token-123' },
    });
    const failed = await server.inject({
      method: 'POST',
      url: '/v1/calls',
      headers: AUTH,
      payload: { to: '+15551234567' },
    });
    expect(failed.statusCode).toBe(500);
    const all = lines.join('');
    expect(all).toContain('http request'); // the summary is logged …
    expect(all).not.toContain(TOKEN); // … without the token
    expect(all).not.toContain('wrong-token-123');
    expect(all.toLowerCase()).not.toContain('authorization');
  });
});

describe('startup exposure check', () => {
  it.each(['0.0.0.0', '::', '192.168.1.10', '10.0.0.1', 'example.com'])(
    'refuses to start without API_TOKEN on %s',
    async (host) => {
      expect(() => assertApiExposureSafe({ host, token: undefined })).toThrow(/API_TOKEN.*loopback/s);
      expect(() => assertApiExposureSafe({ host, token: '' })).toThrow(/without API_TOKEN/);
      server = makeServer(new FakeCallControl(), { token: undefined });
      await expect(startApiServer(server, { host, port: 0 })).rejects.toThrow(/without API_TOKEN/);
      expect(server.server.listening).toBe(false);
    },
  );

  it.each(['127.0.0.1', '127.1.2.3', '::1', '[::1]', '::ffff:127.0.0.1', 'localhost'])(
    'allows no token on loopback %s',
    (host) => {
      expect(isLoopbackHost(host)).toBe(true);
      expect(() => assertApiExposureSafe({ host, token: undefined })).not.toThrow();
    },
  );

  it('allows any bind address with a strong token', () => {
    expect(() => assertApiExposureSafe({ host: '0.0.0.0', token: TOKEN })).not.toThrow();
  });

  it('starts on loopback without a token and answers over real HTTP', async () => {
    server = makeServer(new FakeCallControl(), { token: undefined });
    const address = await startApiServer(server, { host: '127.0.0.1', port: 0 });
    expect(address).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const res = await fetch(`${address}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });
});
