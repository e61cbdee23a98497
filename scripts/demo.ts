// `npm run demo`: a wirepool tunnel between two network namespaces, traffic through it,
// and `wg show` on both ends. Everything it creates — namespaces, interfaces, the key
// directory — is removed at the end, also on error and on SIGINT/SIGTERM/SIGHUP. Every step
// is a synchronous child process: Ctrl-C ends the running step, whose failure ends the demo
// through the same clean-up, and the handler below then exits instead of the default action
// (which would kill the demo with everything left behind).
// Needs root, iproute2 and wireguard-tools (`wg`); iperf3 is used when present.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodeCrypto } from '../src/crypto/crypto.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const wirepool = path.join(root, 'bin', 'wirepool');
const tag = String(process.pid % 10000);
const ns = [`wpdemo-a-${tag}`, `wpdemo-b-${tag}`] as const;
const ifs = [`wpa${tag}`, `wpb${tag}`] as const;
const outer = ['198.51.100.1', '198.51.100.2'];
const inner = ['10.88.0.1', '10.88.0.2'];
const ports = [51820, 51821];

function run(cmd: string, args: string[], opts: { input?: string; quiet?: boolean; timeout?: number } = {}): string {
  const r = spawnSync(cmd, args, { input: opts.input, encoding: 'utf8', timeout: opts.timeout ?? 30_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr || r.error?.message}`);
  if (!opts.quiet) process.stdout.write(r.stdout);
  return r.stdout;
}
const inNs = (i: number, cmd: string, args: string[], opts: { input?: string; quiet?: boolean; timeout?: number } = {}) =>
  run('ip', ['netns', 'exec', ns[i]!, cmd, ...args], opts);
const step = (s: string) => process.stdout.write(`\n\x1b[1m==> ${s}\x1b[0m\n`);
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

/** The private keys' directory, once made. */
let keyDir: string | null = null;

function cleanup(): void {
  if (keyDir !== null) fs.rmSync(keyDir, { recursive: true, force: true });
  keyDir = null;
  for (let i = 0; i < 2; i++) {
    spawnSync('ip', ['-n', ns[i]!, 'link', 'del', ifs[i]!]);
    spawnSync('ip', ['netns', 'del', ns[i]!]);
  }
}

function main(): void {
  if (process.getuid?.() !== 0) throw new Error('the demo needs root (network namespaces and TUN devices)');
  for (const c of ['ip', 'wg']) if (!has(c)) throw new Error(`missing ${c}: apt-get install iproute2 wireguard-tools`);
  const keys = [0, 1].map(() => {
    const priv = nodeCrypto.generatePrivateKey();
    return { priv: Buffer.from(priv).toString('base64'), pub: Buffer.from(nodeCrypto.publicKey(priv)).toString('base64') };
  });
  const tmp = (keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wirepool-demo-')));

  step(`two namespaces ${ns[0]} and ${ns[1]}, joined by a veth pair (${outer[0]} ↔ ${outer[1]})`);
  for (const n of ns) run('ip', ['netns', 'add', n]);
  run('ip', ['link', 'add', 'veth-a', 'netns', ns[0], 'type', 'veth', 'peer', 'name', 'veth-b', 'netns', ns[1]]);
  for (let i = 0; i < 2; i++) {
    const dev = i === 0 ? 'veth-a' : 'veth-b';
    run('ip', ['-n', ns[i]!, 'addr', 'add', `${outer[i]}/24`, 'dev', dev]);
    run('ip', ['-n', ns[i]!, 'link', 'set', dev, 'up']);
    run('ip', ['-n', ns[i]!, 'link', 'set', 'lo', 'up']);
  }

  step('start wirepool on both sides and configure them with wg(8)');
  for (let i = 0; i < 2; i++) {
    inNs(i, wirepool, [ifs[i]!]);
    const keyFile = path.join(tmp, `key${i}`);
    fs.writeFileSync(keyFile, keys[i]!.priv + '\n', { mode: 0o600 });
    const j = 1 - i;
    inNs(i, 'wg', ['set', ifs[i]!, 'private-key', keyFile, 'listen-port', String(ports[i]),
      'peer', keys[j]!.pub, 'endpoint', `${outer[j]}:${ports[j]}`, 'allowed-ips', `${inner[j]}/32`]);
    run('ip', ['-n', ns[i]!, 'addr', 'add', `${inner[i]}/24`, 'dev', ifs[i]!]);
    run('ip', ['-n', ns[i]!, 'link', 'set', ifs[i]!, 'up']);
  }

  step(`ping ${inner[1]} through the tunnel`);
  inNs(0, 'ping', ['-c', '5', '-i', '0.2', '-W', '3', inner[1]!]);

  if (has('iperf3')) {
    step('iperf3 TCP through the tunnel, 3 seconds');
    const server = spawnSync('ip', ['netns', 'exec', ns[1], 'iperf3', '-s', '-D', '-1', '-B', inner[1]!]);
    if (server.status === 0) {
      execFileSync('sleep', ['0.5']);
      inNs(0, 'iperf3', ['-c', inner[1]!, '-t', '3', '-f', 'm'], { timeout: 30_000 });
    }
  } else {
    process.stdout.write('(iperf3 not installed: skipping the throughput run)\n');
  }

  step('wg show on both ends');
  for (let i = 0; i < 2; i++) inNs(i, 'wg', ['show', ifs[i]!]);
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    cleanup();
    process.exit(1);
  });
}
try {
  main();
  step('done: removing the namespaces (the daemons exit when their interfaces go)');
} catch (err) {
  process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
} finally {
  cleanup();
}
