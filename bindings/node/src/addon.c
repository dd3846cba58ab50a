/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agentsync Node-API addon: the module's exports (the native Server and
 * Agent classes, certificate helpers, event names) and what both classes
 * share (store reads, event masks, ref/unref). index.js builds the public
 * classes on top.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addon.h"
#include "agentsync/certs.h"
#include "agentsyncd/config.h"

/* ---- shared methods ---- */

napi_value m_set_events(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	struct nh *h = nh_this(env, info, &argc, argv);
	uint32_t mask = 0;
	if (!h)
		return NULL;
	if (argc < 1 || napi_get_value_uint32(env, argv[0], &mask) != napi_ok)
		return nh_type_error(env, "setEvents(mask) takes a number");
	atomic_store(&h->mask, mask);
	return NULL;
}

static napi_value set_ref(napi_env env, napi_callback_info info, int on)
{
	struct nh *h = nh_this(env, info, NULL, NULL);
	if (h)
		nh_set_ref(h, on);
	return NULL;
}

napi_value m_ref(napi_env env, napi_callback_info info)
{
	return set_ref(env, info, 1);
}

napi_value m_unref(napi_env env, napi_callback_info info)
{
	return set_ref(env, info, 0);
}

napi_value m_close_sync(napi_env env, napi_callback_info info)
{
	struct nh *h = nh_this(env, info, NULL, NULL);
	if (h)
		nh_close_sync(h);
	return NULL;
}

/* liveHandles(): native objects not yet freed (tests check that collection frees them). */
static napi_value f_live_handles(napi_env env, napi_callback_info info)
{
	(void)info;
	napi_value v;
	napi_create_int32(env, nh_live(), &v);
	return v;
}

/* ---- store reads ---- */

/* The JSON array a query builds, with a hard maximum. */
struct jbuf {
	char *p;
	size_t len, cap;
	int too_large;
};

static int jbuf_add(struct jbuf *b, const char *s, size_t n)
{
	if (b->len + n + 2 > ADDON_QUERY_MAX_BYTES) {
		b->too_large = 1;
		return AGS_ERR_TOO_LARGE;
	}
	if (b->len + n + 2 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 2)
			cap *= 2;
		if (cap > ADDON_QUERY_MAX_BYTES)
			cap = ADDON_QUERY_MAX_BYTES;
		char *p = realloc(b->p, cap);
		if (!p)
			return AGS_ERR_NOMEM;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	return 0;
}

static int add_row(void *ud, const ags_pattern *p, uint64_t seq)
{
	(void)seq;
	struct jbuf *b = ud;
	size_t n = 0;
	const char *j = ags_pattern_json(p, &n);
	int rc = jbuf_add(b, b->len > 1 ? "," : "", b->len > 1 ? 1 : 0);
	return rc ? rc : jbuf_add(b, j, n);
}

static napi_value read_error(napi_env env, int rc, const struct reader *r)
{
	ags_error e;
	ags_error_clear(&e);
	e.code = rc;
	if (rc == AGS_ERR_STATE)
		snprintf(e.message, sizeof(e.message), "%s", r->not_open);
	else if (rc == AGS_ERR_TOO_LARGE)
		snprintf(e.message, sizeof(e.message),
		         "the result is over %u bytes: ask for fewer patterns (limit, since)",
		         ADDON_QUERY_MAX_BYTES);
	return nh_throw(env, rc, &e, NULL);
}

napi_value reader_query(napi_env env, napi_callback_info info, const struct reader *r)
{
	size_t argc = 1;
	napi_value argv[1];
	struct nh *h = nh_this(env, info, &argc, argv);
	if (!h)
		return NULL;
	ags_query q = {0};
	char *type = NULL, *tag = NULL, *agent = NULL;
	uint64_t since = 0, limit = 0;
	napi_valuetype t = napi_undefined;
	if (argc > 0)
		napi_typeof(env, argv[0], &t);
	if (t == napi_object) {
		if (nh_prop_str(env, argv[0], "type", "filter.type", &type) < 0 ||
		    nh_prop_str(env, argv[0], "tag", "filter.tag", &tag) < 0 ||
		    nh_prop_str(env, argv[0], "agentId", "filter.agentId", &agent) < 0 ||
		    nh_prop_u64(env, argv[0], "since", "filter.since", &since) < 0 ||
		    nh_prop_u64(env, argv[0], "limit", "filter.limit", &limit) < 0)
			goto out;
	} else if (t != napi_undefined && t != napi_null) {
		nh_type_error(env,
		              "the filter must be an object {type, tag, agentId, since, limit}");
		goto out;
	}
	q.type = type;
	q.tag = tag;
	q.agent_id = agent;
	q.after_seq = since;
	q.limit = (size_t)limit;
	struct jbuf b = {0};
	int rc = jbuf_add(&b, "[", 1);
	if (rc == 0)
		rc = r->query(h->impl, &q, add_row, &b);
	if (rc == 0)
		rc = jbuf_add(&b, "]", 1);
	napi_value v = NULL;
	if (rc)
		read_error(env, rc, r);
	else
		napi_create_string_utf8(env, b.p, b.len, &v);
	free(b.p);
	free(type);
	free(tag);
	free(agent);
	return v;
out:
	free(type);
	free(tag);
	free(agent);
	return NULL;
}

napi_value reader_get(napi_env env, napi_callback_info info, const struct reader *r)
{
	size_t argc = 1;
	napi_value argv[1];
	struct nh *h = nh_this(env, info, &argc, argv);
	char *id = NULL;
	if (!h)
		return NULL;
	if (argc < 1 || nh_get_str(env, argv[0], "id", 0, AGS_PATTERN_ID_MAX, &id) < 0)
		return argc < 1 ? nh_type_error(env, "get(id) takes an id") : NULL;
	ags_pattern *p = NULL;
	int rc = r->get(h->impl, id, &p);
	free(id);
	napi_value v = NULL;
	if (rc == AGS_ERR_NOT_FOUND) {
		napi_get_undefined(env, &v);
	} else if (rc) {
		read_error(env, rc, r);
	} else {
		size_t n = 0;
		const char *j = ags_pattern_json(p, &n);
		napi_create_string_utf8(env, j, n, &v);
		ags_pattern_del(p);
	}
	return v;
}

/* ---- module functions ---- */

/* certNodeId(certFile): the node id the certificate names (ags_certs_node_id). */
static napi_value f_cert_node_id(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	char *path = NULL;
	if (argc < 1 || nh_get_str(env, argv[0], "certFile", 0, 4096, &path) < 0)
		return argc < 1 ? nh_type_error(env, "certNodeId(certFile)") : NULL;
	char id[AGS_CERTS_ID_MAX + 1];
	ags_error err;
	ags_error_clear(&err);
	int rc = ags_certs_node_id(path, id, &err);
	free(path);
	if (rc)
		return nh_throw(env, rc, &err, NULL);
	napi_value v;
	napi_create_string_utf8(env, id, NAPI_AUTO_LENGTH, &v);
	return v;
}

/* sanitizeId(name): a valid node id made from a host name (ags_config_sanitize_id). */
static napi_value f_sanitize_id(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	char *in = NULL;
	if (argc < 1 || nh_get_str(env, argv[0], "name", 0, 4096, &in) < 0)
		return argc < 1 ? nh_type_error(env, "sanitizeId(name)") : NULL;
	char id[AGS_NODE_ID_MAX + 1];
	ags_config_sanitize_id(in, id, sizeof(id));
	free(in);
	napi_value v;
	napi_create_string_utf8(env, id, NAPI_AUTO_LENGTH, &v);
	return v;
}

/* initCerts(dir, nodeIds, keyType): ags_certs_init on the thread pool. */
struct certs_work {
	napi_async_work work;
	napi_deferred deferred;
	char *dir;
	char **ids;
	size_t n;
	int key_type;
	int rc;
	ags_error err;
};

static void certs_exec(napi_env env, void *data)
{
	(void)env;
	struct certs_work *w = data;
	w->rc = ags_certs_init(w->dir, (const char *const *)w->ids, w->n, w->key_type, &w->err);
}

static void certs_free(struct certs_work *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->ids[i]);
	free(w->ids);
	free(w->dir);
	free(w);
}

static void certs_done(napi_env env, napi_status status, void *data)
{
	struct certs_work *w = data;
	if (status == napi_ok && w->rc == 0) {
		napi_value u;
		napi_get_undefined(env, &u);
		napi_resolve_deferred(env, w->deferred, u);
	} else {
		napi_reject_deferred(
		    env, w->deferred,
		    nh_error(env, w->rc ? w->rc : AGS_ERR_INTERNAL, &w->err, NULL));
	}
	napi_delete_async_work(env, w->work);
	certs_free(w);
}

static napi_value f_init_certs(napi_env env, napi_callback_info info)
{
	size_t argc = 3;
	napi_value argv[3];
	napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
	struct certs_work *w = calloc(1, sizeof(*w));
	if (!w) {
		napi_throw_error(env, "AGS_ERR_NOMEM", "out of memory");
		return NULL;
	}
	ags_error_clear(&w->err);
	bool is_arr = false;
	uint32_t n = 0;
	if (argc < 2 || nh_get_str(env, argv[0], "dir", 0, 4096, &w->dir) < 0)
		goto fail_type;
	if (napi_is_array(env, argv[1], &is_arr) != napi_ok || !is_arr)
		goto fail_type;
	napi_get_array_length(env, argv[1], &n);
	w->ids = calloc(n ? n : 1, sizeof(*w->ids));
	if (!w->ids)
		goto fail_type;
	for (uint32_t i = 0; i < n; i++) {
		napi_value e;
		napi_get_element(env, argv[1], i, &e);
		if (nh_get_str(env, e, "nodeIds[i]", 0, 256, &w->ids[i]) < 0) {
			certs_free(w);
			return NULL;
		}
		w->n++;
	}
	if (argc > 2) {
		char *kt = NULL;
		if (nh_get_str(env, argv[2], "keyType", 1, 16, &kt) < 0) {
			certs_free(w);
			return NULL;
		}
		if (kt && strcmp(kt, "p256") == 0)
			w->key_type = AGS_CERTS_P256;
		else if (kt && strcmp(kt, "ed25519") != 0) {
			free(kt);
			certs_free(w);
			return nh_type_error(env, "keyType must be \"ed25519\" or \"p256\"");
		}
		free(kt);
	}
	napi_value promise, name;
	napi_create_promise(env, &w->deferred, &promise);
	napi_create_string_utf8(env, "agentsync.initCerts", NAPI_AUTO_LENGTH, &name);
	napi_create_async_work(env, NULL, name, certs_exec, certs_done, w, &w->work);
	napi_queue_async_work(env, w->work);
	return promise;
fail_type:
	certs_free(w);
	return nh_type_error(env, "initCerts(dir, nodeIds, keyType?) takes a directory and an "
	                          "array of node ids");
}

static napi_value init(napi_env env, napi_value exports)
{
	napi_value v, types;
	v = server_class(env);
	if (!v)
		return NULL;
	napi_set_named_property(env, exports, "Server", v);
	v = agent_class(env);
	if (!v)
		return NULL;
	napi_set_named_property(env, exports, "Agent", v);
	struct {
		const char *name;
		napi_callback cb;
	} fns[] = {{"certNodeId", f_cert_node_id},
	           {"sanitizeId", f_sanitize_id},
	           {"initCerts", f_init_certs},
	           {"liveHandles", f_live_handles}};
	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].cb, NULL, &v);
		napi_set_named_property(env, exports, fns[i].name, v);
	}
	/* Event names by type, from the library (ags_event_name). */
	napi_create_object(env, &types);
	for (int t = 1; t < 32; t++) {
		const char *name = ags_event_name(t);
		if (strcmp(name, "unknown") == 0)
			break;
		nh_set_num(env, types, name, t);
	}
	napi_set_named_property(env, exports, "eventTypes", types);
	/* Outcome names by number (ags_apply_outcome_name), for syncPatterns' results. */
	napi_value outcomes;
	napi_create_array(env, &outcomes);
	for (int o = 0; o <= AGS_APPLY_CONFLICT_LOST; o++)
		nh_set_str_at(env, outcomes, (uint32_t)o, ags_apply_outcome_name(o));
	napi_set_named_property(env, exports, "outcomes", outcomes);
	nh_set_str(env, exports, "version", AGS_VERSION_STRING);
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
