// Tests for src/protocol/replay.ts: a numbered table of cases in the style of the
// kernel's selftest/counter.c (written afresh for this window: 8128 = (128 − 1) × 64,
// counters limited to COUNTER_LIMIT), then seeded random sequences checked against a
// Set-based oracle that states the rule directly: accept c iff it is a safe integer
// below COUNTER_LIMIT, not seen before, and c ≥ last − 8128 where last is the highest
// accepted counter. Set WIREPOOL_SEED to replay a run.

import t from 'tap';
import { COUNTER_LIMIT } from '../src/constants.js';
import { REPLAY_WINDOW_SIZE, ReplayWindow } from '../src/protocol/replay.js';
import { makePrng, testSeed } from './helpers/seeded-prng.js';

const W = 8128;

class SetOracle {
  private last = 0;
  private seen = new Set<number>();
  validate(c: number): boolean {
    if (!Number.isInteger(c) || c < 0 || c >= COUNTER_LIMIT) return false;
    if (c > this.last) {
      this.last = c;
    } else if (this.last - c > W) {
      return false;
    }
    if (this.seen.has(c)) return false;
    this.seen.add(c);
    return true;
  }
  get top(): number {
    return this.last;
  }
  /** Forget counters that can never be accepted again (keeps the set small). */
  prune(): void {
    for (const c of this.seen) if (this.last - c > W) this.seen.delete(c);
  }
}

t.test('window size is (128 − 1) × 64', async (t) => {
  t.equal(REPLAY_WINDOW_SIZE, W);
});

t.test('numbered cases', async (t) => {
  const r = new ReplayWindow();
  const T = 20_000; // a top counter well past the first window
  const J = T + 1 + 3 * 8192 + 17; // a jump of more than the whole ring
  const X = 10 * 8192 + 5; // used for ring-slot reuse after exactly 128 blocks
  const L = COUNTER_LIMIT;
  const cases: Array<[number, boolean, string]> = [
    [0, true, 'first counter 0 is fresh'],
    [1, true, 'next'],
    [1, false, 'replay of 1'],
    [9, true, 'skip ahead'],
    [8, true, 'reordered, inside window'],
    [7, true, 'reordered, inside window'],
    [7, false, 'replay of 7'],
    [0, false, 'replay of 0'],
    [W + 1, true, 'top = 8129'],
    [1, false, '1 is exactly at the edge (8129 − 8128) but was seen'],
    [2, true, 'unseen, 8127 behind the top'],
    [0, false, '8129 behind the top: too old'],
    [63, true, 'last bit of block 0'],
    [64, true, 'first bit of block 1'],
    [T, true, 'jump to T'],
    [T - W, true, 'exactly the window edge T − 8128'],
    [T - W - 1, false, 'T − 8129: one past the edge'],
    [T - W, false, 'replay at the edge'],
    [T - 1, true, 'just below top'],
    [T - 1, false, 'replay just below top'],
    [T, false, 'replay of top'],
    [T + 1, true, 'top advances by one'],
    [T - W, false, 'T − 8128 is now 8129 behind the top: too old'],
    [T + 1 - W, true, 'new edge'],
    [T + 1 - W - 1, false, 'past the new edge, never seen but too old'],
    [J, true, 'jump by more than the ring: whole ring cleared'],
    [T + 1, false, 'old top is far too old now'],
    [J - 1, true, 'below new top'],
    [J - W, true, 'edge of the new window'],
    [J - W + 64, true, 'one block above the edge'],
    [J - W - 64, false, 'one block below the edge'],
    [X, true, 'X'],
    [X + 8192, true, 'X + 128 blocks: same ring slot, cleared on advance'],
    [X + 8192, false, 'replay of X + 8192'],
    [X, false, 'X is now too old although its slot is reused'],
    [X + 64, true, 'X + 64 is exactly at the edge (X + 8192 − 8128)'],
    [X + 8192 + 63, true, 'rest of the top block'],
    [X + 8192 + 64, true, 'next block'],
    [X + 8192 + 64 - 1, false, 'replay in previous block'],
    [L - 1, true, 'largest acceptable counter COUNTER_LIMIT − 1'],
    [L, false, 'COUNTER_LIMIT is rejected'],
    [L + 1, false, 'beyond COUNTER_LIMIT'],
    [2 ** 53, false, '2^53'],
    [2 ** 64, false, '2^64'],
    [L - 1, false, 'replay of COUNTER_LIMIT − 1'],
    [L - 1 - W, true, 'edge below COUNTER_LIMIT − 1'],
    [L - 2 - W, false, 'past that edge'],
    [L - 2, true, 'below top, exact arithmetic near 2^53'],
    [L - 64, true, 'block boundary near 2^53'],
    [-1, false, 'negative'],
    [1.5, false, 'not an integer'],
    [Number.NaN, false, 'NaN'],
    [Infinity, false, 'Infinity'],
  ];
  cases.forEach(([c, want, why], i) => {
    t.equal(r.validate(c), want, `case ${i + 1}: validate(${c}) = ${want} — ${why}`);
  });
  r.reset();
  t.equal(r.validate(0), true, 'after reset: 0 is fresh again');
  t.equal(r.validate(0), false, 'after reset: 0 replay');
  t.equal(r.validate(L - 1 - W), true, 'after reset: a fresh window accepts far-ahead counters');
});

t.test('random sequences agree with the Set oracle', async (t) => {
  const seed = testSeed();
  t.comment(`seed ${seed} (set WIREPOOL_SEED=${seed} to replay)`);
  const rng = makePrng(seed);
  let mismatches = 0;
  let accepted = 0;
  let rejected = 0;
  for (let run = 0; run < 40; run++) {
    const r = new ReplayWindow();
    const o = new SetOracle();
    // Some runs start near the counter limit (a fresh window accepts any first counter).
    if (run % 4 === 3) {
      const start = COUNTER_LIMIT - 1 - rng.int(3_000_000);
      const a = r.validate(start);
      const b = o.validate(start);
      if (a !== b) mismatches++;
    }
    const recent: number[] = [];
    for (let step = 0; step < 10_000; step++) {
      const last = o.top;
      const k = rng.float();
      let c: number;
      if (k < 0.25) c = last + 1 + rng.int(3);
      else if (k < 0.45) c = last - rng.int(200);
      else if (k < 0.55) c = last - W - 1 + rng.int(3); // T−8129, T−8128, T−8127
      else if (k < 0.65) c = last - rng.int(9000);
      else if (k < 0.75) c = last + rng.int(64 * 130);
      else if (k < 0.8) c = last + 8192 * (1 + rng.int(3)) + rng.int(3) - 1; // whole-ring multiples
      else if (k < 0.9) c = recent.length > 0 ? rng.pick(recent) : last;
      else if (k < 0.95) c = last + rng.int(1e9);
      else if (k < 0.97) c = rng.pick([-1, 0.5, COUNTER_LIMIT, COUNTER_LIMIT + 1, Number.NaN, -0]);
      else c = last - (rng.int(130) * 64 + rng.int(2)); // block boundaries behind the top
      const want = o.validate(c);
      const got = r.validate(c);
      if (got !== want) {
        mismatches++;
        if (mismatches <= 5) t.fail(`run ${run} step ${step}: validate(${c}) = ${got}, want ${want} (top was ${last}, seed ${seed})`);
      }
      if (want) {
        accepted++;
        recent.push(c);
        if (recent.length > 64) recent.shift();
      } else {
        rejected++;
      }
      if (step % 2000 === 1999) o.prune();
    }
  }
  t.equal(mismatches, 0, `window agrees with the oracle (seed ${seed})`);
  t.ok(accepted > 1000 && rejected > 1000, `both outcomes exercised (${accepted} accepted, ${rejected} rejected)`);
});

t.test('every counter of a long in-order stream is accepted once', async (t) => {
  const r = new ReplayWindow();
  let bad = 0;
  for (let c = 0; c < 100_000; c++) if (!r.validate(c)) bad++;
  t.equal(bad, 0, 'in-order stream accepted');
  let replays = 0;
  for (let c = 100_000 - W; c < 100_000; c++) if (r.validate(c)) replays++;
  t.equal(replays, 0, 'the whole window replayed is rejected');
});
