// UdpBind's connected socket per endpoint: transport sends leave from the listen port
// (before and after connect() completes), the endpoint's datagrams still reach the handler
// (the connected socket receives them on Linux), other sources still reach the listener,
// a new endpoint (roaming) gets its own socket, forget() and rebind close them, and an
// endpoint that cannot be connected falls back to the unconnected socket without an error.
import t from 'tap';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { UdpBind } from '../src/io/udp.js';
import { endpointFromAddress, type Endpoint } from '../src/protocol/endpoint.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Got { text: string; address: string; port: number; family: 4 | 6 }

/** Polls `cond` every 5 ms, at most 400 times. */
async function until(cond: () => boolean): Promise<boolean> {
  for (let i = 0; i < 400 && !cond(); i++) await sleep(5);
  return cond();
}

async function peerSocket(): Promise<{ s: dgram.Socket; got: { text: string; port: number }[]; ep: Endpoint }> {
  const s = dgram.createSocket('udp4');
  const got: { text: string; port: number }[] = [];
  s.on('message', (m, r) => got.push({ text: m.toString(), port: r.port }));
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  return { s, got, ep: endpointFromAddress('127.0.0.1', s.address().port)! };
}

t.test('connected socket per endpoint', async (t) => {
  const got: Got[] = [];
  const errors: Error[] = [];
  const udp = new UdpBind((msg, address, port, family) => got.push({ text: msg.toString(), address, port, family }), (e) => errors.push(e));
  await udp.bind(0);
  const port = udp.port;
  t.ok(port > 0, 'bound');
  const a = await peerSocket();
  const b = await peerSocket();
  t.teardown(async () => { a.s.close(); b.s.close(); await udp.close(); });

  // The first sends go out while connect() is still under way (unconnected socket); later ones connected.
  const released: number[] = [];
  for (let i = 0; i < 5; i++) {
    const held = udp.sendFromRing(a.ep, Buffer.from(`a${i}`), () => released.push(i));
    t.equal(held, false, 'nothing queued: the slot is not held');
  }
  t.ok(await until(() => udp.connectedCount === 1), 'a connected socket for endpoint A');
  for (let i = 5; i < 10; i++) udp.sendFromRing(a.ep, Buffer.from(`a${i}`), () => released.push(i));
  t.ok(await until(() => a.got.length === 10), 'A got all 10');
  t.same(a.got.map((g) => g.text), Array.from({ length: 10 }, (_, i) => `a${i}`), 'in order');
  t.ok(a.got.every((g) => g.port === port), 'every datagram came from the listen port');

  // A's datagrams now land on its connected socket; B's on the listener: both reach the handler.
  a.s.send('from-a', port, '127.0.0.1');
  b.s.send('from-b', port, '127.0.0.1');
  t.ok(await until(() => got.length === 2), 'both delivered');
  const byText = new Map(got.map((g) => [g.text, g]));
  t.same(byText.get('from-a'), { text: 'from-a', address: '127.0.0.1', port: a.ep.port, family: 4 });
  t.same(byText.get('from-b'), { text: 'from-b', address: '127.0.0.1', port: b.ep.port, family: 4 });

  // Roaming: another endpoint (a new Endpoint object) gets a socket of its own.
  udp.sendFromRing(b.ep, Buffer.from('b0'), () => {});
  t.ok(await until(() => udp.connectedCount === 2), 'a second connected socket for endpoint B');
  udp.sendFromRing(b.ep, Buffer.from('b1'), () => {});
  t.ok(await until(() => b.got.length === 2), 'B got both');
  t.ok(b.got.every((g) => g.port === port), 'from the listen port');
  // The same endpoint as a fresh object (the engine makes one per roam) reuses the socket.
  udp.sendFromRing(endpointFromAddress('127.0.0.1', b.ep.port)!, Buffer.from('b2'), () => {});
  t.equal(udp.connectedCount, 2, 'same endpoint text, same socket');

  // forget(): A's socket closes; A's datagrams fall back to the listener, sends reconnect.
  udp.forget(a.ep);
  t.ok(await until(() => udp.connectedCount === 1), 'A forgotten');
  got.length = 0;
  a.s.send('from-a-again', port, '127.0.0.1');
  t.ok(await until(() => got.length === 1), 'A still heard through the listener');
  udp.sendFromRing(a.ep, Buffer.from('a10'), () => {});
  t.ok(await until(() => a.got.length === 11 && udp.connectedCount === 2), 'A reconnects on its next send');

  // Rebind: every connected socket closes; sends come from the new port.
  await udp.bind(0);
  const port2 = udp.port;
  t.equal(udp.connectedCount, 0, 'rebind closes connected sockets');
  udp.sendFromRing(a.ep, Buffer.from('a11'), () => {});
  t.ok(await until(() => a.got.length === 12), 'sent after rebind');
  t.equal(a.got[11]!.port, port2, 'from the new port');
  t.ok(await until(() => udp.connectedCount === 1), 'reconnected on the new port');
  t.same(errors, [], 'no socket errors');
});

t.test('an endpoint that cannot be connected stays on the unconnected socket', async (t) => {
  const errors: Error[] = [];
  const udp = new UdpBind(() => {}, (e) => errors.push(e));
  await udp.bind(0);
  t.teardown(() => udp.close());
  // connect() to the limited broadcast address fails (EACCES without SO_BROADCAST).
  const ep = endpointFromAddress('255.255.255.255', 9)!;
  t.doesNotThrow(() => udp.sendFromRing(ep, Buffer.from('x'), () => {}));
  await sleep(100);
  t.doesNotThrow(() => udp.sendFromRing(ep, Buffer.from('y'), () => {}));
  t.equal(udp.connectedCount, 0, 'no connected socket');
  await sleep(50);
  t.same(errors, [], 'nothing reported as a socket error');
});
