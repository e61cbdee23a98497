{
  "target_defaults": {
    "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
    "cflags_c": ["-std=gnu11"]
  },
  "targets": [
    { "target_name": "wirepool_aead", "sources": ["aead.c", "chacha20poly1305.c"] },
    { "target_name": "wirepool_tun", "sources": ["tun.c", "idle.c", "chacha20poly1305.c"] },
    { "target_name": "wirepool_udp", "sources": ["udp.c", "idle.c", "chacha20poly1305.c"] },
    { "target_name": "wirepool_handshake", "sources": ["handshake.c", "x25519_base.c"] },
    { "target_name": "wirepool_fdwatch", "sources": ["fdwatch.c"] }
  ]
}
