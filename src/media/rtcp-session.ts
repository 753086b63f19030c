import type { RemoteInfo, Socket } from 'node:dgram';
import type { Logger } from '../core/log.js';
import {
  RtcpScheduler,
  ReceptionStats,
  buildBye,
  buildReport,
  ntpMiddle32,
  ntpNow,
  parseRtcp,
  rttMs,
  type ReceptionSnapshot,
} from './rtcp.js';

/** What the peer told us about our stream, and what we measured about theirs. */
export interface RtcpStats {
  reportsSent: number;
  reportsReceived: number;
  /** Our view of the peer's stream (RFC 3550 A.1/A.8). */
  reception: ReceptionSnapshot;
  /** From the peer's last reception block about us. */
  peer: { fractionLost: number; cumulativeLost: number; jitterMs: number } | undefined;
  /** Round-trip time from the peer's LSR/DLSR (RFC 3550 §6.4.1). */
  rttMs: number | undefined;
  peerSaidBye: boolean;
}

export interface SenderSnapshot {
  packetCount: number;
  octetCount: number;
  /** RTP timestamp of "now" on our outbound media clock. */
  rtpTimestamp: number;
}

const CLOCK_RATE = 8000;

/**
 * RTCP for one call on RTP port + 1: SR/RR about every 5 s, the peer's reports parsed (loss, jitter,
 * RTT), BYE at hang-up. Latches to where the peer's RTCP comes from, like RTP.
 */
export class RtcpSession {
  readonly reception = new ReceptionStats(CLOCK_RATE);
  readonly #socket: Socket;
  readonly #ssrc: number;
  readonly #cname: string;
  readonly #log: Logger;
  readonly #scheduler: RtcpScheduler;
  #remote: { address: string; port: number };
  #remoteSsrc: number | undefined;
  #lastSr: { ntpMiddle32: number; arrivalMs: number } | undefined;
  #now: () => number;
  #stats: Omit<RtcpStats, 'reception'> = {
    reportsSent: 0,
    reportsReceived: 0,
    peer: undefined,
    rttMs: undefined,
    peerSaidBye: false,
  };
  #closed = false;

  constructor(
    socket: Socket,
    ssrc: number,
    remote: { address: string; port: number },
    now: () => number,
    log: Logger,
  ) {
    this.#socket = socket;
    this.#ssrc = ssrc;
    this.#cname = `voxgate-${ssrc.toString(16)}`;
    this.#remote = remote;
    this.#now = now;
    this.#log = log;
    this.#scheduler = new RtcpScheduler(now());
    socket.on('message', this.#onMessage);
    socket.on('error', (error) => log.debug({ err: error }, 'rtcp socket error'));
  }

  /** Every received RTP packet (after validation and latching). */
  onRtp(ssrc: number, seq: number, rtpTimestamp: number, payloadBytes: number): void {
    this.#remoteSsrc = ssrc;
    this.reception.onRtp(seq, rtpTimestamp, this.#now(), payloadBytes);
  }

  /** Signalling moved the media: RTCP follows to the new RTP port + 1. */
  setRemote(remote: { address: string; port: number }): void {
    this.#remote = remote;
  }

  /**
   * Called from the 20 ms media tick; sends a report when one is due. `senderNow` is asked only then,
   * so the per-tick path allocates nothing.
   */
  tick(now: number, senderNow: () => SenderSnapshot): void {
    if (this.#closed || !this.#scheduler.due(now)) return;
    const sender = senderNow();
    const report = buildReport({
      ssrc: this.#ssrc,
      cname: this.#cname,
      sender: sender.packetCount > 0 ? { ntpTime: ntpNow(), ...sender } : undefined,
      reception:
        this.#remoteSsrc !== undefined && this.reception.hasData
          ? {
              remoteSsrc: this.#remoteSsrc,
              stats: this.reception,
              lastSrNtpMiddle32: this.#lastSr?.ntpMiddle32,
              lastSrArrivalMs: this.#lastSr?.arrivalMs,
              nowMs: now,
            }
          : undefined,
    });
    this.#send(report);
    this.#stats.reportsSent++;
  }

  stats(): RtcpStats {
    return { ...this.#stats, reception: this.reception.snapshot() };
  }

  /** Sends BYE (RFC 3550 §6.6) and stops listening. The socket belongs to the port lease. */
  close(reason?: string): void {
    if (this.#closed) return;
    this.#send(buildBye(this.#ssrc, reason, this.#cname));
    this.#closed = true;
    this.#socket.off('message', this.#onMessage);
  }

  #send(bytes: Uint8Array): void {
    if (this.#remote.address === '0.0.0.0' || this.#remote.address === '::') return;
    try {
      this.#socket.send(bytes, this.#remote.port, this.#remote.address);
    } catch (error) {
      this.#log.debug({ err: error }, 'rtcp send failed');
    }
  }

  readonly #onMessage = (message: Buffer, rinfo: RemoteInfo): void => {
    const parsed = parseRtcp(message, this.#ssrc);
    if (!parsed) return;
    this.#stats.reportsReceived++;
    this.#remote = { address: rinfo.address, port: rinfo.port }; // symmetric RTCP
    const arrival = this.#now();
    const sr = parsed.senderReports[parsed.senderReports.length - 1];
    if (sr) this.#lastSr = { ntpMiddle32: sr.ntpMiddle32, arrivalMs: arrival };
    const block = parsed.receptionBlocks[parsed.receptionBlocks.length - 1];
    if (block) {
      this.#stats.peer = {
        fractionLost: block.fractionLost / 256,
        cumulativeLost: block.cumulativeLost,
        jitterMs: (block.jitter / CLOCK_RATE) * 1000,
      };
      this.#stats.rttMs = rttMs(block.lsr, block.dlsr, ntpMiddle32(ntpNow())) ?? this.#stats.rttMs;
    }
    if (parsed.bye) this.#stats.peerSaidBye = true;
  };
}
