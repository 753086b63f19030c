// EarlyAudio: what the agent says before the call has media (the greeting, while the phone rings).
import { describe, expect, it } from 'vitest';
import { TypedEmitter } from '../../../src/core/events.js';
import type {
  RealtimeCapabilities,
  RealtimeEvents,
  RealtimeSession,
  SessionAudioFormats,
} from '../../../src/ai/realtime.js';
import { EarlyAudio } from '../../../src/call/early-audio.js';

/** A provider session whose events the test emits. */
class ScriptedSession extends TypedEmitter<RealtimeEvents> implements RealtimeSession {
  readonly provider = 'scripted';
  readonly capabilities: RealtimeCapabilities = {
    truncate: true,
    toolCalls: false,
    serverVad: true,
    g711Passthrough: true,
  };
  readonly audioFormats: SessionAudioFormats = { input: { encoding: 'g711' }, output: { encoding: 'g711' } };
  constructor() {
    super((error) => {
      throw error;
    });
  }
  sendAudio(): void {}
  respond(): void {}
  truncate(): void {}
  sendToolResult(): void {}
  close(): void {}
  fire<K extends keyof RealtimeEvents & string>(event: K, ...args: RealtimeEvents[K]): void {
    this.safeEmit(event, ...args);
  }
}

describe('EarlyAudio', () => {
  it('holds the greeting audio and its transcript until release(), in order', () => {
    const session = new ScriptedSession();
    const early = new EarlyAudio(session);
    session.fire('audio', { data: Uint8Array.of(1, 2), itemId: 'greeting' });
    session.fire('audio', { data: Uint8Array.of(3), itemId: 'greeting' });
    session.fire('transcript', { role: 'agent', text: 'Hello, this is the assistant.' });

    const held = early.release();
    expect(held.audio.map((a) => [...a.data])).toEqual([[1, 2], [3]]);
    expect(held.audio.every((a) => a.itemId === 'greeting')).toBe(true);
    expect(held.transcripts).toEqual([{ role: 'agent', text: 'Hello, this is the assistant.' }]);
  });

  it('stops listening at release(): later audio and transcripts are the bridge’s, not held twice', () => {
    const session = new ScriptedSession();
    const early = new EarlyAudio(session);
    early.release();
    session.fire('audio', { data: Uint8Array.of(9), itemId: 'reply' });
    session.fire('transcript', { role: 'caller', text: 'hi' });
    expect(early.release()).toEqual({ audio: [], transcripts: [] });
    expect(session.listenerCount('audio')).toBe(0);
    expect(session.listenerCount('transcript')).toBe(0);
  });
});
