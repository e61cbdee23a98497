// The idle lease: what main lets native code do with a lone packet between its turns (native/idle.h
// has the design; bench/IDLE-FASTPATH.md the measurements). Main grants it at the end of a turn in
// which it owns the inputs and the rings are quiet; the TUN and UDP addons' hooks, run by main's fd
// watchers before any JavaScript, use it; main settles it at the start of its next turn — whatever
// woke it — before it touches anything the lease copied. The rules (which peer, which keypair, how
// many counters, and the bookkeeping afterwards) are src/idle-path.ts's; this file is the shared
// layout and the pipeline's side: the hooks' options and the quiet rings.
//
// The word numbers are native/idle.h's (test/idle-path.test.ts compares them).
import { KEY_RECV_OFFSET, KEY_SEND_OFFSET, KEY_SLOT_BYTES } from './layout.js';

// A header, then up to IL_ENTRIES entries, one per (peer, inner address) (IE_* words from the entry's first).
export const IL_VALID = 0;
export const IL_ROUTE_VER = 1;
export const IL_ENGINE_VER = 2;
export const IL_UDP_GEN = 3;
export const IL_MTU = 4;
export const IL_TUN_ADOPT = 5;
export const IL_UDP_ADOPT = 6;
export const IL_TUN_AT = 7;
export const IL_TUN_QUIET = 8;
export const IL_RECV_AT = 9;
export const IL_RECV_QUIET = 10;
export const IL_COUNT = 11;
export const IL_SENT = 12;
export const IL_SENT_READS = 13;
export const IL_SENT_PLAIN = 14;
export const IL_RECEIVED = 15;
export const IL_RECV_BYTES = 16;
export const IL_WRITTEN = 17;
export const IL_WRITTEN_BYTES = 18;
/** Events (sends and receives, all entries) so far under the lease: IE_LAST's clock. */
export const IL_SEQ = 19;
export const IL_HEADER = 20;
export const IE_KEY_ID = 0;
export const IE_KEY_GEN = 1;
export const IE_FAMILY = 2;
export const IE_ADDR = 3;
export const IE_REMOTE_INDEX = 7;
export const IE_LOCAL_INDEX = 8;
export const IE_SEND_NEXT = 9;
export const IE_SEND_END = 11;
export const IE_SEND_UNTIL = 13;
export const IE_RECV_UNTIL = 15;
export const IE_RECV_TOP = 17;
export const IE_EP = 19;
export const IE_SEND_FD = 31;
export const IE_SENT = 32;
export const IE_SENT_LEN = 33;
export const IE_RECEIVED = 41;
export const IE_RECV_REC = 42;
/** The entry's last event: 2 × IL_SEQ after it, + 1 for a receive; 0: none. */
export const IE_LAST = 74;
export const IE_WORDS = 75;
/** Sends, and receives, one entry allows before main takes over (native/idle.h IL_MAX). */
export const IL_MAX = 8;
/** Peers per lease. */
export const IL_ENTRIES = 8;
export const IL_WORDS = IL_HEADER + IL_ENTRIES * IE_WORDS;

/** The numbers native/idle.h must agree on, in its order (the TUN addon's idleLayout; test/e2e-idle.test.ts). */
export const IDLE_LAYOUT: readonly number[] = [
  IL_VALID, IL_ROUTE_VER, IL_ENGINE_VER, IL_UDP_GEN, IL_MTU, IL_TUN_ADOPT, IL_UDP_ADOPT, IL_TUN_AT, IL_TUN_QUIET, IL_RECV_AT,
  IL_RECV_QUIET, IL_COUNT, IL_SENT, IL_SENT_READS, IL_SENT_PLAIN, IL_RECEIVED, IL_RECV_BYTES, IL_WRITTEN, IL_WRITTEN_BYTES,
  IL_SEQ, IL_HEADER, IE_KEY_ID, IE_KEY_GEN, IE_FAMILY, IE_ADDR, IE_REMOTE_INDEX, IE_LOCAL_INDEX, IE_SEND_NEXT, IE_SEND_END,
  IE_SEND_UNTIL, IE_RECV_UNTIL, IE_RECV_TOP, IE_EP, IE_SEND_FD, IE_SENT, IE_SENT_LEN, IE_RECEIVED, IE_RECV_REC, IE_LAST, IE_WORDS,
  IL_MAX, IL_ENTRIES, IL_WORDS, KEY_SLOT_BYTES, KEY_SEND_OFFSET, KEY_RECV_OFFSET,
];

/** What both idle hooks are given (native/idle.c il_read_common). */
export interface IdleHookCommon {
  lease: Int32Array;
  ctl: Int32Array;
  /** The ring's slot data and meta words, and the intake's own slot list and out[] (its read's). */
  data: Uint8Array;
  meta: Int32Array;
  slots: Int32Array;
  out: Int32Array;
  keys: Uint8Array;
  /** KeyTable.generations, AllowedIPs.version, Engine.version. */
  keyGen: Int32Array;
  routeVersion: Int32Array;
  engineVersion: Int32Array;
  slotBytes: number;
  ringSlots: number;
  /** The most slots one read takes (the intake's batch). */
  batch: number;
  /** Control-word indices: the ring's producer and free cursors, CTL_UDP_GEN. */
  iProduced: number;
  iFreed: number;
  iUdpGen: number;
}

/** A u64 of two words (lo, hi) as a number (< 2^53 in every use here). */
export function leaseU64(L: Int32Array, i: number): number {
  return (L[i]! >>> 0) + (L[i + 1]! >>> 0) * 0x1_0000_0000;
}

export function setLeaseU64(L: Int32Array, i: number, v: number): void {
  L[i] = v >>> 0;
  L[i + 1] = Math.floor(v / 0x1_0000_0000);
}

/** Milliseconds on CLOCK_MONOTONIC, the clock the hooks read (native/idle.h il_now_ms). */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint() / 1_000_000n);
}
