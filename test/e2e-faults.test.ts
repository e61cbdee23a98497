// Fault handling of the live daemon (issue 5): a crypto worker killed in the middle of a
// transfer is replaced and the transfer completes; SIGHUP re-reads --config and applies
// only the difference, keeping an untouched peer's session (no new handshake).
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { genKey, waitFor } from './helpers/netns.js';
import {
  configText, e2eSkipReason, iperfClient, latestHandshake, makePair, pingReplies, ping, pingUntilUp, removeDir,
  startIperfServer, tempDir, wg,
} from './helpers/tunnel.js';

const skip = e2eSkipReason({ wireguardGo: true, extra: ['iperf3'] });

t.test('a crypto worker killed mid-transfer is replaced and the transfer recovers', { skip, timeout: 90_000 }, async (t) => {
  process.env.WIREPOOL_FAULT_INJECTION = '1';
  const pair = await makePair({ prefix: 'fault', workers: 1 });
  t.teardown(() => pair.destroy());
  delete process.env.WIREPOOL_FAULT_INJECTION;
  const { a, b } = pair;
  t.ok(await pingUntilUp(a.ns, b.inner4), 'tunnel up');
  const server = await startIperfServer(b.ns, b.inner4);
  t.teardown(() => { server.kill(); });
  const transfer = iperfClient(a.ns, b.inner4, { seconds: 6 });
  await new Promise((r) => setTimeout(r, 2000));
  process.kill(a.daemon.pid, 'SIGUSR2'); // terminates crypto worker 0 (the only one)
  const result = await transfer;
  t.ok(result.received > 0, `iperf3 completed across the worker restart (${result.received} bytes)`);
  t.match(a.daemon.stderr, /fault injection: terminating crypto worker 0/, 'the worker was really killed');
  t.match(a.daemon.stderr, /restart/i, 'the supervisor reported the restart');
  const r = await ping(a.ns, b.inner4, { count: 3, interval: 0.2 });
  t.equal(pingReplies(r), 3, 'tunnel works after the restart');
  t.equal(await a.ns.exec('kill', ['-0', String(a.daemon.pid)]).then((x) => x.code), 0, 'daemon still running');
});

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
