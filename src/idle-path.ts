// The idle path's rules: what main lets native code do with a lone packet while it sleeps, and the
// bookkeeping afterwards (src/dataplane/idle-lease.ts is the lease's layout and the pipeline's
// side; native/idle.h the hooks; bench/IDLE-FASTPATH.md why). Main-thread stages of the pipeline:
//
//   note()    the send and receive paths tell it the peer and the inner address of each packet
//             they routed or accepted (route: the destination; onOpened: the source): the peer
//             a lease is for is the one main last exchanged packets with.
//   grant()   main is about to sleep with quiet rings: if that address still routes to that peer
//             and the peer's current keypair may send and receive, lease them: the address, the
//             keypair's key-table id and indices, IL_MAX send counters reserved from it (taken
//             from kp.sendCounter now, so no other send can use them), the replay window's top,
//             the endpoint's words and socket, the MTU, and when the keypair stops being usable
//             for sending (REKEY_AFTER_TIME for an initiator, else REJECT_AFTER_TIME) and receiving.
//   settle()  main's next turn: what the hooks did is accounted as the send and receive paths
//             would have (transportSent, receiveTransport: counters, timers, the replay window,
//             key freshness); reserved counters no message used go back to the keypair if nothing
//             else has sent with it since.
import { COUNTER_LIMIT, REJECT_AFTER_TIME, REKEY_AFTER_TIME } from './constants.js';
import {
  IL_ADDR, IL_ENGINE_VER, IL_EP, IL_FAMILY, IL_KEY_GEN, IL_KEY_ID, IL_LOCAL_INDEX, IL_MAX, IL_MTU, IL_RECEIVED, IL_RECV_REC, IL_RECV_TOP,
  IL_RECV_UNTIL, IL_REMOTE_INDEX, IL_ROUTE_VER, IL_SEND_END, IL_SEND_FD, IL_SEND_NEXT, IL_SEND_UNTIL, IL_SENT, IL_SENT_LEN, leaseU64,
  monotonicMs, setLeaseU64,
} from './dataplane/idle-lease.js';
import { type NativeBind } from './io/bind.js';
import { endpointWordsOf } from './io/endpoint-words.js';
import { type Endpoint } from './protocol/endpoint.js';
import { type Engine, type PacketSource } from './protocol/engine.js';
import { type Keypair } from './protocol/keypair.js';
import { type Peer } from './protocol/peer.js';

export interface IdlePathContext {
  engine: Engine;
  bind: NativeBind;
  /** The key table's per-id generations (KeyTable.generations). */
  keyGenerations(): Int32Array;
  /** The interface MTU now (what route() pads to). */
  mtu(): number;
}

export class IdlePath {
  /** The peer and inner address main last routed a packet to or accepted one from. */
  private peer: Peer | null = null;
  private family = 0;
  private readonly addr = new Uint8Array(16);
  /** What the lease out now was granted for. */
  private leasePeer: Peer | null = null;
  private leaseKeypair: Keypair | null = null;
  private leaseEnd = 0;
  private readonly source = new LeaseSource();

  constructor(private readonly ctx: IdlePathContext) {}

  /** A packet main routed to `peer` (destination) or accepted from it (source): the address is data[at, at + 4 or 16). */
  note(peer: Peer, version: 4 | 6, data: Uint8Array, at: number): void {
    this.peer = peer;
    this.family = version;
    const a = this.addr;
    a[0] = data[at]!;
    a[1] = data[at + 1]!;
    a[2] = data[at + 2]!;
    a[3] = data[at + 3]!;
    if (version === 6) for (let i = 4; i < 16; i++) a[i] = data[at + i]!;
  }

  /** Fill the lease for the peer last noted, or return false. */
  grant(L: Int32Array): boolean {
    const peer = this.peer;
    const e = this.ctx.engine;
    if (peer === null || peer.removed || peer.staged.length !== 0) return false;
    const routed = this.family === 4 ? e.allowedIPs.lookupV4(this.addr, 0) : e.allowedIPs.lookupV6(this.addr, 0);
    const kp = peer.keypairs.current;
    const ep = peer.endpoint;
    if (routed !== peer || kp === null || kp.keyId < 0 || kp.retired || ep === null) return false;
    const now = e.clock.now();
    const fd = this.ctx.bind.fdFor(ep.family);
    if (!kp.canSend(now) || kp.sendCounter + IL_MAX >= COUNTER_LIMIT || fd < 0) return false;
    const mono = monotonicMs();
    const sendUntil = kp.created + (kp.isInitiator ? REKEY_AFTER_TIME : REJECT_AFTER_TIME);
    const next = kp.sendCounter;
    kp.sendCounter = next + IL_MAX; // reserved: only the hooks use these
    L[IL_ROUTE_VER] = e.allowedIPs.version[0]!;
    L[IL_ENGINE_VER] = e.version[0]!;
    L[IL_KEY_ID] = kp.keyId;
    L[IL_KEY_GEN] = this.ctx.keyGenerations()[kp.keyId]!;
    L[IL_FAMILY] = this.family;
    new Uint8Array(L.buffer, L.byteOffset + IL_ADDR * 4, 16).set(this.addr);
    L[IL_REMOTE_INDEX] = kp.remoteIndex | 0;
    L[IL_LOCAL_INDEX] = kp.localIndex | 0;
    setLeaseU64(L, IL_SEND_NEXT, next);
    setLeaseU64(L, IL_SEND_END, next + IL_MAX);
    setLeaseU64(L, IL_SEND_UNTIL, Math.max(0, mono + sendUntil - now));
    setLeaseU64(L, IL_RECV_UNTIL, Math.max(0, mono + kp.created + REJECT_AFTER_TIME - now));
    setLeaseU64(L, IL_RECV_TOP, kp.replay.highest);
    L.set(endpointWordsOf(ep), IL_EP);
    L[IL_SEND_FD] = fd;
    L[IL_MTU] = this.ctx.mtu();
    this.leasePeer = peer;
    this.leaseKeypair = kp;
    this.leaseEnd = next + IL_MAX;
    this.source.leased = ep;
    return true;
  }

  /** The lease was withdrawn: account for what the hooks did under it, and give back unused counters. */
  settle(L: Int32Array): void {
    const peer = this.leasePeer;
    const kp = this.leaseKeypair;
    this.leasePeer = null;
    this.leaseKeypair = null;
    if (peer === null || kp === null) return;
    const e = this.ctx.engine;
    if (kp.sendCounter === this.leaseEnd) kp.sendCounter = leaseU64(L, IL_SEND_NEXT);
    if (!peer.removed) {
      for (let i = 0; i < L[IL_SENT]!; i++) e.transportSent(peer, L[IL_SENT_LEN + i]!, true);
    }
    for (let i = 0; i < L[IL_RECEIVED]!; i++) {
      const r = IL_RECV_REC + 4 * i;
      e.receiveTransport(kp, leaseU64(L, r), L[r + 2]!, L[r + 3]!, this.source);
    }
    this.source.leased = null;
  }
}

/** Where the hooks' received messages came from: the lease's endpoint (the hook compared the words). */
class LeaseSource implements PacketSource {
  leased: Endpoint | null = null;

  isEndpoint(ep: Endpoint | null): boolean {
    return ep !== null && ep === this.leased;
  }

  endpoint(): Endpoint | null {
    return this.leased;
  }
}
