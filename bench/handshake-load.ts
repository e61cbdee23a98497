// Handshake load generator (`npm run bench:handshakes -- …`): N independent WireGuard
// initiators — real static keys, real Noise initiations, one UDP socket (source port) each,
// cookie replies honoured, optional data after the handshake — against one target interface,
// paced or as fast as possible, bounded in count and time. Reports handshakes/s, time until
// all N are connected, failures, cookie replies and retransmits; with --compare, the same
// work against wirepool and wireguard-go side by side, plus bytes per peer and `wg setconf`
// time at 10,000 configured peers for both. The initiator behaviour is described in
// harness/handshake-gen.ts, the namespace set-up in harness/load-target.ts.
//
// Two ways to run it:
//   against a target you set up:  handshake-load.js --target ADDR:PORT --target-key PUB --keys FILE [--bind A,B…] …
//     (runs in the current network namespace; FILE has one "PRIVATEKEY [INNER-IPV4]" per line,
//      each key configured on the target as a peer with that inner address as its allowed IP)
//   self-contained (root):        handshake-load.js --setup wirepool|wireguard-go [--count N] …
//                                 handshake-load.js --compare [--count N] [--memory-peers 10000] …
//     (creates namespaces, starts the daemon, configures N peers with one `wg setconf`, runs
//      this same script inside the generator namespace with `ip netns exec`, removes it all)

import fs from 'node:fs';
import os from 'node:os';
import { type DataMode, type FloodKind, type FloodOptions, type GeneratorOptions, type GeneratorResult, runGenerator } from './harness/handshake-gen.js';
import { type Impl, type PeerMemory, LoadTarget, MAX_SOURCES, TARGET_INNER, measurePeerMemory } from './harness/load-target.js';
import { percentile } from './harness/stats.js';
import { errorText } from '../src/error-text.js';

const USAGE = `usage:
  handshake-load --target ADDR:PORT --target-key PUBKEY --keys FILE [options]   (generator only, current netns)
  handshake-load --setup wirepool|wireguard-go [options]                       (namespaces + daemon + generator)
  handshake-load --compare [options]                                           (both daemons, side by side)
options:
  --count N            initiators (setup default 1000; generator default: every key in FILE)
  --rate R             first initiations per second (0 = as fast as possible; default 0)
  --deadline S         stop after S seconds (default 60)
  --data MODE          none | keepalive | ping (echo through the session; default ping with a target
                       inner address, else keepalive)
  --inner-target IPV4  the target interface's inner address (for --data ping)
  --legit-ping         (setup) an established wireguard-go peer pings the target every 10 ms during
                       the run; its round-trip times are reported
  --light              light generator (--data none only): first initiations made before the run,
                       responses verified after it, so the target gets the machine (capacity)
  --cookie-retry-ms MS after a cookie reply, resend with mac2 after MS (default: at the retransmit
                       timer, 5 s + jitter, like real peers)
  --start-delay MS     start the initiators MS after time 0 (e.g. inside a flood)
  --bind A,B,...       local source addresses, initiator i uses the (i mod n)-th (generator mode)
  --sources K          source addresses to create in the generator namespace (setup; default
                       min(count, ${MAX_SOURCES}))
  --workers N          wirepool --workers (setup)
  --handshake-workers N  wirepool --handshake-workers (setup; 0 = initiations answered on main)
  --warm-up N          (setup) first the same run from N other initiators, unmeasured: the target
                       as a long-running daemon meets a storm (wirepool's JIT has compiled its path)
  --memory-peers N     also measure daemon RSS per peer and setconf time at N peers (setup default 0,
                       compare default 10000; 0 = skip)
  --flood KIND         junk | replay: also flood valid-mac1 initiations (junk: random, one per socket;
                       replay: initiator 0's first initiation resent)
  --flood-rate R       flood packets per second (default 20000)
  --flood-ms MS        flood duration (default 3000)
  --flood-after MS     flood starts MS after time 0 (default 0)
  --flood-sockets P    flood sockets = distinct source ports (default 64)
  --flood-bind A,B,... flood source addresses (default: --bind)
  --json               print the result as one JSON line on stdout (generator mode)
  --json-out FILE      write the full result as JSON (setup / compare)
  --rounds K           setup / compare: K rounds (alternating in compare), median shown (default 1)
  --quiet              no progress lines on stderr`;

interface Args {
  mode: 'generate' | 'setup' | 'compare';
  impl: Impl;
  target: string | null;
  targetKey: string | null;
  keys: string | null;
  count: number | null;
  rate: number;
  deadlineS: number;
  data: DataMode | null;
  innerTarget: string | null;
  cookieRetryMs: number | null;
  startDelayMs: number;
  bind: string[];
  sources: number | null;
  workers: number | undefined;
  handshakeWorkers: number | undefined;
  light: boolean;
  legitPing: boolean;
  warmUp: number;
  memoryPeers: number | null;
  flood: FloodKind | null;
  floodRate: number;
  floodMs: number;
  floodAfterMs: number;
  floodSockets: number;
  floodBind: string[] | null;
  json: boolean;
  jsonOut: string | null;
  quiet: boolean;
  rounds: number;
}

class UsageError extends Error {}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    mode: 'generate', impl: 'wirepool', target: null, targetKey: null, keys: null, count: null, rate: 0, deadlineS: 60,
    data: null, innerTarget: null, cookieRetryMs: null, startDelayMs: 0, bind: [], sources: null, workers: undefined, handshakeWorkers: undefined, light: false, legitPing: false, warmUp: 0,
    memoryPeers: null, flood: null, floodRate: 20_000, floodMs: 3_000, floodAfterMs: 0, floodSockets: 64, floodBind: null,
    json: false, jsonOut: null, quiet: false, rounds: 1,
  };
  const num = (name: string, v: string | undefined, min = 0): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n < min) throw new UsageError(`${name} needs a number ≥ ${min}`);
    return n;
  };
  const int = (name: string, v: string | undefined, min = 0): number => {
    const n = num(name, v, min);
    if (!Number.isInteger(n)) throw new UsageError(`${name} needs an integer`);
    return n;
  };
  const list = (name: string, v: string | undefined): string[] => {
    if (v === undefined || v === '') throw new UsageError(`${name} needs a list`);
    return v.split(',').filter((s) => s !== '');
  };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i]!;
    const v = (): string | undefined => argv[++i];
    switch (f) {
      case '--target': a.target = v() ?? null; break;
      case '--target-key': a.targetKey = v() ?? null; break;
      case '--keys': a.keys = v() ?? null; break;
      case '--setup': {
        const impl = v();
        if (impl !== 'wirepool' && impl !== 'wireguard-go') throw new UsageError('--setup needs wirepool or wireguard-go');
        a.mode = 'setup';
        a.impl = impl;
        break;
      }
      case '--compare': a.mode = 'compare'; break;
      case '--light': a.light = true; break;
      case '--legit-ping': a.legitPing = true; break;
      case '--warm-up': a.warmUp = int(f, v(), 0); break;
      case '--count': a.count = int(f, v(), 0); break;
      case '--rate': a.rate = num(f, v()); break;
      case '--deadline': a.deadlineS = num(f, v(), 0.001); break;
      case '--data': {
        const d = v();
        if (d !== 'none' && d !== 'keepalive' && d !== 'ping') throw new UsageError('--data needs none, keepalive or ping');
        a.data = d;
        break;
      }
      case '--inner-target': a.innerTarget = v() ?? null; break;
      case '--cookie-retry-ms': a.cookieRetryMs = num(f, v()); break;
      case '--start-delay': a.startDelayMs = num(f, v()); break;
      case '--bind': a.bind = list(f, v()); break;
      case '--sources': a.sources = int(f, v(), 1); break;
      case '--workers': a.workers = int(f, v(), 1); break;
      case '--handshake-workers': a.handshakeWorkers = int(f, v()); break;
      case '--memory-peers': a.memoryPeers = int(f, v()); break;
      case '--flood': {
        const k = v();
        if (k !== 'junk' && k !== 'replay') throw new UsageError('--flood needs junk or replay');
        a.flood = k;
        break;
      }
      case '--flood-rate': a.floodRate = num(f, v(), 1); break;
      case '--flood-ms': a.floodMs = num(f, v()); break;
      case '--flood-after': a.floodAfterMs = num(f, v()); break;
      case '--flood-sockets': a.floodSockets = int(f, v(), 1); break;
      case '--flood-bind': a.floodBind = list(f, v()); break;
      case '--json': a.json = true; break;
      case '--json-out': a.jsonOut = v() ?? null; break;
      case '--quiet': a.quiet = true; break;
      case '--rounds': a.rounds = int(f, v(), 1); break;
      case '-h': case '--help': throw new UsageError('');
      default: throw new UsageError(`unknown argument ${f}`);
    }
  }
  if (a.mode === 'generate' && (a.target === null || a.targetKey === null || a.keys === null)) {
    throw new UsageError('generator mode needs --target, --target-key and --keys (or use --setup / --compare)');
  }
  if (a.sources !== null && a.sources > MAX_SOURCES) throw new UsageError(`--sources at most ${MAX_SOURCES}`);
  return a;
}

function decodeKey(b64: string, what: string): Uint8Array {
  const k = Buffer.from(b64, 'base64');
  if (k.length !== 32 || !/^[A-Za-z0-9+/]{43}=$/.test(b64)) throw new Error(`${what} is not a base64 32-byte key`);
  return new Uint8Array(k.buffer, k.byteOffset, k.byteLength);
}

function parseTarget(s: string): { address: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:]+):(\d+)$/.exec(s);
  if (m === null || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new UsageError(`--target needs ADDR:PORT or [ADDR]:PORT, got ${s}`);
  return { address: m[1]!, port: Number(m[2]) };
}

/** Generator mode: runs in the current network namespace. */
async function generate(a: Args): Promise<void> {
  const { address, port } = parseTarget(a.target!);
  const lines = fs.readFileSync(a.keys!, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  const count = Math.min(a.count ?? lines.length, lines.length);
  const privateKeys: Uint8Array[] = [];
  const inner: string[] = [];
  for (let i = 0; i < count; i++) {
    const [key, addr] = lines[i]!.split(/\s+/);
    privateKeys.push(decodeKey(key!, `key on line ${i + 1} of ${a.keys}`));
    if (addr !== undefined) inner.push(addr);
  }
  const data: DataMode = a.data ?? (a.innerTarget !== null && inner.length === count ? 'ping' : 'keepalive');
  const flood: FloodOptions | undefined = a.flood === null ? undefined : {
    kind: a.flood, ratePerSecond: a.floodRate, durationMs: a.floodMs, startAfterMs: a.floodAfterMs,
    sources: a.floodBind ?? a.bind, sockets: a.floodSockets,
  };
  const opts: GeneratorOptions = {
    targetAddress: address,
    targetPort: port,
    targetPublicKey: decodeKey(a.targetKey!, '--target-key'),
    privateKeys,
    sources: a.bind,
    rate: a.rate,
    deadlineMs: a.deadlineS * 1000,
    startDelayMs: a.startDelayMs,
    data,
    ...(a.innerTarget !== null ? { innerTarget: a.innerTarget } : {}),
    innerAddresses: inner,
    cookieRetryMs: a.cookieRetryMs,
    light: a.light,
    ...(flood !== undefined ? { flood } : {}),
    ...(a.quiet ? {} : { progress: (l: string) => process.stderr.write(`[generator] ${l}\n`) }),
  };
  const r = await runGenerator(opts);
  if (a.json) process.stdout.write(JSON.stringify(r) + '\n');
  else process.stdout.write(formatTable([{ label: `${address}:${port}`, gen: r }]) + '\n');
}

interface ImplRun {
  label: string;
  gen: GeneratorResult;
  targetCpuMs?: number;
  /** wirepool only: its main thread's share of targetCpuMs. */
  targetMainCpuMs?: number;
  setconfMs?: number;
  peers?: number;
  memory?: PeerMemory;
  /** --legit-ping: the established peer's pings during the run. */
  ping?: { sent: number; rtts: number[] };
}

const fmtNum = (v: number | null | undefined, digits = 0): string =>
  v === null || v === undefined || !Number.isFinite(v) ? '—' : v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

function formatTable(runs: ImplRun[]): string {
  const rows: Array<[string, (r: ImplRun) => number | null | undefined, number, boolean]> = [
    // label, value, digits, include a ratio column
    ['initiators', (r) => r.gen.initiators, 0, false],
    ['connected', (r) => r.gen.connected, 0, false],
    ['data confirmed', (r) => r.gen.confirmed, 0, false],
    ['failed', (r) => r.gen.failed, 0, false],
    ['time to all connected (ms)', (r) => r.gen.timeToAllConnectedMs, 0, true],
    ['time to all confirmed (ms)', (r) => r.gen.timeToAllConfirmedMs, 0, true],
    ['handshakes/s', (r) => r.gen.handshakesPerSecond, 0, true],
    ['connect latency p50 (ms)', (r) => r.gen.connectLatencyMs?.p50, 1, true],
    ['connect latency p99 (ms)', (r) => r.gen.connectLatencyMs?.p99, 1, true],
    ['initiations sent', (r) => r.gen.initiations, 0, false],
    ['retransmits', (r) => r.gen.retransmits, 0, false],
    ['cookie replies', (r) => r.gen.cookieReplies, 0, false],
    ['cookie retries', (r) => r.gen.cookieRetries, 0, false],
    ['stale / invalid replies', (r) => r.gen.staleReplies + r.gen.invalidReplies, 0, false],
    ['target CPU during run (ms)', (r) => r.targetCpuMs, 0, true],
    ['target CPU per initiator (µs)', (r) => (r.targetCpuMs !== undefined && r.gen.connected > 0 && r.gen.flood === null ? (r.targetCpuMs * 1000) / r.gen.connected : undefined), 0, true],
    ['target main-thread CPU per initiator (µs)', (r) => (r.targetMainCpuMs !== undefined && r.gen.connected > 0 && r.gen.flood === null ? (r.targetMainCpuMs * 1000) / r.gen.connected : undefined), 0, false],
    ['generator CPU (ms)', (r) => r.gen.generatorCpuMs, 0, false],
    ['established peer: pings lost', (r) => (r.ping ? r.ping.sent - r.ping.rtts.length : undefined), 0, false],
    ['established peer: ping p50 (ms)', (r) => (r.ping ? percentile(r.ping.rtts, 50) : undefined), 2, true],
    ['established peer: ping p99 (ms)', (r) => (r.ping ? percentile(r.ping.rtts, 99) : undefined), 2, true],
    ['established peer: ping max (ms)', (r) => (r.ping ? percentile(r.ping.rtts, 100) : undefined), 2, true],
    ['wg setconf, run peers (ms)', (r) => r.setconfMs, 0, true],
    ['memory: peers configured', (r) => r.memory?.peers, 0, false],
    ['memory: wg setconf (ms)', (r) => r.memory?.setconfMs, 0, true],
    ['memory: wg show dump (ms, median of 5)', (r) => r.memory?.dumpMs, 0, true],
    ['memory: RSS before (MiB)', (r) => (r.memory ? r.memory.rssBefore / 2 ** 20 : undefined), 1, true],
    ['memory: RSS after (MiB)', (r) => (r.memory ? r.memory.rssAfter / 2 ** 20 : undefined), 1, true],
    ['memory: bytes per peer', (r) => r.memory?.bytesPerPeer, 0, true],
  ];
  const floodRows: Array<[string, (r: ImplRun) => number | null | undefined]> = [
    ['flood: packets sent', (r) => r.gen.flood?.sent],
    ['flood: cookie replies', (r) => r.gen.flood?.cookieReplies],
    ['flood: cookie replies valid', (r) => r.gen.flood?.cookieRepliesValid],
    ['flood: first cookie after (ms)', (r) => r.gen.flood?.firstCookieAfterMs],
  ];
  const table: string[][] = [['', ...runs.map((r) => r.label), ...(runs.length === 2 ? [`ratio ${runs[0]!.label}/${runs[1]!.label}`] : [])]];
  for (const [label, get, digits, ratio] of rows) {
    const vals = runs.map(get);
    if (vals.every((v) => v === undefined)) continue;
    const row = [label, ...vals.map((v) => fmtNum(v, digits))];
    if (runs.length === 2) {
      const [x, y] = vals;
      row.push(ratio && typeof x === 'number' && typeof y === 'number' && y !== 0 ? `${(x / y).toFixed(2)}×` : '');
    }
    table.push(row);
  }
  if (runs.some((r) => r.gen.flood !== null)) {
    for (const [label, get] of floodRows) table.push([label, ...runs.map((r) => fmtNum(get(r))), ...(runs.length === 2 ? [''] : [])]);
  }
  const widths = table[0]!.map((_, c) => Math.max(...table.map((r) => (r[c] ?? '').length)));
  return table.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ')).join('\n');
}

/** The generator arguments shared by both set-ups (everything that shapes the work). */
function generatorArgs(a: Args, count: number): string[] {
  const out = ['--count', String(count), '--rate', String(a.rate), '--deadline', String(a.deadlineS), '--data', a.data ?? 'ping'];
  if (a.cookieRetryMs !== null) out.push('--cookie-retry-ms', String(a.cookieRetryMs));
  if (a.startDelayMs > 0) out.push('--start-delay', String(a.startDelayMs));
  if (a.flood !== null) {
    out.push('--flood', a.flood, '--flood-rate', String(a.floodRate), '--flood-ms', String(a.floodMs),
      '--flood-after', String(a.floodAfterMs), '--flood-sockets', String(a.floodSockets));
  }
  if (a.quiet) out.push('--quiet');
  if (a.light) out.push('--light');
  return out;
}

/** The established peer (LoadTarget legitPeer) reaches the target within 15 s. */
async function legitPingUp(lt: LoadTarget): Promise<boolean> {
  for (const end = Date.now() + 15_000; Date.now() < end;) {
    if ((await lt.nsG.exec('ping', ['-n', '-c', '1', '-W', '1', TARGET_INNER], { timeoutMs: 5_000 })).code === 0) return true;
  }
  return false;
}

/** `count` pings 10 ms apart from the established peer; the round-trip times of those answered. */
async function legitPings(lt: LoadTarget, count: number): Promise<{ sent: number; rtts: number[] }> {
  const r = await lt.nsG.exec('ping', ['-n', '-c', String(count), '-i', '0.01', '-W', '1', TARGET_INNER], { timeoutMs: 10_000 + count * 20 });
  return { sent: count, rtts: [...r.stdout.matchAll(/time=([0-9.]+) ms/g)].map((m) => Number(m[1])) };
}

async function runOne(a: Args, impl: Impl, log: (s: string) => void): Promise<ImplRun> {
  const count = a.count ?? 1000;
  const sources = a.sources ?? Math.max(1, Math.min(count, MAX_SOURCES));
  log(`${impl}: setting up ${count} peers, ${sources} source addresses`);
  const lt = await LoadTarget.create({
    impl, peers: count + a.warmUp, sources, ...(a.workers !== undefined ? { workers: a.workers } : {}), prefix: `hs-${impl === 'wirepool' ? 'wp' : 'wg'}`,
    ...(a.handshakeWorkers !== undefined ? { wirepoolArgs: ['--handshake-workers', String(a.handshakeWorkers)] } : {}),
    legitPeer: a.legitPing, // the warm-up's initiators are peers too, after the run's: count .. count + warmUp - 1
  });
  let run: ImplRun;
  try {
    log(`${impl}: wg setconf of ${count + a.warmUp} peers took ${lt.setconfMs.toFixed(0)} ms; running the generator`);
    if (a.warmUp > 0) {
      // A long-running daemon has handshaken before: the same work from other peers first, unmeasured.
      const indices = Array.from({ length: a.warmUp }, (_, i) => count + i);
      const w = await lt.runGenerator({ indices, args: generatorArgs(a, a.warmUp), onProgress: (l) => log(`${impl} warm-up: ${l}`) });
      log(`${impl}: warm-up: ${w.result.connected} of ${a.warmUp} connected`);
    }
    let pings: Promise<{ sent: number; rtts: number[] }> | null = null;
    if (a.legitPing) {
      if (!(await legitPingUp(lt))) throw new Error(`${impl}: the established peer cannot ping the target`);
      // Every 10 ms for the expected length of the run (count / rate, or 3 s as fast as possible).
      const ms = (a.rate > 0 ? (count * 1000) / a.rate : 3000) + 500;
      pings = legitPings(lt, Math.ceil(ms / 10));
    }
    const r = await lt.runGenerator({ indices: Array.from({ length: count }, (_, i) => i), args: generatorArgs(a, count), onProgress: (l) => log(`${impl}: ${l}`) });
    const ping = pings !== null ? await pings : undefined;
    if (!lt.alive()) throw new Error(`${impl} exited during the run:\n${lt.daemon.stderr.slice(-2000)}`);
    run = { label: impl, gen: r.result, ...(ping !== undefined ? { ping } : {}), targetCpuMs: r.targetCpuMs, ...(impl === 'wirepool' ? { targetMainCpuMs: r.targetMainCpuMs } : {}), setconfMs: lt.setconfMs, peers: count };
  } finally {
    await lt.destroy();
  }
  return run;
}

/** The run with the median handshakes/s. */
function medianRun(runs: ImplRun[]): ImplRun {
  const sorted = [...runs].sort((x, y) => x.gen.handshakesPerSecond - y.gen.handshakesPerSecond);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

async function setupMode(a: Args): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('--setup / --compare need root (network namespaces)');
  const log = (s: string): void => {
    if (!a.quiet) process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);
  };
  const impls: Impl[] = a.mode === 'compare' ? ['wirepool', 'wireguard-go'] : [a.impl];
  const all = new Map<Impl, ImplRun[]>(impls.map((i) => [i, []]));
  for (let round = 0; round < a.rounds; round++) {
    for (const impl of impls) {
      if (a.rounds > 1) log(`round ${round + 1}/${a.rounds}`);
      all.get(impl)!.push(await runOne(a, impl, log));
    }
  }
  const runs = impls.map((impl) => ({ ...medianRun(all.get(impl)!) }));
  const memPeers = a.memoryPeers ?? (a.mode === 'compare' ? 10_000 : 0);
  if (memPeers > 0) {
    for (const run of runs) {
      const impl = run.label as Impl;
      log(`${impl}: measuring RSS at ${memPeers} peers`);
      run.memory = await measurePeerMemory(impl, memPeers, a.workers !== undefined ? { workers: a.workers } : {});
      if (run.memory.peersShown !== memPeers) log(`${impl}: WARNING: wg show lists ${run.memory.peersShown} peers, expected ${memPeers}`);
    }
  }
  const header = [
    `handshake load: ${runs[0]!.gen.initiators} initiators, ${a.rate > 0 ? `${a.rate}/s` : 'as fast as possible'}, ` +
      `deadline ${a.deadlineS} s, data ${a.data ?? 'ping'}, cookie retry ${a.cookieRetryMs === null ? 'at retransmit' : `${a.cookieRetryMs} ms`}` +
      (a.flood !== null ? `, flood ${a.flood} ${a.floodRate}/s for ${a.floodMs} ms` : ''),
    `machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, Node ${process.version}, wirepool --workers ${a.workers ?? 'default'} --handshake-workers ${a.handshakeWorkers ?? 'default'}`,
  ];
  if (a.rounds > 1) header.push(`${a.rounds} rounds, alternating; the table shows each implementation's median round by handshakes/s`);
  let text = header.join('\n') + '\n\n' + formatTable(runs) + '\n';
  if (a.rounds > 1) {
    for (const impl of impls) {
      const rs = all.get(impl)!;
      text += `\n${impl} rounds: handshakes/s ${rs.map((r) => fmtNum(r.gen.handshakesPerSecond)).join(', ')}; ` +
        `time to all connected (ms) ${rs.map((r) => fmtNum(r.gen.timeToAllConnectedMs)).join(', ')}`;
    }
    text += '\n';
  }
  process.stdout.write(text);
  if (a.jsonOut !== null) fs.writeFileSync(a.jsonOut, JSON.stringify({ args: process.argv.slice(2), runs, rounds: Object.fromEntries(all) }, null, 2) + '\n');
}

async function main(): Promise<void> {
  let a: Args;
  try {
    a = parseArgs(process.argv.slice(2));
  } catch (err) {
    if (err instanceof UsageError) {
      if (err.message !== '') process.stderr.write(`handshake-load: ${err.message}\n`);
      process.stderr.write(USAGE + '\n');
      process.exit(err.message === '' ? 0 : 1);
    }
    throw err;
  }
  if (a.mode === 'generate') await generate(a);
  else await setupMode(a);
}

main().catch((err: unknown) => {
  process.stderr.write(`handshake-load: ${errorText(err)}\n`);
  process.exit(1);
});
