// The wirepool process as wg-quick and an operator see it: command-line errors, --version,
// daemon mode returning only once the interface and the UAPI socket exist, shutdown on
// SIGTERM / socket deletion / TUN deletion, refusal to run twice on one interface name,
// daemon mode giving up on (and killing) a child that never reports readiness, and logs
// free of key material. Runs the real bin/wirepool in throw-away network
// namespaces; needs root, iproute2, wg (and wirepool's built dist/).

import t, { type Test } from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { Netns, genKey, isAlive, run, waitFor } from './helpers/netns.js';
import {
  CLEAN_ENV,
  REPO_ROOT,
  WIREPOOL_BIN,
  type Daemon,
  e2eSkipReason,
  makePair,
  pidsInNs,
  ping,
  pingReplies,
  pingUntilUp,
  removeDir,
  removeStaleSockets,
  socketPath,
  startWirepool,
  tempDir,
  uapiAnswers,
  uapiRequest,
  uniqueIfname,
  wg,
} from './helpers/tunnel.js';

const skip = e2eSkipReason({ wireguardGo: false, extra: ['ping'] });
const builtSkip = fs.existsSync(path.join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js')) ? false : 'needs a built dist/';
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

t.test('bad command-line arguments: non-zero exit, a message on stderr, nothing created', { skip, timeout: 60_000 }, async (t) => {
  const if1 = uniqueIfname('arg');
  const if2 = uniqueIfname('arg');
  const ns = await namespace(t, 'args', [if1, if2]);
  const cases: Array<[string, string[], RegExp]> = [
    ['no arguments', [], /interface name/],
    ['only -f', ['-f'], /interface name/],
    ['two interface names', [if1, if2], /one interface name/],
    ['two interface names, foreground', ['-f', if1, if2], /one interface name/],
    ['--workers 0', ['--workers', '0', if1], /--workers/],
    ['--workers without a value', [if1, '--workers'], /--workers/],
    ['--workers not a number', ['--workers', 'many', if1], /--workers/],
    ['interface name with a slash', ['wp/x'], /invalid interface name/],
    ['interface name too long', ['wp' + 'x'.repeat(14)], /invalid interface name/],
    ['empty interface name', [''], /invalid interface name/],
    ['unknown option', ['--frobnicate', if1], /unknown option/],
  ];
  const results = await Promise.all(cases.map(([, args]) => wirepool(ns, args)));
  cases.forEach(([name, , message], i) => {
    const r = results[i]!;
    t.not(r.code, 0, `${name}: non-zero exit (${r.code})`);
    t.match(r.stderr, message, `${name}: says why on stderr`);
  });
  t.notOk(await linkExists(ns, if1), 'no interface was created');
  t.notOk(fs.existsSync(socketPath(if1)) || fs.existsSync(socketPath(if2)), 'no socket was created');
  t.same(await pidsInNs(ns, if1), [], 'no daemon is left running');
});

t.test('--version and --help exit 0', { skip: builtSkip, timeout: 20_000 }, async (t) => {
  const v = await run(process.execPath, [WIREPOOL_BIN, '--version']);
  t.equal(v.code, 0, '--version exits 0');
  t.match(v.stdout, /^wirepool v\d+\.\d+\.\d+/, 'and prints the version');
  const h = await run(process.execPath, [WIREPOOL_BIN, '--help']);
  t.equal(h.code, 0, '--help exits 0');
  t.match(h.stdout, /Usage: wirepool/, 'and prints usage');
});

t.test('daemon mode returns only once the interface and the socket exist', { skip, timeout: 30_000 }, async (t) => {
  const ifname = uniqueIfname('dm');
  const ns = await namespace(t, 'daemon', [ifname]);
  const r = await wirepool(ns, [ifname]);
  // Checked right away, before anything else gets a chance to run.
  const sockNow = fs.existsSync(socketPath(ifname)) && fs.statSync(socketPath(ifname)).isSocket();
  const linkNow = await linkExists(ns, ifname);
  t.equal(r.code, 0, `wirepool IF exits 0 (${r.stderr.trim()})`);
  t.ok(sockNow, 'the UAPI socket existed when the command returned');
  t.ok(linkNow, 'the interface existed when the command returned');
  t.ok(await uapiAnswers(ns, ifname), 'wg show answers');
  const pids = await pidsInNs(ns, ifname);
  t.equal(pids.length, 1, 'one detached daemon keeps running');
  const mode = fs.statSync(socketPath(ifname)).mode & 0o777;
  t.equal(mode & 0o077, 0, `the socket is private to its owner (mode ${mode.toString(8)})`);

  process.kill(pids[0]!, 'SIGTERM');
  t.ok(await waitFor(async () => (await pidsInNs(ns, ifname)).length === 0, EXIT_WITHIN_MS, 50), 'the daemon exits on SIGTERM');
  t.notOk(fs.existsSync(socketPath(ifname)), 'and removes its socket');
  t.notOk(await linkExists(ns, ifname), 'and its interface');
});

t.test('daemon mode kills a child that never reports readiness and fails', { skip, timeout: 60_000 }, async (t) => {
  const ifname = uniqueIfname('hang');
  const ns = await namespace(t, 'hang', [ifname]);
  // A --config that is a FIFO nobody writes: the child's read of it never returns (as on a hung
  // network file system), so it never says 'ok'.
  const dir = tempDir('hang');
  t.teardown(() => removeDir(dir));
  const fifo = path.join(dir, 'wg.conf');
  t.equal((await run('mkfifo', [fifo])).code, 0, 'a FIFO as the config file');
  const r = await ns.exec('env', [...CLEAN_ENV, 'WIREPOOL_START_TIMEOUT_MS=2000', process.execPath, WIREPOOL_BIN, '--config', fifo, ifname], { timeoutMs: 40_000 });
  t.not(r.code, -1, 'wirepool IF returned by itself (the test did not have to kill it)');
  t.equal(r.code, 1, 'with exit status 1');
  const m = /daemon \(pid (\d+)\) did not report readiness within 2000 ms; killed it/.exec(r.stderr);
  t.ok(m, `says why on stderr (${r.stderr.trim()})`);
  if (m) t.notOk(isAlive(Number(m[1])), 'the child it named is gone (killed and reaped, not a zombie)');
  t.same(await pidsInNs(ns, ifname), [], 'no wirepool process is left in the namespace');
  t.notOk(await linkExists(ns, ifname), 'and no interface');

  // Without the stalled file the same interface now starts: the killed child's leftovers do not block a retry.
  const ok = await wirepool(ns, [ifname]);
  t.equal(ok.code, 0, `a second try without it exits 0 (${ok.stderr.trim()})`);
  const pids = await pidsInNs(ns, ifname);
  t.equal(pids.length, 1, 'and leaves one daemon running');
  for (const pid of pids) process.kill(pid, 'SIGTERM');
  t.ok(await waitFor(async () => (await pidsInNs(ns, ifname)).length === 0, EXIT_WITHIN_MS, 50), 'which exits on SIGTERM');
});

t.test('shutdown triggers', { skip, timeout: 120_000 }, async (t) => {
  const triggers: Array<[string, (d: Daemon) => Promise<void>, string]> = [
    ['SIGTERM', async (d) => void d.child!.kill('SIGTERM'), 'socket and interface'],
    ['SIGINT', async (d) => void d.child!.kill('SIGINT'), 'socket and interface'],
    ['socket file deleted', async (d) => fs.unlinkSync(socketPath(d.ifname)), 'interface'],
    ['TUN device deleted', async (d) => void (await d.ns.ip(['link', 'del', 'dev', d.ifname])), 'socket'],
  ];
  for (const [name, trigger] of triggers) {
    t.test(name, { timeout: 30_000 }, async (t) => {
      const ifname = uniqueIfname('sd');
      const ns = await namespace(t, 'shutdown', [ifname]);
      const d = await startWirepool(ns, ifname);
      await ns.ip(['addr', 'add', '10.77.0.1/24', 'dev', ifname]);
      await ns.ip(['link', 'set', 'dev', ifname, 'up']);
      await trigger(d);
      t.ok(await d.exited(EXIT_WITHIN_MS), `exits within ${EXIT_WITHIN_MS} ms`);
      t.equal(d.child!.exitCode, 0, 'with status 0');
      t.notOk(fs.existsSync(socketPath(ifname)), 'the socket is gone');
      t.notOk(await linkExists(ns, ifname), 'the interface is gone');
      t.match(d.stderr, /"msg":"shutting down"/, 'it logged the shutdown');
    });
  }
});

t.test('a second instance on the same interface name fails cleanly', { skip, timeout: 40_000 }, async (t) => {
  const ifname = uniqueIfname('dup');
  const ns = await namespace(t, 'dup-a', [ifname]);
  const other = await namespace(t, 'dup-b');
  const first = await startWirepool(ns, ifname);
  const attempts: Array<[string, Netns, string[]]> = [
    ['same namespace, foreground', ns, ['-f', ifname]],
    ['same namespace, daemon mode', ns, [ifname]],
    ['another namespace (shared socket directory)', other, [ifname]],
  ];
  for (const [name, where, args] of attempts) {
    const r = await wirepool(where, args);
    t.not(r.code, 0, `${name}: non-zero exit`);
    t.match(r.stderr, new RegExp(`${ifname}.*(already exists|in use)`), `${name}: clear message (${r.stderr.trim()})`);
  }
  t.notOk(await linkExists(other, ifname), 'no interface was left in the other namespace');
  t.equal(first.child!.exitCode, null, 'the first instance still runs');
  t.ok(fs.existsSync(socketPath(ifname)), 'its socket is still there');
  t.ok(await uapiAnswers(ns, ifname), 'and answers');
  t.equal((await pidsInNs(ns, ifname)).length, 1, 'only one daemon runs');
});

t.test('logs (LOG_LEVEL=verbose) never contain private or preshared keys', { skip, timeout: 40_000 }, async (t) => {
  const psk = genKey().privateKey;
  const p = await makePair({ outer: 4, b: 'wirepool', pskA: psk, pskB: psk, prefix: 'logs' });
  t.teardown(() => p.destroy());
  t.ok(await pingUntilUp(p.a.ns, p.b.inner4), 'handshake and ping');
  t.equal(pingReplies(await ping(p.b.ns, p.a.inner6, { count: 2 })), 2, 'both ways');
  // Read-back paths and a rejected line that carries key material.
  await wg(p.a.ns, ['showconf', p.a.ifname]);
  await wg(p.a.ns, ['show', p.a.ifname, 'private-key']);
  const hex = (b64: string): string => Buffer.from(b64, 'base64').toString('hex');
  const bad = await uapiRequest(p.a.ifname, `set=1\nprivate_key=${hex(p.a.keys.privateKey)}0\n\n`);
  t.match(bad.reply, /errno=-22\n\n/, 'a malformed private_key line is rejected');
  const bad2 = await uapiRequest(p.a.ifname, `set=1\npublic_key=${hex(p.b.keys.publicKey)}\npreshared_key=${hex(psk)}zz\n\n`);
  t.match(bad2.reply, /errno=-22\n\n/, 'a malformed preshared_key line is rejected');
  t.ok(await pingUntilUp(p.a.ns, p.b.inner4), 'the tunnel still works');

  const secrets: Array<[string, string]> = [
    ['A private key (base64)', p.a.keys.privateKey],
    ['A private key (hex)', hex(p.a.keys.privateKey)],
    ['B private key (base64)', p.b.keys.privateKey],
    ['B private key (hex)', hex(p.b.keys.privateKey)],
    ['preshared key (base64)', psk],
    ['preshared key (hex)', hex(psk)],
  ];
  for (const [side, d] of [['A', p.a.daemon], ['B', p.b.daemon]] as const) {
    const log = d.stderr;
    t.match(log, /"msg":"handshake complete"/, `${side}: the log is not empty (has the handshake)`);
    const lines = log.split('\n').filter((l) => l.trim() !== '');
    const notJson = lines.filter((l) => {
      try {
        return typeof JSON.parse(l) !== 'object';
      } catch {
        return true;
      }
    });
    t.same(notJson, [], `${side}: every stderr line is a JSON object`);
    const lower = log.toLowerCase();
    for (const [what, secret] of secrets) {
      const found = what.endsWith('(hex)') ? lower.includes(secret) : log.includes(secret);
      t.notOk(found, `${side}: log does not contain the ${what}`);
    }
  }
});
