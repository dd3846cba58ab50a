/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the sync engine (lib/sync/sync.c) without a network: two sessions
 * wired back to back in memory, each over a real SQLite store. Frames one
 * session sends are fed to the other until nothing moves. Also feeds a
 * session hand-made bad frames, as a misbehaving peer would.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>
#include <unistd.h>

#include "testutil.h"
#include "frameutil.h"
#include "agentsync/agentsync.h"
#include "batch.h"
#include "clock.h"
#include "error.h"
#include "frame.h"
#include "store.h"
#include "sync.h"
#include "wire.h"

/* One side: a store, a host, a session, and the frames it sent. */
struct side {
	const char *id;
	ags_store *store;
	pthread_mutex_t mu;
	ags_sync_host host;
	ags_sync *sync;
	ags_frame_buf out; /* frames sent, not yet delivered */
	int received, conflicts, completed, failed, changed, pulled;
	char last_failed[256];
	ags_sync_job *jobs[16]; /* submitted to a test applier, in order */
	int n_jobs;
};

/* A host applier that keeps the jobs until the test runs them. */
static void h_submit(void *ud, struct ags_sync_job *j)
{
	struct side *s = ud;
	assert_true(s->n_jobs < 16);
	s->jobs[s->n_jobs++] = j;
}

/* Applies and answers the first queued job, as an applier thread and the loop would. */
static void run_job(struct side *s)
{
	assert_true(s->n_jobs > 0);
	ags_sync_job *j = s->jobs[0];
	memmove(s->jobs, s->jobs + 1, (size_t)(s->n_jobs - 1) * sizeof(s->jobs[0]));
	s->n_jobs--;
	ags_sync_job_apply(j);
	ags_sync_job_finish(j, ags_mono_us());
}

static void h_send(void *ud, void *sud, uint8_t *frame, size_t len)
{
	(void)sud;
	struct side *s = ud;
	assert_int_equal(ags_frame_buf_append(&s->out, frame, len), 0);
	free(frame);
}

static void h_event(void *ud, const ags_event *ev)
{
	struct side *s = ud;
	switch (ev->type) {
	case AGS_EV_PATTERN_RECEIVED:
		s->received++;
		break;
	case AGS_EV_PATTERN_CONFLICT:
		s->conflicts++;
		break;
	case AGS_EV_SYNC_COMPLETED:
		s->completed++;
		break;
	case AGS_EV_SYNC_FAILED:
		s->failed++;
		snprintf(s->last_failed, sizeof(s->last_failed), "%s %s",
		         ev->pattern_id ? ev->pattern_id : "-", ev->error ? ev->error : "-");
		break;
	}
}

static void h_changed(void *ud, void *sud)
{
	(void)sud;
	((struct side *)ud)->changed++;
}

static void h_pulled(void *ud, void *sud)
{
	(void)sud;
	((struct side *)ud)->pulled++;
}

static const char *types_wanted[] = {"coverage_gap"};

static void side_init(struct side *s, const char *dir, const char *id, int filter)
{
	memset(s, 0, sizeof(*s));
	s->id = id;
	char *path = tu_sprintf("%s/%s.db", dir, id);
	assert_int_equal(ags_store_open(path, NULL, &s->store, NULL), 0);
	free(path);
	pthread_mutex_init(&s->mu, NULL);
	ags_frame_buf_init(&s->out, 0);
	ags_sync_host *h = &s->host;
	h->store = s->store;
	h->store_mu = &s->mu;
	h->node_id = id;
	h->store_id = ags_store_id(s->store);
	h->tenant = "default";
	h->batch_size = 100;
	h->window = 4;
	h->compression = 1;
	h->max_frame = 16u << 20;
	h->max_pattern = AGS_PATTERN_MAX_BYTES_DEFAULT;
	h->instance = "00000000000000000000000000000001";
	if (filter) {
		h->filter_types = types_wanted;
		h->n_filter_types = 1;
	}
	h->ud = s;
	h->send = h_send;
	h->event = h_event;
	h->changed = h_changed;
	h->pulled = h_pulled;
}

static void side_connect(struct side *s, const char *peer)
{
	assert_int_equal(ags_sync_new(&s->host, peer, s, &s->sync), 0);
	ags_sync_start(s->sync, ags_mono_us());
}

static void side_free(struct side *s)
{
	ags_sync_del(s->sync);
	ags_store_close(s->store);
	ags_frame_buf_free(&s->out);
	pthread_mutex_destroy(&s->mu);
}

/* Delivers everything `from` sent to `to`. Returns the bytes moved; fails on a close. */
static size_t deliver(struct side *from, struct side *to)
{
	size_t n = from->out.len;
	if (!n)
		return 0;
	uint8_t *copy = malloc(n);
	memcpy(copy, from->out.data, n);
	ags_frame_buf_reset(&from->out);
	uint64_t code = 0;
	char reason[256] = "";
	int rv = ags_sync_on_data(to->sync, copy, n, ags_mono_us(), &code, reason, sizeof(reason));
	free(copy);
	if (rv)
		fail_msg("%s closed the connection: %s (0x%llx)", to->id, reason,
		         (unsigned long long)code);
	return n;
}

/* Runs both sessions until nothing moves (bounded). */
static void settle(struct side *a, struct side *b)
{
	for (int i = 0; i < 100000; i++) {
		ags_sync_pump(a->sync, ags_mono_us());
		ags_sync_pump(b->sync, ags_mono_us());
		if (deliver(a, b) + deliver(b, a) == 0)
			return;
	}
	fail_msg("sessions did not settle");
}

static ags_pattern *pat(const char *id, int64_t version, const char *type, int priority)
{
	char json[512];
	char prio[32] = "";
	if (priority)
		snprintf(prio, sizeof(prio), ",\"priority\":%d", priority);
	snprintf(json, sizeof(json),
	         "{\"id\":\"%s\",\"agentId\":\"a1\",\"type\":\"%s\",\"data\":{\"v\":%lld},"
	         "\"metadata\":{\"source\":\"t\",\"tags\":[\"x\"]%s},\"timestamp\":1000,"
	         "\"version\":%lld}",
	         id, type, (long long)version, prio, (long long)version);
	ags_pattern *p = NULL;
	ags_error err;
	if (ags_pattern_parse(json, strlen(json), NULL, &p, &err))
		fail_msg("parse: %s", err.message);
	return p;
}

static void put_many(struct side *s, const char *prefix, int n, const char *type, int priority)
{
	for (int i = 0; i < n; i++) {
		char id[64];
		snprintf(id, sizeof(id), "%s-%d", prefix, i);
		ags_pattern *p = pat(id, 1, type, priority);
		assert_int_equal(ags_store_apply(s->store, p, NULL, NULL), 0);
		ags_pattern_del(p);
	}
}

static void assert_same_store(struct side *a, struct side *b)
{
	char da[65], db[65];
	uint64_t ca, cb;
	ags_store_digest(a->store, da);
	ags_store_digest(b->store, db);
	assert_int_equal(ags_store_count(a->store, &ca), 0);
	assert_int_equal(ags_store_count(b->store, &cb), 0);
	assert_int_equal(ca, cb);
	assert_string_equal(da, db);
}

struct env {
	char *dir;
	struct side a, b;
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	e->dir = tu_mkdtemp("sync-unit");
	side_init(&e->a, e->dir, "a", 0);
	side_init(&e->b, e->dir, "b", 0);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	side_free(&e->a);
	side_free(&e->b);
	tu_rmrf(e->dir);
	free(e->dir);
	free(e);
	return 0;
}

static void both_sides_converge_and_ack(void **state)
{
	struct env *e = *state;
	put_many(&e->a, "a", 750, "test_execution", 0);
	put_many(&e->b, "b", 250, "test_execution", 0);
	side_connect(&e->a, "b");
	side_connect(&e->b, "a");
	settle(&e->a, &e->b);
	assert_same_store(&e->a, &e->b);
	uint64_t n;
	assert_int_equal(ags_store_count(e->a.store, &n), 0);
	assert_int_equal(n, 1000);
	assert_int_equal(e->b.received, 750);
	assert_int_equal(e->a.received, 250);
	/* 750 in batches of 100 (8), plus empty batches that only move b's cursor
	 * past what a got from b itself (never sent back). */
	ags_sync_stats st;
	ags_sync_get_stats(e->a.sync, &st);
	assert_int_equal(st.patterns_sent, 750);
	assert_true(e->a.completed >= 8);
	assert_int_equal(st.acked_seq, ags_store_seq(e->a.store));
	assert_true(st.wire_bytes_out < st.raw_bytes_out); /* compression paid */
	assert_int_equal(ags_sync_lag(e->a.sync), 0);
	/* Nothing is sent back to where it came from: b applied nothing of its own. */
	assert_int_equal(e->b.conflicts + e->a.conflicts, 0);
}

static void reconnect_resumes_from_the_durable_cursor(void **state)
{
	struct env *e = *state;
	put_many(&e->a, "a", 300, "test_execution", 0);
	side_connect(&e->a, "b");
	side_connect(&e->b, "a");
	settle(&e->a, &e->b);
	assert_int_equal(e->b.received, 300);
	ags_sync_del(e->a.sync);
	ags_sync_del(e->b.sync);
	e->a.sync = e->b.sync = NULL;
	/* New changes while disconnected, then a new connection. */
	put_many(&e->a, "late", 50, "test_execution", 0);
	side_connect(&e->a, "b");
	side_connect(&e->b, "a");
	settle(&e->a, &e->b);
	/* Only the 50 new ones travel: b's HELLO named where it stood. */
	assert_int_equal(e->b.received, 350);
	ags_sync_stats st;
	ags_sync_get_stats(e->a.sync, &st);
	assert_int_equal(st.patterns_sent, 50);
	assert_same_store(&e->a, &e->b);
}

static void a_wiped_receiver_gets_everything_again(void **state)
{
	struct env *e = *state;
	put_many(&e->a, "a", 120, "test_execution", 0);
	side_connect(&e->a, "b");
	side_connect(&e->b, "a");
	settle(&e->a, &e->b);
	side_free(&e->b);
	char *path = tu_sprintf("%s/b.db", e->dir);
	unlink(path);
	char *wal = tu_sprintf("%s-wal", path);
	unlink(wal);
	free(wal);
	free(path);
	side_init(&e->b, e->dir, "b", 0);
	ags_sync_del(e->a.sync);
	side_connect(&e->a, "b");
	side_connect(&e->b, "a");
	settle(&e->a, &e->b);
	assert_same_store(&e->a, &e->b);
	assert_int_equal(e->b.received, 120);
}

/*
 * A session sends nothing while it is made, only when started: a constructor
 * that fails has called no host function (its HELLO went nowhere), and an
 * upstream session's AUTH and HELLO go together, AUTH first.
 */
static void a_session_sends_its_hello_only_when_started(void **state)
{
	struct env *e = *state;
	char *types[] = {"coverage_gap"};
	ags_sync_resume hint = {.valid = 1,
	                        .peer_store = "0123456789abcdef0123456789abcdef",
	                        .types = types,
	                        .n_types = 1};
	ags_sync_opts o = {.role = AGS_SYNC_ROLE_PEER, .resume = &hint};
	assert_int_equal(ags_sync_new_ex(&e->a.host, "b", &o, &e->a, &e->a.sync), 0);
	assert_int_equal(e->a.out.len, 0);
	ags_sync_start(e->a.sync, ags_mono_us());
	ags_frame_reader rd;
	ags_frame f;
	size_t used = 0;
	assert_int_equal(ags_frame_reader_init(&rd, 1u << 20), 0);
	assert_int_equal(ags_frame_reader_feed(&rd, e->a.out.data, e->a.out.len, &used, &f, NULL),
	                 1);
	assert_int_equal(f.type, AGS_FRAME_HELLO);
	ags_frame_reader_free(&rd);
	size_t sent = e->a.out.len;
	ags_sync_start(e->a.sync, ags_mono_us()); /* a second start sends nothing */
	assert_int_equal(e->a.out.len, sent);
	ags_sync_del(e->a.sync);
	ags_frame_buf_reset(&e->a.out);

	ags_sync_opts up = {.role = AGS_SYNC_ROLE_UPSTREAM, .token = "a.b.c"};
	assert_int_equal(ags_sync_new_ex(&e->a.host, "hub", &up, &e->a, &e->a.sync), 0);
	assert_int_equal(e->a.out.len, 0);
	ags_sync_start(e->a.sync, ags_mono_us());
	assert_int_equal(ags_frame_reader_init(&rd, 1u << 20), 0);
	assert_int_equal(ags_frame_reader_feed(&rd, e->a.out.data, e->a.out.len, &used, &f, NULL),
	                 1);
	assert_int_equal(f.type, AGS_FRAME_AUTH);
	assert_int_equal(
	    ags_frame_reader_feed(&rd, e->a.out.data + used, e->a.out.len - used, &used, &f, NULL),
	    1);
	assert_int_equal(f.type, AGS_FRAME_HELLO);
	ags_frame_reader_free(&rd);
}

/* Starts a's session with a resume hint (as a 0-RTT redial does) and b's normally. */
static void connect_resumed(struct env *e, const ags_sync_resume *hint)
{
	ags_sync_opts o = {.role = AGS_SYNC_ROLE_PEER, .resume = hint};
	assert_int_equal(ags_sync_new_ex(&e->a.host, "b", &o, &e->a, &e->a.sync), 0);
	ags_sync_start(e->a.sync, ags_mono_us());
	side_connect(&e->b, "a");
}

static void resumed_session_sends_before_hello_and_finishes_the_cursor(void **state)
{
	struct env *e = *state;
	put_many(&e->a, "a", 100, "test_execution", 0);
	side_connect(&e->a, "b");
	side_connect(&e->b, "a");
	settle(&e->a, &e->b);
	ags_sync_resume hint;
	memset(&hint, 0, sizeof(hint));
	ags_sync_resume_save(e->a.sync, &hint);
	assert_true(hint.valid);
	assert_true(hint.acked_seq == ags_store_seq(e->a.store));
	ags_sync_del(e->a.sync);
	ags_sync_del(e->b.sync);
	e->a.sync = e->b.sync = NULL;

	put_many(&e->a, "late", 30, "test_execution", 0);
	connect_resumed(e, &hint);
	/* Before b's HELLO reaches a, a already sends the 30 new changes. */
	ags_sync_pump(e->a.sync, 0);
	ags_sync_stats st;
	ags_sync_get_stats(e->a.sync, &st);
	assert_int_equal(st.early_batches, 1);
	assert_int_equal(st.patterns_sent, 30);
	deliver(&e->a, &e->b);
	assert_int_equal(e->b.received, 130);
	/* The early batch did not move b's cursor (it carried uptoSeq 0)... */
	char cur[128];
	assert_int_equal(ags_store_state_get(e->b.store, "cursor/a", cur, sizeof(cur)), 0);
	assert_non_null(strstr(cur, " 100"));
	settle(&e->a, &e->b);
	/* ...the count-0 batch after b's HELLO did, and nothing was sent twice. */
	assert_int_equal(ags_store_state_get(e->b.store, "cursor/a", cur, sizeof(cur)), 0);
	char want[64];
	snprintf(want, sizeof(want), " %llu", (unsigned long long)ags_store_seq(e->a.store));
	assert_non_null(strstr(cur, want));
	ags_sync_get_stats(e->a.sync, &st);
	assert_int_equal(st.patterns_sent, 30);
	assert_int_equal(ags_sync_lag(e->a.sync), 0);
	assert_same_store(&e->a, &e->b);
	ags_sync_resume_free(&hint);
}

static void stale_resume_hint_rewinds_and_loses_nothing(void **state)
{
	struct env *e = *state;
	put_many(&e->a, "a", 100, "test_execution", 0);
	side_connect(&e->a, "b");
	side_connect(&e->b, "a");
	settle(&e->a, &e->b);
	ags_sync_resume hint;
	memset(&hint, 0, sizeof(hint));
	ags_sync_resume_save(e->a.sync, &hint);
	ags_sync_del(e->a.sync);
	e->a.sync = NULL;
	/* b is wiped: its cursor is gone, the hint is wrong. */
	side_free(&e->b);
	char *path = tu_sprintf("%s/b.db", e->dir), *wal = tu_sprintf("%s/b.db-wal", e->dir);
	unlink(path);
	unlink(wal);
	free(path);
	free(wal);
	side_init(&e->b, e->dir, "b", 0);
	put_many(&e->a, "late", 20, "test_execution", 0);
	connect_resumed(e, &hint);
	ags_sync_pump(e->a.sync, 0);
	deliver(&e->a, &e->b); /* the early batch: 20 changes, no cursor */
	char cur[128];
	assert_int_equal(ags_store_state_get(e->b.store, "cursor/a", cur, sizeof(cur)),
	                 AGS_ERR_NOT_FOUND);
	settle(&e->a, &e->b); /* b's HELLO names no cursor: a rewinds to the start */
	assert_same_store(&e->a, &e->b);
	uint64_t n;
	assert_int_equal(ags_store_count(e->b.store, &n), 0);
	assert_int_equal(n, 120);
	ags_sync_resume_free(&hint);
}

static void cursor_only_batch_waits_for_content(void **state)
{
	struct env *e = *state;
	e->b.host.cursor_delay_us = 100000;
	put_many(&e->a, "x", 150, "test_execution", 0);
	side_connect(&e->a, "b");
	side_connect(&e->b, "a");
	settle(&e->a, &e->b);
	uint64_t n;
	assert_int_equal(ags_store_count(e->b.store, &n), 0);
	assert_int_equal(n, 150);
	/* b had nothing for a: no batch went back yet, a's cursor at b lags
	 * behind b's log; what came from a is no lag of a's (issue 15.1). */
	assert_int_equal(e->a.received, 0);
	assert_int_equal(e->b.completed, 0);
	ags_sync_stats st;
	ags_sync_get_stats(e->b.sync, &st);
	assert_int_equal(st.acked_seq, 0);
	assert_int_equal(ags_sync_lag(e->b.sync), 0);
	/* A batch with content carries the cursor over them. */
	put_many(&e->b, "y", 1, "test_execution", 0);
	assert_int_equal(ags_sync_lag(e->b.sync), 1);
	settle(&e->a, &e->b);
	assert_int_equal(e->a.received, 1);
	ags_sync_get_stats(e->b.sync, &st);
	assert_int_equal(st.acked_seq, 151);
	assert_int_equal(ags_sync_lag(e->b.sync), 0);
	/* Without one, the count-0 batch goes once the delay has passed. */
	put_many(&e->a, "z", 10, "test_execution", 0);
	settle(&e->a, &e->b);
	ags_sync_get_stats(e->b.sync, &st);
	assert_int_equal(st.acked_seq, 151);
	ags_sync_pump(e->b.sync, ags_mono_us() + 200000);
	settle(&e->a, &e->b);
	ags_sync_get_stats(e->b.sync, &st);
	assert_int_equal(st.acked_seq, 161);
	assert_int_equal(ags_sync_lag(e->b.sync), 0);
	assert_same_store(&e->a, &e->b);
}

static void applied_elsewhere_acks_in_order_after_the_commit(void **state)
{
	struct env *e = *state;
	e->b.host.submit = h_submit;
	put_many(&e->a, "x", 250, "test_execution", 0);
	side_connect(&e->a, "b");
	side_connect(&e->b, "a");
	settle(&e->a, &e->b);
	/* Three batches wait for the applier: nothing is stored nor acknowledged. */
	assert_int_equal(e->b.n_jobs, 3);
	uint64_t n;
	assert_int_equal(ags_store_count(e->b.store, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(e->a.completed, 0);
	assert_int_equal(ags_sync_lag(e->a.sync), 250);
	/* One written: one ACK, for the first batch. */
	run_job(&e->b);
	assert_int_equal(ags_store_count(e->b.store, &n), 0);
	assert_int_equal(n, 100);
	settle(&e->a, &e->b);
	assert_int_equal(e->a.completed, 1);
	ags_sync_stats st;
	ags_sync_get_stats(e->a.sync, &st);
	assert_int_equal(st.patterns_acked, 100);
	while (e->b.n_jobs)
		run_job(&e->b);
	settle(&e->a, &e->b);
	assert_int_equal(e->b.received, 250);
	assert_int_equal(ags_sync_lag(e->a.sync), 0);
	assert_same_store(&e->a, &e->b);

	/* The connection closes with a batch still to write: it is written, the
	 * session goes with its last job, and no ACK is sent. */
	put_many(&e->a, "y", 50, "test_execution", 0);
	ags_sync_pump(e->a.sync, ags_mono_us());
	deliver(&e->a, &e->b);
	assert_int_equal(e->b.n_jobs, 1);
	ags_sync_del(e->b.sync);
	e->b.sync = NULL;
	run_job(&e->b);
	assert_int_equal(e->b.out.len, 0);
	assert_int_equal(ags_store_count(e->b.store, &n), 0);
	assert_int_equal(n, 300);
}

/*
 * Batches queued for the applier are written together (one transaction);
 * one that cannot be written fails alone: the group is rolled back and the
 * others written one by one, each answered in order.
 */
static void queued_batches_share_a_commit_and_fail_alone(void **state)
{
	struct env *e = *state;
	e->b.host.submit = h_submit;
	put_many(&e->a, "x", 250, "test_execution", 0);
	side_connect(&e->a, "b");
	side_connect(&e->b, "a");
	settle(&e->a, &e->b);
	assert_int_equal(e->b.n_jobs, 3);
	/* The second batch (x-100 .. x-199) holds a change the store refuses. */
	char *path = tu_sprintf("%s/b.db", e->dir);
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
	                              "CREATE TRIGGER poison BEFORE INSERT ON patterns"
	                              " WHEN NEW.id = 'x-150' BEGIN"
	                              " SELECT RAISE(ABORT, 'poisoned change'); END",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	for (int i = 0; i < 3; i++)
		ags_sync_job_set_next(e->b.jobs[i], i < 2 ? e->b.jobs[i + 1] : NULL);
	ags_sync_jobs_apply(e->b.jobs[0]);
	for (int i = 0; i < 3; i++)
		ags_sync_job_finish(e->b.jobs[i], ags_mono_us());
	e->b.n_jobs = 0;
	uint64_t n;
	assert_int_equal(ags_store_count(e->b.store, &n), 0);
	assert_int_equal(n, 150); /* the first and the third batch */
	ags_pattern *got = NULL;
	assert_int_equal(ags_store_get(e->b.store, "x-99", &got), 0);
	ags_pattern_del(got);
	assert_int_equal(ags_store_get(e->b.store, "x-100", &got), AGS_ERR_NOT_FOUND);
	assert_int_equal(ags_store_get(e->b.store, "x-249", &got), 0);
	ags_pattern_del(got);
	e->a.host.retry = (ags_backoff_cfg){0, 1, 1, 1.0}; /* resend after 1 ms */
	deliver(&e->b, &e->a);
	/* The second batch was refused whole (ACK retry): the third one's ACK came
	 * after that refusal and moves nothing; the peer's cursor stays before it. */
	assert_int_equal(e->a.completed, 1);
	assert_int_equal(e->a.failed, 1);
	assert_non_null(strstr(e->a.last_failed, "poisoned change"));
	ags_sync_stats st;
	ags_sync_get_stats(e->a.sync, &st);
	assert_int_equal(st.refusals, 1);
	assert_int_equal(st.acked_seq, 0);
	assert_int_equal(ags_sync_lag(e->a.sync), 250);

	/* Without the poison, the refused changes go again after the backoff, and
	 * a group of batches is written whole. */
	assert_int_equal(sqlite3_exec(db, "DROP TRIGGER poison", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	free(path);
	tu_sleep_ms(5);
	settle(&e->a, &e->b);
	int k1 = e->b.n_jobs;
	assert_true(k1 >= 1);
	for (int i = 0; i < k1; i++)
		ags_sync_job_set_next(e->b.jobs[i], i + 1 < k1 ? e->b.jobs[i + 1] : NULL);
	ags_sync_jobs_apply(e->b.jobs[0]);
	for (int i = 0; i < k1; i++)
		ags_sync_job_finish(e->b.jobs[i], ags_mono_us());
	e->b.n_jobs = 0;
	deliver(&e->b, &e->a);
	assert_int_equal(ags_store_count(e->b.store, &n), 0);
	assert_int_equal(n, 250); /* nothing skipped */
	assert_int_equal(e->a.completed, 1 + k1);
	assert_int_equal(ags_sync_lag(e->a.sync), 0);
	put_many(&e->a, "y", 300, "test_execution", 0);
	settle(&e->a, &e->b);
	assert_true(e->b.n_jobs >= 2);
	int k = e->b.n_jobs;
	for (int i = 0; i < k; i++)
		ags_sync_job_set_next(e->b.jobs[i], i + 1 < k ? e->b.jobs[i + 1] : NULL);
	ags_sync_jobs_apply(e->b.jobs[0]);
	for (int i = 0; i < k; i++)
		ags_sync_job_finish(e->b.jobs[i], ags_mono_us());
	e->b.n_jobs = 0;
	assert_int_equal(ags_store_count(e->b.store, &n), 0);
	assert_int_equal(n, 250 + (uint64_t)k * 100);
	deliver(&e->b, &e->a);
	assert_int_equal(e->a.completed, 1 + k1 + k);
}

/*
 * A receiver whose store refuses one change every time (docs/PROTOCOL.md,
 * "Refusals"): the sender resends after each refusal, in batches half as
 * large each time down to one change, never counts the refused change as
 * acknowledged, and closes with INTERNAL_ERROR after 5 refusals of one change.
 */
static void refused_changes_go_again_smaller_then_close(void **state)
{
	struct env *e = *state;
	e->a.host.retry = (ags_backoff_cfg){0, 1, 1, 1.0}; /* 1 ms backoff */
	put_many(&e->a, "x", 20, "test_execution", 0);
	char *path = tu_sprintf("%s/b.db", e->dir);
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
	                              "CREATE TRIGGER poison BEFORE INSERT ON patterns"
	                              " WHEN NEW.id = 'x-7' BEGIN"
	                              " SELECT RAISE(ABORT, 'poisoned change'); END",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(db);
	free(path);
	side_connect(&e->a, "b");
	side_connect(&e->b, "a");
	uint64_t code = 0;
	char reason[256] = "";
	int closed = 0;
	for (int i = 0; i < 2000 && !closed; i++) {
		ags_sync_pump(e->a.sync, ags_mono_us());
		ags_sync_pump(e->b.sync, ags_mono_us());
		deliver(&e->a, &e->b);
		size_t n = e->b.out.len;
		if (n) {
			uint8_t *copy = malloc(n);
			memcpy(copy, e->b.out.data, n);
			ags_frame_buf_reset(&e->b.out);
			closed = ags_sync_on_data(e->a.sync, copy, n, ags_mono_us(), &code, reason,
			                          sizeof(reason)) != 0;
			free(copy);
		} else {
			tu_sleep_ms(1);
		}
		/* Never past the refused change. */
		assert_int_equal(ags_sync_lag(e->a.sync), 20);
	}
	assert_true(closed);
	assert_int_equal(code, AGS_APP_INTERNAL_ERROR);
	assert_non_null(strstr(reason, "peer refused changes 8..8 5 times"));
	assert_non_null(strstr(reason, "poisoned change"));
	ags_sync_stats st;
	ags_sync_get_stats(e->a.sync, &st);
	/* 20, 20, 20 (50 > 20), 20 (25 > 20), then 12, 6, 3, 1 at a time: 9 + 5 refusals at most.
	 */
	assert_true(st.refusals >= 5 + 4 && st.refusals <= 5 + 8);
	/* The changes before the refused one went in batches small enough to pass. */
	uint64_t n = 0;
	assert_int_equal(ags_store_count(e->b.store, &n), 0);
	assert_true(n >= 7);
	ags_pattern *got = NULL;
	assert_int_equal(ags_store_get(e->b.store, "x-6", &got), 0);
	ags_pattern_del(got);
	assert_int_equal(ags_store_get(e->b.store, "x-7", &got), AGS_ERR_NOT_FOUND);
}

/* A host's recent writes, served from its store's listing (test): how often, and how. */
static int recent_calls, recent_mode; /* mode 1: stop after the first row (-1) */

struct recent_fwd {
	ags_row_cb cb;
	void *ud;
	int n;
};

static int recent_row(void *ud, const ags_change_row *r)
{
	struct recent_fwd *f = ud;
	if (recent_mode == 1 && f->n == 1)
		return 1;
	f->n++;
	return f->cb(f->ud, r);
}

static int h_recent(void *ud, uint64_t after, uint64_t head, ags_row_cb cb, void *cb_ud)
{
	struct side *s = ud;
	recent_calls++;
	struct recent_fwd f = {cb, cb_ud, 0};
	uint64_t upto = 0;
	int rv = ags_store_rows(s->store, after, 1000, NULL, recent_row, &f, &upto);
	if (rv)
		return -1;
	return upto == head ? 1 : 0;
}

/*
 * A sender takes what the host still holds of its recent writes instead of
 * reading the store; when the host's listing is cut short, it reads the store
 * and nothing is sent twice.
 */
static void recent_writes_are_sent_without_a_store_read(void **state)
{
	struct env *e = *state;
	e->a.host.recent = h_recent;
	recent_calls = 0;
	recent_mode = 0;
	side_connect(&e->a, "b");
	side_connect(&e->b, "a");
	settle(&e->a, &e->b);
	put_many(&e->a, "x", 5, "test_execution", 0);
	settle(&e->a, &e->b);
	assert_true(recent_calls > 0);
	assert_int_equal(e->b.received, 5);
	assert_same_store(&e->a, &e->b);
	recent_mode = 1;
	put_many(&e->a, "y", 5, "test_execution", 0);
	settle(&e->a, &e->b);
	assert_int_equal(e->b.received, 10);
	ags_sync_stats st;
	ags_sync_get_stats(e->a.sync, &st);
	assert_int_equal(st.patterns_sent, 10);
	assert_same_store(&e->a, &e->b);
}

static void filter_sends_only_what_was_asked(void **state)
{
	struct env *e = *state;
	side_free(&e->b);
	side_init(&e->b, e->dir, "b2", 1); /* wants coverage_gap only */
	put_many(&e->a, "x", 40, "test_execution", 0);
	put_many(&e->a, "y", 30, "coverage_gap", 0);
	/* What b2 is to get (its lag before any session): the 30 its filter passes. */
	const char *const want[] = {"coverage_gap"};
	ags_sync_filter f = {.types = want, .n_types = 1};
	uint64_t lag = 0;
	assert_int_equal(ags_sync_backlog(e->a.store, 0, "b2", &f, &lag), 0);
	assert_int_equal(lag, 30);
	assert_int_equal(ags_sync_backlog(e->a.store, 0, "b2", NULL, &lag), 0);
	assert_int_equal(lag, 70);
	side_connect(&e->a, "b2");
	side_connect(&e->b, "a");
	settle(&e->a, &e->b);
	uint64_t n;
	assert_int_equal(ags_store_count(e->b.store, &n), 0);
	assert_int_equal(n, 30);
	/* The cursor still covers everything: nothing is lagging. */
	assert_int_equal(ags_sync_lag(e->a.sync), 0);
}

static void scope_and_origin_limit_relaying(void **state)
{
	struct env *e = *state;
	/* A change scoped to "c" only must not go to b; one with an empty scope to nobody. */
	ags_pattern *p1 = pat("only-c", 1, "t", 0), *p2 = pat("nobody", 1, "t", 0),
	            *p3 = pat("all", 1, "t", 0);
	char *scope = ags_sync_scope_make((const char *const[]){"c"}, 1);
	ags_change_meta m[3] = {{NULL, scope}, {NULL, ""}, {NULL, NULL}};
	const ags_pattern *ps[3] = {p1, p2, p3};
	assert_int_equal(ags_store_apply_batch_ex(e->a.store, ps, m, 3, NULL, NULL, NULL, NULL), 0);
	/* And one that came from b itself. */
	ags_pattern *p4 = pat("from-b", 1, "t", 0);
	ags_change_meta mb = {"b", NULL};
	const ags_pattern *pb[1] = {p4};
	assert_int_equal(ags_store_apply_batch_ex(e->a.store, pb, &mb, 1, NULL, NULL, NULL, NULL),
	                 0);
	/* Of the four, only "all" is b's to get; c is to get only-c, all and from-b. */
	uint64_t lag = 0;
	assert_int_equal(ags_sync_backlog(e->a.store, 0, "b", NULL, &lag), 0);
	assert_int_equal(lag, 1);
	assert_int_equal(ags_sync_backlog(e->a.store, 0, "c", NULL, &lag), 0);
	assert_int_equal(lag, 3);
	side_connect(&e->a, "b");
	side_connect(&e->b, "a");
	settle(&e->a, &e->b);
	assert_int_equal(ags_sync_lag(e->a.sync), 0);
	ags_pattern *got = NULL;
	assert_int_equal(ags_store_get(e->b.store, "all", &got), 0);
	ags_pattern_del(got);
	assert_int_equal(ags_store_get(e->b.store, "only-c", &got), AGS_ERR_NOT_FOUND);
	assert_int_equal(ags_store_get(e->b.store, "nobody", &got), AGS_ERR_NOT_FOUND);
	assert_int_equal(ags_store_get(e->b.store, "from-b", &got), AGS_ERR_NOT_FOUND);
	assert_true(ags_sync_scope_allows(scope, "c"));
	assert_false(ags_sync_scope_allows(scope, "cc"));
	assert_false(ags_sync_scope_allows("", "c"));
	assert_true(ags_sync_scope_allows(NULL, "c"));
	free(scope);
	ags_pattern_del(p1);
	ags_pattern_del(p2);
	ags_pattern_del(p3);
	ags_pattern_del(p4);
}

static void priority_orders_the_backlog(void **state)
{
	struct env *e = *state;
	e->a.host.batch_size = 10;
	e->a.host.window = 1;
	put_many(&e->a, "low", 50, "t", 1);
	put_many(&e->a, "high", 50, "t", 9);
	side_connect(&e->a, "b");
	side_connect(&e->b, "a");
	/* Deliver only a's HELLO and first batch: b must get high-priority ones first. */
	ags_sync_pump(e->a.sync, 0);
	deliver(&e->b, &e->a); /* b's HELLO: a starts sending */
	deliver(&e->a, &e->b);
	assert_int_equal(e->b.received, 10);
	ags_pattern *got = NULL;
	assert_int_equal(ags_store_get(e->b.store, "high-0", &got), 0);
	ags_pattern_del(got);
	assert_int_equal(ags_store_get(e->b.store, "low-0", &got), AGS_ERR_NOT_FOUND);
	settle(&e->a, &e->b);
	assert_same_store(&e->a, &e->b);
}

/* ---- a misbehaving peer ---- */

static void connect_b_only(struct env *e)
{
	side_connect(&e->b, "a");
	/* A HELLO from "a" as a peer would send it. */
	ags_wire_hello h;
	memset(&h, 0, sizeof(h));
	h.proto = 1;
	h.node = "a";
	h.tenant = "default";
	h.store = ags_store_id(e->a.store);
	h.max_frame = 1u << 20;
	h.batch_size = 100;
	ags_frame_buf fb;
	ags_frame_buf_init(&fb, 0);
	assert_int_equal(ags_wire_hello_encode(&h, &fb, NULL), 0);
	uint64_t code;
	char reason[256];
	assert_int_equal(ags_sync_on_data(e->b.sync, fb.data, fb.len, ags_mono_us(), &code, reason,
	                                  sizeof(reason)),
	                 0);
	ags_frame_buf_free(&fb);
	ags_frame_buf_reset(&e->b.out); /* b's own HELLO */
}

/* A valid batch frame of the given pattern JSON texts. */
static void make_batch(const char *const *jsons, size_t n, uint64_t rid, ags_frame_buf *out)
{
	ags_batch_encoder *enc = NULL;
	assert_int_equal(ags_batch_encoder_new(NULL, &enc), 0);
	ags_batch_encoder_begin(enc);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(ags_batch_encoder_add_put(enc, jsons[i], strlen(jsons[i]), 0), 0);
	const uint8_t *f;
	size_t len;
	assert_int_equal(
	    ags_batch_encoder_finish(enc, rid, 1, 0, "a", AGS_CODEC_NONE, &f, &len, NULL), 0);
	assert_int_equal(ags_frame_buf_append(out, f, len), 0);
	ags_batch_encoder_del(enc);
}

/* Decodes the single ACK frame b sent. */
static void last_ack(struct env *e, ags_wire_ack *ack)
{
	assert_true(e->b.out.len > AGS_FRAME_HEADER_LEN);
	assert_int_equal(e->b.out.data[0], AGS_FRAME_ACK);
	assert_int_equal(ags_wire_ack_decode(e->b.out.data + AGS_FRAME_HEADER_LEN,
	                                     e->b.out.len - AGS_FRAME_HEADER_LEN, 0, ack, NULL),
	                 0);
	ags_frame_buf_reset(&e->b.out);
}

static const char good1[] =
    "{\"id\":\"g1\",\"agentId\":\"a\",\"type\":\"t\",\"data\":1,"
    "\"metadata\":{\"source\":\"s\",\"tags\":[]},\"timestamp\":1,\"version\":1}";
static const char good2[] =
    "{\"id\":\"g2\",\"agentId\":\"a\",\"type\":\"t\",\"data\":2,"
    "\"metadata\":{\"source\":\"s\",\"tags\":[]},\"timestamp\":1,\"version\":1}";
static const char bad_priority[] =
    "{\"id\":\"bad\",\"agentId\":\"a\",\"type\":\"t\",\"data\":3,"
    "\"metadata\":{\"source\":\"s\",\"tags\":[],\"priority\":11},\"timestamp\":1,\"version\":1}";

static void invalid_pattern_in_a_batch_is_refused_alone(void **state)
{
	struct env *e = *state;
	connect_b_only(e);
	ags_frame_buf fb;
	ags_frame_buf_init(&fb, 0);
	make_batch((const char *const[]){good1, bad_priority, good2}, 3, 7, &fb);
	uint64_t code;
	char reason[256];
	assert_int_equal(ags_sync_on_data(e->b.sync, fb.data, fb.len, ags_mono_us(), &code, reason,
	                                  sizeof(reason)),
	                 0);
	ags_frame_buf_free(&fb);
	ags_wire_ack ack;
	last_ack(e, &ack);
	assert_true(ack.request_id == 7);
	assert_false(ack.success);
	assert_true(ack.received_count == 3);
	assert_true(ack.applied == 2);
	assert_int_equal(ack.n_errors, 1);
	assert_string_equal(ack.errors[0].pattern_id, "bad");
	assert_non_null(strstr(ack.errors[0].error, "metadata.priority"));
	ags_wire_ack_free(&ack);
	uint64_t n;
	ags_store_count(e->b.store, &n);
	assert_int_equal(n, 2);
}

static void wrong_checksum_is_refused_whole(void **state)
{
	struct env *e = *state;
	connect_b_only(e);
	ags_frame_buf fb;
	ags_frame_buf_init(&fb, 0);
	make_batch((const char *const[]){good1, good2}, 2, 9, &fb);
	/* Flip one byte of the body (the last byte of the frame). */
	fb.data[fb.len - 3] ^= 0x01;
	uint64_t code;
	char reason[256];
	assert_int_equal(ags_sync_on_data(e->b.sync, fb.data, fb.len, ags_mono_us(), &code, reason,
	                                  sizeof(reason)),
	                 0);
	ags_frame_buf_free(&fb);
	ags_wire_ack ack;
	last_ack(e, &ack);
	assert_true(ack.request_id == 9);
	assert_false(ack.success);
	assert_true(ack.applied == 0);
	assert_int_equal(ack.errors[0].code, AGS_ERR_CHECKSUM);
	ags_wire_ack_free(&ack);
	uint64_t n;
	ags_store_count(e->b.store, &n);
	assert_int_equal(n, 0); /* nothing half-applied */
}

static void framing_violations_close_with_a_code(void **state)
{
	struct env *e = *state;
	struct {
		uint8_t bytes[16];
		size_t len;
		uint64_t code;
	} cases[] = {
	    /* Unknown frame type 0x7f. */
	    {{0x7f, 0, 0, 0, 0, 0, 0, 0}, 8, AGS_APP_UNKNOWN_FRAME},
	    /* Oversized: 1 GiB declared. */
	    {{AGS_FRAME_BATCH, 0, 0, 0, 0x40, 0, 0, 0}, 8, AGS_APP_FRAME_TOO_LARGE},
	    /* Truncated batch: a 4-byte payload cannot hold a header. */
	    {{AGS_FRAME_BATCH, 0, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4}, 12, AGS_APP_PROTOCOL_ERROR},
	    /* A second HELLO. */
	    {{AGS_FRAME_HELLO, 0, 0, 0, 0, 0, 0, 2, '{', '}'}, 10, AGS_APP_PROTOCOL_ERROR},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		connect_b_only(e);
		uint64_t code = 0;
		char reason[256] = "";
		int rv = ags_sync_on_data(e->b.sync, cases[i].bytes, cases[i].len, ags_mono_us(),
		                          &code, reason, sizeof(reason));
		assert_true(rv < 0);
		assert_true(code == cases[i].code);
		assert_true(reason[0] != '\0');
		ags_sync_del(e->b.sync);
		e->b.sync = NULL;
	}
	uint64_t n;
	ags_store_count(e->b.store, &n);
	assert_int_equal(n, 0);
}

static void hello_must_name_the_certificate_id(void **state)
{
	struct env *e = *state;
	side_connect(&e->b, "a");
	ags_wire_hello h;
	memset(&h, 0, sizeof(h));
	h.proto = 1;
	h.node = "mallory";
	h.tenant = "default";
	h.store = ags_store_id(e->a.store);
	h.max_frame = 1u << 20;
	h.batch_size = 100;
	ags_frame_buf fb;
	ags_frame_buf_init(&fb, 0);
	assert_int_equal(ags_wire_hello_encode(&h, &fb, NULL), 0);
	uint64_t code = 0;
	char reason[256] = "";
	assert_int_equal(ags_sync_on_data(e->b.sync, fb.data, fb.len, ags_mono_us(), &code, reason,
	                                  sizeof(reason)),
	                 AGS_ERR_AUTH);
	assert_true(code == AGS_APP_BAD_HELLO);
	assert_non_null(strstr(reason, "mallory"));
	ags_frame_buf_free(&fb);
}

/* ---- the hub protocol ---- */

/* Writes `n` patterns as local writes of `writer` at counter `tick` (record clocks). */
static void put_ticked(struct side *s, const char *prefix, int n, int64_t version,
                       const char *writer, uint64_t tick)
{
	for (int i = 0; i < n; i++) {
		char id[64];
		snprintf(id, sizeof(id), "%s-%d", prefix, i);
		ags_pattern *p = pat(id, version, "test_execution", 0);
		ags_change_clock ck = {.writer = writer, .tick = tick};
		const ags_pattern *pp = p;
		assert_int_equal(ags_store_apply_batch_kv(s->store, &pp, NULL, &ck, 1, NULL, 0,
		                                          NULL, NULL, NULL),
		                 0);
		ags_pattern_del(p);
	}
}

/* Drops the first frame of what `s` sent (an AUTH the hub layer reads itself). */
static void drop_first_frame(struct side *s)
{
	tu_frame_drop(s->out.data, &s->out.len, AGS_FRAME_AUTH);
}

static void hub_sends_after_pull_and_answers_with_pull_done(void **state)
{
	struct env *e = *state;
	ags_vclock *ca = NULL, *cb = NULL;
	assert_int_equal(ags_vclock_new(&ca), 0);
	assert_int_equal(ags_vclock_new(&cb), 0);
	e->a.host.clock = ca; /* a: the agent */
	e->b.host.clock = cb; /* b: the hub's tenant */
	put_ticked(&e->b, "h", 120, 1, "other-agent", 7);
	put_ticked(&e->a, "mine", 5, 1, "a", 1);
	ags_sync_opts up = {.role = AGS_SYNC_ROLE_UPSTREAM, .token = "x.y.z"};
	ags_sync_opts hub = {.role = AGS_SYNC_ROLE_HUB};
	assert_int_equal(ags_sync_new_ex(&e->a.host, "b", &up, &e->a, &e->a.sync), 0);
	ags_sync_start(e->a.sync, ags_mono_us());
	drop_first_frame(&e->a);
	assert_int_equal(ags_sync_new_ex(&e->b.host, "a", &hub, &e->b, &e->b.sync), 0);
	ags_sync_start(e->b.sync, ags_mono_us());
	settle(&e->a, &e->b);
	/* The agent pushed; the hub sent nothing before the agent's PULL. */
	assert_int_equal(e->b.received, 5);
	assert_int_equal(e->a.received, 0);
	assert_true(ags_sync_push_idle(e->a.sync));
	uint64_t v = 0;
	assert_int_equal(ags_vclock_get(cb, "a", &v), 0);
	assert_int_equal(v, 1); /* the hub merged the record clocks it applied */
	assert_int_equal(ags_sync_pull(e->b.sync), AGS_ERR_STATE); /* only agents pull */
	assert_int_equal(ags_sync_pull(e->a.sync), 0);
	settle(&e->a, &e->b);
	assert_int_equal(e->a.received, 120);
	assert_int_equal(e->a.pulled, 1);
	/* PULL_DONE carried the hub's clock: merged into the agent's. */
	assert_int_equal(ags_vclock_get(ca, "other-agent", &v), 0);
	assert_int_equal(v, 7);
	char *saved = NULL;
	ags_record_head h;
	assert_int_equal(ags_store_head_vc(e->a.store, "h-3", &h, &saved), 0);
	assert_string_equal(saved, "{\"other-agent\":7}");
	free(saved);
	assert_same_store(&e->a, &e->b);
	/* Live from now on: a new change reaches the agent without another PULL. */
	put_ticked(&e->b, "late", 1, 1, "other-agent", 8);
	settle(&e->a, &e->b);
	assert_int_equal(e->a.received, 121);
	assert_int_equal(e->a.pulled, 1);
	/* A second AUTH on the hub's session is refused. */
	ags_frame_buf fb;
	ags_frame_buf_init(&fb, 0);
	assert_int_equal(ags_wire_auth_encode("x.y.z", &fb, NULL), 0);
	uint64_t code = 0;
	char reason[256] = "";
	assert_int_equal(ags_sync_on_data(e->b.sync, fb.data, fb.len, ags_mono_us(), &code, reason,
	                                  sizeof(reason)),
	                 AGS_ERR_AUTH);
	assert_int_equal(code, AGS_APP_AUTH_FAILED);
	assert_non_null(strstr(reason, "second AUTH"));
	ags_frame_buf_free(&fb);
	ags_sync_del(e->a.sync);
	ags_sync_del(e->b.sync);
	e->a.sync = e->b.sync = NULL;
	e->a.host.clock = e->b.host.clock = NULL;
	ags_vclock_del(ca);
	ags_vclock_del(cb);
}

static void bad_record_clock_refuses_its_entry(void **state)
{
	struct env *e = *state;
	connect_b_only(e);
	ags_batch_encoder *enc = NULL;
	assert_int_equal(ags_batch_encoder_new(NULL, &enc), 0);
	ags_batch_encoder_begin(enc);
	const char *vcs[] = {"{\"a\":1}", "{\"a\":-1}", "{\"\":1}", "{}"};
	for (int i = 0; i < 4; i++) {
		char id[8];
		snprintf(id, sizeof(id), "v%d", i);
		ags_pattern *p = pat(id, 1, "test_execution", 0);
		size_t len;
		const char *j = ags_pattern_json(p, &len);
		assert_int_equal(
		    ags_batch_encoder_add_put_vc(enc, j, len, 0, vcs[i], strlen(vcs[i])), 0);
		ags_pattern_del(p);
	}
	const uint8_t *f;
	size_t flen;
	assert_int_equal(
	    ags_batch_encoder_finish(enc, 9, 1, 0, "a", AGS_CODEC_NONE, &f, &flen, NULL), 0);
	uint64_t code;
	char reason[256];
	assert_int_equal(
	    ags_sync_on_data(e->b.sync, f, flen, ags_mono_us(), &code, reason, sizeof(reason)), 0);
	ags_batch_encoder_del(enc);
	ags_wire_ack ack;
	last_ack(e, &ack);
	assert_false(ack.success);
	assert_true(ack.applied == 2);
	assert_int_equal(ack.n_errors, 2);
	assert_string_equal(ack.errors[0].pattern_id, "v1");
	assert_non_null(strstr(ack.errors[0].error, "vc"));
	assert_string_equal(ack.errors[1].pattern_id, "v2");
	ags_wire_ack_free(&ack);
	/* The good clock is stored with its record; {} means none. */
	char *vc = NULL;
	ags_record_head h;
	assert_int_equal(ags_store_head_vc(e->b.store, "v0", &h, &vc), 0);
	assert_string_equal(vc, "{\"a\":1}");
	free(vc);
	assert_int_equal(ags_store_head_vc(e->b.store, "v3", &h, &vc), 0);
	assert_null(vc);
}

static int count_conflict(void *ud, const ags_conflict_info *c)
{
	int *n = ud;
	(*n)++;
	assert_string_equal(c->id, "x-0");
	return 0;
}

static void concurrent_record_clocks_are_conflicts(void **state)
{
	struct env *e = *state;
	/* Both sides had x-0 from writer w at 1, then each updated it without the other:
	 * versions 2 and 3, so no same-version tie, yet the clocks are concurrent. */
	put_ticked(&e->a, "x", 1, 1, "w", 1);
	put_ticked(&e->b, "x", 1, 1, "w", 1);
	put_ticked(&e->a, "x", 1, 2, "a", 1);
	put_ticked(&e->b, "x", 1, 3, "b", 1);
	/* And y-0: b's update follows a's write (b saw it), so it is no conflict. */
	put_ticked(&e->a, "y", 1, 1, "a", 2);
	side_connect(&e->a, "b");
	side_connect(&e->b, "a");
	settle(&e->a, &e->b);
	put_ticked(&e->b, "y", 1, 2, "b", 2);
	settle(&e->a, &e->b);
	assert_same_store(&e->a, &e->b);
	assert_int_equal(e->a.conflicts, 1);
	assert_int_equal(e->b.conflicts, 1);
	int n = 0;
	assert_int_equal(ags_store_conflicts(e->a.store, 0, NULL, 0, count_conflict, &n), 0);
	assert_int_equal(n, 1);
	n = 0;
	assert_int_equal(ags_store_conflicts(e->b.store, 0, NULL, 0, count_conflict, &n), 0);
	assert_int_equal(n, 1);
	/* Version 3 wins everywhere; each side keeps the loser. */
	ags_pattern *p = NULL;
	assert_int_equal(ags_store_get(e->a.store, "x-0", &p), 0);
	assert_int_equal(ags_pattern_version(p), 3);
	ags_pattern_del(p);
}

/* A ~20 KB pattern of hard-to-compress text; `mark` is the one field that changes. */
static ags_pattern *big_pat(const char *id, int64_t version, const char *mark)
{
	enum { FILL = 20000 };
	char *fill = malloc(FILL + 1);
	uint64_t x = 0x9e3779b97f4a7c15u;
	for (size_t i = 0; i < FILL; i++) {
		x = x * 6364136223846793005u + 1442695040888963407u;
		fill[i] = "0123456789abcdefghijklmnopqrstuv"[(x >> 40) & 31];
	}
	fill[FILL] = '\0';
	char *json = tu_sprintf("{\"id\":\"%s\",\"agentId\":\"a1\",\"type\":\"doc\","
	                        "\"data\":{\"fill\":\"%s\",\"mark\":\"%s\"},"
	                        "\"metadata\":{\"source\":\"t\",\"tags\":[\"x\"]},"
	                        "\"timestamp\":%lld,\"version\":%lld}",
	                        id, fill, mark, (long long)(1000 + version), (long long)version);
	free(fill);
	ags_pattern *p = NULL;
	ags_error err;
	if (ags_pattern_parse(json, strlen(json), NULL, &p, &err))
		fail_msg("parse: %s", err.message);
	free(json);
	return p;
}

static uint64_t put_big(struct side *s, const char *id, int64_t version, const char *mark)
{
	ags_pattern *p = big_pat(id, version, mark);
	ags_apply_result r;
	assert_int_equal(ags_store_apply(s->store, p, &r, NULL), 0);
	assert_int_equal(r.outcome, version == 1 ? AGS_APPLY_INSERTED : AGS_APPLY_UPDATED);
	ags_pattern_del(p);
	return r.seq;
}

static void large_update_goes_as_a_delta(void **state)
{
	struct env *e = *state;
	put_big(&e->a, "big", 1, "one");
	side_connect(&e->a, "b");
	side_connect(&e->b, "a");
	settle(&e->a, &e->b);
	assert_same_store(&e->a, &e->b);
	ags_sync_stats st1, st2;
	ags_sync_get_stats(e->a.sync, &st1);
	assert_int_equal(st1.patterns_delta, 0);
	/* b acknowledged version 1: version 2 goes as a delta against it. */
	put_big(&e->a, "big", 2, "two");
	settle(&e->a, &e->b);
	ags_sync_get_stats(e->a.sync, &st2);
	assert_int_equal(st2.patterns_delta, 1);
	assert_int_equal(st2.delta_resent, 0);
	assert_true(st2.delta_bytes_saved > 15000);
	uint64_t full = st1.wire_bytes_out, delta = st2.wire_bytes_out - st1.wire_bytes_out;
	print_message("full record %llu wire bytes, delta %llu\n", (unsigned long long)full,
	              (unsigned long long)delta);
	assert_true(delta * 10 < full);
	assert_same_store(&e->a, &e->b);
	assert_int_equal(e->b.received, 2);
	assert_int_equal(e->a.failed, 0);
	ags_pattern *p = NULL;
	assert_int_equal(ags_store_get(e->b.store, "big", &p), 0);
	assert_int_equal(ags_pattern_version(p), 2);
	ags_pattern_del(p);
}

static void cursor_of(struct side *s, const char *peer, char *buf, size_t cap)
{
	char key[64];
	snprintf(key, sizeof(key), "cursor/%s", peer);
	assert_int_equal(ags_store_state_get(s->store, key, buf, cap), 0);
}

/*
 * b claims (by its cursor) to hold a's log up to version 1 of "big" but holds
 * `b_has` instead (nothing, or a conflicting version 1): the delta is refused,
 * b's cursor stays before it, a resends the record whole, and both converge.
 */
static void refused_delta_case(struct env *e, const char *b_has)
{
	uint64_t seq1 = put_big(&e->a, "big", 1, "one");
	uint64_t seq2 = put_big(&e->a, "big", 2, "two");
	if (b_has) {
		ags_pattern *p = big_pat("big", 1, b_has);
		assert_int_equal(ags_store_apply(e->b.store, p, NULL, NULL), 0);
		ags_pattern_del(p);
	}
	char cur[128];
	snprintf(cur, sizeof(cur), "%s %llu", ags_store_id(e->a.store), (unsigned long long)seq1);
	assert_int_equal(ags_store_state_set(e->b.store, "cursor/a", cur), 0);
	side_connect(&e->a, "b");
	side_connect(&e->b, "a");
	/* HELLOs both ways; a then sends the delta; b refuses it. */
	deliver(&e->a, &e->b);
	deliver(&e->b, &e->a);
	assert_true(e->a.out.len > 0);
	deliver(&e->a, &e->b);
	char now[128];
	cursor_of(&e->b, "a", now, sizeof(now));
	assert_string_equal(now, cur); /* not past the refused delta */
	settle(&e->a, &e->b);
	ags_sync_stats st;
	ags_sync_get_stats(e->a.sync, &st);
	assert_int_equal(st.patterns_delta, 1);
	assert_int_equal(st.delta_resent, 1);
	assert_int_equal(e->a.failed, 0);
	assert_same_store(&e->a, &e->b);
	ags_pattern *p = NULL;
	assert_int_equal(ags_store_get(e->b.store, "big", &p), 0);
	assert_int_equal(ags_pattern_version(p), 2);
	ags_pattern_del(p);
	/* Once the record came whole, the cursor moved on. */
	cursor_of(&e->b, "a", now, sizeof(now));
	assert_true(strstr(now, ags_store_id(e->a.store)) == now);
	assert_true(strtoull(now + 33, NULL, 10) >= seq2);
}

static void delta_without_the_base_is_resent_whole(void **state)
{
	refused_delta_case(*state, NULL);
}

static void delta_against_a_conflicting_base_is_resent_whole(void **state)
{
	refused_delta_case(*state, "conflicting");
}

static void peer_without_delta_gets_full_records(void **state)
{
	struct env *e = *state;
	e->b.host.no_delta = 1; /* b's HELLO lacks "delta" */
	put_big(&e->a, "big", 1, "one");
	side_connect(&e->a, "b");
	side_connect(&e->b, "a");
	settle(&e->a, &e->b);
	put_big(&e->a, "big", 2, "two");
	settle(&e->a, &e->b);
	ags_sync_stats st;
	ags_sync_get_stats(e->a.sync, &st);
	assert_int_equal(st.patterns_delta, 0);
	assert_int_equal(st.patterns_sent, 2);
	assert_same_store(&e->a, &e->b);
	/* b, which may not send deltas, sends a's peer full records too. */
	put_big(&e->b, "fromb", 1, "one");
	settle(&e->a, &e->b);
	put_big(&e->b, "fromb", 2, "two");
	settle(&e->a, &e->b);
	ags_sync_get_stats(e->b.sync, &st);
	assert_int_equal(st.patterns_delta, 0);
	assert_same_store(&e->a, &e->b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(both_sides_converge_and_ack, setup, teardown),
	    cmocka_unit_test_setup_teardown(a_session_sends_its_hello_only_when_started, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(reconnect_resumes_from_the_durable_cursor, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(
	        resumed_session_sends_before_hello_and_finishes_the_cursor, setup, teardown),
	    cmocka_unit_test_setup_teardown(stale_resume_hint_rewinds_and_loses_nothing, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(a_wiped_receiver_gets_everything_again, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(refused_changes_go_again_smaller_then_close, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(queued_batches_share_a_commit_and_fail_alone, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(recent_writes_are_sent_without_a_store_read, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(filter_sends_only_what_was_asked, setup, teardown),
	    cmocka_unit_test_setup_teardown(cursor_only_batch_waits_for_content, setup, teardown),
	    cmocka_unit_test_setup_teardown(applied_elsewhere_acks_in_order_after_the_commit, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(scope_and_origin_limit_relaying, setup, teardown),
	    cmocka_unit_test_setup_teardown(priority_orders_the_backlog, setup, teardown),
	    cmocka_unit_test_setup_teardown(invalid_pattern_in_a_batch_is_refused_alone, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(wrong_checksum_is_refused_whole, setup, teardown),
	    cmocka_unit_test_setup_teardown(framing_violations_close_with_a_code, setup, teardown),
	    cmocka_unit_test_setup_teardown(hello_must_name_the_certificate_id, setup, teardown),
	    cmocka_unit_test_setup_teardown(hub_sends_after_pull_and_answers_with_pull_done, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(concurrent_record_clocks_are_conflicts, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(bad_record_clock_refuses_its_entry, setup, teardown),
	    cmocka_unit_test_setup_teardown(large_update_goes_as_a_delta, setup, teardown),
	    cmocka_unit_test_setup_teardown(delta_without_the_base_is_resent_whole, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(delta_against_a_conflicting_base_is_resent_whole, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(peer_without_delta_gets_full_records, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
