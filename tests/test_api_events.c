/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The JSON of the API's events (ags_api_event_json): pattern events, written
 * straight into a buffer, are byte for byte what the yyjson document of every
 * other event gives, escapes included; strings that need more than a
 * backslash go through yyjson and stay valid JSON.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yyjson.h>

#include "agentsync/agentsync.h"
#include "agentsyncd/api.h"
#include "testutil.h"

static const char pattern_json[] =
    "{\"id\":\"p-1\",\"agentId\":\"a\",\"type\":\"test_execution\",\"data\":{\"k\":1},"
    "\"metadata\":{\"source\":\"a\",\"tags\":[\"unit\"],\"priority\":1},"
    "\"timestamp\":1761100000000,\"version\":1}";

static ags_pattern *pattern(void)
{
	ags_pattern *p = NULL;
	ags_error err;
	if (ags_pattern_parse(pattern_json, strlen(pattern_json), NULL, &p, &err) != 0)
		fail_msg("pattern: %s", err.message);
	return p;
}

/* The event's JSON as yyjson writes the same fields (the oracle). */
static char *oracle(const ags_event *ev, uint64_t id, int64_t time_ms)
{
	yyjson_mut_doc *d = yyjson_mut_doc_new(NULL);
	yyjson_mut_val *o = yyjson_mut_obj(d);
	yyjson_mut_doc_set_root(d, o);
	if (id)
		yyjson_mut_obj_add_uint(d, o, "id", id);
	yyjson_mut_obj_add_str(d, o, "type", ev->name);
	yyjson_mut_obj_add_sint(d, o, "time", time_ms);
	if (ev->peer_id)
		yyjson_mut_obj_add_str(d, o, "peerId", ev->peer_id);
	if (ev->error)
		yyjson_mut_obj_add_str(d, o, "error", ev->error);
	size_t n = 0;
	const char *pj = ags_pattern_json(ev->pattern, &n);
	yyjson_mut_obj_add_val(d, o, "pattern", yyjson_mut_rawncpy(d, pj, n));
	if (ev->pattern_id)
		yyjson_mut_obj_add_str(d, o, "patternId", ev->pattern_id);
	if (ev->source_id)
		yyjson_mut_obj_add_str(d, o, "sourceId", ev->source_id);
	char *s = yyjson_mut_write(d, 0, NULL);
	yyjson_mut_doc_free(d);
	return s;
}

static void pattern_events_match_yyjson(void **state)
{
	(void)state;
	ags_pattern *p = pattern();
	const char *peers[] = {NULL, "b", "quo\"te", "back\\slash"};
	for (size_t i = 0; i < 4; i++) {
		for (uint64_t id = 0; id < 2; id++) {
			ags_event ev = {.type = AGS_EV_PATTERN_RECEIVED,
			                .name = "pattern:received",
			                .peer_id = peers[i],
			                .pattern = p,
			                .source_id = "a",
			                .error = i == 3 ? "lost \"x\"" : NULL};
			size_t len = 0;
			char *got = ags_api_event_json(&ev, id ? 1764700000000001u : 0,
			                               1764700000123, &len);
			char *want = oracle(&ev, id ? 1764700000000001u : 0, 1764700000123);
			assert_non_null(got);
			assert_string_equal(got, want);
			assert_int_equal(len, strlen(want));
			free(got);
			free(want);
		}
	}
	ags_pattern_del(p);
}

static void other_bytes_go_through_yyjson(void **state)
{
	(void)state;
	ags_pattern *p = pattern();
	ags_event ev = {.type = AGS_EV_PATTERN_CONFLICT,
	                .name = "pattern:conflict",
	                .pattern = p,
	                .source_id = "n\xc3\xa9\n",
	                .error = "tab\there"};
	size_t len = 0;
	char *got = ags_api_event_json(&ev, 0, 1, &len);
	char *want = oracle(&ev, 0, 1);
	assert_string_equal(got, want);
	yyjson_doc *d = yyjson_read(got, len, 0);
	assert_non_null(d);
	assert_string_equal(yyjson_get_str(yyjson_obj_get(yyjson_doc_get_root(d), "sourceId")),
	                    "n\xc3\xa9\n");
	yyjson_doc_free(d);
	free(got);
	free(want);
	ags_pattern_del(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(pattern_events_match_yyjson),
	    cmocka_unit_test(other_bytes_go_through_yyjson),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
