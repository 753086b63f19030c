// REGISTER as an extension through a real drachtio-server to SIPp acting as a digest-auth registrar
// (test/e2e/scenarios/uas-register-auth.xml): challenge, verified credentials, refresh at half the
// granted expiry, unregister on stop(). Registration runs in-process on a drachtio-srf connection.
import dgram from 'node:dgram';
import Srf from 'drachtio-srf';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { describeE2E, startDrachtio, type DrachtioServer } from '../helpers/drachtio.js';
import { killAll } from '../helpers/processes.js';
import { freeUdpPort } from '../helpers/ports.js';
import { describeSippRun, parseSippMessages, runSipp, type SippResult } from '../helpers/sipp.js';
import { Registration, type RegistrationState } from '../../src/sip/registration.js';
import type { SrfInstance, SrfReceivedResponse } from '../../src/sip/srf-types.js';

const USER = '1001';
const PASSWORD = 'e2e-Pa55word';
const DOMAIN = 'pbx.voxgate.test';
/** The scenario grants 4 s, so the refresh is due 2 s after the 200. */
const GRANTED_S = 4;
/** SIPp binds its UDP port within a few hundred ms; REGISTERs sent earlier would meet ICMP unreachable. */
const SIPP_READY_TIMEOUT_MS = 5_000;

function udpPortTaken(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket('udp4');
    socket.once('error', () => {
      socket.close();
      resolve(true);
    });
    socket.bind(port, '127.0.0.1', () => socket.close(() => resolve(false)));
  });
}

async function waitUntil(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

interface Observed {
  /** When Registration called srf.request (top-level REGISTERs only: srf's digest retries bypass it). */
  sentAt: number[];
  finals: { at: number; status: number }[];
}

/** srf.request passed through, watching what Registration sends and which final responses come back. */
function observe(srf: SrfInstance): { handle: Pick<SrfInstance, 'request'>; seen: Observed } {
  const seen: Observed = { sentAt: [], finals: [] };
  const handle: Pick<SrfInstance, 'request'> = {
    request(uri, opts) {
      seen.sentAt.push(Date.now());
      const sent = srf.request(uri, opts);
      sent.then(
        (req) =>
          req.on('response', (res: SrfReceivedResponse) => {
            if (res.status >= 200) seen.finals.push({ at: Date.now(), status: res.status });
          }),
        () => undefined,
      );
      return sent;
    },
  };
  return { handle, seen };
}

describeE2E('REGISTER to a digest-auth registrar through drachtio-server', () => {
  let drachtio: DrachtioServer;
  let srf: SrfInstance & { disconnect(): void };
  let registration: Registration | undefined;
  const log = pino({ level: process.env['E2E_VERBOSE'] === '1' ? 'debug' : 'silent' });

  beforeAll(async () => {
    drachtio = await startDrachtio();
    srf = new Srf() as unknown as SrfInstance;
    await new Promise<void>((resolve, reject) => {
      srf.on('connect', (err) => (err ? reject(err) : resolve()));
      srf.on('error', (err) => log.debug({ err }, 'srf error'));
      srf.connect({ host: drachtio.host, port: drachtio.adminPort, secret: drachtio.secret });
    });
  });
  afterEach(async () => {
    await registration?.stop();
    registration = undefined;
  });
  afterAll(async () => {
    srf?.disconnect();
    await drachtio?.stop();
    await killAll();
  });

  async function startRegistrar(): Promise<{ port: number; run: Promise<SippResult> }> {
    const port = await freeUdpPort();
    const run = runSipp({
      scenario: 'uas-register-auth',
      target: `127.0.0.1:${drachtio.sipPort}`, // SIPp's remote host; as a UAS it answers where Via says
      localPort: port,
      keys: { user: USER, password: PASSWORD },
      timeoutMs: 25_000,
    });
    await waitUntil('SIPp to bind its SIP port', () => udpPortTaken(port), SIPP_READY_TIMEOUT_MS);
    return { port, run };
  }

  function register(
    port: number,
    password: string,
  ): { reg: Registration; seen: Observed; states: RegistrationState[] } {
    const { handle, seen } = observe(srf);
    const reg = new Registration(
      handle,
      {
        registrar: `sip:127.0.0.1:${port}`,
        domain: DOMAIN,
        user: USER,
        password,
        expiresS: 60,
        userAgent: 'voxgate-e2e',
      },
      log,
    );
    const states: RegistrationState[] = [];
    reg.on('state', (s) => states.push(s));
    registration = reg;
    reg.start();
    return { reg, seen, states };
  }

  it('answers the challenge, refreshes at half the granted expiry and unregisters on stop()', async () => {
    const registrar = await startRegistrar();
    const { reg, seen, states } = register(registrar.port, PASSWORD);

    await waitUntil('the refresh to be answered', () => seen.finals.length >= 2, 10_000);
    expect(seen.finals.map((f) => f.status)).toEqual([200, 200]);
    const refreshDelayMs = seen.sentAt[1]! - seen.finals[0]!.at;
    expect(refreshDelayMs).toBeGreaterThan((GRANTED_S * 1000) / 2 - 500);
    expect(refreshDelayMs).toBeLessThan((GRANTED_S * 1000) / 2 + 1_500);
    expect(reg.state.status).toBe('registered');

    await reg.stop();
    const sipp = await registrar.run;
    expect(sipp.code, describeSippRun(sipp)).toBe(0);
    expect(seen.finals.map((f) => f.status)).toEqual([200, 200, 200]);
    expect(states.map((s) => s.status)).toEqual(['registering', 'registered', 'unregistered']);

    const registers = parseSippMessages(sipp.messages).filter(
      (m) => m.direction === 'received' && m.startLine.startsWith('REGISTER '),
    );
    expect(registers.map((m) => m.startLine)).toEqual(Array(6).fill(`REGISTER sip:${DOMAIN} SIP/2.0`));
    const header = (text: string, name: string): string[] =>
      [...text.matchAll(new RegExp(`^${name}:\\s*(.*?)\\r?$`, 'gim'))].map((m) => m[1] ?? '');
    // One Call-ID (and exactly one Call-ID header), CSeq up by one each time, digest retries included.
    expect(new Set(registers.flatMap((m) => header(m.text, 'Call-ID'))).size).toBe(1);
    expect(registers.every((m) => header(m.text, 'Call-ID').length === 1)).toBe(true);
    expect(registers.map((m) => header(m.text, 'CSeq')[0])).toEqual(
      [1, 2, 3, 4, 5, 6].map((n) => `${n} REGISTER`),
    );
    expect(registers.map((m) => header(m.text, 'Authorization').length)).toEqual([0, 1, 0, 1, 0, 1]);
    expect(header(registers[1]!.text, 'Authorization')[0]).toMatch(new RegExp(`username="${USER}"`));
    // drachtio-server wrote its own SIP address into our '@localhost' Contact.
    const contacts = registers.map((m) => header(m.text, 'Contact')[0]);
    const ours = `<sip:${USER}@127.0.0.1:${drachtio.sipPort}>`;
    expect(contacts).toEqual([
      ...Array(4).fill(`${ours};expires=60`),
      `${ours};expires=0`,
      `${ours};expires=0`,
    ]);
    expect(registers.map((m) => header(m.text, 'Expires')[0])).toEqual(['60', '60', '60', '60', '0', '0']);
    expect(header(registers[0]!.text, 'To')[0]).toBe(`<sip:${USER}@${DOMAIN}>`);
  });

  it('reports refused credentials as failed and sends no unregister for a binding it never got', async () => {
    const registrar = await startRegistrar();
    const { reg, seen, states } = register(registrar.port, 'wrong-password');

    await waitUntil('the registration to fail', () => reg.state.status === 'failed', 10_000);
    expect(reg.state.lastError).toBe('403 Forbidden');
    await reg.stop();
    const sipp = await registrar.run;
    // The scenario's verifyauth refused the digest: SIPp sent 403 and counts the call as failed.
    expect(sipp.code, describeSippRun(sipp)).toBe(1);
    const sent = parseSippMessages(sipp.messages).filter((m) => m.direction === 'sent');
    expect(sent.map((m) => m.startLine)).toEqual(['SIP/2.0 401 Unauthorized', 'SIP/2.0 403 Forbidden']);
    expect(seen.sentAt).toHaveLength(1);
    expect(states.map((s) => s.status)).toEqual(['registering', 'failed', 'unregistered']);
  });
});
