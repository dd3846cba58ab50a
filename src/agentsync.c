/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agentsync: the command-line tool over agentsyncd's local HTTP API
 * (commands in src/agentsync/), plus the commands of an ephemeral agent of
 * a federation hub (sync --hub, agent, token), which need no daemon. See
 * docs/ARCHITECTURE.md, "Daemon, HTTP API and CLI" and docs/ARCHITECTURE.md, "The federation hub in
 * agentsyncd and the CLI".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "agentsync/agentsync.h"
#include "cli.h"

int main(int argc, char **argv)
{
	struct cli c = {{0}, NULL};
	const char *api = getenv("AGENTSYNC_API");
	c.token = getenv("AGENTSYNC_TOKEN");
	if (c.token && !*c.token)
		c.token = NULL;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			cli_usage(stdout);
			return EXIT_OK;
		}
		if (strcmp(a, "--version") == 0) {
			printf("agentsync %s\n", AGS_VERSION_STRING);
			return EXIT_OK;
		}
		const char *v = NULL;
		size_t n = strchr(a, '=') ? (size_t)(strchr(a, '=') - a) : strlen(a);
		if (strchr(a, '='))
			v = a + n + 1;
		else if (i + 1 < argc)
			v = argv[i + 1];
		if (n == 5 && strncmp(a, "--api", 5) == 0 && v) {
			api = v;
		} else if (n == 7 && strncmp(a, "--token", 7) == 0 && v) {
			c.token = v;
		} else {
			fprintf(stderr, "agentsync: unknown option \"%s\"\n", a);
			cli_usage(stderr);
			return EXIT_USAGE;
		}
		if (!strchr(a, '='))
			i++;
	}
	if (i >= argc) {
		cli_usage(stderr);
		return EXIT_USAGE;
	}
	if (cli_set_api(&c, api) < 0) {
		fprintf(stderr, "agentsync: --api \"%s\" is not HOST[:PORT]\n", api);
		return EXIT_USAGE;
	}

	const struct cli_command *cmd = cli_find_command(argv[i]);
	if (cmd) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			fprintf(stderr, "agentsync: cannot initialise libcurl\n");
			return EXIT_ERROR;
		}
		int rc = cmd->fn(&c, argc - i, argv + i);
		curl_global_cleanup();
		return rc;
	}
	fprintf(stderr, "agentsync: unknown command \"%s\"\n", argv[i]);
	cli_usage(stderr);
	return EXIT_USAGE;
}
