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

static void usage(FILE *f)
{
	fprintf(f, "Usage: agentsync [--api HOST:PORT] [--token T] COMMAND [ARGS]\n"
	           "Talks to a running agentsyncd through its HTTP API, or is an agent of a\n"
	           "federation hub (sync --hub, agent, token: no daemon involved).\n"
	           "\n"
	           "Commands:\n");
	cli_print_commands(f);
	fprintf(
	    f, "Run `agentsync COMMAND --help` for a command's options.\n"
	       "\n"
	       "Options:\n"
	       "  --api HOST:PORT  the daemon's API (default $AGENTSYNC_API, else 127.0.0.1:7433)\n"
	       "  --token T        bearer token (default $AGENTSYNC_TOKEN)\n"
	       "  -h, --help       this help\n"
	       "  --version        the version\n"
	       "\n"
	       "Exit status:\n"
	       "  0 ok, 1 error, 2 usage, 3 cannot reach the daemon, 4 not found,\n"
	       "  5 some records were rejected (put)\n");
}

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
			usage(stdout);
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
			usage(stderr);
			return EXIT_USAGE;
		}
		if (!strchr(a, '='))
			i++;
	}
	if (i >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!api || !*api)
		api = "127.0.0.1:7433";
	if (strncmp(api, "http://", 7) == 0)
		api += 7;
	snprintf(c.base, sizeof(c.base), "http://%s", api);
	size_t bl = strlen(c.base);
	if (bl && c.base[bl - 1] == '/')
		c.base[bl - 1] = '\0';

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
	usage(stderr);
	return EXIT_USAGE;
}
