/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS sessions of QUIC connections (tls.h): made per connection from a
 * context (tls.c), with the peer checks as their hooks; peer ids, refusals
 * and tickets for resumption.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include "agentsync/certs.h"
#include "error.h"
#include "file.h"
#include "tls.h"
#include "tls_int.h"

/* ---------------------------------------------------------------------- */
/* Sessions                                                               */
/* ---------------------------------------------------------------------- */

/*
 * What both sides share: gnutls_init with the QUIC flags, private state,
 * key log override, priority, hooks, verify function, ngtcp2's callbacks.
 */
static int session_common(ags_tls_ctx *ctx, int server, ngtcp2_crypto_conn_ref *ref,
                          gnutls_session_t *out, ags_error *err)
{
	gnutls_session_t s = NULL;
	unsigned flags = GNUTLS_ENABLE_EARLY_DATA | GNUTLS_NO_END_OF_EARLY_DATA;
	/* The server's tickets are sent by the transport (gnutls_session_ticket_send) when the
	 * QUIC handshake completes, not by GnuTLS inside the handshake. */
	flags |= server ? GNUTLS_SERVER | GNUTLS_NO_AUTO_SEND_TICKET : GNUTLS_CLIENT;
	struct ags_tls_sess *st = calloc(1, sizeof(*st));
	if (!st)
		return ags_error_set(err, AGS_ERR_NOMEM, NULL, "out of memory");
	st->ctx = ctx;
	st->server = server;
	int g = gnutls_init(&s, flags);
	if (g < 0) {
		free(st);
		return ags_tls_err(err, NULL, "gnutls_init", g);
	}
	gnutls_db_set_ptr(s, st);
	gnutls_session_set_keylog_function(s, ags_tls_keylog_cb);
	gnutls_session_set_ptr(s, ref);

	g = gnutls_priority_set(s, ctx->prio);
	if (g < 0) {
		ags_tls_err(err, NULL, "gnutls_priority_set", g);
		goto fail;
	}
	gnutls_handshake_set_hook_function(s, GNUTLS_HANDSHAKE_ANY, GNUTLS_HOOK_BOTH,
	                                   ags_tls_hook_cb);
	gnutls_session_set_verify_function(s, ags_tls_verify_cb);
	if ((server ? ngtcp2_crypto_gnutls_configure_server_session(s)
	            : ngtcp2_crypto_gnutls_configure_client_session(s)) != 0) {
		ags_error_set(err, AGS_ERR_TLS, NULL,
		              "ngtcp2_crypto_gnutls cannot configure session");
		goto fail;
	}
	gnutls_certificate_credentials_t cred = (!server && ctx->nocert) ? ctx->nocert : ctx->cred;
	g = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
	if (g < 0) {
		ags_tls_err(err, NULL, "gnutls_credentials_set", g);
		goto fail;
	}
	*out = s;
	return 0;
fail:
	ags_tls_session_del(s);
	return AGS_ERR_TLS;
}

int ags_tls_session_server(ags_tls_ctx *ctx, ngtcp2_crypto_conn_ref *ref, gnutls_session_t *out,
                           ags_error *err)
{
	gnutls_session_t s = NULL;
	if (!ctx || !ref || !out)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "ctx, ref and out are required");
	int rv = session_common(ctx, 1, ref, &s, err);
	if (rv)
		return rv;
	int g = gnutls_session_ticket_enable_server(s, &ctx->ticket_key);
	if (g < 0) {
		ags_tls_err(err, NULL, "gnutls_session_ticket_enable_server", g);
		goto fail;
	}
	gnutls_anti_replay_enable(s, ctx->anti_replay);
	/* QUIC requires max_early_data_size 0xffffffff in tickets that allow 0-RTT (RFC 9001
	 * 4.6.1); QUIC flow control bounds early data instead. */
	g = gnutls_record_set_max_early_data_size(s, 0xffffffffu);
	if (g < 0) {
		ags_tls_err(err, NULL, "gnutls_record_set_max_early_data_size", g);
		goto fail;
	}
	gnutls_datum_t alpn = {(unsigned char *)AGS_ALPN, sizeof(AGS_ALPN) - 1};
	g = gnutls_alpn_set_protocols(s, &alpn, 1,
	                              GNUTLS_ALPN_MANDATORY | GNUTLS_ALPN_SERVER_PRECEDENCE);
	if (g < 0) {
		ags_tls_err(err, NULL, "gnutls_alpn_set_protocols", g);
		goto fail;
	}
	/* REQUEST rather than REQUIRE: with REQUIRE, GnuTLS refuses a client without a certificate
	 * before the verify function runs, and the refusal would have no recorded reason. The
	 * verify function (check_peer) refuses it instead, with GNUTLS_E_CERTIFICATE_REQUIRED. */
	gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUEST);
	/* Do not list the CA names in CertificateRequest: nodes have one certificate each. */
	gnutls_certificate_send_x509_rdn_sequence(s, 1);
	*out = s;
	return 0;
fail:
	ags_tls_session_del(s);
	return AGS_ERR_TLS;
}

/*
 * Tickets handed out by ags_tls_session_ticket are GnuTLS's session data
 * behind a small header naming the peer the session was verified with:
 *   "agt1", u8 id length, id, u8 pin length (0 or 64), pin (hex), session data.
 */
static const unsigned char TICKET_MAGIC[4] = {'a', 'g', 't', '1'};

static int ticket_unwrap(struct ags_tls_sess *st, const gnutls_datum_t *t, gnutls_datum_t *data)
{
	const unsigned char *p = t->data, *end = t->data + t->size;
	if (t->size < sizeof(TICKET_MAGIC) + 2 ||
	    memcmp(p, TICKET_MAGIC, sizeof(TICKET_MAGIC)) != 0)
		return -1;
	p += sizeof(TICKET_MAGIC);
	size_t idl = *p++;
	if ((size_t)(end - p) < idl + 1)
		return -1;
	memcpy(st->ticket_id, p, idl);
	st->ticket_id[idl] = '\0';
	p += idl;
	size_t pl = *p++;
	if ((pl != 0 && pl != 64) || (size_t)(end - p) <= pl || memchr(st->ticket_id, 0, idl))
		return -1;
	memcpy(st->ticket_pin, p, pl);
	st->ticket_pin[pl] = '\0';
	p += pl;
	data->data = (unsigned char *)p;
	data->size = (unsigned)(end - p);
	return 0;
}

int ags_tls_session_client(ags_tls_ctx *ctx, ngtcp2_crypto_conn_ref *ref, const char *expected_id,
                           const gnutls_datum_t *ticket, gnutls_session_t *out, ags_error *err)
{
	gnutls_session_t s = NULL;
	if (!ctx || !ref || !out)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "ctx, ref and out are required");
	if (expected_id && strlen(expected_id) > ID_MAX)
		return ags_error_set(err, AGS_ERR_INVALID, "expected_id", "longer than %d bytes",
		                     ID_MAX);
	int rv = session_common(ctx, 0, ref, &s, err);
	if (rv)
		return rv;
	struct ags_tls_sess *st = gnutls_db_get_ptr(s);
	snprintf(st->expected, sizeof(st->expected), "%s", expected_id ? expected_id : "");

	const char *proto = ctx->client_alpn ? ctx->client_alpn : AGS_ALPN;
	int g = 0;
	if (proto[0]) {
		gnutls_datum_t alpn = {(unsigned char *)proto, (unsigned)strlen(proto)};
		g = gnutls_alpn_set_protocols(s, &alpn, 1, GNUTLS_ALPN_MANDATORY);
	}
	if (g < 0) {
		ags_tls_err(err, "client_alpn", "gnutls_alpn_set_protocols", g);
		goto fail;
	}
	if (ticket && ticket->data && ticket->size) {
		gnutls_datum_t data;
		if (ticket_unwrap(st, ticket, &data) != 0) {
			ags_error_set(
			    err, AGS_ERR_TLS, "ticket",
			    "session ticket not usable: not made by ags_tls_session_ticket");
			goto fail;
		}
		g = gnutls_session_set_data(s, data.data, data.size);
		if (g < 0) {
			ags_tls_err(err, "ticket", "session ticket not usable", g);
			goto fail;
		}
		st->resuming = 1;
	}
	*out = s;
	return 0;
fail:
	ags_tls_session_del(s);
	return AGS_ERR_TLS;
}

int ags_tls_session_peer_id(gnutls_session_t s, char *buf, size_t cap, ags_error *err)
{
	if (!s || !buf || cap == 0)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "session and buffer are required");
	buf[0] = '\0';
	struct ags_tls_sess *st = gnutls_db_get_ptr(s);
	if (!st)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "not an agentsync session");
	if (st->reason[0])
		return ags_error_set(err, AGS_ERR_AUTH, NULL, "%s", st->reason);
	if (!st->finished)
		return ags_error_set(err, AGS_ERR_STATE, NULL, "handshake not complete");
	if (strlen(st->peer_id) >= cap)
		return ags_error_set(err, AGS_ERR_TOO_LARGE, NULL,
		                     "peer id longer than the buffer");
	memcpy(buf, st->peer_id, strlen(st->peer_id) + 1);
	return 0;
}

const char *ags_tls_session_refusal(gnutls_session_t s)
{
	struct ags_tls_sess *st = s ? gnutls_db_get_ptr(s) : NULL;
	return st && st->reason[0] ? st->reason : NULL;
}

int ags_tls_session_ticket(gnutls_session_t s, gnutls_datum_t *out)
{
	if (!s || !out)
		return AGS_ERR_INVALID;
	out->data = NULL;
	out->size = 0;
	/* Without a received ticket, gnutls_session_get_data2 would wait for one on the
	 * transport (which QUIC does not give it) and then return data that cannot resume. */
	struct ags_tls_sess *st = gnutls_db_get_ptr(s);
	if (!st || st->server)
		return AGS_ERR_INVALID;
	if (!st->finished || !(gnutls_session_get_flags(s) & GNUTLS_SFLAGS_SESSION_TICKET))
		return AGS_ERR_NOT_FOUND;
	gnutls_datum_t d = {NULL, 0};
	if (gnutls_session_get_data2(s, &d) != 0)
		return AGS_ERR_TLS;
	size_t idl = strlen(st->peer_id), pl = strlen(st->peer_pin);
	size_t total = sizeof(TICKET_MAGIC) + 1 + idl + 1 + pl + d.size;
	unsigned char *buf = gnutls_malloc(total);
	if (!buf) {
		gnutls_free(d.data);
		return AGS_ERR_NOMEM;
	}
	unsigned char *p = buf;
	memcpy(p, TICKET_MAGIC, sizeof(TICKET_MAGIC));
	p += sizeof(TICKET_MAGIC);
	*p++ = (unsigned char)idl;
	memcpy(p, st->peer_id, idl);
	p += idl;
	*p++ = (unsigned char)pl;
	memcpy(p, st->peer_pin, pl);
	p += pl;
	memcpy(p, d.data, d.size);
	gnutls_free(d.data);
	out->data = buf;
	out->size = (unsigned)total;
	return 0;
}

void ags_tls_session_del(gnutls_session_t s)
{
	if (!s)
		return;
	struct ags_tls_sess *st = gnutls_db_get_ptr(s);
	gnutls_deinit(s);
	free(st);
}
