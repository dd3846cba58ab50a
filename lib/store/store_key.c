/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Encryption at rest: the store's key file and how a connection is keyed.
 * The store is linked with SQLCipher, SQLite with every page of the
 * database and of its WAL encrypted (AES-256-CBC, HMAC-SHA512 per page, a
 * random salt in the first 16 bytes of the file). A key file holds a 256-bit
 * key, used as SQLCipher's raw key (no passphrase derivation: the key is
 * already random). Without a key SQLCipher reads and writes ordinary
 * SQLite 3 files, so plain stores are unchanged. docs/ARCHITECTURE.md,
 * "Encryption at rest".
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <sqlite3.h>

#include "error.h"
#include "file.h"
#include "store_int.h"

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int ags_store_key_load(const char *key_file, uint8_t key[AGS_STORE_KEY_BYTES], ags_error *err)
{
	if (!key_file || !*key_file)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "no key file given");
	char *buf = NULL;
	size_t len = 0;
	ags_error e;
	ags_error_clear(&e);
	/* A key file is small: anything larger is not one. */
	int r = ags_file_read(key_file, 4096, &buf, &len, &e);
	if (r == AGS_ERR_NOMEM)
		return ags_error_set(err, r, NULL, NULL);
	if (r)
		return ags_error_set(err, AGS_ERR_IO, NULL, "store key file %s: %s", key_file,
		                     e.message);
	size_t n = len;
	if (n && buf[n - 1] == '\n')
		n--;
	if (n && buf[n - 1] == '\r')
		n--;
	int ok = 0;
	if (n == 2 * AGS_STORE_KEY_BYTES) {
		ok = 1;
		for (size_t i = 0; i < AGS_STORE_KEY_BYTES && ok; i++) {
			int hi = hexval((unsigned char)buf[2 * i]);
			int lo = hexval((unsigned char)buf[2 * i + 1]);
			ok = hi >= 0 && lo >= 0;
			if (ok)
				key[i] = (uint8_t)((unsigned)hi << 4 | (unsigned)lo);
		}
	} else if (len == AGS_STORE_KEY_BYTES) {
		memcpy(key, buf, AGS_STORE_KEY_BYTES);
		ok = 1;
	}
	gnutls_memset(buf, 0, len);
	free(buf);
	if (!ok) {
		gnutls_memset(key, 0, AGS_STORE_KEY_BYTES);
		return ags_error_set(err, AGS_ERR_INVALID, NULL,
		                     "store key file %s: must hold a 256-bit key: 64 hex digits "
		                     "(e.g. made with `openssl rand -hex 32`) or 32 raw bytes, "
		                     "got %zu bytes",
		                     key_file, len);
	}
	return 0;
}

/* The raw-key literal SQLCipher takes: x'<64 hex digits>' (out: 68 bytes + NUL). */
static void key_literal(const uint8_t key[AGS_STORE_KEY_BYTES], char out[72])
{
	out[0] = 'x';
	out[1] = '\'';
	ags_store_hex(key, AGS_STORE_KEY_BYTES, out + 2);
	out[2 + 2 * AGS_STORE_KEY_BYTES] = '\'';
	out[3 + 2 * AGS_STORE_KEY_BYTES] = '\0';
}

/* One value of a PRAGMA (or any single-value query) into out ("" for none). */
static int query_text(sqlite3 *db, const char *sql, char *out, size_t cap)
{
	sqlite3_stmt *st = NULL;
	out[0] = '\0';
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			const char *t = (const char *)sqlite3_column_text(st, 0);
			snprintf(out, cap, "%s", t ? t : "");
			rc = SQLITE_OK;
		} else if (rc == SQLITE_DONE) {
			rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(st);
	return rc;
}

int ags_store_key_attach(sqlite3 *db, const char *schema, const uint8_t *key, const char *path,
                         ags_error *err)
{
	char lit[72], ver[64];
	/* Plain SQLite takes PRAGMA key as an unknown pragma and ignores it: make
	 * sure this is SQLCipher, or the store would be written in the clear. */
	int rc = query_text(db, "PRAGMA cipher_version", ver, sizeof(ver));
	if (rc != SQLITE_OK || !ver[0])
		return ags_error_set(err, AGS_ERR_STORE, NULL,
		                     "%s: this build's SQLite has no encryption (not SQLCipher: "
		                     "%s): an encrypted store cannot be opened",
		                     path, sqlite3_libversion());
	/* SQLCipher logs a failed page check to stderr; a library does not print
	 * (the caller gets the error). The level is the process's. */
	(void)sqlite3_exec(db, "PRAGMA cipher_log_level = NONE", NULL, NULL, NULL);
	if (!key)
		return 0;
	key_literal(key, lit);
	char *sql = sqlite3_mprintf("PRAGMA %w.key = %Q", schema, lit);
	gnutls_memset(lit, 0, sizeof(lit));
	if (!sql)
		return ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
	rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	gnutls_memset(sql, 0, strlen(sql));
	sqlite3_free(sql);
	if (rc != SQLITE_OK)
		return ags_error_set(err, AGS_ERR_STORE, NULL, "%s: cannot set the key: %s", path,
		                     sqlite3_errmsg(db));
	return ags_store_key_settings(db, schema, path, err);
}

int ags_store_key_settings(sqlite3 *db, const char *schema, const char *path, ags_error *err)
{
	/* HMAC-SHA256 instead of SQLCipher 4's default HMAC-SHA512: as strong for
	 * page authentication, and several times faster where the CPU has SHA
	 * instructions (store_bench: docs/ARCHITECTURE.md, "Encryption at rest").
	 * Not stored in the file: every connection to a store sets it. */
	char *sql = sqlite3_mprintf("PRAGMA %w.cipher_hmac_algorithm = HMAC_SHA256", schema);
	if (!sql)
		return ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	sqlite3_free(sql);
	if (rc != SQLITE_OK)
		return ags_error_set(err, AGS_ERR_STORE, NULL, "%s: cannot set the cipher: %s",
		                     path, sqlite3_errmsg(db));
	return 0;
}

int ags_store_key_check(sqlite3 *db, const char *path, const char *key_file, ags_error *err)
{
	/* The first read of page 1: a wrong key (or a key for a plain file, or no
	 * key for an encrypted one) fails here, before anything is written. */
	int rc = sqlite3_exec(db, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		return 0;
	if ((rc & 0xff) != SQLITE_NOTADB)
		return ags_error_set(err,
		                     (rc & 0xff) == SQLITE_CANTOPEN ? AGS_ERR_IO : AGS_ERR_STORE,
		                     NULL, "%s: %s (sqlite %d)", path, sqlite3_errmsg(db), rc);
	if (key_file)
		return ags_error_set(err, AGS_ERR_AUTH, NULL,
		                     "%s cannot be read with the key in %s: a wrong key, or the "
		                     "store is not encrypted (`agentsync store encrypt` encrypts "
		                     "a plain store)",
		                     path, key_file);
	return ags_error_set(err, AGS_ERR_STORE, NULL,
	                     "%s is not a plain SQLite database: an encrypted store (give its "
	                     "key file: storage.encryption.keyFile, or "
	                     "AGENTSYNC_STORE_KEY_FILE) or not a store at all",
	                     path);
}

int ags_store_key_open(const char *path, int flags, const uint8_t *key, const char *key_file,
                       sqlite3 **out, ags_error *err)
{
	*out = NULL;
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, flags, NULL);
	if (rc != SQLITE_OK) {
		int code = (rc & 0xff) == SQLITE_CANTOPEN ? AGS_ERR_IO
		           : rc == SQLITE_NOMEM           ? AGS_ERR_NOMEM
		                                          : AGS_ERR_STORE;
		int r = ags_error_set(err, code, NULL, "%s: %s", path,
		                      db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return r;
	}
	sqlite3_extended_result_codes(db, 1);
	/* Until the key is known to be right, closing must not checkpoint a WAL
	 * left by a crash into the database file: nothing changes on disk. */
	sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	int r = ags_store_key_attach(db, "main", key, path, err);
	if (!r)
		r = ags_store_key_check(db, path,
		                        key ? (key_file ? key_file : "(key given)") : NULL, err);
	if (r) {
		sqlite3_close(db);
		return r;
	}
	sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, NULL);
	*out = db;
	return 0;
}
