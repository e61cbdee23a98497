// The cryptographic primitives of WireGuard (spec §1, §4) behind one interface.
//
// Implementations:
//   nodeCrypto    - the default (the daemon, the engine, the load generator): the fastest
//                   implementation of each primitive here, which is nativeCrypto for all of them
//                   when the addon is loaded (table in bench/HANDSHAKES.md), else nodeApiCrypto.
//   nativeCrypto  - native/handshake.c through src/crypto/native-handshake.ts: X25519 on raw keys
//                   (OpenSSL's own functions, no key objects), BLAKE2s / HMAC / the whole KDF and
//                   keyed BLAKE2s-128 in C, (X)ChaCha20-Poly1305 through one reused OpenSSL
//                   context. null when the addon is not built (or WIREPOOL_NATIVE_HANDSHAKE=0).
//   nodeApiCrypto - node:crypto (OpenSSL) where Node 20 has the primitive: BLAKE2s-256, HMAC-BLAKE2s,
//                   ChaCha20-Poly1305, X25519 through KeyObjects (cached per array). @noble for what
//                   OpenSSL lacks here: keyed BLAKE2s with a 16-byte digest (MAC) and
//                   XChaCha20-Poly1305 (cookie replies). The fallback, and a cross-check.
//   nobleCrypto   - pure @noble for everything; an independent oracle for tests and bench/.
// Plus the Noise KDF1/2/3 (one native call where the Crypto has kdf, else built on Crypto.hmac),
// key clamping and a constant-time compare.
//
// Outputs are plain Uint8Arrays (never Buffers, whose slice() aliases instead of copying); the
// outputs of one KDF call are subarrays of one buffer.
// Counters are JS numbers, valid up to 2^53 - 1 (see COUNTER_LIMIT in constants.ts).
// Private keys never appear in error messages.

import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  randomFillSync,
  type KeyObject,
} from 'node:crypto';
import { blake2s } from '@noble/hashes/blake2.js';
import { hmac as nobleHmac } from '@noble/hashes/hmac.js';
import { randomBytes as nobleRandomBytes } from '@noble/hashes/utils.js';
import { chacha20poly1305, xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { x25519 } from '@noble/curves/ed25519.js';
import { AEAD_TAG_LEN, COUNTER_LIMIT, KEY_LEN, MAC_LEN } from '../constants.js';
import { io as nativeIo, nativeHandshake, type NativeHandshake } from './native-handshake.js';

export interface Crypto {
  /** BLAKE2s-256 of the concatenation of parts. */
  hash(...parts: Uint8Array[]): Uint8Array;
  /** HMAC-BLAKE2s (RFC 2104, 64-byte block, 32-byte out) of the concatenation of parts. */
  hmac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array;
  /** Keyed BLAKE2s with a 16-byte digest (WireGuard MAC for mac1/mac2/cookies). */
  mac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array;
  /** ChaCha20-Poly1305 (RFC 8439); nonce = 4 zero bytes || counter as u64 LE. Returns ciphertext||tag. */
  aeadSeal(key: Uint8Array, counter: number, plaintext: Uint8Array, ad: Uint8Array): Uint8Array;
  /** Returns the plaintext, or null if authentication fails. Never throws on bad input. */
  aeadOpen(key: Uint8Array, counter: number, ciphertext: Uint8Array, ad: Uint8Array): Uint8Array | null;
  /** XChaCha20-Poly1305 with a 24-byte nonce. */
  xaeadSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array;
  xaeadOpen(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array): Uint8Array | null;
  /** 32 random bytes clamped as an X25519 private key. */
  generatePrivateKey(): Uint8Array;
  /** X25519 public key of a private key. */
  publicKey(privateKey: Uint8Array): Uint8Array;
  /** X25519(priv, pub); null when the result is all zero or the peer key is a low-order point. */
  dh(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array | null;
  randomBytes(n: number): Uint8Array;
  /**
   * Zero a private key and forget anything derived from it that the implementation holds
   * (node: the cached KeyObject and the copy of the bytes kept to validate it). Call it
   * instead of key.fill(0) when a private key is retired.
   */
  zeroPrivateKey(privateKey: Uint8Array): void;
  /**
   * Optional: the Noise KDF_n(key, input) for n = 1..3 in one call, T1 || … || Tn (32·n bytes).
   * kdf1/kdf2/kdf3 use it when present, else they build the KDF from hmac.
   */
  kdf?(key: Uint8Array, input: Uint8Array, n: 1 | 2 | 3): Uint8Array;
}

/** Wipes a private key for implementations that keep no state about it. */
function zeroOnly(privateKey: Uint8Array): void {
  privateKey.fill(0);
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

/** Compares two byte strings in time that depends only on their lengths. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** Whether every byte is zero (an unset key), in time that depends only on the length. */
export function isZeroKey(b: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < b.length; i++) acc |= b[i]!;
  return acc === 0;
}

/** Clamps an X25519 private key in place (spec §1 DH_GENERATE) and returns it. */
export function clampPrivateKey(k: Uint8Array): Uint8Array {
  k[0]! &= 248;
  k[31] = (k[31]! & 127) | 64;
  return k;
}

function isAllZero(b: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < b.length; i++) acc |= b[i]!;
  return acc === 0;
}

/** Plain Uint8Array view of a Buffer's bytes (no copy). */
function view(b: Uint8Array): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

function checkKeyLength(k: Uint8Array, what: string): void {
  if (k.length !== KEY_LEN) throw new RangeError(`${what} must be ${KEY_LEN} bytes, got ${k.length}`);
}

/** One reused 12-byte nonce per module: 4 zero bytes || counter as u64 LE. Consumed synchronously. */
const aeadNonce = new Uint8Array(12);

function setAeadNonce(counter: number): Uint8Array {
  if (!Number.isInteger(counter) || counter < 0 || counter > COUNTER_LIMIT) {
    throw new RangeError(`AEAD counter out of range: ${counter}`);
  }
  const lo = counter >>> 0;
  const hi = Math.floor(counter / 0x1_0000_0000) >>> 0;
  aeadNonce[4] = lo & 0xff;
  aeadNonce[5] = (lo >>> 8) & 0xff;
  aeadNonce[6] = (lo >>> 16) & 0xff;
  aeadNonce[7] = lo >>> 24;
  aeadNonce[8] = hi & 0xff;
  aeadNonce[9] = (hi >>> 8) & 0xff;
  aeadNonce[10] = (hi >>> 16) & 0xff;
  aeadNonce[11] = hi >>> 24;
  return aeadNonce;
}

// ---------------------------------------------------------------------------------------------
// Noise KDF (spec §1): prk = HMAC(key, input); T1 = HMAC(prk, 0x01); Ti = HMAC(prk, T(i-1) || i).

const BYTE_1 = Uint8Array.of(1);
const BYTE_2 = Uint8Array.of(2);
const BYTE_3 = Uint8Array.of(3);

export function kdf1(c: Crypto, key: Uint8Array, input: Uint8Array): Uint8Array {
  if (c.kdf) return c.kdf(key, input, 1);
  const prk = c.hmac(key, input);
  const t1 = c.hmac(prk, BYTE_1);
  prk.fill(0);
  return t1;
}

export function kdf2(c: Crypto, key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array] {
  if (c.kdf) {
    const t = c.kdf(key, input, 2);
    return [t.subarray(0, 32), t.subarray(32, 64)];
  }
  const prk = c.hmac(key, input);
  const t1 = c.hmac(prk, BYTE_1);
  const t2 = c.hmac(prk, t1, BYTE_2);
  prk.fill(0);
  return [t1, t2];
}

export function kdf3(c: Crypto, key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array, Uint8Array] {
  if (c.kdf) {
    const t = c.kdf(key, input, 3);
    return [t.subarray(0, 32), t.subarray(32, 64), t.subarray(64, 96)];
  }
  const prk = c.hmac(key, input);
  const t1 = c.hmac(prk, BYTE_1);
  const t2 = c.hmac(prk, t1, BYTE_2);
  const t3 = c.hmac(prk, t2, BYTE_3);
  prk.fill(0);
  return [t1, t2, t3];
}

// ---------------------------------------------------------------------------------------------
// @noble primitives shared by both implementations (node:crypto has no keyed 16-byte BLAKE2s
// and no XChaCha20-Poly1305).

function nobleMac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = blake2s.create({ key, dkLen: MAC_LEN });
  for (const p of parts) h.update(p);
  return h.digest();
}

function nobleXaeadSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
  return xchacha20poly1305(key, nonce, ad).encrypt(plaintext);
}

function nobleXaeadOpen(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array): Uint8Array | null {
  if (ciphertext.length < AEAD_TAG_LEN) return null;
  try {
    return xchacha20poly1305(key, nonce, ad).decrypt(ciphertext);
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// node:crypto implementation (nodeApiCrypto)

/**
 * X25519 KeyObjects cached per Uint8Array object. Static keys are long-lived arrays, so the import
 * (~8.6 µs via JWK) is paid once. The entry keeps a copy of the bytes and is used only while they
 * still match, so an array that was mutated or zeroed gets a fresh import, never a stale key.
 */
interface CachedKey {
  bytes: Uint8Array;
  key: KeyObject;
}
const privateKeyCache = new WeakMap<Uint8Array, CachedKey>();
const publicKeyCache = new WeakMap<Uint8Array, CachedKey>();

function base64url(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
}

function importPrivateKey(k: Uint8Array): KeyObject {
  checkKeyLength(k, 'X25519 private key');
  const hit = privateKeyCache.get(k);
  if (hit !== undefined && constantTimeEqual(hit.bytes, k)) return hit.key;
  hit?.bytes.fill(0); // a stale copy of a key that has since changed
  // JWK import is ~9x faster than PKCS#8 DER. Node 20 requires `x` to be a string for an OKP
  // private key but derives the public half from `d` alone (checked by the RFC 7748 tests).
  const key = createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: base64url(k), x: '' }, format: 'jwk' });
  privateKeyCache.set(k, { bytes: k.slice(), key });
  return key;
}

function importPublicKey(k: Uint8Array): KeyObject {
  checkKeyLength(k, 'X25519 public key');
  const hit = publicKeyCache.get(k);
  if (hit !== undefined && constantTimeEqual(hit.bytes, k)) return hit.key;
  hit?.bytes.fill(0); // a stale copy of a key that has since changed
  const key = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: base64url(k) }, format: 'jwk' });
  publicKeyCache.set(k, { bytes: k.slice(), key });
  return key;
}

export const nodeApiCrypto: Crypto = {
  zeroPrivateKey(privateKey) {
    const hit = privateKeyCache.get(privateKey);
    if (hit !== undefined) {
      hit.bytes.fill(0);
      privateKeyCache.delete(privateKey);
    }
    privateKey.fill(0);
  },

  hash(...parts) {
    const h = createHash('blake2s256');
    for (const p of parts) h.update(p);
    return view(h.digest());
  },

  hmac(key, ...parts) {
    const h = createHmac('blake2s256', key);
    for (const p of parts) h.update(p);
    return view(h.digest());
  },

  mac: nobleMac,

  aeadSeal(key, counter, plaintext, ad) {
    const cipher = createCipheriv('chacha20-poly1305', key, setAeadNonce(counter), { authTagLength: AEAD_TAG_LEN });
    if (ad.length > 0) cipher.setAAD(ad, { plaintextLength: plaintext.length });
    const out = new Uint8Array(plaintext.length + AEAD_TAG_LEN);
    out.set(cipher.update(plaintext), 0);
    cipher.final();
    out.set(cipher.getAuthTag(), plaintext.length);
    return out;
  },

  aeadOpen(key, counter, ciphertext, ad) {
    const n = ciphertext.length - AEAD_TAG_LEN;
    if (n < 0) return null;
    try {
      const decipher = createDecipheriv('chacha20-poly1305', key, setAeadNonce(counter), {
        authTagLength: AEAD_TAG_LEN,
      });
      decipher.setAuthTag(ciphertext.subarray(n));
      if (ad.length > 0) decipher.setAAD(ad, { plaintextLength: n });
      const plaintext = decipher.update(ciphertext.subarray(0, n));
      decipher.final(); // throws on a bad tag
      return view(plaintext);
    } catch {
      return null;
    }
  },

  xaeadSeal: nobleXaeadSeal,
  xaeadOpen: nobleXaeadOpen,

  generatePrivateKey() {
    return clampPrivateKey(randomFillSync(new Uint8Array(KEY_LEN)));
  },

  publicKey(privateKey) {
    const jwk = createPublicKey(importPrivateKey(privateKey)).export({ format: 'jwk' });
    return view(Buffer.from(jwk.x!, 'base64url'));
  },

  dh(privateKey, publicKey) {
    const priv = importPrivateKey(privateKey);
    const pub = importPublicKey(publicKey);
    let shared: Buffer;
    try {
      shared = diffieHellman({ privateKey: priv, publicKey: pub });
    } catch {
      return null; // OpenSSL refuses an all-zero result, i.e. a low-order peer key
    }
    return isAllZero(shared) ? null : view(shared);
  },

  randomBytes(n) {
    return randomFillSync(new Uint8Array(n));
  },
};

// ---------------------------------------------------------------------------------------------
// Pure @noble implementation

export const nobleCrypto: Crypto = {
  zeroPrivateKey: zeroOnly,

  hash(...parts) {
    const h = blake2s.create();
    for (const p of parts) h.update(p);
    return h.digest();
  },

  hmac(key, ...parts) {
    const h = nobleHmac.create(blake2s, key);
    for (const p of parts) h.update(p);
    return h.digest();
  },

  mac: nobleMac,

  aeadSeal(key, counter, plaintext, ad) {
    return chacha20poly1305(key, setAeadNonce(counter), ad).encrypt(plaintext);
  },

  aeadOpen(key, counter, ciphertext, ad) {
    if (ciphertext.length < AEAD_TAG_LEN) return null;
    try {
      return chacha20poly1305(key, setAeadNonce(counter), ad).decrypt(ciphertext);
    } catch {
      return null;
    }
  },

  xaeadSeal: nobleXaeadSeal,
  xaeadOpen: nobleXaeadOpen,

  generatePrivateKey() {
    return clampPrivateKey(nobleRandomBytes(KEY_LEN));
  },

  publicKey(privateKey) {
    checkKeyLength(privateKey, 'X25519 private key');
    return x25519.getPublicKey(privateKey);
  },

  dh(privateKey, publicKey) {
    checkKeyLength(privateKey, 'X25519 private key');
    checkKeyLength(publicKey, 'X25519 public key');
    let shared: Uint8Array;
    try {
      shared = x25519.getSharedSecret(privateKey, publicKey);
    } catch {
      return null; // @noble rejects low-order points before the ladder
    }
    return isAllZero(shared) ? null : shared;
  },

  randomBytes(n) {
    return nobleRandomBytes(n);
  },
};

// ---------------------------------------------------------------------------------------------
// Native implementation (native/handshake.c)
//
// Inputs are copied into the addon's I/O area (native-handshake.ts), the output copied out of it
// and zeroed there. A call whose inputs do not fit (never one of a handshake) takes nodeApiCrypto's
// path for that primitive instead.

function totalLength(parts: Uint8Array[]): number {
  let n = 0;
  for (const p of parts) n += p.length;
  return n;
}

/** Bytes of randomness the native Crypto fetches per call (nativeCrypto's pool). */
const RANDOM_POOL = 512;

function makeNativeCrypto(n: NativeHandshake, io: Uint8Array): Crypto {
  const cap = io.length;
  /** Copies parts into io from `at`; returns the end. */
  const put = (parts: Uint8Array[], at: number): number => {
    for (const p of parts) {
      io.set(p, at);
      at += p.length;
    }
    return at;
  };
  /** The output of the last call (io[0, len)), copied out; io zeroed. */
  const take = (len: number): Uint8Array => {
    const out = io.slice(0, len);
    io.fill(0, 0, len);
    return out;
  };
  const nonceHi = (counter: number): number => Math.floor(counter / 0x1_0000_0000);
  /**
   * Random bytes, RANDOM_POOL at a time from OpenSSL's private generator (node's randomFillSync
   * costs ≈ 2.4 µs a call, the addon's ≈ 0.9 warm and more in a busy daemon; a handshake takes 36
   * bytes): each byte is handed out once and zeroed in the pool as it goes.
   */
  const pool = new Uint8Array(Math.min(RANDOM_POOL, cap));
  let poolAt = pool.length;
  const draw = (len: number): Uint8Array => {
    if (len > pool.length) return randomFillSync(new Uint8Array(len));
    if (poolAt + len > pool.length) {
      pool.fill(0, poolAt);
      n.random(pool.length);
      pool.set(io.subarray(0, pool.length));
      io.fill(0, 0, pool.length);
      poolAt = 0;
    }
    const out = pool.slice(poolAt, poolAt + len);
    pool.fill(0, poolAt, poolAt + len);
    poolAt += len;
    return out;
  };

  return {
    zeroPrivateKey: zeroOnly,

    hash(...parts) {
      const len = totalLength(parts);
      if (len > cap) return nodeApiCrypto.hash(...parts);
      put(parts, 0);
      n.blake2s(32, 0, len);
      return take(32);
    },

    hmac(key, ...parts) {
      const len = totalLength(parts);
      if (key.length + len > cap) return nodeApiCrypto.hmac(key, ...parts);
      io.set(key, 0);
      put(parts, key.length);
      n.hmac(key.length, len);
      return take(32);
    },

    mac(key, ...parts) {
      if (key.length < 1 || key.length > 32) throw new RangeError(`MAC key must be 1–32 bytes, got ${key.length}`);
      const len = totalLength(parts);
      if (key.length + len > cap) return nobleMac(key, ...parts);
      io.set(key, 0);
      put(parts, key.length);
      n.blake2s(MAC_LEN, key.length, len);
      return take(MAC_LEN);
    },

    kdf(key, input, count) {
      if (key.length + input.length > cap) {
        const c = nodeApiCrypto;
        return concatKdf(count === 1 ? [kdf1(c, key, input)] : count === 2 ? kdf2(c, key, input) : kdf3(c, key, input));
      }
      io.set(key, 0);
      io.set(input, key.length);
      n.kdf(count, key.length, input.length);
      return take(32 * count);
    },

    aeadSeal(key, counter, plaintext, ad) {
      setAeadNonce(counter); // range check
      checkKeyLength(key, 'ChaCha20-Poly1305 key');
      if (KEY_LEN + ad.length + 2 * plaintext.length + AEAD_TAG_LEN > cap) return nodeApiCrypto.aeadSeal(key, counter, plaintext, ad);
      io.set(key, 0);
      io.set(ad, KEY_LEN);
      io.set(plaintext, KEY_LEN + ad.length);
      n.aeadSeal(counter >>> 0, nonceHi(counter), ad.length, plaintext.length);
      return take(plaintext.length + AEAD_TAG_LEN);
    },

    aeadOpen(key, counter, ciphertext, ad) {
      const len = ciphertext.length - AEAD_TAG_LEN;
      if (len < 0 || key.length !== KEY_LEN || !Number.isInteger(counter) || counter < 0 || counter > COUNTER_LIMIT) return null;
      if (KEY_LEN + ad.length + ciphertext.length + len > cap) return nodeApiCrypto.aeadOpen(key, counter, ciphertext, ad);
      io.set(key, 0);
      io.set(ad, KEY_LEN);
      io.set(ciphertext, KEY_LEN + ad.length);
      return n.aeadOpen(counter >>> 0, nonceHi(counter), ad.length, ciphertext.length) ? take(len) : null;
    },

    xaeadSeal(key, nonce, plaintext, ad) {
      checkKeyLength(key, 'XChaCha20-Poly1305 key');
      if (nonce.length !== 24) throw new RangeError(`XChaCha20-Poly1305 nonce must be 24 bytes, got ${nonce.length}`);
      if (KEY_LEN + 24 + ad.length + 2 * plaintext.length + AEAD_TAG_LEN > cap) return nobleXaeadSeal(key, nonce, plaintext, ad);
      io.set(key, 0);
      io.set(nonce, KEY_LEN);
      io.set(ad, KEY_LEN + 24);
      io.set(plaintext, KEY_LEN + 24 + ad.length);
      n.xaeadSeal(ad.length, plaintext.length);
      return take(plaintext.length + AEAD_TAG_LEN);
    },

    xaeadOpen(key, nonce, ciphertext, ad) {
      const len = ciphertext.length - AEAD_TAG_LEN;
      if (len < 0 || key.length !== KEY_LEN || nonce.length !== 24) return null;
      if (KEY_LEN + 24 + ad.length + ciphertext.length + len > cap) return nobleXaeadOpen(key, nonce, ciphertext, ad);
      io.set(key, 0);
      io.set(nonce, KEY_LEN);
      io.set(ad, KEY_LEN + 24);
      io.set(ciphertext, KEY_LEN + 24 + ad.length);
      return n.xaeadOpen(ad.length, ciphertext.length) ? take(len) : null;
    },

    generatePrivateKey() {
      return clampPrivateKey(draw(KEY_LEN));
    },

    publicKey(privateKey) {
      checkKeyLength(privateKey, 'X25519 private key');
      io.set(privateKey, 0);
      n.x25519Base();
      return take(KEY_LEN);
    },

    dh(privateKey, publicKey) {
      checkKeyLength(privateKey, 'X25519 private key');
      checkKeyLength(publicKey, 'X25519 public key');
      io.set(privateKey, 0);
      io.set(publicKey, KEY_LEN);
      const ok = n.x25519();
      const shared = take(KEY_LEN);
      return ok ? shared : null; // not ok: the output is all zero
    },

    randomBytes(len) {
      return draw(len);
    },
  };
}

function concatKdf(ts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(32 * ts.length);
  ts.forEach((t, i) => { out.set(t, 32 * i); t.fill(0); });
  return out;
}

/** native/handshake.c behind the Crypto interface; null when the addon is not loaded. */
export const nativeCrypto: Crypto | null = nativeHandshake ? makeNativeCrypto(nativeHandshake, nativeIo) : null;

/**
 * The default Crypto: per primitive the fastest implementation available (thread CPU time per
 * call, bench/handshake-crypto.ts; table in bench/HANDSHAKES.md) — nativeCrypto's for every one of
 * them when the addon is loaded, nodeApiCrypto's otherwise.
 */
export const nodeCrypto: Crypto = nativeCrypto ?? nodeApiCrypto;

/** Which implementation nodeCrypto is, for reports. */
export const nodeCryptoBackend: 'native' | 'node:crypto' = nativeCrypto ? 'native' : 'node:crypto';
