// A multi-queue TUN device (--tun-queues): one reader thread and send ring per queue. Two wirepool
// daemons in network namespaces, each with two queues: pings and TCP streams get through, the
// streams are read from both queues (the writers spread the flows over the queues by a symmetric
// hash of addresses and ports, and the kernel reads each flow from the queue it was last written
// on), and nothing the single-queue path guarantees is lost: no message is dropped as replayed,
// undecryptable or misrouted, and the per-peer counters agree on both ends. A stream whose flow
// hashes to queue 1 is read from queue 1 only (not flapping to queue 0). And a daemon with two
// peers whose streams fill both queues' rings at once: every message is counted for the peer it
// went to (a slot of one ring is never taken for the same slot of another).
import t, { type Test } from 'tap';
import { tunNative } from '../src/io/tun.js';
import { run } from './helpers/netns.js';
import {
  METRICS_ARGS, type Pair, e2eSkipReason, iperfClient, makeHub, makePair, metricsText, ping, pingReplies, pingUntilUp, startIperfServer,
  steadyTransfers, transfer, untilSteady,
} from './helpers/tunnel.js';

const skip = e2eSkipReason({ extra: ['ping', 'iperf3'] });
const STREAMS = 16; // the chance that all of them hash to one of two queues is 2^-15

async function pair(t: Test, prefix: string): Promise<Pair> {
  const p = await makePair({ outer: 4, b: 'wirepool', prefix, wirepoolArgs: [...METRICS_ARGS, '--tun-queues', '2'] });
  t.teardown(() => p.destroy());
  return p;
}

/** Every sample of a counter family on a side, as labels → value. */
async function samples(p: Pair, side: 'a' | 'b', name: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await metricsText(p[side].ns)).split('\n')) {
    const m = /^([a-z_]+)\{([^}]*)\}\s+(\S+)$/.exec(line);
    if (m !== null && m[1] === name) out.set(m[2]!, Number(m[3]));
  }
  return out;
}

/** Packets each TUN queue's reader read on a side, by queue. */
async function queueReads(p: Pair, side: 'a' | 'b'): Promise<number[]> {
  const reads: number[] = [];
  for (const [labels, v] of await samples(p, side, 'wireguard_tun_queue_read_packets_total')) reads[Number(/queue="(\d+)"/.exec(labels)![1])] = v;
  return reads;
}

/** Inbound drops that a reused nonce, a wrong key or a misrouted packet would cause. */
async function badInbound(p: Pair, side: 'a' | 'b'): Promise<number> {
  let n = 0;
  for (const [labels, v] of await samples(p, side, 'wireguard_dropped_packets_total')) {
    if (/reason="(replay|too_old|decrypt_failed|source_not_allowed|malformed|unknown_index)"/.test(labels)) n += v;
  }
  return n;
}

t.test('two TUN queues: each has its reader, TCP streams are read from both, nothing is lost', { skip, timeout: 120_000 }, async (t) => {
  const p = await pair(t, 'tunq');
  const details = await run('ip', ['-n', p.a.ns.name, '-d', 'link', 'show', 'dev', p.a.ifname]);
  t.match(details.stdout, /multi_queue/, `the device is multi-queue (${details.stdout.replace(/\s+/g, ' ').trim()})`);
  t.same((await queueReads(p, 'a')).length, 2, 'a reader counter per queue');
  t.ok(await pingUntilUp(p.a.ns, p.b.inner4), 'the tunnel is up');
  const idleSent = async (): Promise<number> => {
    let n = 0;
    for (const [labels, v] of await samples(p, 'a', 'wireguard_dataplane_inline_crypto_total')) if (labels.includes('kind="idle_send"')) n += v;
    return n;
  };
  const sent = await idleSent();
  t.equal(pingReplies(await ping(p.a.ns, p.b.inner4, { count: 10, interval: 0.03 })), 10, '10 pings A → B');
  // Written at idle to queue 0, an idle flow's next packets are read there, by the idle hook in C.
  t.ok(await idleSent() - sent >= 7, `A sent most of them from C (${await idleSent() - sent} of 10)`);
  t.equal(pingReplies(await ping(p.b.ns, p.a.inner6, { count: 10, interval: 0.03 })), 10, '10 pings B → A over IPv6');

  const before = await queueReads(p, 'a');
  const server = await startIperfServer(p.b.ns, p.b.inner4);
  t.teardown(() => { server.kill(); });
  const r = await iperfClient(p.a.ns, p.b.inner4, { seconds: 2, streams: STREAMS });
  t.ok(r.received > 1_000_000, `${STREAMS} TCP streams A → B moved ${r.received} bytes`);
  const after = await queueReads(p, 'a');
  const moved = after.map((v, q) => v - before[q]!);
  t.ok(moved.every((m) => m >= 100), `A read the streams' packets from both queues: ${moved.join(' / ')}`);
  const bReads = await queueReads(p, 'b');
  t.ok(bReads.every((m) => m >= 100), `B read the ACKs from both queues: ${bReads.join(' / ')}`);

  t.equal(await badInbound(p, 'a'), 0, 'A dropped nothing as replayed, undecryptable or misrouted');
  t.equal(await badInbound(p, 'b'), 0, 'nor did B');
  // Under load the outer UDP may drop datagrams (socket buffers), so the per-peer counters are
  // compared over an idle exchange after it: every byte one side sends the other receives.
  const t0 = await steadyTransfers(p);
  t.equal(pingReplies(await ping(p.a.ns, p.b.inner4, { count: 10, interval: 0.03 })), 10, 'after the streams, 10 pings A → B');
  const t1 = await steadyTransfers(p);
  t.ok(t1.a.tx > t0.a.tx, 'the pings were counted');
  t.equal(t1.a.tx - t0.a.tx, t1.b.rx - t0.b.rx, 'A sent exactly the bytes B received');
  t.equal(t1.b.tx - t0.b.tx, t1.a.rx - t0.a.rx, 'B sent exactly the bytes A received');
});

// While queue 0 is idle and queue 1 loaded, replies main writes must not go to queue 0: that would
// steer the loaded flow there, main would read it at idle, hand the queue back, and the flow would
// flap between the queues (reordered TCP) for as long as the load lasted.
t.test('two TUN queues: a stream whose flow hashes to queue 1 is read from queue 1 only', { skip, timeout: 120_000 }, async (t) => {
  const p = await pair(t, 'tunqf');
  t.ok(await pingUntilUp(p.a.ns, p.b.inner4), 'the tunnel is up');
  // The client port whose flow (A → B:5201, TCP) the writers' symmetric hash puts on queue 1.
  const octets = (a: string) => a.split('.').map(Number);
  const onQueue = (sport: number): number => {
    const pkt = new Uint8Array(40);
    pkt[0] = 0x45; pkt[9] = 6;
    pkt.set(octets(p.a.inner4), 12); pkt.set(octets(p.b.inner4), 16);
    new DataView(pkt.buffer).setUint16(20, sport); new DataView(pkt.buffer).setUint16(22, 5201);
    return tunNative().flowQueue(pkt, 2);
  };
  let cport = 40000;
  while (onQueue(cport) !== 1) cport++;
  const server = await startIperfServer(p.b.ns, p.b.inner4);
  t.teardown(() => { server.kill(); });
  const before = await queueReads(p, 'a');
  const r = await iperfClient(p.a.ns, p.b.inner4, { seconds: 3, cport });
  const moved = (await queueReads(p, 'a')).map((v, q) => v - before[q]!);
  t.ok(r.received > 1_000_000, `one TCP stream A → B (client port ${cport}) moved ${r.received} bytes`);
  t.ok(moved[1]! >= 1000, `A read it from queue 1 (${moved[1]} packets)`);
  // Queue 0 sees iperf3's control connection if it hashes there, and the flow's first packets
  // (read where the kernel's own hash picks until the first reply is written): a few dozen.
  t.ok(moved[0]! <= 100, `A read at most 100 packets from queue 0 (${moved[0]})`);
  t.equal(await badInbound(p, 'b'), 0, 'B dropped nothing as replayed, undecryptable or misrouted');
});

t.test('two TUN queues, two peers loaded at once: each message is counted for its own peer', { skip, timeout: 120_000 }, async (t) => {
  const { ns, ifs, keys, destroy } = await makeHub('tunq2', (i) => [...METRICS_ARGS, '--tun-queues', i === 0 ? '2' : '1']);
  t.teardown(destroy);
  t.ok(await pingUntilUp(ns[0], '10.77.0.2') && await pingUntilUp(ns[0], '10.77.0.3'), 'A reaches B and C');

  const servers = [await startIperfServer(ns[1], '10.77.0.2'), await startIperfServer(ns[2], '10.77.0.3')];
  t.teardown(() => { for (const s of servers) s.kill(); });
  const [toB, toC] = await Promise.all([
    iperfClient(ns[0], '10.77.0.2', { seconds: 2, streams: STREAMS / 2 }),
    iperfClient(ns[0], '10.77.0.3', { seconds: 2, streams: STREAMS / 2 }),
  ]);
  t.ok(toB.received > 1_000_000 && toC.received > 1_000_000, `A → B ${toB.received} and A → C ${toC.received} bytes at once`);
  const reads: number[] = [];
  for (const line of (await metricsText(ns[0])).split('\n')) {
    const m = /^wireguard_tun_queue_read_packets_total\{[^}]*queue="(\d+)"[^}]*\}\s+(\S+)$/.exec(line);
    if (m !== null) reads[Number(m[1])] = Number(m[2]);
  }
  t.ok(reads.length === 2 && reads.every((r) => r >= 100), `A read from both queues: ${reads.join(' / ')}`);

  // Once quiet: what each peer received from A, A counted as sent to that peer (the outer UDP may
  // have dropped some under load, never added any), and nothing A sent went uncounted.
  const { aB, aC, b, c } = await untilSteady(async () => ({
    aB: await transfer(ns[0], ifs[0]!, keys[1]!.publicKey), aC: await transfer(ns[0], ifs[0]!, keys[2]!.publicKey),
    b: await transfer(ns[1], ifs[1]!, keys[0]!.publicKey), c: await transfer(ns[2], ifs[2]!, keys[0]!.publicKey),
  }));
  t.ok(b.rx <= aB.tx && b.rx >= aB.tx * 0.9, `B received ${b.rx} of the ${aB.tx} bytes A counted as sent to B`);
  t.ok(c.rx <= aC.tx && c.rx >= aC.tx * 0.9, `C received ${c.rx} of the ${aC.tx} bytes A counted as sent to C`);
  t.ok(aB.rx <= b.tx && aC.rx <= c.tx, 'and A counted no more from each than it sent');
});
