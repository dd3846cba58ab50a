/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a start checks before it binds anything (node.h ags_node_check), in
 * one place for ags_node_start, TLS reloads and `agentsyncd --check`: the
 * TLS files and the identity they give, and the data directory.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "node_int.h"
#include "tls.h"

/* The transport names its inputs by C field; a user knows them by config key. */
static void name_tls_field(ags_error *err)
{
	static const char *const names[][2] = {
	    {"cert_file", "tls.cert"},         {"key_file", "tls.key"}, {"ca_file", "tls.ca"},
	    {"keylog_file", "tls.keylogFile"}, {"pins", "tls.pins"},
	};
	if (!err)
		return;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(err->field, names[i][0]) == 0) {
			snprintf(err->field, sizeof(err->field), "%s", names[i][1]);
			return;
		}
}

int ags_node_tls_new(const ags_node_config *c, const char *node_id, ags_tls_ctx **out,
                     ags_error *err)
{
	ags_tls_config tc;
	memset(&tc, 0, sizeof(tc));
	tc.cert_file = c->tls.cert;
	tc.key_file = c->tls.key;
	tc.ca_file = c->tls.ca;
	tc.reject_unauthorized = c->tls.reject_unauthorized;
	tc.allowed_ids = c->allowed_ids;
	tc.n_allowed_ids = c->n_allowed_ids;
	tc.pins = c->tls.pins;
	tc.n_pins = c->tls.n_pins;
	tc.keylog_file = c->tls.keylog_file;
	int rv = ags_tls_ctx_new(&tc, out, err);
	if (rv) {
		name_tls_field(err);
		return rv;
	}
	/* The certificate must be this node's (an agent's id is its token's instead). */
	if (node_id && c->tls.reject_unauthorized &&
	    strcmp(ags_tls_ctx_own_id(*out), node_id) != 0) {
		rv = ags_error_set(err, AGS_ERR_CONFIG, "tls.cert",
		                   "%s: the certificate is for '%s' but nodeId is '%s'",
		                   c->tls.cert, ags_tls_ctx_own_id(*out), node_id);
		ags_tls_ctx_del(*out);
		*out = NULL;
	}
	return rv;
}

/*
 * Whether `dir` is, or can be made as, a directory this process can write:
 * itself when it exists, else its nearest existing ancestor.
 */
static int check_data_dir(const char *dir, ags_error *err)
{
	char buf[PATH_MAX];
	if (snprintf(buf, sizeof(buf), "%s", dir) >= (int)sizeof(buf))
		return ags_error_set(err, AGS_ERR_CONFIG, "dataDir", "path too long");
	struct stat st;
	int exists = stat(buf, &st) == 0;
	while (!exists) {
		char *slash = strrchr(buf, '/');
		if (!slash)
			snprintf(buf, sizeof(buf), ".");
		else if (slash == buf)
			buf[1] = '\0';
		else
			*slash = '\0';
		if (stat(buf, &st) == 0)
			break;
		if (errno != ENOENT)
			return ags_error_set(err, AGS_ERR_IO, "dataDir", "cannot create %s: %s: %m",
			                     dir, buf);
	}
	if (!S_ISDIR(st.st_mode))
		return ags_error_set(err, AGS_ERR_CONFIG, "dataDir",
		                     exists ? "%s exists and is not a directory"
		                            : "cannot create %s: %s is not a directory",
		                     dir, buf);
	if (access(buf, W_OK | X_OK) != 0)
		return ags_error_set(
		    err, AGS_ERR_IO, "dataDir",
		    exists ? "%s is not writable: %m" : "cannot create %s in %s: %m", dir, buf);
	return 0;
}

AGS_EXPORT int ags_node_check(const ags_node_config *cfg, ags_error *err)
{
	if (!cfg)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "cfg is required");
	/* Without certificate and key the caller makes them before it starts. */
	int own = !cfg->tls.cert && !cfg->tls.key;
	ags_node_config c = *cfg;
	if (own)
		c.tls.cert = c.tls.key = c.tls.ca = "(made before the start)";
	int rv = ags_node_check_config(&c, err);
	if (rv)
		return rv;
	if (!own) {
		ags_tls_ctx *tls = NULL;
		if ((rv = ags_node_tls_new(cfg, cfg->node_id, &tls, err)))
			return rv;
		ags_tls_ctx_del(tls);
	}
	return check_data_dir(cfg->data_dir ? cfg->data_dir : "./agentsync-data", err);
}
