// Protocol constants of WireGuard (the WireGuard paper and protocol page, wireguard.com/protocol).
// Times are in milliseconds: every clock in wirepool is a millisecond number
// (monotonic for timers, wall-clock only for TAI64N and last-handshake reporting).

export const CONSTRUCTION = 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s';
export const IDENTIFIER = 'WireGuard v1 zx2c4 Jason@zx2c4.com';
export const LABEL_MAC1 = 'mac1----';
export const LABEL_COOKIE = 'cookie--';

export const KEY_LEN = 32;
export const MAC_LEN = 16;
export const AEAD_TAG_LEN = 16;
export const TAI64N_LEN = 12;
export const COOKIE_NONCE_LEN = 24;

// Message types (byte 0; bytes 1..3 must be zero).
export const MESSAGE_INITIATION = 1;
export const MESSAGE_RESPONSE = 2;
export const MESSAGE_COOKIE_REPLY = 3;
export const MESSAGE_TRANSPORT = 4;

export const MESSAGE_INITIATION_SIZE = 148;
export const MESSAGE_RESPONSE_SIZE = 92;
export const MESSAGE_COOKIE_REPLY_SIZE = 64;
export const MESSAGE_TRANSPORT_HEADER_SIZE = 16;
export const MESSAGE_TRANSPORT_MIN_SIZE = MESSAGE_TRANSPORT_HEADER_SIZE + AEAD_TAG_LEN; // 32 = keepalive
export const MESSAGE_PADDING_MULTIPLE = 16;

// §6 timers and limits.
export const REKEY_AFTER_MESSAGES = 2n ** 60n;
export const REJECT_AFTER_MESSAGES = 2n ** 64n - 2n ** 13n - 1n;
/**
 * Counters are JS numbers on the hot path. No peer reaches 2^53 messages in one
 * 180 s session (that would be 5e13 packets/s), so a counter at or above this bound
 * is treated like one past REJECT_AFTER_MESSAGES: never sent, never accepted.
 */
export const COUNTER_LIMIT = Number.MAX_SAFE_INTEGER; // 2^53 - 1
export const REKEY_AFTER_TIME = 120_000;
export const REJECT_AFTER_TIME = 180_000;
export const REKEY_ATTEMPT_TIME = 90_000;
export const REKEY_TIMEOUT = 5_000;
export const REKEY_TIMEOUT_JITTER_MAX = 334; // uniform 0..333 ms
export const MAX_TIMER_HANDSHAKES = REKEY_ATTEMPT_TIME / REKEY_TIMEOUT; // 18
export const KEEPALIVE_TIMEOUT = 10_000;
export const COOKIE_REFRESH_TIME = 120_000;
export const HANDSHAKE_INITIATION_RATE = 20; // ms: at most one accepted initiation per 20 ms per peer
export const ZERO_KEY_MATERIAL_AFTER = 3 * REJECT_AFTER_TIME; // 540 s
export const LAST_MINUTE_REKEY = REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT; // 165 s
export const MAX_STAGED_PACKETS = 128;

// §7 denial of service.
export const HANDSHAKE_QUEUE_SIZE = 1024;
export const UNDER_LOAD_QUEUE_LENGTH = HANDSHAKE_QUEUE_SIZE / 8; // 128
export const UNDER_LOAD_AFTER_TIME = 1_000;
export const RATELIMIT_PACKETS_PER_SECOND = 20;
export const RATELIMIT_BURST = 5;

// §8/§10 interface defaults.
export const DEFAULT_MTU = 1420;
export const MAX_PEERS = 1 << 20;
