// A peer's UDP endpoint: address (canonical text, IPv4 dotted or IPv6 without brackets),
// port, family and the raw address bytes (used for cookies and the rate limiter).
import { isIPv4, isIPv6 } from 'node:net';

export interface Endpoint {
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
  readonly bytes: Uint8Array;
}

export function endpointFromBytes(bytes: Uint8Array, port: number): Endpoint {
  if (bytes.length === 4) return { address: bytes.join('.'), port, family: 4, bytes: Uint8Array.from(bytes) };
  return { address: formatIPv6(bytes), port, family: 6, bytes: Uint8Array.from(bytes) };
}

/** From a dgram rinfo-like address; IPv4-mapped IPv6 is folded to IPv4. Null if unparsable. */
export function endpointFromAddress(address: string, port: number): Endpoint | null {
  if (address.startsWith('::ffff:') && isIPv4(address.slice(7))) address = address.slice(7);
  const pct = address.indexOf('%');
  if (pct >= 0) address = address.slice(0, pct);
  if (isIPv4(address)) {
    const bytes = Uint8Array.from(address.split('.').map(Number));
    return { address, port, family: 4, bytes };
  }
  if (isIPv6(address)) {
    const bytes = parseIPv6(address);
    if (!bytes) return null;
    return { address: formatIPv6(bytes), port, family: 6, bytes };
  }
  return null;
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

function parseIPv6(s: string): Uint8Array | null {
  let tail: number[] = [];
  const v4 = s.match(/^(.*:)(\d+\.\d+\.\d+\.\d+)$/);
  if (v4) {
    tail = v4[2]!.split('.').map(Number);
    const b = tail;
    s = v4[1]! + ((b[0]! << 8) | b[1]!).toString(16) + ':' + ((b[2]! << 8) | b[3]!).toString(16);
  }
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const head = halves[0] ? halves[0].split(':') : [];
  const rest = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const missing = 8 - head.length - rest.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const groups = [...head, ...new Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...rest];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    const g = groups[i]!;
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
    const v = parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  }
  return out;
}

/** RFC 5952 text form. */
export function formatIPv6(b: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push((b[2 * i]! << 8) | b[2 * i + 1]!);
  let bestStart = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return hex.slice(0, bestStart).join(':') + '::' + hex.slice(bestStart + bestLen).join(':');
}
