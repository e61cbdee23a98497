// Exact-match index of full-length keys (IPv4 /32 or IPv6 /128 host routes) to
// trie node ids, used by allowedips.ts to answer the commonest lookup (a host route)
// in one or two probes instead of a ~17-step trie walk that misses cache on every
// step with 100k prefixes. A host route is the longest possible prefix, so an exact
// hit is the longest-prefix match.
//
// Open addressing with linear probing over typed arrays: keys (1 or 4 int32 words
// per slot), values (node id, -1 = empty slot), load factor ≤ 1/2, capacity doubles
// when needed; deletion shifts later entries back (no tombstones). get* allocate
// nothing. Keys come from configuration, not from the network; the hash is a fixed
// multiplicative mix (Fibonacci hashing on the top bits).

const EMPTY = -1;
const MIN_CAPACITY = 16;

export class HostIndex {
  private keys: Int32Array;
  private vals: Int32Array;
  private capacity = MIN_CAPACITY;
  private shift = 32 - Math.log2(MIN_CAPACITY);
  private count = 0;

  /** words: 1 for IPv4 keys, 4 for IPv6 keys. */
  constructor(readonly words: 1 | 4) {
    this.keys = new Int32Array(MIN_CAPACITY * words);
    this.vals = new Int32Array(MIN_CAPACITY).fill(EMPTY);
  }

  get size(): number {
    return this.count;
  }

  clear(): void {
    this.capacity = MIN_CAPACITY;
    this.shift = 32 - Math.log2(MIN_CAPACITY);
    this.keys = new Int32Array(MIN_CAPACITY * this.words);
    this.vals = new Int32Array(MIN_CAPACITY).fill(EMPTY);
    this.count = 0;
  }

  /** Value stored for the IPv4 key a (int32), or -1. Only for words = 1. */
  getV4(a: number): number {
    const mask = this.capacity - 1;
    const keys = this.keys;
    const vals = this.vals;
    let i = Math.imul(a, 0x9e3779b1) >>> this.shift;
    for (;;) {
      const v = vals[i]!;
      if (v === EMPTY || keys[i] === a) return v;
      i = (i + 1) & mask;
    }
  }

  /** Value stored for the IPv6 key a0..a3 (int32 words), or -1. Only for words = 4. */
  getV6(a0: number, a1: number, a2: number, a3: number): number {
    const mask = this.capacity - 1;
    const keys = this.keys;
    const vals = this.vals;
    let i = hash6(a0, a1, a2, a3) >>> this.shift;
    for (;;) {
      const v = vals[i]!;
      if (v === EMPTY) return EMPTY;
      const b = 4 * i;
      if (keys[b] === a0 && keys[b + 1] === a1 && keys[b + 2] === a2 && keys[b + 3] === a3) return v;
      i = (i + 1) & mask;
    }
  }

  /** Insert or overwrite key k (words int32 words) → v (v ≥ 0). */
  set(k: Int32Array, v: number): void {
    if (v < 0) throw new RangeError('HostIndex values must be non-negative');
    let i = this.find(k);
    if (i >= 0) {
      this.vals[i] = v;
      return;
    }
    if (2 * (this.count + 1) > this.capacity) this.resize(this.capacity * 2);
    i = this.home(k, 0);
    const mask = this.capacity - 1;
    while (this.vals[i] !== EMPTY) i = (i + 1) & mask;
    this.keys.set(k.subarray(0, this.words), i * this.words);
    this.vals[i] = v;
    this.count++;
  }

  /** Remove key k; returns whether it was present. */
  delete(k: Int32Array): boolean {
    let i = this.find(k);
    if (i < 0) return false;
    const mask = this.capacity - 1;
    const W = this.words;
    // Backward-shift deletion: move later members of the probe run into the hole
    // unless their home slot lies cyclically in (hole, j].
    for (let j = (i + 1) & mask; this.vals[j] !== EMPTY; j = (j + 1) & mask) {
      const h = this.home(this.keys, j * W);
      const stays = i <= j ? i < h && h <= j : i < h || h <= j;
      if (stays) continue;
      this.keys.copyWithin(i * W, j * W, j * W + W);
      this.vals[i] = this.vals[j]!;
      i = j;
    }
    this.vals[i] = EMPTY;
    this.count--;
    return true;
  }

  /** Slot holding key k, or -1. */
  private find(k: Int32Array): number {
    const mask = this.capacity - 1;
    const W = this.words;
    for (let i = this.home(k, 0); this.vals[i] !== EMPTY; i = (i + 1) & mask) {
      let same = true;
      for (let w = 0; w < W && same; w++) same = this.keys[i * W + w] === k[w];
      if (same) return i;
    }
    return -1;
  }

  /** Home slot of the key stored at src[o .. o+words). */
  private home(src: Int32Array, o: number): number {
    const h = this.words === 1
      ? Math.imul(src[o]!, 0x9e3779b1)
      : hash6(src[o]!, src[o + 1]!, src[o + 2]!, src[o + 3]!);
    return h >>> this.shift;
  }

  private resize(capacity: number): void {
    const oldKeys = this.keys;
    const oldVals = this.vals;
    const W = this.words;
    this.capacity = capacity;
    this.shift = 32 - Math.log2(capacity);
    this.keys = new Int32Array(capacity * W);
    this.vals = new Int32Array(capacity).fill(EMPTY);
    const mask = capacity - 1;
    for (let s = 0; s < oldVals.length; s++) {
      if (oldVals[s] === EMPTY) continue;
      let i = this.home(oldKeys, s * W);
      while (this.vals[i] !== EMPTY) i = (i + 1) & mask;
      this.keys.set(oldKeys.subarray(s * W, s * W + W), i * W);
      this.vals[i] = oldVals[s]!;
    }
  }
}

/** 32-bit mix of four words; the top bits are used as the slot. */
function hash6(a0: number, a1: number, a2: number, a3: number): number {
  let h = Math.imul(a0, 0x85ebca6b) ^ Math.imul(a1, 0xc2b2ae35) ^ Math.imul(a2, 0x27d4eb2f) ^ Math.imul(a3, 0x165667b1);
  h ^= h >>> 15;
  return Math.imul(h, 0x9e3779b1);
}
