/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A node's links (node_link.h): what is the same for every kind of
 * connection. The transport's callbacks land here and go to the link's table
 * of operations; frames the transport has no room for wait here; stream data
 * is fed to the session here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "frame.h"
#include "node_int.h"
#include "node_link.h"
#include "wire.h"

/* ---- links ---- */

struct ags_link *ags_node_link_new(struct ags_node *n, ags_quic_conn *c, int outgoing,
                                   const struct ags_link_ops *ops, void *owner)
{
	struct ags_link *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->node = n;
	l->ops = ops;
	l->owner = owner;
	l->conn = c;
	l->sid = -1;
	l->outgoing = outgoing;
	return l;
}

void ags_node_link_drop_pending(struct ags_link *l)
{
	while (l->pend_head) {
		struct ags_pending *q = l->pend_head;
		l->pend_head = q->next;
		free(q->frame);
		free(q);
	}
	l->pend_tail = NULL;
}

void ags_node_link_free(struct ags_link *l)
{
	if (l->sync)
		ags_sync_del(l->sync);
	ags_node_link_drop_pending(l);
	free(l);
}

static void write_done(void *ud, int status)
{
	(void)status;
	free(ud);
}

static void link_flush(struct ags_link *l)
{
	while (l->pend_head) {
		struct ags_pending *q = l->pend_head;
		int rv = ags_quic_stream_write(l->conn, l->sid, q->frame, q->len, 0, write_done,
		                               q->frame);
		if (rv == AGS_ERR_AGAIN)
			return;
		if (rv != 0)
			free(q->frame);
		l->pend_head = q->next;
		if (!l->pend_head)
			l->pend_tail = NULL;
		free(q);
	}
}

void ags_node_host_send(void *ud, void *session_ud, uint8_t *frame, size_t len)
{
	(void)ud;
	struct ags_link *l = session_ud;
	if (!l->pend_head && l->sid >= 0) {
		int rv = ags_quic_stream_write(l->conn, l->sid, frame, len, 0, write_done, frame);
		if (rv == 0)
			return;
		if (rv != AGS_ERR_AGAIN) {
			free(frame);
			return;
		}
	}
	struct ags_pending *q = malloc(sizeof(*q));
	if (!q) {
		free(frame);
		ags_quic_conn_close(l->conn, AGS_APP_INTERNAL_ERROR, "out of memory");
		return;
	}
	q->frame = frame;
	q->len = len;
	q->next = NULL;
	if (l->pend_tail)
		l->pend_tail->next = q;
	else
		l->pend_head = q;
	l->pend_tail = q;
}

int ags_node_host_hello(void *ud, void *session_ud, const char *instance)
{
	(void)ud;
	struct ags_link *l = session_ud;
	return l->ops->hello(l, instance);
}

void ags_node_link_pump(struct ags_link *l, uint64_t now_us)
{
	if (l->sync && !l->pend_head)
		ags_sync_pump(l->sync, now_us);
}

void ags_node_link_start_stream(struct ags_link *l)
{
	int rv = ags_quic_stream_open(l->conn, &l->sid);
	if (rv == AGS_ERR_AGAIN) {
		l->sid = -1;
		return;
	}
	if (rv) {
		l->sid = -1;
		ags_quic_conn_close(l->conn, AGS_APP_INTERNAL_ERROR, "cannot open stream");
		return;
	}
	l->ops->start(l);
}

void ags_node_link_close(struct ags_link *l, uint64_t code, const char *reason)
{
	if (l->closing)
		return;
	l->closing = 1;
	if (code != AGS_APP_NO_ERROR && l->sid >= 0) {
		/* The transport sends what is written before the close, so the ERROR frame
		 * goes first (unless the stream has no room; the close says it too). */
		ags_node_link_drop_pending(l);
		ags_frame_buf fb;
		ags_frame_buf_init(&fb, 0);
		if (ags_wire_error_encode(code, reason, &fb, NULL) != 0 ||
		    ags_quic_stream_write(l->conn, l->sid, fb.data, fb.len, 0, write_done,
		                          fb.data) != 0)
			ags_frame_buf_free(&fb);
	}
	ags_quic_conn_close(l->conn, code, reason);
}

void ags_node_link_data(struct ags_link *l, const uint8_t *data, size_t len)
{
	struct ags_node *n = l->node;
	uint64_t code = 0;
	char reason[200] = "";
	if (l->closing)
		return; /* closed: the rest of its bytes mean nothing */
	int rv = ags_sync_on_data(l->sync, data, len, ags_mono_us(), &code, reason, sizeof(reason));
	if (rv == AGS_ERR_EXISTS) {
		/* A refused duplicate: the link's hello said why; its data is dropped unread. */
		ags_quic_conn_close(l->conn, code, reason);
	} else if (rv) {
		/* An agent's session knows it by its token's sub. */
		const char *who = l->peer ? l->peer->id : ags_sync_peer_id(l->sync);
		if (code == AGS_APP_AUTH_FAILED && l->ops->refuse) {
			/* The kind refuses it its own way (a hub: counted, reported, ERROR). */
			l->closing = 1;
			l->ops->refuse(l, code, reason);
			return;
		}
		ags_node_log(n, AGS_LOG_WARN, "closing connection with %s: %s (%s)", who, reason,
		             ags_app_error_name(code));
		if (l->peer && code != AGS_APP_NO_ERROR) {
			/* One error per closed connection: the close does not count it again. */
			l->error_counted = 1;
			ags_node_peer_error(n, l->peer, reason);
		}
		ags_node_link_close(l, code, reason);
	}
}

/* ---- handshake pressure ---- */

/* How often at most the handshake budget's counters are logged. */
#define HS_LOG_MS 10000

void ags_node_link_tick(struct ags_node *n, uint64_t now_ms)
{
	uint64_t held = ags_repeat_flush(&n->refusal_lines, AGS_REFUSAL_WINDOW_MS, now_ms);
	if (held)
		ags_node_log(n, AGS_LOG_WARN, "%llu more refusals in the last %u s were not logged",
		             (unsigned long long)held, AGS_REFUSAL_WINDOW_MS / 1000);
	if (!n->ep || now_ms < n->hs_log_at_ms)
		return;
	ags_quic_ep_stats s, *o = &n->hs_logged;
	ags_quic_ep_get_stats(n->ep, &s);
	uint64_t retries = s.retries_sent - o->retries_sent,
	         timed_out = s.hs_timed_out - o->hs_timed_out,
	         evicted = s.hs_evicted - o->hs_evicted,
	         by_addr = s.hs_refused_addr - o->hs_refused_addr,
	         full = s.refused_max_conns - o->refused_max_conns,
	         bad = s.bad_tokens - o->bad_tokens;
	if (!timed_out && !evicted && !by_addr && !full && !bad &&
	    (n->cfg.stateless_retry || !retries))
		return;
	ags_node_log(n, AGS_LOG_WARN,
	             "handshake pressure: %llu of %llu incoming handshakes in progress; since "
	             "the last report %llu answered with Retry, %llu half-open timed out, %llu "
	             "dropped (budget full), %llu refused (too many from one address), %llu bad "
	             "Retry tokens, %llu refused (max connections)",
	             (unsigned long long)s.handshakes, (unsigned long long)s.handshakes_max,
	             (unsigned long long)retries, (unsigned long long)timed_out,
	             (unsigned long long)evicted, (unsigned long long)by_addr,
	             (unsigned long long)bad, (unsigned long long)full);
	*o = s;
	n->hs_log_at_ms = now_ms + HS_LOG_MS;
}

/* ---- transport callbacks ---- */

static void q_connected(void *ud, ags_quic_conn *c, const char *peer_id, const char *addr)
{
	struct ags_node *n = ud;
	struct ags_link *l = ags_quic_conn_user_data(c);
	if (!l) {
		/* Incoming: a link of the kind this node accepts (none for an agent). */
		if (!n->incoming_ops) {
			ags_quic_conn_close(c, AGS_APP_AUTH_FAILED,
			                    "this agent accepts no connections");
			return;
		}
		l = ags_node_link_new(n, c, 0, n->incoming_ops, n->incoming_owner);
		if (!l) {
			ags_quic_conn_close(c, AGS_APP_INTERNAL_ERROR, "out of memory");
			return;
		}
		ags_quic_conn_set_user_data(c, l);
		l->established = 1;
	}
	l->ops->connected(l, peer_id, addr);
}

static void q_refused(void *ud, ags_quic_conn *c, const char *addr, const char *reason)
{
	struct ags_node *n = ud;
	struct ags_link *l = c ? ags_quic_conn_user_data(c) : NULL;
	ags_event ev = {.type = AGS_EV_CONNECTION_REFUSED,
	                .peer_id = l && l->peer ? l->peer->id : NULL,
	                .address = addr,
	                .error = reason};
	uint64_t held;
	if (ags_repeat_take(&n->refusal_lines, reason, AGS_REFUSAL_LINES, AGS_REFUSAL_WINDOW_MS,
	                    ags_mono_ms(), &held)) {
		if (held)
			ags_node_log(n, AGS_LOG_WARN,
			             "%llu more refusals in the last %u s were not logged",
			             (unsigned long long)held, AGS_REFUSAL_WINDOW_MS / 1000);
		ags_node_log(n, AGS_LOG_WARN, "refused %s%s%s: %s", addr ? addr : "?",
		             ev.peer_id ? " peer " : "", ev.peer_id ? ev.peer_id : "", reason);
	}
	/* Certificates from two CAs: the cure is always the same; say it once. */
	if (!n->ca_hint_said && (strstr(reason, "unknown CA") || strstr(reason, "unknown_ca"))) {
		n->ca_hint_said = 1;
		ags_node_log(
		    n, AGS_LOG_WARN,
		    "%s%s and this node have certificates from different CAs: every node "
		    "needs the same CA file (quic.tls.ca) and a certificate it signed, e.g. "
		    "make them all with one `agentsync certs init --dir DIR --nodes "
		    "a,b,...` and copy DIR/ca.pem with each node's two files to it",
		    ev.peer_id ? "peer " : "",
		    ev.peer_id ? ev.peer_id
		    : addr     ? addr
		               : "a peer");
	}
	ags_node_emit(n, &ev);
	if (l && l->peer) {
		l->error_counted = 1;
		ags_node_peer_error(n, l->peer, reason);
	}
}

/* A dial got no complete answer in time: not a refusal, but a failure of the attempt. */
static void q_handshake_timeout(void *ud, ags_quic_conn *c, const char *addr)
{
	struct ags_node *n = ud;
	struct ags_link *l = c ? ags_quic_conn_user_data(c) : NULL;
	char why[128];
	snprintf(why, sizeof(why), "no answer within the handshake timeout (%u ms)",
	         n->cfg.handshake_timeout_ms);
	ags_event ev = {.type = AGS_EV_CONNECTION_TIMEOUT,
	                .peer_id = l && l->peer ? l->peer->id : NULL,
	                .address = addr,
	                .error = why};
	ags_node_emit(n, &ev);
	if (l && l->peer) {
		l->error_counted = 1;
		ags_node_peer_error(n, l->peer, why);
	}
}

static void q_closed(void *ud, ags_quic_conn *c, uint64_t code, const char *reason, int by_peer)
{
	(void)ud;
	struct ags_link *l = ags_quic_conn_user_data(c);
	if (!l)
		return;
	l->ops->closed(l, code, reason, by_peer);
	ags_node_link_free(l);
}

static void q_stream_open(void *ud, ags_quic_conn *c, int64_t sid)
{
	(void)ud;
	struct ags_link *l = ags_quic_conn_user_data(c);
	if (!l) {
		ags_quic_stream_reset(c, sid, AGS_APP_PROTOCOL_ERROR);
		return;
	}
	l->ops->stream_open(l, sid);
}

static void q_stream_data(void *ud, ags_quic_conn *c, int64_t sid, const uint8_t *data, size_t len,
                          int fin)
{
	(void)ud;
	struct ags_link *l = ags_quic_conn_user_data(c);
	if (l && !l->sync && sid == l->sid && l->ops->data) {
		size_t used = 0;
		int rv = l->ops->data(l, data, len, &used);
		if (rv || !l->sync) {
			ags_quic_stream_consume(c, sid, len);
			return;
		}
		/* The session exists now: the rest of this chunk is its. */
		ags_quic_stream_consume(c, sid, used);
		data += used;
		len -= used;
	}
	if (!l || !l->sync || sid != l->sid) {
		ags_quic_stream_consume(c, sid, len);
		return;
	}
	ags_node_link_data(l, data, len);
	ags_quic_stream_consume(c, sid, len);
	if (fin)
		ags_quic_conn_close(c, AGS_APP_NO_ERROR, "stream finished");
}

static void q_stream_close(void *ud, ags_quic_conn *c, int64_t sid, uint64_t code)
{
	(void)ud;
	(void)code;
	struct ags_link *l = ags_quic_conn_user_data(c);
	if (l && sid == l->sid)
		ags_quic_conn_close(c, AGS_APP_PROTOCOL_ERROR, "sync stream closed");
}

static void q_writable(void *ud, ags_quic_conn *c)
{
	(void)ud;
	struct ags_link *l = ags_quic_conn_user_data(c);
	if (!l)
		return;
	if (l->sid < 0 && l->outgoing && l->established)
		ags_node_link_start_stream(l);
	link_flush(l);
	ags_node_link_pump(l, ags_mono_us());
	if (l->ops->writable)
		l->ops->writable(l);
}

/* The peer refused our 0-RTT data: the stream and what we wrote are gone; redo after the
 * handshake. */
static void q_early_rejected(void *ud, ags_quic_conn *c)
{
	struct ags_node *n = ud;
	struct ags_link *l = ags_quic_conn_user_data(c);
	if (!l)
		return;
	ags_node_log(n, AGS_LOG_INFO, "early data rejected by %s; resending after the handshake",
	             l->peer ? l->peer->id : "?");
	l->early = 0;
	if (l->sync) {
		ags_sync_del(l->sync);
		l->sync = NULL;
	}
	ags_node_link_drop_pending(l);
	l->sid = -1;
}

const ags_quic_callbacks ags_node_quic_callbacks = {
    .version = AGS_QUIC_CALLBACKS_VERSION,
    .on_connected = q_connected,
    .on_refused = q_refused,
    .on_closed = q_closed,
    .on_stream_open = q_stream_open,
    .on_stream_data = q_stream_data,
    .on_stream_close = q_stream_close,
    .on_writable = q_writable,
    .on_early_data_rejected = q_early_rejected,
    .on_read_pause = ags_node_deliver,
    .on_handshake_timeout = q_handshake_timeout,
};
