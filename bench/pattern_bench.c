/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Pattern codec throughput, three ways a node meets a pattern:
 *
 *   parse     ags_pattern_parse of N seed-like patterns of about 450 bytes
 *             (JSON text in; parse + validate + canonical form + SHA-256);
 *   from_val  ags_pattern_from_val on the elements of one parsed array of
 *             sync_bench-shaped patterns (~465 bytes), as a receiving node
 *             does with the patterns of a batch;
 *   trusted   ags_pattern_parse_trusted of stored forms, as the store does
 *             when it reads rows back.
 *
 * Prints one line:
 *
 *   pattern_bench patterns=N seconds=S patterns_per_s=R bytes_avg=B
 *       from_val_per_s=R2 from_val_bytes_avg=B2 trusted_per_s=R3
 *
 * (seconds and patterns_per_s are for parse). Usage: pattern_bench [N]
 * (default 200000; each of the three runs N patterns). PB_ONLY=parse,
 * from_val or trusted in the environment runs only that one (for profiles
 * and instruction counts; the others print 0).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <yyjson.h>

#include "agentsync/agentsync.h"
#include "pattern.h"

#define RING 1024

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Writes pattern number i (seed 000's test_execution shape) into buf. */
static int make_pattern(char *buf, size_t cap, unsigned i)
{
	static const char *const results[] = {"passed", "failed", "skipped"};
	return snprintf(
	    buf, cap,
	    "{\"id\":\"pattern_%u\",\"agentId\":\"test-generator-%u\",\"type\":\"test_execution\","
	    "\"data\":{\"testCase\":\"UserLogin_%u_should_reject_an_expired_token\","
	    "\"result\":\"%s\",\"duration\":%u,\"errors\":[{\"message\":\"expected 401, got "
	    "200\",\"line\":%u,\"file\":\"tests/auth/login.test.ts\"}],\"retries\":%u,"
	    "\"coverage\":0.%u},"
	    "\"metadata\":{\"source\":\"test-generator\",\"tags\":[\"unit\",\"auth\","
	    "\"regression\",\"ci\"],\"priority\":%u,\"expiresAt\":%llu},"
	    "\"timestamp\":%llu,\"version\":%u}",
	    i, i % 7, i, results[i % 3], 10 + i % 5000, 1 + i % 400, i % 3, 100 + i % 900,
	    1 + i % 10, 1760000000000ull + i * 1000ull, 1730000000000ull + i, 1 + i % 5);
}

/*
 * Writes pattern number i in sync_bench's shape, as a sender puts it on the
 * wire: its stored form, so canonical with metadata.checksum inside.
 */
static int make_wire(char *buf, size_t cap, unsigned i)
{
	char json[1024];
	int len = snprintf(
	    json, sizeof(json),
	    "{\"id\":\"bench-%08u\",\"agentId\":\"test-generator\",\"type\":\"test_execution\","
	    "\"data\":{\"testCase\":\"UserLogin-%u\",\"result\":\"passed\",\"duration\":%u,"
	    "\"errors\":[],\"file\":\"src/auth/login.test.ts\",\"assertions\":17,"
	    "\"coverage\":{\"lines\":87.5,\"branches\":71.25,\"functions\":92.1},"
	    "\"env\":{\"node\":\"20.11\",\"os\":\"linux\"}},"
	    "\"metadata\":{\"source\":\"test-generator\",\"tags\":[\"unit\",\"auth\",\"login\"],"
	    "\"priority\":%u},\"timestamp\":%" PRId64 ",\"version\":1}",
	    i, i, 100 + i % 900, 1 + i % 10, (int64_t)1761100000000 + i);
	ags_pattern *p;
	ags_error err;
	if (ags_pattern_parse(json, (size_t)len, NULL, &p, &err) != 0) {
		fprintf(stderr, "pattern_bench: wire pattern %u: %s: %s\n", i, err.field,
		        err.message);
		exit(1);
	}
	size_t n;
	const char *s = ags_pattern_json(p, &n);
	len = snprintf(buf, cap, "%.*s", (int)n, s);
	ags_pattern_del(p);
	return len;
}

static double bench_parse(long n, size_t *bytes_avg)
{
	static char bufs[RING][768];
	size_t lens[RING], total = 0;

	for (unsigned i = 0; i < RING; i++) {
		lens[i] = (size_t)make_pattern(bufs[i], sizeof(bufs[i]), i);
		total += lens[i];
	}
	*bytes_avg = total / RING;
	double t0 = now_s();
	for (long i = 0; i < n; i++) {
		ags_pattern *p;
		ags_error err;
		unsigned r = (unsigned)(i % RING);
		if (ags_pattern_parse(bufs[r], lens[r], NULL, &p, &err) != 0) {
			fprintf(stderr, "pattern_bench: pattern %u: %s: %s\n", r, err.field,
			        err.message);
			exit(1);
		}
		ags_pattern_del(p);
	}
	return now_s() - t0;
}

/* Returns the seconds for n from_val calls; *trusted_s gets those for nt trusted parses. */
static double bench_from_val(long n, long nt, size_t *bytes_avg, double *trusted_s)
{
	static char bufs[RING][1024];
	size_t lens[RING], total = 0, cap = RING * 1024 + 2, pos = 0;
	char *arr = malloc(cap);

	if (!arr)
		exit(1);
	arr[pos++] = '[';
	for (unsigned i = 0; i < RING; i++) {
		lens[i] = (size_t)make_wire(bufs[i], sizeof(bufs[i]), i);
		total += lens[i];
		if (i)
			arr[pos++] = ',';
		memcpy(arr + pos, bufs[i], lens[i]);
		pos += lens[i];
	}
	arr[pos++] = ']';
	*bytes_avg = total / RING;
	yyjson_doc *doc = yyjson_read(arr, pos, 0);
	if (!doc || yyjson_arr_size(yyjson_doc_get_root(doc)) != RING)
		exit(1);
	yyjson_val *vals[RING];
	yyjson_arr_iter it = yyjson_arr_iter_with(yyjson_doc_get_root(doc));
	for (unsigned i = 0; i < RING; i++)
		vals[i] = yyjson_arr_iter_next(&it);

	double t0 = now_s();
	for (long i = 0; i < n; i++) {
		ags_pattern *p;
		ags_error err;
		unsigned r = (unsigned)(i % RING);
		if (ags_pattern_from_val(vals[r], NULL, &p, &err) != 0) {
			fprintf(stderr, "pattern_bench: from_val %u: %s: %s\n", r, err.field,
			        err.message);
			exit(1);
		}
		ags_pattern_del(p);
	}
	double s = now_s() - t0;

	t0 = now_s();
	for (long i = 0; i < nt; i++) {
		ags_pattern *p;
		unsigned r = (unsigned)(i % RING);
		if (ags_pattern_parse_trusted(bufs[r], lens[r], &p) != 0) {
			fprintf(stderr, "pattern_bench: trusted %u failed\n", r);
			exit(1);
		}
		ags_pattern_del(p);
	}
	*trusted_s = now_s() - t0;
	yyjson_doc_free(doc);
	free(arr);
	return s;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 200000;
	size_t parse_bytes, val_bytes;
	double trusted_s;

	if (n <= 0) {
		fprintf(stderr, "usage: pattern_bench [N]\n");
		return 2;
	}
	const char *only = getenv("PB_ONLY");
	long np = !only || !strcmp(only, "parse") ? n : 0;
	long nv = !only || !strcmp(only, "from_val") ? n : 0;
	long nt = !only || !strcmp(only, "trusted") ? n : 0;
	double s = bench_parse(np, &parse_bytes);
	double vs = bench_from_val(nv, nt, &val_bytes, &trusted_s);
	printf("pattern_bench patterns=%ld seconds=%.3f patterns_per_s=%.0f bytes_avg=%zu "
	       "from_val_per_s=%.0f from_val_bytes_avg=%zu trusted_per_s=%.0f\n",
	       np, s, (double)np / s, parse_bytes, (double)nv / vs, val_bytes,
	       (double)nt / trusted_s);
	return 0;
}
