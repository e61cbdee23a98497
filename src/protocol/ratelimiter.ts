// Per-source token bucket for handshake messages under load
// (kernel ratelimiter.c, wireguard-go ratelimiter/).
// Pure state: time comes in as a millisecond number (fractions allowed), the host
// calls gc(now) about once a second. Not safe for concurrent use.
//
// Bucket: one token per elapsed millisecond, PACKET_COST = 1000 / 20 = 50 ms per
// packet, TOKEN_MAX = 5 × PACKET_COST. A new source starts at TOKEN_MAX − PACKET_COST
// and its first packet is allowed. A packet is allowed when tokens ≥ PACKET_COST
// (kernel rule: exactly 5 packets in a burst; wireguard-go's strict `>` gives 4).
// Refused packets cost nothing but still move the bucket's clock. If time goes
// backwards the elapsed time counts as 0.
//
// Key: an IPv4 source is keyed by its address; an IPv6 source by its /64 (kernel
// behaviour: one bucket for a whole /64, so rotating addresses inside it does not
// help). An IPv4-mapped IPv6 source (::ffff:a.b.c.d, as dual-stack udp6 sockets
// report IPv4 peers) is keyed as the IPv4 address; otherwise all of IPv4 would share
// the single bucket of ::/64.
//
// Table: open addressing with linear probing over typed arrays (family tag, two key
// words, tokens, last time), so allow() allocates nothing (a Map keyed by 32-bit
// numbers boxes every key ≥ 2^30). Keys are chosen by remote hosts, so the hash mixes
// in a per-instance seed (pass a random u32 as options.seed). Capacity doubles as the
// table fills (load ≤ 1/2), up to twice maxEntries; gc() deletes in place by shifting
// probe runs back (no tombstones).
//
// Size bound: at most `maxEntries` buckets (default 65536). When the table is full a
// packet from a new source is refused (kernel behaviour, err_oom → false) until gc
// frees buckets idle for more than 1 s; known sources keep working.

import { RATELIMIT_BURST, RATELIMIT_PACKETS_PER_SECOND } from '../constants.js';

/** Milliseconds of tokens one packet costs. */
export const PACKET_COST = 1000 / RATELIMIT_PACKETS_PER_SECOND; // 50
/** Bucket capacity in milliseconds of tokens. */
export const TOKEN_MAX = PACKET_COST * RATELIMIT_BURST; // 250
/** Buckets idle for longer than this are removed by gc(). */
export const RATELIMIT_GC_AFTER = 1_000;
export const RATELIMIT_DEFAULT_MAX_ENTRIES = 65_536;

const EMPTY = 0;
const TAG_V4 = 4;
const TAG_V6 = 6;
const MIN_CAPACITY = 16;

export class RateLimiter {
  /** Per slot: EMPTY, TAG_V4 or TAG_V6. */
  private tag = new Uint8Array(MIN_CAPACITY);
  /** Per slot: IPv4 address and 0, or the two words of the IPv6 /64 (int32). */
  private keys = new Int32Array(2 * MIN_CAPACITY);
  private tokens = new Float64Array(MIN_CAPACITY);
  private lastTime = new Float64Array(MIN_CAPACITY);
  private capacity = MIN_CAPACITY;
  private shift = 32 - Math.log2(MIN_CAPACITY);
  private count = 0;
  private readonly maxEntries: number;
  private readonly seed: number;

  constructor(options: { maxEntries?: number; seed?: number } = {}) {
    const max = options.maxEntries ?? RATELIMIT_DEFAULT_MAX_ENTRIES;
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`maxEntries must be a positive integer, got ${max}`);
    this.maxEntries = max;
    this.seed = (options.seed ?? 0x2545f491) | 0;
  }

  /** Number of buckets (sources) currently tracked. */
  get size(): number {
    return this.count;
  }

  /** Should a packet from src (4- or 16-byte address) be processed at nowMs? No allocation for a known source. */
  allow(src: Uint8Array, nowMs: number): boolean {
    let tag = TAG_V4;
    let k0: number;
    let k1 = 0;
    if (src.length === 4) {
      k0 = word(src, 0);
    } else if (src.length === 16) {
      k0 = word(src, 0);
      k1 = word(src, 4);
      if (k0 === 0 && k1 === 0 && word(src, 8) === 0xffff) {
        k0 = word(src, 12); // IPv4-mapped: key as IPv4
        k1 = 0;
      } else {
        tag = TAG_V6;
      }
    } else {
      throw new RangeError(`source address must be 4 or 16 bytes, got ${src.length}`);
    }
    // Probe for the source (one function, no calls with number arguments, so a
    // fractional nowMs is never boxed on this path).
    const mask = this.capacity - 1;
    const tags = this.tag;
    const keys = this.keys;
    let i = this.home(tag, k0, k1);
    for (;;) {
      const t = tags[i]!;
      if (t === EMPTY) return this.insertNew(i, tag, k0, k1, nowMs);
      if (t === tag && keys[2 * i] === k0 && keys[2 * i + 1] === k1) break;
      i = (i + 1) & mask;
    }
    // Known source: add the elapsed time as tokens (capped), then pay if possible.
    let tokens = this.tokens[i]!;
    const elapsed = nowMs - this.lastTime[i]!;
    if (elapsed > 0) {
      tokens += elapsed;
      if (tokens > TOKEN_MAX) tokens = TOKEN_MAX;
      this.lastTime[i] = nowMs;
    }
    if (tokens >= PACKET_COST) {
      this.tokens[i] = tokens - PACKET_COST;
      return true;
    }
    this.tokens[i] = tokens;
    return false;
  }

  /** Remove buckets idle for more than 1 s. */
  gc(nowMs: number): void {
    for (let i = 0; i < this.capacity; ) {
      if (this.tag[i] !== EMPTY && nowMs - this.lastTime[i]! > RATELIMIT_GC_AFTER) {
        this.deleteSlot(i); // a later entry may have moved into slot i: look again
      } else {
        i++;
      }
    }
  }

  /** Forget all sources. */
  clear(): void {
    this.tag.fill(EMPTY);
    this.count = 0;
  }

  /** New source; i is the empty slot that ended its probe. */
  private insertNew(i: number, tag: number, k0: number, k1: number, nowMs: number): boolean {
    if (this.count >= this.maxEntries) return false;
    if (2 * (this.count + 1) > this.capacity) {
      this.resize(this.capacity * 2);
      i = this.home(tag, k0, k1);
      while (this.tag[i] !== EMPTY) i = (i + 1) & (this.capacity - 1);
    }
    this.tag[i] = tag;
    this.keys[2 * i] = k0;
    this.keys[2 * i + 1] = k1;
    this.tokens[i] = TOKEN_MAX - PACKET_COST; // the creating packet is paid for and allowed
    this.lastTime[i] = nowMs;
    this.count++;
    return true;
  }

  private home(tag: number, k0: number, k1: number): number {
    let h = Math.imul(k0 ^ this.seed, 0x85ebca6b) ^ Math.imul((k1 + tag) | 0, 0xc2b2ae35);
    h ^= h >>> 15;
    return Math.imul(h, 0x9e3779b1) >>> this.shift;
  }

  /** Empty slot i, shifting later members of its probe run back (no tombstones). */
  private deleteSlot(i: number): void {
    const mask = this.capacity - 1;
    for (let j = (i + 1) & mask; this.tag[j] !== EMPTY; j = (j + 1) & mask) {
      const h = this.home(this.tag[j]!, this.keys[2 * j]!, this.keys[2 * j + 1]!);
      const stays = i <= j ? i < h && h <= j : i < h || h <= j;
      if (stays) continue;
      this.tag[i] = this.tag[j]!;
      this.keys[2 * i] = this.keys[2 * j]!;
      this.keys[2 * i + 1] = this.keys[2 * j + 1]!;
      this.tokens[i] = this.tokens[j]!;
      this.lastTime[i] = this.lastTime[j]!;
      i = j;
    }
    this.tag[i] = EMPTY;
    this.count--;
  }

  private resize(capacity: number): void {
    const { tag, keys, tokens, lastTime } = this;
    this.capacity = capacity;
    this.shift = 32 - Math.log2(capacity);
    this.tag = new Uint8Array(capacity);
    this.keys = new Int32Array(2 * capacity);
    this.tokens = new Float64Array(capacity);
    this.lastTime = new Float64Array(capacity);
    const mask = capacity - 1;
    for (let s = 0; s < tag.length; s++) {
      if (tag[s] === EMPTY) continue;
      let i = this.home(tag[s]!, keys[2 * s]!, keys[2 * s + 1]!);
      while (this.tag[i] !== EMPTY) i = (i + 1) & mask;
      this.tag[i] = tag[s]!;
      this.keys[2 * i] = keys[2 * s]!;
      this.keys[2 * i + 1] = keys[2 * s + 1]!;
      this.tokens[i] = tokens[s]!;
      this.lastTime[i] = lastTime[s]!;
    }
  }
}

/** Big-endian 32-bit word at buf[o..o+4), as int32. */
function word(buf: Uint8Array, o: number): number {
  return (buf[o]! << 24) | (buf[o + 1]! << 16) | (buf[o + 2]! << 8) | buf[o + 3]!;
}
