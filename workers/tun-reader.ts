// TUN reader thread: stage 1 of the TUN send ring (RoutineReadFromTUN). Blocks in the native
// readSlots (poll on the TUN fd and a wake eventfd, then non-blocking reads until EAGAIN) and
// puts each inner IP packet straight into the next free slot's data area at offset 16 (room for
// the transport header in front). With IFF_VNET_HDR the kernel hands over TCP (and UDP) GSO
// super-packets of up to 64 KiB; readSlots splits them into MTU-sized packets with their
// headers and checksums fixed up, one per slot, so one read() feeds dozens of slots. A batch is
// published with one Atomics store of C_PRODUCED (slots FILLED) and at most one ring of main's
// bell. A full ring is backpressure: the thread waits on C_FREED (segments of a split
// super-packet that found no slot stay pending in the addon and go first next time).
//
// The device is gone (link deleted, fd closed, EOF): set CTL_TUN_GONE, ring main, exit.
// Stopping: CTL_SHUTDOWN plus a write to the wake eventfd (pipeline.ts stop()).

import { parentPort, workerData } from 'node:worker_threads';
import {
  CTL_READER_WAITING, CTL_SHUTDOWN, CTL_TUN_MTU, CTL_TUN_GONE, CTL_TUN_GONE_CAUSE, CTL_TUN_GONE_ERRNO, type DataplaneShared,
  M_RESULT, M_SEQ, M_STATE, META_WORDS, RING_TUN, R_BYTES, R_FULL_WAITS, R_PACKETS, R_READS, R_SUPER, R_TOO_BIG,
  R_TRANSIENT_ERRORS, STAT_READER, SlotState, TunGoneCause,
} from '../src/dataplane/layout.js';
import { RingView, ringMainBell, ringMainIfArmed } from '../src/dataplane/ring.js';
import { TUN_READ_EOF, TUN_READ_OUT, TUN_READ_OUT_LEN, tunNative } from '../src/io/tun.js';

export interface TunReaderData {
  shared: DataplaneShared;
  fd: number;
  /** Interface name: its MTU is read after every batch and published in CTL_TUN_MTU ('' = don't). */
  name: string;
  /** eventfd that interrupts a blocked readSlots (-1: none). */
  wakeFd: number;
  /** The fd carries virtio_net_hdr (offloads on). */
  vnetHdr: boolean;
}

/** Most slots one readSlots call fills (a 64 KiB super-packet at MSS 1380 is 48 segments). */
const BATCH = 128;
/** poll() bound: the loop re-checks shutdown at least this often. */
const POLL_MS = 1000;

const wd = workerData as TunReaderData;
const ctl = new Int32Array(wd.shared.control);
const stats = new Float64Array(wd.shared.stats);
const ring = new RingView(RING_TUN, ctl, wd.shared.rings[RING_TUN]!);
const native = tunNative();
const slotList = new Int32Array(BATCH);
const out = new Int32Array(TUN_READ_OUT_LEN);

function gone(cause: number, errno: number): void {
  Atomics.store(ctl, CTL_TUN_GONE_ERRNO, errno);
  Atomics.store(ctl, CTL_TUN_GONE_CAUSE, cause);
  Atomics.store(ctl, CTL_TUN_GONE, 1);
  ringMainBell(ctl);
}

/**
 * The MTU as of now, published before the batch just read: main pads those packets (and every later
 * one) to at most this, so an `ip link set mtu` applies from the next packet read. One ioctl per
 * batch (a TSO read is dozens of packets).
 */
function publishMtu(): void {
  if (wd.name === '') return;
  try {
    Atomics.store(ctl, CTL_TUN_MTU, native.getMtu(wd.name));
  } catch { /* the link is going away: the next read says so */ }
}

function routineReadFromTun(): void {
  publishMtu();
  const { meta, data, mask, slotBytes } = ring;
  let seq = Atomics.load(ctl, ring.iProduced); // a replacement reader continues where the last one stopped
  for (;;) {
    if (Atomics.load(ctl, CTL_SHUTDOWN) !== 0) return;
    // Backpressure (main notifies when it frees slots).
    const free = ring.room(seq, CTL_READER_WAITING);
    if (free === 0) {
      stats[STAT_READER + R_FULL_WAITS]! += 1;
      continue;
    }
    const n = Math.min(free, BATCH);
    for (let i = 0; i < n; i++) slotList[i] = (seq + i) & mask;
    out.fill(0);
    const got = native.readSlots(wd.fd, wd.wakeFd, wd.vnetHdr, data, slotBytes, meta, slotList, n, POLL_MS, out);
    stats[STAT_READER + R_READS]! += out[TUN_READ_OUT.READS]!;
    stats[STAT_READER + R_SUPER]! += out[TUN_READ_OUT.SUPER]!;
    stats[STAT_READER + R_TOO_BIG]! += out[TUN_READ_OUT.TOO_BIG]! + out[TUN_READ_OUT.MALFORMED]!;
    stats[STAT_READER + R_TRANSIENT_ERRORS]! += out[TUN_READ_OUT.TRANSIENT]!;
    if (got < 0) {
      if (Atomics.load(ctl, CTL_SHUTDOWN) !== 0) return; // closed under us while stopping: not "gone"
      gone(got === TUN_READ_EOF ? TunGoneCause.READ_EOF : TunGoneCause.READ_ERROR, got === TUN_READ_EOF ? 0 : got);
      return;
    }
    if (got === 0) continue;
    publishMtu();
    for (let i = 0; i < got; i++) {
      const m = slotList[i]! * META_WORDS;
      meta[m + M_RESULT] = 0;
      meta[m + M_SEQ] = (seq + i) | 0;
      Atomics.store(meta, m + M_STATE, SlotState.FILLED);
    }
    seq = (seq + got) | 0;
    Atomics.store(ctl, ring.iProduced, seq); // publish (release)
    stats[STAT_READER + R_PACKETS]! += got;
    stats[STAT_READER + R_BYTES]! += out[TUN_READ_OUT.BYTES]!;
    ringMainIfArmed(ctl);
  }
}

parentPort?.postMessage({ type: 'ready' });
routineReadFromTun();
