// The dataplane pipeline, main-thread half: three SharedArrayBuffer rings between the main thread
// (handshakes, routing), crypto worker threads, and the I/O threads (TUN reader, TUN writer, UDP
// reader), plus the supervision of those threads. Each ring is one circular array of slots with
// one monotonically increasing cursor per stage (Disruptor-style); a stage only touches slots the
// previous stage has published, and the in-order stages keep global ring order, hence per-peer
// order. Every crossing between threads carries a batch: one cursor store publishes all the slots
// a stage finished, and the next thread is woken (at most) once for them.
//
// TUN send rings, TUN → UDP: RING_TUN, and on a multi-queue TUN device one more per further queue
// (tunRingId(q)), each fed by that queue's reader thread and routed, sealed, sent and released
// exactly as below, independently of the others (the kernel reads a flow from one queue, so a
// flow's packets stay in order in one ring):
//   1 produced  TUN reader thread (workers/tun-reader.ts): native readSlots (poll, then reads until
//               EAGAIN; GSO super-packets split into MTU-sized packets) into data[16, 16+len),
//               FILLED, one C_PRODUCED store per batch, rings main. Full ring: waits on C_FREED.
//               At idle main reads the device itself, with the same code (intake.ts, tun-intake.ts;
//               each queue; the idle hook in C on queue 0 only).
//   2 routed    main, in order: hooks.route() fills header data[0,16), zero padding, padded length,
//               keypair id, counter, the endpoint words and the socket's fd (→ PENDING) or
//               declines (SKIP). C_READY moves per ROUTE_PUBLISH_BATCH slots, wake workers.
//   3 sealed    crypto workers (workers/crypt-worker.ts), any order: claim a batch (state CAS
//               PENDING → crypting|workerId each), seal the batch in one native call, DONE or
//               FAILED (a dead owner: DEAD).
//               Latency shortcut (INLINE_SEAL_MAX): when the whole ring holds at most 2 routed
//               slots, main claims and seals them itself (crypting|MAIN_CRYPT_ID, the same native
//               call) and sends them at stage 4 instead of waking a worker.
//   4 sent      in order, by whichever thread holds the ring's flush lock (ring.ts "send flush"):
//               the worker that sealed a batch sends it and every following finished slot with
//               sendmmsg (runs to one endpoint as UDP GSO messages; → SENT), C_SENT moves. A slot a
//               worker cannot send (fd -1, EAGAIN, any error) is left DONE, and main sends it:
//               hooks.onSealed() with sent=false. Sealed slots no worker sent (one that lost the
//               lock to main; main's inline seals) main sends in sendmmsg batches like a worker.
//   5 released  main, in order, below C_SENT: hooks.onSealed() with sent=true for SENT slots (counters,
//               timers), then FREE, C_RETIRED = C_FREED moves, notify the reader if it waits.
// LOCAL send ring (RING_LOCAL), main → UDP (keepalives, staged packets, anything main originates):
//   1 main reserveLocal()/publishLocal() with header, padding, keypair, counter, endpoint words and
//   fd already filled (→ PENDING); 3 sealed, 4 sent and 5 released as above (meta.ring === RING_LOCAL).
// RECV ring (RING_RECV), UDP → TUN:
//   1 produced  UDP reader thread (workers/udp-reader.ts, option `udp`): native recvSlots (poll, then
//               recvmmsg; UDP GRO super-datagrams split) into data[0, len) with the sender and our
//               local address in the endpoint words, FILLED, one C_PRODUCED store per batch, rings
//               main. Full ring: waits on C_FREED (the socket buffer holds the rest). At idle
//               main reads the sockets itself, with the same code (intake.ts, udp-intake.ts).
//   2 classified main, in order: hooks.classify(): a transport message to open (keypair id, counter
//               set: → PENDING) or not (handshake messages copied out, drops counted: SKIP).
//   3 opened    crypto workers: a batch opened in one native call (plaintext at data[16, 16+len-32)):
//               DONE | FAILED.
//   4 checked   main, in order: hooks.onOpened() (replay window, source address, timers) returns the
//               length to deliver or -1 (DELIVER | DROP; SKIP → DROP). C_RETIRED moves, notify the
//               writer if it waits.
//   5 written   TUN writer thread (workers/tun-writer.ts): native writeSlots of the DELIVER slots
//               (TCP segments of a flow coalesced into one GSO write); C_FREED moves (the UDP reader
//               reuses slots below it).
//               Latency shortcut (DIRECT_WRITE_MAX): a check batch of ≤ 2 slots while the writer owes
//               nothing is written by main itself and marked DROP; the writer then only frees it.
//
// Main-thread API (all methods are main-thread only and never block):
//   Pipeline.start(opts, hooks)            threads attached, doorbell armed
//   keys                                   KeyTable: allocate(), setKeys(id, send, recv), free(id); retireKeys(id)
//   reserveLocal() / localData(s) / publishLocal(s, paddedLen, keypairId, peerId, ctrLo, ctrHi, fd)
//   releaseHeld(ring, s), afterInFlight(fn), drain(), inFlight(ring), slots(ring), stats, tunGoneCode, stop()
// reserveLocal() returns the next slot index or -1 (full; counted in stats as Drop.RING_FULL) and may
// be called again until publishLocal(); nothing is committed before publishLocal(). Hooks run on main,
// inside drains; they may call the producer APIs.
//
// Who owns what: a slot belongs to the stage whose cursor range it is in; crypto workers own a slot
// only while its state word says crypting|workerId. Main never blocks: it sleeps in
// Atomics.waitAsync on one main doorbell and drains every stage of every ring on each wake (so
// wakes batch under load); producers/workers ring it only when main sleeps (see ring.ts).
// Crypto workers sleep in Atomics.wait on the worker doorbell; main notifies only if a sleeper
// bit is set. Views and SlotMeta objects passed to hooks are reused: do not keep them. Per-slot
// main-only side data (for instance the UDP source endpoint of a received datagram, needed in
// onOpened) belongs in the integrator's own arrays indexed by slot (one array per ring).
//
// Supervision (supervisor.ts): crypto workers, TUN reader and TUN writer are long-lived plain
// worker_threads Workers, not piscina (see supervisor.ts for why). When a crypto worker exits or
// throws, its in-flight slots (state crypting|id) are marked DEAD here (counted as drops; onSealed/
// onOpened see ok=false), its sleeper bit is cleared, and a replacement with the same id attaches
// to the same buffers. A TUN thread that found the device gone is not replaced: onTunGone() runs.
//
// Stopping: stop() sets CTL_SHUTDOWN and wakes every thread (the readers through their wake
// eventfds); in-flight slots are abandoned.
//
// Keys: `keys` is the shared KeyTable. Use retireKeys(id) rather than keys.free(id) for a keypair
// that may still be named by published slots: it zeroes and frees the id once every slot published
// before the call has left the rings. Sockets likewise: a socket whose fd send slots may name, or the
// UDP reader may poll, is closed through setUdpSockets()'s callback, never directly (a thread could
// use a reused fd number).
//
// Doorbell decisions (measured with bench/ring.ts): a crypto worker rings main only when main
// sleeps waiting for exactly the slot it finished, and defers that ring by up to 16 slots while
// it has more work, so a busy worker wakes main about once per 16–32 packets instead of chasing
// it packet by packet (one worker, A/B on this noisy 2-vCPU host: 116–235 → ~50 wakes per 1000
// packets, main CPU 6.9–17.5 → 1.5–1.7 µs per packet). The TUN reader rings whenever
// main sleeps (it cannot know whether another packet follows).
//
// Memory: each ring is slots × (64 B meta + slotBytes); slotBytes = 9280 for the default 9216-byte
// inner MTU, so the defaults (1024 + 256 + 1024 slots) take ≈ 21 MB; maxInnerMtu 1420 ≈ 3.6 MB.
//
// onSealed() and dgram (sent=false only): dgram.send() may keep a reference to the bytes until its callback (when the
// kernel buffer was full and libuv queued the send); the slot would be overwritten after release.
// Return true from onSealed() to hold the slot (the release stage stops there) and call
// releaseHeld() from the send callback, or copy the bytes.

import fs from 'node:fs';
import type { Worker } from 'node:worker_threads';
import { getSystemErrorName } from 'node:util';
import { AEAD_TAG_LEN, MESSAGE_TRANSPORT_HEADER_SIZE } from '../constants.js';
import { type SlotsFn, sealSlots as nativeSealSlots } from '../crypto/native-aead.js';
import { TUN_WRITE_OUT, TUN_WRITE_OUT_LEN, tunNative } from '../io/tun.js';
import { udpNative } from '../io/udp-native.js';
import {
  IL_RECEIVED, IL_RECV_AT, IL_RECV_BYTES, IL_RECV_QUIET, IL_SENT, IL_SENT_PLAIN, IL_SENT_READS, IL_TUN_ADOPT, IL_TUN_AT, IL_TUN_QUIET,
  IL_UDP_ADOPT, IL_UDP_GEN, IL_VALID, IL_WORDS, IL_WRITTEN, IL_WRITTEN_BYTES,
} from './idle-lease.js';
import { ReceiverIndexMap } from './indexmap.js';
import { MainIntake } from './intake.js';
import { KeyTable } from './keytable.js';
import {
  CONTROL_WORDS, CTL_UDP_FD4, CTL_UDP_FD6, CTL_UDP_GEN, CTL_UDP_GEN_SEEN, CTL_UDP_OWNER, CTL_TUN_MTU, CTL_MAIN_ARMED, CTL_MAIN_BELL, CTL_SHUTDOWN, CTL_TUN_GONE, CTL_TUN_GONE_CAUSE,
  CTL_TUN_GONE_ERRNO, CTL_WORKER_BELL, CTL_WORKER_SLEEPERS, CTL_WRITER_WAITING, DEFAULT_KEYPAIR_CAPACITY, DEFAULT_LOCAL_SLOTS,
  DEFAULT_MAX_INNER_MTU, DEFAULT_RING_SLOTS, Drop, type DataplaneShared, M_COUNTER_HI, M_COUNTER_LO, M_FD, M_INNER_HEAD, M_KEYPAIR,
  M_LENGTH, M_PEER, M_RECEIVER, M_RESULT, M_SEQ, M_STATE, MAIN_CRYPT_ID, MAIN_FLUSHED, MAIN_IDLE_RECEIVED, MAIN_IDLE_SENT, MAIN_INLINE_SEALED, MAIN_INPUT_RECHECKS, MAIN_TUN_GIVEN, MAIN_TUN_TAKEN, MAIN_UDP_GIVEN, MAIN_UDP_TAKEN, MAIN_WAKEUPS, MAIN_WORKER_NOTIFIES, MAX_WORKERS,
  META_WORDS, RING_LOCAL, RING_RECV, RING_TUN, type RingId, STATS_LENGTH, STAT_MAIN, SLOT_PAYLOAD_OFFSET,
  R_BYTES, R_PACKETS, R_READS, STAT_READER, STAT_UDP_READER, SlotState, STAT_WRITER, TunGoneCause, U_BYTES, U_CALLS, U_DATAGRAMS, U_FAST,
  MAX_TUN_QUEUES, ctlReaderWaiting, ctlTunOwner, ringIds, statReader, tunRingId,
  VIRTIO_NET_HDR_LEN, W_BYTES, W_PACKETS, W_WRITES, cryptingState, slotBytesFor, statDrop,
} from './layout.js';
import { RingView, SEND_LOCK_MAIN, allWorkersAsleep, allocRing, finishedSend, ringGroup, ringMainBell, sendLockOwner, wakeWorkers } from './ring.js';
import { Supervisor, TUN_READER_ID, TUN_WRITER_ID, UDP_READER_ID } from './supervisor.js';
import { TUN_INTAKE_BATCH, TunIntake } from './tun-intake.js';
import { UDP_INTAKE_BATCH, UdpIntake } from './udp-intake.js';

export interface PipelineOptions {
  /** Number of crypto worker threads (1..MAX_WORKERS). */
  workers: number;
  /** TUN fd read by the TUN reader thread (and by main at idle): queue 0 of a multi-queue device. */
  tunFd: number;
  /**
   * The further queues of a multi-queue TUN device (src/io/tun.ts TunDevice.queueFds): each gets a
   * reader thread and a send ring of its own (tunRingId(q)), read by main at idle like queue 0
   * (without the idle hook). The TUN writer spreads its writes over all queues by flow. Default none.
   */
  tunQueueFds?: readonly number[];
  /** Per entry of tunQueueFds, the eventfd that interrupts that queue's reader (TunDevice.queueWakeFds); default none. */
  tunQueueWakeFds?: readonly number[];
  /** fd the TUN writer (and main's direct writes) write to; defaults to tunFd (a character device or socket reads and writes on one fd; a pipe needs two). */
  tunWriteFd?: number;
  /** Name of the TUN interface: the reader publishes its MTU with every batch (tunMtu, hooks.onTunMtu). */
  tunName?: string;
  /** eventfd that interrupts the TUN reader's poll (src/io/tun.ts TunDevice.wakeFd); -1/absent: none. */
  tunWakeFd?: number;
  /**
   * The TUN fd was opened with IFF_VNET_HDR: every read and write carries a 10-byte
   * virtio_net_hdr, reads may be GSO super-packets (the reader splits them) and writes may be
   * coalesced (GRO, the writer). Default false.
   */
  tunVnetHdr?: boolean;
  /**
   * The UDP reader thread (workers/udp-reader.ts) produces the RECV ring from the sockets given to
   * setUdpSockets(); `wakeFd` is an eventfd that interrupts its poll; `indexMap` the shared
   * receiver-index map (indexmap.ts) it keys transport messages with.
   */
  udp: { wakeFd: number; indexMap: SharedArrayBuffer };
  /** Slots of each TUN ring and of the RECV ring (power of two, default 1024). */
  ringSlots?: number;
  /** Slots of the LOCAL send ring (power of two, default 256). */
  localSlots?: number;
  /** Keypair ids in the KeyTable (default 2^16). */
  keypairCapacity?: number;
  /** Use this key table (a pipeline replacing another keeps the sessions' keys); default a new one. */
  keys?: KeyTable;
  /** Largest inner packet (default 9216); sets the slot size. */
  maxInnerMtu?: number;
  /**
   * Workers write a routed packet to its socket themselves only while fewer than this many TUN-ring
   * slots are in flight ahead of it; deeper than that, main sends it (default WORKER_SEND_DEPTH).
   * 0 = main sends everything; Infinity = workers send whenever route() named a socket.
   */
  workerSendDepth?: number;
  /** Crypto module of the workers (batch sealSlots/openSlots, or per-packet sealTransport/openTransport; optional init(data, workerId)); default src/crypto/native-aead.js. */
  cryptoModule?: string | URL;
  /** Structured-cloneable value passed to the crypto module's init(). */
  cryptoModuleData?: unknown;
  /**
   * The versions the idle lease copies state under (idle-lease.ts; AllowedIPs.version and
   * Engine.version): with them, and the native crypto module, main handles a lone packet at idle in
   * C (hooks.idleGrant / idleSettle); without them it never does.
   */
  idleVersions?: { routeVersion: Int32Array; engineVersion: Int32Array };
  /** Bound on start() waiting for threads to attach (default 10000 ms). */
  startTimeoutMs?: number;
  /** Bound on stop() waiting for each thread to exit before terminating it (default 2000 ms). */
  stopTimeoutMs?: number;
}

export interface PipelineHooks {
  /**
   * RECV ring, UDP reader mode, in ring order at the check stage: a datagram (data[0, len), its
   * endpoint words) the reader could not key itself — handshake messages (the hook copies them
   * out), unknown receiver indices and malformed ones (the hook counts the drop). Returns true if
   * it is a transport message the hook does have a key for (installed after the datagram was
   * read): too late to open, onOpened() then sees it as failed with state FILLED.
   */
  classify?(slot: number, data: Uint8Array, len: number, meta: SlotMeta): boolean;
  /** TUN ring stage 2: the slot holds a TUN packet at data[16, 16+len). Fill header data[0,16), zero padding, and meta (length = padded length, keypairId, counterLo/Hi, peerId), then return true (SEAL); or return false (SKIP: released without sending). */
  route(slot: number, data: Uint8Array, len: number, meta: SlotMeta): boolean;
  /**
   * Send rings, in ring order (meta.ring tells which): sealed message at data[0, msgLen) (ok), or
   * sealing failed / its worker died (!ok, meta.state FAILED/DEAD). `sent`: a crypto worker already
   * wrote it to meta.sendFd (account for it only; the return value is ignored); otherwise send it
   * now, and return true to hold the slot until releaseHeld().
   */
  onSealed(slot: number, data: Uint8Array, msgLen: number, ok: boolean, meta: SlotMeta, sent: boolean): boolean | void;
  /** RECV ring stage 3: plaintext at data[16, 16+plaintextLen) when ok. Return the inner length to deliver to TUN (0..plaintextLen), or -1 to drop. */
  onOpened(slot: number, data: Uint8Array, plaintextLen: number, ok: boolean, meta: SlotMeta): number;
  /** A drain pass starts; the per-packet hooks of that pass follow (at most a ring's worth each): e.g. read the clock once for them all. */
  drainPass?(): void;
  /** A drain ended (no stage moves any more), before main sleeps: e.g. re-arm timers once for everything the hooks did. */
  drained?(): void;
  /** The TUN interface's MTU changed (as the TUN reader read it): called on main before the packets read after the change are routed. */
  onTunMtu?(mtu: number): void;
  /** The TUN reader or writer found the device gone (read error/EOF, EBADF on write). Called once. */
  onTunGone(): void;
  /**
   * Main is about to sleep with the rings quiet and an input it owns: fill the idle lease's words
   * for the (peer, address) pairs it may cover (idle-lease.ts; the pipeline sets the rings' and sockets' own) and return true, or
   * return false to grant nothing this time.
   */
  idleGrant?(lease: Int32Array): boolean;
  /** Main's turn starts after a lease was granted: the bookkeeping for what the native hooks did under it (idle-lease.ts results). */
  idleSettle?(lease: Int32Array): void;
  /** A thread failed: crypto worker id, or TUN_READER_ID / TUN_WRITER_ID. It is being replaced. */
  onWorkerError(workerId: number, err: unknown): void;
  /** A replacement for a failed thread (crypto worker id, TUN_READER_ID or TUN_WRITER_ID) has attached. */
  onWorkerRestarted?(workerId: number): void;
  /** A hook threw; the slot was given up (counted as Drop.HOOK_ERROR). Default: rethrow asynchronously. */
  onHookError?(stage: HookStage, err: unknown): void;
}

export type HookStage = 'route' | 'classify' | 'onSealed' | 'onOpened' | 'idleSettle';

export { TUN_READER_ID, TUN_WRITER_ID, UDP_READER_ID };

/**
 * Reused accessor for one ring's slot metadata (one instance per ring; `slot` is set before each
 * hook call). Setters are for route() on the TUN ring; elsewhere the fields are read-only by contract.
 */
export class SlotMeta {
  slot = 0;
  private m = 0;
  /** The meta words as bytes (M_INNER_HEAD). */
  readonly metaBytes: Uint8Array;
  constructor(readonly ring: RingId, private readonly words: Int32Array) {
    this.metaBytes = new Uint8Array(words.buffer, words.byteOffset, words.byteLength);
  }
  /** @internal */
  at(slot: number): this {
    this.slot = slot;
    this.m = slot * META_WORDS;
    return this;
  }
  get state(): number { return Atomics.load(this.words, this.m + M_STATE); }
  /** The ring's meta words and this slot's first word (endpoint words: layout.ts M_EP_*). */
  get metaWords(): Int32Array { return this.words; }
  get base(): number { return this.m; }
  /** Ring sequence number of this use of the slot. */
  get seq(): number { return this.words[this.m + M_SEQ]!; }
  /** Send: inner length, set to the padded length by route(). Recv: datagram length. */
  get length(): number { return this.words[this.m + M_LENGTH]!; }
  set length(v: number) { this.words[this.m + M_LENGTH] = v; }
  get peerId(): number { return this.words[this.m + M_PEER]!; }
  set peerId(v: number) { this.words[this.m + M_PEER] = v; }
  get keypairId(): number { return this.words[this.m + M_KEYPAIR]!; }
  set keypairId(v: number) { this.words[this.m + M_KEYPAIR] = v; }
  get counterLo(): number { return this.words[this.m + M_COUNTER_LO]! >>> 0; }
  set counterLo(v: number) { this.words[this.m + M_COUNTER_LO] = v; }
  get counterHi(): number { return this.words[this.m + M_COUNTER_HI]! >>> 0; }
  set counterHi(v: number) { this.words[this.m + M_COUNTER_HI] = v; }
  /** RECV, keyed by the UDP reader: the receiver index it keyed the slot by. */
  get receiver(): number { return this.words[this.m + M_RECEIVER]! >>> 0; }
  /** RECV, opened: offset in metaBytes of the plaintext's first INNER_HEAD_BYTES bytes (layout.ts M_INNER_HEAD). */
  get innerHead(): number { return (this.m + M_INNER_HEAD) * 4; }
  /** Send rings: fd of the connected UDP socket a worker may write the sealed message to (-1: main sends it). */
  get sendFd(): number { return this.words[this.m + M_FD]!; }
  set sendFd(v: number) { this.words[this.m + M_FD] = v; }
  /** route() convenience: everything the seal stage needs. */
  setSeal(paddedLen: number, keypairId: number, counterLo: number, counterHi: number, peerId: number): void {
    const w = this.words;
    const m = this.m;
    w[m + M_LENGTH] = paddedLen;
    w[m + M_KEYPAIR] = keypairId;
    w[m + M_COUNTER_LO] = counterLo;
    w[m + M_COUNTER_HI] = counterHi;
    w[m + M_PEER] = peerId;
  }
}

type WaitAsyncResult = { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
const waitAsync = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number): WaitAsyncResult }).waitAsync;

/** Publish the route stage's output to workers every this many slots (bounds their idle time behind a long batch). */
const ROUTE_PUBLISH_BATCH = 32;
/**
 * Direct TUN writes (latency): when a check-stage batch has at most this many slots and the TUN
 * writer has written everything handed to it, main writes the packets to TUN itself (the
 * writer's native call, one packet each; TUN writes do not block) instead of waking the writer thread (one
 * cross-thread wake-up, 60–70 µs on this host, on every idle packet's path). Larger batches (load)
 * go to the writer, which keeps TUN I/O off main when main is the bottleneck. Order holds: main
 * writes only while nothing handed to the writer is unwritten, and hands over the rest of a batch
 * after the first slot it does not write itself.
 */
const DIRECT_WRITE_MAX = 2;
const MAIN_CRYPTING = cryptingState(MAIN_CRYPT_ID);
/**
 * Inline seals (latency): when the TUN ring holds at most this many routed slots and nothing else
 * (idle: a ping, an ACK) and every crypto worker sleeps, main seals them itself (the native batch
 * call, ~1–2 µs each) and sends them from the release stage, instead of waking a crypto worker
 * (one cross-thread wake-up, 50–70 µs on this host) and being woken again by it. Only with the
 * native crypto module (a substitute module, `cryptoModule`, runs in the workers alone). Under
 * load the ring is deeper and every seal goes to the workers. While a worker is awake (the
 * receiving end of a TCP stream: its ACKs, read one or two at a time while the workers open the
 * data) the small batch is published without a notify: the awake worker re-checks every ring
 * before it sleeps (ring.ts "worker bell": its sleeper bit is set after our C_READY store if we
 * saw it clear), so it seals and sends them, and main makes neither the seal nor the sendmmsg
 * (on the TCP receiver these were ≈ 15 % of main's CPU).
 */
const INLINE_SEAL_MAX = 2;
/**
 * Worker sends: the worker that seals a packet sends it (and every finished slot behind it) in
 * one sendmmsg batch, so main makes no send syscall per packet. (With one write() per datagram,
 * the syscall on the bottleneck worker cost 10–35% of TCP throughput on the 2-vCPU host and
 * workers sent only packets with nothing in flight ahead; batched, it is a fraction of a µs per
 * packet.) Tests lower it to make main send.
 */
export const WORKER_SEND_DEPTH = Infinity;

export class Pipeline {
  readonly keys: KeyTable;
  /** Shared counters (layout.ts: statDrop, STAT_READER, STAT_WRITER, STAT_MAIN, statWorker). */
  readonly stats: Float64Array;
  readonly slotBytes: number;
  readonly maxInnerMtu: number;

  private readonly shared: DataplaneShared;
  private readonly ctl: Int32Array;
  private readonly rings: RingView[];
  private readonly views: Uint8Array[][];
  private readonly metas: SlotMeta[];
  /** Main-owned cursor copies: C_READY and C_RETIRED per ring. */
  private readonly ready: Int32Array;
  private readonly retired: Int32Array;
  /** The TUN queues' send rings (tunRingId(q) for queue q), and the send rings (those, then LOCAL). */
  private readonly tunRings: RingId[];
  private readonly sendRings: RingId[];
  private readonly udpWakeFd: number;
  /** The TUN readers' wake eventfds, by queue (-1: none). */
  private readonly tunWakeFds: number[];
  /** Main's reading of the UDP sockets at idle (intake.ts). */
  private readonly udpMain: MainIntake;
  /** Main's reading of each TUN queue at idle (intake.ts), by queue. */
  private readonly tunMains: MainIntake[];
  /** The inputs main may own at idle (recheckInputs looks at those it owns). */
  private readonly idleInputs: MainIntake[];
  /** The TUN queues' fds, by queue. */
  private readonly tunFds: readonly number[];
  /** Socket closes waiting for the UDP reader to acknowledge the generation that left them. */
  private readonly pendingUdpClose: { gen: number; run: () => void }[] = [];
  private readonly workerSendDepth: number;
  /** fd main writes to in direct mode (queue 0's; the idle hook's too). */
  private readonly directWriteFd: number;
  /**
   * What writeDirect writes to under load: that fd, or every queue's (each flow to one, as the TUN
   * writer does). At idle (main reads queue 0) it writes to queue 0, so an idle flow is read back
   * there, where the idle hook in C reads (the kernel reads a flow from the queue last written on).
   */
  private readonly directWriteTarget: number | Int32Array;
  /** writeDirect's arguments to the native writeSlots: one slot, its length, the call's out words. */
  private readonly directSlot = new Int32Array(1);
  private readonly directLen = new Int32Array(1);
  private readonly directOut = new Int32Array(TUN_WRITE_OUT_LEN);
  /** Main's seal function for inline seals (INLINE_SEAL_MAX); null: workers seal everything. */
  private readonly inlineSeal: SlotsFn | null;
  private readonly inlineList = new Int32Array(INLINE_SEAL_MAX);
  /** Crypto workers configured (INLINE_SEAL_MAX: inline only while every one of them sleeps). */
  private readonly workerCount: number;
  /** Main's send flush: the slots of one sendSlots batch, and the call's out words. */
  private readonly flushList = new Int32Array(64);
  private readonly flushOut = new Int32Array(8);
  /** One batch of main's send flush (ring.ts sendFinished): sendmmsg of list[0, n), like a crypto worker's. */
  private readonly sendBatch = (ring: RingView, fd: number, list: Int32Array, n: number): number => {
    const sent = udpNative().sendSlots(fd, fd, ring.data, ring.slotBytes, ring.meta, list, n, true, this.flushOut);
    this.stats[STAT_MAIN + MAIN_FLUSHED]! += sent;
    return sent;
  };
  private readonly inlineOk = new Uint8Array(INLINE_SEAL_MAX);
  /** Bytes written in front of an inner packet on TUN: 10 (a zero virtio_net_hdr) or 0. */
  private readonly tunHeader: number;
  /** RECV seq just past the last slot handed to the writer as DELIVER: the writer owes nothing once C_FREED reaches it. */
  private deliverMark = 0;
  /** Wake the writer to free slots main wrote itself once this many wait (bounds the unfreed backlog). */
  private readonly freeBatch: number;

  private readonly supervisor: Supervisor;
  /** afterInFlight() callbacks, FIFO, each with the C_READY marks every ring must retire past first. */
  private readonly pendingRetire: { run: () => void; marks: number[] }[] = [];

  private pumping = false;
  /** The idle lease (idle-lease.ts), when the idle hooks are installed; null: they are not. */
  private readonly lease: Int32Array | null;
  /** A lease was granted and not settled yet. */
  private leaseOut = false;
  private waiting = false;
  private started = false;
  private stopping = false;
  private stopPromise: Promise<void> | null = null;
  private tunGoneReported = false;
  /** CTL_TUN_MTU as last reported to hooks.onTunMtu. */
  private tunMtuSeen = 0;
  /** stop() finished: every thread is gone. */
  private stopped = false;

  private constructor(opts: Required<Pick<PipelineOptions, 'workers' | 'startTimeoutMs' | 'stopTimeoutMs'>> & PipelineOptions,
    private readonly hooks: PipelineHooks) {
    this.maxInnerMtu = opts.maxInnerMtu ?? DEFAULT_MAX_INNER_MTU;
    this.slotBytes = slotBytesFor(this.maxInnerMtu);
    this.tunFds = [opts.tunFd, ...(opts.tunQueueFds ?? [])];
    // What the TUN writer and main's direct writes write to: tunWriteFd, or every queue (each flow to one).
    const writeFds = opts.tunWriteFd === undefined ? this.tunFds : [opts.tunWriteFd];
    this.directWriteFd = writeFds[0]!;
    this.directWriteTarget = writeFds.length === 1 ? this.directWriteFd : Int32Array.from(writeFds);
    this.inlineSeal = opts.cryptoModule === undefined ? nativeSealSlots : null;
    this.workerCount = opts.workers;
    this.tunHeader = opts.tunVnetHdr === true ? VIRTIO_NET_HDR_LEN : 0;
    this.workerSendDepth = opts.workerSendDepth ?? WORKER_SEND_DEPTH;
    this.udpWakeFd = opts.udp.wakeFd;
    this.tunWakeFds = [opts.tunWakeFd ?? -1, ...(opts.tunQueueFds ?? []).map((_, i) => opts.tunQueueWakeFds?.[i] ?? -1)];
    this.keys = opts.keys ?? KeyTable.create(opts.keypairCapacity ?? DEFAULT_KEYPAIR_CAPACITY);
    const ringSlots = opts.ringSlots ?? DEFAULT_RING_SLOTS;
    const localSlots = opts.localSlots ?? DEFAULT_LOCAL_SLOTS;
    const queues = this.tunFds.length;
    const ids = ringIds(queues);
    this.tunRings = this.tunFds.map((_, q) => tunRingId(q));
    this.sendRings = [...this.tunRings, RING_LOCAL];
    this.shared = {
      control: new SharedArrayBuffer(CONTROL_WORDS * 4),
      stats: new SharedArrayBuffer(STATS_LENGTH * 8),
      keys: this.keys.buffer,
      rings: ids.map((r) => allocRing(r === RING_LOCAL ? localSlots : ringSlots, this.slotBytes)),
    };
    this.ready = new Int32Array(ids.length);
    this.retired = new Int32Array(ids.length);
    this.ctl = new Int32Array(this.shared.control);
    this.ctl[CTL_UDP_FD4] = -1;
    this.ctl[CTL_UDP_FD6] = -1;
    this.stats = new Float64Array(this.shared.stats);
    this.rings = ids.map((r) => new RingView(r, this.ctl, this.shared.rings[r]!));
    // ring.ts "sharing a wake-up"; intake.ts: quiet()
    for (const r of this.tunRings) this.rings[r]!.partner = this.rings[RING_RECV]!;
    this.rings[RING_RECV]!.partner = ringGroup(this.tunRings.map((r) => this.rings[r]!));
    const udpIntake = new UdpIntake(this.rings[RING_RECV]!, this.keys, ReceiverIndexMap.attach(opts.udp.indexMap), this.stats, udpNative());
    const tunIntakes = this.tunFds.map((fd, q) => new TunIntake(this.rings[tunRingId(q)]!, this.stats, tunNative(), fd, opts.tunName ?? '',
      opts.tunVnetHdr === true, statReader(q)));
    const tunIntake = tunIntakes[0]!;
    this.lease = opts.idleVersions !== undefined && opts.cryptoModule === undefined ? new Int32Array(IL_WORDS) : null;
    const lease = this.lease;
    const hookCommon = (ring: RingView, intake: { slotList: Int32Array; out: Int32Array }, batch: number) => ({
      lease: lease!, ctl: this.ctl, data: ring.data, meta: ring.meta, slots: intake.slotList, out: intake.out, keys: this.keys.bytes,
      keyGen: this.keys.generations, routeVersion: opts.idleVersions!.routeVersion, engineVersion: opts.idleVersions!.engineVersion,
      slotBytes: ring.slotBytes, ringSlots: ring.slots, batch, iProduced: ring.iProduced, iFreed: ring.iFreed, iUdpGen: CTL_UDP_GEN,
    });
    const udpHook = lease === null ? null : udpNative().idleReceiveHook({
      ...hookCommon(this.rings[RING_RECV]!, udpIntake, UDP_INTAKE_BATCH),
      iFd4: CTL_UDP_FD4, iFd6: CTL_UDP_FD6, tunFd: this.directWriteFd, vnetHdr: this.tunHeader !== 0,
    });
    const tunHook = lease === null ? null : tunNative().idleSendHook({
      ...hookCommon(this.rings[RING_TUN]!, tunIntake, TUN_INTAKE_BATCH),
      tunFd: opts.tunFd, vnetHdr: opts.tunVnetHdr === true, ifname: opts.tunName ?? '',
    });
    this.udpMain = new MainIntake({
      ctl: this.ctl, ownerWord: CTL_UDP_OWNER, ring: this.rings[RING_RECV]!, batch: UDP_INTAKE_BATCH,
      // What the idle hook received and left to main is published first, as main's own receive would.
      read: (seq, max) => (lease !== null && lease[IL_UDP_ADOPT] !== 0 ? udpIntake.publish(seq, adopt(lease, IL_UDP_ADOPT))
        : udpIntake.receive(Atomics.load(this.ctl, CTL_UDP_FD4), Atomics.load(this.ctl, CTL_UDP_FD6), -1, 0, seq, max)),
      hook: udpHook,
      pending: () => udpIntake.pending,
      load: () => udpIntake.load,
      stats: this.stats, takenCell: STAT_MAIN + MAIN_UDP_TAKEN, givenCell: STAT_MAIN + MAIN_UDP_GIVEN,
      onReadable: this.onInputReadable,
    });
    // Queue 0 has the idle hook (a lone packet in C; main's own small writes go to queue 0, so an
    // idle flow is read there); the further queues are read by main at idle in JavaScript.
    this.tunMains = tunIntakes.map((intake, q) => new MainIntake({
      ctl: this.ctl, ownerWord: ctlTunOwner(q), ring: this.rings[tunRingId(q)]!, batch: TUN_INTAKE_BATCH,
      read: q === 0
        ? (seq, max) => (lease !== null && lease[IL_TUN_ADOPT] !== 0 ? tunIntake.publish(seq, adopt(lease, IL_TUN_ADOPT)) : tunIntake.read(-1, 0, seq, max))
        : (seq, max) => intake.read(-1, 0, seq, max),
      hook: q === 0 ? tunHook : null,
      pending: () => intake.pending,
      stats: this.stats, takenCell: STAT_MAIN + MAIN_TUN_TAKEN, givenCell: STAT_MAIN + MAIN_TUN_GIVEN,
      onReadable: this.onInputReadable,
    }));
    this.idleInputs = [...this.tunMains, this.udpMain];
    this.views = this.rings.map((ring) => Array.from({ length: ring.slots }, (_, s) => ring.data.subarray(s * ring.slotBytes, (s + 1) * ring.slotBytes)));
    this.metas = this.rings.map((ring) => new SlotMeta(ring.id, ring.meta));
    this.freeBatch = Math.max(1, Math.min(64, ringSlots >> 2));
    const cm = opts.cryptoModule;
    this.supervisor = new Supervisor({
      shared: this.shared,
      workers: opts.workers,
      tunFds: this.tunFds,
      tunWriteFds: writeFds,
      tunName: opts.tunName ?? '',
      tunWakeFds: this.tunWakeFds,
      tunVnetHdr: opts.tunVnetHdr === true,
      udpWakeFd: this.udpWakeFd,
      udpIndexMap: opts.udp.indexMap,
      cryptoModule: cm === undefined ? undefined : cm.toString(),
      cryptoModuleData: opts.cryptoModuleData,
      startTimeoutMs: opts.startTimeoutMs,
      stopTimeoutMs: opts.stopTimeoutMs,
    }, {
      cryptoExited: (id) => this.reclaimWorker(id),
      tunThreadExited: () => {
        if (Atomics.load(this.ctl, CTL_TUN_GONE) === 0) return true;
        this.pump(); // reports onTunGone
        return false;
      },
      error: (id, err) => this.hooks.onWorkerError(id, err),
      restarted: (id) => this.hooks.onWorkerRestarted?.(id),
    }, this.stats);
  }

  /** Allocate the rings, start and attach all threads, and start draining. Rejects (after cleaning up) if a thread fails to attach in time. */
  static async start(opts: PipelineOptions, hooks: PipelineHooks): Promise<Pipeline> {
    if (!Number.isInteger(opts.workers) || opts.workers < 1 || opts.workers > MAX_WORKERS) {
      throw new RangeError(`workers must be an integer in 1..${MAX_WORKERS}, got ${opts.workers}`);
    }
    const mtu = opts.maxInnerMtu ?? DEFAULT_MAX_INNER_MTU;
    if (!Number.isInteger(mtu) || mtu < 0 || mtu > 65535) throw new RangeError(`maxInnerMtu must be in 0..65535, got ${mtu}`);
    const queues = 1 + (opts.tunQueueFds?.length ?? 0);
    if (queues > MAX_TUN_QUEUES) throw new RangeError(`at most ${MAX_TUN_QUEUES} TUN queues, got ${queues}`);
    const p = new Pipeline({
      ...opts,
      startTimeoutMs: opts.startTimeoutMs ?? 10_000,
      stopTimeoutMs: opts.stopTimeoutMs ?? 2_000,
    }, hooks);
    try {
      await p.supervisor.start();
    } catch (err) {
      await p.stop();
      throw err;
    }
    p.started = true;
    p.pump();
    return p;
  }

  // ---- producer APIs (main) ---------------------------------------------------------------------

  /** The whole data area of a slot (slotBytes), a reused view. */
  slotData(ring: RingId, slot: number): Uint8Array {
    return this.views[ring]![slot]!;
  }

  /**
   * Hand the UDP reader thread the interface's sockets (-1: none for that family). `onLeft` runs
   * once the reader has moved to them and no send slot published before this call is in flight:
   * the moment the previous sockets may be closed.
   */
  setUdpSockets(fd4: number, fd6: number, onLeft: () => void): void {
    const ctl = this.ctl;
    Atomics.store(ctl, CTL_UDP_FD4, fd4);
    Atomics.store(ctl, CTL_UDP_FD6, fd6);
    const gen = (Atomics.load(ctl, CTL_UDP_GEN) + 1) | 0;
    Atomics.store(ctl, CTL_UDP_GEN, gen);
    if (!this.started || this.stopping) {
      this.afterInFlight(onLeft);
      return;
    }
    wakeEventFd(this.udpWakeFd);
    this.pendingUdpClose.push({ gen, run: () => this.afterInFlight(onLeft) });
    this.pump();
  }

  /** LOCAL stage 1: next free slot of the LOCAL send ring, or -1 when full (Drop.RING_FULL). Idempotent until publishLocal(). */
  reserveLocal(): number {
    const ring = this.rings[RING_LOCAL]!;
    const seq = this.ready[RING_LOCAL]!;
    if (((seq - this.retired[RING_LOCAL]!) | 0) >= ring.slots) {
      this.stats[statDrop(RING_LOCAL, Drop.RING_FULL)]! += 1;
      return -1;
    }
    return seq & ring.mask;
  }

  /** The reserved LOCAL slot's data area: plaintext at [16, 16+paddedLen) (zero padded), transport header at [0,16). */
  localData(slot: number): Uint8Array {
    return this.views[RING_LOCAL]![slot]!;
  }

  /** The LOCAL ring's meta words (endpoint words of a reserved slot: slot * META_WORDS + M_EP_*). */
  localMeta(_slot: number): Int32Array {
    return this.rings[RING_LOCAL]!.meta;
  }

  /**
   * LOCAL stage 1: publish a filled slot for sealing (paddedLen may be 0: keepalive); `sendFd` as
   * SlotMeta.sendFd (-1: main sends it). False (Drop.BAD_LENGTH) if it does not fit.
   */
  publishLocal(slot: number, paddedLen: number, keypairId: number, peerId: number, counterLo: number, counterHi: number, sendFd = -1): boolean {
    const ring = this.rings[RING_LOCAL]!;
    const seq = this.ready[RING_LOCAL]!;
    if (slot !== (seq & ring.mask) || ((seq - this.retired[RING_LOCAL]!) | 0) >= ring.slots) throw new Error(`slot ${slot} of ring ${RING_LOCAL} was not reserved`);
    if (!(paddedLen >= 0 && paddedLen <= ring.slotBytes - MESSAGE_TRANSPORT_HEADER_SIZE - AEAD_TAG_LEN)) {
      this.stats[statDrop(RING_LOCAL, Drop.BAD_LENGTH)]! += 1;
      return false;
    }
    const meta = ring.meta;
    const m = slot * META_WORDS;
    meta[m + M_FD] = sendFd;
    meta[m + M_LENGTH] = paddedLen;
    meta[m + M_RESULT] = 0;
    meta[m + M_KEYPAIR] = keypairId;
    meta[m + M_PEER] = peerId;
    meta[m + M_COUNTER_LO] = counterLo;
    meta[m + M_COUNTER_HI] = counterHi;
    meta[m + M_SEQ] = seq;
    Atomics.store(meta, m + M_STATE, SlotState.PENDING);
    const next = (seq + 1) | 0;
    this.ready[RING_LOCAL] = next;
    Atomics.store(this.ctl, ring.iReady, next); // publish (release)
    this.wakeWorkers(1);
    return true;
  }

  /** Release a send-ring slot held by onSealed() returning true. */
  releaseHeld(ring: RingId, slot: number): void {
    const r = this.rings[ring]!;
    const m = slot * META_WORDS;
    if (Atomics.load(r.meta, m + M_STATE) !== SlotState.HELD) throw new Error(`releaseHeld: slot ${slot} of ring ${ring} is not held`);
    Atomics.store(r.meta, m + M_STATE, SlotState.SKIP); // released without a second onSealed()
    this.pump();
  }

  /** Zero and free keypair id `id` once every slot published before this call has left the rings. */
  retireKeys(id: number): void {
    this.afterInFlight(() => this.keys.free(id));
  }

  /** Run `fn` (on main) once every slot published before this call has left the rings: now, if none is in flight. */
  afterInFlight(fn: () => void): void {
    if (this.stopped) { // no thread is left to use anything
      fn();
      return;
    }
    this.pendingRetire.push({ run: fn, marks: Array.from(this.ready) });
    this.processRetired();
  }

  /** Run every main stage now (e.g. after a burst of UDP datagrams) instead of waiting for the doorbell. Reentrant calls are ignored. */
  drain(): void {
    this.pump();
  }

  /** Queues of the TUN device, each with a reader thread and a send ring (tunRingId). */
  get tunQueues(): number {
    return this.tunFds.length;
  }

  /** Number of slots of `ring`. */
  slots(ring: RingId): number {
    return this.rings[ring]!.slots;
  }

  /** Slots currently between the producer and the last stage of `ring`. */
  inFlight(ring: RingId): number {
    const r = this.rings[ring]!;
    const head = ring === RING_LOCAL ? this.ready[ring]! : Atomics.load(this.ctl, r.iProduced);
    const freed = ring === RING_RECV ? Atomics.load(this.ctl, r.iFreed) : this.retired[ring]!;
    return (head - freed) | 0;
  }

  /** A crypto worker thread by id (for tests and diagnostics). */
  cryptoWorker(id: number): Worker | undefined {
    return this.supervisor.cryptoWorker(id);
  }

  /** Why the TUN went away, for logs: 'EOF', an errno name such as 'EBADF' or 'EFAULT', or null while it is there. */
  get tunGoneCode(): string | null {
    if (Atomics.load(this.ctl, CTL_TUN_GONE) === 0) return null;
    if (Atomics.load(this.ctl, CTL_TUN_GONE_CAUSE) === TunGoneCause.READ_EOF) return 'EOF';
    const errno = Atomics.load(this.ctl, CTL_TUN_GONE_ERRNO);
    try {
      return getSystemErrorName(errno);
    } catch {
      return `errno ${errno}`;
    }
  }

  /** Whether the TUN reader thread is still alive (it may outlive stop() while blocked in read()). */
  get tunReaderRunning(): boolean {
    return this.supervisor.readerRunning;
  }

  /** Stop every thread (bounded by stopTimeoutMs each); in-flight slots are abandoned. See the header about a blocked TUN reader. */
  stop(): Promise<void> {
    if (this.stopPromise === null) this.stopPromise = this.doStop();
    return this.stopPromise;
  }

  // ---- main stages ---------------------------------------------------------------------------------

  /** Notify sleeping crypto workers (ring.ts wakeWorkers), counted. */
  private wakeWorkers(n: number): void {
    if (wakeWorkers(this.ctl, n)) this.stats[STAT_MAIN + MAIN_WORKER_NOTIFIES]! += 1;
  }

  /** Drain all stages until nothing moves, then arm the doorbell (protocol: ring.ts). */
  private pump(): void {
    if (this.pumping || this.stopping || !this.started) return;
    this.pumping = true;
    const ctl = this.ctl;
    if (this.leaseOut) this.settleLease();
    let recheckFrom = 0; // inputs below this were looked at in this wake-up (recheckInputs)
    try {
      for (;;) {
        Atomics.store(ctl, CTL_MAIN_ARMED, 0);
        while (this.drainOnce()) { /* until no stage moves */ }
        if (recheckFrom < this.idleInputs.length) { // each input once per wake-up: a steady trickle must not keep main from its event loop
          const next = this.recheckInputs(recheckFrom);
          recheckFrom = next < 0 ? this.idleInputs.length : next;
          if (next >= 0) continue; // something was read: handle it first
        }
        this.hooks.drained?.();
        if (this.stopping) return;
        Atomics.store(ctl, CTL_MAIN_ARMED, 1);
        for (let r = 0; r < this.rings.length; r++) Atomics.store(ctl, this.rings[r]!.iHeadWait, this.retired[r]!);
        const bell = Atomics.load(ctl, CTL_MAIN_BELL);
        if (this.hasWork()) continue;
        if (this.lease !== null) this.grantLease();
        if (this.waiting) return; // an earlier waitAsync is still pending: any ring notifies it
        const res = waitAsync(ctl, CTL_MAIN_BELL, bell);
        if (!res.async) continue;
        this.waiting = true;
        void res.value.then(this.onBell);
        return;
      }
    } finally {
      this.pumping = false;
    }
  }

  private readonly onBell = (): void => {
    this.waiting = false;
    this.stats[STAT_MAIN + MAIN_WAKEUPS]! += 1;
    this.pump();
  };

  /** Is there anything a main stage could consume right now? (Called after arming.) */
  private hasWork(): boolean {
    for (const r of this.tunRings) if (Atomics.load(this.ctl, this.rings[r]!.iProduced) !== this.ready[r]) return true;
    this.ready[RING_RECV] = Atomics.load(this.ctl, this.rings[RING_RECV]!.iReady);
    if (this.pendingUdpClose.length !== 0 && Atomics.load(this.ctl, CTL_UDP_GEN_SEEN) === this.pendingUdpClose[0]!.gen) return true;
    if (this.idleInputs.some((input) => input.awaitsWatch())) return true; // an input handed to main
    for (let r = 0; r < this.rings.length; r++) {
      const ring = this.rings[r]!;
      const head = this.retired[r]!;
      if (head === this.ready[r]) continue;
      const m = (head & ring.mask) * META_WORDS;
      const st = Atomics.load(ring.meta, m + M_STATE);
      if (r === RING_RECV) {
        if (st === SlotState.DONE || st === SlotState.FAILED || st === SlotState.DEAD || st === SlotState.FILLED) return true;
        continue;
      }
      // Send rings: slots a flusher passed are main's to release. A finished slot at the flush head
      // is main's to send only while no flusher holds the lock (that one sends it, and rings main
      // if it moved C_SENT while main sleeps: ring.ts flushSends), or when it is main's (fd −1).
      if (head !== Atomics.load(this.ctl, ring.iSent)) return true;
      if (st === SlotState.DONE && ring.meta[m + M_FD]! < 0) return true;
      if (finishedSend(st) && Atomics.load(this.ctl, ring.iSendLock) === 0) return true;
    }
    return !this.tunGoneReported && Atomics.load(this.ctl, CTL_TUN_GONE) !== 0;
  }

  private drainOnce(): boolean {
    this.hooks.drainPass?.();
    const mtu = Atomics.load(this.ctl, CTL_TUN_MTU);
    if (mtu !== this.tunMtuSeen && mtu !== 0) { // before routing what was read after the change
      this.tunMtuSeen = mtu;
      this.hooks.onTunMtu?.(mtu);
    }
    let moved = false;
    for (const r of this.tunRings) moved = this.routeStage(r) || moved;
    for (let q = 0; q < this.tunMains.length; q++) if (this.tunMains[q]!.owned()) this.tunMains[q]!.watch(this.tunFds[q]!);
    if (this.udpMain.owned()) this.watchUdp();
    this.ready[RING_RECV] = Atomics.load(this.ctl, this.rings[RING_RECV]!.iReady); // the reader publishes
    if (this.pendingUdpClose.length !== 0) this.processUdpSwitch();
    for (const r of this.sendRings) moved = this.releaseStage(r) || moved;
    moved = this.checkStage() || moved;
    if (this.pendingRetire.length !== 0) this.processRetired();
    if (!this.tunGoneReported && Atomics.load(this.ctl, CTL_TUN_GONE) !== 0) {
      this.tunGoneReported = true;
      this.hooks.onTunGone();
      moved = true;
    }
    return moved;
  }

  /** TUN ring stage 2 (ring r: a TUN queue's). */
  private routeStage(r: RingId): boolean {
    const ring = this.rings[r]!;
    const produced = Atomics.load(this.ctl, ring.iProduced);
    let seq = this.ready[r]!;
    if (seq === produced) return false;
    const meta = ring.meta;
    const views = this.views[r]!;
    const sm = this.metas[r]!;
    const start = seq;
    let unpublished = 0;
    let first = true;
    while (seq !== produced) {
      const s = seq & ring.mask;
      const m = s * META_WORDS;
      let seal = false;
      meta[m + M_FD] = -1; // route() may name a socket
      try {
        seal = this.hooks.route(s, views[s]!, meta[m + M_LENGTH]!, sm.at(s)) === true;
      } catch (err) {
        this.hookError('route', err, r);
      }
      if (!seal) this.stats[statDrop(r, Drop.SKIPPED)]! += 1;
      else if (((seq - this.retired[r]!) | 0) >= this.workerSendDepth) meta[m + M_FD] = -1; // loaded: main sends
      // A plain store: no other thread reads the slot before the C_READY store that publishes it
      // (an Atomics.store per slot was main's costliest builtin on this path).
      meta[m + M_STATE] = seal ? SlotState.PENDING : SlotState.SKIP;
      seq = (seq + 1) | 0;
      if (++unpublished === ROUTE_PUBLISH_BATCH) {
        // Sleeping workers are woken at the first publish (they start while main routes the rest)
        // and once more at the end: a notify per publish mostly found the same worker not yet
        // running (bench/mainthread.ts: ~1.5 notifies per wake-up of main).
        this.publishRouted(r, seq, first ? unpublished : 0);
        first = false;
        unpublished = 0;
      }
    }
    if (first && this.inlineSeal !== null && ((seq - this.retired[r]!) | 0) <= INLINE_SEAL_MAX) {
      if (allWorkersAsleep(this.ctl, this.workerCount)) this.sealInline(ring, seq);
      else this.publishRouted(r, seq, 0); // a worker is awake: it seals and sends them (see INLINE_SEAL_MAX)
    } else {
      this.publishRouted(r, seq, (seq - start) | 0);
    }
    return true;
  }

  /**
   * TUN ring, idle (INLINE_SEAL_MAX): publish the routed slots up to `seq` without waking the
   * workers, then claim and seal them here like a worker would (a worker that happens to be awake
   * may claim one first; it then seals and sends it). The release stage of this same drain sends
   * what main sealed, in order, holding the flush lock.
   */
  private sealInline(ring: RingView, seq: number): void {
    this.ready[ring.id] = seq;
    Atomics.store(this.ctl, ring.iReady, seq);
    const list = this.inlineList;
    let n = 0;
    while (n < list.length) {
      const s = ring.claim(MAIN_CRYPTING);
      if (s < 0) break;
      list[n++] = s;
    }
    if (n === 0) return;
    this.inlineSeal!(ring.data, ring.slotBytes, ring.meta, this.keys.bytes, list, n, this.inlineOk);
    for (let i = 0; i < n; i++) ring.finish(list[i]!, this.inlineOk[i] === 1 ? SlotState.DONE : SlotState.FAILED);
    this.stats[STAT_MAIN + MAIN_INLINE_SEALED]! += n;
  }

  /**
   * RECV, UDP reader mode, check stage: a datagram the reader could not key (handshake messages,
   * unknown receiver indices, malformed): hooks.classify() handles it (queues handshakes, counts
   * drops). If classify finds a key after all (the keypair was installed after the datagram was
   * read), it is too late to open it: onOpened() is told it failed (state FILLED).
   */
  private classifyLate(s: number, data: Uint8Array, len: number, sm: SlotMeta): void {
    let open = false;
    try {
      open = this.hooks.classify?.(s, data, len, sm) === true;
    } catch (err) {
      this.hookError('classify', err, RING_RECV);
    }
    if (!open) return;
    try {
      this.hooks.onOpened(s, data, 0, false, sm);
    } catch (err) {
      this.hookError('onOpened', err, RING_RECV);
    }
  }

  /** Run the socket closes whose generation the UDP reader has acknowledged (FIFO). */
  private processUdpSwitch(): void {
    const seen = Atomics.load(this.ctl, CTL_UDP_GEN_SEEN);
    while (this.pendingUdpClose.length !== 0 && ((seen - this.pendingUdpClose[0]!.gen) | 0) >= 0) this.pendingUdpClose.shift()!.run();
  }

  /**
   * Main owns the UDP sockets (idle, intake.ts): watch the current ones. The reader thread is
   * parked and uses no socket, so main acknowledges a socket generation itself (the replaced
   * sockets may close once no send slot names them).
   */
  private watchUdp(): void {
    const ctl = this.ctl;
    const gen = Atomics.load(ctl, CTL_UDP_GEN);
    this.udpMain.watch(Atomics.load(ctl, CTL_UDP_FD4), Atomics.load(ctl, CTL_UDP_FD6));
    if (Atomics.load(ctl, CTL_UDP_GEN_SEEN) !== gen) Atomics.store(ctl, CTL_UDP_GEN_SEEN, gen);
  }

  /**
   * An input main owns at idle (intake.ts) is readable: stage 1 of its ring as its thread would do
   * it (MainIntake.readAll: the TUN ring from the device, the RECV ring from the sockets), then
   * drain: route, seal and send, or check and write, in this same turn.
   */
  private readonly onInputReadable = (input: MainIntake): void => {
    if (this.leaseOut) this.settleLease();
    if (this.stopping || !input.owned()) {
      this.pump(); // after a settle: its timers are re-armed when the drain ends
      return;
    }
    this.stats[STAT_MAIN + MAIN_WAKEUPS]! += 1;
    Atomics.store(this.ctl, CTL_MAIN_ARMED, 0); // awake: what we publish must not ring our own bell
    input.readAll();
    this.pump();
  };

  /**
   * Main is about to sleep (pump): if it owns an input and that input's ring is quiet — the TUN
   * ring empty; the RECV ring all checked and the writer owing nothing, so a packet written from C
   * overtakes none — grant the idle lease (idle-lease.ts): hooks.idleGrant fills in the peer.
   */
  private grantLease(): void {
    const L = this.lease!;
    if (this.leaseOut || this.stopping) return;
    const ctl = this.ctl;
    const tun = this.rings[RING_TUN]!;
    const recv = this.rings[RING_RECV]!;
    const tunAt = Atomics.load(ctl, tun.iProduced);
    const recvAt = Atomics.load(ctl, recv.iProduced);
    const tunQuiet = this.tunMains[0]!.owned() && tunAt === this.retired[RING_TUN] && Atomics.load(ctl, tun.iFreed) === tunAt;
    // The receive hook writes to queue 0: with several queues only while main owns every queue (the
    // whole device idle), or its writes would pull a loaded queue's flows onto queue 0 (writeDirect).
    const recvQuiet = this.udpMain.owned() && (this.tunMains.length === 1 || this.allQueuesOwned()) && recvAt === this.retired[RING_RECV]
      && ((Atomics.load(ctl, recv.iFreed) - this.deliverMark) | 0) >= 0;
    // A hook's hand-over not taken yet (only while stopping) means main is not idle: no lease.
    if ((!tunQuiet && !recvQuiet) || L[IL_TUN_ADOPT] !== 0 || L[IL_UDP_ADOPT] !== 0) return;
    L.fill(0);
    let granted = false;
    try {
      granted = this.hooks.idleGrant?.(L) === true;
    } finally {
      if (!granted) L.fill(0);
    }
    if (!granted) return;
    L[IL_TUN_QUIET] = tunQuiet ? 1 : 0;
    L[IL_TUN_AT] = tunAt;
    L[IL_RECV_QUIET] = recvQuiet ? 1 : 0;
    L[IL_RECV_AT] = recvAt;
    L[IL_UDP_GEN] = Atomics.load(ctl, CTL_UDP_GEN);
    L[IL_VALID] = 1;
    this.leaseOut = true;
  }

  /**
   * Main's turn starts while a lease is out: withdraw it before anything else, count what the hooks
   * did under it (the readers' and writer's statistics, as if main's own reads and writes had
   * moved those packets), then hooks.idleSettle does the protocol's bookkeeping.
   */
  private settleLease(): void {
    const L = this.lease!;
    L[IL_VALID] = 0;
    this.leaseOut = false;
    const st = this.stats;
    st[STAT_READER + R_READS]! += L[IL_SENT_READS]!;
    st[STAT_READER + R_PACKETS]! += L[IL_SENT]!;
    st[STAT_READER + R_BYTES]! += L[IL_SENT_PLAIN]!;
    st[STAT_MAIN + MAIN_IDLE_SENT]! += L[IL_SENT]!;
    st[STAT_UDP_READER + U_DATAGRAMS]! += L[IL_RECEIVED]!;
    st[STAT_UDP_READER + U_CALLS]! += L[IL_RECEIVED]!;
    st[STAT_UDP_READER + U_BYTES]! += L[IL_RECV_BYTES]!;
    st[STAT_UDP_READER + U_FAST]! += L[IL_RECEIVED]!;
    st[STAT_WRITER + W_PACKETS]! += L[IL_WRITTEN]!;
    st[STAT_WRITER + W_WRITES]! += L[IL_WRITTEN]!;
    st[STAT_WRITER + W_BYTES]! += L[IL_WRITTEN_BYTES]!;
    st[STAT_MAIN + MAIN_IDLE_RECEIVED]! += L[IL_RECEIVED]!;
    try {
      this.hooks.idleSettle?.(L); // the results stay until the next grant zeroes them
    } catch (err) {
      this.hookError('idleSettle', err, null); // as a packet hook's: logged, and the turn goes on
    }
  }

  /** Publish the routed slots of TUN ring r below `seq`; wake up to `n` sleeping workers (0: none). */
  private publishRouted(r: RingId, seq: number, n: number): void {
    this.ready[r] = seq;
    Atomics.store(this.ctl, this.rings[r]!.iReady, seq);
    if (n > 0) this.wakeWorkers(n);
  }

  /**
   * Send rings, stages 4 and 5 on main. First release, in order, what the flushers have passed
   * (below C_SENT): SENT slots are accounted for (onSealed, sent=true), FAILED/DEAD ones counted.
   * Then, at the flush head, take the flush lock and send what is finished there through dgram
   * (onSealed, sent=false): slots a worker could not write, or that no worker has flushed yet.
   * Stops at the first slot still being sealed, or at one onSealed() holds.
   */
  private releaseStage(r: RingId): boolean {
    const ring = this.rings[r]!;
    const meta = ring.meta;
    const ready = this.ready[r]!;
    const start = this.retired[r]!;
    let seq = start;
    const sentTo = Atomics.load(this.ctl, ring.iSent);
    while (seq !== sentTo) {
      const s = seq & ring.mask;
      this.releaseSlot(r, s, Atomics.load(meta, s * META_WORDS + M_STATE));
      seq = (seq + 1) | 0;
    }
    // Only for a finished head: holding the lock for nothing makes a worker that finishes meanwhile
    // leave its batch to main (which then sends it, below).
    if (seq !== ready && finishedSend(Atomics.load(meta, (seq & ring.mask) * META_WORDS + M_STATE)) && ring.tryLockSend(SEND_LOCK_MAIN)) {
      // The lock holder before us may have moved C_SENT on since we read it.
      for (const to = Atomics.load(this.ctl, ring.iSent); seq !== to; seq = (seq + 1) | 0) {
        const s = seq & ring.mask;
        this.releaseSlot(r, s, Atomics.load(meta, s * META_WORDS + M_STATE));
      }
      while (seq !== ready) {
        const s = seq & ring.mask;
        const st = Atomics.load(meta, s * META_WORDS + M_STATE);
        if (st === SlotState.DONE && meta[s * META_WORDS + M_FD]! >= 0) {
          // Sealed for a worker to send, but no worker did (one that finished while a flusher held
          // the lock left it to that flusher; main sealed it at idle): sent as a worker would, in
          // batches, then released as SENT. A slot whose send failed comes back with fd −1.
          const to = ring.sendFinished(seq, ready, this.flushList, this.sendBatch);
          for (; seq !== to; seq = (seq + 1) | 0) {
            const t = seq & ring.mask;
            this.releaseSlot(r, t, Atomics.load(meta, t * META_WORDS + M_STATE)); // never held: nothing here was sent by main's hook
          }
          continue;
        }
        if (!finishedSend(st)) break;
        if (!this.releaseSlot(r, s, st)) break; // held: C_SENT stays here, so nothing overtakes it
        seq = (seq + 1) | 0;
      }
      ring.unlockSend(seq);
    }
    if (seq === start) return false;
    this.retired[r] = seq;
    Atomics.store(this.ctl, ring.iRetired, seq);
    Atomics.store(this.ctl, ring.iFreed, seq);
    if (r !== RING_LOCAL && Atomics.load(this.ctl, ctlReaderWaiting(this.tunRings.indexOf(r))) !== 0) Atomics.notify(this.ctl, ring.iFreed, 1);
    return true;
  }

  /**
   * One finished send slot, in order: DONE is sent now (main holds the flush lock), SENT was sent by
   * a worker, FAILED/DEAD are counted, SKIP needs nothing. Frees the slot and returns true, or
   * returns false when onSealed() holds it (state HELD; releaseHeld() makes it SKIP).
   */
  private releaseSlot(r: RingId, s: number, st: number): boolean {
    const meta = this.rings[r]!.meta;
    const m = s * META_WORDS;
    if (st !== SlotState.SKIP) {
      const ok = st === SlotState.DONE || st === SlotState.SENT;
      if (!ok) this.stats[statDrop(r, st === SlotState.DEAD ? Drop.DEAD : Drop.CRYPTO_FAILED)]! += 1;
      let held = false;
      try {
        held = this.hooks.onSealed(s, this.views[r]![s]!, ok ? meta[m + M_RESULT]! : 0, ok, this.metas[r]!.at(s), st === SlotState.SENT) === true;
      } catch (err) {
        this.hookError('onSealed', err, r);
      }
      if (held && st === SlotState.DONE) { // only a send main just made can hold the slot
        Atomics.store(meta, m + M_STATE, SlotState.HELD);
        return false;
      }
    }
    meta[m + M_STATE] = SlotState.FREE; // published with C_FREED (the producer reuses slots below it)
    return true;
  }

  /** RECV ring stage 3. */
  private checkStage(): boolean {
    const ring = this.rings[RING_RECV]!;
    const meta = ring.meta;
    const ready = this.ready[RING_RECV]!;
    const start = this.retired[RING_RECV]!;
    const views = this.views[RING_RECV]!;
    const sm = this.metas[RING_RECV]!;
    let seq = start;
    // Direct mode for this batch: small, and the writer has written all it was handed.
    let direct = this.directWriteFd >= 0 && ((ready - start) | 0) <= DIRECT_WRITE_MAX
      && ((Atomics.load(this.ctl, ring.iFreed) - this.deliverMark) | 0) >= 0;
    let handed = false;
    while (seq !== ready) {
      const s = seq & ring.mask;
      const m = s * META_WORDS;
      const st = Atomics.load(meta, m + M_STATE);
      if (st === SlotState.FILLED) { // UDP reader mode: not a transport message it could key
        this.classifyLate(s, views[s]!, meta[m + M_LENGTH]!, sm.at(s));
        Atomics.store(meta, m + M_STATE, SlotState.DROP);
        seq = (seq + 1) | 0;
        continue;
      }
      if (st !== SlotState.DONE && st !== SlotState.FAILED && st !== SlotState.DEAD) break;
      const ok = st === SlotState.DONE;
      const plain = ok ? meta[m + M_RESULT]! : 0;
      let n = -1;
      try {
        n = this.hooks.onOpened(s, views[s]!, plain, ok, sm.at(s));
      } catch (err) {
        this.hookError('onOpened', err, RING_RECV);
        n = -2;
      }
      if (ok && Number.isInteger(n) && n >= 0 && n <= plain) {
        meta[m + M_RESULT] = n;
        // Verdicts are plain stores: the writer reads a slot only below C_RETIRED, stored after them.
        if (direct && this.writeDirect(ring, s, n)) {
          meta[m + M_STATE] = SlotState.DROP; // written: the writer only frees it
        } else {
          direct = false; // from here on the writer writes, in order
          handed = true;
          this.deliverMark = (seq + 1) | 0;
          meta[m + M_STATE] = SlotState.DELIVER;
        }
      } else {
        if (!ok) this.stats[statDrop(RING_RECV, st === SlotState.DEAD ? Drop.DEAD : Drop.CRYPTO_FAILED)]! += 1;
        else if (n === -1) this.stats[statDrop(RING_RECV, Drop.REJECTED)]! += 1;
        else if (n !== -2) this.hookError('onOpened', new RangeError(`onOpened returned ${n} for a ${plain}-byte plaintext`), RING_RECV);
        meta[m + M_STATE] = SlotState.DROP;
      }
      seq = (seq + 1) | 0;
    }
    if (seq === start) return false;
    this.retired[RING_RECV] = seq;
    Atomics.store(this.ctl, ring.iRetired, seq);
    if (Atomics.load(this.ctl, CTL_WRITER_WAITING) !== 0
      && (handed || ((seq - Atomics.load(this.ctl, ring.iFreed)) | 0) >= this.freeBatch)) {
      // Wake the writer for packets to write, or to free a backlog of slots with nothing to write.
      Atomics.notify(this.ctl, ring.iRetired, 1);
    }
    return true;
  }

  /** Main reads every TUN queue itself: the whole device is idle. */
  private allQueuesOwned(): boolean {
    for (const m of this.tunMains) if (!m.owned()) return false;
    return true;
  }

  /**
   * Direct mode: write the packet at slot s to TUN from main, with the writer's own native call
   * (one packet, no coalescing; the virtio header, a plain packet's, goes in front of it; on a
   * multi-queue device to its flow's queue as the writer would (directWriteTarget), or to queue 0
   * while main owns every queue: the whole device idle, where queue 0's idle hook reads the
   * replies. Queue 0 owned alone is not idleness: a flow of a loaded queue written to queue 0
   * would be steered there, read by main, handed back, and flap between the queues). False
   * (nothing written) on any error: the writer then retries it and classifies the error.
   */
  private writeDirect(ring: RingView, s: number, len: number): boolean {
    const out = this.directOut;
    this.directSlot[0] = s;
    this.directLen[0] = len;
    try {
      const target = this.allQueuesOwned() ? this.directWriteFd : this.directWriteTarget;
      tunNative().writeSlots(target, this.tunHeader !== 0, ring.data, ring.slotBytes, null, this.directSlot, this.directLen, 1, false, out);
    } catch {
      return false;
    }
    if (out[TUN_WRITE_OUT.WRITTEN] !== 1) return false;
    // The writer is not writing now (it owes nothing), so these counters have one writer at a time.
    this.stats[STAT_WRITER + W_PACKETS]! += 1;
    this.stats[STAT_WRITER + W_BYTES]! += len;
    return true;
  }

  /**
   * Before main sleeps: one more look at each input it owns (idle), without waiting. What arrived
   * while main was busy — what the kernel answered at once to a packet main wrote to TUN (an ICMP
   * echo reply, a TCP ACK or RST: queued before write() returns), the peer's answer to what main
   * just sent, another peer's packet — is handled in this same turn instead of after a trip
   * through the event loop and another wake-up of main (≈ 40–70 µs on a cold 2-vCPU VM, against
   * a read that finds nothing). Looks at the inputs from `from` on, in order, and stops at the first
   * that had something, so that it is drained (the echo reply sent) before the next input is looked
   * at: returns the index to go on from, or -1 when nothing was read.
   */
  private recheckInputs(from: number): number {
    const inputs = this.idleInputs;
    for (let i = from; i < inputs.length; i++) {
      const input = inputs[i]!;
      if (this.stopping || !input.owned()) continue;
      this.stats[STAT_MAIN + MAIN_INPUT_RECHECKS]! += 1;
      if (input.readAll() !== 0) return i + 1;
    }
    return -1;
  }

  private processRetired(): void {
    while (this.pendingRetire.length !== 0) {
      const head = this.pendingRetire[0]!;
      for (let r = 0; r < this.rings.length; r++) {
        if (((this.retired[r]! - head.marks[r]!) | 0) < 0) return; // FIFO: later entries have later marks
      }
      this.pendingRetire.shift();
      head.run();
    }
  }

  /** A hook threw: counted as a drop of a packet of `ring` (null: no packet was dropped), and reported. */
  private hookError(stage: HookStage, err: unknown, ring: RingId | null): void {
    if (ring !== null) this.stats[statDrop(ring, Drop.HOOK_ERROR)]! += 1;
    if (this.hooks.onHookError) this.hooks.onHookError(stage, err);
    else queueMicrotask(() => { throw err; });
  }

  // ---- supervision events -----------------------------------------------------------------------------

  /** A crypto worker is gone: its slots become DEAD, its sleeper bit is cleared. */
  private reclaimWorker(id: number): void {
    const tag = cryptingState(id);
    for (let r = 0; r < this.rings.length; r++) {
      const ring = this.rings[r]!;
      for (let seq = this.retired[r]!; seq !== this.ready[r]; seq = (seq + 1) | 0) {
        Atomics.compareExchange(ring.meta, (seq & ring.mask) * META_WORDS + M_STATE, tag, SlotState.DEAD);
      }
    }
    Atomics.and(this.ctl, CTL_WORKER_SLEEPERS + (id >> 5), ~(1 << (id & 31)));
    // It may have died holding a flush lock: free it (a message it wrote but had not yet marked
    // SENT goes out again; the receiver's replay window drops the copy; slots it had marked SENT
    // but not yet passed with C_SENT are passed by the next flusher).
    for (const r of this.sendRings) Atomics.compareExchange(this.ctl, this.rings[r]!.iSendLock, sendLockOwner(id), 0);
    this.pump(); // main may be waiting for one of those slots
  }

  private async doStop(): Promise<void> {
    this.stopping = true;
    if (this.leaseOut) this.settleLease(); // what the idle hooks did is accounted; they run no more
    const ctl = this.ctl;
    Atomics.store(ctl, CTL_SHUTDOWN, 1);
    Atomics.add(ctl, CTL_WORKER_BELL, 1);
    Atomics.notify(ctl, CTL_WORKER_BELL);
    for (const r of this.tunRings) Atomics.notify(ctl, this.rings[r]!.iFreed); // a reader waiting for room
    Atomics.notify(ctl, this.rings[RING_RECV]!.iRetired); // the writer waiting for work
    Atomics.notify(ctl, this.rings[RING_RECV]!.iFreed); // the UDP reader waiting for room
    wakeEventFd(this.udpWakeFd); // the UDP reader in poll()
    for (const fd of this.tunWakeFds) wakeEventFd(fd); // the TUN readers in poll()
    for (const input of this.idleInputs) input.close(); // before the sockets are closed
    this.tunFds.forEach((_, q) => Atomics.notify(ctl, ctlTunOwner(q)));
    Atomics.notify(ctl, CTL_UDP_OWNER); // a reader parked while main owned its input
    ringMainBell(ctl); // resolves a pending waitAsync; onBell then sees `stopping`
    await this.supervisor.stop();
    // No thread can use a key or fd named in a slot any more: run what waited for the rings to empty.
    this.stopped = true;
    for (const p of this.pendingUdpClose.splice(0)) p.run();
    for (const p of this.pendingRetire.splice(0)) p.run();
  }
}

export { SlotState, RING_TUN, RING_LOCAL, RING_RECV, SLOT_PAYLOAD_OFFSET };
export type { RingId };

const EVENTFD_ONE = new Uint8Array(new BigUint64Array([1n]).buffer);

/** Signal an eventfd (a reader thread blocked in poll() on it returns); -1 or a failure: nothing. */
function wakeEventFd(fd: number): void {
  if (fd < 0) return;
  try {
    fs.writeSync(fd, EVENTFD_ONE);
  } catch { /* closed already: nobody waits on it */ }
}

/**
 * An idle hook's hand-over record (IL_TUN_ADOPT / IL_UDP_ADOPT: 1 + slots, or a read's error < 0),
 * cleared: what main's own read would have returned.
 */
function adopt(lease: Int32Array, word: number): number {
  const v = lease[word]!;
  lease[word] = 0;
  return v > 0 ? v - 1 : v;
}
