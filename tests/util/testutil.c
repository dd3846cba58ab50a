/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

char *tu_mkdtemp(const char *tag)
{
	const char *base = getenv("TMPDIR");
	char *p = tu_sprintf("%s/ags-%s-XXXXXX", base && *base ? base : "/tmp", tag);
	if (!mkdtemp(p))
		fail_msg("mkdtemp %s: %s", p, strerror(errno));
	return p;
}

void tu_rmrf(const char *path)
{
	if (!path || !*path || strcmp(path, "/") == 0)
		return;
	pid_t pid = fork();
	if (pid == 0) {
		execlp("rm", "rm", "-rf", "--", path, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

char *tu_sprintf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		fail_msg("out of memory");
	return s;
}

char *tu_program(const char *name)
{
	const char *dirs[] = {getenv("AGS_BIN_DIR"), getenv("AGS_TEST_BIN_DIR")};
	for (size_t i = 0; i < 2; i++) {
		if (!dirs[i])
			continue;
		char *p = tu_sprintf("%s/%s", dirs[i], name);
		if (access(p, X_OK) == 0)
			return p;
		free(p);
	}
	fail_msg("program %s not found (AGS_BIN_DIR/AGS_TEST_BIN_DIR unset? run through ctest)",
	         name);
	return NULL;
}

pid_t tu_spawn(char *const argv[], const char *log_path)
{
	pid_t pid = fork();
	if (pid < 0)
		fail_msg("fork: %s", strerror(errno));
	if (pid == 0) {
		if (log_path) {
			int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
				close(fd);
			}
		}
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

int tu_kill_wait(pid_t pid, int sig)
{
	int st = 0;
	if (pid <= 0)
		return -1;
	kill(pid, sig);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return st;
}

char *tu_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	for (;;) {
		if (n + 4096 + 1 > cap) {
			cap *= 2;
			buf = realloc(buf, cap);
		}
		size_t r = fread(buf + n, 1, cap - n - 1, f);
		if (r == 0)
			break;
		n += r;
	}
	fclose(f);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

void tu_sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int tu_wait_for(int (*cond)(void *), void *arg, unsigned tries, unsigned step_ms)
{
	int v = 0;
	for (unsigned i = 0; i < tries; i++) {
		v = cond(arg);
		if (v)
			return v;
		tu_sleep_ms(step_ms);
	}
	return cond(arg);
}

int tu_file_contains(const char *path, const char *needle)
{
	char *s = tu_read_file(path, NULL);
	int r = s && strstr(s, needle) != NULL;
	free(s);
	return r;
}

/* State of one tu_tree_holds walk (nftw has no user pointer). */
static struct {
	const char *needle;
	char *found;
	char *scanned;
} tree_walk;

static int tree_visit(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)ftw;
	if (type != FTW_F || !S_ISREG(sb->st_mode))
		return 0;
	char *prev = tree_walk.scanned;
	tree_walk.scanned = tu_sprintf("%s%s%s", prev ? prev : "", prev ? " " : "", path);
	free(prev);
	size_t len = 0;
	char *data = tu_read_file(path, &len);
	int hit = data && memmem(data, len, tree_walk.needle, strlen(tree_walk.needle)) != NULL;
	free(data);
	if (hit) {
		tree_walk.found = tu_sprintf("%s", path);
		return 1;
	}
	return 0;
}

char *tu_tree_holds(const char *dir, const char *needle, char **scanned)
{
	tree_walk.needle = needle;
	tree_walk.found = NULL;
	tree_walk.scanned = NULL;
	if (nftw(dir, tree_visit, 16, FTW_PHYS) < 0)
		fail_msg("cannot walk %s: %s", dir, strerror(errno));
	if (scanned)
		*scanned = tree_walk.scanned ? tree_walk.scanned : tu_sprintf("%s", "");
	else
		free(tree_walk.scanned);
	return tree_walk.found;
}

int tu_free_port(int udp)
{
	int fd = socket(AF_INET, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &l) < 0)
		fail_msg("free port: %s", strerror(errno));
	close(fd);
	return ntohs(a.sin_port);
}
