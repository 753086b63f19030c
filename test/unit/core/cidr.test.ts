import { describe, expect, it } from 'vitest';
import { ipv4InNetworks, parseIpv4Network } from '../../../src/core/cidr.js';

describe('IPv4 CIDR matching (SIP_ALLOWED_SOURCES)', () => {
  const twilioUs1 = parseIpv4Network('54.172.60.0/30')!;

  it('matches every address of a /30 and nothing next to it', () => {
    for (const last of [0, 1, 2, 3]) expect(ipv4InNetworks(`54.172.60.${last}`, [twilioUs1])).toBe(true);
    expect(ipv4InNetworks('54.172.60.4', [twilioUs1])).toBe(false);
    expect(ipv4InNetworks('54.172.59.255', [twilioUs1])).toBe(false);
  });

  it('treats a bare address as /32 and accepts IPv4-mapped IPv6 sources', () => {
    const one = parseIpv4Network('192.0.2.10')!;
    expect(ipv4InNetworks('192.0.2.10', [one])).toBe(true);
    expect(ipv4InNetworks('::ffff:192.0.2.10', [one])).toBe(true);
    expect(ipv4InNetworks('192.0.2.11', [one])).toBe(false);
  });

  it('rejects malformed networks and never matches IPv6', () => {
    for (const bad of ['', '1.2.3', '1.2.3.4/33', '1.2.3.4/x', '300.1.1.1', 'twilio']) {
      expect(parseIpv4Network(bad)).toBeUndefined();
    }
    expect(ipv4InNetworks('2001:db8::1', [parseIpv4Network('0.0.0.0/0')!])).toBe(false);
  });
});
