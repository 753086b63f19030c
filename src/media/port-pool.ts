import { createSocket, type Socket } from 'node:dgram';
import { lookup, type LookupOneOptions } from 'node:dns';
import { isIP } from 'node:net';
import { PortsExhaustedError } from '../core/errors.js';

/** A bound RTP socket on an even port; its odd neighbour is reserved for RTCP. */
export interface PortLease {
  readonly port: number;
  readonly socket: Socket;
  /** RTCP socket on port + 1 (RFC 3550 §11). */
  readonly rtcpSocket: Socket;
  /** Closes the socket and returns the port pair to the pool. Idempotent. */
  release(): void;
}

export interface PortPoolOptions {
  bindAddress: string;
  min: number;
  max: number;
}

/**
 * Hands out even RTP ports from a fixed range, round-robin (a just-freed port is not reused at once, so a
 * late packet from the last call does not land in the next one). Ports held by other processes are skipped.
 */
export class PortPool {
  readonly #options: PortPoolOptions;
  readonly #inUse = new Set<number>();
  readonly #evenPorts: number[];
  #cursor = 0;

  constructor(options: PortPoolOptions) {
    this.#options = options;
    this.#evenPorts = [];
    const first = options.min % 2 === 0 ? options.min : options.min + 1;
    // The RTCP port (even + 1) must also be inside the range.
    for (let p = first; p + 1 <= options.max; p += 2) this.#evenPorts.push(p);
  }

  get capacity(): number {
    return this.#evenPorts.length;
  }

  get inUse(): number {
    return this.#inUse.size;
  }

  async allocate(): Promise<PortLease> {
    for (let attempt = 0; attempt < this.#evenPorts.length; attempt++) {
      const port = this.#evenPorts[this.#cursor]!;
      this.#cursor = (this.#cursor + 1) % this.#evenPorts.length;
      if (this.#inUse.has(port)) continue;
      this.#inUse.add(port);
      let socket: Socket | undefined;
      try {
        socket = await bindUdp(this.#options.bindAddress, port);
        const rtcpSocket = await bindUdp(this.#options.bindAddress, port + 1);
        return this.#lease(port, socket, rtcpSocket);
      } catch {
        socket?.close();
        this.#inUse.delete(port); // held by someone else: try the next one
      }
    }
    throw new PortsExhaustedError(`no free RTP port in ${this.#options.min}-${this.#options.max}`);
  }

  #lease(port: number, socket: Socket, rtcpSocket: Socket): PortLease {
    let released = false;
    return {
      port,
      socket,
      rtcpSocket,
      release: () => {
        if (released) return;
        released = true;
        for (const s of [socket, rtcpSocket]) {
          try {
            s.close();
          } catch {
            // already closed by an error path; the port is free either way
          }
        }
        this.#inUse.delete(port);
      },
    };
  }
}

function bindUdp(address: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket({ type: isIP(address) === 6 ? 'udp6' : 'udp4', lookup: literalFirstLookup });
    const onError = (error: Error): void => {
      socket.close();
      reject(error);
    };
    socket.once('error', onError);
    socket.bind({ address, port, exclusive: true }, () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

/**
 * dgram resolves the destination of every send() through `lookup`; the default defers even an IP
 * literal to the next tick. RTP destinations come from SDP and latching, i.e. almost always literals:
 * answer those synchronously (one closure and one tick less per packet) and resolve names normally.
 */
function literalFirstLookup(
  hostname: string,
  options: LookupOneOptions | number,
  callback: (error: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  const family = isIP(hostname);
  if (family !== 0) callback(null, hostname, family);
  else lookup(hostname, options as LookupOneOptions, callback);
}
