import type { RemoteInfo, Socket } from 'node:dgram';
import { randomInt } from 'node:crypto';
import { RtpPacket } from 'rtp.js/packets';
import { TypedEmitter } from '../core/events.js';
import type { Logger } from '../core/log.js';
import { SAMPLES_PER_FRAME } from '../core/audio.js';
import { RTP_FIXED_HEADER_BYTES, RtpHeader } from './rtp-header.js';

export interface RtpStats {
  packetsReceived: number;
  bytesReceived: number;
  packetsSent: number;
  bytesSent: number;
  /** Not RTP, wrong version, or unparsable. */
  malformed: number;
  /** RTP from a source other than the latched one, or with a payload type we did not negotiate. */
  ignored: number;
  /** Packets dropped because the per-call rate cap was exceeded (a flood, not a phone). */
  rateLimited: number;
}

export interface RtpEndpointEvents extends Record<string, unknown[]> {
  /** Audio payload of a packet with the negotiated codec PT. `payload` is only valid during the call. */
  audio: [payload: Uint8Array, sequenceNumber: number, timestamp: number, ssrc: number, marker: boolean];
  /** RFC 4733 telephone-event packet (decoded by the DTMF stage, never by the audio decoder). */
  telephoneEvent: [payload: Uint8Array, timestamp: number, marker: boolean];
  /** First packet from the remote after a (re)latch; `address:port` is where we now send. */
  latched: [address: string, port: number];
}

export interface RemoteMedia {
  address: string;
  port: number;
  payloadType: number;
  telephoneEventPayloadType: number | undefined;
}

/** Largest payload we send: G.711 20 ms is 160 bytes; DTMF events are 4. */
const MAX_PAYLOAD_BYTES = 320;
const RATE_WINDOW_MS = 1000;
/** Four times a phone's peak rate (100 packets/s): generous for bursts after a network stall. */
const MAX_PACKETS_PER_WINDOW = 400;
/** Packets in flight before a send buffer is reused; far above the pacer's 3-packet catch-up burst. */
const SEND_RING_SIZE = 16;

/**
 * One call's RTP socket: parses and validates incoming packets, latches to the sender's real address
 * (symmetric RTP, RFC 4961), and sends packets with one SSRC and a continuous sequence for the whole call.
 * Knows nothing of codecs beyond payload-type numbers.
 */
export class RtpEndpoint extends TypedEmitter<RtpEndpointEvents> {
  readonly stats: RtpStats = {
    packetsReceived: 0,
    bytesReceived: 0,
    packetsSent: 0,
    bytesSent: 0,
    malformed: 0,
    ignored: 0,
    rateLimited: 0,
  };
  readonly ssrc = randomInt(1, 0xffffffff);
  /** Monotonic time (ms) of the last valid packet received; undefined until the first. */
  lastReceivedAt: number | undefined;

  readonly #socket: Socket;
  readonly #log: Logger;
  readonly #now: () => number;
  #remote: RemoteMedia;
  #sendAddress: string;
  #sendPort: number;
  #latched = false;
  #sequence = randomInt(0, 0x10000);
  #closed = false;
  // A small ring of pre-serialized packets: dgram.send() reads its buffer asynchronously, so a buffer
  // may only be reused once several later packets have gone out. No allocation per packet sent.
  readonly #ring: { packet: RtpPacket; bytes: Uint8Array }[] = [];
  #ringIndex = 0;
  /** Parsed fields of the datagram being handled; reused, so receiving allocates no header objects. */
  readonly #header = new RtpHeader();

  constructor(socket: Socket, remote: RemoteMedia, log: Logger, now: () => number) {
    super((error, event) => log.error({ err: error, event }, 'rtp listener threw'));
    this.#socket = socket;
    this.#log = log;
    this.#now = now;
    this.#remote = remote;
    this.#sendAddress = remote.address;
    this.#sendPort = remote.port;
    for (let i = 0; i < SEND_RING_SIZE; i++) {
      const buffer = new ArrayBuffer(RTP_FIXED_HEADER_BYTES + MAX_PAYLOAD_BYTES);
      const packet = new RtpPacket();
      packet.setSsrc(this.ssrc);
      // Serialize once; later fixed-header setters write straight into this buffer (rtp.js model).
      packet.serialize(buffer, 0);
      this.#ring.push({ packet, bytes: new Uint8Array(buffer) });
    }
    socket.on('message', this.#onMessage);
    socket.on('error', this.#onSocketError);
  }

  get remote(): Readonly<RemoteMedia> {
    return this.#remote;
  }

  get sendTarget(): { address: string; port: number } {
    return { address: this.#sendAddress, port: this.#sendPort };
  }

  /** Signalling moved the media (re-INVITE): send to the new SDP address and latch again. */
  updateRemote(remote: RemoteMedia): void {
    this.#remote = remote;
    this.#sendAddress = remote.address;
    this.#sendPort = remote.port;
    this.#latched = false;
  }

  /** Sends one RTP packet; the sequence number advances by one per packet for the whole call. */
  send(payloadType: number, payload: Uint8Array, timestamp: number, marker: boolean): void {
    if (this.#closed || payload.length > MAX_PAYLOAD_BYTES) return;
    const slot = this.#ring[this.#ringIndex]!;
    this.#ringIndex = (this.#ringIndex + 1) % SEND_RING_SIZE;
    const packet = slot.packet;
    packet.setPayloadType(payloadType);
    packet.setSequenceNumber(this.#sequence);
    packet.setTimestamp(timestamp >>> 0);
    packet.setMarker(marker);
    this.#sequence = (this.#sequence + 1) & 0xffff;
    // The header has no CSRC/extension, so the payload always starts at byte 12.
    slot.bytes.set(payload, RTP_FIXED_HEADER_BYTES);
    const length = RTP_FIXED_HEADER_BYTES + payload.length;
    this.#socket.send(slot.bytes, 0, length, this.#sendPort, this.#sendAddress);
    this.stats.packetsSent++;
    this.stats.bytesSent += length;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket.off('message', this.#onMessage);
    this.removeAllListeners();
  }

  readonly #onSocketError = (error: Error): void => {
    // ICMP port-unreachable and similar surface here; they must not kill the call or the process.
    this.#log.debug({ err: error }, 'rtp socket error');
  };

  /**
   * Per-call packet budget per second: 50 audio + 50 DTMF packets is the most a phone sends; anything
   * far beyond is a flood and is dropped before parsing, so one call cannot eat the CPU of all.
   */
  #windowStart = 0;
  #windowPackets = 0;

  #overRate(): boolean {
    const now = this.#now();
    if (now - this.#windowStart >= RATE_WINDOW_MS) {
      this.#windowStart = now;
      this.#windowPackets = 0;
    }
    return ++this.#windowPackets > MAX_PACKETS_PER_WINDOW;
  }

  readonly #onMessage = (message: Buffer, rinfo: RemoteInfo): void => {
    if (this.#overRate()) {
      this.stats.rateLimited++;
      return;
    }
    const header = this.#header;
    const kind = header.parse(message);
    if (kind !== 'rtp') {
      // RTCP belongs on port+1 unless rtcp-mux is negotiated
      if (kind === 'rtcp') this.stats.ignored++;
      else this.stats.malformed++;
      return;
    }
    const pt = header.payloadType;
    const isAudio = pt === this.#remote.payloadType;
    const isEvent = pt === this.#remote.telephoneEventPayloadType;
    if (!isAudio && !isEvent) {
      this.stats.ignored++;
      return;
    }
    if (!this.#latched) {
      this.#latched = true;
      this.#sendAddress = rinfo.address;
      this.#sendPort = rinfo.port;
      this.safeEmit('latched', rinfo.address, rinfo.port);
    } else if (rinfo.port !== this.#sendPort || rinfo.address !== this.#sendAddress) {
      this.stats.ignored++; // RTP bleed / hijack attempt: only signalling may move the media
      return;
    }
    this.stats.packetsReceived++;
    this.stats.bytesReceived += message.byteLength;
    this.lastReceivedAt = this.#now();
    const bytes = message.subarray(header.payloadOffset, header.payloadEnd);
    if (isAudio)
      this.safeEmit('audio', bytes, header.sequenceNumber, header.timestamp, header.ssrc, header.marker);
    else this.safeEmit('telephoneEvent', bytes, header.timestamp, header.marker);
  };
}

/** Samples per 20 ms frame, re-exported for stages that build timestamps. */
export const TIMESTAMP_STEP = SAMPLES_PER_FRAME;
