// The call state machine and the Reason header a termination produces.
import { describe, expect, it } from 'vitest';
import { InvalidStateError } from '../../../src/core/errors.js';
import { CallStateMachine, type CallState } from '../../../src/call/call-state.js';
import { reasonHeader, type TerminationCause } from '../../../src/call/termination.js';

const STATES: readonly CallState[] = [
  'ringing',
  'answering',
  'active',
  'transferring',
  'bridged',
  'ending',
  'ended',
];

/** The only legal moves (STYLE.md habit 4); everything else must throw. */
const LEGAL: Readonly<Record<CallState, readonly CallState[]>> = {
  ringing: ['answering', 'active', 'ending'],
  answering: ['active', 'ending'],
  active: ['transferring', 'ending'],
  transferring: ['active', 'bridged', 'ending'],
  bridged: ['ending'],
  ending: ['ended'],
  ended: [],
};

/** A machine driven along the legal path to `state`. */
function machineIn(state: CallState): CallStateMachine {
  const path: Record<CallState, CallState[]> = {
    ringing: [],
    answering: ['answering'],
    active: ['answering', 'active'],
    transferring: ['answering', 'active', 'transferring'],
    bridged: ['answering', 'active', 'transferring', 'bridged'],
    ending: ['ending'],
    ended: ['ending', 'ended'],
  };
  const machine = new CallStateMachine();
  for (const step of path[state]) machine.transition(step);
  expect(machine.state).toBe(state);
  return machine;
}

describe('CallStateMachine', () => {
  it('starts in ringing with its entry time recorded', () => {
    const machine = new CallStateMachine();
    expect(machine.state).toBe('ringing');
    expect(typeof machine.timestamps.ringing).toBe('number');
    expect(machine.timestamps.active).toBeUndefined();
  });

  it('walks the whole happy path ringing → answering → active → ending → ended, stamping each state', () => {
    const machine = new CallStateMachine();
    const before = Date.now();
    for (const to of ['answering', 'active', 'ending', 'ended'] as const) {
      machine.transition(to);
      expect(machine.state).toBe(to);
      expect(machine.timestamps[to]).toBeGreaterThanOrEqual(before);
    }
    expect(machine.is('ended')).toBe(true);
    expect(machine.is('ringing', 'active')).toBe(false);
  });

  const legal = STATES.flatMap((from) => LEGAL[from].map((to) => [from, to] as const));
  it.each(legal)('allows %s → %s', (from, to) => {
    const machine = machineIn(from);
    machine.transition(to);
    expect(machine.state).toBe(to);
  });

  const illegal = STATES.flatMap((from) =>
    STATES.filter((to) => !LEGAL[from].includes(to)).map((to) => [from, to] as const),
  );
  it.each(illegal)('rejects %s → %s with InvalidStateError and keeps the state', (from, to) => {
    const machine = machineIn(from);
    const stamped = { ...machine.timestamps };
    expect(() => machine.transition(to)).toThrow(InvalidStateError);
    expect(machine.state).toBe(from);
    expect(machine.timestamps).toEqual(stamped);
  });

  it('names both states in the InvalidStateError', () => {
    const machine = machineIn('ended');
    let caught: unknown;
    try {
      machine.transition('active');
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(InvalidStateError);
    expect((caught as InvalidStateError).name).toBe('InvalidStateError');
    expect((caught as Error).message).toContain('ended');
    expect((caught as Error).message).toContain('active');
  });
});

describe('reasonHeader', () => {
  /** Every cause with the Q.850 value it must carry (a missing cause is a compile error here). */
  const EXPECTED: Record<TerminationCause, number> = {
    'caller-hangup': 16,
    'callee-hangup': 16,
    'caller-canceled': 16,
    'callee-busy': 17,
    'no-answer': 19,
    'callee-declined': 21,
    'callee-not-found': 1,
    'trunk-auth-failed': 21,
    'callee-unreachable': 34,
    'outbound-failed': 41,
    'signalling-lost': 41,
    rejected: 21,
    'agent-hangup': 16,
    transferred: 16,
    'provider-failed': 41,
    'media-timeout': 102,
    'negotiation-failed': 88,
    shutdown: 16,
    'internal-error': 41,
  };

  it.each(Object.entries(EXPECTED) as [TerminationCause, number][])(
    '%s gives Q.850;cause=%i;text="..." (RFC 3326)',
    (cause, code) => {
      const header = reasonHeader(cause);
      expect(header).toMatch(/^Q\.850;cause=\d{1,3};text="[^"\\\r\n]+"$/);
      expect(header.startsWith(`Q.850;cause=${code};`)).toBe(true);
    },
  );

  it('gives the exact header for a media timeout', () => {
    expect(reasonHeader('media-timeout')).toBe('Q.850;cause=102;text="Media timeout"');
  });

  it('gives the exact header for normal clearing by the agent', () => {
    expect(reasonHeader('agent-hangup')).toBe('Q.850;cause=16;text="Agent ended the call"');
  });
});
