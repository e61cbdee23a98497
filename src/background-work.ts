// Work the main thread does when it has time: in slices of `sliceMs` per event-loop turn (the
// thread also routes every packet), and not at all while `busy()` says more urgent work is
// queued — then it looks again after `retryMs`, without keeping the event loop awake. Used for the
// peers' DH(static, static) after a large configuration change (Engine.precomputeStaticStatics),
// which waits while handshakes are queued: each of those computes its own peer's value anyway.

export interface BackgroundWorkOptions {
  /** Does up to about `budgetMs` of work; returns whether some is left. */
  work(budgetMs: number): boolean;
  /** More urgent work is waiting: do nothing now. */
  busy(): boolean;
  sliceMs: number;
  retryMs: number;
}

export class BackgroundWork {
  private scheduled = false;
  private stopped = false;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly opts: BackgroundWorkOptions) {}

  /** There may be work: run it from the next turn on, until work() says it is done. Idempotent. */
  start(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    setImmediate(this.step);
  }

  /** No more slices, ever (the owner closes). */
  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private readonly step = (): void => {
    this.scheduled = false;
    this.timer = null;
    if (this.stopped) return;
    if (this.opts.busy()) {
      this.scheduled = true;
      this.timer = setTimeout(this.step, this.opts.retryMs);
      return;
    }
    if (this.opts.work(this.opts.sliceMs)) this.start();
  };
}
