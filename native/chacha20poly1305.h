// ChaCha20-Poly1305 (RFC 8439, empty associated data) in portable C, for one small message at a
// time. aead.c uses it for the dataplane's batches of one or two messages when they find the
// caches cold — the idle path: there a message's whole cost is ≈ 3 µs (84 bytes) to 7 µs (1424
// bytes), against ≈ 25 µs through OpenSSL's EVP interface, whose dispatch and vector-code set-up
// dominate a cold call — and for their messages under 128 bytes at any time. Warm, OpenSSL is
// faster from ≈ 128 bytes on, and it keeps every larger batch. Written from the RFC; checked byte
// for byte against OpenSSL (test/native-aead.test.ts).
#ifndef WIREPOOL_CHACHA20POLY1305_H
#define WIREPOOL_CHACHA20POLY1305_H

#include <stddef.h>
#include <stdint.h>

#if defined(__SIZEOF_INT128__)
#define CP_AVAILABLE 1
#else
#define CP_AVAILABLE 0  // Poly1305 here needs 64×64→128-bit products; aead.c then uses OpenSSL for all
#endif

/** Encrypt p[0, len) in place and write the 16-byte tag to p[len, len+16). */
void cp_seal(const uint8_t key[32], const uint8_t nonce[12], uint8_t *p, size_t len);

/**
 * Check the tag at p[len, len+16) over the ciphertext p[0, len) (constant time), then decrypt in
 * place. Returns 1 if authentic; 0 if not, with p left as it was.
 */
int cp_open(const uint8_t key[32], const uint8_t nonce[12], uint8_t *p, size_t len);

#endif
