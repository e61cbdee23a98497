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

export const IL_VALID = 0;
export const IL_ROUTE_VER = 1;
export const IL_ENGINE_VER = 2;
export const IL_UDP_GEN = 3;
export const IL_KEY_ID = 4;
export const IL_KEY_GEN = 5;
export const IL_FAMILY = 6;
export const IL_ADDR = 7;
export const IL_REMOTE_INDEX = 11;
export const IL_LOCAL_INDEX = 12;
export const IL_SEND_NEXT = 13;
export const IL_SEND_END = 15;
export const IL_SEND_UNTIL = 17;
export const IL_RECV_UNTIL = 19;
export const IL_RECV_TOP = 21;
export const IL_EP = 23;
export const IL_SEND_FD = 35;
export const IL_MTU = 36;
export const IL_TUN_ADOPT = 37;
export const IL_UDP_ADOPT = 38;
export const IL_SENT = 39;
export const IL_SENT_READS = 40;
export const IL_SENT_PLAIN = 41;
export const IL_RECEIVED = 42;
export const IL_RECV_BYTES = 43;
export const IL_WRITTEN = 44;
export const IL_WRITTEN_BYTES = 45;
export const IL_SENT_LEN = 46;
export const IL_RECV_REC = 54;
export const IL_TUN_AT = 86;
export const IL_TUN_QUIET = 87;
export const IL_RECV_AT = 88;
export const IL_RECV_QUIET = 89;
export const IL_WORDS = 90;
/** Sends, and receives, one lease allows before main takes over (native/idle.h IL_MAX). */
export const IL_MAX = 8;

/** The numbers native/idle.h must agree on, in its order (the TUN addon's idleLayout; test/e2e-idle.test.ts). */
export const IDLE_LAYOUT: readonly number[] = [
  IL_VALID, IL_ROUTE_VER, IL_ENGINE_VER, IL_UDP_GEN, IL_KEY_ID, IL_KEY_GEN, IL_FAMILY, IL_ADDR, IL_REMOTE_INDEX, IL_LOCAL_INDEX,
  IL_SEND_NEXT, IL_SEND_END, IL_SEND_UNTIL, IL_RECV_UNTIL, IL_RECV_TOP, IL_EP, IL_SEND_FD, IL_MTU, IL_TUN_ADOPT, IL_UDP_ADOPT,
  IL_SENT, IL_SENT_READS, IL_SENT_PLAIN, IL_RECEIVED, IL_RECV_BYTES, IL_WRITTEN, IL_WRITTEN_BYTES, IL_SENT_LEN, IL_RECV_REC,
  IL_TUN_AT, IL_TUN_QUIET, IL_RECV_AT, IL_RECV_QUIET, IL_WORDS, IL_MAX, KEY_SLOT_BYTES, KEY_SEND_OFFSET, KEY_RECV_OFFSET,
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
