/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The applier (node_apply.c): batches received from mesh peers are written
 * to the store on a thread of its own, so that the loop thread decodes and
 * validates a peer's next batch (and keeps QUIC moving) while the last one
 * is committed. It knows nothing of the node: it applies what it is given
 * (ags_sync_jobs_apply) and hands the applied jobs back, in the order they
 * were submitted, through its `done` function on the loop thread, whose
 * owner finishes them (ACK, events).
 *
 * Lifecycle: ags_applier_init (embedded), ags_applier_start on the loop's
 * thread before the loop runs, ags_applier_submit (the sync host's submit),
 * ags_applier_deliver when the loop wants the applied jobs now,
 * ags_applier_close on the loop thread when it stops, ags_applier_stop after
 * the loop ended, ags_applier_free. If ags_applier_start fails, nothing runs
 * and `done` is never called.
 */
#ifndef AGS_NODE_APPLY_H
#define AGS_NODE_APPLY_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "sync.h"

/* Called on the loop thread with applied jobs (a list: ags_sync_job_next). */
typedef void (*ags_applier_done_cb)(void *ud, ags_sync_job *jobs);

typedef struct ags_applier {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv, space;
	size_t queued;                       /* jobs in head's list, under mu */
	ags_sync_job *head, *tail;           /* to apply, under mu */
	ags_sync_job *done_head, *done_tail; /* applied, to hand back on the loop, under mu */
	int running, stop, closed;           /* closed: the wake-up handle is closed, under mu */
	uv_async_t async;                    /* wakes the loop when jobs are applied */
	uint64_t wakes; /* wake-ups seen (loop thread), for the node's activity */
	ags_applier_done_cb done;
	void *ud;
} ags_applier;

/* Initialises the locks of an embedded applier (not started). */
void ags_applier_init(ags_applier *a);

/* Frees the locks (after ags_applier_stop, or when never started). */
void ags_applier_free(ags_applier *a);

/*
 * Starts the applier's thread and its wake-up handle on `loop`; `done`
 * (with `ud`) gets the applied jobs on the loop thread. Errors: AGS_ERR_IO
 * (libuv or pthread_create failed; nothing was started).
 */
int ags_applier_start(ags_applier *a, uv_loop_t *loop, ags_applier_done_cb done, void *ud);

/* Whether the applier is started (and not stopped). */
int ags_applier_running(const ags_applier *a);

/*
 * Queues a job (a sync host's submit; `ud` is the applier). Waits while
 * AGS_APPLIER_QUEUE_MAX jobs are queued. Any thread, in practice the loop's.
 */
void ags_applier_submit(void *ud, ags_sync_job *j);

/* Loop thread: hands what is applied so far to `done` now. */
void ags_applier_deliver(ags_applier *a);

/* Loop thread, as the loop stops: closes the wake-up handle. */
void ags_applier_close(ags_applier *a);

/*
 * After the loop ended: writes what is still queued, joins the thread and
 * returns the applied jobs not handed back yet (their sessions are closed:
 * finishing them only frees them), or NULL.
 */
ags_sync_job *ags_applier_stop(ags_applier *a);

/* Most jobs waiting for the applier: past it the submitter waits. */
#define AGS_APPLIER_QUEUE_MAX 64

#endif
