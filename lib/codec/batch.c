/* SPDX-License-Identifier: Apache-2.0 */
/* BATCH frames: the header and the strict decoder (the encoder is in batch_enc.c). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "batch.h"
#include "delta.h"
#include "error.h"

#define SHA256_LEN 32

const char *ags_codec_name(int codec)
{
	switch (codec) {
	case AGS_CODEC_NONE:
		return "none";
	case AGS_CODEC_GZIP:
		return "gzip";
	case AGS_CODEC_ZSTD:
		return "zstd";
	default:
		return "unknown";
	}
}

int ags_codec_from_name(const char *name)
{
	if (!name)
		return -1;
	if (strcmp(name, "none") == 0)
		return AGS_CODEC_NONE;
	if (strcmp(name, "gzip") == 0)
		return AGS_CODEC_GZIP;
	if (strcmp(name, "zstd") == 0)
		return AGS_CODEC_ZSTD;
	return -1;
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

int ags_batch_header_write(const ags_batch_header *h, ags_frame_buf *out)
{
	if (!h || !out || (!h->source && h->source_len > 0))
		return AGS_ERR_INVALID;
	size_t n = AGS_BATCH_FIXED_HEAD + h->source_len + AGS_BATCH_FIXED_TAIL;
	int rc = ags_frame_buf_reserve(out, n);
	if (rc)
		return rc;
	uint8_t *p = out->data + out->len;
	put_be(p, h->request_id, 8);
	put_be(p + 8, (uint64_t)h->timestamp_ms, 8);
	put_be(p + 16, h->upto_seq, 8);
	p[24] = h->codec;
	p[25] = h->flags;
	put_be(p + 26, h->source_len, 2);
	if (h->source_len > 0)
		memcpy(p + 28, h->source, h->source_len);
	p += AGS_BATCH_FIXED_HEAD + h->source_len;
	put_be(p, h->count, 4);
	put_be(p + 4, h->raw_len, 4);
	memcpy(p + 8, h->sha256, SHA256_LEN);
	out->len += n;
	return 0;
}

/* Whether `s` (n bytes) is a usable node id: 1..256 bytes, no control characters. */
int ags_batch_source_ok(const char *s, size_t n)
{
	if (n == 0 || n > AGS_BATCH_SOURCE_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}

/* ------------------------------------------------------------------------ */
/* Decoder                                                                  */
/* ------------------------------------------------------------------------ */

/* A cursor over the payload header. */
typedef struct cursor {
	const uint8_t *p;
	size_t len;
	size_t off;
} cursor;

/* Checks that `n` bytes of `field` are there; refuses a truncated header. */
static int need(cursor *c, size_t n, const char *field, ags_error *err)
{
	if (c->len - c->off >= n)
		return 0;
	int rc = ags_error_set(err, AGS_ERR_PROTO, field,
	                       "truncated batch: %s needs %zu bytes at offset %zu, only %zu left",
	                       field, n, c->off, c->len - c->off);
	if (err)
		err->offset = c->off;
	return rc;
}

static uint64_t take_be(cursor *c, int n)
{
	uint64_t v = get_be(c->p + c->off, n);
	c->off += (size_t)n;
	return v;
}

static int parse_header(cursor *c, const ags_batch_limits *lim, ags_batch *b, ags_error *err)
{
	ags_batch_header *h = &b->hdr;
	int rc;

	if ((rc = need(c, 8, "batch.requestId", err)))
		return rc;
	h->request_id = take_be(c, 8);
	if ((rc = need(c, 8, "batch.timestamp", err)))
		return rc;
	h->timestamp_ms = (int64_t)take_be(c, 8);
	if ((rc = need(c, 8, "batch.uptoSeq", err)))
		return rc;
	h->upto_seq = take_be(c, 8);
	if ((rc = need(c, 1, "batch.codec", err)))
		return rc;
	h->codec = (uint8_t)take_be(c, 1);
	if (h->codec > AGS_CODEC_ZSTD)
		return ags_error_set(err, AGS_ERR_UNSUPPORTED, "batch.codec", "unknown codec %u",
		                     h->codec);
	if ((rc = need(c, 1, "batch.flags", err)))
		return rc;
	h->flags = (uint8_t)take_be(c, 1);
	if (h->flags != 0)
		return ags_error_set(err, AGS_ERR_PROTO, "batch.flags",
		                     "flags must be 0, got 0x%02x", h->flags);
	if ((rc = need(c, 2, "batch.sourceLen", err)))
		return rc;
	h->source_len = (uint16_t)take_be(c, 2);
	if (h->source_len == 0 || h->source_len > AGS_BATCH_SOURCE_MAX)
		return ags_error_set(err, AGS_ERR_PROTO, "batch.sourceLen",
		                     "source length must be 1-%d, got %u", AGS_BATCH_SOURCE_MAX,
		                     h->source_len);
	if ((rc = need(c, h->source_len, "batch.source", err)))
		return rc;
	if (!ags_batch_source_ok((const char *)c->p + c->off, h->source_len))
		return ags_error_set(err, AGS_ERR_PROTO, "batch.source",
		                     "source must not contain control characters");
	memcpy(b->source, c->p + c->off, h->source_len);
	b->source[h->source_len] = '\0';
	h->source = b->source;
	c->off += h->source_len;
	if ((rc = need(c, 4, "batch.count", err)))
		return rc;
	h->count = (uint32_t)take_be(c, 4);
	if (h->count > lim->max_count)
		return ags_error_set(err, AGS_ERR_TOO_LARGE, "batch.count",
		                     "%u entries, over the limit of %zu", h->count, lim->max_count);
	if ((rc = need(c, 4, "batch.rawLen", err)))
		return rc;
	h->raw_len = (uint32_t)take_be(c, 4);
	if (h->raw_len > lim->max_raw)
		return ags_error_set(err, AGS_ERR_TOO_LARGE, "batch.rawLen",
		                     "raw body of %u bytes, over the limit of %zu", h->raw_len,
		                     lim->max_raw);
	if ((rc = need(c, SHA256_LEN, "batch.sha256", err)))
		return rc;
	memcpy(h->sha256, c->p + c->off, SHA256_LEN);
	c->off += SHA256_LEN;
	return 0;
}

/*
 * Inflates exactly one gzip member into dst, which has room for raw_len + 1
 * bytes: filling that last byte means the body inflates to more than declared.
 */
static int inflate_gzip(const uint8_t *src, size_t src_len, uint8_t *dst, size_t raw_len,
                        ags_error *err)
{
	z_stream zs;
	memset(&zs, 0, sizeof(zs));
	if (src_len > UINT_MAX || raw_len >= UINT_MAX)
		return ags_error_set(err, AGS_ERR_TOO_LARGE, "batch.body",
		                     "gzip body too large for zlib");
	if (inflateInit2(&zs, 15 + 16) != Z_OK)
		return ags_error_set(err, AGS_ERR_NOMEM, "batch.body", "inflateInit2 failed");
	zs.next_in = (Bytef *)(uintptr_t)src;
	zs.avail_in = (uInt)src_len;
	zs.next_out = dst;
	zs.avail_out = (uInt)(raw_len + 1);
	int zr = inflate(&zs, Z_FINISH);
	size_t produced = zs.total_out;
	size_t left = zs.avail_in;
	char msg[96];
	snprintf(msg, sizeof(msg), "%s", zs.msg ? zs.msg : "");
	inflateEnd(&zs);

	if (produced > raw_len)
		return ags_error_set(err, AGS_ERR_COMPRESS, "batch.body",
		                     "gzip body inflates to more than rawLen (%zu bytes): refused",
		                     raw_len);
	if (zr == Z_STREAM_END) {
		if (produced != raw_len)
			return ags_error_set(err, AGS_ERR_COMPRESS, "batch.body",
			                     "gzip body inflates to %zu bytes, rawLen says %zu",
			                     produced, raw_len);
		if (left != 0)
			return ags_error_set(err, AGS_ERR_COMPRESS, "batch.body",
			                     "%zu bytes after the end of the gzip stream", left);
		return 0;
	}
	if (zr == Z_BUF_ERROR)
		return ags_error_set(err, AGS_ERR_COMPRESS, "batch.body",
		                     "gzip stream ends early, after %zu bytes", produced);
	if (zr == Z_MEM_ERROR)
		return ags_error_set(err, AGS_ERR_NOMEM, "batch.body", "out of memory in inflate");
	return ags_error_set(err, AGS_ERR_COMPRESS, "batch.body", "corrupt gzip data: %s",
	                     msg[0] ? msg : "inflate failed");
}

/* Decompresses zstd frames into dst, which has room for raw_len + 1 bytes. */
static int inflate_zstd(const uint8_t *src, size_t src_len, uint8_t *dst, size_t raw_len,
                        ZSTD_DCtx *reuse, ags_error *err)
{
	/* Only standard frames: legacy (pre-1.0) formats are not part of the protocol. */
	if (src_len < 4 || get_be(src, 4) != 0x28b52ffdu)
		return ags_error_set(err, AGS_ERR_COMPRESS, "batch.body",
		                     "zstd body does not start with a Zstandard frame");
	ZSTD_DCtx *d = reuse ? reuse : ZSTD_createDCtx();
	if (!d)
		return ags_error_set(err, AGS_ERR_NOMEM, "batch.body", "ZSTD_createDCtx failed");
	if (reuse)
		ZSTD_DCtx_reset(d, ZSTD_reset_session_and_parameters);
	size_t r = ZSTD_decompressDCtx(d, dst, raw_len + 1, src, src_len);
	if (!reuse)
		ZSTD_freeDCtx(d);
	if (ZSTD_isError(r)) {
		if (ZSTD_getErrorCode(r) == ZSTD_error_dstSize_tooSmall)
			return ags_error_set(
			    err, AGS_ERR_COMPRESS, "batch.body",
			    "zstd body decompresses to more than rawLen (%zu bytes): refused",
			    raw_len);
		if (ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation)
			return ags_error_set(err, AGS_ERR_NOMEM, "batch.body",
			                     "out of memory in zstd");
		return ags_error_set(err, AGS_ERR_COMPRESS, "batch.body", "corrupt zstd data: %s",
		                     ZSTD_getErrorName(r));
	}
	if (r > raw_len)
		return ags_error_set(
		    err, AGS_ERR_COMPRESS, "batch.body",
		    "zstd body decompresses to more than rawLen (%zu bytes): refused", raw_len);
	if (r != raw_len)
		return ags_error_set(err, AGS_ERR_COMPRESS, "batch.body",
		                     "zstd body decompresses to %zu bytes, rawLen says %zu", r,
		                     raw_len);
	return 0;
}

/* A non-negative-or-more integer in int64 range, at least `min`. */
static int get_i64(yyjson_val *v, int64_t min, int64_t *out)
{
	int64_t x;
	if (yyjson_is_uint(v)) {
		uint64_t u = yyjson_get_uint(v);
		if (u > INT64_MAX)
			return -1;
		x = (int64_t)u;
	} else if (yyjson_is_sint(v)) {
		x = yyjson_get_sint(v);
	} else {
		return -1;
	}
	if (x < min)
		return -1;
	*out = x;
	return 0;
}

static int key_is(yyjson_val *k, const char *name)
{
	size_t n = strlen(name);
	return yyjson_get_len(k) == n && memcmp(yyjson_get_str(k), name, n) == 0;
}

/* Refuses an entry, naming it: entries[i] or entries[i].<sub>. */
static int entry_fail(ags_error *err, size_t i, const char *sub, const char *msg)
{
	char field[64];
	if (sub)
		snprintf(field, sizeof(field), "entries[%zu].%s", i, sub);
	else
		snprintf(field, sizeof(field), "entries[%zu]", i);
	return ags_error_set(err, AGS_ERR_PROTO, field, "%s", msg);
}

/* Checks an entry's id (`field` names it: "d.id", "x.id") and stores it in e. */
static int parse_entry_id(yyjson_val *id, size_t i, const char *field, ags_batch_entry *e,
                          ags_error *err)
{
	if (!id || !yyjson_is_str(id))
		return entry_fail(err, i, field, "must be a string");
	const char *s = yyjson_get_str(id);
	size_t n = yyjson_get_len(id);
	if (n == 0 || n > AGS_PATTERN_ID_MAX)
		return entry_fail(err, i, field, "must be 1-256 bytes");
	if (memchr(s, '\0', n))
		return entry_fail(err, i, field, "must not contain NUL");
	e->id = s;
	e->id_len = n;
	return 0;
}

static int parse_del(yyjson_val *d, size_t i, ags_batch_entry *e, ags_error *err)
{
	yyjson_val *id = NULL, *ver = NULL, *ts = NULL, *k;
	yyjson_obj_iter it;

	if (!yyjson_is_obj(d))
		return entry_fail(err, i, "d", "a delete must be an object");
	yyjson_obj_iter_init(d, &it);
	while ((k = yyjson_obj_iter_next(&it))) {
		yyjson_val **slot = key_is(k, "id")          ? &id
		                    : key_is(k, "version")   ? &ver
		                    : key_is(k, "timestamp") ? &ts
		                                             : NULL;
		if (!slot)
			continue;
		if (*slot)
			return entry_fail(err, i, "d", "a member is given twice");
		*slot = yyjson_obj_iter_get_val(k);
	}
	int rc = parse_entry_id(id, i, "d.id", e, err);
	if (rc)
		return rc;
	if (!ver || get_i64(ver, 1, &e->version))
		return entry_fail(err, i, "d.version", "must be an integer >= 1");
	if (!ts || get_i64(ts, 0, &e->timestamp))
		return entry_fail(err, i, "d.timestamp", "must be an integer >= 0");
	e->kind = AGS_BATCH_DEL;
	return 0;
}

/* Whether s (n bytes) is 64 hexadecimal digits (a SHA-256). */
int ags_batch_hex64_ok(const char *s, size_t n)
{
	if (n != 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

static int parse_delta(yyjson_val *x, size_t i, size_t max_raw, ags_batch_entry *e, ags_error *err)
{
	yyjson_val *id = NULL, *ver = NULL, *base = NULL, *delta = NULL, *size = NULL, *k;
	yyjson_val *bv = NULL, *bc = NULL;
	yyjson_obj_iter it;

	if (!yyjson_is_obj(x))
		return entry_fail(err, i, "x", "a delta must be an object");
	yyjson_obj_iter_init(x, &it);
	while ((k = yyjson_obj_iter_next(&it))) {
		yyjson_val **slot = key_is(k, "id")        ? &id
		                    : key_is(k, "version") ? &ver
		                    : key_is(k, "base")    ? &base
		                    : key_is(k, "delta")   ? &delta
		                    : key_is(k, "size")    ? &size
		                                           : NULL;
		if (!slot)
			continue;
		if (*slot)
			return entry_fail(err, i, "x", "a member is given twice");
		*slot = yyjson_obj_iter_get_val(k);
	}
	int rc = parse_entry_id(id, i, "x.id", e, err);
	if (rc)
		return rc;
	if (!ver || get_i64(ver, 2, &e->version))
		return entry_fail(err, i, "x.version", "must be an integer >= 2");
	if (!base || !yyjson_is_obj(base))
		return entry_fail(err, i, "x.base", "must be an object");
	yyjson_obj_iter_init(base, &it);
	while ((k = yyjson_obj_iter_next(&it))) {
		yyjson_val **slot = key_is(k, "version") ? &bv : key_is(k, "checksum") ? &bc : NULL;
		if (!slot)
			continue;
		if (*slot)
			return entry_fail(err, i, "x.base", "a member is given twice");
		*slot = yyjson_obj_iter_get_val(k);
	}
	if (!bv || get_i64(bv, 1, &e->base_version) || e->base_version >= e->version)
		return entry_fail(err, i, "x.base.version",
		                  "must be an integer >= 1 and lower than x.version");
	if (!bc || !yyjson_is_str(bc) ||
	    !ags_batch_hex64_ok(yyjson_get_str(bc), yyjson_get_len(bc)))
		return entry_fail(err, i, "x.base.checksum", "must be 64 lowercase hex digits");
	e->base_checksum = yyjson_get_str(bc);
	int64_t sz = 0;
	if (!size || get_i64(size, 1, &sz))
		return entry_fail(err, i, "x.size", "must be an integer >= 1");
	if ((uint64_t)sz > max_raw || (uint64_t)sz > AGS_DELTA_SIZE_MAX) {
		char field[64];
		snprintf(field, sizeof(field), "entries[%zu].x.size", i);
		return ags_error_set(err, AGS_ERR_TOO_LARGE, field,
		                     "a delta of %lld bytes, over the limit of %zu", (long long)sz,
		                     max_raw < AGS_DELTA_SIZE_MAX ? max_raw
		                                                  : (size_t)AGS_DELTA_SIZE_MAX);
	}
	e->size = (size_t)sz;
	if (!delta || !yyjson_is_str(delta) ||
	    !ags_delta_b64_ok(yyjson_get_str(delta), yyjson_get_len(delta)))
		return entry_fail(err, i, "x.delta", "must be padded base64 text");
	e->delta = yyjson_get_str(delta);
	e->delta_len = yyjson_get_len(delta);
	e->kind = AGS_BATCH_DELTA;
	return 0;
}

static int parse_entry(yyjson_val *v, size_t i, size_t max_raw, ags_batch_entry *e, ags_error *err)
{
	yyjson_val *p = NULL, *d = NULL, *x = NULL, *nr = NULL, *vc = NULL, *k;
	yyjson_obj_iter it;

	memset(e, 0, sizeof(*e));
	if (!yyjson_is_obj(v))
		return entry_fail(err, i, NULL, "an entry must be an object");
	yyjson_obj_iter_init(v, &it);
	while ((k = yyjson_obj_iter_next(&it))) {
		yyjson_val **slot = key_is(k, "p")    ? &p
		                    : key_is(k, "d")  ? &d
		                    : key_is(k, "x")  ? &x
		                    : key_is(k, "nr") ? &nr
		                    : key_is(k, "vc") ? &vc
		                                      : NULL;
		if (!slot)
			continue;
		if (*slot)
			return entry_fail(err, i, yyjson_get_str(k), "is given twice");
		*slot = yyjson_obj_iter_get_val(k);
	}
	if (nr) {
		if (!yyjson_is_bool(nr))
			return entry_fail(err, i, "nr", "must be true or false");
		e->no_relay = yyjson_get_bool(nr);
	}
	if (vc && !yyjson_is_obj(vc))
		return entry_fail(err, i, "vc", "a vector clock must be an object");
	if ((p != NULL) + (d != NULL) + (x != NULL) > 1)
		return entry_fail(
		    err, i, NULL,
		    "has more than one of \"p\" (put), \"d\" (delete), \"x\" (delta)");
	if (!p && !d && !x)
		return entry_fail(err, i, NULL,
		                  "has none of \"p\" (put), \"d\" (delete), \"x\" (delta)");
	if (x) {
		int rc = parse_delta(x, i, max_raw, e, err);
		e->vc = vc;
		return rc;
	}
	if (d) {
		int rc = parse_del(d, i, e, err);
		e->vc = vc;
		return rc;
	}
	e->vc = vc;
	if (!yyjson_is_obj(p))
		return entry_fail(err, i, "p", "a pattern must be an object");
	e->kind = AGS_BATCH_PUT;
	e->pattern = p;
	return 0;
}

static int parse_body(const uint8_t *raw, size_t raw_len, size_t max_raw, ags_batch *b,
                      ags_error *err)
{
	yyjson_read_err rerr;
	b->doc = yyjson_read_opts((char *)(uintptr_t)raw, raw_len, YYJSON_READ_NOFLAG, NULL, &rerr);
	if (!b->doc) {
		if (rerr.code == YYJSON_READ_ERROR_MEMORY_ALLOCATION)
			return ags_error_set(err, AGS_ERR_NOMEM, "batch.body",
			                     "out of memory parsing the body");
		int rc = ags_error_set(err, AGS_ERR_JSON, "batch.body", "%s at byte %zu", rerr.msg,
		                       rerr.pos);
		if (err)
			err->offset = rerr.pos;
		return rc;
	}
	yyjson_val *root = yyjson_doc_get_root(b->doc);
	if (!yyjson_is_arr(root))
		return ags_error_set(err, AGS_ERR_PROTO, "batch.body",
		                     "the body must be a JSON array");
	size_t n = yyjson_arr_size(root);
	if (n != b->hdr.count)
		return ags_error_set(err, AGS_ERR_PROTO, "batch.count",
		                     "the body has %zu entries, the header says %u", n,
		                     b->hdr.count);
	if (n > 0) {
		b->entries = calloc(n, sizeof(*b->entries));
		if (!b->entries)
			return ags_error_set(err, AGS_ERR_NOMEM, "batch.body", "out of memory");
	}
	yyjson_arr_iter it;
	yyjson_arr_iter_init(root, &it);
	yyjson_val *v;
	b->n_entries = n;
	for (size_t i = 0; (v = yyjson_arr_iter_next(&it)); i++) {
		ags_error ee;
		ags_error_clear(&ee);
		ags_batch_entry *e = &b->entries[i];
		int rc = parse_entry(v, i, max_raw, e, &ee);
		if (rc == 0)
			continue;
		/* An entry of the wrong shape is refused alone (docs/PROTOCOL.md, step 5). */
		const char *id = e->id;
		size_t id_len = e->id_len;
		memset(e, 0, sizeof(*e));
		e->kind = AGS_BATCH_BAD;
		e->bad = malloc(sizeof(*e->bad));
		if (!e->bad)
			return ags_error_set(err, AGS_ERR_NOMEM, "batch.body", "out of memory");
		*e->bad = ee;
		e->id = id;
		e->id_len = id ? id_len : 0;
	}
	return 0;
}

int ags_batch_decode(const uint8_t *payload, size_t len, const ags_batch_limits *lim,
                     ags_batch *out, ags_error *err)
{
	ags_batch_limits l = {.max_raw = AGS_BATCH_MAX_RAW_DEFAULT,
	                      .max_count = AGS_BATCH_MAX_COUNT_DEFAULT};
	uint8_t *raw = NULL;
	int rc;

	if (!out)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "NULL batch");
	memset(out, 0, sizeof(*out));
	if (!payload && len > 0)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "NULL payload");
	static const uint8_t empty[1];
	if (!payload)
		payload = empty;
	if (lim && lim->max_raw)
		l.max_raw = lim->max_raw;
	if (lim && lim->max_count)
		l.max_count = lim->max_count;

	cursor c = {payload, len, 0};
	if ((rc = parse_header(&c, &l, out, err)))
		goto fail;
	const uint8_t *body = payload + c.off;
	size_t body_len = len - c.off;
	size_t raw_len = out->hdr.raw_len;
	const uint8_t *plain = body;

	if (out->hdr.codec == AGS_CODEC_NONE) {
		if (body_len != raw_len) {
			rc = ags_error_set(err, AGS_ERR_PROTO, "batch.rawLen",
			                   "uncompressed body is %zu bytes, rawLen says %zu",
			                   body_len, raw_len);
			goto fail;
		}
	} else {
		raw = malloc(raw_len + 1);
		if (!raw) {
			rc = ags_error_set(err, AGS_ERR_NOMEM, "batch.body", "out of memory");
			goto fail;
		}
		if (out->hdr.codec == AGS_CODEC_GZIP)
			rc = inflate_gzip(body, body_len, raw, raw_len, err);
		else
			rc = inflate_zstd(body, body_len, raw, raw_len,
			                  lim ? (ZSTD_DCtx *)lim->zstd_dctx : NULL, err);
		if (rc)
			goto fail;
		plain = raw;
	}

	uint8_t sum[SHA256_LEN];
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, plain, raw_len, sum) < 0) {
		rc =
		    ags_error_set(err, AGS_ERR_INTERNAL, "batch.sha256", "gnutls_hash_fast failed");
		goto fail;
	}
	if (memcmp(sum, out->hdr.sha256, SHA256_LEN) != 0) {
		rc = ags_error_set(err, AGS_ERR_CHECKSUM, "batch.sha256",
		                   "SHA-256 of the raw body does not match the header");
		goto fail;
	}
	if ((rc = parse_body(plain, raw_len, l.max_raw, out, err)))
		goto fail;
	free(raw);
	out->wire_len = len;
	return 0;

fail:
	free(raw);
	ags_batch_free(out);
	return rc;
}

void ags_batch_free(ags_batch *b)
{
	if (!b)
		return;
	for (size_t i = 0; b->entries && i < b->n_entries; i++)
		free(b->entries[i].bad);
	free(b->entries);
	yyjson_doc_free(b->doc);
	memset(b, 0, sizeof(*b));
}
