import { g711Ms } from '../core/audio.js';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import type { MediaSession } from '../media/media-session.js';
import { createCallerToProvider, createProviderToCaller } from '../media/audio-convert.js';
import type { AgentAudio, RealtimeSession, SessionClosed, Transcript } from '../ai/realtime.js';

export interface BridgeCallbacks {
  transcript(entry: Transcript): void;
  /** The provider went away without being asked to. */
  providerLost(reason: string): void;
}

/** Audio arriving this recently means the reply may still be streaming, so a barge-in should truncate. */
const STREAMING_WINDOW_MS = 1000;

export interface BridgeStats {
  /** Monotonic ms from bridge start to the first agent audio queued for the caller. */
  firstAgentAudioMs: number | undefined;
  bargeIns: number;
}

/**
 * Joins one call's media to one AI session: caller RTP payloads go to the provider; agent audio is
 * queued for paced playout; barge-in flushes the queue at once, measures what was really sent and
 * truncates the provider's item there (STYLE.md habit 7).
 */
export class AudioBridge {
  readonly stats: BridgeStats = { firstAgentAudioMs: undefined, bargeIns: 0 };
  readonly #media: MediaSession;
  readonly #ai: RealtimeSession;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #startedAt: number;
  #lastAgentAudioAt = -Infinity;
  #stopped = false;
  #paused = false;
  #detach: () => void = () => {};
  readonly #toCaller: ReturnType<typeof createProviderToCaller>;

  constructor(
    media: MediaSession,
    ai: RealtimeSession,
    callbacks: BridgeCallbacks,
    clock: Clock,
    log: Logger,
    /** Agent audio that arrived before media existed (see EarlyAudio); played first. */
    early: readonly AgentAudio[] = [],
  ) {
    this.#media = media;
    this.#ai = ai;
    this.#log = log;
    this.#clock = clock;
    this.#startedAt = clock.now();

    // Convert between the call's G.711 and what the provider speaks (identity for G.711 providers).
    const toProvider = createCallerToProvider(media.codec, ai.audioFormats.input);
    this.#toCaller = createProviderToCaller(media.codec, ai.audioFormats.output);
    const onFrame = (payload: Uint8Array): void => {
      if (!this.#stopped && !this.#paused) ai.sendAudio(toProvider(payload));
    };
    const onAgentAudio = ({ data, itemId }: AgentAudio): void => {
      if (this.#stopped || this.#paused) return;
      const now = clock.now();
      this.stats.firstAgentAudioMs ??= now - this.#startedAt;
      this.#lastAgentAudioAt = now;
      media.outbound.enqueue(this.#toCaller(data), itemId);
    };
    for (const audio of early) onAgentAudio(audio);
    const onSpeechStarted = (): void => this.bargeIn();
    const onTranscript = (entry: Transcript): void => callbacks.transcript(entry);
    const onError = (error: Error): void => log.warn({ err: error }, 'provider reported an error');
    const onClose = ({ expected, reason }: SessionClosed): void => {
      if (!expected && !this.#stopped) callbacks.providerLost(reason);
    };
    media.on('frame', onFrame);
    ai.on('audio', onAgentAudio);
    ai.on('speechStarted', onSpeechStarted);
    ai.on('transcript', onTranscript);
    ai.on('error', onError);
    ai.on('close', onClose);
    // stop() detaches everything: a session that outlives this bridge (warm transfer) stays clean.
    this.#detach = () => {
      media.off('frame', onFrame);
      ai.off('audio', onAgentAudio);
      ai.off('speechStarted', onSpeechStarted);
      ai.off('transcript', onTranscript);
      ai.off('error', onError);
      ai.off('close', onClose);
    };
  }

  /** The caller talks over the agent: silence within one packet time, then tell the provider what was heard. */
  bargeIn(): void {
    if (this.#stopped || this.#paused) return;
    const outbound = this.#media.outbound;
    const dropped = outbound.flush();
    this.#toCaller.reset(); // the cut reply's filter history and odd byte must not leak into the next
    const playing = outbound.playingTag;
    const streaming = this.#clock.now() - this.#lastAgentAudioAt < STREAMING_WINDOW_MS;
    // Items the caller did not hear in full: the one playing (if cut or still streaming) and every
    // queued one, which was heard for 0 ms.
    const cut = new Set(dropped.tags);
    if (playing !== undefined && (dropped.bytes > 0 || streaming)) cut.add(playing);
    if (cut.size === 0) return;
    this.stats.bargeIns++;
    for (const itemId of cut) {
      const playedMs = Math.floor(g711Ms(outbound.sentBytesOf(itemId)));
      this.#log.debug({ itemId, playedMs }, 'barge-in: playback flushed');
      if (this.#ai.capabilities.truncate) this.#ai.truncate(itemId, playedMs);
    }
  }

  /**
   * While a transfer is in progress the agent is out of the conversation: caller audio is not sent to
   * it and anything it says is dropped. resume() brings it back.
   */
  pause(): void {
    this.#paused = true;
    this.#media.outbound.flush();
    this.#toCaller.reset();
  }

  resume(): void {
    this.#paused = false;
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#detach();
  }
}
