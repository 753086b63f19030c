// RFC 4733 telephone-events (DTMF): payload parsing, a receiver that turns event packets into one digit
// report per key press, and a sender that paces a digit queue as event packets on the 20 ms media clock.
// Pure: no sockets, no timers; the RTP endpoint feeds packets in and the outbound pacer pulls packets out.
import { SAMPLES_PER_FRAME } from '../core/audio.js';
import { TypedEmitter, type ListenerErrorHandler } from '../core/events.js';
import { DTMF_DIGITS, type DtmfDigit } from '../core/dtmf-digits.js';

export type { DtmfDigit } from '../core/dtmf-digits.js';
const DIGITS = DTMF_DIGITS;

/** Hook flash (RFC 4733 §3.2): a real event, but not a digit. */
export const FLASH_EVENT = 16;
/** The highest event code accepted; anything above (fax tones, trunk events, garbage) is ignored. */
const MAX_EVENT = FLASH_EVENT;
/** Telephone-event payload: event(8) E|R|volume(8) duration(16). */
const EVENT_PAYLOAD_BYTES = 4;
const END_BIT = 0x80;
const VOLUME_MASK = 0x3f;
/** The duration field is 16 bits (RFC 4733 §2.3.5); longer events are sent as segments (§2.5.1.3). */
const MAX_DURATION_FIELD = 0xffff;
/** Telephone-event clock for G.711 calls (a=rtpmap:<pt> telephone-event/8000). */
const EVENT_CLOCK_RATE = 8000;
const SAMPLES_PER_MS = EVENT_CLOCK_RATE / 1000;

export interface TelephoneEvent {
  /** Event code, 0–255 as on the wire (0–15 digits, 16 flash). */
  event: number;
  /** E bit: this packet reports the end of the event. */
  end: boolean;
  /** Tone power in −dBm0 (0–63). */
  volume: number;
  /** Duration so far, in timestamp units since the event's (segment's) RTP timestamp. */
  duration: number;
}

/** Decodes the first 4-byte event of a telephone-event payload; undefined if shorter than 4 bytes. */
export function parseTelephoneEvent(payload: Uint8Array): TelephoneEvent | undefined {
  if (payload.length < EVENT_PAYLOAD_BYTES) return undefined;
  const flags = payload[1]!;
  return {
    event: payload[0]!,
    end: (flags & END_BIT) !== 0,
    volume: flags & VOLUME_MASK,
    duration: (payload[2]! << 8) | payload[3]!,
  };
}

/** The digit for event codes 0–15; undefined for flash (16) and anything else. */
export function digitOf(event: number): DtmfDigit | undefined {
  return Number.isInteger(event) ? DIGITS[event] : undefined;
}

/** The event code of a digit ('a'–'d' accepted too); undefined if it is not a DTMF digit. */
export function eventOf(digit: string): number | undefined {
  const index = DIGITS.indexOf(digit.toUpperCase() as DtmfDigit);
  return index < 0 ? undefined : index;
}

// ---------------------------------------------------------------------------------------------------
// Receiving
// ---------------------------------------------------------------------------------------------------

/**
 * An open event whose packets stop this long ends by timeout: senders refresh every 20–50 ms and send
 * the end packet three times, so 300 ms of silence means every end packet was lost (RFC 4733 §2.5.2.2
 * suggests acting after a few update intervals; the reference notes 200–500 ms).
 */
export const DTMF_END_TIMEOUT_MS = 300;
/**
 * After an event ends, packets with an older timestamp arriving within this window are late copies of
 * earlier events and are dropped. Bounded in time so a peer whose timestamps jump backwards (a new
 * source after re-INVITE) is not ignored forever.
 */
const LATE_PACKET_WINDOW_MS = 2_000;
/**
 * A new report with the same event and no marker, starting where an open event's segment ended, is
 * the next segment of a long event (RFC 4733 §2.5.2.3). The previous segment must have reached the
 * 16-bit limit, less this slack for lost updates (200 ms at 8 kHz).
 */
const SEGMENT_END_SLACK = 1_600;

export type DtmfEndedBy = 'end-bit' | 'timeout' | 'next-event';

export interface DtmfDigitEvent {
  digit: DtmfDigit;
  durationMs: number;
  /** 'end-bit': an E=1 packet; 'timeout': all end packets lost; 'next-event': a new event began first. */
  endedBy: DtmfEndedBy;
}

export interface DtmfFlashEvent {
  durationMs: number;
  endedBy: DtmfEndedBy;
}

export interface DtmfStartEvent {
  /** Undefined for flash. */
  digit: DtmfDigit | undefined;
  event: number;
}

export interface DtmfReceiverEvents extends Record<string, unknown[]> {
  /** First packet of an event (for barge-in): may fire before the digit is final. */
  start: [DtmfStartEvent];
  /** Exactly once per key press, when it ends. */
  digit: [DtmfDigitEvent];
  /** Exactly once per hook flash (event 16), when it ends. */
  flash: [DtmfFlashEvent];
}

export interface DtmfReceiverStats {
  packets: number;
  /** Too short, or an event code above 16. */
  ignoredMalformed: number;
  /** Retransmitted end packets and late packets of events already reported. */
  ignoredDuplicates: number;
  digits: number;
  timeouts: number;
}

export interface DtmfReceiverOptions {
  /** Default DTMF_END_TIMEOUT_MS. */
  endTimeoutMs?: number;
  onListenerError?: ListenerErrorHandler;
}

/**
 * Turns a stream of RFC 4733 packets (one source) into one report per event. An event is identified by
 * its RTP timestamp (RFC 4733 §2.5.2.1); the digit is reported on its first E=1 packet, by timeout when
 * every end packet was lost ({@link tick}), or when a new event starts first. Retransmitted end packets
 * and late packets of a reported event are ignored. Allocates only when an event starts or ends.
 */
export class DtmfReceiver extends TypedEmitter<DtmfReceiverEvents> {
  readonly stats: DtmfReceiverStats = {
    packets: 0,
    ignoredMalformed: 0,
    ignoredDuplicates: 0,
    digits: 0,
    timeouts: 0,
  };
  readonly #endTimeoutMs: number;
  #open = false;
  #event = 0;
  /** RTP timestamp of the event's first segment. */
  #startTimestamp = 0;
  /** RTP timestamp of the current segment (equal to #startTimestamp unless the event is > 8.2 s). */
  #segmentTimestamp = 0;
  #segmentDuration = 0;
  #lastUpdateMs = 0;
  #hasEnded = false;
  #lastEndedTimestamp = 0;
  #lastEndedAtMs = 0;

  constructor(options: DtmfReceiverOptions = {}) {
    super(options.onListenerError);
    this.#endTimeoutMs = options.endTimeoutMs ?? DTMF_END_TIMEOUT_MS;
  }

  /** Whether an event has started and not yet been reported. */
  get inEvent(): boolean {
    return this.#open;
  }

  /** One telephone-event packet. `nowMs` is monotonic arrival time. */
  onPacket(payload: Uint8Array, rtpTimestamp: number, marker: boolean, nowMs: number): void {
    this.stats.packets++;
    if (payload.length < EVENT_PAYLOAD_BYTES || payload[0]! > MAX_EVENT) {
      this.stats.ignoredMalformed++;
      return;
    }
    const event = payload[0]!;
    const end = (payload[1]! & END_BIT) !== 0;
    const duration = (payload[2]! << 8) | payload[3]!;
    const timestamp = rtpTimestamp >>> 0;

    if (this.#open) {
      if (timestamp === this.#segmentTimestamp) {
        if (event !== this.#event) {
          this.stats.ignoredMalformed++; // one timestamp, two events: not a conforming sender
          return;
        }
        this.#update(duration, nowMs);
        if (end) this.#finish('end-bit', nowMs);
        return;
      }
      const sinceSegment = serialDiff(timestamp, this.#segmentTimestamp);
      if (sinceSegment < 0) {
        this.stats.ignoredDuplicates++; // a late packet from before the open event (or segment)
        return;
      }
      if (this.#isNextSegment(event, marker, sinceSegment)) {
        this.#segmentTimestamp = timestamp;
        this.#segmentDuration = 0;
        this.#update(duration, nowMs);
        if (end) this.#finish('end-bit', nowMs);
        return;
      }
      this.#finish('next-event', nowMs);
    }

    if (this.#hasEnded) {
      const sinceEnded = serialDiff(timestamp, this.#lastEndedTimestamp);
      const late = sinceEnded < 0 && nowMs - this.#lastEndedAtMs <= LATE_PACKET_WINDOW_MS;
      if (sinceEnded === 0 || late) {
        this.stats.ignoredDuplicates++;
        return;
      }
    }

    this.#open = true;
    this.#event = event;
    this.#startTimestamp = timestamp;
    this.#segmentTimestamp = timestamp;
    this.#segmentDuration = 0;
    this.#update(duration, nowMs);
    this.safeEmit('start', { digit: digitOf(event), event });
    if (end) this.#finish('end-bit', nowMs);
  }

  /** Ends an event whose packets stopped without an end packet. Call every few tens of ms. */
  tick(nowMs: number): void {
    if (this.#open && nowMs - this.#lastUpdateMs >= this.#endTimeoutMs) {
      this.stats.timeouts++;
      this.#finish('timeout', nowMs);
    }
  }

  /** Forgets all state without reporting (the source changed: new SSRC, re-INVITE). */
  reset(): void {
    this.#open = false;
    this.#hasEnded = false;
  }

  #update(duration: number, nowMs: number): void {
    // Durations only grow within a segment; a reordered older update must not shorten it.
    if (duration > this.#segmentDuration) this.#segmentDuration = duration;
    this.#lastUpdateMs = nowMs;
  }

  #isNextSegment(event: number, marker: boolean, sinceSegment: number): boolean {
    return (
      event === this.#event &&
      !marker &&
      this.#segmentDuration >= MAX_DURATION_FIELD - SEGMENT_END_SLACK &&
      sinceSegment >= this.#segmentDuration &&
      sinceSegment <= MAX_DURATION_FIELD
    );
  }

  #finish(endedBy: DtmfEndedBy, nowMs: number): void {
    this.#open = false;
    this.#hasEnded = true;
    this.#lastEndedTimestamp = this.#segmentTimestamp;
    this.#lastEndedAtMs = nowMs;
    const samples = serialDiff(this.#segmentTimestamp, this.#startTimestamp) + this.#segmentDuration;
    const durationMs = samples / SAMPLES_PER_MS;
    const digit = digitOf(this.#event);
    if (digit === undefined) {
      this.safeEmit('flash', { durationMs, endedBy });
      return;
    }
    this.stats.digits++;
    this.safeEmit('digit', { digit, durationMs, endedBy });
  }
}

/** a − b for 32-bit RTP timestamps, as a signed distance (RFC 1982 serial arithmetic). */
function serialDiff(a: number, b: number): number {
  return (a - b) | 0;
}

// ---------------------------------------------------------------------------------------------------
// Sending
// ---------------------------------------------------------------------------------------------------

/** Tone length when the caller does not say: long enough for every IVR, short enough to feel snappy. */
export const DEFAULT_DTMF_DURATION_MS = 100;
/** Shortest tone we send: ITU-T Q.24 receivers need ≥ 40 ms to recognise a digit. */
export const MIN_DTMF_DURATION_MS = 40;
/** Longest tone we accept from a caller of the API: a minute is far past any real use. */
export const MAX_DTMF_DURATION_MS = 60_000;
/**
 * Silence between queued digits after the last end packet: Q.24 receivers need ≥ 40 ms of pause; 60 ms
 * leaves room for jitter. The two end retransmission slots add another 40 ms before this gap starts.
 */
export const DTMF_INTER_DIGIT_GAP_MS = 60;
/** Tone power (−dBm0) most stacks send; RFC 4733 leaves it to the sender. */
export const DEFAULT_DTMF_VOLUME = 10;
/** Bound on queued digits, so a runaway caller cannot queue minutes of tones. */
export const MAX_QUEUED_DTMF_DIGITS = 64;
/** The final packet of an event is sent this many times in all (RFC 4733 §2.5.1.4). */
const END_PACKET_COPIES = 3;
/** Segment length for events over 8.2 s: the largest whole number of 20 ms frames that fits 16 bits. */
const SEGMENT_SAMPLES = Math.floor(MAX_DURATION_FIELD / SAMPLES_PER_FRAME) * SAMPLES_PER_FRAME;
const GAP_SLOTS = Math.ceil((DTMF_INTER_DIGIT_GAP_MS * SAMPLES_PER_MS) / SAMPLES_PER_FRAME);

export interface DtmfPacket {
  readonly payloadType: number;
  /** 4 bytes; reused by the sender, valid until the next call to next(). */
  readonly payload: Uint8Array;
  readonly marker: boolean;
  readonly timestamp: number;
}

export interface DtmfSenderOptions {
  /** The negotiated telephone-event payload type (the remote's, from its SDP). */
  payloadType: number;
  /** −dBm0, 0–63; default DEFAULT_DTMF_VOLUME. */
  volume?: number;
}

interface QueuedDigit {
  event: number;
  samples: number;
}

type SenderPhase = 'idle' | 'tone' | 'end';

/**
 * Sends queued digits as RFC 4733 events, one packet per 20 ms slot of the outbound pacer:
 *
 * - every packet of an event carries the event's RTP timestamp (the first slot's), the marker is set on
 *   the first packet only, and the duration grows by one frame (160) per packet, computed from the slot
 *   timestamp so a pacer that skipped slots after a stall still reports the true elapsed time;
 * - the final packet (E=1, duration = the requested length) goes out in the slot where the tone ends and
 *   is repeated in the next two slots, i.e. three copies "at the interval used for updates" (§2.5.1.4);
 * - events longer than 16 bits of duration are split into segments of 65440 samples (409 frames); the
 *   next segment's timestamp is the previous one plus its duration and carries no marker (§2.5.1.3);
 * - {@link DTMF_INTER_DIGIT_GAP_MS} of normal audio separates queued digits.
 *
 * The pacer calls `next(slotTimestamp)` once per slot; when it returns a packet that slot carries it
 * instead of audio (RTP sequence numbers are the caller's), so no audio packet overlaps an event.
 */
export class DtmfSender {
  readonly #volume: number;
  readonly #queue: QueuedDigit[] = [];
  readonly #payload = new Uint8Array(EVENT_PAYLOAD_BYTES);
  readonly #packet: { payloadType: number; payload: Uint8Array; marker: boolean; timestamp: number };
  #phase: SenderPhase = 'idle';
  #gapSlots = 0;
  #event = 0;
  #samples = 0;
  #startTimestamp = 0;
  #segmentOffset = 0;
  #firstPacket = false;
  #endCopiesLeft = 0;
  #cancelled = false;
  #lastElapsed = 0;

  constructor(options: DtmfSenderOptions) {
    const { payloadType } = options;
    const volume = options.volume ?? DEFAULT_DTMF_VOLUME;
    if (!Number.isInteger(payloadType) || payloadType < 0 || payloadType > 127)
      throw new RangeError(`telephone-event payload type ${payloadType} is not 0–127`);
    if (!Number.isInteger(volume) || volume < 0 || volume > VOLUME_MASK)
      throw new RangeError(`DTMF volume ${volume} is not 0–63 (−dBm0)`);
    this.#volume = volume;
    this.#packet = { payloadType, payload: this.#payload, marker: false, timestamp: 0 };
  }

  /** True from an event's first packet to its last end copy: the pacer must not send audio then. */
  get busy(): boolean {
    return this.#phase !== 'idle';
  }

  /** Digits waiting behind the one being sent. */
  get queued(): number {
    return this.#queue.length;
  }

  /**
   * Queues one or more digits ("123#"), each `durationMs` long. Throws TypeError for a non-DTMF
   * character and RangeError for a duration outside 40 ms–60 s or a full queue; nothing is queued then.
   */
  enqueue(digits: string, durationMs: number = DEFAULT_DTMF_DURATION_MS): void {
    if (
      !Number.isFinite(durationMs) ||
      durationMs < MIN_DTMF_DURATION_MS ||
      durationMs > MAX_DTMF_DURATION_MS
    )
      throw new RangeError(
        `DTMF duration ${durationMs} ms is outside ${MIN_DTMF_DURATION_MS}–${MAX_DTMF_DURATION_MS} ms`,
      );
    const events: number[] = [];
    for (const digit of digits) {
      const event = eventOf(digit);
      if (event === undefined) throw new TypeError(`${JSON.stringify(digit)} is not a DTMF digit`);
      events.push(event);
    }
    if (this.#queue.length + events.length > MAX_QUEUED_DTMF_DIGITS)
      throw new RangeError(`DTMF queue is full (${MAX_QUEUED_DTMF_DIGITS} digits)`);
    const samples = Math.round(durationMs * SAMPLES_PER_MS);
    for (const event of events) this.#queue.push({ event, samples });
  }

  /** Drops queued digits; a tone in progress ends properly (end packets) at the next slot. */
  cancel(): void {
    this.#queue.length = 0;
    if (this.#phase === 'tone') this.#cancelled = true;
  }

  /**
   * The packet for this 20 ms slot, or undefined if the slot is free for audio. `slotTimestamp` is the
   * RTP timestamp the slot's audio frame would carry. The returned object is reused.
   */
  next(slotTimestamp: number): DtmfPacket | undefined {
    switch (this.#phase) {
      case 'idle':
        if (this.#gapSlots > 0) {
          this.#gapSlots--;
          return undefined;
        }
        if (!this.#startNext(slotTimestamp)) return undefined;
        return this.#tonePacket(slotTimestamp);
      case 'tone':
        return this.#tonePacket(slotTimestamp);
      case 'end':
        return this.#endCopy();
    }
  }

  #startNext(slotTimestamp: number): boolean {
    const digit = this.#queue.shift();
    if (digit === undefined) return false;
    this.#phase = 'tone';
    this.#event = digit.event;
    this.#samples = digit.samples;
    this.#startTimestamp = slotTimestamp >>> 0;
    this.#segmentOffset = 0;
    this.#firstPacket = true;
    this.#cancelled = false;
    this.#lastElapsed = 0;
    return true;
  }

  #tonePacket(slotTimestamp: number): DtmfPacket {
    let elapsed: number;
    if (this.#cancelled) {
      elapsed = Math.max(this.#lastElapsed, SAMPLES_PER_FRAME);
    } else {
      // Samples from the event start to the end of this slot, so the first packet says 160.
      elapsed = Math.min(((slotTimestamp - this.#startTimestamp) >>> 0) + SAMPLES_PER_FRAME, this.#samples);
    }
    const final = this.#cancelled || elapsed >= this.#samples;
    while (elapsed - this.#segmentOffset > SEGMENT_SAMPLES) this.#segmentOffset += SEGMENT_SAMPLES;
    this.#lastElapsed = elapsed;
    this.#write(final, elapsed - this.#segmentOffset);
    this.#packet.timestamp = (this.#startTimestamp + this.#segmentOffset) >>> 0;
    this.#packet.marker = this.#firstPacket;
    this.#firstPacket = false;
    if (final) {
      this.#phase = 'end';
      this.#endCopiesLeft = END_PACKET_COPIES - 1;
    }
    return this.#packet;
  }

  #endCopy(): DtmfPacket {
    // The payload buffer still holds the final packet; only the marker could differ (first = final).
    this.#packet.marker = false;
    this.#endCopiesLeft--;
    if (this.#endCopiesLeft <= 0) {
      this.#phase = 'idle';
      this.#gapSlots = GAP_SLOTS;
    }
    return this.#packet;
  }

  #write(end: boolean, duration: number): void {
    const payload = this.#payload;
    payload[0] = this.#event;
    payload[1] = (end ? END_BIT : 0) | this.#volume;
    payload[2] = duration >>> 8;
    payload[3] = duration & 0xff;
  }
}
