import type { Clock } from '../core/clock.js';
import { FRAME_MS } from '../core/audio.js';

/** Something driven by the shared clock. */
export interface Paced {
  /**
   * Called once per 20 ms with the slot's *scheduled* monotonic time (not the wake-up time), so that
   * timer jitter can never make a stream see 19.9 ms where 20 ms were meant and skip a frame.
   */
  onTick(slotTime: number): void;
}

/**
 * Slots per 20 ms frame. Streams are spread over these phases so that 500 calls do not all send in
 * the same timer callback; each stream still ticks exactly once per 20 ms.
 */
const PHASES = 4;
const SLOT_MS = FRAME_MS / PHASES;
/**
 * After an event-loop stall, replay at most one frame's worth of slots, so each stream is ticked at
 * most once per wake-up and its own catch-up bound (3 frames) is the whole burst.
 */
const MAX_SLOTS_PER_WAKEUP = PHASES;

/**
 * The one timer that paces all outbound media. Slot k fires at t0 + k·5 ms, computed from the
 * monotonic clock each time, so timer lateness never accumulates into drift. Runs only while
 * streams are registered, so an idle process holds no timer.
 */
export class MediaClock {
  readonly #clock: Clock;
  readonly #phases: Set<Paced>[] = Array.from({ length: PHASES }, () => new Set<Paced>());
  readonly #phaseOf = new Map<Paced, number>();
  #t0 = 0;
  #slot = 0;
  #timer: NodeJS.Timeout | undefined;
  #nextPhase = 0;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  get size(): number {
    return this.#phaseOf.size;
  }

  /** Monotonic time of the slot the stream will first tick in. */
  add(stream: Paced): void {
    if (this.#phaseOf.has(stream)) return;
    // Fill the least-loaded phase to keep per-slot work even.
    let phase = this.#nextPhase;
    for (let i = 0; i < PHASES; i++) if (this.#phases[i]!.size < this.#phases[phase]!.size) phase = i;
    this.#nextPhase = (phase + 1) % PHASES;
    this.#phases[phase]!.add(stream);
    this.#phaseOf.set(stream, phase);
    if (this.#timer === undefined) this.#start();
  }

  remove(stream: Paced): void {
    const phase = this.#phaseOf.get(stream);
    if (phase === undefined) return;
    this.#phases[phase]!.delete(stream);
    this.#phaseOf.delete(stream);
    if (this.#phaseOf.size === 0) this.#stop();
  }

  #start(): void {
    this.#t0 = this.#clock.now();
    this.#slot = 0;
    this.#schedule();
  }

  #stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    const due = this.#t0 + (this.#slot + 1) * SLOT_MS;
    this.#timer = setTimeout(this.#wake, Math.max(0, due - this.#clock.now()));
  }

  readonly #wake = (): void => {
    const now = this.#clock.now();
    const current = Math.floor((now - this.#t0) / SLOT_MS);
    // Skip slots beyond the replay bound: streams notice the gap themselves and advance their timestamps.
    let slot = Math.max(this.#slot + 1, current - MAX_SLOTS_PER_WAKEUP + 1);
    for (; slot <= current; slot++) {
      const slotTime = this.#t0 + slot * SLOT_MS;
      for (const stream of this.#phases[slot % PHASES]!) stream.onTick(slotTime);
    }
    this.#slot = Math.max(this.#slot, current);
    if (this.#phaseOf.size > 0) this.#schedule();
    else this.#timer = undefined;
  };
}
