// A peer's UDP endpoint: address (canonical text, IPv4 dotted or IPv6 without brackets),
// port, family and the raw address bytes (used for cookies and the rate limiter).
import { formatAddress, parseAddress } from './ipaddr.js';

export interface Endpoint {
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
  readonly bytes: Uint8Array;
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
