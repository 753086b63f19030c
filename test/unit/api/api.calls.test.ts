import { afterEach, describe, expect, it } from 'vitest';
import type { ApiServer } from '../../../src/api/server.js';
import { BusyError } from '../../../src/api/errors.js';
import { InvalidStateError } from '../../../src/core/errors.js';
import { AUTH, FakeCallControl, callView, codedError, makeServer } from './fake-call-control.js';

let server: ApiServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

function setup(overrides: Parameters<typeof makeServer>[1] = {}): {
  control: FakeCallControl;
  api: ApiServer;
} {
  const control = new FakeCallControl();
  server = makeServer(control, overrides);
  return { control, api: server };
}

const postJson = (api: ApiServer, payload: unknown) =>
  api.inject({
    method: 'POST',
    url: '/v1/calls',
    headers: { ...AUTH, 'content-type': 'application/json' },
    payload: JSON.stringify(payload),
  });

interface ValidationBody {
  error: string;
  details: { field: string; reason: string }[];
}

describe('POST /v1/calls', () => {
  it('places an allowed call: 201 with {id, state}, a Location header and the validated request', async () => {
    const { control, api } = setup();
    const body = {
      to: '+15551234567',
      from: '+15550000000',
      provider: 'openai',
      instructions: 'Confirm the appointment for {{name}}.',
      voice: 'alloy',
      variables: { name: 'Ada' },
      transferTarget: 'sales',
      webhookUrl: 'https://hooks.example.com/voxgate?k=1',
    };
    const res = await postJson(api, body);
    expect(res.statusCode).toBe(201);
    expect(res.json()).toEqual({ id: 'call-1', state: 'ringing' });
    expect(res.headers.location).toBe('/v1/calls/call-1');
    expect(control.placed).toEqual([body]);
  });

  it('accepts a sip: URI in an allowed domain (case-insensitive host)', async () => {
    const { control, api } = setup();
    const res = await postJson(api, { to: 'sip:alice@PBX.example.com:5060;transport=tcp' });
    expect(res.statusCode).toBe(201);
    expect(control.placed[0]?.to).toBe('sip:alice@PBX.example.com:5060;transport=tcp');
  });

  it.each([
    ['a number outside every prefix', '+4420712345678', /E\.164 prefix/],
    ['a SIP URI in another domain', 'sip:alice@evil.example.net', /evil\.example\.net is not allowed/],
    ['a sub-domain of an allowed domain', 'sip:alice@a.pbx.example.com', /not allowed/],
  ])('refuses %s with 403 and a reason, without placing it', async (_name, to, reason) => {
    const { control, api } = setup();
    const res = await postJson(api, { to });
    expect(res.statusCode).toBe(403);
    const json: { error: string; message: string } = res.json();
    expect(json.error).toBe('destination_not_allowed');
    expect(json.message).toMatch(reason);
    expect(control.placed).toHaveLength(0);
  });

  it('denies every destination when the allow-list is empty (deny by default)', async () => {
    const { control, api } = setup({ allowedDestinations: [] });
    for (const to of ['+15551234567', 'sip:alice@pbx.example.com']) {
      const res = await postJson(api, { to });
      expect(res.statusCode).toBe(403);
      expect(res.json()).toMatchObject({ message: expect.stringMatching(/allow-list is empty/) as unknown });
    }
    expect(control.placed).toHaveLength(0);
  });

  it('refuses a rate limit that is not a positive integer at construction', () => {
    expect(() => setup({ rateLimitPerMinute: 0 })).toThrow(/API_RATE_LIMIT_PER_MINUTE/);
    expect(() => setup({ rateLimitPerMinute: 1.5 })).toThrow(/API_RATE_LIMIT_PER_MINUTE/);
  });

  it('refuses a malformed allow-list entry at construction, naming it', () => {
    expect(() => setup({ allowedDestinations: ['+1555', '1555'] })).toThrow(/"1555"/);
  });

  it.each([
    ['a number without +', { to: '15551234567' }, 'to', /E\.164|sip:/],
    ['a too-short number', { to: '+1555' }, 'to', /E\.164/],
    ['a tel: URI', { to: 'tel:+15551234567' }, 'to', /E\.164|sip:/],
    ['a SIP URI with headers', { to: 'sip:alice@pbx.example.com?Route=x' }, 'to', /headers/],
    ['a SIP URI with maddr', { to: 'sip:alice@pbx.example.com;maddr=10.0.0.1' }, 'to', /maddr/],
    ['a non-string to', { to: 15551234567 }, 'to', /string/],
    ['a missing to', {}, 'to', /string|required/i],
    ['a non-string voice', { to: '+15551234567', voice: 7 }, 'voice', /string/],
    ['a non-object variables', { to: '+15551234567', variables: ['a'] }, 'variables', /object|record/i],
    ['a non-string variable', { to: '+15551234567', variables: { name: 1 } }, 'variables.name', /string/],
    [
      'a bad variable name',
      { to: '+15551234567', variables: { 'bad-name': 'x' } },
      'variables.bad-name',
      /variable name/,
    ],
    ['an ftp webhook URL', { to: '+15551234567', webhookUrl: 'ftp://x.example.com/' }, 'webhookUrl', /http/],
    [
      'a webhook URL with credentials',
      { to: '+15551234567', webhookUrl: 'https://u:p@x.example.com/' },
      'webhookUrl',
      /credentials/,
    ],
    [
      'a number as transfer target',
      { to: '+15551234567', transferTarget: '+15550000000' },
      'transferTarget',
      /name/,
    ],
    ['an unknown property', { to: '+15551234567', callerName: 'x' }, 'callerName', /not a known property/],
  ])('rejects %s with 400 naming the field and the reason', async (_name, payload, field, reason) => {
    const { control, api } = setup();
    const res = await postJson(api, payload);
    expect(res.statusCode).toBe(400);
    const json: ValidationBody = res.json();
    expect(json.error).toBe('validation');
    const detail = json.details.find((d) => d.field === field);
    expect(detail, JSON.stringify(json.details)).toBeDefined();
    expect(detail?.reason).toMatch(reason);
    expect(control.placed).toHaveLength(0);
  });

  it('lists every problem of a body, not just the first', async () => {
    const { api } = setup();
    const res = await postJson(api, { to: 42, voice: false, extra: 1, other: 2 });
    expect(res.statusCode).toBe(400);
    const fields = res
      .json<ValidationBody>()
      .details.map((d) => d.field)
      .sort();
    expect(fields).toEqual(['extra', 'other', 'to', 'voice']);
  });

  it('rejects a body that is not JSON with 400 validation on the body', async () => {
    const { api } = setup();
    const res = await api.inject({
      method: 'POST',
      url: '/v1/calls',
      headers: { ...AUTH, 'content-type': 'application/json' },
      payload: '{"to":',
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: 'validation', details: [{ field: 'body' }] });
  });

  it('maps a busy call layer to 503 with Retry-After', async () => {
    const { control, api } = setup();
    control.placeError = codedError('busy', 'call limit reached', { retryAfterS: 7 });
    const res = await postJson(api, { to: '+15551234567' });
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('7');
    expect(res.json()).toEqual({ error: 'busy', message: 'call limit reached' });
  });

  it('gives busy a default Retry-After when the error has none', async () => {
    const { control, api } = setup();
    control.placeError = new BusyError('draining', Number.NaN);
    const res = await postJson(api, { to: '+15551234567' });
    expect(res.statusCode).toBe(503);
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
  });

  it('maps an invalid_argument from the call layer to a 400 naming its field', async () => {
    const { control, api } = setup();
    control.placeError = codedError('invalid_argument', 'unknown provider nope', { field: 'provider' });
    const res = await postJson(api, { to: '+15551234567', provider: 'nope' });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({
      error: 'validation',
      details: [{ field: 'provider', reason: 'unknown provider nope' }],
    });
  });

  it('maps not_configured (e.g. no outbound trunk) to 501', async () => {
    const { control, api } = setup();
    control.placeError = codedError('not_configured', 'outbound calling is not configured');
    const res = await postJson(api, { to: '+15551234567' });
    expect(res.statusCode).toBe(501);
    expect(res.json()).toEqual({ error: 'not_configured', message: 'outbound calling is not configured' });
  });

  it('hides the message of an unexpected error behind a 500', async () => {
    const { control, api } = setup();
    control.placeError = new Error('secret internals');
    const res = await postJson(api, { to: '+15551234567' });
    expect(res.statusCode).toBe(500);
    expect(res.body).not.toContain('secret internals');
  });

  it('rate-limits call placement per token: 429 with Retry-After after N calls', async () => {
    const { control, api } = setup({ rateLimitPerMinute: 3 });
    for (let i = 0; i < 3; i++) expect((await postJson(api, { to: '+15551234567' })).statusCode).toBe(201);
    const limited = await postJson(api, { to: '+15551234567' });
    expect(limited.statusCode).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect(Number(limited.headers['retry-after'])).toBeLessThanOrEqual(60);
    expect(limited.json()).toMatchObject({ error: 'rate_limited' });
    expect(control.placed).toHaveLength(3);
    // Reads are not call placements and stay available.
    expect((await api.inject({ method: 'GET', url: '/v1/calls', headers: AUTH })).statusCode).toBe(200);
  });

  it('does not count unauthenticated attempts against the token', async () => {
    const { api } = setup({ rateLimitPerMinute: 1 });
    for (let i = 0; i < 3; i++) {
      const res = await api.inject({ method: 'POST', url: '/v1/calls', payload: { to: '+15551234567' } });
      expect(res.statusCode).toBe(401);
    }
    expect((await postJson(api, { to: '+15551234567' })).statusCode).toBe(201);
  });
});

describe('GET /v1/calls and /v1/calls/{id}', () => {
  it('returns the call view: state, timestamps, SIP outcome, transcript and media stats', async () => {
    const { control, api } = setup();
    const view = callView('c1');
    control.calls.set('c1', view);
    const res = await api.inject({ method: 'GET', url: '/v1/calls/c1', headers: AUTH });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual(view);
  });

  it('drops fields the schema does not publish', async () => {
    const { control, api } = setup();
    control.calls.set('c1', Object.assign(callView('c1'), { internalSecret: 'x' }));
    const res = await api.inject({ method: 'GET', url: '/v1/calls/c1', headers: AUTH });
    expect(res.statusCode).toBe(200);
    expect(res.json()).not.toHaveProperty('internalSecret');
  });

  it('is 404 for an unknown call', async () => {
    const { api } = setup();
    const res = await api.inject({ method: 'GET', url: '/v1/calls/nope', headers: AUTH });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({ error: 'not_found' });
  });

  it('is 400 for an id that cannot be a call id', async () => {
    const { api } = setup();
    const res = await api.inject({ method: 'GET', url: '/v1/calls/a%20b', headers: AUTH });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: 'validation', details: [{ field: 'id' }] });
  });

  it('lists live calls', async () => {
    const { control, api } = setup();
    control.calls.set('c1', callView('c1'));
    control.calls.set('c2', callView('c2', { direction: 'inbound', state: 'ringing' }));
    const res = await api.inject({ method: 'GET', url: '/v1/calls', headers: AUTH });
    expect(res.statusCode).toBe(200);
    expect(res.json<{ calls: { id: string }[] }>().calls.map((c) => c.id)).toEqual(['c1', 'c2']);
  });
});

describe('POST /v1/calls/{id}/transfer', () => {
  it('starts a transfer to a named target: 202', async () => {
    const { control, api } = setup();
    control.calls.set('c1', callView('c1'));
    const res = await api.inject({
      method: 'POST',
      url: '/v1/calls/c1/transfer',
      headers: AUTH,
      payload: { target: 'sales' },
    });
    expect(res.statusCode).toBe(202);
    expect(res.json()).toEqual({ id: 'c1', target: 'sales' });
    expect(control.transfers).toEqual([['c1', 'sales']]);
  });

  it('is 409 for a call that has ended', async () => {
    const { control, api } = setup();
    control.calls.set('c1', callView('c1', { state: 'ended' }));
    const res = await api.inject({
      method: 'POST',
      url: '/v1/calls/c1/transfer',
      headers: AUTH,
      payload: { target: 'sales' },
    });
    expect(res.statusCode).toBe(409);
    expect(res.json()).toMatchObject({ error: 'invalid_state' });
  });

  it("maps core's InvalidStateError to 409 as well", async () => {
    const { control, api } = setup();
    control.transfer = () => Promise.reject(new InvalidStateError('illegal call state change'));
    const res = await api.inject({
      method: 'POST',
      url: '/v1/calls/c1/transfer',
      headers: AUTH,
      payload: { target: 'sales' },
    });
    expect(res.statusCode).toBe(409);
  });

  it('is 403 for a target outside the transfer allow-list', async () => {
    const { control, api } = setup();
    control.calls.set('c1', callView('c1'));
    const res = await api.inject({
      method: 'POST',
      url: '/v1/calls/c1/transfer',
      headers: AUTH,
      payload: { target: 'elsewhere' },
    });
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({ error: 'destination_not_allowed' });
  });

  it('refuses a phone number as target (400) before reaching the call layer', async () => {
    const { control, api } = setup();
    control.calls.set('c1', callView('c1'));
    const res = await api.inject({
      method: 'POST',
      url: '/v1/calls/c1/transfer',
      headers: AUTH,
      payload: { target: '+15551234567' },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ details: [{ field: 'target' }] });
    expect(control.transfers).toHaveLength(0);
  });

  it('is 404 for an unknown call', async () => {
    const { api } = setup();
    const res = await api.inject({
      method: 'POST',
      url: '/v1/calls/nope/transfer',
      headers: AUTH,
      payload: { target: 'sales' },
    });
    expect(res.statusCode).toBe(404);
  });
});

describe('DELETE /v1/calls/{id}', () => {
  it('hangs up: 204 with no body', async () => {
    const { control, api } = setup();
    control.calls.set('c1', callView('c1'));
    const res = await api.inject({ method: 'DELETE', url: '/v1/calls/c1', headers: AUTH });
    expect(res.statusCode).toBe(204);
    expect(res.body).toBe('');
    expect(control.hangUps).toEqual(['c1']);
  });

  it('is 404 for an unknown call', async () => {
    const { api } = setup();
    const res = await api.inject({ method: 'DELETE', url: '/v1/calls/nope', headers: AUTH });
    expect(res.statusCode).toBe(404);
  });
});

describe('probes', () => {
  it('/healthz is 200 while the process is up', async () => {
    const { api } = setup();
    const res = await api.inject({ method: 'GET', url: '/healthz' });
    expect(res.json()).toEqual({ status: 'ok' });
  });

  it('/readyz is 200 with its checks when ready and 503 when not', async () => {
    const { control, api } = setup();
    const ready = await api.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual(control.readinessResult);
    control.readinessResult = {
      ready: false,
      checks: { drachtio: { ok: false, detail: 'not connected' }, capacity: { ok: true, detail: '0/10' } },
    };
    const notReady = await api.inject({ method: 'GET', url: '/readyz' });
    expect(notReady.statusCode).toBe(503);
    expect(notReady.json()).toEqual(control.readinessResult);
  });

  it('/readyz is 503 when the readiness check itself throws', async () => {
    const { control, api } = setup();
    control.readiness = () => {
      throw new Error('broken');
    };
    const res = await api.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({ ready: false });
  });
});
