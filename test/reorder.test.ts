// Reordering and duplication end to end through two sans-I/O engines (issue 3): after a
// handshake, A seals a run of data packets with increasing counters and the "network"
// delivers them to B in a seeded order that reorders within a bounded distance, duplicates
// about 10% (some copies right behind the original, some much later) and holds a few
// originals back until they are far behind the window. Every message's fate at B (delivered
// or rejected) is checked against a naive oracle of the window rule: accept counter c iff it
// was not accepted before and c ≥ last − 8128, where last is the highest accepted counter.
// The same schedule then goes through the real pipeline (helpers/pipeline-rig.ts: UDP reader, 2
// crypto worker threads, TUN writer): sent over loopback UDP in that order, the in-order check
// stage must see the messages in ring order whatever order the reader and the workers open them
// in, and a ReplayWindow run there (as Device.onOpened does) must decide as the oracle. Set WIREPOOL_SEED to replay a run.

import t from 'tap';
import { randomBytes } from 'node:crypto';
import { MESSAGE_TRANSPORT } from '../src/constants.js';
import { nodeCrypto } from '../src/crypto/crypto.js';
import { type PipelineHooks } from '../src/dataplane/pipeline.js';
import { paddedLength, Transport, writeType, writeU32 } from '../src/protocol/messages.js';
import { Direction } from '../src/protocol/drops.js';
import { REPLAY_WINDOW_SIZE, ReplayWindow } from '../src/protocol/replay.js';
import { Stat, STATS_PER_PEER } from '../src/protocol/peer.js';
import { ipv4Packet, sealMessage, twoPeers } from './helpers/pair.js';
import { PipelineRig } from './helpers/pipeline-rig.js';
import { makePrng, type Prng, testSeed } from './helpers/seeded-prng.js';

const W = 8128;
/** Data packets A seals after the handshake. More than W, so late messages can fall behind the window. */
const N = 12_000;
/** Bounded reordering: a packet is delivered at most about this many positions away from its place. */
const REORDER = 2_000;
/** Fraction of packets that are duplicated. */
const DUP_RATE = 0.1;
/** Early originals held back until the end, when they are far behind the window. */
const HELD_BACK = 5;
/** Originals held back until the end that then sit at distance W − 2 … W + 2 behind the highest counter. */
const EDGE = [-2, -1, 0, 1, 2].map((d) => N - 1 - W - d);

type Verdict = 'accept' | 'duplicate' | 'too_old';

/** The window rule stated directly: a set of accepted counters and the highest one. */
class Oracle {
  private last = 0;
  private readonly seen = new Set<number>();
  constructor(accepted: number[]) {
    for (const c of accepted) { this.seen.add(c); if (c > this.last) this.last = c; }
  }
  validate(c: number): Verdict {
    if (c > this.last) this.last = c;
    else if (this.last - c > W) return 'too_old';
    if (this.seen.has(c)) return 'duplicate';
    this.seen.add(c);
    return 'accept';
  }
}

/**
 * The order in which the network delivers packet ids 0..N−1: 1) bounded reorder (sort by
 * i + jitter in [0, REORDER]); 2) HELD_BACK early originals and the EDGE originals are held back
 * to the very end; 3) DUP_RATE of the rest duplicated, half right behind the original, half up to
 * 1.5 windows later.
 */
function deliverySchedule(rng: Prng): { final: number[]; early: Set<number> } {
  // Delivery order. 1) bounded reorder: sort by i + jitter in [0, REORDER].
  const key = new Float64Array(N);
  for (let i = 0; i < N; i++) key[i] = i + rng.int(REORDER + 1) + i / (N + 1);
  const order = Array.from({ length: N }, (_, i) => i).sort((x, y) => key[x]! - key[y]!);
  // 2) a few early originals are held back to the very end: far behind the window by then;
  //    and the EDGE originals, which then straddle the window's edge.
  const early = new Set<number>();
  while (early.size < HELD_BACK) early.add(rng.int(500));
  const held = new Set<number>([...early, ...EDGE]);
  const schedule: number[] = order.filter((i) => !held.has(i));
  // 3) duplicates: half right after the original, half much later (up to 1.5 windows on).
  const late: { at: number; id: number }[] = [];
  const withDups: number[] = [];
  for (let pos = 0; pos < schedule.length; pos++) {
    const id = schedule[pos]!;
    withDups.push(id);
    if (!rng.chance(DUP_RATE)) continue;
    if (rng.chance(0.5)) withDups.push(id);
    else late.push({ at: pos + 1 + rng.int(Math.floor(1.5 * W)), id });
  }
  late.sort((x, y) => x.at - y.at);
  // Interleave the late copies: `at` counts originals (schedule positions) already sent.
  const final: number[] = [];
  {
    let orig = 0;
    let k = 0;
    for (let pos = 0; pos < withDups.length; pos++) {
      const id = withDups[pos]!;
      final.push(id);
      if (pos + 1 < withDups.length && withDups[pos + 1] === id) continue; // immediate copy follows
      orig++;
      while (k < late.length && late[k]!.at <= orig) final.push(late[k++]!.id);
    }
    while (k < late.length) final.push(late[k++]!.id);
  }
  for (const id of held) final.push(id); // the highest counter is firstCounter + N − 1 by now
  return { final, early };
}

const packetId = (p: Uint8Array): number => ((p[20]! << 24) | (p[21]! << 16) | (p[22]! << 8) | p[23]!) >>> 0;

t.test('reordered, duplicated and late transport messages: each fresh one delivered once, the rest dropped as the window rule says', async (t) => {
  const seed = testSeed();
  t.comment(`WIREPOOL_SEED=${seed}`);
  const rng = makePrng(seed);
  t.equal(REPLAY_WINDOW_SIZE, W);

  const { net, a, b, peerAB, peerBA } = twoPeers();
  t.equal(net.sendPacket(a, ipv4Packet('10.0.0.1', '10.0.0.2')), 'staged');
  net.pump();
  t.equal(b.delivered.length, 1, 'handshake done, staged packet delivered');
  const kp = peerAB.keypairs.current!;
  t.ok(kp && peerBA.keypairs.current, 'both sides have a current keypair');
  const firstCounter = kp.sendCounter;
  const usedCounters: number[] = [];
  for (let c = 0; c < firstCounter; c++) usedCounters.push(c);
  b.delivered.length = 0;

  // A seals N packets; packet i carries id i in its payload and counter firstCounter + i.
  const plain: Uint8Array[] = [];
  const msgs: Uint8Array[] = [];
  for (let i = 0; i < N; i++) {
    const p = ipv4Packet('10.0.0.1', '10.0.0.2', 24 + (i % 40));
    p[20] = i >>> 24; p[21] = (i >>> 16) & 0xff; p[22] = (i >>> 8) & 0xff; p[23] = i & 0xff;
    plain.push(p);
    msgs.push(sealMessage(net.crypto, kp, kp.sendCounter++, p));
  }

  const { final, early } = deliverySchedule(rng);
  // And one copy of a handshake-era message (counter 0, seen long ago).
  const stagedMsg = a.sent.find((w) => w.bytes[0] === 4)!.bytes;
  const EARLY = -1;
  final.push(EARLY);

  // Oracle and engine side by side, message by message.
  const oracle = new Oracle(usedCounters);
  const expected = { accept: 0, duplicate: 0, too_old: 0 };
  const expectDelivered: number[] = [];
  const mismatches: string[] = [];
  const replay0 = b.engine.drops.get(Direction.Inbound, 'replay');
  const tooOld0 = b.engine.drops.get(Direction.Inbound, 'too_old');
  const rx0 = b.engine.stats[peerBA.id * STATS_PER_PEER + Stat.RxPackets]!;
  let immediateDups = 0, lateInWindowDups = 0;
  let prev = -2;
  for (const id of final) {
    const counter = id === EARLY ? 0 : firstCounter + id;
    const v = oracle.validate(counter);
    expected[v]++;
    if (v === 'accept') expectDelivered.push(id);
    if (v === 'duplicate') { if (prev === id) immediateDups++; else lateInWindowDups++; }
    prev = id;
    const bytes = id === EARLY ? stagedMsg : msgs[id]!;
    const got = net.receive(b, Uint8Array.from(bytes), a.endpoint);
    const want = v === 'accept' ? null : 'rejected';
    if (got !== want && mismatches.length < 10) mismatches.push(`id ${id} counter ${counter}: oracle ${v}, engine ${got}`);
  }
  t.same(mismatches, [], `every message's fate matches the oracle (seed ${seed})`);

  // The scenario really exercised each case.
  t.ok(final.length > N, `duplicates were sent (${final.length - N} extra messages)`);
  t.ok(immediateDups > 0, `immediate duplicates: ${immediateDups}`);
  t.ok(lateInWindowDups > 0, `late duplicates still inside the window: ${lateInWindowDups}`);
  t.ok(expected.too_old >= HELD_BACK + 3, `messages behind the window: ${expected.too_old}`);

  // Delivered payloads: exactly the accepted ones, each once, in arrival order, intact.
  const got = b.delivered.map(packetId);
  t.equal(got.length, expected.accept, `delivered = accepted (seed ${seed})`);
  t.same(got, expectDelivered, 'delivered in arrival order, exactly the oracle\'s accepts');
  t.equal(new Set(got).size, got.length, 'no packet delivered twice');
  let intact = true;
  for (let k = 0; k < b.delivered.length; k++) {
    const p = plain[got[k]!]!;
    const d = b.delivered[k]!;
    if (d.length < p.length || !Buffer.from(d.subarray(0, p.length)).equals(Buffer.from(p))) { intact = false; break; }
  }
  t.ok(intact, 'every delivered payload is byte-identical to what A sealed');
  for (const id of early) t.notOk(got.includes(id), `held-back original ${id} (counter ${firstCounter + id}) is dropped`);
  // At the window's edge: W behind the highest is still accepted, W + 1 is not.
  t.same(EDGE.map((id) => got.includes(id)), [true, true, true, false, false], 'edge originals: distance W−2, W−1, W accepted; W+1, W+2 dropped');
  // Every packet that was inside the window when its first copy arrived is delivered.
  const deliveredSet = new Set(got);
  const missing = Array.from({ length: N }, (_, i) => i).filter((i) => !deliveredSet.has(i));
  const accepted = new Set(expectDelivered);
  const missingExpected = Array.from({ length: N }, (_, i) => i).filter((i) => !accepted.has(i));
  t.same(missing, missingExpected, 'undelivered originals are exactly those the oracle found too old');

  // Drop counters: a counter behind the window is 'too_old', a duplicate inside it 'replay'.
  const replay = b.engine.drops.get(Direction.Inbound, 'replay') - replay0;
  const tooOld = b.engine.drops.get(Direction.Inbound, 'too_old') - tooOld0;
  t.equal(replay, expected.duplicate, `every in-window duplicate is counted as a replay (${expected.duplicate})`);
  t.equal(tooOld, expected.too_old, `every message behind the window is counted as too old (${expected.too_old})`);
  t.equal(b.engine.stats[peerBA.id * STATS_PER_PEER + Stat.RxPackets]! - rx0, expected.accept, 'rx packets count only accepted messages');
});

t.test('real pipeline, 2 crypto workers: the check stage sees RECV-ring order and the window decides as the oracle', async (t) => {
  t.setTimeout(240_000);
  const seed = testSeed();
  t.comment(`WIREPOOL_SEED=${seed}`);
  const { final } = deliverySchedule(makePrng(seed));
  const key = new Uint8Array(randomBytes(32));

  // Every message, sealed once (copies are byte-identical: a real replay).
  const msgs: Uint8Array[] = [];
  for (let i = 0; i < N; i++) {
    const p = ipv4Packet('10.0.0.1', '10.0.0.2', 24 + (i % 40));
    p[20] = i >>> 24; p[21] = (i >>> 16) & 0xff; p[22] = (i >>> 8) & 0xff; p[23] = i & 0xff;
    const padded = new Uint8Array(paddedLength(p.length, 1420));
    padded.set(p);
    const ct = nodeCrypto.aeadSeal(key, i, padded, new Uint8Array(0));
    const m = new Uint8Array(16 + ct.length);
    writeType(m, MESSAGE_TRANSPORT);
    writeU32(m, Transport.RECEIVER, 0x1234);
    writeU32(m, Transport.COUNTER, i);
    m.set(ct, 16);
    msgs.push(m);
  }

  // The check stage (onOpened) does what Device.onOpened does first: the replay window, in ring order.
  const window = new ReplayWindow();
  const checked: { seq: number; ok: boolean; id: number; counter: number; fresh: boolean }[] = [];
  const hookErrors: unknown[] = [];
  const hooks: PipelineHooks = {
    route: () => false,
    onSealed: () => {},
    onOpened: (_slot, data, plain, ok, meta) => {
      const counter = meta.counterLo + meta.counterHi * 2 ** 32;
      const id = ok && plain >= 24 ? packetId(data.subarray(16)) : -1;
      const fresh = ok && window.validate(counter);
      checked.push({ seq: meta.seq, ok, id, counter, fresh });
      return fresh ? 24 + (id % 40) + 20 : -1;
    },
    onTunGone: () => {},
    onWorkerError: (_id, err) => { hookErrors.push(err); },
    onHookError: (_stage, err) => { hookErrors.push(err); },
  };
  const rig = await PipelineRig.start({ workers: 2, ringSlots: 1024, maxInnerMtu: 1420, startTimeoutMs: 60_000 }, hooks);
  t.teardown(() => rig.close());
  const kp = rig.p.keys.allocate();
  rig.p.keys.setKeys(kp, new Uint8Array(randomBytes(32)), key);
  rig.indexMap.set(0x1234, kp);

  // The network delivers them in that order to the pipeline's socket.
  await rig.sendAll(final.map((id) => msgs[id]!), () => checked.length);
  await rig.until(() => checked.length === final.length, 'every message checked', 60_000);
  const accepted = checked.filter((c) => c.fresh).length;
  await rig.until(() => rig.memtun!.received.length === accepted, 'every accepted packet written to TUN', 60_000);
  const delivered = rig.memtun!.received.map(packetId);
  t.same(hookErrors, [], 'no worker or hook errors');

  // Ring order: the check stage saw the messages exactly in arrival order, all authentic,
  // although two workers decrypted them in any order.
  t.same(checked.map((c) => c.seq), final.map((_, k) => k), 'onOpened in ring sequence order');
  t.ok(checked.every((c) => c.ok), 'every message opened');
  t.same(checked.map((c) => c.id), final, 'plaintext k is message k of the arrival order');
  t.same(checked.map((c) => c.counter), final, 'counter from the slot meta');

  // Window verdicts at the check stage against the oracle, and delivery of exactly the accepts.
  const oracle = new Oracle([]);
  const want = final.map((id) => oracle.validate(id) === 'accept');
  const got = checked.map((c) => c.fresh);
  const diff = want.findIndex((w, k) => w !== got[k]);
  t.equal(diff, -1, `window verdicts match the oracle (first difference at ${diff}, seed ${seed})`);
  t.same(delivered, final.filter((_, k) => want[k]), 'delivered: the accepted messages, once each, in ring order');
  t.equal(new Set(delivered).size, delivered.length, 'no packet delivered twice');
  t.ok(want.filter((w) => !w).length > N / 20, 'duplicates and late messages were among them');
});
