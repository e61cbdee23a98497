// TUN reader thread: stage 1 of a TUN send ring (RoutineReadFromTUN) under load, one thread per
// queue of the TUN device (queue q reads its own fd into its own ring, tunRingId(q)). Blocks in the
// native readSlots (poll on the TUN fd and a wake eventfd) and hands each batch to TunIntake
// (src/dataplane/tun-intake.ts: GSO super-packets split into slots, MTU published, one C_PRODUCED
// store and at most one ring of main's bell per batch). A full ring is backpressure: the thread
// waits on C_FREED.
//
// At idle the main thread reads the device itself (src/dataplane/intake.ts): after a batch of at
// most HAND_TO_MAIN_MAX packets after a quiet gap (intake.ts Idleness) the thread hands the
// device to main and parks until main gives it back (load: a batch of HAND_TO_THREAD_MIN or more,
// or batches closer than IDLE_GAP_MS; or the device failed under main).
//
// The device is gone (link deleted, fd closed, EOF): set CTL_TUN_GONE, ring main, exit.
// Stopping: CTL_SHUTDOWN plus a write to the wake eventfd and a notify of the owner word.

import { parentPort, workerData } from 'node:worker_threads';
import { Idleness, handToMain, parkWhileMainOwns } from '../src/dataplane/intake.js';
import {
  CTL_SHUTDOWN, CTL_TUN_GONE, CTL_TUN_GONE_CAUSE, CTL_TUN_GONE_ERRNO, type DataplaneShared, INTAKE_MAIN, RING_RECV, R_FULL_WAITS,
  TunGoneCause, ctlReaderWaiting, ctlTunOwner, statReader, tunRingId,
} from '../src/dataplane/layout.js';
import { RingView, ringMainBell } from '../src/dataplane/ring.js';
import { TunIntake } from '../src/dataplane/tun-intake.js';
import { TUN_READ_EOF, tunNative } from '../src/io/tun.js';

export interface TunReaderData {
  shared: DataplaneShared;
  /** The TUN queue this thread reads (0 for a single-queue device). */
  queue: number;
  /** That queue's fd. */
  fd: number;
  /** Interface name: its MTU is read after every batch and published in CTL_TUN_MTU ('' = don't). */
  name: string;
  /** eventfd that interrupts a blocked readSlots (-1: none). */
  wakeFd: number;
  /** The fd carries virtio_net_hdr (offloads on). */
  vnetHdr: boolean;
}

/** poll() bound: the loop re-checks shutdown at least this often. */
const POLL_MS = 1000;

const wd = workerData as TunReaderData;
const ctl = new Int32Array(wd.shared.control);
const stats = new Float64Array(wd.shared.stats);
const ringId = tunRingId(wd.queue);
const ring = new RingView(ringId, ctl, wd.shared.rings[ringId]!);
const partner = new RingView(RING_RECV, ctl, wd.shared.rings[RING_RECV]!);
ring.partner = partner; // ring.ts "sharing a wake-up"
const ownerWord = ctlTunOwner(wd.queue);
const waitingWord = ctlReaderWaiting(wd.queue);
const row = statReader(wd.queue);
const intake = new TunIntake(ring, stats, tunNative(), wd.fd, wd.name, wd.vnetHdr, row);
const idleness = new Idleness();

function gone(cause: number, errno: number): void {
  Atomics.store(ctl, CTL_TUN_GONE_ERRNO, errno);
  Atomics.store(ctl, CTL_TUN_GONE_CAUSE, cause);
  Atomics.store(ctl, CTL_TUN_GONE, 1);
  ringMainBell(ctl);
}

function routineReadFromTun(): void {
  intake.publishMtu();
  let handedOver = false;
  let seq = Atomics.load(ctl, ring.iProduced); // a replacement reader continues where the last one stopped
  for (;;) {
    // Main reads the device (idle): park until it gives it back. After our own hand-over,
    // main may already have read and given it back: either way C_PRODUCED has moved on.
    if (handedOver || Atomics.load(ctl, ownerWord) === INTAKE_MAIN) {
      handedOver = false;
      parkWhileMainOwns(ctl, ownerWord, POLL_MS);
      seq = Atomics.load(ctl, ring.iProduced);
      idleness.resume(performance.now());
    }
    if (Atomics.load(ctl, CTL_SHUTDOWN) !== 0) return;
    // Backpressure (main notifies when it frees slots).
    const free = ring.room(seq, waitingWord);
    if (free === 0) {
      stats[row + R_FULL_WAITS]! += 1;
      continue;
    }
    const got = intake.read(wd.wakeFd, POLL_MS, seq, free);
    if (got < 0) {
      if (Atomics.load(ctl, CTL_SHUTDOWN) !== 0) return; // closed under us while stopping: not "gone"
      gone(got === TUN_READ_EOF ? TunGoneCause.READ_EOF : TunGoneCause.READ_ERROR, got === TUN_READ_EOF ? 0 : got);
      return;
    }
    seq = (seq + got) | 0;
    if (idleness.handOver(got, intake.pending, performance.now()) && partner.quiet() && Atomics.load(ctl, CTL_SHUTDOWN) === 0) {
      handToMain(ctl, ownerWord); // idle: main reads until load returns
      handedOver = true;
    }
  }
}

parentPort?.postMessage({ type: 'ready' });
routineReadFromTun();
