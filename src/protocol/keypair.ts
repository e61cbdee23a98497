// Transport keypairs and the per-peer previous/current/next slots with the exact
// rotation rules of spec §5. A keypair's keys also live in the dataplane's shared key
// table (slot `keyId`) so crypto workers can use them; the engine's hooks keep the two
// in step (keypairCreated / keypairDestroyed).
import { COUNTER_LIMIT, REJECT_AFTER_TIME } from '../constants.js';
import { ReplayWindow } from './replay.js';

export class Keypair {
  /** Next counter to send. */
  sendCounter = 0;
  readonly replay = new ReplayWindow();
  /** Slot in the shared key table, set by the host; -1 until installed. */
  keyId = -1;
  /** Left the previous/current/next set; packets still in flight with it are dropped. */
  retired = false;

  constructor(
    readonly sendKey: Uint8Array,
    readonly receiveKey: Uint8Array,
    readonly isInitiator: boolean,
    readonly created: number,
    readonly localIndex: number,
    readonly remoteIndex: number,
    readonly peerId: number,
  ) {}

  /** May this keypair still encrypt a packet at time `now`? (§5: counter and age limits) */
  canSend(now: number): boolean {
    return this.sendCounter < COUNTER_LIMIT && now - this.created < REJECT_AFTER_TIME;
  }

  /** May this keypair still decrypt at time `now`? */
  canReceive(now: number): boolean {
    return now - this.created < REJECT_AFTER_TIME;
  }

  zero(): void {
    this.retired = true;
    this.sendKey.fill(0);
    this.receiveKey.fill(0);
  }
}

/**
 * previous / current / next slots. `retire` is called for every keypair that leaves the
 * set, so the owner can free its index and key-table slot and zero it.
 */
export class Keypairs {
  previous: Keypair | null = null;
  current: Keypair | null = null;
  next: Keypair | null = null;

  constructor(private readonly retire: (kp: Keypair) => void) {}

  /** Initiator consumed a response (§5). */
  installAsInitiator(kp: Keypair): void {
    const oldPrevious = this.previous;
    if (this.next) {
      this.previous = this.next;
      this.next = null;
      if (this.current) this.retire(this.current);
    } else {
      this.previous = this.current;
    }
    if (oldPrevious) this.retire(oldPrevious);
    this.current = kp;
  }

  /** Responder sent a response (§5): next = new, previous deleted, current untouched. */
  installAsResponder(kp: Keypair): void {
    if (this.next) this.retire(this.next);
    this.next = kp;
    if (this.previous) this.retire(this.previous);
    this.previous = null;
  }

  /**
   * First authenticated packet received on `kp`. If it is `next`, rotate it into
   * current and return true (the handshake is now confirmed).
   */
  receivedWith(kp: Keypair): boolean {
    if (kp !== this.next) return false;
    if (this.previous) this.retire(this.previous);
    this.previous = this.current;
    this.current = kp;
    this.next = null;
    return true;
  }

  /** Drop all three (zero-key-material, peer removal, key change). */
  clear(): void {
    for (const kp of [this.previous, this.current, this.next]) if (kp) this.retire(kp);
    this.previous = this.current = this.next = null;
  }
}
