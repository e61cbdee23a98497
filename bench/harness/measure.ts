// One measurement each, run through a BenchPair: iperf3 TCP (n streams) and UDP (fixed
// payload, unlimited rate) from A to B's inner address, ping RTTs idle and under a TCP load,
// with the CPU seconds both daemons used during every iperf3 run (whole process and main
// thread) and their interfaces' packet counters; a TCP run can also count the transport
// messages each wirepool daemon moved (its /metrics, read before and after, outside the CPU
// window). Each command runs inside the pair's namespaces with a timeout; a failure throws
// (the caller records it and goes on).

import { INNER_B, type BenchPair } from './topology.js';
import { type PingResult, type TcpResult, type UdpResult, parseIperfTcp, parseIperfUdp, parsePing } from './parse.js';
import { errorText } from '../../src/error-text.js';

/** Slack on top of an iperf3 run's own duration before it is killed. */
const IPERF_SLACK_MS = 15_000;

export interface CpuUse {
  /** CPU seconds used during the run by the client-side (A, sending) and server-side (B) daemon. */
  client: number;
  server: number;
}

/** What each daemon did during one run, [client (A), server (B)]. */
export interface DaemonUse {
  /** CPU seconds of the main thread (wirepool; NaN for wireguard-go). */
  mainCpu: [number, number];
  /** Packets (rx + tx) on the daemon's interface: TUN reads and writes, a GSO super-packet counting once. */
  interfacePackets: [number, number];
  /** Transport messages sent + received (wirepool's /metrics); NaN for wireguard-go, or when not counted. */
  messages: [number, number];
}

const minus = (a: [number, number], b: [number, number]): [number, number] => [a[0] - b[0], a[1] - b[1]];

async function iperf(pair: BenchPair, args: string[], seconds: number): Promise<{ stdout: string; cpu: CpuUse; daemons: DaemonUse }> {
  const full = ['-c', INNER_B, '-t', String(seconds), '-J', '--connect-timeout', '3000', ...args];
  const before = pair.cpu();
  const mainBefore = pair.mainThreadCpu();
  const ifBefore = pair.interfacePackets();
  const r = await pair.nsA.exec('iperf3', full, { timeoutMs: seconds * 1000 + IPERF_SLACK_MS });
  const after = pair.cpu();
  const mainAfter = pair.mainThreadCpu();
  const ifAfter = pair.interfacePackets();
  if (r.code !== 0) {
    let why = r.stderr.trim();
    try {
      why = (JSON.parse(r.stdout) as { error?: string }).error ?? why;
    } catch {
      // not JSON
    }
    throw new Error(`iperf3 ${full.join(' ')} failed (${r.code}): ${why.slice(0, 300)}`);
  }
  return {
    stdout: r.stdout,
    cpu: { client: after[0] - before[0], server: after[1] - before[1] },
    // Rounded to the clock tick (10 ms) the readings have, without float dust.
    daemons: { mainCpu: minus(mainAfter, mainBefore).map((x) => Math.round(x * 100) / 100) as [number, number], interfacePackets: minus(ifAfter, ifBefore), messages: [NaN, NaN] },
  };
}

/**
 * iperf3 TCP with `streams` streams for `seconds`. `countMessages`: also read each wirepool
 * daemon's transport-message counters just before and just after the run (the reads cost the
 * daemon a /metrics scrape each, outside the CPU readings; they take a fraction of a second).
 */
export async function tcpRun(pair: BenchPair, seconds: number, streams: number, opts: { countMessages?: boolean } = {}): Promise<TcpResult & { cpu: CpuUse; daemons: DaemonUse; messagesError?: string }> {
  // A failed scrape costs only the message counts (messagesError says why), not the run.
  let messagesError: string | undefined;
  const scrape = (): Promise<[number, number] | null> => pair.transportMessages().catch((err: unknown) => {
    messagesError ??= errorText(err);
    return null;
  });
  const m0 = opts.countMessages === true ? await scrape() : null;
  const r = await iperf(pair, ['-P', String(streams)], seconds);
  const tcp = parseIperfTcp(r.stdout);
  const m1 = m0 !== null ? await scrape() : null;
  if (m0 !== null && m1 !== null) r.daemons.messages = minus(m1, m0);
  return { ...tcp, cpu: r.cpu, daemons: r.daemons, ...(messagesError !== undefined ? { messagesError } : {}) };
}

export async function udpRun(pair: BenchPair, seconds: number, payload: number): Promise<UdpResult & { cpu: CpuUse; daemons: DaemonUse }> {
  const r = await iperf(pair, ['-u', '-b', '0', '-l', String(payload)], seconds);
  return { ...parseIperfUdp(r.stdout), cpu: r.cpu, daemons: r.daemons };
}

/** `ping -c count -i interval` from A to B's inner address; per-reply RTTs. */
export async function pingRun(pair: BenchPair, count: number, intervalMs: number): Promise<PingResult> {
  const args = ['-n', '-c', String(count), '-i', String(intervalMs / 1000), '-W', '1', INNER_B];
  const r = await pair.nsA.exec('ping', args, { timeoutMs: count * intervalMs + 5_000 });
  const parsed = parsePing(r.stdout);
  if (parsed.rttMs.length === 0) throw new Error(`ping ${args.join(' ')}: no replies (${r.code}) ${r.stderr.trim().slice(0, 200)}`);
  return parsed;
}

/**
 * Ping while one iperf3 TCP stream saturates the tunnel: the stream starts, gets rampUpMs to
 * leave slow start, then the pings run; the TCP result is returned too.
 */
export async function loadedPingRun(pair: BenchPair, count: number, intervalMs: number, rampUpMs: number): Promise<{ ping: PingResult; tcp: TcpResult }> {
  const seconds = Math.ceil((rampUpMs + count * intervalMs) / 1000) + 1;
  const load = tcpRun(pair, seconds, 1);
  load.catch(() => {}); // observed below
  await new Promise((r) => setTimeout(r, rampUpMs));
  const ping = await pingRun(pair, count, intervalMs).catch((err: unknown) => err as Error);
  const tcp = await load;
  if (ping instanceof Error) throw ping;
  return { ping, tcp };
}
