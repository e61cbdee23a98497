// The Node options our threads start with (src/thread-options.ts): the process's own, less the
// module preloads and loader hooks meant for the main program, and never a list Node refuses to
// start a thread with — for plain Workers (the dataplane) and for a piscina pool (handshakes).

import t from 'tap';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { startThread, withoutPreloads, withoutRefusedOptions } from '../src/thread-options.js';

t.test('preloads and loader hooks are dropped, in both forms; every other option stays', async (t) => {
  t.equal(withoutPreloads([]), undefined, 'nothing to drop: inherit');
  t.equal(withoutPreloads(['--enable-source-maps', '--perf-basic-prof', '--max-old-space-size=512']), undefined,
    'nothing to drop: inherit, process-wide options included');
  t.same(withoutPreloads(['--import=file:///x/ts.mjs', '--enable-source-maps', '--import', './apm.mjs', '--trace-warnings']),
    ['--enable-source-maps', '--trace-warnings'], '--import=x and --import x');
  t.same(withoutPreloads(['-r', 'agent', '--require=agent2', '--loader', 'ts-node/esm', '--experimental-loader=l.mjs', '--no-warnings']),
    ['--no-warnings'], '-r, --require, --loader, --experimental-loader');
  t.equal(withoutPreloads(['--import-meta-whatever', '--requirex']), undefined, 'only the exact option names');
});

t.test('the options a refusal names are left out', async (t) => {
  t.same(withoutRefusedOptions(['--a', '--perf-basic-prof', '--max-old-space-size=512', '--b'],
    'Initiated Worker with invalid execArgv flags: --perf-basic-prof, --max-old-space-size=512'), ['--a', '--b']);
  t.same(withoutRefusedOptions(['--a'], 'something else'), ['--a'], 'an unknown message leaves the list as it is');
});

/** The execArgv a plain Worker started through startThread sees. */
async function workerExecArgv(execArgv: string[]): Promise<string[]> {
  const code = "require('node:worker_threads').parentPort.postMessage(process.execArgv)";
  const worker = startThread((argv) => new Worker(code, { eval: true, execArgv: argv }), execArgv);
  const [argv] = (await once(worker, 'message')) as [string[]];
  await once(worker, 'exit');
  return argv;
}

t.test('a real thread starts with the preloads gone, also beside process-wide options Node refuses in a list', async (t) => {
  const argv = ['--import=/nonexistent/hook.mjs', '--perf-basic-prof', '--trace-warnings', '--max-old-space-size=700'];
  t.same(await workerExecArgv(argv), ['--trace-warnings'], 'the hook would fail to load: the thread ran without it');
  t.same(await workerExecArgv(argv), ['--trace-warnings'], 'settled once, the same again');
  t.same(await workerExecArgv(['--perf-basic-prof']), process.execArgv, 'nothing to drop: the thread inherits');
});

t.test('a piscina pool (the handshake workers) starts its threads the same way', async (t) => {
  const task = new URL('./fixtures/exec-argv-task.js', import.meta.url).href;
  const argv = ['--import=/nonexistent/hook.mjs', '--perf-basic-prof', '--no-deprecation', '--max-old-space-size=600'];
  const pool = startThread((execArgv) => new Piscina({ filename: task, minThreads: 1, maxThreads: 2, execArgv }), argv);
  try {
    const seen = (await Promise.all([pool.run(null), pool.run(null), pool.run(null)])) as string[][];
    for (const s of seen) t.same(s, ['--no-deprecation'], 'every pool thread: no hook (it would fail to load), no refused option');
  } finally {
    await pool.destroy();
  }
});
