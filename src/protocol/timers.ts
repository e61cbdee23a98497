// The five per-peer timers of spec §6, held in one device-wide min-heap (no setTimeout
// per peer). Arming a timer later than an entry already queued costs O(1): the heap
// entry only has to be no later than the real deadline; when it pops early the timer is
// re-queued at its real deadline. Cancelling sets the deadline to 0.
//
// The host asks nextDeadline() and calls the engine's tick(now) when it is due.

export const enum TimerKind {
  RetransmitHandshake = 0,
  SendKeepalive = 1,
  NewHandshake = 2,
  ZeroKeyMaterial = 3,
  PersistentKeepalive = 4,
}
export const TIMER_KINDS = 5;

/** The per-peer half: deadlines by kind (0 = not armed) and what the heap holds. */
export class PeerTimers {
  readonly at = new Float64Array(TIMER_KINDS);
  readonly queuedAt = new Float64Array(TIMER_KINDS).fill(Infinity);

  isPending(kind: TimerKind): boolean {
    return this.at[kind] !== 0;
  }
}

interface Entry<P> { at: number; owner: P; timers: PeerTimers; kind: TimerKind }

export class TimerHeap<P> {
  private readonly heap: Entry<P>[] = [];

  get size(): number {
    return this.heap.length;
  }

  /** Arm (or move) `kind` of `timers` to fire at `at` (a monotonic ms time > 0). */
  arm(owner: P, timers: PeerTimers, kind: TimerKind, at: number): void {
    timers.at[kind] = at;
    if (at < timers.queuedAt[kind]!) {
      timers.queuedAt[kind] = at;
      this.push({ at, owner, timers, kind });
    }
  }

  cancel(timers: PeerTimers, kind: TimerKind): void {
    timers.at[kind] = 0;
  }

  cancelAll(timers: PeerTimers): void {
    timers.at.fill(0);
  }

  /** Earliest queued time, or Infinity. May be earlier than any real deadline (then tick re-queues). */
  nextDeadline(): number {
    return this.heap.length ? this.heap[0]!.at : Infinity;
  }

  /** Pop every entry due at `now` and call `fire` for each timer whose real deadline has passed. */
  runDue(now: number, fire: (owner: P, kind: TimerKind) => void): void {
    while (this.heap.length && this.heap[0]!.at <= now) {
      const e = this.pop();
      const { timers, kind } = e;
      if (timers.queuedAt[kind] === e.at) timers.queuedAt[kind] = Infinity;
      const at = timers.at[kind]!;
      if (at === 0) continue;
      if (at <= now) {
        timers.at[kind] = 0;
        fire(e.owner, kind);
      } else if (at < timers.queuedAt[kind]!) {
        timers.queuedAt[kind] = at;
        e.at = at;
        this.push(e);
      }
    }
  }

  private push(e: Entry<P>): void {
    const h = this.heap;
    let i = h.length;
    h.push(e);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent]!.at <= e.at) break;
      h[i] = h[parent]!;
      i = parent;
    }
    h[i] = e;
  }

  private pop(): Entry<P> {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const r = l + 1;
        const c = r < h.length && h[r]!.at < h[l]!.at ? r : l;
        if (h[c]!.at >= last.at) break;
        h[i] = h[c]!;
        i = c;
      }
      h[i] = last;
    }
    return top;
  }
}
