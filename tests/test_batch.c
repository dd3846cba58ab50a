/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for BATCH frames: encoder, decoder, codecs, limits, malformed input. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <yyjson.h>
#include <zlib.h>
#include <zstd.h>

#include "testutil.h"
#include "agentsync/agentsync.h"
#include "batch.h"
#include "delta.h"
#include "frame.h"

#define SOURCE "node-α"

static const int all_codecs[] = {AGS_CODEC_NONE, AGS_CODEC_GZIP, AGS_CODEC_ZSTD};

/* A seed-like pattern as compact JSON (malloc'd), built with yyjson. */
static char *pattern_json(const char *id, int64_t version, const char *note, size_t *len)
{
	yyjson_mut_doc *doc = yyjson_mut_doc_new(NULL);
	yyjson_mut_val *root = yyjson_mut_obj(doc);
	yyjson_mut_doc_set_root(doc, root);
	yyjson_mut_obj_add_str(doc, root, "id", id);
	yyjson_mut_obj_add_str(doc, root, "agentId", "test-generator");
	yyjson_mut_obj_add_str(doc, root, "type", "test_execution");
	yyjson_mut_val *data = yyjson_mut_obj_add_obj(doc, root, "data");
	yyjson_mut_obj_add_str(doc, data, "testCase", "UserLogin — données ✓ 测试 😀");
	yyjson_mut_obj_add_str(doc, data, "result", "passed");
	yyjson_mut_obj_add_str(doc, data, "note", note);
	yyjson_mut_val *meta = yyjson_mut_obj_add_obj(doc, root, "metadata");
	yyjson_mut_obj_add_str(doc, meta, "source", "test-generator");
	yyjson_mut_val *tags = yyjson_mut_obj_add_arr(doc, meta, "tags");
	yyjson_mut_arr_add_str(doc, tags, "unit");
	yyjson_mut_arr_add_str(doc, tags, "auth");
	yyjson_mut_obj_add_int(doc, meta, "priority", 3);
	yyjson_mut_obj_add_int(doc, root, "timestamp", 1700000000000 + version);
	yyjson_mut_obj_add_int(doc, root, "version", version);
	char *s = yyjson_mut_write(doc, 0, len);
	assert_non_null(s);
	yyjson_mut_doc_free(doc);
	return s;
}

static ags_batch_encoder *new_encoder(const ags_batch_encoder_opts *o)
{
	ags_batch_encoder *e = NULL;
	assert_int_equal(ags_batch_encoder_new(o, &e), 0);
	assert_non_null(e);
	return e;
}

/*
 * Decodes a payload and returns the first refusal: the whole batch's, or
 * that of the first entry of the wrong shape (refused alone, the batch still
 * decodes: docs/PROTOCOL.md, "Receiving a BATCH", step 5), with *err set.
 * *whole says which.
 */
static int decode_refusal(const ags_frame_buf *p, const ags_batch_limits *lim, ags_error *err,
                          int *whole)
{
	ags_batch b;
	int rc = ags_batch_decode(p->data, p->len, lim, &b, err);
	*whole = rc != 0;
	if (rc)
		return rc;
	for (size_t i = 0; i < b.n_entries && !rc; i++) {
		if (b.entries[i].kind != AGS_BATCH_BAD)
			continue;
		assert_non_null(b.entries[i].bad);
		*err = *b.entries[i].bad;
		rc = err->code;
		assert_true(rc == AGS_ERR_PROTO || rc == AGS_ERR_TOO_LARGE);
	}
	ags_batch_free(&b);
	return rc;
}

/* Checks the frame header of an encoded BATCH and decodes its payload. */
static int decode_frame(const uint8_t *frame, size_t len, const ags_batch_limits *lim, ags_batch *b,
                        ags_error *err)
{
	ags_frame_header h;
	assert_true(len >= AGS_FRAME_HEADER_LEN);
	assert_int_equal(ags_frame_header_check(frame, 0, &h, NULL, NULL), 0);
	assert_int_equal(h.type, AGS_FRAME_BATCH);
	assert_int_equal(h.length, len - AGS_FRAME_HEADER_LEN);
	return ags_batch_decode(frame + AGS_FRAME_HEADER_LEN, len - AGS_FRAME_HEADER_LEN, lim, b,
	                        err);
}

/* Compresses `raw` with `codec` into a malloc'd buffer. */
static uint8_t *compress_with(int codec, const uint8_t *raw, size_t len, size_t *out_len)
{
	if (codec == AGS_CODEC_NONE) {
		uint8_t *p = malloc(len + 1);
		memcpy(p, raw, len);
		*out_len = len;
		return p;
	}
	if (codec == AGS_CODEC_ZSTD) {
		size_t cap = ZSTD_compressBound(len);
		uint8_t *p = malloc(cap);
		size_t r = ZSTD_compress(p, cap, raw, len, 1);
		assert_false(ZSTD_isError(r));
		*out_len = r;
		return p;
	}
	z_stream zs;
	memset(&zs, 0, sizeof(zs));
	assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
	size_t cap = deflateBound(&zs, len) + 64;
	uint8_t *p = malloc(cap);
	zs.next_in = (Bytef *)(uintptr_t)raw;
	zs.avail_in = (uInt)len;
	zs.next_out = p;
	zs.avail_out = (uInt)cap;
	assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
	*out_len = zs.total_out;
	deflateEnd(&zs);
	return p;
}

/*
 * Builds a BATCH payload by hand: `raw` compressed with `codec`, the header
 * saying `count` entries and `raw_len` bytes, with the true SHA-256 of raw.
 */
static void make_payload(ags_frame_buf *out, int codec, const char *raw, size_t raw_len,
                         uint32_t count, uint32_t declared_raw_len)
{
	ags_batch_header h = {
	    .request_id = 7,
	    .timestamp_ms = 1700000000000,
	    .upto_seq = 3,
	    .codec = (uint8_t)codec,
	    .source = SOURCE,
	    .source_len = (uint16_t)strlen(SOURCE),
	    .count = count,
	    .raw_len = declared_raw_len,
	};
	assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, raw, raw_len, h.sha256), 0);
	ags_frame_buf_init(out, 0);
	assert_int_equal(ags_batch_header_write(&h, out), 0);
	size_t n;
	uint8_t *body = compress_with(codec, (const uint8_t *)raw, raw_len, &n);
	assert_int_equal(ags_frame_buf_append(out, body, n), 0);
	free(body);
}

static size_t header_len(void)
{
	return AGS_BATCH_FIXED_HEAD + strlen(SOURCE) + AGS_BATCH_FIXED_TAIL;
}

/* Fills the encoder with 40 puts (every third no-relay) and 10 deletes. */
static void fill(ags_batch_encoder *e, char **texts, size_t *lens)
{
	for (int i = 0; i < 40; i++) {
		char id[32];
		snprintf(id, sizeof(id), "pattern_%d", i);
		texts[i] = pattern_json(id, i + 1, "repetitive enough to compress", &lens[i]);
		assert_int_equal(ags_batch_encoder_add_put(e, texts[i], lens[i], i % 3 == 0), 0);
	}
	for (int i = 0; i < 10; i++) {
		/* Ids that need escaping, and non-ASCII ones. */
		const char *id = i == 0 ? "quote\"back\\slash\ttab" : i == 1 ? "ключ-✓" : "del";
		assert_int_equal(ags_batch_encoder_add_del(e, id, i + 1, 1000 + i, i % 2), 0);
	}
	assert_int_equal(ags_batch_encoder_count(e), 50);
}

static void check_filled(const ags_batch *b, char **texts, size_t *lens)
{
	assert_int_equal(b->n_entries, 50);
	for (int i = 0; i < 40; i++) {
		const ags_batch_entry *en = &b->entries[i];
		assert_int_equal(en->kind, AGS_BATCH_PUT);
		assert_int_equal(en->no_relay, i % 3 == 0);
		assert_non_null(en->pattern);
		assert_null(en->id);
		/* Spliced as is: the pattern re-serialises to the very same text. */
		size_t n;
		char *s = yyjson_val_write(en->pattern, 0, &n);
		assert_non_null(s);
		assert_int_equal(n, lens[i]);
		assert_memory_equal(s, texts[i], n);
		free(s);
	}
	for (int i = 0; i < 10; i++) {
		const ags_batch_entry *en = &b->entries[40 + i];
		const char *id = i == 0 ? "quote\"back\\slash\ttab" : i == 1 ? "ключ-✓" : "del";
		assert_int_equal(en->kind, AGS_BATCH_DEL);
		assert_null(en->pattern);
		assert_string_equal(en->id, id);
		assert_int_equal(en->id_len, strlen(id));
		assert_int_equal(en->version, i + 1);
		assert_int_equal(en->timestamp, 1000 + i);
		assert_int_equal(en->no_relay, i % 2);
	}
}

static void round_trip_with_each_codec(void **state)
{
	(void)state;
	ags_batch_encoder *e = new_encoder(NULL);
	for (size_t c = 0; c < 3; c++) {
		char *texts[40];
		size_t lens[40];
		const uint8_t *frame;
		size_t flen;
		ags_batch_stats st;
		ags_batch b;
		ags_error err;

		ags_batch_encoder_begin(e);
		fill(e, texts, lens);
		size_t raw_len = ags_batch_encoder_raw_len(e);
		assert_int_equal(ags_batch_encoder_finish(e, 0xfedcba9876543210u, -5, 1234, SOURCE,
		                                          all_codecs[c], &frame, &flen, &st),
		                 0);
		assert_int_equal(st.codec_used, all_codecs[c]);
		assert_int_equal(st.count, 50);
		assert_int_equal(st.raw_len, raw_len);
		assert_int_equal(st.wire_len, flen);
		if (all_codecs[c] != AGS_CODEC_NONE)
			assert_true(st.wire_len < st.raw_len);

		int rc = decode_frame(frame, flen, NULL, &b, &err);
		if (rc)
			print_error("decode: %s (%s)\n", err.message, err.field);
		assert_int_equal(rc, 0);
		assert_int_equal(b.hdr.request_id, 0xfedcba9876543210u);
		assert_int_equal(b.hdr.timestamp_ms, -5);
		assert_int_equal(b.hdr.upto_seq, 1234);
		assert_int_equal(b.hdr.codec, all_codecs[c]);
		assert_string_equal(b.source, SOURCE);
		assert_int_equal(b.hdr.raw_len, raw_len);
		assert_int_equal(b.wire_len, flen - AGS_FRAME_HEADER_LEN);
		check_filled(&b, texts, lens);
		ags_batch_free(&b);
		for (int i = 0; i < 40; i++)
			free(texts[i]);
	}
	ags_batch_encoder_del(e);
}

static void empty_batch_round_trips(void **state)
{
	(void)state;
	ags_batch_encoder *e = new_encoder(NULL);
	const uint8_t *frame;
	size_t flen;
	ags_batch b;
	ags_batch_encoder_begin(e);
	assert_int_equal(ags_batch_encoder_raw_len(e), 2);
	assert_int_equal(
	    ags_batch_encoder_finish(e, 1, 2, 99, SOURCE, AGS_CODEC_ZSTD, &frame, &flen, NULL), 0);
	assert_int_equal(decode_frame(frame, flen, NULL, &b, NULL), 0);
	assert_int_equal(b.n_entries, 0);
	assert_int_equal(b.hdr.upto_seq, 99);
	assert_int_equal(b.hdr.codec, AGS_CODEC_NONE);
	ags_batch_free(&b);
	ags_batch_encoder_del(e);
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Appends the UTF-8 encoding of code point cp (no surrogates) to p. */
static size_t put_utf8(char *p, uint32_t cp)
{
	if (cp < 0x80) {
		p[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		p[0] = (char)(0xc0 | cp >> 6);
		p[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	p[0] = (char)(0xe0 | cp >> 12);
	p[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
	p[2] = (char)(0x80 | (cp & 0x3f));
	return 3;
}

/*
 * Random text whose bytes are spread over most byte values (ASCII and two-
 * and three-byte UTF-8): about 7.6 bits of entropy per byte, so neither gzip
 * nor zstd gets it under 90%.
 */
static char *random_text(size_t chars)
{
	uint64_t s = 0x9e3779b97f4a7c15u;
	char *t = malloc(chars * 3 + 1), *p = t;
	for (size_t i = 0; i < chars; i++) {
		uint64_t r = rng_next(&s);
		uint32_t cp;
		if (r % 4 < 2) {
			do
				cp = 0x20 + (uint32_t)(rng_next(&s) % 95);
			while (cp == '"' || cp == '\\' || cp == 0x7f);
		} else if (r % 4 == 2) {
			cp = 0x80 + (uint32_t)(rng_next(&s) % (0x800 - 0x80));
		} else {
			do
				cp = 0x800 + (uint32_t)(rng_next(&s) % (0x10000 - 0x800));
			while (cp >= 0xd800 && cp <= 0xdfff);
		}
		p += put_utf8(p, cp);
	}
	*p = '\0';
	return t;
}

static void compression_is_skipped_when_it_does_not_pay(void **state)
{
	(void)state;
	ags_batch_encoder *e = new_encoder(NULL);
	const uint8_t *frame;
	size_t flen;
	ags_batch_stats st;
	ags_batch b;

	/* Tiny body: under AGS_BATCH_COMPRESS_MIN bytes. */
	for (size_t c = 1; c < 3; c++) {
		ags_batch_encoder_begin(e);
		assert_int_equal(ags_batch_encoder_add_del(e, "x", 1, 0, 0), 0);
		assert_int_equal(
		    ags_batch_encoder_finish(e, 1, 1, 0, SOURCE, all_codecs[c], &frame, &flen, &st),
		    0);
		assert_int_equal(st.codec_used, AGS_CODEC_NONE);
		assert_true(st.raw_len < AGS_BATCH_COMPRESS_MIN);
		assert_int_equal(decode_frame(frame, flen, NULL, &b, NULL), 0);
		ags_batch_free(&b);
	}

	/* Incompressible body, and, as a control, a compressible one of the same size. */
	char *noise = random_text(12000);
	size_t noise_len = strlen(noise);
	char *same = malloc(noise_len + 1);
	memset(same, 'a', noise_len);
	same[noise_len] = '\0';
	for (size_t c = 1; c < 3; c++) {
		for (int control = 0; control < 2; control++) {
			size_t n;
			char *p = pattern_json("noisy", 1, control ? same : noise, &n);
			ags_batch_encoder_begin(e);
			assert_int_equal(ags_batch_encoder_add_put(e, p, n, 0), 0);
			assert_int_equal(ags_batch_encoder_finish(e, 1, 1, 0, SOURCE, all_codecs[c],
			                                          &frame, &flen, &st),
			                 0);
			assert_int_equal(st.codec_used, control ? all_codecs[c] : AGS_CODEC_NONE);
			assert_int_equal(decode_frame(frame, flen, NULL, &b, NULL), 0);
			assert_int_equal(b.n_entries, 1);
			ags_batch_free(&b);
			free(p);
		}
	}
	free(noise);
	free(same);
	ags_batch_encoder_del(e);
}

/* Encodes the standard 50-entry batch with `codec`; *out gets a copy of the payload. */
static void standard_payload(int codec, ags_frame_buf *out)
{
	ags_batch_encoder *e = new_encoder(NULL);
	char *texts[40];
	size_t lens[40];
	const uint8_t *frame;
	size_t flen;
	ags_batch_stats st;
	ags_batch_encoder_begin(e);
	fill(e, texts, lens);
	assert_int_equal(ags_batch_encoder_finish(e, 1, 2, 3, SOURCE, codec, &frame, &flen, &st),
	                 0);
	assert_int_equal(st.codec_used, codec);
	ags_frame_buf_init(out, 0);
	assert_int_equal(
	    ags_frame_buf_append(out, frame + AGS_FRAME_HEADER_LEN, flen - AGS_FRAME_HEADER_LEN),
	    0);
	for (int i = 0; i < 40; i++)
		free(texts[i]);
	ags_batch_encoder_del(e);
}

static void flipped_body_byte_is_caught(void **state)
{
	(void)state;
	for (size_t c = 0; c < 3; c++) {
		ags_frame_buf p;
		ags_batch b;
		size_t raw_len, detected = 0;
		standard_payload(all_codecs[c], &p);
		assert_int_equal(ags_batch_decode(p.data, p.len, NULL, &b, NULL), 0);
		char *raw = yyjson_write(b.doc, 0, &raw_len);
		ags_batch_free(&b);
		size_t hl = header_len();
		for (size_t i = hl; i < p.len; i++) {
			ags_error err;
			p.data[i] ^= 0x20;
			int rc = ags_batch_decode(p.data, p.len, NULL, &b, &err);
			p.data[i] ^= 0x20;
			if (all_codecs[c] == AGS_CODEC_NONE)
				assert_int_equal(rc, AGS_ERR_CHECKSUM);
			if (rc == 0) {
				/* A byte the compressed format ignores (a gzip mtime, say): the
				 * content must then be exactly what was sent. */
				size_t n;
				char *got = yyjson_write(b.doc, 0, &n);
				assert_int_equal(n, raw_len);
				assert_memory_equal(got, raw, n);
				free(got);
				ags_batch_free(&b);
				continue;
			}
			assert_true(rc == AGS_ERR_CHECKSUM || rc == AGS_ERR_COMPRESS);
			assert_null(b.entries);
			assert_null(b.doc);
			detected++;
		}
		/* All but a handful of framing bytes change the content and are caught. */
		assert_true(detected + 16 >= p.len - hl);
		free(raw);
		ags_frame_buf_free(&p);
	}
}

static void wrong_checksum_field_is_caught(void **state)
{
	(void)state;
	for (size_t c = 0; c < 3; c++) {
		ags_frame_buf p;
		standard_payload(all_codecs[c], &p);
		size_t sha_off = header_len() - 32;
		for (size_t i = 0; i < 32; i += 31) {
			ags_batch b;
			ags_error err;
			p.data[sha_off + i] ^= 1;
			assert_int_equal(ags_batch_decode(p.data, p.len, NULL, &b, &err),
			                 AGS_ERR_CHECKSUM);
			assert_string_equal(err.field, "batch.sha256");
			p.data[sha_off + i] ^= 1;
		}
		ags_frame_buf_free(&p);
	}
}

static void truncation_at_every_offset_is_refused(void **state)
{
	(void)state;
	static const char *fields[] = {
	    "batch.requestId", "batch.timestamp", "batch.uptoSeq", "batch.codec",  "batch.flags",
	    "batch.sourceLen", "batch.source",    "batch.count",   "batch.rawLen", "batch.sha256"};
	for (size_t c = 0; c < 3; c++) {
		ags_frame_buf p;
		standard_payload(all_codecs[c], &p);
		size_t hl = header_len();
		for (size_t cut = 0; cut < p.len; cut++) {
			ags_batch b;
			ags_error err;
			/* A copy of exactly `cut` bytes, so the sanitizer sees any overread. */
			uint8_t *q = malloc(cut ? cut : 1);
			memcpy(q, p.data, cut);
			int rc = ags_batch_decode(q, cut, NULL, &b, &err);
			free(q);
			assert_true(rc < 0);
			if (cut < hl) {
				assert_int_equal(rc, AGS_ERR_PROTO);
				int named = 0;
				for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++)
					named |= strcmp(err.field, fields[f]) == 0;
				assert_true(named);
				assert_non_null(strstr(err.message, "truncated"));
			} else if (all_codecs[c] == AGS_CODEC_NONE) {
				assert_int_equal(rc, AGS_ERR_PROTO);
				assert_string_equal(err.field, "batch.rawLen");
			} else {
				assert_int_equal(rc, AGS_ERR_COMPRESS);
			}
		}
		ags_frame_buf_free(&p);
	}
}

/* Current resident set of this process, in KiB. */
static long rss_now_kib(void)
{
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%ld %ld", &pages, &resident), 2);
	fclose(f);
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/*
 * Decodes `p` in a child process and returns how far the child's peak
 * resident set rose above ours at the fork, in KiB (a peak, unlike the
 * current size, cannot be hidden by freeing before returning). *rc gets the
 * decode result.
 */
static long decode_in_child(const ags_frame_buf *p, int *rc)
{
	long base = rss_now_kib();
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		ags_batch b;
		int r = ags_batch_decode(p->data, p->len, NULL, &b, NULL);
		ags_batch_free(&b);
		_exit(r == 0 ? 0 : -r);
	}
	int status;
	struct rusage ru;
	assert_int_equal(wait4(pid, &status, 0, &ru), pid);
	assert_true(WIFEXITED(status));
	*rc = -WEXITSTATUS(status);
	return ru.ru_maxrss - base;
}

#define BOMB_BYTES (100u * 1024u * 1024u)
#define CHUNK      (1u << 20)

/* 100 MB of zeros as one zstd frame (no content size in its header), streamed. */
static uint8_t *zstd_bomb(size_t *len)
{
	ZSTD_CCtx *c = ZSTD_createCCtx();
	ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 3);
	uint8_t *zeros = calloc(1, CHUNK);
	size_t cap = 1 << 20, n = 0;
	uint8_t *out = malloc(cap);
	for (unsigned i = 0; i <= BOMB_BYTES / CHUNK; i++) {
		int last = i == BOMB_BYTES / CHUNK;
		ZSTD_inBuffer in = {zeros, last ? 0 : CHUNK, 0};
		size_t r;
		do {
			ZSTD_outBuffer o = {out + n, cap - n, 0};
			r = ZSTD_compressStream2(c, &o, &in, last ? ZSTD_e_end : ZSTD_e_continue);
			assert_false(ZSTD_isError(r));
			n += o.pos;
		} while (last ? r != 0 : in.pos < in.size);
	}
	ZSTD_freeCCtx(c);
	free(zeros);
	*len = n;
	return out;
}

/* 100 MB of zeros as one gzip member, streamed. */
static uint8_t *gzip_bomb(size_t *len)
{
	z_stream zs;
	memset(&zs, 0, sizeof(zs));
	assert_int_equal(deflateInit2(&zs, 9, Z_DEFLATED, 31, 9, Z_DEFAULT_STRATEGY), Z_OK);
	uint8_t *zeros = calloc(1, CHUNK);
	size_t cap = 1 << 20;
	uint8_t *out = malloc(cap);
	zs.next_out = out;
	zs.avail_out = (uInt)cap;
	for (unsigned i = 0; i <= BOMB_BYTES / CHUNK; i++) {
		int last = i == BOMB_BYTES / CHUNK;
		zs.next_in = zeros;
		zs.avail_in = last ? 0 : CHUNK;
		int zr = deflate(&zs, last ? Z_FINISH : Z_NO_FLUSH);
		assert_int_equal(zr, last ? Z_STREAM_END : Z_OK);
		assert_int_equal(zs.avail_in, 0);
	}
	*len = zs.total_out;
	deflateEnd(&zs);
	free(zeros);
	return out;
}

/* Decompresses by streaming through a small buffer; returns the output size. */
static size_t streamed_size(int codec, const uint8_t *src, size_t len)
{
	uint8_t buf[65536];
	size_t total = 0;
	if (codec == AGS_CODEC_ZSTD) {
		ZSTD_DCtx *d = ZSTD_createDCtx();
		ZSTD_inBuffer in = {src, len, 0};
		size_t r;
		do {
			ZSTD_outBuffer o = {buf, sizeof(buf), 0};
			r = ZSTD_decompressStream(d, &o, &in);
			assert_false(ZSTD_isError(r));
			total += o.pos;
		} while (r != 0);
		ZSTD_freeDCtx(d);
		return total;
	}
	z_stream zs;
	memset(&zs, 0, sizeof(zs));
	assert_int_equal(inflateInit2(&zs, 31), Z_OK);
	zs.next_in = (Bytef *)(uintptr_t)src;
	zs.avail_in = (uInt)len;
	int zr;
	do {
		zs.next_out = buf;
		zs.avail_out = sizeof(buf);
		zr = inflate(&zs, Z_NO_FLUSH);
		assert_true(zr == Z_OK || zr == Z_STREAM_END);
	} while (zr != Z_STREAM_END);
	total = zs.total_out;
	inflateEnd(&zs);
	return total;
}

static void bomb_payload(ags_frame_buf *out, int codec, const uint8_t *body, size_t len,
                         uint32_t declared)
{
	ags_batch_header h = {
	    .request_id = 1,
	    .codec = (uint8_t)codec,
	    .source = SOURCE,
	    .source_len = (uint16_t)strlen(SOURCE),
	    .count = 1,
	    .raw_len = declared,
	};
	ags_frame_buf_init(out, 0);
	assert_int_equal(ags_batch_header_write(&h, out), 0);
	assert_int_equal(ags_frame_buf_append(out, body, len), 0);
}

static void decompression_bomb_is_refused(int codec)
{
	size_t len;
	uint8_t *bomb = codec == AGS_CODEC_ZSTD ? zstd_bomb(&len) : gzip_bomb(&len);
	print_message("%s bomb: %zu bytes expanding to %u\n", ags_codec_name(codec), len,
	              BOMB_BYTES);
	assert_true(len < (codec == AGS_CODEC_ZSTD ? 8192u : 200u * 1024u));

	ags_frame_buf p;
	ags_batch b;
	ags_error err;
	int rc;
	bomb_payload(&p, codec, bomb, len, 1000);
	assert_int_equal(ags_batch_decode(p.data, p.len, NULL, &b, &err), AGS_ERR_COMPRESS);
	assert_string_equal(err.field, "batch.body");
	assert_non_null(strstr(err.message, "more than rawLen"));
	/* Refused without ever holding the 100 MB: the peak grew by far less. */
	long grown = decode_in_child(&p, &rc);
	assert_int_equal(rc, AGS_ERR_COMPRESS);
	print_message("peak RSS of a decoding child grew by %ld KiB\n", grown);
	assert_true(grown < 32 * 1024);
	ags_frame_buf_free(&p);

	/* Declared at its true size, which is over max_raw: refused before decompressing. */
	bomb_payload(&p, codec, bomb, len, BOMB_BYTES);
	assert_int_equal(ags_batch_decode(p.data, p.len, NULL, &b, &err), AGS_ERR_TOO_LARGE);
	assert_string_equal(err.field, "batch.rawLen");
	ags_batch_limits small = {.max_raw = 4096, .max_count = 10};
	ags_frame_buf_free(&p);
	bomb_payload(&p, codec, bomb, len, 4097);
	assert_int_equal(ags_batch_decode(p.data, p.len, &small, &b, &err), AGS_ERR_TOO_LARGE);
	ags_frame_buf_free(&p);

	/* And it really is a bomb. */
	assert_int_equal(streamed_size(codec, bomb, len), BOMB_BYTES);
	free(bomb);
}

/* One caller-owned ZSTD_DCtx serves many batches, a refused bomb in between included. */
static void reused_zstd_context_decodes_batch_after_batch(void **state)
{
	(void)state;
	ZSTD_DCtx *d = ZSTD_createDCtx();
	assert_non_null(d);
	ags_batch_limits lim = {.zstd_dctx = d};
	ags_frame_buf good, bomb;
	standard_payload(AGS_CODEC_ZSTD, &good);
	size_t blen;
	uint8_t *bbody = zstd_bomb(&blen);
	bomb_payload(&bomb, AGS_CODEC_ZSTD, bbody, blen, 1000);
	ags_batch b;
	ags_error err;
	/* What a decode with a context of its own gives. */
	assert_int_equal(ags_batch_decode(good.data, good.len, NULL, &b, &err), 0);
	size_t want = b.n_entries;
	assert_true(want > 0);
	ags_batch_free(&b);
	for (int round = 0; round < 3; round++) {
		assert_int_equal(ags_batch_decode(good.data, good.len, &lim, &b, &err), 0);
		assert_int_equal(b.n_entries, want);
		ags_batch_free(&b);
		assert_int_equal(ags_batch_decode(bomb.data, bomb.len, &lim, &b, &err),
		                 AGS_ERR_COMPRESS);
	}
	assert_int_equal(ags_batch_decode(good.data, good.len, &lim, &b, &err), 0);
	ags_batch_free(&b);
	free(bbody);
	ags_frame_buf_free(&good);
	ags_frame_buf_free(&bomb);
	ZSTD_freeDCtx(d);
}

static void zstd_bomb_is_refused(void **state)
{
	(void)state;
	decompression_bomb_is_refused(AGS_CODEC_ZSTD);
}

static void gzip_bomb_is_refused(void **state)
{
	(void)state;
	decompression_bomb_is_refused(AGS_CODEC_GZIP);
}

static void declared_length_must_match_exactly(void **state)
{
	(void)state;
	const char *raw = "[{\"p\":{\"id\":\"a\"}},{\"p\":{\"id\":\"b\"}}]";
	size_t n = strlen(raw);
	for (size_t c = 0; c < 3; c++) {
		for (int delta = -1; delta <= 1; delta += 2) {
			ags_frame_buf p;
			ags_batch b;
			ags_error err;
			make_payload(&p, all_codecs[c], raw, n, 2, (uint32_t)(n + delta));
			int rc = ags_batch_decode(p.data, p.len, NULL, &b, &err);
			assert_int_equal(rc, all_codecs[c] == AGS_CODEC_NONE ? AGS_ERR_PROTO
			                                                     : AGS_ERR_COMPRESS);
			ags_frame_buf_free(&p);
		}
		ags_frame_buf p;
		ags_batch b;
		make_payload(&p, all_codecs[c], raw, n, 2, (uint32_t)n);
		assert_int_equal(ags_batch_decode(p.data, p.len, NULL, &b, NULL), 0);
		assert_int_equal(b.n_entries, 2);
		ags_batch_free(&b);
		ags_frame_buf_free(&p);
	}
}

static void trailing_bytes_after_the_compressed_body_are_refused(void **state)
{
	(void)state;
	const char *raw = "[{\"p\":{\"id\":\"a\"}}]";
	for (size_t c = 1; c < 3; c++) {
		ags_frame_buf p;
		ags_batch b;
		make_payload(&p, all_codecs[c], raw, strlen(raw), 1, (uint32_t)strlen(raw));
		assert_int_equal(ags_frame_buf_append(&p, "xyz", 3), 0);
		assert_int_equal(ags_batch_decode(p.data, p.len, NULL, &b, NULL), AGS_ERR_COMPRESS);
		ags_frame_buf_free(&p);
	}
}

static void count_must_match_the_body(void **state)
{
	(void)state;
	const char *raw = "[{\"p\":{}},{\"d\":{\"id\":\"a\",\"version\":1,\"timestamp\":0}}]";
	static const uint32_t counts[] = {0, 1, 3};
	for (size_t i = 0; i < 3; i++) {
		ags_frame_buf p;
		ags_batch b;
		ags_error err;
		make_payload(&p, AGS_CODEC_NONE, raw, strlen(raw), counts[i],
		             (uint32_t)strlen(raw));
		assert_int_equal(ags_batch_decode(p.data, p.len, NULL, &b, &err), AGS_ERR_PROTO);
		assert_string_equal(err.field, "batch.count");
		ags_frame_buf_free(&p);
	}
}

static void entries_of_unknown_shape_are_refused(void **state)
{
	(void)state;
	static const struct {
		const char *raw;
		uint32_t count;
		int rc;
		const char *field;
	} cases[] = {
	    {"[{\"y\":1}]", 1, AGS_ERR_PROTO, "entries[0]"},
	    {"[{\"x\":1}]", 1, AGS_ERR_PROTO, "entries[0].x"},
	    {"[1]", 1, AGS_ERR_PROTO, "entries[0]"},
	    {"[{\"p\":{}},null]", 2, AGS_ERR_PROTO, "entries[1]"},
	    {"[{\"p\":{},\"d\":{\"id\":\"a\",\"version\":1,\"timestamp\":0}}]", 1, AGS_ERR_PROTO,
	     "entries[0]"},
	    {"[{\"p\":[]}]", 1, AGS_ERR_PROTO, "entries[0].p"},
	    {"[{\"p\":\"{}\"}]", 1, AGS_ERR_PROTO, "entries[0].p"},
	    {"[{\"p\":{},\"nr\":1}]", 1, AGS_ERR_PROTO, "entries[0].nr"},
	    {"[{\"p\":{},\"vc\":[]}]", 1, AGS_ERR_PROTO, "entries[0].vc"},
	    {"[{\"p\":{},\"vc\":{},\"vc\":{}}]", 1, AGS_ERR_PROTO, "entries[0].vc"},
	    {"[{\"p\":{},\"p\":{}}]", 1, AGS_ERR_PROTO, "entries[0].p"},
	    {"[{\"d\":\"x\"}]", 1, AGS_ERR_PROTO, "entries[0].d"},
	    {"[{\"p\":{}},{\"d\":{\"id\":\"\",\"version\":1,\"timestamp\":0}}]", 2, AGS_ERR_PROTO,
	     "entries[1].d.id"},
	    {"[{\"d\":{\"id\":5,\"version\":1,\"timestamp\":0}}]", 1, AGS_ERR_PROTO,
	     "entries[0].d.id"},
	    {"[{\"d\":{\"id\":\"a\\u0000b\",\"version\":1,\"timestamp\":0}}]", 1, AGS_ERR_PROTO,
	     "entries[0].d.id"},
	    {"[{\"d\":{\"id\":\"a\",\"version\":0,\"timestamp\":0}}]", 1, AGS_ERR_PROTO,
	     "entries[0].d.version"},
	    {"[{\"d\":{\"id\":\"a\",\"version\":1.5,\"timestamp\":0}}]", 1, AGS_ERR_PROTO,
	     "entries[0].d.version"},
	    {"[{\"d\":{\"id\":\"a\",\"version\":9223372036854775808,\"timestamp\":0}}]", 1,
	     AGS_ERR_PROTO, "entries[0].d.version"},
	    {"[{\"d\":{\"id\":\"a\",\"timestamp\":0}}]", 1, AGS_ERR_PROTO, "entries[0].d.version"},
	    {"[{\"d\":{\"id\":\"a\",\"version\":1,\"timestamp\":-1}}]", 1, AGS_ERR_PROTO,
	     "entries[0].d.timestamp"},
	    {"[{\"d\":{\"id\":\"a\",\"id\":\"b\",\"version\":1,\"timestamp\":0}}]", 1,
	     AGS_ERR_PROTO, "entries[0].d"},
	    {"{\"p\":{}}", 1, AGS_ERR_PROTO, "batch.body"},
	    {"[{\"p\":{}}", 1, AGS_ERR_JSON, "batch.body"},
	    {"[{\"p\":{}}]]", 1, AGS_ERR_JSON, "batch.body"},
	    {"[{\"p\":{\"a\":NaN}}]", 1, AGS_ERR_JSON, "batch.body"},
	    {"[{\"p\":{\"a\":\"\xff\"}}]", 1, AGS_ERR_JSON, "batch.body"},
	    /* Unknown members are ignored. */
	    {"[{\"p\":{},\"zz\":1},{\"d\":{\"id\":\"a\",\"version\":1,\"timestamp\":0,\"x\":[]}}]",
	     2, 0, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ags_frame_buf p;
		ags_batch b;
		ags_error err;
		size_t n = strlen(cases[i].raw);
		make_payload(&p, AGS_CODEC_NONE, cases[i].raw, n, cases[i].count, (uint32_t)n);
		int whole = 0;
		int rc = decode_refusal(&p, NULL, &err, &whole);
		if (rc != cases[i].rc)
			print_error("case %zu: %s: got %d (%s)\n", i, cases[i].raw, rc,
			            err.message);
		assert_int_equal(rc, cases[i].rc);
		if (rc) {
			assert_string_equal(err.field, cases[i].field);
			/* An entry's shape refuses that entry alone; the body, the whole batch. */
			assert_int_equal(whole, strncmp(cases[i].field, "entries[", 8) != 0);
			if (rc == AGS_ERR_JSON)
				assert_true(err.offset <= n);
		}
		(void)b;
		ags_frame_buf_free(&p);
	}
}

static void header_fields_are_checked(void **state)
{
	(void)state;
	const char *raw = "[{\"p\":{}}]";
	size_t n = strlen(raw);
	size_t src_len = strlen(SOURCE);
	ags_frame_buf p;
	ags_batch b;
	ags_error err;

	/* Unknown codec. */
	make_payload(&p, AGS_CODEC_NONE, raw, n, 1, (uint32_t)n);
	p.data[24] = 3;
	assert_int_equal(ags_batch_decode(p.data, p.len, NULL, &b, &err), AGS_ERR_UNSUPPORTED);
	assert_string_equal(err.field, "batch.codec");
	p.data[24] = 0xff;
	assert_int_equal(ags_batch_decode(p.data, p.len, NULL, &b, &err), AGS_ERR_UNSUPPORTED);
	p.data[24] = 0;
	/* Flags. */
	p.data[25] = 1;
	assert_int_equal(ags_batch_decode(p.data, p.len, NULL, &b, &err), AGS_ERR_PROTO);
	assert_string_equal(err.field, "batch.flags");
	p.data[25] = 0;
	/* A control character in the source. */
	p.data[28] = '\n';
	assert_int_equal(ags_batch_decode(p.data, p.len, NULL, &b, &err), AGS_ERR_PROTO);
	assert_string_equal(err.field, "batch.source");
	p.data[28] = SOURCE[0];
	/* Source length 0 and 257. */
	p.data[26] = 0;
	p.data[27] = 0;
	assert_int_equal(ags_batch_decode(p.data, p.len, NULL, &b, &err), AGS_ERR_PROTO);
	assert_string_equal(err.field, "batch.sourceLen");
	p.data[26] = 1;
	p.data[27] = 1;
	assert_int_equal(ags_batch_decode(p.data, p.len, NULL, &b, &err), AGS_ERR_PROTO);
	assert_string_equal(err.field, "batch.sourceLen");
	p.data[26] = 0;
	p.data[27] = (uint8_t)src_len;
	/* Count over the limit. */
	ags_batch_limits lim = {.max_count = 1};
	assert_int_equal(ags_batch_decode(p.data, p.len, &lim, &b, &err), 0);
	ags_batch_free(&b);
	p.data[28 + src_len + 3] = 2;
	assert_int_equal(ags_batch_decode(p.data, p.len, &lim, &b, &err), AGS_ERR_TOO_LARGE);
	assert_string_equal(err.field, "batch.count");
	ags_frame_buf_free(&p);
}

static void encoder_limits_and_misuse(void **state)
{
	(void)state;
	ags_batch_encoder_opts o = {.max_count = 3};
	ags_batch_encoder *e = new_encoder(&o);
	const uint8_t *frame;
	size_t flen;
	ags_batch b;

	assert_int_equal(ags_batch_encoder_add_put(e, "{}", 2, 0), AGS_ERR_STATE);
	assert_int_equal(ags_batch_encoder_finish(e, 1, 1, 0, SOURCE, 0, &frame, &flen, NULL),
	                 AGS_ERR_STATE);
	ags_batch_encoder_begin(e);
	assert_int_equal(ags_batch_encoder_add_put(e, "[]", 2, 0), AGS_ERR_INVALID);
	assert_int_equal(ags_batch_encoder_add_put(e, "  ", 2, 0), AGS_ERR_INVALID);
	assert_int_equal(ags_batch_encoder_add_del(e, "", 1, 0, 0), AGS_ERR_INVALID);
	assert_int_equal(ags_batch_encoder_add_del(e, "x", 0, 0, 0), AGS_ERR_INVALID);
	assert_int_equal(ags_batch_encoder_add_del(e, "bad\xff", 1, 0, 0), AGS_ERR_INVALID);
	assert_int_equal(ags_batch_encoder_count(e), 0);
	assert_int_equal(ags_batch_encoder_add_put(e, " {\"id\":\"a\"}\n", 12, 0), 0);
	assert_int_equal(ags_batch_encoder_add_put(e, "{\"id\":\"b\"}", 10, 1), 0);
	assert_int_equal(ags_batch_encoder_add_del(e, "c", 1, 0, 0), 0);
	assert_int_equal(ags_batch_encoder_add_del(e, "d", 1, 0, 0), AGS_ERR_TOO_LARGE);
	assert_int_equal(ags_batch_encoder_finish(e, 1, 1, 0, "", 0, &frame, &flen, NULL),
	                 AGS_ERR_INVALID);
	assert_int_equal(ags_batch_encoder_finish(e, 1, 1, 0, "a\tb", 0, &frame, &flen, NULL),
	                 AGS_ERR_INVALID);
	assert_int_equal(ags_batch_encoder_finish(e, 1, 1, 0, SOURCE, 3, &frame, &flen, NULL),
	                 AGS_ERR_INVALID);
	assert_int_equal(ags_batch_encoder_finish(e, 1, 1, 0, SOURCE, 0, &frame, &flen, NULL), 0);
	assert_int_equal(ags_batch_encoder_finish(e, 1, 1, 0, SOURCE, 0, &frame, &flen, NULL),
	                 AGS_ERR_STATE);
	assert_int_equal(decode_frame(frame, flen, NULL, &b, NULL), 0);
	assert_int_equal(b.n_entries, 3);
	assert_string_equal(yyjson_get_str(yyjson_obj_get(b.entries[0].pattern, "id")), "a");
	assert_int_equal(b.entries[1].no_relay, 1);
	assert_string_equal(b.entries[2].id, "c");
	ags_batch_free(&b);
	ags_batch_encoder_del(e);

	/* The raw body never passes max_raw; the refused entry goes in the next batch. */
	ags_batch_encoder_opts small = {.max_raw = 64};
	e = new_encoder(&small);
	ags_batch_encoder_begin(e);
	const char *pat = "{\"id\":\"0123456789\"}"; /* {"p":...} is 26 bytes */
	assert_int_equal(ags_batch_encoder_add_put(e, pat, strlen(pat), 0), 0);
	assert_int_equal(ags_batch_encoder_add_put(e, pat, strlen(pat), 0), 0);
	assert_int_equal(ags_batch_encoder_add_put(e, pat, strlen(pat), 0), AGS_ERR_TOO_LARGE);
	assert_true(ags_batch_encoder_raw_len(e) <= 64);
	assert_int_equal(
	    ags_batch_encoder_finish(e, 1, 1, 0, SOURCE, AGS_CODEC_GZIP, &frame, &flen, NULL), 0);
	assert_int_equal(decode_frame(frame, flen, NULL, &b, NULL), 0);
	assert_int_equal(b.n_entries, 2);
	assert_true(b.hdr.raw_len <= 64);
	ags_batch_free(&b);
	ags_batch_encoder_del(e);

	/* Options out of range. */
	ags_batch_encoder_opts bad[] = {{.zstd_level = 4},
	                                {.gzip_level = 7},
	                                {.max_frame = 1000},
	                                {.max_frame = AGS_FRAME_MAX_HARD + 1}};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ags_batch_encoder *x = NULL;
		assert_int_equal(ags_batch_encoder_new(&bad[i], &x), AGS_ERR_INVALID);
		assert_null(x);
	}
}

static void encoder_is_reusable(void **state)
{
	(void)state;
	ags_batch_encoder *e = new_encoder(NULL);
	for (int round = 0; round < 30; round++) {
		int codec = all_codecs[round % 3];
		const uint8_t *frame;
		size_t flen;
		ags_batch_stats st;
		ags_batch b;
		ags_batch_encoder_begin(e);
		for (int i = 0; i <= round; i++) {
			char id[32];
			size_t n;
			snprintf(id, sizeof(id), "r%d-%d", round, i);
			char *p = pattern_json(id, 1, "again", &n);
			assert_int_equal(ags_batch_encoder_add_put(e, p, n, 0), 0);
			free(p);
		}
		assert_int_equal(ags_batch_encoder_finish(e, (uint64_t)round, 0, 0, SOURCE, codec,
		                                          &frame, &flen, &st),
		                 0);
		assert_int_equal(decode_frame(frame, flen, NULL, &b, NULL), 0);
		assert_int_equal(b.n_entries, (size_t)round + 1);
		assert_int_equal(b.hdr.request_id, (uint64_t)round);
		ags_batch_free(&b);
	}
	ags_batch_encoder_del(e);
}

static void record_clocks_travel_with_entries(void **state)
{
	(void)state;
	ags_batch_encoder *e = new_encoder(NULL);
	const uint8_t *frame;
	size_t flen, n;
	ags_batch b;
	ags_batch_encoder_begin(e);
	char *p = pattern_json("v1", 1, "clock", &n);
	const char *vc = "{\"agent-1\":3,\"agent-2\":1}";
	assert_int_equal(ags_batch_encoder_add_put_vc(e, p, n, 1, vc, strlen(vc)), 0);
	assert_int_equal(ags_batch_encoder_add_del_vc(e, "gone", 2, 5, 0, vc, strlen(vc)), 0);
	assert_int_equal(ags_batch_encoder_add_put_vc(e, p, n, 0, NULL, 0), 0);
	assert_int_equal(ags_batch_encoder_add_put_vc(e, p, n, 0, "[1]", 3), AGS_ERR_INVALID);
	free(p);
	assert_int_equal(
	    ags_batch_encoder_finish(e, 1, 0, 0, SOURCE, AGS_CODEC_ZSTD, &frame, &flen, NULL), 0);
	assert_int_equal(decode_frame(frame, flen, NULL, &b, NULL), 0);
	assert_int_equal(b.n_entries, 3);
	for (int i = 0; i < 2; i++) {
		assert_non_null(b.entries[i].vc);
		assert_true(yyjson_is_obj(b.entries[i].vc));
		assert_int_equal(yyjson_get_uint(yyjson_obj_get(b.entries[i].vc, "agent-1")), 3);
	}
	assert_true(b.entries[0].no_relay);
	assert_int_equal(b.entries[1].kind, AGS_BATCH_DEL);
	assert_null(b.entries[2].vc);
	ags_batch_free(&b);
	ags_batch_encoder_del(e);
}

#define SUM63 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde"
#define SUM64 SUM63 "f"
static const char sum64[] = SUM64;

static void delta_entry_round_trips(void **state)
{
	(void)state;
	size_t blen, flen;
	char note[4000];
	memset(note, 'n', sizeof(note) - 1);
	note[sizeof(note) - 1] = '\0';
	char *base = pattern_json("big", 1, note, &blen);
	note[100] = 'X';
	char *full = pattern_json("big", 2, note, &flen);
	char *b64 = NULL;
	size_t b64_len = 0;
	assert_int_equal(ags_delta_make(base, blen, full, flen, flen / 2, &b64, &b64_len), 0);
	assert_true(b64_len < flen / 4);
	for (int c = 0; c < 3; c++) {
		ags_batch_encoder *e = new_encoder(NULL);
		const uint8_t *frame;
		size_t fl;
		ags_batch b;
		ags_batch_encoder_begin(e);
		const char *vc = "{\"n\":2}";
		assert_int_equal(ags_batch_encoder_add_delta(e, "big", 2, 1, sum64, b64, b64_len,
		                                             flen, 1, vc, strlen(vc)),
		                 0);
		assert_int_equal(ags_batch_encoder_add_del(e, "gone", 3, 5, 0), 0);
		assert_int_equal(
		    ags_batch_encoder_finish(e, 7, 0, 9, SOURCE, all_codecs[c], &frame, &fl, NULL),
		    0);
		assert_int_equal(decode_frame(frame, fl, NULL, &b, NULL), 0);
		assert_int_equal(b.n_entries, 2);
		ags_batch_entry *x = &b.entries[0];
		assert_int_equal(x->kind, AGS_BATCH_DELTA);
		assert_int_equal(x->id_len, 3);
		assert_memory_equal(x->id, "big", 3);
		assert_int_equal(x->version, 2);
		assert_int_equal(x->base_version, 1);
		assert_string_equal(x->base_checksum, sum64);
		assert_int_equal(x->size, flen);
		assert_true(x->no_relay);
		assert_non_null(x->vc);
		assert_int_equal(x->delta_len, b64_len);
		char *out = NULL;
		assert_int_equal(ags_delta_apply(base, blen, x->delta, x->delta_len, x->size, &out),
		                 0);
		assert_memory_equal(out, full, flen);
		free(out);
		/* Against another base it gives something else (the receiver's pattern
		 * checks catch that); to another size it does not apply. */
		size_t olen;
		char *other = pattern_json("other", 1, "short", &olen);
		int rc = ags_delta_apply(other, olen, x->delta, x->delta_len, x->size, &out);
		free(other);
		assert_true(rc == AGS_ERR_COMPRESS || (rc == 0 && memcmp(out, full, flen) != 0));
		free(out);
		out = NULL;
		assert_int_equal(
		    ags_delta_apply(base, blen, x->delta, x->delta_len, x->size - 1, &out),
		    AGS_ERR_COMPRESS);
		assert_int_equal(
		    ags_delta_apply(base, blen, x->delta, x->delta_len, x->size + 1, &out),
		    AGS_ERR_COMPRESS);
		assert_null(out);
		assert_int_equal(b.entries[1].kind, AGS_BATCH_DEL);
		ags_batch_free(&b);
		ags_batch_encoder_del(e);
	}
	/* A delta that does not pay is not made. */
	free(b64);
	assert_int_equal(ags_delta_make(base, blen, full, flen, 8, &b64, &b64_len),
	                 AGS_ERR_TOO_LARGE);
	free(b64);
	free(base);
	free(full);
}

static void bad_delta_entries_are_refused(void **state)
{
	(void)state;
	char raw[1024];
	static const struct {
		const char *x;
		int rc;
		const char *field;
	} cases[] = {
	    {"{\"id\":\"a\",\"version\":2,\"base\":{\"version\":1,\"checksum\":\"" SUM64 "\"},"
	     "\"delta\":\"KLUv/Q==\",\"size\":10}",
	     0, NULL},
	    {"{\"id\":\"a\",\"version\":2,\"base\":{\"version\":1,\"checksum\":\"" SUM64 "\"},"
	     "\"delta\":\"KLU*/Q==\",\"size\":10}",
	     AGS_ERR_PROTO, "entries[0].x.delta"},
	    {"{\"id\":\"a\",\"version\":2,\"base\":{\"version\":1,\"checksum\":\"" SUM64 "\"},"
	     "\"delta\":\"KLUv/Q=\",\"size\":10}",
	     AGS_ERR_PROTO, "entries[0].x.delta"},
	    {"{\"id\":\"a\",\"version\":2,\"base\":{\"version\":1,\"checksum\":\"" SUM64 "\"},"
	     "\"delta\":\"\",\"size\":10}",
	     AGS_ERR_PROTO, "entries[0].x.delta"},
	    {"{\"id\":\"a\",\"version\":2,\"base\":{\"version\":1,\"checksum\":\"" SUM64 "\"},"
	     "\"delta\":\"KLUv/Q==\",\"size\":16777217}",
	     AGS_ERR_TOO_LARGE, "entries[0].x.size"},
	    {"{\"id\":\"a\",\"version\":2,\"base\":{\"version\":1,\"checksum\":\"" SUM64 "\"},"
	     "\"delta\":\"KLUv/Q==\",\"size\":0}",
	     AGS_ERR_PROTO, "entries[0].x.size"},
	    {"{\"id\":\"a\",\"version\":2,\"delta\":\"KLUv/Q==\",\"size\":10,\"z\":\"" SUM64 "\"}",
	     AGS_ERR_PROTO, "entries[0].x.base"},
	    {"{\"id\":\"a\",\"version\":2,\"base\":{\"checksum\":\"" SUM64 "\"},"
	     "\"delta\":\"KLUv/Q==\",\"size\":10}",
	     AGS_ERR_PROTO, "entries[0].x.base.version"},
	    {"{\"id\":\"a\",\"version\":2,\"base\":{\"version\":2,\"checksum\":\"" SUM64 "\"},"
	     "\"delta\":\"KLUv/Q==\",\"size\":10}",
	     AGS_ERR_PROTO, "entries[0].x.base.version"},
	    {"{\"id\":\"a\",\"version\":2,\"base\":{\"version\":1,\"checksum\":\"" SUM63 "\"},"
	     "\"delta\":\"KLUv/Q==\",\"size\":10}",
	     AGS_ERR_PROTO, "entries[0].x.base.checksum"},
	    {"{\"version\":2,\"base\":{\"version\":1,\"checksum\":\"" SUM64 "\"},"
	     "\"delta\":\"KLUv/Q==\",\"size\":10}",
	     AGS_ERR_PROTO, "entries[0].x.id"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(raw, sizeof(raw), "[{\"x\":%s}]", cases[i].x);
		ags_frame_buf p;
		ags_batch b;
		ags_error err;
		size_t n = strlen(raw);
		make_payload(&p, AGS_CODEC_NONE, raw, n, 1, (uint32_t)n);
		int whole = 0;
		int rc = decode_refusal(&p, NULL, &err, &whole);
		if (rc != cases[i].rc)
			print_error("case %zu: %s: got %d (%s)\n", i, raw, rc, err.message);
		assert_int_equal(rc, cases[i].rc);
		if (rc) {
			assert_string_equal(err.field, cases[i].field);
			assert_false(whole); /* refused alone */
		}
		(void)b;
		ags_frame_buf_free(&p);
	}
	/* The decoder's max_raw bounds "size" too. */
	snprintf(raw, sizeof(raw),
	         "[{\"x\":{\"id\":\"a\",\"version\":2,\"base\":{\"version\":1,\"checksum\":"
	         "\"" SUM64 "\"},\"delta\":\"KLUv/Q==\",\"size\":5000}}]");
	ags_frame_buf p;
	ags_batch b;
	ags_error err;
	size_t n = strlen(raw);
	make_payload(&p, AGS_CODEC_NONE, raw, n, 1, (uint32_t)n);
	ags_batch_limits lim = {.max_raw = 4096};
	int whole = 0;
	(void)b;
	assert_int_equal(decode_refusal(&p, &lim, &err, &whole), AGS_ERR_TOO_LARGE);
	assert_false(whole);
	assert_string_equal(err.field, "entries[0].x.size");
	ags_frame_buf_free(&p);
}

static void codec_names(void **state)
{
	(void)state;
	for (size_t c = 0; c < 3; c++)
		assert_int_equal(ags_codec_from_name(ags_codec_name(all_codecs[c])), all_codecs[c]);
	assert_int_equal(ags_codec_from_name("brotli"), -1);
	assert_string_equal(ags_codec_name(9), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    /* The bombs first, while the process's peak RSS is still low. */
	    cmocka_unit_test(zstd_bomb_is_refused),
	    cmocka_unit_test(reused_zstd_context_decodes_batch_after_batch),
	    cmocka_unit_test(gzip_bomb_is_refused),
	    cmocka_unit_test(round_trip_with_each_codec),
	    cmocka_unit_test(empty_batch_round_trips),
	    cmocka_unit_test(compression_is_skipped_when_it_does_not_pay),
	    cmocka_unit_test(flipped_body_byte_is_caught),
	    cmocka_unit_test(wrong_checksum_field_is_caught),
	    cmocka_unit_test(truncation_at_every_offset_is_refused),
	    cmocka_unit_test(declared_length_must_match_exactly),
	    cmocka_unit_test(trailing_bytes_after_the_compressed_body_are_refused),
	    cmocka_unit_test(count_must_match_the_body),
	    cmocka_unit_test(entries_of_unknown_shape_are_refused),
	    cmocka_unit_test(header_fields_are_checked),
	    cmocka_unit_test(encoder_limits_and_misuse),
	    cmocka_unit_test(encoder_is_reusable),
	    cmocka_unit_test(record_clocks_travel_with_entries),
	    cmocka_unit_test(codec_names),
	    cmocka_unit_test(delta_entry_round_trips),
	    cmocka_unit_test(bad_delta_entries_are_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
