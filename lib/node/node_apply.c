/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The applier (node_apply.h): a thread that writes received batches while
 * the loop thread validates the next ones. Jobs are applied in the order they
 * were submitted and handed back to the loop thread in the same order, so a
 * session's ACKs keep its batches' order.
 */
#include <stdlib.h>

#include "agentsync/agentsync.h"
#include "node_apply.h"

static void append(ags_sync_job **head, ags_sync_job **tail, ags_sync_job *first,
                   ags_sync_job *last)
{
	if (*tail)
		ags_sync_job_set_next(*tail, first);
	else
		*head = first;
	*tail = last;
}

void ags_applier_init(ags_applier *a)
{
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	pthread_cond_init(&a->space, NULL);
}

void ags_applier_free(ags_applier *a)
{
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->cv);
	pthread_cond_destroy(&a->space);
}

int ags_applier_running(const ags_applier *a)
{
	return a->running;
}

void ags_applier_submit(void *ud, ags_sync_job *j)
{
	ags_applier *a = ud;
	ags_sync_job_set_next(j, NULL);
	pthread_mutex_lock(&a->mu);
	while (a->queued >= AGS_APPLIER_QUEUE_MAX)
		pthread_cond_wait(&a->space, &a->mu);
	append(&a->head, &a->tail, j, j);
	a->queued++;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
}

void ags_applier_deliver(ags_applier *a)
{
	if (!a->running)
		return;
	pthread_mutex_lock(&a->mu);
	ags_sync_job *j = a->done_head;
	a->done_head = a->done_tail = NULL;
	pthread_mutex_unlock(&a->mu);
	if (j)
		a->done(a->ud, j);
}

static void on_applied(uv_async_t *h)
{
	ags_applier *a = h->data;
	a->wakes++;
	ags_applier_deliver(a);
}

static void *apply_main(void *arg)
{
	ags_applier *a = arg;
	pthread_mutex_lock(&a->mu);
	for (;;) {
		while (!a->head && !a->stop)
			pthread_cond_wait(&a->cv, &a->mu);
		if (!a->head)
			break; /* stopping, and everything queued is written */
		ags_sync_job *first = a->head, *last = a->tail;
		a->head = a->tail = NULL;
		pthread_mutex_unlock(&a->mu);
		size_t k = 0;
		for (ags_sync_job *j = first; j; j = ags_sync_job_next(j))
			k++;
		/* What queued while the last group was written goes in one commit. */
		ags_sync_jobs_apply(first);
		pthread_mutex_lock(&a->mu);
		a->queued -= k;
		pthread_cond_signal(&a->space);
		append(&a->done_head, &a->done_tail, first, last);
		if (!a->closed)
			uv_async_send(&a->async);
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

int ags_applier_start(ags_applier *a, uv_loop_t *loop, ags_applier_done_cb done, void *ud)
{
	a->head = a->tail = a->done_head = a->done_tail = NULL;
	a->queued = 0;
	a->stop = 0;
	a->closed = 0;
	a->done = done;
	a->ud = ud;
	if (uv_async_init(loop, &a->async, on_applied) != 0)
		return AGS_ERR_IO;
	a->async.data = a;
	if (pthread_create(&a->thread, NULL, apply_main, a) != 0) {
		a->closed = 1;
		uv_close((uv_handle_t *)&a->async, NULL);
		return AGS_ERR_IO;
	}
	a->running = 1;
	return 0;
}

void ags_applier_close(ags_applier *a)
{
	if (!a->running || a->closed)
		return;
	pthread_mutex_lock(&a->mu);
	a->closed = 1;
	pthread_mutex_unlock(&a->mu);
	uv_close((uv_handle_t *)&a->async, NULL);
}

ags_sync_job *ags_applier_stop(ags_applier *a)
{
	if (!a->running)
		return NULL;
	pthread_mutex_lock(&a->mu);
	a->stop = 1;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
	pthread_join(a->thread, NULL);
	a->running = 0;
	ags_sync_job *j = a->done_head;
	a->done_head = a->done_tail = NULL;
	return j;
}
