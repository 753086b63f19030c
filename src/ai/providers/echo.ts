import { TypedEmitter } from '../../core/events.js';
import type { Clock } from '../../core/clock.js';
import type {
  RealtimeCapabilities,
  SessionAudioFormats,
  RealtimeEvents,
  RealtimeProvider,
  RealtimeSession,
  SessionOptions,
} from '../realtime.js';

interface Delayed {
  data: Uint8Array;
  due: number;
}

/** Bound on audio held for echo (10 s at 8 kHz): a stuck timer can never grow memory. */
const MAX_PENDING_BYTES = 80_000;

/**
 * Plays the caller's audio back after a fixed delay: no key needed, the phone-path self-test.
 */
class EchoSession extends TypedEmitter<RealtimeEvents> implements RealtimeSession {
  readonly provider = 'echo';
  readonly capabilities: RealtimeCapabilities = {
    truncate: false,
    toolCalls: false,
    serverVad: false,
    g711Passthrough: true,
  };
  readonly audioFormats: SessionAudioFormats = { input: { encoding: 'g711' }, output: { encoding: 'g711' } };
  readonly #delayMs: number;
  readonly #clock: Clock;
  readonly #pending: Delayed[] = [];
  #pendingBytes = 0;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(delayMs: number, clock: Clock, options: SessionOptions) {
    super((error, event) => options.log.error({ err: error, event }, 'echo listener threw'));
    this.#delayMs = delayMs;
    this.#clock = clock;
  }

  sendAudio(data: Uint8Array): void {
    if (this.#closed || this.#pendingBytes + data.length > MAX_PENDING_BYTES) return;
    // Copy: the RTP layer reuses its receive buffers.
    this.#pending.push({ data: Uint8Array.from(data), due: this.#clock.now() + this.#delayMs });
    this.#pendingBytes += data.length;
    if (this.#timer === undefined) this.#arm();
  }

  truncate(): void {}
  sendToolResult(): void {}
  respond(): void {}

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#pending.length = 0;
    this.safeEmit('close', { expected: true, reason: 'closed' });
    this.removeAllListeners();
  }

  #arm(): void {
    const head = this.#pending[0];
    if (!head) return;
    this.#timer = setTimeout(this.#release, Math.max(0, head.due - this.#clock.now()));
  }

  readonly #release = (): void => {
    this.#timer = undefined;
    const now = this.#clock.now();
    while (this.#pending.length > 0 && this.#pending[0]!.due <= now) {
      const item = this.#pending.shift()!;
      this.#pendingBytes -= item.data.length;
      this.safeEmit('audio', { data: item.data, itemId: 'echo' });
    }
    // A listener may have called sendAudio() and armed a timer already; never orphan one.
    if (!this.#closed && this.#timer === undefined) this.#arm();
  };
}

export class EchoProvider implements RealtimeProvider {
  readonly name = 'echo';
  constructor(
    private readonly delayMs: number,
    private readonly clock: Clock,
  ) {}

  connect(options: SessionOptions): Promise<RealtimeSession> {
    return Promise.resolve(new EchoSession(this.delayMs, this.clock, options));
  }
}
