// Handshake bookkeeping for the metrics endpoint, fed by the engine's optional observer
// hooks (handshakeMessage, handshakeCompleted) and by the device when the engine refuses
// a handshake message. Plain typed arrays, no prom-client: the registry reads them at
// scrape time. Handshake events happen at most a few times per peer per two minutes, so
// the maps of pending attempts stay small; nothing here runs per data packet.
//
// An attempt starts when we send an initiation (role initiator) or accept one (role
// responder). It ends:
//   ok        initiator: the response was consumed; responder: the first transport
//             message under the new session arrived (key confirmation);
//   timeout   a newer attempt of the same role replaced it (the retransmit timer fired),
//             or it was still open REKEY_TIMEOUT + jitter + 1 s after it began (checked by
//             sweep(), which the registry calls at scrape time);
//   rejected  counted per refused message instead: an initiation refused as responder,
//             a response refused as initiator (bad mac, decryption, replay, flood, rate
//             limit, cookie required, unknown index).
// The duration histogram observes only completed attempts, from the start above to ok.
import { MESSAGE_COOKIE_REPLY, MESSAGE_INITIATION, MESSAGE_RESPONSE, REKEY_TIMEOUT, REKEY_TIMEOUT_JITTER_MAX } from '../constants.js';

/** Upper bounds (seconds) of the duration histogram; the last one is REKEY_TIMEOUT. */
export const HANDSHAKE_DURATION_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, REKEY_TIMEOUT / 1000];

export const HANDSHAKE_ROLES = ['initiator', 'responder'] as const;
export type HandshakeRole = (typeof HANDSHAKE_ROLES)[number];
export const HANDSHAKE_RESULTS = ['ok', 'timeout', 'rejected'] as const;
export type HandshakeResult = (typeof HANDSHAKE_RESULTS)[number];
/** Label values of message types 1, 2, 3. */
export const HANDSHAKE_MESSAGE_TYPES = ['initiation', 'response', 'cookie_reply'] as const;
/** Label values of Direction 0 (inbound) and 1 (outbound), as in protocol/drops.ts. */
export const DIRECTIONS = ['inbound', 'outbound'] as const;

const INITIATOR = 0;
const RESPONDER = 1;
const OK = 0;
const TIMEOUT = 1;
const REJECTED = 2;
/** An attempt still open this long after it began has timed out (the retransmit timer fires by REKEY_TIMEOUT + jitter). */
export const ATTEMPT_TIMEOUT_MS = REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX + 1000;

export class HandshakeStats {
  /** Attempts by [role × 3 + result] (HANDSHAKE_ROLES × HANDSHAKE_RESULTS). */
  readonly results = new Float64Array(HANDSHAKE_ROLES.length * HANDSHAKE_RESULTS.length);
  /** Handshake messages by [(type − 1) × 2 + direction]. */
  readonly messages = new Float64Array(HANDSHAKE_MESSAGE_TYPES.length * DIRECTIONS.length);
  /** Per role: non-cumulative counts per bucket of HANDSHAKE_DURATION_BUCKETS, then one for +Inf. */
  readonly durationBuckets = new Float64Array(HANDSHAKE_ROLES.length * (HANDSHAKE_DURATION_BUCKETS.length + 1));
  /** Per role: sum of observed durations, seconds. */
  readonly durationSum = new Float64Array(HANDSHAKE_ROLES.length);
  /** Per role: number of observed durations. */
  readonly durationCount = new Float64Array(HANDSHAKE_ROLES.length);
  /** Per role: peer id → monotonic ms when the open attempt began. */
  private readonly pending = [new Map<number, number>(), new Map<number, number>()] as const;

  /** `now`: monotonic milliseconds (the device's clock). */
  constructor(private readonly now: () => number, private readonly attemptTimeoutMs = ATTEMPT_TIMEOUT_MS) {}

  /** EngineHooks.handshakeMessage: a handshake message of `type` went `direction` (0 in, 1 out); peerId −1 when unknown. */
  message(type: number, direction: number, peerId: number): void {
    if (type < MESSAGE_INITIATION || type > MESSAGE_COOKIE_REPLY || (direction !== 0 && direction !== 1)) return;
    this.messages[(type - 1) * 2 + direction]! += 1;
    if (type !== MESSAGE_INITIATION || peerId < 0) return;
    // Outbound initiation: we start as initiator. Inbound (accepted) initiation: we respond.
    this.begin(direction === 1 ? INITIATOR : RESPONDER, peerId);
  }

  /** EngineHooks.handshakeCompleted. */
  completed(peerId: number, isInitiator: boolean): void {
    const role = isInitiator ? INITIATOR : RESPONDER;
    this.results[role * 3 + OK]! += 1;
    const started = this.pending[role].get(peerId);
    // The session exists now: an attempt of the other role (simultaneous initiations) is moot.
    this.pending[INITIATOR].delete(peerId);
    this.pending[RESPONDER].delete(peerId);
    if (started !== undefined) this.observe(role, Math.max(0, this.now() - started) / 1000);
  }

  /** The engine refused a handshake message of `type` (its receiveHandshake returned a drop reason). */
  rejected(type: number): void {
    if (type === MESSAGE_INITIATION) this.results[RESPONDER * 3 + REJECTED]! += 1;
    else if (type === MESSAGE_RESPONSE) this.results[INITIATOR * 3 + REJECTED]! += 1;
  }

  /** Counts attempts open longer than the timeout as timed out. Called at scrape time. */
  sweep(): void {
    const now = this.now();
    for (let role = 0; role < 2; role++) {
      const m = this.pending[role as 0 | 1];
      for (const [peerId, started] of m) {
        if (now - started < this.attemptTimeoutMs) continue;
        m.delete(peerId);
        this.results[role * 3 + TIMEOUT]! += 1;
      }
    }
  }

  /** Attempts currently open, per role (for tests and diagnostics). */
  openAttempts(role: HandshakeRole): number {
    return this.pending[role === 'initiator' ? INITIATOR : RESPONDER].size;
  }

  result(role: HandshakeRole, result: HandshakeResult): number {
    return this.results[HANDSHAKE_ROLES.indexOf(role) * 3 + HANDSHAKE_RESULTS.indexOf(result)]!;
  }

  private begin(role: number, peerId: number): void {
    const m = this.pending[role as 0 | 1];
    if (m.has(peerId)) this.results[role * 3 + TIMEOUT]! += 1; // a retry replaces an unanswered attempt
    m.set(peerId, this.now());
  }

  private observe(role: number, seconds: number): void {
    const b = HANDSHAKE_DURATION_BUCKETS;
    let i = 0;
    while (i < b.length && seconds > b[i]!) i++;
    this.durationBuckets[role * (b.length + 1) + i]! += 1;
    this.durationSum[role]! += seconds;
    this.durationCount[role]! += 1;
  }
}
