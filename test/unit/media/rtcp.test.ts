// RTCP: reception statistics against hand-computed RFC 3550 A.1/A.3/A.8 values (loss, reorder,
// duplicates, wrap, restarts, jitter), SR/RR/BYE compound packets through build → parse, robustness
// against malformed bytes, RTT from LSR/DLSR (the RFC 3550 §6.4.1 example) and the report interval.
import { CompoundPacket, SdesPacket } from 'rtp.js/packets';
import { describe, expect, it } from 'vitest';
import {
  RTCP_REPORT_INTERVAL_MS,
  ReceptionStats,
  RtcpScheduler,
  buildBye,
  buildReport,
  ntpMiddle32,
  ntpNow,
  parseRtcp,
  rtcpIntervalMs,
  rttMs,
} from '../../../src/media/rtcp.js';

const FRAME = 160;
const FRAME_MS = 20;
const LOCAL_SSRC = 0x11223344;
const REMOTE_SSRC = 0xaabbccdd;

/** Feeds sequence numbers as a steady 20 ms stream (timestamp and arrival follow the sequence). */
function feed(stats: ReceptionStats, seqs: number[]): void {
  for (const seq of seqs) stats.onRtp(seq, seq * FRAME, seq * FRAME_MS, 160);
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

describe('ReceptionStats', () => {
  it('counts loss and the fraction lost per report interval (RFC 3550 A.3)', () => {
    const stats = new ReceptionStats();
    feed(stats, [...range(100, 102), ...range(105, 109)]); // 103, 104 lost
    expect(stats.snapshot()).toMatchObject({
      packetsReceived: 8,
      bytesReceived: 8 * 160,
      expected: 10,
      cumulativeLost: 2,
      extendedHighestSeq: 109,
    });
    // lost·256/expected = 2·256/10 = 51.2 → 51
    expect(stats.takeReportBlock()).toMatchObject({
      fractionLost: 51,
      cumulativeLost: 2,
      extendedHighestSeq: 109,
    });
    feed(stats, range(110, 119));
    expect(stats.takeReportBlock()).toMatchObject({
      fractionLost: 0,
      cumulativeLost: 2,
      extendedHighestSeq: 119,
    });
    feed(stats, [120, 123]); // 121, 122 lost: 2 of 4
    expect(stats.takeReportBlock()).toMatchObject({ fractionLost: 128, cumulativeLost: 4 });
    expect(stats.snapshot().lastFractionLost).toBe(128);
  });

  it('treats reordered packets as neither loss nor a new highest sequence number', () => {
    const stats = new ReceptionStats();
    feed(stats, [1, 2, 4, 3, 5]);
    expect(stats.snapshot()).toMatchObject({
      expected: 5,
      packetsReceived: 5,
      cumulativeLost: 0,
      extendedHighestSeq: 5,
    });
    expect(stats.takeReportBlock().fractionLost).toBe(0);
  });

  it('counts duplicates as received, so cumulative loss can go negative, and reports no fraction lost', () => {
    const stats = new ReceptionStats();
    feed(stats, [1, 2, 2, 3]);
    expect(stats.snapshot()).toMatchObject({ expected: 3, packetsReceived: 4, cumulativeLost: -1 });
    expect(stats.takeReportBlock()).toMatchObject({ fractionLost: 0, cumulativeLost: -1 });
  });

  it('extends the sequence number across the 16-bit wrap, with loss and reordering around it', () => {
    const inOrder = new ReceptionStats();
    feed(inOrder, [65534, 65535, 0, 1]);
    expect(inOrder.snapshot()).toMatchObject({
      extendedHighestSeq: 65537,
      seqWraps: 1,
      expected: 4,
      cumulativeLost: 0,
    });

    const lossy = new ReceptionStats();
    feed(lossy, [65533, 65535, 1]); // 65534 and 0 lost
    expect(lossy.snapshot()).toMatchObject({ extendedHighestSeq: 65537, expected: 5, cumulativeLost: 2 });

    const reordered = new ReceptionStats();
    feed(reordered, [65535, 1, 0]); // 0 arrives after 1: no second wrap
    expect(reordered.snapshot()).toMatchObject({
      extendedHighestSeq: 65537,
      seqWraps: 1,
      expected: 3,
      cumulativeLost: 0,
    });
  });

  it('sets aside a single wild jump, and restarts counting when the next packet confirms it', () => {
    const stray = new ReceptionStats();
    feed(stray, [10, 11, 5000, 12]);
    expect(stray.snapshot()).toMatchObject({
      packetsDiscarded: 1,
      expected: 3,
      packetsReceived: 3,
      extendedHighestSeq: 12,
    });

    const restarted = new ReceptionStats();
    feed(restarted, [10, 11, 5000, 5001, 5002]);
    expect(restarted.snapshot()).toMatchObject({ expected: 2, packetsReceived: 2, extendedHighestSeq: 5002 });
  });

  it('computes interarrival jitter per RFC 3550 A.8 for a synthetic arrival pattern', () => {
    const stats = new ReceptionStats();
    // Sent every 20 ms; the third packet arrives 5 ms late. Transit (units of 1/8000 s): 0, 0, 40, 0, 0.
    const arrivals = [0, 20, 45, 60, 80];
    arrivals.forEach((ms, i) => stats.onRtp(i, i * FRAME, ms));
    // D = 0, 40, 40, 0 → J = 0, 2.5, 2.5 + 37.5/16, that·15/16
    const j3 = 2.5 + (40 - 2.5) / 16;
    const expected = j3 + (0 - j3) / 16;
    expect(stats.snapshot().jitter).toBeCloseTo(expected, 10);
    expect(stats.snapshot().jitterMs).toBeCloseTo(expected / 8, 10);
    expect(stats.takeReportBlock().jitter).toBe(Math.floor(expected));
  });

  it('reports zero jitter for constant delay, across an RTP timestamp wrap and untimed DTMF packets', () => {
    const stats = new ReceptionStats();
    const firstTs = 0xffffffff - 2 * FRAME;
    for (let i = 0; i < 10; i++) {
      stats.onRtp(i, (firstTs + i * FRAME) >>> 0, 1_000 + 37 + i * FRAME_MS);
      if (i === 4) stats.onUntimedRtp(100 + i); // a telephone-event packet with the event's old timestamp
    }
    expect(stats.snapshot().jitter).toBe(0);
  });

  it('has no data before the first packet, and reports nothing lost', () => {
    const stats = new ReceptionStats();
    expect(stats.hasData).toBe(false);
    expect(stats.snapshot()).toMatchObject({ expected: 0, packetsReceived: 0, cumulativeLost: 0 });
    expect(stats.takeReportBlock()).toMatchObject({ fractionLost: 0, cumulativeLost: 0 });
  });
});

describe('NTP time and RTT', () => {
  it('converts Unix milliseconds to NTP seconds and fraction', () => {
    expect(ntpNow(0)).toEqual({ seconds: 2_208_988_800, fraction: 0 });
    expect(ntpNow(1_500)).toEqual({ seconds: 2_208_988_801, fraction: 0x80000000 });
  });

  it('takes the middle 32 bits of an NTP timestamp', () => {
    expect(ntpMiddle32({ seconds: 0x1234b705, fraction: 0x2000abcd })).toBe(0xb7052000);
  });

  it('computes RTT = A − LSR − DLSR with the RFC 3550 §6.4.1 example (6.125 s)', () => {
    // A = 46864.500 s (0xb710:8000), LSR = 46853.125 s (0xb705:2000), DLSR = 5.250 s (0x0005:4000).
    expect(rttMs(0xb7052000, 0x00054000, 0xb7108000)).toBe(6_125);
  });

  it('computes RTT across a wrap of the 16-bit seconds part', () => {
    expect(rttMs(0xffff8000, 0x00004000, 0x00000000 + 0x1000)).toBeCloseTo((0x4000 + 0x1000) / 65.536, 9);
  });

  it('gives no RTT before the peer has an SR from us, or when the result is negative', () => {
    expect(rttMs(0, 0, 0x12345678)).toBeUndefined();
    expect(rttMs(0x00020000, 0x00010000, 0x00020000)).toBeUndefined();
  });
});

describe('buildReport → parseRtcp', () => {
  it('round-trips an SR with a reception block and starts with SR followed by SDES CNAME', () => {
    const stats = new ReceptionStats();
    feed(stats, [...range(100, 102), ...range(105, 109)]);
    const ntpTime = ntpNow(1_700_000_000_250);
    const bytes = buildReport({
      ssrc: LOCAL_SSRC,
      cname: 'voxgate@example',
      sender: { ntpTime, rtpTimestamp: 123_456, packetCount: 250, octetCount: 40_000 },
      reception: {
        remoteSsrc: REMOTE_SSRC,
        stats,
        lastSrNtpMiddle32: 0xb7052000,
        lastSrArrivalMs: 10_000,
        nowMs: 10_250,
      },
    });
    expect(bytes[1]).toBe(200); // first packet: SR
    const packets = new CompoundPacket(
      new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength),
    ).getPackets();
    expect(packets).toHaveLength(2);
    expect(packets[1]).toBeInstanceOf(SdesPacket);
    expect((packets[1] as SdesPacket).getChunks()[0]!.getItems()).toEqual([
      { type: 1, text: 'voxgate@example' },
    ]);

    const parsed = parseRtcp(bytes);
    expect(parsed?.senderReports).toEqual([
      {
        ssrc: LOCAL_SSRC,
        ntpTime,
        ntpMiddle32: ntpMiddle32(ntpTime),
        rtpTimestamp: 123_456,
        packetCount: 250,
        octetCount: 40_000,
      },
    ]);
    expect(parsed?.receptionBlocks).toEqual([
      {
        reporterSsrc: LOCAL_SSRC,
        sourceSsrc: REMOTE_SSRC,
        fractionLost: 51,
        cumulativeLost: 2,
        extendedHighestSeq: 109,
        jitter: 0,
        lsr: 0xb7052000,
        dlsr: 16_384, // 250 ms in 1/65536 s
      },
    ]);
    expect(parsed?.bye).toBeUndefined();
  });

  it('builds an RR without a block before any RTP arrived, and with LSR/DLSR 0 before any SR', () => {
    const stats = new ReceptionStats();
    const empty = parseRtcp(
      buildReport({ ssrc: LOCAL_SSRC, cname: 'c', reception: { remoteSsrc: REMOTE_SSRC, stats, nowMs: 0 } }),
    );
    expect(empty).toEqual({ senderReports: [], receptionBlocks: [], bye: undefined });

    feed(stats, [1, 2, 2, 3]);
    const bytes = buildReport({
      ssrc: LOCAL_SSRC,
      cname: 'c',
      reception: { remoteSsrc: REMOTE_SSRC, stats, nowMs: 0 },
    });
    expect(bytes[1]).toBe(201);
    expect(parseRtcp(bytes)?.receptionBlocks[0]).toMatchObject({ cumulativeLost: -1, lsr: 0, dlsr: 0 });
  });

  it('writes large and negative cumulative loss as 24-bit two’s complement, clamped', () => {
    const stats = new ReceptionStats();
    feed(stats, [0, 2_999, 5_998, 8_997]); // 8994 lost: beyond 12 bits
    const block = parseRtcp(
      buildReport({ ssrc: LOCAL_SSRC, cname: 'c', reception: { remoteSsrc: REMOTE_SSRC, stats, nowMs: 0 } }),
    )?.receptionBlocks[0];
    expect(block?.cumulativeLost).toBe(8_994);
  });

  it('returns only the blocks about our SSRC when asked', () => {
    const stats = new ReceptionStats();
    feed(stats, [1, 2]);
    const bytes = buildReport({
      ssrc: REMOTE_SSRC,
      cname: 'peer',
      reception: { remoteSsrc: LOCAL_SSRC, stats, nowMs: 0 },
    });
    expect(parseRtcp(bytes, LOCAL_SSRC)?.receptionBlocks).toHaveLength(1);
    expect(parseRtcp(bytes, 0x99)?.receptionBlocks).toEqual([]);
  });
});

describe('buildBye → parseRtcp', () => {
  it('builds RR + SDES + BYE with the reason, and parses the BYE back', () => {
    const bytes = buildBye(LOCAL_SSRC, 'call ended', 'voxgate@example');
    expect(bytes[1]).toBe(201); // compound packets start with a report
    const parsed = parseRtcp(bytes);
    expect(parsed?.bye).toEqual({ ssrcs: [LOCAL_SSRC], reason: 'call ended' });
    expect(parsed?.senderReports).toEqual([]);
  });

  it('builds RR + BYE without a reason, and cuts an over-long reason to 255 bytes', () => {
    expect(parseRtcp(buildBye(LOCAL_SSRC))?.bye).toEqual({ ssrcs: [LOCAL_SSRC], reason: undefined });
    const long = parseRtcp(buildBye(LOCAL_SSRC, 'é'.repeat(200)))?.bye?.reason;
    expect(long).toBe('é'.repeat(127));
  });
});

describe('parseRtcp on malformed input', () => {
  const valid = buildReport({
    ssrc: LOCAL_SSRC,
    cname: 'voxgate',
    sender: { ntpTime: ntpNow(0), rtpTimestamp: 0, packetCount: 0, octetCount: 0 },
  });

  it('returns undefined for empty, short, RTP, truncated and length-inconsistent bytes', () => {
    const rtp = Uint8Array.of(0x80, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 1);
    const overlong = Uint8Array.from(valid);
    overlong[3] = 0xff; // first packet claims more words than there are
    const badVersion = Uint8Array.from(valid);
    badVersion[0] = 0x40 | (badVersion[0]! & 0x3f);
    const cases = [
      new Uint8Array(0),
      Uint8Array.of(0x80),
      Uint8Array.of(0x80, 200, 0),
      rtp,
      valid.subarray(0, 20),
      valid.subarray(0, valid.length - 1),
      overlong,
      badVersion,
    ];
    for (const bytes of cases) expect(parseRtcp(bytes)).toBeUndefined();
  });

  it('never throws on random bytes behind an RTCP-looking header', () => {
    let seed = 12345;
    const random = (): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 0x80000000;
      return seed / 0x80000000;
    };
    for (let i = 0; i < 2_000; i++) {
      const bytes = new Uint8Array(4 + 4 * Math.floor(random() * 20));
      for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(random() * 256);
      bytes[0] = 0x80 | (bytes[0]! & 0x3f);
      bytes[1] = 200 + Math.floor(random() * 8);
      expect(() => parseRtcp(bytes)).not.toThrow();
    }
  });

  it('parses a valid packet that sits at an offset inside a larger buffer', () => {
    const buffer = new Uint8Array(valid.length + 8);
    buffer.set(valid, 8);
    expect(parseRtcp(buffer.subarray(8))?.senderReports[0]?.ssrc).toBe(LOCAL_SSRC);
  });
});

describe('report interval', () => {
  it('randomizes 0.5–1.5 × 5 s', () => {
    expect(rtcpIntervalMs(() => 0)).toBe(2_500);
    expect(rtcpIntervalMs(() => 0.5)).toBe(RTCP_REPORT_INTERVAL_MS);
    expect(rtcpIntervalMs(() => 0.999_999)).toBeLessThan(7_500);
    for (let i = 0; i < 1_000; i++) {
      const interval = rtcpIntervalMs();
      expect(interval).toBeGreaterThanOrEqual(2_500);
      expect(interval).toBeLessThan(7_500);
    }
  });

  it('schedules the first report after half an interval, then one report per randomized interval', () => {
    const values = [0.5, 0, 0.999];
    const scheduler = new RtcpScheduler(1_000, { random: () => values.shift() ?? 0.5 });
    expect(scheduler.nextAtMs).toBe(1_000 + 2_500);
    expect(scheduler.due(3_499)).toBe(false);
    expect(scheduler.due(3_500)).toBe(true);
    expect(scheduler.due(3_500)).toBe(false);
    expect(scheduler.nextAtMs).toBe(3_500 + 2_500);
    expect(scheduler.due(6_000)).toBe(true);
    expect(scheduler.nextAtMs).toBeCloseTo(6_000 + 7_495, 6);
  });
});
