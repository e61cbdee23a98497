// wg(8) configuration files (`wg setconf` format) for --config: parsed into the same UAPI
// `set` request `wg setconf` would send, and applied through the UAPI session, so a file
// and the socket share one code path and one set of errors. wg-quick-only keys (Address,
// DNS, MTU, Table, Pre/PostUp/Down, SaveConfig) are accepted and ignored, as `wg` does
// after `wg-quick strip`.
import { isIP } from 'node:net';
import { type UapiDevice, UapiSession } from './uapi/protocol.js';

export class ConfigError extends Error {
  constructor(readonly line: number, message: string) {
    super(`config line ${line}: ${message}`);
    this.name = 'ConfigError';
  }
}

const WG_QUICK_KEYS = new Set(['address', 'dns', 'mtu', 'table', 'preup', 'postup', 'predown', 'postdown', 'saveconfig']);

function keyToHex(b64: string, line: number, what: string): string {
  const buf = Buffer.from(b64, 'base64');
  if (!/^[A-Za-z0-9+/]{43}=$/.test(b64) || buf.length !== 32) throw new ConfigError(line, `${what} is not a base64 32-byte key`);
  return buf.toString('hex');
}

/**
 * The UAPI `set` request for configuration `text`. Without `currentPeers` it is what
 * `wg setconf` sends (replace_peers=true). With the public keys (hex) of the peers the
 * device has now, it is what `wg syncconf` does: no replace_peers, peers absent from the
 * file removed, the others updated in place — their sessions are kept.
 */
export function configToUapi(text: string, currentPeers?: Iterable<string>): string {
  const out: string[] = ['set=1'];
  let section: 'interface' | 'peer' | null = null;
  let sawListenPort = false;
  const lines = text.split(/\r?\n/);
  const device: string[] = [];
  const peers: string[][] = [];
  for (let i = 0; i < lines.length; i++) {
    const n = i + 1;
    const raw = lines[i]!.replace(/#.*$/, '').trim();
    if (raw === '') continue;
    if (/^\[interface\]$/i.test(raw)) { section = 'interface'; continue; }
    if (/^\[peer\]$/i.test(raw)) { section = 'peer'; peers.push([]); continue; }
    const eq = raw.indexOf('=');
    if (eq < 0) throw new ConfigError(n, 'expected Key = Value');
    const key = raw.slice(0, eq).trim().toLowerCase();
    const value = raw.slice(eq + 1).trim();
    if (section === null) throw new ConfigError(n, 'key outside of a section');
    if (section === 'interface') {
      switch (key) {
        case 'privatekey': device.push(`private_key=${keyToHex(value, n, 'PrivateKey')}`); break;
        case 'listenport': {
          if (!/^\d+$/.test(value) || Number(value) > 65535) throw new ConfigError(n, 'ListenPort must be 0..65535');
          device.push(`listen_port=${Number(value)}`); sawListenPort = true; break;
        }
        case 'fwmark': {
          const v = value === 'off' ? 0 : /^(0x[0-9a-f]+|\d+)$/i.test(value) ? Number(value) : NaN;
          if (!(v >= 0 && v <= 0xffffffff)) throw new ConfigError(n, 'FwMark must be a 32-bit number or "off"');
          device.push(`fwmark=${v}`); break;
        }
        default:
          if (!WG_QUICK_KEYS.has(key)) throw new ConfigError(n, `unknown key "${raw.slice(0, eq).trim()}" in [Interface]`);
      }
      continue;
    }
    const peer = peers[peers.length - 1]!;
    switch (key) {
      case 'publickey': peer.unshift(`public_key=${keyToHex(value, n, 'PublicKey')}`); break;
      case 'presharedkey': peer.push(`preshared_key=${keyToHex(value, n, 'PresharedKey')}`); break;
      case 'endpoint': {
        const m = value.match(/^\[([^\]]+)\]:(\d+)$/) ?? value.match(/^([^:]+):(\d+)$/);
        if (!m || !isIP(m[1]!.replace(/%.*$/, '')) || Number(m[2]) > 65535) {
          throw new ConfigError(n, 'Endpoint must be a literal IPv4:port or [IPv6]:port (resolve host names first)');
        }
        peer.push(`endpoint=${value}`); break;
      }
      case 'persistentkeepalive': {
        const v = value === 'off' ? 0 : /^\d+$/.test(value) ? Number(value) : NaN;
        if (!(v >= 0 && v <= 65535)) throw new ConfigError(n, 'PersistentKeepalive must be 0..65535 or "off"');
        peer.push(`persistent_keepalive_interval=${v}`); break;
      }
      case 'allowedips':
        for (const p of value.split(',').map((s) => s.trim()).filter(Boolean)) {
          if (!/^[0-9a-fA-F:.]+\/\d+$/.test(p) && !/^[0-9a-fA-F:.]+$/.test(p)) throw new ConfigError(n, `bad AllowedIPs entry "${p}"`);
          const withCidr = p.includes('/') ? p : `${p}/${isIP(p) === 6 ? 128 : 32}`;
          peer.push(`allowed_ip=${withCidr}`);
        }
        break;
      default:
        throw new ConfigError(n, `unknown key "${raw.slice(0, eq).trim()}" in [Peer]`);
    }
  }
  if (!sawListenPort) device.push('listen_port=0');
  out.push(...device);
  if (!currentPeers) out.push('replace_peers=true');
  const wanted = new Set<string>();
  for (const [i, p] of peers.entries()) {
    if (!p[0]?.startsWith('public_key=')) throw new ConfigError(0, `[Peer] #${i + 1} has no PublicKey`);
    wanted.add(p[0].slice('public_key='.length));
    if (currentPeers && !p.some((l) => l.startsWith('preshared_key='))) p.push(`preshared_key=${'0'.repeat(64)}`);
    out.push(p[0], 'replace_allowed_ips=true', ...p.slice(1));
  }
  if (currentPeers) {
    for (const hex of currentPeers) if (!wanted.has(hex)) out.push(`public_key=${hex}`, 'remove=true');
  }
  return out.join('\n') + '\n\n';
}

/**
 * Apply a configuration file to a device: 'set' replaces everything (`wg setconf`),
 * 'sync' applies only the difference and keeps untouched sessions (`wg syncconf`).
 * Throws ConfigError / Error with the errno on failure.
 */
export function applyConfigFile(device: UapiDevice, text: string, mode: 'set' | 'sync' = 'set'): void {
  const current = mode === 'sync' ? device.getState().peers.map((p) => Buffer.from(p.publicKey).toString('hex')) : undefined;
  const session = new UapiSession(device);
  const step = session.feed(Buffer.from(configToUapi(text, current)));
  const reply = Buffer.from(step.output).toString();
  const m = reply.match(/errno=(-?\d+)/);
  if (!m || m[1] !== '0') throw new Error(`configuration rejected by the device (errno=${m?.[1] ?? '?'})`);
}
