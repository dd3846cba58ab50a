/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for lib/util: base64url, the file reader, the clock, event names. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"
#include "agentsync/agentsync.h"
#include "agentsync/event.h"
#include "base64.h"
#include "clock.h"
#include "file.h"

static void base64url_round_trips_every_length(void **state)
{
	(void)state;
	uint8_t in[70];
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 37 + 0xf0); /* every value of the 6-bit groups shows up */
	for (size_t n = 0; n <= sizeof(in); n++) {
		char *s = NULL;
		assert_int_equal(ags_base64url_encode(in, n, &s), 0);
		assert_int_equal(strlen(s), (n * 4 + 2) / 3);
		assert_null(strpbrk(s, "+/=\n"));
		assert_true(ags_base64url_valid(s, strlen(s)));
		uint8_t *out = NULL;
		size_t len = 99;
		assert_int_equal(ags_base64url_decode(s, strlen(s), &out, &len), 0);
		assert_int_equal(len, n);
		assert_memory_equal(out, in, n);
		assert_int_equal(out[len], 0);
		free(out);
		free(s);
	}
}

static void base64url_refuses_what_is_not(void **state)
{
	(void)state;
	/* JWS's form: no padding, no standard alphabet, no length 4k+1. */
	static const char *const bad[] = {"ab+c", "ab/c", "YQ==", "abcde", "a b", "x\n"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t *out = (uint8_t *)"untouched";
		size_t len = 7;
		assert_false(ags_base64url_valid(bad[i], strlen(bad[i])));
		assert_int_equal(ags_base64url_decode(bad[i], strlen(bad[i]), &out, &len),
		                 AGS_ERR_INVALID);
		assert_string_equal((char *)out, "untouched");
	}
	uint8_t *out = NULL;
	size_t len = 0;
	assert_int_equal(ags_base64url_decode("eyJhIjoxfQ", 10, &out, &len), 0);
	assert_string_equal((char *)out, "{\"a\":1}");
	free(out);
}

static void file_read_reads_whole_files_up_to_the_limit(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp("util");
	char *path = tu_sprintf("%s/key", dir);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	fputs("0123456789", f);
	fclose(f);
	char *buf = NULL;
	size_t len = 0;
	ags_error e;
	assert_int_equal(ags_file_read(path, 10, &buf, &len, &e), 0);
	assert_int_equal(len, 10);
	assert_string_equal(buf, "0123456789");
	free(buf);
	buf = NULL;
	assert_int_equal(ags_file_read(path, 9, &buf, &len, &e), AGS_ERR_TOO_LARGE);
	assert_string_equal(e.message, "is 10 bytes, more than the 9 accepted");
	assert_null(buf);
	free(path);
	path = tu_sprintf("%s/none", dir);
	assert_int_equal(ags_file_read(path, 10, &buf, &len, &e), AGS_ERR_NOT_FOUND);
	assert_string_equal(e.message, "No such file or directory");
	assert_int_equal(ags_file_read(dir, 10, &buf, &len, &e), AGS_ERR_IO);
	assert_string_equal(e.message, "not a regular file");
	assert_null(buf);
	free(path);
	/* For a file a setting names: the setting, the file, the reason. */
	path = tu_sprintf("%s/none", dir);
	assert_int_equal(ags_file_read_setting(path, 10, "tls.key", AGS_ERR_CONFIG, &buf, &len, &e),
	                 AGS_ERR_CONFIG);
	assert_string_equal(e.field, "tls.key");
	char *want = tu_sprintf("cannot read \"%s\": No such file or directory", path);
	assert_string_equal(e.message, want);
	free(want);
	free(path);
	path = tu_sprintf("%s/key", dir);
	assert_int_equal(ags_file_read_setting(path, 4, "hub.key", AGS_ERR_IO, &buf, &len, &e),
	                 AGS_ERR_IO);
	want = tu_sprintf("\"%s\" is 10 bytes, more than the 4 accepted", path);
	assert_string_equal(e.message, want);
	free(want);
	free(path);
	tu_rmrf(dir);
	free(dir);
}

static void one_monotonic_clock_in_three_units(void **state)
{
	(void)state;
	uint64_t ns = ags_mono_ns(), us = ags_mono_us(), ms = ags_mono_ms(), ns2 = ags_mono_ns();
	assert_true(ns <= ns2);
	assert_true(ns / 1000u <= us && us <= ns2 / 1000u);
	assert_true(ns / 1000000u <= ms && ms <= ns2 / 1000000u);
}

static void every_event_type_has_its_seed_name(void **state)
{
	(void)state;
	static const char *const names[] = {
	    "peer:connected",        "peer:disconnected", "peer:error",    "peer:health:degraded",
	    "peer:health:recovered", "sync:completed",    "sync:failed",   "pattern:received",
	    "connection:refused",    "pattern:conflict",  "sync:rejected", "store:rollback",
	    "connection:timeout"};
	for (int t = AGS_EV_PEER_CONNECTED; t <= AGS_EV_CONNECTION_TIMEOUT; t++)
		assert_string_equal(ags_event_name(t), names[t - AGS_EV_PEER_CONNECTED]);
	assert_string_equal(ags_event_name(0), "unknown");
	assert_string_equal(ags_event_name(AGS_EV_CONNECTION_TIMEOUT + 1), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(base64url_round_trips_every_length),
	    cmocka_unit_test(base64url_refuses_what_is_not),
	    cmocka_unit_test(file_read_reads_whole_files_up_to_the_limit),
	    cmocka_unit_test(one_monotonic_clock_in_three_units),
	    cmocka_unit_test(every_event_type_has_its_seed_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
