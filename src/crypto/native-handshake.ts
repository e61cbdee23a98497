// The handshake primitives of native/handshake.c (built by `npm ci` next to the other addons):
// X25519 on raw 32-byte keys, BLAKE2s (plain and keyed), HMAC-BLAKE2s, the whole Noise KDF in one
// call, ChaCha20-Poly1305 and XChaCha20-Poly1305 with additional data. src/crypto/crypto.ts builds
// its default Crypto (nodeCrypto) on these; this module only loads the addon and describes it.
//
// Every function is synchronous. Bytes go through one I/O area per thread (`io`, IO_SIZE bytes):
// the caller writes a call's inputs at its start, the call leaves its output there and everything
// else it used zeroed, and the caller copies the output out and zeroes it. That is cheaper than
// passing each small array to N-API (~0.3 µs for a fresh one). Each thread that imports this
// module gets its own addon instance (its own OpenSSL cipher context and I/O area).
//
// Loading never throws: when the addon is missing (not built yet, a stale build without this
// target) `nativeHandshake` is null, `nativeHandshakeError` says why, and crypto.ts falls back to
// node:crypto + @noble. WIREPOOL_NATIVE_HANDSHAKE=0 in the environment forces that fallback (for
// before/after measurements of one build: bench/HANDSHAKES.md).

import { createRequire } from 'node:module';

/**
 * The addon's functions (native/handshake.c). Inputs are laid out at the start of the I/O area
 * (setIo) before a call; the output is at its start afterwards, everything else the call used
 * zeroed. Arguments are lengths and counters only.
 */
export interface NativeHandshake {
  /** Hands the thread's I/O area to the addon (once). */
  setIo(io: Uint8Array): void;
  /** priv(32) || pub(32) → X25519(priv, pub); false (output zero) when it is all zero (a low-order pub). */
  x25519(): boolean;
  /** priv(32) → X25519(priv, 9): the public key. */
  x25519Base(): void;
  /** → len random bytes from OpenSSL's private generator. */
  random(len: number): void;
  /** key || data → BLAKE2s with digest length outLen (1..32), keyed when keyLen > 0 (1..32). */
  blake2s(outLen: number, keyLen: number, len: number): void;
  /** key || data → HMAC-BLAKE2s (32 bytes). */
  hmac(keyLen: number, len: number): void;
  /** key || input → Noise KDF_n (n = 1..3): T1 || … || Tn. */
  kdf(n: number, keyLen: number, len: number): void;
  /** key(32) || ad || plaintext → ciphertext || tag; ChaCha20-Poly1305, nonce 0^4 || (hi:lo) as u64 LE. */
  aeadSeal(lo: number, hi: number, adLen: number, len: number): void;
  /** key(32) || ad || ciphertext||tag → plaintext, or false (nothing left) when the tag does not verify. */
  aeadOpen(lo: number, hi: number, adLen: number, len: number): boolean;
  /** key(32) || nonce(24) || ad || plaintext → XChaCha20-Poly1305 ciphertext || tag. */
  xaeadSeal(adLen: number, len: number): void;
  xaeadOpen(adLen: number, len: number): boolean;
  /** Which X25519 code runs: 'ossl' (OpenSSL's raw-key function) or 'evp' (EVP_PKEY import + derive); public keys: 'comb' (x25519_base.c). */
  backend(): { x25519: 'ossl' | 'evp'; x25519Base: 'comb' };
}

/** Bytes of this thread's I/O area (inputs of one call; larger ones take crypto.ts's node:crypto path). */
export const IO_SIZE = 4096;

const FUNCTIONS = ['setIo', 'x25519', 'x25519Base', 'blake2s', 'hmac', 'kdf', 'aeadSeal', 'aeadOpen', 'xaeadSeal', 'xaeadOpen', 'backend'] as const;

function load(): { mod: NativeHandshake | null; error: string | null } {
  if (process.env.WIREPOOL_NATIVE_HANDSHAKE === '0') return { mod: null, error: 'disabled by WIREPOOL_NATIVE_HANDSHAKE=0' };
  let mod: NativeHandshake;
  try {
    mod = createRequire(import.meta.url)('../../../native/build/Release/wirepool_handshake.node') as NativeHandshake;
  } catch (err) {
    return { mod: null, error: `native/build/Release/wirepool_handshake.node could not be loaded (run npm ci): ${(err as Error).message}` };
  }
  const missing = FUNCTIONS.filter((f) => typeof mod[f] !== 'function');
  if (missing.length !== 0) {
    return { mod: null, error: `native/build/Release/wirepool_handshake.node lacks ${missing.join(', ')} (stale build?); run npm ci` };
  }
  try {
    mod.setIo(ioArea);
  } catch (err) { // another copy of this module in this thread has the addon already
    return { mod: null, error: `wirepool_handshake.node: ${(err as Error).message}` };
  }
  return { mod, error: null };
}

/** This thread's I/O area: an ArrayBuffer of its own (off the JS heap, so the addon reads it in place). */
const ioArea = new Uint8Array(new ArrayBuffer(IO_SIZE));
const loaded = load();

/** The addon, or null when it could not be loaded (see nativeHandshakeError). */
export const nativeHandshake: NativeHandshake | null = loaded.mod;
/** Why nativeHandshake is null; null when it is loaded. */
export const nativeHandshakeError: string | null = loaded.error;
/** The I/O area given to the addon (only crypto.ts writes it; zero between calls). */
export const io: Uint8Array = ioArea;
