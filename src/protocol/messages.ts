// Wire formats of the four WireGuard messages (spec §2): offsets, sizes and the
// receive-side filter. Integers in headers are little-endian; every read and write
// goes through these offsets so the layout is declared once.
import {
  MESSAGE_COOKIE_REPLY, MESSAGE_COOKIE_REPLY_SIZE, MESSAGE_INITIATION, MESSAGE_INITIATION_SIZE,
  MESSAGE_RESPONSE, MESSAGE_RESPONSE_SIZE, MESSAGE_TRANSPORT, MESSAGE_TRANSPORT_MIN_SIZE,
  MESSAGE_PADDING_MULTIPLE,
} from '../constants.js';

/** Type 1 – Handshake Initiation. */
export const Initiation = {
  SENDER: 4, EPHEMERAL: 8, STATIC: 40, TIMESTAMP: 88, MAC1: 116, MAC2: 132, SIZE: MESSAGE_INITIATION_SIZE,
} as const;
/** Type 2 – Handshake Response. */
export const Response = {
  SENDER: 4, RECEIVER: 8, EPHEMERAL: 12, EMPTY: 44, MAC1: 60, MAC2: 76, SIZE: MESSAGE_RESPONSE_SIZE,
} as const;
/** Type 3 – Cookie Reply. */
export const CookieReply = { RECEIVER: 4, NONCE: 8, COOKIE: 32, SIZE: MESSAGE_COOKIE_REPLY_SIZE } as const;
/** Type 4 – Transport Data. */
export const Transport = { RECEIVER: 4, COUNTER: 8, CONTENT: 16 } as const;

export function readU32(b: Uint8Array, off: number): number {
  return (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0;
}
export function writeU32(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff; b[off + 1] = (v >>> 8) & 0xff; b[off + 2] = (v >>> 16) & 0xff; b[off + 3] = (v >>> 24) & 0xff;
}
/** Writes the 4-byte header (type, three zero reserved bytes). */
export function writeType(b: Uint8Array, type: number): void {
  b[0] = type; b[1] = 0; b[2] = 0; b[3] = 0;
}

/** Writes the 16-byte transport header: type 4, receiver index, 64-bit counter (LE). */
export function writeTransportHeader(b: Uint8Array, receiverIndex: number, counter: number): void {
  writeType(b, MESSAGE_TRANSPORT);
  writeU32(b, Transport.RECEIVER, receiverIndex);
  writeU32(b, Transport.COUNTER, counter >>> 0);
  writeU32(b, Transport.COUNTER + 4, Math.floor(counter / 0x1_0000_0000));
}

/**
 * The receive filter of §2: returns the message type when bytes 0..3 are a known type
 * with zero reserved bytes and the length fits that type exactly (types 1–3) or is at
 * least 32 (type 4); returns 0 for anything else (a silent, counted drop).
 */
export function messageType(b: Uint8Array, len: number = b.length): number {
  if (len < MESSAGE_TRANSPORT_MIN_SIZE) return 0;
  if (b[1] !== 0 || b[2] !== 0 || b[3] !== 0) return 0;
  switch (b[0]) {
    case MESSAGE_INITIATION: return len === MESSAGE_INITIATION_SIZE ? MESSAGE_INITIATION : 0;
    case MESSAGE_RESPONSE: return len === MESSAGE_RESPONSE_SIZE ? MESSAGE_RESPONSE : 0;
    case MESSAGE_COOKIE_REPLY: return len === MESSAGE_COOKIE_REPLY_SIZE ? MESSAGE_COOKIE_REPLY : 0;
    case MESSAGE_TRANSPORT: return MESSAGE_TRANSPORT;
    default: return 0;
  }
}

/**
 * Padded plaintext length for an inner packet of `len` bytes and tunnel MTU `mtu` (§2):
 * round up to 16, capped at the MTU; a packet longer than the MTU is padded by its
 * remainder only, so a full-MTU packet never grows.
 */
export function paddedLength(len: number, mtu: number): number {
  if (mtu === 0) return (len + MESSAGE_PADDING_MULTIPLE - 1) & ~(MESSAGE_PADDING_MULTIPLE - 1);
  const last = len > mtu ? len % mtu : len;
  let padded = (last + MESSAGE_PADDING_MULTIPLE - 1) & ~(MESSAGE_PADDING_MULTIPLE - 1);
  if (padded > mtu) padded = mtu;
  return len - last + padded;
}
