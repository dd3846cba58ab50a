/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agentsync bench: a load test of a running daemon through its HTTP API.
 * Generates N seed-like patterns (~450 bytes), POSTs them as NDJSON in
 * batches, and reports how fast the daemon accepted them (durably stored);
 * then, when the daemon has connected peers, waits until every one of them
 * has acknowledged everything (lag 0) and reports that rate too.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <yyjson.h>

#include "cli.h"

static const char bench_help[] =
    "Usage: agentsync bench [--count N] [--batch B] [--prefix P] [--no-wait]\n"
    "Writes N generated patterns (default 10000) to the daemon in requests of B\n"
    "(default 1000), prints accepted patterns/s, then waits until every connected\n"
    "peer has acknowledged them all (unless --no-wait) and prints that rate.\n"
    "Ids are P-<n> (default bench-<time>), so runs do not overwrite each other.\n"
    "Exit status: 0 ok, 1 error or rejected records, 2 usage, 3 daemon unreachable.\n";

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Appends one generated pattern line to buf (which has room). */
static size_t gen(char *buf, size_t cap, const char *prefix, long i)
{
	int n =
	    snprintf(buf, cap,
	             "{\"id\":\"%s-%ld\",\"agentId\":\"bench\",\"type\":\"test_execution\","
	             "\"data\":{\"testCase\":\"Case-%ld\",\"result\":\"passed\",\"duration\":%ld,"
	             "\"errors\":[],\"file\":\"src/auth/login.test.ts\",\"assertions\":17,"
	             "\"coverage\":{\"lines\":87.5,\"branches\":71.25,\"functions\":92.1}},"
	             "\"metadata\":{\"source\":\"agentsync-bench\",\"tags\":[\"bench\",\"unit\"],"
	             "\"priority\":%ld},\"timestamp\":%ld,\"version\":1}\n",
	             prefix, i, i, 100 + i % 900, 1 + i % 10, (long)time(NULL) * 1000 + i % 1000);
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* The highest lag over connected peers and how many are connected, from /v1/state. */
static int peer_lag(const struct cli *c, uint64_t *max_lag, int *connected)
{
	struct http_resp r;
	int rc = http_request(c, "bench", "GET", "/v1/state", NULL, NULL, 0, &r);
	if (rc != EXIT_OK)
		return rc;
	if (r.status != 200) {
		rc = http_fail("bench", &r);
		http_resp_free(&r);
		return rc;
	}
	yyjson_doc *doc = yyjson_read(r.body, r.len, 0);
	http_resp_free(&r);
	if (!doc)
		return EXIT_ERROR;
	*max_lag = 0;
	*connected = 0;
	yyjson_val *peers = yyjson_obj_get(yyjson_doc_get_root(doc), "peers");
	yyjson_obj_iter it;
	yyjson_val *k;
	yyjson_obj_iter_init(peers, &it);
	while ((k = yyjson_obj_iter_next(&it))) {
		yyjson_val *p = yyjson_obj_iter_get_val(k);
		if (!yyjson_get_bool(yyjson_obj_get(p, "connected")))
			continue;
		(*connected)++;
		uint64_t lag = yyjson_get_uint(yyjson_obj_get(p, "lag"));
		if (lag > *max_lag)
			*max_lag = lag;
	}
	yyjson_doc_free(doc);
	return EXIT_OK;
}

int cmd_bench(const struct cli *c, int argc, char **argv)
{
	long count = 10000, batch = 1000;
	int wait = 1;
	char prefix[64];
	snprintf(prefix, sizeof(prefix), "bench-%ld", (long)time(NULL));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(bench_help, stdout);
			return EXIT_OK;
		} else if (!strcmp(a, "--no-wait")) {
			wait = 0;
		} else if (i + 1 < argc && !strcmp(a, "--count")) {
			count = atol(argv[++i]);
		} else if (i + 1 < argc && !strcmp(a, "--batch")) {
			batch = atol(argv[++i]);
		} else if (i + 1 < argc && !strcmp(a, "--prefix")) {
			snprintf(prefix, sizeof(prefix), "%s", argv[++i]);
		} else {
			fputs(bench_help, stderr);
			return EXIT_USAGE;
		}
	}
	if (count < 1 || batch < 1 || batch > 100000) {
		fputs("agentsync bench: --count must be >= 1 and --batch 1-100000\n", stderr);
		return EXIT_USAGE;
	}
	enum { LINE_MAX_BYTES = 1024 };
	char *body = malloc((size_t)batch * LINE_MAX_BYTES);
	if (!body)
		return EXIT_ERROR;
	double t0 = now_s();
	long rejected = 0;
	for (long done = 0; done < count;) {
		size_t len = 0;
		long k = 0;
		for (; k < batch && done + k < count; k++)
			len += gen(body + len, LINE_MAX_BYTES, prefix, done + k);
		struct http_resp r;
		int rc = http_request(c, "bench", "POST", "/v1/patterns", "application/x-ndjson",
		                      body, len, &r);
		if (rc != EXIT_OK) {
			free(body);
			return rc;
		}
		if (r.status != 200) {
			rc = http_fail("bench", &r);
			http_resp_free(&r);
			free(body);
			return rc;
		}
		yyjson_doc *doc = yyjson_read(r.body, r.len, 0);
		yyjson_val *root = yyjson_doc_get_root(doc);
		yyjson_val *rej_n = yyjson_obj_get(root, "rejectedCount"); /* all; the list stops */
		rejected += yyjson_is_uint(rej_n)
		                ? (long)yyjson_get_uint(rej_n)
		                : (long)yyjson_arr_size(yyjson_obj_get(root, "rejected"));
		yyjson_doc_free(doc);
		http_resp_free(&r);
		done += k;
	}
	free(body);
	double t1 = now_s();
	printf("bench: %ld patterns accepted (durably stored) in %.3f s: %.0f patterns/s, %ld "
	       "rejected\n",
	       count - rejected, t1 - t0, (double)(count - rejected) / (t1 - t0), rejected);
	if (!wait)
		return rejected ? EXIT_ERROR : EXIT_OK;
	uint64_t lag = 0;
	int connected = 0;
	/* Bounded: about 10 minutes. */
	for (int i = 0; i < 60000; i++) {
		int rc = peer_lag(c, &lag, &connected);
		if (rc != EXIT_OK)
			return rc;
		if (!connected || lag == 0)
			break;
		usleep(10000);
	}
	double t2 = now_s();
	if (!connected)
		printf("bench: no connected peers to wait for\n");
	else if (lag)
		printf("bench: peers still lag by %" PRIu64 " changes; gave up waiting\n", lag);
	else
		printf("bench: all %d connected peers acknowledged everything %.3f s after the "
		       "first write: %.0f patterns/s end to end\n",
		       connected, t2 - t0, (double)(count - rejected) / (t2 - t0));
	return rejected || lag ? EXIT_ERROR : EXIT_OK;
}
