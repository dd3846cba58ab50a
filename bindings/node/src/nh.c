/* SPDX-License-Identifier: Apache-2.0 */
/* Native handles: worker thread, thread-safe function, lifetime (see nh.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nh.h"

enum { NH_ITEM_JOB = 1, NH_ITEM_EVENT = 2, NH_ITEM_GAP = 3 };

/* The marker of a gap: when JavaScript reaches it, it is told how many events were dropped. */
static int gap_item = NH_ITEM_GAP;

/* An event on its way to JavaScript: the strings live in buf. */
struct nh_event {
	int kind; /* NH_ITEM_EVENT */
	int type;
	int tombstone;
	uint32_t count;
	double latency;
	/* Offsets into buf, or -1 when absent. */
	long peer_id, address, error, state, pattern, pattern_id, source_id, tenant;
	size_t pattern_len;
	char buf[];
};

/* ---- errors and values ---- */

const char *nh_code_name(int code)
{
#define N(x)                                                                                       \
	case x:                                                                                    \
		return #x;
	switch (code) {
		N(AGS_OK)
		N(AGS_ERR_INVALID)
		N(AGS_ERR_NOMEM)
		N(AGS_ERR_JSON)
		N(AGS_ERR_PATTERN)
		N(AGS_ERR_TOO_LARGE)
		N(AGS_ERR_CHECKSUM)
		N(AGS_ERR_STORE)
		N(AGS_ERR_IO)
		N(AGS_ERR_NOT_FOUND)
		N(AGS_ERR_TLS)
		N(AGS_ERR_QUIC)
		N(AGS_ERR_PROTO)
		N(AGS_ERR_CLOSED)
		N(AGS_ERR_TIMEOUT)
		N(AGS_ERR_AUTH)
		N(AGS_ERR_CONFIG)
		N(AGS_ERR_STATE)
		N(AGS_ERR_AGAIN)
		N(AGS_ERR_COMPRESS)
		N(AGS_ERR_UNSUPPORTED)
		N(AGS_ERR_EXISTS)
		N(AGS_ERR_INTERNAL)
	default:
		return "AGS_ERR_UNKNOWN";
	}
#undef N
}

napi_value nh_error(napi_env env, int rc, const ags_error *err, const char *prefix)
{
	int code = err && err->code ? err->code : rc;
	const char *field = err ? err->field : "";
	const char *msg = err && err->message[0] ? err->message : ags_strerror(code);
	char text[512];
	if (field[0] || (prefix && prefix[0]))
		snprintf(text, sizeof(text), "%s%s: %s", prefix ? prefix : "", field, msg);
	else
		snprintf(text, sizeof(text), "%s", msg);
	napi_value m, e, c;
	if (napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &m) != napi_ok ||
	    napi_create_string_utf8(env, nh_code_name(code), NAPI_AUTO_LENGTH, &c) != napi_ok ||
	    napi_create_error(env, NULL, m, &e) != napi_ok)
		return NULL;
	napi_set_named_property(env, e, "code", c);
	nh_set_num(env, e, "errno", code);
	if (field[0] || (prefix && prefix[0])) {
		char path[160];
		snprintf(path, sizeof(path), "%s%s", prefix ? prefix : "", field);
		nh_set_str(env, e, "field", path);
	}
	if (err && code == AGS_ERR_JSON && err->offset != (size_t)-1)
		nh_set_num(env, e, "offset", (double)err->offset);
	return e;
}

napi_value nh_throw(napi_env env, int rc, const ags_error *err, const char *prefix)
{
	napi_value e = nh_error(env, rc, err, prefix);
	if (e)
		napi_throw(env, e);
	return NULL;
}

napi_value nh_type_error(napi_env env, const char *what)
{
	char msg[256];
	snprintf(msg, sizeof(msg), "%s", what);
	napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
	return NULL;
}

int nh_get_str(napi_env env, napi_value v, const char *what, int optional, size_t max, char **out)
{
	*out = NULL;
	napi_valuetype t;
	if (napi_typeof(env, v, &t) != napi_ok)
		return -1;
	if (optional && (t == napi_undefined || t == napi_null))
		return 0;
	char msg[200];
	if (t != napi_string) {
		snprintf(msg, sizeof(msg), "%s must be a string", what);
		nh_type_error(env, msg);
		return -1;
	}
	size_t len = 0;
	if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok)
		return -1;
	if (len > max) {
		snprintf(msg, sizeof(msg), "%s is longer than %zu bytes", what, max);
		nh_type_error(env, msg);
		return -1;
	}
	char *s = malloc(len + 1);
	if (!s) {
		napi_throw_error(env, "AGS_ERR_NOMEM", "out of memory");
		return -1;
	}
	napi_get_value_string_utf8(env, v, s, len + 1, &len);
	*out = s;
	return 0;
}

napi_status nh_set_str(napi_env env, napi_value obj, const char *key, const char *s)
{
	napi_value v;
	napi_status st = napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v);
	return st == napi_ok ? napi_set_named_property(env, obj, key, v) : st;
}

napi_status nh_set_num(napi_env env, napi_value obj, const char *key, double d)
{
	napi_value v;
	napi_status st = napi_create_double(env, d, &v);
	return st == napi_ok ? napi_set_named_property(env, obj, key, v) : st;
}

napi_status nh_set_bool(napi_env env, napi_value obj, const char *key, int b)
{
	napi_value v;
	napi_status st = napi_get_boolean(env, b != 0, &v);
	return st == napi_ok ? napi_set_named_property(env, obj, key, v) : st;
}

napi_status nh_set_str_at(napi_env env, napi_value arr, uint32_t i, const char *s)
{
	napi_value v;
	napi_status st = napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v);
	return st == napi_ok ? napi_set_element(env, arr, i, v) : st;
}

/* The property `key` of obj, or NULL when obj lacks it or it is undefined/null. */
static napi_value prop(napi_env env, napi_value obj, const char *key)
{
	napi_value v;
	napi_valuetype t;
	if (napi_get_named_property(env, obj, key, &v) != napi_ok ||
	    napi_typeof(env, v, &t) != napi_ok || t == napi_undefined || t == napi_null)
		return NULL;
	return v;
}

int nh_prop_str(napi_env env, napi_value obj, const char *key, const char *what, char **out)
{
	*out = NULL;
	napi_value v = prop(env, obj, key);
	return v ? nh_get_str(env, v, what, 0, NH_STR_MAX, out) : 0;
}

int nh_prop_u64(napi_env env, napi_value obj, const char *key, const char *what, uint64_t *out)
{
	napi_value v = prop(env, obj, key);
	if (!v)
		return 0;
	double d;
	char msg[200];
	if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0) || d > 9007199254740991.0 ||
	    d != (double)(uint64_t)d) {
		snprintf(msg, sizeof(msg), "%s must be a non-negative integer", what);
		nh_type_error(env, msg);
		return -1;
	}
	*out = (uint64_t)d;
	return 0;
}

struct nh *nh_this(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv)
{
	napi_value self;
	void *data = NULL;
	if (napi_get_cb_info(env, info, argc, argv, &self, NULL) != napi_ok)
		return NULL;
	if (napi_unwrap(env, self, &data) != napi_ok || !data) {
		nh_type_error(env, "not an agentsync native object");
		return NULL;
	}
	return data;
}

/* ---- lifetime ---- */

/* The number of handles not freed yet (for tests: were they collected?). */
static atomic_int live_handles;

static void nh_free(struct nh *h)
{
	if (h->ops->free_impl)
		h->ops->free_impl(h->impl);
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->cv);
	free(h);
	atomic_fetch_sub(&live_handles, 1);
}

/* Drops one of the two references (wrapper, TSFN); frees the handle at 0. */
static void nh_unref(struct nh *h)
{
	if (--h->refs == 0)
		nh_free(h);
}

/* Asks the worker to tear down and exit; events stop. Any thread. */
static void nh_close(struct nh *h)
{
	atomic_store(&h->quiet, 1);
	pthread_mutex_lock(&h->mu);
	h->closing = 1;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

static void nh_join(struct nh *h)
{
	if (!h->worker_joined) {
		pthread_join(h->worker, NULL);
		h->worker_joined = 1;
	}
}

/* Environment teardown: everything stops now, synchronously. */
static void nh_cleanup_hook(void *arg)
{
	struct nh *h = arg;
	h->hook_added = 0;
	nh_close(h);
	nh_join(h);
}

void nh_close_sync(struct nh *h)
{
	nh_close(h);
	nh_join(h);
}

int nh_live(void)
{
	return atomic_load(&live_handles);
}

void nh_wrapper_finalize(napi_env env, void *data, void *hint)
{
	(void)hint;
	struct nh *h = data;
	h->wrapper_gone = 1;
	if (h->dispatch) {
		napi_delete_reference(env, h->dispatch);
		h->dispatch = NULL;
	}
	/* Keep the process up until the worker has torn the library object down. */
	if (h->tsfn)
		napi_ref_threadsafe_function(env, h->tsfn);
	nh_close(h);
	nh_unref(h);
}

static void tsfn_finalize(napi_env env, void *data, void *hint)
{
	(void)hint;
	struct nh *h = data;
	/* At environment teardown this may come before the hook: stop here then. */
	nh_close(h);
	nh_join(h);
	h->tsfn = NULL; /* gone once this returns (the wrapper may outlive it) */
	if (h->hook_added) {
		napi_remove_env_cleanup_hook(env, nh_cleanup_hook, h);
		h->hook_added = 0;
	}
	nh_unref(h);
}

void nh_update_hold(struct nh *h)
{
	int want = ((h->active && h->user_ref) || h->pending > 0) && !h->wrapper_gone;
	if (want == h->held || !h->tsfn)
		return;
	if (want) {
		napi_ref_threadsafe_function(h->env, h->tsfn);
		if (h->dispatch)
			napi_reference_ref(h->env, h->dispatch, NULL);
	} else {
		napi_unref_threadsafe_function(h->env, h->tsfn);
		if (h->dispatch)
			napi_reference_unref(h->env, h->dispatch, NULL);
	}
	h->held = want;
}

void nh_set_ref(struct nh *h, int on)
{
	h->user_ref = on != 0;
	nh_update_hold(h);
}

/* ---- the worker ---- */

static void *worker_main(void *arg)
{
	struct nh *h = arg;
	for (;;) {
		pthread_mutex_lock(&h->mu);
		while (!h->head && !h->closing)
			pthread_cond_wait(&h->cv, &h->mu);
		struct nh_job *j = h->head;
		if (j) {
			h->head = j->next;
			if (!h->head)
				h->tail = NULL;
		}
		int closing = h->closing;
		pthread_mutex_unlock(&h->mu);
		if (!j)
			break; /* closing, and nothing left to run */
		if (closing) {
			/* Teardown: jobs not run yet are dropped (no JavaScript is left to tell).
			 */
			j->del(j);
			continue;
		}
		j->run(h, j);
		if (!j->deferred) {
			j->del(j); /* a job without a Promise: nothing to tell JavaScript */
			continue;
		}
		if (napi_call_threadsafe_function(h->tsfn, j, napi_tsfn_nonblocking) != napi_ok)
			j->del(j);
	}
	if (h->ops->teardown)
		h->ops->teardown(h);
	napi_release_threadsafe_function(h->tsfn, napi_tsfn_release);
	return NULL;
}

/* Queues j for the worker; 0, or -1 (j not queued) when the handle is closing. */
static int enqueue(struct nh *h, struct nh_job *j)
{
	pthread_mutex_lock(&h->mu);
	int closing = h->closing;
	if (!closing) {
		j->next = NULL;
		if (h->tail)
			h->tail->next = j;
		else
			h->head = j;
		h->tail = j;
		pthread_cond_signal(&h->cv);
	}
	pthread_mutex_unlock(&h->mu);
	return closing ? -1 : 0;
}

void nh_submit_silent(struct nh *h, struct nh_job *j)
{
	j->kind = NH_ITEM_JOB;
	j->deferred = NULL;
	ags_error_clear(&j->err);
	if (enqueue(h, j) < 0)
		j->del(j);
}

napi_value nh_submit(struct nh *h, struct nh_job *j)
{
	napi_env env = h->env;
	napi_value promise;
	j->kind = NH_ITEM_JOB;
	ags_error_clear(&j->err);
	if (napi_create_promise(env, &j->deferred, &promise) != napi_ok) {
		j->del(j);
		return NULL;
	}
	if (enqueue(h, j) < 0) {
		ags_error e;
		ags_error_clear(&e);
		e.code = AGS_ERR_CLOSED;
		snprintf(e.message, sizeof(e.message), "the object is closed");
		napi_reject_deferred(env, j->deferred, nh_error(env, AGS_ERR_CLOSED, &e, NULL));
		j->del(j);
		return promise;
	}
	h->pending++;
	nh_update_hold(h);
	return promise;
}

/* ---- events ---- */

static long put_str(char *buf, size_t *used, const char *s)
{
	if (!s)
		return -1;
	size_t n = strlen(s) + 1;
	memcpy(buf + *used, s, n);
	long at = (long)*used;
	*used += n;
	return at;
}

/*
 * Counts an event that could not be queued (the queue holds it no more) and
 * makes sure a gap marker is on its way: one marker in the queue at a time,
 * past the bound, so the gap is reported even if no event follows it.
 */
static void note_drop(struct nh *h)
{
	atomic_fetch_sub(&h->queued, 1);
	atomic_fetch_add(&h->dropped, 1);
	if (atomic_exchange(&h->gap_posted, 1))
		return;
	if (napi_call_threadsafe_function(h->tsfn, &gap_item, napi_tsfn_nonblocking) != napi_ok)
		atomic_store(&h->gap_posted, 0);
}

void nh_post_event(struct nh *h, const ags_event *ev)
{
	if (atomic_load(&h->quiet) || ev->type < 0 || ev->type >= 32 ||
	    !(atomic_load(&h->mask) & (1u << ev->type)))
		return;
	if (atomic_fetch_add(&h->queued, 1) >= NH_EVENTS_MAX) {
		note_drop(h);
		return;
	}
	const char *strs[] = {ev->peer_id,    ev->address,   ev->error, ev->state,
	                      ev->pattern_id, ev->source_id, ev->tenant};
	size_t need = 0, plen = 0;
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		need += strs[i] ? strlen(strs[i]) + 1 : 0;
	const char *pj = ev->pattern ? ags_pattern_json(ev->pattern, &plen) : NULL;
	need += pj ? plen + 1 : 0;
	struct nh_event *e = malloc(sizeof(*e) + need);
	if (!e) {
		note_drop(h);
		return;
	}
	size_t used = 0;
	e->kind = NH_ITEM_EVENT;
	e->type = ev->type;
	e->tombstone = ev->pattern ? ags_pattern_is_tombstone(ev->pattern) : 0;
	e->count = ev->pattern_count;
	e->latency = ev->latency_ms;
	e->peer_id = put_str(e->buf, &used, ev->peer_id);
	e->address = put_str(e->buf, &used, ev->address);
	e->error = put_str(e->buf, &used, ev->error);
	e->state = put_str(e->buf, &used, ev->state);
	e->pattern_id = put_str(e->buf, &used, ev->pattern_id);
	e->source_id = put_str(e->buf, &used, ev->source_id);
	e->tenant = put_str(e->buf, &used, ev->tenant);
	e->pattern = -1;
	e->pattern_len = plen;
	if (pj) {
		memcpy(e->buf + used, pj, plen);
		e->buf[used + plen] = '\0';
		e->pattern = (long)used;
	}
	if (napi_call_threadsafe_function(h->tsfn, e, napi_tsfn_nonblocking) != napi_ok) {
		atomic_fetch_sub(&h->queued, 1);
		free(e);
	}
}

static napi_value str_or_undef(napi_env env, const struct nh_event *e, long at, size_t len)
{
	napi_value v;
	if (at < 0)
		napi_get_undefined(env, &v);
	else
		napi_create_string_utf8(env, e->buf + at, len ? len : NAPI_AUTO_LENGTH, &v);
	return v;
}

/* Hands an uncaught exception of a listener to the process ('uncaughtException'). */
static void rethrow_pending(napi_env env)
{
	napi_value exc;
	if (napi_get_and_clear_last_exception(env, &exc) == napi_ok)
		napi_fatal_exception(env, exc);
}

static void deliver_event(napi_env env, struct nh *h, struct nh_event *e)
{
	napi_value fn = NULL;
	if (!h->dispatch || napi_get_reference_value(env, h->dispatch, &fn) != napi_ok || !fn)
		return;
	napi_value argv[12], undef;
	napi_get_undefined(env, &undef);
	napi_create_int32(env, e->type, &argv[0]);
	argv[1] = str_or_undef(env, e, e->peer_id, 0);
	argv[2] = str_or_undef(env, e, e->address, 0);
	argv[3] = str_or_undef(env, e, e->error, 0);
	argv[4] = str_or_undef(env, e, e->state, 0);
	argv[5] = str_or_undef(env, e, e->pattern, e->pattern_len);
	argv[6] = str_or_undef(env, e, e->pattern_id, 0);
	argv[7] = str_or_undef(env, e, e->source_id, 0);
	napi_create_uint32(env, e->count, &argv[8]);
	napi_create_double(env, e->latency, &argv[9]);
	argv[10] = str_or_undef(env, e, e->tenant, 0);
	napi_get_boolean(env, e->tombstone, &argv[11]);
	if (napi_call_function(env, undef, fn, 12, argv, NULL) == napi_pending_exception)
		rethrow_pending(env);
}

static void finish_job(napi_env env, struct nh *h, struct nh_job *j)
{
	h->pending--;
	napi_value v = NULL;
	if (j->rc == 0 && j->done)
		v = j->done(env, h, j);
	if (j->rc == 0) {
		if (!v)
			napi_get_undefined(env, &v);
		napi_resolve_deferred(env, j->deferred, v);
	} else {
		napi_reject_deferred(env, j->deferred, nh_error(env, j->rc, &j->err, NULL));
	}
	j->del(j);
	nh_update_hold(h);
}

static void call_js(napi_env env, napi_value js_cb, void *context, void *data)
{
	(void)js_cb;
	struct nh *h = context;
	int kind = *(int *)data;
	if (kind == NH_ITEM_GAP) {
		/* Cleared first: a drop from now on posts a marker of its own. */
		atomic_store(&h->gap_posted, 0);
		size_t n = atomic_exchange(&h->dropped, 0);
		napi_value fn = NULL;
		if (env && n && !atomic_load(&h->quiet) && h->dispatch &&
		    napi_get_reference_value(env, h->dispatch, &fn) == napi_ok && fn) {
			napi_handle_scope scope;
			napi_open_handle_scope(env, &scope);
			napi_value argv[2], undef;
			napi_get_undefined(env, &undef);
			napi_create_int32(env, 0, &argv[0]);
			napi_create_double(env, (double)n, &argv[1]);
			if (napi_call_function(env, undef, fn, 2, argv, NULL) ==
			    napi_pending_exception)
				rethrow_pending(env);
			napi_close_handle_scope(env, scope);
		}
		return;
	}
	if (kind == NH_ITEM_EVENT) {
		struct nh_event *e = data;
		atomic_fetch_sub(&h->queued, 1);
		if (env && !atomic_load(&h->quiet)) {
			napi_handle_scope scope;
			napi_open_handle_scope(env, &scope);
			deliver_event(env, h, e);
			napi_close_handle_scope(env, scope);
		}
		free(e);
		return;
	}
	struct nh_job *j = data;
	if (!env) {
		/* The environment is going away: nobody is left to settle the Promise. */
		j->del(j);
		return;
	}
	napi_handle_scope scope;
	napi_open_handle_scope(env, &scope);
	finish_job(env, h, j);
	napi_close_handle_scope(env, scope);
}

struct nh *nh_new(napi_env env, napi_value dispatch, const char *name, const struct nh_ops *ops,
                  void *impl)
{
	struct nh *h = calloc(1, sizeof(*h));
	if (!h) {
		if (ops->free_impl)
			ops->free_impl(impl);
		napi_throw_error(env, "AGS_ERR_NOMEM", "out of memory");
		return NULL;
	}
	atomic_fetch_add(&live_handles, 1);
	h->env = env;
	h->ops = ops;
	h->impl = impl;
	h->user_ref = 1;
	h->worker_joined = 1; /* until it runs */
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	napi_value res_name;
	if (napi_create_reference(env, dispatch, 0, &h->dispatch) != napi_ok ||
	    napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &res_name) != napi_ok)
		goto fail;
	if (napi_create_threadsafe_function(env, NULL, NULL, res_name, 0, 1, h, tsfn_finalize, h,
	                                    call_js, &h->tsfn) != napi_ok)
		goto fail;
	/* Unreferenced until something holds it (nh_update_hold). */
	napi_unref_threadsafe_function(env, h->tsfn);
	if (pthread_create(&h->worker, NULL, worker_main, h) != 0) {
		/* The TSFN's finalizer frees h once it is released. */
		h->refs = 1;
		napi_delete_reference(env, h->dispatch);
		h->dispatch = NULL;
		napi_release_threadsafe_function(h->tsfn, napi_tsfn_abort);
		napi_throw_error(env, "AGS_ERR_NOMEM", "cannot start a worker thread");
		return NULL;
	}
	h->worker_joined = 0;
	/* After the TSFN: hooks run newest first, so this one runs before the TSFN's own. */
	if (napi_add_env_cleanup_hook(env, nh_cleanup_hook, h) == napi_ok)
		h->hook_added = 1;
	h->refs = 2;
	return h;
fail:
	if (h->dispatch)
		napi_delete_reference(env, h->dispatch);
	nh_free(h);
	napi_throw_error(env, "AGS_ERR_INTERNAL", "cannot set up the native object");
	return NULL;
}
