// Benchmark: where one idle ping's round trip goes, hop by hop, for wirepool ↔ wirepool and
// wireguard-go ↔ wireguard-go on the bench's own pair of network namespaces.
//
// Per pair: warm-up as the bench does before its idle pings (TCP, then a UDP 1400 B flood), then
// `perf record -a` of sched_switch and syscall entries while `ping` sends N echo requests, INTERVAL
// ms apart, from A to B. Each round trip is cut at the events both implementations share:
//   ping's send → a thread of A runs → A's send of the message (sendmmsg/sendmsg/sendto) → a thread
//   of B runs → B's write to its TUN device → B's send of the reply → a thread of A runs → A's TUN
//   write → ping runs again,
// where "a thread of A" is any thread of A's daemon process (wirepool at idle: its main thread;
// wireguard-go: whichever goroutine's thread). Medians per hop over the round trips that were cut
// completely (and took under 5 ms). The tracing adds to every hop; compare the two columns, not
// the totals with `ping`'s own figures. Needs root, perf with tracepoints, and the bench's tools.
//
//   node dist/bench/idle-timeline.js [--pings N] [--interval MS] [--pairs wp-wp,wg-wg]
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pingRun, tcpRun, udpRun } from './harness/measure.js';
import { BenchPair, type PairSpec } from './harness/topology.js';

const PAIRS: Record<string, PairSpec> = {
  'wp-wp': { id: 'wp-wp', label: 'wirepool↔wirepool', client: 'wirepool', server: 'wirepool' },
  'wg-wg': { id: 'wg-wg', label: 'wg-go↔wg-go', client: 'wireguard-go', server: 'wireguard-go' },
};
const HOPS = [
  'ping sends → A runs', 'A runs → A sends', 'A sends → B runs', 'B runs → B writes TUN',
  'B writes TUN → B sends reply', 'B sends → A runs', 'A runs → A writes TUN', 'A writes TUN → ping runs',
] as const;
const NR = { write: 1, writev: 20, sendto: 44, sendmsg: 46, sendmmsg: 307 } as const;

interface Event { t: number; kind: 'in' | 'sys'; tid: number; pid: number; comm: string; nr: number }

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : fallback;
}

/** perf script → events: switch-ins (next task) and syscall entries, in time order. */
function readTrace(file: string): Event[] {
  const out = execFileSync('perf', ['script', '-i', file, '-F', 'comm,pid,tid,time,event,trace'], { maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  const events: Event[] = [];
  for (const line of out.split('\n')) {
    const m = /^\s*(.+?)\s+(\d+)\/(\d+)\s+([\d.]+):\s+(\S+):\s+(.*)$/.exec(line);
    if (!m) continue;
    const t = Number(m[4]) * 1e6;
    if (m[5] === 'sched:sched_switch') {
      const n = /next_comm=(.+?) next_pid=(\d+)/.exec(m[6]!);
      if (n) events.push({ t, kind: 'in', tid: Number(n[2]), pid: -1, comm: n[1]!, nr: -1 });
    } else {
      const n = /NR (\d+)/.exec(m[6]!);
      if (n) events.push({ t, kind: 'sys', tid: Number(m[3]), pid: Number(m[2]), comm: m[1]!, nr: Number(n[1]) });
    }
  }
  return events;
}

/** Each complete round trip's hop durations (µs), in HOPS order. */
function roundTrips(events: Event[], pidA: number, pidB: number): number[][] {
  const pidOf = new Map<number, number>();
  for (const e of events) if (e.kind === 'sys') pidOf.set(e.tid, e.pid);
  const of = (e: Event, pid: number): boolean => pidOf.get(e.tid) === pid;
  const runs = (pid: number) => (e: Event): boolean => e.kind === 'in' && of(e, pid);
  const sends = (pid: number) => (e: Event): boolean => e.kind === 'sys' && of(e, pid) && (e.nr === NR.sendmmsg || e.nr === NR.sendmsg || e.nr === NR.sendto);
  const writes = (pid: number) => (e: Event): boolean => e.kind === 'sys' && of(e, pid) && (e.nr === NR.write || e.nr === NR.writev);
  const pingSends = (e: Event): boolean => e.kind === 'sys' && e.comm === 'ping' && (e.nr === NR.sendto || e.nr === NR.sendmsg);
  const pingRuns = (e: Event): boolean => e.kind === 'in' && e.comm === 'ping';
  const steps = [runs(pidA), sends(pidA), runs(pidB), writes(pidB), sends(pidB), runs(pidA), writes(pidA), pingRuns];
  const next = (from: number, pred: (e: Event) => boolean): number => {
    for (let i = from; i < events.length; i++) if (pred(events[i]!)) return i;
    return -1;
  };
  const trips: number[][] = [];
  let from = 0;
  for (;;) {
    let k = next(from, pingSends);
    if (k < 0) break;
    const times = [events[k]!.t];
    for (const step of steps) {
      k = next(k + 1, step);
      if (k < 0) break;
      times.push(events[k]!.t);
    }
    if (k < 0) break;
    if (times[times.length - 1]! - times[0]! < 5_000) trips.push(times.slice(1).map((t, i) => t - times[i]!));
    from = k + 1;
  }
  return trips;
}

const median = (v: number[]): number => [...v].sort((a, b) => a - b)[v.length >> 1] ?? NaN;

async function measure(spec: PairSpec, pings: number, intervalMs: number): Promise<number[][]> {
  const pair = await BenchPair.create(spec, { mtu: 1440 });
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'wirepool-timeline-')), 'perf.data');
  try {
    await tcpRun(pair, 3, 1);
    await udpRun(pair, 2, 1400);
    await pingRun(pair, 20, intervalMs);
    const perf = spawn('perf', ['record', '-a', '-e', 'sched:sched_switch,raw_syscalls:sys_enter', '-o', file], { stdio: 'ignore' });
    const exited = new Promise((resolve) => perf.once('exit', resolve));
    await new Promise((resolve) => setTimeout(resolve, 800)); // perf's own start-up, before the first ping
    await pingRun(pair, pings, intervalMs);
    perf.kill('SIGINT');
    await exited;
    const [pidA, pidB] = pair.pids;
    return roundTrips(readTrace(file), pidA, pidB);
  } finally {
    await pair.destroy();
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
}

const pings = Number(option('pings', '150'));
const intervalMs = Number(option('interval', '20'));
const specs = option('pairs', 'wp-wp,wg-wg').split(',').map((id) => {
  const spec = PAIRS[id];
  if (!spec) throw new Error(`unknown pair ${id} (wp-wp, wg-wg)`);
  return spec;
});
const columns: { label: string; trips: number[][] }[] = [];
for (const spec of specs) columns.push({ label: spec.label, trips: await measure(spec, pings, intervalMs) });
process.stdout.write(`idle ping, ${pings} pings ${intervalMs} ms apart after a TCP run and a UDP flood; median µs per hop (round trips cut: ${columns.map((c) => c.trips.length).join(' / ')})\n`);
process.stdout.write(`| hop | ${columns.map((c) => c.label).join(' | ')} |\n|---|${columns.map(() => '---:').join('|')}|\n`);
HOPS.forEach((hop, i) => process.stdout.write(`| ${hop} | ${columns.map((c) => median(c.trips.map((t) => t[i]!)).toFixed(0)).join(' | ')} |\n`));
process.stdout.write(`| round trip | ${columns.map((c) => median(c.trips.map((t) => t.reduce((a, b) => a + b, 0))).toFixed(0)).join(' | ')} |\n`);
