/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Driving agsnode processes (tests/tools/agsnode.c) from black-box tests:
 * start one with arguments, send it commands, wait for lines it prints, read
 * its state. Every wait is bounded by a number of tries, never asserted on
 * time.
 */
#ifndef AGS_NODEPROC_H
#define AGS_NODEPROC_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct np_node {
	pid_t pid;
	int in_fd;  /* its stdin */
	int out_fd; /* its stdout */
	pthread_t reader;
	pthread_mutex_t mu;
	char *buf; /* everything it printed */
	size_t len, cap;
	int eof;
	char id[64];
	uint16_t port;
	char log_path[512];
} np_node;

/* The node's state, parsed from "state {...}". */
typedef struct np_state {
	uint64_t patterns, seq, successful_syncs, failed_syncs;
	char digest[65];
	size_t connections;
	double compression_ratio;
} np_state;

/* Makes certificates for the node ids in dir (ags_certs_init). Fails the test on error. */
void np_certs(const char *dir, const char *const *ids, size_t n);

/*
 * Starts agsnode with `args` (NULL-terminated, without the program name) and
 * waits for its "ready" line (port parsed). Fails the test if it does not
 * come. Its output is also appended to `log_path` when not NULL.
 */
np_node *np_start(const char *id, const char *const *args);

/* The same for another test tool `prog_name` (e.g. "agsagent") printing a "ready id=" line. */
np_node *np_start_prog(const char *prog_name, const char *id, const char *const *args);

/* Writes a command line (a newline is added). */
void np_cmd(np_node *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Whether its output so far contains `needle`. */
int np_has(np_node *n, const char *needle);

/* Counts occurrences of `needle` in its output. */
size_t np_count(np_node *n, const char *needle);

/* Waits (tries x 100 ms) for `needle` in its output; returns whether it came. */
int np_wait(np_node *n, const char *needle, unsigned tries);

/* Asks for its state and parses it; returns 0 on success. */
int np_state_get(np_node *n, np_state *st);

/* Waits until the node holds `patterns` patterns (tries x 100 ms); returns whether it did. */
int np_wait_patterns(np_node *n, uint64_t patterns, unsigned tries);

/* Sends "quit" and waits for exit; returns the wait status. Frees n. */
int np_quit(np_node *n);

/* SIGKILLs it and waits. Frees n. */
void np_kill(np_node *n);

/* A copy of everything it printed (malloc'd). */
char *np_output(np_node *n);

#endif
