// The e2e harness's own helpers: pcap writer/reader, RTP parser, ports, managed processes, SIPp trace
// parsing, the committed fixtures, and (when dumpcap can open lo) a real loopback capture.
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  LINKTYPE_LINUX_SLL,
  LINKTYPE_NULL,
  LINKTYPE_RAW,
  buildRtpPacket,
  buildUdpFrame,
  parsePcap,
  readPcap,
  writeRtpPcap,
  type RtpPacketSpec,
} from '../helpers/pcap.js';
import { freeEvenUdpPortRange, freeTcpPort, freeUdpPort } from '../helpers/ports.js';
import { REPO_ROOT, artifactsDir, killAll, spawnManaged, trackedProcesses } from '../helpers/processes.js';
import { dumpcapUsable, isRtp, parseRtp, startCapture } from '../helpers/rtp-capture.js';
import { parseSippMessages, resolveScenario, scenarioDeclaredArgs } from '../helpers/sipp.js';
import { findDrachtio } from '../helpers/drachtio.js';

const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures');

afterAll(async () => {
  await killAll();
});

function rtpSpecs(count: number, pt = 0): RtpPacketSpec[] {
  return Array.from({ length: count }, (_, i) => ({
    payloadType: pt,
    seq: (65_530 + i) & 0xffff, // crosses the 16-bit wrap
    timestamp: (0xffff_ff00 + i * 160) >>> 0, // crosses the 32-bit wrap
    ssrc: 0xdeadbeef,
    marker: i === 0,
    payload: Buffer.alloc(160, i),
  }));
}

/** Re-frame one Ethernet frame as another link type, wrapped in a one-packet pcap. */
function singlePacketPcap(linkType: number, frame: Buffer, littleEndian = true): Buffer {
  const header = Buffer.alloc(24);
  const record = Buffer.alloc(16);
  if (littleEndian) {
    header.writeUInt32LE(0xa1b2c3d4, 0);
    header.writeUInt16LE(2, 4);
    header.writeUInt16LE(4, 6);
    header.writeUInt32LE(65_535, 16);
    header.writeUInt32LE(linkType, 20);
    record.writeUInt32LE(1_700_000_123, 0);
    record.writeUInt32LE(500_000, 4);
    record.writeUInt32LE(frame.length, 8);
    record.writeUInt32LE(frame.length, 12);
  } else {
    header.writeUInt32BE(0xa1b2c3d4, 0);
    header.writeUInt16BE(2, 4);
    header.writeUInt16BE(4, 6);
    header.writeUInt32BE(65_535, 16);
    header.writeUInt32BE(linkType, 20);
    record.writeUInt32BE(1_700_000_123, 0);
    record.writeUInt32BE(500_000, 4);
    record.writeUInt32BE(frame.length, 8);
    record.writeUInt32BE(frame.length, 12);
  }
  return Buffer.concat([header, record, frame]);
}

describe('pcap writer and reader', () => {
  it('round-trips RTP packets with 20 ms timestamps, ports and payloads intact', () => {
    const file = path.join(artifactsDir('unit-pcap'), 'rt.pcap');
    const specs = rtpSpecs(12, 8);
    writeRtpPcap(file, specs, { srcPort: 6000, dstPort: 6001, ptimeMs: 20, startTimeSec: 1_700_000_000 });
    const packets = readPcap(file);
    expect(packets).toHaveLength(12);
    packets.forEach((p, i) => {
      expect(p.ts).toBeCloseTo(1_700_000_000 + i * 0.02, 6);
      expect(p).toMatchObject({ srcIp: '127.0.0.1', dstIp: '127.0.0.1', srcPort: 6000, dstPort: 6001 });
      const rtp = parseRtp(p.payload);
      const spec = specs[i]!;
      expect(rtp).toMatchObject({
        version: 2,
        payloadType: 8,
        seq: spec.seq,
        timestamp: spec.timestamp,
        ssrc: 0xdeadbeef,
        marker: i === 0,
      });
      expect(rtp.payload.equals(Buffer.from(spec.payload))).toBe(true);
    });
    expect(packets.map((p) => parseRtp(p.payload).seq).slice(4, 8)).toEqual([65_534, 65_535, 0, 1]);
  });

  it('honours per-packet atMs offsets', () => {
    const file = path.join(artifactsDir('unit-pcap'), 'at.pcap');
    const specs = rtpSpecs(3).map((s, i) => ({ ...s, atMs: [0, 20, 100][i]! }));
    writeRtpPcap(file, specs, { srcPort: 1, dstPort: 2, startTimeSec: 10 });
    expect(readPcap(file).map((p) => Math.round((p.ts - 10) * 1000))).toEqual([0, 20, 100]);
  });

  it('writes valid IPv4 and UDP checksums', () => {
    const rtp = buildRtpPacket({
      payloadType: 0,
      seq: 1,
      timestamp: 2,
      ssrc: 3,
      marker: false,
      payload: Buffer.alloc(161, 7),
    });
    const frame = buildUdpFrame('127.0.0.1', '10.1.2.3', 6000, 6001, rtp);
    const sum16 = (buf: Buffer): number => {
      let sum = 0;
      for (let i = 0; i < buf.length; i += 2) sum += (buf[i]! << 8) | (buf[i + 1] ?? 0);
      while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
      return sum;
    };
    expect(sum16(frame.subarray(14, 34))).toBe(0xffff);
    const udp = frame.subarray(34);
    const pseudo = Buffer.from([127, 0, 0, 1, 10, 1, 2, 3, 0, 17, udp.length >> 8, udp.length & 0xff]);
    expect(sum16(Buffer.concat([pseudo, udp, Buffer.alloc(udp.length % 2)]))).toBe(0xffff);
  });

  it('reads Linux cooked, BSD loopback (NULL), raw IP and big-endian files', () => {
    const rtp = buildRtpPacket({
      payloadType: 0,
      seq: 9,
      timestamp: 9,
      ssrc: 9,
      marker: true,
      payload: Buffer.alloc(20, 1),
    });
    const eth = buildUdpFrame('127.0.0.2', '127.0.0.3', 4000, 4002, rtp);
    const ip = eth.subarray(14);
    const sll = Buffer.concat([Buffer.from([0, 0, 3, 4, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00]), ip]);
    const nullLE = Buffer.concat([Buffer.from([2, 0, 0, 0]), ip]);
    const nullBE = Buffer.concat([Buffer.from([0, 0, 0, 2]), ip]);
    const cases: [number, Buffer, boolean][] = [
      [LINKTYPE_LINUX_SLL, sll, true],
      [LINKTYPE_NULL, nullLE, true],
      [LINKTYPE_NULL, nullBE, false],
      [LINKTYPE_RAW, ip, true],
      [1, eth, false],
    ];
    for (const [linkType, frame, le] of cases) {
      const [packet, ...rest] = parsePcap(singlePacketPcap(linkType, frame, le));
      expect(rest).toHaveLength(0);
      expect(packet).toMatchObject({
        ts: 1_700_000_123.5,
        srcIp: '127.0.0.2',
        dstIp: '127.0.0.3',
        srcPort: 4000,
        dstPort: 4002,
      });
      expect(packet!.payload.equals(rtp)).toBe(true);
    }
  });

  it('skips non-UDP frames and rejects pcapng and garbage with clear errors', () => {
    const eth = buildUdpFrame('127.0.0.1', '127.0.0.1', 1, 2, Buffer.alloc(4));
    eth[14 + 9] = 6; // TCP
    expect(parsePcap(singlePacketPcap(1, eth))).toEqual([]);
    const pcapng = Buffer.alloc(32);
    pcapng.writeUInt32LE(0x0a0d0d0a, 0);
    expect(() => parsePcap(pcapng)).toThrow(/pcapng/);
    expect(() => parsePcap(Buffer.alloc(32, 0x42))).toThrow(/not a pcap/);
    expect(() => parsePcap(Buffer.alloc(3))).toThrow(/too short/);
  });
});

describe('parseRtp', () => {
  it('parses the fixed header', () => {
    const packet = buildRtpPacket({
      payloadType: 101,
      seq: 513,
      timestamp: 0x01020304,
      ssrc: 0xa0b0c0d0,
      marker: true,
      payload: Buffer.from([1, 2, 3]),
    });
    expect(parseRtp(packet)).toMatchObject({
      version: 2,
      padding: false,
      extension: false,
      csrcCount: 0,
      marker: true,
      payloadType: 101,
      seq: 513,
      timestamp: 0x01020304,
      ssrc: 0xa0b0c0d0,
      csrcs: [],
      payload: Buffer.from([1, 2, 3]),
    });
  });

  it('skips CSRCs and the header extension and strips padding', () => {
    const header = Buffer.from([0xb2, 0x08, 0, 1, 0, 0, 0, 160, 0, 0, 0, 5]); // V2 P X CC=2, PT 8
    const csrcs = Buffer.from([0, 0, 0, 7, 0, 0, 0, 8]);
    const ext = Buffer.from([0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0]); // one 32-bit word
    const payload = Buffer.from([9, 9, 9]);
    const padding = Buffer.from([0, 0, 3]);
    const rtp = parseRtp(Buffer.concat([header, csrcs, ext, payload, padding]));
    expect(rtp).toMatchObject({
      padding: true,
      extension: true,
      csrcCount: 2,
      csrcs: [7, 8],
      payloadType: 8,
      marker: false,
    });
    expect(rtp.headerExtension).toEqual({ profile: 0xbede, data: Buffer.from([0x10, 0xaa, 0, 0]) });
    expect(rtp.payload).toEqual(payload);
  });

  it('rejects short, non-v2 and truncated packets', () => {
    expect(() => parseRtp(Buffer.alloc(11))).toThrow(RangeError);
    expect(() => parseRtp(Buffer.from([0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]))).toThrow(TypeError);
    expect(() => parseRtp(Buffer.from([0x81, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]))).toThrow(/CSRC/);
    expect(() => parseRtp(Buffer.from([0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]))).toThrow(
      /extension/,
    );
  });

  it('isRtp tells RTP from RTCP and junk', () => {
    expect(
      isRtp(
        buildRtpPacket({
          payloadType: 0,
          seq: 0,
          timestamp: 0,
          ssrc: 0,
          marker: false,
          payload: Buffer.alloc(0),
        }),
      ),
    ).toBe(true);
    expect(isRtp(Buffer.from([0x80, 200, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0]))).toBe(false); // RTCP SR
    expect(isRtp(Buffer.from('hello world!'))).toBe(false);
  });
});

describe('ports', () => {
  const bindable = (port: number): Promise<boolean> =>
    new Promise((resolve) => {
      const s = dgram.createSocket('udp4');
      s.once('error', () => resolve(false));
      s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });

  it('hands out usable UDP and TCP ports', async () => {
    const udp = await freeUdpPort();
    const tcp = await freeTcpPort();
    expect(udp).toBeGreaterThan(0);
    expect(tcp).toBeGreaterThan(0);
    expect(await bindable(udp)).toBe(true);
  });

  it('finds an even run of free UDP ports', async () => {
    const base = await freeEvenUdpPortRange(4);
    expect(base % 2).toBe(0);
    for (let p = base; p < base + 4; p++) expect(await bindable(p)).toBe(true);
    await expect(freeEvenUdpPortRange(0)).rejects.toThrow(RangeError);
  });
});

describe('spawnManaged', () => {
  it('buffers lines per stream and waits for a matching line', async () => {
    const proc = spawnManaged(
      process.execPath,
      [
        '-e',
        "process.stdout.write('one\\ntw'); setTimeout(() => { console.log('o'); console.error('err line'); }, 50)",
      ],
      { name: 'lines' },
    );
    expect(await proc.waitForLine(/^two$/, 5_000)).toBe('two');
    expect(await proc.waitForLine((l) => l.startsWith('err'), 5_000, { stream: 'stderr' })).toBe('err line');
    expect(await proc.exited).toEqual({ code: 0, signal: null });
    expect(proc.stdoutLines).toEqual(['one', 'two']);
    await proc.kill();
  });

  it('rejects waitForLine when the process exits first, and on timeout', async () => {
    const quick = spawnManaged(process.execPath, ['-e', 'process.exit(3)'], { name: 'quick' });
    await expect(quick.waitForLine(/never/, 5_000)).rejects.toThrow(/exited/);
    expect((await quick.exited).code).toBe(3);
    const slow = spawnManaged(process.execPath, ['-e', 'setTimeout(() => {}, 10_000)'], { name: 'slow' });
    await expect(slow.waitForLine(/never/, 100)).rejects.toThrow(/within 100 ms/);
    await slow.kill();
  });

  it('escalates to SIGKILL when SIGTERM is ignored, within the grace bound', async () => {
    const stubborn = spawnManaged(
      process.execPath,
      ['-e', "process.on('SIGTERM', () => {}); console.log('ready'); setInterval(() => {}, 1000)"],
      { name: 'stubborn' },
    );
    await stubborn.waitForLine(/ready/, 5_000);
    const started = Date.now();
    const exit = await stubborn.kill('SIGTERM', 300);
    expect(exit.signal).toBe('SIGKILL');
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('killAll ends every tracked process, grandchildren included', async () => {
    const parent = spawnManaged(
      process.execPath,
      [
        '-e',
        "const c = require('child_process').spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' }); console.log('child ' + c.pid); setInterval(() => {}, 1000)",
      ],
      { name: 'parent' },
    );
    const line = await parent.waitForLine(/^child \d+$/, 5_000);
    const childPid = Number(line.split(' ')[1]);
    await killAll(1_000);
    expect(trackedProcesses()).toHaveLength(0);
    expect(parent.exitInfo).toBeDefined();
    // Alive = exists and is not a zombie (an orphan waits for pid 1 to reap it, which may be slow here).
    const alive = (): boolean => {
      try {
        const stat = readFileSync(`/proc/${childPid}/stat`, 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
      } catch {
        return false;
      }
    };
    // The grandchild was SIGKILLed with the group; give the kernel a moment to deliver it.
    for (let i = 0; i < 50 && alive(); i++) await new Promise((r) => setTimeout(r, 20));
    expect(alive()).toBe(false);
  });
});

describe('SIPp helpers', () => {
  it('reads scenario-declared SIPp flags', () => {
    expect(scenarioDeclaredArgs('<!-- hi --><!-- sipp-args: -pause_msg_ign  -aa -->')).toEqual([
      '-pause_msg_ign',
      '-aa',
    ]);
    expect(scenarioDeclaredArgs(readFileSync(resolveScenario('uac-cancel'), 'utf8'))).toEqual([
      '-pause_msg_ign',
    ]);
    expect(scenarioDeclaredArgs(readFileSync(resolveScenario('uac-call-pcap.xml'), 'utf8'))).toEqual([]);
  });

  it('splits a -trace_msg log into messages with start lines and bodies', () => {
    const log = [
      '----------------------------------------------- 2026-11-22 05:44:24.057739',
      'UDP message sent (661 bytes):',
      '',
      'INVITE sip:voxgate@127.0.0.1:5060 SIP/2.0\r',
      'CSeq: 1 INVITE\r',
      'Content-Length: 12\r',
      '\r',
      'v=0\r',
      'm=audio\r',
      '',
      '----------------------------------------------- 2026-11-22 05:44:24.059173',
      'UDP message received [300] bytes :',
      '',
      'SIP/2.0 200 OK\r',
      'CSeq: 1 INVITE\r',
      '',
    ].join('\n');
    const messages = parseSippMessages(log);
    expect(messages.map((m) => [m.direction, m.startLine])).toEqual([
      ['sent', 'INVITE sip:voxgate@127.0.0.1:5060 SIP/2.0'],
      ['received', 'SIP/2.0 200 OK'],
    ]);
    expect(messages[0]!.body).toBe('v=0\r\nm=audio');
    expect(messages[0]!.time).toBe('2026-11-22 05:44:24.057739');
    expect(messages[1]!.body).toBe('');
  });

  it('findDrachtio honours DRACHTIO_BIN and reports a missing binary as undefined', () => {
    const saved = process.env['DRACHTIO_BIN'];
    try {
      process.env['DRACHTIO_BIN'] = '/nonexistent/drachtio';
      expect(findDrachtio()).toBeUndefined();
      process.env['DRACHTIO_BIN'] = process.execPath;
      expect(findDrachtio()).toBe(process.execPath);
    } finally {
      if (saved === undefined) delete process.env['DRACHTIO_BIN'];
      else process.env['DRACHTIO_BIN'] = saved;
    }
  });
});

describe('committed fixtures', () => {
  for (const [name, pt, silence] of [
    ['caller-speech-pcmu.pcap', 0, 0xff],
    ['caller-speech-pcma.pcap', 8, 0xd5],
  ] as const) {
    it(`${name}: continuous 20 ms RTP, 1.5 s digital silence then speech`, () => {
      const packets = readPcap(path.join(FIXTURES, name));
      const rtp = packets.map((p) => parseRtp(p.payload));
      expect(packets.length).toBeGreaterThan(250); // ≥ 5 s
      expect(packets.every((p) => p.srcPort === 6000 && p.dstPort === 6001)).toBe(true);
      expect(
        rtp.every((r) => r.payloadType === pt && r.ssrc === rtp[0]!.ssrc && r.payload.length === 160),
      ).toBe(true);
      expect(rtp.map((r) => r.marker)).toEqual(rtp.map((_, i) => i === 0));
      rtp.slice(1).forEach((r, i) => {
        expect(r.seq).toBe((rtp[i]!.seq + 1) & 0xffff);
        expect(r.timestamp).toBe((rtp[i]!.timestamp + 160) >>> 0);
        expect(packets[i + 1]!.ts - packets[i]!.ts).toBeCloseTo(0.02, 6);
      });
      expect(rtp.slice(0, 75).every((r) => r.payload.every((b) => b === silence))).toBe(true);
      const speechFrames = rtp.filter((r) => r.payload.some((b) => b !== silence)).length;
      expect(speechFrames * 0.02).toBeGreaterThan(2);
    });
  }

  it('assistant reply files are whole 20 ms frames of the same clip', () => {
    const ulaw = readFileSync(path.join(FIXTURES, 'assistant-reply.ulaw'));
    const alaw = readFileSync(path.join(FIXTURES, 'assistant-reply.alaw'));
    const s16 = readFileSync(path.join(FIXTURES, 'assistant-reply.s16le'));
    expect(ulaw.length % 160).toBe(0);
    expect(ulaw.length / 8000).toBeGreaterThan(5);
    expect(ulaw.length / 8000).toBeLessThan(7.5);
    expect(alaw.length).toBe(ulaw.length);
    expect(s16.length).toBe(ulaw.length * 2);
    for (const file of [ulaw, alaw, s16]) expect(file.length).toBeLessThan(200 * 1024);
  });
});

const captureUsable = dumpcapUsable();
if (!captureUsable) console.log('SKIPPED: dumpcap not available');

describe('loopback capture', () => {
  it.skipIf(!captureUsable)('sees 10 UDP packets sent on 127.0.0.1 with sane timestamps', async () => {
    const port = await freeUdpPort();
    const capture = await startCapture({ udpPorts: [port] });
    const sender = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => sender.bind(0, '127.0.0.1', () => resolve()));
    const before = Date.now() / 1000;
    try {
      for (let i = 0; i < 10; i++) {
        const packet = buildRtpPacket({
          payloadType: 0,
          seq: i,
          timestamp: i * 160,
          ssrc: 42,
          marker: i === 0,
          payload: Buffer.alloc(160, 0xff),
        });
        await new Promise<void>((resolve, reject) =>
          sender.send(packet, port, '127.0.0.1', (err) => (err ? reject(err) : resolve())),
        );
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      sender.close();
    }
    const after = Date.now() / 1000;
    const packets = await capture.stop();
    expect(packets).toHaveLength(10);
    expect(
      packets.every((p) => p.dstPort === port && p.srcIp === '127.0.0.1' && p.dstIp === '127.0.0.1'),
    ).toBe(true);
    expect(packets.map((p) => parseRtp(p.payload).seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const first = packets[0]!.ts;
    const last = packets[9]!.ts;
    expect(first).toBeGreaterThanOrEqual(before - 1);
    expect(last).toBeLessThanOrEqual(after + 1);
    expect(last - first).toBeGreaterThan(0.15); // 9 gaps of ≥ 20 ms
    expect(last - first).toBeLessThan(5);
    packets.slice(1).forEach((p, i) => expect(p.ts).toBeGreaterThanOrEqual(packets[i]!.ts));
  });
});
