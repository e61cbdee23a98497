// Metrics settings carried in a wg(8) configuration file as comments, so the same file
// still works with `wg setconf` and `wg-quick` (which ignore comments), the way
// MindFlavor's exporter reads `# friendly_name = …`:
//
//   [Interface]
//   # Metrics = 127.0.0.1:9586          serve /metrics here (the --metrics option wins)
//   # MetricsEndpointLabels = true      add remote_ip/remote_port labels (opt-in)
//   # MetricsMdlayher = true            also export the mdlayher/wireguard_exporter family
//   [Peer]
//   PublicKey = …
//   # friendly_name = alice's laptop    friendly_name label of this peer's series
//
// Keys are case-insensitive; unknown comments are ignored.

import { isIP } from 'node:net';

const HOST_NAME = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** Why `value` (--metrics, `# Metrics =`) is not ADDR:PORT, or null if it is; ADDR is IPv4, [IPv6] or a host name. */
export function listenAddressProblem(value: string): string | null {
  let host: string;
  let port: string;
  const bracketed = value.startsWith('[');
  if (bracketed) {
    const close = value.indexOf(']');
    if (close < 0) return 'no "]" after the IPv6 address: write it as [ADDR]:PORT, like [::1]:9586';
    if (value[close + 1] !== ':') return 'expected [ADDR]:PORT, like [::1]:9586';
    host = value.slice(1, close);
    port = value.slice(close + 2);
  } else {
    const colon = value.lastIndexOf(':');
    if (colon < 0) return 'expected ADDR:PORT';
    host = value.slice(0, colon);
    port = value.slice(colon + 1);
  }
  if (!/^[0-9]{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
    return `port ${JSON.stringify(port)} is not a number from 1 to 65535`;
  }
  if (bracketed) return isIP(host) === 6 ? null : `[${host}] is not an IPv6 address`;
  if (host.includes(':')) return 'IPv6 addresses must be written in brackets, like [::1]:9586';
  if (isIP(host) === 4 || HOST_NAME.test(host)) return null;
  return `${JSON.stringify(host)} is not an address or host name`;
}

export interface MetricsConfig {
  /** ADDR:PORT from `# Metrics =`, or null. */
  listen: string | null;
  endpointLabels: boolean;
  mdlayher: boolean;
  /** Base64 public key → friendly name. */
  friendlyNames: Map<string, string>;
}

const COMMENT_SETTING = /^\s*[#;]\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/;

function truthy(v: string): boolean {
  return /^(1|true|yes|on)$/i.test(v);
}

export function parseMetricsConfig(text: string): MetricsConfig {
  const out: MetricsConfig = { listen: null, endpointLabels: false, mdlayher: false, friendlyNames: new Map() };
  let section: 'interface' | 'peer' | null = null;
  let peerKey: string | null = null;
  let peerName: string | null = null;
  const endPeer = (): void => {
    if (section === 'peer' && peerKey !== null && peerName !== null) out.friendlyNames.set(peerKey, peerName);
    peerKey = peerName = null;
  };
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (/^\[interface\]$/i.test(line)) { endPeer(); section = 'interface'; continue; }
    if (/^\[peer\]$/i.test(line)) { endPeer(); section = 'peer'; continue; }
    const setting = COMMENT_SETTING.exec(line);
    if (setting !== null) {
      const key = setting[1]!.toLowerCase();
      const value = setting[2]!;
      if (section === 'interface') {
        if (key === 'metrics' && value !== '') out.listen = value;
        else if (key === 'metricsendpointlabels') out.endpointLabels = truthy(value);
        else if (key === 'metricsmdlayher') out.mdlayher = truthy(value);
      } else if (section === 'peer' && key === 'friendly_name' && value !== '') {
        peerName = value;
      }
      continue;
    }
    const kv = /^([A-Za-z]+)\s*=\s*([^#\s]+)/.exec(line);
    if (section === 'peer' && kv !== null && kv[1]!.toLowerCase() === 'publickey') peerKey = kv[2]!;
  }
  endPeer();
  return out;
}

export interface MetricsSettings {
  /** ADDR:PORT to serve /metrics on; null = off. */
  listen: string | null;
  endpointLabels: boolean;
  mdlayher: boolean;
  friendlyNames: Map<string, string>;
}

/**
 * Where and how to serve metrics: the --metrics option, else `# Metrics =` in the config
 * file, else WIREPOOL_METRICS; options from the config comments, or from
 * WIREPOOL_METRICS_OPTIONS (comma-separated: endpoint-labels, mdlayher) for set-ups
 * without a config file (wg-quick).
 */
export function resolveMetricsSettings(cliListen: string | null, configText: string | null, env: NodeJS.ProcessEnv = process.env): MetricsSettings {
  const cfg = configText !== null ? parseMetricsConfig(configText) : null;
  const envOpts = new Set((env.WIREPOOL_METRICS_OPTIONS ?? '').split(',').map((s) => s.trim().toLowerCase()).filter((s) => s !== ''));
  return {
    listen: cliListen ?? cfg?.listen ?? (env.WIREPOOL_METRICS || null),
    endpointLabels: (cfg?.endpointLabels ?? false) || envOpts.has('endpoint-labels'),
    mdlayher: (cfg?.mdlayher ?? false) || envOpts.has('mdlayher'),
    friendlyNames: cfg?.friendlyNames ?? new Map(),
  };
}
