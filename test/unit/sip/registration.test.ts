// Registration against a scripted srf.request and a hand-driven clock: what goes on the wire, when
// refreshes and retries are scheduled, and what the state and logs say.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { InvalidStateError } from '../../../src/core/errors.js';
import {
  MIN_GRANTED_EXPIRES_S,
  REGISTER_TIMEOUT_MS,
  RETRY_BASE_MS,
  RETRY_MAX_MS,
  Registration,
  UNREGISTER_TIMEOUT_MS,
  type RegistrationOptions,
  type RegistrationSeams,
  type RegistrationState,
} from '../../../src/sip/registration.js';
import type { SrfInstance, SrfReceivedResponse } from '../../../src/sip/srf-types.js';

const PASSWORD = 'pw-S3cr3t-xyzzy';
/** Where the fake drachtio "puts" a '@localhost' Contact, as drachtio-server does with its SIP address. */
const DRACHTIO_HOSTPORT = '10.0.0.5:5070';

type RequestOpts = Parameters<SrfInstance['request']>[1];

interface SentRequest {
  uri: string;
  opts: RequestOpts;
  headers: Record<string, string>;
  respond(status: number, reason?: string, headers?: Record<string, string>): void;
}

/** srf.request as a script: each call is recorded; the test answers it (or never does). */
class FakeSrf implements Pick<SrfInstance, 'request'> {
  readonly sent: SentRequest[] = [];
  failNext: Error | undefined;

  request(uri: string, opts: RequestOpts): ReturnType<SrfInstance['request']> {
    if (this.failNext) {
      const error = this.failNext;
      this.failNext = undefined;
      return Promise.reject(error);
    }
    // A copy: the caller's object is what srf's digest client would mutate.
    const headers = { ...opts.headers };
    let listener: ((res: SrfReceivedResponse) => void) | undefined;
    const cseq = headers['CSeq'] ?? '';
    this.sent.push({
      uri,
      opts,
      headers,
      respond(status, reason = 'OK', extra = {}) {
        const all: Record<string, string> = { cseq, ...extra };
        const lower = Object.fromEntries(Object.entries(all).map(([k, v]) => [k.toLowerCase(), v]));
        listener?.({ status, reason, get: (name) => lower[name.toLowerCase()] });
      },
    });
    const echoed = Object.fromEntries(
      Object.entries(headers).map(([k, v]) => [
        k.toLowerCase(),
        v.replace('@localhost', `@${DRACHTIO_HOSTPORT}`),
      ]),
    );
    return Promise.resolve({
      get: (name: string) => echoed[name.toLowerCase()],
      on: (_event: 'response', l: (res: SrfReceivedResponse) => void) => {
        listener = l;
      },
    });
  }

  get last(): SentRequest {
    const last = this.sent.at(-1);
    if (!last) throw new Error('no REGISTER sent');
    return last;
  }
}

/** setTimeout/clearTimeout/now driven by advance(); random fixed at 0.5 (no jitter) unless replaced. */
class FakeClock implements RegistrationSeams {
  nowMs = 1_700_000_000_000;
  randomValue = 0.5;
  readonly #timers = new Map<number, { at: number; ms: number; fn: () => void }>();
  #nextId = 1;

  setTimeout = (fn: () => void, ms: number): unknown => {
    const id = this.#nextId++;
    this.#timers.set(id, { at: this.nowMs + ms, ms, fn });
    return id;
  };
  clearTimeout = (handle: unknown): void => {
    this.#timers.delete(handle as number);
  };
  now = (): number => this.nowMs;
  random = (): number => this.randomValue;

  /** Delays (as scheduled) of the timers still pending. */
  pending(): number[] {
    return [...this.#timers.values()].map((t) => t.ms).sort((a, b) => a - b);
  }

  /** Lets pending promise callbacks (responses just delivered) run first, then fires due timers in order. */
  async advance(ms: number): Promise<void> {
    await flush();
    const target = this.nowMs + ms;
    for (;;) {
      const next = [...this.#timers.entries()]
        .filter(([, t]) => t.at <= target)
        .sort((a, b) => a[1].at - b[1].at)[0];
      if (!next) break;
      this.#timers.delete(next[0]);
      this.nowMs = next[1].at;
      next[1].fn();
      await flush();
    }
    this.nowMs = target;
    await flush();
  }
}

function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

const BASE: RegistrationOptions = {
  registrar: 'sip:pbx.example.com',
  user: '1001',
  password: PASSWORD,
  expiresS: 300,
  userAgent: 'voxgate-test',
};

function setup(options: Partial<RegistrationOptions> = {}) {
  const srf = new FakeSrf();
  const clock = new FakeClock();
  const logLines: string[] = [];
  const log = pino({ level: 'trace' }, { write: (line: string) => void logLines.push(line) });
  const reg = new Registration(srf, { ...BASE, ...options }, log, clock);
  const states: RegistrationState[] = [];
  reg.on('state', (s) => states.push(s));
  return { srf, clock, reg, states, logLines };
}

/** 200 as a registrar sends it: our binding (drachtio's real address) among another device's. */
function ok(expiresS: number): Record<string, string> {
  return {
    Contact: `<sip:1001@${DRACHTIO_HOSTPORT}>;expires=${expiresS}, "desk" <sip:1001@198.51.100.7:5060;ob>;expires=3600`,
  };
}

describe('Registration: the REGISTER request', () => {
  it('sends the first REGISTER to the registrar with AOR From/To, a localhost Contact, Expires and credentials', async () => {
    const { srf, reg } = setup();
    reg.start();
    await flush();
    expect(srf.sent).toHaveLength(1);
    const { uri, opts, headers } = srf.last;
    expect(uri).toBe('sip:pbx.example.com');
    expect(opts.method).toBe('REGISTER');
    expect(opts.proxy).toBeUndefined();
    expect(opts.auth).toEqual({ username: '1001', password: PASSWORD });
    expect(headers['From']).toBe('<sip:1001@pbx.example.com>');
    expect(headers['To']).toBe('<sip:1001@pbx.example.com>');
    expect(headers['Contact']).toBe('<sip:1001@localhost>;expires=300');
    expect(headers['Expires']).toBe('300');
    expect(headers['CSeq']).toBe('1 REGISTER');
    expect(headers['call-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(headers['User-Agent']).toBe('voxgate-test');
  });

  it('puts the AOR domain in the Request-URI and uses the registrar as proxy when they differ', async () => {
    const { srf, reg } = setup({ registrar: 'sip:192.0.2.10:5080;transport=tcp', domain: 'pbx.example.com' });
    reg.start();
    await flush();
    expect(srf.last.uri).toBe('sip:pbx.example.com');
    expect(srf.last.opts.proxy).toBe('sip:192.0.2.10:5080;transport=tcp');
    expect(srf.last.headers['To']).toBe('<sip:1001@pbx.example.com>');
    expect(srf.last.headers['Contact']).toBe('<sip:1001@localhost;transport=tcp>;expires=300');
  });

  it('uses contactHost verbatim when configured', async () => {
    const { srf, reg } = setup({ contactHost: 'voxgate.example.net:5062' });
    reg.start();
    await flush();
    expect(srf.last.headers['Contact']).toBe('<sip:1001@voxgate.example.net:5062>;expires=300');
  });

  it('rejects a registrar with a user part and a non-positive expiry', () => {
    const log = pino({ level: 'silent' });
    expect(() => new Registration(new FakeSrf(), { ...BASE, registrar: 'sip:1001@pbx' }, log)).toThrow(
      TypeError,
    );
    expect(() => new Registration(new FakeSrf(), { ...BASE, expiresS: 0 }, log)).toThrow(RangeError);
    expect(() => new Registration(new FakeSrf(), { ...BASE, user: 'a b' }, log)).toThrow(TypeError);
  });
});

describe('Registration: refresh', () => {
  it('refreshes at half the expiry granted in our Contact;expires=, not another binding', async () => {
    const { srf, clock, reg } = setup();
    reg.start();
    await flush();
    // srf answered the 401 itself: the final 200 carries the retry's CSeq.
    srf.last.respond(200, 'OK', { ...ok(120), CSeq: '2 REGISTER', Expires: '999' });
    await flush();
    expect(reg.state.status).toBe('registered');
    expect(reg.state.expiresAt).toBe(clock.nowMs + 120_000);
    expect(clock.pending()).toEqual([60_000]);
    await clock.advance(59_999);
    expect(srf.sent).toHaveLength(1);
    await clock.advance(1);
    expect(srf.sent).toHaveLength(2);
    expect(srf.last.headers['Expires']).toBe('300');
  });

  it('falls back to the Expires header when no Contact in the 200 is ours', async () => {
    const { srf, clock, reg } = setup();
    reg.start();
    await flush();
    srf.last.respond(200, 'OK', {
      Contact: '<sip:1001@203.0.113.9:5060>;expires=50, <sip:1001@203.0.113.8:5060>;expires=70',
      Expires: '90',
    });
    await flush();
    expect(clock.pending()).toEqual([45_000]);
  });

  it(`floors a tiny grant at ${MIN_GRANTED_EXPIRES_S} s so refreshes never spin`, async () => {
    const { srf, clock, reg } = setup();
    reg.start();
    await flush();
    srf.last.respond(200, 'OK', ok(0));
    await flush();
    expect(clock.pending()).toEqual([(MIN_GRANTED_EXPIRES_S * 1000) / 2]);
  });

  it('keeps one Call-ID and raises CSeq past the digest retry on every refresh', async () => {
    const { srf, clock, reg } = setup();
    reg.start();
    await flush();
    srf.last.respond(200, 'OK', { ...ok(60), CSeq: '2 REGISTER' }); // challenged: 1 → 2
    await clock.advance(30_000);
    srf.last.respond(200, 'OK', { ...ok(60), CSeq: '3 REGISTER' }); // not challenged
    await clock.advance(30_000);
    srf.last.respond(200, 'OK', { ...ok(60), CSeq: '5 REGISTER' }); // challenged: 4 → 5
    await clock.advance(30_000);
    expect(srf.sent.map((s) => s.headers['CSeq'])).toEqual([
      '1 REGISTER',
      '3 REGISTER',
      '4 REGISTER',
      '6 REGISTER',
    ]);
    expect(new Set(srf.sent.map((s) => s.headers['call-id'])).size).toBe(1);
  });

  it('re-registers at once with Min-Expires after a 423 and keeps that expiry for refreshes', async () => {
    const { srf, clock, reg } = setup({ expiresS: 60 });
    reg.start();
    await flush();
    srf.last.respond(423, 'Interval Too Brief', { 'Min-Expires': '600' });
    await flush();
    expect(srf.sent).toHaveLength(2);
    expect(srf.last.headers['Expires']).toBe('600');
    expect(srf.last.headers['Contact']).toBe('<sip:1001@localhost>;expires=600');
    expect(reg.state.status).toBe('registering');
    srf.last.respond(200, 'OK', ok(600));
    await flush();
    expect(clock.pending()).toEqual([300_000]);
    await clock.advance(300_000);
    expect(srf.last.headers['Expires']).toBe('600');
  });

  it('treats a 423 without a larger Min-Expires as a failure', async () => {
    const { srf, clock, reg } = setup({ expiresS: 600 });
    reg.start();
    await flush();
    srf.last.respond(423, 'Interval Too Brief', { 'Min-Expires': '300' });
    await flush();
    expect(srf.sent).toHaveLength(1);
    expect(reg.state).toMatchObject({ status: 'failed', lastError: '423 Interval Too Brief' });
    expect(clock.pending()).toEqual([RETRY_BASE_MS]);
  });
});

describe('Registration: failures', () => {
  it('marks a 401 that survives srf’s digest retry as rejected credentials and retries later', async () => {
    const { srf, clock, reg, states } = setup();
    reg.start();
    await flush();
    srf.last.respond(401, 'Unauthorized', { CSeq: '2 REGISTER' });
    await flush();
    expect(reg.state).toEqual({ status: 'failed', lastError: '401 Unauthorized (credentials rejected)' });
    expect(states.map((s) => s.status)).toEqual(['registering', 'failed']);
    expect(clock.pending()).toEqual([RETRY_BASE_MS]);
    await clock.advance(RETRY_BASE_MS);
    expect(srf.sent).toHaveLength(2);
    expect(srf.last.headers['CSeq']).toBe('3 REGISTER');
  });

  it('backs off exponentially up to the cap across 403, 5xx, timeouts and send errors', async () => {
    const { srf, clock, reg } = setup();
    reg.start();
    await flush();
    // undefined: the REGISTER goes unanswered (our own timeout); 'send-error': srf.request rejects.
    const outcomes: (number | undefined | 'send-error')[] = [
      403,
      503,
      undefined,
      500,
      'send-error',
      403,
      403,
      403,
      403,
    ];
    const delays: number[] = [];
    for (const [i, outcome] of outcomes.entries()) {
      if (outcome === undefined) await clock.advance(REGISTER_TIMEOUT_MS);
      else if (outcome !== 'send-error') srf.last.respond(outcome, 'Nope');
      await flush();
      expect(reg.state.status).toBe('failed');
      if (outcome === 'send-error') expect(reg.state.lastError).toBe('request not sent: socket closed');
      const pending = clock.pending();
      expect(pending).toHaveLength(1);
      delays.push(pending[0]!);
      srf.failNext = outcomes[i + 1] === 'send-error' ? new Error('socket closed') : undefined;
      await clock.advance(pending[0]!);
    }
    expect(delays).toEqual([
      5_000,
      10_000,
      20_000,
      40_000,
      80_000,
      160_000,
      RETRY_MAX_MS,
      RETRY_MAX_MS,
      RETRY_MAX_MS,
    ]);
    expect(srf.sent).toHaveLength(outcomes.length); // the send error put nothing on the wire
  });

  it('reports a timeout and ignores the response that arrives after it', async () => {
    const { srf, clock, reg } = setup();
    reg.start();
    await flush();
    const first = srf.last;
    await clock.advance(REGISTER_TIMEOUT_MS);
    expect(reg.state).toMatchObject({
      status: 'failed',
      lastError: `no final response within ${REGISTER_TIMEOUT_MS} ms`,
    });
    first.respond(200, 'OK', ok(120));
    await flush();
    expect(reg.state.status).toBe('failed');
    expect(clock.pending()).toEqual([RETRY_BASE_MS]);
    await clock.advance(RETRY_BASE_MS);
    // the timed-out attempt may have had a digest retry at CSeq 2
    expect(srf.last.headers['CSeq']).toBe('3 REGISTER');
  });

  it('spreads retry delays by the jitter ratio without exceeding the cap', async () => {
    const { srf, clock, reg } = setup();
    clock.randomValue = 0;
    reg.start();
    await flush();
    srf.last.respond(403, 'Forbidden');
    await flush();
    expect(clock.pending()).toEqual([4_000]);
    clock.randomValue = 0.999_999;
    await clock.advance(4_000);
    srf.last.respond(403, 'Forbidden');
    await flush();
    expect(clock.pending()).toEqual([12_000]);
  });

  it('resets the back-off after a success and emits state only on status changes', async () => {
    const { srf, clock, reg, states } = setup();
    reg.start();
    await flush();
    srf.last.respond(503, 'Service Unavailable');
    await clock.advance(RETRY_BASE_MS);
    srf.last.respond(503, 'Service Unavailable');
    await clock.advance(2 * RETRY_BASE_MS);
    srf.last.respond(200, 'OK', ok(20));
    await flush();
    expect(reg.state.lastError).toBeUndefined();
    await clock.advance(10_000); // refresh
    srf.last.respond(200, 'OK', ok(20));
    await clock.advance(10_000); // refresh fails
    srf.last.respond(503, 'Service Unavailable');
    await flush();
    expect(clock.pending()).toEqual([RETRY_BASE_MS]);
    expect(states.map((s) => s.status)).toEqual(['registering', 'failed', 'registered', 'failed']);
  });
});

describe('Registration: stop()', () => {
  it('removes our binding with Expires: 0, clears the refresh timer and ends unregistered', async () => {
    const { srf, clock, reg, states } = setup();
    reg.start();
    await flush();
    srf.last.respond(200, 'OK', { ...ok(120), CSeq: '2 REGISTER' });
    await flush();
    const stopped = reg.stop();
    await flush();
    expect(srf.sent).toHaveLength(2);
    expect(srf.last.headers['Expires']).toBe('0');
    expect(srf.last.headers['Contact']).toBe('<sip:1001@localhost>;expires=0');
    expect(srf.last.headers['CSeq']).toBe('3 REGISTER');
    expect(srf.last.headers['call-id']).toBe(srf.sent[0]!.headers['call-id']);
    srf.last.respond(200, 'OK');
    await stopped;
    expect(reg.state).toEqual({ status: 'unregistered' });
    expect(states.map((s) => s.status)).toEqual(['registering', 'registered', 'unregistered']);
    expect(clock.pending()).toEqual([]);
    await clock.advance(3_600_000);
    expect(srf.sent).toHaveLength(2);
    expect(reg.stop()).toBe(stopped);
    expect(() => reg.start()).toThrow(InvalidStateError);
  });

  it(`gives up on an unanswered unregister after ${UNREGISTER_TIMEOUT_MS} ms`, async () => {
    const { srf, clock, reg } = setup();
    reg.start();
    await flush();
    srf.last.respond(200, 'OK', ok(120));
    await flush();
    let done = false;
    void reg.stop().then(() => (done = true));
    await clock.advance(UNREGISTER_TIMEOUT_MS - 1);
    expect(done).toBe(false);
    await clock.advance(1);
    expect(done).toBe(true);
    expect(reg.state.status).toBe('unregistered');
  });

  it('sends nothing when never started or when the only attempt was refused', async () => {
    const idle = setup();
    await idle.reg.stop();
    expect(idle.srf.sent).toHaveLength(0);

    const refused = setup();
    refused.reg.start();
    await flush();
    refused.srf.last.respond(403, 'Forbidden');
    await flush();
    await refused.reg.stop();
    expect(refused.srf.sent).toHaveLength(1);
    expect(refused.clock.pending()).toEqual([]);
  });

  it('lets a REGISTER in flight finish, then unregisters above its digest retry’s CSeq', async () => {
    const { srf, clock, reg } = setup();
    reg.start();
    await flush();
    const inFlight = srf.last;
    const stopped = reg.stop();
    await flush();
    expect(srf.sent).toHaveLength(1); // not two REGISTERs with one Call-ID at once
    inFlight.respond(200, 'OK', { ...ok(120), CSeq: '2 REGISTER' });
    await flush();
    expect(srf.sent).toHaveLength(2);
    expect(srf.last.headers['Expires']).toBe('0');
    expect(srf.last.headers['CSeq']).toBe('3 REGISTER');
    srf.last.respond(200, 'OK');
    await stopped;
    expect(clock.pending()).toEqual([]); // the 200 to the in-flight REGISTER scheduled no refresh
  });
});

describe('Registration: logs', () => {
  it('never logs the password, whatever happens', async () => {
    const { srf, clock, reg, logLines } = setup();
    reg.start();
    await flush();
    srf.last.respond(401, 'Unauthorized');
    await clock.advance(RETRY_BASE_MS);
    srf.last.respond(423, 'Interval Too Brief', { 'Min-Expires': '900' });
    await flush();
    srf.last.respond(200, 'OK', ok(900));
    await clock.advance(450_000);
    await clock.advance(REGISTER_TIMEOUT_MS);
    const stopped = reg.stop();
    await flush();
    srf.last.respond(200, 'OK');
    await stopped;
    const text = logLines.join('');
    expect(text).toContain('sip registration succeeded');
    expect(text).toContain('sip registration failed');
    expect(text).toContain('credentials rejected');
    expect(text).not.toContain(PASSWORD);
    expect(JSON.stringify(reg.state)).not.toContain(PASSWORD);
  });
});
