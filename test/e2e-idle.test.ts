// The idle path in C (native/idle.h, src/idle-path.ts, src/dataplane/idle-lease.ts): at idle a
// lone packet is read, sealed and sent, or received, opened, checked and written, by native code
// in main's event-loop callback under a lease main granted, before any JavaScript runs. Two
// wirepool daemons in network namespaces: idle pings take that path on both sides (the counters
// say so) and nothing the JavaScript path guarantees is lost — per-peer counters exact on both
// ends, no nonce reused (the receiver's replay window would count it), the cryptokey-routing
// table obeyed the moment it changes, keepalives from the timers interleaved with the leased
// counters, both inner families.
import t, { type Test } from 'tap';
import { IDLE_LAYOUT } from '../src/dataplane/idle-lease.js';
import { tunNative } from '../src/io/tun.js';
import { run } from './helpers/netns.js';
import {
  METRICS_ARGS, type Pair, e2eSkipReason, makeHub, makePair, metricsText, ping, pingReplies, pingUntilUp, steadyTransfers, wg,
} from './helpers/tunnel.js';

const skip = e2eSkipReason({ extra: ['ping'] });

async function pair(t: Test, prefix: string): Promise<Pair> {
  const p = await makePair({ outer: 4, b: 'wirepool', prefix, wirepoolArgs: METRICS_ARGS });
  t.teardown(() => p.destroy());
  return p;
}

/** The sum of a counter's series whose labels include `label` (e.g. 'kind="idle_send"'). */
async function counter(p: Pair, side: 'a' | 'b', name: string, label: string): Promise<number> {
  let sum = 0;
  for (const line of (await metricsText(p[side].ns)).split('\n')) {
    const m = /^([a-z_]+)\{([^}]*)\}\s+(\S+)$/.exec(line);
    if (m !== null && m[1] === name && m[2]!.includes(label)) sum += Number(m[3]);
  }
  return sum;
}

const idle = (p: Pair, side: 'a' | 'b', kind: 'idle_send' | 'idle_receive'): Promise<number> =>
  counter(p, side, 'wireguard_dataplane_inline_crypto_total', `kind="${kind}"`);
const drops = (p: Pair, side: 'a' | 'b', reason: string): Promise<number> =>
  counter(p, side, 'wireguard_dropped_packets_total', `reason="${reason}"`);

/** Every inbound drop that a reused nonce, a wrong key or a misrouted packet would cause: none allowed. */
async function badInbound(p: Pair, side: 'a' | 'b'): Promise<number> {
  let n = 0;
  for (const reason of ['replay', 'too_old', 'decrypt_failed', 'source_not_allowed', 'malformed', 'unknown_index']) n += await drops(p, side, reason);
  return n;
}

/** Transfer counters once they stop moving: A's tx equals B's rx and the other way round. */
async function checkTransfers(t: Test, p: Pair): Promise<void> {
  const { a, b } = await steadyTransfers(p);
  t.equal(a.tx, b.rx, `A sent exactly the bytes B received (${a.tx})`);
  t.equal(b.tx, a.rx, `B sent exactly the bytes A received (${b.tx})`);
}

t.test('the lease has the same layout in TypeScript and in C', async (t) => {
  t.same(tunNative().idleLayout, IDLE_LAYOUT);
});

t.test('idle pings take the C path on both daemons; counters and replay windows stay exact', { skip, timeout: 90_000 }, async (t) => {
  const p = await pair(t, 'idl1');
  t.ok(await pingUntilUp(p.a.ns, p.b.inner4), 'the tunnel is up');
  const before = [await idle(p, 'a', 'idle_send'), await idle(p, 'b', 'idle_receive'), await idle(p, 'b', 'idle_send'), await idle(p, 'a', 'idle_receive')];
  t.equal(pingReplies(await ping(p.a.ns, p.b.inner4, { count: 20, interval: 0.03 })), 20, '20 pings A → B, 30 ms apart');
  const after = [await idle(p, 'a', 'idle_send'), await idle(p, 'b', 'idle_receive'), await idle(p, 'b', 'idle_send'), await idle(p, 'a', 'idle_receive')];
  const moved = after.map((v, i) => v - before[i]!);
  // Each packet of a ping's round trip went through the C path unless main was busy right then.
  t.ok(moved.every((m) => m >= 10), `requests sent, received, replies sent, received in C: ${moved.join(' / ')} of 20`);
  t.equal(pingReplies(await ping(p.b.ns, p.a.inner6, { count: 10, interval: 0.03 })), 10, '10 pings B → A over IPv6');
  t.ok(await idle(p, 'b', 'idle_send') - after[2]! >= 5, 'IPv6 requests went through the C path too');
  t.equal(await badInbound(p, 'a'), 0, 'A dropped nothing as replayed, undecryptable or misrouted');
  t.equal(await badInbound(p, 'b'), 0, 'nor did B');
  await checkTransfers(t, p);
});

t.test('a route removed while a lease is out is obeyed at once', { skip, timeout: 90_000 }, async (t) => {
  const p = await pair(t, 'idl2');
  t.ok(await pingUntilUp(p.a.ns, p.b.inner4), 'the tunnel is up');
  t.equal(pingReplies(await ping(p.a.ns, p.b.inner4, { count: 3, interval: 0.05 })), 3, 'A has leased its peer at idle');
  const sent = await idle(p, 'a', 'idle_send');
  const noPeer = await drops(p, 'a', 'no_peer_for_destination');
  await wg(p.a.ns, ['set', p.a.ifname, 'peer', p.b.keys.publicKey, 'allowed-ips', `${p.b.inner6}/128`]);
  t.equal(pingReplies(await ping(p.a.ns, p.b.inner4, { count: 3, interval: 0.05 })), 0, 'with B\'s IPv4 address no longer routed to it, nothing gets through');
  t.equal(await drops(p, 'a', 'no_peer_for_destination') - noPeer, 3, 'each was dropped as having no peer');
  t.equal(await idle(p, 'a', 'idle_send'), sent, 'and none was sent from C');
  await wg(p.a.ns, ['set', p.a.ifname, 'peer', p.b.keys.publicKey, 'allowed-ips', `${p.b.inner4}/32,${p.b.inner6}/128`]);
  t.equal(pingReplies(await ping(p.a.ns, p.b.inner4, { count: 5, interval: 0.05 })), 5, 'the route back: pings get through');
  t.ok(await idle(p, 'a', 'idle_send') > sent, 'and the C path serves it again');
  // The other direction: B's address is A's source; a packet from an address A no longer routes to B
  // must be refused by A even when it arrives under a lease.
  await wg(p.a.ns, ['set', p.a.ifname, 'peer', p.b.keys.publicKey, 'allowed-ips', `${p.b.inner6}/128`]);
  const refused = await drops(p, 'a', 'source_not_allowed');
  await ping(p.b.ns, p.a.inner4, { count: 3, interval: 0.05 });
  t.equal(await drops(p, 'a', 'source_not_allowed') - refused, 3, 'B\'s pings from an address no longer allowed are refused by A');
});

t.test('keepalives from the timers between leased sends reuse no nonce', { skip, timeout: 90_000 }, async (t) => {
  const p = await pair(t, 'idl3');
  t.ok(await pingUntilUp(p.a.ns, p.b.inner4), 'the tunnel is up');
  await wg(p.a.ns, ['set', p.a.ifname, 'peer', p.b.keys.publicKey, 'persistent-keepalive', '1']);
  await wg(p.b.ns, ['set', p.b.ifname, 'peer', p.a.keys.publicKey, 'persistent-keepalive', '1']);
  const sent = await idle(p, 'a', 'idle_send');
  t.equal(pingReplies(await ping(p.a.ns, p.b.inner4, { count: 80, interval: 0.04 })), 80, '80 pings over 3 s, with a keepalive each second both ways');
  t.ok(await idle(p, 'a', 'idle_send') - sent >= 40, 'most went through the C path');
  t.equal(await badInbound(p, 'a'), 0, 'A saw no replayed or undecryptable message');
  t.equal(await badInbound(p, 'b'), 0, 'nor did B');
  await checkTransfers(t, p);
});

t.test('a lease covers several peers: pings to two peers at once are all served in C', { skip, timeout: 90_000 }, async (t) => {
  // A has two peers, B and C, each behind its own veth; each runs wirepool.
  const { ns, destroy } = await makeHub('idl4', () => METRICS_ARGS);
  t.teardown(destroy);
  t.ok(await pingUntilUp(ns[0], '10.77.0.2') && await pingUntilUp(ns[0], '10.77.0.3'), 'A reaches B and C');
  const count = async (kind: string): Promise<number> => {
    let sum = 0;
    for (const line of (await metricsText(ns[0])).split('\n')) {
      const m = /^wireguard_dataplane_inline_crypto_total\{[^}]*kind="([a-z_]+)"[^}]*\}\s+(\S+)$/.exec(line);
      if (m !== null && m[1] === kind) sum += Number(m[2]);
    }
    return sum;
  };
  const before = [await count('idle_send'), await count('idle_receive')];
  // Both pings at once: A's packets alternate between its two peers.
  const [toB, toC] = await Promise.all([ping(ns[0], '10.77.0.2', { count: 20, interval: 0.03 }), ping(ns[0], '10.77.0.3', { count: 20, interval: 0.03 })]);
  t.equal(pingReplies(toB) + pingReplies(toC), 40, 'every ping to either peer answered');
  const sent = await count('idle_send') - before[0]!;
  const received = await count('idle_receive') - before[1]!;
  // One lease entry would serve only runs of one peer's packets: about half of these.
  t.ok(sent >= 34 && received >= 34, `A sent and received them in C, both peers under one lease (${sent} / ${received} of 40)`);
});


t.test('a lease covers several addresses of one peer: pings to two of them at once are all served in C', { skip, timeout: 90_000 }, async (t) => {
  const p = await pair(t, 'idl5');
  const second = '10.77.0.12'; // B's second inner address (a host behind a site's gateway, say), routed to B by A
  await run('ip', ['-n', p.b.ns.name, 'address', 'add', `${second}/32`, 'dev', p.b.ifname]);
  await wg(p.a.ns, ['set', p.a.ifname, 'peer', p.b.keys.publicKey, 'allowed-ips', `${p.b.inner4}/32,${p.b.inner6}/128,${second}/32`]);
  t.ok(await pingUntilUp(p.a.ns, p.b.inner4) && await pingUntilUp(p.a.ns, second), 'A reaches both of B\'s addresses');
  const before = [await idle(p, 'a', 'idle_send'), await idle(p, 'a', 'idle_receive')];
  // Both pings at once, the second started half an interval later: A's packets alternate between
  // the two addresses of one peer (one keypair), one at a time (two that arrive together are one
  // receive of two datagrams, which is JavaScript's).
  const [one, two] = await Promise.all([
    ping(p.a.ns, p.b.inner4, { count: 20, interval: 0.03 }),
    new Promise((resolve) => setTimeout(resolve, 15)).then(() => ping(p.a.ns, second, { count: 20, interval: 0.03 })),
  ]);
  t.equal(pingReplies(one) + pingReplies(two), 40, 'every ping to either address answered');
  const sent = await idle(p, 'a', 'idle_send') - before[0]!;
  const received = await idle(p, 'a', 'idle_receive') - before[1]!;
  // With one entry per peer (its last address) A sent 3 and received 0 of these in C.
  t.ok(sent >= 34 && received >= 30, `A sent and received them in C, both addresses under one lease (${sent} / ${received} of 40)`);
  // Two entries share the keypair: disjoint reserved counters, one replay top.
  t.equal(await badInbound(p, 'a'), 0, 'A saw no replayed or undecryptable message');
  t.equal(await badInbound(p, 'b'), 0, 'nor did B');
  await checkTransfers(t, p);
});
