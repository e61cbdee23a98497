// Hot-path ChaCha20-Poly1305 for transport data (spec §1 AEAD with empty ad), in place, one packet
// per call.
//
// Thin wrappers over the native single-packet functions of native-aead.ts (native/aead.c: the
// OpenSSL Node links, one reused EVP context per thread, no allocation and no copy per packet).
// Used by crypto workers given a per-packet crypto module (the default worker path uses the
// native batch calls sealSlots/openSlots directly) and by anything that seals or opens one packet
// in place. Each thread has its own addon instance. Both accept SAB-backed views for the key and
// data. The nonce is 4 zero bytes || counter as u64 LE, the counter given as lo/hi u32 words.

import { open, seal } from './native-aead.js';

/** Seal in place: plaintext is buf[off .. off+len); writes ciphertext||tag to buf[off .. off+len+16). counter as lo/hi u32 words. Returns len+16; RangeError if that does not fit buf. */
export function sealTransport(
  key: Uint8Array,
  counterLo: number,
  counterHi: number,
  buf: Uint8Array,
  off: number,
  len: number,
): number {
  return seal(key, counterLo, counterHi, buf, off, len);
}

/** Open in place: ciphertext||tag is buf[off .. off+len); on success writes plaintext to buf[off .. off+len-16) and returns len-16; returns -1 on auth failure (or len < 16). buf is untouched on failure. RangeError if [off, off+len) does not fit buf. */
export function openTransport(
  key: Uint8Array,
  counterLo: number,
  counterHi: number,
  buf: Uint8Array,
  off: number,
  len: number,
): number {
  return open(key, counterLo, counterHi, buf, off, len);
}
