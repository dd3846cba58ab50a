/* SPDX-License-Identifier: Apache-2.0 */
/*
 * quicpeer: a command-line peer over the QUIC transport (lib/transport/quic.h) and
 * lib/transport/tls.h, for black-box tests.
 *
 *   quicpeer server --cert F --key F --ca F --port P [--host H] [--allow id,id]
 *                   [--retry] [--drop-permille N] [--no-verify]
 *       Accepts connections and echoes every stream back. Prints, flushed:
 *       "listening <port>", "connected <peer-id> <addr>",
 *       "refused <addr>: <reason>", "closed <addr> code=<n> by_peer=<0|1>: <reason>".
 *       Runs until SIGTERM or SIGINT.
 *
 *   quicpeer client --cert F --key F --ca F --connect HOST:PORT --expect ID
 *                   [--alpn X | --no-alpn] [--no-client-cert] [--send-bytes N]
 *                   [--drop-permille N] [--resume-file F] [--timeout-ms T]
 *       Sends N random bytes on one stream, reads the echo and compares
 *       SHA-256. Prints "ok bytes=N sha256=<hex> resumed=<0|1> 0rtt=<0|1>"
 *       and exits 0, or "error: <reason>" and exits 1 ("early data rejected:
 *       resending" when the server refused 0-RTT data). With --resume-file,
 *       resumption state is loaded from F when present and saved to F after.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <uv.h>

#include "quic.h"
#include "tls.h"

#define WRITE_CHUNK (256 * 1024)

struct opts {
	const char *mode, *cert, *key, *ca, *host, *connect, *expect, *alpn, *resume_file;
	const char *allow;
	int port, retry, no_verify, no_alpn, no_client_cert;
	unsigned drop;
	size_t send_bytes;
	uint64_t timeout_ms;
};

static uv_loop_t *loop;
static ags_quic_ep *ep;
static ags_tls_ctx *tls;
static uv_signal_t sigterm, sigint;
static uv_timer_t stopper, deadline;
static int exit_code = 1;
static struct opts o;

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

static void on_stopper(uv_timer_t *t);

/* Stops from outside the endpoint's callbacks (ags_quic_ep_del may not run inside them). */
static void stop(int code)
{
	exit_code = code;
	uv_timer_start(&stopper, on_stopper, 0, 0);
}

static void save_resumption(void);

static void on_stopper(uv_timer_t *t)
{
	if (!ep)
		return;
	if (o.resume_file && strcmp(o.mode, "client") == 0)
		save_resumption();
	ags_quic_ep_del(ep);
	ep = NULL;
	uv_close((uv_handle_t *)&sigterm, NULL);
	uv_close((uv_handle_t *)&sigint, NULL);
	uv_close((uv_handle_t *)&stopper, NULL);
	uv_close((uv_handle_t *)&deadline, NULL);
}

static void on_signal(uv_signal_t *s, int sig)
{
	stop(0);
}

static void hex(const uint8_t *p, size_t n, char *buf)
{
	for (size_t i = 0; i < n; i++)
		snprintf(buf + 2 * i, 3, "%02x", p[i]);
}

/* ---- server: echo ---- */

struct echo {
	ags_quic_conn *c;
	int64_t sid;
	size_t len;
	uint8_t data[];
};

static void echo_done(void *ud, int status)
{
	struct echo *e = ud;
	/* Credit goes back only once the echo is acknowledged: that is the backpressure. */
	if (status == 0)
		ags_quic_stream_consume(e->c, e->sid, e->len);
	free(e);
}

static void srv_connected(void *ud, ags_quic_conn *c, const char *peer_id, const char *addr)
{
	out("connected %s %s", peer_id, addr);
}

static void srv_refused(void *ud, ags_quic_conn *c, const char *addr, const char *reason)
{
	out("refused %s: %s", addr, reason);
}

static void srv_closed(void *ud, ags_quic_conn *c, uint64_t code, const char *reason, int by_peer)
{
	out("closed %s code=%llu by_peer=%d: %s", ags_quic_conn_peer_addr(c),
	    (unsigned long long)code, by_peer, reason);
}

static void srv_data(void *ud, ags_quic_conn *c, int64_t sid, const uint8_t *data, size_t len,
                     int fin)
{
	if (len == 0 && !fin)
		return;
	struct echo *e = malloc(sizeof(*e) + len);
	if (!e) {
		ags_quic_conn_close(c, 1, "out of memory");
		return;
	}
	e->c = c;
	e->sid = sid;
	e->len = len;
	memcpy(e->data, data, len);
	int rv = ags_quic_stream_write(c, sid, e->data, len, fin, echo_done, e);
	if (rv != 0) {
		out("echo write failed: %s", ags_strerror(rv));
		free(e);
		ags_quic_conn_close(c, 1, "echo write failed");
	}
}

/* ---- client ---- */

static struct {
	ags_quic_conn *c;
	int64_t sid;
	int opened, fin_written;
	uint8_t *buf;
	size_t sent; /* bytes handed to the transport */
	size_t received;
	int finished;
	gnutls_hash_hd_t rx;
	uint8_t tx_digest[32];
} cl;

static void cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void cli_fail(const char *fmt, ...)
{
	if (cl.finished)
		return;
	cl.finished = 1;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	out("error: %s", msg);
	stop(1);
}

static void cli_pump(void)
{
	if (!cl.opened) {
		int rv = ags_quic_stream_open(cl.c, &cl.sid);
		if (rv == AGS_ERR_AGAIN)
			return;
		if (rv != 0) {
			cli_fail("stream open: %s", ags_strerror(rv));
			return;
		}
		cl.opened = 1;
	}
	while (!cl.fin_written) {
		size_t n = o.send_bytes - cl.sent;
		if (n > WRITE_CHUNK)
			n = WRITE_CHUNK;
		int fin = cl.sent + n == o.send_bytes;
		int rv = ags_quic_stream_write(cl.c, cl.sid, n ? cl.buf + cl.sent : NULL, n, fin,
		                               NULL, NULL);
		if (rv == AGS_ERR_AGAIN)
			return;
		if (rv != 0) {
			cli_fail("stream write: %s", ags_strerror(rv));
			return;
		}
		cl.sent += n;
		cl.fin_written = fin;
	}
}

static void cli_restart(void)
{
	cl.opened = 0;
	cl.fin_written = 0;
	cl.sent = 0;
	cl.received = 0;
	gnutls_hash_deinit(cl.rx, NULL);
	gnutls_hash_init(&cl.rx, GNUTLS_DIG_SHA256);
}

static void cli_connected(void *ud, ags_quic_conn *c, const char *peer_id, const char *addr)
{
	cli_pump();
}

static void cli_refused(void *ud, ags_quic_conn *c, const char *addr, const char *reason)
{
	cli_fail("refused %s: %s", addr, reason);
}

static void cli_closed(void *ud, ags_quic_conn *c, uint64_t code, const char *reason, int by_peer)
{
	cl.c = NULL;
	cli_fail("closed (code %llu%s): %s", (unsigned long long)code, by_peer ? ", by peer" : "",
	         reason);
}

static void cli_writable(void *ud, ags_quic_conn *c)
{
	cli_pump();
}

static void cli_rejected(void *ud, ags_quic_conn *c)
{
	out("early data rejected: resending");
	cli_restart();
}

static void cli_data(void *ud, ags_quic_conn *c, int64_t sid, const uint8_t *data, size_t len,
                     int fin)
{
	if (sid != cl.sid || cl.finished)
		return;
	gnutls_hash(cl.rx, data, len);
	cl.received += len;
	ags_quic_stream_consume(c, sid, len);
	if (cl.received > o.send_bytes) {
		cli_fail("echo longer than what was sent");
		return;
	}
	if (!fin)
		return;
	uint8_t d[32];
	char h[65];
	gnutls_hash_output(cl.rx, d);
	hex(d, 32, h);
	if (cl.received != o.send_bytes || memcmp(d, cl.tx_digest, 32) != 0) {
		cli_fail("echo mismatch: got %zu bytes sha256=%s", cl.received, h);
		return;
	}
	ags_quic_info info;
	ags_quic_conn_info(c, &info);
	cl.finished = 1;
	out("ok bytes=%zu sha256=%s resumed=%d 0rtt=%d", cl.received, h, info.resumed,
	    info.early_data_accepted);
	ags_quic_conn_close(c, 0, "done");
	stop(0);
}

static void save_resumption(void)
{
	uint8_t *blob = NULL;
	size_t len = 0;
	if (ags_quic_ep_export_resumption(ep, o.expect, &blob, &len) != 0) {
		fprintf(stderr, "quicpeer: no resumption ticket to save\n");
		return;
	}
	FILE *f = fopen(o.resume_file, "wb");
	if (!f || fwrite(blob, 1, len, f) != len)
		fprintf(stderr, "quicpeer: cannot write %s\n", o.resume_file);
	if (f)
		fclose(f);
	free(blob);
}

static void load_resumption(void)
{
	FILE *f = fopen(o.resume_file, "rb");
	if (!f)
		return;
	uint8_t buf[64 * 1024];
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	int rv = ags_quic_ep_import_resumption(ep, o.expect, buf, n);
	if (rv != 0)
		fprintf(stderr, "quicpeer: ignoring %s: %s\n", o.resume_file, ags_strerror(rv));
}

static void on_deadline(uv_timer_t *t)
{
	cli_fail("timed out");
}

/* ---- main ---- */

static void usage(void)
{
	fprintf(stderr, "usage: quicpeer server --cert F --key F --ca F --port P [--host H] "
	                "[--allow id,id] [--retry] [--drop-permille N] [--no-verify]\n"
	                "       quicpeer client --cert F --key F --ca F --connect HOST:PORT "
	                "--expect ID [--alpn X|--no-alpn] [--no-client-cert] [--send-bytes N] "
	                "[--drop-permille N] [--resume-file F] [--timeout-ms T]\n");
	exit(2);
}

static void parse(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"cert", 1, 0, 'c'},       {"key", 1, 0, 'k'},
	    {"ca", 1, 0, 'a'},         {"port", 1, 0, 'p'},
	    {"host", 1, 0, 'H'},       {"allow", 1, 0, 'w'},
	    {"retry", 0, 0, 'r'},      {"drop-permille", 1, 0, 'd'},
	    {"no-verify", 0, 0, 'V'},  {"connect", 1, 0, 'C'},
	    {"expect", 1, 0, 'e'},     {"alpn", 1, 0, 'l'},
	    {"no-alpn", 0, 0, 'L'},    {"no-client-cert", 0, 0, 'N'},
	    {"send-bytes", 1, 0, 's'}, {"resume-file", 1, 0, 'R'},
	    {"timeout-ms", 1, 0, 't'}, {0, 0, 0, 0},
	};
	if (argc < 2)
		usage();
	o.mode = argv[1];
	o.send_bytes = 65536;
	o.timeout_ms = 60000;
	optind = 2;
	int ch;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'c':
			o.cert = optarg;
			break;
		case 'k':
			o.key = optarg;
			break;
		case 'a':
			o.ca = optarg;
			break;
		case 'p':
			o.port = atoi(optarg);
			break;
		case 'H':
			o.host = optarg;
			break;
		case 'w':
			o.allow = optarg;
			break;
		case 'r':
			o.retry = 1;
			break;
		case 'd':
			o.drop = (unsigned)atoi(optarg);
			break;
		case 'V':
			o.no_verify = 1;
			break;
		case 'C':
			o.connect = optarg;
			break;
		case 'e':
			o.expect = optarg;
			break;
		case 'l':
			o.alpn = optarg;
			break;
		case 'L':
			o.no_alpn = 1;
			break;
		case 'N':
			o.no_client_cert = 1;
			break;
		case 's':
			o.send_bytes = strtoull(optarg, NULL, 10);
			break;
		case 'R':
			o.resume_file = optarg;
			break;
		case 't':
			o.timeout_ms = strtoull(optarg, NULL, 10);
			break;
		default:
			usage();
		}
	}
	if (!o.cert || !o.key || !o.ca)
		usage();
}

int main(int argc, char **argv)
{
	parse(argc, argv);
	int server = strcmp(o.mode, "server") == 0;
	if (!server && strcmp(o.mode, "client") != 0)
		usage();
	if (!server && (!o.connect || !o.expect))
		usage();
	signal(SIGPIPE, SIG_IGN);

	/* TLS */
	char *allow_copy = NULL;
	const char *allowed[64];
	size_t nallowed = 0;
	if (o.allow) {
		allow_copy = strdup(o.allow);
		char *save = NULL;
		for (char *t = strtok_r(allow_copy, ",", &save); t && nallowed < 64;
		     t = strtok_r(NULL, ",", &save))
			allowed[nallowed++] = t;
	}
	ags_tls_config tc = {
	    .cert_file = o.cert,
	    .key_file = o.key,
	    .ca_file = o.ca,
	    .reject_unauthorized = !o.no_verify,
	    .allowed_ids = nallowed ? allowed : NULL,
	    .n_allowed_ids = nallowed,
	    .client_alpn = o.no_alpn ? "" : o.alpn,
	    .client_no_cert = o.no_client_cert,
	};
	ags_error err;
	ags_error_clear(&err);
	if (ags_tls_ctx_new(&tc, &tls, &err) != 0) {
		out("error: tls: %s", err.message);
		return 1;
	}

	/* Endpoint */
	char host[128] = "127.0.0.1";
	uint16_t peer_port = 0;
	if (!server) {
		const char *colon = strrchr(o.connect, ':');
		if (!colon || (size_t)(colon - o.connect) >= sizeof(host))
			usage();
		memcpy(host, o.connect, (size_t)(colon - o.connect));
		host[colon - o.connect] = '\0';
		peer_port = (uint16_t)atoi(colon + 1);
	}
	loop = uv_default_loop();
	ags_quic_config qc = {
	    .host =
	        server ? (o.host ? o.host : "127.0.0.1") : (strchr(host, ':') ? "::" : "0.0.0.0"),
	    .port = server ? (uint16_t)o.port : 0,
	    .tls = tls,
	    .retry = o.retry,
	    .test_drop_permille = o.drop,
	};
	ags_quic_callbacks cb = {.version = AGS_QUIC_CALLBACKS_VERSION};
	if (server) {
		cb.on_connected = srv_connected;
		cb.on_refused = srv_refused;
		cb.on_closed = srv_closed;
		cb.on_stream_data = srv_data;
	} else {
		cb.on_connected = cli_connected;
		cb.on_refused = cli_refused;
		cb.on_closed = cli_closed;
		cb.on_stream_data = cli_data;
		cb.on_writable = cli_writable;
		cb.on_early_data_rejected = cli_rejected;
	}
	if (ags_quic_ep_new(loop, &qc, &cb, &ep, &err) != 0) {
		out("error: endpoint: %s", err.message);
		return 1;
	}
	uv_timer_init(loop, &stopper);
	uv_timer_init(loop, &deadline);
	uv_signal_init(loop, &sigterm);
	uv_signal_init(loop, &sigint);
	uv_signal_start(&sigterm, on_signal, SIGTERM);
	uv_signal_start(&sigint, on_signal, SIGINT);

	if (server) {
		out("listening %u", ags_quic_ep_port(ep));
	} else {
		cl.buf = malloc(o.send_bytes ? o.send_bytes : 1);
		if (!cl.buf || gnutls_rnd(GNUTLS_RND_NONCE, cl.buf, o.send_bytes) != 0) {
			out("error: out of memory");
			return 1;
		}
		gnutls_hash_fast(GNUTLS_DIG_SHA256, cl.buf, o.send_bytes, cl.tx_digest);
		gnutls_hash_init(&cl.rx, GNUTLS_DIG_SHA256);
		if (o.resume_file)
			load_resumption();
		if (ags_quic_connect(ep, host, peer_port, o.expect, NULL, &cl.c, &err) != 0) {
			out("error: connect: %s", err.message);
			return 1;
		}
		ags_quic_info info;
		ags_quic_conn_info(cl.c, &info);
		if (info.early_data_possible)
			cli_pump(); /* 0-RTT: write before the handshake completes */
		uv_timer_start(&deadline, on_deadline, o.timeout_ms, 0);
	}
	uv_run(loop, UV_RUN_DEFAULT);
	uv_loop_close(loop);
	ags_tls_ctx_del(tls);
	free(allow_copy);
	if (!server) {
		gnutls_hash_deinit(cl.rx, NULL);
		free(cl.buf);
	}
	return exit_code;
}
