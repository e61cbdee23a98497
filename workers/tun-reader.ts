// TUN reader thread: stage 1 of the TUN send ring (RoutineReadFromTUN). Blocking fs.readSync
// straight into the next free slot's data area at offset 16 (room for the transport header in
// front), one IP packet per read; publishes it with an Atomics store of C_PRODUCED and rings main
// if main sleeps. A full ring (produced - freed == slots) is backpressure: it waits on C_FREED.
//
// The fd must stay blocking (shared/notes/node-dataplane.md §6); EAGAIN is tolerated with a 1 ms
// pause in case someone set O_NONBLOCK. EOF or any other read error means the device is gone
// (after `ip link delete` the blocked read fails, seen as EFAULT on Linux/Node 20; EBADF after the
// last fd closed): set CTL_TUN_GONE, ring main, exit.
//
// Stopping: CTL_SHUTDOWN is seen only between reads. A thread blocked in read() cannot be
// interrupted or terminated (and keeps the process from exiting) until the read returns: the
// owner must delete the link or have a packet arrive. pipeline.ts documents this.

import fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import {
  CTL_READER_WAITING, CTL_SHUTDOWN, CTL_TUN_GONE, CTL_TUN_GONE_CAUSE, CTL_TUN_GONE_ERRNO, type DataplaneShared, M_LENGTH, M_RESULT, M_SEQ,
  M_STATE, META_WORDS, RING_TUN, R_BYTES, R_FULL_WAITS, R_PACKETS, R_TRANSIENT_ERRORS, SLOT_PAYLOAD_OFFSET, STAT_READER,
  SlotState, TunGoneCause,
} from '../src/dataplane/layout.js';
import { RingView, ringMainBell, ringMainIfArmed } from '../src/dataplane/ring.js';

export interface TunReaderData {
  shared: DataplaneShared;
  fd: number;
  /** Largest packet read into a slot (bytes after the 16-byte header room, before the tag). */
  maxRead: number;
}

const TRANSIENT = new Set(['EAGAIN', 'EWOULDBLOCK', 'EINTR', 'ENOBUFS', 'ENOMEM']);

const wd = workerData as TunReaderData;
const ctl = new Int32Array(wd.shared.control);
const stats = new Float64Array(wd.shared.stats);
const ring = new RingView(RING_TUN, ctl, wd.shared.rings[RING_TUN]!);

function gone(cause: number, errno: number): void {
  Atomics.store(ctl, CTL_TUN_GONE_ERRNO, errno);
  Atomics.store(ctl, CTL_TUN_GONE_CAUSE, cause);
  Atomics.store(ctl, CTL_TUN_GONE, 1);
  ringMainBell(ctl);
}

function routineReadFromTun(): void {
  const { meta, data, slots, mask, slotBytes } = ring;
  let seq = Atomics.load(ctl, ring.iProduced); // a replacement reader continues where the last one stopped
  for (;;) {
    if (Atomics.load(ctl, CTL_SHUTDOWN) !== 0) return;
    // Backpressure: announce, re-read C_FREED, wait on the value read (main notifies after freeing).
    while (((seq - Atomics.load(ctl, ring.iFreed)) | 0) >= slots) {
      stats[STAT_READER + R_FULL_WAITS]! += 1;
      Atomics.store(ctl, CTL_READER_WAITING, 1);
      const freed = Atomics.load(ctl, ring.iFreed);
      if (((seq - freed) | 0) >= slots && Atomics.load(ctl, CTL_SHUTDOWN) === 0) Atomics.wait(ctl, ring.iFreed, freed);
      Atomics.store(ctl, CTL_READER_WAITING, 0);
      if (Atomics.load(ctl, CTL_SHUTDOWN) !== 0) return;
    }
    const s = seq & mask;
    let n: number;
    try {
      n = fs.readSync(wd.fd, data, s * slotBytes + SLOT_PAYLOAD_OFFSET, wd.maxRead, null);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'UNKNOWN';
      if (TRANSIENT.has(code)) {
        stats[STAT_READER + R_TRANSIENT_ERRORS]! += 1;
        if (code !== 'EINTR') Atomics.wait(ctl, CTL_SHUTDOWN, 0, 1); // 1 ms: an O_NONBLOCK fd would spin otherwise
        continue;
      }
      gone(TunGoneCause.READ_ERROR, (err as NodeJS.ErrnoException).errno ?? -1);
      return;
    }
    if (n === 0) {
      gone(TunGoneCause.READ_EOF, 0);
      return;
    }
    const m = s * META_WORDS;
    meta[m + M_LENGTH] = n;
    meta[m + M_RESULT] = 0;
    meta[m + M_SEQ] = seq;
    Atomics.store(meta, m + M_STATE, SlotState.FILLED);
    seq = (seq + 1) | 0;
    Atomics.store(ctl, ring.iProduced, seq); // publish (release)
    stats[STAT_READER + R_PACKETS]! += 1;
    stats[STAT_READER + R_BYTES]! += n;
    ringMainIfArmed(ctl);
  }
}

parentPort?.postMessage({ type: 'ready' });
routineReadFromTun();
