// mac1, mac2 and cookie replies (spec §4), both sides, sans-I/O.
//   CookieChecker  — one per device, keyed by our own public key: verifies mac1/mac2 of
//                    received handshake messages and makes cookie replies under load.
//   CookieGenerator — one per peer, keyed by the peer's public key: adds mac1/mac2 to the
//                    handshake messages we send and consumes the peer's cookie replies.
//
// The checker is on the path of every handshake datagram before it may take a handshake-queue
// slot (spec §7): under a flood of initiations with a valid mac1 it checks mac1 and answers
// each one with a cookie reply, tens of thousands a second, on the main thread. So it does not
// use Crypto.mac / Crypto.xaeadSeal (@noble, ~10 µs and several allocations per call) but the
// allocation-free primitives at the end of this file: keyed BLAKE2s-128 with the key block
// compressed once per key (a mac1 check is two compressions, ~0.5 µs), and XChaCha20-Poly1305
// specialised to the 16-byte cookie sealed with a 16-byte ad (three ChaCha20 blocks and three
// Poly1305 blocks). test/handshake-queue.test.ts checks both against @noble on random inputs.
import { COOKIE_NONCE_LEN, COOKIE_REFRESH_TIME, LABEL_COOKIE, LABEL_MAC1, MAC_LEN, MESSAGE_COOKIE_REPLY } from '../constants.js';
import { type Crypto } from '../crypto/crypto.js';
import { CookieReply, writeType } from './messages.js';

const enc = new TextEncoder();
const MAC1_LABEL = enc.encode(LABEL_MAC1);
const COOKIE_LABEL = enc.encode(LABEL_COOKIE);
const ZERO_MAC = new Uint8Array(MAC_LEN);
/** Cookie-reply nonces drawn from the CSPRNG per refill (24 bytes each, every byte used once). */
const NONCES_PER_REFILL = 128;

/** Offsets of mac1 in the two handshake messages; mac2 follows mac1 directly. */
export function mac1Offset(msgLength: number): number {
  return msgLength - 2 * MAC_LEN;
}

export class CookieChecker {
  private mac1: Mac16 | null = null;
  private cookieKey: Uint8Array | null = null;
  /** MAC keyed with the current secret: cookie = MAC(secret, source). */
  private secretMac: Mac16 | null = null;
  private secretSetAt = -Infinity;
  private readonly cookie = new Uint8Array(MAC_LEN);
  private readonly scratch = new Uint8Array(MAC_LEN);
  private nonces: Uint8Array = new Uint8Array(0);
  private nonceAt = 0;

  constructor(private readonly c: Crypto) {}

  /** (Re)key with our static public key; null disables checking (no private key). */
  init(publicKey: Uint8Array | null): void {
    this.mac1?.zero();
    this.mac1 = publicKey ? new Mac16(this.c.hash(MAC1_LABEL, publicKey)) : null;
    this.cookieKey = publicKey ? this.c.hash(COOKIE_LABEL, publicKey) : null;
  }

  /** mac1 over msg[0, off_mac1) with HASH(LABEL_MAC1 || our public key). */
  checkMac1(msg: Uint8Array): boolean {
    if (!this.mac1) return false;
    const off = mac1Offset(msg.length);
    return this.mac1.verify(msg, off, msg, off);
  }

  /**
   * mac2 over msg[0, off_mac2) keyed by the cookie of `source` (address bytes || port BE).
   * An all-zero mac2 is the sender's "I hold no cookie" (§4) and is refused without computing
   * anything (a MAC equal to zero has probability 2^-128).
   */
  checkMac2(msg: Uint8Array, source: Uint8Array, nowMs: number): boolean {
    if (!this.secretMac || nowMs - this.secretSetAt > COOKIE_REFRESH_TIME) return false; // secret expired: nobody holds a valid cookie
    const off = mac1Offset(msg.length) + MAC_LEN;
    let any = 0;
    for (let i = 0; i < MAC_LEN; i++) any |= msg[off + i]!;
    if (any === 0) return false;
    this.secretMac.compute(source, source.length, this.cookie, 0);
    mac16(this.cookie, msg, off, this.scratch, 0);
    const ok = equal16(this.scratch, 0, msg, off);
    this.cookie.fill(0);
    return ok;
  }

  /** A 64-byte cookie reply to a handshake message from `source`, for its sender index. */
  createReply(msg: Uint8Array, senderIndex: number, source: Uint8Array, nowMs: number): Uint8Array | null {
    if (!this.cookieKey) return null;
    if (!this.secretMac || nowMs - this.secretSetAt > COOKIE_REFRESH_TIME) {
      this.secretMac?.zero();
      const secret = this.c.randomBytes(32);
      this.secretMac = new Mac16(secret);
      secret.fill(0);
      this.secretSetAt = nowMs;
    }
    this.secretMac.compute(source, source.length, this.cookie, 0);
    const out = new Uint8Array(CookieReply.SIZE);
    writeType(out, MESSAGE_COOKIE_REPLY);
    out[4] = senderIndex & 0xff; out[5] = (senderIndex >>> 8) & 0xff;
    out[6] = (senderIndex >>> 16) & 0xff; out[7] = (senderIndex >>> 24) & 0xff;
    if (this.nonceAt === this.nonces.length) {
      this.nonces = this.c.randomBytes(COOKIE_NONCE_LEN * NONCES_PER_REFILL);
      this.nonceAt = 0;
    }
    out.set(this.nonces.subarray(this.nonceAt, this.nonceAt + COOKIE_NONCE_LEN), CookieReply.NONCE);
    this.nonces.fill(0, this.nonceAt, this.nonceAt + COOKIE_NONCE_LEN);
    this.nonceAt += COOKIE_NONCE_LEN;
    const mac1 = mac1Offset(msg.length);
    xseal16(this.cookieKey, out, CookieReply.NONCE, this.cookie, msg, mac1, out, CookieReply.COOKIE);
    this.cookie.fill(0);
    return out;
  }
}

export class CookieGenerator {
  private readonly mac1Key: Uint8Array;
  private readonly cookieKey: Uint8Array;
  private cookie = new Uint8Array(MAC_LEN);
  private cookieSetAt = -Infinity;
  private lastMac1 = new Uint8Array(MAC_LEN);
  private hasLastMac1 = false;

  constructor(private readonly c: Crypto, peerPublicKey: Uint8Array) {
    this.mac1Key = c.hash(MAC1_LABEL, peerPublicKey);
    this.cookieKey = c.hash(COOKIE_LABEL, peerPublicKey);
  }

  /** Fill mac1 (always) and mac2 (with a fresh cookie, else zeros) of an outgoing handshake message. */
  addMacs(msg: Uint8Array, nowMs: number): void {
    const off = mac1Offset(msg.length);
    const mac1 = this.c.mac(this.mac1Key, msg.subarray(0, off));
    msg.set(mac1, off);
    this.lastMac1.set(mac1);
    this.hasLastMac1 = true;
    if (nowMs - this.cookieSetAt < COOKIE_REFRESH_TIME) {
      msg.set(this.c.mac(this.cookie, msg.subarray(0, off + MAC_LEN)), off + MAC_LEN);
    } else {
      msg.set(ZERO_MAC, off + MAC_LEN);
    }
  }

  /** Decrypt a cookie reply for our last sent message; true when a cookie was stored. */
  consumeReply(msg: Uint8Array, nowMs: number): boolean {
    if (!this.hasLastMac1) return false;
    const nonce = msg.subarray(CookieReply.NONCE, CookieReply.NONCE + COOKIE_NONCE_LEN);
    const sealed = msg.subarray(CookieReply.COOKIE, CookieReply.SIZE);
    const cookie = this.c.xaeadOpen(this.cookieKey, nonce, sealed, this.lastMac1);
    if (!cookie || cookie.length !== MAC_LEN) return false;
    this.cookie.set(cookie);
    this.cookieSetAt = nowMs;
    this.hasLastMac1 = false; // one reply per message sent (kernel behaviour)
    return true;
  }

  /** Forget the cookie (keys retired). */
  clear(): void {
    this.cookie.fill(0);
    this.cookieSetAt = -Infinity;
    this.hasLastMac1 = false;
  }
}

// ───────────────────────── keyed BLAKE2s-128 (spec §1 MAC) ─────────────────────────
// RFC 7693 with digest length 16 and a key: the key, zero-padded to 64 bytes, is the first
// block. Mac16 compresses it once and starts every MAC from that state. Only what WireGuard
// needs: keys of 1–32 bytes, messages of at least one byte (mac1, mac2, the cookie).

const B2S_IV = Int32Array.of(
  0x6a09e667, 0xbb67ae85 | 0, 0x3c6ef372, 0xa54ff53a | 0, 0x510e527f, 0x9b05688c | 0, 0x1f83d9ab, 0x5be0cd19,
);
const b2sBlock = new Uint8Array(64);
const b2sState = new Int32Array(8);
const b2sKeyed = new Int32Array(8);
const macOut = new Uint8Array(MAC_LEN);

/** A keyed BLAKE2s-128 for one key. */
export class Mac16 {
  private readonly keyed = new Int32Array(8);

  constructor(key: Uint8Array) {
    keyBlock(key, this.keyed);
  }

  /** MAC of data[0, len) (len ≥ 1) into out[off, off + 16). */
  compute(data: Uint8Array, len: number, out: Uint8Array, off: number): void {
    b2sState.set(this.keyed);
    b2sFinish(b2sState, data, len, out, off);
  }

  /** Whether the MAC of data[0, len) equals expected[off, off + 16) (constant time in the bytes compared). */
  verify(data: Uint8Array, len: number, expected: Uint8Array, off: number): boolean {
    this.compute(data, len, macOut, 0);
    const ok = equal16(macOut, 0, expected, off);
    macOut.fill(0);
    return ok;
  }

  zero(): void {
    this.keyed.fill(0);
  }
}

/** MAC(key, data[0, len)) into out[off, off + 16), for a key used once. */
export function mac16(key: Uint8Array, data: Uint8Array, len: number, out: Uint8Array, off: number): void {
  keyBlock(key, b2sKeyed);
  b2sFinish(b2sKeyed, data, len, out, off);
  b2sKeyed.fill(0);
}

function keyBlock(key: Uint8Array, h: Int32Array): void {
  if (key.length < 1 || key.length > 32) throw new RangeError(`MAC key must be 1–32 bytes, got ${key.length}`);
  h.set(B2S_IV);
  h[0] ^= 0x01010000 ^ (key.length << 8) ^ MAC_LEN;
  b2sCompress(h, key, 0, key.length, 64, false);
}

/** Compresses data[0, len) into h (already past the key block) and writes the 16-byte digest. */
function b2sFinish(h: Int32Array, data: Uint8Array, len: number, out: Uint8Array, off: number): void {
  if (len < 1 || len > data.length) throw new RangeError(`MAC input must be 1–${data.length} bytes, got ${len}`);
  let at = 0;
  for (; len - at > 64; at += 64) b2sCompress(h, data, at, 64, 64 + at + 64, false);
  b2sCompress(h, data, at, len - at, 64 + len, true);
  for (let i = 0; i < 4; i++) {
    const w = h[i]!;
    out[off + 4 * i] = w & 0xff; out[off + 4 * i + 1] = (w >>> 8) & 0xff;
    out[off + 4 * i + 2] = (w >>> 16) & 0xff; out[off + 4 * i + 3] = w >>> 24;
  }
  h.fill(0);
}

/** The BLAKE2s compression of b[o, o + len) (zero-padded to 64 bytes); t = bytes so far (< 2^32). Rounds unrolled. */
function b2sCompress(h: Int32Array, b: Uint8Array, o: number, len: number, t: number, last: boolean): void {
  let s = b;
  if (len < 64) {
    b2sBlock.fill(0);
    for (let i = 0; i < len; i++) b2sBlock[i] = b[o + i]!;
    s = b2sBlock;
    o = 0;
  }
  const m0 = le32(s, o), m1 = le32(s, o + 4), m2 = le32(s, o + 8), m3 = le32(s, o + 12);
  const m4 = le32(s, o + 16), m5 = le32(s, o + 20), m6 = le32(s, o + 24), m7 = le32(s, o + 28);
  const m8 = le32(s, o + 32), m9 = le32(s, o + 36), m10 = le32(s, o + 40), m11 = le32(s, o + 44);
  const m12 = le32(s, o + 48), m13 = le32(s, o + 52), m14 = le32(s, o + 56), m15 = le32(s, o + 60);
  let v0 = h[0]!, v1 = h[1]!, v2 = h[2]!, v3 = h[3]!, v4 = h[4]!, v5 = h[5]!, v6 = h[6]!, v7 = h[7]!;
  let v8 = B2S_IV[0]!, v9 = B2S_IV[1]!, v10 = B2S_IV[2]!, v11 = B2S_IV[3]!;
  let v12 = B2S_IV[4]! ^ t, v13 = B2S_IV[5]!, v14 = last ? ~B2S_IV[6]! : B2S_IV[6]!, v15 = B2S_IV[7]!;
  // round 0: σ0 = 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15
  v0 = (v0 + v4 + m0) | 0; v12 ^= v0; v12 = (v12 >>> 16) | (v12 << 16); v8 = (v8 + v12) | 0; v4 ^= v8; v4 = (v4 >>> 12) | (v4 << 20);
  v0 = (v0 + v4 + m1) | 0; v12 ^= v0; v12 = (v12 >>> 8) | (v12 << 24); v8 = (v8 + v12) | 0; v4 ^= v8; v4 = (v4 >>> 7) | (v4 << 25);
  v1 = (v1 + v5 + m2) | 0; v13 ^= v1; v13 = (v13 >>> 16) | (v13 << 16); v9 = (v9 + v13) | 0; v5 ^= v9; v5 = (v5 >>> 12) | (v5 << 20);
  v1 = (v1 + v5 + m3) | 0; v13 ^= v1; v13 = (v13 >>> 8) | (v13 << 24); v9 = (v9 + v13) | 0; v5 ^= v9; v5 = (v5 >>> 7) | (v5 << 25);
  v2 = (v2 + v6 + m4) | 0; v14 ^= v2; v14 = (v14 >>> 16) | (v14 << 16); v10 = (v10 + v14) | 0; v6 ^= v10; v6 = (v6 >>> 12) | (v6 << 20);
  v2 = (v2 + v6 + m5) | 0; v14 ^= v2; v14 = (v14 >>> 8) | (v14 << 24); v10 = (v10 + v14) | 0; v6 ^= v10; v6 = (v6 >>> 7) | (v6 << 25);
  v3 = (v3 + v7 + m6) | 0; v15 ^= v3; v15 = (v15 >>> 16) | (v15 << 16); v11 = (v11 + v15) | 0; v7 ^= v11; v7 = (v7 >>> 12) | (v7 << 20);
  v3 = (v3 + v7 + m7) | 0; v15 ^= v3; v15 = (v15 >>> 8) | (v15 << 24); v11 = (v11 + v15) | 0; v7 ^= v11; v7 = (v7 >>> 7) | (v7 << 25);
  v0 = (v0 + v5 + m8) | 0; v15 ^= v0; v15 = (v15 >>> 16) | (v15 << 16); v10 = (v10 + v15) | 0; v5 ^= v10; v5 = (v5 >>> 12) | (v5 << 20);
  v0 = (v0 + v5 + m9) | 0; v15 ^= v0; v15 = (v15 >>> 8) | (v15 << 24); v10 = (v10 + v15) | 0; v5 ^= v10; v5 = (v5 >>> 7) | (v5 << 25);
  v1 = (v1 + v6 + m10) | 0; v12 ^= v1; v12 = (v12 >>> 16) | (v12 << 16); v11 = (v11 + v12) | 0; v6 ^= v11; v6 = (v6 >>> 12) | (v6 << 20);
  v1 = (v1 + v6 + m11) | 0; v12 ^= v1; v12 = (v12 >>> 8) | (v12 << 24); v11 = (v11 + v12) | 0; v6 ^= v11; v6 = (v6 >>> 7) | (v6 << 25);
  v2 = (v2 + v7 + m12) | 0; v13 ^= v2; v13 = (v13 >>> 16) | (v13 << 16); v8 = (v8 + v13) | 0; v7 ^= v8; v7 = (v7 >>> 12) | (v7 << 20);
  v2 = (v2 + v7 + m13) | 0; v13 ^= v2; v13 = (v13 >>> 8) | (v13 << 24); v8 = (v8 + v13) | 0; v7 ^= v8; v7 = (v7 >>> 7) | (v7 << 25);
  v3 = (v3 + v4 + m14) | 0; v14 ^= v3; v14 = (v14 >>> 16) | (v14 << 16); v9 = (v9 + v14) | 0; v4 ^= v9; v4 = (v4 >>> 12) | (v4 << 20);
  v3 = (v3 + v4 + m15) | 0; v14 ^= v3; v14 = (v14 >>> 8) | (v14 << 24); v9 = (v9 + v14) | 0; v4 ^= v9; v4 = (v4 >>> 7) | (v4 << 25);
  // round 1: σ1 = 14 10 4 8 9 15 13 6 1 12 0 2 11 7 5 3
  v0 = (v0 + v4 + m14) | 0; v12 ^= v0; v12 = (v12 >>> 16) | (v12 << 16); v8 = (v8 + v12) | 0; v4 ^= v8; v4 = (v4 >>> 12) | (v4 << 20);
  v0 = (v0 + v4 + m10) | 0; v12 ^= v0; v12 = (v12 >>> 8) | (v12 << 24); v8 = (v8 + v12) | 0; v4 ^= v8; v4 = (v4 >>> 7) | (v4 << 25);
  v1 = (v1 + v5 + m4) | 0; v13 ^= v1; v13 = (v13 >>> 16) | (v13 << 16); v9 = (v9 + v13) | 0; v5 ^= v9; v5 = (v5 >>> 12) | (v5 << 20);
  v1 = (v1 + v5 + m8) | 0; v13 ^= v1; v13 = (v13 >>> 8) | (v13 << 24); v9 = (v9 + v13) | 0; v5 ^= v9; v5 = (v5 >>> 7) | (v5 << 25);
  v2 = (v2 + v6 + m9) | 0; v14 ^= v2; v14 = (v14 >>> 16) | (v14 << 16); v10 = (v10 + v14) | 0; v6 ^= v10; v6 = (v6 >>> 12) | (v6 << 20);
  v2 = (v2 + v6 + m15) | 0; v14 ^= v2; v14 = (v14 >>> 8) | (v14 << 24); v10 = (v10 + v14) | 0; v6 ^= v10; v6 = (v6 >>> 7) | (v6 << 25);
  v3 = (v3 + v7 + m13) | 0; v15 ^= v3; v15 = (v15 >>> 16) | (v15 << 16); v11 = (v11 + v15) | 0; v7 ^= v11; v7 = (v7 >>> 12) | (v7 << 20);
  v3 = (v3 + v7 + m6) | 0; v15 ^= v3; v15 = (v15 >>> 8) | (v15 << 24); v11 = (v11 + v15) | 0; v7 ^= v11; v7 = (v7 >>> 7) | (v7 << 25);
  v0 = (v0 + v5 + m1) | 0; v15 ^= v0; v15 = (v15 >>> 16) | (v15 << 16); v10 = (v10 + v15) | 0; v5 ^= v10; v5 = (v5 >>> 12) | (v5 << 20);
  v0 = (v0 + v5 + m12) | 0; v15 ^= v0; v15 = (v15 >>> 8) | (v15 << 24); v10 = (v10 + v15) | 0; v5 ^= v10; v5 = (v5 >>> 7) | (v5 << 25);
  v1 = (v1 + v6 + m0) | 0; v12 ^= v1; v12 = (v12 >>> 16) | (v12 << 16); v11 = (v11 + v12) | 0; v6 ^= v11; v6 = (v6 >>> 12) | (v6 << 20);
  v1 = (v1 + v6 + m2) | 0; v12 ^= v1; v12 = (v12 >>> 8) | (v12 << 24); v11 = (v11 + v12) | 0; v6 ^= v11; v6 = (v6 >>> 7) | (v6 << 25);
  v2 = (v2 + v7 + m11) | 0; v13 ^= v2; v13 = (v13 >>> 16) | (v13 << 16); v8 = (v8 + v13) | 0; v7 ^= v8; v7 = (v7 >>> 12) | (v7 << 20);
  v2 = (v2 + v7 + m7) | 0; v13 ^= v2; v13 = (v13 >>> 8) | (v13 << 24); v8 = (v8 + v13) | 0; v7 ^= v8; v7 = (v7 >>> 7) | (v7 << 25);
  v3 = (v3 + v4 + m5) | 0; v14 ^= v3; v14 = (v14 >>> 16) | (v14 << 16); v9 = (v9 + v14) | 0; v4 ^= v9; v4 = (v4 >>> 12) | (v4 << 20);
  v3 = (v3 + v4 + m3) | 0; v14 ^= v3; v14 = (v14 >>> 8) | (v14 << 24); v9 = (v9 + v14) | 0; v4 ^= v9; v4 = (v4 >>> 7) | (v4 << 25);
  // round 2: σ2 = 11 8 12 0 5 2 15 13 10 14 3 6 7 1 9 4
  v0 = (v0 + v4 + m11) | 0; v12 ^= v0; v12 = (v12 >>> 16) | (v12 << 16); v8 = (v8 + v12) | 0; v4 ^= v8; v4 = (v4 >>> 12) | (v4 << 20);
  v0 = (v0 + v4 + m8) | 0; v12 ^= v0; v12 = (v12 >>> 8) | (v12 << 24); v8 = (v8 + v12) | 0; v4 ^= v8; v4 = (v4 >>> 7) | (v4 << 25);
  v1 = (v1 + v5 + m12) | 0; v13 ^= v1; v13 = (v13 >>> 16) | (v13 << 16); v9 = (v9 + v13) | 0; v5 ^= v9; v5 = (v5 >>> 12) | (v5 << 20);
  v1 = (v1 + v5 + m0) | 0; v13 ^= v1; v13 = (v13 >>> 8) | (v13 << 24); v9 = (v9 + v13) | 0; v5 ^= v9; v5 = (v5 >>> 7) | (v5 << 25);
  v2 = (v2 + v6 + m5) | 0; v14 ^= v2; v14 = (v14 >>> 16) | (v14 << 16); v10 = (v10 + v14) | 0; v6 ^= v10; v6 = (v6 >>> 12) | (v6 << 20);
  v2 = (v2 + v6 + m2) | 0; v14 ^= v2; v14 = (v14 >>> 8) | (v14 << 24); v10 = (v10 + v14) | 0; v6 ^= v10; v6 = (v6 >>> 7) | (v6 << 25);
  v3 = (v3 + v7 + m15) | 0; v15 ^= v3; v15 = (v15 >>> 16) | (v15 << 16); v11 = (v11 + v15) | 0; v7 ^= v11; v7 = (v7 >>> 12) | (v7 << 20);
  v3 = (v3 + v7 + m13) | 0; v15 ^= v3; v15 = (v15 >>> 8) | (v15 << 24); v11 = (v11 + v15) | 0; v7 ^= v11; v7 = (v7 >>> 7) | (v7 << 25);
  v0 = (v0 + v5 + m10) | 0; v15 ^= v0; v15 = (v15 >>> 16) | (v15 << 16); v10 = (v10 + v15) | 0; v5 ^= v10; v5 = (v5 >>> 12) | (v5 << 20);
  v0 = (v0 + v5 + m14) | 0; v15 ^= v0; v15 = (v15 >>> 8) | (v15 << 24); v10 = (v10 + v15) | 0; v5 ^= v10; v5 = (v5 >>> 7) | (v5 << 25);
  v1 = (v1 + v6 + m3) | 0; v12 ^= v1; v12 = (v12 >>> 16) | (v12 << 16); v11 = (v11 + v12) | 0; v6 ^= v11; v6 = (v6 >>> 12) | (v6 << 20);
  v1 = (v1 + v6 + m6) | 0; v12 ^= v1; v12 = (v12 >>> 8) | (v12 << 24); v11 = (v11 + v12) | 0; v6 ^= v11; v6 = (v6 >>> 7) | (v6 << 25);
  v2 = (v2 + v7 + m7) | 0; v13 ^= v2; v13 = (v13 >>> 16) | (v13 << 16); v8 = (v8 + v13) | 0; v7 ^= v8; v7 = (v7 >>> 12) | (v7 << 20);
  v2 = (v2 + v7 + m1) | 0; v13 ^= v2; v13 = (v13 >>> 8) | (v13 << 24); v8 = (v8 + v13) | 0; v7 ^= v8; v7 = (v7 >>> 7) | (v7 << 25);
  v3 = (v3 + v4 + m9) | 0; v14 ^= v3; v14 = (v14 >>> 16) | (v14 << 16); v9 = (v9 + v14) | 0; v4 ^= v9; v4 = (v4 >>> 12) | (v4 << 20);
  v3 = (v3 + v4 + m4) | 0; v14 ^= v3; v14 = (v14 >>> 8) | (v14 << 24); v9 = (v9 + v14) | 0; v4 ^= v9; v4 = (v4 >>> 7) | (v4 << 25);
  // round 3: σ3 = 7 9 3 1 13 12 11 14 2 6 5 10 4 0 15 8
  v0 = (v0 + v4 + m7) | 0; v12 ^= v0; v12 = (v12 >>> 16) | (v12 << 16); v8 = (v8 + v12) | 0; v4 ^= v8; v4 = (v4 >>> 12) | (v4 << 20);
  v0 = (v0 + v4 + m9) | 0; v12 ^= v0; v12 = (v12 >>> 8) | (v12 << 24); v8 = (v8 + v12) | 0; v4 ^= v8; v4 = (v4 >>> 7) | (v4 << 25);
  v1 = (v1 + v5 + m3) | 0; v13 ^= v1; v13 = (v13 >>> 16) | (v13 << 16); v9 = (v9 + v13) | 0; v5 ^= v9; v5 = (v5 >>> 12) | (v5 << 20);
  v1 = (v1 + v5 + m1) | 0; v13 ^= v1; v13 = (v13 >>> 8) | (v13 << 24); v9 = (v9 + v13) | 0; v5 ^= v9; v5 = (v5 >>> 7) | (v5 << 25);
  v2 = (v2 + v6 + m13) | 0; v14 ^= v2; v14 = (v14 >>> 16) | (v14 << 16); v10 = (v10 + v14) | 0; v6 ^= v10; v6 = (v6 >>> 12) | (v6 << 20);
  v2 = (v2 + v6 + m12) | 0; v14 ^= v2; v14 = (v14 >>> 8) | (v14 << 24); v10 = (v10 + v14) | 0; v6 ^= v10; v6 = (v6 >>> 7) | (v6 << 25);
  v3 = (v3 + v7 + m11) | 0; v15 ^= v3; v15 = (v15 >>> 16) | (v15 << 16); v11 = (v11 + v15) | 0; v7 ^= v11; v7 = (v7 >>> 12) | (v7 << 20);
  v3 = (v3 + v7 + m14) | 0; v15 ^= v3; v15 = (v15 >>> 8) | (v15 << 24); v11 = (v11 + v15) | 0; v7 ^= v11; v7 = (v7 >>> 7) | (v7 << 25);
  v0 = (v0 + v5 + m2) | 0; v15 ^= v0; v15 = (v15 >>> 16) | (v15 << 16); v10 = (v10 + v15) | 0; v5 ^= v10; v5 = (v5 >>> 12) | (v5 << 20);
  v0 = (v0 + v5 + m6) | 0; v15 ^= v0; v15 = (v15 >>> 8) | (v15 << 24); v10 = (v10 + v15) | 0; v5 ^= v10; v5 = (v5 >>> 7) | (v5 << 25);
  v1 = (v1 + v6 + m5) | 0; v12 ^= v1; v12 = (v12 >>> 16) | (v12 << 16); v11 = (v11 + v12) | 0; v6 ^= v11; v6 = (v6 >>> 12) | (v6 << 20);
  v1 = (v1 + v6 + m10) | 0; v12 ^= v1; v12 = (v12 >>> 8) | (v12 << 24); v11 = (v11 + v12) | 0; v6 ^= v11; v6 = (v6 >>> 7) | (v6 << 25);
  v2 = (v2 + v7 + m4) | 0; v13 ^= v2; v13 = (v13 >>> 16) | (v13 << 16); v8 = (v8 + v13) | 0; v7 ^= v8; v7 = (v7 >>> 12) | (v7 << 20);
  v2 = (v2 + v7 + m0) | 0; v13 ^= v2; v13 = (v13 >>> 8) | (v13 << 24); v8 = (v8 + v13) | 0; v7 ^= v8; v7 = (v7 >>> 7) | (v7 << 25);
  v3 = (v3 + v4 + m15) | 0; v14 ^= v3; v14 = (v14 >>> 16) | (v14 << 16); v9 = (v9 + v14) | 0; v4 ^= v9; v4 = (v4 >>> 12) | (v4 << 20);
  v3 = (v3 + v4 + m8) | 0; v14 ^= v3; v14 = (v14 >>> 8) | (v14 << 24); v9 = (v9 + v14) | 0; v4 ^= v9; v4 = (v4 >>> 7) | (v4 << 25);
  // round 4: σ4 = 9 0 5 7 2 4 10 15 14 1 11 12 6 8 3 13
  v0 = (v0 + v4 + m9) | 0; v12 ^= v0; v12 = (v12 >>> 16) | (v12 << 16); v8 = (v8 + v12) | 0; v4 ^= v8; v4 = (v4 >>> 12) | (v4 << 20);
  v0 = (v0 + v4 + m0) | 0; v12 ^= v0; v12 = (v12 >>> 8) | (v12 << 24); v8 = (v8 + v12) | 0; v4 ^= v8; v4 = (v4 >>> 7) | (v4 << 25);
  v1 = (v1 + v5 + m5) | 0; v13 ^= v1; v13 = (v13 >>> 16) | (v13 << 16); v9 = (v9 + v13) | 0; v5 ^= v9; v5 = (v5 >>> 12) | (v5 << 20);
  v1 = (v1 + v5 + m7) | 0; v13 ^= v1; v13 = (v13 >>> 8) | (v13 << 24); v9 = (v9 + v13) | 0; v5 ^= v9; v5 = (v5 >>> 7) | (v5 << 25);
  v2 = (v2 + v6 + m2) | 0; v14 ^= v2; v14 = (v14 >>> 16) | (v14 << 16); v10 = (v10 + v14) | 0; v6 ^= v10; v6 = (v6 >>> 12) | (v6 << 20);
  v2 = (v2 + v6 + m4) | 0; v14 ^= v2; v14 = (v14 >>> 8) | (v14 << 24); v10 = (v10 + v14) | 0; v6 ^= v10; v6 = (v6 >>> 7) | (v6 << 25);
  v3 = (v3 + v7 + m10) | 0; v15 ^= v3; v15 = (v15 >>> 16) | (v15 << 16); v11 = (v11 + v15) | 0; v7 ^= v11; v7 = (v7 >>> 12) | (v7 << 20);
  v3 = (v3 + v7 + m15) | 0; v15 ^= v3; v15 = (v15 >>> 8) | (v15 << 24); v11 = (v11 + v15) | 0; v7 ^= v11; v7 = (v7 >>> 7) | (v7 << 25);
  v0 = (v0 + v5 + m14) | 0; v15 ^= v0; v15 = (v15 >>> 16) | (v15 << 16); v10 = (v10 + v15) | 0; v5 ^= v10; v5 = (v5 >>> 12) | (v5 << 20);
  v0 = (v0 + v5 + m1) | 0; v15 ^= v0; v15 = (v15 >>> 8) | (v15 << 24); v10 = (v10 + v15) | 0; v5 ^= v10; v5 = (v5 >>> 7) | (v5 << 25);
  v1 = (v1 + v6 + m11) | 0; v12 ^= v1; v12 = (v12 >>> 16) | (v12 << 16); v11 = (v11 + v12) | 0; v6 ^= v11; v6 = (v6 >>> 12) | (v6 << 20);
  v1 = (v1 + v6 + m12) | 0; v12 ^= v1; v12 = (v12 >>> 8) | (v12 << 24); v11 = (v11 + v12) | 0; v6 ^= v11; v6 = (v6 >>> 7) | (v6 << 25);
  v2 = (v2 + v7 + m6) | 0; v13 ^= v2; v13 = (v13 >>> 16) | (v13 << 16); v8 = (v8 + v13) | 0; v7 ^= v8; v7 = (v7 >>> 12) | (v7 << 20);
  v2 = (v2 + v7 + m8) | 0; v13 ^= v2; v13 = (v13 >>> 8) | (v13 << 24); v8 = (v8 + v13) | 0; v7 ^= v8; v7 = (v7 >>> 7) | (v7 << 25);
  v3 = (v3 + v4 + m3) | 0; v14 ^= v3; v14 = (v14 >>> 16) | (v14 << 16); v9 = (v9 + v14) | 0; v4 ^= v9; v4 = (v4 >>> 12) | (v4 << 20);
  v3 = (v3 + v4 + m13) | 0; v14 ^= v3; v14 = (v14 >>> 8) | (v14 << 24); v9 = (v9 + v14) | 0; v4 ^= v9; v4 = (v4 >>> 7) | (v4 << 25);
  // round 5: σ5 = 2 12 6 10 0 11 8 3 4 13 7 5 15 14 1 9
  v0 = (v0 + v4 + m2) | 0; v12 ^= v0; v12 = (v12 >>> 16) | (v12 << 16); v8 = (v8 + v12) | 0; v4 ^= v8; v4 = (v4 >>> 12) | (v4 << 20);
  v0 = (v0 + v4 + m12) | 0; v12 ^= v0; v12 = (v12 >>> 8) | (v12 << 24); v8 = (v8 + v12) | 0; v4 ^= v8; v4 = (v4 >>> 7) | (v4 << 25);
  v1 = (v1 + v5 + m6) | 0; v13 ^= v1; v13 = (v13 >>> 16) | (v13 << 16); v9 = (v9 + v13) | 0; v5 ^= v9; v5 = (v5 >>> 12) | (v5 << 20);
  v1 = (v1 + v5 + m10) | 0; v13 ^= v1; v13 = (v13 >>> 8) | (v13 << 24); v9 = (v9 + v13) | 0; v5 ^= v9; v5 = (v5 >>> 7) | (v5 << 25);
  v2 = (v2 + v6 + m0) | 0; v14 ^= v2; v14 = (v14 >>> 16) | (v14 << 16); v10 = (v10 + v14) | 0; v6 ^= v10; v6 = (v6 >>> 12) | (v6 << 20);
  v2 = (v2 + v6 + m11) | 0; v14 ^= v2; v14 = (v14 >>> 8) | (v14 << 24); v10 = (v10 + v14) | 0; v6 ^= v10; v6 = (v6 >>> 7) | (v6 << 25);
  v3 = (v3 + v7 + m8) | 0; v15 ^= v3; v15 = (v15 >>> 16) | (v15 << 16); v11 = (v11 + v15) | 0; v7 ^= v11; v7 = (v7 >>> 12) | (v7 << 20);
  v3 = (v3 + v7 + m3) | 0; v15 ^= v3; v15 = (v15 >>> 8) | (v15 << 24); v11 = (v11 + v15) | 0; v7 ^= v11; v7 = (v7 >>> 7) | (v7 << 25);
  v0 = (v0 + v5 + m4) | 0; v15 ^= v0; v15 = (v15 >>> 16) | (v15 << 16); v10 = (v10 + v15) | 0; v5 ^= v10; v5 = (v5 >>> 12) | (v5 << 20);
  v0 = (v0 + v5 + m13) | 0; v15 ^= v0; v15 = (v15 >>> 8) | (v15 << 24); v10 = (v10 + v15) | 0; v5 ^= v10; v5 = (v5 >>> 7) | (v5 << 25);
  v1 = (v1 + v6 + m7) | 0; v12 ^= v1; v12 = (v12 >>> 16) | (v12 << 16); v11 = (v11 + v12) | 0; v6 ^= v11; v6 = (v6 >>> 12) | (v6 << 20);
  v1 = (v1 + v6 + m5) | 0; v12 ^= v1; v12 = (v12 >>> 8) | (v12 << 24); v11 = (v11 + v12) | 0; v6 ^= v11; v6 = (v6 >>> 7) | (v6 << 25);
  v2 = (v2 + v7 + m15) | 0; v13 ^= v2; v13 = (v13 >>> 16) | (v13 << 16); v8 = (v8 + v13) | 0; v7 ^= v8; v7 = (v7 >>> 12) | (v7 << 20);
  v2 = (v2 + v7 + m14) | 0; v13 ^= v2; v13 = (v13 >>> 8) | (v13 << 24); v8 = (v8 + v13) | 0; v7 ^= v8; v7 = (v7 >>> 7) | (v7 << 25);
  v3 = (v3 + v4 + m1) | 0; v14 ^= v3; v14 = (v14 >>> 16) | (v14 << 16); v9 = (v9 + v14) | 0; v4 ^= v9; v4 = (v4 >>> 12) | (v4 << 20);
  v3 = (v3 + v4 + m9) | 0; v14 ^= v3; v14 = (v14 >>> 8) | (v14 << 24); v9 = (v9 + v14) | 0; v4 ^= v9; v4 = (v4 >>> 7) | (v4 << 25);
  // round 6: σ6 = 12 5 1 15 14 13 4 10 0 7 6 3 9 2 8 11
  v0 = (v0 + v4 + m12) | 0; v12 ^= v0; v12 = (v12 >>> 16) | (v12 << 16); v8 = (v8 + v12) | 0; v4 ^= v8; v4 = (v4 >>> 12) | (v4 << 20);
  v0 = (v0 + v4 + m5) | 0; v12 ^= v0; v12 = (v12 >>> 8) | (v12 << 24); v8 = (v8 + v12) | 0; v4 ^= v8; v4 = (v4 >>> 7) | (v4 << 25);
  v1 = (v1 + v5 + m1) | 0; v13 ^= v1; v13 = (v13 >>> 16) | (v13 << 16); v9 = (v9 + v13) | 0; v5 ^= v9; v5 = (v5 >>> 12) | (v5 << 20);
  v1 = (v1 + v5 + m15) | 0; v13 ^= v1; v13 = (v13 >>> 8) | (v13 << 24); v9 = (v9 + v13) | 0; v5 ^= v9; v5 = (v5 >>> 7) | (v5 << 25);
  v2 = (v2 + v6 + m14) | 0; v14 ^= v2; v14 = (v14 >>> 16) | (v14 << 16); v10 = (v10 + v14) | 0; v6 ^= v10; v6 = (v6 >>> 12) | (v6 << 20);
  v2 = (v2 + v6 + m13) | 0; v14 ^= v2; v14 = (v14 >>> 8) | (v14 << 24); v10 = (v10 + v14) | 0; v6 ^= v10; v6 = (v6 >>> 7) | (v6 << 25);
  v3 = (v3 + v7 + m4) | 0; v15 ^= v3; v15 = (v15 >>> 16) | (v15 << 16); v11 = (v11 + v15) | 0; v7 ^= v11; v7 = (v7 >>> 12) | (v7 << 20);
  v3 = (v3 + v7 + m10) | 0; v15 ^= v3; v15 = (v15 >>> 8) | (v15 << 24); v11 = (v11 + v15) | 0; v7 ^= v11; v7 = (v7 >>> 7) | (v7 << 25);
  v0 = (v0 + v5 + m0) | 0; v15 ^= v0; v15 = (v15 >>> 16) | (v15 << 16); v10 = (v10 + v15) | 0; v5 ^= v10; v5 = (v5 >>> 12) | (v5 << 20);
  v0 = (v0 + v5 + m7) | 0; v15 ^= v0; v15 = (v15 >>> 8) | (v15 << 24); v10 = (v10 + v15) | 0; v5 ^= v10; v5 = (v5 >>> 7) | (v5 << 25);
  v1 = (v1 + v6 + m6) | 0; v12 ^= v1; v12 = (v12 >>> 16) | (v12 << 16); v11 = (v11 + v12) | 0; v6 ^= v11; v6 = (v6 >>> 12) | (v6 << 20);
  v1 = (v1 + v6 + m3) | 0; v12 ^= v1; v12 = (v12 >>> 8) | (v12 << 24); v11 = (v11 + v12) | 0; v6 ^= v11; v6 = (v6 >>> 7) | (v6 << 25);
  v2 = (v2 + v7 + m9) | 0; v13 ^= v2; v13 = (v13 >>> 16) | (v13 << 16); v8 = (v8 + v13) | 0; v7 ^= v8; v7 = (v7 >>> 12) | (v7 << 20);
  v2 = (v2 + v7 + m2) | 0; v13 ^= v2; v13 = (v13 >>> 8) | (v13 << 24); v8 = (v8 + v13) | 0; v7 ^= v8; v7 = (v7 >>> 7) | (v7 << 25);
  v3 = (v3 + v4 + m8) | 0; v14 ^= v3; v14 = (v14 >>> 16) | (v14 << 16); v9 = (v9 + v14) | 0; v4 ^= v9; v4 = (v4 >>> 12) | (v4 << 20);
  v3 = (v3 + v4 + m11) | 0; v14 ^= v3; v14 = (v14 >>> 8) | (v14 << 24); v9 = (v9 + v14) | 0; v4 ^= v9; v4 = (v4 >>> 7) | (v4 << 25);
  // round 7: σ7 = 13 11 7 14 12 1 3 9 5 0 15 4 8 6 2 10
  v0 = (v0 + v4 + m13) | 0; v12 ^= v0; v12 = (v12 >>> 16) | (v12 << 16); v8 = (v8 + v12) | 0; v4 ^= v8; v4 = (v4 >>> 12) | (v4 << 20);
  v0 = (v0 + v4 + m11) | 0; v12 ^= v0; v12 = (v12 >>> 8) | (v12 << 24); v8 = (v8 + v12) | 0; v4 ^= v8; v4 = (v4 >>> 7) | (v4 << 25);
  v1 = (v1 + v5 + m7) | 0; v13 ^= v1; v13 = (v13 >>> 16) | (v13 << 16); v9 = (v9 + v13) | 0; v5 ^= v9; v5 = (v5 >>> 12) | (v5 << 20);
  v1 = (v1 + v5 + m14) | 0; v13 ^= v1; v13 = (v13 >>> 8) | (v13 << 24); v9 = (v9 + v13) | 0; v5 ^= v9; v5 = (v5 >>> 7) | (v5 << 25);
  v2 = (v2 + v6 + m12) | 0; v14 ^= v2; v14 = (v14 >>> 16) | (v14 << 16); v10 = (v10 + v14) | 0; v6 ^= v10; v6 = (v6 >>> 12) | (v6 << 20);
  v2 = (v2 + v6 + m1) | 0; v14 ^= v2; v14 = (v14 >>> 8) | (v14 << 24); v10 = (v10 + v14) | 0; v6 ^= v10; v6 = (v6 >>> 7) | (v6 << 25);
  v3 = (v3 + v7 + m3) | 0; v15 ^= v3; v15 = (v15 >>> 16) | (v15 << 16); v11 = (v11 + v15) | 0; v7 ^= v11; v7 = (v7 >>> 12) | (v7 << 20);
  v3 = (v3 + v7 + m9) | 0; v15 ^= v3; v15 = (v15 >>> 8) | (v15 << 24); v11 = (v11 + v15) | 0; v7 ^= v11; v7 = (v7 >>> 7) | (v7 << 25);
  v0 = (v0 + v5 + m5) | 0; v15 ^= v0; v15 = (v15 >>> 16) | (v15 << 16); v10 = (v10 + v15) | 0; v5 ^= v10; v5 = (v5 >>> 12) | (v5 << 20);
  v0 = (v0 + v5 + m0) | 0; v15 ^= v0; v15 = (v15 >>> 8) | (v15 << 24); v10 = (v10 + v15) | 0; v5 ^= v10; v5 = (v5 >>> 7) | (v5 << 25);
  v1 = (v1 + v6 + m15) | 0; v12 ^= v1; v12 = (v12 >>> 16) | (v12 << 16); v11 = (v11 + v12) | 0; v6 ^= v11; v6 = (v6 >>> 12) | (v6 << 20);
  v1 = (v1 + v6 + m4) | 0; v12 ^= v1; v12 = (v12 >>> 8) | (v12 << 24); v11 = (v11 + v12) | 0; v6 ^= v11; v6 = (v6 >>> 7) | (v6 << 25);
  v2 = (v2 + v7 + m8) | 0; v13 ^= v2; v13 = (v13 >>> 16) | (v13 << 16); v8 = (v8 + v13) | 0; v7 ^= v8; v7 = (v7 >>> 12) | (v7 << 20);
  v2 = (v2 + v7 + m6) | 0; v13 ^= v2; v13 = (v13 >>> 8) | (v13 << 24); v8 = (v8 + v13) | 0; v7 ^= v8; v7 = (v7 >>> 7) | (v7 << 25);
  v3 = (v3 + v4 + m2) | 0; v14 ^= v3; v14 = (v14 >>> 16) | (v14 << 16); v9 = (v9 + v14) | 0; v4 ^= v9; v4 = (v4 >>> 12) | (v4 << 20);
  v3 = (v3 + v4 + m10) | 0; v14 ^= v3; v14 = (v14 >>> 8) | (v14 << 24); v9 = (v9 + v14) | 0; v4 ^= v9; v4 = (v4 >>> 7) | (v4 << 25);
  // round 8: σ8 = 6 15 14 9 11 3 0 8 12 2 13 7 1 4 10 5
  v0 = (v0 + v4 + m6) | 0; v12 ^= v0; v12 = (v12 >>> 16) | (v12 << 16); v8 = (v8 + v12) | 0; v4 ^= v8; v4 = (v4 >>> 12) | (v4 << 20);
  v0 = (v0 + v4 + m15) | 0; v12 ^= v0; v12 = (v12 >>> 8) | (v12 << 24); v8 = (v8 + v12) | 0; v4 ^= v8; v4 = (v4 >>> 7) | (v4 << 25);
  v1 = (v1 + v5 + m14) | 0; v13 ^= v1; v13 = (v13 >>> 16) | (v13 << 16); v9 = (v9 + v13) | 0; v5 ^= v9; v5 = (v5 >>> 12) | (v5 << 20);
  v1 = (v1 + v5 + m9) | 0; v13 ^= v1; v13 = (v13 >>> 8) | (v13 << 24); v9 = (v9 + v13) | 0; v5 ^= v9; v5 = (v5 >>> 7) | (v5 << 25);
  v2 = (v2 + v6 + m11) | 0; v14 ^= v2; v14 = (v14 >>> 16) | (v14 << 16); v10 = (v10 + v14) | 0; v6 ^= v10; v6 = (v6 >>> 12) | (v6 << 20);
  v2 = (v2 + v6 + m3) | 0; v14 ^= v2; v14 = (v14 >>> 8) | (v14 << 24); v10 = (v10 + v14) | 0; v6 ^= v10; v6 = (v6 >>> 7) | (v6 << 25);
  v3 = (v3 + v7 + m0) | 0; v15 ^= v3; v15 = (v15 >>> 16) | (v15 << 16); v11 = (v11 + v15) | 0; v7 ^= v11; v7 = (v7 >>> 12) | (v7 << 20);
  v3 = (v3 + v7 + m8) | 0; v15 ^= v3; v15 = (v15 >>> 8) | (v15 << 24); v11 = (v11 + v15) | 0; v7 ^= v11; v7 = (v7 >>> 7) | (v7 << 25);
  v0 = (v0 + v5 + m12) | 0; v15 ^= v0; v15 = (v15 >>> 16) | (v15 << 16); v10 = (v10 + v15) | 0; v5 ^= v10; v5 = (v5 >>> 12) | (v5 << 20);
  v0 = (v0 + v5 + m2) | 0; v15 ^= v0; v15 = (v15 >>> 8) | (v15 << 24); v10 = (v10 + v15) | 0; v5 ^= v10; v5 = (v5 >>> 7) | (v5 << 25);
  v1 = (v1 + v6 + m13) | 0; v12 ^= v1; v12 = (v12 >>> 16) | (v12 << 16); v11 = (v11 + v12) | 0; v6 ^= v11; v6 = (v6 >>> 12) | (v6 << 20);
  v1 = (v1 + v6 + m7) | 0; v12 ^= v1; v12 = (v12 >>> 8) | (v12 << 24); v11 = (v11 + v12) | 0; v6 ^= v11; v6 = (v6 >>> 7) | (v6 << 25);
  v2 = (v2 + v7 + m1) | 0; v13 ^= v2; v13 = (v13 >>> 16) | (v13 << 16); v8 = (v8 + v13) | 0; v7 ^= v8; v7 = (v7 >>> 12) | (v7 << 20);
  v2 = (v2 + v7 + m4) | 0; v13 ^= v2; v13 = (v13 >>> 8) | (v13 << 24); v8 = (v8 + v13) | 0; v7 ^= v8; v7 = (v7 >>> 7) | (v7 << 25);
  v3 = (v3 + v4 + m10) | 0; v14 ^= v3; v14 = (v14 >>> 16) | (v14 << 16); v9 = (v9 + v14) | 0; v4 ^= v9; v4 = (v4 >>> 12) | (v4 << 20);
  v3 = (v3 + v4 + m5) | 0; v14 ^= v3; v14 = (v14 >>> 8) | (v14 << 24); v9 = (v9 + v14) | 0; v4 ^= v9; v4 = (v4 >>> 7) | (v4 << 25);
  // round 9: σ9 = 10 2 8 4 7 6 1 5 15 11 9 14 3 12 13 0
  v0 = (v0 + v4 + m10) | 0; v12 ^= v0; v12 = (v12 >>> 16) | (v12 << 16); v8 = (v8 + v12) | 0; v4 ^= v8; v4 = (v4 >>> 12) | (v4 << 20);
  v0 = (v0 + v4 + m2) | 0; v12 ^= v0; v12 = (v12 >>> 8) | (v12 << 24); v8 = (v8 + v12) | 0; v4 ^= v8; v4 = (v4 >>> 7) | (v4 << 25);
  v1 = (v1 + v5 + m8) | 0; v13 ^= v1; v13 = (v13 >>> 16) | (v13 << 16); v9 = (v9 + v13) | 0; v5 ^= v9; v5 = (v5 >>> 12) | (v5 << 20);
  v1 = (v1 + v5 + m4) | 0; v13 ^= v1; v13 = (v13 >>> 8) | (v13 << 24); v9 = (v9 + v13) | 0; v5 ^= v9; v5 = (v5 >>> 7) | (v5 << 25);
  v2 = (v2 + v6 + m7) | 0; v14 ^= v2; v14 = (v14 >>> 16) | (v14 << 16); v10 = (v10 + v14) | 0; v6 ^= v10; v6 = (v6 >>> 12) | (v6 << 20);
  v2 = (v2 + v6 + m6) | 0; v14 ^= v2; v14 = (v14 >>> 8) | (v14 << 24); v10 = (v10 + v14) | 0; v6 ^= v10; v6 = (v6 >>> 7) | (v6 << 25);
  v3 = (v3 + v7 + m1) | 0; v15 ^= v3; v15 = (v15 >>> 16) | (v15 << 16); v11 = (v11 + v15) | 0; v7 ^= v11; v7 = (v7 >>> 12) | (v7 << 20);
  v3 = (v3 + v7 + m5) | 0; v15 ^= v3; v15 = (v15 >>> 8) | (v15 << 24); v11 = (v11 + v15) | 0; v7 ^= v11; v7 = (v7 >>> 7) | (v7 << 25);
  v0 = (v0 + v5 + m15) | 0; v15 ^= v0; v15 = (v15 >>> 16) | (v15 << 16); v10 = (v10 + v15) | 0; v5 ^= v10; v5 = (v5 >>> 12) | (v5 << 20);
  v0 = (v0 + v5 + m11) | 0; v15 ^= v0; v15 = (v15 >>> 8) | (v15 << 24); v10 = (v10 + v15) | 0; v5 ^= v10; v5 = (v5 >>> 7) | (v5 << 25);
  v1 = (v1 + v6 + m9) | 0; v12 ^= v1; v12 = (v12 >>> 16) | (v12 << 16); v11 = (v11 + v12) | 0; v6 ^= v11; v6 = (v6 >>> 12) | (v6 << 20);
  v1 = (v1 + v6 + m14) | 0; v12 ^= v1; v12 = (v12 >>> 8) | (v12 << 24); v11 = (v11 + v12) | 0; v6 ^= v11; v6 = (v6 >>> 7) | (v6 << 25);
  v2 = (v2 + v7 + m3) | 0; v13 ^= v2; v13 = (v13 >>> 16) | (v13 << 16); v8 = (v8 + v13) | 0; v7 ^= v8; v7 = (v7 >>> 12) | (v7 << 20);
  v2 = (v2 + v7 + m12) | 0; v13 ^= v2; v13 = (v13 >>> 8) | (v13 << 24); v8 = (v8 + v13) | 0; v7 ^= v8; v7 = (v7 >>> 7) | (v7 << 25);
  v3 = (v3 + v4 + m13) | 0; v14 ^= v3; v14 = (v14 >>> 16) | (v14 << 16); v9 = (v9 + v14) | 0; v4 ^= v9; v4 = (v4 >>> 12) | (v4 << 20);
  v3 = (v3 + v4 + m0) | 0; v14 ^= v3; v14 = (v14 >>> 8) | (v14 << 24); v9 = (v9 + v14) | 0; v4 ^= v9; v4 = (v4 >>> 7) | (v4 << 25);
  h[0] ^= v0 ^ v8; h[1] ^= v1 ^ v9; h[2] ^= v2 ^ v10; h[3] ^= v3 ^ v11;
  h[4] ^= v4 ^ v12; h[5] ^= v5 ^ v13; h[6] ^= v6 ^ v14; h[7] ^= v7 ^ v15;
  if (s === b2sBlock) b2sBlock.fill(0);
}

// ───────────────────────── XChaCha20-Poly1305 of a cookie (spec §1 XAEAD) ─────────────────────────
// subkey = HChaCha20(key, nonce[0, 16)); ChaCha20 (RFC 8439) with the subkey and nonce
// 0^4 || nonce[16, 24): block 0 gives the Poly1305 key, block 1 encrypts the 16-byte cookie; the
// tag covers ad (16 bytes: mac1) || ciphertext (16) || le64(16) || le64(16) — three whole blocks.

const chachaIn = new Int32Array(16);
const chachaOut = new Int32Array(16);
const polyKey = new Uint8Array(32);
const polyMsg = new Uint8Array(48);

/** out[oo, oo + 32) = XChaCha20-Poly1305(key, nonce[no, no + 24), pt[0, 16), ad[ao, ao + 16)): ciphertext || tag. */
export function xseal16(
  key: Uint8Array, nonce: Uint8Array, no: number, pt: Uint8Array, ad: Uint8Array, ao: number, out: Uint8Array, oo: number,
): void {
  const x = chachaIn;
  const y = chachaOut;
  x[0] = 0x61707865; x[1] = 0x3320646e; x[2] = 0x79622d32; x[3] = 0x6b206574; // "expand 32-byte k"
  for (let i = 0; i < 8; i++) x[4 + i] = le32(key, 4 * i);
  for (let i = 0; i < 4; i++) x[12 + i] = le32(nonce, no + 4 * i);
  chachaCore(x, y, false);
  x[4] = y[0]!; x[5] = y[1]!; x[6] = y[2]!; x[7] = y[3]!; x[8] = y[12]!; x[9] = y[13]!; x[10] = y[14]!; x[11] = y[15]!;
  x[12] = 0; x[13] = 0; x[14] = le32(nonce, no + 16); x[15] = le32(nonce, no + 20);
  chachaCore(x, y, true);
  for (let i = 0; i < 8; i++) putLe32(polyKey, 4 * i, y[i]!);
  x[12] = 1;
  chachaCore(x, y, true);
  for (let i = 0; i < 4; i++) {
    const w = le32(pt, 4 * i) ^ y[i]!;
    putLe32(out, oo + 4 * i, w);
    putLe32(polyMsg, 16 + 4 * i, w);
  }
  for (let i = 0; i < 16; i++) polyMsg[i] = ad[ao + i]!;
  polyMsg.fill(0, 32);
  polyMsg[32] = 16; // le64(ad length)
  polyMsg[40] = 16; // le64(ciphertext length)
  poly1305(polyKey, polyMsg, 3, out, oo + 16);
  x.fill(0); y.fill(0); polyKey.fill(0);
}

/** ChaCha20's 20 rounds over x; feedForward: the block function (x + rounds), else HChaCha20 (words 0–3, 12–15 into y[0..3], y[12..15]). */
function chachaCore(x: Int32Array, y: Int32Array, feedForward: boolean): void {
  let x0 = x[0]!, x1 = x[1]!, x2 = x[2]!, x3 = x[3]!, x4 = x[4]!, x5 = x[5]!, x6 = x[6]!, x7 = x[7]!;
  let x8 = x[8]!, x9 = x[9]!, x10 = x[10]!, x11 = x[11]!, x12 = x[12]!, x13 = x[13]!, x14 = x[14]!, x15 = x[15]!;
  for (let i = 0; i < 10; i++) {
    x0 = (x0 + x4) | 0; x12 ^= x0; x12 = (x12 << 16) | (x12 >>> 16); x8 = (x8 + x12) | 0; x4 ^= x8; x4 = (x4 << 12) | (x4 >>> 20);
    x0 = (x0 + x4) | 0; x12 ^= x0; x12 = (x12 << 8) | (x12 >>> 24); x8 = (x8 + x12) | 0; x4 ^= x8; x4 = (x4 << 7) | (x4 >>> 25);
    x1 = (x1 + x5) | 0; x13 ^= x1; x13 = (x13 << 16) | (x13 >>> 16); x9 = (x9 + x13) | 0; x5 ^= x9; x5 = (x5 << 12) | (x5 >>> 20);
    x1 = (x1 + x5) | 0; x13 ^= x1; x13 = (x13 << 8) | (x13 >>> 24); x9 = (x9 + x13) | 0; x5 ^= x9; x5 = (x5 << 7) | (x5 >>> 25);
    x2 = (x2 + x6) | 0; x14 ^= x2; x14 = (x14 << 16) | (x14 >>> 16); x10 = (x10 + x14) | 0; x6 ^= x10; x6 = (x6 << 12) | (x6 >>> 20);
    x2 = (x2 + x6) | 0; x14 ^= x2; x14 = (x14 << 8) | (x14 >>> 24); x10 = (x10 + x14) | 0; x6 ^= x10; x6 = (x6 << 7) | (x6 >>> 25);
    x3 = (x3 + x7) | 0; x15 ^= x3; x15 = (x15 << 16) | (x15 >>> 16); x11 = (x11 + x15) | 0; x7 ^= x11; x7 = (x7 << 12) | (x7 >>> 20);
    x3 = (x3 + x7) | 0; x15 ^= x3; x15 = (x15 << 8) | (x15 >>> 24); x11 = (x11 + x15) | 0; x7 ^= x11; x7 = (x7 << 7) | (x7 >>> 25);
    x0 = (x0 + x5) | 0; x15 ^= x0; x15 = (x15 << 16) | (x15 >>> 16); x10 = (x10 + x15) | 0; x5 ^= x10; x5 = (x5 << 12) | (x5 >>> 20);
    x0 = (x0 + x5) | 0; x15 ^= x0; x15 = (x15 << 8) | (x15 >>> 24); x10 = (x10 + x15) | 0; x5 ^= x10; x5 = (x5 << 7) | (x5 >>> 25);
    x1 = (x1 + x6) | 0; x12 ^= x1; x12 = (x12 << 16) | (x12 >>> 16); x11 = (x11 + x12) | 0; x6 ^= x11; x6 = (x6 << 12) | (x6 >>> 20);
    x1 = (x1 + x6) | 0; x12 ^= x1; x12 = (x12 << 8) | (x12 >>> 24); x11 = (x11 + x12) | 0; x6 ^= x11; x6 = (x6 << 7) | (x6 >>> 25);
    x2 = (x2 + x7) | 0; x13 ^= x2; x13 = (x13 << 16) | (x13 >>> 16); x8 = (x8 + x13) | 0; x7 ^= x8; x7 = (x7 << 12) | (x7 >>> 20);
    x2 = (x2 + x7) | 0; x13 ^= x2; x13 = (x13 << 8) | (x13 >>> 24); x8 = (x8 + x13) | 0; x7 ^= x8; x7 = (x7 << 7) | (x7 >>> 25);
    x3 = (x3 + x4) | 0; x14 ^= x3; x14 = (x14 << 16) | (x14 >>> 16); x9 = (x9 + x14) | 0; x4 ^= x9; x4 = (x4 << 12) | (x4 >>> 20);
    x3 = (x3 + x4) | 0; x14 ^= x3; x14 = (x14 << 8) | (x14 >>> 24); x9 = (x9 + x14) | 0; x4 ^= x9; x4 = (x4 << 7) | (x4 >>> 25);
  }
  if (!feedForward) {
    y[0] = x0; y[1] = x1; y[2] = x2; y[3] = x3; y[12] = x12; y[13] = x13; y[14] = x14; y[15] = x15;
    return;
  }
  y[0] = (x0 + x[0]!) | 0; y[1] = (x1 + x[1]!) | 0; y[2] = (x2 + x[2]!) | 0; y[3] = (x3 + x[3]!) | 0;
  y[4] = (x4 + x[4]!) | 0; y[5] = (x5 + x[5]!) | 0; y[6] = (x6 + x[6]!) | 0; y[7] = (x7 + x[7]!) | 0;
  y[8] = (x8 + x[8]!) | 0; y[9] = (x9 + x[9]!) | 0; y[10] = (x10 + x[10]!) | 0; y[11] = (x11 + x[11]!) | 0;
  y[12] = (x12 + x[12]!) | 0; y[13] = (x13 + x[13]!) | 0; y[14] = (x14 + x[14]!) | 0; y[15] = (x15 + x[15]!) | 0;
}

// Poly1305 (RFC 8439) in ten 13-bit limbs (the tweetnacl layout): every product and column sum
// stays below 2^34, exact in doubles.
const polyR = new Float64Array(10);
const polyH = new Float64Array(10);
const polyD = new Float64Array(10);
const polyN = new Float64Array(10);
const polyG = new Int32Array(10);
const polyF = new Int32Array(10);
const polyClamped = new Uint8Array(16);

/** 16 little-endian bytes b[o, o + 16) as ten 13-bit limbs, plus `hibit` (2^11 in limb 9 = 2^128). */
function limbs13(b: Uint8Array, o: number, out: Float64Array, hibit: number): void {
  const t0 = b[o]! | (b[o + 1]! << 8), t1 = b[o + 2]! | (b[o + 3]! << 8), t2 = b[o + 4]! | (b[o + 5]! << 8);
  const t3 = b[o + 6]! | (b[o + 7]! << 8), t4 = b[o + 8]! | (b[o + 9]! << 8), t5 = b[o + 10]! | (b[o + 11]! << 8);
  const t6 = b[o + 12]! | (b[o + 13]! << 8), t7 = b[o + 14]! | (b[o + 15]! << 8);
  out[0] = t0 & 0x1fff; out[1] = ((t0 >>> 13) | (t1 << 3)) & 0x1fff; out[2] = ((t1 >>> 10) | (t2 << 6)) & 0x1fff;
  out[3] = ((t2 >>> 7) | (t3 << 9)) & 0x1fff; out[4] = ((t3 >>> 4) | (t4 << 12)) & 0x1fff; out[5] = (t4 >>> 1) & 0x1fff;
  out[6] = ((t4 >>> 14) | (t5 << 2)) & 0x1fff; out[7] = ((t5 >>> 11) | (t6 << 5)) & 0x1fff; out[8] = ((t6 >>> 8) | (t7 << 8)) & 0x1fff;
  out[9] = (t7 >>> 5) | hibit;
}

/** Poly1305 tag of msg[0, 16 * blocks) (whole blocks) under the 32-byte one-time key, into out[oo, oo + 16). */
function poly1305(key: Uint8Array, msg: Uint8Array, blocks: number, out: Uint8Array, oo: number): void {
  const r = polyR, h = polyH, d = polyD, n = polyN;
  for (let i = 0; i < 16; i++) polyClamped[i] = key[i]!;
  polyClamped[3]! &= 15; polyClamped[7]! &= 15; polyClamped[11]! &= 15; polyClamped[15]! &= 15;
  polyClamped[4]! &= 252; polyClamped[8]! &= 252; polyClamped[12]! &= 252;
  limbs13(polyClamped, 0, r, 0);
  h.fill(0);
  for (let blk = 0; blk < blocks; blk++) {
    limbs13(msg, 16 * blk, n, 1 << 11);
    for (let i = 0; i < 10; i++) h[i]! += n[i]!;
    // h × r mod 2^130 − 5: a limb product past 2^130 wraps around multiplied by 5.
    for (let i = 0; i < 10; i++) {
      let s = 0;
      for (let j = 0; j <= i; j++) s += h[j]! * r[i - j]!;
      for (let j = i + 1; j < 10; j++) s += h[j]! * 5 * r[i + 10 - j]!;
      d[i] = s;
    }
    let c = 0;
    for (let i = 0; i < 10; i++) {
      const s = d[i]! + c;
      c = Math.floor(s / 8192);
      h[i] = s - c * 8192;
    }
    h[0]! += c * 5;
    c = Math.floor(h[0]! / 8192);
    h[0]! -= c * 8192;
    h[1]! += c;
  }
  // Fully carry, then h mod p: g = h + 5 − 2^130 is taken when it does not borrow (h ≥ p).
  const f = polyF, g = polyG;
  for (let i = 0; i < 10; i++) f[i] = h[i]!;
  for (let pass = 0; pass < 2; pass++) {
    let c = 0;
    for (let i = 0; i < 10; i++) { f[i]! += c; c = f[i]! >>> 13; f[i]! &= 0x1fff; }
    f[0]! += c * 5;
  }
  let c = f[0]! >>> 13;
  f[0]! &= 0x1fff;
  f[1]! += c;
  c = 5;
  for (let i = 0; i < 10; i++) { g[i] = f[i]! + c; c = g[i]! >>> 13; g[i]! &= 0x1fff; }
  const useG = -c;
  for (let i = 0; i < 10; i++) f[i] = (g[i]! & useG) | (f[i]! & ~useG);
  // To 128 bits (eight 16-bit words), plus s = key[16, 32), mod 2^128.
  let acc = 0;
  for (let i = 0; i < 8; i++) {
    const w = polyWord(f, i);
    acc = w + (key[16 + 2 * i]! | (key[17 + 2 * i]! << 8)) + (acc >>> 16);
    out[oo + 2 * i] = acc & 0xff;
    out[oo + 2 * i + 1] = (acc >>> 8) & 0xff;
  }
  r.fill(0); h.fill(0); d.fill(0); n.fill(0); f.fill(0); g.fill(0); polyClamped.fill(0);
}

/** 16-bit word i of the 130-bit number in 13-bit limbs f. */
function polyWord(f: Int32Array, i: number): number {
  switch (i) {
    case 0: return (f[0]! | (f[1]! << 13)) & 0xffff;
    case 1: return ((f[1]! >>> 3) | (f[2]! << 10)) & 0xffff;
    case 2: return ((f[2]! >>> 6) | (f[3]! << 7)) & 0xffff;
    case 3: return ((f[3]! >>> 9) | (f[4]! << 4)) & 0xffff;
    case 4: return ((f[4]! >>> 12) | (f[5]! << 1) | (f[6]! << 14)) & 0xffff;
    case 5: return ((f[6]! >>> 2) | (f[7]! << 11)) & 0xffff;
    case 6: return ((f[7]! >>> 5) | (f[8]! << 8)) & 0xffff;
    default: return ((f[8]! >>> 8) | (f[9]! << 5)) & 0xffff;
  }
}

function le32(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24);
}

function putLe32(b: Uint8Array, o: number, w: number): void {
  b[o] = w & 0xff; b[o + 1] = (w >>> 8) & 0xff; b[o + 2] = (w >>> 16) & 0xff; b[o + 3] = w >>> 24;
}

/** a[ao, ao + 16) = b[bo, bo + 16), in time independent of where they differ. */
function equal16(a: Uint8Array, ao: number, b: Uint8Array, bo: number): boolean {
  let diff = 0;
  for (let i = 0; i < MAC_LEN; i++) diff |= a[ao + i]! ^ b[bo + i]!;
  return diff === 0;
}
