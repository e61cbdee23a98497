// Tests for native/handshake.c through src/crypto/native-handshake.ts and crypto.ts's nativeCrypto:
// published vectors (RFC 7748 X25519 incl. the iterated one, RFC 7693 / reference KAT BLAKE2s),
// low-order points (also with the top bit set), cross-checks against node:crypto and @noble on
// random inputs (BLAKE2s, keyed BLAKE2s-128, HMAC, the whole KDF, (X)ChaCha20-Poly1305), the I/O
// area left zeroed after every call (failures and refused calls included), the node:crypto path
// for inputs too large for it, a second thread, the WIREPOOL_NATIVE_HANDSHAKE=0 fallback, and whole
// Noise handshakes with native on one side and @noble on the other.

import t from 'tap';
import { execFileSync } from 'node:child_process';
import { randomBytes as nodeRandomBytes, randomInt } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { blake2s } from '@noble/hashes/blake2.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { type Crypto, kdf1, kdf2, kdf3, nativeCrypto, nobleCrypto, nodeApiCrypto, nodeCrypto, nodeCryptoBackend } from '../src/crypto/crypto.js';
import { IO_SIZE, io, nativeHandshake } from '../src/crypto/native-handshake.js';
import {
  Handshake, HandshakeState, type StaticIdentity, commitInitiation, consumeInitiation, consumeResponse, createInitiation,
  createResponse, deriveKeys, initialState, precomputeStaticStatic,
} from '../src/protocol/noise.js';
import { Initiation, Response } from '../src/protocol/messages.js';

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const rand = (n: number): Uint8Array => new Uint8Array(nodeRandomBytes(n));
const range = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => i);
const ioClean = (): boolean => io.every((b) => b === 0);

if (!nativeCrypto || !nativeHandshake) throw new Error('the native handshake addon is not built (cd native && npx node-gyp rebuild)');
const n: Crypto = nativeCrypto;
const addon = nativeHandshake;

t.test('the addon is loaded, is the default, and uses OpenSSL\'s raw X25519 here', async (t) => {
  t.equal(nodeCryptoBackend, 'native');
  t.equal(nodeCrypto, nativeCrypto);
  t.same(addon.backend(), { x25519: 'ossl', x25519Base: 'comb' }, 'Node 20 exports ossl_x25519; public keys from the fixed-base comb');
  t.ok(ioClean(), 'I/O area starts zeroed');
});

t.test('X25519: RFC 7748 §5.2 vectors, §5.2 iterations, §6.1', async (t) => {
  const vectors = [
    ['a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4', 'e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c',
      'c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552'],
    ['4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d', 'e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493',
      '95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957'],
  ];
  for (const [k, u, out] of vectors) {
    const r = n.dh(hex(k!), hex(u!));
    t.equal(r && toHex(r), out, `§5.2 ${k!.slice(0, 8)}`);
  }
  // §5.2: k = u = 9; repeatedly k, u = X25519(k, u), k.
  let k: Uint8Array = hex('09' + '00'.repeat(31));
  let u: Uint8Array = k.slice();
  for (let i = 1; i <= 1000; i++) {
    const r = n.dh(k, u)!;
    u = k;
    k = r;
    if (i === 1) t.equal(toHex(k), '422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079', 'after 1 iteration');
  }
  t.equal(toHex(k), '684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51', 'after 1,000 iterations');
  // §6.1
  const alicePriv = hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
  const bobPriv = hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
  t.equal(toHex(n.publicKey(alicePriv)), '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a', 'Alice public');
  t.equal(toHex(n.publicKey(bobPriv)), 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f', 'Bob public');
  const shared = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
  t.equal(toHex(n.dh(alicePriv, n.publicKey(bobPriv))!), shared, 'Alice side');
  t.equal(toHex(n.dh(bobPriv, n.publicKey(alicePriv))!), shared, 'Bob side');
  t.ok(ioClean(), 'I/O area zeroed');
});

t.test('X25519 public keys (x25519_base.c) equal OpenSSL\'s for random and edge-case private keys', async (t) => {
  const edges = [new Uint8Array(32), new Uint8Array(32).fill(0xff), new Uint8Array(32).fill(0x80), new Uint8Array(32).fill(0x08),
    hex('f8' + 'ff'.repeat(30) + '7f'), hex('00'.repeat(31) + '40'), range(32)];
  // Every 4-bit digit value in every position of the scalar: 16 keys whose nibbles are all one value.
  for (let v = 0; v < 16; v++) edges.push(new Uint8Array(32).fill(v * 17));
  let bad = 0;
  const keys = [...edges, ...Array.from({ length: 3000 }, () => rand(32))];
  for (const k of keys) if (toHex(n.publicKey(k)) !== toHex(nodeApiCrypto.publicKey(k))) bad++; // node:crypto: OpenSSL's X25519
  t.equal(bad, 0, `${keys.length} private keys: same public key as OpenSSL`);
  t.ok(ioClean(), 'I/O area zeroed');
});

t.test('X25519: low-order points (and their encodings with the top bit set) give null', async (t) => {
  const lowOrder = [
    '0000000000000000000000000000000000000000000000000000000000000000', // 0
    '0100000000000000000000000000000000000000000000000000000000000000', // 1
    'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // p - 1 (order 2)
    'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800', // order 8
    '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157', // order 8
    'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // p (= 0)
    'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // p + 1 (= 1)
  ];
  const withTopBit = lowOrder.map((p) => { const b = hex(p); b[31]! |= 0x80; return toHex(b); });
  for (let i = 0; i < 5; i++) {
    const priv = i === 0 ? new Uint8Array(32).fill(0xff) : n.generatePrivateKey();
    for (const p of [...lowOrder, ...withTopBit]) {
      t.equal(n.dh(priv, hex(p)), null, `${p.slice(0, 8)}…${p.slice(-2)}`);
      t.equal(nobleCrypto.dh(priv, hex(p)), null, `noble agrees: ${p.slice(0, 8)}…${p.slice(-2)}`);
    }
  }
  t.ok(ioClean(), 'I/O area zeroed after refusals');
});

t.test('X25519: native = noble = node:crypto on random keys, unclamped and with the top bit of u set', async (t) => {
  let bad = 0;
  for (let i = 0; i < 100; i++) {
    const a = rand(32); // unclamped: clamped by the function
    const b = nobleCrypto.generatePrivateKey();
    const pb = nobleCrypto.publicKey(b);
    if (i % 3 === 0) pb[31]! |= 0x80; // must be masked (RFC 7748 §5)
    const want = nobleCrypto.dh(a, pb);
    if (toHex(n.publicKey(a)) !== toHex(nobleCrypto.publicKey(a))) bad++;
    if (toHex(n.dh(a, pb) ?? new Uint8Array(0)) !== toHex(want ?? new Uint8Array(0))) bad++;
    if (toHex(nodeApiCrypto.dh(a, pb.map((x, j) => (j === 31 ? x & 0x7f : x))) ?? new Uint8Array(0)) !== toHex(want ?? new Uint8Array(0))) bad++;
  }
  t.equal(bad, 0, '300 comparisons');
  const k = n.generatePrivateKey();
  t.equal(k[0]! & 7, 0, 'clamped: low bits');
  t.equal(k[31]! & 0xc0, 0x40, 'clamped: top bits');
  t.throws(() => n.dh(k, new Uint8Array(31)), RangeError, 'short public key');
  t.throws(() => n.dh(new Uint8Array(64), k), RangeError, 'long private key');
  t.throws(() => n.publicKey(new Uint8Array(0)), RangeError, 'empty private key');
  t.ok(ioClean(), 'I/O area zeroed');
});

t.test('BLAKE2s: RFC 7693 B.1, reference KAT, cross-checks', async (t) => {
  t.equal(toHex(n.hash(new TextEncoder().encode('abc'))), '508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982', 'RFC 7693 Appendix B');
  t.equal(toHex(n.hash(new Uint8Array(0))), '69217a3079908094e11121d042354a7c1f55b6482ca1a51e1b250dfd1ed0eef9', 'empty');
  // blake2s-kat.txt (keyed, key = 00..1f): in = ε, in = 00, in = 00..3f (exactly one block).
  const kat = (data: Uint8Array): string => {
    io.set(range(32), 0);
    io.set(data, 32);
    addon.blake2s(32, 32, data.length);
    const r = toHex(io.subarray(0, 32));
    io.fill(0, 0, 32);
    return r;
  };
  t.equal(kat(new Uint8Array(0)), '48a8997da407876b3d79c0d92325ad3b89cbb754d86ab71aee047ad345fd2c49', 'keyed KAT, empty input');
  t.equal(kat(range(1)), '40d15fee7c328830166ac3f918650f807e7e01e177258cdc0a39b11f598066f1', 'keyed KAT, 1 byte');
  for (const len of [63, 64, 65, 127, 128, 129, 255]) {
    const d = range(len);
    t.equal(kat(d), toHex(blake2s(d, { key: range(32) })), `keyed KAT shape, ${len} bytes = noble`);
  }
  let bad = 0;
  for (let i = 0; i < 300; i++) {
    const a = rand(randomInt(0, 200));
    const b = rand(randomInt(0, 200));
    if (toHex(n.hash(a, b)) !== toHex(blake2s(new Uint8Array([...a, ...b])))) bad++;
    if (toHex(n.hash(a, b, a)) !== toHex(nodeApiCrypto.hash(a, b, a))) bad++;
    // keyed BLAKE2s-128 (mac1, mac2, cookies): keys of 1–32 bytes
    const key = rand(randomInt(1, 33));
    if (toHex(n.mac(key, a, b)) !== toHex(blake2s(new Uint8Array([...a, ...b]), { key, dkLen: 16 }))) bad++;
    if (toHex(n.mac(key, a)) !== toHex(nobleCrypto.mac(key, a))) bad++;
  }
  t.equal(bad, 0, '1,200 comparisons with @noble and node:crypto');
  t.throws(() => n.mac(new Uint8Array(0), rand(3)), RangeError, 'MAC key of 0 bytes');
  t.throws(() => n.mac(new Uint8Array(33), rand(3)), RangeError, 'MAC key of 33 bytes');
  t.ok(ioClean(), 'I/O area zeroed');
});

t.test('HMAC and the whole KDF = node:crypto\'s HMAC-built KDF = HKDF on random inputs', async (t) => {
  let bad = 0;
  const cases = [[0, 0], [32, 0], [0, 32], [32, 32], [64, 64], [65, 1], [200, 129]];
  for (let i = 0; i < 300; i++) cases.push([randomInt(0, 100), randomInt(0, 300)]);
  for (const [kl, il] of cases) {
    const key = rand(kl!);
    const input = rand(il!);
    if (toHex(n.hmac(key, input)) !== toHex(nodeApiCrypto.hmac(key, input))) bad++;
    const want3 = kdf3(nodeApiCrypto, key, input).map(toHex);
    if (kdf3(n, key, input).map(toHex).join() !== want3.join()) bad++;
    if (kdf2(n, key, input).map(toHex).join() !== want3.slice(0, 2).join()) bad++;
    if (toHex(kdf1(n, key, input)) !== want3[0]) bad++;
    if (want3.join('') !== toHex(hkdf(blake2s, input, key, new Uint8Array(0), 96))) bad++;
  }
  t.equal(bad, 0, `${cases.length * 5} comparisons`);
  t.ok(ioClean(), 'I/O area zeroed');
});

t.test('ChaCha20-Poly1305 and XChaCha20-Poly1305 = node:crypto = noble; tampering; counters past 2^32', async (t) => {
  let bad = 0;
  for (let i = 0; i < 300; i++) {
    const key = rand(32);
    const pt = rand(randomInt(0, 100));
    const ad = rand(randomInt(0, 64));
    const counter = [0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, randomInt(0, 2 ** 47) * 3][i % 6]!;
    const sealed = n.aeadSeal(key, counter, pt, ad);
    if (toHex(sealed) !== toHex(nodeApiCrypto.aeadSeal(key, counter, pt, ad))) bad++;
    if (toHex(n.aeadOpen(key, counter, sealed, ad) ?? rand(1)) !== toHex(pt)) bad++;
    const tampered = sealed.slice();
    tampered[randomInt(0, tampered.length)]! ^= 1 << randomInt(0, 8);
    if (n.aeadOpen(key, counter, tampered, ad) !== null) bad++;
    if (n.aeadOpen(key, counter + (counter < 2 ** 53 - 1 ? 1 : -1), sealed, ad) !== null) bad++;
    const nonce = rand(24);
    const x = n.xaeadSeal(key, nonce, pt, ad);
    if (toHex(x) !== toHex(nobleCrypto.xaeadSeal(key, nonce, pt, ad))) bad++;
    if (toHex(n.xaeadOpen(key, nonce, x, ad) ?? rand(1)) !== toHex(pt)) bad++;
    x[0]! ^= 1;
    if (n.xaeadOpen(key, nonce, x, ad) !== null) bad++;
  }
  t.equal(bad, 0, '2,100 comparisons');
  const key = rand(32);
  t.equal(n.aeadOpen(key, 0, rand(15), rand(0)), null, 'shorter than a tag: null');
  t.equal(n.aeadOpen(rand(31), 0, rand(40), rand(0)), null, 'bad key length: null, no throw');
  t.equal(n.aeadOpen(key, -1, rand(40), rand(0)), null, 'bad counter: null, no throw');
  t.equal(n.xaeadOpen(key, rand(23), rand(40), rand(0)), null, 'bad nonce length: null, no throw');
  t.throws(() => n.aeadSeal(key, 2 ** 53, rand(3), rand(0)), RangeError, 'seal refuses a counter past 2^53-1');
  t.throws(() => n.aeadSeal(rand(16), 0, rand(3), rand(0)), RangeError, 'seal refuses a short key');
  t.throws(() => n.xaeadSeal(key, rand(12), rand(3), rand(0)), RangeError, 'xseal refuses a 12-byte nonce');
  t.ok(ioClean(), 'I/O area zeroed after failures');
});

t.test('inputs larger than the I/O area take the node:crypto / @noble path with the same results', async (t) => {
  const big = rand(IO_SIZE + 100);
  const key = rand(32);
  t.equal(toHex(n.hash(big)), toHex(nobleCrypto.hash(big)), 'hash');
  t.equal(toHex(n.hash(big.subarray(0, 3000), big.subarray(3000))), toHex(nobleCrypto.hash(big)), 'hash in parts');
  t.equal(toHex(n.hmac(key, big)), toHex(nobleCrypto.hmac(key, big)), 'hmac');
  t.equal(toHex(n.mac(key, big)), toHex(nobleCrypto.mac(key, big)), 'mac');
  t.equal(kdf3(n, key, big).map(toHex).join(), kdf3(nobleCrypto, key, big).map(toHex).join(), 'kdf3');
  const pt = big.subarray(0, 2500); // 32 + 2 × 2500 + 16 > IO_SIZE
  const sealed = n.aeadSeal(key, 7, pt, key);
  t.equal(toHex(sealed), toHex(nobleCrypto.aeadSeal(key, 7, pt, key)), 'aeadSeal');
  t.same(n.aeadOpen(key, 7, sealed, key), pt, 'aeadOpen');
  const nonce = rand(24);
  const xs = n.xaeadSeal(key, nonce, pt, key);
  t.equal(toHex(xs), toHex(nobleCrypto.xaeadSeal(key, nonce, pt, key)), 'xaeadSeal');
  t.same(n.xaeadOpen(key, nonce, xs, key), pt, 'xaeadOpen');
  t.ok(ioClean(), 'I/O area zeroed');
});

t.test('the raw addon refuses misuse and wipes the I/O area', async (t) => {
  io.set(rand(64), 0);
  t.throws(() => addon.blake2s(33, 0, 4), RangeError, 'digest length 33');
  t.ok(ioClean(), 'wiped after a refused call');
  io.set(rand(64), 0);
  t.throws(() => addon.hmac(32, IO_SIZE), RangeError, 'inputs past the area');
  t.ok(ioClean(), 'wiped');
  io.set(rand(64), 0);
  t.throws(() => addon.kdf(4, 32, 32), RangeError, 'KDF with 4 outputs');
  t.ok(ioClean(), 'wiped');
  io.set(rand(64), 0);
  t.throws(() => addon.aeadOpen(0, 0, 0, 15), RangeError, 'ciphertext shorter than a tag');
  t.ok(ioClean(), 'wiped');
  io.set(rand(64), 0);
  t.throws(() => addon.blake2s(-1 as number, 0, 0), RangeError, 'negative length');
  t.ok(ioClean(), 'wiped');
  io.set(rand(64), 0);
  t.throws(() => (addon.hmac as unknown as (k: number) => void)(32), TypeError, 'missing argument');
  t.ok(ioClean(), 'wiped');
  t.throws(() => addon.setIo(new Uint8Array(4096)), Error, 'setIo only once per thread');
});

t.test('a worker thread has its own addon instance and I/O area', async (t) => {
  const priv = nobleCrypto.generatePrivateKey();
  const pub = nobleCrypto.publicKey(nobleCrypto.generatePrivateKey());
  const url = new URL('../src/crypto/crypto.js', import.meta.url).href;
  const w = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     import(workerData.url).then((m) => {
       const r = [];
       for (let i = 0; i < 50; i++) r.push(Buffer.from(m.nodeCrypto.dh(workerData.priv, workerData.pub)).toString('hex'));
       parentPort.postMessage({ backend: m.nodeCryptoBackend, r });
     });`,
    { eval: true, workerData: { url, priv, pub } },
  );
  const got = await new Promise<{ backend: string; r: string[] }>((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
  // Main keeps computing meanwhile in its own instance.
  for (let i = 0; i < 20; i++) n.dh(priv, pub);
  await w.terminate();
  t.equal(got.backend, 'native', 'the worker loaded the addon too');
  t.ok(got.r.every((x) => x === toHex(nobleCrypto.dh(priv, pub)!)), 'its results are right');
});

t.test('WIREPOOL_NATIVE_HANDSHAKE=0 falls back to node:crypto', async (t) => {
  const url = new URL('../src/crypto/crypto.js', import.meta.url).href;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e',
    `const m = await import(${JSON.stringify(url)});
     const k = m.nodeCrypto.generatePrivateKey();
     const ok = Buffer.from(m.nodeCrypto.dh(k, m.nobleCrypto.publicKey(m.nobleCrypto.generatePrivateKey())) ?? []).length === 32;
     console.log(m.nodeCryptoBackend, m.nodeCrypto === m.nodeApiCrypto, m.nativeCrypto === null, ok);`],
  { env: { ...process.env, WIREPOOL_NATIVE_HANDSHAKE: '0' }, encoding: 'utf8' });
  t.equal(out.trim(), 'node:crypto true true true');
});

// ───────────────────────── whole handshakes ─────────────────────────

function handshake(ci: Crypto, cr: Crypto, psk: Uint8Array): { ok: boolean; keys?: [Uint8Array, Uint8Array, Uint8Array, Uint8Array] } {
  const initI = initialState(ci);
  const initR = initialState(cr);
  const privI = ci.generatePrivateKey();
  const privR = cr.generatePrivateKey();
  const idI: StaticIdentity = { privateKey: privI, publicKey: ci.publicKey(privI) };
  const idR: StaticIdentity = { privateKey: privR, publicKey: cr.publicKey(privR) };
  const hsI = new Handshake(idR.publicKey, psk);
  const hsR = new Handshake(idI.publicKey, psk);
  precomputeStaticStatic(ci, idI, hsI);
  precomputeStaticStatic(cr, idR, hsR);
  const m1 = new Uint8Array(Initiation.SIZE);
  if (!createInitiation(ci, initI, idI, hsI, 11, Date.now(), m1)) return { ok: false };
  const got = consumeInitiation(cr, initR, idR, m1, (pub) => (toHex(pub) === toHex(idI.publicKey) ? hsR : undefined));
  if (!got) return { ok: false };
  commitInitiation(got.hs, got.consumed, 1000);
  const m2 = new Uint8Array(Response.SIZE);
  if (!createResponse(cr, hsR, 22, m2)) return { ok: false };
  if (!consumeResponse(ci, idI, hsI, m2)) return { ok: false };
  if (hsI.state !== HandshakeState.ResponseConsumed) return { ok: false };
  const kI = deriveKeys(ci, hsI)!;
  const kR = deriveKeys(cr, hsR)!;
  return { ok: true, keys: [kI.sendKey, kI.receiveKey, kR.sendKey, kR.receiveKey] };
}

t.test('whole Noise_IKpsk2 handshakes: native ↔ noble ↔ node:crypto, with and without a psk', async (t) => {
  const pairs: [string, Crypto, Crypto][] = [
    ['native → native', n, n], ['native → noble', n, nobleCrypto], ['noble → native', nobleCrypto, n],
    ['native → node:crypto', n, nodeApiCrypto], ['node:crypto → native', nodeApiCrypto, n],
  ];
  for (const [name, ci, cr] of pairs) {
    for (const psk of [new Uint8Array(32), rand(32)]) {
      const r = handshake(ci, cr, psk);
      t.ok(r.ok, `${name}: completes`);
      const [is, ir, rs, rr] = r.keys!;
      t.equal(toHex(is), toHex(rr), `${name}: initiator send = responder receive`);
      t.equal(toHex(ir), toHex(rs), `${name}: initiator receive = responder send`);
      t.not(toHex(is), toHex(ir), `${name}: the two directions differ`);
    }
  }
  // A responder with a different psk cannot complete.
  const privI = n.generatePrivateKey();
  const privR = n.generatePrivateKey();
  const idI = { privateKey: privI, publicKey: n.publicKey(privI) };
  const idR = { privateKey: privR, publicKey: n.publicKey(privR) };
  const hsI = new Handshake(idR.publicKey, rand(32));
  const hsR = new Handshake(idI.publicKey, rand(32));
  precomputeStaticStatic(n, idI, hsI);
  precomputeStaticStatic(n, idR, hsR);
  const init = initialState(n);
  const m1 = new Uint8Array(Initiation.SIZE);
  t.ok(createInitiation(n, init, idI, hsI, 1, Date.now(), m1));
  const got = consumeInitiation(n, init, idR, m1, () => hsR)!;
  commitInitiation(got.hs, got.consumed, 0);
  const m2 = new Uint8Array(Response.SIZE);
  t.ok(createResponse(n, hsR, 2, m2));
  t.notOk(consumeResponse(n, idI, hsI, m2), 'psk mismatch: the response does not open');
  // A tampered initiation is refused.
  const m1b = new Uint8Array(Initiation.SIZE);
  t.ok(createInitiation(n, init, idI, hsI, 3, Date.now(), m1b));
  m1b[Initiation.STATIC + 5]! ^= 1;
  t.equal(consumeInitiation(n, init, idR, m1b, () => hsR), null, 'tampered static: refused');
  // A low-order ephemeral is refused before anything else.
  const m1c = new Uint8Array(Initiation.SIZE);
  t.equal(consumeInitiation(n, init, idR, m1c, () => hsR), null, 'all-zero ephemeral: refused');
  t.ok(ioClean(), 'I/O area zeroed');
});
