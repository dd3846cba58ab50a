/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The federation hub's part of the daemon configuration (quic.hub, see
 * src/agentsyncd/config.h): the checks that need several hub keys at once, the checks
 * of the key files on disk, and reading the upstream token file. The keys
 * themselves are parsed with the other tables in src/agentsyncd/config.c.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "error.h"
#include "file.h"
#include "jwtauth.h"

/* One JWT algorithm, the config key of its key file, and where that file's name lives. */
struct alg_key {
	const char *alg;
	const char *path; /* JSON path of the key file */
	unsigned bit;
	size_t off; /* offset of the file name in ags_node_config */
};

static const struct alg_key alg_keys[] = {
    {"HS256", "quic.hub.hs256SecretFile", AGS_JWT_HS256,
     offsetof(ags_node_config, hub.hs256_secret_file)},
    {"RS256", "quic.hub.rs256PublicKeyFile", AGS_JWT_RS256,
     offsetof(ags_node_config, hub.rs256_public_key_file)},
    {"ES256", "quic.hub.es256PublicKeyFile", AGS_JWT_ES256,
     offsetof(ags_node_config, hub.es256_public_key_file)},
};

static const char *key_file(const ags_node_config *n, const struct alg_key *k)
{
	return *(const char *const *)((const char *)n + k->off);
}

int ags_config_endpoint_valid(const char *s)
{
	if (!s || strncmp(s, "quic://", 7) != 0)
		return 0;
	s += 7;
	const char *port;
	if (*s == '[') {
		const char *close = strchr(s, ']');
		if (!close || close == s + 1)
			return 0;
		for (const char *p = s + 1; p < close; p++)
			if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
			      (*p >= 'A' && *p <= 'F') || *p == ':' || *p == '.'))
				return 0;
		if (close[1] == '\0')
			return 1;
		if (close[1] != ':')
			return 0;
		port = close + 2;
	} else {
		size_t hl = strcspn(s, ":");
		if (hl == 0 || hl > 253)
			return 0;
		for (size_t i = 0; i < hl; i++)
			if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f ||
			    strchr("/?#@[]", s[i]))
				return 0;
		if (s[hl] == '\0')
			return 1;
		port = s + hl + 1;
	}
	size_t pl = strlen(port);
	if (pl == 0 || pl > 5 || strspn(port, "0123456789") != pl)
		return 0;
	long v = strtol(port, NULL, 10);
	return v >= 1 && v <= 65535;
}

int ags_config_check_hub(const ags_config *c, ags_error *err)
{
	const ags_node_config *n = &c->node;
	const char *token = n->hub.upstream.token;
	if (token && c->hub_token_file)
		return ags_error_set(err, AGS_ERR_CONFIG, "quic.hub.upstream.tokenFile",
		                     "give upstream.token or upstream.tokenFile, not both");
	if (n->hub.upstream.endpoint && !token && !c->hub_token_file)
		return ags_error_set(err, AGS_ERR_CONFIG, "quic.hub.upstream.token",
		                     "required with upstream.endpoint (or upstream.tokenFile): the "
		                     "JWT this node authenticates with");
	if (!n->hub.upstream.endpoint && (token || c->hub_token_file || n->hub.upstream.hub_id))
		return ags_error_set(err, AGS_ERR_CONFIG, "quic.hub.upstream.endpoint",
		                     "required when upstream.%s is set",
		                     token               ? "token"
		                     : c->hub_token_file ? "tokenFile"
		                                         : "hubId");
	if (!n->hub.enabled)
		return 0;
	if (n->hub.n_algorithms) {
		for (size_t i = 0; i < n->hub.n_algorithms; i++) {
			for (size_t k = 0; k < sizeof(alg_keys) / sizeof(alg_keys[0]); k++) {
				if (strcmp(n->hub.algorithms[i], alg_keys[k].alg) != 0 ||
				    key_file(n, &alg_keys[k]))
					continue;
				return ags_error_set(err, AGS_ERR_CONFIG, alg_keys[k].path,
				                     "required in hub mode: quic.hub.algorithms "
				                     "allows %s",
				                     alg_keys[k].alg);
			}
		}
		return 0;
	}
	for (size_t k = 0; k < sizeof(alg_keys) / sizeof(alg_keys[0]); k++)
		if (key_file(n, &alg_keys[k]))
			return 0;
	return ags_error_set(err, AGS_ERR_CONFIG, "quic.hub",
	                     "hub mode (--hub or quic.hub.enabled) needs a key to verify the "
	                     "agents' tokens with: set quic.hub.hs256SecretFile, "
	                     "rs256PublicKeyFile or es256PublicKeyFile");
}

/* Reads the key or token file at `path`; errors are AGS_ERR_CONFIG naming `field` and it. */
static int read_small(const char *field, const char *path, char **out, size_t *len, ags_error *err)
{
	return ags_file_read_setting(path, AGS_FILE_KEY_MAX, field, AGS_ERR_CONFIG, out, len, err);
}

int ags_config_check_hub_files(const ags_config *c, ags_error *err)
{
	if (!c)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, NULL);
	const ags_node_config *n = &c->node;
	char *buf[3] = {NULL, NULL, NULL};
	size_t len[3] = {0, 0, 0};
	int rc = 0;
	if (c->hub_token_file) {
		char *t = NULL;
		size_t tl;
		rc = read_small("quic.hub.upstream.tokenFile", c->hub_token_file, &t, &tl, err);
		free(t);
		if (rc < 0)
			return rc;
	}
	if (!n->hub.enabled)
		return 0;
	ags_jwt_config jc;
	memset(&jc, 0, sizeof(jc));
	for (size_t k = 0; k < 3; k++) {
		const char *file = key_file(n, &alg_keys[k]);
		if (!file)
			continue;
		rc = read_small(alg_keys[k].path, file, &buf[k], &len[k], err);
		if (rc < 0)
			goto out;
		if (n->hub.n_algorithms == 0)
			jc.algs |= alg_keys[k].bit;
	}
	for (size_t i = 0; i < n->hub.n_algorithms; i++)
		for (size_t k = 0; k < 3; k++)
			if (strcmp(n->hub.algorithms[i], alg_keys[k].alg) == 0)
				jc.algs |= alg_keys[k].bit;
	/* As the hub reads the secret: one final newline (LF or CRLF) is not part of it. */
	if (len[0] > 0 && buf[0][len[0] - 1] == '\n')
		len[0]--;
	if (len[0] > 0 && buf[0][len[0] - 1] == '\r')
		len[0]--;
	jc.hs_secret = (const uint8_t *)buf[0];
	jc.hs_secret_len = len[0];
	jc.rs_public_pem = buf[1];
	jc.es_public_pem = buf[2];
	jc.issuer = n->hub.issuer;
	jc.audience = n->hub.audience;
	jc.skew_s = n->hub.skew_s;
	ags_error e;
	ags_error_clear(&e);
	rc = ags_jwt_config_check(&jc, &e);
	if (rc < 0) {
		size_t k = strcmp(e.field, "rs_public_pem") == 0   ? 1
		           : strcmp(e.field, "es_public_pem") == 0 ? 2
		                                                   : 0;
		const char *file = key_file(n, &alg_keys[k]);
		if (rc == AGS_ERR_NOMEM)
			rc = ags_error_set(err, rc, alg_keys[k].path, NULL);
		else if (strcmp(e.field, "algs") == 0)
			rc = ags_error_set(err, AGS_ERR_CONFIG, "quic.hub.algorithms", "%s",
			                   e.message);
		else
			rc = ags_error_set(err, AGS_ERR_CONFIG, alg_keys[k].path,
			                   "%s (in \"%.120s\")", e.message, file ? file : "");
	}
out:
	for (size_t k = 0; k < 3; k++)
		free(buf[k]);
	return rc;
}

int ags_config_load_files(ags_config *c, ags_error *err)
{
	if (!c)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, NULL);
	if (!c->hub_token_file)
		return 0;
	static const char field[] = "quic.hub.upstream.tokenFile";
	char *t = NULL;
	size_t n = 0;
	int rc = read_small(field, c->hub_token_file, &t, &n, err);
	if (rc < 0)
		return rc;
	while (n > 0 &&
	       (t[n - 1] == '\n' || t[n - 1] == '\r' || t[n - 1] == ' ' || t[n - 1] == '\t'))
		t[--n] = '\0';
	if (n == 0)
		rc = ags_error_set(err, AGS_ERR_CONFIG, field, "\"%.120s\" holds no token",
		                   c->hub_token_file);
	else if (n > AGS_CONFIG_TOKEN_MAX)
		rc =
		    ags_error_set(err, AGS_ERR_CONFIG, field,
		                  "the token in \"%.120s\" is %zu bytes, more than the %d accepted",
		                  c->hub_token_file, n, AGS_CONFIG_TOKEN_MAX);
	for (size_t i = 0; rc == 0 && i < n; i++)
		if ((unsigned char)t[i] <= ' ' || t[i] == 0x7f)
			rc = ags_error_set(err, AGS_ERR_CONFIG, field,
			                   "the token in \"%.120s\" has a space or control "
			                   "character at byte %zu",
			                   c->hub_token_file, i);
	if (rc == 0 && ags_config_set_str(c, &c->node.hub.upstream.token, t) < 0)
		rc = ags_error_set(err, AGS_ERR_NOMEM, field, NULL);
	free(t);
	return rc;
}
