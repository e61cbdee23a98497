// The handshake queue of spec §7: handshake-type datagrams wait here and are processed
// in bounded batches per event-loop turn — at most `batch` messages and at most
// `budgetMs` of work — so a flood of initiations cannot starve the data plane. Its length
// drives "under load" (≥ 1/8 full, held for 1 s after the last time that was seen).
//
// What gets in has been screened as it arrived (Engine.screenHandshake, from receive.ts):
// mac1 always; under load also mac2 and the per-source rate limiter, a message without a
// valid mac2 having been answered with a cookie reply at once, without taking a slot. So
// under load the queue holds only messages that passed the rate limiter of their own source
// (marked `checked`: processed with underLoad = false, so mac2 and the limiter apply once),
// plus what was queued before the load began — at most 1/8 of the slots, since reaching 1/8
// is what starts the load — and cookie replies, which carry no macs (and cost an index lookup).
//
// Fair across sources: one FIFO per source address (IPv4 address, or IPv6 /64 as the rate
// limiter keys it), served round-robin, one message per source in turn. When all slots are
// taken, a message from a source with fewer queued than the busiest one displaces the busiest
// source's oldest message (longest-queue drop); a message from the busiest source itself is
// dropped. A source that the rate limiter admits, with its few messages queued, therefore
// never loses one because other sources filled the queue, and waits for at most one message
// of each other source before its own is processed.
//
// The time budget is what makes "under load" reachable: a flood of initiations (each a few
// Diffie-Hellman operations) arrives faster than it is processed, the queue passes 128, and
// from then on messages without a valid mac2 get a cheap cookie reply at the door instead of
// any Diffie-Hellman work. While they are refused there the queue empties, and a second after
// it last held 128 the load ends; the flood then fills it to 128 again, so per second at most
// about 128 such messages are queued without mac2, and those are processed under the load
// rules of that moment (a cookie reply, when the load has begun again).
import { HANDSHAKE_QUEUE_SIZE, UNDER_LOAD_AFTER_TIME, UNDER_LOAD_QUEUE_LENGTH } from './constants.js';
import { type Endpoint } from './protocol/endpoint.js';

export interface QueuedHandshake {
  msg: Uint8Array;
  src: Endpoint;
  /** Passed mac2 and the rate limiter as it arrived under load: processed with underLoad = false. */
  checked?: boolean;
}

/** One source's messages, oldest first; a member of the round-robin ring while it holds any. */
class SourceQueue {
  readonly items: QueuedHandshake[] = [];
  next: SourceQueue = this;
  prev: SourceQueue = this;
  constructor(readonly key: number | string) {}
}

export class HandshakeQueue {
  private readonly sources = new Map<number | string, SourceQueue>();
  /** The source served next (round-robin ring of the sources holding messages); null when empty. */
  private cursor: SourceQueue | null = null;
  /** Sources by the number of messages they hold (index 1…capacity), to find the busiest at once. */
  private readonly byLength: Set<SourceQueue>[] = [];
  private maxLength = 0;
  private count = 0;
  private lastUnderLoad = -Infinity;
  private scheduled = false;

  constructor(
    private readonly process: (h: QueuedHandshake, underLoad: boolean) => void,
    private readonly now: () => number,
    /** Messages handled per event-loop turn before yielding to I/O. */
    private readonly batch = 32,
    /** Milliseconds of handshake work per event-loop turn before yielding to I/O. */
    private readonly budgetMs = 2,
    /** Slots in all (spec: 1024). */
    private readonly capacity = HANDSHAKE_QUEUE_SIZE,
  ) {}

  /** Set by the host: a handshake message refused before queueing (metrics: HandshakeStats.rejected). */
  onRefused: ((type: number) => void) | null = null;

  /**
   * Set by the host: while it returns true, `process` can take no more (the handshake workers
   * hold all they may: src/handshake-offload.ts) and messages stay queued, counting towards
   * "under load"; the host calls resume() when there is room again.
   */
  blocked: () => boolean = () => false;

  /** Drain again (after `blocked` turned false). */
  resume(): void {
    if (this.count > 0 && !this.scheduled) {
      this.scheduled = true;
      setImmediate(this.drain);
    }
  }

  /** A message of `type` was refused as it arrived (Engine.screenHandshake dropped it). */
  refused(type: number): void {
    this.onRefused?.(type);
  }

  get length(): number {
    return this.count;
  }

  /** Sources with messages queued. */
  get sourceCount(): number {
    return this.sources.size;
  }

  /**
   * Queue a message. False when the queue was full and a message was dropped for it (count
   * one drop): the new one, when its source holds the most; else the busiest source's oldest.
   */
  push(h: QueuedHandshake): boolean {
    const key = sourceKey(h.src);
    let q = this.sources.get(key);
    let dropped = false;
    if (this.count >= this.capacity) {
      const mine = q ? q.items.length : 0;
      if (mine >= this.maxLength) return false;
      const victim = this.byLength[this.maxLength]!.values().next().value!;
      victim.items.shift();
      this.count--;
      this.resized(victim, victim.items.length + 1);
      if (victim.items.length === 0) this.unlink(victim);
      dropped = true;
    }
    if (!q) {
      q = new SourceQueue(key);
      this.sources.set(key, q);
      this.link(q);
    }
    q.items.push(h);
    this.count++;
    this.resized(q, q.items.length - 1);
    if (this.count >= UNDER_LOAD_QUEUE_LENGTH) this.lastUnderLoad = this.now();
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.drain);
    }
    return !dropped;
  }

  isUnderLoad(): boolean {
    if (this.count >= UNDER_LOAD_QUEUE_LENGTH) {
      this.lastUnderLoad = this.now();
      return true;
    }
    return this.now() - this.lastUnderLoad < UNDER_LOAD_AFTER_TIME;
  }

  private readonly drain = (): void => {
    this.scheduled = false;
    const deadline = this.now() + this.budgetMs;
    for (let i = 0; i < this.batch && this.cursor !== null && (i === 0 || this.now() < deadline) && !this.blocked(); i++) {
      const q = this.cursor;
      const h = q.items.shift()!;
      this.count--;
      this.resized(q, q.items.length + 1);
      this.cursor = q.next;
      if (q.items.length === 0) this.unlink(q);
      this.process(h, h.checked === true ? false : this.isUnderLoad());
    }
    if (!this.blocked()) this.resume();
  };

  clear(): void {
    this.sources.clear();
    this.cursor = null;
    this.byLength.length = 0;
    this.maxLength = 0;
    this.count = 0;
  }

  /** Keep byLength and maxLength current after q's length changed by one from `was`. */
  private resized(q: SourceQueue, was: number): void {
    const now = q.items.length;
    if (was > 0) this.byLength[was]!.delete(q);
    if (now > 0) (this.byLength[now] ??= new Set()).add(q);
    if (now > this.maxLength) this.maxLength = now;
    while (this.maxLength > 0 && (this.byLength[this.maxLength]?.size ?? 0) === 0) this.maxLength--;
  }

  /** Insert q just before the cursor: it is served after every source already waiting. */
  private link(q: SourceQueue): void {
    const c = this.cursor;
    if (c === null) {
      q.next = q.prev = q;
      this.cursor = q;
      return;
    }
    q.next = c;
    q.prev = c.prev;
    c.prev.next = q;
    c.prev = q;
  }

  /** Take an emptied q out of the ring and the map. */
  private unlink(q: SourceQueue): void {
    this.sources.delete(q.key);
    if (q.next === q) {
      this.cursor = null;
    } else {
      q.prev.next = q.next;
      q.next.prev = q.prev;
      if (this.cursor === q) this.cursor = q.next;
    }
    q.next = q.prev = q;
  }
}

/** The fairness key of a source: an IPv4 address (also IPv4-mapped IPv6) as a number, an IPv6 /64 as a string. */
function sourceKey(src: Endpoint): number | string {
  const b = src.bytes;
  let o = 0;
  if (b.length === 16) {
    let mapped = b[10] === 0xff && b[11] === 0xff;
    for (let i = 0; i < 10 && mapped; i++) mapped = b[i] === 0;
    if (!mapped) {
      let k = '';
      for (let i = 0; i < 8; i++) k += String.fromCharCode(b[i]!);
      return k;
    }
    o = 12;
  }
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}
