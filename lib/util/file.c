/* SPDX-License-Identifier: Apache-2.0 */
/* Reading a small file whole (file.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "file.h"

int ags_file_read(const char *path, size_t max, char **out, size_t *len, ags_error *err)
{
	if (!path || !out || !len)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, NULL);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ags_error_set(err, errno == ENOENT ? AGS_ERR_NOT_FOUND : AGS_ERR_IO, NULL,
		                     "%m");
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return ags_error_set(err, AGS_ERR_IO, NULL, "not a regular file");
	}
	if ((uint64_t)st.st_size > max) {
		close(fd);
		return ags_error_set(err, AGS_ERR_TOO_LARGE, NULL,
		                     "is %lld bytes, more than the %zu accepted",
		                     (long long)st.st_size, max);
	}
	/* One byte more than the size: a file that grew while being read is noticed. */
	size_t cap = (size_t)st.st_size + 1, n = 0;
	char *buf = malloc(cap + 1);
	if (!buf) {
		close(fd);
		return ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
	}
	while (n < cap) {
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int rc = ags_error_set(err, AGS_ERR_IO, NULL, "%m");
			free(buf);
			close(fd);
			return rc;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (n > max) {
		free(buf);
		return ags_error_set(err, AGS_ERR_TOO_LARGE, NULL,
		                     "is more than the %zu accepted (it grew while read)", max);
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

int ags_file_read_setting(const char *path, size_t max, const char *field, int code, char **out,
                          size_t *len, ags_error *err)
{
	ags_error e;
	ags_error_clear(&e);
	int rc = ags_file_read(path, max, out, len, &e);
	if (rc == 0)
		return 0;
	if (rc == AGS_ERR_NOMEM)
		return ags_error_set(err, rc, field, NULL);
	if (rc == AGS_ERR_TOO_LARGE)
		return ags_error_set(err, code, field, "\"%.120s\" %s", path ? path : "",
		                     e.message);
	return ags_error_set(err, code, field, "cannot read \"%.120s\": %s", path ? path : "",
	                     e.message);
}

int ags_file_sync(const char *path, int dir)
{
	int fd = open(path, (dir ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}
