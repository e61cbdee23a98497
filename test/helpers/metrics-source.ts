// A MetricsSource over a real sans-I/O Engine (real peers, allowed-IPs trie, per-peer and
// drop counters) with a fake dataplane and handshake queue, for the metrics unit tests and
// the scrape benchmark. No sockets, threads or TUN.
import { nodeCrypto } from '../../src/crypto/crypto.js';
import { STATS_LENGTH } from '../../src/dataplane/layout.js';
import { HandshakeStats } from '../../src/metrics/handshakes.js';
import { type MetricsDataplane, type MetricsDeviceInfo, type MetricsPeer, type MetricsSource } from '../../src/metrics/source.js';
import { Sent } from '../../src/protocol/endpoint.js';
import { Engine } from '../../src/protocol/engine.js';
import { type Peer } from '../../src/protocol/peer.js';

export class EngineMetricsSource implements MetricsSource {
  readonly engine: Engine;
  readonly handshakeStats: HandshakeStats;
  readonly uapiRequests = new Map<string, number>();
  readonly configReloads = new Map<string, number>();
  lastConfigReloadSuccess = 0;
  listenPort = 51820;
  fwmark = 0;
  /** Monotonic ms seen by HandshakeStats; tests move it. */
  monoNow = 0;
  readonly dataplane = {
    stats: new Float64Array(STATS_LENGTH),
    workers: 2,
    tunQueues: 1,
    ringSlots: [1024, 256, 1024],
    ringInFlight: [0, 0, 0],
  };
  handshakeQueue: ReturnType<MetricsSource['metricsHandshakeQueue']> = { length: 0, capacity: 1024, underLoad: false, workers: null };

  constructor(readonly ifname: string, opts: { maxPeers?: number } = {}) {
    let mono = 0;
    this.engine = new Engine({
      crypto: nodeCrypto,
      clock: { now: () => mono++, wallNow: () => Date.now() },
      hooks: { sendTo: () => Sent.Yes, sendTransport: () => -1, keypairCreated: () => {}, keypairRetired: () => {} },
      ...(opts.maxPeers !== undefined ? { maxPeers: opts.maxPeers } : {}),
    });
    this.handshakeStats = new HandshakeStats(() => this.monoNow);
  }

  get metricsPeerStats(): Float64Array {
    return this.engine.stats;
  }
  get metricsDropCounts(): Float64Array {
    return this.engine.drops.counts;
  }
  metricsDeviceInfo(): MetricsDeviceInfo {
    return { publicKey: this.engine.publicKey, listenPort: this.listenPort, fwmark: this.fwmark };
  }
  metricsPeers(): Iterable<MetricsPeer> {
    return this.engine.peers();
  }
  metricsAllowedIps(peer: MetricsPeer): readonly string[] {
    return this.engine.allowedIPs.textForPeer(peer as Peer);
  }
  metricsDataplane(): MetricsDataplane | null {
    const d = this.dataplane;
    return { stats: d.stats, workers: d.workers, tunQueues: d.tunQueues, slots: (r) => d.ringSlots[r]!, inFlight: (r) => d.ringInFlight[r]! };
  }
  metricsHandshakeQueue(): ReturnType<MetricsSource['metricsHandshakeQueue']> {
    return { ...this.handshakeQueue };
  }
}
