// Small order statistics for the benchmarks: median, nearest-rank percentiles and the
// median / min / max summary each table cell shows. Non-finite samples (a failed run) are
// ignored; an empty sample set summarises to NaN.

/** Nearest-rank percentile (p in 0..100) of the finite values in xs; NaN if there are none. */
export function percentile(xs: readonly number[], p: number): number {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  if (p <= 0) return v[0]!;
  // p·n first: (p/100)·n picks up rounding error (0.56·50 = 28.000000000000004 → rank 29).
  const rank = Math.ceil((p * v.length) / 100 - 1e-9);
  return v[Math.min(v.length, rank) - 1]!;
}

/** Median of the finite values (mean of the middle two for an even count); NaN if none. */
export function median(xs: readonly number[]): number {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

export interface Summary {
  median: number;
  min: number;
  max: number;
  /** Number of finite samples. */
  n: number;
}

export function summarize(xs: readonly number[]): Summary {
  const v = xs.filter(Number.isFinite);
  if (v.length === 0) return { median: NaN, min: NaN, max: NaN, n: 0 };
  return { median: median(v), min: Math.min(...v), max: Math.max(...v), n: v.length };
}

/** a / b, or NaN when the ratio means nothing (b is 0 or either is not finite). */
export function ratio(a: number, b: number): number {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return NaN;
  return a / b;
}
