// Tests for src/protocol/hostindex.ts: seeded random set/delete/get against a Map
// with string keys, for 1-word and 4-word keys, with key sets small enough that
// probe runs collide, wrap around the end of the table and get shifted back on
// delete. Set WIREPOOL_SEED to replay.

import t from 'tap';
import { HostIndex } from '../src/protocol/hostindex.js';
import { makePrng, testSeed } from './helpers/seeded-prng.js';

// [key words, pool size, rounds, steps per round]. A pool of 8 random keys keeps the
// table at 16 slots and up to half full, so probe runs often wrap around its end and
// deletions shift them back; each round draws a fresh pool (fresh home slots).
for (const [words, poolSize, rounds, steps] of [
  [1, 600, 1, 60_000],
  [4, 600, 1, 60_000],
  [1, 8, 200, 2_000],
  [4, 8, 200, 2_000],
] as const) {
  t.test(`random operations agree with a Map (${words}-word keys, pool of ${poolSize}, ${rounds} round(s))`, async (t) => {
    const seed = testSeed();
    t.comment(`seed ${seed} (set WIREPOOL_SEED=${seed} to replay)`);
    const rng = makePrng(seed);
    const name = (k: Int32Array): string => Array.from(k.subarray(0, words)).join(',');
    let bad = 0;
    let maxSize = 0;
    for (let round = 0; round < rounds && bad === 0; round++) {
      const index = new HostIndex(words);
      const oracle = new Map<string, number>();
      const get = (k: Int32Array): number =>
        words === 1 ? index.getV4(k[0]!) : index.getV6(k[0]!, k[1]!, k[2]!, k[3]!);
      // The big pool is mostly sequential keys (like 10.0.0.1, 10.0.0.2, ...), which a
      // multiplicative hash spreads; the rest are random and collide.
      const pool: Int32Array[] = [];
      for (let i = 0; i < poolSize; i++) {
        const k = new Int32Array(4);
        if (poolSize > 100 && i < (poolSize * 2) / 3) {
          k[words - 1] = 0x0a000000 + i;
          if (words === 4) k[0] = 0x20010db8 | 0;
        } else {
          for (let w = 0; w < words; w++) k[w] = rng.u32() | 0;
        }
        pool.push(k);
      }
      const phase = Math.max(20, steps / 12);
      for (let step = 0; step < steps; step++) {
        const k = rng.pick(pool);
        const r = rng.float();
        // Alternate growing and shrinking phases so the table fills and empties.
        const growing = Math.floor(step / phase) % 2 === 0;
        if (r < (growing ? 0.6 : 0.25)) {
          const v = rng.int(1_000_000);
          index.set(k, v);
          oracle.set(name(k), v);
        } else if (r < 0.9) {
          if (index.delete(k) !== oracle.delete(name(k))) bad++;
        }
        maxSize = Math.max(maxSize, oracle.size);
        if (index.size !== oracle.size) bad++;
        // After a change, every key of the pool must still be found (or not) correctly.
        const checks = poolSize > 100 ? 3 : poolSize;
        for (let q = 0; q < checks; q++) {
          const x = poolSize > 100 ? rng.pick(pool) : pool[q]!;
          if (get(x) !== (oracle.get(name(x)) ?? -1)) bad++;
        }
        if (bad > 0) {
          t.fail(`mismatch in round ${round} at step ${step} (seed ${seed})`);
          break;
        }
      }
      for (const k of pool) if (get(k) !== (oracle.get(name(k)) ?? -1)) bad++;
      index.clear();
      if (index.size !== 0 || get(pool[0]!) !== -1) bad++;
    }
    t.equal(bad, 0, `agrees with the Map, clear empties it (seed ${seed})`);
    t.ok(maxSize > poolSize / 2, `table grew large (${maxSize})`);
  });
}

t.test('negative values are refused; overwrite keeps size', async (t) => {
  const index = new HostIndex(1);
  const k = Int32Array.of(-5);
  t.throws(() => index.set(k, -1), RangeError);
  index.set(k, 1);
  index.set(k, 2);
  t.equal(index.size, 1);
  t.equal(index.getV4(-5), 2);
  t.equal(index.getV4(5), -1);
});
