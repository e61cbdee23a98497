// `npm run bench`: wirepool against wireguard-go, side by side on this machine. For each pair
// of implementations (wirepool↔wirepool, wireguard-go↔wireguard-go, and both mixed pairs) it
// builds two network namespaces joined by a veth with a tunnel between them configured with
// wg(8), then measures in alternating rounds (A, B, C, D, A, B, …): iperf3 TCP with 1 and 4
// streams, iperf3 UDP at 64 and 1400 bytes (received packets/s, loss), ping RTT p50/p99 idle
// and under a TCP load, the CPU seconds each daemon used per GB of TCP moved, and for each
// wirepool daemon the CPU its main thread spent per transport message it sent or received
// during the TCP runs (wireguard-go: n/a). It prints one table of medians [min–max] ×ratio to
// wireguard-go↔wireguard-go, and writes it as JSON and an SVG chart to bench/results/.
// Options: bench/harness/options.ts (--help); the README in this folder says what each row is.
//
// Bounded: every command has a timeout, every loop a count, and no measurement starts after
// the overall deadline (a watchdog exits 2 minutes past it). Everything it creates lives in
// its namespaces and is removed at the end, on an error, and on SIGINT/SIGTERM.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { haveCommand } from '../test/helpers/netns.js';
import { describeMachine, machineFacts } from './harness/machine.js';
import { loadedPingRun, pingRun, tcpRun, udpRun } from './harness/measure.js';
import { type BenchOptions, REFERENCE_PAIR_ID, USAGE, pairSpecs, parseBenchArgs } from './harness/options.js';
import { type BenchSummary, type Samples, METRICS, buildSummary, fmt, formatTable, renderSvg } from './harness/report.js';
import { percentile } from './harness/stats.js';
import { BenchPair, type PairSpec } from './harness/topology.js';
import { errorText } from '../src/error-text.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const WATCHDOG_GRACE_MS = 120_000;
const PING_RAMP_UP_MS = 1_000;

interface RunRecord {
  round: number;
  pair: string;
  step: string;
  at: string;
  result?: unknown;
  error?: string;
}

const pairs: BenchPair[] = [];
const samples: Samples = {};
const runs: RunRecord[] = [];
let cleaning: Promise<void> | null = null;

const log = (s: string): void => void process.stdout.write(s + '\n');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function cleanup(): Promise<void> {
  cleaning ??= Promise.all(pairs.map((p) => p.destroy())).then(() => undefined);
  return cleaning;
}

function record(round: number, spec: PairSpec, step: string, result: unknown, error?: unknown): void {
  runs.push({
    round, pair: spec.id, step, at: new Date().toISOString(), ...(result !== undefined ? { result } : {}),
    ...(error !== undefined ? { error: error instanceof Error ? error.message : String(error) } : {}),
  });
}

/** One round of every measurement for one pair; appends one sample (NaN if it failed) per metric. */
async function measurePair(pair: BenchPair, o: BenchOptions, round: number, deadlineAt: number): Promise<void> {
  const spec = pair.spec;
  const put = (key: string, v: number): void => void (samples[spec.id]![key] ??= []).push(v);
  // Summed over the round's two TCP runs: daemon CPU seconds, GB received, and per daemon
  // [client, server] its main thread's CPU seconds and the transport messages it moved.
  const tcpCpu = { client: 0, server: 0, gb: 0, main: [0, 0], messages: [0, 0] };
  const addTcp = (r: Awaited<ReturnType<typeof tcpRun>>): void => {
    tcpCpu.client += r.cpu.client; tcpCpu.server += r.cpu.server; tcpCpu.gb += r.bytes / 1e9;
    for (const i of [0, 1]) { tcpCpu.main[i]! += r.daemons.mainCpu[i]!; tcpCpu.messages[i]! += r.daemons.messages[i]!; }
    if (r.messagesError !== undefined) log(`  ${spec.label}: could not count transport messages: ${r.messagesError}`);
  };
  const pingMs = o.pings * o.pingIntervalMs;
  const steps: { name: string; estMs: number; keys: string[]; run: () => Promise<string> }[] = [
    {
      name: 'tcp1', estMs: o.duration * 1000 + 1500, keys: ['tcp1'], run: async () => {
        const r = await tcpRun(pair, o.duration, 1, { countMessages: true });
        record(round, spec, 'tcp1', r);
        put('tcp1', r.bitsPerSecond / 1e6);
        addTcp(r);
        return `TCP×1 ${fmt(r.bitsPerSecond / 1e6)}`;
      },
    },
    {
      name: 'tcp4', estMs: o.duration * 1000 + 1500, keys: ['tcp4'], run: async () => {
        const r = await tcpRun(pair, o.duration, 4, { countMessages: true });
        record(round, spec, 'tcp4', r);
        put('tcp4', r.bitsPerSecond / 1e6);
        addTcp(r);
        return `TCP×4 ${fmt(r.bitsPerSecond / 1e6)} Mbit/s`;
      },
    },
    ...[64, 1400].map((size) => ({
      name: `udp${size}`, estMs: o.duration * 1000 + 1500, keys: [`udp${size}_pps`, `udp${size}_loss`], run: async () => {
        const r = await udpRun(pair, o.duration, size);
        record(round, spec, `udp${size}`, r);
        put(`udp${size}_pps`, r.receivedPps / 1e3);
        put(`udp${size}_loss`, r.lostPercent);
        return `UDP${size} ${fmt(r.receivedPps / 1e3)} kpps ${fmt(r.lostPercent)}% lost`;
      },
    })),
    {
      name: 'ping_idle', estMs: pingMs + 1000, keys: ['ping_idle_p50', 'ping_idle_p99'], run: async () => {
        const r = await pingRun(pair, o.pings, o.pingIntervalMs);
        record(round, spec, 'ping_idle', r);
        put('ping_idle_p50', percentile(r.rttMs, 50));
        put('ping_idle_p99', percentile(r.rttMs, 99));
        return `ping ${fmt(percentile(r.rttMs, 50))}/${fmt(percentile(r.rttMs, 99))} ms`;
      },
    },
    {
      name: 'ping_load', estMs: pingMs + PING_RAMP_UP_MS + 2500, keys: ['ping_load_p50', 'ping_load_p99'], run: async () => {
        const r = await loadedPingRun(pair, o.pings, o.pingIntervalMs, PING_RAMP_UP_MS);
        record(round, spec, 'ping_load', r);
        put('ping_load_p50', percentile(r.ping.rttMs, 50));
        put('ping_load_p99', percentile(r.ping.rttMs, 99));
        return `loaded ${fmt(percentile(r.ping.rttMs, 50))}/${fmt(percentile(r.ping.rttMs, 99))} ms`;
      },
    },
  ];
  const notes: string[] = [];
  for (const step of steps) {
    if (cleaning !== null) return;
    if (Date.now() + step.estMs > deadlineAt) {
      notes.push(`${step.name} skipped (deadline)`);
      record(round, spec, step.name, undefined, 'skipped: overall deadline');
      for (const k of step.keys) put(k, NaN);
      continue;
    }
    try {
      notes.push(await step.run());
    } catch (err) {
      if (cleaning !== null) return;
      record(round, spec, step.name, undefined, err);
      for (const k of step.keys) put(k, NaN);
      notes.push(`${step.name} FAILED`);
      log(`  ${spec.label}: ${step.name} failed: ${errorText(err)}`);
      if (!pair.alive()) throw new Error(`${spec.label}: a daemon died`);
      await pair.startIperfServer().catch(() => {}); // a failed client can leave the server stuck
    }
  }
  put('cpu_client', tcpCpu.gb > 0 ? tcpCpu.client / tcpCpu.gb : NaN);
  put('cpu_server', tcpCpu.gb > 0 ? tcpCpu.server / tcpCpu.gb : NaN);
  // µs of main-thread CPU per message; NaN for wireguard-go (its counters are NaN) or if a TCP run failed.
  const mainUs = [0, 1].map((i) => (tcpCpu.messages[i]! > 0 ? (tcpCpu.main[i]! * 1e6) / tcpCpu.messages[i]! : NaN));
  put('main_client', mainUs[0]!);
  put('main_server', mainUs[1]!);
  notes.push(`CPU ${fmt(tcpCpu.client / tcpCpu.gb)}/${fmt(tcpCpu.server / tcpCpu.gb)} s/GB`);
  if (mainUs.some(Number.isFinite)) notes.push(`main thread ${mainUs.map((u) => (Number.isFinite(u) ? fmt(u) : 'n/a')).join('/')} µs/packet`);
  log(`  round ${round} ${spec.label}: ${notes.join(', ')}`);
}

function writeResults(o: BenchOptions, summary: BenchSummary, facts: ReturnType<typeof machineFacts>, meta: Record<string, unknown>): string[] {
  fs.mkdirSync(o.outDir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const base = path.join(o.outDir, `bench-${stamp}`);
  const json = {
    ...meta,
    machine: facts,
    options: o,
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
    table: formatTable(summary),
    summary,
    samples,
    runs,
  };
  const svg = renderSvg(summary, {
    title: 'wirepool vs wireguard-go, side by side (sender → receiver)',
    subtitle: [describeMachine(facts), `${json.command}: ${o.rounds} round(s), iperf3 ${o.duration} s per run, ${o.pings} pings per sample, tunnel MTU ${o.mtu}`],
  });
  const text = JSON.stringify(json, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2) + '\n';
  fs.writeFileSync(`${base}.json`, text);
  fs.writeFileSync(`${base}.svg`, svg);
  fs.writeFileSync(path.join(o.outDir, 'latest.json'), text);
  fs.writeFileSync(path.join(o.outDir, 'latest.svg'), svg);
  return [`${base}.json`, `${base}.svg`];
}

async function main(): Promise<number> {
  const parsed = parseBenchArgs(process.argv.slice(2), path.join(ROOT, 'bench', 'results'));
  if (!parsed.ok) {
    process.stderr.write(`bench: ${parsed.message}\n\n${USAGE}\n`);
    return 2;
  }
  const o = parsed.options;
  if (o.help) {
    log(USAGE);
    return 0;
  }
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces, TUN devices)');
  for (const cmd of ['ip', 'wg', 'wireguard-go', 'iperf3', 'ping', 'ss']) if (!haveCommand(cmd)) throw new Error(`needs ${cmd} on PATH`);
  if (!fs.existsSync(path.join(ROOT, 'dist', 'src', 'cli', 'main.js'))) throw new Error('needs a built dist/ (npm run build)');

  const startedAt = Date.now();
  const deadlineAt = startedAt + o.deadline * 1000;
  const watchdog = setTimeout(() => {
    process.stderr.write(`bench: still running ${WATCHDOG_GRACE_MS / 1000} s past the deadline; cleaning up and exiting\n`);
    void cleanup().finally(() => process.exit(3));
  }, o.deadline * 1000 + WATCHDOG_GRACE_MS);
  watchdog.unref();

  const facts = machineFacts();
  const specs = pairSpecs(o);
  log(`machine: ${describeMachine(facts)}`);
  log(`pairs: ${specs.map((s) => s.label).join(', ')}; ${o.rounds} round(s), iperf3 ${o.duration} s per run, ${o.pings} pings per sample, tunnel MTU ${o.mtu}, deadline ${o.deadline} s`);

  for (const spec of specs) {
    if (cleaning !== null) return 130;
    const t0 = Date.now();
    pairs.push(await BenchPair.create(spec, { mtu: o.mtu }));
    samples[spec.id] = {};
    log(`set up ${spec.label} (${pairs.at(-1)!.nsA.name} → ${pairs.at(-1)!.nsB.name}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
  // Warm-up (JIT, socket buffers, first keypair): one short TCP run per pair, not recorded.
  for (const pair of pairs) {
    if (cleaning !== null) return 130;
    await tcpRun(pair, 1, 1).catch((err: unknown) => log(`  warm-up of ${pair.spec.label} failed: ${errorText(err)}`));
    await sleep(200);
  }

  let completedRounds = 0;
  for (let round = 1; round <= o.rounds && Date.now() < deadlineAt; round++) {
    for (const pair of pairs) {
      if (cleaning !== null) return 130;
      await measurePair(pair, o, round, deadlineAt);
    }
    completedRounds = round;
  }

  const summary = buildSummary(specs.map((s) => ({ id: s.id, label: s.label, client: s.client, server: s.server })), samples, REFERENCE_PAIR_ID, METRICS);
  const table = formatTable(summary);
  const skipped = runs.filter((r) => r.error?.startsWith('skipped') === true).length;
  const failed = runs.filter((r) => r.error !== undefined).length - skipped;
  log('');
  if (skipped > 0) log(`the overall deadline (${o.deadline} s) was reached: ${skipped} measurement(s) skipped`);
  if (failed > 0) log(`${failed} measurement(s) failed (see "runs" in the JSON)`);
  log(`medians over ${completedRounds} round(s) [min–max] ×ratio to wg-go↔wg-go (↑ higher is better, ↓ lower is better); sender → receiver`);
  log(table);
  const files = writeResults(o, summary, facts, {
    startedAt: new Date(startedAt).toISOString(),
    seconds: Math.round((Date.now() - startedAt) / 1000),
    completedRounds,
    skipped,
    failed,
  });
  log('');
  for (const f of files) log(`wrote ${path.relative(process.cwd(), f) || f}`);
  return 0;
}

// Last resort for socket files of daemons killed without a chance to remove them (the
// interface names come from test/helpers/tunnel.ts uniqueIfname: 'wbn' + pid + 'n' + counter).
process.on('exit', () => {
  try {
    for (const f of fs.readdirSync('/var/run/wireguard')) {
      if (f.startsWith(`wbn${process.pid}n`) && f.endsWith('.sock')) fs.rmSync(path.join('/var/run/wireguard', f), { force: true });
    }
  } catch {
    // no socket directory
  }
});

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    process.stderr.write(`\nbench: ${sig}, removing namespaces and daemons\n`);
    void cleanup().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  });
}

let code = 1;
try {
  code = await main();
} catch (err) {
  process.stderr.write(`bench failed: ${errorText(err)}\n`);
  code = 1;
} finally {
  await cleanup();
}
process.exit(code);
