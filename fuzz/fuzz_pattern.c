/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the pattern codec. Parses arbitrary bytes; whatever
 * parses must serialise to text that parses again to the same pattern (same
 * checksum, id, version) and serialises to the same bytes, and the trusted
 * fast path must read that text back unchanged. Arbitrary bytes are also fed
 * to the trusted path, which must never crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agentsync/agentsync.h"
#include "pattern.h"

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c))                                                                          \
			abort();                                                                   \
	} while (0)

static void check_same(const ags_pattern *p, const ags_pattern *q)
{
	size_t plen, qlen;
	const char *pj = ags_pattern_json(p, &plen), *qj = ags_pattern_json(q, &qlen);
	CHECK(strcmp(ags_pattern_checksum(p), ags_pattern_checksum(q)) == 0);
	CHECK(strcmp(ags_pattern_id(p), ags_pattern_id(q)) == 0);
	CHECK(ags_pattern_version(p) == ags_pattern_version(q));
	CHECK(ags_pattern_timestamp(p) == ags_pattern_timestamp(q));
	CHECK(ags_pattern_is_tombstone(p) == ags_pattern_is_tombstone(q));
	CHECK(ags_pattern_tag_count(p) == ags_pattern_tag_count(q));
	CHECK(plen == qlen && memcmp(pj, qj, plen) == 0);
	CHECK(ags_pattern_compare(p, q) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	ags_pattern *p = NULL, *q = NULL, *t = NULL, *d = NULL;
	ags_error err;

	if (ags_pattern_parse_trusted(text, size, &t) == 0) {
		/* Touch what a reader would touch. */
		(void)strlen(ags_pattern_id(t));
		(void)strlen(ags_pattern_json(t, NULL));
		for (size_t i = 0; i < ags_pattern_tag_count(t); i++)
			(void)ags_pattern_has_tag(t, ags_pattern_tag(t, i));
		ags_pattern_del(t);
		t = NULL;
	}

	if (ags_pattern_parse(text, size, NULL, &p, &err) != 0) {
		CHECK(p == NULL);
		CHECK(err.code < 0);
		CHECK(memchr(err.message, '\0', sizeof(err.message)) != NULL);
		CHECK(memchr(err.field, '\0', sizeof(err.field)) != NULL);
		return 0;
	}
	CHECK(strlen(ags_pattern_checksum(p)) == 64);

	size_t len;
	const char *json = ags_pattern_json(p, &len);
	CHECK(strlen(json) == len);
	CHECK(ags_pattern_parse(json, len, NULL, &q, &err) == 0);
	check_same(p, q);

	CHECK(ags_pattern_parse_trusted(json, len, &t) == 0);
	check_same(p, t);

	d = ags_pattern_dup(p);
	CHECK(d != NULL);
	check_same(p, d);

	ags_pattern_del(d);
	ags_pattern_del(t);
	ags_pattern_del(q);
	ags_pattern_del(p);
	return 0;
}
