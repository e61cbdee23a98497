// Benchmark: milliseconds per /metrics scrape with 10,000 peers (default) on a real engine:
// real peers with two allowed IPs each (one IPv4 /32, one IPv6 /128), non-zero counters,
// half of them with a recent handshake and an endpoint, friendly names for a tenth.
// Measures WirepoolMetrics.exposition() (collect + format; the per-peer families yield to the
// event loop between chunks of peers) and, separately, one HTTP GET through MetricsServer on
// loopback; reports the exposition size, the series count, and the longest the event loop was
// held up meanwhile (perf_hooks.monitorEventLoopDelay, 1 ms resolution: what a packet waiting
// for the main thread would have waited).
// Run: node dist/bench/metrics-scrape.js [peers] [--mdlayher] [--endpoint-labels]

import http from 'node:http';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { nodeCrypto } from '../src/crypto/crypto.js';
import { WirepoolMetrics } from '../src/metrics/registry.js';
import { MetricsServer } from '../src/metrics/server.js';
import { parsePrefix } from '../src/protocol/allowedips.js';
import { endpointFromAddress } from '../src/protocol/endpoint.js';
import { STATS_PER_PEER } from '../src/protocol/peer.js';
import { EngineMetricsSource } from '../test/helpers/metrics-source.js';

const args = process.argv.slice(2);
const peers = Number(args.find((a) => /^\d+$/.test(a)) ?? 10_000);
const mdlayher = args.includes('--mdlayher');
const endpointLabels = args.includes('--endpoint-labels');
const SCRAPES = 20;

const src = new EngineMetricsSource('wg0', { maxPeers: Math.max(peers, 1) });
src.engine.setPrivateKey(nodeCrypto.randomBytes(32));
const friendlyNames = new Map<string, string>();
const now = Date.now();
const setupStart = performance.now();
for (let i = 0; i < peers; i++) {
  const peer = src.engine.addPeer(nodeCrypto.randomBytes(32));
  const v4 = parsePrefix(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32`)!;
  const v6 = parsePrefix(`fd00::${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}/128`)!;
  src.engine.allowedIPs.insert(v4.addr, v4.cidr, peer);
  src.engine.allowedIPs.insert(v6.addr, v6.cidr, peer);
  const s = peer.id * STATS_PER_PEER;
  src.engine.stats[s] = 1e6 + i; src.engine.stats[s + 1] = 2e6 + i; src.engine.stats[s + 2] = 1000 + i; src.engine.stats[s + 3] = 2000 + i;
  if (i % 2 === 0) {
    peer.lastHandshakeWall = now - (i % 120) * 1000;
    peer.endpoint = endpointFromAddress(`198.51.100.${i % 250}`, 40000 + (i % 20000));
  }
  if (i % 10 === 0) friendlyNames.set(Buffer.from(peer.publicKey).toString('base64'), `peer ${i}`);
}
const setupMs = performance.now() - setupStart;

const metrics = new WirepoolMetrics(src, { mdlayher, endpointLabels, friendlyNames, processMetrics: true });
let text = await metrics.metrics(); // warm-up (JIT, caches)
text = await metrics.metrics();
const times: number[] = [];
const stalls = monitorEventLoopDelay({ resolution: 1 });
stalls.enable();
for (let i = 0; i < SCRAPES; i++) {
  const t0 = performance.now();
  await metrics.exposition();
  times.push(performance.now() - t0);
}
stalls.disable();
times.sort((a, b) => a - b);
const series = text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;

const server = await MetricsServer.listen({ host: '127.0.0.1', port: 0 }, metrics);
const httpTimes: number[] = [];
for (let i = 0; i < 5; i++) {
  const t0 = performance.now();
  const bytes = await new Promise<number>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: server.port, path: '/metrics', agent: false }, (res) => {
      let n = 0;
      res.on('data', (c: Buffer) => (n += c.length));
      res.on('end', () => resolve(n));
    }).on('error', reject);
  });
  httpTimes.push(performance.now() - t0);
  if (bytes < Buffer.byteLength(text) / 2) throw new Error(`short HTTP body: ${bytes} bytes`);
}
await server.close();
httpTimes.sort((a, b) => a - b);

const fmt = (ms: number): string => ms.toFixed(1).padStart(7);
console.log(`peers ${peers} (set-up ${setupMs.toFixed(0)} ms), options: mdlayher=${mdlayher} endpointLabels=${endpointLabels}`);
console.log(`exposition: ${series} series, ${(Buffer.byteLength(text) / 1e6).toFixed(2)} MB`);
console.log(`exposition()        ms/scrape over ${SCRAPES}: min ${fmt(times[0]!)}  median ${fmt(times[times.length >> 1]!)}  max ${fmt(times[times.length - 1]!)}`);
console.log(`event loop held up meanwhile, ms:   p50 ${fmt(stalls.percentile(50) / 1e6)}  p99 ${fmt(stalls.percentile(99) / 1e6)}  max ${fmt(stalls.max / 1e6)}`);
console.log(`HTTP GET /metrics   ms/scrape over 5:  min ${fmt(httpTimes[0]!)}  median ${fmt(httpTimes[2]!)}  max ${fmt(httpTimes[4]!)}`);
