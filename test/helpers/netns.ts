// Network-namespace harness for the interop tests: throw-away namespaces, veth pairs
// between them, processes run inside them, and X25519 keys without `wg`.
//
// Every external command goes through child_process with a timeout. Namespace names are
// "wpt-<prefix>-<pid>-<n>", unique per test process. destroy() ends the processes spawned
// through the namespace and anything else still running inside it (a daemonised
// wirepool, say), deletes the links left in it, then deletes the namespace. Namespaces
// still alive when the process exits are removed by an 'exit' hook, and namespaces left
// by a test process that died without cleaning up (its pid is gone) are swept on the next
// create(). Intended use:
//
//   const ns = await Netns.create('interop');
//   t.teardown(() => ns.destroy());

import { spawn as spawnChild, execFileSync, type ChildProcess } from 'node:child_process';
import { nodeCrypto } from '../../src/crypto/crypto.js';
import fs from 'node:fs';
import path from 'node:path';

export interface ExecResult {
  code: number; // -1 when killed by the timeout or a signal
  stdout: string;
  stderr: string;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const KILL_GRACE_MS = 3_000;
const NAME_MARK = 'wpt';

/** Finds an executable by name on PATH plus the sbin directories a non-root PATH lacks. */
function findCommand(cmd: string): string | null {
  const dirs = cmd.includes('/')
    ? ['']
    : [...(process.env.PATH ?? '').split(':'), '/usr/local/sbin', '/usr/sbin', '/sbin'].filter((d) => d !== '');
  for (const dir of dirs) {
    const full = dir === '' ? cmd : path.join(dir, cmd);
    try {
      fs.accessSync(full, fs.constants.X_OK);
      if (fs.statSync(full).isFile()) return full;
    } catch {
      // not here
    }
  }
  return null;
}

export function haveCommand(cmd: string): boolean {
  return findCommand(cmd) !== null;
}

const IP = findCommand('ip') ?? 'ip';

/** Why netns tests cannot run here, or false if they can. Usable directly as tap's `skip`. */
export const netnsSkipReason: string | false =
  process.getuid?.() !== 0
    ? 'needs root (network namespaces)'
    : !fs.existsSync('/dev/net/tun')
      ? 'needs /dev/net/tun'
      : !haveCommand('ip')
        ? "needs the 'ip' command (iproute2)"
        : false;

export const canRunNetns: boolean = netnsSkipReason === false;

/** Runs a command to completion; never rejects on a non-zero exit, only on spawn failure. */
export function run(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<ExecResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = spawnChild(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.stdin.on('error', () => {}); // the command may exit without reading its input
    child.stdin.end(opts.input ?? '');
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (timedOut) stderr += `\n[${cmd} timed out after ${timeoutMs} ms]`;
      resolve({ code: timedOut || code === null ? -1 : code, stdout, stderr });
    });
  });
}

/** `ip ARGS`, throwing with ip's stderr if it fails; returns stdout. */
async function ip(args: string[]): Promise<string> {
  const r = await run(IP, args);
  if (r.code !== 0) throw new Error(`ip ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** Whether a process exists (EPERM: it exists but is not ours). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Waits for a child to exit: SIGTERM, then SIGKILL after KILL_GRACE_MS. */
function endChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const killTimer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
    child.once('exit', () => {
      clearTimeout(killTimer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Ends processes by pid (ones found inside a test namespace): SIGTERM, then SIGKILL. */
async function endPids(pids: number[]): Promise<void> {
  const signal = (pid: number, sig: NodeJS.Signals): void => {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  };
  for (const pid of pids) signal(pid, 'SIGTERM');
  await waitFor(async () => pids.every((pid) => !isAlive(pid)), KILL_GRACE_MS, 50);
  for (const pid of pids) if (isAlive(pid)) signal(pid, 'SIGKILL');
  await waitFor(async () => pids.every((pid) => !isAlive(pid)), KILL_GRACE_MS, 50);
}

function parsePids(text: string): number[] {
  return text
    .split('\n')
    .map((s) => Number(s.trim()))
    .filter((n) => Number.isInteger(n) && n > 0 && n !== process.pid);
}

const live = new Set<Netns>();
let nsCounter = 0;
let swept = false;
let exitHookInstalled = false;

/** Removes namespaces that this harness made in test processes that no longer exist. */
async function sweepStale(): Promise<void> {
  if (swept) return;
  swept = true;
  const r = await run(IP, ['netns', 'list']);
  for (const line of r.stdout.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = /^wpt-.*-(\d+)-\d+$/.exec(name);
    if (m === null) continue;
    const pid = Number(m[1]);
    if (pid !== process.pid && !isAlive(pid)) await run(IP, ['netns', 'delete', name]);
  }
}

/** Synchronous last-resort cleanup when the test process exits with namespaces left. */
function cleanupAtExit(): void {
  for (const ns of live) {
    try {
      const pids = parsePids(execFileSync(IP, ['netns', 'pids', ns.name], { timeout: 2_000, encoding: 'utf8' }));
      for (const pid of pids) process.kill(pid, 'SIGKILL');
    } catch {
      // best effort
    }
    try {
      execFileSync(IP, ['netns', 'delete', ns.name], { timeout: 2_000, stdio: 'ignore' });
    } catch {
      // best effort
    }
  }
}

export class Netns {
  readonly name: string;
  readonly #children = new Set<ChildProcess>();
  #destroyed: Promise<void> | null = null;

  private constructor(name: string) {
    this.name = name;
  }

  /** A fresh namespace with lo up and IPv6 duplicate address detection off. */
  static async create(prefix: string): Promise<Netns> {
    await sweepStale();
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.on('exit', cleanupAtExit);
    }
    const safe = prefix.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 24);
    const ns = new Netns(`${NAME_MARK}-${safe}-${process.pid}-${++nsCounter}`);
    await ip(['netns', 'add', ns.name]);
    live.add(ns);
    try {
      await ns.ip(['link', 'set', 'lo', 'up']);
      // Best effort: fails harmlessly where IPv6 is disabled; vethPair also uses nodad.
      await ns.exec('sh', ['-c', 'for c in all default; do echo 0 > /proc/sys/net/ipv6/conf/$c/accept_dad; done']);
    } catch (err) {
      await ns.destroy();
      throw err;
    }
    return ns;
  }

  /** `ip -n NAME ARGS`; throws with ip's stderr on failure, returns stdout. */
  ip(args: string[]): Promise<string> {
    return ip(['-n', this.name, ...args]);
  }

  /** Runs `cmd args` inside the namespace to completion. Never rejects on a non-zero exit. */
  exec(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<ExecResult> {
    return run(IP, ['netns', 'exec', this.name, cmd, ...args], opts);
  }

  /** Like exec, but throws unless the command exits 0. */
  async mustExec(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<ExecResult> {
    const r = await this.exec(cmd, args, opts);
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} in ${this.name} failed (${r.code}): ${r.stderr.trim()}`);
    return r;
  }

  /**
   * Starts `cmd args` inside the namespace (`ip netns exec` execs it, so child.pid is the
   * command). stdout/stderr are flowing: attach 'data' listeners right after spawn to see
   * them; unread output is discarded and never blocks the child. Ended by destroy().
   */
  spawn(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): ChildProcess {
    if (this.#destroyed !== null) throw new Error(`namespace ${this.name} is destroyed`);
    const child = spawnChild(IP, ['netns', 'exec', this.name, cmd, ...args], {
      env: opts.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    child.stdout?.resume();
    child.stderr?.resume();
    child.stdin?.on('error', () => {});
    child.on('error', () => {}); // spawn failures show up as exit code -2 / 'exit'
    this.#children.add(child);
    child.once('exit', () => this.#children.delete(child));
    return child;
  }

  /** Ends every process in the namespace, deletes its links and the namespace. Idempotent. */
  destroy(): Promise<void> {
    this.#destroyed ??= this.#destroy();
    return this.#destroyed;
  }

  async #destroy(): Promise<void> {
    await Promise.all([...this.#children].map(endChild));
    // Whatever else still runs inside (e.g. a daemon that detached) pins the namespace.
    const pids = await run(IP, ['netns', 'pids', this.name]);
    await endPids(parsePids(pids.stdout));
    const links = await run(IP, ['-n', this.name, '-o', 'link', 'show']);
    for (const line of links.stdout.split('\n')) {
      const m = /^\d+:\s+([^:@\s]+)/.exec(line);
      if (m !== null && m[1] !== 'lo') await run(IP, ['-n', this.name, 'link', 'delete', 'dev', m[1]!]);
    }
    const r = await run(IP, ['netns', 'delete', this.name]);
    live.delete(this);
    if (r.code !== 0 && !/No such file/.test(r.stderr)) {
      throw new Error(`ip netns delete ${this.name} failed: ${r.stderr.trim()}`);
    }
  }
}

let vethCounter = 0;

/**
 * Connects two namespaces with a veth pair named vethNa (in a) / vethNb (in b), adds the
 * addresses (IPv6 ones with nodad), sets both ends up and waits until they are up with no
 * tentative address. Use documentation ranges: 198.51.100.0/24, 203.0.113.0/24,
 * 2001:db8::/32. (192.0.2.0/24 works inside namespaces too, but this host's own eth0 has
 * 192.0.2.2/24, which makes failures confusing to read.)
 */
export async function vethPair(
  a: Netns,
  b: Netns,
  opts: { aAddrs: string[]; bAddrs: string[]; mtu?: number },
): Promise<{ aIf: string; bIf: string }> {
  const n = ++vethCounter;
  const aIf = `veth${n}a`;
  const bIf = `veth${n}b`;
  await a.ip(['link', 'add', aIf, 'type', 'veth', 'peer', 'name', bIf, 'netns', b.name]);
  const sides: Array<[Netns, string, string[]]> = [
    [a, aIf, opts.aAddrs],
    [b, bIf, opts.bAddrs],
  ];
  for (const [ns, dev, addrs] of sides) {
    if (opts.mtu !== undefined) await ns.ip(['link', 'set', 'dev', dev, 'mtu', String(opts.mtu)]);
    for (const addr of addrs) {
      await ns.ip(['addr', 'add', addr, 'dev', dev, ...(addr.includes(':') ? ['nodad'] : [])]);
    }
    await ns.ip(['link', 'set', 'dev', dev, 'up']);
  }
  for (const [ns, dev] of sides) {
    const ready = await waitFor(
      async () => {
        const link = await ns.ip(['-o', 'link', 'show', 'dev', dev]);
        const tentative = await ns.ip(['-o', 'addr', 'show', 'dev', dev, 'tentative']);
        return /[<,]LOWER_UP[,>]/.test(link) && tentative.trim() === '';
      },
      5_000,
      50,
    );
    if (!ready) throw new Error(`${dev} in ${ns.name} did not come up`);
  }
  return { aIf, bIf };
}

/** A WireGuard key pair (base64, private key clamped like `wg genkey`), from node:crypto X25519. */
export function genKey(): { privateKey: string; publicKey: string } {
  // Random clamped bytes and wirepool's own X25519: Node 20's generateKeyPairSync('x25519')
  // followed by a JWK export can deadlock when GC finalises the key job mid-export.
  const priv = nodeCrypto.generatePrivateKey();
  const out = { privateKey: Buffer.from(priv).toString('base64'), publicKey: Buffer.from(nodeCrypto.publicKey(priv)).toString('base64') };
  priv.fill(0);
  return out;
}

/** Polls pred every stepMs until it returns true (→ true) or timeoutMs passes (→ false). */
export async function waitFor(pred: () => Promise<boolean>, timeoutMs: number, stepMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await pred()) return true;
    } catch {
      // treated as not yet
    }
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
