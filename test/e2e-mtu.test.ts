// End-to-end: the tunnel MTU (issue 8 item 4), in network namespaces against the real wireguard-go.
// - A runtime `ip link set mtu` applies to padding from the next packet: one packet's WireGuard
//   message, seen as the peer's received-bytes delta, is 32 + min(len rounded up to 16, MTU).
// - Any MTU up to 65535 works, as with wireguard-go and the kernel module: with MTU 34736 on both
//   ends (the outer datagrams are fragmented by the kernel), 30000-byte pings in both directions
//   over inner IPv4 and IPv6, iperf3 TCP, and an 8 MiB transfer compared by checksum end to end.
//   wirepool rebuilds its rings with 64 KiB slots when the MTU passes 9216.
import t, { type Test } from 'tap';
import { waitFor } from './helpers/netns.js';
import {
  type Pair, type PairOptions, e2eSkipReason, iperfClient, makePair, ping, pingReplies, pingUntilUp, startIperfServer, transfer, untilSteady,
} from './helpers/tunnel.js';

const skip = e2eSkipReason({ extra: ['ping', 'iperf3', 'socat', 'sha256sum'] });

async function pair(t: Test, opts: PairOptions): Promise<Pair> {
  const p = await makePair(opts);
  t.teardown(() => p.destroy());
  return p;
}

async function setMtu(p: Pair, mtu: number): Promise<void> {
  await p.a.ns.mustExec('ip', ['link', 'set', 'dev', p.a.ifname, 'mtu', String(mtu)]);
  await p.b.ns.mustExec('ip', ['link', 'set', 'dev', p.b.ifname, 'mtu', String(mtu)]);
}

/** B's received-bytes counter for A once it stops moving. */
const quietRx = async (p: Pair): Promise<number> => untilSteady(async () => (await transfer(p.b.ns, p.b.ifname, p.a.keys.publicKey)).rx);

t.test('a runtime MTU change applies to padding from the next packet on', { skip, timeout: 60_000 }, async (t) => {
  const p = await pair(t, { prefix: 'mtu-pad' });
  t.ok(await pingUntilUp(p.a.ns, p.b.inner4), 'tunnel up');
  // B must not answer (its reply would add to A's counters only, but keep B's rx clean of
  // anything but the one message): send one UDP datagram to a closed port. A 1297-byte inner
  // packet pads to 1312 at MTU 1420, and to exactly 1300 at MTU 1300.
  const send = (bytes: number): Promise<unknown> => p.a.ns.mustExec('python3', ['-c',
    'import socket,sys;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.sendto(b"x"*int(sys.argv[2]),(sys.argv[1],9))',
    p.b.inner4, String(bytes)]);
  const inner = 1297; // 20 IPv4 + 8 UDP + 1269 payload
  let before = await quietRx(p);
  await send(inner - 28);
  let after = await quietRx(p);
  t.equal(after - before, 32 + 1312, 'MTU 1420: padded to a multiple of 16');
  await p.a.ns.mustExec('ip', ['link', 'set', 'dev', p.a.ifname, 'mtu', '1300']);
  before = after;
  await send(inner - 28);
  after = await quietRx(p);
  t.equal(after - before, 32 + 1300, 'right after `ip link set mtu 1300`: padded only up to the MTU');
});

for (const outer of [4, 6] as const) {
  t.test(`MTU 34736 on both ends (outer IPv${outer}): 30000-byte pings, iperf3 TCP, an 8 MiB transfer by checksum`, { skip, timeout: 120_000 }, async (t) => {
    const p = await pair(t, { prefix: `mtu-j${outer}`, outer });
    t.ok(await pingUntilUp(p.a.ns, p.b.inner4), 'tunnel up at the default MTU');
    await setMtu(p, 34736);
    for (const [from, to, what] of [[p.a, p.b.inner4, 'A → B IPv4'], [p.b, p.a.inner4, 'B → A IPv4'], [p.a, p.b.inner6, 'A → B IPv6'], [p.b, p.a.inner6, 'B → A IPv6']] as const) {
      // The first one may race the dataplane's switch to larger slots: allow a retry.
      const ok = await waitFor(async () => pingReplies(await ping(from.ns, to, { count: 1, size: 30000 })) === 1, 10_000, 200);
      t.ok(ok, `30000-byte ping ${what}`);
      t.equal(pingReplies(await ping(from.ns, to, { count: 3, size: 30000, interval: 0.2 })), 3, `three more, ${what}`);
    }
    await startIperfServer(p.b.ns, p.b.inner4);
    const r = await iperfClient(p.a.ns, p.b.inner4, { seconds: 2 });
    t.ok(r.received > 1_000_000, `iperf3 TCP at MTU 34736 moved ${r.received} bytes`);
    // 8 MiB A → B through socat, compared by SHA-256.
    const file = `/tmp/wirepool-mtu-${process.pid}-${outer}`;
    const sum = (await p.a.ns.mustExec('bash', ['-c', `head -c 8388608 /dev/urandom > ${file}.src && sha256sum < ${file}.src`])).stdout.split(' ')[0];
    t.teardown(() => p.a.ns.exec('rm', ['-f', `${file}.src`, `${file}.dst`]));
    const server = p.b.ns.exec('bash', ['-c', `timeout 30 socat -u TCP-LISTEN:5400,bind=${p.b.inner4},reuseaddr STDOUT | sha256sum`], { timeoutMs: 40_000 });
    await waitFor(async () => (await p.b.ns.exec('ss', ['-ltn', 'sport = :5400'])).stdout.includes('5400'), 10_000, 100);
    const client = await p.a.ns.exec('bash', ['-c', `timeout 30 socat -u FILE:${file}.src TCP:${p.b.inner4}:5400`], { timeoutMs: 40_000 });
    t.equal(client.code, 0, 'socat sent the file');
    const got = (await server).stdout.split(' ')[0];
    t.equal(got, sum, '8 MiB arrived intact (SHA-256 equal)');
  });
}
