// Shared-memory layout of the dataplane: every offset, index and state number that more than
// one thread reads is declared here, once. Everything lives in SharedArrayBuffers, so a new
// worker (a replacement after a crash) re-attaches by receiving the same buffers.
//
// Buffers (allocated by pipeline.ts, passed to every worker in workerData as `DataplaneShared`):
//   control  Int32Array: cursors, doorbells and flags, each word on its own 64-byte line.
//   stats    Float64Array: counters, one 64-byte row per writing thread (single writer per element).
//   keys     KeyTable bytes: KEY_SLOT_BYTES per keypair id (send key, receive key).
//   per ring: meta  Int32Array, META_WORDS per slot (state, lengths, ids, counter, sequence);
//             data  Uint8Array, slotBytes per slot (64-byte aligned).
//
// Three rings, and one more send ring per further queue of a multi-queue TUN device (see
// pipeline.ts for the stages):
//   RING_TUN    send ring fed by the TUN reader thread of queue 0 (or by main at idle);
//   RING_LOCAL  send ring fed by main (keepalives, staged packets: anything main originates);
//   RING_RECV   receive ring fed by the UDP reader thread (or by main at idle), drained to TUN by the TUN writer thread;
//   tunRingId(q), q ≥ 1: the send ring of TUN queue q, fed by that queue's reader thread (or by main at idle).
//
// Cursors are Int32 sequence numbers that only grow (wrapping at 2^32; always compare with
// `(a - b) | 0`); slot index = seq & (slots - 1).

import { AEAD_TAG_LEN, MESSAGE_TRANSPORT_HEADER_SIZE } from '../constants.js';

/** Bytes per cache line; every control word and stats row gets a line of its own. */
export const CACHE_LINE = 64;
export const LINE_WORDS = CACHE_LINE / 4; // Int32 words per line
export const LINE_F64 = CACHE_LINE / 8; // Float64 entries per line

// ---- rings ----------------------------------------------------------------------------------

export const RING_TUN = 0;
export const RING_LOCAL = 1;
export const RING_RECV = 2;
/** Most queues of a multi-queue TUN device one pipeline reads (a reader thread and a send ring each). */
export const MAX_TUN_QUEUES = 8;
/** Ring ids the layout has room for: the three, and the send rings of TUN queues 1 .. MAX_TUN_QUEUES − 1. */
export const MAX_RINGS = 3 + MAX_TUN_QUEUES - 1;
/** A ring id: RING_TUN, RING_LOCAL, RING_RECV, or tunRingId(q). */
export type RingId = number;
/** The send ring TUN queue q's reader produces: RING_TUN for queue 0, then ids 3, 4, … */
export function tunRingId(q: number): RingId {
  return q === 0 ? RING_TUN : RING_RECV + q;
}
/** Whether ring r is the send ring of a TUN queue. */
export function isTunRing(r: RingId): boolean {
  return r === RING_TUN || r > RING_RECV;
}
/** The ring ids of a pipeline whose TUN device has `queues` queues, in id order. */
export function ringIds(queues: number): RingId[] {
  return Array.from({ length: 2 + queues }, (_, r) => r);
}
/** The ring's name in metrics: tun, local, recv, then tun1, tun2, … for the further TUN queues. */
export function ringName(r: RingId): string {
  return r <= RING_RECV ? (['tun', 'local', 'recv'] as const)[r]! : `tun${r - RING_RECV}`;
}

export const DEFAULT_RING_SLOTS = 1024;
export const DEFAULT_LOCAL_SLOTS = 256;
export const DEFAULT_KEYPAIR_CAPACITY = 1 << 16;
/** Largest inner packet a slot holds by default (jumbo frames). */
export const DEFAULT_MAX_INNER_MTU = 9216;
/** Most crypto workers one pipeline can have (the worker id must fit the state word, see CRYPTING_TAG). */
export const MAX_WORKERS = 64;

/** Bytes of the virtio_net_hdr in front of every TUN read and write when IFF_VNET_HDR is on. */
export const VIRTIO_NET_HDR_LEN = 10;
/** Plaintext of a send slot (and of a received message, after decryption) starts here. */
export const SLOT_PAYLOAD_OFFSET = MESSAGE_TRANSPORT_HEADER_SIZE; // 16

/** Bytes per slot data area for an inner MTU: header + padded payload + tag, rounded to a cache line. */
export function slotBytesFor(maxInnerMtu: number): number {
  const padded = (maxInnerMtu + 15) & ~15;
  const need = MESSAGE_TRANSPORT_HEADER_SIZE + padded + AEAD_TAG_LEN;
  return Math.ceil(need / CACHE_LINE) * CACHE_LINE;
}
export const DEFAULT_SLOT_BYTES = slotBytesFor(DEFAULT_MAX_INNER_MTU); // 9280

// ---- slot metadata (Int32 words per slot) -----------------------------------------------------

export const META_WORDS = 2 * LINE_WORDS; // 32 words = 128 bytes per slot (words 16.. hold the endpoint)
/** SlotState, or CRYPTING_TAG | workerId << 8 while a crypto worker owns the slot. Always Atomics. */
export const M_STATE = 0;
/** Input length. Send: inner packet length, then (after route) the padded plaintext length. Recv: datagram length. */
export const M_LENGTH = 1;
/** Output length. Send: whole message length (16 + padded + 16). Recv: plaintext length, then the length to deliver. */
export const M_RESULT = 2;
export const M_PEER = 3;
export const M_KEYPAIR = 4;
export const M_COUNTER_LO = 5;
export const M_COUNTER_HI = 6;
/** Ring sequence number of the slot's current use (set by the producer). */
export const M_SEQ = 7;
/**
 * Send rings: file descriptor of the connected UDP socket the sealed message may be written to by
 * the crypto worker that flushes it (-1: main sends it). Main keeps that socket open until every
 * slot naming it has been released (Pipeline.afterInFlight).
 */
export const M_FD = 8;
/** RECV ring: the transport message's receiver index, as the UDP reader read it when it keyed the slot. */
export const M_RECEIVER = 9;
/**
 * RECV ring: a copy of the first INNER_HEAD_BYTES bytes of the plaintext (zero past its end), made
 * by whoever opened the slot while the plaintext is in its cache; words 10..15, read as bytes. Main
 * reads the inner IP header here (receive.ts: length, source address), in the line it reads
 * anyway, instead of pulling the slot's data line across cores for it.
 */
export const M_INNER_HEAD = 10;
/** Bytes of M_INNER_HEAD: an IPv4 header to its source address, an IPv6 header to its source address (8..24). */
export const INNER_HEAD_BYTES = 24;

/**
 * M_INNER_HEAD of slot meta m (an index into the meta words): the first INNER_HEAD_BYTES of the
 * plaintext at data[off, off+plen), zero past its end. `metaBytes` views the ring's meta buffer.
 * (native/aead.c openSlots does the same for the slots it opens.)
 */
export function copyInnerHead(data: Uint8Array, off: number, plen: number, metaBytes: Uint8Array, m: number): void {
  const at = (m + M_INNER_HEAD) * 4;
  const n = Math.min(plen, INNER_HEAD_BYTES);
  metaBytes.set(data.subarray(off, off + n), at);
  metaBytes.fill(0, at + n, at + INNER_HEAD_BYTES);
}

// The UDP endpoint of a slot (native/udp.c reads and writes these words; src/io/endpoint-words.ts
// converts). Send rings: where the sealed message goes, and from which local address (sticky
// source, IP_PKTINFO / IPV6_PKTINFO; all-zero = let the kernel choose). RECV ring: who sent the
// datagram, and the local address it was sent to.
/** 0 = no endpoint, 4 = IPv4, 6 = IPv6. */
export const M_EP_FAMILY = 16;
/** Remote UDP port (host order). */
export const M_EP_PORT = 17;
/** Remote address, raw network-order bytes in words 18..21 (IPv4: the first 4 bytes). */
export const M_EP_ADDR = 18;
/** IPv6 scope id of the remote address (0 = none). */
export const M_EP_SCOPE = 22;
/** Interface index of the local address (IPV6_PKTINFO ipi6_ifindex / IP_PKTINFO ipi_ifindex; 0 = any). */
export const M_EP_SRC_IFINDEX = 23;
/** Local address, raw bytes in words 24..27 (IPv4: first 4 bytes; all zero = unspecified). */
export const M_EP_SRC = 24;
/** Words of the endpoint block (M_EP_FAMILY .. M_EP_SRC + 4). */
export const EP_WORDS = 12;
// words 28..31 spare

/** Slot states. A slot's life: FREE → FILLED (TUN ring only) → PENDING → crypting → DONE | FAILED | DEAD → … */
export const SlotState = {
  /** Owned by the producer side, nothing in it. */
  FREE: 0,
  /** TUN ring: holds a packet from TUN, waiting for main's route stage. RECV ring: a datagram from UDP, waiting for main's classify stage. */
  FILLED: 1,
  /** Waiting for a crypto worker. */
  PENDING: 2,
  /** Crypto succeeded (sealed / opened). */
  DONE: 3,
  /** Crypto failed: seal threw, or authentication failed on open. */
  FAILED: 4,
  /** The crypto worker that owned the slot died; the content is garbage. */
  DEAD: 5,
  /** Send rings: route() declined the packet; released without sending. */
  SKIP: 6,
  /** Send rings: onSealed() kept a reference; released by Pipeline.releaseHeld(). */
  HELD: 7,
  /** Recv ring: checked, to be written to TUN. */
  DELIVER: 8,
  /** Recv ring: checked and dropped; the TUN writer just frees it. */
  DROP: 9,
  /** Send rings: sealed and already written to its UDP socket by a crypto worker; main only accounts for it. */
  SENT: 10,
} as const;
export type SlotStateValue = (typeof SlotState)[keyof typeof SlotState];

/** Low byte of the state word of a slot being crypted; bits 8..15 hold the owning worker id (MAIN_CRYPT_ID: main). */
export const CRYPTING_TAG = 0x10;
export function cryptingState(workerId: number): number {
  return CRYPTING_TAG | (workerId << 8);
}
/** The crypting owner id of main (pipeline.ts inline seals): never a worker id, and main never leaves a slot crypting across a call. */
export const MAIN_CRYPT_ID = MAX_WORKERS;
export function isCrypting(state: number): boolean {
  return (state & 0xff) === CRYPTING_TAG;
}

// ---- control words (Int32 indices, one line each) -----------------------------------------------

const line = (n: number): number => n * LINE_WORDS;
/** 1 once stop() began: every thread leaves its loop. */
export const CTL_SHUTDOWN = line(0);
/** Main doorbell: bumped by any thread that published something main must look at, if CTL_MAIN_ARMED. */
export const CTL_MAIN_BELL = line(1);
/** 1 while main sleeps in Atomics.waitAsync on CTL_MAIN_BELL; 0 while it drains. */
export const CTL_MAIN_ARMED = line(2);
/** Worker doorbell: main bumps it and notifies when it published work and CTL_WORKER_SLEEPERS > 0. */
export const CTL_WORKER_BELL = line(3);
/**
 * Bitmask of crypto workers in (or about to enter) Atomics.wait on CTL_WORKER_BELL: word
 * CTL_WORKER_SLEEPERS + (id >> 5), bit id & 31. A mask rather than a count so the supervisor can
 * clear the bit of a worker that was terminated while asleep.
 */
export const CTL_WORKER_SLEEPERS = line(4);
/** 1 once the TUN reader or writer saw the device go away (read error, EOF, EBADF on write). */
export const CTL_TUN_GONE = line(5);
/** 1 while the TUN reader (of queue 0: ctlReaderWaiting) waits for a free send slot (it waits on its ring's C_FREED word). */
export const CTL_READER_WAITING = line(6);
/** 1 while the TUN writer waits for checked slots (it waits on the recv ring's C_RETIRED word). */
export const CTL_WRITER_WAITING = line(7);
/** Why the TUN went away (TunGoneCause), stored before CTL_TUN_GONE. */
export const CTL_TUN_GONE_CAUSE = line(8);
/** The failing call's errno as Node reports it (negative, e.g. -9 for EBADF; 0 for EOF), same line. */
export const CTL_TUN_GONE_ERRNO = CTL_TUN_GONE_CAUSE + 1;
/**
 * UDP sockets the receiving thread reads (workers/udp-reader.ts) and their generation: main stores
 * both fds (-1 = none), then bumps CTL_UDP_GEN and wakes the reader, which stores the generation
 * it now uses in CTL_UDP_GEN_SEEN (and rings main). Main closes a replaced socket only once the
 * reader has moved past it and no send slot can still name it.
 */
export const CTL_UDP_FD4 = line(9);
export const CTL_UDP_FD6 = CTL_UDP_FD4 + 1;
export const CTL_UDP_GEN = CTL_UDP_FD4 + 2;
export const CTL_UDP_GEN_SEEN = line(10);
/** 1 while the UDP reader waits for free RECV slots (it waits on the RECV ring's C_FREED word). */
export const CTL_UDP_READER_WAITING = line(11);
/**
 * Who reads the UDP sockets (INTAKE_THREAD / INTAKE_MAIN; src/dataplane/intake.ts): the UDP reader
 * thread under load, the main thread's event loop at idle. Only the owner produces the RECV ring.
 */
export const CTL_UDP_OWNER = CTL_UDP_READER_WAITING + 1;
/** Who reads the TUN device's queue 0 (as CTL_UDP_OWNER): its TUN reader thread, or main at idle (ctlTunOwner). */
export const CTL_TUN_OWNER = CTL_READER_WAITING + 1;
export const INTAKE_THREAD = 0;
export const INTAKE_MAIN = 1;
/** The TUN interface's MTU as the TUN reader last read it (per read batch; 0 = unknown). Main pads to it. */
export const CTL_TUN_MTU = line(12);
const RING_CTL_BASE = 13;

/** Per-ring cursors, in stage order. */
export const C_PRODUCED = 0; // TUN ring: written by the TUN reader; RECV ring: by the UDP reader (stage 1). LOCAL: unused (== C_READY).
export const C_READY = 1; // slots workers may claim below this (TUN: routed; LOCAL/RECV: published by main)
export const C_CLAIM = 2; // claim hint: workers CAS it forward (the claim itself is the state-word CAS)
export const C_RETIRED = 3; // main's in-order consumer: TUN/LOCAL released, RECV checked
export const C_FREED = 4; // producer may reuse slots below this: TUN/LOCAL = released, RECV = written
/** Main stores the C_RETIRED value it waits at before it sleeps; a worker finishing that very seq rings the bell. */
export const C_HEAD_WAIT = 5;
/** Send rings: every slot below this has been sent or needs no sending (SENT, FAILED, DEAD, SKIP, or sent by main). */
export const C_SENT = 6;
/** Send rings: the flush lock, 0 = free, else the holder's SEND_LOCK_* owner value (ring.ts). */
export const C_SEND_LOCK = 7;
const RING_CTL_FIELDS = 8;

export function ringCtl(ring: number, field: number): number {
  return line(RING_CTL_BASE + ring * RING_CTL_FIELDS + field);
}
/** Lines of TUN queues 1..: the reader's waiting word and the owner word, as queue 0's two above. */
const QUEUE_CTL_BASE = RING_CTL_BASE + MAX_RINGS * RING_CTL_FIELDS;
/** CTL_READER_WAITING of TUN queue q. */
export function ctlReaderWaiting(q: number): number {
  return q === 0 ? CTL_READER_WAITING : line(QUEUE_CTL_BASE + q - 1);
}
/** CTL_TUN_OWNER of TUN queue q. */
export function ctlTunOwner(q: number): number {
  return q === 0 ? CTL_TUN_OWNER : line(QUEUE_CTL_BASE + q - 1) + 1;
}
export const CONTROL_WORDS = line(QUEUE_CTL_BASE + MAX_TUN_QUEUES - 1);

/** Why the TUN went away (CTL_TUN_GONE_CAUSE). */
export const TunGoneCause = { NONE: 0, READ_ERROR: 1, READ_EOF: 2, WRITE_ERROR: 3 } as const;

// ---- stats (Float64 indices; each element has exactly one writing thread) -----------------------

const row = (n: number): number => n * LINE_F64;
/** Per ring, written by main (except DROP_TUN_WRITE: the TUN writer). */
export const Drop = {
  /** reserve*() found the ring full. */
  RING_FULL: 0,
  /** publish*() got a length the slot cannot hold or too short to be a message. */
  BAD_LENGTH: 1,
  /** Owning crypto worker died. */
  DEAD: 2,
  /** Seal threw / authentication failed. */
  CRYPTO_FAILED: 3,
  /** TUN ring: route() returned false (not necessarily a drop: the packet may have been staged). */
  SKIPPED: 4,
  /** RECV ring: onOpened() returned -1. */
  REJECTED: 5,
  /** A hook threw; the slot was given up. */
  HOOK_ERROR: 6,
  /** RECV ring: writeSync to TUN failed (written by the TUN writer). */
  TUN_WRITE: 7,
} as const;
export const DROP_KINDS = 8;
export function statDrop(ring: number, kind: number): number {
  return row(ring) + kind;
}
/** Row written by the TUN reader of queue 0 (statReader(q): of queue q; the metrics sum them). */
export const STAT_READER = row(MAX_RINGS);
export const R_PACKETS = 0;
export const R_BYTES = 1;
export const R_FULL_WAITS = 2; // times it had to wait for a free slot (backpressure)
export const R_TRANSIENT_ERRORS = 3; // ENOBUFS/ENOMEM/poll failures, retried
export const R_READS = 4; // read() calls that returned a packet or super-packet (packets / reads = batching)
export const R_SUPER = 5; // GSO super-packets split into segments
export const R_TOO_BIG = 6; // packets dropped: bigger than a slot, or headers not understood
/** Row written by the TUN writer. */
export const STAT_WRITER = row(MAX_RINGS + 1);
export const W_PACKETS = 0;
export const W_BYTES = 1;
export const W_ERRORS = 2;
export const W_WRITES = 3; // write() calls (packets / writes = GRO coalescing)
/** Two rows written by main. */
export const STAT_MAIN = row(MAX_RINGS + 2);
export const MAIN_WAKEUPS = 0; // waitAsync resolutions
export const MAIN_WORKER_RESTARTS = 1;
export const MAIN_WORKER_NOTIFIES = 2; // times main notified sleeping workers
export const MAIN_INLINE_SEALED = 3; // send-ring slots main sealed itself (idle: pipeline.ts INLINE_SEAL_MAX)
export const MAIN_TUN_TAKEN = 4; // times main took over reading the TUN device from its thread (idle; intake.ts)
export const MAIN_TUN_GIVEN = 5; // times main gave it back (load)
export const MAIN_UDP_TAKEN = 6; // the same for the UDP sockets
export const MAIN_UDP_GIVEN = 7;
/**
 * Send-ring slots main sent in a sendmmsg batch as a worker would: sealed for a worker to send, but
 * no worker did (one that finished while another flusher held the lock left them to it; main sealed
 * them at idle). pipeline.ts releaseStage. Those main sends one at a time (no socket, a worker's
 * failed write) are the onSealed(sent=false) calls.
 */
export const MAIN_FLUSHED = 8;
/** Looks main took at an input it owns before sleeping (idle: pipeline.ts recheckInputs; those that found packets count as reads too). */
export const MAIN_INPUT_RECHECKS = 9;
/** Messages the idle path's hooks sealed and sent, and received, opened and wrote, in C before main's JavaScript ran (idle-lease.ts). */
export const MAIN_IDLE_SENT = 10;
export const MAIN_IDLE_RECEIVED = 11;
/** Row written by the UDP reader (workers/udp-reader.ts). */
export const STAT_UDP_READER = row(MAX_RINGS + 4);
export const U_DATAGRAMS = 0;
export const U_BYTES = 1;
export const U_FULL_WAITS = 2; // times it had to wait for free RECV slots (backpressure: the socket buffer holds the rest)
export const U_CALLS = 3; // recvSlots calls that returned datagrams (datagrams / calls = batch size)
export const U_TOO_BIG = 4; // datagrams larger than a slot, dropped
export const U_ERRORS = 5; // receive errors other than EAGAIN
export const U_FAST = 6; // transport messages the reader found the key for (fast path: main did not classify them)
export const U_INLINE_OPENED = 7; // of those, opened by the reader itself (small batches)
/** Rows written by crypto worker `id` (a replacement continues its predecessor's row). */
export function statWorker(id: number): number {
  return row(MAX_RINGS + 5 + id);
}
export const CW_BUSY_NS = 0; // time spent between wake-up and going back to sleep
export const CW_SEALED = 1;
export const CW_OPENED = 2;
export const CW_FAILED = 3;
export const CW_WAKEUPS = 4; // returns from Atomics.wait
export const CW_SENT = 5; // sealed messages this worker wrote to a UDP socket itself
export const CW_SEND_FALLBACKS = 6; // writes that failed (EAGAIN, …) and were left for main to send
export const CW_SEND_CALLS = 7; // sendSlots calls (sent / calls = batch size)
/** Row written by the TUN reader of queue q (R_* cells). */
export function statReader(q: number): number {
  return q === 0 ? STAT_READER : row(MAX_RINGS + 5 + MAX_WORKERS + q - 1);
}
/** Cell R_* summed over the TUN readers of `queues` queues. */
export function readerStat(stats: Float64Array, field: number, queues: number): number {
  let sum = 0;
  for (let q = 0; q < queues; q++) sum += stats[statReader(q) + field]!;
  return sum;
}
export const STATS_LENGTH = row(MAX_RINGS + 5 + MAX_WORKERS + MAX_TUN_QUEUES - 1);

// ---- key table ------------------------------------------------------------------------------------

export const KEY_SLOT_BYTES = 64;
export const KEY_SEND_OFFSET = 0; // [0, 32) send key
export const KEY_RECV_OFFSET = 32; // [32, 64) receive key

// ---- what a worker is given -----------------------------------------------------------------------

export interface RingShared {
  slots: number; // power of two
  slotBytes: number;
  meta: SharedArrayBuffer; // slots * META_WORDS * 4
  data: SharedArrayBuffer; // slots * slotBytes
}

export interface DataplaneShared {
  control: SharedArrayBuffer; // CONTROL_WORDS * 4
  stats: SharedArrayBuffer; // STATS_LENGTH * 8
  keys: SharedArrayBuffer; // capacity * KEY_SLOT_BYTES
  rings: RingShared[]; // indexed by RingId: RING_TUN, RING_LOCAL, RING_RECV, then the further TUN queues' rings
}

/** The number of TUN queues (send rings fed from TUN) a pipeline's buffers have. */
export function tunQueues(shared: DataplaneShared): number {
  return shared.rings.length - 2;
}
