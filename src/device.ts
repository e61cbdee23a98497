// The composition root: one WireGuard interface. It wires the sans-I/O engine (handshakes,
// routing, timers) to the edges — the UDP sockets (src/io/bind.ts), the dataplane pipeline
// (crypto workers, TUN and UDP threads over SharedArrayBuffer rings), the rules of each
// direction (src/send.ts, src/receive.ts: the pipeline's main-thread stages) — and hands the
// UAPI (src/uapi/device-adapter.ts) and the metrics (src/metrics/device-source.ts) their views of
// it. It is the only place where the engine's timers meet setTimeout.
//
// A packet's way, by thread (each arrow is one hand-off between threads; batches cross together):
//   send:    TUN reader (read, GSO split) → main: send.route → crypto worker: seal + sendmmsg
//            → main: send.onSealed (counters, timers; off the packet's path)
//   receive: UDP reader (recvmmsg, GRO split) → main: receive.classify → crypto worker: open
//            → main: receive.onOpened → TUN writer (GRO-coalesced writes), or main for a lone packet
import { performance } from 'node:perf_hooks';
import { DEFAULT_MTU, MESSAGE_INITIATION } from './constants.js';
import { nodeCrypto } from './crypto/crypto.js';
import { Pipeline } from './dataplane/pipeline.js';
import { DEFAULT_KEYPAIR_CAPACITY, DEFAULT_LOCAL_SLOTS, DEFAULT_MAX_INNER_MTU, DEFAULT_RING_SLOTS } from './dataplane/layout.js';
import { ReceiverIndexMap } from './dataplane/indexmap.js';
import { type KeyTable } from './dataplane/keytable.js';
import { HandshakeOffload } from './handshake-offload.js';
import { HandshakeQueue, type QueuedHandshake } from './handshake-queue.js';
import { NativeBind } from './io/bind.js';
import { TUN_MAX_MTU, type TunDevice } from './io/tun.js';
import { udpNative } from './io/udp-native.js';
import { type Logger } from './log.js';
import { DeviceMetrics } from './metrics/device-source.js';
import { HandshakeStats } from './metrics/handshakes.js';
import { peerLabel } from './peer-name.js';
import { DROP_REASONS, DropCounters } from './protocol/drops.js';
import { type Clock, Engine, type EngineHooks } from './protocol/engine.js';
import { type Keypair } from './protocol/keypair.js';
import { STATS_PER_PEER } from './protocol/peer.js';
import { BackgroundWork } from './background-work.js';
import { IdlePath } from './idle-path.js';
import { DrainClock } from './drain-clock.js';
import { ReceivePath } from './receive.js';
import { SendPath } from './send.js';
import { DeviceUapi } from './uapi/device-adapter.js';
import { errorText } from './error-text.js';

export interface DeviceOptions {
  ifname: string;
  /** The interface (src/io/tun.ts; tests hand in a memory TUN of the same shape). */
  tun: TunDevice;
  workers: number;
  /** Handshake worker threads (src/handshake-offload.ts); 0 or absent: initiations are answered on main. */
  handshakeWorkers?: number;
  log: Logger;
  /** Initial listen port (0 = random). */
  listenPort?: number;
}

/** Main-thread time per event-loop turn for the peers' DH(static, static) left after a configuration change (≈ 50 X25519s). */
const PRECOMPUTE_SLICE_MS = 2;
/** How soon that work looks again while handshakes are queued. */
const PRECOMPUTE_RETRY_MS = 10;

const monotonicClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
};

export class Device {
  readonly engine: Engine;
  readonly ifname: string;
  private pipeline!: Pipeline;
  private readonly udp: NativeBind;
  private readonly log: Logger;
  private readonly handshakes: HandshakeQueue;
  /** null: initiations are answered on main. */
  private readonly offload: HandshakeOffload | null;
  private mtu = DEFAULT_MTU;
  private fwmark = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private timerAt = Infinity;
  /**
   * The peers' DH(static, static) after a configuration change, PRECOMPUTE_SLICE_MS per event-loop
   * turn between packets, and none while handshakes are queued (each computes its own peer's).
   */
  private readonly precompute: BackgroundWork;
  private closed = false;
  private tunGoneCallbacks: (() => void)[] = [];
  /** Closes of replaced socket pairs, handed to the pipeline with the next setUdpSockets(). */
  private retiredSockets: (() => void)[] = [];
  private udpWakeFd = -1;
  private readonly tun: TunDevice;
  /** growSlots() is replacing the pipeline. */
  private growing = false;
  /** Base64 public key → friendly name (`# friendly_name` in the config file): added to log lines naming the peer. */
  peerNames: ReadonlyMap<string, string> = new Map();
  /** Installed keypairs by key-table id, and their receiver indices in shared memory (UDP reader fast path). */
  private readonly keypairById: (Keypair | undefined)[] = [];
  private readonly indexMap = ReceiverIndexMap.create(DEFAULT_KEYPAIR_CAPACITY);
  /** The rules of each direction (src/send.ts, src/receive.ts). */
  private readonly send: SendPath;
  private readonly idle: IdlePath;
  private readonly receive: ReceivePath;
  /** The engine's clock: one reading per dataplane drain pass. */
  private readonly clock = new DrainClock();
  /** Crypto workers of the dataplane. */
  private readonly workers: number;
  /** Handshake attempts, results, durations and messages, fed by the engine's observer hooks. */
  readonly handshakeStats = new HandshakeStats(monotonicClock.now);
  /** What `wg` reads and changes (the UAPI server's and --config's device). */
  readonly uapi: DeviceUapi;
  /** What /metrics reads. */
  readonly metrics: DeviceMetrics;

  private constructor(opts: DeviceOptions) {
    this.ifname = opts.ifname;
    this.tun = opts.tun;
    this.log = opts.log;
    this.workers = opts.workers;
    const hooks: EngineHooks = {
      sendTo: (ep, msg) => this.udp.sendTo(ep, msg),
      sendTransport: (peer, kp, counter, plaintext) => this.send.sendLocal(peer, kp, counter, plaintext),
      keypairCreated: (kp) => this.installKeys(kp),
      keypairRetired: (kp) => this.retireKeys(kp),
      handshakeCompleted: (peer, isInitiator) => {
        this.log.verbose('handshake complete', { ...peerLabel(peer.publicKey, this.peerNames), role: isInitiator ? 'initiator' : 'responder' });
        this.handshakeStats.completed(peer.id, isInitiator);
      },
      handshakeMessage: (type, direction, peer) => this.handshakeStats.message(type, direction, peer ? peer.id : -1),
      log: (level, msg, fields) => (level === 'error' ? this.log.error(msg, fields) : this.log.verbose(msg, fields)),
      logVerbose: opts.log.level === 'verbose',
      peerLabel: (peer) => peerLabel(peer.publicKey, this.peerNames),
    };
    // Per-peer counters and drop counters live in shared memory, so any thread (metrics,
    // workers) can read them without a message.
    const maxPeers = 1 << 17;
    this.engine = new Engine({
      crypto: nodeCrypto,
      clock: this.clock,
      hooks,
      maxPeers,
      stats: new Float64Array(new SharedArrayBuffer(maxPeers * STATS_PER_PEER * 8)),
      drops: new DropCounters(new Float64Array(new SharedArrayBuffer(2 * DROP_REASONS.length * 8))),
    });
    // A replaced socket pair closes once the UDP reader left it and no send slot names its fds.
    this.udp = new NativeBind((close) => this.retiredSockets.push(close));
    this.handshakes = new HandshakeQueue((h, underLoad) => this.processHandshake(h, underLoad), monotonicClock.now);
    this.handshakes.onRefused = (type) => this.handshakeStats.rejected(type);
    this.offload = (opts.handshakeWorkers ?? 0) > 0 ? new HandshakeOffload({
      engine: this.engine,
      threads: opts.handshakeWorkers!,
      processed: (msg, dropped) => {
        if (dropped !== null) this.handshakeStats.rejected(msg[0]!);
        this.scheduleTimers();
      },
      resume: () => this.handshakes.resume(),
      taskFailed: (err) => this.log.error('handshake worker failed; its initiations were answered on the main thread', { error: String(err) }),
    }) : null;
    if (this.offload) {
      const offload = this.offload;
      this.handshakes.blocked = () => offload.busy;
    }
    this.idle = new IdlePath({ engine: this.engine, bind: this.udp, keyGenerations: () => this.pipeline.keys.generations, mtu: () => this.mtu });
    this.send = new SendPath({ engine: this.engine, idle: this.idle, bind: this.udp, pipeline: () => this.pipeline, mtu: () => this.mtu });
    this.receive = new ReceivePath(this.engine, this.handshakes, (id) => this.keypairById[id], this.idle);
    this.precompute = new BackgroundWork({
      work: (budgetMs) => this.engine.precomputeStaticStatics(budgetMs),
      busy: () => this.handshakes.length > 0 || (this.offload?.length ?? 0) > 0,
      sliceMs: PRECOMPUTE_SLICE_MS,
      retryMs: PRECOMPUTE_RETRY_MS,
    });
    this.uapi = new DeviceUapi({
      engine: this.engine,
      listenPort: () => this.udp.port,
      bindPort: (port) => this.bindPort(port),
      fwmark: () => this.fwmark,
      applyFwmark: (mark) => {
        this.udp.setMark(mark);
        this.fwmark = mark;
      },
      committed: () => {
        this.scheduleTimers();
        this.schedulePrecompute();
      },
      peerNames: () => this.peerNames,
      logError: (msg, fields) => this.log.error(msg, fields),
    });
    this.metrics = new DeviceMetrics({
      ifname: this.ifname, engine: this.engine, handshakeStats: this.handshakeStats, handshakes: this.handshakes, offload: this.offload,
      workers: this.workers, listenPort: () => this.udp.port, fwmark: () => this.fwmark,
      pipeline: () => this.pipeline as Pipeline | undefined,
    });
  }

  static async create(opts: DeviceOptions): Promise<Device> {
    const d = new Device(opts);
    d.udpWakeFd = udpNative().eventfd();
    d.mtu = opts.tun.mtu();
    d.pipeline = await d.startPipeline(Math.max(d.mtu, DEFAULT_MAX_INNER_MTU), null);
    try {
      d.bindPort(opts.listenPort ?? 0);
    } catch (err) {
      await d.close();
      throw err;
    }
    d.engine.up();
    return d;
  }

  /**
   * The dataplane, with ring slots for inner packets up to `maxInnerMtu`: DEFAULT_MAX_INNER_MTU
   * (9216) covers every usual MTU in 1024-slot rings (≈ 21 MB); a larger MTU gets 64 KiB slots in
   * rings of a quarter the depth (≈ 37 MB). `keys`: the key table to keep (a replacement).
   */
  private startPipeline(maxInnerMtu: number, keys: KeyTable | null): Promise<Pipeline> {
    const jumbo = maxInnerMtu > DEFAULT_MAX_INNER_MTU;
    const tun = this.tun;
    return Pipeline.start({
      workers: this.workers,
      tunFd: tun.fd,
      tunQueueFds: tun.queueFds ?? [],
      tunQueueWakeFds: tun.queueWakeFds ?? [],
      tunName: tun.name,
      tunWakeFd: tun.wakeFd,
      tunVnetHdr: tun.vnetHdr,
      udp: { wakeFd: this.udpWakeFd, indexMap: this.indexMap.buffer },
      maxInnerMtu: jumbo ? TUN_MAX_MTU : DEFAULT_MAX_INNER_MTU,
      ...(jumbo ? { ringSlots: DEFAULT_RING_SLOTS / 4, localSlots: DEFAULT_LOCAL_SLOTS / 4 } : {}),
      ...(keys ? { keys } : {}),
      idleVersions: { routeVersion: this.engine.allowedIPs.version, engineVersion: this.engine.version },
    }, {
      route: (slot, data, len, meta) => this.send.route(slot, data, len, meta),
      idleGrant: (lease) => this.idle.grant(lease),
      idleSettle: (lease) => this.idle.settle(lease),
      classify: (slot, data, len, meta) => this.receive.classify(slot, data, len, meta),
      onSealed: (slot, data, msgLen, ok, meta, sent) => this.send.onSealed(slot, data, msgLen, ok, meta, sent),
      onOpened: (slot, data, plen, ok, meta) => this.receive.onOpened(slot, data, plen, ok, meta),
      drainPass: () => this.clock.pass(),
      drained: () => {
        this.clock.release();
        this.scheduleTimers(); // once for every deadline the drain's packets moved
      },
      onTunMtu: (mtu) => this.onTunMtu(mtu),
      onTunGone: () => { for (const cb of this.tunGoneCallbacks) cb(); },
      onWorkerError: (id, err) => this.log.error('dataplane thread failed; restarting it', { worker: id, error: errorText(err) }),
      onHookError: (stage, err) => this.log.error('packet hook failed', { stage, error: err instanceof Error ? err.stack : String(err) }),
    });
  }

  /** The TUN reader read a new MTU: padding follows it from the next packet; past the ring slots' size, the dataplane is rebuilt with larger slots. */
  private onTunMtu(mtu: number): void {
    this.mtu = mtu;
    const p = this.pipeline as Pipeline | undefined; // undefined while the first one starts (it fits the MTU then)
    if (p !== undefined && mtu > p.maxInnerMtu && !this.growing && !this.closed) void this.growSlots();
  }

  /**
   * Replace the dataplane by one with 64 KiB slots (an MTU above 9216 was set): stop the threads,
   * start new ones on the same TUN, sockets and key table. Packets in flight at that moment are
   * lost, once; sessions, peers and counters stay.
   */
  private async growSlots(): Promise<void> {
    this.growing = true;
    try {
      const old = this.pipeline;
      this.log.verbose('MTU above the ring slots: rebuilding the dataplane with 64 KiB slots', { mtu: this.mtu, slot_mtu: old.maxInnerMtu });
      await old.stop();
      if (this.closed) return;
      const next = await this.startPipeline(TUN_MAX_MTU, old.keys);
      if (this.closed) { // close() stopped the old one meanwhile
        await next.stop();
        return;
      }
      this.pipeline = next;
      next.setUdpSockets(this.udp.fd4, this.udp.fd6, () => {});
    } catch (err) {
      this.log.error('cannot rebuild the dataplane for the new MTU', { mtu: this.mtu, error: errorText(err) });
    } finally {
      this.growing = false;
    }
  }

  get listenPort(): number {
    return this.udp.port;
  }

  onTunGone(cb: () => void): void {
    this.tunGoneCallbacks.push(cb);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.precompute.stop();
    this.handshakes.clear();
    await this.offload?.close();
    this.engine.down();
    await this.pipeline?.stop(); // no thread uses a socket or slot after this
    this.udp.close();
    for (const close of this.retiredSockets.splice(0)) close();
    if (this.udpWakeFd >= 0) udpNative().close(this.udpWakeFd);
    this.udpWakeFd = -1;
  }

  /** (Re)bind the listen port (0: a fresh random one) and hand the sockets to the UDP reader. Throws (sockets unchanged) on failure. */
  private bindPort(port: number): void {
    this.udp.bind(port);
    const closes = this.retiredSockets.splice(0);
    this.pipeline.setUdpSockets(this.udp.fd4, this.udp.fd6, () => { for (const close of closes) close(); });
  }

  /** The running dataplane (its counters and threads: tests, benchmarks, diagnostics). */
  get dataplane(): Pipeline {
    return this.pipeline;
  }

  // ───────────────────────── UDP in ─────────────────────────

  /** An initiation's arithmetic goes to the handshake workers when main falls behind (HandshakeOffload.wants); the rest is done here. */
  private processHandshake(h: QueuedHandshake, underLoad: boolean): void {
    if (this.closed) return;
    if (this.offload && h.msg[0] === MESSAGE_INITIATION && this.offload.wants(this.handshakes.length)) {
      if (this.engine.admitInitiation(h.msg, h.src, underLoad) === null) this.offload.submit(h.msg, h.src);
      else this.handshakeStats.rejected(MESSAGE_INITIATION);
      return;
    }
    if (this.engine.receiveHandshake(h.msg, h.src, underLoad) !== null) this.handshakeStats.rejected(h.msg[0]!);
    this.scheduleTimers();
  }

  // ───────────────────────── engine hooks ─────────────────────────

  /** A new session's keys go into the key table; its receiver index into the UDP reader's map. */
  private installKeys(kp: Keypair): void {
    const keys = this.pipeline.keys;
    const id = keys.allocate();
    if (id < 0) {
      this.log.error('keypair table full; session cannot be used', { capacity: keys.capacity });
      return;
    }
    keys.setKeys(id, kp.sendKey, kp.receiveKey);
    kp.keyId = id;
    this.keypairById[id] = kp;
    this.indexMap.set(kp.localIndex, id);
  }

  /** A retired session: unmapped now, its keys zeroed once no slot can name them. */
  private retireKeys(kp: Keypair): void {
    if (kp.keyId < 0) return;
    this.indexMap.delete(kp.localIndex);
    if (this.keypairById[kp.keyId] === kp) this.keypairById[kp.keyId] = undefined;
    this.pipeline.retireKeys(kp.keyId);
    kp.keyId = -1;
  }

  // ───────────────────────── timers ─────────────────────────

  /** Make sure a timeout is armed no later than the engine's next deadline. Cheap: one heap peek. */
  private scheduleTimers(): void {
    const at = this.engine.nextDeadline();
    if (at >= this.timerAt || this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(this.onTimer, Math.max(0, at - monotonicClock.now()));
  }

  private readonly onTimer = (): void => {
    this.timer = null;
    this.timerAt = Infinity;
    // A turn of main's like any other: first what the idle hooks did since the last one is settled
    // (drain), so the timers due now see those packets (one the hook just received cancels a
    // new-handshake timer falling due in the same 2 ms; one it just sent, a keepalive).
    this.pipeline.drain();
    this.engine.tick();
    this.scheduleTimers();
  };

  /** The engine has peers' DH(static, static) left to compute (a configuration added peers, or the private key changed). */
  private schedulePrecompute(): void {
    if (this.engine.staticStaticPending) this.precompute.start();
  }
}
