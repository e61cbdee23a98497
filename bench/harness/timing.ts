// Timing loop for the micro-benchmarks: runs a batch function for a fixed time budget after
// a warm-up and returns nanoseconds per operation. Results feed a sink so the optimiser
// cannot drop the work.

let sink = 0;

/** Keeps a value alive (call with anything the measured code computed). */
export function consume(x: unknown): void {
  if (x === sink) sink++;
}

/** Reads the sink (so the compiler sees it used). */
export function sinkValue(): number {
  return sink;
}

/**
 * ns per operation of `batch`, which performs `opsPerCall` operations per call: warm-up for
 * about a tenth of the budget, then as many calls as fit in budgetMs.
 */
export function nsPerOp(batch: () => void, opsPerCall: number, budgetMs: number): number {
  const warmEnd = performance.now() + budgetMs / 10;
  while (performance.now() < warmEnd) batch();
  let calls = 0;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(Math.round(budgetMs * 1e6));
  let now = start;
  while (now < deadline) {
    for (let i = 0; i < 8; i++) batch();
    calls += 8;
    now = process.hrtime.bigint();
  }
  return Number(now - start) / (calls * opsPerCall);
}
