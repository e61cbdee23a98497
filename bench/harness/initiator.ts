// One simulated WireGuard initiator of the handshake load generator, sans-I/O: its own static
// key pair, the Noise_IKpsk2 handshake state against one target (src/protocol/noise.ts), a
// cookie generator for mac1/mac2 and cookie replies (src/protocol/cookie.ts), and, once the
// response is consumed, the session's transport keys to seal a keepalive or an inner packet
// and open the target's answer. The generator (handshake-gen.ts) owns sockets and clocks and
// passes times in: `nowMs` is monotonic (cookie freshness), `wallMs` is wall-clock (TAI64N).

import { AEAD_TAG_LEN, KEY_LEN, MESSAGE_COOKIE_REPLY_SIZE, MESSAGE_INITIATION_SIZE, MESSAGE_RESPONSE_SIZE, MESSAGE_TRANSPORT } from '../../src/constants.js';
import { type Crypto } from '../../src/crypto/crypto.js';
import { CookieGenerator } from '../../src/protocol/cookie.js';
import { CookieReply, Response, Transport, paddedLength, readU32, writeTransportHeader } from '../../src/protocol/messages.js';
import {
  type DerivedKeys, type NoiseInitialState, type StaticIdentity, Handshake, consumeResponse, createInitiation, deriveKeys,
  precomputeStaticStatic,
} from '../../src/protocol/noise.js';

const EMPTY = new Uint8Array(0);

export interface TargetIdentity {
  /** The target interface's static public key. */
  publicKey: Uint8Array;
}

/** What became of a received datagram. */
export const enum Received {
  /** Response consumed: the session exists (the caller should now send data). */
  Connected,
  /** Cookie reply decrypted and stored: the next initiation carries mac2. */
  Cookie,
  /** Transport message opened with the session's receive key (plaintext in `lastPlaintext`). */
  Data,
  /** A response or cookie reply for an index we no longer wait on (late, after a retransmit). */
  Stale,
  /** Anything that failed to authenticate or does not fit our state. */
  Invalid,
}

export class Initiator {
  readonly identity: StaticIdentity;
  private readonly hs: Handshake;
  private readonly cookies: CookieGenerator;
  private keys: DerivedKeys | null = null;
  /** A response taken without consuming it (receive(…, deferred = true)); verifyDeferred() consumes it. */
  private deferred: Uint8Array | null = null;
  private sendCounter = 0;
  /** Every local index this initiator has used (a late response may name an earlier one). */
  private readonly usedIndices = new Set<number>();
  /** The last plaintext opened by receive() → Data (valid until the next receive). */
  lastPlaintext: Uint8Array = EMPTY;

  constructor(
    private readonly c: Crypto,
    private readonly init: NoiseInitialState,
    privateKey: Uint8Array,
    target: TargetIdentity,
  ) {
    if (privateKey.length !== KEY_LEN) throw new RangeError('initiator private key must be 32 bytes');
    this.identity = { privateKey, publicKey: c.publicKey(privateKey) };
    this.hs = new Handshake(target.publicKey);
    precomputeStaticStatic(c, this.identity, this.hs);
    if (this.hs.precomputedStaticStatic === null) throw new Error('target public key is unusable (low-order point)');
    this.cookies = new CookieGenerator(c, target.publicKey);
  }

  get connected(): boolean {
    return this.keys !== null || this.deferred !== null;
  }

  /** Our index for the pending handshake, or for the session once connected. */
  get localIndex(): number {
    return this.keys?.localIndex ?? this.hs.localIndex;
  }

  /**
   * A fresh 148-byte initiation (new ephemeral key, TAI64N of `wallMs`, new random sender
   * index) with mac1, and mac2 if a cookie younger than 120 s is stored.
   */
  createInitiation(nowMs: number, wallMs: number): Uint8Array {
    let index: number;
    do index = readU32(this.c.randomBytes(4), 0);
    while (index === 0 || this.usedIndices.has(index));
    this.usedIndices.add(index);
    const out = new Uint8Array(MESSAGE_INITIATION_SIZE);
    if (!createInitiation(this.c, this.init, this.identity, this.hs, index, wallMs, out)) {
      throw new Error('createInitiation failed (target key unusable)');
    }
    this.cookies.addMacs(out, nowMs);
    return out;
  }

  /**
   * Handles a datagram from the target (already known to come from our socket's peer).
   * `deferResponse`: a response to the pending initiation is kept, not consumed (its two X25519
   * are left for verifyDeferred(), after the measurement), and counts as Connected.
   */
  receive(msg: Uint8Array, nowMs: number, deferResponse = false): Received {
    if (msg.length < 4 || msg[1] !== 0 || msg[2] !== 0 || msg[3] !== 0) return Received.Invalid;
    switch (msg[0]) {
      case 2: {
        if (msg.length !== MESSAGE_RESPONSE_SIZE) return Received.Invalid;
        const receiver = readU32(msg, Response.RECEIVER);
        if (this.connected || receiver !== this.hs.localIndex) {
          return this.usedIndices.has(receiver) ? Received.Stale : Received.Invalid;
        }
        if (deferResponse) {
          this.deferred = msg.slice();
          return Received.Connected;
        }
        if (!consumeResponse(this.c, this.identity, this.hs, msg)) return Received.Invalid;
        this.keys = deriveKeys(this.c, this.hs);
        return this.keys === null ? Received.Invalid : Received.Connected;
      }
      case 3: {
        if (msg.length !== MESSAGE_COOKIE_REPLY_SIZE) return Received.Invalid;
        const receiver = readU32(msg, CookieReply.RECEIVER);
        if (this.connected || receiver !== this.hs.localIndex) {
          return this.usedIndices.has(receiver) ? Received.Stale : Received.Invalid;
        }
        return this.cookies.consumeReply(msg, nowMs) ? Received.Cookie : Received.Invalid;
      }
      case MESSAGE_TRANSPORT: {
        const k = this.keys;
        if (k === null || msg.length < Transport.CONTENT + AEAD_TAG_LEN) return Received.Invalid;
        if (readU32(msg, Transport.RECEIVER) !== k.localIndex) return Received.Invalid;
        const lo = readU32(msg, Transport.COUNTER);
        const hi = readU32(msg, Transport.COUNTER + 4);
        if (hi > 0x1f_ffff) return Received.Invalid;
        const plain = this.c.aeadOpen(k.receiveKey, hi * 0x1_0000_0000 + lo, msg.subarray(Transport.CONTENT), EMPTY);
        if (plain === null) return Received.Invalid;
        this.lastPlaintext = plain;
        return Received.Data;
      }
      default:
        return Received.Invalid;
    }
  }

  /** Consumes a response kept by receive(…, true): whether it authenticates and gives the session keys. */
  verifyDeferred(): boolean {
    const msg = this.deferred;
    if (msg === null) return this.keys !== null;
    this.deferred = null;
    if (!consumeResponse(this.c, this.identity, this.hs, msg)) return false;
    this.keys = deriveKeys(this.c, this.hs);
    return this.keys !== null;
  }

  /**
   * A transport message carrying `inner` (empty = keepalive), zero-padded to a multiple of
   * 16 as the spec requires, sealed with the session's send key and the next counter.
   */
  sealData(inner: Uint8Array): Uint8Array {
    const k = this.keys;
    if (k === null) throw new Error('sealData before the handshake completed');
    const plain = new Uint8Array(paddedLength(inner.length, 0));
    plain.set(inner);
    const sealed = this.c.aeadSeal(k.sendKey, this.sendCounter, plain, EMPTY);
    const out = new Uint8Array(Transport.CONTENT + sealed.length);
    writeTransportHeader(out, k.remoteIndex, this.sendCounter);
    out.set(sealed, Transport.CONTENT);
    this.sendCounter++;
    return out;
  }

  /** Zeroes the secrets this initiator holds (session keys, handshake state, cookie). */
  destroy(): void {
    this.hs.clear();
    this.hs.precomputedStaticStatic?.fill(0);
    this.cookies.clear();
    if (this.keys !== null) {
      this.keys.sendKey.fill(0);
      this.keys.receiveKey.fill(0);
    }
  }
}
