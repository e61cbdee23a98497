// The UAPI's view of one interface (spec §9): what `wg set` / `wg show` read and change, mapped
// onto the engine (peers, keys, allowed IPs, endpoints, keepalives) and onto the few things the
// Device owns outside it (the listen port's sockets, the fwmark, the timers to re-arm after a
// change). The session (protocol.ts) decides what each request line means and in which order;
// this file only applies it, and turns a socket failure into wireguard-go's errno (-98).
import { clampPrivateKey, isZeroKey } from '../crypto/crypto.js';
import { endpointFromBytes, formatEndpoint } from '../protocol/endpoint.js';
import { type Engine } from '../protocol/engine.js';
import { type Peer, Stat, STATS_PER_PEER } from '../protocol/peer.js';
import { type UapiDevice, type UapiDeviceState, UapiError, type UapiPeerState } from './protocol.js';
import { errorText } from '../error-text.js';

/** What the adapter needs of the Device beyond its engine. */
export interface UapiDeviceHost {
  readonly engine: Engine;
  /** The bound UDP port (0: not bound). */
  listenPort(): number;
  /** Bind the listen port (0: a fresh random one); throws, sockets unchanged, when it cannot. */
  bindPort(port: number): void;
  fwmark(): number;
  /** Mark the sockets' packets (SO_MARK); throws when the kernel refuses. */
  applyFwmark(mark: number): void;
  /** A request was applied (successfully or not): re-arm the engine's timers. */
  committed(): void;
  /** Base64 public key → friendly name, for log lines naming a peer. */
  peerNames(): ReadonlyMap<string, string>;
  /** A failure worth an operator's attention (never a key). */
  logError(msg: string, fields: Record<string, unknown>): void;
}

export class DeviceUapi implements UapiDevice {
  constructor(private readonly host: UapiDeviceHost) {}

  get peerNames(): ReadonlyMap<string, string> {
    return this.host.peerNames();
  }

  getState(): UapiDeviceState {
    const h = this.host;
    return { privateKey: h.engine.privateKey, listenPort: h.listenPort(), fwmark: h.fwmark(), peers: this.peerStates() };
  }

  /** Each peer's UAPI state, read when the get reply reaches it (UapiSession writes a reply in steps, holding the UAPI lock). */
  private *peerStates(): Generator<UapiPeerState> {
    const e = this.host.engine;
    for (const peer of e.peers()) {
      const s = peer.id * STATS_PER_PEER;
      const wall = peer.lastHandshakeWall;
      const psk = peer.handshake.presharedKey;
      yield {
        publicKey: peer.publicKey,
        publicKeyHex: peer.publicKeyHex,
        presharedKey: isZeroKey(psk) ? null : psk,
        endpoint: peer.endpoint ? formatEndpoint(peer.endpoint) : null,
        lastHandshakeTimeSec: Math.floor(wall / 1000),
        lastHandshakeTimeNsec: (wall % 1000) * 1_000_000,
        txBytes: e.stats[s + Stat.TxBytes]!,
        rxBytes: e.stats[s + Stat.RxBytes]!,
        persistentKeepaliveInterval: peer.persistentKeepalive,
        allowedIps: e.allowedIPs.textForPeer(peer),
      };
    }
  }

  publicKey(): Uint8Array | null {
    return this.host.engine.publicKey;
  }

  setPrivateKey(key: Uint8Array | null): void {
    this.host.engine.setPrivateKey(key ? clampPrivateKey(Uint8Array.from(key)) : null);
  }

  setListenPort(port: number): void {
    if (port !== 0 && this.host.listenPort() === port) return;
    // Synchronous: the new sockets are open before the reply (and before anything this same
    // request configures is sent); a port that is taken is refused like wireguard-go (-98) and
    // the current sockets stay. 0 picks a fresh random port.
    try {
      this.host.bindPort(port);
    } catch (err) {
      this.host.logError('cannot bind listen port', { port, error: errorText(err) });
      throw new UapiError(-98, `cannot bind listen port ${port}: ${errorText(err)}`);
    }
  }

  setFwmark(mark: number): void {
    if (mark === this.host.fwmark()) return;
    try {
      this.host.applyFwmark(mark);
    } catch (err) {
      throw new UapiError(-98, `cannot apply fwmark: ${errorText(err)}`);
    }
  }

  replacePeers(): void {
    this.host.engine.removeAllPeers();
  }

  hasPeer(pub: Uint8Array): boolean {
    return this.host.engine.peerByKey(pub) !== undefined;
  }

  createPeer(pub: Uint8Array): void {
    this.host.engine.addPeer(pub);
  }

  removePeer(pub: Uint8Array): void {
    const peer = this.host.engine.peerByKey(pub);
    if (peer) this.host.engine.removePeer(peer);
  }

  setPresharedKey(pub: Uint8Array, key: Uint8Array | null): void {
    this.host.engine.setPresharedKey(this.mustPeer(pub), key);
  }

  setEndpoint(pub: Uint8Array, host: Uint8Array, port: number): void {
    this.host.engine.setEndpoint(this.mustPeer(pub), endpointFromBytes(host, port));
  }

  setPersistentKeepalive(pub: Uint8Array, seconds: number): void {
    this.host.engine.setPersistentKeepalive(this.mustPeer(pub), seconds);
  }

  replaceAllowedIps(pub: Uint8Array): void {
    this.host.engine.allowedIPs.removeByPeer(this.mustPeer(pub));
  }

  addAllowedIp(pub: Uint8Array, addr: Uint8Array, cidr: number): void {
    this.host.engine.allowedIPs.insert(addr, cidr, this.mustPeer(pub));
  }

  removeAllowedIp(pub: Uint8Array, addr: Uint8Array, cidr: number): void {
    this.host.engine.allowedIPs.remove(addr, cidr, this.mustPeer(pub));
  }

  commit(): void {
    this.host.committed();
  }

  private mustPeer(pub: Uint8Array): Peer {
    const peer = this.host.engine.peerByKey(pub);
    if (!peer) throw new UapiError(-55, 'peer vanished during configuration');
    return peer;
  }
}
