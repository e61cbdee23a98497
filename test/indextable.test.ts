// Tests for src/protocol/indextable.ts (spec §5): indices are unique and non-zero
// even when the injected random source collides on purpose, delete frees an index
// for reuse, set re-points without creating, signed random values are taken mod 2^32.

import t from 'tap';
import { INDEX_MAX_ATTEMPTS, IndexTable } from '../src/protocol/indextable.js';
import { makePrng, testSeed } from './helpers/seeded-prng.js';

/** A random source that cycles through a fixed list. */
function cycle(values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

t.test('unique non-zero indices under a colliding random source', async (t) => {
  const seed = testSeed();
  t.comment(`seed ${seed}`);
  const rng = makePrng(seed);
  // Only 16 possible values, one of them 0: at most 15 live indices.
  let draws = 0;
  const table = new IndexTable<string>(() => {
    draws++;
    return rng.int(16);
  });
  const got = new Set<number>();
  for (let i = 0; i < 15; i++) {
    const idx = table.allocate(`v${i}`);
    t.ok(idx >= 1 && idx <= 15, `index ${idx} in 1..15 (seed ${seed})`);
    t.notOk(got.has(idx), `index ${idx} not handed out twice (seed ${seed})`);
    got.add(idx);
    t.equal(table.get(idx), `v${i}`);
  }
  t.equal(table.size, 15);
  t.ok(draws > 15, `collisions were retried (${draws} draws for 15 indices)`);
  t.throws(() => table.allocate('no room'), /no free index/, 'exhausted source: throws instead of looping forever');
  t.equal(table.size, 15, 'failed allocation stored nothing');
  t.ok(draws >= 15 + INDEX_MAX_ATTEMPTS, 'gave up only after INDEX_MAX_ATTEMPTS draws');
});

t.test('zero and repeats are skipped', async (t) => {
  const table = new IndexTable<number>(cycle([0, 7, 0, 7, 7, 0, 9]));
  t.equal(table.allocate(1), 7);
  t.equal(table.allocate(2), 9, 'skips 0 and the taken 7');
  t.equal(table.get(0), undefined, '0 is never an index');
});

t.test('delete frees an index for reuse', async (t) => {
  const table = new IndexTable<string>(cycle([42, 42, 43]));
  t.equal(table.allocate('a'), 42);
  t.equal(table.delete(42), true);
  t.equal(table.delete(42), false, 'second delete finds nothing');
  t.equal(table.get(42), undefined);
  t.equal(table.size, 0);
  t.equal(table.allocate('b'), 42, 'the freed index can be drawn again');
  t.equal(table.get(42), 'b');
  t.equal(table.allocate('c'), 43, 'and is taken again after that');
});

t.test('set re-points an existing index, never creates one', async (t) => {
  const table = new IndexTable<{ kind: string }>(cycle([5]));
  const handshake = { kind: 'handshake' };
  const keypair = { kind: 'keypair' };
  const idx = table.allocate(handshake);
  t.equal(table.set(idx, keypair), true);
  t.equal(table.get(idx), keypair, 'now points at the keypair');
  t.equal(table.size, 1);
  t.equal(table.set(6, keypair), false, 'unknown index is not created');
  t.equal(table.get(6), undefined);
  t.equal(table.size, 1);
});

t.test('signed int32 random values are used as u32', async (t) => {
  const table = new IndexTable<string>(cycle([-1, -2147483648]));
  const a = table.allocate('a');
  const b = table.allocate('b');
  t.equal(a, 0xffffffff);
  t.equal(b, 0x80000000);
  t.equal(table.get(0xffffffff), 'a', 'looked up by the unsigned value read from the wire');
  t.equal(table.get(0x80000000), 'b');
});

t.test('many allocations from a good source are unique', async (t) => {
  const seed = testSeed();
  t.comment(`seed ${seed}`);
  const rng = makePrng(seed);
  const table = new IndexTable<number>(() => rng.u32());
  const seen = new Set<number>();
  for (let i = 0; i < 50_000; i++) {
    const idx = table.allocate(i);
    if (seen.has(idx) || idx === 0 || idx > 0xffffffff || !Number.isInteger(idx)) t.fail(`bad index ${idx} (seed ${seed})`);
    seen.add(idx);
    if (i % 3 === 0) {
      table.delete(idx);
      seen.delete(idx);
    }
  }
  t.equal(table.size, seen.size);
});
