/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The node's thread-safe public API besides its lifecycle (node.h): peers,
 * patterns, reads, state, hub statistics. Store writes happen on the
 * caller's thread under the store mutex, then wake the loop so the senders
 * pick the change up; the rest are commands to the loop thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "hub.h"
#include "node_int.h"
#include "store.h"
#include "sync.h"

AGS_EXPORT uint16_t ags_node_port(ags_node *n)
{
	return n && n->started ? n->port : 0;
}

AGS_EXPORT const char *ags_node_id(ags_node *n)
{
	return n ? n->node_id : NULL;
}

/* ---- peers ---- */

AGS_EXPORT int ags_node_connect_peer(ags_node *n, const char *address, uint16_t port,
                                     const char *id)
{
	if (!n || !address || !*address || !port || !ags_node_valid_id(id))
		return AGS_ERR_INVALID;
	struct ags_cmd *c = calloc(1, sizeof(*c));
	if (!c)
		return AGS_ERR_NOMEM;
	c->type = CMD_CONNECT;
	c->id = strdup(id);
	c->address = strdup(address);
	c->port = port;
	c->sync = 1;
	if (!c->id || !c->address) {
		ags_node_cmd_free(c);
		return AGS_ERR_NOMEM;
	}
	int rv = ags_node_post(n, c);
	if (rv == 0 || c->done)
		rv = c->result;
	ags_node_cmd_free(c);
	return rv;
}

AGS_EXPORT int ags_node_disconnect_peer(ags_node *n, const char *id)
{
	if (!n || !id)
		return AGS_ERR_INVALID;
	struct ags_cmd *c = calloc(1, sizeof(*c));
	if (!c)
		return AGS_ERR_NOMEM;
	c->type = CMD_DISCONNECT;
	c->id = strdup(id);
	c->sync = 1;
	int rv = c->id ? ags_node_post(n, c) : AGS_ERR_NOMEM;
	if (rv == 0)
		rv = c->result;
	ags_node_cmd_free(c);
	return rv;
}

AGS_EXPORT int ags_node_sync_now(ags_node *n)
{
	if (!n)
		return AGS_ERR_INVALID;
	pthread_mutex_lock(&n->cmd_mu);
	int running = n->running;
	if (running)
		uv_async_send(&n->async);
	pthread_mutex_unlock(&n->cmd_mu);
	return running ? 0 : AGS_ERR_STATE;
}

int ags_node_reload_tls_loop(struct ags_node *n, ags_error *err)
{
	ags_tls_ctx *fresh = NULL;
	int rv = ags_node_make_tls(n, &fresh, err);
	if (rv) {
		ags_node_log(n, AGS_LOG_ERROR, "TLS reload failed; keeping the old credentials");
		return rv;
	}
	ags_tls_ctx **r = realloc(n->retired_tls, (n->n_retired_tls + 1) * sizeof(*r));
	if (!r) {
		ags_tls_ctx_del(fresh);
		return AGS_ERR_NOMEM;
	}
	n->retired_tls = r;
	rv = ags_quic_ep_set_tls(n->ep, fresh);
	if (rv) {
		ags_tls_ctx_del(fresh);
		return rv;
	}
	/* Open sessions still use the old context: keep it until the node stops. */
	n->retired_tls[n->n_retired_tls++] = n->tls;
	n->tls = fresh;
	ags_node_log(n, AGS_LOG_INFO, "TLS credentials reloaded (certificate for '%s')",
	             ags_tls_ctx_own_id(fresh));
	return 0;
}

AGS_EXPORT int ags_node_reload_tls(ags_node *n, ags_error *err)
{
	if (!n)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "node is NULL");
	/* Check the files on the caller's thread first, for a useful error. */
	ags_tls_ctx *probe = NULL;
	int rv = ags_node_make_tls(n, &probe, err);
	if (rv)
		return rv;
	ags_tls_ctx_del(probe);
	struct ags_cmd *c = calloc(1, sizeof(*c));
	if (!c)
		return ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
	c->type = CMD_RELOAD_TLS;
	c->sync = 1;
	rv = ags_node_post(n, c);
	if (rv == 0)
		rv = c->result;
	ags_node_cmd_free(c);
	if (rv)
		ags_error_set(err, rv, NULL, "TLS reload failed: %s", ags_strerror(rv));
	return rv;
}

/* ---- patterns ---- */

void ags_node_wake(struct ags_node *n)
{
	pthread_mutex_lock(&n->cmd_mu);
	if (n->running)
		uv_async_send(&n->async);
	pthread_mutex_unlock(&n->cmd_mu);
}

static int apply_local(struct ags_node *n, const ags_pattern *const *p, size_t cnt,
                       const char *scope, ags_apply_result *res, ags_error *err)
{
	if (!n->started)
		return ags_error_set(err, AGS_ERR_STATE, NULL, "node not started");
	ags_change_meta *meta = NULL;
	ags_change_clock *clocks = calloc(cnt ? cnt : 1, sizeof(*clocks));
	if (!clocks)
		return ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
	if (scope) {
		meta = calloc(cnt ? cnt : 1, sizeof(*meta));
		if (!meta) {
			free(clocks);
			return ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
		}
		for (size_t i = 0; i < cnt; i++)
			meta[i].scope = scope;
	}
	int rv;
	ags_vclock *next = NULL;
	char *json = NULL;
	uint64_t tick = 0;
	/* The outcomes are needed to keep the rows for the senders. */
	ags_apply_result own[AGS_NODE_RECENT_CALL_MAX];
	if (!res && cnt <= AGS_NODE_RECENT_CALL_MAX)
		res = own;
	pthread_mutex_lock(&n->store_mu);
	if (!n->store) {
		rv = ags_error_set(err, AGS_ERR_STATE, NULL, "node stopped");
	} else if ((rv = ags_sync_clock_tick(&n->host, n->node_id, &next, &json, &tick))) {
		rv = ags_error_set(err, rv, NULL, "cannot advance the vector clock: %s",
		                   ags_strerror(rv));
	} else {
		/* One tick per write call: every change of it gets the writer's new counter. */
		for (size_t i = 0; i < cnt; i++) {
			clocks[i].writer = n->node_id;
			clocks[i].tick = tick;
		}
		ags_store_kv kv = {AGS_STORE_CLOCK_KEY, json};
		rv = ags_store_apply_batch_kv(n->store, p, meta, clocks, cnt, &kv, 1, res, NULL,
		                              err);
		if (rv == 0) {
			ags_sync_clock_commit(&n->host, next);
			next = NULL;
			/* Under the store lock: rows are kept in the order of their sequences. */
			ags_node_recent_add(n, p, cnt, scope, res, tick);
		}
	}
	pthread_mutex_unlock(&n->store_mu);
	ags_vclock_del(next);

	free(json);
	free(meta);
	free(clocks);
	if (rv == 0)
		ags_node_wake(n);
	return rv;
}

AGS_EXPORT int ags_node_sync_pattern(ags_node *n, const ags_pattern *p, const char *const *peer_ids,
                                     size_t n_peer_ids, ags_apply_result *res, ags_error *err)
{
	if (!n || !p)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "node and pattern are required");
	char *scope = NULL;
	if (peer_ids) {
		scope = ags_sync_scope_make(peer_ids, n_peer_ids);
		if (!scope)
			return ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
	}
	int rv = apply_local(n, &p, 1, scope, res, err);
	free(scope);
	return rv;
}

AGS_EXPORT int ags_node_sync_patterns(ags_node *n, const ags_pattern *const *p, size_t cnt,
                                      ags_apply_result *res, ags_error *err)
{
	if (!n || (!p && cnt))
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "node and patterns are required");
	return apply_local(n, p, cnt, NULL, res, err);
}

AGS_EXPORT int ags_node_delete(ags_node *n, const char *id, ags_apply_result *res, ags_error *err)
{
	if (!n || !id)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "node and id are required");
	if (!n->started)
		return ags_error_set(err, AGS_ERR_STATE, NULL, "node not started");
	ags_record_head head;
	pthread_mutex_lock(&n->store_mu);
	int rv = ags_store_head(n->store, id, &head);
	pthread_mutex_unlock(&n->store_mu);
	if (rv == AGS_ERR_NOT_FOUND || (rv == 0 && head.state != AGS_RECORD_LIVE))
		return ags_error_set(err, AGS_ERR_NOT_FOUND, "id", "no pattern '%s'", id);
	if (rv)
		return ags_error_set(err, rv, NULL, "store: %s", ags_store_errmsg(n->store));
	ags_pattern *t = NULL;
	int64_t ts = ags_now_ms();
	if (ts <= head.timestamp)
		ts = head.timestamp + 1;
	if ((rv = ags_pattern_new_tombstone(id, head.version + 1, ts, &t)))
		return ags_error_set(err, rv, "id", "cannot make a tombstone");
	const ags_pattern *tp = t;
	rv = apply_local(n, &tp, 1, NULL, res, err);
	ags_pattern_del(t);
	return rv;
}

AGS_EXPORT int ags_node_get(ags_node *n, const char *id, ags_pattern **out)
{
	if (!n || !id || !out)
		return AGS_ERR_INVALID;
	pthread_mutex_lock(&n->rstore_mu);
	int rv = n->rstore ? ags_store_get(n->rstore, id, out) : AGS_ERR_STATE;
	pthread_mutex_unlock(&n->rstore_mu);
	return rv;
}

AGS_EXPORT int ags_node_query(ags_node *n, const ags_query *q, ags_pattern_cb cb, void *user_data)
{
	if (!n || !cb)
		return AGS_ERR_INVALID;
	pthread_mutex_lock(&n->rstore_mu);
	int rv = n->rstore ? ags_store_query(n->rstore, q, cb, user_data) : AGS_ERR_STATE;
	pthread_mutex_unlock(&n->rstore_mu);
	return rv;
}

/* ---- state ---- */

AGS_EXPORT int ags_node_get_state(ags_node *n, ags_node_state **out)
{
	if (!n || !out)
		return AGS_ERR_INVALID;
	ags_node_state *st = calloc(1, sizeof(*st));
	if (!st)
		return AGS_ERR_NOMEM;
	struct ags_cmd *c = calloc(1, sizeof(*c));
	if (!c) {
		free(st);
		return AGS_ERR_NOMEM;
	}
	c->type = CMD_STATE;
	c->state = st;
	c->sync = 1;
	int rv = ags_node_post(n, c);
	ags_node_cmd_free(c);
	if (rv == AGS_ERR_STATE) {
		/* Not running: configured peers, no connections. */
		rv = 0;
		st->peers = calloc(n->n_peers ? n->n_peers : 1, sizeof(*st->peers));
		if (!st->peers)
			rv = AGS_ERR_NOMEM;
		for (size_t i = 0; st->peers && i < n->n_peers; i++) {
			snprintf(st->peers[i].id, sizeof(st->peers[i].id), "%s", n->peers[i]->id);
			snprintf(st->peers[i].address, sizeof(st->peers[i].address), "%s:%u",
			         n->peers[i]->address ? n->peers[i]->address : "",
			         n->peers[i]->port);
		}
		st->n_peers = n->n_peers;
	}
	if (rv) {
		ags_node_state_del(st);
		return rv;
	}
	*out = st;
	return 0;
}

AGS_EXPORT void ags_node_state_del(ags_node_state *st)
{
	if (!st)
		return;
	free(st->peers);
	free(st);
}

/* ---- hub ---- */

AGS_EXPORT int ags_node_get_hub_stats(ags_node *n, ags_hub_stats **out)
{
	if (!n || !out)
		return AGS_ERR_INVALID;
	ags_hub_stats *st = calloc(1, sizeof(*st));
	struct ags_cmd *c = calloc(1, sizeof(*c));
	if (!st || !c) {
		free(st);
		free(c);
		return AGS_ERR_NOMEM;
	}
	c->type = CMD_HUB_STATS;
	c->hub_stats = st;
	int rv = ags_node_post_sync(n, c);
	ags_node_cmd_free(c);
	if (rv) {
		ags_node_hub_stats_del(st);
		return rv;
	}
	if (st->enabled && !st->tenants) {
		ags_node_hub_stats_del(st);
		return AGS_ERR_NOMEM;
	}
	*out = st;
	return 0;
}

AGS_EXPORT void ags_node_hub_stats_del(ags_hub_stats *st)
{
	if (!st)
		return;
	free(st->tenants);
	free(st);
}
