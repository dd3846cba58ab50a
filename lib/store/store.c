/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The durable store: one SQLite database in WAL mode holding the newest
 * change of every pattern id, with a change-log sequence, an order-independent
 * digest of the live content, and a small key/value state table. The schema,
 * the apply rules and the digest are described in docs/ARCHITECTURE.md
 * (section "Store"). This file: helpers, the digest, open, migrations and
 * close; writes are in store_apply.c, reads in store_read.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <sqlite3.h>

#include "agentsync/agentsync.h"
#include "delta.h"
#include "error.h"
#include "pattern.h"
#include "store.h"
#include "store_ckpt.h"
#include "store_int.h"
#include "vclock.h"

/* Losing versions of conflicts (schema version 2). */
#define CONFLICTS_SQL                                                                              \
	"CREATE TABLE conflicts("                                                                  \
	" cseq INTEGER PRIMARY KEY,"                                                               \
	" id TEXT NOT NULL,"                                                                       \
	" at INTEGER NOT NULL,"                                                                    \
	" winner_version INTEGER NOT NULL,"                                                        \
	" winner_checksum TEXT NOT NULL,"                                                          \
	" winner_origin TEXT,"                                                                     \
	" loser_version INTEGER NOT NULL,"                                                         \
	" loser_ts INTEGER NOT NULL,"                                                              \
	" loser_checksum TEXT NOT NULL,"                                                           \
	" loser_origin TEXT,"                                                                      \
	" loser_vc TEXT,"                                                                          \
	" loser_st INTEGER NOT NULL,"                                                              \
	" loser_body TEXT);"

/* The version a large record's last update replaced, a delta base (schema version 3). */
#define PREV_SQL                                                                                   \
	"CREATE TABLE prev("                                                                       \
	" id TEXT PRIMARY KEY,"                                                                    \
	" version INTEGER NOT NULL,"                                                               \
	" checksum TEXT NOT NULL,"                                                                 \
	" seq INTEGER NOT NULL,"                                                                   \
	" body TEXT NOT NULL) WITHOUT ROWID;"

static const char schema_sql[] =
    /* The store's counters and, under "s." keys, the key/value state (schema
     * version 5): one small b-tree, so a commit that moves the sequence and
     * a cursor writes one page for both, not two. */
    "CREATE TABLE meta(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
    /* The rowid is the change-log sequence: the log is read in rowid order and
     * new changes are appended at the end of the table b-tree. */
    "CREATE TABLE patterns("
    " seq INTEGER PRIMARY KEY,"
    " id TEXT NOT NULL,"
    " version INTEGER NOT NULL,"
    " ts INTEGER NOT NULL,"
    " checksum TEXT NOT NULL,"
    " st INTEGER NOT NULL,"
    " expires_at INTEGER,"
    " origin TEXT,"
    " scope TEXT,"
    /* type, agentId, tags and priority are read from the body: columns for
     * them cost every apply more than they save the (rarer) queries. */
    " body TEXT,"
    " vc TEXT," /* the record's vector clock (JSON object), NULL when none */
    /* metadata.priority (NULL = none): a sender orders its backlog by it
     * without parsing bodies (schema version 4). */
    " prio INTEGER);"
    "CREATE UNIQUE INDEX patterns_id ON patterns(id);"
    /* Only live rows that can expire: costs nothing for the others, and makes
     * sweep and count O(expiring rows) instead of a full scan. */
    "CREATE INDEX patterns_expiry ON patterns(expires_at)"
    " WHERE st = 0 AND expires_at IS NOT NULL;" CONFLICTS_SQL PREV_SQL
    "INSERT INTO meta(k, v) VALUES('seq', 0), ('live', 0), ('digest', zeroblob(32));";

/* Schema version 1 -> 2: record clocks and the conflicts table. */
static const char migrate_v2_sql[] = "ALTER TABLE patterns ADD COLUMN vc TEXT;" CONFLICTS_SQL;
/* Schema version 2 -> 3: delta bases. */
static const char migrate_v3_sql[] = PREV_SQL;
/* Schema version 3 -> 4: priorities beside the bodies (validated integers 1-10). */
static const char migrate_v4_sql[] =
    "ALTER TABLE patterns ADD COLUMN prio INTEGER;"
    "UPDATE patterns SET prio = json_extract(body, '$.metadata.priority')"
    " WHERE st = 0 AND body IS NOT NULL AND instr(body, '\"priority\":') > 0;";
/* Schema version 4 -> 5: the state table's rows move into meta. */
static const char migrate_v5_sql[] = "INSERT INTO meta(k, v) SELECT 's.' || k, v FROM state;"
                                     "DROP TABLE state;";

/* Live and not past expiresAt at ?2. */
#define LIVE_AT_2 "st = 0 AND (expires_at IS NULL OR expires_at > ?2)"

const char *const ags_store_sql[ST__COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_HEAD] = "SELECT seq, version, ts, checksum, st, expires_at, origin, vc FROM patterns"
                " WHERE id = ?1",
    [ST_INSERT] = "INSERT INTO patterns(seq, id, version, ts, checksum, st, expires_at, origin,"
                  " scope, body, vc, prio)"
                  " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?12, ?13)"
                  " ON CONFLICT(id) DO NOTHING",
    [ST_REPLACE] = "UPDATE patterns SET seq = ?1, version = ?3, ts = ?4, checksum = ?5, st = ?6,"
                   " expires_at = ?7, origin = ?8, scope = ?9, body = ?10, vc = ?12, prio = ?13"
                   " WHERE seq = ?11 AND id = ?2",
    [ST_META_PUT] = "INSERT OR REPLACE INTO meta(k, v) VALUES('seq', ?1), ('digest', ?2),"
                    " ('live', ?3)",
    [ST_STATE_PUT] = "INSERT INTO meta(k, v) VALUES('s.' || ?1, ?2)"
                     " ON CONFLICT(k) DO UPDATE SET v = excluded.v",
    [ST_STATE_GET] = "SELECT v FROM meta WHERE k = 's.' || ?1",
    [ST_STATE_DEL] = "DELETE FROM meta WHERE k = 's.' || ?1",
    [ST_GET] = "SELECT seq, body FROM patterns WHERE id = ?1 AND " LIVE_AT_2,
    [ST_QUERY] = "SELECT " ROW_COLS " FROM patterns WHERE seq > ?1 AND " LIVE_AT_2
                 " AND (?3 IS NULL OR instr(body, ?3) > 0) AND (?4 IS NULL OR instr(body, ?4) > 0)"
                 " AND (?5 IS NULL OR instr(body, ?5) > 0) ORDER BY seq",
    [ST_CHANGES] = "SELECT " ROW_COLS " FROM patterns WHERE seq > ?1 AND (st = 1 OR (" LIVE_AT_2
                   ")) ORDER BY seq",
    [ST_ROWS] = "SELECT " ROW_COLS ", prio FROM patterns WHERE seq > ?1 AND (st = 1 OR (" LIVE_AT_2
                ")) AND (?3 IS NULL OR origin IS NULL OR origin <> ?3)"
                " ORDER BY seq LIMIT ?4",
    [ST_META_SEQ] = "SELECT v FROM meta WHERE k = 'seq'",
    [ST_NEXT_SEQ] = "SELECT seq FROM patterns WHERE seq > ?1 AND (st = 1 OR (" LIVE_AT_2
                    ")) ORDER BY seq LIMIT 1",
    [ST_EXPIRED_COUNT] = "SELECT count(*) FROM patterns"
                         " WHERE st = 0 AND expires_at IS NOT NULL AND expires_at <= ?1",
    [ST_SWEEP] = "UPDATE patterns SET st = 2, body = NULL"
                 " WHERE st = 0 AND expires_at IS NOT NULL AND expires_at <= ?1"
                 " RETURNING id, version, checksum",
    /* The stored row lost: copy it before it is replaced. */
    [ST_CONFLICT_STORED] =
        "INSERT INTO conflicts(id, at, winner_version, winner_checksum, winner_origin,"
        " loser_version, loser_ts, loser_checksum, loser_origin, loser_vc, loser_st, loser_body)"
        " SELECT id, ?2, ?3, ?4, ?5, version, ts, checksum, origin, vc, st, body"
        " FROM patterns WHERE seq = ?1",
    [ST_CONFLICT_INCOMING] =
        "INSERT INTO conflicts(id, at, winner_version, winner_checksum, winner_origin,"
        " loser_version, loser_ts, loser_checksum, loser_origin, loser_vc, loser_st, loser_body)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    [ST_CONFLICTS] = "SELECT cseq, id, at, winner_version, winner_checksum, winner_origin,"
                     " loser_version, loser_ts, loser_checksum, loser_origin, loser_vc, loser_st,"
                     " loser_body FROM conflicts WHERE cseq > ?1 AND (?2 IS NULL OR"
                     " winner_origin = ?2 OR loser_origin = ?2) ORDER BY cseq",
    [ST_CONFLICT_COUNT] = "SELECT count(*), coalesce(max(cseq), 0) FROM conflicts",
    /* The live row at ?1 is about to be replaced: keep it when large enough. */
    [ST_PREV_SAVE] = "INSERT OR REPLACE INTO prev(id, version, checksum, seq, body)"
                     " SELECT id, version, checksum, seq, body FROM patterns"
                     " WHERE seq = ?1 AND st = 0 AND body IS NOT NULL"
                     " AND length(CAST(body AS BLOB)) >= ?2",
    [ST_PREV_DEL] = "DELETE FROM prev WHERE id = ?1",
    [ST_PREV_GET] = "SELECT version, checksum, seq, body FROM prev WHERE id = ?1",
    [ST_PREV_SWEEP] = "DELETE FROM prev WHERE id IN (SELECT id FROM patterns WHERE st != 0)",
    /* What ST_ROWS lists for peer ?3, less what came from it or a scope keeps from it
     * (a scope is "\x1f" + ids joined by "\x1f" + "\x1f"). */
    [ST_ROWS_FOR] = "SELECT count(*) FROM patterns WHERE seq > ?1 AND (st = 1 OR (" LIVE_AT_2
                    ")) AND (origin IS NULL OR origin <> ?3)"
                    " AND (scope IS NULL OR instr(scope, char(31) || ?3 || char(31)) > 0)",
};

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * WAL sizes in 4 KB frames: 4 MB waits for a 500 ms pause in the writes (or
 * 2 s at most), 128 MB is checkpointed at once, and at 512 MB the writer
 * does it itself. journal_size_limit is the hard size in bytes.
 */
#define CKPT_LIMIT_BYTES "134217728"
static const ags_ckpt_limits ckpt_defaults = {
    .soft_frames = 1024,
    .hard_frames = 32768,
    .writer_frames = 131072,
    .quiet_ms = 500,
    .max_wait_ms = 2000,
};

/* After every commit on this connection (sqlite3_wal_hook). */
static int wal_hook(void *ud, sqlite3 *db, const char *name, int frames)
{
	ags_store *s = ud;
	(void)name;
	if (!s->ckpt && !s->ckpt_failed && frames >= s->ckpt_lim.soft_frames) {
		struct ags_ckpt *c = NULL;
		if (ags_ckpt_start(sqlite3_db_filename(db, "main"), s->keyed ? s->key : NULL,
		                   &s->ckpt_lim, &c) != 0)
			s->ckpt_failed = 1;
		else
			__atomic_store_n(&s->ckpt, c, __ATOMIC_RELEASE); /* others read it */
	}
	if (s->ckpt)
		ags_ckpt_note(s->ckpt, frames);
	if (frames >= (s->ckpt ? s->ckpt_lim.writer_frames : s->ckpt_lim.soft_frames))
		(void)sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	return SQLITE_OK;
}

static const char hexdig[] = "0123456789abcdef";

void ags_store_hex(const uint8_t *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hexdig[in[i] >> 4];
		out[2 * i + 1] = hexdig[in[i] & 15];
	}
	out[2 * n] = '\0';
}

/* Remembers SQLite's message for `rc` and returns AGS_ERR_STORE (filling err if given). */
int ags_store_fail(ags_store *s, int rc, ags_error *err)
{
	const char *m = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
	snprintf(s->errmsg, sizeof(s->errmsg), "sqlite: %s (%d)", m ? m : sqlite3_errstr(rc), rc);
	return ags_error_set(err, AGS_ERR_STORE, NULL, "%s", s->errmsg);
}

/* Steps a statement that returns no rows, then resets it. Returns the SQLite code. */
int ags_store_step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

int64_t ags_store_clamp_seq(uint64_t seq)
{
	return seq > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)seq;
}

/* ------------------------------------------------------------------------ */
/* Digest: sum modulo 2^256 of SHA-256(id 0x00 version 0x00 checksum)       */
/* ------------------------------------------------------------------------ */

/* Writes v in decimal to buf (room for 21 bytes); returns the length. */
static size_t put_decimal(char *buf, int64_t v)
{
	char tmp[24];
	size_t n = 0, o = 0;
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		buf[o++] = '-';
	while (n)
		buf[o++] = tmp[--n];
	return o;
}

/* SHA-256(id 0x00 decimal-version 0x00 checksum-hex) into out, with the store's hash handle. */
void ags_store_digest_term(ags_store *s, const char *id, int64_t version, const char *checksum,
                           uint8_t out[32])
{
	char buf[AGS_PATTERN_ID_MAX + 1 + 24 + 1 + 64];
	size_t il = strlen(id), cl = strlen(checksum);
	if (il > AGS_PATTERN_ID_MAX)
		il = AGS_PATTERN_ID_MAX; /* cannot happen: ids are checked on apply */
	if (cl > 64)
		cl = 64;
	memcpy(buf, id, il);
	size_t n = il;
	buf[n++] = '\0';
	n += put_decimal(buf + n, version);
	buf[n++] = '\0';
	memcpy(buf + n, checksum, cl);
	n += cl;
	/* One handle for the store's life: gnutls_hash_output also resets it. */
	gnutls_hash(s->sha, buf, n);
	gnutls_hash_output(s->sha, out);
}

void ags_store_digest_add(uint8_t acc[32], const uint8_t t[32])
{
	unsigned carry = 0;
	for (int i = 31; i >= 0; i--) {
		unsigned v = (unsigned)acc[i] + t[i] + carry;
		acc[i] = (uint8_t)v;
		carry = v >> 8;
	}
}

void ags_store_digest_sub(uint8_t acc[32], const uint8_t t[32])
{
	int borrow = 0;
	for (int i = 31; i >= 0; i--) {
		int v = (int)acc[i] - t[i] - borrow;
		borrow = v < 0;
		acc[i] = (uint8_t)(v + (borrow ? 256 : 0));
	}
}

/* ------------------------------------------------------------------------ */
/* Open and close                                                           */
/* ------------------------------------------------------------------------ */

static int exec_sql(ags_store *s, const char *sql, ags_error *err)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : ags_store_fail(s, rc, err);
}

static int read_int(ags_store *s, const char *sql, int64_t *out, ags_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*out = sqlite3_column_int64(st, 0);
			rc = SQLITE_OK;
		}
	}
	if (rc != SQLITE_OK) {
		int r = ags_store_fail(s, rc, err);
		sqlite3_finalize(st);
		return r;
	}
	sqlite3_finalize(st);
	return 0;
}

/* Creates the schema and the store identity in a new database; inside a transaction. */
static int create_schema(ags_store *s, ags_error *err)
{
	uint8_t rnd[16];
	char hex[33];
	if (gnutls_rnd(GNUTLS_RND_RANDOM, rnd, sizeof(rnd)) < 0)
		return ags_error_set(err, AGS_ERR_INTERNAL, NULL, "gnutls_rnd failed");
	ags_store_hex(rnd, sizeof(rnd), hex);
	int r = exec_sql(s, schema_sql, err);
	if (r)
		return r;
	char sql[128];
	snprintf(sql, sizeof(sql),
	         "INSERT INTO meta(k, v) VALUES('store_id', '%s'); PRAGMA user_version = %d;", hex,
	         AGS_STORE_SCHEMA_VERSION);
	return exec_sql(s, sql, err);
}

/* Loads the store id, sequence, live count and digest from the meta table. */
static int load_meta(ags_store *s, ags_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(s->db, "SELECT k, v FROM meta", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return ags_store_fail(s, rc, err);
	unsigned have = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(st, 0);
		if (!k)
			continue;
		if (strcmp(k, "store_id") == 0 && sqlite3_column_bytes(st, 1) == 32) {
			memcpy(s->id, sqlite3_column_text(st, 1), 32);
			s->id[32] = '\0';
			have |= 1;
		} else if (strcmp(k, "seq") == 0) {
			s->seq = (uint64_t)sqlite3_column_int64(st, 1);
			have |= 2;
		} else if (strcmp(k, "live") == 0) {
			s->live = (uint64_t)sqlite3_column_int64(st, 1);
			have |= 4;
		} else if (strcmp(k, "digest") == 0 && sqlite3_column_type(st, 1) == SQLITE_BLOB &&
		           sqlite3_column_bytes(st, 1) == 32) {
			memcpy(s->digest, sqlite3_column_blob(st, 1), 32);
			have |= 8;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return ags_store_fail(s, rc, err);
	if (have != 15)
		return ags_error_set(err, AGS_ERR_STORE, NULL,
		                     "store meta table is incomplete (damaged store)");
	int64_t max = 0;
	int r = read_int(s, "SELECT coalesce(max(seq), 0) FROM patterns", &max, err);
	if (r)
		return r;
	if ((uint64_t)max > s->seq)
		return ags_error_set(err, AGS_ERR_STORE, NULL,
		                     "store meta seq %" PRIu64 " is behind row seq %" PRId64
		                     " (damaged store)",
		                     s->seq, max);
	return 0;
}

/* Sets up the connection, creates or checks the schema. */
static int setup(ags_store *s, const char *path, const ags_store_opts *opts, ags_error *err)
{
	/* The page size only matters for a new file; it is ignored otherwise. */
	int r = exec_sql(s, "PRAGMA page_size = 4096", err);
	if (r)
		return r;
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *mode = (const char *)sqlite3_column_text(st, 0);
		if (!mode || strcmp(mode, "wal") != 0) {
			sqlite3_finalize(st);
			return ags_error_set(err, AGS_ERR_STORE, NULL,
			                     "%s: cannot use WAL journal mode (got %s)", path,
			                     mode ? mode : "nothing");
		}
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_OK)
		return ags_store_fail(s, rc, err);
	r = exec_sql(s,
	             opts && opts->fsync_full ? "PRAGMA synchronous = FULL"
	                                      : "PRAGMA synchronous = NORMAL",
	             err);
	/* Checkpoints are the checkpointer's (wal_hook); a WAL left longer than
	 * its hard size is cut back to it when it restarts. */
	if (r || (r = exec_sql(s,
	                       "PRAGMA cache_size = -16384; PRAGMA temp_store = MEMORY; "
	                       "PRAGMA journal_size_limit = " CKPT_LIMIT_BYTES,
	                       err)))
		return r;
	s->ckpt_lim = ckpt_defaults;
	sqlite3_wal_hook(s->db, wal_hook, s);
	sqlite3_busy_timeout(s->db, 5000);

	if ((r = exec_sql(s, "BEGIN IMMEDIATE", err)))
		return r;
	int64_t ver = 0;
	r = read_int(s, "PRAGMA user_version", &ver, err);
	if (!r && ver > AGS_STORE_SCHEMA_VERSION)
		r = ags_error_set(err, AGS_ERR_STORE, NULL,
		                  "%s: store schema version %" PRId64
		                  " is newer than this build supports (%d); use a newer agentsync",
		                  path, ver, AGS_STORE_SCHEMA_VERSION);
	if (!r && ver == 0)
		r = create_schema(s, err);
	if (!r && ver >= 1 && ver <= 4) {
		char sql[64];
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d;", AGS_STORE_SCHEMA_VERSION);
		if (ver == 1)
			r = exec_sql(s, migrate_v2_sql, err);
		if (!r && ver <= 2)
			r = exec_sql(s, migrate_v3_sql, err);
		if (!r && ver <= 3)
			r = exec_sql(s, migrate_v4_sql, err);
		if (!r)
			r = exec_sql(s, migrate_v5_sql, err);
		if (!r)
			r = exec_sql(s, sql, err);
	}
	if (!r)
		r = exec_sql(s, "COMMIT", err);
	if (r) {
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		return r;
	}

	for (int i = 0; i < ST__COUNT; i++) {
		rc = sqlite3_prepare_v3(s->db, ags_store_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		                        &s->st[i], NULL);
		if (rc != SQLITE_OK)
			return ags_store_fail(s, rc, err);
	}
	int r2 = load_meta(s, err);
	__atomic_store_n(&s->committed, s->seq, __ATOMIC_RELEASE);
	return r2;
}

/*
 * The store holds every pattern: its files are for this user only. SQLite
 * creates a database with mode 0644 (less the umask) and gives the -wal and
 * -shm files the database's mode, so a new database is made here with 0600
 * first; files that exist already with group or other bits (an older
 * version, a copy) are narrowed to 0600.
 *
 * An existing file is never opened here: closing any descriptor of a file
 * drops every POSIX lock this process holds on it, so it would release the
 * locks of the store's other connections (the node opens three). Only a file
 * this call creates (O_EXCL) is opened and closed. Errors: AGS_ERR_IO.
 */
static int private_files(const char *path, ags_error *err)
{
	static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
	char p[4096];
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		if ((size_t)snprintf(p, sizeof(p), "%s%s", path, suffixes[i]) >= sizeof(p))
			return ags_error_set(err, AGS_ERR_IO, NULL, "%s: path too long", path);
		if (i == 0) {
			int fd =
			    open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
			if (fd >= 0) {
				close(fd); /* new: nobody holds a lock on it */
				continue;
			}
			if (errno != EEXIST)
				return ags_error_set(err, AGS_ERR_IO, NULL, "%s: %s", p,
				                     strerror(errno));
		}
		struct stat st;
		if (lstat(p, &st) != 0) {
			if (errno == ENOENT && i > 0)
				continue;
			return ags_error_set(err, AGS_ERR_IO, NULL, "%s: %s", p, strerror(errno));
		}
		if (!S_ISREG(st.st_mode))
			return ags_error_set(err, AGS_ERR_IO, NULL, "%s is not a regular file", p);
		if ((st.st_mode & 077) && chmod(p, 0600) != 0)
			return ags_error_set(
			    err, AGS_ERR_IO, NULL,
			    "%s is readable by other users (mode %04o) and cannot be "
			    "made 0600: %s",
			    p, (unsigned)(st.st_mode & 07777), strerror(errno));
	}
	return 0;
}

AGS_EXPORT int ags_store_open(const char *path, const ags_store_opts *opts, ags_store **out,
                              ags_error *err)
{
	if (!path || !*path || !out)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "path and out are required");
	*out = NULL;
	ags_store *s = calloc(1, sizeof(*s));
	if (!s)
		return ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
	int r;
	if (gnutls_hash_init(&s->sha, GNUTLS_DIG_SHA256) < 0) {
		s->sha = NULL;
		r = ags_error_set(err, AGS_ERR_INTERNAL, NULL, "SHA-256 is not available");
		goto fail;
	}
	const char *key_file = opts ? opts->key_file : NULL;
	if (key_file) {
		if ((r = ags_store_key_load(key_file, s->key, err)))
			goto fail;
		s->keyed = 1;
	}
	/* After the key is read: a bad key file leaves nothing on disk. */
	if ((r = private_files(path, err)))
		goto fail;
	if ((r = ags_store_key_open(
	         path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
	         s->keyed ? s->key : NULL, key_file, &s->db, err)))
		goto fail;
	if ((r = setup(s, path, opts, err)))
		goto fail;
	*out = s;
	return 0;
fail:
	ags_store_close(s);
	return r;
}

AGS_EXPORT void ags_store_close(ags_store *s)
{
	if (!s)
		return;
	ags_ckpt_stop(s->ckpt);
	for (int i = 0; i < ST__COUNT; i++)
		sqlite3_finalize(s->st[i]);
	sqlite3_close(s->db);
	if (s->sha)
		gnutls_hash_deinit(s->sha, NULL);
	gnutls_memset(s->key, 0, sizeof(s->key));
	free(s);
}

AGS_EXPORT const char *ags_store_id(const ags_store *s)
{
	return s ? s->id : "";
}

const char *ags_store_errmsg(const ags_store *s)
{
	return s ? s->errmsg : "";
}

AGS_EXPORT const char *ags_apply_outcome_name(int outcome)
{
	static const char *const names[] = {
	    [AGS_APPLY_INSERTED] = "inserted",
	    [AGS_APPLY_UPDATED] = "updated",
	    [AGS_APPLY_STALE] = "stale",
	    [AGS_APPLY_DUPLICATE] = "duplicate",
	    [AGS_APPLY_CONFLICT_WON] = "conflict_won",
	    [AGS_APPLY_CONFLICT_LOST] = "conflict_lost",
	};
	return outcome >= AGS_APPLY_INSERTED && outcome <= AGS_APPLY_CONFLICT_LOST ? names[outcome]
	                                                                           : "unknown";
}

/* ---- epochs (docs/PROTOCOL.md, "Store epochs") ---- */

/* Parses the "epochs" state value ("id start" pairs, comma-separated) into e. */
static size_t epochs_parse(const char *v, ags_store_epoch *e, size_t cap)
{
	size_t n = 0;
	const char *p = v;
	while (*p && n < cap) {
		char id[AGS_STORE_EPOCH_ID_LEN + 1];
		unsigned long long start = 0;
		int used = 0;
		if (sscanf(p, "%16[0-9a-f] %llu%n", id, &start, &used) != 2 ||
		    strlen(id) != AGS_STORE_EPOCH_ID_LEN || start < 1)
			break;
		snprintf(e[n].id, sizeof(e[n].id), "%s", id);
		e[n].start = start;
		n++;
		p += used;
		if (*p != ',')
			break;
		p++;
	}
	return n;
}

int ags_store_epoch_begin(ags_store *s, ags_store_epoch *out, size_t *n_out, ags_error *err)
{
	*n_out = 0;
	char *v = malloc(AGS_STORE_EPOCHS_MAX * (AGS_STORE_EPOCH_ID_LEN + 24) + 1);
	if (!v)
		return ags_error_set(err, AGS_ERR_NOMEM, NULL, "out of memory");
	size_t n = 0;
	if (ags_store_state_get(s, AGS_STORE_EPOCHS_KEY, v,
	                        AGS_STORE_EPOCHS_MAX * (AGS_STORE_EPOCH_ID_LEN + 24) + 1) == 0)
		n = epochs_parse(v, out, AGS_STORE_EPOCHS_MAX);
	/* A random id from SQLite's generator: the store layer's own. */
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(s->db, "SELECT lower(hex(randomblob(8)))", -1, &st, NULL);
	if (rc != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW ||
	    sqlite3_column_bytes(st, 0) != AGS_STORE_EPOCH_ID_LEN) {
		sqlite3_finalize(st);
		free(v);
		return ags_error_set(err, AGS_ERR_STORE, NULL, "cannot make an epoch id: %s",
		                     sqlite3_errmsg(s->db));
	}
	if (n == AGS_STORE_EPOCHS_MAX) {
		memmove(out, out + 1, (n - 1) * sizeof(*out));
		n--;
	}
	snprintf(out[n].id, sizeof(out[n].id), "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	/* The new epoch numbers what comes after everything this store holds now. */
	out[n].start = s->seq + 1;
	if (n && out[n].start < out[n - 1].start)
		out[n].start = out[n - 1].start; /* never below: the list stays ordered */
	n++;
	size_t len = 0;
	v[0] = '\0';
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(
		    v + len, AGS_STORE_EPOCHS_MAX * (AGS_STORE_EPOCH_ID_LEN + 24) + 1 - len,
		    "%s%s %llu", i ? "," : "", out[i].id, (unsigned long long)out[i].start);
	rc = ags_store_state_set(s, AGS_STORE_EPOCHS_KEY, v);
	free(v);
	if (rc)
		return ags_error_set(err, rc, NULL, "cannot save the store's epochs: %s",
		                     s->errmsg);
	*n_out = n;
	return 0;
}
