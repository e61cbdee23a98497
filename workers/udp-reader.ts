// UDP reader thread: stage 1 of the RECV ring (RoutineReceiveIncoming). Blocks in the native
// recvSlots (poll on the interface's IPv4 and IPv6 sockets and a wake eventfd, then recvmmsg,
// UDP_GRO super-datagrams split) and puts each datagram straight into the next free RECV slot:
// bytes at data[0, len), the sender's address and the local address it was sent to in the slot's
// endpoint words. One batch (up to BATCH datagrams) is published with one Atomics store of
// C_PRODUCED (slots FILLED) and at most one ring of main's bell; main's classify stage takes it
// from there (pipeline.ts). A full ring is backpressure: the thread waits on C_FREED while the
// kernel's socket buffer holds what arrives meanwhile.
//
// Sockets: main owns them (src/io/bind.ts) and publishes their fds in CTL_UDP_FD4/FD6 with a
// generation (layout.ts); the reader re-reads them after every wake and acknowledges the
// generation it uses, so main closes a replaced socket only after the reader has left it.
// Stopping: CTL_SHUTDOWN plus a write to the wake eventfd.

import { parentPort, workerData } from 'node:worker_threads';
import {
  CTL_SHUTDOWN, CTL_UDP_FD4, CTL_UDP_FD6, CTL_UDP_GEN, CTL_UDP_GEN_SEEN, CTL_UDP_READER_WAITING, type DataplaneShared,
  M_RESULT, M_SEQ, M_STATE, META_WORDS, RING_RECV, STAT_UDP_READER, SlotState, U_BYTES, U_CALLS, U_DATAGRAMS, U_ERRORS,
  U_FULL_WAITS, U_TOO_BIG, M_LENGTH,
} from '../src/dataplane/layout.js';
import { RingView, ringMainBell, ringMainIfArmed } from '../src/dataplane/ring.js';
import { udpNative } from '../src/io/udp-native.js';

export interface UdpReaderData {
  shared: DataplaneShared;
  /** eventfd that interrupts a blocked recvSlots (main writes it on rebind and stop). */
  wakeFd: number;
}

/** Most datagrams taken per recvSlots call (and published per C_PRODUCED store). */
const BATCH = 64;
/** poll() bound: the loop re-checks shutdown and the socket generation at least this often. */
const POLL_MS = 1000;

const wd = workerData as UdpReaderData;
const ctl = new Int32Array(wd.shared.control);
const stats = new Float64Array(wd.shared.stats);
const ring = new RingView(RING_RECV, ctl, wd.shared.rings[RING_RECV]!);
const native = udpNative();
const slotList = new Int32Array(BATCH);
const out = new Int32Array(8);

function routineReceive(): void {
  const { meta, data, slots, mask, slotBytes } = ring;
  let seq = Atomics.load(ctl, ring.iProduced); // a replacement continues where the last one stopped
  let seenGen = -1;
  for (;;) {
    if (Atomics.load(ctl, CTL_SHUTDOWN) !== 0) return;
    const gen = Atomics.load(ctl, CTL_UDP_GEN);
    const fd4 = Atomics.load(ctl, CTL_UDP_FD4);
    const fd6 = Atomics.load(ctl, CTL_UDP_FD6);
    if (gen !== seenGen) {
      seenGen = gen;
      Atomics.store(ctl, CTL_UDP_GEN_SEEN, gen);
      ringMainBell(ctl); // main may be waiting to close the sockets we just left
    }
    // Backpressure: announce, re-read C_FREED, wait on the value read (main or the TUN writer notifies).
    let free = slots - ((seq - Atomics.load(ctl, ring.iFreed)) | 0);
    if (free <= 0) {
      stats[STAT_UDP_READER + U_FULL_WAITS]! += 1;
      Atomics.store(ctl, CTL_UDP_READER_WAITING, 1);
      const freed = Atomics.load(ctl, ring.iFreed);
      if (((seq - freed) | 0) >= slots && Atomics.load(ctl, CTL_SHUTDOWN) === 0) Atomics.wait(ctl, ring.iFreed, freed, POLL_MS);
      Atomics.store(ctl, CTL_UDP_READER_WAITING, 0);
      continue;
    }
    const n = Math.min(free, BATCH);
    for (let i = 0; i < n; i++) slotList[i] = (seq + i) & mask;
    out.fill(0);
    const got = native.recvSlots(fd4, fd6, wd.wakeFd, POLL_MS, data, slotBytes, meta, slotList, n, out);
    stats[STAT_UDP_READER + U_TOO_BIG]! += out[0]!;
    stats[STAT_UDP_READER + U_ERRORS]! += out[1]!;
    if (got <= 0) continue;
    let bytes = 0;
    for (let i = 0; i < got; i++) {
      const m = slotList[i]! * META_WORDS;
      bytes += meta[m + M_LENGTH]!;
      meta[m + M_RESULT] = 0;
      meta[m + M_SEQ] = (seq + i) | 0;
      Atomics.store(meta, m + M_STATE, SlotState.FILLED);
    }
    seq = (seq + got) | 0;
    Atomics.store(ctl, ring.iProduced, seq); // publish (release)
    stats[STAT_UDP_READER + U_DATAGRAMS]! += got;
    stats[STAT_UDP_READER + U_BYTES]! += bytes;
    stats[STAT_UDP_READER + U_CALLS]! += 1;
    ringMainIfArmed(ctl);
  }
}

parentPort?.postMessage({ type: 'ready' });
routineReceive();
