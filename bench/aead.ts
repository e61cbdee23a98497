// Benchmark: ns/op of ChaCha20-Poly1305 (node:crypto vs @noble) at 64/512/1420 bytes and of
// X25519 DH. Each row runs for a fixed time budget (~3 s total). Run: node dist/bench/aead.js

import { nobleCrypto, nodeCrypto } from '../src/crypto/crypto.js';
import { openTransport, sealTransport } from '../src/crypto/transport.js';

const BUDGET_MS = 150;

/** Runs fn in growing batches until the budget is spent; returns ns per call. */
function measure(fn: () => void): number {
  for (let i = 0; i < 50; i++) fn(); // warm-up
  let calls = 0;
  let batch = 16;
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(BUDGET_MS * 1e6);
  let now = start;
  while (now < deadline) {
    for (let i = 0; i < batch; i++) fn();
    calls += batch;
    if (batch < 4096) batch *= 2;
    now = process.hrtime.bigint();
  }
  return Number(now - start) / calls;
}

const rows: [string, number][] = [];
const key = nodeCrypto.randomBytes(32);
const empty = new Uint8Array(0);
const slot = new Uint8Array(new SharedArrayBuffer(2048));

for (const size of [64, 512, 1420]) {
  const pt = nodeCrypto.randomBytes(size);
  const sealed = nodeCrypto.aeadSeal(key, 1, pt, empty);
  rows.push([`node  aeadSeal        ${size} B`, measure(() => nodeCrypto.aeadSeal(key, 1, pt, empty))]);
  rows.push([`noble aeadSeal        ${size} B`, measure(() => nobleCrypto.aeadSeal(key, 1, pt, empty))]);
  rows.push([`node  aeadOpen        ${size} B`, measure(() => nodeCrypto.aeadOpen(key, 1, sealed, empty))]);
  rows.push([`noble aeadOpen        ${size} B`, measure(() => nobleCrypto.aeadOpen(key, 1, sealed, empty))]);
  // In place on a SAB slot: seal then open, so the slot holds the plaintext again after each call pair.
  slot.set(pt, 0);
  rows.push([
    `node  seal+openTransport ${size} B (SAB)`,
    measure(() => {
      sealTransport(key, 1, 0, slot, 0, size);
      openTransport(key, 1, 0, slot, 0, size + 16);
    }),
  ]);
}

const privA = nodeCrypto.generatePrivateKey();
const pubB = nodeCrypto.publicKey(nodeCrypto.generatePrivateKey());
rows.push(['node  dh (cached static keys)', measure(() => nodeCrypto.dh(privA, pubB))]);
rows.push(['node  dh (fresh peer key array)', measure(() => nodeCrypto.dh(privA, pubB.slice()))]);
rows.push(['noble dh', measure(() => nobleCrypto.dh(privA, pubB))]);

const width = Math.max(...rows.map(([name]) => name.length));
console.log(`${'operation'.padEnd(width)}  ns/op`);
for (const [name, ns] of rows) console.log(`${name.padEnd(width)}  ${Math.round(ns).toString().padStart(8)}`);
