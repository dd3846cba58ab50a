/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GET /v1/state (seed 000's getState() as JSON, plus the hub's tenants in
 * hub mode), GET /v1/peers, and GET /metrics (Prometheus text format).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yyjson.h>

#include "api_int.h"

/* Adds one peer's seed 000 state (plus agentsync's extra fields) to object `o`. */
static void add_peer(yyjson_mut_doc *d, yyjson_mut_val *o, const ags_peer_state *p)
{
	yyjson_mut_obj_add_bool(d, o, "connected", p->connected != 0);
	yyjson_mut_obj_add_uint(d, o, "syncCount", p->sync_count);
	yyjson_mut_obj_add_uint(d, o, "errorCount", p->error_count);
	yyjson_mut_obj_add_real(d, o, "latency", p->latency_ms);
	yyjson_mut_obj_add_uint(d, o, "lag", p->lag);
	yyjson_mut_obj_add_strcpy(d, o, "address", p->address);
	yyjson_mut_obj_add_bool(d, o, "degraded", p->degraded != 0);
	yyjson_mut_obj_add_uint(d, o, "bytesIn", p->bytes_in);
	yyjson_mut_obj_add_uint(d, o, "bytesOut", p->bytes_out);
	yyjson_mut_obj_add_uint(d, o, "ackedSeq", p->acked_seq);
	yyjson_mut_obj_add_uint(d, o, "patternsReceived", p->patterns_received);
	yyjson_mut_obj_add_uint(d, o, "rejected", p->rejected);
	yyjson_mut_obj_add_uint(d, o, "rollbacks", p->rollbacks);
}

static yyjson_mut_val *peers_obj(yyjson_mut_doc *d, const ags_node_state *st)
{
	yyjson_mut_val *peers = yyjson_mut_obj(d);
	for (size_t i = 0; peers && i < st->n_peers; i++) {
		yyjson_mut_val *p = yyjson_mut_obj(d);
		if (!p)
			return NULL;
		add_peer(d, p, &st->peers[i]);
		yyjson_mut_obj_add(peers, yyjson_mut_strcpy(d, st->peers[i].id), p);
	}
	return peers;
}

static int get_state(ags_api *api, struct MHD_Connection *c, ags_node_state **st,
                     enum MHD_Result *r)
{
	int rc = ags_node_get_state(api->node, st);
	if (rc < 0) {
		*r = ags_api_reply_error(c, ags_api_status_of(rc), "", (size_t)-1,
		                         "cannot read the node's state: %s", ags_strerror(rc));
		return rc;
	}
	return 0;
}

/*
 * The hub's statistics, or NULL when hub mode is off (or the node is not
 * running). Returns AGS_ERR_NOMEM only when the answer cannot be made.
 */
static int get_hub(ags_api *api, ags_hub_stats **out)
{
	*out = NULL;
	int rc = ags_node_get_hub_stats(api->node, out);
	if (rc == AGS_ERR_NOMEM)
		return rc;
	if (rc < 0 || !(*out)->enabled) {
		ags_node_hub_stats_del(rc < 0 ? NULL : *out);
		*out = NULL;
	}
	return 0;
}

/*
 * "hub": {"enabled": false}, or with hub mode on {enabled, agentsConnected,
 * authOk, authRefused, tenants: [{tenant, agentsConnected, patterns, changes,
 * changesReceived, conflicts, digest}]}.
 */
static yyjson_mut_val *hub_obj(yyjson_mut_doc *d, const ags_hub_stats *hs)
{
	yyjson_mut_val *o = yyjson_mut_obj(d);
	if (!o)
		return NULL;
	yyjson_mut_obj_add_bool(d, o, "enabled", hs != NULL);
	if (!hs)
		return o;
	yyjson_mut_val *tenants = yyjson_mut_arr(d);
	if (!tenants)
		return NULL;
	yyjson_mut_obj_add_uint(d, o, "agentsConnected", hs->agents_connected);
	yyjson_mut_obj_add_uint(d, o, "authOk", hs->auth_ok);
	yyjson_mut_obj_add_uint(d, o, "authRefused", hs->auth_refused);
	for (size_t i = 0; i < hs->n_tenants; i++) {
		const ags_hub_tenant_stats *t = &hs->tenants[i];
		yyjson_mut_val *to = yyjson_mut_arr_add_obj(d, tenants);
		if (!to)
			return NULL;
		yyjson_mut_obj_add_strcpy(d, to, "tenant", t->tenant);
		yyjson_mut_obj_add_uint(d, to, "agentsConnected", t->agents_connected);
		yyjson_mut_obj_add_uint(d, to, "patterns", t->patterns);
		yyjson_mut_obj_add_uint(d, to, "changes", t->changes);
		yyjson_mut_obj_add_uint(d, to, "changesReceived", t->changes_received);
		yyjson_mut_obj_add_uint(d, to, "conflicts", t->conflicts);
		yyjson_mut_obj_add_strcpy(d, to, "digest", t->digest);
	}
	yyjson_mut_obj_add_val(d, o, "tenants", tenants);
	return o;
}

enum MHD_Result ags_api_serve_state(ags_api *api, struct MHD_Connection *c)
{
	ags_node_state *st = NULL;
	ags_hub_stats *hs = NULL;
	enum MHD_Result r;
	if (get_state(api, c, &st, &r) < 0)
		return r;
	int hrc = get_hub(api, &hs);
	yyjson_mut_doc *d = yyjson_mut_doc_new(NULL);
	yyjson_mut_val *o = d ? yyjson_mut_obj(d) : NULL;
	yyjson_mut_val *stats = d ? yyjson_mut_obj(d) : NULL;
	yyjson_mut_val *store = d ? yyjson_mut_obj(d) : NULL;
	yyjson_mut_val *peers = d ? peers_obj(d, st) : NULL;
	yyjson_mut_val *hub = d && hrc == 0 ? hub_obj(d, hs) : NULL;
	ags_node_hub_stats_del(hs);
	if (!o || !stats || !store || !peers || !hub) {
		ags_node_state_del(st);
		yyjson_mut_doc_free(d);
		return ags_api_reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "", (size_t)-1,
		                           "out of memory");
	}
	yyjson_mut_doc_set_root(d, o);
	yyjson_mut_obj_add_strcpy(d, o, "nodeId", ags_node_id(api->node));
	yyjson_mut_obj_add_bool(d, o, "running", st->running != 0);
	yyjson_mut_obj_add_uint(d, o, "connections", st->connections);
	yyjson_mut_obj_add_uint(d, stats, "totalSyncs", st->stats.total_syncs);
	yyjson_mut_obj_add_uint(d, stats, "successfulSyncs", st->stats.successful_syncs);
	yyjson_mut_obj_add_uint(d, stats, "failedSyncs", st->stats.failed_syncs);
	yyjson_mut_obj_add_real(d, stats, "averageLatency", st->stats.average_latency_ms);
	yyjson_mut_obj_add_uint(d, stats, "bytesTransferred", st->stats.bytes_transferred);
	yyjson_mut_obj_add_real(d, stats, "compressionRatio", st->stats.compression_ratio);
	yyjson_mut_obj_add_val(d, o, "stats", stats);
	yyjson_mut_obj_add_val(d, o, "peers", peers);
	yyjson_mut_obj_add_strcpy(d, store, "id", st->store.id);
	yyjson_mut_obj_add_uint(d, store, "patterns", st->store.patterns);
	yyjson_mut_obj_add_uint(d, store, "seq", st->store.seq);
	yyjson_mut_obj_add_strcpy(d, store, "digest", st->store.digest);
	yyjson_mut_obj_add_val(d, o, "store", store);
	yyjson_mut_obj_add_val(d, o, "hub", hub);
	ags_node_state_del(st);
	return ags_api_reply_doc(c, MHD_HTTP_OK, d);
}

enum MHD_Result ags_api_serve_peers(ags_api *api, struct MHD_Connection *c)
{
	ags_node_state *st = NULL;
	enum MHD_Result r;
	if (get_state(api, c, &st, &r) < 0)
		return r;
	yyjson_mut_doc *d = yyjson_mut_doc_new(NULL);
	yyjson_mut_val *peers = d ? peers_obj(d, st) : NULL;
	ags_node_state_del(st);
	if (!peers) {
		yyjson_mut_doc_free(d);
		return ags_api_reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "", (size_t)-1,
		                           "out of memory");
	}
	yyjson_mut_doc_set_root(d, peers);
	return ags_api_reply_doc(c, MHD_HTTP_OK, d);
}

/* ------------------------------------------------------------------------ */
/* Prometheus                                                               */
/* ------------------------------------------------------------------------ */

#define text ags_api_text
#define emit ags_api_text_add

void ags_api_text_add(struct text *t, const char *fmt, ...)
{
	if (t->oom)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		t->oom = 1;
		return;
	}
	if (t->len + (size_t)n + 1 > t->cap) {
		size_t cap = t->cap ? t->cap : 4096;
		while (cap < t->len + (size_t)n + 1)
			cap *= 2;
		char *s = realloc(t->s, cap);
		if (!s) {
			t->oom = 1;
			return;
		}
		t->s = s;
		t->cap = cap;
	}
	va_start(ap, fmt);
	vsnprintf(t->s + t->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	t->len += (size_t)n;
}

/*
 * The hub's series, per tenant. Tenant names are [A-Za-z0-9._-] (the hub
 * refuses others), so they need no escaping inside a label value.
 */
static void emit_hub(struct text *t, const ags_hub_stats *hs)
{
	static const struct {
		const char *name, *type, *help;
	} series[] = {
	    {"agentsync_hub_agents_connected", "gauge", "Authenticated agent connections now."},
	    {"agentsync_hub_patterns", "gauge", "Live patterns in the tenant's store."},
	    {"agentsync_hub_changes", "gauge", "Change-log sequence of the tenant's store."},
	    {"agentsync_hub_changes_received_total", "counter",
	     "Changes from agents that altered the tenant's store, since start."},
	    {"agentsync_hub_conflicts", "gauge", "Rows in the tenant's conflicts table."},
	};
	for (size_t s = 0; s < sizeof(series) / sizeof(series[0]); s++) {
		emit(t, "# HELP %s %s\n# TYPE %s %s\n", series[s].name, series[s].help,
		     series[s].name, series[s].type);
		for (size_t i = 0; i < hs->n_tenants; i++) {
			const ags_hub_tenant_stats *ts = &hs->tenants[i];
			uint64_t v = s == 0   ? (uint64_t)ts->agents_connected
			             : s == 1 ? ts->patterns
			             : s == 2 ? ts->changes
			             : s == 3 ? ts->changes_received
			                      : ts->conflicts;
			emit(t, "%s{tenant=\"%s\"} %llu\n", series[s].name, ts->tenant,
			     (unsigned long long)v);
		}
	}
	emit(t,
	     "# HELP agentsync_hub_auth_total Agent authentications since start, by outcome.\n"
	     "# TYPE agentsync_hub_auth_total counter\n"
	     "agentsync_hub_auth_total{outcome=\"ok\"} %llu\n"
	     "agentsync_hub_auth_total{outcome=\"refused\"} %llu\n",
	     (unsigned long long)hs->auth_ok, (unsigned long long)hs->auth_refused);
}

/* Peer ids are [A-Za-z0-9._-], so they need no escaping inside a label value. */
enum MHD_Result ags_api_serve_metrics(ags_api *api, struct MHD_Connection *c)
{
	ags_node_state *st = NULL;
	ags_hub_stats *hs = NULL;
	enum MHD_Result r;
	if (get_state(api, c, &st, &r) < 0)
		return r;
	if (get_hub(api, &hs) < 0) {
		ags_node_state_del(st);
		return ags_api_reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "", (size_t)-1,
		                           "out of memory");
	}
	uint64_t hist[AGS_API_LATENCY_BUCKETS + 1], count;
	double sum;
	pthread_mutex_lock(&api->mu);
	memcpy(hist, api->hist, sizeof(hist));
	count = api->hist_count;
	sum = api->hist_sum;
	pthread_mutex_unlock(&api->mu);

	struct text t = {0};
	uint64_t in = 0, out = 0;
	for (size_t i = 0; i < st->n_peers; i++) {
		in += st->peers[i].bytes_in;
		out += st->peers[i].bytes_out;
	}
	emit(&t,
	     "# HELP agentsync_up Whether the node is running.\n# TYPE agentsync_up gauge\n"
	     "agentsync_up %d\n",
	     st->running ? 1 : 0);
	emit(&t,
	     "# HELP agentsync_patterns Live patterns in the store.\n"
	     "# TYPE agentsync_patterns gauge\nagentsync_patterns %llu\n",
	     (unsigned long long)st->store.patterns);
	emit(&t,
	     "# HELP agentsync_store_seq Highest change-log sequence of the store.\n"
	     "# TYPE agentsync_store_seq gauge\nagentsync_store_seq %llu\n",
	     (unsigned long long)st->store.seq);
	emit(&t,
	     "# HELP agentsync_connections Open peer connections.\n"
	     "# TYPE agentsync_connections gauge\nagentsync_connections %zu\n",
	     st->connections);
	emit(&t,
	     "# HELP agentsync_syncs_total Batches sent with patterns, by outcome.\n"
	     "# TYPE agentsync_syncs_total counter\n"
	     "agentsync_syncs_total{outcome=\"success\"} %llu\n"
	     "agentsync_syncs_total{outcome=\"failure\"} %llu\n",
	     (unsigned long long)st->stats.successful_syncs,
	     (unsigned long long)st->stats.failed_syncs);
	emit(&t, "# HELP agentsync_sync_latency_seconds Time from sending a batch to its "
	         "acknowledgement.\n# TYPE agentsync_sync_latency_seconds histogram\n");
	uint64_t cum = 0;
	for (size_t b = 0; b < AGS_API_LATENCY_BUCKETS; b++) {
		cum += hist[b];
		emit(&t, "agentsync_sync_latency_seconds_bucket{le=\"%g\"} %llu\n",
		     ags_api_latency_bounds[b], (unsigned long long)cum);
	}
	emit(&t,
	     "agentsync_sync_latency_seconds_bucket{le=\"+Inf\"} %llu\n"
	     "agentsync_sync_latency_seconds_sum %.6f\n"
	     "agentsync_sync_latency_seconds_count %llu\n",
	     (unsigned long long)count, sum, (unsigned long long)count);
	/* Batch frames by the codec byte they carry (slot 3: unknown or too short). */
	static const char *const codecs[AGS_NODE_CODECS] = {"none", "gzip", "zstd", "unknown"};
	emit(&t, "# HELP agentsync_bytes_total Wire bytes of BATCH frames, by direction and "
	         "body codec.\n# TYPE agentsync_bytes_total counter\n");
	for (size_t k = 0; k < AGS_NODE_CODECS; k++)
		emit(&t,
		     "agentsync_bytes_total{direction=\"in\",codec=\"%s\"} %llu\n"
		     "agentsync_bytes_total{direction=\"out\",codec=\"%s\"} %llu\n",
		     codecs[k], (unsigned long long)st->stats.codec_bytes_in[k], codecs[k],
		     (unsigned long long)st->stats.codec_bytes_out[k]);
	emit(&t,
	     "# HELP agentsync_udp_bytes_total UDP payload bytes of the peers' QUIC "
	     "connections.\n# TYPE agentsync_udp_bytes_total counter\n"
	     "agentsync_udp_bytes_total{direction=\"in\"} %llu\n"
	     "agentsync_udp_bytes_total{direction=\"out\"} %llu\n",
	     (unsigned long long)in, (unsigned long long)out);
	emit(&t,
	     "# HELP agentsync_compression_ratio Wire bytes / raw bytes of batches sent with "
	     "patterns.\n"
	     "# TYPE agentsync_compression_ratio gauge\nagentsync_compression_ratio %g\n",
	     st->stats.compression_ratio);
	emit(&t, "# HELP agentsync_peer_connected Whether the peer is connected.\n"
	         "# TYPE agentsync_peer_connected gauge\n");
	for (size_t i = 0; i < st->n_peers; i++)
		emit(&t, "agentsync_peer_connected{peer=\"%s\"} %d\n", st->peers[i].id,
		     st->peers[i].connected ? 1 : 0);
	emit(&t,
	     "# HELP agentsync_peer_lag Changes the peer is to get that it has not acknowledged.\n"
	     "# TYPE agentsync_peer_lag gauge\n");
	for (size_t i = 0; i < st->n_peers; i++)
		emit(&t, "agentsync_peer_lag{peer=\"%s\"} %llu\n", st->peers[i].id,
		     (unsigned long long)st->peers[i].lag);
	emit(&t, "# HELP agentsync_peer_rtt_seconds Smoothed QUIC round-trip time.\n"
	         "# TYPE agentsync_peer_rtt_seconds gauge\n");
	for (size_t i = 0; i < st->n_peers; i++)
		emit(&t, "agentsync_peer_rtt_seconds{peer=\"%s\"} %.6f\n", st->peers[i].id,
		     st->peers[i].latency_ms / 1000.0);
	emit(&t, "# HELP agentsync_peer_errors_total Errors seen with the peer.\n"
	         "# TYPE agentsync_peer_errors_total counter\n");
	for (size_t i = 0; i < st->n_peers; i++)
		emit(&t, "agentsync_peer_errors_total{peer=\"%s\"} %llu\n", st->peers[i].id,
		     (unsigned long long)st->peers[i].error_count);
	emit(&t, "# HELP agentsync_peer_rejected_total Entries refused for good with the peer, "
	         "both ways.\n# TYPE agentsync_peer_rejected_total counter\n");
	for (size_t i = 0; i < st->n_peers; i++)
		emit(&t, "agentsync_peer_rejected_total{peer=\"%s\"} %llu\n", st->peers[i].id,
		     (unsigned long long)st->peers[i].rejected);
	emit(&t, "# HELP agentsync_peer_rollbacks_total Times our store or the peer's was found "
	         "to have gone back (store:rollback).\n# TYPE agentsync_peer_rollbacks_total "
	         "counter\n");
	for (size_t i = 0; i < st->n_peers; i++)
		emit(&t, "agentsync_peer_rollbacks_total{peer=\"%s\"} %llu\n", st->peers[i].id,
		     (unsigned long long)st->peers[i].rollbacks);
	emit(&t, "# HELP agentsync_peer_patterns_received_total Entries of batches received "
	         "from the peer.\n# TYPE agentsync_peer_patterns_received_total counter\n");
	for (size_t i = 0; i < st->n_peers; i++)
		emit(&t, "agentsync_peer_patterns_received_total{peer=\"%s\"} %llu\n",
		     st->peers[i].id, (unsigned long long)st->peers[i].patterns_received);
	if (hs)
		emit_hub(&t, hs);
	ags_api_emit_process(&t);
	ags_node_hub_stats_del(hs);
	ags_node_state_del(st);
	if (t.oom) {
		free(t.s);
		return ags_api_reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "", (size_t)-1,
		                           "out of memory");
	}
	return ags_api_reply(c, MHD_HTTP_OK, t.s, t.len,
	                     "text/plain; version=0.0.4; charset=utf-8");
}
