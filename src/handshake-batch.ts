// The bytes of a batch of initiations going to a handshake worker and of what comes back
// (src/handshake-offload.ts sends them, workers/handshake-worker.ts answers). Both are one
// ArrayBuffer each, moved between the threads (transferred, never copied), so no secret is left
// behind in a structured-clone copy; whoever reads one zeroes it.
//
// Task:    private key (32) | public key (32) | count × the initiation message (148 each)
// Result:  count × ( status (4) | remote static | chain key | hash | e priv | e pub | ee | se ) (32 each)
//          status: 0 the static key did not decrypt, 1 opened but a DH with the initiator's keys was
//          all zero (no response can be built), 2 opened and the responder's ephemeral part ready.
import { KEY_LEN } from './constants.js';
import { type Crypto } from './crypto/crypto.js';
import { Initiation } from './protocol/messages.js';
import { type NoiseInitialState, type PreparedInitiation, type StaticIdentity, clearPrepared, prepareInitiation } from './protocol/noise.js';

const TASK_HEADER = 2 * KEY_LEN;
const RESULT_SIZE = 4 + 7 * KEY_LEN;
const enum Status { DecryptFailed = 0, NoResponder = 1, Prepared = 2 }

/** A task of `msgs.length` initiations under `id`. */
export function encodeTask(id: StaticIdentity, msgs: readonly Uint8Array[]): ArrayBuffer {
  const buf = new ArrayBuffer(TASK_HEADER + msgs.length * Initiation.SIZE);
  const u8 = new Uint8Array(buf);
  u8.set(id.privateKey, 0);
  u8.set(id.publicKey, KEY_LEN);
  msgs.forEach((m, i) => u8.set(m.subarray(0, Initiation.SIZE), TASK_HEADER + i * Initiation.SIZE));
  return buf;
}

/** A handshake worker's work: prepareInitiation for each message of a task; zeroes the task. */
export function runTask(c: Crypto, init: NoiseInitialState, task: ArrayBuffer): ArrayBuffer {
  const u8 = new Uint8Array(task);
  const count = (u8.length - TASK_HEADER) / Initiation.SIZE;
  if (!Number.isInteger(count) || count < 0) throw new RangeError(`handshake task of ${u8.length} bytes`);
  const id: StaticIdentity = { privateKey: u8.subarray(0, KEY_LEN), publicKey: u8.subarray(KEY_LEN, TASK_HEADER) };
  const out = new ArrayBuffer(count * RESULT_SIZE);
  const res = new Uint8Array(out);
  const dv = new DataView(out);
  for (let i = 0; i < count; i++) {
    const msg = u8.subarray(TASK_HEADER + i * Initiation.SIZE, TASK_HEADER + (i + 1) * Initiation.SIZE);
    const p = prepareInitiation(c, init, id, msg);
    const o = i * RESULT_SIZE;
    if (!p) continue; // status 0
    const { opened, responder } = p;
    dv.setUint32(o, responder ? Status.Prepared : Status.NoResponder, true);
    const fields = [opened.remoteStatic, opened.chainKey, opened.hash];
    if (responder) fields.push(responder.privateKey, responder.publicKey, responder.ee, responder.se);
    fields.forEach((f, k) => res.set(f, o + 4 + k * KEY_LEN));
    clearPrepared(c, p);
  }
  u8.fill(0);
  return out;
}

/**
 * The prepared initiations of a result, in task order (null: the static key did not decrypt);
 * copies out and zeroes the result. Throws when the result does not hold `count` of them.
 */
export function decodeResult(result: ArrayBuffer, count: number): (PreparedInitiation | null)[] {
  if (!(result instanceof ArrayBuffer) || result.byteLength !== count * RESULT_SIZE) {
    throw new RangeError(`handshake worker answered ${String((result as ArrayBuffer)?.byteLength)} bytes for ${count} initiations`);
  }
  const res = new Uint8Array(result);
  const dv = new DataView(result);
  const out: (PreparedInitiation | null)[] = [];
  for (let i = 0; i < count; i++) {
    const o = i * RESULT_SIZE;
    const status = dv.getUint32(o, true);
    const field = (k: number): Uint8Array => res.slice(o + 4 + k * KEY_LEN, o + 4 + (k + 1) * KEY_LEN);
    if (status === Status.DecryptFailed) { out.push(null); continue; }
    if (status !== Status.NoResponder && status !== Status.Prepared) throw new RangeError(`handshake worker answered status ${status}`);
    out.push({
      opened: { remoteStatic: field(0), chainKey: field(1), hash: field(2) },
      responder: status === Status.Prepared ? { privateKey: field(3), publicKey: field(4), ee: field(5), se: field(6) } : null,
    });
  }
  res.fill(0);
  return out;
}
