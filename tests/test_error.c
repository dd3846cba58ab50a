/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for error names and details. */
#include <string.h>

#include "testutil.h"
#include "agentsync/agentsync.h"
#include "error.h"

static void every_code_has_a_distinct_name(void **state)
{
	(void)state;
	const char *unknown = ags_strerror(12345);
	for (int c = AGS_ERR_INTERNAL; c <= AGS_OK; c++) {
		assert_non_null(ags_strerror(c));
		assert_string_not_equal(ags_strerror(c), unknown);
		for (int d = c + 1; d <= AGS_OK; d++)
			assert_string_not_equal(ags_strerror(c), ags_strerror(d));
	}
}

static void error_set_fills_the_detail(void **state)
{
	(void)state;
	ags_error e;
	int r = ags_error_set(&e, AGS_ERR_PATTERN, "metadata.priority", "must be %d-%d", 1, 10);
	assert_int_equal(r, AGS_ERR_PATTERN);
	assert_int_equal(e.code, AGS_ERR_PATTERN);
	assert_string_equal(e.field, "metadata.priority");
	assert_string_equal(e.message, "must be 1-10");
	assert_int_equal(ags_error_set(NULL, AGS_ERR_IO, NULL, NULL), AGS_ERR_IO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(every_code_has_a_distinct_name),
	    cmocka_unit_test(error_set_fills_the_detail),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
