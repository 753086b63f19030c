import { describe, expect, it } from 'vitest';
import { TimeoutError, TypedEmitter, waitFor } from '../../../src/core/events.js';

interface Events extends Record<string, unknown[]> {
  tick: [n: number];
  other: [];
}

class Source extends TypedEmitter<Events> {
  readonly errors: string[] = [];
  constructor() {
    super((error, event) => this.errors.push(`${event}: ${(error as Error).message}`));
  }
  fire(n: number): boolean {
    return this.safeEmit('tick', n);
  }
  clear(): void {
    this.removeAllListeners();
  }
}

describe('TypedEmitter', () => {
  it('calls listeners in order with the arguments and reports whether anyone listened', () => {
    const source = new Source();
    expect(source.fire(0)).toBe(false);
    const seen: string[] = [];
    source.on('tick', (n) => seen.push(`a${n}`));
    source.on('tick', (n) => seen.push(`b${n}`));
    expect(source.fire(1)).toBe(true);
    expect(seen).toEqual(['a1', 'b1']);
    expect(source.listenerCount('tick')).toBe(2);
    expect(source.listenerCount('other')).toBe(0);
  });

  it('isolates a throwing listener: it is reported and the others still run', () => {
    const source = new Source();
    const seen: number[] = [];
    source.on('tick', () => {
      throw new Error('boom');
    });
    source.on('tick', (n) => seen.push(n));
    source.fire(7);
    expect(seen).toEqual([7]);
    expect(source.errors).toEqual(['tick: boom']);
  });

  it('runs a once listener exactly once, even when it re-emits from inside itself', () => {
    const source = new Source();
    const seen: number[] = [];
    source.once('tick', (n) => {
      seen.push(n);
      if (n === 1) source.fire(2);
    });
    source.fire(1);
    source.fire(3);
    expect(seen).toEqual([1]);
    expect(source.listenerCount('tick')).toBe(0);
  });

  it('off removes one registration; changes during an emit apply from the next emit', () => {
    const source = new Source();
    const seen: string[] = [];
    const b = (n: number): void => void seen.push(`b${n}`);
    source.on('tick', (n) => {
      seen.push(`a${n}`);
      source.off('tick', b);
      source.on('tick', (m) => seen.push(`c${m}`));
    });
    source.on('tick', b);
    source.on('tick', b);
    source.fire(1);
    expect(seen).toEqual(['a1', 'b1', 'b1']);
    seen.length = 0;
    source.off('tick', b); // removes the remaining registration of b
    source.clear();
    expect(source.fire(2)).toBe(false);
    expect(seen).toEqual([]);
  });

  it('off of a once listener before it fires removes it', () => {
    const source = new Source();
    const seen: number[] = [];
    const listener = (n: number): void => void seen.push(n);
    source.once('tick', listener);
    source.off('tick', listener);
    source.fire(1);
    expect(seen).toEqual([]);
  });

  it('waitFor resolves with the arguments or rejects with a TimeoutError and unsubscribes', async () => {
    const source = new Source();
    const pending = waitFor(source, 'tick', 1_000);
    source.fire(5);
    await expect(pending).resolves.toEqual([5]);
    await expect(waitFor(source, 'tick', 5)).rejects.toBeInstanceOf(TimeoutError);
    expect(source.listenerCount('tick')).toBe(0);
  });
});
