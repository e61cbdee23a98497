// TAI64N timestamps for handshake initiations (spec §1): u64 BE (2^62 + 10 + unix seconds) ||
// u32 BE nanoseconds, with the low 24 bits of the nanoseconds cleared (as wireguard-go and the
// kernel do) so the timestamp does not leak timer precision. Wall-clock time comes in as a
// parameter: this module reads no clock.

import { TAI64N_LEN } from '../constants.js';

const TAI64_BASE = (1n << 62n) + 10n;
const NANOS_MASK = 0xff00_0000; // keeps the top 8 bits of the nanoseconds

/**
 * 12-byte TAI64N of a wall-clock time in ms (plus optional extra ns), low 24 bits of nanoseconds cleared.
 * Sub-millisecond precision may be passed as a fractional wallClockMs.
 */
export function tai64n(wallClockMs: number): Uint8Array {
  if (!Number.isFinite(wallClockMs)) throw new RangeError(`tai64n: invalid time ${wallClockMs}`);
  const seconds = Math.floor(wallClockMs / 1000);
  const nanos = Math.min(Math.floor((wallClockMs - seconds * 1000) * 1e6), 999_999_999);
  const out = new Uint8Array(TAI64N_LEN);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, TAI64_BASE + BigInt(seconds), false);
  dv.setUint32(8, (nanos & NANOS_MASK) >>> 0, false);
  return out;
}

/** Compare two 12-byte timestamps as big-endian byte strings: -1, 0, 1. */
export function compareTai64n(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== TAI64N_LEN || b.length !== TAI64N_LEN) {
    throw new RangeError(`compareTai64n: timestamps must be ${TAI64N_LEN} bytes`);
  }
  for (let i = 0; i < TAI64N_LEN; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}
