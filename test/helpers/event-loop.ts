// Event-loop turns, for tests of work that must be spread over turns (the main thread also routes
// every packet, so long work gives the loop back between slices). A turn is counted by an
// immediate that re-queues itself: one per pass of the loop's check phase.

/** Counts event-loop turns until stop(); `now` is the count so far. */
export function countTurns(): { readonly now: number; stop(): void } {
  let now = 0;
  let counting = true;
  const tick = (): void => { now++; if (counting) setImmediate(tick); };
  setImmediate(tick);
  return { get now() { return now; }, stop: () => { counting = false; } };
}

/** Resolves after `n` event-loop turns. */
export function turns(n: number): Promise<void> {
  return new Promise((resolve) => {
    const next = (left: number): void => { if (left === 0) resolve(); else setImmediate(() => next(left - 1)); };
    next(n);
  });
}

/** Resolves in the first turn in which cond() holds (checked now, then once per turn). */
export function turnWhen(cond: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const poll = (): void => { if (cond()) resolve(); else setImmediate(poll); };
    poll();
  });
}
