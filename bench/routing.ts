// Benchmark: the main thread's per-packet lookups at 10 and 10,000 peers.
// - Allowed-IPs (src/protocol/allowedips.ts), called the way Device.route()/onOpened() call it:
//   lookupV4/lookupV6 on an address inside a packet buffer. Each peer owns a host route
//   (/32 and /128: answered by the host-route hash) and a subnet (/24 and /64: a trie walk);
//   plus IPv4 misses (no route). Targets are spread uniformly over the peers in random order
//   (4096 distinct addresses, so large tables do not sit in L1).
// - Receiver-index table (src/protocol/indextable.ts): get() of a live index (3 per peer, as
//   with current/previous/next keypairs) and of an unknown one.
// Each lookup result is checked against the expected peer once before timing.
// Run: node dist/bench/routing.js [ms-per-row]   (default 300 ms per row, ~7 s in total)

import { randomInt } from 'node:crypto';
import { AllowedIPs } from '../src/protocol/allowedips.js';
import { IndexTable } from '../src/protocol/indextable.js';
import { consume, nsPerOp } from './harness/timing.js';

interface FakePeer {
  id: number;
}

const TARGETS = 4096;
const budgetMs = Number(process.argv[2] ?? 300);

/** Address bytes for peer i: a = kind-specific prefix bytes, then i spread over the rest. */
const v4Host = (i: number): number[] => [100, 64 + (i >> 16), (i >> 8) & 255, i & 255];
const v4Subnet = (i: number): number[] => [10, i >> 8, i & 255, 0]; // /24
const v6Host = (i: number): number[] => [0xfd, 0x01, ...new Array<number>(10).fill(0), 0, 0, (i >> 8) & 255, i & 255];
const v6Subnet = (i: number): number[] => [0xfd, 0x00, 0, 0, 0, 0, (i >> 8) & 255, i & 255, 0, 0, 0, 0, 0, 0, 0, 0]; // /64

interface Row {
  name: string;
  ns10: number;
  ns10k: number;
}

function routingRows(peerCount: number): Map<string, number> {
  const table = new AllowedIPs<FakePeer>();
  const peers: FakePeer[] = [];
  for (let i = 0; i < peerCount; i++) {
    const p = { id: i };
    peers.push(p);
    table.insert(Uint8Array.from(v4Host(i)), 32, p);
    table.insert(Uint8Array.from(v4Subnet(i)), 24, p);
    table.insert(Uint8Array.from(v6Host(i)), 128, p);
    table.insert(Uint8Array.from(v6Subnet(i)), 64, p);
  }
  const out = new Map<string, number>();
  const cases: { name: string; width: 4 | 16; addr: (i: number) => number[]; expect: (i: number) => FakePeer | undefined }[] = [
    { name: 'allowed-IPs v4, host route (/32)', width: 4, addr: v4Host, expect: (i) => peers[i] },
    { name: 'allowed-IPs v4, in a /24 (trie walk)', width: 4, addr: (i) => { const a = v4Subnet(i); a[3] = 1 + (i % 250); return a; }, expect: (i) => peers[i] },
    { name: 'allowed-IPs v4, no route', width: 4, addr: (i) => [198, 18, (i >> 8) & 255, i & 255], expect: () => undefined },
    { name: 'allowed-IPs v6, host route (/128)', width: 16, addr: v6Host, expect: (i) => peers[i] },
    { name: 'allowed-IPs v6, in a /64 (trie walk)', width: 16, addr: (i) => { const a = v6Subnet(i); a[15] = 1 + (i % 250); return a; }, expect: (i) => peers[i] },
  ];
  for (const c of cases) {
    // One packet-like buffer per target with the address at offset 16 (IPv4 destination field).
    const stride = 64;
    const buf = new Uint8Array(TARGETS * stride);
    for (let t = 0; t < TARGETS; t++) {
      const i = randomInt(peerCount);
      buf.set(c.addr(i), t * stride + 16);
      const got = c.width === 4 ? table.lookupV4(buf, t * stride + 16) : table.lookupV6(buf, t * stride + 16);
      if (got !== c.expect(i)) throw new Error(`${c.name}: wrong peer for target ${t} (peer ${i})`);
    }
    let t = 0;
    const batch = c.width === 4
      ? () => {
          let acc = 0;
          for (let k = 0; k < 256; k++) {
            acc += table.lookupV4(buf, t * stride + 16)?.id ?? 1;
            t = (t + 1) & (TARGETS - 1);
          }
          consume(acc);
        }
      : () => {
          let acc = 0;
          for (let k = 0; k < 256; k++) {
            acc += table.lookupV6(buf, t * stride + 16)?.id ?? 1;
            t = (t + 1) & (TARGETS - 1);
          }
          consume(acc);
        };
    out.set(c.name, nsPerOp(batch, 256, budgetMs));
  }

  // Receiver indices: 3 live per peer (current, previous, next keypair).
  const index = new IndexTable<FakePeer>(() => randomInt(2 ** 32));
  const live: number[] = [];
  for (const p of peers) for (let k = 0; k < 3; k++) live.push(index.allocate(p));
  const hits = new Uint32Array(TARGETS);
  const misses = new Uint32Array(TARGETS);
  for (let t = 0; t < TARGETS; t++) {
    hits[t] = live[randomInt(live.length)]!;
    let m: number;
    do m = randomInt(1, 2 ** 32); while (index.get(m) !== undefined);
    misses[t] = m;
  }
  for (const [name, keys, hit] of [['index table, live index', hits, true], ['index table, unknown index', misses, false]] as const) {
    for (let t = 0; t < TARGETS; t++) if ((index.get(keys[t]!) !== undefined) !== hit) throw new Error(`${name}: wrong answer`);
    let t = 0;
    out.set(name, nsPerOp(() => {
      let acc = 0;
      for (let k = 0; k < 256; k++) {
        acc += index.get(keys[t]!)?.id ?? 1;
        t = (t + 1) & (TARGETS - 1);
      }
      consume(acc);
    }, 256, budgetMs));
  }
  return out;
}

const small = routingRows(10);
const large = routingRows(10_000);
const rows: Row[] = [...small.keys()].map((name) => ({ name, ns10: small.get(name)!, ns10k: large.get(name)! }));
const width = Math.max(...rows.map((r) => r.name.length));
console.log(`${'lookup'.padEnd(width)}  ${'10 peers'.padStart(10)}  ${'10,000 peers'.padStart(13)}   (ns per lookup)`);
for (const r of rows) console.log(`${r.name.padEnd(width)}  ${r.ns10.toFixed(1).padStart(10)}  ${r.ns10k.toFixed(1).padStart(13)}`);
