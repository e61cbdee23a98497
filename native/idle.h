// The idle path in C: a lone packet handled inside the main thread's event-loop callback, before
// any JavaScript runs (src/dataplane/idle-lease.ts is the other half; bench/IDLE-FASTPATH.md the
// measurements). At idle the main thread reads the TUN device and the UDP sockets itself
// (src/dataplane/intake.ts); entering JavaScript for a lone packet after a quiet gap costs more
// than the rest of its path, on both daemons of a round trip. So main, at the end of each turn,
// grants a *lease*: for each of the (peer, inner address) pairs it last exchanged packets with
// (IL_ENTRIES at most), an entry with that address, the peer's current keypair (key-table id and
// indices), a few send counters reserved from that keypair, the replay window's highest counter,
// the endpoint and the socket; and the MTU. While it is valid:
//
//   tun.c   TUN readable: the same read as main's (idle_send_run); if it gave exactly one plain
//           packet addressed to an entry's address: header, padding and seal into a scratch
//           buffer (chacha20poly1305.c), sendmsg from the sticky source. The slot is not
//           published: the ring stays empty.
//   udp.c   UDP readable: the same receive as main's (idle_receive_run); if it gave exactly one
//           transport message for an entry's receiver index, from that entry's endpoint words
//           (no roaming, same local address), with a counter above every counter accepted so far
//           under that index (never a replay): opened into a scratch buffer, the inner header
//           checked (length, source = the address of an entry of that index: cryptokey routing),
//           written to TUN.
//
// Anything else — more than one packet, a super-packet, another destination or source, an old
// counter, a failed open, a failed send or write — leaves the slots as main's read would have
// left them (the scratch buffers keep the slot untouched) and main adopts them: IL_TUN_ADOPT /
// IL_UDP_ADOPT say how many, and the JavaScript callback runs at once. After a packet the hook
// handled, the callback runs up to IDLE_SETTLE_MS later instead (fdwatch.c): main then does the
// bookkeeping (counters, timers, the replay window) from the results, and grants a new lease.
//
// Staleness: main clears IL_VALID before it does anything else in a turn, so the lease never
// outlives the state it copied as far as the dataplane goes. What changes outside main's drains
// bumps a version the hooks compare: the allowed-IPs table's (routes), the engine's (endpoints,
// sessions, peers), the key table's per-id generation (a retired key id is never used again under
// a lease: no nonce can repeat under a reused id), the UDP sockets' generation (port, fwmark).
#ifndef WIREPOOL_IDLE_H
#define WIREPOOL_IDLE_H

#include <stdint.h>
#include <string.h>
#include <time.h>

// Lease words (Int32; src/dataplane/idle-lease.ts has the same numbers, and a test compares them):
// a header, then up to IL_ENTRIES entries, one per (peer, inner address); a peer with several
// addresses in use has an entry for each, all with its keypair (disjoint reserved send counters,
// one replay top: il_index_top).
enum {
  IL_VALID = 0,          // 1: the hooks may use it
  IL_ROUTE_VER = 1,      // allowed-IPs version at the grant
  IL_ENGINE_VER = 2,     // engine version at the grant
  IL_UDP_GEN = 3,        // CTL_UDP_GEN at the grant
  IL_MTU = 4,            // the MTU main pads to (the send hook checks the interface's)
  IL_TUN_ADOPT = 5,      // set by the TUN hook: 1 + slots it read and left for main, or the read's error (< 0)
  IL_UDP_ADOPT = 6,      // set by the UDP hook: 1 + slots it received and left for main
  IL_TUN_AT = 7,         // the TUN ring's producer cursor at the grant
  IL_TUN_QUIET = 8,      // 1: the TUN ring was empty at the grant, with its producer cursor at IL_TUN_AT
  IL_RECV_AT = 9,        // the RECV ring's producer cursor at the grant
  IL_RECV_QUIET = 10,    // 1: everything it held was checked and written at the grant (nothing to overtake)
  IL_COUNT = 11,         // entries granted
  IL_SENT = 12,          // results, all entries (zeroed at the grant): messages sent
  IL_SENT_READS = 13,    //   TUN reads they took
  IL_SENT_PLAIN = 14,    //   their packets' bytes
  IL_RECEIVED = 15,      //   messages received (keepalives included)
  IL_RECV_BYTES = 16,    //   their datagrams' bytes
  IL_WRITTEN = 17,       //   packets written to TUN
  IL_WRITTEN_BYTES = 18, //   their bytes
  IL_SEQ = 19,           //   events (sends and receives, all entries) so far: IE_LAST's clock
  IL_HEADER = 20,        // the first entry
};
// An entry's words, from its first (IL_HEADER + i × IE_WORDS).
enum {
  IE_KEY_ID = 0,         // the keypair's key-table id
  IE_KEY_GEN = 1,        // that id's generation at the grant
  IE_FAMILY = 2,         // 4 or 6: the inner address's family
  IE_ADDR = 3,           // 4 words: the inner address (raw bytes) routed to the peer
  IE_REMOTE_INDEX = 7,   // the peer's receiver index (our sends)
  IE_LOCAL_INDEX = 8,    // ours (the peer's sends)
  IE_SEND_NEXT = 9,      // u64 (lo, hi): the next reserved send counter
  IE_SEND_END = 11,      // u64: the end of the reserved counters (exclusive)
  IE_SEND_UNTIL = 13,    // u64: ms on CLOCK_MONOTONIC until which the keypair may send
  IE_RECV_UNTIL = 15,    // u64: ... receive
  IE_RECV_TOP = 17,      // u64: the highest counter accepted
  IE_EP = 19,            // 12 endpoint words (endpoint.h)
  IE_SEND_FD = 31,       // the socket for the endpoint's family
  IE_SENT = 32,          // results: messages sent under this entry
  IE_SENT_LEN = 33,      //   IL_MAX words: each one's length
  IE_RECEIVED = 41,      //   messages received under it
  IE_RECV_REC = 42,      //   IL_MAX × 4 words: counter lo, hi, message length, plaintext length
  IE_LAST = 74,          //   its last event: 2 × IL_SEQ after it, + 1 for a receive (0: none), so
                         //   main replays the entries' timer events in the order that matters
  IE_WORDS = 75,
};
#define IL_MAX 8      // sends, and receives, per entry and lease
#define IL_ENTRIES 8  // (peer, inner address) entries per lease
#define IL_WORDS (IL_HEADER + IL_ENTRIES * IE_WORDS)
// Counters main refuses (src/constants.ts COUNTER_LIMIT, 2^53 - 1): the receive hook leaves them to it.
#define IL_COUNTER_LIMIT ((UINT64_C(1) << 53) - 1)

// The key table (src/dataplane/layout.ts KEY_*).
#define IL_KEY_SLOT_BYTES 64
#define IL_KEY_SEND_OFFSET 0
#define IL_KEY_RECV_OFFSET 32

/** Main waits at most this long after a packet a hook handled before it does the bookkeeping. */
#define IDLE_SETTLE_MS 2

/**
 * A native hook an fd watcher (fdwatch.c) runs before its JavaScript callback: returns
 * WP_HOOK_DONE when it handled what was readable (a callback of its group then runs later, at
 * most IDLE_SETTLE_MS on), WP_HOOK_PASS when the callback must run now. The addon that made it hands it
 * over as an External whose data starts with this struct.
 */
#define WP_HOOK_MAGIC 0x77706b31u
#define WP_HOOK_PASS 0
#define WP_HOOK_DONE 1
typedef struct wp_fd_hook {
  uint32_t magic;
  int (*run)(struct wp_fd_hook *hook, int fd);
  const void *group;  // hooks that one JavaScript turn settles (a pipeline's: its lease) share it
} wp_fd_hook;

static inline uint64_t il_u64(const int32_t *L, int i) {
  return (uint64_t)(uint32_t)L[i] | (uint64_t)(uint32_t)L[i + 1] << 32;
}

static inline void il_set_u64(int32_t *L, int i, uint64_t v) {
  L[i] = (int32_t)(uint32_t)v;
  L[i + 1] = (int32_t)(uint32_t)(v >> 32);
}

static inline uint64_t il_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/** The state a hook reads besides the lease: versions main's other code bumps, and the key table. */
typedef struct {
  const int32_t *route_ver;
  const int32_t *engine_ver;
  const int32_t *udp_gen;
  const int32_t *key_gen;
  size_t key_gen_len;
  const uint8_t *keys;
  size_t keys_len;
} il_state;

/** Is the lease valid, and has nothing it copied changed since it was granted (routes, peers, sockets)? */
static inline int il_current(const int32_t *L, const il_state *s) {
  return L[IL_VALID] == 1 && __atomic_load_n(s->route_ver, __ATOMIC_RELAXED) == L[IL_ROUTE_VER] &&
         __atomic_load_n(s->engine_ver, __ATOMIC_RELAXED) == L[IL_ENGINE_VER] &&
         __atomic_load_n(s->udp_gen, __ATOMIC_ACQUIRE) == L[IL_UDP_GEN];
}

/** Is entry E's keypair still the one whose key-table id it names (not retired, the id not reused)? */
static inline int il_entry_current(const int32_t *E, const il_state *s) {
  int32_t id = E[IE_KEY_ID];
  return id >= 0 && (size_t)id < s->key_gen_len && (size_t)(id + 1) * IL_KEY_SLOT_BYTES <= s->keys_len &&
         __atomic_load_n(&s->key_gen[id], __ATOMIC_RELAXED) == E[IE_KEY_GEN];
}

/** The entry whose inner address is addr (family 4: 4 bytes, 6: 16), or NULL. */
static inline int32_t *il_entry_for_addr(int32_t *L, int family, const uint8_t *addr) {
  for (int i = 0; i < L[IL_COUNT] && i < IL_ENTRIES; i++) {
    int32_t *E = L + IL_HEADER + i * IE_WORDS;
    if (E[IE_FAMILY] == family && memcmp(&E[IE_ADDR], addr, family == 4 ? 4 : 16) == 0) return E;
  }
  return NULL;
}

/** The first entry whose keypair has our receiver index `index`, or NULL. */
static inline int32_t *il_entry_for_index(int32_t *L, uint32_t index) {
  for (int i = 0; i < L[IL_COUNT] && i < IL_ENTRIES; i++) {
    int32_t *E = L + IL_HEADER + i * IE_WORDS;
    if ((uint32_t)E[IE_LOCAL_INDEX] == index) return E;
  }
  return NULL;
}

/** Of the entries with receiver index `index` (one per inner address of a peer), the one for addr, or NULL. */
static inline int32_t *il_entry_for_index_addr(int32_t *L, uint32_t index, int family, const uint8_t *addr) {
  for (int i = 0; i < L[IL_COUNT] && i < IL_ENTRIES; i++) {
    int32_t *E = L + IL_HEADER + i * IE_WORDS;
    if ((uint32_t)E[IE_LOCAL_INDEX] == index && E[IE_FAMILY] == family && memcmp(&E[IE_ADDR], addr, family == 4 ? 4 : 16) == 0) return E;
  }
  return NULL;
}

/**
 * The highest counter accepted under receiver index `index`: the entries of one keypair (one per
 * inner address) share its replay window, so a message must be newer than what any of them took.
 */
static inline uint64_t il_index_top(int32_t *L, uint32_t index) {
  uint64_t top = 0;
  for (int i = 0; i < L[IL_COUNT] && i < IL_ENTRIES; i++) {
    int32_t *E = L + IL_HEADER + i * IE_WORDS;
    if ((uint32_t)E[IE_LOCAL_INDEX] == index && il_u64(E, IE_RECV_TOP) > top) top = il_u64(E, IE_RECV_TOP);
  }
  return top;
}

/** The transport message's 12-byte nonce: 4 zero bytes, the counter little-endian. */
static inline void il_nonce(uint8_t nonce[12], uint64_t counter) {
  memset(nonce, 0, 4);
  for (int i = 0; i < 8; i++) nonce[4 + i] = (uint8_t)(counter >> (8 * i));
}

#include <node_api.h>

/** What both hooks are given (idle.c reads it from the options object main passes). */
#define IL_REFS 10
typedef struct {
  int32_t *lease;       // IL_WORDS
  int32_t *ctl;         // the pipeline's control words
  size_t ctl_len;
  uint8_t *data;        // the ring's slot data
  size_t data_len;
  int32_t *meta;        // the ring's slot meta words
  size_t meta_len;
  int32_t *slots;       // the intake's slot list (filled here as its read would)
  size_t slots_len;
  int32_t *out;         // the intake's out[] (what its read reports)
  size_t out_len;
  il_state st;
  int32_t slot_bytes, ring_slots, batch, i_produced, i_freed;
  uint8_t *scratch;     // the hook's own buffer: a message is built or opened here, never in the slot
  size_t scratch_len;
  napi_ref refs[IL_REFS];
} il_common;

/**
 * Reads { lease, ctl, data, meta, keys, keyGen, routeVersion, engineVersion, slots, out,
 * slotBytes, ringSlots, batch, iProduced, iFreed, iUdpGen } into c, references the arrays (so
 * they outlive the hook) and allocates a scratch buffer of scratch_len bytes. Returns NULL, or the
 * option that is wrong ("memory" when the buffer could not be had).
 */
const char *il_read_common(napi_env env, napi_value opts, il_common *c, size_t scratch_len);
/** Drops what il_read_common took. */
void il_release_common(napi_env env, il_common *c);
/**
 * The ring's free slots from its producer cursor, listed in c->slots as main's read would: returns
 * how many (c->batch), or 0 when the ring was not quiet at the grant (quiet_word, at_word), has
 * produced since, or lacks room for a batch (the hook then leaves the input to main).
 */
int il_list_free_slots(il_common *c, int quiet_word, int at_word);
/** The key of entry E's keypair, at `offset` in its key-table slot. */
static inline const uint8_t *il_key(const il_common *c, const int32_t *E, int offset) {
  return c->st.keys + (size_t)E[IE_KEY_ID] * IL_KEY_SLOT_BYTES + offset;
}
/** napi_create_external for a hook whose struct starts with wp_fd_hook; `release` runs when it is collected. */
napi_value il_make_hook(napi_env env, wp_fd_hook *hook, napi_finalize release);

#endif
