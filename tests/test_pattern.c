/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the pattern codec: validation, canonical form, checksum, tombstones, compare. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <yyjson.h>

#include "testutil.h"
#include "agentsync/agentsync.h"
#include "pattern.h"

/* Seed 000's example pattern, with an unknown top-level field. */
static const char SEED[] =
    "{\"id\":\"pattern_1\",\"agentId\":\"test-generator\",\"type\":\"test_execution\","
    "\"data\":{\"testCase\":\"UserLogin\",\"result\":\"passed\"},"
    "\"metadata\":{\"source\":\"test-generator\",\"tags\":[\"unit\",\"auth\"],\"priority\":1},"
    "\"timestamp\":1729600000000,\"version\":1,\"extra\":{\"k\":[1,2]}}";

/*
 * A pattern whose canonical form and SHA-256 were computed independently
 * (sorted by hand, hashed with sha256sum): pins the format down.
 */
static const char VECTOR[] =
    "{\"id\":\"p1\",\"agentId\":\"a\",\"type\":\"t\",\"data\":{\"z\":1,\"a\":[1.50,{\"y\":null,"
    "\"b\":true}]},\"metadata\":{\"source\":\"s\",\"tags\":[\"x\",\"y\"],\"priority\":3},"
    "\"timestamp\":5,\"version\":1,\"extra\":\"\\u00e9\"}";
static const char VECTOR_CANONICAL[] =
    "{\"agentId\":\"a\",\"data\":{\"a\":[1.5,{\"b\":true,\"y\":null}],\"z\":1},\"extra\":"
    "\"\xc3\xa9\",\"id\":\"p1\",\"metadata\":{\"priority\":3,\"source\":\"s\",\"tags\":[\"x\","
    "\"y\"]},\"timestamp\":5,\"type\":\"t\",\"version\":1}";
static const char VECTOR_SUM[] = "df267237525a1a3aaeffbeb0782f8eaac78690e0e8a6bc9d93905dcffad6cc4f";

/*
 * A pattern template: %s are, in order, the id value, the data value, extra
 * metadata members (each with a trailing comma), timestamp, version.
 */
static char *make(const char *id, const char *data, const char *meta, const char *ts,
                  const char *version)
{
	return tu_sprintf("{\"id\":%s,\"agentId\":\"ag\",\"type\":\"ty\",\"data\":%s,"
	                  "\"metadata\":{%s\"source\":\"src\",\"tags\":[\"a\",\"b\"]},"
	                  "\"timestamp\":%s,\"version\":%s}",
	                  id, data, meta, ts, version);
}

static ags_pattern *parse_ok(const char *json)
{
	ags_pattern *p = NULL;
	ags_error err;
	int rc = ags_pattern_parse(json, strlen(json), NULL, &p, &err);
	if (rc != 0)
		fail_msg("parse failed (%d) at %s: %s\ninput: %.300s", rc, err.field, err.message,
		         json);
	assert_non_null(p);
	return p;
}

/* Parses `json`, which must fail with `code` at `field`; returns the error. */
static ags_error parse_fail(const char *json, size_t len, const ags_pattern_opts *opts, int code,
                            const char *field)
{
	ags_pattern *p = (ags_pattern *)1;
	ags_error err;
	memset(&err, 0x5a, sizeof(err));
	int rc = ags_pattern_parse(json, len, opts, &p, &err);
	if (rc == 0) {
		ags_pattern_del(p);
		fail_msg("want %d at '%s', but it parsed\ninput: %.300s", code, field ? field : "*",
		         json);
	}
	if (rc != code || err.code != code || (field && strcmp(err.field, field) != 0))
		fail_msg("want %d at '%s', got %d (err.code %d) at '%s': %s\ninput: %.300s", code,
		         field ? field : "*", rc, err.code, err.field, err.message, json);
	assert_null(p);
	assert_true(strlen(err.message) > 0);
	return err;
}

static ags_error fail_str(const char *json, int code, const char *field)
{
	return parse_fail(json, strlen(json), NULL, code, field);
}

/* Like fail_str on make(...), freeing the text. */
static ags_error fail_made(char *json, int code, const char *field)
{
	ags_error e = fail_str(json, code, field);
	free(json);
	return e;
}

static void ok_made(char *json)
{
	ags_pattern_del(parse_ok(json));
	free(json);
}

static void sha256_hex(const void *buf, size_t len, char hex[65])
{
	unsigned char d[32];
	assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, buf, len, d), 0);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

/* ------------------------------------------------------------------------ */

static void seed_pattern_parses(void **state)
{
	(void)state;
	ags_pattern *p = parse_ok(SEED);
	assert_string_equal(ags_pattern_id(p), "pattern_1");
	assert_string_equal(ags_pattern_agent_id(p), "test-generator");
	assert_string_equal(ags_pattern_type(p), "test_execution");
	assert_string_equal(ags_pattern_source(p), "test-generator");
	assert_int_equal(ags_pattern_version(p), 1);
	assert_int_equal(ags_pattern_timestamp(p), 1729600000000LL);
	assert_int_equal(ags_pattern_priority(p), 1);
	assert_int_equal(ags_pattern_expires_at(p), 0);
	assert_int_equal(ags_pattern_tag_count(p), 2);
	assert_string_equal(ags_pattern_tag(p, 0), "unit");
	assert_string_equal(ags_pattern_tag(p, 1), "auth");
	assert_null(ags_pattern_tag(p, 2));
	assert_false(ags_pattern_is_tombstone(p));
	const char *sum = ags_pattern_checksum(p);
	assert_int_equal(strlen(sum), 64);
	assert_int_equal(strspn(sum, "0123456789abcdef"), 64);
	ags_pattern_del(p);

	char *s = make("\"x\"", "null", "\"expiresAt\":1760000000000,\"priority\":10,", "0", "7");
	p = parse_ok(s);
	assert_int_equal(ags_pattern_expires_at(p), 1760000000000LL);
	assert_int_equal(ags_pattern_priority(p), 10);
	assert_int_equal(ags_pattern_timestamp(p), 0);
	assert_int_equal(ags_pattern_version(p), 7);
	ags_pattern_del(p);
	free(s);
}

static void known_vector(void **state)
{
	(void)state;
	char hex[65];
	sha256_hex(VECTOR_CANONICAL, strlen(VECTOR_CANONICAL), hex);
	assert_string_equal(hex, VECTOR_SUM);

	ags_pattern *p = parse_ok(VECTOR);
	assert_string_equal(ags_pattern_checksum(p), VECTOR_SUM);
	/* The stored form is the canonical form with the checksum first in metadata. */
	char *want = tu_sprintf("{\"agentId\":\"a\",\"data\":{\"a\":[1.5,{\"b\":true,\"y\":null}],"
	                        "\"z\":1},\"extra\":\"\xc3\xa9\",\"id\":\"p1\",\"metadata\":{"
	                        "\"checksum\":\"%s\",\"priority\":3,\"source\":\"s\",\"tags\":["
	                        "\"x\",\"y\"]},\"timestamp\":5,\"type\":\"t\",\"version\":1}",
	                        VECTOR_SUM);
	size_t len = 0;
	assert_string_equal(ags_pattern_json(p, &len), want);
	assert_int_equal(len, strlen(want));
	free(want);
	ags_pattern_del(p);
}

static void malformed_json(void **state)
{
	(void)state;
	ags_error e = fail_str("{\"id\": x}", AGS_ERR_JSON, "");
	assert_int_equal(e.offset, 7);
	e = fail_str("{\"id\":\"a\",}", AGS_ERR_JSON, "");
	assert_int_equal(e.offset, 9);
	e = fail_str("{\"id\":\"\xc3\x28\"}", AGS_ERR_JSON, "");
	assert_int_equal(e.offset, 7);
	assert_non_null(strstr(e.message, "UTF-8"));
	e = fail_str("{\"id\":\"\xff\"}", AGS_ERR_JSON, "");
	assert_non_null(strstr(e.message, "UTF-8"));
	e = parse_fail("", 0, NULL, AGS_ERR_JSON, "");
	assert_int_equal(e.offset, 0);
	fail_str("{\"a\":1} {}", AGS_ERR_JSON, "");
	fail_str("{\"a\":NaN}", AGS_ERR_JSON, "");
	fail_str("{\"a\":1e400}", AGS_ERR_JSON, "");
	/* The length is honoured: the text need not be NUL-terminated. */
	parse_fail(SEED, strlen(SEED) - 1, NULL, AGS_ERR_JSON, "");
}

static void bad_arguments(void **state)
{
	(void)state;
	ags_pattern *p;
	ags_error e;
	assert_int_equal(ags_pattern_parse(NULL, 3, NULL, &p, &e), AGS_ERR_INVALID);
	assert_int_equal(ags_pattern_parse(SEED, strlen(SEED), NULL, NULL, &e), AGS_ERR_INVALID);
	assert_int_equal(ags_pattern_from_val(NULL, NULL, &p, &e), AGS_ERR_INVALID);
	assert_int_equal(ags_pattern_parse_trusted(NULL, 3, &p), AGS_ERR_INVALID);
	assert_int_equal(ags_json_canonical(NULL, NULL, NULL), AGS_ERR_INVALID);
	/* err may be NULL. */
	assert_int_equal(ags_pattern_parse("[", 1, NULL, &p, NULL), AGS_ERR_JSON);
}

static void top_level_and_required_fields(void **state)
{
	(void)state;
	fail_str("[1,2]", AGS_ERR_PATTERN, "");
	fail_str("\"x\"", AGS_ERR_PATTERN, "");
	fail_str("{}", AGS_ERR_PATTERN, "id");

	const char *required[] = {"id",       "agentId",   "type",   "data",
	                          "metadata", "timestamp", "version"};
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
		/* Remove the member by renaming its key. */
		char *s = tu_sprintf("%s", SEED);
		char *key = tu_sprintf("\"%s\":", required[i]);
		char *at = strstr(s, key);
		assert_non_null(at);
		at[1] = 'X';
		ags_error e = fail_str(s, AGS_ERR_PATTERN, required[i]);
		assert_non_null(strstr(e.message, "required"));
		free(key);
		free(s);
	}
	fail_made(tu_sprintf("{\"id\":\"x\",\"agentId\":\"a\",\"type\":\"t\",\"data\":1,"
	                     "\"metadata\":{\"tags\":[]},\"timestamp\":1,\"version\":1}"),
	          AGS_ERR_PATTERN, "metadata.source");
	fail_made(tu_sprintf("{\"id\":\"x\",\"agentId\":\"a\",\"type\":\"t\",\"data\":1,"
	                     "\"metadata\":{\"source\":\"\"},\"timestamp\":1,\"version\":1}"),
	          AGS_ERR_PATTERN, "metadata.tags");
	fail_made(tu_sprintf("{\"id\":\"x\",\"agentId\":\"a\",\"type\":\"t\",\"data\":1,"
	                     "\"metadata\":[],\"timestamp\":1,\"version\":1}"),
	          AGS_ERR_PATTERN, "metadata");
	fail_made(
	    tu_sprintf("{\"id\":\"x\",\"agentId\":7,\"type\":\"t\",\"data\":1,"
	               "\"metadata\":{\"source\":\"\",\"tags\":[]},\"timestamp\":1,\"version\":1}"),
	    AGS_ERR_PATTERN, "agentId");
	fail_made(
	    tu_sprintf("{\"id\":\"x\",\"agentId\":\"\",\"type\":null,\"data\":1,"
	               "\"metadata\":{\"source\":\"\",\"tags\":[]},\"timestamp\":1,\"version\":1}"),
	    AGS_ERR_PATTERN, "type");
	fail_made(
	    tu_sprintf("{\"id\":\"x\",\"agentId\":\"\",\"type\":\"\",\"data\":1,"
	               "\"metadata\":{\"source\":true,\"tags\":[]},\"timestamp\":1,\"version\":1}"),
	    AGS_ERR_PATTERN, "metadata.source");
	/* Empty agentId, type and source are allowed; data may be null. */
	ok_made(tu_sprintf(
	    "{\"id\":\"x\",\"agentId\":\"\",\"type\":\"\",\"data\":null,"
	    "\"metadata\":{\"source\":\"\",\"tags\":[]},\"timestamp\":1,\"version\":1}"));
}

static void id_rules(void **state)
{
	(void)state;
	fail_made(make("7", "1", "", "1", "1"), AGS_ERR_PATTERN, "id");
	fail_made(make("null", "1", "", "1", "1"), AGS_ERR_PATTERN, "id");
	ags_error e = fail_made(make("\"\"", "1", "", "1", "1"), AGS_ERR_PATTERN, "id");
	assert_non_null(strstr(e.message, "empty"));
	fail_made(make("\"a\\u0000b\"", "1", "", "1", "1"), AGS_ERR_PATTERN, "id");
	/* Control characters would forge log lines and hide in terminals (issue 17.7). */
	e = fail_made(make("\"a\\nb\"", "1", "", "1", "1"), AGS_ERR_PATTERN, "id");
	assert_non_null(strstr(e.message, "control characters (byte 0x0a at offset 1)"));
	fail_made(make("\"a\\u001b[2J\"", "1", "", "1", "1"), AGS_ERR_PATTERN, "id");
	fail_made(make("\"a\\u007f\"", "1", "", "1", "1"), AGS_ERR_PATTERN, "id");

	char id[AGS_PATTERN_ID_MAX + 4];
	memset(id, 'i', sizeof(id));
	id[0] = '"';
	id[AGS_PATTERN_ID_MAX + 1] = '"';
	id[AGS_PATTERN_ID_MAX + 2] = '\0';
	ok_made(make(id, "1", "", "1", "1")); /* exactly 256 bytes */
	id[AGS_PATTERN_ID_MAX + 1] = 'i';
	id[AGS_PATTERN_ID_MAX + 2] = '"';
	id[AGS_PATTERN_ID_MAX + 3] = '\0';
	e = fail_made(make(id, "1", "", "1", "1"), AGS_ERR_PATTERN, "id");
	assert_non_null(strstr(e.message, "256"));
}

static void version_and_timestamp_rules(void **state)
{
	(void)state;
	const char *bad_versions[] = {
	    "1.0",   "1.5",  "0",    "-1", "9223372036854775808", "18446744073709551616",
	    "\"1\"", "null", "true", "1e0"};
	for (size_t i = 0; i < sizeof(bad_versions) / sizeof(bad_versions[0]); i++)
		fail_made(make("\"x\"", "1", "", "1", bad_versions[i]), AGS_ERR_PATTERN, "version");
	ags_error e = fail_made(make("\"x\"", "1", "", "1", "1.5"), AGS_ERR_PATTERN, "version");
	assert_non_null(strstr(e.message, "integer"));
	assert_non_null(strstr(e.message, "1.5"));
	ok_made(make("\"x\"", "1", "", "1", "9223372036854775807"));

	const char *bad_ts[] = {"-1", "1.0", "0.5", "9223372036854775808", "\"0\"", "[]"};
	for (size_t i = 0; i < sizeof(bad_ts) / sizeof(bad_ts[0]); i++)
		fail_made(make("\"x\"", "1", "", bad_ts[i], "1"), AGS_ERR_PATTERN, "timestamp");
	ok_made(make("\"x\"", "1", "", "0", "1"));
	ok_made(make("\"x\"", "1", "", "-0", "1")); /* yyjson reads -0 as the integer 0 */
	ok_made(make("\"x\"", "1", "", "9223372036854775807", "1"));
}

static void metadata_rules(void **state)
{
	(void)state;
	ags_error e = fail_made(make("\"x\"", "1", "\"priority\":11,", "1", "1"), AGS_ERR_PATTERN,
	                        "metadata.priority");
	assert_string_equal(e.message, "must be an integer from 1 to 10, got 11");
	const char *bad_prio[] = {"0", "-3", "5.0", "\"5\"", "null"};
	for (size_t i = 0; i < sizeof(bad_prio) / sizeof(bad_prio[0]); i++) {
		char *m = tu_sprintf("\"priority\":%s,", bad_prio[i]);
		fail_made(make("\"x\"", "1", m, "1", "1"), AGS_ERR_PATTERN, "metadata.priority");
		free(m);
	}
	ok_made(make("\"x\"", "1", "\"priority\":1,", "1", "1"));

	fail_made(make("\"x\"", "1", "\"expiresAt\":1.5,", "1", "1"), AGS_ERR_PATTERN,
	          "metadata.expiresAt");
	fail_made(make("\"x\"", "1", "\"expiresAt\":-1,", "1", "1"), AGS_ERR_PATTERN,
	          "metadata.expiresAt");

	fail_str("{\"id\":\"x\",\"agentId\":\"a\",\"type\":\"t\",\"data\":1,\"metadata\":{"
	         "\"source\":\"s\",\"tags\":\"unit\"},\"timestamp\":1,\"version\":1}",
	         AGS_ERR_PATTERN, "metadata.tags");
	fail_str("{\"id\":\"x\",\"agentId\":\"a\",\"type\":\"t\",\"data\":1,\"metadata\":{"
	         "\"source\":\"s\",\"tags\":{}},\"timestamp\":1,\"version\":1}",
	         AGS_ERR_PATTERN, "metadata.tags");
	e = fail_str("{\"id\":\"x\",\"agentId\":\"a\",\"type\":\"t\",\"data\":1,\"metadata\":{"
	             "\"source\":\"s\",\"tags\":[\"a\",\"b\",3]},\"timestamp\":1,\"version\":1}",
	             AGS_ERR_PATTERN, "metadata.tags[2]");
	assert_non_null(strstr(e.message, "string"));
	fail_str("{\"id\":\"x\",\"agentId\":\"a\",\"type\":\"t\",\"data\":1,\"metadata\":{"
	         "\"source\":\"s\",\"tags\":[\"a\",[\"b\"]]},\"timestamp\":1,\"version\":1}",
	         AGS_ERR_PATTERN, "metadata.tags[1]");
	fail_str("{\"id\":\"x\",\"agentId\":\"a\",\"type\":\"t\",\"data\":1,\"metadata\":{"
	         "\"source\":\"s\",\"tags\":[\"a\\u0000\"]},\"timestamp\":1,\"version\":1}",
	         AGS_ERR_PATTERN, "metadata.tags[0]");
	fail_str("{\"id\":\"x\",\"agentId\":\"a\",\"type\":\"t\",\"data\":1,\"metadata\":{"
	         "\"source\":\"s\",\"tags\":[\"ok\",\"a\\tb\"]},\"timestamp\":1,\"version\":1}",
	         AGS_ERR_PATTERN, "metadata.tags[1]");
	fail_str("{\"id\":\"x\",\"agentId\":\"a\",\"type\":\"t\\r\",\"data\":1,\"metadata\":{"
	         "\"source\":\"s\",\"tags\":[]},\"timestamp\":1,\"version\":1}",
	         AGS_ERR_PATTERN, "type");
	fail_str("{\"id\":\"x\",\"agentId\":\"a\\n\",\"type\":\"t\",\"data\":1,\"metadata\":{"
	         "\"source\":\"s\",\"tags\":[]},\"timestamp\":1,\"version\":1}",
	         AGS_ERR_PATTERN, "agentId");
	/* Control characters inside data are data: allowed. */
}

/* data nested `levels` arrays deep: [[[...1...]]]. */
static char *nested_data(size_t levels)
{
	char *s = malloc(2 * levels + 2);
	assert_non_null(s);
	memset(s, '[', levels);
	s[levels] = '1';
	memset(s + levels + 1, ']', levels);
	s[2 * levels + 1] = '\0';
	return s;
}

static void nesting_depth_limit(void **state)
{
	(void)state;
	/* The top-level object is depth 1 and data's value depth 2. */
	char *d = nested_data(AGS_PATTERN_MAX_DEPTH - 1);
	ok_made(make("\"x\"", d, "", "1", "1"));
	free(d);

	d = nested_data(AGS_PATTERN_MAX_DEPTH);
	ags_error e = fail_made(make("\"x\"", d, "", "1", "1"), AGS_ERR_PATTERN, NULL);
	free(d);
	assert_non_null(strstr(e.message, "64"));
	assert_memory_equal(e.field, "data[0][0]", 10);

	/* Far too deep: the checker must stop, not recurse 100000 levels. */
	d = nested_data(100000);
	e = fail_made(make("\"x\"", d, "", "1", "1"), AGS_ERR_PATTERN, NULL);
	free(d);
	assert_non_null(strstr(e.message, "deeper"));

	/* Objects count too, in metadata and unknown fields as well. */
	char *obj = tu_sprintf("%s", "1");
	for (int i = 0; i < AGS_PATTERN_MAX_DEPTH - 1; i++) {
		char *o = tu_sprintf("{\"k\":%s}", obj);
		free(obj);
		obj = o;
	}
	char *m = tu_sprintf("\"deep\":%s,", obj);
	e = fail_made(make("\"x\"", "1", m, "1", "1"), AGS_ERR_PATTERN, NULL);
	assert_memory_equal(e.field, "metadata.deep.k.k", 17);
	free(m);
	/* In data the same 63 levels fit (data's value is at depth 2), 64 do not. */
	ok_made(make("\"x\"", obj, "", "1", "1"));
	char *obj64 = tu_sprintf("{\"k\":%s}", obj);
	e = fail_made(make("\"x\"", obj64, "", "1", "1"), AGS_ERR_PATTERN, NULL);
	assert_memory_equal(e.field, "data.k.k", 8);
	free(obj64);
	free(obj);
}

static void duplicate_keys(void **state)
{
	(void)state;
	ags_error e = fail_str("{\"id\":\"x\",\"id\":\"y\",\"agentId\":\"a\",\"type\":\"t\","
	                       "\"data\":1,\"metadata\":{\"source\":\"s\",\"tags\":[]},"
	                       "\"timestamp\":1,\"version\":1}",
	                       AGS_ERR_PATTERN, "id");
	assert_non_null(strstr(e.message, "duplicate"));
	e = fail_made(make("\"x\"", "{\"a\":{\"q\":1,\"b\":[{\"zz\":1,\"zz\":1}]}}", "", "1", "1"),
	              AGS_ERR_PATTERN, "data.a.b[0].zz");
	assert_non_null(strstr(e.message, "\"zz\""));
	fail_made(make("\"x\"", "1", "\"priority\":1,\"priority\":1,", "1", "1"), AGS_ERR_PATTERN,
	          "metadata.priority");
	fail_made(make("\"x\"", "1", "\"x\":1,\"x\":2,", "1", "1"), AGS_ERR_PATTERN, "metadata.x");
	/* Two spellings of one key are duplicates too. */
	fail_made(make("\"x\"", "{\"\\u00e9\":1,\"\xc3\xa9\":2}", "", "1", "1"), AGS_ERR_PATTERN,
	          "data.\xc3\xa9");
	/* Keys that only share a prefix are not. */
	ok_made(make("\"x\"", "{\"a\":1,\"ab\":2,\"\":3}", "", "1", "1"));
}

static void supplied_checksum(void **state)
{
	(void)state;
	ags_pattern *p = parse_ok(VECTOR);
	char *m = tu_sprintf("\"checksum\":\"%s\",", ags_pattern_checksum(p));
	ags_pattern_del(p);

	/* The content of VECTOR, with its checksum supplied. */
	char *s = tu_sprintf("{\"id\":\"p1\",\"agentId\":\"a\",\"type\":\"t\",\"data\":{\"z\":1,"
	                     "\"a\":[1.50,{\"y\":null,\"b\":true}]},\"metadata\":{%s\"source\":"
	                     "\"s\",\"tags\":[\"x\",\"y\"],\"priority\":3},\"timestamp\":5,"
	                     "\"version\":1,\"extra\":\"\\u00e9\"}",
	                     m);
	p = parse_ok(s);
	assert_string_equal(ags_pattern_checksum(p), VECTOR_SUM);
	ags_pattern_del(p);

	/* Upper-case hex is the same number. */
	for (char *c = strstr(s, VECTOR_SUM); c && *c != '"'; c++)
		if (*c >= 'a' && *c <= 'f')
			*c = (char)(*c - 'a' + 'A');
	p = parse_ok(s);
	assert_string_equal(ags_pattern_checksum(p), VECTOR_SUM);
	ags_pattern_del(p);
	free(s);
	free(m);

	/* One digit off. */
	char wrong[65];
	memcpy(wrong, VECTOR_SUM, 65);
	wrong[10] = wrong[10] == '0' ? '1' : '0';
	m = tu_sprintf("\"checksum\":\"%s\",", wrong);
	s = tu_sprintf("{\"id\":\"p1\",\"agentId\":\"a\",\"type\":\"t\",\"data\":{\"z\":1,"
	               "\"a\":[1.50,{\"y\":null,\"b\":true}]},\"metadata\":{%s\"source\":"
	               "\"s\",\"tags\":[\"x\",\"y\"],\"priority\":3},\"timestamp\":5,"
	               "\"version\":1,\"extra\":\"\\u00e9\"}",
	               m);
	ags_error e = fail_str(s, AGS_ERR_CHECKSUM, "metadata.checksum");
	assert_non_null(strstr(e.message, VECTOR_SUM));
	free(s);
	free(m);

	const char *malformed[] = {
	    "\"abc\"", "7", "null",
	    "\"zz67237525a1a3aaeffbeb0782f8eaac78690e0e8a6bc9d93905dcffad6cc4f\"",
	    "\"df267237525a1a3aaeffbeb0782f8eaac78690e0e8a6bc9d93905dcffad6cc4f0\""};
	for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
		m = tu_sprintf("\"checksum\":%s,", malformed[i]);
		fail_made(make("\"x\"", "1", m, "1", "1"), AGS_ERR_PATTERN, "metadata.checksum");
		free(m);
	}
}

static void max_bytes_option(void **state)
{
	(void)state;
	size_t len = strlen(SEED);
	ags_pattern_opts o = {.max_bytes = len - 1};
	ags_error e = parse_fail(SEED, len, &o, AGS_ERR_TOO_LARGE, NULL);
	assert_non_null(strstr(e.message, "limit"));

	/* Checked before parsing: malformed text over the limit is "too large". */
	parse_fail("{\"broken", 8, &(ags_pattern_opts){.max_bytes = 4}, AGS_ERR_TOO_LARGE, NULL);

	/* The serialised form (which adds the checksum member) must fit too. */
	ags_pattern *p = parse_ok(SEED);
	size_t stored = 0;
	ags_pattern_json(p, &stored);
	ags_pattern_del(p);
	assert_true(stored > len);
	o.max_bytes = stored - 1;
	parse_fail(SEED, len, &o, AGS_ERR_TOO_LARGE, NULL);
	o.max_bytes = stored;
	assert_int_equal(ags_pattern_parse(SEED, len, &o, &p, NULL), 0);
	ags_pattern_del(p);

	/* The default is 1 MiB. */
	size_t big = AGS_PATTERN_MAX_BYTES_DEFAULT;
	char *d = malloc(big + 1);
	assert_non_null(d);
	d[0] = '"';
	memset(d + 1, 'x', big - 2);
	d[big - 1] = '"';
	d[big] = '\0';
	char *s = make("\"x\"", d, "", "1", "1");
	free(d);
	parse_fail(s, strlen(s), NULL, AGS_ERR_TOO_LARGE, NULL);
	o.max_bytes = 2 * big;
	assert_int_equal(ags_pattern_parse(s, strlen(s), &o, &p, NULL), 0);
	ags_pattern_del(p);
	free(s);
}

/* Parses text with yyjson; the test fails if it is not JSON. */
static yyjson_doc *json_doc(const char *s, size_t len)
{
	yyjson_doc *d = yyjson_read(s, len, 0);
	assert_non_null(d);
	return d;
}

static void round_trip_keeps_content(void **state)
{
	(void)state;
	const char *data = "{\"n\":{\"deep\":[1,-2,3.25,1e-7,1.5e300,18446744073709551615,"
	                   "-9223372036854775808,true,false,null]},\"u\":\"caf\\u00e9 \xe2\x82\xac "
	                   "\\ud83d\\ude00 \\\"q\\\" \\\\ \\n\\t\\u0001\",\"e\":{},\"a\":[],"
	                   "\"z\":[{\"b\":1,\"a\":2}]}";
	char *s =
	    tu_sprintf("{\"id\":\"r\",\"agentId\":\"a\",\"type\":\"t\",\"data\":%s,"
	               "\"metadata\":{\"source\":\"s\",\"tags\":[],\"note\":\"kept\"},"
	               "\"timestamp\":1,\"version\":1,\"zzz\":[1,{\"q\":\"w\"}],\"aaa\":null}",
	               data);
	ags_pattern *p = parse_ok(s);
	size_t len;
	const char *out = ags_pattern_json(p, &len);
	assert_int_equal(strlen(out), len);

	yyjson_doc *in_doc = json_doc(s, strlen(s));
	yyjson_doc *out_doc = json_doc(out, len);
	yyjson_val *in_root = yyjson_doc_get_root(in_doc);
	yyjson_val *out_root = yyjson_doc_get_root(out_doc);
	assert_true(
	    yyjson_equals(yyjson_obj_get(in_root, "data"), yyjson_obj_get(out_root, "data")));
	assert_true(yyjson_equals(yyjson_obj_get(in_root, "zzz"), yyjson_obj_get(out_root, "zzz")));
	assert_true(yyjson_is_null(yyjson_obj_get(out_root, "aaa")));
	yyjson_val *md = yyjson_obj_get(out_root, "metadata");
	assert_string_equal(yyjson_get_str(yyjson_obj_get(md, "note")), "kept");
	assert_string_equal(yyjson_get_str(yyjson_obj_get(md, "checksum")),
	                    ags_pattern_checksum(p));
	assert_int_equal(yyjson_obj_size(out_root), yyjson_obj_size(in_root));

	/* The stored form is itself canonical: sorted, compact. */
	char *canon = NULL;
	size_t clen = 0;
	assert_int_equal(ags_json_canonical(out_root, &canon, &clen), 0);
	assert_int_equal(clen, len);
	assert_memory_equal(canon, out, len);
	free(canon);

	/* Parsing the stored form gives the same pattern. */
	ags_pattern *q = parse_ok(out);
	assert_string_equal(ags_pattern_checksum(q), ags_pattern_checksum(p));
	assert_string_equal(ags_pattern_json(q, NULL), out);
	ags_pattern_del(q);

	yyjson_doc_free(in_doc);
	yyjson_doc_free(out_doc);
	ags_pattern_del(p);
	free(s);
}

static void checksum_ignores_order_and_whitespace(void **state)
{
	(void)state;
	const char *forms[] = {
	    "{\"id\":\"k\",\"agentId\":\"a\",\"type\":\"t\",\"data\":{\"x\":1,\"y\":[1,2],"
	    "\"s\":\"\xc3\xa9/\"},\"metadata\":{\"source\":\"s\",\"tags\":[\"b\",\"a\"],"
	    "\"priority\":2},\"timestamp\":3,\"version\":4}",
	    " {\n\t\"version\" : 4 , \"timestamp\":3,\"metadata\":{\"priority\":2,\"tags\":[ "
	    "\"b\" , \"a\" ],\"source\":\"s\"},\"data\":{\"s\":\"\\u00e9\\/\",\"y\":[1, 2],"
	    "\"x\":1},\"type\":\"t\",\"agentId\":\"a\",\"id\":\"k\"}\r\n",
	    "{\"data\":{\"y\":[1,2],\"x\":1.0e0,\"s\":\"\\u00E9/\"},\"id\":\"\\u006b\","
	    "\"metadata\":{\"tags\":[\"b\",\"a\"],\"source\":\"s\",\"priority\":2},"
	    "\"agentId\":\"a\",\"type\":\"t\",\"version\":4,\"timestamp\":3}",
	};
	ags_pattern *p0 = parse_ok(forms[0]);
	ags_pattern *p1 = parse_ok(forms[1]);
	assert_string_equal(ags_pattern_checksum(p0), ags_pattern_checksum(p1));
	assert_string_equal(ags_pattern_json(p0, NULL), ags_pattern_json(p1, NULL));
	/* 1.0e0 is a real, not the integer 1: a different value, a different checksum. */
	ags_pattern *p2 = parse_ok(forms[2]);
	assert_string_not_equal(ags_pattern_checksum(p0), ags_pattern_checksum(p2));
	ags_pattern_del(p0);
	ags_pattern_del(p1);
	ags_pattern_del(p2);
}

static void checksum_covers_every_field(void **state)
{
	(void)state;
	const char *variants[] = {
	    "{\"id\":\"k\",\"agentId\":\"a\",\"type\":\"t\",\"data\":{\"x\":1},\"metadata\":{"
	    "\"source\":\"s\",\"tags\":[\"a\"]},\"timestamp\":3,\"version\":4}",
	    "{\"id\":\"K\",\"agentId\":\"a\",\"type\":\"t\",\"data\":{\"x\":1},\"metadata\":{"
	    "\"source\":\"s\",\"tags\":[\"a\"]},\"timestamp\":3,\"version\":4}",
	    "{\"id\":\"k\",\"agentId\":\"b\",\"type\":\"t\",\"data\":{\"x\":1},\"metadata\":{"
	    "\"source\":\"s\",\"tags\":[\"a\"]},\"timestamp\":3,\"version\":4}",
	    "{\"id\":\"k\",\"agentId\":\"a\",\"type\":\"u\",\"data\":{\"x\":1},\"metadata\":{"
	    "\"source\":\"s\",\"tags\":[\"a\"]},\"timestamp\":3,\"version\":4}",
	    "{\"id\":\"k\",\"agentId\":\"a\",\"type\":\"t\",\"data\":{\"x\":2},\"metadata\":{"
	    "\"source\":\"s\",\"tags\":[\"a\"]},\"timestamp\":3,\"version\":4}",
	    "{\"id\":\"k\",\"agentId\":\"a\",\"type\":\"t\",\"data\":{\"x\":1.0},\"metadata\":{"
	    "\"source\":\"s\",\"tags\":[\"a\"]},\"timestamp\":3,\"version\":4}",
	    "{\"id\":\"k\",\"agentId\":\"a\",\"type\":\"t\",\"data\":{\"X\":1},\"metadata\":{"
	    "\"source\":\"s\",\"tags\":[\"a\"]},\"timestamp\":3,\"version\":4}",
	    "{\"id\":\"k\",\"agentId\":\"a\",\"type\":\"t\",\"data\":{\"x\":1},\"metadata\":{"
	    "\"source\":\"S\",\"tags\":[\"a\"]},\"timestamp\":3,\"version\":4}",
	    "{\"id\":\"k\",\"agentId\":\"a\",\"type\":\"t\",\"data\":{\"x\":1},\"metadata\":{"
	    "\"source\":\"s\",\"tags\":[\"a\",\"b\"]},\"timestamp\":3,\"version\":4}",
	    "{\"id\":\"k\",\"agentId\":\"a\",\"type\":\"t\",\"data\":{\"x\":1},\"metadata\":{"
	    "\"source\":\"s\",\"tags\":[]},\"timestamp\":3,\"version\":4}",
	    "{\"id\":\"k\",\"agentId\":\"a\",\"type\":\"t\",\"data\":{\"x\":1},\"metadata\":{"
	    "\"source\":\"s\",\"tags\":[\"a\"],\"priority\":1},\"timestamp\":3,\"version\":4}",
	    "{\"id\":\"k\",\"agentId\":\"a\",\"type\":\"t\",\"data\":{\"x\":1},\"metadata\":{"
	    "\"source\":\"s\",\"tags\":[\"a\"],\"expiresAt\":9},\"timestamp\":3,\"version\":4}",
	    "{\"id\":\"k\",\"agentId\":\"a\",\"type\":\"t\",\"data\":{\"x\":1},\"metadata\":{"
	    "\"source\":\"s\",\"tags\":[\"a\"],\"other\":0},\"timestamp\":3,\"version\":4}",
	    "{\"id\":\"k\",\"agentId\":\"a\",\"type\":\"t\",\"data\":{\"x\":1},\"metadata\":{"
	    "\"source\":\"s\",\"tags\":[\"a\"]},\"timestamp\":4,\"version\":4}",
	    "{\"id\":\"k\",\"agentId\":\"a\",\"type\":\"t\",\"data\":{\"x\":1},\"metadata\":{"
	    "\"source\":\"s\",\"tags\":[\"a\"]},\"timestamp\":3,\"version\":5}",
	    "{\"id\":\"k\",\"agentId\":\"a\",\"type\":\"t\",\"data\":{\"x\":1},\"metadata\":{"
	    "\"source\":\"s\",\"tags\":[\"a\"]},\"timestamp\":3,\"version\":4,\"more\":1}",
	    "{\"id\":\"k\",\"agentId\":\"a\",\"type\":\"t\",\"data\":[{\"x\":1}],\"metadata\":{"
	    "\"source\":\"s\",\"tags\":[\"a\"]},\"timestamp\":3,\"version\":4}",
	};
	enum { N = sizeof(variants) / sizeof(variants[0]) };
	char sums[N][65];
	for (size_t i = 0; i < N; i++) {
		ags_pattern *p = parse_ok(variants[i]);
		memcpy(sums[i], ags_pattern_checksum(p), 65);
		ags_pattern_del(p);
		for (size_t j = 0; j < i; j++)
			if (strcmp(sums[i], sums[j]) == 0)
				fail_msg("variants %zu and %zu have the same checksum", j, i);
	}
}

static void checksum_is_sha256_of_canonical_form(void **state)
{
	(void)state;
	/* An unknown metadata key that sorts before "checksum". */
	const char *s = "{\"id\":\"k\",\"agentId\":\"a\",\"type\":\"t\",\"data\":{\"b\":1,\"a\":2},"
	                "\"metadata\":{\"tags\":[\"a\"],\"source\":\"s\",\"aa\":1,\"ch\":2},"
	                "\"timestamp\":3,\"version\":4}";
	ags_pattern *p = parse_ok(s);
	const char *json = ags_pattern_json(p, NULL);
	char *want =
	    tu_sprintf("{\"agentId\":\"a\",\"data\":{\"a\":2,\"b\":1},\"id\":\"k\","
	               "\"metadata\":{\"aa\":1,\"ch\":2,\"checksum\":\"%s\",\"source\":"
	               "\"s\",\"tags\":[\"a\"]},\"timestamp\":3,\"type\":\"t\",\"version\":4}",
	               ags_pattern_checksum(p));
	assert_string_equal(json, want);
	free(want);

	/* Remove metadata.checksum with yyjson, write canonically, hash. */
	yyjson_doc *d = json_doc(json, strlen(json));
	yyjson_mut_doc *md = yyjson_doc_mut_copy(d, NULL);
	assert_non_null(md);
	yyjson_mut_obj_remove_key(yyjson_mut_obj_get(yyjson_mut_doc_get_root(md), "metadata"),
	                          "checksum");
	yyjson_doc *stripped = yyjson_mut_doc_imut_copy(md, NULL);
	char *canon = NULL;
	size_t clen = 0;
	assert_int_equal(ags_json_canonical(yyjson_doc_get_root(stripped), &canon, &clen), 0);
	char hex[65];
	sha256_hex(canon, clen, hex);
	assert_string_equal(hex, ags_pattern_checksum(p));

	/* Supplying that checksum in this position is accepted. */
	ags_pattern *q = parse_ok(json);
	assert_string_equal(ags_pattern_checksum(q), hex);
	ags_pattern_del(q);

	free(canon);
	yyjson_doc_free(stripped);
	yyjson_mut_doc_free(md);
	yyjson_doc_free(d);
	ags_pattern_del(p);
}

static void canonical_writer(void **state)
{
	(void)state;
	const char *in = "{\"b\":1,\"a\":{\"z\":[3,{\"d\":1,\"c\":2}],\"\":0},\"ab\":1.50,"
	                 "\"\xc3\xa9\":1E2,\"Z\":-0,\"A\":\"\\u0041\\/\\u2028\"}";
	const char *want = "{\"A\":\"A/\xe2\x80\xa8\",\"Z\":0,\"a\":{\"\":0,\"z\":[3,{\"c\":2,"
	                   "\"d\":1}]},\"ab\":1.5,\"b\":1,\"\xc3\xa9\":100.0}";
	yyjson_doc *d = json_doc(in, strlen(in));
	char *out = NULL;
	size_t len = 0;
	assert_int_equal(ags_json_canonical(yyjson_doc_get_root(d), &out, &len), 0);
	assert_string_equal(out, want);
	assert_int_equal(len, strlen(want));
	free(out);
	yyjson_doc_free(d);

	/* Many keys take the qsort path; the order must still be bytewise. */
	char *big = tu_sprintf("{");
	for (int i = 99; i >= 0; i--) {
		char *n = tu_sprintf("%s\"k%d\":%d%s", big, i, i, i ? "," : "}");
		free(big);
		big = n;
	}
	d = json_doc(big, strlen(big));
	assert_int_equal(ags_json_canonical(yyjson_doc_get_root(d), &out, &len), 0);
	assert_memory_equal(out, "{\"k0\":0,\"k1\":1,\"k10\":10,\"k11\":11,", 33);
	assert_non_null(strstr(out, "\"k98\":98,\"k99\":99}"));
	free(out);
	yyjson_doc_free(d);
	free(big);

	d = json_doc("{\"a\":1,\"b\":{\"c\":1,\"c\":1}}", 25);
	assert_int_equal(ags_json_canonical(yyjson_doc_get_root(d), &out, &len), AGS_ERR_PATTERN);
	yyjson_doc_free(d);
	char *deep = nested_data(AGS_PATTERN_MAX_DEPTH + 1);
	d = json_doc(deep, strlen(deep));
	assert_int_equal(ags_json_canonical(yyjson_doc_get_root(d), &out, &len), AGS_ERR_PATTERN);
	yyjson_doc_free(d);
	free(deep);
}

static void tombstones(void **state)
{
	(void)state;
	ags_pattern *t;
	assert_int_equal(ags_pattern_new_tombstone("x", 2, 9, &t), 0);
	const char *want = "{\"deleted\":true,\"id\":\"x\",\"timestamp\":9,\"version\":2}";
	size_t len;
	assert_string_equal(ags_pattern_json(t, &len), want);
	assert_int_equal(len, strlen(want));
	char hex[65];
	sha256_hex(want, strlen(want), hex);
	assert_string_equal(ags_pattern_checksum(t), hex);
	assert_string_equal(ags_pattern_checksum(t),
	                    "c7b5c5a74b40dfb7b922845aa744ceb7c1aa7d5e13f3ecb3434c46b26bb77793");
	assert_true(ags_pattern_is_tombstone(t));
	assert_string_equal(ags_pattern_id(t), "x");
	assert_string_equal(ags_pattern_agent_id(t), "");
	assert_string_equal(ags_pattern_type(t), "");
	assert_string_equal(ags_pattern_source(t), "");
	assert_int_equal(ags_pattern_tag_count(t), 0);
	assert_null(ags_pattern_tag(t, 0));
	assert_int_equal(ags_pattern_version(t), 2);
	assert_int_equal(ags_pattern_timestamp(t), 9);

	/* A tombstone on the wire, in any order, is the same tombstone. */
	ags_pattern *w = parse_ok(" { \"version\":2, \"id\":\"\\u0078\", \"timestamp\":9, "
	                          "\"deleted\":true }");
	assert_true(ags_pattern_is_tombstone(w));
	assert_string_equal(ags_pattern_checksum(w), hex);
	assert_string_equal(ags_pattern_json(w, NULL), want);
	assert_int_equal(ags_pattern_compare(t, w), 0);
	ags_pattern_del(w);
	ags_pattern_del(t);

	/* The tombstone of an id with characters that need escaping. */
	assert_int_equal(ags_pattern_new_tombstone("a\"b\\c\n\xc3\xa9", 1, 0, &t), 0);
	assert_string_equal(ags_pattern_json(t, NULL),
	                    "{\"deleted\":true,\"id\":\"a\\\"b\\\\c\\n\xc3\xa9\",\"timestamp\":0,"
	                    "\"version\":1}");
	ags_pattern_del(t);

	char long_id[AGS_PATTERN_ID_MAX + 2];
	memset(long_id, 'i', sizeof(long_id));
	long_id[AGS_PATTERN_ID_MAX + 1] = '\0';
	t = (ags_pattern *)1;
	assert_int_equal(ags_pattern_new_tombstone(long_id, 1, 1, &t), AGS_ERR_INVALID);
	assert_null(t);
	long_id[AGS_PATTERN_ID_MAX] = '\0';
	assert_int_equal(ags_pattern_new_tombstone(long_id, 1, 1, &t), 0);
	ags_pattern_del(t);
	assert_int_equal(ags_pattern_new_tombstone(NULL, 1, 1, &t), AGS_ERR_INVALID);
	assert_int_equal(ags_pattern_new_tombstone("", 1, 1, &t), AGS_ERR_INVALID);
	assert_int_equal(ags_pattern_new_tombstone("x", 0, 1, &t), AGS_ERR_INVALID);
	assert_int_equal(ags_pattern_new_tombstone("x", 1, -1, &t), AGS_ERR_INVALID);
	assert_int_equal(ags_pattern_new_tombstone("\xff", 1, 1, &t), AGS_ERR_INVALID);
	assert_int_equal(ags_pattern_new_tombstone("x", 1, 1, NULL), AGS_ERR_INVALID);

	/* Malformed tombstones. */
	fail_str("{\"deleted\":true,\"id\":\"x\",\"timestamp\":1,\"version\":1,\"data\":1}",
	         AGS_ERR_PATTERN, "data");
	fail_str("{\"deleted\":false,\"id\":\"x\",\"timestamp\":1,\"version\":1}", AGS_ERR_PATTERN,
	         "deleted");
	/* A pattern with a "deleted" member of its own is told about "deleted". */
	char *del = tu_sprintf("%.*s,\"deleted\":0}", (int)strlen(SEED) - 1, SEED);
	fail_str(del, AGS_ERR_PATTERN, "deleted");
	free(del);
	fail_str("{\"deleted\":true,\"id\":\"x\",\"timestamp\":1,\"version\":0}", AGS_ERR_PATTERN,
	         "version");
	fail_str("{\"deleted\":true,\"id\":\"\",\"timestamp\":1,\"version\":1}", AGS_ERR_PATTERN,
	         "id");
	fail_str("{\"deleted\":true,\"id\":\"x\",\"version\":1}", AGS_ERR_PATTERN, "timestamp");
	fail_str("{\"deleted\":true,\"id\":\"x\",\"id\":\"y\",\"timestamp\":1,\"version\":1}",
	         AGS_ERR_PATTERN, "id");
}

/* Parses the pattern with the given version, timestamp and data. */
static ags_pattern *pat(int version, int ts, const char *data)
{
	char v[24], t[24];
	snprintf(v, sizeof(v), "%d", version);
	snprintf(t, sizeof(t), "%d", ts);
	char *s = make("\"c\"", data, "", t, v);
	ags_pattern *p = parse_ok(s);
	free(s);
	return p;
}

static void compare_rule(void **state)
{
	(void)state;
	ags_pattern *v1_late = pat(1, 900, "1"), *v2_early = pat(2, 100, "1");
	/* Higher version wins whatever the timestamps. */
	assert_true(ags_pattern_compare(v2_early, v1_late) > 0);
	assert_true(ags_pattern_compare(v1_late, v2_early) < 0);

	/* Equal version: the later timestamp wins. */
	ags_pattern *v2_late = pat(2, 200, "1");
	assert_true(ags_pattern_compare(v2_late, v2_early) > 0);
	assert_true(ags_pattern_compare(v2_early, v2_late) < 0);

	/* Equal version and timestamp: the greater checksum wins. */
	ags_pattern *x = pat(2, 100, "\"x\""), *y = pat(2, 100, "\"y\"");
	int by_sum = strcmp(ags_pattern_checksum(x), ags_pattern_checksum(y));
	assert_int_not_equal(by_sum, 0);
	ags_pattern *hi = by_sum > 0 ? x : y, *lo = by_sum > 0 ? y : x;
	assert_true(ags_pattern_compare(hi, lo) > 0);
	assert_true(ags_pattern_compare(lo, hi) < 0);

	/* The same change. */
	ags_pattern *again = pat(2, 100, "1");
	assert_int_equal(ags_pattern_compare(again, v2_early), 0);
	assert_int_equal(ags_pattern_compare(v2_early, v2_early), 0);

	/* A tombstone is ordered by the same rule. */
	ags_pattern *t;
	assert_int_equal(ags_pattern_new_tombstone("c", 3, 0, &t), 0);
	assert_true(ags_pattern_compare(t, v2_late) > 0);
	ags_pattern_del(t);
	assert_int_equal(ags_pattern_new_tombstone("c", 2, 150, &t), 0);
	assert_true(ags_pattern_compare(t, v2_early) > 0);
	assert_true(ags_pattern_compare(t, v2_late) < 0);
	ags_pattern_del(t);

	ags_pattern_del(v1_late);
	ags_pattern_del(v2_early);
	ags_pattern_del(v2_late);
	ags_pattern_del(x);
	ags_pattern_del(y);
	ags_pattern_del(again);
}

static void dup_is_deep(void **state)
{
	(void)state;
	ags_pattern *p = parse_ok(SEED);
	char *json = strdup(ags_pattern_json(p, NULL));
	char sum[65];
	memcpy(sum, ags_pattern_checksum(p), 65);
	ags_pattern *d = ags_pattern_dup(p);
	assert_non_null(d);
	assert_ptr_not_equal(ags_pattern_id(d), ags_pattern_id(p));
	ags_pattern_del(p); /* the copy must not depend on the original */
	assert_string_equal(ags_pattern_id(d), "pattern_1");
	assert_string_equal(ags_pattern_agent_id(d), "test-generator");
	assert_string_equal(ags_pattern_type(d), "test_execution");
	assert_string_equal(ags_pattern_source(d), "test-generator");
	assert_string_equal(ags_pattern_tag(d, 1), "auth");
	assert_true(ags_pattern_has_tag(d, "unit"));
	assert_string_equal(ags_pattern_checksum(d), sum);
	assert_string_equal(ags_pattern_json(d, NULL), json);
	assert_int_equal(ags_pattern_version(d), 1);
	ags_pattern *d2 = ags_pattern_dup(d);
	ags_pattern_del(d);
	assert_string_equal(ags_pattern_json(d2, NULL), json);
	ags_pattern_del(d2);
	assert_null(ags_pattern_dup(NULL));
	ags_pattern_del(NULL);

	ags_pattern *t;
	assert_int_equal(ags_pattern_new_tombstone("gone", 4, 5, &t), 0);
	d = ags_pattern_dup(t);
	ags_pattern_del(t);
	assert_true(ags_pattern_is_tombstone(d));
	assert_string_equal(ags_pattern_id(d), "gone");
	assert_string_equal(ags_pattern_agent_id(d), "");
	ags_pattern_del(d);
	free(json);
}

static void has_tag(void **state)
{
	(void)state;
	ags_pattern *p = parse_ok(SEED);
	assert_true(ags_pattern_has_tag(p, "unit"));
	assert_true(ags_pattern_has_tag(p, "auth"));
	assert_false(ags_pattern_has_tag(p, "Unit"));
	assert_false(ags_pattern_has_tag(p, "uni"));
	assert_false(ags_pattern_has_tag(p, "units"));
	assert_false(ags_pattern_has_tag(p, ""));
	assert_false(ags_pattern_has_tag(p, NULL));
	ags_pattern_del(p);

	char *s = make("\"x\"", "1", "", "1", "1");
	p = parse_ok(s);
	assert_true(ags_pattern_has_tag(p, "a"));
	assert_true(ags_pattern_has_tag(p, "b"));
	ags_pattern_del(p);
	free(s);
}

static void trusted_round_trip(void **state)
{
	(void)state;
	const char *inputs[] = {SEED, VECTOR,
	                        "{\"id\":\"k\",\"agentId\":\"a\",\"type\":\"t\",\"data\":1,"
	                        "\"metadata\":{\"aa\":1,\"source\":\"s\",\"tags\":[\"z\"],"
	                        "\"expiresAt\":77,\"priority\":9},\"timestamp\":3,\"version\":4}"};
	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		ags_pattern *p = parse_ok(inputs[i]), *q = NULL;
		size_t len;
		const char *json = ags_pattern_json(p, &len);
		assert_int_equal(ags_pattern_parse_trusted(json, len, &q), 0);
		size_t qlen;
		assert_int_equal(ags_pattern_json(q, &qlen), ags_pattern_json(q, NULL));
		assert_int_equal(qlen, len);
		assert_memory_equal(ags_pattern_json(q, NULL), json, len);
		assert_string_equal(ags_pattern_checksum(q), ags_pattern_checksum(p));
		assert_string_equal(ags_pattern_id(q), ags_pattern_id(p));
		assert_string_equal(ags_pattern_agent_id(q), ags_pattern_agent_id(p));
		assert_string_equal(ags_pattern_type(q), ags_pattern_type(p));
		assert_string_equal(ags_pattern_source(q), ags_pattern_source(p));
		assert_int_equal(ags_pattern_version(q), ags_pattern_version(p));
		assert_int_equal(ags_pattern_timestamp(q), ags_pattern_timestamp(p));
		assert_int_equal(ags_pattern_priority(q), ags_pattern_priority(p));
		assert_int_equal(ags_pattern_expires_at(q), ags_pattern_expires_at(p));
		assert_int_equal(ags_pattern_tag_count(q), ags_pattern_tag_count(p));
		for (size_t t = 0; t < ags_pattern_tag_count(p); t++)
			assert_string_equal(ags_pattern_tag(q, t), ags_pattern_tag(p, t));
		assert_int_equal(ags_pattern_compare(p, q), 0);
		ags_pattern_del(q);
		ags_pattern_del(p);
	}

	ags_pattern *t, *q;
	assert_int_equal(ags_pattern_new_tombstone("dead", 3, 4, &t), 0);
	size_t len;
	const char *json = ags_pattern_json(t, &len);
	assert_int_equal(ags_pattern_parse_trusted(json, len, &q), 0);
	assert_true(ags_pattern_is_tombstone(q));
	assert_string_equal(ags_pattern_checksum(q), ags_pattern_checksum(t));
	assert_string_equal(ags_pattern_json(q, NULL), json);
	ags_pattern_del(q);
	ags_pattern_del(t);

	/* Not our serialisation: refused, never a crash. */
	q = (ags_pattern *)1;
	assert_int_equal(ags_pattern_parse_trusted("{", 1, &q), AGS_ERR_JSON);
	assert_null(q);
	assert_int_equal(ags_pattern_parse_trusted("", 0, &q), AGS_ERR_JSON);
	assert_int_equal(ags_pattern_parse_trusted("[]", 2, &q), AGS_ERR_PATTERN);
	assert_int_equal(ags_pattern_parse_trusted(SEED, strlen(SEED), &q), AGS_ERR_PATTERN);
	char *bad = make("\"x\"", "1", "\"checksum\":\"nothex\",", "1", "1");
	assert_int_equal(ags_pattern_parse_trusted(bad, strlen(bad), &q), AGS_ERR_PATTERN);
	free(bad);
	bad = make(
	    "\"x\"", "1",
	    "\"checksum\":\"df267237525a1a3aaeffbeb0782f8eaac78690e0e8a6bc9d93905dcffad6cc4f\",",
	    "1", "0");
	assert_int_equal(ags_pattern_parse_trusted(bad, strlen(bad), &q), AGS_ERR_PATTERN);
	free(bad);
}

/* ------------------------------------------------------------------------ */
/* Pinned outputs: the stored form, checksum and errors of varied inputs.    */
/* ------------------------------------------------------------------------ */

/* Inputs whose stored form and checksum are pinned (the output of the mutable-document writer). */
static const char *const PIN_OK[] = {
    /* Unsorted at every level, escapes, unicode, numbers yyjson rewrites. */
    "{\"version\":2,\"type\":\"t\\u00e9\",\"timestamp\":7,\"metadata\":{\"tags\":[\"b\",\"a\"],"
    "\"source\":\"s\\\"q\\\\\",\"priority\":10,\"expiresAt\":0},\"id\":\"\\ud83d\\ude00\","
    "\"data\":{\"z\":[1.0,1e3,-0,-0.0,1E-7,0.1,5e-324,1.7976931348623157e308,"
    "123456789012345678901234567890,-9223372036854775808,18446744073709551615],"
    "\"y\":\"a/b\\n\\t\\u0001\\u001f\\u007f\\u2028\",\"\\u00e9\":{},\"e\":[],\"Z\":null,"
    "\"a\":{\"c\":true,\"b\":false,\"a\":[{\"y\":1,\"x\":2}]}},\"agentId\":\"ag\"}",
    /* Already canonical, without a checksum. */
    "{\"agentId\":\"a\",\"data\":{\"a\":[1.5,{\"b\":true,\"y\":null}],\"z\":1},\"extra\":\"x\","
    "\"id\":\"p1\",\"metadata\":{\"priority\":3,\"source\":\"s\",\"tags\":[\"x\",\"y\"]},"
    "\"timestamp\":5,\"type\":\"t\",\"version\":1}",
    /* Canonical with the right checksum inside, in upper case (stored lower case). */
    "{\"agentId\":\"a\",\"data\":{\"a\":[1.5,{\"b\":true,\"y\":null}],\"z\":1},\"extra\":\"x\","
    "\"id\":\"p1\",\"metadata\":{\"checksum\":"
    "\"C027A8AC087D3324EF01E3E77F2B57C70A14F72FDED82E4C77AE90253AF1B38B\",\"priority\":3,"
    "\"source\":\"s\",\"tags\":[\"x\",\"y\"]},"
    "\"timestamp\":5,\"type\":\"t\",\"version\":1}",
    /* Metadata keys on both sides of "checksum", prefixes of it and past it. */
    "{\"agentId\":\"a\",\"data\":1,\"id\":\"m\",\"metadata\":{\"aa\":{\"q\":1},\"c\":2,"
    "\"checksu\":3,\"checksum0\":4,\"checksuz\":[],\"source\":\"\",\"tags\":[]},"
    "\"timestamp\":0,\"type\":\"\",\"version\":9223372036854775807}",
    "{\"id\":\"m\",\"type\":\"\",\"agentId\":\"a\",\"data\":\"str\",\"metadata\":{\"tags\":[],"
    "\"source\":\"\",\"checksuz\":[],\"checksum0\":4,\"checksu\":3,\"c\":2,\"aa\":{\"q\":1}},"
    "\"timestamp\":0,\"version\":3}",
    /* Keys that need escaping, non-ASCII keys (byte order), prefix keys, NUL in a key. */
    "{\"agentId\":\"a\",\"data\":{\"ab\":1,\"a\":2,\"a\\u0000b\":3,\"\\u00ff\":4,\"\\u0100\":5,"
    "\"\\\"\":6,\"\\\\\":7,\"\\n\":8,\"\":9,\"~\":10},\"id\":\"k\",\"\\\"q\":{\"\\u00e9\":1},"
    "\"metadata\":{\"source\":\"s\",\"tags\":[\"t\"]},\"timestamp\":1,\"type\":\"t\","
    "\"version\":1,\"\\u00e9\":[[],{}]}",
    /* Same, sorted already. */
    "{\"\\\"q\":{\"\\u00e9\":1},\"agentId\":\"a\",\"data\":{\"\":9,\"\\n\":8,\"\\\"\":6,\"\\\\\":7,"
    "\"a\":2,\"a\\u0000b\":3,\"ab\":1,\"~\":10,\"\\u00ff\":4,\"\\u0100\":5},\"id\":\"k\","
    "\"metadata\":{\"source\":\"s\",\"tags\":[\"t\"]},\"timestamp\":1,\"type\":\"t\","
    "\"version\":1,\"\\u00e9\":[[],{}]}",
    /* Scalars as data, whitespace everywhere. */
    " { \"agentId\" : \"a\" , \"data\" : null , \"id\" : \"n\" , \"metadata\" : { \"source\" : "
    "\"s\" , \"tags\" : [ ] } , \"timestamp\" : 1 , \"type\" : \"t\" , \"version\" : 1 } ",
    "{\"agentId\":\"a\",\"data\":-12.5e-3,\"id\":\"n\",\"metadata\":{\"source\":\"s\",\"tags\":[]},"
    "\"timestamp\":1,\"type\":\"t\",\"version\":1}",
    "{\"agentId\":\"a\",\"data\":true,\"id\":\"n\",\"metadata\":{\"source\":\"s\",\"tags\":[],"
    "\"expiresAt\":18},\"timestamp\":1,\"type\":\"t\",\"version\":1}",
    /* A tombstone, unsorted and sorted. */
    "{\"version\":4,\"id\":\"gone\",\"timestamp\":9,\"deleted\":true}",
    "{\"deleted\":true,\"id\":\"g\\u00e9\",\"timestamp\":9,\"version\":4}",
};

/* The stored form and checksum of each PIN_OK input (before the fast writer existed). */
static const struct {
	const char *json, *sum;
} PIN_OK_OUT[] = {
    {"{\"agentId\":\"ag\",\"data\":{\"Z\":null,\"a\":{\"a\":[{\"x\":2,\"y\":1}],\"b\":false,\"c\":"
     "true},\"e\":[],\"y\":\"a/b\\n\\t\\u0001\\u001F\x7f"
     "\xe2"
     "\x80"
     "\xa8"
     "\",\"z\":[1.0,1000.0,0,-0.0,1e-7,0.1,5e-324,1.7976931348623157e308,1.2345678901234568e29,-"
     "9223372036854775808,18446744073709551615],\"\xc3"
     "\xa9"
     "\":{}},\"id\":\"\xf0"
     "\x9f"
     "\x98"
     "\x80"
     "\",\"metadata\":{\"checksum\":"
     "\"448c2e7610a694b9909f08eab06d8adcabcc189e18c67cc37464eae527e3148b\",\"expiresAt\":0,"
     "\"priority\":10,\"source\":\"s\\\"q\\\\\",\"tags\":[\"b\",\"a\"]},\"timestamp\":7,\"type\":"
     "\"t\xc3"
     "\xa9"
     "\",\"version\":2}",
     "448c2e7610a694b9909f08eab06d8adcabcc189e18c67cc37464eae527e3148b"},
    {"{\"agentId\":\"a\",\"data\":{\"a\":[1.5,{\"b\":true,\"y\":null}],\"z\":1},\"extra\":\"x\","
     "\"id\":\"p1\",\"metadata\":{\"checksum\":"
     "\"c027a8ac087d3324ef01e3e77f2b57c70a14f72fded82e4c77ae90253af1b38b\",\"priority\":3,"
     "\"source\":\"s\",\"tags\":[\"x\",\"y\"]},\"timestamp\":5,\"type\":\"t\",\"version\":1}",
     "c027a8ac087d3324ef01e3e77f2b57c70a14f72fded82e4c77ae90253af1b38b"},
    {"{\"agentId\":\"a\",\"data\":{\"a\":[1.5,{\"b\":true,\"y\":null}],\"z\":1},\"extra\":\"x\","
     "\"id\":\"p1\",\"metadata\":{\"checksum\":"
     "\"c027a8ac087d3324ef01e3e77f2b57c70a14f72fded82e4c77ae90253af1b38b\",\"priority\":3,"
     "\"source\":\"s\",\"tags\":[\"x\",\"y\"]},\"timestamp\":5,\"type\":\"t\",\"version\":1}",
     "c027a8ac087d3324ef01e3e77f2b57c70a14f72fded82e4c77ae90253af1b38b"},
    {"{\"agentId\":\"a\",\"data\":1,\"id\":\"m\",\"metadata\":{\"aa\":{\"q\":1},\"c\":2,"
     "\"checksu\":3,\"checksum\":"
     "\"2a848033aead80de5dcb10be43a844f15124e124f4f885f520190618b0839ff0\",\"checksum0\":4,"
     "\"checksuz\":[],\"source\":\"\",\"tags\":[]},\"timestamp\":0,\"type\":\"\",\"version\":"
     "9223372036854775807}",
     "2a848033aead80de5dcb10be43a844f15124e124f4f885f520190618b0839ff0"},
    {"{\"agentId\":\"a\",\"data\":\"str\",\"id\":\"m\",\"metadata\":{\"aa\":{\"q\":1},\"c\":2,"
     "\"checksu\":3,\"checksum\":"
     "\"3ead12e20d154943438715dbc2c776f8ae2a525af8eea16c1a13e8f7bf67c4c7\",\"checksum0\":4,"
     "\"checksuz\":[],\"source\":\"\",\"tags\":[]},\"timestamp\":0,\"type\":\"\",\"version\":3}",
     "3ead12e20d154943438715dbc2c776f8ae2a525af8eea16c1a13e8f7bf67c4c7"},
    {"{\"\\\"q\":{\"\xc3"
     "\xa9"
     "\":1},\"agentId\":\"a\",\"data\":{\"\":9,\"\\n\":8,\"\\\"\":6,\"\\\\\":7,\"a\":2,"
     "\"a\\u0000b\":3,\"ab\":1,\"~\":10,\"\xc3"
     "\xbf"
     "\":4,\"\xc4"
     "\x80"
     "\":5},\"id\":\"k\",\"metadata\":{\"checksum\":"
     "\"3539145432fb322479f0c54fbf9a42bb179ec36eed37d7b321b3e7cccaeeb0c1\",\"source\":\"s\","
     "\"tags\":[\"t\"]},\"timestamp\":1,\"type\":\"t\",\"version\":1,\"\xc3"
     "\xa9"
     "\":[[],{}]}",
     "3539145432fb322479f0c54fbf9a42bb179ec36eed37d7b321b3e7cccaeeb0c1"},
    {"{\"\\\"q\":{\"\xc3"
     "\xa9"
     "\":1},\"agentId\":\"a\",\"data\":{\"\":9,\"\\n\":8,\"\\\"\":6,\"\\\\\":7,\"a\":2,"
     "\"a\\u0000b\":3,\"ab\":1,\"~\":10,\"\xc3"
     "\xbf"
     "\":4,\"\xc4"
     "\x80"
     "\":5},\"id\":\"k\",\"metadata\":{\"checksum\":"
     "\"3539145432fb322479f0c54fbf9a42bb179ec36eed37d7b321b3e7cccaeeb0c1\",\"source\":\"s\","
     "\"tags\":[\"t\"]},\"timestamp\":1,\"type\":\"t\",\"version\":1,\"\xc3"
     "\xa9"
     "\":[[],{}]}",
     "3539145432fb322479f0c54fbf9a42bb179ec36eed37d7b321b3e7cccaeeb0c1"},
    {"{\"agentId\":\"a\",\"data\":null,\"id\":\"n\",\"metadata\":{\"checksum\":"
     "\"5cd63e49fffa350c83b2c2fdbc09fdaf90618406cd77f96a8194efd1fde7197c\",\"source\":\"s\","
     "\"tags\":[]},\"timestamp\":1,\"type\":\"t\",\"version\":1}",
     "5cd63e49fffa350c83b2c2fdbc09fdaf90618406cd77f96a8194efd1fde7197c"},
    {"{\"agentId\":\"a\",\"data\":-0.0125,\"id\":\"n\",\"metadata\":{\"checksum\":"
     "\"49c21402c27260a44b2fe065961b21141eeb44dac2ed49e8c14ee8ace58c35be\",\"source\":\"s\","
     "\"tags\":[]},\"timestamp\":1,\"type\":\"t\",\"version\":1}",
     "49c21402c27260a44b2fe065961b21141eeb44dac2ed49e8c14ee8ace58c35be"},
    {"{\"agentId\":\"a\",\"data\":true,\"id\":\"n\",\"metadata\":{\"checksum\":"
     "\"6ec4f85d4dc6a1cbc9d6e520b71582013ea7de692312b6830cece37ac3d0c34e\",\"expiresAt\":18,"
     "\"source\":\"s\",\"tags\":[]},\"timestamp\":1,\"type\":\"t\",\"version\":1}",
     "6ec4f85d4dc6a1cbc9d6e520b71582013ea7de692312b6830cece37ac3d0c34e"},
    {"{\"deleted\":true,\"id\":\"gone\",\"timestamp\":9,\"version\":4}",
     "d8958ad78c5179236ad181718be69b7c47be5d63a3d1a700260a4f16ffa3b470"},
    {"{\"deleted\":true,\"id\":\"g\xc3"
     "\xa9"
     "\",\"timestamp\":9,\"version\":4}",
     "073fdb5e3ff4c41af0fc60d48761278612cf534dce590cf18a6fb094ffea4463"},
};

/* ags_json_canonical of each PIN_OK input. */
static const char *const PIN_CANON[] = {
    "{\"agentId\":\"ag\",\"data\":{\"Z\":null,\"a\":{\"a\":[{\"x\":2,\"y\":1}],\"b\":false,\"c\":"
    "true},\"e\":[],\"y\":\"a/b\\n\\t\\u0001\\u001F\x7f"
    "\xe2"
    "\x80"
    "\xa8"
    "\",\"z\":[1.0,1000.0,0,-0.0,1e-7,0.1,5e-324,1.7976931348623157e308,1.2345678901234568e29,-"
    "9223372036854775808,18446744073709551615],\"\xc3"
    "\xa9"
    "\":{}},\"id\":\"\xf0"
    "\x9f"
    "\x98"
    "\x80"
    "\",\"metadata\":{\"expiresAt\":0,\"priority\":10,\"source\":\"s\\\"q\\\\\",\"tags\":[\"b\","
    "\"a\"]},\"timestamp\":7,\"type\":\"t\xc3"
    "\xa9"
    "\",\"version\":2}",
    "{\"agentId\":\"a\",\"data\":{\"a\":[1.5,{\"b\":true,\"y\":null}],\"z\":1},\"extra\":\"x\","
    "\"id\":\"p1\",\"metadata\":{\"priority\":3,\"source\":\"s\",\"tags\":[\"x\",\"y\"]},"
    "\"timestamp\":5,\"type\":\"t\",\"version\":1}",
    "{\"agentId\":\"a\",\"data\":{\"a\":[1.5,{\"b\":true,\"y\":null}],\"z\":1},\"extra\":\"x\","
    "\"id\":\"p1\",\"metadata\":{\"checksum\":"
    "\"C027A8AC087D3324EF01E3E77F2B57C70A14F72FDED82E4C77AE90253AF1B38B\",\"priority\":3,"
    "\"source\":\"s\",\"tags\":[\"x\",\"y\"]},\"timestamp\":5,\"type\":\"t\",\"version\":1}",
    "{\"agentId\":\"a\",\"data\":1,\"id\":\"m\",\"metadata\":{\"aa\":{\"q\":1},\"c\":2,\"checksu\":"
    "3,\"checksum0\":4,\"checksuz\":[],\"source\":\"\",\"tags\":[]},\"timestamp\":0,\"type\":\"\","
    "\"version\":9223372036854775807}",
    "{\"agentId\":\"a\",\"data\":\"str\",\"id\":\"m\",\"metadata\":{\"aa\":{\"q\":1},\"c\":2,"
    "\"checksu\":3,\"checksum0\":4,\"checksuz\":[],\"source\":\"\",\"tags\":[]},\"timestamp\":0,"
    "\"type\":\"\",\"version\":3}",
    "{\"\\\"q\":{\"\xc3"
    "\xa9"
    "\":1},\"agentId\":\"a\",\"data\":{\"\":9,\"\\n\":8,\"\\\"\":6,\"\\\\\":7,\"a\":2,"
    "\"a\\u0000b\":3,\"ab\":1,\"~\":10,\"\xc3"
    "\xbf"
    "\":4,\"\xc4"
    "\x80"
    "\":5},\"id\":\"k\",\"metadata\":{\"source\":\"s\",\"tags\":[\"t\"]},\"timestamp\":1,\"type\":"
    "\"t\",\"version\":1,\"\xc3"
    "\xa9"
    "\":[[],{}]}",
    "{\"\\\"q\":{\"\xc3"
    "\xa9"
    "\":1},\"agentId\":\"a\",\"data\":{\"\":9,\"\\n\":8,\"\\\"\":6,\"\\\\\":7,\"a\":2,"
    "\"a\\u0000b\":3,\"ab\":1,\"~\":10,\"\xc3"
    "\xbf"
    "\":4,\"\xc4"
    "\x80"
    "\":5},\"id\":\"k\",\"metadata\":{\"source\":\"s\",\"tags\":[\"t\"]},\"timestamp\":1,\"type\":"
    "\"t\",\"version\":1,\"\xc3"
    "\xa9"
    "\":[[],{}]}",
    "{\"agentId\":\"a\",\"data\":null,\"id\":\"n\",\"metadata\":{\"source\":\"s\",\"tags\":[]},"
    "\"timestamp\":1,\"type\":\"t\",\"version\":1}",
    "{\"agentId\":\"a\",\"data\":-0.0125,\"id\":\"n\",\"metadata\":{\"source\":\"s\",\"tags\":[]},"
    "\"timestamp\":1,\"type\":\"t\",\"version\":1}",
    "{\"agentId\":\"a\",\"data\":true,\"id\":\"n\",\"metadata\":{\"expiresAt\":18,\"source\":\"s\","
    "\"tags\":[]},\"timestamp\":1,\"type\":\"t\",\"version\":1}",
    "{\"deleted\":true,\"id\":\"gone\",\"timestamp\":9,\"version\":4}",
    "{\"deleted\":true,\"id\":\"g\xc3"
    "\xa9"
    "\",\"timestamp\":9,\"version\":4}",
};

/* Rejected inputs, read with `flags`, checked with max_bytes `max` (0: default). */
struct pin_err {
	const char *json;
	unsigned flags;
	size_t max;
};
static const struct pin_err PIN_ERR[] = {
    /* Duplicate keys, sorted and not. */
    {"{\"agentId\":\"a\",\"data\":{\"a\":1,\"a\":2},\"id\":\"k\",\"metadata\":{\"source\":\"s\","
     "\"tags\":[]},\"timestamp\":1,\"type\":\"t\",\"version\":1}",
     0, 0},
    {"{\"agentId\":\"a\",\"data\":[{\"b\":1,\"a\":1,\"b\":2}],\"id\":\"k\",\"metadata\":{"
     "\"source\":\"s\","
     "\"tags\":[]},\"timestamp\":1,\"type\":\"t\",\"version\":1}",
     0, 0},
    {"{\"agentId\":\"a\",\"data\":1,\"id\":\"k\",\"metadata\":{\"checksum\":"
     "\"0000000000000000000000000000000000000000000000000000000000000000\",\"checksum\":"
     "\"0000000000000000000000000000000000000000000000000000000000000000\",\"source\":\"s\","
     "\"tags\":[]},\"timestamp\":1,\"type\":\"t\",\"version\":1}",
     0, 0},
    {"{\"agentId\":\"a\",\"data\":1,\"id\":\"k\",\"id\":\"k\",\"metadata\":{\"source\":\"s\","
     "\"tags\":[]},\"timestamp\":1,\"type\":\"t\",\"version\":1}",
     0, 0},
    /* A wrong checksum, sorted and not. */
    {"{\"agentId\":\"a\",\"data\":1,\"id\":\"k\",\"metadata\":{\"checksum\":"
     "\"0000000000000000000000000000000000000000000000000000000000000000\",\"source\":\"s\","
     "\"tags\":[]},\"timestamp\":1,\"type\":\"t\",\"version\":1}",
     0, 0},
    {"{\"id\":\"k\",\"agentId\":\"a\",\"data\":1,\"metadata\":{\"source\":\"s\",\"checksum\":"
     "\"0000000000000000000000000000000000000000000000000000000000000000\","
     "\"tags\":[]},\"timestamp\":1,\"type\":\"t\",\"version\":1}",
     0, 0},
    {"{\"agentId\":\"a\",\"data\":1,\"id\":\"k\",\"metadata\":{\"checksum\":\"abc\",\"source\":"
     "\"s\","
     "\"tags\":[]},\"timestamp\":1,\"type\":\"t\",\"version\":1}",
     0, 0},
    {"{\"agentId\":\"a\",\"data\":1,\"id\":\"k\",\"metadata\":{\"checksum\":7,\"source\":\"s\","
     "\"tags\":[]},\"timestamp\":1,\"type\":\"t\",\"version\":1}",
     0, 0},
    /* Too large, sorted and not (stored form 141 bytes). */
    {"{\"agentId\":\"a\",\"data\":1,\"id\":\"k\",\"metadata\":{\"source\":\"s\","
     "\"tags\":[]},\"timestamp\":1,\"type\":\"t\",\"version\":1}",
     0, 140},
    {"{\"data\":1,\"agentId\":\"a\",\"id\":\"k\",\"metadata\":{\"source\":\"s\","
     "\"tags\":[]},\"timestamp\":1,\"type\":\"t\",\"version\":1}",
     0, 140},
    /* Too deep (depth 65 at data[0]...; sorted). */
    {"{\"agentId\":\"a\",\"data\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
     "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],\"id\":\"k\",\"metadata\":{"
     "\"source\":\"s\",\"tags\":[]},\"timestamp\":1,\"type\":\"t\",\"version\":1}",
     0, 0},
    /* Field rules. */
    {"[1]", 0, 0},
    {"1.5", 0, 0},
    {"{\"agentId\":\"a\",\"data\":1,\"id\":1.5,\"metadata\":{\"source\":\"s\","
     "\"tags\":[]},\"timestamp\":1,\"type\":\"t\",\"version\":1}",
     0, 0},
    {"{\"agentId\":\"a\",\"data\":1,\"id\":\"\",\"metadata\":{\"source\":\"s\","
     "\"tags\":[]},\"timestamp\":1,\"type\":\"t\",\"version\":1}",
     0, 0},
    {"{\"agentId\":\"a\\u0000\",\"data\":1,\"id\":\"k\",\"metadata\":{\"source\":\"s\","
     "\"tags\":[]},\"timestamp\":1,\"type\":\"t\",\"version\":1}",
     0, 0},
    {"{\"agentId\":\"a\",\"id\":\"k\",\"metadata\":{\"source\":\"s\","
     "\"tags\":[]},\"timestamp\":1,\"type\":\"t\",\"version\":1}",
     0, 0},
    {"{\"agentId\":\"a\",\"data\":1,\"id\":\"k\",\"metadata\":[],\"timestamp\":1,\"type\":\"t\","
     "\"version\":1}",
     0, 0},
    {"{\"agentId\":\"a\",\"data\":1,\"id\":\"k\",\"timestamp\":1,\"type\":\"t\",\"version\":1}", 0,
     0},
    {"{\"agentId\":\"a\",\"data\":1,\"id\":\"k\",\"metadata\":{\"source\":\"s\","
     "\"tags\":[\"a\",2]},\"timestamp\":1,\"type\":\"t\",\"version\":1}",
     0, 0},
    {"{\"agentId\":\"a\",\"data\":1,\"id\":\"k\",\"metadata\":{\"source\":\"s\","
     "\"tags\":\"a\"},\"timestamp\":1,\"type\":\"t\",\"version\":1}",
     0, 0},
    {"{\"agentId\":\"a\",\"data\":1,\"id\":\"k\",\"metadata\":{\"source\":\"s\","
     "\"tags\":[]},\"timestamp\":1,\"type\":\"t\",\"version\":0}",
     0, 0},
    {"{\"agentId\":\"a\",\"data\":1,\"id\":\"k\",\"metadata\":{\"source\":\"s\","
     "\"tags\":[]},\"timestamp\":-1,\"type\":\"t\",\"version\":1}",
     0, 0},
    {"{\"agentId\":\"a\",\"data\":1,\"id\":\"k\",\"metadata\":{\"source\":\"s\","
     "\"tags\":[]},\"timestamp\":1e3,\"type\":\"t\",\"version\":1}",
     0, 0},
    {"{\"agentId\":\"a\",\"data\":1,\"id\":\"k\",\"metadata\":{\"source\":\"s\",\"priority\":11,"
     "\"tags\":[]},\"timestamp\":1,\"type\":\"t\",\"version\":1}",
     0, 0},
    {"{\"agentId\":\"a\",\"data\":1,\"id\":\"k\",\"metadata\":{\"expiresAt\":-5,\"source\":\"s\","
     "\"tags\":[]},\"timestamp\":1,\"type\":\"t\",\"version\":1}",
     0, 0},
    {"{\"agentId\":\"a\",\"data\":1,\"id\":\"k\",\"metadata\":{\"tags\":[]},\"timestamp\":1,"
     "\"type\":\"t\",\"version\":1}",
     0, 0},
    {"{\"agentId\":\"a\",\"data\":1,\"id\":\"k\",\"metadata\":{\"source\":\"s\","
     "\"tags\":[]},\"timestamp\":1,\"type\":true,\"version\":1}",
     0, 0},
    {"{\"agentId\":\"a\",\"data\":1,\"id\":\"k\",\"metadata\":{\"source\":\"s\","
     "\"tags\":[]},\"timestamp\":1,\"type\":\"t\",\"version\":18446744073709551615}",
     0, 0},
    /* Tombstones. */
    {"{\"deleted\":false,\"id\":\"k\",\"timestamp\":1,\"version\":1}", 0, 0},
    {"{\"deleted\":true,\"id\":\"k\",\"timestamp\":1,\"version\":1,\"x\":1}", 0, 0},
    {"{\"deleted\":true,\"id\":\"k\",\"id\":\"k\",\"timestamp\":1,\"version\":1}", 0, 0},
    {"{\"deleted\":true,\"id\":\"k\",\"timestamp\":1}", 0, 0},
    {"{\"deleted\":true,\"id\":\"k\",\"timestamp\":1,\"version\":1}", 0, 40},
    /* Values only some readers make: invalid UTF-8, NaN, raw numbers. */
    {"{\"agentId\":\"a\",\"data\":\"\xff\",\"id\":\"k\",\"metadata\":{\"source\":\"s\","
     "\"tags\":[]},\"timestamp\":1,\"type\":\"t\",\"version\":1}",
     YYJSON_READ_ALLOW_INVALID_UNICODE, 0},
    {"{\"agentId\":\"a\",\"data\":{\"\xff\":1},\"id\":\"k\",\"metadata\":{\"source\":\"s\","
     "\"tags\":[]},\"timestamp\":1,\"type\":\"t\",\"version\":1}",
     YYJSON_READ_ALLOW_INVALID_UNICODE, 0},
    {"{\"agentId\":\"a\",\"data\":[NaN],\"id\":\"k\",\"metadata\":{\"source\":\"s\","
     "\"tags\":[]},\"timestamp\":1,\"type\":\"t\",\"version\":1}",
     YYJSON_READ_ALLOW_INF_AND_NAN, 0},
    {"{\"agentId\":\"a\",\"data\":[1.5],\"id\":\"k\",\"metadata\":{\"source\":\"s\","
     "\"tags\":[]},\"timestamp\":1,\"type\":\"t\",\"version\":1}",
     YYJSON_READ_NUMBER_AS_RAW, 0},
    {"{\"agentId\":\"a\",\"data\":1,\"id\":\"k\xff\",\"metadata\":{\"source\":\"s\","
     "\"tags\":[]},\"timestamp\":1,\"type\":\"t\",\"version\":1}",
     YYJSON_READ_ALLOW_INVALID_UNICODE, 0},
    {"{\"agentId\":\"a\",\"data\":1,\"id\":\"k\",\"metadata\":{\"source\":\"\xc3\",\"tags\":[]},"
     "\"timestamp\":1,\"type\":\"t\",\"version\":1}",
     YYJSON_READ_ALLOW_INVALID_UNICODE, 0},
    {"{\"agentId\":\"a\",\"data\":1,\"id\":\"k\",\"metadata\":{\"source\":\"s\",\"tags\":["
     "\"\xe9t\xc3\xa9\"]},"
     "\"timestamp\":1,\"type\":\"t\",\"version\":1}",
     YYJSON_READ_ALLOW_INVALID_UNICODE, 0},
    {"{\"agentId\":\"a\",\"data\":1,\"id\":\"k\",\"metadata\":{\"source\":\"s\",\"tags\":[]},"
     "\"timestamp\":1,\"type\":\"t\",\"version\":1,\"\xc3\xa9\xff\":1}",
     YYJSON_READ_ALLOW_INVALID_UNICODE, 0},
    {"{\"deleted\":true,\"id\":\"\xff\",\"timestamp\":1,\"version\":1}",
     YYJSON_READ_ALLOW_INVALID_UNICODE, 0},
};

/* What each PIN_ERR input gives: code, field, message. */
static const struct {
	int code;
	const char *field, *message;
} PIN_ERR_OUT[] = {
    {-4, "data.a", "duplicate key \"a\" in an object"},
    {-4, "data[0].b", "duplicate key \"b\" in an object"},
    {-4, "metadata.checksum", "duplicate key \"checksum\" in an object"},
    {-4, "id", "duplicate key \"id\" in an object"},
    {-6, "metadata.checksum",
     "does not match the content, whose checksum is "
     "a91db53bc63127dee3d85e6d53d15a5af4cb506b0669505cc0cc4bad98cdf649"},
    {-6, "metadata.checksum",
     "does not match the content, whose checksum is "
     "a91db53bc63127dee3d85e6d53d15a5af4cb506b0669505cc0cc4bad98cdf649"},
    {-4, "metadata.checksum", "must be 64 hexadecimal digits (a SHA-256), got other text"},
    {-4, "metadata.checksum", "must be 64 hexadecimal digits (a SHA-256), got 7"},
    {-5, "", "pattern is 184 bytes, over the limit of 140 bytes"},
    {-5, "", "pattern is 184 bytes, over the limit of 140 bytes"},
    {-4,
     "data[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]["
     "0][",
     "nests arrays and objects deeper than the limit of 64 levels"},
    {-4, "", "must be a JSON object, got an array"},
    {-4, "", "must be a JSON object, got 1.5"},
    {-4, "id", "must be a string, got 1.5"},
    {-4, "id", "must not be empty"},
    {-4, "agentId", "must not contain the NUL character (\\u0000)"},
    {-4, "data", "is required"},
    {-4, "metadata", "must be an object, got an array"},
    {-4, "metadata", "is required"},
    {-4, "metadata.tags[1]", "must be a string, got 2"},
    {-4, "metadata.tags", "must be an array of strings, got a string"},
    {-4, "version", "must be an integer from 1 to 9223372036854775807, got 0"},
    {-4, "timestamp", "must be an integer from 0 to 9223372036854775807, got -1"},
    {-4, "timestamp", "must be an integer from 0 to 9223372036854775807, got 1000.0"},
    {-4, "metadata.priority", "must be an integer from 1 to 10, got 11"},
    {-4, "metadata.expiresAt", "must be an integer from 0 to 9223372036854775807, got -5"},
    {-4, "metadata.source", "is required"},
    {-4, "type", "must be a string, got true"},
    {-4, "version", "must be an integer from 1 to 9223372036854775807, got 18446744073709551615"},
    {-4, "deleted", "must be true (a record with \"deleted\" is a tombstone), got false"},
    {-4, "x",
     "is not allowed in a tombstone (a record with \"deleted\"), which has only deleted, id, "
     "timestamp and version"},
    {-4, "id", "duplicate key \"id\""},
    {-4, "version", "is required"},
    {-5, "", "pattern is 51 bytes, over the limit of 40 bytes"},
    {-4, "", "cannot be written as JSON: invalid utf-8 encoding in string"},
    {-4, "", "cannot be written as JSON: invalid utf-8 encoding in string"},
    {-4, "", "cannot be written as JSON: nan or inf number is not allowed"},
    {-4, "timestamp", "must be an integer from 0 to 9223372036854775807, got nothing"},
    {-4, "", "cannot be written as JSON: invalid utf-8 encoding in string"},
    {-4, "", "cannot be written as JSON: invalid utf-8 encoding in string"},
    {-4, "", "cannot be written as JSON: invalid utf-8 encoding in string"},
    {-4, "", "cannot be written as JSON: invalid utf-8 encoding in string"},
    {-1, "id", "must be valid UTF-8"},
};

/* Checks that pattern p has the stored form `json` and checksum `sum`. */
static void assert_pattern_is(const ags_pattern *p, const char *json, const char *sum)
{
	size_t len;
	const char *j = ags_pattern_json(p, &len);
	if (len != strlen(json) || memcmp(j, json, len) != 0)
		fail_msg("stored form differs\nwant: %s\ngot:  %.*s", json, (int)len, j);
	assert_string_equal(ags_pattern_checksum(p), sum);
}

/* Makes a pattern of `json` as a receiver does: from one element of a parsed array. */
static ags_pattern *from_array(const char *json)
{
	char *arr = tu_sprintf("[0,%s,1]", json);
	yyjson_doc *doc = yyjson_read(arr, strlen(arr), 0);
	assert_non_null(doc);
	ags_pattern *p = NULL;
	ags_error err;
	int rc = ags_pattern_from_val(yyjson_arr_get(yyjson_doc_get_root(doc), 1), NULL, &p, &err);
	if (rc)
		fail_msg("from_val failed (%d) at %s: %s", rc, err.field, err.message);
	yyjson_doc_free(doc);
	free(arr);
	return p;
}

/* Stored forms, checksums and canonical forms are byte for byte what they were. */
static void pinned_outputs(void **state)
{
	(void)state;
	assert_int_equal(sizeof(PIN_OK) / sizeof(PIN_OK[0]),
	                 sizeof(PIN_OK_OUT) / sizeof(PIN_OK_OUT[0]));
	for (size_t i = 0; i < sizeof(PIN_OK) / sizeof(PIN_OK[0]); i++) {
		const char *want = PIN_OK_OUT[i].json, *sum = PIN_OK_OUT[i].sum;
		ags_pattern *p = parse_ok(PIN_OK[i]);
		assert_pattern_is(p, want, sum);
		ags_pattern_del(p);
		p = from_array(PIN_OK[i]);
		assert_pattern_is(p, want, sum);
		ags_pattern_del(p);
		/* The stored form, sent on, comes out unchanged. */
		p = parse_ok(want);
		assert_pattern_is(p, want, sum);
		ags_pattern_del(p);
		p = from_array(want);
		assert_pattern_is(p, want, sum);
		ags_pattern_del(p);

		yyjson_doc *doc = yyjson_read(PIN_OK[i], strlen(PIN_OK[i]), 0);
		char *c = NULL;
		size_t len = 0;
		assert_int_equal(ags_json_canonical(yyjson_doc_get_root(doc), &c, &len), 0);
		assert_int_equal(len, strlen(PIN_CANON[i]));
		assert_string_equal(c, PIN_CANON[i]);
		free(c);
		yyjson_doc_free(doc);
		/* Canonical text is its own canonical form. */
		doc = yyjson_read(PIN_CANON[i], strlen(PIN_CANON[i]), 0);
		assert_int_equal(ags_json_canonical(yyjson_doc_get_root(doc), &c, &len), 0);
		assert_string_equal(c, PIN_CANON[i]);
		free(c);
		yyjson_doc_free(doc);
	}
}

/* Every rejection keeps its code, field and message. */
static void pinned_errors(void **state)
{
	(void)state;
	assert_int_equal(sizeof(PIN_ERR) / sizeof(PIN_ERR[0]),
	                 sizeof(PIN_ERR_OUT) / sizeof(PIN_ERR_OUT[0]));
	for (size_t i = 0; i < sizeof(PIN_ERR) / sizeof(PIN_ERR[0]); i++) {
		const char *json = PIN_ERR[i].json;
		ags_pattern_opts o = {0};
		o.max_bytes = PIN_ERR[i].max;
		yyjson_doc *doc = yyjson_read_opts((char *)(uintptr_t)json, strlen(json),
		                                   PIN_ERR[i].flags, NULL, NULL);
		assert_non_null(doc);
		ags_pattern *p = (ags_pattern *)1;
		ags_error err;
		int rc = ags_pattern_from_val(yyjson_doc_get_root(doc), &o, &p, &err);
		if (rc != PIN_ERR_OUT[i].code || strcmp(err.field, PIN_ERR_OUT[i].field) != 0 ||
		    strcmp(err.message, PIN_ERR_OUT[i].message) != 0)
			fail_msg("input %zu: want %d '%s' '%s'\ngot %d '%s' '%s'", i,
			         PIN_ERR_OUT[i].code, PIN_ERR_OUT[i].field, PIN_ERR_OUT[i].message,
			         rc, err.field, err.message);
		assert_null(p);
		yyjson_doc_free(doc);
		if (PIN_ERR[i].flags || PIN_ERR[i].max)
			continue;
		ags_error e2 =
		    parse_fail(json, strlen(json), NULL, PIN_ERR_OUT[i].code, PIN_ERR_OUT[i].field);
		assert_string_equal(e2.message, PIN_ERR_OUT[i].message);
	}
}

/*
 * Sorted input (which may take a shortcut) and the same content unsorted give
 * the same stored form, checksum, or error, also when large.
 */
/*
 * Input with keys out of order at several levels (what clients send) is
 * written canonically straight into the buffer (sort_obj in
 * pattern_canon.c); the stored form without its checksum member must be
 * what the general canonical writer (ags_json_canonical) makes of the input.
 */
static void unsorted_input_is_written_canonically(void **state)
{
	(void)state;
	static const char *const inputs[] = {
	    "{\"version\":2,\"type\":\"t\",\"id\":\"u1\",\"data\":{\"z\":-9223372036854775808,"
	    "\"b\":[{\"y\":1,\"x\":[true,false,null]},18446744073709551615,-1,0],\"a\":87.50,"
	    "\"c\":{\"q\":1e10,\"p\":-0.0,\"o\":\"\\u00e9\\n\\\"\"}},\"agentId\":\"a\","
	    "\"metadata\":{\"tags\":[\"t\"],\"source\":\"s\",\"priority\":3},\"timestamp\":7}",
	    /* metadata keys before "checksum", and a checksum member given */
	    "{\"id\":\"u2\",\"agentId\":\"a\",\"type\":\"t\",\"data\":{\"k\":[[{\"b\":1,\"a\":2}]]}"
	    ","
	    "\"metadata\":{\"source\":\"s\",\"author\":{\"z\":0,\"a\":\"\xc3\xa9\"},\"tags\":[],"
	    "\"checksum\":\"753b55051d8c5033dbc08263d29b95d405d72abf9d86c736aa1a7143c73d5b56\"},"
	    "\"timestamp\":1,\"version\":1}",
	    /* sorted except deep down */
	    "{\"agentId\":\"a\",\"data\":{\"a\":{\"b\":{\"c\":{\"e\":1,\"d\":2}}}},\"id\":\"u3\","
	    "\"metadata\":{\"source\":\"s\",\"tags\":[]},\"timestamp\":1,\"type\":\"t\","
	    "\"version\":1}",
	};
	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		ags_pattern *p = parse_ok(inputs[i]);
		size_t len;
		const char *j = ags_pattern_json(p, &len);
		/* The stored form without `"checksum":"<64>",`. */
		const char *c = strstr(j, "\"checksum\":\"");
		assert_non_null(c);
		char *got = tu_sprintf("%.*s%s", (int)(c - j), j, c + 12 + 64 + 2);
		/* The input without its checksum member, written by the general writer. */
		yyjson_doc *d = yyjson_read(inputs[i], strlen(inputs[i]), 0);
		yyjson_mut_doc *m = yyjson_doc_mut_copy(d, NULL);
		yyjson_mut_obj_remove_key(
		    yyjson_mut_obj_get(yyjson_mut_doc_get_root(m), "metadata"), "checksum");
		yyjson_doc *d2 = yyjson_mut_doc_imut_copy(m, NULL);
		char *want = NULL;
		size_t wlen = 0;
		assert_int_equal(ags_json_canonical(yyjson_doc_get_root(d2), &want, &wlen), 0);
		assert_string_equal(got, want);
		free(want);
		free(got);
		yyjson_doc_free(d2);
		yyjson_mut_doc_free(m);
		yyjson_doc_free(d);
		ags_pattern_del(p);
	}
}

static void sorted_and_unsorted_agree(void **state)
{
	(void)state;
	char *s, *u, *big = malloc(20001), *keys = tu_sprintf("%s", ""), *rkeys;
	assert_non_null(big);
	memset(big, 'x', 20000);
	big[20000] = '\0';
	/* 300 keys: more than any inline member stack. */
	for (int i = 0; i < 300; i++) {
		char *k = tu_sprintf("%s%s\"k%03d\":[%d,\"\\u00e9%s\"]", keys, i ? "," : "", i, i,
		                     i % 50 ? "" : big);
		free(keys);
		keys = k;
	}
	rkeys = tu_sprintf("%s", "");
	for (int i = 299; i >= 0; i--) {
		char *k = tu_sprintf("%s%s\"k%03d\":[%d,\"\\u00e9%s\"]", rkeys, i != 299 ? "," : "",
		                     i, i, i % 50 ? "" : big);
		free(rkeys);
		rkeys = k;
	}
	s = tu_sprintf("{\"agentId\":\"a\",\"data\":{%s},\"id\":\"big\",\"metadata\":{\"source\":"
	               "\"s\",\"tags\":[\"%s\"]},\"timestamp\":1,\"type\":\"t\",\"version\":1}",
	               keys, big);
	u = tu_sprintf(
	    "{\"version\":1,\"id\":\"big\",\"data\":{%s},\"metadata\":{\"tags\":[\"%s\"],"
	    "\"source\":\"s\"},\"timestamp\":1,\"type\":\"t\",\"agentId\":\"a\"}",
	    rkeys, big);
	ags_pattern *ps = parse_ok(s), *pu = parse_ok(u), *pr;
	size_t len;
	const char *j = ags_pattern_json(pu, &len);
	assert_pattern_is(ps, j, ags_pattern_checksum(pu));
	pr = from_array(j);
	assert_pattern_is(pr, j, ags_pattern_checksum(pu));
	ags_pattern_del(pr);
	ags_pattern_del(ps);
	ags_pattern_del(pu);
	free(s);
	free(u);

	/* Too deep, sorted and not: same field and message. */
	char *d = nested_data(AGS_PATTERN_MAX_DEPTH);
	s = tu_sprintf("{\"agentId\":\"a\",\"data\":%s,\"id\":\"k\",\"metadata\":{\"source\":\"s\","
	               "\"tags\":[]},\"timestamp\":1,\"type\":\"t\",\"version\":1}",
	               d);
	u = make("\"k\"", d, "", "1", "1");
	ags_error es = parse_fail(s, strlen(s), NULL, AGS_ERR_PATTERN, NULL);
	ags_error eu = parse_fail(u, strlen(u), NULL, AGS_ERR_PATTERN, NULL);
	assert_string_equal(es.field, eu.field);
	assert_string_equal(es.message, eu.message);
	free(s);
	free(u);
	free(d);
	free(keys);
	free(rkeys);
	free(big);
}

/* Every printable character in a supplied checksum: only 0-9, a-f and A-F pass the format check. */
static void checksum_digits(void **state)
{
	(void)state;
	for (int c = ' '; c <= '~'; c++) {
		if (c == '"' || c == '\\')
			continue;
		char sum[65];
		memset(sum, 'a', 64);
		sum[64] = '\0';
		sum[c % 64] = (char)c;
		char *meta = tu_sprintf("\"checksum\":\"%s\",", sum);
		char *s = make("\"x\"", "1", meta, "1", "1");
		int hex =
		    (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
		ags_error e =
		    parse_fail(s, strlen(s), NULL, hex ? AGS_ERR_CHECKSUM : AGS_ERR_PATTERN,
		               "metadata.checksum");
		if (!hex)
			assert_non_null(strstr(e.message, "64 hexadecimal digits"));
		free(s);
		free(meta);
	}
}

static void parse_array_all_or_none(void **state)
{
	(void)state;
	char json[4096];
	snprintf(json, sizeof(json),
	         "[%s,%s,{\"deleted\":true,\"id\":\"gone\",\"version\":2,"
	         "\"timestamp\":3}]",
	         SEED, VECTOR);
	ags_pattern **ps = NULL;
	size_t n = 99;
	ags_error e;
	assert_int_equal(ags_pattern_parse_array(json, strlen(json), NULL, &ps, &n, &e), 0);
	assert_int_equal(n, 3);
	/* Each element is what ags_pattern_parse makes of it alone. */
	const char *one[] = {SEED, VECTOR};
	for (size_t i = 0; i < 2; i++) {
		ags_pattern *p = parse_ok(one[i]);
		assert_string_equal(ags_pattern_json(ps[i], NULL), ags_pattern_json(p, NULL));
		assert_string_equal(ags_pattern_checksum(ps[i]), ags_pattern_checksum(p));
		ags_pattern_del(p);
	}
	assert_true(ags_pattern_is_tombstone(ps[2]));
	ags_pattern_array_del(ps, n);

	assert_int_equal(ags_pattern_parse_array("[]", 2, NULL, &ps, &n, NULL), 0);
	assert_int_equal(n, 0);
	ags_pattern_array_del(ps, n);

	/* One bad element: nothing is returned, and the error names it. */
	snprintf(json, sizeof(json), "[%s,%s]", SEED, VECTOR);
	char *bad = strstr(json + strlen(SEED), "\"priority\":3");
	assert_non_null(bad);
	memcpy(bad, "\"priority\":0", 12);
	assert_int_equal(ags_pattern_parse_array(json, strlen(json), NULL, &ps, &n, &e),
	                 AGS_ERR_PATTERN);
	assert_null(ps);
	assert_int_equal(n, 0);
	assert_string_equal(e.field, "[1].metadata.priority");
	assert_int_equal(ags_pattern_parse_array("[{}]", 4, NULL, &ps, &n, &e), AGS_ERR_PATTERN);
	assert_string_equal(e.field, "[0].id");
	assert_int_equal(ags_pattern_parse_array("[1,", 3, NULL, &ps, &n, &e), AGS_ERR_JSON);
	assert_int_equal(e.offset, 3);
	assert_int_equal(ags_pattern_parse_array(SEED, strlen(SEED), NULL, &ps, &n, &e),
	                 AGS_ERR_PATTERN);
	assert_non_null(strstr(e.message, "array"));
	/* The size limit is each pattern's. */
	ags_pattern_opts small = {.max_bytes = 256};
	snprintf(json, sizeof(json), "[%s]", SEED);
	assert_int_equal(ags_pattern_parse_array(json, strlen(json), &small, &ps, &n, &e),
	                 AGS_ERR_TOO_LARGE);
	assert_string_equal(e.field, "[0]");
	assert_int_equal(ags_pattern_parse_array(NULL, 1, NULL, &ps, &n, &e), AGS_ERR_INVALID);
	ags_pattern_array_del(NULL, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(seed_pattern_parses),
	    cmocka_unit_test(known_vector),
	    cmocka_unit_test(malformed_json),
	    cmocka_unit_test(bad_arguments),
	    cmocka_unit_test(top_level_and_required_fields),
	    cmocka_unit_test(id_rules),
	    cmocka_unit_test(version_and_timestamp_rules),
	    cmocka_unit_test(metadata_rules),
	    cmocka_unit_test(nesting_depth_limit),
	    cmocka_unit_test(duplicate_keys),
	    cmocka_unit_test(supplied_checksum),
	    cmocka_unit_test(max_bytes_option),
	    cmocka_unit_test(round_trip_keeps_content),
	    cmocka_unit_test(checksum_ignores_order_and_whitespace),
	    cmocka_unit_test(checksum_covers_every_field),
	    cmocka_unit_test(checksum_is_sha256_of_canonical_form),
	    cmocka_unit_test(canonical_writer),
	    cmocka_unit_test(tombstones),
	    cmocka_unit_test(compare_rule),
	    cmocka_unit_test(dup_is_deep),
	    cmocka_unit_test(has_tag),
	    cmocka_unit_test(trusted_round_trip),
	    cmocka_unit_test(pinned_outputs),
	    cmocka_unit_test(pinned_errors),
	    cmocka_unit_test(sorted_and_unsorted_agree),
	    cmocka_unit_test(unsorted_input_is_written_canonically),
	    cmocka_unit_test(checksum_digits),
	    cmocka_unit_test(parse_array_all_or_none),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
