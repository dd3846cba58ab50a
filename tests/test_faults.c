/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Failure paths, by fault injection: this program is linked with
 * -Wl,--wrap for the allocation functions and the libuv initialisers the
 * library calls (tests/CMakeLists.txt), so a test can make the k-th call from
 * now fail and check what the library does then: nothing half-made, no
 * callback for an object that was never returned, nothing left to free (the
 * sanitizer build checks leaks).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "testutil.h"
#include "frameutil.h"
#include "agentsync/agentsync.h"
#include "agentsync/certs.h"
#include "agentsync/node.h"
#include "clock.h"
#include "frame.h"
#include "sync.h"
#include "vclock.h"

/* ---- the injector ---- */

/* The call that fails: 0 = none; n > 0: the n-th wrapped call from now. */
static int fail_alloc, fail_uv;

static int take(int *counter)
{
	return *counter > 0 && --*counter == 0;
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

void *__wrap_malloc(size_t n)
{
	return take(&fail_alloc) ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
	return take(&fail_alloc) ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
	return take(&fail_alloc) ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
	return take(&fail_alloc) ? NULL : __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
	return take(&fail_alloc) ? NULL : __real_strndup(s, n);
}

int __real_uv_async_init(uv_loop_t *loop, uv_async_t *h, uv_async_cb cb);
int __real_uv_timer_init(uv_loop_t *loop, uv_timer_t *h);
int __real_uv_poll_init(uv_loop_t *loop, uv_poll_t *h, int fd);
int __real_uv_prepare_init(uv_loop_t *loop, uv_prepare_t *h);
int __real_uv_check_init(uv_loop_t *loop, uv_check_t *h);
int __real_uv_loop_close(uv_loop_t *loop);
int __wrap_uv_async_init(uv_loop_t *loop, uv_async_t *h, uv_async_cb cb);
int __wrap_uv_timer_init(uv_loop_t *loop, uv_timer_t *h);
int __wrap_uv_poll_init(uv_loop_t *loop, uv_poll_t *h, int fd);
int __wrap_uv_prepare_init(uv_loop_t *loop, uv_prepare_t *h);
int __wrap_uv_check_init(uv_loop_t *loop, uv_check_t *h);
int __wrap_uv_loop_close(uv_loop_t *loop);

/* libuv initialisers fail as for a process out of file descriptors. */
int __wrap_uv_async_init(uv_loop_t *loop, uv_async_t *h, uv_async_cb cb)
{
	return take(&fail_uv) ? UV_EMFILE : __real_uv_async_init(loop, h, cb);
}

int __wrap_uv_timer_init(uv_loop_t *loop, uv_timer_t *h)
{
	return take(&fail_uv) ? UV_ENOMEM : __real_uv_timer_init(loop, h);
}

int __wrap_uv_poll_init(uv_loop_t *loop, uv_poll_t *h, int fd)
{
	return take(&fail_uv) ? UV_ENOSPC : __real_uv_poll_init(loop, h, fd);
}

int __wrap_uv_prepare_init(uv_loop_t *loop, uv_prepare_t *h)
{
	return take(&fail_uv) ? UV_ENOMEM : __real_uv_prepare_init(loop, h);
}

int __wrap_uv_check_init(uv_loop_t *loop, uv_check_t *h)
{
	return take(&fail_uv) ? UV_ENOMEM : __real_uv_check_init(loop, h);
}

/* What the last uv_loop_close returned: UV_EBUSY means a handle was left in the loop. */
static int last_loop_close = 1, loop_closes;

int __wrap_uv_loop_close(uv_loop_t *loop)
{
	last_loop_close = __real_uv_loop_close(loop);
	loop_closes++;
	return last_loop_close;
}

/* ---- the sync engine's constructor ---- */

struct host {
	ags_store *store;
	pthread_mutex_t mu;
	ags_sync_host h;
	size_t sends;
	ags_frame_buf out; /* what was sent, when collect is set */
	int collect;
	ags_sync *s;
};

static void h_send(void *ud, void *sud, uint8_t *frame, size_t len)
{
	(void)sud;
	struct host *t = ud;
	t->sends++;
	if (t->collect) {
		int armed = fail_alloc; /* the test's own bookkeeping does not count */
		fail_alloc = 0;
		assert_int_equal(ags_frame_buf_append(&t->out, frame, len), 0);
		fail_alloc = armed;
	}
	free(frame);
}

static void host_init_as(struct host *t, const char *dir, const char *id)
{
	memset(t, 0, sizeof(*t));
	ags_frame_buf_init(&t->out, 0);
	char *path = tu_sprintf("%s/%s.db", dir, id);
	assert_int_equal(ags_store_open(path, NULL, &t->store, NULL), 0);
	free(path);
	pthread_mutex_init(&t->mu, NULL);
	ags_sync_host *h = &t->h;
	h->store = t->store;
	h->store_mu = &t->mu;
	h->node_id = id;
	h->store_id = ags_store_id(t->store);
	h->tenant = "default";
	h->batch_size = 100;
	h->window = 4;
	h->compression = 1;
	h->max_frame = 1u << 20;
	h->max_pattern = AGS_PATTERN_MAX_BYTES_DEFAULT;
	h->instance = "00000000000000000000000000000001";
	h->ud = t;
	h->send = h_send;
}

static void host_init(struct host *t, const char *dir)
{
	host_init_as(t, dir, "a");
}

static void host_free(struct host *t)
{
	ags_sync_del(t->s);
	ags_vclock_del(t->h.clock);
	ags_frame_buf_free(&t->out);
	ags_store_close(t->store);
	pthread_mutex_destroy(&t->mu);
}

/*
 * Every allocation of ags_sync_new_ex fails in turn. Each time it must return
 * an error having sent nothing (before the fix it had sent its HELLO when the
 * copy of a resume hint's filter failed), and leak nothing.
 */
static void sync_new_fails_at_every_allocation_without_sending(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp("faults-sync");
	struct host t;
	host_init(&t, dir);
	char *types[] = {"coverage_gap", "test_execution"}, *tags[] = {"x"};
	ags_sync_resume hint = {.valid = 1,
	                        .peer_store = "0123456789abcdef0123456789abcdef",
	                        .types = types,
	                        .n_types = 2,
	                        .tags = tags,
	                        .n_tags = 1};
	ags_sync_opts opts[] = {{.role = AGS_SYNC_ROLE_PEER, .resume = &hint},
	                        {.role = AGS_SYNC_ROLE_UPSTREAM, .token = "h.p.s"},
	                        {.role = AGS_SYNC_ROLE_HUB}};
	for (size_t o = 0; o < sizeof(opts) / sizeof(opts[0]); o++) {
		int failures = 0, k;
		for (k = 1; k < 1000; k++) {
			ags_sync *s = NULL;
			t.sends = 0;
			fail_alloc = k;
			int rv = ags_sync_new_ex(&t.h, "b", &opts[o], NULL, &s);
			fail_alloc = 0;
			if (rv == 0) {
				assert_int_equal(t.sends, 0);
				ags_sync_start(s, ags_mono_us());
				assert_true(t.sends >= 1);
				ags_sync_del(s);
				break; /* k is past the last allocation */
			}
			assert_int_equal(rv, AGS_ERR_NOMEM);
			assert_null(s);
			assert_int_equal(t.sends, 0);
			failures++;
		}
		assert_true(k < 1000);
		assert_true(failures >= 2); /* the session and its frame reader at least */
	}
	host_free(&t);
	tu_rmrf(dir);
	free(dir);
}

/*
 * Hands everything `from` sent to `to`'s session, with the k-th allocation
 * from then on failing (0: none). Returns ags_sync_on_data's result.
 */
static int deliver(struct host *from, struct host *to, int k)
{
	size_t n = from->out.len;
	uint8_t *copy = malloc(n ? n : 1);
	memcpy(copy, from->out.data, n);
	ags_frame_buf_reset(&from->out);
	uint64_t code = 0;
	char reason[256];
	fail_alloc = k;
	int rv = ags_sync_on_data(to->s, copy, n, ags_mono_us(), &code, reason, sizeof(reason));
	free(copy);
	return rv;
}

/* Drops the AUTH frame an upstream session sends first (a hub reads it before the session). */
static void drop_auth(struct host *t)
{
	tu_frame_drop(t->out.data, &t->out.len, AGS_FRAME_AUTH);
}

/*
 * A hub answers an agent's PULL with PULL_DONE, which carries the hub's
 * clock; every allocation while it handles the PULL fails in turn. Before
 * the fix, when an array of that clock could not be made, clock_arrays freed
 * the other one and left both pointers to its caller, which freed them again
 * (a double free, caught by glibc or ASan).
 */
static void pull_done_survives_every_allocation_failure(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp("faults-pull");
	int k, failures = 0;
	for (k = 1; k < 2000; k++) {
		struct host a, b;
		host_init_as(&a, dir, "a");
		host_init_as(&b, dir, "b");
		a.collect = b.collect = 1;
		assert_int_equal(ags_vclock_new(&a.h.clock), 0);
		assert_int_equal(ags_vclock_new(&b.h.clock), 0);
		assert_int_equal(ags_vclock_set(b.h.clock, "other-agent", 3), 0);
		ags_sync_opts up = {.role = AGS_SYNC_ROLE_UPSTREAM, .token = "x.y.z"};
		ags_sync_opts hub = {.role = AGS_SYNC_ROLE_HUB};
		assert_int_equal(ags_sync_new_ex(&a.h, "b", &up, NULL, &a.s), 0);
		assert_int_equal(ags_sync_new_ex(&b.h, "a", &hub, NULL, &b.s), 0);
		ags_sync_start(a.s, ags_mono_us());
		ags_sync_start(b.s, ags_mono_us());
		drop_auth(&a);
		assert_int_equal(deliver(&a, &b, 0), 0);
		assert_int_equal(deliver(&b, &a, 0), 0);
		assert_int_equal(ags_sync_pull(a.s), 0);
		b.sends = 0;
		int rv = deliver(&a, &b, k);
		int reached = fail_alloc == 0; /* the k-th allocation came (and failed) */
		fail_alloc = 0;
		if (!reached) {
			/* Past the last allocation: the hub answered. */
			assert_int_equal(rv, 0);
			assert_true(b.sends >= 1);
			assert_int_equal(b.out.data[0], AGS_FRAME_PULL_DONE);
		} else {
			failures++;
		}
		host_free(&a);
		host_free(&b);
		if (!reached)
			break;
	}
	assert_true(k < 2000);
	assert_true(failures >= 2); /* at least the clock's two arrays */
	tu_rmrf(dir);
	free(dir);
}

/* ---- the node's start ---- */

static ags_node *node_make(const char *dir)
{
	const char *ids[] = {"n1"};
	ags_error e;
	assert_int_equal(ags_certs_init(dir, ids, 1, AGS_CERTS_ED25519, &e), 0);
	ags_node_config c;
	ags_node_config_init(&c);
	char *cert = tu_sprintf("%s/n1.pem", dir), *key = tu_sprintf("%s/n1-key.pem", dir),
	     *ca = tu_sprintf("%s/ca.pem", dir), *data = tu_sprintf("%s/data", dir);
	c.node_id = "n1";
	c.port = 0;
	c.data_dir = data;
	c.tls.cert = cert;
	c.tls.key = key;
	c.tls.ca = ca;
	ags_node *n = NULL;
	assert_int_equal(ags_node_new(&c, NULL, NULL, &n, &e), 0);
	free(cert);
	free(key);
	free(ca);
	free(data);
	return n;
}

/*
 * Each libuv initialiser that ags_node_start calls fails in turn (as in a
 * process out of descriptors). Start must then fail naming it, leave nothing
 * in the loop (uv_loop_close succeeds: before the fix the endpoint whose
 * second uv_poll_init failed was left to a close callback of a loop that
 * was never run, and uv_loop_close failed with UV_EBUSY), and a start after
 * it must work. Before the fix uv_async_init and uv_timer_init failing went
 * unnoticed and start succeeded with a dead wake-up handle.
 */
static void node_start_fails_cleanly_at_every_libuv_init(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp("faults-node");
	ags_node *n = node_make(dir);
	int k, failed = 0;
	for (k = 1; k < 50; k++) {
		ags_error e;
		ags_error_clear(&e);
		loop_closes = 0;
		fail_uv = k;
		int rv = ags_node_start(n, &e);
		int reached = fail_uv == 0;
		fail_uv = 0;
		if (rv == 0) {
			assert_int_equal(ags_node_stop(n), 0);
			assert_int_equal(last_loop_close, 0);
			if (!reached)
				break; /* past the last initialiser */
			continue;      /* the applier's: the node applies on its loop instead */
		}
		failed++;
		assert_true(reached);
		assert_int_equal(rv, AGS_ERR_IO);
		assert_non_null(strstr(e.message, "failed"));
		assert_non_null(strstr(e.message, "uv_"));
		assert_int_equal(loop_closes, 1);
		assert_int_equal(last_loop_close, 0);
		assert_int_equal(ags_node_port(n), 0);
	}
	assert_true(k < 50);
	assert_true(failed >= 6); /* async, timer, the endpoint's two polls, prepare, check */
	/* After all that the node still starts, and stops, as it should. */
	ags_error e;
	assert_int_equal(ags_node_start(n, &e), 0);
	assert_true(ags_node_port(n) > 0);
	assert_int_equal(ags_node_stop(n), 0);
	assert_int_equal(last_loop_close, 0);
	ags_node_del(n);
	tu_rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(sync_new_fails_at_every_allocation_without_sending),
	    cmocka_unit_test(pull_done_survives_every_allocation_failure),
	    cmocka_unit_test(node_start_fails_cleanly_at_every_libuv_init),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
