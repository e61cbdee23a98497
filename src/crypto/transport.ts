// Hot-path ChaCha20-Poly1305 for transport data (spec §1 AEAD with empty ad), in place.
//
// Run by the crypto worker threads on slots of SharedArrayBuffer-backed memory; each worker has its
// own module instance, so the single reused nonce buffer below is never shared between threads.
// node:crypto has no cipher reset and no output buffer: one createCipheriv/createDecipheriv per
// packet and one output Buffer per update() are the only allocations (both forced by Node); the
// result is copied back into the caller's slot. Both accept SAB-backed views for the key and data.

import { createCipheriv, createDecipheriv } from 'node:crypto';
import { AEAD_TAG_LEN } from '../constants.js';

/** 4 zero bytes || counter as u64 LE; node:crypto copies it during createCipheriv. */
const nonce = new Uint8Array(12);

function setNonce(counterLo: number, counterHi: number): void {
  nonce[4] = counterLo & 0xff;
  nonce[5] = (counterLo >>> 8) & 0xff;
  nonce[6] = (counterLo >>> 16) & 0xff;
  nonce[7] = (counterLo >>> 24) & 0xff;
  nonce[8] = counterHi & 0xff;
  nonce[9] = (counterHi >>> 8) & 0xff;
  nonce[10] = (counterHi >>> 16) & 0xff;
  nonce[11] = (counterHi >>> 24) & 0xff;
}

/** Seal in place: plaintext is buf[off .. off+len); writes ciphertext||tag to buf[off .. off+len+16). counter as lo/hi u32 words. Returns len+16. */
export function sealTransport(
  key: Uint8Array,
  counterLo: number,
  counterHi: number,
  buf: Uint8Array,
  off: number,
  len: number,
): number {
  const end = off + len;
  if (off < 0 || len < 0 || end + AEAD_TAG_LEN > buf.length) {
    throw new RangeError(`sealTransport: [${off}, ${end}) + tag does not fit a ${buf.length}-byte buffer`);
  }
  setNonce(counterLo, counterHi);
  const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: AEAD_TAG_LEN });
  const ciphertext = cipher.update(buf.subarray(off, end));
  cipher.final();
  buf.set(ciphertext, off);
  buf.set(cipher.getAuthTag(), end);
  return len + AEAD_TAG_LEN;
}

/** Open in place: ciphertext||tag is buf[off .. off+len); on success writes plaintext to buf[off .. off+len-16) and returns len-16; returns -1 on auth failure. buf is untouched on failure. */
export function openTransport(
  key: Uint8Array,
  counterLo: number,
  counterHi: number,
  buf: Uint8Array,
  off: number,
  len: number,
): number {
  const end = off + len;
  if (off < 0 || len < 0 || end > buf.length) {
    throw new RangeError(`openTransport: [${off}, ${end}) does not fit a ${buf.length}-byte buffer`);
  }
  const n = len - AEAD_TAG_LEN;
  if (n < 0) return -1;
  setNonce(counterLo, counterHi);
  const decipher = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: AEAD_TAG_LEN });
  decipher.setAuthTag(buf.subarray(off + n, end));
  const plaintext = decipher.update(buf.subarray(off, off + n));
  try {
    decipher.final(); // throws on a bad tag
  } catch {
    return -1;
  }
  buf.set(plaintext, off);
  return n;
}
