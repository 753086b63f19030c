import type { MediaSession } from './media-session.js';

/** Tag for relayed audio in the outbound queues (nothing truncates it). */
const RELAY_TAG = 'relay';

/**
 * Bridged transfer: audio from each leg is queued on the other leg's paced outbound stream, so each
 * side keeps its own SSRC, sequence and timestamps. Both legs use the same codec (we offer only the
 * caller's codec to the second leg), so payloads pass through untouched.
 */
export class MediaRelay {
  readonly #a: MediaSession;
  readonly #b: MediaSession;
  #stopped = false;

  constructor(a: MediaSession, b: MediaSession) {
    this.#a = a;
    this.#b = b;
    a.on('frame', this.#fromA);
    b.on('frame', this.#fromB);
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#a.off('frame', this.#fromA);
    this.#b.off('frame', this.#fromB);
  }

  // Copies: a receive buffer must not be referenced after the packet is handled.
  readonly #fromA = (payload: Uint8Array): void =>
    this.#b.outbound.enqueue(Uint8Array.from(payload), RELAY_TAG);
  readonly #fromB = (payload: Uint8Array): void =>
    this.#a.outbound.enqueue(Uint8Array.from(payload), RELAY_TAG);
}
