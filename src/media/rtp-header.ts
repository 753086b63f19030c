// Allocation-free reading of received RTP headers (RFC 3550 §5.1). The receive path runs 50 times a
// second per call; rtp.js builds a packet object and DataViews per datagram, which at hundreds of calls
// is most of the garbage the process makes. rtp.js still writes every packet we send.

/** Fixed RTP header length; CSRCs and a header extension may follow. */
export const RTP_FIXED_HEADER_BYTES = 12;
const RTP_VERSION = 2;
/** RFC 5761 §4: the second byte of an RTCP packet is its packet type, 192..223 (64..95 with the marker bit). */
const RTCP_TYPE_MIN = 192;
const RTCP_TYPE_MAX = 223;

export type RtpParseResult = 'rtp' | 'rtcp' | 'malformed';

/** The fields of one parsed packet; one instance is reused for every datagram. */
export class RtpHeader {
  payloadType = 0;
  marker = false;
  sequenceNumber = 0;
  timestamp = 0;
  ssrc = 0;
  /** Where the payload starts and ends in the datagram (end excludes padding). */
  payloadOffset = 0;
  payloadEnd = 0;

  /**
   * Reads `datagram` into this object. 'rtcp' means a valid-looking RTCP packet (demultiplexed per
   * RFC 5761); 'malformed' covers short datagrams, other versions and lengths (CSRC list, extension,
   * padding) that run past the end. Never throws.
   */
  parse(datagram: Uint8Array): RtpParseResult {
    const length = datagram.length;
    if (length < RTP_FIXED_HEADER_BYTES) return 'malformed';
    const first = datagram[0]!;
    if (first >> 6 !== RTP_VERSION) return 'malformed';
    const second = datagram[1]!;
    if (second >= RTCP_TYPE_MIN && second <= RTCP_TYPE_MAX) return 'rtcp';

    let offset = RTP_FIXED_HEADER_BYTES + 4 * (first & 0x0f);
    if ((first & 0x10) !== 0) {
      if (offset + 4 > length) return 'malformed';
      offset += 4 + 4 * ((datagram[offset + 2]! << 8) | datagram[offset + 3]!);
    }
    if (offset > length) return 'malformed';
    let end = length;
    if ((first & 0x20) !== 0) {
      const padding = datagram[length - 1]!;
      if (padding === 0 || padding > length - offset) return 'malformed';
      end -= padding;
    }

    this.marker = (second & 0x80) !== 0;
    this.payloadType = second & 0x7f;
    this.sequenceNumber = (datagram[2]! << 8) | datagram[3]!;
    this.timestamp = readUint32(datagram, 4);
    this.ssrc = readUint32(datagram, 8);
    this.payloadOffset = offset;
    this.payloadEnd = end;
    return 'rtp';
  }
}

function readUint32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
}
