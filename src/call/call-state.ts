import { InvalidStateError } from '../core/errors.js';

/** A call's life, as one union (never a set of booleans). */
export type CallState = 'ringing' | 'answering' | 'active' | 'transferring' | 'bridged' | 'ending' | 'ended';

const ALLOWED: Readonly<Record<CallState, readonly CallState[]>> = {
  // Outbound calls go straight from ringing to active when the callee answers.
  ringing: ['answering', 'active', 'ending'],
  answering: ['active', 'ending'],
  active: ['transferring', 'ending'],
  // A failed transfer returns the caller to the agent; a bridged one relays caller ↔ human.
  transferring: ['active', 'bridged', 'ending'],
  bridged: ['ending'],
  ending: ['ended'],
  ended: [],
};

export class CallStateMachine {
  #state: CallState = 'ringing';
  readonly #changedAt: Partial<Record<CallState, number>> = { ringing: Date.now() };

  get state(): CallState {
    return this.#state;
  }

  /** Wall-clock time each state was entered (for call records). */
  get timestamps(): Readonly<Partial<Record<CallState, number>>> {
    return this.#changedAt;
  }

  is(...states: CallState[]): boolean {
    return states.includes(this.#state);
  }

  transition(to: CallState): void {
    if (!ALLOWED[this.#state].includes(to)) {
      throw new InvalidStateError(`illegal call state change ${this.#state} → ${to}`);
    }
    this.#state = to;
    this.#changedAt[to] = Date.now();
  }
}
