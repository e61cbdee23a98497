// One ring as every thread sees it, and the Atomics protocols shared by all threads: the crypto
// workers' slot claim, publishing a crypto result, and the two doorbells.
//
// Slot ownership is decided by cursors (layout.ts C_*) and by the slot's state word:
//   - a crypto worker owns a slot exactly while its state word is CRYPTING_TAG | workerId << 8;
//     it gets there with one compareExchange PENDING → crypting, which claims the slot and records
//     the claimer in the same atomic step (so a dead worker's slots are always identifiable);
//   - C_CLAIM is only a hint of where the next PENDING slot is: whoever sees a non-PENDING slot
//     there (claimed by someone else, or SKIP) moves the hint on with a compareExchange;
//   - the result is published with Atomics.store of DONE/FAILED (release): the data written before
//     it is visible to main's Atomics.load of the state (acquire).
//
// Doorbells (no lost wake-ups; all Atomics are sequentially consistent):
//   main bell   a thread that published something main consumes first stores it (state or cursor),
//               then reads CTL_MAIN_ARMED (and for crypto results C_HEAD_WAIT): only if main sleeps
//               and (for results) waits on exactly that slot does it bump CTL_MAIN_BELL and notify.
//               Main sets ARMED and HEAD_WAIT, reads the bell, re-checks all its work, then
//               waitAsync(bell, value read). Either main's re-check sees the store, or the other
//               thread sees ARMED=1 and bumps the bell (so waitAsync returns 'not-equal' or wakes).
//               Ringing only for the awaited head means a worker that finishes slot k+1 before
//               slot k never wakes main for nothing; while main drains (ARMED=0) nobody rings.
//               Crypto workers (RECV ring: a send-ring result leaves the ring to the flush, below)
//               defer that ring while more is claimable, up to RECV_RING_DEFER slots
//               (crypt-worker.ts; at once when they run out of work): deferring changes when main is woken, never
//               whether, and it turns "main wakes per packet, chasing one busy worker" (~9 µs of
//               main CPU each) into one wake per batch (bench/ring.ts measures both).
//   send flush  (send rings) sealed messages leave in ring order, sent to their UDP endpoint (the
//               slot's endpoint words and socket fd) by whichever thread holds the ring's flush lock
//               (C_SEND_LOCK, one CAS): it walks from C_SENT over finished slots, sends the DONE ones
//               in batches (one sendmmsg each, RingView.sendFinished; → SENT) and passes
//               FAILED/DEAD/SKIP and SENT (a flusher that died after marking its batch SENT but
//               before storing C_SENT leaves SENT slots above C_SENT), stops at the first slot
//               still being sealed (or, for a worker, one it cannot send: no fd, or the send
//               stopped there), stores C_SENT and unlocks. A crypto worker takes the lock before it
//               publishes its batch's results, so no other thread finds them DONE but unsent. A
//               thread that finished a slot but lost the CAS just leaves: the holder re-reads the
//               slot at C_SENT after unlocking and goes round again if it became flushable (the
//               finisher's state store precedes its failed CAS, which precedes the holder's unlock,
//               so the re-read sees it). Main is a flusher too (pipeline.ts releaseStage), but only
//               for a finished slot at C_SENT while the lock is free: it sends what a worker could
//               not (fd −1, one message at a time through the hooks) and, in batches like a
//               worker's, what no worker sent (a worker that lost the CAS to main; main's own
//               inline seals). Main re-checks in its pump loop, so a slot a worker had to leave is
//               never stranded; a worker whose send failed, or whose walk stopped at a slot main is
//               to send, rings main. Main does not count a finished slot at C_SENT as work while
//               another thread holds the lock, so a flusher that moved C_SENT while main sleeps
//               decides whether main is wanted (below).
//   TUN ring  main is woken lazily (RingView.tunMainWanted): under load a wake-up costs main 16–24 µs
//   wake-ups  of CPU on a small VM, more than routing a TUN read's ~45 packets, so the reader (after
//               storing C_PRODUCED) and a flusher (after moving C_SENT) ring main only when it is
//               needed soon: read slots wait to be routed and the workers are running low on routed
//               ones (fewer than ROUTE_LOW_WATER routed but unsent) or many wait (a quarter of the
//               ring); sent slots wait to be released and they are many (a quarter of the ring) or
//               all the ring holds (nothing else will wake main for them). No strand: main sleeps
//               only with nothing to route or release (pipeline.ts hasWork), so unrouted slots
//               exist only after a reader store, and every later C_SENT move re-evaluates the rule
//               after its own store (SC atomics: the reader's store precedes its load of C_SENT, the
//               flusher's store precedes its load of C_PRODUCED, so one of them sees the other); the
//               routed backlog drains by itself, so "running low" comes. A send-ring result never
//               rings main through C_HEAD_WAIT: the flusher that sends it decides, and a slot it
//               must leave to main (fd −1, a failed send) makes flushSends ask for main. A reader
//               that finds the ring full rings main before it waits (RingView.room).
//   sharing a   a small batch need not wake main when main is sure to be woken soon for the other
//   wake-up     direction and will handle it then (each drain runs every stage): the ACKs of a
//               TCP stream going one way, read while its data goes the other way, cost main a
//               wake-up each otherwise. Sure means a wake-up that does not itself wait for
//               anything: on the RECV ring, a head slot with the workers (the worker that finishes
//               it rings main through C_HEAD_WAIT: headOpening); on the TUN ring, routed slots with
//               the workers (sendsInFlight: once they are sent the flusher's rule above fires, and
//               it defers only to the RECV head). So the TUN ring's "workers running low" and
//               "everything read is sent" defer to an opening RECV head (tunMainWanted), and the
//               UDP reader's ring for slots main checks (handshake messages, unknown indices,
//               small batches it opened itself) defers to TUN sends in flight (udp-intake.ts). The
//               quarter-ring marks never defer. Both checks follow the deferring thread's own
//               store, and main re-checks every ring after arming, so a main that drains the
//               other ring meanwhile cannot sleep past the deferred slots.
//   worker bell a crypto worker sets its bit in CTL_WORKER_SLEEPERS, reads CTL_WORKER_BELL, re-checks
//               every ring for claimable work, then Atomics.wait(bell, value read). Main publishes
//               (cursor store), then if any sleeper bit is set bumps the bell and notifies.

import {
  C_CLAIM, C_FREED, C_HEAD_WAIT, C_PRODUCED, C_READY, C_RETIRED, C_SEND_LOCK, C_SENT, CTL_MAIN_ARMED, CTL_MAIN_BELL, CTL_SHUTDOWN, CTL_WORKER_BELL, CTL_WORKER_SLEEPERS,
  type DataplaneShared, M_FD, M_SEQ, M_STATE, META_WORDS, RING_RECV, type RingId, type RingShared, SlotState, isCrypting, isTunRing,
  ringCtl, tunQueues, tunRingId,
} from './layout.js';

/**
 * TUN ring: with fewer routed-but-unsent slots than this left, the workers are running low and a
 * store of C_PRODUCED or C_SENT wakes main to route (tunMainWanted). Two worker batches: main's
 * wake-up (50–70 µs on a small VM) takes about as long as sealing them.
 */
export const ROUTE_LOW_WATER = 64;

/** What a ring asks of the other direction's ring (RingView.partner). */
export interface PartnerRing {
  quiet(): boolean;
  sendsInFlight(): boolean;
  headOpening(): boolean;
}

/** The TUN rings of all queues as one partner of the RECV ring: quiet when all are, in flight when any is. */
export function ringGroup(rings: readonly RingView[]): PartnerRing {
  if (rings.length === 1) return rings[0]!;
  return {
    quiet: () => rings.every((r) => r.quiet()),
    sendsInFlight: () => rings.some((r) => r.sendsInFlight()),
    headOpening: () => false, // asked of the RECV ring only
  };
}

/** Views of the send rings of every TUN queue (queue order). */
export function tunRingViews(ctl: Int32Array, shared: DataplaneShared): RingView[] {
  return Array.from({ length: tunQueues(shared) }, (_, q) => new RingView(tunRingId(q), ctl, shared.rings[tunRingId(q)]!));
}

/** Sends list[0, n) (slots of `ring` naming socket `fd`) in order; returns how many went. */
export type SendBatch = (ring: RingView, fd: number, list: Int32Array, n: number) => number;

export class RingView {
  readonly slots: number;
  readonly mask: number;
  readonly slotBytes: number;
  readonly meta: Int32Array;
  readonly data: Uint8Array;
  readonly iProduced: number;
  readonly iReady: number;
  readonly iClaim: number;
  readonly iRetired: number;
  readonly iFreed: number;
  readonly iHeadWait: number;
  readonly iSent: number;
  readonly iSendLock: number;
  /** flushSends scratch: the ring seq of each slot of the batch being sent (per thread: each has its own RingView). */
  private readonly flushSeqs = new Int32Array(256);

  constructor(readonly id: RingId, readonly ctl: Int32Array, shared: RingShared) {
    this.slots = shared.slots;
    this.mask = shared.slots - 1;
    this.slotBytes = shared.slotBytes;
    this.meta = new Int32Array(shared.meta);
    this.data = new Uint8Array(shared.data);
    if (this.meta.length !== this.slots * META_WORDS || this.data.length !== this.slots * this.slotBytes) {
      throw new RangeError(`ring ${id}: buffers do not match ${this.slots} slots of ${this.slotBytes} bytes`);
    }
    this.iProduced = ringCtl(id, C_PRODUCED);
    this.iReady = ringCtl(id, C_READY);
    this.iClaim = ringCtl(id, C_CLAIM);
    this.iRetired = ringCtl(id, C_RETIRED);
    this.iFreed = ringCtl(id, C_FREED);
    this.iHeadWait = ringCtl(id, C_HEAD_WAIT);
    this.iSent = ringCtl(id, C_SENT);
    this.iSendLock = ringCtl(id, C_SEND_LOCK);
    this.routeLowWater = Math.min(ROUTE_LOW_WATER, this.slots >> 3);
    this.highWater = this.slots >> 2;
  }

  /** Worker: is there possibly a slot to claim? (Cheap; SKIP slots also count until a claim passes them.) */
  claimable(): boolean {
    return ((Atomics.load(this.ctl, this.iReady) - Atomics.load(this.ctl, this.iClaim)) | 0) > 0;
  }

  /**
   * Worker: claim the next PENDING slot for the worker whose crypting state word is `crypting`.
   * Returns the slot index, or -1 when nothing below C_READY is left. Lock-free: every turn of the
   * loop either claims a slot or sees the claim hint move forward, and the hint never passes C_READY.
   */
  claim(crypting: number): number {
    const ctl = this.ctl;
    const meta = this.meta;
    for (;;) {
      const c = Atomics.load(ctl, this.iClaim);
      const r = Atomics.load(ctl, this.iReady);
      if (((r - c) | 0) <= 0) return -1;
      const s = c & this.mask;
      // A stale `c` (we were descheduled for a lap) can only meet a slot that is PENDING for a
      // newer seq; claiming that is still correct: crypto work does not depend on the seq.
      const won = Atomics.compareExchange(meta, s * META_WORDS + M_STATE, SlotState.PENDING, crypting) === SlotState.PENDING;
      Atomics.compareExchange(ctl, this.iClaim, c, (c + 1) | 0);
      if (won) return s;
    }
  }

  /**
   * Producer thread (TUN or UDP reader) about to fill slots from `seq`: the number of free slots
   * (> 0), or 0 after waiting for the consumer to free some (backpressure): it announces itself in
   * `waitingWord` (the freeing side notifies C_FREED when that is set), re-reads C_FREED and waits
   * on the value read, at most timeoutMs. The caller re-checks shutdown and calls again.
   */
  room(seq: number, waitingWord: number, timeoutMs?: number): number {
    const ctl = this.ctl;
    const free = this.slots - ((seq - Atomics.load(ctl, this.iFreed)) | 0);
    if (free > 0) return free;
    ringMainIfArmed(ctl); // the slots may be waiting for main (lazy wake-ups: tunMainWanted)
    Atomics.store(ctl, waitingWord, 1);
    const freed = Atomics.load(ctl, this.iFreed);
    if (((seq - freed) | 0) >= this.slots && Atomics.load(ctl, CTL_SHUTDOWN) === 0) Atomics.wait(ctl, this.iFreed, freed, timeoutMs);
    Atomics.store(ctl, waitingWord, 0);
    return 0;
  }

  /** Send rings: take the flush lock for `owner` (sendLockOwner()); false if another thread holds it. */
  tryLockSend(owner: number): boolean {
    return Atomics.compareExchange(this.ctl, this.iSendLock, 0, owner) === 0;
  }

  /** Send rings: publish C_SENT = `sent` and release the flush lock. */
  unlockSend(sent: number): void {
    Atomics.store(this.ctl, this.iSent, sent);
    Atomics.store(this.ctl, this.iSendLock, 0);
  }

  /**
   * Send rings, a crypto worker after sealing (protocol: "send flush" above): under the flush lock
   * `owner`, walk from C_SENT over finished slots and send the DONE ones, in order, in batches of
   * up to list.length slots naming the same socket: `send(this, fd, list, n)` sends list[0, n) and
   * returns how many went (in order). FAILED/DEAD/SKIP slots are passed (nothing to send). The walk
   * stops at a slot still being sealed, at a slot main is to send (fd −1), or where a send stopped
   * (that slot becomes main's: fd −1); at either of the last two the call returns false (the
   * caller must ring main). It also returns false when it moved C_SENT and main, asleep, is wanted
   * ("TUN ring wake-ups" above: main does not count a finished head slot as work while another
   * thread holds the flush lock, pipeline.ts hasWork, so the flusher decides). Never blocks. True
   * otherwise.
   * `locked`: the caller already holds the lock as `owner` (it took it before publishing its
   * batch's results, so no other flusher finds those slots finished but not yet sent).
   */
  flushSends(owner: number, list: Int32Array, send: SendBatch, locked = false): boolean {
    const meta = this.meta;
    const ctl = this.ctl;
    let moved = false;
    for (let first = true; ; first = false) {
      if (!(first && locked) && !this.tryLockSend(owner)) return !(moved && this.mainWantedAfterSend()); // the holder re-checks after unlocking
      const from = Atomics.load(ctl, this.iSent);
      const to = this.sendFinished(from, Atomics.load(ctl, this.iReady), list, send);
      this.unlockSend(to);
      if (this.sendStopped) return false;
      if (to !== from) moved = true;
      // Re-check the slot now at C_SENT: flushable by us (a racer finished it while we held the lock)?
      const head = Atomics.load(ctl, this.iSent);
      if (head === Atomics.load(ctl, this.iReady)) return !(moved && this.mainWantedAfterSend());
      const hm = (head & this.mask) * META_WORDS;
      const st = Atomics.load(meta, hm + M_STATE);
      if (st === SlotState.DONE && meta[hm + M_FD]! < 0) return false; // main is to send it
      if (!finishedSend(st)) return !(moved && this.mainWantedAfterSend());
    }
  }

  /**
   * Send rings, after this thread moved C_SENT: should main, asleep, be woken? The TUN ring asks
   * tunMainWanted(); the LOCAL ring (keepalives, staged packets: rare) always wakes it.
   */
  private mainWantedAfterSend(): boolean {
    return isTunRing(this.id) ? this.tunMainWanted() : Atomics.load(this.ctl, CTL_MAIN_ARMED) !== 0;
  }

  /** Routed-but-unsent TUN slots below which the workers are running low (tunMainWanted). */
  private readonly routeLowWater: number;
  /** Unrouted, or sent-but-unreleased, TUN slots that want main whatever else (a quarter of the ring). */
  private readonly highWater: number;

  /**
   * TUN ring, after the reader stored C_PRODUCED or a flusher moved C_SENT ("TUN ring wake-ups"
   * above): main sleeps and is needed now, to route (read slots wait and the workers have fewer
   * than routeLowWater routed ones left, or a quarter of the ring waits) or to release (a quarter
   * of the ring is sent, or everything read is).
   */
  tunMainWanted(): boolean {
    const ctl = this.ctl;
    if (Atomics.load(ctl, CTL_MAIN_ARMED) === 0) return false;
    const produced = Atomics.load(ctl, this.iProduced);
    const ready = Atomics.load(ctl, this.iReady);
    const sent = Atomics.load(ctl, this.iSent);
    const unrouted = (produced - ready) | 0;
    const unreleased = (sent - Atomics.load(ctl, this.iRetired)) | 0;
    if (unrouted >= this.highWater || unreleased >= this.highWater) return true;
    const wanted = (unrouted > 0 && ((ready - sent) | 0) < this.routeLowWater) || (unreleased > 0 && sent === produced);
    return wanted && !(this.partner?.headOpening() ?? false);
  }

  /**
   * The other direction's ring, whose coming wake-up of main a small batch of this one shares
   * ("sharing a wake-up" above): for a TUN ring the RECV ring, and the other way round (the TUN
   * rings of every queue: ringGroup). Set by the threads that produce or flush this ring.
   */
  partner: PartnerRing | null = null;

  /**
   * TUN ring: routed slots are with the workers (C_READY ≠ C_SENT). A flusher will wake main once
   * they are sent (tunMainWanted: the routed ones run out, or everything read is sent).
   */
  sendsInFlight(): boolean {
    return Atomics.load(this.ctl, this.iReady) !== Atomics.load(this.ctl, this.iSent);
  }

  /**
   * RECV ring: the slot main checks next is with the workers (PENDING, or being opened). The worker
   * that finishes it rings main if it sleeps (C_HEAD_WAIT: finish()), whatever else happens.
   */
  headOpening(): boolean {
    const head = Atomics.load(this.ctl, this.iRetired);
    if (head === Atomics.load(this.ctl, this.iReady)) return false;
    const st = Atomics.load(this.meta, (head & this.mask) * META_WORDS + M_STATE);
    return st === SlotState.PENDING || isCrypting(st);
  }

  /**
   * Nothing of this ring waits for a stage: TUN, everything read has been sent; RECV, everything
   * received has been checked. An input goes to main at idle only while the other direction is
   * quiet too (intake.ts).
   */
  quiet(): boolean {
    const done = this.id === RING_RECV ? this.iRetired : this.iSent;
    return Atomics.load(this.ctl, this.iProduced) === Atomics.load(this.ctl, done);
  }

  /** Set by sendFinished(): its walk ended where a send stopped (that slot is main's now, fd −1). */
  sendStopped = false;

  /**
   * Send rings, the flush lock held: from `seq` towards `ready`, send the DONE slots in order, in
   * batches of up to list.length slots naming the same socket (`send` sends list[0, n) and returns
   * how many went), passing FAILED/DEAD/SKIP/SENT slots (nothing to send). Stops at a slot still
   * being sealed or HELD, at a DONE slot main is to send (fd −1), or where a send stopped (that slot
   * becomes main's: fd −1, and sendStopped is set). Returns the seq reached; marks the sent slots
   * SENT. The caller stores C_SENT (unlockSend) or, being main, releases the slots passed.
   */
  sendFinished(seq: number, ready: number, list: Int32Array, send: SendBatch): number {
    const meta = this.meta;
    this.sendStopped = false;
    const max = Math.min(list.length, this.flushSeqs.length);
    while (seq !== ready) {
      // Gather one batch: the DONE slots naming one socket, passing those with nothing to send.
      let n = 0;
      let fd = -1;
      let walked = seq;
      while (walked !== ready && n < max) {
        const s = walked & this.mask;
        const m = s * META_WORDS;
        const st = Atomics.load(meta, m + M_STATE);
        if (st === SlotState.DONE) {
          const f = meta[m + M_FD]!;
          if (f < 0 || (n !== 0 && f !== fd)) break; // main sends it / the next batch's socket
          fd = f;
          this.flushSeqs[n] = walked;
          list[n++] = s;
        } else if (!finishedSend(st)) {
          break; // still PENDING or being sealed, or HELD by main
        }
        walked = (walked + 1) | 0;
      }
      if (n === 0) return walked;
      const sent = send(this, fd, list, n);
      for (let i = 0; i < sent; i++) Atomics.store(meta, list[i]! * META_WORDS + M_STATE, SlotState.SENT);
      if (sent < n) {
        meta[list[sent]! * META_WORDS + M_FD] = -1; // main's now: later flushers stop here without trying again
        this.sendStopped = true;
        return this.flushSeqs[sent]!;
      }
      seq = walked;
    }
    return seq;
  }

  /**
   * Worker: publish a crypto result (DONE or FAILED) for `slot`. Data written before this call is
   * visible to main after it. Returns true if main sleeps waiting for exactly this slot: the caller
   * then owes main a ring (ringMainBell), which it may defer to the end of its current batch.
   */
  finish(slot: number, state: number): boolean {
    const m = slot * META_WORDS;
    Atomics.store(this.meta, m + M_STATE, state);
    return Atomics.load(this.ctl, CTL_MAIN_ARMED) !== 0 && Atomics.load(this.ctl, this.iHeadWait) === this.meta[m + M_SEQ];
  }
}

/**
 * A send-ring slot that needs no more crypto work: sealed (DONE), failed, dead, skipped, or SENT
 * (above C_SENT only when a worker died after marking its batch SENT, before storing C_SENT).
 */
export function finishedSend(st: number): boolean {
  return st === SlotState.DONE || st === SlotState.FAILED || st === SlotState.DEAD || st === SlotState.SKIP || st === SlotState.SENT;
}

/** Flush-lock owner value of crypto worker `workerId`; main uses SEND_LOCK_MAIN. */
export function sendLockOwner(workerId: number): number {
  return workerId + 1;
}
export const SEND_LOCK_MAIN = 0x7fff_ffff;

/**
 * Any thread that published claimable slots (a C_READY store): notify sleeping crypto workers,
 * only if a sleeper bit is set (the common busy case costs two loads). Returns whether it notified.
 */
export function wakeWorkers(ctl: Int32Array, n: number): boolean {
  if ((Atomics.load(ctl, CTL_WORKER_SLEEPERS) | Atomics.load(ctl, CTL_WORKER_SLEEPERS + 1)) === 0) return false;
  Atomics.add(ctl, CTL_WORKER_BELL, 1);
  Atomics.notify(ctl, CTL_WORKER_BELL, n);
  return true;
}

/**
 * Whether crypto workers 0..workers−1 all have their sleeper bit set (each is in, or about to
 * enter, Atomics.wait and re-checks every ring first). A dead worker's bit is cleared by the
 * supervisor, so it reads as awake.
 */
export function allWorkersAsleep(ctl: Int32Array, workers: number): boolean {
  const low = workers >= 32 ? -1 : (1 << workers) - 1;
  const high = workers <= 32 ? 0 : workers >= 64 ? -1 : (1 << (workers - 32)) - 1;
  return (Atomics.load(ctl, CTL_WORKER_SLEEPERS) & low) === low && (Atomics.load(ctl, CTL_WORKER_SLEEPERS + 1) & high) === high;
}

/** Any thread: wake main (one waitAsync waiter on CTL_MAIN_BELL). */
export function ringMainBell(ctl: Int32Array): void {
  Atomics.add(ctl, CTL_MAIN_BELL, 1);
  Atomics.notify(ctl, CTL_MAIN_BELL, 1);
}

/** Any thread: ring main's bell if it sleeps (for producers whose output main always wants to see). */
export function ringMainIfArmed(ctl: Int32Array): void {
  if (Atomics.load(ctl, CTL_MAIN_ARMED) !== 0) ringMainBell(ctl);
}

/** Main: allocate one ring's buffers. `slots` must be a power of two. */
export function allocRing(slots: number, slotBytes: number): RingShared {
  if (!Number.isInteger(slots) || slots < 2 || slots > 1 << 20 || (slots & (slots - 1)) !== 0) {
    throw new RangeError(`ring slots must be a power of two in 2..2^20, got ${slots}`);
  }
  return {
    slots,
    slotBytes,
    meta: new SharedArrayBuffer(slots * META_WORDS * 4),
    data: new SharedArrayBuffer(slots * slotBytes),
  };
}
