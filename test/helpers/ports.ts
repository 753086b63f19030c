// Free loopback ports for e2e tests: bind port 0 (or a candidate), read the port, close.
// There is an unavoidable window between closing and the real user binding the port; callers that
// start several processes should ask for all their ports up front and keep them distinct.
import dgram from 'node:dgram';
import { readFile } from 'node:fs/promises';
import net from 'node:net';

const LOOPBACK = '127.0.0.1';
/** Attempts to find an even-aligned run of free UDP ports before giving up (each attempt is a few binds). */
const MAX_RANGE_ATTEMPTS = 64;
/** Candidate bases for even ranges stay below the Linux ephemeral range (32768+) so the kernel does not hand them out meanwhile. */
const RANGE_MIN_PORT = 20_000;
const RANGE_MAX_PORT = 32_000;

function bindUdp(port: number): Promise<dgram.Socket | undefined> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket({ type: 'udp4', reuseAddr: false });
    socket.once('error', () => {
      socket.close();
      resolve(undefined);
    });
    socket.bind(port, LOOPBACK, () => {
      socket.removeAllListeners('error');
      resolve(socket);
    });
  });
}

function closeUdp(socket: dgram.Socket): Promise<void> {
  return new Promise((resolve) => socket.close(() => resolve()));
}

/** A UDP port on 127.0.0.1 that was free a moment ago. */
export async function freeUdpPort(): Promise<number> {
  const socket = await bindUdp(0);
  if (!socket) throw new Error('freeUdpPort: could not bind an ephemeral UDP port on 127.0.0.1');
  const { port } = socket.address();
  await closeUdp(socket);
  return port;
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, LOOPBACK, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('freeTcpPort: unexpected server address'));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

/**
 * First port of `count` consecutive UDP ports on 127.0.0.1, starting at an even port, that were all
 * bindable a moment ago (e.g. count 4 for SIPp, which binds -mp and -mp+2).
 */
export async function freeEvenUdpPortRange(count: number): Promise<number> {
  if (!Number.isInteger(count) || count < 1 || count > 1000) {
    throw new RangeError(`freeEvenUdpPortRange: count must be an integer in 1..1000, got ${count}`);
  }
  const span = RANGE_MAX_PORT - RANGE_MIN_PORT - count;
  for (let attempt = 0; attempt < MAX_RANGE_ATTEMPTS; attempt++) {
    const base = RANGE_MIN_PORT + 2 * Math.floor((Math.random() * span) / 2);
    const held: dgram.Socket[] = [];
    let ok = true;
    for (let i = 0; i < count; i++) {
      const socket = await bindUdp(base + i);
      if (!socket) {
        ok = false;
        break;
      }
      held.push(socket);
    }
    await Promise.all(held.map(closeUdp));
    if (ok) return base;
  }
  throw new Error(
    `freeEvenUdpPortRange: no free run of ${count} UDP ports found after ${MAX_RANGE_ATTEMPTS} attempts`,
  );
}

/** True when `port` can be bound on 127.0.0.1 right now (i.e. nothing, voxgate included, holds it). */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket('udp4');
    socket.once('error', () => resolve(false));
    socket.bind(port, '127.0.0.1', () => socket.close(() => resolve(true)));
  });
}

/** Kernel tables of bound UDP sockets; the local address column ends in the port in hex. */
const PROC_UDP_TABLES = ['/proc/net/udp', '/proc/net/udp6'];

/**
 * True when some socket (any process, any address) is bound to UDP `port`. Unlike a trial bind it
 * never holds the port itself, so it cannot make a process that is binding the port right now fail.
 */
export async function udpPortBound(port: number): Promise<boolean> {
  const suffix = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const table of PROC_UDP_TABLES) {
    let text: string;
    try {
      text = await readFile(table, 'utf8');
    } catch {
      continue; // no IPv6 table on this kernel
    }
    for (const line of text.split('\n').slice(1)) {
      const local = line.trim().split(/\s+/)[1];
      if (local?.endsWith(suffix)) return true;
    }
  }
  return false;
}
