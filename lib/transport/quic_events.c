/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What ngtcp2 tells a connection, and what the connection tells the app:
 * the ngtcp2 callbacks (handshake, streams, connection IDs), peer identity
 * and resumption state at handshake completion, the server's hold of 0-RTT
 * stream events until the peer is verified, and the connection settings.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include "clock.h"
#include "error.h"
#include "quic_int.h"

/* Connection IDs we let the peer keep at once (each is one map entry). */
#define ACTIVE_CID_LIMIT 4

static void replay_early(ags_quic_conn *c);

/* Copies peer-supplied text, keeping printable ASCII only. */
void ags_quic_copy_text(char *dst, size_t cap, const uint8_t *src, size_t n)
{
	size_t j = 0;
	for (size_t i = 0; i < n && j + 1 < cap; i++)
		dst[j++] = (src[i] >= 0x20 && src[i] < 0x7f) ? (char)src[i] : '?';
	while (j > 0 && dst[j - 1] == ' ')
		j--;
	dst[j] = '\0';
}

static const ags_quic_callbacks *cbs(const ags_quic_conn *c)
{
	return &c->ep->cbs;
}

/* ---- telling the app ---- */

static void report_connected(ags_quic_conn *c)
{
	if (c->connected_reported)
		return;
	c->connected_reported = 1;
	c->app_known = 1;
	ags_quic_ep_hs_remove(c->ep, c);
	if (cbs(c)->on_connected)
		cbs(c)->on_connected(cbs(c)->user_data, c, c->peer_id, c->peer_addr);
}

/*
 * The connection is over for the app: its writes complete, then
 * on_refused (when it never got connected and the app did not close it
 * itself) and on_closed.
 */
void ags_quic_report_end(ags_quic_conn *c, uint64_t code, const char *reason, int by_peer)
{
	int refused = !c->connected_reported && !c->close_requested && !c->ep->deleting &&
	              !(c->quiet && !c->app_known);
	if (c->closed_reported)
		return;
	c->closed_reported = 1;
	while (c->streams)
		ags_quic_stream_free(c, c->streams, AGS_ERR_CLOSED);
	c->unacked = 0;
	if (refused && c->hs_timeout && cbs(c)->on_handshake_timeout) {
		c->app_known = 1;
		cbs(c)->on_handshake_timeout(cbs(c)->user_data, c, c->peer_addr);
	} else if (refused) {
		c->app_known = 1;
		if (cbs(c)->on_refused)
			cbs(c)->on_refused(cbs(c)->user_data, c, c->peer_addr,
			                   c->refusal[0] ? c->refusal : reason);
	}
	if (c->app_known && cbs(c)->on_closed)
		cbs(c)->on_closed(cbs(c)->user_data, c, code, reason, by_peer);
}

/* ---- ngtcp2 callbacks ---- */

static void save_ticket(ags_quic_conn *c)
{
	if (!(gnutls_session_get_flags(c->tls) & GNUTLS_SFLAGS_SESSION_TICKET))
		return;
	gnutls_datum_t d = {NULL, 0};
	if (ags_tls_session_ticket(c->tls, &d) != 0)
		return;
	ags_quic_ticket *t = d.size <= AGS_QUIC_TICKET_MAX && c->peer_id[0]
	                         ? ags_quic_ep_ticket_get(c->ep, c->peer_id)
	                         : NULL;
	if (!t) {
		gnutls_free(d.data);
		return;
	}
	gnutls_free(t->ticket);
	t->ticket = d.data;
	t->ticket_len = d.size;
}

static int cb_recv_crypto_data(ngtcp2_conn *qc, ngtcp2_encryption_level level, uint64_t offset,
                               const uint8_t *data, size_t len, void *ud)
{
	ags_quic_conn *c = ud;
	int rv = ngtcp2_crypto_recv_crypto_data_cb(qc, level, offset, data, len, ud);
	/* A NewSessionTicket arrives after the handshake, at the 1-RTT level. */
	if (rv == 0 && !c->is_server && c->handshake_done && level == NGTCP2_ENCRYPTION_LEVEL_1RTT)
		save_ticket(c);
	return rv;
}

/* Refuses the peer from inside a callback: the read fails and we close with this reason. */
static int refuse(ags_quic_conn *c, const ags_error *e)
{
	snprintf(c->refusal, sizeof(c->refusal), "%s",
	         e->message[0] ? e->message : "peer identity refused");
	snprintf(c->close_reason, sizeof(c->close_reason), "%s", c->refusal);
	ngtcp2_ccerr_set_transport_error(&c->ccerr, NGTCP2_CONNECTION_REFUSED,
	                                 (const uint8_t *)c->close_reason, strlen(c->close_reason));
	c->ccerr_set = 1;
	return NGTCP2_ERR_CALLBACK_FAILURE;
}

static int cb_handshake_completed(ngtcp2_conn *qc, void *ud)
{
	ags_quic_conn *c = ud;
	c->handshake_done = 1;
	c->resumed = gnutls_session_is_resumed(c->tls) != 0;
	ags_error e;
	ags_error_clear(&e);
	if (!c->connected_reported &&
	    ags_tls_session_peer_id(c->tls, c->peer_id, sizeof(c->peer_id), &e) != 0)
		return refuse(c, &e);
	int early = (gnutls_session_get_flags(c->tls) & GNUTLS_SFLAGS_EARLY_DATA) != 0;
	if (c->is_server) {
		ags_quic_ep_hs_remove(c->ep, c);
		if (!c->connected_reported &&
		    ags_quic_ep_established(c->ep) > c->ep->cfg.max_conns) {
			c->ep->stats.refused_max_conns++;
			snprintf(e.message, sizeof(e.message),
			         "too many connections (max_conns %zu reached)",
			         c->ep->cfg.max_conns);
			return refuse(c, &e);
		}
		c->early_accepted = early;
		/* Tickets are not sent automatically (GNUTLS_NO_AUTO_SEND_TICKET). */
		(void)gnutls_session_ticket_send(c->tls, 1, 0);
	} else {
		if (c->early_attempted && early) {
			c->early_accepted = 1;
		} else if (c->early_attempted) {
			int rv = ngtcp2_conn_tls_early_data_rejected(qc);
			if (rv != 0)
				return rv;
		}
		ags_quic_ticket *t = ags_quic_ep_ticket_get(c->ep, c->peer_id);
		if (t) {
			ngtcp2_ssize n =
			    ngtcp2_conn_encode_0rtt_transport_params(qc, t->tp, sizeof(t->tp));
			t->tp_len = n > 0 ? (size_t)n : 0;
		}
	}
	/*
	 * A client reports the peer once the handshake is confirmed (HANDSHAKE_DONE): in TLS 1.3
	 * the server checks our certificate after our side completed, and a refusal must come
	 * as on_refused, not as a close after on_connected.
	 */
	if (c->is_server) {
		report_connected(c);
		replay_early(c);
	}
	return 0;
}

static int cb_handshake_confirmed(ngtcp2_conn *qc, void *ud)
{
	ags_quic_conn *c = ud;
	if (!c->is_server && c->handshake_done) {
		report_connected(c);
		replay_early(c);
	}
	return 0;
}

static int cb_early_data_rejected(ngtcp2_conn *qc, void *ud)
{
	ags_quic_conn *c = ud;
	c->early_rejected = 1;
	/* ngtcp2 dropped every stream opened in 0-RTT; their writes will never complete. */
	while (c->streams)
		ags_quic_stream_free(c, c->streams, AGS_ERR_AGAIN);
	c->unacked = 0;
	if (cbs(c)->on_early_data_rejected)
		cbs(c)->on_early_data_rejected(cbs(c)->user_data, c);
	return 0;
}

/* Server: holds a stream event until the peer is verified. Returns 0 or a callback failure. */
static int hold_early(ags_quic_conn *c, int64_t sid, int kind, const uint8_t *data, size_t len,
                      int fin, uint64_t code)
{
	ags_quic_early *e = malloc(sizeof(*e) + len);
	if (!e)
		return NGTCP2_ERR_CALLBACK_FAILURE;
	e->next = NULL;
	e->sid = sid;
	e->kind = kind;
	e->code = code;
	e->fin = fin;
	e->len = len;
	if (len)
		memcpy(e->data, data, len);
	if (c->early_tail)
		c->early_tail->next = e;
	else
		c->early = e;
	c->early_tail = e;
	return 0;
}

void ags_quic_early_free(ags_quic_conn *c)
{
	while (c->early) {
		ags_quic_early *e = c->early;
		c->early = e->next;
		free(e);
	}
	c->early_tail = NULL;
}

/* Server, once the peer is verified: delivers the held 0-RTT stream events in order. */
static void replay_early(ags_quic_conn *c)
{
	while (c->early && c->state == AGS_QC_ACTIVE && !c->closed_reported &&
	       !c->close_requested) {
		ags_quic_early *e = c->early;
		c->early = e->next;
		if (!c->early)
			c->early_tail = NULL;
		if (e->kind == AGS_QUIC_EARLY_OPEN) {
			if (cbs(c)->on_stream_open)
				cbs(c)->on_stream_open(cbs(c)->user_data, c, e->sid);
		} else if (e->kind == AGS_QUIC_EARLY_CLOSE) {
			if (cbs(c)->on_stream_close)
				cbs(c)->on_stream_close(cbs(c)->user_data, c, e->sid, e->code);
		} else if (cbs(c)->on_stream_data) {
			cbs(c)->on_stream_data(cbs(c)->user_data, c, e->sid, e->data, e->len,
			                       e->fin);
		} else {
			ngtcp2_conn_extend_max_stream_offset(c->qc, e->sid, e->len);
			ngtcp2_conn_extend_max_offset(c->qc, e->len);
		}
		free(e);
	}
	ags_quic_early_free(c);
}

static int cb_stream_open(ngtcp2_conn *qc, int64_t sid, void *ud)
{
	ags_quic_conn *c = ud;
	if (!ngtcp2_is_bidi_stream(sid))
		return 0;
	if (!ags_quic_stream_new(c, sid))
		return NGTCP2_ERR_CALLBACK_FAILURE;
	if (!c->connected_reported)
		return hold_early(c, sid, AGS_QUIC_EARLY_OPEN, NULL, 0, 0, 0);
	if (cbs(c)->on_stream_open)
		cbs(c)->on_stream_open(cbs(c)->user_data, c, sid);
	return 0;
}

static int cb_recv_stream_data(ngtcp2_conn *qc, uint32_t flags, int64_t sid, uint64_t offset,
                               const uint8_t *data, size_t len, void *ud, void *sud)
{
	ags_quic_conn *c = ud;
	int fin = (flags & NGTCP2_STREAM_DATA_FLAG_FIN) != 0;
	if (!c->connected_reported)
		return hold_early(c, sid, AGS_QUIC_EARLY_DATA, data, len, fin, 0);
	/* Once the app closed the connection, what the peer still sends is dropped: a
	 * refused session's bytes are never parsed (from the middle of a frame). */
	if (cbs(c)->on_stream_data && !c->closed_reported && !c->close_requested) {
		cbs(c)->on_stream_data(cbs(c)->user_data, c, sid, data, len, fin);
	} else {
		ngtcp2_conn_extend_max_stream_offset(qc, sid, len);
		ngtcp2_conn_extend_max_offset(qc, len);
	}
	return 0;
}

static int cb_acked(ngtcp2_conn *qc, int64_t sid, uint64_t offset, uint64_t len, void *ud,
                    void *sud)
{
	ags_quic_conn *c = ud;
	ags_quic_stream *s = sud ? sud : ags_quic_stream_find(c, sid);
	if (s)
		ags_quic_stream_acked(c, s, len);
	return 0;
}

static int cb_stream_close(ngtcp2_conn *qc, uint32_t flags, int64_t sid, uint64_t code, void *ud,
                           void *sud)
{
	ags_quic_conn *c = ud;
	ags_quic_stream *s = sud ? sud : ags_quic_stream_find(c, sid);
	if (!(flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET))
		code = 0;
	if (s) {
		ags_quic_stream_free(c, s, AGS_ERR_CLOSED);
		if (!c->connected_reported) {
			if (hold_early(c, sid, AGS_QUIC_EARLY_CLOSE, NULL, 0, 0, code) != 0)
				return NGTCP2_ERR_CALLBACK_FAILURE;
		} else if (cbs(c)->on_stream_close && !c->closed_reported) {
			cbs(c)->on_stream_close(cbs(c)->user_data, c, sid, code);
		}
	}
	if (ngtcp2_is_bidi_stream(sid) && !ngtcp2_conn_is_local_stream(qc, sid))
		ngtcp2_conn_extend_max_streams_bidi(qc, 1);
	ags_quic_conn_maybe_writable(c);
	return 0;
}

static int cb_extend_max_streams(ngtcp2_conn *qc, uint64_t max, void *ud)
{
	ags_quic_conn_maybe_writable(ud);
	return 0;
}

static int cb_extend_max_stream_data(ngtcp2_conn *qc, int64_t sid, uint64_t max, void *ud,
                                     void *sud)
{
	ags_quic_conn *c = ud;
	ags_quic_stream *s = sud ? sud : ags_quic_stream_find(c, sid);
	if (s && s->blocked) {
		s->blocked = 0;
		if (s->send || (s->fin_queued && !s->fin_sent))
			ags_quic_sendq_add(c, s);
	}
	return 0;
}

static void cb_rand(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *ctx)
{
	(void)ctx;
	(void)gnutls_rnd(GNUTLS_RND_NONCE, dest, len);
}

static int cb_new_cid(ngtcp2_conn *qc, ngtcp2_cid *cid, uint8_t *token, size_t cidlen, void *ud)
{
	ags_quic_conn *c = ud;
	if (gnutls_rnd(GNUTLS_RND_RANDOM, cid->data, cidlen) != 0)
		return NGTCP2_ERR_CALLBACK_FAILURE;
	cid->datalen = cidlen;
	if (ngtcp2_crypto_generate_stateless_reset_token(token, c->ep->secret,
	                                                 sizeof(c->ep->secret), cid) != 0)
		return NGTCP2_ERR_CALLBACK_FAILURE;
	if (ags_quic_ep_cid_add(c->ep, cid, c) != 0)
		return NGTCP2_ERR_CALLBACK_FAILURE;
	return 0;
}

static int cb_remove_cid(ngtcp2_conn *qc, const ngtcp2_cid *cid, void *ud)
{
	ags_quic_conn *c = ud;
	ags_quic_ep_cid_remove(c->ep, cid);
	return 0;
}

static int cb_stateless_reset(ngtcp2_conn *qc, const ngtcp2_pkt_stateless_reset *sr, void *ud)
{
	ags_quic_conn *c = ud;
	c->got_reset = 1;
	return 0;
}

void ags_quic_fill_callbacks(ngtcp2_callbacks *cb, int server)
{
	memset(cb, 0, sizeof(*cb));
	if (server) {
		cb->recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
	} else {
		cb->client_initial = ngtcp2_crypto_client_initial_cb;
		cb->recv_retry = ngtcp2_crypto_recv_retry_cb;
		cb->tls_early_data_rejected = cb_early_data_rejected;
		cb->handshake_confirmed = cb_handshake_confirmed;
	}
	cb->recv_crypto_data = cb_recv_crypto_data;
	cb->handshake_completed = cb_handshake_completed;
	cb->encrypt = ngtcp2_crypto_encrypt_cb;
	cb->decrypt = ngtcp2_crypto_decrypt_cb;
	cb->hp_mask = ngtcp2_crypto_hp_mask_cb;
	cb->recv_stream_data = cb_recv_stream_data;
	cb->acked_stream_data_offset = cb_acked;
	cb->stream_open = cb_stream_open;
	cb->stream_close = cb_stream_close;
	cb->recv_stateless_reset = cb_stateless_reset;
	cb->extend_max_local_streams_bidi = cb_extend_max_streams;
	cb->rand = cb_rand;
	cb->get_new_connection_id = cb_new_cid;
	cb->remove_connection_id = cb_remove_cid;
	cb->update_key = ngtcp2_crypto_update_key_cb;
	cb->extend_max_stream_data = cb_extend_max_stream_data;
	cb->delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
	cb->delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
	cb->get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
	cb->version_negotiation = ngtcp2_crypto_version_negotiation_cb;
}

void ags_quic_fill_settings(const ags_quic_ep *ep, ngtcp2_settings *s, ngtcp2_transport_params *p)
{
	const ags_quic_config *cfg = &ep->cfg;
	ngtcp2_settings_default(s);
	s->initial_ts = ags_mono_ns();
	/* Windows are fixed (no auto-tuning): they are the hard bound on unconsumed data. */
	s->max_window = 0;
	s->max_stream_window = 0;
	s->handshake_timeout = cfg->handshake_timeout_ms * NGTCP2_MILLISECONDS;
	ngtcp2_transport_params_default(p);
	p->initial_max_stream_data_bidi_local = cfg->stream_window;
	p->initial_max_stream_data_bidi_remote = cfg->stream_window;
	p->initial_max_stream_data_uni = 0;
	p->initial_max_data = cfg->conn_window;
	p->initial_max_streams_bidi = cfg->max_streams;
	p->initial_max_streams_uni = 0;
	p->max_idle_timeout = cfg->idle_timeout_ms * NGTCP2_MILLISECONDS;
	p->active_connection_id_limit = ACTIVE_CID_LIMIT;
}
