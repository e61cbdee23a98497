// Tests for src/dataplane (layout, keytable, ring, pipeline) and workers/*: packets go through the
// real rings, the real TUN reader and writer threads (on a MemTun socketpair), the real UDP reader
// thread (on loopback), real crypto worker threads and the real sealTransport/openTransport, wired
// as the Device wires them (helpers/pipeline-rig.ts); every sealed message is checked against an
// independent AEAD (@noble/ciphers) and sent back through the receive ring over UDP. One test runs
// the TUN threads on named pipes instead. Threads synchronise through the pipeline's doorbells and
// Atomics; every wait is bounded by a timeout.

import t, { type Test } from 'tap';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import dgram from 'node:dgram';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { endpointWords } from '../src/io/endpoint-words.js';
import { endpointFromAddress } from '../src/protocol/endpoint.js';
import { KeyTable } from '../src/dataplane/keytable.js';
import {
  CTL_WORKER_BELL, CTL_WORKER_SLEEPERS, CW_OPENED, CW_SEALED, CW_SEND_FALLBACKS, CW_SENT, Drop, MAX_WORKERS, R_PACKETS, STAT_MAIN,
  STAT_READER, STAT_UDP_READER, STAT_WRITER, R_FULL_WAITS, U_FULL_WAITS, U_INLINE_OPENED, U_TOO_BIG, W_PACKETS, MAIN_FLUSHED, MAIN_INLINE_SEALED, MAIN_WORKER_NOTIFIES,
  MAIN_WORKER_RESTARTS, M_EP_FAMILY, slotBytesFor, statDrop, statWorker,
} from '../src/dataplane/layout.js';
import {
  Pipeline, type PipelineHooks, RING_LOCAL, RING_RECV, RING_TUN, type SlotMeta, SlotState,
} from '../src/dataplane/pipeline.js';
import { MemTun } from './helpers/memtun.js';
import { PipelineRig, type RigOptions } from './helpers/pipeline-rig.js';

const WAIT_MS = 20_000;
// Every test starts real worker threads; under tap's --import hook each one takes ~1.5 s to load
// (50 ms under plain node), which puts the file past tap's default 30 s.
t.setTimeout(240_000);

// ---- helpers ------------------------------------------------------------------------------------

const roundup16 = (n: number): number => (n + 15) & ~15;
function nonce(lo: number, hi: number): Uint8Array {
  const n = new Uint8Array(12);
  const dv = new DataView(n.buffer);
  dv.setUint32(4, lo, true);
  dv.setUint32(8, hi, true);
  return n;
}
const splitCounter = (c: number): [number, number] => [c % 2 ** 32, Math.floor(c / 2 ** 32)];

/** Deterministic test packet i: length in 1..maxLen (a TUN never yields an empty packet), bytes a function of i. */
function packet(i: number, maxLen = 1420): Uint8Array {
  const len = 1 + ((i * 7919) % maxLen);
  const p = new Uint8Array(len);
  for (let j = 0; j < len; j++) p[j] = (i * 31 + j * 7 + (j >> 8)) & 0xff;
  p[0] = 0x45;
  if (len >= 4) new DataView(p.buffer).setUint32(len >= 8 ? 4 : 0, i, true);
  return p;
}

function writeHeader(data: Uint8Array, receiver: number, lo: number, hi: number): void {
  const dv = new DataView(data.buffer, data.byteOffset, 16);
  dv.setUint32(0, 4, true);
  dv.setUint32(4, receiver, true);
  dv.setUint32(8, lo, true);
  dv.setUint32(12, hi, true);
}

interface Peer {
  sendKp: number; // keypair id whose send key seals our packets
  recvKp: number; // keypair id whose receive key opens them (the same key: a loopback peer)
  key: Uint8Array;
  counter: number;
}

interface SealedRecord {
  seq: number;
  ring: number;
  peer: number;
  counterLo: number;
  counterHi: number;
  ok: boolean;
  state: number;
  msg: Uint8Array;
  /** A crypto worker wrote it to meta.sendFd itself. */
  sent: boolean;
}

/** Receiver index of peer i's messages; the UDP reader maps it to the peer's receive keypair. */
const receiverOf = (peer: number): number => 0x1000 + peer;

/**
 * A pipeline rig with hooks that implement a miniature WireGuard sender: TUN ring packet seq i goes
 * to peer i % peers with that peer's next counter, padded to 16; received messages are delivered
 * with the inner length the test expects for their RECV-ring seq.
 */
class Harness {
  readonly sealed: SealedRecord[] = [];
  readonly opened: { seq: number; ok: boolean; plain: number; state: number }[] = [];
  /** RECV-ring seqs main classified (datagrams the UDP reader could not key). */
  readonly classified: number[] = [];
  /** RECV-ring seqs handed to TUN, in order: the k-th packet the OS receives is deliverSeqs[k]'s. */
  readonly deliverSeqs: number[] = [];
  readonly workerErrors: { id: number; err: unknown }[] = [];
  readonly hookErrors: { stage: string; err: unknown }[] = [];
  readonly restarted: number[] = [];
  readonly peers: Peer[] = [];
  /** Inner packets written into the TUN device, in order. */
  readonly injected: Uint8Array[] = [];
  /** Expected inner packet per recv-ring seq (what the OS must receive). */
  readonly expectRecv: Uint8Array[] = [];
  routed = 0;
  tunGone = 0;
  routeHook: ((slot: number, data: Uint8Array, len: number, meta: SlotMeta) => boolean | undefined) | null = null;
  sealedHook: ((rec: SealedRecord) => boolean | void) | null = null;
  openedHook: ((slot: number, data: Uint8Array, plain: number, ok: boolean, meta: SlotMeta) => number | undefined) | null = null;
  rig!: PipelineRig;

  get p(): Pipeline {
    return this.rig.p;
  }

  static async start(opts: RigOptions, peers = 3, counterStart?: number[]): Promise<Harness> {
    const h = new Harness();
    h.rig = await PipelineRig.start({ startTimeoutMs: 60_000, ...opts }, h.hooks()); // threads load slowly under tap on a busy host
    for (let i = 0; i < peers; i++) {
      const key = new Uint8Array(randomBytes(32));
      const sendKp = h.p.keys.allocate();
      const recvKp = h.p.keys.allocate();
      h.p.keys.setKeys(sendKp, key, new Uint8Array(randomBytes(32))); // other half must not be used
      h.p.keys.setKeys(recvKp, new Uint8Array(randomBytes(32)), key);
      h.rig.indexMap.set(receiverOf(i), recvKp);
      h.peers.push({ sendKp, recvKp, key, counter: counterStart?.[i] ?? 0 });
    }
    return h;
  }

  until(cond: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
    return this.rig.until(cond, what, ms);
  }

  /** Packets the OS received from the interface so far, with the RECV-ring seq of each. */
  get delivered(): { seq: number; bytes: Uint8Array }[] {
    return this.rig.memtun!.received.map((bytes, k) => ({ seq: this.deliverSeqs[k]!, bytes }));
  }

  get deliveredCount(): number {
    return this.rig.memtun!.received.length;
  }

  /** RECV-ring slots the check stage has seen (opened or classified). */
  readonly checked = (): number => this.opened.length + this.classified.length;

  hooks(): PipelineHooks {
    return {
      route: (slot, data, len, meta) => {
        this.routed++;
        if (this.routeHook) {
          const r = this.routeHook(slot, data, len, meta);
          if (r !== undefined) return r;
        }
        const peerId = meta.seq % this.peers.length;
        const peer = this.peers[peerId]!;
        const padded = roundup16(len);
        data.fill(0, 16 + len, 16 + padded);
        const [lo, hi] = splitCounter(peer.counter++);
        writeHeader(data, receiverOf(peerId), lo, hi);
        meta.setSeal(padded, peer.sendKp, lo, hi, peerId);
        return true;
      },
      onSealed: (_slot, data, msgLen, ok, meta, sent) => {
        const rec: SealedRecord = {
          seq: meta.seq, ring: meta.ring, peer: meta.peerId, counterLo: meta.counterLo, counterHi: meta.counterHi,
          ok, state: meta.state, msg: data.slice(0, msgLen), sent,
        };
        this.sealed.push(rec);
        return this.sealedHook?.(rec);
      },
      classify: (_slot, _data, _len, meta) => {
        this.classified.push(meta.seq);
        return false;
      },
      onOpened: (slot, data, plain, ok, meta) => {
        this.opened.push({ seq: meta.seq, ok, plain, state: meta.state });
        let n = ok ? plain : -1;
        const r = this.openedHook?.(slot, data, plain, ok, meta);
        if (r !== undefined) n = r;
        else if (ok) n = this.expectRecv[meta.seq]?.length ?? plain;
        if (n === 0) n = -1; // a keepalive: nothing for TUN (receive.ts)
        if (ok && n >= 0) this.deliverSeqs.push(meta.seq);
        return n;
      },
      onTunGone: () => {
        this.tunGone++;
      },
      onWorkerError: (id, err) => {
        this.workerErrors.push({ id, err });
      },
      onWorkerRestarted: (id) => {
        this.restarted.push(id);
      },
      onHookError: (stage, err) => {
        this.hookErrors.push({ stage, err });
      },
    };
  }

  /** The OS writes packets into the interface (the TUN reader thread, or main at idle, reads them). */
  async inject(pkts: Uint8Array[]): Promise<void> {
    this.injected.push(...pkts);
    await this.rig.memtun!.writeAll(pkts);
  }

  /** The network sends sealed messages to the pipeline's socket, in order; each is expected to open to inner[k]. */
  async receive(recs: SealedRecord[], inner: Uint8Array[]): Promise<void> {
    await this.receiveRaw(recs.map((r) => r.msg), inner);
  }

  /** Datagrams in order, expected to open to inner[k] (undefined: whatever they open to). */
  async receiveRaw(msgs: Uint8Array[], inner: (Uint8Array | undefined)[] = []): Promise<void> {
    const seq0 = this.expectRecv.length;
    for (let k = 0; k < msgs.length; k++) this.expectRecv[seq0 + k] = inner[k]!;
    await this.rig.sendAll(msgs, this.checked);
  }

  sum(col: number): number {
    let n = 0;
    for (let id = 0; id < MAX_WORKERS; id++) n += this.p.stats[statWorker(id) + col]!;
    return n;
  }
}

/** Independent check of a sealed transport message: header fields and noble AEAD open. */
function checkMessage(msg: Uint8Array, key: Uint8Array, receiver: number, lo: number, hi: number, inner: Uint8Array): string | null {
  const dv = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
  if (msg.length !== 32 + roundup16(inner.length)) return `length ${msg.length} for inner ${inner.length}`;
  if (dv.getUint32(0, true) !== 4 || dv.getUint32(4, true) !== receiver) return 'bad header';
  if (dv.getUint32(8, true) !== lo || dv.getUint32(12, true) !== hi) return 'bad counter in header';
  let plain: Uint8Array;
  try {
    plain = chacha20poly1305(key, nonce(lo, hi)).decrypt(msg.subarray(16));
  } catch {
    return 'noble failed to open the message';
  }
  if (plain.length !== roundup16(inner.length)) return 'bad plaintext length';
  for (let j = 0; j < inner.length; j++) if (plain[j] !== inner[j]) return `plaintext differs at ${j}`;
  for (let j = inner.length; j < plain.length; j++) if (plain[j] !== 0) return 'padding not zero';
  return null;
}

/** Seal with noble (independent of the workers) for receive-ring tests. */
function nobleSeal(key: Uint8Array, receiver: number, counter: number, inner: Uint8Array): Uint8Array {
  const padded = new Uint8Array(roundup16(inner.length));
  padded.set(inner);
  const [lo, hi] = splitCounter(counter);
  const ct = chacha20poly1305(key, nonce(lo, hi)).encrypt(padded);
  const msg = new Uint8Array(16 + ct.length);
  writeHeader(msg, receiver, lo, hi);
  msg.set(ct, 16);
  return msg;
}

// ---- KeyTable -----------------------------------------------------------------------------------

t.test('KeyTable: FIFO ids, keys in place, zeroed on free, shared with an attached view', async (t) => {
  const kt = KeyTable.create(4);
  t.same([kt.allocate(), kt.allocate(), kt.allocate()], [0, 1, 2]);
  const s = new Uint8Array(32).fill(7);
  const r = new Uint8Array(32).fill(9);
  kt.setKeys(1, s, r);
  const att = KeyTable.attach(kt.buffer);
  t.same(att.sendKey(1), s, 'attached table sees send key');
  t.same(att.recvKey(1), r, 'attached table sees receive key');
  t.equal(att.sendKey(1), att.sendKey(1), 'views are cached');
  kt.free(1);
  t.same(att.sendKey(1), new Uint8Array(32), 'free zero-fills');
  t.same(att.recvKey(1), new Uint8Array(32));
  t.throws(() => kt.free(1), /not allocated/, 'double free');
  t.equal(kt.allocate(), 3, 'FIFO: the never-used id comes before the freed one');
  t.equal(kt.allocate(), 1);
  t.equal(kt.allocate(), -1, 'exhausted');
  t.equal(kt.used, 4);
  t.throws(() => kt.setKeys(4, s, r), RangeError);
  t.throws(() => att.allocate(), /attached/);
  kt.setKeys(0, new Uint8Array(32).fill(0xab), new Uint8Array(32).fill(0xab));
  t.notMatch(inspect(kt, { depth: 5 }), /171|abab/, 'inspect shows no key bytes (171 = 0xab)');
  t.notMatch(String(kt), /171|abab/, 'toString shows no key bytes');
});

t.test('layout: slot size holds header + padded jumbo payload + tag, cache-line aligned', async (t) => {
  t.equal(slotBytesFor(9216), 9280);
  t.equal(slotBytesFor(1420) % 64, 0);
  t.ok(slotBytesFor(1420) >= 16 + roundup16(1420) + 16);
  t.ok(slotBytesFor(1) >= 48);
});

// ---- end-to-end through the rings ---------------------------------------------------------------

for (const workers of [1, 2]) {
  t.test(`${workers} worker(s): 10000 packets sealed in order, opened back through the receive ring`, async (t) => {
    // Peer 2 starts 5 below 2^32 so its counters cross into the high word.
    const h = await Harness.start({ workers, ringSlots: 256 }, 3, [0, 1000, 2 ** 32 - 5]);
    t.teardown(() => h.rig.close());
    const N = 10_000;
    const pkts = Array.from({ length: N }, (_, i) => packet(i));
    await h.inject(pkts);
    await h.until(() => h.sealed.length === N, 'all sealed');

    // Order and counters: ring order, per-peer counters consecutive, every message verifies with noble.
    const counters = [0, 1000, 2 ** 32 - 5];
    let bad = 0;
    for (let i = 0; i < N; i++) {
      const rec = h.sealed[i]!;
      const peer = i % 3;
      if (rec.seq !== i || rec.ring !== RING_TUN || !rec.ok || rec.peer !== peer || rec.state !== SlotState.DONE) { bad++; continue; }
      const [lo, hi] = splitCounter(counters[peer]!++);
      if (rec.counterLo !== lo || rec.counterHi !== hi) { bad++; continue; }
      const err = checkMessage(rec.msg, h.peers[peer]!.key, 0x1000 + peer, lo, hi, pkts[i]!);
      if (err !== null) {
        bad++;
        if (bad < 5) t.fail(`packet ${i}: ${err}`);
      }
    }
    t.equal(bad, 0, 'every sealed message in order, with its counter, verifying with an independent AEAD');
    t.equal(h.sum(CW_SEALED) + h.p.stats[STAT_MAIN + MAIN_INLINE_SEALED]!, N, 'sealed by the workers, or by main (a lone packet while they sleep)');

    // Keepalives through the LOCAL ring: 32-byte messages that open to nothing.
    for (let k = 0; k < 3; k++) {
      const s = h.p.reserveLocal();
      t.ok(s >= 0);
      const peer = h.peers[k]!;
      const [lo, hi] = splitCounter(peer.counter++);
      writeHeader(h.p.localData(s), 0x1000 + k, lo, hi);
      t.equal(h.p.publishLocal(s, 0, peer.sendKp, k, lo, hi), true);
    }
    await h.until(() => h.sealed.length === N + 3, 'keepalives sealed');
    const ka = h.sealed.slice(N);
    t.same(ka.map((r) => [r.ring, r.ok, r.msg.length, r.peer]), [[RING_LOCAL, true, 32, 0], [RING_LOCAL, true, 32, 1], [RING_LOCAL, true, 32, 2]]);
    for (const r of ka) t.equal(checkMessage(r.msg, h.peers[r.peer]!.key, 0x1000 + r.peer, r.counterLo, r.counterHi, new Uint8Array(0)), null);

    // Receive direction: the same messages decrypt back, delivered in order with the inner length.
    await h.receive(h.sealed.slice(0, N), pkts);
    await h.until(() => h.deliveredCount === N, 'all delivered');
    let badRecv = 0;
    for (let i = 0; i < N; i++) {
      const d = h.delivered[i]!;
      const o = h.opened[i]!;
      if (d.seq !== i || !o.ok || o.plain !== roundup16(pkts[i]!.length) || Buffer.compare(d.bytes, pkts[i]!) !== 0) badRecv++;
    }
    t.equal(badRecv, 0, 'every packet delivered in order, byte-identical, padding trimmed');
    t.equal(h.sum(CW_OPENED) + h.p.stats[STAT_UDP_READER + U_INLINE_OPENED]!, N, 'opened by the workers, or by the UDP reader (small batches)');
    for (const ring of [RING_TUN, RING_LOCAL, RING_RECV]) {
      for (const d of [Drop.DEAD, Drop.CRYPTO_FAILED, Drop.SKIPPED, Drop.REJECTED, Drop.HOOK_ERROR, Drop.BAD_LENGTH]) {
        t.equal(h.p.stats[statDrop(ring, d)], 0, `no drop ${d} on ring ${ring}`);
      }
    }
    t.same(h.workerErrors, []);
    t.equal(h.p.inFlight(RING_TUN), 0);
    // Everything was delivered; what may still sit in the receive ring are the last few packets if
    // main wrote them to TUN itself (a small batch while the writer was idle): the writer frees such
    // slots with its next batch, and is not woken for fewer than a quarter of the ring (pipeline.ts
    // checkStage), so they can stay counted until then.
    t.ok(h.p.inFlight(RING_RECV) < 256 / 4, `nothing left in the receive ring but slots main wrote itself (${h.p.inFlight(RING_RECV)})`);
  });
}

t.test('receive ring: corrupted, wrongly keyed, unkeyed and rejected messages come back ok=false / classified / dropped', async (t) => {
  const h = await Harness.start({ workers: 2, ringSlots: 64 }, 1);
  t.teardown(() => h.rig.close());
  const key = h.peers[0]!.key;
  const inner = packet(77);
  const good = nobleSeal(key, receiverOf(0), 5, inner);
  const withHeader = (m: Uint8Array, receiver: number, ctr: number): Uint8Array => {
    const c = m.slice();
    writeHeader(c, receiver, ctr, 0);
    return c;
  };
  h.rig.indexMap.set(0x2000, h.peers[0]!.sendKp);
  h.rig.indexMap.set(0x3000, h.p.keys.capacity);
  const flipCt = good.slice(); flipCt[20]! ^= 1;
  const flipTag = good.slice(); flipTag[flipTag.length - 1]! ^= 0x80;
  const cases: { name: string; msg: Uint8Array; ok: boolean }[] = [
    { name: 'intact', msg: good, ok: true },
    { name: 'ciphertext bit flipped', msg: flipCt, ok: false },
    { name: 'tag bit flipped', msg: flipTag, ok: false },
    { name: 'wrong counter (nonce)', msg: withHeader(good, receiverOf(0), 6), ok: false },
    { name: 'send half of the keypair', msg: withHeader(good, 0x2000, 5), ok: false },
    { name: 'keypair id out of range', msg: withHeader(good, 0x3000, 5), ok: false },
    { name: 'keepalive (32 bytes)', msg: nobleSeal(key, receiverOf(0), 9, new Uint8Array(0)), ok: true },
  ];
  // Not keyed by the UDP reader, so main classifies them (seq 7 and 8): too short to be a transport
  // message, and an unknown receiver index. Between them one larger than a slot: the reader drops it.
  const short = good.slice(0, 31);
  const huge = new Uint8Array(h.p.slotBytes + 1);
  huge[0] = 4;
  const unknown = withHeader(good, 0x4000, 5);
  await h.receiveRaw([...cases.map((c) => c.msg), short, huge, unknown], [inner]);
  await h.until(() => h.opened.length === cases.length && h.classified.length === 2, 'every datagram checked');
  t.same(h.opened.map((o) => o.ok), cases.map((c) => c.ok), cases.map((c) => c.name).join(', '));
  t.same(h.opened.filter((o) => !o.ok).map((o) => o.state), [1, 2, 3, 4, 5].map(() => SlotState.FAILED));
  t.equal(h.p.stats[statDrop(RING_RECV, Drop.CRYPTO_FAILED)], 5);
  t.same(h.classified, [7, 8], 'the short datagram and the unknown index went to classify, in ring order');
  t.equal(h.p.stats[STAT_UDP_READER + U_TOO_BIG], 1, 'the datagram larger than a slot was counted and dropped by the reader');
  await h.until(() => h.deliveredCount === 1, 'the intact packet delivered');
  t.same(h.delivered.map((d) => d.seq), [0], 'only the intact packet reached TUN (a keepalive has nothing for it)');
  t.same(h.delivered[0]!.bytes, inner);
  t.equal(h.p.stats[statDrop(RING_RECV, Drop.REJECTED)], 1, 'the keepalive: authentic, nothing to write');

  // onOpened returning -1 for an authentic packet drops it (REJECTED), a shorter length truncates.
  h.openedHook = (_s, _d, _p, ok, meta) => (ok && meta.seq === 9 ? -1 : ok && meta.seq === 10 ? 3 : undefined);
  await h.receiveRaw([10, 11].map((ctr) => nobleSeal(key, receiverOf(0), ctr, inner)));
  await h.until(() => h.deliveredCount === 2, 'truncated delivery');
  t.equal(h.p.stats[statDrop(RING_RECV, Drop.REJECTED)], 2);
  t.same(h.delivered[1]!.bytes, inner.subarray(0, 3));
});

t.test('rings full: the TUN and UDP readers wait for free slots (the device and the socket buffer hold the rest), nothing lost', async (t) => {
  const h = await Harness.start({ workers: 1, ringSlots: 8 }, 1);
  t.teardown(() => h.rig.close());
  // The TUN ring: the first packet's slot is held after it is sent, so nothing is released and the
  // ring fills; the reader has to wait.
  let held = -1;
  h.sealedHook = (rec) => {
    if (rec.seq !== 0) return false;
    held = rec.seq & 7;
    return true;
  };
  const pkts = Array.from({ length: 200 }, (_, i) => packet(i, 1400));
  const injecting = h.inject(pkts);
  await h.until(() => h.routed === 8 && h.sealed.length === 1, 'the TUN ring full, its first slot held');
  t.equal(h.p.inFlight(RING_TUN), 8, 'every slot in flight');
  h.p.releaseHeld(RING_TUN, held);
  await injecting;
  await h.until(() => h.sealed.length === 200, 'all sealed');
  t.same(h.sealed.map((r) => r.seq), pkts.map((_, i) => i), 'every packet sealed once, in order');
  t.ok(h.sealed.every((r, i) => r.ok && checkMessage(r.msg, h.peers[0]!.key, receiverOf(0), i, 0, pkts[i]!) === null), 'each verifies');

  // The RECV ring: the burst arrives faster than 8 slots are checked and written.
  await h.receive(h.sealed, pkts);
  await h.until(() => h.deliveredCount === 200, 'all delivered');
  t.same(h.delivered.map((d) => d.seq), pkts.map((_, i) => i), 'every message delivered once, in order');
  t.ok(h.delivered.every((d, i) => Buffer.compare(d.bytes, pkts[i]!) === 0), 'byte-identical');
  t.comment(`readers waited for free slots: TUN ${h.p.stats[STAT_READER + R_FULL_WAITS]}, UDP ${h.p.stats[STAT_UDP_READER + U_FULL_WAITS]} times`);
});

t.test('onSealed may hold a slot: release stops there until releaseHeld()', async (t) => {
  const h = await Harness.start({ workers: 2, ringSlots: 64 }, 2);
  t.teardown(() => h.rig.close());
  let heldSlot = -1;
  let countAtRelease = -1;
  h.sealedHook = (rec) => {
    if (rec.seq !== 3) return false;
    heldSlot = rec.seq & 63;
    // Release from a later macrotask, after main drained and re-armed at least once.
    setImmediate(() => setImmediate(() => {
      countAtRelease = h.sealed.length;
      h.p.releaseHeld(RING_TUN, heldSlot);
    }));
    return true;
  };
  await h.inject(Array.from({ length: 20 }, (_, i) => packet(i)));
  await h.until(() => h.sealed.length === 20, 'all released');
  t.equal(countAtRelease, 4, 'nothing after the held slot was released while it was held');
  t.same(h.sealed.map((r) => r.seq), Array.from({ length: 20 }, (_, i) => i));
  t.throws(() => h.p.releaseHeld(RING_TUN, heldSlot), /not held/);
});

t.test('route() declining (SKIP) and throwing: slots released without onSealed, order kept', async (t) => {
  const h = await Harness.start({ workers: 1, ringSlots: 16 }, 1);
  t.teardown(() => h.rig.close());
  h.routeHook = (_s, _d, _l, meta) => {
    if (meta.seq % 5 === 1) return false;
    if (meta.seq === 7) throw new Error('route bug');
    return undefined;
  };
  await h.inject(Array.from({ length: 40 }, (_, i) => packet(i)));
  const want = Array.from({ length: 40 }, (_, i) => i).filter((i) => i % 5 !== 1 && i !== 7);
  await h.until(() => h.sealed.length === want.length, 'sealed');
  // All 40 slots were released (skipped ones too): the ring is empty again.
  await h.until(() => h.p.inFlight(RING_TUN) === 0, 'ring empty');
  t.same(h.sealed.map((r) => r.seq), want);
  t.equal(h.p.stats[statDrop(RING_TUN, Drop.SKIPPED)], 9);
  t.equal(h.p.stats[statDrop(RING_TUN, Drop.HOOK_ERROR)], 1);
  t.equal(h.hookErrors.length, 1);
  t.equal(h.hookErrors[0]!.stage, 'route');
});

t.test('retireKeys: keys stay until slots published before it are consumed, then zeroed and freed', async (t) => {
  const h = await Harness.start({ workers: 1, ringSlots: 16, keypairCapacity: 8 }, 1);
  t.teardown(() => h.rig.close());
  const kp = h.peers[0]!.recvKp;
  const used = h.p.keys.used;
  let publishedAtRetire = 0;
  let usedAtRetire = -1;
  // Retired from the check stage of the first message, as the Device retires a keypair: that slot,
  // and any the UDP reader published with it, are still in the ring.
  h.openedHook = (_s, _d, _p, _ok, meta) => {
    if (meta.seq === 0) {
      publishedAtRetire = h.p.inFlight(RING_RECV);
      h.rig.indexMap.delete(receiverOf(0));
      h.p.retireKeys(kp);
      usedAtRetire = h.p.keys.used;
    }
    return undefined;
  };
  const N = 8;
  const pkts = Array.from({ length: N }, (_, i) => packet(i));
  await h.receiveRaw(pkts.map((p, i) => nobleSeal(h.peers[0]!.key, receiverOf(0), i, p)), pkts);
  await h.until(() => h.checked() === N, 'every datagram checked');
  t.equal(usedAtRetire, used, 'not freed while slots published before it are in flight');
  t.ok(publishedAtRetire >= 1);
  t.same(h.opened.slice(0, publishedAtRetire).map((o) => o.ok), Array(publishedAtRetire).fill(true),
    `the ${publishedAtRetire} published before the retirement were opened with the retired keys`);
  await h.until(() => h.p.keys.used === used - 1, 'id freed');
  t.same(KeyTable.attach(h.p.keys.buffer).recvKey(kp), new Uint8Array(32), 'zeroed');
  h.p.retireKeys(h.peers[0]!.sendKp);
  t.equal(h.p.keys.used, used - 2, 'nothing in flight: freed at once');
});

// A crypto module that wraps the real transport and parks the worker that gets a packet whose first
// byte is 0xEE until gate[1] is set (or it is terminated): it reports its id in gate[0].
function gatedCryptoModule(): string {
  const real = new URL('../src/crypto/transport.js', import.meta.url).href;
  const src = `
    import * as real from ${JSON.stringify(real)};
    let gate = null; let wid = -1;
    export function init(buf, id) { gate = new Int32Array(buf); wid = id; }
    export function sealTransport(key, lo, hi, buf, off, len) {
      if (len > 0 && buf[off] === 0xee) { Atomics.store(gate, 0, wid + 1); Atomics.notify(gate, 0); Atomics.wait(gate, 1, 0, 60000); }
      return real.sealTransport(key, lo, hi, buf, off, len);
    }
    export const openTransport = real.openTransport;`;
  return 'data:text/javascript,' + encodeURIComponent(src);
}

for (const workers of [1, 2]) {
  t.test(`${workers} worker(s): a crypto worker killed mid-batch is replaced; its claimed slots are DEAD, the rest flows`, async (t) => {
    const gateBuf = new SharedArrayBuffer(8);
    const gate = new Int32Array(gateBuf);
    const h = await Harness.start({ workers, ringSlots: 64, cryptoModule: gatedCryptoModule(), cryptoModuleData: gateBuf }, 2);
    t.teardown(() => h.rig.close());
    const pkts = Array.from({ length: 100 }, (_, i) => packet(i, 1400));
    pkts[50] = new Uint8Array(64).fill(0xee);
    const injecting = h.inject(pkts);
    const r = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number, ms: number): { async: boolean; value: Promise<string> | string } }).waitAsync(gate, 0, 0, WAIT_MS);
    const how = r.async ? await r.value : r.value;
    t.not(how, 'timed-out', 'a worker took the poisoned packet');
    const victim = Atomics.load(gate, 0) - 1;
    const old = h.p.cryptoWorker(victim)!;
    await old.terminate();
    await injecting;
    await h.until(() => h.sealed.length === 100, 'all 100 released');
    t.same(h.sealed.map((r) => r.seq), pkts.map((_, i) => i), 'order kept across the replacement');
    // The victim dies holding its whole claimed batch (≤ 32 slots): those, and only those, are DEAD.
    const bad = h.sealed.filter((r) => !r.ok);
    t.ok(bad.some((r) => r.seq === 50), 'the poisoned slot is among the lost');
    t.ok(bad.every((r) => r.state === SlotState.DEAD), 'every lost slot is DEAD (its worker died), none FAILED');
    t.ok(bad.length >= 1 && bad.length <= 32, `at most one batch lost (${bad.length})`);
    t.equal(h.p.stats[statDrop(RING_TUN, Drop.DEAD)], bad.length, 'each counted as a DEAD drop');
    t.ok(h.workerErrors.some((e) => e.id === victim), 'onWorkerError reported the victim');
    t.equal(h.p.stats[STAT_MAIN + MAIN_WORKER_RESTARTS], 1);
    await h.until(() => h.restarted.length === 1, 'replacement attached');
    t.same(h.restarted, [victim]);
    t.not(h.p.cryptoWorker(victim), old);
    // Later packets flow, also through the receive ring (with one worker only the replacement works).
    const more = Array.from({ length: 100 }, (_, i) => packet(1000 + i));
    await h.inject(more);
    await h.until(() => h.sealed.length === 200, 'later packets sealed');
    t.ok(h.sealed.slice(100).every((r) => r.ok), 'all later packets sealed ok');
    await h.receive(h.sealed.slice(100), more);
    await h.until(() => h.deliveredCount === 100, 'later packets opened');
    t.ok(h.delivered.every((d, i) => Buffer.compare(d.bytes, more[i]!) === 0));
  });
}

/** Crypto module whose seal takes a pseudo-random 0–300 µs extra, so two workers finish out of order. */
function jitterCryptoModule(): string {
  const real = new URL('../src/crypto/transport.js', import.meta.url).href;
  const src = `
    import * as real from ${JSON.stringify(real)};
    export function sealTransport(key, lo, hi, buf, off, len) {
      const until = performance.now() + ((lo * 2654435761) >>> 0) % 300 / 1000;
      while (performance.now() < until) { /* spin */ }
      return real.sealTransport(key, lo, hi, buf, off, len);
    }
    export const openTransport = real.openTransport;`;
  return 'data:text/javascript,' + encodeURIComponent(src);
}

/** The OS file descriptor of a dgram socket (through dgram's internal state; -1 if that changed). */
function socketFd(s: dgram.Socket): number {
  const key = Object.getOwnPropertySymbols(s).find((k) => k.description === 'state symbol');
  const state = key === undefined ? undefined : (s as unknown as Record<symbol, { handle?: { fd?: unknown } } | undefined>)[key];
  const fd = state?.handle?.fd;
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : -1;
}

/** A receiving UDP socket and a sending socket connected to it (its fd for workers), closed at teardown. */
async function udpPair(t: Test): Promise<{ got: Buffer[]; fd: number; onRx: (() => void)[]; words: Int32Array }> {
  const rx = dgram.createSocket('udp4');
  const got: Buffer[] = [];
  const onRx: (() => void)[] = [];
  rx.on('message', (m) => { got.push(m); for (const f of onRx) f(); });
  await new Promise<void>((r) => rx.bind(0, '127.0.0.1', () => r()));
  const tx = dgram.createSocket('udp4');
  await new Promise<void>((r) => tx.bind(0, '127.0.0.1', () => r()));
  await new Promise<void>((r) => tx.connect(rx.address().port, '127.0.0.1', () => r()));
  t.teardown(() => { rx.close(); tx.close(); });
  const fd = socketFd(tx);
  t.ok(fd >= 0, 'socketFd reads the connected socket\'s fd');
  return { got, fd, onRx, words: endpointWords(endpointFromAddress('127.0.0.1', rx.address().port)!) };
}

/** Polls a condition on shared memory that no hook reports (another thread's state word), bounded. */
async function untilShared(cond: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

t.test('a lone packet: main seals it while every worker sleeps; while one is awake it is left to that worker, without a wake-up', async (t) => {
  const h = await Harness.start({ workers: 1 }, 1); // the native crypto module: main may seal inline
  t.teardown(() => h.rig.close());
  const ctl = (h.p as unknown as { ctl: Int32Array }).ctl; // the shared control words, as every thread sees them
  const stat = (col: number): number => h.p.stats[STAT_MAIN + col]!;
  await untilShared(() => Atomics.load(ctl, CTL_WORKER_SLEEPERS) === 1, 'the worker asleep');

  await h.inject([packet(0, 100)]);
  await h.until(() => h.sealed.length === 1, 'the first packet sealed');
  t.equal(stat(MAIN_INLINE_SEALED), 1, 'every worker asleep: main sealed it itself');
  t.equal(h.sum(CW_SEALED), 0, 'the worker sealed nothing');

  // The worker's bit cleared: to main it is awake (a worker between its last batch and its sleep).
  Atomics.and(ctl, CTL_WORKER_SLEEPERS, ~1);
  const notifies = stat(MAIN_WORKER_NOTIFIES);
  await h.inject([packet(1, 100)]);
  await h.until(() => h.routed === 2, 'the second packet routed');
  h.p.drain();
  t.equal(stat(MAIN_INLINE_SEALED), 1, 'not sealed by main');
  t.equal(stat(MAIN_WORKER_NOTIFIES), notifies, 'no worker was notified');
  t.equal(h.sealed.length, 1, 'published and waiting for the worker');
  // What the awake worker does before it sleeps: set its bit, re-check every ring. Waking it does both.
  Atomics.or(ctl, CTL_WORKER_SLEEPERS, 1);
  Atomics.add(ctl, CTL_WORKER_BELL, 1);
  Atomics.notify(ctl, CTL_WORKER_BELL);
  await h.until(() => h.sealed.length === 2, 'the second packet sealed');
  t.equal(h.sum(CW_SEALED), 1, 'the worker sealed it');
  t.same(h.sealed.map((r) => [r.counterLo, r.ok]), [[0, true], [1, true]], 'both, in order');
  t.equal(checkMessage(h.sealed[1]!.msg, h.peers[0]!.key, 0x1000, 1, 0, h.injected[1]!), null, 'the worker\'s seal checks out');
});

t.test('worker sends only while the TUN ring is shallow (workerSendDepth); deeper packets go through main, in order', async (t) => {
  const { got, fd, onRx, words } = await udpPair(t);
  const gateBuf = new SharedArrayBuffer(8);
  const gate = new Int32Array(gateBuf);
  const h = await Harness.start({ workers: 2, ringSlots: 256, workerSendDepth: 1, cryptoModule: gatedCryptoModule(), cryptoModuleData: gateBuf }, 1);
  t.teardown(() => { Atomics.store(gate, 1, 1); Atomics.notify(gate, 1); return h.rig.close(); });
  onRx.push(() => h.rig.bump());
  h.routeHook = (_slot, _data, _len, meta) => {
    meta.sendFd = fd;
    meta.metaWords.set(words, meta.base + M_EP_FAMILY);
    return undefined;
  };
  h.sealedHook = (rec) => { if (!rec.sent && rec.ok) fs.writeSync(fd, rec.msg); };
  // The first packet parks the worker that seals it, so the other 49 are routed with it ahead of them.
  const pkts = Array.from({ length: 50 }, (_, i) => packet(i, 200));
  pkts[0] = new Uint8Array(64).fill(0xee);
  await h.inject(pkts.slice(0, 1));
  const r = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number, ms: number): { async: boolean; value: Promise<string> | string } }).waitAsync(gate, 0, 0, WAIT_MS);
  t.not(r.async ? await r.value : r.value, 'timed-out', 'a worker took the first packet');
  await h.inject(pkts.slice(1));
  await h.until(() => h.routed === 50, 'all 50 routed');
  Atomics.store(gate, 1, 1);
  Atomics.notify(gate, 1);
  await h.until(() => got.length >= 50 && h.sealed.length >= 50, 'all 50 on the wire');
  t.ok(h.sum(CW_SENT) <= 1, `only the packet with nothing ahead of it may be written by a worker (${h.sum(CW_SENT)})`);
  t.same(got.map((m) => m.readUInt32LE(8)), pkts.map((_, i) => i), 'all of them, in order');
});

for (const workers of [1, 2]) {
  t.test(`${workers} worker(s): workers write sealed messages to the connected UDP socket, in ring order; main sends what they cannot`, async (t) => {
    const N = 2000;
    const BATCH = 100; // in flight at once: well inside the receiver's socket buffer
    const { got, fd, onRx, words } = await udpPair(t);
    const badFd = fs.openSync('/dev/null', 'r'); // write() fails with EBADF: the worker must leave it to main
    t.teardown(() => fs.closeSync(badFd));
    const h = await Harness.start({ workers, ringSlots: 256, cryptoModule: jitterCryptoModule(), workerSendDepth: Infinity }, 1);
    t.teardown(() => h.rig.close());
    onRx.push(() => h.rig.bump());
    const noFd = (seq: number): boolean => seq % 13 === 5;
    const failing = (seq: number): boolean => seq % 17 === 3;
    h.routeHook = (_slot, _data, _len, meta) => {
      meta.sendFd = noFd(meta.seq) ? -1 : failing(meta.seq) ? badFd : fd;
      meta.metaWords.set(words, meta.base + M_EP_FAMILY);
      return undefined; // the default route fills the rest
    };
    // What main sends (sent=false): straight to the same socket, so the wire shows the true order.
    h.sealedHook = (rec) => { if (!rec.sent && rec.ok) fs.writeSync(fd, rec.msg); };
    const pkts = Array.from({ length: N }, (_, i) => packet(i, 200));
    for (let i = 0; i < N; i += BATCH) {
      await h.inject(pkts.slice(i, i + BATCH));
      await h.until(() => got.length >= i + BATCH && h.sealed.length >= i + BATCH, `datagrams ${i}..${i + BATCH - 1}`).catch((e) => { throw new Error(`${e.message}: got ${got.length}, sealed ${h.sealed.length}, in flight ${h.p.inFlight(RING_TUN)}`); });
    }
    t.equal(h.sealed.length, N, 'every slot released once');
    t.ok(h.sealed.every((r) => r.ok), 'all sealed');
    t.same(h.sealed.map((r) => r.seq), pkts.map((_, i) => i), 'onSealed in ring order');
    // The wire: exactly the sealed messages, each once, in ring order.
    t.equal(got.length, N, 'one datagram per packet, none twice');
    const counters = got.map((m) => m.readUInt32LE(8));
    t.same(counters, pkts.map((_, i) => i), 'datagrams on the wire in ring order');
    t.ok(got.every((m, i) => Buffer.compare(m, Buffer.from(h.sealed[i]!.msg)) === 0), 'each datagram is the sealed message');
    t.ok(got.every((m, i) => checkMessage(m, h.peers[0]!.key, 0x1000, i, 0, pkts[i]!) === null), 'and opens with the peer key');
    // Who sent what.
    const mainSent = h.sealed.filter((r) => !r.sent).map((r) => r.seq);
    const mustBeMain = pkts.map((_, i) => i).filter((i) => noFd(i) || failing(i));
    t.ok(mustBeMain.every((i) => mainSent.includes(i)), 'no fd or a failing write: main sent it');
    const mainFlushed = h.p.stats[STAT_MAIN + MAIN_FLUSHED]!;
    t.equal(h.sum(CW_SENT) + mainFlushed + mainSent.length, N, 'worker writes + main\'s batches + main\'s single sends = packets');
    // Main also sends (in sendmmsg batches) the finished slots queued behind one it had to send:
    // how many depends on timing.
    t.ok(h.sum(CW_SENT) > 0, `workers wrote some themselves (${h.sum(CW_SENT)}; main's batches ${mainFlushed})`);
    const fallbacks = h.sum(CW_SEND_FALLBACKS);
    t.ok(fallbacks >= 1 && fallbacks <= pkts.filter((_, i) => failing(i) && !noFd(i)).length, `failed writes counted as fallbacks, each slot tried at most once (${fallbacks})`);
  });
}

t.test('start() rejects (and cleans up) when the crypto module cannot be loaded', async (t) => {
  const memtun = await MemTun.create();
  t.teardown(() => memtun.close());
  await t.rejects(PipelineRig.start({ workers: 1, cryptoModule: 'data:text/javascript,throw new Error("no crypto")' }, {
    route: () => false, onSealed: () => {}, onOpened: () => -1, onTunGone: () => {}, onWorkerError: () => {},
  }), /no crypto/);
  await t.rejects(Pipeline.start({ workers: 0, tunFd: memtun.tun.fd, udp: { wakeFd: -1, indexMap: new SharedArrayBuffer(128) } }, {} as PipelineHooks), RangeError);
});

// ---- real TUN reader/writer threads on named pipes ---------------------------------------------------

/** Whether cond(), on counters another thread updates after what they count, holds within 5 s (polled). */
async function counted(cond: () => boolean): Promise<boolean> {
  for (const deadline = Date.now() + 5_000; !cond(); await new Promise((r) => setTimeout(r, 2))) {
    if (Date.now() > deadline) return false;
  }
  return true;
}

t.test('TUN reader and writer threads: pipe in, pipe out, EOF reported as TUN gone', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wirepool-dp-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const inPath = path.join(dir, 'in');
  const outPath = path.join(dir, 'out');
  execFileSync('mkfifo', [inPath, outPath]);
  const inWrite = fs.openSync(inPath, 'r+'); // the only writer of "in": closing it gives the reader EOF
  const inRead = fs.openSync(inPath, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK); // the reader polls, then reads until EAGAIN
  const outRead = fs.openSync(outPath, 'r+');
  const outWrite = fs.openSync(outPath, 'w');
  let inWriteOpen = true;
  t.teardown(() => {
    if (inWriteOpen) fs.closeSync(inWrite);
    fs.closeSync(inRead);
    fs.closeSync(outWrite);
  });
  const h = await Harness.start({ workers: 1, tunFd: inRead, tunWriteFd: outWrite, ringSlots: 64 }, 1);
  t.teardown(() => h.rig.close());
  const key = h.peers[0]!.key;
  // Collect what the writer thread writes, without blocking main.
  const sock = new net.Socket({ fd: outRead, readable: true, writable: false });
  const chunks: Buffer[] = [];
  let outBytes = 0;
  sock.on('data', (b: Buffer) => { chunks.push(b); outBytes += b.length; h.rig.bump(); });
  t.teardown(() => sock.destroy());

  // One packet at a time (a pipe keeps no boundaries): write, wait until route()d and sealed.
  const pkts = Array.from({ length: 40 }, (_, i) => packet(i + 1, 1400));
  for (let i = 0; i < pkts.length; i++) {
    fs.writeSync(inWrite, pkts[i]!);
    await h.until(() => h.sealed.length === i + 1, `packet ${i} read and sealed`);
  }
  t.equal(h.p.stats[STAT_READER + R_PACKETS], pkts.length, 'reader counted every packet');
  let bad = 0;
  for (let i = 0; i < pkts.length; i++) {
    const rec = h.sealed[i]!;
    if (checkMessage(rec.msg, key, 0x1000, i, 0, pkts[i]!) !== null) bad++;
  }
  t.equal(bad, 0, 'what the reader read was sealed correctly');

  // Receive direction: opened messages are written by the writer thread, back to back.
  await h.receive(h.sealed.slice(), pkts);
  const total = pkts.reduce((n, p) => n + p.length, 0);
  await h.until(() => outBytes >= total, 'writer output');
  t.same(Buffer.concat(chunks), Buffer.concat(pkts), 'writer wrote every delivered packet, in order, trimmed');
  // The writer thread counts a batch after writing it: the bytes can be here before the count.
  t.ok(await counted(() => h.p.stats[STAT_WRITER + W_PACKETS] === pkts.length), `writer counted ${pkts.length} (${h.p.stats[STAT_WRITER + W_PACKETS]})`);

  // Mixed paths, one ordered stream: single packets with the writer idle (main writes them
  // itself), a burst (handed to the writer thread), then singles fed without waiting (each goes
  // to main only once the writer has written all it was handed).
  const base = outBytes;
  const order: Uint8Array[] = [];
  const bytesOf = (ps: Uint8Array[]): number => ps.reduce((n, p) => n + p.length, 0);
  for (let i = 0; i < 3; i++) {
    await h.receive([h.sealed[i]!], [pkts[i]!]);
    order.push(pkts[i]!);
    await h.until(() => outBytes >= base + bytesOf(order), `single ${i} written`);
  }
  await h.receive(h.sealed.slice(3, 33), pkts.slice(3, 33));
  order.push(...pkts.slice(3, 33));
  for (let i = 33; i < pkts.length; i++) {
    await h.receive([h.sealed[i]!], [pkts[i]!]);
    order.push(pkts[i]!);
    await new Promise((r) => setImmediate(r));
  }
  await h.until(() => outBytes >= base + total, 'second round written');
  t.same(Buffer.concat(chunks).subarray(base), Buffer.concat(order), 'second round: every packet once, in order');
  t.ok(await counted(() => h.p.stats[STAT_WRITER + W_PACKETS] === 2 * pkts.length),
    `main and writer counted every write once (${h.p.stats[STAT_WRITER + W_PACKETS]} of ${2 * pkts.length})`);

  // EOF on the reader's fd: TUN gone, reported once.
  fs.closeSync(inWrite);
  inWriteOpen = false;
  await h.until(() => h.tunGone === 1, 'onTunGone');
  t.equal(h.p.tunGoneCode, 'EOF');
  await h.p.stop();
  t.equal(h.p.tunReaderRunning, false, 'reader exited');
  t.same(h.workerErrors, []);
});
