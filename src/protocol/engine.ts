// The sans-I/O WireGuard device engine: peers, handshakes, cookies under load, the
// index table, keypair rotation, staging, timers and roaming. It never touches a socket,
// a thread or a real clock: time comes from `clock`, randomness and crypto from `crypto`,
// and everything it wants done goes through `hooks`.
//
// Who calls what (main thread):
//   handshake datagram as it arrives ─▶ screenHandshake()          ─▶ hooks.sendTo() (cookie reply)
//   handshake datagrams (types 1–3) ─▶ receiveHandshake()          ─▶ hooks.sendTo()
//   TUN packet routed to a peer      ─▶ sendKeypair() / stage()    (counter assigned by caller)
//   sealed transport message sent    ─▶ transportSent()
//   transport datagram (type 4)      ─▶ lookupReceive() → [worker decrypts] → receiveTransport()
//   timers                           ─▶ nextDeadline() / tick()
// Keepalives and staged packets are sealed by the host through hooks.sendTransport().
import {
  COUNTER_LIMIT, HANDSHAKE_INITIATION_RATE, KEEPALIVE_TIMEOUT, KEY_LEN, LAST_MINUTE_REKEY, MAX_STAGED_PACKETS, MAX_TIMER_HANDSHAKES,
  MESSAGE_COOKIE_REPLY, MESSAGE_INITIATION, MESSAGE_RESPONSE, REKEY_AFTER_MESSAGES, REKEY_AFTER_TIME, REKEY_TIMEOUT,
  REKEY_TIMEOUT_JITTER_MAX, ZERO_KEY_MATERIAL_AFTER,
} from '../constants.js';
import { type Crypto, constantTimeEqual, isZeroKey } from '../crypto/crypto.js';
import { toHex } from '../hex.js';
import { LogLimiter } from '../log-limit.js';
import { type PeerLabel, peerKeyBase64 } from '../peer-name.js';
import { AllowedIPs } from './allowedips.js';
import { CookieChecker } from './cookie.js';
import { type DropReason, Direction, DropCounters } from './drops.js';
import { type Endpoint, endpointSourceKey, formatEndpoint, sameEndpoint, Sent, withoutSource } from './endpoint.js';
import { IndexTable } from './indextable.js';
import { Keypair } from './keypair.js';
import { Initiation, Response, readU32 } from './messages.js';
import {
  type Handshake, type NoiseInitialState, type PreparedInitiation, type ResponderEphemeral, type StaticIdentity, HandshakeState, InitiationVerdict,
  checkInitiation, clearOpened, clearPrepared, clearResponderEphemeral, commitInitiation, consumeInitiation, consumeResponse, createInitiation,
  createResponse, deriveKeys, initialState, openStatic, precomputeStaticStatic,
} from './noise.js';
import { Peer, Stat, STATS_PER_PEER } from './peer.js';
import { RateLimiter } from './ratelimiter.js';
import { REPLAY_WINDOW_SIZE } from './replay.js';
import { TimerHeap, TimerKind } from './timers.js';

const REKEY_AFTER_MESSAGES_N = Number(REKEY_AFTER_MESSAGES);

export interface Clock {
  /** Monotonic milliseconds (timers, key ages). */
  now(): number;
  /** Wall-clock milliseconds since the Unix epoch (TAI64N, last handshake time). */
  wallNow(): number;
}

/**
 * Where an authenticated transport message came from, as the host sees it (the host compares in
 * its own representation, and builds an Endpoint only when the peer roamed).
 */
export interface PacketSource {
  /** Whether the message came from exactly `ep` (address, port and the local address it was sent to). */
  isEndpoint(ep: Endpoint | null): boolean;
  /** The source as an Endpoint (null if it cannot be one). */
  endpoint(): Endpoint | null;
}

export interface EngineHooks {
  /** Send a datagram (handshake message or cookie reply) to an endpoint. */
  sendTo(ep: Endpoint, msg: Uint8Array): Sent;
  /** Seal `plaintext` (empty = keepalive) with kp/counter and send it to peer's endpoint; return the message length sent, or -1. */
  sendTransport(peer: Peer, kp: Keypair, counter: number, plaintext: Uint8Array): number;
  /** A keypair was created: install its keys where the crypto workers can use them (set kp.keyId). */
  keypairCreated(kp: Keypair): void;
  /** A keypair was retired: remove its keys from the workers' table (after in-flight use). */
  keypairRetired(kp: Keypair): void;
  /** Optional observers (logging, metrics). */
  handshakeCompleted?(peer: Peer, isInitiator: boolean): void;
  handshakeMessage?(type: number, direction: Direction, peer: Peer | null): void;
  log?(level: 'error' | 'verbose', msg: string, fields?: Record<string, unknown>): void;
  /** Whether `log` writes verbose lines (default: true); when false the engine builds none. */
  readonly logVerbose?: boolean;
  /** The fields that name a peer in log lines (default: { peer: base64 public key }). */
  peerLabel?(peer: Peer): PeerLabel;
}

export interface EngineOptions {
  crypto: Crypto;
  clock: Clock;
  hooks: EngineHooks;
  /** Uniform random number in [0, 1) for timer jitter; defaults to crypto-random. */
  random?: () => number;
  /** Per-peer counters (Stat × peer id); allocated here if not given. */
  stats?: Float64Array;
  drops?: DropCounters;
  maxPeers?: number;
}

interface IndexEntry { peer: Peer; keypair: Keypair | null }

/** What Engine.screenHandshake() decided about a handshake datagram before it is queued. */
export const enum Screened {
  /** Refused and counted (under load without a valid mac2: answered with a cookie reply). */
  Drop = 0,
  /** Not under load: queue it; receiveHandshake() applies the load rules as they are when it runs. */
  Queue = 1,
  /** Under load, passed mac2 and the rate limiter: queue it, then process it with underLoad = false. */
  Checked = 2,
}

export class Engine {
  readonly crypto: Crypto;
  readonly clock: Clock;
  readonly allowedIPs = new AllowedIPs<Peer>();
  /**
   * Bumped whenever a peer's endpoint or sessions change or a peer goes (roaming, UAPI, a keypair
   * installed, confirmed or retired): the dataplane's idle lease (src/dataplane/idle-lease.ts,
   * read by native code between main's turns) copied them and must not be used after.
   */
  readonly version = new Int32Array(1);
  readonly stats: Float64Array;
  readonly drops: DropCounters;
  readonly rateLimiter: RateLimiter;
  private readonly peersByKey = new Map<string, Peer>();
  private readonly peersById: (Peer | undefined)[] = [];
  private readonly freeIds: number[] = [];
  private readonly index: IndexTable<IndexEntry>;
  private readonly timers = new TimerHeap<Peer>();
  private readonly checker: CookieChecker;
  private readonly init: NoiseInitialState;
  private readonly hooks: EngineHooks;
  private readonly random: () => number;
  private readonly maxPeers: number;
  private identity: StaticIdentity | null = null;
  /** Counts device key changes: an initiation prepared under another key is prepared again (receivePreparedInitiation). */
  private identityGen = 0;
  /**
   * Peers whose DH(static, static) under the current device key may still be missing, in the order
   * they were queued (entries already computed, or of removed peers, are skipped): worked off by
   * precomputeStaticStatics() as the host finds time, or computed when a handshake needs it first.
   * One X25519 per peer (≈ 30-40 µs): done eagerly, as wireguard-go does, 100,000 peers cost ≈ 3.5 s
   * inside `wg setconf` and the same again, in one uninterrupted turn, when the private key changed.
   */
  private staticStaticQueue: Peer[] = [];
  private staticStaticNext = 0;
  private isUp = false;
  private readonly scratchInitiation = new Uint8Array(Initiation.SIZE);
  private readonly scratchResponse = new Uint8Array(Response.SIZE);
  /**
   * Verbose lines (wireguard-go's Verbosef: handshake messages, invalid ones with their source,
   * keypairs, roaming, timers) are built only when the host wants them, and rate-limited per
   * kind (src/log-limit.ts). Never per transport message: only handshakes, roaming and timers log.
   */
  private readonly verbose: boolean;
  private readonly logLimit: LogLimiter;

  constructor(opts: EngineOptions) {
    this.crypto = opts.crypto;
    this.clock = opts.clock;
    this.hooks = opts.hooks;
    this.maxPeers = opts.maxPeers ?? 1 << 17;
    this.stats = opts.stats ?? new Float64Array(this.maxPeers * STATS_PER_PEER);
    this.drops = opts.drops ?? new DropCounters();
    const c = this.crypto;
    this.random = opts.random ?? (() => readU32(c.randomBytes(4), 0) / 2 ** 32);
    this.index = new IndexTable<IndexEntry>(() => readU32(c.randomBytes(4), 0));
    this.checker = new CookieChecker(c);
    this.rateLimiter = new RateLimiter({ seed: readU32(c.randomBytes(4), 0) });
    this.init = initialState(c);
    this.verbose = this.hooks.log !== undefined && this.hooks.logVerbose !== false;
    this.logLimit = new LogLimiter(() => this.clock.now());
  }

  // ───────────────────────── configuration ─────────────────────────

  get publicKey(): Uint8Array | null {
    return this.identity?.publicKey ?? null;
  }
  get privateKey(): Uint8Array | null {
    return this.identity?.privateKey ?? null;
  }
  /** The device key and its generation, for preparing initiations off this thread (null: no key set). */
  get preparationKey(): { identity: StaticIdentity; generation: number } | null {
    return this.identity ? { identity: this.identity, generation: this.identityGen } : null;
  }
  get peerCount(): number {
    return this.peersByKey.size;
  }
  peers(): IterableIterator<Peer> {
    return this.peersByKey.values();
  }
  peerByKey(pub: Uint8Array): Peer | undefined {
    return this.peersByKey.get(toHex(pub));
  }

  /** Set (or, with null, remove) the device private key (§5 "New device private key"). */
  setPrivateKey(privateKey: Uint8Array | null): void {
    if (privateKey && this.identity && constantTimeEqual(privateKey, this.identity.privateKey)) return;
    const old = this.identity;
    if (privateKey) {
      const publicKey = this.crypto.publicKey(privateKey);
      this.identity = { privateKey: Uint8Array.from(privateKey), publicKey };
      const self = this.peerByKey(publicKey);
      if (self) this.removePeer(self);
    } else {
      this.identity = null;
    }
    if (old) this.crypto.zeroPrivateKey(old.privateKey);
    this.identityGen++;
    this.checker.init(this.identity?.publicKey ?? null);
    this.staticStaticQueue = [];
    this.staticStaticNext = 0;
    for (const peer of this.peersByKey.values()) {
      peer.handshake.precomputedStaticStatic?.fill(0); // made with the old key
      peer.handshake.precomputedStaticStatic = null;
      this.staticStaticQueue.push(peer);
      this.expireCurrentKeypairs(peer);
    }
  }

  /** Some peer's DH(static, static) under the current device key may still be missing: the host should call precomputeStaticStatics(). */
  get staticStaticPending(): boolean {
    return this.staticStaticNext < this.staticStaticQueue.length;
  }

  /**
   * Computes missing DH(static, static) values, oldest first, for about `budgetMs` of clock time
   * (at least one). Returns whether some are still missing. The host calls it in slices while
   * the event loop has time, so a large configuration or a new private key does not hold the
   * thread that routes every packet.
   */
  precomputeStaticStatics(budgetMs: number): boolean {
    const q = this.staticStaticQueue;
    const start = this.clock.now();
    while (this.staticStaticNext < q.length) {
      const peer = q[this.staticStaticNext++]!;
      if (peer.removed || peer.staticStaticGeneration === this.identityGen) continue;
      this.staticStatic(peer);
      if (this.clock.now() - start >= budgetMs) break;
    }
    if (this.staticStaticNext < q.length) return true;
    this.staticStaticQueue = [];
    this.staticStaticNext = 0;
    return false;
  }

  /** The peer's handshake state with DH(static, static) under the current device key, computed now if missing. */
  private staticStatic(peer: Peer): Handshake {
    if (peer.staticStaticGeneration !== this.identityGen) {
      precomputeStaticStatic(this.crypto, this.identity, peer.handshake);
      peer.staticStaticGeneration = this.identityGen;
    }
    return peer.handshake;
  }

  /**
   * The device key changed: the pending handshake is void, the sessions made with the old key
   * stay readable but may no longer send, and the next packet may start a handshake with the new
   * key at once — the REKEY_TIMEOUT limit counts from the last handshake message sent, and those
   * were sent under the old key (wireguard-go's Peer.ExpireCurrentKeypairs).
   */
  private expireCurrentKeypairs(peer: Peer): void {
    this.clearHandshake(peer);
    peer.lastSentHandshake = -Infinity;
    for (const kp of [peer.keypairs.current, peer.keypairs.next]) if (kp) kp.sendCounter = COUNTER_LIMIT;
    this.version[0]++;
  }

  /** Create a peer (the caller checks for duplicates and for our own key). */
  addPeer(publicKey: Uint8Array): Peer {
    const hex = toHex(publicKey);
    const existing = this.peersByKey.get(hex);
    if (existing) return existing;
    const id = this.freeIds.length ? this.freeIds.pop()! : this.peersById.length;
    if (id >= this.maxPeers) throw new RangeError(`too many peers (max ${this.maxPeers})`);
    const peer = new Peer(id, Uint8Array.from(publicKey), hex, this.crypto, (kp) => this.retireKeypair(kp));
    this.staticStaticQueue.push(peer); // DH(static, static) later: precomputeStaticStatics() or the first handshake
    this.stats.fill(0, id * STATS_PER_PEER, (id + 1) * STATS_PER_PEER);
    this.peersByKey.set(hex, peer);
    this.peersById[id] = peer;
    return peer;
  }

  removePeer(peer: Peer): void {
    this.version[0]++;
    if (peer.removed) return;
    peer.removed = true;
    this.timers.cancelAll(peer.timers);
    this.allowedIPs.removeByPeer(peer);
    this.zeroAndFlush(peer);
    peer.handshake.precomputedStaticStatic?.fill(0);
    peer.handshake.presharedKey = new Uint8Array(KEY_LEN);
    peer.cookieGenerator.clear();
    this.peersByKey.delete(peer.publicKeyHex);
    this.peersById[peer.id] = undefined;
    this.freeIds.push(peer.id);
  }

  removeAllPeers(): void {
    for (const peer of [...this.peersByKey.values()]) this.removePeer(peer);
    this.staticStaticQueue = [];
    this.staticStaticNext = 0;
  }

  setPresharedKey(peer: Peer, psk: Uint8Array | null): void {
    const hs = peer.handshake;
    if (!isZeroKey(hs.presharedKey)) hs.presharedKey.fill(0);
    hs.presharedKey = psk ? Uint8Array.from(psk) : new Uint8Array(KEY_LEN);
  }

  setEndpoint(peer: Peer, ep: Endpoint): void {
    peer.endpoint = ep;
    this.version[0]++;
  }

  /**
   * A send to `ep` found its sticky source no longer ours (the kernel refused it: our address went
   * away): if it is still the peer's endpoint, reply from wherever the kernel chooses from now on.
   */
  sourceRefused(peer: Peer, ep: Endpoint): void {
    if (peer.endpoint === ep) this.setEndpoint(peer, withoutSource(ep));
  }

  /** Seconds, 0 = off. Turning it on while up sends a keepalive at once (§6). */
  setPersistentKeepalive(peer: Peer, seconds: number): void {
    const was = peer.persistentKeepalive;
    peer.persistentKeepalive = seconds;
    if (seconds === 0) this.timers.cancel(peer.timers, TimerKind.PersistentKeepalive);
    else if (was === 0 && this.isUp) this.sendKeepalive(peer);
  }

  /** The interface is up: sessions may start; persistent keepalives fire once at once. */
  up(): void {
    if (this.isUp) return;
    this.isUp = true;
    for (const peer of this.peersByKey.values()) {
      peer.lastSentHandshake = -Infinity; // a fresh start may initiate at once (wireguard-go's Peer.Start)
      if (peer.persistentKeepalive > 0) this.sendKeepalive(peer);
    }
  }

  /** The interface went down: all sessions are wiped. */
  down(): void {
    if (!this.isUp) return;
    this.isUp = false;
    for (const peer of this.peersByKey.values()) {
      this.timers.cancelAll(peer.timers);
      this.zeroAndFlush(peer);
    }
  }

  // ───────────────────────── handshakes ─────────────────────────

  /**
   * The checks of §7 that come before a handshake message may take a handshake-queue slot, run
   * as the datagram arrives (`underLoad`: the host's queue as it is at that moment): mac1
   * always; under load also mac2 — a message without a valid one costs only the cookie reply
   * sent from here, at once — and then the per-source rate limiter. Cookie replies (type 3)
   * carry no macs and pass; receiveHandshake() checks them. Drops are counted.
   */
  screenHandshake(msg: Uint8Array, src: Endpoint, underLoad: boolean): Screened {
    if (msg[0] === MESSAGE_COOKIE_REPLY) return Screened.Queue;
    if (!this.identity) return Screened.Drop;
    if (this.checkMacs(msg, src, underLoad, this.clock.now()) !== null) return Screened.Drop;
    return underLoad ? Screened.Checked : Screened.Queue;
  }

  /**
   * A handshake-type datagram (1, 2 or 3, already size-checked by messageType()) from
   * `src`. `underLoad` is the host's view of its handshake queue (§7); a message that
   * screenHandshake() passed as Checked comes with underLoad = false, so mac2 and the rate
   * limiter are applied once. Returns the drop reason, or null when the message was accepted.
   */
  receiveHandshake(msg: Uint8Array, src: Endpoint, underLoad: boolean): DropReason | null {
    const now = this.clock.now();
    const type = msg[0]!;
    if (type === MESSAGE_COOKIE_REPLY) return this.receiveCookieReply(msg, src, now);
    if (!this.identity) return 'unknown_peer';
    const refused = this.checkMacs(msg, src, underLoad, now);
    if (refused !== null) return refused;
    return type === MESSAGE_INITIATION ? this.receiveInitiation(msg, src, now) : this.receiveResponse(msg, src, now);
  }

  /**
   * receiveHandshake() of an initiation in two halves, for a host that runs the arithmetic that
   * needs no peer state elsewhere (prepareInitiation in noise.ts; src/handshake-offload.ts runs it
   * on worker threads): first the §7 checks, as receiveHandshake() applies them, here; then
   * receivePreparedInitiation() with the result. Returns the drop reason (counted), or null.
   */
  admitInitiation(msg: Uint8Array, src: Endpoint, underLoad: boolean): DropReason | null {
    if (!this.identity) return 'unknown_peer';
    return this.checkMacs(msg, src, underLoad, this.clock.now());
  }

  /**
   * The second half: `prepared` is prepareInitiation()'s result under the device key of
   * `generation` (null: the static key did not decrypt; undefined: not prepared, as when the work
   * failed). Unprepared, or prepared under another key (the device key changed meanwhile), the
   * initiation is processed from scratch. Consumes `prepared` (its secrets are zeroed whatever
   * happens). Returns the drop reason, or null when the initiation was answered.
   */
  receivePreparedInitiation(
    msg: Uint8Array, src: Endpoint, prepared: PreparedInitiation | null | undefined, generation: number,
  ): DropReason | null {
    if (prepared === undefined || generation !== this.identityGen) {
      if (prepared) clearPrepared(this.crypto, prepared);
      if (!this.identity) return 'unknown_peer';
      return this.receiveInitiation(msg, src, this.clock.now());
    }
    return this.receiveInitiation(msg, src, this.clock.now(), prepared);
  }

  /** §7 in order: mac1; under load, mac2 (else a cookie reply) and then the per-source rate limiter. */
  private checkMacs(msg: Uint8Array, src: Endpoint, underLoad: boolean, now: number): DropReason | null {
    if (!this.checker.checkMac1(msg)) {
      if (this.verbose) this.logInvalid('Received packet with invalid mac1', 'invalid_mac', src, null);
      return this.drop('invalid_mac');
    }
    if (!underLoad) return null;
    const source = endpointSourceKey(src);
    if (!this.checker.checkMac2(msg, source, now)) {
      const reply = this.checker.createReply(msg, readU32(msg, 4), source, now);
      if (reply && this.hooks.sendTo(src, reply) !== Sent.No) this.hooks.handshakeMessage?.(MESSAGE_COOKIE_REPLY, Direction.Outbound, null);
      return this.drop('cookie_required');
    }
    if (!this.rateLimiter.allow(src.bytes, now)) return this.drop('rate_limited');
    return null;
  }

  /** `prepared`: steps 2–4 and the response's ephemeral part done already (undefined: do them here). */
  private receiveInitiation(msg: Uint8Array, src: Endpoint, now: number, prepared?: PreparedInitiation | null): DropReason | null {
    const id = this.identity!;
    const c = this.crypto;
    let unknownPeer: Uint8Array | null = null;
    let found: Peer | undefined;
    const opened = prepared === undefined ? openStatic(c, this.init, id, msg) : prepared?.opened ?? null;
    const res = consumeInitiation(c, this.init, id, msg, (pub) => {
      found = this.peersByKey.get(toHex(pub));
      if (!found) unknownPeer = pub;
      return found ? this.staticStatic(found) : undefined;
    }, opened);
    // What consumeInitiation needed of `opened` it has copied; the responder's part goes on to the response.
    if (opened) clearOpened(opened);
    const responder = prepared === undefined ? undefined : prepared?.responder ?? null;
    if (!res) {
      if (responder) clearResponderEphemeral(c, responder);
      const reason = unknownPeer ? 'unknown_peer' : 'decrypt_failed';
      if (this.verbose) this.logInvalid(INVALID_INITIATION, reason, src, unknownPeer);
      return this.drop(reason);
    }
    const peer = found!; // consumeInitiation succeeds only with the handshake state of the peer it looked up
    const verdict = checkInitiation(res.hs, res.consumed, now, HANDSHAKE_INITIATION_RATE);
    if (verdict !== InitiationVerdict.Accept) {
      if (responder) clearResponderEphemeral(c, responder);
      res.consumed.chainKey.fill(0);
      const reason = verdict === InitiationVerdict.Replay ? 'replay' : 'handshake_flood';
      if (this.verbose) this.logInvalid(INVALID_INITIATION, reason, src, peer);
      return this.drop(reason);
    }
    if (peer.handshake.localIndex) this.index.delete(peer.handshake.localIndex);
    commitInitiation(peer.handshake, res.consumed, now);
    if (this.verbose && this.logAllowed(RECEIVED_INITIATION)) {
      this.hooks.log!('verbose', RECEIVED_INITIATION, { ...this.peerFields(peer), src: formatEndpoint(src) });
    }
    this.hooks.handshakeMessage?.(MESSAGE_INITIATION, Direction.Inbound, peer);
    this.stats[peer.id * STATS_PER_PEER + Stat.RxBytes] += msg.length;
    this.roam(peer, src);
    this.timersAnyAuthenticatedPacketTraversal(peer, now);
    this.timersAnyAuthenticatedPacketReceived(peer);
    this.sendResponse(peer, now, responder);
    return null;
  }

  /** `eph`: the response's ephemeral part prepared already (undefined: computed here; null: it failed). */
  private sendResponse(peer: Peer, now: number, eph?: ResponderEphemeral | null): void {
    const hs = peer.handshake;
    const entry: IndexEntry = { peer, keypair: null };
    const localIndex = this.index.allocate(entry);
    const out = this.scratchResponse;
    if (!createResponse(this.crypto, hs, localIndex, out, eph)) {
      this.index.delete(localIndex);
      return;
    }
    const keys = deriveKeys(this.crypto, hs)!;
    const kp = new Keypair(keys.sendKey, keys.receiveKey, false, now, keys.localIndex, keys.remoteIndex, peer.id);
    entry.keypair = kp;
    this.hooks.keypairCreated(kp);
    peer.keypairs.installAsResponder(kp);
    this.version[0]++;
    if (this.verbose) this.logKeypairCreated(peer, kp);
    this.timersSessionDerived(peer, now);
    peer.cookieGenerator.addMacs(out, now);
    peer.lastSentHandshake = now;
    if (this.verbose) this.logPeer(SENDING_RESPONSE, peer);
    this.sendHandshakeMessage(peer, out, MESSAGE_RESPONSE, now);
  }

  private receiveResponse(msg: Uint8Array, src: Endpoint, now: number): DropReason | null {
    const entry = this.index.get(readU32(msg, Response.RECEIVER));
    if (!entry || entry.keypair) {
      if (this.verbose) this.logInvalid(INVALID_RESPONSE, 'unknown_index', src, null);
      return this.drop('unknown_index');
    }
    const peer = entry.peer;
    const hs = peer.handshake;
    if (hs.state !== HandshakeState.InitiationCreated || hs.localIndex !== readU32(msg, Response.RECEIVER)) {
      if (this.verbose) this.logInvalid(INVALID_RESPONSE, 'unknown_index', src, peer);
      return this.drop('unknown_index');
    }
    if (!consumeResponse(this.crypto, this.identity!, hs, msg)) {
      if (this.verbose) this.logInvalid(INVALID_RESPONSE, 'decrypt_failed', src, peer);
      return this.drop('decrypt_failed');
    }
    if (this.verbose && this.logAllowed(RECEIVED_RESPONSE)) {
      this.hooks.log!('verbose', RECEIVED_RESPONSE, { ...this.peerFields(peer), src: formatEndpoint(src) });
    }
    this.hooks.handshakeMessage?.(MESSAGE_RESPONSE, Direction.Inbound, peer);
    this.stats[peer.id * STATS_PER_PEER + Stat.RxBytes] += msg.length;
    this.roam(peer, src);
    const keys = deriveKeys(this.crypto, hs)!;
    const kp = new Keypair(keys.sendKey, keys.receiveKey, true, now, keys.localIndex, keys.remoteIndex, peer.id);
    entry.keypair = kp;
    this.hooks.keypairCreated(kp);
    peer.keypairs.installAsInitiator(kp);
    this.version[0]++;
    if (this.verbose) this.logKeypairCreated(peer, kp);
    this.timersSessionDerived(peer, now);
    this.timersHandshakeComplete(peer, true);
    this.timersAnyAuthenticatedPacketTraversal(peer, now);
    this.timersAnyAuthenticatedPacketReceived(peer);
    // Key confirmation for the responder: staged data, or else a keepalive.
    if (peer.staged.length) this.sendStaged(peer, now);
    else this.sendKeepalive(peer);
    return null;
  }

  private receiveCookieReply(msg: Uint8Array, src: Endpoint, now: number): DropReason | null {
    const entry = this.index.get(readU32(msg, 4));
    if (!entry) {
      if (this.verbose) this.logInvalid(INVALID_COOKIE_REPLY, 'unknown_index', src, null);
      return this.drop('unknown_index');
    }
    if (!entry.peer.cookieGenerator.consumeReply(msg, now)) {
      if (this.verbose) this.logInvalid(INVALID_COOKIE_REPLY, 'decrypt_failed', src, entry.peer);
      return this.drop('decrypt_failed');
    }
    if (this.verbose) this.logPeer('Received cookie reply', entry.peer);
    this.hooks.handshakeMessage?.(MESSAGE_COOKIE_REPLY, Direction.Inbound, entry.peer);
    return null;
  }

  /**
   * Send a fresh initiation unless one went out less than REKEY_TIMEOUT ago (§6).
   * `isRetry` keeps the attempt counter (retransmit timer); otherwise it restarts at 0.
   */
  sendInitiation(peer: Peer, isRetry: boolean): void {
    const now = this.clock.now();
    if (!isRetry) peer.handshakeAttempts = 0;
    if (!this.isUp || !this.identity || peer.removed) return;
    if (now - peer.lastSentHandshake < REKEY_TIMEOUT) return;
    peer.lastSentHandshake = now;
    const hs = peer.handshake;
    if (hs.localIndex) this.index.delete(hs.localIndex);
    const localIndex = this.index.allocate({ peer, keypair: null });
    const out = this.scratchInitiation;
    if (!createInitiation(this.crypto, this.init, this.identity, this.staticStatic(peer), localIndex, this.clock.wallNow(), out)) {
      this.index.delete(localIndex);
      hs.clear();
      return;
    }
    peer.cookieGenerator.addMacs(out, now);
    if (this.verbose) this.logPeer('Sending handshake initiation', peer);
    this.sendHandshakeMessage(peer, out, MESSAGE_INITIATION, now);
    this.timers.arm(peer, peer.timers, TimerKind.RetransmitHandshake, now + REKEY_TIMEOUT + this.jitter());
  }

  private sendHandshakeMessage(peer: Peer, msg: Uint8Array, type: number, now: number): void {
    this.timersAnyAuthenticatedPacketTraversal(peer, now);
    this.timersAnyAuthenticatedPacketSent(peer);
    const ep = peer.endpoint;
    if (!ep) {
      this.drops.count(Direction.Outbound, 'no_endpoint');
      return;
    }
    const sent = this.hooks.sendTo(ep, msg);
    if (sent === Sent.No) return;
    if (sent === Sent.WithoutSource) this.sourceRefused(peer, ep);
    this.stats[peer.id * STATS_PER_PEER + Stat.TxBytes] += msg.length;
    this.hooks.handshakeMessage?.(type, Direction.Outbound, peer);
  }

  // ───────────────────────── transport: sending ─────────────────────────

  /** The keypair to encrypt with now, or null (then stage the packet). */
  sendKeypair(peer: Peer): Keypair | null {
    const kp = peer.keypairs.current;
    return kp && kp.canSend(this.clock.now()) ? kp : null;
  }

  /** Keep a copy of a packet until a session exists, and ask for one (§5). */
  stage(peer: Peer, packet: Uint8Array): void {
    if (peer.staged.length >= MAX_STAGED_PACKETS) {
      peer.staged.shift();
      this.drops.count(Direction.Outbound, 'no_session');
    }
    peer.staged.push(Uint8Array.from(packet));
    this.sendStaged(peer, this.clock.now());
  }

  /**
   * A transport message for `peer` left the socket (called in send order).
   * `isData` = non-empty plaintext. Updates counters and timers, and rekeys when due.
   */
  transportSent(peer: Peer, msgLen: number, isData: boolean): void {
    const now = this.clock.now();
    const s = peer.id * STATS_PER_PEER;
    this.stats[s + Stat.TxBytes] += msgLen;
    this.stats[s + Stat.TxPackets] += 1;
    this.timersAnyAuthenticatedPacketTraversal(peer, now);
    this.timersAnyAuthenticatedPacketSent(peer);
    if (isData) this.timersDataSent(peer, now);
    // keepKeyFreshSending
    const kp = peer.keypairs.current;
    if (kp && (kp.sendCounter > REKEY_AFTER_MESSAGES_N || (kp.isInitiator && now - kp.created > REKEY_AFTER_TIME))) {
      this.sendInitiation(peer, false);
    }
  }

  /** Send a keepalive now (or stage one and start a handshake if there is no session). */
  sendKeepalive(peer: Peer): void {
    if (peer.staged.length === 0) peer.staged.push(EMPTY);
    this.sendStaged(peer, this.clock.now());
  }

  private sendStaged(peer: Peer, now: number): void {
    if (peer.staged.length === 0) return;
    const kp = peer.keypairs.current;
    if (!kp || !kp.canSend(now)) {
      this.sendInitiation(peer, false);
      return;
    }
    const staged = peer.staged;
    peer.staged = [];
    for (let i = 0; i < staged.length; i++) {
      if (!kp.canSend(now)) { // the session ran out on the way: the rest waits for the next one
        peer.staged = staged.slice(i).concat(peer.staged);
        this.sendInitiation(peer, false);
        return;
      }
      const packet = staged[i]!;
      const counter = kp.sendCounter++;
      const len = this.hooks.sendTransport(peer, kp, counter, packet); // a failure is counted there
      if (len >= 0) this.transportSent(peer, len, packet.length > 0);
    }
  }

  /** Staged packets that will never be sent (the handshake gave up, the keys were flushed): counted, then forgotten. */
  private dropStaged(peer: Peer): void {
    for (const packet of peer.staged) if (packet.length > 0) this.drops.count(Direction.Outbound, 'no_session');
    peer.staged = [];
  }

  // ───────────────────────── transport: receiving ─────────────────────────

  /** Receiver index of a transport message → keypair that may decrypt it, or null (drop reason counted). */
  lookupReceive(receiverIndex: number): Keypair | null {
    const entry = this.index.get(receiverIndex);
    if (!entry || !entry.keypair) {
      this.drops.count(Direction.Inbound, 'unknown_index');
      return null;
    }
    if (!entry.keypair.canReceive(this.clock.now())) {
      this.drops.count(Direction.Inbound, 'too_old');
      return null;
    }
    return entry.keypair;
  }

  /**
   * An authenticated (decrypted) transport message: replay check, roaming, key
   * confirmation, timers (§5, §6, §8). Returns the peer when the packet is accepted
   * (then the caller checks the inner packet and delivers it), else null.
   */
  receiveTransport(kp: Keypair, counter: number, msgLen: number, plaintextLen: number, src: PacketSource): Peer | null {
    // A keypair retired while its packet was in a worker must not be attributed to a peer
    // that has since taken over its id.
    if (kp.retired) return null;
    const peer = this.peersById[kp.peerId];
    if (!peer || peer.removed) return null;
    if (!kp.replay.validate(counter)) {
      // Behind the window: too old; inside it (or out of range): seen before.
      this.drops.count(Direction.Inbound, kp.replay.highest - counter > REPLAY_WINDOW_SIZE ? 'too_old' : 'replay');
      return null;
    }
    const now = this.clock.now();
    if (!src.isEndpoint(peer.endpoint)) { // roaming (§8): replies go where the authenticated packet came from
      const ep = src.endpoint();
      if (ep) {
        if (this.verbose) this.logEndpointChanged(peer, peer.endpoint, ep);
        this.setEndpoint(peer, ep);
      }
    }
    if (peer.keypairs.receivedWith(kp)) {
      this.version[0]++;
      this.timersHandshakeComplete(peer, false);
      this.sendStaged(peer, now);
    }
    // keepKeyFreshReceiving
    const cur = peer.keypairs.current;
    if (!peer.sentLastMinuteHandshake && cur && cur.isInitiator && now - cur.created > LAST_MINUTE_REKEY) {
      peer.sentLastMinuteHandshake = true;
      this.sendInitiation(peer, false);
    }
    this.timersAnyAuthenticatedPacketTraversal(peer, now);
    this.timersAnyAuthenticatedPacketReceived(peer);
    const s = peer.id * STATS_PER_PEER;
    this.stats[s + Stat.RxBytes] += msgLen;
    this.stats[s + Stat.RxPackets] += 1;
    if (plaintextLen > 0) this.timersDataReceived(peer, now);
    return peer;
  }

  // ───────────────────────── endpoints ─────────────────────────

  private roam(peer: Peer, src: Endpoint): void {
    const ep = peer.endpoint;
    if (ep && sameEndpoint(ep, src)) return;
    if (this.verbose) this.logEndpointChanged(peer, ep, src);
    this.setEndpoint(peer, src);
  }

  // ───────────────────────── timers (§6) ─────────────────────────

  nextDeadline(): number {
    return this.timers.nextDeadline();
  }

  /** Fire every timer that is due. */
  tick(): void {
    const now = this.clock.now();
    this.timers.runDue(now, (peer, kind) => {
      if (!peer.removed) this.expired(peer, kind, now);
    });
    this.rateLimiter.gc(now);
    // Counts of suppressed lines are written once their kind may log again, even if it went quiet.
    if (this.verbose) this.logLimit.drain((kind, n) => this.logSuppressed(kind, n));
  }

  private expired(peer: Peer, kind: TimerKind, now: number): void {
    switch (kind) {
      case TimerKind.RetransmitHandshake:
        if (peer.handshakeAttempts > MAX_TIMER_HANDSHAKES) {
          if (this.verbose) this.logPeer('handshake did not complete after 20 attempts, giving up', peer);
          this.timers.cancel(peer.timers, TimerKind.SendKeepalive);
          this.dropStaged(peer);
          if (!peer.timers.isPending(TimerKind.ZeroKeyMaterial)) {
            this.timers.arm(peer, peer.timers, TimerKind.ZeroKeyMaterial, now + ZERO_KEY_MATERIAL_AFTER);
          }
        } else {
          peer.handshakeAttempts++;
          if (this.verbose && this.logAllowed(RETRYING)) {
            this.hooks.log!('verbose', RETRYING, { ...this.peerFields(peer), attempt: peer.handshakeAttempts + 1 });
          }
          this.sendInitiation(peer, true);
        }
        return;
      case TimerKind.SendKeepalive:
        if (peer.staged.length === 0) this.sendKeepalive(peer);
        if (peer.needAnotherKeepalive) {
          peer.needAnotherKeepalive = false;
          this.timers.arm(peer, peer.timers, TimerKind.SendKeepalive, now + KEEPALIVE_TIMEOUT);
        }
        return;
      case TimerKind.NewHandshake:
        if (this.verbose) this.logPeer('retrying handshake because we stopped hearing back', peer);
        this.sendInitiation(peer, false);
        return;
      case TimerKind.ZeroKeyMaterial:
        if (this.verbose) this.logPeer('removing all keys, since we have not received a new one in a while', peer);
        this.zeroAndFlush(peer);
        return;
      case TimerKind.PersistentKeepalive:
        if (peer.persistentKeepalive > 0) this.sendKeepalive(peer);
        return;
      default:
        assertNever(kind);
    }
  }

  private timersDataSent(peer: Peer, now: number): void {
    if (!peer.timers.isPending(TimerKind.NewHandshake)) {
      this.timers.arm(peer, peer.timers, TimerKind.NewHandshake, now + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + this.jitter());
    }
  }
  private timersDataReceived(peer: Peer, now: number): void {
    if (!peer.timers.isPending(TimerKind.SendKeepalive)) {
      this.timers.arm(peer, peer.timers, TimerKind.SendKeepalive, now + KEEPALIVE_TIMEOUT);
    } else {
      peer.needAnotherKeepalive = true;
    }
  }
  private timersAnyAuthenticatedPacketSent(peer: Peer): void {
    this.timers.cancel(peer.timers, TimerKind.SendKeepalive);
  }
  private timersAnyAuthenticatedPacketReceived(peer: Peer): void {
    this.timers.cancel(peer.timers, TimerKind.NewHandshake);
  }
  private timersAnyAuthenticatedPacketTraversal(peer: Peer, now: number): void {
    if (peer.persistentKeepalive > 0) {
      this.timers.arm(peer, peer.timers, TimerKind.PersistentKeepalive, now + peer.persistentKeepalive * 1000);
    }
  }
  private timersHandshakeComplete(peer: Peer, isInitiator: boolean): void {
    this.timers.cancel(peer.timers, TimerKind.RetransmitHandshake);
    peer.handshakeAttempts = 0;
    peer.sentLastMinuteHandshake = false;
    peer.lastHandshakeWall = this.clock.wallNow();
    this.hooks.handshakeCompleted?.(peer, isInitiator);
  }
  private timersSessionDerived(peer: Peer, now: number): void {
    this.timers.arm(peer, peer.timers, TimerKind.ZeroKeyMaterial, now + ZERO_KEY_MATERIAL_AFTER);
  }

  private jitter(): number {
    return Math.floor(this.random() * REKEY_TIMEOUT_JITTER_MAX);
  }

  // ───────────────────────── key lifetime ─────────────────────────

  private retireKeypair(kp: Keypair): void {
    this.version[0]++;
    this.index.delete(kp.localIndex);
    this.hooks.keypairRetired(kp);
    kp.zero();
  }

  private clearHandshake(peer: Peer): void {
    if (peer.handshake.localIndex) this.index.delete(peer.handshake.localIndex);
    peer.handshake.clear();
  }

  private zeroAndFlush(peer: Peer): void {
    peer.keypairs.clear();
    this.clearHandshake(peer);
    this.dropStaged(peer);
  }

  private drop(reason: DropReason): DropReason {
    this.drops.count(Direction.Inbound, reason);
    return reason;
  }

  // ───────────────────────── verbose log lines (callers check this.verbose first) ─────────────────────────

  /** Whether a line of `kind` may be written now; first writes how many were suppressed before it. */
  private logAllowed(kind: string): boolean {
    const suppressed = this.logLimit.take(kind);
    if (suppressed > 0) this.logSuppressed(kind, suppressed);
    return suppressed >= 0;
  }

  private logSuppressed(kind: string, n: number): void {
    this.hooks.log!('verbose', `suppressed ${n} similar lines`, { of: kind, suppressed: n });
  }

  private peerFields(peer: Peer): PeerLabel {
    return this.hooks.peerLabel?.(peer) ?? { peer: peer.name };
  }

  private logPeer(msg: string, peer: Peer): void {
    if (this.logAllowed(msg)) this.hooks.log!('verbose', msg, this.peerFields(peer));
  }

  /**
   * A handshake message refused, with where it came from and, when it got that far, who sent
   * it: our peer, or the public key of a sender that is not one (what the operator would add).
   */
  private logInvalid(msg: string, reason: DropReason, src: Endpoint, sender: Peer | Uint8Array | null): void {
    // One bucket per reason: a flood of one kind of garbage does not hide the others.
    if (!this.logAllowed(`${msg} (${reason})`)) return;
    const who = sender === null ? null : sender instanceof Peer ? this.peerFields(sender) : { peer: peerKeyBase64(sender) };
    this.hooks.log!('verbose', msg, { ...who, src: formatEndpoint(src), reason });
  }

  private logKeypairCreated(peer: Peer, kp: Keypair): void {
    if (this.logAllowed(KEYPAIR_CREATED)) {
      this.hooks.log!('verbose', KEYPAIR_CREATED, { ...this.peerFields(peer), role: kp.isInitiator ? 'initiator' : 'responder' });
    }
  }

  /** Roaming: only a change of remote address or port is worth a line (not of our sticky source). */
  private logEndpointChanged(peer: Peer, from: Endpoint | null, to: Endpoint): void {
    const before = from === null ? null : formatEndpoint(from);
    const after = formatEndpoint(to);
    if (before === after || !this.logAllowed(ENDPOINT_CHANGED)) return;
    this.hooks.log!('verbose', ENDPOINT_CHANGED, { ...this.peerFields(peer), from: before, to: after });
  }
}

// Verbose messages, as wireguard-go words them where it has one.
const INVALID_INITIATION = 'Received invalid initiation message';
const INVALID_RESPONSE = 'Received invalid response message';
const INVALID_COOKIE_REPLY = 'Received invalid cookie reply';
const RECEIVED_INITIATION = 'Received handshake initiation';
const SENDING_RESPONSE = 'Sending handshake response';
const RECEIVED_RESPONSE = 'Received handshake response';
const KEYPAIR_CREATED = 'Keypair created';
const ENDPOINT_CHANGED = 'Endpoint changed';
const RETRYING = 'handshake did not complete after 5 seconds, retrying';

const EMPTY = new Uint8Array(0);

function assertNever(x: never): never {
  throw new Error(`unexpected ${String(x)}`);
}
