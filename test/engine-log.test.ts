// The engine's verbose log lines, written through the real logger on a fake clock: handshake
// messages and keypairs naming the peer in base64 (with its friendly name), refused handshake
// messages with their source, one line per roam, the per-kind rate limit with its count of
// suppressed lines, nothing at all below verbose, and never a private, preshared or session key.
import t from 'tap';
import { Engine, type EngineHooks } from '../src/protocol/engine.js';
import { type Endpoint, endpointFromAddress, Sent } from '../src/protocol/endpoint.js';
import { createLogger, type LogLevel } from '../src/log.js';
import { LOG_BURST } from '../src/log-limit.js';
import { peerLabel } from '../src/peer-name.js';
import { ipv4Packet, Net, type Node, sealMessage } from './helpers/pair.js';

type Line = Record<string, unknown>;

interface LoggedNode extends Node {
  raw: () => string;
  lines: () => Line[];
  /** How often the engine asked for a peer's log label (it builds fields only for lines it writes). */
  labels: number;
}

/** A node of `net` whose engine logs through createLogger at `level`, as Device wires it. */
function addLogged(net: Net, name: string, address: string, port: number, level: LogLevel, names: Map<string, string>): LoggedNode {
  const node = net.add(name, address, port) as LoggedNode;
  let raw = '';
  const log = createLogger({ level, ifname: name, stream: { write: (s: string) => (raw += s) } });
  const send = (to: Endpoint, bytes: Uint8Array): void => {
    const w = { from: name, to: `${to.address}:${to.port}`, bytes };
    node.sent.push(w);
    net.queue.push(w);
  };
  node.labels = 0;
  const hooks: EngineHooks = {
    sendTo(ep, msg) {
      send(ep, Uint8Array.from(msg));
      return Sent.Yes;
    },
    sendTransport(peer, kp, counter, plaintext) {
      if (!peer.endpoint) return -1;
      const msg = sealMessage(net.crypto, kp, counter, plaintext);
      send(peer.endpoint, msg);
      return msg.length;
    },
    keypairCreated() {},
    keypairRetired() {},
    log: (lvl, msg, fields) => (lvl === 'error' ? log.error(msg, fields) : log.verbose(msg, fields)),
    logVerbose: log.level === 'verbose',
    peerLabel: (peer) => {
      node.labels++;
      return peerLabel(peer.publicKey, names);
    },
  };
  node.engine = new Engine({ crypto: net.crypto, clock: net.clock, hooks, random: () => 0.5 });
  node.raw = () => raw;
  node.lines = () => raw.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Line);
  return node;
}

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** A (192.0.2.1:51820, 10.0.0.1) and B (192.0.2.2:51821, 10.0.0.2) with a preshared key; B calls A "alice". */
function pair(level: LogLevel = 'verbose') {
  const net = new Net();
  const c = net.crypto;
  const keys = { a: c.generatePrivateKey(), b: c.generatePrivateKey(), psk: c.generatePrivateKey() };
  const aPub = c.publicKey(keys.a);
  const a = addLogged(net, 'a', '192.0.2.1', 51820, level, new Map());
  const b = addLogged(net, 'b', '192.0.2.2', 51821, level, new Map([[b64(aPub), 'alice']]));
  a.engine.setPrivateKey(keys.a);
  b.engine.setPrivateKey(keys.b);
  const peerAB = a.engine.addPeer(b.engine.publicKey!);
  const peerBA = b.engine.addPeer(a.engine.publicKey!);
  a.engine.allowedIPs.insert(Uint8Array.from([10, 0, 0, 2]), 32, peerAB);
  b.engine.allowedIPs.insert(Uint8Array.from([10, 0, 0, 1]), 32, peerBA);
  a.engine.setEndpoint(peerAB, b.endpoint);
  b.engine.setEndpoint(peerBA, a.endpoint);
  a.engine.setPresharedKey(peerAB, keys.psk);
  b.engine.setPresharedKey(peerBA, keys.psk);
  a.engine.up();
  b.engine.up();
  return { net, a, b, peerAB, peerBA, keys };
}

/** The secrets of a pair, in hex and base64: private keys, the preshared key, and the session keys. */
function secrets(p: ReturnType<typeof pair>): string[] {
  const all = [p.keys.a, p.keys.b, p.keys.psk];
  for (const peer of [p.peerAB, p.peerBA]) {
    for (const kp of [peer.keypairs.current, peer.keypairs.previous, peer.keypairs.next]) if (kp) all.push(kp.sendKey, kp.receiveKey);
  }
  return all.flatMap((k) => [hex(k), b64(k), b64(k).slice(0, 20)]);
}

const msgs = (n: LoggedNode): string[] => n.lines().map((l) => l.msg as string);
const withMsg = (n: LoggedNode, msg: string): Line[] => n.lines().filter((l) => l.msg === msg);

/** A handshake initiation of random bytes: its mac1 cannot be valid. */
function garbageInitiation(net: Net): Uint8Array {
  const m = net.crypto.randomBytes(148);
  m.set([1, 0, 0, 0]);
  return m;
}

t.test('a handshake logs both sides in wireguard-go words, peers named in base64 (+ friendly name)', async (t) => {
  const p = pair();
  const { net, a, b } = p;
  const aName = b64(a.engine.publicKey!);
  const bName = b64(b.engine.publicKey!);
  t.equal(net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2')), 'staged');
  net.pump();
  t.equal(b.delivered.length, 1, 'the handshake completed and data arrived');
  t.same(msgs(a), ['Sending handshake initiation', 'Received handshake response', 'Keypair created']);
  t.same(msgs(b), ['Received handshake initiation', 'Keypair created', 'Sending handshake response']);
  const [init, created, response] = b.lines();
  t.same(Object.keys(init!), ['time', 'level', 'ifname', 'msg', 'peer', 'friendly_name', 'src']);
  t.match(init, { level: 'verbose', ifname: 'b', peer: aName, friendly_name: 'alice', src: '192.0.2.1:51820' });
  t.match(created, { peer: aName, friendly_name: 'alice', role: 'responder' });
  t.match(response, { peer: aName, friendly_name: 'alice' });
  const [sent, received, aCreated] = a.lines();
  t.same(sent, { ...sent, peer: bName }, 'A has no friendly name for B: base64 only');
  t.notOk('friendly_name' in sent!);
  t.match(received, { peer: bName, src: '192.0.2.2:51821' });
  t.match(aCreated, { peer: bName, role: 'initiator' });
  t.notOk(msgs(b).includes('Endpoint changed'), 'B already had A at that endpoint: no roam');
  for (const n of [a, b]) for (const s of secrets(p)) t.notOk(n.raw().includes(s), `${n.name}: no key material (${s.slice(0, 6)}…)`);
});

t.test('refused handshake messages: the source, the reason, and the sender when it is known', async (t) => {
  const p = pair();
  const { net, a, b } = p;
  const scanner = endpointFromAddress('198.51.100.7', 4444)!;
  t.equal(b.engine.receiveHandshake(garbageInitiation(net), scanner, false), 'invalid_mac');
  t.same(withMsg(b, 'Received packet with invalid mac1').map((l) => [l.src, l.reason]), [['198.51.100.7:4444', 'invalid_mac']]);

  // An initiation from a key B does not know: named, so the operator can tell who it was.
  const c = addLogged(net, 'c', '203.0.113.9', 1234, 'verbose', new Map());
  c.engine.setPrivateKey(net.crypto.generatePrivateKey());
  const peerCB = c.engine.addPeer(b.engine.publicKey!);
  c.engine.setEndpoint(peerCB, b.endpoint);
  c.engine.up();
  c.engine.sendInitiation(peerCB, false);
  net.pump();
  t.same(withMsg(b, 'Received invalid initiation message'), [
    { ...withMsg(b, 'Received invalid initiation message')[0], peer: b64(c.engine.publicKey!), src: '203.0.113.9:1234', reason: 'unknown_peer' },
  ]);

  // A replayed initiation names the peer (it decrypted) and where the replay came from.
  net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2'));
  const initiation = net.queue[0]!.bytes;
  net.pump();
  t.equal(b.engine.receiveHandshake(initiation, scanner, false), 'replay');
  t.match(withMsg(b, 'Received invalid initiation message')[1], { peer: b64(a.engine.publicKey!), friendly_name: 'alice', src: '198.51.100.7:4444', reason: 'replay' });

  // A response whose index is no longer waiting for one.
  const response = b.sent.find((w) => w.bytes[0] === 2)!.bytes;
  t.equal(a.engine.receiveHandshake(response, b.endpoint, false), 'unknown_index');
  t.match(withMsg(a, 'Received invalid response message'), [{ src: '192.0.2.2:51821', reason: 'unknown_index' }]);
  for (const n of [a, b, c]) for (const s of secrets(p)) t.notOk(n.raw().includes(s), `${n.name}: no key material`);
});

t.test('roaming logs one line per change of address', async (t) => {
  const { net, a, b, peerBA } = pair();
  net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2'));
  net.pump();
  a.endpoint = endpointFromAddress('192.0.2.77', 40000)!;
  for (let i = 0; i < 3; i++) net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2'));
  net.pump();
  t.equal(b.delivered.length, 4);
  t.equal(peerBA.endpoint?.address, '192.0.2.77', 'B follows A');
  const roams = withMsg(b, 'Endpoint changed');
  t.equal(roams.length, 1, 'one line, not one per packet');
  t.match(roams[0], { peer: b64(a.engine.publicKey!), friendly_name: 'alice', from: '192.0.2.1:51820', to: '192.0.2.77:40000' });
  t.equal(withMsg(a, 'Endpoint changed').length, 0, 'A saw B where it expected');
});

t.test('rate limit: a burst per kind, then one summary line with the count', async (t) => {
  const { net, b } = pair();
  const scanner = endpointFromAddress('198.51.100.7', 4444)!;
  const flood = (n: number): void => {
    for (let i = 0; i < n; i++) b.engine.receiveHandshake(garbageInitiation(net), scanner, false);
  };
  flood(LOG_BURST + 40);
  t.equal(withMsg(b, 'Received packet with invalid mac1').length, LOG_BURST, 'the burst, then nothing');
  t.equal(b.engine.drops.get(0, 'invalid_mac'), LOG_BURST + 40, 'every message is still counted as a drop');

  net.clock.t += 1000;
  flood(1);
  const lines = b.lines().slice(-2);
  t.match(lines[0], { msg: 'suppressed 40 similar lines', of: 'Received packet with invalid mac1 (invalid_mac)', suppressed: 40 });
  t.match(lines[1], { msg: 'Received packet with invalid mac1', src: '198.51.100.7:4444' }, 'then the line itself');

  // A kind that went quiet still gets its count, from the next timer tick after a token is back.
  flood(5);
  const before = b.lines().length;
  b.engine.tick();
  t.equal(b.lines().length, before, 'no token yet');
  net.clock.t += 1000;
  b.engine.tick();
  t.match(b.lines().slice(before), [{ msg: 'suppressed 5 similar lines', suppressed: 5 }]);
  b.engine.tick();
  t.equal(b.lines().length, before + 1, 'reported once');
});

t.test('below verbose the engine writes nothing and builds no fields', async (t) => {
  for (const level of ['error', 'silent'] as const) {
    const { net, a, b } = pair(level);
    net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2'));
    net.pump();
    b.engine.receiveHandshake(garbageInitiation(net), endpointFromAddress('198.51.100.7', 4444)!, false);
    a.endpoint = endpointFromAddress('192.0.2.77', 40000)!;
    net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2'));
    net.pump();
    net.advance(200_000, 1000); // retries, keepalives, rekeys, key expiry
    t.equal(b.delivered.length, 2, `${level}: the tunnel worked`);
    t.equal(a.raw() + b.raw(), '', `${level}: no lines`);
    t.equal(a.labels + b.labels, 0, `${level}: no peer label was asked for`);
  }
});
