// The shared receiver-index map (src/dataplane/indexmap.ts) against a plain Map oracle: random
// inserts, replacements and deletions (backward shift keeps every remaining entry findable), a
// full table, and a reader in another thread that never sees a wrong key id while main rewrites
// the table (it may give up and miss, which is safe; it never returns another entry's key id).
import t from 'tap';
import { Worker } from 'node:worker_threads';
import { ReceiverIndexMap } from '../src/dataplane/indexmap.js';
import { makePrng, testSeed } from './helpers/seeded-prng.js';

t.test('matches a Map under random set/delete, including clustered indices', async (t) => {
  const seed = testSeed();
  t.comment(`seed ${seed} (WIREPOOL_SEED=${seed} reproduces)`);
  const rng = makePrng(seed);
  const map = ReceiverIndexMap.create(64); // 128 entries
  const oracle = new Map<number, number>();
  for (let op = 0; op < 20_000; op++) {
    // Clustered low bits make long probe runs, the case backward shift must get right.
    const index = ((rng.u32() & 0xffff0000) | (rng.u32() & 0x1f)) >>> 0 || 1;
    if (oracle.size < 60 && rng.u32() % 3 !== 0) {
      const keyId = rng.u32() % 1000;
      map.set(index, keyId);
      oracle.set(index, keyId);
    } else {
      const keys = [...oracle.keys()];
      const victim = keys.length && rng.u32() % 2 ? keys[rng.u32() % keys.length]! : index;
      map.delete(victim);
      oracle.delete(victim);
    }
    if (op % 97 === 0) {
      for (const [k, v] of oracle) if (map.lookup(k) !== v) t.fail(`op ${op}: lookup(${k}) = ${map.lookup(k)}, want ${v}`);
      t.equal(map.size, oracle.size);
    }
  }
  for (const [k, v] of oracle) t.equal(map.lookup(k), v);
  t.equal(map.lookup(0x12345678), oracle.get(0x12345678) ?? -1, 'absent index: -1');
  t.equal(map.lookup(0), -1, 'index 0 is never mapped');
});

t.test('refuses entries past its capacity and bad entries', async (t) => {
  const map = ReceiverIndexMap.create(2); // 4 entries, 3 usable
  map.set(1, 1);
  map.set(2, 2);
  map.set(3, 3);
  t.throws(() => map.set(4, 4), /full/);
  t.equal(map.lookup(3), 3, 'still consistent after the refusal');
  map.set(3, 7);
  t.equal(map.lookup(3), 7, 'replacing an entry needs no room');
  t.throws(() => map.set(0, 1), RangeError);
  t.throws(() => map.set(5, -1), RangeError);
});

t.test('a reader thread never gets a wrong key id while main rewrites the table', async (t) => {
  const map = ReceiverIndexMap.create(256);
  // Stable entries: index i*977+1 → i. The reader checks them; main churns other entries around them.
  const stable = Array.from({ length: 100 }, (_, i) => [(i * 977 + 1) >>> 0, i] as const);
  for (const [k, v] of stable) map.set(k, v);
  const stop = new Int32Array(new SharedArrayBuffer(8));
  const url = new URL('../src/dataplane/indexmap.js', import.meta.url).href;
  const w = new Worker(`
    const { workerData, parentPort } = require('node:worker_threads');
    import(${JSON.stringify(url)}).then(({ ReceiverIndexMap }) => {
      const map = ReceiverIndexMap.attach(workerData.buf);
      const stop = new Int32Array(workerData.stop);
      let bad = 0, missed = 0, reads = 0;
      parentPort.postMessage({ ready: true });
      while (Atomics.load(stop, 0) === 0) {
        for (const [k, v] of workerData.stable) { const got = map.lookup(k); if (got === -1) missed++; else if (got !== v) bad++; reads++; }
        Atomics.store(stop, 1, reads);
      }
      parentPort.postMessage({ bad, missed, reads });
    });`, { eval: true, workerData: { buf: map.buffer, stop: stop.buffer, stable } });
  const ready = new Promise<void>((res, rej) => { w.once('message', () => res()); w.once('error', rej); });
  await ready;
  const done = new Promise<{ bad: number; missed: number; reads: number }>((res, rej) => { w.once('message', res); w.once('error', rej); });
  // Churn until the reader has made 2,000 passes' worth of lookups while it ran. Bounded by time,
  // not by rounds: on a loaded 2-vCPU host the reader thread may not be scheduled at all during a
  // fixed number of rounds (it then looked up 0 times), while main churns on.
  const end = Date.now() + 20_000;
  for (let round = 0; Atomics.load(stop, 1) < 200_000 && Date.now() < end; round++) {
    const k = ((round * 7919) % 400 + 1) * 1024 + 3; // collides with the stable entries' low bits
    map.set(k >>> 0, 9999);
    map.delete(k >>> 0);
    if (round % 100 === 0) await new Promise((r) => setImmediate(r));
  }
  Atomics.store(stop, 0, 1);
  const r = await done;
  t.ok(r.reads > 0, `the reader looked up ${r.reads} times`);
  // A miss (-1) is allowed while main rewrites without pause (the lookup gives up retrying; the
  // datagram then goes to main's classify); a wrong key id never is.
  t.equal(r.bad, 0, `no lookup of a stable entry returned another key id (${r.missed} gave up during the churn)`);
});
