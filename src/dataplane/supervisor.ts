// Supervision of the dataplane threads: starts the crypto workers and the TUN reader/writer as
// long-lived plain worker_threads Workers (from dist/workers/*.js, attached by passing the
// SharedArrayBuffers in workerData), replaces any that exits or throws, and stops them all with a
// bound on every wait.
//
// Why not piscina: these tasks never return, so piscina's queueing, idle timeout, utilization and
// close() (which waits closeTimeout = 30 s, then emits 'error') do nothing useful for them; a
// never-returning task also occupies one of maxThreads forever. And run() per packet or per batch
// costs 14–41 µs of main CPU against ~0.3 µs for a ring slot (measured with bench/ring.ts and a
// piscina pool on a 2-vCPU host).
//
// Replacement: a thread that exits while the pipeline runs is reported (events.error) and
// restarted with the same id and the same buffers: at once if it had lived ≥ 1 s, else after
// 50 ms · 2^n (≤ 5 s) so a thread that cannot start does not spin. Before a crypto worker is
// replaced, events.cryptoExited(id) lets the pipeline reclaim the slots it owned. A TUN thread is
// not restarted when events.tunThreadExited(id) says the device is gone.
//
// Stopping: the caller first sets CTL_SHUTDOWN and notifies every wait word; stop() then waits up
// to stopTimeoutMs for each thread and terminates what is left. The I/O threads wait in poll()
// with a wake eventfd, so they see the shutdown at once; should the TUN reader still be inside a
// native call that does not return, terminate() cannot take effect before it does: stop() then
// leaves it unref'd, and readerRunning stays true until it is gone.
//
// Node options: src/thread-options.ts (the process's, less the main program's preloads).

import { Worker } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { startThread } from '../thread-options.js';
import { type DataplaneShared, MAIN_WORKER_RESTARTS, STAT_MAIN } from './layout.js';

export const TUN_READER_ID = -1;
/** The thread id of TUN queue q's reader (TUN_READER_ID for queue 0). */
export function tunReaderId(q: number): number {
  return q === 0 ? TUN_READER_ID : -10 - q;
}
export const TUN_WRITER_ID = -2;
export const UDP_READER_ID = -3;

const CRYPT_WORKER_URL = new URL('../../workers/crypt-worker.js', import.meta.url);
const TUN_READER_URL = new URL('../../workers/tun-reader.js', import.meta.url);
const TUN_WRITER_URL = new URL('../../workers/tun-writer.js', import.meta.url);
const UDP_READER_URL = new URL('../../workers/udp-reader.js', import.meta.url);

const FAST_RESTART_MS = 1000;
const MAX_RESTART_DELAY_MS = 5000;

export interface SupervisorConfig {
  shared: DataplaneShared;
  workers: number;
  /** The TUN device's queues: one reader thread each (a single-queue device: one fd). */
  tunFds: readonly number[];
  /** The fds the TUN writer writes to: every queue of tunFds (each flow to one: native/tun.c writeSlots), or one other fd. */
  tunWriteFds: readonly number[];
  /** Name of the TUN interface (the reader reads its MTU); '' when unknown. */
  tunName: string;
  /** Per queue, the eventfd that interrupts its TUN reader's poll (-1: none). */
  tunWakeFds: readonly number[];
  /** The TUN fd carries virtio_net_hdr (offloads). */
  tunVnetHdr: boolean;
  /** eventfd that interrupts the UDP reader's poll. */
  udpWakeFd: number;
  /** The receiver-index map the UDP reader keys transport messages with. */
  udpIndexMap: SharedArrayBuffer;
  cryptoModule: string | undefined;
  cryptoModuleData: unknown;
  startTimeoutMs: number;
  stopTimeoutMs: number;
}

export interface SupervisorEvents {
  /** Crypto worker `id` is gone (also during start or stop): reclaim the slots it owned. */
  cryptoExited(id: number): void;
  /** TUN thread `id` exited while running: return false if the TUN is gone (no restart). */
  tunThreadExited(id: number): boolean;
  /** A thread failed and is being replaced. */
  error(id: number, err: unknown): void;
  /** A replacement attached. */
  restarted(id: number): void;
}

interface ThreadEntry {
  worker: Worker;
  startedAt: number;
  fastRestarts: number;
  exited: Promise<number>;
  /** An 'error' event was already reported. */
  errored: boolean;
}

function threadName(id: number): string {
  return id >= 0 ? `wirepool-crypt-${id}` : id === TUN_READER_ID ? 'wirepool-tun-reader' : id <= -11 ? `wirepool-tun-reader-${-10 - id}`
    : id === UDP_READER_ID ? 'wirepool-udp-reader' : 'wirepool-tun-writer';
}

/** Resolves true when `p` settles within `ms`, false otherwise; leaves no timer behind. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([p.then(() => true), new Promise<boolean>((res) => { timer = setTimeout(() => res(false), ms); })]);
  } finally {
    clearTimeout(timer);
  }
}

export class Supervisor {
  private readonly crypto: (ThreadEntry | undefined)[] = [];
  /** The TUN readers, by queue. */
  private readonly readers: (ThreadEntry | undefined)[] = [];
  private writer: ThreadEntry | undefined;
  private udpReader: ThreadEntry | undefined;
  private readonly restartTimers = new Set<ReturnType<typeof setTimeout>>();
  private started = false;
  private stopping = false;

  constructor(private readonly cfg: SupervisorConfig, private readonly events: SupervisorEvents, private readonly stats: Float64Array) {}

  /** Start every thread and wait (≤ startTimeoutMs) until all report 'ready'. Rejects on the first failure. */
  async start(): Promise<void> {
    // Each thread by name, so a timeout says which ones never reported.
    const pending = new Set<string>();
    const ready: Promise<void>[] = [];
    const track = (name: string, p: Promise<void>): void => {
      pending.add(name);
      ready.push(p.then(() => { pending.delete(name); }));
    };
    for (let id = 0; id < this.cfg.workers; id++) track(`crypto worker ${id}`, this.spawnCrypto(id));
    this.cfg.tunFds.forEach((_, q) => track(q === 0 ? 'TUN reader' : `TUN reader ${q}`, this.spawnReader(q)));
    track('TUN writer', this.spawnWriter());
    track('UDP reader', this.spawnUdpReader());
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`dataplane threads did not attach within ${this.cfg.startTimeoutMs} ms (still starting: ${[...pending].join(', ')})`)),
        this.cfg.startTimeoutMs);
    });
    try {
      await Promise.race([Promise.all(ready), timeout]);
    } finally {
      clearTimeout(timer);
    }
    this.started = true;
  }

  /** A crypto worker thread by id (tests, diagnostics). */
  cryptoWorker(id: number): Worker | undefined {
    return this.crypto[id]?.worker;
  }

  get readerRunning(): boolean {
    return this.readers.some((r) => r !== undefined);
  }

  /** Bounded stop; the caller has already set CTL_SHUTDOWN and notified every wait word. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of this.restartTimers) clearTimeout(t);
    this.restartTimers.clear();
    const bounded = async (e: ThreadEntry | undefined): Promise<void> => {
      if (e === undefined) return;
      if (!(await within(e.exited, this.cfg.stopTimeoutMs))) await within(e.worker.terminate(), this.cfg.stopTimeoutMs);
    };
    await Promise.all([...this.crypto.map(bounded), bounded(this.writer), bounded(this.udpReader)]);
    this.writer = undefined;
    this.udpReader = undefined;
    await Promise.all(this.readers.map(async (reader, q) => {
      if (reader === undefined) return;
      if (await within(reader.exited, this.cfg.stopTimeoutMs)) {
        this.readers[q] = undefined;
      } else {
        // Still inside a native call: terminate() takes effect only when it returns; don't wait.
        void reader.worker.terminate();
        reader.worker.unref();
        void reader.exited.then(() => { if (this.readers[q] === reader) this.readers[q] = undefined; });
      }
    }));
  }

  /** Start a thread; `ready` resolves when it reports 'ready' and rejects if it fails first (during start). */
  private spawn(url: URL, workerData: unknown, id: number, prev: ThreadEntry | undefined,
    onExit: (entry: ThreadEntry, code: number) => void): { entry: ThreadEntry; ready: Promise<void> } {
    const worker = startThread((execArgv) => new Worker(url, { workerData, name: threadName(id), execArgv }));
    let exitResolve!: (code: number) => void;
    const exited = new Promise<number>((res) => { exitResolve = res; });
    const entry: ThreadEntry = { worker, startedAt: performance.now(), fastRestarts: prev?.fastRestarts ?? 0, exited, errored: false };
    let isReady = false;
    const ready = new Promise<void>((resolve, reject) => {
      worker.on('message', (msg: { type?: string }) => {
        if (msg?.type === 'ready') {
          isReady = true;
          resolve();
        }
      });
      worker.on('error', (err) => {
        if (!isReady && !this.started) reject(err);
        else if (!this.stopping) {
          entry.errored = true;
          this.events.error(id, err);
        }
      });
      worker.on('exit', (code) => {
        exitResolve(code);
        if (!isReady && !this.started) reject(new Error(`dataplane thread ${threadName(id)} exited with code ${code} before attaching`));
        onExit(entry, code);
      });
    });
    ready.catch(() => { /* start() reports it; after start, 'error'/'exit' do */ });
    return { entry, ready };
  }

  private spawnCrypto(id: number): Promise<void> {
    const data = {
      shared: this.cfg.shared,
      workerId: id,
      cryptoModule: this.cfg.cryptoModule,
      cryptoModuleData: this.cfg.cryptoModuleData,
    };
    const { entry, ready } = this.spawn(CRYPT_WORKER_URL, data, id, this.crypto[id], (e, code) => this.onCryptoExit(id, e, code));
    this.crypto[id] = entry;
    return ready;
  }

  private spawnReader(q: number): Promise<void> {
    const data = { shared: this.cfg.shared, queue: q, fd: this.cfg.tunFds[q]!, name: this.cfg.tunName, wakeFd: this.cfg.tunWakeFds[q]!, vnetHdr: this.cfg.tunVnetHdr };
    const id = tunReaderId(q);
    const { entry, ready } = this.spawn(TUN_READER_URL, data, id, this.readers[q], (e, code) => this.onTunThreadExit(id, e, code));
    this.readers[q] = entry;
    return ready;
  }

  private spawnWriter(): Promise<void> {
    const data = { shared: this.cfg.shared, fds: [...this.cfg.tunWriteFds], vnetHdr: this.cfg.tunVnetHdr };
    const { entry, ready } = this.spawn(TUN_WRITER_URL, data, TUN_WRITER_ID, this.writer, (e, code) => this.onTunThreadExit(TUN_WRITER_ID, e, code));
    this.writer = entry;
    return ready;
  }

  private spawnUdpReader(): Promise<void> {
    const data = { shared: this.cfg.shared, wakeFd: this.cfg.udpWakeFd, indexMap: this.cfg.udpIndexMap };
    const { entry, ready } = this.spawn(UDP_READER_URL, data, UDP_READER_ID, this.udpReader, (e, code) => this.onUdpReaderExit(e, code));
    this.udpReader = entry;
    return ready;
  }

  private onUdpReaderExit(entry: ThreadEntry, code: number): void {
    if (this.udpReader !== entry) return;
    if (this.stopping || !this.started) {
      this.udpReader = undefined;
      return;
    }
    if (!entry.errored) this.events.error(UDP_READER_ID, new Error(`${threadName(UDP_READER_ID)} exited with code ${code}`));
    this.restart(entry, () => {
      this.spawnUdpReader().then(() => this.events.restarted(UDP_READER_ID), (err) => this.events.error(UDP_READER_ID, err));
    });
  }

  private onCryptoExit(id: number, entry: ThreadEntry, code: number): void {
    if (this.crypto[id] !== entry) return;
    this.events.cryptoExited(id);
    if (this.stopping || !this.started) return;
    if (!entry.errored) this.events.error(id, new Error(`crypto worker ${id} exited with code ${code}`));
    this.restart(entry, () => {
      this.spawnCrypto(id).then(() => this.events.restarted(id), (err) => this.events.error(id, err));
    });
  }

  private onTunThreadExit(id: number, entry: ThreadEntry, code: number): void {
    const q = this.readers.indexOf(entry); // -1: the writer
    if (q < 0 && this.writer !== entry) return;
    if (this.stopping || !this.started || !this.events.tunThreadExited(id)) {
      if (q >= 0) this.readers[q] = undefined;
      else this.writer = undefined;
      return;
    }
    if (!entry.errored) this.events.error(id, new Error(`${threadName(id)} exited with code ${code}`));
    this.restart(entry, () => {
      (q >= 0 ? this.spawnReader(q) : this.spawnWriter()).then(() => this.events.restarted(id), (err) => this.events.error(id, err));
    });
  }

  /** Respawn at once if the thread lived ≥ FAST_RESTART_MS, else after 50 ms · 2^n (≤ 5 s). */
  private restart(entry: ThreadEntry, respawn: () => void): void {
    this.stats[STAT_MAIN + MAIN_WORKER_RESTARTS]! += 1;
    const fast = performance.now() - entry.startedAt < FAST_RESTART_MS;
    entry.fastRestarts = fast ? entry.fastRestarts + 1 : 0;
    if (entry.fastRestarts === 0) {
      respawn();
      return;
    }
    const delay = Math.min(MAX_RESTART_DELAY_MS, 50 * 2 ** (entry.fastRestarts - 1));
    const t = setTimeout(() => {
      this.restartTimers.delete(t);
      if (!this.stopping) respawn();
    }, delay);
    this.restartTimers.add(t);
  }
}
