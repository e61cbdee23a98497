// The per-peer metric families — one series per peer and family, 60,000 series and ≈ 9 MB at
// 10,000 peers — written straight to exposition text (Prometheus text format 0.0.4), a chunk of
// peers at a time, with the event loop served between chunks.
//
// The scrape runs on the main thread, which also routes every packet. Through prom-client's
// registry these families cost ≈ 150 ms of one uninterrupted turn per scrape at 10,000 peers
// (bench/metrics-scrape.ts), and the HTTP reply then encoded one 9 MB string in one piece:
// every packet waited that long once per scrape interval. Here a scrape first takes a snapshot
// of each peer (its labels, rendered once, and its counters, read at that moment) and then
// renders each family from the snapshot, PEERS_PER_CHUNK peers per event-loop turn. A peer
// removed or added during a scrape is in it or not, never half: its row is read at once.
// A peer's label sets are kept from one scrape to the next until what they show changes (its
// allowed IPs, friendly name, endpoint, the options): at 100,000 peers a scrape built ≈ 30 MB of
// label strings anew, which lived across its turns (old-generation garbage). The snapshot is the
// label sets by reference and the counters in one Float64Array.
//
// Families (labels as prom-client rendered them, in the same order):
//   compatible (MindFlavor/prometheus_wireguard_exporter): interface, public_key, allowed_ips
//     (comma-joined, "(none)"), friendly_name when the config names the peer, remote_ip and
//     remote_port with the endpoint-labels option;
//   extended: interface, public_key, friendly_name;
//   mdlayher/wireguard_exporter (option): device, public_key (+ endpoint, name; allowed_ips, family).
import { setImmediate as nextTurn } from 'node:timers/promises';
import { peerKeyBase64 } from '../peer-name.js';
import { Stat, STATS_PER_PEER } from '../protocol/peer.js';
import { type MetricsPeer, type MetricsSource } from './source.js';

/** Peers snapshotted or rendered per event-loop turn (≈ 0.1–0.5 ms of main-thread time each). */
export const PEERS_PER_CHUNK = 500;

/** Takes the next piece of an exposition; a promise returned means: make no more until it settles (backpressure). */
export type ExpositionSink = (piece: Buffer) => void | Promise<void>;

export interface PeerFamilyOptions {
  endpointLabels: boolean;
  mdlayher: boolean;
  /** Base64 public key → friendly name. */
  friendlyNames: ReadonlyMap<string, string>;
}

/** A peer's rendered label sets, kept until what they show changes (PeerFamilies.labelsFor). */
interface Labels {
  /** What they were rendered from. */
  readonly key: string;
  readonly allowed: readonly string[];
  readonly name: string | undefined;
  readonly endpoint: MetricsPeer['endpoint'];
  readonly ifname: string;
  readonly endpointLabels: boolean;
  readonly mdlayher: boolean;
  /** `{interface="…",public_key="…",allowed_ips="…"…}`: compatible family. */
  readonly compat: string;
  /** Extended family. */
  readonly ext: string;
  /** mdlayher family: `{device="…",public_key="…"}` and the info families' label sets. */
  readonly md: string;
  readonly mdInfo: string;
  readonly mdAllowed: readonly string[];
}

/** The values of a peer in the snapshot: VALUES_PER_PEER numbers from index b. */
const TX_BYTES = 0;
const RX_BYTES = 1;
const TX_PACKETS = 2;
const RX_PACKETS = 3;
/** Wall-clock ms of the latest handshake, 0 = never. */
const HANDSHAKE_WALL = 4;
const VALUES_PER_PEER = 5;

interface Family {
  name: string;
  type: 'counter' | 'gauge';
  help: string;
  /** The peer's rendered label set, or one per series (an info family with a series per allowed IP). */
  labels(l: Labels): string | readonly string[];
  value(v: Float64Array, b: number, scrapeWall: number): number;
}

const family = (type: Family['type'], name: string, help: string, labels: Family['labels'], value: Family['value']): Family =>
  ({ name, type, help, labels, value });
const compat = (l: Labels): string => l.compat;
const ext = (l: Labels): string => l.ext;
const md = (l: Labels): string => l.md;
const at = (i: number) => (v: Float64Array, b: number): number => v[b + i]!;
const handshakeSeconds = (v: Float64Array, b: number): number => Math.floor(v[b + HANDSHAKE_WALL]! / 1000);
const one = (): number => 1;

const COMPATIBLE: Family[] = [
  family('counter', 'wireguard_sent_bytes_total', 'Bytes sent to the peer: whole WireGuard messages on the wire, handshakes included (wg show transfer).', compat, at(TX_BYTES)),
  family('counter', 'wireguard_received_bytes_total', 'Bytes received from the peer: whole authenticated WireGuard messages, handshakes included (wg show transfer).', compat, at(RX_BYTES)),
  family('gauge', 'wireguard_latest_handshake_seconds', 'Unix time of the latest completed handshake with the peer, in seconds; 0 = never.', compat, handshakeSeconds),
  family('gauge', 'wireguard_latest_handshake_delay_seconds', 'Seconds since the latest completed handshake with the peer (since the Unix epoch when there was none, like time() - wireguard_latest_handshake_seconds).',
    compat, (v, b, now) => Math.max(0, (now - v[b + HANDSHAKE_WALL]!) / 1000)),
  family('counter', 'wireguard_peer_sent_packets_total', 'Transport messages sent to the peer (data and keepalives).', ext, at(TX_PACKETS)),
  family('counter', 'wireguard_peer_received_packets_total', 'Authenticated transport messages received from the peer (data and keepalives).', ext, at(RX_PACKETS)),
];

const MDLAYHER: Family[] = [
  family('counter', 'wireguard_peer_receive_bytes_total', 'Bytes received from the peer (mdlayher/wireguard_exporter name).', md, at(RX_BYTES)),
  family('counter', 'wireguard_peer_transmit_bytes_total', 'Bytes sent to the peer (mdlayher/wireguard_exporter name).', md, at(TX_BYTES)),
  family('gauge', 'wireguard_peer_last_handshake_seconds', 'Unix time of the latest completed handshake with the peer, in seconds; 0 = never (mdlayher/wireguard_exporter name).', md, handshakeSeconds),
  family('gauge', 'wireguard_peer_info', 'Metadata about a peer; always 1 (mdlayher/wireguard_exporter name).', (l) => l.mdInfo, one),
  family('gauge', 'wireguard_peer_allowed_ips_info', 'An allowed IP of a peer; always 1 (mdlayher/wireguard_exporter name).', (l) => l.mdAllowed, one),
];

export class PeerFamilies {
  /** Each peer's label sets as last rendered (dropped with the peer). */
  private readonly labelCache = new WeakMap<MetricsPeer, Labels>();

  constructor(private readonly src: MetricsSource, private readonly options: () => PeerFamilyOptions) {}

  /**
   * The per-peer families' exposition, each family followed by an empty line, as prom-client
   * separates its own, handed to `sink` in pieces of PEERS_PER_CHUNK peers as they are made (the
   * HTTP reply writes each at once: at 100,000 peers the exposition is 90 MB, which is never held
   * whole). Yields to the event loop between pieces, and waits when the sink asks it to.
   */
  async render(scrapeWall: number, sink: ExpositionSink): Promise<void> {
    const opts = this.options();
    const { labels, values } = await this.snapshot(opts);
    const families = opts.mdlayher ? [...COMPATIBLE, ...MDLAYHER] : COMPATIBLE;
    for (const f of families) {
      let text = `# HELP ${f.name} ${f.help}\n# TYPE ${f.name} ${f.type}\n`;
      for (let i = 0; i < labels.length; i++) {
        const set = f.labels(labels[i]!);
        const value = formatValue(f.value(values, i * VALUES_PER_PEER, scrapeWall));
        if (typeof set === 'string') text += `${f.name}${set} ${value}\n`;
        else for (const l of set) text += `${f.name}${l} ${value}\n`;
        if ((i + 1) % PEERS_PER_CHUNK === 0) {
          await sink(Buffer.from(text, 'utf8'));
          text = '';
          await nextTurn();
        }
      }
      await sink(Buffer.from(`${text}\n`, 'utf8'));
    }
  }

  /** Every peer's label sets and values, PEERS_PER_CHUNK peers per turn. */
  private async snapshot(opts: PeerFamilyOptions): Promise<{ labels: Labels[]; values: Float64Array }> {
    const src = this.src;
    const ifname = escapeLabelValue(src.ifname);
    const stats = src.metricsPeerStats;
    const labels: Labels[] = [];
    let values = new Float64Array(VALUES_PER_PEER * 1024);
    for (const peer of src.metricsPeers()) {
      const n = labels.length;
      labels.push(this.labelsFor(peer, opts, ifname));
      if ((n + 1) * VALUES_PER_PEER > values.length) {
        const grown = new Float64Array(values.length * 2);
        grown.set(values);
        values = grown;
      }
      const s = peer.id * STATS_PER_PEER;
      const b = n * VALUES_PER_PEER;
      values[b + TX_BYTES] = stats[s + Stat.TxBytes]!;
      values[b + RX_BYTES] = stats[s + Stat.RxBytes]!;
      values[b + TX_PACKETS] = stats[s + Stat.TxPackets]!;
      values[b + RX_PACKETS] = stats[s + Stat.RxPackets]!;
      values[b + HANDSHAKE_WALL] = peer.lastHandshakeWall;
      if ((n + 1) % PEERS_PER_CHUNK === 0) await nextTurn();
    }
    return { labels, values };
  }

  /** The peer's label sets: the ones of the last scrape while what they show is unchanged, else rendered now. */
  private labelsFor(peer: MetricsPeer, opts: PeerFamilyOptions, ifname: string): Labels {
    const cached = this.labelCache.get(peer);
    const allowed = this.src.metricsAllowedIps(peer);
    const key = cached?.key ?? peerKeyBase64(peer.publicKey);
    const name = opts.friendlyNames.get(key);
    const ep = peer.endpoint;
    if (cached !== undefined && cached.name === name && cached.ifname === ifname && cached.endpointLabels === opts.endpointLabels
      && cached.mdlayher === opts.mdlayher && (cached.endpoint === ep || !(opts.endpointLabels || opts.mdlayher))
      && sameStrings(cached.allowed, allowed)) {
      return cached;
    }
    const friendly = name === undefined ? '' : `,friendly_name="${escapeLabelValue(name)}"`;
    let remote = '';
    if (opts.endpointLabels && ep !== null) remote = `,remote_ip="${escapeLabelValue(ep.address)}",remote_port="${ep.port}"`;
    const md = `{device="${ifname}",public_key="${key}"`;
    const l: Labels = {
      key, allowed, name, endpoint: ep, ifname, endpointLabels: opts.endpointLabels, mdlayher: opts.mdlayher,
      compat: `{interface="${ifname}",public_key="${key}",allowed_ips="${allowed.length ? allowed.join(',') : '(none)'}"${friendly}${remote}}`,
      ext: `{interface="${ifname}",public_key="${key}"${friendly}}`,
      md: `${md}}`,
      mdInfo: opts.mdlayher
        ? `${md},endpoint="${ep === null ? '' : escapeLabelValue(ep.address.includes(':') ? `[${ep.address}]:${ep.port}` : `${ep.address}:${ep.port}`)}",name="${escapeLabelValue(name ?? '')}"}`
        : '',
      mdAllowed: opts.mdlayher ? allowed.map((a) => `${md},allowed_ips="${a}",family="${a.includes(':') ? 'IPv6' : 'IPv4'}"}`) : [],
    };
    this.labelCache.set(peer, l);
    return l;
  }
}

/** Same strings in the same order (the same array, when the source keeps its text per peer). */
function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A label value as prom-client escapes it: backslash, newline, double quote. */
function escapeLabelValue(s: string): string {
  return /[\\\n"]/.test(s) ? s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"') : s;
}

/** A sample value as prom-client writes it. */
function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'Nan';
  if (!Number.isFinite(v)) return v < 0 ? '-Inf' : '+Inf';
  return `${v}`;
}
