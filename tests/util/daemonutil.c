/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemonutil.h"
#include "testutil.h"

/* Bounds that only stop a hung test: polls of 50 ms. */
#define START_TRIES 1200 /* a daemon under sanitizers can take a while to start */
#define RUN_TRIES   2400 /* a CLI command */
#define LOG_TRIES   1200

static pid_t tracked[64];

void tu_track_pid(pid_t pid)
{
	for (size_t i = 0; i < 64; i++) {
		if (tracked[i] == 0) {
			tracked[i] = pid;
			return;
		}
	}
}

void tu_untrack_pid(pid_t pid)
{
	for (size_t i = 0; i < 64; i++)
		if (tracked[i] == pid)
			tracked[i] = 0;
}

void tu_kill_tracked(void)
{
	for (size_t i = 0; i < 64; i++) {
		if (tracked[i] > 0) {
			kill(tracked[i], SIGKILL);
			waitpid(tracked[i], NULL, 0);
		}
		tracked[i] = 0;
	}
}

/* In the child: directory, standard streams, then exec. Never returns. */
static void child_exec(char *const argv[], const char *cwd, const char *in, const char *out,
                       const char *err)
{
	if (cwd && chdir(cwd) < 0)
		_exit(126);
	int fd = open(in ? in : "/dev/null", O_RDONLY);
	if (fd >= 0) {
		dup2(fd, 0);
		close(fd);
	}
	fd = open(out, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fd >= 0) {
		dup2(fd, 1);
		if (!err)
			dup2(fd, 2);
		close(fd);
	}
	if (err) {
		fd = open(err, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 2);
			close(fd);
		}
	}
	if (strchr(argv[0], '/'))
		execv(argv[0], argv);
	else
		execvp(argv[0], argv);
	_exit(127);
}

static int parse_port(const char *line, const char *key, char *hostport, size_t cap)
{
	const char *p = strstr(line, key);
	if (!p)
		return -1;
	p += strlen(key);
	size_t n = strcspn(p, " \n");
	if (hostport)
		snprintf(hostport, cap, "%.*s", (int)n, p);
	const char *colon = NULL;
	for (size_t i = 0; i < n; i++)
		if (p[i] == ':')
			colon = p + i;
	return colon ? atoi(colon + 1) : -1;
}

int tu_daemon_start(struct tu_daemon *d, const char *logdir, const char *name, const char *cwd,
                    char *const argv_tail[])
{
	memset(d, 0, sizeof(*d));
	d->exit_status = -1;
	snprintf(d->out_path, sizeof(d->out_path), "%s/%s.out", logdir, name);
	snprintf(d->err_path, sizeof(d->err_path), "%s/%s.log", logdir, name);
	char *argv[64];
	size_t n = 0;
	argv[n++] = tu_program("agentsyncd");
	for (size_t i = 0; argv_tail[i] && n < 63; i++)
		argv[n++] = argv_tail[i];
	argv[n] = NULL;
	pid_t pid = fork();
	if (pid < 0)
		fail_msg("fork: %m");
	if (pid == 0)
		child_exec(argv, cwd, NULL, d->out_path, d->err_path);
	free(argv[0]);
	d->pid = pid;
	tu_track_pid(pid);
	for (int i = 0; i < START_TRIES; i++) {
		char *out = tu_read_file(d->out_path, NULL);
		const char *line = out ? strstr(out, "listening ") : NULL;
		if (line && strchr(line, '\n')) {
			d->quic_port = parse_port(line, "quic=", NULL, 0);
			d->api_port = parse_port(line, "api=", d->api, sizeof(d->api));
			free(out);
			return 0;
		}
		free(out);
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			tu_untrack_pid(pid);
			d->exit_status = st;
			d->pid = 0;
			return -1;
		}
		tu_sleep_ms(50);
	}
	fail_msg("agentsyncd %s did not start (see %s)", name, d->err_path);
	return -1;
}

int tu_daemon_stop(struct tu_daemon *d, int sig)
{
	int st = d->exit_status;
	if (d->pid > 0) {
		kill(d->pid, sig);
		for (int i = 0; i < RUN_TRIES; i++) {
			if (waitpid(d->pid, &st, WNOHANG) == d->pid)
				break;
			tu_sleep_ms(50);
			if (i == RUN_TRIES - 1) {
				kill(d->pid, SIGKILL);
				waitpid(d->pid, &st, 0);
			}
		}
		tu_untrack_pid(d->pid);
		d->pid = 0;
		d->exit_status = st;
	}
	return st;
}

int tu_daemon_log_has(const struct tu_daemon *d, const char *needle)
{
	return tu_file_contains(d->err_path, needle);
}

struct log_wait {
	const struct tu_daemon *d;
	const char *needle;
};

static int log_cond(void *arg)
{
	struct log_wait *w = arg;
	return tu_daemon_log_has(w->d, w->needle);
}

int tu_daemon_wait_log(const struct tu_daemon *d, const char *needle)
{
	struct log_wait w = {d, needle};
	return tu_wait_for(log_cond, &w, LOG_TRIES, 50);
}

static int wait_bounded(pid_t pid)
{
	int st = 0;
	for (int i = 0;; i++) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return -1;
		if (i == RUN_TRIES) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			break;
		}
		tu_sleep_ms(50);
	}
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

static char *temp_path(void)
{
	const char *base = getenv("TMPDIR");
	char *p = tu_sprintf("%s/ags-run-XXXXXX", base && *base ? base : "/tmp");
	int fd = mkstemp(p);
	if (fd < 0)
		fail_msg("mkstemp: %m");
	close(fd);
	return p;
}

int tu_run(char *const argv[], const char *cwd, const char *stdin_path, char **out)
{
	char *path = temp_path();
	pid_t pid = fork();
	if (pid < 0)
		fail_msg("fork: %m");
	if (pid == 0)
		child_exec(argv, cwd, stdin_path, path, NULL);
	int rc = wait_bounded(pid);
	char *s = tu_read_file(path, NULL);
	unlink(path);
	free(path);
	if (out)
		*out = s ? s : strdup("");
	else
		free(s);
	return rc;
}

int tu_run2(char *const argv[], const char *cwd, char **out, char **err)
{
	char *po = temp_path(), *pe = temp_path();
	pid_t pid = fork();
	if (pid < 0)
		fail_msg("fork: %m");
	if (pid == 0)
		child_exec(argv, cwd, NULL, po, pe);
	int rc = wait_bounded(pid);
	char *so = tu_read_file(po, NULL), *se = tu_read_file(pe, NULL);
	unlink(po);
	unlink(pe);
	free(po);
	free(pe);
	if (out)
		*out = so ? so : strdup("");
	else
		free(so);
	if (err)
		*err = se ? se : strdup("");
	else
		free(se);
	return rc;
}

int tu_cli(const char *api, const char *token, char **out, ...)
{
	char *argv[48];
	size_t n = 0;
	char *prog = tu_program("agentsync");
	argv[n++] = prog;
	argv[n++] = (char *)"--api";
	argv[n++] = (char *)api;
	if (token) {
		argv[n++] = (char *)"--token";
		argv[n++] = (char *)token;
	}
	va_list ap;
	va_start(ap, out);
	for (char *a; (a = va_arg(ap, char *)) && n < 47;)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	int rc = tu_run(argv, NULL, NULL, out);
	free(prog);
	return rc;
}

int tu_curl(char **body, ...)
{
	char *argv[48];
	size_t n = 0;
	argv[n++] = (char *)"curl";
	argv[n++] = (char *)"-s";
	argv[n++] = (char *)"-S";
	argv[n++] = (char *)"-w";
	argv[n++] = (char *)"\n%{http_code}";
	va_list ap;
	va_start(ap, body);
	for (char *a; (a = va_arg(ap, char *)) && n < 47;)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	char *out = NULL;
	tu_run(argv, NULL, NULL, &out);
	char *nl = strrchr(out, '\n');
	int status = nl ? atoi(nl + 1) : 0;
	if (nl)
		*nl = '\0';
	if (body)
		*body = out;
	else
		free(out);
	return status;
}

void tu_write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f)
		fail_msg("cannot write %s: %m", path);
	fputs(text, f);
	if (fclose(f) != 0)
		fail_msg("cannot write %s: %m", path);
}

char *tu_replace(const char *s, const char *from, const char *to)
{
	size_t fl = strlen(from), tl = strlen(to), count = 0;
	for (const char *p = strstr(s, from); p; p = strstr(p + fl, from))
		count++;
	char *out = malloc(strlen(s) + count * tl + 1), *w = out;
	if (!out)
		fail_msg("out of memory");
	for (const char *p = s;;) {
		const char *q = strstr(p, from);
		if (!q) {
			memcpy(w, p, strlen(p) + 1);
			break;
		}
		memcpy(w, p, (size_t)(q - p));
		w += q - p;
		memcpy(w, to, tl);
		w += tl;
		p = q + fl;
	}
	return out;
}

size_t tu_count_lines_with(const char *s, const char *needle)
{
	size_t n = 0;
	while (s && *s) {
		const char *e = strchr(s, '\n');
		size_t len = e ? (size_t)(e - s) : strlen(s);
		char *line = strndup(s, len);
		if (line && strstr(line, needle))
			n++;
		free(line);
		s = e ? e + 1 : s + len;
	}
	return n;
}

char *tu_pattern_json(const char *id, const char *type, int n)
{
	return tu_sprintf("{\"id\":\"%s\",\"agentId\":\"test-generator\",\"type\":\"%s\","
	                  "\"data\":{\"n\":%d},\"metadata\":{\"source\":\"it\",\"tags\":"
	                  "[\"unit\"]},\"timestamp\":1700000000000,\"version\":1}",
	                  id, type, n);
}
