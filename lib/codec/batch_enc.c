/* SPDX-License-Identifier: Apache-2.0 */
/* BATCH frames: the encoder (splice the entries, hash, compress; batch.h). */
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
	    !ags_batch_hex64_ok(base_checksum, strlen(base_checksum)))
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
	if (!ags_batch_source_ok(source, source_len) || codec < AGS_CODEC_NONE ||
	    codec > AGS_CODEC_ZSTD)
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
