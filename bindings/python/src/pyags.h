/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agentsync._agentsync: the C extension under the Python package
 * (bindings/python/agentsync). It embeds the library and exposes two types,
 * _Node (an ags_node configured by the daemon's own parser) and _Agent (an
 * ags_agent, seed 004's FederationHub), plus a few functions. The pure-Python
 * layer (the .py files of agentsync/) builds the public surface on them.
 *
 * Built on CPython's limited API for 3.11 (Py_LIMITED_API is set by the
 * build), so one build serves every CPython from 3.11 on.
 *
 * Threads: every call into the library that may wait (start, stop, writes,
 * reads of the store, state, the agent's network calls) runs with the GIL
 * released. The library's callbacks (events, logs) run on its own threads
 * and never touch Python: they copy the event into a bounded queue
 * (events.c), which the package's dispatcher thread drains with the GIL
 * released while it waits.
 *
 * Files: module.c (module, errors), convert.c (Python objects <-> JSON),
 * events.c (the event queue), node.c (_Node), agent.c (_Agent).
 */
#ifndef PYAGS_H
#define PYAGS_H

#ifndef Py_LIMITED_API
#error "build with Py_LIMITED_API=0x030B0000 (bindings/python/CMakeLists.txt sets it)"
#endif
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "agentsync/agentsync.h"
#include "agentsync/node.h"

/* ---- module.c ---- */

/* How a library error is turned into a Python exception (the class chosen). */
enum pyags_ctx {
	PYAGS_CTX_ANY = 0,     /* by code */
	PYAGS_CTX_PATTERN = 1, /* a pattern was refused: PatternError for input errors */
	PYAGS_CTX_CONFIG = 2,  /* a configuration was refused: ConfigError for every code */
};

/*
 * Raises the agentsync.Error subclass for `err` (or for `rc` when err has no
 * code): the library's message and field, and the batch index `index`
 * (-1: none) for sync_patterns. Always returns NULL.
 */
PyObject *pyags_raise(const ags_error *err, int rc, int ctx, Py_ssize_t index);

/* Raises agentsync.Error subclass for code `rc` with a formatted message. Returns NULL. */
PyObject *pyags_raisef(int rc, int ctx, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- convert.c ---- */

/*
 * A pattern given by Python, turned into JSON text: a dict (walked into JSON
 * with yyjson), or str / bytes holding the JSON already. Needs the GIL.
 * On success *json is malloc'd (the caller frees it) and *len its length.
 * On failure a PatternError is set that names the path of the value at fault
 * ("data.when": a datetime is not JSON), prefixed by "[index]." when
 * index >= 0, and -1 is returned.
 */
int pyags_pattern_text(PyObject *obj, Py_ssize_t index, char **json, size_t *len);

/*
 * Parses JSON text into Python objects (dict, list, str, int, float, bool,
 * None; integers of any size). Needs the GIL. Returns a new reference or
 * NULL with an exception set.
 */
PyObject *pyags_from_json(const char *json, size_t len);

/* The pattern as a dict (pyags_from_json of ags_pattern_json). Needs the GIL. */
PyObject *pyags_pattern_dict(const ags_pattern *p);

/*
 * Parses `n` JSON texts into patterns with the GIL released for the parse;
 * texts[i] are freed as they are parsed. On failure every pattern made is
 * freed, a PatternError is set naming "[i].field" and -1 is returned.
 */
int pyags_parse_texts(char **texts, size_t *lens, size_t n, size_t first_index,
                      const ags_pattern_opts *opts, ags_pattern **out);

/*
 * Turns the sequence `seq` (a list or tuple) into parsed patterns: all are
 * validated before the caller applies any. Converts and parses in chunks,
 * releasing the GIL for each chunk's parse. On success *out is a malloc'd
 * array of *n patterns (free with pyags_free_patterns).
 * Errors: -1 with PatternError (naming "[i].field") or MemoryError set.
 */
int pyags_patterns_from_seq(PyObject *seq, const ags_pattern_opts *opts, ags_pattern ***out,
                            size_t *n);

/* Frees n patterns and the array. */
void pyags_free_patterns(ags_pattern **ps, size_t n);

/*
 * Reads patterns with `query_fn` (ags_node_query or ags_agent_query, with
 * `obj` its handle) with the GIL released, then returns them as a list of
 * dicts. Errors: NULL with an exception set.
 */
typedef int (*pyags_query_fn)(void *obj, const ags_query *q, ags_pattern_cb cb, void *ud);
PyObject *pyags_query_list(pyags_query_fn fn, void *obj, const ags_query *q);

/*
 * Reads query(type=, tag=, agent_id=, since=, limit=) arguments into q; the
 * strings are borrowed from the arguments. Returns 0, or -1 with an exception.
 */
int pyags_parse_query(PyObject *args, PyObject *kw, ags_query *q);

/* The outcome counts of an apply: {"inserted": n, "updated": n, ...}. */
PyObject *pyags_outcome_counts(const ags_apply_result *res, size_t n);

/* One apply result: {"outcome": "inserted", "seq": n}. */
PyObject *pyags_apply_result(const ags_apply_result *res);

/* ---- events.c ---- */

/* Bit of the event mask for log lines (event types use bit `type`). */
#define PYAGS_MASK_LOG (1u << 31)

/* Most events waiting for the dispatcher, and most bytes they hold. */
#define PYAGS_QUEUE_MAX_EVENTS 65536
#define PYAGS_QUEUE_MAX_BYTES  (64u * 1024u * 1024u)

struct pyags_qitem;

/*
 * The queue between the library's threads (producers, which never block on
 * Python) and the dispatcher thread (the one consumer). Bounded by count and
 * bytes: what does not fit is dropped and counted, and the consumer is told
 * at the place of the gap with an "events:overflow" event {dropped}.
 * Only event types whose bit is in `mask` are queued.
 */
struct pyags_queue {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct pyags_qitem *head, *tail;
	size_t count, bytes;
	size_t max_count, max_bytes;
	int closed;
	atomic_uint mask;
	atomic_int log_level; /* AGS_LOG_*: lines at or below it are queued */
};

/* Makes a queue (closed = 0, mask 0). Returns NULL when out of memory. */
struct pyags_queue *pyags_queue_new(size_t max_count, size_t max_bytes);

/* Frees the queue and whatever it still holds. NULL is a no-op. */
void pyags_queue_del(struct pyags_queue *q);

/* Producer side: copies `ev` (any thread, no GIL). */
void pyags_queue_event(struct pyags_queue *q, const ags_event *ev);

/* Producer side: copies a log line (any thread, no GIL). */
void pyags_queue_log(struct pyags_queue *q, int level, const char *message);

/* Closes (the consumer then drains and ends) or reopens the queue. */
void pyags_queue_set_closed(struct pyags_queue *q, int closed);

/*
 * Consumer side (needs the GIL; waits with it released): up to `max`
 * events as a list of dicts, waiting at most `timeout_s` (< 0: without
 * limit) for the first. Returns an empty list on timeout, None once the
 * queue is closed and empty, NULL with an exception set on error.
 */
PyObject *pyags_queue_take(struct pyags_queue *q, Py_ssize_t max, double timeout_s);

/* The event-type names, {"peer:connected": 1, ...}, for the mask. New reference. */
PyObject *pyags_event_types(void);

/* ---- node.c, agent.c ---- */

/* Adds the _Node / _Agent types to the module. Return 0, or -1 with an exception. */
int pyags_node_add_type(PyObject *module);
int pyags_agent_add_type(PyObject *module);

#endif
