// JitterBuffer behaviour with synthetic arrival and pull times: ordering, duplicates, late packets,
// loss reporting, wrap-arounds, resyncs, DTX, adaptive target delay and its bounds.
import { describe, expect, it } from 'vitest';
import {
  JITTER_MAX_DELAY_MS,
  JITTER_MIN_DELAY_MS,
  JitterBuffer,
  type JitterBufferOptions,
  type JitterPacket,
} from '../../../src/media/jitter-buffer.js';
import { impairSchedule } from '../../helpers/impair-relay.js';

const FRAME_MS = 20;
const TS_PER_FRAME = 160;
const START_MS = 1_000;
const TRANSIT_MS = 5;

interface StreamOptions {
  seq0?: number;
  ts0?: number;
  ssrc?: number;
  /** Timestamp gaps: frame index → extra frames of silence before it (DTX). */
  dtx?: ReadonlyMap<number, number>;
}

/** `count` packets of one stream; payload bytes 0–1 carry the sequence number so output can be checked. */
function stream(count: number, options: StreamOptions = {}): JitterPacket[] {
  const { seq0 = 1_000, ts0 = 50_000, ssrc = 0x1234, dtx } = options;
  const packets: JitterPacket[] = [];
  let frame = 0;
  for (let i = 0; i < count; i++) {
    const gap = dtx?.get(i) ?? 0;
    frame += gap;
    const seq = (seq0 + i) & 0xffff;
    const payload = new Uint8Array(TS_PER_FRAME).fill(0x55);
    payload[0] = seq >> 8;
    payload[1] = seq & 0xff;
    packets.push({
      seq,
      timestamp: (ts0 + frame * TS_PER_FRAME) >>> 0,
      ssrc,
      marker: i === 0 || gap > 0,
      payload,
    });
    frame++;
  }
  return packets;
}

interface Arrival {
  atMs: number;
  packet: JitterPacket;
}

/** Packets sent in real time (one per 20 ms of their own media time) and delivered after a fixed transit. */
function realTime(packets: readonly JitterPacket[], startMs = START_MS, transitMs = TRANSIT_MS): Arrival[] {
  const ts0 = packets[0]!.timestamp;
  return packets.map((packet) => ({
    atMs: startMs + (((packet.timestamp - ts0) >>> 0) / TS_PER_FRAME) * FRAME_MS + transitMs,
    packet,
  }));
}

interface Pulled {
  atMs: number;
  kind: 'audio' | 'lost' | 'empty';
  seq: number | null;
  /** Sequence number read back from the payload bytes (audio only). */
  payloadSeq: number | null;
  delayMs: number;
  targetDelayMs: number;
}

/** Pushes every arrival due by each pull time (arrivals first), then pulls; `pulls` pulls 20 ms apart. */
function drive(jb: JitterBuffer, arrivals: readonly Arrival[], firstPullMs: number, pulls: number): Pulled[] {
  const sorted = [...arrivals].sort((a, b) => a.atMs - b.atMs);
  const out: Pulled[] = [];
  let next = 0;
  for (let k = 0; k < pulls; k++) {
    const now = firstPullMs + k * FRAME_MS;
    while (next < sorted.length && sorted[next]!.atMs <= now) {
      const { packet, atMs } = sorted[next++]!;
      jb.push(packet, atMs);
      expect(jb.size).toBeLessThanOrEqual(jb.capacity);
    }
    const o = jb.pull(now);
    out.push({
      atMs: now,
      kind: o.kind,
      seq: o.kind === 'empty' ? null : o.seq,
      payloadSeq: o.kind === 'audio' ? (o.payload[0]! << 8) | o.payload[1]! : null,
      delayMs: jb.stats.delayMs,
      targetDelayMs: jb.stats.targetDelayMs,
    });
  }
  return out;
}

const audio = (out: readonly Pulled[]): Pulled[] => out.filter((o) => o.kind === 'audio');
const seqsOf = (out: readonly Pulled[], kind: Pulled['kind']): (number | null)[] =>
  out.filter((o) => o.kind === kind).map((o) => o.seq);

/** Time from each played packet's (first) arrival to the pull that played it (packets in `arrivals` only). */
function addedDelays(out: readonly Pulled[], arrivals: readonly Arrival[]): number[] {
  const first = new Map<number, number>();
  for (const a of arrivals) if (!first.has(a.packet.seq)) first.set(a.packet.seq, a.atMs);
  return audio(out)
    .filter((o) => first.has(o.seq!))
    .map((o) => o.atMs - first.get(o.seq!)!);
}

/** Audio sequence numbers strictly increasing modulo 2^16. */
function expectInOrder(out: readonly Pulled[]): void {
  const played = audio(out);
  for (let i = 1; i < played.length; i++) {
    const step = (played[i]!.seq! - played[i - 1]!.seq! + 0x10000) & 0xffff;
    expect(step, `audio seq ${played[i]!.seq} after ${played[i - 1]!.seq}`).toBeGreaterThan(0);
    expect(step).toBeLessThan(0x8000);
  }
  for (const o of played) expect(o.payloadSeq).toBe(o.seq);
}

function run(
  arrivals: readonly Arrival[],
  pulls: number,
  options: JitterBufferOptions = {},
  phaseMs = 0,
): { jb: JitterBuffer; out: Pulled[] } {
  const jb = new JitterBuffer(options);
  const out = drive(jb, arrivals, START_MS + phaseMs, pulls);
  return { jb, out };
}

describe('JitterBuffer on a clean network', () => {
  it.each([0, 5, 13.7, 19.99])(
    'plays every packet in order and adds at most 20 ms (pull phase %s ms)',
    (phase) => {
      const packets = stream(200);
      const arrivals = realTime(packets);
      const { jb, out } = run(arrivals, 203, {}, phase);
      expectInOrder(out);
      expect(seqsOf(out, 'audio')).toEqual(packets.map((p) => p.seq));
      expect(jb.stats.stretched + jb.stats.late).toBe(0);
      expect(
        out
          .slice(
            0,
            out.findLastIndex((o) => o.kind === 'audio'),
          )
          .some((o) => o.kind === 'lost'),
      ).toBe(false);
      for (const d of addedDelays(out, arrivals)) {
        expect(d).toBeGreaterThan(0);
        expect(d).toBeLessThanOrEqual(JITTER_MIN_DELAY_MS);
      }
      expect(jb.stats.targetDelayMs).toBe(JITTER_MIN_DELAY_MS);
    },
  );

  it("copies the payload: the caller's buffer can be reused right after push()", () => {
    const jb = new JitterBuffer();
    const shared = new Uint8Array(TS_PER_FRAME);
    for (let i = 0; i < 3; i++) {
      shared.fill(0x10 + i);
      jb.push({ seq: i, timestamp: i * TS_PER_FRAME, ssrc: 1, marker: false, payload: shared }, START_MS + i);
    }
    shared.fill(0);
    const first = jb.pull(START_MS + 30);
    expect(first.kind).toBe('audio');
    if (first.kind === 'audio') expect(first.payload.every((b) => b === 0x10)).toBe(true);
  });

  it('reports empty before the first packet and rejects payloads that are not one 20 ms frame', () => {
    const jb = new JitterBuffer();
    expect(jb.pull(0).kind).toBe('empty');
    jb.push({ seq: 1, timestamp: 0, ssrc: 1, marker: false, payload: new Uint8Array(240) }, 1);
    expect(jb.stats.invalid).toBe(1);
    expect(jb.pull(20).kind).toBe('empty');
  });
});

describe('JitterBuffer reordering, duplicates, lateness and loss', () => {
  it('puts packets reordered within the target delay back in order', () => {
    const packets = stream(100);
    const arrivals = realTime(packets).map((a, i) =>
      // every 10th packet arrives 50 ms late, after its two successors
      i % 10 === 4 ? { ...a, atMs: a.atMs + 50 } : a,
    );
    const { jb, out } = run(arrivals, 110, { minDelayMs: 80 });
    expectInOrder(out);
    expect(seqsOf(out, 'audio')).toEqual(packets.map((p) => p.seq));
    expect(jb.stats.late).toBe(0);
  });

  it('drops duplicates, whether they arrive before or after the original was played', () => {
    const packets = stream(100);
    const base = realTime(packets);
    const arrivals = [
      ...base,
      ...base.filter((_, i) => i % 3 === 0).map((a) => ({ ...a, atMs: a.atMs + 2 })),
      ...base.filter((_, i) => i % 7 === 0).map((a) => ({ ...a, atMs: a.atMs + 100 })),
    ];
    const { jb, out } = run(arrivals, 110);
    expectInOrder(out);
    expect(seqsOf(out, 'audio')).toEqual(packets.map((p) => p.seq));
    expect(jb.stats.duplicates).toBe(34 + 15);
    expect(jb.stats.late).toBe(0);
  });

  it('conceals a packet that arrives after its slot, then drops and counts it as late', () => {
    const packets = stream(60);
    const lateSeq = packets[20]!.seq;
    const arrivals = realTime(packets).map((a) =>
      a.packet.seq === lateSeq ? { ...a, atMs: a.atMs + 100 } : a,
    );
    const { jb, out } = run(arrivals, 62, { maxDelayMs: 40 });
    expectInOrder(out);
    expect(seqsOf(out, 'audio')).not.toContain(lateSeq);
    expect(seqsOf(out, 'lost')).toContain(lateSeq);
    expect(jb.stats.late).toBe(1);
  });

  it("reports 'lost' exactly at the missing sequence numbers", () => {
    const packets = stream(100);
    const missing = new Set([10, 30, 31, 50, 51, 52].map((i) => packets[i]!.seq));
    const arrivals = realTime(packets).filter((a) => !missing.has(a.packet.seq));
    const { jb, out } = run(arrivals, 101);
    expectInOrder(out);
    const played = out.filter((o) => o.kind !== 'empty');
    expect(played.map((o) => o.seq)).toEqual(packets.map((p) => p.seq));
    expect(played.filter((o) => o.kind === 'lost').map((o) => o.seq)).toEqual([...missing]);
    expect(jb.stats.lost).toBe(missing.size);
  });
});

describe('JitterBuffer wrap-around', () => {
  it('plays across the 16-bit sequence number wrap (65535 → 0)', () => {
    const packets = stream(40, { seq0: 65_520 });
    const missing = packets[15]!.seq; // 65535, the last one before the wrap
    const arrivals = realTime(packets).filter((a) => a.packet.seq !== missing);
    const { jb, out } = run(arrivals, 41);
    expectInOrder(out);
    expect(audio(out).map((o) => o.seq)).toContain(0);
    expect(seqsOf(out, 'lost')).toEqual([missing]);
    expect(jb.stats.late + jb.stats.resyncs).toBe(0);
    expect(audio(out)).toHaveLength(39);
  });

  it('plays across the 32-bit timestamp wrap', () => {
    const packets = stream(40, { ts0: 2 ** 32 - 10 * TS_PER_FRAME + 37 });
    expect(packets.some((p) => p.timestamp < packets[0]!.timestamp)).toBe(true);
    const arrivals = realTime(packets);
    const { jb, out } = run(arrivals, 41);
    expectInOrder(out);
    expect(seqsOf(out, 'audio')).toEqual(packets.map((p) => p.seq));
    expect(jb.stats.lost + jb.stats.late + jb.stats.resyncs).toBe(0);
  });
});

describe('JitterBuffer resync', () => {
  it('resyncs on an SSRC change without reporting loss, and drops stragglers of the old SSRC', () => {
    const a = stream(50, { ssrc: 0xaaaa, seq0: 100, ts0: 1_000 });
    const b = stream(50, { ssrc: 0xbbbb, seq0: 40_000, ts0: 3_000_000_000 });
    const arrivals = [
      ...realTime(a),
      ...realTime(b, START_MS + 50 * FRAME_MS),
      { atMs: START_MS + 52 * FRAME_MS + 1, packet: a[49]! }, // old stream's straggler
    ];
    const { jb, out } = run(arrivals, 101);
    expect(seqsOf(out, 'audio')).toEqual([...a, ...b].map((p) => p.seq));
    expect(jb.stats.resyncs).toBe(1);
    expect(jb.stats.lost).toBe(0);
    expect(jb.stats.late).toBe(1);
    for (const d of addedDelays(out, arrivals)) expect(d).toBeLessThanOrEqual(JITTER_MIN_DELAY_MS);
  });

  it('resyncs at once on a marker bit with a big sequence/timestamp jump', () => {
    const before = stream(50, { seq0: 7, ts0: 0 });
    const after = stream(50, { seq0: 30_000, ts0: 90_000_000 }); // same SSRC, marker on the first
    const arrivals = [...realTime(before), ...realTime(after, START_MS + 50 * FRAME_MS)];
    const { jb, out } = run(arrivals, 101);
    expect(seqsOf(out, 'audio')).toEqual([...before, ...after].map((p) => p.seq));
    expect(jb.stats.resyncs).toBe(1);
    expect(jb.stats.lost + jb.stats.overflow + jb.stats.late).toBe(0);
  });

  it('without a marker bit, resyncs only when the next packet confirms the jump', () => {
    const before = stream(50, { seq0: 7, ts0: 0 });
    const after = stream(50, { seq0: 30_000, ts0: 90_000_000 }).map((p) => ({ ...p, marker: false }));
    const stray = { ...after[10]!, seq: 12_345, timestamp: 5 }; // a lone corrupt packet mid-stream
    const arrivals = [
      ...realTime(before),
      { atMs: START_MS + 20 * FRAME_MS + 7, packet: stray },
      ...realTime(after, START_MS + 50 * FRAME_MS),
    ];
    const { jb, out } = run(arrivals, 101);
    expect(seqsOf(out, 'audio')).toEqual([...before, ...after.slice(1)].map((p) => p.seq));
    expect(jb.stats.resyncs).toBe(1);
    expect(jb.stats.overflow).toBe(2); // the stray and the first packet of the new timeline
  });
});

describe('JitterBuffer DTX', () => {
  it("reports a timestamp gap without a sequence gap as 'empty', not 'lost', when its end is buffered", () => {
    // 2 frames of DTX after packet 20, a lost packet + 3 frames of DTX after packet 40.
    const packets = stream(60, {
      dtx: new Map([
        [21, 2],
        [42, 3],
      ]),
    });
    const arrivals = realTime(packets).filter((a) => a.packet.seq !== packets[41]!.seq);
    const { out } = run(arrivals, 75, { minDelayMs: 100 });
    expectInOrder(out);
    const started = out.findIndex((o) => o.kind === 'audio');
    const kinds = out
      .slice(started, started + 65)
      .map((o) => o.kind[0])
      .join('');
    expect(kinds).toBe(`${'a'.repeat(21)}ee${'a'.repeat(20)}leee${'a'.repeat(18)}`);
    expect(seqsOf(out.slice(0, started + 65), 'lost')).toEqual([packets[41]!.seq]);
  });

  it('conceals at most 60 ms of an unannounced pause, then plays silence and re-anchors on the next talkspurt', () => {
    const packets = stream(100, { dtx: new Map([[50, 50]]) }); // 1 s of DTX after packet 49
    const arrivals = realTime(packets);
    const { jb, out } = run(arrivals, 151);
    expectInOrder(out);
    expect(seqsOf(out, 'audio')).toEqual(packets.map((p) => p.seq));
    const lost = out.filter((o) => o.kind === 'lost');
    expect(lost.length).toBeLessThanOrEqual(3);
    expect(out.filter((o) => o.kind === 'empty').length).toBeGreaterThanOrEqual(47);
    expect(jb.stats.late).toBe(0);
    for (const d of addedDelays(out, arrivals)) expect(d).toBeLessThanOrEqual(JITTER_MIN_DELAY_MS);
  });
});

describe('JitterBuffer adaptive delay', () => {
  const jitterOnly = { lossRate: 0, jitterMs: 30, duplicateRate: 0, reorderRate: 0 };

  it('grows the target under 30 ms jitter, keeps it within [min, max] and late packets rare', () => {
    const packets = stream(500);
    const arrivals = impairSchedule(packets, jitterOnly, 7, { startMs: START_MS }).arrivals;
    const { jb, out } = run(arrivals, 505, {}, 3);
    expectInOrder(out);
    expect(jb.stats.targetDelayMs).toBeGreaterThanOrEqual(40);
    for (const o of out) {
      expect(o.targetDelayMs).toBeGreaterThanOrEqual(JITTER_MIN_DELAY_MS);
      expect(o.targetDelayMs).toBeLessThanOrEqual(JITTER_MAX_DELAY_MS);
      expect(o.delayMs).toBeLessThanOrEqual(JITTER_MAX_DELAY_MS);
    }
    for (const d of addedDelays(out, arrivals)) expect(d).toBeLessThanOrEqual(JITTER_MAX_DELAY_MS);
    expect(jb.stats.late / packets.length).toBeLessThan(0.02);
  });

  it('shrinks by dropping quiet frames only, while quiet frames keep coming', () => {
    const packets = stream(1_000);
    const jittery = impairSchedule(packets.slice(0, 500), jitterOnly, 5, { startMs: START_MS }).arrivals;
    const calm = realTime(packets.slice(500), START_MS + 500 * FRAME_MS, 0);
    const arrivals = [...jittery, ...calm];
    // Byte 2 marks loudness (bytes 0-1 hold the seq): one quiet frame every 500 ms, the rest speech.
    const isQuietSeq = (seq: number): boolean => seq % 25 === 0;
    for (const p of packets) p.payload[2] = isQuietSeq(p.seq) ? 0 : 1;
    const { jb, out } = run(arrivals, 1_002, { isQuiet: (payload) => payload[2] === 0 });
    expectInOrder(out);
    const played = new Set(seqsOf(out, 'audio'));
    const dropped = packets
      .slice(500)
      .filter((p) => !played.has(p.seq))
      .map((p) => p.seq);
    expect(dropped.length).toBeGreaterThan(0);
    expect(dropped.every(isQuietSeq)).toBe(true);
    expect(jb.stats.targetDelayMs).toBe(JITTER_MIN_DELAY_MS);
  });

  it('still shrinks when no frame is ever quiet (latency stays bounded)', () => {
    const packets = stream(1_000);
    const jittery = impairSchedule(packets.slice(0, 500), jitterOnly, 5, { startMs: START_MS }).arrivals;
    const calm = realTime(packets.slice(500), START_MS + 500 * FRAME_MS, 0);
    const { jb } = run([...jittery, ...calm], 1_002, { isQuiet: () => false });
    expect(jb.stats.discarded).toBeGreaterThan(0);
  });

  it('caps the target and the delay at maxDelayMs under jitter far beyond it', () => {
    const packets = stream(500);
    const wild = { lossRate: 0, jitterMs: 400, duplicateRate: 0, reorderRate: 0 };
    const arrivals = impairSchedule(packets, wild, 11, { startMs: START_MS }).arrivals;
    const { jb, out } = run(arrivals, 520, { maxDelayMs: 100 });
    expectInOrder(out);
    expect(jb.stats.targetDelayMs).toBe(100);
    for (const o of out) expect(o.delayMs).toBeLessThanOrEqual(100);
    for (const d of addedDelays(out, arrivals)) expect(d).toBeLessThanOrEqual(100);
  });

  it('shrinks back to the minimum after the jitter stops', () => {
    const packets = stream(1_000);
    const jittery = impairSchedule(packets.slice(0, 500), jitterOnly, 5, { startMs: START_MS }).arrivals;
    const calm = realTime(packets.slice(500), START_MS + 500 * FRAME_MS, 0);
    const arrivals = [...jittery, ...calm];
    const { jb, out } = run(arrivals, 1_002);
    expectInOrder(out);
    expect(out[480]!.targetDelayMs).toBeGreaterThanOrEqual(40);
    expect(jb.stats.targetDelayMs).toBe(JITTER_MIN_DELAY_MS);
    expect(jb.stats.discarded).toBeGreaterThan(0);
    const tail = addedDelays(out, arrivals).slice(-100); // the last 2 s
    for (const d of tail) expect(d).toBeLessThanOrEqual(JITTER_MIN_DELAY_MS);
  });

  it('keeps memory bounded when 10 000 packets arrive at one instant, then plays on in real time', () => {
    const packets = stream(10_200);
    const flood = packets.slice(0, 10_000);
    const jb = new JitterBuffer();
    for (const p of flood) {
      jb.push(p, START_MS);
      expect(jb.size).toBeLessThanOrEqual(jb.capacity);
    }
    // The newest `capacity` packets are kept, the rest counted as overflow.
    expect(jb.size).toBe(jb.capacity);
    expect(jb.stats.overflow).toBe(10_000 - jb.capacity);
    // The sender carries on in real time after its burst.
    const after = packets.slice(10_000).map((packet, i) => ({ atMs: START_MS + (i + 1) * FRAME_MS, packet }));
    const out = drive(jb, after, START_MS + 1, 200);
    expectInOrder(out);
    expect(audio(out)[0]!.seq).toBeGreaterThanOrEqual(flood[10_000 - jb.capacity]!.seq);
    // Back under the bound within (capacity·20 − max) / 20 pulls: one frame dropped per pull.
    const settled = Math.ceil((jb.capacity * FRAME_MS - JITTER_MAX_DELAY_MS) / FRAME_MS);
    for (const o of out.slice(settled)) expect(o.delayMs).toBeLessThanOrEqual(JITTER_MAX_DELAY_MS);
    for (const d of addedDelays(out.slice(settled), after))
      expect(d).toBeLessThanOrEqual(JITTER_MAX_DELAY_MS);
    // …and then plays the continuing stream with nothing to conceal.
    expect(out.slice(-100).every((o) => o.kind === 'audio')).toBe(true);
    expect(jb.stats.lost + jb.stats.late).toBe(0);
  });

  it('keeps the delay within max when the sender clock runs 2 % fast for a minute', () => {
    const packets = stream(3_000);
    const arrivals = packets.map((packet, i) => ({
      atMs: START_MS + i * FRAME_MS * 0.98 + TRANSIT_MS,
      packet,
    }));
    const { jb, out } = run(arrivals, 2_950);
    expectInOrder(out);
    const delays = addedDelays(out, arrivals);
    expect(Math.max(...delays)).toBeLessThanOrEqual(JITTER_MAX_DELAY_MS);
    expect(jb.size).toBeLessThanOrEqual(Math.ceil(JITTER_MAX_DELAY_MS / FRAME_MS) + 1);
    expect(jb.stats.discarded).toBeGreaterThan(0);
  });
});
