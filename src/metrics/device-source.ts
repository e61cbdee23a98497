// The metrics' view of one interface (source.ts MetricsSource), read at scrape time: the engine's
// peers and shared counters, the dataplane's shared counters and ring occupancy, the handshake
// queue and workers; and the counters only the metrics keep (UAPI requests by errno,
// configuration loads), which the daemon feeds. Nothing here runs on a packet's path.
import { HANDSHAKE_QUEUE_SIZE } from '../constants.js';
import { type Pipeline } from '../dataplane/pipeline.js';
import { type HandshakeOffload } from '../handshake-offload.js';
import { type HandshakeQueue } from '../handshake-queue.js';
import { type Engine } from '../protocol/engine.js';
import { type Peer } from '../protocol/peer.js';
import { type HandshakeStats } from './handshakes.js';
import {
  type MetricsDataplane, type MetricsDeviceInfo, type MetricsHandshakeWorkers, type MetricsPeer, type MetricsSource,
} from './source.js';

/** What the metrics read of the Device. */
export interface DeviceMetricsHost {
  readonly ifname: string;
  readonly engine: Engine;
  readonly handshakeStats: HandshakeStats;
  readonly handshakes: HandshakeQueue;
  /** null: initiations are answered on main. */
  readonly offload: HandshakeOffload | null;
  /** Crypto workers the dataplane runs. */
  readonly workers: number;
  listenPort(): number;
  fwmark(): number;
  /** The dataplane now (it is replaced when the MTU outgrows its slots); undefined while the first one starts. */
  pipeline(): Pipeline | undefined;
}

export class DeviceMetrics implements MetricsSource {
  /** UAPI requests: 'get:0', 'set:-22', … → count. */
  readonly uapiRequests = new Map<string, number>();
  /** Configuration file loads by result ('ok' | 'error'). */
  readonly configReloads = new Map<string, number>();
  /** Wall-clock ms of the last successful configuration load; 0 = none. */
  lastConfigReloadSuccess = 0;

  constructor(private readonly host: DeviceMetricsHost) {}

  get ifname(): string {
    return this.host.ifname;
  }

  get handshakeStats(): HandshakeStats {
    return this.host.handshakeStats;
  }

  countUapiRequest(op: 'get' | 'set', errno: number): void {
    const k = `${op}:${errno}`;
    this.uapiRequests.set(k, (this.uapiRequests.get(k) ?? 0) + 1);
  }

  countConfigReload(ok: boolean): void {
    const k = ok ? 'ok' : 'error';
    this.configReloads.set(k, (this.configReloads.get(k) ?? 0) + 1);
    if (ok) this.lastConfigReloadSuccess = Date.now();
  }

  get metricsPeerStats(): Float64Array {
    return this.host.engine.stats;
  }

  get metricsDropCounts(): Float64Array {
    return this.host.engine.drops.counts;
  }

  metricsDeviceInfo(): MetricsDeviceInfo {
    return { publicKey: this.host.engine.publicKey, listenPort: this.host.listenPort(), fwmark: this.host.fwmark() };
  }

  metricsPeers(): Iterable<MetricsPeer> {
    return this.host.engine.peers();
  }

  metricsAllowedIps(peer: MetricsPeer): readonly string[] {
    return this.host.engine.allowedIPs.textForPeer(peer as Peer);
  }

  metricsDataplane(): MetricsDataplane | null {
    const p = this.host.pipeline();
    if (!p) return null;
    return { stats: p.stats, workers: this.host.workers, tunQueues: p.tunQueues, slots: (r) => p.slots(r), inFlight: (r) => p.inFlight(r) };
  }

  metricsHandshakeQueue(): { length: number; capacity: number; underLoad: boolean; workers: MetricsHandshakeWorkers | null } {
    const { handshakes, offload: o } = this.host;
    return {
      length: handshakes.length, capacity: HANDSHAKE_QUEUE_SIZE, underLoad: handshakes.isUnderLoad(),
      workers: o ? { inFlight: o.length, capacity: o.capacity, prepared: o.stats.prepared, fallback: o.stats.fallback } : null,
    };
  }
}
