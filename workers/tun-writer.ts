// TUN writer thread: stage 4 of the RECV ring (RoutineWriteToTUN). Waits until main's check
// stage (C_RETIRED) moves past C_FREED, collects the DELIVER slots of everything checked (up to
// BATCH) and writes them with one native writeSlots call: with IFF_VNET_HDR, consecutive TCP
// segments of one flow are coalesced into one GSO write (GRO: one trip through the kernel's stack
// for up to 64 KiB), everything else is one write each, the virtio_net_hdr placed in the slot in
// front of the packet. On a multi-queue device each flow is written to one queue, chosen by a
// symmetric hash of its addresses and ports: the kernel reads a flow's other direction from the
// queue it was last written on, so this spreads the flows over the queues' reader threads (main's
// own small writes at idle go to queue 0, where its idle hook reads). Then it frees the slots by advancing C_FREED (the UDP reader, or main,
// reuses slots below it) and sleeps on C_RETIRED when caught up (main notifies if
// CTL_WRITER_WAITING).
//
// Errors: a failed write is counted (STAT_WRITER W_ERRORS and the recv ring's TUN_WRITE drop) and
// the packet dropped (EIO while the link is down, EINVAL for a packet the kernel rejects). Only
// "the fd is gone" ends the thread: EBADF (closed), EBADFD / EFAULT / ENXIO / ENODEV (link
// deleted): set CTL_TUN_GONE, ring main, exit.

import { parentPort, workerData } from 'node:worker_threads';
import {
  CTL_SHUTDOWN, CTL_TUN_GONE, CTL_TUN_GONE_CAUSE, CTL_TUN_GONE_ERRNO, CTL_UDP_READER_WAITING, CTL_WRITER_WAITING, Drop,
  type DataplaneShared, M_RESULT, M_STATE, META_WORDS, RING_RECV, STAT_WRITER, SlotState, TunGoneCause, W_BYTES, W_ERRORS,
  W_PACKETS, W_WRITES, statDrop,
} from '../src/dataplane/layout.js';
import { RingView, ringMainBell } from '../src/dataplane/ring.js';
import { TUN_WRITE_OUT, TUN_WRITE_OUT_LEN, tunNative } from '../src/io/tun.js';

export interface TunWriterData {
  shared: DataplaneShared;
  /** The TUN device's queues: each flow is written to one of them (native/tun.c writeSlots), so the kernel reads its other direction from that queue too. */
  fds: number[];
  /** The fd carries virtio_net_hdr (offloads on): writes are coalesced. */
  vnetHdr: boolean;
}

/** Most packets per writeSlots call. */
const BATCH = 128;

const wd = workerData as TunWriterData;
const ctl = new Int32Array(wd.shared.control);
const stats = new Float64Array(wd.shared.stats);
const ring = new RingView(RING_RECV, ctl, wd.shared.rings[RING_RECV]!);
const dropWrite = statDrop(RING_RECV, Drop.TUN_WRITE);
const native = tunNative();
const slotList = new Int32Array(BATCH);
const lens = new Int32Array(BATCH);
const out = new Int32Array(TUN_WRITE_OUT_LEN);
const target = Int32Array.from(wd.fds); // one entry: the same as that fd

/** Writes the collected packets; returns false when the fd is gone. */
function writeBatch(n: number): boolean {
  out.fill(0);
  native.writeSlots(target, wd.vnetHdr, ring.data, ring.slotBytes, null, slotList, lens, n, wd.vnetHdr, out);
  stats[STAT_WRITER + W_PACKETS]! += out[TUN_WRITE_OUT.WRITTEN]!;
  stats[STAT_WRITER + W_BYTES]! += out[TUN_WRITE_OUT.BYTES]!;
  stats[STAT_WRITER + W_WRITES]! += out[TUN_WRITE_OUT.WRITES]!;
  stats[STAT_WRITER + W_ERRORS]! += out[TUN_WRITE_OUT.ERRORS]!;
  stats[dropWrite]! += out[TUN_WRITE_OUT.ERRORS]!;
  const goneErrno = out[TUN_WRITE_OUT.GONE_ERRNO]!;
  if (goneErrno === 0) return true;
  Atomics.store(ctl, CTL_TUN_GONE_ERRNO, -Math.abs(goneErrno));
  Atomics.store(ctl, CTL_TUN_GONE_CAUSE, TunGoneCause.WRITE_ERROR);
  Atomics.store(ctl, CTL_TUN_GONE, 1);
  ringMainBell(ctl);
  return false;
}

function routineWriteToTun(): void {
  const { meta, mask } = ring;
  let seq = Atomics.load(ctl, ring.iFreed); // a replacement writer continues where the last one stopped
  for (;;) {
    if (Atomics.load(ctl, CTL_SHUTDOWN) !== 0) return;
    const checked = Atomics.load(ctl, ring.iRetired);
    if (checked === seq) {
      // Caught up: announce, re-read, wait on the value read (main notifies after advancing C_RETIRED).
      Atomics.store(ctl, CTL_WRITER_WAITING, 1);
      if (Atomics.load(ctl, ring.iRetired) === seq && Atomics.load(ctl, CTL_SHUTDOWN) === 0) {
        Atomics.wait(ctl, ring.iRetired, seq);
      }
      Atomics.store(ctl, CTL_WRITER_WAITING, 0);
      continue;
    }
    let end = seq;
    let n = 0;
    while (end !== checked && n < BATCH) {
      const s = end & mask;
      const m = s * META_WORDS;
      if (Atomics.load(meta, m + M_STATE) === SlotState.DELIVER) {
        slotList[n] = s;
        lens[n] = meta[m + M_RESULT]!;
        n++;
      }
      end = (end + 1) | 0;
    }
    if (n !== 0 && !writeBatch(n)) return;
    for (; seq !== end; seq = (seq + 1) | 0) Atomics.store(meta, (seq & mask) * META_WORDS + M_STATE, SlotState.FREE);
    Atomics.store(ctl, ring.iFreed, seq); // slots below may be reused by their producer
    if (Atomics.load(ctl, CTL_UDP_READER_WAITING) !== 0) Atomics.notify(ctl, ring.iFreed, 1);
  }
}

parentPort?.postMessage({ type: 'ready' });
routineWriteToTun();
