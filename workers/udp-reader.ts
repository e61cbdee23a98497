// UDP reader thread: stage 1 of the RECV ring (RoutineReceiveIncoming) under load. Blocks in
// the native recvSlots (poll on the interface's IPv4 and IPv6 sockets and a wake eventfd, then
// recvmmsg) and hands each batch to UdpIntake (src/dataplane/udp-intake.ts: what each datagram
// becomes, inline opening of small batches, publishing). A full ring is backpressure: the thread
// waits on C_FREED while the kernel's socket buffer holds what arrives meanwhile.
//
// At idle the main thread reads the sockets itself (src/dataplane/intake.ts): after a batch of at
// most HAND_TO_MAIN_MAX datagrams after a quiet gap (intake.ts Idleness) the thread hands the
// sockets to main and parks until main gives them back (load: a batch of HAND_TO_THREAD_MIN or
// more, or batches closer than IDLE_GAP_MS).
//
// Sockets: main owns them (src/io/bind.ts) and publishes their fds in CTL_UDP_FD4/FD6 with a
// generation (layout.ts); the reader re-reads them after every wake and acknowledges the
// generation it uses, so main closes a replaced socket only after the reader has left it.
// Stopping: CTL_SHUTDOWN plus a write to the wake eventfd and a notify of the owner word.

import { parentPort, workerData } from 'node:worker_threads';
import { ReceiverIndexMap } from '../src/dataplane/indexmap.js';
import { Idleness, handToMain, parkWhileMainOwns } from '../src/dataplane/intake.js';
import { KeyTable } from '../src/dataplane/keytable.js';
import {
  CTL_SHUTDOWN, CTL_UDP_FD4, CTL_UDP_FD6, CTL_UDP_GEN, CTL_UDP_GEN_SEEN, CTL_UDP_OWNER, CTL_UDP_READER_WAITING, type DataplaneShared,
  INTAKE_MAIN, RING_RECV, STAT_UDP_READER, U_FULL_WAITS,
} from '../src/dataplane/layout.js';
import { RingView, ringGroup, ringMainBell, tunRingViews } from '../src/dataplane/ring.js';
import { UdpIntake } from '../src/dataplane/udp-intake.js';
import { udpNative } from '../src/io/udp-native.js';

export interface UdpReaderData {
  shared: DataplaneShared;
  /** eventfd that interrupts a blocked recvSlots (main writes it on rebind and stop). */
  wakeFd: number;
  /** The receiver-index map (ReceiverIndexMap buffer). */
  indexMap: SharedArrayBuffer;
}

/** poll() bound: the loop re-checks shutdown and the socket generation at least this often. */
const POLL_MS = 1000;

const wd = workerData as UdpReaderData;
const ctl = new Int32Array(wd.shared.control);
const stats = new Float64Array(wd.shared.stats);
const ring = new RingView(RING_RECV, ctl, wd.shared.rings[RING_RECV]!);
const partner = ringGroup(tunRingViews(ctl, wd.shared)); // every TUN queue's ring
ring.partner = partner; // ring.ts "sharing a wake-up"
const intake = new UdpIntake(ring, KeyTable.attach(wd.shared.keys), ReceiverIndexMap.attach(wd.indexMap), stats, udpNative());
const idleness = new Idleness();

function routineReceive(): void {
  let handedOver = false;
  let seq = Atomics.load(ctl, ring.iProduced); // a replacement continues where the last one stopped
  let seenGen = -1;
  for (;;) {
    // Main reads the sockets (idle): park until it gives them back. After our own hand-over,
    // main may already have read and given them back: either way C_PRODUCED has moved on.
    if (handedOver || Atomics.load(ctl, CTL_UDP_OWNER) === INTAKE_MAIN) {
      handedOver = false;
      parkWhileMainOwns(ctl, CTL_UDP_OWNER, POLL_MS);
      seq = Atomics.load(ctl, ring.iProduced);
      idleness.resume(performance.now());
    }
    if (Atomics.load(ctl, CTL_SHUTDOWN) !== 0) return;
    const gen = Atomics.load(ctl, CTL_UDP_GEN);
    const fd4 = Atomics.load(ctl, CTL_UDP_FD4);
    const fd6 = Atomics.load(ctl, CTL_UDP_FD6);
    if (gen !== seenGen) {
      seenGen = gen;
      Atomics.store(ctl, CTL_UDP_GEN_SEEN, gen);
      ringMainBell(ctl); // main may be waiting to close the sockets we just left
    }
    // Backpressure (the TUN writer, or main, notifies when it frees slots).
    const free = ring.room(seq, CTL_UDP_READER_WAITING, POLL_MS);
    if (free === 0) {
      stats[STAT_UDP_READER + U_FULL_WAITS]! += 1;
      continue;
    }
    const got = intake.receive(fd4, fd6, wd.wakeFd, POLL_MS, seq, free);
    seq = (seq + got) | 0;
    if (idleness.handOver(got, intake.pending, performance.now(), intake.load) && partner.quiet() && Atomics.load(ctl, CTL_SHUTDOWN) === 0) {
      handToMain(ctl, CTL_UDP_OWNER); // idle: main reads until load returns
      handedOver = true;
    }
  }
}

parentPort?.postMessage({ type: 'ready' });
routineReceive();
