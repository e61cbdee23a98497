// Parsers for what the side-by-side benchmark reads: iperf3 JSON reports (TCP and UDP),
// ping's per-packet output, /proc/<pid>/stat CPU times (also of one thread, from
// /proc/<pid>/task/<tid>/stat), /proc/net/dev interface counters, and counters in a Prometheus
// text exposition. Pure functions, no I/O.

export interface TcpResult {
  /** Receiver-side goodput over the whole run, bits/s. */
  bitsPerSecond: number;
  /** Bytes the receiver got. */
  bytes: number;
  seconds: number;
}

export interface UdpResult {
  /** Datagrams the client sent. */
  sentPackets: number;
  /** Datagrams the server received (sent − lost as the server counts them). */
  receivedPackets: number;
  /** Received datagrams per second of the receiver's measuring interval. */
  receivedPps: number;
  lostPercent: number;
  /** Payload bytes the server received. */
  bytes: number;
  seconds: number;
}

interface IperfSum {
  seconds?: number;
  bytes?: number;
  bits_per_second?: number;
  packets?: number;
  lost_packets?: number;
  lost_percent?: number;
}
interface IperfReport {
  error?: string;
  end?: { sum?: IperfSum; sum_sent?: IperfSum; sum_received?: IperfSum };
}

function parseReport(json: string): IperfReport {
  let r: IperfReport;
  try {
    r = JSON.parse(json) as IperfReport;
  } catch {
    throw new Error(`iperf3 output is not JSON: ${json.slice(0, 200)}`);
  }
  if (typeof r.error === 'string') throw new Error(`iperf3: ${r.error}`);
  if (r.end === undefined) throw new Error('iperf3 report has no "end" section');
  return r;
}

const num = (v: unknown, what: string): number => {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`iperf3 report lacks ${what}`);
  return v;
};

/** A TCP client report (`iperf3 -c … -J`, any -P): the receiver's totals. */
export function parseIperfTcp(json: string): TcpResult {
  const end = parseReport(json).end!;
  const rx = end.sum_received;
  if (rx === undefined) throw new Error('iperf3 TCP report lacks end.sum_received');
  return {
    bitsPerSecond: num(rx.bits_per_second, 'sum_received.bits_per_second'),
    bytes: num(rx.bytes, 'sum_received.bytes'),
    seconds: num(rx.seconds, 'sum_received.seconds'),
  };
}

/**
 * A UDP client report (`iperf3 -u -c … -J`). iperf3 ≥ 3.10 has end.sum_sent (client) and
 * end.sum_received (server); older ones only end.sum with the server's loss figures.
 */
export function parseIperfUdp(json: string): UdpResult {
  const end = parseReport(json).end!;
  const rx = end.sum_received ?? end.sum;
  if (rx === undefined) throw new Error('iperf3 UDP report lacks end.sum_received and end.sum');
  const sent = num((end.sum_sent ?? rx).packets, 'packets');
  const lost = num(rx.lost_packets, 'lost_packets');
  const seconds = num(rx.seconds, 'seconds');
  const received = Math.max(0, num(rx.packets, 'packets') - lost);
  return {
    sentPackets: sent,
    receivedPackets: received,
    receivedPps: seconds > 0 ? received / seconds : NaN,
    lostPercent: num(rx.lost_percent, 'lost_percent'),
    bytes: num(rx.bytes, 'bytes'),
    seconds,
  };
}

export interface PingResult {
  /** Round-trip times of the replies, ms, in arrival order. */
  rttMs: number[];
  transmitted: number;
  received: number;
}

const RTT_LINE = /\bicmp_seq=\d+\b.*\btime[=<]([0-9.]+) ?ms/;

/** iputils ping output: one RTT per reply line ("… icmp_seq=3 ttl=64 time=0.412 ms"), duplicates ignored. */
export function parsePing(stdout: string): PingResult {
  const rttMs: number[] = [];
  for (const line of stdout.split('\n')) {
    if (line.includes('(DUP!)')) continue;
    const m = RTT_LINE.exec(line);
    if (m !== null) rttMs.push(Number(m[1]));
  }
  const stats = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(stdout);
  return {
    rttMs,
    transmitted: stats !== null ? Number(stats[1]) : rttMs.length,
    received: stats !== null ? Number(stats[2]) : rttMs.length,
  };
}

/**
 * utime + stime (clock ticks) from the text of /proc/<pid>/stat: all threads of the process.
 * The command name (field 2) may contain spaces and parentheses, so fields are counted from
 * the last ')'.
 */
export function parseProcStatTicks(stat: string): number {
  const close = stat.lastIndexOf(')');
  if (close < 0) throw new Error('not a /proc/<pid>/stat line');
  const f = stat.slice(close + 2).trim().split(/\s+/); // f[0] is field 3 (state)
  const utime = Number(f[14 - 3]);
  const stime = Number(f[15 - 3]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error('no utime/stime in /proc/<pid>/stat');
  return utime + stime;
}

export interface InterfaceCounters {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
}

/**
 * One interface's line of /proc/net/dev (or /proc/<pid>/net/dev, which shows the network
 * namespace of that process); null if the interface is not listed. For a TUN device "tx" is what
 * the kernel handed the daemon (it read) and "rx" what the daemon wrote; with TUN offloads each
 * count is one read or write, which may carry a GSO super-packet of many segments.
 */
export function parseProcNetDev(text: string, ifname: string): InterfaceCounters | null {
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0 || line.slice(0, colon).trim() !== ifname) continue;
    const f = line.slice(colon + 1).trim().split(/\s+/).map(Number);
    if (f.length < 10 || f.slice(0, 10).some((x) => !Number.isFinite(x))) return null;
    return { rxBytes: f[0]!, rxPackets: f[1]!, txBytes: f[8]!, txPackets: f[9]! };
  }
  return null;
}

/**
 * The sum of every series of one metric in a Prometheus text exposition (`name{…} value` and
 * `name value` lines); NaN if it has none.
 */
export function sumPromMetric(text: string, name: string): number {
  let sum = 0;
  let seen = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== '{' && rest[0] !== ' ') continue; // another metric whose name starts the same
    const afterLabels = rest[0] === '{' ? rest.slice(rest.lastIndexOf('}') + 1) : rest;
    const value = Number(afterLabels.trim().split(/\s+/)[0]); // a timestamp may follow
    if (!Number.isFinite(value)) continue;
    sum += value;
    seen = true;
  }
  return seen ? sum : NaN;
}
