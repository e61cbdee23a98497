// The Linux TUN device behind a small interface (the protocol's TUN conventions and MTU rules, as
// wireguard-go's tun/tun_linux.go follows them), on wirepool's own addon native/tun.c.
//
// Creation. createTun opens /dev/net/tun (O_RDWR | O_NONBLOCK | O_CLOEXEC) and issues
// TUNSETIFF with IFF_TUN | IFF_NO_PI | IFF_VNET_HDR | IFF_TUN_EXCL and the requested name, so
// the link is born with its final name: no kernel-chosen tunN, no rename, and IFF_TUN_EXCL
// makes the kernel refuse (EBUSY → ERR_TUN_NAME_TAKEN) a name that exists, whoever made it
// and whenever. Then the offloads: TUNSETOFFLOAD(CSUM | TSO4 | TSO6 | USO4 | USO6), without
// USO where the kernel refuses it (before 6.2), and without the virtio header at all (the
// device is made again) where even TCP offload is refused. Then SIOCSIFMTU. A fresh TUN link
// is down. On any failure after TUNSETIFF the fd is closed, which deletes the
// (non-persistent) link: nothing is left half-configured.
//
// Queues. createTun(name, mtu, { queues: N }) with 1 < N ≤ MAX_TUN_QUEUES makes the link with
// IFF_MULTI_QUEUE (the first open still exclusive: the name must be new), then attaches N - 1
// more queues to it (non-exclusive TUNSETIFF with the same flags; each must report the same
// virtio header setting as the first, or everything is closed again): `fd` is queue 0,
// `queueFds` queues 1..N-1, each read by its own reader thread with its own wake eventfd
// (`queueWakeFds`). The kernel decides which queue a packet is read from: tun_automq_select_queue
// picks the queue on which the same flow (its symmetric skb hash, so replies count) was last
// written (tun_flow_update), else one from the hash. A writer that used one queue only would
// therefore get every two-way flow back on that queue. So writeSlots, given the queue fds as an
// Int32Array, spreads its writes by flow with a symmetric hash (flowQueue: a→b and b→a pick the
// same queue), and each flow is read back on the queue it hashes to. An inherited fd
// (openTunFromFd, WG_TUN_FD) is always one queue.
//
// Offloads. With IFF_VNET_HDR every read and write carries a 10-byte virtio_net_hdr. The
// device announces TSO/USO, so the local stack hands it TCP (and UDP) super-packets of up to
// 64 KiB that the addon's readSlots splits into MTU-sized packets (a 2–4× saving in stack work
// per byte), and writeSlots can merge a batch's consecutive TCP segments of one flow into one
// GSO write, as a NIC's receive offload would. WIREPOOL_TUN_OFFLOAD=0 (or off/false/no) opens
// the device without the header and offloads: one plain packet per read and write, for
// kernels where offloads misbehave.
//
// Use of the fd. It is non-blocking. The data plane reads it only through the addon's
// readSlots (poll on the fd and on `wakeFd`, an eventfd, then batched reads) and writes it
// through writeSlots; see TunNative below for the exact contract. `wake()` interrupts a
// blocked readSlots (it returns 0). close() marks each wake eventfd closed, then closes the TUN
// fds and the eventfds: a readSlots blocked at that moment, or called before the fds are closed,
// returns -EBADF (it sees the mark, and leaves it for the next call); one called after sees the
// fds closed (-EBADF). So a reader that loops until "gone" ends however its calls fall around
// close(); had close() only woken it (a consumed wake, 0), a call made between the wake and the
// closing would wait forever, as closing an fd does not end a poll on it. The owner should still
// stop its reader threads (CTL_SHUTDOWN) before close(), so none calls readSlots with fd numbers
// that may meanwhile be reused. Closing the last fd of a non-persistent TUN deletes
// the link. Deleting the link (`ip link delete`) makes a blocked readSlots return -EBADFD (77)
// and writeSlots report GONE_ERRNO 77.
//
// Whether a link exists is read from /proc/self/net/dev, which always reflects the
// network namespace of this process; /sys/class/net is only right when sysfs was
// mounted in that namespace (`ip netns exec` remounts it, `unshare -n` does not).

import { type IdleHookCommon } from '../dataplane/idle-lease.js';
import { MAX_TUN_QUEUES } from '../dataplane/layout.js';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { errorText } from '../error-text.js';

export interface TunDevice {
  readonly name: string;
  /** Non-blocking TUN fd (queue 0); read and write it with tunNative().readSlots / writeSlots. */
  readonly fd: number;
  /**
   * Non-blocking fds of queues 1..N-1 of a multi-queue device (empty, or absent, for one queue):
   * read each with readSlots like `fd`, on its own thread with the matching `queueWakeFds`
   * entry. Write through writeSlots(Int32Array.of(fd, ...queueFds), …), which picks the queue
   * per flow. Optional in this interface only so that single-queue stand-ins (test/helpers/
   * memtun.ts) need not declare it; createTun and openTunFromFd always set it.
   */
  readonly queueFds?: readonly number[];
  /** One eventfd per entry of queueFds, for its reader (wakeFd serves queue 0); wake() signals them all. */
  readonly queueWakeFds?: readonly number[];
  /** Every read and write carries a 10-byte virtio_net_hdr (pass this to readSlots/writeSlots). */
  readonly vnetHdr: boolean;
  /** TUN_F_* offload bits the kernel accepted (0 without vnetHdr). */
  readonly offloads: number;
  /** UDP segmentation offload on (reads may be UDP super-packets; readSlots splits them). */
  readonly uso: boolean;
  /** eventfd: pass to readSlots; wake() makes a blocked readSlots return 0. */
  readonly wakeFd: number;
  mtu(): number;
  setMtu(mtu: number): void;
  /** true while the kernel link exists */
  exists(): boolean;
  /** Interrupts a readSlots blocked on this device (it returns 0); with queues, each queue's reader. */
  wake(): void;
  /** Marks the wake eventfds closed (a reader's readSlots returns -EBADF), closes the fds and the eventfds. Idempotent. */
  close(): void;
}

export type TunErrorCode =
  | 'ERR_TUN_NAME_INVALID' // not a valid Linux interface name
  | 'ERR_TUN_NAME_TAKEN' // a link with that name exists already
  | 'ERR_TUN_MTU_INVALID' // outside 68..65535 or not an integer
  | 'ERR_TUN_UNAVAILABLE' // no /dev/net/tun, or the addon is not built
  | 'ERR_TUN_PERMISSION' // needs CAP_NET_ADMIN
  | 'ERR_TUN_FD_INVALID' // an inherited fd that is not this TUN device
  | 'ERR_TUN_SETUP'; // any other failure while creating or configuring

export class TunError extends Error {
  readonly code: TunErrorCode;
  constructor(code: TunErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TunError';
    this.code = code;
  }
}

/** Linux IFNAMSIZ: 16 bytes including the terminating NUL. */
export const IFNAMSIZ = 16;
/** dev->min_mtu / max_mtu of a TUN device (ETH_MIN_MTU, MAX_MTU in drivers/net/tun.c). */
export const TUN_MIN_MTU = 68;
export const TUN_MAX_MTU = 65535;
/** Most queues createTun opens (the kernel allows 256; one reader thread and ring each: the dataplane's layout has room for this many). */
export { MAX_TUN_QUEUES };

/** TUNSETOFFLOAD bits (linux/if_tun.h). */
export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;
export const TUN_F_USO4 = 0x20;
export const TUN_F_USO6 = 0x40;
/** TUNGETIFF flag bits (linux/if_tun.h). */
export const IFF_TUN = 0x0001;
export const IFF_NO_PI = 0x1000;
export const IFF_VNET_HDR = 0x4000;
export const IFF_MULTI_QUEUE = 0x0100;

/** Bytes of the virtio_net_hdr in front of each packet when vnetHdr is on. */
export const TUN_VNET_HDR_LEN = 10;

/** readSlots `out` entries (values of this call only; the caller accumulates). Length ≥ TUN_READ_OUT_LEN. */
export const TUN_READ_OUT = {
  /** read() calls that returned a packet or super-packet */
  READS: 0,
  /** of those, GSO super-packets split */
  SUPER: 1,
  /** slots filled with segments of super-packets (this call's share; the rest may be pending) */
  SEGMENTS: 2,
  /** packets or segments dropped: longer than slotBytes - 48, or a read truncated at 64 KiB */
  TOO_BIG: 3,
  /** packets dropped: virtio header or IP/TCP/UDP headers not understood */
  MALFORMED: 4,
  /** ENOBUFS / ENOMEM / poll failures: the call returned early; call again */
  TRANSIENT: 5,
  /** bytes put into slots */
  BYTES: 6,
  /** segments of a split super-packet still waiting for slots (emitted first by the next call, which then does not block) */
  PENDING: 7,
} as const;
export const TUN_READ_OUT_LEN = 8;

/** writeSlots `out` entries (values of this call only). Length ≥ TUN_WRITE_OUT_LEN. */
export const TUN_WRITE_OUT = {
  /** input packets written (alone or inside a coalesced write) */
  WRITTEN: 0,
  /** input packets dropped because their write failed (EIO while the link is down, EINVAL, …) */
  ERRORS: 1,
  /** errno of the last such failure */
  LAST_ERRNO: 2,
  /** write()/writev() calls that succeeded */
  WRITES: 3,
  /** packets that went out inside an earlier packet's GSO write (WRITTEN - COALESCED = packets on the wire as written) */
  COALESCED: 4,
  /** non-zero: the fd is gone (EBADF, EBADFD, ENXIO, ENODEV, EFAULT): the errno; the call stopped there */
  GONE_ERRNO: 5,
  /** inner bytes written */
  BYTES: 6,
} as const;
export const TUN_WRITE_OUT_LEN = 7;

/** readSlots' return value at end of file (the device is gone). Other negative values are -errno. */
export const TUN_READ_EOF = -0x10000;

/** What open()/attach() report. */
export interface TunOpenInfo {
  fd: number;
  name: string;
  /** TUNGETIFF flags */
  flags: number;
  vnetHdr: boolean;
  offloads: number;
  uso: boolean;
}

/**
 * native/tun.c. All calls are synchronous; readSlots blocks in poll (run it on a worker
 * thread). Data buffers may be SharedArrayBuffer-backed. Slot s's packet is at
 * data[s*slotBytes + 16, + len), its length in meta[s*32 + 1] (src/dataplane/layout.ts);
 * a slot holds at most slotBytes - 48 bytes of packet.
 */
export interface TunNative {
  /**
   * Creates (exclusive, default) or attaches the TUN link `name`. Throws an Error with
   * `code` (errno name: EBUSY when the name is taken, EPERM, ENOENT for a missing
   * /dev/net/tun …), `errno` and `syscall`.
   */
  open(name: string, flags: { vnetHdr: boolean; multiQueue?: boolean; exclusive?: boolean }): TunOpenInfo;
  /** Name and flags of a TUN fd (TUNGETIFF); throws (EBADF: not open, EBADFD: detached, ENOTTY/EINVAL: not a TUN). */
  query(fd: number): { name: string; flags: number };
  /**
   * Adopts an inherited TUN fd: virtio header size 10 and offloads (offload true: the full
   * set, else none) when it has IFF_VNET_HDR; made non-blocking. Throws like query.
   */
  attach(fd: number, offload: boolean): TunOpenInfo;
  setMtu(name: string, mtu: number): void;
  getMtu(name: string): number;
  /** A non-blocking, close-on-exec eventfd. */
  eventfd(): number;
  /**
   * Adds 1 to the eventfd (a wake: readSlots returns 0 and consumes it), or with `closed` the
   * device's closed mark (readSlots returns -EBADF and leaves it); 0 or the errno.
   */
  wake(efd: number, closed?: boolean): number;
  /**
   * Waits (poll, up to timeoutMs; -1 = forever) until the TUN fd is readable or wakeFd (-1:
   * none) is signalled, then reads packets until EAGAIN or maxSlots slots are filled, in the
   * order of `slots`. With vnetHdr, super-packets are split into segments (valid IP packets,
   * full checksums); segments that do not fit stay pending in this thread's state for this
   * fd and are emitted first by the next call, which then does not wait.
   * Returns: n ≥ 0 slots filled (0: timeout, wake — the wake is consumed —, EINTR, or only
   * drops); TUN_READ_EOF or -errno when the device is gone (link deleted: -EBADFD; device
   * closed — the closed mark, or fd or eventfd closed —: -EBADF; any read error but EAGAIN/EINTR/ENOBUFS/ENOMEM). An error after
   * some slots were filled returns those first; the next call reports it.
   */
  readSlots(
    tunFd: number, wakeFd: number, vnetHdr: boolean, data: Uint8Array, slotBytes: number, meta: Int32Array,
    slots: Int32Array, maxSlots: number, timeoutMs: number, out: Int32Array,
  ): number;
  /**
   * The idle path's send hook for FdWatch.setHook (native/idle.h): on a readable TUN fd, readSlots
   * into the ring's free slots, and a lone packet the lease covers sealed and sent from C.
   */
  idleSendHook(options: IdleHookCommon & { tunFd: number; vnetHdr: boolean; ifname: string }): object;
  /** native/idle.h's lease word numbers, in its order (idle-lease.ts IDLE_LAYOUT must equal it). */
  readonly idleLayout: readonly number[];
  /**
   * Writes packets i < n (data[slots[i]*slotBytes + 16, + lens[i])), each as one write, the
   * virtio header (with vnetHdr) placed in slot bytes 6..16. With gro (and vnetHdr), TCP
   * segments of one flow with adjacent sequence numbers are merged into one GSO writev (see
   * native/tun.c write_chunk for the rules); this edits the first segment's headers in its
   * slot. `tunFd` is one fd, or the queue fds of a multi-queue device (a non-empty Int32Array;
   * one entry is the same as that number): each write — a packet, or a merged group, which is
   * one flow — then goes to tunFd[flowQueue(packet, tunFd.length)], so that the kernel reads
   * each flow back on that queue (header comment). `meta` is unused (may be null). Failed
   * writes are counted in out and skipped; when the fd (any of them) is gone, out[GONE_ERRNO]
   * is set and the call stops. Returns the number of input packets handled (written or
   * dropped): n, unless an fd went away.
   */
  writeSlots(
    tunFd: number | Int32Array, vnetHdr: boolean, data: Uint8Array, slotBytes: number, meta: Int32Array | null,
    slots: Int32Array, lens: Int32Array, n: number, gro: boolean, out: Int32Array,
  ): number;
  /** Test helper: readSlots' split of one virtio header + packet into out[i*outStride]; segments, -1 malformed, -2 no room. */
  gsoSplit(buf: Uint8Array, out: Uint8Array, outStride: number, lens: Int32Array): number;
  /** Test helper: writeSlots' vnetHdr+gro path recording each write (header + packet) into outBuf; records or -2. */
  groCoalesce(
    data: Uint8Array, slotBytes: number, slots: Int32Array, lens: Int32Array, n: number,
    outBuf: Uint8Array, outLens: Int32Array, outCounts: Int32Array, out: Int32Array,
  ): number;
  /**
   * The queue in [0, queues) writeSlots writes the IP packet on (the same C function): a hash
   * of the addresses, protocol and (TCP/UDP, when the header is there) ports that is the same
   * for both directions of a flow; 0 for anything it cannot parse, and for queues 1. Throws a
   * RangeError for queues < 1.
   */
  flowQueue(packet: Uint8Array, queues: number): number;
  readonly READ_EOF: number;
  /** TUN fds one thread can read with their own split state: main reads every queue at idle. */
  readonly READ_STATES: number;
}

let native: TunNative | undefined;

/** The addon (loaded once per thread). Throws ERR_TUN_UNAVAILABLE when it is not built. */
export function tunNative(): TunNative {
  if (native === undefined) {
    let loaded: TunNative;
    try {
      loaded = createRequire(import.meta.url)('../../../native/build/Release/wirepool_tun.node') as TunNative;
    } catch (err) {
      throw new TunError('ERR_TUN_UNAVAILABLE', `TUN addon could not be loaded (build it: cd native && npx node-gyp rebuild): ${errorText(err)}`, { cause: err });
    }
    // Fewer would make main, reading every queue at idle, evict a queue's pending TSO segments.
    if (!(loaded.READ_STATES >= MAX_TUN_QUEUES)) {
      throw new TunError('ERR_TUN_UNAVAILABLE', `TUN addon keeps split state for ${loaded.READ_STATES} fds per thread, fewer than the ${MAX_TUN_QUEUES} queues: rebuild it (cd native && npx node-gyp rebuild)`);
    }
    native = loaded;
  }
  return native;
}

/** Whether offloads are wanted: WIREPOOL_TUN_OFFLOAD=0 / off / false / no turns them off. */
export function tunOffloadWanted(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env.WIREPOOL_TUN_OFFLOAD?.trim().toLowerCase();
  return !(v === '0' || v === 'off' || v === 'false' || v === 'no');
}

const WATCH_INTERVAL_MS = 1_000;

/**
 * Why `name` cannot be a Linux interface name, or null if it can. Kernel rules
 * (dev_valid_name): 1..15 bytes, not "." or "..", no '/', ':' or whitespace. Stricter
 * here: printable ASCII only, and no '%' (the kernel would treat "wg%d" as a template
 * and pick another name).
 */
export function ifnameProblem(name: string): string | null {
  if (name.length === 0) return 'it is empty';
  if (name.length > IFNAMSIZ - 1) return `it is longer than ${IFNAMSIZ - 1} characters`;
  if (name === '.' || name === '..') return 'it cannot be "." or ".."';
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) return 'it may contain only printable ASCII without whitespace';
    if (c === 0x2f /* / */ || c === 0x3a /* : */ || c === 0x25 /* % */) {
      return `it cannot contain '${name[i]}'`;
    }
  }
  return null;
}

/** Whether a link called `name` exists in this process's network namespace. */
export function linkExists(name: string): boolean {
  let text: string;
  try {
    text = fs.readFileSync('/proc/self/net/dev', 'latin1');
  } catch {
    return fs.existsSync(`/sys/class/net/${name}`);
  }
  // Lines after the two header lines look like "  wg0: 123 4 0 ...".
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0 && line.slice(0, colon).trim() === name) return true;
  }
  return false;
}

function checkName(name: string): void {
  const problem = ifnameProblem(name);
  if (problem !== null) {
    throw new TunError('ERR_TUN_NAME_INVALID', `invalid interface name ${JSON.stringify(name)}: ${problem}`);
  }
}

function checkMtu(mtu: number): void {
  if (!Number.isInteger(mtu) || mtu < TUN_MIN_MTU || mtu > TUN_MAX_MTU) {
    throw new TunError('ERR_TUN_MTU_INVALID', `invalid MTU ${mtu}: must be an integer from ${TUN_MIN_MTU} to ${TUN_MAX_MTU}`);
  }
}

function errCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** Wraps an addon (errno) failure into a TunError. */
function addonError(what: string, err: unknown): TunError {
  if (err instanceof TunError) return err;
  const code = errCode(err);
  if (code === 'EPERM' || code === 'EACCES') {
    return new TunError('ERR_TUN_PERMISSION', `${what}: permission denied (CAP_NET_ADMIN is needed)`, { cause: err });
  }
  return new TunError('ERR_TUN_SETUP', `${what}: ${errorText(err)}`, { cause: err });
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // already closed, or reporting another failure
  }
}

class LinuxTun implements TunDevice {
  #closed = false;

  constructor(
    readonly fd: number,
    readonly name: string,
    readonly vnetHdr: boolean,
    readonly offloads: number,
    readonly uso: boolean,
    readonly wakeFd: number,
    readonly queueFds: readonly number[] = [],
    readonly queueWakeFds: readonly number[] = [],
  ) {}

  mtu(): number {
    try {
      return tunNative().getMtu(this.name);
    } catch (err) {
      throw addonError(`reading the MTU of ${this.name}`, err);
    }
  }

  setMtu(mtu: number): void {
    checkMtu(mtu);
    try {
      tunNative().setMtu(this.name, mtu);
    } catch (err) {
      throw addonError(`setting the MTU of ${this.name} to ${mtu}`, err);
    }
  }

  exists(): boolean {
    return linkExists(this.name);
  }

  /** A wake, or the closed mark, on every queue's wake eventfd: a wake is consumed by the first reader that reads it, so each queue's reader has its own. */
  #signal(closed: boolean): void {
    const nat = tunNative();
    nat.wake(this.wakeFd, closed);
    for (const w of this.queueWakeFds) nat.wake(w, closed);
  }

  wake(): void {
    if (!this.#closed) this.#signal(false);
  }

  close(): void {
    if (this.#closed) return;
    this.#signal(true);
    this.#closed = true;
    closeQuietly(this.fd);
    for (const fd of this.queueFds) closeQuietly(fd);
    closeQuietly(this.wakeFd);
    for (const w of this.queueWakeFds) closeQuietly(w);
  }
}

function newWakeFd(): number {
  try {
    return tunNative().eventfd();
  } catch (err) {
    throw addonError('creating the wake eventfd', err);
  }
}

function checkQueues(queues: number): void {
  if (!Number.isInteger(queues) || queues < 1 || queues > MAX_TUN_QUEUES) {
    throw new TunError('ERR_TUN_SETUP', `invalid number of TUN queues ${queues}: must be an integer from 1 to ${MAX_TUN_QUEUES}`);
  }
}

/**
 * Creates the TUN link `name` (down, no addresses) with the given MTU and returns it with its
 * non-blocking fd. Offloads (virtio header, TSO/USO) are on unless opts.offload is false or
 * WIREPOOL_TUN_OFFLOAD=0. opts.queues (default 1): with more, a multi-queue device whose queues
 * 1..N-1 are in queueFds (see the header comment). Throws a TunError (an invalid queues value:
 * ERR_TUN_SETUP, before anything is opened); on failure nothing is left behind.
 */
export function createTun(name: string, mtu: number, opts: { offload?: boolean; queues?: number } = {}): TunDevice {
  checkName(name);
  checkMtu(mtu);
  const queues = opts.queues ?? 1;
  checkQueues(queues);
  if (linkExists(name)) {
    throw new TunError('ERR_TUN_NAME_TAKEN', `interface ${name} already exists`);
  }
  const addon = tunNative();
  const offload = opts.offload ?? tunOffloadWanted();
  const multiQueue = queues > 1;

  let info: TunOpenInfo;
  try {
    info = addon.open(name, multiQueue ? { vnetHdr: offload, multiQueue } : { vnetHdr: offload });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.syscall === 'open') {
      if (e.code === 'ENOENT' || e.code === 'ENODEV' || e.code === 'ENXIO') {
        throw new TunError('ERR_TUN_UNAVAILABLE', `/dev/net/tun is missing (load the tun module, or give the container the device)`, { cause: err });
      }
      if (e.code === 'EACCES' || e.code === 'EPERM') {
        throw new TunError('ERR_TUN_PERMISSION', `cannot open /dev/net/tun: permission denied (CAP_NET_ADMIN is needed)`, { cause: err });
      }
    }
    if (e.code === 'EBUSY' || e.code === 'EEXIST') {
      throw new TunError('ERR_TUN_NAME_TAKEN', `interface ${name} already exists`, { cause: err });
    }
    throw addonError(`creating the TUN device ${name}`, err);
  }

  let wakeFd = -1;
  const queueFds: number[] = [];
  const queueWakeFds: number[] = [];
  try {
    for (let q = 1; q < queues; q++) queueFds.push(openQueue(info, q));
    wakeFd = newWakeFd();
    for (let q = 1; q < queues; q++) queueWakeFds.push(newWakeFd());
    const dev = new LinuxTun(info.fd, info.name, info.vnetHdr, info.offloads, info.uso, wakeFd, queueFds, queueWakeFds);
    dev.setMtu(mtu);
    return dev;
  } catch (err) {
    // Closing the last fd of a non-persistent TUN deletes the link.
    closeQuietly(info.fd);
    for (const fd of queueFds) closeQuietly(fd);
    if (wakeFd >= 0) closeQuietly(wakeFd);
    for (const w of queueWakeFds) closeQuietly(w);
    throw err instanceof TunError ? err : addonError(`creating ${name}`, err);
  }
}

/**
 * Attaches queue q to the multi-queue device queue 0 (first) opened: same virtio header
 * setting, or it throws (after closing the new fd). The kernel requires matching
 * IFF_MULTI_QUEUE, and IFF_VNET_HDR is one flag for the whole device: the addon refuses to
 * attach rather than drop the header, and a mismatch is checked here too.
 */
function openQueue(first: TunOpenInfo, q: number): number {
  let info: TunOpenInfo;
  try {
    info = tunNative().open(first.name, { vnetHdr: first.vnetHdr, multiQueue: true, exclusive: false });
  } catch (err) {
    throw addonError(`attaching queue ${q} of ${first.name}`, err);
  }
  if (info.vnetHdr !== first.vnetHdr || info.name !== first.name || (info.flags & IFF_MULTI_QUEUE) === 0) {
    closeQuietly(info.fd);
    throw new TunError(
      'ERR_TUN_SETUP',
      `attaching queue ${q} of ${first.name}: got ${info.name} with virtio header ${info.vnetHdr ? 'on' : 'off'} ` +
        `and flags 0x${info.flags.toString(16)}, unlike queue 0 (header ${first.vnetHdr ? 'on' : 'off'}, multi-queue)`,
    );
  }
  return info.fd;
}

/**
 * Wraps an inherited TUN fd (WG_TUN_FD): checks with TUNGETIFF that it is an IFF_TUN |
 * IFF_NO_PI device attached to the link `name`, then adopts it (non-blocking; with
 * IFF_VNET_HDR: header size 10, offloads on unless opts.offload is false or
 * WIREPOOL_TUN_OFFLOAD=0, in which case the header stays but carries nothing). Single-queue:
 * queueFds is empty.
 */
export function openTunFromFd(fd: number, name: string, opts: { offload?: boolean } = {}): TunDevice {
  checkName(name);
  if (!Number.isInteger(fd) || fd < 0) {
    throw new TunError('ERR_TUN_FD_INVALID', `invalid TUN fd ${fd}`);
  }
  const addon = tunNative();
  let q: { name: string; flags: number };
  try {
    q = addon.query(fd);
  } catch (err) {
    const code = errCode(err);
    if (code === 'EBADF') throw new TunError('ERR_TUN_FD_INVALID', `TUN fd ${fd} is not open`, { cause: err });
    if (code === 'EBADFD') {
      throw new TunError('ERR_TUN_FD_INVALID', `TUN fd ${fd} is not attached to a link (was it deleted?)`, { cause: err });
    }
    throw new TunError('ERR_TUN_FD_INVALID', `fd ${fd} is not a TUN device`, { cause: err });
  }
  if (q.name !== name) {
    throw new TunError('ERR_TUN_FD_INVALID', `TUN fd ${fd} belongs to ${q.name}, not ${name}`);
  }
  if ((q.flags & IFF_TUN) === 0 || (q.flags & IFF_NO_PI) === 0) {
    throw new TunError('ERR_TUN_FD_INVALID', `TUN fd ${fd} (${name}) must be a TUN device with IFF_NO_PI (flags 0x${q.flags.toString(16)})`);
  }
  let info: TunOpenInfo;
  try {
    info = addon.attach(fd, opts.offload ?? tunOffloadWanted());
  } catch (err) {
    throw new TunError('ERR_TUN_FD_INVALID', `cannot adopt TUN fd ${fd}: ${errorText(err)}`, { cause: err });
  }
  // Always one queue (queueFds []): only this fd is handed over. Were the device multi-queue with
  // other queues open elsewhere, packets the kernel steers to those would not reach us.
  return new LinuxTun(fd, name, info.vnetHdr, info.offloads, info.uso, newWakeFd());
}

/**
 * Calls onGone once, within about a second, after the link `name` disappears (for
 * example `ip link delete`, as wg-quick down does). Polls every second on an unref'd
 * timer, so it never keeps the process alive. Returns a function that stops the watch.
 */
export function watchTunRemoval(name: string, onGone: () => void): () => void {
  const timer = setInterval(() => {
    if (!linkExists(name)) {
      clearInterval(timer);
      onGone();
    }
  }, WATCH_INTERVAL_MS);
  timer.unref();
  return () => clearInterval(timer);
}
