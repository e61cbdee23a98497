// wirepool's ChaCha20-Poly1305 for transport data (spec §1 AEAD with empty ad), in place, through
// the OpenSSL that Node.js itself links (the node binary exports the EVP_* symbols; node-gyp puts
// Node's OpenSSL headers on the include path). Plain C, N-API.
//
// Exports (all synchronous; every buffer may be a SharedArrayBuffer-backed view; nothing is copied):
//   layout()                                                  the slot-layout constants compiled in
//   sealSlots(data, slotBytes, meta, keys, slots, n, ok)      seal a batch of send-ring slots
//   openSlots(data, slotBytes, meta, keys, slots, n, ok)      open a batch of receive-ring slots (and copy
//                                                             each plaintext's first bytes into its meta)
//   seal(key, counterLo, counterHi, buf, off, len)            one packet, as sealTransport
//   open(key, counterLo, counterHi, buf, off, len)            one packet, as openTransport
//
// Per-slot layout (must match src/dataplane/layout.ts; src/crypto/native-aead.ts checks layout()
// at load): meta is META_WORDS Int32 words per slot, data slotBytes bytes per slot; the key table
// holds KEY_SLOT_BYTES per keypair id, send key at KEY_SEND_OFFSET, receive key at KEY_RECV_OFFSET.
// Nonce: 4 zero bytes || counter as u64 LE (meta words M_COUNTER_LO, M_COUNTER_HI).
//
// State: one EVP_CIPHER_CTX per addon instance (each worker thread loads its own instance; it is
// N-API instance data, freed by its finalizer when the thread's environment goes away), set up
// with the cipher once, then per packet only (key if it changed, and) nonce: no allocation per
// packet. Measured on OpenSSL 3.0 (Node 20), per-packet EVP overhead dominates small packets, so:
// the key is passed only when it differs from the one the context holds (a batch is mostly one
// keypair); the tag goes through the OSSL_PARAM API (EVP_CTRL_AEAD_SET_TAG/GET_TAG equivalents),
// the expected tag of an open as a parameter of the init call itself, which was ~20% cheaper per
// 64-byte open than a separate EVP_CIPHER_CTX_ctrl(EVP_CTRL_AEAD_SET_TAG).
//
// Batches of one or two messages that find the caches cold (the idle path), and small messages of
// such batches at any time, go through the portable ChaCha20-Poly1305 of chacha20poly1305.c
// instead: cold, it costs a fraction of OpenSSL's EVP path (portable_max).
//
// Shared memory: meta words, slot indices and lengths are read exactly once (relaxed atomic
// loads) and only the local copies are validated and used, so a racing writer can at worst make
// a slot fail or produce garbage, never move a write outside the slot.

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <node_api.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "chacha20poly1305.h"

// ---- layout (src/dataplane/layout.ts, src/constants.ts) -----------------------------------------
#define META_WORDS 32
#define M_LENGTH 1
#define M_RESULT 2
#define M_KEYPAIR 4
#define M_COUNTER_LO 5
#define M_COUNTER_HI 6
#define M_INNER_HEAD 10
#define INNER_HEAD_BYTES 24
#define KEY_SLOT_BYTES 64
#define KEY_SEND_OFFSET 0
#define KEY_RECV_OFFSET 32
#define HEADER_SIZE 16 /* MESSAGE_TRANSPORT_HEADER_SIZE = SLOT_PAYLOAD_OFFSET */
#define TAG_SIZE 16    /* AEAD_TAG_LEN */
#define KEY_SIZE 32

// Which code crypts a message. A batch of at most SMALL_BATCH_MAX is the idle path's (main's
// inline seals, pipeline.ts INLINE_SEAL_MAX; the opens on receipt, udp-intake.ts INLINE_OPEN_MAX):
// when it comes more than COLD_NS after this thread's previous call, the caches are cold, and
// OpenSSL's EVP path costs ≈ 25 µs a message against 3–7 µs for the portable code
// (chacha20poly1305.h), so all of it goes there. Called warm — a stream at a moderate rate, where
// the batches stay small — the portable code is faster only below PORTABLE_WARM_MAX bytes (warm,
// ns per message: 64 B 380 against 500, 128 B 540 against 470, 1424 B 4,240 against 980), so
// larger messages stay on OpenSSL; every larger batch is load, and OpenSSL's vector code.
#define SMALL_BATCH_MAX 2
#define COLD_NS 1000000ull
#define PORTABLE_WARM_MAX 128

typedef struct {
  EVP_CIPHER_CTX *ctx;
  uint8_t key[KEY_SIZE]; // the key ctx holds, if key_set
  int key_set;
  uint64_t last_call_ns; // CLOCK_MONOTONIC of this thread's previous sealSlots/openSlots
} aead_state;

static void state_free(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  aead_state *st = data;
  if (st == NULL) return;
  EVP_CIPHER_CTX_free(st->ctx);
  OPENSSL_cleanse(st->key, sizeof(st->key));
  free(st);
}

// The key argument for the next init: NULL when ctx already holds these key bytes, else a private
// copy of them (so what ctx holds is always exactly st->key, however the shared bytes change).
// The caller must call keyed(st, ok) after the init.
static inline const uint8_t *rekey(aead_state *st, const uint8_t *key) {
  if (st->key_set && CRYPTO_memcmp(st->key, key, KEY_SIZE) == 0) return NULL;
  st->key_set = 0;
  memcpy(st->key, key, KEY_SIZE);
  return st->key;
}

static inline void keyed(aead_state *st, int init_ok) { st->key_set = init_ok; }

static inline int init_packet(aead_state *st, const uint8_t *key, const uint8_t nonce[12], int enc, const OSSL_PARAM *params) {
  int ok = EVP_CipherInit_ex2(st->ctx, NULL, rekey(st, key), nonce, enc, params) == 1;
  keyed(st, ok);
  return ok;
}

static inline int32_t load_i32(const int32_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void store_i32(int32_t *p, int32_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }

static inline void make_nonce(uint8_t nonce[12], uint32_t lo, uint32_t hi) {
  nonce[0] = nonce[1] = nonce[2] = nonce[3] = 0;
  nonce[4] = (uint8_t)lo;
  nonce[5] = (uint8_t)(lo >> 8);
  nonce[6] = (uint8_t)(lo >> 16);
  nonce[7] = (uint8_t)(lo >> 24);
  nonce[8] = (uint8_t)hi;
  nonce[9] = (uint8_t)(hi >> 8);
  nonce[10] = (uint8_t)(hi >> 16);
  nonce[11] = (uint8_t)(hi >> 24);
}

// Seal p[0, len) in place and write the tag to p[len, len+16). Returns 1 on success, 0 on an
// OpenSSL failure (in practice only before anything was written).
static int seal_one(aead_state *st, const uint8_t *key, uint32_t lo, uint32_t hi, uint8_t *p, int len) {
  EVP_CIPHER_CTX *ctx = st->ctx;
  uint8_t nonce[12];
  int outl;
  // Where the tag goes (= EVP_CTRL_AEAD_GET_TAG).
  OSSL_PARAM get_tag[2] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, p + len, TAG_SIZE),
                           OSSL_PARAM_construct_end()};
  make_nonce(nonce, lo, hi);
  if (!init_packet(st, key, nonce, 1, NULL)) goto fail;
  if (len > 0 && (EVP_CipherUpdate(ctx, p, &outl, p, len) != 1 || outl != len)) goto fail;
  if (EVP_CipherFinal_ex(ctx, p + len, &outl) != 1) goto fail; // stream cipher: writes nothing
  if (EVP_CIPHER_CTX_get_params(ctx, get_tag) != 1) goto fail;
  return 1;
fail:
  ERR_clear_error();
  return 0;
}

#define OPEN_OK 1
#define OPEN_BAD_TAG 0 /* p[0, len) was decrypted (XORed with the keystream) but is not authentic */
#define OPEN_ERROR -1  /* OpenSSL refused before touching p */

// Decrypt p[0, len) in place and check it against the tag at p[len, len+16) (the tag is copied
// into the context before the data is touched). One pass: the tag is checked after decryption, so
// on OPEN_BAD_TAG the caller must restore (restore_one) or wipe p[0, len).
static int open_one(aead_state *st, const uint8_t *key, uint32_t lo, uint32_t hi, uint8_t *p, int len) {
  EVP_CIPHER_CTX *ctx = st->ctx;
  uint8_t nonce[12];
  int outl;
  make_nonce(nonce, lo, hi);
  // The expected tag (= EVP_CTRL_AEAD_SET_TAG), applied by the init after the nonce.
  OSSL_PARAM set_tag[2] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, p + len, TAG_SIZE),
                           OSSL_PARAM_construct_end()};
  if (!init_packet(st, key, nonce, 0, set_tag)) goto fail;
  if (len > 0 && (EVP_CipherUpdate(ctx, p, &outl, p, len) != 1 || outl != len)) goto fail;
  if (EVP_CipherFinal_ex(ctx, p + len, &outl) != 1) { // tag mismatch (constant-time compare)
    ERR_clear_error();
    return OPEN_BAD_TAG;
  }
  return OPEN_OK;
fail:
  ERR_clear_error();
  return OPEN_ERROR;
}

// Undo open_one's decryption after OPEN_BAD_TAG: ChaCha20 is an XOR with the same keystream, so
// encrypting again restores the ciphertext byte for byte. Returns 0 if OpenSSL refused.
static int restore_one(aead_state *st, const uint8_t *key, uint32_t lo, uint32_t hi, uint8_t *p, int len) {
  uint8_t nonce[12];
  int outl;
  if (len == 0) return 1;
  make_nonce(nonce, lo, hi);
  if (!init_packet(st, key, nonce, 1, NULL) || EVP_CipherUpdate(st->ctx, p, &outl, p, len) != 1 || outl != len) {
    ERR_clear_error();
    return 0;
  }
  return 1;
}

/**
 * For a batch of n: the largest message (plaintext bytes) the portable code takes, -1 for none
 * (SMALL_BATCH_MAX, COLD_NS, PORTABLE_WARM_MAX). Notes the call's time.
 */
static int portable_max(aead_state *st, int64_t n) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
  int cold = now - st->last_call_ns > COLD_NS;
  st->last_call_ns = now;
  if (!CP_AVAILABLE || n > SMALL_BATCH_MAX) return -1;
  return cold ? INT32_MAX : PORTABLE_WARM_MAX - 1;
}

// The same two operations with the portable code: it never fails, and an open
// that is not authentic leaves p as it was (the caller wipes it all the same).
static int seal_small(const uint8_t *key, uint32_t lo, uint32_t hi, uint8_t *p, int len) {
#if CP_AVAILABLE
  uint8_t nonce[12];
  make_nonce(nonce, lo, hi);
  cp_seal(key, nonce, p, (size_t)len);
  return 1;
#else
  (void)key, (void)lo, (void)hi, (void)p, (void)len;
  return 0;
#endif
}

static int open_small(const uint8_t *key, uint32_t lo, uint32_t hi, uint8_t *p, int len) {
#if CP_AVAILABLE
  uint8_t nonce[12];
  make_nonce(nonce, lo, hi);
  return cp_open(key, nonce, p, (size_t)len) ? OPEN_OK : OPEN_BAD_TAG;
#else
  (void)key, (void)lo, (void)hi, (void)p, (void)len;
  return OPEN_ERROR;
#endif
}

// ---- argument helpers ---------------------------------------------------------------------------

#define THROW_TYPE(env, msg) (napi_throw_type_error((env), NULL, (msg)), 0)
#define THROW_RANGE(env, msg) (napi_throw_range_error((env), NULL, (msg)), 0)

static aead_state *get_state(napi_env env) {
  void *data = NULL;
  if (napi_get_instance_data(env, &data) != napi_ok || data == NULL) {
    napi_throw_error(env, NULL, "wirepool_aead: instance state missing");
    return NULL;
  }
  return data;
}

// A typed array of the given type: its first element (byte offset applied) and its length in elements.
static int get_typed(napi_env env, napi_value v, napi_typedarray_type want, const char *msg, void **data, size_t *len) {
  bool is = false;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return THROW_TYPE(env, msg);
  napi_typedarray_type type;
  if (napi_get_typedarray_info(env, v, &type, len, data, NULL, NULL) != napi_ok || type != want) {
    return THROW_TYPE(env, msg);
  }
  if (*data == NULL) *len = 0; // detached
  return 1;
}

// An integral number in [min, max].
static int get_int(napi_env env, napi_value v, int64_t min, int64_t max, const char *msg, int64_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return THROW_TYPE(env, msg);
  if (!(d >= (double)min && d <= (double)max) || d != (double)(int64_t)d) return THROW_RANGE(env, msg);
  *out = (int64_t)d;
  return 1;
}

// A number taken modulo 2^32 (like the `x & 0xff` byte extraction of the JS version).
static int get_u32(napi_env env, napi_value v, const char *msg, uint32_t *out) {
  if (napi_get_value_uint32(env, v, out) != napi_ok) return THROW_TYPE(env, msg);
  return 1;
}

static napi_value make_int(napi_env env, int64_t x) {
  napi_value r;
  if (napi_create_int64(env, x, &r) != napi_ok) return NULL;
  return r;
}

// ---- batch: sealSlots / openSlots ----------------------------------------------------------------

typedef struct {
  uint8_t *data;
  size_t data_len;
  int64_t slot_bytes;
  int32_t *meta;
  size_t meta_len; // Int32 words
  const uint8_t *keys;
  size_t keys_len;
  const int32_t *slots;
  int64_t n;
  uint8_t *ok;
} batch_args;

static int get_batch(napi_env env, napi_callback_info info, const char *usage, batch_args *a) {
  size_t argc = 7;
  napi_value argv[7];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 7) return THROW_TYPE(env, usage);
  void *p;
  size_t slots_len, ok_len;
  if (!get_typed(env, argv[0], napi_uint8_array, "data must be a Uint8Array", &p, &a->data_len)) return 0;
  a->data = p;
  if (!get_int(env, argv[1], 1, INT32_MAX, "slotBytes must be an integer in 1..2^31-1", &a->slot_bytes)) return 0;
  if (!get_typed(env, argv[2], napi_int32_array, "meta must be an Int32Array", &p, &a->meta_len)) return 0;
  a->meta = p;
  if (!get_typed(env, argv[3], napi_uint8_array, "keys must be a Uint8Array", &p, &a->keys_len)) return 0;
  a->keys = p;
  if (!get_typed(env, argv[4], napi_int32_array, "slots must be an Int32Array", &p, &slots_len)) return 0;
  a->slots = p;
  if (!get_int(env, argv[5], 0, INT32_MAX, "n must be a non-negative integer", &a->n)) return 0;
  if (!get_typed(env, argv[6], napi_uint8_array, "ok must be a Uint8Array", &p, &ok_len)) return 0;
  a->ok = p;
  if ((uint64_t)a->n > slots_len || (uint64_t)a->n > ok_len) {
    return THROW_RANGE(env, "n exceeds slots.length or ok.length");
  }
  return 1;
}

// Slot s's data and meta, or 0 if s is outside either array.
static inline int slot_at(const batch_args *a, int32_t s, uint8_t **data, int32_t **meta) {
  if (s < 0) return 0;
  if ((uint64_t)s + 1 > (uint64_t)a->data_len / (uint64_t)a->slot_bytes) return 0;
  if ((uint64_t)s + 1 > a->meta_len / META_WORDS) return 0;
  *data = a->data + (uint64_t)s * (uint64_t)a->slot_bytes;
  *meta = a->meta + (uint64_t)s * META_WORDS;
  return 1;
}

// The 32-byte key at `offset` of keypair kp, or NULL if kp is outside the key table.
static inline const uint8_t *key_at(const batch_args *a, int32_t kp, int offset) {
  if (kp < 0 || (uint64_t)kp + 1 > a->keys_len / KEY_SLOT_BYTES) return NULL;
  return a->keys + (uint64_t)kp * KEY_SLOT_BYTES + offset;
}

// sealSlots(data, slotBytes, meta, keys, slots, n, ok) → number of slots sealed. Slot s = slots[i]:
// plaintext at data[s*slotBytes+16, +len), len = meta[M_LENGTH], sealed in place with keypair
// meta[M_KEYPAIR]'s send key, tag after it; meta[M_RESULT] = 16+len+16 (the whole message), ok[i] = 1.
// An invalid slot (s, len or keypair out of range) or an OpenSSL failure: ok[i] = 0, and the next.
static napi_value seal_slots(napi_env env, napi_callback_info info) {
  aead_state *st = get_state(env);
  batch_args a;
  if (st == NULL || !get_batch(env, info, "sealSlots(data, slotBytes, meta, keys, slots, n, ok)", &a)) return NULL;
  const int portable = portable_max(st, a.n);
  int64_t done = 0;
  for (int64_t i = 0; i < a.n; i++) {
    uint8_t *d;
    int32_t *m;
    const uint8_t *key;
    int ok = 0;
    if (slot_at(&a, load_i32(&a.slots[i]), &d, &m)) {
      int32_t len = load_i32(&m[M_LENGTH]);
      int32_t kp = load_i32(&m[M_KEYPAIR]);
      uint32_t lo = (uint32_t)load_i32(&m[M_COUNTER_LO]);
      uint32_t hi = (uint32_t)load_i32(&m[M_COUNTER_HI]);
      if (len >= 0 && (int64_t)HEADER_SIZE + len + TAG_SIZE <= a.slot_bytes &&
          (key = key_at(&a, kp, KEY_SEND_OFFSET)) != NULL &&
          (len <= portable ? seal_small(key, lo, hi, d + HEADER_SIZE, len) : seal_one(st, key, lo, hi, d + HEADER_SIZE, len))) {
        store_i32(&m[M_RESULT], HEADER_SIZE + len + TAG_SIZE);
        ok = 1;
      }
    }
    a.ok[i] = (uint8_t)ok;
    done += ok;
  }
  return make_int(env, done);
}

// openSlots(data, slotBytes, meta, keys, slots, n, ok) → number of slots opened. Slot s = slots[i]:
// a whole transport message at data[s*slotBytes, +len), len = meta[M_LENGTH] (16-byte header,
// ciphertext, 16-byte tag); the ciphertext is decrypted in place with keypair meta[M_KEYPAIR]'s
// receive key; meta[M_RESULT] = len-32 (the plaintext at data[+16, +len-16)), the plaintext's first
// INNER_HEAD_BYTES bytes (zero past its end) copied into meta words M_INNER_HEAD.. (main reads the
// inner IP header there, in the meta line it reads anyway), ok[i] = 1. Not authentic, len < 32,
// s or keypair out of range: ok[i] = 0. A slot that failed authentication has its ciphertext area
// zeroed (no unauthenticated plaintext is left behind); header and tag stay.
static napi_value open_slots(napi_env env, napi_callback_info info) {
  aead_state *st = get_state(env);
  batch_args a;
  if (st == NULL || !get_batch(env, info, "openSlots(data, slotBytes, meta, keys, slots, n, ok)", &a)) return NULL;
  const int portable = portable_max(st, a.n);
  int64_t done = 0;
  for (int64_t i = 0; i < a.n; i++) {
    uint8_t *d;
    int32_t *m;
    const uint8_t *key;
    int ok = 0;
    if (slot_at(&a, load_i32(&a.slots[i]), &d, &m)) {
      int32_t len = load_i32(&m[M_LENGTH]);
      int32_t kp = load_i32(&m[M_KEYPAIR]);
      uint32_t lo = (uint32_t)load_i32(&m[M_COUNTER_LO]);
      uint32_t hi = (uint32_t)load_i32(&m[M_COUNTER_HI]);
      if (len >= HEADER_SIZE + TAG_SIZE && len <= a.slot_bytes && (key = key_at(&a, kp, KEY_RECV_OFFSET)) != NULL) {
        int plain = len - HEADER_SIZE - TAG_SIZE;
        int r = plain <= portable ? open_small(key, lo, hi, d + HEADER_SIZE, plain) : open_one(st, key, lo, hi, d + HEADER_SIZE, plain);
        if (r == OPEN_OK) {
          uint8_t head[INNER_HEAD_BYTES] = {0};
          memcpy(head, d + HEADER_SIZE, plain < INNER_HEAD_BYTES ? (size_t)plain : INNER_HEAD_BYTES);
          for (int w = 0; w < INNER_HEAD_BYTES / 4; w++) {
            int32_t v;
            memcpy(&v, head + 4 * w, 4);
            store_i32(&m[M_INNER_HEAD + w], v);
          }
          store_i32(&m[M_RESULT], plain);
          ok = 1;
        } else if (r == OPEN_BAD_TAG) {
          memset(d + HEADER_SIZE, 0, (size_t)plain);
        }
      }
    }
    a.ok[i] = (uint8_t)ok;
    done += ok;
  }
  return make_int(env, done);
}

// ---- single packet: seal / open --------------------------------------------------------------------

typedef struct {
  const uint8_t *key;
  uint32_t lo, hi;
  uint8_t *buf;
  size_t buf_len;
  int64_t off, len;
} one_args;

static int get_one(napi_env env, napi_callback_info info, const char *usage, one_args *a) {
  size_t argc = 6;
  napi_value argv[6];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 6) return THROW_TYPE(env, usage);
  void *p;
  size_t key_len;
  if (!get_typed(env, argv[0], napi_uint8_array, "key must be a Uint8Array", &p, &key_len)) return 0;
  if (key_len != KEY_SIZE) return THROW_RANGE(env, "key must be 32 bytes");
  a->key = p;
  if (!get_u32(env, argv[1], "counterLo must be a number", &a->lo)) return 0;
  if (!get_u32(env, argv[2], "counterHi must be a number", &a->hi)) return 0;
  if (!get_typed(env, argv[3], napi_uint8_array, "buf must be a Uint8Array", &p, &a->buf_len)) return 0;
  a->buf = p;
  if (!get_int(env, argv[4], 0, INT32_MAX, "off must be an integer in 0..2^31-1", &a->off)) return 0;
  if (!get_int(env, argv[5], 0, INT32_MAX - 2 * TAG_SIZE, "len must be an integer in 0..2^31-33", &a->len)) return 0;
  return 1;
}

// seal(key, counterLo, counterHi, buf, off, len) → len+16: buf[off, off+len) sealed in place,
// tag at buf[off+len, +16). RangeError if that does not fit buf.
static napi_value seal_packet(napi_env env, napi_callback_info info) {
  aead_state *st = get_state(env);
  one_args a;
  if (st == NULL || !get_one(env, info, "seal(key, counterLo, counterHi, buf, off, len)", &a)) return NULL;
  if ((uint64_t)(a.off + a.len + TAG_SIZE) > a.buf_len) {
    napi_throw_range_error(env, NULL, "seal: [off, off+len) + tag does not fit the buffer");
    return NULL;
  }
  if (!seal_one(st, a.key, a.lo, a.hi, a.buf + a.off, (int)a.len)) {
    napi_throw_error(env, NULL, "seal: OpenSSL ChaCha20-Poly1305 failed");
    return NULL;
  }
  return make_int(env, a.len + TAG_SIZE);
}

// open(key, counterLo, counterHi, buf, off, len) → len-16, or -1 if not authentic (or len < 16):
// ciphertext||tag at buf[off, off+len), plaintext written to buf[off, off+len-16) on success; buf
// is left byte-for-byte unchanged on failure. RangeError if [off, off+len) does not fit buf.
static napi_value open_packet(napi_env env, napi_callback_info info) {
  aead_state *st = get_state(env);
  one_args a;
  if (st == NULL || !get_one(env, info, "open(key, counterLo, counterHi, buf, off, len)", &a)) return NULL;
  if ((uint64_t)(a.off + a.len) > a.buf_len) {
    napi_throw_range_error(env, NULL, "open: [off, off+len) does not fit the buffer");
    return NULL;
  }
  int64_t plain = a.len - TAG_SIZE;
  if (plain < 0) return make_int(env, -1);
  uint8_t *p = a.buf + a.off;
  int r = open_one(st, a.key, a.lo, a.hi, p, (int)plain);
  if (r == OPEN_OK) return make_int(env, plain);
  if (r == OPEN_BAD_TAG && !restore_one(st, a.key, a.lo, a.hi, p, (int)plain)) {
    memset(p, 0, (size_t)plain); // cannot happen in practice; never leave unauthenticated plaintext
    napi_throw_error(env, NULL, "open: OpenSSL ChaCha20-Poly1305 failed");
    return NULL;
  }
  if (r == OPEN_ERROR) {
    napi_throw_error(env, NULL, "open: OpenSSL ChaCha20-Poly1305 failed");
    return NULL;
  }
  return make_int(env, -1);
}

// ---- layout / init -----------------------------------------------------------------------------------

static napi_value layout(napi_env env, napi_callback_info info) {
  (void)info;
  static const struct {
    const char *name;
    int32_t value;
  } entries[] = {
      {"metaWords", META_WORDS},       {"mLength", M_LENGTH},         {"mResult", M_RESULT},
      {"mKeypair", M_KEYPAIR},         {"mCounterLo", M_COUNTER_LO},  {"mCounterHi", M_COUNTER_HI},
      {"keySlotBytes", KEY_SLOT_BYTES}, {"keySendOffset", KEY_SEND_OFFSET}, {"keyRecvOffset", KEY_RECV_OFFSET},
      {"headerSize", HEADER_SIZE},     {"tagSize", TAG_SIZE},         {"mInnerHead", M_INNER_HEAD},
      {"innerHeadBytes", INNER_HEAD_BYTES},
  };
  napi_value obj;
  if (napi_create_object(env, &obj) != napi_ok) return NULL;
  for (size_t i = 0; i < sizeof(entries) / sizeof(entries[0]); i++) {
    napi_value v;
    if (napi_create_int32(env, entries[i].value, &v) != napi_ok ||
        napi_set_named_property(env, obj, entries[i].name, v) != napi_ok) {
      return NULL;
    }
  }
  return obj;
}

static napi_value init(napi_env env, napi_value exports) {
  aead_state *st = calloc(1, sizeof(*st));
  if (st == NULL) {
    napi_throw_error(env, NULL, "wirepool_aead: out of memory");
    return NULL;
  }
  st->ctx = EVP_CIPHER_CTX_new();
  if (st->ctx == NULL || EVP_CipherInit_ex(st->ctx, EVP_chacha20_poly1305(), NULL, NULL, NULL, 1) != 1) {
    ERR_clear_error();
    state_free(env, st, NULL);
    napi_throw_error(env, NULL, "wirepool_aead: OpenSSL has no usable ChaCha20-Poly1305");
    return NULL;
  }
  if (napi_set_instance_data(env, st, state_free, NULL) != napi_ok) {
    state_free(env, st, NULL);
    napi_throw_error(env, NULL, "wirepool_aead: napi_set_instance_data failed");
    return NULL;
  }
  static const struct {
    const char *name;
    napi_callback cb;
  } fns[] = {
      {"layout", layout}, {"sealSlots", seal_slots}, {"openSlots", open_slots}, {"seal", seal_packet}, {"open", open_packet},
  };
  for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
    napi_value fn;
    if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].cb, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, fns[i].name, fn) != napi_ok) {
      return NULL;
    }
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
