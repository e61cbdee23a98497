// The receive path's rules (UDP → TUN), in one place, as wireguard-go's receive.go and the
// kernel's receive.c hold theirs. Main-thread stages of the RECV ring (pipeline.ts):
//
//   classify()  stage 2, in ring order, for every datagram the UDP reader received: the type and
//               exact size filter (malformed: dropped); handshake messages (initiation, response,
//               cookie reply) are screened (Engine.screenHandshake: mac1; under load mac2, else a
//               cookie reply at once, and the per-source rate limiter) and only then copied out to
//               the handshake queue with their source endpoint;
//               a transport message's receiver index → keypair (unknown: dropped, unknown_index),
//               whose id and the message's counter go into the slot for the crypto worker.
//   onOpened()  stage 3, in ring order, after a worker authenticated and decrypted it: the replay
//               window (after decryption, never before), roaming (the peer's endpoint becomes
//               where this authenticated packet came from, including our local address it was
//               sent to), key confirmation and timers (engine.receiveTransport); then the inner IP
//               header (length ≤ plaintext, padding trimmed) and cryptokey routing's source check:
//               the inner source address must route back to the peer whose key decrypted it.
//               Returns the length to write to TUN, or -1 (dropped and counted, or a keepalive).
//               It reads only the slot's meta line, never its data: the UDP reader put the
//               receiver index there (M_RECEIVER) and the thread that opened the message a copy of
//               the plaintext's first 24 bytes (M_INNER_HEAD), so the inner header does not cost
//               main a cache line pulled from another core per packet.
import { MESSAGE_TRANSPORT } from './constants.js';
import { type SlotMeta, SlotState } from './dataplane/pipeline.js';
import { M_EP_FAMILY } from './dataplane/layout.js';
import { endpointFromWords, endpointWordsEqual, endpointWordsOf } from './io/endpoint-words.js';
import { type HandshakeQueue } from './handshake-queue.js';
import { type IdlePath } from './idle-path.js';
import { Direction } from './protocol/drops.js';
import { type Endpoint } from './protocol/endpoint.js';
import { type Engine, type PacketSource, Screened } from './protocol/engine.js';
import { type Keypair } from './protocol/keypair.js';
import { messageType, readU32, Transport } from './protocol/messages.js';
import { type Peer } from './protocol/peer.js';

export class ReceivePath {
  /** Main-only side data per RECV slot: the keypair classify() found. */
  private readonly slotKeypair: (Keypair | undefined)[] = [];
  /** The slot onOpened() is checking, as the engine's PacketSource (one reused object). */
  private readonly source = new RecvSlotSource();

  constructor(
    private readonly engine: Engine,
    private readonly handshakes: HandshakeQueue,
    /** Installed keypair by key-table id (the UDP reader keyed the slot itself: fast path). */
    private readonly keypairById: (keyId: number) => Keypair | undefined,
    /** Told each accepted packet's peer and source (the idle lease's candidate). */
    private readonly idle: IdlePath,
  ) {}

  /** Stage 2: what is this datagram (data[0, len), its sender in the endpoint words)? True: open it. */
  classify(slot: number, data: Uint8Array, len: number, meta: SlotMeta): boolean {
    const e = this.engine;
    const type = messageType(data, len);
    if (type === 0) {
      e.drops.count(Direction.Inbound, 'malformed');
      return false;
    }
    if (type !== MESSAGE_TRANSPORT) {
      const src = endpointFromWords(meta.metaWords, meta.base + M_EP_FAMILY);
      if (!src) {
        e.drops.count(Direction.Inbound, 'malformed');
        return false;
      }
      // §7 before a queue slot: mac1; under load mac2 (else a cookie reply, sent now) and the rate limiter.
      const msg = data.subarray(0, len);
      const screened = e.screenHandshake(msg, src, this.handshakes.isUnderLoad());
      if (screened === Screened.Drop) this.handshakes.refused(type);
      else if (!this.handshakes.push({ msg: msg.slice(), src, checked: screened === Screened.Checked })) e.drops.count(Direction.Inbound, 'queue_full');
      return false;
    }
    const kp = e.lookupReceive(readU32(data, Transport.RECEIVER));
    if (!kp || kp.keyId < 0) return false;
    meta.keypairId = kp.keyId;
    meta.peerId = kp.peerId;
    meta.counterLo = readU32(data, Transport.COUNTER);
    meta.counterHi = readU32(data, Transport.COUNTER + 4);
    this.slotKeypair[slot] = kp;
    return true;
  }

  /** Stage 3: replay, roaming, timers and the cryptokey-routing source check. */
  onOpened(slot: number, data: Uint8Array, plen: number, ok: boolean, meta: SlotMeta): number {
    const e = this.engine;
    let kp = this.slotKeypair[slot];
    this.slotKeypair[slot] = undefined;
    if (kp === undefined) { // keyed by the UDP reader: its key id must still be this index's session
      kp = this.keypairById(meta.keypairId);
      if (kp === undefined || kp.localIndex !== meta.receiver) return this.dropKeyless('unknown_index');
      if (!kp.canReceive(e.clock.now())) return this.dropKeyless('too_old');
    }
    if (!ok) {
      const st = meta.state;
      e.drops.count(Direction.Inbound, st === SlotState.DEAD ? 'worker_died' : st === SlotState.FILLED ? 'unknown_index' : 'decrypt_failed');
      return -1;
    }
    const counter = meta.counterLo + meta.counterHi * 0x1_0000_0000;
    const peer = e.receiveTransport(kp, counter, meta.length, plen, this.source.at(meta));
    if (!peer || plen === 0) return -1; // dropped (counted), or a keepalive
    // The inner IP header, as the opener copied it into the slot's meta (layout.ts M_INNER_HEAD).
    const head = meta.metaBytes;
    const h = meta.innerHead;
    const version = head[h]! >> 4;
    let innerLen: number;
    let src: Peer | undefined;
    if (version === 4 && plen >= 20) {
      innerLen = (head[h + 2]! << 8) | head[h + 3]!;
      if (innerLen < 20 || innerLen > plen) return this.drop('malformed');
      src = e.allowedIPs.lookupV4(head, h + 12);
    } else if (version === 6 && plen >= 40) {
      innerLen = ((head[h + 4]! << 8) | head[h + 5]!) + 40;
      if (innerLen > plen) return this.drop('malformed');
      src = e.allowedIPs.lookupV6(head, h + 8);
    } else {
      return this.drop('malformed');
    }
    if (src !== peer) return this.drop('source_not_allowed');
    this.idle.note(peer, version, head, version === 4 ? h + 12 : h + 8);
    return innerLen;
  }

  private dropKeyless(reason: 'unknown_index' | 'too_old'): number {
    this.engine.drops.count(Direction.Inbound, reason);
    return -1;
  }

  private drop(reason: 'malformed' | 'source_not_allowed'): number {
    this.engine.drops.count(Direction.Inbound, reason);
    return -1;
  }
}

/** The sender of the RECV slot being checked, compared in endpoint words (no allocation unless it roamed). */
class RecvSlotSource implements PacketSource {
  private words!: Int32Array;
  private base = 0;
  /** The endpoint last compared, and its words: a stream's packets come from one peer (no cache lookup each). */
  private lastEndpoint: Endpoint | null = null;
  private lastWords: Int32Array | null = null;
  at(meta: SlotMeta): this {
    this.words = meta.metaWords;
    this.base = meta.base + M_EP_FAMILY;
    return this;
  }
  isEndpoint(ep: Endpoint | null): boolean {
    if (ep === null) return false;
    if (ep !== this.lastEndpoint) {
      this.lastEndpoint = ep;
      this.lastWords = endpointWordsOf(ep);
    }
    return endpointWordsEqual(this.words, this.base, this.lastWords!);
  }
  endpoint(): Endpoint | null {
    return endpointFromWords(this.words, this.base);
  }
}
