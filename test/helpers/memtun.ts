// An in-memory TUN device for Device-level tests (like wireguard-go's tuntest.ChannelTUN): a
// SOCK_SEQPACKET AF_UNIX socketpair (native/udp.c socketpair(), packet boundaries kept). The
// Device gets one end as a TunDevice without the virtio header, so its TUN reader and writer
// threads use the real native readSlots / writeSlots on it exactly as on /dev/net/tun, one
// packet per read and write. The test holds the other end, "the OS":
//   write(pkt) / writeAll(pkts)   an IP packet the OS routes into the interface;
//   received / until(cond)        packets the interface delivered to the OS, in order.
// The OS end is read by a small worker thread blocked in the same native readSlots (poll on the
// socket and a wake eventfd), which posts each batch to the main thread; until() re-checks its
// condition on every batch, so nothing sleeps to wait for a packet. Every wait is bounded.
//
// Teardown: await device.close() first (the Device's TUN threads stop), then await memtun.close()
// (stops the reader worker, closes both ends and the eventfds). close() is idempotent.
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { type TunDevice } from '../../src/io/tun.js';
import { udpNative } from '../../src/io/udp-native.js';

export const MEMTUN_DEFAULT_MTU = 1420;
const TUN_ADDON = fileURLToPath(new URL('../../../native/build/Release/wirepool_tun.node', import.meta.url));

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
    this.wake();
    this.#closed = true;
    udpNative().close(this.fd);
    udpNative().close(this.wakeFd);
  }
}

// The OS-side reader: readSlots (vnetHdr false: one read = one packet) into a private buffer,
// blocking in poll until a packet or the wake eventfd; each batch goes to main as transferred
// ArrayBuffers. Ends on stop (flag + wake) or when readSlots reports the socket gone (< 0).
const READER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const tun = require(workerData.addon);
const { fd, wakeFd, stop } = workerData;
const SLOT = 65536 + 48, BATCH = 64;
const data = new Uint8Array(SLOT * BATCH);
const meta = new Int32Array(32 * BATCH);
const slots = Int32Array.from({ length: BATCH }, (_, i) => i);
const out = new Int32Array(8);
const flag = new Int32Array(stop);
for (;;) {
  if (Atomics.load(flag, 0) !== 0) break;
  const n = tun.readSlots(fd, wakeFd, false, data, SLOT, meta, slots, BATCH, -1, out);
  if (n < 0) { parentPort.postMessage({ end: n }); break; }
  if (n === 0) continue;
  const pkts = [];
  for (let i = 0; i < n; i++) pkts.push(data.slice(i * SLOT + 16, i * SLOT + 16 + meta[i * 32 + 1]));
  parentPort.postMessage({ pkts }, pkts.map((p) => p.buffer));
}
`;

export class MemTun {
  /** Hand this to Device.create({ tun }). */
  readonly tun: TunDevice;
  /** Every packet the interface delivered to "the OS" (its TUN writes), in order. */
  readonly received: Uint8Array[] = [];
  /** Set when the reader saw the socket gone (readSlots' negative return value). */
  readerEnd: number | null = null;
  readerError: Error | null = null;
  private readonly osFd: number;
  private readonly readerWakeFd: number;
  private readonly stopFlag = new Int32Array(new SharedArrayBuffer(4));
  private readonly reader: Worker;
  private readonly readerExited: Promise<void>;
  private waiters: (() => void)[] = [];
  private readonly watchers: (() => void)[] = [];
  private closed = false;

  private constructor(name: string, mtu: number) {
    const u = udpNative();
    const [devFd, osFd] = u.socketpair();
    this.osFd = osFd;
    this.tun = new MemTunDevice(name, devFd, u.eventfd(), mtu);
    this.readerWakeFd = u.eventfd();
    this.reader = new Worker(READER_SOURCE, {
      eval: true,
      workerData: { addon: TUN_ADDON, fd: osFd, wakeFd: this.readerWakeFd, stop: this.stopFlag.buffer },
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
  static async create(name = 'memtun', mtu = MEMTUN_DEFAULT_MTU): Promise<MemTun> {
    const m = new MemTun(name, mtu);
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

  /** Stops the reader thread (bounded), then closes the TunDevice, the OS end and the eventfd. */
  async close(ms = 5_000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    Atomics.store(this.stopFlag, 0, 1);
    udpNative().wake(this.readerWakeFd);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = await Promise.race([
      this.readerExited.then(() => false),
      new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(true), ms); }),
    ]);
    clearTimeout(timer);
    if (timedOut) await this.reader.terminate();
    this.tun.close();
    udpNative().close(this.osFd);
    udpNative().close(this.readerWakeFd);
    if (timedOut) throw new Error(`memory TUN reader did not stop within ${ms} ms`);
  }
}
