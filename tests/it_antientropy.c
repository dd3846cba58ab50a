/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Black-box test of anti-entropy (issue 13 item 3; docs/PROTOCOL.md,
 * "Anti-entropy") with real node processes on 127.0.0.1: rows removed from
 * one node's store behind its back (SQLite, the node stopped) are never sent
 * again by the change log (the peer's cursor is past them), and come back
 * once the two compare their stores. Prints the bytes it took against those
 * of the full first sync. Waits are bounded polls.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "nodeproc.h"
#include "testutil.h"

#define N_RECORDS 2000
#define N_REMOVED 37 /* of N_RECORDS, spread over the id hashes */

struct env {
	char *dir;
	char *certs;
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	e->dir = tu_mkdtemp("ae");
	e->certs = tu_sprintf("%s/certs", e->dir);
	const char *ids[] = {"a", "b"};
	np_certs(e->certs, ids, 2);
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

static np_node *start(struct env *e, const char *id, const char *const *extra)
{
	char *data = tu_sprintf("%s/%s", e->dir, id);
	const char *args[32] = {"--id",   id,   "--certs",         e->certs,
	                        "--data", data, "--quiet-received"};
	size_t k = 7;
	for (size_t i = 0; extra && extra[i] && k < 31; i++)
		args[k++] = extra[i];
	args[k] = NULL;
	np_node *n = np_start(id, args);
	free(data);
	return n;
}

/* The node's bytesTransferred, from a fresh "state" line. */
static uint64_t bytes_transferred(np_node *n)
{
	np_state st;
	assert_int_equal(np_state_get(n, &st), 0);
	char *out = np_output(n);
	const char *p = NULL;
	for (const char *q = out; (q = strstr(q, "\"bytesTransferred\":")); q++)
		p = q;
	uint64_t v = p ? strtoull(p + strlen("\"bytesTransferred\":"), NULL, 10) : 0;
	free(out);
	return v;
}

/* The last "anti-entropy bytes so far: X out, Y in" of a node's output, X + Y. */
static uint64_t ae_bytes(np_node *n)
{
	char *out = np_output(n);
	const char *p = NULL;
	for (const char *q = out; (q = strstr(q, "anti-entropy bytes so far: ")); q++)
		p = q;
	unsigned long long o = 0, i = 0;
	if (p)
		sscanf(p, "anti-entropy bytes so far: %llu out, %llu in", &o, &i);
	free(out);
	return o + i;
}

static void removed_rows_come_back(void **state)
{
	struct env *e = *state;
	int port = tu_free_port(1);
	char *ps = tu_sprintf("%d", port);
	const char *bx[] = {"--port", ps, NULL};
	np_node *b = start(e, "b", bx);
	char *pb = tu_sprintf("b@127.0.0.1:%d", port);
	const char *ax[] = {"--peer", pb, NULL};
	np_node *a = start(e, "a", ax);
	np_cmd(a, "put %d ae", N_RECORDS);
	assert_true(np_wait_patterns(b, N_RECORDS, 600));
	uint64_t full = bytes_transferred(b);
	np_quit(b);

	/* Behind its back: rows gone from b's store (its counters untouched). */
	char *db = tu_sprintf("%s/b/store.db", e->dir);
	sqlite3 *h = NULL;
	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	char *sql = tu_sprintf("DELETE FROM patterns WHERE id IN (SELECT id FROM patterns "
	                       "ORDER BY seq LIMIT %d OFFSET 500) RETURNING id",
	                       N_REMOVED);
	sqlite3_stmt *q = NULL;
	assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &q, NULL), SQLITE_OK);
	char *removed[N_REMOVED];
	int nrem = 0;
	while (sqlite3_step(q) == SQLITE_ROW && nrem < N_REMOVED)
		removed[nrem++] = strdup((const char *)sqlite3_column_text(q, 0));
	sqlite3_finalize(q);
	assert_int_equal(nrem, N_REMOVED);
	sqlite3_close(h);
	free(sql);
	free(db);

	b = start(e, "b", bx);
	/* a's cursor for b is past the removed rows: only anti-entropy brings them back (the
	 * patterns count is the store's counter, which the removal did not change). */
	for (int i = 0; i < nrem; i++) {
		char *ok = tu_sprintf("get ok %s\n", removed[i]);
		int got = 0;
		for (int t = 0; t < 300 && !got; t++) {
			np_cmd(b, "get %s", removed[i]);
			got = np_wait(b, ok, 1);
		}
		if (!got) {
			char *out = np_output(b);
			fail_msg("%s did not come back to b:\n%.4000s", removed[i], out);
		}
		free(ok);
		free(removed[i]);
	}
	assert_true(np_wait(a, "anti-entropy with b: ", 100));
	uint64_t repair = bytes_transferred(b) + ae_bytes(a);
	print_message("repair of %d of %d records: %" PRIu64 " bytes (batches %" PRIu64
	              " + anti-entropy frames %" PRIu64 "); the full first sync took %" PRIu64
	              " bytes\n",
	              N_REMOVED, N_RECORDS, repair, repair - ae_bytes(a), ae_bytes(a), full);
	assert_true(repair < full / 2);
	np_quit(a);
	np_quit(b);
	free(ps);
	free(pb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(removed_rows_come_back, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
