// X25519(k, 9) by a fixed-base comb (x25519_base.c).
#ifndef WIREPOOL_X25519_BASE_H
#define WIREPOOL_X25519_BASE_H
#include <stdint.h>

// Build the base point's table (once per process; x25519_base calls it too).
void x25519_base_init(void);
// out = X25519(priv, 9): the public key of a private key (clamped here, RFC 7748 §5).
void x25519_base(uint8_t out[32], const uint8_t priv[32]);

#endif
