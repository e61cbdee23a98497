// TUN device wrapper (src/io/tun.ts on native/tun.c), exercised for real inside a throw-away
// network namespace: the compiled src/io/tun.js is driven by a small script run under `ip netns
// exec`, which reports what it saw as JSON. Run twice: with offloads (the default: virtio
// header, TSO/USO) and with WIREPOOL_TUN_OFFLOAD=0 (plain packets). Checks: the link is created
// under the requested name and MTU (no kernel-chosen tunN); bad names, taken names (also at the
// kernel: IFF_TUN_EXCL), bad MTUs and a missing /dev/net/tun give clear coded errors and leave no
// link behind; a worker blocked in readSlots returns the IPv4 packet ping sent into the link, and
// returns 0 when woken through the eventfd; writeSlots of a hand-built IPv4/UDP packet is
// delivered to a socket; openTunFromFd checks the fd (and sees the virtio header flag); deleting
// the link wakes the blocked reader with a "gone" result, makes writes report the fd gone and
// fires watchTunRemoval; close() of a second device wakes its blocked reader and removes the link.

import t, { type Test } from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Netns, haveCommand, netnsSkipReason } from './helpers/netns.js';

// Namespaces_ worker threads and real traffic: more than tap's default 30 s on a loaded machine.
t.setTimeout(300_000);

const TUN_MODULE = new URL('../src/io/tun.js', import.meta.url).href;

// Runs inside the namespace: node script.mjs <tun.js URL> <mode>. Prints one JSON line.
const SCRIPT = String.raw`
import fs from 'node:fs';
import dgram from 'node:dgram';
import { execFileSync, execFile } from 'node:child_process';
import { Worker } from 'node:worker_threads';
const [tunUrl, mode] = process.argv.slice(2);
const tun = await import(tunUrl);
const nat = tun.tunNative();
const out = {};
// watchTunRemoval's timer is unref'd: keep the loop alive while waiting for it.
const keepAlive = setInterval(() => {}, 60000);
const links = () => execFileSync('ip', ['-o', 'link', 'show']).toString().split('\n')
  .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1]).filter(Boolean).sort();
const failure = (fn) => { try { fn(); return null; } catch (e) { return { code: e.code, message: e.message, name: e.name }; } };

if (mode === 'missing') {
  out.missing = failure(() => tun.createTun('wpt0', 1420));
  out.links = links();
  console.log(JSON.stringify(out));
  process.exit(0);
}

const dev = tun.createTun('wpt0', 1420);
out.name = dev.name;
out.fdIsNumber = Number.isInteger(dev.fd) && dev.fd > 2;
out.wakeFdIsNumber = Number.isInteger(dev.wakeFd) && dev.wakeFd > 2 && dev.wakeFd !== dev.fd;
out.vnetHdr = dev.vnetHdr;
out.offloads = dev.offloads;
out.ifflags = nat.query(dev.fd).flags;
out.nonBlocking = (parseInt(/flags:\s+(\d+)/.exec(fs.readFileSync('/proc/self/fdinfo/' + dev.fd, 'latin1'))[1], 8) & 0o4000) !== 0;
out.mtu = dev.mtu();
out.exists = dev.exists();
out.link = execFileSync('ip', ['-o', 'link', 'show', 'dev', 'wpt0']).toString();
out.details = execFileSync('ip', ['-d', '-o', 'link', 'show', 'dev', 'wpt0']).toString();
out.linksAfterCreate = links();

execFileSync('ip', ['tuntap', 'add', 'dev', 'taken0', 'mode', 'tun']);
out.errors = {
  slash: failure(() => tun.createTun('bad/name', 1420)),
  long: failure(() => tun.createTun('abcdefghijklmnop', 1420)),
  space: failure(() => tun.createTun('wg 0', 1420)),
  again: failure(() => tun.createTun('wpt0', 1420)),
  taken: failure(() => tun.createTun('taken0', 1420)),
  mtuLow: failure(() => tun.createTun('wpt1', 67)),
  mtuFrac: failure(() => tun.createTun('wpt1', 1420.5)),
  setMtuHigh: failure(() => dev.setMtu(65536)),
  // Past the /proc pre-check, the kernel itself refuses an existing name (IFF_TUN_EXCL).
  nativeAgain: failure(() => nat.open('wpt0', { vnetHdr: true })),
  nativePersistent: failure(() => nat.open('taken0', { vnetHdr: false })),
};
out.linksAfterErrors = links();

dev.setMtu(1280);
out.mtuAfterSet = dev.mtu();
dev.setMtu(1420);

const again = tun.openTunFromFd(dev.fd, 'wpt0');
out.fromFd = { name: again.name, mtu: again.mtu(), vnetHdr: again.vnetHdr };
out.fromFdErrors = {
  wrongName: failure(() => tun.openTunFromFd(dev.fd, 'other0')),
  notTun: failure(() => tun.openTunFromFd(0, 'wpt0')),
  notOpen: failure(() => tun.openTunFromFd(987, 'wpt0')),
};

execFileSync('ip', ['addr', 'add', '203.0.113.1/24', 'dev', 'wpt0']);
execFileSync('ip', ['link', 'set', 'dev', 'wpt0', 'up']);

// A reader thread as in the data plane: blocks in readSlots (no timeout) and reports what
// it got: IPv4 packets, 0 (woken), or a negative "gone" result (then it stops).
const READER = ` + '`' + String.raw`
const { workerData: w, parentPort } = require('node:worker_threads');
(async () => {
  const nat = (await import(w.tunUrl)).tunNative();
  const SLOT = 2048, N = 16;
  const data = new Uint8Array(new SharedArrayBuffer(SLOT * N));
  const meta = new Int32Array(new SharedArrayBuffer(N * 128));
  const slots = Int32Array.from({ length: N }, (_, i) => i);
  const out = new Int32Array(8);
  parentPort.postMessage({ ready: true });
  for (let i = 0; i < 10000; i++) {
    const n = nat.readSlots(w.fd, w.wakeFd, w.vnetHdr, data, SLOT, meta, slots, N, -1, out);
    if (n < 0) { parentPort.postMessage({ gone: n, again: nat.readSlots(w.fd, w.wakeFd, w.vnetHdr, data, SLOT, meta, slots, N, 0, out) }); break; }
    if (n === 0) { parentPort.postMessage({ woke: true }); continue; }
    for (let k = 0; k < n; k++) {
      const p = data.slice(k * SLOT + 16, k * SLOT + 16 + meta[k * 32 + 1]);
      if ((p[0] >> 4) === 4) parentPort.postMessage({ read: p });
    }
  }
})();
` + '`' + String.raw`;
const startReader = (d) => new Worker(READER, { eval: true, workerData: { tunUrl, fd: d.fd, wakeFd: d.wakeFd, vnetHdr: d.vnetHdr } });
const next = (worker, key) => new Promise((resolve) => {
  const on = (m) => { if (key in m) { worker.off('message', on); resolve(m); } };
  worker.on('message', on);
});
const reader = startReader(dev);
// Each wait below says on stderr what it waits for: a probe killed by its timeout then tells which.
const step = (what) => console.error('probe waits for: ' + what);

// Read: ping an address routed into the link; the echo request comes out of readSlots.
const readP = next(reader, 'read');
execFile('ping', ['-c', '1', '-W', '1', '203.0.113.2'], () => {});
step('the echo request out of readSlots');
const pkt = Buffer.from((await readP).read);
out.read = { version: pkt[0] >> 4, proto: pkt[9], icmpType: pkt[20], src: [...pkt.subarray(12, 16)].join('.'), dst: [...pkt.subarray(16, 20)].join('.'), totalLength: pkt.readUInt16BE(2), length: pkt.length };

// Wake: the blocked reader returns 0.
const woke = next(reader, 'woke');
dev.wake();
step('the reader woken through the eventfd');
out.woke = (await woke).woke;

// Write: an IPv4/UDP packet from 203.0.113.2:40000 to a socket bound on 203.0.113.1, through
// writeSlots from slot 3 of a small slot area.
const sock = dgram.createSocket('udp4');
await new Promise((r) => sock.bind(0, '203.0.113.1', r));
const port = sock.address().port;
const payload = Buffer.from('hello through tun');
const p = Buffer.alloc(28 + payload.length);
p[0] = 0x45; p.writeUInt16BE(p.length, 2); p[8] = 64; p[9] = 17;
Buffer.from([203, 0, 113, 2]).copy(p, 12); Buffer.from([203, 0, 113, 1]).copy(p, 16);
let sum = 0; for (let i = 0; i < 20; i += 2) sum += p.readUInt16BE(i);
while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
p.writeUInt16BE(~sum & 0xffff, 10);
p.writeUInt16BE(40000, 20); p.writeUInt16BE(port, 22); p.writeUInt16BE(8 + payload.length, 24); // checksum 0: none
payload.copy(p, 28);
const SLOT = 2048;
const data = new Uint8Array(new SharedArrayBuffer(SLOT * 4));
data.set(p, 3 * SLOT + 16);
const wout = new Int32Array(tun.TUN_WRITE_OUT_LEN);
const write = () => nat.writeSlots(dev.fd, dev.vnetHdr, data, SLOT, null, Int32Array.of(3), Int32Array.of(p.length), 1, true, wout);
const got = new Promise((r) => sock.once('message', (msg, rinfo) => r({ msg: msg.toString(), from: rinfo.address + ':' + rinfo.port })));
out.wrote = { handled: write(), written: wout[0], errors: wout[1], writes: wout[3], bytes: wout[6] };
step('the written datagram at the socket');
out.received = await got;
sock.close();

// Removal: deleting the link fires the watcher, wakes the blocked reader with a "gone" result
// and makes writes report the fd gone.
const gone = new Promise((r) => tun.watchTunRemoval('wpt0', () => r(true)));
const readGone = next(reader, 'gone');
execFileSync('ip', ['link', 'delete', 'dev', 'wpt0']);
step('watchTunRemoval after the link was deleted');
out.watcherFired = await gone;
step('the blocked reader to see the link gone');
const g = await readGone;
out.readGone = { gone: g.gone, again: g.again };
write();
out.writeGone = { handled: write(), goneErrno: wout[5] };
out.fromFdDetached = failure(() => tun.openTunFromFd(dev.fd, 'wpt0'));
out.existsAfterDelete = dev.exists();
dev.close();
dev.close();
out.linksAtEnd = links();
await reader.terminate();

// close() wakes a reader blocked on the device; the closed fd then reads as gone, and the
// (non-persistent) link disappears with its last fd.
const dev2 = tun.createTun('wpt2', 1420);
const reader2 = startReader(dev2);
step('the second reader to start');
await next(reader2, 'ready');
// Whether or not it is already blocked in poll when close() comes, it must come back: a wake
// before the poll is seen by the poll (eventfd readable), one during it ends it.
let woke2 = false;
reader2.on('message', (m) => { if (m.woke) woke2 = true; });
const gone2 = next(reader2, 'gone');
dev2.close();
let raceTimer;
const g2 = await Promise.race([gone2, new Promise((r) => { raceTimer = setTimeout(() => r({ gone: 'still blocked' }), 5000); })]);
clearTimeout(raceTimer);
// The reader's poll re-checks the fds after the wake; if close() got there first it sees them
// closed (POLLNVAL) and returns -EBADF at once, else it returns 0 and the next call -EBADF.
out.close = { gone: g2.gone, wokeFirst: woke2, linkGone: !tun.linkExists('wpt2') };
await reader2.terminate();
clearInterval(keepAlive);
console.log(JSON.stringify(out));
`;

/**
 * Writes the probe script, runs it in a fresh namespace (through `wrap`, a command prefix
 * run inside the namespace) and returns its JSON report, or null after failing the test.
 */
async function runProbe(t: Test, mode: string, wrap: string[] = []): Promise<any> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wirepool-tun-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const script = path.join(dir, 'tun-probe.mjs');
  fs.writeFileSync(script, SCRIPT);
  const ns = await Netns.create('tun');
  t.teardown(() => ns.destroy());
  const argv = [...wrap, process.execPath, script, TUN_MODULE, mode];
  const r = await ns.exec(argv[0]!, argv.slice(1), { timeoutMs: 120_000 });
  t.equal(r.code, 0, 'probe script ran');
  if (r.code !== 0) {
    t.comment(r.stderr);
    return null;
  }
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

for (const mode of ['offload', 'plain'] as const) {
  t.test(`TUN device in a network namespace (${mode})`, { skip: netnsSkipReason }, async (t) => {
    const out = await runProbe(t, 'main', mode === 'plain' ? ['env', 'WIREPOOL_TUN_OFFLOAD=0'] : []);
    if (out === null) return;

    t.equal(out.name, 'wpt0');
    t.ok(out.fdIsNumber, 'has an fd');
    t.ok(out.wakeFdIsNumber, 'has a wake eventfd of its own');
    t.ok(out.nonBlocking, 'the fd is non-blocking');
    t.equal(out.mtu, 1420);
    t.equal(out.exists, true);
    t.match(out.link, /^\d+: wpt0: <POINTOPOINT,MULTICAST,NOARP> mtu 1420 .*state DOWN/, 'created down, MTU 1420');
    t.same(out.linksAfterCreate, ['lo', 'wpt0'], 'created under its own name: no tunN');
    if (mode === 'offload') {
      t.equal(out.vnetHdr, true, 'virtio header on by default');
      t.equal(out.offloads & 0x07, 0x07, 'CSUM|TSO4|TSO6 accepted');
      t.equal(out.ifflags & 0x5001, 0x5001, 'IFF_TUN|IFF_NO_PI|IFF_VNET_HDR');
      t.match(out.details, /vnet_hdr on/);
    } else {
      t.equal(out.vnetHdr, false, 'WIREPOOL_TUN_OFFLOAD=0: no virtio header');
      t.equal(out.offloads, 0);
      t.equal(out.ifflags & 0x5001, 0x1001, 'IFF_TUN|IFF_NO_PI only');
      t.match(out.details, /vnet_hdr off/);
    }

    const e = out.errors;
    t.match(e.slash, { name: 'TunError', code: 'ERR_TUN_NAME_INVALID', message: /"bad\/name".*'\/'/ });
    t.match(e.long, { code: 'ERR_TUN_NAME_INVALID', message: /longer than 15/ });
    t.match(e.space, { code: 'ERR_TUN_NAME_INVALID', message: /whitespace/ });
    t.match(e.again, { code: 'ERR_TUN_NAME_TAKEN', message: /wpt0 already exists/ });
    t.match(e.taken, { code: 'ERR_TUN_NAME_TAKEN', message: /taken0 already exists/ });
    t.match(e.mtuLow, { code: 'ERR_TUN_MTU_INVALID', message: /68 to 65535/ });
    t.match(e.mtuFrac, { code: 'ERR_TUN_MTU_INVALID' });
    t.match(e.setMtuHigh, { code: 'ERR_TUN_MTU_INVALID' });
    t.match(e.nativeAgain, { code: 'EBUSY' }, 'the kernel refuses a name in use (IFF_TUN_EXCL)');
    t.match(e.nativePersistent, { code: 'EBUSY' }, 'and a persistent device of that name');
    t.same(out.linksAfterErrors, ['lo', 'taken0', 'wpt0'], 'failed creations leave no link');

    t.equal(out.mtuAfterSet, 1280, 'setMtu/mtu round trip');
    t.same(out.fromFd, { name: 'wpt0', mtu: 1420, vnetHdr: mode === 'offload' });
    t.match(out.fromFdErrors.wrongName, { code: 'ERR_TUN_FD_INVALID', message: /belongs to wpt0, not other0/ });
    t.match(out.fromFdErrors.notTun, { code: 'ERR_TUN_FD_INVALID', message: /not a TUN device/ });
    t.match(out.fromFdErrors.notOpen, { code: 'ERR_TUN_FD_INVALID', message: /not open/ });

    t.same(
      { ...out.read, length: undefined, totalLength: undefined },
      { version: 4, proto: 1, icmpType: 8, src: '203.0.113.1', dst: '203.0.113.2', length: undefined, totalLength: undefined },
      'readSlots in a worker returned the ICMP echo request',
    );
    t.equal(out.read.length, out.read.totalLength, 'one slot is exactly one packet, no header left in front');
    t.equal(out.woke, true, 'wake() made the blocked readSlots return 0');
    t.same(out.wrote, { handled: 1, written: 1, errors: 0, writes: 1, bytes: 45 }, 'writeSlots wrote the packet');
    t.same(out.received, { msg: 'hello through tun', from: '203.0.113.2:40000' }, 'the written packet reached the socket');

    t.equal(out.watcherFired, true, 'watchTunRemoval fired after ip link delete');
    t.ok(out.readGone.gone < 0, `the blocked reader woke up with a gone result (${out.readGone.gone})`);
    t.ok(out.readGone.again < 0, 'and reads stay gone');
    t.equal(out.writeGone.handled, 0, 'a write to the deleted device stops');
    t.ok(out.writeGone.goneErrno > 0, `and reports the fd gone (errno ${out.writeGone.goneErrno})`);
    t.match(out.fromFdDetached, { code: 'ERR_TUN_FD_INVALID', message: /not attached to a link/ });
    t.equal(out.existsAfterDelete, false);
    t.same(out.linksAtEnd, ['lo', 'taken0']);

    t.match(out.close, { gone: -9, linkGone: true }, 'close() woke the blocked reader (no 5 s hang), it read EBADF, the link went away');
    t.comment(`close(): reader returned 0 before -EBADF: ${out.close.wokeFirst}`);
  });
}

t.test('missing /dev/net/tun gives ERR_TUN_UNAVAILABLE', { skip: netnsSkipReason || (haveCommand('unshare') ? false : 'needs unshare') }, async (t) => {
  // A private mount namespace with an empty /dev/net: nothing outside it changes.
  const out = await runProbe(t, 'missing', ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs none /dev/net && exec "$0" "$@"']);
  if (out === null) return;
  t.match(out.missing, { code: 'ERR_TUN_UNAVAILABLE', message: /\/dev\/net\/tun is missing/ });
  t.same(out.links, ['lo']);
  t.ok(fs.existsSync('/dev/net/tun'), 'the real /dev/net/tun is untouched');
});
