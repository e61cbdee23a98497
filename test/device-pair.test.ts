// Device-level tests, like wireguard-go's genTestPair: two whole Devices A and B (engine,
// handshakes, timers, crypto workers, the native UDP reader and TUN reader/writer threads) over
// loopback UDP, each with an in-memory TUN (test/helpers/memtun.ts: a SOCK_SEQPACKET socketpair
// read and written by the real native readSlots / writeSlots). Both are configured through the
// UAPI request parser (src/uapi/protocol.ts UapiSession) driving the Device, as `wg set` would.
//
// For each of workers=1 / workers=2 over 127.0.0.1, and workers=2 over ::1:
//   1. one packet into A's TUN starts the handshake and arrives byte-identical at B's TUN (and back);
//   2. 2,000 IPv4 packets of seeded random sizes each way, concurrently: each arrives exactly once,
//      in order, byte-identical;
//   3. the same with IPv6 inner packets;
//   4. an inner source B does not allow for A is dropped at B and counted (source_not_allowed);
//   5. a destination without a peer is counted at A (no_peer_for_destination);
//   6. A's tx_bytes equals B's rx_bytes and the other way round, and nothing else was dropped;
//   7. A moves to a new listen port mid-stream: the A→B stream arrives exactly once, B roams to the
//      new port, and traffic flows both ways afterwards.
// Waits are on packets arriving (an event from the memory TUN's reader thread), bounded by WAIT_MS;
// only the transfer counters and drop counters, which nothing signals, are polled (bounded).
// Replay a failure with WIREPOOL_SEED=<seed printed by the test>.

import t, { type Test } from 'tap';
import { Device } from '../src/device.js';
import { createLogger, type Logger } from '../src/log.js';
import { Direction, DROP_REASONS } from '../src/protocol/drops.js';
import { UapiSession, type UapiPeerState } from '../src/uapi/protocol.js';
import { nodeCrypto } from '../src/crypto/crypto.js';
import { udpNativeAvailable } from '../src/io/udp-native.js';
import {
  MAIN_INLINE_SEALED, MAIN_TUN_GIVEN, MAIN_TUN_TAKEN, MAIN_UDP_GIVEN, MAIN_UDP_TAKEN, R_PACKETS, R_READS, STAT_MAIN, STAT_READER, STAT_UDP_READER, STAT_WRITER, U_DATAGRAMS, W_ERRORS, W_PACKETS,
} from '../src/dataplane/layout.js';
import { MemTun } from './helpers/memtun.js';
import { makePrng, type Prng, testSeed } from './helpers/seeded-prng.js';

const WAIT_MS = 20_000;
const MTU = 1420;
const PACKETS = 2_000;
t.setTimeout(300_000);

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

// ---- inner packets ----------------------------------------------------------------------------

const V4 = { a: [10, 0, 0, 1], b: [10, 0, 0, 2], stranger: [10, 0, 0, 99], nowhere: [10, 9, 9, 9] };
const v6 = (last: number): number[] => [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last];
const V6 = { a: v6(1), b: v6(2), stranger: v6(0x99), nowhere: [0xfd, 9, ...new Array<number>(13).fill(0), 9] };

function ipv4Checksum(p: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += (p[i]! << 8) | p[i + 1]!;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** A minimal valid IPv4/UDP packet of `total` bytes (≥ 28); payload: tag, seq, then random bytes. */
function ipv4Udp(src: number[], dst: number[], total: number, seq: number, prng: Prng): Uint8Array {
  const p = new Uint8Array(total);
  p[0] = 0x45;
  p[2] = total >> 8; p[3] = total & 0xff;
  p[4] = (seq >> 8) & 0xff; p[5] = seq & 0xff; // identification
  p[8] = 64; p[9] = 17;
  p.set(src, 12);
  p.set(dst, 16);
  const cs = ipv4Checksum(p);
  p[10] = cs >> 8; p[11] = cs & 0xff;
  fillUdp(p, 20, seq, prng);
  return p;
}

/** A minimal valid IPv6/UDP packet of `total` bytes (≥ 48). */
function ipv6Udp(src: number[], dst: number[], total: number, seq: number, prng: Prng): Uint8Array {
  const p = new Uint8Array(total);
  p[0] = 0x60;
  const plen = total - 40;
  p[4] = plen >> 8; p[5] = plen & 0xff;
  p[6] = 17; p[7] = 64;
  p.set(src, 8);
  p.set(dst, 24);
  fillUdp(p, 40, seq, prng);
  return p;
}

/** UDP header at off (ports 4000 → 5000, checksum 0: "none", which the Device does not check), then seq and random bytes. */
function fillUdp(p: Uint8Array, off: number, seq: number, prng: Prng): void {
  const ulen = p.length - off;
  p[off] = 4000 >> 8; p[off + 1] = 4000 & 0xff;
  p[off + 2] = 5000 >> 8; p[off + 3] = 5000 & 0xff;
  p[off + 4] = ulen >> 8; p[off + 5] = ulen & 0xff;
  if (ulen >= 12) new DataView(p.buffer).setUint32(off + 8, seq);
  if (ulen > 12) p.set(prng.bytes(ulen - 12), off + 12);
}

function randomStream(prng: Prng, v: 4 | 6, src: number[], dst: number[], n: number, seqBase: number): Uint8Array[] {
  const min = v === 4 ? 28 : 48;
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const total = min + prng.int(MTU - min + 1);
    out.push(v === 4 ? ipv4Udp(src, dst, total, seqBase + i, prng) : ipv6Udp(src, dst, total, seqBase + i, prng));
  }
  return out;
}

// ---- a pair of devices ------------------------------------------------------------------------

interface Side {
  name: string;
  dev: Device;
  tun: MemTun;
  logLines: string[];
}

interface Pair {
  a: Side;
  b: Side;
  host: string;
}

function quietLogger(name: string, lines: string[]): Logger {
  return createLogger({ level: 'verbose', ifname: name, stream: { write: (line: string) => lines.push(line.trimEnd()) } });
}

/** Feeds one `set=1` request (the given key=value lines) to the Device's UAPI parser; fails unless errno=0. */
function uapiSet(dev: Device, lines: string[]): void {
  const session = new UapiSession(dev.uapi);
  const step = session.feed(Buffer.from(`set=1\n${lines.join('\n')}\n\n`, 'latin1'));
  const reply = Buffer.from(step.output).toString('latin1');
  if (reply !== 'errno=0\n\n') throw new Error(`UAPI set failed: ${JSON.stringify(reply)} for ${JSON.stringify(lines)}`);
}

function endpoint(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * A memory TUN and a Device on it; with 2 crypto workers also a handshake worker
 * (src/handshake-offload.ts: it takes initiations only when they queue up; test/handshake-offload
 * and e2e-handshake-flood cover that).
 */
async function createSide(name: string, workers: number): Promise<Side> {
  const tun = await MemTun.create(name, MTU);
  const logLines: string[] = [];
  try {
    const dev = await Device.create({
      ifname: name, tun: tun.tun, workers, handshakeWorkers: workers >= 2 ? 1 : 0, log: quietLogger(name, logLines), listenPort: 0,
    });
    return { name, dev, tun, logLines };
  } catch (err) {
    await tun.close();
    throw err;
  }
}

async function makePair(t: Test, workers: number, host: string): Promise<Pair> {
  const sides: Side[] = [];
  t.teardown(async () => {
    // Devices first (their TUN threads stop), then the memory TUNs.
    for (const s of sides) await s.dev.close();
    for (const s of sides) await s.tun.close();
  });
  for (const name of ['wpA', 'wpB']) sides.push(await createSide(name, workers));
  const [a, b] = sides as [Side, Side];
  const keyA = nodeCrypto.generatePrivateKey();
  const keyB = nodeCrypto.generatePrivateKey();
  uapiSet(a.dev, [`private_key=${hex(keyA)}`]);
  uapiSet(b.dev, [`private_key=${hex(keyB)}`]);
  const pubA = a.dev.uapi.publicKey()!;
  const pubB = b.dev.uapi.publicKey()!;
  uapiSet(a.dev, [
    `public_key=${hex(pubB)}`, `endpoint=${endpoint(host, b.dev.listenPort)}`, 'replace_allowed_ips=true',
    'allowed_ip=10.0.0.2/32', 'allowed_ip=fd00::2/128',
  ]);
  uapiSet(b.dev, [
    `public_key=${hex(pubA)}`, `endpoint=${endpoint(host, a.dev.listenPort)}`, 'replace_allowed_ips=true',
    'allowed_ip=10.0.0.1/32', 'allowed_ip=fd00::1/128',
  ]);
  return { a, b, host };
}

// ---- streams ----------------------------------------------------------------------------------

/**
 * Writes `pkts` into from's TUN with at most `window` of them not yet delivered at to's TUN, waiting
 * for deliveries (events), and resolves when all arrived. `at(i)` runs before packet i is written.
 * Returns the packets to's TUN received meanwhile (for the caller to compare).
 */
async function stream(from: MemTun, to: MemTun, pkts: readonly Uint8Array[], what: string,
  opts: { window?: number; at?: (i: number) => void | Promise<void> } = {}): Promise<Uint8Array[]> {
  const window = opts.window ?? 128;
  const base = to.received.length;
  const delivered = (): number => to.received.length - base;
  const deadline = Date.now() + WAIT_MS;
  for (let i = 0; i < pkts.length;) {
    if (i - delivered() >= window) {
      await to.until(() => i - delivered() < window, `${what}: packet ${i - window} of ${pkts.length} (${delivered()} delivered)`);
      continue;
    }
    if (opts.at) await opts.at(i);
    if (!from.write(pkts[i]!)) {
      // The Device's TUN reader is behind (ring backpressure): let the event loop run.
      if (Date.now() > deadline) throw new Error(`${what}: memory TUN still full after ${WAIT_MS} ms at packet ${i}`);
      await new Promise((resolve) => setTimeout(resolve, 1));
      continue;
    }
    i++;
  }
  await to.until(() => delivered() >= pkts.length, `${what}: all ${pkts.length} packets (${delivered()} delivered)`);
  return to.received.slice(base);
}

/** Exactly the sent packets, in order, byte for byte; reports the first difference. */
function sameStream(t: Test, got: readonly Uint8Array[], sent: readonly Uint8Array[], what: string, seed: number): void {
  let bad = -1;
  for (let i = 0; i < Math.max(got.length, sent.length); i++) {
    const g = got[i];
    const s = sent[i];
    if (!g || !s || Buffer.compare(g, s) !== 0) {
      bad = i;
      break;
    }
  }
  if (bad < 0) {
    t.pass(`${what}: ${sent.length} packets arrived exactly once, in order, byte-identical`);
    return;
  }
  t.fail(`${what}: first difference at packet ${bad} (seed ${seed})`, {
    gotCount: got.length,
    sentCount: sent.length,
    got: got[bad] ? `${got[bad]!.length} bytes ${hex(got[bad]!.subarray(0, 48))}` : 'nothing',
    sent: sent[bad] ? `${sent[bad]!.length} bytes ${hex(sent[bad]!.subarray(0, 48))}` : 'nothing',
  });
}

/** Polls (every 10 ms, bounded) a condition nothing signals: counters updated on the main thread. */
async function eventually(cond: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function nonZeroDrops(dev: Device): Record<string, number> {
  const out: Record<string, number> = {};
  const counts = dev.engine.drops.counts;
  for (const [d, dir] of [[Direction.Inbound, 'in'], [Direction.Outbound, 'out']] as const) {
    DROP_REASONS.forEach((r, i) => {
      const n = counts[d * DROP_REASONS.length + i]!;
      if (n !== 0) out[`${dir}:${r}`] = n;
    });
  }
  return out;
}

/** State of one side for a failure message: what each stage saw. */
function describeSide(s: Side): string {
  const st = s.dev.uapi.getState();
  const p = firstPeer(s.dev);
  const ds = s.dev.dataplane.stats;
  return JSON.stringify({
    side: s.name,
    listenPort: st.listenPort,
    peer: p ? { endpoint: p.endpoint, lastHandshake: p.lastHandshakeTimeSec, tx: p.txBytes, rx: p.rxBytes } : null,
    drops: nonZeroDrops(s.dev),
    handshakeMessages: Array.from(s.dev.handshakeStats.messages),
    tunReader: { packets: ds[STAT_READER + R_PACKETS], reads: ds[STAT_READER + R_READS] },
    tunWriter: { packets: ds[STAT_WRITER + W_PACKETS], errors: ds[STAT_WRITER + W_ERRORS] },
    udpReader: { datagrams: ds[STAT_UDP_READER + U_DATAGRAMS] },
    osReceived: s.tun.received.length,
    osReaderEnd: s.tun.readerEnd,
    log: s.logLines.slice(-20),
  });
}

/** The device's one peer as a UAPI get reports it. */
function firstPeer(dev: Device): UapiPeerState | undefined {
  for (const p of dev.uapi.getState().peers) return p;
  return undefined;
}

function peerStats(dev: Device): { tx: number; rx: number; endpoint: string | null } {
  const p = firstPeer(dev)!;
  return { tx: p.txBytes, rx: p.rxBytes, endpoint: p.endpoint };
}

// ---- the scenario -----------------------------------------------------------------------------

async function scenario(t: Test, workers: number, host: string): Promise<void> {
  const seed = testSeed();
  t.comment(`seed ${seed} (replay: WIREPOOL_SEED=${seed})`);
  const pair = await makePair(t, workers, host);
  try {
    await steps(t, pair, makePrng(seed), seed);
  } catch (err) {
    t.comment(`failed (seed ${seed}); state:\n${describeSide(pair.a)}\n${describeSide(pair.b)}`);
    throw err;
  }
}

async function steps(t: Test, { a, b, host }: Pair, prng: Prng, seed: number): Promise<void> {
  let seq = 0;

  // 1. the first packet starts the handshake; it and a reply arrive byte-identical
  {
    const first = ipv4Udp(V4.a, V4.b, 100, seq++, prng);
    t.ok(a.tun.write(first), 'first packet written into A');
    await b.tun.untilReceived(1, 'the first packet at B (after the handshake)');
    t.same(hex(b.tun.received[0]!), hex(first), 'A→B first packet byte-identical');
    t.ok(firstPeer(a.dev)!.lastHandshakeTimeSec > 0, 'A completed a handshake');
    t.equal(firstPeer(b.dev)!.endpoint, endpoint(host, a.dev.listenPort), "B's endpoint for A is A's port");
    const hw = b.dev.metrics.metricsHandshakeQueue().workers;
    if (hw) t.same([hw.prepared, hw.fallback], [0, 0], 'a lone initiation is answered on main, not sent to the handshake worker (HandshakeOffload.wants)');
    const reply = ipv4Udp(V4.b, V4.a, 333, seq++, prng);
    t.ok(b.tun.write(reply), 'reply written into B');
    await a.tun.untilReceived(1, 'the reply at A');
    t.same(hex(a.tun.received[0]!), hex(reply), 'B→A reply byte-identical');
    // B's workers have had nothing to do (the handshake and A's first packet never reach them), so
    // the lone reply, with nothing else in B's TUN ring, was sealed by B's main thread itself.
    t.equal(b.dev.dataplane.stats[STAT_MAIN + MAIN_INLINE_SEALED], 1, "the lone reply was sealed inline by B's main thread");
  }

  // 2. 2,000 IPv4 packets of random sizes each way, concurrently
  {
    const ab = randomStream(prng, 4, V4.a, V4.b, PACKETS, seq);
    const ba = randomStream(prng, 4, V4.b, V4.a, PACKETS, seq + PACKETS);
    seq += 2 * PACKETS;
    const [gotB, gotA] = await Promise.all([stream(a.tun, b.tun, ab, 'IPv4 A→B'), stream(b.tun, a.tun, ba, 'IPv4 B→A')]);
    sameStream(t, gotB, ab, 'IPv4 A→B', seed);
    sameStream(t, gotA, ba, 'IPv4 B→A', seed);
  }

  // 2b. Idle and load alternate, so the TUN device and the UDP sockets change hands between the
  // I/O threads and main's event loop (src/dataplane/intake.ts) again and again: a lone packet is
  // read by main (it owns idle inputs), a burst of 64 written at once makes main hand the input
  // back to its thread. Nothing may be lost, duplicated or reordered across the hand-overs.
  {
    const cells = (s: Side): number[] => [MAIN_TUN_TAKEN, MAIN_TUN_GIVEN, MAIN_UDP_TAKEN, MAIN_UDP_GIVEN].map((c) => s.dev.dataplane.stats[STAT_MAIN + c]!);
    const [aBefore, bBefore] = [cells(a), cells(b)];
    const base = b.tun.received.length;
    const sent: Uint8Array[] = [];
    for (let r = 0; r < 30; r++) {
      const lone = ipv4Udp(V4.a, V4.b, 60 + r, seq++, prng);
      await a.tun.writeAll([lone]);
      sent.push(lone);
      await b.tun.until(() => b.tun.received.length - base >= sent.length, `round ${r}: the lone packet`);
      const burst = randomStream(prng, 4, V4.a, V4.b, 64, seq);
      seq += 64;
      await a.tun.writeAll(burst);
      sent.push(...burst);
      await b.tun.until(() => b.tun.received.length - base >= sent.length, `round ${r}: the burst`);
    }
    sameStream(t, b.tun.received.slice(base), sent, 'A→B across idle/load hand-overs', seed);
    const [aAfter, bAfter] = [cells(a), cells(b)];
    t.ok(aAfter[0]! > aBefore[0]! && aAfter[1]! > aBefore[1]!, `A's TUN device went to main and back (taken ${aAfter[0]! - aBefore[0]!}, given back ${aAfter[1]! - aBefore[1]!} times)`);
    t.ok(bAfter[2]! > bBefore[2]! && bAfter[3]! > bBefore[3]!, `B's UDP sockets went to main and back (taken ${bAfter[2]! - bBefore[2]!}, given back ${bAfter[3]! - bBefore[3]!} times)`);
  }

  // 3. IPv6 inner packets
  {
    const ab = randomStream(prng, 6, V6.a, V6.b, PACKETS / 2, seq);
    const ba = randomStream(prng, 6, V6.b, V6.a, PACKETS / 2, seq + PACKETS / 2);
    seq += PACKETS;
    const [gotB, gotA] = await Promise.all([stream(a.tun, b.tun, ab, 'IPv6 A→B'), stream(b.tun, a.tun, ba, 'IPv6 B→A')]);
    sameStream(t, gotB, ab, 'IPv6 A→B', seed);
    sameStream(t, gotA, ba, 'IPv6 B→A', seed);
  }

  // 4 + 5. Packets are handled in ring order on each side, so once the good packet written after
  // the bad ones has arrived at B, A has routed (or refused) them and B has checked them.
  {
    const base = b.tun.received.length;
    const spoofed4 = ipv4Udp(V4.stranger, V4.b, 64, seq++, prng);
    const spoofed6 = ipv6Udp(V6.stranger, V6.b, 80, seq++, prng);
    const noPeer4 = ipv4Udp(V4.a, V4.nowhere, 64, seq++, prng);
    const noPeer6 = ipv6Udp(V6.a, V6.nowhere, 80, seq++, prng);
    const good = ipv4Udp(V4.a, V4.b, 64, seq++, prng);
    for (const p of [spoofed4, noPeer4, spoofed6, noPeer6, good]) t.ok(a.tun.write(p), 'written into A');
    await b.tun.until(() => b.tun.received.length > base && Buffer.compare(b.tun.received.at(-1)!, good) === 0, 'the good packet after the bad ones');
    t.equal(b.tun.received.length, base + 1, 'only the good packet reached B');
    t.same(hex(b.tun.received[base]!), hex(good), 'it is the good packet');
    t.equal(b.dev.engine.drops.get(Direction.Inbound, 'source_not_allowed'), 2, 'B dropped both spoofed sources (source_not_allowed)');
    t.equal(a.dev.engine.drops.get(Direction.Outbound, 'no_peer_for_destination'), 2, 'A counted both peerless destinations (no_peer_for_destination)');
  }

  // 6. transfer counters agree; nothing else was dropped
  {
    await eventually(() => {
      const sa = peerStats(a.dev);
      const sb = peerStats(b.dev);
      return sa.tx === sb.rx && sb.tx === sa.rx;
    }, 'tx/rx counters to agree').catch((err: Error) => {
      throw new Error(`${err.message}: A ${JSON.stringify(peerStats(a.dev))}, B ${JSON.stringify(peerStats(b.dev))}`);
    });
    const sa = peerStats(a.dev);
    const sb = peerStats(b.dev);
    t.equal(sa.tx, sb.rx, `A tx_bytes = B rx_bytes (${sa.tx})`);
    t.equal(sb.tx, sa.rx, `B tx_bytes = A rx_bytes (${sb.tx})`);
    t.ok(sa.tx > PACKETS * 28 && sb.tx > PACKETS * 28, 'the counters cover the streams');
    t.same(nonZeroDrops(a.dev), { 'out:no_peer_for_destination': 2 }, 'A dropped nothing else');
    t.same(nonZeroDrops(b.dev), { 'in:source_not_allowed': 2 }, 'B dropped nothing else');
  }

  // 7. A's listen port changes mid-stream (UAPI listen_port=0: a fresh random port)
  {
    const oldPort = a.dev.listenPort;
    let newPort = 0;
    const ab = randomStream(prng, 4, V4.a, V4.b, 1000, seq);
    seq += 1000;
    // B→A meanwhile, best effort: packets B sends to the old port before it learns the new one are lost.
    const ba = randomStream(prng, 4, V4.b, V4.a, 1000, seq);
    seq += 1000;
    const aBase = a.tun.received.length;
    let baDone = false;
    const baWriter = (async () => {
      for (let i = 0; i < ba.length; i++) {
        await b.tun.writeAll([ba[i]!]);
        if (i % 32 === 31) await new Promise((resolve) => setImmediate(resolve));
      }
      baDone = true;
    })();
    const gotB = await stream(a.tun, b.tun, ab, 'A→B across the port change', {
      at: (i) => {
        if (i !== 500 || newPort !== 0) return; // at(i) runs again for a packet retried after EAGAIN
        uapiSet(a.dev, ['listen_port=0']);
        newPort = a.dev.listenPort;
      },
    });
    await baWriter;
    t.ok(baDone, 'B→A best-effort stream written');
    t.not(newPort, oldPort, `A moved from port ${oldPort} to ${newPort}`);
    sameStream(t, gotB, ab, 'A→B across the port change', seed);
    t.equal(peerStats(b.dev).endpoint, endpoint(host, newPort), "B roamed to A's new port");
    // B has roamed (it opened A's packets from the new port before delivering them), so a marker
    // B sends now reaches A after every surviving packet of the best-effort stream (ring order,
    // then loopback order).
    const marker = ipv4Udp(V4.b, V4.a, 200, seq++, prng);
    t.ok(b.tun.write(marker), 'marker written into B');
    await a.tun.until(() => a.tun.received.length > aBase && Buffer.compare(a.tun.received.at(-1)!, marker) === 0, 'the marker at A');
    // What reached A of the best-effort stream: an in-order subsequence of it, no duplicates.
    const gotA = a.tun.received.slice(aBase, -1);
    let j = 0;
    let ordered = true;
    for (const p of gotA) {
      while (j < ba.length && Buffer.compare(ba[j]!, p) !== 0) j++;
      if (j === ba.length) {
        ordered = false;
        break;
      }
      j++;
    }
    t.ok(ordered, `B→A during the change: ${gotA.length} of ${ba.length} arrived, in order, no duplicates`);

    // After the change: exactly-once both ways again.
    const ab2 = randomStream(prng, 4, V4.a, V4.b, 300, seq);
    const ba2 = randomStream(prng, 4, V4.b, V4.a, 300, seq + 300);
    seq += 600;
    const [gotB2, gotA2] = await Promise.all([
      stream(a.tun, b.tun, ab2, 'A→B after the port change'),
      stream(b.tun, a.tun, ba2, 'B→A after the port change'),
    ]);
    sameStream(t, gotB2, ab2, 'A→B after the port change', seed);
    sameStream(t, gotA2, ba2, 'B→A after the port change', seed);
    t.equal(peerStats(b.dev).endpoint, endpoint(host, newPort), "B still sends to A's new port");
  }

  for (const s of [a, b]) t.same(s.logLines.filter((l) => l.includes('"level":"error"')), [], `${s.name} logged no errors`);
  t.equal(a.tun.readerEnd, null, "A's memory TUN reader still running");
  t.equal(b.tun.readerEnd, null, "B's memory TUN reader still running");
}

const skip = udpNativeAvailable() ? false : 'the native UDP addon is not built (cd native && npx node-gyp rebuild)';
t.test('workers=1 over 127.0.0.1', { skip }, (t) => scenario(t, 1, '127.0.0.1'));
t.test('workers=2 over 127.0.0.1', { skip }, (t) => scenario(t, 2, '127.0.0.1'));
t.test('workers=2 over ::1', { skip }, (t) => scenario(t, 2, '::1'));

// ---- a crypto worker dies mid-stream ----------------------------------------------------------

/**
 * A's only crypto worker is terminated (as a crash would) in the middle of a 3,000-packet A→B
 * stream. Nothing is lost silently: every packet written into A either arrives at B (once, in
 * order) or is counted, and counted as what happened to it (worker_died) — never as ring_full,
 * encrypt_failed or decrypt_failed. The replacement worker carries the rest of the stream.
 * (Whether the worker dies holding a claimed batch depends on timing: here it usually dies
 * waiting, and the slots it had not claimed go to its replacement. dataplane.test.ts kills one
 * deterministically mid-batch and checks those slots come back DEAD.)
 */
async function workerDeath(t: Test): Promise<void> {
  const seed = testSeed();
  t.comment(`seed ${seed} (replay: WIREPOOL_SEED=${seed})`);
  const prng = makePrng(seed);
  const { a, b } = await makePair(t, 1, '127.0.0.1');
  let seq = 0;
  const first = ipv4Udp(V4.a, V4.b, 100, seq++, prng);
  t.ok(a.tun.write(first), 'first packet written into A');
  await b.tun.untilReceived(1, 'the first packet at B (after the handshake)');

  const N = 3_000;
  const KILL_AT = 1_500;
  const pkts = randomStream(prng, 4, V4.a, V4.b, N, seq);
  const base = b.tun.received.length;
  const lostCounted = (): number =>
    Object.values(nonZeroDrops(a.dev)).reduce((x, y) => x + y, 0) + Object.values(nonZeroDrops(b.dev)).reduce((x, y) => x + y, 0);
  const accounted = (): number => b.tun.received.length - base + lostCounted();
  let killed: Promise<number> | null = null;
  for (let i = 0; i < N;) {
    if (i - accounted() >= 256) {
      await eventually(() => i - accounted() < 256, `packet ${i - 256} to arrive or be counted`);
      continue;
    }
    if (i === KILL_AT && killed === null) {
      // A burst first, so that the worker is likely to die holding a claimed batch.
      while (i < KILL_AT + 512 && a.tun.write(pkts[i]!)) i++;
      const worker = a.dev.dataplane.cryptoWorker(0);
      t.ok(worker, "A's crypto worker 0 is running");
      killed = worker!.terminate();
      continue;
    }
    if (!a.tun.write(pkts[i]!)) {
      await new Promise((resolve) => setTimeout(resolve, 1));
      continue;
    }
    i++;
  }
  await killed;
  await eventually(() => accounted() >= N, `all ${N} packets to arrive or be counted`).catch((err: Error) => {
    throw new Error(`${err.message}: ${b.tun.received.length - base} arrived, drops A ${JSON.stringify(nonZeroDrops(a.dev))} B ${JSON.stringify(nonZeroDrops(b.dev))}`);
  });
  const got = b.tun.received.slice(base);
  let j = 0;
  let ordered = true;
  for (const p of got) {
    while (j < N && Buffer.compare(pkts[j]!, p) !== 0) j++;
    if (j === N) {
      ordered = false;
      break;
    }
    j++;
  }
  t.ok(ordered, `${got.length} of ${N} arrived, in order, no duplicates`);
  const lost = N - got.length;
  const dropsA = nonZeroDrops(a.dev);
  const dropsB = nonZeroDrops(b.dev);
  t.same(dropsB, {}, 'B dropped nothing');
  t.same(Object.keys(dropsA).filter((k) => k !== 'out:worker_died'), [], `A counted its losses as worker_died only (${JSON.stringify(dropsA)})`);
  t.equal(dropsA['out:worker_died'] ?? 0, lost, `every lost packet (${lost}) is counted as worker_died`);
  t.ok(a.logLines.some((l) => l.includes('dataplane thread failed')), 'A logged the dead worker');

  // The replacement worker carries traffic both ways, exactly once.
  const ab = randomStream(prng, 4, V4.a, V4.b, 300, seq + N);
  const ba = randomStream(prng, 4, V4.b, V4.a, 300, seq + N + 300);
  const [gotB, gotA] = await Promise.all([stream(a.tun, b.tun, ab, 'A→B after the restart'), stream(b.tun, a.tun, ba, 'B→A after the restart')]);
  sameStream(t, gotB, ab, 'A→B after the restart', seed);
  sameStream(t, gotA, ba, 'B→A after the restart', seed);
}

t.test('a crypto worker dies mid-stream: every packet arrives or is counted as worker_died; the replacement carries on', { skip }, workerDeath);
