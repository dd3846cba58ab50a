/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The native side of QUICServer: an ags_node made from the daemon's own
 * configuration parser (so names, defaults and validation are agentsyncd's),
 * its blocking calls run by the handle's worker (nh.h), its reads made on the
 * calling thread (the library's read connection).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addon.h"
#include "agentsync/certs.h"
#include "agentsyncd/config.h"

/* Most patterns one syncPatterns call may give (its parts add up to it). */
#define BATCH_MAX (16u * 1024u * 1024u)

struct server {
	ags_config *cfg;
	ags_node *node;
	int own_certs; /* no quic.tls.cert: a self-signed CA and certificate in dataDir/certs */
	/*
	 * A syncPatterns call given in parts (worker thread only): the patterns
	 * parsed so far, or the first error, until the last part applies them.
	 */
	struct {
		ags_pattern **ps;
		size_t n, cap;
		int rc;
		ags_error err;
	} pend;
};

static void pend_clear(struct server *s)
{
	ags_pattern_array_del(s->pend.ps, s->pend.n);
	s->pend.ps = NULL;
	s->pend.n = s->pend.cap = 0;
	s->pend.rc = 0;
}

static void server_free(void *impl)
{
	struct server *s = impl;
	if (!s)
		return;
	pend_clear(s);
	ags_config_del(s->cfg);
	free(s);
}

static void server_teardown(struct nh *h)
{
	struct server *s = h->impl;
	ags_node_del(s->node);
	s->node = NULL;
}

static const struct nh_ops server_ops = {server_teardown, server_free};

static void on_event(ags_node *n, const ags_event *ev, void *user_data)
{
	(void)n;
	nh_post_event(user_data, ev);
}

static struct server *srv(struct nh *h)
{
	return h->impl;
}

/* ---- constructor ---- */

/* With no TLS files: where the self-signed ones go (made at start, as agentsyncd does). */
static int plan_own_certs(ags_config *c, ags_error *err)
{
	char cert[4200], key[4200], ca[4200];
	const char *d = c->node.data_dir, *id = c->node.node_id;
	snprintf(cert, sizeof(cert), "%s/certs/%s.pem", d, id);
	snprintf(key, sizeof(key), "%s/certs/%s-key.pem", d, id);
	snprintf(ca, sizeof(ca), "%s/certs/ca.pem", d);
	if (ags_config_set_str(c, &c->node.tls.cert, cert) < 0 ||
	    ags_config_set_str(c, &c->node.tls.key, key) < 0 ||
	    ags_config_set_str(c, &c->node.tls.ca, ca) < 0) {
		err->code = AGS_ERR_NOMEM;
		return AGS_ERR_NOMEM;
	}
	return 0;
}

/* new Server(configJson, dispatch): throws the parser's error (naming the JSON path). */
static napi_value server_ctor(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2], self;
	napi_get_cb_info(env, info, &argc, argv, &self, NULL);
	char *json = NULL;
	if (argc < 2 || nh_get_str(env, argv[0], "config", 0, AGS_CONFIG_MAX_BYTES, &json) < 0)
		return json ? NULL : nh_type_error(env, "config must be a JSON string");
	struct server *s = calloc(1, sizeof(*s));
	ags_error err;
	ags_error_clear(&err);
	int rc = s ? 0 : AGS_ERR_NOMEM;
	if (rc == 0)
		rc = ags_config_parse(json, strlen(json), NULL, &s->cfg, &err);
	free(json);
	if (rc == 0)
		rc = ags_config_check_files(s->cfg, &err);
	if (rc == 0)
		rc = ags_config_load_files(s->cfg, &err);
	if (rc == 0 && !s->cfg->tls_from_file) {
		s->own_certs = 1;
		rc = plan_own_certs(s->cfg, &err);
	}
	if (rc < 0) {
		server_free(s);
		return nh_throw(env, rc, &err, NULL);
	}
	struct nh *h = nh_new(env, argv[1], "agentsync.QUICServer", &server_ops, s);
	if (!h)
		return NULL;
	ags_node_callbacks cb = {AGS_NODE_CALLBACKS_VERSION, on_event, NULL};
	rc = ags_node_new(&s->cfg->node, &cb, h, &s->node, &err);
	if (rc == 0 && napi_wrap(env, self, h, nh_wrapper_finalize, NULL, NULL) != napi_ok)
		rc = AGS_ERR_INTERNAL;
	if (rc < 0) {
		/* Not wrapped: run the wrapper's finalizer by hand (it closes the handle). */
		nh_wrapper_finalize(env, h, NULL);
		return nh_throw(env, rc, &err, NULL);
	}
	/* Warnings of the parser (unknown keys), for JavaScript to report. */
	napi_value warnings;
	napi_create_array_with_length(env, s->cfg->n_warnings, &warnings);
	for (size_t i = 0; i < s->cfg->n_warnings; i++) {
		napi_value w;
		napi_create_string_utf8(env, s->cfg->warnings[i], NAPI_AUTO_LENGTH, &w);
		napi_set_element(env, warnings, (uint32_t)i, w);
	}
	napi_set_named_property(env, self, "warnings", warnings);
	nh_set_str(env, self, "nodeId", s->cfg->node.node_id);
	return self;
}

/* ---- jobs ---- */

/* A job with the few arguments any of the server's calls takes. */
struct sjob {
	struct nh_job j;
	char *a, *b; /* strings: address and peer id, or an id */
	uint16_t port;
	char **ids; /* syncPattern's peer ids */
	size_t n_ids;
	int has_ids;
	int many;   /* syncPatterns: json is an array */
	int part;   /* ... and more parts of the same call follow */
	int abort;  /* drop the parts given so far (the call failed in JavaScript) */
	char *json; /* the pattern's (or the array's) JSON text */
	size_t json_len;
	size_t n; /* patterns applied, results in res */
	ags_apply_result *res;
};

static void sjob_del(struct nh_job *j)
{
	struct sjob *s = (struct sjob *)j;
	free(s->a);
	free(s->b);
	for (size_t i = 0; i < s->n_ids; i++)
		free(s->ids[i]);
	free(s->ids);
	free(s->json);
	free(s->res);
	free(s);
}

static struct sjob *sjob_new(napi_env env, void (*run)(struct nh *, struct nh_job *),
                             napi_value (*done)(napi_env, struct nh *, struct nh_job *))
{
	struct sjob *s = calloc(1, sizeof(*s));
	if (!s) {
		napi_throw_error(env, "AGS_ERR_NOMEM", "out of memory");
		return NULL;
	}
	s->j.run = run;
	s->j.done = done;
	s->j.del = sjob_del;
	return s;
}

static int set(struct nh_job *j, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Fails job j with `code`, the field at fault (or NULL) and a message. */
static int set(struct nh_job *j, int code, const char *field, const char *fmt, ...)
{
	ags_error_clear(&j->err);
	j->err.code = code;
	if (field)
		snprintf(j->err.field, sizeof(j->err.field), "%s", field);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(j->err.message, sizeof(j->err.message), fmt, ap);
	va_end(ap);
	return j->rc = code;
}

static void run_start(struct nh *h, struct nh_job *j)
{
	struct server *s = srv(h);
	if (!s->cfg->enabled) {
		set(j, AGS_ERR_CONFIG, "quic.enabled", "is false: nothing to start");
		return;
	}
	if (s->own_certs) {
		char dir[4200];
		snprintf(dir, sizeof(dir), "%s/certs", s->cfg->node.data_dir);
		if ((j->rc = ags_certs_self_signed(dir, s->cfg->node.node_id, &j->err)))
			return;
	}
	j->rc = ags_node_start(s->node, &j->err);
}

static napi_value done_start(napi_env env, struct nh *h, struct nh_job *j)
{
	(void)env;
	(void)j;
	h->active = 1;
	return NULL;
}

static void run_stop(struct nh *h, struct nh_job *j)
{
	j->rc = ags_node_stop(srv(h)->node);
}

static napi_value done_stop(napi_env env, struct nh *h, struct nh_job *j)
{
	(void)env;
	(void)j;
	h->active = 0;
	return NULL;
}

static void run_connect(struct nh *h, struct nh_job *j)
{
	struct sjob *s = (struct sjob *)j;
	int rc = ags_node_connect_peer(srv(h)->node, s->a, s->port, s->b);
	if (rc == AGS_ERR_EXISTS)
		set(j, rc, "peerId", "'%s' is already a peer", s->b);
	else if (rc == AGS_ERR_STATE)
		set(j, rc, NULL, "the server is not started");
	else if (rc)
		set(j, rc, NULL, "cannot add peer '%s'", s->b);
}

static void run_disconnect(struct nh *h, struct nh_job *j)
{
	struct sjob *s = (struct sjob *)j;
	int rc = ags_node_disconnect_peer(srv(h)->node, s->b);
	if (rc == AGS_ERR_NOT_FOUND)
		set(j, rc, "peerId", "no peer '%s'", s->b);
	else if (rc)
		set(j, rc, NULL, "cannot remove peer '%s'", s->b);
}

static napi_value result_obj(napi_env env, const ags_apply_result *r)
{
	napi_value o;
	napi_create_object(env, &o);
	nh_set_str(env, o, "outcome", ags_apply_outcome_name(r->outcome));
	nh_set_num(env, o, "seq", (double)r->seq);
	return o;
}

/* Adds the patterns of a part (taking them over) to the call's pending ones. */
static int pend_add(struct server *sv, ags_pattern **ps, size_t n)
{
	if (sv->pend.n + n > BATCH_MAX) {
		ags_pattern_array_del(ps, n);
		ags_error_clear(&sv->pend.err);
		sv->pend.err.code = AGS_ERR_TOO_LARGE;
		snprintf(sv->pend.err.message, sizeof(sv->pend.err.message),
		         "more than %u patterns in one syncPatterns call", BATCH_MAX);
		return sv->pend.rc = AGS_ERR_TOO_LARGE;
	}
	if (sv->pend.n + n > sv->pend.cap) {
		size_t cap = sv->pend.cap ? sv->pend.cap : 1024;
		while (cap < sv->pend.n + n)
			cap *= 2;
		ags_pattern **p = realloc(sv->pend.ps, cap * sizeof(*p));
		if (!p) {
			ags_pattern_array_del(ps, n);
			ags_error_clear(&sv->pend.err);
			sv->pend.err.code = AGS_ERR_NOMEM;
			return sv->pend.rc = AGS_ERR_NOMEM;
		}
		sv->pend.ps = p;
		sv->pend.cap = cap;
	}
	if (n)
		memcpy(sv->pend.ps + sv->pend.n, ps, n * sizeof(*ps));
	sv->pend.n += n;
	free(ps); /* the array only: the patterns are pend's now */
	return 0;
}

/* Makes "[k]..." of a part's error "[base+k]...": the index in the whole call. */
static void shift_index(ags_error *err, size_t base)
{
	size_t k;
	int used = 0;
	if (!base || sscanf(err->field, "[%zu]%n", &k, &used) != 1 || used <= 0)
		return;
	char rest[sizeof(err->field)];
	snprintf(rest, sizeof(rest), "%s", err->field + used);
	char head[32];
	int hn = snprintf(head, sizeof(head), "[%zu]", base + k);
	size_t rl = strlen(rest), cap = sizeof(err->field);
	if ((size_t)hn + rl >= cap)
		rl = cap - 1 - (size_t)hn;
	memcpy(err->field, head, (size_t)hn);
	memcpy(err->field + hn, rest, rl);
	err->field[(size_t)hn + rl] = '\0';
}

/* syncPatterns in parts: parse this part (unless an earlier one failed) and keep it. */
static void run_part(struct server *sv, struct sjob *s, ags_pattern_opts *po)
{
	if (sv->pend.rc)
		return;
	ags_pattern **ps = NULL;
	size_t n = 0;
	int rc = ags_pattern_parse_array(s->json, s->json_len, po, &ps, &n, &sv->pend.err);
	if (rc) {
		shift_index(&sv->pend.err, sv->pend.n);
		sv->pend.rc = rc;
		return;
	}
	pend_add(sv, ps, n);
}

static void run_sync(struct nh *h, struct nh_job *j)
{
	struct sjob *s = (struct sjob *)j;
	struct server *sv = srv(h);
	ags_node *node = sv->node;
	ags_pattern_opts po = {.max_bytes = sv->cfg->node.max_pattern_bytes};
	ags_pattern **ps = NULL, *one = NULL;
	if (s->abort) {
		pend_clear(sv);
		return;
	}
	if (s->many) {
		/* The last part (or the only one): everything given so far, then this. */
		run_part(sv, s, &po);
		if (s->part)
			return;
		j->rc = sv->pend.rc;
		j->err = sv->pend.err;
		ps = sv->pend.ps;
		s->n = sv->pend.n;
		sv->pend.ps = NULL;
		sv->pend.n = sv->pend.cap = 0;
		sv->pend.rc = 0;
	} else {
		j->rc = ags_pattern_parse(s->json, s->json_len, &po, &one, &j->err);
		s->n = 1;
	}
	if (j->rc) {
		ags_pattern_array_del(ps, s->n);
		s->n = 0;
		return;
	}
	s->res = calloc(s->n ? s->n : 1, sizeof(*s->res));
	if (!s->res)
		set(j, AGS_ERR_NOMEM, NULL, "out of memory");
	else if (s->many)
		j->rc = ags_node_sync_patterns(node, (const ags_pattern *const *)ps, s->n, s->res,
		                               &j->err);
	else
		j->rc = ags_node_sync_pattern(node, one,
		                              s->has_ids ? (const char *const *)s->ids : NULL,
		                              s->n_ids, s->res, &j->err);
	if (j->rc == AGS_ERR_STATE && !j->err.message[0])
		set(j, j->rc, NULL, "the server is not started");
	ags_pattern_array_del(ps, s->n);
	ags_pattern_del(one);
}

static napi_value done_sync_one(napi_env env, struct nh *h, struct nh_job *j)
{
	(void)h;
	return result_obj(env, ((struct sjob *)j)->res);
}

/*
 * syncPatterns' results as two typed arrays, [outcomes (Uint8Array of
 * ags_apply_outcome), seqs (Float64Array)]: JavaScript makes the objects,
 * far faster than one napi object per pattern.
 */
static napi_value done_sync_many(napi_env env, struct nh *h, struct nh_job *j)
{
	(void)h;
	struct sjob *s = (struct sjob *)j;
	napi_value pair, ob, sb, outcomes, seqs;
	void *op = NULL, *sp = NULL;
	if (napi_create_arraybuffer(env, s->n, &op, &ob) != napi_ok ||
	    napi_create_arraybuffer(env, s->n * sizeof(double), &sp, &sb) != napi_ok ||
	    napi_create_typedarray(env, napi_uint8_array, s->n, ob, 0, &outcomes) != napi_ok ||
	    napi_create_typedarray(env, napi_float64_array, s->n, sb, 0, &seqs) != napi_ok) {
		set(j, AGS_ERR_NOMEM, NULL, "out of memory for %zu results", s->n);
		return NULL;
	}
	for (size_t i = 0; i < s->n; i++) {
		((uint8_t *)op)[i] = (uint8_t)s->res[i].outcome;
		((double *)sp)[i] = (double)s->res[i].seq;
	}
	napi_create_array_with_length(env, 2, &pair);
	napi_set_element(env, pair, 0, outcomes);
	napi_set_element(env, pair, 1, seqs);
	return pair;
}

static void run_delete(struct nh *h, struct nh_job *j)
{
	struct sjob *s = (struct sjob *)j;
	s->res = calloc(1, sizeof(*s->res));
	if (!s->res)
		set(j, AGS_ERR_NOMEM, NULL, "out of memory");
	else
		j->rc = ags_node_delete(srv(h)->node, s->b, s->res, &j->err);
}

static void run_reload_tls(struct nh *h, struct nh_job *j)
{
	j->rc = ags_node_reload_tls(srv(h)->node, &j->err);
}

/* ---- methods ---- */

static napi_value m_start(napi_env env, napi_callback_info info)
{
	struct nh *h = nh_this(env, info, NULL, NULL);
	struct sjob *s = h ? sjob_new(env, run_start, done_start) : NULL;
	return s ? nh_submit(h, &s->j) : NULL;
}

static napi_value m_stop(napi_env env, napi_callback_info info)
{
	struct nh *h = nh_this(env, info, NULL, NULL);
	struct sjob *s = h ? sjob_new(env, run_stop, done_stop) : NULL;
	return s ? nh_submit(h, &s->j) : NULL;
}

static napi_value m_reload_tls(napi_env env, napi_callback_info info)
{
	struct nh *h = nh_this(env, info, NULL, NULL);
	struct sjob *s = h ? sjob_new(env, run_reload_tls, NULL) : NULL;
	return s ? nh_submit(h, &s->j) : NULL;
}

/* Reads a peer id argument, checked as the config checks quic.peers[].id. */
static int get_peer_id(napi_env env, napi_value v, const char *what, char **out)
{
	if (nh_get_str(env, v, what, 0, AGS_NODE_ID_MAX + 64, out) < 0)
		return -1;
	if (!ags_config_id_valid(*out)) {
		ags_error e;
		ags_error_clear(&e);
		e.code = AGS_ERR_INVALID;
		snprintf(e.field, sizeof(e.field), "%s", what);
		snprintf(e.message, sizeof(e.message),
		         "must be an id: 1 to %d letters, digits, '.', '_' or '-' (not first), got "
		         "\"%.80s\"",
		         AGS_NODE_ID_MAX, *out);
		free(*out);
		*out = NULL;
		nh_throw(env, AGS_ERR_INVALID, &e, NULL);
		return -1;
	}
	return 0;
}

/* connectToPeer(address, port, peerId) */
static napi_value m_connect(napi_env env, napi_callback_info info)
{
	size_t argc = 3;
	napi_value argv[3];
	struct nh *h = nh_this(env, info, &argc, argv);
	if (!h)
		return NULL;
	if (argc < 3)
		return nh_type_error(env, "connectToPeer(address, port, peerId) takes 3 arguments");
	struct sjob *s = sjob_new(env, run_connect, NULL);
	if (!s)
		return NULL;
	double port = 0;
	if (nh_get_str(env, argv[0], "address", 0, 253, &s->a) < 0 ||
	    get_peer_id(env, argv[2], "peerId", &s->b) < 0)
		goto fail;
	if (!s->a[0]) {
		nh_type_error(env, "address must not be empty");
		goto fail;
	}
	if (napi_get_value_double(env, argv[1], &port) != napi_ok || port < 1 || port > 65535 ||
	    port != (double)(int)port) {
		nh_type_error(env, "port must be an integer from 1 to 65535");
		goto fail;
	}
	s->port = (uint16_t)port;
	return nh_submit(h, &s->j);
fail:
	sjob_del(&s->j);
	return NULL;
}

/* disconnectFromPeer(peerId) and delete(id). */
static napi_value id_job(napi_env env, napi_callback_info info, const char *what,
                         void (*run)(struct nh *, struct nh_job *),
                         napi_value (*done)(napi_env, struct nh *, struct nh_job *))
{
	size_t argc = 1;
	napi_value argv[1];
	struct nh *h = nh_this(env, info, &argc, argv);
	if (!h)
		return NULL;
	if (argc < 1)
		return nh_type_error(env, "an id argument is required");
	struct sjob *s = sjob_new(env, run, done);
	if (!s)
		return NULL;
	if (nh_get_str(env, argv[0], what, 0, AGS_PATTERN_ID_MAX, &s->b) < 0) {
		sjob_del(&s->j);
		return NULL;
	}
	return nh_submit(h, &s->j);
}

static napi_value m_disconnect(napi_env env, napi_callback_info info)
{
	return id_job(env, info, "peerId", run_disconnect, NULL);
}

static napi_value m_delete(napi_env env, napi_callback_info info)
{
	return id_job(env, info, "id", run_delete, done_sync_one);
}

/* Copies the JSON text argument `v` into the job. */
static int take_json(napi_env env, struct sjob *s, napi_value v)
{
	if (nh_get_str(env, v, "pattern JSON", 0, NH_JSON_MAX, &s->json) < 0)
		return -1;
	s->json_len = strlen(s->json);
	return 0;
}

/* syncPattern(json, peerIds?) */
static napi_value m_sync_pattern(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2];
	struct nh *h = nh_this(env, info, &argc, argv);
	if (!h)
		return NULL;
	if (argc < 1)
		return nh_type_error(env, "syncPattern(pattern, peerIds?) needs a pattern");
	struct sjob *s = sjob_new(env, run_sync, done_sync_one);
	if (!s)
		return NULL;
	if (take_json(env, s, argv[0]) < 0)
		goto fail;
	napi_valuetype t = napi_undefined;
	if (argc > 1)
		napi_typeof(env, argv[1], &t);
	if (t != napi_undefined && t != napi_null) {
		bool is_arr = false;
		uint32_t n = 0;
		if (napi_is_array(env, argv[1], &is_arr) != napi_ok || !is_arr) {
			nh_type_error(env, "peerIds must be an array of peer ids");
			goto fail;
		}
		napi_get_array_length(env, argv[1], &n);
		s->has_ids = 1;
		s->ids = calloc(n ? n : 1, sizeof(*s->ids));
		if (!s->ids) {
			napi_throw_error(env, "AGS_ERR_NOMEM", "out of memory");
			goto fail;
		}
		for (uint32_t i = 0; i < n; i++) {
			napi_value e;
			char what[40];
			snprintf(what, sizeof(what), "peerIds[%u]", i);
			napi_get_element(env, argv[1], i, &e);
			if (get_peer_id(env, e, what, &s->ids[i]) < 0)
				goto fail;
			s->n_ids++;
		}
	}
	return nh_submit(h, &s->j);
fail:
	sjob_del(&s->j);
	return NULL;
}

/*
 * syncPatterns(json, more): json is the JSON text of an array of patterns.
 * With more === true it is one part of a call whose last part follows: the
 * worker parses it while JavaScript serialises the next one, and the last
 * part applies all of them in one transaction (or rejects with the first
 * error, its index counted over the whole call). more === "abort" drops the
 * parts given so far. Parts and aborts return nothing: the last part's
 * Promise says how the whole call went.
 */
static napi_value m_sync_patterns(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2];
	struct nh *h = nh_this(env, info, &argc, argv);
	if (!h)
		return NULL;
	if (argc < 1)
		return nh_type_error(env, "syncPatterns(patterns) needs an array of patterns");
	bool more = false;
	napi_valuetype t = napi_undefined;
	if (argc > 1)
		napi_typeof(env, argv[1], &t);
	if (t == napi_boolean)
		napi_get_value_bool(env, argv[1], &more);
	struct sjob *s = sjob_new(env, run_sync, more ? NULL : done_sync_many);
	if (!s)
		return NULL;
	s->many = 1;
	s->part = more;
	s->abort = t == napi_string;
	if (!s->abort && take_json(env, s, argv[0]) < 0) {
		sjob_del(&s->j);
		return NULL;
	}
	if (s->part || s->abort) {
		/* Their outcome comes with the last part: no Promise, no wake-up of JavaScript. */
		nh_submit_silent(h, &s->j);
		return NULL;
	}
	return nh_submit(h, &s->j);
}

/* getState(): the node's snapshot as a plain object (peers as an array of [id, state]). */
static napi_value m_get_state(napi_env env, napi_callback_info info)
{
	struct nh *h = nh_this(env, info, NULL, NULL);
	if (!h)
		return NULL;
	ags_node_state *st = NULL;
	int rc = ags_node_get_state(srv(h)->node, &st);
	if (rc)
		return nh_throw(env, rc, NULL, NULL);
	napi_value o, stats, peers, store;
	napi_create_object(env, &o);
	nh_set_bool(env, o, "running", st->running);
	nh_set_num(env, o, "connections", (double)st->connections);
	napi_create_object(env, &stats);
	nh_set_num(env, stats, "totalSyncs", (double)st->stats.total_syncs);
	nh_set_num(env, stats, "successfulSyncs", (double)st->stats.successful_syncs);
	nh_set_num(env, stats, "failedSyncs", (double)st->stats.failed_syncs);
	nh_set_num(env, stats, "averageLatency", st->stats.average_latency_ms);
	nh_set_num(env, stats, "bytesTransferred", (double)st->stats.bytes_transferred);
	nh_set_num(env, stats, "compressionRatio", st->stats.compression_ratio);
	napi_set_named_property(env, o, "stats", stats);
	napi_create_array_with_length(env, st->n_peers, &peers);
	for (size_t i = 0; i < st->n_peers; i++) {
		const ags_peer_state *p = &st->peers[i];
		napi_value pair, id, ps;
		napi_create_array_with_length(env, 2, &pair);
		napi_create_string_utf8(env, p->id, NAPI_AUTO_LENGTH, &id);
		napi_create_object(env, &ps);
		nh_set_bool(env, ps, "connected", p->connected);
		nh_set_num(env, ps, "syncCount", (double)p->sync_count);
		nh_set_num(env, ps, "errorCount", (double)p->error_count);
		nh_set_num(env, ps, "latency", p->latency_ms);
		nh_set_num(env, ps, "lag", (double)p->lag);
		nh_set_bool(env, ps, "degraded", p->degraded);
		nh_set_str(env, ps, "address", p->address);
		nh_set_num(env, ps, "bytesIn", (double)p->bytes_in);
		nh_set_num(env, ps, "bytesOut", (double)p->bytes_out);
		nh_set_num(env, ps, "ackedSeq", (double)p->acked_seq);
		napi_set_element(env, pair, 0, id);
		napi_set_element(env, pair, 1, ps);
		napi_set_element(env, peers, (uint32_t)i, pair);
	}
	napi_set_named_property(env, o, "peers", peers);
	napi_create_object(env, &store);
	nh_set_str(env, store, "id", st->store.id);
	nh_set_num(env, store, "patterns", (double)st->store.patterns);
	nh_set_num(env, store, "seq", (double)st->store.seq);
	nh_set_str(env, store, "digest", st->store.digest);
	napi_set_named_property(env, o, "store", store);
	ags_node_state_del(st);
	return o;
}

static int server_query(void *impl, const ags_query *q, ags_pattern_cb cb, void *ud)
{
	return ags_node_query(((struct server *)impl)->node, q, cb, ud);
}

static int server_get(void *impl, const char *id, ags_pattern **out)
{
	return ags_node_get(((struct server *)impl)->node, id, out);
}

static const struct reader server_reader = {server_query, server_get,
                                            "the server is not started: its store opens "
                                            "at start()"};

static napi_value m_query(napi_env env, napi_callback_info info)
{
	return reader_query(env, info, &server_reader);
}

static napi_value m_get(napi_env env, napi_callback_info info)
{
	return reader_get(env, info, &server_reader);
}

static napi_value m_port(napi_env env, napi_callback_info info)
{
	struct nh *h = nh_this(env, info, NULL, NULL);
	if (!h)
		return NULL;
	napi_value v;
	napi_create_uint32(env, ags_node_port(srv(h)->node), &v);
	return v;
}

napi_value server_class(napi_env env)
{
	napi_property_descriptor props[] = {
	    {"start", NULL, m_start, NULL, NULL, NULL, napi_default, NULL},
	    {"stop", NULL, m_stop, NULL, NULL, NULL, napi_default, NULL},
	    {"connectToPeer", NULL, m_connect, NULL, NULL, NULL, napi_default, NULL},
	    {"disconnectFromPeer", NULL, m_disconnect, NULL, NULL, NULL, napi_default, NULL},
	    {"syncPattern", NULL, m_sync_pattern, NULL, NULL, NULL, napi_default, NULL},
	    {"syncPatterns", NULL, m_sync_patterns, NULL, NULL, NULL, napi_default, NULL},
	    {"delete", NULL, m_delete, NULL, NULL, NULL, napi_default, NULL},
	    {"reloadTls", NULL, m_reload_tls, NULL, NULL, NULL, napi_default, NULL},
	    {"getState", NULL, m_get_state, NULL, NULL, NULL, napi_default, NULL},
	    {"query", NULL, m_query, NULL, NULL, NULL, napi_default, NULL},
	    {"get", NULL, m_get, NULL, NULL, NULL, napi_default, NULL},
	    {"port", NULL, m_port, NULL, NULL, NULL, napi_default, NULL},
	    {"setEvents", NULL, m_set_events, NULL, NULL, NULL, napi_default, NULL},
	    {"ref", NULL, m_ref, NULL, NULL, NULL, napi_default, NULL},
	    {"unref", NULL, m_unref, NULL, NULL, NULL, napi_default, NULL},
	    {"closeSync", NULL, m_close_sync, NULL, NULL, NULL, napi_default, NULL},
	};
	napi_value cls = NULL;
	napi_define_class(env, "Server", NAPI_AUTO_LENGTH, server_ctor, NULL,
	                  sizeof(props) / sizeof(props[0]), props, &cls);
	return cls;
}
