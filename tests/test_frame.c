/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for frames: header checks, the encoder, the incremental reader. */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "agentsync/agentsync.h"
#include "frame.h"

/* A frame as a test expects it. */
typedef struct want {
	uint8_t type;
	size_t len;
	uint8_t fill; /* payload byte i is fill + i */
} want;

static const want three[] = {
    {AGS_FRAME_HELLO, 37, 'a'},
    {AGS_FRAME_ACK, 0, 0},
    {AGS_FRAME_BATCH, 5000, 7},
    {AGS_FRAME_PULL_DONE, 1, 9},
};
#define N_THREE (sizeof(three) / sizeof(three[0]))

static void build_stream(ags_frame_buf *b, const want *w, size_t n)
{
	ags_frame_buf_init(b, 0);
	for (size_t i = 0; i < n; i++) {
		uint8_t *p = malloc(w[i].len + 1);
		assert_non_null(p);
		for (size_t j = 0; j < w[i].len; j++)
			p[j] = (uint8_t)(w[i].fill + j);
		assert_int_equal(ags_frame_append(b, w[i].type, p, w[i].len), 0);
		free(p);
	}
}

static void check_frame(const ags_frame *f, const want *w)
{
	assert_int_equal(f->type, w->type);
	assert_int_equal(f->len, w->len);
	assert_non_null(f->payload);
	for (size_t j = 0; j < w->len; j++)
		assert_int_equal(f->payload[j], (uint8_t)(w->fill + j));
}

/*
 * Feeds `len` bytes in chunks of `chunk` bytes (0: all at once), checking
 * every frame as it comes out and the consumed counts. Returns frames seen.
 */
static size_t feed_all(const uint8_t *data, size_t len, size_t chunk, const want *w, size_t n)
{
	ags_frame_reader r;
	assert_int_equal(ags_frame_reader_init(&r, 0), 0);
	size_t off = 0, seen = 0, total_consumed = 0;
	while (off < len) {
		size_t end = chunk ? off + chunk : len;
		if (end > len)
			end = len;
		/* One delivered chunk may hold several frames: feed until it is used up. */
		while (off < end) {
			ags_frame f;
			size_t used = 99999;
			int rc = ags_frame_reader_feed(&r, data + off, end - off, &used, &f, NULL);
			assert_true(rc == 0 || rc == 1);
			assert_true(used <= end - off);
			if (rc == 0)
				assert_int_equal(used, end - off);
			off += used;
			total_consumed += used;
			if (rc == 1) {
				assert_true(seen < n);
				check_frame(&f, &w[seen]);
				seen++;
			}
		}
	}
	/* A zero-length frame completes as soon as its header does; nothing is pending. */
	assert_true(ags_frame_reader_idle(&r));
	assert_int_equal(total_consumed, len);
	assert_int_equal(r.frames, seen);
	ags_frame_reader_free(&r);
	return seen;
}

static void round_trip_whole(void **state)
{
	(void)state;
	ags_frame_buf b;
	build_stream(&b, three, N_THREE);
	size_t expect = 0;
	for (size_t i = 0; i < N_THREE; i++)
		expect += AGS_FRAME_HEADER_LEN + three[i].len;
	assert_int_equal(b.len, expect);
	assert_int_equal(feed_all(b.data, b.len, 0, three, N_THREE), N_THREE);
	ags_frame_buf_free(&b);
}

static void byte_by_byte_and_odd_chunks_give_the_same_frames(void **state)
{
	(void)state;
	ags_frame_buf b;
	build_stream(&b, three, N_THREE);
	static const size_t chunks[] = {1, 2, 3, 7, 8, 9, 1000, 1200};
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++)
		assert_int_equal(feed_all(b.data, b.len, chunks[i], three, N_THREE), N_THREE);
	ags_frame_buf_free(&b);
}

static void header_bytes_are_big_endian(void **state)
{
	(void)state;
	uint8_t h[8];
	ags_frame_header_put(h, AGS_FRAME_BATCH, 0x01020304u);
	static const uint8_t expect[8] = {0x02, 0, 0, 0, 0x01, 0x02, 0x03, 0x04};
	assert_memory_equal(h, expect, 8);
	ags_frame_header fh;
	uint64_t code = 1;
	assert_int_equal(ags_frame_header_check(h, AGS_FRAME_MAX_HARD, &fh, &code, NULL), 0);
	assert_int_equal(fh.type, AGS_FRAME_BATCH);
	assert_int_equal(fh.length, 0x01020304u);
	assert_int_equal(code, AGS_APP_NO_ERROR);
}

static void oversize_is_refused_from_the_header(void **state)
{
	(void)state;
	ags_frame_reader r;
	ags_error e;
	ags_frame f;
	size_t used;
	uint8_t h[8];

	assert_int_equal(ags_frame_reader_init(&r, 65536), 0);
	ags_frame_header_put(h, AGS_FRAME_BATCH, 65537);
	/* Only the header arrives: the refusal must not wait for the payload. */
	int rc = ags_frame_reader_feed(&r, h, sizeof(h), &used, &f, &e);
	assert_int_equal(rc, AGS_ERR_TOO_LARGE);
	assert_int_equal(used, 8);
	assert_string_equal(e.field, "frame.length");
	assert_int_equal(ags_frame_reader_close_code(&r), AGS_APP_FRAME_TOO_LARGE);
	assert_null(r.buf); /* nothing buffered for the payload */
	/* The error sticks. */
	assert_int_equal(ags_frame_reader_feed(&r, h, sizeof(h), &used, &f, NULL),
	                 AGS_ERR_TOO_LARGE);
	assert_int_equal(used, 0);
	ags_frame_reader_free(&r);

	/* Exactly the maximum is fine, and the default maximum is 16 MiB. */
	assert_int_equal(ags_frame_reader_init(&r, 65536), 0);
	ags_frame_header_put(h, AGS_FRAME_BATCH, 65536);
	assert_int_equal(ags_frame_reader_feed(&r, h, sizeof(h), &used, &f, NULL), 0);
	ags_frame_reader_free(&r);
	assert_int_equal(ags_frame_reader_init(&r, 0), 0);
	assert_int_equal(r.max_frame, AGS_FRAME_MAX_DEFAULT);
	ags_frame_header_put(h, AGS_FRAME_BATCH, AGS_FRAME_MAX_DEFAULT + 1);
	assert_int_equal(ags_frame_reader_feed(&r, h, sizeof(h), &used, &f, NULL),
	                 AGS_ERR_TOO_LARGE);
	ags_frame_reader_free(&r);

	/* No reader may be configured over the hard cap. */
	assert_int_equal(ags_frame_reader_init(&r, AGS_FRAME_MAX_HARD + 1), AGS_ERR_INVALID);
	ags_frame_reader_free(&r);
}

static void memory_follows_the_data_not_the_declared_length(void **state)
{
	(void)state;
	ags_frame_reader r;
	ags_frame f;
	size_t used;
	uint8_t d[8 + 100] = {0};

	assert_int_equal(ags_frame_reader_init(&r, 0), 0);
	ags_frame_header_put(d, AGS_FRAME_BATCH, 8u * 1024 * 1024);
	assert_int_equal(ags_frame_reader_feed(&r, d, sizeof(d), &used, &f, NULL), 0);
	assert_int_equal(used, sizeof(d));
	assert_true(r.buf_cap < 64 * 1024);
	ags_frame_reader_free(&r);
}

static void unknown_type_is_refused(void **state)
{
	(void)state;
	static const uint8_t bad[] = {0x00, 0x0a, 0x7f,
	                              0xff} /* 0x08, 0x09: anti-entropy, refused by the session */;
	for (size_t i = 0; i < sizeof(bad); i++) {
		ags_frame_reader r;
		ags_error e;
		ags_frame f;
		size_t used;
		uint8_t h[8];
		ags_frame_header_put(h, bad[i], 4);
		assert_int_equal(ags_frame_reader_init(&r, 0), 0);
		/* Fed a byte at a time, the refusal comes with the 8th byte. */
		for (size_t j = 0; j < 7; j++)
			assert_int_equal(ags_frame_reader_feed(&r, h + j, 1, &used, &f, &e), 0);
		assert_int_equal(ags_frame_reader_feed(&r, h + 7, 1, &used, &f, &e), AGS_ERR_PROTO);
		assert_int_equal(used, 1);
		assert_string_equal(e.field, "frame.type");
		assert_int_equal(ags_frame_reader_close_code(&r), AGS_APP_UNKNOWN_FRAME);
		ags_frame_reader_free(&r);
	}
	for (int t = 1; t <= 9; t++)
		assert_true(ags_frame_type_known(t));
	assert_false(ags_frame_type_known(0));
	assert_false(ags_frame_type_known(10));
}

static void reserved_and_flag_bits_are_refused(void **state)
{
	(void)state;
	static const struct {
		int byte;
		uint8_t val;
		const char *field;
	} cases[] = {
	    {1, 0x01, "frame.flags"},
	    {1, 0x80, "frame.flags"},
	    {2, 0x01, "frame.reserved"},
	    {3, 0x80, "frame.reserved"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ags_frame_reader r;
		ags_error e;
		ags_frame f;
		size_t used;
		uint8_t h[8];
		ags_frame_header_put(h, AGS_FRAME_HELLO, 2);
		h[cases[i].byte] = cases[i].val;
		assert_int_equal(ags_frame_reader_init(&r, 0), 0);
		assert_int_equal(ags_frame_reader_feed(&r, h, 8, &used, &f, &e), AGS_ERR_PROTO);
		assert_string_equal(e.field, cases[i].field);
		assert_int_equal(ags_frame_reader_close_code(&r), AGS_APP_PROTOCOL_ERROR);
		ags_frame_reader_free(&r);
	}
}

static void consumed_stops_at_each_frame_end(void **state)
{
	(void)state;
	ags_frame_buf b;
	ags_frame_reader r;
	ags_frame f;
	size_t used;

	build_stream(&b, three, N_THREE);
	assert_int_equal(ags_frame_reader_init(&r, 0), 0);
	size_t off = 0;
	for (size_t i = 0; i < N_THREE; i++) {
		assert_int_equal(
		    ags_frame_reader_feed(&r, b.data + off, b.len - off, &used, &f, NULL), 1);
		assert_int_equal(used, AGS_FRAME_HEADER_LEN + three[i].len);
		check_frame(&f, &three[i]);
		off += used;
	}
	assert_int_equal(off, b.len);
	/* Nothing more: an empty feed yields nothing and takes nothing. */
	assert_int_equal(ags_frame_reader_feed(&r, NULL, 0, &used, &f, NULL), 0);
	assert_int_equal(used, 0);
	/* Half a header: all of it is taken, and the reader is mid-frame. */
	assert_int_equal(ags_frame_reader_feed(&r, b.data, 5, &used, &f, NULL), 0);
	assert_int_equal(used, 5);
	assert_false(ags_frame_reader_idle(&r));
	ags_frame_reader_free(&r);
	ags_frame_buf_free(&b);
}

static void take_moves_the_payload_out(void **state)
{
	(void)state;
	ags_frame_buf b;
	ags_frame_reader r;
	ags_frame f;
	size_t used;
	uint8_t *mine = NULL;

	build_stream(&b, three, N_THREE);
	assert_int_equal(ags_frame_reader_init(&r, 0), 0);
	assert_int_equal(ags_frame_reader_take(&r, &mine), AGS_ERR_STATE);
	assert_int_equal(ags_frame_reader_feed(&r, b.data, b.len, &used, &f, NULL), 1);
	assert_int_equal(ags_frame_reader_take(&r, &mine), 0);
	assert_non_null(mine);
	assert_int_equal(ags_frame_reader_take(&r, &mine), AGS_ERR_STATE);
	/* The reader goes on with a fresh buffer; the taken payload stays intact. */
	size_t off = used;
	assert_int_equal(ags_frame_reader_feed(&r, b.data + off, b.len - off, &used, &f, NULL), 1);
	check_frame(&f, &three[1]);
	for (size_t j = 0; j < three[0].len; j++)
		assert_int_equal(mine[j], (uint8_t)(three[0].fill + j));
	free(mine);
	ags_frame_reader_free(&r);
	ags_frame_buf_free(&b);
}

static void encode_into_a_caller_buffer(void **state)
{
	(void)state;
	uint8_t out[16];
	size_t n = 0;
	assert_int_equal(ags_frame_encode(out, sizeof(out), AGS_FRAME_ERROR, "12345678", 8, &n), 0);
	assert_int_equal(n, 16);
	assert_int_equal(out[0], AGS_FRAME_ERROR);
	assert_int_equal(out[7], 8);
	assert_memory_equal(out + 8, "12345678", 8);
	assert_int_equal(ags_frame_encode(out, sizeof(out), AGS_FRAME_ERROR, "123456789", 9, &n),
	                 AGS_ERR_TOO_LARGE);
	assert_int_equal(ags_frame_encode(out, 7, AGS_FRAME_ERROR, NULL, 0, &n), AGS_ERR_TOO_LARGE);
	assert_int_equal(ags_frame_encode(out, 8, AGS_FRAME_ERROR, NULL, 0, &n), 0);
	assert_int_equal(ags_frame_encode(out, 16, AGS_FRAME_ERROR, NULL, 3, &n), AGS_ERR_INVALID);
}

static void growable_buffer_has_a_maximum(void **state)
{
	(void)state;
	ags_frame_buf b;
	uint8_t payload[100] = {0};
	ags_frame_buf_init(&b, 250);
	assert_int_equal(ags_frame_append(&b, AGS_FRAME_ACK, payload, 100), 0);
	assert_int_equal(ags_frame_append(&b, AGS_FRAME_ACK, payload, 100), 0);
	assert_int_equal(b.len, 216);
	assert_int_equal(ags_frame_append(&b, AGS_FRAME_ACK, payload, 30), AGS_ERR_TOO_LARGE);
	assert_int_equal(b.len, 216); /* unchanged after a refusal */
	assert_true(b.cap <= 250);
	assert_int_equal(ags_frame_append(&b, AGS_FRAME_ACK, payload, 26), 0);
	assert_int_equal(b.len, 250);
	ags_frame_buf_free(&b);
}

static void every_code_has_a_distinct_name(void **state)
{
	(void)state;
	static const uint64_t codes[] = {
	    AGS_APP_NO_ERROR,       AGS_APP_PROTOCOL_ERROR, AGS_APP_FRAME_TOO_LARGE,
	    AGS_APP_UNKNOWN_FRAME,  AGS_APP_AUTH_FAILED,    AGS_APP_VERSION_MISMATCH,
	    AGS_APP_INTERNAL_ERROR, AGS_APP_SHUTTING_DOWN,  AGS_APP_BAD_HELLO,
	    AGS_APP_DUPLICATE_ID,
	};
	size_t n = sizeof(codes) / sizeof(codes[0]);
	for (size_t i = 0; i < n; i++) {
		assert_string_not_equal(ags_app_error_name(codes[i]), "UNKNOWN");
		for (size_t j = i + 1; j < n; j++)
			assert_string_not_equal(ags_app_error_name(codes[i]),
			                        ags_app_error_name(codes[j]));
	}
	assert_string_equal(ags_app_error_name(0x10a), "UNKNOWN");
	assert_string_equal(ags_app_error_name(AGS_APP_DUPLICATE_ID), "DUPLICATE_NODE_ID");
	assert_string_equal(ags_app_error_name(AGS_APP_BAD_HELLO), "BAD_HELLO");
	assert_int_equal(AGS_APP_PROTOCOL_ERROR, 0x101);
	assert_int_equal(AGS_APP_BAD_HELLO, 0x108);
	for (int t = 1; t <= 7; t++) {
		assert_string_not_equal(ags_frame_type_name(t), "UNKNOWN");
		for (int u = t + 1; u <= 7; u++)
			assert_string_not_equal(ags_frame_type_name(t), ags_frame_type_name(u));
	}
	assert_int_equal(ags_app_error_from_err(AGS_ERR_TOO_LARGE), AGS_APP_FRAME_TOO_LARGE);
	assert_int_equal(ags_app_error_from_err(AGS_ERR_UNSUPPORTED), AGS_APP_VERSION_MISMATCH);
	assert_int_equal(ags_app_error_from_err(AGS_ERR_PROTO), AGS_APP_PROTOCOL_ERROR);
	assert_int_equal(ags_app_error_from_err(0), AGS_APP_NO_ERROR);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(round_trip_whole),
	    cmocka_unit_test(byte_by_byte_and_odd_chunks_give_the_same_frames),
	    cmocka_unit_test(header_bytes_are_big_endian),
	    cmocka_unit_test(oversize_is_refused_from_the_header),
	    cmocka_unit_test(memory_follows_the_data_not_the_declared_length),
	    cmocka_unit_test(unknown_type_is_refused),
	    cmocka_unit_test(reserved_and_flag_bits_are_refused),
	    cmocka_unit_test(consumed_stops_at_each_frame_end),
	    cmocka_unit_test(take_moves_the_payload_out),
	    cmocka_unit_test(encode_into_a_caller_buffer),
	    cmocka_unit_test(growable_buffer_has_a_maximum),
	    cmocka_unit_test(every_code_has_a_distinct_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
