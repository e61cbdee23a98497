// scripts/setup.sh against stand-ins for node, dpkg-query, apt-get and npm on a PATH that
// has nothing else: it refuses a Node.js older than package.json's engines before
// installing anything, installs node-gyp's compiler, make and python3 when they are
// missing, and adds prometheus only for `npm test` (npm_lifecycle_event=test).

import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCRIPT = path.join(ROOT, 'scripts', 'setup.sh');
const BASH = ['/bin/bash', '/usr/bin/bash'].find((p) => fs.existsSync(p));
const TOOLS = ['dirname', 'sed', 'grep'].map((c) => ['/usr/bin', '/bin'].map((d) => path.join(d, c)).find((p) => fs.existsSync(p)));
const skip = BASH === undefined || TOOLS.includes(undefined) ? 'needs bash, dirname, sed and grep' : false;

/** Runs setup.sh with a PATH of stand-ins; returns its result and the apt-get / npm calls it made. */
function runSetup(t: Test, opts: { nodeVersion: string; env?: Record<string, string> }): { status: number | null; stderr: string; apt: string; npm: string } {
  const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'wirepool-setup-'));
  t.teardown(() => fs.rmSync(bin, { recursive: true, force: true }));
  for (const tool of TOOLS) fs.symlinkSync(tool!, path.join(bin, path.basename(tool!)));
  const log = path.join(bin, 'calls');
  const stub = (name: string, body: string): void => fs.writeFileSync(path.join(bin, name), `#!${BASH}\n${body}\n`, { mode: 0o755 });
  const major = opts.nodeVersion.split('.')[0];
  stub('node', `case "$1" in --version) echo v${opts.nodeVersion};; -p) echo ${major};; *) exit 9;; esac`);
  // Every apt package is installed except prometheus.
  stub('dpkg-query', 'for a; do p=$a; done; [ "$p" = prometheus ] && exit 1; echo -n "install ok installed"');
  stub('apt-get', `echo "apt-get $*" >> ${log}`);
  stub('npm', `echo "npm $*" >> ${log}`);
  const env: Record<string, string> = { PATH: bin, ...opts.env };
  const r = spawnSync(BASH!, [SCRIPT], { env, encoding: 'utf8', timeout: 20_000 });
  const calls = fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '';
  const apt = calls.split('\n').filter((l) => l.startsWith('apt-get install')).join('\n');
  const npm = calls.split('\n').filter((l) => l.startsWith('npm')).join('\n');
  return { status: r.status, stderr: r.stderr, apt, npm };
}

t.test('a Node.js older than engines is refused before anything is installed', { skip }, async (t) => {
  const r = runSetup(t, { nodeVersion: '18.19.0' });
  t.equal(r.status, 1);
  t.match(r.stderr, /Node\.js v18\.19\.0 is too old; wirepool needs >= 20/);
  t.equal(r.apt, '', 'no apt-get install');
  t.equal(r.npm, '', 'no npm ci');
});

t.test("node-gyp's compiler, make and python3 are installed when missing; prometheus only for npm test", { skip }, async (t) => {
  const plain = runSetup(t, { nodeVersion: '20.11.1' });
  t.equal(plain.status, 0, plain.stderr);
  t.equal(plain.apt, 'apt-get install -y -qq --no-install-recommends gcc g++ make python3', 'the build tools, no prometheus');
  const test = runSetup(t, { nodeVersion: '22.1.0', env: { npm_lifecycle_event: 'test' } });
  t.equal(test.status, 0, test.stderr);
  t.equal(test.apt, 'apt-get install -y -qq --no-install-recommends prometheus gcc g++ make python3', 'npm test: prometheus too');
});
