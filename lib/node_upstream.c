/*
 * A node's upstream hub (hub.upstream, and the connection of an ags_agent):
 * dialling with TLS resumption and 0-RTT, AUTH before HELLO, and the sync
 * cycle "push everything, PULL, wait for PULL_DONE" (docs/parts/hub.md).
 * Loop thread, except where said.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "frame.h"
#include "node_int.h"

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
	p->upstream = 1;
	p->id_known = id != NULL;
	p->auto_sync = 1;
	n->up = p;
	return 0;
}

void ags_node_up_op_finish(struct ags_node *n, int result, const char *reason)
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

void ags_node_upstream_dial(struct ags_node *n, struct ags_peer *p)
{
	struct ags_link *l = ags_node_link_new(n, NULL, 1);
	if (!l)
		return;
	l->role = AGS_LINK_UPSTREAM;
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
			ags_node_up_op_finish(n, rv, msg);
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
		if (ags_node_upstream_start(n, l) != 0)
			return;
	}
	ags_node_log(n, AGS_LOG_DEBUG, "dialling hub %s:%u%s", p->address, p->port,
	             qi.early_data_possible ? " (resuming, 0-RTT)" : "");
}

int ags_node_upstream_start(struct ags_node *n, struct ags_link *l)
{
	ags_sync_opts o = {.role = AGS_SYNC_ROLE_UPSTREAM, .token = n->cfg.hub.upstream.token};
	int rv = ags_sync_new_ex(&n->host, l->peer->id, &o, l, &l->sync);
	if (rv) {
		ags_quic_conn_close(l->conn, AGS_APP_INTERNAL_ERROR,
		                    rv == AGS_ERR_INVALID ? "unusable token" : "out of memory");
		return rv;
	}
	return 0;
}

void ags_node_upstream_ready(struct ags_node *n, struct ags_link *l)
{
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
		ags_node_up_op_finish(n, 0, NULL);
	p->sync_state = p->auto_sync ? AGS_UP_PUSHING : AGS_UP_IDLE;
	ags_node_upstream_step(n);
}

void ags_node_upstream_closed(struct ags_node *n, struct ags_link *l, uint64_t code,
                              const char *reason)
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
			ags_node_up_op_finish(n, 0, NULL);
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
	ags_node_up_op_finish(n, rv, msg);
}

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
			ags_node_up_op_finish(n, rv, "cannot send PULL");
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
	ags_node_up_op_finish(n, 0, NULL);
}

static void op_start(struct ags_node *n)
{
	struct ags_peer *p = n->up;
	pthread_mutex_lock(&n->cmd_mu);
	int kind = n->up_op.active && !n->up_op.done ? n->up_op.kind : 0;
	pthread_mutex_unlock(&n->cmd_mu);
	if (!p) {
		ags_node_up_op_finish(n, AGS_ERR_STATE, "no hub configured");
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
			ags_node_up_op_finish(n, 0, NULL);
		} else if (!p->link && !p->dialing)
			ags_node_upstream_dial(n, p);
	} else if (kind == AGS_UP_OP_DISCONNECT) {
		/* Finished by ags_node_upstream_closed once no connection is left. */
		p->dial = 0;
		p->sync_state = AGS_UP_IDLE;
		if (!p->link && !p->dialing) {
			ags_node_up_op_finish(n, 0, NULL);
			return;
		}
		if (p->link)
			ags_quic_conn_close(p->link->conn, AGS_APP_NO_ERROR, "agent disconnecting");
		if (p->dialing)
			ags_quic_conn_close(p->dialing->conn, AGS_APP_NO_ERROR,
			                    "agent disconnecting");
	} else if (kind == AGS_UP_OP_SYNC) {
		if (!p->link || !p->link->announced) {
			ags_node_up_op_finish(n, AGS_ERR_STATE, "not connected to the hub");
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
