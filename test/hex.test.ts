// src/hex.ts: toHex against a naive per-byte oracle (the digit-table loop the UAPI code used
// before), over every byte value, empty input, and views that start inside a larger buffer.

import t from 'tap';
import { toHex } from '../src/hex.js';

const DIGITS = '0123456789abcdef';
const naive = (b: Uint8Array): string => {
  let s = '';
  for (let i = 0; i < b.length; i++) s += DIGITS[b[i]! >> 4]! + DIGITS[b[i]! & 15]!;
  return s;
};

t.test('known values', async (t) => {
  t.equal(toHex(new Uint8Array([0, 1, 0xfe, 0xff])), '0001feff');
  t.equal(toHex(new Uint8Array(0)), '');
  t.equal(toHex(new Uint8Array(32).fill(0xab)), 'ab'.repeat(32), 'a 32-byte key, lower case');
});

t.test('every byte value agrees with the oracle', async (t) => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  t.equal(toHex(all), naive(all));
  t.equal(toHex(all).length, 512);
});

t.test('views into a larger buffer print only their own bytes', async (t) => {
  const backing = Uint8Array.from({ length: 100 }, (_, i) => (i * 37 + 11) & 0xff);
  for (const [start, end] of [[0, 32], [1, 33], [7, 8], [50, 50], [68, 100]] as const) {
    const view = backing.subarray(start, end);
    t.equal(toHex(view), naive(view), `subarray(${start}, ${end})`);
  }
  const buf = Buffer.from(backing.buffer, 3, 16);
  t.equal(toHex(buf), naive(new Uint8Array(backing.buffer, 3, 16)), 'a Buffer view');
});
