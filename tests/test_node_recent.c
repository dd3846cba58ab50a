/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the node's recent local writes (lib/node/node_recent.c): the rows
 * a sender may take from memory instead of the store. They must be exactly
 * the log's rows, and only when they cover the whole range asked for.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "agentsync/agentsync.h"
#include "node_int.h"
#include "store.h"

static struct ags_node *node_new(void)
{
	struct ags_node *n = calloc(1, sizeof(*n));
	assert_non_null(n);
	snprintf(n->node_id, sizeof(n->node_id), "a");
	pthread_mutex_init(&n->recent_mu, NULL);
	return n;
}

static void node_free(struct ags_node *n)
{
	ags_node_recent_clear(n);
	pthread_mutex_destroy(&n->recent_mu);
	free(n);
}

static ags_pattern *mk(const char *id, const char *extra)
{
	char *json = tu_sprintf("{\"id\":\"%s\",\"agentId\":\"x\",\"type\":\"t\",\"data\":1,"
	                        "\"metadata\":{\"source\":\"s\",\"tags\":[]%s},"
	                        "\"timestamp\":5,\"version\":1}",
	                        id, extra);
	ags_pattern *p = NULL;
	ags_error err;
	if (ags_pattern_parse(json, strlen(json), NULL, &p, &err))
		fail_msg("parse %s: %s", json, err.message);
	free(json);
	return p;
}

/* What a sender would have got: the rows, as text lines. */
typedef struct got {
	char lines[8][600];
	int n, stop_at;
} got;

static int collect(void *ud, const ags_change_row *r)
{
	got *g = ud;
	if (g->stop_at && g->n + 1 == g->stop_at)
		return 7; /* a callback that stops the listing */
	assert_true(g->n < 8);
	snprintf(g->lines[g->n++], sizeof(g->lines[0]),
	         "%" PRIu64 " %s v%" PRId64 " t%" PRId64 " %s vc=%s scope=%s prio=%d %.*s", r->seq,
	         r->id, r->version, r->timestamp, r->tombstone ? "del" : "put", r->vc ? r->vc : "-",
	         r->scope ? r->scope : "-", r->priority, (int)r->body_len, r->body ? r->body : "");
	return 0;
}

static ags_apply_result inserted(uint64_t seq)
{
	ags_apply_result r = {.outcome = AGS_APPLY_INSERTED, .seq = seq};
	return r;
}

/* The rows kept are the rows the store lists, byte for byte (clock, scope, priority, body). */
static void rows_are_the_log_rows_when_they_cover_the_range(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp("recent");
	char *path = tu_sprintf("%s/s.db", dir);
	ags_store *st = NULL;
	assert_int_equal(ags_store_open(path, NULL, &st, NULL), 0);
	struct ags_node *n = node_new();
	ags_pattern *first = mk("w", "");
	ags_apply_result r0 = {0};
	assert_int_equal(ags_store_apply(st, first, &r0, NULL), 0);
	/* Written as the API writes (lib/node/node_api.c apply_local): writer "a", one tick, a
	 * scope. */
	ags_pattern *p[2] = {mk("x", ",\"priority\":7"), mk("y", "")};
	const char *scope = "\x1f"
	                    "b\x1f";
	ags_change_meta meta[2] = {{.scope = scope}, {.scope = scope}};
	ags_change_clock ck[2] = {{.writer = "a", .tick = 9}, {.writer = "a", .tick = 9}};
	ags_apply_result res[2];
	ags_error err;
	assert_int_equal(ags_store_apply_batch_kv(st, (const ags_pattern *const *)p, meta, ck, 2,
	                                          NULL, 0, res, NULL, &err),
	                 0);
	assert_int_equal(res[0].seq, 2);
	ags_node_recent_add(n, (const ags_pattern *const *)p, 2, scope, res, 9);
	got from_store = {0}, g = {0};
	uint64_t upto = 0;
	assert_int_equal(ags_store_rows(st, 1, 100, NULL, collect, &from_store, &upto), 0);
	assert_int_equal(upto, 3);
	/* (1, 3]: both rows, as the store lists them. */
	assert_int_equal(ags_node_recent_rows(n, 1, 3, collect, &g), 1);
	assert_int_equal(g.n, 2);
	assert_int_equal(from_store.n, 2);
	for (int i = 0; i < 2; i++)
		assert_string_equal(g.lines[i], from_store.lines[i]);
	assert_non_null(strstr(g.lines[0], "vc={\"a\":9}"));
	assert_non_null(strstr(g.lines[0], "prio=7"));
	/* (2, 3]: only what is after. */
	memset(&g, 0, sizeof(g));
	assert_int_equal(ags_node_recent_rows(n, 2, 3, collect, &g), 1);
	assert_int_equal(g.n, 1);
	/* Not covered: a row before them (0, 3], or past them (1, 4]; nothing asked (3, 3]. */
	memset(&g, 0, sizeof(g));
	assert_int_equal(ags_node_recent_rows(n, 0, 3, collect, &g), 0);
	assert_int_equal(ags_node_recent_rows(n, 1, 4, collect, &g), 0);
	assert_int_equal(ags_node_recent_rows(n, 3, 3, collect, &g), 0);
	assert_int_equal(g.n, 0);
	/* A callback that stops: -1. */
	g.stop_at = 2;
	assert_int_equal(ags_node_recent_rows(n, 1, 3, collect, &g), -1);
	for (int i = 0; i < 2; i++)
		ags_pattern_del(p[i]);
	ags_pattern_del(first);
	node_free(n);
	ags_store_close(st);
	tu_rmrf(dir);
	free(path);
	free(dir);
}

static void anything_uncertain_leaves_a_gap(void **state)
{
	(void)state;
	struct ags_node *n = node_new();
	ags_pattern *a = mk("a", ""), *b = mk("b", ""), *c = mk("c", "");
	const ags_pattern *pa[1] = {a}, *pb[1] = {b}, *pc[1] = {c};
	ags_apply_result r;
	got g = {0};

	r = inserted(1);
	ags_node_recent_add(n, pa, 1, NULL, &r, 1);
	/* A sequence that does not follow (someone else wrote 2): only 3 is kept. */
	r = inserted(3);
	ags_node_recent_add(n, pb, 1, NULL, &r, 2);
	assert_int_equal(ags_node_recent_rows(n, 0, 3, collect, &g), 0);
	assert_int_equal(ags_node_recent_rows(n, 2, 3, collect, &g), 1);
	assert_int_equal(g.n, 1);
	/* An update (the record clock is the stored one's, not known here): none kept. */
	r = (ags_apply_result){.outcome = AGS_APPLY_UPDATED, .seq = 4};
	ags_node_recent_add(n, pa, 1, NULL, &r, 3);
	assert_int_equal(ags_node_recent_rows(n, 3, 4, collect, &g), 0);
	assert_int_equal(ags_node_recent_rows(n, 2, 3, collect, &g), 0);
	/* A pattern that can expire: none kept. */
	ags_pattern *e = mk("e", ",\"expiresAt\":99999999999999");
	const ags_pattern *pe[1] = {e};
	r = inserted(5);
	ags_node_recent_add(n, pc, 1, NULL, &r, 4);
	r = inserted(6);
	ags_node_recent_add(n, pe, 1, NULL, &r, 5);
	assert_int_equal(ags_node_recent_rows(n, 4, 5, collect, &g), 0);
	/* Outcomes unknown (no results): none kept. */
	r = inserted(7);
	ags_node_recent_add(n, pc, 1, NULL, &r, 6);
	ags_node_recent_add(n, pc, 1, NULL, NULL, 7);
	assert_int_equal(ags_node_recent_rows(n, 6, 7, collect, &g), 0);
	/* More than the kept number: the oldest go. */
	for (uint64_t s = 10; s < 10 + AGS_NODE_RECENT_MAX + 5; s++) {
		r = inserted(s);
		ags_node_recent_add(n, pa, 1, NULL, &r, s);
	}
	uint64_t last = 10 + AGS_NODE_RECENT_MAX + 4;
	memset(&g, 0, sizeof(g));
	assert_int_equal(ags_node_recent_rows(n, 10, last, collect, &g), 0);
	assert_int_equal(ags_node_recent_rows(n, last - 2, last, collect, &g), 1);
	assert_int_equal(g.n, 2);
	ags_pattern_del(a);
	ags_pattern_del(b);
	ags_pattern_del(c);
	ags_pattern_del(e);
	node_free(n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(rows_are_the_log_rows_when_they_cover_the_range),
	    cmocka_unit_test(anything_uncertain_leaves_a_gap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
