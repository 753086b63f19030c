import { describe, expect, it } from 'vitest';
import {
  DestinationPolicy,
  parseDestination,
  parseDestinationRules,
  type Destination,
} from '../../../src/api/destinations.js';

function parsed(raw: string): Destination {
  const result = parseDestination(raw);
  if (!result.ok) throw new Error(`${raw}: ${result.reason}`);
  return result.destination;
}

describe('parseDestination', () => {
  it.each([
    ['+14155550100', { kind: 'e164', number: '+14155550100' }],
    ['sip:alice@pbx.example.com', { kind: 'sip', user: 'alice', host: 'pbx.example.com', port: undefined }],
    ['SIP:Bob@PBX.Example.com.:5080', { kind: 'sip', user: 'Bob', host: 'pbx.example.com', port: 5080 }],
    ['sip:pbx.example.com', { kind: 'sip', user: undefined, host: 'pbx.example.com', port: undefined }],
    [
      'sip:+15551234567@10.0.0.5;user=phone',
      { kind: 'sip', user: '+15551234567', host: '10.0.0.5', port: undefined },
    ],
    [
      'sip:ops@[2001:db8::1]:5060;transport=tcp',
      { kind: 'sip', user: 'ops', host: '[2001:db8::1]', port: 5060 },
    ],
  ])('accepts %s', (raw, expected) => {
    expect(parseDestination(raw)).toEqual({ ok: true, destination: expected });
  });

  it.each([
    ['+0123456789', /E\.164/],
    ['+123456', /E\.164/],
    ['+1234567890123456', /E\.164/],
    ['+1 555 123 4567', /E\.164/],
    ['14155550100', /E\.164 number .* or a sip: URI/],
    ['sips:alice@pbx.example.com', /sip: URI/],
    ['sip:alice@pbx.example.com?Subject=hi', /headers/],
    ['sip:alice@pbx.example.com;maddr=192.0.2.1', /maddr/],
    ['sip:alice@pbx.example.com;transport=sctp', /transport/],
    ['sip:alice:secret@pbx.example.com', /user part/],
    ['sip:alice@', /host/],
    ['sip:alice@bad_host.example.com', /host/],
    ['sip:alice@999.1.1.1', /host/],
    ['sip:alice@pbx.example.com:70000', /port/],
    ['sip:al ice@pbx.example.com', /user part/],
    [`sip:${'a'.repeat(300)}@pbx.example.com`, /too long/],
  ])('refuses %s with a reason', (raw, reason) => {
    const result = parseDestination(raw);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toMatch(reason);
  });
});

describe('DestinationPolicy', () => {
  const policy = new DestinationPolicy(['+1555', ' sip:PBX.example.com ', '@carrier.example.net', '']);

  it('allows E.164 numbers by prefix', () => {
    expect(policy.check(parsed('+15551234567'))).toEqual({ allowed: true });
    expect(policy.check(parsed('+15561234567')).allowed).toBe(false);
  });

  it('allows SIP URIs by exact domain, in either entry syntax, case-insensitively', () => {
    expect(policy.check(parsed('sip:alice@pbx.example.com'))).toEqual({ allowed: true });
    expect(policy.check(parsed('sip:+4420123@Carrier.Example.NET:5060'))).toEqual({ allowed: true });
    expect(policy.check(parsed('sip:alice@sub.pbx.example.com')).allowed).toBe(false);
    expect(policy.check(parsed('sip:alice@example.com')).allowed).toBe(false);
  });

  it('does not let a number prefix allow a SIP URI carrying that number', () => {
    expect(policy.check(parsed('sip:+15551234567@elsewhere.example.org')).allowed).toBe(false);
  });

  it('denies everything when empty', () => {
    const empty = new DestinationPolicy([]);
    expect(empty.check(parsed('+15551234567'))).toEqual({
      allowed: false,
      reason: expect.stringMatching(/empty/) as unknown,
    });
    expect(empty.check(parsed('sip:alice@pbx.example.com')).allowed).toBe(false);
  });

  it.each(['1555', '+', '+0', '*', 'sip:', '@', 'pbx.example.com', 'sip:alice@pbx.example.com', '+1-555'])(
    'refuses the malformed entry %j, naming it',
    (entry) => {
      expect(() => parseDestinationRules([entry])).toThrow(`"${entry}"`);
    },
  );
});
