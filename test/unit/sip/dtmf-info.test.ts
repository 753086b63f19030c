// SIP INFO DTMF bodies as real gear sends them (Cisco/Polycom dtmf-relay, Asterisk, bare application/dtmf)
// become one digit with an optional duration; anything else is not DTMF.
import { describe, expect, it } from 'vitest';
import { parseDtmfInfo } from '../../../src/sip/dtmf-info.js';

const RELAY = 'application/dtmf-relay';

describe('parseDtmfInfo with application/dtmf-relay', () => {
  it('reads Signal and Duration (milliseconds) from a CRLF body', () => {
    expect(parseDtmfInfo(RELAY, 'Signal=5\r\nDuration=160\r\n')).toEqual({ digit: '5', durationMs: 160 });
  });

  it('accepts lower-case keys, spaces around "=", and LF-only line ends', () => {
    expect(parseDtmfInfo(RELAY, 'signal= #\nduration = 250\n')).toEqual({ digit: '#', durationMs: 250 });
    expect(parseDtmfInfo(RELAY, '  SIGNAL =*  ')).toEqual({ digit: '*', durationMs: undefined });
  });

  it('maps event codes 10–15 to *, #, A–D', () => {
    expect(parseDtmfInfo(RELAY, 'Signal=10\r\nDuration=100')?.digit).toBe('*');
    expect(parseDtmfInfo(RELAY, 'Signal=11\r\nDuration=100')?.digit).toBe('#');
    expect(parseDtmfInfo(RELAY, 'Signal=12')?.digit).toBe('A');
    expect(parseDtmfInfo(RELAY, 'Signal=15')?.digit).toBe('D');
    expect(parseDtmfInfo(RELAY, 'Signal=d')?.digit).toBe('D');
  });

  it('ignores parameters and case in the content type', () => {
    expect(parseDtmfInfo('application/dtmf-relay; charset=UTF-8', 'Signal=9\r\nDuration=200')).toEqual({
      digit: '9',
      durationMs: 200,
    });
    expect(parseDtmfInfo(' Application/DTMF-Relay ;charset=utf-8', 'Signal=1')?.digit).toBe('1');
  });

  it('keeps the digit but drops a Duration that is not a sensible positive number of ms', () => {
    expect(parseDtmfInfo(RELAY, 'Signal=2\r\nDuration=abc')).toEqual({ digit: '2', durationMs: undefined });
    expect(parseDtmfInfo(RELAY, 'Signal=2\r\nDuration=-5')).toEqual({ digit: '2', durationMs: undefined });
    expect(parseDtmfInfo(RELAY, 'Signal=2\r\nDuration=0')).toEqual({ digit: '2', durationMs: undefined });
  });

  it('returns undefined without a Signal, or with a signal that is not one of the 16 digits', () => {
    expect(parseDtmfInfo(RELAY, 'Duration=160')).toBeUndefined();
    expect(parseDtmfInfo(RELAY, '')).toBeUndefined();
    expect(parseDtmfInfo(RELAY, 'Signal=16')).toBeUndefined(); // hook flash
    expect(parseDtmfInfo(RELAY, 'Signal=hf')).toBeUndefined();
    expect(parseDtmfInfo(RELAY, 'Signal=E')).toBeUndefined();
    expect(parseDtmfInfo(RELAY, 'Signal=')).toBeUndefined();
    expect(parseDtmfInfo(RELAY, 'Signal=123')).toBeUndefined();
  });
});

describe('parseDtmfInfo with application/dtmf', () => {
  it('reads a body that is just the digit or its event number', () => {
    expect(parseDtmfInfo('application/dtmf', '5')).toEqual({ digit: '5', durationMs: undefined });
    expect(parseDtmfInfo('application/dtmf', '#\r\n')).toEqual({ digit: '#', durationMs: undefined });
    expect(parseDtmfInfo('application/dtmf', '11')).toEqual({ digit: '#', durationMs: undefined });
    expect(parseDtmfInfo('application/dtmf; charset=us-ascii', 'b')?.digit).toBe('B');
  });

  it('returns undefined for anything that is not a single digit', () => {
    expect(parseDtmfInfo('application/dtmf', '')).toBeUndefined();
    expect(parseDtmfInfo('application/dtmf', '55')).toBeUndefined();
    expect(parseDtmfInfo('application/dtmf', 'Signal=5')).toBeUndefined();
  });
});

describe('parseDtmfInfo with other content', () => {
  it('returns undefined for other content types, no content type, or an oversized body', () => {
    expect(parseDtmfInfo(undefined, 'Signal=5')).toBeUndefined();
    expect(parseDtmfInfo('application/media_control+xml', '<media_control/>')).toBeUndefined();
    expect(parseDtmfInfo('text/plain', '5')).toBeUndefined();
    expect(parseDtmfInfo('application/dtmf-relayx', 'Signal=5')).toBeUndefined();
    expect(parseDtmfInfo(RELAY, `Signal=5\r\n${'x'.repeat(5_000)}`)).toBeUndefined();
    expect(parseDtmfInfo(RELAY, '\u0000\u0001garbage=\r\n==\r\n')).toBeUndefined();
  });
});
