// Handshake worker (a piscina task module; src/handshake-offload.ts runs the pool): the arithmetic
// of a batch of initiations that needs no peer state, that is all four X25519 operations of
// answering one but the precomputed static-static (src/handshake-batch.ts: runTask). The main
// thread keeps the handshake state machine: it looks each peer up, checks the timestamp and
// finishes the response with what comes back.

import { move } from 'piscina';
import { nodeCrypto } from '../src/crypto/crypto.js';
import { runTask } from '../src/handshake-batch.js';
import { initialState } from '../src/protocol/noise.js';

const init = initialState(nodeCrypto);

export default function prepareBatch(task: ArrayBuffer): ArrayBuffer {
  return move(runTask(nodeCrypto, init, task)) as ArrayBuffer;
}
