// Two engines handshaking and exchanging data on a fake clock: the protocol state
// machine of spec §3–§6 without sockets, threads or real time.
import t from 'tap';
import { MESSAGE_COOKIE_REPLY, MESSAGE_INITIATION, MESSAGE_RESPONSE, MESSAGE_TRANSPORT } from '../src/constants.js';
import { type Endpoint } from '../src/protocol/endpoint.js';
import { type Peer } from '../src/protocol/peer.js';
import { nodeCrypto, type Crypto } from '../src/crypto/crypto.js';
import { ipv4Packet, Net, twoPeers, type Wire } from './helpers/pair.js';

const typeOf = (w: Wire) => w.bytes[0];
const initiations = (ws: Wire[]) => ws.filter((w) => typeOf(w) === MESSAGE_INITIATION).length;

t.test('first packet triggers a 1-RTT handshake, staged data is delivered, both sides confirm', async (t) => {
  const { net, a, b, peerAB, peerBA } = twoPeers();
  const pkt = ipv4Packet('10.0.0.1', '10.0.0.2', 64);
  t.equal(net.sendPacket(a, pkt), 'staged');
  net.pump();
  t.same(a.sent.map(typeOf), [MESSAGE_INITIATION, MESSAGE_TRANSPORT], 'A: initiation, then the staged packet');
  t.same(b.sent.map(typeOf), [MESSAGE_RESPONSE]);
  t.equal(b.delivered.length, 1);
  t.same(b.delivered[0]!.subarray(0, pkt.length), pkt, 'inner packet arrives intact (padding after it)');
  t.equal(b.delivered[0]!.length % 16, 0, 'padded to a multiple of 16');
  t.ok(peerAB.keypairs.current, 'initiator has a current keypair');
  t.ok(peerBA.keypairs.current, 'responder rotated next → current on the first data packet');
  t.equal(peerBA.keypairs.next, null);
  t.ok(peerAB.lastHandshakeWall > 0 && peerBA.lastHandshakeWall > 0);
  t.equal(peerAB.lastHandshakeWall, net.clock.wallNow(), 'last handshake is wall-clock time');
  // reply traffic goes straight out on B's current keypair
  t.equal(net.sendPacket(b, ipv4Packet('10.0.0.2', '10.0.0.1')), 'sent');
  net.pump();
  t.equal(a.delivered.length, 1);
  // byte counters: wireguard-go semantics (whole messages, handshakes included)
  const ab = a.engine.stats, ba = b.engine.stats;
  t.equal(ab[peerAB.id * 4 + 0], 148 + a.sent[1]!.bytes.length + 0, 'A tx = initiation + data');
  t.equal(ba[peerBA.id * 4 + 1], 148 + a.sent[1]!.bytes.length, 'B rx = initiation + data');
});

t.test('preshared key: handshake completes only when both sides agree', async (t) => {
  const psk = new Uint8Array(32).fill(7);
  const ok = twoPeers({ psk });
  ok.net.sendPacket(ok.a, ipv4Packet('10.0.0.1', '10.0.0.2'));
  ok.net.pump();
  t.equal(ok.b.delivered.length, 1, 'same psk works');

  const bad = twoPeers();
  bad.a.engine.setPresharedKey(bad.peerAB, psk);
  bad.net.sendPacket(bad.a, ipv4Packet('10.0.0.1', '10.0.0.2'));
  bad.net.pump();
  t.equal(bad.b.delivered.length, 0, 'mismatched psk: no data');
  t.equal(bad.peerAB.keypairs.current, null, 'initiator rejects the response');
  t.equal(bad.a.engine.drops.get(0, 'decrypt_failed'), 1);
});

t.test('unknown peer gets no answer; replayed initiation is rejected', async (t) => {
  const { net, a, b, peerBA } = twoPeers();
  b.engine.removePeer(peerBA);
  net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2'));
  net.pump();
  t.equal(b.sent.length, 0, 'silence towards unknown keys');
  t.equal(b.engine.drops.get(0, 'unknown_peer'), 1);

  const p = twoPeers();
  p.net.sendPacket(p.a, ipv4Packet('10.0.0.1', '10.0.0.2'));
  const init = p.net.queue[0]!.bytes;
  p.net.pump();
  p.net.clock.t += 1000;
  t.equal(p.net.receive(p.b, init, p.a.endpoint), 'replay', 'same TAI64N twice');
});

t.test('initiations closer than 20 ms are refused as a flood', async (t) => {
  const { net, a, b, peerAB } = twoPeers();
  net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2'));
  net.pump();
  // A forges a second, newer initiation 10 ms later (bypassing its own 5 s send limit).
  net.clock.t += 10; net.clock.wallBase += 100;
  peerAB.lastSentHandshake = -Infinity;
  a.engine.sendInitiation(peerAB, false);
  const w = net.queue.shift()!;
  t.equal(net.receive(b, w.bytes, a.endpoint), 'handshake_flood');
  net.clock.t += 30; net.clock.wallBase += 100;
  peerAB.lastSentHandshake = -Infinity;
  a.engine.sendInitiation(peerAB, false);
  t.equal(net.receive(b, net.queue.shift()!.bytes, a.endpoint), null, 'accepted after 20 ms');
});

t.test('transport replay and corruption are dropped after decryption', async (t) => {
  const { net, a, b } = twoPeers();
  net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2'));
  net.pump();
  net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2'));
  const data = net.queue.shift()!.bytes;
  t.equal(net.receive(b, data, a.endpoint), null);
  t.equal(net.receive(b, data, a.endpoint), 'rejected', 'second copy is a replay');
  t.equal(b.engine.drops.get(0, 'replay'), 1);
  const bad = Uint8Array.from(data); bad[20]! ^= 1;
  t.equal(net.receive(b, bad, a.endpoint), 'decrypt_failed');
  const unknown = Uint8Array.from(data); unknown[4]! ^= 0xff;
  t.equal(net.receive(b, unknown, a.endpoint), 'unknown_index');
});

t.test('roaming: an authenticated packet from a new address moves the endpoint; garbage does not', async (t) => {
  const { net, a, b, peerBA } = twoPeers();
  net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2'));
  net.pump();
  net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2'));
  const data = net.queue.shift()!.bytes;
  const bad = Uint8Array.from(data); bad[40]! ^= 1;
  const evil = { address: '198.51.100.9', port: 999, family: 4 as const, bytes: Uint8Array.from([198, 51, 100, 9]) };
  net.receive(b, bad, evil);
  t.equal(peerBA.endpoint!.address, '192.0.2.1', 'unauthenticated packet does not roam');
  const moved = { address: '203.0.113.5', port: 40000, family: 4 as const, bytes: Uint8Array.from([203, 0, 113, 5]) };
  t.equal(net.receive(b, data, moved), null);
  t.equal(peerBA.endpoint!.address, '203.0.113.5');
  t.equal(peerBA.endpoint!.port, 40000);
});

t.test('timers: keepalive after 10 s of one-way traffic', async (t) => {
  const { net, a, b } = twoPeers();
  net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2'));
  net.pump();
  const before = b.sent.length;
  net.advance(9_900);
  t.equal(b.sent.length, before, 'nothing before 10 s');
  net.advance(200);
  const ka = b.sent.slice(before);
  t.equal(ka.length, 1, 'exactly one keepalive');
  t.equal(ka[0]!.bytes[0], MESSAGE_TRANSPORT);
  t.equal(ka[0]!.bytes.length, 32, 'keepalive is 32 bytes');
});

t.test('timers: initiator rekeys after 120 s when sending', async (t) => {
  const { net, a, peerAB } = twoPeers();
  net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2'));
  net.pump();
  const first = peerAB.keypairs.current;
  for (let s = 0; s < 130; s += 5) { // keep traffic flowing both ways so no other timer interferes
    net.advance(5_000, 1_000);
    net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2'));
    net.pump();
    if (s < 115) t.equal(initiations(a.sent), 1, `no rekey at ${s + 5} s`);
  }
  t.equal(initiations(a.sent), 2, 'one new initiation after 120 s');
  t.not(peerAB.keypairs.current, first, 'new current keypair');
  t.equal(peerAB.keypairs.previous, first, 'old one kept as previous');
});

t.test('timers: retransmit every 5 s, give up after 20 initiations, zero keys after 540 s', async (t) => {
  const { net, a, b, peerAB } = twoPeers();
  net.filter = (w) => w.from !== 'b' && w.to !== `${b.endpoint.address}:${b.endpoint.port}`; // B unreachable
  net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2'));
  net.advance(4_900);
  t.equal(initiations(a.sent), 1);
  net.advance(500);
  t.equal(initiations(a.sent), 2, 'first retransmit after 5 s + jitter');
  net.advance(200_000, 500);
  t.equal(initiations(a.sent), 20, '1 + 19 initiations, then silence');
  t.equal(peerAB.staged.length, 0, 'staged packets dropped when giving up');

  const ok = twoPeers();
  ok.net.sendPacket(ok.a, ipv4Packet('10.0.0.1', '10.0.0.2'));
  ok.net.pump();
  t.ok(ok.peerAB.keypairs.current);
  ok.net.filter = () => false; // silence afterwards
  ok.net.advance(539_000, 1_000);
  t.ok(ok.peerBA.keypairs.current, 'keys still present at 539 s');
  ok.net.advance(2_000, 1_000);
  t.equal(ok.peerBA.keypairs.current, null, 'B zeroed its keys after 540 s');
  t.equal(ok.peerAB.keypairs.current, null, 'A zeroed its keys after 540 s');
});

t.test('persistent keepalive fires at once on enable and every interval', async (t) => {
  const { net, a, peerAB } = twoPeers();
  a.engine.setPersistentKeepalive(peerAB, 25);
  net.pump();
  t.equal(initiations(a.sent), 1, 'enabling it starts a handshake for the first keepalive');
  const after = a.sent.length;
  net.advance(25_100, 100);
  t.ok(a.sent.slice(after).some((w) => w.bytes[0] === MESSAGE_TRANSPORT && w.bytes.length === 32), 'keepalive after 25 s');
});

t.test('under load: cookie reply, then the retransmitted initiation carries mac2 and succeeds', async (t) => {
  const { net, a, b } = twoPeers();
  b.underLoad = true;
  net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2'));
  net.pump();
  t.same(b.sent.map(typeOf), [MESSAGE_COOKIE_REPLY], 'first initiation answered with a cookie');
  t.equal(b.engine.drops.get(0, 'cookie_required'), 1);
  net.advance(5_500);
  t.same(b.sent.map(typeOf), [MESSAGE_COOKIE_REPLY, MESSAGE_RESPONSE], 'retransmit with mac2 accepted');
  t.equal(b.delivered.length, 1, 'staged data delivered');
});

t.test('new private key: sessions stop sending and peers with our own key are removed', async (t) => {
  const { net, a, b, peerAB } = twoPeers();
  net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2'));
  net.pump();
  t.ok(a.engine.sendKeypair(peerAB));
  a.engine.setPrivateKey(net.crypto.generatePrivateKey());
  t.equal(a.engine.sendKeypair(peerAB), null, 'current is unusable for sending');
  const self = b.engine.addPeer(a.engine.publicKey!); // B now has a peer with A's new key
  t.ok(b.engine.peerByKey(a.engine.publicKey!));
  const bKey = b.engine.privateKey!;
  a.engine.setPrivateKey(bKey); // A takes B's key: its peer with that public key must go
  t.equal(a.engine.peerByKey(b.engine.publicKey!), undefined);
  t.ok(self);
});

t.test('DH(static, static) is computed lazily: not in addPeer or setPrivateKey, in slices, or by the first handshake that needs it', async (t) => {
  let dhCalls = 0;
  const counting: Crypto = { ...nodeCrypto, dh: (sk, pk) => { dhCalls++; return nodeCrypto.dh(sk, pk); } };
  const net = new Net(counting);
  const a = net.add('a', '192.0.2.1', 51820);
  const b = net.add('b', '192.0.2.2', 51821);
  a.engine.setPrivateKey(counting.generatePrivateKey());
  b.engine.setPrivateKey(counting.generatePrivateKey());
  const others = Array.from({ length: 40 }, () => b.engine.addPeer(counting.publicKey(counting.generatePrivateKey())));
  const peerAB = a.engine.addPeer(b.engine.publicKey!);
  const peerBA = b.engine.addPeer(a.engine.publicKey!);
  t.equal(dhCalls, 0, 'adding 42 peers computed no DH');
  t.ok(b.engine.staticStaticPending);

  t.equal(b.engine.precomputeStaticStatics(0), true, 'a zero budget still computes one, and some are left');
  t.equal(dhCalls, 1);
  t.ok(others[0]!.handshake.precomputedStaticStatic, 'the oldest queued first');

  // A handshake before the rest: each side computes the one it needs, at once.
  a.engine.allowedIPs.insert(Uint8Array.from([10, 0, 0, 2]), 32, peerAB);
  b.engine.allowedIPs.insert(Uint8Array.from([10, 0, 0, 1]), 32, peerBA);
  a.engine.setEndpoint(peerAB, b.endpoint);
  b.engine.setEndpoint(peerBA, a.endpoint);
  a.engine.up();
  b.engine.up();
  net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2'));
  net.pump();
  t.equal(b.delivered.length, 1, 'the handshake completed with the DH computed on demand');
  t.same(peerBA.handshake.precomputedStaticStatic, nodeCrypto.dh(b.engine.privateKey!, a.engine.publicKey!), 'the same value an eager precompute gives');

  const before = dhCalls;
  t.equal(b.engine.precomputeStaticStatics(Infinity), false, 'the rest, in one unbounded slice');
  t.equal(dhCalls - before, 40 - 1, 'each remaining peer once; the one the handshake computed is not computed again');
  t.notOk(b.engine.staticStaticPending);
  t.ok(others.every((p) => p.handshake.precomputedStaticStatic !== null));

  // A new private key: the old values are zeroed at once, the new ones computed later.
  const old = others.map((p) => p.handshake.precomputedStaticStatic!);
  const atKey = dhCalls;
  b.engine.setPrivateKey(counting.generatePrivateKey());
  t.equal(dhCalls, atKey, 'setPrivateKey computed no DH (with 41 peers)');
  t.ok(old.every((ss) => ss.every((x) => x === 0)), 'the values made with the old key are zeroed');
  t.ok(b.engine.staticStaticPending);
  b.engine.precomputeStaticStatics(Infinity);
  t.equal(dhCalls - atKey, 41, 'then each peer once under the new key');
  t.same(others[5]!.handshake.precomputedStaticStatic, nodeCrypto.dh(b.engine.privateKey!, others[5]!.publicKey));

  // Removed peers are skipped; removing every peer empties the queue.
  b.engine.setPrivateKey(counting.generatePrivateKey());
  b.engine.removePeer(others[0]!);
  const atRemove = dhCalls;
  b.engine.precomputeStaticStatics(Infinity);
  t.equal(dhCalls - atRemove, 40, 'a removed peer gets none');
  b.engine.setPrivateKey(counting.generatePrivateKey());
  b.engine.removeAllPeers();
  t.notOk(b.engine.staticStaticPending, 'nothing left to compute without peers');
});

t.test('a handshake message the kernel sent without its sticky source drops the source from that peer only', async (t) => {
  const { net, a, b, peerAB } = twoPeers();
  const sourced = (ep: Endpoint): Endpoint => ({ ...ep, src: Uint8Array.of(192, 0, 2, 99), srcIfindex: 3 });
  a.engine.setEndpoint(peerAB, sourced(b.endpoint));
  const other = a.engine.addPeer(net.crypto.publicKey(net.crypto.generatePrivateKey()));
  const otherEp = sourced(b.endpoint);
  a.engine.setEndpoint(other, otherEp);
  a.sourceRefused = true; // our address 192.0.2.99 went away
  net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2'));
  net.pump();
  t.equal(b.delivered.length, 1, 'the handshake and the packet went through');
  t.equal(peerAB.endpoint!.src, undefined, 'the peer the initiation went to forgot the source');
  t.equal(peerAB.endpoint!.port, b.endpoint.port, 'and kept its address');
  t.equal(other.endpoint, otherEp, 'another peer with the same source is left for its own next send (no scan of all peers)');
});

// Private-key rotation (issue 8 item 1), as wireguard-go does it: a new device key expires the
// sessions for sending and clears the time of the last initiation sent, so the next packet
// starts a handshake with the new key at once instead of REKEY_TIMEOUT after the last one.

/** B drops its peer with A's old key and adds one with A's new key (wg set … peer OLD remove peer NEW …). */
function swapPeer(on: ReturnType<typeof twoPeers>['b'], oldPeer: Peer, newKey: Uint8Array, allowed: number[], ep: Endpoint, psk?: Uint8Array): Peer {
  on.engine.removePeer(oldPeer);
  const p = on.engine.addPeer(newKey);
  on.engine.allowedIPs.insert(Uint8Array.from(allowed), 32, p);
  on.engine.setEndpoint(p, ep);
  if (psk) on.engine.setPresharedKey(p, psk);
  return p;
}

t.test('key rotation: the next packet after a new private key starts a handshake at once', async (t) => {
  for (const firstInitiator of ['a', 'b'] as const) {
    t.test(`session first set up by ${firstInitiator.toUpperCase()}`, async (t) => {
      const { net, a, b, peerAB, peerBA } = twoPeers();
      const [from, to] = firstInitiator === 'a' ? [a, b] : [b, a];
      net.sendPacket(from, ipv4Packet(firstInitiator === 'a' ? '10.0.0.1' : '10.0.0.2', firstInitiator === 'a' ? '10.0.0.2' : '10.0.0.1'));
      net.pump();
      t.equal(to.delivered.length, 1, 'session up');
      net.advance(200); // well inside REKEY_TIMEOUT of the last handshake message A sent
      const oldKp = peerAB.keypairs.current;
      const sentBefore = initiations(a.sent);
      a.engine.setPrivateKey(net.crypto.generatePrivateKey());
      t.equal(a.engine.sendKeypair(peerAB), null, 'the old session no longer sends');
      const newPeerBA = swapPeer(b, peerBA, a.engine.publicKey!, [10, 0, 0, 1], a.endpoint);
      t.equal(net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2', 40)), 'staged');
      t.equal(initiations(a.sent), sentBefore + 1, 'the very next packet sent an initiation with the new key');
      net.pump();
      t.equal(b.delivered.length, firstInitiator === 'a' ? 2 : 1, 'and was delivered after the handshake, with no clock advance');
      t.not(peerAB.keypairs.current, oldKp, 'a new session');
      t.ok(newPeerBA.keypairs.current, 'B confirmed the new session');
      t.equal(net.sendPacket(b, ipv4Packet('10.0.0.2', '10.0.0.1')), 'sent', 'B answers on it');
      net.pump();
      t.equal(a.delivered.length, firstInitiator === 'a' ? 1 : 2);
    });
  }

  t.test('the other side rotates and this side swaps the peer: either side may send first', async (t) => {
    for (const sender of ['a', 'b'] as const) {
      const { net, a, b, peerAB } = twoPeers();
      net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2'));
      net.pump();
      net.advance(200);
      b.engine.setPrivateKey(net.crypto.generatePrivateKey()); // B rotates
      swapPeer(a, peerAB, b.engine.publicKey!, [10, 0, 0, 2], b.endpoint); // A trusts B's new key
      const before = initiations([...a.sent, ...b.sent]);
      const node = sender === 'a' ? a : b;
      const other = sender === 'a' ? b : a;
      const got = other.delivered.length;
      net.sendPacket(node, sender === 'a' ? ipv4Packet('10.0.0.1', '10.0.0.2') : ipv4Packet('10.0.0.2', '10.0.0.1'));
      t.equal(initiations([...a.sent, ...b.sent]), before + 1, `${sender.toUpperCase()} sending first: one initiation at once`);
      net.pump();
      t.equal(other.delivered.length, got + 1, `${sender.toUpperCase()}'s packet delivered with no clock advance`);
    }
  });

  t.test('an untrusted new key gets nothing through; once trusted, the retransmit succeeds', async (t) => {
    const { net, a, b, peerAB, peerBA } = twoPeers();
    net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2'));
    net.pump();
    const rxBefore = b.engine.stats[peerBA.id * 4 + 1]!;
    a.engine.setPrivateKey(net.crypto.generatePrivateKey()); // B still only knows A's old key
    net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2'));
    net.advance(4_000);
    t.equal(b.delivered.length, 1, 'nothing new delivered to B');
    t.equal(b.engine.stats[peerBA.id * 4 + 1], rxBefore, 'B received nothing from its peer');
    t.ok(b.engine.drops.get(0, 'unknown_peer') >= 1, 'the initiation with the new key was refused');
    t.equal(peerAB.staged.length, 1, 'A keeps the packet staged');
    swapPeer(b, peerBA, a.engine.publicKey!, [10, 0, 0, 1], a.endpoint);
    net.advance(5_400);
    t.equal(b.delivered.length, 2, 'the retransmitted initiation succeeded and the staged packet arrived');
  });

  t.test('a preshared-key mismatch blocks the handshake until both sides agree', async (t) => {
    const psk0 = new Uint8Array(32).fill(3);
    const psk1 = new Uint8Array(32).fill(9);
    const { net, a, b, peerAB, peerBA } = twoPeers({ psk: psk0 });
    net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2'));
    net.pump();
    a.engine.setPrivateKey(net.crypto.generatePrivateKey());
    a.engine.setPresharedKey(peerAB, psk1);
    const newPeerBA = swapPeer(b, peerBA, a.engine.publicKey!, [10, 0, 0, 1], a.endpoint, psk0); // B keeps the old psk
    const before = initiations(a.sent);
    net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2'));
    t.equal(initiations(a.sent), before + 1, 'initiation at once');
    net.advance(2_000);
    t.equal(b.delivered.length, 1, 'mismatch: nothing delivered');
    t.equal(newPeerBA.lastHandshakeWall, 0, 'no handshake completed');
    t.ok(a.engine.drops.get(0, 'decrypt_failed') >= 1, 'A could not open the response');
    b.engine.setPresharedKey(newPeerBA, psk1); // now both agree
    const fixedAt = net.clock.t;
    let doneAt = -1;
    for (let i = 0; i < 90 && doneAt < 0; i++) {
      net.advance(100);
      if (b.delivered.length === 2) doneAt = net.clock.t;
    }
    t.ok(doneAt > 0 && doneAt - fixedAt <= 9_000, `the retransmitted initiation succeeded ${doneAt - fixedAt} ms after the psk fix`);
  });
});

t.test('bringing the interface up may initiate at once (wireguard-go Peer.Start)', async (t) => {
  const { net, a, b, peerAB } = twoPeers();
  net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2'));
  net.pump();
  net.advance(100); // a newer TAI64N than the first initiation
  a.engine.down();
  a.engine.up();
  const before = initiations(a.sent);
  net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2'));
  t.equal(initiations(a.sent), before + 1, 'initiation after down/up without waiting REKEY_TIMEOUT');
  net.pump();
  t.equal(b.delivered.length, 2);
  t.ok(peerAB.keypairs.current);
});
