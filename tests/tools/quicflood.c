/* SPDX-License-Identifier: Apache-2.0 */
/*
 * quicflood: a flood of QUIC handshakes that never complete, for tests of a
 * server's handshake budget (issue 17, item 1).
 *
 *   quicflood --connect HOST:PORT --cert C --key K --ca CA
 *             [--from 127.0.0.2] [--addrs N] [--rate R] [--count N]
 *             [--answer-retry]
 *
 * Each handshake is a real QUIC client Initial (ngtcp2 + GnuTLS, a real
 * ClientHello with ALPN agentsync/1), sent from one of N consecutive IPv4
 * source addresses starting at --from (127.0.0.0/8 all reach loopback), R a
 * second, N in all (0: until killed). Nothing the server answers is fed back,
 * so no handshake ever completes; with --answer-retry, Retry packets are
 * (the client then sends its Initial again with the token, as a real client
 * at a real address can), so the server must keep state for them. The
 * certificate is only there to make the ClientHello; the server never gets
 * to check it. Prints "sent N retries R" every second and at the end.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include "tls.h"

#define MAX_ADDRS 250
/* Handshakes kept to answer their Retry, per source address (oldest reused). */
#define KEEP 64

struct hs {
	ngtcp2_conn *qc;
	gnutls_session_t tls;
	ngtcp2_crypto_conn_ref ref;
	ngtcp2_cid scid;
};

struct src {
	int fd;
	struct sockaddr_in addr;
	struct hs keep[KEEP];
	size_t next;
};

static ags_tls_ctx *tls_ctx;
static struct sockaddr_in server;
static int answer_retry;
static unsigned long long retries;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref)
{
	return ((struct hs *)ref->user_data)->qc;
}

static void cb_rand(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *ctx)
{
	(void)ctx;
	(void)gnutls_rnd(GNUTLS_RND_NONCE, dest, len);
}

static int cb_new_cid(ngtcp2_conn *qc, ngtcp2_cid *cid, uint8_t *token, size_t cidlen, void *ud)
{
	(void)qc;
	(void)ud;
	cid->datalen = cidlen;
	if (gnutls_rnd(GNUTLS_RND_NONCE, cid->data, cidlen) != 0 ||
	    gnutls_rnd(GNUTLS_RND_NONCE, token, NGTCP2_STATELESS_RESET_TOKENLEN) != 0)
		return NGTCP2_ERR_CALLBACK_FAILURE;
	return 0;
}

static void hs_free(struct hs *h)
{
	if (h->qc)
		ngtcp2_conn_del(h->qc);
	if (h->tls)
		ags_tls_session_del(h->tls);
	memset(h, 0, sizeof(*h));
}

/* Writes the connection's next packet and sends it from s. */
static void hs_send(struct src *s, struct hs *h)
{
	uint8_t buf[1500];
	ngtcp2_path_storage ps;
	ngtcp2_path_storage_zero(&ps);
	ngtcp2_pkt_info pi;
	ngtcp2_ssize n = ngtcp2_conn_write_pkt(h->qc, &ps.path, &pi, buf, sizeof(buf), now_ns());
	if (n > 0)
		(void)sendto(s->fd, buf, (size_t)n, 0, (struct sockaddr *)&server, sizeof(server));
}

/* Starts one handshake from s: a fresh connection's first Initial. */
static int hs_start(struct src *s)
{
	struct hs *h = &s->keep[s->next];
	s->next = (s->next + 1) % KEEP;
	hs_free(h);
	ngtcp2_cid dcid;
	dcid.datalen = 18;
	h->scid.datalen = 16;
	if (gnutls_rnd(GNUTLS_RND_NONCE, dcid.data, dcid.datalen) != 0 ||
	    gnutls_rnd(GNUTLS_RND_NONCE, h->scid.data, h->scid.datalen) != 0)
		return -1;
	ngtcp2_callbacks cb;
	memset(&cb, 0, sizeof(cb));
	cb.client_initial = ngtcp2_crypto_client_initial_cb;
	cb.recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
	cb.encrypt = ngtcp2_crypto_encrypt_cb;
	cb.decrypt = ngtcp2_crypto_decrypt_cb;
	cb.hp_mask = ngtcp2_crypto_hp_mask_cb;
	cb.recv_retry = ngtcp2_crypto_recv_retry_cb;
	cb.rand = cb_rand;
	cb.get_new_connection_id = cb_new_cid;
	cb.update_key = ngtcp2_crypto_update_key_cb;
	cb.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
	cb.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
	cb.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
	cb.version_negotiation = ngtcp2_crypto_version_negotiation_cb;
	ngtcp2_settings st;
	ngtcp2_settings_default(&st);
	st.initial_ts = now_ns();
	ngtcp2_transport_params tp;
	ngtcp2_transport_params_default(&tp);
	tp.initial_max_streams_bidi = 1;
	tp.initial_max_data = 65536;
	tp.initial_max_stream_data_bidi_local = 65536;
	ngtcp2_path path = {
	    .local = {.addr = (ngtcp2_sockaddr *)&s->addr, .addrlen = sizeof(s->addr)},
	    .remote = {.addr = (ngtcp2_sockaddr *)&server, .addrlen = sizeof(server)},
	};
	h->ref.get_conn = get_conn;
	h->ref.user_data = h;
	if (ngtcp2_conn_client_new(&h->qc, &dcid, &h->scid, &path, NGTCP2_PROTO_VER_V1, &cb, &st,
	                           &tp, NULL, h) != 0) {
		h->qc = NULL;
		return -1;
	}
	ags_error err;
	if (ags_tls_session_client(tls_ctx, &h->ref, NULL, NULL, &h->tls, &err) != 0) {
		h->tls = NULL;
		hs_free(h);
		return -1;
	}
	ngtcp2_conn_set_tls_native_handle(h->qc, h->tls);
	hs_send(s, h);
	return 0;
}

/* Reads what the server sent to s; feeds Retry packets (only) to their connection. */
static void src_read(struct src *s)
{
	uint8_t buf[2048];
	for (;;) {
		ssize_t n = recv(s->fd, buf, sizeof(buf), 0);
		if (n <= 0)
			return;
		if (!answer_retry)
			continue;
		ngtcp2_version_cid vc;
		if (ngtcp2_pkt_decode_version_cid(&vc, buf, (size_t)n, 16) != 0)
			continue;
		/* A v1 long header of type Retry: 0b11 in bits 4-5. */
		if (!(buf[0] & 0x80) || (buf[0] & 0x30) != 0x30)
			continue;
		for (size_t i = 0; i < KEEP; i++) {
			struct hs *h = &s->keep[i];
			if (!h->qc || h->scid.datalen != vc.dcidlen ||
			    memcmp(h->scid.data, vc.dcid, vc.dcidlen) != 0)
				continue;
			ngtcp2_path path = {
			    .local = {.addr = (ngtcp2_sockaddr *)&s->addr,
			              .addrlen = sizeof(s->addr)},
			    .remote = {.addr = (ngtcp2_sockaddr *)&server,
			               .addrlen = sizeof(server)},
			};
			ngtcp2_pkt_info pi = {0};
			if (ngtcp2_conn_read_pkt(h->qc, &path, &pi, buf, (size_t)n, now_ns()) ==
			    0) {
				retries++;
				hs_send(s, h);
			}
			break;
		}
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: quicflood --connect HOST:PORT --cert C --key K --ca CA [--from "
	                "IP] [--addrs N] [--rate R] [--count N] [--answer-retry]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *connect = NULL, *cert = NULL, *key = NULL, *ca = NULL, *from = "127.0.0.2";
	unsigned long addrs = 1, rate = 1000, count = 0;
	static const struct option opts[] = {
	    {"connect", required_argument, NULL, 'c'}, {"cert", required_argument, NULL, 'e'},
	    {"key", required_argument, NULL, 'k'},     {"ca", required_argument, NULL, 'a'},
	    {"from", required_argument, NULL, 'f'},    {"addrs", required_argument, NULL, 'n'},
	    {"rate", required_argument, NULL, 'r'},    {"count", required_argument, NULL, 'N'},
	    {"answer-retry", no_argument, NULL, 'R'},  {NULL, 0, NULL, 0},
	};
	for (int o; (o = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
		switch (o) {
		case 'c':
			connect = optarg;
			break;
		case 'e':
			cert = optarg;
			break;
		case 'k':
			key = optarg;
			break;
		case 'a':
			ca = optarg;
			break;
		case 'f':
			from = optarg;
			break;
		case 'n':
			addrs = strtoul(optarg, NULL, 10);
			break;
		case 'r':
			rate = strtoul(optarg, NULL, 10);
			break;
		case 'N':
			count = strtoul(optarg, NULL, 10);
			break;
		case 'R':
			answer_retry = 1;
			break;
		default:
			usage();
		}
	}
	if (!connect || !cert || !key || !ca || addrs == 0 || addrs > MAX_ADDRS || rate == 0)
		usage();
	char host[64];
	const char *colon = strrchr(connect, ':');
	if (!colon || (size_t)(colon - connect) >= sizeof(host))
		usage();
	memcpy(host, connect, (size_t)(colon - connect));
	host[colon - connect] = '\0';
	server.sin_family = AF_INET;
	server.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &server.sin_addr) != 1)
		usage();

	ags_tls_config tc = {
	    .cert_file = cert, .key_file = key, .ca_file = ca, .reject_unauthorized = 1};
	ags_error err;
	if (ags_tls_ctx_new(&tc, &tls_ctx, &err) != 0) {
		fprintf(stderr, "error: tls: %s\n", err.message);
		return 1;
	}
	static struct src srcs[MAX_ADDRS];
	struct in_addr base;
	if (inet_pton(AF_INET, from, &base) != 1)
		usage();
	for (unsigned long i = 0; i < addrs; i++) {
		struct src *s = &srcs[i];
		s->addr.sin_family = AF_INET;
		s->addr.sin_addr.s_addr = htonl(ntohl(base.s_addr) + (uint32_t)i);
		s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&s->addr, sizeof(s->addr)) != 0) {
			fprintf(stderr, "error: bind %s: %s\n", inet_ntoa(s->addr.sin_addr),
			        strerror(errno));
			return 1;
		}
		socklen_t sl = sizeof(s->addr);
		getsockname(s->fd, (struct sockaddr *)&s->addr, &sl);
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("flooding %s from %lu addresses at %lu/s\n", connect, addrs, rate);
	uint64_t start = now_ns(), last_print = start;
	unsigned long long sent = 0;
	while (count == 0 || sent < count) {
		/* Keep to the rate: handshakes due by now, a few at a time. */
		uint64_t due = (now_ns() - start) / 1000u * rate / 1000000u;
		while (sent < due && (count == 0 || sent < count)) {
			if (hs_start(&srcs[sent % addrs]) == 0)
				sent++;
			else
				break;
		}
		for (unsigned long i = 0; i < addrs; i++)
			src_read(&srcs[i]);
		uint64_t now = now_ns();
		if (now - last_print >= 1000000000u) {
			last_print = now;
			printf("sent %llu retries %llu\n", sent, retries);
		}
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	printf("sent %llu retries %llu\n", sent, retries);
	printf("done\n");
	for (unsigned long i = 0; i < addrs; i++) {
		for (size_t j = 0; j < KEEP; j++)
			hs_free(&srcs[i].keep[j]);
		close(srcs[i].fd);
	}
	ags_tls_ctx_del(tls_ctx);
	return 0;
}
