// The send path's rules (TUN → UDP), in one place, as wireguard-go's send.go and the kernel's
// send.c hold theirs. Main-thread stages of the TUN and LOCAL send rings (pipeline.ts):
//
//   route()     TUN ring stage 2, in ring order, for every packet the TUN reader read: destination
//               address → peer (longest-prefix match in the allowed-IPs trie); no peer: dropped
//               (no_peer_for_destination). No usable keypair or no endpoint yet: the packet is
//               staged on the peer and a handshake starts (engine.stage). Else the nonce (the
//               keypair's next send counter) is assigned here, before any worker sees the packet,
//               the 16-byte transport header and zero padding (to a multiple of 16, never past
//               the MTU) are written in front of and behind it, and the peer's endpoint (12 words:
//               address, port, sticky source) and socket are copied into the slot.
//   sendLocal() keepalives and staged packets, which main originates: the same, into the LOCAL ring.
//   onSealed()  send rings stage 5, in ring order, after a crypto worker sealed (and usually sent)
//               the message: per-peer counters and timers; a message no worker could send is
//               tried once more from here; a failed seal or a dead worker is counted.
import { type Pipeline, RING_LOCAL, type SlotMeta, SlotState } from './dataplane/pipeline.js';
import { EP_WORDS, M_EP_FAMILY, M_EP_SRC, META_WORDS } from './dataplane/layout.js';
import { type IdlePath } from './idle-path.js';
import { type NativeBind } from './io/bind.js';
import { endpointWordsOf } from './io/endpoint-words.js';
import { Direction } from './protocol/drops.js';
import { type Endpoint, Sent } from './protocol/endpoint.js';
import { type Engine } from './protocol/engine.js';
import { type Keypair } from './protocol/keypair.js';
import { paddedLength, writeTransportHeader } from './protocol/messages.js';
import { type Peer } from './protocol/peer.js';

export interface SendPathContext {
  engine: Engine;
  /** Told each routed packet's peer and destination (the idle lease's candidate). */
  idle: IdlePath;
  bind: NativeBind;
  pipeline(): Pipeline;
  /** The interface MTU now (padding never goes past it). */
  mtu(): number;
}

export class SendPath {
  // Main-only side data per send-ring slot, by ring id (each TUN queue's ring, LOCAL): the peer a
  // message belongs to, and the endpoint object whose words were copied into the slot.
  private readonly slotPeer: (Peer | undefined)[][] = [];
  private readonly slotEndpoint: (Endpoint | undefined)[][] = [];

  /** The endpoint route() last copied into a slot, and its words. */
  private lastEndpoint: Endpoint | null = null;
  private lastWords: Int32Array = new Int32Array(EP_WORDS);

  constructor(private readonly ctx: SendPathContext) {}

  /** TUN ring, stage 2: pick peer, keypair and counter for the packet at data[16, 16+len). */
  route(slot: number, data: Uint8Array, len: number, meta: SlotMeta): boolean {
    const e = this.ctx.engine;
    const version = len > 0 ? data[16]! >> 4 : 0;
    let peer: Peer | undefined;
    if (version === 4 && len >= 20) peer = e.allowedIPs.lookupV4(data, 16 + 16);
    else if (version === 6 && len >= 40) peer = e.allowedIPs.lookupV6(data, 16 + 24);
    else {
      e.drops.count(Direction.Outbound, 'malformed');
      return false;
    }
    if (!peer) {
      e.drops.count(Direction.Outbound, 'no_peer_for_destination');
      return false;
    }
    const kp = e.sendKeypair(peer);
    const ep = peer.endpoint;
    if (!kp || !ep || kp.keyId < 0) {
      e.stage(peer, data.subarray(16, 16 + len));
      return false;
    }
    const padded = paddedLength(len, this.ctx.mtu());
    if (16 + padded + 16 > data.length) {
      e.drops.count(Direction.Outbound, 'too_big');
      return false;
    }
    const counter = kp.sendCounter++;
    this.ctx.idle.note(peer, version, data, version === 4 ? 16 + 16 : 16 + 24);
    writeTransportHeader(data, kp.remoteIndex, counter);
    for (let i = 16 + len; i < 16 + padded; i++) data[i] = 0; // < 16 bytes: a loop beats fill()'s call
    meta.setSeal(padded, kp.keyId, counter >>> 0, Math.floor(counter / 0x1_0000_0000), peer.id);
    if (ep !== this.lastEndpoint) { // consecutive packets mostly go to one peer: skip the cache lookup
      this.lastEndpoint = ep;
      this.lastWords = endpointWordsOf(ep);
    }
    const words = this.lastWords;
    const w = meta.metaWords;
    for (let i = 0, b = meta.base + M_EP_FAMILY; i < EP_WORDS; i++) w[b + i] = words[i]!;
    meta.sendFd = this.ctx.bind.fdFor(ep.family);
    (this.slotPeer[meta.ring] ??= [])[slot] = peer;
    (this.slotEndpoint[meta.ring] ??= [])[slot] = ep;
    return true;
  }

  /** Keepalives and staged packets: sealed (and sent) by a worker through the LOCAL ring. Returns the message length, or -1. */
  sendLocal(peer: Peer, kp: Keypair, counter: number, plaintext: Uint8Array): number {
    const ep = peer.endpoint;
    if (!ep || kp.keyId < 0) { // no endpoint yet, or the session's keys found no key-table slot
      this.ctx.engine.drops.count(Direction.Outbound, ep ? 'no_session' : 'no_endpoint');
      return -1;
    }
    const p = this.ctx.pipeline();
    const padded = paddedLength(plaintext.length, this.ctx.mtu());
    const slot = p.reserveLocal();
    if (slot < 0 || 16 + padded + 16 > p.slotBytes) {
      this.ctx.engine.drops.count(Direction.Outbound, slot < 0 ? 'ring_full' : 'too_big');
      return -1;
    }
    const data = p.localData(slot);
    writeTransportHeader(data, kp.remoteIndex, counter);
    data.set(plaintext, 16);
    data.fill(0, 16 + plaintext.length, 16 + padded);
    (this.slotPeer[RING_LOCAL] ??= [])[slot] = peer;
    (this.slotEndpoint[RING_LOCAL] ??= [])[slot] = ep;
    p.localMeta(slot).set(endpointWordsOf(ep), slot * META_WORDS + M_EP_FAMILY);
    p.publishLocal(slot, padded, kp.keyId, peer.id, counter >>> 0, Math.floor(counter / 0x1_0000_0000), this.ctx.bind.fdFor(ep.family));
    return 16 + padded + 16;
  }

  /** Send rings, in ring order: the sealed message went out from a worker (`sent`), or goes out now. */
  onSealed(slot: number, data: Uint8Array, msgLen: number, ok: boolean, meta: SlotMeta, sent: boolean): boolean {
    const e = this.ctx.engine;
    const peers = this.slotPeer[meta.ring];
    const endpoints = this.slotEndpoint[meta.ring];
    const peer = peers?.[slot];
    const slotEp = endpoints?.[slot];
    if (peers !== undefined) peers[slot] = undefined;
    if (endpoints !== undefined) endpoints[slot] = undefined;
    if (!peer) return false;
    if (!ok) {
      e.drops.count(Direction.Outbound, meta.state === SlotState.DEAD ? 'worker_died' : 'encrypt_failed');
      return false;
    }
    if (peer.removed) {
      if (!sent) e.drops.count(Direction.Outbound, 'no_endpoint');
      return false; // its stats row may already belong to another peer
    }
    if (!sent) { // no worker could send it (socket buffer full, no socket yet): one more try from here
      const ep = peer.endpoint;
      if (!ep) {
        e.drops.count(Direction.Outbound, 'no_endpoint');
        return false;
      }
      const sent = this.ctx.bind.sendTo(ep, data.subarray(0, msgLen));
      if (sent === Sent.No) {
        e.drops.count(Direction.Outbound, 'send_failed');
        return false;
      }
      if (sent === Sent.WithoutSource) e.sourceRefused(peer, ep);
    }
    else if (slotEp !== undefined && slotEp.src !== undefined && slotEp === peer.endpoint) this.checkSourceKept(peer, meta);
    if (meta.ring !== RING_LOCAL) e.transportSent(peer, msgLen, true); // LOCAL: the engine accounted for what it originated
    return false;
  }

  /**
   * The worker's send found the sticky source no longer ours (our address changed) and cleared it
   * in the slot, which was routed with the peer's current endpoint (which has a source): forget it
   * in the endpoint too, so later packets do not try it first. Cheap when nothing changed: the
   * first word compared is the non-zero one.
   */
  private checkSourceKept(peer: Peer, meta: SlotMeta): void {
    const w = meta.metaWords;
    const b = meta.base;
    if (w[b + M_EP_SRC]! !== 0 || w[b + M_EP_SRC + 1]! !== 0 || w[b + M_EP_SRC + 2]! !== 0 || w[b + M_EP_SRC + 3]! !== 0) return;
    this.ctx.engine.sourceRefused(peer, peer.endpoint!);
  }
}
