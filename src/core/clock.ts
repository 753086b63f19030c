import { performance } from 'node:perf_hooks';

/** Monotonic time in milliseconds (fractional). Injected so pacing and timeouts are testable. */
export interface Clock {
  now(): number;
}

export const monotonicClock: Clock = { now: () => performance.now() };
