// Crypto worker thread (RoutineEncryption/RoutineDecryption in one loop): claims PENDING slots of
// the three rings (TUN and LOCAL send rings: seal; RECV ring: open), transforms them in place
// with sealTransport/openTransport, publishes DONE or FAILED, and sleeps on the worker doorbell
// when no ring has claimable work. After sealing, it flushes the send ring (RoutineSequentialSender):
// sealed messages are written, in ring order, to the peer's connected UDP socket straight from
// the slot (fs.writeSync on the socket's fd, one datagram per write), so main only accounts for
// them; what it cannot write (no fd: main chose to send it, or no connected socket yet; EAGAIN;
// any error) stays for main to send through dgram. Long-lived: started once per worker id by
// pipeline.ts, which replaces it (same id, same buffers) if it dies. Protocols: src/dataplane/ring.ts.
//
// workerData: CryptWorkerData (below). The crypto functions come from `cryptoModule` (default
// ../src/crypto/transport.js); tests may substitute a module with the same two exports and an
// optional `init(data, workerId)`.

import fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { AEAD_TAG_LEN, MESSAGE_TRANSPORT_HEADER_SIZE, MESSAGE_TRANSPORT_MIN_SIZE } from '../src/constants.js';
import { KeyTable } from '../src/dataplane/keytable.js';
import {
  CTL_SHUTDOWN, CTL_WORKER_BELL, CTL_WORKER_SLEEPERS, CW_BUSY_NS, CW_FAILED, CW_OPENED, CW_SEALED, CW_SEND_FALLBACKS,
  CW_SENT, CW_WAKEUPS, type DataplaneShared, M_COUNTER_HI, M_COUNTER_LO, M_FD, M_KEYPAIR, M_LENGTH, M_RESULT, M_STATE,
  META_WORDS, RING_LOCAL, RING_RECV,
  RING_TUN, SlotState, cryptingState, statWorker,
} from '../src/dataplane/layout.js';
import { RingView, ringMainBell, sendLockOwner } from '../src/dataplane/ring.js';

export interface CryptWorkerData {
  shared: DataplaneShared;
  workerId: number;
  /** URL of the module exporting sealTransport/openTransport; undefined = the project's transport.ts. */
  cryptoModule?: string;
  cryptoModuleData?: unknown;
  /** Idle checks before sleeping (0 = sleep at once; spinning trades CPU for wake-up latency). */
  spin: number;
}

type Transport = typeof import('../src/crypto/transport.js');
interface CryptoModule extends Transport {
  init?(data: unknown, workerId: number): void | Promise<void>;
}

/** Slots processed per ring before looking at the next ring (fairness between directions). */
const BATCH = 32;
/**
 * A ring owed to main (it waits for a slot we finished) is paid after at most this many further
 * slots, or when the batch ends: main then wakes once per several packets instead of once per
 * packet while it chases a busy worker. Bounds the added latency to RING_DEFER seals (~0.1 ms).
 */
const RING_DEFER = 16;

const wd = workerData as CryptWorkerData;
const mod = (await import(wd.cryptoModule ?? '../src/crypto/transport.js')) as CryptoModule;
if (typeof mod.init === 'function') await mod.init(wd.cryptoModuleData, wd.workerId);
const sealTransport = mod.sealTransport;
const openTransport = mod.openTransport;

const id = wd.workerId;
const ctl = new Int32Array(wd.shared.control);
const stats = new Float64Array(wd.shared.stats);
const keys = KeyTable.attach(wd.shared.keys);
const tun = new RingView(RING_TUN, ctl, wd.shared.rings[RING_TUN]!);
const local = new RingView(RING_LOCAL, ctl, wd.shared.rings[RING_LOCAL]!);
const recv = new RingView(RING_RECV, ctl, wd.shared.rings[RING_RECV]!);
const crypting = cryptingState(id);
const row = statWorker(id);
const sleepWord = CTL_WORKER_SLEEPERS + (id >> 5);
const sleepBit = 1 << (id & 31);
const spin = wd.spin;
const lockOwner = sendLockOwner(id);

/**
 * The per-ring crypt step: transform claimed slot s (meta words from m) in place, write
 * meta[M_RESULT], and return true (DONE) or false (FAILED). Module-level functions, so passing
 * one to cryptSome() allocates nothing.
 */
type CryptStep = (ring: RingView, s: number, m: number) => boolean;

/** Seal (TUN and LOCAL rings): plaintext at data[16, 16+len) → message at data[0, 16+len+16). */
function sealStep(ring: RingView, s: number, m: number): boolean {
  const meta = ring.meta;
  const len = meta[m + M_LENGTH]!;
  const kp = meta[m + M_KEYPAIR]!;
  const maxPlain = ring.slotBytes - MESSAGE_TRANSPORT_HEADER_SIZE - AEAD_TAG_LEN;
  if (!(len >= 0 && len <= maxPlain && kp >= 0 && kp < keys.capacity)) return false;
  try {
    const out = sealTransport(
      keys.sendKey(kp), meta[m + M_COUNTER_LO]!, meta[m + M_COUNTER_HI]!,
      ring.data, s * ring.slotBytes + MESSAGE_TRANSPORT_HEADER_SIZE, len,
    );
    meta[m + M_RESULT] = MESSAGE_TRANSPORT_HEADER_SIZE + out;
    return true;
  } catch {
    return false; // counted as FAILED; the slot's bytes are not sent
  }
}

/** Open (RECV ring): datagram at data[0, len) → plaintext at data[16, 16+len−32). */
function openStep(ring: RingView, s: number, m: number): boolean {
  const meta = ring.meta;
  const len = meta[m + M_LENGTH]!;
  const kp = meta[m + M_KEYPAIR]!;
  if (!(len >= MESSAGE_TRANSPORT_MIN_SIZE && len <= ring.slotBytes && kp >= 0 && kp < keys.capacity)) return false;
  try {
    const out = openTransport(
      keys.recvKey(kp), meta[m + M_COUNTER_LO]!, meta[m + M_COUNTER_HI]!,
      ring.data, s * ring.slotBytes + MESSAGE_TRANSPORT_HEADER_SIZE, len - MESSAGE_TRANSPORT_HEADER_SIZE,
    );
    if (out < 0) return false; // FAILED
    meta[m + M_RESULT] = out;
    return true;
  } catch {
    return false; // FAILED
  }
}

/**
 * Write the sealed message of slot s to its connected socket. ECONNREFUSED is a previous
 * datagram's ICMP error reported on this send (which then did not go out): one retry. False on
 * any other failure (EAGAIN when the socket buffer is full, a socket main is replacing, …).
 */
function writeSealed(ring: RingView, s: number, fd: number, len: number): boolean {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      return fs.writeSync(fd, ring.data, s * ring.slotBytes, len, null) === len;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ECONNREFUSED') return false;
    }
  }
  return false;
}

/**
 * Send-ring flush (protocol: ring.ts "send flush"): under the ring's flush lock, write every
 * finished slot from C_SENT on, in order, until one is still being sealed or cannot be written
 * here: no fd (main chose to send it, and is woken for it like for any finished head slot, see
 * cryptSome) or a failed write (main must take over now: we ring it). Never blocks.
 */
function flushSends(ring: RingView): void {
  const meta = ring.meta;
  for (;;) {
    if (!ring.tryLockSend(lockOwner)) return; // the holder re-checks after unlocking
    let seq = Atomics.load(ctl, ring.iSent);
    const ready = Atomics.load(ctl, ring.iReady);
    let failed = false;
    while (seq !== ready) {
      const s = seq & ring.mask;
      const m = s * META_WORDS;
      const st = Atomics.load(meta, m + M_STATE);
      if (st === SlotState.DONE) {
        const fd = meta[m + M_FD]!;
        if (fd < 0) break; // main sends it
        if (!writeSealed(ring, s, fd, meta[m + M_RESULT]!)) {
          stats[row + CW_SEND_FALLBACKS]! += 1;
          meta[m + M_FD] = -1; // main's now: later flushers stop here without trying again
          failed = true;
          break;
        }
        stats[row + CW_SENT]! += 1;
        Atomics.store(meta, m + M_STATE, SlotState.SENT);
      } else if (st !== SlotState.FAILED && st !== SlotState.DEAD && st !== SlotState.SKIP) {
        break; // still PENDING or being sealed, or HELD by main
      }
      seq = (seq + 1) | 0;
    }
    ring.unlockSend(seq);
    if (failed) {
      ringMainBell(ctl);
      return;
    }
    // Re-check the slot now at C_SENT: flushable by us (a racer finished it while we held the lock)?
    const head = Atomics.load(ctl, ring.iSent);
    if (head === Atomics.load(ctl, ring.iReady)) return;
    const hm = (head & ring.mask) * META_WORDS;
    const st = Atomics.load(meta, hm + M_STATE);
    if (st === SlotState.DONE ? meta[hm + M_FD]! < 0 : st !== SlotState.FAILED && st !== SlotState.DEAD && st !== SlotState.SKIP) return;
  }
}

/**
 * Up to BATCH slots of one ring: claim, crypt in place with `step`, publish DONE or FAILED,
 * count it (`doneStat`: CW_SEALED or CW_OPENED; failures CW_FAILED), and pay main's doorbell
 * when owed (deferred by up to RING_DEFER slots). Returns the number of slots processed.
 */
function cryptSome(ring: RingView, step: CryptStep, doneStat: number): number {
  let n = 0;
  let owed = -1; // n at which main's ring became owed
  while (n < BATCH) {
    if (owed >= 0 && n - owed >= RING_DEFER) {
      ringMainBell(ctl);
      owed = -1;
    }
    const s = ring.claim(crypting);
    if (s < 0) break;
    const state: number = step(ring, s, s * META_WORDS) ? SlotState.DONE : SlotState.FAILED;
    stats[row + (state === SlotState.DONE ? doneStat : CW_FAILED)]! += 1;
    const owes = ring.finish(s, state);
    if (ring.id !== RING_RECV) flushSends(ring); // before any ring of main: it then finds the slot sent
    if (owes && owed < 0) owed = n;
    n++;
  }
  if (owed >= 0) ringMainBell(ctl);
  return n;
}

function anyWork(): boolean {
  return tun.claimable() || local.claimable() || recv.claimable();
}

function routineCrypt(): void {
  for (;;) {
    let t0 = performance.now();
    for (;;) {
      if (Atomics.load(ctl, CTL_SHUTDOWN) !== 0) return;
      const n = cryptSome(tun, sealStep, CW_SEALED) + cryptSome(local, sealStep, CW_SEALED)
        + cryptSome(recv, openStep, CW_OPENED);
      if (n !== 0) {
        const t1 = performance.now(); // account per round, so a worker that never sleeps still reports
        stats[row + CW_BUSY_NS]! += (t1 - t0) * 1e6;
        t0 = t1;
        continue;
      }
      let found = false;
      for (let i = 0; i < spin && !found; i++) found = anyWork();
      if (!found) break;
    }
    stats[row + CW_BUSY_NS]! += (performance.now() - t0) * 1e6;
    // Sleep: announce, read the bell, re-check, wait on the value read (no lost wake-up: ring.ts).
    Atomics.or(ctl, sleepWord, sleepBit);
    const bell = Atomics.load(ctl, CTL_WORKER_BELL);
    if (!anyWork() && Atomics.load(ctl, CTL_SHUTDOWN) === 0) {
      Atomics.wait(ctl, CTL_WORKER_BELL, bell);
      stats[row + CW_WAKEUPS]! += 1;
    }
    Atomics.and(ctl, sleepWord, ~sleepBit);
  }
}

parentPort?.postMessage({ type: 'ready', workerId: id });
routineCrypt();
