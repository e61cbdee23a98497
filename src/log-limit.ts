// Rate limit for log lines, sans-I/O (time comes from `now`, in milliseconds): a token bucket
// per kind of line, so a flood of one event (garbage initiations from a scanner, a peer
// retrying forever) cannot fill the log or cost the main thread much, while a rare event is
// always written. Each kind starts with LOG_BURST lines and earns LOG_LINES_PER_SECOND more.
// Refused lines are counted; the caller reports the count (`suppressed N similar lines`) when
// the next line of that kind is written, or from drain() once the kind has gone quiet.
//
// Kinds are the callers' fixed message strings, so the table stays a handful of entries.

export const LOG_BURST = 10;
export const LOG_LINES_PER_SECOND = 1;

interface Bucket {
  tokens: number;
  last: number;
  suppressed: number;
}

export class LogLimiter {
  private readonly buckets = new Map<string, Bucket>();
  /** Buckets with suppressed > 0 (drain() has nothing to do while 0). */
  private pending = 0;

  constructor(
    private readonly now: () => number,
    private readonly burst = LOG_BURST,
    private readonly perSecond = LOG_LINES_PER_SECOND,
  ) {}

  /**
   * Takes a line of `kind`: -1 when it must not be written (it is counted), else how many
   * lines of this kind were suppressed since the last one written (report them first).
   */
  take(kind: string): number {
    const now = this.now();
    let b = this.buckets.get(kind);
    if (b === undefined) {
      b = { tokens: this.burst, last: now, suppressed: 0 };
      this.buckets.set(kind, b);
    }
    this.refill(b, now);
    if (b.tokens < 1) {
      if (b.suppressed++ === 0) this.pending++;
      return -1;
    }
    b.tokens -= 1;
    return this.release(b);
  }

  /** Calls report(kind, n) for each kind with suppressed lines that may write again (a token each). */
  drain(report: (kind: string, suppressed: number) => void): void {
    if (this.pending === 0) return;
    const now = this.now();
    for (const [kind, b] of this.buckets) {
      if (b.suppressed === 0) continue;
      this.refill(b, now);
      if (b.tokens < 1) continue;
      b.tokens -= 1;
      report(kind, this.release(b));
    }
  }

  private refill(b: Bucket, now: number): void {
    const elapsed = Math.max(0, now - b.last); // a clock going backwards earns nothing
    b.tokens = Math.min(this.burst, b.tokens + (elapsed * this.perSecond) / 1000);
    b.last = now;
  }

  private release(b: Bucket): number {
    const n = b.suppressed;
    if (n > 0) {
      b.suppressed = 0;
      this.pending--;
    }
    return n;
  }
}
