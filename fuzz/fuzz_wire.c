/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzzes the JSON message decoders. The first input byte picks the message
 * (HELLO, ACK, ERROR, AUTH, vector clock); the rest is its payload. Whatever
 * decodes must encode again (the encoders accept everything the decoders do)
 * and decode to the same values.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "frame.h"
#include "wire.h"

#define MAX_ERRORS 1000

static const uint8_t *payload(const ags_frame_buf *b, size_t *len)
{
	*len = b->len - AGS_FRAME_HEADER_LEN;
	return b->data + AGS_FRAME_HEADER_LEN;
}

static void streq(const char *a, const char *b)
{
	if (strcmp(a, b) != 0)
		abort();
}

static void hello(const uint8_t *p, size_t n, ags_frame_buf *buf)
{
	ags_wire_hello a, b;
	size_t len;
	if (ags_wire_hello_decode(p, n, &a, NULL))
		return;
	if (ags_wire_hello_encode(&a, buf, NULL))
		abort();
	const uint8_t *q = payload(buf, &len);
	if (ags_wire_hello_decode(q, len, &b, NULL))
		abort();
	streq(a.node, b.node);
	streq(a.tenant, b.tenant);
	streq(a.store, b.store);
	if (a.codecs != b.codecs || a.max_frame != b.max_frame || a.batch_size != b.batch_size ||
	    a.has_cursor != b.has_cursor || a.has_filter != b.has_filter ||
	    a.n_types != b.n_types || a.n_tags != b.n_tags)
		abort();
	if (a.has_cursor) {
		streq(a.cursor_store, b.cursor_store);
		if (a.cursor_seq != b.cursor_seq)
			abort();
	}
	for (size_t i = 0; i < a.n_types; i++)
		streq(a.types[i], b.types[i]);
	for (size_t i = 0; i < a.n_tags; i++)
		streq(a.tags[i], b.tags[i]);
	ags_wire_hello_free(&a);
	ags_wire_hello_free(&b);
}

static void ack(const uint8_t *p, size_t n, ags_frame_buf *buf)
{
	ags_wire_ack a, b;
	size_t len;
	if (ags_wire_ack_decode(p, n, MAX_ERRORS, &a, NULL))
		return;
	if (a.n_errors > MAX_ERRORS || a.applied > a.received_count)
		abort();
	if (ags_wire_ack_encode(&a, a.errors, a.n_errors, buf, NULL))
		abort();
	const uint8_t *q = payload(buf, &len);
	if (ags_wire_ack_decode(q, len, MAX_ERRORS, &b, NULL))
		abort();
	if (a.request_id != b.request_id || a.success != b.success ||
	    a.received_count != b.received_count || a.applied != b.applied || a.seq != b.seq ||
	    a.n_errors != b.n_errors)
		abort();
	for (size_t i = 0; i < a.n_errors; i++) {
		streq(a.errors[i].pattern_id, b.errors[i].pattern_id);
		streq(a.errors[i].error, b.errors[i].error);
		if (a.errors[i].code != b.errors[i].code)
			abort();
	}
	ags_wire_ack_free(&a);
	ags_wire_ack_free(&b);
}

static void error_msg(const uint8_t *p, size_t n, ags_frame_buf *buf)
{
	ags_wire_error a, b;
	size_t len;
	if (ags_wire_error_decode(p, n, &a, NULL))
		return;
	if (ags_wire_error_encode(a.code, a.text, buf, NULL))
		abort();
	const uint8_t *q = payload(buf, &len);
	if (ags_wire_error_decode(q, len, &b, NULL) || a.code != b.code)
		abort();
	streq(a.text, b.text);
	ags_wire_error_free(&a);
	ags_wire_error_free(&b);
}

static void auth(const uint8_t *p, size_t n, ags_frame_buf *buf)
{
	ags_wire_auth a, b;
	size_t len;
	if (ags_wire_auth_decode(p, n, &a, NULL))
		return;
	if (ags_wire_auth_encode(a.token, buf, NULL))
		abort();
	const uint8_t *q = payload(buf, &len);
	if (ags_wire_auth_decode(q, len, &b, NULL))
		abort();
	streq(a.token, b.token);
	ags_wire_auth_free(&a);
	ags_wire_auth_free(&b);
}

static void vclock(const uint8_t *p, size_t n, ags_frame_buf *buf, uint8_t type)
{
	ags_wire_vclock a, b;
	size_t len;
	if (ags_wire_vclock_decode(p, n, &a, NULL))
		return;
	if (ags_wire_vclock_encode(type, a.agents, a.counters, a.n, buf, NULL))
		abort();
	const uint8_t *q = payload(buf, &len);
	if (ags_wire_vclock_decode(q, len, &b, NULL) || a.n != b.n)
		abort();
	for (size_t i = 0; i < a.n; i++) {
		streq(a.agents[i], b.agents[i]);
		if (a.counters[i] != b.counters[i])
			abort();
	}
	ags_wire_vclock_free(&a);
	ags_wire_vclock_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	ags_frame_buf buf;
	ags_frame_buf_init(&buf, 0);
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	switch (data[0] % 6) {
	case 0:
		hello(p, n, &buf);
		break;
	case 1:
		ack(p, n, &buf);
		break;
	case 2:
		error_msg(p, n, &buf);
		break;
	case 3:
		auth(p, n, &buf);
		break;
	case 4:
		vclock(p, n, &buf, AGS_FRAME_PULL);
		break;
	default:
		vclock(p, n, &buf, AGS_FRAME_PULL_DONE);
		break;
	}
	ags_frame_buf_free(&buf);
	return 0;
}
