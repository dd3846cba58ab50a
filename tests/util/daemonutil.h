/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers for black-box tests of agentsyncd and the agentsync CLI: start a
 * daemon and wait until it listens, run a program and capture its output,
 * make certificates, write files. Every wait is bounded (it only stops a
 * test that would otherwise hang; nothing asserts on time).
 */
#ifndef AGS_DAEMONUTIL_H
#define AGS_DAEMONUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* A daemon started by a test. */
struct tu_daemon {
	pid_t pid;
	char out_path[512]; /* its stdout */
	char err_path[512]; /* its stderr (the log) */
	char api[64];       /* "127.0.0.1:PORT" */
	int quic_port;
	int api_port;
	int exit_status; /* wait status once it has exited, else -1 */
};

/*
 * Starts agentsyncd with argv_tail (NULL-terminated, after the program name)
 * in directory `cwd` (NULL: the test's), logs in `logdir` with `name` in the
 * file names. Waits until it prints "listening " or exits. Returns 0 when it
 * listens (d->api is then read from that line), -1 when it exited (then
 * d->exit_status holds its wait status).
 */
int tu_daemon_start(struct tu_daemon *d, const char *logdir, const char *name, const char *cwd,
                    char *const argv_tail[]);

/*
 * Remembers a child process so that tu_kill_tracked() can end it when a test
 * fails half way (daemons started by tu_daemon_start are tracked already).
 */
void tu_track_pid(pid_t pid);
void tu_untrack_pid(pid_t pid);

/* SIGKILLs and reaps every tracked process; for teardown functions. */
void tu_kill_tracked(void);

/* Sends `sig` (SIGTERM to stop) and waits; returns the wait status. */
int tu_daemon_stop(struct tu_daemon *d, int sig);

/* Whether the daemon's log (stderr) contains `needle` now. */
int tu_daemon_log_has(const struct tu_daemon *d, const char *needle);

/* Polls the daemon's log for `needle` (bounded). */
int tu_daemon_wait_log(const struct tu_daemon *d, const char *needle);

/*
 * Runs argv (NULL-terminated; argv[0] a path) in `cwd` (may be NULL), with
 * `stdin_path` (may be NULL: /dev/null) as standard input, and waits.
 * *out (may be NULL) gets stdout+stderr as one malloc'd string. Returns the
 * exit code, or 128+signal.
 */
int tu_run(char *const argv[], const char *cwd, const char *stdin_path, char **out);

/* Like tu_run, but stdout and stderr separately (either may be NULL). */
int tu_run2(char *const argv[], const char *cwd, char **out, char **err);

/*
 * Runs `agentsync --api API [--token TOKEN] ARGS...` (args NULL-terminated).
 * token may be NULL. Returns the exit code; *out gets stdout+stderr.
 */
int tu_cli(const char *api, const char *token, char **out, ...) __attribute__((sentinel));

/* Runs `curl -s -S -w '\n%{http_code}'` with args (NULL-terminated); returns the HTTP status. */
int tu_curl(char **body, ...) __attribute__((sentinel));

/* Writes `text` to `path` (aborts the test on failure). */
void tu_write_file(const char *path, const char *text);

/* Replaces every `from` in `s` by `to`; returns a new malloc'd string. */
char *tu_replace(const char *s, const char *from, const char *to);

/* Counts the lines of `s` that contain `needle`. */
size_t tu_count_lines_with(const char *s, const char *needle);

/* A pattern as JSON with id `id`, type `type`, version 1 and data `n`. malloc'd. */
char *tu_pattern_json(const char *id, const char *type, int n);

#endif
