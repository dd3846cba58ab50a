/*
 * The node's loop-thread side: peers and their connections (transport
 * callbacks), reconnection with backoff, health, housekeeping, and the glue
 * between connections and sync sessions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "clock.h"
#include "error.h"
#include "frame.h"
#include "hub.h"
#include "node_int.h"
#include "store.h"

/*
 * How long a batch that only moves a peer's cursor over changes it does not
 * get (what came from it) waits for one with content to carry it: a node
 * that receives a stream does not answer every batch with one of its own.
 * The node's tick (50 ms) sends it when due.
 */
#define CURSOR_DELAY_US 100000

/* ---- peers ---- */

struct ags_peer *ags_node_peer_find(struct ags_node *n, const char *id)
{
	for (size_t i = 0; i < n->n_peers; i++)
		if (strcmp(n->peers[i]->id, id) == 0)
			return n->peers[i];
	return NULL;
}

struct ags_peer *ags_node_peer_add(struct ags_node *n, const char *id, const char *address,
                                   uint16_t port, int dial)
{
	if (n->n_peers == n->cap_peers) {
		size_t cap = n->cap_peers ? n->cap_peers * 2 : 8;
		struct ags_peer **pp = realloc(n->peers, cap * sizeof(*pp));
		if (!pp)
			return NULL;
		n->peers = pp;
		n->cap_peers = cap;
	}
	struct ags_peer *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	snprintf(p->id, sizeof(p->id), "%s", id);
	p->address = address ? strdup(address) : NULL;
	if (address && !p->address) {
		free(p);
		return NULL;
	}
	p->port = port;
	p->dial = dial;
	n->peers[n->n_peers++] = p;
	return p;
}

static void link_detach(struct ags_link *l);

void ags_node_peer_remove(struct ags_node *n, struct ags_peer *p)
{
	if (p->link) {
		struct ags_link *l = p->link;
		link_detach(l);
		ags_quic_conn_close(l->conn, 0, "peer removed");
	}
	if (p->dialing) {
		struct ags_link *l = p->dialing;
		link_detach(l);
		ags_quic_conn_close(l->conn, 0, "peer removed");
	}
	for (size_t i = 0; i < n->n_peers; i++) {
		if (n->peers[i] == p) {
			memmove(&n->peers[i], &n->peers[i + 1],
			        (n->n_peers - i - 1) * sizeof(*n->peers));
			n->n_peers--;
			break;
		}
	}
	ags_sync_resume_free(&p->resume);
	free(p->address);
	free(p);
}

/* ---- errors, backoff, health ---- */

static void peer_state_json(struct ags_peer *p, char *buf, size_t cap)
{
	snprintf(buf, cap,
	         "{\"connected\":%s,\"errorCount\":%llu,\"consecutiveErrors\":%llu,"
	         "\"degraded\":%s,\"down\":%s}",
	         p->link ? "true" : "false", (unsigned long long)p->error_count,
	         (unsigned long long)p->consecutive_errors, p->degraded ? "true" : "false",
	         p->down ? "true" : "false");
}

static void check_health(struct ags_node *n, struct ags_peer *p)
{
	char st[256];
	if (!p->degraded && p->consecutive_errors >= n->cfg.degrade_after_errors) {
		p->degraded = 1;
		peer_state_json(p, st, sizeof(st));
		ags_event ev = {.type = AGS_EV_PEER_HEALTH_DEGRADED,
		                .peer_id = p->id,
		                .state = st,
		                .error = p->last_error};
		ags_node_log(n, AGS_LOG_WARN, "peer %s degraded after %llu errors", p->id,
		             (unsigned long long)p->consecutive_errors);
		ags_node_emit(n, &ev);
	} else if (p->degraded && p->consecutive_errors == 0) {
		p->degraded = 0;
		peer_state_json(p, st, sizeof(st));
		ags_event ev = {
		    .type = AGS_EV_PEER_HEALTH_RECOVERED, .peer_id = p->id, .state = st};
		ags_node_log(n, AGS_LOG_INFO, "peer %s recovered", p->id);
		ags_node_emit(n, &ev);
	}
}

void ags_node_peer_error(struct ags_node *n, struct ags_peer *p, const char *error)
{
	p->error_count++;
	p->consecutive_errors++;
	snprintf(p->last_error, sizeof(p->last_error), "%s", error);
	ags_event ev = {.type = AGS_EV_PEER_ERROR, .peer_id = p->id, .error = error};
	ags_node_emit(n, &ev);
	check_health(n, p);
}

static void peer_ok(struct ags_node *n, struct ags_peer *p)
{
	p->consecutive_errors = 0;
	check_health(n, p);
}

void ags_node_peer_retry(struct ags_node *n, struct ags_peer *p)
{
	if (!p->dial)
		return;
	p->attempts++;
	ags_backoff_cfg bc = {n->cfg.retry.max_attempts, n->cfg.retry.base_delay_ms,
	                      n->cfg.retry.max_delay_ms, n->cfg.retry.backoff_multiplier};
	uint32_t rnd;
	gnutls_rnd(GNUTLS_RND_NONCE, &rnd, sizeof(rnd));
	uint32_t d = ags_backoff_delay_ms(&bc, p->attempts, rnd);
	p->retry_at_ms = ags_mono_ms() + d;
	if (ags_backoff_is_down(&bc, p->attempts) && !p->down) {
		p->down = 1;
		ags_node_log(n, AGS_LOG_WARN,
		             "peer %s marked down after %u attempts; retrying every %u ms", p->id,
		             p->attempts - 1, n->cfg.retry.max_delay_ms);
	}
	ags_node_log(n, AGS_LOG_DEBUG, "peer %s: attempt %u in %u ms", p->id, p->attempts + 1, d);
}

/* ---- links ---- */

struct ags_link *ags_node_link_new(struct ags_node *n, ags_quic_conn *c, int outgoing)
{
	struct ags_link *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->node = n;
	l->conn = c;
	l->sid = -1;
	l->outgoing = outgoing;
	return l;
}

static void peer_absorb_stats(struct ags_node *n, struct ags_peer *p, struct ags_link *l)
{
	if (l->sync) {
		ags_sync_stats ss;
		ags_sync_get_stats(l->sync, &ss);
		if (p) {
			p->base_acked += ss.batches_acked;
			p->base_failed += ss.batches_failed;
			p->base_applied += ss.patterns_applied;
			p->base_patterns_acked += ss.patterns_acked;
			p->base_conflicts += ss.conflicts;
			if (ss.acked_seq > p->acked_seq)
				p->acked_seq = ss.acked_seq;
		}
		n->base_acked += ss.batches_acked;
		n->base_failed += ss.batches_failed;
		n->base_raw_out += ss.raw_bytes_out;
		n->base_wire_out += ss.wire_bytes_out;
		n->base_wire_in += ss.wire_bytes_in;
		n->base_latency_sum += ss.latency_sum_ms;
	}
	if (l->conn && p) {
		ags_quic_info qi;
		ags_quic_conn_info(l->conn, &qi);
		p->base_bytes_in += qi.bytes_in;
		p->base_bytes_out += qi.bytes_out;
	}
}

/* Separates a link from its peer (the connection is being closed). */
static void link_detach(struct ags_link *l)
{
	struct ags_peer *p = l->peer;
	if (!p)
		return;
	peer_absorb_stats(l->node, p, l);
	if (l->sync) {
		if (p->link == l)
			ags_sync_resume_save(l->sync, &p->resume);
		ags_sync_del(l->sync);
		l->sync = NULL;
	}
	if (p->link == l)
		p->link = NULL;
	if (p->dialing == l)
		p->dialing = NULL;
	l->peer = NULL;
}

void ags_node_link_free(struct ags_link *l)
{
	if (l->sync)
		ags_sync_del(l->sync);
	while (l->pend_head) {
		struct ags_pending *q = l->pend_head;
		l->pend_head = q->next;
		free(q->frame);
		free(q);
	}
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

static void host_event(void *ud, const ags_event *ev)
{
	struct ags_node *n = ud;
	ags_event e;
	if (n->hub && !ev->tenant) {
		/* In hub mode the node's own store is the store of its tenant. */
		e = *ev;
		e.tenant = n->cfg.tenant;
		ev = &e;
	}
	if (ev->type == AGS_EV_SYNC_COMPLETED && ev->peer_id) {
		struct ags_peer *p = ags_node_peer_find(n, ev->peer_id);
		if (p)
			peer_ok(n, p);
	} else if (ev->type == AGS_EV_SYNC_FAILED && ev->peer_id) {
		struct ags_peer *p = ags_node_peer_find(n, ev->peer_id);
		if (p) {
			p->error_count++;
			p->consecutive_errors++;
			snprintf(p->last_error, sizeof(p->last_error), "%s",
			         ev->error ? ev->error : "sync failed");
			check_health(n, p);
		}
	}
	ags_node_emit(n, ev);
}

static void host_changed(void *ud, void *session_ud)
{
	struct ags_node *n = ud;
	(void)session_ud;
	if (n->delivering)
		n->pump_due = 1;
	else
		ags_node_pump_all(n);
}

void ags_node_host_log(void *ud, int level, const char *msg)
{
	ags_node_log(ud, level, "%s", msg);
}

int64_t ags_node_host_wall_ms(void *ud)
{
	(void)ud;
	return ags_now_ms();
}

static void announce(struct ags_node *n, struct ags_link *l)
{
	if (l->announced || !l->peer)
		return;
	l->announced = 1;
	ags_event ev = {.type = AGS_EV_PEER_CONNECTED,
	                .peer_id = l->peer->id,
	                .address = ags_quic_conn_peer_addr(l->conn)};
	ags_node_log(n, AGS_LOG_INFO, "accepted %s %s from %s (%s)",
	             l->outgoing ? "connection to" : "connection of", l->peer->id,
	             ags_quic_conn_peer_addr(l->conn), l->outgoing ? "outgoing" : "incoming");
	ags_node_emit(n, &ev);
}

/*
 * The peer's HELLO names its process instance. Two live connections to one
 * peer can exist (both dialled at once, or the peer restarted and the old
 * connection has not timed out yet). Keep one: a connection from a newer
 * instance replaces an older one; between two of the same instance keep the
 * one dialled by the smaller node id, as the peer does too.
 */
static int host_hello(void *ud, void *session_ud, const char *instance)
{
	struct ags_node *n = ud;
	struct ags_link *l = session_ud;
	struct ags_peer *p = l->peer;
	if (l->role == AGS_LINK_AGENT)
		return n->hub ? ags_hub_hello(n->hub, l, instance) : -1;
	snprintf(l->instance, sizeof(l->instance), "%s", instance ? instance : "");
	if (!p)
		return -1;
	struct ags_link *o = p->link;
	if (o && o != l) {
		int same = o->instance[0] && strcmp(o->instance, l->instance) == 0;
		int keep_new = 1;
		if (same) {
			/* Keep the connection dialled by min(our id, peer id). */
			const char *dialer_new = l->outgoing ? n->node_id : p->id;
			const char *minid = strcmp(n->node_id, p->id) < 0 ? n->node_id : p->id;
			keep_new = strcmp(dialer_new, minid) == 0;
		}
		if (!keep_new) {
			if (p->dialing == l)
				p->dialing = NULL;
			l->peer = NULL;
			return -1;
		}
		link_detach(o);
		ags_quic_conn_close(o->conn, AGS_APP_NO_ERROR, "replaced by a newer connection");
	}
	if (p->dialing == l)
		p->dialing = NULL;
	p->link = l;
	p->attempts = 0;
	p->down = 0;
	peer_ok(n, p);
	announce(n, l);
	if (l->role == AGS_LINK_UPSTREAM)
		ags_node_upstream_ready(n, l);
	return 0;
}

static void host_pulled(void *ud, void *session_ud)
{
	(void)session_ud;
	ags_node_upstream_step(ud);
}

void ags_node_sync_host_init(struct ags_node *n)
{
	ags_sync_host *h = &n->host;
	memset(h, 0, sizeof(*h));
	h->store = n->store;
	h->store_mu = &n->store_mu;
	h->log_store = n->lstore;
	h->cursor_delay_us = CURSOR_DELAY_US;
	h->node_id = n->node_id;
	h->store_id = n->store_id;
	h->tenant = n->cfg.tenant;
	h->batch_size = n->cfg.batch_size;
	h->window = n->cfg.window;
	h->compression = n->cfg.compression;
	h->max_frame = n->cfg.max_frame_bytes;
	h->max_pattern = n->cfg.max_pattern_bytes;
	h->rate_patterns_per_s = n->cfg.rate_patterns_per_s;
	h->rate_bytes_per_s = n->cfg.rate_bytes_per_s;
	h->filter_types = n->cfg.filter_types;
	h->n_filter_types = n->cfg.n_filter_types;
	h->filter_tags = n->cfg.filter_tags;
	h->n_filter_tags = n->cfg.n_filter_tags;
	h->ud = n;
	h->send = ags_node_host_send;
	h->event = host_event;
	h->changed = host_changed;
	h->hello = host_hello;
	h->log = ags_node_host_log;
	h->wall_ms = ags_node_host_wall_ms;
	h->instance = n->instance;
	h->clock = n->clock;
	h->cache = &n->cache;
	h->recent = ags_node_recent_rows;
	h->pulled = host_pulled;
}

static int link_start_sync(struct ags_node *n, struct ags_link *l)
{
	if (l->role == AGS_LINK_UPSTREAM)
		return ags_node_upstream_start(n, l);
	ags_sync_opts o = {.role = AGS_SYNC_ROLE_PEER,
	                   .resume = l->early ? &l->peer->resume : NULL};
	int rv = ags_sync_new_ex(&n->host, l->peer->id, &o, l, &l->sync);
	if (rv) {
		ags_quic_conn_close(l->conn, AGS_APP_INTERNAL_ERROR, "out of memory");
		return rv;
	}
	ags_sync_start(l->sync, ags_mono_us());
	return 0;
}

/* Opens the sync stream of an outgoing link and starts its session (again on_writable). */
static void link_start_stream(struct ags_node *n, struct ags_link *l)
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
	link_start_sync(n, l);
}

/* ---- transport callbacks ---- */

static void q_connected(void *ud, ags_quic_conn *c, const char *peer_id, const char *addr)
{
	struct ags_node *n = ud;
	struct ags_link *l = ags_quic_conn_user_data(c);
	if (!l) {
		/* Incoming. */
		if (n->agent_mode) {
			ags_quic_conn_close(c, AGS_APP_AUTH_FAILED,
			                    "this agent accepts no connections");
			return;
		}
		l = ags_node_link_new(n, c, 0);
		if (!l) {
			ags_quic_conn_close(c, AGS_APP_INTERNAL_ERROR, "out of memory");
			return;
		}
		ags_quic_conn_set_user_data(c, l);
		l->established = 1;
		if (n->hub) {
			/* An agent: who it is comes from its token, not its certificate. */
			ags_hub_on_connected(n->hub, l);
			return;
		}
		struct ags_peer *p = ags_node_peer_find(n, peer_id);
		if (!p)
			p = ags_node_peer_add(n, peer_id, NULL, 0, 0);
		if (!p) {
			ags_quic_conn_close(c, AGS_APP_INTERNAL_ERROR, "out of memory");
			return;
		}
		l->peer = p;
	} else if (l->role == AGS_LINK_UPSTREAM && l->peer && !l->peer->id_known) {
		/* A hub dialled without an expected id: from now on it is this one. */
		snprintf(l->peer->id, sizeof(l->peer->id), "%s", peer_id);
		l->peer->id_known = 1;
	} else if (l->peer && strcmp(l->peer->id, peer_id) != 0) {
		/* TLS verified the expected id; this cannot differ. */
		ags_quic_conn_close(c, AGS_APP_INTERNAL_ERROR, "peer id mismatch");
		return;
	}
	l->established = 1;
	ags_node_log(n, AGS_LOG_DEBUG, "handshake done with %s at %s", peer_id, addr);
	if (l->outgoing && l->sid < 0)
		link_start_stream(n, l);
}

static void q_refused(void *ud, ags_quic_conn *c, const char *addr, const char *reason)
{
	struct ags_node *n = ud;
	struct ags_link *l = c ? ags_quic_conn_user_data(c) : NULL;
	ags_event ev = {.type = AGS_EV_CONNECTION_REFUSED,
	                .peer_id = l && l->peer ? l->peer->id : NULL,
	                .address = addr,
	                .error = reason};
	ags_node_log(n, AGS_LOG_WARN, "refused %s%s%s: %s", addr ? addr : "?",
	             ev.peer_id ? " peer " : "", ev.peer_id ? ev.peer_id : "", reason);
	ags_node_emit(n, &ev);
	if (l && l->peer) {
		l->error_counted = 1;
		ags_node_peer_error(n, l->peer, reason);
	}
}

static void q_closed(void *ud, ags_quic_conn *c, uint64_t code, const char *reason, int by_peer)
{
	struct ags_node *n = ud;
	struct ags_link *l = ags_quic_conn_user_data(c);
	if (!l)
		return;
	if (l->role == AGS_LINK_AGENT) {
		if (n->hub && l->announced) {
			char err[320];
			snprintf(err, sizeof(err), "%s (code 0x%llx, by %s)",
			         reason && *reason ? reason : "closed", (unsigned long long)code,
			         by_peer ? "agent" : "us");
			ags_event ev = {.type = AGS_EV_PEER_DISCONNECTED,
			                .peer_id = l->agent_id,
			                .error = err,
			                .tenant = ags_hub_tenant_name(l->tenant)};
			ags_node_log(n, AGS_LOG_INFO, "agent %s disconnected: %s", l->agent_id,
			             err);
			ags_node_emit(n, &ev);
		}
		if (n->hub)
			ags_hub_on_closed(n->hub, l);
		ags_node_link_free(l);
		return;
	}
	struct ags_peer *p = l->peer;
	if (p && p->upstream && (p->link == l || p->dialing == l))
		ags_node_upstream_closed(n, l, code, reason);
	if (p) {
		int was_active = p->link == l;
		int was_dialing = p->dialing == l;
		link_detach(l);
		if (was_active && l->announced) {
			char err[320];
			snprintf(err, sizeof(err), "%s (code 0x%llx, by %s)",
			         reason && *reason ? reason : "closed", (unsigned long long)code,
			         by_peer ? "peer" : "us");
			ags_event ev = {
			    .type = AGS_EV_PEER_DISCONNECTED, .peer_id = p->id, .error = err};
			ags_node_log(n, AGS_LOG_INFO, "peer %s disconnected: %s", p->id, err);
			ags_node_emit(n, &ev);
			if (code != AGS_APP_NO_ERROR && code != AGS_APP_SHUTTING_DOWN)
				ags_node_peer_error(n, p, err);
		} else if (was_dialing && !l->established && !l->error_counted) {
			ags_node_peer_error(n, p, reason && *reason ? reason : "connection failed");
		}
		if ((was_active || was_dialing) && !p->link && !p->dialing)
			ags_node_peer_retry(n, p);
	}
	ags_node_link_free(l);
}

static void q_stream_open(void *ud, ags_quic_conn *c, int64_t sid)
{
	struct ags_node *n = ud;
	struct ags_link *l = ags_quic_conn_user_data(c);
	if (l && l->role == AGS_LINK_AGENT && l->sid < 0) {
		l->sid = sid; /* the session starts once AUTH is accepted */
		return;
	}
	if (!l || l->outgoing || l->sid >= 0 || !l->peer) {
		ags_quic_stream_reset(c, sid, AGS_APP_PROTOCOL_ERROR);
		return;
	}
	l->sid = sid;
	link_start_sync(n, l);
}

void ags_node_link_data(struct ags_node *n, struct ags_link *l, const uint8_t *data, size_t len)
{
	uint64_t code = 0;
	char reason[200] = "";
	int rv = ags_sync_on_data(l->sync, data, len, ags_mono_us(), &code, reason, sizeof(reason));
	if (rv) {
		const char *who = l->peer ? l->peer->id : l->agent_id[0] ? l->agent_id : "?";
		ags_node_log(n, AGS_LOG_WARN, "closing connection with %s: %s (%s)", who, reason,
		             ags_app_error_name(code));
		if (l->peer)
			ags_node_peer_error(n, l->peer, reason);
		ags_quic_conn_close(l->conn, code, reason);
	}
}

static void q_stream_data(void *ud, ags_quic_conn *c, int64_t sid, const uint8_t *data, size_t len,
                          int fin)
{
	struct ags_node *n = ud;
	struct ags_link *l = ags_quic_conn_user_data(c);
	if (l && l->role == AGS_LINK_AGENT && !l->sync && sid == l->sid && n->hub) {
		size_t used = 0;
		int rv = ags_hub_preauth(n->hub, l, data, len, &used);
		if (rv || !l->sync) {
			ags_quic_stream_consume(c, sid, len);
			return;
		}
		/* AUTH accepted: the rest of this chunk is the session's. */
		ags_quic_stream_consume(c, sid, used);
		data += used;
		len -= used;
	}
	if (!l || !l->sync || sid != l->sid) {
		ags_quic_stream_consume(c, sid, len);
		return;
	}
	ags_node_link_data(n, l, data, len);
	ags_quic_stream_consume(c, sid, len);
	if (fin)
		ags_quic_conn_close(c, AGS_APP_NO_ERROR, "stream finished");
}

static void q_stream_close(void *ud, ags_quic_conn *c, int64_t sid, uint64_t code)
{
	struct ags_link *l = ags_quic_conn_user_data(c);
	(void)ud;
	if (l && sid == l->sid)
		ags_quic_conn_close(c, AGS_APP_PROTOCOL_ERROR, "sync stream closed");
}

static void q_writable(void *ud, ags_quic_conn *c)
{
	struct ags_link *l = ags_quic_conn_user_data(c);
	if (l) {
		if (l->sid < 0 && l->outgoing && l->established)
			link_start_stream(ud, l);
		link_flush(l);
		if (l->sync && !l->pend_head)
			ags_sync_pump(l->sync, ags_mono_us());
		if (l->role == AGS_LINK_UPSTREAM)
			ags_node_upstream_step(ud);
	}
}

/* The hub refused our 0-RTT data: the stream and what we wrote are gone; redo after the handshake.
 */
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
	while (l->pend_head) {
		struct ags_pending *q = l->pend_head;
		l->pend_head = q->next;
		free(q->frame);
		free(q);
	}
	l->pend_tail = NULL;
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
};

/* ---- housekeeping ---- */

static void dial(struct ags_node *n, struct ags_peer *p)
{
	if (p->upstream) {
		ags_node_upstream_dial(n, p);
		return;
	}
	struct ags_link *l = ags_node_link_new(n, NULL, 1);
	if (!l)
		return;
	l->peer = p;
	ags_error err;
	ags_error_clear(&err);
	int rv = ags_quic_connect(n->ep, p->address, p->port, p->id, l, &l->conn, &err);
	if (rv) {
		free(l);
		char msg[320];
		snprintf(msg, sizeof(msg), "cannot connect to %s:%u: %s", p->address, p->port,
		         err.message[0] ? err.message : ags_strerror(rv));
		ags_node_peer_error(n, p, msg);
		ags_node_peer_retry(n, p);
		return;
	}
	p->dialing = l;
	ags_quic_info qi;
	ags_quic_conn_info(l->conn, &qi);
	if (qi.early_data_possible && p->resume.valid) {
		/* A resumed session: HELLO and the first batches go in 0-RTT (they are
		 * idempotent, and never move the peer's cursor before its HELLO). */
		l->early = 1;
		link_start_stream(n, l);
		if (l->sync)
			ags_sync_pump(l->sync, ags_mono_us());
		ags_node_log(n, AGS_LOG_INFO, "resuming with %s in 0-RTT from its cursor %llu",
		             p->id, (unsigned long long)p->resume.acked_seq);
	}
}

void ags_node_pump_all(struct ags_node *n)
{
	uint64_t now = ags_mono_us();
	for (size_t i = 0; i < n->n_peers; i++) {
		struct ags_link *l = n->peers[i]->link;
		if (l && l->sync && !l->pend_head)
			ags_sync_pump(l->sync, now);
		/* A resumed connection still in its handshake sends in 0-RTT. */
		l = n->peers[i]->dialing;
		if (l && l->sync && !l->pend_head)
			ags_sync_pump(l->sync, now);
	}
	if (n->hub)
		ags_hub_pump_default(n->hub);
	if (n->up)
		ags_node_upstream_step(n);
}

void ags_node_tick(struct ags_node *n)
{
	uint64_t now = ags_mono_ms();
	for (size_t i = 0; i < n->n_peers; i++) {
		struct ags_peer *p = n->peers[i];
		if (p->dial && !p->link && !p->dialing && p->retry_at_ms <= now && p->address)
			dial(n, p);
	}
	ags_node_pump_all(n);
	/* While the log is being sent the store is not idle: no checkpoint yet. */
	for (size_t i = 0; i < n->n_peers; i++) {
		struct ags_link *l = n->peers[i]->link;
		if (l && l->sync && ags_sync_sending(l->sync)) {
			ags_store_ckpt_defer(n->store);
			break;
		}
	}
	int sweep = now >= n->next_sweep_ms;
	if (n->hub)
		ags_hub_tick(n->hub, now, sweep);
	if (now >= n->next_health_ms) {
		n->next_health_ms = now + n->cfg.health_interval_ms;
		for (size_t i = 0; i < n->n_peers; i++)
			check_health(n, n->peers[i]);
	}
	if (now >= n->next_sweep_ms) {
		n->next_sweep_ms = now + n->cfg.sweep_interval_ms;
		uint64_t purged = 0;
		pthread_mutex_lock(&n->store_mu);
		int rv = ags_store_sweep(n->store, ags_now_ms(), &purged);
		pthread_mutex_unlock(&n->store_mu);
		if (rv)
			ags_node_log(n, AGS_LOG_ERROR, "expiry sweep failed: %s", ags_strerror(rv));
		else if (purged)
			ags_node_log(n, AGS_LOG_INFO, "expiry sweep purged %llu patterns",
			             (unsigned long long)purged);
	}
}

void ags_node_close_all(struct ags_node *n)
{
	if (n->hub)
		ags_hub_close_all(n->hub);
	for (size_t i = 0; i < n->n_peers; i++) {
		struct ags_peer *p = n->peers[i];
		if (p->link)
			ags_quic_conn_close(p->link->conn, AGS_APP_SHUTTING_DOWN,
			                    "node shutting down");
	}
	/* Sends CONNECTION_CLOSE, runs on_closed for every connection, closes handles. */
	ags_quic_ep_del(n->ep);
	n->ep = NULL;
}

void ags_node_fill_state(struct ags_node *n, ags_node_state *st)
{
	st->running = 1;
	st->peers = calloc(n->n_peers ? n->n_peers : 1, sizeof(*st->peers));
	uint64_t acked = n->base_acked, failed = n->base_failed;
	uint64_t raw_out = n->base_raw_out, wire_out = n->base_wire_out, wire_in = n->base_wire_in;
	double lat = n->base_latency_sum;
	for (size_t i = 0; i < n->n_peers; i++) {
		struct ags_peer *p = n->peers[i];
		ags_peer_state *ps = st->peers ? &st->peers[i] : NULL;
		ags_sync_stats ss;
		memset(&ss, 0, sizeof(ss));
		ags_quic_info qi;
		memset(&qi, 0, sizeof(qi));
		if (p->link && p->link->sync)
			ags_sync_get_stats(p->link->sync, &ss);
		if (p->link)
			ags_quic_conn_info(p->link->conn, &qi);
		acked += ss.batches_acked;
		failed += ss.batches_failed;
		raw_out += ss.raw_bytes_out;
		wire_out += ss.wire_bytes_out;
		wire_in += ss.wire_bytes_in;
		lat += ss.latency_sum_ms;
		if (p->link && p->link->announced)
			st->connections++;
		if (!ps)
			continue;
		snprintf(ps->id, sizeof(ps->id), "%s", p->id);
		if (p->link)
			snprintf(ps->address, sizeof(ps->address), "%s",
			         ags_quic_conn_peer_addr(p->link->conn));
		else
			snprintf(ps->address, sizeof(ps->address), "%s:%u",
			         p->address ? p->address : "", p->port);
		ps->connected = p->link && p->link->announced;
		ps->degraded = p->degraded;
		ps->sync_count = p->base_acked + ss.batches_acked;
		ps->error_count = p->error_count;
		ps->latency_ms = (double)qi.srtt_us / 1000.0;
		ps->bytes_in = p->base_bytes_in + qi.bytes_in;
		ps->bytes_out = p->base_bytes_out + qi.bytes_out;
		ps->acked_seq = ss.acked_seq > p->acked_seq ? ss.acked_seq : p->acked_seq;
		ps->lag = p->link && p->link->sync ? ags_sync_lag(p->link->sync) : 0;
	}
	st->n_peers = st->peers ? n->n_peers : 0;
	st->stats.successful_syncs = acked;
	st->stats.failed_syncs = failed;
	st->stats.total_syncs = acked + failed;
	st->stats.average_latency_ms = acked ? lat / (double)acked : 0;
	st->stats.bytes_transferred = wire_out + wire_in;
	st->stats.compression_ratio = raw_out ? (double)wire_out / (double)raw_out : 1.0;
	snprintf(st->store.id, sizeof(st->store.id), "%s", n->store_id);
	pthread_mutex_lock(&n->store_mu);
	ags_store_count(n->store, &st->store.patterns);
	st->store.seq = ags_store_seq(n->store);
	ags_store_digest(n->store, st->store.digest);
	pthread_mutex_unlock(&n->store_mu);
}
