// The idle path's settle (src/idle-path.ts), on two engines over a fake network and clock
// (helpers/pair.ts): what the idle hooks in C did under a lease — written into the lease words as
// native/tun.c and udp.c record it — must leave the peer as the JavaScript path would have.
// - Timers: after a request received and a reply sent (the responder), no keepalive is due and a
//   new handshake is armed; after a message sent and an answer received (the initiator), the
//   reverse. settle() replays each entry's events with the kind that came last (IE_LAST) last; it
//   used to replay the sends first always, which left a responder with a keepalive due (sent 10 s
//   later for nothing) and without the check that its reply was answered.
// - Roaming: an endpoint set after the grant (the UAPI, a handshake) is newer than anything the
//   hooks received, so settling their messages must not put the granted endpoint back.
import t from 'tap';
import { IE_LAST, IE_RECEIVED, IE_RECV_REC, IE_SEND_NEXT, IE_SENT, IE_SENT_LEN, IL_HEADER, IL_WORDS, leaseU64, setLeaseU64 } from '../src/dataplane/idle-lease.js';
import { IdlePath } from '../src/idle-path.js';
import { type NativeBind } from '../src/io/bind.js';
import { endpointFromAddress } from '../src/protocol/endpoint.js';
import { TimerKind } from '../src/protocol/timers.js';
import { type Node, ipv4Packet, twoPeers } from './helpers/pair.js';

const E = IL_HEADER; // the lease's first entry

/** Two engines with a session, B → A noted, and the timers of the handshake played out. */
function setup() {
  const pair = twoPeers();
  const { net, a, b } = pair;
  net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2'));
  net.pump();
  net.sendPacket(b, ipv4Packet('10.0.0.2', '10.0.0.1'));
  net.pump();
  net.advance(11_000);
  net.queue.length = 0;
  return pair;
}

/** A's next message to B, taken off the network (as the UDP hook would receive it). */
function fromA(pair: ReturnType<typeof setup>): Uint8Array {
  pair.net.sendPacket(pair.a, ipv4Packet('10.0.0.1', '10.0.0.2'));
  const q = pair.net.queue;
  return q.splice(q.findIndex((w) => w.from === pair.a.name), 1)[0]!.bytes;
}

/** B's idle path with a lease granted for peer A (address 10.0.0.1). */
function leased(pair: ReturnType<typeof setup>): { idle: IdlePath; L: Int32Array } {
  pair.peerBA.keypairs.current!.keyId = 0;
  const idle = new IdlePath({ engine: pair.b.engine, bind: { fdFor: () => 3 } as unknown as NativeBind, keyGenerations: () => new Int32Array(4), mtu: () => 1420 });
  idle.note(pair.peerBA, 4, Uint8Array.from([10, 0, 0, 1]), 0);
  const L = new Int32Array(IL_WORDS);
  if (!idle.grant(L)) throw new Error('no lease granted');
  return { idle, L };
}

/** What udp.c records for a message it received, opened and wrote; `seq`: the lease's event number. */
function recordReceive(L: Int32Array, msg: Uint8Array, seq: number): void {
  const r = E + IE_RECV_REC + 4 * L[E + IE_RECEIVED]!;
  setLeaseU64(L, r, Number(new DataView(msg.buffer, msg.byteOffset).getBigUint64(8, true)));
  L[r + 2] = msg.length;
  L[r + 3] = msg.length - 32;
  L[E + IE_RECEIVED]! += 1;
  L[E + IE_LAST] = seq * 2 + 1;
}

/** What tun.c records for a message it sealed and sent. */
function recordSend(L: Int32Array, len: number, seq: number): void {
  setLeaseU64(L, E + IE_SEND_NEXT, leaseU64(L, E + IE_SEND_NEXT) + 1);
  L[E + IE_SENT_LEN + L[E + IE_SENT]!] = len;
  L[E + IE_SENT]! += 1;
  L[E + IE_LAST] = seq * 2;
}

const timers = (pair: ReturnType<typeof setup>) => ({
  keepaliveDue: pair.peerBA.timers.isPending(TimerKind.SendKeepalive),
  newHandshakeArmed: pair.peerBA.timers.isPending(TimerKind.NewHandshake),
});
const keepalives = (node: Node) => node.sent.filter((w) => w.bytes.length === 32).length;

t.test('a responder: request received, reply sent', async (t) => {
  const js = setup();
  js.net.receive(js.b, fromA(js), js.a.endpoint);
  js.net.sendPacket(js.b, ipv4Packet('10.0.0.2', '10.0.0.1'));
  const want = timers(js);
  t.same(want, { keepaliveDue: false, newHandshakeArmed: true }, 'the JavaScript path: no keepalive due, a new handshake armed');

  const c = setup();
  const { idle, L } = leased(c);
  recordReceive(L, fromA(c), 1);
  recordSend(L, 80, 2);
  idle.settle(L);
  t.same(timers(c), want, 'the hooks\' exchange, settled: the same');
  const before = keepalives(c.b);
  c.net.queue.length = 0;
  c.net.advance(12_000);
  t.equal(keepalives(c.b) - before, 0, 'and no keepalive in the next 12 s');
});

t.test('an initiator: message sent, answer received', async (t) => {
  const js = setup();
  js.net.sendPacket(js.b, ipv4Packet('10.0.0.2', '10.0.0.1'));
  js.net.receive(js.b, fromA(js), js.a.endpoint);
  const want = timers(js);
  t.same(want, { keepaliveDue: true, newHandshakeArmed: false }, 'the JavaScript path: a keepalive due, no new handshake armed');

  const c = setup();
  const { idle, L } = leased(c);
  recordSend(L, 80, 1);
  recordReceive(L, fromA(c), 2);
  idle.settle(L);
  t.same(timers(c), want, 'the hooks\' exchange, settled: the same');
});

t.test('an endpoint set after the grant stays', async (t) => {
  const c = setup();
  const { idle, L } = leased(c);
  recordReceive(L, fromA(c), 1); // from A's endpoint, the one granted
  const moved = endpointFromAddress('198.51.100.7', 51820)!;
  c.b.engine.setEndpoint(c.peerBA, moved); // then (before main's next turn) the UAPI sets another
  idle.settle(L);
  t.equal(c.peerBA.endpoint, moved, 'settling the message did not roam back to the granted endpoint');
  t.equal(c.peerBA.keypairs.current!.replay.highest > 0, true, 'and it was accepted');
});
