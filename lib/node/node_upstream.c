/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A node's upstream hub (hub.upstream, and the connection of an ags_agent):
 * its links (ags_node_upstream_ops: dialling with TLS resumption and 0-RTT,
 * AUTH before HELLO), the sync cycle "push everything, PULL, wait for
 * PULL_DONE" (docs/PROTOCOL.md, "Federation hub"), and what an ags_agent
 * asks of its node (node_agent.h). Loop thread, except where said.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "error.h"
#include "frame.h"
#include "node_agent.h"
#include "node_int.h"
#include "node_link.h"

#define UPSTREAM_PLACEHOLDER_ID "hub"

int ags_node_parse_endpoint(const char *endpoint, char *host, size_t cap, uint16_t *port)
{
	if (!endpoint)
		return AGS_ERR_INVALID;
	const char *s = endpoint;
	if (strncmp(s, "quic://", 7) == 0)
		s += 7;
	else if (strstr(s, "://"))
		return AGS_ERR_INVALID; /* another scheme */
	const char *h = s, *hend, *colon;
	if (*s == '[') {
		h = s + 1;
		hend = strchr(h, ']');
		if (!hend)
			return AGS_ERR_INVALID;
		colon = hend[1] == ':' ? hend + 1 : NULL;
		if (!colon && hend[1] != '\0' && hend[1] != '/')
			return AGS_ERR_INVALID;
	} else {
		colon = strchr(s, ':');
		hend = colon ? colon : s + strcspn(s, "/");
	}
	size_t hl = (size_t)(hend - h);
	if (hl == 0 || hl >= cap)
		return AGS_ERR_INVALID;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = 4433;
	if (colon) {
		char *end = NULL;
		unsigned long v = strtoul(colon + 1, &end, 10);
		if (end == colon + 1 || (*end && *end != '/') || v == 0 || v > 65535)
			return AGS_ERR_INVALID;
		*port = (uint16_t)v;
	}
	return 0;
}

int ags_node_upstream_init(struct ags_node *n, ags_error *err)
{
	const ags_node_config *c = &n->cfg;
	if (!c->hub.upstream.endpoint)
		return 0;
	char host[256];
	uint16_t port = 0;
	if (ags_node_parse_endpoint(c->hub.upstream.endpoint, host, sizeof(host), &port) != 0)
		return ags_error_set(err, AGS_ERR_CONFIG, "hub.upstream.endpoint",
		                     "must be quic://host:port, got '%.80s'",
		                     c->hub.upstream.endpoint);
	if (!c->hub.upstream.token || !*c->hub.upstream.token)
		return ags_error_set(err, AGS_ERR_CONFIG, "hub.upstream.token",
		                     "is required with hub.upstream.endpoint");
	const char *id = c->hub.upstream.hub_id;
	if (id && !ags_node_valid_id(id))
		return ags_error_set(err, AGS_ERR_CONFIG, "hub.upstream.hubId",
		                     "is not a valid node id");
	struct ags_peer *p = ags_node_peer_add(n, id ? id : UPSTREAM_PLACEHOLDER_ID, host, port, 1);
	if (!p)
		return ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
	p->ops = &ags_node_upstream_ops;
	p->id_known = id != NULL;
	p->auto_sync = 1;
	n->up = p;
	return 0;
}

/* Completes n->up_op (takes cmd_mu). */
static void op_finish(struct ags_node *n, int result, const char *reason)
{
	pthread_mutex_lock(&n->cmd_mu);
	struct ags_up_op *op = &n->up_op;
	if (op->active && !op->done) {
		op->result = result;
		snprintf(op->reason, sizeof(op->reason), "%s", reason ? reason : "");
		op->duration_ms = (double)(ags_mono_us() - op->started_us) / 1000.0;
		op->done = 1;
		pthread_cond_broadcast(&n->cmd_cv);
	}
	pthread_mutex_unlock(&n->cmd_mu);
}

/* The kind of operation the caller waits for, or 0 (under cmd_mu). */
static int op_waiting(struct ags_node *n)
{
	pthread_mutex_lock(&n->cmd_mu);
	int k = n->up_op.active && !n->up_op.done ? n->up_op.kind : 0;
	pthread_mutex_unlock(&n->cmd_mu);
	return k;
}

static int up_start(struct ags_link *l);

static void up_dial(struct ags_node *n, struct ags_peer *p)
{
	struct ags_link *l = ags_node_link_new(n, NULL, 1, &ags_node_upstream_ops, n);
	if (!l)
		return;
	l->peer = p;
	p->last_error[0] = '\0';
	ags_error err;
	ags_error_clear(&err);
	int rv = ags_quic_connect(n->ep, p->address, p->port, p->id_known ? p->id : NULL, l,
	                          &l->conn, &err);
	if (rv) {
		free(l);
		char msg[320];
		snprintf(msg, sizeof(msg), "cannot connect to hub %s:%u: %s", p->address, p->port,
		         err.message[0] ? err.message : ags_strerror(rv));
		ags_node_log(n, AGS_LOG_WARN, "%s", msg);
		ags_node_peer_error(n, p, msg);
		if (n->agent_mode) {
			p->dial = 0;
			op_finish(n, rv, msg);
		} else {
			ags_node_peer_retry(n, p);
		}
		return;
	}
	p->dialing = l;
	ags_quic_info qi;
	ags_quic_conn_info(l->conn, &qi);
	if (qi.early_data_possible && ags_quic_stream_open(l->conn, &l->sid) == 0) {
		/* Resumed: AUTH, HELLO and the first batches go out as 0-RTT data. */
		if (up_start(l) != 0)
			return;
	}
	ags_node_log(n, AGS_LOG_DEBUG, "dialling hub %s:%u%s", p->address, p->port,
	             qi.early_data_possible ? " (resuming, 0-RTT)" : "");
}

/* The session of an upstream link: AUTH + HELLO on its stream. */
static int up_start(struct ags_link *l)
{
	struct ags_node *n = l->node;
	ags_sync_opts o = {.role = AGS_SYNC_ROLE_UPSTREAM, .token = n->cfg.hub.upstream.token};
	int rv = ags_sync_new_ex(&n->host, l->peer->id, &o, l, &l->sync);
	if (rv) {
		ags_quic_conn_close(l->conn, AGS_APP_INTERNAL_ERROR,
		                    rv == AGS_ERR_INVALID ? "unusable token" : "out of memory");
		return rv;
	}
	ags_sync_start(l->sync, ags_mono_us());
	return 0;
}

/* The hub's HELLO arrived: a connection as the peer's, then the upstream's cycle. */
static int up_hello(struct ags_link *l, const char *instance)
{
	int rv = ags_node_peer_hello(l, instance);
	if (rv)
		return rv;
	struct ags_node *n = l->node;
	struct ags_peer *p = l->peer;
	ags_quic_info qi;
	ags_quic_conn_info(l->conn, &qi);
	ags_node_log(n, AGS_LOG_INFO, "connected to hub %s at %s%s%s", p->id,
	             ags_quic_conn_peer_addr(l->conn), qi.resumed ? " (resumed session" : "",
	             qi.resumed ? (qi.early_data_accepted ? ", 0-RTT accepted)" : ")") : "");
	pthread_mutex_lock(&n->cmd_mu);
	if (n->up_op.active && !n->up_op.done && n->up_op.kind == AGS_UP_OP_CONNECT) {
		n->up_op.resumed = qi.resumed;
		n->up_op.early_data = qi.early_data_accepted;
	}
	pthread_mutex_unlock(&n->cmd_mu);
	if (op_waiting(n) == AGS_UP_OP_CONNECT)
		op_finish(n, 0, NULL);
	p->sync_state = p->auto_sync ? AGS_UP_PUSHING : AGS_UP_IDLE;
	ags_node_upstream_step(n);
	return 0;
}

/* An upstream attempt or connection ended (before the peer's part of closing it). */
static void up_ended(struct ags_node *n, struct ags_link *l, uint64_t code, const char *reason)
{
	struct ags_peer *p = l->peer;
	p->sync_state = AGS_UP_IDLE;
	if (n->agent_mode)
		p->dial = 0; /* an agent reconnects when its owner asks */
	int kind = op_waiting(n);
	if (!kind)
		return;
	if (kind == AGS_UP_OP_DISCONNECT) {
		/* Done when this was the last connection to the hub (l is not detached yet). */
		if ((!p->link || p->link == l) && (!p->dialing || p->dialing == l))
			op_finish(n, 0, NULL);
		return;
	}
	char msg[400];
	int rv = AGS_ERR_CLOSED;
	if (!l->established) {
		/* The handshake failed: q_refused recorded why in last_error. */
		rv = AGS_ERR_TLS;
		snprintf(msg, sizeof(msg), "%s",
		         p->last_error[0]    ? p->last_error
		         : reason && *reason ? reason
		                             : "handshake failed");
	} else {
		if (code == AGS_APP_AUTH_FAILED)
			rv = AGS_ERR_AUTH;
		snprintf(msg, sizeof(msg), "%s (%s)",
		         reason && *reason ? reason : "connection closed",
		         ags_app_error_name(code));
	}
	op_finish(n, rv, msg);
}

static void up_closed(struct ags_link *l, uint64_t code, const char *reason, int by_peer)
{
	struct ags_peer *p = l->peer;
	if (p && (p->link == l || p->dialing == l))
		up_ended(l->node, l, code, reason);
	ags_node_peer_closed(l, code, reason, by_peer);
}

static void up_connected(struct ags_link *l, const char *peer_id, const char *addr)
{
	if (l->peer && !l->peer->id_known) {
		/* A hub dialled without an expected id: from now on it is this one. */
		snprintf(l->peer->id, sizeof(l->peer->id), "%s", peer_id);
		l->peer->id_known = 1;
	} else if (l->peer && strcmp(l->peer->id, peer_id) != 0) {
		/* TLS verified the expected id; this cannot differ. */
		ags_quic_conn_close(l->conn, AGS_APP_INTERNAL_ERROR, "peer id mismatch");
		return;
	}
	ags_node_link_established(l, peer_id, addr);
}

static void up_writable(struct ags_link *l)
{
	ags_node_upstream_step(l->node);
}

void ags_node_upstream_pulled(void *ud, void *session_ud)
{
	(void)session_ud;
	ags_node_upstream_step(ud);
}

const struct ags_link_ops ags_node_upstream_ops = {
    .kind = "upstream",
    .dial = up_dial,
    .start = up_start,
    .connected = up_connected,
    .stream_open = ags_node_peer_stream_open, /* ours: the hub opens none */
    .hello = up_hello,
    .closed = up_closed,
    .writable = up_writable,
};

/* Totals of the upstream peer's sessions: applied, acknowledged, conflicts. */
static void totals(struct ags_peer *p, uint64_t *applied, uint64_t *acked, uint64_t *conflicts)
{
	ags_sync_stats ss;
	memset(&ss, 0, sizeof(ss));
	if (p->link && p->link->sync)
		ags_sync_get_stats(p->link->sync, &ss);
	*applied = p->base_applied + ss.patterns_applied;
	*acked = p->base_patterns_acked + ss.patterns_acked;
	*conflicts = p->base_conflicts + ss.conflicts;
}

void ags_node_upstream_step(struct ags_node *n)
{
	struct ags_peer *p = n->up;
	if (!p || !p->link || !p->link->sync || !p->link->announced)
		return;
	ags_sync *s = p->link->sync;
	ags_sync_stats ss;
	if (p->sync_state == AGS_UP_PUSHING && ags_sync_push_idle(s)) {
		ags_sync_get_stats(s, &ss);
		p->pulls_seen = ss.pulls_done;
		int rv = ags_sync_pull(s);
		if (rv) {
			ags_node_log(n, AGS_LOG_ERROR, "PULL to hub %s failed: %s", p->id,
			             ags_strerror(rv));
			p->sync_state = AGS_UP_IDLE;
			op_finish(n, rv, "cannot send PULL");
			return;
		}
		p->sync_state = AGS_UP_PULLING;
	}
	if (p->sync_state != AGS_UP_PULLING)
		return;
	ags_sync_get_stats(s, &ss);
	if (ss.pulls_done <= p->pulls_seen)
		return;
	p->sync_state = AGS_UP_IDLE;
	uint64_t applied, acked, conflicts;
	totals(p, &applied, &acked, &conflicts);
	n->last_sync_ms = ags_now_ms();
	pthread_mutex_lock(&n->cmd_mu);
	if (n->up_op.active && !n->up_op.done && n->up_op.kind == AGS_UP_OP_SYNC) {
		n->up_op.pulled = applied - p->mark_applied;
		n->up_op.pushed = acked - p->mark_acked;
		n->up_op.conflicts = conflicts - p->mark_conflicts;
	}
	pthread_mutex_unlock(&n->cmd_mu);
	ags_node_log(n, AGS_LOG_INFO,
	             "synced with hub %s: pulled %llu, pushed %llu, %llu conflicts", p->id,
	             (unsigned long long)(applied - p->mark_applied),
	             (unsigned long long)(acked - p->mark_acked),
	             (unsigned long long)(conflicts - p->mark_conflicts));
	p->mark_applied = applied;
	p->mark_acked = acked;
	p->mark_conflicts = conflicts;
	op_finish(n, 0, NULL);
}

static void op_start(struct ags_node *n)
{
	struct ags_peer *p = n->up;
	pthread_mutex_lock(&n->cmd_mu);
	int kind = n->up_op.active && !n->up_op.done ? n->up_op.kind : 0;
	pthread_mutex_unlock(&n->cmd_mu);
	if (!p) {
		op_finish(n, AGS_ERR_STATE, "no hub configured");
		return;
	}
	if (kind == AGS_UP_OP_CONNECT) {
		p->dial = 1;
		p->attempts = 0;
		p->down = 0;
		p->retry_at_ms = 0;
		if (p->link && p->link->announced) {
			ags_quic_info qi;
			ags_quic_conn_info(p->link->conn, &qi);
			pthread_mutex_lock(&n->cmd_mu);
			n->up_op.resumed = qi.resumed;
			n->up_op.early_data = qi.early_data_accepted;
			pthread_mutex_unlock(&n->cmd_mu);
			op_finish(n, 0, NULL);
		} else if (!p->link && !p->dialing)
			up_dial(n, p);
	} else if (kind == AGS_UP_OP_DISCONNECT) {
		/* Finished by up_ended once no connection is left. */
		p->dial = 0;
		p->sync_state = AGS_UP_IDLE;
		if (!p->link && !p->dialing) {
			op_finish(n, 0, NULL);
			return;
		}
		if (p->link)
			ags_quic_conn_close(p->link->conn, AGS_APP_NO_ERROR, "agent disconnecting");
		if (p->dialing)
			ags_quic_conn_close(p->dialing->conn, AGS_APP_NO_ERROR,
			                    "agent disconnecting");
	} else if (kind == AGS_UP_OP_SYNC) {
		if (!p->link || !p->link->announced) {
			op_finish(n, AGS_ERR_STATE, "not connected to the hub");
			return;
		}
		if (p->sync_state == AGS_UP_IDLE)
			p->sync_state = AGS_UP_PUSHING;
		ags_node_upstream_step(n);
	}
}

void ags_node_upstream_cmd(struct ags_node *n, struct ags_cmd *c)
{
	struct ags_peer *p = n->up;
	switch (c->type) {
	case CMD_UP_OP:
		op_start(n);
		break;
	case CMD_UP_DISCONNECT:
		if (!p)
			break;
		p->dial = 0;
		p->sync_state = AGS_UP_IDLE;
		if (p->link)
			ags_quic_conn_close(p->link->conn, AGS_APP_NO_ERROR, "agent disconnecting");
		if (p->dialing)
			ags_quic_conn_close(p->dialing->conn, AGS_APP_NO_ERROR,
			                    "agent disconnecting");
		break;
	case CMD_UP_EXPORT:
		if (!p || !p->id_known) {
			c->result = AGS_ERR_NOT_FOUND;
			break;
		}
		c->result = ags_quic_ep_export_resumption(n->ep, p->id, &c->blob, &c->blob_len);
		if (c->result == 0 && !(c->id = strdup(p->id))) {
			free(c->blob);
			c->blob = NULL;
			c->result = AGS_ERR_NOMEM;
		}
		break;
	case CMD_UP_IMPORT:
		if (!p || !c->id || !ags_node_valid_id(c->id)) {
			c->result = AGS_ERR_INVALID;
			break;
		}
		if (p->id_known && strcmp(p->id, c->id) != 0) {
			c->result = AGS_ERR_INVALID; /* the configured hub is another one */
			break;
		}
		c->result = ags_quic_ep_import_resumption(n->ep, c->id, c->blob, c->blob_len);
		if (c->result == 0) {
			snprintf(p->id, sizeof(p->id), "%s", c->id);
			p->id_known = 1;
		}
		break;
	default:
		break;
	}
}

/* ---- what an ags_agent asks of its node (node_agent.h; any thread) ---- */

int ags_node_agent_mode(ags_node *n)
{
	if (!n || n->started || !n->up)
		return AGS_ERR_STATE;
	n->agent_mode = 1;
	n->up->dial = 0;
	n->up->auto_sync = 0;
	return 0;
}

void ags_node_agent_log(ags_node *n, int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ags_node_vlog(n, level, fmt, ap);
	va_end(ap);
}

int ags_node_agent_run(ags_node *n, int op, uint32_t timeout_ms, ags_node_agent_result *res,
                       ags_error *err)
{
	struct ags_cmd *c = calloc(1, sizeof(*c));
	if (!c)
		return ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
	pthread_mutex_lock(&n->cmd_mu);
	memset(&n->up_op, 0, sizeof(n->up_op));
	n->up_op.kind = op;
	n->up_op.active = 1;
	n->up_op.started_us = ags_mono_us();
	pthread_mutex_unlock(&n->cmd_mu);
	c->type = CMD_UP_OP;
	int rv = ags_node_post_sync(n, c);
	free(c);
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&n->cmd_mu);
	while (rv == 0 && !n->up_op.done) {
		if (pthread_cond_timedwait(&n->cmd_cv, &n->cmd_mu, &dl) == ETIMEDOUT)
			break;
	}
	struct ags_up_op r = n->up_op;
	n->up_op.active = 0;
	pthread_mutex_unlock(&n->cmd_mu);
	if (rv)
		return ags_error_set(err, rv, NULL, "the agent is stopped");
	if (!r.done)
		return ags_error_set(err, AGS_ERR_TIMEOUT, NULL,
		                     "no answer from the hub within %u ms", timeout_ms);
	if (r.result)
		return ags_error_set(err, r.result, NULL, "%s", r.reason);
	if (res) {
		res->resumed = r.resumed;
		res->early_data = r.early_data;
		res->pulled = r.pulled;
		res->pushed = r.pushed;
		res->conflicts = r.conflicts;
		res->duration_ms = r.duration_ms;
	}
	return 0;
}

int ags_node_agent_disconnect(ags_node *n)
{
	struct ags_cmd *c = calloc(1, sizeof(*c));
	if (!c)
		return AGS_ERR_NOMEM;
	c->type = CMD_UP_DISCONNECT;
	int rv = ags_node_post_sync(n, c);
	free(c);
	return rv;
}

int ags_node_agent_export(ags_node *n, char **hub_id, uint8_t **blob, size_t *len)
{
	struct ags_cmd *c = calloc(1, sizeof(*c));
	if (!c)
		return AGS_ERR_NOMEM;
	c->type = CMD_UP_EXPORT;
	int rv = ags_node_post_sync(n, c);
	if (rv == 0 && (!c->id || !c->blob))
		rv = AGS_ERR_NOT_FOUND;
	if (rv == 0) {
		*hub_id = c->id;
		*blob = c->blob;
		*len = c->blob_len;
		c->id = NULL;
		c->blob = NULL;
	}
	ags_node_cmd_free(c);
	return rv;
}

int ags_node_agent_import(ags_node *n, const char *hub_id, const uint8_t *blob, size_t len)
{
	struct ags_cmd *c = calloc(1, sizeof(*c));
	if (!c)
		return AGS_ERR_NOMEM;
	c->type = CMD_UP_IMPORT;
	c->id = strdup(hub_id);
	c->blob_len = len;
	c->blob = malloc(len ? len : 1);
	int rv = AGS_ERR_NOMEM;
	if (c->id && c->blob) {
		if (len)
			memcpy(c->blob, blob, len);
		rv = ags_node_post_sync(n, c);
	}
	ags_node_cmd_free(c);
	return rv;
}

int ags_node_agent_clock(ags_node *n, char **json)
{
	int rv = AGS_ERR_STATE;
	pthread_mutex_lock(&n->store_mu);
	if (n->clock)
		rv = ags_vclock_to_json(n->clock, json, NULL);
	pthread_mutex_unlock(&n->store_mu);
	return rv;
}

int ags_node_agent_store_state(ags_node *n, uint64_t *patterns, uint64_t *seq, char digest[65])
{
	int rv = 0;
	pthread_mutex_lock(&n->store_mu);
	if (!n->store) {
		rv = AGS_ERR_STATE;
	} else {
		if (patterns)
			rv = ags_store_count(n->store, patterns);
		if (seq)
			*seq = ags_store_seq(n->store);
		if (digest)
			ags_store_digest(n->store, digest);
	}
	pthread_mutex_unlock(&n->store_mu);
	return rv;
}
