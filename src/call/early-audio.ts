import type { AgentAudio, RealtimeSession } from '../ai/realtime.js';

/** Greeting audio held before answer: 10 s at 24 kHz PCM16 is the worst case we keep. */
const MAX_EARLY_BYTES = 480_000;

/**
 * Holds agent audio that arrives before the call has media (the greeting is generated while the phone
 * rings), so the callee hears it from the first packet after answer instead of waiting for the model.
 */
export class EarlyAudio {
  readonly #session: RealtimeSession;
  readonly #chunks: AgentAudio[] = [];
  #bytes = 0;
  #dropped = 0;

  constructor(session: RealtimeSession) {
    this.#session = session;
    session.on('audio', this.#onAudio);
  }

  get droppedBytes(): number {
    return this.#dropped;
  }

  /** Stops buffering and hands over what was held, oldest first. */
  release(): AgentAudio[] {
    this.#session.off('audio', this.#onAudio);
    return this.#chunks.splice(0);
  }

  readonly #onAudio = (audio: AgentAudio): void => {
    if (this.#bytes + audio.data.length > MAX_EARLY_BYTES) {
      this.#dropped += audio.data.length;
      return;
    }
    this.#bytes += audio.data.length;
    this.#chunks.push({ data: Uint8Array.from(audio.data), itemId: audio.itemId });
  };
}
