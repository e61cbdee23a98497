// Tests for the pure parts of the side-by-side benchmark (bench/harness/): order statistics
// against a definition-level oracle on seeded random data, the parsers on real-format
// iperf3 / ping / /proc output, the command line and pair list, and the report (ratios,
// table cells, SVG). No timing is asserted anywhere. Set WIREPOOL_SEED to replay a run.

import t from 'tap';
import { PAIR_KINDS, pairSpecs, parseBenchArgs } from '../bench/harness/options.js';
import { parseIperfTcp, parseIperfUdp, parsePing, parseProcStatTicks } from '../bench/harness/parse.js';
import { buildSummary, fmt, formatTable, renderSvg, type MetricDef } from '../bench/harness/report.js';
import { median, percentile, ratio, summarize } from '../bench/harness/stats.js';
import { makePrng, testSeed } from './helpers/seeded-prng.js';

t.test('percentile and median agree with their definitions', async (t) => {
  const seed = testSeed();
  t.comment(`seed ${seed}`);
  const rng = makePrng(seed);
  for (let round = 0; round < 300; round++) {
    const n = 1 + rng.int(60);
    const xs = Array.from({ length: n }, () => rng.int(50) / 4); // ties are likely
    const p = rng.int(101);
    const got = percentile(xs, p);
    // Nearest rank: the smallest sample v with at least p% of the samples ≤ v.
    const sorted = [...xs].sort((a, b) => a - b);
    const want = sorted.find((v) => sorted.filter((w) => w <= v).length * 100 >= p * n) ?? sorted[0]!;
    if (got !== want) t.fail(`seed ${seed}: percentile(${JSON.stringify(xs)}, ${p}) = ${got}, want ${want}`);
    // Median: half the samples on either side of it.
    const m = median(xs);
    const below = xs.filter((v) => v < m).length;
    const above = xs.filter((v) => v > m).length;
    if (below > n / 2 || above > n / 2) t.fail(`seed ${seed}: median(${JSON.stringify(xs)}) = ${m}`);
  }
  t.equal(median([1, 2, 3, 4]), 2.5);
  t.equal(percentile([5, 1, 3], 100), 5);
  t.equal(percentile([5, 1, 3], 0), 1);
  t.ok(Number.isNaN(median([])));
  t.same(summarize([3, NaN, 1, 2]), { median: 2, min: 1, max: 3, n: 3 }, 'failed runs (NaN) are left out');
  t.same(summarize([NaN]).n, 0);
  t.equal(ratio(3, 2), 1.5);
  t.ok(Number.isNaN(ratio(1, 0)));
  t.ok(Number.isNaN(ratio(NaN, 2)));
});

const PING = `PING 10.99.0.2 (10.99.0.2) 56(84) bytes of data.
64 bytes from 10.99.0.2: icmp_seq=1 ttl=64 time=0.412 ms
64 bytes from 10.99.0.2: icmp_seq=2 ttl=64 time=1.05 ms
64 bytes from 10.99.0.2: icmp_seq=2 ttl=64 time=1.90 ms (DUP!)
64 bytes from 10.99.0.2: icmp_seq=4 ttl=64 time=12.3 ms

--- 10.99.0.2 ping statistics ---
4 packets transmitted, 3 received, +1 duplicates, 25% packet loss, time 61ms
rtt min/avg/max/mdev = 0.412/4.587/12.300/5.445 ms
`;

t.test('ping output: one RTT per reply, duplicates ignored, loss counted', async (t) => {
  t.same(parsePing(PING), { rttMs: [0.412, 1.05, 12.3], transmitted: 4, received: 3 });
  t.same(parsePing('ping: connect: Network is unreachable\n'), { rttMs: [], transmitted: 0, received: 0 });
});

// Shapes of iperf3 3.12 -J reports (fields trimmed to what matters plus some neighbours).
const TCP_JSON = JSON.stringify({
  start: { test_start: { protocol: 'TCP', num_streams: 4 } },
  end: {
    streams: [],
    sum_sent: { start: 0, end: 5.0001, seconds: 5.0001, bytes: 312_000_000, bits_per_second: 499_190_016, retransmits: 12, sender: true },
    sum_received: { start: 0, end: 5.04, seconds: 5.04, bytes: 311_000_000, bits_per_second: 493_650_793.6, sender: true },
  },
});
const UDP_JSON = JSON.stringify({
  end: {
    sum: { seconds: 1.00014, bytes: 10078720, bits_per_second: 80623874.4, jitter_ms: 0.003, lost_packets: 71625, packets: 157480, lost_percent: 45.48, sender: true },
    sum_sent: { seconds: 1.000073, bytes: 10078720, bits_per_second: 80623874.4, jitter_ms: 0, lost_packets: 0, packets: 157480, lost_percent: 0, sender: true },
    sum_received: { seconds: 1.00014, bytes: 5494720, bits_per_second: 43951606.7, jitter_ms: 0.003, lost_packets: 71625, packets: 157480, lost_percent: 45.48, sender: false },
  },
});

t.test('iperf3 reports', async (t) => {
  t.same(parseIperfTcp(TCP_JSON), { bitsPerSecond: 493_650_793.6, bytes: 311_000_000, seconds: 5.04 }, 'TCP: the receiver side');
  const u = parseIperfUdp(UDP_JSON);
  t.equal(u.sentPackets, 157480);
  t.equal(u.receivedPackets, 157480 - 71625);
  t.equal(u.receivedPackets * 64, u.bytes, 'received packets match received bytes at 64 B each');
  t.equal(u.receivedPps, (157480 - 71625) / 1.00014);
  t.equal(u.lostPercent, 45.48);
  // iperf3 < 3.10: only end.sum, which carries the server's loss figures.
  const old = parseIperfUdp(JSON.stringify({ end: { sum: { seconds: 2, bytes: 640, packets: 20, lost_packets: 10, lost_percent: 50 } } }));
  t.same([old.sentPackets, old.receivedPackets, old.receivedPps], [20, 10, 5]);
  t.throws(() => parseIperfTcp(JSON.stringify({ start: {}, intervals: [], end: {}, error: 'unable to connect to server: Connection refused' })), /Connection refused/);
  t.throws(() => parseIperfTcp('iperf3: error'), /not JSON/);
  t.throws(() => parseIperfUdp(JSON.stringify({ end: { sum_received: { seconds: 1 } } })), /lacks/);
});

t.test('/proc/<pid>/stat: utime + stime, counted from the last parenthesis', async (t) => {
  // Fields: pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime …
  const line = '4242 (we ird) (name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 567 0 0 20 0 3 0 99 1000 50\n';
  t.equal(parseProcStatTicks(line), 1234 + 567);
  t.throws(() => parseProcStatTicks('garbage'));
});

t.test('command line and pairs', async (t) => {
  const d = parseBenchArgs([], '/out');
  t.ok(d.ok);
  if (!d.ok) return;
  t.match(d.options, { quick: false, rounds: 3, duration: 5, pings: 100, workers: [], pairs: [...PAIR_KINDS], outDir: '/out', mtu: 1440 });
  const q = parseBenchArgs(['--quick', '--rounds', '2', '--workers=1,2,2', '--pairs', 'wg-wg,wp-wp', '--out', 'x'], '/out');
  t.ok(q.ok);
  if (!q.ok) return;
  t.match(q.options, { quick: true, rounds: 2, duration: 2, workers: [1, 2], pairs: ['wg-wg', 'wp-wp'], outDir: 'x' });
  for (const bad of [['--rounds', '0'], ['--rounds'], ['--workers', '1,x'], ['--pairs', 'wp-xx'], ['--mtu', '500'], ['--bogus'], ['--duration', '1.5']]) {
    t.notOk(parseBenchArgs(bad, '/out').ok, `rejects ${bad.join(' ')}`);
  }

  const all = pairSpecs({ pairs: [...PAIR_KINDS], workers: [] });
  t.same(all.map((s) => [s.id, s.client, s.server, s.workers]), [
    ['wp-wp', 'wirepool', 'wirepool', undefined],
    ['wg-wg', 'wireguard-go', 'wireguard-go', undefined],
    ['wp-wg', 'wirepool', 'wireguard-go', undefined],
    ['wg-wp', 'wireguard-go', 'wirepool', undefined],
  ]);
  const sweep = pairSpecs({ pairs: ['wp-wp', 'wg-wp'], workers: [3, 1] });
  t.same(sweep.map((s) => [s.id, s.workers]), [['wp-wp-w3', 3], ['wp-wp-w1', 1], ['wg-wp-w3', 3]], 'one wp-wp pair per value; mixed pairs take the first');
  t.equal(new Set(sweep.map((s) => s.label)).size, 3, 'labels are distinct');
  const queues = parseBenchArgs(['--tun-queues', '1,2,2', '--pairs', 'wp-wp,wg-wg'], '/out');
  t.ok(queues.ok && queues.options.tunQueues.join() === '1,2', '--tun-queues 1,2');
  t.notOk(parseBenchArgs(['--tun-queues', '9'], '/out').ok, 'rejects --tun-queues 9');
  const q2 = pairSpecs({ pairs: ['wp-wp', 'wg-wg', 'wp-wg'], workers: [1, 2], tunQueues: [1, 2] });
  t.same(q2.map((s) => [s.id, s.label, s.workers, s.tunQueues]), [
    ['wp-wp-w1-q1', 'wirepool↔wirepool w=1 q=1', 1, 1], ['wp-wp-w1-q2', 'wirepool↔wirepool w=1 q=2', 1, 2],
    ['wp-wp-w2-q1', 'wirepool↔wirepool w=2 q=1', 2, 1], ['wp-wp-w2-q2', 'wirepool↔wirepool w=2 q=2', 2, 2],
    ['wg-wg', 'wg-go↔wg-go', undefined, undefined], ['wp-wg-w1-q1', 'wirepool w=1 q=1→wg-go', 1, 1],
  ], 'one wirepool↔wirepool pair per workers × queues; the mixed pairs take the first of each; wireguard-go none');
});

t.test('summary, table and chart', async (t) => {
  const metrics: MetricDef[] = [
    { key: 'tput', label: 'throughput', unit: 'Mbit/s', better: 'higher' },
    { key: 'rtt', label: 'latency <p50>', unit: 'ms', better: 'lower' },
  ];
  const pairs = [{ id: 'wg-wg', label: 'ref pair' }, { id: 'x', label: 'A&B' }];
  const s = buildSummary(pairs, {
    'wg-wg': { tput: [400, 500, 450], rtt: [1, 1, 1] },
    x: { tput: [200, NaN, 250], rtt: [] },
  }, 'wg-wg', metrics);
  t.equal(s.cells.tput!['x']!.median, 225);
  t.equal(s.cells.tput!['x']!.ratio, 225 / 450);
  t.equal(s.cells.tput!['wg-wg']!.ratio, 1);
  t.equal(s.cells.rtt!['x']!.n, 0);
  t.ok(Number.isNaN(s.cells.rtt!['x']!.ratio));
  const table = formatTable(s);
  const lines = table.split('\n');
  t.equal(lines.length, 2 + metrics.length, 'header, rule, one row per metric');
  t.match(lines[0]!, /ref pair \(ref\).*A&B/);
  t.match(lines[2]!, /throughput, Mbit\/s ↑ \|\s+450 \[400–500\] \|\s+225 \[200–250\] ×0\.50 \|/);
  t.match(lines[3]!, /\|\s+1\.00 \[1\.00–1\.00\] \|\s+– \|$/);
  t.ok(lines.every((l) => l.length === lines[0]!.length), 'columns are padded to one width');

  const noRef = buildSummary(pairs.slice(1), { x: { tput: [1] } }, 'wg-wg', metrics);
  t.equal(noRef.reference, null);
  t.notMatch(formatTable(noRef), /×/, 'no ratios without the reference pair');

  const svg = renderSvg(s, { title: 'T <1>', subtitle: ['machine'] });
  t.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  t.match(svg, /<\/svg>\n$/);
  t.match(svg, /T &lt;1&gt;/, 'text is escaped');
  t.match(svg, /A&amp;B/);
  t.notMatch(svg.replace(/&(amp|lt|gt|quot);/g, ''), /&|<[^/a-z]/, 'no raw & or stray <');
  t.equal((svg.match(/×0\.50/g) ?? []).length, 1, 'ratio label on the bar');
  t.match(svg, /no data/, 'a pair without samples is marked');
  // The longest bar of a panel is the panel's largest max: 190 px for 500 Mbit/s; the median 450 → 171 px.
  t.match(svg, /width="171\.0" height="14" fill="#7f7f7f"/);

  t.equal(fmt(1234.5), '1235');
  t.equal(fmt(12.345), '12.3');
  t.equal(fmt(1.2345), '1.23');
  t.equal(fmt(0.012345), '0.012');
  t.equal(fmt(NaN), '–');
});
