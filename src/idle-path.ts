// The idle path's rules: what main lets native code do with a lone packet while it sleeps, and the
// bookkeeping afterwards (src/dataplane/idle-lease.ts is the lease's layout and the pipeline's
// side; native/idle.h the hooks; bench/IDLE-FASTPATH.md why). Main-thread stages of the pipeline:
//
//   note()    the send and receive paths tell it the peer and the inner address of each packet
//             they routed or accepted (route: the destination; onOpened: the source): a lease is
//             for the IL_ENTRIES (peer, address) pairs main last exchanged packets with, one entry
//             each (a peer with several addresses in use, e.g. a site's gateway, has several).
//   grant()   main is about to sleep with quiet rings: for each of those whose address still
//             routes to its peer and whose peer's current keypair may send, an entry: the address,
//             the keypair's key-table id and indices, IL_MAX send counters reserved from it (taken
//             from kp.sendCounter now, so no other send can use them; an entry each, disjoint),
//             the replay window's top, the endpoint's words and socket, and when the keypair stops
//             being usable for sending (REKEY_AFTER_TIME for an initiator, else REJECT_AFTER_TIME)
//             and receiving.
//   settle()  main's next turn: what the hooks did is accounted as the send and receive paths
//             would have (transportSent, receiveTransport: counters, timers, the replay window,
//             key freshness); reserved counters no message used go back to the keypair if nothing
//             else has sent with it since (the entries in reverse order, so each range given back
//             lets the one reserved before it be given back too). The timers' state depends on
//             which came last, a send or a receive: the entries are replayed in the order of
//             their last events (IE_LAST, stamped by the hooks), each with the other kind first.
import { COUNTER_LIMIT, REJECT_AFTER_TIME, REKEY_AFTER_TIME } from './constants.js';
import {
  IE_ADDR, IE_EP, IE_FAMILY, IE_KEY_GEN, IE_KEY_ID, IE_LAST, IE_LOCAL_INDEX, IE_RECEIVED, IE_RECV_REC, IE_RECV_TOP, IE_RECV_UNTIL, IE_REMOTE_INDEX,
  IE_SEND_END, IE_SEND_FD, IE_SEND_NEXT, IE_SEND_UNTIL, IE_SENT, IE_SENT_LEN, IE_WORDS, IL_COUNT, IL_ENGINE_VER, IL_ENTRIES, IL_HEADER,
  IL_MAX, IL_MTU, IL_ROUTE_VER, leaseU64, monotonicMs, setLeaseU64,
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

/** A peer main exchanged a packet with, and an inner address of it (the destination or source of that packet). */
interface Note {
  peer: Peer;
  family: 4 | 6;
  readonly addr: Uint8Array;
}

/** Whether note n is for the inner address at data[at, at + 4 or 16). */
function sameAddress(n: Note, version: 4 | 6, data: Uint8Array, at: number): boolean {
  const a = n.addr;
  if (n.family !== version || a[0] !== data[at] || a[1] !== data[at + 1] || a[2] !== data[at + 2] || a[3] !== data[at + 3]) return false;
  if (version === 6) for (let i = 4; i < 16; i++) if (a[i] !== data[at + i]) return false;
  return true;
}

/** What one entry of the lease out now was granted for. */
interface Granted {
  peer: Peer | null;
  keypair: Keypair | null;
  end: number;
}

export class IdlePath {
  /** The (peer, address) pairs main last exchanged packets with, the most recent first (at most IL_ENTRIES, distinct). */
  private readonly notes: Note[] = [];
  private readonly granted: Granted[] = Array.from({ length: IL_ENTRIES }, () => ({ peer: null, keypair: null, end: 0 }));
  private count = 0;
  private readonly order: number[] = [];

  constructor(private readonly ctx: IdlePathContext) {}

  /** A packet main routed to `peer` (destination) or accepted from it (source): the address is data[at, at + 4 or 16). */
  note(peer: Peer, version: 4 | 6, data: Uint8Array, at: number): void {
    const first = this.notes[0];
    if (first !== undefined && first.peer === peer && sameAddress(first, version, data, at)) return; // mostly, under load
    const notes = this.notes;
    const i = notes.findIndex((x) => x.peer === peer && sameAddress(x, version, data, at));
    if (i >= 0) {
      notes.unshift(notes.splice(i, 1)[0]!);
      return;
    }
    const n = notes.length >= IL_ENTRIES ? notes.pop()! : { peer, family: version, addr: new Uint8Array(16) };
    n.peer = peer;
    n.family = version;
    n.addr.set(data.subarray(at, at + (version === 4 ? 4 : 16)));
    notes.unshift(n);
  }

  /** Fill the lease for the peers last noted that may send and receive now; false when none may. */
  grant(L: Int32Array): boolean {
    const e = this.ctx.engine;
    const now = e.clock.now();
    const mono = monotonicMs();
    let n = 0;
    for (let i = 0; i < this.notes.length; i++) {
      if (this.notes[i]!.peer.removed) this.notes.splice(i--, 1);
      else if (this.fill(L, n, this.notes[i]!, now, mono)) n++;
    }
    this.count = n;
    if (n === 0) return false;
    L[IL_ROUTE_VER] = e.allowedIPs.version[0]!;
    L[IL_ENGINE_VER] = e.version[0]!;
    L[IL_MTU] = this.ctx.mtu();
    L[IL_COUNT] = n;
    return true;
  }

  /** The lease was withdrawn: account for what the hooks did under it, and give back unused counters. */
  settle(L: Int32Array): void {
    const n = this.count;
    this.count = 0;
    for (let i = n - 1; i >= 0; i--) {
      const g = this.granted[i]!;
      if (g.keypair!.sendCounter === g.end) g.keypair!.sendCounter = leaseU64(L, IL_HEADER + i * IE_WORDS + IE_SEND_NEXT);
    }
    // The timers' state after an exchange depends on which came last, a send or a receive (a
    // responder's reply leaves no keepalive due and a new handshake armed; an initiator's answer
    // the reverse): the entries in the order of their last events, and in each the other kind
    // first.
    const order = this.order;
    order.length = 0;
    for (let i = 0; i < n; i++) order.push(i);
    order.sort((a, b) => L[IL_HEADER + a * IE_WORDS + IE_LAST]! - L[IL_HEADER + b * IE_WORDS + IE_LAST]!);
    for (const i of order) {
      const g = this.granted[i]!;
      const b = IL_HEADER + i * IE_WORDS;
      if ((L[b + IE_LAST]! & 1) === 0) this.settleReceived(L, b, g);
      this.settleSent(L, b, g);
      if ((L[b + IE_LAST]! & 1) === 1) this.settleReceived(L, b, g);
      g.peer = null;
      g.keypair = null;
    }
  }

  private settleSent(L: Int32Array, b: number, g: Granted): void {
    if (g.peer!.removed) return;
    for (let k = 0; k < L[b + IE_SENT]!; k++) this.ctx.engine.transportSent(g.peer!, L[b + IE_SENT_LEN + k]!, true);
  }

  private settleReceived(L: Int32Array, b: number, g: Granted): void {
    for (let k = 0; k < L[b + IE_RECEIVED]!; k++) {
      const r = b + IE_RECV_REC + 4 * k;
      this.ctx.engine.receiveTransport(g.keypair!, leaseU64(L, r), L[r + 2]!, L[r + 3]!, LEASE_SOURCE);
    }
  }

  /** Entry i of the lease for note n, if its address still routes to its peer and the peer's current keypair may send: true when filled. */
  private fill(L: Int32Array, i: number, n: Note, now: number, mono: number): boolean {
    const e = this.ctx.engine;
    const peer = n.peer;
    if (peer.staged.length !== 0) return false;
    const routed = n.family === 4 ? e.allowedIPs.lookupV4(n.addr, 0) : e.allowedIPs.lookupV6(n.addr, 0);
    const kp = peer.keypairs.current;
    const ep = peer.endpoint;
    if (routed !== peer || kp === null || kp.keyId < 0 || kp.retired || ep === null) return false;
    const fd = this.ctx.bind.fdFor(ep.family);
    if (!kp.canSend(now) || kp.sendCounter + IL_MAX >= COUNTER_LIMIT || fd < 0) return false;
    const b = IL_HEADER + i * IE_WORDS;
    const next = kp.sendCounter;
    kp.sendCounter = next + IL_MAX; // reserved: only the hooks use these
    L[b + IE_KEY_ID] = kp.keyId;
    L[b + IE_KEY_GEN] = this.ctx.keyGenerations()[kp.keyId]!;
    L[b + IE_FAMILY] = n.family;
    new Uint8Array(L.buffer, L.byteOffset + (b + IE_ADDR) * 4, 16).set(n.addr);
    L[b + IE_REMOTE_INDEX] = kp.remoteIndex | 0;
    L[b + IE_LOCAL_INDEX] = kp.localIndex | 0;
    setLeaseU64(L, b + IE_SEND_NEXT, next);
    setLeaseU64(L, b + IE_SEND_END, next + IL_MAX);
    const sendUntil = kp.created + (kp.isInitiator ? REKEY_AFTER_TIME : REJECT_AFTER_TIME);
    setLeaseU64(L, b + IE_SEND_UNTIL, Math.max(0, mono + sendUntil - now));
    setLeaseU64(L, b + IE_RECV_UNTIL, Math.max(0, mono + kp.created + REJECT_AFTER_TIME - now));
    setLeaseU64(L, b + IE_RECV_TOP, kp.replay.highest);
    L.set(endpointWordsOf(ep), b + IE_EP);
    L[b + IE_SEND_FD] = fd;
    const g = this.granted[i]!;
    g.peer = peer;
    g.keypair = kp;
    g.end = next + IL_MAX;
    return true;
  }
}

/**
 * Where the hooks' received messages came from: the peer's endpoint at the grant (the hook
 * compared the words), and still current as far as they are concerned: an endpoint set since
 * (the UAPI, a handshake) bumped the engine's version, after which the hooks took nothing, so it
 * is newer than every message here and settling must not roam back to the old one.
 */
const LEASE_SOURCE: PacketSource = {
  isEndpoint: (ep: Endpoint | null): boolean => ep !== null,
  endpoint: (): Endpoint | null => null,
};
