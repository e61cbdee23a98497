// End-to-end: reconfiguration of a live tunnel (issue 8 items 1–3), in network namespaces against
// the real wireguard-go, both configured only with `wg`. Namespace A runs wirepool, B wireguard-go.
// - Private-key rotation: after `wg set private-key NEW` on a side with a live session, and the
//   other side's swap of the old public key for the new one, the very next packet starts a
//   handshake with the new key (no REKEY_TIMEOUT wait), whichever side rotates and whichever
//   sends first. An untrusted new key gets nothing through; a preshared-key mismatch blocks the
//   handshake, and once both sides agree the retransmitted initiation succeeds within 9 s.
// - Listen-port change under a 20-per-second ping from wirepool, with wirepool as the session's
//   initiator and as its responder: every packet leaves from the new port from then on (the
//   peer's endpoint moves there and stays; the old socket is gone), at most a few pings lost. Then A's outer IPv4 / IPv6 address replaced
//   mid-stream with no reconfiguration of A: once while A originates the traffic (its sticky
//   source is refused and the kernel's choice takes over), once while the peer does and sends to
//   A's new address (the sticky source follows the address the peer sent to).
// - Restart, then `wg setconf` of the `wg showconf` output (private key, listen port, fwmark, peer
//   with endpoint, psk and persistent keepalive in one request): the first initiation leaves from
//   the configured listen port and the tunnel works at once.
import t, { type Test } from 'tap';
import { type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Netns, genKey, waitFor } from './helpers/netns.js';
import {
  INNER, PORT_A, type Pair, type PairOptions, type Side, addressUp, e2eSkipReason, formatEndpoint, latestHandshake, makePair,
  peerEndpoint, ping, pingReplies, pingUntilUp, removeDir, removeStaleSockets, startWirepool, tempDir, transfer, uniqueIfname, wg,
} from './helpers/tunnel.js';

const skip = e2eSkipReason({ extra: ['ping', 'ss'] });

async function pair(t: Test, opts: PairOptions): Promise<Pair> {
  const p = await makePair(opts);
  t.teardown(() => p.destroy());
  return p;
}

/** A private temp dir for key files, removed in the test's teardown. */
function keyDir(t: Test): (key: string) => string {
  const dir = tempDir('reconfig');
  t.teardown(() => removeDir(dir));
  let n = 0;
  return (key) => {
    const file = path.join(dir, `k${++n}`);
    fs.writeFileSync(file, key + '\n', { mode: 0o600 });
    return file;
  };
}

const allowedOf = (s: Side): string => `${s.inner4}/32,${s.inner6}/128`;

/** One ping with a 2 s wait: its reply time in ms, or null when no reply came. */
async function pingOnce(from: Side, to: string): Promise<number | null> {
  const r = await from.ns.exec('ping', ['-n', '-c', '1', '-W', '2', to], { timeoutMs: 6_000 });
  const m = /time=([\d.]+) ms/.exec(r.stdout);
  return pingReplies(r) === 1 && m !== null ? Number(m[1]) : null;
}

/**
 * `side` rotates its private key (wg set IF private-key NEW, optionally with a new psk for its one
 * peer in the same command); when `swapOn` is given, that side trusts the new public key instead
 * of the old one (wg set IF peer OLD remove peer NEW … in one command). Returns the new key pair.
 */
async function rotate(
  file: (key: string) => string, side: Side, oldPublic: string, peerPublic: string,
  opts: { swapOn?: Side; pskRotating?: string; pskSwap?: string } = {},
): Promise<{ privateKey: string; publicKey: string }> {
  const keys = genKey();
  await wg(side.ns, ['set', side.ifname, 'private-key', file(keys.privateKey),
    ...(opts.pskRotating !== undefined ? ['peer', peerPublic, 'preshared-key', file(opts.pskRotating)] : [])]);
  const other = opts.swapOn;
  if (other !== undefined) {
    await wg(other.ns, ['set', other.ifname, 'peer', oldPublic, 'remove', 'peer', keys.publicKey,
      ...(opts.pskSwap !== undefined ? ['preshared-key', file(opts.pskSwap)] : []),
      'endpoint', formatEndpoint(side.outer, side.listenPort), 'allowed-ips', allowedOf(side)]);
  }
  return keys;
}

/** Whether the public key is among the peers of ifname. */
async function hasPeer(s: Side, key: string): Promise<boolean> {
  return (await wg(s.ns, ['show', s.ifname, 'peers'])).split('\n').includes(key);
}

t.test('private-key rotation', { skip, timeout: 120_000 }, async (t) => {
  t.test('wirepool rotates, wireguard-go swaps the key: the very next packet handshakes at once', { timeout: 40_000 }, async (t) => {
    const p = await pair(t, { prefix: 'rot-a' });
    const file = keyDir(t);
    let aPub = p.a.keys.publicKey;
    t.ok(await pingUntilUp(p.b.ns, p.a.inner4), 'tunnel up (wireguard-go initiated: wirepool just sent a response)');
    // Each case rotates right after a handshake, well inside REKEY_TIMEOUT of the last handshake
    // message wirepool sent: waiting for that to pass is exactly what must not happen.
    for (const [sender, session] of [['wirepool', 'wireguard-go'], ['wirepool', 'wirepool'], ['wireguard-go', 'wirepool']] as const) {
      const keys = await rotate(file, p.a, aPub, p.b.keys.publicKey, { swapOn: p.b });
      aPub = keys.publicKey;
      t.equal((await wg(p.a.ns, ['show', p.a.ifname, 'public-key'])).trim(), aPub, 'wirepool has the new key');
      const [from, to] = sender === 'wirepool' ? [p.a, p.b.inner4] : [p.b, p.a.inner4];
      const rtt = await pingOnce(from, to);
      t.ok(rtt !== null && rtt < 1000, `session set up by ${session}, ${sender} sends first: one ping, answered in ${rtt} ms`);
      t.ok((await latestHandshake(p.b.ns, p.b.ifname, aPub)) > 0, 'wireguard-go completed a handshake with the new key');
      t.equal(pingReplies(await ping(p.b.ns, p.a.inner6, { count: 2, interval: 0.1 })), 2, 'both ways, inner IPv6');
    }
  });

  t.test('wireguard-go rotates, wirepool swaps the key: either side may send first', { timeout: 40_000 }, async (t) => {
    const p = await pair(t, { prefix: 'rot-b' });
    const file = keyDir(t);
    let bPub = p.b.keys.publicKey;
    t.ok(await pingUntilUp(p.a.ns, p.b.inner4), 'tunnel up (wirepool initiated)');
    for (const sender of ['wirepool', 'wireguard-go'] as const) {
      const keys = await rotate(file, p.b, bPub, p.a.keys.publicKey, { swapOn: p.a });
      t.ok(await hasPeer(p.a, keys.publicKey) && !(await hasPeer(p.a, bPub)), 'wirepool swapped the peer key');
      bPub = keys.publicKey;
      const [from, to] = sender === 'wirepool' ? [p.a, p.b.inner4] : [p.b, p.a.inner4];
      const rtt = await pingOnce(from, to);
      t.ok(rtt !== null && rtt < 1000, `${sender} sends first: one ping, answered in ${rtt} ms`);
      t.ok((await latestHandshake(p.a.ns, p.a.ifname, bPub)) > 0, 'wirepool completed a handshake with the new key');
      t.equal(pingReplies(await ping(p.a.ns, p.b.inner6, { count: 2, interval: 0.1 })), 2, 'both ways, inner IPv6');
    }
  });

  t.test('an untrusted new key gets nothing through; trusted, the retransmit succeeds', { timeout: 60_000 }, async (t) => {
    const p = await pair(t, { prefix: 'rot-u' });
    const file = keyDir(t);
    t.ok(await pingUntilUp(p.a.ns, p.b.inner4), 'tunnel up');
    // wirepool rotates; wireguard-go still trusts only the old key.
    const bRx = (await transfer(p.b.ns, p.b.ifname, p.a.keys.publicKey)).rx;
    const bHs = await latestHandshake(p.b.ns, p.b.ifname, p.a.keys.publicKey);
    const aKeys = await rotate(file, p.a, p.a.keys.publicKey, p.b.keys.publicKey);
    t.equal(pingReplies(await ping(p.a.ns, p.b.inner4, { count: 3, interval: 0.2 })), 0, 'wirepool with an untrusted key: no replies');
    t.equal((await transfer(p.b.ns, p.b.ifname, p.a.keys.publicKey)).rx, bRx, 'wireguard-go received nothing more from its peer');
    t.equal(await latestHandshake(p.b.ns, p.b.ifname, p.a.keys.publicKey), bHs, 'and completed no handshake');
    // Trusted now: wirepool's next retransmit (≤ 5.33 s after the last) gets through, with no new packet.
    const trustedAt = Date.now();
    await wg(p.b.ns, ['set', p.b.ifname, 'peer', p.a.keys.publicKey, 'remove', 'peer', aKeys.publicKey,
      'endpoint', p.endpointOf(p.a), 'allowed-ips', allowedOf(p.a)]);
    t.ok(await waitFor(async () => (await latestHandshake(p.b.ns, p.b.ifname, aKeys.publicKey)) > 0, 9_000, 100),
      `trusted: the retransmitted initiation succeeded (${Date.now() - trustedAt} ms)`);
    t.equal(pingReplies(await ping(p.b.ns, p.a.inner4, { count: 2, interval: 0.1 })), 2, 'tunnel works');

    // wireguard-go rotates; wirepool still trusts only the old key.
    const aRx = (await transfer(p.a.ns, p.a.ifname, p.b.keys.publicKey)).rx;
    const aHs = await latestHandshake(p.a.ns, p.a.ifname, p.b.keys.publicKey);
    await rotate(file, p.b, p.b.keys.publicKey, aKeys.publicKey);
    t.equal(pingReplies(await ping(p.b.ns, p.a.inner4, { count: 3, interval: 0.2 })), 0, 'wireguard-go with an untrusted key: no replies');
    t.equal((await transfer(p.a.ns, p.a.ifname, p.b.keys.publicKey)).rx, aRx, 'wirepool received nothing more from its peer');
    t.equal(await latestHandshake(p.a.ns, p.a.ifname, p.b.keys.publicKey), aHs, 'and completed no handshake');
  });

  t.test('a preshared-key mismatch blocks the handshake; agreed, the retransmit succeeds within 9 s', { timeout: 60_000 }, async (t) => {
    const psk0 = genKey().privateKey;
    const p = await pair(t, { prefix: 'rot-p', pskA: psk0, pskB: psk0 });
    const file = keyDir(t);
    t.ok(await pingUntilUp(p.a.ns, p.b.inner4), 'tunnel up with a preshared key');
    for (const initiator of ['wirepool', 'wireguard-go'] as const) {
      // The initiator rotates its key and its psk together; the responder swaps in the new key
      // but keeps the old psk.
      const psk1 = genKey().privateKey;
      const [rot, other] = initiator === 'wirepool' ? [p.a, p.b] : [p.b, p.a];
      const otherPub = (await wg(other.ns, ['show', other.ifname, 'public-key'])).trim();
      const rotPub = (await wg(rot.ns, ['show', rot.ifname, 'public-key'])).trim();
      const keys = await rotate(file, rot, rotPub, otherPub, { swapOn: other, pskRotating: psk1, pskSwap: psk0 });
      t.equal(pingReplies(await ping(rot.ns, other === p.a ? p.a.inner4 : p.b.inner4, { count: 2, interval: 0.2 })), 0,
        `${initiator} initiates with a mismatched psk: no replies`);
      t.equal(await latestHandshake(other.ns, other.ifname, keys.publicKey), 0, 'no handshake completed with the new key');
      const agreedAt = Date.now();
      await wg(other.ns, ['set', other.ifname, 'peer', keys.publicKey, 'preshared-key', file(psk1)]);
      // The responder's entry for the new key is fresh: its latest handshake turns non-zero when the
      // initiator confirms the session, i.e. once the retransmitted initiation got its response.
      const ok = await waitFor(async () => (await latestHandshake(other.ns, other.ifname, keys.publicKey)) > 0, 9_000, 100);
      t.ok(ok, `psk agreed: ${initiator}'s retransmitted initiation succeeded within 9 s (${Date.now() - agreedAt} ms)`);
      t.equal(pingReplies(await ping(other.ns, rot === p.a ? p.a.inner4 : p.b.inner4, { count: 2, interval: 0.1 })), 2, 'tunnel works both ways');
    }
  });
});

/** A background `ping -i 0.05`, its replies counted as they come. */
class PingStream {
  private readonly child: ChildProcess;
  private out = '';
  readonly done: Promise<{ transmitted: number; received: number }>;
  constructor(ns: Netns, dst: string, count: number) {
    this.child = ns.spawn('ping', ['-n', '-i', '0.05', '-W', '1', '-c', String(count), dst]);
    this.child.stdout!.setEncoding('utf8').on('data', (s: string) => (this.out += s));
    this.done = new Promise((resolve) => {
      this.child.once('exit', () => {
        const m = /(\d+) packets transmitted, (\d+) received/.exec(this.out);
        resolve(m === null ? { transmitted: -1, received: -1 } : { transmitted: Number(m[1]), received: Number(m[2]) });
      });
    });
  }
  get replies(): number {
    return (this.out.match(/bytes from/g) ?? []).length;
  }
  /** Resolves true once `n` more replies came than now (false after timeoutMs). */
  moreReplies(n: number, timeoutMs = 5_000): Promise<boolean> {
    const want = this.replies + n;
    return waitFor(async () => this.replies >= want, timeoutMs, 20);
  }
}

/** Polls `peer`'s endpoint for `key` until `done` resolves; returns every distinct value seen, in order. */
function watchEndpoint(peer: Side, key: string, done: Promise<unknown>): Promise<string[]> {
  return (async () => {
    const seen: string[] = [];
    let finished = false;
    void done.then(() => (finished = true));
    while (!finished) {
      const ep = await peerEndpoint(peer.ns, peer.ifname, key);
      if (seen[seen.length - 1] !== ep) seen.push(ep);
      await new Promise((r) => setTimeout(r, 50));
    }
    return seen;
  })();
}

const LOSS_MAX = 3;

t.test('listen-port change under traffic', { skip, timeout: 90_000 }, async (t) => {
  for (const role of ['initiator', 'responder'] as const) {
    t.test(`wirepool as ${role}`, { timeout: 40_000 }, async (t) => {
      const p = await pair(t, { prefix: `lp-${role.slice(0, 4)}` });
      t.ok(await (role === 'initiator' ? pingUntilUp(p.a.ns, p.b.inner4) : pingUntilUp(p.b.ns, p.a.inner4)), `tunnel up, wirepool the ${role}`);
      // wirepool sends the stream: a side that only answers has nothing to send from its new port,
      // and its peer keeps sending to the old one (wireguard-go behaves the same way).
      const [from, to] = [p.a, p.b.inner4];
      const oldEp = p.endpointOf(p.a);
      t.equal(await peerEndpoint(p.b.ns, p.b.ifname, p.a.keys.publicKey), oldEp, 'wireguard-go has wirepool at its listen port');
      const P2 = PORT_A + 10;
      const stream = new PingStream(from.ns, to, 100); // 5 s at 20 per second
      t.ok(await stream.moreReplies(10), 'ping running');
      await wg(p.a.ns, ['set', p.a.ifname, 'listen-port', String(P2)]);
      const changedAt = stream.replies;
      t.equal((await wg(p.a.ns, ['show', p.a.ifname, 'listen-port'])).trim(), String(P2), 'wirepool listens on the new port');
      const newEp = formatEndpoint(p.a.outer, P2);
      t.ok(await waitFor(async () => (await peerEndpoint(p.b.ns, p.b.ifname, p.a.keys.publicKey)) === newEp, 2_000, 20),
        'wireguard-go roamed to the new port');
      // wireguard-go roams to the source of every authenticated packet: a single one from the old
      // port would move it back. Watch the endpoint for the rest of the stream.
      const seen = await watchEndpoint(p.b, p.a.keys.publicKey, stream.done);
      const res = await stream.done;
      t.same(seen, [newEp], `the endpoint stayed at the new port for the rest of the stream (${stream.replies - changedAt} more replies)`);
      const loss = res.transmitted - res.received;
      t.ok(res.transmitted === 100 && loss <= LOSS_MAX, `${res.received} of ${res.transmitted} pings answered (at most ${LOSS_MAX} lost)`);
      const old = await p.a.ns.exec('ss', ['-Huan', `sport = :${PORT_A}`]);
      t.equal(old.stdout.trim(), '', 'no socket on the old port is left to send from');
      t.equal(pingReplies(await ping(p.b.ns, p.a.inner6, { count: 2, interval: 0.1 })), 2, 'wireguard-go → wirepool at the new port');
    });
  }
});

t.test('outer address replaced mid-stream, no reconfiguration of wirepool', { skip, timeout: 90_000 }, async (t) => {
  for (const outer of [4, 6] as const) {
    t.test(`outer IPv${outer}`, { timeout: 40_000 }, async (t) => {
      const p = await pair(t, { outer, prefix: `addr${outer}` });
      const len = outer === 4 ? 24 : 64;
      const addr = (n: number): string => (outer === 4 ? `198.51.100.${n}` : `2001:db8:77::${n.toString(16)}`);
      const nodad = outer === 6 ? ['nodad'] : [];
      // Deleting the primary IPv4 address would delete the secondaries of its subnet with it.
      if (outer === 4) await p.a.ns.mustExec('sh', ['-c', `echo 1 > /proc/sys/net/ipv4/conf/${p.a.veth}/promote_secondaries`]);
      const replace = async (from: string, to: string): Promise<void> => {
        await p.a.ns.ip(['addr', 'add', `${to}/${len}`, 'dev', p.a.veth, ...nodad]);
        await p.a.ns.ip(['addr', 'del', `${from}/${len}`, 'dev', p.a.veth]);
      };
      t.ok(await pingUntilUp(p.a.ns, p.b.inner4), 'tunnel up');

      // 1. wirepool originates the traffic: its sticky source (the old address) is refused once
      //    the address is gone, the kernel's choice (the new one) takes over, and the peer roams.
      let stream = new PingStream(p.a.ns, p.b.inner4, 80);
      t.ok(await stream.moreReplies(10), 'wirepool → wireguard-go ping running');
      await replace(addr(1), addr(0x11));
      t.ok(await stream.moreReplies(10), 'replies keep coming after the old address is gone');
      let res = await stream.done;
      t.ok(res.transmitted === 80 && res.transmitted - res.received <= LOSS_MAX, `${res.received} of ${res.transmitted} answered`);
      t.equal(await peerEndpoint(p.b.ns, p.b.ifname, p.a.keys.publicKey), formatEndpoint(addr(0x11), PORT_A), 'wireguard-go roamed to the new address');

      // 2. The peer originates the traffic and is pointed at wirepool's next address; the old one
      //    goes: replies leave from the address the peer sends to.
      stream = new PingStream(p.b.ns, p.a.inner4, 80);
      t.ok(await stream.moreReplies(10), 'wireguard-go → wirepool ping running');
      await p.a.ns.ip(['addr', 'add', `${addr(0x12)}/${len}`, 'dev', p.a.veth, ...nodad]);
      // A reply to a request sent just before the switch reaches wireguard-go after it, from the
      // old address, and wireguard-go roams back there (it follows every authenticated packet);
      // once the old address is gone it would keep sending into the void. The test is about what
      // wirepool does, so the switch is repeated until it holds: a wirepool that kept answering
      // from the old address would drag the endpoint back every time.
      const next = formatEndpoint(addr(0x12), PORT_A);
      let holds = false;
      for (let i = 0; i < 3 && !holds; i++) {
        await wg(p.b.ns, ['set', p.b.ifname, 'peer', p.a.keys.publicKey, 'endpoint', next]);
        t.ok(await stream.moreReplies(5), 'replies come while wireguard-go sends to the new address');
        holds = (await peerEndpoint(p.b.ns, p.b.ifname, p.a.keys.publicKey)) === next;
      }
      t.ok(holds, 'wireguard-go stays at the new address: the replies come from it');
      await p.a.ns.ip(['addr', 'del', `${addr(0x11)}/${len}`, 'dev', p.a.veth]);
      t.ok(await stream.moreReplies(10), 'and after the old address is gone');
      res = await stream.done;
      t.ok(res.transmitted === 80 && res.transmitted - res.received <= LOSS_MAX, `${res.received} of ${res.transmitted} answered`);
      t.equal(await peerEndpoint(p.b.ns, p.b.ifname, p.a.keys.publicKey), formatEndpoint(addr(0x12), PORT_A), 'the replies came from the new address');
      t.equal(pingReplies(await ping(p.a.ns, p.b.inner6, { count: 2, interval: 0.1 })), 2, 'wirepool → wireguard-go, inner IPv6');
    });
  }
});

t.test('restart, then wg setconf of the wg showconf output: the tunnel works at once', { skip, timeout: 90_000 }, async (t) => {
  for (const outer of [4, 6] as const) {
    t.test(`outer IPv${outer}`, { timeout: 40_000 }, async (t) => {
      const psk = genKey().privateKey;
      const p = await pair(t, { outer, prefix: `setconf${outer}`, pskA: psk, pskB: psk });
      t.ok(await pingUntilUp(p.a.ns, p.b.inner4), 'tunnel up');
      await wg(p.a.ns, ['set', p.a.ifname, 'fwmark', '0x1234', 'peer', p.b.keys.publicKey, 'persistent-keepalive', '25']);
      const saved = await wg(p.a.ns, ['showconf', p.a.ifname]);
      for (const want of [`ListenPort = ${PORT_A}`, 'FwMark = 0x1234', `PresharedKey = ${psk}`, `Endpoint = ${p.endpointOf(p.b)}`, 'PersistentKeepalive = 25']) {
        t.ok(saved.includes(want + '\n'), `showconf has "${want.replace(/=.*/, '= …')}"`);
      }
      const dir = tempDir('setconf');
      t.teardown(() => removeDir(dir));
      const file = path.join(dir, 'saved.conf');
      fs.writeFileSync(file, saved, { mode: 0o600 });

      // Restart wirepool: a new process, a new interface, listening on a random port at first.
      p.a.daemon.child!.kill('SIGTERM');
      t.ok(await p.a.daemon.exited(10_000), 'wirepool stopped');
      // wireguard-go learns wirepool's endpoint anew only from the first authenticated packet it
      // gets: point it elsewhere so that packet's source port shows.
      const parked = formatEndpoint(p.a.outer, 9);
      await wg(p.b.ns, ['set', p.b.ifname, 'peer', p.a.keys.publicKey, 'endpoint', parked]);
      await startWirepool(p.a.ns, p.a.ifname);
      const randomPort = Number((await wg(p.a.ns, ['show', p.a.ifname, 'listen-port'])).trim());
      t.not(randomPort, PORT_A, `the new daemon listens on a random port (${randomPort}) before setconf`);
      await wg(p.a.ns, ['setconf', p.a.ifname, file]);
      await addressUp(p.a.ns, p.a.ifname, [`${INNER.a4}/24`, `${INNER.a6}/64`]);

      // The persistent keepalive in the request starts a handshake at once.
      let first = parked;
      t.ok(await waitFor(async () => (first = await peerEndpoint(p.b.ns, p.b.ifname, p.a.keys.publicKey)) !== parked, 3_000, 10),
        'wireguard-go heard from wirepool');
      t.equal(first, p.endpointOf(p.a), `the first initiation came from the configured listen port ${PORT_A}`);
      t.ok(await waitFor(async () => (await latestHandshake(p.a.ns, p.a.ifname, p.b.keys.publicKey)) > 0, 3_000, 20),
        'the restarted wirepool completed a handshake');
      const rtt = await pingOnce(p.a, p.b.inner4);
      t.ok(rtt !== null, `the tunnel works at once: first ping answered in ${rtt} ms`);
      t.equal(pingReplies(await ping(p.b.ns, p.a.inner6, { count: 2, interval: 0.1 })), 2, 'both ways');
      t.equal(await wg(p.a.ns, ['showconf', p.a.ifname]), saved, 'showconf after the restart = showconf before');
      t.equal(await peerEndpoint(p.b.ns, p.b.ifname, p.a.keys.publicKey), p.endpointOf(p.a), `wireguard-go still has wirepool at ${PORT_A}`);
    });
  }
});

t.test('a listen port held by another interface or process is refused (errno -98); 0 picks a fresh port', { skip, timeout: 60_000 }, async (t) => {
  const ns = await Netns.create('ports');
  t.teardown(() => ns.destroy());
  const if0 = uniqueIfname('pa');
  const if1 = uniqueIfname('pb');
  t.teardown(() => removeStaleSockets([if0, if1]));
  const d0 = await startWirepool(ns, if0);
  t.teardown(async () => { d0.child?.kill('SIGTERM'); await d0.exited(10_000); });
  const d1 = await startWirepool(ns, if1);
  t.teardown(async () => { d1.child?.kill('SIGTERM'); await d1.exited(10_000); });
  const port = async (ifname: string): Promise<number> => Number((await wg(ns, ['show', ifname, 'listen-port'])).trim());

  await wg(ns, ['set', if0, 'listen-port', '51830']);
  await wg(ns, ['set', if1, 'listen-port', '51831']);
  t.equal(await port(if0), 51830, `${if0} listens on 51830`);

  const taken = await ns.exec('wg', ['set', if1, 'listen-port', '51830'], { timeoutMs: 5_000 });
  t.not(taken.code, 0, `wg set ${if1} listen-port 51830 (held by ${if0}) fails`);
  t.match(taken.stderr, /Address already in use|errno|-98/, `and says why (${taken.stderr.trim()})`);
  t.equal(await port(if1), 51831, `${if1} keeps its port`);
  t.equal(await port(if0), 51830, `${if0} keeps its port`);

  // A port held by another process (a plain UDP socket) is refused the same way.
  const holder = ns.spawn('python3', ['-c', 'import socket,sys,time; s=socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(("::", 51832)); print("bound", flush=True); time.sleep(60)']);
  t.teardown(() => { holder.kill('SIGKILL'); });
  await new Promise<void>((resolve, reject) => {
    holder.stdout!.once('data', () => resolve());
    holder.once('exit', (code) => reject(new Error(`port holder exited (${code})`)));
  });
  const held = await ns.exec('wg', ['set', if1, 'listen-port', '51832'], { timeoutMs: 5_000 });
  t.not(held.code, 0, 'a port another process holds is refused');
  t.equal(await port(if1), 51831, `${if1} still keeps its port`);

  // listen-port 0: a fresh random port, as wireguard-go picks.
  await wg(ns, ['set', if1, 'listen-port', '0']);
  const fresh = await port(if1);
  t.ok(fresh !== 0 && fresh !== 51831, `listen-port 0 picked a fresh port (${fresh})`);
  const ss = await ns.mustExec('ss', ['-Hulnp']);
  t.match(ss.stdout, new RegExp(`:${fresh}\\b`), 'something listens on it');
  t.notMatch(ss.stdout, /:51831\b/, 'and the old port is closed');
});
