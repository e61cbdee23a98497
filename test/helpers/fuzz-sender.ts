// Bad-input UDP sender for test/e2e-badinput.test.ts, run as its own process inside a network
// namespace (`node dist/test/helpers/fuzz-sender.js MODE ...`):
//
//   fuzz HOST PORT COUNT SEED PUBKEY_B64 [CATEGORY]
//       COUNT datagrams to HOST:PORT from one ephemeral port, drawn from a seeded PRNG over
//       the categories below (wrong lengths for each message type, non-zero reserved bytes,
//       random receiver indices, random initiations with and without a valid mac1 for the
//       receiver's public key, ...), paced in bursts; prints a JSON summary
//       {"sent":N,"byCategory":{...}} on stdout. With CATEGORY, only that category.
//   send HOST PORT HEX...
//       each HEX-encoded datagram once, in order, from one ephemeral port; prints {"sent":N}.
//
// mac1 is computed here with @noble/hashes (BLAKE2s keyed with HASH("mac1----" || pub)),
// independently of src/, so a wrong mac1 in the daemon cannot hide behind the same bug.

import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import { blake2s } from '@noble/hashes/blake2.js';
import { makePrng, type Prng } from './seeded-prng.js';

const SIZES: Record<number, number> = { 1: 148, 2: 92, 3: 64 };
const MIN_TRANSPORT = 32;
const MAX_DATAGRAM = 1500;

function mac1Key(pub: Uint8Array): Uint8Array {
  const label = new TextEncoder().encode('mac1----');
  const buf = new Uint8Array(label.length + pub.length);
  buf.set(label);
  buf.set(pub, label.length);
  return blake2s(buf);
}

/** Sets a valid mac1 (and a zero mac2) on a type 1 or 2 message. */
function setMac1(msg: Uint8Array, key: Uint8Array): void {
  const off = msg.length - 32;
  msg.set(blake2s(msg.subarray(0, off), { key, dkLen: 16 }), off);
  msg.fill(0, off + 16);
}

function header(p: Prng, len: number, type: number, reserved: 'zero' | 'nonzero' = 'zero'): Uint8Array {
  const b = p.bytes(len);
  if (len > 0) b[0] = type;
  for (let i = 1; i < 4 && i < len; i++) b[i] = 0;
  if (reserved === 'nonzero' && len >= 4) {
    const i = 1 + p.int(3);
    b[i] = 1 + p.int(255);
  }
  return b;
}

type Category = (p: Prng, macKey: Uint8Array) => Uint8Array;

/** Each category with its weight. */
const CATEGORIES: Record<string, [number, Category]> = {
  random: [20, (p) => p.bytes(p.int(MAX_DATAGRAM + 1))],
  tinyRandom: [5, (p) => p.bytes(p.int(33))],
  typedRandomLength: [
    10,
    (p) => {
      const type = 1 + p.int(4);
      let len = p.int(MAX_DATAGRAM + 1);
      if (SIZES[type] === len) len++;
      return header(p, len, type);
    },
  ],
  truncated: [
    15,
    (p) => {
      const type = 1 + p.int(4);
      const exact = SIZES[type] ?? MIN_TRANSPORT;
      return header(p, p.int(exact), type);
    },
  ],
  extended: [
    10,
    (p) => {
      const type = 1 + p.int(3);
      const extra = p.chance(0.7) ? 1 + p.int(16) : 1 + p.int(MAX_DATAGRAM - SIZES[type]!);
      return header(p, SIZES[type]! + extra, type);
    },
  ],
  reservedNonZero: [
    10,
    (p) => {
      const type = 1 + p.int(4);
      return header(p, SIZES[type] ?? MIN_TRANSPORT + p.int(200), type, 'nonzero');
    },
  ],
  reservedNonZeroValidMac1: [
    2,
    (p, key) => {
      const type = 1 + p.int(2);
      const m = header(p, SIZES[type]!, type);
      setMac1(m, key);
      m[1 + p.int(3)] = 1 + p.int(255); // after the MAC: the type check must still reject it
      return m;
    },
  ],
  transportRandomIndex: [15, (p) => header(p, MIN_TRANSPORT + p.int(MAX_DATAGRAM - MIN_TRANSPORT + 1), 4)],
  transportMinimal: [3, (p) => header(p, MIN_TRANSPORT, 4)],
  initiationRandom: [5, (p) => header(p, 148, 1)],
  initiationValidMac1: [2, (p, key) => {
    const m = header(p, 148, 1);
    setMac1(m, key);
    return m;
  }],
  responseRandom: [2, (p) => header(p, 92, 2)],
  responseValidMac1: [1, (p, key) => {
    const m = header(p, 92, 2);
    setMac1(m, key);
    return m;
  }],
  cookieReplyRandomIndex: [3, (p) => header(p, 64, 3)],
};

function pickCategory(p: Prng, total: number): string {
  let x = p.int(total);
  for (const [name, [w]] of Object.entries(CATEGORIES)) {
    if (x < w) return name;
    x -= w;
  }
  throw new Error('unreachable');
}

async function sendAll(host: string, port: number, datagrams: Iterable<Uint8Array>): Promise<number> {
  const sock = dgram.createSocket(isIPv6(host) ? 'udp6' : 'udp4');
  await new Promise<void>((resolve) => sock.bind(0, resolve));
  let sent = 0;
  let inBurst = 0;
  let pending = 0;
  let drained: (() => void) | null = null;
  for (const d of datagrams) {
    pending++;
    sock.send(d, port, host, () => {
      // Errors (e.g. ECONNREFUSED from an ICMP error) do not matter here.
      pending--;
      if (pending === 0 && drained !== null) drained();
    });
    sent++;
    // Bursts of 64, then a short pause, so that the receiver's socket buffer is not simply
    // overrun and most datagrams really reach the daemon.
    if (++inBurst === 64) {
      inBurst = 0;
      await new Promise((r) => setTimeout(r, 4));
    }
  }
  if (pending > 0) await new Promise<void>((r) => (drained = r));
  sock.close();
  return sent;
}

async function main(argv: string[]): Promise<void> {
  const [mode, host, portText, ...rest] = argv;
  const port = Number(portText);
  if (host === undefined || !Number.isInteger(port)) throw new Error('usage: fuzz-sender fuzz|send HOST PORT ...');
  if (mode === 'send') {
    const sent = await sendAll(host, port, rest.map((h) => Buffer.from(h, 'hex')));
    process.stdout.write(JSON.stringify({ sent }) + '\n');
    return;
  }
  if (mode !== 'fuzz') throw new Error(`unknown mode ${mode}`);
  const count = Number(rest[0]);
  const seed = Number(rest[1]) >>> 0;
  const pub = Buffer.from(rest[2] ?? '', 'base64');
  if (pub.length !== 32) throw new Error('PUBKEY_B64 must be a 32-byte key');
  const only = rest[3];
  if (only !== undefined && !(only in CATEGORIES)) throw new Error(`unknown category ${only}`);
  const key = mac1Key(pub);
  const p = makePrng(seed);
  const total = Object.values(CATEGORIES).reduce((s, [w]) => s + w, 0);
  const byCategory: Record<string, number> = {};
  function* gen(): Generator<Uint8Array> {
    for (let i = 0; i < count; i++) {
      const name = only ?? pickCategory(p, total);
      byCategory[name] = (byCategory[name] ?? 0) + 1;
      yield CATEGORIES[name]![1](p, key);
    }
  }
  const sent = await sendAll(host, port, gen());
  process.stdout.write(JSON.stringify({ sent, byCategory }) + '\n');
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`fuzz-sender: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(2);
});
