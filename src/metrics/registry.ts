// Every metric wirepool exports, declared in one place with its help text, and read from a
// MetricsSource at scrape time through prom-client collect() callbacks. Nothing here runs
// per packet: the data path only bumps the shared Float64Array counters it already has,
// and a scrape copies them into prom-client.
//
// Families:
//   compatible (always on): the MindFlavor/prometheus_wireguard_exporter names and labels
//     (interface, public_key, allowed_ips, friendly_name when the config names the peer;
//     remote_ip/remote_port only with endpointLabels), so dashboards built for it work;
//   mdlayher (option): the mdlayher/wireguard_exporter names (label `device`) for Grafana
//     dashboard 12177;
//   extended: packets, handshakes, drops by reason, queues, workers, UAPI, configuration;
//   process: prom-client's process_* and nodejs_* metrics (event-loop lag of the main
//     thread among them), minus three gauges whose names end in _total, which promtool
//     rejects.
// Per-peer series are rebuilt from the peer list at every scrape, so a removed peer's
// series disappear with it. The per-peer families (60,000 series at 10,000 peers) are written
// by peer-families.ts, a chunk of peers per event-loop turn; the small device-wide families
// are ordinary prom-client Counters and Gauges with collect(), in prom-client's registry. Only
// public keys appear in labels; no other key material is read from the source.
import { createRequire } from 'node:module';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { REJECT_AFTER_TIME } from '../constants.js';
import { peerKeyBase64 } from '../peer-name.js';
import { DROP_REASONS } from '../protocol/drops.js';
import {
  CW_BUSY_NS, CW_FAILED, CW_OPENED, CW_SEALED, CW_SEND_FALLBACKS, CW_SENT, Drop, MAIN_IDLE_RECEIVED, MAIN_IDLE_SENT, MAIN_INLINE_SEALED, MAIN_INPUT_RECHECKS, MAIN_TUN_GIVEN, MAIN_TUN_TAKEN, MAIN_UDP_GIVEN, MAIN_UDP_TAKEN, MAIN_WAKEUPS, MAIN_WORKER_RESTARTS, R_BYTES,
  R_FULL_WAITS, R_PACKETS, R_READS, R_SUPER, STAT_MAIN, STAT_UDP_READER, STAT_WRITER, U_CALLS, U_DATAGRAMS,
  U_FAST, U_FULL_WAITS, U_INLINE_OPENED, W_BYTES, W_PACKETS, W_WRITES, readerStat, ringIds, ringName, statDrop, statReader, statWorker,
} from '../dataplane/layout.js';
import {
  DIRECTIONS, HANDSHAKE_DURATION_BUCKETS, HANDSHAKE_MESSAGE_TYPES, HANDSHAKE_RESULTS, HANDSHAKE_ROLES,
} from './handshakes.js';
import { type ExpositionSink, PeerFamilies } from './peer-families.js';
import { type MetricsSource } from './source.js';

/** A cell of the TUN readers' rows (R_*), summed over the queues' readers (layout.ts readerStat). */
interface Reader { reader: number }
const TUN_READER = (field: number): Reader => ({ reader: field });

export interface MetricsOptions {
  /** MindFlavor's remote_ip/remote_port labels on the compatible per-peer series. Off by default: a roaming peer makes new series. */
  endpointLabels?: boolean;
  /** Also export the mdlayher/wireguard_exporter family (Grafana dashboard 12177). */
  mdlayher?: boolean;
  /** prom-client's process_* and nodejs_* metrics (default true). */
  processMetrics?: boolean;
  /** Base64 public key → friendly name (the `# friendly_name = …` config comments). */
  friendlyNames?: ReadonlyMap<string, string>;
  /** Wall-clock ms (default Date.now); tests pass a fixed clock. */
  wallNow?: () => number;
}

/** Peers with a handshake younger than this count as active (a session can still be used). */
export const ACTIVE_PEER_WINDOW_MS = REJECT_AFTER_TIME;

/** The gauges of prom-client's default metrics whose names end in _total (promtool: "non-counter metrics should not have _total suffix"). */
const LINT_FAILING_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

type Labels = Record<string, string>;

export function packageVersion(): string {
  try {
    return (createRequire(import.meta.url)('../../../package.json') as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export class WirepoolMetrics {
  readonly registry = new Registry();
  private readonly src: MetricsSource;
  private readonly opts: Required<Omit<MetricsOptions, 'friendlyNames'>> & { friendlyNames: ReadonlyMap<string, string> };
  private readonly peerFamilies: PeerFamilies;

  constructor(source: MetricsSource, options: MetricsOptions = {}) {
    this.src = source;
    this.opts = {
      endpointLabels: options.endpointLabels ?? false,
      mdlayher: options.mdlayher ?? false,
      processMetrics: options.processMetrics ?? true,
      friendlyNames: options.friendlyNames ?? new Map(),
      wallNow: options.wallNow ?? Date.now,
    };
    this.peerFamilies = new PeerFamilies(source, () => this.opts);
    this.declare();
    if (this.opts.processMetrics) {
      collectDefaultMetrics({ register: this.registry });
      for (const name of LINT_FAILING_DEFAULTS) this.registry.removeSingleMetric(name);
    }
  }

  /** Applies the options a configuration file carries (a reload); the next scrape shows them. */
  reconfigure(options: Pick<MetricsOptions, 'endpointLabels' | 'mdlayher' | 'friendlyNames'>): void {
    this.opts.mdlayher = options.mdlayher ?? false;
    this.opts.endpointLabels = options.endpointLabels ?? false;
    this.opts.friendlyNames = options.friendlyNames ?? new Map();
  }

  /**
   * The exposition (Prometheus text format 0.0.4, UTF-8), handed to `sink` piece by piece as it is
   * made: the per-peer families, a chunk of peers per event-loop turn (peer-families.ts), then
   * prom-client's registry in one turn.
   */
  async writeExposition(sink: ExpositionSink): Promise<void> {
    await this.peerFamilies.render(this.opts.wallNow(), sink);
    await sink(Buffer.from(await this.registry.metrics(), 'utf8'));
  }

  /** The exposition's pieces, collected. */
  async exposition(): Promise<Buffer[]> {
    const pieces: Buffer[] = [];
    await this.writeExposition((p) => { pieces.push(p); });
    return pieces;
  }

  /** The exposition as one text. */
  async metrics(): Promise<string> {
    return Buffer.concat(await this.exposition()).toString('utf8');
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  // ───────────────────────── declarations: the device-wide families ─────────────────────────

  private declare(): void {
    const src = this.src;
    const reg = this.registry;
    const iface = src.ifname;
    const self = this;

    // ── device ──
    // `device` is set only while the mdlayher option is on.
    const deviceInfoLabels = ['interface', 'public_key', 'listen_port', 'fwmark', 'device'];
    new Gauge({
      name: 'wireguard_device_info',
      help: 'The WireGuard interface: its public key, listen port and fwmark; always 1.',
      labelNames: deviceInfoLabels, registers: [reg],
      collect() {
        this.reset();
        const d = src.metricsDeviceInfo();
        const labels: Labels = {
          interface: iface,
          public_key: d.publicKey ? peerKeyBase64(d.publicKey) : '',
          listen_port: String(d.listenPort),
          fwmark: String(d.fwmark),
        };
        if (self.opts.mdlayher) labels.device = iface;
        this.set(labels, 1);
      },
    });
    const build = { version: packageVersion(), nodejs_version: process.version };
    new Gauge({
      name: 'wireguard_build_info',
      help: 'The wirepool version and the Node.js version it runs on; always 1.',
      labelNames: ['version', 'nodejs_version'], registers: [reg],
      collect() { this.set(build, 1); },
    });
    new Gauge({
      name: 'wireguard_peers',
      help: `Peers by state: configured, or active (a handshake in the last ${ACTIVE_PEER_WINDOW_MS / 1000} s, so a session may be in use).`,
      labelNames: ['interface', 'state'], registers: [reg],
      collect() {
        const now = self.opts.wallNow();
        let configured = 0;
        let active = 0;
        for (const peer of src.metricsPeers()) {
          configured++;
          const t = peer.lastHandshakeWall;
          if (t > 0 && now - t < ACTIVE_PEER_WINDOW_MS) active++;
        }
        this.set({ interface: iface, state: 'configured' }, configured);
        this.set({ interface: iface, state: 'active' }, active);
      },
    });

    // ── handshakes ──
    const hs = src.handshakeStats;
    new Counter({
      name: 'wireguard_handshakes_total',
      help: 'Handshake attempts by our role and result: ok (session established), timeout (no answer within REKEY_TIMEOUT), rejected (message refused).',
      labelNames: ['interface', 'role', 'result'], registers: [reg],
      collect() {
        hs.sweep();
        this.reset();
        HANDSHAKE_ROLES.forEach((role, ri) => HANDSHAKE_RESULTS.forEach((result, ki) => {
          this.inc({ interface: iface, role, result }, hs.results[ri * HANDSHAKE_RESULTS.length + ki]!);
        }));
      },
    });
    reg.registerMetric(new CollectedHistogram(
      'wireguard_handshake_duration_seconds',
      'Time from the start of a handshake to an established session: initiator, initiation sent to response consumed; responder, initiation accepted to the first transport message (key confirmation).',
      () => {
        const values: HistogramValue[] = [];
        const nb = HANDSHAKE_DURATION_BUCKETS.length + 1;
        HANDSHAKE_ROLES.forEach((role, ri) => {
          let cumulative = 0;
          for (let i = 0; i < nb; i++) {
            cumulative += hs.durationBuckets[ri * nb + i]!;
            const le = i < nb - 1 ? String(HANDSHAKE_DURATION_BUCKETS[i]) : '+Inf';
            values.push({ metricName: 'wireguard_handshake_duration_seconds_bucket', labels: { interface: iface, role, le }, value: cumulative });
          }
          values.push({ metricName: 'wireguard_handshake_duration_seconds_sum', labels: { interface: iface, role }, value: hs.durationSum[ri]! });
          values.push({ metricName: 'wireguard_handshake_duration_seconds_count', labels: { interface: iface, role }, value: hs.durationCount[ri]! });
        });
        return values;
      },
    ) as unknown as Gauge);
    new Counter({
      name: 'wireguard_handshake_messages_total',
      help: 'Handshake messages by type (initiation, response, cookie_reply) and direction; inbound counts only messages that were accepted.',
      labelNames: ['interface', 'type', 'direction'], registers: [reg],
      collect() {
        this.reset();
        HANDSHAKE_MESSAGE_TYPES.forEach((type, ti) => DIRECTIONS.forEach((direction, di) => {
          this.inc({ interface: iface, type, direction }, hs.messages[ti * DIRECTIONS.length + di]!);
        }));
      },
    });
    new Counter({
      name: 'wireguard_handshake_initiations_prepared_total',
      help: 'Initiations whose arithmetic ran on a handshake worker (where="worker"), or on the main thread because their worker task failed (where="main_fallback"); absent when initiations are answered on main (--handshake-workers 0).',
      labelNames: ['interface', 'where'], registers: [reg],
      collect() {
        this.reset();
        const w = src.metricsHandshakeQueue().workers;
        if (!w) return;
        this.inc({ interface: iface, where: 'worker' }, w.prepared);
        this.inc({ interface: iface, where: 'main_fallback' }, w.fallback);
      },
    });
    new Gauge({
      name: 'wireguard_under_load',
      help: 'Whether the device is under load (handshake queue at least 1/8 full within the last second): 1 means initiations need a cookie and are rate-limited.',
      labelNames: ['interface'], registers: [reg],
      collect() { this.set({ interface: iface }, src.metricsHandshakeQueue().underLoad ? 1 : 0); },
    });

    // ── drops ──
    const drops = src.metricsDropCounts;
    new Counter({
      name: 'wireguard_dropped_packets_total',
      help: 'Packets dropped, by direction (inbound: from the network; outbound: from the TUN side) and reason.',
      labelNames: ['interface', 'direction', 'reason'], registers: [reg],
      collect() {
        this.reset();
        DIRECTIONS.forEach((direction, di) => DROP_REASONS.forEach((reason, ri) => {
          this.inc({ interface: iface, direction, reason }, drops[di * DROP_REASONS.length + ri]!);
        }));
      },
    });

    // ── queues, workers, TUN threads ──
    new Gauge({
      name: 'wireguard_queue_depth',
      help: 'Entries currently in a queue: the tun, local and recv rings of the dataplane, and the handshake queue.',
      labelNames: ['interface', 'queue'], registers: [reg],
      collect() {
        this.reset();
        const dp = src.metricsDataplane();
        if (dp) for (const r of ringIds(dp.tunQueues)) this.set({ interface: iface, queue: ringName(r) }, dp.inFlight(r));
        const hq = src.metricsHandshakeQueue();
        this.set({ interface: iface, queue: 'handshake' }, hq.length);
        if (hq.workers) this.set({ interface: iface, queue: 'handshake_workers' }, hq.workers.inFlight);
      },
    });
    new Gauge({
      name: 'wireguard_queue_capacity',
      help: 'Capacity of a queue (see wireguard_queue_depth).',
      labelNames: ['interface', 'queue'], registers: [reg],
      collect() {
        this.reset();
        const dp = src.metricsDataplane();
        if (dp) for (const r of ringIds(dp.tunQueues)) this.set({ interface: iface, queue: ringName(r) }, dp.slots(r));
        const hq = src.metricsHandshakeQueue();
        this.set({ interface: iface, queue: 'handshake' }, hq.capacity);
        if (hq.workers) this.set({ interface: iface, queue: 'handshake_workers' }, hq.workers.capacity);
      },
    });
    const perWorker = (name: string, help: string, read: (stats: Float64Array, row: number, emit: (labels: Labels, v: number) => void, worker: string) => void, extraLabels: string[] = []): void => {
      new Counter({
        name, help, labelNames: ['interface', 'worker', ...extraLabels], registers: [reg],
        collect() {
          this.reset();
          const dp = src.metricsDataplane();
          if (!dp) return;
          for (let w = 0; w < dp.workers; w++) {
            read(dp.stats, statWorker(w), (labels, v) => this.inc({ interface: iface, worker: String(w), ...labels }, v), String(w));
          }
        },
      });
    };
    perWorker('wireguard_worker_busy_seconds_total', 'Seconds a crypto worker spent working (not asleep); its rate is the worker\'s utilisation.',
      (s, row, emit) => emit({}, s[row + CW_BUSY_NS]! / 1e9));
    perWorker('wireguard_worker_packets_total', 'Transport messages a crypto worker sealed (outbound) or opened (inbound).',
      (s, row, emit) => { emit({ direction: 'outbound' }, s[row + CW_SEALED]!); emit({ direction: 'inbound' }, s[row + CW_OPENED]!); }, ['direction']);
    perWorker('wireguard_worker_crypto_failures_total', 'Seal errors and failed authentications in a crypto worker.',
      (s, row, emit) => emit({}, s[row + CW_FAILED]!));
    perWorker('wireguard_worker_udp_sends_total', 'Sealed messages a crypto worker wrote to a connected UDP socket itself (result="sent"), or could not write and left to the main thread (result="fallback": socket buffer full, socket being replaced).',
      (s, row, emit) => { emit({ result: 'sent' }, s[row + CW_SENT]!); emit({ result: 'fallback' }, s[row + CW_SEND_FALLBACKS]!); }, ['result']);
    new Counter({
      name: 'wireguard_worker_restarts_total',
      help: 'Dataplane threads (crypto workers, TUN reader, TUN writer) that died and were restarted.',
      labelNames: ['interface'], registers: [reg],
      collect() {
        this.reset();
        this.inc({ interface: iface }, src.metricsDataplane()?.stats[STAT_MAIN + MAIN_WORKER_RESTARTS] ?? 0);
      },
    });
    new Counter({
      name: 'wireguard_tun_packets_total',
      help: 'Packets read from the TUN device (outbound) and written to it (inbound).',
      labelNames: ['interface', 'direction'], registers: [reg],
      collect() {
        this.reset();
        const dp = src.metricsDataplane();
        this.inc({ interface: iface, direction: 'outbound' }, dp ? readerStat(dp.stats, R_PACKETS, dp.tunQueues) : 0);
        this.inc({ interface: iface, direction: 'inbound' }, dp?.stats[STAT_WRITER + W_PACKETS] ?? 0);
      },
    });
    new Counter({
      name: 'wireguard_tun_bytes_total',
      help: 'Bytes of inner packets read from the TUN device (outbound) and written to it (inbound).',
      labelNames: ['interface', 'direction'], registers: [reg],
      collect() {
        this.reset();
        const dp = src.metricsDataplane();
        this.inc({ interface: iface, direction: 'outbound' }, dp ? readerStat(dp.stats, R_BYTES, dp.tunQueues) : 0);
        this.inc({ interface: iface, direction: 'inbound' }, dp?.stats[STAT_WRITER + W_BYTES] ?? 0);
      },
    });
    new Counter({
      name: 'wireguard_tun_queue_read_packets_total',
      help: 'Packets read from each queue of the TUN device (--tun-queues: one reader thread and send ring per queue; the kernel reads a flow from the queue it was last written on, and writes spread the flows over the queues by a hash of addresses and ports).',
      labelNames: ['interface', 'queue'], registers: [reg],
      collect() {
        this.reset();
        const dp = src.metricsDataplane();
        if (!dp) return;
        for (let q = 0; q < dp.tunQueues; q++) this.inc({ interface: iface, queue: String(q) }, dp.stats[statReader(q) + R_PACKETS]!);
      },
    });
    // Batching and backpressure of the I/O threads: a label value per stats cell of the dataplane
    // (a TUN reader's cell: TUN_READER(field), summed over the queues' readers).
    const dataplaneCounter = (name: string, help: string, label: string, cells: ReadonlyArray<readonly [string, number | Reader]>): void => {
      new Counter({
        name, help, labelNames: ['interface', label], registers: [reg],
        collect() {
          this.reset();
          const dp = src.metricsDataplane();
          for (const [value, cell] of cells) {
            const v = !dp ? 0 : typeof cell === 'number' ? dp.stats[cell]! : readerStat(dp.stats, cell.reader, dp.tunQueues);
            this.inc({ interface: iface, [label]: value }, v);
          }
        },
      });
    };
    dataplaneCounter('wireguard_dataplane_io_calls_total',
      'I/O calls and wake-ups of the dataplane: tun_read (reads that returned a packet or a GSO super-packet), tun_write (writes, each one packet or a GRO-coalesced one), udp_recv (recvmmsg calls that returned datagrams), main_wakeup (times the main thread woke for ring work or, at idle, for a readable TUN device or socket), input_recheck (at idle, looks the main thread took at the TUN device or the sockets before it slept, for what arrived while it was busy, without another wake-up; those that found packets count under tun_read or udp_recv too). Packets per call is the batch size.',
      'call', [['tun_read', TUN_READER(R_READS)], ['tun_write', STAT_WRITER + W_WRITES], ['udp_recv', STAT_UDP_READER + U_CALLS], ['main_wakeup', STAT_MAIN + MAIN_WAKEUPS],
        ['input_recheck', STAT_MAIN + MAIN_INPUT_RECHECKS]]);
    dataplaneCounter('wireguard_udp_received_datagrams_total',
      'Datagrams received from the UDP sockets (by the UDP reader thread, or by main at idle): all, keyed (transport messages whose session key was found on receipt, so main did not classify them), opened_inline (of those, decrypted on receipt in a small batch, without a crypto worker).',
      'kind', [['all', STAT_UDP_READER + U_DATAGRAMS], ['keyed', STAT_UDP_READER + U_FAST], ['opened_inline', STAT_UDP_READER + U_INLINE_OPENED]]);
    dataplaneCounter('wireguard_dataplane_inline_crypto_total',
      'Transport messages crypted without a crypto worker, for latency when the path is idle: main_seal (sealed by the main thread: at most 2 routed packets in the ring), udp_reader_open (opened on receipt, by the UDP reader thread or by main at idle, in a batch of at most 2), idle_send and idle_receive (a lone packet read, sealed and sent, or received, opened, checked and written, by the main thread in C before any JavaScript ran: the idle path).',
      'kind', [['main_seal', STAT_MAIN + MAIN_INLINE_SEALED], ['udp_reader_open', STAT_UDP_READER + U_INLINE_OPENED],
        ['idle_send', STAT_MAIN + MAIN_IDLE_SENT], ['idle_receive', STAT_MAIN + MAIN_IDLE_RECEIVED]]);
    new Counter({
      name: 'wireguard_dataplane_intake_handoffs_total',
      help: 'Who reads an input (the TUN device, the UDP sockets) changed: to="main" when its I/O thread handed it to the main thread\'s event loop (idle: one wake-up per packet), to="thread" when main gave it back (load: batches of 8 or more).',
      labelNames: ['interface', 'input', 'to'], registers: [reg],
      collect() {
        this.reset();
        const s = src.metricsDataplane()?.stats;
        const cells: [string, string, number][] = [['tun', 'main', MAIN_TUN_TAKEN], ['tun', 'thread', MAIN_TUN_GIVEN], ['udp', 'main', MAIN_UDP_TAKEN], ['udp', 'thread', MAIN_UDP_GIVEN]];
        for (const [input, to, cell] of cells) this.inc({ interface: iface, input, to }, s?.[STAT_MAIN + cell] ?? 0);
      },
    });
    dataplaneCounter('wireguard_tun_gso_superpackets_total',
      'GSO super-packets read from TUN and split into MTU-sized packets (TSO/USO offload).',
      'direction', [['outbound', TUN_READER(R_SUPER)]]);
    dataplaneCounter('wireguard_dataplane_backpressure_waits_total',
      'Times an I/O thread waited for a free ring slot (the main thread or the crypto workers were behind); the kernel buffers hold what waits.',
      'thread', [['tun_reader', TUN_READER(R_FULL_WAITS)], ['udp_reader', STAT_UDP_READER + U_FULL_WAITS]]);
    new Counter({
      name: 'wireguard_dataplane_errors_total',
      help: 'Ring slots given up, as the rings count them: worker_died (its crypto worker died; the packet is also in wireguard_dropped_packets_total as worker_died), hook_error (a main-thread stage threw), tun_write (writing to TUN failed).',
      labelNames: ['interface', 'ring', 'kind'], registers: [reg],
      collect() {
        this.reset();
        const dp = src.metricsDataplane();
        if (!dp) return;
        const s = dp.stats;
        for (const r of ringIds(dp.tunQueues)) {
          const ring = ringName(r);
          this.inc({ interface: iface, ring, kind: 'worker_died' }, s[statDrop(r, Drop.DEAD)]!);
          this.inc({ interface: iface, ring, kind: 'hook_error' }, s[statDrop(r, Drop.HOOK_ERROR)]!);
          if (ring === 'recv') this.inc({ interface: iface, ring, kind: 'tun_write' }, s[statDrop(r, Drop.TUN_WRITE)]!);
        }
      },
    });

    // ── configuration ──
    new Counter({
      name: 'wireguard_uapi_requests_total',
      help: 'Configuration requests on the UAPI socket by operation (get, set) and result (ok, or error with the errno).',
      labelNames: ['interface', 'op', 'result', 'errno'], registers: [reg],
      collect() {
        this.reset();
        for (const [key, n] of src.uapiRequests) {
          const [op = '', errno = '0'] = key.split(':');
          this.inc({ interface: iface, op, result: errno === '0' ? 'ok' : 'error', errno }, n);
        }
      },
    });
    new Counter({
      name: 'wireguard_config_reloads_total',
      help: 'Configuration file loads (at start-up and on reload) by result (ok, error).',
      labelNames: ['interface', 'result'], registers: [reg],
      collect() {
        this.reset();
        this.inc({ interface: iface, result: 'ok' }, src.configReloads.get('ok') ?? 0);
        this.inc({ interface: iface, result: 'error' }, src.configReloads.get('error') ?? 0);
      },
    });
    new Gauge({
      name: 'wireguard_config_last_reload_success_timestamp_seconds',
      help: 'Unix time of the last successful configuration file load; 0 = none.',
      labelNames: ['interface'], registers: [reg],
      collect() { this.set({ interface: iface }, src.lastConfigReloadSuccess / 1000); },
    });
  }
}

interface HistogramValue { metricName: string; labels: Labels; value: number }
/**
 * A histogram whose buckets are kept elsewhere (HandshakeStats) and read at scrape time.
 * prom-client's Histogram only accumulates observe() calls; the registry formats any
 * object with this shape (name, help, type, get(), reset()).
 */
class CollectedHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  constructor(readonly name: string, readonly help: string, private readonly read: () => HistogramValue[]) {}
  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: HistogramValue[] }> {
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.read() });
  }
  reset(): void {}
}
