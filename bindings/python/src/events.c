/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The event queue between the library's threads and the package's
 * dispatcher thread (pyags.h). A producer copies the event into one
 * allocation and appends it; it never waits for Python. The consumer takes a
 * batch at a time and makes dicts of them with the seed's payload keys.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pyags.h"

enum { ITEM_EVENT, ITEM_LOG, ITEM_OVERFLOW };

/* Events made into dicts between two chances for other threads to take the GIL. */
#define YIELD_EVERY 32

/* Indices of the copied strings of an item. */
enum { S_PEER, S_ADDRESS, S_ERROR, S_STATE, S_PATTERN_ID, S_SOURCE, S_TENANT, S_TEXT, S_N };

struct pyags_qitem {
	struct pyags_qitem *next;
	int kind;
	int type;  /* ags_event_type (ITEM_EVENT) */
	int level; /* AGS_LOG_* (ITEM_LOG) */
	uint32_t pattern_count;
	double latency_ms;
	uint64_t dropped;   /* ITEM_OVERFLOW: events left out here */
	size_t bytes;       /* what the item holds, for the queue's byte bound */
	const char *s[S_N]; /* NULL when absent; S_TEXT: the pattern's JSON or the log line */
	size_t text_len;
	char data[]; /* the strings, one after the other */
};

struct pyags_queue *pyags_queue_new(size_t max_count, size_t max_bytes)
{
	struct pyags_queue *q = calloc(1, sizeof(*q));
	if (!q)
		return NULL;
	if (pthread_mutex_init(&q->mu, NULL) != 0)
		goto fail_mu;
	pthread_condattr_t ca;
	if (pthread_condattr_init(&ca) != 0)
		goto fail_cv;
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	int rc = pthread_cond_init(&q->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (rc != 0)
		goto fail_cv;
	q->max_count = max_count;
	q->max_bytes = max_bytes;
	atomic_init(&q->mask, 0);
	atomic_init(&q->log_level, AGS_LOG_INFO);
	return q;
fail_cv:
	pthread_mutex_destroy(&q->mu);
fail_mu:
	free(q);
	return NULL;
}

static void free_items(struct pyags_qitem *it)
{
	while (it) {
		struct pyags_qitem *next = it->next;
		free(it);
		it = next;
	}
}

void pyags_queue_del(struct pyags_queue *q)
{
	if (!q)
		return;
	free_items(q->head);
	pthread_cond_destroy(&q->cv);
	pthread_mutex_destroy(&q->mu);
	free(q);
}

/* Makes an item holding copies of the strings in src[] (NULL ones stay NULL). */
static struct pyags_qitem *item_new(int kind, const char *const src[S_N], size_t text_len)
{
	size_t lens[S_N], total = 0;
	for (int i = 0; i < S_N; i++) {
		lens[i] = src[i] ? (i == S_TEXT ? text_len : strlen(src[i])) : 0;
		total += src[i] ? lens[i] + 1 : 0;
	}
	struct pyags_qitem *it = malloc(sizeof(*it) + total);
	if (!it)
		return NULL;
	memset(it, 0, sizeof(*it));
	it->kind = kind;
	it->bytes = sizeof(*it) + total;
	char *p = it->data;
	for (int i = 0; i < S_N; i++) {
		if (!src[i])
			continue;
		memcpy(p, src[i], lens[i]);
		p[lens[i]] = '\0';
		it->s[i] = p;
		p += lens[i] + 1;
	}
	it->text_len = lens[S_TEXT];
	return it;
}

/*
 * Appends `it`, or, when the queue is full, counts it as dropped at the end
 * of the queue (one overflow marker per gap). Takes ownership of `it`.
 */
static void push(struct pyags_queue *q, struct pyags_qitem *it)
{
	pthread_mutex_lock(&q->mu);
	if (q->closed) {
		pthread_mutex_unlock(&q->mu);
		free(it);
		return;
	}
	if (q->count >= q->max_count || q->bytes + it->bytes > q->max_bytes) {
		if (q->tail && q->tail->kind == ITEM_OVERFLOW) {
			q->tail->dropped++;
			free(it);
			pthread_mutex_unlock(&q->mu);
			return;
		}
		/* The marker may go over the bounds by its own small size, once per gap. */
		struct pyags_qitem *m = malloc(sizeof(*m));
		if (m)
			free(it);
		else
			m = it; /* out of memory: the dropped item becomes the marker */
		memset(m, 0, sizeof(*m));
		m->kind = ITEM_OVERFLOW;
		m->dropped = 1;
		m->bytes = sizeof(*m);
		it = m;
	}
	it->next = NULL;
	if (q->tail)
		q->tail->next = it;
	else
		q->head = it;
	q->tail = it;
	q->count++;
	q->bytes += it->bytes;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

void pyags_queue_event(struct pyags_queue *q, const ags_event *ev)
{
	if (ev->type <= 0 || ev->type >= 31 || !(atomic_load(&q->mask) & (1u << ev->type)))
		return;
	size_t plen = 0;
	const char *pjson = ev->pattern ? ags_pattern_json(ev->pattern, &plen) : NULL;
	const char *src[S_N] = {
	    [S_PEER] = ev->peer_id,          [S_ADDRESS] = ev->address,
	    [S_ERROR] = ev->error,           [S_STATE] = ev->state,
	    [S_PATTERN_ID] = ev->pattern_id, [S_SOURCE] = ev->source_id,
	    [S_TENANT] = ev->tenant,         [S_TEXT] = pjson,
	};
	struct pyags_qitem *it = item_new(ITEM_EVENT, src, plen);
	if (!it) {
		/* Counted as dropped: an allocation of the marker's size may still work. */
		struct pyags_qitem *m = calloc(1, sizeof(*m));
		if (m) {
			m->kind = ITEM_OVERFLOW;
			m->bytes = sizeof(*m);
			m->dropped = 1;
			push(q, m);
		}
		return;
	}
	it->type = ev->type;
	it->pattern_count = ev->pattern_count;
	it->latency_ms = ev->latency_ms;
	push(q, it);
}

void pyags_queue_log(struct pyags_queue *q, int level, const char *message)
{
	if (!(atomic_load(&q->mask) & PYAGS_MASK_LOG) || level > atomic_load(&q->log_level))
		return;
	const char *src[S_N] = {[S_TEXT] = message};
	struct pyags_qitem *it = item_new(ITEM_LOG, src, message ? strlen(message) : 0);
	if (!it)
		return;
	it->level = level;
	push(q, it);
}

void pyags_queue_set_closed(struct pyags_queue *q, int closed)
{
	pthread_mutex_lock(&q->mu);
	q->closed = closed;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

/* ---- the consumer ---- */

static int set_str(PyObject *d, const char *key, const char *v)
{
	if (!v)
		return 0;
	PyObject *o = PyUnicode_DecodeUTF8(v, (Py_ssize_t)strlen(v), "replace");
	int rc = o ? PyDict_SetItemString(d, key, o) : -1;
	Py_XDECREF(o);
	return rc;
}

static int set_obj(PyObject *d, const char *key, PyObject *o)
{
	int rc = o ? PyDict_SetItemString(d, key, o) : -1;
	Py_XDECREF(o);
	return rc;
}

/* The event as a dict: {"type": name, ...the seed's payload keys}. */
static PyObject *item_dict(const struct pyags_qitem *it)
{
	PyObject *d = PyDict_New();
	if (!d)
		return NULL;
	int rc = 0;
	if (it->kind == ITEM_OVERFLOW) {
		rc = set_str(d, "type", "events:overflow");
		rc = rc ? rc : set_obj(d, "dropped", PyLong_FromUnsignedLongLong(it->dropped));
	} else if (it->kind == ITEM_LOG) {
		rc = set_str(d, "type", "log");
		rc = rc ? rc : set_obj(d, "level", PyLong_FromLong(it->level));
		rc = rc ? rc : set_str(d, "message", it->s[S_TEXT] ? it->s[S_TEXT] : "");
	} else {
		rc = set_str(d, "type", ags_event_name(it->type));
		rc = rc ? rc : set_str(d, "peerId", it->s[S_PEER]);
		rc = rc ? rc : set_str(d, "address", it->s[S_ADDRESS]);
		rc = rc ? rc : set_str(d, "error", it->s[S_ERROR]);
		if (!rc && it->s[S_STATE]) {
			/* The node gives a peer's state as JSON; anything else stays a string. */
			PyObject *st = pyags_from_json(it->s[S_STATE], strlen(it->s[S_STATE]));
			if (!st) {
				PyErr_Clear();
				rc = set_str(d, "state", it->s[S_STATE]);
			} else {
				rc = set_obj(d, "state", st);
			}
		}
		if (!rc && it->s[S_TEXT])
			rc = set_obj(d, "pattern", pyags_from_json(it->s[S_TEXT], it->text_len));
		rc = rc ? rc : set_str(d, "patternId", it->s[S_PATTERN_ID]);
		rc = rc ? rc : set_str(d, "sourceId", it->s[S_SOURCE]);
		rc = rc ? rc : set_str(d, "tenant", it->s[S_TENANT]);
		if (!rc && (it->type == AGS_EV_SYNC_COMPLETED || it->pattern_count))
			rc = set_obj(d, "patternCount", PyLong_FromUnsignedLong(it->pattern_count));
		if (!rc && (it->type == AGS_EV_SYNC_COMPLETED || it->latency_ms > 0))
			rc = set_obj(d, "latency", PyFloat_FromDouble(it->latency_ms));
	}
	if (rc < 0) {
		Py_DECREF(d);
		return NULL;
	}
	return d;
}

PyObject *pyags_queue_take(struct pyags_queue *q, Py_ssize_t max, double timeout_s)
{
	if (max < 1)
		max = 1;
	struct pyags_qitem *got = NULL;
	int closed;
	Py_BEGIN_ALLOW_THREADS;
	pthread_mutex_lock(&q->mu);
	struct timespec dl;
	if (timeout_s >= 0) {
		clock_gettime(CLOCK_MONOTONIC, &dl);
		dl.tv_sec += (time_t)timeout_s;
		dl.tv_nsec += (long)((timeout_s - (double)(time_t)timeout_s) * 1e9);
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
	}
	while (!q->head && !q->closed) {
		if (timeout_s < 0)
			pthread_cond_wait(&q->cv, &q->mu);
		else if (pthread_cond_timedwait(&q->cv, &q->mu, &dl) == ETIMEDOUT)
			break;
	}
	struct pyags_qitem **tail = &got;
	for (Py_ssize_t n = 0; q->head && n < max; n++) {
		struct pyags_qitem *it = q->head;
		q->head = it->next;
		if (!q->head)
			q->tail = NULL;
		q->count--;
		q->bytes -= it->bytes;
		it->next = NULL;
		*tail = it;
		tail = &it->next;
	}
	closed = q->closed;
	pthread_mutex_unlock(&q->mu);
	Py_END_ALLOW_THREADS;
	if (!got && closed)
		Py_RETURN_NONE;
	PyObject *list = PyList_New(0);
	unsigned made = 0;
	for (struct pyags_qitem *it = got; list && it; it = it->next) {
		PyObject *d = item_dict(it);
		if (!d || PyList_Append(list, d) < 0)
			Py_CLEAR(list);
		Py_XDECREF(d);
		/* Lets a thread that waits for the GIL (an event loop) have it now and then. */
		if (++made % YIELD_EVERY == 0) {
			Py_BEGIN_ALLOW_THREADS;
			Py_END_ALLOW_THREADS;
		}
	}
	free_items(got);
	return list;
}

PyObject *pyags_event_types(void)
{
	PyObject *d = PyDict_New();
	for (int t = AGS_EV_PEER_CONNECTED; d && t <= AGS_EV_CONNECTION_TIMEOUT; t++) {
		PyObject *v = PyLong_FromLong(t);
		if (!v || PyDict_SetItemString(d, ags_event_name(t), v) < 0)
			Py_CLEAR(d);
		Py_XDECREF(v);
	}
	return d;
}
