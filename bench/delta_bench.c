/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Delta sync benchmark: a 20 KB pattern (seed-like test results) updated in
 * one field. Prints one line: the wire bytes of a BATCH carrying the new
 * version whole (zstd) against one carrying it as a delta against the old
 * version, and the time to make and to apply one delta.
 *
 * Usage: delta_bench [rounds]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <yyjson.h>

#include "agentsync/agentsync.h"
#include "batch.h"
#include "delta.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The pattern at `version`, with `status` as the one field that changes. */
static ags_pattern *make(int64_t version, const char *status)
{
	yyjson_mut_doc *doc = yyjson_mut_doc_new(NULL);
	yyjson_mut_val *root = yyjson_mut_obj(doc);
	yyjson_mut_doc_set_root(doc, root);
	yyjson_mut_obj_add_str(doc, root, "id", "suite-report-42");
	yyjson_mut_obj_add_str(doc, root, "agentId", "test-generator");
	yyjson_mut_obj_add_str(doc, root, "type", "test_execution");
	yyjson_mut_val *data = yyjson_mut_obj_add_obj(doc, root, "data");
	yyjson_mut_obj_add_str(doc, data, "status", status);
	yyjson_mut_val *cases = yyjson_mut_obj_add_arr(doc, data, "cases");
	uint64_t x = 42;
	char name[64];
	for (int i = 0; i < 320; i++) {
		x = x * 6364136223846793005u + 1442695040888963407u;
		yyjson_mut_val *c = yyjson_mut_arr_add_obj(doc, cases);
		snprintf(name, sizeof(name), "Module%u.test_case_%u", (unsigned)(x >> 58),
		         (unsigned)(x >> 40) & 0xffff);
		yyjson_mut_obj_add_strcpy(doc, c, "name", name);
		yyjson_mut_obj_add_str(doc, c, "result", (x >> 33) & 7 ? "passed" : "failed");
		yyjson_mut_obj_add_int(doc, c, "ms", (int64_t)((x >> 20) & 4095));
	}
	yyjson_mut_val *meta = yyjson_mut_obj_add_obj(doc, root, "metadata");
	yyjson_mut_obj_add_str(doc, meta, "source", "ci");
	yyjson_mut_val *tags = yyjson_mut_obj_add_arr(doc, meta, "tags");
	yyjson_mut_arr_add_str(doc, tags, "nightly");
	yyjson_mut_obj_add_int(doc, root, "timestamp", 1700000000000 + version);
	yyjson_mut_obj_add_int(doc, root, "version", version);
	size_t len = 0;
	char *json = yyjson_mut_write(doc, 0, &len);
	yyjson_mut_doc_free(doc);
	ags_pattern *p = NULL;
	ags_error err;
	if (!json || ags_pattern_parse(json, len, NULL, &p, &err) != 0) {
		fprintf(stderr, "delta_bench: cannot make the pattern\n");
		exit(1);
	}
	free(json);
	return p;
}

/* Wire bytes of a zstd BATCH with one put of p, or one delta entry. */
static size_t batch_bytes(ags_batch_encoder *e, const ags_pattern *p, const ags_pattern *base,
                          const char *b64, size_t b64_len)
{
	size_t len = 0;
	const char *json = ags_pattern_json(p, &len);
	ags_batch_encoder_begin(e);
	int rc = b64 ? ags_batch_encoder_add_delta(
	                   e, ags_pattern_id(p), ags_pattern_version(p), ags_pattern_version(base),
	                   ags_pattern_checksum(base), b64, b64_len, len, 0, NULL, 0)
	             : ags_batch_encoder_add_put(e, json, len, 0);
	const uint8_t *frame;
	size_t flen = 0;
	if (rc == 0)
		rc = ags_batch_encoder_finish(e, 1, 0, 1, "bench-node", AGS_CODEC_ZSTD, &frame,
		                              &flen, NULL);
	if (rc) {
		fprintf(stderr, "delta_bench: encoding failed: %s\n", ags_strerror(rc));
		exit(1);
	}
	return flen;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 2000;
	if (rounds < 1)
		rounds = 1;
	ags_pattern *v1 = make(1, "running"), *v2 = make(2, "finished");
	size_t blen = 0, flen = 0;
	const char *base = ags_pattern_json(v1, &blen);
	const char *full = ags_pattern_json(v2, &flen);
	ags_batch_encoder *e = NULL;
	if (ags_batch_encoder_new(NULL, &e) != 0)
		return 1;
	char *b64 = NULL;
	size_t b64_len = 0;
	double t0 = now_s();
	for (int i = 0; i < rounds; i++) {
		free(b64);
		if (ags_delta_make(base, blen, full, flen, flen / 2, &b64, &b64_len) != 0) {
			fprintf(stderr, "delta_bench: no delta\n");
			return 1;
		}
	}
	double t1 = now_s();
	for (int i = 0; i < rounds; i++) {
		char *out = NULL;
		if (ags_delta_apply(base, blen, b64, b64_len, flen, &out) != 0 ||
		    memcmp(out, full, flen) != 0) {
			fprintf(stderr, "delta_bench: delta does not apply\n");
			return 1;
		}
		free(out);
	}
	double t2 = now_s();
	size_t whole = batch_bytes(e, v2, v1, NULL, 0);
	size_t delta = batch_bytes(e, v2, v1, b64, b64_len);
	printf(
	    "delta_bench: %zu-byte pattern, one field changed: full BATCH %zu wire bytes (zstd), "
	    "delta BATCH %zu wire bytes (%.1f%%, delta text %zu bytes); make %.1f us, apply %.1f "
	    "us\n",
	    flen, whole, delta, 100.0 * (double)delta / (double)whole, b64_len,
	    (t1 - t0) * 1e6 / rounds, (t2 - t1) * 1e6 / rounds);
	free(b64);
	ags_batch_encoder_del(e);
	ags_pattern_del(v1);
	ags_pattern_del(v2);
	return 0;
}
