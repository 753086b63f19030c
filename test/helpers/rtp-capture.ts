// Loopback packet capture for e2e tests (dumpcap on `lo`, classic pcap) and a hand-written RTP parser.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { readPcap, type PcapUdpPacket } from './pcap.js';
import { artifactsDir, findOnPath, spawnManaged } from './processes.js';

/** dumpcap opens the interface and installs the BPF filter well under this on an idle machine. */
const CAPTURE_START_TIMEOUT_MS = 10_000;
/** "Capturing on" is printed just before the capture loop starts; give the kernel ring a moment to go live. */
const CAPTURE_SETTLE_MS = 250;
/** dumpcap flushes and exits promptly on SIGINT; SIGKILL after this would lose buffered packets. */
const CAPTURE_STOP_GRACE_MS = 5_000;
/** Packets still in flight when stop() is called (e.g. the last RTP frames) get this long to land. */
const CAPTURE_DRAIN_MS = 100;

export interface CaptureOptions {
  udpPorts: readonly number[];
  /** Interface to capture on; loopback only by design. */
  iface?: 'lo';
  /** Where the pcap goes; default a fresh directory under test/.artifacts/. */
  file?: string;
}

export interface Capture {
  readonly file: string;
  /** Stop capturing (SIGINT, bounded wait) and return every UDP packet seen. */
  stop(): Promise<PcapUdpPacket[]>;
}

export interface ParsedRtp {
  version: number;
  padding: boolean;
  extension: boolean;
  csrcCount: number;
  marker: boolean;
  payloadType: number;
  seq: number;
  timestamp: number;
  ssrc: number;
  csrcs: number[];
  /** Header extension (profile + data), if any. */
  headerExtension?: { profile: number; data: Buffer };
  /** Payload without header, CSRCs, extension and padding. */
  payload: Buffer;
}

export function findDumpcap(): string | undefined {
  const fromEnv = process.env['DUMPCAP_BIN'];
  if (fromEnv) return existsSync(fromEnv) ? fromEnv : undefined;
  return findOnPath('dumpcap');
}

/** True when dumpcap exists and can open the loopback interface (needs root or CAP_NET_RAW). */
export function dumpcapUsable(): boolean {
  const bin = findDumpcap();
  if (!bin) return false;
  try {
    const out = execFileSync(bin, ['-D'], {
      encoding: 'utf8',
      timeout: 10_000,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return /\blo\b/.test(out);
  } catch {
    return false;
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Start capturing UDP on loopback for the given ports; resolves once dumpcap is actually capturing. */
export async function startCapture(options: CaptureOptions): Promise<Capture> {
  const bin = findDumpcap();
  if (!bin) {
    throw new Error('startCapture: dumpcap not found (apt-get install -y tshark, or set DUMPCAP_BIN)');
  }
  if (options.udpPorts.length === 0) throw new RangeError('startCapture: udpPorts must not be empty');
  for (const port of options.udpPorts) {
    if (!Number.isInteger(port) || port <= 0 || port > 65_535)
      throw new RangeError(`startCapture: bad port ${port}`);
  }
  const file = options.file ?? path.join(artifactsDir('capture'), 'rtp.pcap');
  const filter = `udp and (${options.udpPorts.map((p) => `port ${p}`).join(' or ')})`;
  const proc = spawnManaged(bin, ['-i', options.iface ?? 'lo', '-f', filter, '-w', file, '-P', '-q'], {
    name: 'dumpcap',
    killGraceMs: CAPTURE_STOP_GRACE_MS,
  });
  try {
    await proc.waitForLine(/Capturing on/, CAPTURE_START_TIMEOUT_MS, { stream: 'stderr' });
  } catch (err) {
    await proc.kill('SIGKILL');
    throw err;
  }
  await delay(CAPTURE_SETTLE_MS);

  let stopped: Promise<PcapUdpPacket[]> | undefined;
  return {
    file,
    stop() {
      stopped ??= (async () => {
        await delay(CAPTURE_DRAIN_MS);
        const exit = await proc.kill('SIGINT', CAPTURE_STOP_GRACE_MS);
        if (!existsSync(file)) {
          throw new Error(`dumpcap wrote no file (exit ${JSON.stringify(exit)})\n${proc.tail()}`);
        }
        return readPcap(file);
      })();
      return stopped;
    },
  };
}

/** Quick check that a UDP payload looks like RTP v2 (and not RTCP: PT 72–76 with marker folded in). */
export function isRtp(payload: Buffer): boolean {
  if (payload.length < 12 || (payload[0]! & 0xc0) !== 0x80) return false;
  const pt = payload[1]! & 0x7f;
  return !(pt >= 72 && pt <= 76);
}

/** Parse an RTP packet by hand (RFC 3550 §5.1): fixed header, CSRC list, header extension, padding. */
export function parseRtp(packet: Buffer): ParsedRtp {
  if (packet.length < 12)
    throw new RangeError(`parseRtp: ${packet.length} bytes is shorter than an RTP header`);
  const b0 = packet[0]!;
  const b1 = packet[1]!;
  const version = b0 >> 6;
  if (version !== 2) throw new TypeError(`parseRtp: version ${version}, expected 2`);
  const padding = (b0 & 0x20) !== 0;
  const extension = (b0 & 0x10) !== 0;
  const csrcCount = b0 & 0x0f;
  let offset = 12;
  if (packet.length < offset + csrcCount * 4) throw new RangeError('parseRtp: truncated CSRC list');
  const csrcs: number[] = [];
  for (let i = 0; i < csrcCount; i++) csrcs.push(packet.readUInt32BE(offset + i * 4));
  offset += csrcCount * 4;
  let headerExtension: ParsedRtp['headerExtension'];
  if (extension) {
    if (packet.length < offset + 4) throw new RangeError('parseRtp: truncated extension header');
    const profile = packet.readUInt16BE(offset);
    const words = packet.readUInt16BE(offset + 2);
    const end = offset + 4 + words * 4;
    if (packet.length < end) throw new RangeError('parseRtp: truncated extension data');
    headerExtension = { profile, data: Buffer.from(packet.subarray(offset + 4, end)) };
    offset = end;
  }
  let end = packet.length;
  if (padding) {
    const padLen = packet[packet.length - 1]!;
    if (padLen === 0 || offset + padLen > packet.length)
      throw new RangeError(`parseRtp: bad padding length ${padLen}`);
    end -= padLen;
  }
  const parsed: ParsedRtp = {
    version,
    padding,
    extension,
    csrcCount,
    marker: (b1 & 0x80) !== 0,
    payloadType: b1 & 0x7f,
    seq: packet.readUInt16BE(2),
    timestamp: packet.readUInt32BE(4),
    ssrc: packet.readUInt32BE(8),
    csrcs,
    payload: Buffer.from(packet.subarray(offset, end)),
  };
  if (headerExtension) parsed.headerExtension = headerExtension;
  return parsed;
}
