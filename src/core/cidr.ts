import { isIPv4 } from 'node:net';

/** An IPv4 network, e.g. 54.172.60.0/30. */
export interface Ipv4Network {
  base: number;
  mask: number;
}

function ipv4ToInt(address: string): number {
  return address.split('.').reduce((acc, octet) => ((acc << 8) | Number(octet)) >>> 0, 0);
}

/** Parses "a.b.c.d" or "a.b.c.d/n"; undefined when it is not one. */
export function parseIpv4Network(text: string): Ipv4Network | undefined {
  const [address, bits] = text.trim().split('/');
  if (address === undefined || !isIPv4(address)) return undefined;
  const prefix = bits === undefined ? 32 : Number(bits);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) return undefined;
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return { base: (ipv4ToInt(address) & mask) >>> 0, mask };
}

/** True when `address` (IPv4, or IPv4-mapped IPv6) is inside any of `networks`. */
export function ipv4InNetworks(address: string, networks: readonly Ipv4Network[]): boolean {
  const plain = address.startsWith('::ffff:') ? address.slice(7) : address;
  if (!isIPv4(plain)) return false;
  const value = ipv4ToInt(plain);
  return networks.some((n) => (value & n.mask) >>> 0 === n.base);
}
