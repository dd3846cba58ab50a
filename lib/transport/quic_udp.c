/* SPDX-License-Identifier: Apache-2.0 */
/* The endpoint's UDP socket: bind, batched receive (recvmmsg + GRO), batched send (GSO). */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"
#include "quic_int.h"

/* recvmmsg calls per readable event, so one busy peer cannot starve the loop. */
#define RX_CALLS_MAX 8
/* Longest a read burst keeps what it produced unsent. */
#define READ_FLUSH_NS (200 * NGTCP2_MICROSECONDS)

int ags_quic_addr_parse(const char *host, uint16_t port, ags_quic_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (!host)
		host = "0.0.0.0";
	struct sockaddr_in *in4 = (struct sockaddr_in *)&out->ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->ss;
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port);
		out->len = sizeof(*in4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		out->len = sizeof(*in6);
		return 0;
	}
	return AGS_ERR_CONFIG;
}

/* Turns an IPv4 address into its v4-mapped IPv6 form (for a dual-stack socket). */
static void map_v4(ags_quic_addr *a)
{
	struct sockaddr_in in4;
	memcpy(&in4, &a->ss, sizeof(in4));
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->ss;
	memset(&a->ss, 0, sizeof(a->ss));
	in6->sin6_family = AF_INET6;
	in6->sin6_port = in4.sin_port;
	in6->sin6_addr.s6_addr[10] = 0xff;
	in6->sin6_addr.s6_addr[11] = 0xff;
	memcpy(&in6->sin6_addr.s6_addr[12], &in4.sin_addr, 4);
	a->len = sizeof(*in6);
}

int ags_quic_addr_resolve(const char *host, uint16_t port, int family, int dual, ags_quic_addr *out,
                          ags_error *err)
{
	if (!host || !*host)
		return ags_error_set(err, AGS_ERR_INVALID, "host", "no host given");
	if (ags_quic_addr_parse(host, port, out) != 0) {
		struct addrinfo hints, *res = NULL;
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = (family == AF_INET6 && dual) ? AF_UNSPEC : family;
		hints.ai_socktype = SOCK_DGRAM;
		int rv = getaddrinfo(host, NULL, &hints, &res);
		if (rv != 0 || !res)
			return ags_error_set(err, AGS_ERR_NOT_FOUND, "host",
			                     "cannot resolve %s: %s", host, gai_strerror(rv));
		memset(out, 0, sizeof(*out));
		memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
		out->len = res->ai_addrlen;
		freeaddrinfo(res);
		if (out->ss.ss_family == AF_INET)
			((struct sockaddr_in *)&out->ss)->sin_port = htons(port);
		else
			((struct sockaddr_in6 *)&out->ss)->sin6_port = htons(port);
	}
	if (out->ss.ss_family == AF_INET && family == AF_INET6) {
		if (!dual)
			return ags_error_set(err, AGS_ERR_INVALID, "host",
			                     "%s is IPv4 but the endpoint is IPv6-only", host);
		map_v4(out);
	}
	if (out->ss.ss_family != family)
		return ags_error_set(err, AGS_ERR_INVALID, "host",
		                     "%s is not in the endpoint's address family", host);
	return 0;
}

void ags_quic_addr_text(const ags_quic_addr *a, char *buf, size_t cap)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	if (a->ss.ss_family == AF_INET) {
		const struct sockaddr_in *in4 = (const struct sockaddr_in *)&a->ss;
		inet_ntop(AF_INET, &in4->sin_addr, ip, sizeof(ip));
		snprintf(buf, cap, "%s:%u", ip, ntohs(in4->sin_port));
		return;
	}
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->ss;
	if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
		inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], ip, sizeof(ip));
		snprintf(buf, cap, "%s:%u", ip, ntohs(in6->sin6_port));
		return;
	}
	inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
	snprintf(buf, cap, "[%s]:%u", ip, ntohs(in6->sin6_port));
}

int ags_quic_udp_open(ags_quic_addr *local, int *fdp, int *dual, int *gro, ags_error *err)
{
	int family = local->ss.ss_family;
	int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
	if (fd < 0)
		return ags_error_set(err, AGS_ERR_IO, "host", "socket: %m");
	int one = 1, zero = 0;
	*dual = 0;
	if (family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&local->ss;
		int any = IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, any ? &zero : &one, sizeof(int)) ==
		        0 &&
		    any)
			*dual = 1;
		/* Don't fragment, ignore the cached path MTU: ngtcp2 probes it itself. */
		int pmtu = IPV6_PMTUDISC_PROBE;
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &pmtu, sizeof(pmtu));
	}
	if (family == AF_INET || *dual) {
		int pmtu = IP_PMTUDISC_PROBE;
		(void)setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof(pmtu));
	}
	/* Best effort: the kernel caps these at net.core.[rw]mem_max. */
	int bufsz = 4 * 1024 * 1024;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
	*gro = setsockopt(fd, IPPROTO_UDP, UDP_GRO, &one, sizeof(one)) == 0;
	if (bind(fd, (const struct sockaddr *)&local->ss, local->len) != 0) {
		int e = errno;
		char text[AGS_QUIC_ADDR_MAX];
		ags_quic_addr_text(local, text, sizeof(text));
		close(fd);
		errno = e;
		return ags_error_set(err, AGS_ERR_IO, "port", "bind %s: %m", text);
	}
	local->len = sizeof(local->ss);
	if (getsockname(fd, (struct sockaddr *)&local->ss, &local->len) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return ags_error_set(err, AGS_ERR_IO, "port", "getsockname: %m");
	}
	*fdp = fd;
	return 0;
}

/* Whether errno after a failed send means "the kernel cannot do GSO here". */
static int gso_refused(int e)
{
	return e == EIO || e == EINVAL || e == EOPNOTSUPP || e == ENOPROTOOPT;
}

/* Sends each segment as its own datagram, batched with sendmmsg. */
static int send_each(ags_quic_ep *ep, const ags_quic_addr *to, const uint8_t *data, size_t len,
                     size_t seg, size_t *sent)
{
	struct mmsghdr msgs[AGS_QUIC_GSO_MAX_SEGS];
	struct iovec iov[AGS_QUIC_GSO_MAX_SEGS];
	size_t done = 0;
	while (done < len) {
		unsigned n = 0;
		for (size_t off = done; off < len && n < AGS_QUIC_GSO_MAX_SEGS; off += seg, n++) {
			iov[n].iov_base = (void *)(data + off);
			iov[n].iov_len = len - off < seg ? len - off : seg;
			memset(&msgs[n], 0, sizeof(msgs[n]));
			msgs[n].msg_hdr.msg_name = (void *)&to->ss;
			msgs[n].msg_hdr.msg_namelen = to->len;
			msgs[n].msg_hdr.msg_iov = &iov[n];
			msgs[n].msg_hdr.msg_iovlen = 1;
		}
		int rv;
		do
			rv = sendmmsg(ep->fd, msgs, n, 0);
		while (rv < 0 && errno == EINTR);
		if (rv < 0) {
			*sent = done;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return AGS_ERR_AGAIN;
			/* Too big (a PMTU probe) or unreachable: lost, as on the wire. */
			size_t skip = len - done < seg ? len - done : seg;
			done += skip;
			if (errno == EMSGSIZE || errno == ECONNREFUSED || errno == EHOSTUNREACH ||
			    errno == ENETUNREACH)
				continue;
			*sent = done;
			return AGS_ERR_IO;
		}
		for (int i = 0; i < rv; i++)
			done += iov[i].iov_len;
	}
	*sent = done;
	return 0;
}

int ags_quic_udp_send(ags_quic_ep *ep, const ags_quic_addr *to, const uint8_t *data, size_t len,
                      size_t seg, size_t *sent)
{
	*sent = 0;
	if (len == 0)
		return 0;
	if (seg == 0 || seg > len)
		seg = len;
	if (len == seg || !ep->gso)
		return send_each(ep, to, data, len, seg, sent);

	struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
	union {
		char buf[CMSG_SPACE(sizeof(uint16_t))];
		struct cmsghdr align;
	} ctrl;
	memset(&ctrl, 0, sizeof(ctrl));
	struct msghdr msg;
	memset(&msg, 0, sizeof(msg));
	msg.msg_name = (void *)&to->ss;
	msg.msg_namelen = to->len;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = ctrl.buf;
	msg.msg_controllen = sizeof(ctrl.buf);
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_UDP;
	cm->cmsg_type = UDP_SEGMENT;
	cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
	uint16_t seg16 = (uint16_t)seg;
	memcpy(CMSG_DATA(cm), &seg16, sizeof(seg16));

	ssize_t rv;
	do
		rv = sendmsg(ep->fd, &msg, 0);
	while (rv < 0 && errno == EINTR);
	if (rv >= 0) {
		*sent = len;
		return 0;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return AGS_ERR_AGAIN;
	if (gso_refused(errno)) {
		ep->gso = 0;
		return send_each(ep, to, data, len, seg, sent);
	}
	if (errno == EMSGSIZE || errno == ECONNREFUSED || errno == EHOSTUNREACH ||
	    errno == ENETUNREACH) {
		*sent = len; /* lost, as on the wire */
		return 0;
	}
	return AGS_ERR_IO;
}

/* The GRO segment size of a received message, or 0. */
static size_t gro_size(struct msghdr *m)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(m); cm; cm = CMSG_NXTHDR(m, cm)) {
		if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
			int v;
			memcpy(&v, CMSG_DATA(cm), sizeof(v));
			return v > 0 ? (size_t)v : 0;
		}
	}
	return 0;
}

void ags_quic_udp_read(ags_quic_ep *ep)
{
	struct mmsghdr msgs[AGS_QUIC_RX_MSGS];
	struct iovec iov[AGS_QUIC_RX_MSGS];
	ags_quic_addr from[AGS_QUIC_RX_MSGS];
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctrl[AGS_QUIC_RX_MSGS];

	memset(ctrl, 0, sizeof(ctrl));
	/* A long burst of reads does not hold back what they produced (a sync
	 * peer's ACKs, which open its window): flush every READ_FLUSH_NS. */
	ngtcp2_tstamp flushed = ags_mono_ns();
	for (int call = 0; call < RX_CALLS_MAX && !ep->deleting; call++) {
		for (int i = 0; i < AGS_QUIC_RX_MSGS; i++) {
			iov[i].iov_base = ep->rxbuf + (size_t)i * AGS_QUIC_RX_BUFSZ;
			iov[i].iov_len = AGS_QUIC_RX_BUFSZ;
			memset(&msgs[i], 0, sizeof(msgs[i]));
			msgs[i].msg_hdr.msg_name = &from[i].ss;
			msgs[i].msg_hdr.msg_namelen = sizeof(from[i].ss);
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
			msgs[i].msg_hdr.msg_control = ctrl[i].buf;
			msgs[i].msg_hdr.msg_controllen = sizeof(ctrl[i].buf);
		}
		int n;
		do
			n = recvmmsg(ep->fd, msgs, AGS_QUIC_RX_MSGS, 0, NULL);
		while (n < 0 && errno == EINTR);
		if (n <= 0)
			return; /* EAGAIN, or an ICMP error surfaced on the socket: nothing to read
			         */
		ep->rx_batches++;
		for (int i = 0; i < n && !ep->deleting; i++) {
			const uint8_t *p = iov[i].iov_base;
			size_t len = msgs[i].msg_len;
			if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC)
				continue;
			from[i].len = msgs[i].msg_hdr.msg_namelen;
			size_t seg = gro_size(&msgs[i].msg_hdr);
			if (seg == 0)
				seg = len;
			while (len > 0 && !ep->deleting) {
				size_t l = len < seg ? len : seg;
				ags_quic_ep_on_datagram(ep, &from[i], p, l);
				p += l;
				len -= l;
				if (ags_mono_ns() - flushed >= READ_FLUSH_NS) {
					if (ep->cbs.on_read_pause)
						ep->cbs.on_read_pause(ep->cbs.user_data);
					ags_quic_ep_flush(ep);
					flushed = ags_mono_ns();
				}
			}
		}
		if (n < AGS_QUIC_RX_MSGS)
			return;
	}
}
