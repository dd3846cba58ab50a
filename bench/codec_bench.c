/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Batch codec benchmark: encodes and decodes 100,000 seed-like patterns
 * (about 450 bytes of JSON each) in batches of 100, with each codec, and
 * prints one line: wire bytes per pattern against raw JSON bytes, and encode
 * and decode rates. Decoding covers framing, decompression, SHA-256 and
 * JSON parsing of the body (not pattern validation).
 *
 * Usage: codec_bench [patterns]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <yyjson.h>

#include "agentsync/agentsync.h"
#include "batch.h"
#include "frame.h"

#define BATCH 100

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static const char *const types[] = {"test_execution",  "coverage_gap",     "test_generation",
                                    "quality_metrics", "security_finding", "performance_benchmark"};
static const char *const agents[] = {"test-generator",   "coverage-analyzer",  "quality-gate",
                                     "security-scanner", "performance-tester", "flaky-hunter"};
static const char *const tags[] = {"unit",       "integration", "auth", "api",      "ui",
                                   "regression", "smoke",       "perf", "security", "db"};
static const char *const words[] = {"login",   "checkout", "session", "token",   "timeout",
                                    "retry",   "cache",    "render",  "payment", "search",
                                    "profile", "upload",   "export",  "webhook", "migration"};

/* One seed-like pattern as compact JSON (malloc'd), built with yyjson. */
static char *make_pattern(uint64_t *s, int i, size_t *len)
{
	char buf[160];
	yyjson_mut_doc *doc = yyjson_mut_doc_new(NULL);
	yyjson_mut_val *root = yyjson_mut_obj(doc);
	yyjson_mut_doc_set_root(doc, root);
	size_t t = rng(s) % 6, a = rng(s) % 6;
	snprintf(buf, sizeof(buf), "%s_%08x_%d", types[t], (unsigned)rng(s), i);
	yyjson_mut_obj_add_strcpy(doc, root, "id", buf);
	yyjson_mut_obj_add_str(doc, root, "agentId", agents[a]);
	yyjson_mut_obj_add_str(doc, root, "type", types[t]);
	yyjson_mut_val *data = yyjson_mut_obj_add_obj(doc, root, "data");
	snprintf(buf, sizeof(buf), "%s%s%sTest_%u", words[rng(s) % 15], words[rng(s) % 15],
	         words[rng(s) % 15], (unsigned)(rng(s) % 1000));
	yyjson_mut_obj_add_strcpy(doc, data, "testCase", buf);
	yyjson_mut_obj_add_str(doc, data, "result", rng(s) % 5 ? "passed" : "failed");
	yyjson_mut_obj_add_uint(doc, data, "duration", rng(s) % 20000);
	yyjson_mut_val *lines = yyjson_mut_obj_add_arr(doc, data, "lines");
	for (int k = 0; k < 4; k++)
		yyjson_mut_arr_add_uint(doc, lines, rng(s) % 2000);
	snprintf(buf, sizeof(buf), "expected %s to %s after %s within %ums", words[rng(s) % 15],
	         words[rng(s) % 15], words[rng(s) % 15], (unsigned)(rng(s) % 5000));
	yyjson_mut_obj_add_strcpy(doc, data, "message", buf);
	yyjson_mut_val *meta = yyjson_mut_obj_add_obj(doc, root, "metadata");
	yyjson_mut_obj_add_str(doc, meta, "source", agents[a]);
	yyjson_mut_val *tg = yyjson_mut_obj_add_arr(doc, meta, "tags");
	for (uint64_t k = 0, n = 1 + rng(s) % 3; k < n; k++)
		yyjson_mut_arr_add_str(doc, tg, tags[rng(s) % 10]);
	yyjson_mut_obj_add_int(doc, meta, "priority", 1 + (int64_t)(rng(s) % 10));
	snprintf(buf, sizeof(buf), "%016llx%016llx%016llx%016llx", (unsigned long long)rng(s),
	         (unsigned long long)rng(s), (unsigned long long)rng(s),
	         (unsigned long long)rng(s));
	yyjson_mut_obj_add_strcpy(doc, meta, "checksum", buf);
	yyjson_mut_obj_add_int(doc, root, "timestamp", 1700000000000 + i * 37);
	yyjson_mut_obj_add_int(doc, root, "version", 1 + (int64_t)(rng(s) % 5));
	char *out = yyjson_mut_write(doc, 0, len);
	yyjson_mut_doc_free(doc);
	return out;
}

typedef struct result {
	double wire_per_pattern;
	double enc_rate;
	double dec_rate;
	size_t compressed_batches;
} result;

static int run(int codec, char **pats, size_t *lens, size_t n, result *res)
{
	ags_batch_encoder *e = NULL;
	int rc = ags_batch_encoder_new(NULL, &e);
	if (rc)
		return rc;
	size_t nb = (n + BATCH - 1) / BATCH;
	uint8_t **frames = calloc(nb, sizeof(*frames));
	size_t *flens = calloc(nb, sizeof(*flens));
	size_t wire = 0, compressed = 0;
	if (!frames || !flens)
		return AGS_ERR_NOMEM;

	double t0 = now_s();
	for (size_t b = 0; b < nb; b++) {
		ags_batch_encoder_begin(e);
		for (size_t i = b * BATCH; i < n && i < (b + 1) * BATCH; i++)
			if ((rc = ags_batch_encoder_add_put(e, pats[i], lens[i], 0)))
				return rc;
		const uint8_t *fr;
		ags_batch_stats st;
		if ((rc = ags_batch_encoder_finish(e, b, 1700000000000, b, "bench-node", codec, &fr,
		                                   &flens[b], &st)))
			return rc;
		/* Copying the frame out stands in for handing it to the transport. */
		frames[b] = malloc(flens[b]);
		if (!frames[b])
			return AGS_ERR_NOMEM;
		memcpy(frames[b], fr, flens[b]);
		wire += st.wire_len;
		compressed += st.codec_used != AGS_CODEC_NONE;
	}
	double t1 = now_s();
	size_t decoded = 0;
	for (size_t b = 0; b < nb; b++) {
		ags_batch batch;
		ags_error err;
		rc = ags_batch_decode(frames[b] + AGS_FRAME_HEADER_LEN,
		                      flens[b] - AGS_FRAME_HEADER_LEN, NULL, &batch, &err);
		if (rc) {
			fprintf(stderr, "decode: %s (%s)\n", err.message, err.field);
			return rc;
		}
		decoded += batch.n_entries;
		ags_batch_free(&batch);
	}
	double t2 = now_s();
	if (decoded != n)
		return AGS_ERR_INTERNAL;
	for (size_t b = 0; b < nb; b++)
		free(frames[b]);
	free(frames);
	free(flens);
	ags_batch_encoder_del(e);
	res->wire_per_pattern = (double)wire / (double)n;
	res->enc_rate = (double)n / (t1 - t0);
	res->dec_rate = (double)n / (t2 - t1);
	res->compressed_batches = compressed;
	return 0;
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
	if (n == 0)
		return 2;
	char **pats = calloc(n, sizeof(*pats));
	size_t *lens = calloc(n, sizeof(*lens));
	uint64_t seed = 0x2545f4914f6cdd1du;
	size_t raw = 0;
	for (size_t i = 0; i < n; i++) {
		pats[i] = make_pattern(&seed, (int)i, &lens[i]);
		if (!pats[i])
			return 1;
		raw += lens[i];
	}
	double raw_pp = (double)raw / (double)n;
	static const int codecs[] = {AGS_CODEC_NONE, AGS_CODEC_GZIP, AGS_CODEC_ZSTD};
	char line[1024];
	int off = snprintf(line, sizeof(line),
	                   "codec_bench: %zu patterns in batches of %d, raw JSON %.1f B/pattern", n,
	                   BATCH, raw_pp);
	for (size_t c = 0; c < 3; c++) {
		result r;
		int rc = run(codecs[c], pats, lens, n, &r);
		if (rc) {
			fprintf(stderr, "codec_bench: %s: %s\n", ags_codec_name(codecs[c]),
			        ags_strerror(rc));
			return 1;
		}
		off += snprintf(line + off, sizeof(line) - (size_t)off,
		                "; %s: %.1f B/pattern on the wire (%.0f%% of raw), encode %.0fk/s, "
		                "decode %.0fk/s",
		                ags_codec_name(codecs[c]), r.wire_per_pattern,
		                100.0 * r.wire_per_pattern / raw_pp, r.enc_rate / 1e3,
		                r.dec_rate / 1e3);
	}
	puts(line);
	for (size_t i = 0; i < n; i++)
		free(pats[i]);
	free(pats);
	free(lens);
	return 0;
}
