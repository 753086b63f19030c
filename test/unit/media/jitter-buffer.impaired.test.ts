// JitterBuffer under issue 3's network profile (5 % loss, 30 ms jitter with reordering, 2 % duplication):
// 60 s through the seeded pure schedule (fast, deterministic), then ~3 s through the real UDP relay on
// 127.0.0.1 with real timers.
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { monotonicClock } from '../../../src/core/clock.js';
import {
  JITTER_MAX_DELAY_MS,
  JITTER_MIN_DELAY_MS,
  JitterBuffer,
  type JitterPacket,
} from '../../../src/media/jitter-buffer.js';
import {
  ISSUE3_PROFILE,
  impairSchedule,
  startImpairRelay,
  type ImpairRelay,
} from '../../helpers/impair-relay.js';

const FRAME_MS = 20;
const TS_PER_FRAME = 160;
const SEQ0 = 65_000; // wraps after 536 packets
const TS0 = 2 ** 32 - 1_000 * TS_PER_FRAME; // wraps after 1 000 packets
const SSRC = 0x0badcafe;
const LOOPBACK = '127.0.0.1';
const RTP_HEADER_BYTES = 12;
/** Drops 9 and duplicates 4 of the first 150 packets. */
const RELAY_SEED = 5;

function packet(i: number): JitterPacket {
  return {
    seq: (SEQ0 + i) & 0xffff,
    timestamp: (TS0 + i * TS_PER_FRAME) >>> 0,
    ssrc: SSRC,
    marker: i === 0,
    payload: new Uint8Array(TS_PER_FRAME).fill(i & 0xff),
  };
}

/** Index of a sequence number in the stream (undoes the 16-bit wrap). */
const indexOf = (seq: number): number => (seq - SEQ0) & 0xffff;

interface Output {
  atMs: number;
  kind: 'audio' | 'lost' | 'empty';
  index: number | null;
}

function expectStrictlyInOrderWithoutDuplicates(outputs: readonly Output[]): number[] {
  const played = outputs.filter((o) => o.kind === 'audio').map((o) => o.index!);
  for (let i = 1; i < played.length; i++) expect(played[i]!).toBeGreaterThan(played[i - 1]!);
  expect(new Set(played).size).toBe(played.length);
  return played;
}

describe('JitterBuffer under 5 % loss, 30 ms jitter, 2 % duplication', () => {
  it.each([1, 7, 2024])(
    '60 s seeded schedule %i: in order, no duplicates, losses concealed, delay in bounds',
    (seed) => {
      const count = 3_000;
      const packets = Array.from({ length: count }, (_, i) => packet(i));
      const schedule = impairSchedule(packets, ISSUE3_PROFILE, seed, { startMs: 10_000 });
      const jb = new JitterBuffer();
      const firstArrival = new Map<number, number>();
      const outputs: Output[] = [];
      let next = 0;
      const pullPhaseMs = 7.3;
      for (let k = 0; k < count + 10; k++) {
        const now = 10_000 + pullPhaseMs + k * FRAME_MS;
        while (next < schedule.arrivals.length && schedule.arrivals[next]!.atMs <= now) {
          const arrival = schedule.arrivals[next++]!;
          if (!firstArrival.has(arrival.index)) firstArrival.set(arrival.index, arrival.atMs);
          jb.push(arrival.packet, arrival.atMs);
          expect(jb.size).toBeLessThanOrEqual(jb.capacity);
        }
        const o = jb.pull(now);
        outputs.push({
          atMs: now,
          kind: o.kind,
          index: o.kind === 'empty' || o.seq === null ? null : indexOf(o.seq),
        });
        expect(jb.stats.targetDelayMs).toBeGreaterThanOrEqual(JITTER_MIN_DELAY_MS);
        expect(jb.stats.targetDelayMs).toBeLessThanOrEqual(JITTER_MAX_DELAY_MS);
      }

      const played = expectStrictlyInOrderWithoutDuplicates(outputs);
      const firstPlayed = played[0]!;
      const lastPlayed = played.at(-1)!;
      const lost = new Set(outputs.filter((o) => o.kind === 'lost' && o.index !== null).map((o) => o.index!));

      // Every packet the network dropped is reported lost (concealed) at its place…
      const droppedInRange = schedule.dropped.filter((i) => i > firstPlayed && i < lastPlayed);
      expect(droppedInRange.length).toBeGreaterThan(100);
      for (const i of droppedInRange) expect(lost.has(i), `dropped packet ${i} reported lost`).toBe(true);
      // …and nothing else is, except packets that came too late.
      const dropped = new Set(schedule.dropped);
      const spurious = [...lost].filter((i) => !dropped.has(i) && i < lastPlayed);
      expect(spurious.length).toBeLessThanOrEqual(jb.stats.late);
      // Every packet in the played range is accounted for: played, concealed, or dropped to shrink.
      const playedSet = new Set(played);
      let unaccounted = 0;
      for (let i = firstPlayed; i <= lastPlayed; i++) if (!playedSet.has(i) && !lost.has(i)) unaccounted++;
      expect(unaccounted).toBe(jb.stats.discarded);

      const delivered = count - schedule.dropped.length;
      const lateRate = jb.stats.late / delivered;
      const added = played.map(
        (i) => outputs.find((o) => o.kind === 'audio' && o.index === i)!.atMs - firstArrival.get(i)!,
      );
      const meanAdded = added.reduce((a, b) => a + b, 0) / added.length;
      const maxAdded = Math.max(...added);
      console.log(
        `[jitter-buffer impaired, seed ${seed}] late-loss ${(lateRate * 100).toFixed(2)} % (${jb.stats.late}/${delivered}), ` +
          `network loss ${schedule.dropped.length}, duplicates dropped ${jb.stats.duplicates}, ` +
          `added delay mean ${meanAdded.toFixed(1)} ms / max ${maxAdded.toFixed(1)} ms, ` +
          `target ${jb.stats.targetDelayMs} ms, RFC 3550 jitter ${jb.stats.jitterMs.toFixed(1)} ms`,
      );
      expect(lateRate).toBeLessThan(0.03);
      expect(jb.stats.duplicates).toBe(schedule.duplicated.length);
      expect(meanAdded).toBeGreaterThanOrEqual(JITTER_MIN_DELAY_MS);
      expect(meanAdded).toBeLessThanOrEqual(JITTER_MAX_DELAY_MS);
      expect(maxAdded).toBeLessThanOrEqual(JITTER_MAX_DELAY_MS);
    },
  );
});

describe('JitterBuffer behind the real UDP impairment relay', () => {
  const sockets: dgram.Socket[] = [];
  const timers: NodeJS.Timeout[] = [];
  let relay: ImpairRelay | undefined;

  afterEach(async () => {
    for (const timer of timers) clearTimeout(timer);
    timers.length = 0;
    await relay?.close();
    relay = undefined;
    await Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    sockets.length = 0;
  });

  /** Calls `tick(k, t0 + k·20 ms)` for k < `ticks`, catching up after a late wake-up; resolves after the last. */
  function paced(t0: number, ticks: number, tick: (k: number, scheduledMs: number) => void): Promise<void> {
    return new Promise((resolve) => {
      let k = 0;
      const step = (): void => {
        const now = monotonicClock.now();
        while (k < ticks && t0 + k * FRAME_MS <= now) {
          tick(k, t0 + k * FRAME_MS);
          k++;
        }
        if (k >= ticks) {
          resolve();
          return;
        }
        timers.push(setTimeout(step, t0 + k * FRAME_MS - now));
      };
      step();
    });
  }

  async function bound(): Promise<dgram.Socket> {
    const socket = dgram.createSocket('udp4');
    sockets.push(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, LOOPBACK, () => resolve());
    });
    return socket;
  }

  it('plays ~3 s of RTP in order and without duplicates over loopback with real timers', async () => {
    const count = 150;
    const receiver = await bound();
    const sender = await bound();
    relay = await startImpairRelay({
      target: { port: receiver.address().port },
      profile: ISSUE3_PROFILE,
      seed: RELAY_SEED,
    });
    const jb = new JitterBuffer();
    const outputs: Output[] = [];
    let received = 0;
    receiver.on('message', (data) => {
      received++;
      jb.push(
        {
          seq: data.readUInt16BE(2),
          timestamp: data.readUInt32BE(4),
          ssrc: data.readUInt32BE(8),
          marker: (data[1]! & 0x80) !== 0,
          payload: data.subarray(RTP_HEADER_BYTES),
        },
        monotonicClock.now(),
      );
    });

    const relayPort = relay.port;
    const t0 = monotonicClock.now();
    const send = (i: number): void => {
      const p = packet(i);
      const datagram = Buffer.alloc(RTP_HEADER_BYTES + TS_PER_FRAME);
      datagram[0] = 0x80;
      datagram[1] = p.marker ? 0x80 : 0;
      datagram.writeUInt16BE(p.seq, 2);
      datagram.writeUInt32BE(p.timestamp, 4);
      datagram.writeUInt32BE(p.ssrc, 8);
      datagram.set(p.payload, RTP_HEADER_BYTES);
      sender.send(datagram, relayPort, LOOPBACK);
    };
    const pull = (scheduled: number): void => {
      const o = jb.pull(scheduled);
      outputs.push({
        atMs: scheduled,
        kind: o.kind,
        index: o.kind === 'empty' || o.seq === null ? null : indexOf(o.seq),
      });
    };
    // Sender and receiver both tick on t0 + k·20 ms (drift-free, like MediaClock); the receiver is
    // 5 ms out of phase and runs 400 ms longer to drain.
    const done = Promise.all([
      paced(t0, count, (k) => send(k)),
      paced(t0 + 5, count + 20, (_, at) => pull(at)),
    ]);
    await done;

    const played = expectStrictlyInOrderWithoutDuplicates(outputs);
    // The relay applied exactly the seeded schedule the pure function computes.
    const expected = impairSchedule(
      Array.from({ length: count }, (_, i) => i),
      ISSUE3_PROFILE,
      RELAY_SEED,
    );
    expect(relay.log.dropped.map(indexOf)).toEqual(expected.dropped);
    expect(relay.log.duplicated.map(indexOf)).toEqual(expected.duplicated);
    expect(received).toBe(relay.log.forwarded.length + relay.log.duplicated.length);
    expect(jb.stats.duplicates).toBe(relay.log.duplicated.length);
    const dropped = new Set(relay.log.dropped.map(indexOf));
    for (const i of played) expect(dropped.has(i)).toBe(false);
    expect(played.length).toBeGreaterThan(count * 0.8);
    console.log(
      `[jitter-buffer relay] sent ${count}, relay dropped ${dropped.size}, duplicated ${relay.log.duplicated.length}, ` +
        `played ${played.length}, lost ${jb.stats.lost}, late ${jb.stats.late}, target ${jb.stats.targetDelayMs} ms`,
    );
  });
});
