// Handshake offload (issue 10 step 3): initiations prepared on piscina workers and finished on
// the main thread in submission order, over real engines (test/helpers/pair.ts: an in-memory
// network on a fake clock) and real worker threads. A worker module with faults
// (test/helpers/handshake-worker-faults.ts) holds full batches back, so later batches finish
// first, and kills its thread on a batch of five.
import t, { type Test } from 'tap';
import { randomFillSync } from 'node:crypto';
import { MESSAGE_INITIATION, MESSAGE_RESPONSE } from '../src/constants.js';
import { nodeCrypto } from '../src/crypto/crypto.js';
import { decodeResult, encodeTask, runTask } from '../src/handshake-batch.js';
import { HandshakeOffload, IN_FLIGHT_PER_WORKER, OFFLOAD_BATCH } from '../src/handshake-offload.js';
import { HandshakeQueue } from '../src/handshake-queue.js';
import { type DropReason } from '../src/protocol/drops.js';
import { type Endpoint } from '../src/protocol/endpoint.js';
import { Initiation, readU32 } from '../src/protocol/messages.js';
import { initialState, openStatic, prepareInitiation } from '../src/protocol/noise.js';
import { Net, type Node, ipv4Packet } from './helpers/pair.js';

const FAULTY = new URL('./helpers/handshake-worker-faults.js', import.meta.url);
const c = nodeCrypto;

/** A responder and n initiators, each the other's peer with a /32, all up. */
function star(n: number): { net: Net; r: Node; inits: Node[] } {
  const net = new Net();
  const r = net.add('r', '192.0.2.1', 51820);
  r.engine.setPrivateKey(c.generatePrivateKey());
  const inits: Node[] = [];
  for (let i = 0; i < n; i++) {
    const a = net.add(`i${i}`, '192.0.2.2', 40000 + i);
    a.engine.setPrivateKey(c.generatePrivateKey());
    const toR = a.engine.addPeer(r.engine.publicKey!);
    a.engine.setEndpoint(toR, r.endpoint);
    a.engine.allowedIPs.insert(Uint8Array.from([10, 0, 0, 1]), 32, toR);
    const fromA = r.engine.addPeer(a.engine.publicKey!);
    r.engine.allowedIPs.insert(Uint8Array.from([10, 1, i >> 8, i & 255]), 32, fromA);
    a.engine.up();
    inits.push(a);
  }
  r.engine.up();
  return { net, r, inits };
}

/** Each initiator sends one initiation; returns them (taken off the network) with their sources. */
function initiations(net: Net, inits: Node[]): { msg: Uint8Array; src: Endpoint }[] {
  for (const a of inits) a.engine.sendInitiation([...a.engine.peers()][0]!, false);
  const out = net.queue.splice(0).map((w) => ({ msg: w.bytes, src: net.nodes.get(w.from)!.endpoint }));
  for (const m of out) if (m.msg[0] !== MESSAGE_INITIATION) throw new Error('expected initiations only');
  return out;
}

interface Run {
  offload: HandshakeOffload;
  /** Sender index of each processed initiation with its outcome, in the order main finished them. */
  done: { sender: number; dropped: DropReason | null }[];
  failures: unknown[];
  /** Resolves once `n` initiations were processed. */
  processedCount(n: number): Promise<void>;
}

function offloadFor(r: Node, threads: number, workerUrl?: URL, resume: () => void = () => {}, budgetMs?: number): Run {
  const done: Run['done'] = [];
  const failures: unknown[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  const offload = new HandshakeOffload({
    engine: r.engine, threads, workerUrl, resume, ...(budgetMs !== undefined ? { budgetMs } : {}),
    processed: (msg, dropped) => {
      done.push({ sender: readU32(msg, Initiation.SENDER), dropped });
      for (const w of waiters.splice(0)) if (done.length >= w.n) w.resolve(); else waiters.push(w);
    },
    taskFailed: (err) => failures.push(err),
  });
  return {
    offload, done, failures,
    processedCount: (n) => new Promise((resolve) => { if (done.length >= n) resolve(); else waiters.push({ n, resolve }); }),
  };
}

/** Deliver the responses (and the keepalives they cause), then check each session carries a packet each way. */
function checkSessions(t: Test, net: Net, r: Node, inits: Node[]): void {
  net.pump();
  let both = 0;
  inits.forEach((a, i) => {
    const inner = `10.1.${i >> 8}.${i & 255}`;
    const atR = r.delivered.length;
    if (net.sendPacket(a, ipv4Packet(inner, '10.0.0.1')) !== 'sent' || net.sendPacket(r, ipv4Packet('10.0.0.1', inner)) !== 'sent') return;
    net.pump();
    if (a.delivered.length === 1 && r.delivered.length === atR + 1) both++;
  });
  t.equal(both, inits.length, `all ${inits.length} sessions carry a packet each way`);
}

t.test('batch bytes: a worker task gives what the main thread would compute, and both buffers are zeroed after use', async (t) => {
  const { net, r, inits } = star(3);
  const msgs = initiations(net, inits);
  const id = { privateKey: r.engine.privateKey!, publicKey: r.engine.publicKey! };
  const junk = randomFillSync(new Uint8Array(Initiation.SIZE));
  junk[0] = MESSAGE_INITIATION;
  const task = encodeTask(id, [...msgs.map((m) => m.msg), junk]);
  const result = runTask(c, initialState(c), task);
  t.ok(new Uint8Array(task).every((b) => b === 0), 'the task (device private key included) is zeroed by the worker');
  const prepared = decodeResult(result, 4);
  t.ok(new Uint8Array(result).every((b) => b === 0), 'the result is zeroed once read');
  t.equal(prepared[3], null, 'junk: the static key does not decrypt');
  msgs.forEach((m, i) => {
    const p = prepared[i]!;
    const want = openStatic(c, initialState(c), id, m.msg)!;
    t.same([p.opened.remoteStatic, p.opened.chainKey, p.opened.hash], [want.remoteStatic, want.chainKey, want.hash], `initiation ${i}: same static key, chain key and hash`);
    const e = m.msg.subarray(Initiation.EPHEMERAL, Initiation.EPHEMERAL + 32);
    t.same(p.responder!.publicKey, c.publicKey(p.responder!.privateKey), 'ephemeral public key of its private key');
    t.same(p.responder!.ee, c.dh(p.responder!.privateKey, e), 'ee = DH(e_r, e_i)');
    t.same(p.responder!.se, c.dh(p.responder!.privateKey, p.opened.remoteStatic), 'se = DH(e_r, s_i)');
  });
  t.throws(() => decodeResult(new ArrayBuffer(10), 1), /answered 10 bytes for 1 initiations/);
  t.same(prepareInitiation(c, initialState(c), id, junk), null);
});

t.test('initiations through the workers: every one answered, in submission order although later batches finish first', async (t) => {
  const n = 2 * OFFLOAD_BATCH + 3; // two full batches (held back 150 ms by the test worker) and one of 3
  const { net, r, inits } = star(n);
  const run = offloadFor(r, 3, FAULTY);
  t.teardown(() => run.offload.close());
  const msgs = initiations(net, inits);
  for (const m of msgs) {
    t.equal(r.engine.admitInitiation(m.msg, m.src, false), null);
    run.offload.submit(m.msg, m.src);
  }
  t.equal(run.offload.length, n, 'all with the workers');
  await run.processedCount(n);
  t.same(run.done.map((d) => d.sender), msgs.map((m) => readU32(m.msg, Initiation.SENDER)), 'finished in submission order');
  t.same(run.done.map((d) => d.dropped), msgs.map(() => null), 'none dropped');
  t.same(run.offload.stats, { batches: 3, prepared: n, fallback: 0 });
  t.equal(run.offload.length, 0);
  t.equal(net.queue.filter((w) => w.bytes[0] === MESSAGE_RESPONSE).length, n, 'one response each');
  checkSessions(t, net, r, inits);
});

t.test('a worker killed mid-task: its batch is answered on the main thread, nothing lost', async (t) => {
  const { net, r, inits } = star(5 + 2);
  const run = offloadFor(r, 1, FAULTY);
  t.teardown(() => run.offload.close());
  const msgs = initiations(net, inits);
  for (const m of msgs.slice(0, 5)) run.offload.submit(m.msg, m.src); // a batch of 5: the worker exits
  await run.processedCount(5);
  for (const m of msgs.slice(5)) run.offload.submit(m.msg, m.src); // the pool starts a new worker
  await run.processedCount(7);
  t.equal(run.failures.length, 1, 'the failure is reported once');
  t.same(run.offload.stats, { batches: 2, prepared: 2, fallback: 5 });
  t.same(run.done.map((d) => d.dropped), msgs.map(() => null), 'all answered');
  checkSessions(t, net, r, inits);
});

t.test('the device key changes while initiations are with the workers: they are processed again under the new key', async (t) => {
  const { net, r, inits } = star(2);
  const run = offloadFor(r, 1);
  t.teardown(() => run.offload.close());
  const [m0, m1] = initiations(net, inits);
  run.offload.submit(m0!.msg, m0!.src);
  await Promise.resolve(); // the batch of one is sent at the end of the turn
  r.engine.setPrivateKey(c.generatePrivateKey()); // prepared under the old key: not used
  run.offload.submit(m1!.msg, m1!.src);
  await run.processedCount(2);
  t.same(run.done.map((d) => d.dropped), ['decrypt_failed', 'decrypt_failed'], 'made for the old public key: refused, as on the main thread');
  t.equal(net.queue.length, 0, 'no response');
});

t.test('back-pressure: the handshake queue keeps what the workers cannot take, and counts it towards under load', async (t) => {
  const n = IN_FLIGHT_PER_WORKER + 140;
  const { net, r, inits } = star(n);
  const msgs = initiations(net, inits);
  let now = 0;
  let queue: HandshakeQueue;
  const run = offloadFor(r, 1, undefined, () => queue.resume());
  t.teardown(() => run.offload.close());
  queue = new HandshakeQueue((h, underLoad) => {
    if (r.engine.admitInitiation(h.msg, h.src, underLoad) === null) run.offload.submit(h.msg, h.src);
  }, () => now, 1000, 1000);
  queue.blocked = () => run.offload.busy;
  for (const m of msgs) queue.push({ msg: m.msg, src: m.src, checked: true }); // as if they had passed mac2 and the limiter
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(run.offload.length, IN_FLIGHT_PER_WORKER, 'the workers hold as many as they may');
  t.ok(run.offload.busy);
  t.equal(queue.length, n - IN_FLIGHT_PER_WORKER, 'the rest stays queued');
  t.ok(queue.isUnderLoad(), 'and counts towards under load');
  await run.processedCount(n);
  t.equal(queue.length, 0);
  t.same(run.done.filter((d) => d.dropped !== null), [], 'all answered');
  now += 2000;
  t.notOk(queue.isUnderLoad());
  checkSessions(t, net, r, inits.slice(0, 3));
});

t.test('finishing is bounded per event-loop turn: with no time budget, one initiation per turn', async (t) => {
  const { net, r, inits } = star(3);
  const run = offloadFor(r, 1, undefined, () => {}, 0);
  t.teardown(() => run.offload.close());
  const msgs = initiations(net, inits);
  for (const m of msgs) run.offload.submit(m.msg, m.src);
  await run.processedCount(1);
  t.equal(run.done.length, 1, 'one finished in the turn the results came back');
  t.equal(run.offload.length, 2, 'the other two still count as with the workers');
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(run.done.length, 2, 'the next one in the next turn');
  await run.processedCount(3);
  t.same(run.done.map((d) => d.dropped), [null, null, null]);
  t.same(run.done.map((d) => d.sender), msgs.map((m) => readU32(m.msg, Initiation.SENDER)), 'in submission order');
  checkSessions(t, net, r, inits);
});
