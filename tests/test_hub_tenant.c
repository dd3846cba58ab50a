/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the hub's tenant directories (lib/node/hub.c, ags_hub_tenant_path). */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "hub.h"

/*
 * Issue 17.7: tenants whose names differ only in case would share one directory, and so
 * one store, on a case-insensitive file system: the second is refused, naming the first.
 */
static void tenant_names_differing_in_case_are_refused(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp("hubtenant");
	char path[4096];
	ags_error err;
	assert_int_equal(ags_hub_tenant_path(dir, "acme", path, sizeof(path), &err), 0);
	assert_non_null(strstr(path, "/tenants/acme/store.db"));
	assert_int_equal(ags_hub_tenant_path(dir, "Acme", path, sizeof(path), &err),
	                 AGS_ERR_EXISTS);
	assert_string_equal(err.field, "tenant");
	assert_non_null(strstr(err.message, "differs only in case from the tenant 'acme'"));
	assert_int_equal(ags_hub_tenant_path(dir, "ACME", path, sizeof(path), &err),
	                 AGS_ERR_EXISTS);
	/* The same name, and other names, are fine. */
	assert_int_equal(ags_hub_tenant_path(dir, "acme", path, sizeof(path), &err), 0);
	assert_int_equal(ags_hub_tenant_path(dir, "acme2", path, sizeof(path), &err), 0);
	tu_rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(tenant_names_differing_in_case_are_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
