// Tests for src/crypto/native-aead.ts (native/aead.c): the single-packet seal/open against
// node:crypto's createCipheriv('chacha20-poly1305') with empty AAD (random keys, counters beyond
// 2^32, lengths 0..9216, both directions), sealSlots/openSlots on a SharedArrayBuffer ring with
// valid and invalid slots in random order (ok flags, M_RESULT, bytes identical to the single-packet
// functions, untouched invalid slots), misuse of the arguments (throws, never crashes), the layout
// check, one addon instance per worker thread, and the portable code that crypts batches of one or
// two (native/chacha20poly1305.c) against OpenSSL's. Set WIREPOOL_SEED to replay a run.

import t from 'tap';
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import {
  EXPECTED_LAYOUT, checkLayout, layout, open, openSlots, seal, sealSlots,
} from '../src/crypto/native-aead.js';
import {
  INNER_HEAD_BYTES, copyInnerHead, KEY_RECV_OFFSET, KEY_SEND_OFFSET, KEY_SLOT_BYTES, M_COUNTER_HI, M_COUNTER_LO, M_INNER_HEAD, M_KEYPAIR, M_LENGTH, M_RESULT, META_WORDS,
  SLOT_PAYLOAD_OFFSET, slotBytesFor,
} from '../src/dataplane/layout.js';
import { makePrng, type Prng, testSeed } from './helpers/seeded-prng.js';

const seed = testSeed();
t.comment(`WIREPOOL_SEED=${seed}`);
const at = (what: string): string => `${what} (WIREPOOL_SEED=${seed})`;

const toHex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

function nonceOf(lo: number, hi: number): Buffer {
  const n = Buffer.alloc(12);
  n.writeUInt32LE(lo >>> 0, 4);
  n.writeUInt32LE(hi >>> 0, 8);
  return n;
}

/** node:crypto seal with empty AAD: ciphertext || tag. */
function nodeSeal(key: Uint8Array, lo: number, hi: number, pt: Uint8Array): Uint8Array {
  const c = createCipheriv('chacha20-poly1305', key, nonceOf(lo, hi), { authTagLength: 16 });
  const ct = c.update(pt);
  c.final();
  return new Uint8Array(Buffer.concat([ct, c.getAuthTag()]));
}

/** node:crypto open with empty AAD, or null if not authentic. */
function nodeOpen(key: Uint8Array, lo: number, hi: number, msg: Uint8Array): Uint8Array | null {
  const d = createDecipheriv('chacha20-poly1305', key, nonceOf(lo, hi), { authTagLength: 16 });
  d.setAuthTag(msg.subarray(msg.length - 16));
  const pt = d.update(msg.subarray(0, msg.length - 16));
  try {
    d.final();
  } catch {
    return null;
  }
  return new Uint8Array(pt);
}

function randomCounter(rng: Prng, i: number): [number, number] {
  const edges: [number, number][] = [[0, 0], [1, 0], [0xffff_ffff, 0], [0, 1], [0xffff_ffff, 0xffff_ffff], [0x1234_5678, 0x8000_0000]];
  if (i < edges.length) return edges[i]!;
  const hi = rng.chance(0.5) ? 0 : rng.u32(); // half of them ≥ 2^32
  return [rng.u32(), hi];
}

function randomLength(rng: Prng, i: number): number {
  const edges = [0, 1, 15, 16, 17, 63, 64, 65, 255, 1420, 1500, 9215, 9216];
  if (i < edges.length) return edges[i]!;
  return rng.chance(0.7) ? rng.int(1501) : rng.int(9217);
}

t.test('layout() matches src/dataplane/layout.ts; checkLayout rejects a mismatch', async (t) => {
  const l = layout();
  t.same(l, EXPECTED_LAYOUT, 'compiled-in constants');
  t.same(l, {
    metaWords: 32, mLength: 1, mResult: 2, mKeypair: 4, mCounterLo: 5, mCounterHi: 6,
    keySlotBytes: 64, keySendOffset: 0, keyRecvOffset: 32, headerSize: 16, tagSize: 16, mInnerHead: 10, innerHeadBytes: 24,
  }, 'the documented values');
  t.doesNotThrow(() => checkLayout(l));
  for (const k of Object.keys(EXPECTED_LAYOUT) as (keyof typeof EXPECTED_LAYOUT)[]) {
    t.throws(() => checkLayout({ ...l, [k]: l[k] + 1 }), new RegExp(k), `mismatch in ${k} is caught`);
  }
});

t.test('seal/open agree with node:crypto (empty AAD), both directions', async (t) => {
  const rng = makePrng(seed ^ 0x1111);
  const mem = new Uint8Array(new SharedArrayBuffer(9216 + 16 + 256));
  const keyMem = new Uint8Array(new SharedArrayBuffer(100)); // the key as an offset SAB view, as in the key table
  const ROUNDS = 600;
  let checked = 0;
  for (let i = 0; i < ROUNDS; i++) {
    const key = keyMem.subarray(3 + (i % 7), 3 + (i % 7) + 32);
    key.set(rng.bytes(32));
    const [lo, hi] = randomCounter(rng, i);
    const len = randomLength(rng, i);
    const off = rng.int(mem.length - len - 16 - 2) + 1;
    const pt = rng.bytes(len);
    const ctx = `round ${i}: len ${len} counter ${hi}:${lo} off ${off}`;

    // native seal → node open, and byte-identical to node seal
    mem.fill(0xa5);
    mem.set(pt, off);
    const n = seal(key, lo, hi, mem, off, len);
    if (n !== len + 16) t.fail(at(`${ctx}: seal returned ${n}`));
    const sealed = mem.slice(off, off + n);
    const want = nodeSeal(key, lo, hi, pt);
    if (toHex(sealed) !== toHex(want)) t.fail(at(`${ctx}: native seal != node seal`));
    const back = nodeOpen(key, lo, hi, sealed);
    if (back === null || toHex(back) !== toHex(pt)) t.fail(at(`${ctx}: node cannot open the native seal`));
    if (mem[off - 1] !== 0xa5 || mem[off + n] !== 0xa5) t.fail(at(`${ctx}: seal wrote outside its range`));

    // node seal → native open
    mem.fill(0x5a);
    mem.set(want, off);
    const m = open(key, lo, hi, mem, off, want.length);
    if (m !== len) t.fail(at(`${ctx}: native open of node seal returned ${m}`));
    if (toHex(mem.subarray(off, off + len)) !== toHex(pt)) t.fail(at(`${ctx}: native open plaintext differs`));
    if (toHex(mem.subarray(off + len, off + n)) !== toHex(want.subarray(len))) t.fail(at(`${ctx}: open touched the tag`));
    if (mem[off - 1] !== 0x5a || mem[off + n] !== 0x5a) t.fail(at(`${ctx}: open wrote outside its range`));

    // wrong counter / key: -1, buffer unchanged
    mem.set(want, off);
    if (open(key, (lo + 1) >>> 0, hi, mem, off, n) !== -1) t.fail(at(`${ctx}: wrong counter accepted`));
    if (open(key, lo, (hi ^ 0x8000_0000) >>> 0, mem, off, n) !== -1) t.fail(at(`${ctx}: wrong counter hi accepted`));
    if (toHex(mem.subarray(off, off + n)) !== toHex(want)) t.fail(at(`${ctx}: failed open changed the buffer`));
    checked++;
  }
  t.equal(checked, ROUNDS, `${ROUNDS} random keys/counters/lengths agree with node:crypto`);
});

t.test('open: tampering anywhere is rejected and leaves the buffer byte-for-byte unchanged', async (t) => {
  const rng = makePrng(seed ^ 0x2222);
  const mem = new Uint8Array(new SharedArrayBuffer(2048));
  const key = rng.bytes(32);
  for (const len of [0, 1, 64, 200, 1420]) {
    const pt = rng.bytes(len);
    const sealed = nodeSeal(key, 7, 3, pt);
    const n = sealed.length;
    const bits = [0, 8 * (n - 1) + 7, 8 * len, 8 * (n - 16) - 1, rng.int(8 * n), rng.int(8 * n)].filter((b) => b >= 0 && b < 8 * n);
    for (const bit of bits) {
      mem.set(sealed, 100);
      mem[100 + (bit >> 3)]! ^= 1 << (bit & 7);
      const before = toHex(mem);
      t.equal(open(key, 7, 3, mem, 100, n), -1, at(`len ${len}: flipped bit ${bit} rejected`));
      t.equal(toHex(mem), before, `len ${len}: buffer unchanged`);
    }
    mem.set(sealed, 100);
    t.equal(open(key, 7, 3, mem, 100, n), len, `len ${len}: the intact message opens`);
  }
  t.equal(open(key, 0, 0, mem, 0, 15), -1, 'shorter than a tag: -1');
  t.equal(open(key, 0, 0, mem, 0, 0), -1, 'empty: -1');
});

// ---- batch --------------------------------------------------------------------------------------

const SLOTS = 64;
const SLOT_BYTES = slotBytesFor(1420); // 1472
const KEYPAIRS = 8;

interface Ring {
  data: Uint8Array;
  meta: Int32Array;
  keys: Uint8Array;
}

function makeRing(rng: Prng): Ring {
  const ring = {
    data: new Uint8Array(new SharedArrayBuffer(SLOTS * SLOT_BYTES)),
    meta: new Int32Array(new SharedArrayBuffer(SLOTS * META_WORDS * 4)),
    keys: new Uint8Array(new SharedArrayBuffer(KEYPAIRS * KEY_SLOT_BYTES)),
  };
  ring.keys.set(rng.bytes(ring.keys.length));
  return ring;
}
const sendKey = (r: Ring, kp: number): Uint8Array => r.keys.subarray(kp * KEY_SLOT_BYTES + KEY_SEND_OFFSET, kp * KEY_SLOT_BYTES + KEY_SEND_OFFSET + 32);
const recvKey = (r: Ring, kp: number): Uint8Array => r.keys.subarray(kp * KEY_SLOT_BYTES + KEY_RECV_OFFSET, kp * KEY_SLOT_BYTES + KEY_RECV_OFFSET + 32);
const slotData = (r: Ring, s: number): Uint8Array => r.data.subarray(s * SLOT_BYTES, (s + 1) * SLOT_BYTES);

function shuffled(rng: Prng, n: number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

const SENTINEL = -12345;

t.test('sealSlots then openSlots on a SAB ring: ok flags, M_RESULT, bytes as the single-packet functions', async (t) => {
  const rng = makePrng(seed ^ 0x3333);
  for (let round = 0; round < 8; round++) {
    const ring = makeRing(rng);
    const order = shuffled(rng, SLOTS);
    // Per list entry: the slot (possibly outside the ring) and whether sealing must succeed.
    type SealCase = 'ok' | 'kp-neg' | 'kp-big' | 'len-neg' | 'len-big' | 'slot-neg' | 'slot-big';
    const cases: SealCase[] = ['ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'kp-neg', 'kp-big', 'len-neg', 'len-big', 'slot-neg', 'slot-big'];
    const list: number[] = [];
    const kinds: SealCase[] = [];
    const plain = new Map<number, Uint8Array>();
    for (const s of order) {
      const kind = round === 0 ? 'ok' : rng.pick(cases);
      const m = s * META_WORDS;
      const maxPlain = SLOT_BYTES - 32;
      const len = kind === 'len-neg' ? -1 - rng.int(100) : kind === 'len-big' ? maxPlain + 1 + (rng.chance(0.5) ? 0 : rng.int(100)) : rng.chance(0.1) ? maxPlain : rng.int(maxPlain + 1);
      const kp = kind === 'kp-neg' ? -1 : kind === 'kp-big' ? KEYPAIRS + rng.int(3) : rng.int(KEYPAIRS);
      ring.meta[m + M_LENGTH] = len;
      ring.meta[m + M_KEYPAIR] = kp;
      ring.meta[m + M_COUNTER_LO] = rng.u32() | 0;
      ring.meta[m + M_COUNTER_HI] = rng.chance(0.5) ? 0 : rng.u32() | 0;
      ring.meta[m + M_RESULT] = SENTINEL;
      slotData(ring, s).set(rng.bytes(SLOT_BYTES));
      if (kind === 'ok') plain.set(s, slotData(ring, s).slice(SLOT_PAYLOAD_OFFSET, SLOT_PAYLOAD_OFFSET + len));
      list.push(kind === 'slot-neg' ? -1 - rng.int(5) : kind === 'slot-big' ? SLOTS + rng.int(5) : s);
      kinds.push(kind);
    }
    const n = list.length;
    const slots = new Int32Array(new SharedArrayBuffer((n + 3) * 4));
    slots.set(list);
    const ok = new Uint8Array(n + 3).fill(7);
    const before = ring.data.slice();
    const metaBefore = ring.meta.slice();

    const sealed = sealSlots(ring.data, SLOT_BYTES, ring.meta, ring.keys, slots, n, ok);
    const expectOk = kinds.map((k) => (k === 'ok' ? 1 : 0));
    t.same([...ok.subarray(0, n)], expectOk, at(`round ${round}: seal ok flags`));
    t.same([...ok.subarray(n)], [7, 7, 7], 'ok beyond n untouched');
    t.equal(sealed, expectOk.filter((x) => x === 1).length, 'returns the number sealed');

    // Each ring slot: sealed exactly as seal() does it on a copy, or untouched (M_RESULT included).
    let mismatches = 0;
    for (let s = 0; s < SLOTS; s++) {
      const m = s * META_WORDS;
      const got = slotData(ring, s);
      const orig = before.subarray(s * SLOT_BYTES, (s + 1) * SLOT_BYTES);
      if (!plain.has(s)) {
        if (toHex(got) !== toHex(orig) || ring.meta[m + M_RESULT] !== SENTINEL) mismatches++;
        continue;
      }
      const len = ring.meta[m + M_LENGTH]!;
      const ref = orig.slice();
      const r = seal(sendKey(ring, ring.meta[m + M_KEYPAIR]!), ring.meta[m + M_COUNTER_LO]!, ring.meta[m + M_COUNTER_HI]!, ref, SLOT_PAYLOAD_OFFSET, len);
      if (toHex(got) !== toHex(ref)) mismatches++; // header and the bytes after the tag included
      if (ring.meta[m + M_RESULT] !== SLOT_PAYLOAD_OFFSET + r) mismatches++;
      if (toHex(nodeOpen(sendKey(ring, ring.meta[m + M_KEYPAIR]!), ring.meta[m + M_COUNTER_LO]!, ring.meta[m + M_COUNTER_HI]!, got.subarray(16, 16 + r)) ?? new Uint8Array(1)) !== toHex(plain.get(s)!)) mismatches++;
    }
    t.equal(mismatches, 0, at(`round ${round}: sealed slots equal seal(), invalid slots untouched`));
    // Only M_RESULT of the sealed slots changed in meta.
    let metaDiffs = 0;
    for (let w = 0; w < ring.meta.length; w++) {
      if (ring.meta[w] !== metaBefore[w] && w % META_WORDS !== M_RESULT) metaDiffs++;
    }
    t.equal(metaDiffs, 0, 'sealSlots writes no meta word but M_RESULT');

    // Open the sealed slots (in a new random order), with some made invalid or tampered.
    type OpenCase = 'ok' | 'tag' | 'ct' | 'header-ok' | 'wrong-kp' | 'counter' | 'short' | 'long' | 'kp-big' | 'tail-ok';
    const openCases: OpenCase[] = ['ok', 'ok', 'ok', 'ok', 'header-ok', 'tail-ok', 'tag', 'ct', 'wrong-kp', 'counter', 'short', 'long', 'kp-big'];
    const olist: number[] = [];
    const okinds: OpenCase[] = [];
    for (const s of shuffled(rng, SLOTS)) {
      if (!plain.has(s)) continue;
      const m = s * META_WORDS;
      const d = slotData(ring, s);
      const msgLen = ring.meta[m + M_RESULT]!;
      let kind = round === 0 ? 'ok' : rng.pick(openCases);
      if (kind === 'ct' && msgLen === 32) kind = 'tag'; // no ciphertext to flip
      ring.meta[m + M_LENGTH] = msgLen;
      ring.meta[m + M_RESULT] = SENTINEL;
      // The sender's keys as our receive keys: copy the send key of kp into the receive half.
      const kp = ring.meta[m + M_KEYPAIR]!;
      recvKey(ring, kp).set(sendKey(ring, kp));
      if (kind === 'tag') d[msgLen - 1 - rng.int(16)]! ^= 1 << rng.int(8);
      if (kind === 'ct') d[16 + rng.int(msgLen - 32)]! ^= 1 << rng.int(8);
      if (kind === 'header-ok') d[rng.int(16)]! ^= 0xff; // the header is not authenticated data here
      if (kind === 'tail-ok' && msgLen < SLOT_BYTES) d[msgLen]! ^= 0xff; // bytes after the message are ignored
      if (kind === 'wrong-kp') ring.meta[m + M_KEYPAIR] = (kp + 1) % KEYPAIRS;
      if (kind === 'counter') ring.meta[m + M_COUNTER_HI] = ring.meta[m + M_COUNTER_HI]! ^ 1;
      if (kind === 'short') ring.meta[m + M_LENGTH] = rng.int(32);
      if (kind === 'long') ring.meta[m + M_LENGTH] = SLOT_BYTES + 1 + (rng.chance(0.5) ? 0 : rng.int(100));
      if (kind === 'kp-big') ring.meta[m + M_KEYPAIR] = rng.chance(0.5) ? -1 - rng.int(3) : KEYPAIRS + rng.int(3);
      ring.meta.fill(0x5a5a5a5a, m + M_INNER_HEAD, m + M_INNER_HEAD + INNER_HEAD_BYTES / 4);
      olist.push(s);
      okinds.push(kind);
    }
    // Keys must differ per keypair for 'wrong-kp' to fail: they are random, so they do.
    const on = olist.length;
    const oslots = Int32Array.from(olist);
    const ook = new Uint8Array(on);
    const beforeOpen = ring.data.slice();
    const opened = openSlots(ring.data, SLOT_BYTES, ring.meta, ring.keys, oslots, on, ook);
    const oexpect = okinds.map((k) => (k === 'ok' || k === 'header-ok' || k === 'tail-ok' ? 1 : 0));
    t.same([...ook], oexpect, at(`round ${round}: open ok flags`));
    t.equal(opened, oexpect.filter((x) => x === 1).length, 'returns the number opened');
    let bad = 0;
    for (let i = 0; i < on; i++) {
      const s = olist[i]!;
      const m = s * META_WORDS;
      const d = slotData(ring, s);
      const orig = beforeOpen.subarray(s * SLOT_BYTES, (s + 1) * SLOT_BYTES);
      const len = ring.meta[m + M_LENGTH]!;
      const pt = plain.get(s)!;
      if (oexpect[i] === 1) {
        if (ring.meta[m + M_RESULT] !== len - 32 || len - 32 !== pt.length) bad++;
        if (toHex(d.subarray(16, 16 + pt.length)) !== toHex(pt)) bad++;
        // header, tag and the rest of the slot untouched; and equal to open() on a copy
        if (toHex(d.subarray(0, 16)) !== toHex(orig.subarray(0, 16)) || toHex(d.subarray(len - 16)) !== toHex(orig.subarray(len - 16))) bad++;
        const ref = orig.slice();
        const kp = ring.meta[m + M_KEYPAIR]!;
        if (open(recvKey(ring, kp), ring.meta[m + M_COUNTER_LO]!, ring.meta[m + M_COUNTER_HI]!, ref, 16, len - 16) !== pt.length || toHex(ref) !== toHex(d)) bad++;
        // the plaintext's first bytes copied into the meta line, zero past its end
        const head = new Uint8Array(INNER_HEAD_BYTES);
        head.set(pt.subarray(0, INNER_HEAD_BYTES));
        if (toHex(metaHead(ring.meta, m)) !== toHex(head)) bad++;
        // the per-packet crypto modules' twin (crypt-worker openStep) copies the same bytes
        const twin = new Int32Array(META_WORDS).fill(-1);
        copyInnerHead(d, 16, pt.length, new Uint8Array(twin.buffer), 0);
        if (toHex(metaHead(twin, 0)) !== toHex(head)) bad++;
      } else {
        if (ring.meta[m + M_RESULT] !== SENTINEL) bad++;
        if (metaHead(ring.meta, m).some((b) => b !== 0x5a)) bad++; // no head copied
        const k = okinds[i]!;
        if (k === 'tag' || k === 'ct' || k === 'wrong-kp' || k === 'counter') {
          // authentication failed after decryption: the ciphertext area is wiped, header and tag stay
          if (d.subarray(16, len - 16).some((b) => b !== 0)) bad++;
          if (toHex(d.subarray(0, 16)) !== toHex(orig.subarray(0, 16)) || toHex(d.subarray(len - 16)) !== toHex(orig.subarray(len - 16))) bad++;
        } else if (toHex(d) !== toHex(orig)) {
          bad++; // rejected before decryption: untouched
        }
      }
    }
    t.equal(bad, 0, at(`round ${round}: opened slots hold the plaintext and its head in meta, rejected ones no plaintext`));
  }
});

/** The M_INNER_HEAD bytes of slot meta m. */
function metaHead(meta: Int32Array, m: number): Uint8Array {
  return new Uint8Array(meta.buffer, meta.byteOffset + (m + M_INNER_HEAD) * 4, INNER_HEAD_BYTES);
}

// Batches of one or two messages are crypted by the portable code (native/chacha20poly1305.c) when
// they come more than 1 ms after the thread's previous call (cold), and their messages under 128
// bytes always; everything else by OpenSSL (aead.c portable_max). The same slots through both must
// give the same bytes, each must open what the other sealed, and each must refuse a forgery and
// wipe it. Every other round waits > 1 ms before each small batch, so its large messages too take
// the portable code.
/** Let more than 1 ms pass on the monotonic clock (aead.c COLD_NS): the next call is a cold one. */
async function coldGap(): Promise<void> {
  const start = performance.now();
  while (performance.now() - start <= 1.5) await new Promise((resolve) => setTimeout(resolve, 1));
}

t.test('small batches (portable code) and large ones (OpenSSL) seal and open identically', async (t) => {
  const rng = makePrng(seed ^ 0x5555);
  const a = makeRing(rng);
  const b = makeRing(rng);
  b.keys.set(a.keys);
  const maxPlain = SLOT_BYTES - 32;
  const ok = new Uint8Array(SLOTS);
  let sealDiffs = 0;
  let crossOpenFails = 0;
  let forgeriesOpened = 0;
  let forgeriesNotWiped = 0;
  let cases = 0;
  for (let round = 0; round < 40; round++) {
    // Slots 0..3 of a: each its own batch of one or two (portable); b: all four in one (OpenSSL).
    for (let s = 0; s < 4; s++) {
      const m = s * META_WORDS;
      const [lo, hi] = randomCounter(rng, round * 4 + s);
      const len = round === 0 ? [0, 1, 16, maxPlain][s]! : rng.chance(0.5) ? rng.int(200) : rng.int(maxPlain + 1);
      for (const r of [a, b]) {
        r.meta[m + M_LENGTH] = len;
        r.meta[m + M_KEYPAIR] = (round + s) % KEYPAIRS;
        r.meta[m + M_COUNTER_LO] = lo | 0;
        r.meta[m + M_COUNTER_HI] = hi | 0;
      }
      const bytes = rng.bytes(SLOT_BYTES);
      slotData(a, s).set(bytes);
      slotData(b, s).set(bytes);
    }
    const cold = round % 2 === 1;
    let sealedSmall = 0;
    for (const batch of [[0], [1, 2], [3]]) {
      if (cold) await coldGap();
      sealedSmall += sealSlots(a.data, SLOT_BYTES, a.meta, a.keys, Int32Array.from(batch), batch.length, ok);
    }
    t.equal(sealedSmall, 4);
    t.equal(sealSlots(b.data, SLOT_BYTES, b.meta, b.keys, Int32Array.of(0, 1, 2, 3), 4, ok), 4);
    for (let s = 0; s < 4; s++) {
      cases++;
      if (toHex(slotData(a, s)) !== toHex(slotData(b, s)) || a.meta[s * META_WORDS + M_RESULT] !== b.meta[s * META_WORDS + M_RESULT]) sealDiffs++;
    }
    // Open: receive key = send key; a's messages by OpenSSL (batch of 4), b's one at a time (portable).
    for (const r of [a, b]) {
      r.keys.copyWithin(KEY_RECV_OFFSET, KEY_SEND_OFFSET, KEY_SEND_OFFSET + 32);
      for (let kp = 1; kp < KEYPAIRS; kp++) r.keys.copyWithin(kp * KEY_SLOT_BYTES + KEY_RECV_OFFSET, kp * KEY_SLOT_BYTES + KEY_SEND_OFFSET, kp * KEY_SLOT_BYTES + KEY_SEND_OFFSET + 32);
      for (let s = 0; s < 4; s++) r.meta[s * META_WORDS + M_LENGTH] = r.meta[s * META_WORDS + M_RESULT]!;
    }
    // Slot 3 of each is forged: one bit of its tag, or of its ciphertext, flipped.
    const len3 = a.meta[3 * META_WORDS + M_LENGTH]!;
    const flip = len3 > 32 && rng.chance(0.5) ? 16 + rng.int(len3 - 32) : len3 - 1 - rng.int(16);
    for (const r of [a, b]) slotData(r, 3)[flip] ^= 1 << rng.int(8);
    const sealedA = [0, 1, 2].map((s) => slotData(a, s).slice());
    t.equal(openSlots(a.data, SLOT_BYTES, a.meta, a.keys, Int32Array.of(0, 1, 2, 3), 4, ok), 3);
    const okB: number[] = [];
    for (let s = 0; s < 4; s++) {
      if (cold) await coldGap();
      openSlots(b.data, SLOT_BYTES, b.meta, b.keys, Int32Array.of(s), 1, ok);
      okB.push(ok[0]!);
    }
    if (okB[3] !== 0) forgeriesOpened++;
    for (let s = 0; s < 3; s++) {
      const decrypted = a.meta[s * META_WORDS + M_RESULT] === 0 || toHex(slotData(a, s)) !== toHex(sealedA[s]!); // a keepalive has nothing to decrypt
      if (okB[s] !== 1 || toHex(slotData(a, s)) !== toHex(slotData(b, s)) || !decrypted) crossOpenFails++;
      const head = (r: Ring): string => r.meta.subarray(s * META_WORDS + M_INNER_HEAD, s * META_WORDS + M_INNER_HEAD + INNER_HEAD_BYTES / 4).join();
      if (head(a) !== head(b)) crossOpenFails++;
    }
    const plain3 = len3 - 32;
    if (slotData(b, 3).subarray(16, 16 + plain3).some((x) => x !== 0)) forgeriesNotWiped++;
    if (toHex(slotData(a, 3).subarray(16, 16 + plain3)) !== toHex(slotData(b, 3).subarray(16, 16 + plain3))) forgeriesNotWiped++;
  }
  t.equal(sealDiffs, 0, at(`${cases} messages: the portable seal and OpenSSL's are byte-identical (header, tag and slot tail included)`));
  t.equal(crossOpenFails, 0, at('each opens what the other sealed, to the same plaintext and inner-header copy'));
  t.equal(forgeriesOpened, 0, at('a flipped bit in the tag or ciphertext is refused by the portable open'));
  t.equal(forgeriesNotWiped, 0, at('and the refused ciphertext is wiped, as OpenSSL\'s path does'));
});

t.test('sealSlots/openSlots: n = 0, n < slots.length, keepalives, partial slots', async (t) => {
  const rng = makePrng(seed ^ 0x4444);
  const ring = makeRing(rng);
  const ok = new Uint8Array(4);
  t.equal(sealSlots(ring.data, SLOT_BYTES, ring.meta, ring.keys, new Int32Array(0), 0, new Uint8Array(0)), 0, 'n = 0 on empty lists');
  const before = ring.data.slice();
  t.equal(sealSlots(ring.data, SLOT_BYTES, ring.meta, ring.keys, Int32Array.of(0, 1, 2, 3), 0, ok), 0, 'n = 0');
  t.equal(toHex(ring.data), toHex(before), 'nothing touched');
  ring.meta[1 * META_WORDS + M_LENGTH] = 100;
  t.equal(sealSlots(ring.data, SLOT_BYTES, ring.meta, ring.keys, Int32Array.of(1, 2, 3, 4), 1, ok), 1, 'only the first n');
  t.equal(toHex(ring.data.subarray(2 * SLOT_BYTES)), toHex(before.subarray(2 * SLOT_BYTES)), 'slots after n untouched');
  // A keepalive: empty plaintext, 32-byte message, and back.
  ring.meta[5 * META_WORDS + M_LENGTH] = 0;
  t.equal(sealSlots(ring.data, SLOT_BYTES, ring.meta, ring.keys, Int32Array.of(5), 1, ok), 1);
  t.equal(ring.meta[5 * META_WORDS + M_RESULT], 32, 'keepalive message is 32 bytes');
  ring.keys.copyWithin(KEY_RECV_OFFSET, KEY_SEND_OFFSET, KEY_SEND_OFFSET + 32);
  ring.meta[5 * META_WORDS + M_LENGTH] = 32;
  t.equal(openSlots(ring.data, SLOT_BYTES, ring.meta, ring.keys, Int32Array.of(5), 1, ok), 1, 'keepalive opens');
  t.equal(ring.meta[5 * META_WORDS + M_RESULT], 0, 'empty plaintext');
  // A data array that is not a whole number of slots: the partial last slot is out of range.
  const short = ring.data.subarray(0, 3 * SLOT_BYTES - 1);
  ring.meta[2 * META_WORDS + M_LENGTH] = 10;
  t.equal(sealSlots(short, SLOT_BYTES, ring.meta, ring.keys, Int32Array.of(2, 1), 2, ok), 1);
  t.same([...ok.subarray(0, 2)], [0, 1], 'partial slot rejected, full slot sealed');
});

t.test('misuse throws TypeError/RangeError and never crashes', async (t) => {
  const rng = makePrng(seed ^ 0x5555);
  const ring = makeRing(rng);
  const slots = Int32Array.of(0, 1);
  const ok = new Uint8Array(2);
  const args = (): unknown[] => [ring.data, SLOT_BYTES, ring.meta, ring.keys, slots, 2, ok];
  type Any = (...a: unknown[]) => number;
  for (const [name, fn] of [['sealSlots', sealSlots], ['openSlots', openSlots]] as [string, Any][]) {
    const bad: [number, unknown, ErrorConstructor][] = [
      [0, [1, 2, 3], TypeError],
      [0, new Int8Array(10), TypeError],
      [0, null, TypeError],
      [1, '1472', TypeError],
      [1, 0, RangeError],
      [1, -1, RangeError],
      [1, 1.5, RangeError],
      [1, NaN, RangeError],
      [1, 2 ** 31, RangeError],
      [2, new Uint32Array(SLOTS * META_WORDS), TypeError],
      [2, ring.data, TypeError],
      [3, new Int32Array(16), TypeError],
      [3, {}, TypeError],
      [4, [0, 1], TypeError],
      [4, new Uint32Array(2), TypeError],
      [5, 3, RangeError],
      [5, -1, RangeError],
      [5, 0.5, RangeError],
      [5, undefined, TypeError],
      [6, new Uint8Array(1), RangeError],
      [6, new Int32Array(2), TypeError],
    ];
    for (const [i, v, E] of bad) {
      const a = args();
      a[i] = v;
      t.throws(() => fn(...a), E, `${name}: argument ${i} = ${Object.prototype.toString.call(v)} ${String(v).slice(0, 20)}`);
    }
    t.throws(() => fn(ring.data, SLOT_BYTES, ring.meta), TypeError, `${name}: too few arguments`);
    t.throws(() => fn(), TypeError, `${name}: no arguments`);
    // Slots outside data or meta are not misuse of the call: they fail individually.
    ok.fill(9);
    t.equal(fn(ring.data, SLOT_BYTES, ring.meta, ring.keys, Int32Array.of(SLOTS, -1), 2, ok), 0, `${name}: slots outside the ring`);
    t.same([...ok], [0, 0], `${name}: both flagged 0`);
    t.equal(fn(ring.data, SLOT_BYTES, ring.meta.subarray(0, META_WORDS), ring.keys, Int32Array.of(1, 0x7fff_ffff), 2, ok), 0, `${name}: slot outside meta`);
    t.equal(fn(ring.data, 0x7fff_ffff, ring.meta, ring.keys, Int32Array.of(0), 1, ok), 0, `${name}: slotBytes larger than data`);
    // A detached data buffer reads as empty: everything out of range.
    const ab = new ArrayBuffer(4 * SLOT_BYTES);
    const data = new Uint8Array(ab);
    structuredClone(ab, { transfer: [ab] });
    t.equal(data.length, 0, 'detached');
    t.equal(fn(data, SLOT_BYTES, ring.meta, ring.keys, Int32Array.of(0, 1), 2, ok), 0, `${name}: detached data`);
  }

  const key = rng.bytes(32);
  const buf = new Uint8Array(new SharedArrayBuffer(256));
  for (const [name, fn] of [['seal', seal], ['open', open]] as [string, Any][]) {
    t.throws(() => fn(key.subarray(0, 31), 0, 0, buf, 0, 10), RangeError, `${name}: 31-byte key`);
    t.throws(() => fn(new Uint8Array(33), 0, 0, buf, 0, 10), RangeError, `${name}: 33-byte key`);
    t.throws(() => fn([...key], 0, 0, buf, 0, 10), TypeError, `${name}: key as array`);
    t.throws(() => fn(key, '0', 0, buf, 0, 10), TypeError, `${name}: counterLo as string`);
    t.throws(() => fn(key, 0, 0n, buf, 0, 10), TypeError, `${name}: counterHi as bigint`);
    t.throws(() => fn(key, 0, 0, Buffer.from('x').toString(), 0, 10), TypeError, `${name}: buf as string`);
    t.throws(() => fn(key, 0, 0, new Uint16Array(128), 0, 10), TypeError, `${name}: buf as Uint16Array`);
    t.throws(() => fn(key, 0, 0, buf, -1, 10), RangeError, `${name}: negative off`);
    t.throws(() => fn(key, 0, 0, buf, 0, -1), RangeError, `${name}: negative len`);
    t.throws(() => fn(key, 0, 0, buf, 1.5, 10), RangeError, `${name}: fractional off`);
    t.throws(() => fn(key, 0, 0, buf, 2 ** 40, 10), RangeError, `${name}: huge off`);
    t.throws(() => fn(key, 0, 0, buf, 0, 2 ** 31), RangeError, `${name}: huge len`);
    t.throws(() => fn(key, 0, 0, buf, 250, 10), RangeError, `${name}: past the end`);
    t.throws(() => fn(key, 0, 0, buf), TypeError, `${name}: too few arguments`);
  }
  t.throws(() => seal(key, 0, 0, buf, 256 - 20, 10), RangeError, 'seal: no room for the tag');
  t.throws(() => seal(key, 0, 0, buf, 256 - 25, 10), RangeError, 'seal: one byte short for the tag');
  t.throws(() => open(key, 0, 0, buf, 256 - 25, 26), RangeError, 'open: one byte past the end');
  t.equal(seal(key, 0, 0, buf, 256 - 26, 10), 26, 'seal: exactly fits');
  t.equal(open(key, 0, 0, buf, 256 - 26, 26), 10, 'open: exactly fits');
  t.throws(() => open(key, 0, 0, buf, 250, 7), RangeError, 'open: past the end');
  const ab = new ArrayBuffer(64);
  const detached = new Uint8Array(ab);
  structuredClone(ab, { transfer: [ab] });
  t.throws(() => seal(key, 0, 0, detached, 0, 10), RangeError, 'seal: detached buffer');
  t.equal(open(key, 0, 0, detached, 0, 0), -1, 'open: detached buffer, empty range');
  t.pass('still alive');
});

t.test('one addon instance per worker thread; concurrent use, and workers exiting', async (t) => {
  const url = new URL('../src/crypto/native-aead.js', import.meta.url).href;
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    import(${JSON.stringify(url)}).then(({ seal, open }) => {
      const key = new Uint8Array(32).fill(workerData.id + 1);
      const buf = new Uint8Array(new SharedArrayBuffer(2048));
      let fails = 0;
      for (let i = 0; i < 20000; i++) {
        const len = i % 1500;
        for (let j = 0; j < len; j++) buf[j] = (i + j) & 0xff;
        const n = seal(key, i, workerData.id, buf, 0, len);
        if (open(key, i, workerData.id, buf, 0, n) !== len) fails++;
        for (let j = 0; j < len; j += 97) if (buf[j] !== ((i + j) & 0xff)) { fails++; break; }
      }
      // what this thread sealed last, for the main thread to check
      const n = seal(key, 42, workerData.id, buf, 0, 100);
      parentPort.postMessage({ fails, sealed: buf.slice(0, n) });
    });
  `;
  const results = await Promise.all([0, 1, 2, 3].map((id) => new Promise<{ fails: number; sealed: Uint8Array }>((resolve, reject) => {
    const w = new Worker(code, { eval: true, workerData: { id } });
    let got: { fails: number; sealed: Uint8Array } | undefined;
    w.once('message', (m) => { got = m as { fails: number; sealed: Uint8Array }; });
    w.once('error', reject);
    w.once('exit', (code) => (got !== undefined ? resolve(got) : reject(new Error(`worker ${id} exited ${code} without a result`))));
  })));
  for (const [id, r] of results.entries()) {
    t.equal(r.fails, 0, `worker ${id}: 20000 round trips`);
    const pt = new Uint8Array(100);
    for (let j = 0; j < 100; j++) pt[j] = (19999 + j) & 0xff;
    t.equal(toHex(r.sealed), toHex(nodeSeal(new Uint8Array(32).fill(id + 1), 42, id, pt)), `worker ${id}: its seal matches node:crypto`);
  }
  // The workers have exited (their instances finalized); this thread's instance still works.
  const key = new Uint8Array(32).fill(9);
  const buf = new Uint8Array(64);
  t.equal(seal(key, 1, 2, buf, 0, 10), 26);
  t.equal(open(key, 1, 2, buf, 0, 26), 10, 'main thread instance unaffected');
});
