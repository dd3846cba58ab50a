/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Small checks of configuration values that the daemon and its tests use on
 * their own (node ids, host:port, log levels), and the checks of the files a
 * configuration names (src/agentsyncd/config.h).
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "error.h"

/* ------------------------------------------------------------------------ */
/* Small checks                                                             */
/* ------------------------------------------------------------------------ */

int ags_config_id_valid(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	if (n == 0 || n > AGS_NODE_ID_MAX || id[0] == '.' || id[0] == '-')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = id[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
			return 0;
	}
	return 1;
}

size_t ags_config_sanitize_id(const char *in, char *out, size_t cap)
{
	size_t n = 0;
	if (cap < 2)
		return 0;
	for (const char *p = in ? in : ""; *p && n < AGS_NODE_ID_MAX && n + 1 < cap; p++) {
		char ch = *p;
		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' ||
		      ch == '_' || ch == '-'))
			ch = '-';
		/* An id may not start with '.' or '-'. */
		if (n == 0 && (ch == '.' || ch == '-'))
			continue;
		out[n++] = ch;
	}
	out[n] = '\0';
	if (n == 0) {
		snprintf(out, cap, "node");
		n = strlen(out);
	}
	return n;
}

int ags_config_split_hostport(const char *s, char *host, size_t cap, uint16_t *port)
{
	if (!s || !host || !port || cap == 0)
		return AGS_ERR_CONFIG;
	const char *colon, *h = s;
	size_t hlen;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			return AGS_ERR_CONFIG;
		h = s + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || memchr(s, ':', (size_t)(colon - s)))
			return AGS_ERR_CONFIG;
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen >= cap)
		return AGS_ERR_CONFIG;
	const char *ps = colon + 1;
	size_t plen = strlen(ps);
	if (plen == 0 || plen > 5)
		return AGS_ERR_CONFIG;
	unsigned long v = 0;
	for (size_t i = 0; i < plen; i++) {
		if (ps[i] < '0' || ps[i] > '9')
			return AGS_ERR_CONFIG;
		v = v * 10 + (unsigned long)(ps[i] - '0');
	}
	if (v > 65535)
		return AGS_ERR_CONFIG;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	*port = (uint16_t)v;
	return 0;
}

int ags_config_log_level(const char *name)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	for (int i = 0; name && i < 4; i++)
		if (strcmp(name, names[i]) == 0)
			return i;
	return -1;
}

const char *ags_config_log_level_name(int level)
{
	static const char *const names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
	return level >= 0 && level < 4 ? names[level] : "INFO";
}

/* ------------------------------------------------------------------------ */
/* Files                                                                    */
/* ------------------------------------------------------------------------ */

/* Checks that `file` (the value of config key `field`) can be opened for reading. */
static int check_readable(const char *field, const char *file, ags_error *err)
{
	if (!file)
		return 0;
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ags_error_set(err, AGS_ERR_CONFIG, field, "cannot read \"%.120s\": %m",
		                     file);
	close(fd);
	return 0;
}

int ags_config_check_files(const ags_config *c, ags_error *err)
{
	if (!c)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, NULL);
	int rc;
	if (c->tls_from_file) {
		if ((rc = check_readable("quic.tls.cert", c->node.tls.cert, err)) < 0 ||
		    (rc = check_readable("quic.tls.key", c->node.tls.key, err)) < 0 ||
		    (rc = check_readable("quic.tls.ca", c->node.tls.ca, err)) < 0)
			return rc;
	}
	struct stat st;
	if (c->node.data_dir && stat(c->node.data_dir, &st) == 0 && !S_ISDIR(st.st_mode))
		return ags_error_set(err, AGS_ERR_CONFIG, "quic.dataDir",
		                     "\"%.120s\" exists and is not a directory", c->node.data_dir);
	return ags_config_check_hub_files(c, err);
}
