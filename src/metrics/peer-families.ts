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
  /** Appends this family's lines for one row (label sets come rendered). */
  lines(r: Row, scrapeWall: number): string;
}

/** A series line: name, rendered label set, value as prom-client writes it. */
const line = (name: string, labels: string, value: number): string => `${name}${labels} ${formatValue(value)}\n`;

const COMPATIBLE: Family[] = [
  { name: 'wireguard_sent_bytes_total', type: 'counter', help: 'Bytes sent to the peer: whole WireGuard messages on the wire, handshakes included (wg show transfer).',
    lines: (r) => line('wireguard_sent_bytes_total', r.compat, r.txBytes) },
  { name: 'wireguard_received_bytes_total', type: 'counter', help: 'Bytes received from the peer: whole authenticated WireGuard messages, handshakes included (wg show transfer).',
    lines: (r) => line('wireguard_received_bytes_total', r.compat, r.rxBytes) },
  { name: 'wireguard_latest_handshake_seconds', type: 'gauge', help: 'Unix time of the latest completed handshake with the peer, in seconds; 0 = never.',
    lines: (r) => line('wireguard_latest_handshake_seconds', r.compat, Math.floor(r.handshakeWall / 1000)) },
  { name: 'wireguard_latest_handshake_delay_seconds', type: 'gauge', help: 'Seconds since the latest completed handshake with the peer (since the Unix epoch when there was none, like time() - wireguard_latest_handshake_seconds).',
    lines: (r, now) => line('wireguard_latest_handshake_delay_seconds', r.compat, Math.max(0, (now - r.handshakeWall) / 1000)) },
  { name: 'wireguard_peer_sent_packets_total', type: 'counter', help: 'Transport messages sent to the peer (data and keepalives).',
    lines: (r) => line('wireguard_peer_sent_packets_total', r.ext, r.txPackets) },
  { name: 'wireguard_peer_received_packets_total', type: 'counter', help: 'Authenticated transport messages received from the peer (data and keepalives).',
    lines: (r) => line('wireguard_peer_received_packets_total', r.ext, r.rxPackets) },
];

const MDLAYHER: Family[] = [
  { name: 'wireguard_peer_receive_bytes_total', type: 'counter', help: 'Bytes received from the peer (mdlayher/wireguard_exporter name).',
    lines: (r) => line('wireguard_peer_receive_bytes_total', r.md, r.rxBytes) },
  { name: 'wireguard_peer_transmit_bytes_total', type: 'counter', help: 'Bytes sent to the peer (mdlayher/wireguard_exporter name).',
    lines: (r) => line('wireguard_peer_transmit_bytes_total', r.md, r.txBytes) },
  { name: 'wireguard_peer_last_handshake_seconds', type: 'gauge', help: 'Unix time of the latest completed handshake with the peer, in seconds; 0 = never (mdlayher/wireguard_exporter name).',
    lines: (r) => line('wireguard_peer_last_handshake_seconds', r.md, Math.floor(r.handshakeWall / 1000)) },
  { name: 'wireguard_peer_info', type: 'gauge', help: 'Metadata about a peer; always 1 (mdlayher/wireguard_exporter name).',
    lines: (r) => line('wireguard_peer_info', r.mdInfo, 1) },
  { name: 'wireguard_peer_allowed_ips_info', type: 'gauge', help: 'An allowed IP of a peer; always 1 (mdlayher/wireguard_exporter name).',
    lines: (r) => r.mdAllowed.map((labels) => line('wireguard_peer_allowed_ips_info', labels, 1)).join('') },
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
        text += f.lines(rows[i]!, scrapeWall);
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
