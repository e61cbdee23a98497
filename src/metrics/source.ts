// What the metrics registry reads from a device at scrape time. DeviceMetrics (device-source.ts)
// implements it over a Device; the unit tests and the scrape benchmark use fakes. Every member
// is a cheap read of state the device keeps anyway — the per-peer and drop counters are the
// Float64Arrays the packet path already writes, the dataplane counters live in the pipeline's
// SharedArrayBuffer — so serving /metrics adds nothing to the packet path.
import { type HandshakeStats } from './handshakes.js';

/** One configured peer, as the registry sees it (protocol/peer.ts Peer satisfies this). */
export interface MetricsPeer {
  /** Index into peerStats (× STATS_PER_PEER). */
  readonly id: number;
  readonly publicKey: Uint8Array;
  /** Wall-clock ms of the last completed handshake; 0 = never. */
  readonly lastHandshakeWall: number;
  readonly endpoint: { readonly address: string; readonly port: number } | null;
}

export interface MetricsDeviceInfo {
  publicKey: Uint8Array | null;
  /** 0 = not bound. */
  listenPort: number;
  fwmark: number;
}

/** The dataplane's shared counters and ring occupancy (null without a pipeline). */
export interface MetricsDataplane {
  /** The pipeline's stats (dataplane/layout.ts: statDrop, statReader, STAT_WRITER, STAT_MAIN, statWorker). */
  readonly stats: Float64Array;
  /** Number of crypto workers (rows statWorker(0 .. workers−1)). */
  readonly workers: number;
  /** Queues of the TUN device (rows statReader(0 .. tunQueues−1); rings 0 .. tunQueues+1: layout.ts ringIds). */
  readonly tunQueues: number;
  /** Slots of ring r (RING_TUN, RING_LOCAL, RING_RECV, tunRingId(q)). */
  slots(ring: number): number;
  /** Slots of ring r between its producer and its last stage. */
  inFlight(ring: number): number;
}

export interface MetricsSource {
  readonly ifname: string;
  metricsDeviceInfo(): MetricsDeviceInfo;
  /** The configured peers; iterated once per scrape. */
  metricsPeers(): Iterable<MetricsPeer>;
  /** A peer's allowed IPs in text form ("10.0.0.2/32"), in UAPI order. */
  metricsAllowedIps(peer: MetricsPeer): readonly string[];
  /** [txBytes, rxBytes, txPackets, rxPackets] per peer id (protocol/peer.ts Stat). */
  readonly metricsPeerStats: Float64Array;
  /** Drop counts by [direction × DROP_REASONS.length + reason] (protocol/drops.ts). */
  readonly metricsDropCounts: Float64Array;
  metricsDataplane(): MetricsDataplane | null;
  metricsHandshakeQueue(): { length: number; capacity: number; underLoad: boolean; workers: MetricsHandshakeWorkers | null };
  readonly handshakeStats: HandshakeStats;
  /** UAPI requests: 'get:0', 'set:-22', … → count. */
  readonly uapiRequests: ReadonlyMap<string, number>;
  /** Configuration loads (file at start-up, reloads) by result 'ok' | 'error' → count. */
  readonly configReloads: ReadonlyMap<string, number>;
  /** Wall-clock ms of the last successful configuration load; 0 = none. */
  readonly lastConfigReloadSuccess: number;
}

/** The handshake workers (src/handshake-offload.ts), when initiations are prepared off main. */
export interface MetricsHandshakeWorkers {
  /** Initiations with the workers now, and the most they may hold. */
  inFlight: number;
  capacity: number;
  /** Initiations prepared by a worker, and processed on main because their worker task failed. */
  prepared: number;
  fallback: number;
}
