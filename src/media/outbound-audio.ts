import type { G711Codec } from '../core/audio.js';
import { FRAME_MS, SAMPLES_PER_FRAME } from '../core/audio.js';
import type { Paced } from './media-clock.js';
import { SILENCE_BYTE } from './g711.js';
import type { DtmfSender } from './dtmf.js';

/** Where a finished 20 ms frame goes (the RTP endpoint, in production). */
export interface FrameSink {
  send(payloadType: number, payload: Uint8Array, timestamp: number, marker: boolean): void;
}

export interface OutboundStats {
  framesSent: number;
  audioFramesSent: number;
  silenceFramesSent: number;
  /** Bytes dropped because the queue was full (the provider sent far ahead of real time). */
  overflowBytes: number;
  /** Frames skipped (timestamp advanced, nothing sent) after an event-loop stall. */
  skippedFrames: number;
  /** RFC 4733 telephone-event packets sent in place of audio. */
  dtmfPackets: number;
}

export interface OutboundAudioOptions {
  codec: G711Codec;
  payloadType: number;
  sink: FrameSink;
  /** Initial RTP timestamp (random per RFC 3550). */
  initialTimestamp: number;
  /** Queue bound in milliseconds of audio. */
  maxQueueMs: number;
}

/** At most this many overdue frames go out in one wake-up after a stall; older ones are skipped. */
const MAX_CATCHUP_FRAMES = 3;

interface Chunk {
  data: Uint8Array;
  offset: number;
  tag: string;
}

/**
 * The caller-facing audio stream: a bounded queue of G.711 audio from the AI, played out as exactly one
 * 20 ms packet per 20 ms (packet n at t0 + n·20 ms), silence when the queue is empty. Counts, per tag
 * (a provider's response item), how many bytes actually went out, which is what barge-in truncation needs.
 */
export class OutboundAudio implements Paced {
  readonly stats: OutboundStats = {
    framesSent: 0,
    audioFramesSent: 0,
    silenceFramesSent: 0,
    overflowBytes: 0,
    skippedFrames: 0,
    dtmfPackets: 0,
  };
  readonly #options: OutboundAudioOptions;
  readonly #queue: Chunk[] = [];
  #queuedBytes = 0;
  readonly #maxQueueBytes: number;
  readonly #frame = new Uint8Array(SAMPLES_PER_FRAME);
  readonly #silence: number;
  #t0: number | undefined;
  /** Frames accounted for since t0 (sent or skipped): the next frame index. */
  #frameIndex = 0;
  #lastWasAudio = false;
  #resyncMarker = true;
  #paused = false;
  #playedTag: string | undefined;
  #filler: Uint8Array | undefined;
  #dtmf: DtmfSender | undefined;
  #fillerOffset = 0;
  #playedTagBytes = 0;

  constructor(options: OutboundAudioOptions) {
    this.#options = options;
    this.#maxQueueBytes = (options.maxQueueMs / FRAME_MS) * SAMPLES_PER_FRAME;
    this.#silence = SILENCE_BYTE[options.codec];
  }

  /** RTP timestamp of the next frame: "now" on this stream's media clock (for RTCP sender reports). */
  get currentTimestamp(): number {
    return (this.#options.initialTimestamp + this.#frameIndex * SAMPLES_PER_FRAME) >>> 0;
  }

  get queuedMs(): number {
    return (this.#queuedBytes / SAMPLES_PER_FRAME) * FRAME_MS;
  }

  /** Queues audio; beyond the bound the excess is dropped and counted. */
  enqueue(data: Uint8Array, tag: string): void {
    if (this.#paused || data.length === 0) return; // on hold the caller cannot hear it: never replay it later
    const room = this.#maxQueueBytes - this.#queuedBytes;
    if (room <= 0) {
      this.stats.overflowBytes += data.length;
      return;
    }
    const accepted = data.length <= room ? data : data.subarray(0, room);
    this.stats.overflowBytes += data.length - accepted.length;
    this.#queue.push({ data: accepted, offset: 0, tag });
    this.#queuedBytes += accepted.length;
  }

  /** Drops everything queued (barge-in): the bytes dropped and the tags they belonged to, in order. */
  flush(): { bytes: number; tags: string[] } {
    const bytes = this.#queuedBytes;
    const tags: string[] = [];
    for (const chunk of this.#queue) if (tags[tags.length - 1] !== chunk.tag) tags.push(chunk.tag);
    this.#queue.length = 0;
    this.#queuedBytes = 0;
    return { bytes, tags };
  }

  /** Tag of the audio most recently put on the wire (undefined before any). */
  get playingTag(): string | undefined {
    return this.#playedTag;
  }

  /** Bytes of `tag` that have actually been sent as RTP. */
  sentBytesOf(tag: string): number {
    return tag === this.#playedTag ? this.#playedTagBytes : 0;
  }

  /**
   * A looped sound played whenever the queue is empty (ringback during a transfer), or undefined for
   * silence. Queued audio always wins; the loop restarts from its beginning each time it is set.
   */
  setFiller(loop: Uint8Array | undefined): void {
    this.#filler = loop !== undefined && loop.length > 0 ? loop : undefined;
    this.#fillerOffset = 0;
  }

  /** Hold (we are recvonly/inactive): keep time, send nothing, drop what the AI says meanwhile. */
  setPaused(paused: boolean): void {
    if (paused === this.#paused) return;
    this.#paused = paused;
    if (paused) this.flush();
    else this.#resyncMarker = true;
  }

  onTick(slotTime: number): void {
    this.#t0 ??= slotTime;
    // Frames due by now: frame n is due at t0 + n·20 ms (the epsilon absorbs float error in slot times).
    const due = Math.floor((slotTime - this.#t0) / FRAME_MS + 1e-6) + 1;
    let pending = due - this.#frameIndex;
    if (pending <= 0) return;
    if (pending > MAX_CATCHUP_FRAMES) {
      // Event-loop stall: advance the timestamp over the gap instead of flooding the network.
      const skipped = pending - MAX_CATCHUP_FRAMES;
      this.#frameIndex += skipped;
      this.stats.skippedFrames += skipped;
      this.#resyncMarker = true;
      pending = MAX_CATCHUP_FRAMES;
    }
    for (; pending > 0; pending--) this.#emitFrame();
  }

  /** RFC 4733 events take over the slots they need; audio waits (never overlaps an event). */
  setDtmfSender(sender: DtmfSender | undefined): void {
    this.#dtmf = sender;
  }

  #emitFrame(): void {
    const timestamp = this.#options.initialTimestamp + this.#frameIndex * SAMPLES_PER_FRAME;
    this.#frameIndex++;
    if (this.#paused) return;
    const event = this.#dtmf?.next(timestamp);
    if (event !== undefined) {
      this.#options.sink.send(event.payloadType, event.payload, event.timestamp, event.marker);
      this.stats.framesSent++;
      this.stats.dtmfPackets++;
      return;
    }
    const hasAudio = this.#fillFrame();
    // Marker: first packet of a talkspurt, and the first after any timestamp discontinuity.
    const marker = this.#resyncMarker || (hasAudio && !this.#lastWasAudio);
    this.#resyncMarker = false;
    this.#lastWasAudio = hasAudio;
    this.#options.sink.send(this.#options.payloadType, this.#frame, timestamp, marker);
    this.stats.framesSent++;
    if (hasAudio) this.stats.audioFramesSent++;
    else this.stats.silenceFramesSent++;
  }

  /** Copies up to one frame of queued audio into #frame, padding with silence. True if any audio. */
  #fillFrame(): boolean {
    const frame = this.#frame;
    let filled = 0;
    while (filled < frame.length && this.#queue.length > 0) {
      const chunk = this.#queue[0]!;
      const take = Math.min(frame.length - filled, chunk.data.length - chunk.offset);
      frame.set(chunk.data.subarray(chunk.offset, chunk.offset + take), filled);
      filled += take;
      chunk.offset += take;
      this.#queuedBytes -= take;
      if (chunk.tag !== this.#playedTag) {
        this.#playedTag = chunk.tag;
        this.#playedTagBytes = 0;
      }
      this.#playedTagBytes += take;
      if (chunk.offset >= chunk.data.length) this.#queue.shift();
    }
    if (filled === 0 && this.#filler !== undefined) return this.#fillFromLoop(this.#filler);
    if (filled < frame.length) frame.fill(this.#silence, filled);
    return filled > 0;
  }

  #fillFromLoop(loop: Uint8Array): boolean {
    const frame = this.#frame;
    for (let i = 0; i < frame.length; i++) {
      frame[i] = loop[this.#fillerOffset]!;
      this.#fillerOffset = (this.#fillerOffset + 1) % loop.length;
    }
    return true;
  }
}
