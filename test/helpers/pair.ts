// Two sans-I/O engines wired back to back over an in-memory "network" on a fake clock.
// Transport messages are sealed and opened inline with the same Crypto the engines use,
// so the whole protocol runs without sockets, threads or real time.
import { type Crypto, nodeCrypto } from '../../src/crypto/crypto.js';
import { type Clock, Engine, type EngineHooks } from '../../src/protocol/engine.js';
import { type Endpoint, endpointFromAddress, Sent } from '../../src/protocol/endpoint.js';
import { Keypair } from '../../src/protocol/keypair.js';
import { MESSAGE_TRANSPORT } from '../../src/constants.js';
import { messageType, paddedLength, readU32, Transport, writeTransportHeader } from '../../src/protocol/messages.js';
import { type Peer } from '../../src/protocol/peer.js';

export class FakeClock implements Clock {
  t = 1_000_000; // monotonic ms
  wallBase = Date.UTC(2026, 0, 1);
  now(): number { return this.t; }
  wallNow(): number { return this.wallBase + this.t; }
}

export interface Wire { from: string; to: string; bytes: Uint8Array }

export interface Node {
  name: string;
  engine: Engine;
  endpoint: Endpoint;
  /** Inner packets delivered to this node's "TUN". */
  delivered: Uint8Array[];
  /** Every datagram this node sent. */
  sent: Wire[];
  underLoad: boolean;
  /** The kernel refuses sticky sources (our address went away): handshake sends report Sent.WithoutSource. */
  sourceRefused?: boolean;
}

function le64(b: Uint8Array, off: number): number {
  return readU32(b, off) + readU32(b, off + 4) * 2 ** 32;
}

/** A network of engines: datagrams are queued and delivered by pump(); `filter` may drop them. */
export class Net {
  readonly clock = new FakeClock();
  readonly nodes = new Map<string, Node>();
  readonly queue: Wire[] = [];
  filter: (w: Wire) => boolean = () => true;
  constructor(readonly crypto: Crypto = nodeCrypto) {}

  add(name: string, address: string, port: number): Node {
    const endpoint = endpointFromAddress(address, port)!;
    const self = this;
    const node: Node = { name, engine: undefined as unknown as Engine, endpoint, delivered: [], sent: [], underLoad: false };
    const hooks: EngineHooks = {
      sendTo(ep, msg) {
        self.emit(node, ep, Uint8Array.from(msg));
        return node.sourceRefused && ep.src !== undefined ? Sent.WithoutSource : Sent.Yes;
      },
      sendTransport(peer, kp, counter, plaintext) {
        if (!peer.endpoint) return -1;
        const msg = sealMessage(self.crypto, kp, counter, plaintext);
        self.emit(node, peer.endpoint, msg);
        return msg.length;
      },
      keypairCreated() {},
      keypairRetired() {},
    };
    node.engine = new Engine({ crypto: this.crypto, clock: this.clock, hooks, random: () => 0.5 });
    this.nodes.set(name, node);
    return node;
  }

  private emit(from: Node, to: Endpoint, bytes: Uint8Array): void {
    const w = { from: from.name, to: `${to.address}:${to.port}`, bytes };
    from.sent.push(w);
    this.queue.push(w);
  }

  /** Send an inner packet from `node` as if read from its TUN (route, seal, send). */
  sendPacket(node: Node, packet: Uint8Array): 'sent' | 'staged' | 'no_peer' {
    const e = node.engine;
    const peer = e.allowedIPs.lookup(destination(packet));
    if (!peer) return 'no_peer';
    const kp = e.sendKeypair(peer);
    if (!kp || !peer.endpoint) {
      e.stage(peer, packet);
      return 'staged';
    }
    const counter = kp.sendCounter++;
    const msg = sealMessage(this.crypto, kp, counter, packet);
    this.emit(node, peer.endpoint, msg);
    e.transportSent(peer, msg.length, packet.length > 0);
    return 'sent';
  }

  /** Deliver queued datagrams until the network is quiet (bounded). Returns how many were delivered. */
  pump(limit = 1000): number {
    let n = 0;
    while (this.queue.length && n < limit) {
      const w = this.queue.shift()!;
      n++;
      if (!this.filter(w)) continue;
      const dst = [...this.nodes.values()].find((x) => `${x.endpoint.address}:${x.endpoint.port}` === w.to);
      const src = this.nodes.get(w.from)!;
      if (dst) this.receive(dst, w.bytes, src.endpoint);
    }
    return n;
  }

  receive(node: Node, bytes: Uint8Array, src: Endpoint): string | null {
    const e = node.engine;
    const type = messageType(bytes);
    if (type === 0) return 'malformed';
    if (type !== MESSAGE_TRANSPORT) return e.receiveHandshake(bytes, src, node.underLoad);
    const kp = e.lookupReceive(readU32(bytes, Transport.RECEIVER));
    if (!kp) return 'unknown_index';
    const counter = le64(bytes, Transport.COUNTER);
    const pt = this.crypto.aeadOpen(kp.receiveKey, counter, bytes.subarray(Transport.CONTENT), new Uint8Array(0));
    if (!pt) return 'decrypt_failed';
    const from = {
      isEndpoint: (ep: Endpoint | null) => ep !== null && ep.port === src.port && ep.address === src.address,
      endpoint: () => src,
    };
    const peer = e.receiveTransport(kp, counter, bytes.length, pt.length, from);
    if (!peer) return 'rejected';
    if (pt.length > 0) node.delivered.push(pt);
    return null;
  }

  /** Advance the fake clock in steps, firing timers and pumping the network at each step. */
  advance(ms: number, step = 100): void {
    const end = this.clock.t + ms;
    while (this.clock.t < end) {
      this.clock.t = Math.min(end, this.clock.t + step);
      for (const n of this.nodes.values()) n.engine.tick();
      this.pump();
    }
  }
}

export function sealMessage(c: Crypto, kp: Keypair, counter: number, packet: Uint8Array, mtu = 1420): Uint8Array {
  const plaintext = new Uint8Array(paddedLength(packet.length, mtu));
  plaintext.set(packet);
  const ct = c.aeadSeal(kp.sendKey, counter, plaintext, new Uint8Array(0));
  const msg = new Uint8Array(16 + ct.length);
  writeTransportHeader(msg, kp.remoteIndex, counter);
  msg.set(ct, 16);
  return msg;
}

function destination(packet: Uint8Array): Uint8Array {
  return packet[0]! >> 4 === 4 ? packet.subarray(16, 20) : packet.subarray(24, 40);
}

/** A minimal IPv4 packet (UDP-ish payload) from src to dst with `payload` bytes. */
export function ipv4Packet(src: string, dst: string, payloadLen = 20): Uint8Array {
  const p = new Uint8Array(20 + payloadLen);
  p[0] = 0x45;
  p[2] = p.length >> 8; p[3] = p.length & 0xff;
  p[8] = 64; p[9] = 17;
  p.set(src.split('.').map(Number), 12);
  p.set(dst.split('.').map(Number), 16);
  for (let i = 20; i < p.length; i++) p[i] = i & 0xff;
  return p;
}

/** Two engines A (10.0.0.1, 192.0.2.1:51820) and B (10.0.0.2, 192.0.2.2:51821), each the other's peer. */
export function twoPeers(opts: { psk?: Uint8Array; bKnowsA?: boolean } = {}): { net: Net; a: Node; b: Node; peerAB: Peer; peerBA: Peer } {
  const net = new Net();
  const a = net.add('a', '192.0.2.1', 51820);
  const b = net.add('b', '192.0.2.2', 51821);
  const c = net.crypto;
  a.engine.setPrivateKey(c.generatePrivateKey());
  b.engine.setPrivateKey(c.generatePrivateKey());
  const peerAB = a.engine.addPeer(b.engine.publicKey!);
  const peerBA = b.engine.addPeer(a.engine.publicKey!);
  a.engine.allowedIPs.insert(Uint8Array.from([10, 0, 0, 2]), 32, peerAB);
  b.engine.allowedIPs.insert(Uint8Array.from([10, 0, 0, 1]), 32, peerBA);
  a.engine.setEndpoint(peerAB, b.endpoint);
  if (opts.bKnowsA !== false) b.engine.setEndpoint(peerBA, a.endpoint);
  if (opts.psk) { a.engine.setPresharedKey(peerAB, opts.psk); b.engine.setPresharedKey(peerBA, opts.psk); }
  a.engine.up();
  b.engine.up();
  return { net, a, b, peerAB, peerBA };
}
