// Benchmark: slots/s through the TUN send ring (test mode: main injects packets as the TUN reader
// would, route() writes header/padding/counter, workers seal with the real sealTransport,
// onSealed() counts) with 1 and 2 crypto workers at 1420 and 64 bytes, plus a null-crypto row per
// worker count that shows the ring's own ceiling. The ring is kept full: main refills whenever the
// release stage freed slots. ~10 s in total. Run: node dist/bench/ring.js [seconds-per-row]
//
// Columns: pps; main µs/pkt = main event-loop active time per packet (injection, route, release,
// wake-ups: everything main does here); wakes/kpkt = main doorbell wake-ups per 1000 packets;
// notifies/kpkt = times main had to notify a sleeping worker; worker µs/pkt = crypto workers'
// busy wall time per packet (all workers together).

import { performance } from 'node:perf_hooks';
import { CW_BUSY_NS, MAIN_WAKEUPS, MAIN_WORKER_NOTIFIES, MAX_WORKERS, STAT_MAIN, statWorker } from '../src/dataplane/layout.js';
import { Pipeline, RING_TUN } from '../src/dataplane/pipeline.js';

const NULL_CRYPTO = 'data:text/javascript,' + encodeURIComponent(`
  export function sealTransport(key, lo, hi, buf, off, len) { return len + 16; }
  export function openTransport(key, lo, hi, buf, off, len) { return len - 16; }`);

interface Row {
  name: string;
  pps: number;
  mainUs: number;
  wakes: number;
  notifies: number;
  workerUs: number;
}

async function run(workers: number, size: number, seconds: number, nullCrypto: boolean): Promise<Row> {
  let sealed = 0;
  let bad = 0;
  let waiter: (() => void) | null = null;
  let scheduled = false;
  const wake = (): void => {
    if (scheduled || waiter === null) return;
    scheduled = true;
    queueMicrotask(() => { // after the drain that called onSealed has updated the cursors
      scheduled = false;
      const w = waiter;
      waiter = null;
      w?.();
    });
  };
  let counter = 0;
  const p = await Pipeline.start({ workers, tunFd: null, cryptoModule: nullCrypto ? NULL_CRYPTO : undefined }, {
    route(_slot, data, len, meta) {
      const padded = (len + 15) & ~15;
      data.fill(0, 16 + len, 16 + padded);
      const c = counter++;
      data[0] = 4;
      data[8] = c & 0xff; data[9] = (c >>> 8) & 0xff; data[10] = (c >>> 16) & 0xff; data[11] = (c >>> 24) & 0xff;
      meta.setSeal(padded, 0, c, 0, 0);
      return true;
    },
    onSealed(_slot, _data, _msgLen, ok) {
      sealed++;
      if (!ok) bad++;
      wake();
    },
    onOpened: () => -1,
    onTunGone: () => {},
    onWorkerError: (id, err) => { console.error(`worker ${id}:`, err); },
  });
  const kp = p.keys.allocate();
  p.keys.setKeys(kp, new Uint8Array(32).fill(1), new Uint8Array(32).fill(2));
  const pkt = new Uint8Array(size).fill(0xab);
  pkt[0] = 0x45;

  const fill = (): void => {
    for (;;) {
      const s = p.reserveTun();
      if (s < 0) return;
      p.tunData(s).set(pkt, 16);
      p.publishTun(s, size);
    }
  };
  const slots = p.slots(RING_TUN);
  const refill = (): Promise<void> => new Promise((res) => {
    // The release stage may already have freed slots (before this waiter existed): check first.
    if (p.inFlight(RING_TUN) < slots) {
      fill();
      res();
      return;
    }
    waiter = () => { fill(); res(); };
  });

  // Warm-up, then measure.
  const warmEnd = performance.now() + 300;
  fill();
  while (performance.now() < warmEnd) await refill();
  const sealed0 = sealed;
  const wakes0 = p.stats[STAT_MAIN + MAIN_WAKEUPS]!;
  const notifies0 = p.stats[STAT_MAIN + MAIN_WORKER_NOTIFIES]!;
  let busy0 = 0;
  for (let id = 0; id < MAX_WORKERS; id++) busy0 += p.stats[statWorker(id) + CW_BUSY_NS]!;
  const elu0 = performance.eventLoopUtilization();
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  while (performance.now() < end) await refill();
  const t1 = performance.now();
  const elu = performance.eventLoopUtilization(elu0);
  const n = sealed - sealed0;
  let busy = 0;
  for (let id = 0; id < MAX_WORKERS; id++) busy += p.stats[statWorker(id) + CW_BUSY_NS]!;
  await p.stop();
  if (bad !== 0) throw new Error(`${bad} packets failed to seal`);
  return {
    name: `${nullCrypto ? 'null crypto' : 'seal'} ${size} B, ${workers} worker${workers > 1 ? 's' : ''}`,
    pps: n / ((t1 - t0) / 1000),
    mainUs: (elu.active * 1000) / n,
    wakes: ((p.stats[STAT_MAIN + MAIN_WAKEUPS]! - wakes0) * 1000) / n,
    notifies: ((p.stats[STAT_MAIN + MAIN_WORKER_NOTIFIES]! - notifies0) * 1000) / n,
    workerUs: (busy - busy0) / 1000 / n,
  };
}

const perRow = Number(process.argv[2] ?? 1.4);
const rows: Row[] = [];
for (const workers of [1, 2]) {
  for (const size of [1420, 64]) rows.push(await run(workers, size, perRow, false));
  rows.push(await run(workers, 64, perRow / 2, true));
}

const pad = (s: string, n: number): string => s.padStart(n);
console.log(`${'case'.padEnd(30)}${pad('pps', 12)}${pad('main µs/pkt', 13)}${pad('wakes/kpkt', 12)}${pad('notifies/kpkt', 15)}${pad('worker µs/pkt', 15)}`);
for (const r of rows) {
  console.log(
    `${r.name.padEnd(30)}${pad(Math.round(r.pps).toLocaleString('en-US'), 12)}${pad(r.mainUs.toFixed(2), 13)}` +
    `${pad(r.wakes.toFixed(1), 12)}${pad(r.notifies.toFixed(1), 15)}${pad(r.workerUs.toFixed(2), 15)}`,
  );
}
