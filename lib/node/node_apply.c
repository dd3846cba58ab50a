/*
 * The applier: received batches are written to the store on a thread of
 * their own, so that the loop thread decodes and validates a peer's next
 * batch (and keeps QUIC moving) while the last one is committed. Jobs are
 * applied in the order they were submitted and finished (ACK, events) on the
 * loop thread in the same order, so a session's ACKs keep its batches' order.
 */
#include <stdlib.h>

/*
 * Most jobs waiting for the applier: past it the loop thread waits (as it
 * did when it applied batches itself), so a peer that ignores its window
 * cannot queue batches without bound.
 */
#define APPLY_QUEUE_MAX 64

#include "clock.h"
#include "node_int.h"
#include "sync.h"

static void append(struct ags_sync_job **head, struct ags_sync_job **tail,
                   struct ags_sync_job *first, struct ags_sync_job *last)
{
	if (*tail)
		ags_sync_job_set_next(*tail, first);
	else
		*head = first;
	*tail = last;
}

static void submit(void *ud, struct ags_sync_job *j)
{
	struct ags_node *n = ud;
	ags_sync_job_set_next(j, NULL);
	pthread_mutex_lock(&n->apply_mu);
	while (n->apply_queued >= APPLY_QUEUE_MAX)
		pthread_cond_wait(&n->apply_space, &n->apply_mu);
	append(&n->apply_head, &n->apply_tail, j, j);
	n->apply_queued++;
	pthread_cond_signal(&n->apply_cv);
	pthread_mutex_unlock(&n->apply_mu);
}

static void finish_list(struct ags_sync_job *j, uint64_t now)
{
	while (j) {
		struct ags_sync_job *next = ags_sync_job_next(j);
		ags_sync_job_finish(j, now);
		j = next;
	}
}

void ags_node_apply_deliver(void *ud)
{
	struct ags_node *n = ud;
	if (!n->apply_running)
		return;
	pthread_mutex_lock(&n->apply_mu);
	struct ags_sync_job *j = n->done_head;
	n->done_head = n->done_tail = NULL;
	pthread_mutex_unlock(&n->apply_mu);
	/* Senders look at the log once, after every job of the list is answered:
	 * pumped after the first, one would read the rows of the others (a
	 * group's commit made them visible) that their sessions then step over. */
	n->delivering = 1;
	finish_list(j, ags_mono_us());
	n->delivering = 0;
	if (n->pump_due) {
		n->pump_due = 0;
		ags_node_pump_all(n);
	}
}

static void on_applied(uv_async_t *h)
{
	((struct ags_node *)h->data)->wakes++;
	ags_node_apply_deliver(h->data);
}

static void *apply_main(void *arg)
{
	struct ags_node *n = arg;
	pthread_mutex_lock(&n->apply_mu);
	for (;;) {
		while (!n->apply_head && !n->apply_stop)
			pthread_cond_wait(&n->apply_cv, &n->apply_mu);
		if (!n->apply_head)
			break; /* stopping, and everything queued is written */
		struct ags_sync_job *first = n->apply_head, *last = n->apply_tail;
		n->apply_head = n->apply_tail = NULL;
		pthread_mutex_unlock(&n->apply_mu);
		size_t k = 0;
		for (struct ags_sync_job *j = first; j; j = ags_sync_job_next(j))
			k++;
		/* What queued while the last group was written goes in one commit. */
		ags_sync_jobs_apply(first);
		pthread_mutex_lock(&n->apply_mu);
		n->apply_queued -= k;
		pthread_cond_signal(&n->apply_space);
		append(&n->done_head, &n->done_tail, first, last);
		if (!n->apply_closed)
			uv_async_send(&n->apply_async);
	}
	pthread_mutex_unlock(&n->apply_mu);
	return NULL;
}

int ags_node_apply_start(struct ags_node *n)
{
	n->apply_head = n->apply_tail = n->done_head = n->done_tail = NULL;
	n->apply_queued = 0;
	n->apply_stop = 0;
	n->apply_closed = 0;
	if (uv_async_init(&n->loop, &n->apply_async, on_applied) != 0)
		return AGS_ERR_IO;
	n->apply_async.data = n;
	if (pthread_create(&n->apply_thread, NULL, apply_main, n) != 0) {
		n->apply_closed = 1;
		uv_close((uv_handle_t *)&n->apply_async, NULL);
		return AGS_ERR_IO;
	}
	n->apply_running = 1;
	n->host.submit = submit;
	return 0;
}

void ags_node_apply_close(struct ags_node *n)
{
	if (!n->apply_running)
		return;
	pthread_mutex_lock(&n->apply_mu);
	n->apply_closed = 1;
	pthread_mutex_unlock(&n->apply_mu);
	uv_close((uv_handle_t *)&n->apply_async, NULL);
}

void ags_node_apply_stop(struct ags_node *n)
{
	if (!n->apply_running)
		return;
	pthread_mutex_lock(&n->apply_mu);
	n->apply_stop = 1;
	pthread_cond_signal(&n->apply_cv);
	pthread_mutex_unlock(&n->apply_mu);
	pthread_join(n->apply_thread, NULL);
	n->apply_running = 0;
	n->host.submit = NULL;
	/* Their sessions are closed: finishing only frees them. */
	struct ags_sync_job *j = n->done_head;
	n->done_head = n->done_tail = NULL;
	finish_list(j, ags_mono_us());
}
