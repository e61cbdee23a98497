// Bad input against a live wirepool daemon with a working tunnel to wireguard-go: thousands
// of malformed UDP datagrams (every message type with wrong lengths, non-zero reserved bytes,
// random receiver indices, random initiations with and without a valid mac1) from a third
// namespace and from the peer's own address; replayed, forged and counter-bumped copies of a
// real transport message; garbage written into the TUN device and awkward pings; malformed
// UAPI requests compared with wireguard-go's replies. After each: the daemon is alive, `wg
// show` answers, the tunnel works both ways, the peer's endpoint did not move, and the daemon
// logged no error. Needs root, iproute2, wg, wireguard-go, ping; python3 for the raw-socket
// parts (AF_PACKET capture and TUN injection).

import t, { type Test } from 'tap';
import { fileURLToPath } from 'node:url';
import { Netns, haveCommand, vethPair, waitFor } from './helpers/netns.js';
import { testSeed } from './helpers/seeded-prng.js';
import {
  type Pair,
  e2eSkipReason,
  latestHandshake,
  makePair,
  peerEndpoint,
  ping,
  pingReplies,
  pingUntilUp,
  uapiRequest,
  wg,
} from './helpers/tunnel.js';

const skip = e2eSkipReason({ extra: ['ping'] });
const pySkip = haveCommand('python3') ? false : 'needs python3 (AF_PACKET sockets)';
const FUZZ_SENDER = fileURLToPath(new URL('./helpers/fuzz-sender.js', import.meta.url));
const FUZZ_COUNT = 6_000;
const PEER_FUZZ_COUNT = 1_500;

/** TUN rx packet counter of ifname in ns (packets wirepool wrote to the kernel). */
async function tunRxPackets(ns: Netns, ifname: string): Promise<number> {
  const j = JSON.parse(await ns.ip(['-j', '-s', 'link', 'show', 'dev', ifname])) as Array<{ stats64: { rx: { packets: number } } }>;
  return j[0]!.stats64.rx.packets;
}

/** The Udp: line of /proc/net/snmp in ns, by field name. */
async function udpStats(ns: Netns): Promise<Record<string, number>> {
  const lines = (await ns.mustExec('cat', ['/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Udp:'));
  const keys = lines[0]!.trim().split(/\s+/);
  const vals = lines[1]!.trim().split(/\s+/);
  return Object.fromEntries(keys.slice(1).map((k, i) => [k, Number(vals[i + 1])]));
}

/** Runs the fuzz sender in ns; returns its JSON summary. */
async function fuzzSender(ns: Netns, args: string[], timeoutMs = 30_000): Promise<{ sent: number; byCategory?: Record<string, number> }> {
  const r = await ns.exec(process.execPath, [FUZZ_SENDER, ...args], { timeoutMs });
  if (r.code !== 0) throw new Error(`fuzz-sender ${args.slice(0, 4).join(' ')} failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as { sent: number; byCategory?: Record<string, number> };
}

/** Error-level lines wirepool logged after offset `from` of its stderr (but `allow`). */
function errorLines(p: Pair, from: number, allow?: RegExp): string[] {
  return p.a.daemon.stderr
    .slice(from)
    .split('\n')
    .filter((l) => l.includes('"level":"error"') && !(allow?.test(l) ?? false));
}

/** The daemon survived and the tunnel still works as before. */
async function checkHealthy(t: Test, p: Pair, logFrom: number, endpointBefore: string, allowErrors?: RegExp): Promise<void> {
  t.equal(p.a.daemon.child!.exitCode, null, 'wirepool is still running');
  t.equal(p.a.daemon.child!.signalCode, null, 'and was not killed by a signal');
  const show = await p.a.ns.exec('wg', ['show', p.a.ifname], { timeoutMs: 5_000 });
  t.equal(show.code, 0, 'wg show answers');
  t.match(show.stdout, p.b.keys.publicKey, 'and lists the peer');
  t.ok(await pingUntilUp(p.a.ns, p.b.inner4), 'ping wirepool → wireguard-go (IPv4)');
  t.equal(pingReplies(await ping(p.a.ns, p.b.inner4, { count: 3 })), 3, '3 of 3');
  t.equal(pingReplies(await ping(p.b.ns, p.a.inner6, { count: 3 })), 3, 'ping wireguard-go → wirepool (IPv6): 3 of 3');
  t.equal(await peerEndpoint(p.a.ns, p.a.ifname, p.b.keys.publicKey), endpointBefore, 'the peer endpoint did not move');
  t.same(errorLines(p, logFrom, allowErrors), [], 'wirepool logged no errors');
}

const PY_CAPTURE = `
import socket, struct, select, sys, time
dev, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
s.bind((dev, 0))
print("ready", flush=True)
deadline = time.time() + 8
while time.time() < deadline:
    r, _, _ = select.select([s], [], [], 0.2)
    if not r:
        continue
    data, addr = s.recvfrom(65535)
    if addr[2] == socket.PACKET_OUTGOING or data[9] != 17:
        continue
    ihl = (data[0] & 15) * 4
    sport, dport, ulen = struct.unpack("!HHH", data[ihl:ihl + 6])
    payload = data[ihl + 8:ihl + ulen]
    if dport == port and len(payload) > 32 and payload[0] == 4:
        print(payload.hex(), flush=True)
        sys.exit(0)
sys.exit(1)
`;

const PY_TUN_GARBAGE = `
import os, random, socket, struct, sys
dev, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(seed)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
s.bind((dev, 0))
def rb(n): return bytes(rnd.getrandbits(8) for _ in range(n))
peer4, nopeer4 = bytes([10, 77, 0, 2]), bytes([10, 77, 0, 5])
peer6 = bytes.fromhex("fd770000000000000000000000000002")
nopeer6 = bytes.fromhex("fd770000000000000000000000000005")
def v4(dst, total_len, n):
    h = bytearray(rb(max(n, 20)))
    h[0] = 0x45
    h[2:4] = struct.pack("!H", total_len & 0xffff)
    h[16:20] = dst
    return bytes(h[:n])
def v6(dst, payload_len, n):
    h = bytearray(rb(max(n, 40)))
    h[0] = 0x60
    h[4:6] = struct.pack("!H", payload_len & 0xffff)
    h[24:40] = dst
    return bytes(h[:n])
kinds = [
    lambda: rb(rnd.randint(1, 1420)),
    lambda: rb(rnd.randint(1, 19)),
    lambda: v4(peer4, rnd.randint(0, 65535), rnd.randint(1, 19)),
    lambda: v4(peer4, rnd.randint(0, 65535), rnd.randint(20, 1420)),
    lambda: v4(nopeer4, rnd.randint(20, 1420), rnd.randint(20, 1420)),
    lambda: v6(peer6, rnd.randint(0, 65535), rnd.randint(1, 39)),
    lambda: v6(peer6, rnd.randint(0, 65535), rnd.randint(40, 1420)),
    lambda: v6(nopeer6, rnd.randint(0, 1380), rnd.randint(40, 1420)),
    lambda: bytes([rnd.choice([0x00, 0x10, 0x50, 0x70, 0xf0])]) + rb(rnd.randint(0, 200)),
]
sent = errors = 0
for _ in range(count):
    try:
        s.send(rnd.choice(kinds)())
        sent += 1
    except OSError:
        errors += 1
print(sent, errors)
`;

t.test('bad input against a live wirepool ↔ wireguard-go tunnel', { skip, timeout: 170_000 }, async (t) => {
  const seed = testSeed();
  t.comment(`seed ${seed} (WIREPOOL_SEED=${seed} to repeat)`);
  const p = await makePair({ outer: 4, prefix: 'bad' });
  t.teardown(() => p.destroy());
  const nsC = await Netns.create('bad-c');
  t.teardown(() => nsC.destroy());
  await vethPair(p.a.ns, nsC, { aAddrs: ['203.0.113.1/24'], bAddrs: ['203.0.113.2/24'] });
  t.ok(await pingUntilUp(p.b.ns, p.a.inner4), 'tunnel up');
  const endpointBefore = await peerEndpoint(p.a.ns, p.a.ifname, p.b.keys.publicKey);
  t.equal(endpointBefore, p.endpointOf(p.b), 'endpoint before');

  t.test('fuzzer self-check: its valid-mac1 initiations pass wireguard-go\'s mac1 check', { timeout: 20_000 }, async (t) => {
    const before = p.b.daemon.stderr.length;
    await fuzzSender(p.a.ns, ['fuzz', p.b.outer, String(p.b.listenPort), '3', String(seed), p.b.keys.publicKey, 'initiationValidMac1']);
    await fuzzSender(p.a.ns, ['fuzz', p.b.outer, String(p.b.listenPort), '3', String(seed), p.b.keys.publicKey, 'initiationRandom']);
    const ok = await waitFor(async () => (p.b.daemon.stderr.slice(before).match(/invalid initiation message/g) ?? []).length >= 3, 3_000, 50);
    const log = p.b.daemon.stderr.slice(before);
    t.ok(ok, 'wireguard-go got past mac1 and rejected the initiation itself (3 times)');
    t.match(log, /invalid mac1/, 'the random ones fail at mac1');
  });

  t.test(`${FUZZ_COUNT} malformed datagrams from a third namespace, ${PEER_FUZZ_COUNT} from the peer's address`, { timeout: 60_000 }, async (t) => {
    const logFrom = p.a.daemon.stderr.length;
    const hs0 = await latestHandshake(p.a.ns, p.a.ifname, p.b.keys.publicKey);
    const udp0 = await udpStats(p.a.ns);
    const c = await fuzzSender(nsC, ['fuzz', '203.0.113.1', String(p.a.listenPort), String(FUZZ_COUNT), String(seed), p.a.keys.publicKey]);
    t.equal(c.sent, FUZZ_COUNT, `sent ${c.sent}: ${JSON.stringify(c.byCategory)}`);
    const b = await fuzzSender(p.b.ns, ['fuzz', p.a.outer, String(p.a.listenPort), String(PEER_FUZZ_COUNT), String(seed + 1), p.a.keys.publicKey]);
    t.equal(b.sent, PEER_FUZZ_COUNT, `sent ${b.sent} from ${p.b.outer}, another port`);
    const udp1 = await udpStats(p.a.ns);
    const delivered = udp1.InDatagrams - udp0.InDatagrams;
    const dropped = udp1.RcvbufErrors - udp0.RcvbufErrors;
    t.comment(`wirepool's namespace: ${delivered} datagrams delivered to its socket, ${dropped} dropped by the kernel (full buffer)`);
    t.ok(delivered > 0, 'the datagrams reached wirepool\'s socket');
    await checkHealthy(t, p, logFrom, endpointBefore);
    const hs1 = await latestHandshake(p.a.ns, p.a.ifname, p.b.keys.publicKey);
    t.ok(hs1 >= hs0 && hs1 > 0, 'the session survived (a handshake is on record)');
  });

  t.test('replayed, forged and counter-bumped copies of a real transport message', { skip: pySkip, timeout: 40_000 }, async (t) => {
    const logFrom = p.a.daemon.stderr.length;
    const cap = p.a.ns.spawn('python3', ['-c', PY_CAPTURE, p.a.veth, String(p.a.listenPort)]);
    let out = '';
    cap.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
    const exited = new Promise<number | null>((r) => cap.once('exit', (code) => r(code)));
    t.ok(await waitFor(async () => out.startsWith('ready'), 5_000, 20), 'capture ready');
    await ping(p.b.ns, p.a.inner4, { count: 2 });
    t.equal(await exited, 0, 'captured a transport message from the peer');
    const orig = Buffer.from(out.split('\n')[1] ?? '', 'hex');
    t.ok(orig.length > 32 && orig[0] === 4, `a ${orig.length}-byte type 4 message`);

    const forged = Buffer.from(orig);
    forged[forged.length - 1]! ^= 0x01; // tag
    const forgedBody = Buffer.from(orig);
    forgedBody[20]! ^= 0x80; // ciphertext
    const bumped = Buffer.from(orig);
    bumped.writeBigUInt64LE(orig.readBigUInt64LE(8) + (1n << 40n), 8); // far ahead: must not move the window
    const hex = [orig, orig, forged, forgedBody, bumped, orig].map((b) => b.toString('hex'));

    const rx0 = await tunRxPackets(p.a.ns, p.a.ifname);
    await fuzzSender(nsC, ['send', '203.0.113.1', String(p.a.listenPort), ...hex]);
    await fuzzSender(p.b.ns, ['send', p.a.outer, String(p.a.listenPort), ...hex]);
    // In order after those, on the real path: must all be delivered (window not advanced).
    const NORMAL = 3;
    t.equal(pingReplies(await ping(p.b.ns, p.a.inner4, { count: NORMAL })), NORMAL, 'normal pings after them still work');
    const delivered = (await tunRxPackets(p.a.ns, p.a.ifname)) - rx0;
    t.equal(delivered, NORMAL, `wirepool delivered only the ${NORMAL} normal pings to its TUN (got ${delivered})`);
    await checkHealthy(t, p, logFrom, endpointBefore);
  });

  t.test('garbage and awkward packets into the TUN side', { timeout: 60_000 }, async (t) => {
    const logFrom = p.a.daemon.stderr.length;
    t.equal(pingReplies(await ping(p.a.ns, '10.77.0.5', { count: 2 })), 0, 'ping to an inner address with no peer: no reply');
    t.equal(pingReplies(await ping(p.a.ns, 'fd77::5', { count: 2 })), 0, 'same for IPv6');
    t.equal(pingReplies(await ping(p.a.ns, p.b.inner4, { count: 3, size: 0 })), 3, 'ping -s 0 works');
    t.equal(pingReplies(await ping(p.a.ns, p.b.inner6, { count: 3, size: 0 })), 3, 'ping -s 0 works over IPv6');
    const exact = await p.a.ns.exec('ping', ['-n', '-c', '3', '-W', '1', '-i', '0.2', '-M', 'do', '-s', String(1420 - 28), p.b.inner4], { timeoutMs: 10_000 });
    t.equal(pingReplies(exact), 3, 'full-MTU packets (1420, DF) work');
    t.equal(pingReplies(await ping(p.a.ns, p.b.inner4, { count: 3, size: 9000 })), 3, 'ping -s 9000 (fragmented) works');
    t.equal(pingReplies(await ping(p.a.ns, p.b.inner6, { count: 3, size: 9000 })), 3, 'ping -s 9000 over IPv6 works');
    t.equal(pingReplies(await ping(p.a.ns, p.b.inner4, { count: 2, size: 65000, interval: 0.5 })), 2, 'ping -s 65000 works');
    if (pySkip === false) {
      const r = await p.a.ns.exec('python3', ['-c', PY_TUN_GARBAGE, p.a.ifname, '3000', String(seed)], { timeoutMs: 30_000 });
      t.equal(r.code, 0, `raw garbage written into the TUN device (sent, errors: ${r.stdout.trim()}) ${r.stderr}`);
    } else {
      t.comment(`raw TUN garbage skipped: ${pySkip}`);
    }
    await checkHealthy(t, p, logFrom, endpointBefore);
  });

  t.test('malformed UAPI requests get the same replies as from wireguard-go', { timeout: 30_000 }, async (t) => {
    const hex = (b64: string): string => Buffer.from(b64, 'base64').toString('hex');
    const logFrom = p.a.daemon.stderr.length;
    const before = await wg(p.a.ns, ['showconf', p.a.ifname]);
    // {peer} is each daemon's existing peer, so no request creates anything.
    const requests = [
      'set=1\nunknown_key=1\n\n',
      `set=1\nprivate_key=${'zz'.repeat(32)}\n\n`,
      'set=1\nlisten_port\n\n',
      'set=1\nlisten_port=65536\n\n',
      'set=1\npublic_key={peer}\nprotocol_version=2\n\n',
      'set=1\npublic_key={peer}\nendpoint=nonsense\n\n',
      'set=1\npublic_key={peer}\nallowed_ip=10.0.0.0/33\n\n',
      'set=1\npublic_key={peer}\npersistent_keepalive_interval=-1\n\n',
      'set=1\npublic_key=abc\n\n',
      'get=1\nx',
      'foo=1\n\n',
      '\n',
    ];
    for (const req of requests) {
      const ours = await uapiRequest(p.a.ifname, req.replace('{peer}', hex(p.b.keys.publicKey)));
      const theirs = await uapiRequest(p.b.ifname, req.replace('{peer}', hex(p.a.keys.publicKey)));
      t.same(ours, theirs, `${JSON.stringify(req)} → ${JSON.stringify(theirs.reply)}${theirs.closed ? ' (closed)' : ''}`);
    }
    t.match((await uapiRequest(p.a.ifname, 'get=1\n\n')).reply, /\nerrno=0\n\n$/, 'get still works on the same daemon');
    t.equal(await wg(p.a.ns, ['showconf', p.a.ifname]), before, 'the configuration is unchanged');
    // Rejected requests are logged as errors, like wireguard-go does.
    await checkHealthy(t, p, logFrom, endpointBefore, /"errno":-\d+|UAPI/);
  });
});
