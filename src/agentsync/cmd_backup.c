/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agentsync backup and restore.
 *
 *   backup --out FILE            GET /v1/backup from the running daemon (an
 *                                online, consistent copy made with SQLite's
 *                                backup API), written to FILE.partial, synced,
 *                                checked, then renamed to FILE
 *   restore --from FILE --data DIR   a backup into DIR/store.db of a new data
 *                                directory (local, no daemon); the store keeps
 *                                its identity, so its peers resume where the
 *                                backup's cursors were
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agentsync/agentsync.h"
#include "cli.h"

static const char backup_help[] =
    "Usage: agentsync backup --out FILE [--force] [--key-file K]\n"
    "Asks the running daemon (GET /v1/backup) for an online, consistent copy of its\n"
    "store, made with SQLite's backup API while the node goes on syncing, and writes\n"
    "it to FILE (mode 0600). The copy is checked (it opens, PRAGMA quick_check, the\n"
    "store's identity) before FILE is created. Restore it with agentsync restore.\n"
    "  --out FILE   where to write the backup (refused if it exists)\n"
    "  --force      replace FILE if it exists\n"
    "  --key-file K the store's key, when it is encrypted (the copy is too)\n"
    "Exit status: 0 written, 1 error, 2 usage, 3 daemon unreachable.\n";

static const char restore_help[] =
    "Usage: agentsync restore --from FILE --data DIR [--key-file K]\n"
    "Copies the backup FILE into DIR/store.db, a new data directory for agentsyncd\n"
    "(created, mode 0700; refused if it already holds a store). Runs locally, no\n"
    "daemon involved. The store keeps its identity: start agentsyncd with --data DIR\n"
    "and the node catches up from its peers with what they hold beyond the backup.\n"
    "  --from FILE  the backup (from agentsync backup)\n"
    "  --data DIR   the new data directory\n"
    "  --key-file K the backup's key, when it is encrypted (the store keeps it)\n"
    "Exit status: 0 restored, 1 error (the file and the reason are printed), 2 usage.\n";

struct sink {
	int fd;
	int failed; /* errno of a failed write, or 0 */
	uint64_t bytes;
};

static int to_file(void *ud, const char *data, size_t len)
{
	struct sink *s = ud;
	while (len) {
		ssize_t n = write(s->fd, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			s->failed = n < 0 ? errno : EIO;
			return 1;
		}
		data += n;
		len -= (size_t)n;
		s->bytes += (uint64_t)n;
	}
	return 0;
}

static void print_store_error(const char *what, const ags_error *err, int rc)
{
	fprintf(stderr, "agentsync: %s: %s\n", what,
	        err->message[0] ? err->message : ags_strerror(rc));
}

int cmd_backup(const struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
	                                     {"out", required_argument, NULL, 'o'},
	                                     {"force", no_argument, NULL, 'f'},
	                                     {"key-file", required_argument, NULL, 'k'},
	                                     {NULL, 0, NULL, 0}};
	const char *out = NULL, *key_file = NULL;
	int force = 0, opt;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			fputs(backup_help, stdout);
			return EXIT_OK;
		case 'o':
			out = optarg;
			break;
		case 'f':
			force = 1;
			break;
		case 'k':
			key_file = optarg;
			break;
		default:
			fputs(backup_help, stderr);
			return EXIT_USAGE;
		}
	}
	if (!out || !*out || optind < argc) {
		fputs(backup_help, stderr);
		return EXIT_USAGE;
	}
	struct stat sb;
	if (!force && lstat(out, &sb) == 0) {
		fprintf(stderr, "agentsync: backup: %s exists (--force replaces it)\n", out);
		return EXIT_ERROR;
	}
	size_t n = strlen(out) + 16;
	char *partial = malloc(n);
	if (!partial)
		return EXIT_ERROR;
	snprintf(partial, n, "%s.partial", out);
	struct sink s = {-1, 0, 0};
	s.fd = open(partial, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (s.fd < 0) {
		fprintf(stderr, "agentsync: backup: cannot create %s: %s%s\n", partial,
		        strerror(errno),
		        errno == EEXIST ? " (left by a backup that was stopped?)" : "");
		free(partial);
		return EXIT_ERROR;
	}
	struct http_resp r;
	int rc = http_stream(c, "backup", "/v1/backup", NULL, to_file, &s, NULL, &r, NULL);
	if (rc == EXIT_OK && (r.status < 200 || r.status > 299))
		rc = http_fail("backup", &r);
	else if (rc == EXIT_OK && s.failed) {
		fprintf(stderr, "agentsync: backup: cannot write %s: %s\n", partial,
		        strerror(s.failed));
		rc = EXIT_ERROR;
	}
	http_resp_free(&r);
	if (rc == EXIT_OK && fsync(s.fd) < 0) {
		fprintf(stderr, "agentsync: backup: cannot sync %s: %s\n", partial,
		        strerror(errno));
		rc = EXIT_ERROR;
	}
	if (close(s.fd) < 0 && rc == EXIT_OK) {
		fprintf(stderr, "agentsync: backup: cannot write %s: %s\n", partial,
		        strerror(errno));
		rc = EXIT_ERROR;
	}
	ags_store_info info;
	ags_error err;
	ags_error_clear(&err);
	if (rc == EXIT_OK) {
		int irc = ags_store_inspect_key(partial, key_file, &info, &err);
		if (irc < 0) {
			print_store_error("backup: the copy received does not check", &err, irc);
			rc = EXIT_ERROR;
		}
	}
	if (rc == EXIT_OK && rename(partial, out) < 0) {
		fprintf(stderr, "agentsync: backup: cannot rename %s to %s: %s\n", partial, out,
		        strerror(errno));
		rc = EXIT_ERROR;
	}
	if (rc != EXIT_OK)
		unlink(partial);
	else
		printf("backup of store %s: %" PRIu64 " patterns, seq %" PRIu64 ", %" PRIu64
		       " bytes in %s\n",
		       info.id, info.patterns, info.seq, info.bytes, out);
	free(partial);
	return rc;
}

int cmd_restore(const struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
	                                     {"from", required_argument, NULL, 'i'},
	                                     {"data", required_argument, NULL, 'd'},
	                                     {"key-file", required_argument, NULL, 'k'},
	                                     {NULL, 0, NULL, 0}};
	const char *from = NULL, *data = NULL, *key_file = NULL;
	int opt;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			fputs(restore_help, stdout);
			return EXIT_OK;
		case 'i':
			from = optarg;
			break;
		case 'd':
			data = optarg;
			break;
		case 'k':
			key_file = optarg;
			break;
		default:
			fputs(restore_help, stderr);
			return EXIT_USAGE;
		}
	}
	if (!from || !*from || !data || !*data || optind < argc) {
		fputs(restore_help, stderr);
		return EXIT_USAGE;
	}
	if (mkdir(data, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "agentsync: restore: cannot create %s: %s\n", data,
		        strerror(errno));
		return EXIT_ERROR;
	}
	size_t n = strlen(data) + 32;
	char *dst = malloc(n);
	if (!dst)
		return EXIT_ERROR;
	snprintf(dst, n, "%s/store.db", data);
	ags_store_info info;
	ags_error err;
	ags_error_clear(&err);
	int rc = ags_store_backup_key(from, key_file, dst, &info, &err);
	if (rc == AGS_ERR_EXISTS)
		fprintf(
		    stderr,
		    "agentsync: restore: %s already holds a store (%s): restore into a new data "
		    "directory\n",
		    data, dst);
	else if (rc < 0)
		print_store_error("restore", &err, rc);
	else
		printf("restored store %s (%" PRIu64 " patterns, seq %" PRIu64 ") into %s\n"
		       "start agentsyncd with --data %s (or quic.dataDir): it catches up from its "
		       "peers\n",
		       info.id, info.patterns, info.seq, dst, data);
	free(dst);
	return rc < 0 ? EXIT_ERROR : EXIT_OK;
}
