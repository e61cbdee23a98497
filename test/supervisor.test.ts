// The Node options a dataplane thread starts with: the process's own, less the module preloads
// and loader hooks meant for the main program, and never a list Node refuses to start a thread with.

import t from 'tap';
import { once } from 'node:events';
import { dataplaneExecArgv, newDataplaneWorker, withoutRefusedOptions } from '../src/dataplane/supervisor.js';

t.test('preloads and loader hooks are dropped, in both forms; every other option stays', async (t) => {
  t.equal(dataplaneExecArgv([]), undefined, 'nothing to drop: inherit');
  t.equal(dataplaneExecArgv(['--enable-source-maps', '--perf-basic-prof', '--max-old-space-size=512']), undefined,
    'nothing to drop: inherit, process-wide options included');
  t.same(dataplaneExecArgv(['--import=file:///x/ts.mjs', '--enable-source-maps', '--import', './apm.mjs', '--trace-warnings']),
    ['--enable-source-maps', '--trace-warnings'], '--import=x and --import x');
  t.same(dataplaneExecArgv(['-r', 'agent', '--require=agent2', '--loader', 'ts-node/esm', '--experimental-loader=l.mjs', '--no-warnings']),
    ['--no-warnings'], '-r, --require, --loader, --experimental-loader');
  t.equal(dataplaneExecArgv(['--import-meta-whatever', '--requirex']), undefined, 'only the exact option names');
});

t.test('the options a refusal names are left out', async (t) => {
  t.same(withoutRefusedOptions(['--a', '--perf-basic-prof', '--max-old-space-size=512', '--b'],
    'Initiated Worker with invalid execArgv flags: --perf-basic-prof, --max-old-space-size=512'), ['--a', '--b']);
  t.same(withoutRefusedOptions(['--a'], 'something else'), ['--a'], 'an unknown message leaves the list as it is');
});

/** The execArgv a thread started by newDataplaneWorker sees. */
async function threadExecArgv(execArgv: string[]): Promise<string[]> {
  const code = "require('node:worker_threads').parentPort.postMessage(process.execArgv)";
  const worker = newDataplaneWorker(code, { eval: true }, execArgv);
  const [argv] = (await once(worker, 'message')) as [string[]];
  await once(worker, 'exit');
  return argv;
}

t.test('a real thread starts with the preloads gone, also beside process-wide options Node refuses in a list', async (t) => {
  const argv = ['--import=/nonexistent/hook.mjs', '--perf-basic-prof', '--trace-warnings', '--max-old-space-size=700'];
  t.same(await threadExecArgv(argv), ['--trace-warnings'], 'the hook would fail to load: the thread ran without it');
  t.same(await threadExecArgv(argv), ['--trace-warnings'], 'settled once, the same again');
  t.same(await threadExecArgv(['--perf-basic-prof']), process.execArgv, 'nothing to drop: the thread inherits');
});
