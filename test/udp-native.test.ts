// wirepool's UDP addon (native/udp.c through src/io/udp-native.ts), its socket owner NativeBind
// (src/io/bind.ts) and the endpoint words (src/io/endpoint-words.ts), over loopback: bind errors
// and the random port, sendSlots → recvSlots round trips on both families (byte-identical, in
// order, sender and local address in the words), UDP GSO groups arriving as one GRO super-datagram
// and split, groups broken by endpoint / source / size, more datagrams than slots, datagrams too
// big for a slot, a full socket buffer (EAGAIN, inside a throw-away network namespace with a slow
// qdisc), sticky source addresses (127.0.0.2, and a source that is not local), and the wake
// eventfd. Random sizes come from a seeded PRNG (WIREPOOL_SEED replays a run); every loop is bounded.
import t, { type Test } from 'tap';
import fs from 'node:fs';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import {
  OUT_WORDS, RECV_OUT_CALLS, RECV_OUT_ENTRIES, RECV_OUT_GRO_ENTRIES, RECV_OUT_PENDING, RECV_OUT_TOO_BIG, RECV_OUT_WOKEN,
  SEND_OUT_CALLS, SEND_OUT_GSO_MSGS, SEND_OUT_SENT, SEND_OUT_SRC_FALLBACKS, SEND_OUT_STOP_ERRNO, SEND_OUT_STOP_INDEX,
  udpNative, udpNativeAvailable,
} from '../src/io/udp-native.js';
import { NativeBind } from '../src/io/bind.js';
import {
  clearEndpointWords, endpointFromWords, endpointWords, endpointWordsEqual, remoteEndpointFromWords, remoteWordsEqual,
  sourceFromWords, sourceWordsEqual, writeEndpointWords, type StickySource,
} from '../src/io/endpoint-words.js';
import { endpointFromAddress, type Endpoint, Sent } from '../src/protocol/endpoint.js';
import { EP_WORDS, M_EP_FAMILY, M_EP_SRC, M_EP_SRC_IFINDEX, M_LENGTH, M_RESULT, META_WORDS } from '../src/dataplane/layout.js';
import { makePrng, testSeed, type Prng } from './helpers/seeded-prng.js';

t.setTimeout(120_000);

const seed = testSeed();
t.comment(`seed ${seed} (WIREPOOL_SEED=${seed} replays this run)`);

if (!udpNativeAvailable()) {
  t.fail('native/build/Release/wirepool_udp.node is not built (cd native && npx node-gyp rebuild)');
  process.exit(1);
}
const native = udpNative();
const LO_IFINDEX = Number(fs.readFileSync('/sys/class/net/lo/ifindex', 'utf8').trim());
const EAGAIN = -11;
const EBADF = -9;
const EDESTADDRREQ = -89;

const V4_LO = Uint8Array.of(127, 0, 0, 1);
const V4_LO2 = Uint8Array.of(127, 0, 0, 2);
const V6_LO = (() => { const b = new Uint8Array(16); b[15] = 1; return b; })();
const loopback = (family: 4 | 6): Uint8Array => (family === 4 ? V4_LO : V6_LO);
const ep = (address: string, port: number): Endpoint => endpointFromAddress(address, port)!;

// ---- rings and helpers -------------------------------------------------------------------------

interface TestRing { slots: number; slotBytes: number; data: Uint8Array; meta: Int32Array }

function testRing(slots: number, slotBytes: number): TestRing {
  return {
    slots,
    slotBytes,
    data: new Uint8Array(new SharedArrayBuffer(slots * slotBytes)),
    meta: new Int32Array(new SharedArrayBuffer(slots * META_WORDS * 4)),
  };
}

interface Msg { bytes: Uint8Array; words: Int32Array }

/** Puts `msgs` into slots of `r` (a spread of indices, not contiguous) and returns the slot list. */
function fillSlots(r: TestRing, msgs: Msg[], first = 0): Int32Array {
  const list = new Int32Array(msgs.length);
  for (let i = 0; i < msgs.length; i++) {
    const s = (first + i * 7) % r.slots;
    list[i] = s;
    r.data.set(msgs[i]!.bytes, s * r.slotBytes);
    r.meta[s * META_WORDS + M_RESULT] = msgs[i]!.bytes.length;
    r.meta.set(msgs[i]!.words, s * META_WORDS + M_EP_FAMILY);
  }
  return list;
}

interface RecvStats { calls: number; entries: number; gro: number; tooBig: number; maxPending: number; returns: number[] }
interface Got { bytes: Uint8Array; words: Int32Array }

/**
 * Receives until `want` datagrams arrived or `idleLimit` calls in a row returned nothing (each
 * waiting up to timeoutMs), at most 5000 calls. maxSlots: a number, or random in 1..64.
 */
function recvUntil(fd4: number, fd6: number, r: TestRing, want: number, opts: { maxSlots?: number; prng?: Prng; timeoutMs?: number; idleLimit?: number } = {}): { got: Got[]; stats: RecvStats } {
  const got: Got[] = [];
  const stats: RecvStats = { calls: 0, entries: 0, gro: 0, tooBig: 0, maxPending: 0, returns: [] };
  const list = new Int32Array(64);
  const out = new Int32Array(OUT_WORDS);
  let idle = 0;
  let next = 0;
  for (let iter = 0; iter < 5000 && got.length < want && idle < (opts.idleLimit ?? 2); iter++) {
    const max = opts.maxSlots ?? (opts.prng ? 1 + opts.prng.int(64) : 64);
    for (let i = 0; i < max; i++) list[i] = (next + i * 5) % r.slots;
    next = (next + 3) % r.slots;
    const n = native.recvSlots(fd4, fd6, -1, opts.timeoutMs ?? 500, r.data, r.slotBytes, r.meta, list, max, out);
    stats.calls += out[RECV_OUT_CALLS]!;
    stats.entries += out[RECV_OUT_ENTRIES]!;
    stats.gro += out[RECV_OUT_GRO_ENTRIES]!;
    stats.tooBig += out[RECV_OUT_TOO_BIG]!;
    stats.maxPending = Math.max(stats.maxPending, out[RECV_OUT_PENDING]!);
    stats.returns.push(n);
    if (n === 0) idle++;
    else idle = 0;
    for (let i = 0; i < n; i++) {
      const s = list[i]!;
      const len = r.meta[s * META_WORDS + M_LENGTH]!;
      got.push({
        bytes: r.data.slice(s * r.slotBytes, s * r.slotBytes + len),
        words: r.meta.slice(s * META_WORDS + M_EP_FAMILY, s * META_WORDS + M_EP_FAMILY + EP_WORDS),
      });
    }
  }
  return { got, stats };
}

/** Sends all slots, retrying on EAGAIN a bounded number of times. Returns the summed out[] counters. */
function sendAll(fd4: number, fd6: number, r: TestRing, list: Int32Array, gso: boolean): { sent: number; gsoMsgs: number; calls: number; srcFallbacks: number } {
  const out = new Int32Array(OUT_WORDS);
  const acc = { sent: 0, gsoMsgs: 0, calls: 0, srcFallbacks: 0 };
  for (let tries = 0; tries < 100 && acc.sent < list.length; tries++) {
    const rest = list.subarray(acc.sent);
    const n = native.sendSlots(fd4, fd6, r.data, r.slotBytes, r.meta, rest, rest.length, gso, out);
    acc.sent += n;
    acc.gsoMsgs += out[SEND_OUT_GSO_MSGS]!;
    acc.calls += out[SEND_OUT_CALLS]!;
    acc.srcFallbacks += out[SEND_OUT_SRC_FALLBACKS]!;
    if (n < rest.length && out[SEND_OUT_STOP_ERRNO] !== EAGAIN) break;
  }
  return acc;
}

/** Messages of the given sizes with deterministic content, all to `words`. */
function messages(prng: Prng, sizes: number[], words: Int32Array): Msg[] {
  return sizes.map((n) => ({ bytes: prng.bytes(n), words }));
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** Reference grouping of sendSlots with GSO: number of messages carrying more than one slot. */
function expectedGsoMessages(msgs: Msg[]): number {
  let groups = 0;
  let i = 0;
  while (i < msgs.length) {
    const len0 = msgs[i]!.bytes.length;
    let k = i + 1;
    let total = len0;
    if (len0 > 0) {
      while (k < msgs.length && k - i < 64) {
        const m = msgs[k]!;
        const len = m.bytes.length;
        if (len > len0 || len === 0 || total + len > 65507) break;
        if (!m.words.every((w, j) => w === msgs[i]!.words[j])) break;
        total += len;
        k++;
        if (len < len0) break;
      }
    }
    if (k - i > 1) groups++;
    i = k;
  }
  return groups;
}

async function dgramOn(type: 'udp4' | 'udp6', port: number): Promise<dgram.Socket> {
  const s = dgram.createSocket({ type, ipv6Only: type === 'udp6' });
  s.bind(port);
  await once(s, 'listening');
  return s;
}

function bound(t: Test, b: NativeBind = new NativeBind()): NativeBind {
  b.bind(0);
  t.teardown(() => b.close());
  return b;
}

function opened(t: Test, family: 4 | 6, opts = {}): ReturnType<typeof native.open> {
  const s = native.open(family, 0, opts);
  t.teardown(() => { native.close(s.fd); });
  return s;
}


// ---- endpoint words ------------------------------------------------------------------------------

t.test('endpoint words', async (t) => {
  const v4 = ep('192.0.2.9', 51820);
  const w4 = endpointWords(v4);
  t.equal(w4[0], 4);
  t.equal(w4[1], 51820);
  t.same([...new Uint8Array(w4.buffer, 8, 4)], [192, 0, 2, 9], 'raw address bytes in words 2..');
  t.same([...w4.subarray(3)], new Array(9).fill(0), 'rest zero: no scope, no source');
  const src: StickySource = { addr: Uint8Array.of(10, 1, 2, 3), ifindex: 7 };
  const w4s = endpointWords(v4, src);
  t.equal(w4s[M_EP_SRC_IFINDEX - M_EP_FAMILY], 7);
  t.same([...new Uint8Array(w4s.buffer, (M_EP_SRC - M_EP_FAMILY) * 4, 4)], [10, 1, 2, 3]);
  const v4s: Endpoint = { ...v4, src: src.addr, srcIfindex: 7 };
  t.same([...endpointWords(v4s)], [...w4s], 'src taken from the endpoint');
  t.same([...endpointWords(v4s, null)], [...w4], 'null: no source');

  const meta = new Int32Array(4 * META_WORDS);
  const base = 2 * META_WORDS + M_EP_FAMILY;
  writeEndpointWords(meta, base, v4, src);
  t.ok(endpointWordsEqual(meta, base, w4s));
  t.notOk(endpointWordsEqual(meta, base, w4));
  t.ok(remoteWordsEqual(meta, base, w4), 'same remote, other source');
  t.notOk(sourceWordsEqual(meta, base, w4));
  const back = remoteEndpointFromWords(meta, base)!;
  t.same({ ...back, bytes: [...back.bytes] }, { address: '192.0.2.9', port: 51820, family: 4, bytes: [192, 0, 2, 9] }, 'remote part only');
  t.same(sourceFromWords(meta, base), { addr: Uint8Array.of(10, 1, 2, 3), ifindex: 7 });
  const full = endpointFromWords(meta, base)!;
  t.same([...full.src!], [10, 1, 2, 3], 'endpointFromWords carries the source');
  t.equal(full.srcIfindex, 7);
  t.ok(endpointWordsEqual(meta, base, endpointWords(full)), 'endpointWords(endpointFromWords(w)) == w');
  // A link-local IPv6 sender: the scope survives the round trip.
  const ll = endpointWords({ ...ep('fe80::1', 9), scope: 3 } as Endpoint);
  meta.set(ll, base);
  t.equal((endpointFromWords(meta, base) as { scope?: number }).scope, 3);
  t.ok(endpointWordsEqual(meta, base, endpointWords(endpointFromWords(meta, base)!)), 'scope round trip');

  const v6 = ep('2001:db8::42', 443);
  const w6 = endpointWords(v6);
  meta.set(w6, base);
  const back6 = endpointFromWords(meta, base)!;
  t.equal(back6.address, '2001:db8::42');
  t.equal(back6.family, 6);
  t.equal(back6.port, 443);
  t.equal(sourceFromWords(meta, base), null, 'no source');
  clearEndpointWords(meta, base);
  t.equal(endpointFromWords(meta, base), null, 'cleared: no endpoint');
});

// ---- open, bind ----------------------------------------------------------------------------------

t.test('open: random port, offload flags, errors like Node', async (t) => {
  const a = opened(t, 4);
  t.ok(a.fd >= 0 && a.port > 0, `fd ${a.fd} port ${a.port}`);
  t.equal(native.localPort(a.fd), a.port);
  t.comment(`IPv4 socket: gso=${a.gso} gro=${a.gro}`);
  const b = opened(t, 6);
  t.comment(`IPv6 socket: gso=${b.gso} gro=${b.gro}`);
  t.equal(native.localPort(b.fd), b.port);

  const d4 = await dgramOn('udp4', 0);
  const d6 = await dgramOn('udp6', 0);
  t.teardown(() => { d4.close(); d6.close(); });
  for (const [family, s] of [[4, d4], [6, d6]] as const) {
    const err = t.throws(() => native.open(family, s.address().port)) as NodeJS.ErrnoException;
    t.equal(err.code, 'EADDRINUSE', `IPv${family} port held by a dgram socket`);
    t.equal(err.errno, -98);
    t.equal(err.syscall, 'bind');
  }
  t.throws(() => native.open(5 as 4, 0), RangeError);
  t.equal(native.setMark(a.fd, 0x51), 0, 'SO_MARK as root');
  t.equal(native.setMark(-1, 1), EBADF);
  t.equal(native.localPort(-1), EBADF);
  t.equal(native.close(-1), EBADF);
});

t.test('NativeBind: same random port on both families, EADDRINUSE keeps the old sockets, deferred close', async (t) => {
  const deferred: (() => void)[] = [];
  const a = new NativeBind((close) => deferred.push(close));
  t.teardown(() => { a.close(); for (const c of deferred.splice(0)) c(); });
  t.equal(a.port, 0);
  t.equal(a.generation, 0);
  a.bind(0);
  t.ok(a.port > 0 && a.fd4 >= 0 && a.fd6 >= 0, `bound to ${a.port}`);
  t.equal(native.localPort(a.fd4), a.port, 'IPv4 on the port');
  t.equal(native.localPort(a.fd6), a.port, 'IPv6 on the same port');
  t.equal(a.fdFor(4), a.fd4);
  t.equal(a.fdFor(6), a.fd6);
  t.equal(a.generation, 1);
  t.equal(deferred.length, 1, 'deferClose called on the first bind too (to publish the fds)');
  deferred.shift()!(); // closes nothing

  // Another bind wants a's port: EADDRINUSE, and it stays unbound.
  const b = new NativeBind();
  t.teardown(() => b.close());
  const err = t.throws(() => b.bind(a.port)) as NodeJS.ErrnoException;
  t.equal(err.code, 'EADDRINUSE');
  t.equal(err.errno, -98);
  t.equal(b.port, 0);
  t.equal(b.fd4, -1);

  // b bound elsewhere, then asked for a's port: fails, keeps its sockets, which still work.
  b.bind(0);
  const bPort = b.port;
  const bFd4 = b.fd4;
  const gen = b.generation;
  t.throws(() => b.bind(a.port), { code: 'EADDRINUSE' });
  t.equal(b.port, bPort, 'old port kept');
  t.equal(b.fd4, bFd4, 'old socket kept');
  t.equal(b.generation, gen, 'no swap');
  t.ok(a.sendTo(ep('127.0.0.1', bPort), Buffer.from('still here')), 'sendTo');
  const r = testRing(8, 2048);
  const { got } = recvUntil(b.fd4, b.fd6, r, 1);
  t.equal(got.length, 1);
  t.equal(Buffer.from(got[0]!.bytes).toString(), 'still here', 'the old socket still receives');

  // Port held on IPv6 only: the IPv4 socket opened meanwhile is closed again.
  const d6 = await dgramOn('udp6', 0);
  const p6 = d6.address().port;
  t.throws(() => b.bind(p6), { code: 'EADDRINUSE' });
  d6.close();
  const d4 = await dgramOn('udp4', p6).catch((e: Error) => e);
  t.notOk(d4 instanceof Error, 'the IPv4 half of the failed bind was released');
  if (!(d4 instanceof Error)) d4.close();

  // Rebinding to the bound port is a no-op; port 0 picks a fresh random port and defers the close.
  a.bind(a.port);
  t.equal(a.generation, 1, 'same port: no-op');
  const old4 = a.fd4;
  const old6 = a.fd6;
  const oldPort = a.port;
  a.bind(0);
  t.not(a.port, oldPort, 'fresh random port');
  t.equal(a.generation, 2);
  t.equal(deferred.length, 1, 'old pair handed to deferClose');
  t.equal(native.localPort(old4), oldPort, 'old IPv4 socket still open until deferClose runs it');
  t.equal(native.localPort(old6), oldPort, 'old IPv6 socket still open');
  deferred.shift()!();
  t.equal(native.localPort(old4), EBADF, 'closed by the deferred close');
  t.equal(native.localPort(old6), EBADF);
  const freed = await dgramOn('udp4', oldPort).catch((e: Error) => e);
  t.notOk(freed instanceof Error, 'old port free again');
  if (!(freed instanceof Error)) freed.close();

  a.setMark(0x77);
  a.setMark(0);
  const cur4 = a.fd4;
  const curPort = a.port;
  a.close();
  t.equal(a.port, 0);
  t.equal(a.fd4, -1);
  t.equal(a.generation, 3);
  t.equal(deferred.length, 1, 'close() defers the close too');
  t.equal(native.localPort(cur4), curPort, 'still open until the deferred close runs');
  deferred.shift()!();
  t.equal(native.localPort(cur4), EBADF, 'closed');
});

// ---- sendSlots → recvSlots ---------------------------------------------------------------------------

t.test('round trips of many slots, both families, random sizes and batching', async (t) => {
  const prng = makePrng(seed);
  const a = bound(t);
  const b = bound(t);
  const send = testRing(512, 9280);
  const recv = testRing(256, 9280);
  for (const family of [4, 6] as const) {
    const to = endpointWords(ep(family === 4 ? '127.0.0.1' : '::1', b.port));
    const msgs: Msg[] = [];
    // Runs of equal sizes (GSO groups, some ending in a shorter one, some past 64), and random ones.
    for (let guard = 0; guard < 10_000 && msgs.length < 1500; guard++) {
      if (prng.chance(0.5)) {
        const size = 1 + prng.int(1500);
        const run = 1 + prng.int(80);
        for (let i = 0; i < run; i++) msgs.push({ bytes: prng.bytes(size), words: to });
        if (prng.chance(0.3)) msgs.push({ bytes: prng.bytes(prng.int(size)), words: to });
      } else {
        msgs.push({ bytes: prng.bytes(prng.chance(0.05) ? 9000 : prng.int(1500)), words: to });
      }
    }
    let i = 0;
    let gsoMsgs = 0;
    const all: Got[] = [];
    const totals = { entries: 0, gro: 0 };
    for (let guard = 0; guard < 1000 && i < msgs.length; guard++) {
      const batch = msgs.slice(i, i + 1 + prng.int(200));
      const list = fillSlots(send, batch, prng.int(send.slots));
      const useGso = prng.chance(0.7);
      const res = sendAll(a.fd4, a.fd6, send, list, useGso);
      t.equal(res.sent, batch.length, 'all sent');
      if (useGso && a.gso(family)) t.equal(res.gsoMsgs, expectedGsoMessages(batch), 'GSO messages as grouped by the reference');
      if (!useGso) t.equal(res.gsoMsgs, 0, 'no GSO when not asked');
      gsoMsgs += res.gsoMsgs;
      const { got, stats } = recvUntil(b.fd4, b.fd6, recv, batch.length, { prng });
      all.push(...got);
      totals.entries += stats.entries;
      totals.gro += stats.gro;
      i += batch.length;
    }
    t.equal(all.length, msgs.length, `IPv${family}: every datagram arrived`);
    let bad = -1;
    for (let k = 0; k < msgs.length && bad < 0; k++) if (!all[k] || !same(all[k]!.bytes, msgs[k]!.bytes)) bad = k;
    t.equal(bad, -1, `IPv${family}: byte-identical and in order (seed ${seed})`);
    const w = all[0]!.words;
    const sender = endpointFromWords(w, 0)!;
    t.equal(sender.family, family);
    t.equal(sender.port, a.port, 'sender port');
    t.equal(sender.address, family === 4 ? '127.0.0.1' : '::1', 'sender address');
    const local = sourceFromWords(w, 0)!;
    t.same([...local.addr], [...loopback(family)], 'local destination address from pktinfo');
    t.equal(local.ifindex, LO_IFINDEX, 'arrived on lo');
    t.ok(all.every((g) => endpointWordsEqual(g.words, 0, w)), 'same words on every datagram');
    t.comment(`IPv${family}: ${msgs.length} datagrams, ${gsoMsgs} GSO messages sent, ${totals.entries} receive entries, ${totals.gro} GRO super-datagrams`);
  }
});

t.test('both families into one receiver: each in order', async (t) => {
  const prng = makePrng(seed ^ 0x5555);
  const a = bound(t);
  const b = bound(t);
  const send = testRing(256, 2048);
  const recv = testRing(256, 2048);
  const to4 = endpointWords(ep('127.0.0.1', b.port));
  const to6 = endpointWords(ep('::1', b.port));
  const msgs: Msg[] = [];
  for (let i = 0; i < 200; i++) {
    const bytes = prng.bytes(8 + prng.int(1000));
    new DataView(bytes.buffer).setUint32(0, i);
    msgs.push({ bytes, words: prng.chance(0.5) ? to4 : to6 });
  }
  const list = fillSlots(send, msgs);
  const res = sendAll(a.fd4, a.fd6, send, list, true);
  t.equal(res.sent, msgs.length, 'sent across both sockets in one call');
  const { got } = recvUntil(b.fd4, b.fd6, recv, msgs.length, { prng });
  t.equal(got.length, msgs.length);
  for (const family of [4, 6]) {
    const sent = msgs.filter((m) => m.words[0] === family).map((m) => new DataView(m.bytes.buffer).getUint32(0));
    const rcvd = got.filter((g) => g.words[0] === family).map((g) => new DataView(g.bytes.buffer, g.bytes.byteOffset).getUint32(0));
    t.same(rcvd, sent, `IPv${family} in order`);
  }
});

t.test('GSO: a run of equal slots leaves as one message and arrives as one GRO super-datagram', async (t) => {
  const prng = makePrng(seed ^ 0x1234);
  const a = bound(t);
  const b = bound(t);
  if (!a.gso(4)) {
    t.comment('this kernel offers no UDP GSO: skipped');
    return;
  }
  const send = testRing(256, 2048);
  const recv = testRing(256, 2048);
  const to = endpointWords(ep('127.0.0.1', b.port));
  const cases: { name: string; sizes: number[]; gso: number; entries?: number }[] = [
    { name: '40 × 1200', sizes: new Array(40).fill(1200), gso: 1, entries: 1 },
    { name: '100 × 1000: 64 segments at most', sizes: new Array(100).fill(1000), gso: 2, entries: 2 },
    { name: '100 × 1400: 65,507 bytes at most', sizes: new Array(100).fill(1400), gso: 3, entries: 3 },
    { name: 'a shorter one ends the group', sizes: [...new Array(5).fill(1000), 600, ...new Array(5).fill(1000)], gso: 2, entries: 2 },
    { name: 'a larger one starts a new group', sizes: [500, 500, 500, 1000, 1000, 1000], gso: 2, entries: 2 },
    { name: 'single slots stay plain', sizes: [100, 200, 300], gso: 0, entries: 3 },
  ];
  for (const c of cases) {
    const msgs = messages(prng, c.sizes, to);
    const list = fillSlots(send, msgs);
    const out = new Int32Array(OUT_WORDS);
    const n = native.sendSlots(a.fd4, a.fd6, send.data, send.slotBytes, send.meta, list, list.length, true, out);
    t.equal(n, msgs.length, `${c.name}: sent`);
    t.equal(out[SEND_OUT_SENT], n);
    t.equal(out[SEND_OUT_STOP_INDEX], n);
    t.equal(out[SEND_OUT_STOP_ERRNO], 0);
    t.equal(out[SEND_OUT_GSO_MSGS], c.gso, `${c.name}: ${c.gso} GSO messages`);
    t.equal(out[SEND_OUT_CALLS], 1, `${c.name}: one sendmmsg`);
    const { got, stats } = recvUntil(b.fd4, b.fd6, recv, msgs.length, { maxSlots: 64 });
    t.equal(got.length, msgs.length, `${c.name}: all received`);
    t.ok(got.every((g, i) => same(g.bytes, msgs[i]!.bytes)), `${c.name}: identical, in order`);
    if (b.gro(4) && c.entries !== undefined) {
      t.equal(stats.entries, c.entries, `${c.name}: ${c.entries} receive entries (GRO)`);
      t.equal(stats.gro, c.gso, `${c.name}: split from ${c.gso} super-datagrams`);
    }
  }
  // Without GSO: one message per slot.
  const msgs = messages(prng, new Array(20).fill(700), to);
  const list = fillSlots(send, msgs);
  const out = new Int32Array(OUT_WORDS);
  t.equal(native.sendSlots(a.fd4, a.fd6, send.data, send.slotBytes, send.meta, list, list.length, false, out), 20);
  t.equal(out[SEND_OUT_GSO_MSGS], 0, 'gso=false: no groups');
  const { got, stats } = recvUntil(b.fd4, b.fd6, recv, 20);
  t.equal(got.length, 20);
  t.equal(stats.gro, 0, 'nothing coalesced on receive');
});

t.test('groups break at another endpoint or source', async (t) => {
  const prng = makePrng(seed ^ 0x777);
  const a = bound(t);
  const b = bound(t);
  const c = bound(t);
  const send = testRing(512, 2048);
  const recv = testRing(256, 2048);
  const toB = endpointWords(ep('127.0.0.1', b.port));
  const toB2 = endpointWords(ep('127.0.0.1', b.port), { addr: V4_LO, ifindex: 0 }); // same peer, explicit source
  const toC = endpointWords(ep('127.0.0.1', c.port));
  const toC6 = endpointWords(ep('::1', c.port));
  const targets = [toB, toB2, toC, toC6];
  const msgs: Msg[] = [];
  for (let guard = 0; guard < 1000 && msgs.length < 400; guard++) {
    const words = prng.pick(targets);
    const size = 100 + prng.int(1200);
    const run = 1 + prng.int(12);
    for (let i = 0; i < run; i++) msgs.push({ bytes: prng.bytes(size), words });
  }
  const list = fillSlots(send, msgs);
  const res = sendAll(a.fd4, a.fd6, send, list, true);
  t.equal(res.sent, msgs.length, 'all sent');
  if (a.gso(4) && a.gso(6)) t.equal(res.gsoMsgs, expectedGsoMessages(msgs), `GSO messages as the reference groups them (seed ${seed})`);
  const gotB = recvUntil(b.fd4, b.fd6, recv, msgs.filter((m) => m.words === toB || m.words === toB2).length, { prng }).got;
  const gotC = recvUntil(c.fd4, c.fd6, recv, msgs.filter((m) => m.words === toC || m.words === toC6).length, { prng }).got;
  const wantB = msgs.filter((m) => m.words === toB || m.words === toB2);
  const wantC = msgs.filter((m) => m.words === toC || m.words === toC6);
  t.equal(gotB.length, wantB.length, 'b got its share');
  t.equal(gotC.length, wantC.length, 'c got its share');
  t.ok(wantB.every((m, i) => gotB[i] && same(gotB[i]!.bytes, m.bytes)), 'b: in order, identical');
  // c receives on two sockets: order holds per family.
  for (const fam of [4, 6]) {
    const w = wantC.filter((m) => m.words[0] === fam);
    const g = gotC.filter((x) => x.words[0] === fam);
    t.ok(w.length === g.length && w.every((m, i) => same(g[i]!.bytes, m.bytes)), `c, IPv${fam}: in order, identical`);
  }
});

t.test('more datagrams than slots: the rest waits for the next call, in order', async (t) => {
  const prng = makePrng(seed ^ 0x4242);
  const a = bound(t);
  const b = bound(t);
  const send = testRing(128, 2048);
  const recv = testRing(64, 2048);
  const to = endpointWords(ep('127.0.0.1', b.port));
  const msgs = [...messages(prng, new Array(50).fill(900), to), ...messages(prng, [77, 78, 79], to)];
  const list = fillSlots(send, msgs);
  t.equal(sendAll(a.fd4, a.fd6, send, list, true).sent, msgs.length);
  const { got, stats } = recvUntil(b.fd4, b.fd6, recv, msgs.length, { maxSlots: 7 });
  t.equal(got.length, msgs.length, 'all delivered');
  t.ok(got.every((g, i) => same(g.bytes, msgs[i]!.bytes)), 'identical and in order across calls');
  t.ok(stats.returns.every((n) => n <= 7), 'never more than the slots given');
  if (b.gro(4) && a.gso(4)) t.ok(stats.maxPending > 0, `datagrams were held between calls (up to ${stats.maxPending})`);
  // Nothing left over afterwards.
  const after = recvUntil(b.fd4, b.fd6, recv, 1, { timeoutMs: 50, idleLimit: 1 });
  t.equal(after.got.length, 0, 'nothing left');
});

t.test('datagrams larger than a slot are dropped and counted', async (t) => {
  const prng = makePrng(seed ^ 0x99);
  const a = bound(t);
  const b = bound(t);
  const send = testRing(64, 2048);
  const recv = testRing(16, 256);
  const to = endpointWords(ep('127.0.0.1', b.port));
  const msgs = [...messages(prng, [100, 300, 200], to), ...messages(prng, new Array(10).fill(300), to), ...messages(prng, [256], to)];
  const list = fillSlots(send, msgs);
  t.equal(sendAll(a.fd4, a.fd6, send, list, true).sent, msgs.length);
  const { got, stats } = recvUntil(b.fd4, b.fd6, recv, 3, { idleLimit: 1, timeoutMs: 200 });
  t.same(got.map((g) => g.bytes.length), [100, 200, 256], 'the ones that fit, in order');
  t.equal(stats.tooBig, 11, '11 too big');
});

t.test('slots that cannot be sent stop the call: index and errno in out[]', async (t) => {
  const prng = makePrng(seed ^ 0x31);
  const a = bound(t);
  const b = bound(t);
  const send = testRing(16, 2048);
  const recv = testRing(16, 2048);
  const to4 = endpointWords(ep('127.0.0.1', b.port));
  const to6 = endpointWords(ep('::1', b.port));
  const none = new Int32Array(EP_WORDS);
  const out = new Int32Array(OUT_WORDS);
  let list = fillSlots(send, messages(prng, [10, 10, 10, 10], to4).map((m, i) => (i === 2 ? { ...m, words: none } : m)));
  t.equal(native.sendSlots(a.fd4, a.fd6, send.data, send.slotBytes, send.meta, list, 4, true, out), 2, 'stops at the slot without endpoint');
  t.equal(out[SEND_OUT_STOP_INDEX], 2);
  t.equal(out[SEND_OUT_STOP_ERRNO], EDESTADDRREQ);
  t.equal(recvUntil(b.fd4, b.fd6, recv, 2).got.length, 2, 'the two before it arrived');
  list = fillSlots(send, [...messages(prng, [10], to4), ...messages(prng, [10], to6)]);
  t.equal(native.sendSlots(a.fd4, -1, send.data, send.slotBytes, send.meta, list, 2, false, out), 1, 'no IPv6 socket');
  t.equal(out[SEND_OUT_STOP_INDEX], 1);
  t.equal(out[SEND_OUT_STOP_ERRNO], EBADF);
  t.equal(native.sendSlots(a.fd4, a.fd6, send.data, send.slotBytes, send.meta, list, 0, true, out), 0, 'n = 0');
  t.equal(out[SEND_OUT_STOP_ERRNO], 0);
  recvUntil(b.fd4, b.fd6, recv, 1, { timeoutMs: 100, idleLimit: 1 });
  // Bad arguments throw before anything is sent.
  t.throws(() => native.sendSlots(a.fd4, a.fd6, send.data, send.slotBytes, send.meta, Int32Array.of(16), 1, true, out), RangeError);
  send.meta[0 * META_WORDS + M_RESULT] = 4096;
  t.throws(() => native.sendSlots(a.fd4, a.fd6, send.data, send.slotBytes, send.meta, Int32Array.of(0), 1, true, out), RangeError);
  t.throws(() => native.recvSlots(b.fd4, b.fd6, -1, 0, recv.data, recv.slotBytes, recv.meta, Int32Array.of(99), 1, out), RangeError);
});

t.test('a full receive buffer drops, recvSlots keeps working', async (t) => {
  const prng = makePrng(seed ^ 0x66);
  const a = bound(t);
  const b = bound(t, new NativeBind(undefined, { rcvbuf: 4096 }));
  const send = testRing(256, 2048);
  const recv = testRing(64, 2048);
  const to = endpointWords(ep('127.0.0.1', b.port));
  const msgs = messages(prng, new Array(200).fill(0).map(() => 200 + prng.int(1200)), to);
  const res = sendAll(a.fd4, a.fd6, send, fillSlots(send, msgs), false);
  t.equal(res.sent, 200, 'the sender does not notice');
  const { got } = recvUntil(b.fd4, b.fd6, recv, 200, { timeoutMs: 100, idleLimit: 1 });
  t.ok(got.length > 0 && got.length < 200, `${got.length} of 200 fitted the small buffer`);
  // What arrived is a prefix-ordered subsequence of what was sent.
  let k = 0;
  for (const g of got) {
    for (let guard = 0; k < msgs.length && !same(msgs[k]!.bytes, g.bytes) && guard < 1000; guard++) k++;
    k++;
  }
  t.ok(k <= msgs.length, 'in order');
});

const nsSkip: string | false = process.getuid?.() !== 0
  ? 'needs root (network namespace)'
  : spawnSync('tc', ['-V'], { timeout: 5000 }).status !== 0 || spawnSync('unshare', ['--version'], { timeout: 5000 }).status !== 0
    ? 'needs tc and unshare'
    : false;

t.test('in a throw-away network namespace: GSO refused past the MTU, and a full send buffer (EAGAIN)', { skip: nsSkip }, async (t) => {
  const modUrl = new URL('../src/io/udp-native.js', import.meta.url).href;
  // `unshare -n` gives the child a network namespace of its own, gone when it exits. Phase 1: lo's
  // MTU at 1280, so a GSO group of 1400-byte segments is refused (EINVAL) and must go out one by one
  // (fragmented). Phase 2: a token bucket of 8 kbit/s on lo, so datagrams stay queued and charged
  // to the sender's small send buffer: sendSlots must stop with EAGAIN and return the count sent.
  const script = `
    import { execFileSync } from 'node:child_process';
    import { udpNative } from ${JSON.stringify(modUrl)};
    execFileSync('ip', ['link', 'set', 'lo', 'up']);
    const n = udpNative();
    const rx = n.open(4, 0, {});
    const slots = 200, slotBytes = 2048;
    const data = new Uint8Array(new SharedArrayBuffer(slots * slotBytes));
    const meta = new Int32Array(new SharedArrayBuffer(slots * 32 * 4));
    const list = new Int32Array(slots);
    const fill = (s, len) => {
      list[s] = s;
      for (let i = 0; i < len; i++) data[s * slotBytes + i] = (s * 7 + i) & 255;
      meta[s * 32 + 2] = len;
      meta[s * 32 + 16] = 4;
      meta[s * 32 + 17] = rx.port;
      new Uint8Array(meta.buffer, (s * 32 + 18) * 4, 4).set([127, 0, 0, 1]);
    };
    const out = new Int32Array(8);
    // Phase 1.
    execFileSync('ip', ['link', 'set', 'lo', 'mtu', '1280']);
    const tx1 = n.open(4, 0, {});
    for (let s = 0; s < 20; s++) fill(s, s < 10 ? 1400 : 1000);
    const mtuSent = n.sendSlots(tx1.fd, -1, data, slotBytes, meta, list, 20, true, out);
    const mtuOut = [...out];
    const rdata = new Uint8Array(64 * 2048), rmeta = new Int32Array(64 * 32), rlist = Int32Array.from({ length: 64 }, (_, i) => i);
    let got = [], rout = new Int32Array(8);
    for (let i = 0; i < 20 && got.length < 20; i++) {
      const k = n.recvSlots(rx.fd, -1, -1, 500, rdata, 2048, rmeta, rlist, 64, rout);
      if (k === 0) break;
      for (let j = 0; j < k; j++) {
        const len = rmeta[j * 32 + 1];
        const s = got.length;
        let ok = len === (s < 10 ? 1400 : 1000);
        for (let b = 0; ok && b < len; b++) ok = rdata[j * 2048 + b] === ((s * 7 + b) & 255);
        got.push(ok);
      }
    }
    execFileSync('ip', ['link', 'set', 'lo', 'mtu', '65536']);
    // Phase 2.
    execFileSync('tc', ['qdisc', 'add', 'dev', 'lo', 'root', 'tbf', 'rate', '8kbit', 'burst', '1600', 'limit', '10000000']);
    const tx = n.open(4, 0, { sndbuf: 4096 });
    for (let s = 0; s < slots; s++) fill(s, 1000);
    const first = n.sendSlots(tx.fd, -1, data, slotBytes, meta, list, slots, false, out);
    const firstOut = [...out];
    const again = n.sendSlots(tx.fd, -1, data, slotBytes, meta, list.subarray(first), slots - first, true, out);
    const againOut = [...out];
    const one = n.sendTo(tx.fd, data, 0, 1000, 4, Uint8Array.of(127, 0, 0, 1), rx.port, 0, null, 0);
    console.log(JSON.stringify({ mtuSent, mtuOut, received: got.length, intact: got.every(Boolean), first, firstOut, again, againOut, one }));
  `;
  const r = spawnSync('unshare', ['-n', process.execPath, '--input-type=module', '-e', script], { timeout: 60_000, encoding: 'utf8' });
  if (r.status !== 0) {
    if (/Operation not permitted|RTNETLINK/.test(r.stderr)) {
      t.comment(`namespace or qdisc not available, not checked: ${r.stderr.trim().split('\n')[0]}`);
      return;
    }
    t.fail(`child failed: ${r.stderr}`);
    return;
  }
  const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
    mtuSent: number; mtuOut: number[]; received: number; intact: boolean; first: number; firstOut: number[]; again: number; againOut: number[]; one: number;
  };
  t.comment(JSON.stringify(res));
  t.equal(res.mtuSent, 20, 'MTU 1280: all 20 sent');
  t.equal(res.mtuOut[SEND_OUT_STOP_ERRNO], 0);
  t.equal(res.mtuOut[SEND_OUT_GSO_MSGS], 1, 'the 1400-byte group went one by one, the 1000-byte group as GSO');
  t.equal(res.received, 20, 'all received');
  t.ok(res.intact, 'sizes and bytes intact, in order');
  t.ok(res.first > 0 && res.first < 200, `sent ${res.first} of 200 before the buffer filled`);
  t.equal(res.firstOut[SEND_OUT_STOP_INDEX], res.first);
  t.equal(res.firstOut[SEND_OUT_STOP_ERRNO], EAGAIN, 'stopped by EAGAIN');
  t.ok(res.again < 200 - res.first, 'still full');
  t.equal(res.againOut[SEND_OUT_STOP_ERRNO], EAGAIN);
  t.equal(res.one, EAGAIN, 'sendTo: -EAGAIN, never blocks');
});

// ---- sticky source -------------------------------------------------------------------------------

t.test('sticky source: replies leave from the address the peer sent to', async (t) => {
  const dev = bound(t);
  const peer = opened(t, 4);
  const peer6 = opened(t, 6);
  const recv = testRing(16, 2048);
  const send = testRing(16, 2048);
  const peerRecv = testRing(16, 2048);
  const out = new Int32Array(OUT_WORDS);

  // The peer sends to 127.0.0.2 (a local address on lo without configuration).
  t.equal(native.sendTo(peer.fd, Buffer.from('hello'), 0, 5, 4, V4_LO2, dev.port, 0), 0, 'peer sends to 127.0.0.2');
  const { got } = recvUntil(dev.fd4, dev.fd6, recv, 1);
  t.equal(got.length, 1);
  const w = got[0]!.words;
  const src = sourceFromWords(w, 0)!;
  t.same([...src.addr], [127, 0, 0, 2], 'local address from IP_PKTINFO');
  t.equal(src.ifindex, LO_IFINDEX);
  t.equal(endpointFromWords(w, 0)!.port, peer.port);

  // Reply through sendSlots with the received words (sender = destination, local = source).
  const reply = (words: Int32Array, text: string): void => {
    const list = fillSlots(send, [{ bytes: Buffer.from(text), words }]);
    t.equal(native.sendSlots(dev.fd4, dev.fd6, send.data, send.slotBytes, send.meta, list, 1, true, out), 1, `${text}: sent`);
  };
  // What the peer received next: "address:port text" (datagrams received together are queued).
  const queued: Got[] = [];
  const fromWhere = (fd4: number, fd6: number): string | undefined => {
    if (queued.length === 0) queued.push(...recvUntil(fd4, fd6, peerRecv, 1).got);
    const r = queued.shift();
    return r ? `${endpointFromWords(r.words, 0)!.address}:${endpointFromWords(r.words, 0)!.port} ${Buffer.from(r.bytes).toString()}` : undefined;
  };
  reply(w, 'sticky');
  t.equal(out[SEND_OUT_SRC_FALLBACKS], 0);
  t.equal(fromWhere(peer.fd, -1), `127.0.0.2:${dev.port} sticky`, 'sendSlots reply comes from 127.0.0.2');
  reply(endpointWords(ep('127.0.0.1', peer.port)), 'plain');
  t.equal(fromWhere(peer.fd, -1), `127.0.0.1:${dev.port} plain`, 'without source: the kernel chooses 127.0.0.1');
  // NativeBind.sendTo with the endpoint and its source.
  const sourced = endpointFromWords(w, 0)!;
  t.ok(sourced.src !== undefined && sourced.srcIfindex === LO_IFINDEX, 'the endpoint carries the source');
  t.ok(dev.sendTo(sourced, Buffer.from('handshake')));
  t.equal(fromWhere(peer.fd, -1), `127.0.0.2:${dev.port} handshake`, 'sendTo reply comes from 127.0.0.2');

  // A source that is not local (our address went away): delivered anyway, without it; words cleared.
  const gone = endpointWords(ep('127.0.0.1', peer.port), { addr: Uint8Array.of(192, 0, 2, 77), ifindex: LO_IFINDEX });
  const list = fillSlots(send, [{ bytes: Buffer.from('a'), words: gone }, { bytes: Buffer.from('b'), words: gone }]);
  t.equal(native.sendSlots(dev.fd4, dev.fd6, send.data, send.slotBytes, send.meta, list, 2, false, out), 2, 'sent despite the stale source');
  t.equal(out[SEND_OUT_SRC_FALLBACKS], 1, 'one fallback, the second slot reused the cleared words');
  t.equal(sourceFromWords(send.meta, list[0]! * META_WORDS + M_EP_FAMILY), null, 'source words cleared in the slot');
  t.equal(sourceFromWords(send.meta, list[1]! * META_WORDS + M_EP_FAMILY), null, 'and in the later slot with the same words');
  t.equal(fromWhere(peer.fd, -1), `127.0.0.1:${dev.port} a`);
  t.equal(fromWhere(peer.fd, -1), `127.0.0.1:${dev.port} b`);
  t.equal(native.sendTo(dev.fd4, Buffer.from('c'), 0, 1, 4, V4_LO, peer.port, 0, Uint8Array.of(192, 0, 2, 77), 0), 1, 'sendTo: 1 = sent without the source');
  t.equal(fromWhere(peer.fd, -1), `127.0.0.1:${dev.port} c`);
  const before = dev.stats.sourceFallbacks;
  const stale: Endpoint = { ...ep('127.0.0.1', peer.port), src: Uint8Array.of(192, 0, 2, 77), srcIfindex: 0 };
  t.equal(dev.sendTo(stale, Buffer.from('d')), Sent.WithoutSource, 'NativeBind.sendTo: sent, without the refused source');
  t.equal(dev.stats.sourceFallbacks, before + 1, 'NativeBind counts the fallback');
  t.equal(fromWhere(peer.fd, -1), `127.0.0.1:${dev.port} d`);
  t.equal(dev.sendTo(sourced, Buffer.from('e')), Sent.Yes, 'a source that is ours: Sent.Yes');
  t.equal(fromWhere(peer.fd, -1), `127.0.0.2:${dev.port} e`);

  // IPv6: ::1 as the sticky source works; a foreign one falls back.
  t.equal(native.sendTo(peer6.fd, Buffer.from('hi6'), 0, 3, 6, V6_LO, dev.port, 0), 0);
  const g6 = recvUntil(dev.fd4, dev.fd6, recv, 1).got[0]!;
  const src6 = sourceFromWords(g6.words, 0)!;
  t.same([...src6.addr], [...V6_LO], 'local address from IPV6_PKTINFO');
  t.equal(src6.ifindex, LO_IFINDEX);
  reply(g6.words, 'sticky6');
  t.equal(fromWhere(-1, peer6.fd), `::1:${dev.port} sticky6`);
  const foreign6 = endpointWords(ep('::1', peer6.port), { addr: ep('2001:db8::7', 0).bytes, ifindex: LO_IFINDEX });
  reply(foreign6, 'fallback6');
  t.equal(out[SEND_OUT_SRC_FALLBACKS], 1, 'IPv6 fallback');
  t.equal(fromWhere(-1, peer6.fd), `::1:${dev.port} fallback6`);
});

// ---- wake ----------------------------------------------------------------------------------------

t.test('the wake eventfd interrupts recvSlots', async (t) => {
  const b = bound(t);
  const efd = native.eventfd();
  t.teardown(() => { native.close(efd); });
  const recv = testRing(4, 2048);
  const out = new Int32Array(OUT_WORDS);
  const list = Int32Array.of(0, 1, 2, 3);
  t.equal(native.wake(efd), 0);
  t.equal(native.wake(efd), 0);
  let t0 = performance.now();
  t.equal(native.recvSlots(b.fd4, b.fd6, efd, 10_000, recv.data, recv.slotBytes, recv.meta, list, 4, out), 0, 'woken: 0');
  t.equal(out[RECV_OUT_WOKEN], 1);
  t.ok(performance.now() - t0 < 2000, 'at once');
  t0 = performance.now();
  t.equal(native.recvSlots(b.fd4, b.fd6, efd, 100, recv.data, recv.slotBytes, recv.meta, list, 4, out), 0, 'drained: times out');
  t.equal(out[RECV_OUT_WOKEN], 0);
  t.ok(performance.now() - t0 >= 90, 'waited for the timeout');
  t.equal(native.recvSlots(-1, -1, efd, 0, recv.data, recv.slotBytes, recv.meta, list, 4, out), 0, 'no sockets at all: fine');

  // Blocked in poll on this thread; another thread wakes it.
  const addon = fileURLToPath(new URL('../../native/build/Release/wirepool_udp.node', import.meta.url));
  createRequire(import.meta.url)(addon); // same path the worker loads
  const w = new Worker(`
    const { workerData, parentPort } = require('node:worker_threads');
    const n = require(workerData.addon);
    parentPort.postMessage('up');
    setTimeout(() => { n.wake(workerData.efd); }, 300);
  `, { eval: true, workerData: { addon, efd } });
  t.teardown(() => w.terminate());
  await once(w, 'message');
  t0 = performance.now();
  const got = native.recvSlots(b.fd4, b.fd6, efd, 20_000, recv.data, recv.slotBytes, recv.meta, list, 4, out);
  const took = performance.now() - t0;
  t.equal(got, 0);
  t.equal(out[RECV_OUT_WOKEN], 1, 'woken by the other thread');
  t.ok(took < 10_000, `returned after ${Math.round(took)} ms`);
});

t.test('recvSlots in a worker thread (its own receive buffers)', async (t) => {
  const b = bound(t);
  const peer = opened(t, 4);
  const addon = fileURLToPath(new URL('../../native/build/Release/wirepool_udp.node', import.meta.url));
  const w = new Worker(`
    const { workerData, parentPort } = require('node:worker_threads');
    const n = require(workerData.addon);
    const data = new Uint8Array(4 * 2048), meta = new Int32Array(4 * 32), out = new Int32Array(8);
    parentPort.postMessage('ready');
    const got = n.recvSlots(workerData.fd4, workerData.fd6, -1, 10000, data, 2048, meta, Int32Array.of(2), 1, out);
    parentPort.postMessage({ got, len: meta[2 * 32 + 1], text: Buffer.from(data.subarray(2 * 2048, 2 * 2048 + meta[2 * 32 + 1])).toString(), port: meta[2 * 32 + 17] });
  `, { eval: true, workerData: { addon, fd4: b.fd4, fd6: b.fd6 } });
  t.teardown(() => w.terminate());
  await once(w, 'message');
  const reply = once(w, 'message');
  t.equal(native.sendTo(peer.fd, Buffer.from('to the worker'), 0, 13, 4, V4_LO, b.port, 0), 0);
  const [res] = await reply as [{ got: number; len: number; text: string; port: number }];
  t.same(res, { got: 1, len: 13, text: 'to the worker', port: peer.port });
});
