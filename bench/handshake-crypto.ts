// Benchmark: the handshake's arithmetic, per primitive and per stage, for each Crypto
// implementation (src/crypto/crypto.ts: native = native/handshake.c, node:crypto = nodeApiCrypto,
// noble = nobleCrypto). No network, no threads: everything runs on this thread.
//
// 1. Primitives: ns per call, the inputs a handshake uses (32-byte keys and hashes, the 116-byte
//    mac1 input, the 32-byte static / 12-byte timestamp fields with a 32-byte ad). X25519 twice:
//    with the same key arrays every call (node:crypto's KeyObject cache hits: the static-static
//    case) and with a fresh peer-key array every call (an initiation's ephemeral: node:crypto
//    imports a KeyObject each time).
// 2. Stages: real handshakes between two sans-I/O Engines (src/protocol/engine.ts; the responder
//    holds --peers configured peers), hooks doing nothing, a fake clock. The Crypto handed to the
//    engines is wrapped: every call is timed and booked to its stage (the n-th DH of a message is
//    es, ee or se by the order noise.ts does them). "engine + JS" is the whole call minus the
//    booked primitives: the mac1 check (cookie.ts, pure JS), peer lookup, index table, keypair,
//    timers, GC. The totals are of separate runs without the per-call timers (the same handshakes);
//    the booked stages have their timers' calibrated cost taken out. The responder's mac1 check
//    also gets a row of its own (measured alone).
//
// Time is process CPU time (process.cpuUsage: user + system, this thread and V8's helpers; per
// stage, read before and after every primitive call, that read's own cost calibrated and taken
// out of the totals), best of several short interleaved runs, so that other load on a shared
// machine disturbs it less.
//
// Run: node dist/bench/handshake-crypto.js [--peers N] [--runs R] [--json FILE]

import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { type Crypto, kdf1, kdf2, kdf3, nativeCrypto, nobleCrypto, nodeApiCrypto, nodeCryptoBackend } from '../src/crypto/crypto.js';
import { nativeHandshake, nativeHandshakeError } from '../src/crypto/native-handshake.js';
import { CookieChecker } from '../src/protocol/cookie.js';
import { type Endpoint, endpointFromBytes, Sent } from '../src/protocol/endpoint.js';
import { Engine, type EngineHooks } from '../src/protocol/engine.js';

const args = process.argv.slice(2);
const opt = (name: string, def: string): string => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1]! : def;
};
const PEERS = Number(opt('--peers', '3000'));
const RUNS = Number(opt('--runs', '7'));
const JSON_OUT = opt('--json', '');

const impls: [string, Crypto][] = [
  ...(nativeCrypto ? [['native', nativeCrypto] as [string, Crypto]] : []),
  ['node:crypto', nodeApiCrypto],
  ['noble', nobleCrypto],
];

/** CPU µs of this process so far. */
function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** CPU milliseconds of this process so far (the stage timer). */
const cpuMs = (): number => cpuUs() / 1000;

/** Best (lowest) CPU ns per call over RUNS interleaved runs of ~budgetMs each. */
function measureBest(fns: (() => void)[], budgetMs = 25): number[] {
  const best = fns.map(() => Infinity);
  for (let r = 0; r < RUNS; r++) {
    for (const [i, fn] of fns.entries()) {
      for (let j = 0; j < 20; j++) fn();
      let calls = 0;
      const c0 = cpuUs();
      const t0 = performance.now();
      while (performance.now() - t0 < budgetMs) {
        for (let j = 0; j < 16; j++) fn();
        calls += 16;
      }
      best[i] = Math.min(best[i]!, ((cpuUs() - c0) * 1000) / calls);
    }
  }
  return best;
}

const rnd = (n: number): Uint8Array => nodeApiCrypto.randomBytes(n);
const fmt = (ns: number): string => (ns >= 10_000 ? `${(ns / 1000).toFixed(1)} µs` : `${Math.round(ns)} ns`);

// ───────────────────────── 1. primitives ─────────────────────────

interface PrimRow { name: string; ns: Record<string, number> }

function primitives(): PrimRow[] {
  const k32 = rnd(32);
  const h32 = rnd(32);
  const d32 = rnd(32);
  const mac1In = rnd(116);
  const ad = rnd(32);
  const st = rnd(32);
  const ts = rnd(12);
  const cookie = rnd(16);
  const xnonce = rnd(24);
  const priv = nobleCrypto.generatePrivateKey();
  const peerPub = nobleCrypto.publicKey(nobleCrypto.generatePrivateKey());
  const pubs = Array.from({ length: 64 }, () => nobleCrypto.publicKey(nobleCrypto.generatePrivateKey()));
  let pi = 0;
  const cases: [string, (c: Crypto) => () => void][] = [
    ['hash (BLAKE2s-256, 32+32 B: mixHash)', (c) => () => c.hash(h32, d32)],
    ['hmac (HMAC-BLAKE2s, 32 B key, 32 B)', (c) => () => c.hmac(k32, d32)],
    ['KDF1 (32 B input)', (c) => () => kdf1(c, k32, d32)],
    ['KDF2 (32 B input)', (c) => () => kdf2(c, k32, d32)],
    ['KDF3 (32 B input)', (c) => () => kdf3(c, k32, d32)],
    ['mac (keyed BLAKE2s-128, mac1 of an initiation)', (c) => () => c.mac(k32, mac1In)],
    ['aeadSeal 32 B + 32 B ad (static)', (c) => () => c.aeadSeal(k32, 0, st, ad)],
    ['aeadOpen 32 B + 32 B ad (static)', (c) => { const s = c.aeadSeal(k32, 0, st, ad); return () => c.aeadOpen(k32, 0, s, ad); }],
    ['aeadOpen 12 B + 32 B ad (timestamp)', (c) => { const s = c.aeadSeal(k32, 0, ts, ad); return () => c.aeadOpen(k32, 0, s, ad); }],
    ['aeadSeal 0 B + 32 B ad (response)', (c) => () => c.aeadSeal(k32, 0, new Uint8Array(0), ad)],
    ['xaeadSeal 16 B + 16 B ad (cookie)', (c) => () => c.xaeadSeal(k32, xnonce, cookie, ad.subarray(0, 16))],
    ['xaeadOpen 16 B + 16 B ad (cookie)', (c) => { const s = c.xaeadSeal(k32, xnonce, cookie, ad.subarray(0, 16)); return () => c.xaeadOpen(k32, xnonce, s, ad.subarray(0, 16)); }],
    ['generatePrivateKey', (c) => () => c.generatePrivateKey()],
    ['publicKey (new private key array)', (c) => () => c.publicKey(c.generatePrivateKey())],
    ['dh, same key arrays (static-static)', (c) => () => c.dh(priv, peerPub)],
    ['dh, fresh peer key array (an ephemeral)', (c) => () => c.dh(priv, pubs[pi++ & 63]!.slice())],
  ];
  const rows: PrimRow[] = [];
  for (const [name, make] of cases) {
    const fns = impls.map(([, c]) => make(c));
    const slow = name.startsWith('dh') || name.startsWith('publicKey');
    const ns = measureBest(fns, slow ? 40 : 20);
    rows.push({ name, ns: Object.fromEntries(impls.map(([n], i) => [n, ns[i]!])) });
    process.stderr.write('.');
  }
  process.stderr.write('\n');
  return rows;
}

// ───────────────────────── 2. stages ─────────────────────────

type Role = 'responder' | 'initiator-send' | 'initiator-receive';

/** A Crypto whose calls are timed and booked to a stage of the current message. */
class TracedCrypto {
  /** Stage → [CPU ms, calls]. */
  readonly booked = new Map<string, [number, number]>();
  calls = 0;
  role: Role = 'responder';
  private dhCount = 0;
  readonly crypto: Crypto;

  constructor(readonly inner: Crypto, traced = true) {
    const book = (stage: string, t0: number): void => {
      const e = this.booked.get(stage);
      const dt = cpuMs() - t0;
      if (e) { e[0] += dt; e[1]++; } else this.booked.set(stage, [dt, 1]);
      this.calls++;
    };
    const dhNames: Record<Role, string[]> = {
      'responder': ['DH es (static × ephemeral)', 'DH ee', 'DH se'],
      'initiator-send': ['DH es (ephemeral × static)'],
      'initiator-receive': ['DH ee', 'DH se'],
    };
    const c = inner;
    if (!traced) {
      this.crypto = c;
      return;
    }
    this.crypto = {
      hash: (...p) => { const t = cpuMs(); const r = c.hash(...p); book('hash (mixHash)', t); return r; },
      hmac: (k, ...p) => { const t = cpuMs(); const r = c.hmac(k, ...p); book('KDF / HMAC', t); return r; },
      mac: (k, ...p) => { const t = cpuMs(); const r = c.mac(k, ...p); book('mac1 (outgoing)', t); return r; },
      aeadSeal: (k, n, p, a) => { const t = cpuMs(); const r = c.aeadSeal(k, n, p, a); book('AEAD seal', t); return r; },
      aeadOpen: (k, n, p, a) => { const t = cpuMs(); const r = c.aeadOpen(k, n, p, a); book('AEAD open', t); return r; },
      xaeadSeal: c.xaeadSeal,
      xaeadOpen: c.xaeadOpen,
      generatePrivateKey: () => { const t = cpuMs(); const r = c.generatePrivateKey(); book('ephemeral: random + clamp', t); return r; },
      publicKey: (k) => { const t = cpuMs(); const r = c.publicKey(k); book('ephemeral: public key', t); return r; },
      dh: (a, b) => {
        const t = cpuMs();
        const r = c.dh(a, b);
        book(dhNames[this.role][this.dhCount++] ?? 'DH (other)', t);
        return r;
      },
      randomBytes: (n) => { const t = cpuMs(); const r = c.randomBytes(n); book('random (index)', t); return r; },
      zeroPrivateKey: (k) => c.zeroPrivateKey(k),
      ...(c.kdf ? { kdf: (k: Uint8Array, i: Uint8Array, n: 1 | 2 | 3) => { const t = cpuMs(); const r = c.kdf!(k, i, n); book('KDF / HMAC', t); return r; } } : {}),
    };
  }

  begin(role: Role): void {
    this.role = role;
    this.dhCount = 0;
  }

  reset(): void {
    this.booked.clear();
    this.calls = 0;
  }
}

interface StageResult { total: Record<Role, number>; untraced: Record<Role, number>; stages: Record<Role, [string, number][]>; mac1Check: number }

function stages(c: Crypto, iterations: number, traced = true): StageResult {
  let now = 1_000_000;
  let wall = Date.now();
  const clock = { now: () => now, wallNow: () => wall };
  let captured: Uint8Array | null = null;
  const hooks: EngineHooks = {
    sendTo: (_ep, msg) => { captured = msg.slice(); return Sent.Yes; },
    sendTransport: (_p, _kp, _n, pt) => pt.length + 32,
    keypairCreated: (kp) => { kp.keyId = 0; },
    keypairRetired: () => {},
  };
  const tr = new TracedCrypto(c, traced);
  const tc = tr.crypto;
  const resp = new Engine({ crypto: tc, clock, hooks, maxPeers: PEERS + 8 });
  const init = new Engine({ crypto: tc, clock, hooks, maxPeers: 8 });
  const respPriv = c.generatePrivateKey();
  const initPriv = c.generatePrivateKey();
  resp.setPrivateKey(respPriv);
  init.setPrivateKey(initPriv);
  for (let i = 1; i < PEERS; i++) resp.addPeer(nobleCrypto.publicKey(nobleCrypto.generatePrivateKey()));
  const epI: Endpoint = endpointFromBytes(Uint8Array.of(10, 0, 0, 2), 40000);
  const epR: Endpoint = endpointFromBytes(Uint8Array.of(10, 0, 0, 1), 51820);
  resp.setEndpoint(resp.addPeer(init.publicKey!), epI);
  const peerOnI = init.addPeer(resp.publicKey!);
  init.setEndpoint(peerOnI, epR);
  init.up();
  resp.up();

  const spent: Record<Role, number> = { 'responder': 0, 'initiator-send': 0, 'initiator-receive': 0 };
  const booked: Record<Role, Map<string, [number, number]>> = { 'responder': new Map(), 'initiator-send': new Map(), 'initiator-receive': new Map() };
  const callsPer: Record<Role, number> = { 'responder': 0, 'initiator-send': 0, 'initiator-receive': 0 };
  const run = (role: Role, fn: () => void): void => {
    tr.reset();
    tr.begin(role);
    const t = cpuMs();
    fn();
    spent[role] += cpuMs() - t;
    for (const [k, [t, n]] of tr.booked) {
      const e = booked[role].get(k);
      if (e) { e[0] += t; e[1] += n; } else booked[role].set(k, [t, n]);
    }
    callsPer[role] += tr.calls;
  };
  for (let i = 0; i < iterations + 20; i++) {
    if (i === 20) { // warm-up done
      for (const r of Object.keys(spent) as Role[]) { spent[r] = 0; booked[r].clear(); callsPer[r] = 0; }
    }
    now += 10_000; // past REKEY_TIMEOUT and the initiation rate limit
    wall += 10_000;
    captured = null;
    run('initiator-send', () => init.sendInitiation(peerOnI, false));
    const initiation = captured!;
    captured = null;
    run('responder', () => { if (resp.receiveHandshake(initiation, epI, false) !== null) throw new Error('initiation refused'); });
    const response = captured!;
    run('initiator-receive', () => { if (init.receiveHandshake(response, epR, false) !== null) throw new Error('response refused'); });
  }
  // Timing overhead of one booked call (two CPU-time reads and a Map update): in all, and the part
  // that lands inside the booked interval.
  const cal = new TracedCrypto({ ...c, hash: () => new Uint8Array(32) });
  const tc0 = cpuMs();
  for (let i = 0; i < 20_000; i++) cal.crypto.hash();
  const overheadMs = (cpuMs() - tc0) / 20_000;
  const insideMs = cal.booked.get('hash (mixHash)')![0] / 20_000;

  // mac1 check of an initiation (cookie.ts, pure JS; the responder's first step).
  const checker = new CookieChecker(c);
  checker.init(resp.publicKey);
  captured = null;
  now += 10_000;
  init.sendInitiation(peerOnI, false);
  const msg = captured!;
  const mac1 = measureBest([() => checker.checkMac1(msg)], 10)[0]!;

  const out = { total: {} as Record<Role, number>, untraced: {} as Record<Role, number>, stages: {} as Record<Role, [string, number][]>, mac1Check: mac1 };
  for (const r of Object.keys(spent) as Role[]) {
    const perMsg = (ms: number): number => (ms * 1e6) / iterations; // ns
    let sum = 0;
    const rows: [string, number][] = [];
    for (const [k, [t, n]] of booked[r]) {
      const v = Math.max(0, t - n * insideMs);
      rows.push([k, perMsg(v)]);
      sum += v;
    }
    const callsEach = callsPer[r] / iterations;
    const total = perMsg(spent[r]) - callsEach * overheadMs * 1e6 - insideMs * 1e6;
    rows.push(['engine + JS (rest)', Math.max(0, total - perMsg(sum))]);
    rows.sort((a, b) => b[1] - a[1]);
    out.total[r] = total;
    out.untraced[r] = total;
    out.stages[r] = rows;
  }
  return out;
}

// ───────────────────────── main ─────────────────────────

console.log(`handshake crypto: Node ${process.version}, default Crypto (nodeCrypto) = ${nodeCryptoBackend}` +
  (nativeHandshake ? `, X25519 via ${nativeHandshake.backend().x25519} / public key via ${nativeHandshake.backend().x25519Base}` : ` (${nativeHandshakeError})`));
console.log(`CPU time per call, best of ${RUNS} runs\n`);
const prim = primitives();
const w = Math.max(...prim.map((r) => r.name.length));
console.log(`${'primitive'.padEnd(w)}  ${impls.map(([n]) => n.padStart(12)).join('')}`);
for (const r of prim) console.log(`${r.name.padEnd(w)}  ${impls.map(([n]) => fmt(r.ns[n]!).padStart(12)).join('')}`);

const stageOut: Record<string, StageResult> = {};
const ITER = Number(opt('--iterations', '300'));
for (const [name, c] of impls) {
  // Several passes; keep the pass with the lowest responder total (least disturbed).
  const iterations = name === 'noble' ? Math.ceil(ITER / 3) : ITER;
  // Per stage the lowest of 5 passes (each pass disturbed elsewhere on a shared machine).
  let best: StageResult | null = null;
  for (let r = 0; r < 5; r++) {
    const s = stages(c, iterations);
    if (best === null) {
      best = s;
      continue;
    }
    for (const role of Object.keys(s.stages) as Role[]) {
      for (const [k, v] of s.stages[role]) {
        const row = best.stages[role].find(([x]) => x === k);
        if (row) row[1] = Math.min(row[1], v);
        else best.stages[role].push([k, v]);
      }
    }
  }
  // The same handshakes without the per-call timers: the totals shown; "engine + JS" is what of
  // them the booked primitives do not explain.
  const untraced: Record<Role, number> = { 'responder': Infinity, 'initiator-send': Infinity, 'initiator-receive': Infinity };
  for (let r = 0; r < 5; r++) {
    const s = stages(c, iterations, false);
    for (const role of Object.keys(untraced) as Role[]) untraced[role] = Math.min(untraced[role], s.total[role]);
  }
  for (const role of Object.keys(untraced) as Role[]) {
    best!.untraced[role] = untraced[role];
    const rows = best!.stages[role];
    const rest = rows.find(([k]) => k === 'engine + JS (rest)')!;
    rest[1] = Math.max(0, untraced[role] - rows.filter(([k]) => k !== 'engine + JS (rest)').reduce((a, [, v]) => a + v, 0));
    rows.sort((a, b) => b[1] - a[1]);
  }
  stageOut[name] = best!;
}
console.log(`\nstages of one handshake, ${PEERS} peers on the responder, CPU µs per message (per stage the lowest of 5 passes)`);
for (const role of ['responder', 'initiator-send', 'initiator-receive'] as Role[]) {
  console.log(`\n${role}${role === 'responder' ? ' (initiation in → response out)' : role === 'initiator-send' ? ' (initiation out)' : ' (response in → keepalive)'}`);
  const names = new Set<string>();
  for (const [n] of impls) for (const [k] of stageOut[n]!.stages[role]) names.add(k);
  if (role === 'responder') names.add('mac1 check (cookie.ts, JS; counted in engine + JS)');
  const sw = Math.max(...[...names].map((n) => n.length), 10);
  console.log(`  ${'stage'.padEnd(sw)}${impls.map(([n]) => n.padStart(13)).join('')}`);
  const order = stageOut[impls[0]![0]]!.stages[role].map(([k]) => k);
  for (const k of [...order, ...[...names].filter((n) => !order.includes(n))]) {
    const cells = impls.map(([n]) => {
      if (k.startsWith('mac1 check')) return (stageOut[n]!.mac1Check / 1000).toFixed(1);
      const v = stageOut[n]!.stages[role].find(([x]) => x === k)?.[1];
      return v === undefined ? '-' : (v / 1000).toFixed(1);
    });
    console.log(`  ${k.padEnd(sw)}${cells.map((x) => x.padStart(13)).join('')}`);
  }
  console.log(`  ${'total (untraced run)'.padEnd(sw)}${impls.map(([n]) => (stageOut[n]!.untraced[role] / 1000).toFixed(1).padStart(13)).join('')}`);
}
if (JSON_OUT) fs.writeFileSync(JSON_OUT, JSON.stringify({ primitives: prim, stages: stageOut }, null, 2));
