/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared parts of the `agentsync` command-line tool: exit codes, the HTTP
 * client over libcurl, and the commands (src/agentsync/cmd_*.c).
 */
#ifndef AGENTSYNC_CLI_H
#define AGENTSYNC_CLI_H

#include <stddef.h>
#include <stdio.h>

/* Exit codes, as documented in `agentsync --help`. */
enum {
	EXIT_OK = 0,
	EXIT_ERROR = 1,       /* the request failed, or a local error */
	EXIT_USAGE = 2,       /* bad command line */
	EXIT_UNREACHABLE = 3, /* cannot reach the daemon */
	EXIT_NOT_FOUND = 4,   /* no such pattern or peer */
	EXIT_REJECTED = 5,    /* put: some records were rejected */
	EXIT_NOT_STORED = 6,  /* put: none rejected, some not stored (stale, conflict lost) */
};

/* Where the daemon is and how to authenticate. */
struct cli {
	char base[320];    /* "http://HOST:PORT" */
	const char *token; /* bearer token, or NULL */
};

/* A response read whole (at most CLI_BODY_MAX bytes). */
struct http_resp {
	long status; /* HTTP status, 0 when no response came */
	char *body;  /* NUL-terminated, malloc'd (free with http_resp_free) */
	size_t len;
};

#define CLI_BODY_MAX (512u * 1024u * 1024u)

/*
 * Sends one request (body may be NULL) to base + path and reads the answer
 * into r. Returns EXIT_OK when any HTTP answer came (look at r->status),
 * EXIT_UNREACHABLE when the daemon cannot be reached, EXIT_ERROR otherwise;
 * on failure it prints why, prefixed with `what`.
 */
int http_request(const struct cli *c, const char *what, const char *method, const char *path,
                 const char *ctype, const char *body, size_t len, struct http_resp *r);

/*
 * A GET whose answer is given piece by piece to `sink` (return 0 to go on,
 * non-zero to stop). `last_event_id` (may be NULL) is sent as Last-Event-ID.
 * `stop` (may be NULL) is polled about once a second: non-zero aborts. The
 * status lands in r->status, and r->body gets the body of a non-2xx answer.
 * Returns as http_request; a transfer stopped by sink or stop is EXIT_OK.
 * With `why` (CLI_WHY_MAX bytes), a failed or ended transfer prints nothing
 * and says there why it ended (for a caller that reports it in one line).
 */
#define CLI_WHY_MAX 512
int http_stream(const struct cli *c, const char *what, const char *path, const char *last_event_id,
                int (*sink)(void *ud, const char *data, size_t len), void *ud, volatile int *stop,
                struct http_resp *r, char *why);

void http_resp_free(struct http_resp *r);

/* URL-escapes s (malloc'd result, NULL when out of memory). */
char *http_escape(const char *s);

/*
 * For a non-2xx answer: prints "agentsync: WHAT: FIELD: ERROR (HTTP N)" from
 * the {"error", "field"} body and returns the exit code that fits the status
 * (EXIT_NOT_FOUND for 404, else EXIT_ERROR).
 */
int http_fail(const char *what, const struct http_resp *r);

/*
 * Reads FILE (standard input when NULL or "-") whole into a NUL-terminated
 * malloc'd buffer. Returns EXIT_OK, or EXIT_ERROR after printing why,
 * prefixed with `what`.
 */
int cli_read_input(const char *what, const char *file, char **out, size_t *len);

/* Commands: argv[0] is the command name. Each returns an exit code. */
int cmd_put(const struct cli *c, int argc, char **argv);
int cmd_get(const struct cli *c, int argc, char **argv);
int cmd_list(const struct cli *c, int argc, char **argv);
int cmd_delete(const struct cli *c, int argc, char **argv);
int cmd_watch(const struct cli *c, int argc, char **argv);
int cmd_status(const struct cli *c, int argc, char **argv);
int cmd_peers(const struct cli *c, int argc, char **argv);
int cmd_sync(const struct cli *c, int argc, char **argv);
int cmd_certs(const struct cli *c, int argc, char **argv);
int cmd_bench(const struct cli *c, int argc, char **argv);
int cmd_agent(const struct cli *c, int argc, char **argv); /* agent put|sync|get|status */
int cmd_token(const struct cli *c, int argc, char **argv);
int cmd_backup(const struct cli *c, int argc, char **argv);  /* cmd_backup.c */
int cmd_restore(const struct cli *c, int argc, char **argv); /* cmd_backup.c */
int cmd_store(const struct cli *c, int argc, char **argv);   /* encrypt|rekey|decrypt|inspect */
int cmd_completion(const struct cli *c, int argc, char **argv);
int cmd_help(const struct cli *c, int argc, char **argv);

/* Prints `agentsync --help` (the commands from the table) to f. */
void cli_usage(FILE *f);

/*
 * Sets c->base from --api: HOST[:PORT], [V6][:PORT] or a bare IPv6 address,
 * with or without http://; without a port, the API's default 7433. NULL or
 * "": 127.0.0.1:7433. Returns 0, or -1 when it is empty or too long.
 */
int cli_set_api(struct cli *c, const char *api);

/* What a command's plain (non-option) arguments are, for the completions. */
enum { CLI_ARG_NONE, CLI_ARG_FILE, CLI_ARG_DIR };

/* One command of the table in commands.c. */
struct cli_command {
	const char *name;
	const char *args;        /* synopsis after the name in `agentsync --help` */
	const char *summary;     /* one line (wrapped) of `agentsync --help` */
	const char *subcommands; /* space-separated, or NULL */
	const char *options;     /* the --options of its --help, space-separated, or NULL */
	int arg_kind;            /* CLI_ARG_* */
	int (*fn)(const struct cli *, int, char **);
};

extern const struct cli_command cli_commands[];
extern const size_t cli_n_commands;
/* The options before the command, space-separated. */
extern const char cli_global_options[];

/* The command called `name`, or NULL. */
const struct cli_command *cli_find_command(const char *name);

/* The "Commands:" lines of `agentsync --help`. */
void cli_print_commands(FILE *f);

/*
 * `agentsync sync --hub ...` (cmd_sync hands over when it sees --hub): one
 * sync of an ephemeral agent with a federation hub. argv[0] is "sync".
 */
int cmd_hub_sync(int argc, char **argv);

/* Whether argv (after the command) asks for --help / -h. */
int wants_help(int argc, char **argv);

#endif
