// The side-by-side benchmark's topology: one tunnel per pair of implementations, each in its
// own two network namespaces (A = client / iperf3 sender, B = server) joined by a veth, with
// the daemons configured by `wg setconf` exactly as an operator would. Built on the e2e test
// harness (test/helpers/netns.ts, tunnel.ts): every process a pair starts runs inside one of
// its namespaces, so destroy() — which ends whatever runs in them and deletes them — leaves
// nothing behind; a daemon's UAPI socket file (in /var/run/wireguard, shared by all
// namespaces, hence the per-process interface names) is removed too.
//
// Per-daemon figures for the report: CPU seconds of the whole process and of its main thread
// (/proc/<pid>/stat and /proc/<pid>/task/<pid>/stat), the packet counters of its interface
// (/proc/<pid>/net/dev: that process's namespace), and for wirepool the transport messages it
// sent and received, read from its Prometheus endpoint (`--metrics 127.0.0.1:9586`, each daemon
// on the loopback of its own namespace) by a one-line Node fetch run in that namespace.

import { type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { Netns, genKey, vethPair, waitFor } from '../../test/helpers/netns.js';
import {
  type Daemon, addressUp, configure, pingUntilUp, removeStaleSockets, startWireguardGo, startWirepool, uniqueIfname,
} from '../../test/helpers/tunnel.js';
import { type InterfaceCounters, parseProcNetDev, parseProcStatTicks, sumPromMetric } from './parse.js';

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
  /** wirepool --tun-queues for the wirepool end(s); undefined = its default. */
  tunQueues?: number;
}

export const OUTER_A = '198.51.100.1';
export const OUTER_B = '198.51.100.2';
export const INNER_A = '10.99.0.1';
export const INNER_B = '10.99.0.2';
const PORT_A = 51820;
const PORT_B = 51821;
const IPERF_PORT = 5201;
const START_TIMEOUT_MS = 15_000;
/** Where each wirepool daemon serves /metrics, on the loopback of its own namespace. */
const METRICS_ADDR = '127.0.0.1:9586';
const SCRAPE_TIMEOUT_MS = 15_000;
/** Transport messages (data and keepalives) a wirepool daemon sent and received, summed over peers. */
const MESSAGE_METRICS = ['wireguard_peer_sent_packets_total', 'wireguard_peer_received_packets_total'];
/** Prints the metrics text; run as `node -e` inside a namespace (nothing but Node is needed). */
const SCRAPE_SCRIPT = `fetch('http://${METRICS_ADDR}/metrics').then((r) => r.text()).then((t) => process.stdout.write(t), (e) => { process.stderr.write(String(e)); process.exit(1); })`;

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

/** CPU seconds (user + system) the main thread of a process (the thread whose id is the pid) has used so far; NaN if gone. */
export function mainThreadCpuSeconds(pid: number): number {
  try {
    return parseProcStatTicks(fs.readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8')) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/** Counters of interface `ifname` in the network namespace of process `pid`; null if gone. */
export function interfaceCounters(pid: number, ifname: string): InterfaceCounters | null {
  try {
    return parseProcNetDev(fs.readFileSync(`/proc/${pid}/net/dev`, 'utf8'), ifname);
  } catch {
    return null;
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

  /** Implementation of [client daemon, server daemon]. */
  get impls(): [Impl, Impl] {
    return [this.spec.client, this.spec.server];
  }

  /**
   * CPU seconds used so far by the main thread of [client daemon, server daemon]: wirepool's
   * handshakes, routing and ring stages run there. NaN for wireguard-go (no such thread: its
   * goroutines move between OS threads).
   */
  mainThreadCpu(): [number, number] {
    return [0, 1].map((i) => (this.impls[i] === 'wirepool' ? mainThreadCpuSeconds(this.daemons[i]!.pid) : NaN)) as [number, number];
  }

  /** Packets (rx + tx) counted on each daemon's interface so far: TUN reads and writes, whatever their size. */
  interfacePackets(): [number, number] {
    return [0, 1].map((i) => {
      const c = interfaceCounters(this.daemons[i]!.pid, this.ifnames[i]!);
      return c === null ? NaN : c.rxPackets + c.txPackets;
    }) as [number, number];
  }

  /**
   * Transport messages (data packets and keepalives, each one WireGuard message on the wire)
   * each daemon has sent + received so far, from its /metrics; NaN for wireguard-go. Throws if
   * a wirepool daemon's endpoint does not answer.
   */
  async transportMessages(): Promise<[number, number]> {
    const one = async (i: number): Promise<number> => {
      if (this.impls[i] !== 'wirepool') return NaN;
      const ns = i === 0 ? this.nsA : this.nsB;
      const r = await ns.exec(process.execPath, ['-e', SCRAPE_SCRIPT], { timeoutMs: SCRAPE_TIMEOUT_MS });
      if (r.code !== 0) throw new Error(`GET http://${METRICS_ADDR}/metrics in ${ns.name} failed (${r.code}): ${r.stderr.trim().slice(0, 200)}`);
      let n = 0;
      for (const name of MESSAGE_METRICS) {
        const v = sumPromMetric(r.stdout, name);
        if (!Number.isFinite(v)) throw new Error(`${ns.name}: /metrics has no ${name}`);
        n += v;
      }
      return n;
    };
    return Promise.all([one(0), one(1)]) as Promise<[number, number]>;
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
          ? startWirepool(ns, ifname, {
            logLevel: 'error', timeoutMs: START_TIMEOUT_MS,
            extraArgs: ['--metrics', METRICS_ADDR, ...(spec.tunQueues !== undefined ? ['--tun-queues', String(spec.tunQueues)] : [])],
            ...(spec.workers !== undefined ? { workers: spec.workers } : {}),
          })
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
