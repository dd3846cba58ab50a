/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Python objects <-> JSON, with yyjson: patterns given by Python become JSON
 * text for ags_pattern_parse(); patterns and events from the library become
 * dicts.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yyjson.h>

#include "pyags.h"

/* Patterns per chunk of a batch: converted with the GIL, then parsed without it. */
#define CHUNK 1024

/* Patterns converted between two chances for other threads to take the GIL. */
#define YIELD_EVERY 128

/* Most patterns in one sync_patterns call, and most records one read returns. */
#define BATCH_MAX (1000u * 1000u)
#define QUERY_MAX (10u * 1000u * 1000u)

/*
 * The walk from a Python value to a yyjson value. Deeper than this is refused
 * here (the library refuses anything deeper than AGS_PATTERN_MAX_DEPTH with
 * its own message; one more level lets it say so).
 */
#define WALK_MAX_DEPTH (AGS_PATTERN_MAX_DEPTH + 1)

struct walk {
	yyjson_mut_doc *doc;
	/* The path to the value being converted: a key (str) or an index per level. */
	PyObject *key[WALK_MAX_DEPTH + 1];
	Py_ssize_t idx[WALK_MAX_DEPTH + 1];
	int depth;
	Py_ssize_t index; /* batch index, or -1 */
};

/* Writes the walk's path ("data.runs[2].name") into buf. */
static void walk_path(const struct walk *w, char *buf, size_t cap)
{
	size_t used = 0;
	buf[0] = '\0';
	for (int l = 1; l <= w->depth && used < cap; l++) {
		int n;
		if (w->key[l]) {
			const char *k = PyUnicode_AsUTF8AndSize(w->key[l], NULL);
			if (!k) {
				PyErr_Clear();
				k = "?";
			}
			n = snprintf(buf + used, cap - used, "%s%s", used ? "." : "", k);
		} else {
			n = snprintf(buf + used, cap - used, "[%zd]", w->idx[l]);
		}
		if (n < 0)
			break;
		used += (size_t)n;
	}
}

static int walk_fail(struct walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Sets a PatternError for the value at the walk's path. Returns -1. */
static int walk_fail(struct walk *w, const char *fmt, ...)
{
	ags_error e;
	ags_error_clear(&e);
	e.code = AGS_ERR_PATTERN;
	walk_path(w, e.field, sizeof(e.field));
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e.message, sizeof(e.message), fmt, ap);
	va_end(ap);
	pyags_raise(&e, AGS_ERR_PATTERN, PYAGS_CTX_PATTERN, w->index);
	return -1;
}

static int walk_value(struct walk *w, PyObject *o, yyjson_mut_val **out);

static int walk_dict(struct walk *w, PyObject *o, yyjson_mut_val **out)
{
	yyjson_mut_val *obj = yyjson_mut_obj(w->doc);
	if (!obj) {
		PyErr_NoMemory();
		return -1;
	}
	Py_ssize_t pos = 0;
	PyObject *k, *v;
	while (PyDict_Next(o, &pos, &k, &v)) {
		w->key[w->depth] = k;
		if (!PyUnicode_Check(k)) {
			/* The path names the parent; the message says which key. */
			w->depth--;
			PyObject *r = PyObject_Repr(k);
			const char *rs = r ? PyUnicode_AsUTF8AndSize(r, NULL) : NULL;
			int rc = walk_fail(w, "keys must be strings, got %s", rs ? rs : "?");
			Py_XDECREF(r);
			w->depth++;
			return rc;
		}
		Py_ssize_t kl;
		const char *ks = PyUnicode_AsUTF8AndSize(k, &kl);
		if (!ks) {
			PyErr_Clear();
			return walk_fail(w, "%s", "key is not valid UTF-8 (a lone surrogate?)");
		}
		yyjson_mut_val *kv = yyjson_mut_strn(w->doc, ks, (size_t)kl), *vv = NULL;
		if (!kv) {
			PyErr_NoMemory();
			return -1;
		}
		if (walk_value(w, v, &vv) < 0)
			return -1;
		if (!yyjson_mut_obj_add(obj, kv, vv)) {
			PyErr_NoMemory();
			return -1;
		}
	}
	*out = obj;
	return 0;
}

static int walk_seq(struct walk *w, PyObject *o, int is_list, yyjson_mut_val **out)
{
	yyjson_mut_val *arr = yyjson_mut_arr(w->doc);
	if (!arr) {
		PyErr_NoMemory();
		return -1;
	}
	Py_ssize_t n = is_list ? PyList_Size(o) : PyTuple_Size(o);
	for (Py_ssize_t i = 0; i < n; i++) {
		PyObject *v = is_list ? PyList_GetItem(o, i) : PyTuple_GetItem(o, i);
		yyjson_mut_val *vv = NULL;
		if (!v)
			return -1;
		w->key[w->depth] = NULL;
		w->idx[w->depth] = i;
		if (walk_value(w, v, &vv) < 0)
			return -1;
		if (!yyjson_mut_arr_append(arr, vv)) {
			PyErr_NoMemory();
			return -1;
		}
	}
	*out = arr;
	return 0;
}

/* An int outside 64 bits: its decimal text, as a raw JSON number. */
static int walk_bigint(struct walk *w, PyObject *o, yyjson_mut_val **out)
{
	PyObject *s = PyObject_Str(o);
	Py_ssize_t n;
	const char *t = s ? PyUnicode_AsUTF8AndSize(s, &n) : NULL;
	*out = t ? yyjson_mut_rawncpy(w->doc, t, (size_t)n) : NULL;
	Py_XDECREF(s);
	if (!*out) {
		if (!PyErr_Occurred())
			PyErr_NoMemory();
		return -1;
	}
	return 0;
}

static int walk_value(struct walk *w, PyObject *o, yyjson_mut_val **out)
{
	yyjson_mut_doc *d = w->doc;
	if (o == Py_None) {
		*out = yyjson_mut_null(d);
	} else if (o == Py_True || o == Py_False) {
		*out = yyjson_mut_bool(d, o == Py_True);
	} else if (PyLong_Check(o)) {
		int overflow = 0;
		long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
		if (v == -1 && PyErr_Occurred())
			return -1;
		if (!overflow) {
			*out = yyjson_mut_sint(d, v);
		} else {
			unsigned long long u = overflow > 0 ? PyLong_AsUnsignedLongLong(o) : 0;
			if (overflow > 0 && !PyErr_Occurred()) {
				*out = yyjson_mut_uint(d, u);
			} else {
				PyErr_Clear();
				return walk_bigint(w, o, out);
			}
		}
	} else if (PyFloat_Check(o)) {
		double v = PyFloat_AsDouble(o);
		if (!isfinite(v))
			return walk_fail(w, "must be a finite number, got %s",
			                 isnan(v) ? "nan" : "inf");
		*out = yyjson_mut_real(d, v);
	} else if (PyUnicode_Check(o)) {
		Py_ssize_t n;
		const char *s = PyUnicode_AsUTF8AndSize(o, &n);
		if (!s) {
			PyErr_Clear();
			return walk_fail(w, "%s", "is not valid UTF-8 (a lone surrogate?)");
		}
		/* Not copied: the text is written out before the GIL is released. */
		*out = yyjson_mut_strn(d, s, (size_t)n);
	} else if (PyDict_Check(o) || PyList_Check(o) || PyTuple_Check(o)) {
		if (w->depth >= WALK_MAX_DEPTH)
			return walk_fail(w, "nested more than %d levels deep (or a cycle)",
			                 WALK_MAX_DEPTH);
		w->depth++;
		int rc =
		    PyDict_Check(o) ? walk_dict(w, o, out) : walk_seq(w, o, PyList_Check(o), out);
		w->depth--;
		return rc;
	} else {
		PyObject *tn = PyType_GetName(Py_TYPE(o));
		const char *ts = tn ? PyUnicode_AsUTF8AndSize(tn, NULL) : NULL;
		int rc =
		    walk_fail(w,
		              "is not JSON: a value of type '%s' (JSON holds dict, list, tuple, "
		              "str, int, float, bool and None)",
		              ts ? ts : "?");
		Py_XDECREF(tn);
		return rc;
	}
	if (!*out) {
		PyErr_NoMemory();
		return -1;
	}
	return 0;
}

/*
 * Copies the text of a str or bytes object, with `alc` (NULL: malloc).
 * Returns 1 when `obj` is one, 0 if not, -1 with an exception set.
 */
static int text_of(PyObject *obj, const yyjson_alc *alc, char **json, size_t *len)
{
	const char *s;
	Py_ssize_t n;
	if (PyUnicode_Check(obj)) {
		s = PyUnicode_AsUTF8AndSize(obj, &n);
		if (!s)
			return -1;
	} else if (PyBytes_Check(obj)) {
		char *b;
		if (PyBytes_AsStringAndSize(obj, &b, &n) < 0)
			return -1;
		s = b;
	} else {
		return 0;
	}
	*json = alc ? alc->malloc(alc->ctx, (size_t)n + 1) : malloc((size_t)n + 1);
	if (!*json) {
		PyErr_NoMemory();
		return -1;
	}
	memcpy(*json, s, (size_t)n);
	(*json)[n] = '\0';
	*len = (size_t)n;
	return 1;
}

/*
 * Converts one pattern with the document `doc` (shared by a chunk); the text
 * is allocated with `alc` (NULL: malloc, to be freed with free()).
 */
static int pattern_text(yyjson_mut_doc *doc, const yyjson_alc *alc, PyObject *obj, Py_ssize_t index,
                        char **json, size_t *len)
{
	int t = text_of(obj, alc, json, len);
	if (t != 0)
		return t < 0 ? -1 : 0;
	struct walk w = {.doc = doc, .depth = 0, .index = index};
	if (!PyDict_Check(obj)) {
		walk_fail(&w, "%s", "a pattern must be a dict, or JSON text (str or bytes)");
		return -1;
	}
	yyjson_mut_val *root = NULL;
	if (walk_value(&w, obj, &root) < 0)
		return -1;
	*json = yyjson_mut_val_write_opts(root, 0, alc, len, NULL);
	if (!*json) {
		PyErr_NoMemory();
		return -1;
	}
	return 0;
}

int pyags_pattern_text(PyObject *obj, Py_ssize_t index, char **json, size_t *len)
{
	yyjson_mut_doc *doc = yyjson_mut_doc_new(NULL);
	if (!doc) {
		PyErr_NoMemory();
		return -1;
	}
	int rc = pattern_text(doc, NULL, obj, index, json, len);
	yyjson_mut_doc_free(doc);
	return rc;
}

int pyags_parse_texts(char **texts, size_t *lens, size_t n, size_t first_index,
                      const ags_pattern_opts *opts, ags_pattern **out)
{
	ags_error err;
	ags_error_clear(&err);
	size_t bad = n;
	int rc = 0;
	Py_BEGIN_ALLOW_THREADS;
	for (size_t i = 0; i < n; i++) {
		if (bad == n) {
			rc = ags_pattern_parse(texts[i], lens[i], opts, &out[i], &err);
			if (rc < 0)
				bad = i;
		}
		free(texts[i]);
		texts[i] = NULL;
	}
	if (bad < n)
		for (size_t i = 0; i < bad; i++) {
			ags_pattern_del(out[i]);
			out[i] = NULL;
		}
	Py_END_ALLOW_THREADS;
	if (bad < n) {
		pyags_raise(&err, rc, PYAGS_CTX_PATTERN,
		            first_index == (size_t)-1 ? -1 : (Py_ssize_t)(first_index + bad));
		return -1;
	}
	return 0;
}

/*
 * A batch is converted by the calling thread (it needs the GIL) and parsed by
 * a worker thread at the same time (it needs no GIL); once the conversion is
 * done the caller parses too. Chunks of CHUNK texts go from one to the other.
 */
struct batch {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	yyjson_alc **alcs; /* per chunk: its texts (and its document), freed at once */
	char **texts;
	size_t *lens;
	ags_pattern **ps;
	size_t n;
	size_t ready;  /* texts [0, ready) are converted */
	size_t next;   /* the next text to claim for parsing */
	size_t parsed; /* texts parsed (or freed after a failure) */
	int converted; /* the caller has converted all it will */
	const ags_pattern_opts *opts;
	size_t bad; /* the lowest index that failed to parse, or n */
	int bad_rc;
	ags_error bad_err;
};

/* Parses claimed chunks until there is nothing more to claim. No GIL. */
static void batch_parse(struct batch *b)
{
	pthread_mutex_lock(&b->mu);
	for (;;) {
		while (b->next >= b->ready && !b->converted)
			pthread_cond_wait(&b->cv, &b->mu);
		if (b->next >= b->ready)
			break;
		size_t start = b->next, k = b->ready - start < CHUNK ? b->ready - start : CHUNK;
		b->next += k;
		int skip = b->bad < start; /* an earlier pattern failed: only free these */
		pthread_mutex_unlock(&b->mu);
		ags_error err;
		size_t bad = b->n;
		int rc = 0;
		for (size_t i = start; i < start + k; i++) {
			if (!skip && bad == b->n) {
				rc = ags_pattern_parse(b->texts[i], b->lens[i], b->opts, &b->ps[i],
				                       &err);
				if (rc < 0)
					bad = i;
			}
			b->texts[i] = NULL;
		}
		yyjson_alc_dyn_free(b->alcs[start / CHUNK]);
		b->alcs[start / CHUNK] = NULL;
		pthread_mutex_lock(&b->mu);
		if (bad < b->bad) {
			b->bad = bad;
			b->bad_rc = rc;
			b->bad_err = err;
		}
		b->parsed += k;
		pthread_cond_broadcast(&b->cv);
	}
	pthread_mutex_unlock(&b->mu);
}

static void *batch_worker(void *arg)
{
	pthread_setname_np(pthread_self(), "agentsync-parse");
	batch_parse(arg);
	return NULL;
}

void pyags_free_patterns(ags_pattern **ps, size_t n)
{
	if (!ps)
		return;
	for (size_t i = 0; i < n; i++)
		ags_pattern_del(ps[i]);
	free(ps);
}

int pyags_patterns_from_seq(PyObject *seq, const ags_pattern_opts *opts, ags_pattern ***out,
                            size_t *n_out)
{
	int is_list = PyList_Check(seq);
	if (!is_list && !PyTuple_Check(seq)) {
		PyErr_SetString(PyExc_TypeError, "patterns must be a list or a tuple");
		return -1;
	}
	Py_ssize_t n = is_list ? PyList_Size(seq) : PyTuple_Size(seq);
	if ((size_t)n > BATCH_MAX) {
		pyags_raisef(AGS_ERR_TOO_LARGE, PYAGS_CTX_PATTERN, NULL,
		             "%zd patterns in one call; at most %u", n, BATCH_MAX);
		return -1;
	}
	struct batch b = {.n = (size_t)n, .opts = opts, .bad = (size_t)n};
	size_t cap = n ? (size_t)n : 1;
	b.ps = calloc(cap, sizeof(*b.ps));
	b.texts = calloc(cap, sizeof(*b.texts));
	b.lens = calloc(cap, sizeof(*b.lens));
	b.alcs = calloc(cap / CHUNK + 1, sizeof(*b.alcs));
	if (!b.ps || !b.texts || !b.lens || !b.alcs) {
		free(b.ps);
		free(b.texts);
		free(b.lens);
		free(b.alcs);
		PyErr_NoMemory();
		return -1;
	}
	pthread_mutex_init(&b.mu, NULL);
	pthread_cond_init(&b.cv, NULL);
	/* A worker only pays when there is more than one chunk. */
	pthread_t worker;
	int have_worker = n > CHUNK && pthread_create(&worker, NULL, batch_worker, &b) == 0;
	int conv_failed = 0;
	for (Py_ssize_t start = 0; start < n && !conv_failed; start += CHUNK) {
		size_t k = (size_t)(n - start < CHUNK ? n - start : CHUNK), made = 0;
		yyjson_alc *alc = yyjson_alc_dyn_new();
		yyjson_mut_doc *doc = alc ? yyjson_mut_doc_new(alc) : NULL;
		b.alcs[start / CHUNK] = alc;
		if (!doc) {
			PyErr_NoMemory();
			conv_failed = 1;
			break;
		}
		for (; made < k; made++) {
			Py_ssize_t i = start + (Py_ssize_t)made;
			/* Fetched each time: the sequence is the caller's, and may change. */
			PyObject *item = is_list ? PyList_GetItem(seq, i) : PyTuple_GetItem(seq, i);
			if (!item || pattern_text(doc, alc, item, i, &b.texts[i], &b.lens[i]) < 0) {
				conv_failed = 1;
				break;
			}
			/* Other threads (an event loop) may have the GIL now and then. The
			 * document points into Python strings, but only those of texts
			 * already written, which it never reads again. */
			if (made % YIELD_EVERY == YIELD_EVERY - 1) {
				Py_BEGIN_ALLOW_THREADS;
				Py_END_ALLOW_THREADS;
			}
		}
		yyjson_mut_doc_free(doc);
		/* Hand the chunk over, letting other Python threads run meanwhile. */
		int stop;
		Py_BEGIN_ALLOW_THREADS;
		pthread_mutex_lock(&b.mu);
		b.ready = (size_t)start + made;
		stop = b.bad < b.n; /* a pattern failed: the rest need not be converted */
		pthread_cond_broadcast(&b.cv);
		pthread_mutex_unlock(&b.mu);
		Py_END_ALLOW_THREADS;
		if (stop)
			break;
	}
	Py_BEGIN_ALLOW_THREADS;
	pthread_mutex_lock(&b.mu);
	b.converted = 1;
	pthread_cond_broadcast(&b.cv);
	pthread_mutex_unlock(&b.mu);
	batch_parse(&b);
	if (have_worker)
		pthread_join(worker, NULL);
	Py_END_ALLOW_THREADS;
	pthread_cond_destroy(&b.cv);
	pthread_mutex_destroy(&b.mu);
	for (size_t c = 0; c < cap / CHUNK + 1; c++)
		yyjson_alc_dyn_free(b.alcs[c]); /* a chunk that failed to convert */
	free(b.alcs);
	free(b.texts);
	free(b.lens);
	if (b.bad < b.n || conv_failed) {
		if (b.bad < b.n) {
			/* A parse failure comes before any conversion failure (those are later). */
			PyErr_Clear();
			pyags_raise(&b.bad_err, b.bad_rc, PYAGS_CTX_PATTERN, (Py_ssize_t)b.bad);
		}
		Py_BEGIN_ALLOW_THREADS;
		pyags_free_patterns(b.ps, b.n);
		Py_END_ALLOW_THREADS;
		return -1;
	}
	*out = b.ps;
	*n_out = b.n;
	return 0;
}

/* ---- JSON to Python ---- */

static PyObject *from_val(yyjson_val *v, int depth);

/* A number yyjson did not take as a 64-bit integer or a double (NUL-terminated). */
static PyObject *from_raw(const char *s, size_t n)
{
	char *end = NULL;
	PyObject *r = PyLong_FromString(s, &end, 10);
	if (r && end == s + n)
		return r;
	Py_XDECREF(r);
	PyErr_Clear();
	PyObject *t = PyUnicode_FromStringAndSize(s, (Py_ssize_t)n);
	r = t ? PyFloat_FromString(t) : NULL;
	Py_XDECREF(t);
	return r;
}

static PyObject *from_val(yyjson_val *v, int depth)
{
	if (depth > 2 * AGS_PATTERN_MAX_DEPTH) {
		PyErr_SetString(PyExc_ValueError, "JSON nested too deeply");
		return NULL;
	}
	switch (yyjson_get_type(v)) {
	case YYJSON_TYPE_NULL:
		Py_RETURN_NONE;
	case YYJSON_TYPE_BOOL:
		return PyBool_FromLong(yyjson_get_bool(v));
	case YYJSON_TYPE_NUM:
		switch (yyjson_get_subtype(v)) {
		case YYJSON_SUBTYPE_UINT:
			return PyLong_FromUnsignedLongLong(yyjson_get_uint(v));
		case YYJSON_SUBTYPE_SINT:
			return PyLong_FromLongLong(yyjson_get_sint(v));
		default:
			return PyFloat_FromDouble(yyjson_get_real(v));
		}
	case YYJSON_TYPE_RAW:
		return from_raw(yyjson_get_raw(v), yyjson_get_len(v));
	case YYJSON_TYPE_STR:
		return PyUnicode_DecodeUTF8(yyjson_get_str(v), (Py_ssize_t)yyjson_get_len(v),
		                            "surrogateescape");
	case YYJSON_TYPE_ARR: {
		PyObject *list = PyList_New((Py_ssize_t)yyjson_arr_size(v));
		if (!list)
			return NULL;
		size_t i, max;
		yyjson_val *e;
		yyjson_arr_foreach(v, i, max, e)
		{
			PyObject *o = from_val(e, depth + 1);
			if (!o || PyList_SetItem(list, (Py_ssize_t)i, o) < 0) {
				Py_DECREF(list);
				return NULL;
			}
		}
		return list;
	}
	case YYJSON_TYPE_OBJ: {
		PyObject *dict = PyDict_New();
		if (!dict)
			return NULL;
		size_t i, max;
		yyjson_val *k, *e;
		yyjson_obj_foreach(v, i, max, k, e)
		{
			PyObject *ko = PyUnicode_DecodeUTF8(
			    yyjson_get_str(k), (Py_ssize_t)yyjson_get_len(k), "surrogateescape");
			PyObject *o = ko ? from_val(e, depth + 1) : NULL;
			int rc = o ? PyDict_SetItem(dict, ko, o) : -1;
			Py_XDECREF(ko);
			Py_XDECREF(o);
			if (rc < 0) {
				Py_DECREF(dict);
				return NULL;
			}
		}
		return dict;
	}
	default:
		PyErr_SetString(PyExc_ValueError, "unexpected JSON value");
		return NULL;
	}
}

PyObject *pyags_from_json(const char *json, size_t len)
{
	yyjson_read_err rerr;
	yyjson_doc *doc =
	    yyjson_read_opts((char *)json, len, YYJSON_READ_BIGNUM_AS_RAW, NULL, &rerr);
	if (!doc) {
		PyErr_Format(PyExc_ValueError, "malformed JSON at byte %zu: %s", rerr.pos,
		             rerr.msg);
		return NULL;
	}
	PyObject *o = from_val(yyjson_doc_get_root(doc), 0);
	yyjson_doc_free(doc);
	return o;
}

PyObject *pyags_pattern_dict(const ags_pattern *p)
{
	size_t n = 0;
	const char *j = ags_pattern_json(p, &n);
	return pyags_from_json(j, n);
}

/* ---- reads ---- */

struct collect {
	char **texts;
	size_t *lens;
	size_t n, cap;
	int failed; /* out of memory, or over QUERY_MAX */
};

static int collect_cb(void *ud, const ags_pattern *p, uint64_t seq)
{
	struct collect *c = ud;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 256;
		if (cap > QUERY_MAX)
			cap = QUERY_MAX;
		if (cap == c->cap) {
			c->failed = AGS_ERR_TOO_LARGE;
			return 1;
		}
		char **t = realloc(c->texts, cap * sizeof(*t));
		if (t)
			c->texts = t;
		size_t *l = t ? realloc(c->lens, cap * sizeof(*l)) : NULL;
		if (l)
			c->lens = l;
		if (!t || !l) {
			c->failed = AGS_ERR_NOMEM;
			return 1;
		}
		c->cap = cap;
	}
	size_t n = 0;
	const char *j = ags_pattern_json(p, &n);
	char *copy = malloc(n + 1);
	if (!copy) {
		c->failed = AGS_ERR_NOMEM;
		return 1;
	}
	memcpy(copy, j, n + 1);
	c->texts[c->n] = copy;
	c->lens[c->n++] = n;
	return 0;
}

PyObject *pyags_query_list(pyags_query_fn fn, void *obj, const ags_query *q)
{
	struct collect c = {0};
	int rc;
	Py_BEGIN_ALLOW_THREADS;
	rc = fn(obj, q, collect_cb, &c);
	Py_END_ALLOW_THREADS;
	PyObject *list = NULL;
	if (c.failed == AGS_ERR_NOMEM) {
		PyErr_NoMemory();
	} else if (c.failed == AGS_ERR_TOO_LARGE) {
		pyags_raisef(AGS_ERR_TOO_LARGE, PYAGS_CTX_ANY, "limit",
		             "more than %u records: give a limit", QUERY_MAX);
	} else if (rc < 0) {
		pyags_raisef(rc, PYAGS_CTX_ANY, NULL, "cannot read the store: %s",
		             ags_strerror(rc));
	} else if ((list = PyList_New((Py_ssize_t)c.n))) {
		for (size_t i = 0; i < c.n; i++) {
			PyObject *o = pyags_from_json(c.texts[i], c.lens[i]);
			if (!o || PyList_SetItem(list, (Py_ssize_t)i, o) < 0) {
				Py_CLEAR(list);
				break;
			}
			/* A long read lets other threads (an event loop) have the GIL now and then.
			 */
			if (i % 256 == 255) {
				Py_BEGIN_ALLOW_THREADS;
				Py_END_ALLOW_THREADS;
			}
		}
	}
	for (size_t i = 0; i < c.n; i++)
		free(c.texts[i]);
	free(c.texts);
	free(c.lens);
	return list;
}

PyObject *pyags_outcome_counts(const ags_apply_result *res, size_t n)
{
	size_t counts[AGS_APPLY_CONFLICT_LOST + 1] = {0};
	for (size_t i = 0; i < n; i++)
		if (res[i].outcome >= AGS_APPLY_INSERTED &&
		    res[i].outcome <= AGS_APPLY_CONFLICT_LOST)
			counts[res[i].outcome]++;
	PyObject *d = PyDict_New();
	for (int o = AGS_APPLY_INSERTED; d && o <= AGS_APPLY_CONFLICT_LOST; o++) {
		PyObject *v = PyLong_FromSize_t(counts[o]);
		if (!v || PyDict_SetItemString(d, ags_apply_outcome_name(o), v) < 0)
			Py_CLEAR(d);
		Py_XDECREF(v);
	}
	return d;
}

PyObject *pyags_apply_result(const ags_apply_result *res)
{
	return Py_BuildValue("{s:s,s:K}", "outcome", ags_apply_outcome_name(res->outcome), "seq",
	                     (unsigned long long)res->seq);
}
