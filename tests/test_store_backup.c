/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ags_store_backup and ags_store_inspect: a copy made while another thread
 * writes is one consistent snapshot (every batch all or nothing, the meta
 * counters equal to the rows), keeps the store id, never overwrites, and
 * refuses what is not an agentsync store with a message naming the file.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "agentsync/agentsync.h"

#define BATCH 100

static ags_pattern *make(const char *id)
{
	char json[512];
	snprintf(json, sizeof(json),
	         "{\"id\":\"%s\",\"agentId\":\"a\",\"type\":\"t\",\"data\":{\"x\":\"%s\"},"
	         "\"metadata\":{\"source\":\"s\",\"tags\":[]},\"timestamp\":1,\"version\":1}",
	         id, id);
	ags_pattern *p = NULL;
	assert_int_equal(ags_pattern_parse(json, strlen(json), NULL, &p, NULL), 0);
	return p;
}

static void write_batch(ags_store *s, int b)
{
	ags_pattern *ps[BATCH];
	for (int i = 0; i < BATCH; i++) {
		char id[32];
		snprintf(id, sizeof(id), "b%d-%d", b, i);
		ps[i] = make(id);
	}
	assert_int_equal(
	    ags_store_apply_batch(s, (const ags_pattern *const *)ps, BATCH, NULL, NULL), 0);
	for (int i = 0; i < BATCH; i++)
		ags_pattern_del(ps[i]);
}

struct writer {
	ags_store *s;
	volatile int stop;
	volatile int batches;
};

static void *writer_main(void *ud)
{
	struct writer *w = ud;
	while (!w->stop && w->batches < 100000)
		write_batch(w->s, w->batches++);
	return NULL;
}

/* Counts the copy's rows of each batch: each must be 0 or BATCH. */
static int count_cb(void *ud, const ags_pattern *p, uint64_t seq)
{
	int *per = ud;
	int b = atoi(ags_pattern_id(p) + 1);
	per[b]++;
	return 0;
}

static void test_backup_under_writes(void **state)
{
	char *dir = tu_mkdtemp("backup");
	char *src = tu_sprintf("%s/store.db", dir), *dst = tu_sprintf("%s/copy.db", dir);
	ags_store *s = NULL;
	assert_int_equal(ags_store_open(src, NULL, &s, NULL), 0);
	for (int b = 0; b < 5; b++)
		write_batch(s, b);
	struct writer w = {s, 0, 5};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);
	while (w.batches < 30)
		tu_sleep_ms(1);
	ags_store_info info;
	ags_error err;
	ags_error_clear(&err);
	int rc = ags_store_backup(src, dst, &info, &err);
	w.stop = 1;
	pthread_join(t, NULL);
	assert_int_equal(rc, 0);
	assert_string_equal(info.id, ags_store_id(s));
	assert_true(info.patterns >= 5 * BATCH);
	assert_int_equal(info.patterns % BATCH, 0);
	assert_int_equal(info.seq, info.patterns); /* one change per new id */
	struct stat sb;
	assert_int_equal(stat(dst, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal((uint64_t)sb.st_size, info.bytes);
	/* A single file: nothing is needed beside it. */
	char *wal = tu_sprintf("%s-wal", dst);
	assert_int_not_equal(access(wal, F_OK), 0);

	ags_store_info again;
	assert_int_equal(ags_store_inspect(dst, &again, &err), 0);
	assert_string_equal(again.id, info.id);
	assert_int_equal(again.seq, info.seq);

	ags_store *c = NULL;
	assert_int_equal(ags_store_open(dst, NULL, &c, &err), 0);
	assert_string_equal(ags_store_id(c), info.id);
	uint64_t n = 0;
	assert_int_equal(ags_store_count(c, &n), 0);
	assert_int_equal(n, info.patterns);
	int *per = calloc((size_t)w.batches + 1, sizeof(int));
	assert_int_equal(ags_store_query(c, NULL, count_cb, per), 0);
	for (int b = 0; b <= w.batches; b++)
		assert_true(per[b] == 0 || per[b] == BATCH);
	free(per);
	ags_store_close(c);
	ags_store_close(s);
	free(wal);
	free(src);
	free(dst);
	tu_rmrf(dir);
	free(dir);
}

static void test_backup_refusals(void **state)
{
	char *dir = tu_mkdtemp("backup-refuse");
	char *src = tu_sprintf("%s/store.db", dir), *dst = tu_sprintf("%s/copy.db", dir);
	char *junk = tu_sprintf("%s/junk", dir), *plain = tu_sprintf("%s/plain.db", dir);
	ags_store *s = NULL;
	assert_int_equal(ags_store_open(src, NULL, &s, NULL), 0);
	write_batch(s, 0);
	ags_error err;
	ags_error_clear(&err);

	/* Never overwrites: dst keeps what it had. */
	FILE *f = fopen(dst, "w");
	fputs("keep", f);
	fclose(f);
	assert_int_equal(ags_store_backup(src, dst, NULL, &err), AGS_ERR_EXISTS);
	assert_non_null(strstr(err.message, dst));
	size_t len = 0;
	char *kept = tu_read_file(dst, &len);
	assert_string_equal(kept, "keep");
	free(kept);
	unlink(dst);

	assert_int_equal(ags_store_backup(junk, dst, NULL, &err), AGS_ERR_NOT_FOUND);
	assert_non_null(strstr(err.message, junk));

	f = fopen(junk, "w");
	fputs("this is not a database, it is text long enough to be read as a header...", f);
	fclose(f);
	ags_error_clear(&err);
	assert_int_equal(ags_store_backup(junk, dst, NULL, &err), AGS_ERR_STORE);
	assert_non_null(strstr(err.message, junk));
	assert_non_null(strstr(err.message, "not an SQLite database"));
	assert_int_equal(ags_store_inspect(junk, &(ags_store_info){0}, &err), AGS_ERR_STORE);

	/* An SQLite database that is not a store (made by the store's own copy of an
	 * empty file: no schema version). */
	f = fopen(plain, "w");
	fclose(f);
	ags_error_clear(&err);
	assert_int_equal(ags_store_inspect(plain, &(ags_store_info){0}, &err), AGS_ERR_STORE);
	assert_non_null(strstr(err.message, "not an agentsync store"));
	assert_int_equal(ags_store_backup(plain, dst, NULL, &err), AGS_ERR_STORE);

	/* Nothing is left behind by the refusals. */
	assert_int_not_equal(access(dst, F_OK), 0);
	char *cmd = tu_sprintf("ls %s | grep -c tmp- || true", dir);
	FILE *p = popen(cmd, "r");
	char buf[16] = "";
	assert_non_null(fgets(buf, sizeof(buf), p));
	pclose(p);
	assert_int_equal(atoi(buf), 0);
	free(cmd);

	ags_store_close(s);
	free(src);
	free(dst);
	free(junk);
	free(plain);
	tu_rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_backup_under_writes),
	    cmocka_unit_test(test_backup_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
