// TUN device wrapper, exercised for real inside a throw-away network namespace: the
// compiled src/io/tun.js is driven by a small script run under `ip netns exec`, which
// reports what it saw as JSON. Checks: the link gets the requested name and MTU and no
// kernel-chosen tunN is left; bad names, taken names, bad MTUs and a missing /dev/net/tun
// give clear coded errors and leave no link behind; a worker's blocking readSync on the fd
// returns the IPv4 packet ping sent into the link, and its writeSync of a hand-built
// IPv4/UDP packet is delivered to a socket; openTunFromFd checks the fd; deleting the link
// wakes the blocked reader and fires watchTunRemoval.

import t, { type Test } from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Netns, haveCommand, netnsSkipReason } from './helpers/netns.js';

const TUN_MODULE = new URL('../src/io/tun.js', import.meta.url).href;

// Runs inside the namespace: node script.mjs <tun.js URL> <mode>. Prints one JSON line.
const SCRIPT = String.raw`
import fs from 'node:fs';
import dgram from 'node:dgram';
import { execFileSync, execFile } from 'node:child_process';
import { Worker } from 'node:worker_threads';
const [tunUrl, mode] = process.argv.slice(2);
const tun = await import(tunUrl);
const out = {};
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
out.mtu = dev.mtu();
out.exists = dev.exists();
out.link = execFileSync('ip', ['-o', 'link', 'show', 'dev', 'wpt0']).toString();
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
};
out.linksAfterErrors = links();

dev.setMtu(1280);
out.mtuAfterSet = dev.mtu();
dev.setMtu(1420);

const again = tun.openTunFromFd(dev.fd, 'wpt0');
out.fromFd = { name: again.name, mtu: again.mtu() };
out.fromFdErrors = {
  wrongName: failure(() => tun.openTunFromFd(dev.fd, 'other0')),
  notTun: failure(() => tun.openTunFromFd(0, 'wpt0')),
  notOpen: failure(() => tun.openTunFromFd(987, 'wpt0')),
};

execFileSync('ip', ['addr', 'add', '203.0.113.1/24', 'dev', 'wpt0']);
execFileSync('ip', ['link', 'set', 'dev', 'wpt0', 'up']);

// Two workers, as in the data plane: one blocks in readSync and reports IPv4 packets,
// the other writes the packets it is sent.
const reader = new Worker(` + '`' + String.raw`
const fs = require('node:fs');
const { workerData: fd, parentPort } = require('node:worker_threads');
const buf = Buffer.alloc(2048);
for (;;) {
  let n;
  try {
    n = fs.readSync(fd, buf);
  } catch (e) {
    parentPort.postMessage({ readError: e.code });
    break;
  }
  if ((buf[0] >> 4) === 4) parentPort.postMessage({ read: Buffer.from(buf.subarray(0, n)) });
}
` + '`' + String.raw`, { eval: true, workerData: dev.fd });
const writer = new Worker(` + '`' + String.raw`
const fs = require('node:fs');
const { workerData: fd, parentPort } = require('node:worker_threads');
parentPort.on('message', (pkt) => parentPort.postMessage({ wrote: fs.writeSync(fd, pkt) }));
` + '`' + String.raw`, { eval: true, workerData: dev.fd });
const next = (worker, key) => new Promise((resolve) => {
  const on = (m) => { if (key in m) { worker.off('message', on); resolve(m[key]); } };
  worker.on('message', on);
});

// Read: ping an address routed into the link; the echo request comes out of the fd.
const readP = next(reader, 'read');
execFile('ping', ['-c', '1', '-W', '1', '203.0.113.2'], () => {});
const pkt = Buffer.from(await readP);
out.read = { version: pkt[0] >> 4, proto: pkt[9], icmpType: pkt[20], src: [...pkt.subarray(12, 16)].join('.'), dst: [...pkt.subarray(16, 20)].join('.'), totalLength: pkt.readUInt16BE(2), length: pkt.length };

// Write: an IPv4/UDP packet from 203.0.113.2:40000 to a socket bound on 203.0.113.1.
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
const got = new Promise((r) => sock.once('message', (msg, rinfo) => r({ msg: msg.toString(), from: rinfo.address + ':' + rinfo.port })));
writer.postMessage(p);
out.wrote = await next(writer, 'wrote');
out.received = await got;
sock.close();

// Removal: deleting the link fires the watcher and wakes the blocked reader.
const gone = new Promise((r) => tun.watchTunRemoval('wpt0', () => r(true)));
const readError = next(reader, 'readError');
execFileSync('ip', ['link', 'delete', 'dev', 'wpt0']);
out.watcherFired = await gone;
out.readError = await readError;
out.existsAfterDelete = dev.exists();
dev.close();
dev.close();
out.linksAtEnd = links();
await writer.terminate();
await reader.terminate();
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
  const r = await ns.exec(argv[0]!, argv.slice(1), { timeoutMs: 30_000 });
  t.equal(r.code, 0, 'probe script ran');
  if (r.code !== 0) {
    t.comment(r.stderr);
    return null;
  }
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

t.test('TUN device in a network namespace', { skip: netnsSkipReason }, async (t) => {
  const out = await runProbe(t, 'main');
  if (out === null) return;

  t.equal(out.name, 'wpt0');
  t.ok(out.fdIsNumber, 'has an fd');
  t.equal(out.mtu, 1420);
  t.equal(out.exists, true);
  t.match(out.link, /^\d+: wpt0: <POINTOPOINT,MULTICAST,NOARP> mtu 1420 .*state DOWN/, 'created down, MTU 1420');
  t.same(out.linksAfterCreate, ['lo', 'wpt0'], 'renamed in place: no tunN left');

  const e = out.errors;
  t.match(e.slash, { name: 'TunError', code: 'ERR_TUN_NAME_INVALID', message: /"bad\/name".*'\/'/ });
  t.match(e.long, { code: 'ERR_TUN_NAME_INVALID', message: /longer than 15/ });
  t.match(e.space, { code: 'ERR_TUN_NAME_INVALID', message: /whitespace/ });
  t.match(e.again, { code: 'ERR_TUN_NAME_TAKEN', message: /wpt0 already exists/ });
  t.match(e.taken, { code: 'ERR_TUN_NAME_TAKEN', message: /taken0 already exists/ });
  t.match(e.mtuLow, { code: 'ERR_TUN_MTU_INVALID', message: /68 to 65535/ });
  t.match(e.mtuFrac, { code: 'ERR_TUN_MTU_INVALID' });
  t.match(e.setMtuHigh, { code: 'ERR_TUN_MTU_INVALID' });
  t.same(out.linksAfterErrors, ['lo', 'taken0', 'wpt0'], 'failed creations leave no link');

  t.equal(out.mtuAfterSet, 1280, 'setMtu/mtu round trip');
  t.same(out.fromFd, { name: 'wpt0', mtu: 1420 });
  t.match(out.fromFdErrors.wrongName, { code: 'ERR_TUN_FD_INVALID', message: /belongs to wpt0, not other0/ });
  t.match(out.fromFdErrors.notTun, { code: 'ERR_TUN_FD_INVALID', message: /not a TUN device/ });
  t.match(out.fromFdErrors.notOpen, { code: 'ERR_TUN_FD_INVALID', message: /not open/ });

  t.same(
    { ...out.read, length: undefined, totalLength: undefined },
    { version: 4, proto: 1, icmpType: 8, src: '203.0.113.1', dst: '203.0.113.2', length: undefined, totalLength: undefined },
    'worker readSync returned the ICMP echo request',
  );
  t.equal(out.read.length, out.read.totalLength, 'one read is exactly one packet, no packet-info header');
  t.equal(out.wrote, 45, 'writeSync wrote the whole packet');
  t.same(out.received, { msg: 'hello through tun', from: '203.0.113.2:40000' }, 'the written packet reached the socket');

  t.equal(out.watcherFired, true, 'watchTunRemoval fired after ip link delete');
  t.equal(out.readError, 'EFAULT', 'the blocked reader woke up with an error');
  t.equal(out.existsAfterDelete, false);
  t.same(out.linksAtEnd, ['lo', 'taken0']);
});

t.test('missing /dev/net/tun gives ERR_TUN_UNAVAILABLE', { skip: netnsSkipReason || (haveCommand('unshare') ? false : 'needs unshare') }, async (t) => {
  // A private mount namespace with an empty /dev/net: nothing outside it changes.
  const out = await runProbe(t, 'missing', ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs none /dev/net && exec "$0" "$@"']);
  if (out === null) return;
  t.match(out.missing, { code: 'ERR_TUN_UNAVAILABLE', message: /\/dev\/net\/tun is missing/ });
  t.same(out.links, ['lo']);
  t.ok(fs.existsSync('/dev/net/tun'), 'the real /dev/net/tun is untouched');
});
