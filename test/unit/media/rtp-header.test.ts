import { RtpPacket } from 'rtp.js/packets';
import { describe, expect, it } from 'vitest';
import { RtpHeader } from '../../../src/media/rtp-header.js';

/** A packet written by rtp.js (an independent implementation), as the bytes a peer would send. */
function written(build: (packet: RtpPacket) => void): Uint8Array {
  const packet = new RtpPacket();
  build(packet);
  const buffer = new ArrayBuffer(packet.getByteLength());
  packet.serialize(buffer, 0);
  return new Uint8Array(buffer);
}

describe('RtpHeader.parse', () => {
  it('reads every fixed field, including a timestamp and SSRC above 2^31', () => {
    const bytes = written((p) => {
      p.setPayloadType(8);
      p.setMarker(true);
      p.setSequenceNumber(0xfffe);
      p.setTimestamp(0xfedcba98);
      p.setSsrc(0x89abcdef);
      p.setPayload(new DataView(Uint8Array.of(1, 2, 3).buffer));
    });
    const header = new RtpHeader();
    expect(header.parse(bytes)).toBe('rtp');
    expect(header).toMatchObject({
      payloadType: 8,
      marker: true,
      sequenceNumber: 0xfffe,
      timestamp: 0xfedcba98,
      ssrc: 0x89abcdef,
    });
    expect(Array.from(bytes.subarray(header.payloadOffset, header.payloadEnd))).toEqual([1, 2, 3]);
  });

  it('skips CSRCs and a header extension, and strips padding, like rtp.js', () => {
    const bytes = written((p) => {
      p.setPayloadType(0);
      p.setCsrcs([0x11111111, 0x22222222]);
      p.enableOneByteExtensions();
      p.setExtension(1, new DataView(Uint8Array.of(0xaa, 0xbb).buffer));
      p.setPayload(new DataView(new Uint8Array(161).fill(0x7f).buffer));
      p.padTo4Bytes(); // 161 → 3 bytes of padding
    });
    const reference = new RtpPacket(new DataView(bytes.buffer));
    expect(reference.getPadding()).toBe(3);
    const header = new RtpHeader();
    expect(header.parse(bytes)).toBe('rtp');
    expect(header.payloadEnd - header.payloadOffset).toBe(161);
    expect(reference.getPayload().byteLength).toBe(161);
    expect(header.payloadOffset).toBe(reference.getPayload().byteOffset);
    expect(bytes.subarray(header.payloadOffset, header.payloadEnd).every((b) => b === 0x7f)).toBe(true);
  });

  it('tells RTCP (RFC 5761 packet types 192..223) from RTP', () => {
    const header = new RtpHeader();
    const senderReport = new Uint8Array(28);
    senderReport.set([0x80, 200, 0x00, 0x06]);
    expect(header.parse(senderReport)).toBe('rtcp');
    const receiverReport = Uint8Array.of(0x81, 201, 0x00, 0x07, ...new Array<number>(28).fill(0));
    expect(header.parse(receiverReport)).toBe('rtcp');
  });

  it.each([
    ['empty', []],
    ['shorter than the fixed header', [0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]],
    ['version 1', [0x40, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]],
    ['version 0 (e.g. STUN)', [0x00, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0]],
    ['a CSRC list past the end', [0x8f, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]],
    ['an extension header cut short', [0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xbe, 0xde]],
    ['an extension longer than the packet', [0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xbe, 0xde, 0, 9]],
    ['padding of zero bytes', [0xa0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0]],
    ['padding longer than the payload', [0xa0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 3]],
  ])('reports %s as malformed without throwing', (_label, bytes) => {
    expect(new RtpHeader().parse(Uint8Array.from(bytes))).toBe('malformed');
  });

  it('accepts an empty payload (a keep-alive) and padding that fills the whole payload', () => {
    const header = new RtpHeader();
    expect(header.parse(Uint8Array.of(0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1))).toBe('rtp');
    expect(header.payloadEnd - header.payloadOffset).toBe(0);
    expect(header.parse(Uint8Array.of(0xa0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 4))).toBe('rtp');
    expect(header.payloadEnd - header.payloadOffset).toBe(0);
  });
});
