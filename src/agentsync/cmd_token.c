/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agentsync token: makes a JSON Web Token for an agent of a federation hub
 * (claims sub, tenant, iss?, aud?, iat, exp), signed with HS256 and a shared
 * secret, or with RS256 / ES256 and a private key (include/agentsync/token.h). For tests
 * and small set-ups; a real deployment has its own issuer.
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentsync/agentsync.h"
#include "agentsync/token.h"
#include "cli.h"

/* Longest lifetime accepted: ten years. */
#define TTL_MAX (10LL * 366 * 24 * 3600)
/* Largest secret or key file read. */
#define KEY_FILE_MAX (1024 * 1024)

static const char token_help[] =
    "Usage: agentsync token --sub AGENT --tenant TENANT --secret-file F\n"
    "                       [--iss ISSUER] [--aud AUDIENCE] [--ttl SECONDS]\n"
    "       agentsync token --alg RS256|ES256 --key-file PRIVATE.pem --sub ... --tenant ...\n"
    "Prints a JSON Web Token for agent AGENT of tenant TENANT, for `agentsync sync\n"
    "--hub` and agents of a hub (agentsyncd --hub).\n"
    "  --sub AGENT        the agent id (1-256 of A-Z a-z 0-9 . _ : @ -)\n"
    "  --tenant TENANT    the tenant (1-128 of the same characters)\n"
    "  --secret-file F    HS256: the hub's shared secret (quic.hub.hs256SecretFile),\n"
    "                     at least 32 bytes; one final newline is not part of it\n"
    "  --alg A            HS256 (default), RS256 or ES256\n"
    "  --key-file F       RS256/ES256: the PEM private key (the hub holds the public one)\n"
    "  --iss ISSUER       claim iss (the hub's quic.hub.issuer, if it has one)\n"
    "  --aud AUDIENCE     claim aud (the hub's quic.hub.audience, if it has one)\n"
    "  --ttl SECONDS      lifetime (default 3600); exp = now + SECONDS\n"
    "Exit status: 0 printed, 1 error (unreadable or short secret, bad claim), 2 usage.\n";

/* Reads a whole file (at most KEY_FILE_MAX bytes) into a NUL-terminated buffer. */
static char *read_key_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "agentsync: token: cannot read %s: %m\n", path);
		return NULL;
	}
	char *buf = malloc(KEY_FILE_MAX + 1);
	size_t n = buf ? fread(buf, 1, KEY_FILE_MAX + 1, f) : 0;
	int bad = !buf || ferror(f) || n > KEY_FILE_MAX;
	fclose(f);
	if (bad) {
		fprintf(stderr, "agentsync: token: cannot read %s (or it is over 1 MiB)\n", path);
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

int cmd_token(const struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {{"sub", required_argument, NULL, 's'},
	                                     {"tenant", required_argument, NULL, 't'},
	                                     {"secret-file", required_argument, NULL, 'f'},
	                                     {"key-file", required_argument, NULL, 'k'},
	                                     {"alg", required_argument, NULL, 'a'},
	                                     {"iss", required_argument, NULL, 'i'},
	                                     {"aud", required_argument, NULL, 'u'},
	                                     {"ttl", required_argument, NULL, 'l'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	const char *sub = NULL, *tenant = NULL, *secret_file = NULL, *key_file = NULL;
	const char *alg = "HS256", *iss = NULL, *aud = NULL;
	long long ttl = 3600;
	int opt;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		char *end;
		switch (opt) {
		case 's':
			sub = optarg;
			break;
		case 't':
			tenant = optarg;
			break;
		case 'f':
			secret_file = optarg;
			break;
		case 'k':
			key_file = optarg;
			break;
		case 'a':
			alg = optarg;
			break;
		case 'i':
			iss = optarg;
			break;
		case 'u':
			aud = optarg;
			break;
		case 'l':
			ttl = strtoll(optarg, &end, 10);
			if (*end || ttl < 1 || ttl > TTL_MAX) {
				fprintf(stderr,
				        "agentsync: token: --ttl must be from 1 to %lld seconds\n",
				        TTL_MAX);
				return EXIT_USAGE;
			}
			break;
		case 'h':
			fputs(token_help, stdout);
			return EXIT_OK;
		default:
			fputs(token_help, stderr);
			return EXIT_USAGE;
		}
	}
	int hs = strcmp(alg, "HS256") == 0;
	if (!hs && strcmp(alg, "RS256") != 0 && strcmp(alg, "ES256") != 0) {
		fprintf(stderr, "agentsync: token: --alg must be HS256, RS256 or ES256\n");
		return EXIT_USAGE;
	}
	if (optind < argc || !sub || !tenant || (hs && (!secret_file || key_file)) ||
	    (!hs && (!key_file || secret_file))) {
		fprintf(stderr, "agentsync: token: needs --sub, --tenant and %s\n",
		        hs ? "--secret-file (HS256)" : "--key-file (RS256, ES256)");
		fputs(token_help, stderr);
		return EXIT_USAGE;
	}
	size_t len = 0;
	char *key = read_key_file(hs ? secret_file : key_file, &len);
	if (!key)
		return EXIT_ERROR;
	int64_t now = ags_now_ms() / 1000;
	char *token = NULL;
	int rc;
	if (hs) {
		/* As the hub reads its secret file: one final newline is not part of it. */
		if (len > 0 && key[len - 1] == '\n')
			len--;
		if (len > 0 && key[len - 1] == '\r')
			len--;
		if (len < AGS_JWT_HS_SECRET_MIN) {
			fprintf(stderr,
			        "agentsync: token: the secret in %s is %zu bytes; HS256 needs at "
			        "least %d\n",
			        secret_file, len, AGS_JWT_HS_SECRET_MIN);
			free(key);
			return EXIT_ERROR;
		}
		rc = ags_jwt_sign_hs256((const uint8_t *)key, len, sub, tenant, iss, aud, now,
		                        now + ttl, &token);
	} else if (alg[0] == 'R') {
		rc = ags_jwt_sign_rs256(key, sub, tenant, iss, aud, now, now + ttl, &token);
	} else {
		rc = ags_jwt_sign_es256(key, sub, tenant, iss, aud, now, now + ttl, &token);
	}
	free(key);
	if (rc < 0) {
		fprintf(stderr,
		        "agentsync: token: cannot sign: %s (sub and tenant must be 1-256 and "
		        "1-128 of A-Z a-z 0-9 . _ : @ -%s)\n",
		        ags_strerror(rc), hs ? "" : "; the key must be such a private key");
		return EXIT_ERROR;
	}
	printf("%s\n", token);
	free(token);
	return EXIT_OK;
}
