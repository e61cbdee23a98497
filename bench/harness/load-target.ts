// Target set-up for the handshake load generator and the scale tests: two network namespaces
// joined by a veth — T runs the target daemon (wirepool or wireguard-go), G runs the generator
// (dist/bench/handshake-load.js, started inside G with `ip netns exec`) — N generated initiator
// keys configured on the target with one `wg setconf` of a generated file (one [Peer] per
// initiator: its public key and a /32 allowed IP), and the measurements around it (setconf
// time, daemon RSS and CPU). Optionally a legitimate wireguard-go peer in G with a live session
// to the target, for flood tests. Also measurePeerMemory(): daemon RSS before and after a
// `wg setconf` of N peers.
//
// Addresses (outer, documentation ranges): T's veth 198.51.100.1/30, G's veth 198.51.100.2/30
// (the legitimate peer's source). Generator sources are /32s on G's lo — 198.51.100.4…254,
// then 203.0.113.1…254 — routed on T via 198.51.100.2, so T needs one neighbour entry however
// many sources there are. Inner: T's interface 10.64.0.1/10, the legitimate peer 10.64.0.2,
// initiator i 10.64.0.16 + i.
//
// Everything runs inside the two namespaces; destroy() ends it all, deletes them, the UAPI
// socket files (shared /var/run/wireguard) and the temp directory holding keys and configs.

import { type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { genKey, Netns, vethPair } from '../../test/helpers/netns.js';
import {
  type Daemon, type PeerConfig, configText, removeDir, removeStaleSockets, startWireguardGo, startWirepool, tempDir,
  uniqueIfname, wg,
} from '../../test/helpers/tunnel.js';
import { ipv4Add } from './echo-packet.js';
import { type GeneratorResult } from './handshake-gen.js';

export type Impl = 'wirepool' | 'wireguard-go';

export const TARGET_OUTER = '198.51.100.1';
export const GEN_OUTER = '198.51.100.2';
export const TARGET_PORT = 51820;
export const LEGIT_PORT = 51821;
export const TARGET_INNER = '10.64.0.1';
export const TARGET_INNER_PREFIX = 10;
export const LEGIT_INNER = '10.64.0.2';
const INNER_FIRST_INITIATOR = 16;
/** Source addresses available to the generator (see the file comment). */
export const MAX_SOURCES = 251 + 254;
const START_TIMEOUT_MS = 15_000;
const SETCONF_TIMEOUT_MS = 600_000;
/** The generator script (compiled next to this harness directory). */
export const GENERATOR_SCRIPT = fileURLToPath(new URL('../handshake-load.js', import.meta.url));

/** Inner /32 of initiator i. */
export const initiatorInner = (i: number): string => ipv4Add('10.64.0.0', INNER_FIRST_INITIATOR + i);

/** Generator source address k (0-based), k < MAX_SOURCES. */
export function sourceAddress(k: number): string {
  if (!Number.isInteger(k) || k < 0 || k >= MAX_SOURCES) throw new RangeError(`source ${k} out of range (max ${MAX_SOURCES})`);
  return k < 251 ? `198.51.100.${4 + k}` : `203.0.113.${1 + k - 251}`;
}

/** Resident set size of a process in bytes (VmRSS), NaN if it is gone. */
export function rssBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? NaN : Number(m[1]) * 1024;
  } catch {
    return NaN;
  }
}

/** CPU ms (user + system, all threads) a process has used so far; NaN if it is gone. */
export function cpuMs(pid: number): number {
  return statCpuMs(`/proc/${pid}/stat`);
}

/** CPU ms of a process's main thread alone (for wirepool: the event loop with the handshakes). */
export function mainThreadCpuMs(pid: number): number {
  return statCpuMs(`/proc/${pid}/task/${pid}/stat`);
}

function statCpuMs(path: string): number {
  try {
    const stat = fs.readFileSync(path, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).trim().split(/\s+/);
    return (Number(f[11]) + Number(f[12])) * 10; // utime, stime in USER_HZ (100) ticks
  } catch {
    return NaN;
  }
}

/** A WireGuard key pair in base64 (netns.ts's genKey: random clamped bytes, no Node key-generation job). */
export const newKeyPair = genKey;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function startDaemon(impl: Impl, ns: Netns, ifname: string, workers: number | undefined, extraArgs: string[] = []): Promise<Daemon> {
  return impl === 'wirepool'
    ? startWirepool(ns, ifname, { logLevel: 'error', timeoutMs: START_TIMEOUT_MS, extraArgs, ...(workers !== undefined ? { workers } : {}) })
    : startWireguardGo(ns, ifname, { logLevel: 'error', timeoutMs: START_TIMEOUT_MS });
}

/** `wg setconf ifname file` in ns; returns how long it took (ms). Throws with wg's stderr on failure. */
async function timedSetconf(ns: Netns, ifname: string, file: string): Promise<number> {
  const t = performance.now();
  const r = await ns.exec('wg', ['setconf', ifname, file], { timeoutMs: SETCONF_TIMEOUT_MS });
  const ms = performance.now() - t;
  if (r.code !== 0) throw new Error(`wg setconf ${ifname} failed (${r.code}) after ${ms.toFixed(0)} ms: ${r.stderr.trim()}`);
  return ms;
}

/** Number of peers `wg show IF peers` lists. */
export async function peerCount(ns: Netns, ifname: string): Promise<number> {
  const r = await ns.exec('wg', ['show', ifname, 'peers'], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`wg show ${ifname} peers failed: ${r.stderr.trim()}`);
  return r.stdout.split('\n').filter((l) => l.trim() !== '').length;
}

/** Parses `wg show IF DUMP-STYLE-FIELD` output (key TAB values…) into a map. */
export async function wgShowMap(ns: Netns, ifname: string, field: 'transfer' | 'latest-handshakes' | 'endpoints' | 'allowed-ips'): Promise<Map<string, string[]>> {
  const r = await ns.exec('wg', ['show', ifname, field], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`wg show ${ifname} ${field} failed: ${r.stderr.trim()}`);
  const out = new Map<string, string[]>();
  for (const line of r.stdout.split('\n')) {
    const [key, ...rest] = line.split('\t');
    if (key !== undefined && key !== '') out.set(key, rest);
  }
  return out;
}

export interface LoadTargetOptions {
  impl: Impl;
  /** Initiator keys generated and configured on the target as peers. */
  peers: number;
  /** Generator source addresses to create (1…MAX_SOURCES). */
  sources: number;
  workers?: number;
  /** More wirepool command-line arguments (e.g. --metrics 127.0.0.1:9586). */
  wirepoolArgs?: string[];
  /** A wireguard-go peer in G with a session to the target (inner LEGIT_INNER). */
  legitPeer?: boolean;
  /** Namespace name tag. */
  prefix?: string;
}

export interface GeneratorRunOptions {
  /** Which configured initiators take part (indices into the generated keys). Default all. */
  indices?: number[];
  /** Extra arguments for the generator (--rate, --deadline, --data, --flood…). */
  args: string[];
  /** Which of the generator sources to bind ([] = none: the wildcard address). Default all. */
  bind?: string[];
  /** Lines of progress from the generator. */
  onProgress?: (line: string) => void;
  /** Kill the generator after this long (default: derived from --deadline + 60 s). */
  timeoutMs?: number;
}

export interface GeneratorRun {
  result: GeneratorResult;
  /** CPU ms the target daemon used during the run. */
  targetCpuMs: number;
  /** …of which its main thread (wirepool's event loop: handshakes, routing, accounting). */
  targetMainCpuMs: number;
  stderr: string;
}

export class LoadTarget {
  private destroyed: Promise<void> | null = null;
  private legitDaemon: Daemon | null = null;

  private constructor(
    readonly opts: LoadTargetOptions,
    readonly nsT: Netns,
    readonly nsG: Netns,
    readonly daemon: Daemon,
    readonly ifname: string,
    private readonly ifnames: string[],
    readonly dir: string,
    readonly targetPublicKey: string,
    /** Initiator keys (private keys stay in this process and in the 0600 key files under dir). */
    readonly initiators: ReadonlyArray<{ privateKey: string; publicKey: string }>,
    readonly sources: string[],
    /** How long the `wg setconf` of all peers took, ms. */
    readonly setconfMs: number,
    /** Daemon RSS (bytes) before and after that setconf. */
    readonly rssBefore: number,
    readonly rssAfter: number,
  ) {}

  /** The wireguard-go peer in G (legitPeer), its interface name. */
  get legitIfname(): string | null {
    return this.legitDaemon?.ifname ?? null;
  }

  static async create(opts: LoadTargetOptions): Promise<LoadTarget> {
    if (opts.sources < 1 || opts.sources > MAX_SOURCES) throw new RangeError(`sources must be 1…${MAX_SOURCES}`);
    const prefix = opts.prefix ?? 'hsload';
    const namespaces: Netns[] = [];
    const ifnames: string[] = [];
    const dir = tempDir('hsload');
    try {
      const nsT = await Netns.create(`${prefix}-t`);
      namespaces.push(nsT);
      const nsG = await Netns.create(`${prefix}-g`);
      namespaces.push(nsG);
      const { aIf } = await vethPair(nsT, nsG, { aAddrs: [`${TARGET_OUTER}/30`], bAddrs: [`${GEN_OUTER}/30`] });
      const sources = Array.from({ length: opts.sources }, (_, k) => sourceAddress(k));
      await nsG.mustExec('ip', ['-batch', '-'], { input: sources.map((a) => `addr add ${a}/32 dev lo\n`).join('') });
      await nsT.ip(['route', 'add', '198.51.100.0/24', 'via', GEN_OUTER, 'dev', aIf]);
      await nsT.ip(['route', 'add', '203.0.113.0/24', 'via', GEN_OUTER, 'dev', aIf]);

      const ifname = uniqueIfname(opts.impl === 'wirepool' ? 'hlp' : 'hlg');
      ifnames.push(ifname);
      const daemon = await startDaemon(opts.impl, nsT, ifname, opts.workers, opts.wirepoolArgs);
      const targetKeys = newKeyPair();
      const initiators = Array.from({ length: opts.peers }, () => newKeyPair());
      const peers: PeerConfig[] = initiators.map((k, i) => ({ publicKey: k.publicKey, allowedIps: [`${initiatorInner(i)}/32`] }));
      let legitKeys: { privateKey: string; publicKey: string } | null = null;
      if (opts.legitPeer === true) {
        legitKeys = newKeyPair();
        peers.push({ publicKey: legitKeys.publicKey, endpoint: `${GEN_OUTER}:${LEGIT_PORT}`, allowedIps: [`${LEGIT_INNER}/32`] });
      }
      const conf = path.join(dir, 'target.conf');
      fs.writeFileSync(conf, configText({ privateKey: targetKeys.privateKey, listenPort: TARGET_PORT, peers }), { mode: 0o600 });
      await sleep(500);
      const rssBefore = rssBytes(daemon.pid);
      const setconfMs = await timedSetconf(nsT, ifname, conf);
      await sleep(1000);
      const rssAfter = rssBytes(daemon.pid);
      await nsT.ip(['addr', 'add', `${TARGET_INNER}/${TARGET_INNER_PREFIX}`, 'dev', ifname]);
      await nsT.ip(['link', 'set', 'dev', ifname, 'up']);

      const lt = new LoadTarget(opts, nsT, nsG, daemon, ifname, ifnames, dir, targetKeys.publicKey, initiators, sources, setconfMs, rssBefore, rssAfter);
      if (legitKeys !== null) {
        const lif = uniqueIfname('hll');
        ifnames.push(lif);
        lt.legitDaemon = await startWireguardGo(nsG, lif, { logLevel: 'error', timeoutMs: START_TIMEOUT_MS });
        const lconf = path.join(dir, 'legit.conf');
        fs.writeFileSync(lconf, configText({
          privateKey: legitKeys.privateKey,
          listenPort: LEGIT_PORT,
          peers: [{ publicKey: targetKeys.publicKey, endpoint: `${TARGET_OUTER}:${TARGET_PORT}`, allowedIps: [`${TARGET_INNER}/32`] }],
        }), { mode: 0o600 });
        await timedSetconf(nsG, lif, lconf);
        await nsG.ip(['addr', 'add', `${LEGIT_INNER}/32`, 'dev', lif]);
        await nsG.ip(['link', 'set', 'dev', lif, 'up']);
        await nsG.ip(['route', 'add', `${TARGET_INNER}/32`, 'dev', lif]);
      }
      return lt;
    } catch (err) {
      await Promise.all(namespaces.map((ns) => ns.destroy().catch(() => {})));
      removeStaleSockets(ifnames);
      removeDir(dir);
      throw err;
    }
  }

  /**
   * Writes the key file for the given initiators ("PRIVATEKEY INNER" per line, mode 0600) and
   * runs the generator inside G against the target; resolves to its JSON result.
   */
  async runGenerator(run: GeneratorRunOptions): Promise<GeneratorRun> {
    const indices = run.indices ?? this.initiators.map((_, i) => i);
    const keysFile = path.join(this.dir, `keys-${Date.now()}-${Math.floor(Math.random() * 1e9)}.txt`);
    fs.writeFileSync(keysFile, indices.map((i) => `${this.initiators[i]!.privateKey} ${initiatorInner(i)}\n`).join(''), { mode: 0o600 });
    const bind = run.bind ?? this.sources;
    const args = [
      GENERATOR_SCRIPT,
      '--target', `${TARGET_OUTER}:${TARGET_PORT}`,
      '--target-key', this.targetPublicKey,
      '--keys', keysFile,
      '--inner-target', TARGET_INNER,
      ...(bind.length > 0 ? ['--bind', bind.join(',')] : []),
      '--json',
      ...run.args,
    ];
    const deadlineIdx = run.args.indexOf('--deadline');
    const deadlineS = deadlineIdx >= 0 ? Number(run.args[deadlineIdx + 1]) : 60;
    const timeoutMs = run.timeoutMs ?? (deadlineS + 60) * 1000;
    const cpu0 = cpuMs(this.daemon.pid);
    const main0 = mainThreadCpuMs(this.daemon.pid);
    try {
      // WIREPOOL_NATIVE_HANDSHAKE=0 (the target daemon's handshakes on node:crypto, for a before/after
      // on one build: bench/HANDSHAKES.md) is for the daemon only: the generator keeps its crypto.
      const { WIREPOOL_NATIVE_HANDSHAKE: _daemonOnly, ...genEnv } = process.env;
      const gen = this.nsG.spawn(process.execPath, args, { env: genEnv });
      const { code, stdout, stderr } = await spawnCollect(gen, timeoutMs, run.onProgress);
      const targetCpuMs = cpuMs(this.daemon.pid) - cpu0;
      const targetMainCpuMs = mainThreadCpuMs(this.daemon.pid) - main0;
      const line = stdout.trim().split('\n').pop() ?? '';
      if (code !== 0 || !line.startsWith('{')) throw new Error(`generator exited ${code}: ${stderr.slice(-2000)}`);
      return { result: JSON.parse(line) as GeneratorResult, targetCpuMs, targetMainCpuMs, stderr };
    } finally {
      fs.rmSync(keysFile, { force: true });
    }
  }

  /** Whether the target daemon is still running. */
  alive(): boolean {
    return Number.isFinite(cpuMs(this.daemon.pid));
  }

  /** Ends everything in both namespaces, deletes them, the socket files and the temp directory. Idempotent. */
  destroy(): Promise<void> {
    this.destroyed ??= (async () => {
      await Promise.all([this.nsT, this.nsG].map((ns) => ns.destroy().catch(() => {})));
      removeStaleSockets(this.ifnames);
      removeDir(this.dir);
    })();
    return this.destroyed;
  }
}

/** Collects a child's stdout; forwards stderr lines to onLine; SIGKILL after timeoutMs. */
function spawnCollect(child: ChildProcess, timeoutMs: number, onLine?: (line: string) => void): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    let partial = '';
    child.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr?.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
      if (onLine === undefined) return;
      partial += s;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) onLine(l);
    });
    const timer = setTimeout(() => {
      stderr += `\n[generator killed after ${timeoutMs} ms]`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      // 'exit' can precede the last 'data' events; give the pipes a moment to drain.
      setTimeout(() => resolve({ code: code ?? -1, stdout, stderr }), 50);
    });
  });
}

export interface PeerMemory {
  impl: Impl;
  peers: number;
  /** Peers `wg show IF peers` listed afterwards. */
  peersShown: number;
  setconfMs: number;
  /** `wg show IF dump` with all the peers: median of 5 runs. */
  dumpMs: number;
  rssBefore: number;
  rssAfter: number;
  bytesPerPeer: number;
}

/**
 * Starts `impl` in a fresh namespace, configures its private key and port, then measures the
 * daemon's RSS before and after one `wg setconf` of `peers` generated peers (each a public
 * key, an endpoint and a /32 allowed IP), and how long that setconf took.
 */
export async function measurePeerMemory(impl: Impl, peers: number, opts: { workers?: number } = {}): Promise<PeerMemory> {
  const ns = await Netns.create(`hsmem-${impl === 'wirepool' ? 'wp' : 'wg'}`);
  const ifname = uniqueIfname(impl === 'wirepool' ? 'hmp' : 'hmg');
  const dir = tempDir('hsmem');
  try {
    const daemon = await startDaemon(impl, ns, ifname, opts.workers);
    const own = newKeyPair();
    const base = path.join(dir, 'base.conf');
    fs.writeFileSync(base, configText({ privateKey: own.privateKey, listenPort: TARGET_PORT, peers: [] }), { mode: 0o600 });
    await timedSetconf(ns, ifname, base);
    const list: PeerConfig[] = [];
    for (let i = 0; i < peers; i++) {
      list.push({
        publicKey: newKeyPair().publicKey,
        endpoint: `${sourceAddress(i % MAX_SOURCES)}:${10000 + (i % 50000)}`,
        allowedIps: [`${initiatorInner(i)}/32`],
      });
    }
    const full = path.join(dir, 'full.conf');
    fs.writeFileSync(full, configText({ privateKey: own.privateKey, listenPort: TARGET_PORT, peers: list }), { mode: 0o600 });
    await sleep(1000);
    const rssBefore = rssBytes(daemon.pid);
    const setconfMs = await timedSetconf(ns, ifname, full);
    await sleep(2000);
    const rssAfter = rssBytes(daemon.pid);
    const peersShown = await peerCount(ns, ifname);
    const dumps: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      const r = await ns.exec('wg', ['show', ifname, 'dump'], { timeoutMs: 60_000 });
      if (r.code !== 0) throw new Error(`wg show ${ifname} dump failed: ${r.stderr.trim()}`);
      dumps.push(performance.now() - t);
    }
    dumps.sort((x, y) => x - y);
    return { impl, peers, peersShown, setconfMs, dumpMs: dumps[2]!, rssBefore, rssAfter, bytesPerPeer: (rssAfter - rssBefore) / peers };
  } finally {
    await ns.destroy().catch(() => {});
    removeStaleSockets([ifname]);
    removeDir(dir);
  }
}

/** `wg` in a namespace, re-exported for the tests. */
export { wg };
