/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Durability of the store: a child process applies a batch and is killed
 * with SIGKILL the moment ags_store_apply_batch returns; the parent reopens
 * the database and must find the whole batch, with the same sequence, count
 * and digest as a reference store that saw the same changes. Run on a plain
 * store and on an encrypted one (ags_store_opts.key_file), where no file of
 * the directory may hold a byte of pattern text either.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "agentsync/agentsync.h"
#include "store.h"

#define BATCH  1000
#define ROUNDS 4

/*
 * The batch of round r: 700 new ids, 250 updates of ids from the round
 * before (version r + 1) and 50 deletions of older ids. Deterministic, so the
 * parent can rebuild exactly what the child applied.
 */
static ags_pattern **make_batch(int round)
{
	ags_pattern **b = calloc(BATCH, sizeof(*b));
	assert_non_null(b);
	for (int i = 0; i < BATCH; i++) {
		char id[32];
		int r = 0;
		if (i < 700 || round == 0) {
			snprintf(id, sizeof(id), "r%d-%d", round, i);
		} else if (i < 950) {
			snprintf(id, sizeof(id), "r%d-%d", round - 1, i - 700);
		} else {
			snprintf(id, sizeof(id), "r%d-%d", round - 1, i);
			r = ags_pattern_new_tombstone(id, round + 1, 2000 + round, &b[i]);
			assert_int_equal(r, 0);
			continue;
		}
		int64_t version = (i < 700 || round == 0) ? 1 : round + 1;
		char *json = tu_sprintf(
		    "{\"id\":\"%s\",\"agentId\":\"agent-%d\",\"type\":\"test_execution\","
		    "\"data\":{\"round\":%d,\"i\":%d,\"text\":\"durable payload for the kill "
		    "test\"},"
		    "\"metadata\":{\"source\":\"durability\",\"tags\":[\"kill\",\"r%d\"],"
		    "\"priority\":%d},\"timestamp\":%d,\"version\":%" PRId64 "}",
		    id, i % 7, round, i, round, 1 + i % 10, 1000 + round, version);
		ags_error err;
		r = ags_pattern_parse(json, strlen(json), NULL, &b[i], &err);
		if (r)
			fail_msg("parse %s: %s", json, err.message);
		free(json);
	}
	return b;
}

static void free_batch(ags_pattern **b)
{
	for (int i = 0; i < BATCH; i++)
		ags_pattern_del(b[i]);
	free(b);
}

/* In the child: open, apply, and die by SIGKILL without closing anything. */
static void child_apply_and_die(const char *path, const char *key_file, int round, int fsync_full)
{
	ags_store_opts opts = {.fsync_full = fsync_full, .key_file = key_file};
	ags_store *s = NULL;
	if (ags_store_open(path, &opts, &s, NULL))
		_exit(10);
	ags_pattern **b = make_batch(round);
	ags_apply_result res[BATCH];
	int r = ags_store_apply_batch(s, (const ags_pattern *const *)b, BATCH, res, NULL);
	if (r == 0)
		kill(getpid(), SIGKILL);
	_exit(11);
}

/* No file in dir holds `needle`; the killed writer's WAL is among those read. */
static void no_file_holds(const char *dir, const char *needle)
{
	char *scanned = NULL;
	char *hit = tu_tree_holds(dir, needle, &scanned);
	if (hit)
		fail_msg("%s holds \"%s\" in the clear", hit, needle);
	if (!strstr(scanned, "store.db-wal"))
		fail_msg("no WAL among the files read: %s", scanned);
	free(scanned);
}

static void survives_sigkill(const char *key_hex)
{
	char *dir = tu_mkdtemp("durable");
	char *path = tu_sprintf("%s/store.db", dir);
	char *key_file = NULL;
	if (key_hex) {
		key_file = tu_sprintf("%s/store.key", dir);
		FILE *kf = fopen(key_file, "w");
		assert_non_null(kf);
		fprintf(kf, "%s\n", key_hex);
		fclose(kf);
	}
	ags_store_opts sopts = {.key_file = key_file};
	char *ref_dir = tu_mkdtemp("durable-ref"); /* the plain reference, elsewhere */
	char *ref_path = tu_sprintf("%s/reference.db", ref_dir);
	ags_store *ref = NULL;
	ags_error err;
	assert_int_equal(ags_store_open(ref_path, NULL, &ref, &err), 0);

	for (int round = 0; round < ROUNDS; round++) {
		int fsync_full = round == ROUNDS - 1;
		fflush(NULL);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0)
			child_apply_and_die(path, key_file, round, fsync_full);
		int status = 0;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!WIFSIGNALED(status))
			fail_msg("round %d: child exited with %d instead of being killed", round,
			         WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		assert_int_equal(WTERMSIG(status), SIGKILL);

		/* The same changes to the reference store, in this process. */
		ags_pattern **b = make_batch(round);
		assert_int_equal(
		    ags_store_apply_batch(ref, (const ags_pattern *const *)b, BATCH, NULL, &err),
		    0);

		if (key_file) {
			no_file_holds(dir, "durable payload");
		} else {
			/* The scan finds the text where it is in the clear. */
			char *hit = tu_tree_holds(dir, "durable payload", NULL);
			assert_non_null(hit);
			free(hit);
		}
		ags_store *s = NULL;
		assert_int_equal(ags_store_open(path, &sopts, &s, &err), 0);
		char d[65], dref[65], drows[65];
		uint64_t n = 0, nref = 0, live = 0;
		ags_store_digest(s, d);
		ags_store_digest(ref, dref);
		assert_string_equal(d, dref);
		assert_int_equal(ags_store_verify(s, drows, &live), 0);
		assert_string_equal(d, drows);
		assert_int_equal(ags_store_count(s, &n), 0);
		assert_int_equal(ags_store_count(ref, &nref), 0);
		assert_int_equal(n, nref);
		assert_int_equal(n, live);
		/* 1000 new ids, then 700 more each round; round 1 deletes 50 of round 0. */
		assert_int_equal(n, round == 0 ? 1000 : 1000 + 700 * (uint64_t)round - 50);
		assert_int_equal(ags_store_seq(s), ags_store_seq(ref));
		assert_int_equal(ags_store_seq(s), (uint64_t)(round + 1) * BATCH);
		/* Every change of the batch is there, as the newest version of its id. */
		for (int i = 0; i < BATCH; i++) {
			ags_pattern *got = NULL;
			int r = ags_store_get(s, ags_pattern_id(b[i]), &got);
			if (ags_pattern_is_tombstone(b[i])) {
				assert_int_equal(r, AGS_ERR_NOT_FOUND);
			} else {
				assert_int_equal(r, 0);
				assert_string_equal(ags_pattern_checksum(got),
				                    ags_pattern_checksum(b[i]));
			}
			ags_pattern_del(got);
		}
		ags_store_close(s);
		free_batch(b);
	}
	ags_store_close(ref);
	tu_rmrf(dir);
	tu_rmrf(ref_dir);
	free(ref_dir);
	free(ref_path);
	free(path);
	free(key_file);
	free(dir);
}

static void survives_sigkill_right_after_commit(void **state)
{
	(void)state;
	survives_sigkill(NULL);
}

static void encrypted_survives_sigkill_right_after_commit(void **state)
{
	(void)state;
	survives_sigkill("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(survives_sigkill_right_after_commit),
	    cmocka_unit_test(encrypted_survives_sigkill_right_after_commit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
