import { describe, expect, it } from 'vitest';
import { readinessFrom } from '../../../src/api/call-control.js';

const base = { drachtioConnected: true, activeCalls: 2, maxCalls: 10 };

describe('readinessFrom', () => {
  it('is ready when connected and below the call limit, with a check for each', () => {
    expect(readinessFrom(base)).toEqual({
      ready: true,
      checks: { drachtio: { ok: true, detail: 'connected' }, capacity: { ok: true, detail: '2/10 calls' } },
    });
  });

  it('is not ready without drachtio-server', () => {
    const r = readinessFrom({ ...base, drachtioConnected: false });
    expect(r.ready).toBe(false);
    expect(r.checks.drachtio).toEqual({ ok: false, detail: 'not connected' });
  });

  it('is not ready at the call limit or while draining', () => {
    expect(readinessFrom({ ...base, activeCalls: 10 }).ready).toBe(false);
    const draining = readinessFrom({ ...base, draining: true });
    expect(draining.ready).toBe(false);
    expect(draining.checks.capacity?.detail).toBe('2/10 calls, draining');
  });

  it('adds a registration check only when registration is configured', () => {
    expect(readinessFrom(base).checks).not.toHaveProperty('registration');
    const unregistered = readinessFrom({
      ...base,
      registration: { registered: false, detail: '403 from registrar' },
    });
    expect(unregistered.ready).toBe(false);
    expect(unregistered.checks.registration).toEqual({ ok: false, detail: '403 from registrar' });
    expect(readinessFrom({ ...base, registration: { registered: true } }).ready).toBe(true);
  });
});
