// Noise_IKpsk2 handshake of WireGuard (spec §3), both roles, as pure functions over a
// per-peer Handshake state. No I/O, no clocks, no index allocation: the engine passes
// in the wall-clock time for TAI64N and the freshly allocated local index, and adds
// mac1/mac2 afterwards (cookie.ts).
//
// Message flow:   initiator                               responder
//   createInitiation ── type 1 ──▶ consumeInitiation (+ engine checks replay/flood)
//   consumeResponse  ◀── type 2 ── createResponse
//   deriveKeys (both) → Keypair: initiator installs as current, responder as next.
import { CONSTRUCTION, IDENTIFIER, KEY_LEN, MESSAGE_INITIATION, MESSAGE_RESPONSE } from '../constants.js';
import { type Crypto, kdf1, kdf2, kdf3 } from '../crypto/crypto.js';
import { Initiation, Response, readU32, writeType, writeU32 } from './messages.js';
import { compareTai64n, tai64n } from './tai64n.js';

export const enum HandshakeState {
  Zeroed = 0,
  InitiationCreated = 1,
  InitiationConsumed = 2,
  ResponseCreated = 3,
  ResponseConsumed = 4,
}

const EMPTY = new Uint8Array(0);
const ZERO_KEY = new Uint8Array(KEY_LEN);

/** Chaining key and hash at the start of every handshake: C0 and H0 (spec §1). */
export interface NoiseInitialState { readonly c0: Uint8Array; readonly h0: Uint8Array }

export function initialState(c: Crypto): NoiseInitialState {
  const enc = new TextEncoder();
  const c0 = c.hash(enc.encode(CONSTRUCTION));
  const h0 = c.hash(c0, enc.encode(IDENTIFIER));
  return { c0, h0 };
}

/** The device's static identity. */
export interface StaticIdentity {
  readonly privateKey: Uint8Array;
  readonly publicKey: Uint8Array;
}

/** Per-peer handshake state (one pending handshake per peer). */
export class Handshake {
  state: HandshakeState = HandshakeState.Zeroed;
  chainKey = new Uint8Array(KEY_LEN);
  hash = new Uint8Array(KEY_LEN);
  localEphemeral = new Uint8Array(KEY_LEN);
  remoteEphemeral = new Uint8Array(KEY_LEN);
  localIndex = 0;
  remoteIndex = 0;
  /** Greatest TAI64N accepted from this peer (replay protection across handshakes). */
  latestTimestamp = new Uint8Array(12);
  /** Monotonic time of the last accepted initiation (flood protection), -Infinity = never. */
  lastInitiationConsumption = -Infinity;
  /** DH(our static, peer static); null when the peer key is unusable or no private key is set. */
  precomputedStaticStatic: Uint8Array | null = null;

  constructor(
    public remoteStatic: Uint8Array,
    public presharedKey: Uint8Array = ZERO_KEY,
    /** Wipes a private key and whatever the crypto implementation derived from it. */
    private readonly zeroPrivateKey: (k: Uint8Array) => void = (k) => k.fill(0),
  ) {}

  /** Forget all ephemeral secrets of the pending handshake (keeps replay/flood state). */
  clear(): void {
    this.state = HandshakeState.Zeroed;
    this.chainKey.fill(0);
    this.hash.fill(0);
    this.zeroPrivateKey(this.localEphemeral);
    this.remoteEphemeral.fill(0);
    this.localIndex = 0;
    this.remoteIndex = 0;
  }
}

/** Recomputes DH(static, static) after the device key or the peer key changed. */
export function precomputeStaticStatic(c: Crypto, id: StaticIdentity | null, hs: Handshake): void {
  hs.precomputedStaticStatic?.fill(0);
  hs.precomputedStaticStatic = id ? c.dh(id.privateKey, hs.remoteStatic) : null;
}

function mixHash(c: Crypto, h: Uint8Array, data: Uint8Array): Uint8Array {
  return c.hash(h, data);
}

/**
 * Initiator, message 1 (§3 "Initiator builds message 1"). Writes the 148-byte message
 * without macs into `out` (mac1/mac2 left zero). Returns false if the peer key is unusable.
 */
export function createInitiation(
  c: Crypto, init: NoiseInitialState, id: StaticIdentity, hs: Handshake,
  localIndex: number, wallClockMs: number, out: Uint8Array,
): boolean {
  if (!hs.precomputedStaticStatic) return false;
  const ephemeral = c.generatePrivateKey();
  const ephemeralPublic = c.publicKey(ephemeral);
  let ck: Uint8Array = init.c0;
  let h = mixHash(c, init.h0, hs.remoteStatic);
  ck = kdf1(c, ck, ephemeralPublic);
  h = mixHash(c, h, ephemeralPublic);
  const es = c.dh(ephemeral, hs.remoteStatic);
  if (!es) return false;
  let [ck2, key] = kdf2(c, ck, es);
  const encryptedStatic = c.aeadSeal(key, 0, id.publicKey, h);
  h = mixHash(c, h, encryptedStatic);
  [ck2, key] = kdf2(c, ck2, hs.precomputedStaticStatic);
  const encryptedTimestamp = c.aeadSeal(key, 0, tai64n(wallClockMs), h);
  h = mixHash(c, h, encryptedTimestamp);

  out.fill(0, 0, Initiation.SIZE);
  writeType(out, MESSAGE_INITIATION);
  writeU32(out, Initiation.SENDER, localIndex);
  out.set(ephemeralPublic, Initiation.EPHEMERAL);
  out.set(encryptedStatic, Initiation.STATIC);
  out.set(encryptedTimestamp, Initiation.TIMESTAMP);

  hs.clear();
  hs.chainKey.set(ck2);
  hs.hash.set(h);
  hs.localEphemeral.set(ephemeral);
  c.zeroPrivateKey(ephemeral);
  hs.localIndex = localIndex;
  hs.state = HandshakeState.InitiationCreated;
  return true;
}

/** Result of decrypting an initiation before any peer state is touched. */
export interface ConsumedInitiation {
  remoteStatic: Uint8Array;
  senderIndex: number;
  ephemeral: Uint8Array;
  timestamp: Uint8Array;
  chainKey: Uint8Array;
  hash: Uint8Array;
}

/** An initiation opened up to its static key (steps 2–4): all a responder can learn without the peer's state. */
export interface OpenedStatic {
  remoteStatic: Uint8Array;
  chainKey: Uint8Array;
  hash: Uint8Array;
}

/**
 * The responder's ephemeral key pair for message 2 and its two Diffie-Hellman results with the
 * initiator (ee, se): they need only the initiation's ephemeral and static keys, not the peer's
 * state, so they can be computed before the peer is looked up (src/handshake-offload.ts).
 */
export interface ResponderEphemeral {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
  ee: Uint8Array;
  se: Uint8Array;
}

/**
 * The arithmetic of answering an initiation that needs no peer state: steps 2–4 of consuming
 * message 1 and the ephemeral part of building message 2 — all four X25519 operations but the
 * precomputed static-static one. null when the static key does not decrypt; `responder` null
 * when a Diffie-Hellman with the initiator's keys is all zero (no response can be built).
 */
export interface PreparedInitiation {
  opened: OpenedStatic;
  responder: ResponderEphemeral | null;
}

export function prepareInitiation(c: Crypto, init: NoiseInitialState, id: StaticIdentity, msg: Uint8Array): PreparedInitiation | null {
  const opened = openStatic(c, init, id, msg);
  if (!opened) return null;
  return { opened, responder: responderEphemeral(c, msg.subarray(Initiation.EPHEMERAL, Initiation.EPHEMERAL + KEY_LEN), opened.remoteStatic) };
}

/** Zeroes the secrets of a prepared initiation that was not (or no longer will be) used. */
export function clearPrepared(c: Crypto, p: PreparedInitiation): void {
  clearOpened(p.opened);
  if (p.responder) clearResponderEphemeral(c, p.responder);
}

/** Zeroes the chain key and hash of an opened initiation once they are used (or will not be). */
export function clearOpened(o: OpenedStatic): void {
  o.chainKey.fill(0);
  o.hash.fill(0);
}

/** Zeroes a responder ephemeral that will not be used. */
export function clearResponderEphemeral(c: Crypto, r: ResponderEphemeral): void {
  c.zeroPrivateKey(r.privateKey);
  r.ee.fill(0);
  r.se.fill(0);
}

/** Responder, message 1, steps 2–4: DH(static, ephemeral) and the initiator's static key. */
export function openStatic(c: Crypto, init: NoiseInitialState, id: StaticIdentity, msg: Uint8Array): OpenedStatic | null {
  const ephemeral = msg.subarray(Initiation.EPHEMERAL, Initiation.EPHEMERAL + KEY_LEN);
  let h = mixHash(c, init.h0, id.publicKey);
  const ck = kdf1(c, init.c0, ephemeral);
  h = mixHash(c, h, ephemeral);
  const es = c.dh(id.privateKey, ephemeral);
  if (!es) return null;
  const [ck2, key] = kdf2(c, ck, es);
  es.fill(0);
  const encryptedStatic = msg.subarray(Initiation.STATIC, Initiation.STATIC + KEY_LEN + 16);
  const remoteStatic = c.aeadOpen(key, 0, encryptedStatic, h);
  key.fill(0);
  if (!remoteStatic) return null;
  h = mixHash(c, h, encryptedStatic);
  return { remoteStatic, chainKey: ck2, hash: h };
}

/** A fresh ephemeral key pair and its DH with the initiator's ephemeral (ee) and static (se) keys. */
export function responderEphemeral(c: Crypto, remoteEphemeral: Uint8Array, remoteStatic: Uint8Array): ResponderEphemeral | null {
  const privateKey = c.generatePrivateKey();
  const publicKey = c.publicKey(privateKey);
  const ee = c.dh(privateKey, remoteEphemeral);
  const se = c.dh(privateKey, remoteStatic);
  if (!ee || !se) {
    c.zeroPrivateKey(privateKey);
    ee?.fill(0);
    se?.fill(0);
    return null;
  }
  return { privateKey, publicKey, ee, se };
}

/**
 * Responder, message 1 (§3 "Responder consumes message 1"), steps 2–5. `findPeer`
 * maps the decrypted static key to that peer's handshake (undefined: unknown peer).
 * `opened`: steps 2–4 done already (prepareInitiation), else done here.
 * Returns null on any failure; the caller then applies the replay/flood rules
 * (checkInitiation) before committing.
 */
export function consumeInitiation(
  c: Crypto, init: NoiseInitialState, id: StaticIdentity, msg: Uint8Array,
  findPeer: (remoteStatic: Uint8Array) => Handshake | undefined,
  opened: OpenedStatic | null = openStatic(c, init, id, msg),
): { hs: Handshake; consumed: ConsumedInitiation } | null {
  if (!opened) return null;
  const { remoteStatic } = opened;
  const hs = findPeer(remoteStatic);
  if (!hs || !hs.precomputedStaticStatic) return null;
  let h = opened.hash;
  const [ck2, key] = kdf2(c, opened.chainKey, hs.precomputedStaticStatic);
  const encryptedTimestamp = msg.subarray(Initiation.TIMESTAMP, Initiation.TIMESTAMP + 12 + 16);
  const timestamp = c.aeadOpen(key, 0, encryptedTimestamp, h);
  key.fill(0);
  if (!timestamp) return null;
  h = mixHash(c, h, encryptedTimestamp);
  return {
    hs,
    consumed: {
      remoteStatic, senderIndex: readU32(msg, Initiation.SENDER), ephemeral: msg.slice(Initiation.EPHEMERAL, Initiation.EPHEMERAL + KEY_LEN),
      timestamp, chainKey: ck2, hash: h,
    },
  };
}

export const enum InitiationVerdict { Accept, Replay, Flood }

/** Step 6: TAI64N strictly increasing, and not within `floodWindowMs` of the last accepted one. */
export function checkInitiation(hs: Handshake, consumed: ConsumedInitiation, nowMs: number, floodWindowMs: number): InitiationVerdict {
  if (compareTai64n(consumed.timestamp, hs.latestTimestamp) <= 0) return InitiationVerdict.Replay;
  if (nowMs - hs.lastInitiationConsumption <= floodWindowMs) return InitiationVerdict.Flood;
  return InitiationVerdict.Accept;
}

/** Step 7: commit a checked initiation into the peer's handshake. */
export function commitInitiation(hs: Handshake, consumed: ConsumedInitiation, nowMs: number): void {
  hs.clear();
  hs.chainKey.set(consumed.chainKey);
  hs.hash.set(consumed.hash);
  hs.remoteEphemeral.set(consumed.ephemeral);
  hs.remoteIndex = consumed.senderIndex;
  hs.latestTimestamp.set(consumed.timestamp);
  hs.lastInitiationConsumption = nowMs;
  hs.state = HandshakeState.InitiationConsumed;
  consumed.chainKey.fill(0);
}

/**
 * Responder, message 2 (§3 "Responder builds message 2"). Writes 92 bytes without macs.
 * `eph`: the ephemeral key pair and its DH results, computed ahead (prepareInitiation) or here;
 * consumed either way (its secrets are zeroed).
 * Returns false if the handshake is not in InitiationConsumed or a DH fails.
 */
export function createResponse(
  c: Crypto, hs: Handshake, localIndex: number, out: Uint8Array,
  eph: ResponderEphemeral | null = hs.state === HandshakeState.InitiationConsumed ? responderEphemeral(c, hs.remoteEphemeral, hs.remoteStatic) : null,
): boolean {
  if (hs.state !== HandshakeState.InitiationConsumed || !eph) {
    if (eph) clearResponderEphemeral(c, eph);
    return false;
  }
  let ck = kdf1(c, hs.chainKey, eph.publicKey);
  let h = mixHash(c, hs.hash, eph.publicKey);
  ck = kdf1(c, ck, eph.ee);
  ck = kdf1(c, ck, eph.se);
  const [ck2, tau, key] = kdf3(c, ck, hs.presharedKey);
  h = mixHash(c, h, tau);
  const empty = c.aeadSeal(key, 0, EMPTY, h);
  h = mixHash(c, h, empty);

  out.fill(0, 0, Response.SIZE);
  writeType(out, MESSAGE_RESPONSE);
  writeU32(out, Response.SENDER, localIndex);
  writeU32(out, Response.RECEIVER, hs.remoteIndex);
  out.set(eph.publicKey, Response.EPHEMERAL);
  out.set(empty, Response.EMPTY);

  hs.chainKey.set(ck2);
  hs.hash.set(h);
  hs.localEphemeral.set(eph.privateKey);
  clearResponderEphemeral(c, eph);
  hs.localIndex = localIndex;
  hs.state = HandshakeState.ResponseCreated;
  return true;
}

/**
 * Initiator, message 2 (§3 "Initiator consumes message 2"), steps 2–4 for a handshake
 * already found by receiver index. Returns false (state untouched) on any failure.
 */
export function consumeResponse(c: Crypto, id: StaticIdentity, hs: Handshake, msg: Uint8Array): boolean {
  if (hs.state !== HandshakeState.InitiationCreated) return false;
  const ephemeral = msg.subarray(Response.EPHEMERAL, Response.EPHEMERAL + KEY_LEN);
  let ck = kdf1(c, hs.chainKey, ephemeral);
  let h = mixHash(c, hs.hash, ephemeral);
  const ee = c.dh(hs.localEphemeral, ephemeral);
  const se = c.dh(id.privateKey, ephemeral);
  if (!ee || !se) return false;
  ck = kdf1(c, ck, ee);
  ck = kdf1(c, ck, se);
  const [ck2, tau, key] = kdf3(c, ck, hs.presharedKey);
  h = mixHash(c, h, tau);
  const empty = msg.subarray(Response.EMPTY, Response.EMPTY + 16);
  if (!c.aeadOpen(key, 0, empty, h)) return false;
  h = mixHash(c, h, empty);
  hs.chainKey.set(ck2);
  hs.hash.set(h);
  hs.remoteIndex = readU32(msg, Response.SENDER);
  hs.state = HandshakeState.ResponseConsumed;
  return true;
}

export interface DerivedKeys {
  sendKey: Uint8Array;
  receiveKey: Uint8Array;
  isInitiator: boolean;
  localIndex: number;
  remoteIndex: number;
}

/** Transport keys of a completed handshake (§3 key mapping). Zeroes the handshake secrets. */
export function deriveKeys(c: Crypto, hs: Handshake): DerivedKeys | null {
  let isInitiator: boolean;
  if (hs.state === HandshakeState.ResponseConsumed) isInitiator = true;
  else if (hs.state === HandshakeState.ResponseCreated) isInitiator = false;
  else return null;
  const [t1, t2] = kdf2(c, hs.chainKey, EMPTY);
  const { localIndex, remoteIndex } = hs;
  hs.clear();
  return isInitiator
    ? { sendKey: t1, receiveKey: t2, isInitiator, localIndex, remoteIndex }
    : { sendKey: t2, receiveKey: t1, isInitiator, localIndex, remoteIndex };
}
