import type { AgentAudio, RealtimeSession, Transcript } from '../ai/realtime.js';

/** Greeting audio held before answer: 10 s at 24 kHz PCM16 is the worst case we keep. */
const MAX_EARLY_BYTES = 480_000;

/** What the agent said before the call had media: audio to play first, transcripts to record. */
export interface HeldAgentOutput {
  audio: AgentAudio[];
  transcripts: Transcript[];
}

/**
 * Holds agent audio that arrives before the call has media (the greeting is generated while the phone
 * rings), so the callee hears it from the first packet after answer instead of waiting for the model.
 * The greeting's transcript usually completes before the answer too; it is held alongside, so the call's
 * transcript starts with the greeting.
 */
export class EarlyAudio {
  readonly #session: RealtimeSession;
  readonly #chunks: AgentAudio[] = [];
  readonly #transcripts: Transcript[] = [];
  #bytes = 0;
  #dropped = 0;

  constructor(session: RealtimeSession) {
    this.#session = session;
    session.on('audio', this.#onAudio);
    session.on('transcript', this.#onTranscript);
  }

  get droppedBytes(): number {
    return this.#dropped;
  }

  /** Stops buffering and hands over what was held, oldest first. */
  release(): HeldAgentOutput {
    this.#session.off('audio', this.#onAudio);
    this.#session.off('transcript', this.#onTranscript);
    return { audio: this.#chunks.splice(0), transcripts: this.#transcripts.splice(0) };
  }

  readonly #onTranscript = (entry: Transcript): void => {
    this.#transcripts.push({ ...entry });
  };

  readonly #onAudio = (audio: AgentAudio): void => {
    if (this.#bytes + audio.data.length > MAX_EARLY_BYTES) {
      this.#dropped += audio.data.length;
      return;
    }
    this.#bytes += audio.data.length;
    this.#chunks.push({ data: Uint8Array.from(audio.data), itemId: audio.itemId });
  };
}
