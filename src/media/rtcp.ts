// RTCP for one call (RFC 3550 §6): reception statistics kept per RTP packet, SR/RR/BYE compound packets
// built with rtp.js, peer reports parsed into plain data, RTT from LSR/DLSR, and the randomized report
// interval. Pure: no sockets or timers; the call owner sends the bytes and decides when.
import {
  ByePacket,
  CompoundPacket,
  ReceiverReportPacket,
  ReceptionReport,
  SdesChunk,
  SdesPacket,
  SenderReportPacket,
  isRtcp,
  type RtcpPacket,
  type SdesItemType,
} from 'rtp.js/packets';
import { G711_SAMPLE_RATE } from '../core/audio.js';

// ---------------------------------------------------------------------------------------------------
// Reception statistics (RFC 3550 A.1, A.3, A.8)
// ---------------------------------------------------------------------------------------------------

const RTP_SEQ_MOD = 0x10000;
/** RFC 3550 A.1: a forward jump of fewer than this many sequence numbers is ordinary loss. */
const MAX_DROPOUT = 3000;
/** RFC 3550 A.1: a backward step of up to this many is reordering or a duplicate. */
const MAX_MISORDER = 100;
/** Cumulative lost is a signed 24-bit field (RFC 3550 §6.4.1), clamped rather than wrapped. */
const MAX_CUMULATIVE_LOST = 0x7fffff;
const MIN_CUMULATIVE_LOST = -0x800000;

/** What a reception report block says about one source, for the interval since the previous block. */
export interface ReceptionBlockData {
  /** Fraction of packets lost since the previous report, as on the wire: lost·256/expected, 0–255. */
  fractionLost: number;
  /** Expected − received since the start, clamped to 24-bit signed (duplicates can make it negative). */
  cumulativeLost: number;
  /** Cycles·65536 + highest sequence number received, mod 2^32. */
  extendedHighestSeq: number;
  /** Interarrival jitter in timestamp units (RFC 3550 A.8), rounded down. */
  jitter: number;
}

export interface ReceptionSnapshot {
  /** Packets counted by RFC 3550 A.1 (duplicates included, as the RFC does). */
  packetsReceived: number;
  bytesReceived: number;
  /** Packets ignored as a sequence jump that was not (yet) confirmed by the next packet. */
  packetsDiscarded: number;
  extendedHighestSeq: number;
  /** Number of times the 16-bit sequence number wrapped. */
  seqWraps: number;
  expected: number;
  cumulativeLost: number;
  /** Fraction lost (0–255) in the last report block taken; 0 before any. */
  lastFractionLost: number;
  /** Interarrival jitter, timestamp units (fractional). */
  jitter: number;
  jitterMs: number;
}

/**
 * Per-source reception statistics, fed once per received RTP packet with no allocation. Sequence
 * tracking follows RFC 3550 A.1 without the probation step (the RTP endpoint has already latched and
 * validated the source): the first packet sets the base, a jump of ≥ 3000 is believed only when the
 * next packet continues it (then the counters restart), and wraps of the 16-bit number are counted.
 */
export class ReceptionStats {
  readonly #unitsPerMs: number;
  #started = false;
  #baseSeq = 0;
  #maxSeq = 0;
  /** Shifted count of wraps, as A.1's `cycles`. */
  #cycles = 0;
  #badSeq = RTP_SEQ_MOD + 1;
  #received = 0;
  #receivedPrior = 0;
  #expectedPrior = 0;
  #bytes = 0;
  #discarded = 0;
  #lastFractionLost = 0;
  #hasTiming = false;
  #lastArrival = 0;
  #lastTimestamp = 0;
  #jitter = 0;

  constructor(clockRate: number = G711_SAMPLE_RATE) {
    this.#unitsPerMs = clockRate / 1000;
  }

  /** One audio packet: counts it and takes a jitter sample. `arrivalMs` is monotonic. */
  onRtp(seq: number, rtpTimestamp: number, arrivalMs: number, payloadBytes = 0): void {
    if (!this.#count(seq, payloadBytes)) return;
    // A.8, written as (arrival delta) − (timestamp delta) so a 32-bit timestamp wrap does no harm.
    const arrival = arrivalMs * this.#unitsPerMs;
    const timestamp = rtpTimestamp >>> 0;
    if (this.#hasTiming) {
      const d = arrival - this.#lastArrival - ((timestamp - this.#lastTimestamp) | 0);
      this.#jitter += (Math.abs(d) - this.#jitter) / 16;
    }
    this.#hasTiming = true;
    this.#lastArrival = arrival;
    this.#lastTimestamp = timestamp;
  }

  /**
   * A packet of the same stream whose timestamp does not follow the media clock (RFC 4733 events keep
   * one timestamp for the whole tone): counted for loss, but no jitter sample.
   */
  onUntimedRtp(seq: number, payloadBytes = 0): void {
    this.#count(seq, payloadBytes);
  }

  /** Cumulative numbers; does not advance the report interval. */
  snapshot(): ReceptionSnapshot {
    const expected = this.#expected();
    return {
      packetsReceived: this.#received,
      bytesReceived: this.#bytes,
      packetsDiscarded: this.#discarded,
      extendedHighestSeq: this.#extendedMax() >>> 0,
      seqWraps: this.#cycles / RTP_SEQ_MOD,
      expected,
      cumulativeLost: expected - this.#received,
      lastFractionLost: this.#lastFractionLost,
      jitter: this.#jitter,
      jitterMs: this.#jitter / this.#unitsPerMs,
    };
  }

  /** Whether any packet has been counted (a report block about nothing is not sent). */
  get hasData(): boolean {
    return this.#started;
  }

  /** The report block for the interval since the previous call (RFC 3550 A.3); starts a new interval. */
  takeReportBlock(): ReceptionBlockData {
    const expected = this.#expected();
    const expectedInterval = expected - this.#expectedPrior;
    this.#expectedPrior = expected;
    const receivedInterval = this.#received - this.#receivedPrior;
    this.#receivedPrior = this.#received;
    const lostInterval = expectedInterval - receivedInterval;
    const fractionLost =
      expectedInterval <= 0 || lostInterval <= 0
        ? 0
        : Math.min(255, Math.floor((lostInterval * 256) / expectedInterval));
    this.#lastFractionLost = fractionLost;
    return {
      fractionLost,
      cumulativeLost: Math.max(MIN_CUMULATIVE_LOST, Math.min(MAX_CUMULATIVE_LOST, expected - this.#received)),
      extendedHighestSeq: this.#extendedMax() >>> 0,
      jitter: Math.floor(this.#jitter),
    };
  }

  #extendedMax(): number {
    return this.#cycles + this.#maxSeq;
  }

  #expected(): number {
    return this.#started ? this.#extendedMax() - this.#baseSeq + 1 : 0;
  }

  #init(seq: number): void {
    this.#baseSeq = seq;
    this.#maxSeq = seq;
    this.#badSeq = RTP_SEQ_MOD + 1;
    this.#cycles = 0;
    this.#received = 0;
    this.#receivedPrior = 0;
    this.#expectedPrior = 0;
  }

  /** RFC 3550 A.1 update_seq (no probation). False when the packet is set aside as a suspect jump. */
  #count(seq: number, payloadBytes: number): boolean {
    this.#bytes += payloadBytes;
    seq &= 0xffff;
    if (!this.#started) {
      this.#started = true;
      this.#init(seq);
    } else {
      const udelta = (seq - this.#maxSeq) & 0xffff;
      if (udelta < MAX_DROPOUT) {
        if (seq < this.#maxSeq) this.#cycles += RTP_SEQ_MOD; // in order, with permissible gap: wrapped
        this.#maxSeq = seq;
      } else if (udelta <= RTP_SEQ_MOD - MAX_MISORDER) {
        // A very large jump: believe it only if the next packet follows it (the sender restarted).
        if (seq !== this.#badSeq) {
          this.#badSeq = (seq + 1) & 0xffff;
          this.#discarded++;
          return false;
        }
        this.#init(seq);
        this.#hasTiming = false;
      }
      // else: a duplicate or reordered packet; counted, max unchanged.
    }
    this.#received++;
    return true;
  }
}

// ---------------------------------------------------------------------------------------------------
// NTP time and round-trip time (RFC 3550 §4, §6.4.1)
// ---------------------------------------------------------------------------------------------------

/** 64-bit NTP timestamp: seconds since 1900 (mod 2^32) and a 32-bit binary fraction. */
export interface NtpTime {
  seconds: number;
  fraction: number;
}

/** Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01). */
const NTP_UNIX_OFFSET_S = 2_208_988_800;
const TWO_POW_32 = 0x1_0000_0000;
/** LSR/DLSR unit: 1/65536 s. */
const NTP_SHORT_UNITS_PER_MS = 65_536 / 1000;

/** Wall-clock NTP time; `unixMs` defaults to Date.now() and is injectable for tests. */
export function ntpNow(unixMs: number = Date.now()): NtpTime {
  const wholeSeconds = Math.floor(unixMs / 1000);
  const fraction = Math.floor(((unixMs - wholeSeconds * 1000) / 1000) * TWO_POW_32);
  return { seconds: (wholeSeconds + NTP_UNIX_OFFSET_S) >>> 0, fraction: Math.min(fraction, TWO_POW_32 - 1) };
}

/** The middle 32 bits of an NTP timestamp (the LSR field's format: 16.16 fixed-point seconds). */
export function ntpMiddle32(time: NtpTime): number {
  return (((time.seconds & 0xffff) << 16) | (time.fraction >>> 16)) >>> 0;
}

/**
 * Round-trip time from a reception block about our stream (RFC 3550 §6.4.1: A − LSR − DLSR, all in
 * 1/65536 s), with `nowNtpMiddle32` the block's arrival time. Undefined when the peer has not received
 * an SR from us yet (LSR 0) or the result is negative (clock confusion on either side).
 */
export function rttMs(lsr: number, dlsr: number, nowNtpMiddle32: number): number | undefined {
  if (lsr === 0) return undefined;
  const rtt = (nowNtpMiddle32 - lsr - dlsr) | 0;
  if (rtt < 0) return undefined;
  return rtt / NTP_SHORT_UNITS_PER_MS;
}

// ---------------------------------------------------------------------------------------------------
// Building compound packets
// ---------------------------------------------------------------------------------------------------

/** SDES item type CNAME (RFC 3550 §6.5.1); rtp.js exports its SdesItemType enum as a type only. */
const SDES_CNAME = 1 as SdesItemType;
/** SDES text and BYE reason are length-prefixed by one octet. */
const MAX_TEXT_BYTES = 255;

export interface SenderInfo {
  /** Wall-clock time of this report, and the RTP timestamp of the same instant on our media clock. */
  ntpTime: NtpTime;
  rtpTimestamp: number;
  /** RTP packets and payload octets sent since the start (wrap mod 2^32). */
  packetCount: number;
  octetCount: number;
}

export interface ReceptionInput {
  remoteSsrc: number;
  /** Read through takeReportBlock(): building a report starts a new loss interval. */
  stats: ReceptionStats;
  /** Middle 32 bits of the NTP time in the peer's last SR; undefined if none received. */
  lastSrNtpMiddle32?: number | undefined;
  /** Monotonic time that SR arrived. */
  lastSrArrivalMs?: number | undefined;
  /** Monotonic time now (same clock as lastSrArrivalMs). */
  nowMs: number;
}

export interface ReportOptions {
  ssrc: number;
  cname: string;
  /** Present when we have sent RTP since the last report: the packet is an SR, otherwise an RR. */
  sender?: SenderInfo | undefined;
  /** Present when we have received RTP: one reception block about the remote source. */
  reception?: ReceptionInput | undefined;
}

/**
 * A compound SR (or RR) + SDES CNAME packet. With `reception`, it carries one reception block (omitted
 * while no RTP has arrived) and starts a new loss interval for `fractionLost`.
 */
export function buildReport(options: ReportOptions): Uint8Array {
  const { ssrc, sender, reception } = options;
  const compound = new CompoundPacket();
  let report: SenderReportPacket | ReceiverReportPacket;
  if (sender !== undefined) {
    const sr = new SenderReportPacket();
    sr.setSsrc(ssrc >>> 0);
    sr.setNtpSeconds(sender.ntpTime.seconds >>> 0);
    sr.setNtpFraction(sender.ntpTime.fraction >>> 0);
    sr.setRtpTimestamp(sender.rtpTimestamp >>> 0);
    sr.setPacketCount(sender.packetCount >>> 0);
    sr.setOctetCount(sender.octetCount >>> 0);
    report = sr;
  } else {
    const rr = new ReceiverReportPacket();
    rr.setSsrc(ssrc >>> 0);
    report = rr;
  }
  if (reception !== undefined && reception.stats.hasData) report.addReport(receptionReport(reception));
  compound.addPacket(report);
  compound.addPacket(sdesCname(ssrc, options.cname));
  return toBytes(compound);
}

/**
 * A compound RR + SDES CNAME (when `cname` is given) + BYE packet for hang-up: RFC 3550 §6.1 requires a
 * compound packet to start with a report, and BYE to come last. The reason is cut to 255 bytes.
 */
export function buildBye(ssrc: number, reason?: string, cname?: string): Uint8Array {
  const compound = new CompoundPacket();
  const rr = new ReceiverReportPacket();
  rr.setSsrc(ssrc >>> 0);
  compound.addPacket(rr);
  if (cname !== undefined) compound.addPacket(sdesCname(ssrc, cname));
  const bye = new ByePacket();
  bye.addSsrc(ssrc >>> 0);
  if (reason !== undefined && reason.length > 0) bye.setReason(truncateUtf8(reason));
  compound.addPacket(bye);
  return toBytes(compound);
}

function receptionReport(input: ReceptionInput): ReceptionReport {
  const block = input.stats.takeReportBlock();
  const report = new ReceptionReport();
  report.setSsrc(input.remoteSsrc >>> 0);
  report.setHighestSeqNumber(block.extendedHighestSeq);
  report.setJitter(Math.min(block.jitter, TWO_POW_32 - 1));
  let lsr = 0;
  let dlsr = 0;
  if (input.lastSrNtpMiddle32 !== undefined && input.lastSrArrivalMs !== undefined) {
    lsr = input.lastSrNtpMiddle32 >>> 0;
    const delay = Math.round((input.nowMs - input.lastSrArrivalMs) * NTP_SHORT_UNITS_PER_MS);
    dlsr = Math.max(0, Math.min(TWO_POW_32 - 1, delay));
  }
  report.setLastSRTimestamp(lsr);
  report.setDelaySinceLastSR(dlsr);
  // rtp.js 0.15.5 writes a negative cumulative loss as sign-magnitude and reads only 12 bits of it, so
  // fraction lost and the 24-bit two's-complement cumulative loss are written here directly.
  report.getView().setUint32(4, ((block.fractionLost << 24) | (block.cumulativeLost & 0xffffff)) >>> 0);
  return report;
}

function sdesCname(ssrc: number, cname: string): SdesPacket {
  const chunk = new SdesChunk();
  chunk.setSsrc(ssrc >>> 0);
  chunk.addItem(SDES_CNAME, truncateUtf8(cname));
  const sdes = new SdesPacket();
  sdes.addChunk(chunk);
  return sdes;
}

function truncateUtf8(text: string): string {
  const encoder = new TextEncoder();
  let out = text;
  while (encoder.encode(out).length > MAX_TEXT_BYTES) out = out.slice(0, -1);
  return out;
}

function toBytes(compound: CompoundPacket): Uint8Array {
  const view = compound.getView();
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

// ---------------------------------------------------------------------------------------------------
// Parsing the peer's packets
// ---------------------------------------------------------------------------------------------------

export interface ParsedSenderReport {
  ssrc: number;
  ntpTime: NtpTime;
  /** The value to echo as LSR in our next reception block about this source. */
  ntpMiddle32: number;
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
}

export interface ParsedReceptionBlock {
  /** Who sent the report. */
  reporterSsrc: number;
  /** Whose stream the block is about (ours, when filtered by localSsrc). */
  sourceSsrc: number;
  /** 0–255 as on the wire (divide by 256 for a ratio). */
  fractionLost: number;
  cumulativeLost: number;
  extendedHighestSeq: number;
  /** Timestamp units. */
  jitter: number;
  lsr: number;
  dlsr: number;
}

export interface ParsedRtcp {
  senderReports: ParsedSenderReport[];
  receptionBlocks: ParsedReceptionBlock[];
  /** Present when the compound packet contained a BYE. */
  bye: { ssrcs: number[]; reason: string | undefined } | undefined;
}

/** SR=200, RR=201, BYE=203 (RFC 3550 §12.1); RtcpPacketType is likewise a type-only export. */
const PT_SR = 200;
const PT_RR = 201;
const PT_BYE = 203;
const RTCP_HEADER_BYTES = 4;

/**
 * Parses a compound RTCP packet from the peer into plain data (copied: nothing aliases `bytes`). With
 * `localSsrc`, only reception blocks about that source are returned. Unknown packet types (SDES, APP,
 * feedback, XR) are skipped. Anything that is not well-formed RTCP gives undefined; never throws.
 */
export function parseRtcp(bytes: Uint8Array, localSsrc?: number): ParsedRtcp | undefined {
  if (bytes.byteLength < RTCP_HEADER_BYTES || bytes.byteLength % 4 !== 0) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let packets: RtcpPacket[];
  try {
    if (!isRtcp(view)) return undefined;
    packets = new CompoundPacket(view).getPackets();
  } catch {
    return undefined;
  }
  if (packets.length === 0) return undefined;
  const result: ParsedRtcp = { senderReports: [], receptionBlocks: [], bye: undefined };
  for (const packet of packets) {
    const type: number = packet.getPacketType();
    if (type === PT_SR && packet instanceof SenderReportPacket) {
      const ntpTime = { seconds: packet.getNtpSeconds(), fraction: packet.getNtpFraction() };
      result.senderReports.push({
        ssrc: packet.getSsrc(),
        ntpTime,
        ntpMiddle32: ntpMiddle32(ntpTime),
        rtpTimestamp: packet.getRtpTimestamp(),
        packetCount: packet.getPacketCount(),
        octetCount: packet.getOctetCount(),
      });
      addBlocks(result, packet.getSsrc(), packet.getReports(), localSsrc);
    } else if (type === PT_RR && packet instanceof ReceiverReportPacket) {
      addBlocks(result, packet.getSsrc(), packet.getReports(), localSsrc);
    } else if (type === PT_BYE && packet instanceof ByePacket) {
      result.bye = { ssrcs: packet.getSsrcs(), reason: packet.getReason() };
    }
  }
  return result;
}

function addBlocks(
  result: ParsedRtcp,
  reporterSsrc: number,
  reports: ReceptionReport[],
  localSsrc: number | undefined,
): void {
  for (const report of reports) {
    const sourceSsrc = report.getSsrc();
    if (localSsrc !== undefined && sourceSsrc !== localSsrc >>> 0) continue;
    // Read the lost word directly: rtp.js 0.15.5 masks cumulative loss to 12 bits.
    const lostWord = report.getView().getUint32(4);
    result.receptionBlocks.push({
      reporterSsrc,
      sourceSsrc,
      fractionLost: lostWord >>> 24,
      cumulativeLost: (lostWord << 8) >> 8,
      extendedHighestSeq: report.getHighestSeqNumber(),
      jitter: report.getJitter(),
      lsr: report.getLastSRTimestamp(),
      dlsr: report.getDelaySinceLastSR(),
    });
  }
}

// ---------------------------------------------------------------------------------------------------
// Report timing (RFC 3550 §6.2, §6.3.1)
// ---------------------------------------------------------------------------------------------------

/**
 * The RFC 3550 minimum report interval: with two participants and G.711 the 5 % bandwidth rule gives
 * far less, so the 5 s floor is the interval.
 */
export const RTCP_REPORT_INTERVAL_MS = 5_000;

/**
 * A report interval randomized to 0.5–1.5 × `baseMs` (RFC 3550 §6.3.1), so the two ends' reports do not
 * synchronise. No e/2 compensation: that offsets timer reconsideration, which a two-party call skips.
 */
export function rtcpIntervalMs(random: () => number = Math.random, baseMs = RTCP_REPORT_INTERVAL_MS): number {
  return baseMs * (0.5 + random());
}

export interface RtcpSchedulerOptions {
  /** Returns [0, 1); injected for tests. */
  random?: () => number;
  intervalMs?: number;
}

/**
 * When to send the next report. The first comes after half an interval (RFC 3550 §6.2: the initial
 * minimum is 2.5 s), then every 0.5–1.5 × 5 s. Poll it from any timer: `due(now)` says yes once per report.
 */
export class RtcpScheduler {
  readonly #random: () => number;
  readonly #intervalMs: number;
  #nextAtMs: number;

  constructor(startMs: number, options: RtcpSchedulerOptions = {}) {
    this.#random = options.random ?? Math.random;
    this.#intervalMs = options.intervalMs ?? RTCP_REPORT_INTERVAL_MS;
    this.#nextAtMs = startMs + rtcpIntervalMs(this.#random, this.#intervalMs / 2);
  }

  get nextAtMs(): number {
    return this.#nextAtMs;
  }

  /** True if a report is due at `nowMs`; the next one is then scheduled a random interval from now. */
  due(nowMs: number): boolean {
    if (nowMs < this.#nextAtMs) return false;
    this.#nextAtMs = nowMs + rtcpIntervalMs(this.#random, this.#intervalMs);
    return true;
  }
}
