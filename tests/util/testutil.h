/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared helpers for tests: scratch directories, child processes, and
 * waiting for a condition with a bounded number of tries (never a timed
 * assertion: a bound only stops a test that would otherwise hang).
 */
#ifndef AGS_TESTUTIL_H
#define AGS_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <setjmp.h> /* cmocka needs these first */
#include <cmocka.h>

/* Makes a fresh scratch directory under $TMPDIR (or /tmp); returns a malloc'd path. */
char *tu_mkdtemp(const char *tag);

/* Removes a directory tree (rm -rf). */
void tu_rmrf(const char *path);

/* asprintf that aborts the test on failure. */
char *tu_sprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Path of a program built by this project: AGS_BIN_DIR/name (daemons and
 * CLI) or AGS_TEST_BIN_DIR/name (test helpers), whichever exists.
 */
char *tu_program(const char *name);

/* Starts argv[0] with argv, stdout+stderr to `log_path` (may be NULL). Returns its pid. */
pid_t tu_spawn(char *const argv[], const char *log_path);

/* Sends `sig` to pid and waits for it; returns its wait status. */
int tu_kill_wait(pid_t pid, int sig);

/* Reads a whole file into a NUL-terminated malloc'd buffer; NULL if absent. */
char *tu_read_file(const char *path, size_t *len);

/* Sleeps ms milliseconds. */
void tu_sleep_ms(unsigned ms);

/*
 * Polls `cond(arg)` every `step_ms` until it returns non-zero or `tries`
 * runs out. Returns the last value of cond.
 */
int tu_wait_for(int (*cond)(void *), void *arg, unsigned tries, unsigned step_ms);

/* Whether the file at `path` contains `needle`. */
int tu_file_contains(const char *path, const char *needle);

/*
 * Every regular file under `dir` (recursively, binary files too): the first
 * one whose bytes contain `needle`, as a malloc'd path, or NULL when none
 * does. *scanned (may be NULL) gets the names of the files read, separated by
 * spaces (malloc'd), so a test can check that the WAL was among them.
 */
char *tu_tree_holds(const char *dir, const char *needle, char **scanned);

/* A free UDP/TCP port on 127.0.0.1 (bound then released). */
int tu_free_port(int udp);

#endif
