// The shared key table: transport keys by keypair id, in a SharedArrayBuffer, so crypto workers
// read a keypair's keys by id through cached subarray views (no copy, no message per keypair).
//
// Layout (layout.ts): KEY_SLOT_BYTES = 64 per id; send key [0,32), receive key [32,64).
// Ownership: only main writes (setKeys / clear) and allocates ids; workers only read.
// Visibility: main writes the keys with plain stores before it publishes any slot naming the id;
// the publish is an Atomics store and the worker's claim an Atomics load, so the keys are visible.
// Reuse: ids come back through a FIFO, so a freed id is reused as late as possible. A slot still
// in flight with a freed id is sealed/opened with zeros or the next keys: the peer or our own open
// fails authentication, nothing worse. Pipeline.retireKeys() defers the free until every slot
// published before it has left the rings, which closes even that window.

import { KEY_LEN } from '../constants.js';
import { KEY_RECV_OFFSET, KEY_SEND_OFFSET, KEY_SLOT_BYTES } from './layout.js';

export class KeyTable {
  readonly capacity: number;
  readonly bytes: Uint8Array;
  private readonly sendViews: (Uint8Array | undefined)[] = [];
  private readonly recvViews: (Uint8Array | undefined)[] = [];
  /** Main only: FIFO of free ids (ring buffer over all ids) and an in-use bitmap to catch double frees. */
  private freeFifo: Int32Array | null = null;
  private freeHead = 0;
  private freeCount = 0;
  private inUse: Uint8Array | null = null;
  /**
   * Main only: per id, bumped whenever its keys are set or cleared, so a copy of an id (the idle
   * lease, idle-lease.ts) is known stale once the id's keypair is gone, even if the id is reused.
   */
  readonly generations: Int32Array;

  private constructor(readonly buffer: SharedArrayBuffer, owner: boolean) {
    this.capacity = buffer.byteLength / KEY_SLOT_BYTES;
    if (!Number.isInteger(this.capacity) || this.capacity < 1) {
      throw new RangeError(`key table buffer of ${buffer.byteLength} bytes is not a whole number of slots`);
    }
    this.bytes = new Uint8Array(buffer);
    this.generations = new Int32Array(owner ? this.capacity : 0);
    if (owner) {
      this.freeFifo = new Int32Array(this.capacity);
      for (let i = 0; i < this.capacity; i++) this.freeFifo[i] = i;
      this.freeCount = this.capacity;
      this.inUse = new Uint8Array(this.capacity);
    }
  }

  /** Main: a new, zeroed table with `capacity` ids, all free. */
  static create(capacity: number): KeyTable {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 1 << 24) {
      throw new RangeError(`keypair capacity must be an integer in 1..2^24, got ${capacity}`);
    }
    return new KeyTable(new SharedArrayBuffer(capacity * KEY_SLOT_BYTES), true);
  }

  /** Worker: read-only view of main's table. allocate/free/setKeys must not be called on it. */
  static attach(buffer: SharedArrayBuffer): KeyTable {
    return new KeyTable(buffer, false);
  }

  /** Main: take a free id (FIFO order), or -1 when all `capacity` ids are in use. */
  allocate(): number {
    if (this.freeFifo === null || this.inUse === null) throw new Error('KeyTable.allocate on an attached (worker) table');
    if (this.freeCount === 0) return -1;
    const id = this.freeFifo[this.freeHead]!;
    this.freeHead = (this.freeHead + 1) % this.capacity;
    this.freeCount--;
    this.inUse[id] = 1;
    return id;
  }

  /** Main: zero the id's keys and return it to the free FIFO. */
  free(id: number): void {
    if (this.freeFifo === null || this.inUse === null) throw new Error('KeyTable.free on an attached (worker) table');
    this.check(id);
    if (this.inUse[id] === 0) throw new Error(`KeyTable.free: id ${id} is not allocated`);
    this.clear(id);
    this.inUse[id] = 0;
    this.freeFifo[(this.freeHead + this.freeCount) % this.capacity] = id;
    this.freeCount++;
  }

  /** Main: number of ids currently allocated. */
  get used(): number {
    return this.capacity - this.freeCount;
  }

  /** Main: install a keypair's 32-byte keys. */
  setKeys(id: number, send: Uint8Array, receive: Uint8Array): void {
    this.check(id);
    if (send.length !== KEY_LEN || receive.length !== KEY_LEN) throw new RangeError('keys must be 32 bytes');
    const base = id * KEY_SLOT_BYTES;
    this.generations[id]!++;
    this.bytes.set(send, base + KEY_SEND_OFFSET);
    this.bytes.set(receive, base + KEY_RECV_OFFSET);
  }

  /** Main: zero-fill both keys of `id` (the id stays allocated). */
  clear(id: number): void {
    this.check(id);
    const base = id * KEY_SLOT_BYTES;
    this.generations[id]!++;
    this.bytes.fill(0, base, base + KEY_SLOT_BYTES);
  }

  /** Any thread: the send key of `id`, a view into the table (cached per id: no allocation after the first use). */
  sendKey(id: number): Uint8Array {
    let v = this.sendViews[id];
    if (v === undefined) {
      this.check(id);
      const base = id * KEY_SLOT_BYTES + KEY_SEND_OFFSET;
      v = this.bytes.subarray(base, base + KEY_LEN);
      this.sendViews[id] = v;
    }
    return v;
  }

  /** Any thread: the receive key of `id`, a cached view into the table. */
  recvKey(id: number): Uint8Array {
    let v = this.recvViews[id];
    if (v === undefined) {
      this.check(id);
      const base = id * KEY_SLOT_BYTES + KEY_RECV_OFFSET;
      v = this.bytes.subarray(base, base + KEY_LEN);
      this.recvViews[id] = v;
    }
    return v;
  }

  /** Never prints key bytes (also what console.log / util.inspect show). */
  toString(): string {
    return `KeyTable(capacity=${this.capacity}, used=${this.freeFifo === null ? '?' : this.used})`;
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }

  private check(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.capacity) {
      throw new RangeError(`keypair id ${id} outside 0..${this.capacity - 1}`);
    }
  }
}
