/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the JSON messages: HELLO, ACK, ERROR, AUTH, PULL / PULL_DONE. */
#include <stdlib.h>
#include <string.h>

#include <yyjson.h>

#include "testutil.h"
#include "agentsync/agentsync.h"
#include "batch.h"
#include "frame.h"
#include "wire.h"

#define STORE_A "0123456789abcdef0123456789abcdef"
#define STORE_B "fedcba9876543210fedcba9876543210"

/* Checks that `b` holds exactly one frame of `type`; returns its payload. */
static const uint8_t *only_frame(const ags_frame_buf *b, int type, size_t *len)
{
	ags_frame_header h;
	assert_true(b->len >= AGS_FRAME_HEADER_LEN);
	assert_int_equal(ags_frame_header_check(b->data, 0, &h, NULL, NULL), 0);
	assert_int_equal(h.type, type);
	assert_int_equal(h.length, b->len - AGS_FRAME_HEADER_LEN);
	*len = h.length;
	return b->data + AGS_FRAME_HEADER_LEN;
}

static void full_hello(ags_wire_hello *h)
{
	static const char *types[] = {"test_execution", "coverage_gap"};
	static const char *tags[] = {"unit", "sécurité", "認証"};
	memset(h, 0, sizeof(*h));
	h->proto = AGS_PROTO_VERSION;
	h->node = "agent-1.example";
	h->tenant = "default";
	h->store = STORE_A;
	h->codecs = 1u << AGS_CODEC_ZSTD | 1u << AGS_CODEC_GZIP;
	h->max_frame = 16u << 20;
	h->batch_size = 100;
	h->has_cursor = 1;
	h->cursor_store = STORE_B;
	h->cursor_seq = UINT64_MAX;
	h->has_filter = 1;
	h->n_types = 2;
	memcpy(h->types, types, sizeof(types));
	h->n_tags = 3;
	memcpy(h->tags, tags, sizeof(tags));
	h->instance = "0123456789abcdef0123456789abcdef";
	h->delta = 1;
	h->cursor_epoch = "00000000000000ff";
	h->n_epochs = 2;
	h->epoch_ids[0] = "0123456789abcdef";
	h->epoch_starts[0] = 1;
	h->epoch_ids[1] = "fedcba9876543210";
	h->epoch_starts[1] = UINT64_MAX;
}

static void hello_round_trip(void **state)
{
	(void)state;
	ags_wire_hello h, d;
	ags_frame_buf b;
	ags_error err;
	size_t len;

	full_hello(&h);
	ags_frame_buf_init(&b, 0);
	assert_int_equal(ags_wire_hello_encode(&h, &b, &err), 0);
	const uint8_t *p = only_frame(&b, AGS_FRAME_HELLO, &len);
	assert_int_equal(ags_wire_hello_decode(p, len, &d, &err), 0);
	assert_int_equal(d.proto, 1);
	assert_string_equal(d.node, h.node);
	assert_string_equal(d.tenant, "default");
	assert_string_equal(d.store, STORE_A);
	assert_int_equal(d.codecs, h.codecs);
	assert_int_equal(d.max_frame, 16u << 20);
	assert_int_equal(d.batch_size, 100);
	assert_true(d.has_cursor);
	assert_string_equal(d.cursor_store, STORE_B);
	assert_true(d.cursor_seq == UINT64_MAX);
	assert_true(d.has_filter);
	assert_int_equal(d.n_types, 2);
	assert_string_equal(d.types[1], "coverage_gap");
	assert_int_equal(d.n_tags, 3);
	assert_string_equal(d.tags[2], "認証");
	assert_string_equal(d.instance, h.instance);
	assert_true(d.delta);
	assert_string_equal(d.cursor_epoch, "00000000000000ff");
	assert_int_equal(d.n_epochs, 2);
	assert_string_equal(d.epoch_ids[1], "fedcba9876543210");
	assert_true(d.epoch_starts[0] == 1 && d.epoch_starts[1] == UINT64_MAX);
	static const char order[] = "\"codecs\":[\"zstd\",\"gzip\"]";
	assert_non_null(memmem(p, len, order, sizeof(order) - 1));
	ags_wire_hello_free(&d);
	assert_null(d.doc);
	ags_wire_hello_free(&d); /* twice is harmless */

	/* Without cursor and filter; an empty cursor store is fine. */
	ags_frame_buf_reset(&b);
	h.has_filter = 0;
	h.cursor_store = "";
	h.cursor_seq = 0;
	h.codecs = 0;
	h.instance = NULL;
	h.delta = 0;
	h.cursor_epoch = NULL;
	h.n_epochs = 0;
	assert_int_equal(ags_wire_hello_encode(&h, &b, &err), 0);
	p = only_frame(&b, AGS_FRAME_HELLO, &len);
	assert_int_equal(ags_wire_hello_decode(p, len, &d, &err), 0);
	assert_null(d.instance);
	assert_false(d.delta);
	assert_null(d.cursor_epoch);
	assert_int_equal(d.n_epochs, 0);
	assert_false(d.has_filter);
	assert_int_equal(d.n_types, 0);
	assert_true(d.has_cursor);
	assert_string_equal(d.cursor_store, "");
	assert_int_equal(d.codecs, 0);
	ags_wire_hello_free(&d);

	/* An instance that is not a short string is refused, by name. */
	h.instance = "bad\ninstance";
	ags_frame_buf_reset(&b);
	assert_int_equal(ags_wire_hello_encode(&h, &b, &err), AGS_ERR_INVALID);
	assert_string_equal(err.field, "instance");
	static const char bad[] =
	    "{\"proto\":1,\"node\":\"n1\",\"tenant\":\"default\",\"store\":\"" STORE_A
	    "\",\"codecs\":[],\"maxFrame\":16777216,\"batchSize\":100,\"instance\":7}";
	assert_int_equal(ags_wire_hello_decode((const uint8_t *)bad, sizeof(bad) - 1, &d, &err),
	                 AGS_ERR_PROTO);
	assert_string_equal(err.field, "instance");
	ags_frame_buf_free(&b);
}

static const char base_hello[] =
    "{\"proto\":1,\"node\":\"n1\",\"tenant\":\"default\",\"store\":\"" STORE_A "\","
    "\"codecs\":[\"zstd\",\"gzip\"],\"maxFrame\":16777216,\"batchSize\":100,"
    "\"cursor\":{\"store\":\"\",\"seq\":0},\"filter\":{\"types\":[\"a\"],\"tags\":[\"b\"]}}";

/*
 * The base HELLO with the member at JSON pointer `ptr` set to the JSON text
 * `value`, or removed when value is NULL. Returns malloc'd text.
 */
static char *mutated(const char *base, const char *ptr, const char *value, size_t *len)
{
	yyjson_doc *doc = yyjson_read(base, strlen(base), 0);
	assert_non_null(doc);
	yyjson_mut_doc *m = yyjson_doc_mut_copy(doc, NULL);
	yyjson_doc_free(doc);
	if (value) {
		yyjson_doc *v = yyjson_read(value, strlen(value), 0);
		assert_non_null(v);
		yyjson_mut_val *mv = yyjson_val_mut_copy(m, yyjson_doc_get_root(v));
		yyjson_doc_free(v);
		assert_true(yyjson_mut_doc_ptr_set(m, ptr, mv));
	} else {
		assert_non_null(yyjson_mut_doc_ptr_remove(m, ptr));
	}
	char *s = yyjson_mut_write(m, 0, len);
	yyjson_mut_doc_free(m);
	return s;
}

static char *repeat_json_array(const char *item, int n)
{
	size_t cap = (strlen(item) + 1) * (size_t)n + 3;
	char *s = malloc(cap), *p = s;
	*p++ = '[';
	for (int i = 0; i < n; i++)
		p += snprintf(p, cap - (size_t)(p - s), "%s%s", i ? "," : "", item);
	*p++ = ']';
	*p = '\0';
	return s;
}

static void hello_validation_names_the_field(void **state)
{
	(void)state;
	char long_str[300];
	memset(long_str, 'x', sizeof(long_str));
	long_str[0] = '"';
	long_str[258] = '"';
	long_str[259] = '\0'; /* a 257-byte string */
	char *many_types = repeat_json_array("\"t\"", 65);
	char *many_codecs = repeat_json_array("\"zstd\"", 17);

	const struct {
		const char *ptr;
		const char *value; /* NULL: remove */
		int rc;
		const char *field;
	} cases[] = {
	    {"/proto", NULL, AGS_ERR_PROTO, "proto"},
	    {"/proto", "\"1\"", AGS_ERR_PROTO, "proto"},
	    {"/proto", "1.0", AGS_ERR_PROTO, "proto"},
	    {"/proto", "2", AGS_ERR_UNSUPPORTED, "proto"},
	    {"/proto", "0", AGS_ERR_UNSUPPORTED, "proto"},
	    {"/proto", "-1", AGS_ERR_UNSUPPORTED, "proto"},
	    {"/node", NULL, AGS_ERR_PROTO, "node"},
	    {"/node", "\"\"", AGS_ERR_PROTO, "node"},
	    {"/node", long_str, AGS_ERR_PROTO, "node"},
	    {"/node", "\"a\\nb\"", AGS_ERR_PROTO, "node"},
	    {"/node", "5", AGS_ERR_PROTO, "node"},
	    {"/tenant", NULL, AGS_ERR_PROTO, "tenant"},
	    {"/tenant", "\"\"", AGS_ERR_PROTO, "tenant"},
	    {"/store", "\"0123456789ABCDEF0123456789ABCDEF\"", AGS_ERR_PROTO, "store"},
	    {"/store", "\"0123456789abcdef0123456789abcde\"", AGS_ERR_PROTO, "store"},
	    {"/store", NULL, AGS_ERR_PROTO, "store"},
	    {"/codecs", "\"zstd\"", AGS_ERR_PROTO, "codecs"},
	    {"/codecs", "[1]", AGS_ERR_PROTO, "codecs[0]"},
	    {"/codecs", many_codecs, AGS_ERR_PROTO, "codecs"},
	    {"/codecs", NULL, AGS_ERR_PROTO, "codecs"},
	    {"/maxFrame", "100", AGS_ERR_PROTO, "maxFrame"},
	    {"/maxFrame", "67108865", AGS_ERR_PROTO, "maxFrame"},
	    {"/maxFrame", "-1", AGS_ERR_PROTO, "maxFrame"},
	    {"/maxFrame", "65536.5", AGS_ERR_PROTO, "maxFrame"},
	    {"/batchSize", "0", AGS_ERR_PROTO, "batchSize"},
	    {"/batchSize", NULL, AGS_ERR_PROTO, "batchSize"},
	    {"/cursor", "\"x\"", AGS_ERR_PROTO, "cursor"},
	    {"/cursor", "{}", AGS_ERR_PROTO, "cursor.store"},
	    {"/cursor/store", "\"zz\"", AGS_ERR_PROTO, "cursor.store"},
	    {"/cursor/seq", "-1", AGS_ERR_PROTO, "cursor.seq"},
	    {"/cursor/seq", NULL, AGS_ERR_PROTO, "cursor.seq"},
	    {"/filter", "[]", AGS_ERR_PROTO, "filter"},
	    {"/filter/types", "\"a\"", AGS_ERR_PROTO, "filter.types"},
	    {"/filter/types", many_types, AGS_ERR_PROTO, "filter.types"},
	    {"/filter/types", "[\"a\",\"\"]", AGS_ERR_PROTO, "filter.types[1]"},
	    {"/filter/tags", "[1]", AGS_ERR_PROTO, "filter.tags[0]"},
	    /* Store epochs (PROTOCOL.md): 16 lowercase hex ids, 1-32 of them, starts >= 1 and
	     * never going down. */
	    {"/cursor/epoch", "\"0123456789ABCDEF\"", AGS_ERR_PROTO, "cursor.epoch"},
	    {"/cursor/epoch", "5", AGS_ERR_PROTO, "cursor.epoch"},
	    {"/epochs", "[]", AGS_ERR_PROTO, "epochs"},
	    {"/epochs", "{}", AGS_ERR_PROTO, "epochs"},
	    {"/epochs", "[{\"id\":\"0123456789abcde\",\"start\":1}]", AGS_ERR_PROTO, "epochs[0]"},
	    {"/epochs", "[{\"id\":\"0123456789abcdef\",\"start\":0}]", AGS_ERR_PROTO,
	     "epochs[0].start"},
	    {"/epochs", "[{\"id\":\"0123456789abcdef\"}]", AGS_ERR_PROTO, "epochs[0].start"},
	    {"/epochs",
	     "[{\"id\":\"0123456789abcdef\",\"start\":5},{\"id\":\"0123456789abcdee\",\"start\":4}"
	     "]",
	     AGS_ERR_PROTO, "epochs[1].start"},
	    {"/epochs", "[{\"id\":\"0123456789abcdef\",\"start\":5}]", 0, NULL},
	    {"/cursor/epoch", "\"0123456789abcdef\"", 0, NULL},
	    /* Accepted: unknown members, unknown codecs, absent optional parts. */
	    {"/future", "{\"x\":1}", 0, NULL},
	    {"/codecs", "[\"brotli\",\"gzip\"]", 0, NULL},
	    {"/cursor", NULL, 0, NULL},
	    {"/filter", NULL, 0, NULL},
	    {"/filter/tags", NULL, 0, NULL},
	    {"/maxFrame", "65536", 0, NULL},
	    {"/maxFrame", "67108864", 0, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len;
		char *json = mutated(base_hello, cases[i].ptr, cases[i].value, &len);
		ags_wire_hello d;
		ags_error err;
		int rc = ags_wire_hello_decode((const uint8_t *)json, len, &d, &err);
		if (rc != cases[i].rc)
			print_error("case %zu (%s): got %d: %s\n", i, json, rc, err.message);
		assert_int_equal(rc, cases[i].rc);
		if (rc) {
			assert_string_equal(err.field, cases[i].field);
			assert_true(err.message[0] != '\0');
			assert_null(d.doc);
		} else {
			ags_wire_hello_free(&d);
		}
		free(json);
	}
	free(many_types);
	free(many_codecs);
}

static void hello_version_is_checked_before_anything_else(void **state)
{
	(void)state;
	static const char v2[] = "{\"proto\":2,\"whatever\":\"a future hello\"}";
	ags_wire_hello d;
	ags_error err;
	assert_int_equal(ags_wire_hello_decode((const uint8_t *)v2, strlen(v2), &d, &err),
	                 AGS_ERR_UNSUPPORTED);
	assert_string_equal(err.field, "proto");
	assert_non_null(strstr(err.message, "2"));
	assert_int_equal(ags_app_error_from_err(AGS_ERR_UNSUPPORTED), AGS_APP_VERSION_MISMATCH);
}

static void hello_malformed_json_and_duplicates(void **state)
{
	(void)state;
	ags_wire_hello d;
	ags_error err;
	static const char dup[] = "{\"proto\":1,\"node\":\"a\",\"node\":\"b\"}";
	assert_int_equal(ags_wire_hello_decode((const uint8_t *)dup, strlen(dup), &d, &err),
	                 AGS_ERR_PROTO);
	assert_string_equal(err.field, "node");
	static const char bad[] = "{\"proto\":1,\"node\":}";
	assert_int_equal(ags_wire_hello_decode((const uint8_t *)bad, strlen(bad), &d, &err),
	                 AGS_ERR_JSON);
	assert_int_equal(err.offset, 18);
	static const char arr[] = "[1]";
	assert_int_equal(ags_wire_hello_decode((const uint8_t *)arr, 3, &d, &err), AGS_ERR_PROTO);
	assert_int_equal(ags_wire_hello_decode((const uint8_t *)"", 0, &d, &err), AGS_ERR_JSON);
	/* Not NUL-terminated: only `len` bytes are read. */
	assert_int_equal(ags_wire_hello_decode((const uint8_t *)base_hello, 10, &d, &err),
	                 AGS_ERR_JSON);
}

static void hello_encoder_refuses_what_a_peer_would(void **state)
{
	(void)state;
	char long_node[258];
	memset(long_node, 'n', 257);
	long_node[257] = '\0';
	static const char *bad_type[] = {""};
	const struct {
		int what;
		const char *field;
	} cases[] = {
	    {0, "proto"},           {1, "node"},         {2, "node"},
	    {3, "tenant"},          {4, "store"},        {5, "maxFrame"},
	    {6, "batchSize"},       {7, "cursor.store"}, {8, "filter.types"},
	    {9, "filter.types[0]"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ags_wire_hello h;
		ags_frame_buf b;
		ags_error err;
		full_hello(&h);
		switch (cases[i].what) {
		case 0:
			h.proto = 2;
			break;
		case 1:
			h.node = long_node;
			break;
		case 2:
			h.node = "tab\there";
			break;
		case 3:
			h.tenant = NULL;
			break;
		case 4:
			h.store = "xyz";
			break;
		case 5:
			h.max_frame = 1000;
			break;
		case 6:
			h.batch_size = 0;
			break;
		case 7:
			h.cursor_store = "ABC";
			break;
		case 8:
			h.n_types = AGS_WIRE_FILTER_MAX + 1;
			break;
		case 9:
			h.n_types = 1;
			h.types[0] = bad_type[0];
			break;
		}
		ags_frame_buf_init(&b, 0);
		assert_int_equal(ags_wire_hello_encode(&h, &b, &err), AGS_ERR_INVALID);
		assert_string_equal(err.field, cases[i].field);
		assert_int_equal(b.len, 0);
		ags_frame_buf_free(&b);
	}
}

static void ack_round_trip(void **state)
{
	(void)state;
	ags_wire_ack a = {.request_id = UINT64_MAX - 1,
	                  .success = 0,
	                  .received_count = 100,
	                  .applied = 97,
	                  .seq = 123456789};
	ags_wire_ack_error errs[3] = {
	    {"p1", "version must be >= 1", AGS_ERR_PATTERN},
	    {"ключ \"quoted\"", "checksum mismatch: ✗", AGS_ERR_CHECKSUM},
	    {"", "entry without an id", INT32_MIN},
	};
	ags_frame_buf b;
	ags_wire_ack d;
	ags_error err;
	size_t len;

	ags_frame_buf_init(&b, 0);
	assert_int_equal(ags_wire_ack_encode(&a, errs, 3, &b, &err), 0);
	const uint8_t *p = only_frame(&b, AGS_FRAME_ACK, &len);
	assert_int_equal(ags_wire_ack_decode(p, len, 10, &d, &err), 0);
	assert_true(d.request_id == UINT64_MAX - 1);
	assert_false(d.success);
	assert_int_equal(d.received_count, 100);
	assert_int_equal(d.applied, 97);
	assert_int_equal(d.seq, 123456789);
	assert_int_equal(d.n_errors, 3);
	for (int i = 0; i < 3; i++) {
		assert_string_equal(d.errors[i].pattern_id, errs[i].pattern_id);
		assert_string_equal(d.errors[i].error, errs[i].error);
		assert_int_equal(d.errors[i].code, errs[i].code);
	}
	/* Bounded: more errors than the caller accepts. */
	ags_wire_ack_free(&d);
	assert_int_equal(ags_wire_ack_decode(p, len, 2, &d, &err), AGS_ERR_TOO_LARGE);
	assert_string_equal(err.field, "errors");
	assert_null(d.errors);

	/* "retry": written only when set (a batch refused whole: PROTOCOL.md, Refusals). */
	assert_false(d.retry);
	assert_null(memmem(p, len, "retry", 5));
	ags_frame_buf_reset(&b);
	a.retry = 1;
	assert_int_equal(ags_wire_ack_encode(&a, errs, 1, &b, &err), 0);
	p = only_frame(&b, AGS_FRAME_ACK, &len);
	assert_non_null(memmem(p, len, "\"retry\":true", 12));
	assert_int_equal(ags_wire_ack_decode(p, len, 10, &d, &err), 0);
	assert_true(d.retry);
	ags_wire_ack_free(&d);
	a.retry = 0;

	/* Success without errors. */
	ags_frame_buf_reset(&b);
	a.success = 1;
	a.applied = 100;
	assert_int_equal(ags_wire_ack_encode(&a, NULL, 0, &b, &err), 0);
	p = only_frame(&b, AGS_FRAME_ACK, &len);
	assert_int_equal(ags_wire_ack_decode(p, len, 0, &d, &err), 0);
	assert_true(d.success);
	assert_int_equal(d.n_errors, 0);
	assert_null(d.errors);
	ags_wire_ack_free(&d);

	/* The encoder keeps applied <= receivedCount. */
	a.applied = 101;
	assert_int_equal(ags_wire_ack_encode(&a, NULL, 0, &b, &err), AGS_ERR_INVALID);
	assert_string_equal(err.field, "applied");
	ags_frame_buf_free(&b);
}

static const char base_ack[] = "{\"requestId\":1,\"success\":false,\"receivedCount\":3,"
                               "\"applied\":2,\"errors\":[{\"patternId\":\"a\",\"error\":\"bad\","
                               "\"code\":-4},{\"patternId\":\"b\",\"error\":\"bad\",\"code\":-4}],"
                               "\"seq\":9}";

static void ack_validation_names_the_field(void **state)
{
	(void)state;
	const struct {
		const char *ptr;
		const char *value;
		int rc;
		const char *field;
	} cases[] = {
	    {"/requestId", "-1", AGS_ERR_PROTO, "requestId"},
	    {"/requestId", NULL, AGS_ERR_PROTO, "requestId"},
	    {"/success", "\"yes\"", AGS_ERR_PROTO, "success"},
	    {"/receivedCount", "1.0", AGS_ERR_PROTO, "receivedCount"},
	    {"/applied", "4", AGS_ERR_PROTO, "applied"},
	    {"/seq", NULL, AGS_ERR_PROTO, "seq"},
	    {"/errors", NULL, AGS_ERR_PROTO, "errors"},
	    {"/errors", "{}", AGS_ERR_PROTO, "errors"},
	    {"/errors/1", "7", AGS_ERR_PROTO, "errors[1]"},
	    {"/errors/1/code", "\"x\"", AGS_ERR_PROTO, "errors[1].code"},
	    {"/errors/1/code", "2147483648", AGS_ERR_PROTO, "errors[1].code"},
	    {"/errors/0/patternId", NULL, AGS_ERR_PROTO, "errors[0].patternId"},
	    {"/errors/0/error", "null", AGS_ERR_PROTO, "errors[0].error"},
	    {"/extra", "[]", 0, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len;
		char *json = mutated(base_ack, cases[i].ptr, cases[i].value, &len);
		ags_wire_ack d;
		ags_error err;
		int rc = ags_wire_ack_decode((const uint8_t *)json, len, 0, &d, &err);
		if (rc != cases[i].rc)
			print_error("case %zu (%s): got %d: %s\n", i, json, rc, err.message);
		assert_int_equal(rc, cases[i].rc);
		if (rc) {
			assert_string_equal(err.field, cases[i].field);
			assert_null(d.errors);
		}
		ags_wire_ack_free(&d);
		free(json);
	}
}

static void error_round_trip_and_validation(void **state)
{
	(void)state;
	ags_frame_buf b;
	ags_wire_error d;
	ags_error err;
	size_t len;

	ags_frame_buf_init(&b, 0);
	assert_int_equal(ags_wire_error_encode(AGS_APP_VERSION_MISMATCH,
	                                       "proto 2 is not supported; \"speak\" 1 ✓", &b, &err),
	                 0);
	const uint8_t *p = only_frame(&b, AGS_FRAME_ERROR, &len);
	assert_int_equal(ags_wire_error_decode(p, len, &d, &err), 0);
	assert_int_equal(d.code, AGS_APP_VERSION_MISMATCH);
	assert_string_equal(d.text, "proto 2 is not supported; \"speak\" 1 ✓");
	ags_wire_error_free(&d);
	ags_frame_buf_free(&b);

	static const struct {
		const char *json;
		const char *field;
	} cases[] = {
	    {"{\"error\":\"x\"}", "code"},
	    {"{\"code\":-1,\"error\":\"x\"}", "code"},
	    {"{\"code\":4611686018427387904,\"error\":\"x\"}", "code"},
	    {"{\"code\":257}", "error"},
	    {"{\"code\":257,\"error\":1}", "error"},
	    {"{\"code\":257,\"error\":\"a\\u0000b\"}", "error"},
	    /* Control characters would forge log lines (issue 17.4). */
	    {"{\"code\":257,\"error\":\"a\\nINFO forged\"}", "error"},
	    {"{\"code\":257,\"error\":\"a\\rb\"}", "error"},
	    {"{\"code\":257,\"error\":\"a\\u001bb\"}", "error"},
	    {"{\"code\":257,\"error\":\"a\\u007fb\"}", "error"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(ags_wire_error_decode((const uint8_t *)cases[i].json,
		                                       strlen(cases[i].json), &d, &err),
		                 AGS_ERR_PROTO);
		assert_string_equal(err.field, cases[i].field);
	}
	ags_frame_buf_init(&b, 0);
	assert_int_equal(ags_wire_error_encode(1, "two\nlines", &b, &err), AGS_ERR_INVALID);
	assert_string_equal(err.field, "error");
	ags_frame_buf_free(&b);
	char *big = malloc(AGS_WIRE_TEXT_MAX + 2);
	memset(big, 'e', AGS_WIRE_TEXT_MAX + 1);
	big[AGS_WIRE_TEXT_MAX + 1] = '\0';
	ags_frame_buf_init(&b, 0);
	assert_int_equal(ags_wire_error_encode(1, big, &b, &err), AGS_ERR_INVALID);
	assert_string_equal(err.field, "error");
	big[AGS_WIRE_TEXT_MAX] = '\0';
	assert_int_equal(ags_wire_error_encode(1, big, &b, &err), 0);
	p = only_frame(&b, AGS_FRAME_ERROR, &len);
	assert_int_equal(ags_wire_error_decode(p, len, &d, &err), 0);
	assert_int_equal(strlen(d.text), AGS_WIRE_TEXT_MAX);
	ags_wire_error_free(&d);
	ags_frame_buf_free(&b);
	free(big);
}

static void auth_round_trip_and_validation(void **state)
{
	(void)state;
	static const char jwt[] = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZ2VudC0xIn0.c2lnbmF0dXJl";
	ags_frame_buf b;
	ags_wire_auth d;
	ags_error err;
	size_t len;

	ags_frame_buf_init(&b, 0);
	assert_int_equal(ags_wire_auth_encode(jwt, &b, &err), 0);
	const uint8_t *p = only_frame(&b, AGS_FRAME_AUTH, &len);
	assert_int_equal(ags_wire_auth_decode(p, len, &d, &err), 0);
	assert_string_equal(d.token, jwt);
	ags_wire_auth_free(&d);
	assert_int_equal(ags_wire_auth_encode("", &b, &err), AGS_ERR_INVALID);
	assert_string_equal(err.field, "token");
	ags_frame_buf_free(&b);

	static const char *bad[] = {"{}", "{\"token\":\"\"}", "{\"token\":7}",
	                            "{\"token\":\"a\\nb\"}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(
		    ags_wire_auth_decode((const uint8_t *)bad[i], strlen(bad[i]), &d, &err),
		    AGS_ERR_PROTO);
		assert_string_equal(err.field, "token");
	}
}

static void vector_clock_round_trip_and_validation(void **state)
{
	(void)state;
	const char *agents[] = {"agent-1", "agent-2", "ägent-3"};
	const uint64_t counters[] = {0, 42, UINT64_MAX};
	ags_frame_buf b;
	ags_wire_vclock d;
	ags_error err;
	size_t len;

	ags_frame_buf_init(&b, 0);
	for (int t = AGS_FRAME_PULL; t <= AGS_FRAME_PULL_DONE; t++) {
		ags_frame_buf_reset(&b);
		assert_int_equal(ags_wire_vclock_encode((uint8_t)t, agents, counters, 3, &b, &err),
		                 0);
		const uint8_t *p = only_frame(&b, t, &len);
		assert_int_equal(ags_wire_vclock_decode(p, len, &d, &err), 0);
		assert_int_equal(d.n, 3);
		for (int i = 0; i < 3; i++) {
			assert_string_equal(d.agents[i], agents[i]);
			assert_true(d.counters[i] == counters[i]);
		}
		ags_wire_vclock_free(&d);
	}
	const char *dup[] = {"a", "a"};
	assert_int_equal(ags_wire_vclock_encode(AGS_FRAME_PULL, dup, counters, 2, &b, &err),
	                 AGS_ERR_INVALID);
	assert_int_equal(ags_wire_vclock_encode(AGS_FRAME_HELLO, agents, counters, 3, &b, &err),
	                 AGS_ERR_INVALID);
	ags_frame_buf_free(&b);

	static const struct {
		const char *json;
		int rc;
		const char *field;
	} cases[] = {
	    {"{}", AGS_ERR_PROTO, "vectorClock"},
	    {"{\"vectorClock\":[]}", AGS_ERR_PROTO, "vectorClock"},
	    {"{\"vectorClock\":{\"a\":1,\"b\":-1}}", AGS_ERR_PROTO, "vectorClock[1]"},
	    {"{\"vectorClock\":{\"a\":1,\"a\":2}}", AGS_ERR_PROTO, "vectorClock[1]"},
	    {"{\"vectorClock\":{\"\":1}}", AGS_ERR_PROTO, "vectorClock[0]"},
	    {"{\"vectorClock\":{}}", 0, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = ags_wire_vclock_decode((const uint8_t *)cases[i].json,
		                                strlen(cases[i].json), &d, &err);
		assert_int_equal(rc, cases[i].rc);
		if (rc)
			assert_string_equal(err.field, cases[i].field);
		ags_wire_vclock_free(&d);
	}

	/* Too many entries. */
	size_t cap = (AGS_WIRE_VCLOCK_MAX + 1) * 16 + 32;
	char *big = malloc(cap), *q = big;
	q += snprintf(q, cap, "{\"vectorClock\":{");
	for (int i = 0; i <= AGS_WIRE_VCLOCK_MAX; i++)
		q += snprintf(q, cap - (size_t)(q - big), "%s\"a%d\":1", i ? "," : "", i);
	snprintf(q, cap - (size_t)(q - big), "}}");
	assert_int_equal(ags_wire_vclock_decode((const uint8_t *)big, strlen(big), &d, &err),
	                 AGS_ERR_TOO_LARGE);
	free(big);
}

static void hub_optional_members_round_trip(void **state)
{
	(void)state;
	ags_frame_buf b;
	ags_error err;
	size_t len;
	ags_frame_buf_init(&b, 0);

	/* ACK "conflicts". */
	const char *ids[] = {"rec-1", "ключ"};
	ags_wire_ack a = {.request_id = 5,
	                  .success = 1,
	                  .received_count = 2,
	                  .applied = 1,
	                  .seq = 9,
	                  .n_conflicts = 2,
	                  .conflicts = ids};
	ags_wire_ack d;
	assert_int_equal(ags_wire_ack_encode(&a, NULL, 0, &b, &err), 0);
	const uint8_t *p = only_frame(&b, AGS_FRAME_ACK, &len);
	assert_int_equal(ags_wire_ack_decode(p, len, 0, &d, &err), 0);
	assert_int_equal(d.n_conflicts, 2);
	assert_string_equal(d.conflicts[0], "rec-1");
	assert_string_equal(d.conflicts[1], "ключ");
	ags_wire_ack_free(&d);
	const char *bad_ids[] = {""};
	a.conflicts = bad_ids;
	a.n_conflicts = 1;
	ags_frame_buf_reset(&b);
	assert_int_equal(ags_wire_ack_encode(&a, NULL, 0, &b, &err), AGS_ERR_INVALID);
	assert_string_equal(err.field, "conflicts[0]");

	/* PULL_DONE "conflictSeq" and "conflicts". */
	const char *agents[] = {"a1", "a2"};
	uint64_t counters[] = {3, 4};
	ags_wire_vclock v = {.n = 2,
	                     .agents = agents,
	                     .counters = counters,
	                     .has_conflict_seq = 1,
	                     .conflict_seq = 77,
	                     .n_conflicts = 2,
	                     .conflicts = ids};
	ags_wire_vclock dv;
	ags_frame_buf_reset(&b);
	assert_int_equal(ags_wire_vclock_encode_ex(AGS_FRAME_PULL_DONE, &v, &b, &err), 0);
	p = only_frame(&b, AGS_FRAME_PULL_DONE, &len);
	assert_int_equal(ags_wire_vclock_decode(p, len, &dv, &err), 0);
	assert_int_equal(dv.n, 2);
	assert_true(dv.has_conflict_seq);
	assert_int_equal(dv.conflict_seq, 77);
	assert_int_equal(dv.n_conflicts, 2);
	assert_string_equal(dv.conflicts[1], "ключ");
	ags_wire_vclock_free(&dv);
	/* Absent, they stay absent. */
	ags_frame_buf_reset(&b);
	assert_int_equal(ags_wire_vclock_encode(AGS_FRAME_PULL, agents, counters, 2, &b, &err), 0);
	p = only_frame(&b, AGS_FRAME_PULL, &len);
	assert_int_equal(ags_wire_vclock_decode(p, len, &dv, &err), 0);
	assert_false(dv.has_conflict_seq);
	assert_int_equal(dv.n_conflicts, 0);
	ags_wire_vclock_free(&dv);
	ags_frame_buf_free(&b);

	static const struct {
		const char *json;
		int rc;
		const char *field;
	} cases[] = {
	    {"{\"vectorClock\":{},\"conflictSeq\":-1}", AGS_ERR_PROTO, "conflictSeq"},
	    {"{\"vectorClock\":{},\"conflictSeq\":1,\"conflictSeq\":2}", AGS_ERR_PROTO,
	     "conflictSeq"},
	    {"{\"vectorClock\":{},\"conflicts\":{}}", AGS_ERR_PROTO, "conflicts"},
	    {"{\"vectorClock\":{},\"conflicts\":[1]}", AGS_ERR_PROTO, "conflicts[0]"},
	    {"{\"vectorClock\":{},\"conflicts\":[\"\"]}", AGS_ERR_PROTO, "conflicts[0]"},
	    {"{\"vectorClock\":{},\"conflicts\":[\"a\"],\"conflictSeq\":0}", 0, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = ags_wire_vclock_decode((const uint8_t *)cases[i].json,
		                                strlen(cases[i].json), &dv, &err);
		assert_int_equal(rc, cases[i].rc);
		if (rc)
			assert_string_equal(err.field, cases[i].field);
		ags_wire_vclock_free(&dv);
	}
	const char *ack_bad = "{\"requestId\":1,\"success\":true,\"receivedCount\":1,"
	                      "\"applied\":1,\"errors\":[],\"seq\":1,\"conflicts\":\"x\"}";
	assert_int_equal(
	    ags_wire_ack_decode((const uint8_t *)ack_bad, strlen(ack_bad), 0, &d, &err),
	    AGS_ERR_PROTO);
	assert_string_equal(err.field, "conflicts");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(hello_round_trip),
	    cmocka_unit_test(hello_validation_names_the_field),
	    cmocka_unit_test(hello_version_is_checked_before_anything_else),
	    cmocka_unit_test(hello_malformed_json_and_duplicates),
	    cmocka_unit_test(hello_encoder_refuses_what_a_peer_would),
	    cmocka_unit_test(ack_round_trip),
	    cmocka_unit_test(ack_validation_names_the_field),
	    cmocka_unit_test(error_round_trip_and_validation),
	    cmocka_unit_test(auth_round_trip_and_validation),
	    cmocka_unit_test(vector_clock_round_trip_and_validation),
	    cmocka_unit_test(hub_optional_members_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
