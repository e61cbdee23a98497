// The side-by-side benchmark's topology: one tunnel per pair of implementations, each in its
// own two network namespaces (A = client / iperf3 sender, B = server) joined by a veth, with
// the daemons configured by `wg setconf` exactly as an operator would. Built on the e2e test
// harness (test/helpers/netns.ts, tunnel.ts): every process a pair starts runs inside one of
// its namespaces, so destroy() — which ends whatever runs in them and deletes them — leaves
// nothing behind; a daemon's UAPI socket file (in /var/run/wireguard, shared by all
// namespaces, hence the per-process interface names) is removed too.

import { type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { Netns, genKey, vethPair, waitFor } from '../../test/helpers/netns.js';
import {
  type Daemon, addressUp, configure, pingUntilUp, removeStaleSockets, startWireguardGo, startWirepool, uniqueIfname,
} from '../../test/helpers/tunnel.js';
import { parseProcStatTicks } from './parse.js';

export type Impl = 'wirepool' | 'wireguard-go';

export interface PairSpec {
  /** Short id used on the command line and in the JSON (e.g. "wp-wg", "wp-wp-w2"). */
  id: string;
  /** Label in the table and the chart. "→" = client (sender) → server; "↔" = same on both ends. */
  label: string;
  /** Daemon in namespace A (runs the iperf3 client and ping). */
  client: Impl;
  /** Daemon in namespace B (runs the iperf3 server). */
  server: Impl;
  /** wirepool --workers for the wirepool end(s); undefined = its default. */
  workers?: number;
}

export const OUTER_A = '198.51.100.1';
export const OUTER_B = '198.51.100.2';
export const INNER_A = '10.99.0.1';
export const INNER_B = '10.99.0.2';
const PORT_A = 51820;
const PORT_B = 51821;
const IPERF_PORT = 5201;
const START_TIMEOUT_MS = 15_000;

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on Linux). */
export const CLOCK_TICKS = 100;

/** CPU seconds (user + system, all threads) a process has used so far; NaN if it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    return parseProcStatTicks(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

export class BenchPair {
  private iperfServer: ChildProcess | null = null;
  private destroyed: Promise<void> | null = null;

  private constructor(
    readonly spec: PairSpec,
    readonly nsA: Netns,
    readonly nsB: Netns,
    private readonly ifnames: string[],
    private readonly daemons: Daemon[],
  ) {}

  /** Pid of the client-side (A) and server-side (B) daemon. */
  get pids(): [number, number] {
    return [this.daemons[0]!.pid, this.daemons[1]!.pid];
  }

  /** CPU seconds used so far by [client daemon, server daemon]. */
  cpu(): [number, number] {
    return [cpuSeconds(this.daemons[0]!.pid), cpuSeconds(this.daemons[1]!.pid)];
  }

  /**
   * Namespaces, veth, both daemons, keys, addresses, tunnel MTU, a handshake (first ping),
   * and a long-running iperf3 server in B. On failure everything created so far is removed.
   */
  static async create(spec: PairSpec, opts: { mtu: number }): Promise<BenchPair> {
    const namespaces: Netns[] = [];
    const ifnames: string[] = [];
    const daemons: Daemon[] = [];
    try {
      const nsA = await Netns.create(`bench-${spec.id}-a`);
      namespaces.push(nsA);
      const nsB = await Netns.create(`bench-${spec.id}-b`);
      namespaces.push(nsB);
      await vethPair(nsA, nsB, { aAddrs: [`${OUTER_A}/24`], bAddrs: [`${OUTER_B}/24`] });
      const ifA = uniqueIfname('wbn');
      const ifB = uniqueIfname('wbn');
      ifnames.push(ifA, ifB);
      const start = (impl: Impl, ns: Netns, ifname: string): Promise<Daemon> =>
        impl === 'wirepool'
          ? startWirepool(ns, ifname, { logLevel: 'error', timeoutMs: START_TIMEOUT_MS, ...(spec.workers !== undefined ? { workers: spec.workers } : {}) })
          : startWireguardGo(ns, ifname, { logLevel: 'error', timeoutMs: START_TIMEOUT_MS });
      daemons.push(await start(spec.client, nsA, ifA));
      daemons.push(await start(spec.server, nsB, ifB));
      const keysA = genKey();
      const keysB = genKey();
      await configure(nsA, ifA, {
        privateKey: keysA.privateKey,
        listenPort: PORT_A,
        peers: [{ publicKey: keysB.publicKey, endpoint: `${OUTER_B}:${PORT_B}`, allowedIps: [`${INNER_B}/32`] }],
      });
      await configure(nsB, ifB, {
        privateKey: keysB.privateKey,
        listenPort: PORT_B,
        peers: [{ publicKey: keysA.publicKey, endpoint: `${OUTER_A}:${PORT_A}`, allowedIps: [`${INNER_A}/32`] }],
      });
      for (const [ns, ifname] of [[nsA, ifA], [nsB, ifB]] as const) {
        await ns.ip(['link', 'set', 'dev', ifname, 'mtu', String(opts.mtu)]);
      }
      await addressUp(nsA, ifA, [`${INNER_A}/24`]);
      await addressUp(nsB, ifB, [`${INNER_B}/24`]);
      const pair = new BenchPair(spec, nsA, nsB, ifnames, daemons);
      if (!(await pingUntilUp(nsA, INNER_B, 15_000))) throw new Error(`${spec.label}: no ping reply through the tunnel within 15 s`);
      await pair.startIperfServer();
      return pair;
    } catch (err) {
      await Promise.all(namespaces.map((ns) => ns.destroy().catch(() => {})));
      removeStaleSockets(ifnames);
      throw err;
    }
  }

  /** (Re)starts the iperf3 server in B, bound to its inner address, and waits until it listens. */
  async startIperfServer(): Promise<void> {
    if (this.iperfServer !== null) await this.stopIperfServer();
    this.iperfServer = this.nsB.spawn('iperf3', ['-s', '-B', INNER_B, '-p', String(IPERF_PORT)]);
    const ok = await waitFor(async () => {
      const r = await this.nsB.exec('ss', ['-Hltn', `sport = :${IPERF_PORT}`], { timeoutMs: 3_000 });
      return r.stdout.includes(`:${IPERF_PORT}`);
    }, 5_000, 50);
    if (!ok) throw new Error(`iperf3 server in ${this.nsB.name} did not start`);
  }

  private async stopIperfServer(): Promise<void> {
    const child = this.iperfServer;
    this.iperfServer = null;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => child.kill('SIGKILL'), 2_000);
      child.once('exit', () => { clearTimeout(t); resolve(); });
      child.kill('SIGTERM');
    });
  }

  /** Whether both daemons are still running. */
  alive(): boolean {
    return this.daemons.every((d) => Number.isFinite(cpuSeconds(d.pid)));
  }

  /** Ends everything in both namespaces, deletes them and the socket files. Idempotent. */
  destroy(): Promise<void> {
    this.destroyed ??= (async () => {
      await Promise.all([this.nsA, this.nsB].map((ns) => ns.destroy().catch(() => {})));
      removeStaleSockets(this.ifnames);
    })();
    return this.destroyed;
  }
}
