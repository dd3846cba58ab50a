/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for vector clocks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "agentsync/agentsync.h"
#include "vclock.h"

/* Makes a clock from "agent=n" pairs (NULL-terminated). */
static ags_vclock *clock_of(const char *first, ...)
{
	ags_vclock *v;
	va_list ap;
	assert_int_equal(ags_vclock_new(&v), 0);
	va_start(ap, first);
	for (const char *s = first; s; s = va_arg(ap, const char *)) {
		char agent[64];
		unsigned long long n;
		assert_int_equal(sscanf(s, "%63[^=]=%llu", agent, &n), 2);
		assert_int_equal(ags_vclock_set(v, agent, n), 0);
	}
	va_end(ap);
	return v;
}

static int cmp(const char *a_json, const char *b_json)
{
	ags_vclock *a, *b;
	ags_error err;
	assert_int_equal(ags_vclock_from_json(a_json, strlen(a_json), &a, &err), 0);
	assert_int_equal(ags_vclock_from_json(b_json, strlen(b_json), &b, &err), 0);
	int r = ags_vclock_compare(a, b);
	ags_vclock_del(a);
	ags_vclock_del(b);
	return r;
}

static void set_get_tick_and_order(void **state)
{
	(void)state;
	ags_vclock *v = clock_of("carol=3", "alice=1", "bob=2", NULL);
	uint64_t x;
	assert_int_equal(ags_vclock_count(v), 3);
	/* Entries are kept sorted by agent id. */
	assert_string_equal(ags_vclock_agent(v, 0), "alice");
	assert_string_equal(ags_vclock_agent(v, 1), "bob");
	assert_string_equal(ags_vclock_agent(v, 2), "carol");
	assert_int_equal(ags_vclock_value(v, 2), 3);
	assert_null(ags_vclock_agent(v, 3));
	assert_int_equal(ags_vclock_value(v, 3), 0);

	assert_int_equal(ags_vclock_get(v, "bob", &x), 0);
	assert_int_equal(x, 2);
	assert_int_equal(ags_vclock_get(v, "dave", &x), 0);
	assert_int_equal(x, 0);

	/* Tick: the first tick of a new agent gives 1, then it counts up. */
	assert_int_equal(ags_vclock_tick(v, "dave"), 0);
	assert_int_equal(ags_vclock_get(v, "dave", &x), 0);
	assert_int_equal(x, 1);
	assert_int_equal(ags_vclock_tick(v, "alice"), 0);
	assert_int_equal(ags_vclock_get(v, "alice", &x), 0);
	assert_int_equal(x, 2);
	assert_int_equal(ags_vclock_count(v), 4);

	/* Overwrite, and the counter limit. */
	assert_int_equal(ags_vclock_set(v, "bob", UINT64_MAX), 0);
	assert_int_equal(ags_vclock_tick(v, "bob"), AGS_ERR_TOO_LARGE);
	assert_int_equal(ags_vclock_get(v, "bob", &x), 0);
	assert_int_equal(x, UINT64_MAX);

	/* Bad ids. */
	char longid[AGS_VCLOCK_AGENT_MAX + 2];
	memset(longid, 'a', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	assert_int_equal(ags_vclock_set(v, longid, 1), AGS_ERR_INVALID);
	longid[AGS_VCLOCK_AGENT_MAX] = '\0';
	assert_int_equal(ags_vclock_set(v, longid, 1), 0);
	assert_int_equal(ags_vclock_set(v, "", 1), AGS_ERR_INVALID);
	assert_int_equal(ags_vclock_set(v, "a\nb", 1), AGS_ERR_INVALID);
	assert_int_equal(ags_vclock_set(v, NULL, 1), AGS_ERR_INVALID);
	assert_int_equal(ags_vclock_tick(NULL, "a"), AGS_ERR_INVALID);
	assert_int_equal(ags_vclock_count(v), 5);

	/* dup is deep and independent. */
	ags_vclock *d = ags_vclock_dup(v);
	assert_non_null(d);
	assert_int_equal(ags_vclock_compare(v, d), AGS_VC_EQUAL);
	assert_int_equal(ags_vclock_tick(d, "alice"), 0);
	assert_int_equal(ags_vclock_compare(v, d), AGS_VC_BEFORE);
	ags_vclock_del(d);
	assert_null(ags_vclock_dup(NULL));
	ags_vclock_del(v);
	ags_vclock_del(NULL);
}

static void entry_limit(void **state)
{
	(void)state;
	ags_vclock *v = clock_of(NULL), *w = clock_of(NULL);
	char id[32];
	for (int i = 0; i < AGS_VCLOCK_MAX; i++) {
		snprintf(id, sizeof(id), "agent-%05d", i);
		assert_int_equal(ags_vclock_set(v, id, (uint64_t)i), 0);
	}
	assert_int_equal(ags_vclock_set(v, "one-too-many", 1), AGS_ERR_TOO_LARGE);
	assert_int_equal(ags_vclock_tick(v, "one-too-many"), AGS_ERR_TOO_LARGE);
	/* An existing entry can still change. */
	assert_int_equal(ags_vclock_tick(v, "agent-00000"), 0);
	assert_int_equal(ags_vclock_count(v), AGS_VCLOCK_MAX);

	/* A merge whose union is too large leaves the clock as it was. */
	assert_int_equal(ags_vclock_set(w, "zzz", 7), 0);
	assert_int_equal(ags_vclock_set(w, "agent-00001", 99), 0);
	assert_int_equal(ags_vclock_merge(v, w), AGS_ERR_TOO_LARGE);
	uint64_t x;
	assert_int_equal(ags_vclock_get(v, "agent-00001", &x), 0);
	assert_int_equal(x, 1);
	assert_int_equal(ags_vclock_count(v), AGS_VCLOCK_MAX);
	ags_vclock_del(v);
	ags_vclock_del(w);
}

static void compare_cases(void **state)
{
	(void)state;
	assert_int_equal(cmp("{}", "{}"), AGS_VC_EQUAL);
	assert_int_equal(cmp("{\"a\":1,\"b\":2}", "{\"b\":2,\"a\":1}"), AGS_VC_EQUAL);
	/* An explicit 0 equals absence. */
	assert_int_equal(cmp("{\"a\":1,\"z\":0}", "{\"a\":1}"), AGS_VC_EQUAL);
	assert_int_equal(cmp("{}", "{\"a\":0}"), AGS_VC_EQUAL);

	assert_int_equal(cmp("{\"a\":1,\"b\":2}", "{\"a\":1,\"b\":3}"), AGS_VC_BEFORE);
	assert_int_equal(cmp("{\"a\":1,\"b\":3}", "{\"a\":1,\"b\":2}"), AGS_VC_AFTER);
	assert_int_equal(cmp("{}", "{\"a\":1}"), AGS_VC_BEFORE);
	assert_int_equal(cmp("{\"a\":1}", "{}"), AGS_VC_AFTER);
	assert_int_equal(cmp("{\"a\":2,\"b\":1}", "{\"a\":1,\"b\":2}"), AGS_VC_CONCURRENT);

	/*
	 * Keys present on one side only. Seed 004's detectConflict only
	 * walked the remote clock, so a local-only entry was never seen: here
	 * local {a:1,b:5} vs remote {a:2} must be concurrent (local is ahead
	 * on b, remote on a), not "remote after".
	 */
	assert_int_equal(cmp("{\"a\":1,\"b\":5}", "{\"a\":2}"), AGS_VC_CONCURRENT);
	assert_int_equal(cmp("{\"a\":2}", "{\"a\":1,\"b\":5}"), AGS_VC_CONCURRENT);
	assert_int_equal(cmp("{\"a\":1,\"b\":5}", "{\"a\":1}"), AGS_VC_AFTER);
	assert_int_equal(cmp("{\"a\":1}", "{\"a\":1,\"b\":5}"), AGS_VC_BEFORE);
	/* Disjoint agents on both sides. */
	assert_int_equal(cmp("{\"a\":1}", "{\"b\":1}"), AGS_VC_CONCURRENT);
	assert_int_equal(cmp("{\"a\":1,\"c\":1}", "{\"b\":1,\"c\":2}"), AGS_VC_CONCURRENT);
	assert_int_equal(cmp("{\"a\":1,\"c\":3}", "{\"b\":0,\"c\":2}"), AGS_VC_AFTER);

	/* Large counters compare as unsigned 64-bit. */
	assert_int_equal(cmp("{\"a\":18446744073709551615}", "{\"a\":18446744073709551614}"),
	                 AGS_VC_AFTER);

	/* NULL is the empty clock. */
	ags_vclock *v = clock_of("a=1", NULL);
	assert_int_equal(ags_vclock_compare(NULL, NULL), AGS_VC_EQUAL);
	assert_int_equal(ags_vclock_compare(v, NULL), AGS_VC_AFTER);
	assert_int_equal(ags_vclock_compare(NULL, v), AGS_VC_BEFORE);
	ags_vclock_del(v);
}

static void merge_is_elementwise_max(void **state)
{
	(void)state;
	ags_vclock *v = clock_of("a=5", "b=1", "d=4", NULL);
	ags_vclock *w = clock_of("a=2", "b=7", "c=3", "e=9", NULL);
	ags_vclock *copy = ags_vclock_dup(w);
	char *json;
	size_t len;

	assert_int_equal(ags_vclock_merge(v, w), 0);
	assert_int_equal(ags_vclock_to_json(v, &json, &len), 0);
	assert_string_equal(json, "{\"a\":5,\"b\":7,\"c\":3,\"d\":4,\"e\":9}");
	assert_int_equal(len, strlen(json));
	free(json);
	/* The merge dominates both inputs, and `other` is not changed. */
	assert_int_equal(ags_vclock_compare(v, w), AGS_VC_AFTER);
	assert_int_equal(ags_vclock_compare(w, copy), AGS_VC_EQUAL);

	/* Merging again, or merging a clock into itself, changes nothing. */
	ags_vclock *before = ags_vclock_dup(v);
	assert_int_equal(ags_vclock_merge(v, w), 0);
	assert_int_equal(ags_vclock_merge(v, v), 0);
	assert_int_equal(ags_vclock_compare(v, before), AGS_VC_EQUAL);

	/* In place (no new agents): only maxima change. */
	ags_vclock *x = clock_of("a=9", "e=1", NULL);
	assert_int_equal(ags_vclock_merge(v, x), 0);
	assert_int_equal(ags_vclock_to_json(v, &json, NULL), 0);
	assert_string_equal(json, "{\"a\":9,\"b\":7,\"c\":3,\"d\":4,\"e\":9}");
	free(json);

	/* Into an empty clock. */
	ags_vclock *e = clock_of(NULL);
	assert_int_equal(ags_vclock_merge(e, w), 0);
	assert_int_equal(ags_vclock_compare(e, w), AGS_VC_EQUAL);
	assert_int_equal(ags_vclock_merge(NULL, w), AGS_ERR_INVALID);
	assert_int_equal(ags_vclock_merge(e, NULL), AGS_ERR_INVALID);

	ags_vclock_del(v);
	ags_vclock_del(w);
	ags_vclock_del(copy);
	ags_vclock_del(before);
	ags_vclock_del(x);
	ags_vclock_del(e);
}

static void json_round_trip(void **state)
{
	(void)state;
	const char *in = "{ \"z\\u00e9\" : 1, \"agent:1@host\": 18446744073709551615,\n"
	                 " \"a\": 0, \"b\\\"q\": 42 }";
	ags_vclock *v, *w;
	ags_error err;
	char *json, *json2;
	size_t len;

	assert_int_equal(ags_vclock_from_json(in, strlen(in), &v, &err), 0);
	assert_int_equal(ags_vclock_count(v), 4);
	assert_string_equal(ags_vclock_agent(v, 0), "a");
	assert_string_equal(ags_vclock_agent(v, 1), "agent:1@host");
	assert_string_equal(ags_vclock_agent(v, 2), "b\"q");
	assert_string_equal(ags_vclock_agent(v, 3), "z\xc3\xa9");
	assert_true(ags_vclock_value(v, 1) == UINT64_MAX);
	assert_int_equal(ags_vclock_to_json(v, &json, &len), 0);
	assert_string_equal(json, "{\"a\":0,\"agent:1@host\":18446744073709551615,\"b\\\"q\":42,"
	                          "\"z\xc3\xa9\":1}");
	/* Parse what we wrote: the same clock, the same text. */
	assert_int_equal(ags_vclock_from_json(json, len, &w, &err), 0);
	assert_int_equal(ags_vclock_compare(v, w), AGS_VC_EQUAL);
	assert_int_equal(ags_vclock_count(w), 4);
	assert_int_equal(ags_vclock_to_json(w, &json2, NULL), 0);
	assert_string_equal(json, json2);
	free(json);
	free(json2);
	ags_vclock_del(v);
	ags_vclock_del(w);

	/* Empty clock. */
	assert_int_equal(ags_vclock_new(&v), 0);
	assert_int_equal(ags_vclock_to_json(v, &json, &len), 0);
	assert_string_equal(json, "{}");
	assert_int_equal(len, 2);
	free(json);
	ags_vclock_del(v);

	/* From parallel arrays (a decoded PULL message). */
	const char *agents[] = {"m", "b"};
	const uint64_t counters[] = {3, 4};
	assert_int_equal(ags_vclock_from_arrays(agents, counters, 2, &v, &err), 0);
	assert_string_equal(ags_vclock_agent(v, 0), "b");
	assert_int_equal(ags_vclock_value(v, 1), 3);
	ags_vclock_del(v);
	const char *twice[] = {"m", "m"};
	assert_int_equal(ags_vclock_from_arrays(twice, counters, 2, &v, &err), AGS_ERR_PROTO);
	assert_string_equal(err.field, "m");
	const char *bad[] = {"m", ""};
	assert_int_equal(ags_vclock_from_arrays(bad, counters, 2, &v, &err), AGS_ERR_PROTO);
	assert_string_equal(err.field, "[1]");
}

static void expect_refused(const char *json, int code, const char *field)
{
	ags_vclock *v = (ags_vclock *)0x1;
	ags_error err;
	ags_error_clear(&err);
	int rc = ags_vclock_from_json(json, strlen(json), &v, &err);
	if (rc != code)
		fail_msg("%s: got %d (%s), want %d", json, rc, err.message, code);
	assert_ptr_equal(v, (ags_vclock *)0x1); /* nothing returned */
	assert_int_equal(err.code, code);
	assert_true(err.message[0] != '\0');
	if (field)
		assert_string_equal(err.field, field);
}

static void json_validation(void **state)
{
	(void)state;
	ags_error err;
	ags_vclock *v;

	expect_refused("", AGS_ERR_JSON, NULL);
	expect_refused("{\"a\":1", AGS_ERR_JSON, NULL);
	expect_refused("{\"a\":1} x", AGS_ERR_JSON, NULL);
	assert_int_equal(ags_vclock_from_json("{\"a\":1,}", 8, &v, &err), AGS_ERR_JSON);
	assert_true(err.offset != (size_t)-1);

	expect_refused("[]", AGS_ERR_PROTO, NULL);
	expect_refused("5", AGS_ERR_PROTO, NULL);
	expect_refused("null", AGS_ERR_PROTO, NULL);
	expect_refused("{\"a\":-1}", AGS_ERR_PROTO, "a");
	expect_refused("{\"a\":1.5}", AGS_ERR_PROTO, "a");
	expect_refused("{\"a\":1e3}", AGS_ERR_PROTO, "a");
	expect_refused("{\"a\":\"1\"}", AGS_ERR_PROTO, "a");
	expect_refused("{\"a\":null}", AGS_ERR_PROTO, "a");
	expect_refused("{\"a\":true}", AGS_ERR_PROTO, "a");
	/* 2^64 does not fit. */
	expect_refused("{\"a\":18446744073709551616}", AGS_ERR_PROTO, "a");
	expect_refused("{\"a\":1,\"b\":2,\"a\":3}", AGS_ERR_PROTO, "a");
	expect_refused("{\"\":1}", AGS_ERR_PROTO, "[0]");
	expect_refused("{\"ok\":1,\"x\\ny\":1}", AGS_ERR_PROTO, "[1]");
	expect_refused("{\"x\\u0000y\":1}", AGS_ERR_PROTO, "[0]");

	/* Agent id length: 256 bytes is the limit. */
	char buf[400];
	memset(buf, 0, sizeof(buf));
	buf[0] = '{';
	buf[1] = '"';
	memset(buf + 2, 'a', 256);
	memcpy(buf + 258, "\":1}", 5);
	assert_int_equal(ags_vclock_from_json(buf, strlen(buf), &v, &err), 0);
	ags_vclock_del(v);
	memset(buf + 2, 'a', 257);
	memcpy(buf + 259, "\":1}", 5);
	expect_refused(buf, AGS_ERR_PROTO, "[0]");

	/* At most 4096 entries. */
	size_t cap = (AGS_VCLOCK_MAX + 1) * 16 + 8;
	char *big = malloc(cap), *q = big;
	q += snprintf(q, cap, "{");
	for (int i = 0; i < AGS_VCLOCK_MAX; i++)
		q += snprintf(q, cap - (size_t)(q - big), "%s\"a%d\":%d", i ? "," : "", i, i);
	snprintf(q, cap - (size_t)(q - big), "}");
	assert_int_equal(ags_vclock_from_json(big, strlen(big), &v, &err), 0);
	assert_int_equal(ags_vclock_count(v), AGS_VCLOCK_MAX);
	ags_vclock_del(v);
	snprintf(q, cap - (size_t)(q - big), ",\"extra\":1}");
	expect_refused(big, AGS_ERR_TOO_LARGE, NULL);
	free(big);

	/* Input size limit, checked before parsing. */
	assert_int_equal(ags_vclock_from_json("{}", AGS_VCLOCK_JSON_MAX + 1, &v, &err),
	                 AGS_ERR_TOO_LARGE);

	assert_int_equal(ags_vclock_from_json(NULL, 2, &v, &err), AGS_ERR_INVALID);
	assert_int_equal(ags_vclock_from_json("{}", 2, NULL, &err), AGS_ERR_INVALID);
	/* A NULL error detail is allowed. */
	assert_int_equal(ags_vclock_from_json("[]", 2, &v, NULL), AGS_ERR_PROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(set_get_tick_and_order), cmocka_unit_test(entry_limit),
	    cmocka_unit_test(compare_cases),          cmocka_unit_test(merge_is_elementwise_max),
	    cmocka_unit_test(json_round_trip),        cmocka_unit_test(json_validation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
