// Minimal classic-pcap writer (Ethernet/IPv4/UDP frames carrying RTP) and reader (UDP payloads).
// The writer exists to feed SIPp's play_pcap_audio, which needs Ethernet (DLT 1) or Linux cooked
// framing with valid IPv4/UDP headers; SIPp rewrites addresses and ports when it replays.
// The reader understands what dumpcap/tshark write with `-F pcap`. pcapng is rejected explicitly.
import { readFileSync, writeFileSync } from 'node:fs';

export interface RtpPacketSpec {
  payloadType: number;
  seq: number;
  timestamp: number;
  ssrc: number;
  marker: boolean;
  payload: Buffer | Uint8Array;
  /** Capture time offset from the first packet; default index × ptimeMs. */
  atMs?: number;
}

export interface WriteRtpPcapOptions {
  srcPort: number;
  dstPort: number;
  /** Spacing between packets when they carry no `atMs`; default 20. */
  ptimeMs?: number;
  srcIp?: string;
  dstIp?: string;
  /** Epoch seconds of the first packet; fixed by default so fixture files are reproducible. */
  startTimeSec?: number;
}

export interface PcapUdpPacket {
  /** Capture time, seconds since the epoch (float). */
  ts: number;
  srcIp: string;
  dstIp: string;
  srcPort: number;
  dstPort: number;
  /** UDP payload. */
  payload: Buffer;
}

export const LINKTYPE_NULL = 0;
export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_RAW = 101;
export const LINKTYPE_LINUX_SLL = 113;
export const LINKTYPE_LINUX_SLL2 = 276;

const PCAP_MAGIC_US = 0xa1b2c3d4;
const PCAP_MAGIC_NS = 0xa1b23c4d;
const PCAPNG_MAGIC = 0x0a0d0d0a;
const GLOBAL_HEADER_LEN = 24;
const RECORD_HEADER_LEN = 16;
const SNAPLEN = 65_535;
const ETH_HEADER_LEN = 14;
const IPV4_HEADER_LEN = 20;
const UDP_HEADER_LEN = 8;
const RTP_HEADER_LEN = 12;
const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;
const ETHERTYPE_VLAN = 0x8100;
const IPPROTO_UDP = 17;
const DEFAULT_START_TIME_SEC = 1_700_000_000;
const DEFAULT_PTIME_MS = 20;

/** A plain RTP v2 packet (no CSRC, no extension, no padding). */
export function buildRtpPacket(spec: Omit<RtpPacketSpec, 'atMs'>): Buffer {
  if (!Number.isInteger(spec.payloadType) || spec.payloadType < 0 || spec.payloadType > 127) {
    throw new RangeError(`payloadType out of range: ${spec.payloadType}`);
  }
  const packet = Buffer.alloc(RTP_HEADER_LEN + spec.payload.length);
  packet[0] = 0x80;
  packet[1] = (spec.marker ? 0x80 : 0) | spec.payloadType;
  packet.writeUInt16BE(spec.seq & 0xffff, 2);
  packet.writeUInt32BE(spec.timestamp >>> 0, 4);
  packet.writeUInt32BE(spec.ssrc >>> 0, 8);
  Buffer.from(spec.payload.buffer, spec.payload.byteOffset, spec.payload.length).copy(packet, RTP_HEADER_LEN);
  return packet;
}

function ipv4Bytes(ip: string): Buffer {
  const parts = ip.split('.').map((p) => Number(p));
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new TypeError(`not an IPv4 address: ${ip}`);
  }
  return Buffer.from(parts);
}

function onesComplementSum(buf: Buffer, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < buf.length; i += 2) sum += buf.readUInt16BE(i);
  if (buf.length % 2 === 1) sum += (buf[buf.length - 1] ?? 0) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** An Ethernet/IPv4/UDP frame around `payload`, with valid IPv4 and UDP checksums. */
export function buildUdpFrame(
  srcIp: string,
  dstIp: string,
  srcPort: number,
  dstPort: number,
  payload: Buffer,
  ipId = 0,
): Buffer {
  const src = ipv4Bytes(srcIp);
  const dst = ipv4Bytes(dstIp);
  const udpLen = UDP_HEADER_LEN + payload.length;
  const ipLen = IPV4_HEADER_LEN + udpLen;
  const frame = Buffer.alloc(ETH_HEADER_LEN + ipLen);
  // Ethernet: locally administered MACs; ethertype IPv4.
  Buffer.from([0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01]).copy(frame, 0);
  frame.writeUInt16BE(ETHERTYPE_IPV4, 12);
  const ip = frame.subarray(ETH_HEADER_LEN, ETH_HEADER_LEN + IPV4_HEADER_LEN);
  ip[0] = 0x45;
  ip[1] = 0xb8; // DSCP EF, as phones mark RTP
  ip.writeUInt16BE(ipLen, 2);
  ip.writeUInt16BE(ipId & 0xffff, 4);
  ip.writeUInt16BE(0x4000, 6); // DF
  ip[8] = 64;
  ip[9] = IPPROTO_UDP;
  src.copy(ip, 12);
  dst.copy(ip, 16);
  ip.writeUInt16BE(~onesComplementSum(ip) & 0xffff, 10);
  const udp = frame.subarray(ETH_HEADER_LEN + IPV4_HEADER_LEN);
  udp.writeUInt16BE(srcPort, 0);
  udp.writeUInt16BE(dstPort, 2);
  udp.writeUInt16BE(udpLen, 4);
  payload.copy(udp, UDP_HEADER_LEN);
  const pseudo = Buffer.alloc(12);
  src.copy(pseudo, 0);
  dst.copy(pseudo, 4);
  pseudo[9] = IPPROTO_UDP;
  pseudo.writeUInt16BE(udpLen, 10);
  const checksum = ~onesComplementSum(udp, onesComplementSum(pseudo)) & 0xffff;
  udp.writeUInt16BE(checksum === 0 ? 0xffff : checksum, 6);
  return frame;
}

/** Write RTP packets as an Ethernet (DLT 1) pcap, one packet per ptime unless `atMs` says otherwise. */
export function writeRtpPcap(
  path: string,
  packets: readonly RtpPacketSpec[],
  options: WriteRtpPcapOptions,
): void {
  const ptimeMs = options.ptimeMs ?? DEFAULT_PTIME_MS;
  const srcIp = options.srcIp ?? '127.0.0.1';
  const dstIp = options.dstIp ?? '127.0.0.1';
  const startUs = Math.round((options.startTimeSec ?? DEFAULT_START_TIME_SEC) * 1e6);
  const chunks: Buffer[] = [];
  const header = Buffer.alloc(GLOBAL_HEADER_LEN);
  header.writeUInt32LE(PCAP_MAGIC_US, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeInt32LE(0, 8);
  header.writeUInt32LE(0, 12);
  header.writeUInt32LE(SNAPLEN, 16);
  header.writeUInt32LE(LINKTYPE_ETHERNET, 20);
  chunks.push(header);
  packets.forEach((packet, index) => {
    const frame = buildUdpFrame(
      srcIp,
      dstIp,
      options.srcPort,
      options.dstPort,
      buildRtpPacket(packet),
      index,
    );
    const tUs = startUs + Math.round((packet.atMs ?? index * ptimeMs) * 1000);
    const record = Buffer.alloc(RECORD_HEADER_LEN);
    record.writeUInt32LE(Math.floor(tUs / 1e6), 0);
    record.writeUInt32LE(tUs % 1e6, 4);
    record.writeUInt32LE(frame.length, 8);
    record.writeUInt32LE(frame.length, 12);
    chunks.push(record, frame);
  });
  writeFileSync(path, Buffer.concat(chunks));
}

function formatIpv6(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return groups.join(':');
}

/** Decode one link-layer frame down to its UDP payload; undefined for anything that is not UDP. */
function decodeFrame(
  linkType: number,
  frame: Buffer,
  littleEndianFile: boolean,
): Omit<PcapUdpPacket, 'ts'> | undefined {
  let offset: number;
  let etherType: number | undefined;
  switch (linkType) {
    case LINKTYPE_ETHERNET: {
      if (frame.length < ETH_HEADER_LEN) return undefined;
      etherType = frame.readUInt16BE(12);
      offset = ETH_HEADER_LEN;
      while (etherType === ETHERTYPE_VLAN && frame.length >= offset + 4) {
        etherType = frame.readUInt16BE(offset + 2);
        offset += 4;
      }
      break;
    }
    case LINKTYPE_LINUX_SLL:
      if (frame.length < 16) return undefined;
      etherType = frame.readUInt16BE(14);
      offset = 16;
      break;
    case LINKTYPE_LINUX_SLL2:
      if (frame.length < 20) return undefined;
      etherType = frame.readUInt16BE(0);
      offset = 20;
      break;
    case LINKTYPE_NULL: {
      if (frame.length < 4) return undefined;
      // Address family in the capturing host's byte order, which is the file's byte order.
      const family = littleEndianFile ? frame.readUInt32LE(0) : frame.readUInt32BE(0);
      etherType =
        family === 2 ? ETHERTYPE_IPV4 : [10, 24, 28, 30].includes(family) ? ETHERTYPE_IPV6 : undefined;
      offset = 4;
      break;
    }
    case LINKTYPE_RAW:
    case 12:
    case 14: {
      const version = (frame[0] ?? 0) >> 4;
      etherType = version === 4 ? ETHERTYPE_IPV4 : version === 6 ? ETHERTYPE_IPV6 : undefined;
      offset = 0;
      break;
    }
    default:
      throw new Error(`readPcap: unsupported link type ${linkType}`);
  }

  let srcIp: string;
  let dstIp: string;
  let udpOffset: number;
  let ipEnd: number;
  if (etherType === ETHERTYPE_IPV4) {
    const ip = frame.subarray(offset);
    if (ip.length < IPV4_HEADER_LEN || ip[0]! >> 4 !== 4) return undefined;
    const ihl = (ip[0]! & 0x0f) * 4;
    if (ip[9] !== IPPROTO_UDP) return undefined;
    const fragment = ip.readUInt16BE(6);
    if ((fragment & 0x1fff) !== 0 || (fragment & 0x2000) !== 0) return undefined; // fragments: not needed here
    srcIp = `${ip[12]}.${ip[13]}.${ip[14]}.${ip[15]}`;
    dstIp = `${ip[16]}.${ip[17]}.${ip[18]}.${ip[19]}`;
    udpOffset = offset + ihl;
    ipEnd = Math.min(frame.length, offset + ip.readUInt16BE(2));
  } else if (etherType === ETHERTYPE_IPV6) {
    const ip = frame.subarray(offset);
    if (ip.length < 40 || ip[6] !== IPPROTO_UDP) return undefined; // extension headers not followed
    srcIp = formatIpv6(ip.subarray(8, 24));
    dstIp = formatIpv6(ip.subarray(24, 40));
    udpOffset = offset + 40;
    ipEnd = Math.min(frame.length, udpOffset + ip.readUInt16BE(4));
  } else {
    return undefined;
  }
  if (ipEnd < udpOffset + UDP_HEADER_LEN) return undefined;
  const srcPort = frame.readUInt16BE(udpOffset);
  const dstPort = frame.readUInt16BE(udpOffset + 2);
  const udpLen = frame.readUInt16BE(udpOffset + 4);
  const payloadEnd = Math.min(ipEnd, udpOffset + Math.max(udpLen, UDP_HEADER_LEN));
  const payload = Buffer.from(frame.subarray(udpOffset + UDP_HEADER_LEN, payloadEnd));
  return { srcIp, dstIp, srcPort, dstPort, payload };
}

/** Parse a classic pcap file into its UDP packets (non-UDP frames are skipped). */
export function parsePcap(data: Buffer): PcapUdpPacket[] {
  if (data.length < GLOBAL_HEADER_LEN) throw new Error(`readPcap: file too short (${data.length} bytes)`);
  const magicLE = data.readUInt32LE(0);
  const magicBE = data.readUInt32BE(0);
  if (magicLE === PCAPNG_MAGIC) throw new Error('readPcap: pcapng is not supported; capture with `-F pcap`');
  let littleEndian: boolean;
  let nanos: boolean;
  if (magicLE === PCAP_MAGIC_US || magicLE === PCAP_MAGIC_NS) {
    littleEndian = true;
    nanos = magicLE === PCAP_MAGIC_NS;
  } else if (magicBE === PCAP_MAGIC_US || magicBE === PCAP_MAGIC_NS) {
    littleEndian = false;
    nanos = magicBE === PCAP_MAGIC_NS;
  } else {
    throw new Error(`readPcap: not a pcap file (magic 0x${magicBE.toString(16)})`);
  }
  const u32 = (at: number): number => (littleEndian ? data.readUInt32LE(at) : data.readUInt32BE(at));
  const linkType = u32(20) & 0x0fffffff;
  const packets: PcapUdpPacket[] = [];
  let offset = GLOBAL_HEADER_LEN;
  while (offset + RECORD_HEADER_LEN <= data.length) {
    const sec = u32(offset);
    const frac = u32(offset + 4);
    const inclLen = u32(offset + 8);
    const start = offset + RECORD_HEADER_LEN;
    const end = start + inclLen;
    if (end > data.length) break; // truncated last record (capture killed mid-write)
    const decoded = decodeFrame(linkType, data.subarray(start, end), littleEndian);
    if (decoded) packets.push({ ts: sec + frac / (nanos ? 1e9 : 1e6), ...decoded });
    offset = end;
  }
  return packets;
}

export function readPcap(path: string): PcapUdpPacket[] {
  return parsePcap(readFileSync(path));
}
