// Who reads an input — the interface's UDP sockets, or its TUN device: the input's I/O thread
// under load, the main thread's event loop at idle.
//
// Why: on an idle path each packet would otherwise cost two cross-thread wake-ups on its way in:
// the kernel wakes the I/O thread in poll(), then that thread wakes main (50–70 µs each on a small
// VM). When main itself waits for the descriptor (libuv, src/io/fd-watch.ts), the kernel wakes
// main directly, and main reads, routes or checks, seals or opens, and sends or writes in one
// turn: one wake-up per packet, as wireguard-go's netpoller wakes the goroutine that reads. Under
// load the threads read, in large batches, and main makes no I/O call per packet.
//
// Protocol, one owner word per input (CTL_UDP_OWNER, and ctlTunOwner(q) per TUN queue); only the owner reads the
// input and produces its ring (from C_PRODUCED):
//   thread → main  after a batch of at most HAND_TO_MAIN_MAX packets that came at least
//                  IDLE_GAP_MS after the previous batch, which itself came at least IDLE_GAP_MS
//                  after the one before it (or none: a poll timeout), with nothing
//                  kept in its addon's per-thread state (Idleness.handOver), and while the other
//                  direction's ring is quiet (RingView.quiet: the ACKs of a stream going the other
//                  way are not idleness, and main reading them cost it a wake-up and a read call
//                  each; the thread's batches share main's wake-ups instead, ring.ts), the thread stores
//                  INTAKE_MAIN, rings main's bell and parks (Atomics.wait on the word). From that store on it
//                  touches neither the input nor the ring's producer side.
//   main           whenever it drains and owns an input, it watches its descriptors; each time one
//                  is readable it reads (no waiting) into the ring until its addon keeps nothing
//                  (MainIntake.readAll), then drains.
//   main → thread  when a batch main read had at least HAND_TO_THREAD_MIN packets, or came less
//                  than IDLE_GAP_MS after its previous one, or the other direction is not quiet, or
//                  the ring lacks room for a batch, or a read failed (load, or trouble), and its
//                  addon keeps nothing, main stops
//                  watching, stores INTAKE_THREAD and notifies the word; the thread re-reads
//                  C_PRODUCED (and its descriptors) and carries on.
//   stop           CTL_SHUTDOWN and a notify of the word: a parked thread leaves.
// The addons keep the unread pieces of a GRO super-datagram or TSO super-packet per thread, which
// is why an input changes hands only when that state is empty.
import { FdWatch } from '../io/fd-watch.js';
import { CTL_SHUTDOWN, INTAKE_MAIN, INTAKE_THREAD } from './layout.js';
import { type RingView, ringMainBell } from './ring.js';

/** Main's reading of one input: one batch into the ring from `seq` (at most `max`); how many were published, negative: the input failed. */
export type ReadBatch = (seq: number, max: number) => number;

/** A thread hands its input to main after a batch of at most this many packets. */
export const HAND_TO_MAIN_MAX = 2;
/** Main hands an input back to its thread after a batch of at least this many packets. */
export const HAND_TO_THREAD_MIN = 8;
/**
 * Idle means a gap of at least this long between batches. A steady stream of small batches — the
 * ACKs of a TCP stream going the other way, a ping flood — stays with the thread: main would
 * otherwise make a receive call per wake-up for each of them.
 */
export const IDLE_GAP_MS = 1;

/** Time between one input's batches, as its reader sees it. */
export class Idleness {
  private last = -Infinity;
  /** Whether the gap before the last batch with load was idle too (a thread hands over after two in a row). */
  private quiet = true;

  /**
   * A batch of `got` packets was read at `now` (ms), `pending` pieces kept: may the input go to
   * main? `load`: how many of them the workers would process (default all). Only those count as
   * load: the rest (handshake messages) main handles whoever reads them, so a thread that reads
   * them only adds a wake-up; gaps are measured between batches with load. A batch with load goes
   * to main only when the gap before it and the gap before the previous one were both idle: the
   * ACKs of a TCP stream going the other way pause for a millisecond now and then, and handing
   * over at each pause cost the main thread ≈ 5–10 % of its CPU in a bulk transfer (≈ 130–160
   * hand-overs and hand-backs a second on the 2-vCPU host, each with a wake-up of the thread).
   * Sparse traffic (a ping every 10 ms) still goes to main from its second packet on.
   */
  handOver(got: number, pending: number, now: number, load = got): boolean {
    if (load === 0) return got <= HAND_TO_MAIN_MAX && pending === 0;
    const idle = now - this.last >= IDLE_GAP_MS;
    const twice = idle && this.quiet;
    this.last = now;
    this.quiet = idle;
    return got <= HAND_TO_MAIN_MAX && pending === 0 && twice;
  }

  /** The input came back to the thread: its gaps count from now (the next small batches are not idleness). */
  resume(now: number): void {
    this.last = now;
    this.quiet = false;
  }

  /** Main read a batch of `got` at `now` (ms), `load` of them for the workers (default all): is this load (give the input back)? */
  busy(got: number, now: number, load = got): boolean {
    if (got >= HAND_TO_THREAD_MIN) return true;
    if (load === 0) return false;
    const gap = now - this.last;
    this.last = now;
    return gap < IDLE_GAP_MS;
  }
}

/** I/O thread: give the input to main (idle). From this store on the thread must not read it; it parks (parkWhileMainOwns) next. */
export function handToMain(ctl: Int32Array, ownerWord: number): void {
  Atomics.store(ctl, ownerWord, INTAKE_MAIN);
  ringMainBell(ctl);
}

/** I/O thread: wait while main owns the input (a replacement thread starts here too). */
export function parkWhileMainOwns(ctl: Int32Array, ownerWord: number, pollMs: number): void {
  while (Atomics.load(ctl, ownerWord) === INTAKE_MAIN && Atomics.load(ctl, CTL_SHUTDOWN) === 0) {
    Atomics.wait(ctl, ownerWord, INTAKE_MAIN, pollMs);
  }
}

export interface MainIntakeOptions {
  ctl: Int32Array;
  /** CTL_UDP_OWNER or CTL_TUN_OWNER. */
  ownerWord: number;
  /** The ring this input produces, and the most one read may take. */
  ring: RingView;
  batch: number;
  read: ReadBatch;
  /** Pieces main's addon state keeps for its next read (TunIntake / UdpIntake `pending`). */
  pending: () => number;
  /** Of the packets the last read published, how many are for the workers (Idleness: load); default all. */
  load?: () => number;
  /** Main's stats row and its cells counting take-overs (thread → main) and hand-backs (main → thread). */
  stats: Float64Array;
  takenCell: number;
  givenCell: number;
  /** A watched descriptor of `input` is readable (the pipeline reads with input.readAll(), then drains). */
  onReadable: (input: MainIntake) => void;
  /** A native hook the watches run first (FdWatch.setHook: the idle path, idle-lease.ts); null or absent: none. */
  hook?: object | null;
}

/** Main's side of one input: watching its descriptors while main owns it, reading them, and handing it back. */
export class MainIntake {
  private watches: FdWatch[] = [];
  private fd0 = -1;
  private fd1 = -1;
  private watching = false;
  private closed = false;
  private retry: ReturnType<typeof setTimeout> | null = null;
  private readonly pace = new Idleness();

  private readonly ctl: Int32Array;
  private readonly ownerWord: number;
  private readonly ring: RingView;
  private readonly batch: number;
  private readonly read: ReadBatch;
  private readonly pending: () => number;
  private readonly load: (() => number) | null;
  private readonly stats: Float64Array;
  private readonly takenCell: number;
  private readonly givenCell: number;
  private readonly onReadable: (input: MainIntake) => void;
  private readonly hook: object | null;
  /** The watches' callbacks: readable, and polling failed (e.g. the descriptor was closed under the watch: the thread's own read reports what is wrong). */
  private readonly readable = (): void => this.onReadable(this);
  private readonly pollFailed = (): void => this.handBack();

  constructor(o: MainIntakeOptions) {
    ({ ctl: this.ctl, ownerWord: this.ownerWord, ring: this.ring, batch: this.batch, read: this.read, pending: this.pending } = o);
    this.load = o.load ?? null;
    this.hook = o.hook ?? null;
    ({ stats: this.stats, takenCell: this.takenCell, givenCell: this.givenCell, onReadable: this.onReadable } = o);
  }

  /** Does main own the input now? */
  owned(): boolean {
    return Atomics.load(this.ctl, this.ownerWord) === INTAKE_MAIN;
  }

  /**
   * The thread handed the input over and main does not watch it yet. Main checks this after it
   * arms its doorbell, like any other work: the thread's store precedes its ring of the bell, so
   * either this sees it or the bell does (no lost hand-over).
   */
  awaitsWatch(): boolean {
    return !this.watching && !this.closed && this.owned();
  }

  /** Main owns the input: watch exactly these descriptors (-1: none), re-created when they change. Cheap when nothing changed (every drain calls it). */
  watch(fd0: number, fd1 = -1): void {
    if (this.closed) return; // stopping (a stage that runs after stop() began must not watch again)
    if (this.watching && fd0 === this.fd0 && fd1 === this.fd1) return;
    if (fd0 !== this.fd0 || fd1 !== this.fd1) {
      this.closeWatches();
      this.fd0 = fd0;
      this.fd1 = fd1;
      this.watches = [fd0, fd1].filter((fd) => fd >= 0).map((fd) => new FdWatch(fd, this.readable, this.pollFailed));
      if (this.hook !== null) for (const w of this.watches) w.setHook(this.hook);
    }
    for (const w of this.watches) w.start();
    if (!this.watching) {
      this.watching = true;
      this.stats[this.takenCell]! += 1;
    }
  }

  /** Give the input back to its thread (load, or stopping). */
  handBack(): void {
    for (const w of this.watches) w.stop();
    if (this.watching) this.stats[this.givenCell]! += 1;
    this.watching = false;
    Atomics.store(this.ctl, this.ownerWord, INTAKE_THREAD);
    Atomics.notify(this.ctl, this.ownerWord, 1);
  }

  /**
   * The input is readable and main owns it: read batches into the ring (from C_PRODUCED) until the
   * addon keeps nothing of what it read, then hand the input back if that was load — a batch of
   * HAND_TO_THREAD_MIN or more, too little room for a batch, or a failed read (the thread reads
   * again and reports it). What the addon keeps is this thread's, so with pieces kept and no room
   * main keeps the input and tries again in 1 ms. Returns how many packets it published.
   */
  readAll(): number {
    const ring = this.ring;
    let seq = Atomics.load(this.ctl, ring.iProduced);
    let total = 0;
    let load = 0;
    let roomy = true;
    let failed = false;
    do {
      roomy = ring.slots - ((seq - Atomics.load(this.ctl, ring.iFreed)) | 0) >= this.batch;
      if (!roomy) break;
      const got = this.read(seq, this.batch);
      if (got < 0) {
        failed = true;
        break;
      }
      seq = (seq + got) | 0;
      total += got;
      load += this.load === null ? got : this.load();
    } while (this.pending() !== 0);
    if (total === 0 && !failed && roomy) return 0; // nothing there (a look before sleeping): nothing changes hands
    if (!failed && this.pending() !== 0) {
      this.retry ??= setTimeout(() => {
        this.retry = null;
        if (!this.closed) this.onReadable(this);
      }, 1);
    } else if (this.pace.busy(total, performance.now(), load) || failed || !roomy || !this.ring.partner!.quiet()) {
      this.handBack();
    }
    return total;
  }

  /** Stop watching and free the watchers (before the descriptors are closed); final. */
  close(): void {
    this.closed = true;
    if (this.retry !== null) clearTimeout(this.retry);
    this.retry = null;
    this.closeWatches();
    this.fd0 = -1;
    this.fd1 = -1;
    this.watching = false;
  }

  private closeWatches(): void {
    for (const w of this.watches) w.close();
    this.watches = [];
  }
}
