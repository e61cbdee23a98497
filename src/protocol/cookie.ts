// mac1, mac2 and cookie replies (spec §4), both sides, sans-I/O.
//   CookieChecker  — one per device, keyed by our own public key: verifies mac1/mac2 of
//                    received handshake messages and makes cookie replies under load.
//   CookieGenerator — one per peer, keyed by the peer's public key: adds mac1/mac2 to the
//                    handshake messages we send and consumes the peer's cookie replies.
import { COOKIE_NONCE_LEN, COOKIE_REFRESH_TIME, LABEL_COOKIE, LABEL_MAC1, MAC_LEN, MESSAGE_COOKIE_REPLY } from '../constants.js';
import { type Crypto, constantTimeEqual } from '../crypto/crypto.js';
import { CookieReply, writeType } from './messages.js';

const enc = new TextEncoder();
const MAC1_LABEL = enc.encode(LABEL_MAC1);
const COOKIE_LABEL = enc.encode(LABEL_COOKIE);
const ZERO_MAC = new Uint8Array(MAC_LEN);

/** Offsets of mac1 in the two handshake messages; mac2 follows mac1 directly. */
export function mac1Offset(msgLength: number): number {
  return msgLength - 2 * MAC_LEN;
}

export class CookieChecker {
  private mac1Key: Uint8Array | null = null;
  private cookieKey: Uint8Array | null = null;
  private secret: Uint8Array;
  private secretSetAt = -Infinity;

  constructor(private readonly c: Crypto) {
    this.secret = new Uint8Array(32);
  }

  /** (Re)key with our static public key; null disables checking (no private key). */
  init(publicKey: Uint8Array | null): void {
    this.mac1Key = publicKey ? this.c.hash(MAC1_LABEL, publicKey) : null;
    this.cookieKey = publicKey ? this.c.hash(COOKIE_LABEL, publicKey) : null;
  }

  /** mac1 over msg[0, off_mac1) with HASH(LABEL_MAC1 || our public key). */
  checkMac1(msg: Uint8Array): boolean {
    if (!this.mac1Key) return false;
    const off = mac1Offset(msg.length);
    const mac = this.c.mac(this.mac1Key, msg.subarray(0, off));
    return constantTimeEqual(mac, msg.subarray(off, off + MAC_LEN));
  }

  /** mac2 over msg[0, off_mac2) keyed by the cookie of `source` (address bytes || port BE). */
  checkMac2(msg: Uint8Array, source: Uint8Array, nowMs: number): boolean {
    if (nowMs - this.secretSetAt > COOKIE_REFRESH_TIME) return false; // secret expired: nobody holds a valid cookie
    const cookie = this.c.mac(this.secret, source);
    const off = mac1Offset(msg.length) + MAC_LEN;
    const mac = this.c.mac(cookie, msg.subarray(0, off));
    return constantTimeEqual(mac, msg.subarray(off, off + MAC_LEN));
  }

  /** A 64-byte cookie reply to a handshake message from `source`, for its sender index. */
  createReply(msg: Uint8Array, senderIndex: number, source: Uint8Array, nowMs: number): Uint8Array | null {
    if (!this.cookieKey) return null;
    if (nowMs - this.secretSetAt > COOKIE_REFRESH_TIME) {
      this.secret.fill(0);
      this.secret = this.c.randomBytes(32);
      this.secretSetAt = nowMs;
    }
    const cookie = this.c.mac(this.secret, source);
    const off = mac1Offset(msg.length);
    const mac1 = msg.subarray(off, off + MAC_LEN);
    const out = new Uint8Array(CookieReply.SIZE);
    writeType(out, MESSAGE_COOKIE_REPLY);
    out[4] = senderIndex & 0xff; out[5] = (senderIndex >>> 8) & 0xff;
    out[6] = (senderIndex >>> 16) & 0xff; out[7] = (senderIndex >>> 24) & 0xff;
    const nonce = this.c.randomBytes(COOKIE_NONCE_LEN);
    out.set(nonce, CookieReply.NONCE);
    out.set(this.c.xaeadSeal(this.cookieKey, nonce, cookie, mac1), CookieReply.COOKIE);
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
