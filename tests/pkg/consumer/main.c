/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A program built against an installed agentsync (tests/pkg/install_test.sh):
 * opens a store in the directory given, stores a pattern, reads it back and
 * prints "ok VERSION STORE-ID". Uses the public headers only.
 */
#include <stdio.h>
#include <string.h>

#include <agentsync/agentsync.h>
#include <agentsync/node.h>

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: consumer DIR\n");
		return 2;
	}
	char path[4096];
	snprintf(path, sizeof(path), "%s/store.db", argv[1]);
	ags_error err;
	ags_error_clear(&err);
	ags_store *s = NULL;
	if (ags_store_open(path, NULL, &s, &err) < 0) {
		fprintf(stderr, "ags_store_open: %s\n", err.message);
		return 1;
	}
	const char json[] = "{\"id\":\"installed\",\"agentId\":\"a\",\"type\":\"t\",\"data\":{},"
	                    "\"metadata\":{\"source\":\"s\",\"tags\":[]},\"timestamp\":1,"
	                    "\"version\":1}";
	ags_pattern *p = NULL, *back = NULL;
	int rc = ags_pattern_parse(json, strlen(json), NULL, &p, &err);
	if (rc == 0)
		rc = ags_store_apply(s, p, NULL, &err);
	if (rc == 0)
		rc = ags_store_get(s, "installed", &back);
	if (rc < 0) {
		fprintf(stderr, "store: %s\n", ags_strerror(rc));
		return 1;
	}
	ags_node_config cfg;
	ags_node_config_init(&cfg);
	printf("ok %s %s %s\n", AGS_VERSION_STRING, ags_store_id(s), ags_pattern_id(back));
	ags_pattern_del(p);
	ags_pattern_del(back);
	ags_store_close(s);
	return 0;
}
