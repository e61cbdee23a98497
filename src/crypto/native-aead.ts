// Native ChaCha20-Poly1305 for transport data (spec §1 AEAD with empty ad), in place, through the
// OpenSSL that Node links (native/aead.c, built by `npm ci`): one reused EVP context per thread,
// no allocation and no copy per packet. Every buffer may be a SharedArrayBuffer-backed view.
//
// Batch functions (the crypto workers: one call per batch of claimed ring slots) and single-packet
// functions (transport.ts). Each thread that imports this module loads its own addon instance, so
// the OpenSSL context is never shared between threads.
//
// At load, the slot-layout constants the addon was compiled with are checked against
// src/dataplane/layout.ts; a mismatch (a stale build) throws.

import { createRequire } from 'node:module';
import { AEAD_TAG_LEN } from '../constants.js';
import {
  INNER_HEAD_BYTES, KEY_RECV_OFFSET, KEY_SEND_OFFSET, KEY_SLOT_BYTES, M_COUNTER_HI, M_COUNTER_LO, M_INNER_HEAD, M_KEYPAIR, M_LENGTH,
  M_RESULT, META_WORDS, SLOT_PAYLOAD_OFFSET,
} from '../dataplane/layout.js';

/** The constants native/aead.c was compiled with. */
export interface NativeAeadLayout {
  metaWords: number;
  mLength: number;
  mResult: number;
  mKeypair: number;
  mCounterLo: number;
  mCounterHi: number;
  keySlotBytes: number;
  keySendOffset: number;
  keyRecvOffset: number;
  headerSize: number;
  tagSize: number;
  mInnerHead: number;
  innerHeadBytes: number;
}

/** What layout() must return for this build of the TypeScript side. */
export const EXPECTED_LAYOUT: Readonly<NativeAeadLayout> = Object.freeze({
  metaWords: META_WORDS,
  mLength: M_LENGTH,
  mResult: M_RESULT,
  mKeypair: M_KEYPAIR,
  mCounterLo: M_COUNTER_LO,
  mCounterHi: M_COUNTER_HI,
  keySlotBytes: KEY_SLOT_BYTES,
  keySendOffset: KEY_SEND_OFFSET,
  keyRecvOffset: KEY_RECV_OFFSET,
  headerSize: SLOT_PAYLOAD_OFFSET, // = MESSAGE_TRANSPORT_HEADER_SIZE: plaintext offset of a slot, header of a message
  tagSize: AEAD_TAG_LEN,
  mInnerHead: M_INNER_HEAD,
  innerHeadBytes: INNER_HEAD_BYTES,
});

/**
 * Batch crypt of ring slots (signature shared by sealSlots and openSlots). For i < n, slot
 * s = slots[i] has data at data[s*slotBytes, +slotBytes) and meta at meta[s*META_WORDS, +META_WORDS);
 * sets ok[i] to 1 or 0 and returns the number of 1s. Throws TypeError/RangeError only on misuse of
 * the arguments themselves (wrong types, n > slots.length or ok.length); a bad slot just gets ok 0.
 */
export type SlotsFn = (
  data: Uint8Array,
  slotBytes: number,
  meta: Int32Array,
  keys: Uint8Array,
  slots: Int32Array,
  n: number,
  ok: Uint8Array,
) => number;

/** Single-packet crypt (signature shared by seal and open). */
export type PacketFn = (key: Uint8Array, counterLo: number, counterHi: number, buf: Uint8Array, off: number, len: number) => number;

interface NativeAead {
  layout(): NativeAeadLayout;
  sealSlots: SlotsFn;
  openSlots: SlotsFn;
  seal: PacketFn;
  open: PacketFn;
}

/** Throws if the addon's compiled-in constants differ from layout.ts (e.g. a stale native build). */
export function checkLayout(got: NativeAeadLayout): void {
  const bad = (Object.keys(EXPECTED_LAYOUT) as (keyof NativeAeadLayout)[])
    .filter((k) => got[k] !== EXPECTED_LAYOUT[k])
    .map((k) => `${k}: native ${String(got[k])}, layout.ts ${EXPECTED_LAYOUT[k]}`);
  if (bad.length !== 0) {
    throw new Error(`native/aead.c was compiled for another slot layout (${bad.join('; ')}); rebuild it (npm ci)`);
  }
}

function load(): NativeAead {
  let mod: NativeAead;
  try {
    mod = createRequire(import.meta.url)('../../../native/build/Release/wirepool_aead.node') as NativeAead;
  } catch (err) {
    throw new Error(`native ChaCha20-Poly1305 addon (native/build/Release/wirepool_aead.node) could not be loaded; run npm ci: ${(err as Error).message}`, { cause: err });
  }
  if (typeof mod.layout !== 'function' || typeof mod.sealSlots !== 'function' || typeof mod.openSlots !== 'function') {
    throw new Error('native/build/Release/wirepool_aead.node is not the ChaCha20-Poly1305 addon (stale build?); run npm ci');
  }
  checkLayout(mod.layout());
  return mod;
}

const native = load();

/** The constants the addon was compiled with (checked against layout.ts at load). */
export const layout: () => NativeAeadLayout = native.layout;

/**
 * Seal send-ring slots in place. Slot s = slots[i]: plaintext at data[s*slotBytes+16, +len),
 * len = meta[M_LENGTH], sealed with the send key of keypair meta[M_KEYPAIR] (keys[kp*64, +32)) and
 * nonce 0^4 || u64 LE (meta[M_COUNTER_LO], meta[M_COUNTER_HI]); the tag follows the ciphertext.
 * On success meta[M_RESULT] = 16+len+16 (the whole message, header included) and ok[i] = 1.
 * ok[i] = 0 (slot left alone) when s is outside data/meta, len < 0, 16+len+16 > slotBytes, or the
 * keypair id is outside keys. Returns the number sealed.
 */
export const sealSlots: SlotsFn = native.sealSlots;

/**
 * Open receive-ring slots in place. Slot s = slots[i]: a whole transport message at
 * data[s*slotBytes, +len), len = meta[M_LENGTH] (16-byte header, ciphertext, tag); the ciphertext
 * is decrypted with the receive key of keypair meta[M_KEYPAIR] (keys[kp*64+32, +32)) and the
 * counter in meta. On success the plaintext is at data[s*slotBytes+16, +len-32), meta[M_RESULT] =
 * len-32 and ok[i] = 1. ok[i] = 0 when the tag does not verify (the ciphertext area is then zeroed:
 * no unauthenticated plaintext is left), len < 32, len > slotBytes, s or the keypair id out of range.
 * Returns the number opened.
 */
export const openSlots: SlotsFn = native.openSlots;

/** Seal in place (transport.ts sealTransport): buf[off, off+len) → ciphertext, tag at buf[off+len, +16). Returns len+16; RangeError if that does not fit. */
export const seal: PacketFn = native.seal;

/** Open in place (transport.ts openTransport): ciphertext||tag at buf[off, off+len) → plaintext at buf[off, off+len-16), returns len-16; -1 if not authentic (buf unchanged). RangeError if out of bounds. */
export const open: PacketFn = native.open;
