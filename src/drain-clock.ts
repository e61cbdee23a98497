// The engine's monotonic clock, read once per dataplane drain pass instead of once or twice per
// packet. A pass of the pipeline (pipeline.ts drainOnce) handles at most a ring's worth of
// packets, well under a millisecond of main-thread work, and every per-packet rule that reads the
// time (key ages, timers) works in milliseconds, so the packets of one pass share one reading.
// Outside passes (handshakes, timers, UAPI) it reads the time on every call.
import { performance } from 'node:perf_hooks';
import { type Clock } from './protocol/engine.js';

export class DrainClock implements Clock {
  /** The time read at the start of the current pass; −1 outside passes. */
  private held = -1;

  now(): number {
    return this.held >= 0 ? this.held : performance.now();
  }

  wallNow(): number {
    return Date.now();
  }

  /** A drain pass starts: read the time once for all its packets. */
  pass(): void {
    this.held = performance.now();
  }

  /** The drain ended: read the time on every call again. */
  release(): void {
    this.held = -1;
  }
}
