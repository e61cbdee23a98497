// TUN offloads (native/tun.c): GSO split on read, GRO coalescing on write.
//
// 1. Oracle tests, no namespace needed: super-packets built here (IPv4/IPv6, TCP/UDP, odd last
//    segment, FIN/PSH/CWR, wrong hdr_len, sequence and id wrap) are split by the addon's
//    gsoSplit (the code readSlots runs) and compared byte for byte with segments built
//    independently in TypeScript (own checksums, lengths, ids, sequence numbers). Batches of
//    TCP segments go through groCoalesce (writeSlots' vnetHdr+gro path with the writes
//    recorded): expected groupings are checked field by field (virtio header, IP length,
//    IPv4 header checksum, pseudo-header sum in the TCP checksum field), and a seeded random
//    batch checks that splitting what was written gives back every input packet exactly once,
//    in order within each flow.
// 2. Real kernel traffic: two TUNs made in namespace A, one moved to namespace B; worker
//    threads shuttle packets between them with readSlots → writeSlots (both directions, bounded
//    in time). TCP transfers both ways at once over IPv4 and IPv6 must arrive complete with
//    matching SHA-256, large pings (fragmented) must answer, UDP sent with UDP_SEGMENT (USO)
//    must arrive as the right datagrams; the readers must have split super-packets (slots
//    filled > reads) and the writers coalesced (writes < packets). A plain (no offload) run
//    moves a smaller transfer the same way.

import t, { type Test } from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Netns, haveCommand, netnsSkipReason } from './helpers/netns.js';
import { makePrng, testSeed, type Prng } from './helpers/seeded-prng.js';

// Namespaces_ worker threads and real traffic: more than tap's default 30 s on a loaded machine.
t.setTimeout(240_000);

const TUN_MODULE = new URL('../src/io/tun.js', import.meta.url).href;
const { tunNative, TUN_WRITE_OUT, TUN_WRITE_OUT_LEN } = await import(TUN_MODULE) as typeof import('../src/io/tun.js');

let addonSkip: string | false = false;
let native: ReturnType<typeof tunNative> | null = null;
try {
  native = tunNative();
} catch (err) {
  addonSkip = `TUN addon not built: ${(err as Error).message}`;
}
if (os.endianness() !== 'LE') addonSkip = 'virtio header fields are tested as little-endian';

// ---- independent packet building and checking ------------------------------------------------

const TCP_FIN = 0x01, TCP_SYN = 0x02, TCP_RST = 0x04, TCP_PSH = 0x08, TCP_ACK = 0x10, TCP_CWR = 0x80;
const GSO_NONE = 0, GSO_TCPV4 = 1, GSO_UDP = 3, GSO_TCPV6 = 4, GSO_UDP_L4 = 5;

function sum16(b: Uint8Array, start = 0, end = b.length, acc = 0): number {
  let i = start;
  for (; i + 1 < end; i += 2) acc += (b[i]! << 8) | b[i + 1]!;
  if (i < end) acc += b[i]! << 8;
  return acc;
}

function fold(acc: number): number {
  while (acc > 0xffff) acc = (acc & 0xffff) + Math.floor(acc / 0x10000);
  return acc;
}

function pseudoSum(pkt: Uint8Array, v6: boolean, proto: number, l4len: number): number {
  const acc = v6 ? sum16(pkt, 8, 40) : sum16(pkt, 12, 20);
  return acc + proto + Math.floor(l4len / 0x10000) + (l4len & 0xffff);
}

const be16 = (b: Uint8Array, o: number): number => (b[o]! << 8) | b[o + 1]!;

const put16 = (b: Uint8Array, o: number, v: number): void => { b[o] = (v >>> 8) & 0xff; b[o + 1] = v & 0xff; };
const put32 = (b: Uint8Array, o: number, v: number): void => { put16(b, o, (v >>> 16) & 0xffff); put16(b, o + 2, v & 0xffff); };

interface PktSpec {
  v6: boolean;
  proto?: 6 | 17;
  src?: number; // host part of the address
  dst?: number;
  sport: number;
  dport: number;
  seq?: number;
  ack?: number;
  flags?: number;
  window?: number;
  options?: Uint8Array;
  payload: Uint8Array;
  id?: number;
  ttl?: number;
  tos?: number;
  df?: boolean;
}

/** An IPv4/IPv6 TCP or UDP packet with every length and checksum right. */
function buildPacket(s: PktSpec): Uint8Array {
  const proto = s.proto ?? 6;
  const l3 = s.v6 ? 40 : 20;
  const opts = s.options ?? new Uint8Array(0);
  const l4h = proto === 6 ? 20 + opts.length : 8;
  const len = l3 + l4h + s.payload.length;
  const p = new Uint8Array(len);
  if (s.v6) {
    p[0] = 0x60 | ((s.tos ?? 0) >> 4);
    p[1] = ((s.tos ?? 0) & 15) << 4;
    put16(p, 4, len - 40);
    p[6] = proto;
    p[7] = s.ttl ?? 64;
    p.set([0xfd, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, s.src ?? 1], 8);
    p.set([0xfd, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, s.dst ?? 2], 24);
  } else {
    p[0] = 0x45;
    p[1] = s.tos ?? 0;
    put16(p, 2, len);
    put16(p, 4, (s.id ?? 0) & 0xffff);
    put16(p, 6, s.df === false ? 0 : 0x4000);
    p[8] = s.ttl ?? 64;
    p[9] = proto;
    p.set([10, 1, 0, s.src ?? 1], 12);
    p.set([10, 1, 0, s.dst ?? 2], 16);
    put16(p, 10, ~fold(sum16(p, 0, 20)) & 0xffff);
  }
  put16(p, l3, s.sport);
  put16(p, l3 + 2, s.dport);
  if (proto === 6) {
    put32(p, l3 + 4, s.seq ?? 0);
    put32(p, l3 + 8, s.ack ?? 0);
    p[l3 + 12] = ((20 + opts.length) / 4) << 4;
    p[l3 + 13] = s.flags ?? TCP_ACK;
    put16(p, l3 + 14, s.window ?? 502);
    p.set(opts, l3 + 20);
  } else {
    put16(p, l3 + 4, len - l3);
  }
  p.set(s.payload, l3 + l4h);
  const c = ~fold(pseudoSum(p, s.v6, proto, len - l3) + sum16(p, l3, len)) & 0xffff;
  put16(p, l3 + (proto === 6 ? 16 : 6), proto === 17 && c === 0 ? 0xffff : c);
  return p;
}

function ipv4HeaderOk(p: Uint8Array): boolean {
  return fold(sum16(p, 0, (p[0]! & 15) * 4)) === 0xffff;
}

function l4Ok(p: Uint8Array): boolean {
  const v6 = p[0]! >> 4 === 6;
  const l3 = v6 ? 40 : (p[0]! & 15) * 4;
  const proto = v6 ? p[6]! : p[9]!;
  return fold(pseudoSum(p, v6, proto, p.length - l3) + sum16(p, l3, p.length)) === 0xffff;
}

interface VHdr { flags: number; gsoType: number; hdrLen: number; gsoSize: number; csumStart: number; csumOffset: number }

function vhdrBytes(h: VHdr): Uint8Array {
  const b = new Uint8Array(10);
  const dv = new DataView(b.buffer);
  b[0] = h.flags;
  b[1] = h.gsoType;
  dv.setUint16(2, h.hdrLen, true);
  dv.setUint16(4, h.gsoSize, true);
  dv.setUint16(6, h.csumStart, true);
  dv.setUint16(8, h.csumOffset, true);
  return b;
}

function parseVhdr(b: Uint8Array, o = 0): VHdr {
  const dv = new DataView(b.buffer, b.byteOffset + o, 10);
  return { flags: b[o]!, gsoType: b[o + 1]!, hdrLen: dv.getUint16(2, true), gsoSize: dv.getUint16(4, true), csumStart: dv.getUint16(6, true), csumOffset: dv.getUint16(8, true) };
}

const concat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
};

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const pattern = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);
const TS_OPTIONS = Uint8Array.from([1, 1, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0x56, 0x78]); // NOP NOP timestamps

/** Runs the addon's split; returns the segments. */
function split(buf: Uint8Array, stride = 2048): Uint8Array[] | number {
  const out = new Uint8Array(stride * 64);
  const lens = new Int32Array(64);
  const n = native!.gsoSplit(buf, out, stride, lens);
  if (n < 0) return n;
  return Array.from({ length: n }, (_, i) => out.slice(i * stride, i * stride + lens[i]!));
}

/** A super-packet as the kernel hands it: lengths of the whole, L4 checksum field holding the pseudo-header sum. */
function superPacket(s: PktSpec, gso: number, hdrLenLie?: number): Uint8Array {
  const p = buildPacket(s);
  const proto = s.proto ?? 6;
  const l3 = s.v6 ? 40 : 20;
  put16(p, l3 + (proto === 6 ? 16 : 6), fold(pseudoSum(p, s.v6, proto, p.length - l3)));
  const l4h = proto === 6 ? 20 + (s.options?.length ?? 0) : 8;
  const gsoType = proto === 17 ? GSO_UDP_L4 : s.v6 ? GSO_TCPV6 : GSO_TCPV4;
  return concat(vhdrBytes({ flags: 1, gsoType, hdrLen: hdrLenLie ?? l3 + l4h, gsoSize: gso, csumStart: l3, csumOffset: proto === 6 ? 16 : 6 }), p);
}

/** The segments of a super-packet, built independently. */
function expectedSegments(s: PktSpec, gso: number): Uint8Array[] {
  const segs: Uint8Array[] = [];
  const n = Math.max(1, Math.ceil(s.payload.length / gso));
  for (let i = 0; i < n; i++) {
    let flags = s.flags ?? TCP_ACK;
    if (i !== n - 1) flags &= ~(TCP_FIN | TCP_PSH);
    if (i !== 0) flags &= ~TCP_CWR;
    segs.push(buildPacket({
      ...s,
      seq: ((s.seq ?? 0) + i * gso) >>> 0,
      id: ((s.id ?? 0) + i) & 0xffff,
      flags,
      payload: s.payload.subarray(i * gso, Math.min(s.payload.length, (i + 1) * gso)),
    }));
  }
  return segs;
}

t.test('GSO split matches the TypeScript oracle', { skip: addonSkip }, async (t) => {
  const cases: Array<{ name: string; spec: PktSpec; gso: number; hdrLenLie?: number }> = [
    { name: 'IPv4 TCP, odd last segment, FIN|PSH|CWR, options, hdr_len 0', gso: 1000, hdrLenLie: 0,
      spec: { v6: false, sport: 40000, dport: 5201, seq: 1000, ack: 77, flags: TCP_ACK | TCP_PSH | TCP_FIN | TCP_CWR, options: TS_OPTIONS, payload: pattern(10 * 1000 + 333, 1), id: 4242 } },
    { name: 'IPv6 TCP, exact multiple, PSH', gso: 1400,
      spec: { v6: true, sport: 443, dport: 50000, seq: 5, ack: 9, flags: TCP_ACK | TCP_PSH, payload: pattern(5 * 1400, 2) } },
    { name: 'IPv4 TCP, odd gso size, sequence and id wrap, hdr_len too big', gso: 999, hdrLenLie: 200,
      spec: { v6: false, sport: 1, dport: 2, seq: 0xffffff00, ack: 1, payload: pattern(7 * 999 + 1, 3), id: 0xfffe, tos: 0x10, ttl: 3 } },
    { name: 'IPv6 TCP, one segment only', gso: 1400,
      spec: { v6: true, sport: 80, dport: 81, seq: 123, flags: TCP_ACK | TCP_FIN, payload: pattern(100, 4) } },
    { name: 'IPv4 UDP (USO), odd last', gso: 1200,
      spec: { v6: false, proto: 17, sport: 5000, dport: 5202, payload: pattern(3 * 1200 + 1, 5), id: 10 } },
    { name: 'IPv6 UDP (USO), exact multiple', gso: 1232,
      spec: { v6: true, proto: 17, sport: 5000, dport: 5202, payload: pattern(4 * 1232, 6) } },
    { name: 'IPv4 UDP, odd gso size', gso: 333,
      spec: { v6: false, proto: 17, sport: 9, dport: 10, payload: pattern(333 * 5 + 17, 7), id: 65535 } },
  ];
  for (const c of cases) {
    const got = split(superPacket(c.spec, c.gso, c.hdrLenLie));
    const want = expectedSegments(c.spec, c.gso);
    if (typeof got === 'number') {
      t.fail(`${c.name}: split failed with ${got}`);
      continue;
    }
    t.equal(got.length, want.length, `${c.name}: ${want.length} segments`);
    t.same(got.map(hex), want.map(hex), `${c.name}: segments byte for byte`);
    t.ok(got.every((p) => l4Ok(p) && (p[0]! >> 4 === 6 || ipv4HeaderOk(p))), `${c.name}: every checksum verifies`);
    if ((c.spec.proto ?? 6) === 6) {
      const flags = got.map((p) => p[(c.spec.v6 ? 40 : 20) + 13]!);
      t.ok(flags.slice(0, -1).every((f) => (f & (TCP_FIN | TCP_PSH)) === 0), `${c.name}: FIN/PSH only on the last`);
      t.ok(flags.slice(1).every((f) => (f & TCP_CWR) === 0), `${c.name}: CWR only on the first`);
    }
  }
});

t.test('NEEDS_CSUM without GSO is finished; malformed input is refused', { skip: addonSkip }, async (t) => {
  for (const [name, spec] of [
    ['IPv4 UDP', { v6: false, proto: 17, sport: 53, dport: 5353, payload: pattern(101, 8) }],
    ['IPv6 TCP', { v6: true, sport: 22, dport: 2222, seq: 1, ack: 2, payload: pattern(77, 9) }],
    ['IPv4 TCP, no payload (an ACK)', { v6: false, sport: 22, dport: 2222, seq: 1, ack: 2, payload: new Uint8Array(0) }],
  ] as Array<[string, PktSpec]>) {
    const full = buildPacket(spec);
    const partial = full.slice();
    const l3 = spec.v6 ? 40 : 20;
    const at = l3 + (spec.proto === 17 ? 6 : 16);
    put16(partial, at, fold(pseudoSum(partial, spec.v6, spec.proto ?? 6, partial.length - l3)));
    const got = split(concat(vhdrBytes({ flags: 1, gsoType: GSO_NONE, hdrLen: 0, gsoSize: 0, csumStart: l3, csumOffset: at - l3 }), partial));
    t.same(typeof got === 'number' ? got : got.map(hex), [hex(full)], `${name}: checksum finished`);
  }
  const plain = buildPacket({ v6: false, sport: 1, dport: 2, payload: pattern(10, 1) });
  const got = split(concat(vhdrBytes({ flags: 0, gsoType: GSO_NONE, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0 }), plain));
  t.same(typeof got === 'number' ? got : got.map(hex), [hex(plain)], 'a plain packet passes untouched');

  const v6 = superPacket({ v6: true, sport: 1, dport: 2, payload: pattern(3000, 1) }, 1000);
  const wrongType = v6.slice(); wrongType[1] = GSO_TCPV4;
  t.equal(split(wrongType), -1, 'TCPV4 on an IPv6 packet');
  const ufo = v6.slice(); ufo[1] = GSO_UDP;
  t.equal(split(ufo), -1, 'UFO (never negotiated)');
  const v4 = superPacket({ v6: false, sport: 1, dport: 2, payload: pattern(3000, 1) }, 1000);
  const badStart = v4.slice(); badStart[6] = 24;
  t.equal(split(badStart), -1, 'csum_start not at the end of the IPv4 header');
  const zeroGso = v4.slice(); zeroGso[4] = zeroGso[5] = 0;
  t.equal(split(zeroGso), -1, 'gso_size 0');
  t.equal(split(v4.subarray(0, 10 + 30)), -1, 'truncated TCP header');
  const badCsum = concat(vhdrBytes({ flags: 1, gsoType: GSO_NONE, hdrLen: 0, gsoSize: 0, csumStart: 20, csumOffset: 500 }), plain);
  t.equal(split(badCsum), -1, 'checksum offset past the end');
});

// ---- GRO --------------------------------------------------------------------------------------

const SLOT = 2048;

interface Record { hdr: VHdr; pkt: Uint8Array; count: number }

/** Puts packets into slots (in reverse slot order, to exercise the slot list) and coalesces them. */
function coalesce(pkts: Uint8Array[]): { records: Record[]; out: Int32Array } {
  const n = pkts.length;
  const data = new Uint8Array(new SharedArrayBuffer(SLOT * n));
  const slots = new Int32Array(n);
  const lens = new Int32Array(n);
  pkts.forEach((p, i) => {
    slots[i] = n - 1 - i;
    lens[i] = p.length;
    data.set(p, slots[i]! * SLOT + 16);
  });
  const outBuf = new Uint8Array(pkts.reduce((s, p) => s + p.length + 10, 0));
  const outLens = new Int32Array(n);
  const outCounts = new Int32Array(n);
  const out = new Int32Array(TUN_WRITE_OUT_LEN);
  const r = native!.groCoalesce(data, SLOT, slots, lens, n, outBuf, outLens, outCounts, out);
  if (r < 0) throw new Error(`groCoalesce returned ${r}`);
  const records: Record[] = [];
  let o = 0;
  for (let i = 0; i < r; i++) {
    records.push({ hdr: parseVhdr(outBuf, o), pkt: outBuf.slice(o + 10, o + outLens[i]!), count: outCounts[i]! });
    o += outLens[i]!;
  }
  return { records, out };
}

/** Checks a merged record against the rules, independently; returns problems. */
function checkMerged(r: Record): string[] {
  const p = r.pkt;
  const v6 = p[0]! >> 4 === 6;
  const l3 = v6 ? 40 : 20;
  const thl = (p[l3 + 12]! >> 4) * 4;
  const bad: string[] = [];
  if (r.hdr.flags !== 1) bad.push(`flags ${r.hdr.flags}`);
  if (r.hdr.gsoType !== (v6 ? GSO_TCPV6 : GSO_TCPV4)) bad.push(`gso_type ${r.hdr.gsoType}`);
  if (r.hdr.hdrLen !== l3 + thl) bad.push(`hdr_len ${r.hdr.hdrLen}`);
  if (r.hdr.csumStart !== l3 || r.hdr.csumOffset !== 16) bad.push(`csum ${r.hdr.csumStart}/${r.hdr.csumOffset}`);
  if (p.length > 65535) bad.push(`length ${p.length}`);
  if (v6 ? be16(p, 4) !== p.length - 40 : be16(p, 2) !== p.length) bad.push('IP length');
  if (!v6 && !ipv4HeaderOk(p)) bad.push('IPv4 header checksum');
  if (be16(p, l3 + 16) !== fold(pseudoSum(p, v6, 6, p.length - l3))) bad.push('TCP checksum field is not the pseudo-header sum');
  const pay = p.length - l3 - thl;
  if (r.hdr.gsoSize === 0 || Math.ceil(pay / r.hdr.gsoSize) !== r.count) bad.push(`gso_size ${r.hdr.gsoSize} for ${r.count} segments of ${pay} bytes`);
  return bad;
}

/** What the kernel would make of a record: the packets it stands for. */
function unpack(r: Record): Uint8Array[] {
  if (r.hdr.gsoType === GSO_NONE && r.hdr.flags === 0) return [r.pkt];
  const segs = split(concat(vhdrBytes(r.hdr), r.pkt));
  if (typeof segs === 'number') throw new Error(`record does not split: ${segs}`);
  return segs;
}

interface Flow { v6: boolean; sport: number; dport: number; seq: number; ack: number; id: number; options?: Uint8Array }

function seg(f: Flow, len: number, extra: Partial<PktSpec> = {}, seed = 0): Uint8Array {
  const p = buildPacket({ v6: f.v6, sport: f.sport, dport: f.dport, seq: f.seq, ack: f.ack, id: f.id, options: f.options, payload: pattern(len, seed + f.seq), ...extra });
  f.seq = (f.seq + len) >>> 0;
  f.id = (f.id + 1) & 0xffff;
  return p;
}

t.test('GRO coalescing: expected groupings and header fields', { skip: addonSkip }, async (t) => {
  const cases: Array<{ name: string; make: () => Uint8Array[]; groups: number[][] }> = [
    { name: 'one IPv4 flow, shorter last with PSH, options', groups: [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]], make: () => {
      const f: Flow = { v6: false, sport: 5201, dport: 40000, seq: 1, ack: 99, id: 7, options: TS_OPTIONS };
      return [...Array.from({ length: 9 }, () => seg(f, 1368)), seg(f, 500, { flags: TCP_ACK | TCP_PSH })];
    } },
    { name: 'IPv6 flow', groups: [[0, 1, 2, 3]], make: () => {
      const f: Flow = { v6: true, sport: 1, dport: 2, seq: 0xfffffff0, ack: 5, id: 0 };
      return Array.from({ length: 4 }, () => seg(f, 1400));
    } },
    { name: 'two interleaved flows and a UDP packet', groups: [[0, 2, 4], [1, 3, 5], [6]], make: () => {
      const a: Flow = { v6: false, sport: 1, dport: 2, seq: 100, ack: 1, id: 0 };
      const b: Flow = { v6: true, sport: 3, dport: 4, seq: 200, ack: 1, id: 0 };
      return [seg(a, 1000), seg(b, 1200), seg(a, 1000), seg(b, 1200), seg(a, 1000), seg(b, 1200),
        buildPacket({ v6: false, proto: 17, sport: 5, dport: 6, payload: pattern(50, 0) })];
    } },
    { name: 'sequence gap, different ACK, bigger segment, PSH in the middle', groups: [[0, 1], [2, 3], [4], [5, 6], [7], [8]], make: () => {
      const f: Flow = { v6: false, sport: 1, dport: 2, seq: 0, ack: 1, id: 0 };
      const p = [seg(f, 1000), seg(f, 1000)];
      f.seq += 1000; // lost segment
      p.push(seg(f, 1000), seg(f, 1000));
      f.ack = 2;
      p.push(seg(f, 500)); // new ACK: a new run, closed by its short size
      p.push(seg(f, 1000), seg(f, 1000, { flags: TCP_ACK | TCP_PSH }));
      p.push(seg(f, 1000)); // after PSH: starts again
      f.ack = 3;
      p.push(seg(f, 1000));
      return p;
    } },
    { name: 'packets that must not merge', groups: [[0], [1], [2], [3], [4], [5], [6], [7], [8]], make: () => {
      const f: Flow = { v6: false, sport: 1, dport: 2, seq: 0, ack: 1, id: 0 };
      const p = [seg(f, 1000, { flags: TCP_ACK | TCP_SYN }), seg(f, 1000, { flags: TCP_ACK | TCP_FIN }), seg(f, 1000, { flags: TCP_ACK | TCP_RST }),
        seg(f, 1000, { flags: TCP_PSH }), seg(f, 0), seg(f, 1000)];
      const corrupt = seg(f, 1000);
      corrupt[100] = corrupt[100]! ^ 1; // TCP checksum now wrong
      p.push(corrupt);
      const frag = seg(f, 1000, { df: false });
      frag[6] = 0x20; frag[10] = frag[11] = 0; put16(frag, 10, ~fold(sum16(frag, 0, 20)) & 0xffff); // MF
      p.push(frag);
      p.push(seg(f, 1000, { ttl: 1 }));
      return p;
    } },
    { name: 'ToS, TTL, window and options must match', groups: [[0], [1], [2], [3], [4, 5]], make: () => {
      const f: Flow = { v6: false, sport: 1, dport: 2, seq: 0, ack: 1, id: 0, options: TS_OPTIONS };
      return [seg(f, 1000), seg(f, 1000, { tos: 4 }), seg(f, 1000, { ttl: 9, window: 1 }),
        seg(f, 1000, { options: Uint8Array.from([1, 1, 8, 10, 0, 0, 0x12, 0x35, 0, 0, 0x56, 0x78]) }), seg(f, 1000), seg(f, 1000)];
    } },
    { name: 'capped at 64 KiB', groups: [[...Array(46).keys()], [46, 47, 48, 49]], make: () => {
      const f: Flow = { v6: false, sport: 1, dport: 2, seq: 0, ack: 1, id: 0 };
      return Array.from({ length: 50 }, () => seg(f, 1400));
    } },
  ];
  for (const c of cases) {
    const pkts = c.make();
    const { records, out } = coalesce(pkts);
    t.same(records.map((r) => r.count), c.groups.map((g) => g.length), `${c.name}: grouping`);
    t.equal(out[TUN_WRITE_OUT.WRITTEN], pkts.length, `${c.name}: all written`);
    t.equal(out[TUN_WRITE_OUT.COALESCED], pkts.length - records.length, `${c.name}: coalesced count`);
    t.equal(out[TUN_WRITE_OUT.WRITES], records.length, `${c.name}: one write per record`);
    records.forEach((r, i) => {
      const group = c.groups[i] ?? [];
      if (r.count > 1) t.same(checkMerged(r), [], `${c.name}: record ${i} header fields`);
      else t.same({ ...r.hdr, pkt: hex(r.pkt) }, { flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0, pkt: hex(pkts[group[0]!] ?? new Uint8Array()) }, `${c.name}: record ${i} written as is`);
      t.same(unpack(r).map(hex), group.map((j) => hex(pkts[j]!)), `${c.name}: record ${i} splits back into its inputs`);
    });
  }
});

t.test('GRO coalescing of a random batch keeps every packet and the order within each flow', { skip: addonSkip }, async (t) => {
  const seed = testSeed();
  t.comment(`seed ${seed} (WIREPOOL_SEED=${seed} to replay)`);
  for (let round = 0; round < 20; round++) {
    const rng: Prng = makePrng((seed + round) >>> 0);
    const flows: Flow[] = [
      { v6: false, sport: 10, dport: 20, seq: rng.u32(), ack: 1, id: rng.int(65536) },
      { v6: false, sport: 11, dport: 20, seq: rng.u32(), ack: 1, id: rng.int(65536), options: TS_OPTIONS },
      { v6: true, sport: 12, dport: 20, seq: rng.u32(), ack: 1, id: 0 },
      { v6: true, sport: 13, dport: 20, seq: rng.u32(), ack: 1, id: 0 },
    ];
    const pkts: Uint8Array[] = [];
    const flowOf: number[] = [];
    const n = 100 + rng.int(200); // crosses the 128-packet chunks
    for (let i = 0; i < n; i++) {
      if (rng.chance(0.05)) {
        pkts.push(buildPacket({ v6: rng.chance(0.5), proto: 17, sport: 99, dport: 99, payload: rng.bytes(1 + rng.int(1000)) }));
        flowOf.push(-1);
        continue;
      }
      const fi = rng.int(flows.length);
      const f = flows[fi]!;
      const r = rng.float();
      const size = r < 0.8 ? 1300 : r < 0.9 ? 1 + rng.int(1300) : 0;
      if (rng.chance(0.03)) f.seq = (f.seq + 1300) >>> 0; // a gap
      if (rng.chance(0.03)) f.ack++;
      const flags = rng.chance(0.05) ? TCP_ACK | TCP_PSH : rng.chance(0.02) ? TCP_ACK | TCP_FIN : TCP_ACK;
      const p = buildPacket({ v6: f.v6, sport: f.sport, dport: f.dport, seq: f.seq, ack: f.ack, id: f.id, options: f.options, flags, payload: rng.bytes(size) });
      f.seq = (f.seq + size) >>> 0;
      f.id = (f.id + 1) & 0xffff;
      if (rng.chance(0.02)) p[p.length - 1] = p[p.length - 1]! ^ 0x80; // corrupt (or tweak a header byte)
      pkts.push(p);
      flowOf.push(fi);
    }
    const { records, out } = coalesce(pkts);
    const index = new Map<string, number[]>();
    pkts.forEach((p, i) => { const k = hex(p); index.set(k, [...(index.get(k) ?? []), i]); });
    const seen: number[] = [];
    const problems: string[] = [];
    for (const r of records) {
      if (r.count > 1) problems.push(...checkMerged(r));
      const parts = unpack(r);
      if (parts.length !== r.count) problems.push(`record of ${r.count} unpacks into ${parts.length}`);
      for (const part of parts) {
        const hits = index.get(hex(part));
        if (!hits || hits.length === 0) { problems.push('a written packet is not an input'); continue; }
        seen.push(hits.shift()!);
      }
    }
    const perFlow = flows.map((_, fi) => seen.filter((i) => flowOf[i] === fi));
    const sorted = (xs: number[]): boolean => xs.every((x, i) => i === 0 || xs[i - 1]! < x);
    if (!(problems.length === 0 && seen.length === n && new Set(seen).size === n && perFlow.every(sorted) && out[TUN_WRITE_OUT.WRITTEN] === n)) {
      t.fail(`round ${round} (seed ${seed}): ${problems.slice(0, 5).join('; ')} seen ${seen.length}/${n}, order ok ${perFlow.map(sorted)}`);
      return;
    }
    if (round === 0) t.comment(`round 0: ${n} packets → ${records.length} writes`);
  }
  t.pass('20 random batches: every packet exactly once, flow order kept, merged headers right');
});

// ---- real kernel traffic through two TUNs -----------------------------------------------------

// Runs in namespace B: TCP server (both directions at once, SHA-256 of each) and UDP receivers.
const SERVER = String.raw`
import net from 'node:net';
import dgram from 'node:dgram';
import crypto from 'node:crypto';
const sendBytes = Number(process.argv[2]);
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');
// allowHalfOpen: each side sends all of its data whatever the other side does.
const srv = net.createServer({ allowHalfOpen: true }, (c) => {
  const hin = crypto.createHash('sha256'), hout = crypto.createHash('sha256');
  let got = 0, sent = 0, inDone = false, outDone = false;
  const remote = c.remoteAddress;
  const finish = () => { if (inDone && outDone) say({ tcp: remote, got, sha: hin.digest('hex'), sent, shaSent: hout.digest('hex') }); };
  c.on('data', (d) => { got += d.length; hin.update(d); });
  c.on('end', () => { inDone = true; finish(); });
  c.on('error', (e) => say({ error: e.message }));
  const pump = () => {
    while (sent < sendBytes) {
      const b = crypto.randomBytes(Math.min(1 << 18, sendBytes - sent));
      hout.update(b); sent += b.length;
      if (!c.write(b)) { c.once('drain', pump); return; }
    }
    c.end(() => { outDone = true; finish(); });
  };
  pump();
});
srv.listen(5201, '::', () => say({ listening: true }));
for (const type of ['udp4', 'udp6']) {
  const s = dgram.createSocket({ type, ipv6Only: type === 'udp6' });
  s.on('message', (m) => {
    let ok = true;
    for (let j = 1; j < m.length; j++) if (m[j] !== (m[0] + j) % 251) { ok = false; break; }
    say({ udp: type, len: m.length, first: m[0], ok });
  });
  s.bind(5202);
}
`;

// Runs in namespace A: node probe.mjs <tun.js URL> <namespace B> <server.mjs> <plain|offload> <MiB>.
const PROBE = String.raw`
import { execFileSync, spawn } from 'node:child_process';
import net from 'node:net';
import crypto from 'node:crypto';
import { Worker } from 'node:worker_threads';
const [tunUrl, nsB, serverPath, mode, mib] = process.argv.slice(2);
const tun = await import(tunUrl);
const out = { mode };
const offload = mode === 'offload';
const ip = (...a) => execFileSync('ip', a, { timeout: 5000 }).toString();
const a = tun.createTun('wpta', 1420, { offload });
const b = tun.createTun('wptb', 1420, { offload });
out.devices = [a, b].map((d) => ({ vnetHdr: d.vnetHdr, offloads: d.offloads, uso: d.uso }));
ip('link', 'set', 'dev', 'wptb', 'netns', nsB);
ip('addr', 'add', '10.77.0.1/24', 'dev', 'wpta');
ip('-6', 'addr', 'add', 'fd77::1/64', 'dev', 'wpta', 'nodad');
ip('link', 'set', 'dev', 'wpta', 'up');
ip('-n', nsB, 'addr', 'add', '10.77.0.2/24', 'dev', 'wptb');
ip('-n', nsB, '-6', 'addr', 'add', 'fd77::2/64', 'dev', 'wptb', 'nodad');
ip('-n', nsB, 'link', 'set', 'dev', 'wptb', 'up');

// Shuttle workers: readSlots on one device, writeSlots on the other; stats in a shared row each.
const STATS = 20;
const ctl = new Int32Array(new SharedArrayBuffer(4));
const stats = new Float64Array(new SharedArrayBuffer(8 * STATS * 2));
const WORKER = String.raw` + '`' + String.raw`
const { workerData: w, parentPort } = require('node:worker_threads');
(async () => {
  const nat = (await import(w.tunUrl)).tunNative();
  const SLOT = 2048, N = 64;
  const data = new Uint8Array(new SharedArrayBuffer(SLOT * N));
  const meta = new Int32Array(new SharedArrayBuffer(N * 32 * 4));
  const slots = Int32Array.from({ length: N }, (_, i) => N - 1 - i);
  const lens = new Int32Array(N);
  const rout = new Int32Array(8), wout = new Int32Array(7);
  const ctl = new Int32Array(w.ctl), st = new Float64Array(w.stats, w.row * 8 * 20, 20);
  const deadline = Date.now() + w.maxMs;
  for (let it = 0; it < 10000000 && Atomics.load(ctl, 0) === 0 && Date.now() < deadline; it++) {
    const n = nat.readSlots(w.from, w.wake, w.fromVnet, data, SLOT, meta, slots, N, 100, rout);
    for (let k = 0; k < 7; k++) st[k] += rout[k];
    st[7] = Math.max(st[7], rout[7]);
    if (n < 0) { st[17] = n; break; }
    if (n === 0) continue;
    st[18] = Math.max(st[18], n);
    for (let i = 0; i < n; i++) lens[i] = meta[slots[i] * 32 + 1];
    const h = nat.writeSlots(w.to, w.toVnet, data, SLOT, meta, slots, lens, n, w.gro, wout);
    for (let k = 0; k < 7; k++) if (k !== 2 && k !== 5) st[8 + k] += wout[k];
    if (wout[2]) st[10] = wout[2];
    if (wout[5] !== 0 || h !== n) { st[13] = wout[5] || -1; break; }
  }
  parentPort.postMessage('done');
})();
` + '`' + String.raw`;
const names = ['reads', 'super', 'segments', 'tooBig', 'malformed', 'transient', 'bytesRead', 'maxPending',
  'written', 'writeErrors', 'lastErrno', 'writes', 'coalesced', 'gone', 'bytesWritten', '', '', 'readGone', 'maxBatch'];
const snapshot = (row) => Object.fromEntries(names.map((k, i) => [k, stats[row * STATS + i]]).filter(([k]) => k));
const workers = [[a, b, 0], [b, a, 1]].map(([from, to, row]) => new Worker(WORKER, { eval: true, workerData: {
  tunUrl, ctl: ctl.buffer, stats: stats.buffer, row, from: from.fd, wake: from.wakeFd, fromVnet: from.vnetHdr,
  to: to.fd, toVnet: to.vnetHdr, gro: true, maxMs: 120000 } }));
out.workerErrors = [];
workers.forEach((w) => w.on('error', (e) => out.workerErrors.push(String(e && e.stack || e))));
const exited = workers.map((w) => new Promise((r) => w.once('exit', r)));

const server = spawn('ip', ['netns', 'exec', nsB, process.execPath, serverPath, String(Number(mib) * 1048576)], { stdio: ['ignore', 'pipe', 'inherit'] });
const lines = [];
let onLine = () => {};
let buf = '';
server.stdout.on('data', (d) => { buf += d; let i; while ((i = buf.indexOf('\n')) >= 0) { lines.push(JSON.parse(buf.slice(0, i))); buf = buf.slice(i + 1); onLine(); } });
const waitLine = (pred, ms) => new Promise((resolve) => {
  const timer = setTimeout(() => { onLine = () => {}; resolve(null); }, ms);
  const check = () => { const l = lines.find(pred); if (l) { clearTimeout(timer); onLine = () => {}; resolve(l); } };
  onLine = check; check();
});
await waitLine((l) => l.listening, 10000);

const transfer = (host, bytes) => new Promise((resolve) => {
  const hin = crypto.createHash('sha256'), hout = crypto.createHash('sha256');
  let got = 0, sent = 0, inDone = false, outDone = false, settled = false;
  const t0 = Date.now();
  const done = (r) => { if (!settled) { settled = true; clearTimeout(timer); resolve(r); } };
  const c = net.connect({ port: 5201, host, allowHalfOpen: true });
  const timer = setTimeout(() => { c.destroy(); done({ error: 'timeout', got, sent }); }, 60000);
  const finish = () => { if (inDone && outDone) done({ got, sha: hin.digest('hex'), sent, shaSent: hout.digest('hex'), ms: Date.now() - t0 }); };
  c.on('data', (d) => { got += d.length; hin.update(d); });
  c.on('end', () => { inDone = true; finish(); });
  c.on('error', (e) => done({ error: e.message, got, sent }));
  const pump = () => {
    while (sent < bytes) {
      const b = crypto.randomBytes(Math.min(1 << 18, bytes - sent));
      hout.update(b); sent += b.length;
      if (!c.write(b)) { c.once('drain', pump); return; }
    }
    c.end(() => { outDone = true; finish(); });
  };
  c.on('connect', pump);
});

const bytes = Number(mib) * 1048576;
out.tcp4 = { client: await transfer('10.77.0.2', bytes), server: await waitLine((l) => l.tcp && l.tcp.includes('10.77.0.1'), 10000) };
out.tcp6 = { client: await transfer('fd77::2', bytes), server: await waitLine((l) => l.tcp === 'fd77::1', 10000) };
const ping = (args) => { try { execFileSync('ping', args, { timeout: 15000, stdio: 'ignore' }); return 0; } catch (e) { return e.status ?? -1; } };
out.ping = {
  v4mtu: ping(['-c', '3', '-i', '0.2', '-W', '2', '-s', '1392', '10.77.0.2']),
  v4frag: ping(['-c', '3', '-i', '0.2', '-W', '2', '-s', '8000', '10.77.0.2']),
  v6frag: ping(['-6', '-c', '3', '-i', '0.2', '-W', '2', '-s', '3000', 'fd77::2']),
};
if (offload && process.env.PROBE_PYTHON) {
  const before = snapshot(0).super;
  const send = (fam, host) => execFileSync(process.env.PROBE_PYTHON, ['-c',
    'import socket,sys;s=socket.socket(socket.' + fam + ',socket.SOCK_DGRAM);s.setsockopt(17,103,1200);s.sendto(bytes(j%251 for j in range(14000)),(sys.argv[1],5202))', host], { timeout: 10000 });
  send('AF_INET', '10.77.0.2');
  send('AF_INET6', 'fd77::2');
  await waitLine(() => lines.filter((l) => l.udp).length >= 24, 5000);
  out.udp = { super: snapshot(0).super - before, datagrams: lines.filter((l) => l.udp) };
}
Atomics.store(ctl, 0, 1);
a.wake(); b.wake();
await Promise.all(exited);
out.stats = { aToB: snapshot(0), bToA: snapshot(1) };
server.kill();
a.close(); b.close();
console.log(JSON.stringify(out));
process.exit(0);
`;

async function runTraffic(t: Test, mode: 'offload' | 'plain', mib: number): Promise<any> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wirepool-tunoff-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'probe.mjs'), PROBE);
  fs.writeFileSync(path.join(dir, 'server.mjs'), SERVER);
  const nsA = await Netns.create('tunoffA');
  t.teardown(() => nsA.destroy());
  const nsB = await Netns.create('tunoffB');
  t.teardown(() => nsB.destroy());
  const python = ['python3', '/usr/bin/python3'].find((p) => haveCommand(p));
  const argv = [process.execPath, path.join(dir, 'probe.mjs'), TUN_MODULE, nsB.name, path.join(dir, 'server.mjs'), mode, String(mib)];
  // `env` passes the python path for the UDP_SEGMENT sender (the probe skips that phase without it).
  const r = python
    ? await nsA.exec('env', [`PROBE_PYTHON=${python}`, ...argv], { timeoutMs: 240_000 })
    : await nsA.exec(argv[0]!, argv.slice(1), { timeoutMs: 240_000 });
  t.equal(r.code, 0, 'probe ran');
  if (r.code !== 0) {
    t.comment(r.stderr.slice(-4000));
    return null;
  }
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

function checkTransfers(t: Test, out: any, bytes: number): void {
  for (const fam of ['tcp4', 'tcp6'] as const) {
    const { client, server } = out[fam];
    t.notOk(client.error, `${fam}: no client error`);
    t.ok(server, `${fam}: server reported`);
    if (!server) continue;
    t.equal(client.sent, bytes, `${fam}: client sent all`);
    t.equal(server.got, bytes, `${fam}: server got ${bytes} bytes`);
    t.equal(server.sha, client.shaSent, `${fam}: A→B data intact (SHA-256)`);
    t.equal(client.got, bytes, `${fam}: client got ${bytes} bytes`);
    t.equal(client.sha, server.shaSent, `${fam}: B→A data intact (SHA-256)`);
  }
  t.same(out.ping, { v4mtu: 0, v4frag: 0, v6frag: 0 }, 'large pings answered (IPv4 full-MTU and fragmented, IPv6 fragmented)');
  for (const dir of ['aToB', 'bToA'] as const) {
    const s = out.stats[dir];
    t.equal(s.readGone, 0, `${dir}: reader never saw the device gone`);
    t.equal(s.gone, 0, `${dir}: writer never saw the device gone`);
    t.equal(s.malformed, 0, `${dir}: nothing malformed`);
    t.equal(s.tooBig, 0, `${dir}: nothing too big`);
    t.ok(s.bytesWritten > 0 && s.bytesWritten <= s.bytesRead, `${dir}: bytes counted`);
  }
}

t.test('real TCP/UDP traffic through two offloading TUNs', { skip: addonSkip || netnsSkipReason }, async (t) => {
  const mib = 32;
  const out = await runTraffic(t, 'offload', mib);
  if (out === null) return;
  t.comment(JSON.stringify({ devices: out.devices, ms4: out.tcp4.client.ms, ms6: out.tcp6.client.ms, stats: out.stats }));
  t.ok(out.devices.every((d: any) => d.vnetHdr && (d.offloads & 0x07) === 0x07), 'both devices have the virtio header with CSUM|TSO4|TSO6');
  checkTransfers(t, out, mib * 1048576);
  for (const dir of ['aToB', 'bToA'] as const) {
    const s = out.stats[dir];
    t.ok(s.super > 0, `${dir}: the reader got GSO super-packets (${s.super})`);
    t.ok(s.segments + (s.reads - s.super) > s.reads, `${dir}: slots filled (${s.segments + s.reads - s.super}) > reads (${s.reads})`);
    t.ok(s.coalesced > 0 && s.writes < s.written, `${dir}: the writer coalesced (${s.written} packets in ${s.writes} writes)`);
    t.equal(s.writeErrors, 0, `${dir}: no write errors`);
  }
  if (out.devices[0].uso && out.udp) {
    const d = out.udp.datagrams as Array<{ udp: string; len: number; first: number; ok: boolean }>;
    const want = Array.from({ length: 12 }, (_, k) => ({ len: k < 11 ? 1200 : 800, first: (k * 1200) % 251, ok: true }));
    for (const fam of ['udp4', 'udp6']) {
      t.same(d.filter((x) => x.udp === fam).map(({ len, first, ok }) => ({ len, first, ok })), want, `${fam}: UDP_SEGMENT send arrived as 12 right datagrams`);
    }
    t.ok(out.udp.super >= 2, `USO: the reader split UDP super-packets (${out.udp.super})`);
  } else {
    t.comment('USO not accepted by this kernel or no python3: UDP offload traffic not tested');
  }
});

t.test('real TCP traffic through two plain TUNs (offloads off)', { skip: addonSkip || netnsSkipReason }, async (t) => {
  const mib = 4;
  const out = await runTraffic(t, 'plain', mib);
  if (out === null) return;
  t.same(out.devices, [{ vnetHdr: false, offloads: 0, uso: false }, { vnetHdr: false, offloads: 0, uso: false }], 'no virtio header');
  checkTransfers(t, out, mib * 1048576);
  for (const dir of ['aToB', 'bToA'] as const) {
    const s = out.stats[dir];
    t.equal(s.super, 0, `${dir}: no super-packets`);
    t.equal(s.coalesced, 0, `${dir}: nothing coalesced`);
    t.equal(s.writes, s.written, `${dir}: one write per packet`);
  }
});
