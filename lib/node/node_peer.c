/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Mesh peers (ags_node_peer_ops): the peer records of a node (configured or
 * dialled in), their links, reconnection with backoff, health, and their
 * part of the node's state. Upstream links (node_upstream.c) are peers too
 * and use the functions declared for them in node_int.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "clock.h"
#include "error.h"
#include "node_int.h"
#include "node_link.h"

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
	p->ops = &ags_node_peer_ops;
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

void ags_node_peer_check_health(struct ags_node *n, struct ags_peer *p)
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
	ags_node_peer_check_health(n, p);
}

static void peer_ok(struct ags_node *n, struct ags_peer *p)
{
	p->consecutive_errors = 0;
	ags_node_peer_check_health(n, p);
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
			p->base_received += ss.patterns_received;
			if (ss.acked_seq > p->acked_seq)
				p->acked_seq = ss.acked_seq;
		}
		n->base_acked += ss.batches_acked;
		n->base_failed += ss.batches_failed;
		n->base_raw_out += ss.raw_bytes_out;
		n->base_ratio_wire_out += ss.wire_bytes_patterns_out;
		n->base_wire_out += ss.wire_bytes_out;
		n->base_wire_in += ss.wire_bytes_in;
		n->base_latency_sum += ss.latency_sum_ms;
		for (int c = 0; c < AGS_SYNC_CODECS; c++) {
			n->base_codec_out[c] += ss.codec_bytes_out[c];
			n->base_codec_in[c] += ss.codec_bytes_in[c];
		}
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

/* ---- the sync host of the node's own store ---- */

void ags_node_host_event(void *ud, const ags_event *ev)
{
	struct ags_node *n = ud;
	ags_event e;
	if (n->event_tenant && !ev->tenant) {
		/* In hub mode the node's own store is the store of its tenant. */
		e = *ev;
		e.tenant = n->event_tenant;
		ev = &e;
	}
	if (ev->type == AGS_EV_SYNC_COMPLETED && ev->peer_id) {
		struct ags_peer *p = ags_node_peer_find(n, ev->peer_id);
		if (p)
			peer_ok(n, p);
	} else if ((ev->type == AGS_EV_SYNC_REJECTED || ev->type == AGS_EV_STORE_ROLLBACK) &&
	           ev->peer_id) {
		struct ags_peer *p = ags_node_peer_find(n, ev->peer_id);
		if (p && ev->type == AGS_EV_SYNC_REJECTED)
			p->rejected++;
		else if (p)
			p->rollbacks++;
	} else if (ev->type == AGS_EV_SYNC_FAILED && ev->peer_id) {
		struct ags_peer *p = ags_node_peer_find(n, ev->peer_id);
		if (p) {
			p->error_count++;
			p->consecutive_errors++;
			snprintf(p->last_error, sizeof(p->last_error), "%s",
			         ev->error ? ev->error : "sync failed");
			ags_node_peer_check_health(n, p);
		}
	}
	ags_node_emit(n, ev);
}

void ags_node_host_changed(void *ud, void *session_ud)
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
 * Which of two live connections of one peer to keep, once the newer one's
 * HELLO arrived: 1 the new one, 0 the old one. Both ends decide alike.
 *   - another process instance of the peer: the new one (the peer restarted);
 *   - the same instance, dialled by the same side: the new one (that side
 *     dials only when its end of the old one is gone, so the old one is dead);
 *   - the same instance, one dialled by each side (both dialled at once):
 *     the one dialled by the smaller node id.
 */
int ags_node_peer_keep_new(const char *self, const char *peer, int same_instance, int old_outgoing,
                           int new_outgoing)
{
	if (!same_instance || old_outgoing == new_outgoing)
		return 1;
	const char *dialer_new = new_outgoing ? self : peer;
	const char *minid = strcmp(self, peer) < 0 ? self : peer;
	return strcmp(dialer_new, minid) == 0;
}

/* Whether instance `inst` was replaced on this peer before (by another instance). */
static int peer_was_replaced(const struct ags_peer *p, const char *inst)
{
	for (size_t i = 0; i < AGS_PEER_GONE_MAX; i++)
		if (p->gone[i][0] && strcmp(p->gone[i], inst) == 0)
			return 1;
	return 0;
}

static void peer_note_replaced(struct ags_peer *p, const char *inst)
{
	if (!inst[0] || peer_was_replaced(p, inst))
		return;
	snprintf(p->gone[p->n_gone % AGS_PEER_GONE_MAX], sizeof(p->gone[0]), "%s", inst);
	p->n_gone++;
}

/*
 * The peer's HELLO names its process instance. Two live connections to one
 * peer can exist (both dialled at once, the dialler redialled while our end
 * of its old connection lives on, or the peer restarted): keep one, by
 * ags_node_peer_keep_new(). A process replaced by another instance never
 * comes back with its instance id, so when it does, two live processes
 * share the peer's node id: that is said once, loudly, and the newcomer is
 * refused (DUPLICATE_NODE_ID, which makes it back off) instead of the two
 * replacing each other for ever.
 */
int ags_node_peer_hello(struct ags_link *l, const char *instance)
{
	struct ags_node *n = l->node;
	struct ags_peer *p = l->peer;
	snprintf(l->instance, sizeof(l->instance), "%s", instance ? instance : "");
	if (!p)
		return AGS_ERR_EXISTS;
	struct ags_link *o = p->link;
	if (o && o != l) {
		int same = o->instance[0] && strcmp(o->instance, l->instance) == 0;
		if (!same && l->instance[0] && peer_was_replaced(p, l->instance)) {
			if (!p->dup_logged) {
				p->dup_logged = 1;
				ags_node_log(
				    n, AGS_LOG_ERROR,
				    "two processes use node id %s: one at %s (instance %s), "
				    "one at %s (instance %s); keeping the first, refusing "
				    "the other (each node needs its own nodeId and "
				    "certificate)",
				    p->id, ags_quic_conn_peer_addr(o->conn), o->instance,
				    ags_quic_conn_peer_addr(l->conn), l->instance);
			} else {
				ags_node_log(
				    n, AGS_LOG_DEBUG,
				    "refused %s from %s again: node id in use by the process at "
				    "%s",
				    p->id, ags_quic_conn_peer_addr(l->conn),
				    ags_quic_conn_peer_addr(o->conn));
			}
			if (p->dialing == l)
				p->dialing = NULL;
			l->peer = NULL;
			return AGS_ERR_CONFIG;
		}
		if (!ags_node_peer_keep_new(n->node_id, p->id, same, o->outgoing, l->outgoing)) {
			/* Both ends dialled at once: an expected race, not a fault. */
			ags_node_log(n, AGS_LOG_INFO,
			             "%s and %s dialled each other at once: keeping the connection "
			             "dialled by %s, closing the one dialled by %s",
			             n->node_id, p->id, o->outgoing ? n->node_id : p->id,
			             l->outgoing ? n->node_id : p->id);
			if (p->dialing == l)
				p->dialing = NULL;
			l->peer = NULL;
			return AGS_ERR_EXISTS;
		}
		if (!same)
			peer_note_replaced(p, o->instance);
		ags_node_log(n, AGS_LOG_INFO,
		             "%s: a newer connection from %s (%s) replaces the one from %s%s",
		             p->id, ags_quic_conn_peer_addr(l->conn),
		             same ? "same process, redialled" : "a new process",
		             ags_quic_conn_peer_addr(o->conn),
		             same ? " (dead on the dialler's side)" : "");
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
	return 0;
}

/* ---- the kind's operations ---- */

void ags_node_link_established(struct ags_link *l, const char *peer_id, const char *addr)
{
	l->established = 1;
	ags_node_log(l->node, AGS_LOG_DEBUG, "handshake done with %s at %s", peer_id, addr);
	if (l->outgoing && l->sid < 0)
		ags_node_link_start_stream(l);
}

static int peer_start(struct ags_link *l)
{
	ags_sync_opts o = {.role = AGS_SYNC_ROLE_PEER,
	                   .resume = l->early ? &l->peer->resume : NULL};
	int rv = ags_sync_new_ex(&l->node->host, l->peer->id, &o, l, &l->sync);
	if (rv) {
		ags_quic_conn_close(l->conn, AGS_APP_INTERNAL_ERROR, "out of memory");
		return rv;
	}
	ags_sync_start(l->sync, ags_mono_us());
	return 0;
}

static void peer_connected(struct ags_link *l, const char *peer_id, const char *addr)
{
	struct ags_node *n = l->node;
	if (!l->outgoing) {
		struct ags_peer *p = ags_node_peer_find(n, peer_id);
		if (!p)
			p = ags_node_peer_add(n, peer_id, NULL, 0, 0);
		if (!p) {
			ags_quic_conn_close(l->conn, AGS_APP_INTERNAL_ERROR, "out of memory");
			return;
		}
		l->peer = p;
	} else if (l->peer && strcmp(l->peer->id, peer_id) != 0) {
		/* TLS verified the expected id; this cannot differ. */
		ags_quic_conn_close(l->conn, AGS_APP_INTERNAL_ERROR, "peer id mismatch");
		return;
	}
	ags_node_link_established(l, peer_id, addr);
}

void ags_node_peer_stream_open(struct ags_link *l, int64_t sid)
{
	if (l->outgoing || l->sid >= 0 || !l->peer) {
		ags_quic_stream_reset(l->conn, sid, AGS_APP_PROTOCOL_ERROR);
		return;
	}
	l->sid = sid;
	l->ops->start(l);
}

void ags_node_peer_closed(struct ags_link *l, uint64_t code, const char *reason, int by_peer)
{
	struct ags_node *n = l->node;
	struct ags_peer *p = l->peer;
	if (p) {
		int was_active = p->link == l;
		int was_dialing = p->dialing == l;
		link_detach(l);
		if (code == AGS_APP_DUPLICATE_ID && by_peer) {
			/* The peer keeps another process of our node id: back off, say so once. */
			p->dup_refusals++;
			if (!p->dup_logged) {
				p->dup_logged = 1;
				ags_node_log(
				    n, AGS_LOG_ERROR,
				    "peer %s refuses us: another process with node id %s is "
				    "connected to it (%s); retrying with backoff (each node "
				    "needs its own nodeId and certificate)",
				    p->id, n->node_id, reason && *reason ? reason : "");
			}
		} else if (was_active && l->announced) {
			p->dup_refusals = 0;
		}
		if (was_active && l->announced) {
			char err[320];
			snprintf(err, sizeof(err), "%s (code 0x%llx, by %s)",
			         reason && *reason ? reason : "closed", (unsigned long long)code,
			         by_peer ? "peer" : "us");
			ags_event ev = {
			    .type = AGS_EV_PEER_DISCONNECTED, .peer_id = p->id, .error = err};
			ags_node_log(n, AGS_LOG_INFO, "peer %s disconnected: %s", p->id, err);
			ags_node_emit(n, &ev);
			if (code != AGS_APP_NO_ERROR && code != AGS_APP_SHUTTING_DOWN &&
			    !l->error_counted)
				ags_node_peer_error(n, p, err);
		} else if (was_dialing && !l->established && !l->error_counted) {
			ags_node_peer_error(n, p, reason && *reason ? reason : "connection failed");
		}
		if ((was_active || was_dialing) && !p->link && !p->dialing) {
			if (p->dup_refusals && p->attempts < p->dup_refusals)
				p->attempts = p->dup_refusals; /* the HELLO we got reset them */
			ags_node_peer_retry(n, p);
		}
	}
}

static void peer_dial(struct ags_node *n, struct ags_peer *p)
{
	struct ags_link *l = ags_node_link_new(n, NULL, 1, &ags_node_peer_ops, n);
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
		ags_node_link_start_stream(l);
		ags_node_link_pump(l, ags_mono_us());
		ags_node_log(n, AGS_LOG_INFO, "resuming with %s in 0-RTT from its cursor %llu",
		             p->id, (unsigned long long)p->resume.acked_seq);
	}
}

const struct ags_link_ops ags_node_peer_ops = {
    .kind = "peer",
    .dial = peer_dial,
    .start = peer_start,
    .connected = peer_connected,
    .stream_open = ags_node_peer_stream_open,
    .hello = ags_node_peer_hello,
    .closed = ags_node_peer_closed,
};

/* ---- state ---- */

/*
 * A peer without a session lags by what it is to get after the cursor it
 * last acknowledged, under the filter its last HELLO named (none known: all).
 */
static uint64_t peer_lag(struct ags_node *n, const struct ags_peer *p)
{
	ags_sync_filter f = {0};
	if (p->resume.valid) {
		f.types = (const char *const *)p->resume.types;
		f.n_types = p->resume.n_types;
		f.tags = (const char *const *)p->resume.tags;
		f.n_tags = p->resume.n_tags;
	}
	uint64_t after = p->resume.valid ? p->resume.acked_seq : p->acked_seq;
	uint64_t lag = 0;
	ags_store *st = n->lstore ? n->lstore : n->store;
	if (!n->lstore)
		pthread_mutex_lock(&n->store_mu);
	if (ags_sync_backlog(st, after, p->id, &f, &lag))
		lag = 0;
	if (!n->lstore)
		pthread_mutex_unlock(&n->store_mu);
	return lag;
}

void ags_node_fill_state(struct ags_node *n, ags_node_state *st)
{
	st->running = 1;
	st->peers = calloc(n->n_peers ? n->n_peers : 1, sizeof(*st->peers));
	uint64_t acked = n->base_acked, failed = n->base_failed;
	uint64_t raw_out = n->base_raw_out, wire_out = n->base_wire_out, wire_in = n->base_wire_in;
	uint64_t ratio_wire = n->base_ratio_wire_out;
	double lat = n->base_latency_sum;
	for (int c = 0; c < AGS_SYNC_CODECS && c < AGS_NODE_CODECS; c++) {
		st->stats.codec_bytes_out[c] = n->base_codec_out[c];
		st->stats.codec_bytes_in[c] = n->base_codec_in[c];
	}
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
		ratio_wire += ss.wire_bytes_patterns_out;
		wire_out += ss.wire_bytes_out;
		wire_in += ss.wire_bytes_in;
		lat += ss.latency_sum_ms;
		for (int c = 0; c < AGS_SYNC_CODECS && c < AGS_NODE_CODECS; c++) {
			st->stats.codec_bytes_out[c] += ss.codec_bytes_out[c];
			st->stats.codec_bytes_in[c] += ss.codec_bytes_in[c];
		}
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
		ps->rejected = p->rejected;
		ps->rollbacks = p->rollbacks;
		ps->latency_ms = (double)qi.srtt_us / 1000.0;
		ps->bytes_in = p->base_bytes_in + qi.bytes_in;
		ps->bytes_out = p->base_bytes_out + qi.bytes_out;
		ps->patterns_received = p->base_received + ss.patterns_received;
		ps->acked_seq = ss.acked_seq > p->acked_seq ? ss.acked_seq : p->acked_seq;
		ps->lag = p->link && p->link->sync ? ags_sync_lag(p->link->sync) : peer_lag(n, p);
	}
	st->n_peers = st->peers ? n->n_peers : 0;
	st->stats.successful_syncs = acked;
	st->stats.failed_syncs = failed;
	st->stats.total_syncs = acked + failed;
	st->stats.average_latency_ms = acked ? lat / (double)acked : 0;
	st->stats.bytes_transferred = wire_out + wire_in;
	st->stats.compression_ratio = raw_out ? (double)ratio_wire / (double)raw_out : 1.0;
	snprintf(st->store.id, sizeof(st->store.id), "%s", n->store_id);
	pthread_mutex_lock(&n->store_mu);
	ags_store_count(n->store, &st->store.patterns);
	st->store.seq = ags_store_seq(n->store);
	ags_store_digest(n->store, st->store.digest);
	pthread_mutex_unlock(&n->store_mu);
}
