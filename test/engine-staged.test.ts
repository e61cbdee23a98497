// Staged packets (waiting for a session) are never lost silently: a packet the engine gives up
// on is counted as a drop (no_session) (issue 8 item 6).
import t from 'tap';
import { MESSAGE_INITIATION } from '../src/constants.js';
import { Direction } from '../src/protocol/drops.js';
import { ipv4Packet, twoPeers } from './helpers/pair.js';

t.test('the handshake gives up after 20 attempts: the staged packets are counted as no_session', async (t) => {
  const { net, a } = twoPeers();
  net.filter = () => false; // nothing ever arrives
  for (let i = 0; i < 3; i++) t.equal(net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2', 40 + i)), 'staged');
  net.pump();
  t.equal(a.engine.drops.get(Direction.Outbound, 'no_session'), 0, 'nothing counted while the handshake is retried');
  net.advance(120_000); // 20 retransmits of 5 s (+ jitter), then the give-up
  t.ok(a.sent.filter((w) => w.bytes[0] === MESSAGE_INITIATION).length >= 20, 'the initiation was retransmitted');
  t.equal(a.engine.drops.get(Direction.Outbound, 'no_session'), 3, 'the 3 staged packets counted when it gave up');
});

t.test('removing a peer with staged packets counts them', async (t) => {
  const { net, a, peerAB } = twoPeers();
  net.filter = () => false;
  t.equal(net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2')), 'staged');
  t.equal(net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2')), 'staged');
  a.engine.removePeer(peerAB);
  t.equal(a.engine.drops.get(Direction.Outbound, 'no_session'), 2);
});
