/*
 * Pattern codec throughput: parses N generated seed-like patterns of about
 * 450 bytes (parse + validate + canonical form + SHA-256 checksum) and prints
 *
 *   pattern_bench patterns=N seconds=S patterns_per_s=R bytes_avg=B
 *
 * Usage: pattern_bench [N] (default 200000).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agentsync/agentsync.h"

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

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 200000;
	static char bufs[RING][768];
	size_t lens[RING], total = 0;

	if (n <= 0) {
		fprintf(stderr, "usage: pattern_bench [N]\n");
		return 2;
	}
	for (unsigned i = 0; i < RING; i++) {
		lens[i] = (size_t)make_pattern(bufs[i], sizeof(bufs[i]), i);
		total += lens[i];
	}

	double t0 = now_s();
	for (long i = 0; i < n; i++) {
		ags_pattern *p;
		ags_error err;
		unsigned r = (unsigned)(i % RING);
		if (ags_pattern_parse(bufs[r], lens[r], NULL, &p, &err) != 0) {
			fprintf(stderr, "pattern_bench: pattern %u: %s: %s\n", r, err.field,
			        err.message);
			return 1;
		}
		ags_pattern_del(p);
	}
	double s = now_s() - t0;
	printf("pattern_bench patterns=%ld seconds=%.3f patterns_per_s=%.0f bytes_avg=%zu\n", n, s,
	       (double)n / s, total / RING);
	return 0;
}
