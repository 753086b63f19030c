import { FRAME_MS, SAMPLES_PER_FRAME } from '../core/audio.js';

// Adaptive inbound jitter buffer for 20 ms G.711 packets. Pure logic: no sockets, no timers, no clock —
// every call carries its own time, so tests drive it with synthetic arrival and pull times.
//
// Design (see the class comment for the behaviour at the edges):
// - Frames live in a fixed ring of slots keyed by RTP timestamp (slot = 20 ms of media time), so DTX
//   gaps are simply empty slots and reordering is free; the ring size is the capacity bound.
// - Relative delay of each packet, r = arrival − slot·20 ms, is kept for the last 2 s. The fastest
//   packets define d_min; the playout delay is a = (pull time − slot·20 ms) − d_min, i.e. how long the
//   earliest packets wait. The target delay D covers the 95th percentile of r − d_min plus one frame
//   (the pull grid is 20 ms coarse): D = clamp(min, q95(r) − d_min + 20 ms, max) (WebRTC NetEq's
//   quantile approach, without time-stretching).
// - Playout starts once a > D − 20 ms, so a lands in (D − 20, D]. While playing: a ≤ D − 20 → grow by
//   one concealed frame (at once: late packets also raise D at once); a > D for a whole shrink
//   interval → drop one received frame (at most one per interval); a > max → drop one frame per pull.
// - During silence (DTX, or a loss burst longer than the concealment can bridge) the buffer re-anchors
//   on the next talkspurt at the current target, which is where shrinking is free.

/** One frame: on a clean network the buffer adds at most 20 ms, the least a 20 ms pull grid allows. */
export const JITTER_MIN_DELAY_MS = FRAME_MS;
/** Hard ceiling: beyond ~120 ms the AI's turn-taking and barge-in feel laggy; more jitter costs loss, not latency. */
export const JITTER_MAX_DELAY_MS = 120;
/** Fraction of packets the target delay is sized for (NetEq's default quantile); the rest are concealed. */
export const JITTER_DELAY_QUANTILE = 0.95;
/** Delay history: 100 packets = 2 s of 20 ms frames (NetEq's max_history_ms), long enough to see a jitter pattern. */
export const JITTER_HISTORY_PACKETS = 100;
/** At most one received 20 ms frame is dropped per second to shrink the delay: negligible for speech-to-text. */
export const JITTER_SHRINK_INTERVAL_MS = 1_000;
/** Ring slots beyond the max delay, for packets that arrive early (sender bursts): capacity = max + 200 ms. */
export const JITTER_CAPACITY_HEADROOM_MS = 200;

/** Target recomputed every 10 packets (200 ms): "adapt slowly"; a late packet recomputes at once. */
const RECOMPUTE_EVERY_PACKETS = 10;
/** The target only falls when the estimate is this much lower, so ±1 ms quantile noise causes no churn. */
const TARGET_DECREASE_HYSTERESIS_MS = 10;
/** Missing frames with nothing buffered behind them are reported lost for 60 ms (PLC fades to silence by then), then empty. */
const MAX_UNDERFLOW_CONCEAL_FRAMES = 3;
/** RFC 3550 A.1: a forward sequence jump beyond this is a new timeline, not loss. */
const MAX_DROPOUT = 3_000;
/** RFC 3550 A.1: a backward sequence jump beyond this is a new timeline, not reordering. */
const MAX_MISORDER = 100;
/** 1 s of consecutive late packets means the sender's timestamps moved back: resync rather than drop forever. */
const MAX_CONSECUTIVE_LATE = 50;
/** Comparisons of millisecond sums tolerate float noise. */
const EPSILON_MS = 1e-6;

const EMPTY = 0;
const PRESENT = 1;
const CONSUMED = 2;

/** The RTP fields the buffer needs. `payload` is copied: the caller may reuse its buffer at once. */
export interface JitterPacket {
  readonly seq: number;
  readonly timestamp: number;
  readonly ssrc: number;
  readonly marker: boolean;
  readonly payload: Uint8Array;
}

/** A received frame. `payload` is a view of a pooled slot: valid until the next `push()` or `pull()`. */
export interface JitterAudio {
  readonly kind: 'audio';
  readonly payload: Uint8Array;
  readonly seq: number;
  readonly timestamp: number;
}

/**
 * A frame to conceal (PLC). `seq` is the missing packet's sequence number, or null when no packet is
 * missing and the frame is inserted to grow the delay.
 */
export interface JitterLost {
  readonly kind: 'lost';
  readonly seq: number | null;
}

/** Nothing to play and nothing to conceal: not started yet, or silence (DTX). Play silence. */
export interface JitterEmpty {
  readonly kind: 'empty';
}

/** The result objects are reused: read them before the next `pull()`. */
export type JitterOutput = JitterAudio | JitterLost | JitterEmpty;

export interface JitterBufferStats {
  /** Packets pushed, including duplicates, late and invalid ones. */
  received: number;
  /** Frames handed out as audio. */
  played: number;
  /** Frames reported lost because their packet was missing (the caller conceals them). */
  lost: number;
  /** Frames reported lost to grow the delay (no packet missing; concealed too). */
  stretched: number;
  /** Packets that arrived after their slot had been played or concealed, or too far behind it. */
  late: number;
  duplicates: number;
  /** New timeline: SSRC change, marker with a big jump, or a confirmed jump. */
  resyncs: number;
  /** Packets (or buffered frames) dropped because they did not fit in the capacity. */
  overflow: number;
  /** Buffered frames dropped to shrink the delay. */
  discarded: number;
  /** Buffered frames dropped by a resync. */
  flushed: number;
  /** Packets whose payload is not one 20 ms G.711 frame (re-framing other ptimes is a separate stage). */
  invalid: number;
  /** Current target delay. */
  targetDelayMs: number;
  /** Playout delay of the earliest packets at the last pull (see the module comment). */
  delayMs: number;
  /** RFC 3550 interarrival jitter estimate. */
  jitterMs: number;
}

/** Without a quiet frame to drop, shrink anyway after this long over target (latency still matters). */
export const SHRINK_FORCE_AFTER_MS = 3_000;

export interface JitterBufferOptions {
  /** Tells whether a frame is quiet enough to drop unnoticed when shrinking (default: any frame is). */
  isQuiet?: (payload: Uint8Array) => boolean;
  /** Lower bound of the target delay; at least one frame (default JITTER_MIN_DELAY_MS). */
  minDelayMs?: number;
  /** Upper bound of the target delay and of the playout delay (default JITTER_MAX_DELAY_MS). */
  maxDelayMs?: number;
  delayQuantile?: number;
  historyPackets?: number;
  shrinkIntervalMs?: number;
  capacityHeadroomMs?: number;
}

type State = 'idle' | 'prefetch' | 'playing' | 'waiting';

interface MutableAudio {
  kind: 'audio';
  payload: Uint8Array;
  seq: number;
  timestamp: number;
}

/**
 * Adaptive jitter buffer: `push()` packets as they arrive, `pull()` once per 20 ms on the caller's
 * clock. Reorders, drops duplicates and late packets, reports losses for concealment, handles 16-bit
 * sequence and 32-bit timestamp wrap, SSRC changes, marker-bit resync and DTX gaps. Memory is fixed at
 * construction; nothing is allocated per packet.
 *
 * Edges:
 * - A gap whose end is buffered is split by sequence numbers: missing packets are 'lost', the rest of
 *   the timestamp gap (DTX) is 'empty'. A gap with nothing buffered behind it is 'lost' for 60 ms, then
 *   'empty' (a pause and a loss burst look the same until the next packet arrives).
 * - A packet out of the window (beyond the capacity, or far behind) or with a sequence jump beyond RFC
 *   3550's limits resyncs at once if its marker bit is set; otherwise only when the next packet
 *   confirms the new timeline (its successor). A packet just beyond the capacity that continues the
 *   stream pushes the oldest frames out instead (sender burst).
 */
export class JitterBuffer {
  readonly stats: JitterBufferStats;
  readonly #minDelay: number;
  readonly #maxDelay: number;
  readonly #quantile: number;
  readonly #shrinkInterval: number;
  readonly #isQuiet: (payload: Uint8Array) => boolean;
  readonly #capacity: number;

  // Ring of slots.
  readonly #slotOf: Float64Array;
  readonly #seqOf: Float64Array;
  readonly #tsOf: Float64Array;
  readonly #state: Uint8Array;
  readonly #payloads: Uint8Array[];
  #size = 0;
  /** Highest slot ever inserted in this timeline (bounds the scan for the next buffered frame). */
  #highSlot = 0;

  // Timeline (one per SSRC / resync).
  #phase: State = 'idle';
  #ssrc = 0;
  #previousSsrc: number | undefined;
  /** When the SSRC last changed: packets of the previous SSRC are stragglers for one capacity span. */
  #switchedAt = Number.NEGATIVE_INFINITY;
  #maxExtSeq = 0;
  #maxTs32 = 0;
  #maxExtTs = 0;
  #maxSlot = 0;
  #baseExtTs = 0;
  #candidateSeq = -1;
  #candidateSsrc = -1;
  /** playing/waiting: next slot to play. */
  #playSlot = 0;
  /** prefetch: earliest buffered slot, where playout will start. */
  #anchor = 0;
  /** prefetch: slots below this have passed (after a silence); -Infinity on a new timeline. */
  #floor = Number.NEGATIVE_INFINITY;
  #prevSeq = Number.NaN;
  #prevSlot = Number.NaN;
  #underflowRun = 0;
  #consecutiveLate = 0;
  #overTargetSince = Number.NaN;
  #lastShrinkAt = Number.NEGATIVE_INFINITY;

  // Delay estimator.
  readonly #rel: Float64Array;
  readonly #scratch: Float64Array;
  #relCount = 0;
  #relNext = 0;
  #dMin = Number.POSITIVE_INFINITY;
  #target: number;
  #sinceRecompute = 0;
  #jitter = 0;
  #lastTransit = Number.NaN;

  readonly #audioOut: MutableAudio;
  readonly #lostOut: { kind: 'lost'; seq: number | null } = { kind: 'lost', seq: null };
  readonly #emptyOut: JitterEmpty = { kind: 'empty' };

  constructor(options: JitterBufferOptions = {}) {
    this.#isQuiet = options.isQuiet ?? (() => true);
    const minDelay = options.minDelayMs ?? JITTER_MIN_DELAY_MS;
    const maxDelay = options.maxDelayMs ?? JITTER_MAX_DELAY_MS;
    const quantile = options.delayQuantile ?? JITTER_DELAY_QUANTILE;
    const history = options.historyPackets ?? JITTER_HISTORY_PACKETS;
    const shrinkInterval = options.shrinkIntervalMs ?? JITTER_SHRINK_INTERVAL_MS;
    const headroom = options.capacityHeadroomMs ?? JITTER_CAPACITY_HEADROOM_MS;
    if (!(minDelay >= FRAME_MS)) throw new RangeError(`JitterBuffer: minDelayMs must be ≥ ${FRAME_MS}`);
    if (!(maxDelay >= minDelay)) throw new RangeError('JitterBuffer: maxDelayMs must be ≥ minDelayMs');
    if (!(quantile > 0 && quantile <= 1))
      throw new RangeError('JitterBuffer: delayQuantile must be in (0, 1]');
    if (!Number.isInteger(history) || history < 1)
      throw new RangeError('JitterBuffer: historyPackets must be ≥ 1');
    if (!(shrinkInterval >= 0)) throw new RangeError('JitterBuffer: shrinkIntervalMs must be ≥ 0');
    if (!(headroom >= 0)) throw new RangeError('JitterBuffer: capacityHeadroomMs must be ≥ 0');
    this.#minDelay = minDelay;
    this.#maxDelay = maxDelay;
    this.#quantile = quantile;
    this.#shrinkInterval = shrinkInterval;
    this.#capacity = Math.ceil((maxDelay + headroom) / FRAME_MS) + 1;
    this.#target = minDelay;

    const c = this.#capacity;
    this.#slotOf = new Float64Array(c).fill(Number.NaN);
    this.#seqOf = new Float64Array(c);
    this.#tsOf = new Float64Array(c);
    this.#state = new Uint8Array(c);
    const pool = new ArrayBuffer(c * SAMPLES_PER_FRAME);
    this.#payloads = Array.from(
      { length: c },
      (_, i) => new Uint8Array(pool, i * SAMPLES_PER_FRAME, SAMPLES_PER_FRAME),
    );
    this.#rel = new Float64Array(history);
    this.#scratch = new Float64Array(history);
    this.#audioOut = { kind: 'audio', payload: this.#payloads[0]!, seq: 0, timestamp: 0 };
    this.stats = {
      received: 0,
      played: 0,
      lost: 0,
      stretched: 0,
      late: 0,
      duplicates: 0,
      resyncs: 0,
      overflow: 0,
      discarded: 0,
      flushed: 0,
      invalid: 0,
      targetDelayMs: minDelay,
      delayMs: 0,
      jitterMs: 0,
    };
  }

  /** Number of slots (20 ms frames) the buffer can hold. */
  get capacity(): number {
    return this.#capacity;
  }

  /** Frames currently buffered. */
  get size(): number {
    return this.#size;
  }

  /** Takes one packet that arrived at `arrivalMs` (monotonic ms, same clock as `pull`). */
  push(packet: JitterPacket, arrivalMs: number): void {
    this.stats.received++;
    if (packet.payload.length !== SAMPLES_PER_FRAME) {
      this.stats.invalid++;
      return;
    }
    if (this.#phase === 'idle') {
      this.#startTimeline(packet, arrivalMs);
      return;
    }
    if (packet.ssrc !== this.#ssrc) {
      if (packet.ssrc === this.#previousSsrc && arrivalMs - this.#switchedAt < this.#capacity * FRAME_MS) {
        this.stats.late++; // a straggler of the stream we just switched away from
      } else {
        this.#resync(packet, arrivalMs);
      }
      return;
    }

    let seqDelta = (packet.seq - (this.#maxExtSeq & 0xffff)) & 0xffff;
    if (seqDelta >= 0x8000) seqDelta -= 0x10000;
    const extSeq = this.#maxExtSeq + seqDelta;
    const extTs = this.#maxExtTs + ((packet.timestamp - this.#maxTs32) | 0);
    const slot = Math.round((extTs - this.#baseExtTs) / SAMPLES_PER_FRAME);
    const c = this.#capacity;
    const windowStart = this.#phase === 'prefetch' ? this.#anchor : this.#playSlot;

    if (seqDelta > MAX_DROPOUT || seqDelta < -MAX_MISORDER) {
      this.#discontinuity(packet, arrivalMs, seqDelta > 0);
    } else if (slot >= windowStart + c) {
      if (!packet.marker && seqDelta > 0 && slot - this.#maxSlot <= c) {
        this.#slideTo(slot - c + 1);
        this.#accept(packet, arrivalMs, extSeq, extTs, slot);
      } else {
        this.#discontinuity(packet, arrivalMs, true);
      }
    } else if (slot < windowStart - c) {
      this.#discontinuity(packet, arrivalMs, false);
    } else {
      this.#accept(packet, arrivalMs, extSeq, extTs, slot);
    }
  }

  /**
   * The frame for the next 20 ms, called once per 20 ms with the caller's (scheduled) time. The
   * returned object is reused by the next call.
   */
  pull(nowMs: number): JitterOutput {
    switch (this.#phase) {
      case 'idle':
        return this.#emptyOut;
      case 'waiting':
        this.#playSlot++;
        return this.#emptyOut;
      case 'prefetch': {
        const delay = nowMs - this.#anchor * FRAME_MS - this.#dMin;
        if (delay <= this.#target - FRAME_MS + EPSILON_MS) {
          if (this.#floor < this.#anchor) this.#floor++;
          return this.#emptyOut;
        }
        this.#phase = 'playing';
        this.#playSlot = this.#anchor;
        this.#overTargetSince = Number.NaN;
        return this.#play(nowMs);
      }
      case 'playing':
        return this.#play(nowMs);
    }
  }

  /** Forgets everything buffered and learned (the counters stay). */
  reset(): void {
    this.#flush();
    this.#phase = 'idle';
    this.#previousSsrc = undefined;
    this.#clearEstimator();
    this.#target = this.#minDelay;
    this.#jitter = 0;
    this.stats.targetDelayMs = this.#target;
    this.stats.jitterMs = 0;
    this.stats.delayMs = 0;
  }

  #play(nowMs: number): JitterOutput {
    const c = this.#capacity;
    let delay = nowMs - this.#playSlot * FRAME_MS - this.#dMin;
    if (delay > this.#maxDelay + EPSILON_MS) {
      // Over the hard bound (e.g. the network got faster, or a sender burst): one frame per pull.
      this.#consume(this.#playSlot, 'discarded');
      this.#playSlot++;
      delay -= FRAME_MS;
      this.#overTargetSince = Number.NaN;
    } else if (delay > this.#target + EPSILON_MS) {
      // Shrink by dropping a quiet frame when one comes (a dropped speech frame is an audible click);
      // past SHRINK_FORCE_AFTER_MS over target, any frame will do.
      if (Number.isNaN(this.#overTargetSince)) this.#overTargetSince = nowMs;
      const overFor = nowMs - this.#overTargetSince;
      if (
        overFor >= this.#shrinkInterval &&
        nowMs - this.#lastShrinkAt >= this.#shrinkInterval &&
        this.#isPresent(this.#playSlot) &&
        this.#isPresent(this.#playSlot + 1) &&
        (overFor >= SHRINK_FORCE_AFTER_MS || this.#isQuiet(this.#payloads[this.#index(this.#playSlot)]!))
      ) {
        this.#consume(this.#playSlot, 'discarded');
        this.#playSlot++;
        delay -= FRAME_MS;
        this.#lastShrinkAt = nowMs;
        this.#overTargetSince = Number.NaN;
      }
    } else {
      this.#overTargetSince = Number.NaN;
    }
    this.stats.delayMs = delay;

    if (delay <= this.#target - FRAME_MS + EPSILON_MS) {
      // Grow: hold the playout point for one frame (the caller conceals it).
      this.stats.stretched++;
      this.#lostOut.seq = null;
      return this.#lostOut;
    }

    const slot = this.#playSlot;
    const i = this.#index(slot);
    if (this.#state[i] === PRESENT && this.#slotOf[i] === slot) {
      const out = this.#audioOut;
      out.payload = this.#payloads[i]!;
      out.seq = this.#seqOf[i]! & 0xffff;
      out.timestamp = this.#tsOf[i]!;
      this.#consume(slot, undefined);
      this.#playSlot++;
      this.#underflowRun = 0;
      this.stats.played++;
      return out;
    }

    // Missing: lost packet or silence (DTX)?
    let nextSeq = Number.NaN;
    const last = Math.min(this.#highSlot, slot + c - 1);
    for (let s = slot + 1; s <= last; s++) {
      if (this.#isPresent(s)) {
        nextSeq = this.#seqOf[this.#index(s)]!;
        break;
      }
    }
    const j = slot - this.#prevSlot;
    let lost: boolean;
    if (!Number.isNaN(nextSeq)) {
      this.#underflowRun = 0;
      lost = Number.isNaN(this.#prevSeq) || j <= nextSeq - this.#prevSeq - 1;
    } else {
      this.#underflowRun++;
      lost = this.#underflowRun <= MAX_UNDERFLOW_CONCEAL_FRAMES;
      if (!lost) this.#phase = 'waiting';
    }
    this.#playSlot++;
    if (!lost) return this.#emptyOut;
    this.stats.lost++;
    this.#lostOut.seq = Number.isNaN(this.#prevSeq) ? null : (this.#prevSeq + j) & 0xffff;
    return this.#lostOut;
  }

  #accept(packet: JitterPacket, arrivalMs: number, extSeq: number, extTs: number, slot: number): void {
    if (this.#phase === 'prefetch') {
      if (slot < this.#floor) {
        this.#lateOrDuplicate(packet, arrivalMs, extSeq, extTs, slot);
        return;
      }
      if (slot < this.#anchor) {
        if (this.#highSlot - slot >= this.#capacity) {
          this.stats.overflow++;
          return;
        }
        this.#anchor = slot;
      }
    } else if (slot < this.#playSlot) {
      this.#lateOrDuplicate(packet, arrivalMs, extSeq, extTs, slot);
      return;
    } else if (this.#phase === 'waiting') {
      // First packet after a silence: re-anchor at the current target (free adaptation).
      this.#phase = 'prefetch';
      this.#floor = this.#playSlot;
      this.#anchor = slot;
    }
    this.#insert(packet, arrivalMs, extSeq, extTs, slot);
  }

  #insert(packet: JitterPacket, arrivalMs: number, extSeq: number, extTs: number, slot: number): void {
    const i = this.#index(slot);
    if (this.#state[i] === PRESENT) {
      // Same slot: a duplicate (or a second packet claiming the same timestamp).
      this.stats.duplicates++;
      return;
    }
    this.#payloads[i]!.set(packet.payload);
    this.#slotOf[i] = slot;
    this.#seqOf[i] = extSeq;
    this.#tsOf[i] = packet.timestamp;
    this.#state[i] = PRESENT;
    this.#size++;
    if (slot > this.#highSlot) this.#highSlot = slot;
    if (extSeq > this.#maxExtSeq) {
      this.#maxExtSeq = extSeq;
      this.#maxTs32 = packet.timestamp;
      this.#maxExtTs = extTs;
      this.#maxSlot = slot;
    }
    this.#consecutiveLate = 0;
    this.#candidateSeq = -1;
    this.#observe(arrivalMs, slot, extTs, false);
  }

  #lateOrDuplicate(
    packet: JitterPacket,
    arrivalMs: number,
    extSeq: number,
    extTs: number,
    slot: number,
  ): void {
    const i = this.#index(slot);
    if (this.#state[i] !== EMPTY && this.#slotOf[i] === slot && this.#seqOf[i] === extSeq) {
      this.stats.duplicates++;
      return;
    }
    this.stats.late++;
    this.#observe(arrivalMs, slot, extTs, true);
    if (++this.#consecutiveLate >= MAX_CONSECUTIVE_LATE) this.#resync(packet, arrivalMs);
  }

  /** Out of the window: resync on a marker bit or a confirmed jump, otherwise drop and remember. */
  #discontinuity(packet: JitterPacket, arrivalMs: number, ahead: boolean): void {
    const confirmed =
      this.#candidateSsrc === packet.ssrc && this.#candidateSeq === ((packet.seq - 1) & 0xffff);
    if (packet.marker || confirmed) {
      this.#resync(packet, arrivalMs);
      return;
    }
    this.#candidateSeq = packet.seq;
    this.#candidateSsrc = packet.ssrc;
    if (ahead) this.stats.overflow++;
    else this.stats.late++;
  }

  #resync(packet: JitterPacket, arrivalMs: number): void {
    this.stats.flushed += this.#size;
    this.#flush();
    if (packet.ssrc !== this.#ssrc) {
      this.#previousSsrc = this.#ssrc;
      this.#switchedAt = arrivalMs;
    }
    this.stats.resyncs++;
    this.#startTimeline(packet, arrivalMs);
  }

  #startTimeline(packet: JitterPacket, arrivalMs: number): void {
    this.#ssrc = packet.ssrc;
    this.#maxExtSeq = packet.seq;
    this.#maxTs32 = packet.timestamp;
    this.#maxExtTs = packet.timestamp;
    this.#baseExtTs = packet.timestamp;
    this.#maxSlot = 0;
    this.#highSlot = 0;
    this.#phase = 'prefetch';
    this.#anchor = 0;
    this.#floor = Number.NEGATIVE_INFINITY;
    this.#playSlot = 0;
    this.#prevSeq = Number.NaN;
    this.#prevSlot = Number.NaN;
    this.#underflowRun = 0;
    this.#consecutiveLate = 0;
    this.#candidateSeq = -1;
    this.#candidateSsrc = -1;
    this.#overTargetSince = Number.NaN;
    this.#clearEstimator();
    this.#insert(packet, arrivalMs, packet.seq, packet.timestamp, 0);
  }

  /** Drops buffered frames below `newStart` (sender burst beyond the capacity) to make room. */
  #slideTo(newStart: number): void {
    const from = this.#phase === 'prefetch' ? this.#anchor : this.#playSlot;
    const to = Math.min(newStart, from + this.#capacity);
    for (let s = from; s < to; s++) {
      if (this.#isPresent(s)) this.#consume(s, 'overflow');
    }
    if (this.#phase === 'prefetch') {
      this.#anchor = newStart;
      for (let s = newStart; s <= this.#highSlot; s++) {
        if (this.#isPresent(s)) {
          this.#anchor = s;
          break;
        }
      }
      if (this.#floor > this.#anchor) this.#floor = this.#anchor;
    } else {
      this.#playSlot = newStart;
    }
  }

  #consume(slot: number, counter: 'discarded' | 'overflow' | undefined): void {
    const i = this.#index(slot);
    if (this.#state[i] !== PRESENT || this.#slotOf[i] !== slot) return;
    this.#state[i] = CONSUMED;
    this.#size--;
    this.#prevSeq = this.#seqOf[i]!;
    this.#prevSlot = slot;
    if (counter !== undefined) this.stats[counter]++;
  }

  #flush(): void {
    this.#state.fill(EMPTY);
    this.#slotOf.fill(Number.NaN);
    this.#size = 0;
  }

  #isPresent(slot: number): boolean {
    const i = this.#index(slot);
    return this.#state[i] === PRESENT && this.#slotOf[i] === slot;
  }

  #index(slot: number): number {
    const c = this.#capacity;
    return ((slot % c) + c) % c;
  }

  #clearEstimator(): void {
    this.#relCount = 0;
    this.#relNext = 0;
    this.#dMin = Number.POSITIVE_INFINITY;
    this.#sinceRecompute = 0;
    this.#lastTransit = Number.NaN;
  }

  /** Records a packet's relative delay and RFC 3550 jitter; recomputes the target now and then. */
  #observe(arrivalMs: number, slot: number, extTs: number, late: boolean): void {
    const r = arrivalMs - slot * FRAME_MS;
    this.#rel[this.#relNext] = r;
    this.#relNext = (this.#relNext + 1) % this.#rel.length;
    if (this.#relCount < this.#rel.length) this.#relCount++;
    if (r < this.#dMin) this.#dMin = r;

    const transit = arrivalMs - (extTs - this.#baseExtTs) / (SAMPLES_PER_FRAME / FRAME_MS);
    if (!Number.isNaN(this.#lastTransit)) {
      this.#jitter += (Math.abs(transit - this.#lastTransit) - this.#jitter) / 16;
      this.stats.jitterMs = this.#jitter;
    }
    this.#lastTransit = transit;

    if (late || ++this.#sinceRecompute >= RECOMPUTE_EVERY_PACKETS) this.#recomputeTarget(late);
  }

  #recomputeTarget(growOnly: boolean): void {
    this.#sinceRecompute = 0;
    const n = this.#relCount;
    const a = this.#scratch;
    let min = Number.POSITIVE_INFINITY;
    for (let i = 0; i < n; i++) {
      const v = this.#rel[i]!;
      a[i] = v;
      if (v < min) min = v;
    }
    this.#dMin = min;
    const k = Math.min(n - 1, Math.max(0, Math.ceil(this.#quantile * n) - 1));
    const q = select(a, n, k);
    const wanted = Math.min(
      this.#maxDelay,
      Math.max(this.#minDelay, Math.ceil(q - min + FRAME_MS - EPSILON_MS)),
    );
    if (wanted > this.#target || (!growOnly && wanted <= this.#target - TARGET_DECREASE_HYSTERESIS_MS)) {
      this.#target = wanted;
      this.stats.targetDelayMs = wanted;
    }
  }
}

/** k-th smallest of a[0..n) (Hoare quickselect, in place, no allocation). */
function select(a: Float64Array, n: number, k: number): number {
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >> 1]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else break;
  }
  return a[k]!;
}
