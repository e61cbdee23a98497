// The receiver-index → keypair-id map in shared memory, so the UDP reader thread can tell which
// key opens a transport message without asking main (receive fast path, workers/udp-reader.ts).
// Main owns the engine's index table (src/protocol/indextable.ts) and mirrors into this map only
// the indices of keypairs that are installed in the key table: set() when a keypair is created,
// delete() when it retires. Any thread may lookup().
//
// Layout: Int32 words. Word 0 is a version (seqlock): main makes it odd before it changes the table
// and even again after; a reader reads the version, looks up, and reads the version again, retrying
// while it was odd or changed. Entries start at word 16 (own cache line): pairs (index, keyId), open
// addressing with linear probing from `index & mask` (indices are random u32s chosen by us, never
// 0; 0 marks an empty entry), deletion by backward shift (no tombstones, so probes stay short for
// the life of the process). Capacity is twice the key table's, so the load factor stays ≤ 1/2.
//
// A miss is always safe: the datagram goes to main's classify, which knows everything. A stale hit
// (the keypair retired after the lookup) is caught on main before anything is delivered (its key
// id no longer maps to that index, receive.ts) — and its key was zeroed only after every slot
// published before the retirement left the rings (Pipeline.retireKeys).

const VERSION = 0;
const BASE = 16;
/** Retries of a lookup that kept meeting a change in progress before it counts as a miss. */
const MAX_RETRIES = 1 << 16;

export class ReceiverIndexMap {
  readonly words: Int32Array;
  private readonly mask: number;
  private count = 0;

  private constructor(readonly buffer: SharedArrayBuffer) {
    this.words = new Int32Array(buffer);
    const entries = (this.words.length - BASE) >> 1;
    if (entries < 2 || (entries & (entries - 1)) !== 0) throw new RangeError(`index map of ${entries} entries: not a power of two`);
    this.mask = entries - 1;
  }

  /** Main: a map for up to `keypairs` live keypairs. */
  static create(keypairs: number): ReceiverIndexMap {
    let entries = 2;
    while (entries < 2 * keypairs) entries *= 2;
    return new ReceiverIndexMap(new SharedArrayBuffer((BASE + 2 * entries) * 4));
  }

  /** Another thread's view of the same map. */
  static attach(buffer: SharedArrayBuffer): ReceiverIndexMap {
    return new ReceiverIndexMap(buffer);
  }

  /** Any thread: the key id for receiver index `index` (u32), or -1. */
  lookup(index: number): number {
    const w = this.words;
    const mask = this.mask;
    const key = index | 0;
    if (key === 0) return -1;
    for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
      const v = Atomics.load(w, VERSION);
      if ((v & 1) !== 0) continue;
      let found = -1;
      for (let i = key & mask, n = 0; n <= mask; i = (i + 1) & mask, n++) {
        const k = Atomics.load(w, BASE + 2 * i);
        if (k === 0) break;
        if (k === key) {
          found = Atomics.load(w, BASE + 2 * i + 1);
          break;
        }
      }
      if (Atomics.load(w, VERSION) === v) return found;
    }
    return -1;
  }

  /** Main: map `index` to `keyId` (replacing an existing mapping). */
  set(index: number, keyId: number): void {
    const w = this.words;
    const key = index | 0;
    if (key === 0 || keyId < 0) throw new RangeError(`index map: bad entry ${index} → ${keyId}`);
    this.begin();
    let i = key & this.mask;
    for (;;) {
      const k = w[BASE + 2 * i]!;
      if (k === key || k === 0) {
        if (k === 0) {
          if (this.count + 1 > this.mask) {
            this.end();
            throw new RangeError('index map full');
          }
          this.count++;
        }
        Atomics.store(w, BASE + 2 * i + 1, keyId);
        Atomics.store(w, BASE + 2 * i, key);
        break;
      }
      i = (i + 1) & this.mask;
    }
    this.end();
  }

  /** Main: remove `index` (no-op if absent). */
  delete(index: number): void {
    const w = this.words;
    const mask = this.mask;
    const key = index | 0;
    if (key === 0) return;
    let i = key & mask;
    for (;;) {
      const k = w[BASE + 2 * i]!;
      if (k === 0) return;
      if (k === key) break;
      i = (i + 1) & mask;
    }
    this.begin();
    // Backward shift: pull later entries of the probe run into the hole when their home allows it.
    let hole = i;
    for (let j = (i + 1) & mask; ; j = (j + 1) & mask) {
      const k = w[BASE + 2 * j]!;
      if (k === 0) break;
      const home = k & mask;
      // Movable if its home is not in (hole, j] (cyclically).
      const inRange = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (inRange) continue;
      Atomics.store(w, BASE + 2 * hole + 1, w[BASE + 2 * j + 1]!);
      Atomics.store(w, BASE + 2 * hole, k);
      hole = j;
    }
    Atomics.store(w, BASE + 2 * hole, 0);
    Atomics.store(w, BASE + 2 * hole + 1, 0);
    this.count--;
    this.end();
  }

  get size(): number {
    return this.count;
  }

  private begin(): void {
    Atomics.add(this.words, VERSION, 1); // odd: a change is in progress
  }

  private end(): void {
    Atomics.add(this.words, VERSION, 1);
  }
}
