// Handshake offload (issue 10): the arithmetic of answering initiations runs on a piscina pool
// of handshake workers, and the main thread keeps the state machine.
//
//   handshake queue drains an initiation ─▶ Engine.admitInitiation (§7: mac1; under load mac2, the limiter)
//     ─▶ submit(): joins this event-loop turn's batch ─▶ one piscina task per batch
//        (workers/handshake-worker.ts: prepareInitiation, all four X25519 but the precomputed one)
//     ─▶ results applied on main in the order the batches were submitted, whatever order the
//        workers finish in: Engine.receivePreparedInitiation (peer lookup, timestamp, replay and
//        flood rules, the response's KDFs and seal, the keypair, the send), at most 2 ms of it per
//        event-loop turn, like the queue's drain, so a flood of results cannot starve the data plane.
//
// Back-pressure: at most `maxInFlight` initiations are with the workers; while that many are,
// `busy` is true and the handshake queue keeps its messages, so its length still says when the
// device is under load. A batch whose task failed (a worker died, or threw) is processed on main
// from scratch: nothing is lost. The threads start without the main program's preloads
// (src/thread-options.ts). The task and the result are ArrayBuffers moved between threads
// (src/handshake-batch.ts), zeroed by the side that reads them.
import { Piscina } from 'piscina';
import { decodeResult, encodeTask } from './handshake-batch.js';
import { type Endpoint } from './protocol/endpoint.js';
import { type DropReason } from './protocol/drops.js';
import { type Engine } from './protocol/engine.js';
import { type PreparedInitiation, clearPrepared } from './protocol/noise.js';
import { startThread } from './thread-options.js';

const WORKER_URL = new URL('../workers/handshake-worker.js', import.meta.url);

/** Initiations in one task: enough to amortise a task's ≈ 20-40 µs of main-thread cost, few enough to spread over the workers. */
export const OFFLOAD_BATCH = 16;
/**
 * Messages waiting in the handshake queue from which initiations go to the workers. Below it the
 * main thread keeps up and answers them itself: a task costs main a message and a wake-up (≈ 40-70
 * µs on a 2-vCPU VM), more than the arithmetic it saves when batches are small, and adds the
 * workers' wake-up to the handshake's latency. Once initiations are with the workers, the next
 * ones follow them there until none are left, so they are finished in arrival order.
 */
export const OFFLOAD_MIN_BACKLOG = 8;
/** Initiations with the workers per worker thread (four batches each), before the queue keeps the rest. */
export const IN_FLIGHT_PER_WORKER = 4 * OFFLOAD_BATCH;

interface Item { msg: Uint8Array; src: Endpoint }

interface Batch {
  items: Item[];
  generation: number;
  /** Set when the task settled: the prepared initiations, or null when it failed. */
  results: (PreparedInitiation | null)[] | null | undefined;
  /** Items already finished on main (a batch may be finished over several event-loop turns). */
  applied: number;
}

export interface OffloadStats {
  /** Tasks run by the workers. */
  batches: number;
  /** Initiations prepared by a worker. */
  prepared: number;
  /** Initiations processed on main because their task failed. */
  fallback: number;
}

export interface HandshakeOffloadOptions {
  engine: Engine;
  /** Most worker threads (piscina starts them as tasks queue, and ends them after 60 s idle). */
  threads: number;
  /** An initiation was processed: `dropped` is its drop reason, null when it was answered. */
  processed(msg: Uint8Array, dropped: DropReason | null): void;
  /** Room for more: the handshake queue may drain again. */
  resume(): void;
  /** A task failed; its batch was processed on main. */
  taskFailed?(err: unknown): void;
  /** The task module (default: workers/handshake-worker.js). */
  workerUrl?: URL;
  /**
   * Milliseconds of finishing work per event-loop turn before yielding to I/O (default 2, as the
   * handshake queue's drain): results of several batches, or a failed batch answered on main
   * from scratch, may not hold the data plane up for longer.
   */
  budgetMs?: number;
}

export class HandshakeOffload {
  readonly stats: OffloadStats = { batches: 0, prepared: 0, fallback: 0 };
  private readonly pool: Piscina;
  private readonly engine: Engine;
  private readonly maxInFlight: number;
  private readonly opts: HandshakeOffloadOptions;
  /** Submitted batches, oldest first; the head is applied once it settled. */
  private readonly pending: Batch[] = [];
  private open: Batch | null = null;
  private inFlight = 0;
  private closed = false;
  private applyScheduled = false;
  private readonly budgetMs: number;

  constructor(opts: HandshakeOffloadOptions) {
    if (!Number.isInteger(opts.threads) || opts.threads < 1) throw new RangeError(`handshake workers: ${opts.threads}`);
    this.opts = opts;
    this.engine = opts.engine;
    this.maxInFlight = opts.threads * IN_FLIGHT_PER_WORKER;
    this.budgetMs = opts.budgetMs ?? 2;
    this.pool = startThread((execArgv) => new Piscina({ // its constructor starts the first thread
      filename: (opts.workerUrl ?? WORKER_URL).href,
      minThreads: 1,
      maxThreads: opts.threads,
      idleTimeout: 60_000,
      concurrentTasksPerWorker: 1,
      execArgv,
    }));
    this.pool.on('error', (err: unknown) => this.opts.taskFailed?.(err));
  }

  /** Whether the workers hold as many initiations as they may: take no more until resume(). */
  get busy(): boolean {
    return this.inFlight >= this.maxInFlight;
  }

  /** Initiations with the workers or waiting to be applied. */
  get length(): number {
    return this.inFlight;
  }

  /** The most initiations the workers may hold. */
  get capacity(): number {
    return this.maxInFlight;
  }

  /** Whether the next initiation goes to the workers, with `backlog` messages behind it in the handshake queue. */
  wants(backlog: number): boolean {
    return this.inFlight > 0 || backlog >= OFFLOAD_MIN_BACKLOG;
  }

  /** An initiation that passed Engine.admitInitiation: prepared on a worker, then finished on main in order. */
  submit(msg: Uint8Array, src: Endpoint): void {
    const key = this.engine.preparationKey;
    if (this.closed || !key) { // no device key: receivePreparedInitiation says why it is dropped
      this.opts.processed(msg, this.engine.receivePreparedInitiation(msg, src, undefined, -1));
      return;
    }
    if (this.open && this.open.generation !== key.generation) this.flush();
    if (!this.open) {
      this.open = { items: [], generation: key.generation, results: undefined, applied: 0 };
      queueMicrotask(this.flush);
    }
    this.open.items.push({ msg, src });
    this.inFlight++;
    if (this.open.items.length >= OFFLOAD_BATCH) this.flush();
  }

  /** Sends the open batch as one task (at the end of the event-loop turn that filled it, or when full). */
  private readonly flush = (): void => {
    const b = this.open;
    if (!b) return;
    this.open = null;
    const key = this.engine.preparationKey;
    this.pending.push(b);
    if (!key || key.generation !== b.generation) { // the device key changed in this turn: on main
      b.results = null;
      this.kickApply();
      return;
    }
    const task = encodeTask(key.identity, b.items.map((i) => i.msg));
    this.stats.batches++;
    this.pool.run(task, { transferList: [task] }).then(
      (result: ArrayBuffer) => {
        try {
          b.results = decodeResult(result, b.items.length);
          this.stats.prepared += b.items.length;
        } catch (err) {
          b.results = null;
          this.opts.taskFailed?.(err);
        }
        this.kickApply();
      },
      (err: unknown) => {
        b.results = null;
        if (!this.closed) this.opts.taskFailed?.(err);
        this.kickApply();
      },
    );
  };

  /** A batch settled: finish what can be finished now, unless a turn is already scheduled for it. */
  private kickApply(): void {
    if (!this.applyScheduled) this.applySettled();
  }

  /**
   * Finishes settled batches from the head, in submission order, for at most budgetMs per
   * event-loop turn (at least one initiation); the rest in the next turn.
   */
  private readonly applySettled = (): void => {
    this.applyScheduled = false;
    if (this.closed) return;
    const clock = this.engine.clock;
    const deadline = clock.now() + this.budgetMs;
    let freed = false; // at least one finished in this turn
    while (this.pending.length !== 0 && this.pending[0]!.results !== undefined) {
      const b = this.pending[0]!;
      const results = b.results!;
      if (results === null && b.applied === 0) this.stats.fallback += b.items.length;
      for (; b.applied < b.items.length; b.applied++, this.inFlight--, freed = true) {
        if (freed && clock.now() >= deadline) {
          if (!this.applyScheduled) {
            this.applyScheduled = true;
            setImmediate(this.applySettled);
          }
          if (freed) this.opts.resume();
          return;
        }
        const it = b.items[b.applied]!;
        const prepared = results === null ? undefined : results[b.applied];
        this.opts.processed(it.msg, this.engine.receivePreparedInitiation(it.msg, it.src, prepared, b.generation));
      }
      this.pending.shift();
    }
    if (freed) this.opts.resume();
  };

  /** Stops the workers; what is in flight is dropped (the device is closing). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.open = null;
    for (const b of this.pending) for (const r of b.results ?? []) if (r) clearPrepared(this.engine.crypto, r);
    this.pending.length = 0;
    await this.pool.destroy();
  }
}
