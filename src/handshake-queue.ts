// The handshake queue of spec §7: handshake-type datagrams wait here and are processed
// in bounded batches per event-loop turn — at most `batch` messages and at most
// `budgetMs` of work — so a flood of initiations cannot starve the data plane. Its length
// drives "under load" (≥ 1/8 full, held for 1 s after the last time that was seen); when
// full, new handshake messages are dropped.
//
// The time budget is what makes "under load" reachable: libuv reads at most 32 datagrams
// per socket per turn, so a queue drained 32 per turn never grows. With a budget, a flood
// of initiations (each a few Diffie-Hellman operations) arrives faster than it is
// processed, the queue passes 128, and from then on messages without a valid mac2 get a
// cheap cookie reply instead of any Diffie-Hellman work.
import { HANDSHAKE_QUEUE_SIZE, UNDER_LOAD_AFTER_TIME, UNDER_LOAD_QUEUE_LENGTH } from './constants.js';
import { type Endpoint } from './protocol/endpoint.js';

export interface QueuedHandshake { msg: Uint8Array; src: Endpoint }

export class HandshakeQueue {
  private readonly items: (QueuedHandshake | undefined)[] = new Array(HANDSHAKE_QUEUE_SIZE);
  private head = 0;
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
  ) {}

  get length(): number {
    return this.count;
  }

  /** Queue a message; false (a drop) when the queue is full. */
  push(h: QueuedHandshake): boolean {
    if (this.count >= HANDSHAKE_QUEUE_SIZE) return false;
    this.items[(this.head + this.count) % HANDSHAKE_QUEUE_SIZE] = h;
    this.count++;
    if (this.count >= UNDER_LOAD_QUEUE_LENGTH) this.lastUnderLoad = this.now();
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.drain);
    }
    return true;
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
    for (let i = 0; i < this.batch && this.count > 0 && (i === 0 || this.now() < deadline); i++) {
      const h = this.items[this.head]!;
      this.items[this.head] = undefined;
      this.head = (this.head + 1) % HANDSHAKE_QUEUE_SIZE;
      this.count--;
      this.process(h, this.isUnderLoad());
    }
    if (this.count > 0 && !this.scheduled) {
      this.scheduled = true;
      setImmediate(this.drain);
    }
  };

  clear(): void {
    this.items.fill(undefined);
    this.head = this.count = 0;
  }
}
