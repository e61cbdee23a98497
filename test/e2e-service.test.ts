// wirepool as an operator starts it: a --config file checked and resolved at start-up
// (host-name endpoints as wg(8) resolves them), a failed start saying why exactly once in the
// foreground and in daemon mode (a bad --config line, an endpoint host that does not resolve,
// a metrics address in use) with nothing left behind, and the systemd unit: Type=forking,
// whose exact ExecStart returns only once the interface exists and writes PIDFile=. Runs the
// real bin/wirepool in throw-away network namespaces; needs root, iproute2, wg (and
// wirepool's built dist/).

import t, { type Test } from 'tap';
import dns from 'node:dns';
import fs from 'node:fs';
import path from 'node:path';
import { Netns, genKey, haveCommand, isAlive, run, waitFor } from './helpers/netns.js';
import {
  CLEAN_ENV, REPO_ROOT, WIREPOOL_BIN, e2eSkipReason, pidsInNs, removeDir, removeStaleSockets, startWirepool, tempDir, uapiAnswers,
  uniqueIfname, wg,
} from './helpers/tunnel.js';

const skip = e2eSkipReason({ wireguardGo: false });
const EXIT_WITHIN_MS = 5_000;

/** A namespace destroyed in t's teardown, with the socket files of `ifnames` removed too. */
async function namespace(t: Test, prefix: string, ifnames: string[] = []): Promise<Netns> {
  const ns = await Netns.create(prefix);
  t.teardown(async () => {
    await ns.destroy();
    removeStaleSockets(ifnames);
  });
  return ns;
}

/** `wirepool ARGS` run to completion in ns (no LOG_LEVEL, so a daemon holds no pipe of ours). */
const wirepool = (ns: Netns, args: string[], timeoutMs = 15_000): ReturnType<Netns['exec']> =>
  ns.exec('env', [...CLEAN_ENV, process.execPath, WIREPOOL_BIN, ...args], { timeoutMs });

const linkExists = async (ns: Netns, ifname: string): Promise<boolean> =>
  (await run('ip', ['-n', ns.name, 'link', 'show', 'dev', ifname])).code === 0;

/** Writes `text` to a file in a temp directory removed in t's teardown; returns its path. */
function configFile(t: Test, name: string, text: string): string {
  const dir = tempDir('conf');
  t.teardown(() => removeDir(dir));
  const file = path.join(dir, name);
  fs.writeFileSync(file, text, { mode: 0o600 });
  return file;
}

/** Non-empty stderr lines. */
const lines = (s: string): string[] => s.split('\n').filter((l) => l.trim() !== '');

t.test('a failed start says why exactly once, in the foreground and in daemon mode, and leaves nothing behind', { skip, timeout: 180_000 }, async (t) => {
  const ifname = uniqueIfname('bad');
  const ns = await namespace(t, 'badconf', [ifname]);
  const peer = genKey().publicKey;
  const cases: Array<[string, string, RegExp]> = [
    ['a /33 allowed IP', `[Interface]\n\n[Peer]\nPublicKey = ${peer}\nAllowedIPs = 10.0.0.1/32, 10.0.0.2/33\n`,
      /bad\.conf:5: AllowedIP is not in the correct format: `10\.0\.0\.2\/33'/],
    ['an endpoint host that does not resolve', `[Interface]\n[Peer]\nPublicKey = ${peer}\nEndpoint = no-such-host.invalid:51820\n`,
      /bad\.conf:4: Unable to resolve endpoint host `no-such-host\.invalid' \(\w+\): `no-such-host\.invalid:51820'/],
  ];
  for (const [what, text, message] of cases) {
    const file = configFile(t, 'bad.conf', text);
    for (const [mode, args, env] of [
      ['foreground', ['-f', '--config', file, ifname], []],
      ['daemon mode, LOG_LEVEL=error', ['--config', file, ifname], ['LOG_LEVEL=error']],
      ['daemon mode', ['--config', file, ifname], []],
    ] as const) {
      const r = await ns.exec('env', [...CLEAN_ENV, ...env, process.execPath, WIREPOOL_BIN, ...args], { timeoutMs: 40_000 });
      t.equal(r.code, 1, `${what}, ${mode}: exit status 1`);
      t.equal(lines(r.stderr).length, 1, `${what}, ${mode}: one line on stderr (${r.stderr.trim()})`);
      t.match(r.stderr, message, `${what}, ${mode}: names the file, line and value`);
      t.notOk(await linkExists(ns, ifname), `${what}, ${mode}: no interface was created`);
      t.same(await pidsInNs(ns, ifname), [], `${what}, ${mode}: no daemon is left running once it returned`);
    }
  }
});

t.test('--config resolves host-name endpoints at start-up, as wg(8) does', { skip, timeout: 30_000 }, async (t) => {
  const ifname = uniqueIfname('dns');
  const ns = await namespace(t, 'dnsname', [ifname]);
  const peer = genKey().publicKey;
  const file = configFile(t, 'host.conf', `[Interface]\nListenPort = 51820\n[Peer]\nPublicKey = ${peer}\nEndpoint = localhost:51999\nAllowedIPs = 10.0.0.2/32\n`);
  await startWirepool(ns, ifname, { extraArgs: ['--config', file] });
  const { address, family } = await dns.promises.lookup('localhost');
  t.equal((await wg(ns, ['show', ifname, 'endpoints'])).trim(), `${peer}\t${family === 6 ? `[${address}]` : address}:51999`,
    'the endpoint is the address localhost resolves to');
});

t.test('a metrics address already in use: the start fails saying it is the metrics endpoint', { skip, timeout: 40_000 }, async (t) => {
  const first = uniqueIfname('mt');
  const second = uniqueIfname('mt');
  const ns = await namespace(t, 'metrics-busy', [first, second]);
  await startWirepool(ns, first, { extraArgs: ['--metrics', '127.0.0.1:9586'] });
  for (const [mode, args] of [['foreground', ['-f']], ['daemon mode (as wg-quick runs it)', []]] as const) {
    const r = await wirepool(ns, [...args, '--metrics', '127.0.0.1:9586', second]);
    t.equal(r.code, 1, `${mode}: exit status 1`);
    t.equal(lines(r.stderr).length, 1, `${mode}: one line on stderr`);
    t.match(r.stderr, /metrics endpoint 127\.0\.0\.1:9586: the address is already in use/, `${mode}: says it is the metrics endpoint (${r.stderr.trim()})`);
    t.notOk(await linkExists(ns, second), `${mode}: the second interface is gone again`);
  }
  t.ok(await uapiAnswers(ns, first), 'the first daemon still runs');
});

t.test('systemd unit: Type=forking with PIDFile; its ExecStart returns once the interface exists', { skip, timeout: 60_000 }, async (t) => {
  const unit = fs.readFileSync(path.join(REPO_ROOT, 'systemd', 'wirepool@.service'), 'utf8');
  const setting = (key: string): string[] => [...unit.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!);
  t.same(setting('Type'), ['forking'], 'Type=forking');
  const [pidFileTemplate] = setting('PIDFile');
  t.ok(pidFileTemplate, 'PIDFile= is set');
  const [execStart] = setting('ExecStart');
  t.match(execStart, /^\/usr\/bin\/node \/opt\/wirepool\/bin\/wirepool /, 'runs the installed code with /usr/bin/node');
  t.notMatch(execStart, /\s(-f|--foreground)\s/, 'in daemon mode');
  t.ok(execStart!.includes(`--pid-file ${pidFileTemplate}`), 'and tells the daemon to write PIDFile=');

  // systemd-analyze verify, where it is installed (with node's path here, which it checks).
  if (haveCommand('systemd-analyze')) {
    const dir = tempDir('unit');
    t.teardown(() => removeDir(dir));
    fs.writeFileSync(path.join(dir, 'wirepool@.service'), unit.replaceAll('/usr/bin/node', process.execPath));
    const v = await run('systemd-analyze', ['verify', '--man=no', path.join(dir, 'wirepool@wg0.service')]);
    t.equal(v.code, 0, 'systemd-analyze verify passes');
    t.same(lines(v.stderr + v.stdout).filter((l) => l.includes('wirepool@')), [], 'with no complaint about the unit');
  }

  // The exact ExecStart, with the installed paths mapped to this checkout and a temp directory.
  const ifname = uniqueIfname('sd');
  const ns = await namespace(t, 'systemd', [ifname]);
  const dir = tempDir('systemd');
  t.teardown(() => removeDir(dir));
  const confFile = path.join(dir, `${ifname}.conf`);
  fs.writeFileSync(confFile, '[Interface]\nListenPort = 51820\n', { mode: 0o600 });
  const pidFile = path.join(dir, `${ifname}.pid`);
  const argv = execStart!.replaceAll('%i', ifname).replace(`--pid-file ${pidFileTemplate!.replaceAll('%i', ifname)}`, `--pid-file ${pidFile}`)
    .replace(`/etc/wireguard/${ifname}.conf`, confFile).split(/\s+/)
    .map((a) => (a === '/usr/bin/node' ? process.execPath : a.replace(/^\/opt\/wirepool\//, REPO_ROOT)));
  const env = setting('Environment');
  // The output goes to a file, as it goes to the journal (the daemon keeps it open).
  const log = path.join(dir, 'journal');
  const r = await ns.exec('env', [...CLEAN_ENV, ...env, 'sh', '-c', `exec "$@" >>${log} 2>&1`, 'sh', ...argv], { timeoutMs: 20_000 });
  const linkNow = await linkExists(ns, ifname);
  t.equal(r.code, 0, `ExecStart exits 0 (${fs.readFileSync(log, 'utf8').trim()})`);
  t.ok(linkNow, 'the interface existed when it returned');
  await ns.ip(['address', 'add', '10.77.0.1/24', 'dev', ifname]); // what an ExecStartPost= line does
  const mainPid = Number(fs.readFileSync(pidFile, 'utf8').trim());
  t.same(await pidsInNs(ns, ifname), [mainPid], 'PIDFile names the one daemon process');

  // ExecReload (kill -HUP $MAINPID) re-reads the file.
  const peer = genKey().publicKey;
  fs.writeFileSync(confFile, `[Interface]\nListenPort = 51820\n[Peer]\nPublicKey = ${peer}\nAllowedIPs = 10.77.0.2/32\n`, { mode: 0o600 });
  process.kill(mainPid, 'SIGHUP');
  t.ok(await waitFor(async () => (await wg(ns, ['show', ifname, 'peers'])).includes(peer), 5_000, 50), 'reload applied the new peer');
  process.kill(mainPid, 'SIGTERM');
  t.ok(await waitFor(async () => !isAlive(mainPid), EXIT_WITHIN_MS, 50), 'SIGTERM stops it');
  t.notOk(fs.existsSync(pidFile), 'and the PID file is removed');
  t.same(lines(fs.readFileSync(log, 'utf8')), [], 'nothing was logged at LOG_LEVEL=error');
});
