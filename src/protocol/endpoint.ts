// A peer's UDP endpoint: address (canonical text, IPv4 dotted or IPv6 without brackets),
// port, family and the raw address bytes (used for cookies and the rate limiter).
import { formatAddress, parseAddress } from './ipaddr.js';

export interface Endpoint {
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
  readonly bytes: Uint8Array;
  /**
   * Sticky source: the local address (same family) the peer last sent to, and its interface
   * index; replies leave from it (IP_PKTINFO / IPV6_PKTINFO). Absent: the kernel chooses.
   */
  readonly src?: Uint8Array;
  readonly srcIfindex?: number;
  /** IPv6 scope id (zone) of a link-local address; absent = 0. */
  readonly scope?: number;
}

/** What sending one datagram to an endpoint did. */
export const enum Sent {
  /** Not sent (no socket of that family, socket buffer full, or another error). */
  No = 0,
  Yes = 1,
  /** Sent, but without the endpoint's sticky source: the kernel refused it (the address is no longer ours). */
  WithoutSource = 2,
}

/** The same endpoint without its sticky source (the kernel chooses the local address again). */
export function withoutSource(ep: Endpoint): Endpoint {
  const { src: _src, srcIfindex: _ifindex, ...rest } = ep;
  return rest;
}

/** Same remote address and port, and the same sticky source. */
export function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  if (a.port !== b.port || a.address !== b.address || (a.srcIfindex ?? 0) !== (b.srcIfindex ?? 0) || (a.scope ?? 0) !== (b.scope ?? 0)) return false;
  const x = a.src;
  const y = b.src;
  if (x === undefined || y === undefined) return x === y;
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

export function endpointFromBytes(bytes: Uint8Array, port: number): Endpoint {
  return { address: formatAddress(bytes), port, family: bytes.length === 4 ? 4 : 6, bytes: Uint8Array.from(bytes) };
}

/** From a dgram rinfo-like address; IPv4-mapped IPv6 is folded to IPv4, a zone dropped. Null if unparsable. */
export function endpointFromAddress(address: string, port: number): Endpoint | null {
  if (address.startsWith('::ffff:') && address.includes('.')) address = address.slice(7);
  const pct = address.indexOf('%');
  const bytes = parseAddress(pct >= 0 ? address.slice(0, pct) : address);
  return bytes ? { address: formatAddress(bytes), port, family: bytes.length === 4 ? 4 : 6, bytes } : null;
}

export function formatEndpoint(ep: Endpoint): string {
  return ep.family === 4 ? `${ep.address}:${ep.port}` : `[${ep.address}]:${ep.port}`;
}

/** Address bytes followed by the port big-endian: the cookie / rate-limit identity of a source. */
export function endpointSourceKey(ep: Endpoint): Uint8Array {
  const out = new Uint8Array(ep.bytes.length + 2);
  out.set(ep.bytes);
  out[ep.bytes.length] = ep.port >>> 8;
  out[ep.bytes.length + 1] = ep.port & 0xff;
  return out;
}
