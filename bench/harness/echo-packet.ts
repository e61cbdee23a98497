// IPv4 ICMP echo packets for the handshake load generator's data check: a simulated
// initiator sends an echo request from its inner address to the target interface's inner
// address through its fresh session; the target's kernel answers, and the daemon routes the
// reply back through the same session. Pure functions over bytes, no I/O.

const IPV4_HEADER_LEN = 20;
const ICMP_HEADER_LEN = 8;
const ICMP_ECHO_REPLY = 0;
const ICMP_ECHO_REQUEST = 8;
const PROTO_ICMP = 1;
/** Payload bytes after the ICMP header (a fixed marker, so a reply is recognisable). */
const PAYLOAD = new TextEncoder().encode('wirepool-hs-load');

/** "a.b.c.d" → 4 bytes; throws on anything else. */
export function ipv4Bytes(addr: string): Uint8Array {
  const parts = addr.split('.');
  if (parts.length !== 4) throw new Error(`not an IPv4 address: ${addr}`);
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const n = Number(parts[i]);
    if (!/^\d{1,3}$/.test(parts[i]!) || n > 255) throw new Error(`not an IPv4 address: ${addr}`);
    out[i] = n;
  }
  return out;
}

/** The IPv4 address `base + offset` as text (offset may carry into higher octets). */
export function ipv4Add(base: string, offset: number): string {
  const b = ipv4Bytes(base);
  const n = ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
  const v = n + offset;
  if (!Number.isInteger(offset) || v < 0 || v > 0xffff_ffff) throw new RangeError(`${base} + ${offset} is not an IPv4 address`);
  return `${v >>> 24}.${(v >>> 16) & 0xff}.${(v >>> 8) & 0xff}.${v & 0xff}`;
}

/** RFC 1071 Internet checksum of b[start, end). */
export function internetChecksum(b: Uint8Array, start: number, end: number): number {
  let sum = 0;
  for (let i = start; i + 1 < end; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  if ((end - start) & 1) sum += b[end - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** An IPv4 ICMP echo request src → dst with the given identifier and sequence number. */
export function echoRequest(src: Uint8Array, dst: Uint8Array, id: number, seq: number): Uint8Array {
  const total = IPV4_HEADER_LEN + ICMP_HEADER_LEN + PAYLOAD.length;
  const p = new Uint8Array(total);
  p[0] = 0x45; // version 4, IHL 5
  p[2] = total >>> 8;
  p[3] = total & 0xff;
  p[4] = (seq >>> 8) & 0xff; // IP identification: any value
  p[5] = seq & 0xff;
  p[6] = 0x40; // don't fragment
  p[8] = 64; // TTL
  p[9] = PROTO_ICMP;
  p.set(src, 12);
  p.set(dst, 16);
  const ipSum = internetChecksum(p, 0, IPV4_HEADER_LEN);
  p[10] = ipSum >>> 8;
  p[11] = ipSum & 0xff;
  const o = IPV4_HEADER_LEN;
  p[o] = ICMP_ECHO_REQUEST;
  p[o + 4] = (id >>> 8) & 0xff;
  p[o + 5] = id & 0xff;
  p[o + 6] = (seq >>> 8) & 0xff;
  p[o + 7] = seq & 0xff;
  p.set(PAYLOAD, o + ICMP_HEADER_LEN);
  const icmpSum = internetChecksum(p, o, total);
  p[o + 2] = icmpSum >>> 8;
  p[o + 3] = icmpSum & 0xff;
  return p;
}

/**
 * True when `p` (a decrypted inner packet, possibly followed by padding) is an IPv4 ICMP
 * echo reply from `from` to `to` with identifier `id`, our payload and valid checksums.
 */
export function isEchoReply(p: Uint8Array, from: Uint8Array, to: Uint8Array, id: number): boolean {
  if (p.length < IPV4_HEADER_LEN + ICMP_HEADER_LEN || p[0]! >>> 4 !== 4) return false;
  const ihl = (p[0]! & 0x0f) * 4;
  const total = (p[2]! << 8) | p[3]!;
  if (ihl < IPV4_HEADER_LEN || total > p.length || total < ihl + ICMP_HEADER_LEN + PAYLOAD.length) return false;
  if (p[9] !== PROTO_ICMP || internetChecksum(p, 0, ihl) !== 0) return false;
  for (let i = 0; i < 4; i++) if (p[12 + i] !== from[i] || p[16 + i] !== to[i]) return false;
  if (p[ihl] !== ICMP_ECHO_REPLY || p[ihl + 1] !== 0 || internetChecksum(p, ihl, total) !== 0) return false;
  if (((p[ihl + 4]! << 8) | p[ihl + 5]!) !== id) return false;
  for (let i = 0; i < PAYLOAD.length; i++) if (p[ihl + ICMP_HEADER_LEN + i] !== PAYLOAD[i]) return false;
  return true;
}
