// An endpoint as the 12 endpoint words of a ring slot (src/io/endpoint-words.ts: family, port,
// raw address bytes, IPv6 scope, and the sticky source: the local address and interface a
// peer's datagram reached, from which replies leave) and what the socket calls need of it: the
// destination sockaddr and the IP_PKTINFO / IPV6_PKTINFO control message. Shared by udp.c (every
// send and receive) and tun.c (the idle path's lone send, idle.h).
#ifndef WIREPOOL_ENDPOINT_H
#define WIREPOOL_ENDPOINT_H

#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define EPW_FAMILY 0
#define EPW_PORT 1
#define EPW_ADDR 2      // 4 words of raw address bytes
#define EPW_SCOPE 6
#define EPW_SRC_IFINDEX 7
#define EPW_SRC 8       // 4 words of raw local address bytes
#define EP_WORDS 12
#define CTRL_BYTES 128  // room for a pktinfo and a UDP_SEGMENT / UDP_GRO message

typedef union {
  struct sockaddr sa;
  struct sockaddr_in v4;
  struct sockaddr_in6 v6;
} sockaddr_any;

typedef union {
  char buf[CTRL_BYTES];
  struct cmsghdr align;
} ctrl_buf;

/** Destination sockaddr from an endpoint block. Returns its length, 0 for a family that is neither 4 nor 6. */
static inline socklen_t ep_sockaddr(const int32_t *w, sockaddr_any *sa) {
  memset(sa, 0, sizeof *sa);
  if (w[EPW_FAMILY] == 4) {
    sa->v4.sin_family = AF_INET;
    sa->v4.sin_port = htons((uint16_t)w[EPW_PORT]);
    memcpy(&sa->v4.sin_addr, &w[EPW_ADDR], 4);
    return sizeof sa->v4;
  }
  if (w[EPW_FAMILY] == 6) {
    sa->v6.sin6_family = AF_INET6;
    sa->v6.sin6_port = htons((uint16_t)w[EPW_PORT]);
    memcpy(&sa->v6.sin6_addr, &w[EPW_ADDR], 16);
    sa->v6.sin6_scope_id = (uint32_t)w[EPW_SCOPE];
    return sizeof sa->v6;
  }
  return 0;
}

static inline int bytes_nonzero(const void *p, size_t n) {
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i]) return 1;
  return 0;
}

/**
 * Appends an IP_PKTINFO / IPV6_PKTINFO control message carrying a local source address (and
 * interface index) to `ctrl` at `*used`. Returns 1 if one was added (the source is non-zero).
 */
static inline int add_pktinfo(char *ctrl, size_t *used, int family, const void *src, int ifindex) {
  if (!bytes_nonzero(src, family == 4 ? 4 : 16)) return 0;
  struct cmsghdr *c = (struct cmsghdr *)(ctrl + *used);
  if (family == 4) {
    struct in_pktinfo pi;
    memset(&pi, 0, sizeof pi);
    memcpy(&pi.ipi_spec_dst, src, 4);
    pi.ipi_ifindex = ifindex;
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof pi);
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
    *used += CMSG_SPACE(sizeof pi);
  } else {
    struct in6_pktinfo pi;
    memset(&pi, 0, sizeof pi);
    memcpy(&pi.ipi6_addr, src, 16);
    pi.ipi6_ifindex = (unsigned)ifindex;
    c->cmsg_level = IPPROTO_IPV6;
    c->cmsg_type = IPV6_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof pi);
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
    *used += CMSG_SPACE(sizeof pi);
  }
  return 1;
}

/** One datagram to an endpoint: the msghdr and what it points to (keep it where it was set up). */
typedef struct {
  sockaddr_any sa;
  ctrl_buf ctrl;
  struct iovec iov;
  struct msghdr h;
} ep_msg;

/**
 * Sets m up to send buf[0, len) to the endpoint words w, from their sticky source when they have
 * one (IP_PKTINFO / IPV6_PKTINFO). Returns 1 if a source was added; m->h.msg_namelen is 0 for a
 * family that is neither 4 nor 6.
 */
static inline int ep_msg_init(ep_msg *m, const int32_t *w, void *buf, size_t len) {
  memset(&m->h, 0, sizeof m->h);
  m->iov.iov_base = buf;
  m->iov.iov_len = len;
  m->h.msg_namelen = ep_sockaddr(w, &m->sa);
  m->h.msg_name = &m->sa;
  m->h.msg_iov = &m->iov;
  m->h.msg_iovlen = 1;
  size_t used = 0;
  int pkt = add_pktinfo(m->ctrl.buf, &used, w[EPW_FAMILY], &w[EPW_SRC], w[EPW_SRC_IFINDEX]);
  m->h.msg_control = used ? m->ctrl.buf : NULL;
  m->h.msg_controllen = used;
  return pkt;
}

#endif
