// The handshake load generator's building blocks, without sockets: the simulated Initiator
// (bench/harness/initiator.ts) against wirepool's own sans-I/O Engine as responder (handshake,
// session, data both ways, cookie reply under load and the mac2 retry, stale and tampered
// replies), the generator's key-caching Crypto against nodeCrypto, and the ICMP echo packets
// (RFC 1071 checksum vector, reply recognition).

import t from 'tap';
import { nodeCrypto } from '../src/crypto/crypto.js';
import { initialState } from '../src/protocol/noise.js';
import { endpointFromAddress } from '../src/protocol/endpoint.js';
import { echoRequest, internetChecksum, ipv4Add, ipv4Bytes, isEchoReply } from '../bench/harness/echo-packet.js';
import { Initiator, Received } from '../bench/harness/initiator.js';
import { cachingCrypto } from '../bench/harness/keycache-crypto.js';
import { Net } from './helpers/pair.js';

const INNER_R = '10.64.0.1';
const INNER_I = '10.64.0.16';

/** An Engine responder "r" with the initiator configured as its peer (allowed IP INNER_I/32). */
function setup(crypto = cachingCrypto()) {
  const net = new Net(nodeCrypto);
  const r = net.add('r', '198.51.100.1', 51820);
  r.engine.setPrivateKey(nodeCrypto.generatePrivateKey());
  const ini = new Initiator(crypto, initialState(crypto), crypto.generatePrivateKey(), { publicKey: r.engine.publicKey! });
  const peer = r.engine.addPeer(ini.identity.publicKey);
  r.engine.allowedIPs.insert(ipv4Bytes(INNER_I), 32, peer);
  r.engine.up();
  const src = endpointFromAddress('203.0.113.9', 40000)!;
  /** Datagrams r sent since the last call. */
  const drain = (): Uint8Array[] => {
    const out = net.queue.map((w) => w.bytes);
    net.queue.length = 0;
    return out;
  };
  return { net, r, ini, peer, src, drain };
}

/** The echo reply the target's kernel would send for `req`. */
function replyTo(req: Uint8Array): Uint8Array {
  const p = req.slice();
  p.set(req.subarray(16, 20), 12);
  p.set(req.subarray(12, 16), 16);
  p[10] = p[11] = 0;
  const ip = internetChecksum(p, 0, 20);
  p[10] = ip >>> 8;
  p[11] = ip & 0xff;
  p[20] = 0; // echo reply
  p[22] = p[23] = 0;
  const icmp = internetChecksum(p, 20, p.length);
  p[22] = icmp >>> 8;
  p[23] = icmp & 0xff;
  return p;
}

t.test('handshake, session and data both ways against the engine as responder', async (t) => {
  const { net, r, ini, peer, src, drain } = setup();
  const now = 1000;
  const init = ini.createInitiation(now, Date.now());
  t.equal(init.length, 148);
  t.equal(net.receive(r, init, src), null, 'responder accepts the initiation (mac1 valid, static key known)');
  const [resp, ...rest] = drain();
  t.equal(rest.length, 0);
  t.equal(resp!.length, 92, 'responder answered with a response');
  t.equal(ini.receive(resp!, now), Received.Connected);
  t.ok(ini.connected);
  t.equal(ini.receive(resp!, now), Received.Stale, 'the same response again is stale');

  t.equal(r.engine.sendKeypair(peer), null, 'responder does not send on the new session before key confirmation');
  const req = echoRequest(ipv4Bytes(INNER_I), ipv4Bytes(INNER_R), 7, 1);
  t.equal(net.receive(r, ini.sealData(req), src), null, 'responder opens our data packet');
  t.equal(r.delivered.length, 1);
  t.same(r.delivered[0]!.subarray(0, req.length), req, 'inner packet arrives intact (plus padding)');
  t.equal(r.delivered[0]!.length % 16, 0, 'padded to a multiple of 16');
  t.equal(r.engine.sendKeypair(peer) !== null, true, 'first data packet confirmed the session on the responder');

  t.equal(net.sendPacket(r, replyTo(req)), 'sent');
  const [data] = drain();
  t.equal(ini.receive(data!, now), Received.Data);
  t.ok(isEchoReply(ini.lastPlaintext, ipv4Bytes(INNER_R), ipv4Bytes(INNER_I), 7), 'echo reply recognised');
  t.notOk(isEchoReply(ini.lastPlaintext, ipv4Bytes(INNER_R), ipv4Bytes(INNER_I), 8), 'wrong identifier rejected');
  t.notOk(isEchoReply(req, ipv4Bytes(INNER_I), ipv4Bytes(INNER_R), 7), 'an echo request is not a reply');

  const tampered = data!.slice();
  tampered[tampered.length - 1]! ^= 1;
  t.equal(ini.receive(tampered, now), Received.Invalid, 'tampered transport rejected');
  ini.destroy();
});

t.test('under load: cookie reply, then the retry with mac2 gets through', async (t) => {
  const { net, r, ini, src, drain } = setup();
  r.underLoad = true;
  const t0 = 5000;
  const first = ini.createInitiation(t0, Date.now());
  t.same(first.subarray(132, 148), new Uint8Array(16), 'no cookie yet: mac2 is zero');
  t.equal(net.receive(r, first, src), 'cookie_required');
  const [cookie] = drain();
  t.equal(cookie!.length, 64, 'responder sent a cookie reply');
  t.equal(ini.receive(cookie!, t0 + 1), Received.Cookie);
  t.equal(ini.receive(cookie!, t0 + 1), Received.Invalid, 'one cookie per message sent');

  const retry = ini.createInitiation(t0 + 2, Date.now() + 50);
  t.notSame(retry.subarray(132, 148), new Uint8Array(16), 'the retry carries mac2');
  t.equal(net.receive(r, retry, src), null, 'responder under load accepts the retry (mac2 valid, rate limit ok)');
  const [resp] = drain();
  t.equal(ini.receive(resp!, t0 + 3), Received.Connected);

  const other = endpointFromAddress('203.0.113.10', 40000)!;
  const { ini: ini2, r: r2, net: net2, drain: drain2 } = setup();
  r2.underLoad = true;
  net2.receive(r2, ini2.createInitiation(t0, Date.now()), src);
  t.equal(ini2.receive(drain2()[0]!, t0), Received.Cookie);
  t.equal(net2.receive(r2, ini2.createInitiation(t0 + 1, Date.now() + 50), other), 'cookie_required',
    'a cookie is bound to the source address and port it was issued to');
  ini.destroy();
  ini2.destroy();
});

t.test('a response to a replaced initiation is stale; a forged one invalid', async (t) => {
  const { net, r, ini, src, drain } = setup();
  t.equal(net.receive(r, ini.createInitiation(1, Date.now()), src), null);
  const [late] = drain();
  ini.createInitiation(5000, Date.now() + 5000); // retransmit: new index
  t.equal(ini.receive(late!, 5001), Received.Stale);
  const forged = late!.slice();
  forged[8] = (forged[8]! + 1) & 0xff; // receiver index we never used
  t.equal(ini.receive(forged, 5001), Received.Invalid);
  t.equal(ini.receive(new Uint8Array(92), 5001), Received.Invalid);
  t.notOk(ini.connected);
  ini.destroy();
});

t.test('cachingCrypto agrees with nodeCrypto', async (t) => {
  const cc = cachingCrypto(8); // tiny cache: eviction paths run too
  for (let i = 0; i < 40; i++) {
    const a = cc.generatePrivateKey();
    t.equal(a[0]! & 7, 0, 'clamped (low bits)');
    t.equal(a[31]! & 0xc0, 0x40, 'clamped (high bits)');
    const b = nodeCrypto.generatePrivateKey();
    const pa = cc.publicKey(a);
    t.same(pa, nodeCrypto.publicKey(a), 'public key');
    const pb = nodeCrypto.publicKey(b);
    t.same(cc.dh(a, pb), nodeCrypto.dh(b, pa), 'DH agrees across implementations');
    t.same(cc.dh(b, pa), nodeCrypto.dh(b, pa), 'DH of a key it did not generate');
  }
  t.equal(cc.dh(cc.generatePrivateKey(), new Uint8Array(32)), null, 'low-order point → null');
  cc.clearCache();
});

t.test('echo packets and address arithmetic', async (t) => {
  // RFC 1071 §3 example: words 0001 f203 f4f5 f6f7 sum to ddf2 → checksum 220d.
  t.equal(internetChecksum(Uint8Array.from([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), 0, 8), 0x220d);
  const p = echoRequest(ipv4Bytes('10.64.0.16'), ipv4Bytes('10.64.0.1'), 0x1234, 9);
  t.equal((p[2]! << 8) | p[3]!, p.length, 'total length');
  t.equal(internetChecksum(p, 0, 20), 0, 'IPv4 header checksum verifies');
  t.equal(internetChecksum(p, 20, p.length), 0, 'ICMP checksum verifies');
  t.equal(p[20], 8, 'echo request');
  t.equal(ipv4Add('10.64.0.0', 16 + 300), '10.64.1.60');
  t.equal(ipv4Add('10.64.0.0', 16 + 10_000), '10.64.39.32');
  t.throws(() => ipv4Add('255.255.255.255', 1));
  t.throws(() => ipv4Bytes('10.0.0'));
});
