// wirepool's handshake primitives (spec §1): X25519, BLAKE2s, HMAC-BLAKE2s, the Noise KDF, keyed
// BLAKE2s-128 (MAC), ChaCha20-Poly1305 and XChaCha20-Poly1305 with additional data, for the Noise
// handshake and cookie messages on the main thread (src/crypto/native-handshake.ts). Plain C, N-API,
// through the OpenSSL that Node.js itself links (the node binary exports its symbols; node-gyp puts
// Node's OpenSSL headers on the include path).
//
// Exports (all synchronous). Inputs and outputs go through one I/O area per thread, an ArrayBuffer
// handed over once with setIo(u8): a call reads its inputs from the start of it (layout per
// function below), computes, wipes them, and leaves its output at offset 0 (the caller copies it
// out and zeroes it). Arguments are only lengths and counters. Wrong arguments throw TypeError /
// RangeError (the I/O area is wiped then too).
//   setIo(u8)                                  the I/O area (an ArrayBuffer view, >= 256 bytes)
//   x25519() -> bool                           priv(32) || pub(32) -> X25519(priv, pub); false (output
//                                              zero) when it is all zero, i.e. pub is a low-order
//                                              point (RFC 7748 §6.1)
//   x25519Base()                               priv(32) -> X25519(priv, 9), its public key
//   blake2s(outLen, keyLen, len)               key || data -> BLAKE2s with digest length outLen
//                                              (1..32), keyed when keyLen > 0 (1..32): hash and MAC
//   hmac(keyLen, len)                          key || data -> HMAC-BLAKE2s (RFC 2104, 64-byte block)
//   kdf(n, keyLen, len)                        key || input -> Noise KDF_n (n = 1..3): T1 || … || Tn
//   aeadSeal(lo, hi, adLen, len) / aeadOpen(lo, hi, adLen, len) -> bool
//                                              key(32) || ad || data -> ChaCha20-Poly1305, nonce
//                                              0^4 || (hi:lo) as u64 LE; seal: ciphertext || tag
//   xaeadSeal(adLen, len) / xaeadOpen(adLen, len) -> bool
//                                              key(32) || nonce(24) || ad || data -> XChaCha20-Poly1305
//   random(len)                                -> io[0, len) = random bytes from OpenSSL's private
//                                              generator (RAND_priv_bytes: ephemeral keys come from
//                                              it); node's randomFillSync costs ≈ 2.4 µs a call, this
//                                              ≈ 0.9 for 32 bytes
//   backend() -> { x25519, x25519Base }        which X25519 code is in use: x25519 'ossl' or
//                                              'evp', x25519Base 'comb' (x25519_base.c)
//
// Choices (measured on a 2-vCPU Xeon: thread CPU time per call in a C loop, and per call from JS with
// bench/handshake-crypto.ts; table in bench/HANDSHAKES.md):
// - X25519: OpenSSL's own raw-key function ossl_x25519 (~29–35 µs, 64-bit assembly) when the node
//   binary exports it (Node 20 does); it is an internal OpenSSL symbol, so it is declared weak and,
//   when absent, the EVP_PKEY path (raw key import + derive, ~80 µs: the private-key import also
//   computes the public key) is used instead. Both refuse an all-zero result. No key object
//   survives a call. Public keys come from x25519_base.c, a fixed-base comb on 51-bit limbs
//   (~14 µs; OpenSSL's ossl_x25519_public_from_private runs the same comb on ref10's ten-limb field
//   elements, ~21–31 µs).
// - BLAKE2s: RFC 7693 in C below (~165 ns per 64-byte block against ~195 ns through EVP_Digest and
//   ~370 ns for a keyed 16-byte MAC through EVP_MAC BLAKE2SMAC; HMAC through EVP_MAC HMAC ~1.2 µs
//   against ~0.7 µs here). The KDF compresses the HMAC pads of its PRK once and reuses them for
//   T1..Tn (2 compressions per output instead of 4): one call for what was 2–4 HMACs.
// - ChaCha20-Poly1305: OpenSSL EVP with one reused context per thread (N-API instance data).
//
// - I/O area: a fresh small Uint8Array handed to N-API costs ≈ 0.3 µs (V8 moves it off the JS heap
//   first), more than a BLAKE2s block; copying into one off-heap area per thread costs ≈ 20 ns.
//
// Secrets: every temporary that held key material (BLAKE2s states, HMAC pads, the PRK, the
// HChaCha20 subkey and state, X25519 outputs) is wiped with OPENSSL_cleanse before returning, and so
// is every input byte in the I/O area (also when a call is refused); the caller zeroes the output
// there after copying it (crypto.ts).

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <node_api.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "x25519_base.h"

#define KEY_SIZE 32
#define TAG_SIZE 16
#define HASH_SIZE 32
#define BLOCK 64

// OpenSSL internals (crypto/ec/curve25519.c), exported by the node binary; weak, so a binary
// without them leaves these NULL and the EVP path is used.
extern int ossl_x25519(uint8_t out_shared_key[32], const uint8_t private_key[32], const uint8_t peer_public_value[32])
    __attribute__((weak));

// ---- BLAKE2s (RFC 7693) -------------------------------------------------------------------------

static const uint32_t B2S_IV[8] = {0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au,
                                   0x510E527Fu, 0x9B05688Cu, 0x1F83D9ABu, 0x5BE0CD19u};

static const uint8_t B2S_SIGMA[10][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4}, {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13}, {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11}, {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5}, {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
};

typedef struct {
  uint32_t h[8];
  uint64_t t;          // bytes compressed so far
  uint8_t buf[BLOCK];  // pending input; a full block is kept until more input (or the end) comes
  size_t n;            // bytes in buf
  size_t outlen;
} b2s_state;

static inline uint32_t rotr32(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }
static inline uint32_t load32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline void store32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

#define B2S_G(a, b, c, d, x, y)     \
  do {                              \
    v[a] = v[a] + v[b] + (x);       \
    v[d] = rotr32(v[d] ^ v[a], 16); \
    v[c] = v[c] + v[d];             \
    v[b] = rotr32(v[b] ^ v[c], 12); \
    v[a] = v[a] + v[b] + (y);       \
    v[d] = rotr32(v[d] ^ v[a], 8);  \
    v[c] = v[c] + v[d];             \
    v[b] = rotr32(v[b] ^ v[c], 7);  \
  } while (0)

static void b2s_compress(b2s_state *s, const uint8_t block[BLOCK], int last) {
  uint32_t m[16], v[16];
  for (int i = 0; i < 16; i++) m[i] = load32(block + 4 * i);
  for (int i = 0; i < 8; i++) {
    v[i] = s->h[i];
    v[i + 8] = B2S_IV[i];
  }
  v[12] ^= (uint32_t)s->t;
  v[13] ^= (uint32_t)(s->t >> 32);
  if (last) v[14] = ~v[14];
  for (int r = 0; r < 10; r++) {
    const uint8_t *z = B2S_SIGMA[r];
    B2S_G(0, 4, 8, 12, m[z[0]], m[z[1]]);
    B2S_G(1, 5, 9, 13, m[z[2]], m[z[3]]);
    B2S_G(2, 6, 10, 14, m[z[4]], m[z[5]]);
    B2S_G(3, 7, 11, 15, m[z[6]], m[z[7]]);
    B2S_G(0, 5, 10, 15, m[z[8]], m[z[9]]);
    B2S_G(1, 6, 11, 12, m[z[10]], m[z[11]]);
    B2S_G(2, 7, 8, 13, m[z[12]], m[z[13]]);
    B2S_G(3, 4, 9, 14, m[z[14]], m[z[15]]);
  }
  for (int i = 0; i < 8; i++) s->h[i] ^= v[i] ^ v[i + 8];
  OPENSSL_cleanse(m, sizeof(m));
  OPENSSL_cleanse(v, sizeof(v));
}

static void b2s_update(b2s_state *s, const uint8_t *in, size_t len) {
  while (len > 0) {
    if (s->n == BLOCK) { // more input follows, so the buffered block is not the last one
      s->t += BLOCK;
      b2s_compress(s, s->buf, 0);
      s->n = 0;
    }
    size_t k = BLOCK - s->n;
    if (k > len) k = len;
    memcpy(s->buf + s->n, in, k);
    s->n += k;
    in += k;
    len -= k;
  }
}

// outlen 1..32; key NULL/keylen 0 (unkeyed) or 1..32 bytes (the key, zero-padded, is the first block).
static void b2s_init(b2s_state *s, size_t outlen, const uint8_t *key, size_t keylen) {
  for (int i = 0; i < 8; i++) s->h[i] = B2S_IV[i];
  s->h[0] ^= 0x01010000u ^ ((uint32_t)keylen << 8) ^ (uint32_t)outlen;
  s->t = 0;
  s->n = 0;
  s->outlen = outlen;
  if (keylen > 0) {
    memset(s->buf, 0, BLOCK);
    memcpy(s->buf, key, keylen);
    s->n = BLOCK;
  }
}

// Writes the digest and wipes the state.
static void b2s_final(b2s_state *s, uint8_t *out) {
  uint8_t full[HASH_SIZE];
  s->t += s->n;
  memset(s->buf + s->n, 0, BLOCK - s->n);
  b2s_compress(s, s->buf, 1);
  for (int i = 0; i < 8; i++) store32(full + 4 * i, s->h[i]);
  memcpy(out, full, s->outlen);
  OPENSSL_cleanse(full, sizeof(full));
  OPENSSL_cleanse(s, sizeof(*s));
}

// ---- HMAC-BLAKE2s and the Noise KDF -------------------------------------------------------------

// The HMAC of one key: inner and outer states with the padded key block already compressed (as a
// non-final block, so valid for non-empty messages), and the inner pad block itself for the empty
// message, whose only inner block it is.
typedef struct {
  b2s_state inner, outer;
  uint8_t ipad[BLOCK];
} hmac_key;

static void hmac_key_init(hmac_key *hk, const uint8_t *key, size_t keylen) {
  uint8_t block[BLOCK];
  memset(block, 0, BLOCK);
  if (keylen > BLOCK) { // RFC 2104: longer keys are hashed first
    b2s_state s;
    b2s_init(&s, HASH_SIZE, NULL, 0);
    b2s_update(&s, key, keylen);
    b2s_final(&s, block);
  } else if (keylen > 0) {
    memcpy(block, key, keylen);
  }
  for (int i = 0; i < BLOCK; i++) block[i] ^= 0x36;
  memcpy(hk->ipad, block, BLOCK);
  b2s_init(&hk->inner, HASH_SIZE, NULL, 0);
  hk->inner.t = BLOCK;
  b2s_compress(&hk->inner, block, 0); // never the last block: the message (or padding) follows
  for (int i = 0; i < BLOCK; i++) block[i] ^= 0x36 ^ 0x5c;
  b2s_init(&hk->outer, HASH_SIZE, NULL, 0);
  hk->outer.t = BLOCK;
  b2s_compress(&hk->outer, block, 0);
  OPENSSL_cleanse(block, sizeof(block));
}

// HMAC(key, a || b || c) from a prepared key (left intact); any part may be empty.
static void hmac_with(const hmac_key *hk, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
                      const uint8_t *c, size_t clen, uint8_t out[HASH_SIZE]) {
  b2s_state s;
  uint8_t inner[HASH_SIZE];
  if (alen + blen + clen == 0) { // the pad block is the last block
    b2s_init(&s, HASH_SIZE, NULL, 0);
    b2s_update(&s, hk->ipad, BLOCK);
  } else {
    s = hk->inner;
  }
  b2s_update(&s, a, alen);
  b2s_update(&s, b, blen);
  b2s_update(&s, c, clen);
  b2s_final(&s, inner);
  s = hk->outer;
  b2s_update(&s, inner, HASH_SIZE);
  b2s_final(&s, out);
  OPENSSL_cleanse(inner, sizeof(inner));
}

// Noise KDF_n (spec §1): prk = HMAC(key, input); T1 = HMAC(prk, 0x01); Ti = HMAC(prk, T(i-1) || i).
static void kdf(const uint8_t *key, size_t keylen, const uint8_t *input, size_t inlen, uint8_t *out, int n) {
  hmac_key hk;
  uint8_t prk[HASH_SIZE];
  hmac_key_init(&hk, key, keylen);
  hmac_with(&hk, input, inlen, NULL, 0, NULL, 0, prk);
  hmac_key_init(&hk, prk, HASH_SIZE);
  for (int i = 0; i < n; i++) {
    uint8_t counter = (uint8_t)(i + 1);
    hmac_with(&hk, i == 0 ? NULL : out + HASH_SIZE * (i - 1), i == 0 ? 0 : HASH_SIZE, &counter, 1, NULL, 0,
              out + HASH_SIZE * i);
  }
  OPENSSL_cleanse(prk, sizeof(prk));
  OPENSSL_cleanse(&hk, sizeof(hk));
}

// ---- HChaCha20 (draft-irtf-cfrg-xchacha §2.2) ---------------------------------------------------

#define QR(a, b, c, d)                  \
  do {                                  \
    x[a] += x[b];                       \
    x[d] = rotr32(x[d] ^ x[a], 16);     \
    x[c] += x[d];                       \
    x[b] = rotr32(x[b] ^ x[c], 20);     \
    x[a] += x[b];                       \
    x[d] = rotr32(x[d] ^ x[a], 24);     \
    x[c] += x[d];                       \
    x[b] = rotr32(x[b] ^ x[c], 25);     \
  } while (0)

static void hchacha20(uint8_t out[KEY_SIZE], const uint8_t key[KEY_SIZE], const uint8_t nonce[16]) {
  uint32_t x[16];
  x[0] = 0x61707865u;
  x[1] = 0x3320646eu;
  x[2] = 0x79622d32u;
  x[3] = 0x6b206574u;
  for (int i = 0; i < 8; i++) x[4 + i] = load32(key + 4 * i);
  for (int i = 0; i < 4; i++) x[12 + i] = load32(nonce + 4 * i);
  for (int i = 0; i < 10; i++) {
    QR(0, 4, 8, 12);
    QR(1, 5, 9, 13);
    QR(2, 6, 10, 14);
    QR(3, 7, 11, 15);
    QR(0, 5, 10, 15);
    QR(1, 6, 11, 12);
    QR(2, 7, 8, 13);
    QR(3, 4, 9, 14);
  }
  for (int i = 0; i < 4; i++) store32(out + 4 * i, x[i]);
  for (int i = 0; i < 4; i++) store32(out + 16 + 4 * i, x[12 + i]);
  OPENSSL_cleanse(x, sizeof(x));
}

// ---- per-thread state: one ChaCha20-Poly1305 context --------------------------------------------

typedef struct {
  EVP_CIPHER_CTX *ctx;
  uint8_t *io;      // the I/O area (setIo), io_len bytes; NULL until set
  size_t io_len;
  napi_ref io_ref;  // keeps the I/O area's ArrayBuffer alive
} hs_state;

static void state_free(napi_env env, void *data, void *hint) {
  (void)hint;
  hs_state *st = data;
  if (st == NULL) return;
  EVP_CIPHER_CTX_free(st->ctx); // cleanses the key schedule
  if (st->io_ref != NULL) napi_delete_reference(env, st->io_ref);
  free(st);
}

// ChaCha20-Poly1305 seal of pt into out (len + 16 bytes). 1 on success.
static int aead_seal(hs_state *st, const uint8_t key[KEY_SIZE], const uint8_t nonce[12], const uint8_t *pt,
                     size_t len, const uint8_t *ad, size_t adlen, uint8_t *out) {
  EVP_CIPHER_CTX *ctx = st->ctx;
  int outl;
  OSSL_PARAM get_tag[2] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, out + len, TAG_SIZE),
                           OSSL_PARAM_construct_end()};
  if (len > INT32_MAX || adlen > INT32_MAX) return 0;
  if (EVP_CipherInit_ex2(ctx, NULL, key, nonce, 1, NULL) != 1) goto fail;
  if (adlen > 0 && EVP_CipherUpdate(ctx, NULL, &outl, ad, (int)adlen) != 1) goto fail;
  if (len > 0 && (EVP_CipherUpdate(ctx, out, &outl, pt, (int)len) != 1 || outl != (int)len)) goto fail;
  if (EVP_CipherFinal_ex(ctx, out + len, &outl) != 1) goto fail;
  if (EVP_CIPHER_CTX_get_params(ctx, get_tag) != 1) goto fail;
  return 1;
fail:
  ERR_clear_error();
  return 0;
}

// ChaCha20-Poly1305 open of ct (len + 16 bytes, tag last) into out (len bytes). 1 when authentic;
// otherwise 0 and out wiped.
static int aead_open(hs_state *st, const uint8_t key[KEY_SIZE], const uint8_t nonce[12], const uint8_t *ct,
                     size_t len, const uint8_t *ad, size_t adlen, uint8_t *out) {
  EVP_CIPHER_CTX *ctx = st->ctx;
  int outl;
  uint8_t tag[TAG_SIZE];
  memcpy(tag, ct + len, TAG_SIZE); // before anything is written: out may overlap ct
  OSSL_PARAM set_tag[2] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, TAG_SIZE),
                           OSSL_PARAM_construct_end()};
  if (len > INT32_MAX || adlen > INT32_MAX) goto fail;
  if (EVP_CipherInit_ex2(ctx, NULL, key, nonce, 0, set_tag) != 1) goto fail;
  if (adlen > 0 && EVP_CipherUpdate(ctx, NULL, &outl, ad, (int)adlen) != 1) goto fail;
  if (len > 0 && (EVP_CipherUpdate(ctx, out, &outl, ct, (int)len) != 1 || outl != (int)len)) goto fail;
  if (EVP_CipherFinal_ex(ctx, out + len, &outl) != 1) goto fail; // constant-time tag compare
  return 1;
fail:
  ERR_clear_error();
  if (len > 0) OPENSSL_cleanse(out, len);
  return 0;
}

static inline void make_nonce(uint8_t nonce[12], uint32_t lo, uint32_t hi) {
  memset(nonce, 0, 4);
  store32(nonce + 4, lo);
  store32(nonce + 8, hi);
}

// ---- X25519 -------------------------------------------------------------------------------------

static int x25519_evp(uint8_t out[32], const uint8_t priv[32], const uint8_t pub[32]) {
  int ok = 0;
  size_t outlen = 32;
  EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, 32);
  EVP_PKEY *p = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, pub, 32);
  EVP_PKEY_CTX *ctx = k != NULL ? EVP_PKEY_CTX_new(k, NULL) : NULL;
  // OpenSSL refuses an all-zero result (a low-order peer key) in derive.
  if (ctx != NULL && p != NULL && EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, p) == 1 &&
      EVP_PKEY_derive(ctx, out, &outlen) == 1 && outlen == 32) {
    ok = 1;
  }
  EVP_PKEY_CTX_free(ctx);
  EVP_PKEY_free(p);
  EVP_PKEY_free(k); // cleanses the private key
  ERR_clear_error();
  return ok;
}

// 1 when out is a usable shared secret; else 0 and out all zero.
static int do_x25519(uint8_t out[32], const uint8_t priv[32], const uint8_t pub[32]) {
  int ok = ossl_x25519 != NULL ? ossl_x25519(out, priv, pub) : x25519_evp(out, priv, pub);
  uint8_t acc = 0;
  for (int i = 0; i < 32; i++) acc |= out[i];
  if (!ok || acc == 0) {
    OPENSSL_cleanse(out, 32);
    return 0;
  }
  return 1;
}

// ---- argument helpers ---------------------------------------------------------------------------

static napi_value throw_range(napi_env env, const char *msg) {
  napi_throw_range_error(env, NULL, msg);
  return NULL;
}

// A refused call: whatever the caller put in the I/O area is wiped.
static napi_value fail_range(napi_env env, hs_state *st, const char *msg) {
  OPENSSL_cleanse(st->io, st->io_len);
  return throw_range(env, msg);
}

// The thread's state, with its I/O area set (setIo); NULL (an exception pending) otherwise.
static hs_state *get_state(napi_env env) {
  void *data = NULL;
  if (napi_get_instance_data(env, &data) != napi_ok || data == NULL) {
    napi_throw_error(env, NULL, "wirepool_handshake: instance state missing");
    return NULL;
  }
  hs_state *st = data;
  if (st->io == NULL) {
    napi_throw_error(env, NULL, "wirepool_handshake: setIo() was not called");
    return NULL;
  }
  return st;
}

// argv[0..n) as lengths/counters: integers in [0, max].
static int get_sizes(napi_env env, napi_value *argv, size_t n, uint32_t max, uint32_t *out) {
  for (size_t i = 0; i < n; i++) {
    double d;
    if (napi_get_value_double(env, argv[i], &d) != napi_ok) {
      napi_throw_type_error(env, NULL, "wirepool_handshake: a length must be a number");
      return 0;
    }
    if (!(d >= 0 && d <= (double)max) || d != (double)(uint32_t)d) {
      throw_range(env, "wirepool_handshake: length out of range");
      return 0;
    }
    out[i] = (uint32_t)d;
  }
  return 1;
}

// The arguments of a call: its state and n integers; the inputs (together `used` bytes, checked
// against the I/O area by the caller) are at the start of the I/O area.
#define ARGS(n, max)                                                                  \
  size_t argc = (n);                                                                  \
  napi_value argv[(n) > 0 ? (n) : 1];                                                 \
  uint32_t a[(n) > 0 ? (n) : 1];                                                      \
  hs_state *st = get_state(env);                                                      \
  if (st == NULL) return NULL;                                                        \
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {              \
    OPENSSL_cleanse(st->io, st->io_len);                                              \
    return NULL;                                                                      \
  }                                                                                   \
  if (argc < (n)) {                                                                   \
    OPENSSL_cleanse(st->io, st->io_len);                                              \
    napi_throw_type_error(env, NULL, "wirepool_handshake: missing arguments");        \
    return NULL;                                                                      \
  }                                                                                   \
  if (!get_sizes(env, argv, (n), (max), a)) {                                         \
    OPENSSL_cleanse(st->io, st->io_len);                                              \
    return NULL;                                                                      \
  }                                                                                   \
  uint8_t *io = st->io;

// The state of a call without arguments.
#define ARGS0()                         \
  hs_state *st = get_state(env);        \
  (void)info;                           \
  if (st == NULL) return NULL;          \
  uint8_t *io = st->io;

#define CHECK_USED(used)                                                                          \
  if ((uint64_t)(used) > st->io_len) return fail_range(env, st, "wirepool_handshake: inputs exceed the I/O area");

// Ends a call: the inputs are wiped, then the result (r, outlen bytes) is the start of the I/O area.
static void finish(hs_state *st, size_t used, uint8_t *r, size_t outlen) {
  OPENSSL_cleanse(st->io, used > outlen ? used : outlen);
  memcpy(st->io, r, outlen);
  OPENSSL_cleanse(r, outlen);
}

static napi_value make_bool(napi_env env, int b) {
  napi_value r;
  napi_get_boolean(env, b != 0, &r);
  return r;
}

// ---- exports ------------------------------------------------------------------------------------
// The I/O area: one ArrayBuffer per thread, handed over once with setIo(u8) (kept alive by a
// reference). Every other call reads its inputs from the start of it, laid out as documented per
// function, and leaves its output at offset 0 with every other byte it used zeroed. (Passing the
// small arrays of a handshake to N-API one by one costs ~0.3 µs each for the fresh ones: V8 moves
// a new small typed array's bytes off the JS heap the first time native code asks for them.)

static napi_value js_set_io(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *data = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (napi_get_instance_data(env, &data) != napi_ok || data == NULL) {
    napi_throw_error(env, NULL, "wirepool_handshake: instance state missing");
    return NULL;
  }
  hs_state *st = data;
  napi_typedarray_type type;
  size_t len = 0;
  void *p = NULL;
  napi_value ab;
  bool is_ab = false;
  if (argc < 1 || napi_get_typedarray_info(env, argv[0], &type, &len, &p, &ab, NULL) != napi_ok ||
      type != napi_uint8_array || napi_is_arraybuffer(env, ab, &is_ab) != napi_ok || !is_ab || p == NULL || len < 256) {
    napi_throw_type_error(env, NULL, "setIo needs a Uint8Array of at least 256 bytes on an ArrayBuffer");
    return NULL;
  }
  if (st->io_ref != NULL) {
    napi_throw_error(env, NULL, "wirepool_handshake: setIo() was already called");
    return NULL;
  }
  if (napi_create_reference(env, argv[0], 1, &st->io_ref) != napi_ok) return NULL;
  st->io = p;
  st->io_len = len;
  OPENSSL_cleanse(st->io, len);
  return NULL;
}

// x25519(): io = priv(32) || pub(32) -> io[0, 32) = X25519(priv, pub); true, or false (all zero:
// pub is a low-order point).
static napi_value js_x25519(napi_env env, napi_callback_info info) {
  ARGS0();
  uint8_t r[32];
  int ok = do_x25519(r, io, io + 32);
  finish(st, 64, r, 32);
  return make_bool(env, ok);
}

// x25519Base(): io = priv(32) -> io[0, 32) = its public key.
static napi_value js_x25519_base(napi_env env, napi_callback_info info) {
  ARGS0();
  uint8_t r[32];
  x25519_base(r, io);
  finish(st, 32, r, 32);
  return NULL;
}

// random(len): io[0, len) = random bytes from the private generator.
static napi_value js_random(napi_env env, napi_callback_info info) {
  ARGS(1, UINT32_MAX);
  uint32_t len = a[0];
  CHECK_USED(len);
  if (len > INT32_MAX || RAND_priv_bytes(io, (int)len) != 1) {
    OPENSSL_cleanse(io, len);
    napi_throw_error(env, NULL, "wirepool_handshake: the random generator failed");
  }
  return NULL;
}

// blake2s(outLen, keyLen, dataLen): io = key || data -> io[0, outLen) = BLAKE2s-outLen (keyed when keyLen > 0).
static napi_value js_blake2s(napi_env env, napi_callback_info info) {
  ARGS(3, UINT32_MAX);
  uint32_t outlen = a[0], keylen = a[1], len = a[2];
  if (outlen < 1 || outlen > 32) return fail_range(env, st, "BLAKE2s digest length must be 1–32 bytes");
  if (keylen > 32) return fail_range(env, st, "MAC key must be 1–32 bytes");
  CHECK_USED((uint64_t)keylen + len);
  b2s_state s;
  uint8_t r[HASH_SIZE];
  b2s_init(&s, outlen, io, keylen);
  b2s_update(&s, io + keylen, len);
  b2s_final(&s, r);
  finish(st, (size_t)keylen + len, r, outlen);
  return NULL;
}

// hmac(keyLen, dataLen): io = key || data -> io[0, 32) = HMAC-BLAKE2s(key, data).
static napi_value js_hmac(napi_env env, napi_callback_info info) {
  ARGS(2, UINT32_MAX);
  uint32_t keylen = a[0], len = a[1];
  CHECK_USED((uint64_t)keylen + len);
  hmac_key hk;
  uint8_t r[HASH_SIZE];
  hmac_key_init(&hk, io, keylen);
  hmac_with(&hk, io + keylen, len, NULL, 0, NULL, 0, r);
  OPENSSL_cleanse(&hk, sizeof(hk));
  finish(st, (size_t)keylen + len, r, HASH_SIZE);
  return NULL;
}

// kdf(n, keyLen, inputLen): io = key || input -> io[0, 32n) = T1 || … || Tn.
static napi_value js_kdf(napi_env env, napi_callback_info info) {
  ARGS(3, UINT32_MAX);
  uint32_t n = a[0], keylen = a[1], len = a[2];
  if (n < 1 || n > 3) return fail_range(env, st, "KDF outputs must be 1–3");
  CHECK_USED((uint64_t)keylen + len);
  uint8_t r[96];
  kdf(io, keylen, io + keylen, len, r, (int)n);
  finish(st, (size_t)keylen + len, r, 32 * (size_t)n);
  return NULL;
}

// aeadSeal(lo, hi, adLen, ptLen): io = key(32) || ad || pt -> io[0, ptLen + 16) = ciphertext || tag.
// aeadOpen(lo, hi, adLen, ctLen): io = key(32) || ad || ct (ctLen >= 16, tag last) -> true and
// io[0, ctLen - 16) = plaintext, or false (io left zeroed). The counter is (hi:lo) as u64 LE.
// The output is first written after the inputs, then moved to the start.
static napi_value aead(napi_env env, napi_callback_info info, int seal) {
  ARGS(4, UINT32_MAX);
  uint32_t lo = a[0], hi = a[1], adlen = a[2], len = a[3];
  if (!seal && len < TAG_SIZE) return fail_range(env, st, "ciphertext shorter than the tag");
  uint64_t used = (uint64_t)KEY_SIZE + adlen + len;
  size_t outlen = seal ? (size_t)len + TAG_SIZE : (size_t)len - TAG_SIZE;
  CHECK_USED(used + outlen);
  uint8_t nonce[12];
  make_nonce(nonce, lo, hi);
  uint8_t *ad = io + KEY_SIZE, *in = ad + adlen, *out = io + used;
  int ok = seal ? aead_seal(st, io, nonce, in, len, ad, adlen, out) : aead_open(st, io, nonce, in, outlen, ad, adlen, out);
  OPENSSL_cleanse(io, (size_t)used);
  if (ok) memmove(io, out, outlen); // outlen <= used: no overlap with what is wiped next
  OPENSSL_cleanse(out, outlen);
  if (seal && !ok) {
    napi_throw_error(env, NULL, "ChaCha20-Poly1305 seal failed");
    return NULL;
  }
  return seal ? NULL : make_bool(env, ok);
}

static napi_value js_aead_seal(napi_env env, napi_callback_info info) { return aead(env, info, 1); }
static napi_value js_aead_open(napi_env env, napi_callback_info info) { return aead(env, info, 0); }

// xaeadSeal(adLen, ptLen) / xaeadOpen(adLen, ctLen): io = key(32) || nonce(24) || ad || data, as aead
// with the HChaCha20 subkey of (key, nonce[0, 16)) and the nonce 0^4 || nonce[16, 24).
static napi_value xaead(napi_env env, napi_callback_info info, int seal) {
  ARGS(2, UINT32_MAX);
  uint32_t adlen = a[0], len = a[1];
  if (!seal && len < TAG_SIZE) return fail_range(env, st, "ciphertext shorter than the tag");
  uint64_t used = (uint64_t)KEY_SIZE + 24 + adlen + len;
  size_t outlen = seal ? (size_t)len + TAG_SIZE : (size_t)len - TAG_SIZE;
  CHECK_USED(used + outlen);
  uint8_t subkey[KEY_SIZE], nonce[12];
  uint8_t *ad = io + KEY_SIZE + 24, *in = ad + adlen, *out = io + used;
  hchacha20(subkey, io, io + KEY_SIZE);
  memset(nonce, 0, 4);
  memcpy(nonce + 4, io + KEY_SIZE + 16, 8);
  int ok = seal ? aead_seal(st, subkey, nonce, in, len, ad, adlen, out) : aead_open(st, subkey, nonce, in, outlen, ad, adlen, out);
  OPENSSL_cleanse(subkey, sizeof(subkey));
  OPENSSL_cleanse(io, (size_t)used);
  if (ok) memmove(io, out, outlen);
  OPENSSL_cleanse(out, outlen);
  if (seal && !ok) {
    napi_throw_error(env, NULL, "XChaCha20-Poly1305 seal failed");
    return NULL;
  }
  return seal ? NULL : make_bool(env, ok);
}

static napi_value js_xaead_seal(napi_env env, napi_callback_info info) { return xaead(env, info, 1); }
static napi_value js_xaead_open(napi_env env, napi_callback_info info) { return xaead(env, info, 0); }

static napi_value js_backend(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value obj, v;
  napi_create_object(env, &obj);
  napi_create_string_utf8(env, ossl_x25519 != NULL ? "ossl" : "evp", NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, "x25519", v);
  napi_create_string_utf8(env, "comb", NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, "x25519Base", v);
  return obj;
}

static napi_value init(napi_env env, napi_value exports) {
  hs_state *st = calloc(1, sizeof(*st));
  EVP_CIPHER *cipher = NULL;
  if (st == NULL || (st->ctx = EVP_CIPHER_CTX_new()) == NULL ||
      (cipher = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL)) == NULL ||
      EVP_CipherInit_ex2(st->ctx, cipher, NULL, NULL, 1, NULL) != 1) {
    EVP_CIPHER_free(cipher);
    state_free(env, st, NULL);
    ERR_clear_error();
    napi_throw_error(env, NULL, "wirepool_handshake: cannot set up ChaCha20-Poly1305");
    return NULL;
  }
  EVP_CIPHER_free(cipher); // the context keeps its own reference
  x25519_base_init();
  if (napi_set_instance_data(env, st, state_free, NULL) != napi_ok) {
    state_free(env, st, NULL);
    napi_throw_error(env, NULL, "wirepool_handshake: napi_set_instance_data failed");
    return NULL;
  }
  const napi_property_descriptor props[] = {
      {"setIo", NULL, js_set_io, NULL, NULL, NULL, napi_enumerable, NULL},
      {"x25519", NULL, js_x25519, NULL, NULL, NULL, napi_enumerable, NULL},
      {"x25519Base", NULL, js_x25519_base, NULL, NULL, NULL, napi_enumerable, NULL},
      {"blake2s", NULL, js_blake2s, NULL, NULL, NULL, napi_enumerable, NULL},
      {"hmac", NULL, js_hmac, NULL, NULL, NULL, napi_enumerable, NULL},
      {"kdf", NULL, js_kdf, NULL, NULL, NULL, napi_enumerable, NULL},
      {"aeadSeal", NULL, js_aead_seal, NULL, NULL, NULL, napi_enumerable, NULL},
      {"aeadOpen", NULL, js_aead_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"xaeadSeal", NULL, js_xaead_seal, NULL, NULL, NULL, napi_enumerable, NULL},
      {"xaeadOpen", NULL, js_xaead_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"random", NULL, js_random, NULL, NULL, NULL, napi_enumerable, NULL},
      {"backend", NULL, js_backend, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
