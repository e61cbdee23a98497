// Typed wrapper of wirepool's UDP addon (native/udp.c, built by `npm ci` / node-gyp): the
// interface's sockets driven from C with batched I/O (sendmmsg / recvmmsg, UDP GSO and GRO,
// sticky source addresses through IP_PKTINFO / IPV6_PKTINFO) straight between the kernel and the
// SharedArrayBuffer ring slots. src/io/bind.ts owns the sockets; the UDP reader thread
// (workers/udp-reader.ts) calls recvSlots, crypto workers and main call sendSlots.
//
// Slots follow src/dataplane/layout.ts: slot s's bytes are data[s*slotBytes, …), its words
// meta[s*META_WORDS, …); the endpoint block is META words M_EP_FAMILY .. M_EP_SRC+3
// (src/io/endpoint-words.ts converts it to and from Endpoint).
//
// Every call is synchronous. Errors: open() and eventfd() throw an Error like Node's (.code such
// as 'EADDRINUSE', .errno negative such as -98, .syscall); the others return 0 / a count, or a
// negative errno. Bad arguments (a slot outside the arrays, a length past the slot) throw
// TypeError / RangeError before anything is sent or received.
import { type IdleHookCommon } from '../dataplane/idle-lease.js';
import { createRequire } from 'node:module';
import { errorText } from '../error-text.js';

export interface OpenOptions {
  /** SO_RCVBUF, then SO_RCVBUFFORCE (root: past net.core.rmem_max); 0 = leave the default. */
  rcvbuf?: number;
  /** SO_SNDBUF, then SO_SNDBUFFORCE; 0 = leave the default. */
  sndbuf?: number;
  /** SO_MARK (0 = none). Failure throws (EPERM without CAP_NET_ADMIN). */
  mark?: number;
}

export interface OpenedSocket {
  fd: number;
  /** The port bound (the random one the kernel chose for port 0). */
  port: number;
  /** Send offload (UDP_SEGMENT) is available on this socket. */
  gso: boolean;
  /** Receive offload (UDP_GRO) is on: recvSlots may get super-datagrams, which it splits. */
  gro: boolean;
}

// ---- out[] of sendSlots (an Int32Array of at least OUT_WORDS; every word is overwritten) -----------
/** Slots sent (the return value). */
export const SEND_OUT_SENT = 0;
/** Index into `slots` of the first slot not sent (n when all were). Sending is in order: slots[0..sent) went out. */
export const SEND_OUT_STOP_INDEX = 1;
/**
 * Why sending stopped at that slot: 0 when all were sent, else a negative errno: -EAGAIN (-11) or
 * -ENOBUFS (-105): the socket buffer is full, try again later; -EDESTADDRREQ (-89): the slot has no
 * endpoint (family word 0); -EBADF (-9): no socket of the slot's family (its fd argument < 0); any
 * other: the kernel refused the message (after the fallbacks below).
 */
export const SEND_OUT_STOP_ERRNO = 2;
/** sendmmsg calls made. */
export const SEND_OUT_CALLS = 3;
/** Messages sent that carried several slots (UDP GSO, one UDP_SEGMENT message). */
export const SEND_OUT_GSO_MSGS = 4;
/** 1 when this call turned GSO off for good on a socket: the kernel said EIO (egress device without checksum offload). */
export const SEND_OUT_GSO_OFF = 5;
/**
 * Messages whose sticky source address the kernel refused (EINVAL, EADDRNOTAVAIL, ENETUNREACH,
 * ENODEV, ENXIO: the address is no longer ours): they were resent without it, and the source words
 * (M_EP_SRC_IFINDEX .. M_EP_SRC+3) of those slots, and of later slots of the call with the same
 * endpoint block, were zeroed. The caller should forget that endpoint's source.
 */
export const SEND_OUT_SRC_FALLBACKS = 6;
/** Messages retried once after a pending error from an earlier ICMP message (ECONNREFUSED, EHOSTUNREACH, …). */
export const SEND_OUT_RETRIES = 7;

// ---- out[] of recvSlots -------------------------------------------------------------------------------
/** Datagrams dropped because they do not fit a slot (longer than slotBytes). */
export const RECV_OUT_TOO_BIG = 0;
/** Receive errors other than EAGAIN / EINTR (poll or recvmmsg; a closed fd: POLLNVAL, -EBADF). */
export const RECV_OUT_ERRORS = 1;
/** Negative errno of the last such error (0: none). */
export const RECV_OUT_LAST_ERRNO = 2;
/** recvmmsg calls made. */
export const RECV_OUT_CALLS = 3;
/** Entries the kernel handed over (a UDP_GRO super-datagram counts once). */
export const RECV_OUT_ENTRIES = 4;
/** Of those, GRO super-datagrams that held more than one datagram. */
export const RECV_OUT_GRO_ENTRIES = 5;
/** Datagrams received but not yet delivered (more than the slots given); they come first next call. */
export const RECV_OUT_PENDING = 6;
/** 1 when the call returned because the wake eventfd was readable (it was drained). */
export const RECV_OUT_WOKEN = 7;

/** Length of the out arrays. */
export const OUT_WORDS = 8;

export interface UdpNative {
  /**
   * A non-blocking UDP socket of `family` bound to the wildcard address and `port` (0 = random):
   * IPv6-only for 6, no SO_REUSEADDR (a port someone holds fails with EADDRINUSE), IP_PKTINFO /
   * IPV6_RECVPKTINFO and UDP_GRO on. Throws an Error with .code / .errno.
   */
  open(family: 4 | 6, port: number, opts?: OpenOptions): OpenedSocket;
  /** 0 or -errno. */
  close(fd: number): number;
  /** SO_MARK (0 clears). 0 or -errno. */
  setMark(fd: number, mark: number): number;
  /** The bound port, or -errno. */
  localPort(fd: number): number;
  /** True when sendSlots will not group for fd: the socket lacked UDP_SEGMENT at open, or a GSO send on it failed with EIO. */
  gsoDisabled(fd: number): boolean;
  /**
   * Sends, in order, the message of each slot s = slots[i], i < n: data[s*slotBytes, +meta[s*32+M_RESULT])
   * to the slot's endpoint words (family 4 → fd4, 6 → fd6), from the slot's source address when its
   * source words are non-zero. Batched with sendmmsg; with `gso` (and GSO usable on the socket:
   * gsoDisabled(fd) false), consecutive slots with the same endpoint block whose sizes equal the first's (a
   * shorter one ends the group), at most 64 segments and 65,507 bytes, go as one message.
   * Returns the number of slots sent (slots[0..sent)); out: SEND_OUT_*. Never blocks.
   */
  sendSlots(fd4: number, fd6: number, data: Uint8Array, slotBytes: number, meta: Int32Array, slots: Int32Array, n: number,
    gso: boolean, out: Int32Array): number;
  /**
   * Blocks in poll() on fd4, fd6 (either may be -1) and wakeFd up to timeoutMs (-1: no limit); a
   * readable wakeFd is drained and the call returns (RECV_OUT_WOKEN). Then receives without blocking
   * into slots[0..maxSlots), in order: bytes at data[s*slotBytes, +len), meta[s*32+M_LENGTH] = len,
   * endpoint words = the sender (family, port, address, scope) and the local address it was sent to
   * with its interface index (the sticky source of a reply). Returns the number of slots filled;
   * out: RECV_OUT_*. Datagrams beyond maxSlots (a GRO batch) are kept for the next call of the same
   * thread, which delivers them first without polling.
   */
  recvSlots(fd4: number, fd6: number, wakeFd: number, timeoutMs: number, data: Uint8Array, slotBytes: number, meta: Int32Array,
    slots: Int32Array, maxSlots: number, out: Int32Array): number;
  /**
   * The idle path's receive hook for FdWatch.setHook (native/idle.h): on a readable socket,
   * recvSlots into the RECV ring's free slots, and a lone transport message the lease covers
   * opened, checked and written to TUN (tunFd) from C. iFd4/iFd6: the control words of the sockets.
   */
  idleReceiveHook(options: IdleHookCommon & { iFd4: number; iFd6: number; tunFd: number; vnetHdr: boolean }): object;
  /**
   * One datagram buf[off, off+len) to addr (4 or 16 bytes) / port / scope, from srcAddr (sticky
   * source; null or all-zero: the kernel chooses) on srcIfindex. Returns 0: sent; 1: sent, but
   * without the source address, which the kernel refused (forget it); negative: -errno (-EAGAIN
   * when the socket buffer is full: it never blocks). A pending ICMP error is retried once.
   */
  sendTo(fd: number, buf: Uint8Array, off: number, len: number, family: 4 | 6, addr: Uint8Array, port: number, scope: number,
    srcAddr?: Uint8Array | null, srcIfindex?: number): number;
  /** A non-blocking close-on-exec eventfd, for recvSlots' wakeFd. Close it with close(). Throws on failure. */
  eventfd(): number;
  /** Makes the eventfd readable (wakes a recvSlots). 0 or -errno. */
  wake(efd: number): number;
  /**
   * A packet-preserving pair of connected AF_UNIX sockets (SOCK_SEQPACKET, non-blocking,
   * close-on-exec; send buffers raised where allowed), e.g. an in-memory TUN for tests: one read
   * or write is one packet. Close each end with close(). Throws an Error with .code / .errno.
   */
  socketpair(): [number, number];
}

let loaded: UdpNative | null = null;
let loadError: Error | null = null;

function load(): UdpNative {
  if (loaded) return loaded;
  if (loadError) throw loadError;
  try {
    // dist/src/io/udp-native.js → <repo>/native/build/Release
    loaded = createRequire(import.meta.url)('../../../native/build/Release/wirepool_udp.node') as UdpNative;
    if (typeof loaded.sendSlots !== 'function') throw new Error('wirepool_udp.node lacks sendSlots (stale build?)');
    return loaded;
  } catch (err) {
    loaded = null;
    loadError = new Error(`wirepool's UDP addon is not built (run npm ci, or cd native && npx node-gyp rebuild): ${errorText(err)}`);
    throw loadError;
  }
}

/** The addon (loaded once per thread); throws if it is not built. */
export function udpNative(): UdpNative {
  return loaded ?? load();
}

/** Whether the addon can be loaded here. */
export function udpNativeAvailable(): boolean {
  try {
    load();
    return true;
  } catch {
    return false;
  }
}
