/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The native side of FederationHub (seed 004): an ags_agent, its network
 * calls (connect, sync, disconnect) and local writes run by the handle's
 * worker (nh.h), its reads made on the calling thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addon.h"

struct agent {
	ags_agent *a;
};

static void agent_free(void *impl)
{
	free(impl);
}

static void agent_teardown(struct nh *h)
{
	struct agent *g = h->impl;
	ags_agent_del(g->a);
	g->a = NULL;
}

static const struct nh_ops agent_ops = {agent_teardown, agent_free};

static void on_event(ags_agent *a, const ags_event *ev, void *user_data)
{
	(void)a;
	nh_post_event(user_data, ev);
}

static ags_agent *agt(struct nh *h)
{
	return ((struct agent *)h->impl)->a;
}

/*
 * new Agent(opts, dispatch): opts {endpoint, token, agentId, tenantId,
 * dataDir, cert, key, ca, hubId, timeoutMs, batchSize, compression}. Opens
 * the agent's store and starts its network thread; throws the library's
 * error (naming the option) on a bad one.
 */
static napi_value agent_ctor(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2], self;
	napi_get_cb_info(env, info, &argc, argv, &self, NULL);
	napi_valuetype t = napi_undefined;
	if (argc >= 1)
		napi_typeof(env, argv[0], &t);
	if (argc < 2 || t != napi_object)
		return nh_type_error(env, "FederationHub(config) takes a config object");
	static const char *const keys[] = {"endpoint", "token", "agentId", "tenantId", "dataDir",
	                                   "cert",     "key",   "ca",      "hubId"};
	enum { NKEYS = sizeof(keys) / sizeof(keys[0]) };
	char *v[NKEYS] = {0};
	uint64_t timeout = 0, batch = 0, compression = 1;
	napi_value result = NULL;
	for (size_t i = 0; i < NKEYS; i++)
		if (nh_prop_str(env, argv[0], keys[i], keys[i], &v[i]) < 0)
			goto out;
	if (nh_prop_u64(env, argv[0], "timeoutMs", "timeoutMs", &timeout) < 0 ||
	    nh_prop_u64(env, argv[0], "batchSize", "batchSize", &batch) < 0 ||
	    nh_prop_u64(env, argv[0], "compression", "compression", &compression) < 0)
		goto out;
	struct agent *g = calloc(1, sizeof(*g));
	if (!g) {
		napi_throw_error(env, "AGS_ERR_NOMEM", "out of memory");
		goto out;
	}
	struct nh *h = nh_new(env, argv[1], "agentsync.FederationHub", &agent_ops, g);
	if (!h)
		goto out;
	ags_agent_config c;
	ags_agent_config_init(&c);
	c.endpoint = v[0];
	c.token = v[1];
	c.agent_id = v[2];
	c.tenant_id = v[3];
	if (v[4])
		c.data_dir = v[4];
	c.cert = v[5];
	c.key = v[6];
	c.ca = v[7];
	c.hub_id = v[8];
	if (timeout)
		c.timeout_ms = timeout > UINT32_MAX ? UINT32_MAX : (uint32_t)timeout;
	if (batch)
		c.batch_size = batch > 100000 ? 100000 : (uint32_t)batch;
	c.compression = compression != 0;
	c.on_event = on_event;
	c.user_data = h;
	ags_error err;
	ags_error_clear(&err);
	int rc = ags_agent_new(&c, &g->a, &err);
	if (rc == 0 && napi_wrap(env, self, h, nh_wrapper_finalize, NULL, NULL) != napi_ok)
		rc = AGS_ERR_INTERNAL;
	if (rc < 0) {
		nh_wrapper_finalize(env, h, NULL);
		nh_throw(env, rc, &err, NULL);
		goto out;
	}
	nh_set_str(env, self, "agentId", ags_agent_id(g->a));
	result = self;
out:
	for (size_t i = 0; i < NKEYS; i++)
		free(v[i]);
	return result;
}

/* ---- jobs ---- */

struct ajob {
	struct nh_job j;
	char *s; /* a pattern's JSON, or an id */
	size_t len;
	ags_agent_sync_result sr;
	ags_apply_result ar;
};

static void ajob_del(struct nh_job *j)
{
	struct ajob *a = (struct ajob *)j;
	free(a->s);
	free(a);
}

static struct ajob *ajob_new(napi_env env, void (*run)(struct nh *, struct nh_job *),
                             napi_value (*done)(napi_env, struct nh *, struct nh_job *))
{
	struct ajob *a = calloc(1, sizeof(*a));
	if (!a) {
		napi_throw_error(env, "AGS_ERR_NOMEM", "out of memory");
		return NULL;
	}
	a->j.run = run;
	a->j.done = done;
	a->j.del = ajob_del;
	return a;
}

static void run_connect(struct nh *h, struct nh_job *j)
{
	j->rc = ags_agent_connect(agt(h), &j->err);
}

static napi_value done_connect(napi_env env, struct nh *h, struct nh_job *j)
{
	(void)env;
	(void)j;
	h->active = 1;
	return NULL;
}

static void run_disconnect(struct nh *h, struct nh_job *j)
{
	j->rc = ags_agent_disconnect(agt(h));
}

static napi_value done_disconnect(napi_env env, struct nh *h, struct nh_job *j)
{
	(void)env;
	(void)j;
	h->active = 0;
	return NULL;
}

static void run_sync(struct nh *h, struct nh_job *j)
{
	struct ajob *a = (struct ajob *)j;
	j->rc = ags_agent_sync(agt(h), &a->sr, &j->err);
	if (j->rc == AGS_ERR_STATE && !j->err.message[0])
		snprintf(j->err.message, sizeof(j->err.message),
		         "not connected to the federation hub: call connect() first");
}

static napi_value done_sync(napi_env env, struct nh *h, struct nh_job *j)
{
	(void)h;
	struct ajob *a = (struct ajob *)j;
	napi_value o;
	napi_create_object(env, &o);
	nh_set_num(env, o, "pulled", (double)a->sr.pulled);
	nh_set_num(env, o, "pushed", (double)a->sr.pushed);
	nh_set_num(env, o, "conflicts", (double)a->sr.conflicts);
	nh_set_num(env, o, "durationMs", a->sr.duration_ms);
	return o;
}

static void run_put(struct nh *h, struct nh_job *j)
{
	struct ajob *a = (struct ajob *)j;
	ags_pattern *p = NULL;
	j->rc = ags_pattern_parse(a->s, a->len, NULL, &p, &j->err);
	if (j->rc == 0)
		j->rc = ags_agent_put(agt(h), p, &a->ar, &j->err);
	ags_pattern_del(p);
}

static void run_delete(struct nh *h, struct nh_job *j)
{
	struct ajob *a = (struct ajob *)j;
	j->rc = ags_agent_delete(agt(h), a->s, &a->ar, &j->err);
}

static napi_value done_write(napi_env env, struct nh *h, struct nh_job *j)
{
	(void)h;
	struct ajob *a = (struct ajob *)j;
	napi_value o;
	napi_create_object(env, &o);
	nh_set_str(env, o, "outcome", ags_apply_outcome_name(a->ar.outcome));
	nh_set_num(env, o, "seq", (double)a->ar.seq);
	return o;
}

/* ---- methods ---- */

static napi_value simple(napi_env env, napi_callback_info info,
                         void (*run)(struct nh *, struct nh_job *),
                         napi_value (*done)(napi_env, struct nh *, struct nh_job *))
{
	struct nh *h = nh_this(env, info, NULL, NULL);
	struct ajob *a = h ? ajob_new(env, run, done) : NULL;
	return a ? nh_submit(h, &a->j) : NULL;
}

static napi_value m_connect(napi_env env, napi_callback_info info)
{
	return simple(env, info, run_connect, done_connect);
}

static napi_value m_disconnect(napi_env env, napi_callback_info info)
{
	return simple(env, info, run_disconnect, done_disconnect);
}

static napi_value m_sync(napi_env env, napi_callback_info info)
{
	return simple(env, info, run_sync, done_sync);
}

static napi_value with_str(napi_env env, napi_callback_info info, const char *what, size_t max,
                           void (*run)(struct nh *, struct nh_job *))
{
	size_t argc = 1;
	napi_value argv[1];
	struct nh *h = nh_this(env, info, &argc, argv);
	if (!h)
		return NULL;
	if (argc < 1)
		return nh_type_error(env, "an argument is required");
	struct ajob *a = ajob_new(env, run, done_write);
	if (!a)
		return NULL;
	if (nh_get_str(env, argv[0], what, 0, max, &a->s) < 0) {
		ajob_del(&a->j);
		return NULL;
	}
	a->len = strlen(a->s);
	return nh_submit(h, &a->j);
}

static napi_value m_put(napi_env env, napi_callback_info info)
{
	return with_str(env, info, "pattern JSON", NH_JSON_MAX, run_put);
}

static napi_value m_delete(napi_env env, napi_callback_info info)
{
	return with_str(env, info, "id", AGS_PATTERN_ID_MAX, run_delete);
}

static napi_value m_is_connected(napi_env env, napi_callback_info info)
{
	struct nh *h = nh_this(env, info, NULL, NULL);
	if (!h)
		return NULL;
	napi_value v;
	napi_get_boolean(env, ags_agent_is_connected(agt(h)) != 0, &v);
	return v;
}

/* getSyncStats(): {lastSyncTime, vectorClock (JSON text), resumed, earlyData}. */
static napi_value m_sync_stats(napi_env env, napi_callback_info info)
{
	struct nh *h = nh_this(env, info, NULL, NULL);
	if (!h)
		return NULL;
	ags_agent_sync_stats st;
	int rc = ags_agent_get_sync_stats(agt(h), &st);
	if (rc)
		return nh_throw(env, rc, NULL, NULL);
	napi_value o;
	napi_create_object(env, &o);
	nh_set_num(env, o, "lastSyncTime", (double)st.last_sync_time_ms);
	nh_set_str(env, o, "vectorClock", st.vector_clock_json ? st.vector_clock_json : "{}");
	nh_set_bool(env, o, "resumed", st.resumed);
	nh_set_bool(env, o, "earlyData", st.early_data);
	ags_agent_sync_stats_free(&st);
	return o;
}

/* getStoreState(): {patterns, seq, digest} of the local store. */
static napi_value m_store_state(napi_env env, napi_callback_info info)
{
	struct nh *h = nh_this(env, info, NULL, NULL);
	if (!h)
		return NULL;
	uint64_t patterns = 0, seq = 0;
	char digest[65] = "";
	int rc = ags_agent_store_state(agt(h), &patterns, &seq, digest);
	if (rc)
		return nh_throw(env, rc, NULL, NULL);
	napi_value o;
	napi_create_object(env, &o);
	nh_set_num(env, o, "patterns", (double)patterns);
	nh_set_num(env, o, "seq", (double)seq);
	nh_set_str(env, o, "digest", digest);
	return o;
}

static int agent_query(void *impl, const ags_query *q, ags_pattern_cb cb, void *ud)
{
	return ags_agent_query(((struct agent *)impl)->a, q, cb, ud);
}

static int agent_get(void *impl, const char *id, ags_pattern **out)
{
	return ags_agent_get(((struct agent *)impl)->a, id, out);
}

static const struct reader agent_reader = {agent_query, agent_get, "the agent's store is closed"};

static napi_value m_query(napi_env env, napi_callback_info info)
{
	return reader_query(env, info, &agent_reader);
}

static napi_value m_get(napi_env env, napi_callback_info info)
{
	return reader_get(env, info, &agent_reader);
}

napi_value agent_class(napi_env env)
{
	napi_property_descriptor props[] = {
	    {"connect", NULL, m_connect, NULL, NULL, NULL, napi_default, NULL},
	    {"sync", NULL, m_sync, NULL, NULL, NULL, napi_default, NULL},
	    {"disconnect", NULL, m_disconnect, NULL, NULL, NULL, napi_default, NULL},
	    {"isConnected", NULL, m_is_connected, NULL, NULL, NULL, napi_default, NULL},
	    {"getSyncStats", NULL, m_sync_stats, NULL, NULL, NULL, napi_default, NULL},
	    {"getStoreState", NULL, m_store_state, NULL, NULL, NULL, napi_default, NULL},
	    {"put", NULL, m_put, NULL, NULL, NULL, napi_default, NULL},
	    {"delete", NULL, m_delete, NULL, NULL, NULL, napi_default, NULL},
	    {"query", NULL, m_query, NULL, NULL, NULL, napi_default, NULL},
	    {"get", NULL, m_get, NULL, NULL, NULL, napi_default, NULL},
	    {"setEvents", NULL, m_set_events, NULL, NULL, NULL, napi_default, NULL},
	    {"ref", NULL, m_ref, NULL, NULL, NULL, napi_default, NULL},
	    {"unref", NULL, m_unref, NULL, NULL, NULL, napi_default, NULL},
	    {"closeSync", NULL, m_close_sync, NULL, NULL, NULL, napi_default, NULL},
	};
	napi_value cls = NULL;
	napi_define_class(env, "Agent", NAPI_AUTO_LENGTH, agent_ctor, NULL,
	                  sizeof(props) / sizeof(props[0]), props, &cls);
	return cls;
}
