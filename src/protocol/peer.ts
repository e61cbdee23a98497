// Per-peer protocol state: identity, pending handshake, keypair slots, endpoint, timers,
// staged packets. Owned by the engine on the main thread; counters that other threads
// or the metrics endpoint read live in the shared PeerStats array under `id`.
import { type Crypto } from '../crypto/crypto.js';
import { peerKeyBase64 } from '../peer-name.js';
import { CookieGenerator } from './cookie.js';
import { type Endpoint } from './endpoint.js';
import { type Keypair, Keypairs } from './keypair.js';
import { Handshake } from './noise.js';
import { PeerTimers } from './timers.js';

export class Peer {
  readonly handshake: Handshake;
  readonly keypairs: Keypairs;
  readonly cookieGenerator: CookieGenerator;
  readonly timers = new PeerTimers();
  endpoint: Endpoint | null = null;
  /** Seconds; 0 = off. */
  persistentKeepalive = 0;
  /** Wall-clock ms of the last completed handshake; 0 = never. */
  lastHandshakeWall = 0;
  /** Monotonic ms of the last handshake message (initiation or response) sent. */
  lastSentHandshake = -Infinity;
  handshakeAttempts = 0;
  needAnotherKeepalive = false;
  sentLastMinuteHandshake = false;
  /** Packets waiting for a session (oldest first, at most MAX_STAGED_PACKETS). */
  staged: Uint8Array[] = [];
  removed = false;
  /**
   * The device-key generation handshake.precomputedStaticStatic was computed under (−1: not yet).
   * Engine computes it lazily (Engine.staticStatic): in the background after a configuration
   * change, or at once when a handshake needs it first.
   */
  staticStaticGeneration = -1;

  constructor(
    readonly id: number,
    readonly publicKey: Uint8Array,
    readonly publicKeyHex: string,
    c: Crypto,
    retire: (kp: Keypair) => void,
  ) {
    this.handshake = new Handshake(publicKey, undefined, (k) => c.zeroPrivateKey(k));
    this.keypairs = new Keypairs(retire);
    this.cookieGenerator = new CookieGenerator(c, publicKey);
  }

  /** Base64 public key, the form operators know (used in logs). */
  get name(): string {
    return peerKeyBase64(this.publicKey);
  }
}

/**
 * Per-peer counters in one Float64Array (shared memory in the daemon, so metrics read
 * them without messages): [txBytes, rxBytes, txPackets, rxPackets] per peer id.
 */
export const enum Stat { TxBytes = 0, RxBytes = 1, TxPackets = 2, RxPackets = 3 }
export const STATS_PER_PEER = 4;
