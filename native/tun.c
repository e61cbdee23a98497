// wirepool's TUN addon: opens the Linux TUN device under the requested name, with the
// 10-byte virtio_net_hdr in front of every packet (IFF_VNET_HDR) and the kernel's TCP/UDP
// segmentation offloads on, and moves packets between the device and the dataplane's
// shared-memory slots in batches.
//
// Reading (readSlots): poll on the TUN fd and a wake eventfd, then non-blocking reads until
// EAGAIN or the caller's slots run out. A plain packet is read straight into its slot; a
// GSO super-packet (up to 64 KiB of one TCP or UDP flow, produced by the local stack because
// the device claims TSO/USO) is split here into gso_size segments, each a complete IP packet
// with its own lengths, IPv4 id and header checksum, TCP sequence number and full L4
// checksum. Segments that do not fit in the caller's slots wait in per-fd state and come out
// first on the next call, so nothing is dropped or reordered.
//
// Writing (writeSlots): with the header, each packet is written as one write() with the
// 10-byte header placed in the slot bytes just before it. With GRO, runs of TCP segments of
// one flow in the batch are merged into one GSO write (writev of header+first packet and the
// later payloads, no copying); the kernel then treats them like a packet from a NIC that did
// receive offload.
//
// Multi-queue (IFF_MULTI_QUEUE): writeSlots takes one fd or an Int32Array of the device's queue
// fds. With several, each write (a packet, or a coalesced group: one flow by construction) goes
// to the queue flow_queue picks from a symmetric hash of the packet's addresses, protocol and
// ports. Why: the tun driver steers each packet it hands to readers (tun_automq_select_queue) to
// the queue on which that flow's packets were last written (tun_flow_update, keyed on the
// symmetric skb hash, so the reverse direction counts). Were everything written on one queue,
// every two-way flow would be read from that queue only; spread by flow, and symmetric (a→b and
// b→a pick the same queue), each flow is read back on the queue it hashes to.
//
// All entry points are synchronous; only readSlots blocks (in poll, bounded by its timeout
// and the wake eventfd). Per-thread state (scratch buffer, pending segments) lives in the
// N-API instance data, keyed by fd, so each worker thread has its own.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <linux/if_tun.h>
#include <node_api.h>
#include "chacha20poly1305.h"
#include "endpoint.h"
#include "idle.h"

// ---- constants ----------------------------------------------------------------------------

// TUNSETOFFLOAD bits (linux/if_tun.h; the USO ones are missing from older headers).
#define F_CSUM 0x01
#define F_TSO4 0x02
#define F_TSO6 0x04
#define F_USO4 0x20
#define F_USO6 0x40

// virtio_net_hdr (linux/virtio_net.h), fields in host byte order (the TUN default on
// little-endian hosts; we never call TUNSETVNETBE).
#define VNET_HDR_LEN 10
#define VNET_F_NEEDS_CSUM 1
#define GSO_NONE 0
#define GSO_TCPV4 1
#define GSO_TCPV6 4
#define GSO_UDP_L4 5
#define GSO_ECN 0x80

// Slot layout (src/dataplane/layout.ts): payload at offset 16, META_WORDS Int32 words of
// metadata per slot, the packet length in word M_LENGTH. A slot keeps 32 bytes after the
// packet for padding and the AEAD tag.
#define SLOT_PAYLOAD_OFFSET 16
#define SLOT_TAIL_ROOM 32
#define META_WORDS 32
#define M_LENGTH 1

#define MAX_PACKET 65535
#define SCRATCH_BYTES 65536  // super-packet buffer; a read of more than this was truncated
#define READ_STATES 8        // TUN fds one thread may read with split state: ≥ the queues (tun.ts checks)
#define GRO_CHUNK 128        // packets considered together for coalescing
#define GRO_SCAN 16          // most recent flow entries searched per packet
#define GRO_MAX_SEGS 64      // segments per coalesced write

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_URG 0x20
#define TCP_CWR 0x80

#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17

// readSlots out[] indices (per call, overwritten): see src/io/tun.ts TUN_READ_OUT.
enum { RO_READS, RO_SUPER, RO_SEGMENTS, RO_TOO_BIG, RO_MALFORMED, RO_TRANSIENT, RO_BYTES, RO_PENDING, RO_LEN };
// writeSlots out[] indices (per call, overwritten): see src/io/tun.ts TUN_WRITE_OUT.
enum { WO_WRITTEN, WO_ERRORS, WO_LAST_ERRNO, WO_WRITES, WO_COALESCED, WO_GONE_ERRNO, WO_BYTES, WO_LEN };

/** readSlots' return value for end of file (the device is gone). */
#define READ_EOF (-0x10000)

// ---- small helpers ------------------------------------------------------------------------

static inline uint16_t get16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t get32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline uint16_t geth16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline void puth16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }

typedef struct {
  uint8_t flags, gso_type;
  uint16_t hdr_len, gso_size, csum_start, csum_offset;
} vhdr_t;

static void vhdr_parse(const uint8_t *b, vhdr_t *h) {
  h->flags = b[0];
  h->gso_type = b[1];
  h->hdr_len = geth16(b + 2);
  h->gso_size = geth16(b + 4);
  h->csum_start = geth16(b + 6);
  h->csum_offset = geth16(b + 8);
}

static void vhdr_store(uint8_t *b, const vhdr_t *h) {
  b[0] = h->flags;
  b[1] = h->gso_type;
  puth16(b + 2, h->hdr_len);
  puth16(b + 4, h->gso_size);
  puth16(b + 6, h->csum_start);
  puth16(b + 8, h->csum_offset);
}

// ---- Internet checksum --------------------------------------------------------------------
// Sum of 64-bit native words with end-around carry; the ones' complement sum is byte-order
// independent up to a final swap (RFC 1071 §2), done in fold_be. Each range summed on its own
// starts at an even offset of the checksummed stream.

static inline uint64_t add64(uint64_t a, uint64_t b) {
  a += b;
  return a + (a < b);
}

static uint64_t sum_native(const uint8_t *p, size_t len, uint64_t acc) {
  while (len >= 32) {
    uint64_t a, b, c, d;
    memcpy(&a, p, 8); memcpy(&b, p + 8, 8); memcpy(&c, p + 16, 8); memcpy(&d, p + 24, 8);
    acc = add64(acc, a); acc = add64(acc, b); acc = add64(acc, c); acc = add64(acc, d);
    p += 32;
    len -= 32;
  }
  while (len >= 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    acc = add64(acc, v);
    p += 8;
    len -= 8;
  }
  if (len > 0) {
    uint64_t v = 0;
    memcpy(&v, p, len);
    acc = add64(acc, v);
  }
  return acc;
}

/** Folds a native sum to 16 bits and returns it as a big-endian-domain value (not complemented). */
static uint32_t fold_be(uint64_t acc) {
  acc = (acc & 0xffffffffu) + (acc >> 32);
  acc = (acc & 0xffffffffu) + (acc >> 32);
  uint32_t s = (uint32_t)acc;
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  uint16_t n = (uint16_t)s;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  n = (uint16_t)((n >> 8) | (n << 8));
#endif
  return n;
}

static uint16_t fold16(uint32_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return (uint16_t)s;
}

/** Big-endian-domain sum of the pseudo-header (addresses of the IP header at ip, protocol, L4 length). */
static uint32_t pseudo_sum(const uint8_t *ip, int v6, uint8_t proto, uint32_t l4len) {
  const uint8_t *a = v6 ? ip + 8 : ip + 12;
  int n = v6 ? 32 : 8;
  uint32_t s = 0;
  for (int i = 0; i < n; i += 2) s += get16(a + i);
  return s + proto + (l4len >> 16) + (l4len & 0xffff);
}

/** The checksum to store: complement of pseudo + sum(l4, len) (field inside l4 must be zero). */
static uint16_t l4_checksum(const uint8_t *ip, int v6, uint8_t proto, const uint8_t *l4, uint32_t len) {
  return (uint16_t)~fold16(pseudo_sum(ip, v6, proto, len) + fold_be(sum_native(l4, len, 0)));
}

static void ipv4_fix_checksum(uint8_t *ip, unsigned ihl) {
  ip[10] = ip[11] = 0;
  put16(ip + 10, (uint16_t)~fold_be(sum_native(ip, ihl, 0)));
}

// ---- GSO split (read side) ----------------------------------------------------------------

typedef struct {
  int v6;
  uint8_t proto;     // IPPROTO_TCP_ / IPPROTO_UDP_
  uint16_t l3len;    // csum_start: IP header (with IPv6 extension headers)
  uint16_t hlen;     // IP + L4 header bytes copied into every segment (recomputed, not hdr_len)
  uint16_t gso;      // payload bytes per segment
  uint32_t paylen;   // payload bytes of the super-packet
  uint32_t nseg;
} split_plan;

/** Checks a super-packet and plans its split. 0 = fine, -1 = malformed. */
static int split_prepare(const uint8_t *pkt, size_t len, const vhdr_t *h, split_plan *p) {
  unsigned type = h->gso_type & (unsigned)~GSO_ECN;
  if (len < 20 || h->gso_size == 0) return -1;
  unsigned ver = pkt[0] >> 4;
  if (type == GSO_TCPV4) {
    if (ver != 4) return -1;
    p->proto = IPPROTO_TCP_;
  } else if (type == GSO_TCPV6) {
    if (ver != 6) return -1;
    p->proto = IPPROTO_TCP_;
  } else if (type == GSO_UDP_L4) {
    if (ver != 4 && ver != 6) return -1;
    p->proto = IPPROTO_UDP_;
  } else {
    return -1;  // UFO (GSO_UDP) and unknown types are never negotiated
  }
  p->v6 = ver == 6;
  unsigned cs = h->csum_start;
  if (p->v6) {
    if (cs < 40) return -1;
    if (cs == 40 && pkt[6] != p->proto) return -1;
  } else {
    unsigned ihl = (pkt[0] & 15u) * 4;
    if (ihl < 20 || cs != ihl || pkt[9] != p->proto) return -1;
    if ((get16(pkt + 6) & 0x3fff) != 0) return -1;  // a fragment cannot be a super-packet
  }
  unsigned hlen;
  if (p->proto == IPPROTO_TCP_) {
    if ((size_t)cs + 20 > len) return -1;
    unsigned thl = (pkt[cs + 12] >> 4) * 4u;
    if (thl < 20) return -1;
    hlen = cs + thl;
  } else {
    hlen = cs + 8;
  }
  if (hlen > len) return -1;
  p->l3len = (uint16_t)cs;
  p->hlen = (uint16_t)hlen;
  p->gso = h->gso_size;
  p->paylen = (uint32_t)(len - hlen);
  p->nseg = p->paylen == 0 ? 1 : (p->paylen + p->gso - 1) / p->gso;
  return 0;
}

static uint32_t split_seglen(const split_plan *p, uint32_t i) {
  uint32_t off = i * p->gso;
  uint32_t n = p->paylen - off < p->gso ? p->paylen - off : p->gso;
  return p->hlen + n;
}

/** Writes segment i of the super-packet pkt to dst (room for split_seglen bytes); returns its length. */
static uint32_t split_segment(const uint8_t *pkt, const split_plan *p, uint32_t i, uint8_t *dst) {
  uint32_t off = i * p->gso;
  uint32_t n = p->paylen - off < p->gso ? p->paylen - off : p->gso;
  uint32_t total = p->hlen + n;
  memcpy(dst, pkt, p->hlen);
  memcpy(dst + p->hlen, pkt + p->hlen + off, n);
  if (p->v6) {
    put16(dst + 4, (uint16_t)(total - 40));
  } else {
    put16(dst + 2, (uint16_t)total);
    put16(dst + 4, (uint16_t)(get16(pkt + 4) + i));
    ipv4_fix_checksum(dst, p->l3len);
  }
  uint8_t *l4 = dst + p->l3len;
  uint32_t l4len = total - p->l3len;
  if (p->proto == IPPROTO_TCP_) {
    put32(l4 + 4, get32(pkt + p->l3len + 4) + off);
    uint8_t fl = l4[13];
    if (i + 1 != p->nseg) fl &= (uint8_t)~(TCP_FIN | TCP_PSH);
    if (i != 0) fl &= (uint8_t)~TCP_CWR;
    l4[13] = fl;
    l4[16] = l4[17] = 0;
    put16(l4 + 16, l4_checksum(dst, p->v6, IPPROTO_TCP_, l4, l4len));
  } else {
    put16(l4 + 4, (uint16_t)l4len);
    l4[6] = l4[7] = 0;
    uint16_t c = l4_checksum(dst, p->v6, IPPROTO_UDP_, l4, l4len);
    put16(l4 + 6, c == 0 ? 0xffff : c);
  }
  return total;
}

/**
 * Finishes a CHECKSUM_PARTIAL packet (NEEDS_CSUM, no GSO): the field at csum_start +
 * csum_offset holds the pseudo-header sum; sum from csum_start to the end, store the
 * complement. 0 = done, -1 = offsets out of range.
 */
static int finish_checksum(uint8_t *pkt, size_t len, const vhdr_t *h) {
  size_t start = h->csum_start, at = (size_t)h->csum_start + h->csum_offset;
  if (start >= len || at + 2 > len) return -1;
  uint16_t c = (uint16_t)~fold_be(sum_native(pkt + start, len - start, 0));
  put16(pkt + at, c == 0 ? 0xffff : c);
  return 0;
}

// ---- per-thread state ---------------------------------------------------------------------

typedef struct {
  int fd;  // -1: unused
  uint64_t used;
  uint8_t *buf;  // SCRATCH_BYTES: the super-packet being split
  int pending;   // segments of buf still to emit
  split_plan plan;
  uint32_t next;  // next segment index
} read_state;

typedef struct {
  read_state rs[READ_STATES];
  uint64_t tick;
} instance;

static void instance_free(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  instance *in = data;
  for (int i = 0; i < READ_STATES; i++) free(in->rs[i].buf);
  free(in);
}

static instance *get_instance(napi_env env) {
  void *d = NULL;
  if (napi_get_instance_data(env, &d) == napi_ok && d != NULL) return d;
  instance *in = calloc(1, sizeof(*in));
  if (in == NULL) return NULL;
  for (int i = 0; i < READ_STATES; i++) in->rs[i].fd = -1;
  if (napi_set_instance_data(env, in, instance_free, NULL) != napi_ok) {
    free(in);
    return NULL;
  }
  return in;
}

/** The read state of fd: its own, else a free one, else the least recently used (one without pending segments first). */
static read_state *state_for(instance *in, int fd) {
  read_state *victim = NULL;
  for (int i = 0; i < READ_STATES; i++) {
    if (in->rs[i].fd == fd) {
      in->rs[i].used = ++in->tick;
      return &in->rs[i];
    }
  }
  for (int i = 0; i < READ_STATES && victim == NULL; i++) {
    if (in->rs[i].fd < 0) victim = &in->rs[i];
  }
  for (int pass = 0; pass < 2 && victim == NULL; pass++) {
    for (int i = 0; i < READ_STATES; i++) {
      read_state *r = &in->rs[i];
      if ((pass == 0 && r->pending) || (victim != NULL && victim->used <= r->used)) continue;
      victim = r;
    }
  }
  if (victim->buf == NULL) {
    victim->buf = malloc(SCRATCH_BYTES);
    if (victim->buf == NULL) return NULL;
  }
  victim->fd = fd;
  victim->pending = 0;
  victim->next = 0;
  victim->used = ++in->tick;
  return victim;
}

// ---- N-API plumbing -----------------------------------------------------------------------

static const char *errno_code(int e) {
  switch (e) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EIO: return "EIO";
    case ENXIO: return "ENXIO";
    case E2BIG: return "E2BIG";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case ENODEV: return "ENODEV";
    case EINVAL: return "EINVAL";
    case ENFILE: return "ENFILE";
    case EMFILE: return "EMFILE";
    case ENOTTY: return "ENOTTY";
    case ENOSPC: return "ENOSPC";
    case ERANGE: return "ERANGE";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENOSYS: return "ENOSYS";
    case EBADFD: return "EBADFD";
    case ENOBUFS: return "ENOBUFS";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EINTR: return "EINTR";
    default: return "UNKNOWN";
  }
}

/** Throws an Error with code (errno name), errno and syscall, like Node's own. */
static void throw_errno(napi_env env, int e, const char *syscall, const char *what) {
  char msg[256];
  snprintf(msg, sizeof(msg), "%s: %s (%s)", what, strerror(e), syscall);
  napi_value code, message, err, num, sc;
  napi_create_string_utf8(env, errno_code(e), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &err);
  napi_create_int32(env, e, &num);
  napi_set_named_property(env, err, "errno", num);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sc);
  napi_set_named_property(env, err, "syscall", sc);
  napi_throw(env, err);
}

static napi_value type_error(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

static napi_value range_error(napi_env env, const char *msg) {
  napi_throw_range_error(env, NULL, msg);
  return NULL;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) return -1;
  return 0;
}

static int get_i32(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok ? 0 : -1;
}

static int get_bool(napi_env env, napi_value v, int *out) {
  bool b;
  if (napi_get_value_bool(env, v, &b) != napi_ok) return -1;
  *out = b;
  return 0;
}

/** A typed array of the given type: its data pointer and element count. */
static int get_typed(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *count) {
  bool is;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return -1;
  napi_typedarray_type type;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &type, count, data, &ab, &off) != napi_ok) return -1;
  if (type != want) return -1;
  return 0;
}

static napi_value make_int(napi_env env, int64_t v) {
  napi_value r;
  napi_create_int64(env, v, &r);
  return r;
}

static int get_string(napi_env env, napi_value v, char *buf, size_t size, size_t *len) {
  return napi_get_value_string_utf8(env, v, buf, size, len) == napi_ok ? 0 : -1;
}

static int opt_bool(napi_env env, napi_value obj, const char *key, int dflt) {
  bool has = false;
  if (napi_has_named_property(env, obj, key, &has) != napi_ok || !has) return dflt;
  napi_value v;
  napi_valuetype t;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok || napi_typeof(env, v, &t) != napi_ok) return dflt;
  if (t == napi_undefined || t == napi_null) return dflt;
  bool b = dflt;
  napi_coerce_to_bool(env, v, &v);
  napi_get_value_bool(env, v, &b);
  return b;
}

static void set_prop_int(napi_env env, napi_value obj, const char *key, int64_t v) {
  napi_set_named_property(env, obj, key, make_int(env, v));
}

static void set_prop_bool(napi_env env, napi_value obj, const char *key, int v) {
  napi_value b;
  napi_get_boolean(env, v != 0, &b);
  napi_set_named_property(env, obj, key, b);
}

static void set_prop_str(napi_env env, napi_value obj, const char *key, const char *s) {
  napi_value v;
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, key, v);
}

// ---- device set-up ------------------------------------------------------------------------

/**
 * Turns on the offloads: CSUM|TSO4|TSO6|USO4|USO6, else without USO (EINVAL before 6.2).
 * Returns the accepted TUN_F_* bits, or -errno when even the TCP set is refused.
 */
static int set_offloads(int fd) {
  unsigned full = F_CSUM | F_TSO4 | F_TSO6 | F_USO4 | F_USO6;
  if (ioctl(fd, TUNSETOFFLOAD, full) == 0) return (int)full;
  unsigned tcp = F_CSUM | F_TSO4 | F_TSO6;
  if (ioctl(fd, TUNSETOFFLOAD, tcp) == 0) return (int)tcp;
  return -errno;
}

static napi_value describe(napi_env env, int fd, const char *name, int flags, int vnet, int offloads) {
  napi_value o;
  napi_create_object(env, &o);
  set_prop_int(env, o, "fd", fd);
  set_prop_str(env, o, "name", name);
  set_prop_int(env, o, "flags", flags);
  set_prop_bool(env, o, "vnetHdr", vnet);
  set_prop_int(env, o, "offloads", offloads);
  set_prop_bool(env, o, "uso", (offloads & (F_USO4 | F_USO6)) == (F_USO4 | F_USO6));
  return o;
}

// open(name, {vnetHdr, multiQueue?, exclusive? = true}) → {fd, name, flags, vnetHdr, offloads, uso}
static napi_value js_open(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char name[IFNAMSIZ + 1];
  size_t nlen = 0;
  napi_valuetype t;
  if (get_args(env, info, 2, argv) != 0 || get_string(env, argv[0], name, sizeof(name), &nlen) != 0 ||
      napi_typeof(env, argv[1], &t) != napi_ok || t != napi_object) {
    return type_error(env, "open(name, {vnetHdr, multiQueue?, exclusive?})");
  }
  if (nlen == 0 || nlen >= IFNAMSIZ) return range_error(env, "open: the name must be 1..15 bytes");
  int vnet = opt_bool(env, argv[1], "vnetHdr", 0);
  int mq = opt_bool(env, argv[1], "multiQueue", 0);
  int excl = opt_bool(env, argv[1], "exclusive", 1);

  for (;;) {
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      throw_errno(env, errno, "open", "cannot open /dev/net/tun");
      return NULL;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, name, nlen);
    ifr.ifr_flags = (short)(IFF_TUN | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0) | (mq ? IFF_MULTI_QUEUE : 0) | (excl ? IFF_TUN_EXCL : 0));
    if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
      int e = errno;
      close(fd);
      throw_errno(env, e, "TUNSETIFF", "cannot create the TUN device");
      return NULL;
    }
    // What we got: the kernel's name and flags. Without IFF_TUN_EXCL an existing device can
    // be attached; refuse a persistent one (someone else's) unless attaching was asked for.
    struct ifreq got;
    memset(&got, 0, sizeof(got));
    if (ioctl(fd, TUNGETIFF, &got) != 0) {
      int e = errno;
      close(fd);
      throw_errno(env, e, "TUNGETIFF", "cannot query the new TUN device");
      return NULL;
    }
    got.ifr_name[IFNAMSIZ - 1] = 0;
    int flags = (unsigned short)got.ifr_flags;
    if (excl && (flags & IFF_PERSIST)) {
      close(fd);
      throw_errno(env, EEXIST, "TUNSETIFF", "the name belongs to an existing persistent TUN device");
      return NULL;
    }
    int offloads = 0;
    if (vnet) {
      int sz = VNET_HDR_LEN;
      if (ioctl(fd, TUNSETVNETHDRSZ, &sz) != 0) {
        int e = errno;
        close(fd);
        throw_errno(env, e, "TUNSETVNETHDRSZ", "cannot set the virtio header size");
        return NULL;
      }
      offloads = set_offloads(fd);
      if (offloads < 0 && !excl) {
        // Attaching (another queue of a multi-queue device): a retry without IFF_VNET_HDR would
        // change the flag for the whole device, under the queues already open. Refuse instead.
        close(fd);
        throw_errno(env, -offloads, "TUNSETOFFLOAD", "cannot turn the offloads on");
        return NULL;
      }
      if (offloads < 0) {
        // No offloads at all: the header would only cost. The flag is fixed at creation, so
        // drop this (non-persistent) device and make it again without IFF_VNET_HDR.
        close(fd);
        vnet = 0;
        continue;
      }
    }
    return describe(env, fd, got.ifr_name, flags, vnet, offloads);
  }
}

// query(fd) → {name, flags}: TUNGETIFF; throws with errno (EBADF: not open, EBADFD: not
// attached to a link, ENOTTY/EINVAL: not a TUN fd).
static napi_value js_query(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (get_args(env, info, 1, argv) != 0 || get_i32(env, argv[0], &fd) != 0) return type_error(env, "query(fd)");
  struct ifreq got;
  memset(&got, 0, sizeof(got));
  if (ioctl(fd, TUNGETIFF, &got) != 0) {
    throw_errno(env, errno, "TUNGETIFF", "not a usable TUN fd");
    return NULL;
  }
  got.ifr_name[IFNAMSIZ - 1] = 0;
  napi_value o;
  napi_create_object(env, &o);
  set_prop_str(env, o, "name", got.ifr_name);
  set_prop_int(env, o, "flags", (unsigned short)got.ifr_flags);
  return o;
}

// attach(fd, offload: boolean) → {fd, name, flags, vnetHdr, offloads, uso}: an inherited TUN fd.
// TUNGETIFF gives its name and flags; with IFF_VNET_HDR the header size is set to 10 and the
// offloads to the full set (offload true) or none; the fd is made non-blocking.
static napi_value js_attach(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd;
  int offload;
  if (get_args(env, info, 2, argv) != 0 || get_i32(env, argv[0], &fd) != 0 || get_bool(env, argv[1], &offload) != 0) {
    return type_error(env, "attach(fd, offload)");
  }
  struct ifreq got;
  memset(&got, 0, sizeof(got));
  if (ioctl(fd, TUNGETIFF, &got) != 0) {
    throw_errno(env, errno, "TUNGETIFF", "not a usable TUN fd");
    return NULL;
  }
  got.ifr_name[IFNAMSIZ - 1] = 0;
  int flags = (unsigned short)got.ifr_flags;
  int vnet = (flags & IFF_VNET_HDR) != 0;
  int offloads = 0;
  if (vnet) {
    int sz = VNET_HDR_LEN;
    if (ioctl(fd, TUNSETVNETHDRSZ, &sz) != 0) {
      throw_errno(env, errno, "TUNSETVNETHDRSZ", "cannot set the virtio header size");
      return NULL;
    }
    if (offload) {
      offloads = set_offloads(fd);
      if (offloads < 0) offloads = 0;
    }
    if (offloads == 0 && ioctl(fd, TUNSETOFFLOAD, 0u) != 0) {
      throw_errno(env, errno, "TUNSETOFFLOAD", "cannot turn the offloads off");
      return NULL;
    }
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || ((fl & O_NONBLOCK) == 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)) {
    throw_errno(env, errno, "fcntl", "cannot make the TUN fd non-blocking");
    return NULL;
  }
  return describe(env, fd, got.ifr_name, flags, vnet, offloads);
}

static int mtu_socket(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0 && errno == EAFNOSUPPORT) s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  return s;
}

static int get_ifname(napi_env env, napi_value v, struct ifreq *ifr) {
  char name[IFNAMSIZ + 1];
  size_t len = 0;
  if (get_string(env, v, name, sizeof(name), &len) != 0 || len == 0 || len >= IFNAMSIZ) return -1;
  memset(ifr, 0, sizeof(*ifr));
  memcpy(ifr->ifr_name, name, len);
  return 0;
}

// setMtu(name, mtu): SIOCSIFMTU; throws with errno.
static napi_value js_set_mtu(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  struct ifreq ifr;
  int32_t mtu;
  if (get_args(env, info, 2, argv) != 0 || get_ifname(env, argv[0], &ifr) != 0 || get_i32(env, argv[1], &mtu) != 0) {
    return type_error(env, "setMtu(name, mtu)");
  }
  int s = mtu_socket();
  if (s < 0) {
    throw_errno(env, errno, "socket", "cannot set the MTU");
    return NULL;
  }
  ifr.ifr_mtu = mtu;
  int r = ioctl(s, SIOCSIFMTU, &ifr);
  int e = errno;
  close(s);
  if (r != 0) {
    throw_errno(env, e, "SIOCSIFMTU", "cannot set the MTU");
    return NULL;
  }
  return NULL;
}

// getMtu(name) → mtu: SIOCGIFMTU; throws with errno. Called once per read batch (the MTU applies
// from the next packet), so each thread keeps its ioctl socket instead of opening one per call.
static __thread int mtu_sock = -1;

/** The MTU of the interface ifr names, into ifr->ifr_mtu: NULL, or the call that failed (errno set). */
static const char *read_mtu(struct ifreq *ifr) {
  if (mtu_sock < 0) mtu_sock = mtu_socket();
  if (mtu_sock < 0) return "socket";
  return ioctl(mtu_sock, SIOCGIFMTU, ifr) != 0 ? "SIOCGIFMTU" : NULL;
}

static napi_value js_get_mtu(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  struct ifreq ifr;
  if (get_args(env, info, 1, argv) != 0 || get_ifname(env, argv[0], &ifr) != 0) return type_error(env, "getMtu(name)");
  const char *failed = read_mtu(&ifr);
  if (failed != NULL) {
    throw_errno(env, errno, failed, "cannot read the MTU");
    return NULL;
  }
  return make_int(env, ifr.ifr_mtu);
}

// eventfd() → fd (non-blocking, close-on-exec); throws with errno.
static napi_value js_eventfd(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) {
    throw_errno(env, errno, "eventfd", "cannot create an eventfd");
    return NULL;
  }
  return make_int(env, fd);
}

// A wake eventfd whose counter holds at least WAKE_CLOSED has been closed by its device (close()
// adds it, then closes the fds): readSlots that sees it returns -EBADF and puts it back, so every
// later call sees it too until the fd itself is closed. A plain wake (1) is consumed and makes
// readSlots return 0. Without the mark, a reader woken by close() that called again before the
// fds were closed would wait in poll forever: closing an fd does not end a poll on it.
#define WAKE_CLOSED ((uint64_t)1 << 48)

// wake(efd, closed = false) → 0 or errno: adds 1 (or WAKE_CLOSED) to the eventfd counter (a full
// counter already wakes).
static napi_value js_wake(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc = 2;
  int32_t fd;
  int closed = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || get_i32(env, argv[0], &fd) != 0 ||
      (argc >= 2 && get_bool(env, argv[1], &closed) != 0)) {
    return type_error(env, "wake(efd, closed?: boolean)");
  }
  uint64_t add = closed ? WAKE_CLOSED : 1;
  ssize_t r;
  do r = write(fd, &add, sizeof(add)); while (r < 0 && errno == EINTR);
  return make_int(env, r == (ssize_t)sizeof(add) || errno == EAGAIN ? 0 : errno);
}

// ---- readSlots ----------------------------------------------------------------------------

typedef struct {
  uint8_t *data;
  size_t data_len;
  size_t slot_bytes;
  int32_t *meta;
  size_t meta_len;
  const int32_t *slots;
  int32_t max_slots;
  size_t cap;  // largest packet a slot takes
  int32_t *out;
} read_ctx;

/** Payload pointer of the k-th listed slot, or NULL when that slot is out of range. */
static uint8_t *slot_at(const read_ctx *c, int k) {
  int32_t s = c->slots[k];
  if (s < 0 || (size_t)(s + 1) * c->slot_bytes > c->data_len || (size_t)(s + 1) * META_WORDS > c->meta_len) return NULL;
  return c->data + (size_t)s * c->slot_bytes + SLOT_PAYLOAD_OFFSET;
}

static void deliver(read_ctx *c, int k, uint32_t len) {
  c->meta[(size_t)c->slots[k] * META_WORDS + M_LENGTH] = (int32_t)len;
  c->out[RO_BYTES] += (int32_t)len;
}

/** Emits pending segments of r into slots from *filled on; returns -1 if a slot index is bad. */
static int emit_segments(read_ctx *c, read_state *r, int *filled) {
  while (r->pending && *filled < c->max_slots) {
    uint32_t len = split_seglen(&r->plan, r->next);
    if (len > c->cap) {
      c->out[RO_TOO_BIG]++;
    } else {
      uint8_t *dst = slot_at(c, *filled);
      if (dst == NULL) return -1;
      split_segment(r->buf, &r->plan, r->next, dst);
      deliver(c, *filled, len);
      c->out[RO_SEGMENTS]++;
      (*filled)++;
    }
    if (++r->next >= r->plan.nseg) r->pending = 0;
  }
  return 0;
}

static int transient_errno(int e) { return e == EAGAIN || e == EWOULDBLOCK || e == EINTR || e == ENOBUFS || e == ENOMEM; }

/**
 * Reads into the listed slots (c->max_slots of them, valid): first what r (the fd's split state;
 * NULL without vnet) keeps, then — waiting up to timeout ms for fd or wfd unless something is
 * kept, or at once with neither a wake fd nor a timeout — until EAGAIN or the slots run out.
 * Returns the slots filled, or when none were: READ_EOF or -errno for a device that is gone.
 */
static int read_core(read_state *r, int fd, int wfd, int vnet, read_ctx *c0, int timeout) {
  read_ctx c = *c0;
  int filled = 0;
  if (r != NULL && r->pending) emit_segments(&c, r, &filled);

  // Without a wake fd and with no time to wait (the main thread at idle, whose event loop already
  // said the device is readable, or which looks once before it sleeps), poll() would only say what
  // the read says anyway: read at once (EAGAIN: nothing there).
  if (filled == 0 && (timeout != 0 || wfd >= 0)) {
    struct pollfd pfd[2] = {{.fd = fd, .events = POLLIN}, {.fd = wfd, .events = POLLIN}};
    int pr = poll(pfd, wfd >= 0 ? 2 : 1, timeout);
    if (pr < 0) {
      if (errno != EINTR) c.out[RO_TRANSIENT]++;
      return 0;
    }
    if (pr == 0) return 0;
    if (wfd >= 0 && (pfd[1].revents & POLLNVAL)) {
      if (r != NULL) r->pending = 0;
      return -EBADF;  // the wake eventfd was closed: the device was closed
    }
    if (wfd >= 0 && pfd[1].revents != 0) {
      uint64_t v = 0;
      ssize_t got = read(wfd, &v, sizeof(v));
      // The device was closed: the mark (put back for the next call), or EBADF when close()
      // closed the eventfd between the poll and this read. EAGAIN: another reader drained it.
      int marked = got == (ssize_t)sizeof(v) && v >= WAKE_CLOSED;
      if (!marked && !(got < 0 && errno == EBADF)) return 0;
      if (marked && write(wfd, &v, sizeof(v)) < 0) { /* the counter is full: it stays readable anyway */ }
      if (r != NULL) r->pending = 0;
      return -EBADF;
    }
    if (pfd[0].revents & POLLNVAL) {
      if (r != NULL) r->pending = 0;
      return -EBADF;
    }
    // POLLIN, or POLLERR/POLLHUP: the read below returns the packet or the error.
  }

  int gone = 0;  // 0, -errno or READ_EOF, reported only when nothing was filled
  while (filled < c.max_slots) {
    uint8_t *dst = slot_at(&c, filled);
    ssize_t n;
    if (!vnet) {
      n = read(fd, dst, c.cap);
    } else {
      uint8_t hb[VNET_HDR_LEN];
      size_t c1 = c.cap < SCRATCH_BYTES ? c.cap : SCRATCH_BYTES;
      struct iovec iov[3] = {
          {.iov_base = hb, .iov_len = VNET_HDR_LEN},
          {.iov_base = dst, .iov_len = c1},
          {.iov_base = r->buf + c1, .iov_len = SCRATCH_BYTES - c1},
      };
      n = readv(fd, iov, c1 < SCRATCH_BYTES ? 3 : 2);
      if (n > 0) {
        c.out[RO_READS]++;
        if (n < VNET_HDR_LEN + 1) {
          c.out[RO_MALFORMED]++;
          continue;
        }
        size_t len = (size_t)n - VNET_HDR_LEN;
        if (len > SCRATCH_BYTES) {  // truncated: the kernel reports the full length
          c.out[RO_TOO_BIG]++;
          continue;
        }
        vhdr_t h;
        vhdr_parse(hb, &h);
        if ((h.gso_type & (unsigned)~GSO_ECN) == GSO_NONE) {
          if (len > c.cap) {
            c.out[RO_TOO_BIG]++;
            continue;
          }
          if ((h.flags & VNET_F_NEEDS_CSUM) && finish_checksum(dst, len, &h) != 0) {
            c.out[RO_MALFORMED]++;
            continue;
          }
          deliver(&c, filled, (uint32_t)len);
          filled++;
          continue;
        }
        // A super-packet: make it contiguous in the scratch buffer, then split into slots.
        memcpy(r->buf, dst, len < c1 ? len : c1);
        if (split_prepare(r->buf, len, &h, &r->plan) != 0) {
          c.out[RO_MALFORMED]++;
          continue;
        }
        c.out[RO_SUPER]++;
        r->pending = 1;
        r->next = 0;
        emit_segments(&c, r, &filled);
        continue;
      }
    }
    if (n > 0) {  // plain read
      c.out[RO_READS]++;
      if ((size_t)n > c.cap) {
        c.out[RO_TOO_BIG]++;  // truncated: the kernel reports the full length
        continue;
      }
      deliver(&c, filled, (uint32_t)n);
      filled++;
      continue;
    }
    if (n == 0) {
      gone = READ_EOF;
      break;
    }
    int e = errno;
    if (e == EAGAIN || e == EWOULDBLOCK) break;
    if (e == EINTR) continue;
    if (transient_errno(e)) {
      c.out[RO_TRANSIENT]++;
      break;
    }
    gone = -e;
    break;
  }
  if (r != NULL) c.out[RO_PENDING] = r->pending ? (int32_t)(r->plan.nseg - r->next) : 0;
  if (filled == 0 && gone != 0) {
    if (r != NULL) r->pending = 0;
    return gone;
  }
  return filled;
}

// readSlots(tunFd, wakeFd, vnetHdr, data, slotBytes, meta, slots, maxSlots, timeoutMs, out) → n
static napi_value js_read_slots(napi_env env, napi_callback_info info) {
  napi_value argv[10];
  int32_t fd, wfd, slot_bytes, max_slots, timeout;
  int vnet;
  read_ctx c;
  size_t slots_len, out_len;
  void *p;
  if (get_args(env, info, 10, argv) != 0 || get_i32(env, argv[0], &fd) != 0 || get_i32(env, argv[1], &wfd) != 0 ||
      get_bool(env, argv[2], &vnet) != 0 || get_typed(env, argv[3], napi_uint8_array, &p, &c.data_len) != 0 ||
      get_i32(env, argv[4], &slot_bytes) != 0 ||
      get_typed(env, argv[5], napi_int32_array, (void **)&c.meta, &c.meta_len) != 0 ||
      get_typed(env, argv[6], napi_int32_array, (void **)&c.slots, &slots_len) != 0 ||
      get_i32(env, argv[7], &max_slots) != 0 || get_i32(env, argv[8], &timeout) != 0 ||
      get_typed(env, argv[9], napi_int32_array, (void **)&c.out, &out_len) != 0) {
    return type_error(env, "readSlots(tunFd, wakeFd, vnetHdr, data: Uint8Array, slotBytes, meta: Int32Array, slots: Int32Array, maxSlots, timeoutMs, out: Int32Array)");
  }
  c.data = p;
  if (slot_bytes < SLOT_PAYLOAD_OFFSET + SLOT_TAIL_ROOM + 20) return range_error(env, "readSlots: slotBytes too small");
  if (max_slots < 0 || (size_t)max_slots > slots_len) return range_error(env, "readSlots: maxSlots exceeds slots.length");
  if (out_len < RO_LEN) return range_error(env, "readSlots: out needs 8 entries");
  c.slot_bytes = (size_t)slot_bytes;
  c.max_slots = max_slots;
  c.cap = c.slot_bytes - SLOT_PAYLOAD_OFFSET - SLOT_TAIL_ROOM;
  memset(c.out, 0, RO_LEN * sizeof(int32_t));
  for (int k = 0; k < max_slots; k++) {
    if (slot_at(&c, k) == NULL) return range_error(env, "readSlots: a slot index is outside data or meta");
  }
  if (max_slots == 0) return make_int(env, 0);

  read_state *r = NULL;
  if (vnet) {
    instance *in = get_instance(env);
    r = in ? state_for(in, fd) : NULL;
    if (r == NULL) {
      throw_errno(env, ENOMEM, "malloc", "readSlots");
      return NULL;
    }
  }
  return make_int(env, read_core(r, fd, wfd, vnet, &c, timeout));
}

// ---- the idle path's send hook (idle.h) ------------------------------------------------------

typedef struct {
  wp_fd_hook hook;  // first: the External's data is read as a wp_fd_hook by fdwatch.c
  il_common c;
  instance *in;
  int tun_fd;
  int vnet;
  int has_name;
  char ifname[IFNAMSIZ];
} send_hook;

static size_t padded_length(size_t len, size_t mtu) {
  if (mtu == 0) return (len + 15) & ~(size_t)15;
  size_t last = len > mtu ? len % mtu : len;
  size_t padded = (last + 15) & ~(size_t)15;
  if (padded > mtu) padded = mtu;
  return len - last + padded;
}

/**
 * The lone packet in `slot`, if the lease covers it (its destination is an entry's address, that
 * entry's keypair may still send and has a reserved counter left, the interface's MTU is still the
 * lease's): a transport message with the entry's next counter, sealed in the scratch buffer and
 * sent. Returns the message length, or 0 (the slot is untouched).
 */
static int idle_send_one(send_hook *t, int32_t slot) {
  il_common *c = &t->c;
  int32_t *L = c->lease;
  const uint8_t *pkt = c->data + (size_t)slot * (size_t)c->slot_bytes + SLOT_PAYLOAD_OFFSET;
  size_t len = (size_t)c->meta[(size_t)slot * META_WORDS + M_LENGTH];
  if (len < 20) return 0;
  int version = pkt[0] >> 4;
  int32_t *E;
  if (version == 4) E = il_entry_for_addr(L, 4, pkt + 16);
  else if (version == 6 && len >= 40) E = il_entry_for_addr(L, 6, pkt + 24);
  else return 0;
  if (E == NULL || E[IE_SENT] >= IL_MAX || !il_entry_current(E, &c->st)) return 0;
  uint64_t counter = il_u64(E, IE_SEND_NEXT);
  if (counter >= il_u64(E, IE_SEND_END) || il_now_ms() >= il_u64(E, IE_SEND_UNTIL)) return 0;
  if (t->has_name) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, t->ifname, sizeof ifr.ifr_name);
    if (read_mtu(&ifr) != NULL || ifr.ifr_mtu != L[IL_MTU]) return 0;
  }
  size_t padded = padded_length(len, (size_t)(L[IL_MTU] > 0 ? L[IL_MTU] : 0));
  size_t mlen = 16 + padded + 16;
  if (mlen > c->scratch_len) return 0;
  uint8_t *m = c->scratch;  // the message: header, packet, padding, tag
  m[0] = 4;
  m[1] = m[2] = m[3] = 0;
  uint32_t ri = (uint32_t)E[IE_REMOTE_INDEX];
  for (int i = 0; i < 4; i++) m[4 + i] = (uint8_t)(ri >> (8 * i));
  for (int i = 0; i < 8; i++) m[8 + i] = (uint8_t)(counter >> (8 * i));
  memcpy(m + 16, pkt, len);
  memset(m + 16 + len, 0, padded - len);
  uint8_t nonce[12];
  il_nonce(nonce, counter);
  cp_seal(il_key(c, E, IL_KEY_SEND_OFFSET), nonce, m + 16, padded);
  il_set_u64(E, IE_SEND_NEXT, counter + 1);  // used, whether or not the send goes through
  ep_msg msg;
  ep_msg_init(&msg, &E[IE_EP], m, mlen);
  if (msg.h.msg_namelen == 0) return 0;
  ssize_t sent;
  do {
    sent = sendmsg(E[IE_SEND_FD], &msg.h, MSG_DONTWAIT);
  } while (sent < 0 && errno == EINTR);
  if (sent != (ssize_t)mlen) return 0;
  E[IE_SENT_LEN + E[IE_SENT]] = (int32_t)mlen;
  E[IE_SENT]++;
  E[IE_LAST] = ++L[IL_SEQ] * 2;
  return (int)mlen;
}

static int idle_send_run(wp_fd_hook *hk, int fd) {
  send_hook *t = (send_hook *)hk;
  il_common *c = &t->c;
  int32_t *L = c->lease;
  if (fd != t->tun_fd || !il_current(L, &c->st)) return WP_HOOK_PASS;
  read_state *r = NULL;
  if (t->vnet) {
    r = state_for(t->in, t->tun_fd);
    if (r == NULL || r->pending) return WP_HOOK_PASS;
  }
  if (il_list_free_slots(c, IL_TUN_QUIET, IL_TUN_AT) == 0) return WP_HOOK_PASS;
  // One slot: a lone packet needs one read, not a second that says EAGAIN (a super-packet's other
  // segments stay pending for main; a second packet makes the fd readable again).
  read_ctx rc = {
      .data = c->data, .data_len = c->data_len, .slot_bytes = (size_t)c->slot_bytes, .meta = c->meta, .meta_len = c->meta_len,
      .slots = c->slots, .max_slots = 1, .cap = (size_t)c->slot_bytes - SLOT_PAYLOAD_OFFSET - SLOT_TAIL_ROOM, .out = c->out,
  };
  int32_t *o = c->out;
  memset(o, 0, RO_LEN * sizeof(int32_t));
  int got = read_core(r, t->tun_fd, -1, t->vnet, &rc, 0);
  if (got == 1 && o[RO_PENDING] == 0 && o[RO_SUPER] == 0 && o[RO_TOO_BIG] == 0 && o[RO_MALFORMED] == 0 && o[RO_TRANSIENT] == 0 &&
      idle_send_one(t, c->slots[0]) > 0) {
    L[IL_SENT]++;
    L[IL_SENT_READS] += o[RO_READS];
    L[IL_SENT_PLAIN] += o[RO_BYTES];
    return WP_HOOK_DONE;
  }
  L[IL_TUN_ADOPT] = got >= 0 ? 1 + got : got;  // main publishes what was read (or meets the error) as its own read would
  return WP_HOOK_PASS;
}

static void send_hook_free(napi_env env, void *data, void *hint) {
  (void)hint;
  send_hook *t = data;
  il_release_common(env, &t->c);
  free(t);
}

// idleSendHook({ ...il_read_common's, tunFd, vnetHdr, ifname }) → External for fdwatch's setHook
static napi_value js_idle_send_hook(napi_env env, napi_callback_info info) {
  napi_value argv[1], v;
  if (get_args(env, info, 1, argv) != 0) return type_error(env, "idleSendHook(options)");
  send_hook *t = calloc(1, sizeof *t);
  if (t == NULL) {
    throw_errno(env, ENOMEM, "calloc", "idleSendHook");
    return NULL;
  }
  const char *bad = il_read_common(env, argv[0], &t->c, 16 + MAX_PACKET + 16 + 16);
  int32_t fd = -1;
  int vnet = 0;
  size_t nl = 0;
  if (bad == NULL && t->c.slot_bytes < SLOT_PAYLOAD_OFFSET + SLOT_TAIL_ROOM + 20) bad = "slotBytes (too small)";  // as readSlots
  if (bad == NULL && (napi_get_named_property(env, argv[0], "tunFd", &v) != napi_ok || get_i32(env, v, &fd) != 0 || fd < 0)) bad = "tunFd";
  if (bad == NULL && (napi_get_named_property(env, argv[0], "vnetHdr", &v) != napi_ok || get_bool(env, v, &vnet) != 0)) bad = "vnetHdr";
  if (bad == NULL && (napi_get_named_property(env, argv[0], "ifname", &v) != napi_ok ||
                      get_string(env, v, t->ifname, sizeof t->ifname, &nl) != 0)) bad = "ifname";
  if (bad != NULL) {
    il_release_common(env, &t->c);
    free(t);
    char msg[96];
    snprintf(msg, sizeof msg, "idleSendHook: bad option %s", bad);
    return type_error(env, msg);
  }
  t->tun_fd = fd;
  t->vnet = vnet;
  t->has_name = nl > 0;
  t->in = get_instance(env);
  if (t->in == NULL) {
    send_hook_free(env, t, NULL);
    throw_errno(env, ENOMEM, "malloc", "idleSendHook");
    return NULL;
  }
  t->hook.magic = WP_HOOK_MAGIC;
  t->hook.group = t->c.lease;  // the pipeline's other hook has the same lease
  t->hook.run = idle_send_run;
  napi_value ext = il_make_hook(env, &t->hook, send_hook_free);
  if (ext == NULL) send_hook_free(env, t, NULL);
  return ext;
}

// ---- writeSlots / GRO ---------------------------------------------------------------------

// ---- queue choice (multi-queue writes) ------------------------------------------------------

/** murmur3's 32-bit finalizer: every input bit affects every output bit. */
static inline uint32_t fmix32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

/** One 32-bit word into the running hash (murmur3's block step). */
static inline uint32_t mix_word(uint32_t h, uint32_t k) {
  k *= 0xcc9e2d51u;
  k = (k << 15) | (k >> 17);
  k *= 0x1b873593u;
  h ^= k;
  h = (h << 13) | (h >> 19);
  return h * 5 + 0xe6546b64u;
}

/**
 * The queue in [0, nq) for the IP packet pkt: a hash of its flow that is the same in both
 * directions (the two addresses, and for TCP/UDP the two ports, are put in a fixed order before
 * hashing), so a flow and its replies are written, and therefore read back, on one queue (see the
 * header comment). Ports only where the L4 header is there: IPv4's first fragment (offset 0),
 * IPv6 only when the next header is TCP/UDP directly. Anything else unparseable → 0.
 */
static uint32_t flow_queue(const uint8_t *pkt, size_t len, uint32_t nq) {
  if (nq <= 1 || len < 20) return 0;
  unsigned ver = pkt[0] >> 4;
  const uint8_t *a, *b, *l4 = NULL;
  unsigned alen;
  uint8_t proto;
  if (ver == 4) {
    unsigned ihl = (pkt[0] & 15u) * 4;
    if (ihl < 20 || ihl > len) return 0;
    proto = pkt[9];
    a = pkt + 12;
    b = pkt + 16;
    alen = 4;
    if ((get16(pkt + 6) & 0x1fff) == 0) l4 = pkt + ihl;
  } else if (ver == 6) {
    if (len < 40) return 0;
    proto = pkt[6];
    a = pkt + 8;
    b = pkt + 24;
    alen = 16;
    l4 = pkt + 40;
  } else {
    return 0;
  }
  if (memcmp(a, b, alen) > 0) {
    const uint8_t *t = a;
    a = b;
    b = t;
  }
  uint32_t h = proto;
  for (unsigned i = 0; i < alen; i += 4) h = mix_word(h, get32(a + i));
  for (unsigned i = 0; i < alen; i += 4) h = mix_word(h, get32(b + i));
  if ((proto == IPPROTO_TCP_ || proto == IPPROTO_UDP_) && l4 != NULL && l4 + 4 <= pkt + len) {
    uint32_t sp = get16(l4), dp = get16(l4 + 2);
    h = mix_word(h, sp < dp ? (sp << 16 | dp) : (dp << 16 | sp));
  }
  // Multiply-shift onto [0, nq): uses the high bits, no division.
  return (uint32_t)(((uint64_t)fmix32(h) * nq) >> 32);
}

// ---- writing ------------------------------------------------------------------------------

typedef struct {
  const int32_t *fds;  // the device's queue fds (nfds >= 1); NULL: record into mem (groCoalesce)
  uint32_t nfds;
  uint8_t *mem;
  size_t mem_cap, mem_used;
  int32_t *rec_lens, *rec_counts;
  size_t rec_cap, rec_n;
  int32_t *out;
  int overflow;
} sink;

static int fd_gone_errno(int e) { return e == EBADF || e == EBADFD || e == ENXIO || e == ENODEV || e == EFAULT; }

/** The fd to write the packet pkt (or the group it heads) on: its flow's queue; -1 when recording. */
static int sink_fd(const sink *s, const uint8_t *pkt, uint32_t len) {
  if (s->fds == NULL) return -1;
  return s->fds[s->nfds > 1 ? flow_queue(pkt, len, s->nfds) : 0];
}

/** Writes iov to fd (-1: records it); 0 on success, else the errno. */
static int sink_writev(sink *s, int fd, struct iovec *iov, int cnt, int npackets) {
  size_t total = 0;
  for (int i = 0; i < cnt; i++) total += iov[i].iov_len;
  if (s->fds == NULL) {
    if (s->mem_used + total > s->mem_cap || s->rec_n >= s->rec_cap) {
      s->overflow = 1;
      return ENOSPC;
    }
    for (int i = 0; i < cnt; i++) {
      memcpy(s->mem + s->mem_used, iov[i].iov_base, iov[i].iov_len);
      s->mem_used += iov[i].iov_len;
    }
    s->rec_lens[s->rec_n] = (int32_t)total;
    if (s->rec_counts) s->rec_counts[s->rec_n] = npackets;
    s->rec_n++;
    s->out[WO_WRITES]++;
    return 0;
  }
  for (int attempt = 0;; attempt++) {
    ssize_t r = cnt == 1 ? write(fd, iov[0].iov_base, iov[0].iov_len) : writev(fd, iov, cnt);
    if (r >= 0) {
      s->out[WO_WRITES]++;
      return 0;  // a TUN write takes the whole packet or fails
    }
    int e = errno;
    if (e == EINTR) continue;
    if ((e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS) && attempt < 4) {
      struct pollfd pfd = {.fd = fd, .events = POLLOUT};
      if (poll(&pfd, 1, 5) < 0 && errno != EINTR) return e;
      continue;
    }
    return e;
  }
}

typedef struct {
  uint8_t *pkt;     // packet start (slot + 16)
  uint32_t len;
  uint8_t v6;
  uint8_t cand;     // may be merged
  uint8_t tcp;      // has a TCP flow key (cand or not)
  uint8_t iphl, thl;
  uint32_t paylen;
  uint32_t seq;
  int group;        // flow-table entry this packet heads or joined, -1 for none
  int next;         // next member of its group, -1 at the end
} pinfo;

typedef struct {
  int head, tail;
  int count;
  int open;         // more segments may join
  uint32_t next_seq;
  uint32_t gso;
  uint32_t total;   // bytes of the merged packet
} group_t;

/** Classifies packet i: flow key presence, merge candidacy, header lengths. */
static void classify(pinfo *pi) {
  const uint8_t *p = pi->pkt;
  uint32_t len = pi->len;
  pi->cand = pi->tcp = 0;
  pi->group = pi->next = -1;
  if (len < 20) return;
  unsigned ver = p[0] >> 4;
  unsigned iphl;
  if (ver == 4) {
    iphl = (p[0] & 15u) * 4;
    if (iphl < 20 || p[9] != IPPROTO_TCP_ || get16(p + 2) != len || (get16(p + 6) & 0x3fff) != 0) return;
    pi->v6 = 0;
  } else if (ver == 6) {
    iphl = 40;
    if (len < 40 || p[6] != IPPROTO_TCP_ || (uint32_t)get16(p + 4) + 40 != len) return;
    pi->v6 = 1;
  } else {
    return;
  }
  if (iphl + 20 > len) return;
  unsigned thl = (p[iphl + 12] >> 4) * 4u;
  if (thl < 20 || iphl + thl > len) return;
  pi->tcp = 1;  // the flow key (addresses, ports) is readable
  pi->iphl = (uint8_t)iphl;
  pi->thl = (uint8_t)thl;
  pi->paylen = len - iphl - thl;
  pi->seq = get32(p + iphl + 4);
  uint8_t fl = p[iphl + 13];
  if ((!pi->v6 && iphl != 20) || pi->paylen == 0 || (fl != TCP_ACK && fl != (TCP_ACK | TCP_PSH))) return;
  // Only segments that arrived intact: the merged one gets its checksum from the kernel.
  if (!pi->v6 && fold_be(sum_native(p, 20, 0)) != 0xffff) return;
  if (fold16(pseudo_sum(p, pi->v6, IPPROTO_TCP_, len - iphl) + fold_be(sum_native(p + iphl, len - iphl, 0))) != 0xffff) return;
  pi->cand = 1;
}

static int same_flow(const pinfo *a, const pinfo *b) {
  if (a->v6 != b->v6 || a->iphl != b->iphl) return 0;
  const uint8_t *x = a->pkt, *y = b->pkt;
  if (a->v6 ? memcmp(x + 8, y + 8, 32) != 0 : memcmp(x + 12, y + 12, 8) != 0) return 0;
  return memcmp(x + a->iphl, y + b->iphl, 4) == 0;  // ports
}

/** Whether b may follow the group headed by a (same flow already checked). */
static int can_join(const group_t *g, const pinfo *a, const pinfo *b) {
  if (!g->open || !b->cand || g->count >= GRO_MAX_SEGS) return 0;
  if (b->seq != g->next_seq || b->paylen > g->gso || g->total + b->paylen > MAX_PACKET) return 0;
  const uint8_t *x = a->pkt, *y = b->pkt;
  if (a->v6) {
    if (memcmp(x, y, 4) != 0 || x[7] != y[7]) return 0;  // version, traffic class, flow label; hop limit
  } else {
    if (x[1] != y[1] || x[6] != y[6] || x[7] != y[7] || x[8] != y[8]) return 0;  // TOS, flags, TTL
  }
  if (a->thl != b->thl) return 0;
  const uint8_t *tx = x + a->iphl, *ty = y + b->iphl;
  if (memcmp(tx + 8, ty + 8, 4) != 0) return 0;   // ACK number
  if (memcmp(tx + 14, ty + 14, 2) != 0) return 0; // window
  return memcmp(tx + 20, ty + 20, a->thl - 20u) == 0;  // options
}

/**
 * Result for a failed write of npackets: 1 = the fd is gone (stop). With several queues any
 * one gone means the device is (deleting the link detaches them all, and a closed fd is a bug
 * of the caller): the call stops the same way.
 */
static int count_error(sink *s, int e, int npackets) {
  if (fd_gone_errno(e) && s->fds != NULL) {
    s->out[WO_GONE_ERRNO] = e;
    return 1;
  }
  s->out[WO_ERRORS] += npackets;
  s->out[WO_LAST_ERRNO] = e;
  return 0;
}

/** Writes one packet as is (with a zeroed virtio header when vnet). 1 = fd gone. */
static int write_single(sink *s, int vnet, uint8_t *pkt, uint32_t len) {
  struct iovec iov;
  if (vnet) {
    memset(pkt - VNET_HDR_LEN, 0, VNET_HDR_LEN);
    iov.iov_base = pkt - VNET_HDR_LEN;
    iov.iov_len = len + VNET_HDR_LEN;
  } else {
    iov.iov_base = pkt;
    iov.iov_len = len;
  }
  int e = sink_writev(s, sink_fd(s, pkt, len), &iov, 1, 1);
  if (e != 0) return count_error(s, e, 1);
  s->out[WO_WRITTEN]++;
  s->out[WO_BYTES] += (int32_t)len;
  return 0;
}

/** Writes a group of two or more segments as one GSO packet; falls back to single writes on EINVAL. 1 = fd gone. */
static int write_group(sink *s, pinfo *pi, const group_t *g) {
  pinfo *a = &pi[g->head];
  uint8_t *p = a->pkt;
  unsigned hl = a->iphl + a->thl;
  int fd = sink_fd(s, p, a->len);  // the group is one flow: the head's queue is every member's
  uint8_t saved[120];
  memcpy(saved, p, hl);

  const pinfo *last = &pi[g->tail];
  uint8_t *th = p + a->iphl;
  if (last->pkt[last->iphl + 13] & TCP_PSH) th[13] |= TCP_PSH;
  if (a->v6) {
    put16(p + 4, (uint16_t)(g->total - 40));
  } else {
    put16(p + 2, (uint16_t)g->total);
    ipv4_fix_checksum(p, 20);
  }
  put16(th + 16, fold16(pseudo_sum(p, a->v6, IPPROTO_TCP_, g->total - a->iphl)));
  vhdr_t h = {
      .flags = VNET_F_NEEDS_CSUM,
      .gso_type = a->v6 ? GSO_TCPV6 : GSO_TCPV4,
      .hdr_len = (uint16_t)hl,
      .gso_size = (uint16_t)g->gso,
      .csum_start = a->iphl,
      .csum_offset = 16,
  };
  vhdr_store(p - VNET_HDR_LEN, &h);

  struct iovec iov[GRO_MAX_SEGS];
  int cnt = 0;
  iov[cnt].iov_base = p - VNET_HDR_LEN;
  iov[cnt++].iov_len = VNET_HDR_LEN + a->len;
  for (int j = a->next; j >= 0; j = pi[j].next) {
    iov[cnt].iov_base = pi[j].pkt + pi[j].iphl + pi[j].thl;
    iov[cnt++].iov_len = pi[j].paylen;
  }
  int e = sink_writev(s, fd, iov, cnt, g->count);
  if (e == 0) {
    s->out[WO_WRITTEN] += g->count;
    s->out[WO_COALESCED] += g->count - 1;
    for (int j = g->head; j >= 0; j = pi[j].next) s->out[WO_BYTES] += (int32_t)pi[j].len;
    return 0;
  }
  memcpy(p, saved, hl);  // undo, whatever happens next
  if (e != EINVAL) return count_error(s, e, g->count);
  // The kernel refused the GSO packet: send the segments one by one.
  for (int j = g->head; j >= 0; j = pi[j].next) {
    if (write_single(s, 1, pi[j].pkt, pi[j].len)) return 1;
  }
  return 0;
}

/**
 * Writes packets [0, n) of one chunk. Returns how many were handled before the fd went away
 * (n when it did not).
 */
static int write_chunk(sink *s, int vnet, int gro, pinfo *pi, int n) {
  if (!vnet || !gro) {
    for (int i = 0; i < n; i++) {
      if (write_single(s, vnet, pi[i].pkt, pi[i].len)) return i;
    }
    return n;
  }
  group_t groups[GRO_CHUNK];
  int ng = 0;
  for (int i = 0; i < n; i++) {
    classify(&pi[i]);
    if (!pi[i].tcp) continue;
    // The newest entry of this flow, if any within the last GRO_SCAN entries.
    int found = -1;
    for (int k = ng - 1; k >= 0 && k >= ng - GRO_SCAN; k--) {
      if (same_flow(&pi[groups[k].head], &pi[i])) {
        found = k;
        break;
      }
    }
    if (found >= 0) {
      group_t *g = &groups[found];
      if (can_join(g, &pi[g->head], &pi[i])) {
        pi[g->tail].next = i;
        g->tail = i;
        g->count++;
        g->total += pi[i].paylen;
        g->next_seq += pi[i].paylen;
        pi[i].group = found;
        if (pi[i].paylen < g->gso || (pi[i].pkt[pi[i].iphl + 13] & TCP_PSH)) g->open = 0;
        continue;
      }
      g->open = 0;
    }
    // A new entry: a later packet of this flow finds it first, so nothing of the flow can
    // join an older group past this packet.
    group_t *g = &groups[ng];
    g->head = g->tail = i;
    g->count = 1;
    g->gso = pi[i].paylen;
    g->total = pi[i].len;
    g->next_seq = pi[i].seq + pi[i].paylen;
    g->open = pi[i].cand && !(pi[i].pkt[pi[i].iphl + 13] & TCP_PSH);
    pi[i].group = ng;
    ng++;
  }
  int handled = 0;
  for (int i = 0; i < n; i++) {
    int gi = pi[i].group;
    if (gi >= 0 && groups[gi].head != i) continue;  // written with its group's head
    if (gi >= 0 && groups[gi].count > 1) {
      if (write_group(s, pi, &groups[gi])) return handled;
      handled += groups[gi].count;
    } else {
      if (write_single(s, vnet, pi[i].pkt, pi[i].len)) return handled;
      handled++;
    }
  }
  return handled;
}

typedef struct {
  uint8_t *data;
  size_t data_len, slot_bytes;
  const int32_t *slots, *lens;
  int n;
} batch;

/** Fills pi for packets [from, from+cnt); returns -1 if a slot or length is out of range. */
static int load_chunk(const batch *b, int from, int cnt, pinfo *pi) {
  for (int k = 0; k < cnt; k++) {
    int32_t s = b->slots[from + k], len = b->lens[from + k];
    if (s < 0 || (size_t)(s + 1) * b->slot_bytes > b->data_len || len < 0 ||
        (size_t)len > b->slot_bytes - SLOT_PAYLOAD_OFFSET) {
      return -1;
    }
    pi[k].pkt = b->data + (size_t)s * b->slot_bytes + SLOT_PAYLOAD_OFFSET;
    pi[k].len = (uint32_t)len;
    pi[k].group = pi[k].next = -1;
  }
  return 0;
}

static int run_batch(sink *s, const batch *b, int vnet, int gro) {
  pinfo pi[GRO_CHUNK];
  int done = 0;
  while (done < b->n) {
    int cnt = b->n - done < GRO_CHUNK ? b->n - done : GRO_CHUNK;
    load_chunk(b, done, cnt, pi);
    int h = write_chunk(s, vnet, gro, pi, cnt);
    done += h;
    if (h < cnt) break;
  }
  return done;
}

static int check_batch(const batch *b) {
  pinfo pi[GRO_CHUNK];
  for (int done = 0; done < b->n; done += GRO_CHUNK) {
    int cnt = b->n - done < GRO_CHUNK ? b->n - done : GRO_CHUNK;
    if (load_chunk(b, done, cnt, pi) != 0) return -1;
  }
  return 0;
}

/** writeSlots' first argument: one fd (a number), or the queue fds (a non-empty Int32Array). */
static int get_fds(napi_env env, napi_value v, int32_t *one, const int32_t **fds, uint32_t *nfds) {
  size_t count;
  if (get_i32(env, v, one) == 0) {
    *fds = one;
    *nfds = 1;
    return 0;
  }
  if (get_typed(env, v, napi_int32_array, (void **)fds, &count) != 0 || count == 0 || count > UINT32_MAX) return -1;
  *nfds = (uint32_t)count;
  return 0;
}

// writeSlots(tunFd | queueFds, vnetHdr, data, slotBytes, meta, slots, lens, n, gro, out) → packets handled
static napi_value js_write_slots(napi_env env, napi_callback_info info) {
  napi_value argv[10];
  int32_t one_fd, slot_bytes, n;
  const int32_t *fds;
  uint32_t nfds;
  int vnet, gro;
  batch b;
  size_t slots_len, lens_len, out_len;
  int32_t *out;
  void *p;
  if (get_args(env, info, 10, argv) != 0 || get_fds(env, argv[0], &one_fd, &fds, &nfds) != 0 || get_bool(env, argv[1], &vnet) != 0 ||
      get_typed(env, argv[2], napi_uint8_array, &p, &b.data_len) != 0 || get_i32(env, argv[3], &slot_bytes) != 0 ||
      get_typed(env, argv[5], napi_int32_array, (void **)&b.slots, &slots_len) != 0 ||
      get_typed(env, argv[6], napi_int32_array, (void **)&b.lens, &lens_len) != 0 || get_i32(env, argv[7], &n) != 0 ||
      get_bool(env, argv[8], &gro) != 0 || get_typed(env, argv[9], napi_int32_array, (void **)&out, &out_len) != 0) {
    return type_error(env, "writeSlots(tunFd | queueFds: Int32Array (non-empty), vnetHdr, data: Uint8Array, slotBytes, meta, slots: Int32Array, lens: Int32Array, n, gro, out: Int32Array)");
  }
  b.data = p;
  if (slot_bytes < SLOT_PAYLOAD_OFFSET + 20) return range_error(env, "writeSlots: slotBytes too small");
  if (n < 0 || (size_t)n > slots_len || (size_t)n > lens_len) return range_error(env, "writeSlots: n exceeds slots or lens");
  if (out_len < WO_LEN) return range_error(env, "writeSlots: out needs 7 entries");
  b.slot_bytes = (size_t)slot_bytes;
  b.n = n;
  if (check_batch(&b) != 0) return range_error(env, "writeSlots: a slot index or length is out of range");
  memset(out, 0, WO_LEN * sizeof(int32_t));
  sink s = {.fds = fds, .nfds = nfds, .out = out};
  return make_int(env, run_batch(&s, &b, vnet, gro));
}

// ---- pure helpers for tests ---------------------------------------------------------------

// gsoSplit(buf: virtio header + packet, out, outStride, lens) → segments, or -1 malformed,
// -2 out/lens too small. The same code readSlots runs: GSO_NONE gives one packet (checksum
// finished if NEEDS_CSUM), a super-packet its segments at out[i*outStride].
static napi_value js_gso_split(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  uint8_t *buf, *out;
  size_t blen, olen, lcount;
  int32_t stride, *lens;
  if (get_args(env, info, 4, argv) != 0 || get_typed(env, argv[0], napi_uint8_array, (void **)&buf, &blen) != 0 ||
      get_typed(env, argv[1], napi_uint8_array, (void **)&out, &olen) != 0 || get_i32(env, argv[2], &stride) != 0 ||
      get_typed(env, argv[3], napi_int32_array, (void **)&lens, &lcount) != 0 || stride <= 0) {
    return type_error(env, "gsoSplit(buf: Uint8Array, out: Uint8Array, outStride, lens: Int32Array)");
  }
  if (blen <= VNET_HDR_LEN || blen - VNET_HDR_LEN > SCRATCH_BYTES) return make_int(env, -1);
  vhdr_t h;
  vhdr_parse(buf, &h);
  const uint8_t *pkt = buf + VNET_HDR_LEN;
  size_t len = blen - VNET_HDR_LEN;
  if ((h.gso_type & (unsigned)~GSO_ECN) == GSO_NONE) {
    if (lcount < 1 || olen < len || (size_t)stride < len) return make_int(env, -2);
    memcpy(out, pkt, len);
    if ((h.flags & VNET_F_NEEDS_CSUM) && finish_checksum(out, len, &h) != 0) return make_int(env, -1);
    lens[0] = (int32_t)len;
    return make_int(env, 1);
  }
  split_plan plan;
  if (split_prepare(pkt, len, &h, &plan) != 0) return make_int(env, -1);
  if (plan.nseg > lcount || (size_t)plan.nseg * (size_t)stride > olen || split_seglen(&plan, 0) > (uint32_t)stride) {
    return make_int(env, -2);
  }
  for (uint32_t i = 0; i < plan.nseg; i++) lens[i] = (int32_t)split_segment(pkt, &plan, i, out + (size_t)i * (size_t)stride);
  return make_int(env, plan.nseg);
}

// groCoalesce(data, slotBytes, slots, lens, n, outBuf, outLens, outCounts, out) → records.
// Runs writeSlots' vnetHdr+gro path with the writes recorded instead: record r is the exact
// bytes one write() would get (10-byte header + packet), concatenated in outBuf, its length in
// outLens[r] and the number of input packets in it in outCounts[r]; out as in writeSlots.
// Returns -2 if outBuf/outLens were too small. Like writeSlots, it edits the slots' headers.
static napi_value js_gro_coalesce(napi_env env, napi_callback_info info) {
  napi_value argv[9];
  batch b;
  int32_t slot_bytes, n, *out;
  size_t slots_len, lens_len, rl, rc, out_len;
  void *p;
  sink s;
  memset(&s, 0, sizeof(s));
  if (get_args(env, info, 9, argv) != 0 || get_typed(env, argv[0], napi_uint8_array, &p, &b.data_len) != 0 ||
      get_i32(env, argv[1], &slot_bytes) != 0 || get_typed(env, argv[2], napi_int32_array, (void **)&b.slots, &slots_len) != 0 ||
      get_typed(env, argv[3], napi_int32_array, (void **)&b.lens, &lens_len) != 0 || get_i32(env, argv[4], &n) != 0 ||
      get_typed(env, argv[5], napi_uint8_array, (void **)&s.mem, &s.mem_cap) != 0 ||
      get_typed(env, argv[6], napi_int32_array, (void **)&s.rec_lens, &rl) != 0 ||
      get_typed(env, argv[7], napi_int32_array, (void **)&s.rec_counts, &rc) != 0 ||
      get_typed(env, argv[8], napi_int32_array, (void **)&out, &out_len) != 0) {
    return type_error(env, "groCoalesce(data, slotBytes, slots, lens, n, outBuf, outLens, outCounts, out)");
  }
  b.data = p;
  if (slot_bytes < SLOT_PAYLOAD_OFFSET + 20 || n < 0 || (size_t)n > slots_len || (size_t)n > lens_len || out_len < WO_LEN) {
    return range_error(env, "groCoalesce: bad sizes");
  }
  b.slot_bytes = (size_t)slot_bytes;
  b.n = n;
  if (check_batch(&b) != 0) return range_error(env, "groCoalesce: a slot index or length is out of range");
  memset(out, 0, WO_LEN * sizeof(int32_t));
  s.fds = NULL;  // record
  s.out = out;
  s.rec_cap = rl < rc ? rl : rc;
  run_batch(&s, &b, 1, 1);
  return make_int(env, s.overflow ? -2 : (int64_t)s.rec_n);
}

// flowQueue(packet: Uint8Array, queues) → the queue in [0, queues) writeSlots writes packet on
// (flow_queue); queues must be ≥ 1.
static napi_value js_flow_queue(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  uint8_t *pkt;
  size_t len;
  int32_t nq;
  if (get_args(env, info, 2, argv) != 0 || get_typed(env, argv[0], napi_uint8_array, (void **)&pkt, &len) != 0 ||
      get_i32(env, argv[1], &nq) != 0) {
    return type_error(env, "flowQueue(packet: Uint8Array, queues)");
  }
  if (nq < 1) return range_error(env, "flowQueue: queues must be at least 1");
  return make_int(env, flow_queue(pkt, len, (uint32_t)nq));
}

// ---- module -------------------------------------------------------------------------------

static napi_value init(napi_env env, napi_value exports) {
  const struct {
    const char *name;
    napi_callback fn;
  } fns[] = {
      {"open", js_open},
      {"query", js_query},
      {"attach", js_attach},
      {"setMtu", js_set_mtu},
      {"getMtu", js_get_mtu},
      {"eventfd", js_eventfd},
      {"wake", js_wake},
      {"readSlots", js_read_slots},
      {"idleSendHook", js_idle_send_hook},
      {"writeSlots", js_write_slots},
      {"gsoSplit", js_gso_split},
      {"groCoalesce", js_gro_coalesce},
      {"flowQueue", js_flow_queue},
  };
  for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
    napi_value f;
    napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f);
    napi_set_named_property(env, exports, fns[i].name, f);
  }
  napi_value v;
  napi_create_int32(env, READ_EOF, &v);
  napi_set_named_property(env, exports, "READ_EOF", v);
  napi_create_int32(env, READ_STATES, &v);
  napi_set_named_property(env, exports, "READ_STATES", v);
  // The idle lease's word numbers in idle.h's order (src/dataplane/idle-lease.ts must match; a test compares).
  static const int32_t layout[] = {
      IL_VALID, IL_ROUTE_VER, IL_ENGINE_VER, IL_UDP_GEN, IL_MTU, IL_TUN_ADOPT, IL_UDP_ADOPT, IL_TUN_AT, IL_TUN_QUIET, IL_RECV_AT,
      IL_RECV_QUIET, IL_COUNT, IL_SENT, IL_SENT_READS, IL_SENT_PLAIN, IL_RECEIVED, IL_RECV_BYTES, IL_WRITTEN, IL_WRITTEN_BYTES,
      IL_SEQ, IL_HEADER, IE_KEY_ID, IE_KEY_GEN, IE_FAMILY, IE_ADDR, IE_REMOTE_INDEX, IE_LOCAL_INDEX, IE_SEND_NEXT, IE_SEND_END,
      IE_SEND_UNTIL, IE_RECV_UNTIL, IE_RECV_TOP, IE_EP, IE_SEND_FD, IE_SENT, IE_SENT_LEN, IE_RECEIVED, IE_RECV_REC, IE_LAST, IE_WORDS,
      IL_MAX, IL_ENTRIES, IL_WORDS, IL_KEY_SLOT_BYTES, IL_KEY_SEND_OFFSET, IL_KEY_RECV_OFFSET,
  };
  napi_value arr;
  napi_create_array_with_length(env, sizeof layout / sizeof layout[0], &arr);
  for (uint32_t i = 0; i < sizeof layout / sizeof layout[0]; i++) {
    napi_create_int32(env, layout[i], &v);
    napi_set_element(env, arr, i, v);
  }
  napi_set_named_property(env, exports, "idleLayout", arr);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
