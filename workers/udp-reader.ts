// UDP reader thread: stage 1 of the RECV ring (RoutineReceiveIncoming), and the receive fast path.
// Blocks in the native recvSlots (poll on the interface's IPv4 and IPv6 sockets and a wake
// eventfd, then recvmmsg, UDP_GRO super-datagrams split) and puts each datagram straight into the
// next free RECV slot: bytes at data[0, len), the sender's address and the local address it was
// sent to in the slot's endpoint words. Then, per datagram:
//   - a transport message whose receiver index is in the shared index map (src/dataplane/indexmap.ts,
//     mirrored by main for every installed keypair) gets its key id and counter in the slot and is
//     PENDING for the crypto workers — or, when the batch holds at most INLINE_OPEN_MAX of them,
//     is opened right here in one native call (DONE / FAILED): a lone packet then reaches main's
//     check stage after one hand-off instead of three;
//   - anything else (handshake messages, unknown indices, malformed) stays FILLED: main's check
//     stage classifies it in order (pipeline.ts, receive.ts).
// One batch (up to BATCH datagrams) is published with one store of C_PRODUCED and C_READY; workers
// are woken if there is something to open, main if there is something it can act on now. A full
// ring is backpressure: the thread waits on C_FREED while the kernel's socket buffer holds what
// arrives meanwhile.
//
// Sockets: main owns them (src/io/bind.ts) and publishes their fds in CTL_UDP_FD4/FD6 with a
// generation (layout.ts); the reader re-reads them after every wake and acknowledges the
// generation it uses, so main closes a replaced socket only after the reader has left it.
// Stopping: CTL_SHUTDOWN plus a write to the wake eventfd.

import { parentPort, workerData } from 'node:worker_threads';
import { MESSAGE_TRANSPORT, MESSAGE_TRANSPORT_MIN_SIZE } from '../src/constants.js';
import { openSlots } from '../src/crypto/native-aead.js';
import { ReceiverIndexMap } from '../src/dataplane/indexmap.js';
import { KeyTable } from '../src/dataplane/keytable.js';
import {
  CTL_SHUTDOWN, CTL_UDP_FD4, CTL_UDP_FD6, CTL_UDP_GEN, CTL_UDP_GEN_SEEN, CTL_UDP_READER_WAITING, type DataplaneShared,
  M_COUNTER_HI, M_COUNTER_LO, M_KEYPAIR, M_LENGTH, M_RESULT, M_SEQ, M_STATE, META_WORDS, RING_RECV, STAT_UDP_READER,
  SlotState, U_BYTES, U_CALLS, U_DATAGRAMS, U_ERRORS, U_FAST, U_FULL_WAITS, U_INLINE_OPENED, U_TOO_BIG,
} from '../src/dataplane/layout.js';
import { RingView, ringMainBell, ringMainIfArmed, wakeWorkers } from '../src/dataplane/ring.js';
import { udpNative } from '../src/io/udp-native.js';

export interface UdpReaderData {
  shared: DataplaneShared;
  /** eventfd that interrupts a blocked recvSlots (main writes it on rebind and stop). */
  wakeFd: number;
  /** The receiver-index map (ReceiverIndexMap buffer). */
  indexMap: SharedArrayBuffer;
}

/** A batch with at most this many transport messages to open is opened here (latency); more go to the workers (throughput). */
const INLINE_OPEN_MAX = 2;

/** Most datagrams taken per recvSlots call (and published per C_PRODUCED store). */
const BATCH = 64;
/** poll() bound: the loop re-checks shutdown and the socket generation at least this often. */
const POLL_MS = 1000;

const wd = workerData as UdpReaderData;
const ctl = new Int32Array(wd.shared.control);
const stats = new Float64Array(wd.shared.stats);
const ring = new RingView(RING_RECV, ctl, wd.shared.rings[RING_RECV]!);
const native = udpNative();
const keys = KeyTable.attach(wd.shared.keys);
const indexMap = ReceiverIndexMap.attach(wd.indexMap);
const slotList = new Int32Array(BATCH);
const openList = new Int32Array(INLINE_OPEN_MAX);
const openOk = new Uint8Array(INLINE_OPEN_MAX);
const out = new Int32Array(8);

/**
 * Slot s holds a transport message whose receiver index the map knows: set its key id and counter
 * and return true; else false (main classifies it). Reads the header bytes at data[s*slotBytes, +16).
 */
function fastClassify(s: number, m: number): boolean {
  const { data, meta, slotBytes } = ring;
  const len = meta[m + M_LENGTH]!;
  const o = s * slotBytes;
  if (len < MESSAGE_TRANSPORT_MIN_SIZE || data[o] !== MESSAGE_TRANSPORT || data[o + 1] !== 0 || data[o + 2] !== 0 || data[o + 3] !== 0) return false;
  const keyId = indexMap.lookup(data[o + 4]! | (data[o + 5]! << 8) | (data[o + 6]! << 16) | (data[o + 7]! << 24));
  if (keyId < 0) return false;
  meta[m + M_KEYPAIR] = keyId;
  meta[m + M_COUNTER_LO] = data[o + 8]! | (data[o + 9]! << 8) | (data[o + 10]! << 16) | (data[o + 11]! << 24);
  meta[m + M_COUNTER_HI] = data[o + 12]! | (data[o + 13]! << 8) | (data[o + 14]! << 16) | (data[o + 15]! << 24);
  return true;
}

function routineReceive(): void {
  const { meta, data, mask, slotBytes } = ring;
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
    // Backpressure (the TUN writer, or main, notifies when it frees slots).
    const free = ring.room(seq, CTL_UDP_READER_WAITING, POLL_MS);
    if (free === 0) {
      stats[STAT_UDP_READER + U_FULL_WAITS]! += 1;
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
    let fast = 0;
    for (let i = 0; i < got; i++) {
      const s = slotList[i]!;
      const m = s * META_WORDS;
      bytes += meta[m + M_LENGTH]!;
      meta[m + M_RESULT] = 0;
      meta[m + M_SEQ] = (seq + i) | 0;
      // Not yet visible to anyone (C_READY is below it): plain stores; the state is the slot's verdict.
      if (fastClassify(s, m)) {
        meta[m + M_STATE] = SlotState.PENDING;
        if (fast < INLINE_OPEN_MAX) openList[fast] = s;
        fast++;
      } else {
        meta[m + M_STATE] = SlotState.FILLED;
      }
    }
    const inline = fast <= INLINE_OPEN_MAX;
    if (fast !== 0 && inline) {
      openSlots(data, slotBytes, meta, keys.bytes, openList, fast, openOk);
      for (let i = 0; i < fast; i++) meta[openList[i]! * META_WORDS + M_STATE] = openOk[i] === 1 ? SlotState.DONE : SlotState.FAILED;
      stats[STAT_UDP_READER + U_INLINE_OPENED]! += fast;
    }
    seq = (seq + got) | 0;
    Atomics.store(ctl, ring.iProduced, seq);
    Atomics.store(ctl, ring.iReady, seq); // publish (release): states and data above are visible with it
    stats[STAT_UDP_READER + U_DATAGRAMS]! += got;
    stats[STAT_UDP_READER + U_BYTES]! += bytes;
    stats[STAT_UDP_READER + U_CALLS]! += 1;
    stats[STAT_UDP_READER + U_FAST]! += fast;
    if (fast !== 0 && !inline) wakeWorkers(ctl, fast);
    // Main can act now on what is FILLED or opened here; PENDING slots ring it from the workers.
    if (inline || fast < got) ringMainIfArmed(ctl);
  }
}

parentPort?.postMessage({ type: 'ready' });
routineReceive();
