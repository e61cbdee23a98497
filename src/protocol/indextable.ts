// Device-wide receiver-index table (the WireGuard paper's handshake messages): maps the
// random u32 sender/receiver indices of handshake and transport messages to their
// owner (a pending handshake, later re-pointed to the keypair derived from it).
// Randomness is injected; allocation retries until it draws a non-zero unused index.
// Not safe for concurrent use.

/**
 * Draws before allocate() gives up. With a uniform u32 source and any realistic
 * table (≤ 2^20 peers × 4 indices) the chance of even 10 collisions in a row is
 * below 1e-20, so hitting this means the random source is broken.
 */
export const INDEX_MAX_ATTEMPTS = 1 << 20;

export class IndexTable<V> {
  private readonly table = new Map<number, V>();

  /** random32 returns a uniformly random u32; its result is taken modulo 2^32 (x >>> 0), so a signed int32 source works too. */
  constructor(private readonly random32: () => number) {}

  get size(): number {
    return this.table.size;
  }

  /** Allocate a fresh random non-zero u32 not in use, map it to v, return it. Throws if the random source keeps colliding (INDEX_MAX_ATTEMPTS draws). */
  allocate(v: V): number {
    for (let attempt = 0; attempt < INDEX_MAX_ATTEMPTS; attempt++) {
      const index = this.random32() >>> 0;
      if (index !== 0 && !this.table.has(index)) {
        this.table.set(index, v);
        return index;
      }
    }
    throw new Error(`index table: no free index after ${INDEX_MAX_ATTEMPTS} random draws (broken random source?)`);
  }

  /** Re-point an existing index to a new value (handshake → keypair). Returns false, changing nothing, if the index is not in use. */
  set(index: number, v: V): boolean {
    if (!this.table.has(index)) return false;
    this.table.set(index, v);
    return true;
  }

  get(index: number): V | undefined {
    return this.table.get(index);
  }

  /** Free an index; returns whether it was in use. */
  delete(index: number): boolean {
    return this.table.delete(index);
  }
}
