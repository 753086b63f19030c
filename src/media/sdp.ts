import { parse, write, type SessionDescription, type MediaDescription } from 'sdp-transform';
import { isIP } from 'node:net';
import type { G711Codec } from '../core/audio.js';
import { FRAME_MS } from '../core/audio.js';
import { STATIC_PAYLOAD_TYPE } from './g711.js';

/** Media direction as RFC 3264 defines it, from the point of view of the SDP's author. */
export type Direction = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';

/** Why an offer or answer cannot be served; carries the SIP status to reply with. */
export class SdpNegotiationError extends Error {
  override readonly name = 'SdpNegotiationError';
  constructor(
    message: string,
    /** 488 Not Acceptable Here for "nothing in common", 400 for unparsable SDP. */
    readonly sipStatus: 400 | 488,
    /** Text for a Warning header (RFC 3261 §20.43 code 304/305/399). */
    readonly warning: string,
  ) {
    super(message);
  }
}

export interface NegotiatedMedia {
  codec: G711Codec;
  payloadType: number;
  /** RFC 4733 telephone-event payload type (the offerer's), if offered. */
  telephoneEventPayloadType: number | undefined;
  remoteAddress: string;
  remotePort: number;
  /** Direction the remote party declared. */
  remoteDirection: Direction;
  /** Our direction in the answer (RFC 3264 §6.1 mirror of the remote's). */
  localDirection: Direction;
  /**
   * Every m= line of the offer, in order, and which one is the audio we use: an answer must have one
   * m= line per offered stream, refused ones with port 0 (RFC 3264 §6).
   */
  offeredStreams: { type: string; protocol: string; format: string }[];
  audioIndex: number;
}

export interface LocalMediaParams {
  address: string;
  port: number;
  /** Our SDP session id/version; version must grow on every new SDP we send in a dialog. */
  sessionId: string;
  sessionVersion: number;
  userAgent: string;
}

const MIRROR: Readonly<Record<Direction, Direction>> = {
  sendrecv: 'sendrecv',
  sendonly: 'recvonly',
  recvonly: 'sendonly',
  inactive: 'inactive',
};

const ENCODING_NAMES: Readonly<Record<string, G711Codec>> = { PCMU: 'PCMU', PCMA: 'PCMA' };
const TELEPHONE_EVENT_PT_DEFAULT = 101;

function parseSdp(text: string): SessionDescription {
  if (text.trim() === '') throw new SdpNegotiationError('empty SDP', 400, '399 voxgate "Empty SDP body"');
  let sdp: SessionDescription;
  try {
    sdp = parse(text);
  } catch {
    throw new SdpNegotiationError('unparsable SDP', 400, '399 voxgate "Malformed SDP"');
  }
  if (sdp.version !== 0 || !Array.isArray(sdp.media)) {
    throw new SdpNegotiationError('SDP lacks v=0 or media', 400, '399 voxgate "Malformed SDP"');
  }
  return sdp;
}

function directionOf(media: MediaDescription, session: SessionDescription): Direction {
  return media.direction ?? session.direction ?? 'sendrecv';
}

interface CodecEntry {
  name: string;
  payloadType: number;
  rate: number;
}

/** The payload formats listed in an m= line, with static PTs filled in when no rtpmap is given. */
function codecsOf(media: MediaDescription): CodecEntry[] {
  const pts = String(media.payloads ?? '')
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((n) => Number.isInteger(n) && n >= 0 && n <= 127);
  return pts.map((pt) => {
    const rtp = media.rtp.find((r) => r.payload === pt);
    if (rtp) return { name: rtp.codec.toUpperCase(), payloadType: pt, rate: rtp.rate ?? 8000 };
    if (pt === 0) return { name: 'PCMU', payloadType: 0, rate: 8000 };
    if (pt === 8) return { name: 'PCMA', payloadType: 8, rate: 8000 };
    return { name: `PT${pt}`, payloadType: pt, rate: 0 };
  });
}

function connectionAddress(media: MediaDescription, session: SessionDescription): string | undefined {
  return media.connection?.ip ?? session.connection?.ip;
}

/**
 * Choose what to use from a remote offer (or answer): the first codec of `preference` that the remote
 * lists, its telephone-event PT, and where to send media. Throws SdpNegotiationError when nothing fits.
 */
export function selectMedia(remoteSdp: string, preference: readonly G711Codec[]): NegotiatedMedia {
  const sdp = parseSdp(remoteSdp);
  const audioIndex = sdp.media.findIndex(
    (m) => m.type === 'audio' && m.port !== 0 && /^RTP\/AVP$/i.test(m.protocol),
  );
  const audio = sdp.media[audioIndex];
  if (!audio) {
    const secure = sdp.media.some((m) => m.type === 'audio' && /SAVP/i.test(m.protocol));
    throw new SdpNegotiationError(
      secure ? 'only secure (SRTP) audio offered' : 'no RTP/AVP audio stream offered',
      488,
      secure ? '302 voxgate "Incompatible transport protocol"' : '304 voxgate "Media type not available"',
    );
  }
  const codecs = codecsOf(audio);
  const chosen = preference
    .map((name) => codecs.find((c) => c.name === name && c.rate === 8000))
    .find((c) => c !== undefined);
  if (!chosen) {
    throw new SdpNegotiationError(
      `no common codec (offered: ${codecs.map((c) => c.name).join(', ') || 'none'})`,
      488,
      '305 voxgate "Incompatible media format: PCMU or PCMA required"',
    );
  }
  const address = connectionAddress(audio, sdp);
  if (address === undefined || isIP(address) === 0) {
    throw new SdpNegotiationError(
      'no usable c= address for audio',
      400,
      '399 voxgate "Missing or invalid c= line"',
    );
  }
  const telephoneEvent = codecs.find((c) => c.name === 'TELEPHONE-EVENT' && c.rate === 8000);
  const remoteDirection = directionOf(audio, sdp);
  return {
    codec: ENCODING_NAMES[chosen.name]!,
    payloadType: chosen.payloadType,
    telephoneEventPayloadType: telephoneEvent?.payloadType,
    remoteAddress: address,
    remotePort: audio.port,
    remoteDirection,
    localDirection: MIRROR[remoteDirection],
    offeredStreams: sdp.media.map((m) => ({
      type: m.type,
      protocol: m.protocol,
      format: String(m.payloads ?? '').split(/\s+/)[0] ?? '0',
    })),
    audioIndex,
  };
}

/** RFC 2543-style hold puts an unspecified address in c=: nothing may be sent there. */
export function isUnspecifiedAddress(address: string): boolean {
  return address === '0.0.0.0' || address === '::';
}

/** True when the remote is not sending to us (hold): media-timeouts must pause. */
export function remoteIsSilent(media: NegotiatedMedia): boolean {
  return (
    media.remoteDirection === 'sendonly' ||
    media.remoteDirection === 'inactive' ||
    isUnspecifiedAddress(media.remoteAddress)
  );
}

interface AudioLine {
  codecs: { name: G711Codec; payloadType: number }[];
  telephoneEventPayloadType: number | undefined;
  direction: Direction;
  /** For an answer: the offer's streams; all but `audioIndex` are refused with port 0. */
  streams?: { offered: NegotiatedMedia['offeredStreams']; audioIndex: number };
}

function buildSdp(local: LocalMediaParams, line: AudioLine): string {
  const family = isIP(local.address) === 6 ? 6 : 4;
  const rtp: MediaDescription['rtp'] = line.codecs.map((c) => ({
    payload: c.payloadType,
    codec: c.name,
    rate: 8000,
  }));
  const fmtp: MediaDescription['fmtp'] = [];
  const payloads = line.codecs.map((c) => c.payloadType);
  if (line.telephoneEventPayloadType !== undefined) {
    rtp.push({ payload: line.telephoneEventPayloadType, codec: 'telephone-event', rate: 8000 });
    fmtp.push({ payload: line.telephoneEventPayloadType, config: '0-16' });
    payloads.push(line.telephoneEventPayloadType);
  }
  const sdp: SessionDescription = {
    version: 0,
    origin: {
      username: local.userAgent.replace(/\s+/g, '-'),
      sessionId: local.sessionId,
      sessionVersion: local.sessionVersion,
      netType: 'IN',
      ipVer: family,
      address: local.address,
    },
    name: local.userAgent,
    connection: { version: family, ip: local.address },
    timing: { start: 0, stop: 0 },
    media: [],
  };
  const audio: MediaDescription = {
    type: 'audio',
    port: local.port,
    protocol: 'RTP/AVP',
    payloads: payloads.join(' '),
    rtp,
    fmtp,
    ptime: FRAME_MS,
    direction: line.direction,
  };
  if (line.streams === undefined) {
    sdp.media.push(audio);
  } else {
    line.streams.offered.forEach((stream, index) => {
      sdp.media.push(
        index === line.streams!.audioIndex
          ? audio
          : {
              type: stream.type,
              port: 0,
              protocol: stream.protocol,
              payloads: stream.format,
              rtp: [],
              fmtp: [],
            },
      );
    });
  }
  return write(sdp);
}

/** Our answer to a negotiated offer: one codec, the offerer's telephone-event PT, mirrored direction. */
export function buildAnswer(local: LocalMediaParams, media: NegotiatedMedia): string {
  return buildSdp(local, {
    codecs: [{ name: media.codec, payloadType: media.payloadType }],
    telephoneEventPayloadType: media.telephoneEventPayloadType,
    direction: media.localDirection,
    streams: { offered: media.offeredStreams, audioIndex: media.audioIndex },
  });
}

/** Our offer (late-offer INVITE, or an INVITE we originate): every preferred codec plus telephone-event. */
export function buildOffer(
  local: LocalMediaParams,
  preference: readonly G711Codec[],
  direction: Direction = 'sendrecv',
): string {
  return buildSdp(local, {
    codecs: preference.map((name) => ({ name, payloadType: STATIC_PAYLOAD_TYPE[name] })),
    telephoneEventPayloadType: TELEPHONE_EVENT_PT_DEFAULT,
    direction,
  });
}
