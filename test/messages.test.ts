// Receive filter and padding rules of spec §2.
import t from 'tap';
import { messageType, paddedLength } from '../src/protocol/messages.js';

t.test('messageType accepts exact sizes and zero reserved bytes only', async (t) => {
  const m = (type: number, len: number, reserved = 0) => { const b = new Uint8Array(len); b[0] = type; b[2] = reserved; return b; };
  t.equal(messageType(m(1, 148)), 1);
  t.equal(messageType(m(1, 149)), 0, 'initiation must be exactly 148');
  t.equal(messageType(m(2, 92)), 2);
  t.equal(messageType(m(2, 91)), 0);
  t.equal(messageType(m(3, 64)), 3);
  t.equal(messageType(m(3, 65)), 0);
  t.equal(messageType(m(4, 32)), 4, 'keepalive size');
  t.equal(messageType(m(4, 1500)), 4);
  t.equal(messageType(m(4, 31)), 0, 'below 32 bytes');
  t.equal(messageType(m(4, 64, 1)), 0, 'non-zero reserved byte');
  t.equal(messageType(m(5, 64)), 0, 'unknown type');
  t.equal(messageType(m(0, 64)), 0);
});

t.test('padding: multiple of 16, capped at the MTU, never grows a full packet', async (t) => {
  t.equal(paddedLength(0, 1420), 0, 'keepalive stays empty');
  t.equal(paddedLength(84, 1420), 96, '84-byte ICMPv4 → 96 (+32 = 128-byte message)');
  t.equal(paddedLength(104, 1420), 112, '104-byte ICMPv6 → 112 (+32 = 144)');
  t.equal(paddedLength(1420, 1420), 1420);
  t.equal(paddedLength(1419, 1420), 1420, 'capped at MTU');
  t.equal(paddedLength(1410, 1420), 1420);
  t.equal(paddedLength(1500, 1420), 1500 - 80 + 80, 'over-MTU packet padded by its remainder');
  t.equal(paddedLength(17, 0), 32, 'MTU 0: round up to 16');
  for (let len = 1; len <= 1420; len++) {
    const p = paddedLength(len, 1420);
    if (p < len || p > 1420 || (p !== 1420 && p % 16 !== 0) || p - len >= 16) { t.fail(`bad padding for ${len}: ${p}`); break; }
  }
});
