/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store_bench [N] [--random-ids] [--encryption]: how fast the store takes in
 * new patterns end to end.
 *
 * Generates N seed-like patterns of about 450 bytes of JSON text (not timed;
 * ids "pattern_<n>" in order as in the seed, or random 64-bit hex ids with
 * --random-ids, the worst case for the id index),
 * then, timed: parses and validates each with ags_pattern_parse (checksum
 * included) and applies them in batches of 100 to a fresh store in a
 * temporary directory. Prints one line:
 *
 *   store_bench patterns=N seconds=S patterns_per_s=R
 *
 * and removes the temporary directory. With --encryption it measures the cost
 * of encryption at rest in the same run: three pairs, each a fresh plain
 * store and a fresh store encrypted with a random key (ags_store_opts.key_file),
 * the order alternating, one line per store (encrypted=0|1), then
 *
 *   store_bench encryption plain_per_s=P encrypted_per_s=E cost_pct=C
 *
 * with the medians of each side and C = (P / E - 1) * 100.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agentsync/agentsync.h"

#define BATCH 100

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void)
{
	/* xorshift64*: a fixed sequence, so every run stores the same ids. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1du;
}

/* One pattern like the seed's example, padded to about 450 bytes. */
static int make_json(char *buf, size_t cap, size_t i, int random_ids)
{
	static const char *const types[] = {"test_execution", "code_review", "bug_fix",
	                                    "refactoring"};
	static const char *const results[] = {"passed", "failed", "skipped"};
	static const char *const tags[] = {"regression", "smoke", "integration", "perf"};
	char id[40];
	if (random_ids)
		snprintf(id, sizeof(id), "pattern_%016" PRIx64, rng());
	else
		snprintf(id, sizeof(id), "pattern_%zu", i);
	return snprintf(
	    buf, cap,
	    "{\"id\":\"%s\",\"agentId\":\"test-generator-%zu\","
	    "\"type\":\"%s\",\"data\":{\"testCase\":\"UserLogin_%zu\",\"result\":\"%s\","
	    "\"durationMs\":%zu,\"steps\":[\"open login page\",\"enter credentials\","
	    "\"submit form\",\"check dashboard\"],\"environment\":{\"browser\":"
	    "\"chromium\",\"os\":\"linux\",\"ci\":true},\"notes\":\"login flow with "
	    "remembered session and two-factor prompt\"},\"metadata\":{\"source\":"
	    "\"test-generator-%zu\",\"tags\":[\"unit\",\"auth\",\"%s\"],\"priority\":%zu},"
	    "\"timestamp\":%" PRId64 ",\"version\":1}",
	    id, i % 16, types[i % 4], i, results[i % 3], 20 + i % 900, i % 16, tags[i % 4],
	    1 + i % 10, (int64_t)1700000000000 + (int64_t)i);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void remove_store(const char *dir)
{
	static const char *const suffix[] = {"", "-wal", "-shm"};
	char path[4200];
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/bench.db%s", dir, suffix[i]);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/bench.key", dir);
	unlink(path);
	rmdir(dir);
}

/* A random 256-bit key in hex into dir/bench.key; its path in out. */
static int make_key(const char *dir, char *out, size_t cap)
{
	snprintf(out, cap, "%s/bench.key", dir);
	FILE *r = fopen("/dev/urandom", "rb"), *w = fopen(out, "w");
	unsigned char k[32];
	int ok = r && w && fread(k, 1, sizeof(k), r) == sizeof(k);
	for (size_t i = 0; ok && i < sizeof(k); i++)
		ok = fprintf(w, "%02x", k[i]) == 2;
	if (r)
		fclose(r);
	if (w && fclose(w) != 0)
		ok = 0;
	return ok ? 0 : -1;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Parses and applies the n texts in batches; returns 0 or an AGS_ERR_* code (err says why). */
static int run(ags_store *s, char **json, const size_t *len, size_t n, ags_error *err)
{
	ags_pattern *batch[BATCH];
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i += BATCH) {
		size_t m = BATCH, k = 0;
		if (n - i < m)
			m = n - i;
		for (; k < m; k++) {
			if ((rc = ags_pattern_parse(json[i + k], len[i + k], NULL, &batch[k], err)))
				break;
		}
		if (!rc)
			rc = ags_store_apply_batch(s, (const ags_pattern *const *)batch, m, NULL,
			                           err);
		for (size_t j = 0; j < k; j++)
			ags_pattern_del(batch[j]);
	}
	return rc;
}

/*
 * One timed run into a fresh store in a new temporary directory (encrypted
 * with a new random key when `encrypted`); patterns/s in *rate. 0 or 1.
 */
static int measure(char **json, const size_t *len, size_t n, int encrypted, double *rate)
{
	char dir[4096], path[4200], key[4200];
	ags_store *s = NULL;
	ags_error err;
	int status = 1;
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, sizeof(dir), "%s/store_bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		perror("store_bench: mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/bench.db", dir);
	if (encrypted && make_key(dir, key, sizeof(key)) < 0) {
		fprintf(stderr, "store_bench: cannot make a key in %s\n", dir);
		goto out;
	}
	ags_store_opts opts = {.key_file = encrypted ? key : NULL};
	if (ags_store_open(path, &opts, &s, &err)) {
		fprintf(stderr, "store_bench: open: %s\n", err.message);
		goto out;
	}
	double t0 = now_s();
	int rc = run(s, json, len, n, &err);
	double secs = now_s() - t0;
	if (rc) {
		fprintf(stderr, "store_bench: %s: %s\n", ags_strerror(rc), err.message);
		goto out;
	}
	uint64_t count = 0;
	if (ags_store_count(s, &count) || count != n) {
		fprintf(stderr, "store_bench: expected %zu records, store has %" PRIu64 "\n", n,
		        count);
		goto out;
	}
	*rate = (double)n / secs;
	status = 0;
	printf("store_bench patterns=%zu seconds=%.3f patterns_per_s=%.0f%s\n", n, secs, *rate,
	       encrypted ? " encrypted=1" : "");
	fflush(stdout);
out:
	ags_store_close(s);
	remove_store(dir);
	return status;
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
	int random_ids = 0, encryption = 0, bad = n == 0;
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--random-ids") == 0)
			random_ids = 1;
		else if (strcmp(argv[i], "--encryption") == 0)
			encryption = 1;
		else
			bad = 1;
	}
	if (bad) {
		fprintf(stderr, "usage: store_bench [N > 0] [--random-ids] [--encryption]\n");
		return 2;
	}
	int status = 1;
	char **json = calloc(n, sizeof(*json));
	size_t *len = calloc(n, sizeof(*len));
	char buf[1024];
	if (!json || !len)
		goto out;
	for (size_t i = 0; i < n; i++) {
		int l = make_json(buf, sizeof(buf), i, random_ids);
		if (l < 0 || (size_t)l >= sizeof(buf) || !(json[i] = strdup(buf)))
			goto out;
		len[i] = (size_t)l;
	}
	if (!encryption) {
		double rate;
		status = measure(json, len, n, 0, &rate);
		goto out;
	}
	double plain[3], enc[3];
	for (int r = 0; r < 3; r++) {
		/* Alternating order: neither side always runs on a warmer machine. */
		int first = r % 2;
		if (measure(json, len, n, first, first ? &enc[r] : &plain[r]) ||
		    measure(json, len, n, !first, first ? &plain[r] : &enc[r]))
			goto out;
	}
	qsort(plain, 3, sizeof(double), cmp_double);
	qsort(enc, 3, sizeof(double), cmp_double);
	printf("store_bench encryption plain_per_s=%.0f encrypted_per_s=%.0f cost_pct=%.1f\n",
	       plain[1], enc[1], (plain[1] / enc[1] - 1) * 100);
	status = 0;
out:
	for (size_t i = 0; json && i < n; i++)
		free(json[i]);
	free(json);
	free(len);
	return status;
}
