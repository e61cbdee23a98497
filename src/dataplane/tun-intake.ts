// Stage 1 of the TUN send ring, one batch at a time, shared by whichever thread reads the TUN
// device (src/dataplane/intake.ts: the TUN reader thread under load, the main thread at idle).
// The native readSlots (poll on the TUN fd and a wake eventfd, then non-blocking reads until
// EAGAIN) puts each inner IP packet straight into the next free slot's data area at offset 16
// (room for the transport header in front). With IFF_VNET_HDR the kernel hands over TCP (and
// UDP) GSO super-packets of up to 64 KiB; readSlots splits them into MTU-sized packets with their
// headers and checksums fixed up, one per slot, so one read() feeds dozens of slots (segments
// that found no slot stay in this thread's addon state and go first next time: `pending`).
// A batch is published with one Atomics store of C_PRODUCED (slots FILLED) and at most one ring
// of main's bell (if it sleeps and is wanted soon: ring.ts "TUN ring wake-ups"). The interface MTU is read once per batch and published in
// CTL_TUN_MTU before the batch, so an `ip link set mtu` applies from the next packet read.
import { TUN_READ_OUT, TUN_READ_OUT_LEN, type TunNative } from '../io/tun.js';
import {
  CTL_TUN_MTU, M_RESULT, M_SEQ, M_STATE, META_WORDS, R_BYTES, R_PACKETS, R_READS, R_SUPER, R_TOO_BIG, R_TRANSIENT_ERRORS, SlotState,
} from './layout.js';
import { type RingView, ringMainBell } from './ring.js';

/** Most slots one readSlots call fills (a 64 KiB super-packet at MSS 1380 is 48 segments). */
export const TUN_INTAKE_BATCH = 128;

export class TunIntake {
  /** The slots of the current read, and what it reported (also the idle hook's: idle-lease.ts). */
  readonly slotList = new Int32Array(TUN_INTAKE_BATCH);
  readonly out = new Int32Array(TUN_READ_OUT_LEN);

  constructor(
    private readonly ring: RingView,
    private readonly stats: Float64Array,
    private readonly native: TunNative,
    private readonly fd: number,
    /** Interface name whose MTU is published per batch ('' = don't). */
    private readonly name: string,
    private readonly vnetHdr: boolean,
    /** The stats row of this queue's reader (layout.ts statReader). */
    private readonly row: number,
  ) {}

  /** Segments of a super-packet this thread's addon instance holds for its next call. Whoever reads next must be this thread. */
  get pending(): number {
    return this.out[TUN_READ_OUT.PENDING]!;
  }

  /** Publish the interface's MTU now (CTL_TUN_MTU): main pads what is read after it to at most this. */
  publishMtu(): void {
    if (this.name === '') return;
    try {
      Atomics.store(this.ring.ctl, CTL_TUN_MTU, this.native.getMtu(this.name));
    } catch { /* the link is going away: the next read says so */ }
  }

  /**
   * Read (waiting up to timeoutMs for the device or wakeFd) at most `max` packets into the slots
   * from `seq` on, which the caller owns; publish them. Returns how many were published, or a
   * negative value when the device is gone (TUN_READ_EOF, or -errno).
   */
  read(wakeFd: number, timeoutMs: number, seq: number, max: number): number {
    const { ring, out, slotList } = this;
    const n = Math.min(max, TUN_INTAKE_BATCH);
    for (let i = 0; i < n; i++) slotList[i] = (seq + i) & ring.mask;
    out.fill(0);
    return this.publish(seq, this.native.readSlots(this.fd, wakeFd, this.vnetHdr, ring.data, ring.slotBytes, ring.meta, slotList, n, timeoutMs, out));
  }

  /**
   * The rest of a read that filled `got` slots of slotList from `seq` on (or failed: got < 0) and
   * reported in `out`: count it, publish the MTU and the slots. Also what main does with a read the
   * idle hook made and left to it (idle-lease.ts IL_TUN_ADOPT).
   */
  publish(seq: number, got: number): number {
    const { ring, stats, out, slotList, row } = this;
    const meta = ring.meta;
    stats[row + R_READS]! += out[TUN_READ_OUT.READS]!;
    stats[row + R_SUPER]! += out[TUN_READ_OUT.SUPER]!;
    stats[row + R_TOO_BIG]! += out[TUN_READ_OUT.TOO_BIG]! + out[TUN_READ_OUT.MALFORMED]!;
    stats[row + R_TRANSIENT_ERRORS]! += out[TUN_READ_OUT.TRANSIENT]!;
    // Any read, even one that only dropped a packet too big for the slots (the MTU just grew: main
    // then rebuilds the rings), publishes the MTU before what it read.
    if (out[TUN_READ_OUT.READS]! > 0) this.publishMtu();
    if (got <= 0) return got;
    for (let i = 0; i < got; i++) {
      const m = slotList[i]! * META_WORDS;
      meta[m + M_RESULT] = 0;
      meta[m + M_SEQ] = (seq + i) | 0;
      Atomics.store(meta, m + M_STATE, SlotState.FILLED);
    }
    Atomics.store(ring.ctl, ring.iProduced, (seq + got) | 0); // publish (release)
    stats[row + R_PACKETS]! += got;
    stats[row + R_BYTES]! += out[TUN_READ_OUT.BYTES]!;
    if (ring.tunMainWanted()) ringMainBell(ring.ctl); // lazily: ring.ts "TUN ring wake-ups"
    return got;
  }
}
