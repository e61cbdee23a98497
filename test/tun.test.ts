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
// fires watchTunRemoval; close() of a second device ends its reader, blocked in poll, with EBADF
// (the closed mark on its wake eventfd; a plain wake is consumed and returns 0) and removes the link.
//
// Multi-queue (IFF_MULTI_QUEUE): flowQueue, the writer's flow hash, is checked without a device
// (symmetric for IPv4/IPv6 TCP/UDP, spreads flows, 0 for what it cannot parse); writeSlots with an
// Int32Array of "queue fds" (SOCK_SEQPACKET socketpairs standing in for the queues) must put every
// packet, and every GRO-merged group, on the queue flowQueue names, and stop on a queue fd that is
// gone. In a namespace: createTun with queues 2 attaches two fds to one link with IFF_MULTI_QUEUE,
// replies to flows written through the queues come back on each flow's queue (the kernel's flow
// steering the writer relies on), GRO over the queues writes, close() wakes both readers and
// removes the link; queues 1 stays single-queue; invalid queue counts are refused.

import t, { type Test } from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Netns, haveCommand, netnsSkipReason } from './helpers/netns.js';

// Namespaces_ worker threads and real traffic: more than tap's default 30 s on a loaded machine.
t.setTimeout(300_000);

const TUN_MODULE = new URL('../src/io/tun.js', import.meta.url).href;

// For the probes: resolves true once `n` threads of this process are blocked in poll() on two
// fds with no timeout (readSlots with a wake eventfd, timeout -1), read from each thread's
// /proc/self/task/<tid>/syscall; false if that does not happen within 10 s.
const BLOCKED_IN_POLL = String.raw`
const blockedInPoll = async (n) => {
  const inPoll = () => fs.readdirSync('/proc/self/task').filter((tid) => {
    try { return /^7 0x[0-9a-f]+ 0x2 0xffffffff /.test(fs.readFileSync('/proc/self/task/' + tid + '/syscall', 'latin1')); } catch { return false; }
  }).length;
  for (const end = Date.now() + 10000; Date.now() < end;) {
    if (inPoll() >= n) return true;
    await new Promise((r) => setTimeout(r, 2));
  }
  return false;
};
`;

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
${BLOCKED_IN_POLL}
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
// A reader that fails or exits first rejects (the probe then dies saying so, instead of waiting
// for its timeout).
const next = (worker, key) => new Promise((resolve, reject) => {
  const done = () => { worker.off('message', on); worker.off('error', failed); worker.off('exit', exited); };
  const on = (m) => { if (key in m) { done(); resolve(m); } };
  const failed = (err) => { done(); reject(new Error('the reader failed before "' + key + '": ' + (err && err.stack || err))); };
  const exited = (code) => { done(); reject(new Error('the reader exited (' + code + ') before "' + key + '"')); };
  worker.on('message', on);
  worker.on('error', failed);
  worker.on('exit', exited);
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

// close() marks the wake eventfd closed: a reader blocked on the device returns -EBADF, the
// (non-persistent) link disappears with its last fd.
const dev2 = tun.createTun('wpt2', 1420);
// The mark, in this thread: a call made after close() marked the eventfd but before the fds are
// closed returns -EBADF at once and leaves the mark for the next call; a plain wake is consumed
// (0), so a reader woken that way and calling again would wait (here: for the 1 s timeout).
{
  const efd = nat.eventfd();
  const d = new Uint8Array(2048), m = new Int32Array(32), o = new Int32Array(8);
  const call = () => nat.readSlots(dev2.fd, efd, dev2.vnetHdr, d, 2048, m, Int32Array.of(0), 1, 1000, o);
  nat.wake(efd);
  const woken = call();
  nat.wake(efd, true);
  out.mark = { woken, closed: call(), again: call() };
  fs.closeSync(efd);
}
const reader2 = startReader(dev2);
step('the second reader to start');
await next(reader2, 'ready');
step('the second reader to block in poll');
out.blockedBeforeClose = await blockedInPoll(1);
let woke2 = false;
reader2.on('message', (m) => { if (m.woke) woke2 = true; });
const gone2 = next(reader2, 'gone');
dev2.close();
let raceTimer;
const g2 = await Promise.race([gone2, new Promise((r) => { raceTimer = setTimeout(() => r(null), 5000); })]);
clearTimeout(raceTimer);
if (g2 === null) {
  // A thread inside a native call can be neither terminated nor joined: exit without it.
  console.error('the second reader is still blocked 5 s after close()');
  process.kill(process.pid, 'SIGKILL');
}
out.close = { gone: g2.gone, again: g2.again, wokeFirst: woke2, linkGone: !tun.linkExists('wpt2') };
await reader2.terminate();
clearInterval(keepAlive);
console.log(JSON.stringify(out));
`;

/**
 * Writes the probe script, runs it in a fresh namespace (through `wrap`, a command prefix
 * run inside the namespace) and returns its JSON report, or null after failing the test.
 */
async function runProbe(t: Test, mode: string, wrap: string[] = [], script_ = SCRIPT): Promise<any> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wirepool-tun-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const script = path.join(dir, 'tun-probe.mjs');
  fs.writeFileSync(script, script_);
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

    t.same(out.mark, { woken: 0, closed: -9, again: -9 }, 'a plain wake is consumed (0); the closed mark reads as EBADF and stays');
    t.equal(out.blockedBeforeClose, true, 'the second reader was blocked in poll when close() came');
    t.match(out.close, { gone: -9, again: -9, wokeFirst: false, linkGone: true }, 'close() ended the blocked reader with EBADF (not a wake), the link went away');
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

// ---- multi-queue ------------------------------------------------------------------------------

const tunMod = await import(TUN_MODULE) as typeof import('../src/io/tun.js');
const udpMod = await import(new URL('../src/io/udp-native.js', import.meta.url).href) as typeof import('../src/io/udp-native.js');
let addonSkip: string | false = false;
let nat: ReturnType<typeof tunMod.tunNative> | null = null;
try {
  nat = tunMod.tunNative();
  udpMod.udpNative();
} catch (err) {
  addonSkip = `addons not built: ${(err as Error).message}`;
}

const TCP = 6, UDP = 17, ICMP = 1;

function sum16(b: Uint8Array, start: number, end: number, acc = 0): number {
  let i = start;
  for (; i + 1 < end; i += 2) acc += (b[i]! << 8) | b[i + 1]!;
  if (i < end) acc += b[i]! << 8;
  return acc;
}
const fold = (a: number): number => { while (a > 0xffff) a = (a & 0xffff) + Math.floor(a / 0x10000); return a; };

interface Flow { v6: boolean; proto: number; src: number[]; dst: number[]; sport: number; dport: number }

const reversed = (f: Flow): Flow => ({ ...f, src: f.dst, dst: f.src, sport: f.dport, dport: f.sport });

/** An IP packet of the flow with valid IPv4 header and L4 checksums; TCP: ACK, sequence number seq. */
function packet(f: Flow, payload = 16, seq = 1000, fragOffset = 0): Uint8Array {
  const iphl = f.v6 ? 40 : 20;
  const l4hl = f.proto === TCP ? 20 : 8;
  const p = new Uint8Array(iphl + l4hl + payload);
  const dv = new DataView(p.buffer);
  if (f.v6) {
    p[0] = 0x60;
    dv.setUint16(4, p.length - 40);
    p[6] = f.proto;
    p[7] = 64;
    p.set(f.src, 8);
    p.set(f.dst, 24);
  } else {
    p[0] = 0x45;
    dv.setUint16(2, p.length);
    dv.setUint16(6, fragOffset);
    p[8] = 64;
    p[9] = f.proto;
    p.set(f.src, 12);
    p.set(f.dst, 16);
    dv.setUint16(10, ~fold(sum16(p, 0, 20)) & 0xffff);
  }
  for (let i = 0; i < payload; i++) p[iphl + l4hl + i] = (i * 7 + f.sport) & 0xff;
  if (f.proto === TCP || f.proto === UDP) {
    dv.setUint16(iphl, f.sport);
    dv.setUint16(iphl + 2, f.dport);
  }
  const l4len = p.length - iphl;
  if (f.proto === TCP) {
    dv.setUint32(iphl + 4, seq);
    dv.setUint32(iphl + 8, 777);
    p[iphl + 12] = 5 << 4;
    p[iphl + 13] = 0x10; // ACK
    dv.setUint16(iphl + 14, 65535);
  } else if (f.proto === UDP) {
    dv.setUint16(iphl + 4, l4len);
  }
  if (f.proto === TCP || f.proto === UDP) {
    const pseudo = (f.v6 ? sum16(p, 8, 40) : sum16(p, 12, 20)) + f.proto + l4len;
    const c = ~fold(sum16(p, iphl, p.length, pseudo)) & 0xffff;
    dv.setUint16(iphl + (f.proto === TCP ? 16 : 6), c === 0 && f.proto === UDP ? 0xffff : c);
  }
  return p;
}

const v4a = [10, 1, 2, 3], v4b = [192, 168, 77, 9];
const v6a = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const v6b = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0x12, 0x34];
const families = [
  { label: 'IPv4', v6: false, a: v4a, b: v4b },
  { label: 'IPv6', v6: true, a: v6a, b: v6b },
];

t.test('flowQueue: symmetric, spreads flows, 0 for what it cannot parse', { skip: addonSkip }, async (t) => {
  const n = nat!;
  for (const fam of families) {
    for (const proto of [TCP, UDP]) {
      const label = `${fam.label} ${proto === TCP ? 'TCP' : 'UDP'}`;
      const hits = new Set<number>();
      let asymmetric = 0;
      for (let i = 0; i < 64; i++) {
        // Vary the source port, and every 8th flow the source address too.
        const src = [...fam.a];
        src[src.length - 1] = (src[src.length - 1]! + (i >> 3)) & 0xff;
        const f: Flow = { v6: fam.v6, proto, src, dst: fam.b, sport: 40000 + i * 13, dport: 443 };
        const q = n.flowQueue(packet(f), 4);
        hits.add(q);
        if (n.flowQueue(packet(reversed(f)), 4) !== q) asymmetric++;
        // Swapping only the addresses, or only the ports, is another flow: it need not match,
        // but swapping both must.
      }
      t.equal(asymmetric, 0, `${label}: a→b and b→a pick the same queue (64 flows)`);
      t.same([...hits].sort(), [0, 1, 2, 3], `${label}: 64 flows hit every queue of 4`);
      const f: Flow = { v6: fam.v6, proto, src: fam.a, dst: fam.b, sport: 5000, dport: 6000 };
      t.equal(n.flowQueue(packet(f), 1), 0, `${label}: one queue → 0`);
      const q7 = n.flowQueue(packet(f), 7);
      t.ok(q7 >= 0 && q7 < 7, `${label}: queue in range for 7 queues (${q7})`);
    }
    // Ports are part of the flow: one address pair with different ports spreads.
    const byPort = new Set<number>();
    for (let i = 0; i < 64; i++) byPort.add(n.flowQueue(packet({ v6: fam.v6, proto: UDP, src: fam.a, dst: fam.b, sport: 1024 + i, dport: 53 }), 4));
    t.equal(byPort.size, 4, `${fam.label}: one address pair, 64 port pairs → every queue`);
    // Other protocols: addresses (and protocol) only, still symmetric.
    let icmpAsym = 0;
    for (let i = 0; i < 16; i++) {
      const src = [...fam.a];
      src[src.length - 1] = i;
      const f: Flow = { v6: fam.v6, proto: ICMP, src, dst: fam.b, sport: 0, dport: 0 };
      if (n.flowQueue(packet(f), 4) !== n.flowQueue(packet(reversed(f)), 4)) icmpAsym++;
    }
    t.equal(icmpAsym, 0, `${fam.label}: a protocol without ports is symmetric too`);
  }

  // IPv4 fragments after the first have no ports: what is where the ports would be is ignored.
  const frag = new Set<number>();
  const first = new Set<number>();
  for (let i = 0; i < 32; i++) {
    const f: Flow = { v6: false, proto: UDP, src: v4a, dst: v4b, sport: 2000 + i, dport: 9 };
    frag.add(n.flowQueue(packet(f, 16, 0, 185 /* offset 1480 */), 4));
    first.add(n.flowQueue(packet(f, 16, 0, 0x2000 /* MF, offset 0 */), 4));
  }
  t.equal(frag.size, 1, 'non-first IPv4 fragments: ports not read');
  t.equal(first.size, 4, 'the first IPv4 fragment (MF set) is hashed with its ports');
  // IPv6 with an extension header (here Fragment, 44) before TCP/UDP: addresses only.
  const ext = new Set<number>();
  for (let i = 0; i < 32; i++) ext.add(n.flowQueue(packet({ v6: true, proto: 44, src: v6a, dst: v6b, sport: 3000 + i, dport: 9 }), 4));
  t.equal(ext.size, 1, 'IPv6 next header not TCP/UDP: bytes after the header are not ports');

  const good = packet({ v6: false, proto: UDP, src: v4a, dst: v4b, sport: 1, dport: 2 });
  const ver0 = Uint8Array.from(good);
  ver0[0] = 0x05;
  const ver5 = Uint8Array.from(good);
  ver5[0] = 0x55;
  const badIhl = Uint8Array.from(good);
  badIhl[0] = 0x4f; // 60-byte header in a 44-byte packet
  const shortV6 = packet({ v6: true, proto: UDP, src: v6a, dst: v6b, sport: 1, dport: 2 }).subarray(0, 39);
  for (const [what, p] of [
    ['empty', new Uint8Array(0)], ['10 bytes', good.subarray(0, 10)], ['version 0', ver0], ['version 5', ver5],
    ['IPv4 header longer than the packet', badIhl], ['IPv6 shorter than its header', shortV6],
  ] as const) {
    let all0 = true;
    for (const q of [2, 3, 4, 8]) if (n.flowQueue(p, q) !== 0) all0 = false;
    t.ok(all0, `${what} → queue 0`);
  }
  t.throws(() => n.flowQueue(good, 0), RangeError, 'queues 0 is refused');
  t.throws(() => n.flowQueue([1, 2] as unknown as Uint8Array, 2), TypeError, 'not a Uint8Array');
});

const SLOT = 2048;

/** Packets into slots 0..n-1 of a fresh slot area. */
function slotsOf(pkts: readonly Uint8Array[]): { data: Uint8Array; slots: Int32Array; lens: Int32Array } {
  const data = new Uint8Array(SLOT * pkts.length);
  pkts.forEach((p, i) => data.set(p, i * SLOT + 16));
  return { data, slots: Int32Array.from(pkts, (_, i) => i), lens: Int32Array.from(pkts, (p) => p.length) };
}

/** Everything waiting on a non-blocking SOCK_SEQPACKET socket, one record per read. */
function drain(fd: number): Uint8Array[] {
  const got: Uint8Array[] = [];
  const buf = Buffer.alloc(70_000);
  for (;;) {
    try {
      const n = fs.readSync(fd, buf);
      got.push(Uint8Array.from(buf.subarray(0, n)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return got;
      throw err;
    }
  }
}

/** `count` socketpairs: [the writer's ends (the "queue fds"), the reader's ends]. */
function queuePairs(t: Test, count: number): [Int32Array, number[]] {
  const w: number[] = [], r: number[] = [];
  for (let i = 0; i < count; i++) {
    const [a, b] = udpMod.udpNative().socketpair();
    w.push(a);
    r.push(b);
  }
  t.teardown(() => { for (const fd of [...w, ...r]) fs.closeSync(fd); });
  return [Int32Array.from(w), r];
}

const hex = (p: Uint8Array): string => Buffer.from(p).toString('hex');

t.test('writeSlots with queue fds writes each packet on the queue flowQueue picks', { skip: addonSkip }, async (t) => {
  const n = nat!;
  const Q = 3;
  const [fds, readers] = queuePairs(t, Q);
  const pkts: Uint8Array[] = [];
  for (let i = 0; i < 48; i++) {
    const fam = families[i & 1]!;
    const proto = [TCP, UDP, ICMP][i % 3]!;
    const f: Flow = { v6: fam.v6, proto, src: fam.a, dst: fam.b, sport: 10000 + i * 31, dport: 80 };
    pkts.push(packet(i % 4 === 3 ? reversed(f) : f, 20 + i));
  }
  const { data, slots, lens } = slotsOf(pkts);
  const out = new Int32Array(tunMod.TUN_WRITE_OUT_LEN);
  const W = tunMod.TUN_WRITE_OUT;
  const handled = n.writeSlots(fds, false, data, SLOT, null, slots, lens, pkts.length, false, out);
  t.equal(handled, pkts.length, 'every packet handled');
  t.same([out[W.WRITTEN], out[W.WRITES], out[W.ERRORS], out[W.GONE_ERRNO]], [pkts.length, pkts.length, 0, 0], 'written one by one, no errors');
  const expected = Array.from({ length: Q }, () => [] as string[]);
  for (const p of pkts) expected[n.flowQueue(p, Q)]!.push(hex(p));
  const got = readers.map((fd) => drain(fd).map(hex));
  for (let q = 0; q < Q; q++) {
    t.ok(expected[q]!.length > 0, `queue ${q} is used (${expected[q]!.length} packets)`);
    t.same(got[q], expected[q], `queue ${q} got exactly its flows' packets, in order`);
  }

  // One fd, as a number or a one-entry Int32Array: everything on it.
  for (const one of [fds[1]!, Int32Array.of(fds[1]!)]) {
    t.equal(n.writeSlots(one, false, data, SLOT, null, slots, lens, pkts.length, false, out), pkts.length);
    t.same(readers.map((fd) => drain(fd).length), [0, pkts.length, 0], `one fd (${typeof one === 'number' ? 'number' : 'Int32Array of 1'}): all on it`);
  }

  t.throws(() => n.writeSlots(new Int32Array(0), false, data, SLOT, null, slots, lens, 1, false, out), TypeError, 'an empty fd list is refused');
  t.throws(() => n.writeSlots(Float64Array.of(fds[0]!) as unknown as Int32Array, false, data, SLOT, null, slots, lens, 1, false, out), TypeError, 'fds must be an Int32Array');
});

t.test('writeSlots with queue fds: a GRO group goes to its flow\'s queue; a gone queue fd stops the call', { skip: addonSkip }, async (t) => {
  const n = nat!;
  const [fds, readers] = queuePairs(t, 2);
  // Two TCP flows on different queues, segments interleaved: each coalesces into one GSO write.
  const base: Flow = { v6: false, proto: TCP, src: v4a, dst: v4b, sport: 30000, dport: 443 };
  const flows: Flow[] = [];
  for (let port = 30000; flows.length < 2; port++) {
    const f = { ...base, sport: port };
    if (flows.length === 0 || n.flowQueue(packet(f), 2) !== n.flowQueue(packet(flows[0]!), 2)) flows.push(f);
  }
  const pkts: Uint8Array[] = [];
  for (let k = 0; k < 3; k++) for (const f of flows) pkts.push(packet(f, 100, 5000 + k * 100));
  const { data, slots, lens } = slotsOf(pkts);
  const out = new Int32Array(tunMod.TUN_WRITE_OUT_LEN);
  const W = tunMod.TUN_WRITE_OUT;
  t.equal(n.writeSlots(fds, true, data, SLOT, null, slots, lens, pkts.length, true, out), 6);
  t.same([out[W.WRITTEN], out[W.WRITES], out[W.COALESCED], out[W.ERRORS]], [6, 2, 4, 0], 'two GSO writes of three segments');
  for (const f of flows) {
    const q = n.flowQueue(packet(f), 2);
    const recs = drain(readers[q]!);
    t.equal(recs.length, 1, `flow :${f.sport} → queue ${q}: one write`);
    const r = recs[0]!;
    const ip = r.subarray(10);
    t.same([r[1], ip.length, (ip[20]! << 8) | ip[21]!], [1 /* GSO_TCPV4 */, 20 + 20 + 300, f.sport], 'the merged packet of that flow');
    t.equal(n.flowQueue(ip, 2), q, 'which flowQueue puts on that queue');
  }

  // Queue 1 is not an open fd: packets before the first one for queue 1 are written, then the call stops.
  const many: Uint8Array[] = [];
  for (let i = 0; i < 16; i++) many.push(packet({ ...base, proto: UDP, sport: 20000 + i }));
  const firstQ1 = many.findIndex((p) => n.flowQueue(p, 2) === 1);
  t.ok(firstQ1 > 0, `a packet for queue 1 after some for queue 0 (index ${firstQ1})`);
  const m = slotsOf(many);
  const handled = n.writeSlots(Int32Array.of(fds[0]!, 987), false, m.data, SLOT, null, m.slots, m.lens, many.length, false, out);
  t.equal(handled, firstQ1, 'stops at the first packet for the gone queue');
  t.equal(out[W.GONE_ERRNO], 9, 'GONE_ERRNO EBADF');
  t.equal(drain(readers[0]!).length, firstQ1, 'the earlier packets went to queue 0');
});

// Runs inside the namespace: node script.mjs <tun.js URL> <mode>. Prints one JSON line.
const MQ_SCRIPT = String.raw`
import fs from 'node:fs';
import dgram from 'node:dgram';
import { execFileSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
const [tunUrl] = process.argv.slice(2);
const tun = await import(tunUrl);
const nat = tun.tunNative();
const out = {};
const links = () => execFileSync('ip', ['-o', 'link', 'show']).toString().split('\n')
  .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1]).filter(Boolean).sort();
const failure = (fn) => { try { fn(); return null; } catch (e) { return { code: e.code, message: e.message, name: e.name }; } };
const step = (what) => console.error('probe waits for: ' + what);
${BLOCKED_IN_POLL}
const nonBlocking = (fd) => (parseInt(/flags:\s+(\d+)/.exec(fs.readFileSync('/proc/self/fdinfo/' + fd, 'latin1'))[1], 8) & 0o4000) !== 0;

out.invalid = { zero: failure(() => tun.createTun('wpq9', 1420, { queues: 0 })), nine: failure(() => tun.createTun('wpq9', 1420, { queues: 9 })),
  frac: failure(() => tun.createTun('wpq9', 1420, { queues: 1.5 })) };

const one = tun.createTun('wpq1', 1420, { queues: 1 });
out.one = { queueFds: one.queueFds, flags: nat.query(one.fd).flags };
one.close();

const dev = tun.createTun('wpq0', 1420, { queues: 2 });
const q1 = dev.queueFds[0];
out.dev = { queueFds: dev.queueFds.length, queueWakeFds: dev.queueWakeFds.length, vnetHdr: dev.vnetHdr,
  q0: nat.query(dev.fd), q1: nat.query(q1), q1NonBlocking: nonBlocking(q1), distinct: new Set([dev.fd, q1, dev.wakeFd, dev.queueWakeFds[0]]).size,
  details: execFileSync('ip', ['-d', '-o', 'link', 'show', 'dev', 'wpq0']).toString(), links: links() };
out.again = failure(() => tun.createTun('wpq0', 1420, { queues: 2 }));

execFileSync('ip', ['addr', 'add', '10.99.7.1/24', 'dev', 'wpq0']);
execFileSync('ip', ['link', 'set', 'dev', 'wpq0', 'up']);
const fds = Int32Array.of(dev.fd, q1);
const SLOT = 2048;
const data = new Uint8Array(SLOT * 16);
const meta = new Int32Array(16 * 32);
const wout = new Int32Array(tun.TUN_WRITE_OUT_LEN);
const rout = new Int32Array(tun.TUN_READ_OUT_LEN);
const sum16 = (b, s, e, acc = 0) => { let i = s; for (; i + 1 < e; i += 2) acc += (b[i] << 8) | b[i + 1]; if (i < e) acc += b[i] << 8; return acc; };
const fold = (a) => { while (a > 0xffff) a = (a & 0xffff) + Math.floor(a / 0x10000); return a; };
// IPv4 from 10.99.7.2:sport to 10.99.7.1:dport, valid checksums (TCP: ACK, sequence seq).
const ip4 = (proto, sport, dport, payload, seq = 0) => {
  const l4 = proto === 6 ? 20 : 8;
  const p = Buffer.alloc(20 + l4 + payload);
  p[0] = 0x45; p.writeUInt16BE(p.length, 2); p[8] = 64; p[9] = proto;
  p.set([10, 99, 7, 2], 12); p.set([10, 99, 7, 1], 16);
  p.writeUInt16BE(~fold(sum16(p, 0, 20)) & 0xffff, 10);
  p.writeUInt16BE(sport, 20); p.writeUInt16BE(dport, 22);
  for (let i = 0; i < payload; i++) p[20 + l4 + i] = 97 + (i % 26);
  if (proto === 6) { p.writeUInt32BE(seq, 24); p.writeUInt32BE(1, 28); p[32] = 0x50; p[33] = 0x10; p.writeUInt16BE(65535, 34); }
  else p.writeUInt16BE(8 + payload, 24);
  const c = ~fold(sum16(p, 20, p.length, sum16(p, 12, 20) + proto + p.length - 20)) & 0xffff;
  p.writeUInt16BE(proto === 17 && c === 0 ? 0xffff : c, proto === 6 ? 36 : 26);
  return p;
};
const write = (pkts, gro) => {
  pkts.forEach((p, i) => data.set(p, i * SLOT + 16));
  const handled = nat.writeSlots(fds, dev.vnetHdr, data, SLOT, null, Int32Array.from(pkts, (_, i) => i), Int32Array.from(pkts, (p) => p.length), pkts.length, gro, wout);
  return { handled, written: wout[0], errors: wout[1], writes: wout[3], coalesced: wout[4] };
};

// Kernel steering: each UDP request is written on its flow's queue (writeSlots with both fds);
// the echo comes back through the link, and is read on the queue the flow was written on.
const sock = dgram.createSocket('udp4');
sock.on('message', (msg, r) => sock.send(msg, r.port, r.address));
await new Promise((r) => sock.bind(0, '10.99.7.1', r));
const port = sock.address().port;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
out.steer = [];
for (let i = 0; i < 16; i++) {
  const sport = 41000 + i * 7;
  const req = ip4(17, sport, port, 12);
  const w = write([req], false);
  let readOn = null;
  step('the echo of flow ' + sport);
  for (let tries = 0; tries < 400 && readOn === null; tries++) {
    for (const [q, fd] of [[0, dev.fd], [1, q1]]) {
      const n = nat.readSlots(fd, -1, dev.vnetHdr, data, SLOT, meta, Int32Array.from({ length: 8 }, (_, k) => k), 8, 0, rout);
      for (let k = 0; k < n; k++) {
        const p = data.subarray(k * SLOT + 16, k * SLOT + 16 + meta[k * 32 + 1]);
        if (p[0] === 0x45 && p[9] === 17 && ((p[20] << 8) | p[21]) === port && ((p[22] << 8) | p[23]) === sport) readOn = q;
      }
    }
    if (readOn === null) await sleep(5);
  }
  out.steer.push({ sport, wrote: w.written, want: nat.flowQueue(req, 2), readOn });
}
sock.close();

// GRO over the queues: four TCP segments of one flow, one GSO write with the header on.
out.gro = write([0, 1, 2, 3].map((k) => ip4(6, 5555, 5556, 200, 7000 + 200 * k)), true);

// close() ends the blocked readers of both queues (each queue's wake eventfd marked closed:
// -EBADF), closes every fd, and the link goes away. Each reader makes one blocking call and
// reports its result.
const READER = ` + '`' + String.raw`
const { workerData: w, parentPort } = require('node:worker_threads');
(async () => {
  const nat = (await import(w.tunUrl)).tunNative();
  const data = new Uint8Array(new SharedArrayBuffer(2048 * 4));
  const meta = new Int32Array(new SharedArrayBuffer(4 * 128));
  const out = new Int32Array(8);
  parentPort.postMessage({ ready: true });
  parentPort.postMessage({ back: nat.readSlots(w.fd, w.wakeFd, w.vnetHdr, data, 2048, meta, Int32Array.of(0, 1, 2, 3), 4, -1, out) });
})();
` + '`' + String.raw`;
// Down, nothing more is sent into the link; drop what is queued (the kernel's RSTs to the TCP
// segments above), so the readers block.
execFileSync('ip', ['link', 'set', 'dev', 'wpq0', 'down']);
for (const fd of [dev.fd, q1]) {
  while (nat.readSlots(fd, -1, dev.vnetHdr, data, SLOT, meta, Int32Array.from({ length: 8 }, (_, k) => k), 8, 0, rout) > 0);
}
const readers = [[dev.fd, dev.wakeFd], [q1, dev.queueWakeFds[0]]].map(([fd, wakeFd]) =>
  new Worker(READER, { eval: true, workerData: { tunUrl, fd, wakeFd, vnetHdr: dev.vnetHdr } }));
const next = (w, key) => new Promise((resolve) => { const on = (m) => { if (key in m) { w.off('message', on); resolve(m); } }; w.on('message', on); });
const back = readers.map((w) => next(w, 'back'));
step('the readers to start');
await Promise.all(readers.map((w) => next(w, 'ready')));
step('the readers to block in poll');
out.blockedBeforeClose = await blockedInPoll(2);
const allFds = [dev.fd, q1, dev.wakeFd, dev.queueWakeFds[0]];
step('close() to wake the readers');
dev.close();
let timer;
const g = await Promise.race([Promise.all(back), new Promise((r) => { timer = setTimeout(() => r(null), 5000); })]);
clearTimeout(timer);
out.close = { back: g && g.map((m) => m.back), fdsClosed: allFds.every((fd) => failure(() => fs.fstatSync(fd))?.code === 'EBADF'), linkGone: !tun.linkExists('wpq0'), links: links() };
step('the readers to end');
await Promise.all(readers.map((w) => w.terminate()));
console.log(JSON.stringify(out));
`;

for (const mode of ['offload', 'plain'] as const) {
  t.test(`multi-queue TUN in a network namespace (${mode})`, { skip: addonSkip || netnsSkipReason }, async (t) => {
    const out = await runProbe(t, 'mq', mode === 'plain' ? ['env', 'WIREPOOL_TUN_OFFLOAD=0'] : [], MQ_SCRIPT);
    if (out === null) return;
    const MQ = tunMod.IFF_MULTI_QUEUE;

    for (const k of ['zero', 'nine', 'frac'] as const) {
      t.match(out.invalid[k], { name: 'TunError', code: 'ERR_TUN_SETUP', message: /TUN queues .*from 1 to 8/ }, `queues ${k}: refused`);
    }
    t.same(out.one.queueFds, [], 'queues 1: no extra queue fds');
    t.equal(out.one.flags & MQ, 0, 'queues 1: no IFF_MULTI_QUEUE');

    const d = out.dev;
    t.equal(d.queueFds, 1, 'queues 2: one extra queue fd');
    t.equal(d.queueWakeFds, 1, 'with its own wake eventfd');
    t.equal(d.distinct, 4, 'fd, queue fd and wake fds all distinct');
    t.equal(d.vnetHdr, mode === 'offload');
    t.same([d.q0.name, d.q1.name], ['wpq0', 'wpq0'], 'both fds attached to the same link');
    t.ok(d.q0.flags & MQ, 'queue 0 has IFF_MULTI_QUEUE');
    t.ok(d.q1.flags & MQ, 'queue 1 has IFF_MULTI_QUEUE');
    t.equal(d.q0.flags, d.q1.flags, 'same flags on both');
    t.ok(d.q1NonBlocking, 'the queue fd is non-blocking');
    t.match(d.details, /multi_queue numqueues 2/, 'the kernel counts two queues');
    t.same(d.links, ['lo', 'wpq0'], 'failed creations left nothing; one link');
    t.match(out.again, { code: 'ERR_TUN_NAME_TAKEN' }, 'the name is still exclusive');

    t.ok(out.steer.every((s: { wrote: number }) => s.wrote === 1), 'every request written');
    t.same(new Set(out.steer.map((s: { want: number }) => s.want)).size, 2, 'the requests\' flows use both queues');
    t.same(out.steer.map((s: { readOn: number }) => s.readOn), out.steer.map((s: { want: number }) => s.want),
      'each echo was read on the queue its flow was written on (kernel flow steering)');

    if (mode === 'offload') {
      t.same(out.gro, { handled: 4, written: 4, errors: 0, writes: 1, coalesced: 3 }, 'GRO over the queues: one GSO write of four segments');
    } else {
      t.same(out.gro, { handled: 4, written: 4, errors: 0, writes: 4, coalesced: 0 }, 'no header: four plain writes');
    }

    t.equal(out.blockedBeforeClose, true, 'both readers were blocked in poll when close() came');
    t.same(out.close.back, [-9, -9], 'close() ended the blocked readers of both queues with EBADF');
    t.ok(out.close.fdsClosed, 'close() closed both queue fds and both eventfds');
    t.ok(out.close.linkGone, 'and the link went away');
    t.same(out.close.links, ['lo']);
  });
}
