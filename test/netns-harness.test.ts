// The netns harness itself: two namespaces joined by a veth pair reach each other over
// IPv4 and IPv6 (and not an address nobody has), destroy() ends spawned processes and
// removes the namespaces, and genKey() agrees with an independent X25519 (@noble/curves).

import t from 'tap';
import { x25519 } from '@noble/curves/ed25519.js';
import { Netns, canRunNetns, netnsSkipReason, genKey, haveCommand, run, vethPair, waitFor } from './helpers/netns.js';

t.test('genKey matches an independent X25519', async (t) => {
  for (let i = 0; i < 8; i++) {
    const { privateKey, publicKey } = genKey();
    const sk = Buffer.from(privateKey, 'base64');
    t.equal(sk.length, 32);
    t.equal(sk[0]! & 7, 0, 'clamped low bits');
    t.equal(sk[31]! & 0xc0, 0x40, 'clamped high bits');
    t.equal(Buffer.from(x25519.getPublicKey(sk)).toString('base64'), publicKey);
  }
  const a = genKey();
  t.not(a.privateKey, genKey().privateKey, 'fresh keys');
});

t.test('genKey agrees with wg pubkey', { skip: haveCommand('wg') ? false : 'wg not installed' }, async (t) => {
  const { privateKey, publicKey } = genKey();
  const r = await run('wg', ['pubkey'], { input: privateKey + '\n' });
  t.equal(r.code, 0);
  t.equal(r.stdout.trim(), publicKey);
});

t.test('waitFor', async (t) => {
  let n = 0;
  t.equal(await waitFor(async () => ++n >= 3, 5_000, 1), true);
  t.equal(n, 3);
  t.equal(await waitFor(async () => false, 20, 5), false);
  t.equal(await waitFor(async () => { throw new Error('not yet'); }, 20, 5), false, 'a throwing predicate counts as false');
});

t.test('two namespaces, a veth pair, ping v4 and v6', { skip: netnsSkipReason }, async (t) => {
  t.ok(canRunNetns);
  t.ok(haveCommand('ping'), 'ping is installed');
  const a = await Netns.create('harness');
  t.teardown(() => a.destroy());
  const b = await Netns.create('harness');
  t.teardown(() => b.destroy());
  t.not(a.name, b.name, 'unique names');
  t.match(a.name, new RegExp(`^wpt-harness-${process.pid}-\\d+$`));

  const { aIf, bIf } = await vethPair(a, b, {
    aAddrs: ['198.51.100.1/24', '2001:db8::1/64'],
    bAddrs: ['198.51.100.2/24', '2001:db8::2/64'],
    mtu: 1400,
  });
  t.match(await a.ip(['-o', 'link', 'show', 'dev', aIf]), /mtu 1400 .*state UP/);
  t.match(await b.ip(['-o', 'addr', 'show', 'dev', bIf]), /inet6 2001:db8::2\/64/);
  t.notMatch(await a.ip(['-o', 'link']), new RegExp(`\\b${bIf}\\b`), 'the peer end lives only in b');

  for (const [ns, dst] of [[a, '198.51.100.2'], [b, '198.51.100.1'], [a, '2001:db8::2'], [b, '2001:db8::1']] as const) {
    const r = await ns.exec('ping', ['-c', '1', '-W', '2', dst]);
    t.equal(r.code, 0, `${ns.name} pings ${dst}`);
    t.match(r.stdout, /1 received/);
  }
  const miss = await a.exec('ping', ['-c', '1', '-W', '1', '198.51.100.99']);
  t.not(miss.code, 0, 'an address nobody has does not answer');

  // Namespaces are isolated from the host: neither end of the pair is visible there.
  const host = await run('ip', ['-o', 'link', 'show']);
  t.notMatch(host.stdout, new RegExp(`\\b(${aIf}|${bIf})\\b`));

  const sleeper = a.spawn('sleep', ['1000']);
  const exited = new Promise<NodeJS.Signals | null>((resolve) => sleeper.once('exit', (_code, signal) => resolve(signal)));
  const inA = async (): Promise<boolean> => (await run('ip', ['netns', 'pids', a.name])).stdout.split('\n').includes(String(sleeper.pid));
  t.ok(await waitFor(inA, 5_000, 20), 'the spawned process runs inside a');

  await a.destroy();
  await b.destroy();
  await a.destroy(); // idempotent
  t.equal(await exited, 'SIGTERM', 'destroy ended the spawned process');
  const list = await run('ip', ['netns', 'list']);
  t.notMatch(list.stdout, new RegExp(`^${a.name}\\b`, 'm'), 'namespace a is gone');
  t.notMatch(list.stdout, new RegExp(`^${b.name}\\b`, 'm'), 'namespace b is gone');
  t.throws(() => a.spawn('true', []), /destroyed/);
});

t.test('destroy ends processes that escaped the harness (a detached daemon)', { skip: netnsSkipReason }, async (t) => {
  const ns = await Netns.create('harness');
  t.teardown(() => ns.destroy());
  // The shell starts a background sleep and exits at once, like a daemonising wirepool.
  const r = await ns.exec('sh', ['-c', 'setsid sleep 1000 >/dev/null 2>&1 & echo $!']);
  const pid = Number(r.stdout.trim());
  t.ok(pid > 0, 'background pid');
  const alive = (): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  t.ok(alive(), 'daemon running');
  await ns.destroy();
  t.ok(await waitFor(async () => !alive(), 5_000, 20), 'daemon ended by destroy');
  t.notMatch((await run('ip', ['netns', 'list'])).stdout, new RegExp(`^${ns.name}\\b`, 'm'));
});
