// Crypto worker thread (RoutineEncryption/RoutineDecryption in one loop): claims PENDING slots of
// the three rings (TUN and LOCAL send rings: seal; RECV ring: open), transforms them in place
// with sealTransport/openTransport, publishes DONE or FAILED, and sleeps on the worker doorbell
// when no ring has claimable work. Long-lived: started once per worker id by pipeline.ts, which
// replaces it (same id, same buffers) if it dies. Protocols: src/dataplane/ring.ts.
//
// workerData: CryptWorkerData (below). The crypto functions come from `cryptoModule` (default
// ../src/crypto/transport.js); tests may substitute a module with the same two exports and an
// optional `init(data, workerId)`.

import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { AEAD_TAG_LEN, MESSAGE_TRANSPORT_HEADER_SIZE, MESSAGE_TRANSPORT_MIN_SIZE } from '../src/constants.js';
import { KeyTable } from '../src/dataplane/keytable.js';
import {
  CTL_SHUTDOWN, CTL_WORKER_BELL, CTL_WORKER_SLEEPERS, CW_BUSY_NS, CW_FAILED, CW_OPENED, CW_SEALED, CW_WAKEUPS,
  type DataplaneShared, M_COUNTER_HI, M_COUNTER_LO, M_KEYPAIR, M_LENGTH, M_RESULT, META_WORDS, RING_LOCAL, RING_RECV,
  RING_TUN, SlotState, cryptingState, statWorker,
} from '../src/dataplane/layout.js';
import { RingView, ringMainBell } from '../src/dataplane/ring.js';

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
    if (ring.finish(s, state) && owed < 0) owed = n;
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
