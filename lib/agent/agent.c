/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent side of the federation hub (include/agentsync/agent.h): a node
 * in agent mode (no incoming connections, one upstream hub dialled on
 * demand), driven by blocking calls that wait for the node's loop thread,
 * plus the TLS resumption state kept in the data directory.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yyjson.h>

#include "agentsync/agent.h"
#include "base64.h"
#include "error.h"
#include "jwtauth.h"
#include "node_agent.h"

#define RESUME_FILE      "hub-session"
#define RESUME_MAGIC     "agentsync-hub-session 1\n"
#define RESUME_MAX       (64 * 1024)
#define CONFLICT_IDS_MAX 10000

struct ags_agent {
	ags_node *node;
	ags_agent_config cfg; /* strings point into `owned` */
	char *owned[8];
	char sub[AGS_JWT_SUB_MAX + 1];
	char tenant[AGS_JWT_TENANT_MAX + 1];
	int started;           /* the node is started (ags_agent_new succeeded) */
	pthread_mutex_t op_mu; /* one connect / sync / disconnect at a time */
	pthread_mutex_t mu;    /* what follows */
	char **conflict_ids;   /* distinct records with a conflict since the last sync */
	size_t n_conflicts;
	int64_t last_sync_ms;
	int resumed, early_data;
	int wanted; /* between a connect that succeeded and a disconnect */
};

AGS_EXPORT void ags_agent_config_init(ags_agent_config *c)
{
	memset(c, 0, sizeof(*c));
	c->version = AGS_AGENT_CONFIG_VERSION;
	c->data_dir = "./agentsync-agent";
	c->timeout_ms = 30000;
	c->batch_size = 100;
	c->compression = 1;
}

/* ---- the token's claims, read without verifying ---- */

/*
 * Reads the token's sub and tenant. A missing one is taken from `sub_dflt` /
 * `tenant_dflt` (the configuration) so that the hub, which verifies tokens,
 * is the one to refuse it, with its reason.
 */
static int token_claims(const char *token, const char *sub_dflt, const char *tenant_dflt, char *sub,
                        size_t sub_cap, char *tenant, size_t tenant_cap, ags_error *err)
{
	const char *d1 = strchr(token, '.');
	const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	if (!d1 || !d2)
		return ags_error_set(err, AGS_ERR_CONFIG, "token",
		                     "is not a JWT (header.payload.sig)");
	size_t n = (size_t)(d2 - d1 - 1), len = 0;
	uint8_t *pl = NULL;
	int rv =
	    n > AGS_JWT_MAX_BYTES ? AGS_ERR_TOO_LARGE : ags_base64url_decode(d1 + 1, n, &pl, &len);
	if (rv == AGS_ERR_NOMEM)
		return ags_error_set(err, rv, NULL, NULL);
	if (rv)
		return ags_error_set(err, AGS_ERR_CONFIG, "token", "payload is not base64url");
	yyjson_doc *doc = yyjson_read((const char *)pl, len, 0);
	free(pl);
	yyjson_val *root = doc ? yyjson_doc_get_root(doc) : NULL;
	yyjson_val *s = yyjson_obj_get(root, "sub"), *t = yyjson_obj_get(root, "tenant");
	const char *sv = yyjson_is_str(s) ? yyjson_get_str(s) : sub_dflt;
	const char *tv = yyjson_is_str(t) ? yyjson_get_str(t)
	                 : tenant_dflt    ? tenant_dflt
	                                  : "default";
	if (!sv || strlen(sv) >= sub_cap || strlen(tv) >= tenant_cap) {
		yyjson_doc_free(doc);
		return ags_error_set(err, AGS_ERR_CONFIG, "token",
		                     "the payload needs a string claim 'sub' (or set agentId)");
	}
	snprintf(sub, sub_cap, "%s", sv);
	snprintf(tenant, tenant_cap, "%s", tv);
	yyjson_doc_free(doc);
	return 0;
}

/* ---- events ---- */

static void note_conflict(ags_agent *a, const char *id)
{
	pthread_mutex_lock(&a->mu);
	size_t i;
	for (i = 0; i < a->n_conflicts; i++)
		if (strcmp(a->conflict_ids[i], id) == 0)
			break;
	if (i == a->n_conflicts && a->n_conflicts < CONFLICT_IDS_MAX) {
		char *d = strdup(id);
		if (d)
			a->conflict_ids[a->n_conflicts++] = d;
	}
	pthread_mutex_unlock(&a->mu);
}

static void on_event(ags_node *n, const ags_event *ev, void *ud)
{
	(void)n;
	ags_agent *a = ud;
	if (ev->type == AGS_EV_PATTERN_CONFLICT && ev->pattern_id && a->conflict_ids)
		note_conflict(a, ev->pattern_id);
	if (a->cfg.on_event)
		a->cfg.on_event(a, ev, a->cfg.user_data);
}

static void on_log(ags_node *n, int level, const char *msg, void *ud)
{
	(void)n;
	ags_agent *a = ud;
	if (a->cfg.on_log)
		a->cfg.on_log(a, level, msg, a->cfg.user_data);
}

/* ---- resumption state ---- */

static void resume_path(const ags_agent *a, char *buf, size_t cap, const char *suffix)
{
	snprintf(buf, cap, "%s/%s%s", a->cfg.data_dir, RESUME_FILE, suffix);
}

/* Saves the hub's id and TLS resumption state (atomically: temporary file, rename). */
static void resume_save(ags_agent *a)
{
	char *id = NULL;
	uint8_t *blob = NULL;
	size_t blob_len = 0;
	if (ags_node_agent_export(a->node, &id, &blob, &blob_len) == 0) {
		char tmp[4096], path[4096];
		resume_path(a, tmp, sizeof(tmp), ".tmp");
		resume_path(a, path, sizeof(path), "");
		FILE *f = fopen(tmp, "wb");
		int ok = f != NULL;
		if (f) {
			(void)chmod(tmp, 0600);
			ok = fprintf(f, "%s%s\n", RESUME_MAGIC, id) > 0 &&
			     fwrite(blob, 1, blob_len, f) == blob_len && fflush(f) == 0 &&
			     fsync(fileno(f)) == 0;
			ok = fclose(f) == 0 && ok;
		}
		if (ok && rename(tmp, path) == 0)
			ags_node_agent_log(a->node, AGS_LOG_DEBUG,
			                   "saved the TLS session of hub %s", id);
		else
			unlink(tmp);
	}
	free(id);
	free(blob);
}

/* Loads the resumption state a previous run saved, if it is for our hub. */
static void resume_load(ags_agent *a)
{
	char path[4096];
	resume_path(a, path, sizeof(path), "");
	FILE *f = fopen(path, "rb");
	if (!f)
		return;
	uint8_t *buf = malloc(RESUME_MAX);
	size_t n = buf ? fread(buf, 1, RESUME_MAX, f) : 0;
	fclose(f);
	size_t ml = strlen(RESUME_MAGIC);
	char *nl = n > ml ? memchr(buf + ml, '\n', n - ml) : NULL;
	if (!buf || n == RESUME_MAX || !nl || memcmp(buf, RESUME_MAGIC, ml) != 0) {
		free(buf);
		return;
	}
	*nl = '\0';
	const char *id = (const char *)buf + ml;
	if (!a->cfg.hub_id || strcmp(a->cfg.hub_id, id) == 0) {
		size_t off = (size_t)((uint8_t *)nl + 1 - buf);
		if (ags_node_agent_import(a->node, id, buf + off, n - off) == 0)
			ags_node_agent_log(a->node, AGS_LOG_DEBUG,
			                   "loaded the TLS session of hub %s", id);
	}
	free(buf);
}

/* ---- lifecycle ---- */

static const char *keep(ags_agent *a, size_t i, const char *s, int *oom)
{
	if (!s)
		return NULL;
	a->owned[i] = strdup(s);
	if (!a->owned[i])
		*oom = 1;
	return a->owned[i];
}

AGS_EXPORT int ags_agent_new(const ags_agent_config *cfg, ags_agent **out, ags_error *err)
{
	if (!cfg || !out)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "cfg and out are required");
	if (cfg->version != AGS_AGENT_CONFIG_VERSION)
		return ags_error_set(err, AGS_ERR_CONFIG, "version",
		                     "config not initialised with ags_agent_config_init");
	if (!cfg->endpoint)
		return ags_error_set(err, AGS_ERR_CONFIG, "endpoint", "is required");
	if (!cfg->token || !*cfg->token)
		return ags_error_set(err, AGS_ERR_CONFIG, "token", "is required");
	if (!cfg->cert || !cfg->key || !cfg->ca)
		return ags_error_set(err, AGS_ERR_CONFIG,
		                     !cfg->cert  ? "cert"
		                     : !cfg->key ? "key"
		                                 : "ca",
		                     "is required");
	ags_agent *a = calloc(1, sizeof(*a));
	if (!a)
		return ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
	pthread_mutex_init(&a->op_mu, NULL);
	pthread_mutex_init(&a->mu, NULL);
	int rv = token_claims(cfg->token, cfg->agent_id, cfg->tenant_id, a->sub, sizeof(a->sub),
	                      a->tenant, sizeof(a->tenant), err);
	if (rv)
		goto fail;
	if (cfg->agent_id && strcmp(cfg->agent_id, a->sub) != 0) {
		rv = ags_error_set(err, AGS_ERR_CONFIG, "agentId",
		                   "'%.64s' is not the token's sub '%.64s'", cfg->agent_id, a->sub);
		goto fail;
	}
	if (cfg->tenant_id && strcmp(cfg->tenant_id, a->tenant) != 0) {
		rv = ags_error_set(err, AGS_ERR_CONFIG, "tenantId",
		                   "'%.64s' is not the token's tenant '%.64s'", cfg->tenant_id,
		                   a->tenant);
		goto fail;
	}
	int oom = 0;
	a->cfg = *cfg;
	a->cfg.endpoint = keep(a, 0, cfg->endpoint, &oom);
	a->cfg.token = keep(a, 1, cfg->token, &oom);
	a->cfg.data_dir = keep(a, 2, cfg->data_dir ? cfg->data_dir : "./agentsync-agent", &oom);
	a->cfg.cert = keep(a, 3, cfg->cert, &oom);
	a->cfg.key = keep(a, 4, cfg->key, &oom);
	a->cfg.ca = keep(a, 5, cfg->ca, &oom);
	a->cfg.hub_id = keep(a, 6, cfg->hub_id, &oom);
	a->cfg.agent_id = a->sub;
	a->cfg.tenant_id = a->tenant;
	a->conflict_ids = calloc(CONFLICT_IDS_MAX, sizeof(*a->conflict_ids));
	if (oom || !a->conflict_ids) {
		rv = ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
		goto fail;
	}
	if (!a->cfg.timeout_ms)
		a->cfg.timeout_ms = 30000;

	char host[256];
	uint16_t port;
	if (ags_node_parse_endpoint(a->cfg.endpoint, host, sizeof(host), &port) != 0) {
		rv = ags_error_set(err, AGS_ERR_CONFIG, "endpoint",
		                   "must be quic://host:port, got '%.80s'", a->cfg.endpoint);
		goto fail;
	}
	ags_node_config nc;
	ags_node_config_init(&nc);
	nc.node_id = a->sub;
	nc.tenant = a->tenant;
	nc.data_dir = a->cfg.data_dir;
	/* The socket only dials: bind loopback for a loopback hub, else any address. */
	nc.host = strchr(host, ':')               ? (strcmp(host, "::1") == 0 ? "::1" : "::")
	          : strncmp(host, "127.", 4) == 0 ? "127.0.0.1"
	                                          : "0.0.0.0";
	nc.port = 0;
	nc.tls.cert = a->cfg.cert;
	nc.tls.key = a->cfg.key;
	nc.tls.ca = a->cfg.ca;
	if (cfg->batch_size)
		nc.batch_size = cfg->batch_size;
	nc.compression = cfg->compression;
	nc.hub.upstream.endpoint = a->cfg.endpoint;
	nc.hub.upstream.token = a->cfg.token;
	nc.hub.upstream.hub_id = a->cfg.hub_id;
	ags_node_callbacks cb = {AGS_NODE_CALLBACKS_VERSION, on_event, on_log};
	if ((rv = ags_node_new(&nc, &cb, a, &a->node, err)))
		goto fail;
	if ((rv = ags_node_agent_mode(a->node)))
		goto fail;
	if ((rv = ags_node_start(a->node, err)))
		goto fail;
	a->started = 1;
	resume_load(a);
	*out = a;
	return 0;
fail:
	ags_agent_del(a);
	return rv;
}

AGS_EXPORT void ags_agent_del(ags_agent *a)
{
	if (!a)
		return;
	if (a->node) {
		if (a->started)
			ags_agent_disconnect(a);
		ags_node_del(a->node);
	}
	for (size_t i = 0; a->conflict_ids && i < a->n_conflicts; i++)
		free(a->conflict_ids[i]);
	free(a->conflict_ids);
	for (size_t i = 0; i < sizeof(a->owned) / sizeof(a->owned[0]); i++)
		free(a->owned[i]);
	pthread_mutex_destroy(&a->op_mu);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

AGS_EXPORT const char *ags_agent_id(const ags_agent *a)
{
	return a ? a->sub : NULL;
}

/* ---- operations ---- */

AGS_EXPORT int ags_agent_connect(ags_agent *a, ags_error *err)
{
	if (!a)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "agent is NULL");
	pthread_mutex_lock(&a->op_mu);
	ags_node_agent_result r;
	int rv = ags_node_agent_run(a->node, AGS_NODE_AGENT_CONNECT, a->cfg.timeout_ms, &r, err);
	if (rv == AGS_ERR_TIMEOUT)
		ags_node_agent_disconnect(a->node); /* no attempt behind the caller's back */
	if (rv == 0) {
		pthread_mutex_lock(&a->mu);
		a->resumed = r.resumed;
		a->early_data = r.early_data;
		a->wanted = 1;
		pthread_mutex_unlock(&a->mu);
		resume_save(a);
	}
	pthread_mutex_unlock(&a->op_mu);
	return rv;
}

AGS_EXPORT int ags_agent_sync(ags_agent *a, ags_agent_sync_result *res, ags_error *err)
{
	if (!a)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "agent is NULL");
	pthread_mutex_lock(&a->op_mu);
	ags_node_agent_result r;
	int rv = ags_node_agent_run(a->node, AGS_NODE_AGENT_SYNC, a->cfg.timeout_ms, &r, err);
	if (rv == 0) {
		pthread_mutex_lock(&a->mu);
		uint64_t conflicts = a->n_conflicts;
		for (size_t i = 0; i < a->n_conflicts; i++)
			free(a->conflict_ids[i]);
		a->n_conflicts = 0;
		a->last_sync_ms = ags_now_ms();
		pthread_mutex_unlock(&a->mu);
		if (res) {
			res->pulled = r.pulled;
			res->pushed = r.pushed;
			res->conflicts = conflicts;
			res->duration_ms = r.duration_ms;
		}
		resume_save(a);
	}
	pthread_mutex_unlock(&a->op_mu);
	return rv;
}

AGS_EXPORT int ags_agent_disconnect(ags_agent *a)
{
	if (!a || !a->node)
		return AGS_ERR_INVALID;
	pthread_mutex_lock(&a->op_mu);
	pthread_mutex_lock(&a->mu);
	a->wanted = 0;
	pthread_mutex_unlock(&a->mu);
	resume_save(a);
	/* Waits for the close: until then the connection still counts as connected,
	 * and a connect() would take it for the live one. */
	int rv =
	    ags_node_agent_run(a->node, AGS_NODE_AGENT_DISCONNECT, a->cfg.timeout_ms, NULL, NULL);
	pthread_mutex_unlock(&a->op_mu);
	return rv == AGS_ERR_STATE ? 0 : rv;
}

AGS_EXPORT int ags_agent_is_connected(ags_agent *a)
{
	if (!a || !a->node)
		return 0;
	/* A connection that disconnect() closes can take a moment to go: it no longer counts. */
	pthread_mutex_lock(&a->mu);
	int wanted = a->wanted;
	pthread_mutex_unlock(&a->mu);
	if (!wanted)
		return 0;
	ags_node_state *st = NULL;
	if (ags_node_get_state(a->node, &st) != 0)
		return 0;
	int up = 0;
	for (size_t i = 0; i < st->n_peers; i++)
		up |= st->peers[i].connected;
	ags_node_state_del(st);
	return up;
}

AGS_EXPORT int ags_agent_get_sync_stats(ags_agent *a, ags_agent_sync_stats *out)
{
	if (!a || !out)
		return AGS_ERR_INVALID;
	memset(out, 0, sizeof(*out));
	int rv = ags_node_agent_clock(a->node, &out->vector_clock_json);
	pthread_mutex_lock(&a->mu);
	out->last_sync_time_ms = a->last_sync_ms;
	out->resumed = a->resumed;
	out->early_data = a->early_data;
	pthread_mutex_unlock(&a->mu);
	return rv;
}

AGS_EXPORT void ags_agent_sync_stats_free(ags_agent_sync_stats *st)
{
	if (!st)
		return;
	free(st->vector_clock_json);
	st->vector_clock_json = NULL;
}

AGS_EXPORT int ags_agent_put(ags_agent *a, const ags_pattern *p, ags_apply_result *res,
                             ags_error *err)
{
	if (!a)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "agent is NULL");
	return ags_node_sync_pattern(a->node, p, NULL, 0, res, err);
}

AGS_EXPORT int ags_agent_delete(ags_agent *a, const char *id, ags_apply_result *res, ags_error *err)
{
	if (!a)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "agent is NULL");
	return ags_node_delete(a->node, id, res, err);
}

AGS_EXPORT int ags_agent_get(ags_agent *a, const char *id, ags_pattern **out)
{
	return a ? ags_node_get(a->node, id, out) : AGS_ERR_INVALID;
}

AGS_EXPORT int ags_agent_query(ags_agent *a, const ags_query *q, ags_pattern_cb cb, void *user_data)
{
	return a ? ags_node_query(a->node, q, cb, user_data) : AGS_ERR_INVALID;
}

AGS_EXPORT int ags_agent_store_state(ags_agent *a, uint64_t *patterns, uint64_t *seq,
                                     char digest[65])
{
	if (!a)
		return AGS_ERR_INVALID;
	return ags_node_agent_store_state(a->node, patterns, seq, digest);
}
