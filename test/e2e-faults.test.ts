// Fault handling of the live daemon (issue 5): SIGHUP re-reads --config and applies only the
// difference, keeping an untouched peer's session (no new handshake). A reload file with any
// error (a malformed allowed IP, a host name that does not resolve) changes nothing, and the log
// names the file, line and value; a good one applies everything in it, friendly names and
// metrics options included (issue 11). A crypto worker killed mid-stream is device-pair.test's
// case: the daemon has no hook to kill one from outside.
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { type Netns, genKey, waitFor } from './helpers/netns.js';
import {
  type Daemon, METRICS_ADDR, METRICS_ARGS, configText, e2eSkipReason, latestHandshake, makePair, pingReplies, ping, pingUntilUp,
  removeDir, tempDir, wg,
} from './helpers/tunnel.js';

const skip = e2eSkipReason({ wireguardGo: true });

t.test('SIGHUP applies the changed peer list and keeps the untouched session', { skip, timeout: 90_000 }, async (t) => {
  const dir = tempDir('wirepool-hup-');
  t.teardown(() => removeDir(dir));
  const file = path.join(dir, 'wg.conf');
  fs.writeFileSync(file, '[Interface]\n', { mode: 0o600 });
  const pair = await makePair({ prefix: 'hup', wirepoolArgs: ['--config', file] });
  t.teardown(() => pair.destroy());
  const { a, b } = pair;
  t.ok(await pingUntilUp(a.ns, b.inner4), 'tunnel up');
  const before = await latestHandshake(a.ns, a.ifname, b.keys.publicKey);
  t.ok(before > 0, 'handshake done');

  const extra = genKey();
  const cfg = { ...a.config, peers: [...a.config.peers, { publicKey: extra.publicKey, allowedIps: ['10.77.9.9/32'] }] };
  fs.writeFileSync(file, configText(cfg), { mode: 0o600 });
  await new Promise((r) => setTimeout(r, 1100)); // a second passes, so a new handshake would show a new timestamp
  process.kill(a.daemon.pid, 'SIGHUP');
  t.ok(await waitFor(async () => (await wg(a.ns, ['show', a.ifname, 'peers'])).includes(extra.publicKey), 5_000), 'new peer added');
  t.match(a.daemon.stderr, /configuration reloaded/);
  const r = await ping(a.ns, b.inner4, { count: 3, interval: 0.2 });
  t.equal(pingReplies(r), 3, 'traffic still flows');
  t.equal(await latestHandshake(a.ns, a.ifname, b.keys.publicKey), before, 'no new handshake with the untouched peer');

  // Now remove the extra peer again and break the file: a bad file keeps the running config.
  fs.writeFileSync(file, configText(a.config), { mode: 0o600 });
  process.kill(a.daemon.pid, 'SIGHUP');
  t.ok(await waitFor(async () => !(await wg(a.ns, ['show', a.ifname, 'peers'])).includes(extra.publicKey), 5_000), 'removed peer is gone');
  fs.writeFileSync(file, '[Interface]\nBogusKey = 1\n', { mode: 0o600 });
  process.kill(a.daemon.pid, 'SIGHUP');
  t.ok(await waitFor(async () => /configuration reload failed/.test(a.daemon.stderr), 5_000), 'bad file reported');
  t.match((await wg(a.ns, ['show', a.ifname, 'peers'])), b.keys.publicKey, 'running configuration kept');
  t.equal(await latestHandshake(a.ns, a.ifname, b.keys.publicKey), before, 'session still the same');
});

/** How often `pattern` occurs in the daemon's log so far. */
const count = (log: string, pattern: RegExp): number => log.match(new RegExp(pattern.source, 'g'))?.length ?? 0;

/** Sends SIGHUP and waits for the reload's verdict; returns that log line. */
async function reloadAndWait(t: Test, daemon: Daemon, expect: 'reloaded' | 'failed'): Promise<string> {
  const ok = /"msg":"configuration reloaded"/;
  const failed = /"msg":"configuration reload failed[^\n]*/;
  const before = [count(daemon.stderr, ok), count(daemon.stderr, failed)];
  process.kill(daemon.pid, 'SIGHUP');
  const done = await waitFor(async () => count(daemon.stderr, ok) > before[0]! || count(daemon.stderr, failed) > before[1]!, 30_000, 50);
  t.ok(done, 'the reload finished');
  const lines = daemon.stderr.match(new RegExp(failed.source, 'g')) ?? [];
  t.equal(count(daemon.stderr, expect === 'reloaded' ? ok : failed), before[expect === 'reloaded' ? 0 : 1]! + 1, `reload ${expect}`);
  return expect === 'failed' ? lines[lines.length - 1] ?? '' : '';
}

t.test('a SIGHUP with any error in the file changes nothing: the file is checked whole first', { skip, timeout: 90_000 }, async (t) => {
  const dir = tempDir('wirepool-hupbad-');
  t.teardown(() => removeDir(dir));
  const file = path.join(dir, 'wg.conf');
  fs.writeFileSync(file, '[Interface]\n', { mode: 0o600 });
  const pair = await makePair({ prefix: 'hupbad', wirepoolArgs: ['--config', file] });
  t.teardown(() => pair.destroy());
  const { a, b } = pair;
  const extra = genKey();
  const [bPeer] = a.config.peers;
  const good = { ...a.config, peers: [bPeer!, { publicKey: extra.publicKey, allowedIps: ['10.77.9.9/32'] }] };
  fs.writeFileSync(file, configText(good), { mode: 0o600 });
  await reloadAndWait(t, a.daemon, 'reloaded');
  t.ok(await pingUntilUp(a.ns, b.inner4), 'tunnel up');
  const running = await wg(a.ns, ['showconf', a.ifname]);
  t.match(running, /AllowedIPs = 10\.77\.9\.9\/32/, 'the good file applied');

  // Peer B gains an allowed IP (applied first, were anything applied); the other peer's
  // section has the error. `where` is what the log must name: file and line, value.
  const HELD_PORT = 51999;
  const bad: Array<[string, string, string, RegExp]> = [
    ['a /33 prefix', 'AllowedIPs = 10.77.9.9/32, 10.0.0.2/33', '10.0.0.2/33', /AllowedIP is not in the correct format: `10\.0\.0\.2\/33'/],
    ['an octet over 255', 'AllowedIPs = 10.77.9.9/32, 10.0.0.300/32', '10.0.0.300/32', /AllowedIP is not in the correct format: `10\.0\.0\.300\/32'/],
    ['a host name that does not resolve', 'AllowedIPs = 10.77.9.9/32\nEndpoint = no-such-host.invalid:51820', 'no-such-host', /Unable to resolve endpoint host `no-such-host\.invalid'/],
  ];
  for (const [what, lines, value, message] of bad) {
    const text = configText({ ...good, peers: [{ ...bPeer!, allowedIps: [...bPeer!.allowedIps, '10.77.5.5/32'] }, good.peers[1]!] })
      .replace('AllowedIPs = 10.77.9.9/32', lines);
    fs.writeFileSync(file, text, { mode: 0o600 });
    const line = text.split('\n').findIndex((l) => l.includes(value)) + 1;
    const logged = await reloadAndWait(t, a.daemon, 'failed');
    t.ok(logged.includes(`${file}:${line}: `), `${what}: the log names the file and line ${line} (${logged})`);
    t.match(logged, message, `${what}: and the value, in wg(8)'s words`);
    t.equal(await wg(a.ns, ['showconf', a.ifname]), running, `${what}: the running configuration is exactly as before (both peers' allowed IPs)`);
  }

  // A listen port another socket holds: the device refuses the request, and nothing changed.
  const holder = a.ns.spawn(process.execPath, ['-e', `require('node:dgram').createSocket('udp4').bind(${HELD_PORT}, '0.0.0.0', () => console.log('bound'))`]);
  let held = '';
  holder.stdout!.setEncoding('utf8').on('data', (d: string) => (held += d));
  t.ok(await waitFor(async () => held.includes('bound'), 5_000, 50), `another socket holds UDP port ${HELD_PORT}`);
  fs.writeFileSync(file, configText({ ...good, listenPort: HELD_PORT, peers: [{ ...bPeer!, allowedIps: [...bPeer!.allowedIps, '10.77.5.5/32'] }, good.peers[1]!] }), { mode: 0o600 });
  const logged = await reloadAndWait(t, a.daemon, 'failed');
  t.match(logged, new RegExp(`${file}: the device refused the configuration: failed to set listen_port: cannot bind listen port ${HELD_PORT}.*errno=-98`), `a taken listen port: the log says so (${logged})`);
  t.equal(await wg(a.ns, ['showconf', a.ifname]), running, 'a taken listen port: the running configuration is exactly as before');
  t.equal(pingReplies(await ping(a.ns, b.inner4, { count: 3, interval: 0.2 })), 3, 'traffic still flows');
});

/** wirepool's /metrics text, fetched inside ns. */
async function scrape(ns: Netns): Promise<string> {
  const script = `fetch("http://${METRICS_ADDR}/metrics").then((r) => r.text()).then((t) => process.stdout.write(t), (e) => { console.error(String(e)); process.exit(1); })`;
  const r = await ns.exec(process.execPath, ['-e', script], { timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`metrics in ${ns.name}: ${r.stderr.trim()}`);
  return r.stdout;
}

t.test('SIGHUP applies everything in the file: friendly names and metrics options too', { skip, timeout: 90_000 }, async (t) => {
  const dir = tempDir('wirepool-hupnames-');
  t.teardown(() => removeDir(dir));
  const file = path.join(dir, 'wg.conf');
  fs.writeFileSync(file, '[Interface]\n', { mode: 0o600 });
  const pair = await makePair({ prefix: 'hupname', wirepoolArgs: ['--config', file, ...METRICS_ARGS] });
  t.teardown(() => pair.destroy());
  const { a, b } = pair;
  const named = (name: string, interfaceLines = ''): string =>
    configText(a.config).replace('[Interface]', `[Interface]${interfaceLines}`).replace(`PublicKey = ${b.keys.publicKey}`, `PublicKey = ${b.keys.publicKey}\n# friendly_name = ${name}`);
  const series = (text: string, metric: string): string[] => text.split('\n').filter((l) => l.startsWith(`${metric}{`) && l.includes(b.keys.publicKey));

  t.same(series(await scrape(a.ns), 'wireguard_sent_bytes_total').filter((l) => l.includes('friendly_name')), [], 'no name before the reload');
  fs.writeFileSync(file, named('alpha'), { mode: 0o600 });
  await reloadAndWait(t, a.daemon, 'reloaded');
  t.match(series(await scrape(a.ns), 'wireguard_sent_bytes_total'), [/friendly_name="alpha"/], 'a new name applies on reload');

  fs.writeFileSync(file, named('beta', '\n# MetricsMdlayher = true'), { mode: 0o600 });
  await reloadAndWait(t, a.daemon, 'reloaded');
  const text = await scrape(a.ns);
  t.match(series(text, 'wireguard_sent_bytes_total'), [/friendly_name="beta"/], 'a renamed peer gets its new name');
  t.match(series(text, 'wireguard_peer_info'), [/name="beta"/], '# MetricsMdlayher applies on reload');
  t.ok(await pingUntilUp(a.ns, b.inner4), 'the tunnel works');
});
