// Replay window for transport counters (the WireGuard paper's transport data messages):
// the RFC 6479 sliding bitmap of the kernel's counter_validate / wireguard-go's
// replay.Filter. Run it after successful decryption, in the in-order stage, never
// before. Not safe for concurrent use (it is plain state; one owner per keypair).
//
// Layout: the spec's ring of 128 blocks × 64 bits is kept as 256 Uint32 words; block
// b occupies words 2b (bits 0..31 of the block) and 2b+1 (bits 32..63), so every
// block operation of the spec (clear block, test-and-set bit c & 63 of block
// (c >> 6) & 127) maps onto one or two words and the semantics are those of 64-bit
// blocks: window = (128 − 1) × 64 = 8128 counters behind the highest one seen.
//
// Counters are JS numbers. `c >> 6` etc. would truncate to 32 bits, so block and bit
// numbers use exact float arithmetic (c / 64 and c % 64 are exact below 2^53).
// Counters ≥ COUNTER_LIMIT (2^53 − 1), negative or non-integer are rejected; see
// COUNTER_LIMIT in constants.ts for why that stands in for REJECT_AFTER_MESSAGES.

import { COUNTER_LIMIT } from '../constants.js';

const BLOCK_BITS = 64;
const RING_BLOCKS = 128;
/** How far behind the highest accepted counter a counter may be: (128 − 1) × 64. */
export const REPLAY_WINDOW_SIZE = (RING_BLOCKS - 1) * BLOCK_BITS; // 8128

export class ReplayWindow {
  /** Highest accepted counter (spec `last`); 0 initially, with counter 0 not yet seen. */
  private last = 0;
  private readonly ring = new Uint32Array(RING_BLOCKS * 2);

  /** Highest counter accepted so far (0 before any). */
  get highest(): number {
    return this.last;
  }

  /** Forget everything: the state of a fresh keypair. */
  reset(): void {
    this.last = 0;
    this.ring.fill(0);
  }

  /** Test-and-set: true = counter is fresh and now marked seen; false = replay, too old or out of range. No allocation. */
  validate(counter: number): boolean {
    if (!(counter >= 0 && counter < COUNTER_LIMIT) || counter !== Math.floor(counter)) return false;
    const blk = Math.floor(counter / BLOCK_BITS);
    const ring = this.ring;
    if (counter > this.last) {
      // Clear the blocks between the old top block (exclusive) and the new one (inclusive).
      const lastBlk = Math.floor(this.last / BLOCK_BITS);
      let diff = blk - lastBlk;
      if (diff > RING_BLOCKS) diff = RING_BLOCKS;
      for (let i = 1; i <= diff; i++) {
        const w = ((lastBlk + i) % RING_BLOCKS) * 2;
        ring[w] = 0;
        ring[w + 1] = 0;
      }
      this.last = counter;
    } else if (this.last - counter > REPLAY_WINDOW_SIZE) {
      return false; // too old
    }
    const bit = counter % BLOCK_BITS;
    const w = (blk % RING_BLOCKS) * 2 + (bit >>> 5);
    const mask = 1 << (bit & 31);
    const old = ring[w]!;
    if ((old & mask) !== 0) return false; // replay
    ring[w] = old | mask;
    return true;
  }
}
