// The closed set of reasons a packet is dropped, by direction. Counted in one
// Float64Array (shared memory in the daemon) so the metrics endpoint reads them at scrape
// time; nothing on the packet path allocates to count a drop.

export const DROP_REASONS = [
  'invalid_mac',          // handshake message with a wrong mac1 (or mac2 under load)
  'decrypt_failed',       // AEAD authentication failed (transport or handshake field)
  'replay',               // transport counter seen before, or handshake timestamp not newer
  'too_old',              // counter behind the replay window, or keypair past REJECT_AFTER_TIME
  'unknown_index',        // receiver index not in the index table (or wrong kind)
  'no_session',           // no usable session: the staging queue overflowed, the handshake gave up or the
                          // keys were flushed with packets still staged, or the keys found no key-table slot
  'source_not_allowed',   // inner source address does not route back to the sending peer
  'no_peer_for_destination',
  'malformed',            // bad type/reserved bytes/length, bad inner IP header
  'too_big',              // larger than a ring slot
  'ring_full',            // crypto ring had no free slot
  'rate_limited',         // per-source handshake rate limit under load
  'cookie_required',      // under load without a valid mac2: answered with a cookie reply
  'unknown_peer',         // initiation from a static key that is not configured
  'handshake_flood',      // initiation within 20 ms of the last accepted one
  'no_endpoint',          // nothing to send to
  'queue_full',           // handshake queue full
  'encrypt_failed',       // sealing failed in a crypto worker
  'worker_died',          // the crypto worker holding the packet died
  'send_failed',          // the UDP send failed (socket buffer full after retries, no route, …)
] as const;
export type DropReason = (typeof DROP_REASONS)[number];
export const DROP_REASON_INDEX: Readonly<Record<DropReason, number>> = Object.fromEntries(
  DROP_REASONS.map((r, i) => [r, i]),
) as Record<DropReason, number>;

export const enum Direction { Inbound = 0, Outbound = 1 }

export class DropCounters {
  constructor(readonly counts: Float64Array = new Float64Array(2 * DROP_REASONS.length)) {}
  count(dir: Direction, reason: DropReason, n = 1): void {
    this.counts[dir * DROP_REASONS.length + DROP_REASON_INDEX[reason]]! += n;
  }
  get(dir: Direction, reason: DropReason): number {
    return this.counts[dir * DROP_REASONS.length + DROP_REASON_INDEX[reason]]!;
  }
}
