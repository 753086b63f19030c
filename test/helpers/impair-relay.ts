// Network impairment for media tests: a seeded schedule of loss, jitter (which reorders naturally),
// duplication and explicit reordering. `impairSchedule()` is the pure version for fast unit tests;
// `startImpairRelay()` applies the same decisions to real UDP datagrams on 127.0.0.1.
import dgram from 'node:dgram';

const LOOPBACK = '127.0.0.1';
/** RTP fixed header length; shorter datagrams are forwarded without a sequence number in the log. */
const RTP_HEADER_BYTES = 12;

export interface ImpairProfile {
  /** Probability that a packet is dropped. */
  lossRate: number;
  /** Extra delay added to each packet: 0..jitterMs (so packets overtake each other). */
  jitterMs: number;
  /** 'uniform' on [0, jitterMs] (default) or 'normal' (mean jitterMs/2, sd jitterMs/4, clipped to [0, jitterMs]). */
  jitterDistribution?: 'uniform' | 'normal';
  /** Probability that a packet is sent twice (the copy gets its own delay). */
  duplicateRate: number;
  /** Probability that a packet is held back by `reorderDelayMs` on top of its jitter. */
  reorderRate: number;
  /** Hold-back of an explicitly reordered packet (default 40 ms: two 20 ms frames). */
  reorderDelayMs?: number;
  /** Fixed one-way delay added to every packet (default 0). */
  baseDelayMs?: number;
}

/**
 * Issue 3's profile: 5 % loss, 30 ms jitter with reordering, 2 % duplication. The reordering comes from
 * the jitter itself (packets 20 ms apart, delays spread over 30 ms), so no explicit hold-backs.
 */
export const ISSUE3_PROFILE: ImpairProfile = {
  lossRate: 0.05,
  jitterMs: 30,
  duplicateRate: 0.02,
  reorderRate: 0,
};

const DEFAULT_REORDER_DELAY_MS = 40;

/** mulberry32: tiny, fast, good enough for test schedules; same seed → same sequence. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What happens to one packet: no delays = dropped; two delays = duplicated. */
export interface ImpairDecision {
  delaysMs: number[];
  reordered: boolean;
}

/**
 * Draws the fate of the next packet. A fixed number of draws per packet, so the schedule of packet n
 * does not depend on what happened to earlier ones.
 */
export function decideImpairment(random: () => number, profile: ImpairProfile): ImpairDecision {
  const lossDraw = random();
  const dupDraw = random();
  const reorderDraw = random();
  const jitter1 = jitterDelay(random, profile);
  const jitter2 = jitterDelay(random, profile);
  const base = profile.baseDelayMs ?? 0;
  const reordered = reorderDraw < profile.reorderRate;
  const hold = reordered ? (profile.reorderDelayMs ?? DEFAULT_REORDER_DELAY_MS) : 0;
  if (lossDraw < profile.lossRate) return { delaysMs: [], reordered: false };
  const delaysMs = [base + jitter1 + hold];
  if (dupDraw < profile.duplicateRate) delaysMs.push(base + jitter2);
  return { delaysMs, reordered };
}

function jitterDelay(random: () => number, profile: ImpairProfile): number {
  const u1 = random();
  const u2 = random();
  if (profile.jitterDistribution === 'normal') {
    // Box–Muller; both draws are always taken so the stream stays aligned.
    const z = Math.sqrt(-2 * Math.log(Math.max(u1, Number.MIN_VALUE))) * Math.cos(2 * Math.PI * u2);
    return Math.min(profile.jitterMs, Math.max(0, profile.jitterMs / 2 + (z * profile.jitterMs) / 4));
  }
  return u1 * profile.jitterMs;
}

export interface ImpairedArrival<T> {
  atMs: number;
  packet: T;
  /** Index of the packet in the input list. */
  index: number;
  /** True for the second copy of a duplicated packet. */
  duplicate: boolean;
}

export interface ImpairedSchedule<T> {
  /** Arrivals in time order (ties keep send order). */
  arrivals: ImpairedArrival<T>[];
  /** Indices of dropped packets. */
  dropped: number[];
  /** Indices of duplicated packets. */
  duplicated: number[];
  /** Indices of packets held back explicitly. */
  reordered: number[];
}

/**
 * Deterministic impaired arrival list: packet i is sent at `startMs + i·intervalMs` and arrives after
 * the delays `decideImpairment` draws from a mulberry32 stream seeded with `seed`.
 */
export function impairSchedule<T>(
  packets: readonly T[],
  profile: ImpairProfile,
  seed: number,
  options: { intervalMs?: number; startMs?: number } = {},
): ImpairedSchedule<T> {
  const interval = options.intervalMs ?? 20;
  const start = options.startMs ?? 0;
  const random = mulberry32(seed);
  const arrivals: ImpairedArrival<T>[] = [];
  const dropped: number[] = [];
  const duplicated: number[] = [];
  const reordered: number[] = [];
  packets.forEach((packet, index) => {
    const { delaysMs, reordered: held } = decideImpairment(random, profile);
    if (delaysMs.length === 0) dropped.push(index);
    if (delaysMs.length > 1) duplicated.push(index);
    if (held) reordered.push(index);
    delaysMs.forEach((delay, copy) => {
      arrivals.push({ atMs: start + index * interval + delay, packet, index, duplicate: copy > 0 });
    });
  });
  arrivals.sort((a, b) => a.atMs - b.atMs || a.index - b.index);
  return { arrivals, dropped, duplicated, reordered };
}

export interface ImpairRelayOptions {
  /** Where datagrams received from side A go. */
  target: { port: number; host?: string };
  profile: ImpairProfile;
  seed: number;
  /** Also forward datagrams from the target back to the last side-A sender (default false). */
  bidirectional?: boolean;
  /** Impairment of the target → A direction (default `profile`), e.g. a clean return path. */
  reverseProfile?: ImpairProfile;
  /** Port to listen on (default 0: any free port). */
  port?: number;
}

/** What the relay did, per direction; sequence numbers are read from RTP headers (-1 if not RTP). */
export interface ImpairRelayLog {
  forwarded: number[];
  dropped: number[];
  duplicated: number[];
  reordered: number[];
}

export interface ImpairRelay {
  /** Side A sends here. */
  readonly port: number;
  /** A → target. */
  readonly log: ImpairRelayLog;
  /** target → A (bidirectional only). */
  readonly reverseLog: ImpairRelayLog;
  /** Cancels pending deliveries and closes the socket. Idempotent. */
  close(): Promise<void>;
}

function rtpSeq(datagram: Buffer): number {
  if (datagram.length < RTP_HEADER_BYTES || datagram[0]! >> 6 !== 2) return -1;
  return datagram.readUInt16BE(2);
}

const emptyLog = (): ImpairRelayLog => ({ forwarded: [], dropped: [], duplicated: [], reordered: [] });

/**
 * A UDP relay on 127.0.0.1: datagrams from side A are forwarded to `target` through the seeded
 * impairment schedule (one PRNG stream per direction); with `bidirectional`, datagrams from the target
 * go back to the last side-A address the same way.
 */
export async function startImpairRelay(options: ImpairRelayOptions): Promise<ImpairRelay> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(options.port ?? 0, LOOPBACK, () => {
      socket.removeListener('error', reject);
      resolve();
    });
  });
  const targetHost = options.target.host ?? LOOPBACK;
  const targetPort = options.target.port;
  const forwardRandom = mulberry32(options.seed);
  const reverseRandom = mulberry32(options.seed ^ 0x5bd1e995);
  const log = emptyLog();
  const reverseLog = emptyLog();
  const timers = new Set<NodeJS.Timeout>();
  let sideA: { address: string; port: number } | undefined;
  let closed = false;

  const deliver = (data: Buffer, port: number, host: string, delayMs: number): void => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (!closed) socket.send(data, port, host);
    }, delayMs);
    timers.add(timer);
  };

  socket.on('error', () => {
    // A send to a closed peer port (ICMP unreachable) must not crash the test process.
  });
  socket.on('message', (data, rinfo) => {
    if (closed) return;
    const fromTarget = rinfo.port === targetPort && rinfo.address === targetHost;
    if (fromTarget && !options.bidirectional) return;
    if (!fromTarget) sideA = { address: rinfo.address, port: rinfo.port };
    const destination = fromTarget ? sideA : { address: targetHost, port: targetPort };
    if (!destination) return;
    const decision = fromTarget
      ? decideImpairment(reverseRandom, options.reverseProfile ?? options.profile)
      : decideImpairment(forwardRandom, options.profile);
    const record = fromTarget ? reverseLog : log;
    const seq = rtpSeq(data);
    if (decision.delaysMs.length === 0) {
      record.dropped.push(seq);
      return;
    }
    record.forwarded.push(seq);
    if (decision.delaysMs.length > 1) record.duplicated.push(seq);
    if (decision.reordered) record.reordered.push(seq);
    const copy = Buffer.from(data);
    for (const delay of decision.delaysMs) deliver(copy, destination.port, destination.address, delay);
  });

  return {
    port: socket.address().port,
    log,
    reverseLog,
    close: async () => {
      if (closed) return;
      closed = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      await new Promise<void>((resolve) => socket.close(() => resolve()));
    },
  };
}
