import { randomInt } from 'node:crypto';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import type { G711Codec } from '../core/audio.js';
import type { MediaClock, Paced } from './media-clock.js';
import { TypedEmitter } from '../core/events.js';
import { DtmfReceiver, DtmfSender, type DtmfDigitEvent } from './dtmf.js';
import { JitterBuffer, type JitterBufferOptions, type JitterBufferStats } from './jitter-buffer.js';
import { PacketLossConcealer } from './plc.js';
import { RtcpSession, type RtcpStats, type SenderSnapshot } from './rtcp-session.js';
import { decodeG711, encodeG711 } from './g711.js';
import { FRAME_MS, SAMPLES_PER_FRAME } from '../core/audio.js';
import { OutboundAudio, type OutboundStats } from './outbound-audio.js';
import type { PortLease } from './port-pool.js';
import { RTP_FIXED_HEADER_BYTES } from './rtp-header.js';
import { RtpEndpoint, type RtpStats } from './rtp-endpoint.js';
import { isUnspecifiedAddress, remoteIsSilent, type NegotiatedMedia } from './sdp.js';

export interface InboundStats {
  /** Caller frames handed on (real audio). */
  frames: number;
  /** Frames synthesized by packet-loss concealment. */
  concealedFrames: number;
}

export interface MediaSessionOptions {
  jitter?: JitterBufferOptions;
}

export interface MediaSessionStats {
  rtp: RtpStats;
  inbound: InboundStats;
  jitter: JitterBufferStats;
  rtcp: RtcpStats;
  outbound: OutboundStats;
  latchedTo: string | undefined;
}

export interface MediaTimeouts {
  /** No RTP at all this long after start → timeout (0 disables). */
  initialMs: number;
  /** No RTP this long mid-call → timeout (0 disables); paused while the remote is on hold. */
  steadyMs: number;
}

/** Bound on AI audio queued ahead of real time (providers send replies much faster than they play). */
const MAX_OUTBOUND_QUEUE_MS = 120_000;

/**
 * One call's media: the RTP port lease, the endpoint and the paced outbound stream. Owns all three and
 * frees them in close(). Knows nothing of SIP or AI.
 */
export interface MediaSessionEvents extends Record<string, unknown[]> {
  /**
   * One 20 ms G.711 frame of the caller's audio per tick, in order, after the jitter buffer; lost
   * packets are concealed (G.711 Appendix I style). Nothing is emitted during silence suppression.
   * `payload` is only valid during the call.
   */
  frame: [payload: Uint8Array, concealed: boolean];
  /** A keypad digit from RFC 4733 telephone-events, reported once when the key is released. */
  digit: [DtmfDigitEvent];
}

export class MediaSession extends TypedEmitter<MediaSessionEvents> implements Paced {
  readonly endpoint: RtpEndpoint;
  readonly outbound: OutboundAudio;
  readonly #lease: PortLease;
  readonly #mediaClock: MediaClock;
  readonly #clock: Clock;
  #media: NegotiatedMedia;
  #latchedTo: string | undefined;
  #startedAt: number;
  /** Why media timeouts are paused right now (hold, transfer); empty = running. */
  readonly #timeoutPauses = new Set<'hold' | 'transfer'>();
  #closed = false;

  readonly #dtmfReceiver = new DtmfReceiver();
  readonly #jitter: JitterBuffer;
  readonly #rtcp: RtcpSession;
  readonly #plc = new PacketLossConcealer();
  #inboundT0: number | undefined;
  #inboundPulled = 0;
  readonly #linear = new Int16Array(SAMPLES_PER_FRAME);
  readonly #concealed = new Uint8Array(SAMPLES_PER_FRAME);
  readonly #inbound: InboundStats = { frames: 0, concealedFrames: 0 };
  #dtmfSender: DtmfSender | undefined;

  constructor(
    lease: PortLease,
    media: NegotiatedMedia,
    mediaClock: MediaClock,
    clock: Clock,
    log: Logger,
    options: MediaSessionOptions = {},
  ) {
    super((error, event) => log.error({ err: error, event }, 'media listener threw'));
    this.#jitter = new JitterBuffer({
      isQuiet: (payload) => isQuietFrame(media.codec, payload),
      ...options.jitter,
    });
    this.#lease = lease;
    this.#media = media;
    this.#mediaClock = mediaClock;
    this.#clock = clock;
    this.#startedAt = clock.now();
    this.endpoint = new RtpEndpoint(lease.socket, remoteOf(media), log, () => clock.now());
    this.endpoint.on('latched', (address, port) => {
      this.#latchedTo = `${address}:${port}`;
      this.#rtcp.setRemote(rtcpTarget(address, port));
      log.debug({ address, port }, 'rtp latched');
    });
    this.outbound = new OutboundAudio({
      codec: media.codec,
      payloadType: media.payloadType,
      sink: this.endpoint,
      initialTimestamp: randomInt(0, 0xffffffff),
      maxQueueMs: MAX_OUTBOUND_QUEUE_MS,
    });
    this.#applyDirection();
    this.#rtcp = new RtcpSession(
      lease.rtcpSocket,
      this.endpoint.ssrc,
      rtcpTarget(media.remoteAddress, media.remotePort),
      () => clock.now(),
      log,
    );
    this.endpoint.on('audio', (payload, seq, timestamp, ssrc, marker) => {
      this.#rtcp.onRtp(ssrc, seq, timestamp, payload.length);
      this.#jitter.push({ seq, timestamp, ssrc, marker, payload }, clock.now());
    });
    this.endpoint.on('telephoneEvent', (payload, timestamp, marker) =>
      this.#dtmfReceiver.onPacket(payload, timestamp, marker, clock.now()),
    );
    this.#dtmfReceiver.on('digit', (digit) => this.safeEmit('digit', digit));
    // Start sending at once (silence): opens NAT pinholes and keeps carrier RTP timers happy.
    mediaClock.add(this);
  }

  /** The shared clock's 20 ms tick: time out DTMF events whose end packets were lost, then send. */
  onTick(slotTime: number): void {
    this.#dtmfReceiver.tick(slotTime);
    this.#playInboundDue(slotTime);
    this.outbound.onTick(slotTime);
    this.#rtcp.tick(slotTime, this.#senderSnapshot);
  }

  readonly #senderSnapshot = (): SenderSnapshot => {
    const sent = this.endpoint.stats;
    return {
      packetCount: sent.packetsSent,
      octetCount: sent.bytesSent - sent.packetsSent * RTP_FIXED_HEADER_BYTES,
      rtpTimestamp: this.outbound.currentTimestamp,
    };
  };

  /**
   * Plays every inbound frame due by `slotTime` (frame n at t0 + n·20 ms). After an event-loop stall the
   * clock skips ticks; catching up here keeps the caller's audio flowing to the AI (in a short burst)
   * instead of letting it pile up in the jitter buffer and be discarded.
   */
  #playInboundDue(slotTime: number): void {
    this.#inboundT0 ??= slotTime;
    const due = Math.floor((slotTime - this.#inboundT0) / FRAME_MS + 1e-6) + 1;
    let pending = due - this.#inboundPulled;
    if (pending > MAX_INBOUND_CATCHUP_FRAMES) {
      this.#inboundPulled += pending - MAX_INBOUND_CATCHUP_FRAMES; // beyond the bound: the buffer discards
      pending = MAX_INBOUND_CATCHUP_FRAMES;
    }
    for (; pending > 0; pending--) {
      this.#playInbound(this.#inboundT0 + this.#inboundPulled * FRAME_MS);
      this.#inboundPulled++;
    }
  }

  /** One frame out of the jitter buffer: real audio (through the PLC history) or a concealed frame. */
  #playInbound(now: number): void {
    const out = this.#jitter.pull(now);
    if (out.kind === 'empty') return;
    const codec = this.#media.codec;
    if (out.kind === 'lost') {
      encodeG711(codec, this.#plc.conceal(), this.#concealed);
      this.#inbound.concealedFrames++;
      this.safeEmit('frame', this.#concealed, true);
      return;
    }
    const merging = this.#plc.concealing;
    const linear = this.#plc.good(decodeG711(codec, out.payload, this.#linear));
    this.#inbound.frames++;
    // After a loss the PLC cross-fades into the real frame: send that blend, not the raw bytes.
    this.safeEmit('frame', merging ? encodeG711(codec, linear, this.#concealed) : out.payload, false);
  }

  /**
   * Queues keypad digits as RFC 4733 events (IVR navigation). Returns false when the far end did not
   * negotiate telephone-event, so digits cannot be sent in band.
   */
  sendDigits(digits: string, durationMs?: number): boolean {
    const payloadType = this.#media.telephoneEventPayloadType;
    if (payloadType === undefined) return false;
    if (!this.#dtmfSender) {
      this.#dtmfSender = new DtmfSender({ payloadType });
      this.outbound.setDtmfSender(this.#dtmfSender);
    }
    this.#dtmfSender.enqueue(digits, durationMs);
    return true;
  }

  get port(): number {
    return this.#lease.port;
  }

  get codec(): G711Codec {
    return this.#media.codec;
  }

  get media(): Readonly<NegotiatedMedia> {
    return this.#media;
  }

  /** Signalling changed the media (re-INVITE): new address/port, direction, hold. Codec stays. */
  update(media: NegotiatedMedia): void {
    const moved =
      media.remoteAddress !== this.#media.remoteAddress || media.remotePort !== this.#media.remotePort;
    this.#media = media;
    if (moved) {
      this.endpoint.updateRemote(remoteOf(media));
      this.#rtcp.setRemote(rtcpTarget(media.remoteAddress, media.remotePort));
    }
    this.#applyDirection();
  }

  /** True when the remote is not sending to us (hold), so silence is expected. */
  get remoteOnHold(): boolean {
    return remoteIsSilent(this.#media);
  }

  /** Describes a media timeout if one has expired at `now`, else undefined. */
  checkTimeout(timeouts: MediaTimeouts, now: number = this.#clock.now()): string | undefined {
    if (this.#closed || this.#timeoutPauses.size > 0) return undefined;
    const last = this.endpoint.lastReceivedAt;
    if (last === undefined) {
      if (timeouts.initialMs > 0 && now - this.#startedAt >= timeouts.initialMs)
        return `no RTP received within ${timeouts.initialMs} ms`;
      return undefined;
    }
    const since = Math.max(last, this.#startedAt);
    if (timeouts.steadyMs > 0 && now - since >= timeouts.steadyMs)
      return `no RTP received for ${timeouts.steadyMs} ms`;
    return undefined;
  }

  stats(): MediaSessionStats {
    return {
      rtp: { ...this.endpoint.stats },
      inbound: { ...this.#inbound },
      jitter: { ...this.#jitter.stats },
      rtcp: this.#rtcp.stats(),
      outbound: { ...this.outbound.stats },
      latchedTo: this.#latchedTo,
    };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#mediaClock.remove(this);
    this.#rtcp.close('hang-up');
    this.#dtmfReceiver.reset();
    this.removeAllListeners();
    this.outbound.flush();
    this.endpoint.close();
    this.#lease.release();
  }

  #applyDirection(): void {
    // We send unless our own direction (the mirror of the remote's) forbids it.
    const weSend =
      (this.#media.localDirection === 'sendrecv' || this.#media.localDirection === 'sendonly') &&
      !isUnspecifiedAddress(this.#media.remoteAddress);
    this.outbound.setPaused(!weSend);
    this.#setTimeoutPause('hold', this.remoteOnHold);
  }

  /** Media timeouts count from now (early media started before the call was answered). */
  restartTimeouts(): void {
    this.#startedAt = this.#clock.now();
  }

  /** A transfer in progress pauses media timeouts (the carrier may hold or stop the caller's RTP). */
  setTransferInProgress(inProgress: boolean): void {
    this.#setTimeoutPause('transfer', inProgress);
  }

  #setTimeoutPause(reason: 'hold' | 'transfer', paused: boolean): void {
    if (paused) {
      this.#timeoutPauses.add(reason);
      return;
    }
    if (!this.#timeoutPauses.delete(reason) || this.#timeoutPauses.size > 0) return;
    // Resume: the steady timeout restarts from now, not from the last packet before the pause.
    this.#startedAt = this.#clock.now();
    if (this.endpoint.lastReceivedAt !== undefined) this.endpoint.lastReceivedAt = this.#startedAt;
  }
}

function remoteOf(media: NegotiatedMedia): {
  address: string;
  port: number;
  payloadType: number;
  telephoneEventPayloadType: number | undefined;
} {
  return {
    address: media.remoteAddress,
    port: media.remotePort,
    payloadType: media.payloadType,
    telephoneEventPayloadType: media.telephoneEventPayloadType,
  };
}

/** RTCP goes to RTP port + 1 (we never negotiate rtcp-mux), until the peer's RTCP shows its real source. */
function rtcpTarget(address: string, rtpPort: number): { address: string; port: number } {
  return { address, port: rtpPort + 1 };
}

/** Inbound frames played in one tick after a stall (6 × 20 ms = 120 ms, the jitter buffer's max delay). */
const MAX_INBOUND_CATCHUP_FRAMES = 6;

/** Mean absolute level below which a frame can be dropped unnoticed (≈ −45 dBFS). */
const QUIET_MEAN_ABS = 180;
const quietScratch = new Int16Array(SAMPLES_PER_FRAME);

function isQuietFrame(codec: G711Codec, payload: Uint8Array): boolean {
  const samples = decodeG711(codec, payload, quietScratch);
  let sum = 0;
  for (let i = 0; i < samples.length; i++) sum += Math.abs(samples[i]!);
  return sum / samples.length < QUIET_MEAN_ABS;
}
