/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Black-box tests of pattern sync between real node processes on 127.0.0.1
 * (tests/tools/agsnode): convergence in a mesh and a chain, catch-up after
 * SIGKILL, targeted sync, deletes, filters, priorities and rate limits.
 * Waits are bounded polls; nothing asserts on time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodeproc.h"
#include "testutil.h"

struct env {
	char *dir;
	char *certs;
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	e->dir = tu_mkdtemp("sync");
	e->certs = tu_sprintf("%s/certs", e->dir);
	const char *ids[] = {"a", "b", "c"};
	np_certs(e->certs, ids, 3);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	tu_rmrf(e->dir);
	free(e->certs);
	free(e->dir);
	free(e);
	return 0;
}

/* Starts node `id` with data in dir/<id>-<tag> and extra args. */
static np_node *start_q(struct env *e, const char *id, const char *tag, const char *const *extra,
                        int quiet)
{
	char *data = tu_sprintf("%s/%s-%s", e->dir, id, tag);
	const char *args[40];
	size_t k = 0;
	args[k++] = "--id";
	args[k++] = id;
	args[k++] = "--certs";
	args[k++] = e->certs;
	args[k++] = "--data";
	args[k++] = data;
	if (quiet)
		args[k++] = "--quiet-received";
	for (size_t i = 0; extra && extra[i] && k < 38; i++)
		args[k++] = extra[i];
	args[k] = NULL;
	np_node *n = np_start(id, args);
	free(data);
	return n;
}

static np_node *start(struct env *e, const char *id, const char *tag, const char *const *extra)
{
	return start_q(e, id, tag, extra, 1);
}

static char *peer_arg(const char *id, np_node *n)
{
	return tu_sprintf("%s@127.0.0.1:%u", id, n->port);
}

static void assert_same(np_node *x, np_node *y, uint64_t patterns)
{
	np_state sx, sy;
	assert_int_equal(np_state_get(x, &sx), 0);
	assert_int_equal(np_state_get(y, &sy), 0);
	assert_int_equal(sx.patterns, patterns);
	assert_int_equal(sy.patterns, patterns);
	assert_string_equal(sx.digest, sy.digest);
}

static void dump_on_fail(np_node *n)
{
	char *o = np_output(n);
	size_t len = strlen(o);
	fprintf(stderr, "---- %s (last 3000 bytes) ----\n%s\n", n->id,
	        len > 3000 ? o + len - 3000 : o);
	free(o);
}

#define WAIT_PATTERNS(n, count)                                                                    \
	do {                                                                                       \
		if (!np_wait_patterns((n), (count), 1200)) {                                       \
			dump_on_fail(n);                                                           \
			fail_msg("%s did not reach %llu patterns", (n)->id,                        \
			         (unsigned long long)(count));                                     \
		}                                                                                  \
	} while (0)

static void two_nodes_sync_both_ways(void **state)
{
	struct env *e = *state;
	np_node *a = start(e, "a", "2w", NULL);
	char *pa = peer_arg("a", a);
	const char *bx[] = {"--peer", pa, NULL};
	np_node *b = start(e, "b", "2w", bx);
	assert_true(np_wait(b, "event peer:connected peer=a", 300));
	assert_true(np_wait(a, "event peer:connected peer=b", 300));
	np_cmd(a, "put 1000 fromA");
	np_cmd(b, "put 500 fromB");
	WAIT_PATTERNS(a, 1500);
	WAIT_PATTERNS(b, 1500);
	assert_same(a, b, 1500);
	/* An ack means durably stored: the sender saw sync:completed events. */
	assert_true(np_has(a, "event sync:completed peer=b"));
	/* A delete travels as a tombstone. */
	np_cmd(a, "del fromB-7");
	WAIT_PATTERNS(b, 1499);
	assert_same(a, b, 1499);
	free(pa);
	assert_int_equal(np_quit(a), 0);
	assert_int_equal(np_quit(b), 0);
}

static void three_nodes_full_mesh_converge(void **state)
{
	struct env *e = *state;
	np_node *a = start(e, "a", "mesh", NULL);
	char *pa = peer_arg("a", a);
	const char *bx[] = {"--peer", pa, NULL};
	np_node *b = start(e, "b", "mesh", bx);
	char *pb = peer_arg("b", b);
	const char *cx[] = {"--peer", pa, "--peer", pb, NULL};
	np_node *c = start(e, "c", "mesh", cx);
	assert_true(np_wait(c, "event peer:connected peer=a", 300));
	assert_true(np_wait(c, "event peer:connected peer=b", 300));
	assert_true(np_wait(a, "event peer:connected peer=b", 300));
	np_cmd(a, "put 3334 ma");
	np_cmd(b, "put 3333 mb");
	np_cmd(c, "put 3333 mc");
	WAIT_PATTERNS(a, 10000);
	WAIT_PATTERNS(b, 10000);
	WAIT_PATTERNS(c, 10000);
	assert_same(a, b, 10000);
	assert_same(b, c, 10000);
	free(pa);
	free(pb);
	np_quit(a);
	np_quit(b);
	np_quit(c);
}

static void chain_relays_to_the_end(void **state)
{
	struct env *e = *state;
	/* a <-> b <-> c, and a and c do not know each other. */
	np_node *a = start(e, "a", "chain", NULL);
	char *pa = peer_arg("a", a);
	const char *bx[] = {"--peer", pa, NULL};
	np_node *b = start(e, "b", "chain", bx);
	char *pb = peer_arg("b", b);
	const char *cx[] = {"--peer", pb, NULL};
	np_node *c = start(e, "c", "chain", cx);
	assert_true(np_wait(c, "event peer:connected peer=b", 300));
	np_cmd(a, "put 5000 ca");
	np_cmd(c, "put 5000 cc");
	WAIT_PATTERNS(a, 10000);
	WAIT_PATTERNS(c, 10000);
	WAIT_PATTERNS(b, 10000);
	assert_same(a, c, 10000);
	assert_same(a, b, 10000);
	assert_false(np_has(a, "peer:connected peer=c"));
	free(pa);
	free(pb);
	np_quit(a);
	np_quit(b);
	np_quit(c);
}

static void targeted_sync_reaches_only_its_peer(void **state)
{
	struct env *e = *state;
	np_node *a = start(e, "a", "to", NULL);
	char *pa = peer_arg("a", a);
	const char *bx[] = {"--peer", pa, NULL};
	np_node *b = start(e, "b", "to", bx);
	char *pb = peer_arg("b", b);
	const char *cx[] = {"--peer", pa, "--peer", pb, NULL};
	np_node *c = start_q(e, "c", "to", cx, 0);
	assert_true(np_wait(c, "event peer:connected peer=a", 300));
	assert_true(np_wait(c, "event peer:connected peer=b", 300));
	np_cmd(a, "to b secret-1");
	WAIT_PATTERNS(b, 1);
	/* A marker sent to everyone after it, through a and through b: once c
	 * has it from both, it has seen everything either would have sent. */
	np_cmd(a, "putv marker 1");
	np_cmd(b, "putv marker2 1");
	assert_true(np_wait(c, "pattern=marker ", 600));
	assert_true(np_wait(c, "pattern=marker2 ", 600));
	WAIT_PATTERNS(b, 3);
	assert_false(np_has(c, "pattern=secret-1"));
	np_state sc;
	assert_int_equal(np_state_get(c, &sc), 0);
	assert_int_equal(sc.patterns, 2);
	free(pa);
	free(pb);
	np_quit(a);
	np_quit(b);
	np_quit(c);
}

static void killed_node_catches_up_without_losing_acked(void **state)
{
	struct env *e = *state;
	np_node *a = start(e, "a", "kill", NULL);
	char *pa = peer_arg("a", a);
	const char *bx[] = {"--peer", pa, NULL};
	np_node *b = start(e, "b", "kill", bx);
	assert_true(np_wait(a, "event peer:connected peer=b", 300));
	np_cmd(a, "put 50000 big");
	/* Kill b in the middle: once a has had some batches acknowledged. */
	unsigned tries = 0;
	while (np_count(a, "event sync:completed peer=b") < 20 && tries++ < 600)
		tu_sleep_ms(50);
	np_state sa;
	assert_int_equal(np_state_get(a, &sa), 0);
	size_t acked_batches = np_count(a, "event sync:completed peer=b");
	np_kill(b);
	assert_true(acked_batches >= 1);
	/* Restart b on the same data: what was acknowledged is there. */
	b = start(e, "b", "kill", bx);
	np_state sb;
	assert_int_equal(np_state_get(b, &sb), 0);
	/* Every acknowledged batch had 100 patterns that b stored durably. */
	assert_true(sb.patterns >= acked_batches * 100 - 100);
	WAIT_PATTERNS(b, 50000);
	assert_same(a, b, 50000);
	free(pa);
	np_quit(a);
	np_quit(b);
}

static void filters_send_only_what_the_peer_asked_for(void **state)
{
	struct env *e = *state;
	np_node *a = start(e, "a", "filter", NULL);
	char *pa = peer_arg("a", a);
	const char *bx[] = {"--peer", pa, "--filter-type", "coverage_gap", NULL};
	np_node *b = start_q(e, "b", "filter", bx, 0);
	assert_true(np_wait(a, "event peer:connected peer=b", 300));
	np_cmd(a, "put 300 other test_execution");
	np_cmd(a, "put 200 wanted coverage_gap");
	np_cmd(a, "putv last 1 coverage_gap");
	/* The marker comes after everything else in a's log: once b has it, b
	 * has been sent all it will be, and holds exactly what it asked for. */
	assert_true(np_wait(b, "pattern=last ", 600));
	assert_false(np_has(b, "pattern=other-"));
	np_state sb;
	assert_int_equal(np_state_get(b, &sb), 0);
	assert_int_equal(sb.patterns, 201);
	free(pa);
	np_quit(a);
	np_quit(b);
}

static void backlog_goes_out_by_priority(void **state)
{
	struct env *e = *state;
	/* b is not running while a builds a backlog of low, then high priority. */
	np_node *a =
	    start(e, "a", "prio", (const char *const[]){"--batch", "10", "--window", "1", NULL});
	np_cmd(a, "put 500 low test_execution 1");
	np_cmd(a, "put 500 high test_execution 9");
	assert_true(np_wait(a, "put ok 500", 300));
	char *pa = peer_arg("a", a);
	char *data = tu_sprintf("%s/b-prio", e->dir);
	const char *args[] = {"--id", "b", "--certs", e->certs, "--data", data, "--peer", pa, NULL};
	np_node *b = np_start("b", args); /* not quiet: it prints pattern:received */
	WAIT_PATTERNS(b, 1000);
	char *out = np_output(b);
	const char *first_low = strstr(out, "pattern=low-");
	const char *last_high = NULL;
	for (const char *p = out; (p = strstr(p, "pattern=high-")); p++)
		last_high = p;
	assert_non_null(first_low);
	assert_non_null(last_high);
	/* Every high-priority pattern arrived before the first low-priority one. */
	assert_true(last_high < first_low);
	free(out);
	free(data);
	free(pa);
	np_quit(a);
	np_quit(b);
}

static void rate_limit_shapes_batches(void **state)
{
	struct env *e = *state;
	/* 40 patterns/s: the sender may never put more than 40 in one batch,
	 * although batchSize is 100. Without the limit batches would be 100. */
	np_node *a = start(e, "a", "rate", (const char *const[]){"--rate-patterns", "40", NULL});
	char *pa = peer_arg("a", a);
	const char *bx[] = {"--peer", pa, NULL};
	np_node *b = start(e, "b", "rate", bx);
	assert_true(np_wait(a, "event peer:connected peer=b", 300));
	np_cmd(a, "put 120 r");
	WAIT_PATTERNS(b, 120);
	assert_true(np_count(a, "event sync:completed peer=b") >= 3);
	assert_false(np_has(a, "count=100 "));
	for (int k = 41; k <= 120; k++) {
		char needle[32];
		snprintf(needle, sizeof(needle), " count=%d ", k);
		assert_false(np_has(a, needle));
	}
	free(pa);
	np_quit(a);
	np_quit(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(two_nodes_sync_both_ways, setup, teardown),
	    cmocka_unit_test_setup_teardown(three_nodes_full_mesh_converge, setup, teardown),
	    cmocka_unit_test_setup_teardown(chain_relays_to_the_end, setup, teardown),
	    cmocka_unit_test_setup_teardown(targeted_sync_reaches_only_its_peer, setup, teardown),
	    cmocka_unit_test_setup_teardown(killed_node_catches_up_without_losing_acked, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(filters_send_only_what_the_peer_asked_for, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(backlog_goes_out_by_priority, setup, teardown),
	    cmocka_unit_test_setup_teardown(rate_limit_shapes_batches, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
