// ChaCha20-Poly1305 (RFC 8439, empty associated data) in portable C: see chacha20poly1305.h.
// ChaCha20 as in §2.3–2.4; Poly1305 (§2.5) with the accumulator and r in 44/44/42-bit limbs and
// 128-bit products; the AEAD construction of §2.8, where every block Poly1305 absorbs is whole
// (the ciphertext is zero-padded to 16 bytes, then the two lengths make one block).
#include "chacha20poly1305.h"

#include <string.h>

#if CP_AVAILABLE

/** Zero key material (a store the compiler must not elide). */
static inline void cp_wipe(void *p, size_t n) { explicit_bzero(p, n); }

static inline uint32_t cp_rotl(uint32_t v, int n) { return (v << n) | (v >> (32 - n)); }
static inline uint32_t cp_le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static inline uint64_t cp_le64(const uint8_t *p) { return (uint64_t)cp_le32(p) | (uint64_t)cp_le32(p + 4) << 32; }
static inline void cp_put32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24); }
static inline void cp_put64(uint8_t *p, uint64_t v) { cp_put32(p, (uint32_t)v); cp_put32(p + 4, (uint32_t)(v >> 32)); }

#define CP_QR(a, b, c, d) \
  a += b; d = cp_rotl(d ^ a, 16); c += d; b = cp_rotl(b ^ c, 12); \
  a += b; d = cp_rotl(d ^ a, 8);  c += d; b = cp_rotl(b ^ c, 7)

/** One ChaCha20 block (RFC 8439 §2.3) for key, block counter and 96-bit nonce. */
static void cp_chacha_block(const uint32_t key[8], uint32_t counter, const uint32_t nonce[3], uint8_t out[64]) {
  uint32_t in[16] = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574, key[0], key[1], key[2], key[3],
                     key[4], key[5], key[6], key[7], counter, nonce[0], nonce[1], nonce[2]};
  uint32_t x[16];
  memcpy(x, in, sizeof x);
  for (int i = 0; i < 10; i++) {
    CP_QR(x[0], x[4], x[8], x[12]); CP_QR(x[1], x[5], x[9], x[13]); CP_QR(x[2], x[6], x[10], x[14]); CP_QR(x[3], x[7], x[11], x[15]);
    CP_QR(x[0], x[5], x[10], x[15]); CP_QR(x[1], x[6], x[11], x[12]); CP_QR(x[2], x[7], x[8], x[13]); CP_QR(x[3], x[4], x[9], x[14]);
  }
  for (int i = 0; i < 16; i++) cp_put32(out + 4 * i, x[i] + in[i]);
  cp_wipe(x, sizeof x);
  cp_wipe(in, sizeof in);
}

/** XOR p[0, len) with the ChaCha20 key stream from block counter 1 (RFC 8439 §2.4). */
static void cp_chacha_xor(const uint32_t key[8], const uint32_t nonce[3], uint8_t *p, size_t len) {
  uint8_t ks[64];
  for (uint32_t ctr = 1; len > 0; ctr++) {
    cp_chacha_block(key, ctr, nonce, ks);
    size_t n = len < 64 ? len : 64;
    for (size_t i = 0; i < n; i++) p[i] ^= ks[i];
    p += n;
    len -= n;
  }
  cp_wipe(ks, sizeof ks);
}

/** Poly1305 (RFC 8439 §2.5) in 44/44/42-bit limbs, for input made of whole 16-byte blocks. */
typedef struct { uint64_t r0, r1, r2, s1, s2, h0, h1, h2, pad0, pad1; } cp_poly;

#define CP_M44 0xfffffffffffULL
#define CP_M42 0x3ffffffffffULL

static void cp_poly_init(cp_poly *st, const uint8_t key[32]) {
  uint64_t t0 = cp_le64(key), t1 = cp_le64(key + 8);
  st->r0 = t0 & 0xffc0fffffffULL;
  st->r1 = ((t0 >> 44) | (t1 << 20)) & 0xfffffc0ffffULL;
  st->r2 = (t1 >> 24) & 0x00ffffffc0fULL;
  st->s1 = st->r1 * (5 << 2);
  st->s2 = st->r2 * (5 << 2);
  st->h0 = st->h1 = st->h2 = 0;
  st->pad0 = cp_le64(key + 16);
  st->pad1 = cp_le64(key + 24);
}

/** Absorb one 16-byte block (with the 2^128 bit: every block of the AEAD's input is whole). */
static void cp_poly_block(cp_poly *st, const uint8_t m[16]) {
  typedef unsigned __int128 u128;
  uint64_t t0 = cp_le64(m), t1 = cp_le64(m + 8);
  uint64_t h0 = st->h0 + (t0 & CP_M44);
  uint64_t h1 = st->h1 + (((t0 >> 44) | (t1 << 20)) & CP_M44);
  uint64_t h2 = st->h2 + (((t1 >> 24) & CP_M42) | (1ULL << 40));
  u128 d0 = (u128)h0 * st->r0 + (u128)h1 * st->s2 + (u128)h2 * st->s1;
  u128 d1 = (u128)h0 * st->r1 + (u128)h1 * st->r0 + (u128)h2 * st->s2;
  u128 d2 = (u128)h0 * st->r2 + (u128)h1 * st->r1 + (u128)h2 * st->r0;
  uint64_t c = (uint64_t)(d0 >> 44); h0 = (uint64_t)d0 & CP_M44;
  d1 += c; c = (uint64_t)(d1 >> 44); h1 = (uint64_t)d1 & CP_M44;
  d2 += c; c = (uint64_t)(d2 >> 42); h2 = (uint64_t)d2 & CP_M42;
  h0 += c * 5; c = h0 >> 44; h0 &= CP_M44;
  h1 += c;
  st->h0 = h0; st->h1 = h1; st->h2 = h2;
}

static void cp_poly_finish(cp_poly *st, uint8_t tag[16]) {
  uint64_t h0 = st->h0, h1 = st->h1, h2 = st->h2, c;
  c = h1 >> 44; h1 &= CP_M44; h2 += c; c = h2 >> 42; h2 &= CP_M42; h0 += c * 5;
  c = h0 >> 44; h0 &= CP_M44; h1 += c; c = h1 >> 44; h1 &= CP_M44; h2 += c;
  c = h2 >> 42; h2 &= CP_M42; h0 += c * 5; c = h0 >> 44; h0 &= CP_M44; h1 += c;
  // h - p = h + 5 - 2^130: keep it if that does not underflow (h >= p), in constant time.
  uint64_t g0 = h0 + 5; c = g0 >> 44; g0 &= CP_M44;
  uint64_t g1 = h1 + c; c = g1 >> 44; g1 &= CP_M44;
  uint64_t g2 = h2 + c - (1ULL << 42);
  uint64_t keep_g = (g2 >> 63) - 1;  // all ones when g2 did not underflow
  g0 &= keep_g; g1 &= keep_g; g2 &= keep_g;
  h0 = (h0 & ~keep_g) | g0; h1 = (h1 & ~keep_g) | g1; h2 = (h2 & ~keep_g) | g2;
  uint64_t t0 = st->pad0, t1 = st->pad1;
  h0 += t0 & CP_M44; c = h0 >> 44; h0 &= CP_M44;
  h1 += (((t0 >> 44) | (t1 << 20)) & CP_M44) + c; c = h1 >> 44; h1 &= CP_M44;
  h2 += ((t1 >> 24) & CP_M42) + c; h2 &= CP_M42;
  cp_put64(tag, h0 | (h1 << 44));
  cp_put64(tag + 8, (h1 >> 20) | (h2 << 24));
}

/** The AEAD's tag over ciphertext c[0, len) with no associated data (RFC 8439 §2.8). */
static void cp_tag(const uint32_t key[8], const uint32_t nonce[3], const uint8_t *c, size_t len, uint8_t tag[16]) {
  uint8_t otk[64];
  cp_chacha_block(key, 0, nonce, otk);
  cp_poly st;
  cp_poly_init(&st, otk);
  size_t full = len & ~(size_t)15;
  for (size_t i = 0; i < full; i += 16) cp_poly_block(&st, c + i);
  if (len > full) {
    uint8_t last[16] = {0};
    memcpy(last, c + full, len - full);
    cp_poly_block(&st, last);
  }
  uint8_t lens[16];
  cp_put64(lens, 0);
  cp_put64(lens + 8, (uint64_t)len);
  cp_poly_block(&st, lens);
  cp_poly_finish(&st, tag);
  cp_wipe(otk, sizeof otk);
  cp_wipe(&st, sizeof st);
}

static void cp_words(const uint8_t key32[32], const uint8_t nonce12[12], uint32_t key[8], uint32_t nonce[3]) {
  for (int i = 0; i < 8; i++) key[i] = cp_le32(key32 + 4 * i);
  for (int i = 0; i < 3; i++) nonce[i] = cp_le32(nonce12 + 4 * i);
}

void cp_seal(const uint8_t key32[32], const uint8_t nonce12[12], uint8_t *p, size_t len) {
  uint32_t key[8], nonce[3];
  cp_words(key32, nonce12, key, nonce);
  cp_chacha_xor(key, nonce, p, len);
  cp_tag(key, nonce, p, len, p + len);
  cp_wipe(key, sizeof key);
}

int cp_open(const uint8_t key32[32], const uint8_t nonce12[12], uint8_t *p, size_t len) {
  uint32_t key[8], nonce[3];
  uint8_t tag[16];
  cp_words(key32, nonce12, key, nonce);
  cp_tag(key, nonce, p, len, tag);
  uint8_t diff = 0;
  for (int i = 0; i < 16; i++) diff |= tag[i] ^ p[len + i];
  int ok = diff == 0;
  if (ok) cp_chacha_xor(key, nonce, p, len);
  cp_wipe(key, sizeof key);
  return ok;
}

#endif
