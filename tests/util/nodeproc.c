/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agentsync/agentsync.h"
#include "agentsync/certs.h"
#include "nodeproc.h"
#include "testutil.h"

void np_certs(const char *dir, const char *const *ids, size_t n)
{
	ags_error err;
	if (ags_certs_init(dir, ids, n, AGS_CERTS_ED25519, &err) != 0)
		fail_msg("certs init: %s", err.message);
}

static void *reader_main(void *arg)
{
	np_node *n = arg;
	char chunk[8192];
	for (;;) {
		ssize_t r = read(n->out_fd, chunk, sizeof(chunk));
		if (r < 0 && errno == EINTR)
			continue;
		pthread_mutex_lock(&n->mu);
		if (r <= 0) {
			n->eof = 1;
			pthread_mutex_unlock(&n->mu);
			return NULL;
		}
		if (n->len + (size_t)r + 1 > n->cap) {
			size_t cap = (n->cap ? n->cap * 2 : 65536) + (size_t)r;
			char *b = realloc(n->buf, cap);
			if (!b) {
				pthread_mutex_unlock(&n->mu);
				abort();
			}
			n->buf = b;
			n->cap = cap;
		}
		memcpy(n->buf + n->len, chunk, (size_t)r);
		n->len += (size_t)r;
		n->buf[n->len] = '\0';
		pthread_mutex_unlock(&n->mu);
	}
}

np_node *np_start(const char *id, const char *const *args)
{
	return np_start_prog("agsnode", id, args);
}

np_node *np_start_prog(const char *prog_name, const char *id, const char *const *args)
{
	np_node *n = calloc(1, sizeof(*n));
	assert_non_null(n);
	snprintf(n->id, sizeof(n->id), "%s", id);
	pthread_mutex_init(&n->mu, NULL);
	int in[2], outp[2];
	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(outp), 0);
	char *prog = tu_program(prog_name);
	const char *argv[64];
	size_t k = 0;
	argv[k++] = prog;
	for (size_t i = 0; args[i] && k < 63; i++)
		argv[k++] = args[i];
	argv[k] = NULL;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(outp[1], 1);
		dup2(outp[1], 2);
		close(in[1]);
		close(outp[0]);
		execv(prog, (char *const *)argv);
		_exit(127);
	}
	free(prog);
	close(in[0]);
	close(outp[1]);
	n->pid = pid;
	n->in_fd = in[1];
	n->out_fd = outp[0];
	pthread_create(&n->reader, NULL, reader_main, n);
	if (!np_wait(n, "ready id=", 300)) {
		char *o = np_output(n);
		fail_msg("%s %s did not start:\n%s", prog_name, id, o ? o : "");
	}
	pthread_mutex_lock(&n->mu);
	const char *p = strstr(n->buf, "ready id=");
	const char *q = p ? strstr(p, "port=") : NULL;
	n->port = q ? (uint16_t)atoi(q + 5) : 0;
	pthread_mutex_unlock(&n->mu);
	return n;
}

void np_cmd(np_node *n, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int len = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (len < 0 || len > (int)sizeof(line) - 2)
		fail_msg("command too long");
	line[len++] = '\n';
	if (write(n->in_fd, line, (size_t)len) != len)
		fail_msg("write to %s: %s", n->id, strerror(errno));
}

int np_has(np_node *n, const char *needle)
{
	pthread_mutex_lock(&n->mu);
	int r = n->buf && strstr(n->buf, needle) != NULL;
	pthread_mutex_unlock(&n->mu);
	return r;
}

size_t np_count(np_node *n, const char *needle)
{
	size_t c = 0;
	pthread_mutex_lock(&n->mu);
	for (const char *p = n->buf; p && (p = strstr(p, needle)); p += strlen(needle))
		c++;
	pthread_mutex_unlock(&n->mu);
	return c;
}

int np_wait(np_node *n, const char *needle, unsigned tries)
{
	for (unsigned i = 0; i <= tries; i++) {
		if (np_has(n, needle))
			return 1;
		pthread_mutex_lock(&n->mu);
		int eof = n->eof;
		pthread_mutex_unlock(&n->mu);
		if (eof)
			return np_has(n, needle);
		tu_sleep_ms(100);
	}
	return 0;
}

static int parse_state(const char *s, np_state *st)
{
	memset(st, 0, sizeof(*st));
	const char *p;
#define NUM(key, field)                                                                            \
	if ((p = strstr(s, "\"" key "\":")))                                                       \
		st->field = strtoull(p + strlen(key) + 3, NULL, 10);
	NUM("patterns", patterns);
	NUM("seq", seq);
	NUM("successfulSyncs", successful_syncs);
	NUM("failedSyncs", failed_syncs);
	NUM("connections", connections);
#undef NUM
	if ((p = strstr(s, "\"compressionRatio\":")))
		st->compression_ratio = strtod(p + 19, NULL);
	if ((p = strstr(s, "\"digest\":\""))) {
		memcpy(st->digest, p + 10, 64);
		st->digest[64] = '\0';
	}
	return 0;
}

int np_state_get(np_node *n, np_state *st)
{
	size_t before = np_count(n, "\nstate {");
	np_cmd(n, "state");
	/* Up to 30 s: a loaded machine (sanitizers, parallel tests) can take
	 * seconds to answer; a stale earlier line is never taken instead. */
	int fresh = 0;
	for (unsigned i = 0; i < 600 && !fresh; i++) {
		fresh = np_count(n, "\nstate {") > before;
		if (!fresh)
			tu_sleep_ms(50);
	}
	if (!fresh)
		return -1;
	pthread_mutex_lock(&n->mu);
	const char *last = NULL;
	for (const char *p = n->buf; p && (p = strstr(p, "\nstate {")); p++)
		last = p;
	char line[16384] = "";
	if (last) {
		const char *end = strchr(last + 1, '\n');
		size_t l = end ? (size_t)(end - last) : strlen(last);
		if (l >= sizeof(line))
			l = sizeof(line) - 1;
		memcpy(line, last, l);
		line[l] = '\0';
	}
	pthread_mutex_unlock(&n->mu);
	if (!last)
		return -1;
	return parse_state(line, st);
}

int np_wait_patterns(np_node *n, uint64_t patterns, unsigned tries)
{
	np_state st;
	for (unsigned i = 0; i <= tries; i++) {
		if (np_state_get(n, &st) == 0 && st.patterns == patterns)
			return 1;
		tu_sleep_ms(100);
	}
	return 0;
}

static void np_free(np_node *n)
{
	close(n->in_fd);
	pthread_join(n->reader, NULL);
	close(n->out_fd);
	free(n->buf);
	pthread_mutex_destroy(&n->mu);
	free(n);
}

int np_quit(np_node *n)
{
	np_cmd(n, "quit");
	int st = 0;
	for (unsigned i = 0; i < 300; i++) {
		pid_t r = waitpid(n->pid, &st, WNOHANG);
		if (r == n->pid)
			break;
		if (i == 299) {
			kill(n->pid, SIGKILL);
			waitpid(n->pid, &st, 0);
		}
		tu_sleep_ms(100);
	}
	np_free(n);
	return st;
}

void np_kill(np_node *n)
{
	kill(n->pid, SIGKILL);
	waitpid(n->pid, NULL, 0);
	np_free(n);
}

char *np_output(np_node *n)
{
	pthread_mutex_lock(&n->mu);
	char *s = n->buf ? strdup(n->buf) : strdup("");
	pthread_mutex_unlock(&n->mu);
	return s;
}
