// The echo provider: the caller's audio comes back after a fixed delay, in order, as copies, bounded.
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Clock } from '../../../src/core/clock.js';
import type { AgentAudio, RealtimeSession, SessionClosed } from '../../../src/ai/realtime.js';
import { EchoProvider } from '../../../src/ai/providers/echo.js';

const log = pino({ level: 'silent' });
const DELAY_MS = 400;
/** One 20 ms G.711 frame. */
const FRAME_BYTES = 160;
/** The provider's documented bound: 10 s of 8 kHz audio. */
const MAX_PENDING_BYTES = 80_000;

/** Date.now is faked together with the timers, so the provider's clock and its setTimeout agree. */
const fakeClock: Clock = { now: () => Date.now() };

function frame(fill: number, bytes = FRAME_BYTES): Uint8Array {
  return new Uint8Array(bytes).fill(fill);
}

async function connect(
  delayMs = DELAY_MS,
): Promise<{ session: RealtimeSession; out: AgentAudio[]; closes: SessionClosed[] }> {
  const session = await new EchoProvider(delayMs, fakeClock).connect({
    codec: 'PCMU',
    instructions: '',
    greeting: '',
    log,
  });
  const out: AgentAudio[] = [];
  const closes: SessionClosed[] = [];
  session.on('audio', (a) => out.push(a));
  session.on('close', (c) => closes.push(c));
  return { session, out, closes };
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('EchoProvider', () => {
  it('describes itself as a pass-through provider that cannot truncate', async () => {
    const { session } = await connect();
    expect(session.provider).toBe('echo');
    expect(session.capabilities).toEqual({
      truncate: false,
      toolCalls: false,
      serverVad: false,
      g711Passthrough: true,
    });
    session.close();
  });

  it('plays audio back only after the configured delay', async () => {
    const { session, out } = await connect();
    session.sendAudio(frame(1));
    await vi.advanceTimersByTimeAsync(DELAY_MS - 1);
    expect(out).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(out).toHaveLength(1);
    expect(Array.from(out[0]!.data)).toEqual(Array.from(frame(1)));
    expect(out[0]!.itemId).toBe('echo');
    session.close();
  });

  it('plays at once with a zero delay', async () => {
    const { session, out } = await connect(0);
    session.sendAudio(frame(9));
    await vi.advanceTimersByTimeAsync(0);
    expect(out.map((a) => a.data[0])).toEqual([9]);
    session.close();
  });

  it('keeps the order and the spacing of what was sent', async () => {
    const { session, out } = await connect();
    session.sendAudio(frame(1));
    session.sendAudio(frame(2));
    await vi.advanceTimersByTimeAsync(100);
    session.sendAudio(frame(3));
    await vi.advanceTimersByTimeAsync(DELAY_MS - 100);
    expect(out.map((a) => a.data[0])).toEqual([1, 2]);
    await vi.advanceTimersByTimeAsync(99);
    expect(out.map((a) => a.data[0])).toEqual([1, 2]);
    await vi.advanceTimersByTimeAsync(1);
    expect(out.map((a) => a.data[0])).toEqual([1, 2, 3]);
    session.close();
  });

  it('echoes a copy: changing the input buffer after sendAudio does not change the echo', async () => {
    const { session, out } = await connect();
    const input = frame(7);
    session.sendAudio(input);
    input.fill(0); // the RTP layer reuses its receive buffers exactly like this
    await vi.advanceTimersByTimeAsync(DELAY_MS);
    expect(out).toHaveLength(1);
    expect(out[0]!.data.every((b) => b === 7)).toBe(true);
    expect(out[0]!.data).not.toBe(input);
    session.close();
  });

  it('copies only the viewed bytes of a subarray', async () => {
    const { session, out } = await connect();
    const backing = new Uint8Array(400).fill(0xee);
    backing.fill(5, 100, 260);
    session.sendAudio(backing.subarray(100, 260));
    await vi.advanceTimersByTimeAsync(DELAY_MS);
    expect(out[0]!.data.length).toBe(160);
    expect(out[0]!.data.every((b) => b === 5)).toBe(true);
    session.close();
  });

  it('stops everything on close(): no audio afterwards, no timers left, close emitted once', async () => {
    const { session, out, closes } = await connect();
    session.sendAudio(frame(1));
    await vi.advanceTimersByTimeAsync(100);
    session.sendAudio(frame(2));
    session.close();
    expect(vi.getTimerCount()).toBe(0);
    session.close();
    session.sendAudio(frame(3));
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(DELAY_MS * 3);
    expect(out).toHaveLength(0);
    expect(closes).toEqual([{ expected: true, reason: 'closed' }]);
  });

  it('holds at most 10 s of audio: the excess is dropped, the oldest audio is kept', async () => {
    const { session, out } = await connect();
    const frames = MAX_PENDING_BYTES / FRAME_BYTES + 50;
    for (let i = 0; i < frames; i++) session.sendAudio(frame(i & 0xff));
    await vi.advanceTimersByTimeAsync(DELAY_MS);
    const echoed = out.reduce((n, a) => n + a.data.length, 0);
    expect(echoed).toBe(MAX_PENDING_BYTES);
    expect(out[0]!.data[0]).toBe(0);
    expect(out.at(-1)!.data[0]).toBe((MAX_PENDING_BYTES / FRAME_BYTES - 1) & 0xff);
    // Once released, there is room again.
    session.sendAudio(frame(0xab));
    await vi.advanceTimersByTimeAsync(DELAY_MS);
    expect(out.at(-1)!.data[0]).toBe(0xab);
    session.close();
  });

  it('keeps echoing when an audio listener throws', async () => {
    const { session, out } = await connect();
    session.on('audio', () => {
      throw new Error('listener bug');
    });
    session.sendAudio(frame(1));
    session.sendAudio(frame(2));
    await vi.advanceTimersByTimeAsync(DELAY_MS);
    expect(out.map((a) => a.data[0])).toEqual([1, 2]);
    session.close();
  });

  it('leaves no timer behind after close() when a listener sent audio from inside an echo', async () => {
    const { session } = await connect();
    let loops = 0;
    session.on('audio', (a) => {
      if (loops++ < 1) session.sendAudio(a.data);
    });
    session.sendAudio(frame(1));
    session.sendAudio(frame(2));
    await vi.advanceTimersByTimeAsync(DELAY_MS);
    session.close();
    expect(vi.getTimerCount()).toBe(0);
  });
});
