/* SPDX-License-Identifier: Apache-2.0 */
/* The agentsync wire format for the conformance client (see wire.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/crypto.h>
#include <zlib.h>
#include <zstd.h>

#include "wire.h"

static void put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void frame_header(uint8_t out[8], uint8_t type, uint32_t len)
{
	out[0] = type;
	out[1] = 0;
	out[2] = 0;
	out[3] = 0;
	put_u32(out + 4, len);
}

void sha256(const void *data, size_t len, uint8_t out[32])
{
	gnutls_hash_fast(GNUTLS_DIG_SHA256, data, len, out);
}

void sha256_hex(const void *data, size_t len, char out[65])
{
	uint8_t d[32];
	sha256(data, len, d);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

uint8_t *gzip_bytes(const void *in, size_t len, size_t *out_len)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return NULL;
	size_t cap = deflateBound(&z, len) + 64;
	uint8_t *out = malloc(cap);
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	int rv = out ? deflate(&z, Z_FINISH) : Z_MEM_ERROR;
	*out_len = cap - z.avail_out;
	deflateEnd(&z);
	if (rv != Z_STREAM_END) {
		free(out);
		return NULL;
	}
	return out;
}

uint8_t *zstd_bytes(const void *in, size_t len, size_t *out_len)
{
	size_t cap = ZSTD_compressBound(len);
	uint8_t *out = malloc(cap);
	size_t n = out ? ZSTD_compress(out, cap, in, len, 1) : 0;
	if (!out || ZSTD_isError(n)) {
		free(out);
		return NULL;
	}
	*out_len = n;
	return out;
}

static int64_t count_entries(const char *raw, size_t len)
{
	yyjson_doc *d = yyjson_read(raw, len, 0);
	int64_t n = d && yyjson_is_arr(yyjson_doc_get_root(d))
	                ? (int64_t)yyjson_arr_size(yyjson_doc_get_root(d))
	                : 0;
	yyjson_doc_free(d);
	return n;
}

uint8_t *batch_encode(const struct batch *b, size_t *len)
{
	const char *raw = b->raw ? b->raw : "[]";
	size_t raw_len = b->raw_len ? b->raw_len : strlen(raw);
	size_t slen = b->source_len ? b->source_len : strlen(b->source);
	uint8_t *comp = NULL;
	const uint8_t *body = (const uint8_t *)raw;
	size_t body_len = raw_len;
	if (b->body) {
		body = b->body;
		body_len = b->body_len;
	} else if (b->codec == CODEC_GZIP) {
		body = comp = gzip_bytes(raw, raw_len, &body_len);
	} else if (b->codec == CODEC_ZSTD) {
		body = comp = zstd_bytes(raw, raw_len, &body_len);
	}
	if (!body)
		return NULL;
	size_t n = 68 + slen + body_len;
	uint8_t *p = malloc(n);
	if (!p) {
		free(comp);
		return NULL;
	}
	int64_t ts = b->timestamp;
	if (!ts) {
		struct timespec t;
		clock_gettime(CLOCK_REALTIME, &t);
		ts = (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
	}
	put_u64(p, b->request_id);
	put_u64(p + 8, (uint64_t)ts);
	put_u64(p + 16, b->upto);
	p[24] = b->codec;
	p[25] = b->flags;
	put_u16(p + 26, (uint16_t)slen);
	memcpy(p + 28, b->source, slen);
	put_u32(p + 28 + slen, b->set_count ? b->count : (uint32_t)count_entries(raw, raw_len));
	put_u32(p + 32 + slen, b->set_raw_len ? b->raw_len_field : (uint32_t)raw_len);
	sha256(raw, raw_len, p + 36 + slen);
	if (b->bad_sha)
		p[36 + slen] ^= 1;
	memcpy(p + 68 + slen, body, body_len);
	free(comp);
	*len = b->truncate_to && b->truncate_to < n ? b->truncate_to : n;
	return p;
}

/* Decompresses into exactly `want` bytes, refusing more (a bomb), less and trailing data. */
static char *inflate_exact(const uint8_t *in, size_t len, uint8_t codec, size_t want, char *err,
                           size_t errlen)
{
	char *out = malloc(want + 1);
	if (!out) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	size_t got = 0;
	if (codec == CODEC_GZIP) {
		z_stream z;
		memset(&z, 0, sizeof(z));
		if (inflateInit2(&z, 15 + 16) != Z_OK)
			goto bad;
		z.next_in = (Bytef *)in;
		z.avail_in = (uInt)len;
		z.next_out = (Bytef *)out;
		z.avail_out = (uInt)(want + 1);
		int rv = inflate(&z, Z_FINISH);
		got = want + 1 - z.avail_out;
		int rest = (int)z.avail_in;
		inflateEnd(&z);
		if (rv != Z_STREAM_END || rest != 0)
			goto bad;
	} else {
		size_t n = ZSTD_decompress(out, want + 1, in, len);
		if (ZSTD_isError(n))
			goto bad;
		got = n;
	}
	if (got != want)
		goto bad;
	out[want] = '\0';
	return out;
bad:
	snprintf(err, errlen, "batch.body: codec %u does not give exactly rawLen %zu bytes", codec,
	         want);
	free(out);
	return NULL;
}

int batch_decode(const uint8_t *p, size_t len, size_t max_raw, struct rbatch *b, char *err,
                 size_t errlen)
{
	memset(b, 0, sizeof(*b));
	b->frame_len = len;
	if (len < 28) {
		snprintf(err, errlen, "BATCH payload of %zu bytes is shorter than its header", len);
		return -1;
	}
	b->request_id = get_u64(p);
	b->timestamp = (int64_t)get_u64(p + 8);
	b->upto = get_u64(p + 16);
	b->codec = p[24];
	b->flags = p[25];
	size_t slen = (size_t)p[26] << 8 | p[27];
	if (slen < 1 || slen > 256 || len < 68 + slen) {
		snprintf(err, errlen, "BATCH sourceLen %zu is not 1..256 or the header is cut",
		         slen);
		return -1;
	}
	memcpy(b->source, p + 28, slen);
	b->source[slen] = '\0';
	b->count = get_u32(p + 28 + slen);
	b->raw_len = get_u32(p + 32 + slen);
	const uint8_t *want_sha = p + 36 + slen, *body = p + 68 + slen;
	size_t body_len = len - 68 - slen;
	if (b->codec > 2 || b->flags != 0 || b->raw_len > max_raw) {
		snprintf(err, errlen, "BATCH codec %u, flags %u or rawLen %u not allowed", b->codec,
		         b->flags, b->raw_len);
		return -1;
	}
	if (b->codec == CODEC_NONE) {
		if (body_len != b->raw_len) {
			snprintf(err, errlen, "batch.rawLen: %u, body has %zu bytes", b->raw_len,
			         body_len);
			return -1;
		}
		b->raw = malloc(body_len + 1);
		if (!b->raw)
			return -1;
		memcpy(b->raw, body, body_len);
		b->raw[body_len] = '\0';
	} else if (!(b->raw = inflate_exact(body, body_len, b->codec, b->raw_len, err, errlen))) {
		return -1;
	}
	uint8_t got[32];
	sha256(b->raw, b->raw_len, got);
	if (memcmp(got, want_sha, 32) != 0) {
		snprintf(err, errlen, "batch.sha256 does not match the raw body");
		return -1;
	}
	b->doc = yyjson_read(b->raw, b->raw_len, 0);
	yyjson_val *root = b->doc ? yyjson_doc_get_root(b->doc) : NULL;
	if (!yyjson_is_arr(root) || yyjson_arr_size(root) != b->count) {
		snprintf(err, errlen, "raw body is not a JSON array of count %u entries", b->count);
		return -1;
	}
	size_t i, max;
	yyjson_val *e;
	yyjson_arr_foreach(root, i, max, e)
	{
		int kinds =
		    !!yyjson_obj_get(e, "p") + !!yyjson_obj_get(e, "d") + !!yyjson_obj_get(e, "x");
		if (!yyjson_is_obj(e) || kinds != 1) {
			snprintf(err, errlen, "entries[%zu] is not one of p, d, x", i);
			return -1;
		}
	}
	return 0;
}

void rbatch_free(struct rbatch *b)
{
	free(b->raw);
	yyjson_doc_free(b->doc);
	memset(b, 0, sizeof(*b));
}
