// Shared set-up for the end-to-end tests: start wirepool or wireguard-go inside a network
// namespace, configure it with `wg setconf`, and build a ready two-namespace tunnel
// (makePair): namespace A runs wirepool, namespace B runs wireguard-go or wirepool, joined
// by a veth over outer IPv4 (198.51.100.0/24) or outer IPv6 (2001:db8:77::/64), with inner
// addresses 10.77.0.1/2 and fd77::1/2 on the WireGuard interfaces.
//
// /var/run/wireguard is shared by every namespace, so interface names come from uniqueIfname()
// (tag + pid + counter, at most 15 characters). Everything a helper starts lives inside a
// namespace, so Netns.destroy() (called by Pair.destroy()) ends it: daemons, iperf3 servers,
// and the interfaces. A daemon's socket file, which outlives a SIGKILLed daemon, is removed
// by destroy() as well.

import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ChildProcess } from 'node:child_process';
import { Netns, type ExecResult, genKey, haveCommand, isAlive, netnsSkipReason, run, vethPair, waitFor } from './netns.js';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** Absolute path of the wirepool launcher (what WG_QUICK_USERSPACE_IMPLEMENTATION gets). */
export const WIREPOOL_BIN = path.join(REPO_ROOT, 'bin', 'wirepool');
export const SOCKET_DIR = '/var/run/wireguard';

export const socketPath = (ifname: string): string => path.join(SOCKET_DIR, `${ifname}.sock`);

/** Why the end-to-end tests cannot run here (usable as tap's `skip`), or false. */
export function e2eSkipReason(opts: { wireguardGo?: boolean; extra?: string[] } = {}): string | false {
  if (netnsSkipReason !== false) return netnsSkipReason;
  if (!fs.existsSync(path.join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js'))) return 'needs a built dist/ (npx tsc -p tsconfig.json)';
  const needed = ['wg', ...(opts.wireguardGo === false ? [] : ['wireguard-go']), ...(opts.extra ?? [])];
  for (const cmd of needed) if (!haveCommand(cmd)) return `needs ${cmd} on PATH`;
  return false;
}

let ifCounter = 0;
/** An interface name unique to this test process: tag (≤ 3 chars) + pid + counter. */
export function uniqueIfname(tag = 'wp'): string {
  const name = `${tag.slice(0, 3)}${process.pid}n${++ifCounter}`;
  if (name.length > 15) throw new Error(`interface name ${name} too long`);
  return name;
}

/** A running WireGuard daemon inside a namespace. */
export interface Daemon {
  kind: 'wirepool' | 'wireguard-go';
  ns: Netns;
  ifname: string;
  /** The foreground child (null for a daemonised wirepool). */
  child: ChildProcess | null;
  /** Everything the daemon wrote to stderr so far (foreground only). */
  readonly stderr: string;
  /** The daemon's pid (the detached process for a daemonised wirepool). */
  pid: number;
  /** Resolves when the process has exited (polls for a daemonised one). */
  exited(timeoutMs: number): Promise<boolean>;
}

export interface StartOptions {
  /** Default true: `-f`; false: daemon mode (the command must return once ready). */
  foreground?: boolean;
  /** LOG_LEVEL for the daemon; default 'verbose' (captured in Daemon.stderr). */
  logLevel?: string;
  workers?: number;
  extraArgs?: string[];
  timeoutMs?: number;
}


/** Pids of processes inside ns whose command line mentions ifname. */
export async function pidsInNs(ns: Netns, match: string): Promise<number[]> {
  const r = await run('ip', ['netns', 'pids', ns.name]);
  const pids: number[] = [];
  for (const line of r.stdout.split('\n')) {
    const pid = Number(line.trim());
    if (!Number.isInteger(pid) || pid <= 0) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (cmd.includes(match)) pids.push(pid);
    } catch {
      // gone
    }
  }
  return pids;
}

/** True once the UAPI socket answers `get=1` with errno=0. */
export async function uapiAnswers(ns: Netns, ifname: string): Promise<boolean> {
  const r = await ns.exec('wg', ['show', ifname, 'private-key'], { timeoutMs: 3_000 });
  return r.code === 0;
}

async function linkExists(ns: Netns, ifname: string): Promise<boolean> {
  const r = await run('ip', ['-n', ns.name, 'link', 'show', 'dev', ifname], { timeoutMs: 3_000 });
  return r.code === 0;
}

function startForeground(kind: Daemon['kind'], ns: Netns, ifname: string, argv: string[], env: NodeJS.ProcessEnv): Daemon {
  const child = ns.spawn(argv[0]!, argv.slice(1), { env });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exit = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  return {
    kind,
    ns,
    ifname,
    child,
    get stderr() {
      return stderr;
    },
    pid: child.pid ?? -1,
    exited: (timeoutMs) =>
      Promise.race([exit.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs).unref())]),
  };
}

async function waitReady(d: Daemon, timeoutMs: number): Promise<void> {
  const ok = await waitFor(async () => {
    if (d.child !== null && (d.child.exitCode !== null || d.child.signalCode !== null)) throw new Error('exited');
    return fs.existsSync(socketPath(d.ifname)) && (await linkExists(d.ns, d.ifname)) && (await uapiAnswers(d.ns, d.ifname));
  }, timeoutMs, 50);
  if (!ok) {
    const why = d.child?.exitCode !== null && d.child !== null ? `exited with ${d.child.exitCode}` : 'not ready in time';
    throw new Error(`${d.kind} ${d.ifname} in ${d.ns.name}: ${why}\n${d.stderr}`);
  }
}

/** `env` arguments that remove the variables that change wirepool's mode or output. */
export const CLEAN_ENV = ['-u', 'LOG_LEVEL', '-u', 'WG_TUN_FD', '-u', 'WG_UAPI_FD', '-u', 'WG_PROCESS_FOREGROUND'];

/** wirepool's environment: LOG_LEVEL set, and the variables that would change its mode removed. */
function daemonEnv(logLevel: string | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.WG_TUN_FD;
  delete env.WG_UAPI_FD;
  delete env.WG_PROCESS_FOREGROUND;
  delete env.LOG_LEVEL;
  if (logLevel !== undefined) env.LOG_LEVEL = logLevel;
  return env;
}

/** Starts wirepool for ifname in ns and waits until the interface and its UAPI socket work. */
export async function startWirepool(ns: Netns, ifname: string, opts: StartOptions = {}): Promise<Daemon> {
  const args = [
    ...(opts.foreground === false ? [] : ['-f']),
    ...(opts.workers !== undefined ? ['--workers', String(opts.workers)] : []),
    ...(opts.extraArgs ?? []),
    ifname,
  ];
  const env = daemonEnv(opts.logLevel ?? 'verbose');
  const timeoutMs = opts.timeoutMs ?? 10_000;
  if (opts.foreground === false) {
    // Daemon mode: the detached process would inherit stdout/stderr if LOG_LEVEL were set,
    // holding our pipes open; it runs without, and its output is not captured.
    const r = await ns.exec('env', [...CLEAN_ENV, process.execPath, WIREPOOL_BIN, ...args], { timeoutMs });
    if (r.code !== 0) throw new Error(`wirepool ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    const pids = await pidsInNs(ns, ifname);
    if (pids.length !== 1) throw new Error(`expected one wirepool process for ${ifname}, found ${pids.length}`);
    const pid = pids[0]!;
    return {
      kind: 'wirepool',
      ns,
      ifname,
      child: null,
      stderr: '',
      pid,
      exited: (ms) => waitFor(async () => !isAlive(pid), ms, 50),
    };
  }
  const d = startForeground('wirepool', ns, ifname, [process.execPath, WIREPOOL_BIN, ...args], env);
  await waitReady(d, timeoutMs);
  return d;
}

/** Starts `wireguard-go -f ifname` in ns and waits until its UAPI socket works. */
export async function startWireguardGo(ns: Netns, ifname: string, opts: { logLevel?: string; timeoutMs?: number } = {}): Promise<Daemon> {
  const d = startForeground('wireguard-go', ns, ifname, ['wireguard-go', '-f', ifname], daemonEnv(opts.logLevel ?? 'verbose'));
  await waitReady(d, opts.timeoutMs ?? 10_000);
  return d;
}

export interface PeerConfig {
  publicKey: string;
  presharedKey?: string;
  endpoint?: string;
  allowedIps: string[];
  persistentKeepalive?: number;
}

export interface InterfaceConfig {
  privateKey: string;
  listenPort?: number;
  peers: PeerConfig[];
}

/** The wg(8) configuration-file text for cfg. */
export function configText(cfg: InterfaceConfig): string {
  const lines = ['[Interface]', `PrivateKey = ${cfg.privateKey}`];
  if (cfg.listenPort !== undefined) lines.push(`ListenPort = ${cfg.listenPort}`);
  for (const p of cfg.peers) {
    lines.push('', '[Peer]', `PublicKey = ${p.publicKey}`);
    if (p.presharedKey !== undefined) lines.push(`PresharedKey = ${p.presharedKey}`);
    if (p.endpoint !== undefined) lines.push(`Endpoint = ${p.endpoint}`);
    if (p.allowedIps.length > 0) lines.push(`AllowedIPs = ${p.allowedIps.join(', ')}`);
    if (p.persistentKeepalive !== undefined) lines.push(`PersistentKeepalive = ${p.persistentKeepalive}`);
  }
  return lines.join('\n') + '\n';
}

/** A fresh private temp directory (caller removes it, e.g. with removeDir in a teardown). */
export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `wirepool-${prefix}-`));
}

export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Applies cfg to ifname with `wg setconf` (the config file lives in a temp dir). */
export async function configure(ns: Netns, ifname: string, cfg: InterfaceConfig): Promise<void> {
  const dir = tempDir('conf');
  try {
    const file = path.join(dir, `${ifname}.conf`);
    fs.writeFileSync(file, configText(cfg), { mode: 0o600 });
    await ns.mustExec('wg', ['setconf', ifname, file]);
  } finally {
    removeDir(dir);
  }
}

/** `wg ARGS` in ns; throws unless it exits 0; returns stdout. */
export async function wg(ns: Netns, args: string[]): Promise<string> {
  return (await ns.mustExec('wg', args, { timeoutMs: 5_000 })).stdout;
}

/** Adds the addresses (IPv6 with nodad) and sets the interface up. */
export async function addressUp(ns: Netns, ifname: string, addrs: string[]): Promise<void> {
  for (const a of addrs) await ns.ip(['addr', 'add', a, 'dev', ifname, ...(a.includes(':') ? ['nodad'] : [])]);
  await ns.ip(['link', 'set', 'dev', ifname, 'up']);
}

/** `wg show IF transfer` → {rx, tx} of the one peer with the given public key. */
export async function transfer(ns: Netns, ifname: string, peerKey: string): Promise<{ rx: number; tx: number }> {
  const out = await wg(ns, ['show', ifname, 'transfer']);
  for (const line of out.trim().split('\n')) {
    const [key, rx, tx] = line.split('\t');
    if (key === peerKey) return { rx: Number(rx), tx: Number(tx) };
  }
  throw new Error(`peer ${peerKey} not in wg show ${ifname} transfer:\n${out}`);
}

/** `wg show IF latest-handshakes` value (Unix seconds, 0 = never) of one peer. */
export async function latestHandshake(ns: Netns, ifname: string, peerKey: string): Promise<number> {
  const out = await wg(ns, ['show', ifname, 'latest-handshakes']);
  for (const line of out.trim().split('\n')) {
    const [key, ts] = line.split('\t');
    if (key === peerKey) return Number(ts);
  }
  throw new Error(`peer ${peerKey} not in wg show ${ifname} latest-handshakes:\n${out}`);
}

/** `wg show IF endpoints` value of one peer ('(none)' if unknown). */
/**
 * `read()` again and again (stepMs apart, at most timeoutMs) until two reads in a row agree — the
 * counters it reads stopped moving — and returns the last read.
 */
export async function untilSteady<T>(read: () => Promise<T>, timeoutMs = 10_000, stepMs = 300): Promise<T> {
  let last = '';
  let value!: T;
  await waitFor(async () => {
    value = await read();
    const text = JSON.stringify(value);
    const same = text === last;
    last = text;
    return same;
  }, timeoutMs, stepMs);
  return value;
}

/** Both ends' transfer counters of a pair, for each other's peer, once they stop moving (untilSteady). */
export const steadyTransfers = (p: Pair, timeoutMs?: number, stepMs?: number): Promise<{ a: { rx: number; tx: number }; b: { rx: number; tx: number } }> =>
  untilSteady(async () => ({
    a: await transfer(p.a.ns, p.a.ifname, p.b.keys.publicKey),
    b: await transfer(p.b.ns, p.b.ifname, p.a.keys.publicKey),
  }), timeoutMs, stepMs);

export async function peerEndpoint(ns: Netns, ifname: string, peerKey: string): Promise<string> {
  const out = await wg(ns, ['show', ifname, 'endpoints']);
  for (const line of out.trim().split('\n')) {
    const [key, ep] = line.split('\t');
    if (key === peerKey) return ep ?? '';
  }
  throw new Error(`peer ${peerKey} not in wg show ${ifname} endpoints:\n${out}`);
}

/** `ping -c count -W 1 [-I src] dst` in ns, bounded; resolves to the result (code 0 = replies came). */
export function ping(ns: Netns, dst: string, opts: { count?: number; src?: string; size?: number; interval?: number } = {}): Promise<ExecResult> {
  const count = opts.count ?? 3;
  const args = ['-n', '-c', String(count), '-W', '1', '-i', String(opts.interval ?? 0.2)];
  if (opts.src !== undefined) args.push('-I', opts.src);
  if (opts.size !== undefined) args.push('-s', String(opts.size));
  args.push(dst);
  return ns.exec('ping', args, { timeoutMs: 5_000 + count * 1_500 });
}

/** Number of echo replies in ping's output. */
export const pingReplies = (r: ExecResult): number => {
  const m = /(\d+) received/.exec(r.stdout);
  return m === null ? 0 : Number(m[1]);
};

/** Pings until one reply comes (the first may wait for a handshake), at most timeoutMs. */
export async function pingUntilUp(ns: Netns, dst: string, timeoutMs = 10_000): Promise<boolean> {
  return waitFor(async () => (await ping(ns, dst, { count: 1 })).code === 0, timeoutMs, 100);
}

export interface Side {
  ns: Netns;
  daemon: Daemon;
  ifname: string;
  keys: { privateKey: string; publicKey: string };
  listenPort: number;
  /** Outer address (no prefix length) on the veth. */
  outer: string;
  /** The veth device name in this namespace. */
  veth: string;
  inner4: string;
  inner6: string;
  /** The config applied (with wg setconf). */
  config: InterfaceConfig;
}

export interface Pair {
  a: Side;
  b: Side;
  outer: 4 | 6;
  /** "addr:port" / "[addr]:port" of a side's outer socket. */
  endpointOf(side: Side): string;
  destroy(): Promise<void>;
}

export interface PairOptions {
  outer?: 4 | 6;
  /** Which daemon runs in namespace B (A is always wirepool). Default 'wireguard-go'. */
  b?: 'wireguard-go' | 'wirepool';
  /** Preshared key each side is configured with (they may differ to test a mismatch). */
  pskA?: string;
  pskB?: string;
  /** Whether each side knows the other's endpoint up front (default both). */
  aKnowsB?: boolean;
  bKnowsA?: boolean;
  workers?: number;
  /** Extra command-line arguments for every wirepool started (e.g. --metrics ADDR:PORT). */
  wirepoolArgs?: string[];
  prefix?: string;
}

export const INNER = { a4: '10.77.0.1', b4: '10.77.0.2', a6: 'fd77::1', b6: 'fd77::2' } as const;
const OUTER = {
  4: { a: '198.51.100.1', b: '198.51.100.2', len: 24 },
  6: { a: '2001:db8:77::1', b: '2001:db8:77::2', len: 64 },
} as const;
export const PORT_A = 51820;
export const PORT_B = 51821;

export const formatEndpoint = (addr: string, port: number): string => (addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`);

/**
 * Builds namespaces A (wirepool) and B (wireguard-go or wirepool) joined by a veth, with
 * both daemons configured (each peer's allowed IPs are the other's inner /32 and /128) and
 * both interfaces up with their inner addresses (/24 and /64, so other inner addresses route
 * into the tunnel too). No packet has crossed the tunnel yet. Call destroy() in a teardown.
 */
export async function makePair(opts: PairOptions = {}): Promise<Pair> {
  const outer = opts.outer ?? 4;
  const o = OUTER[outer];
  const prefix = opts.prefix ?? 'pair';
  const namespaces: Netns[] = [];
  const ifnames: string[] = [];
  const destroy = async (): Promise<void> => {
    await Promise.all(namespaces.map((ns) => ns.destroy()));
    removeStaleSockets(ifnames);
  };
  try {
    const nsA = await Netns.create(`${prefix}-a`);
    namespaces.push(nsA);
    const nsB = await Netns.create(`${prefix}-b`);
    namespaces.push(nsB);
    const { aIf, bIf } = await vethPair(nsA, nsB, { aAddrs: [`${o.a}/${o.len}`], bAddrs: [`${o.b}/${o.len}`] });
    const ifA = uniqueIfname('wpa');
    const ifB = uniqueIfname(opts.b === 'wirepool' ? 'wpb' : 'wgb');
    ifnames.push(ifA, ifB);
    const [dA, dB] = await Promise.all([
      startWirepool(nsA, ifA, { workers: opts.workers, extraArgs: opts.wirepoolArgs }),
      opts.b === 'wirepool' ? startWirepool(nsB, ifB, { workers: opts.workers, extraArgs: opts.wirepoolArgs }) : startWireguardGo(nsB, ifB),
    ]);
    const keysA = genKey();
    const keysB = genKey();
    const cfgA: InterfaceConfig = {
      privateKey: keysA.privateKey,
      listenPort: PORT_A,
      peers: [
        {
          publicKey: keysB.publicKey,
          ...(opts.pskA !== undefined ? { presharedKey: opts.pskA } : {}),
          ...(opts.aKnowsB !== false ? { endpoint: formatEndpoint(o.b, PORT_B) } : {}),
          allowedIps: [`${INNER.b4}/32`, `${INNER.b6}/128`],
        },
      ],
    };
    const cfgB: InterfaceConfig = {
      privateKey: keysB.privateKey,
      listenPort: PORT_B,
      peers: [
        {
          publicKey: keysA.publicKey,
          ...(opts.pskB !== undefined ? { presharedKey: opts.pskB } : {}),
          ...(opts.bKnowsA !== false ? { endpoint: formatEndpoint(o.a, PORT_A) } : {}),
          allowedIps: [`${INNER.a4}/32`, `${INNER.a6}/128`],
        },
      ],
    };
    await configure(nsA, ifA, cfgA);
    await configure(nsB, ifB, cfgB);
    await addressUp(nsA, ifA, [`${INNER.a4}/24`, `${INNER.a6}/64`]);
    await addressUp(nsB, ifB, [`${INNER.b4}/24`, `${INNER.b6}/64`]);
    const side = (ns: Netns, daemon: Daemon, ifname: string, keys: Side['keys'], listenPort: number, outerAddr: string, veth: string, inner4: string, inner6: string, config: InterfaceConfig): Side => ({
      ns, daemon, ifname, keys, listenPort, outer: outerAddr, veth, inner4, inner6, config,
    });
    const a = side(nsA, dA, ifA, keysA, PORT_A, o.a, aIf, INNER.a4, INNER.a6, cfgA);
    const b = side(nsB, dB, ifB, keysB, PORT_B, o.b, bIf, INNER.b4, INNER.b6, cfgB);
    return {
      a,
      b,
      outer,
      endpointOf: (s) => formatEndpoint(s.outer, s.listenPort),
      destroy,
    };
  } catch (err) {
    await destroy();
    throw err;
  }
}

/** A hub (makeHub): A with two peers, B and C. ns, ifs and keys in that order. */
export interface Hub {
  ns: readonly [Netns, Netns, Netns];
  ifs: readonly string[];
  keys: ReturnType<typeof genKey>[];
  destroy(): Promise<void>;
}

/**
 * Namespaces A, B and C, B and C each behind a veth of its own to A, every one running wirepool
 * (with `args(i)`, i = 0 for A): A (10.77.0.1) has the peers B (10.77.0.2) and C (10.77.0.3),
 * each of them A; the interfaces are up, nothing has crossed them yet. Call destroy() in a teardown.
 */
export async function makeHub(prefix: string, args: (i: number) => string[]): Promise<Hub> {
  const ns = [await Netns.create(`${prefix}-a`), await Netns.create(`${prefix}-b`), await Netns.create(`${prefix}-c`)] as const;
  const ifs = [uniqueIfname('wpa'), uniqueIfname('wpb'), uniqueIfname('wpc')];
  const destroy = async (): Promise<void> => {
    await Promise.all(ns.map((n) => n.destroy()));
    removeStaleSockets(ifs);
  };
  try {
    await vethPair(ns[0], ns[1], { aAddrs: ['198.51.100.1/24'], bAddrs: ['198.51.100.2/24'] });
    await vethPair(ns[0], ns[2], { aAddrs: ['198.51.101.1/24'], bAddrs: ['198.51.101.2/24'] });
    await Promise.all(ns.map((n, i) => startWirepool(n, ifs[i]!, { extraArgs: args(i) })));
    const keys = [genKey(), genKey(), genKey()];
    await configure(ns[0], ifs[0]!, {
      privateKey: keys[0]!.privateKey, listenPort: 51820, peers: [
        { publicKey: keys[1]!.publicKey, endpoint: '198.51.100.2:51821', allowedIps: ['10.77.0.2/32'] },
        { publicKey: keys[2]!.publicKey, endpoint: '198.51.101.2:51822', allowedIps: ['10.77.0.3/32'] },
      ],
    });
    await configure(ns[1], ifs[1]!, { privateKey: keys[1]!.privateKey, listenPort: 51821, peers: [{ publicKey: keys[0]!.publicKey, endpoint: '198.51.100.1:51820', allowedIps: ['10.77.0.1/32'] }] });
    await configure(ns[2], ifs[2]!, { privateKey: keys[2]!.privateKey, listenPort: 51822, peers: [{ publicKey: keys[0]!.publicKey, endpoint: '198.51.101.1:51820', allowedIps: ['10.77.0.1/32'] }] });
    await Promise.all(ns.map((n, i) => addressUp(n, ifs[i]!, [`10.77.0.${i + 1}/24`])));
    return { ns, ifs, keys, destroy };
  } catch (err) {
    await destroy();
    throw err;
  }
}

/** Removes socket files a SIGKILLed daemon may have left behind. */
export function removeStaleSockets(ifnames: string[]): void {
  for (const ifname of ifnames) {
    try {
      fs.unlinkSync(socketPath(ifname));
    } catch {
      // not there
    }
  }
}

/** Starts an iperf3 server bound to addr in ns (one-off: -1) and waits until it listens. */
export async function startIperfServer(ns: Netns, addr: string): Promise<ChildProcess> {
  const child = ns.spawn('iperf3', ['-s', '-1', '-B', addr]);
  const ok = await waitFor(async () => {
    const r = await ns.exec('ss', ['-Hltn', `sport = :5201`]);
    return r.stdout.includes(':5201');
  }, 5_000, 50);
  if (!ok) throw new Error(`iperf3 server in ${ns.name} did not start`);
  return child;
}

/** Runs an iperf3 TCP client for `seconds` (reverse: server sends; streams: parallel connections); returns bytes moved. */
export async function iperfClient(ns: Netns, server: string, opts: { seconds: number; reverse?: boolean; streams?: number; cport?: number }): Promise<{ sent: number; received: number; raw: string }> {
  const args = ['-c', server, '-t', String(opts.seconds), '-J', '--connect-timeout', '5000'];
  if (opts.reverse === true) args.push('-R');
  if (opts.streams !== undefined) args.push('-P', String(opts.streams));
  if (opts.cport !== undefined) args.push('--cport', String(opts.cport)); // the data stream's client port
  const r = await ns.exec('iperf3', args, { timeoutMs: (opts.seconds + 15) * 1_000 });
  if (r.code !== 0) throw new Error(`iperf3 ${args.join(' ')} failed (${r.code}): ${r.stdout.slice(-2000)} ${r.stderr}`);
  const j = JSON.parse(r.stdout) as { end: { sum_sent: { bytes: number }; sum_received: { bytes: number } } };
  return { sent: j.end.sum_sent.bytes, received: j.end.sum_received.bytes, raw: r.stdout };
}

/**
 * Sends raw text to a UAPI socket and returns what comes back: everything up to and
 * including the first "errno=N\n\n", or whatever arrived before the server closed the
 * connection ('' = closed without reply). Throws on timeout.
 */
export function uapiRequest(ifname: string, text: string, timeoutMs = 5_000): Promise<{ reply: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath(ifname));
    let buf = '';
    let done = false;
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ reply: buf, closed });
    };
    const timer = setTimeout(() => {
      done = true;
      sock.destroy();
      reject(new Error(`UAPI ${ifname}: no reply to ${JSON.stringify(text)} within ${timeoutMs} ms (got ${JSON.stringify(buf)})`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      buf += d;
      if (/(^|\n)errno=-?\d+\n\n/.test(buf)) finish(false);
    });
    sock.on('close', () => finish(true));
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (done) return;
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') finish(true);
      else {
        done = true;
        clearTimeout(timer);
        reject(err);
      }
    });
    sock.write(text);
  });
}

/** Where makePair's wirepool daemons serve metrics when asked (wirepoolArgs: METRICS_ARGS). */
export const METRICS_ADDR = '127.0.0.1:9586';
export const METRICS_ARGS = ['--metrics', METRICS_ADDR];

/** wirepool's metrics exposition, read from its endpoint inside ns (started with METRICS_ARGS). */
export async function metricsText(ns: Netns): Promise<string> {
  const script = `fetch("http://${METRICS_ADDR}/metrics").then((r) => r.text()).then((t) => process.stdout.write(t), (e) => { console.error(String(e)); process.exit(1); })`;
  const r = await ns.exec(process.execPath, ['-e', script], { timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`metrics in ${ns.name}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Sum of wirepool's wireguard_dropped_packets_total{direction="inbound"} over all reasons. */
export async function inboundDrops(ns: Netns): Promise<number> {
  let sum = 0;
  for (const line of (await metricsText(ns)).split('\n')) {
    const m = /^wireguard_dropped_packets_total\{([^}]*)\}\s+(\S+)/.exec(line);
    if (m !== null && m[1]!.includes('direction="inbound"')) sum += Number(m[2]);
  }
  return sum;
}

/** wirepool's wireguard_dataplane_io_calls_total by its `call` label (tun_read, main_wakeup, ...). */
export async function ioCalls(ns: Netns): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const line of (await metricsText(ns)).split('\n')) {
    const m = /^wireguard_dataplane_io_calls_total\{[^}]*call="([a-z_]+)"[^}]*\}\s+(\S+)/.exec(line);
    if (m !== null) out[m[1]!] = (out[m[1]!] ?? 0) + Number(m[2]);
  }
  return out;
}
