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
#include "agentsync/agentsync.h"
#include "clock.h"
#include "frame.h"
#include "sync.h"

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
};

static void h_send(void *ud, void *sud, uint8_t *frame, size_t len)
{
	(void)sud;
	(void)len;
	((struct host *)ud)->sends++;
	free(frame);
}

static void host_init(struct host *t, const char *dir)
{
	memset(t, 0, sizeof(*t));
	char *path = tu_sprintf("%s/a.db", dir);
	assert_int_equal(ags_store_open(path, NULL, &t->store, NULL), 0);
	free(path);
	pthread_mutex_init(&t->mu, NULL);
	ags_sync_host *h = &t->h;
	h->store = t->store;
	h->store_mu = &t->mu;
	h->node_id = "a";
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

static void host_free(struct host *t)
{
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(sync_new_fails_at_every_allocation_without_sending),
	};
	(void)last_loop_close;
	(void)loop_closes;
	(void)fail_uv;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
