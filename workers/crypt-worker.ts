// Crypto worker thread (RoutineEncryption/RoutineDecryption in one loop): claims PENDING slots of
// the rings in batches (the send rings — each TUN queue's and LOCAL: seal; RECV ring: open), transforms a whole
// batch in place with one native call (native/aead.c: ChaCha20-Poly1305 through the OpenSSL Node
// links, one reused context), publishes each slot DONE or FAILED, and sleeps on the worker
// doorbell when no ring has claimable work. After sealing, it flushes the send ring
// (RoutineSequentialSender): sealed messages leave in ring order, straight from the slots, through
// the native sendSlots (sendmmsg; equal-sized runs to one endpoint as one UDP GSO message; the
// sticky source address from the slot's endpoint words), so main only accounts for them; what it
// cannot send (no socket named: main chose to send it; EAGAIN; any error) stays for main.
// Long-lived: started once per worker id by pipeline.ts, which replaces it (same id, same buffers)
// if it dies. Protocols: src/dataplane/ring.ts.
//
// workerData: CryptWorkerData (below). The crypto functions come from `cryptoModule` (default
// ../src/crypto/native-aead.js, batch functions sealSlots/openSlots); tests may substitute a module
// with per-packet sealTransport/openTransport instead, and an optional `init(data, workerId)`.

import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { AEAD_TAG_LEN, MESSAGE_TRANSPORT_HEADER_SIZE, MESSAGE_TRANSPORT_MIN_SIZE } from '../src/constants.js';
import { KeyTable } from '../src/dataplane/keytable.js';
import {
  CTL_SHUTDOWN, CTL_WORKER_BELL, CTL_WORKER_SLEEPERS, CW_BUSY_NS, CW_FAILED, CW_OPENED, CW_SEALED, CW_SEND_CALLS,
  CW_SEND_FALLBACKS, CW_SENT, CW_WAKEUPS, type DataplaneShared, M_COUNTER_HI, M_COUNTER_LO, M_KEYPAIR, M_LENGTH,
  M_RESULT, META_WORDS, RING_LOCAL, RING_RECV, SlotState, copyInnerHead, cryptingState, statWorker,
} from '../src/dataplane/layout.js';
import { RingView, ringMainBell, sendLockOwner, tunRingViews } from '../src/dataplane/ring.js';
import { udpNative } from '../src/io/udp-native.js';

export interface CryptWorkerData {
  shared: DataplaneShared;
  workerId: number;
  /** URL of the crypto module; undefined = src/crypto/native-aead.js. */
  cryptoModule?: string;
  cryptoModuleData?: unknown;
}

/** A crypto module: batch functions (native-aead.ts), or per-packet ones (transport.ts signatures). */
interface CryptoModule {
  sealSlots?(data: Uint8Array, slotBytes: number, meta: Int32Array, keys: Uint8Array, slots: Int32Array, n: number, ok: Uint8Array): number;
  openSlots?(data: Uint8Array, slotBytes: number, meta: Int32Array, keys: Uint8Array, slots: Int32Array, n: number, ok: Uint8Array): number;
  sealTransport?(key: Uint8Array, counterLo: number, counterHi: number, buf: Uint8Array, off: number, len: number): number;
  openTransport?(key: Uint8Array, counterLo: number, counterHi: number, buf: Uint8Array, off: number, len: number): number;
  init?(data: unknown, workerId: number): void | Promise<void>;
}

/**
 * Slots claimed and crypted per batch before looking at the next ring (fairness between
 * directions). Main, if it waits for one of them, is rung once at the end of the batch.
 */
const BATCH = 32;
/**
 * RECV ring: a ring owed to main (it sleeps waiting for a slot this worker opened) is deferred
 * while more of the ring is claimable, up to this many slots opened since (≈ 150 µs of work):
 * main then checks, and the TUN writer writes, larger batches, and main wakes less often. With
 * nothing more to claim it rings at once, so a lone packet (a ping) waits for nothing.
 */
const RECV_RING_DEFER = 128;
/** Slots opened since this worker first owed main a ring for the RECV ring (0: owes none). */
let recvOwed = 0;

/** Most slots one sendSlots call takes. */
const SEND_BATCH = 64;

const wd = workerData as CryptWorkerData;
const mod = (await import(wd.cryptoModule ?? '../src/crypto/native-aead.js')) as CryptoModule;
if (typeof mod.init === 'function') await mod.init(wd.cryptoModuleData, wd.workerId);
if (typeof mod.sealSlots !== 'function' && typeof mod.sealTransport !== 'function') throw new Error('crypto module has neither sealSlots nor sealTransport');
const native = udpNative();

const id = wd.workerId;
const ctl = new Int32Array(wd.shared.control);
const stats = new Float64Array(wd.shared.stats);
const keys = KeyTable.attach(wd.shared.keys);
const local = new RingView(RING_LOCAL, ctl, wd.shared.rings[RING_LOCAL]!);
const recv = new RingView(RING_RECV, ctl, wd.shared.rings[RING_RECV]!);
/** The send rings: every TUN queue's, then LOCAL. */
const sendRings = [...tunRingViews(ctl, wd.shared), local];
for (const ring of sendRings) ring.partner = recv; // ring.ts "sharing a wake-up"
/** The RECV ring's meta words as bytes: openStep copies each plaintext's inner header there. */
const recvMetaBytes = new Uint8Array(recv.meta.buffer, recv.meta.byteOffset, recv.meta.byteLength);
const crypting = cryptingState(id);
const row = statWorker(id);
const sleepWord = CTL_WORKER_SLEEPERS + (id >> 5);
const sleepBit = 1 << (id & 31);
const lockOwner = sendLockOwner(id);

/**
 * Batch crypt of one ring: transform the claimed slots list[0, n) in place, write meta[M_RESULT]
 * of each, and set ok[i] to 1 (DONE) or 0 (FAILED). The native module does a whole batch in one
 * call (one reused OpenSSL context); a module with per-packet functions is adapted slot by slot.
 */
type CryptBatch = (ring: RingView, list: Int32Array, n: number, ok: Uint8Array) => void;

const sealBatch: CryptBatch = typeof mod.sealSlots === 'function'
  ? (ring, list, n, ok) => { mod.sealSlots!(ring.data, ring.slotBytes, ring.meta, keys.bytes, list, n, ok); }
  : (ring, list, n, ok) => { for (let i = 0; i < n; i++) ok[i] = sealStep(ring, list[i]!, list[i]! * META_WORDS) ? 1 : 0; };
const openBatch: CryptBatch = typeof mod.openSlots === 'function'
  ? (ring, list, n, ok) => { mod.openSlots!(ring.data, ring.slotBytes, ring.meta, keys.bytes, list, n, ok); }
  : (ring, list, n, ok) => { for (let i = 0; i < n; i++) ok[i] = openStep(ring, list[i]!, list[i]! * META_WORDS) ? 1 : 0; };

/** Per-packet seal (modules without sealSlots): plaintext at data[16, 16+len) → message at data[0, 16+len+16). */
function sealStep(ring: RingView, s: number, m: number): boolean {
  const meta = ring.meta;
  const len = meta[m + M_LENGTH]!;
  const kp = meta[m + M_KEYPAIR]!;
  const maxPlain = ring.slotBytes - MESSAGE_TRANSPORT_HEADER_SIZE - AEAD_TAG_LEN;
  if (!(len >= 0 && len <= maxPlain && kp >= 0 && kp < keys.capacity)) return false;
  try {
    const out = mod.sealTransport!(
      keys.sendKey(kp), meta[m + M_COUNTER_LO]!, meta[m + M_COUNTER_HI]!,
      ring.data, s * ring.slotBytes + MESSAGE_TRANSPORT_HEADER_SIZE, len,
    );
    meta[m + M_RESULT] = MESSAGE_TRANSPORT_HEADER_SIZE + out;
    return true;
  } catch {
    return false; // counted as FAILED; the slot's bytes are not sent
  }
}

/** Per-packet open (modules without openSlots): datagram at data[0, len) → plaintext at data[16, 16+len−32). */
function openStep(ring: RingView, s: number, m: number): boolean {
  const meta = ring.meta;
  const len = meta[m + M_LENGTH]!;
  const kp = meta[m + M_KEYPAIR]!;
  if (!(len >= MESSAGE_TRANSPORT_MIN_SIZE && len <= ring.slotBytes && kp >= 0 && kp < keys.capacity)) return false;
  try {
    const out = mod.openTransport!(
      keys.recvKey(kp), meta[m + M_COUNTER_LO]!, meta[m + M_COUNTER_HI]!,
      ring.data, s * ring.slotBytes + MESSAGE_TRANSPORT_HEADER_SIZE, len - MESSAGE_TRANSPORT_HEADER_SIZE,
    );
    if (out < 0) return false; // FAILED
    copyInnerHead(ring.data, s * ring.slotBytes + MESSAGE_TRANSPORT_HEADER_SIZE, out, recvMetaBytes, m);
    meta[m + M_RESULT] = out;
    return true;
  } catch {
    return false; // FAILED
  }
}

// Flush scratch: the slots one sendSlots call sends.
const sendList = new Int32Array(SEND_BATCH);
const sendOut = new Int32Array(8);

/** One batch of the send flush (ring.ts flushSends): sendmmsg of list[0, n) on `fd`; returns how many went. */
function sendBatch(ring: RingView, fd: number, list: Int32Array, n: number): number {
  const sent = native.sendSlots(fd, fd, ring.data, ring.slotBytes, ring.meta, list, n, true, sendOut);
  stats[row + CW_SEND_CALLS]! += 1;
  stats[row + CW_SENT]! += sent;
  if (sent < n) stats[row + CW_SEND_FALLBACKS]! += 1;
  return sent;
}

// Crypt scratch: the slots one batch claimed, and their results.
const cryptList = new Int32Array(BATCH);
const cryptOk = new Uint8Array(BATCH);

/**
 * One batch of one ring: claim up to BATCH slots, crypt them with one `crypt` call, publish each
 * DONE or FAILED in claim order, count them (`doneStat`: CW_SEALED or CW_OPENED; failures
 * CW_FAILED), flush the send ring, and ring main if it waits for one of them. Returns the number
 * of slots processed.
 */
function cryptSome(ring: RingView, crypt: CryptBatch, doneStat: number): number {
  let n = 0;
  while (n < BATCH) {
    const s = ring.claim(crypting);
    if (s < 0) break;
    cryptList[n++] = s;
  }
  if (n === 0) {
    if (ring.id === RING_RECV && recvOwed !== 0) { // another worker took what was left
      recvOwed = 0;
      ringMainBell(ctl);
    }
    return 0;
  }
  crypt(ring, cryptList, n, cryptOk);
  // A send ring's flush lock is taken before the results are published: otherwise main, awake and
  // draining, finds the slots DONE before this worker's flush and sends them itself, one sendto
  // each (4–31 % of all packets on the 2-vCPU host, bench/mainthread.ts). If another flusher holds
  // it, the results are published all the same and that holder's re-check sends them.
  const send = ring.id !== RING_RECV;
  const locked = send && ring.tryLockSend(lockOwner);
  let owes = false;
  let done = 0;
  for (let i = 0; i < n; i++) {
    const ok = cryptOk[i] === 1;
    if (ok) done++;
    if (ring.finish(cryptList[i]!, ok ? SlotState.DONE : SlotState.FAILED)) owes = true;
  }
  stats[row + doneStat]! += done;
  stats[row + CW_FAILED]! += n - done;
  // Send what this ring has finished, in order (ring.ts "send flush"). For a send ring the flush
  // alone decides whether main is owed a ring (ring.ts "TUN ring wake-ups"): when a slot is main's
  // to send (fd −1, a failed send), or when main sleeps and is wanted to route or release.
  if (send) owes = !ring.flushSends(lockOwner, sendList, sendBatch, locked);
  else if (owes || recvOwed !== 0) {
    recvOwed += n;
    owes = recvOwed >= RECV_RING_DEFER || !ring.claimable();
    if (owes) recvOwed = 0;
  }
  if (owes) ringMainBell(ctl);
  return n;
}

function anyWork(): boolean {
  return recv.claimable() || sendRings.some((ring) => ring.claimable());
}

function routineCrypt(): void {
  for (;;) {
    let t0 = performance.now();
    for (;;) {
      if (Atomics.load(ctl, CTL_SHUTDOWN) !== 0) return;
      let n = 0;
      for (const ring of sendRings) n += cryptSome(ring, sealBatch, CW_SEALED);
      n += cryptSome(recv, openBatch, CW_OPENED);
      if (n === 0) break;
      const t1 = performance.now(); // account per round, so a worker that never sleeps still reports
      stats[row + CW_BUSY_NS]! += (t1 - t0) * 1e6;
      t0 = t1;
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
