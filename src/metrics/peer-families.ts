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
import { type MetricsSource } from './source.js';

/** Peers snapshotted or rendered per event-loop turn (≈ 0.1–0.5 ms of main-thread time each). */
export const PEERS_PER_CHUNK = 500;

export interface PeerFamilyOptions {
  endpointLabels: boolean;
  mdlayher: boolean;
  /** Base64 public key → friendly name. */
  friendlyNames: ReadonlyMap<string, string>;
}

/** One peer at the moment of the snapshot: its rendered label sets and its values. */
interface Row {
  /** `{interface="…",public_key="…",allowed_ips="…"…}`: compatible family. */
  compat: string;
  /** Extended family. */
  ext: string;
  /** mdlayher family: `{device="…",public_key="…"}` and the info families' label sets. */
  md: string;
  mdInfo: string;
  mdAllowed: string[];
  txBytes: number;
  rxBytes: number;
  txPackets: number;
  rxPackets: number;
  /** Wall-clock ms of the latest handshake, 0 = never. */
  handshakeWall: number;
}

interface Family {
  name: string;
  type: 'counter' | 'gauge';
  help: string;
  /** The row's rendered label set, or one per series (an info family with a series per allowed IP). */
  labels(r: Row): string | readonly string[];
  value(r: Row, scrapeWall: number): number;
}

const family = (type: Family['type'], name: string, help: string, labels: Family['labels'], value: Family['value']): Family =>
  ({ name, type, help, labels, value });
const compat = (r: Row): string => r.compat;
const ext = (r: Row): string => r.ext;
const md = (r: Row): string => r.md;
const handshakeSeconds = (r: Row): number => Math.floor(r.handshakeWall / 1000);
const one = (): number => 1;

const COMPATIBLE: Family[] = [
  family('counter', 'wireguard_sent_bytes_total', 'Bytes sent to the peer: whole WireGuard messages on the wire, handshakes included (wg show transfer).', compat, (r) => r.txBytes),
  family('counter', 'wireguard_received_bytes_total', 'Bytes received from the peer: whole authenticated WireGuard messages, handshakes included (wg show transfer).', compat, (r) => r.rxBytes),
  family('gauge', 'wireguard_latest_handshake_seconds', 'Unix time of the latest completed handshake with the peer, in seconds; 0 = never.', compat, handshakeSeconds),
  family('gauge', 'wireguard_latest_handshake_delay_seconds', 'Seconds since the latest completed handshake with the peer (since the Unix epoch when there was none, like time() - wireguard_latest_handshake_seconds).',
    compat, (r, now) => Math.max(0, (now - r.handshakeWall) / 1000)),
  family('counter', 'wireguard_peer_sent_packets_total', 'Transport messages sent to the peer (data and keepalives).', ext, (r) => r.txPackets),
  family('counter', 'wireguard_peer_received_packets_total', 'Authenticated transport messages received from the peer (data and keepalives).', ext, (r) => r.rxPackets),
];

const MDLAYHER: Family[] = [
  family('counter', 'wireguard_peer_receive_bytes_total', 'Bytes received from the peer (mdlayher/wireguard_exporter name).', md, (r) => r.rxBytes),
  family('counter', 'wireguard_peer_transmit_bytes_total', 'Bytes sent to the peer (mdlayher/wireguard_exporter name).', md, (r) => r.txBytes),
  family('gauge', 'wireguard_peer_last_handshake_seconds', 'Unix time of the latest completed handshake with the peer, in seconds; 0 = never (mdlayher/wireguard_exporter name).', md, handshakeSeconds),
  family('gauge', 'wireguard_peer_info', 'Metadata about a peer; always 1 (mdlayher/wireguard_exporter name).', (r) => r.mdInfo, one),
  family('gauge', 'wireguard_peer_allowed_ips_info', 'An allowed IP of a peer; always 1 (mdlayher/wireguard_exporter name).', (r) => r.mdAllowed, one),
];

export class PeerFamilies {
  private readonly base64 = new WeakMap<Uint8Array, string>();

  constructor(private readonly src: MetricsSource, private readonly options: () => PeerFamilyOptions) {}

  /**
   * The per-peer families' exposition, each family followed by an empty line, as prom-client
   * separates its own, in pieces of PEERS_PER_CHUNK peers (written to the HTTP reply as they are:
   * no 9 MB copy). Yields to the event loop between pieces.
   */
  async render(scrapeWall: number): Promise<Buffer[]> {
    const opts = this.options();
    const rows = await this.snapshot(opts);
    const families = opts.mdlayher ? [...COMPATIBLE, ...MDLAYHER] : COMPATIBLE;
    const out: Buffer[] = [];
    for (const f of families) {
      let text = `# HELP ${f.name} ${f.help}\n# TYPE ${f.name} ${f.type}\n`;
      for (let i = 0; i < rows.length; i++) {
        const r = rows[i]!;
        const labels = f.labels(r);
        if (typeof labels === 'string') text += `${f.name}${labels} ${formatValue(f.value(r, scrapeWall))}\n`;
        else for (const l of labels) text += `${f.name}${l} ${formatValue(f.value(r, scrapeWall))}\n`;
        if ((i + 1) % PEERS_PER_CHUNK === 0) {
          out.push(Buffer.from(text, 'utf8'));
          text = '';
          await nextTurn();
        }
      }
      out.push(Buffer.from(`${text}\n`, 'utf8'));
    }
    return out;
  }

  /** Every peer's row, PEERS_PER_CHUNK per turn. */
  private async snapshot(opts: PeerFamilyOptions): Promise<Row[]> {
    const src = this.src;
    const ifname = escapeLabelValue(src.ifname);
    const stats = src.metricsPeerStats;
    const rows: Row[] = [];
    let n = 0;
    for (const peer of src.metricsPeers()) {
      let key = this.base64.get(peer.publicKey);
      if (key === undefined) {
        key = peerKeyBase64(peer.publicKey);
        this.base64.set(peer.publicKey, key);
      }
      const allowed = src.metricsAllowedIps(peer);
      const name = opts.friendlyNames.get(key);
      const friendly = name === undefined ? '' : `,friendly_name="${escapeLabelValue(name)}"`;
      const ep = peer.endpoint;
      let remote = '';
      if (opts.endpointLabels && ep !== null) remote = `,remote_ip="${escapeLabelValue(ep.address)}",remote_port="${ep.port}"`;
      const md = `{device="${ifname}",public_key="${key}"`;
      const s = peer.id * STATS_PER_PEER;
      rows.push({
        compat: `{interface="${ifname}",public_key="${key}",allowed_ips="${allowed.length ? allowed.join(',') : '(none)'}"${friendly}${remote}}`,
        ext: `{interface="${ifname}",public_key="${key}"${friendly}}`,
        md: `${md}}`,
        mdInfo: opts.mdlayher
          ? `${md},endpoint="${ep === null ? '' : escapeLabelValue(ep.address.includes(':') ? `[${ep.address}]:${ep.port}` : `${ep.address}:${ep.port}`)}",name="${escapeLabelValue(name ?? '')}"}`
          : '',
        mdAllowed: opts.mdlayher ? allowed.map((a) => `${md},allowed_ips="${a}",family="${a.includes(':') ? 'IPv6' : 'IPv4'}"}`) : [],
        txBytes: stats[s + Stat.TxBytes]!,
        rxBytes: stats[s + Stat.RxBytes]!,
        txPackets: stats[s + Stat.TxPackets]!,
        rxPackets: stats[s + Stat.RxPackets]!,
        handshakeWall: peer.lastHandshakeWall,
      });
      if (++n % PEERS_PER_CHUNK === 0) await nextTurn();
    }
    return rows;
  }
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
