// Tests for src/protocol/ratelimiter.ts (spec §7): burst of 5 then refusal, refill
// after 50 ms, GC of buckets idle > 1 s, IPv6 /64 sharing, IPv4-mapped sources keyed
// as IPv4, the table bound, and a seeded random comparison with a reference model
// written in integer ticks (bigint, 1024 per ms) with string keys. Time is injected; nothing
// sleeps. Set WIREPOOL_SEED to replay the random part.

import t from 'tap';
import { PACKET_COST, RateLimiter, TOKEN_MAX } from '../src/protocol/ratelimiter.js';
import { makePrng, testSeed } from './helpers/seeded-prng.js';

const v4 = (a: number, b: number, c: number, d: number): Uint8Array => Uint8Array.of(a, b, c, d);
function v6(s: string): Uint8Array {
  // Full 8-group form only, for the test's own addresses.
  const groups = s.split(':').map((g) => parseInt(g, 16));
  if (groups.length !== 8) throw new Error(s);
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

/** Send n packets at time now; return how many were allowed. */
function burst(rl: RateLimiter, src: Uint8Array, now: number, n: number): number {
  let ok = 0;
  for (let i = 0; i < n; i++) if (rl.allow(src, now)) ok++;
  return ok;
}

t.test('constants follow the spec: 20 packets/s, burst 5', async (t) => {
  t.equal(PACKET_COST, 50);
  t.equal(TOKEN_MAX, 250);
});

t.test('a new source gets a burst of 5, then refusal', async (t) => {
  const rl = new RateLimiter();
  const src = v4(192, 0, 2, 1);
  for (let i = 1; i <= 5; i++) t.equal(rl.allow(src, 1000), true, `packet ${i} allowed`);
  t.equal(rl.allow(src, 1000), false, 'packet 6 refused');
  t.equal(rl.allow(src, 1000), false, 'packet 7 refused');
  t.equal(rl.size, 1);
});

t.test('refill: one packet per 50 ms; refused packets cost nothing', async (t) => {
  const rl = new RateLimiter();
  const src = v4(192, 0, 2, 1);
  t.equal(burst(rl, src, 0, 5), 5);
  t.equal(rl.allow(src, 25), false, '25 ms: half a token');
  t.equal(rl.allow(src, 49.5), false, '49.5 ms: not yet');
  t.equal(rl.allow(src, 50), true, '50 ms: one token accrued (the refusals did not drain it)');
  t.equal(rl.allow(src, 50), false, 'and only one');
  t.equal(rl.allow(src, 150), true, '150 ms: two tokens');
  t.equal(rl.allow(src, 150), true);
  t.equal(rl.allow(src, 150), false);
  // A long idle period refills to the cap, not beyond: exactly 5 again.
  t.equal(burst(rl, src, 900, 10), 5, 'cap of 5 after a long pause');
  // Sustained 20/s is allowed forever: one packet every 50 ms.
  let ok = 0;
  for (let i = 1; i <= 200; i++) if (rl.allow(src, 900 + 50 * i)) ok++;
  t.equal(ok, 200, 'steady 20 packets/s all allowed');
  // 40/s: half refused in the long run.
  ok = 0;
  const base = 900 + 50 * 200;
  for (let i = 1; i <= 400; i++) if (rl.allow(src, base + 25 * i)) ok++;
  t.equal(ok, 200, '40 packets/s: exactly one in two allowed');
});

t.test('time going backwards counts as no elapsed time', async (t) => {
  const rl = new RateLimiter();
  const src = v4(10, 0, 0, 1);
  t.equal(burst(rl, src, 5000, 5), 5);
  t.equal(rl.allow(src, 4000), false, 'earlier time gives no tokens');
  t.equal(rl.allow(src, 5049), false, 'clock not moved back by the earlier call');
  t.equal(rl.allow(src, 5050), true);
});

t.test('gc removes buckets idle for more than 1 s', async (t) => {
  const rl = new RateLimiter();
  const a = v4(10, 0, 0, 1);
  const b = v6('2001:db8:0:1:0:0:0:1');
  rl.allow(a, 0);
  rl.allow(b, 500);
  t.equal(rl.size, 2);
  rl.gc(1000);
  t.equal(rl.size, 2, 'idle exactly 1 s: kept');
  rl.gc(1000.5);
  t.equal(rl.size, 1, 'a idle 1000.5 ms: removed');
  rl.allow(b, 1200); // b active again
  rl.gc(2100);
  t.equal(rl.size, 1, 'b was used at 1200: kept');
  rl.gc(2201);
  t.equal(rl.size, 0, 'b idle > 1 s: removed');
  // A collected source starts afresh.
  t.equal(burst(rl, a, 3000, 10), 5, 'collected source gets a fresh burst');
  // A refused packet also counts as activity (it moves the bucket clock).
  const rl2 = new RateLimiter();
  burst(rl2, a, 0, 6);
  rl2.allow(a, 900);
  rl2.gc(1500);
  t.equal(rl2.size, 1, 'last packet at 900 keeps the bucket until 1900');
});

t.test('IPv6 sources in the same /64 share a bucket; other /64s do not', async (t) => {
  const rl = new RateLimiter();
  const a1 = v6('2001:db8:1:2:0:0:0:1');
  const a2 = v6('2001:db8:1:2:ffff:ffff:ffff:ffff');
  const a3 = v6('2001:db8:1:2:1234:0:0:9');
  const other = v6('2001:db8:1:3:0:0:0:1');
  const otherHi = v6('2001:db9:1:2:0:0:0:1');
  t.equal(burst(rl, a1, 0, 2) + burst(rl, a2, 0, 2) + burst(rl, a3, 0, 2), 5, 'six packets from one /64: five allowed');
  t.equal(rl.allow(a2, 0), false);
  t.equal(burst(rl, other, 0, 6), 5, 'neighbouring /64 has its own bucket');
  t.equal(burst(rl, otherHi, 0, 6), 5, 'same low half, different high half: own bucket');
  t.equal(rl.size, 3);
});

t.test('different IPv4 sources are independent; families do not collide', async (t) => {
  const rl = new RateLimiter();
  t.equal(burst(rl, v4(1, 2, 3, 4), 0, 6), 5);
  t.equal(burst(rl, v4(1, 2, 3, 5), 0, 6), 5, 'next address has its own bucket');
  t.equal(burst(rl, v4(255, 255, 255, 255), 0, 6), 5);
  t.equal(burst(rl, v4(0, 0, 0, 0), 0, 6), 5);
  t.equal(burst(rl, v6('102:304:0:0:0:0:0:0'), 0, 6), 5, 'IPv6 1:2:3:4::/64-ish key is not IPv4 1.2.3.4');
  t.equal(burst(rl, v6('0:0:0:0:0:0:0:0'), 0, 6), 5, ':: is not 0.0.0.0');
  t.equal(rl.size, 6);
});

t.test('IPv4-mapped IPv6 sources are keyed as IPv4', async (t) => {
  const rl = new RateLimiter();
  const mapped = v6('0:0:0:0:0:ffff:102:304'); // ::ffff:1.2.3.4
  t.equal(burst(rl, mapped, 0, 3), 3);
  t.equal(burst(rl, v4(1, 2, 3, 4), 0, 3), 2, 'shares the bucket of 1.2.3.4');
  t.equal(burst(rl, v6('0:0:0:0:0:ffff:102:305'), 0, 6), 5, '::ffff:1.2.3.5 is independent although in the same /64');
  t.equal(burst(rl, v6('0:0:0:0:0:0:102:306'), 0, 6), 5, 'a non-mapped address in ::/64 uses the /64 bucket');
  t.equal(burst(rl, v6('0:0:0:0:0:0:102:307'), 0, 6), 0, 'which that ::/64 neighbour shares');
  t.equal(rl.size, 3);
});

t.test('table bound: new sources refused when full, known ones keep working', async (t) => {
  const rl = new RateLimiter({ maxEntries: 3 });
  t.equal(rl.allow(v4(10, 0, 0, 1), 0), true);
  t.equal(rl.allow(v4(10, 0, 0, 2), 0), true);
  t.equal(rl.allow(v6('2001:db8:0:0:0:0:0:1'), 0), true);
  t.equal(rl.allow(v4(10, 0, 0, 3), 0), false, 'fourth source refused');
  t.equal(rl.allow(v6('2001:db8:0:1:0:0:0:1'), 0), false, 'fourth (IPv6) source refused');
  t.equal(rl.size, 3);
  t.equal(rl.allow(v4(10, 0, 0, 1), 0), true, 'known source still served');
  rl.allow(v4(10, 0, 0, 2), 600);
  rl.gc(1100);
  t.equal(rl.size, 1, 'gc freed two idle buckets');
  t.equal(rl.allow(v4(10, 0, 0, 3), 1100), true, 'room again for a new source');
  rl.clear();
  t.equal(rl.size, 0, 'clear');
  t.equal(burst(rl, v4(10, 0, 0, 2), 1100, 6), 5, 'cleared source starts afresh');
  t.throws(() => new RateLimiter({ maxEntries: 0 }), RangeError);
});

t.test('bad address length throws', async (t) => {
  const rl = new RateLimiter();
  t.throws(() => rl.allow(new Uint8Array(8), 0), RangeError);
  t.throws(() => rl.allow(new Uint8Array(0), 0), RangeError);
  t.equal(rl.size, 0);
});

/** Reference model: integer ticks (1 ms = 1024 ticks, bigint), string keys, no cleverness. */
class ModelLimiter {
  private readonly table = new Map<string, { tokens: bigint; last: bigint }>();
  static readonly COST = (1000n * 1024n) / 20n;
  static readonly MAX = ModelLimiter.COST * 5n;
  constructor(private readonly max: number) {}
  static key(src: Uint8Array): string {
    const mapped = src.length === 16 && src.subarray(0, 10).every((x) => x === 0) && src[10] === 0xff && src[11] === 0xff;
    if (src.length === 4) return `4:${src.join('.')}`;
    if (mapped) return `4:${Array.from(src.subarray(12)).join('.')}`;
    return `6:${Buffer.from(src.subarray(0, 8)).toString('hex')}`;
  }
  allow(src: Uint8Array, now: bigint): boolean {
    const k = ModelLimiter.key(src);
    const e = this.table.get(k);
    if (e === undefined) {
      if (this.table.size >= this.max) return false;
      this.table.set(k, { tokens: ModelLimiter.MAX - ModelLimiter.COST, last: now });
      return true;
    }
    let tokens = e.tokens + (now - e.last);
    if (tokens > ModelLimiter.MAX) tokens = ModelLimiter.MAX;
    e.last = now;
    if (tokens >= ModelLimiter.COST) {
      e.tokens = tokens - ModelLimiter.COST;
      return true;
    }
    e.tokens = tokens;
    return false;
  }
  gc(now: bigint): void {
    for (const [k, e] of this.table) if (now - e.last > 1000n * 1024n) this.table.delete(k);
  }
  get size(): number {
    return this.table.size;
  }
}

// [label, sources, maxEntries, mean gap between packets (ticks), probability of a
// pause of up to 2 s, probability of a gc call, rounds, steps per round]. The tiny
// table stays at 16 slots, so probe runs wrap around its end and gc shifts them back;
// each round uses fresh sources and a fresh hash seed.
for (const [label, nSources, maxEntries, gapTicks, pauseP, gcP, rounds, steps] of [
  ['few sources, tight table', 40, 30, 10 * 1024, 0.02, 0.002, 1, 100_000],
  ['many sources, growing table', 3000, 2000, 70, 0.0002, 0.002, 1, 100_000],
  ['tiny table, wrap-around', 8, 8, 2 * 1024, 0.1, 0.2, 200, 2_000],
] as const) {
  t.test(`random traffic agrees with the reference model: ${label}`, async (t) => {
    const seed = testSeed();
    t.comment(`seed ${seed} (set WIREPOOL_SEED=${seed} to replay)`);
    const rng = makePrng(seed);
    let mismatches = 0;
    let allowed = 0;
    let refused = 0;
    let maxSize = 0;
    for (let round = 0; round < rounds; round++) {
      const sources: Uint8Array[] = [];
      for (let i = 0; i < nSources; i++) {
        const kind = rng.int(4);
        if (kind === 0) sources.push(rng.bytes(4));
        else if (kind === 1) sources.push(Uint8Array.of(...new Array(10).fill(0), 0xff, 0xff, ...rng.bytes(4)));
        else sources.push(rng.bytes(16));
      }
      // Some sources share a /64 with another one.
      const v6 = sources.filter((s) => s.length === 16);
      for (let i = 0; i < nSources / 4 && v6.length > 0; i++) {
        const s = Uint8Array.from(rng.pick(v6));
        s.set(rng.bytes(8), 8);
        sources.push(s);
      }
      const rl = new RateLimiter({ maxEntries, seed: rng.u32() });
      const model = new ModelLimiter(maxEntries);
      let ticks = 0; // 1/1024 ms: binary fractions, so float ms arithmetic is exact
      for (let step = 0; step < steps; step++) {
        const k = rng.float();
        ticks += k < pauseP ? rng.int(2000 * 1024) : k < 0.7 ? rng.int(2 * gapTicks) : rng.int(100);
        const nowMs = ticks / 1024;
        const nowTicks = BigInt(ticks);
        if (rng.chance(gcP)) {
          rl.gc(nowMs);
          model.gc(nowTicks);
        }
        const src = rng.pick(sources);
        const got = rl.allow(src, nowMs);
        const want = model.allow(src, nowTicks);
        if (got) allowed++;
        else refused++;
        maxSize = Math.max(maxSize, model.size);
        if (got !== want || rl.size !== model.size) {
          mismatches++;
          if (mismatches <= 5) {
            t.fail(`round ${round} step ${step} at ${nowMs} ms: allow=${got} want ${want}, size ${rl.size} want ${model.size} (seed ${seed})`);
          }
        }
      }
    }
    t.equal(mismatches, 0, `agrees with the model (seed ${seed})`);
    t.ok(allowed > 1000 && refused > 1000, `both outcomes exercised (${allowed} allowed, ${refused} refused)`);
    t.equal(maxSize, maxEntries, 'the table was filled to its bound');
  });
}
