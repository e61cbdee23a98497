// A Pipeline wired as the Device wires it, for ring-level tests and benchmarks: its TUN fd is a
// MemTun (the real TUN reader and writer threads on a socketpair, see memtun.ts) and its UDP
// sockets are a NativeBind on loopback read by the real UDP reader thread. The test is "the OS" on
// the MemTun's other end (write / writeAll in, received out) and "the network" through a dgram
// socket that sends to the bind's port (send / sendAll); a transport message is keyed by the UDP
// reader when its receiver index is in `indexMap` (map it with indexMap.set(index, keypairId)),
// anything else goes to hooks.classify on main, as in the daemon.
//
// Waiting: until(cond) re-checks its condition after every hook call and every batch the MemTun
// delivers (hooks run on main, inside the pipeline's drains: the re-check runs in a microtask, after
// the drain has moved its cursors). Every wait is bounded.
//
// Teardown: close() stops the pipeline (no thread uses a socket or slot after that), then closes
// the sockets, the MemTun and the sender. Idempotent.
import dgram from 'node:dgram';
import { ReceiverIndexMap } from '../../src/dataplane/indexmap.js';
import { DEFAULT_KEYPAIR_CAPACITY } from '../../src/dataplane/layout.js';
import { Pipeline, type PipelineHooks, type PipelineOptions } from '../../src/dataplane/pipeline.js';
import { NativeBind } from '../../src/io/bind.js';
import { udpNative } from '../../src/io/udp-native.js';
import { MemTun } from './memtun.js';

export const RIG_WAIT_MS = 20_000;
/** Datagrams sendAll() lets run ahead of the check stage: far inside the bind's socket buffer. */
export const RIG_SEND_WINDOW = 256;

/** Pipeline options less the I/O the rig provides, and how the rig provides it. */
export type RigOptions = Omit<PipelineOptions, 'tunFd' | 'udp'> & {
  /** The TUN fd (with tunWriteFd, e.g. named pipes) instead of a MemTun. */
  tunFd?: number;
  /** The MemTun to use (the rig closes it), e.g. a count-only one for a benchmark; default a new one. */
  memtun?: MemTun;
  /** false: hand the hooks over as they are (no bump() after each: until() then only hears of MemTun batches). Default true. */
  watchHooks?: boolean;
};

export class PipelineRig {
  /** The MemTun the pipeline reads and writes (null when opts.tunFd replaced it). */
  readonly memtun: MemTun | null;
  readonly indexMap: ReceiverIndexMap;
  readonly bind: NativeBind;
  p!: Pipeline;
  private readonly tx: dgram.Socket;
  private readonly udpWakeFd: number;
  private readonly retiredSockets: (() => void)[] = [];
  private waiters: (() => void)[] = [];
  private scheduled = false;
  private closing: Promise<void> | null = null;

  private constructor(memtun: MemTun | null, keypairs: number, tx: dgram.Socket) {
    this.memtun = memtun;
    this.indexMap = ReceiverIndexMap.create(keypairs);
    this.bind = new NativeBind((close) => this.retiredSockets.push(close));
    this.tx = tx;
    this.udpWakeFd = udpNative().eventfd();
    memtun?.watch(() => this.bump());
  }

  static async start(opts: RigOptions, hooks: PipelineHooks): Promise<PipelineRig> {
    const memtun = opts.tunFd !== undefined ? null : opts.memtun ?? await MemTun.create('rig', opts.maxInnerMtu ?? 1420);
    const tx = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => tx.bind(0, '127.0.0.1', () => resolve()));
    const rig = new PipelineRig(memtun, opts.keys?.capacity ?? opts.keypairCapacity ?? DEFAULT_KEYPAIR_CAPACITY, tx);
    try {
      const { memtun: _, watchHooks, ...pipelineOpts } = opts;
      rig.p = await Pipeline.start({
        ...pipelineOpts,
        tunFd: opts.tunFd ?? memtun!.tun.fd,
        tunWakeFd: opts.tunFd === undefined ? memtun!.tun.wakeFd : opts.tunWakeFd,
        udp: { wakeFd: rig.udpWakeFd, indexMap: rig.indexMap.buffer },
      }, watchHooks === false ? hooks : rig.watched(hooks));
      rig.bind.bind(0);
      const closes = rig.retiredSockets.splice(0);
      rig.p.setUdpSockets(rig.bind.fd4, rig.bind.fd6, () => { for (const close of closes) close(); });
    } catch (err) {
      await rig.close();
      throw err;
    }
    return rig;
  }

  /** The port the pipeline's sockets listen on (127.0.0.1 and ::1). */
  get port(): number {
    return this.bind.port;
  }

  /** Re-check the conditions until() waits on (after the current drain: a microtask). */
  bump(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    });
  }

  /** Resolves once cond() holds, re-checked after every hook call and MemTun batch; rejects after ms. */
  until(cond: () => boolean, what: string, ms = RIG_WAIT_MS): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
      }, ms);
      const check = (): void => {
        if (cond()) {
          clearTimeout(timer);
          resolve();
        } else this.waiters.push(check);
      };
      check();
    });
  }

  /** "The network": one datagram to the pipeline's IPv4 socket, from 127.0.0.1. */
  send(msg: Uint8Array): void {
    this.tx.send(msg, this.bind.port, '127.0.0.1');
  }

  /**
   * Sends every message in order, keeping at most `window` of them ahead of `consumed()` (how many
   * the check stage has seen, onOpened and classify together), so the socket buffer never overflows.
   */
  async sendAll(msgs: readonly Uint8Array[], consumed: () => number, window = RIG_SEND_WINDOW): Promise<void> {
    const base = consumed();
    for (let i = 0; i < msgs.length; i++) {
      if (i - (consumed() - base) >= window) {
        await this.until(() => i - (consumed() - base) < window, `the check stage within ${window} of datagram ${i}`);
      }
      this.send(msgs[i]!);
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.p?.stop();
      this.bind.close();
      for (const close of this.retiredSockets.splice(0)) close();
      udpNative().close(this.udpWakeFd);
      await this.memtun?.close();
      await new Promise<void>((resolve) => this.tx.close(() => resolve()));
    })();
    return this.closing;
  }

  /** The hooks, each followed by a bump(). */
  private watched(hooks: PipelineHooks): PipelineHooks {
    const out: Record<string, unknown> = {};
    for (const [name, f] of Object.entries(hooks)) {
      out[name] = typeof f !== 'function' ? f : (...args: unknown[]): unknown => {
        try {
          return (f as (...a: unknown[]) => unknown).apply(hooks, args);
        } finally {
          this.bump();
        }
      };
    }
    return out as unknown as PipelineHooks;
  }
}
