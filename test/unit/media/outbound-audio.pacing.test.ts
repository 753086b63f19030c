// Outbound pacing: one 20 ms G.711 frame per 20 ms of (fake) time, silence in the gaps, talkspurt
// markers, barge-in accounting, bounded catch-up after a stall; and the shared MediaClock that drives it.
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { G711Codec } from '../../../src/core/audio.js';
import type { Clock } from '../../../src/core/clock.js';
import { MediaClock, type Paced } from '../../../src/media/media-clock.js';
import { OutboundAudio, type FrameSink } from '../../../src/media/outbound-audio.js';

const FRAME_MS = 20;
const FRAME_BYTES = 160;
const PT = 0;
const T0 = 1_000;
const INITIAL_TS = 3_000_000;
/** Matches OutboundAudio's MAX_CATCHUP_FRAMES. */
const MAX_CATCHUP = 3;
const SILENCE: Record<G711Codec, number> = { PCMU: 0xff, PCMA: 0xd5 };
const AUDIO_BYTE = 0x11;

interface SentFrame {
  payloadType: number;
  payload: Uint8Array;
  timestamp: number;
  marker: boolean;
}

/** A FrameSink that keeps a copy of every frame (OutboundAudio reuses its frame buffer). */
class RecordingSink implements FrameSink {
  readonly frames: SentFrame[] = [];
  send(payloadType: number, payload: Uint8Array, timestamp: number, marker: boolean): void {
    this.frames.push({ payloadType, payload: Uint8Array.from(payload), timestamp, marker });
  }
  get last(): SentFrame {
    const frame = this.frames.at(-1);
    if (!frame) throw new Error('no frame sent yet');
    return frame;
  }
}

function outbound(options: { codec?: G711Codec; maxQueueMs?: number; initialTimestamp?: number } = {}) {
  const sink = new RecordingSink();
  const stream = new OutboundAudio({
    codec: options.codec ?? 'PCMU',
    payloadType: PT,
    sink,
    initialTimestamp: options.initialTimestamp ?? INITIAL_TS,
    maxQueueMs: options.maxQueueMs ?? 60_000,
  });
  /** Ticks at T0, T0+20, … (`count` ticks, continuing from the previous call). */
  let tickIndex = 0;
  const tick = (count = 1): void => {
    for (let i = 0; i < count; i++) stream.onTick(T0 + FRAME_MS * tickIndex++);
  };
  return { stream, sink, tick };
}

const bytes = (length: number, value = AUDIO_BYTE): Uint8Array => new Uint8Array(length).fill(value);
const isAll = (payload: Uint8Array, value: number): boolean => payload.every((b) => b === value);

describe('OutboundAudio pacing', () => {
  it('sends exactly one 160-byte frame per 20 ms over 10 s of jittery ticks, timestamps without drift', () => {
    const { stream, sink } = outbound();
    const ticks = 500;
    for (let k = 0; k < ticks; k++) stream.onTick(T0 + FRAME_MS * k + ((k * 7) % 15)); // 0-14 ms late
    expect(sink.frames).toHaveLength(ticks);
    sink.frames.forEach((frame, n) => {
      expect(frame.payload).toHaveLength(FRAME_BYTES);
      expect(frame.payloadType).toBe(PT);
      expect(frame.timestamp).toBe(INITIAL_TS + n * FRAME_BYTES);
    });
  });

  it('sends one frame per 20 ms when ticked every 5 ms (the MediaClock slot size)', () => {
    const { stream, sink } = outbound();
    for (let t = 0; t <= 10_000; t += 5) stream.onTick(T0 + t);
    expect(sink.frames).toHaveLength(10_000 / FRAME_MS + 1);
  });

  it('does not accumulate drift when every tick is 1 ms late', () => {
    const { stream, sink } = outbound();
    let t = 0;
    for (; t <= 10_000; t += 21) stream.onTick(T0 + t);
    const lastTick = t - 21;
    expect(sink.frames).toHaveLength(Math.floor(lastTick / FRAME_MS) + 1);
    expect(sink.last.timestamp).toBe(INITIAL_TS + Math.floor(lastTick / FRAME_MS) * FRAME_BYTES);
  });

  it.each<G711Codec>(['PCMU', 'PCMA'])('sends %s silence when nothing is queued', (codec) => {
    const { sink, tick, stream } = outbound({ codec });
    tick(3);
    expect(sink.frames.every((f) => isAll(f.payload, SILENCE[codec]))).toBe(true);
    expect(stream.stats).toMatchObject({ framesSent: 3, silenceFramesSent: 3, audioFramesSent: 0 });
  });

  it('sets the marker on the first audio frame after silence and not on the frames that follow', () => {
    const { stream, sink, tick } = outbound();
    tick(2); // silence
    stream.enqueue(bytes(3 * FRAME_BYTES), 'r1');
    tick(4); // 3 audio + 1 silence
    stream.enqueue(bytes(FRAME_BYTES), 'r2');
    tick(1);
    expect(sink.frames.map((f) => [isAll(f.payload, AUDIO_BYTE) ? 'audio' : 'silence', f.marker])).toEqual([
      ['silence', true], // first packet of the stream
      ['silence', false],
      ['audio', true],
      ['audio', false],
      ['audio', false],
      ['silence', false],
      ['audio', true],
    ]);
  });

  it('splits queued audio into 160-byte frames in order and pads the last partial frame with silence', () => {
    const { stream, sink, tick } = outbound({ codec: 'PCMA' });
    const ramp = Uint8Array.from({ length: 400 }, (_, i) => i % 200); // never 0xD5
    stream.enqueue(ramp, 'r1');
    tick(3);
    expect(Array.from(sink.frames[0]!.payload)).toEqual(Array.from(ramp.subarray(0, 160)));
    expect(Array.from(sink.frames[1]!.payload)).toEqual(Array.from(ramp.subarray(160, 320)));
    expect(Array.from(sink.frames[2]!.payload)).toEqual([
      ...ramp.subarray(320, 400),
      ...bytes(80, SILENCE.PCMA),
    ]);
    expect(stream.stats.audioFramesSent).toBe(3);
  });

  it('joins chunks across a frame boundary', () => {
    const { stream, sink, tick } = outbound();
    stream.enqueue(bytes(100, 0x01), 'r1');
    stream.enqueue(bytes(100, 0x02), 'r1');
    tick(2);
    expect(Array.from(sink.frames[0]!.payload)).toEqual([...bytes(100, 0x01), ...bytes(60, 0x02)]);
    expect(Array.from(sink.frames[1]!.payload)).toEqual([...bytes(40, 0x02), ...bytes(120, SILENCE.PCMU)]);
  });
});

describe('OutboundAudio barge-in accounting', () => {
  it('flush() drops queued audio, returns the dropped bytes and their tags, and silence follows', () => {
    const { stream, sink, tick } = outbound();
    stream.enqueue(bytes(1000), 'r1');
    tick(2);
    expect(stream.flush()).toEqual({ bytes: 1000 - 2 * FRAME_BYTES, tags: ['r1'] });
    expect(stream.queuedMs).toBe(0);
    tick(1);
    expect(isAll(sink.last.payload, SILENCE.PCMU)).toBe(true);
    expect(stream.flush()).toEqual({ bytes: 0, tags: [] });
  });

  it('sentBytesOf(tag) counts exactly the bytes put on the wire, including a partial last frame', () => {
    const { stream, tick } = outbound();
    stream.enqueue(bytes(400), 'r1');
    expect(stream.playingTag).toBeUndefined();
    expect(stream.sentBytesOf('r1')).toBe(0);
    tick(1);
    expect(stream.playingTag).toBe('r1');
    expect(stream.sentBytesOf('r1')).toBe(160);
    tick(5);
    expect(stream.sentBytesOf('r1')).toBe(400);
  });

  it('sent + flushed bytes add up to what was queued (truncation point for the provider)', () => {
    const { stream, tick } = outbound();
    stream.enqueue(bytes(1000), 'r1');
    tick(3);
    const dropped = stream.flush();
    expect(stream.sentBytesOf('r1')).toBe(3 * FRAME_BYTES);
    expect(stream.sentBytesOf('r1') + dropped.bytes).toBe(1000);
    tick(2);
    expect(stream.sentBytesOf('r1')).toBe(3 * FRAME_BYTES);
  });

  it('switches playingTag when the next response starts, mid-frame', () => {
    const { stream, tick } = outbound();
    stream.enqueue(bytes(240), 'r1');
    stream.enqueue(bytes(200), 'r2');
    tick(2); // frame 2 = 80 bytes of r1 + 80 bytes of r2
    expect(stream.playingTag).toBe('r2');
    expect(stream.sentBytesOf('r2')).toBe(80);
    tick(1);
    expect(stream.sentBytesOf('r2')).toBe(200);
  });

  it('drops and counts audio beyond the queue bound', () => {
    const { stream } = outbound({ maxQueueMs: 100 }); // 800 bytes
    stream.enqueue(bytes(600), 'r1');
    stream.enqueue(bytes(600), 'r1');
    expect(stream.stats.overflowBytes).toBe(400);
    expect(stream.queuedMs).toBe(100);
    stream.enqueue(bytes(10), 'r1');
    expect(stream.stats.overflowBytes).toBe(410);
  });
});

describe('OutboundAudio after an event-loop stall', () => {
  it(`sends at most ${MAX_CATCHUP} frames in one tick, skips the rest and marks the discontinuity`, () => {
    const { stream, sink } = outbound();
    for (let t = 0; t <= 100; t += FRAME_MS) stream.onTick(T0 + t); // frames 0-5
    const before = sink.frames.length;
    stream.onTick(T0 + 300); // 200 ms stall: frames 6-15 are due
    const burst = sink.frames.slice(before);

    expect(burst).toHaveLength(MAX_CATCHUP);
    expect(stream.stats.skippedFrames).toBe(10 - MAX_CATCHUP);
    expect(burst.map((f) => f.timestamp)).toEqual([13, 14, 15].map((n) => INITIAL_TS + n * FRAME_BYTES));
    expect(burst.map((f) => f.marker)).toEqual([true, false, false]);

    stream.onTick(T0 + 320);
    expect(sink.last).toMatchObject({ timestamp: INITIAL_TS + 16 * FRAME_BYTES, marker: false });
  });

  it('keeps queued audio across a stall (only time is skipped, not speech)', () => {
    const { stream, sink } = outbound();
    stream.onTick(T0);
    stream.enqueue(
      Uint8Array.from({ length: 4 * FRAME_BYTES }, (_, i) => Math.floor(i / FRAME_BYTES)),
      'r1',
    );
    stream.onTick(T0 + 200);
    expect(sink.frames.slice(1).map((f) => f.payload[0])).toEqual([0, 1, 2]);
  });
});

describe('OutboundAudio pause (hold)', () => {
  it('sends nothing while paused but keeps time, and marks the first packet after resuming', () => {
    const { stream, sink, tick } = outbound();
    tick(2);
    stream.setPaused(true);
    tick(10);
    expect(sink.frames).toHaveLength(2);
    stream.setPaused(false);
    tick(1);
    expect(sink.frames).toHaveLength(3);
    expect(sink.last).toMatchObject({ timestamp: INITIAL_TS + 12 * FRAME_BYTES, marker: true });
  });

  it('drops the queue when paused', () => {
    const { stream, sink, tick } = outbound();
    stream.enqueue(bytes(800), 'r1');
    stream.setPaused(true);
    expect(stream.queuedMs).toBe(0);
    stream.setPaused(false);
    tick(1);
    expect(isAll(sink.last.payload, SILENCE.PCMU)).toBe(true);
  });

  // Regression: audio the AI produces while the caller holds us is dropped, never replayed after resume.
  it('drops audio enqueued while paused instead of playing it after resume', () => {
    const { stream, sink, tick } = outbound();
    stream.setPaused(true);
    stream.enqueue(bytes(800), 'r1');
    tick(3);
    stream.setPaused(false);
    tick(1);
    expect(stream.queuedMs).toBe(0);
    expect(isAll(sink.last.payload, SILENCE.PCMU)).toBe(true);
  });
});

describe('MediaClock', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  const fakeClock: Clock = { now: () => Date.now() };

  class TickRecorder implements Paced {
    readonly ticks: number[] = [];
    onTick(now: number): void {
      this.ticks.push(now);
    }
  }

  it('ticks every added stream once per 20 ms', () => {
    vi.useFakeTimers({ now: 0 });
    const clock = new MediaClock(fakeClock);
    const streams = Array.from({ length: 5 }, () => new TickRecorder());
    for (const s of streams) clock.add(s);
    vi.advanceTimersByTime(1_000);
    for (const s of streams) {
      expect(s.ticks).toHaveLength(50);
      const gaps = s.ticks.slice(1).map((t, i) => t - s.ticks[i]!);
      expect(new Set(gaps)).toEqual(new Set([FRAME_MS]));
    }
    for (const s of streams) clock.remove(s);
  });

  it('spreads streams over the 5 ms slots so they do not all tick in the same callback', () => {
    vi.useFakeTimers({ now: 0 });
    const clock = new MediaClock(fakeClock);
    const streams = Array.from({ length: 8 }, () => new TickRecorder());
    for (const s of streams) clock.add(s);
    vi.advanceTimersByTime(FRAME_MS);
    const perInstant = new Map<number, number>();
    for (const s of streams) for (const t of s.ticks) perInstant.set(t, (perInstant.get(t) ?? 0) + 1);
    expect([...perInstant.values()]).toEqual([2, 2, 2, 2]);
    for (const s of streams) clock.remove(s);
  });

  it('ticks a stream added twice only once per 20 ms', () => {
    vi.useFakeTimers({ now: 0 });
    const clock = new MediaClock(fakeClock);
    const stream = new TickRecorder();
    clock.add(stream);
    clock.add(stream);
    vi.advanceTimersByTime(200);
    expect(stream.ticks).toHaveLength(10);
    expect(clock.size).toBe(1);
    clock.remove(stream);
  });

  it('holds a timer only while streams are registered', () => {
    vi.useFakeTimers({ now: 0 });
    const clock = new MediaClock(fakeClock);
    const a = new TickRecorder();
    const b = new TickRecorder();
    expect(vi.getTimerCount()).toBe(0);
    clock.add(a);
    clock.add(b);
    expect(vi.getTimerCount()).toBe(1);
    clock.remove(a);
    vi.advanceTimersByTime(100);
    expect(vi.getTimerCount()).toBe(1);
    clock.remove(b);
    expect(vi.getTimerCount()).toBe(0);
    const ticksAfterRemove = b.ticks.length;
    vi.advanceTimersByTime(100);
    expect(b.ticks).toHaveLength(ticksAfterRemove);

    clock.add(a);
    vi.advanceTimersByTime(FRAME_MS);
    expect(a.ticks.length).toBeGreaterThan(0);
    clock.remove(a);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('drives OutboundAudio at one frame per 20 ms for 10 s with contiguous timestamps', () => {
    vi.useFakeTimers({ now: 0 });
    const clock = new MediaClock(fakeClock);
    const { stream, sink } = outbound();
    clock.add(stream);
    vi.advanceTimersByTime(10_000);
    clock.remove(stream);
    expect(sink.frames).toHaveLength(10_000 / FRAME_MS);
    sink.frames.forEach((frame, n) => expect(frame.timestamp).toBe(INITIAL_TS + n * FRAME_BYTES));
  });

  it(`after a 200 ms stall a stream sends at most ${MAX_CATCHUP} frames, then resumes one per 20 ms`, () => {
    vi.useFakeTimers({ now: 0 });
    const clock = new MediaClock(fakeClock);
    const { stream, sink } = outbound();
    clock.add(stream);
    vi.advanceTimersByTime(100);
    const beforeStall = sink.frames.length;
    vi.setSystemTime(Date.now() + 200); // the event loop was blocked: time moved, timers did not fire
    vi.advanceTimersByTime(5);
    const burst = sink.frames.length - beforeStall;
    expect(burst).toBeGreaterThan(0);
    expect(burst).toBeLessThanOrEqual(MAX_CATCHUP);
    expect(stream.stats.skippedFrames).toBeGreaterThan(0);
    expect(sink.frames[beforeStall]!.marker).toBe(true);

    const afterBurst = sink.frames.length;
    vi.advanceTimersByTime(200);
    expect(sink.frames.length - afterBurst).toBe(10);
    clock.remove(stream);
  });
});
