// The Node options a dataplane thread starts with: the process's own, less the module preloads
// and loader hooks meant for the main program.

import t from 'tap';
import { dataplaneExecArgv } from '../src/dataplane/supervisor.js';

t.test('preloads and loader hooks are dropped, in both forms; every other option stays', async (t) => {
  t.same(dataplaneExecArgv([]), []);
  t.same(dataplaneExecArgv(['--enable-source-maps', '--perf-basic-prof', '--max-old-space-size=512']),
    ['--enable-source-maps', '--perf-basic-prof', '--max-old-space-size=512'], 'nothing to drop');
  t.same(dataplaneExecArgv(['--import=file:///x/ts.mjs', '--enable-source-maps', '--import', './apm.mjs', '--trace-warnings']),
    ['--enable-source-maps', '--trace-warnings'], '--import=x and --import x');
  t.same(dataplaneExecArgv(['-r', 'agent', '--require=agent2', '--loader', 'ts-node/esm', '--experimental-loader=l.mjs', '--no-warnings']),
    ['--no-warnings'], '-r, --require, --loader, --experimental-loader');
  t.same(dataplaneExecArgv(['--import-meta-whatever', '--requirex']), ['--import-meta-whatever', '--requirex'],
    'only the exact option names');
});
