// --config files (src/config.ts): a whole file is checked before anything is applied, with
// wg(8)'s messages naming the file, line and value (never a key); the UAPI request a checked
// file becomes (setconf and syncconf forms); host-name endpoints resolved at load time
// (localhost from /etc/hosts; a .invalid name fails naming the host); a device that refuses
// the request (a taken listen port) is left as it was; loadConfigFile carries the metrics
// comments.

import t from 'tap';
import dns from 'node:dns';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, applyConfig, configToUapi, loadConfigFile, parseConfig, resolveEndpoints } from '../src/config.js';
import { UapiError, type UapiDevice, type UapiDeviceState } from '../src/uapi/protocol.js';
import { formatPrefix } from '../src/protocol/ipaddr.js';

const KEY_A = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
const KEY_B = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
const KEY_C = 'TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=';
const hex = (b64: string): string => Buffer.from(b64, 'base64').toString('hex');

const GOOD = [
  '[Interface]',
  `PrivateKey = ${KEY_A}`,
  'ListenPort = 51820',
  'Address = 10.0.0.1/24   # wg-quick only: ignored',
  '',
  '[Peer]',
  '# friendly_name = bob',
  `PublicKey = ${KEY_B}`,
  `PresharedKey = ${KEY_C}`,
  'Endpoint = 198.51.100.7:51821',
  'AllowedIPs = 10.0.0.2/32, fd00::2',
  'PersistentKeepalive = 25',
  '',
  '[Peer]',
  `PublicKey = ${KEY_C}`,
  'Endpoint = fd00::7:4500',
  'AllowedIPs = 10.0.1.0/24',
].join('\n');

t.test('a valid file becomes the `wg setconf` / `wg syncconf` UAPI request', async (t) => {
  const c = parseConfig(GOOD, 'wg0.conf');
  t.equal(configToUapi(c), [
    'set=1', 'listen_port=51820', `private_key=${hex(KEY_A)}`, 'replace_peers=true',
    `public_key=${hex(KEY_B)}`, 'replace_allowed_ips=true', `preshared_key=${hex(KEY_C)}`, 'endpoint=198.51.100.7:51821',
    'persistent_keepalive_interval=25', 'allowed_ip=10.0.0.2/32', 'allowed_ip=fd00::2/128',
    `public_key=${hex(KEY_C)}`, 'replace_allowed_ips=true', 'endpoint=[fd00::7]:4500', 'allowed_ip=10.0.1.0/24',
  ].join('\n') + '\n\n', 'setconf: replace_peers, unbracketed IPv6 endpoint as wg(8) splits it');
  const gone = '11'.repeat(32);
  t.equal(configToUapi(c, [hex(KEY_B), gone]), [
    'set=1', 'listen_port=51820', `private_key=${hex(KEY_A)}`, `public_key=${gone}`, 'remove=true',
    `public_key=${hex(KEY_B)}`, 'replace_allowed_ips=true', `preshared_key=${hex(KEY_C)}`, 'endpoint=198.51.100.7:51821',
    'persistent_keepalive_interval=25', 'allowed_ip=10.0.0.2/32', 'allowed_ip=fd00::2/128',
    `public_key=${hex(KEY_C)}`, 'replace_allowed_ips=true', `preshared_key=${'0'.repeat(64)}`, 'endpoint=[fd00::7]:4500', 'allowed_ip=10.0.1.0/24',
  ].join('\n') + '\n\n', 'syncconf: removals first, no replace_peers, a missing preshared key cleared');
  t.equal(configToUapi(parseConfig(`[Interface]\nPrivateKey = ${KEY_A}\nFwMark = 0x10\nListenPort = 1\n`)), `set=1\nlisten_port=1\nfwmark=16\nprivate_key=${hex(KEY_A)}\nreplace_peers=true\n\n`,
    'the device calls that can fail first: listen_port, then fwmark');
  t.equal(configToUapi(parseConfig('[Interface]\n'), []), 'set=1\n\n', 'settings the file leaves out are left as they are, as with wg(8)');
});

t.test('every error names the file, the line and the value, as wg(8) words it', async (t) => {
  const peer = (line: string): string => `[Interface]\n[Peer]\nPublicKey = ${KEY_B}\n${line}\n`;
  const cases: Array<[string, string, RegExp]> = [
    ['/33 prefix', peer('AllowedIPs = 10.0.0.3/32, 10.0.0.2/33'), /^wg0\.conf:4: AllowedIP is not in the correct format: `10\.0\.0\.2\/33'$/],
    ['octet over 255', peer('AllowedIPs = 10.0.0.300/32'), /^wg0\.conf:4: AllowedIP is not in the correct format: `10\.0\.0\.300\/32'$/],
    ['IPv6 /129', peer('AllowedIPs = fd00::/129'), /:4: AllowedIP is not in the correct format: `fd00::\/129'$/],
    ['not an address', peer('AllowedIPs = example.com/32'), /:4: AllowedIP is not in the correct format: `example\.com\/32'$/],
    ['endpoint without port', peer('Endpoint = 198.51.100.7'), /:4: Unable to find port of endpoint: `198\.51\.100\.7'$/],
    ['endpoint brace', peer('Endpoint = [fd00::1:51820'), /:4: Unable to find matching brace of endpoint: `\[fd00::1:51820'$/],
    ['endpoint port', peer('Endpoint = 198.51.100.7:65536'), /:4: Endpoint port is not a number from 0 to 65535: `198\.51\.100\.7:65536'$/],
    ['keepalive', peer('PersistentKeepalive = 70000'), /:4: Persistent keepalive interval is neither 0\/off nor 1-65535: `70000'$/],
    ['unknown peer key', peer('AllowedIP = 10.0.0.2/32'), /:4: Line unrecognized: unknown key `AllowedIP' in \[Peer\]$/],
    ['listen port', '[Interface]\nListenPort = 70000\n', /^wg0\.conf:2: ListenPort is not a port number from 0 to 65535: `70000'$/],
    ['fwmark', '[Interface]\nFwMark = 0x1ffffffff\n', /:2: Fwmark is neither 0\/off nor 0-0xffffffff: `0x1ffffffff'$/],
    ['outside a section', 'ListenPort = 1\n', /:1: Line unrecognized: `ListenPort' outside of an \[Interface\] or \[Peer\] section$/],
    ['no "="', '[Interface]\nListenPort 51820\n', /:2: Line unrecognized: expected Key = Value$/],
    ['peer without key', '[Interface]\n\n[Peer]\nAllowedIPs = 10.0.0.2/32\n', /^wg0\.conf:3: A peer is missing a public key$/],
  ];
  for (const [name, text, want] of cases) {
    const err = t.throws(() => parseConfig(text, 'wg0.conf'), ConfigError, name) as ConfigError;
    t.match(err.message, want, name);
  }
});

t.test('a malformed key is reported without its value', async (t) => {
  const secret = KEY_A.slice(0, 42) + 'B='; // non-zero padding bits: not a key
  for (const [text, line, what] of [
    [`[Interface]\nPrivateKey = ${secret}\n`, 2, 'PrivateKey'],
    [`[Interface]\nPrivateKey = ${KEY_A}x\n`, 2, 'PrivateKey'],
    [`[Peer]\nPublicKey = ${KEY_B}\nPresharedKey = ${KEY_A.slice(1)}\n`, 3, 'PresharedKey'],
    [`[Interface]\nPrivateKye = ${KEY_A}\n`, 2, 'PrivateKye'],
  ] as const) {
    const err = t.throws(() => parseConfig(text, 'k.conf')) as Error;
    t.match(err.message, new RegExp(`^k\\.conf:${line}: .*${what}`), what);
    t.notOk(err.message.includes(KEY_A.slice(1, 40)), `${what}: no key material in the message`);
  }
});

/** A UapiDevice that keeps state (peers, allowed IPs, endpoints), for checking what a request changed. */
class MemoryDevice implements UapiDevice {
  privateKey: Uint8Array | null = null;
  listenPort = 0;
  fwmark = 0;
  takenPorts = new Set<number>();
  peers = new Map<string, { endpoint: string | null; allowed: string[]; keepalive: number; psk: Uint8Array | null }>();
  getState(): UapiDeviceState {
    return {
      privateKey: this.privateKey, listenPort: this.listenPort, fwmark: this.fwmark,
      peers: [...this.peers].map(([k, p]) => ({
        publicKey: Buffer.from(k, 'hex'), presharedKey: p.psk, endpoint: p.endpoint, lastHandshakeTimeSec: 0, lastHandshakeTimeNsec: 0,
        txBytes: 0, rxBytes: 0, persistentKeepaliveInterval: p.keepalive, allowedIps: [...p.allowed],
      })),
    };
  }
  publicKey(): Uint8Array | null { return null; }
  setPrivateKey(key: Uint8Array | null): void { this.privateKey = key; }
  setListenPort(port: number): void {
    if (this.takenPorts.has(port)) throw new UapiError(-98, `port ${port} is taken`);
    this.listenPort = port;
  }
  setFwmark(mark: number): void { this.fwmark = mark; }
  replacePeers(): void { this.peers.clear(); }
  hasPeer(pub: Uint8Array): boolean { return this.peers.has(Buffer.from(pub).toString('hex')); }
  createPeer(pub: Uint8Array): void { this.peers.set(Buffer.from(pub).toString('hex'), { endpoint: null, allowed: [], keepalive: 0, psk: null }); }
  removePeer(pub: Uint8Array): void { this.peers.delete(Buffer.from(pub).toString('hex')); }
  private peer(pub: Uint8Array) { return this.peers.get(Buffer.from(pub).toString('hex'))!; }
  setPresharedKey(pub: Uint8Array, key: Uint8Array | null): void { this.peer(pub).psk = key; }
  setEndpoint(pub: Uint8Array, host: Uint8Array, port: number): void { this.peer(pub).endpoint = `${Buffer.from(host).toString('hex')}:${port}`; }
  setPersistentKeepalive(pub: Uint8Array, seconds: number): void { this.peer(pub).keepalive = seconds; }
  replaceAllowedIps(pub: Uint8Array): void { this.peer(pub).allowed = []; }
  addAllowedIp(pub: Uint8Array, addr: Uint8Array, cidr: number): void { this.peer(pub).allowed.push(formatPrefix(addr, cidr)); }
  removeAllowedIp(): void {}
}

t.test('a file the device refuses (a listen port that is taken) leaves the device as it was', async (t) => {
  const dev = new MemoryDevice();
  await applyConfig(dev, parseConfig(GOOD, 'wg0.conf'));
  const before = JSON.stringify(dev.getState());
  dev.takenPorts.add(51999);
  const changed = GOOD.replace('ListenPort = 51820', 'ListenPort = 51999\nFwMark = 7').replace('AllowedIPs = 10.0.1.0/24', 'AllowedIPs = 10.0.9.0/24');
  await t.rejects(applyConfig(dev, parseConfig(changed, 'wg0.conf'), 'sync'),
    { message: 'wg0.conf: the device refused the configuration: failed to set listen_port: port 51999 is taken (errno=-98)' });
  t.equal(JSON.stringify(dev.getState()), before, 'listen port, fwmark, peers and allowed IPs unchanged');
  dev.takenPorts.clear();
  await applyConfig(dev, parseConfig(changed), 'sync');
  t.same([dev.listenPort, dev.fwmark, dev.peers.get(hex(KEY_C))!.allowed], [51999, 7, ['10.0.9.0/24']], 'applied once the device accepts it');
});

t.test('host-name endpoints are resolved at load time, as wg(8) does', async (t) => {
  const c = parseConfig(`[Peer]\nPublicKey = ${KEY_B}\nEndpoint = localhost:51820\n[Peer]\nPublicKey = ${KEY_C}\nEndpoint = [::1]:1\n`, 'h.conf');
  t.equal(c.peers[0]!.endpoint!.address, null, 'a host name is left for resolveEndpoints');
  t.equal(c.peers[1]!.endpoint!.address, '[::1]:1', 'an address literal needs no resolution');
  t.throws(() => configToUapi(c), /not resolved/, 'an unresolved endpoint is never sent');
  await resolveEndpoints(c);
  const { address, family } = await dns.promises.lookup('localhost');
  const want = family === 6 ? `[${address}]:51820` : `${address}:51820`;
  t.equal(c.peers[0]!.endpoint!.address, want, 'localhost → the address getaddrinfo gives first');
  t.ok(configToUapi(c).includes(`\nendpoint=${want}\n`), 'and that address is what the device gets');

  const bad = parseConfig(`[Interface]\n[Peer]\nPublicKey = ${KEY_B}\nEndpoint = no-such-host.invalid:51820\n`, 'h.conf');
  const err = await resolveEndpoints(bad).then(() => null, (e: unknown) => e);
  t.type(err, ConfigError);
  t.match((err as Error).message, /^h\.conf:4: Unable to resolve endpoint host `no-such-host\.invalid' \(\w+\): `no-such-host\.invalid:51820'$/);
});

t.test('loadConfigFile: read, checked and resolved, with the metrics comments; errors name the file', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wirepool-config-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'wg0.conf');
  fs.writeFileSync(file, GOOD.replace('[Interface]', '[Interface]\n# Metrics = 127.0.0.1:9586\n# MetricsMdlayher = true').replace('198.51.100.7:51821', 'localhost:51821'));
  const loaded = await loadConfigFile(file, null);
  t.not(loaded.config.peers[0]!.endpoint!.address, null, 'host name resolved');
  t.same({ listen: loaded.metrics.listen, mdlayher: loaded.metrics.mdlayher, names: [...loaded.metrics.friendlyNames] },
    { listen: '127.0.0.1:9586', mdlayher: true, names: [[KEY_B, 'bob']] });
  t.equal((await loadConfigFile(file, '[::1]:9000')).metrics.listen, '[::1]:9000', '--metrics wins');
  fs.writeFileSync(file, GOOD.replace('10.0.1.0/24', '10.0.1.0/24,10.0.0.300/32'));
  await t.rejects(loadConfigFile(file, null), { name: 'ConfigError', message: `${file}:17: AllowedIP is not in the correct format: \`10.0.0.300/32'` });
  await t.rejects(loadConfigFile(path.join(dir, 'missing.conf'), null), { code: 'ENOENT' });
});
