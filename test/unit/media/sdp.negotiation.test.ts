// SDP offer/answer (RFC 3264) for the G.711 telephone leg: which codec we pick, what our answer says,
// and which offers we refuse with which SIP status.
import { parse } from 'sdp-transform';
import { describe, expect, it } from 'vitest';
import type { G711Codec } from '../../../src/core/audio.js';
import {
  SdpNegotiationError,
  buildAnswer,
  buildOffer,
  remoteIsSilent,
  selectMedia,
  type Direction,
  type LocalMediaParams,
  type NegotiatedMedia,
} from '../../../src/media/sdp.js';

const LOCAL: LocalMediaParams = {
  address: '192.0.2.10',
  port: 40_000,
  sessionId: '4242',
  sessionVersion: 1,
  userAgent: 'voxgate test',
};
const REMOTE_ADDRESS = '203.0.113.5';
const REMOTE_PORT = 5004;
const BOTH: readonly G711Codec[] = ['PCMU', 'PCMA'];

const G711_RTPMAPS = ['a=rtpmap:0 PCMU/8000', 'a=rtpmap:8 PCMA/8000'];
const TELEPHONE_EVENT_101 = ['a=rtpmap:101 telephone-event/8000', 'a=fmtp:101 0-16'];

interface OfferOptions {
  address?: string;
  port?: number;
  protocol?: string;
  formats?: string;
  /** Media-level a= lines. */
  attributes?: string[];
  /** Session-level a= lines. */
  sessionAttributes?: string[];
  /** Where the c= line goes; 'none' leaves it out. */
  connectionAt?: 'session' | 'media' | 'none';
}

/** A one-stream audio offer in the shape real phones send (CRLF line ends). */
function offer(options: OfferOptions = {}): string {
  const {
    address = REMOTE_ADDRESS,
    port = REMOTE_PORT,
    protocol = 'RTP/AVP',
    formats = '0 8 101',
    attributes = [...G711_RTPMAPS, ...TELEPHONE_EVENT_101],
    sessionAttributes = [],
    connectionAt = 'session',
  } = options;
  const ipVersion = address.includes(':') ? 6 : 4;
  const connection = `c=IN IP${ipVersion} ${address}`;
  return sdpText([
    'v=0',
    `o=caller 1 1 IN IP${ipVersion} ${address}`,
    's=call',
    ...(connectionAt === 'session' ? [connection] : []),
    't=0 0',
    ...sessionAttributes,
    `m=audio ${port} ${protocol} ${formats}`,
    ...(connectionAt === 'media' ? [connection] : []),
    ...attributes,
  ]);
}

function sdpText(lines: string[]): string {
  return lines.join('\r\n') + '\r\n';
}

function lines(sdp: string): string[] {
  return sdp.split(/\r?\n/).filter((line) => line !== '');
}

/** Runs `fn`, which must throw an SdpNegotiationError, and returns that error. */
function negotiationError(fn: () => unknown): SdpNegotiationError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(SdpNegotiationError);
    return error as SdpNegotiationError;
  }
  throw new Error('expected an SdpNegotiationError, but nothing was thrown');
}

function negotiated(overrides: Partial<NegotiatedMedia> = {}): NegotiatedMedia {
  return {
    codec: 'PCMU',
    payloadType: 0,
    telephoneEventPayloadType: 101,
    remoteAddress: REMOTE_ADDRESS,
    remotePort: REMOTE_PORT,
    remoteDirection: 'sendrecv',
    localDirection: 'sendrecv',
    offeredStreams: [{ type: 'audio', protocol: 'RTP/AVP', format: '0' }],
    audioIndex: 0,
    ...overrides,
  };
}

describe('selectMedia: codec choice', () => {
  it('picks PCMU from a PCMU+PCMA offer when PCMU is preferred', () => {
    const media = selectMedia(offer(), ['PCMU', 'PCMA']);
    expect(media.codec).toBe('PCMU');
    expect(media.payloadType).toBe(0);
  });

  it('picks PCMA from the same offer when PCMA is preferred', () => {
    const media = selectMedia(offer(), ['PCMA', 'PCMU']);
    expect(media.codec).toBe('PCMA');
    expect(media.payloadType).toBe(8);
  });

  it("follows our preference, not the offerer's order", () => {
    expect(selectMedia(offer({ formats: '8 0 101' }), ['PCMU', 'PCMA']).codec).toBe('PCMU');
  });

  it('accepts PCMA when the caller offers only PCMA', () => {
    const media = selectMedia(
      offer({ formats: '8 101', attributes: ['a=rtpmap:8 PCMA/8000', ...TELEPHONE_EVENT_101] }),
      BOTH,
    );
    expect(media).toMatchObject({ codec: 'PCMA', payloadType: 8 });
  });

  it('recognises static payload types 0 and 8 without rtpmap lines', () => {
    expect(selectMedia(offer({ formats: '0 8', attributes: [] }), ['PCMU', 'PCMA'])).toMatchObject({
      codec: 'PCMU',
      payloadType: 0,
    });
    expect(selectMedia(offer({ formats: '8', attributes: [] }), BOTH)).toMatchObject({
      codec: 'PCMA',
      payloadType: 8,
    });
    expect(
      selectMedia(offer({ formats: '0 8', attributes: [] }), BOTH).telephoneEventPayloadType,
    ).toBeUndefined();
  });

  it('keeps a dynamic payload type the offerer mapped to PCMU', () => {
    const media = selectMedia(offer({ formats: '97', attributes: ['a=rtpmap:97 pcmu/8000'] }), BOTH);
    expect(media).toMatchObject({ codec: 'PCMU', payloadType: 97 });
  });

  it('rejects an offer of only G.722 with 488 and a 305 Warning', () => {
    const error = negotiationError(() =>
      selectMedia(offer({ formats: '9', attributes: ['a=rtpmap:9 G722/8000'] }), BOTH),
    );
    expect(error.sipStatus).toBe(488);
    expect(error.warning).toMatch(/^305 /);
  });

  it('rejects a codec we support but did not list in the preference', () => {
    const error = negotiationError(() => selectMedia(offer({ formats: '8', attributes: [] }), ['PCMU']));
    expect(error.sipStatus).toBe(488);
    expect(error.warning).toMatch(/^305 /);
  });
});

describe('selectMedia: telephone-event', () => {
  it.each([96, 101])("takes the offerer's telephone-event payload type %i", (pt) => {
    const media = selectMedia(
      offer({ formats: `0 ${pt}`, attributes: [`a=rtpmap:${pt} telephone-event/8000`, `a=fmtp:${pt} 0-15`] }),
      BOTH,
    );
    expect(media.telephoneEventPayloadType).toBe(pt);
  });

  it('ignores telephone-event at a clock rate other than 8000', () => {
    const media = selectMedia(
      offer({ formats: '0 110', attributes: ['a=rtpmap:110 telephone-event/48000'] }),
      BOTH,
    );
    expect(media.telephoneEventPayloadType).toBeUndefined();
  });
});

describe('selectMedia: direction', () => {
  const cases: [attribute: string | undefined, remote: Direction, local: Direction][] = [
    ['a=sendonly', 'sendonly', 'recvonly'],
    ['a=recvonly', 'recvonly', 'sendonly'],
    ['a=inactive', 'inactive', 'inactive'],
    ['a=sendrecv', 'sendrecv', 'sendrecv'],
    [undefined, 'sendrecv', 'sendrecv'],
  ];

  it.each(cases)('media-level %s gives remote %s and answers %s', (attribute, remote, local) => {
    const attributes = [...G711_RTPMAPS, ...(attribute === undefined ? [] : [attribute])];
    const media = selectMedia(offer({ formats: '0 8', attributes }), BOTH);
    expect(media.remoteDirection).toBe(remote);
    expect(media.localDirection).toBe(local);
    expect(lines(buildAnswer(LOCAL, media))).toContain(`a=${local}`);
  });

  it('applies a session-level direction attribute to the audio stream', () => {
    const media = selectMedia(offer({ sessionAttributes: ['a=sendonly'] }), BOTH);
    expect(media.remoteDirection).toBe('sendonly');
    expect(media.localDirection).toBe('recvonly');
  });

  it('lets a media-level direction override the session-level one', () => {
    const media = selectMedia(
      offer({ sessionAttributes: ['a=inactive'], attributes: [...G711_RTPMAPS, 'a=sendrecv'] }),
      BOTH,
    );
    expect(media.remoteDirection).toBe('sendrecv');
  });
});

describe('selectMedia: where to send', () => {
  it('uses a session-level c= address', () => {
    const media = selectMedia(offer({ connectionAt: 'session' }), BOTH);
    expect(media.remoteAddress).toBe(REMOTE_ADDRESS);
    expect(media.remotePort).toBe(REMOTE_PORT);
  });

  it('uses a media-level c= address', () => {
    expect(selectMedia(offer({ connectionAt: 'media' }), BOTH).remoteAddress).toBe(REMOTE_ADDRESS);
  });

  it('prefers the media-level c= over the session-level one', () => {
    const sdp = sdpText([
      'v=0',
      'o=caller 1 1 IN IP4 198.51.100.1',
      's=call',
      'c=IN IP4 198.51.100.1',
      't=0 0',
      'm=audio 6000 RTP/AVP 0',
      'c=IN IP4 198.51.100.2',
    ]);
    expect(selectMedia(sdp, BOTH)).toMatchObject({ remoteAddress: '198.51.100.2', remotePort: 6000 });
  });

  it('accepts an IPv6 c= address', () => {
    expect(selectMedia(offer({ address: '2001:db8::5' }), BOTH).remoteAddress).toBe('2001:db8::5');
  });

  it('skips a disabled (port 0) audio stream and uses the next one', () => {
    const sdp = sdpText([
      'v=0',
      'o=caller 1 1 IN IP4 198.51.100.1',
      's=call',
      'c=IN IP4 198.51.100.1',
      't=0 0',
      'm=audio 0 RTP/AVP 0',
      'm=audio 6002 RTP/AVP 8',
    ]);
    expect(selectMedia(sdp, BOTH)).toMatchObject({ remotePort: 6002, codec: 'PCMA' });
  });

  it('rejects an offer whose only audio stream is disabled with 488', () => {
    expect(negotiationError(() => selectMedia(offer({ port: 0 }), BOTH)).sipStatus).toBe(488);
  });
});

describe('selectMedia: refusals', () => {
  it('rejects an RTP/SAVP-only (SRTP) offer with 488', () => {
    const error = negotiationError(() => selectMedia(offer({ protocol: 'RTP/SAVP' }), BOTH));
    expect(error.sipStatus).toBe(488);
    expect(error.warning).toMatch(/^30\d /);
  });

  it.each([
    ['an empty body', ''],
    ['whitespace only', '\r\n  \r\n'],
    ['text that is not SDP', 'hello, this is not a session description'],
    ['a wrong version line', offer().replace('v=0', 'v=1')],
  ])('rejects %s with 400', (_label, text) => {
    const error = negotiationError(() => selectMedia(text, BOTH));
    expect(error.sipStatus).toBe(400);
    expect(error.warning).toMatch(/^399 /);
  });

  it('rejects an offer with no c= line with 400', () => {
    expect(negotiationError(() => selectMedia(offer({ connectionAt: 'none' }), BOTH)).sipStatus).toBe(400);
  });

  it('rejects a c= line that holds a host name instead of an address with 400', () => {
    expect(negotiationError(() => selectMedia(offer({ address: 'pbx.example.com' }), BOTH)).sipStatus).toBe(
      400,
    );
  });
});

describe('buildAnswer', () => {
  it('answers with our address, our port, the chosen codec, telephone-event and ptime 20', () => {
    const answer = lines(buildAnswer(LOCAL, selectMedia(offer(), ['PCMU', 'PCMA'])));
    expect(answer).toContain('c=IN IP4 192.0.2.10');
    expect(answer).toContain('m=audio 40000 RTP/AVP 0 101');
    expect(answer).toContain('a=rtpmap:0 PCMU/8000');
    expect(answer).toContain('a=ptime:20');
    expect(answer).toContain('o=voxgate-test 4242 1 IN IP4 192.0.2.10');
    expect(answer.filter((line) => line.startsWith('a=rtpmap:8 '))).toEqual([]);
  });

  it.each([96, 101])('echoes telephone-event payload type %i with fmtp 0-16', (pt) => {
    const media = selectMedia(
      offer({
        formats: `8 ${pt}`,
        attributes: ['a=rtpmap:8 PCMA/8000', `a=rtpmap:${pt} telephone-event/8000`],
      }),
      BOTH,
    );
    const answer = lines(buildAnswer(LOCAL, media));
    expect(answer).toContain(`m=audio 40000 RTP/AVP 8 ${pt}`);
    expect(answer).toContain(`a=rtpmap:${pt} telephone-event/8000`);
    expect(answer).toContain(`a=fmtp:${pt} 0-16`);
  });

  it('leaves telephone-event out when the offer had none', () => {
    const answer = buildAnswer(LOCAL, selectMedia(offer({ formats: '0', attributes: [] }), BOTH));
    expect(lines(answer)).toContain('m=audio 40000 RTP/AVP 0');
    expect(answer).not.toContain('telephone-event');
  });

  it('writes an IPv6 connection line for an IPv6 local address', () => {
    const answer = lines(buildAnswer({ ...LOCAL, address: '2001:db8::10' }, negotiated()));
    expect(answer).toContain('c=IN IP6 2001:db8::10');
  });

  it.each<G711Codec[]>([
    ['PCMU', 'PCMA'],
    ['PCMA', 'PCMU'],
  ])(
    'round-trips: the answer parses back and re-negotiates to the same codec (preference %s first)',
    (...preference) => {
      const chosen = selectMedia(offer(), preference);
      const answer = buildAnswer(LOCAL, chosen);
      const parsed = parse(answer);
      expect(parsed.media).toHaveLength(1);
      expect(parsed.media[0]?.rtp.map((r) => r.codec)).toEqual([chosen.codec, 'telephone-event']);
      const again = selectMedia(answer, BOTH);
      expect(again).toMatchObject({
        codec: chosen.codec,
        payloadType: chosen.payloadType,
        telephoneEventPayloadType: chosen.telephoneEventPayloadType,
        remoteAddress: LOCAL.address,
        remotePort: LOCAL.port,
        remoteDirection: 'sendrecv',
      });
    },
  );

  // Regression: RFC 3264 §6 — one answer m= line per offered stream, refused ones with port 0.
  it('keeps one m= line per offered stream, rejecting video with port 0 (RFC 3264 §6)', () => {
    const audioAndVideo = sdpText([
      'v=0',
      'o=caller 1 1 IN IP4 198.51.100.1',
      's=call',
      'c=IN IP4 198.51.100.1',
      't=0 0',
      'm=video 6004 RTP/AVP 96',
      'a=rtpmap:96 H264/90000',
      'm=audio 6000 RTP/AVP 0',
    ]);
    const answer = parse(buildAnswer(LOCAL, selectMedia(audioAndVideo, BOTH)));
    expect(answer.media.map((m) => [m.type, m.port])).toEqual([
      ['video', 0],
      ['audio', LOCAL.port],
    ]);
  });
});

describe('buildOffer', () => {
  it('lists every preferred codec in order plus telephone-event 101, sendrecv by default', () => {
    const text = lines(buildOffer(LOCAL, ['PCMA', 'PCMU']));
    expect(text).toContain('m=audio 40000 RTP/AVP 8 0 101');
    expect(text).toContain('a=rtpmap:8 PCMA/8000');
    expect(text).toContain('a=rtpmap:0 PCMU/8000');
    expect(text).toContain('a=rtpmap:101 telephone-event/8000');
    expect(text).toContain('a=fmtp:101 0-16');
    expect(text).toContain('a=ptime:20');
    expect(text).toContain('a=sendrecv');
  });

  it('writes the requested direction', () => {
    expect(lines(buildOffer(LOCAL, BOTH, 'sendonly'))).toContain('a=sendonly');
  });

  it('is an offer our own selectMedia accepts', () => {
    expect(selectMedia(buildOffer(LOCAL, ['PCMA', 'PCMU']), ['PCMU', 'PCMA'])).toMatchObject({
      codec: 'PCMU',
      payloadType: 0,
      telephoneEventPayloadType: 101,
      remoteAddress: LOCAL.address,
      remotePort: LOCAL.port,
    });
  });
});

describe('remoteIsSilent', () => {
  it.each<[Partial<NegotiatedMedia>, boolean]>([
    [{ remoteDirection: 'sendonly' }, true],
    [{ remoteDirection: 'inactive' }, true],
    [{ remoteAddress: '0.0.0.0' }, true],
    [{ remoteDirection: 'sendrecv' }, false],
    [{ remoteDirection: 'recvonly' }, false],
  ])('%o → %s', (overrides, silent) => {
    expect(remoteIsSilent(negotiated(overrides))).toBe(silent);
  });

  it('is true for an offer that puts us on hold with a=sendonly', () => {
    expect(remoteIsSilent(selectMedia(offer({ attributes: [...G711_RTPMAPS, 'a=sendonly'] }), BOTH))).toBe(
      true,
    );
  });

  it('is true for an old-style (RFC 2543) hold with c=0.0.0.0', () => {
    expect(remoteIsSilent(selectMedia(offer({ address: '0.0.0.0' }), BOTH))).toBe(true);
  });
});
