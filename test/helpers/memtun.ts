// An in-memory TUN device for Device-level tests and benchmarks (like wireguard-go's
// tuntest.ChannelTUN): a SOCK_SEQPACKET AF_UNIX socketpair (native/udp.c socketpair(), packet
// boundaries kept). The Device gets one end as a TunDevice without the virtio header, so its TUN
// reader and writer threads use the real native readSlots / writeSlots on it exactly as on
// /dev/net/tun, one packet per read and write. The test holds the other end, "the OS":
//   write(pkt) / writeAll(pkts)   an IP packet the OS routes into the interface;
//   flood(pkt) / stopFlood()      the same packet, over and over, from a worker thread;
//   received / until(cond)        packets the interface delivered to the OS, in order;
//   receivedCount / receivedBytes how many packets (bytes) it delivered, counted in shared memory.
// The OS end is read by a small worker thread blocked in the same native readSlots (poll on the
// socket and a wake eventfd). It counts every batch in a SharedArrayBuffer and posts the packets to
// the main thread; until() re-checks its condition on every batch, so nothing sleeps to wait for a
// packet. Every wait is bounded.
//
// Benchmarks measure the main thread, so the OS side must cost it nothing:
// - MemTun.create(name, mtu, { keep: false }): the reader only counts, posts nothing (`received`
//   stays empty, and until()/watch() only hear of the reader's end: read the counters instead);
// - flood(pkt): a worker thread writes pkt to the OS end with the native writeSlots, FLOOD_BATCH
//   (16) copies per call, until stopFlood() or close(), counting what it wrote (floodedCount). The
//   fd is non-blocking; on a full socket (the interface's TUN reader applies backpressure)
//   writeSlots itself waits in poll for room (POLLOUT, up to 4 × 5 ms per packet), so the loop
//   never spins and the flood resumes as soon as the interface reads. It sees the stop flag after
//   every call: within microseconds under load, at worst 16 × 20 ms when the interface reads
//   nothing (about 150 ms measured).
// The counters are BigInt64 words written with Atomics by one thread each (no tearing, no overflow).
//
// Teardown: await device.close() first (the Device's TUN threads stop), then await memtun.close()
// (stops the flood and the reader workers, closes both ends and the eventfds). close() is idempotent.
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { type TunDevice, tunNative } from '../../src/io/tun.js';
import { udpNative } from '../../src/io/udp-native.js';

export const MEMTUN_DEFAULT_MTU = 1420;
const TUN_ADDON = fileURLToPath(new URL('../../../native/build/Release/wirepool_tun.node', import.meta.url));

/** Words of the shared counters (BigInt64Array). */
const RECEIVED_PACKETS = 0;
const RECEIVED_BYTES = 1;
const FLOODED_PACKETS = 2;
const COUNTERS = 3;

export interface MemTunOptions {
  /** false: the reader only counts what the interface delivers and posts nothing to main. Default true. */
  keep?: boolean;
}

/** The Device's end: a TunDevice whose fd is one end of the socketpair. */
class MemTunDevice implements TunDevice {
  readonly vnetHdr = false;
  readonly offloads = 0;
  readonly uso = false;
  #mtu: number;
  #closed = false;

  constructor(readonly name: string, readonly fd: number, readonly wakeFd: number, mtu: number) {
    this.#mtu = mtu;
  }

  mtu(): number {
    return this.#mtu;
  }

  setMtu(mtu: number): void {
    if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) throw new RangeError(`invalid MTU ${mtu}`);
    this.#mtu = mtu;
  }

  exists(): boolean {
    return !this.#closed;
  }

  wake(): void {
    if (!this.#closed) udpNative().wake(this.wakeFd);
  }

  close(): void {
    if (this.#closed) return;
    tunNative().wake(this.wakeFd, true); // as a real device's close(): a reader still calling sees it closed
    this.#closed = true;
    udpNative().close(this.fd);
    udpNative().close(this.wakeFd);
  }
}

// The OS-side reader: readSlots (vnetHdr false: one read = one packet) into a private buffer,
// blocking in poll until a packet or the wake eventfd; each batch is counted (out[6]: bytes read)
// and, when kept, goes to main as transferred ArrayBuffers. Ends on stop (flag + wake) or when
// readSlots reports the socket gone (< 0).
const READER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const tun = require(workerData.addon);
const { fd, wakeFd, stop, counters, keep } = workerData;
const SLOT = 65536 + 48, BATCH = 64;
const data = new Uint8Array(SLOT * BATCH);
const meta = new Int32Array(32 * BATCH);
const slots = Int32Array.from({ length: BATCH }, (_, i) => i);
const out = new Int32Array(8);
const flag = new Int32Array(stop);
const count = new BigInt64Array(counters);
for (;;) {
  if (Atomics.load(flag, 0) !== 0) break;
  const n = tun.readSlots(fd, wakeFd, false, data, SLOT, meta, slots, BATCH, -1, out);
  if (n < 0) { parentPort.postMessage({ end: n }); break; }
  if (n === 0) continue;
  Atomics.add(count, ${RECEIVED_PACKETS}, BigInt(n));
  Atomics.add(count, ${RECEIVED_BYTES}, BigInt(out[6]));
  if (!keep) continue;
  const pkts = [];
  for (let i = 0; i < n; i++) pkts.push(data.slice(i * SLOT + 16, i * SLOT + 16 + meta[i * 32 + 1]));
  parentPort.postMessage({ pkts }, pkts.map((p) => p.buffer));
}
`;

/** Packets per writeSlots call of the flood: a stop is seen after every call. */
const FLOOD_BATCH = 16;

// The flood: one slot holding the packet, written FLOOD_BATCH times per writeSlots call (vnetHdr
// and GRO off: one write() each). out: [0] written, [1] failed, [2] last errno, [5] errno when the
// fd is gone. EAGAIN / ENOBUFS are the interface not reading yet: writeSlots waited in poll for room
// before giving up on a packet, so the loop just goes on. Any other failure ends the flood with an
// error (the worker's 'error' event).
const FLOOD_SOURCE = `
const { workerData } = require('node:worker_threads');
const { errno: E } = require('node:os').constants;
const tun = require(workerData.addon);
const { fd, pkt, stop, counters } = workerData;
const BATCH = ${FLOOD_BATCH};
const slotBytes = 16 + Math.max(pkt.length, 20);
const data = new Uint8Array(slotBytes);
data.set(pkt, 16);
const slots = new Int32Array(BATCH);
const lens = new Int32Array(BATCH).fill(pkt.length);
const out = new Int32Array(8);
const flag = new Int32Array(stop);
const count = new BigInt64Array(counters);
while (Atomics.load(flag, 0) === 0) {
  tun.writeSlots(fd, false, data, slotBytes, null, slots, lens, BATCH, false, out);
  Atomics.add(count, ${FLOODED_PACKETS}, BigInt(out[0]));
  if (out[5] !== 0) throw new Error('memory TUN flood: the socket is gone (errno ' + out[5] + ')');
  if (out[1] !== 0 && out[2] !== E.EAGAIN && out[2] !== E.ENOBUFS) throw new Error('memory TUN flood: write failed (errno ' + out[2] + ')');
}
`;

/** Resolves true when `exited` did not settle within ms. */
async function timedOut(exited: Promise<void>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = await Promise.race([
    exited.then(() => false),
    new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(true), ms); }),
  ]);
  clearTimeout(timer);
  return late;
}

export class MemTun {
  /** Hand this to Device.create({ tun }). */
  readonly tun: TunDevice;
  /** Every packet the interface delivered to "the OS" (its TUN writes), in order. */
  readonly received: Uint8Array[] = [];
  /** Set when the reader saw the socket gone (readSlots' negative return value). */
  readerEnd: number | null = null;
  readerError: Error | null = null;
  /** Why the flood stopped on its own (a write error other than a full socket), if it did. */
  floodError: Error | null = null;
  private readonly osFd: number;
  private readonly readerWakeFd: number;
  private readonly stopFlag = new Int32Array(new SharedArrayBuffer(4));
  private readonly floodStop = new Int32Array(new SharedArrayBuffer(4));
  private readonly counters = new BigInt64Array(new SharedArrayBuffer(COUNTERS * 8));
  private flooder: { worker: Worker; exited: Promise<void> } | null = null;
  private readonly reader: Worker;
  private readonly readerExited: Promise<void>;
  private waiters: (() => void)[] = [];
  private readonly watchers: (() => void)[] = [];
  private closed = false;

  private constructor(name: string, mtu: number, keep: boolean) {
    const u = udpNative();
    const [devFd, osFd] = u.socketpair();
    this.osFd = osFd;
    this.tun = new MemTunDevice(name, devFd, u.eventfd(), mtu);
    this.readerWakeFd = u.eventfd();
    this.reader = new Worker(READER_SOURCE, {
      eval: true,
      workerData: { addon: TUN_ADDON, fd: osFd, wakeFd: this.readerWakeFd, stop: this.stopFlag.buffer, counters: this.counters.buffer, keep },
    });
    this.reader.on('message', (m: { pkts?: ArrayBuffer[] | Uint8Array[]; end?: number }) => {
      if (m.pkts) for (const p of m.pkts) this.received.push(p instanceof Uint8Array ? p : new Uint8Array(p));
      if (m.end !== undefined) this.readerEnd = m.end;
      this.notify();
    });
    this.reader.on('error', (err) => {
      this.readerError = err;
      this.notify();
    });
    this.readerExited = new Promise((resolve) => this.reader.once('exit', () => resolve()));
  }

  /** A memory TUN called `name` (only for logs) with the given MTU; its reader thread is running. */
  static async create(name = 'memtun', mtu = MEMTUN_DEFAULT_MTU, opts: MemTunOptions = {}): Promise<MemTun> {
    const m = new MemTun(name, mtu, opts.keep ?? true);
    await new Promise<void>((resolve, reject) => {
      m.reader.once('online', resolve);
      m.reader.once('error', reject);
    });
    return m;
  }

  /** The OS writes one packet into the interface. False when the socket buffer is full (EAGAIN): try again later. */
  write(pkt: Uint8Array): boolean {
    try {
      const n = fs.writeSync(this.osFd, pkt);
      if (n !== pkt.length) throw new Error(`short write to the memory TUN: ${n} of ${pkt.length}`);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return false;
      throw err;
    }
  }

  /**
   * Writes every packet in order. On a full socket buffer (the Device's TUN reader applies
   * backpressure) it yields to the event loop and retries, for at most `ms` in all.
   */
  async writeAll(pkts: readonly Uint8Array[], ms = 20_000): Promise<void> {
    const deadline = Date.now() + ms;
    for (let i = 0; i < pkts.length;) {
      if (this.write(pkts[i]!)) {
        i++;
        continue;
      }
      if (Date.now() > deadline) throw new Error(`memory TUN: socket still full after ${ms} ms (${i} of ${pkts.length} written)`);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }

  /** Packets the interface delivered to the OS so far (kept or not). */
  get receivedCount(): number {
    return Number(Atomics.load(this.counters, RECEIVED_PACKETS));
  }

  /** Bytes of those packets. */
  get receivedBytes(): number {
    return Number(Atomics.load(this.counters, RECEIVED_BYTES));
  }

  /** Packets the floods have written into the interface so far. */
  get floodedCount(): number {
    return Number(Atomics.load(this.counters, FLOODED_PACKETS));
  }

  /**
   * Starts a worker thread that writes `pkt` into the interface over and over (see the header) until
   * stopFlood() or close(). Resolves once the worker runs. One flood at a time.
   */
  async flood(pkt: Uint8Array): Promise<void> {
    if (this.closed) throw new Error('memory TUN: closed');
    if (this.flooder !== null) throw new Error('memory TUN: already flooding');
    if (pkt.length < 1 || pkt.length > 65535) throw new RangeError(`memory TUN flood: packet of ${pkt.length} bytes`);
    Atomics.store(this.floodStop, 0, 0);
    this.floodError = null;
    const worker = new Worker(FLOOD_SOURCE, {
      eval: true,
      workerData: { addon: TUN_ADDON, fd: this.osFd, pkt, stop: this.floodStop.buffer, counters: this.counters.buffer },
    });
    worker.on('error', (err) => { this.floodError = err; });
    this.flooder = { worker, exited: new Promise((resolve) => worker.once('exit', () => resolve())) };
    await new Promise<void>((resolve, reject) => {
      worker.once('online', resolve);
      worker.once('error', reject);
    });
  }

  /** Stops the flood and waits (at most ms) for its worker to exit; rejects with floodError if it had failed. */
  async stopFlood(ms = 5_000): Promise<void> {
    const f = this.flooder;
    if (f === null) return;
    this.flooder = null;
    Atomics.store(this.floodStop, 0, 1);
    if (await timedOut(f.exited, ms)) {
      await f.worker.terminate();
      throw new Error(`memory TUN flood did not stop within ${ms} ms`);
    }
    if (this.floodError) throw this.floodError;
  }

  /** Resolves once cond() holds (checked now and after every batch the reader delivers); rejects after ms. */
  until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (cond()) {
          clearTimeout(timer);
          resolve();
        } else if (this.readerError || this.readerEnd !== null) {
          clearTimeout(timer);
          reject(new Error(`memory TUN reader stopped (${this.readerError?.message ?? `readSlots ${this.readerEnd}`}) while waiting for ${what}`));
        } else this.waiters.push(check);
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new Error(`timed out after ${ms} ms waiting for ${what} (${this.received.length} packets received)`));
      }, ms);
      check();
    });
  }

  /** Resolves once `n` packets in all have been received. */
  untilReceived(n: number, what = `${n} packets`, ms = 20_000): Promise<void> {
    return this.until(() => this.received.length >= n, what, ms);
  }

  /** Calls f after every batch the reader delivers (and when it stops), for waits of one's own. */
  watch(f: () => void): void {
    this.watchers.push(f);
  }

  private notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
    for (const f of this.watchers) f();
  }

  /**
   * Stops the flood and the reader threads (bounded), then closes the TunDevice, the OS end and the
   * eventfd: no thread of ours may touch an fd number after it is closed (it could be reused).
   */
  async close(ms = 5_000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    let floodFailure: unknown = null;
    try {
      await this.stopFlood(ms);
    } catch (err) {
      floodFailure = err;
    }
    Atomics.store(this.stopFlag, 0, 1);
    udpNative().wake(this.readerWakeFd);
    const readerLate = await timedOut(this.readerExited, ms);
    if (readerLate) await this.reader.terminate();
    this.tun.close();
    udpNative().close(this.osFd);
    udpNative().close(this.readerWakeFd);
    if (readerLate) throw new Error(`memory TUN reader did not stop within ${ms} ms`);
    if (floodFailure !== null) throw floodFailure;
  }
}
