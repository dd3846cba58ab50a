/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for lib/transport/tls.c: context errors, own id, sessions, and full TLS
 * 1.3 handshakes between a real ngtcp2 client and a real ngtcp2 server whose
 * packets are handed from one to the other in memory (no socket): mutual
 * TLS, identity, allow-list, pins, ALPN refusal, unknown CA, resumption with
 * 0-RTT and its anti-replay, key log and SSLKEYLOGFILE.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include "testutil.h"
#include "agentsync/agentsync.h"
#include "agentsync/certs.h"
#include "tls.h"

/* TLS alert numbers, as they come back in a QUIC CONNECTION_CLOSE (0x100 + alert). */
#define ALERT_BAD_CERTIFICATE         42
#define ALERT_UNKNOWN_CA              48
#define ALERT_CERTIFICATE_REQUIRED    116
#define ALERT_NO_APPLICATION_PROTOCOL 120

static char *g_tmp;       /* scratch directory */
static char *g_ca1;       /* certs of the main CA: a, b, c */
static char *g_ca2;       /* certs of another CA: a (an impostor), b */
static char *g_sslkeylog; /* where SSLKEYLOGFILE points; must never be written */

/* ---------------------------------------------------------------------- */
/* Configurations                                                         */
/* ---------------------------------------------------------------------- */

struct cfgbuf {
	char cert[512], key[512], ca[512];
	ags_tls_config cfg;
};

/* A verifying configuration for `node`, with its files from dir and the CA of ca_dir. */
static ags_tls_config *cfg_for(struct cfgbuf *b, const char *dir, const char *node,
                               const char *ca_dir)
{
	memset(b, 0, sizeof(*b));
	snprintf(b->cert, sizeof(b->cert), "%s/%s.pem", dir, node);
	snprintf(b->key, sizeof(b->key), "%s/%s-key.pem", dir, node);
	snprintf(b->ca, sizeof(b->ca), "%s/ca.pem", ca_dir);
	b->cfg.cert_file = b->cert;
	b->cfg.key_file = b->key;
	b->cfg.ca_file = b->ca;
	b->cfg.reject_unauthorized = 1;
	return &b->cfg;
}

static ags_tls_ctx *ctx_ok(const ags_tls_config *cfg)
{
	ags_tls_ctx *ctx = NULL;
	ags_error e;
	ags_error_clear(&e);
	int rv = ags_tls_ctx_new(cfg, &ctx, &e);
	if (rv != 0)
		fail_msg("ags_tls_ctx_new: %d %s", rv, e.message);
	return ctx;
}

/* ---------------------------------------------------------------------- */
/* A client and a server over real ngtcp2, packets carried in memory       */
/* ---------------------------------------------------------------------- */

struct side {
	ngtcp2_conn *conn;
	ngtcp2_crypto_conn_ref ref;
	gnutls_session_t tls;
	struct sockaddr_in local, remote;
	ags_tls_ctx *ctx;    /* server: context for the session made on the first packet */
	int failed;          /* error from ngtcp2 when this side refused or broke */
	uint64_t peer_close; /* error code in the peer's CONNECTION_CLOSE, 0 when none */
	int got_close;
};

struct pair {
	struct side c, s;
	unsigned char first[1500]; /* the client's first datagram, for replay tests */
	size_t first_len;
};

static ngtcp2_tstamp now_ts(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (ngtcp2_tstamp)t.tv_sec * NGTCP2_SECONDS + (ngtcp2_tstamp)t.tv_nsec;
}

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref)
{
	return ((struct side *)ref->user_data)->conn;
}

static void rand_cb(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *rctx)
{
	(void)rctx;
	(void)gnutls_rnd(GNUTLS_RND_RANDOM, dest, len);
}

static int new_cid_cb(ngtcp2_conn *conn, ngtcp2_cid *cid, uint8_t *token, size_t cidlen,
                      void *user_data)
{
	(void)conn;
	(void)user_data;
	if (gnutls_rnd(GNUTLS_RND_RANDOM, cid->data, cidlen) != 0 ||
	    gnutls_rnd(GNUTLS_RND_RANDOM, token, NGTCP2_STATELESS_RESET_TOKENLEN) != 0)
		return NGTCP2_ERR_CALLBACK_FAILURE;
	cid->datalen = cidlen;
	return 0;
}

/* Server: sends the session ticket once the handshake completes, as the transport does. */
static int server_done_cb(ngtcp2_conn *conn, void *user_data)
{
	(void)conn;
	struct side *s = user_data;
	return gnutls_session_ticket_send(s->tls, 1, 0) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
}

static void set_addr(struct sockaddr_in *a, int port)
{
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)port);
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

static ngtcp2_path path_of(struct side *sd)
{
	ngtcp2_path p = {
	    .local = {(ngtcp2_sockaddr *)&sd->local, sizeof(sd->local)},
	    .remote = {(ngtcp2_sockaddr *)&sd->remote, sizeof(sd->remote)},
	};
	return p;
}

/* Starts the client side; returns ags_tls_session_client's result. */
static int client_start(struct pair *p, ags_tls_ctx *ctx, const char *expect,
                        const gnutls_datum_t *ticket)
{
	struct side *c = &p->c;
	memset(p, 0, sizeof(*p));
	set_addr(&c->local, 40000);
	set_addr(&c->remote, 40001);
	set_addr(&p->s.local, 40001);
	set_addr(&p->s.remote, 40000);
	c->ref.get_conn = get_conn;
	c->ref.user_data = c;
	ags_error e;
	int rv = ags_tls_session_client(ctx, &c->ref, expect, ticket, &c->tls, &e);
	if (rv)
		return rv;
	ngtcp2_callbacks cb = {
	    .client_initial = ngtcp2_crypto_client_initial_cb,
	    .recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,
	    .encrypt = ngtcp2_crypto_encrypt_cb,
	    .decrypt = ngtcp2_crypto_decrypt_cb,
	    .hp_mask = ngtcp2_crypto_hp_mask_cb,
	    .recv_retry = ngtcp2_crypto_recv_retry_cb,
	    .rand = rand_cb,
	    .get_new_connection_id = new_cid_cb,
	    .update_key = ngtcp2_crypto_update_key_cb,
	    .delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
	    .delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
	    .get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
	    .version_negotiation = ngtcp2_crypto_version_negotiation_cb,
	};
	ngtcp2_cid dcid, scid;
	dcid.datalen = NGTCP2_MIN_INITIAL_DCIDLEN;
	scid.datalen = 8;
	assert_int_equal(gnutls_rnd(GNUTLS_RND_RANDOM, dcid.data, dcid.datalen), 0);
	assert_int_equal(gnutls_rnd(GNUTLS_RND_RANDOM, scid.data, scid.datalen), 0);
	ngtcp2_settings settings;
	ngtcp2_settings_default(&settings);
	settings.initial_ts = now_ts();
	ngtcp2_transport_params params;
	ngtcp2_transport_params_default(&params);
	params.initial_max_data = 1 << 20;
	params.initial_max_streams_bidi = 4;
	params.initial_max_stream_data_bidi_local = 1 << 16;
	params.initial_max_stream_data_bidi_remote = 1 << 16;
	ngtcp2_path path = path_of(c);
	assert_int_equal(ngtcp2_conn_client_new(&c->conn, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1,
	                                        &cb, &settings, &params, NULL, c),
	                 0);
	ngtcp2_conn_set_tls_native_handle(c->conn, c->tls);
	return 0;
}

/* Makes the server side for the client's first datagram `pkt`. */
static void server_accept(struct side *s, const uint8_t *pkt, size_t len)
{
	ngtcp2_pkt_hd hd;
	assert_int_equal(ngtcp2_accept(&hd, pkt, len), 0);
	s->ref.get_conn = get_conn;
	s->ref.user_data = s;
	ags_error e;
	int rv = ags_tls_session_server(s->ctx, &s->ref, &s->tls, &e);
	if (rv)
		fail_msg("ags_tls_session_server: %s", e.message);
	ngtcp2_callbacks cb = {
	    .recv_client_initial = ngtcp2_crypto_recv_client_initial_cb,
	    .recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,
	    .handshake_completed = server_done_cb,
	    .encrypt = ngtcp2_crypto_encrypt_cb,
	    .decrypt = ngtcp2_crypto_decrypt_cb,
	    .hp_mask = ngtcp2_crypto_hp_mask_cb,
	    .rand = rand_cb,
	    .get_new_connection_id = new_cid_cb,
	    .update_key = ngtcp2_crypto_update_key_cb,
	    .delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
	    .delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
	    .get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
	    .version_negotiation = ngtcp2_crypto_version_negotiation_cb,
	};
	ngtcp2_cid scid;
	scid.datalen = 8;
	assert_int_equal(gnutls_rnd(GNUTLS_RND_RANDOM, scid.data, scid.datalen), 0);
	ngtcp2_settings settings;
	ngtcp2_settings_default(&settings);
	settings.initial_ts = now_ts();
	ngtcp2_transport_params params;
	ngtcp2_transport_params_default(&params);
	params.initial_max_data = 1 << 20;
	params.initial_max_streams_bidi = 4;
	params.initial_max_stream_data_bidi_local = 1 << 16;
	params.initial_max_stream_data_bidi_remote = 1 << 16;
	params.original_dcid = hd.dcid;
	params.original_dcid_present = 1;
	ngtcp2_path path = path_of(s);
	assert_int_equal(ngtcp2_conn_server_new(&s->conn, &hd.scid, &scid, &path, hd.version, &cb,
	                                        &settings, &params, NULL, s),
	                 0);
	ngtcp2_conn_set_tls_native_handle(s->conn, s->tls);
}

static void deliver(struct side *from, struct side *to, const uint8_t *pkt, size_t len);

/* `sd` failed with ngtcp2 error rv: it sends its CONNECTION_CLOSE (with its TLS alert) to peer. */
static void close_with(struct side *sd, struct side *peer, int rv)
{
	sd->failed = rv;
	if (rv == NGTCP2_ERR_DRAINING || rv == NGTCP2_ERR_CLOSING)
		return;
	ngtcp2_ccerr cc;
	ngtcp2_ccerr_default(&cc);
	if (rv == NGTCP2_ERR_CRYPTO)
		ngtcp2_ccerr_set_tls_alert(&cc, ngtcp2_conn_get_tls_alert(sd->conn), NULL, 0);
	else
		ngtcp2_ccerr_set_liberr(&cc, rv, NULL, 0);
	uint8_t buf[1500];
	ngtcp2_path_storage ps;
	ngtcp2_path_storage_zero(&ps);
	ngtcp2_pkt_info pi;
	ngtcp2_ssize n = ngtcp2_conn_write_connection_close(sd->conn, &ps.path, &pi, buf,
	                                                    sizeof(buf), &cc, now_ts());
	if (n > 0)
		deliver(sd, peer, buf, (size_t)n);
}

static void deliver(struct side *from, struct side *to, const uint8_t *pkt, size_t len)
{
	if (to->failed)
		return;
	if (!to->conn)
		server_accept(to, pkt, len);
	ngtcp2_path path = path_of(to);
	ngtcp2_pkt_info pi = {0};
	int rv = ngtcp2_conn_read_pkt(to->conn, &path, &pi, pkt, len, now_ts());
	if (rv == NGTCP2_ERR_DRAINING) {
		const ngtcp2_ccerr *cc = ngtcp2_conn_get_ccerr(to->conn);
		to->got_close = 1;
		to->peer_close = cc->error_code;
		to->failed = rv;
	} else if (rv != 0) {
		close_with(to, from, rv);
	}
}

/* Sends everything `from` has to send to `to`. */
static void flush(struct pair *p, struct side *from, struct side *to)
{
	for (int i = 0; i < 64 && from->conn && !from->failed; i++) {
		uint8_t buf[1500];
		ngtcp2_path_storage ps;
		ngtcp2_path_storage_zero(&ps);
		ngtcp2_pkt_info pi;
		ngtcp2_ssize n =
		    ngtcp2_conn_write_pkt(from->conn, &ps.path, &pi, buf, sizeof(buf), now_ts());
		if (n < 0) {
			close_with(from, to, (int)n);
			return;
		}
		if (n == 0)
			return;
		if (from == &p->c && p->first_len == 0) {
			memcpy(p->first, buf, (size_t)n);
			p->first_len = (size_t)n;
		}
		deliver(from, to, buf, (size_t)n);
	}
}

/*
 * Runs the handshake to its end: both sides complete (plus a few rounds so
 * the ticket and HANDSHAKE_DONE arrive) or one side fails. A bounded number
 * of rounds only stops a handshake that would otherwise never end.
 */
static void run(struct pair *p)
{
	int extra = 0;
	for (int round = 0; round < 64 && extra < 4; round++) {
		flush(p, &p->c, &p->s);
		flush(p, &p->s, &p->c);
		if (p->c.failed || p->s.failed)
			extra++;
		else if (p->s.conn && ngtcp2_conn_get_handshake_completed(p->c.conn) &&
		         ngtcp2_conn_get_handshake_completed(p->s.conn))
			extra++;
	}
}

static int completed(struct pair *p)
{
	return !p->c.failed && !p->s.failed && p->s.conn &&
	       ngtcp2_conn_get_handshake_completed(p->c.conn) &&
	       ngtcp2_conn_get_handshake_completed(p->s.conn);
}

static void side_free(struct side *sd)
{
	if (sd->conn)
		ngtcp2_conn_del(sd->conn);
	ags_tls_session_del(sd->tls);
	sd->conn = NULL;
	sd->tls = NULL;
}

static void pair_free(struct pair *p)
{
	side_free(&p->c);
	side_free(&p->s);
}

/* Handshake from cctx (expecting `expect`) to sctx; the pair is left for inspection. */
static void handshake(struct pair *p, ags_tls_ctx *cctx, ags_tls_ctx *sctx, const char *expect,
                      const gnutls_datum_t *ticket)
{
	assert_int_equal(client_start(p, cctx, expect, ticket), 0);
	p->s.ctx = sctx;
	run(p);
}

static void peer_id_is(gnutls_session_t s, const char *want)
{
	char id[300];
	ags_error e;
	ags_error_clear(&e);
	int rv = ags_tls_session_peer_id(s, id, sizeof(id), &e);
	if (rv)
		fail_msg("peer id: %d %s", rv, e.message);
	assert_string_equal(id, want);
	assert_null(ags_tls_session_refusal(s));
}

/* The session refused the handshake with a reason containing `want`. */
static void refused_with(gnutls_session_t s, const char *want)
{
	const char *r = ags_tls_session_refusal(s);
	if (!r)
		fail_msg("no refusal recorded, wanted '%s'", want);
	if (!strstr(r, want))
		fail_msg("refusal '%s' does not contain '%s'", r, want);
	char id[64];
	ags_error e;
	assert_int_equal(ags_tls_session_peer_id(s, id, sizeof(id), &e), AGS_ERR_AUTH);
	assert_string_equal(e.message, r);
}

/* ---------------------------------------------------------------------- */
/* Setup                                                                  */
/* ---------------------------------------------------------------------- */

static int group_setup(void **state)
{
	(void)state;
	g_tmp = tu_mkdtemp("tls");
	g_ca1 = tu_sprintf("%s/ca1", g_tmp);
	g_ca2 = tu_sprintf("%s/ca2", g_tmp);
	const char *n1[] = {"a", "b", "c"};
	const char *n2[] = {"a", "b"};
	if (ags_certs_init(g_ca1, n1, 3, AGS_CERTS_ED25519, NULL) != 0 ||
	    ags_certs_init(g_ca2, n2, 2, AGS_CERTS_P256, NULL) != 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	/* No test may have made GnuTLS write the file SSLKEYLOGFILE names. */
	int written = access(g_sslkeylog, F_OK) == 0;
	tu_rmrf(g_tmp);
	free(g_ca1);
	free(g_ca2);
	free(g_tmp);
	return written ? -1 : 0;
}

/* ---------------------------------------------------------------------- */
/* Context                                                                */
/* ---------------------------------------------------------------------- */

static void ctx_errors_name_the_file(void **state)
{
	(void)state;
	struct cfgbuf b;
	ags_tls_ctx *ctx = (ags_tls_ctx *)1;
	ags_error e;

	assert_int_equal(ags_tls_ctx_new(NULL, &ctx, &e), AGS_ERR_INVALID);

	ags_tls_config *cfg = cfg_for(&b, g_ca1, "a", g_ca1);
	char *missing = tu_sprintf("%s/nope.pem", g_tmp);
	cfg->cert_file = missing;
	assert_int_equal(ags_tls_ctx_new(cfg, &ctx, &e), AGS_ERR_IO);
	assert_null(ctx);
	assert_non_null(strstr(e.message, missing));
	assert_string_equal(e.field, "cert_file");

	cfg = cfg_for(&b, g_ca1, "a", g_ca1);
	cfg->key_file = missing;
	assert_int_equal(ags_tls_ctx_new(cfg, &ctx, &e), AGS_ERR_IO);
	assert_non_null(strstr(e.message, missing));
	assert_string_equal(e.field, "key_file");

	cfg = cfg_for(&b, g_ca1, "a", g_ca1);
	cfg->ca_file = missing;
	assert_int_equal(ags_tls_ctx_new(cfg, &ctx, &e), AGS_ERR_IO);
	assert_non_null(strstr(e.message, missing));
	assert_string_equal(e.field, "ca_file");

	cfg = cfg_for(&b, g_ca1, "a", g_ca1);
	cfg->ca_file = NULL; /* verifying needs a CA */
	assert_int_equal(ags_tls_ctx_new(cfg, &ctx, &e), AGS_ERR_INVALID);
	free(missing);
}

static void ctx_refuses_garbage_and_mismatched_keys(void **state)
{
	(void)state;
	struct cfgbuf b;
	ags_tls_ctx *ctx = NULL;
	ags_error e;
	char *junk = tu_sprintf("%s/junk.pem", g_tmp);
	FILE *f = fopen(junk, "w");
	assert_non_null(f);
	fputs("-----BEGIN CERTIFICATE-----\n!!!! not base64 !!!!\n-----END CERTIFICATE-----\n", f);
	fclose(f);

	ags_tls_config *cfg = cfg_for(&b, g_ca1, "a", g_ca1);
	cfg->cert_file = junk;
	assert_int_equal(ags_tls_ctx_new(cfg, &ctx, &e), AGS_ERR_TLS);
	assert_non_null(strstr(e.message, junk));

	cfg = cfg_for(&b, g_ca1, "a", g_ca1);
	cfg->key_file = junk;
	assert_int_equal(ags_tls_ctx_new(cfg, &ctx, &e), AGS_ERR_TLS);
	assert_non_null(strstr(e.message, junk));

	cfg = cfg_for(&b, g_ca1, "a", g_ca1);
	cfg->ca_file = junk;
	assert_int_equal(ags_tls_ctx_new(cfg, &ctx, &e), AGS_ERR_TLS);
	assert_non_null(strstr(e.message, junk));

	/* a's certificate with b's key. */
	cfg = cfg_for(&b, g_ca1, "a", g_ca1);
	char *bkey = tu_sprintf("%s/b-key.pem", g_ca1);
	cfg->key_file = bkey;
	assert_int_equal(ags_tls_ctx_new(cfg, &ctx, &e), AGS_ERR_TLS);
	assert_non_null(strstr(e.message, "does not match"));
	assert_null(ctx);

	/* A pin that is not 64 hex digits. */
	cfg = cfg_for(&b, g_ca1, "a", g_ca1);
	const char *pins[] = {"abcd"};
	cfg->pins = pins;
	cfg->n_pins = 1;
	assert_int_equal(ags_tls_ctx_new(cfg, &ctx, &e), AGS_ERR_INVALID);
	assert_string_equal(e.field, "pins[0]");
	free(bkey);
	free(junk);
}

static void own_id_and_sessions(void **state)
{
	(void)state;
	struct cfgbuf b;
	ags_tls_ctx *ctx = ctx_ok(cfg_for(&b, g_ca1, "b", g_ca1));
	assert_string_equal(ags_tls_ctx_own_id(ctx), "b");

	ngtcp2_crypto_conn_ref ref = {get_conn, NULL};
	gnutls_session_t s1 = NULL, s2 = NULL, s3 = NULL;
	ags_error e;
	assert_int_equal(ags_tls_session_server(ctx, &ref, &s1, &e), 0);
	assert_int_equal(ags_tls_session_client(ctx, &ref, "a", NULL, &s2, &e), 0);
	assert_int_equal(ags_tls_session_client(ctx, &ref, NULL, NULL, &s3, &e), 0);
	/* ngtcp2_crypto_gnutls finds the connection through the session pointer. */
	assert_ptr_equal(gnutls_session_get_ptr(s1), &ref);
	assert_ptr_equal(gnutls_session_get_ptr(s2), &ref);
	assert_null(ags_tls_session_refusal(s1));
	gnutls_datum_t t;
	assert_int_equal(ags_tls_session_ticket(s2, &t), AGS_ERR_NOT_FOUND);
	char id[64];
	assert_int_equal(ags_tls_session_peer_id(s2, id, sizeof(id), &e), AGS_ERR_STATE);
	/* A ticket that is not session data is refused. */
	gnutls_datum_t junk = {(unsigned char *)"not a ticket", 12};
	gnutls_session_t s4 = NULL;
	assert_int_equal(ags_tls_session_client(ctx, &ref, "a", &junk, &s4, &e), AGS_ERR_TLS);
	assert_null(s4);
	ags_tls_session_del(s1);
	ags_tls_session_del(s2);
	ags_tls_session_del(s3);
	ags_tls_session_del(NULL);
	ags_tls_ctx_del(ctx);
	ags_tls_ctx_del(NULL);
}

/* ---------------------------------------------------------------------- */
/* Handshakes                                                             */
/* ---------------------------------------------------------------------- */

static void mutual_tls_handshake(void **state)
{
	(void)state;
	struct cfgbuf cb, sb;
	ags_tls_ctx *cctx = ctx_ok(cfg_for(&cb, g_ca1, "a", g_ca1));
	ags_tls_ctx *sctx = ctx_ok(cfg_for(&sb, g_ca1, "b", g_ca1));
	struct pair p;
	handshake(&p, cctx, sctx, "b", NULL);
	assert_true(completed(&p));
	peer_id_is(p.c.tls, "b");
	peer_id_is(p.s.tls, "a");
	assert_int_equal(gnutls_protocol_get_version(p.c.tls), GNUTLS_TLS1_3);
	gnutls_datum_t alpn;
	assert_int_equal(gnutls_alpn_get_selected_protocol(p.c.tls, &alpn), 0);
	assert_int_equal(alpn.size, strlen(AGS_ALPN));
	assert_memory_equal(alpn.data, AGS_ALPN, alpn.size);
	/* The server's ticket has arrived. */
	gnutls_datum_t t;
	assert_int_equal(ags_tls_session_ticket(p.c.tls, &t), 0);
	assert_true(t.size > 0);
	gnutls_free(t.data);
	pair_free(&p);

	/* NULL expected id: any id the CA vouches for. */
	handshake(&p, cctx, sctx, NULL, NULL);
	assert_true(completed(&p));
	peer_id_is(p.c.tls, "b");
	pair_free(&p);
	ags_tls_ctx_del(cctx);
	ags_tls_ctx_del(sctx);
}

static void client_refuses_wrong_server_id(void **state)
{
	(void)state;
	struct cfgbuf cb, sb;
	ags_tls_ctx *cctx = ctx_ok(cfg_for(&cb, g_ca1, "a", g_ca1));
	ags_tls_ctx *sctx = ctx_ok(cfg_for(&sb, g_ca1, "b", g_ca1));
	struct pair p;
	handshake(&p, cctx, sctx, "c", NULL);
	assert_false(completed(&p));
	refused_with(p.c.tls, "id mismatch: expected 'c'");
	assert_true(p.s.got_close);
	assert_int_equal(p.s.peer_close, 0x100 + ALERT_BAD_CERTIFICATE);
	pair_free(&p);
	ags_tls_ctx_del(cctx);
	ags_tls_ctx_del(sctx);
}

static void server_allow_list(void **state)
{
	(void)state;
	struct cfgbuf cb, sb;
	ags_tls_ctx *cctx = ctx_ok(cfg_for(&cb, g_ca1, "a", g_ca1));
	ags_tls_config *scfg = cfg_for(&sb, g_ca1, "b", g_ca1);
	const char *only_c[] = {"c"};
	scfg->allowed_ids = only_c;
	scfg->n_allowed_ids = 1;
	ags_tls_ctx *sctx = ctx_ok(scfg);
	struct pair p;
	handshake(&p, cctx, sctx, "b", NULL);
	assert_false(completed(&p));
	refused_with(p.s.tls, "peer 'a' not in allow-list");
	assert_true(p.c.got_close);
	pair_free(&p);
	ags_tls_ctx_del(sctx);

	const char *x_and_a[] = {"x", "a"};
	scfg->allowed_ids = x_and_a;
	scfg->n_allowed_ids = 2;
	sctx = ctx_ok(scfg);
	handshake(&p, cctx, sctx, "b", NULL);
	assert_true(completed(&p));
	peer_id_is(p.s.tls, "a");
	pair_free(&p);
	ags_tls_ctx_del(sctx);
	ags_tls_ctx_del(cctx);
}

static void server_requires_a_client_certificate(void **state)
{
	(void)state;
	struct cfgbuf cb, sb;
	ags_tls_config *ccfg = cfg_for(&cb, g_ca1, "a", g_ca1);
	ccfg->client_no_cert = 1;
	ags_tls_ctx *cctx = ctx_ok(ccfg);
	ags_tls_ctx *sctx = ctx_ok(cfg_for(&sb, g_ca1, "b", g_ca1));
	struct pair p;
	handshake(&p, cctx, sctx, "b", NULL);
	assert_false(completed(&p));
	refused_with(p.s.tls, "no client certificate");
	assert_true(p.c.got_close);
	assert_int_equal(p.c.peer_close, 0x100 + ALERT_CERTIFICATE_REQUIRED);
	pair_free(&p);
	ags_tls_ctx_del(cctx);
	ags_tls_ctx_del(sctx);
}

static void server_refuses_missing_or_other_alpn(void **state)
{
	(void)state;
	struct cfgbuf cb, sb;
	ags_tls_ctx *sctx = ctx_ok(cfg_for(&sb, g_ca1, "b", g_ca1));
	ags_tls_config *ccfg = cfg_for(&cb, g_ca1, "a", g_ca1);
	struct pair p;

	ccfg->client_alpn = "";
	ags_tls_ctx *cctx = ctx_ok(ccfg);
	handshake(&p, cctx, sctx, "b", NULL);
	assert_false(completed(&p));
	refused_with(p.s.tls, "no ALPN offered");
	assert_true(p.c.got_close);
	assert_int_equal(p.c.peer_close, 0x100 + ALERT_NO_APPLICATION_PROTOCOL);
	pair_free(&p);
	ags_tls_ctx_del(cctx);

	ccfg->client_alpn = "h3";
	cctx = ctx_ok(ccfg);
	handshake(&p, cctx, sctx, "b", NULL);
	assert_false(completed(&p));
	refused_with(p.s.tls, "ALPN 'h3' not supported");
	assert_int_equal(p.c.peer_close, 0x100 + ALERT_NO_APPLICATION_PROTOCOL);
	pair_free(&p);
	ags_tls_ctx_del(cctx);
	ags_tls_ctx_del(sctx);
}

static void unknown_ca_is_refused_on_both_sides(void **state)
{
	(void)state;
	struct cfgbuf cb, sb;
	struct pair p;
	/* Client from the other CA (an impostor named a): the server refuses it. */
	ags_tls_ctx *cctx = ctx_ok(cfg_for(&cb, g_ca2, "a", g_ca1));
	ags_tls_ctx *sctx = ctx_ok(cfg_for(&sb, g_ca1, "b", g_ca1));
	handshake(&p, cctx, sctx, "b", NULL);
	assert_false(completed(&p));
	refused_with(p.s.tls, "unknown CA");
	assert_int_equal(p.c.peer_close, 0x100 + ALERT_BAD_CERTIFICATE);
	pair_free(&p);
	ags_tls_ctx_del(sctx);
	/* Server from the other CA: the client refuses it. */
	sctx = ctx_ok(cfg_for(&sb, g_ca2, "b", g_ca2));
	ags_tls_ctx_del(cctx);
	cctx = ctx_ok(cfg_for(&cb, g_ca1, "a", g_ca1));
	handshake(&p, cctx, sctx, "b", NULL);
	assert_false(completed(&p));
	refused_with(p.c.tls, "unknown CA");
	pair_free(&p);
	ags_tls_ctx_del(cctx);
	ags_tls_ctx_del(sctx);
}

static void pins_are_checked(void **state)
{
	(void)state;
	struct cfgbuf cb, sb;
	char pin_b[65], pin_c[65];
	char *b_pem = tu_sprintf("%s/b.pem", g_ca1);
	char *c_pem = tu_sprintf("%s/c.pem", g_ca1);
	assert_int_equal(ags_certs_pin(b_pem, pin_b, NULL), 0);
	assert_int_equal(ags_certs_pin(c_pem, pin_c, NULL), 0);
	ags_tls_ctx *sctx = ctx_ok(cfg_for(&sb, g_ca1, "b", g_ca1));
	ags_tls_config *ccfg = cfg_for(&cb, g_ca1, "a", g_ca1);
	struct pair p;

	/* Upper case is accepted too. */
	for (char *q = pin_b; *q; q++)
		if (*q >= 'a' && *q <= 'f')
			*q = (char)(*q - 'a' + 'A');
	const char *good[] = {pin_c, pin_b};
	ccfg->pins = good;
	ccfg->n_pins = 2;
	ags_tls_ctx *cctx = ctx_ok(ccfg);
	handshake(&p, cctx, sctx, "b", NULL);
	assert_true(completed(&p));
	peer_id_is(p.c.tls, "b");
	pair_free(&p);
	ags_tls_ctx_del(cctx);

	const char *bad[] = {pin_c};
	ccfg->pins = bad;
	ccfg->n_pins = 1;
	cctx = ctx_ok(ccfg);
	handshake(&p, cctx, sctx, "b", NULL);
	assert_false(completed(&p));
	refused_with(p.c.tls, "pin mismatch");
	pair_free(&p);
	ags_tls_ctx_del(cctx);
	ags_tls_ctx_del(sctx);
	free(b_pem);
	free(c_pem);
}

static void unverified_mode_encrypts_without_checks(void **state)
{
	(void)state;
	struct cfgbuf cb, sb;
	struct pair p;
	/* Different CAs, no CA files, and the client has no certificate. */
	ags_tls_config *ccfg = cfg_for(&cb, g_ca2, "a", g_ca2);
	ccfg->reject_unauthorized = 0;
	ccfg->ca_file = NULL;
	ccfg->client_no_cert = 1;
	ags_tls_config *scfg = cfg_for(&sb, g_ca1, "b", g_ca1);
	scfg->reject_unauthorized = 0;
	scfg->ca_file = NULL;
	ags_tls_ctx *cctx = ctx_ok(ccfg);
	ags_tls_ctx *sctx = ctx_ok(scfg);
	handshake(&p, cctx, sctx, "someone-else", NULL);
	assert_true(completed(&p));
	peer_id_is(p.c.tls, "b"); /* from the certificate, unverified */
	peer_id_is(p.s.tls, "");  /* no certificate */
	pair_free(&p);
	ags_tls_ctx_del(cctx);

	ccfg->client_no_cert = 0;
	cctx = ctx_ok(ccfg);
	handshake(&p, cctx, sctx, NULL, NULL);
	assert_true(completed(&p));
	peer_id_is(p.s.tls, "a");
	pair_free(&p);
	ags_tls_ctx_del(cctx);
	ags_tls_ctx_del(sctx);
}

static void resumption_0rtt_and_replay(void **state)
{
	(void)state;
	struct cfgbuf cb, sb;
	ags_tls_ctx *cctx = ctx_ok(cfg_for(&cb, g_ca1, "a", g_ca1));
	ags_tls_ctx *sctx = ctx_ok(cfg_for(&sb, g_ca1, "b", g_ca1));
	struct pair p;
	handshake(&p, cctx, sctx, "b", NULL);
	assert_true(completed(&p));
	assert_false(gnutls_session_is_resumed(p.c.tls));
	gnutls_datum_t t1, t2;
	assert_int_equal(ags_tls_session_ticket(p.c.tls, &t1), 0);
	pair_free(&p);

	/* Resumed with the ticket, early data accepted, peers still identified. */
	handshake(&p, cctx, sctx, "b", &t1);
	assert_true(completed(&p));
	assert_true(gnutls_session_is_resumed(p.c.tls));
	assert_true(gnutls_session_is_resumed(p.s.tls));
	assert_true(gnutls_session_get_flags(p.s.tls) & GNUTLS_SFLAGS_EARLY_DATA);
	peer_id_is(p.c.tls, "b");
	peer_id_is(p.s.tls, "a");
	assert_int_equal(ags_tls_session_ticket(p.c.tls, &t2), 0);
	gnutls_free(t2.data);

	/* The same first flight replayed to another connection: its early data is refused. */
	struct side s3;
	memset(&s3, 0, sizeof(s3));
	set_addr(&s3.local, 40001);
	set_addr(&s3.remote, 40000);
	s3.ctx = sctx;
	deliver(&p.c, &s3, p.first, p.first_len);
	assert_non_null(s3.tls);
	assert_false(gnutls_session_get_flags(s3.tls) & GNUTLS_SFLAGS_EARLY_DATA);
	side_free(&s3);
	pair_free(&p);

	/* A resumed session is still checked against the expected id. */
	handshake(&p, cctx, sctx, "c", &t1);
	assert_false(completed(&p));
	refused_with(p.c.tls, "id mismatch: expected 'c'");
	pair_free(&p);
	gnutls_free(t1.data);
	ags_tls_ctx_del(cctx);
	ags_tls_ctx_del(sctx);
}

static void keylog_only_where_configured(void **state)
{
	(void)state;
	struct cfgbuf cb, sb;
	char *log = tu_sprintf("%s/keys.log", g_tmp);
	ags_tls_config *ccfg = cfg_for(&cb, g_ca1, "a", g_ca1);
	ccfg->keylog_file = log;
	ags_tls_ctx *cctx = ctx_ok(ccfg);
	ags_tls_ctx *sctx = ctx_ok(cfg_for(&sb, g_ca1, "b", g_ca1));
	struct pair p;
	handshake(&p, cctx, sctx, "b", NULL);
	assert_true(completed(&p));
	gnutls_datum_t crand;
	gnutls_session_get_random(p.c.tls, &crand, NULL);
	char rhex[65];
	for (unsigned i = 0; i < crand.size && i < 32; i++)
		snprintf(rhex + 2 * i, 3, "%02x", crand.data[i]);
	pair_free(&p);
	ags_tls_ctx_del(cctx);
	ags_tls_ctx_del(sctx);

	struct stat st;
	assert_int_equal(stat(log, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	char *needle = tu_sprintf("CLIENT_HANDSHAKE_TRAFFIC_SECRET %s ", rhex);
	assert_true(tu_file_contains(log, needle));
	free(needle);
	needle = tu_sprintf("SERVER_TRAFFIC_SECRET_0 %s ", rhex);
	assert_true(tu_file_contains(log, needle));
	free(needle);
	/* SSLKEYLOGFILE, set for this whole program, was never written (checked again at the end).
	 */
	assert_int_not_equal(access(g_sslkeylog, F_OK), 0);
	free(log);
}

int main(void)
{
	/* GnuTLS would write every secret to this file if its default key log function ever ran. */
	g_sslkeylog = tu_sprintf("/tmp/ags-test-tls-sslkeylog-%d.log", (int)getpid());
	unlink(g_sslkeylog);
	setenv("SSLKEYLOGFILE", g_sslkeylog, 1);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(ctx_errors_name_the_file),
	    cmocka_unit_test(ctx_refuses_garbage_and_mismatched_keys),
	    cmocka_unit_test(own_id_and_sessions),
	    cmocka_unit_test(mutual_tls_handshake),
	    cmocka_unit_test(client_refuses_wrong_server_id),
	    cmocka_unit_test(server_allow_list),
	    cmocka_unit_test(server_requires_a_client_certificate),
	    cmocka_unit_test(server_refuses_missing_or_other_alpn),
	    cmocka_unit_test(unknown_ca_is_refused_on_both_sides),
	    cmocka_unit_test(pins_are_checked),
	    cmocka_unit_test(unverified_mode_encrypts_without_checks),
	    cmocka_unit_test(resumption_0rtt_and_replay),
	    cmocka_unit_test(keylog_only_where_configured),
	};
	int rv = cmocka_run_group_tests(tests, group_setup, group_teardown);
	int leaked = access(g_sslkeylog, F_OK) == 0;
	unlink(g_sslkeylog);
	free(g_sslkeylog);
	return rv ? rv : leaked;
}
