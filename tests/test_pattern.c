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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
