// The handshake intake under load (spec §7, issue 8 item 5): the checks made as a handshake
// datagram arrives, before it may take a queue slot (Engine.screenHandshake, called from
// ReceivePath.classify), the handshake queue's fairness across sources and its bounded work per
// event-loop turn, and the allocation-free MAC / cookie sealing the checker uses, against @noble.
import t from 'tap';
import { randomFillSync } from 'node:crypto';
import {
  HANDSHAKE_QUEUE_SIZE, MAC_LEN, MESSAGE_COOKIE_REPLY, MESSAGE_INITIATION, MESSAGE_INITIATION_SIZE, MESSAGE_RESPONSE,
  UNDER_LOAD_AFTER_TIME, UNDER_LOAD_QUEUE_LENGTH,
} from '../src/constants.js';
import { nobleCrypto, nodeCrypto } from '../src/crypto/crypto.js';
import { HandshakeQueue, type QueuedHandshake } from '../src/handshake-queue.js';
import { CookieChecker, CookieGenerator, Mac16, mac16, mac1Offset, xseal16 } from '../src/protocol/cookie.js';
import { type Endpoint, endpointFromAddress, endpointSourceKey } from '../src/protocol/endpoint.js';
import { type Engine, Screened } from '../src/protocol/engine.js';
import { writeType } from '../src/protocol/messages.js';
import { ipv4Packet, type Node, twoPeers, type Wire } from './helpers/pair.js';

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
const ep = (addr: string, port = 40000): Endpoint => endpointFromAddress(addr, port)!;
const typeOf = (w: Wire): number => w.bytes[0]!;

/** A junk initiation for `publicKey`: random content, a valid mac1, zero mac2 (the flood of issue 8 item 5). */
function junkInitiation(publicKey: Uint8Array): Uint8Array {
  const p = randomFillSync(new Uint8Array(MESSAGE_INITIATION_SIZE));
  writeType(p, MESSAGE_INITIATION);
  const off = mac1Offset(p.length);
  p.set(nodeCrypto.mac(nodeCrypto.hash(new TextEncoder().encode('mac1----'), publicKey), p.subarray(0, off)), off);
  p.fill(0, off + MAC_LEN);
  return p;
}

// ───────────────────────── the primitives ─────────────────────────

t.test('Mac16 / mac16 = keyed BLAKE2s-128 (@noble) for keys of 1–32 bytes and inputs across block edges', async (t) => {
  let bad = 0;
  let n = 0;
  for (const keyLen of [1, 16, 31, 32]) {
    for (const len of [1, 6, 18, 55, 60, 63, 64, 65, 76, 116, 127, 128, 129, 132, 200]) {
      for (let rep = 0; rep < 8; rep++) {
        const key = randomFillSync(new Uint8Array(keyLen));
        const data = randomFillSync(new Uint8Array(len + 7));
        if (rep === 0) { key.fill(0xff); data.fill(0xff); }
        const want = hex(nobleCrypto.mac(key, data.subarray(3, 3 + len)));
        const a = new Uint8Array(MAC_LEN + 2);
        new Mac16(key).compute(data.subarray(3), len, a, 2);
        const b = new Uint8Array(MAC_LEN);
        mac16(key, data.subarray(3), len, b, 0);
        if (hex(a.subarray(2)) !== want || hex(b) !== want) bad++;
        const m = new Mac16(key);
        const expect = Uint8Array.from(Buffer.from(want, 'hex'));
        if (!m.verify(data.subarray(3), len, expect, 0)) bad++;
        expect[rep % MAC_LEN]! ^= 1 << (rep % 8);
        if (m.verify(data.subarray(3), len, expect, 0)) bad++;
        n++;
      }
    }
  }
  t.equal(bad, 0, `${n} MACs agree with @noble, verify refuses a flipped bit`);
  t.throws(() => new Mac16(new Uint8Array(0)), RangeError);
  t.throws(() => new Mac16(new Uint8Array(33)), RangeError);
  t.throws(() => mac16(new Uint8Array(16), new Uint8Array(4), 0, new Uint8Array(16), 0), RangeError, 'empty input refused');
});

t.test('xseal16 = XChaCha20-Poly1305 (@noble) of a 16-byte cookie with a 16-byte ad', async (t) => {
  let bad = 0;
  for (let i = 0; i < 3000; i++) {
    const key = randomFillSync(new Uint8Array(32));
    const nonce = randomFillSync(new Uint8Array(24 + 5));
    const pt = randomFillSync(new Uint8Array(16));
    const ad = randomFillSync(new Uint8Array(16 + 9));
    if (i % 7 === 0) { key.fill(0xff); pt.fill(0xff); ad.fill(0xff); }
    if (i % 11 === 0) { pt.fill(0); ad.fill(0); }
    const want = hex(nobleCrypto.xaeadSeal(key, nonce.subarray(5), pt, ad.subarray(9)));
    const out = new Uint8Array(32 + 3);
    xseal16(key, nonce, 5, pt, ad, 9, out, 3);
    if (hex(out.subarray(3)) !== want) bad++;
  }
  t.equal(bad, 0, '3000 seals agree with @noble');
});

t.test('cookie reply: made by the fast checker, opened by the initiator; mac2 then valid for that source only', async (t) => {
  const c = nodeCrypto;
  const pub = c.publicKey(c.generatePrivateKey());
  const checker = new CookieChecker(c);
  checker.init(pub);
  const gen = new CookieGenerator(c, pub);
  const msg = randomFillSync(new Uint8Array(MESSAGE_INITIATION_SIZE));
  writeType(msg, MESSAGE_INITIATION);
  gen.addMacs(msg, 0);
  t.ok(checker.checkMac1(msg), 'mac1 valid');
  const bad = Uint8Array.from(msg);
  bad[20]! ^= 1;
  t.notOk(checker.checkMac1(bad), 'mac1 over a changed message invalid');
  const src = endpointSourceKey(ep('198.51.100.7', 5555));
  t.notOk(checker.checkMac2(msg, src, 1), 'no cookie handed out yet: mac2 invalid');
  const reply = checker.createReply(msg, 0x01020304, src, 1)!;
  t.equal(reply.length, 64);
  t.same([...reply.subarray(0, 8)], [MESSAGE_COOKIE_REPLY, 0, 0, 0, 4, 3, 2, 1], 'type 3, receiver index = the sender index');
  t.ok(gen.consumeReply(reply, 2), 'the initiator decrypts it with cookie_key and the mac1 it sent');
  gen.addMacs(msg, 3);
  t.ok(checker.checkMac2(msg, src, 4), 'the next message carries a valid mac2');
  t.notOk(checker.checkMac2(msg, endpointSourceKey(ep('198.51.100.7', 5556)), 4), 'not from another port');
  t.notOk(checker.checkMac2(msg, src, 1 + 120_001), 'not once the secret is older than 120 s');
  const second = checker.createReply(msg, 1, src, 5)!;
  t.not(hex(second.subarray(8, 32)), hex(reply.subarray(8, 32)), 'a fresh random nonce per reply');
});

// ───────────────────────── screening before the queue ─────────────────────────

/** Routes handshake datagrams for `node` through screen + queue, as ReceivePath.classify does. */
function intake(node: Node, q: HandshakeQueue, stats: { refused: number; queueFull: number }) {
  return (bytes: Uint8Array, src: Endpoint): Screened => {
    const screened = node.engine.screenHandshake(bytes, src, q.isUnderLoad());
    if (screened === Screened.Drop) stats.refused++;
    else if (!q.push({ msg: bytes.slice(), src, checked: screened === Screened.Checked })) stats.queueFull++;
    return screened;
  };
}

function drops(e: Engine, reason: Parameters<Engine['drops']['get']>[1]): number {
  return e.drops.get(0, reason);
}

t.test('screening: mac1 always; under load a zero mac2 costs one cookie reply, sent at once; then the rate limiter', async (t) => {
  const { net, a, b } = twoPeers();
  const initiation = (): Uint8Array => {
    const before = a.sent.length;
    a.engine.sendInitiation(a.engine.peerByKey(b.engine.publicKey!)!, false);
    return a.sent.slice(before).find((w) => typeOf(w) === MESSAGE_INITIATION)!.bytes;
  };
  const junk = junkInitiation(b.engine.publicKey!);
  const wrong = Uint8Array.from(junk);
  wrong[116]! ^= 1;
  t.equal(b.engine.screenHandshake(wrong, a.endpoint, false), Screened.Drop, 'bad mac1: dropped');
  t.equal(drops(b.engine, 'invalid_mac'), 1);
  t.equal(b.engine.screenHandshake(wrong, a.endpoint, true), Screened.Drop, 'bad mac1 under load: dropped, no cookie');
  t.equal(b.sent.length, 0, 'nothing sent for a bad mac1');
  t.equal(b.engine.screenHandshake(junk, a.endpoint, false), Screened.Queue, 'not under load: mac2 is not looked at');

  const first = initiation();
  t.equal(b.engine.screenHandshake(first, a.endpoint, true), Screened.Drop, 'under load without mac2: dropped…');
  t.same(b.sent.map(typeOf), [MESSAGE_COOKIE_REPLY], '…answered with a cookie reply at once');
  t.equal(b.sent[0]!.to, `${a.endpoint.address}:${a.endpoint.port}`, 'to the datagram source');
  t.equal(drops(b.engine, 'cookie_required'), 1);
  a.engine.receiveHandshake(b.sent[0]!.bytes, b.endpoint, false);
  t.equal(drops(a.engine, 'decrypt_failed'), 0, 'A stored the cookie');

  // A's retransmits now carry mac2. The rate limiter (20/s, burst 5) admits five at once, then one per 50 ms.
  net.clock.t += 5_000;
  const verdicts: Screened[] = [];
  for (let i = 0; i < 6; i++) {
    net.clock.t += 1; // each one a fresh initiation (sendInitiation ignores the 5 s limit once the clock passed it)
    const p = a.engine.peerByKey(b.engine.publicKey!)!;
    p.lastSentHandshake = -Infinity;
    verdicts.push(b.engine.screenHandshake(initiation(), a.endpoint, true));
  }
  t.same(verdicts, [Screened.Checked, Screened.Checked, Screened.Checked, Screened.Checked, Screened.Checked, Screened.Drop], 'five Checked, the sixth rate limited');
  t.equal(drops(b.engine, 'rate_limited'), 1);
  t.equal(b.sent.length, 1, 'no cookie reply for a valid mac2');
  net.clock.t += 50;
  a.engine.peerByKey(b.engine.publicKey!)!.lastSentHandshake = -Infinity;
  const last = initiation();
  t.equal(b.engine.screenHandshake(last, a.endpoint, true), Screened.Checked, 'after 50 ms one more token');
  // A Checked message is processed with underLoad = false: mac2 and the limiter are not applied twice.
  t.equal(b.engine.receiveHandshake(last, a.endpoint, false), null, 'accepted');
  t.equal(drops(b.engine, 'rate_limited'), 1, 'not charged again');
  t.equal(typeOf(b.sent.at(-1)!), MESSAGE_RESPONSE, 'answered with a response');
  const reply = new Uint8Array(64);
  writeType(reply, MESSAGE_COOKIE_REPLY);
  t.equal(b.engine.screenHandshake(reply, a.endpoint, true), Screened.Queue, 'cookie replies carry no macs: queued for the engine');
});

t.test('screening without a private key drops everything but cookie replies', async (t) => {
  const { b } = twoPeers();
  const junk = junkInitiation(b.engine.publicKey!);
  b.engine.setPrivateKey(null);
  t.equal(b.engine.screenHandshake(junk, ep('198.51.100.9'), false), Screened.Drop);
});

// ───────────────────────── the queue ─────────────────────────

function recordingQueue(opts: { batch?: number; budgetMs?: number; capacity?: number; now?: () => number } = {}) {
  const processed: { h: QueuedHandshake; underLoad: boolean }[] = [];
  let clock = 0;
  const now = opts.now ?? (() => clock);
  const q = new HandshakeQueue((h, underLoad) => processed.push({ h, underLoad }), now, opts.batch ?? 32, opts.budgetMs ?? 2, opts.capacity);
  return { q, processed, setClock: (ms: number) => void (clock = ms) };
}
const item = (src: string, tag: number, checked = false): QueuedHandshake => {
  const msg = new Uint8Array(MESSAGE_INITIATION_SIZE);
  msg[0] = MESSAGE_INITIATION;
  msg[4] = tag & 0xff; msg[5] = tag >> 8;
  return { msg, src: ep(src), checked };
};
const tagOf = (h: QueuedHandshake): number => h.msg[4]! | (h.msg[5]! << 8);
async function drainAll(q: HandshakeQueue): Promise<void> {
  for (let i = 0; i < 10_000 && q.length > 0; i++) await turn();
}

t.test('round-robin across sources: one message per source in turn, FIFO within a source', async (t) => {
  const { q, processed } = recordingQueue();
  for (let i = 0; i < 6; i++) q.push(item('198.51.100.4', 100 + i));
  q.push(item('198.51.100.5', 200));
  q.push(item('198.51.100.5', 201));
  q.push(item('198.51.100.6', 300));
  t.equal(q.length, 9);
  t.equal(q.sourceCount, 3);
  await drainAll(q);
  t.same(processed.map((p) => tagOf(p.h)), [100, 200, 300, 101, 201, 102, 103, 104, 105]);
  t.equal(q.sourceCount, 0, 'emptied sources are forgotten');
});

t.test('a source that joins later waits for one message of each other source, not for their backlog', async (t) => {
  const { q, processed } = recordingQueue({ batch: 4 });
  for (let s = 0; s < 64; s++) for (let i = 0; i < 10; i++) q.push(item(`198.51.100.${4 + s}`, s * 10 + i));
  await turn(); // some processed, the rest waiting
  q.push(item('192.0.2.77', 9999, true));
  await drainAll(q);
  const at = processed.findIndex((p) => tagOf(p.h) === 9999);
  t.ok(at >= 0 && at <= 4 + 64, `served at position ${at} of ${processed.length}`);
});

t.test('full queue: longest-queue drop keeps room for a source with few messages', async (t) => {
  const { q, processed } = recordingQueue();
  // 64 busy sources fill every slot (as mac2-valid junk from attackers holding cookies could).
  let refused = 0;
  for (let i = 0; i < HANDSHAKE_QUEUE_SIZE; i++) if (!q.push(item(`198.51.100.${4 + (i % 64)}`, i, true))) refused++;
  t.equal(refused, 0, 'room for all until full');
  t.equal(q.length, HANDSHAKE_QUEUE_SIZE);
  t.notOk(q.push(item('198.51.100.4', 5000, true)), 'a busiest source is refused when full…');
  t.equal(q.length, HANDSHAKE_QUEUE_SIZE);
  t.notOk(q.push(item('192.0.2.77', 7777, true)), '…a quiet source displaces the oldest message of a busiest one (one drop, counted by the caller)');
  t.equal(q.length, HANDSHAKE_QUEUE_SIZE, 'still full');
  t.notOk(q.push(item('192.0.2.77', 7778, true)), 'and again');
  await drainAll(q);
  const tags = processed.map((p) => tagOf(p.h));
  t.notOk(tags.includes(5000), 'the refused message never ran');
  const at = tags.indexOf(7777);
  t.ok(at >= 0 && at <= 65, `the quiet source's first message ran at position ${at}`);
  t.ok(tags.includes(7778), 'its second too');
  t.equal(processed.length, HANDSHAKE_QUEUE_SIZE);
  t.ok(processed.every((p) => p.underLoad === false), 'checked messages are processed with underLoad = false');
});

t.test('full queue of one source: every other source still gets in', async (t) => {
  const { q, processed } = recordingQueue({ capacity: 16 });
  for (let i = 0; i < 16; i++) q.push(item('203.0.113.9', i));
  for (let s = 0; s < 8; s++) q.push(item(`198.51.100.${4 + s}`, 100 + s));
  t.equal(q.length, 16);
  t.equal(q.sourceCount, 9);
  await drainAll(q);
  const tags = processed.map((p) => tagOf(p.h));
  for (let s = 0; s < 8; s++) t.ok(tags.includes(100 + s), `source ${s} processed`);
  t.same(tags.filter((x) => x < 16), [8, 9, 10, 11, 12, 13, 14, 15], 'the flooding source lost its oldest');
});

t.test('sources are keyed like the rate limiter: IPv4 address, IPv6 /64, IPv4-mapped as IPv4; ports do not count', async (t) => {
  const { q } = recordingQueue();
  q.push({ ...item('198.51.100.4', 1), src: ep('198.51.100.4', 1) });
  q.push({ ...item('198.51.100.4', 2), src: ep('198.51.100.4', 2) });
  t.equal(q.sourceCount, 1);
  q.push({ ...item('x', 3), src: ep('2001:db8:1:2::1') });
  q.push({ ...item('x', 4), src: ep('2001:db8:1:2:ffff::9') });
  t.equal(q.sourceCount, 2, 'one /64');
  q.push({ ...item('x', 5), src: ep('2001:db8:1:3::1') });
  t.equal(q.sourceCount, 3, 'another /64');
  const mapped = { address: '::ffff:198.51.100.4', port: 9, family: 6 as const, bytes: Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 198, 51, 100, 4]) };
  q.push({ ...item('x', 6), src: mapped });
  t.equal(q.sourceCount, 3, 'IPv4-mapped joins the IPv4 source');
  q.clear();
  t.equal(q.length, 0);
  t.equal(q.sourceCount, 0);
});

t.test('bounded work per event-loop turn: batch and time budget', async (t) => {
  const a = recordingQueue({ batch: 8 });
  for (let i = 0; i < 50; i++) a.q.push(item(`198.51.100.${4 + (i % 5)}`, i));
  await turn();
  t.equal(a.processed.length, 8, 'one batch per turn');
  let clock = 0;
  const processed: number[] = [];
  const q = new HandshakeQueue((h) => { processed.push(tagOf(h)); clock += 1; }, () => clock, 32, 3);
  for (let i = 0; i < 50; i++) q.push(item('198.51.100.4', i));
  await turn();
  t.ok(processed.length >= 3 && processed.length <= 4, `a 3 ms budget stops a turn of 1 ms messages (${processed.length} ran)`);
  await drainAll(q);
  t.equal(processed.length, 50, 'the rest in later turns');
});

t.test('under load: 1/8 of the slots held, for 1 s after it was last seen; unchecked messages use the load at processing time', async (t) => {
  const { q, processed, setClock } = recordingQueue({ batch: 1000, budgetMs: 1e9 });
  for (let i = 0; i < UNDER_LOAD_QUEUE_LENGTH - 1; i++) q.push(item(`198.51.100.${4 + (i % 64)}`, i));
  t.notOk(q.isUnderLoad(), `${UNDER_LOAD_QUEUE_LENGTH - 1} queued: not under load`);
  q.push(item('198.51.100.4', 500));
  t.ok(q.isUnderLoad(), `${UNDER_LOAD_QUEUE_LENGTH} queued: under load`);
  await drainAll(q);
  t.ok(processed.every((p) => p.underLoad), 'unchecked messages processed under load get the load rules');
  setClock(UNDER_LOAD_AFTER_TIME - 1);
  t.ok(q.isUnderLoad(), 'still under load just before 1 s');
  setClock(UNDER_LOAD_AFTER_TIME);
  t.notOk(q.isUnderLoad(), 'over after 1 s');
});

// ───────────────────────── a flood and a legitimate initiator, sans I/O ─────────────────────────

t.test('junk flood from 64 sources: the legitimate initiator gets one cookie reply and its retransmit is accepted', async (t) => {
  const { net, a, b } = twoPeers();
  const stats = { refused: 0, queueFull: 0 };
  let processedUnderLoadFalse = 0;
  let junkWithDh = 0;
  const q = new HandshakeQueue((h, underLoad) => {
    if (!underLoad) processedUnderLoadFalse++;
    const r = b.engine.receiveHandshake(h.msg, h.src, underLoad);
    if (h.src.address !== a.endpoint.address && r === 'decrypt_failed') junkWithDh++; // junk that cost a Diffie-Hellman
  }, () => net.clock.now());
  const arrive = intake(b, q, stats);
  const bAddr = `${b.endpoint.address}:${b.endpoint.port}`;
  net.filter = (w) => {
    if (w.to !== bAddr || typeOf(w) === 4) return true;
    arrive(w.bytes, a.endpoint);
    return false;
  };
  const junkSources = Array.from({ length: 64 }, (_, k) => ep(`198.51.100.${4 + k}`, 40000 + k));
  const junk = junkSources.map(() => junkInitiation(b.engine.publicKey!));
  let sent = 0;
  /** One 10 ms step of a 20,000/s flood: 200 junk initiations, round-robin over the sources. */
  const floodStep = async (): Promise<void> => {
    net.clock.t += 10;
    for (let i = 0; i < 200; i++, sent++) arrive(junk[sent % 64]!, junkSources[sent % 64]!);
    a.engine.tick();
    b.engine.tick();
    net.pump();
    await turn();
    net.pump();
  };
  for (let i = 0; i < 100; i++) await floodStep(); // 1 s of flood first
  t.ok(q.isUnderLoad(), 'the flood put B under load');
  const start = net.clock.t;
  t.equal(net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2')), 'staged', 'A starts a fresh handshake');
  net.pump();
  let doneAt = -1;
  for (let i = 0; i < 700 && doneAt < 0; i++) {
    await floodStep();
    if (b.delivered.length > 0) doneAt = net.clock.t;
  }
  const toA = b.sent.filter((w) => w.to === `${a.endpoint.address}:${a.endpoint.port}`).map(typeOf);
  t.comment(`junk sent ${sent}, refused at the door ${stats.refused}, queue_full ${stats.queueFull}, junk that reached a DH ${junkWithDh}; handshake done after ${doneAt - start} ms`);
  t.ok(doneAt > 0 && doneAt - start <= 6_000, 'the handshake completed within 6 s of the first initiation');
  t.ok(doneAt - start >= 5_000, 'after the retransmit (the first initiation was answered with a cookie)');
  t.same(toA.slice(0, 2), [MESSAGE_COOKIE_REPLY, MESSAGE_RESPONSE], 'one cookie reply, then the response');
  t.equal(stats.queueFull, 0, 'nothing dropped for a full queue');
  t.ok(stats.refused > sent * 0.9, 'almost all junk refused before the queue');
  t.ok(junkWithDh < sent * 0.05, 'only a few junk messages (those queued before each load period began) reached a DH');
});
