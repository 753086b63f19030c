// RFC 4733 DTMF: payload decoding, the receiver's one-report-per-key-press rules (end bit, lost end
// packets, retransmissions, back-to-back digits, garbage), the sender's exact packet sequence on a 20 ms
// pacer, and sender → receiver round trips.
import { describe, expect, it } from 'vitest';
import {
  DTMF_END_TIMEOUT_MS,
  DtmfReceiver,
  DtmfSender,
  MAX_QUEUED_DTMF_DIGITS,
  digitOf,
  eventOf,
  parseTelephoneEvent,
  type DtmfDigitEvent,
  type DtmfFlashEvent,
  type DtmfStartEvent,
} from '../../../src/media/dtmf.js';

const PT = 101;
const FRAME = 160;
const FRAME_MS = 20;

/** A 4-byte telephone-event payload laid out as RFC 4733 Figure 1: event, E|R|volume, duration. */
function eventPayload(event: number, end: boolean, duration: number, volume = 10): Uint8Array {
  return Uint8Array.of(event, (end ? 0x80 : 0) | volume, duration >> 8, duration & 0xff);
}

function listen(receiver: DtmfReceiver): {
  digits: DtmfDigitEvent[];
  starts: DtmfStartEvent[];
  flashes: DtmfFlashEvent[];
} {
  const digits: DtmfDigitEvent[] = [];
  const starts: DtmfStartEvent[] = [];
  const flashes: DtmfFlashEvent[] = [];
  receiver.on('digit', (d) => digits.push(d));
  receiver.on('start', (s) => starts.push(s));
  receiver.on('flash', (f) => flashes.push(f));
  return { digits, starts, flashes };
}

/** Feeds a typical event (updates every 20 ms, end packet ×3); returns the time after the last packet. */
function feedEvent(
  receiver: DtmfReceiver,
  opts: { event: number; timestamp: number; frames: number; startMs: number; endCopies?: number },
): number {
  let now = opts.startMs;
  for (let i = 1; i <= opts.frames; i++) {
    const last = i === opts.frames;
    receiver.onPacket(eventPayload(opts.event, last, i * FRAME), opts.timestamp, i === 1, now);
    if (!last) now += FRAME_MS;
  }
  for (let copy = 1; copy < (opts.endCopies ?? 3); copy++) {
    now += FRAME_MS;
    receiver.onPacket(eventPayload(opts.event, true, opts.frames * FRAME), opts.timestamp, false, now);
  }
  return now;
}

interface SentPacket {
  payload: number[];
  marker: boolean;
  timestamp: number;
  payloadType: number;
}

/** Drives the sender like the 20 ms pacer: one next() per slot, slot timestamps advancing by 160. */
function drive(sender: DtmfSender, firstTimestamp: number, slots: number): (SentPacket | undefined)[] {
  const out: (SentPacket | undefined)[] = [];
  for (let i = 0; i < slots; i++) {
    const p = sender.next((firstTimestamp + i * FRAME) >>> 0);
    out.push(
      p && { payload: [...p.payload], marker: p.marker, timestamp: p.timestamp, payloadType: p.payloadType },
    );
  }
  return out;
}

describe('parseTelephoneEvent', () => {
  it('decodes event, E bit, volume and duration from the RFC 4733 Figure 1 layout', () => {
    // Digit 9, volume 10, 50 ms at 8 kHz (400): an update packet.
    expect(parseTelephoneEvent(Uint8Array.of(0x09, 0x0a, 0x01, 0x90))).toEqual({
      event: 9,
      end: false,
      volume: 10,
      duration: 400,
    });
    // Same digit's end packet: E=1, duration 1600 (200 ms).
    expect(parseTelephoneEvent(Uint8Array.of(0x09, 0x8a, 0x06, 0x40))).toEqual({
      event: 9,
      end: true,
      volume: 10,
      duration: 1600,
    });
  });

  it('ignores the reserved R bit and reads the full 16-bit duration', () => {
    expect(parseTelephoneEvent(Uint8Array.of(11, 0x80 | 0x40 | 63, 0xff, 0xff))).toEqual({
      event: 11,
      end: true,
      volume: 63,
      duration: 0xffff,
    });
  });

  it('returns undefined for a payload shorter than 4 bytes', () => {
    expect(parseTelephoneEvent(Uint8Array.of(1, 0x0a, 0x00))).toBeUndefined();
    expect(parseTelephoneEvent(new Uint8Array(0))).toBeUndefined();
  });
});

describe('digitOf / eventOf', () => {
  it('map the 16 DTMF events both ways, with flash and larger codes having no digit', () => {
    const digits = '0123456789*#ABCD';
    for (let event = 0; event < 16; event++) {
      expect(digitOf(event)).toBe(digits[event]);
      expect(eventOf(digits[event]!)).toBe(event);
    }
    expect(digitOf(16)).toBeUndefined();
    expect(digitOf(17)).toBeUndefined();
    expect(digitOf(-1)).toBeUndefined();
    expect(digitOf(1.5)).toBeUndefined();
    expect(eventOf('a')).toBe(12);
    expect(eventOf('E')).toBeUndefined();
    expect(eventOf('12')).toBeUndefined();
    expect(eventOf('')).toBeUndefined();
  });
});

describe('DtmfReceiver', () => {
  it('reports a typical event once, with the end packet duration, despite three end packets', () => {
    const receiver = new DtmfReceiver();
    const { digits, starts } = listen(receiver);
    feedEvent(receiver, { event: 5, timestamp: 8_000, frames: 5, startMs: 0 });
    expect(starts).toEqual([{ digit: '5', event: 5 }]);
    expect(digits).toEqual([{ digit: '5', durationMs: 100, endedBy: 'end-bit' }]);
    expect(receiver.inEvent).toBe(false);
    expect(receiver.stats.ignoredDuplicates).toBe(2);
  });

  it('takes the duration from the end packet even when the updates before it were lost', () => {
    const receiver = new DtmfReceiver();
    const { digits } = listen(receiver);
    receiver.onPacket(eventPayload(3, false, 160), 1_000, true, 0);
    receiver.onPacket(eventPayload(3, true, 960), 1_000, false, 100);
    expect(digits).toEqual([{ digit: '3', durationMs: 120, endedBy: 'end-bit' }]);
  });

  it('reports an event whose end packets were all lost exactly once, by timeout', () => {
    const receiver = new DtmfReceiver();
    const { digits } = listen(receiver);
    receiver.onPacket(eventPayload(7, false, 160), 4_000, true, 1_000);
    receiver.onPacket(eventPayload(7, false, 320), 4_000, false, 1_020);
    receiver.onPacket(eventPayload(7, false, 480), 4_000, false, 1_040);
    receiver.tick(1_040 + DTMF_END_TIMEOUT_MS - 1);
    expect(digits).toEqual([]);
    receiver.tick(1_040 + DTMF_END_TIMEOUT_MS);
    receiver.tick(1_040 + DTMF_END_TIMEOUT_MS + 500);
    // A straggling end packet of the same event after the timeout is not a second key press.
    receiver.onPacket(eventPayload(7, true, 800), 4_000, false, 1_400);
    expect(digits).toEqual([{ digit: '7', durationMs: 60, endedBy: 'timeout' }]);
    expect(receiver.stats.timeouts).toBe(1);
  });

  it('keeps an event open while updates keep coming, however long the key is held', () => {
    const receiver = new DtmfReceiver();
    const { digits } = listen(receiver);
    let now = 0;
    for (let i = 1; i <= 100; i++, now += FRAME_MS) {
      receiver.onPacket(eventPayload(1, false, i * FRAME), 0, i === 1, now);
      receiver.tick(now);
    }
    expect(digits).toEqual([]);
    expect(receiver.inEvent).toBe(true);
  });

  it('treats retransmitted first packets (marker set again) as the same event', () => {
    const receiver = new DtmfReceiver();
    const { digits, starts } = listen(receiver);
    for (let copy = 0; copy < 3; copy++) receiver.onPacket(eventPayload(0, false, 160), 200, true, copy);
    receiver.onPacket(eventPayload(0, true, 800), 200, false, 80);
    expect(starts).toHaveLength(1);
    expect(digits).toEqual([{ digit: '0', durationMs: 100, endedBy: 'end-bit' }]);
  });

  it('reports two consecutive digits, including the same digit pressed twice, in order', () => {
    const receiver = new DtmfReceiver();
    const { digits } = listen(receiver);
    let now = feedEvent(receiver, { event: 1, timestamp: 16_000, frames: 5, startMs: 0 });
    now = feedEvent(receiver, { event: 2, timestamp: 17_600, frames: 4, startMs: now + 60 });
    feedEvent(receiver, { event: 2, timestamp: 19_200, frames: 6, startMs: now + 60 });
    expect(digits).toEqual([
      { digit: '1', durationMs: 100, endedBy: 'end-bit' },
      { digit: '2', durationMs: 80, endedBy: 'end-bit' },
      { digit: '2', durationMs: 120, endedBy: 'end-bit' },
    ]);
  });

  it('ends an open event when a new event timestamp arrives before its end packets', () => {
    const receiver = new DtmfReceiver();
    const { digits } = listen(receiver);
    receiver.onPacket(eventPayload(4, false, 160), 500, true, 0);
    receiver.onPacket(eventPayload(4, false, 320), 500, false, 20);
    receiver.onPacket(eventPayload(6, false, 160), 2_000, true, 100);
    expect(digits).toEqual([{ digit: '4', durationMs: 40, endedBy: 'next-event' }]);
    expect(receiver.inEvent).toBe(true);
  });

  it('ignores a late packet of the previous event that arrives after the next one started', () => {
    const receiver = new DtmfReceiver();
    const { digits, starts } = listen(receiver);
    const now = feedEvent(receiver, { event: 8, timestamp: 3_000, frames: 5, startMs: 0, endCopies: 1 });
    receiver.onPacket(eventPayload(9, false, 160), 5_000, true, now + 80);
    receiver.onPacket(eventPayload(8, true, 800), 3_000, false, now + 90); // reordered end copy
    receiver.onPacket(eventPayload(8, false, 640), 3_000, false, now + 95); // reordered update
    expect(starts.map((s) => s.digit)).toEqual(['8', '9']);
    expect(digits).toEqual([{ digit: '8', durationMs: 100, endedBy: 'end-bit' }]);
    expect(receiver.inEvent).toBe(true);
  });

  it('ignores short payloads and event codes above 16, and reports flash separately from digits', () => {
    const receiver = new DtmfReceiver();
    const { digits, starts, flashes } = listen(receiver);
    receiver.onPacket(Uint8Array.of(5, 0x8a, 0x03), 100, true, 0);
    receiver.onPacket(eventPayload(17, true, 800), 200, true, 10);
    receiver.onPacket(eventPayload(255, false, 160), 300, true, 20);
    expect(starts).toEqual([]);
    expect(receiver.stats.ignoredMalformed).toBe(3);
    receiver.onPacket(eventPayload(16, false, 160), 400, true, 30);
    receiver.onPacket(eventPayload(16, true, 4_000), 400, false, 530);
    expect(flashes).toEqual([{ durationMs: 500, endedBy: 'end-bit' }]);
    expect(digits).toEqual([]);
  });

  it('a throwing listener does not stop the digit from reaching the other listeners', () => {
    const errors: unknown[] = [];
    const receiver = new DtmfReceiver({ onListenerError: (error) => errors.push(error) });
    receiver.on('digit', () => {
      throw new Error('listener bug');
    });
    const { digits } = listen(receiver);
    feedEvent(receiver, { event: 10, timestamp: 0, frames: 5, startMs: 0 });
    expect(digits.map((d) => d.digit)).toEqual(['*']);
    expect(errors).toHaveLength(1);
  });
});

describe('DtmfSender', () => {
  it('sends one digit as 20 ms updates on one timestamp, marker first, then the end packet three times', () => {
    const sender = new DtmfSender({ payloadType: PT });
    sender.enqueue('5'); // default 100 ms
    const busy: boolean[] = [];
    const packets: (SentPacket | undefined)[] = [];
    for (let i = 0; i < 8; i++) {
      const p = sender.next(16_000 + i * FRAME);
      packets.push(
        p && {
          payload: [...p.payload],
          marker: p.marker,
          timestamp: p.timestamp,
          payloadType: p.payloadType,
        },
      );
      busy.push(sender.busy);
    }
    const packet = (marker: boolean, e: number, duration: number): SentPacket => ({
      payload: [5, e | 10, duration >> 8, duration & 0xff],
      marker,
      timestamp: 16_000,
      payloadType: PT,
    });
    expect(packets).toEqual([
      packet(true, 0, 160),
      packet(false, 0, 320),
      packet(false, 0, 480),
      packet(false, 0, 640),
      packet(false, 0x80, 800),
      packet(false, 0x80, 800),
      packet(false, 0x80, 800),
      undefined,
    ]);
    expect(busy).toEqual([true, true, true, true, true, true, false, false]);
  });

  it('leaves at least 60 ms of audio between queued digits', () => {
    const sender = new DtmfSender({ payloadType: PT });
    sender.enqueue('12', 60);
    const slots = drive(sender, 0, 16);
    const carrying = slots.map((p) => (p === undefined ? '.' : String(p.payload[0])));
    // 3 tone slots + 2 more end copies, 3 free slots, then the next digit at a new timestamp.
    expect(carrying.join('')).toBe('11111...22222...');
    expect(slots[8]).toMatchObject({ marker: true, timestamp: 8 * FRAME });
  });

  it('ends a tone that is not a whole number of frames at exactly the requested duration', () => {
    const sender = new DtmfSender({ payloadType: PT });
    sender.enqueue('#', 50);
    const durations = drive(sender, 0, 5).map((p) => p && (p.payload[2]! << 8) | p.payload[3]!);
    expect(durations).toEqual([160, 320, 400, 400, 400]);
  });

  it('reports elapsed time, not packets sent, when the pacer skipped slots after a stall', () => {
    const sender = new DtmfSender({ payloadType: PT });
    sender.enqueue('1', 200);
    const first = sender.next(1_000);
    expect(first?.marker).toBe(true);
    const afterStall = sender.next(1_000 + 5 * FRAME);
    expect(afterStall?.timestamp).toBe(1_000);
    expect(((afterStall!.payload[2]! << 8) | afterStall!.payload[3]!) >>> 0).toBe(6 * FRAME);
  });

  it('ends the tone in progress with end packets when cancelled, and drops the queue', () => {
    const sender = new DtmfSender({ payloadType: PT });
    sender.enqueue('98', 500);
    drive(sender, 0, 3);
    sender.cancel();
    const rest = drive(sender, 3 * FRAME, 10);
    expect(rest.slice(0, 3).map((p) => p?.payload)).toEqual([
      [9, 0x8a, 0x01, 0xe0],
      [9, 0x8a, 0x01, 0xe0],
      [9, 0x8a, 0x01, 0xe0],
    ]);
    expect(rest.slice(3).every((p) => p === undefined)).toBe(true);
    expect(sender.queued).toBe(0);
  });

  it('splits an event longer than the 16-bit duration field into contiguous segments', () => {
    const sender = new DtmfSender({ payloadType: PT });
    sender.enqueue('0', 10_000); // 80000 samples
    const slots = drive(sender, 0, 600).filter((p): p is SentPacket => p !== undefined);
    expect(slots).toHaveLength(500 + 2);
    const durations = slots.map((p) => (p.payload[2]! << 8) | p.payload[3]!);
    expect(Math.max(...durations)).toBeLessThanOrEqual(0xffff);
    expect(slots.filter((p) => p.marker)).toHaveLength(1);
    expect(slots[408]).toMatchObject({ timestamp: 0 });
    expect(durations[408]).toBe(409 * FRAME);
    expect(slots[409]).toMatchObject({ timestamp: 409 * FRAME, marker: false });
    expect(durations[409]).toBe(FRAME);
    expect(durations.at(-1)).toBe(80_000 - 409 * FRAME);
    expect(slots.at(-1)!.payload[1]! & 0x80).toBe(0x80);
  });

  it('rejects a non-DTMF character, an out-of-range duration and an overfull queue without queueing', () => {
    const sender = new DtmfSender({ payloadType: PT });
    expect(() => sender.enqueue('12x')).toThrow(TypeError);
    expect(() => sender.enqueue('1', 10)).toThrow(RangeError);
    expect(() => sender.enqueue('1', Number.NaN)).toThrow(RangeError);
    expect(() => sender.enqueue('1', 120_000)).toThrow(RangeError);
    expect(() => sender.enqueue('1'.repeat(MAX_QUEUED_DTMF_DIGITS + 1))).toThrow(RangeError);
    expect(sender.queued).toBe(0);
    expect(() => new DtmfSender({ payloadType: 128 })).toThrow(RangeError);
    expect(() => new DtmfSender({ payloadType: PT, volume: 64 })).toThrow(RangeError);
  });

  it('is idle and sends nothing with an empty queue', () => {
    const sender = new DtmfSender({ payloadType: PT });
    expect(drive(sender, 0, 5).every((p) => p === undefined)).toBe(true);
    expect(sender.busy).toBe(false);
  });
});

describe('DtmfSender → DtmfReceiver round trip', () => {
  function roundTrip(
    digits: string,
    durationMs: number,
    firstTimestamp: number,
    drop: (index: number) => boolean = () => false,
  ): DtmfDigitEvent[] {
    const sender = new DtmfSender({ payloadType: PT });
    const receiver = new DtmfReceiver();
    const { digits: got } = listen(receiver);
    sender.enqueue(digits, durationMs);
    let sent = 0;
    for (let i = 0; i < 5_000 && (sender.busy || sender.queued > 0 || i < 10); i++) {
      const now = i * FRAME_MS;
      const p = sender.next((firstTimestamp + i * FRAME) >>> 0);
      if (p && !drop(sent++)) receiver.onPacket(p.payload, p.timestamp, p.marker, now);
      receiver.tick(now);
    }
    for (let i = 0; i < 50; i++) receiver.tick(1_000_000 + i * FRAME_MS);
    return got;
  }

  it('delivers every queued digit once, in order, with its duration', () => {
    expect(roundTrip('123#*ABCD0', 100, 1_000)).toEqual(
      [...'123#*ABCD0'].map((digit) => ({ digit, durationMs: 100, endedBy: 'end-bit' })),
    );
  });

  it('survives the RTP timestamp wrapping in the middle of a digit', () => {
    expect(roundTrip('45', 120, 0xffffffff - 3 * FRAME)).toEqual([
      { digit: '4', durationMs: 120, endedBy: 'end-bit' },
      { digit: '5', durationMs: 120, endedBy: 'end-bit' },
    ]);
  });

  it('still delivers each digit once when two of the three end packets are lost', () => {
    // Packets per 100 ms digit: 5 tone (the 5th is the first end copy) + 2 copies = 7; drop copies 1 and 2.
    const got = roundTrip('78', 100, 0, (i) => i % 7 === 4 || i % 7 === 5);
    expect(got).toEqual([
      { digit: '7', durationMs: 100, endedBy: 'end-bit' },
      { digit: '8', durationMs: 100, endedBy: 'end-bit' },
    ]);
  });

  it('reports a 10 s key press sent as segments as one digit of 10 s', () => {
    expect(roundTrip('9', 10_000, 12_345)).toEqual([{ digit: '9', durationMs: 10_000, endedBy: 'end-bit' }]);
  });
});
