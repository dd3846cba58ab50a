/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The table of agentsync's commands: what `agentsync --help` lists, what
 * main() dispatches on, and what `agentsync completion bash|zsh` offers.
 * A command added here is in all three; its options are listed here for the
 * completions and checked against its --help by tests/man_help_test.sh.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const struct cli_command cli_commands[] = {
    {"put", "[FILE|-]", "store patterns (JSON object, array or NDJSON)", NULL, "--chunk-bytes",
     CLI_ARG_FILE, cmd_put},
    {"get", "ID", "print one pattern", NULL, NULL, CLI_ARG_NONE, cmd_get},
    {"list", "[FILTERS]", "print stored patterns as NDJSON", NULL,
     "--type --tag --agent --since --limit --json", CLI_ARG_NONE, cmd_list},
    {"delete", "ID", "delete a pattern", NULL, NULL, CLI_ARG_NONE, cmd_delete},
    {"watch", "", "print events until interrupted (text on a terminal, else NDJSON)", NULL,
     "--type --last-event-id --count --format", CLI_ARG_NONE, cmd_watch},
    {"status", "[--json]", "node, store, statistics and peers", NULL, "--json", CLI_ARG_NONE,
     cmd_status},
    {"peers", "", "list peers (also: peers add ID HOST PORT, peers remove ID)", "add remove",
     "--json", CLI_ARG_NONE, cmd_peers},
    {"sync", "",
     "send pending changes to the peers now; with --hub URL: sync an agent with "
     "a federation hub once (seed 004)",
     NULL,
     "--hub --token --token-file --data --cert --key --ca --hub-id --timeout-ms --verbose "
     "--json",
     CLI_ARG_NONE, cmd_sync},
    {"agent", "SUB",
     "an agent's store: put (pushed by the next sync --hub), get, status; "
     "agent sync = sync --hub",
     "put sync get status",
     "--hub --token --token-file --data --cert --key --ca --hub-id --timeout-ms --verbose "
     "--json",
     CLI_ARG_FILE, cmd_agent},
    {"token", "", "make a JWT for an agent (HS256 secret, or RS256/ES256 key)", NULL,
     "--sub --tenant --secret-file --alg --key-file --iss --aud --ttl", CLI_ARG_NONE, cmd_token},
    {"certs", "init", "make a CA and node certificates (local, no daemon)", "init",
     "--dir --nodes --key-type", CLI_ARG_DIR, cmd_certs},
    {"backup", "--out FILE", "an online, consistent copy of the daemon's store", NULL,
     "--out --force --key-file", CLI_ARG_FILE, cmd_backup},
    {"restore", "--from FILE --data DIR", "a backup into a new data directory (local)", NULL,
     "--from --data --key-file", CLI_ARG_FILE, cmd_restore},
    {"store", "encrypt|rekey|decrypt|inspect",
     "encryption at rest of a data directory's store (local, daemon stopped)",
     "encrypt rekey decrypt inspect", "--data --key-file --new-key-file --tenant", CLI_ARG_NONE,
     cmd_store},
    {"bench", "", "write N generated patterns, report patterns/s to store and to sync", NULL,
     "--count --batch --prefix --no-wait", CLI_ARG_NONE, cmd_bench},
    {"completion", "bash|zsh", "print a shell completion script for agentsync", "bash zsh", NULL,
     CLI_ARG_NONE, cmd_completion},
    {"help", "[COMMAND [SUB]]", "this help, or a command's (= agentsync COMMAND [SUB] --help)",
     NULL, NULL, CLI_ARG_NONE, cmd_help},
};

const size_t cli_n_commands = sizeof(cli_commands) / sizeof(cli_commands[0]);

const char cli_global_options[] = "--api --token --help --version";

const struct cli_command *cli_find_command(const char *name)
{
	for (size_t i = 0; i < cli_n_commands; i++)
		if (strcmp(cli_commands[i].name, name) == 0)
			return &cli_commands[i];
	return NULL;
}

void cli_print_commands(FILE *f)
{
	for (size_t i = 0; i < cli_n_commands; i++) {
		const struct cli_command *c = &cli_commands[i];
		char head[64];
		snprintf(head, sizeof(head), "%s%s%s", c->name, c->args[0] ? " " : "", c->args);
		/* Summaries wrap at 80 columns, continued under the first. */
		const char *s = c->summary;
		int first = 1;
		if (strlen(head) > 18) {
			fprintf(f, "  %s\n", head);
			first = 0;
		}
		while (*s) {
			size_t room = 58, n = strlen(s);
			if (n > room) {
				n = room;
				while (n && s[n] != ' ')
					n--;
				if (!n)
					n = room;
			}
			fprintf(f, "  %-18s %.*s\n", first ? head : "", (int)n, s);
			s += n;
			while (*s == ' ')
				s++;
			first = 0;
		}
	}
}

void cli_usage(FILE *f)
{
	fprintf(f, "Usage: agentsync [--api HOST[:PORT]] [--token T] COMMAND [ARGS]\n"
	           "Talks to a running agentsyncd through its HTTP API, or is an agent of a\n"
	           "federation hub (sync --hub, agent, token: no daemon involved).\n"
	           "\n"
	           "Commands:\n");
	cli_print_commands(f);
	fprintf(
	    f,
	    "Run `agentsync help COMMAND` or `agentsync COMMAND --help` for a command's options.\n"
	    "\n"
	    "Options:\n"
	    "  --api HOST[:PORT]  the daemon's API (default $AGENTSYNC_API, else\n"
	    "                     127.0.0.1:7433; PORT defaults to 7433)\n"
	    "  --token T          bearer token (default $AGENTSYNC_TOKEN)\n"
	    "  -h, --help         this help\n"
	    "  --version          the version\n"
	    "\n"
	    "Exit status:\n"
	    "  0 ok, 1 error, 2 usage, 3 cannot reach the daemon, 4 not found,\n"
	    "  5 some records were rejected (put), 6 some records not stored: stale or\n"
	    "  conflict lost (put)\n");
}

int cli_set_api(struct cli *c, const char *api)
{
	if (!api || !*api)
		api = "127.0.0.1:7433";
	if (strncmp(api, "http://", 7) == 0)
		api += 7;
	size_t n = strlen(api);
	while (n && api[n - 1] == '/')
		n--;
	if (n == 0)
		return -1;
	/* HOST, [V6], or a bare V6 address: no port, so the API's default one. */
	const char *close = memchr(api, ']', n);
	const char *colon =
	    memchr(close ? close : api, ':', n - (size_t)((close ? close : api) - api));
	int bare_v6 = !close && colon && memchr(colon + 1, ':', n - (size_t)(colon + 1 - api));
	int w;
	if (bare_v6)
		w = snprintf(c->base, sizeof(c->base), "http://[%.*s]:7433", (int)n, api);
	else if (!colon)
		w = snprintf(c->base, sizeof(c->base), "http://%.*s:7433", (int)n, api);
	else
		w = snprintf(c->base, sizeof(c->base), "http://%.*s", (int)n, api);
	return w < 0 || (size_t)w >= sizeof(c->base) ? -1 : 0;
}

static const char help_help[] = "Usage: agentsync help [COMMAND [SUB]]\n"
                                "Prints agentsync's help, or the help of COMMAND (and SUB, e.g.\n"
                                "`agentsync help peers add`): the same as `agentsync COMMAND [SUB] "
                                "--help`.\n"
                                "Exit status: 0 ok, 2 no such command.\n";

int cmd_help(const struct cli *c, int argc, char **argv)
{
	if (argc < 2) {
		cli_usage(stdout);
		return EXIT_OK;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(help_help, stdout);
		return EXIT_OK;
	}
	const struct cli_command *cmd = cli_find_command(argv[1]);
	if (!cmd || argc > 3) {
		if (!cmd)
			fprintf(stderr, "agentsync: help: unknown command \"%s\"\n", argv[1]);
		fputs(help_help, stderr);
		return EXIT_USAGE;
	}
	if (cmd->fn == cmd_help) {
		fputs(help_help, stdout);
		return EXIT_OK;
	}
	char help[] = "--help";
	char *args[4] = {argv[1], argc == 3 ? argv[2] : help, argc == 3 ? help : NULL, NULL};
	return cmd->fn(c, argc == 3 ? 3 : 2, args);
}
