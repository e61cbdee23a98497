// Benchmark: slots/s through the TUN send ring with 1 and 2 crypto workers at 1420 and 64 bytes,
// plus a null-crypto row per worker count that shows the ring's own ceiling. The pipeline is wired
// as the Device wires it (test/helpers/pipeline-rig.ts, hooks not wrapped): its TUN fd is a MemTun
// (test/helpers/memtun.ts) in count-only mode that a worker thread floods with one packet over and
// over, so the real TUN reader thread produces the ring (readSlots, one C_PRODUCED store and at
// most one ring of main per batch); route() writes header/padding/counter, workers seal with the
// real sealTransport, onSealed() counts. route() names no socket (fd -1), so the workers leave
// every sealed message to main, whose onSealed() here only counts it: nothing is sent. The UDP
// reader runs on loopback sockets that receive nothing. The ring is kept full by backpressure: the
// TUN reader waits on C_FREED, the socketpair fills, the flood waits for room.
// ~10 s in total. Run: node dist/bench/ring.js [seconds-per-row]
//
// Columns: pps; main µs/pkt = main event-loop active time per packet (route, release, wake-ups:
// everything main does here; the packets are produced by other threads, so no injection cost is
// in it); wakes/kpkt = main doorbell wake-ups per 1000 packets (the TUN reader's and the workers');
// notifies/kpkt = times main had to notify a sleeping worker; worker µs/pkt = crypto workers' busy
// wall time per packet (all workers together).
//
// pps is bounded by the socketpair too: every packet is one write() by the flood and one read() by
// the TUN reader, two more threads sharing the cores with main and the workers (on a 2-vCPU host
// they take CPU the crypto workers would otherwise get). It is the ring fed as the daemon feeds it
// from a TUN device without offloads, not the ring alone.

import { performance } from 'node:perf_hooks';
import { CW_BUSY_NS, MAIN_WAKEUPS, MAIN_WORKER_NOTIFIES, MAX_WORKERS, STAT_MAIN, statWorker } from '../src/dataplane/layout.js';
import { type Pipeline } from '../src/dataplane/pipeline.js';
import { MEMTUN_DEFAULT_MTU, MemTun } from '../test/helpers/memtun.js';
import { PipelineRig } from '../test/helpers/pipeline-rig.js';

const NULL_CRYPTO = 'data:text/javascript,' + encodeURIComponent(`
  export function sealTransport(key, lo, hi, buf, off, len) { return len + 16; }
  export function openTransport(key, lo, hi, buf, off, len) { return len - 16; }`);

const WARM_MS = 300;

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
  let counter = 0;
  let keypair = 0;
  const memtun = await MemTun.create('ring', MEMTUN_DEFAULT_MTU, { keep: false });
  const rig = await PipelineRig.start({ workers, memtun, watchHooks: false, cryptoModule: nullCrypto ? NULL_CRYPTO : undefined }, {
    route(_slot, data, len, meta) {
      const padded = (len + 15) & ~15;
      data.fill(0, 16 + len, 16 + padded);
      const c = counter++;
      data[0] = 4;
      data[8] = c & 0xff; data[9] = (c >>> 8) & 0xff; data[10] = (c >>> 16) & 0xff; data[11] = (c >>> 24) & 0xff;
      meta.setSeal(padded, keypair, c, 0, 0);
      return true;
    },
    onSealed(_slot, _data, _msgLen, ok) {
      sealed++;
      if (!ok) bad++;
    },
    onOpened: () => -1,
    onTunGone: () => { console.error('ring bench: the memory TUN is gone'); },
    onWorkerError: (id, err) => { console.error(`worker ${id}:`, err); },
  });
  const p = rig.p;
  try {
    keypair = p.keys.allocate();
    p.keys.setKeys(keypair, new Uint8Array(32).fill(1), new Uint8Array(32).fill(2));
    const pkt = new Uint8Array(size).fill(0xab);
    pkt[0] = 0x45;
    await memtun.flood(pkt);
    await sleep(WARM_MS);

    const sealed0 = sealed;
    const wakes0 = p.stats[STAT_MAIN + MAIN_WAKEUPS]!;
    const notifies0 = p.stats[STAT_MAIN + MAIN_WORKER_NOTIFIES]!;
    const busy0 = workerBusyNs(p);
    const elu0 = performance.eventLoopUtilization();
    const t0 = performance.now();
    await sleep(seconds * 1000);
    const t1 = performance.now();
    const elu = performance.eventLoopUtilization(elu0);
    const n = sealed - sealed0;
    const busy = workerBusyNs(p);
    const wakes = p.stats[STAT_MAIN + MAIN_WAKEUPS]! - wakes0;
    const notifies = p.stats[STAT_MAIN + MAIN_WORKER_NOTIFIES]! - notifies0;
    await memtun.stopFlood();
    if (bad !== 0) throw new Error(`${bad} packets failed to seal`);
    if (n === 0) throw new Error(`no packet went through the ring (${memtun.floodedCount} flooded)`);
    return {
      name: `${nullCrypto ? 'null crypto' : 'seal'} ${size} B, ${workers} worker${workers > 1 ? 's' : ''}`,
      pps: n / ((t1 - t0) / 1000),
      mainUs: (elu.active * 1000) / n,
      wakes: (wakes * 1000) / n,
      notifies: (notifies * 1000) / n,
      workerUs: (busy - busy0) / 1000 / n,
    };
  } finally {
    await rig.close(); // and the MemTun
  }
}

function workerBusyNs(p: Pipeline): number {
  let busy = 0;
  for (let id = 0; id < MAX_WORKERS; id++) busy += p.stats[statWorker(id) + CW_BUSY_NS]!;
  return busy;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
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
