#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agentproc.h"
#include "testutil.h"

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

np_node *ap_start(const char *prog_name, const char *id, const char *const *args)
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
	return n;
}

/* Counts lines of n's output that start with prefix. */
static size_t count_lines(np_node *n, const char *prefix, const char **last)
{
	size_t c = 0, pl = strlen(prefix);
	*last = NULL;
	for (const char *p = n->buf; p && *p;) {
		if (strncmp(p, prefix, pl) == 0) {
			c++;
			*last = p;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return c;
}

char *ap_ask(np_node *n, const char *cmd, const char *prefix, unsigned tries)
{
	const char *last;
	pthread_mutex_lock(&n->mu);
	size_t before = count_lines(n, prefix, &last);
	pthread_mutex_unlock(&n->mu);
	np_cmd(n, "%s", cmd);
	for (unsigned i = 0; i <= tries; i++) {
		pthread_mutex_lock(&n->mu);
		size_t now = count_lines(n, prefix, &last);
		if (now > before && last) {
			size_t l = strcspn(last, "\n");
			char *r = strndup(last, l);
			pthread_mutex_unlock(&n->mu);
			return r;
		}
		int eof = n->eof;
		pthread_mutex_unlock(&n->mu);
		if (eof)
			return NULL;
		tu_sleep_ms(100);
	}
	return NULL;
}
