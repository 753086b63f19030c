import { DTMF_DIGITS, type DtmfDigit } from '../core/dtmf-digits.js';
// DTMF carried in SIP INFO bodies (the out-of-band alternative to RFC 4733 events). Pure parsing; the
// dialog layer answers the INFO and hands the digit to the call, which reports it like an RTP digit.

/** The digits SIP INFO can carry; the same set as RFC 4733 events 0–15. */
export type InfoDtmfDigit = DtmfDigit;

export interface InfoDtmf {
  digit: InfoDtmfDigit;
  /** From `Duration=` (milliseconds) in application/dtmf-relay; undefined when absent or unusable. */
  durationMs: number | undefined;
}

/** Index = RFC 4733 event code, which some gear sends instead of the character (Signal=10 for '*'). */
const DIGITS = DTMF_DIGITS;

/** A Duration above this is not a key press; it is ignored (the digit is still reported). */
const MAX_DURATION_MS = 60_000;
/** Bodies longer than this are not DTMF; refuse before splitting lines. */
const MAX_BODY_CHARS = 1_024;

/**
 * Parses an INFO body as DTMF:
 * - `application/dtmf-relay`: lines of `Key=Value`, keys case-insensitive, whitespace tolerated, CR/LF or
 *   LF line ends; `Signal` is a digit character or an event code 0–15; `Duration` is in milliseconds.
 * - `application/dtmf`: the body is the digit character or its event code.
 * Parameters after `;` in the content type (charset) are ignored. Anything else, or a signal that is not
 * one of the 16 DTMF digits (e.g. hook flash), gives undefined.
 */
export function parseDtmfInfo(contentType: string | undefined, body: string): InfoDtmf | undefined {
  if (contentType === undefined || body.length > MAX_BODY_CHARS) return undefined;
  const mediaType = contentType.split(';', 1)[0]!.trim().toLowerCase();
  if (mediaType === 'application/dtmf') {
    const digit = signalToDigit(body.trim());
    return digit === undefined ? undefined : { digit, durationMs: undefined };
  }
  if (mediaType !== 'application/dtmf-relay') return undefined;

  let signal: string | undefined;
  let duration: string | undefined;
  for (const line of body.split(/\r\n|\r|\n/)) {
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq).trim().toLowerCase();
    const value = line.slice(eq + 1).trim();
    if (key === 'signal') signal ??= value;
    else if (key === 'duration') duration ??= value;
  }
  if (signal === undefined) return undefined;
  const digit = signalToDigit(signal);
  if (digit === undefined) return undefined;
  return { digit, durationMs: duration === undefined ? undefined : parseDurationMs(duration) };
}

function signalToDigit(signal: string): InfoDtmfDigit | undefined {
  if (/^\d{1,2}$/.test(signal)) return DIGITS[Number(signal)];
  if (signal.length !== 1) return undefined;
  const upper = signal.toUpperCase();
  return DIGITS.find((d) => d === upper);
}

function parseDurationMs(value: string): number | undefined {
  if (!/^\d{1,6}$/.test(value)) return undefined;
  const ms = Number(value);
  return ms > 0 && ms <= MAX_DURATION_MS ? ms : undefined;
}
