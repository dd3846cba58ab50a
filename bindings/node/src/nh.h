/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What every native object of the addon shares ("nh", a native handle):
 *
 *  - A worker thread of its own that makes the library's blocking calls
 *    (start, stop, connect, sync, ...), one at a time and in the order
 *    JavaScript made them, so Node's event loop never waits and calls keep
 *    their order. Each call is a job; its Promise settles when the job is
 *    done.
 *  - One thread-safe function (TSFN) through which both finished jobs (from
 *    the worker) and the library's events (from its loop thread) reach the
 *    JavaScript thread. Its queue is unbounded, so no thread ever waits on
 *    JavaScript; events are bounded by NH_EVENTS_MAX instead: past it they
 *    are counted, and a marker put in the queue (one at a time, past the
 *    bound) tells JavaScript how many, where the gap is: never a silent gap.
 *  - Lifetime. While the object is active (a server started, an agent
 *    connected) and not unref()'d, or while a job is pending, the TSFN is
 *    referenced (the process stays up) and the JavaScript dispatcher is held
 *    strongly (the object cannot be collected). Otherwise both are weak: a
 *    stopped server lets the process exit, and an object collected without
 *    stop() is torn down by its worker (the library object deleted, the
 *    TSFN released). At environment teardown (process exit, worker thread
 *    end) a cleanup hook tears it down synchronously. The struct is freed
 *    when both the wrapper's finalizer and the TSFN's have run.
 *
 * Every nh_* function here is called on the JavaScript thread unless it says
 * otherwise.
 */
#ifndef AGS_NODE_NH_H
#define AGS_NODE_NH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define NAPI_VERSION 8
#include <node_api.h>

#include "agentsync/agentsync.h"
#include "agentsync/node.h"

/* Most events queued for JavaScript at once; more are dropped and counted. */
#define NH_EVENTS_MAX 65536
/* Longest string argument accepted from JavaScript (ids, addresses, paths). */
#define NH_STR_MAX 8192
/* Largest JSON text accepted for one pattern or one batch (in bytes). */
#define NH_JSON_MAX (256u * 1024u * 1024u)

struct nh;
struct nh_job;

/* What a kind of native object does with its jobs and its library object. */
struct nh_ops {
	/* Worker thread: tears the library object down (e.g. ags_node_del). */
	void (*teardown)(struct nh *h);
	/* Any thread, last: frees the kind's own state (h->impl). */
	void (*free_impl)(void *impl);
};

/* A job: made on the JavaScript thread, run on the worker, finished on the JavaScript thread. */
struct nh_job {
	int kind; /* NH_ITEM_JOB */
	struct nh_job *next;
	napi_deferred deferred;
	/* Worker thread: the blocking call. Sets rc and err. */
	void (*run)(struct nh *h, struct nh_job *j);
	/*
	 * JavaScript thread, when rc == 0: the value the Promise resolves with
	 * (NULL: undefined). May set rc and err instead, to reject.
	 */
	napi_value (*done)(napi_env env, struct nh *h, struct nh_job *j);
	/* Frees the job (any thread). */
	void (*del)(struct nh_job *j);
	int rc;
	ags_error err;
};

struct nh {
	napi_env env;
	napi_threadsafe_function tsfn;
	napi_ref dispatch; /* the JavaScript function events go to; weak unless held */
	const struct nh_ops *ops;
	void *impl;

	/* JavaScript thread only. */
	int held;       /* dispatch is a strong reference and the TSFN is referenced */
	int user_ref;   /* ref() (default) or unref() */
	int active;     /* started / connected: the kind says */
	size_t pending; /* jobs submitted and not yet finished */
	int refs;       /* wrapper + TSFN; freed at 0 */
	int wrapper_gone;
	int hook_added;

	/* The worker's queue, under mu. */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct nh_job *head, *tail;
	int closing; /* no more jobs: the worker tears down and exits */
	pthread_t worker;
	int worker_joined; /* JavaScript thread */

	/* Events, from the library's threads. */
	atomic_uint mask;      /* bit (1 << ags_event_type) set: JavaScript listens */
	atomic_int quiet;      /* set when closing: events are no longer delivered */
	atomic_size_t queued;  /* events in the TSFN queue */
	atomic_size_t dropped; /* events dropped and not reported yet */
	atomic_int gap_posted; /* a gap marker is in the queue */
};

/*
 * Makes the handle: the TSFN (calling `dispatch`, a function, on events) and
 * the worker thread, and registers the cleanup hook. `impl` belongs to the
 * handle from then on (freed with ops->free_impl), also on failure. Throws
 * and returns NULL on failure.
 */
struct nh *nh_new(napi_env env, napi_value dispatch, const char *name, const struct nh_ops *ops,
                  void *impl);

/* The wrapper's finalizer: napi_wrap(..., nh_wrapper_finalize, h, ...). */
void nh_wrapper_finalize(napi_env env, void *data, void *hint);

/*
 * Submits job `j` (owned by the handle from then on) and returns its
 * Promise. A handle that is closing rejects it at once.
 */
napi_value nh_submit(struct nh *h, struct nh_job *j);

/*
 * Submits job `j` without a Promise: the worker runs it and frees it, and
 * JavaScript hears nothing of it (its `done` is never called). For steps
 * whose outcome a later job reports. Dropped when the handle is closing.
 */
void nh_submit_silent(struct nh *h, struct nh_job *j);

/* Re-evaluates whether the handle holds the process and the dispatcher. */
void nh_update_hold(struct nh *h);

/*
 * Tears the handle down now, synchronously: the worker drops the jobs not
 * run yet, deletes the library object and exits. For process.exit(), which
 * runs no cleanup hook. The object answers nothing useful afterwards.
 */
void nh_close_sync(struct nh *h);

/* Handles made and not yet freed, in this process. */
int nh_live(void);

/* ref() / unref(). */
void nh_set_ref(struct nh *h, int on);

/*
 * Library threads: queues event `ev` for JavaScript if its type is in the
 * mask. Copies everything it needs.
 */
void nh_post_event(struct nh *h, const ags_event *ev);

/* The AGS_ERR_* name of a code ("AGS_ERR_PATTERN"). */
const char *nh_code_name(int code);

/*
 * Makes the Error for `err` (code `rc` when err->code is unset): message
 * "FIELD: MESSAGE" (`prefix` before FIELD when given, e.g. "patterns[3]."),
 * properties code (the AGS_ERR_* name), errno (the number), field (when
 * set) and offset (for malformed JSON).
 */
napi_value nh_error(napi_env env, int rc, const ags_error *err, const char *prefix);

/* Throws nh_error(...). Returns NULL, for `return nh_throw(...)`. */
napi_value nh_throw(napi_env env, int rc, const ags_error *err, const char *prefix);

/* Throws a TypeError naming the argument. Returns NULL. */
napi_value nh_type_error(napi_env env, const char *what);

/*
 * Reads a string argument into a malloc'd NUL-terminated copy (*out, free
 * with free()); undefined and null give NULL when `optional`. Throws a
 * TypeError naming `what` and returns -1 on a wrong type or over `max` bytes.
 */
int nh_get_str(napi_env env, napi_value v, const char *what, int optional, size_t max, char **out);

/* Property helpers for building plain objects. Return napi status. */
napi_status nh_set_str(napi_env env, napi_value obj, const char *key, const char *s);
napi_status nh_set_num(napi_env env, napi_value obj, const char *key, double d);
napi_status nh_set_bool(napi_env env, napi_value obj, const char *key, int b);
napi_status nh_set_str_at(napi_env env, napi_value arr, uint32_t i, const char *s);

/*
 * Reads an optional property of object `obj`: a string (copied into *out, or
 * NULL when absent) or a non-negative integer (*out untouched when absent).
 * Throws a TypeError naming `what` and returns -1 on a wrong type.
 */
int nh_prop_str(napi_env env, napi_value obj, const char *key, const char *what, char **out);
int nh_prop_u64(napi_env env, napi_value obj, const char *key, const char *what, uint64_t *out);

/* Unwraps `this` of a method into the handle, throwing when it is not one. */
struct nh *nh_this(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv);

#endif
