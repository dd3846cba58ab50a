/* SPDX-License-Identifier: Apache-2.0 */
/*
 * quic_bench: the QUIC transport on 127.0.0.1, server in a forked child.
 *
 * Measures, client side:
 *   - full handshake: ags_quic_connect() to the client's handshake completion
 *     (seen from a check handle right after the packet that completed it),
 *     and to on_connected, which waits for HANDSHAKE_DONE, i.e. for the
 *     server to have verified our certificate; medians of N_HS
 *   - the same for a resumed handshake with a 64-byte request in 0-RTT
 *     (and how many had 0-RTT accepted)
 *   - request/response: 64 bytes each way on one stream, N_RR round trips,
 *     p50 and p99
 *   - bulk: BULK_BYTES on one stream to a sink, MB/s (10^6 bytes/s)
 * and prints one result line.
 *
 * Usage: quic_bench [--no-gso] [--bulk-mb N] [--rr N] [--hs N]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <uv.h>

#include "agentsync/certs.h"
#include "quic.h"
#include "tls.h"

#define MSG         64
#define BUF_BYTES   (16u * 1024 * 1024)
#define WRITE_CHUNK (1024u * 1024)

static int n_hs = 200, n_rr = 10000, warm_rr = 200, no_gso;
static uint64_t bulk_bytes = 200ull * 1000 * 1000;
static char certdir[256];

/* ------------------------------------------------------------------------ */
/* Server (child): 'E' streams echo, 'S' streams are sinks answering the count */

struct sstream {
	struct sstream *next;
	int64_t sid;
	char mode;
	uint64_t count;
};

struct sconn {
	struct sstream *streams;
};

struct echo {
	ags_quic_conn *c;
	int64_t sid;
	size_t len;
	uint8_t data[];
};

static void echo_done(void *ud, int status)
{
	struct echo *e = ud;
	if (status == 0)
		ags_quic_stream_consume(e->c, e->sid, e->len);
	free(e);
}

static void s_connected(void *ud, ags_quic_conn *c, const char *peer, const char *addr)
{
	ags_quic_conn_set_user_data(c, calloc(1, sizeof(struct sconn)));
}

static void s_closed(void *ud, ags_quic_conn *c, uint64_t code, const char *reason, int by_peer)
{
	struct sconn *sc = ags_quic_conn_user_data(c);
	if (!sc)
		return;
	while (sc->streams) {
		struct sstream *s = sc->streams;
		sc->streams = s->next;
		free(s);
	}
	free(sc);
}

static void s_stream_close(void *ud, ags_quic_conn *c, int64_t sid, uint64_t code)
{
	struct sconn *sc = ags_quic_conn_user_data(c);
	for (struct sstream **pp = sc ? &sc->streams : NULL; pp && *pp; pp = &(*pp)->next) {
		if ((*pp)->sid == sid) {
			struct sstream *s = *pp;
			*pp = s->next;
			free(s);
			return;
		}
	}
}

static void s_data(void *ud, ags_quic_conn *c, int64_t sid, const uint8_t *data, size_t len,
                   int fin)
{
	struct sconn *sc = ags_quic_conn_user_data(c);
	struct sstream *s = sc ? sc->streams : NULL;
	while (s && s->sid != sid)
		s = s->next;
	if (!s && sc && len) {
		s = calloc(1, sizeof(*s));
		s->sid = sid;
		s->mode = (char)data[0];
		s->next = sc->streams;
		sc->streams = s;
	}
	if (!s)
		return;
	if (s->mode == 'S') {
		s->count += len;
		ags_quic_stream_consume(c, sid, len);
		if (fin) {
			static uint64_t reply;
			reply = s->count;
			ags_quic_stream_write(c, sid, (const uint8_t *)&reply, sizeof(reply), 1,
			                      NULL, NULL);
		}
		return;
	}
	struct echo *e = malloc(sizeof(*e) + len);
	e->c = c;
	e->sid = sid;
	e->len = len;
	memcpy(e->data, data, len);
	if (ags_quic_stream_write(c, sid, e->data, len, fin, echo_done, e) != 0)
		free(e);
}

static void on_term(uv_signal_t *h, int sig)
{
	uv_stop(h->loop);
}

static int run_server(int fd_out)
{
	char cert[300], key[300], ca[300];
	snprintf(cert, sizeof(cert), "%s/alice.pem", certdir);
	snprintf(key, sizeof(key), "%s/alice-key.pem", certdir);
	snprintf(ca, sizeof(ca), "%s/ca.pem", certdir);
	ags_tls_config tc = {
	    .cert_file = cert, .key_file = key, .ca_file = ca, .reject_unauthorized = 1};
	ags_tls_ctx *tls;
	ags_error err;
	if (ags_tls_ctx_new(&tc, &tls, &err) != 0) {
		fprintf(stderr, "server tls: %s\n", err.message);
		return 1;
	}
	uv_loop_t *loop = uv_default_loop();
	ags_quic_config qc = {.host = "127.0.0.1", .tls = tls, .no_gso = no_gso};
	ags_quic_callbacks cb = {
	    .version = AGS_QUIC_CALLBACKS_VERSION,
	    .on_connected = s_connected,
	    .on_closed = s_closed,
	    .on_stream_data = s_data,
	    .on_stream_close = s_stream_close,
	};
	ags_quic_ep *ep;
	if (ags_quic_ep_new(loop, &qc, &cb, &ep, &err) != 0) {
		fprintf(stderr, "server ep: %s\n", err.message);
		return 1;
	}
	uint16_t port = ags_quic_ep_port(ep);
	if (write(fd_out, &port, sizeof(port)) != sizeof(port))
		return 1;
	close(fd_out);
	uv_signal_t sig;
	uv_signal_init(loop, &sig);
	uv_signal_start(&sig, on_term, SIGTERM);
	uv_run(loop, UV_RUN_DEFAULT);
	ags_quic_ep_del(ep);
	uv_close((uv_handle_t *)&sig, NULL);
	uv_run(loop, UV_RUN_DEFAULT);
	ags_tls_ctx_del(tls);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Client (parent): a state machine driven by the callbacks                  */

enum phase { FULL, WARM, RESUME, RR, BULK, DONE };

static struct {
	uv_loop_t *loop;
	ags_quic_ep *ep;
	uint16_t port;
	enum phase phase;
	int i;
	ags_quic_conn *c;
	uint64_t t0;
	double *hs_full, *hs_resume, *rr;
	double *done_full, *done_resume; /* handshake completion, client side */
	int done_seen;
	uv_check_t watch;
	int early_ok;
	int64_t sid;
	uint8_t msg[MSG];
	size_t got;
	uint8_t *buf;
	uint64_t sent;
	uint64_t bulk_t0;
	uint8_t reply[8];
	size_t rlen;
	double bulk_s;
	int failed;
	uv_timer_t kick;
} B;

static void next_step(void);

static void fail(const char *what)
{
	fprintf(stderr, "quic_bench: %s\n", what);
	B.failed = 1;
	B.phase = DONE;
	uv_stop(B.loop);
}

static void kick_cb(uv_timer_t *t)
{
	next_step();
}

/* Goes on from outside the callback that finished a step. */
static void kick(void)
{
	uv_timer_start(&B.kick, kick_cb, 0, 0);
}

/* Records when the client's handshake completed (runs after every I/O phase). */
static void watch_cb(uv_check_t *h)
{
	if (!B.c || B.done_seen || (B.phase != FULL && B.phase != RESUME))
		return;
	ags_quic_info info;
	ags_quic_conn_info(B.c, &info);
	if (!info.handshake_done)
		return;
	B.done_seen = 1;
	double us = (double)(uv_hrtime() - B.t0) / 1e3;
	(B.phase == FULL ? B.done_full : B.done_resume)[B.i] = us;
}

static void connect_one(const char *expect)
{
	ags_error err;
	B.done_seen = 0;
	B.t0 = uv_hrtime();
	if (ags_quic_connect(B.ep, "127.0.0.1", B.port, expect, NULL, &B.c, &err) != 0)
		fail(err.message);
}

static void rr_send(void)
{
	B.got = 0;
	B.msg[0] = 'E';
	B.t0 = uv_hrtime();
	if (ags_quic_stream_write(B.c, B.sid, B.msg, MSG, 0, NULL, NULL) != 0)
		fail("rr write");
}

static void bulk_pump(void)
{
	while (B.sent < bulk_bytes + 1) {
		uint64_t off = B.sent == 0 ? 0 : (B.sent - 1) % BUF_BYTES;
		size_t n = WRITE_CHUNK;
		const uint8_t *p = B.buf + off;
		if (B.sent == 0) {
			p = (const uint8_t *)"S";
			n = 1;
		} else {
			if (off + n > BUF_BYTES)
				n = (size_t)(BUF_BYTES - off);
			if (B.sent + n > bulk_bytes + 1)
				n = (size_t)(bulk_bytes + 1 - B.sent);
		}
		int fin = B.sent + n == bulk_bytes + 1;
		int rv = ags_quic_stream_write(B.c, B.sid, p, n, fin, NULL, NULL);
		if (rv == AGS_ERR_AGAIN)
			return;
		if (rv != 0) {
			fail("bulk write");
			return;
		}
		B.sent += n;
	}
}

static void c_connected(void *ud, ags_quic_conn *c, const char *peer, const char *addr)
{
	double us = (double)(uv_hrtime() - B.t0) / 1e3;
	switch (B.phase) {
	case FULL:
		B.hs_full[B.i] = us;
		ags_quic_conn_close(c, 0, "next");
		break;
	case WARM:
		/* one request/response, so the ticket (sent after the handshake) surely arrives */
		B.msg[0] = 'E';
		if (ags_quic_stream_open(c, &B.sid) != 0 ||
		    ags_quic_stream_write(c, B.sid, B.msg, MSG, 1, NULL, NULL) != 0)
			fail("warm-up request");
		break;
	case RESUME:
		B.hs_resume[B.i] = us;
		break;
	case RR:
	case BULK:
		if (ags_quic_stream_open(c, &B.sid) != 0) {
			fail("stream open");
			return;
		}
		if (B.phase == RR)
			rr_send();
		else {
			B.bulk_t0 = uv_hrtime();
			bulk_pump();
		}
		break;
	default:
		break;
	}
}

static void c_data(void *ud, ags_quic_conn *c, int64_t sid, const uint8_t *data, size_t len,
                   int fin)
{
	ags_quic_stream_consume(c, sid, len);
	B.got += len;
	switch (B.phase) {
	case WARM:
	case RESUME:
		if (B.got >= MSG) {
			ags_quic_info info;
			ags_quic_conn_info(c, &info);
			if (B.phase == RESUME && info.early_data_accepted)
				B.early_ok++;
			ags_quic_conn_close(c, 0, "next");
		}
		break;
	case RR:
		if (B.got < MSG)
			return;
		if (B.i >= warm_rr)
			B.rr[B.i - warm_rr] = (double)(uv_hrtime() - B.t0) / 1e3;
		if (++B.i == warm_rr + n_rr) {
			ags_quic_conn_close(c, 0, "next");
			return;
		}
		rr_send();
		break;
	case BULK:
		for (size_t k = 0; k < len && B.rlen < sizeof(B.reply); k++)
			B.reply[B.rlen++] = data[k];
		if (fin) {
			B.bulk_s = (double)(uv_hrtime() - B.bulk_t0) / 1e9;
			uint64_t count;
			memcpy(&count, B.reply, sizeof(count));
			if (B.rlen != sizeof(count) || count != bulk_bytes + 1) {
				fail("the sink did not get every byte");
				return;
			}
			ags_quic_conn_close(c, 0, "done");
		}
		break;
	default:
		break;
	}
}

static void c_writable(void *ud, ags_quic_conn *c)
{
	if (B.phase == BULK)
		bulk_pump();
}

static void c_refused(void *ud, ags_quic_conn *c, const char *addr, const char *reason)
{
	fail(reason);
}

static void c_closed(void *ud, ags_quic_conn *c, uint64_t code, const char *reason, int by_peer)
{
	if (B.phase == DONE)
		return;
	if (code != 0 || by_peer) {
		fail(reason);
		return;
	}
	B.c = NULL;
	kick();
}

static void c_rejected(void *ud, ags_quic_conn *c)
{
	/* 0-RTT refused: the request is resent after the handshake. */
	B.msg[0] = 'E';
	if (ags_quic_stream_open(c, &B.sid) == 0)
		ags_quic_stream_write(c, B.sid, B.msg, MSG, 1, NULL, NULL);
}

/* Called after each connection closed: starts the next one. */
static void next_step(void)
{
	switch (B.phase) {
	case FULL:
		if (B.c == NULL && B.i + 1 < n_hs && B.hs_full[B.i] > 0) {
			B.i++;
			connect_one(NULL);
			return;
		}
		B.phase = WARM;
		B.got = 0;
		connect_one(NULL);
		return;
	case WARM:
		B.phase = RESUME;
		B.i = 0;
		break;
	case RESUME:
		B.i++;
		if (B.i == n_hs) {
			B.phase = RR;
			B.i = 0;
			B.got = 0;
			connect_one("alice");
			return;
		}
		break;
	case RR:
		B.phase = BULK;
		connect_one("alice");
		return;
	case BULK:
	default:
		B.phase = DONE;
		uv_stop(B.loop);
		return;
	}
	/* RESUME: connect with the ticket and send the request in 0-RTT */
	B.got = 0;
	connect_one("alice");
	ags_quic_info info;
	ags_quic_conn_info(B.c, &info);
	if (!info.early_data_possible) {
		fail("0-RTT not possible on a resumed connection");
		return;
	}
	B.msg[0] = 'E';
	if (ags_quic_stream_open(B.c, &B.sid) != 0 ||
	    ags_quic_stream_write(B.c, B.sid, B.msg, MSG, 1, NULL, NULL) != 0)
		fail("0-RTT write");
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	int i = (int)(p * (n - 1) + 0.5);
	return v[i];
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--no-gso") == 0)
			no_gso = 1;
		else if (strcmp(argv[i], "--bulk-mb") == 0 && i + 1 < argc)
			bulk_bytes = strtoull(argv[++i], NULL, 10) * 1000 * 1000;
		else if (strcmp(argv[i], "--rr") == 0 && i + 1 < argc)
			n_rr = atoi(argv[++i]);
		else if (strcmp(argv[i], "--hs") == 0 && i + 1 < argc)
			n_hs = atoi(argv[++i]);
	}
	if (n_hs < 1 || n_rr < 1)
		return 2;
	snprintf(certdir, sizeof(certdir), "/tmp/quic_bench-XXXXXX");
	if (!mkdtemp(certdir))
		return 1;
	const char *nodes[] = {"alice", "bob"};
	ags_error err;
	if (ags_certs_init(certdir, nodes, 2, AGS_CERTS_ED25519, &err) != 0) {
		fprintf(stderr, "certs: %s\n", err.message);
		return 1;
	}
	int pfd[2];
	if (pipe(pfd) != 0)
		return 1;
	pid_t child = fork();
	if (child == 0) {
		close(pfd[0]);
		_exit(run_server(pfd[1]));
	}
	close(pfd[1]);
	if (read(pfd[0], &B.port, sizeof(B.port)) != sizeof(B.port)) {
		fprintf(stderr, "server did not start\n");
		return 1;
	}
	close(pfd[0]);

	char cert[300], key[300], ca[300];
	snprintf(cert, sizeof(cert), "%s/bob.pem", certdir);
	snprintf(key, sizeof(key), "%s/bob-key.pem", certdir);
	snprintf(ca, sizeof(ca), "%s/ca.pem", certdir);
	ags_tls_config tc = {
	    .cert_file = cert, .key_file = key, .ca_file = ca, .reject_unauthorized = 1};
	ags_tls_ctx *tls;
	if (ags_tls_ctx_new(&tc, &tls, &err) != 0) {
		fprintf(stderr, "client tls: %s\n", err.message);
		return 1;
	}
	B.loop = uv_default_loop();
	ags_quic_config qc = {.host = "127.0.0.1", .tls = tls, .no_gso = no_gso};
	ags_quic_callbacks cb = {
	    .version = AGS_QUIC_CALLBACKS_VERSION,
	    .on_connected = c_connected,
	    .on_refused = c_refused,
	    .on_closed = c_closed,
	    .on_stream_data = c_data,
	    .on_writable = c_writable,
	    .on_early_data_rejected = c_rejected,
	};
	if (ags_quic_ep_new(B.loop, &qc, &cb, &B.ep, &err) != 0) {
		fprintf(stderr, "client ep: %s\n", err.message);
		return 1;
	}
	B.hs_full = calloc((size_t)n_hs, sizeof(double));
	B.hs_resume = calloc((size_t)n_hs, sizeof(double));
	B.rr = calloc((size_t)n_rr, sizeof(double));
	B.done_full = calloc((size_t)n_hs, sizeof(double));
	B.done_resume = calloc((size_t)n_hs, sizeof(double));
	uv_check_init(B.loop, &B.watch);
	uv_check_start(&B.watch, watch_cb);
	B.buf = malloc(BUF_BYTES);
	gnutls_rnd(GNUTLS_RND_NONCE, B.buf, BUF_BYTES);
	uv_timer_init(B.loop, &B.kick);

	B.phase = FULL;
	B.i = 0;
	connect_one(NULL);
	uv_run(B.loop, UV_RUN_DEFAULT);

	ags_quic_ep_del(B.ep);
	uv_close((uv_handle_t *)&B.kick, NULL);
	uv_close((uv_handle_t *)&B.watch, NULL);
	uv_run(B.loop, UV_RUN_DEFAULT);
	kill(child, SIGTERM);
	waitpid(child, NULL, 0);
	ags_tls_ctx_del(tls);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", certdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", certdir);
	if (B.failed)
		return 1;
	printf("quic_bench: hs_full_ms=%.3f (connected %.3f) hs_0rtt_ms=%.3f (connected %.3f, "
	       "0rtt accepted %d/%d) rr64_p50_us=%.1f rr64_p99_us=%.1f bulk_MBps=%.0f "
	       "(%llu MB, gso=%s)\n",
	       pct(B.done_full, n_hs, 0.5) / 1e3, pct(B.hs_full, n_hs, 0.5) / 1e3,
	       pct(B.done_resume, n_hs, 0.5) / 1e3, pct(B.hs_resume, n_hs, 0.5) / 1e3, B.early_ok,
	       n_hs, pct(B.rr, n_rr, 0.5), pct(B.rr, n_rr, 0.99),
	       (double)bulk_bytes / 1e6 / B.bulk_s, (unsigned long long)(bulk_bytes / 1000000),
	       no_gso ? "off" : "on");
	free(B.done_full);
	free(B.done_resume);
	free(B.hs_full);
	free(B.hs_resume);
	free(B.rr);
	free(B.buf);
	return 0;
}
