// wg(8) configuration files (`wg setconf` format) for --config, loaded as wg(8) loads them:
// the whole file is parsed and every value checked first (parseConfig), host names in
// Endpoint lines are resolved (resolveEndpoints), and only then is anything applied, as one
// UAPI `set` request (configToUapi / applyConfig) through the same UapiSession the socket
// uses. A file with any error changes nothing (and of a checked file, the device calls that
// can still fail are made first: configToUapi). Errors name the file, the line and the value,
// in wg(8)'s words ("AllowedIP is not in the correct format: `10.0.0.2/33'"); key values are
// never repeated. Values are checked with the parsers the UAPI applies them with, so a file
// that passes cannot fail half-way on a malformed line. wg-quick-only keys (Address, DNS,
// MTU, Table, Pre/PostUp/Down, SaveConfig) are accepted and ignored, as `wg` does after
// `wg-quick strip`.
import dns from 'node:dns';
import fs from 'node:fs';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { formatAddress, parseAddress, parsePrefix } from './protocol/ipaddr.js';
import { type UapiDevice, UapiSession, parseUint } from './uapi/protocol.js';
import { FEED_SLICE } from './uapi/server.js';
import { resolveMetricsSettings, type MetricsSettings } from './metrics/config.js';
import { errorText } from './error-text.js';

export class ConfigError extends Error {
  constructor(readonly file: string, readonly line: number, readonly detail: string) {
    super(`${file}:${line}: ${detail}`);
    this.name = 'ConfigError';
  }
}

export interface ConfigEndpoint {
  /** As written after "Endpoint =". */
  value: string;
  host: string;
  port: number;
  line: number;
  /** UAPI form ("1.2.3.4:51820", "[fd00::1]:51820"): set for address literals, and by resolveEndpoints for host names. */
  address: string | null;
}

export interface ConfigPeer {
  /** Line of the [Peer] header. */
  line: number;
  /** Keys in hex, as UAPI takes them. */
  publicKey: string;
  presharedKey: string | null;
  endpoint: ConfigEndpoint | null;
  persistentKeepalive: number | null;
  /** "addr/cidr" as written ("/32" or "/128" added when missing). */
  allowedIps: string[];
}

export interface WgConfig {
  file: string;
  privateKey: string | null;
  listenPort: number | null;
  fwmark: number | null;
  peers: ConfigPeer[];
}

const WG_QUICK_KEYS = new Set(['address', 'dns', 'mtu', 'table', 'preup', 'postup', 'predown', 'postdown', 'saveconfig']);

/** `wg`'s quoting of a value in an error message. */
const q = (s: string): string => `\`${s}'`;

function keyToHex(b64: string): string | null {
  if (!/^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/.test(b64)) return null;
  return Buffer.from(b64, 'base64').toString('hex');
}

/** "a.b.c.d:port" / "[v6]:port" for UAPI, or null if host is not an address literal (a zone is dropped, as the UAPI does). */
function literalEndpoint(host: string, port: number): string | null {
  const addr = parseAddress(host.replace(/%.*$/, ''));
  if (addr === null) return null;
  return addr.length === 4 ? `${formatAddress(addr)}:${port}` : `[${formatAddress(addr)}]:${port}`;
}

/** Splits "host:port" / "[host]:port" as wg(8) does (the last ':' of an unbracketed value). */
function parseEndpointValue(value: string, line: number, file: string): ConfigEndpoint {
  const fail = (detail: string): never => { throw new ConfigError(file, line, detail); };
  if (value === '') fail('Unable to parse empty endpoint');
  let host: string;
  let portText: string;
  if (value.startsWith('[')) {
    const close = value.indexOf(']');
    if (close < 0) fail(`Unable to find matching brace of endpoint: ${q(value)}`);
    if (value[close + 1] !== ':' || close + 2 === value.length) fail(`Unable to find port of endpoint: ${q(value)}`);
    host = value.slice(1, close);
    portText = value.slice(close + 2);
  } else {
    const colon = value.lastIndexOf(':');
    if (colon < 0 || colon === value.length - 1) fail(`Unable to find port of endpoint: ${q(value)}`);
    host = value.slice(0, colon);
    portText = value.slice(colon + 1);
  }
  const port = parseUint(portText, 0xffff);
  if (port === null) fail(`Endpoint port is not a number from 0 to 65535: ${q(value)}`);
  if (host === '' || /\s/.test(host)) fail(`Endpoint host is neither an address nor a host name: ${q(value)}`);
  return { value, host, port: port as number, line, address: literalEndpoint(host, port as number) };
}

/**
 * Parses and checks a whole configuration file; throws ConfigError at the first bad line.
 * Endpoints that name a host are left unresolved (address null): see resolveEndpoints.
 */
export function parseConfig(text: string, file = 'config'): WgConfig {
  const config: WgConfig = { file, privateKey: null, listenPort: null, fwmark: null, peers: [] };
  const peers: Array<Omit<ConfigPeer, 'publicKey'> & { publicKey: string | null }> = [];
  let section: 'interface' | 'peer' | null = null;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const n = i + 1;
    const fail = (detail: string): never => { throw new ConfigError(file, n, detail); };
    const raw = lines[i]!.replace(/#.*$/, '').trim();
    if (raw === '') continue;
    if (/^\[interface\]$/i.test(raw)) { section = 'interface'; continue; }
    if (/^\[peer\]$/i.test(raw)) {
      section = 'peer';
      peers.push({ line: n, publicKey: null, presharedKey: null, endpoint: null, persistentKeepalive: null, allowedIps: [] });
      continue;
    }
    const eq = raw.indexOf('=');
    // The line is not repeated: it could be a mistyped key line with a key in it.
    if (eq < 0) fail('Line unrecognized: expected Key = Value');
    const name = raw.slice(0, eq).trim();
    const key = name.toLowerCase();
    const value = raw.slice(eq + 1).trim();
    if (section === null) fail(`Line unrecognized: ${q(name)} outside of an [Interface] or [Peer] section`);
    if (section === 'interface') {
      switch (key) {
        case 'privatekey':
          config.privateKey = keyToHex(value) ?? fail('PrivateKey is not the correct length or format');
          break;
        case 'listenport':
          config.listenPort = parseUint(value, 0xffff) ?? fail(`ListenPort is not a port number from 0 to 65535: ${q(value)}`);
          break;
        case 'fwmark': {
          const v = value === 'off' ? 0 : /^(0x[0-9a-f]{1,8}|[0-9]{1,10})$/i.test(value) ? Number(value) : NaN;
          if (!(v >= 0 && v <= 0xffffffff)) fail(`Fwmark is neither 0/off nor 0-0xffffffff: ${q(value)}`);
          config.fwmark = v;
          break;
        }
        default:
          if (!WG_QUICK_KEYS.has(key)) fail(`Line unrecognized: unknown key ${q(name)} in [Interface]`);
      }
      continue;
    }
    const peer = peers[peers.length - 1]!;
    switch (key) {
      case 'publickey':
        peer.publicKey = keyToHex(value) ?? fail('PublicKey is not the correct length or format');
        break;
      case 'presharedkey':
        peer.presharedKey = keyToHex(value) ?? fail('PresharedKey is not the correct length or format');
        break;
      case 'endpoint':
        peer.endpoint = parseEndpointValue(value, n, file);
        break;
      case 'persistentkeepalive': {
        const v = value === 'off' ? 0 : parseUint(value, 0xffff);
        if (v === null) fail(`Persistent keepalive interval is neither 0/off nor 1-65535: ${q(value)}`);
        peer.persistentKeepalive = v;
        break;
      }
      case 'allowedips':
        for (const p of value.split(',').map((s) => s.trim()).filter(Boolean)) {
          const withCidr = p.includes('/') ? p : `${p}/${p.includes(':') ? 128 : 32}`;
          if (parsePrefix(withCidr) === null) fail(`AllowedIP is not in the correct format: ${q(p)}`);
          peer.allowedIps.push(withCidr);
        }
        break;
      default:
        fail(`Line unrecognized: unknown key ${q(name)} in [Peer]`);
    }
  }
  for (const p of peers) {
    if (p.publicKey === null) throw new ConfigError(file, p.line, 'A peer is missing a public key');
    config.peers.push({ ...p, publicKey: p.publicKey });
  }
  return config;
}

/**
 * Resolves the host names in Endpoint lines, as wg(8) does when it reads a file: the first
 * address getaddrinfo gives (node:dns lookup, so /etc/hosts applies). Throws ConfigError
 * naming the host and its line if one does not resolve.
 */
export async function resolveEndpoints(config: WgConfig): Promise<void> {
  await Promise.all(config.peers.map(async (peer) => {
    const ep = peer.endpoint;
    if (ep === null || ep.address !== null) return;
    let address: string;
    try {
      address = (await dns.promises.lookup(ep.host)).address;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? errorText(err);
      throw new ConfigError(config.file, ep.line, `Unable to resolve endpoint host ${q(ep.host)} (${code}): ${q(ep.value)}`);
    }
    ep.address = literalEndpoint(address, ep.port);
    if (ep.address === null) throw new ConfigError(config.file, ep.line, `Endpoint host ${q(ep.host)} resolved to ${q(address)}, which is neither IPv4 nor IPv6`);
  }));
}

/**
 * The UAPI `set` request for a checked, resolved configuration. Without `currentPeers` it is
 * what `wg setconf` sends (replace_peers=true). With the public keys (hex) of the peers the
 * device has now, it is what `wg syncconf` does: no replace_peers, peers absent from the file
 * removed, the others updated in place — their sessions are kept. As with wg(8), a setting
 * the file leaves out (ListenPort, FwMark, PrivateKey) is left as it is. The only device
 * calls that can fail on a checked file come first: listen_port (a port that is taken), then
 * fwmark; a failure of the first leaves everything as it was.
 */
export function configToUapi(config: WgConfig, currentPeers?: Iterable<string>): string {
  const out: string[] = ['set=1'];
  if (config.listenPort !== null) out.push(`listen_port=${config.listenPort}`);
  if (config.fwmark !== null) out.push(`fwmark=${config.fwmark}`);
  if (config.privateKey !== null) out.push(`private_key=${config.privateKey}`);
  if (currentPeers) {
    const wanted = new Set(config.peers.map((p) => p.publicKey));
    for (const hex of currentPeers) if (!wanted.has(hex)) out.push(`public_key=${hex}`, 'remove=true');
  } else {
    out.push('replace_peers=true');
  }
  for (const p of config.peers) {
    out.push(`public_key=${p.publicKey}`, 'replace_allowed_ips=true');
    if (p.presharedKey !== null) out.push(`preshared_key=${p.presharedKey}`);
    else if (currentPeers) out.push(`preshared_key=${'0'.repeat(64)}`);
    if (p.endpoint !== null) {
      if (p.endpoint.address === null) throw new Error(`${config.file}:${p.endpoint.line}: endpoint host not resolved`);
      out.push(`endpoint=${p.endpoint.address}`);
    }
    if (p.persistentKeepalive !== null) out.push(`persistent_keepalive_interval=${p.persistentKeepalive}`);
    for (const ip of p.allowedIps) out.push(`allowed_ip=${ip}`);
  }
  return out.join('\n') + '\n\n';
}

/** A --config file read, checked and resolved, with the metrics settings its comments carry; nothing applied yet. */
export interface LoadedConfig {
  config: WgConfig;
  metrics: MetricsSettings;
}

/**
 * Reads, checks and resolves `file` (ConfigError, or the read error, on failure), and works
 * out the metrics settings from `cliMetrics` (--metrics), its comments and the environment.
 */
export async function loadConfigFile(file: string, cliMetrics: string | null): Promise<LoadedConfig> {
  const text = await fs.promises.readFile(file, 'utf8');
  const config = parseConfig(text, file);
  await resolveEndpoints(config);
  return { config, metrics: resolveMetricsSettings(cliMetrics, text) };
}

/** Peers' states read per event-loop turn when a reload lists the current peers. */
const PEERS_PER_TURN = 2000;

/** The device's peers' public keys in hex, read PEERS_PER_TURN per event-loop turn (a concentrator has 100,000). */
async function peerKeysHex(device: UapiDevice): Promise<string[]> {
  const keys: string[] = [];
  for (const p of device.getState().peers) {
    keys.push(p.publicKeyHex ?? Buffer.from(p.publicKey).toString('hex'));
    if (keys.length % PEERS_PER_TURN === 0) await nextTurn();
  }
  return keys;
}

/**
 * Applies a checked configuration to a device: 'set' replaces everything (`wg setconf`),
 * 'sync' applies only the difference and keeps untouched sessions (`wg syncconf`). The request
 * is fed FEED_SLICE bytes per event-loop turn, as the UAPI socket feeds a client's (the main
 * thread also routes every packet); the daemon runs a reload while no UAPI client is inside a
 * set (UapiServer.exclusive). Rejects with the device's reason and errno if it refuses.
 */
export async function applyConfig(device: UapiDevice, config: WgConfig, mode: 'set' | 'sync' = 'set'): Promise<void> {
  const current = mode === 'sync' ? await peerKeysHex(device) : undefined;
  let reason = '';
  const session = new UapiSession(device, (level, msg) => { if (level === 'error') reason = msg; });
  const request = Buffer.from(configToUapi(config, current));
  let reply = '';
  for (let at = 0; at < request.length && !session.closed; at += FEED_SLICE) {
    if (at !== 0) await nextTurn();
    reply += Buffer.from(session.feed(request.subarray(at, at + FEED_SLICE)).output).toString();
  }
  const m = reply.match(/errno=(-?\d+)/);
  if (!m || m[1] !== '0') throw new Error(`${config.file}: the device refused the configuration: ${reason || 'no reason given'} (errno=${m?.[1] ?? '?'})`);
}
