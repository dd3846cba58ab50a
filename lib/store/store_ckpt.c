/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store's checkpointer: copies the WAL back into the database file on a
 * thread and connection of its own, once the writer has been quiet for a
 * moment. A burst of writes (a peer catching up, a bulk sync_patterns) then
 * goes to the WAL alone and never waits for a checkpoint; the copy happens
 * in the lull after it. Past a hard size the checkpointer runs at once, busy
 * writer or not, and far past it the writer checkpoints itself, so the WAL
 * stays bounded under a write load that never pauses.
 */
#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "clock.h"
#include "error.h"
#include "store_ckpt.h"
#include "store_int.h"

struct ags_ckpt {
	sqlite3 *db; /* the checkpointer's own connection */
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int frames;       /* in the WAL after the last commit */
	uint64_t last_us; /* when that commit was (ags_mono_us) */
	uint64_t over_us; /* when the WAL passed soft_frames, or 0 */
	uint64_t runs;    /* checkpoints done */
	ags_ckpt_limits lim;
	int stop;
};

static void *ckpt_main(void *arg)
{
	struct ags_ckpt *c = arg;
	/* Lowest priority: the copy runs on what the node's own threads leave. */
	(void)setpriority(PRIO_PROCESS, (id_t)gettid(), 19);
	pthread_mutex_lock(&c->mu);
	while (!c->stop) {
		if (c->frames < c->lim.soft_frames) {
			pthread_cond_wait(&c->cv, &c->mu);
			continue;
		}
		uint64_t due = c->last_us + (uint64_t)c->lim.quiet_ms * 1000u;
		uint64_t latest = c->over_us + (uint64_t)c->lim.max_wait_ms * 1000u;
		if (latest < due)
			due = latest;
		if (c->frames < c->lim.hard_frames && ags_mono_us() < due) {
			/* ags_mono_us is CLOCK_MONOTONIC, the condition variable's clock. */
			struct timespec ts = {(time_t)(due / 1000000u),
			                      (long)(due % 1000000u) * 1000};
			pthread_cond_timedwait(&c->cv, &c->mu, &ts);
			continue;
		}
		/* The next commit reports what is left (little, once the WAL restarts). */
		c->frames = 0;
		c->over_us = 0;
		pthread_mutex_unlock(&c->mu);
		/* PASSIVE: never waits for the writer or a reader; what a reader still
		 * needs is copied next time. */
		(void)sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		pthread_mutex_lock(&c->mu);
		c->runs++;
		pthread_cond_broadcast(&c->cv);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

int ags_ckpt_start(const char *path, const uint8_t *key, const ags_ckpt_limits *lim,
                   struct ags_ckpt **out)
{
	*out = NULL;
	struct ags_ckpt *c = calloc(1, sizeof(*c));
	if (!c)
		return -1;
	c->lim = *lim;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, &ca);
	pthread_condattr_destroy(&ca);
	/* A connection finds the WAL on its first read (the key check is one); until
	 * then a checkpoint does nothing. */
	if (ags_store_key_open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, key, NULL, &c->db,
	                       NULL) != 0 ||
	    sqlite3_busy_timeout(c->db, 0) != SQLITE_OK ||
	    pthread_create(&c->thread, NULL, ckpt_main, c) != 0) {
		sqlite3_close(c->db);
		pthread_cond_destroy(&c->cv);
		pthread_mutex_destroy(&c->mu);
		free(c);
		return -1;
	}
	*out = c;
	return 0;
}

void ags_ckpt_note(struct ags_ckpt *c, int frames)
{
	pthread_mutex_lock(&c->mu);
	int wake = frames >= c->lim.soft_frames && c->frames < c->lim.soft_frames;
	wake |= frames >= c->lim.hard_frames;
	c->frames = frames;
	c->last_us = ags_mono_us();
	if (frames < c->lim.soft_frames)
		c->over_us = 0;
	else if (!c->over_us)
		c->over_us = c->last_us;
	if (wake)
		pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

void ags_ckpt_defer(struct ags_ckpt *c)
{
	pthread_mutex_lock(&c->mu);
	c->last_us = ags_mono_us();
	pthread_mutex_unlock(&c->mu);
}

uint64_t ags_ckpt_runs(struct ags_ckpt *c)
{
	pthread_mutex_lock(&c->mu);
	uint64_t r = c->runs;
	pthread_mutex_unlock(&c->mu);
	return r;
}

void ags_ckpt_stop(struct ags_ckpt *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = 1;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->thread, NULL);
	sqlite3_close(c->db);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
}
