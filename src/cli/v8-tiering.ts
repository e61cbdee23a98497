// How soon V8 compiles the daemon's JavaScript to machine code. A dataplane at idle runs its
// per-packet functions a few dozen times a second; with V8's defaults they stay in the bytecode
// interpreter for seconds, and a function that was optimized under load and then meets a branch
// it had not seen (a lone packet's path: main reads, seals and writes it itself; an IPv6 router
// solicitation) falls back to baseline code, where it stays until it has run about as long again.
// So a ping after a burst of traffic, or on a daemon that has been idle, crosses the main thread
// mostly in unoptimized code. Two flags change that:
//   --always-sparkplug          compile a function to baseline machine code the first time it
//                               runs, instead of interpreting it first;
//   --interrupt-budget=16000    optimize a hot function after a quarter of V8's default amount of
//                               work (67,584 bytes of bytecode executed per tick), so at idle rates too.
// Measured (bench pair, idle pings 20 ms apart right after a TCP run, 2-vCPU VM, medians of 3–5
// alternating rounds): p50 0.69–0.70 ms with V8's defaults, 0.55–0.60 with both flags (budget
// 4,000 or 16,000 alike), 0.64–0.65 with either alone. Under load, where the hot code is optimized
// either way, TCP, CPU and the handshake rate of a storm did not change beyond the host's noise;
// the daemon's RSS grows by ≈ 5 MiB of baseline code. V8 flags are per process, so they reach the
// worker threads started after this call. A flag the operator gave node on its command line is
// left as given.
import v8 from 'node:v8';

export const TIERING_FLAGS: readonly string[] = ['--always-sparkplug', '--interrupt-budget=16000'];

/** Apply TIERING_FLAGS (those not on node's own command line) for the code that runs from now on. */
export function tuneTiering(execArgv: readonly string[] = process.execArgv): void {
  const given = new Set(execArgv.map(flagName));
  const flags = TIERING_FLAGS.filter((f) => !given.has(flagName(f)));
  if (flags.length !== 0) v8.setFlagsFromString(flags.join(' '));
}

/** `--interrupt-budget=4000` → `interrupt-budget`; V8 spells names with - or _ and negates with no-. */
function flagName(arg: string): string {
  return arg.replace(/^--?/, '').replace(/=.*$/, '').replace(/_/g, '-').replace(/^no-/, '');
}
