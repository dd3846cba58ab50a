/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzzes the BATCH decoder with small limits. The first input byte picks a
 * mode:
 *   even: the rest is a whole BATCH payload, decoded as is (header parsing,
 *         the decompressors, the checksum);
 *   odd:  the rest is a raw body; the harness frames it (codec none, the
 *         true SHA-256, count = the array's size, off by one when the second
 *         byte says so), so the JSON entry checks are reached past the checksum.
 * Whatever decodes must re-encode through the encoder and decode again to
 * the same entries.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <yyjson.h>

#include "batch.h"
#include "frame.h"

static const ags_batch_limits limits = {.max_raw = 1u << 20, .max_count = 1000};

/* b re-encodes a's entries without those a refused alone (AGS_BATCH_BAD). */
static void same_entries(const ags_batch *a, const ags_batch *b)
{
	size_t j = 0;
	for (size_t i = 0; i < a->n_entries; i++) {
		if (a->entries[i].kind == AGS_BATCH_BAD)
			continue;
		if (j >= b->n_entries)
			abort();
		const ags_batch_entry *x = &a->entries[i], *y = &b->entries[j++];
		if (x->kind != y->kind || x->no_relay != y->no_relay)
			abort();
		if (x->kind == AGS_BATCH_DEL &&
		    (x->id_len != y->id_len || memcmp(x->id, y->id, x->id_len) != 0 ||
		     x->version != y->version || x->timestamp != y->timestamp))
			abort();
		if (x->kind == AGS_BATCH_PUT && !yyjson_equals(x->pattern, y->pattern))
			abort();
	}
	if (j != b->n_entries)
		abort();
}

/* Re-encodes a decoded batch and checks that it decodes to the same thing. */
static void round_trip(const ags_batch *b)
{
	ags_batch_encoder *e = NULL;
	ags_batch_encoder_opts o = {.max_count = limits.max_count};
	if (ags_batch_encoder_new(&o, &e))
		abort();
	ags_batch_encoder_begin(e);
	for (size_t i = 0; i < b->n_entries; i++) {
		const ags_batch_entry *en = &b->entries[i];
		int rc;
		if (en->kind == AGS_BATCH_BAD)
			continue; /* refused alone by the decoder: nothing to re-encode */
		if (en->kind == AGS_BATCH_PUT) {
			size_t n;
			char *s = yyjson_val_write(en->pattern, 0, &n);
			if (!s)
				abort();
			rc = ags_batch_encoder_add_put(e, s, n, en->no_relay);
			free(s);
		} else {
			rc = ags_batch_encoder_add_del(e, en->id, en->version, en->timestamp,
			                               en->no_relay);
		}
		if (rc)
			abort();
	}
	const uint8_t *frame;
	size_t flen;
	int codec = (int)(b->hdr.request_id % 3);
	if (ags_batch_encoder_finish(e, b->hdr.request_id, b->hdr.timestamp_ms, b->hdr.upto_seq,
	                             b->source, codec, &frame, &flen, NULL))
		abort();
	ags_batch again;
	if (ags_batch_decode(frame + AGS_FRAME_HEADER_LEN, flen - AGS_FRAME_HEADER_LEN, &limits,
	                     &again, NULL))
		abort();
	same_entries(b, &again);
	ags_batch_free(&again);
	ags_batch_encoder_del(e);
}

static void decode_one(const uint8_t *p, size_t n)
{
	ags_batch b;
	ags_error err;
	int rc = ags_batch_decode(p, n, &limits, &b, &err);
	if (rc == 0) {
		if (b.n_entries != b.hdr.count || b.hdr.raw_len > limits.max_raw)
			abort();
		round_trip(&b);
	} else if (b.doc || b.entries) {
		abort(); /* nothing is left behind on failure */
	}
	ags_batch_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if ((data[0] & 1) == 0) {
		decode_one(data + 1, size - 1);
		return 0;
	}
	if (size < 2)
		return 0;
	int off_by_one = data[1] & 1;
	const uint8_t *raw = data + 2;
	size_t raw_len = size - 2;
	uint32_t count = 0;
	yyjson_doc *doc = yyjson_read((const char *)raw, raw_len, 0);
	if (doc && yyjson_is_arr(yyjson_doc_get_root(doc)))
		count = (uint32_t)yyjson_arr_size(yyjson_doc_get_root(doc));
	yyjson_doc_free(doc);
	ags_batch_header h = {
	    .request_id = size,
	    .source = "fuzz",
	    .source_len = 4,
	    .count = count + (uint32_t)off_by_one,
	    .raw_len = (uint32_t)raw_len,
	};
	gnutls_hash_fast(GNUTLS_DIG_SHA256, raw, raw_len, h.sha256);
	ags_frame_buf buf;
	ags_frame_buf_init(&buf, 0);
	if (ags_batch_header_write(&h, &buf) || ags_frame_buf_append(&buf, raw, raw_len))
		abort();
	decode_one(buf.data, buf.len);
	ags_frame_buf_free(&buf);
	return 0;
}
