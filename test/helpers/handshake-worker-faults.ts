// A handshake worker for test/handshake-offload: the real task (workers/handshake-worker.ts), but a
// full batch (16 initiations) is held back 150 ms, so a later, smaller batch finishes first; and a
// batch of exactly 5 kills its worker thread mid-task, as a crash would.
import prepareBatch from '../../workers/handshake-worker.js';
import { OFFLOAD_BATCH } from '../../src/handshake-offload.js';
import { Initiation } from '../../src/protocol/messages.js';

export default async function faultyBatch(task: ArrayBuffer): Promise<ArrayBuffer> {
  const count = (task.byteLength - 64) / Initiation.SIZE;
  if (count === 5) process.exit(3);
  if (count === OFFLOAD_BATCH) await new Promise((r) => setTimeout(r, 150));
  return prepareBatch(task);
}
