// TUN writer thread: stage 4 of the RECV ring (RoutineWriteToTUN). Waits until main's check
// stage (C_RETIRED) moves past C_FREED, writes every DELIVER slot with a blocking fs.writeSync of
// data[16, 16+len) (one write = one packet), frees each slot by advancing C_FREED (main reuses
// slots below it), and sleeps on C_RETIRED when caught up (main notifies if CTL_WRITER_WAITING).
//
// Errors: a failed write is counted (STAT_WRITER W_ERRORS and the recv ring's TUN_WRITE drop) and
// the packet dropped: EIO while the link is down, EINVAL for a packet the kernel rejects. Transient
// EAGAIN/EINTR/ENOBUFS are retried a few times first. Only "the fd is gone" ends the thread: EBADF
// (closed), EBADFD / EFAULT / ENXIO / ENODEV (link deleted): set CTL_TUN_GONE, ring main, exit.

import fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import {
  CTL_SHUTDOWN, CTL_TUN_GONE, CTL_TUN_GONE_CAUSE, CTL_TUN_GONE_ERRNO, CTL_WRITER_WAITING, Drop, type DataplaneShared, M_RESULT, M_STATE,
  META_WORDS, RING_RECV, SLOT_PAYLOAD_OFFSET, STAT_WRITER, SlotState, TunGoneCause, W_BYTES, W_ERRORS, W_PACKETS, statDrop,
} from '../src/dataplane/layout.js';
import { RingView, ringMainBell } from '../src/dataplane/ring.js';

export interface TunWriterData {
  shared: DataplaneShared;
  fd: number;
}

const TRANSIENT = new Set(['EAGAIN', 'EWOULDBLOCK', 'EINTR', 'ENOBUFS', 'ENOMEM']);
const FD_GONE = new Set(['EBADF', 'EBADFD', 'EFAULT', 'ENXIO', 'ENODEV']);
const RETRIES = 4;

const wd = workerData as TunWriterData;
const ctl = new Int32Array(wd.shared.control);
const stats = new Float64Array(wd.shared.stats);
const ring = new RingView(RING_RECV, ctl, wd.shared.rings[RING_RECV]!);
const dropWrite = statDrop(RING_RECV, Drop.TUN_WRITE);

/** Writes one packet; returns false only when the fd is gone. */
function writePacket(off: number, len: number): boolean {
  for (let attempt = 0; ; attempt++) {
    try {
      fs.writeSync(wd.fd, ring.data, off, len, null);
      stats[STAT_WRITER + W_PACKETS]! += 1;
      stats[STAT_WRITER + W_BYTES]! += len;
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'UNKNOWN';
      if (FD_GONE.has(code)) {
        Atomics.store(ctl, CTL_TUN_GONE_ERRNO, (err as NodeJS.ErrnoException).errno ?? -1);
        Atomics.store(ctl, CTL_TUN_GONE_CAUSE, TunGoneCause.WRITE_ERROR);
        Atomics.store(ctl, CTL_TUN_GONE, 1);
        ringMainBell(ctl);
        return false;
      }
      if (!TRANSIENT.has(code) || attempt >= RETRIES) {
        stats[STAT_WRITER + W_ERRORS]! += 1;
        stats[dropWrite]! += 1;
        return true;
      }
      if (code !== 'EINTR') Atomics.wait(ctl, CTL_SHUTDOWN, 0, 0.2); // brief pause before retrying
    }
  }
}

function routineWriteToTun(): void {
  const { meta, slotBytes, mask } = ring;
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
    while (seq !== checked) {
      const s = seq & mask;
      const m = s * META_WORDS;
      if (Atomics.load(meta, m + M_STATE) === SlotState.DELIVER) {
        if (!writePacket(s * slotBytes + SLOT_PAYLOAD_OFFSET, meta[m + M_RESULT]!)) return;
      }
      Atomics.store(meta, m + M_STATE, SlotState.FREE);
      seq = (seq + 1) | 0;
      Atomics.store(ctl, ring.iFreed, seq); // slot may be reused by main's reserveRecv()
    }
  }
}

parentPort?.postMessage({ type: 'ready' });
routineWriteToTun();
