// PortPool with real UDP binds on 127.0.0.1 in a small range that was free a moment ago.
import { createSocket, type Socket } from 'node:dgram';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PortsExhaustedError } from '../../../src/core/errors.js';
import { PortPool, type PortLease } from '../../../src/media/port-pool.js';
import { freeEvenUdpPortRange } from '../../helpers/ports.js';

const LOOPBACK = '127.0.0.1';
/** 8 ports → 4 even RTP ports, each with its RTCP neighbour inside the range. */
const RANGE_SIZE = 8;
const CAPACITY = RANGE_SIZE / 2;

let min = 0;
let max = 0;
const leases: PortLease[] = [];
const squatters: Socket[] = [];

beforeEach(async () => {
  min = await freeEvenUdpPortRange(RANGE_SIZE);
  max = min + RANGE_SIZE - 1;
});

afterEach(async () => {
  for (const lease of leases.splice(0)) lease.release();
  await Promise.all(squatters.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
});

function pool(): PortPool {
  return new PortPool({ bindAddress: LOOPBACK, min, max });
}

async function allocate(from: PortPool): Promise<PortLease> {
  const lease = await from.allocate();
  leases.push(lease);
  return lease;
}

/** Binds `port` from outside the pool; resolves with the socket, or undefined if the port is taken. */
function tryBind(port: number): Promise<Socket | undefined> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    socket.once('error', () => {
      socket.close();
      resolve(undefined);
    });
    socket.bind({ address: LOOPBACK, port, exclusive: true }, () => {
      socket.removeAllListeners('error');
      squatters.push(socket);
      resolve(socket);
    });
  });
}

describe('PortPool range', () => {
  it.each([
    [10_000, 10_009, 5], // 10000..10008, RTCP 10009
    [10_001, 10_010, 4], // odd min: starts at 10002; 10010 would need 10011
    [10_000, 10_001, 1],
    [10_000, 10_000, 0], // no room for the RTCP neighbour
    [10_010, 10_000, 0],
  ])('min %i, max %i gives capacity %i', (lo, hi, capacity) => {
    expect(new PortPool({ bindAddress: LOOPBACK, min: lo, max: hi }).capacity).toBe(capacity);
  });

  it('hands out only even ports inside the range, each with its RTCP neighbour inside too', async () => {
    const p = new PortPool({ bindAddress: LOOPBACK, min: min + 1, max }); // odd min
    const ports: number[] = [];
    for (let i = 0; i < p.capacity; i++) ports.push((await allocate(p)).port);
    expect(ports).toHaveLength(CAPACITY - 1);
    for (const port of ports) {
      expect(port % 2).toBe(0);
      expect(port).toBeGreaterThanOrEqual(min + 1);
      expect(port + 1).toBeLessThanOrEqual(max);
    }
    expect(new Set(ports).size).toBe(ports.length);
  });
});

describe('PortPool.allocate', () => {
  it('binds a real UDP socket on the leased port', async () => {
    const lease = await allocate(pool());
    expect(lease.socket.address()).toMatchObject({ address: LOOPBACK, port: lease.port });
    expect(await tryBind(lease.port)).toBeUndefined();
  });

  it('gives distinct ports to concurrent allocations', async () => {
    const p = pool();
    const all = await Promise.all(Array.from({ length: CAPACITY }, () => allocate(p)));
    expect(new Set(all.map((l) => l.port)).size).toBe(CAPACITY);
    expect(p.inUse).toBe(CAPACITY);
  });

  it('skips a port held by another socket', async () => {
    expect(await tryBind(min)).toBeDefined();
    const lease = await allocate(pool());
    expect(lease.port).toBe(min + 2);
  });

  it('rejects with PortsExhaustedError when every port is leased', async () => {
    const p = pool();
    for (let i = 0; i < CAPACITY; i++) await allocate(p);
    await expect(p.allocate()).rejects.toBeInstanceOf(PortsExhaustedError);
  });

  it('rejects with PortsExhaustedError when every port is held by someone else', async () => {
    for (let port = min; port < max; port += 2) expect(await tryBind(port)).toBeDefined();
    const p = pool();
    await expect(p.allocate()).rejects.toBeInstanceOf(PortsExhaustedError);
    expect(p.inUse).toBe(0);
  });
});

describe('PortPool release', () => {
  it('closes the socket so the port can be bound again', async () => {
    const p = pool();
    const lease = await allocate(p);
    lease.release();
    expect(p.inUse).toBe(0);
    expect(await tryBind(lease.port)).toBeDefined();
  });

  it('is idempotent: a second release() neither throws nor frees another lease', async () => {
    const p = pool();
    const a = await allocate(p);
    await allocate(p);
    a.release();
    expect(() => a.release()).not.toThrow();
    expect(p.inUse).toBe(1);
  });

  it('lets a released port be leased again once the pool comes round to it', async () => {
    const p = pool();
    const all: PortLease[] = [];
    for (let i = 0; i < CAPACITY; i++) all.push(await allocate(p));
    all[0]!.release();
    const again = await allocate(p);
    expect(again.port).toBe(all[0]!.port);
  });

  it('does not reuse a just-released port while others are free (round-robin)', async () => {
    const p = pool();
    const order: number[] = [];
    for (let i = 0; i < CAPACITY + 1; i++) {
      const lease = await allocate(p);
      order.push(lease.port);
      lease.release();
    }
    expect(order).toEqual([min, min + 2, min + 4, min + 6, min]);
  });
});
