// `npm run demo` (dist/scripts/demo.js) removes what it made — namespaces and the directory
// with the private keys — on every exit path: when a step fails, and when it is interrupted
// with Ctrl-C (SIGINT to its process group) in the middle of a step. A stand-in `wg` first on
// PATH makes `wg set` fail, or hang until interrupted. Needs root, iproute2 and a built dist/.

import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run, waitFor } from './helpers/netns.js';
import { REPO_ROOT, e2eSkipReason } from './helpers/tunnel.js';

const DEMO = path.join(REPO_ROOT, 'dist', 'scripts', 'demo.js');
const skip = e2eSkipReason({ wireguardGo: false }) || (fs.existsSync(DEMO) ? false : 'needs a built dist/');

/** A private directory removed in t's teardown. */
function dir(t: Test, prefix: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

/** Starts the demo in its own process group, with `wgScript` as `wg` and TMPDIR=tmp. */
function startDemo(t: Test, wgScript: string, tmp: string): { pid: number; exit: Promise<number | null>; output: () => string } {
  const bin = dir(t, 'wirepool-demo-bin-');
  fs.writeFileSync(path.join(bin, 'wg'), `#!/bin/sh\n${wgScript}\n`, { mode: 0o755 });
  const child = spawn(process.execPath, [DEMO], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}`, TMPDIR: tmp },
  });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (out += s));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
    await exit;
  });
  return { pid: child.pid!, exit, output: () => out };
}

/** The demo's namespaces (named after its pid) that still exist. */
async function demoNamespaces(pid: number): Promise<string[]> {
  const tag = String(pid % 10000);
  const list = (await run('ip', ['netns', 'list'])).stdout;
  return list.split('\n').map((l) => l.split(' ')[0]!).filter((n) => n === `wpdemo-a-${tag}` || n === `wpdemo-b-${tag}`);
}

t.test('a failed step: the key directory and the namespaces are removed', { skip, timeout: 60_000 }, async (t) => {
  const tmp = dir(t, 'wirepool-demo-tmp-');
  const demo = startDemo(t, '[ "$1" = set ] && { echo "wg: simulated failure" >&2; exit 1; }\nexit 0', tmp);
  t.equal(await demo.exit, 1, 'the demo fails');
  t.match(demo.output(), /demo failed: .*simulated failure/, 'and says why');
  t.same(fs.readdirSync(tmp), [], 'no key directory is left');
  t.same(await demoNamespaces(demo.pid), [], 'no namespace is left');
});

t.test('Ctrl-C in the middle of a step: the key directory and the namespaces are removed', { skip, timeout: 60_000 }, async (t) => {
  const tmp = dir(t, 'wirepool-demo-tmp-');
  const marker = path.join(dir(t, 'wirepool-demo-mark-'), 'in-wg-set');
  const demo = startDemo(t, `[ "$1" = set ] && { touch ${marker}; exec sleep 60; }\nexit 0`, tmp);
  t.ok(await waitFor(async () => fs.existsSync(marker), 30_000, 50), 'the demo reached `wg set`');
  t.equal(fs.readdirSync(tmp).length, 1, 'with its key directory made');
  process.kill(-demo.pid, 'SIGINT'); // what Ctrl-C sends: the whole process group
  t.equal(await demo.exit, 1, 'the demo ends with status 1');
  t.same(fs.readdirSync(tmp), [], 'no key directory is left');
  t.same(await demoNamespaces(demo.pid), [], 'no namespace is left');
});
