// wirepool's UDP addon: the interface's sockets opened and driven from C, so datagrams move
// between the kernel and the SharedArrayBuffer ring slots in batches, with no JS object per
// datagram (src/io/udp-native.ts is the typed wrapper; src/io/bind.ts owns the sockets).
//
//   open / close / setMark / localPort   one non-blocking UDP socket per family (IPv6-only for v6),
//                                         PKTINFO and UDP_GRO on, GSO support probed.
//   sendSlots   ring slots out with sendmmsg: one message per slot, or, with GSO, one message per
//               run of equal-sized slots to the same endpoint and source (UDP_SEGMENT control
//               message, an iovec per slot: no copy). The sticky source address of a slot
//               (IP_PKTINFO / IPV6_PKTINFO) goes with its message.
//   recvSlots   blocks in poll() on both sockets and a wake eventfd, then recvmmsg into scratch
//               buffers kept per thread, splits UDP_GRO super-datagrams and copies each datagram
//               into the next ring slot, with the sender and the local address in its words.
//   sendTo      one datagram (handshake messages).
//   eventfd / wake   the wake-up fd for recvSlots.
//
// The slot layout mirrors src/dataplane/layout.ts (META_WORDS Int32 words per slot; the endpoint
// block at M_EP_FAMILY). Everything here is synchronous and never blocks except recvSlots' poll.
// Conventions of the out[] arrays: src/io/udp-native.ts (SEND_OUT_*, RECV_OUT_*).
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <node_api.h>
#include "endpoint.h"
#include "chacha20poly1305.h"
#include "idle.h"

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

// ---- slot layout (src/dataplane/layout.ts) ------------------------------------------------------
#define META_WORDS 32
#define M_LENGTH 1
#define M_RESULT 2
#define M_EP_FAMILY 16  // the endpoint block (endpoint.h EPW_* inside it)

// ---- out[] indices (src/io/udp-native.ts) --------------------------------------------------------
#define OUT_WORDS 8
// sendSlots
#define SO_SENT 0          // slots sent (= the return value)
#define SO_STOP_INDEX 1    // index into slots[] of the first slot not sent (n when all were sent)
#define SO_STOP_ERRNO 2    // why sending stopped there: 0, or -errno (-EAGAIN: socket buffer full)
#define SO_CALLS 3         // sendmmsg calls made
#define SO_GSO_MSGS 4      // messages that carried several slots (UDP_SEGMENT)
#define SO_GSO_OFF 5       // 1 when this call turned GSO off for good on a socket (EIO)
#define SO_SRC_FALLBACKS 6 // messages resent without their source address (its words were zeroed)
#define SO_RETRIES 7       // messages resent once after a pending ICMP error
// recvSlots
#define RO_TOO_BIG 0       // datagrams dropped: longer than a slot (or truncated)
#define RO_ERRORS 1        // receive errors other than EAGAIN/EINTR (poll or recvmmsg)
#define RO_LAST_ERRNO 2    // -errno of the last such error
#define RO_CALLS 3         // recvmmsg calls made
#define RO_ENTRIES 4       // datagrams the kernel handed over (a GRO super-datagram counts once)
#define RO_GRO_ENTRIES 5   // of those, GRO super-datagrams holding more than one datagram
#define RO_PENDING 6       // datagrams kept for the next call (more than the slots given)
#define RO_WOKEN 7         // 1 when the wake eventfd was read

#define BATCH 64                 // messages per sendmmsg / recvmmsg
#define SCRATCH_BYTES 65536      // per receive entry
#define SEND_IOV_CAP 1024        // iovecs (slots) per sendmmsg batch
#define GSO_MAX_SEGMENTS 64
#define GSO_MAX_BYTES 65507

// ---- errors --------------------------------------------------------------------------------------

static const char *errno_name(int e) {
  switch (e) {
#define N(x) case x: return #x;
    N(EADDRINUSE) N(EADDRNOTAVAIL) N(EAFNOSUPPORT) N(EACCES) N(EPERM) N(EINVAL) N(EBADF)
    N(ENOBUFS) N(ENOMEM) N(EMFILE) N(ENFILE) N(EPROTONOSUPPORT) N(ENOPROTOOPT) N(EAGAIN)
    N(EINTR) N(EIO) N(ENOTSOCK) N(EOPNOTSUPP) N(ECONNREFUSED) N(EHOSTUNREACH) N(ENETUNREACH)
    N(EMSGSIZE) N(ENODEV) N(ENXIO) N(ENOSYS) N(EDESTADDRREQ) N(ESOCKTNOSUPPORT) N(ENETDOWN)
    N(EHOSTDOWN) N(ECONNRESET) N(EFAULT)
#undef N
    default: return "UNKNOWN";
  }
}

/** Throws an Error like Node's: message "<syscall> <CODE>", .code, .errno (negative), .syscall. */
static void throw_errno(napi_env env, const char *syscall, int err) {
  char msg[128];
  snprintf(msg, sizeof msg, "%s %s (%s)", syscall, errno_name(err), strerror(err));
  napi_value code, text, error, num, sc;
  napi_create_string_utf8(env, errno_name(err), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text);
  napi_create_error(env, code, text, &error);
  napi_create_int32(env, -err, &num);
  napi_set_named_property(env, error, "errno", num);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sc);
  napi_set_named_property(env, error, "syscall", sc);
  napi_throw(env, error);
}

// ---- argument helpers ----------------------------------------------------------------------------

typedef struct {
  void *data;
  size_t length; // elements
} ta_t;

static int arg_i32(napi_env env, napi_value v, int32_t *out, const char *what) {
  if (napi_get_value_int32(env, v, out) == napi_ok) return 1;
  napi_throw_type_error(env, NULL, what);
  return 0;
}

static int arg_bool(napi_env env, napi_value v, int *out) {
  bool b = false;
  if (napi_get_value_bool(env, v, &b) != napi_ok) {
    int32_t i = 0;
    if (napi_get_value_int32(env, v, &i) != napi_ok) return 0;
    b = i != 0;
  }
  *out = b;
  return 1;
}

static int arg_ta(napi_env env, napi_value v, napi_typedarray_type want, ta_t *out, const char *what) {
  bool is = false;
  napi_typedarray_type type;
  if (napi_is_typedarray(env, v, &is) == napi_ok && is &&
      napi_get_typedarray_info(env, v, &type, &out->length, &out->data, NULL, NULL) == napi_ok &&
      (type == want || (want == napi_uint8_array && type == napi_uint8_clamped_array))) {
    if (out->data == NULL) out->length = 0;
    return 1;
  }
  napi_throw_type_error(env, NULL, what);
  return 0;
}

static napi_value int_value(napi_env env, int32_t v) {
  napi_value r;
  napi_create_int32(env, v, &r);
  return r;
}

static void copy_out(const int32_t *res, ta_t *out) {
  int32_t *o = out->data;
  for (size_t i = 0; i < OUT_WORDS && i < out->length; i++) o[i] = res[i];
}

// ---- per-socket GSO state (process-wide: every worker thread sees it) ------------------------

#define GSO_TABLE 65536
static atomic_uchar gso_off[GSO_TABLE];

static int gso_usable(int fd) {
  return fd >= 0 && (fd >= GSO_TABLE || atomic_load_explicit(&gso_off[fd], memory_order_relaxed) == 0);
}

static void gso_set_off(int fd, unsigned char off) {
  if (fd >= 0 && fd < GSO_TABLE) atomic_store_explicit(&gso_off[fd], off, memory_order_relaxed);
}

// ---- sockets -------------------------------------------------------------------------------------

static int get_opt_number(napi_env env, napi_value obj, const char *name, uint32_t *out) {
  bool has = false;
  napi_value v;
  *out = 0;
  if (obj == NULL || napi_has_named_property(env, obj, name, &has) != napi_ok || !has) return 1;
  if (napi_get_named_property(env, obj, name, &v) != napi_ok) return 0;
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_undefined || t == napi_null) return 1;
  if (napi_get_value_uint32(env, v, out) != napi_ok) {
    napi_throw_type_error(env, NULL, "open: options rcvbuf, sndbuf and mark must be numbers");
    return 0;
  }
  return 1;
}

static int bound_port(int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return -errno;
  if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return -EAFNOSUPPORT;
}

// open(family: 4|6, port, opts: {rcvbuf, sndbuf, mark}) -> {fd, port, gso, gro}
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3] = {NULL, NULL, NULL};
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t family, port;
  if (argc < 2 || !arg_i32(env, argv[0], &family, "open(family, port, opts): family must be 4 or 6") ||
      !arg_i32(env, argv[1], &port, "open(family, port, opts): port must be a number")) return NULL;
  if ((family != 4 && family != 6) || port < 0 || port > 65535) {
    napi_throw_range_error(env, NULL, "open: family must be 4 or 6 and port in 0..65535");
    return NULL;
  }
  napi_value opts = NULL;
  if (argc >= 3) {
    napi_valuetype t;
    napi_typeof(env, argv[2], &t);
    if (t == napi_object) opts = argv[2];
  }
  uint32_t rcvbuf, sndbuf, mark;
  if (!get_opt_number(env, opts, "rcvbuf", &rcvbuf) || !get_opt_number(env, opts, "sndbuf", &sndbuf) ||
      !get_opt_number(env, opts, "mark", &mark)) return NULL;

  int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw_errno(env, "socket", errno);
    return NULL;
  }
  const int one = 1;
  const char *fail = NULL;
  int err = 0;
  if (family == 6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) fail = "setsockopt(IPV6_V6ONLY)";
  if (!fail && rcvbuf > 0) {
    int v = rcvbuf > INT32_MAX ? INT32_MAX : (int)rcvbuf;
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v); // root only: past rmem_max
  }
  if (!fail && sndbuf > 0) {
    int v = sndbuf > INT32_MAX ? INT32_MAX : (int)sndbuf;
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof v);
  }
  if (!fail) {
    if (family == 4 ? setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one) != 0
                    : setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one) != 0)
      fail = family == 4 ? "setsockopt(IP_PKTINFO)" : "setsockopt(IPV6_RECVPKTINFO)";
  }
  int gro = 0, gso = 0;
  if (!fail) {
    (void)setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one);
    int v = 0;
    socklen_t len = sizeof v;
    gro = getsockopt(fd, SOL_UDP, UDP_GRO, &v, &len) == 0 && v == 1;
    v = 0;
    len = sizeof v;
    gso = getsockopt(fd, SOL_UDP, UDP_SEGMENT, &v, &len) == 0;
  }
  if (!fail && mark != 0 && setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0) fail = "setsockopt(SO_MARK)";
  if (!fail) {
    int r;
    if (family == 4) {
      struct sockaddr_in sa;
      memset(&sa, 0, sizeof sa);
      sa.sin_family = AF_INET;
      sa.sin_port = htons((uint16_t)port);
      sa.sin_addr.s_addr = htonl(INADDR_ANY);
      r = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    } else {
      struct sockaddr_in6 sa;
      memset(&sa, 0, sizeof sa);
      sa.sin6_family = AF_INET6;
      sa.sin6_port = htons((uint16_t)port);
      sa.sin6_addr = in6addr_any;
      r = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    }
    if (r != 0) fail = "bind";
  }
  int actual = 0;
  if (!fail) {
    actual = bound_port(fd);
    if (actual < 0) {
      errno = -actual;
      fail = "getsockname";
    }
  }
  if (fail) {
    err = errno;
    close(fd);
    throw_errno(env, fail, err);
    return NULL;
  }
  // A reused fd number starts afresh. Without UDP_SEGMENT support GSO stays off whatever the caller
  // asks: a kernel that does not know the control message would send a group as one datagram.
  gso_set_off(fd, gso ? 0 : 1);

  napi_value result, v;
  napi_create_object(env, &result);
  napi_create_int32(env, fd, &v);
  napi_set_named_property(env, result, "fd", v);
  napi_create_int32(env, actual, &v);
  napi_set_named_property(env, result, "port", v);
  napi_get_boolean(env, gso, &v);
  napi_set_named_property(env, result, "gso", v);
  napi_get_boolean(env, gro, &v);
  napi_set_named_property(env, result, "gro", v);
  return result;
}

// close(fd) -> 0 | -errno
static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  if (argc < 1 || !arg_i32(env, argv[0], &fd, "close(fd): fd must be a number")) return NULL;
  if (fd < 0) return int_value(env, -EBADF);
  return int_value(env, close(fd) == 0 ? 0 : -errno);
}

// setMark(fd, mark) -> 0 | -errno
static napi_value js_set_mark(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  uint32_t mark;
  if (argc < 2 || !arg_i32(env, argv[0], &fd, "setMark(fd, mark) takes two numbers")) return NULL;
  if (napi_get_value_uint32(env, argv[1], &mark) != napi_ok) {
    napi_throw_type_error(env, NULL, "setMark(fd, mark) takes two numbers");
    return NULL;
  }
  return int_value(env, setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) == 0 ? 0 : -errno);
}

// localPort(fd) -> port | -errno
static napi_value js_local_port(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  if (argc < 1 || !arg_i32(env, argv[0], &fd, "localPort(fd): fd must be a number")) return NULL;
  return int_value(env, bound_port(fd));
}

// gsoDisabled(fd) -> boolean: true once a GSO send on fd failed with EIO (and GSO is off for it).
static napi_value js_gso_disabled(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], r;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  if (argc < 1 || !arg_i32(env, argv[0], &fd, "gsoDisabled(fd): fd must be a number")) return NULL;
  napi_get_boolean(env, !gso_usable(fd), &r);
  return r;
}

// ---- endpoints -----------------------------------------------------------------------------------

static void add_segment(char *ctrl, size_t *used, uint16_t size) {
  struct cmsghdr *c = (struct cmsghdr *)(ctrl + *used);
  c->cmsg_level = SOL_UDP;
  c->cmsg_type = UDP_SEGMENT;
  c->cmsg_len = CMSG_LEN(sizeof size);
  memcpy(CMSG_DATA(c), &size, sizeof size);
  *used += CMSG_SPACE(sizeof size);
}

/** The send failed because the sticky source address is no longer usable (ours no more, interface gone, no route from it). */
static int is_source_error(int e) {
  return e == EINVAL || e == EADDRNOTAVAIL || e == ENETUNREACH || e == ENODEV || e == ENXIO;
}

/** A pending asynchronous error (an earlier ICMP message) that a send reports once: worth one retry. */
static int is_pending_error(int e) {
  return e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH || e == EHOSTDOWN || e == ECONNRESET;
}

// ---- sendSlots -----------------------------------------------------------------------------------

typedef struct {
  int first;  // index into slots[] of its first slot
  int nslots; // slots it carries (> 1 only with UDP_SEGMENT)
  int gso;    // carries a UDP_SEGMENT control message
  int pkt;    // carries a source address control message
} msg_rec;

static int32_t *ep_words(int32_t *meta, int32_t slot) {
  return meta + (size_t)slot * META_WORDS + M_EP_FAMILY;
}

/**
 * Sends slots[0..n) in order (see js_send_slots). Returns the number sent; `res` gets the SO_*
 * counters. Loops are bounded: every retry either advances, or changes a state that cannot change
 * back (GSO off, a group split, a source cleared, the one ICMP retry of a message used).
 */
static int send_slots(int fd4, int fd6, uint8_t *data, uint32_t slot_bytes, int32_t *meta, const int32_t *slots, int n,
                      int gso_wanted, int32_t *res) {
  struct mmsghdr msgs[BATCH];
  struct iovec iov[SEND_IOV_CAP];
  sockaddr_any names[BATCH];
  ctrl_buf ctrls[BATCH];
  msg_rec recs[BATCH];
  int i = 0;              // slots[] index of the next slot to send (= slots sent so far)
  int nogso_end = 0;      // slots[] below this are never grouped (a group the kernel refused)
  int retried_at = -1;    // slots[] index of the message that used its pending-error retry
  int eintr = 0;
  int stop = 0;
  memset(res, 0, OUT_WORDS * sizeof *res);

  while (i < n && !stop) {
    // Build a batch of messages for one socket, starting at slot i.
    int fd = -1, nm = 0, niov = 0, j = i;
    while (j < n && nm < BATCH && niov < SEND_IOV_CAP) {
      int32_t s = slots[j];
      int32_t *w = ep_words(meta, s);
      int fam = w[EPW_FAMILY];
      int f = fam == 4 ? fd4 : fam == 6 ? fd6 : -1;
      if (fam != 4 && fam != 6) {
        if (nm == 0) stop = -EDESTADDRREQ;
        break;
      }
      if (f < 0) {
        if (nm == 0) stop = -EBADF;
        break;
      }
      if (nm > 0 && f != fd) break;
      fd = f;
      int32_t len0 = meta[(size_t)s * META_WORDS + M_RESULT];
      int k = j + 1;
      if (gso_wanted && gso_usable(fd) && j >= nogso_end && len0 > 0) {
        int32_t total = len0;
        while (k < n && k - j < GSO_MAX_SEGMENTS && niov + (k - j) < SEND_IOV_CAP) {
          int32_t s2 = slots[k];
          int32_t len = meta[(size_t)s2 * META_WORDS + M_RESULT];
          if (len > len0 || len == 0 || total + len > GSO_MAX_BYTES) break;
          if (memcmp(ep_words(meta, s2), w, EP_WORDS * sizeof(int32_t)) != 0) break;
          total += len;
          k++;
          if (len < len0) break; // a shorter one ends the group
        }
      }
      struct msghdr *h = &msgs[nm].msg_hdr;
      memset(&msgs[nm], 0, sizeof msgs[nm]);
      h->msg_namelen = ep_sockaddr(w, &names[nm]);
      h->msg_name = &names[nm];
      for (int q = j; q < k; q++) {
        int32_t sq = slots[q];
        iov[niov + (q - j)].iov_base = data + (size_t)sq * slot_bytes;
        iov[niov + (q - j)].iov_len = (size_t)meta[(size_t)sq * META_WORDS + M_RESULT];
      }
      h->msg_iov = &iov[niov];
      h->msg_iovlen = (size_t)(k - j);
      size_t used = 0;
      recs[nm].pkt = add_pktinfo(ctrls[nm].buf, &used, fam, &w[EPW_SRC], w[EPW_SRC_IFINDEX]);
      recs[nm].gso = k - j > 1;
      if (recs[nm].gso) add_segment(ctrls[nm].buf, &used, (uint16_t)len0);
      h->msg_control = used ? ctrls[nm].buf : NULL;
      h->msg_controllen = used;
      recs[nm].first = j;
      recs[nm].nslots = k - j;
      niov += k - j;
      nm++;
      j = k;
    }
    if (nm == 0) break; // stop is set

    // Send it; on an error, decide what to rebuild from.
    int start = 0;
    while (start < nm) {
      res[SO_CALLS]++;
      int r = sendmmsg(fd, &msgs[start], (unsigned)(nm - start), MSG_DONTWAIT);
      if (r > 0) {
        for (int m = start; m < start + r; m++) {
          if (recs[m].gso) res[SO_GSO_MSGS]++;
          i = recs[m].first + recs[m].nslots;
        }
        start += r;
        continue;
      }
      int e = r < 0 ? errno : EAGAIN;
      msg_rec *rec = &recs[start];
      if (e == EINTR && eintr++ < 16) continue;
      if (e == EIO && rec->gso) {
        // The egress device cannot checksum a GSO packet: GSO off on this socket for good.
        gso_set_off(fd, 1);
        gso_wanted = 0;
        res[SO_GSO_OFF] = 1;
        break;
      }
      if ((e == EINVAL || e == EMSGSIZE) && rec->gso) {
        nogso_end = rec->first + rec->nslots; // e.g. segment larger than the path MTU: send them one by one
        break;
      }
      if (rec->pkt && is_source_error(e)) {
        // The sticky source is not ours any more: forget it in this slot and in every later slot
        // of this call with the same endpoint block, then send without.
        int32_t was[EP_WORDS];
        memcpy(was, ep_words(meta, slots[rec->first]), sizeof was);
        for (int q = rec->first; q < n; q++) {
          int32_t *wq = ep_words(meta, slots[q]);
          if (memcmp(wq, was, sizeof was) == 0) memset(&wq[EPW_SRC_IFINDEX], 0, 5 * sizeof(int32_t));
        }
        res[SO_SRC_FALLBACKS]++;
        break;
      }
      if (is_pending_error(e) && retried_at != rec->first) {
        retried_at = rec->first;
        res[SO_RETRIES]++;
        continue;
      }
      stop = -e;
      break;
    }
    // Next round starts at i: the first message not sent (rebuilt with the new state), if any.
  }
  res[SO_SENT] = i;
  res[SO_STOP_INDEX] = i;
  res[SO_STOP_ERRNO] = i < n ? stop : 0;
  return i;
}

// sendSlots(fd4, fd6, data: Uint8Array, slotBytes, meta: Int32Array, slots: Int32Array, n, gso, out: Int32Array) -> sent
static napi_value js_send_slots(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 9) {
    napi_throw_type_error(env, NULL, "sendSlots(fd4, fd6, data, slotBytes, meta, slots, n, gso, out) takes 9 arguments");
    return NULL;
  }
  int32_t fd4, fd6, slot_bytes, n;
  int gso;
  ta_t data, meta, slots, out;
  if (!arg_i32(env, argv[0], &fd4, "sendSlots: fd4 must be a number") ||
      !arg_i32(env, argv[1], &fd6, "sendSlots: fd6 must be a number") ||
      !arg_ta(env, argv[2], napi_uint8_array, &data, "sendSlots: data must be a Uint8Array") ||
      !arg_i32(env, argv[3], &slot_bytes, "sendSlots: slotBytes must be a number") ||
      !arg_ta(env, argv[4], napi_int32_array, &meta, "sendSlots: meta must be an Int32Array") ||
      !arg_ta(env, argv[5], napi_int32_array, &slots, "sendSlots: slots must be an Int32Array") ||
      !arg_i32(env, argv[6], &n, "sendSlots: n must be a number") ||
      !arg_ta(env, argv[8], napi_int32_array, &out, "sendSlots: out must be an Int32Array")) return NULL;
  if (!arg_bool(env, argv[7], &gso)) {
    napi_throw_type_error(env, NULL, "sendSlots: gso must be a boolean");
    return NULL;
  }
  if (slot_bytes <= 0 || n < 0 || (size_t)n > slots.length) {
    napi_throw_range_error(env, NULL, "sendSlots: slotBytes must be > 0 and n in 0..slots.length");
    return NULL;
  }
  const int32_t *sl = slots.data;
  int32_t *mw = meta.data;
  for (int32_t i = 0; i < n; i++) {
    int64_t s = sl[i];
    if (s < 0 || (uint64_t)(s + 1) * META_WORDS > meta.length) {
      napi_throw_range_error(env, NULL, "sendSlots: a slot index is outside meta");
      return NULL;
    }
    int64_t len = mw[s * META_WORDS + M_RESULT];
    if (len < 0 || len > slot_bytes || (uint64_t)(s * slot_bytes + len) > data.length) {
      napi_throw_range_error(env, NULL, "sendSlots: a slot's length (meta M_RESULT) is outside its data area");
      return NULL;
    }
  }
  int32_t res[OUT_WORDS];
  int sent = send_slots(fd4, fd6, data.data, (uint32_t)slot_bytes, mw, sl, n, gso, res);
  copy_out(res, &out);
  return int_value(env, sent);
}

// ---- sendTo --------------------------------------------------------------------------------------

// sendTo(fd, buf, off, len, family, addr, port, scope, srcAddr?, srcIfindex?) -> 0 | 1 | -errno
// 1: sent, but without the source address (it was not usable; the caller should forget it).
static napi_value js_send_to(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 8) {
    napi_throw_type_error(env, NULL, "sendTo(fd, buf, off, len, family, addr, port, scope, srcAddr?, srcIfindex?) takes 8 to 10 arguments");
    return NULL;
  }
  int32_t fd, off, len, family, port, scope, ifindex = 0;
  ta_t buf, addr, src = {NULL, 0};
  if (!arg_i32(env, argv[0], &fd, "sendTo: fd must be a number") ||
      !arg_ta(env, argv[1], napi_uint8_array, &buf, "sendTo: buf must be a Uint8Array") ||
      !arg_i32(env, argv[2], &off, "sendTo: off must be a number") ||
      !arg_i32(env, argv[3], &len, "sendTo: len must be a number") ||
      !arg_i32(env, argv[4], &family, "sendTo: family must be 4 or 6") ||
      !arg_ta(env, argv[5], napi_uint8_array, &addr, "sendTo: addr must be a Uint8Array") ||
      !arg_i32(env, argv[6], &port, "sendTo: port must be a number") ||
      !arg_i32(env, argv[7], &scope, "sendTo: scope must be a number")) return NULL;
  if (argc >= 9) {
    napi_valuetype t;
    napi_typeof(env, argv[8], &t);
    if (t != napi_undefined && t != napi_null &&
        !arg_ta(env, argv[8], napi_uint8_array, &src, "sendTo: srcAddr must be a Uint8Array or null")) return NULL;
  }
  if (argc >= 10) {
    napi_valuetype t;
    napi_typeof(env, argv[9], &t);
    if (t != napi_undefined && t != napi_null && !arg_i32(env, argv[9], &ifindex, "sendTo: srcIfindex must be a number")) return NULL;
  }
  size_t alen = family == 4 ? 4 : 16;
  if ((family != 4 && family != 6) || addr.length != alen || (src.data != NULL && src.length != alen) || off < 0 || len < 0 ||
      (size_t)off + (size_t)len > buf.length || port < 0 || port > 65535) {
    napi_throw_range_error(env, NULL, "sendTo: bad family, address length, port or buffer range");
    return NULL;
  }
  int32_t w[EP_WORDS];
  memset(w, 0, sizeof w);
  w[EPW_FAMILY] = family;
  w[EPW_PORT] = port;
  memcpy(&w[EPW_ADDR], addr.data, alen);
  w[EPW_SCOPE] = scope;
  if (src.data != NULL) {
    memcpy(&w[EPW_SRC], src.data, alen);
    w[EPW_SRC_IFINDEX] = ifindex;
  }
  ep_msg m;
  int pkt = ep_msg_init(&m, w, (uint8_t *)buf.data + off, (size_t)len);
  struct msghdr *h = &m.h;
  int fell_back = 0, retried = 0;
  for (int attempt = 0; attempt < 20; attempt++) {
    if (sendmsg(fd, h, MSG_DONTWAIT) >= 0) return int_value(env, fell_back);
    int e = errno;
    if (e == EINTR) continue;
    if (pkt && is_source_error(e)) {
      pkt = 0;
      fell_back = 1;
      h->msg_control = NULL;
      h->msg_controllen = 0;
      continue;
    }
    if (is_pending_error(e) && !retried) {
      retried = 1;
      continue;
    }
    return int_value(env, -e);
  }
  return int_value(env, -EINTR);
}

// ---- recvSlots -----------------------------------------------------------------------------------

typedef struct {
  int32_t len;
  int32_t gso;     // UDP_GRO segment size; 0 = a single datagram
  int32_t trunc;   // MSG_TRUNC: dropped
  int32_t words[EP_WORDS];
} entry;

/** Per-thread (per N-API environment) receive state: scratch buffers and datagrams not yet delivered. */
typedef struct {
  uint8_t *buf; // BATCH * SCRATCH_BYTES
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  sockaddr_any names[BATCH];
  ctrl_buf ctrls[BATCH];
  entry ent[BATCH];
  int count;  // entries received
  int cur;    // entry being delivered
  int off;    // bytes of it already delivered
  int flip;   // alternates which socket is read first
} recv_state;

typedef struct {
  recv_state *rs;
} instance;

static void instance_free(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  instance *in = data;
  if (in->rs) {
    free(in->rs->buf);
    free(in->rs);
  }
  free(in);
}

static recv_state *get_recv_state(napi_env env) {
  instance *in = NULL;
  if (napi_get_instance_data(env, (void **)&in) != napi_ok || in == NULL) return NULL;
  if (in->rs == NULL) {
    recv_state *rs = calloc(1, sizeof *rs);
    if (rs == NULL) return NULL;
    rs->buf = malloc((size_t)BATCH * SCRATCH_BYTES);
    if (rs->buf == NULL) {
      free(rs);
      return NULL;
    }
    in->rs = rs;
  }
  return in->rs;
}

/** Datagrams still held in `st` (entries from st->cur on). */
static int32_t pending_datagrams(const recv_state *st) {
  int32_t total = 0;
  for (int c = st->cur; c < st->count; c++) {
    const entry *e = &st->ent[c];
    int32_t left = e->len - (c == st->cur ? st->off : 0);
    if (e->trunc) total += 1;
    else if (e->gso > 0) total += (left + e->gso - 1) / e->gso;
    else total += 1;
  }
  return total;
}

/** Copies held datagrams, in order, into slots[filled..max). Returns the new `filled`. */
static int deliver(recv_state *st, uint8_t *data, uint32_t slot_bytes, int32_t *meta, const int32_t *slots, int max, int filled,
                   int32_t *res) {
  while (st->cur < st->count && filled < max) {
    entry *e = &st->ent[st->cur];
    if (e->trunc) {
      res[RO_TOO_BIG]++;
      st->cur++;
      st->off = 0;
      continue;
    }
    int32_t left = e->len - st->off;
    int32_t l = e->gso > 0 && e->gso < left ? e->gso : left;
    if ((uint32_t)l > slot_bytes) {
      res[RO_TOO_BIG]++;
    } else {
      int32_t s = slots[filled++];
      memcpy(data + (size_t)s * slot_bytes, st->buf + (size_t)st->cur * SCRATCH_BYTES + st->off, (size_t)l);
      int32_t *m = meta + (size_t)s * META_WORDS;
      m[M_LENGTH] = l;
      memcpy(m + M_EP_FAMILY, e->words, sizeof e->words);
    }
    st->off += l;
    if (st->off >= e->len) {
      st->cur++;
      st->off = 0;
    }
  }
  if (st->cur >= st->count) st->count = st->cur = st->off = 0;
  return filled;
}

/** recvmmsg (non-blocking) up to `max` entries from fd, appended to st's entries. Returns how many. */
static int receive(recv_state *st, int fd, int max, int32_t *res) {
  int base = st->count;
  if (max > BATCH - base) max = BATCH - base;
  if (max <= 0) return 0;
  for (int m = base; m < base + max; m++) {
    struct msghdr *h = &st->msgs[m].msg_hdr;
    st->iov[m].iov_base = st->buf + (size_t)m * SCRATCH_BYTES;
    st->iov[m].iov_len = SCRATCH_BYTES;
    h->msg_name = &st->names[m];
    h->msg_namelen = sizeof st->names[m];
    h->msg_iov = &st->iov[m];
    h->msg_iovlen = 1;
    h->msg_control = st->ctrls[m].buf;
    h->msg_controllen = sizeof st->ctrls[m].buf;
    h->msg_flags = 0;
    st->msgs[m].msg_len = 0;
  }
  int r;
  int tries = 0;
  do {
    res[RO_CALLS]++;
    r = recvmmsg(fd, &st->msgs[base], (unsigned)max, MSG_DONTWAIT, NULL);
  } while (r < 0 && errno == EINTR && ++tries < 16);
  if (r < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      res[RO_ERRORS]++;
      res[RO_LAST_ERRNO] = -errno;
    }
    return 0;
  }
  for (int m = base; m < base + r; m++) {
    struct msghdr *h = &st->msgs[m].msg_hdr;
    entry *e = &st->ent[m];
    memset(e, 0, sizeof *e);
    e->len = (int32_t)st->msgs[m].msg_len;
    e->trunc = (h->msg_flags & MSG_TRUNC) != 0;
    const sockaddr_any *sa = &st->names[m];
    if (h->msg_namelen >= sizeof(struct sockaddr_in) && sa->sa.sa_family == AF_INET) {
      e->words[EPW_FAMILY] = 4;
      e->words[EPW_PORT] = ntohs(sa->v4.sin_port);
      memcpy(&e->words[EPW_ADDR], &sa->v4.sin_addr, 4);
    } else if (h->msg_namelen >= sizeof(struct sockaddr_in6) && sa->sa.sa_family == AF_INET6) {
      e->words[EPW_FAMILY] = 6;
      e->words[EPW_PORT] = ntohs(sa->v6.sin6_port);
      memcpy(&e->words[EPW_ADDR], &sa->v6.sin6_addr, 16);
      e->words[EPW_SCOPE] = (int32_t)sa->v6.sin6_scope_id;
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c != NULL; c = CMSG_NXTHDR(h, c)) {
      if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO && c->cmsg_len >= CMSG_LEN(sizeof(struct in_pktinfo))) {
        struct in_pktinfo pi;
        memcpy(&pi, CMSG_DATA(c), sizeof pi);
        e->words[EPW_SRC_IFINDEX] = pi.ipi_ifindex;
        memcpy(&e->words[EPW_SRC], &pi.ipi_spec_dst, 4); // the local address it reached (a reply's source)
      } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO &&
                 c->cmsg_len >= CMSG_LEN(sizeof(struct in6_pktinfo))) {
        struct in6_pktinfo pi;
        memcpy(&pi, CMSG_DATA(c), sizeof pi);
        e->words[EPW_SRC_IFINDEX] = (int32_t)pi.ipi6_ifindex;
        memcpy(&e->words[EPW_SRC], &pi.ipi6_addr, 16);
      } else if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
        if (c->cmsg_len >= CMSG_LEN(sizeof(int))) {
          int g;
          memcpy(&g, CMSG_DATA(c), sizeof g);
          e->gso = g;
        } else if (c->cmsg_len >= CMSG_LEN(sizeof(uint16_t))) {
          uint16_t g;
          memcpy(&g, CMSG_DATA(c), sizeof g);
          e->gso = g;
        }
      }
    }
    if (e->gso < 0 || e->gso >= e->len) e->gso = 0;
    res[RO_ENTRIES]++;
    if (e->gso > 0) res[RO_GRO_ENTRIES]++;
  }
  st->count = base + r;
  return r;
}

/**
 * Fills slots[0, max) with received datagrams: first those st keeps, then — after a poll of fd4,
 * fd6 and wake_fd (up to timeout ms when nothing was kept) — recvmmsg on the readable sockets.
 * Returns the slots filled; res[] counts the rest (errors, calls, what is kept: RO_PENDING).
 */
static int recv_core(recv_state *st, int fd4, int fd6, int wake_fd, int timeout, uint8_t *dp, uint32_t slot_bytes, int32_t *mw,
                     const int32_t *sl, int max, int32_t *res) {
  // Datagrams kept from the last call go first.
  int filled = deliver(st, dp, slot_bytes, mw, sl, max, 0, res);
  if (st->count == 0 && filled < max) {
    struct pollfd p[3] = {{fd4, POLLIN, 0}, {fd6, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    int r = poll(p, 3, filled > 0 ? 0 : timeout);
    if (r < 0 && errno != EINTR) {
      res[RO_ERRORS]++;
      res[RO_LAST_ERRNO] = -errno;
    } else if (r > 0) {
      if (p[2].revents & POLLIN) {
        uint64_t v;
        ssize_t rd = read(wake_fd, &v, sizeof v); // drains the eventfd counter
        (void)rd;
        res[RO_WOKEN] = 1;
      } else {
        for (int q = 0; q < 2; q++) {
          if (p[q].revents & POLLNVAL) {
            res[RO_ERRORS]++;
            res[RO_LAST_ERRNO] = -EBADF;
          }
        }
        const short ready = POLLIN | POLLERR | POLLHUP;
        int first = st->flip ? 1 : 0;
        st->flip ^= 1;
        int budget = max - filled < BATCH ? max - filled : BATCH;
        int both = (p[0].revents & ready) && (p[1].revents & ready);
        for (int q = 0; q < 2 && budget > 0; q++) {
          int k = first ^ q;
          if (!(p[k].revents & ready)) continue;
          int take = both && q == 0 ? (budget + 1) / 2 : budget;
          budget -= receive(st, p[k].fd, take, res);
        }
        filled = deliver(st, dp, slot_bytes, mw, sl, max, filled, res);
      }
    }
  }
  res[RO_PENDING] = pending_datagrams(st);
  return filled;
}

// recvSlots(fd4, fd6, wakeFd, timeoutMs, data, slotBytes, meta, slots, maxSlots, out) -> filled
static napi_value js_recv_slots(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 10) {
    napi_throw_type_error(env, NULL, "recvSlots(fd4, fd6, wakeFd, timeoutMs, data, slotBytes, meta, slots, maxSlots, out) takes 10 arguments");
    return NULL;
  }
  int32_t fd4, fd6, wake_fd, timeout, slot_bytes, max;
  ta_t data, meta, slots, out;
  if (!arg_i32(env, argv[0], &fd4, "recvSlots: fd4 must be a number") ||
      !arg_i32(env, argv[1], &fd6, "recvSlots: fd6 must be a number") ||
      !arg_i32(env, argv[2], &wake_fd, "recvSlots: wakeFd must be a number") ||
      !arg_i32(env, argv[3], &timeout, "recvSlots: timeoutMs must be a number") ||
      !arg_ta(env, argv[4], napi_uint8_array, &data, "recvSlots: data must be a Uint8Array") ||
      !arg_i32(env, argv[5], &slot_bytes, "recvSlots: slotBytes must be a number") ||
      !arg_ta(env, argv[6], napi_int32_array, &meta, "recvSlots: meta must be an Int32Array") ||
      !arg_ta(env, argv[7], napi_int32_array, &slots, "recvSlots: slots must be an Int32Array") ||
      !arg_i32(env, argv[8], &max, "recvSlots: maxSlots must be a number") ||
      !arg_ta(env, argv[9], napi_int32_array, &out, "recvSlots: out must be an Int32Array")) return NULL;
  if (slot_bytes <= 0 || max < 0 || (size_t)max > slots.length) {
    napi_throw_range_error(env, NULL, "recvSlots: slotBytes must be > 0 and maxSlots in 0..slots.length");
    return NULL;
  }
  const int32_t *sl = slots.data;
  for (int32_t i = 0; i < max; i++) {
    int64_t s = sl[i];
    if (s < 0 || (uint64_t)(s + 1) * META_WORDS > meta.length || (uint64_t)(s + 1) * (uint64_t)slot_bytes > data.length) {
      napi_throw_range_error(env, NULL, "recvSlots: a slot index is outside data or meta");
      return NULL;
    }
  }
  recv_state *st = get_recv_state(env);
  if (st == NULL) {
    napi_throw_error(env, "ENOMEM", "recvSlots: cannot allocate the receive buffers");
    return NULL;
  }
  int32_t res[OUT_WORDS];
  memset(res, 0, sizeof res);
  int32_t *mw = meta.data;
  uint8_t *dp = data.data;

  int filled = recv_core(st, fd4, fd6, wake_fd, timeout, dp, (uint32_t)slot_bytes, mw, sl, max, res);
  copy_out(res, &out);
  return int_value(env, filled);
}

// ---- the idle path's receive hook (idle.h) ---------------------------------------------------

typedef struct {
  wp_fd_hook hook;  // first: the External's data is read as a wp_fd_hook by fdwatch.c
  il_common c;
  recv_state *st;
  int32_t i_fd4, i_fd6;  // the pipeline's control words holding the current sockets
  int tun_fd;            // main's TUN write descriptor
  int vnet;
} recv_hook;

static uint64_t le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

/**
 * The lone datagram in `slot`, if the lease covers it: a transport message for an entry's receiver
 * index, from that entry's endpoint words, newer than every counter accepted under that index,
 * that opens (in the scratch buffer, the slot untouched) to a packet whose source is the address
 * of an entry of that index — written to TUN — or to a keepalive. Returns 1, or 0 (main takes the
 * slot as its own receive would have left it).
 */
static int idle_receive_one(recv_hook *u, int32_t slot) {
  il_common *c = &u->c;
  int32_t *L = c->lease;
  const uint8_t *msg = c->data + (size_t)slot * (size_t)c->slot_bytes;
  const int32_t *m = c->meta + (size_t)slot * META_WORDS;
  size_t len = (size_t)m[M_LENGTH];
  if (len < 32 || msg[0] != 4 || msg[1] != 0 || msg[2] != 0 || msg[3] != 0) return 0;
  uint32_t receiver = (uint32_t)msg[4] | (uint32_t)msg[5] << 8 | (uint32_t)msg[6] << 16 | (uint32_t)msg[7] << 24;
  // The keypair's words (key, endpoint, until) are the same in every entry of its index.
  int32_t *E = il_entry_for_index(L, receiver);
  if (E == NULL || !il_entry_current(E, &c->st) || il_now_ms() >= il_u64(E, IE_RECV_UNTIL) ||
      memcmp(m + M_EP_FAMILY, &E[IE_EP], EP_WORDS * sizeof(int32_t)) != 0) return 0;
  uint64_t counter = le64(msg + 8);
  if (counter <= il_index_top(L, receiver) || counter >= IL_COUNTER_LIMIT || 16 + len > c->scratch_len) return 0;
  size_t plen = len - 32;
  uint8_t *p = c->scratch + 16;  // 16 bytes of room in front (the virtio header), then the plaintext
  memcpy(p, msg + 16, len - 16);
  uint8_t nonce[12];
  il_nonce(nonce, counter);
  if (!cp_open(il_key(c, E, IL_KEY_RECV_OFFSET), nonce, p, plen)) return 0;
  size_t inner = 0;
  if (plen > 0) {
    int version = p[0] >> 4;
    // The entry of this index for the inner source (cryptokey routing: main checked, at the grant,
    // that the address routes to this peer); its records take the message.
    if (version == 4 && plen >= 20) {
      inner = (size_t)p[2] << 8 | p[3];
      if (inner < 20 || inner > plen || (E = il_entry_for_index_addr(L, receiver, 4, p + 12)) == NULL) return 0;
    } else if (version == 6 && plen >= 40) {
      inner = ((size_t)p[4] << 8 | p[5]) + 40;
      if (inner > plen || (E = il_entry_for_index_addr(L, receiver, 6, p + 8)) == NULL) return 0;
    } else {
      return 0;
    }
    if (E[IE_RECEIVED] >= IL_MAX) return 0;
    uint8_t *w = u->vnet ? p - 10 : p;  // a plain packet's virtio header: all zero
    size_t wlen = u->vnet ? inner + 10 : inner;
    if (u->vnet) memset(w, 0, 10);
    ssize_t r;
    do {
      r = write(u->tun_fd, w, wlen);
    } while (r < 0 && errno == EINTR);
    if (r != (ssize_t)wlen) return 0;
    L[IL_WRITTEN]++;
    L[IL_WRITTEN_BYTES] += (int32_t)inner;
  } else if (E[IE_RECEIVED] >= IL_MAX) {  // a keepalive: recorded under the first entry of its index
    return 0;
  }
  il_set_u64(E, IE_RECV_TOP, counter);  // the highest of the index's entries now (il_index_top)
  int32_t *rec = &E[IE_RECV_REC + 4 * E[IE_RECEIVED]];
  rec[0] = (int32_t)(uint32_t)counter;
  rec[1] = (int32_t)(uint32_t)(counter >> 32);
  rec[2] = (int32_t)len;
  rec[3] = (int32_t)plen;
  E[IE_RECEIVED]++;
  E[IE_LAST] = ++L[IL_SEQ] * 2 + 1;
  L[IL_RECEIVED]++;
  L[IL_RECV_BYTES] += (int32_t)len;
  return 1;
}

static int idle_receive_run(wp_fd_hook *hk, int fd) {
  recv_hook *u = (recv_hook *)hk;
  il_common *c = &u->c;
  int32_t *L = c->lease;
  if (!il_current(L, &c->st)) return WP_HOOK_PASS;
  int32_t fd4 = __atomic_load_n(&c->ctl[u->i_fd4], __ATOMIC_ACQUIRE), fd6 = __atomic_load_n(&c->ctl[u->i_fd6], __ATOMIC_ACQUIRE);
  if ((fd != fd4 && fd != fd6) || u->st->count != 0) return WP_HOOK_PASS;
  int n = il_list_free_slots(c, IL_RECV_QUIET, IL_RECV_AT);
  if (n == 0) return WP_HOOK_PASS;
  int32_t res[OUT_WORDS];
  memset(res, 0, sizeof res);
  // One datagram from the socket the loop found readable (no poll first; a GRO super-datagram
  // fills several slots, which main then takes).
  int got = receive(u->st, fd, 1, res) > 0 ? deliver(u->st, c->data, (uint32_t)c->slot_bytes, c->meta, c->slots, n, 0, res) : 0;
  res[RO_PENDING] = pending_datagrams(u->st);
  memcpy(c->out, res, sizeof res);
  if (got == 1 && res[RO_PENDING] == 0 && res[RO_TOO_BIG] == 0 && res[RO_ERRORS] == 0 && idle_receive_one(u, c->slots[0])) return WP_HOOK_DONE;
  L[IL_UDP_ADOPT] = 1 + got;  // main publishes what was received, as its own receive would
  return WP_HOOK_PASS;
}

static void recv_hook_free(napi_env env, void *data, void *hint) {
  (void)hint;
  recv_hook *u = data;
  il_release_common(env, &u->c);
  free(u);
}

// idleReceiveHook({ ...il_read_common's, iFd4, iFd6, tunFd, vnetHdr }) → External for fdwatch's setHook
static napi_value js_idle_receive_hook(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], v;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1) {
    napi_throw_type_error(env, NULL, "idleReceiveHook(options)");
    return NULL;
  }
  recv_hook *u = calloc(1, sizeof *u);
  if (u == NULL) {
    throw_errno(env, "calloc", ENOMEM);
    return NULL;
  }
  const char *bad = il_read_common(env, argv[0], &u->c, 16 + SCRATCH_BYTES);
  int32_t fd = -1;
  bool vnet = false;
  if (bad == NULL && (napi_get_named_property(env, argv[0], "iFd4", &v) != napi_ok || napi_get_value_int32(env, v, &u->i_fd4) != napi_ok ||
                      u->i_fd4 < 0 || (size_t)u->i_fd4 >= u->c.ctl_len)) bad = "iFd4";
  if (bad == NULL && (napi_get_named_property(env, argv[0], "iFd6", &v) != napi_ok || napi_get_value_int32(env, v, &u->i_fd6) != napi_ok ||
                      u->i_fd6 < 0 || (size_t)u->i_fd6 >= u->c.ctl_len)) bad = "iFd6";
  if (bad == NULL && (napi_get_named_property(env, argv[0], "tunFd", &v) != napi_ok || napi_get_value_int32(env, v, &fd) != napi_ok || fd < 0)) bad = "tunFd";
  if (bad == NULL && (napi_get_named_property(env, argv[0], "vnetHdr", &v) != napi_ok || napi_get_value_bool(env, v, &vnet) != napi_ok)) bad = "vnetHdr";
  if (bad != NULL) {
    il_release_common(env, &u->c);
    free(u);
    char msg[96];
    snprintf(msg, sizeof msg, "idleReceiveHook: bad option %s", bad);
    napi_throw_type_error(env, NULL, msg);
    return NULL;
  }
  u->tun_fd = fd;
  u->vnet = vnet;
  u->st = get_recv_state(env);
  if (u->st == NULL) {
    recv_hook_free(env, u, NULL);
    throw_errno(env, "malloc", ENOMEM);
    return NULL;
  }
  u->hook.magic = WP_HOOK_MAGIC;
  u->hook.group = u->c.lease;  // the pipeline's other hook has the same lease
  u->hook.run = idle_receive_run;
  napi_value ext = il_make_hook(env, &u->hook, recv_hook_free);
  if (ext == NULL) recv_hook_free(env, u, NULL);
  return ext;
}

// ---- eventfd -------------------------------------------------------------------------------------

// eventfd() -> fd (non-blocking, close-on-exec)
static napi_value js_eventfd(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) {
    throw_errno(env, "eventfd", errno);
    return NULL;
  }
  return int_value(env, fd);
}

// wake(efd) -> 0 | -errno
static napi_value js_wake(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  if (argc < 1 || !arg_i32(env, argv[0], &fd, "wake(efd): efd must be a number")) return NULL;
  uint64_t one = 1;
  ssize_t r = write(fd, &one, sizeof one);
  if (r == (ssize_t)sizeof one || (r < 0 && errno == EAGAIN)) return int_value(env, 0); // EAGAIN: already pending
  return int_value(env, r < 0 ? -errno : -EIO);
}

// ---- socketpair ----------------------------------------------------------------------------------

// socketpair() -> [fd, fd]: a packet-preserving pair of connected AF_UNIX sockets (SOCK_SEQPACKET,
// non-blocking, close-on-exec), e.g. an in-memory TUN for tests: one read or write is one packet.
// Both ends' send buffers are raised to 4 MiB (SO_SNDBUFFORCE, else SO_SNDBUF up to wmem_max; best
// effort): a connected pair is bounded by the sender's buffer, not by net.unix.max_dgram_qlen.
static napi_value js_socketpair(napi_env env, napi_callback_info info) {
  (void)info;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
    throw_errno(env, "socketpair", errno);
    return NULL;
  }
  napi_value arr;
  napi_create_array_with_length(env, 2, &arr);
  for (uint32_t i = 0; i < 2; i++) {
    int size = 4 << 20;
    if (setsockopt(sv[i], SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) != 0) {
      (void)setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    }
    napi_set_element(env, arr, i, int_value(env, sv[i]));
  }
  return arr;
}

// ---- module --------------------------------------------------------------------------------------

static napi_value init(napi_env env, napi_value exports) {
  instance *in = calloc(1, sizeof *in);
  if (in == NULL || napi_set_instance_data(env, in, instance_free, NULL) != napi_ok) {
    free(in);
    napi_throw_error(env, NULL, "wirepool_udp: cannot set instance data");
    return NULL;
  }
  static const struct {
    const char *name;
    napi_callback fn;
  } fns[] = {
    {"open", js_open},           {"close", js_close},         {"setMark", js_set_mark},
    {"localPort", js_local_port}, {"gsoDisabled", js_gso_disabled}, {"sendSlots", js_send_slots},
    {"recvSlots", js_recv_slots}, {"idleReceiveHook", js_idle_receive_hook}, {"sendTo", js_send_to},     {"eventfd", js_eventfd},
    {"wake", js_wake},           {"socketpair", js_socketpair},
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f);
    napi_set_named_property(env, exports, fns[i].name, f);
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
