/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agentsync store: encryption at rest of a data directory's store, locally
 * (the daemon stopped). A thin shell over ags_store_rekey, which is
 * crash-safe: killed at any point, it leaves the old store or the new one.
 *
 *   store encrypt --data DIR --key-file K          a plain store -> encrypted with K
 *   store rekey --data DIR --key-file K --new-key-file N   K -> N
 *   store decrypt --data DIR --key-file K          encrypted with K -> plain
 *   store inspect --data DIR [--key-file K]        what the store holds (it opens, checks)
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentsync/agentsync.h"
#include "cli.h"

static const char store_help[] =
    "Usage: agentsync store encrypt --data DIR --key-file K [--tenant T]\n"
    "       agentsync store rekey --data DIR --key-file K --new-key-file N [--tenant T]\n"
    "       agentsync store decrypt --data DIR --key-file K [--tenant T]\n"
    "       agentsync store inspect --data DIR [--key-file K] [--tenant T]\n"
    "Encryption at rest of the store in DIR (DIR/store.db; a hub's tenant T:\n"
    "DIR/tenants/T/store.db), locally: stop agentsyncd first (a store in use is\n"
    "refused). encrypt turns a plain store into one encrypted with the key in K\n"
    "(64 hex digits, e.g. `openssl rand -hex 32 > K`, or 32 raw bytes); rekey\n"
    "changes the key from K to N; decrypt makes it a plain SQLite file again. The\n"
    "store is copied under the new key, checked, synced and renamed over the old\n"
    "one: killed at any point, the old store or the new one is left, whole. Then\n"
    "set quic.storage.encryption.keyFile (or $AGENTSYNC_STORE_KEY_FILE) to the key.\n"
    "inspect opens the store (with K when encrypted) and prints what it holds.\n"
    "  --data DIR          the data directory (quic.dataDir)\n"
    "  --key-file K        the store's key (the new one for encrypt)\n"
    "  --new-key-file N    rekey: the new key\n"
    "  --tenant T          a hub tenant's store\n"
    "Exit status: 0 done, 1 error (the file and the reason are printed), 2 usage.\n";

int cmd_store(const struct cli *c, int argc, char **argv)
{
	(void)c;
	static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
	                                     {"data", required_argument, NULL, 'd'},
	                                     {"key-file", required_argument, NULL, 'k'},
	                                     {"new-key-file", required_argument, NULL, 'n'},
	                                     {"tenant", required_argument, NULL, 't'},
	                                     {NULL, 0, NULL, 0}};
	const char *data = NULL, *key = NULL, *new_key = NULL, *tenant = NULL;
	if (argc < 2 || wants_help(argc, argv)) {
		fputs(store_help, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	const char *sub = argv[1];
	int opt;
	optind = 0;
	while ((opt = getopt_long(argc - 1, argv + 1, "+h", opts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			fputs(store_help, stdout);
			return EXIT_OK;
		case 'd':
			data = optarg;
			break;
		case 'k':
			key = optarg;
			break;
		case 'n':
			new_key = optarg;
			break;
		case 't':
			tenant = optarg;
			break;
		default:
			fputs(store_help, stderr);
			return EXIT_USAGE;
		}
	}
	int is_encrypt = strcmp(sub, "encrypt") == 0, is_rekey = strcmp(sub, "rekey") == 0;
	int is_decrypt = strcmp(sub, "decrypt") == 0, is_inspect = strcmp(sub, "inspect") == 0;
	if (!(is_encrypt || is_rekey || is_decrypt || is_inspect)) {
		fprintf(stderr, "agentsync: store: unknown subcommand '%s'\n%s", sub, store_help);
		return EXIT_USAGE;
	}
	const char *missing = !data || !*data                       ? "--data"
	                      : !is_inspect && (!key || !*key)      ? "--key-file"
	                      : is_rekey && (!new_key || !*new_key) ? "--new-key-file"
	                                                            : NULL;
	if (missing || optind + 1 < argc || (new_key && !is_rekey)) {
		if (missing)
			fprintf(stderr, "agentsync: store %s: %s is required\n", sub, missing);
		else if (new_key && !is_rekey)
			fprintf(stderr, "agentsync: store %s: --new-key-file is for rekey only\n",
			        sub);
		fputs(store_help, stderr);
		return EXIT_USAGE;
	}
	size_t n = strlen(data) + (tenant ? strlen(tenant) : 0) + 32;
	char *path = malloc(n);
	if (!path)
		return EXIT_ERROR;
	if (tenant)
		snprintf(path, n, "%s/tenants/%s/store.db", data, tenant);
	else
		snprintf(path, n, "%s/store.db", data);
	ags_store_info info;
	ags_error err;
	ags_error_clear(&err);
	memset(&info, 0, sizeof(info));
	int rc;
	if (is_inspect)
		rc = ags_store_inspect_key(path, key, &info, &err);
	else
		rc = ags_store_rekey(path, is_encrypt ? NULL : key,
		                     is_encrypt ? key
		                     : is_rekey ? new_key
		                                : NULL,
		                     &info, &err);
	if (rc < 0) {
		fprintf(stderr, "agentsync: store %s: %s\n", sub,
		        err.message[0] ? err.message : ags_strerror(rc));
	} else {
		const char *done = is_encrypt   ? "encrypted"
		                   : is_rekey   ? "re-keyed"
		                   : is_decrypt ? "decrypted"
		                                : "checked";
		printf("%s store %s: %" PRIu64 " patterns, seq %" PRIu64 ", %" PRIu64
		       " bytes, %s\n",
		       done, info.id, info.patterns, info.seq, info.bytes, path);
		if (is_encrypt || is_rekey)
			printf("start agentsyncd with quic.storage.encryption.keyFile (or "
			       "AGENTSYNC_STORE_KEY_FILE) = %s\n",
			       is_rekey ? new_key : key);
	}
	free(path);
	return rc < 0 ? EXIT_ERROR : EXIT_OK;
}
