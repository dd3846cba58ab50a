/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Online backups of a store and their checks (ags_store_backup,
 * ags_store_inspect): SQLite's backup API on a connection of its own, so the
 * node that owns the store goes on writing while the copy is made. Used by
 * the daemon's GET /v1/backup and by `agentsync restore`.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <sqlite3.h>

#include "error.h"
#include "file.h"
#include "store.h"
#include "store_int.h"

const char *ags_store_path(const ags_store *s)
{
	const char *p = s && s->db ? sqlite3_db_filename(s->db, "main") : NULL;
	return p ? p : "";
}

/* Longest path accepted (the temporary name adds a suffix). */
#define BACKUP_PATH_MAX 4000

static int sqlite_error(ags_error *err, sqlite3 *db, int rc, const char *path, const char *what)
{
	const char *m = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
	int code = rc == SQLITE_NOMEM               ? AGS_ERR_NOMEM
	           : (rc & 0xff) == SQLITE_CANTOPEN ? AGS_ERR_IO
	                                            : AGS_ERR_STORE;
	return ags_error_set(err, code, NULL, "%s: %s: %s (sqlite %d)", path, what, m, rc);
}

/* Reads the checks and the meta table of an open connection into info. */
int ags_store_read_info(sqlite3 *db, const char *path, ags_store_info *info, ags_error *err)
{
	memset(info, 0, sizeof(*info));
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, "PRAGMA quick_check(1)", -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *r = (const char *)sqlite3_column_text(st, 0);
		if (!r || strcmp(r, "ok") != 0) {
			int e = ags_error_set(err, AGS_ERR_STORE, NULL, "%s: damaged: %s", path,
			                      r ? r : "quick_check failed");
			sqlite3_finalize(st);
			return e;
		}
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_OK)
		return rc == SQLITE_NOTADB
		           ? ags_error_set(err, AGS_ERR_STORE, NULL,
		                           "%s: not an SQLite database (not an agentsync store)",
		                           path)
		           : sqlite_error(err, db, rc, path, "cannot check it");

	rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		info->schema = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (info->schema < 1)
		return ags_error_set(
		    err, AGS_ERR_STORE, NULL,
		    "%s: an SQLite database, but not an agentsync store (no schema "
		    "version)",
		    path);
	if (info->schema > AGS_STORE_SCHEMA_VERSION)
		return ags_error_set(
		    err, AGS_ERR_STORE, NULL,
		    "%s: store schema version %d is newer than this build supports "
		    "(%d); use a newer agentsync",
		    path, info->schema, AGS_STORE_SCHEMA_VERSION);

	rc = sqlite3_prepare_v2(db, "SELECT k, v FROM meta WHERE k IN ('store_id', 'seq', 'live')",
	                        -1, &st, NULL);
	if (rc != SQLITE_OK)
		return ags_error_set(err, AGS_ERR_STORE, NULL,
		                     "%s: not an agentsync store (no meta table): %s", path,
		                     sqlite3_errmsg(db));
	unsigned have = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(st, 0);
		if (k && strcmp(k, "store_id") == 0 && sqlite3_column_bytes(st, 1) == 32) {
			memcpy(info->id, sqlite3_column_text(st, 1), 32);
			info->id[32] = '\0';
			have |= 1;
		} else if (k && strcmp(k, "seq") == 0) {
			info->seq = (uint64_t)sqlite3_column_int64(st, 1);
			have |= 2;
		} else if (k && strcmp(k, "live") == 0) {
			info->patterns = (uint64_t)sqlite3_column_int64(st, 1);
			have |= 4;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sqlite_error(err, db, rc, path, "cannot read the meta table");
	if (have != 7)
		return ags_error_set(err, AGS_ERR_STORE, NULL,
		                     "%s: the meta table lacks %s (damaged store)", path,
		                     !(have & 1)   ? "store_id"
		                     : !(have & 2) ? "seq"
		                                   : "live");
	return 0;
}

/* Opens `path` read-only (it must exist), keyed with `key` (NULL: plain). */
static int open_ro(const char *path, const uint8_t *key, const char *key_file, sqlite3 **db,
                   ags_error *err)
{
	struct stat sb;
	if (stat(path, &sb) < 0)
		return ags_error_set(err, errno == ENOENT ? AGS_ERR_NOT_FOUND : AGS_ERR_IO, NULL,
		                     "%s: %s", path, strerror(errno));
	if (!S_ISREG(sb.st_mode))
		return ags_error_set(err, AGS_ERR_IO, NULL, "%s: not a regular file", path);
	*db = NULL;
	int rc = sqlite3_open_v2(path, db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		int r = sqlite_error(err, *db, rc, path, "cannot open it");
		sqlite3_close(*db);
		*db = NULL;
		return r;
	}
	sqlite3_extended_result_codes(*db, 1);
	sqlite3_busy_timeout(*db, 5000);
	int r = ags_store_key_attach(*db, "main", key, path, err);
	/* Without a key, a file that is not a database is read_info's to name. */
	if (!r && key)
		r = ags_store_key_check(*db, path, key_file ? key_file : "(key given)", err);
	if (r) {
		sqlite3_close(*db);
		*db = NULL;
	}
	return r;
}

/* The key of key_file into key; *k = key, or NULL when key_file is NULL. */
static int load_key(const char *key_file, uint8_t key[AGS_STORE_KEY_BYTES], const uint8_t **k,
                    ags_error *err)
{
	*k = NULL;
	if (!key_file)
		return 0;
	int r = ags_store_key_load(key_file, key, err);
	if (!r)
		*k = key;
	return r;
}

AGS_EXPORT int ags_store_inspect(const char *path, ags_store_info *info, ags_error *err)
{
	return ags_store_inspect_key(path, NULL, info, err);
}

AGS_EXPORT int ags_store_inspect_key(const char *path, const char *key_file, ags_store_info *info,
                                     ags_error *err)
{
	if (!path || !*path || !info)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "path and info are required");
	uint8_t kb[AGS_STORE_KEY_BYTES];
	const uint8_t *key = NULL;
	int r = load_key(key_file, kb, &key, err);
	if (r)
		return r;
	sqlite3 *db = NULL;
	r = open_ro(path, key, key_file, &db, err);
	gnutls_memset(kb, 0, sizeof(kb));
	if (r)
		return r;
	r = ags_store_read_info(db, path, info, err);
	sqlite3_close(db);
	struct stat sb;
	if (!r && stat(path, &sb) == 0)
		info->bytes = (uint64_t)sb.st_size;
	return r;
}

AGS_EXPORT int ags_store_backup(const char *src, const char *dst, ags_store_info *info,
                                ags_error *err)
{
	return ags_store_backup_raw(src, NULL, dst, info, err);
}

AGS_EXPORT int ags_store_backup_key(const char *src, const char *key_file, const char *dst,
                                    ags_store_info *info, ags_error *err)
{
	uint8_t kb[AGS_STORE_KEY_BYTES];
	const uint8_t *key = NULL;
	int r = load_key(key_file, kb, &key, err);
	if (!r)
		r = ags_store_backup_raw(src, key, dst, info, err);
	gnutls_memset(kb, 0, sizeof(kb));
	return r;
}

int ags_store_key_of(const ags_store *s, uint8_t key[AGS_STORE_KEY_BYTES])
{
	if (!s || !s->keyed)
		return 0;
	memcpy(key, s->key, AGS_STORE_KEY_BYTES);
	return 1;
}

int ags_store_backup_raw(const char *src, const uint8_t *key, const char *dst, ags_store_info *info,
                         ags_error *err)
{
	if (!src || !*src || !dst || !*dst)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "src and dst are required");
	if (strlen(dst) > BACKUP_PATH_MAX)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "%s: path too long", dst);
	struct stat sb;
	if (lstat(dst, &sb) == 0)
		return ags_error_set(err, AGS_ERR_EXISTS, NULL,
		                     "%s exists: a backup or restore never overwrites a file", dst);
	ags_store_info local;
	memset(&local, 0, sizeof(local));
	ags_store_info *out = info ? info : &local;
	sqlite3 *from = NULL, *to = NULL;
	int r = open_ro(src, key, NULL, &from, err);
	if (r)
		return r;
	/* The source must be a store; checked inside the backup's own snapshot below. */
	char tmp[BACKUP_PATH_MAX + 16];
	snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", dst);
	int fd = mkstemp(tmp);
	if (fd < 0) {
		r = ags_error_set(err, AGS_ERR_IO, NULL, "%s: cannot create a file beside it: %s",
		                  dst, strerror(errno));
		sqlite3_close(from);
		return r;
	}
	close(fd); /* mode 0600 from mkstemp; SQLite opens it by name */
	int rc = sqlite3_open_v2(tmp, &to, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		r = sqlite_error(err, to, rc, tmp, "cannot open the copy");
		goto fail;
	}
	/* The copy is encrypted with the source's key (SQLCipher copies pages between
	 * databases of the same key). */
	if ((r = ags_store_key_attach(to, "main", key, tmp, err)))
		goto fail;
	sqlite3_backup *b = sqlite3_backup_init(to, "main", from, "main");
	if (!b) {
		r = sqlite_error(err, to, sqlite3_errcode(to), src, "cannot start the backup");
		goto fail;
	}
	/* All pages in one step: one read transaction, so one consistent snapshot. */
	rc = sqlite3_backup_step(b, -1);
	int frc = sqlite3_backup_finish(b);
	if (rc != SQLITE_DONE) {
		r = rc == SQLITE_NOTADB
		        ? ags_error_set(err, AGS_ERR_STORE, NULL,
		                        "%s: not an SQLite database (not an agentsync "
		                        "store)",
		                        src)
		        : sqlite_error(err, from, rc, src, "the backup failed");
		goto fail;
	}
	if (frc != SQLITE_OK) {
		r = sqlite_error(err, to, frc, tmp, "the backup failed");
		goto fail;
	}
	/* One self-contained file: no -wal or -shm needed beside it. */
	rc = sqlite3_exec(to, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		r = sqlite_error(err, to, rc, tmp, "cannot make it a single file");
		goto fail;
	}
	if ((r = ags_store_read_info(to, src, out, err)))
		goto fail;
	sqlite3_close(from);
	from = NULL;
	rc = sqlite3_close(to);
	to = NULL;
	if (rc != SQLITE_OK) {
		r = ags_error_set(err, AGS_ERR_STORE, NULL, "%s: cannot close the copy (sqlite %d)",
		                  tmp, rc);
		goto fail;
	}
	if (ags_file_sync(tmp, 0) < 0 || stat(tmp, &sb) < 0) {
		r = ags_error_set(err, AGS_ERR_IO, NULL, "%s: cannot sync the copy: %s", tmp,
		                  strerror(errno));
		goto fail;
	}
	out->bytes = (uint64_t)sb.st_size;
	/* link() refuses an existing dst, so a file made meanwhile is never replaced. */
	if (link(tmp, dst) < 0) {
		r = ags_error_set(err, errno == EEXIST ? AGS_ERR_EXISTS : AGS_ERR_IO, NULL,
		                  "%s: cannot create it: %s", dst, strerror(errno));
		goto fail;
	}
	unlink(tmp);
	char dir[BACKUP_PATH_MAX + 1];
	snprintf(dir, sizeof(dir), "%s", dst);
	if (ags_file_sync(dirname(dir), 1) < 0) {
		r = ags_error_set(err, AGS_ERR_IO, NULL, "%s: cannot sync its directory: %s", dst,
		                  strerror(errno));
		unlink(dst);
		return r;
	}
	return 0;
fail:
	sqlite3_close(to);
	sqlite3_close(from);
	unlink(tmp);
	return r;
}
