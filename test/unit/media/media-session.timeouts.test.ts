// MediaSession media timeouts (initial and steady, paused on hold) with an injected fake clock, and its
// one teardown path: close() frees the port lease and stops the pacer. Real sockets on 127.0.0.1.
import { createSocket, type Socket } from 'node:dgram';
import { pino } from 'pino';
import { RtpPacket } from 'rtp.js/packets';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Clock } from '../../../src/core/clock.js';
import { MediaClock } from '../../../src/media/media-clock.js';
import { MediaSession, type MediaTimeouts } from '../../../src/media/media-session.js';
import { PortPool } from '../../../src/media/port-pool.js';
import type { NegotiatedMedia } from '../../../src/media/sdp.js';
import { freeEvenUdpPortRange } from '../../helpers/ports.js';

const LOOPBACK = '127.0.0.1';
const START = 10_000;
const TIMEOUTS: MediaTimeouts = { initialMs: 3_000, steadyMs: 1_000 };
const RECEIVE_TIMEOUT_MS = 2_000;

const log = pino({ level: 'silent' });
let now = START;
const clock: Clock = { now: () => now };
let pool: PortPool;
let mediaClock: MediaClock;
let peer: Socket;
const sessions: MediaSession[] = [];

beforeEach(async () => {
  // Only the pacer's setTimeout is faked: the MediaClock never fires on its own, UDP I/O stays real.
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  now = START;
  const min = await freeEvenUdpPortRange(4);
  pool = new PortPool({ bindAddress: LOOPBACK, min, max: min + 3 });
  mediaClock = new MediaClock(clock);
  peer = await new Promise<Socket>((resolve, reject) => {
    const socket = createSocket('udp4');
    socket.once('error', reject);
    socket.bind(0, LOOPBACK, () => resolve(socket));
  });
});

afterEach(async () => {
  for (const session of sessions.splice(0)) session.close();
  await new Promise<void>((resolve) => peer.close(() => resolve()));
  vi.useRealTimers();
});

function media(overrides: Partial<NegotiatedMedia> = {}): NegotiatedMedia {
  return {
    codec: 'PCMU',
    payloadType: 0,
    telephoneEventPayloadType: 101,
    remoteAddress: LOOPBACK,
    remotePort: peer.address().port,
    remoteDirection: 'sendrecv',
    localDirection: 'sendrecv',
    offeredStreams: [{ type: 'audio', protocol: 'RTP/AVP', format: '0' }],
    audioIndex: 0,
    ...overrides,
  };
}

const HOLD: Partial<NegotiatedMedia> = { remoteDirection: 'sendonly', localDirection: 'recvonly' };

async function start(overrides: Partial<NegotiatedMedia> = {}): Promise<MediaSession> {
  const session = new MediaSession(await pool.allocate(), media(overrides), mediaClock, clock, log);
  sessions.push(session);
  return session;
}

/** The caller sends one RTP packet at fake time `at`; resolves once the session has received it. */
async function rtpArrivesAt(session: MediaSession, at: number): Promise<void> {
  now = at;
  const packet = new RtpPacket();
  packet.setPayloadType(0);
  packet.setPayload(new DataView(new ArrayBuffer(160)));
  const view = packet.getView();
  peer.send(new Uint8Array(view.buffer, view.byteOffset, view.byteLength), session.port, LOOPBACK);
  // vi.waitFor polls with real timers (and nudges the fake ones, which is harmless: `now` does not move).
  await vi.waitFor(() => expect(session.endpoint.lastReceivedAt).toBe(at), { timeout: RECEIVE_TIMEOUT_MS });
}

function checkAt(session: MediaSession, at: number, timeouts: MediaTimeouts = TIMEOUTS): string | undefined {
  now = at;
  return session.checkTimeout(timeouts);
}

describe('MediaSession initial media timeout', () => {
  it('fires when no RTP arrives within initialMs of the start', async () => {
    const session = await start();
    expect(checkAt(session, START + 2_999)).toBeUndefined();
    expect(checkAt(session, START + 3_000)).toMatch(/3000 ms/);
  });

  it('uses an explicit `now` argument instead of the clock when given', async () => {
    const session = await start();
    now = START;
    expect(session.checkTimeout(TIMEOUTS, START + 3_000)).toBeDefined();
  });

  it('is disabled by initialMs 0', async () => {
    const session = await start();
    expect(checkAt(session, START + 3_600_000, { initialMs: 0, steadyMs: 1_000 })).toBeUndefined();
  });

  it('no longer applies once RTP has arrived', async () => {
    const session = await start();
    await rtpArrivesAt(session, START + 100);
    expect(checkAt(session, START + 1_099, { initialMs: 3_000, steadyMs: 60_000 })).toBeUndefined();
    expect(checkAt(session, START + 3_500, { initialMs: 3_000, steadyMs: 60_000 })).toBeUndefined();
  });
});

describe('MediaSession steady media timeout', () => {
  it('fires steadyMs after the last RTP packet', async () => {
    const session = await start();
    await rtpArrivesAt(session, START + 500);
    expect(session.endpoint.lastReceivedAt).toBe(START + 500);
    expect(checkAt(session, START + 1_499)).toBeUndefined();
    expect(checkAt(session, START + 1_500)).toMatch(/1000 ms/);
  });

  it('restarts from each new packet', async () => {
    const session = await start();
    await rtpArrivesAt(session, START + 500);
    await rtpArrivesAt(session, START + 1_400);
    expect(checkAt(session, START + 2_399)).toBeUndefined();
    expect(checkAt(session, START + 2_400)).toBeDefined();
  });

  it('is disabled by steadyMs 0', async () => {
    const session = await start();
    await rtpArrivesAt(session, START + 500);
    expect(checkAt(session, START + 3_600_000, { initialMs: 3_000, steadyMs: 0 })).toBeUndefined();
  });
});

describe('MediaSession timeouts while the remote holds the call', () => {
  it('pauses the steady timeout during hold and counts again from the resume time', async () => {
    const session = await start();
    await rtpArrivesAt(session, START + 500);
    now = START + 800;
    session.update(media(HOLD));
    expect(session.remoteOnHold).toBe(true);
    expect(checkAt(session, START + 600_000)).toBeUndefined();

    now = START + 600_000;
    session.update(media());
    expect(session.remoteOnHold).toBe(false);
    expect(checkAt(session, START + 600_999)).toBeUndefined();
    expect(checkAt(session, START + 601_000)).toBeDefined();
  });

  it('pauses the initial timeout for a call that starts on hold, counting from the resume', async () => {
    const session = await start(HOLD);
    expect(checkAt(session, START + 60_000)).toBeUndefined();
    now = START + 60_000;
    session.update(media());
    expect(checkAt(session, START + 62_999)).toBeUndefined();
    expect(checkAt(session, START + 63_000)).toBeDefined();
  });

  it('treats an old-style c=0.0.0.0 hold as hold', async () => {
    const session = await start();
    await rtpArrivesAt(session, START + 500);
    now = START + 600;
    session.update(media({ remoteAddress: '0.0.0.0' }));
    expect(checkAt(session, START + 120_000)).toBeUndefined();
  });

  it('stops sending while we are recvonly, and sends again after resume', async () => {
    const session = await start();
    session.update(media(HOLD));
    for (let t = 0; t < 200; t += 20) session.outbound.onTick(START + t);
    expect(session.endpoint.stats.packetsSent).toBe(0);
    session.update(media());
    session.outbound.onTick(START + 200);
    expect(session.endpoint.stats.packetsSent).toBe(1);
  });

  // Regression: RFC 2543 hold (c=0.0.0.0) must stop sending; Linux delivers 0.0.0.0 datagrams locally.
  it('sends no RTP while the remote address is 0.0.0.0 (RFC 2543 hold)', async () => {
    const session = await start();
    session.update(media({ remoteAddress: '0.0.0.0' }));
    for (let t = 0; t < 200; t += 20) session.outbound.onTick(START + t);
    expect(session.endpoint.stats.packetsSent).toBe(0);
  });
});

describe('MediaSession.close', () => {
  it('releases the port lease so the port can be bound again', async () => {
    const session = await start();
    const { port } = session;
    session.close();
    const socket = createSocket('udp4');
    await expect(
      new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind({ address: LOOPBACK, port, exclusive: true }, () => resolve());
      }),
    ).resolves.toBeUndefined();
    await new Promise<void>((resolve) => socket.close(() => resolve()));
    expect(pool.inUse).toBe(0);
  });

  it('is idempotent and stops the pacer and the timeouts', async () => {
    const session = await start();
    expect(mediaClock.size).toBe(1);
    expect(vi.getTimerCount()).toBe(1);
    session.close();
    expect(() => session.close()).not.toThrow();
    expect(mediaClock.size).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    expect(checkAt(session, START + 3_600_000)).toBeUndefined();
  });
});
