// Seeded PRNG for reproducible random tests: sfc32 seeded from one u32 via splitmix32.
// A test takes its seed from testSeed() (env WIREPOOL_SEED, else random), prints it,
// and repeats it in failure messages so a failing run can be replayed exactly.

export interface Prng {
  /** Uniform u32. */
  u32(): number;
  /** Uniform integer in [0, n), n ≤ 2^32. */
  int(n: number): number;
  /** Uniform float in [0, 1). */
  float(): number;
  /** True with probability p. */
  chance(p: number): boolean;
  /** Uniformly chosen element of a non-empty array. */
  pick<T>(xs: readonly T[]): T;
  /** n random bytes. */
  bytes(n: number): Uint8Array;
}

export function testSeed(): number {
  const env = process.env['WIREPOOL_SEED'];
  if (env !== undefined && env !== '') return Number(env) >>> 0;
  return (Math.random() * 2 ** 32) >>> 0;
}

export function makePrng(seed: number): Prng {
  let s = seed >>> 0;
  const splitmix = (): number => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = splitmix();
  let b = splitmix();
  let c = splitmix();
  let d = splitmix();
  const u32 = (): number => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = ((c << 21) | (c >>> 11)) >>> 0;
    c = (c + t) >>> 0;
    return t;
  };
  for (let i = 0; i < 12; i++) u32();
  const float = (): number => u32() / 2 ** 32;
  return {
    u32,
    float,
    int: (n) => Math.floor(float() * n),
    chance: (p) => float() < p,
    pick: (xs) => xs[Math.floor(float() * xs.length)]!,
    bytes: (n) => {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) out[i] = u32() & 0xff;
      return out;
    },
  };
}
