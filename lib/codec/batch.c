/* BATCH frames: the encoder (splice, hash, compress) and the strict decoder. */
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
static int source_ok(const char *s, size_t n)
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
	if (!source_ok((const char *)c->p + c->off, h->source_len))
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
	e->id = yyjson_get_str(id);
	e->id_len = yyjson_get_len(id);
	if (e->id_len == 0 || e->id_len > AGS_PATTERN_ID_MAX)
		return entry_fail(err, i, field, "must be 1-256 bytes");
	if (memchr(e->id, '\0', e->id_len))
		return entry_fail(err, i, field, "must not contain NUL");
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

static int hex64_ok(const char *s, size_t n)
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
	if (!bc || !yyjson_is_str(bc) || !hex64_ok(yyjson_get_str(bc), yyjson_get_len(bc)))
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
	for (size_t i = 0; (v = yyjson_arr_iter_next(&it)); i++) {
		int rc = parse_entry(v, i, max_raw, &b->entries[i], err);
		if (rc)
			return rc;
	}
	b->n_entries = n;
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
	free(b->entries);
	yyjson_doc_free(b->doc);
	memset(b, 0, sizeof(*b));
}

/* ------------------------------------------------------------------------ */
/* Encoder                                                                  */
/* ------------------------------------------------------------------------ */

enum { ENC_IDLE, ENC_OPEN, ENC_DONE };

struct ags_batch_encoder {
	ags_batch_encoder_opts o; /* effective options */
	ZSTD_CCtx *zc;
	z_stream zs;
	int zs_ready;
	ags_frame_buf raw;  /* "[" entries "," ... "]" */
	ags_frame_buf comp; /* compressed body */
	ags_frame_buf out;  /* the finished frame */
	size_t count;
	int state;
};

int ags_batch_encoder_new(const ags_batch_encoder_opts *opts, ags_batch_encoder **out)
{
	ags_batch_encoder_opts o = {0};
	ags_batch_encoder *e = NULL;

	if (!out)
		return AGS_ERR_INVALID;
	if (opts)
		o = *opts;
	if (o.max_frame == 0)
		o.max_frame = AGS_FRAME_MAX_DEFAULT;
	if (o.max_frame > AGS_FRAME_MAX_HARD || o.max_frame < AGS_FRAME_MAX_MIN)
		return AGS_ERR_INVALID;
	size_t ceiling = o.max_frame - AGS_BATCH_HEADER_MAX;
	if (o.max_raw == 0 || o.max_raw > ceiling)
		o.max_raw = ceiling;
	if (o.max_raw < 2)
		return AGS_ERR_INVALID;
	if (o.max_count == 0)
		o.max_count = AGS_BATCH_MAX_COUNT_DEFAULT;
	if (o.max_count > UINT32_MAX)
		return AGS_ERR_INVALID;
	if (o.zstd_level == 0)
		o.zstd_level = 1;
	if (o.gzip_level == 0)
		o.gzip_level = 6;
	if (o.zstd_level < 1 || o.zstd_level > 3 || o.gzip_level < 1 || o.gzip_level > 6)
		return AGS_ERR_INVALID;

	e = calloc(1, sizeof(*e));
	if (!e)
		return AGS_ERR_NOMEM;
	e->o = o;
	ags_frame_buf_init(&e->raw, o.max_raw);
	ags_frame_buf_init(&e->comp, o.max_raw);
	ags_frame_buf_init(&e->out, o.max_frame + AGS_FRAME_HEADER_LEN);
	int rc = AGS_ERR_NOMEM;
	/* begin writes "[" without a failure path: make sure there is room now. */
	if (ags_frame_buf_reserve(&e->raw, 2))
		goto fail;
	e->zc = ZSTD_createCCtx();
	if (!e->zc)
		goto fail;
	rc = AGS_ERR_COMPRESS;
	if (ZSTD_isError(ZSTD_CCtx_setParameter(e->zc, ZSTD_c_compressionLevel, o.zstd_level)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(e->zc, ZSTD_c_checksumFlag, 0)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(e->zc, ZSTD_c_contentSizeFlag, 1)))
		goto fail;
	if (deflateInit2(&e->zs, o.gzip_level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		goto fail;
	e->zs_ready = 1;
	*out = e;
	return 0;

fail:
	ags_batch_encoder_del(e);
	return rc;
}

void ags_batch_encoder_del(ags_batch_encoder *e)
{
	if (!e)
		return;
	ZSTD_freeCCtx(e->zc);
	if (e->zs_ready)
		deflateEnd(&e->zs);
	ags_frame_buf_free(&e->raw);
	ags_frame_buf_free(&e->comp);
	ags_frame_buf_free(&e->out);
	free(e);
}

void ags_batch_encoder_begin(ags_batch_encoder *e)
{
	e->raw.len = 0;
	e->raw.data[e->raw.len++] = '[';
	e->out.len = 0;
	e->count = 0;
	e->state = ENC_OPEN;
}

size_t ags_batch_encoder_count(const ags_batch_encoder *e)
{
	return e->count;
}

size_t ags_batch_encoder_raw_len(const ags_batch_encoder *e)
{
	return e->state == ENC_OPEN ? e->raw.len + 1 : e->raw.len;
}

/* Appends one entry's text (parts concatenated); all or nothing. */
static int add_entry(ags_batch_encoder *e, const char *const *parts, const size_t *lens, int n)
{
	if (e->state != ENC_OPEN)
		return AGS_ERR_STATE;
	if (e->count >= e->o.max_count)
		return AGS_ERR_TOO_LARGE;
	size_t total = e->count > 0 ? 1 : 0;
	for (int i = 0; i < n; i++) {
		if (lens[i] > e->o.max_raw)
			return AGS_ERR_TOO_LARGE;
		total += lens[i];
	}
	/* +1 keeps room for the closing "]". */
	if (total > e->o.max_raw || e->raw.len + 1 > e->o.max_raw - total)
		return AGS_ERR_TOO_LARGE;
	int rc = ags_frame_buf_reserve(&e->raw, total + 1);
	if (rc)
		return rc;
	if (e->count > 0)
		e->raw.data[e->raw.len++] = ',';
	for (int i = 0; i < n; i++) {
		memcpy(e->raw.data + e->raw.len, parts[i], lens[i]);
		e->raw.len += lens[i];
	}
	e->count++;
	return 0;
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Trims blanks around json; returns whether what is left looks like one JSON object. */
static int object_text(const char **json, size_t *len)
{
	while (*len > 0 && is_blank((*json)[0])) {
		(*json)++;
		(*len)--;
	}
	while (*len > 0 && is_blank((*json)[*len - 1]))
		(*len)--;
	return *len >= 2 && (*json)[0] == '{' && (*json)[*len - 1] == '}';
}

int ags_batch_encoder_add_put(ags_batch_encoder *e, const char *json, size_t len, int no_relay)
{
	return ags_batch_encoder_add_put_vc(e, json, len, no_relay, NULL, 0);
}

int ags_batch_encoder_add_put_vc(ags_batch_encoder *e, const char *json, size_t len, int no_relay,
                                 const char *vc, size_t vc_len)
{
	if (!e || !json || !object_text(&json, &len) || (vc && !object_text(&vc, &vc_len)))
		return AGS_ERR_INVALID;
	static const char open[] = "{\"p\":", vco[] = ",\"vc\":", nr[] = ",\"nr\":true}";
	const char *parts[5] = {open, json, vco, vc, no_relay ? nr : "}"};
	size_t lens[5] = {sizeof(open) - 1, len, sizeof(vco) - 1, vc_len,
	                  no_relay ? sizeof(nr) - 1 : 1};
	if (!vc) {
		parts[2] = parts[4];
		lens[2] = lens[4];
		return add_entry(e, parts, lens, 3);
	}
	return add_entry(e, parts, lens, 5);
}

int ags_batch_encoder_add_del(ags_batch_encoder *e, const char *id, int64_t version,
                              int64_t timestamp_ms, int no_relay)
{
	return ags_batch_encoder_add_del_vc(e, id, version, timestamp_ms, no_relay, NULL, 0);
}

/*
 * Finishes an entry built as a yyjson document (a delete or a delta):
 * adds "nr" and "vc" to `root`, writes it and appends it to the batch.
 * The caller still frees doc. Errors: as add_entry, AGS_ERR_INVALID when
 * the writer refuses the text (invalid UTF-8 in an id), AGS_ERR_NOMEM.
 */
static int add_doc_entry(ags_batch_encoder *e, yyjson_mut_doc *doc, yyjson_mut_val *root,
                         int no_relay, const char *vc, size_t vc_len)
{
	if (no_relay && !yyjson_mut_obj_add_true(doc, root, "nr"))
		return AGS_ERR_NOMEM;
	if (vc && !yyjson_mut_obj_add_val(doc, root, "vc", yyjson_mut_rawncpy(doc, vc, vc_len)))
		return AGS_ERR_NOMEM;
	size_t tlen = 0;
	yyjson_write_err werr;
	char *text = yyjson_mut_write_opts(doc, YYJSON_WRITE_NOFLAG, NULL, &tlen, &werr);
	if (!text)
		return werr.code == YYJSON_WRITE_ERROR_MEMORY_ALLOCATION ? AGS_ERR_NOMEM
		                                                         : AGS_ERR_INVALID;
	const char *parts[1] = {text};
	size_t lens[1] = {tlen};
	int rc = add_entry(e, parts, lens, 1);
	free(text);
	return rc;
}

int ags_batch_encoder_add_del_vc(ags_batch_encoder *e, const char *id, int64_t version,
                                 int64_t timestamp_ms, int no_relay, const char *vc, size_t vc_len)
{
	if (vc && !object_text(&vc, &vc_len))
		return AGS_ERR_INVALID;
	if (!e || !id || version < 1 || timestamp_ms < 0)
		return AGS_ERR_INVALID;
	size_t id_len = strlen(id);
	if (id_len == 0 || id_len > AGS_PATTERN_ID_MAX)
		return AGS_ERR_INVALID;
	if (e->state != ENC_OPEN)
		return AGS_ERR_STATE;

	yyjson_mut_doc *doc = yyjson_mut_doc_new(NULL);
	if (!doc)
		return AGS_ERR_NOMEM;
	int rc = AGS_ERR_NOMEM;
	yyjson_mut_val *root = yyjson_mut_obj(doc);
	yyjson_mut_val *d = yyjson_mut_obj(doc);
	if (!root || !d)
		goto out;
	yyjson_mut_doc_set_root(doc, root);
	if (!yyjson_mut_obj_add_val(doc, root, "d", d) ||
	    !yyjson_mut_obj_add_strn(doc, d, "id", id, id_len) ||
	    !yyjson_mut_obj_add_int(doc, d, "version", version) ||
	    !yyjson_mut_obj_add_int(doc, d, "timestamp", timestamp_ms))
		goto out;
	rc = add_doc_entry(e, doc, root, no_relay, vc, vc_len);
out:
	yyjson_mut_doc_free(doc);
	return rc;
}

int ags_batch_encoder_add_delta(ags_batch_encoder *e, const char *id, int64_t version,
                                int64_t base_version, const char *base_checksum, const char *delta,
                                size_t delta_len, size_t size, int no_relay, const char *vc,
                                size_t vc_len)
{
	if (vc && !object_text(&vc, &vc_len))
		return AGS_ERR_INVALID;
	if (!e || !id || !base_checksum || !delta || base_version < 1 || version <= base_version ||
	    size == 0 || size > AGS_DELTA_SIZE_MAX || !ags_delta_b64_ok(delta, delta_len) ||
	    !hex64_ok(base_checksum, strlen(base_checksum)))
		return AGS_ERR_INVALID;
	size_t id_len = strlen(id);
	if (id_len == 0 || id_len > AGS_PATTERN_ID_MAX)
		return AGS_ERR_INVALID;
	if (e->state != ENC_OPEN)
		return AGS_ERR_STATE;

	yyjson_mut_doc *doc = yyjson_mut_doc_new(NULL);
	if (!doc)
		return AGS_ERR_NOMEM;
	int rc = AGS_ERR_NOMEM;
	yyjson_mut_val *root = yyjson_mut_obj(doc);
	yyjson_mut_val *x = yyjson_mut_obj(doc);
	yyjson_mut_val *base = yyjson_mut_obj(doc);
	if (!root || !x || !base)
		goto out;
	yyjson_mut_doc_set_root(doc, root);
	/* The delta text is base64: referenced, not copied. */
	if (!yyjson_mut_obj_add_val(doc, root, "x", x) ||
	    !yyjson_mut_obj_add_strn(doc, x, "id", id, id_len) ||
	    !yyjson_mut_obj_add_int(doc, x, "version", version) ||
	    !yyjson_mut_obj_add_val(doc, x, "base", base) ||
	    !yyjson_mut_obj_add_int(doc, base, "version", base_version) ||
	    !yyjson_mut_obj_add_str(doc, base, "checksum", base_checksum) ||
	    !yyjson_mut_obj_add_strn(doc, x, "delta", delta, delta_len) ||
	    !yyjson_mut_obj_add_uint(doc, x, "size", size))
		goto out;
	rc = add_doc_entry(e, doc, root, no_relay, vc, vc_len);
out:
	yyjson_mut_doc_free(doc);
	return rc;
}

/*
 * Compresses raw into e->comp when the result is under 90% of raw. Returns
 * 1 when it paid, 0 when it did not, or a negative error.
 */
static int compress_body(ags_batch_encoder *e, int codec)
{
	size_t raw_len = e->raw.len;
	/* The largest compressed size that pays: 10 * c < 9 * raw. */
	size_t cap = (raw_len * 9 - 1) / 10;
	e->comp.len = 0;
	int rc = ags_frame_buf_reserve(&e->comp, cap);
	if (rc)
		return rc;
	if (codec == AGS_CODEC_ZSTD) {
		size_t r = ZSTD_compress2(e->zc, e->comp.data, cap, e->raw.data, raw_len);
		if (ZSTD_isError(r)) {
			if (ZSTD_getErrorCode(r) == ZSTD_error_dstSize_tooSmall)
				return 0;
			return ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation
			           ? AGS_ERR_NOMEM
			           : AGS_ERR_COMPRESS;
		}
		e->comp.len = r;
		return 1;
	}
	if (deflateReset(&e->zs) != Z_OK)
		return AGS_ERR_COMPRESS;
	e->zs.next_in = e->raw.data;
	e->zs.avail_in = (uInt)raw_len;
	e->zs.next_out = e->comp.data;
	e->zs.avail_out = (uInt)cap;
	int zr = deflate(&e->zs, Z_FINISH);
	if (zr == Z_STREAM_END) {
		e->comp.len = e->zs.total_out;
		return 1;
	}
	if (zr == Z_OK || zr == Z_BUF_ERROR)
		return 0; /* out of room: it does not pay */
	return AGS_ERR_COMPRESS;
}

int ags_batch_encoder_finish(ags_batch_encoder *e, uint64_t request_id, int64_t timestamp_ms,
                             uint64_t upto_seq, const char *source, int codec,
                             const uint8_t **frame, size_t *frame_len, ags_batch_stats *stats)
{
	if (!e || !source || !frame || !frame_len)
		return AGS_ERR_INVALID;
	if (e->state != ENC_OPEN)
		return AGS_ERR_STATE;
	size_t source_len = strlen(source);
	if (!source_ok(source, source_len) || codec < AGS_CODEC_NONE || codec > AGS_CODEC_ZSTD)
		return AGS_ERR_INVALID;

	/* add_entry always leaves room for this bracket. */
	e->raw.data[e->raw.len++] = ']';
	e->state = ENC_DONE;

	ags_batch_header h = {
	    .request_id = request_id,
	    .timestamp_ms = timestamp_ms,
	    .upto_seq = upto_seq,
	    .codec = AGS_CODEC_NONE,
	    .source = source,
	    .source_len = (uint16_t)source_len,
	    .count = (uint32_t)e->count,
	    .raw_len = (uint32_t)e->raw.len,
	};
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, e->raw.data, e->raw.len, h.sha256) < 0)
		return AGS_ERR_INTERNAL;

	const uint8_t *body = e->raw.data;
	size_t body_len = e->raw.len;
	if (codec != AGS_CODEC_NONE && e->raw.len >= AGS_BATCH_COMPRESS_MIN) {
		int paid = compress_body(e, codec);
		if (paid < 0)
			return paid;
		if (paid) {
			h.codec = (uint8_t)codec;
			body = e->comp.data;
			body_len = e->comp.len;
		}
	}

	size_t payload_len = AGS_BATCH_FIXED_HEAD + source_len + AGS_BATCH_FIXED_TAIL + body_len;
	e->out.len = 0;
	int rc = ags_frame_buf_reserve(&e->out, AGS_FRAME_HEADER_LEN + payload_len);
	if (rc)
		return rc;
	ags_frame_header_put(e->out.data, AGS_FRAME_BATCH, (uint32_t)payload_len);
	e->out.len = AGS_FRAME_HEADER_LEN;
	if ((rc = ags_batch_header_write(&h, &e->out)) ||
	    (rc = ags_frame_buf_append(&e->out, body, body_len)))
		return rc;

	*frame = e->out.data;
	*frame_len = e->out.len;
	if (stats) {
		stats->count = h.count;
		stats->raw_len = e->raw.len;
		stats->wire_len = e->out.len;
		stats->codec_used = h.codec;
	}
	return 0;
}
