/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ags_store_rekey: encrypting, re-keying or decrypting a store that no
 * process has open, crash-safe. The store is made a single file (its WAL
 * checkpointed and removed), copied with SQLCipher's sqlcipher_export into
 * "<path>.rekey" under the new key, the copy synced and checked against the
 * original, and renamed over it. At every moment the name `path` is either
 * the old store or the new one, each whole and without a WAL of the other.
 */
#include <errno.h>
#include <fcntl.h>
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

#define REKEY_PATH_MAX 4000

static int db_fail(sqlite3 *db, int rc, const char *path, const char *what, ags_error *err)
{
	return ags_error_set(err, rc == SQLITE_NOMEM ? AGS_ERR_NOMEM : AGS_ERR_STORE, NULL,
	                     "%s: %s: %s (sqlite %d)", path, what, db ? sqlite3_errmsg(db) : "",
	                     rc);
}

/* Removes a copy left by an earlier, interrupted call (and its journal files). */
static void remove_copy(const char *tmp)
{
	static const char *const sfx[] = {"", "-journal", "-wal", "-shm"};
	char p[REKEY_PATH_MAX + 32];
	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", tmp, sfx[i]);
		(void)unlink(p);
	}
}

/* The single value of a PRAGMA that answers one row, as text, into out. */
static int pragma_text(sqlite3 *db, const char *sql, char *out, size_t cap)
{
	sqlite3_stmt *st = NULL;
	out[0] = '\0';
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(st, 0);
		snprintf(out, cap, "%s", t ? t : "");
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc;
}

/*
 * Opens the old store keyed with `key`, checks the key, and takes the lock
 * that no other connection may share (locking mode EXCLUSIVE: a node that has
 * the store open makes it fail).
 */
static int open_locked(const char *path, const uint8_t *key, const char *key_file, sqlite3 **out,
                       ags_error *err)
{
	*out = NULL;
	sqlite3 *db = NULL;
	/* CREATE: ATTACH opens the copy with these flags (the store itself exists). */
	int rc = sqlite3_open_v2(
	    path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		int r = ags_error_set(
		    err, (rc & 0xff) == SQLITE_CANTOPEN ? AGS_ERR_IO : AGS_ERR_STORE, NULL,
		    "%s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return r;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	int r = ags_store_key_attach(db, "main", key, path, err);
	if (!r && (rc = sqlite3_exec(db, "PRAGMA locking_mode = EXCLUSIVE", NULL, NULL, NULL)))
		r = db_fail(db, rc, path, "cannot lock it", err);
	/* The first read: with another connection open it is refused (SQLITE_BUSY). */
	if (!r) {
		rc = sqlite3_exec(db, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL);
		if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED)
			r = ags_store_key_check(db, path, key ? key_file : NULL, err);
	}
	if (!r) {
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(db, "BEGIN EXCLUSIVE; COMMIT", NULL, NULL, NULL);
		if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
			r = ags_error_set(
			    err, AGS_ERR_STATE, NULL,
			    "%s is in use by another process (a running agentsyncd?): "
			    "stop it first",
			    path);
		else if (rc != SQLITE_OK)
			r = db_fail(db, rc, path, "cannot lock it", err);
	}
	if (r) {
		sqlite3_close(db);
		return r;
	}
	sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, NULL);
	*out = db;
	return 0;
}

/* The old store as one file: WAL copied in and removed (it is locked: nobody writes). */
static int make_single(sqlite3 *db, const char *path, ags_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, "PRAGMA wal_checkpoint(TRUNCATE)", -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		int busy = sqlite3_column_int(st, 0);
		rc = busy ? SQLITE_BUSY : SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_OK)
		return db_fail(db, rc, path, "cannot checkpoint its WAL", err);
	char mode[32];
	rc = pragma_text(db, "PRAGMA journal_mode = DELETE", mode, sizeof(mode));
	if (rc != SQLITE_OK)
		return db_fail(db, rc, path, "cannot leave WAL mode", err);
	if (strcmp(mode, "delete") != 0)
		return ags_error_set(err, AGS_ERR_STORE, NULL,
		                     "%s: cannot leave WAL mode (journal mode %s)", path, mode);
	return 0;
}

/* sqlcipher_export of the old store into tmp, keyed with `key` (NULL: plain). */
static int export_copy(sqlite3 *db, const char *tmp, const uint8_t *key, int schema, ags_error *err)
{
	char lit[72] = "";
	if (key) {
		lit[0] = 'x';
		lit[1] = '\'';
		ags_store_hex(key, AGS_STORE_KEY_BYTES, lit + 2);
		lit[2 + 2 * AGS_STORE_KEY_BYTES] = '\'';
		lit[3 + 2 * AGS_STORE_KEY_BYTES] = '\0';
	}
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, "ATTACH DATABASE ?1 AS rekey KEY ?2", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, tmp, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 2, lit, -1, SQLITE_TRANSIENT);
		rc = sqlite3_step(st);
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	sqlite3_finalize(st);
	gnutls_memset(lit, 0, sizeof(lit));
	if (rc != SQLITE_OK)
		return db_fail(db, rc, tmp, "cannot create the copy", err);
	int r = key ? ags_store_key_settings(db, "rekey", tmp, err) : 0;
	if (r) {
		(void)sqlite3_exec(db, "DETACH DATABASE rekey", NULL, NULL, NULL);
		return r;
	}
	char sql[96];
	snprintf(sql, sizeof(sql), "PRAGMA rekey.user_version = %d", schema);
	rc = sqlite3_exec(db, "SELECT sqlcipher_export('rekey')", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	r = rc == SQLITE_OK ? 0 : db_fail(db, rc, tmp, "cannot copy the store", err);
	rc = sqlite3_exec(db, "DETACH DATABASE rekey", NULL, NULL, NULL);
	if (!r && rc != SQLITE_OK)
		r = db_fail(db, rc, tmp, "cannot close the copy", err);
	return r;
}

/* The copy opens with the new key, checks, and holds what the old store holds. */
static int check_copy(const char *tmp, const uint8_t *key, const char *key_file,
                      const ags_store_info *want, ags_store_info *got, ags_error *err)
{
	sqlite3 *db = NULL;
	int r = ags_store_key_open(tmp, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, key, key_file,
	                           &db, err);
	if (r)
		return r;
	r = ags_store_read_info(db, tmp, got, err);
	sqlite3_close(db);
	if (r)
		return r;
	if (strcmp(got->id, want->id) != 0 || got->seq != want->seq ||
	    got->patterns != want->patterns || got->schema != want->schema)
		return ags_error_set(
		    err, AGS_ERR_STORE, NULL,
		    "%s: the copy does not match the store (id %s seq %llu "
		    "patterns %llu, not %s %llu %llu); the store is unchanged",
		    tmp, got->id, (unsigned long long)got->seq, (unsigned long long)got->patterns,
		    want->id, (unsigned long long)want->seq, (unsigned long long)want->patterns);
	return 0;
}

static void at(void (*step)(void *, int), void *ud, int s)
{
	if (step)
		step(ud, s);
}

int ags_store_rekey_steps(const char *path, const char *old_key_file, const char *new_key_file,
                          ags_store_info *info, void (*step)(void *ud, int s), void *ud,
                          ags_error *err)
{
	if (!path || !*path)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "a store path is required");
	if (!old_key_file && !new_key_file)
		return ags_error_set(err, AGS_ERR_INVALID, NULL,
		                     "%s: neither an old nor a new key file: nothing to do", path);
	if (old_key_file && new_key_file && strcmp(old_key_file, new_key_file) == 0)
		return ags_error_set(err, AGS_ERR_INVALID, NULL,
		                     "the old and the new key file are the same file (%s)",
		                     old_key_file);
	if (strlen(path) > REKEY_PATH_MAX)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "%s: path too long", path);
	struct stat sb;
	if (stat(path, &sb) < 0)
		return ags_error_set(err, errno == ENOENT ? AGS_ERR_NOT_FOUND : AGS_ERR_IO, NULL,
		                     "no store at %s: %s", path, strerror(errno));
	uint8_t okey[AGS_STORE_KEY_BYTES], nkey[AGS_STORE_KEY_BYTES];
	int r = 0;
	if (old_key_file)
		r = ags_store_key_load(old_key_file, okey, err);
	if (!r && new_key_file)
		r = ags_store_key_load(new_key_file, nkey, err);
	if (r)
		goto wipe;
	const uint8_t *ok = old_key_file ? okey : NULL, *nk = new_key_file ? nkey : NULL;
	char tmp[REKEY_PATH_MAX + 16];
	snprintf(tmp, sizeof(tmp), "%s.rekey", path);
	remove_copy(tmp);

	sqlite3 *db = NULL;
	if ((r = open_locked(path, ok, old_key_file, &db, err)))
		goto wipe;
	at(step, ud, AGS_REKEY_LOCKED);
	ags_store_info before, after;
	if ((r = ags_store_read_info(db, path, &before, err)) || (r = make_single(db, path, err)))
		goto close;
	at(step, ud, AGS_REKEY_SINGLE);
	if ((r = export_copy(db, tmp, nk, before.schema, err)))
		goto close;
	at(step, ud, AGS_REKEY_EXPORTED);
	/* The copy gets the old file's mode and owner (a root shell encrypting the
	 * store of a daemon that runs as its own user). */
	if (chmod(tmp, sb.st_mode & 07777) < 0 ||
	    (chown(tmp, sb.st_uid, sb.st_gid) < 0 && errno != EPERM) || ags_file_sync(tmp, 0) < 0) {
		r = ags_error_set(err, AGS_ERR_IO, NULL, "%s: %s", tmp, strerror(errno));
		goto close;
	}
	at(step, ud, AGS_REKEY_SYNCED);
	if ((r = check_copy(tmp, nk, new_key_file, &before, &after, err)))
		goto close;
	at(step, ud, AGS_REKEY_CHECKED);
	/* The old store is one file now and nobody else has it open: closing it
	 * writes nothing, and then the name moves to the copy. */
	sqlite3_close(db);
	db = NULL;
	char shm[REKEY_PATH_MAX + 16];
	snprintf(shm, sizeof(shm), "%s-shm", path);
	(void)unlink(shm);
	if (rename(tmp, path) < 0) {
		r = ags_error_set(err, AGS_ERR_IO, NULL, "cannot rename %s to %s: %s", tmp, path,
		                  strerror(errno));
		goto close;
	}
	at(step, ud, AGS_REKEY_RENAMED);
	char dir[REKEY_PATH_MAX + 1];
	snprintf(dir, sizeof(dir), "%s", path);
	if (ags_file_sync(dirname(dir), 1) < 0) {
		r = ags_error_set(err, AGS_ERR_IO, NULL, "%s: cannot sync its directory: %s", path,
		                  strerror(errno));
		goto close;
	}
	remove_copy(tmp); /* its journal, if SQLite left one */
	at(step, ud, AGS_REKEY_DONE);
	if (info) {
		*info = after;
		info->bytes = stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
	}
close:
	sqlite3_close(db);
	if (r)
		remove_copy(tmp);
wipe:
	gnutls_memset(okey, 0, sizeof(okey));
	gnutls_memset(nkey, 0, sizeof(nkey));
	return r;
}

AGS_EXPORT int ags_store_rekey(const char *path, const char *old_key_file, const char *new_key_file,
                               ags_store_info *info, ags_error *err)
{
	return ags_store_rekey_steps(path, old_key_file, new_key_file, info, NULL, NULL, err);
}
