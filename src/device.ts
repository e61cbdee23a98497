// The composition root: one WireGuard interface. It wires the sans-I/O engine (handshakes,
// routing, timers) to the edges — the UDP sockets (src/io/bind.ts), the dataplane pipeline
// (crypto workers, TUN and UDP threads over SharedArrayBuffer rings) and the UAPI
// configuration interface — and is the only place where the engine's timers meet setTimeout.
//
// Send path (TUN → UDP), stage by stage:
//   TUN reader thread reads a batch of packets into TUN-ring slots (GSO super-packets split)
//   → route() here, main thread: destination → peer (allowed-IPs trie), keypair + counter
//     assigned (or the packet is staged and a handshake started), header, padding and the
//     peer's endpoint words written
//   → a crypto worker seals a batch of slots in place and sends, in ring order, every finished
//     slot (sendmmsg, UDP GSO) — or leaves it to main (socket buffer full)
//   → onSealed() here, in ring order: counters and timers, and the send for what no worker sent.
// Receive path (UDP → TUN):
//   UDP reader thread: recvmmsg (UDP GRO split) straight into RECV-ring slots, with the
//     sender's address and our local address in the slot's endpoint words
//   → classify() here, main thread: type filter; handshake types are copied to the handshake
//     queue, transport: receiver index → keypair
//   → a crypto worker opens a batch in place
//   → onOpened() here, in ring order: replay window, roaming, key confirmation, timers, inner
//     IP header and source-address check (cryptokey routing)
//   → the TUN writer thread writes the inner packets to TUN (coalescing TCP segments: GRO).
import { performance } from 'node:perf_hooks';
import { DEFAULT_MTU, MESSAGE_TRANSPORT } from './constants.js';
import { clampPrivateKey, nodeCrypto } from './crypto/crypto.js';
import { Pipeline, RING_TUN, type SlotMeta, SlotState } from './dataplane/pipeline.js';
import { type TunDevice } from './io/tun.js';
import { NativeBind } from './io/bind.js';
import { endpointFromWords, endpointWords, endpointWordsEqual } from './io/endpoint-words.js';
import { udpNative } from './io/udp-native.js';
import { M_EP_FAMILY, META_WORDS } from './dataplane/layout.js';
import { type Logger } from './log.js';
import { formatPrefix } from './protocol/allowedips.js';
import { Direction, DROP_REASONS, DropCounters } from './protocol/drops.js';
import { type Endpoint, endpointFromBytes, formatEndpoint } from './protocol/endpoint.js';
import { type Clock, Engine, type EngineHooks, type PacketSource } from './protocol/engine.js';
import { type Keypair } from './protocol/keypair.js';
import { messageType, paddedLength, readU32, Transport, writeTransportHeader } from './protocol/messages.js';
import { type Peer, Stat, STATS_PER_PEER } from './protocol/peer.js';
import { HandshakeQueue, type QueuedHandshake } from './handshake-queue.js';
import { type UapiDevice, type UapiDeviceState, UapiError } from './uapi/protocol.js';
import { HandshakeStats } from './metrics/handshakes.js';
import { type MetricsDataplane, type MetricsDeviceInfo, type MetricsPeer, type MetricsSource } from './metrics/source.js';
import { HANDSHAKE_QUEUE_SIZE } from './constants.js';

export interface DeviceOptions {
  ifname: string;
  /** null = no TUN (tests/benchmarks drive the TUN ring directly). */
  tun: TunDevice | null;
  workers: number;
  log: Logger;
  /** Initial listen port (0 = random). */
  listenPort?: number;
}

const monotonicClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
};

export class Device implements UapiDevice, MetricsSource {
  readonly engine: Engine;
  readonly ifname: string;
  private pipeline!: Pipeline;
  private readonly udp: NativeBind;
  private readonly log: Logger;
  private readonly handshakes: HandshakeQueue;
  private mtu = DEFAULT_MTU;
  private fwmark = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private timerAt = Infinity;
  private closed = false;
  private tunGoneCallbacks: (() => void)[] = [];
  /** Closes of replaced socket pairs, handed to the pipeline with the next setUdpSockets(). */
  private retiredSockets: (() => void)[] = [];
  private udpWakeFd = -1;
  private mtuPoll: ReturnType<typeof setInterval> | null = null;
  readonly uapiRequests = new Map<string, number>();
  // Main-only side data per ring slot (the pipeline's views are reused; these are ours).
  private tunSlotPeer: (Peer | undefined)[] = [];
  private localSlotPeer: (Peer | undefined)[] = [];
  private recvSlotKeypair: (Keypair | undefined)[] = [];
  /** Endpoint words per Endpoint object (a roam makes a new object), copied into each send slot. */
  private readonly epWords = new WeakMap<Endpoint, Int32Array>();
  /** The RECV slot onOpened() is checking, as the engine's PacketSource (one reused object). */
  private readonly recvSource: RecvSlotSource;

  private constructor(opts: DeviceOptions) {
    this.ifname = opts.ifname;
    this.log = opts.log;
    const hooks: EngineHooks = {
      sendTo: (ep, msg) => this.udp.sendTo(ep, msg),
      sendTransport: (peer, kp, counter, plaintext) => this.sendLocal(peer, kp, counter, plaintext),
      keypairCreated: (kp) => this.installKeys(kp),
      keypairRetired: (kp) => { if (kp.keyId >= 0) this.pipeline.retireKeys(kp.keyId); kp.keyId = -1; },
      handshakeCompleted: (peer, isInitiator) => {
        this.log.verbose('handshake complete', { peer: peer.name, role: isInitiator ? 'initiator' : 'responder' });
        this.handshakeStats.completed(peer.id, isInitiator);
      },
      handshakeMessage: (type, direction, peer) => this.handshakeStats.message(type, direction, peer ? peer.id : -1),
      log: (level, msg, fields) => (level === 'error' ? this.log.error(msg, fields) : this.log.verbose(msg, fields)),
    };
    // Per-peer counters and drop counters live in shared memory, so any thread (metrics,
    // workers) can read them without a message.
    const maxPeers = 1 << 17;
    this.engine = new Engine({
      crypto: nodeCrypto,
      clock: monotonicClock,
      hooks,
      maxPeers,
      stats: new Float64Array(new SharedArrayBuffer(maxPeers * STATS_PER_PEER * 8)),
      drops: new DropCounters(new Float64Array(new SharedArrayBuffer(2 * DROP_REASONS.length * 8))),
    });
    // A replaced socket pair closes once the UDP reader left it and no send slot names its fds.
    this.udp = new NativeBind((close) => this.retiredSockets.push(close));
    this.recvSource = new RecvSlotSource((ep) => this.wordsOf(ep));
    this.handshakes = new HandshakeQueue((h, underLoad) => this.processHandshake(h, underLoad), monotonicClock.now);
  }

  static async create(opts: DeviceOptions): Promise<Device> {
    const d = new Device(opts);
    d.metricsWorkers = opts.workers;
    const wakeFd = udpNative().eventfd();
    d.udpWakeFd = wakeFd;
    d.pipeline = await Pipeline.start({
      workers: opts.workers,
      tunFd: opts.tun ? opts.tun.fd : null,
      tunWakeFd: opts.tun?.wakeFd,
      tunVnetHdr: opts.tun?.vnetHdr,
      udp: { wakeFd },
    }, {
      route: (slot, data, len, meta) => d.route(slot, data, len, meta),
      classify: (slot, data, len, meta) => d.classify(slot, data, len, meta),
      onSealed: (slot, data, msgLen, ok, meta, sent) => d.onSealed(slot, data, msgLen, ok, meta, sent),
      onOpened: (slot, data, plen, ok, meta) => d.onOpened(slot, data, plen, ok, meta),
      onTunGone: () => { for (const cb of d.tunGoneCallbacks) cb(); },
      onWorkerError: (id, err) => d.log.error('dataplane thread failed; restarting it', { worker: id, error: err instanceof Error ? err.message : String(err) }),
      onHookError: (stage, err) => d.log.error('packet hook failed', { stage, error: err instanceof Error ? err.stack : String(err) }),
    });
    try {
      d.bindPort(opts.listenPort ?? 0);
    } catch (err) {
      await d.close();
      throw err;
    }
    if (opts.tun) {
      d.mtu = opts.tun.mtu();
      d.mtuPoll = setInterval(() => { try { d.mtu = opts.tun!.mtu(); } catch { /* link gone: the watcher reports it */ } }, 1000);
      d.mtuPoll.unref();
    }
    d.engine.up();
    return d;
  }

  get listenPort(): number {
    return this.udp.port;
  }

  onTunGone(cb: () => void): void {
    this.tunGoneCallbacks.push(cb);
  }

  countUapiRequest(op: 'get' | 'set', errno: number): void {
    const k = `${op}:${errno}`;
    this.uapiRequests.set(k, (this.uapiRequests.get(k) ?? 0) + 1);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.mtuPoll) clearInterval(this.mtuPoll);
    this.handshakes.clear();
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

  /** For tests and benchmarks without a TUN device. */
  get dataplane(): Pipeline {
    return this.pipeline;
  }

  // ───────────────────────── UDP in ─────────────────────────

  /** RECV ring, stage 2: what is this datagram (data[0, len), sender in the endpoint words)? */
  private classify(slot: number, data: Uint8Array, len: number, meta: SlotMeta): boolean {
    const type = messageType(data, len);
    if (type === 0) {
      this.engine.drops.count(Direction.Inbound, 'malformed');
      return false;
    }
    if (type !== MESSAGE_TRANSPORT) {
      const src = endpointFromWords(meta.metaWords, meta.base + M_EP_FAMILY);
      if (!src) this.engine.drops.count(Direction.Inbound, 'malformed');
      else if (!this.handshakes.push({ msg: data.slice(0, len), src })) this.engine.drops.count(Direction.Inbound, 'queue_full');
      return false;
    }
    const kp = this.engine.lookupReceive(readU32(data, Transport.RECEIVER));
    if (!kp || kp.keyId < 0) return false;
    meta.keypairId = kp.keyId;
    meta.peerId = kp.peerId;
    meta.counterLo = readU32(data, Transport.COUNTER);
    meta.counterHi = readU32(data, Transport.COUNTER + 4);
    this.recvSlotKeypair[slot] = kp;
    return true;
  }

  private processHandshake(h: QueuedHandshake, underLoad: boolean): void {
    if (this.closed) return;
    if (this.engine.receiveHandshake(h.msg, h.src, underLoad) !== null) this.handshakeStats.rejected(h.msg[0]!);
    this.scheduleTimers();
  }

  // ───────────────────────── dataplane hooks ─────────────────────────

  /** TUN ring, stage 2: pick peer, keypair and counter for the packet at data[16, 16+len). */
  private route(slot: number, data: Uint8Array, len: number, meta: SlotMeta): boolean {
    const e = this.engine;
    const version = len > 0 ? data[16]! >> 4 : 0;
    let peer: Peer | undefined;
    if (version === 4 && len >= 20) peer = e.allowedIPs.lookupV4(data, 16 + 16);
    else if (version === 6 && len >= 40) peer = e.allowedIPs.lookupV6(data, 16 + 24);
    else {
      e.drops.count(Direction.Outbound, 'malformed');
      return false;
    }
    if (!peer) {
      e.drops.count(Direction.Outbound, 'no_peer_for_destination');
      return false;
    }
    const kp = e.sendKeypair(peer);
    if (!kp || !peer.endpoint || kp.keyId < 0) {
      e.stage(peer, data.subarray(16, 16 + len));
      this.scheduleTimers();
      return false;
    }
    const counter = kp.sendCounter++;
    const padded = paddedLength(len, this.mtu);
    if (16 + padded + 16 > data.length) {
      e.drops.count(Direction.Outbound, 'too_big');
      return false;
    }
    writeTransportHeader(data, kp.remoteIndex, counter);
    data.fill(0, 16 + len, 16 + padded);
    meta.setSeal(padded, kp.keyId, counter >>> 0, Math.floor(counter / 0x1_0000_0000), peer.id);
    meta.metaWords.set(this.wordsOf(peer.endpoint), meta.base + M_EP_FAMILY);
    meta.sendFd = this.udp.fdFor(peer.endpoint.family);
    this.tunSlotPeer[slot] = peer;
    return true;
  }

  /** Send rings, in ring order: the sealed message went out from a worker (`sent`), or goes out now. */
  private onSealed(slot: number, data: Uint8Array, msgLen: number, ok: boolean, meta: SlotMeta, sent: boolean): boolean {
    const fromTun = meta.ring === RING_TUN;
    const peers = fromTun ? this.tunSlotPeer : this.localSlotPeer;
    const peer = peers[slot];
    peers[slot] = undefined;
    if (!peer) return false;
    if (!ok) {
      this.engine.drops.count(Direction.Outbound, meta.state === SlotState.DEAD ? 'worker_died' : 'encrypt_failed');
      return false;
    }
    if (peer.removed) {
      if (!sent) this.engine.drops.count(Direction.Outbound, 'no_endpoint');
      return false; // its stats row may already belong to another peer
    }
    if (!sent) { // no worker could send it (socket buffer full, or no socket yet): one more try from here
      const ep = peer.endpoint;
      if (!ep) {
        this.engine.drops.count(Direction.Outbound, 'no_endpoint');
        return false;
      }
      if (!this.udp.sendTo(ep, data.subarray(0, msgLen))) {
        this.engine.drops.count(Direction.Outbound, 'send_failed');
        return false;
      }
    }
    if (fromTun) {
      this.engine.transportSent(peer, msgLen, true);
      this.scheduleTimers();
    }
    return false;
  }

  /** The endpoint's words for send slots (computed once per Endpoint object). */
  private wordsOf(ep: Endpoint): Int32Array {
    let w = this.epWords.get(ep);
    if (w === undefined) {
      w = endpointWords(ep);
      this.epWords.set(ep, w);
    }
    return w;
  }

  /** RECV ring, stage 3: replay, roaming, timers and the cryptokey-routing source check. */
  private onOpened(slot: number, data: Uint8Array, plen: number, ok: boolean, meta: SlotMeta): number {
    const kp = this.recvSlotKeypair[slot];
    this.recvSlotKeypair[slot] = undefined;
    const e = this.engine;
    if (!kp) return -1;
    if (!ok) {
      e.drops.count(Direction.Inbound, meta.state === SlotState.DEAD ? 'worker_died' : 'decrypt_failed');
      return -1;
    }
    const counter = meta.counterLo + meta.counterHi * 0x1_0000_0000;
    const peer = e.receiveTransport(kp, counter, meta.length, plen, this.recvSource.at(meta));
    this.scheduleTimers();
    if (!peer || plen === 0) return -1; // dropped (counted), or a keepalive
    const version = data[16]! >> 4;
    let innerLen: number;
    let src: Peer | undefined;
    if (version === 4 && plen >= 20) {
      innerLen = (data[16 + 2]! << 8) | data[16 + 3]!;
      if (innerLen < 20 || innerLen > plen) return this.dropInbound('malformed');
      src = e.allowedIPs.lookupV4(data, 16 + 12);
    } else if (version === 6 && plen >= 40) {
      innerLen = ((data[16 + 4]! << 8) | data[16 + 5]!) + 40;
      if (innerLen > plen) return this.dropInbound('malformed');
      src = e.allowedIPs.lookupV6(data, 16 + 8);
    } else {
      return this.dropInbound('malformed');
    }
    if (src !== peer) return this.dropInbound('source_not_allowed');
    return innerLen;
  }

  private dropInbound(reason: 'malformed' | 'source_not_allowed'): number {
    this.engine.drops.count(Direction.Inbound, reason);
    return -1;
  }

  // ───────────────────────── engine hooks ─────────────────────────

  /** Keepalives and staged packets: sealed by a worker through the LOCAL ring. */
  private sendLocal(peer: Peer, kp: Keypair, counter: number, plaintext: Uint8Array): number {
    if (!peer.endpoint || kp.keyId < 0) return -1;
    const p = this.pipeline;
    const padded = paddedLength(plaintext.length, this.mtu);
    const slot = p.reserveLocal();
    if (slot < 0 || 16 + padded + 16 > p.slotBytes) {
      this.engine.drops.count(Direction.Outbound, slot < 0 ? 'ring_full' : 'too_big');
      return -1;
    }
    const data = p.localData(slot);
    writeTransportHeader(data, kp.remoteIndex, counter);
    data.set(plaintext, 16);
    data.fill(0, 16 + plaintext.length, 16 + padded);
    this.localSlotPeer[slot] = peer;
    p.localMeta(slot).set(this.wordsOf(peer.endpoint), slot * META_WORDS + M_EP_FAMILY);
    p.publishLocal(slot, padded, kp.keyId, peer.id, counter >>> 0, Math.floor(counter / 0x1_0000_0000), this.udp.fdFor(peer.endpoint.family));
    return 16 + padded + 16;
  }

  private installKeys(kp: Keypair): void {
    const keys = this.pipeline.keys;
    const id = keys.allocate();
    if (id < 0) {
      this.log.error('keypair table full; session cannot be used', { capacity: keys.capacity });
      return;
    }
    keys.setKeys(id, kp.sendKey, kp.receiveKey);
    kp.keyId = id;
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
    this.engine.tick();
    this.scheduleTimers();
  };

  // ───────────────────────── UAPI ─────────────────────────

  getState(): UapiDeviceState {
    const e = this.engine;
    const peers = [];
    for (const peer of e.peers()) {
      const s = peer.id * STATS_PER_PEER;
      const wall = peer.lastHandshakeWall;
      const psk = peer.handshake.presharedKey;
      peers.push({
        publicKey: peer.publicKey,
        presharedKey: psk.some((b) => b !== 0) ? psk : null,
        endpoint: peer.endpoint ? formatEndpoint(peer.endpoint) : null,
        lastHandshakeTimeSec: Math.floor(wall / 1000),
        lastHandshakeTimeNsec: (wall % 1000) * 1_000_000,
        txBytes: e.stats[s + Stat.TxBytes]!,
        rxBytes: e.stats[s + Stat.RxBytes]!,
        persistentKeepaliveInterval: peer.persistentKeepalive,
        allowedIps: e.allowedIPs.entriesForPeer(peer).map((p) => formatPrefix(p.addr, p.cidr)),
      });
    }
    return { privateKey: e.privateKey, listenPort: this.udp.port, fwmark: this.fwmark, peers };
  }

  publicKey(): Uint8Array | null {
    return this.engine.publicKey;
  }

  setPrivateKey(key: Uint8Array | null): void {
    this.engine.setPrivateKey(key ? clampPrivateKey(Uint8Array.from(key)) : null);
  }

  setListenPort(port: number): void {
    if (port !== 0 && this.udp.port === port) return;
    // Synchronous: the new sockets are open before the reply (and before anything this same
    // request configures is sent); a port that is taken is refused like wireguard-go (-98) and
    // the current sockets stay. 0 picks a fresh random port.
    try {
      this.bindPort(port);
    } catch (err) {
      this.log.error('cannot bind listen port', { port, error: err instanceof Error ? err.message : String(err) });
      throw new UapiError(-98, `cannot bind listen port ${port}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  setFwmark(mark: number): void {
    if (mark === this.fwmark) return;
    try {
      this.udp.setMark(mark);
    } catch (err) {
      throw new UapiError(-98, `cannot apply fwmark: ${err instanceof Error ? err.message : String(err)}`);
    }
    this.fwmark = mark;
  }

  replacePeers(): void {
    this.engine.removeAllPeers();
  }

  hasPeer(pub: Uint8Array): boolean {
    return this.engine.peerByKey(pub) !== undefined;
  }

  createPeer(pub: Uint8Array): void {
    this.engine.addPeer(pub);
  }

  removePeer(pub: Uint8Array): void {
    const peer = this.engine.peerByKey(pub);
    if (!peer) return;
    this.engine.removePeer(peer);
  }

  setPresharedKey(pub: Uint8Array, key: Uint8Array | null): void {
    this.engine.setPresharedKey(this.mustPeer(pub), key);
  }

  setEndpoint(pub: Uint8Array, host: Uint8Array, port: number): void {
    this.engine.setEndpoint(this.mustPeer(pub), endpointFromBytes(host, port));
  }

  setPersistentKeepalive(pub: Uint8Array, seconds: number): void {
    this.engine.setPersistentKeepalive(this.mustPeer(pub), seconds);
  }

  replaceAllowedIps(pub: Uint8Array): void {
    this.engine.allowedIPs.removeByPeer(this.mustPeer(pub));
  }

  addAllowedIp(pub: Uint8Array, addr: Uint8Array, cidr: number): void {
    this.engine.allowedIPs.insert(addr, cidr, this.mustPeer(pub));
  }

  removeAllowedIp(pub: Uint8Array, addr: Uint8Array, cidr: number): void {
    this.engine.allowedIPs.remove(addr, cidr, this.mustPeer(pub));
  }

  commit(): void {
    this.scheduleTimers();
  }

  private mustPeer(pub: Uint8Array): Peer {
    const peer = this.engine.peerByKey(pub);
    if (!peer) throw new UapiError(-55, 'peer vanished during configuration');
    return peer;
  }

  // ───────────────────────── metrics (MetricsSource, read at scrape time) ─────────────────────────

  /** Handshake attempts, results, durations and messages, fed by the engine's observer hooks. */
  readonly handshakeStats = new HandshakeStats(monotonicClock.now);
  /** Configuration file loads by result ('ok' | 'error'). */
  readonly configReloads = new Map<string, number>();
  /** Wall-clock ms of the last successful configuration load; 0 = none. */
  lastConfigReloadSuccess = 0;
  private metricsWorkers = 0;

  countConfigReload(ok: boolean): void {
    const k = ok ? 'ok' : 'error';
    this.configReloads.set(k, (this.configReloads.get(k) ?? 0) + 1);
    if (ok) this.lastConfigReloadSuccess = Date.now();
  }

  get metricsPeerStats(): Float64Array {
    return this.engine.stats;
  }

  get metricsDropCounts(): Float64Array {
    return this.engine.drops.counts;
  }

  metricsDeviceInfo(): MetricsDeviceInfo {
    return { publicKey: this.engine.publicKey, listenPort: this.udp.port, fwmark: this.fwmark };
  }

  metricsPeers(): Iterable<MetricsPeer> {
    return this.engine.peers();
  }

  metricsAllowedIps(peer: MetricsPeer): string[] {
    return this.engine.allowedIPs.entriesForPeer(peer as Peer).map((p) => formatPrefix(p.addr, p.cidr));
  }

  metricsDataplane(): MetricsDataplane | null {
    const p = this.pipeline;
    if (!p) return null;
    return { stats: p.stats, workers: this.metricsWorkers, slots: (r) => p.slots(r), inFlight: (r) => p.inFlight(r) };
  }

  metricsHandshakeQueue(): { length: number; capacity: number; underLoad: boolean } {
    return { length: this.handshakes.length, capacity: HANDSHAKE_QUEUE_SIZE, underLoad: this.handshakes.isUnderLoad() };
  }
}

/** The sender of the RECV slot being checked, compared in endpoint words (no allocation unless it roamed). */
class RecvSlotSource implements PacketSource {
  private words!: Int32Array;
  private base = 0;
  constructor(private readonly wordsOf: (ep: Endpoint) => Int32Array) {}
  at(meta: SlotMeta): this {
    this.words = meta.metaWords;
    this.base = meta.base + M_EP_FAMILY;
    return this;
  }
  isEndpoint(ep: Endpoint | null): boolean {
    return ep !== null && endpointWordsEqual(this.words, this.base, this.wordsOf(ep));
  }
  endpoint(): Endpoint | null {
    return endpointFromWords(this.words, this.base);
  }
}
