// The Node options our own threads start with: the dataplane threads (src/dataplane/supervisor.ts)
// and the handshake workers' piscina pool (src/handshake-offload.ts).
//
// A thread inherits the process's execArgv except the module preloads and loader hooks (--import,
// --require, --loader): those are for the main program (an APM agent, a TypeScript loader, a test
// runner's instrumentation), and loaded again in every thread they cost each one its own copy,
// ~0.8 s of CPU each for a TypeScript loader on a small VM, before it can work. Our threads import
// only our compiled modules. With nothing to drop, a thread simply inherits (Node's default). An
// explicit list may not hold the process-wide options (V8 flags such as --max-old-space-size or
// --perf-basic-prof, --title, ...): Node refuses the Worker (ERR_WORKER_INVALID_EXEC_ARGV, naming
// them) although they already apply to every thread; those named are left out and the list is
// settled once per process; should Node still refuse, threads inherit everything as before.

/** Options that load code into a thread before its module: the main program's, not ours. */
const PRELOAD_OPTIONS = ['--import', '--require', '-r', '--loader', '--experimental-loader'];

/**
 * `execArgv` without its module preloads and loader hooks (`--import=x` and `--import x` forms);
 * undefined when it has none (the thread inherits).
 */
export function withoutPreloads(execArgv: readonly string[]): string[] | undefined {
  const out: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const arg = execArgv[i]!;
    const eq = arg.indexOf('=');
    const name = eq < 0 ? arg : arg.slice(0, eq);
    if (!PRELOAD_OPTIONS.includes(name)) out.push(arg);
    else if (eq < 0) i++; // its value is the next argument
  }
  return out.length === execArgv.length ? undefined : out;
}

/** The options of `argv` that Node's ERR_WORKER_INVALID_EXEC_ARGV message names are left out. */
export function withoutRefusedOptions(argv: readonly string[], message: string): string[] {
  const colon = message.lastIndexOf(': ');
  const refused = new Set(colon < 0 ? [] : message.slice(colon + 2).split(', ').map((s) => s.trim()));
  return argv.filter((arg) => !refused.has(arg));
}

/** The execArgv settled per process execArgv (undefined: inherit). */
const settled = new Map<string, string[] | undefined>();

/**
 * Start a thread (or a pool whose constructor starts one) with `execArgv` less the main program's
 * preloads, as Node accepts it (see the header). `start` must throw Node's refusal synchronously,
 * as `new Worker` and `new Piscina` do; it is called again with a shorter list after one.
 */
export function startThread<T>(start: (execArgv: string[] | undefined) => T, execArgv: readonly string[] = process.execArgv): T {
  const key = execArgv.join('\0');
  if (settled.has(key)) return start(settled.get(key));
  let argv = withoutPreloads(execArgv);
  for (let attempt = 0; ; attempt++) {
    try {
      const started = start(argv);
      settled.set(key, argv);
      return started;
    } catch (err) {
      if (argv === undefined || (err as { code?: unknown }).code !== 'ERR_WORKER_INVALID_EXEC_ARGV') throw err;
      argv = attempt === 0 ? withoutRefusedOptions(argv, (err as Error).message) : undefined;
    }
  }
}
