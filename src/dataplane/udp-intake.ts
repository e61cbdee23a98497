// Stage 1 of the RECV ring, one batch at a time: the rules for what a received datagram becomes,
// shared by whichever thread reads the UDP sockets (src/dataplane/intake.ts: the UDP reader thread
// under load, the main thread at idle). The native recvSlots (poll on the IPv4 and IPv6 sockets,
// then recvmmsg, UDP_GRO super-datagrams split) puts each datagram straight into the next free
// RECV slot: bytes at data[0, len), the sender's address and the local address it was sent to in
// the slot's endpoint words. Then, per datagram:
//   - a transport message whose receiver index is in the shared index map (indexmap.ts, mirrored
//     by main for every installed keypair) gets its key id and counter in the slot and is PENDING
//     for the crypto workers — or, when the batch holds at most INLINE_OPEN_MAX of them, is opened
//     right here in one native call (DONE / FAILED): a lone packet then reaches main's check
//     stage without a crypto worker;
//   - anything else (handshake messages, unknown indices, malformed) stays FILLED: main's check
//     stage classifies it in order (pipeline.ts, receive.ts).
// One batch is published with one store of C_PRODUCED and C_READY; workers are woken if there is
// something for them to open, main if it sleeps and there is something it can act on now.
import { MESSAGE_TRANSPORT, MESSAGE_TRANSPORT_MIN_SIZE } from '../constants.js';
import { openSlots } from '../crypto/native-aead.js';
import { RECV_OUT_ERRORS, RECV_OUT_PENDING, RECV_OUT_TOO_BIG, type UdpNative } from '../io/udp-native.js';
import { type ReceiverIndexMap } from './indexmap.js';
import { type KeyTable } from './keytable.js';
import {
  M_COUNTER_HI, M_COUNTER_LO, M_KEYPAIR, M_LENGTH, M_RECEIVER, M_RESULT, M_SEQ, M_STATE, META_WORDS, STAT_UDP_READER, SlotState,
  U_BYTES, U_CALLS, U_DATAGRAMS, U_ERRORS, U_FAST, U_INLINE_OPENED, U_TOO_BIG,
} from './layout.js';
import { type RingView, ringMainIfArmed, wakeWorkers } from './ring.js';

/** A batch with at most this many transport messages to open is opened here (latency); more go to the workers (throughput). */
export const INLINE_OPEN_MAX = 2;
/** Most datagrams taken per recvSlots call (and published per C_PRODUCED store). */
export const UDP_INTAKE_BATCH = 64;

export class UdpIntake {
  /** The slots of the current receive, and what it reported (also the idle hook's: idle-lease.ts). */
  readonly slotList = new Int32Array(UDP_INTAKE_BATCH);
  readonly out = new Int32Array(8);
  private readonly openList = new Int32Array(INLINE_OPEN_MAX);
  private readonly openOk = new Uint8Array(INLINE_OPEN_MAX);
  private lastLoad = 0;

  constructor(
    private readonly ring: RingView,
    private readonly keys: KeyTable,
    private readonly indexMap: ReceiverIndexMap,
    private readonly stats: Float64Array,
    private readonly native: UdpNative,
  ) {}

  /**
   * Datagrams this thread's addon instance holds for its next call (the rest of a GRO
   * super-datagram that did not fit). Whoever reads next must be this thread.
   */
  get pending(): number {
    return this.out[RECV_OUT_PENDING]!;
  }

  /** Of the datagrams the last receive published, the transport messages to open (the rest are main's: intake.ts Idleness). */
  get load(): number {
    return this.lastLoad;
  }

  /**
   * Receive (waiting up to timeoutMs for the sockets or wakeFd) at most `max` datagrams into the
   * slots from `seq` on, which the caller owns (free, and it is the RECV ring's only producer);
   * process and publish them. Returns how many were published (0: none).
   */
  receive(fd4: number, fd6: number, wakeFd: number, timeoutMs: number, seq: number, max: number): number {
    const { ring, out, slotList } = this;
    const n = Math.min(max, UDP_INTAKE_BATCH);
    for (let i = 0; i < n; i++) slotList[i] = (seq + i) & ring.mask;
    out.fill(0);
    return this.publish(seq, this.native.recvSlots(fd4, fd6, wakeFd, timeoutMs, ring.data, ring.slotBytes, ring.meta, slotList, n, out));
  }

  /**
   * The rest of a receive that filled `got` slots of slotList from `seq` on and reported in `out`:
   * key, open or leave for main, and publish them. Also what main does with a receive the idle hook
   * made and left to it (idle-lease.ts IL_UDP_ADOPT).
   */
  publish(seq: number, got: number): number {
    const { ring, stats, out, slotList } = this;
    const { meta, data, slotBytes } = ring;
    stats[STAT_UDP_READER + U_TOO_BIG]! += out[RECV_OUT_TOO_BIG]!;
    stats[STAT_UDP_READER + U_ERRORS]! += out[RECV_OUT_ERRORS]!;
    this.lastLoad = 0;
    if (got <= 0) return 0;
    let bytes = 0;
    let fast = 0;
    for (let i = 0; i < got; i++) {
      const s = slotList[i]!;
      const m = s * META_WORDS;
      bytes += meta[m + M_LENGTH]!;
      meta[m + M_RESULT] = 0;
      meta[m + M_SEQ] = (seq + i) | 0;
      // Not yet visible to anyone (C_READY is below it): plain stores; the state is the slot's verdict.
      if (this.key(s, m)) {
        meta[m + M_STATE] = SlotState.PENDING;
        if (fast < INLINE_OPEN_MAX) this.openList[fast] = s;
        fast++;
      } else {
        meta[m + M_STATE] = SlotState.FILLED;
      }
    }
    const inline = fast <= INLINE_OPEN_MAX;
    if (fast !== 0 && inline) {
      openSlots(data, slotBytes, meta, this.keys.bytes, this.openList, fast, this.openOk);
      for (let i = 0; i < fast; i++) meta[this.openList[i]! * META_WORDS + M_STATE] = this.openOk[i] === 1 ? SlotState.DONE : SlotState.FAILED;
      stats[STAT_UDP_READER + U_INLINE_OPENED]! += fast;
    }
    this.lastLoad = fast;
    const next = (seq + got) | 0;
    Atomics.store(ring.ctl, ring.iProduced, next);
    Atomics.store(ring.ctl, ring.iReady, next); // publish (release): states and data above are visible with it
    stats[STAT_UDP_READER + U_DATAGRAMS]! += got;
    stats[STAT_UDP_READER + U_BYTES]! += bytes;
    stats[STAT_UDP_READER + U_CALLS]! += 1;
    stats[STAT_UDP_READER + U_FAST]! += fast;
    if (fast !== 0 && !inline) wakeWorkers(ring.ctl, fast);
    // Main can act now on what is FILLED or opened here (PENDING slots ring it from the workers),
    // unless it is about to be woken for the TUN ring's sends anyway (ring.ts "sharing a wake-up").
    if ((inline || fast < got) && !(ring.partner?.sendsInFlight() ?? false)) ringMainIfArmed(ring.ctl);
    return got;
  }

  /**
   * Slot s holds a transport message whose receiver index the map knows: set its key id and counter
   * and return true; else false (main classifies it). Reads the header bytes at data[s*slotBytes, +16).
   */
  private key(s: number, m: number): boolean {
    const { data, meta, slotBytes } = this.ring;
    const len = meta[m + M_LENGTH]!;
    const o = s * slotBytes;
    if (len < MESSAGE_TRANSPORT_MIN_SIZE || data[o] !== MESSAGE_TRANSPORT || data[o + 1] !== 0 || data[o + 2] !== 0 || data[o + 3] !== 0) return false;
    const receiver = data[o + 4]! | (data[o + 5]! << 8) | (data[o + 6]! << 16) | (data[o + 7]! << 24);
    const keyId = this.indexMap.lookup(receiver);
    if (keyId < 0) return false;
    meta[m + M_KEYPAIR] = keyId;
    meta[m + M_RECEIVER] = receiver;
    meta[m + M_COUNTER_LO] = data[o + 8]! | (data[o + 9]! << 8) | (data[o + 10]! << 16) | (data[o + 11]! << 24);
    meta[m + M_COUNTER_HI] = data[o + 12]! | (data[o + 13]! << 8) | (data[o + 14]! << 16) | (data[o + 15]! << 24);
    return true;
  }
}
