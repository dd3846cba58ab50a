/*
 * The durable store: one SQLite database in WAL mode holding the newest
 * change of every pattern id, with a change-log sequence, an order-independent
 * digest of the live content, and a small key/value state table. The schema,
 * the apply rules and the digest are described in docs/ARCHITECTURE.md
 * (section "Store").
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <sqlite3.h>

#include "agentsync/agentsync.h"
#include "delta.h"
#include "error.h"
#include "pattern.h"
#include "store.h"
#include "store_ckpt.h"
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

/* The prepared statements, kept for the life of the store. */
enum stmt_id {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_HEAD,
	ST_INSERT,
	ST_REPLACE,
	ST_META_PUT,
	ST_STATE_PUT,
	ST_STATE_GET,
	ST_STATE_DEL,
	ST_GET,
	ST_QUERY,
	ST_CHANGES,
	ST_ROWS,
	ST_META_SEQ,
	ST_NEXT_SEQ,
	ST_EXPIRED_COUNT,
	ST_SWEEP,
	ST_CONFLICT_STORED,
	ST_CONFLICT_INCOMING,
	ST_CONFLICTS,
	ST_CONFLICT_COUNT,
	ST_PREV_SAVE,
	ST_PREV_DEL,
	ST_PREV_GET,
	ST_PREV_SWEEP,
	ST__COUNT
};

/* Columns listed by ST_QUERY and ST_CHANGES, in this order. */
#define ROW_COLS "seq, id, version, ts, st, body, origin, scope, vc"

static const char *const stmt_sql[ST__COUNT] = {
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
};

/* Saved in-memory counters, restored when a transaction rolls back. */
struct snapshot {
	uint64_t seq, live;
	uint8_t digest[32];
};

struct ags_store {
	sqlite3 *db;
	sqlite3_stmt *st[ST__COUNT];
	unsigned char busy[ST__COUNT]; /* a listing is stepping it (re-entrancy guard) */
	uint64_t seq;                  /* highest sequence given */
	uint64_t committed;            /* seq as of the last commit (atomic: read without a lock) */
	uint64_t live;                 /* rows in state live (swept or not) */
	uint8_t digest[32];            /* big-endian 256-bit sum */
	char id[33];
	char errmsg[256];
	gnutls_hash_hd_t sha;     /* for digest terms */
	int group;                /* inside ags_store_group_begin ... commit/abort */
	struct snapshot group_sn; /* the counters as the group began */
	struct ags_ckpt *ckpt;    /* the checkpointer, once the WAL has needed one */
	ags_ckpt_limits ckpt_lim;
	int ckpt_failed; /* it could not start: the writer checkpoints at soft_frames */
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
		if (ags_ckpt_start(sqlite3_db_filename(db, "main"), &s->ckpt_lim, &c) != 0)
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

static void hex_encode(const uint8_t *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hexdig[in[i] >> 4];
		out[2 * i + 1] = hexdig[in[i] & 15];
	}
	out[2 * n] = '\0';
}

/* Remembers SQLite's message for `rc` and returns AGS_ERR_STORE (filling err if given). */
static int store_fail(ags_store *s, int rc, ags_error *err)
{
	const char *m = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
	snprintf(s->errmsg, sizeof(s->errmsg), "sqlite: %s (%d)", m ? m : sqlite3_errstr(rc), rc);
	return ags_error_set(err, AGS_ERR_STORE, NULL, "%s", s->errmsg);
}

/* Steps a statement that returns no rows, then resets it. Returns the SQLite code. */
static int step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static int64_t clamp_seq(uint64_t seq)
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
static void digest_term(ags_store *s, const char *id, int64_t version, const char *checksum,
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

static void digest_add(uint8_t acc[32], const uint8_t t[32])
{
	unsigned carry = 0;
	for (int i = 31; i >= 0; i--) {
		unsigned v = (unsigned)acc[i] + t[i] + carry;
		acc[i] = (uint8_t)v;
		carry = v >> 8;
	}
}

static void digest_sub(uint8_t acc[32], const uint8_t t[32])
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
	return rc == SQLITE_OK ? 0 : store_fail(s, rc, err);
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
		int r = store_fail(s, rc, err);
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
	hex_encode(rnd, sizeof(rnd), hex);
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
		return store_fail(s, rc, err);
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
		return store_fail(s, rc, err);
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
		return store_fail(s, rc, err);
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
		rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		                        &s->st[i], NULL);
		if (rc != SQLITE_OK)
			return store_fail(s, rc, err);
	}
	int r2 = load_meta(s, err);
	__atomic_store_n(&s->committed, s->seq, __ATOMIC_RELEASE);
	return r2;
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
	int rc = sqlite3_open_v2(
	    path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		int code = (rc & 0xff) == SQLITE_CANTOPEN ? AGS_ERR_IO
		           : rc == SQLITE_NOMEM           ? AGS_ERR_NOMEM
		                                          : AGS_ERR_STORE;
		r = ags_error_set(err, code, NULL, "%s: %s", path,
		                  s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_extended_result_codes(s->db, 1);
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

/* ------------------------------------------------------------------------ */
/* Apply                                                                    */
/* ------------------------------------------------------------------------ */

/* What the store holds for one id, as read by ST_HEAD. */
struct head {
	int64_t seq, version, ts, expires_at;
	int st;
	char checksum[65];
	char *origin; /* malloc'd, or NULL */
	char *vc;     /* malloc'd, or NULL */
};

static void head_clear(struct head *h)
{
	free(h->origin);
	free(h->vc);
	h->origin = h->vc = NULL;
}

/*
 * The rule of ags_pattern_compare(), on a stored row (b) and a change (a):
 * higher version; then, unless the checksums are equal (same change), later
 * timestamp; then greater checksum text.
 */
static int compare_with_row(const ags_pattern *a, const struct head *b)
{
	int64_t va = ags_pattern_version(a);
	if (va != b->version)
		return va > b->version ? 1 : -1;
	const char *ca = ags_pattern_checksum(a);
	int c = strcmp(ca, b->checksum);
	if (c == 0)
		return 0;
	int64_t ta = ags_pattern_timestamp(a);
	if (ta != b->ts)
		return ta > b->ts ? 1 : -1;
	return c > 0 ? 1 : -1;
}

/* Binds the row of change p (sequence seq, state st, clock vc) to ST_INSERT or ST_REPLACE. */
static void bind_row(sqlite3_stmt *q, const ags_pattern *p, uint64_t seq, int st,
                     const ags_change_meta *m, const char *vc)
{
	int64_t exp = st == AGS_RECORD_TOMBSTONE ? 0 : ags_pattern_expires_at(p);
	sqlite3_bind_int64(q, 1, (int64_t)seq);
	sqlite3_bind_text(q, 2, ags_pattern_id(p), -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 3, ags_pattern_version(p));
	sqlite3_bind_int64(q, 4, ags_pattern_timestamp(p));
	sqlite3_bind_text(q, 5, ags_pattern_checksum(p), -1, SQLITE_STATIC);
	sqlite3_bind_int(q, 6, st);
	if (exp)
		sqlite3_bind_int64(q, 7, exp);
	else
		sqlite3_bind_null(q, 7);
	if (m && m->origin)
		sqlite3_bind_text(q, 8, m->origin, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(q, 8);
	if (m && m->scope)
		sqlite3_bind_text(q, 9, m->scope, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(q, 9);
	if (st == AGS_RECORD_LIVE) {
		size_t blen = 0;
		const char *body = ags_pattern_json(p, &blen);
		sqlite3_bind_text64(q, 10, body, blen, SQLITE_STATIC, SQLITE_UTF8);
		if (ags_pattern_priority(p))
			sqlite3_bind_int(q, 13, ags_pattern_priority(p));
		else
			sqlite3_bind_null(q, 13);
	} else {
		sqlite3_bind_null(q, 13);
		/* A tombstone is rebuilt from id, version and timestamp; an expired
		 * record keeps no content. */
		sqlite3_bind_null(q, 10);
	}
	if (vc)
		sqlite3_bind_text(q, 12, vc, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(q, 12);
}

static char *col_dup(sqlite3_stmt *q, int i)
{
	const char *t = (const char *)sqlite3_column_text(q, i);
	return t ? strdup(t) : NULL;
}

/*
 * Reads what the store holds for id into *h (origin and vc malloc'd: head_clear);
 * returns 1 found, 0 not, or a negative SQLite code.
 */
static int read_head(ags_store *s, const char *id, struct head *h)
{
	sqlite3_stmt *q = s->st[ST_HEAD];
	sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q), found = 0;
	if (rc == SQLITE_ROW) {
		h->seq = sqlite3_column_int64(q, 0);
		h->version = sqlite3_column_int64(q, 1);
		h->ts = sqlite3_column_int64(q, 2);
		const char *cs = (const char *)sqlite3_column_text(q, 3);
		snprintf(h->checksum, sizeof(h->checksum), "%s", cs ? cs : "");
		h->st = sqlite3_column_int(q, 4);
		h->expires_at = sqlite3_column_int64(q, 5);
		h->origin = col_dup(q, 6);
		h->vc = col_dup(q, 7);
		found = 1;
		if ((sqlite3_column_type(q, 6) != SQLITE_NULL && !h->origin) ||
		    (sqlite3_column_type(q, 7) != SQLITE_NULL && !h->vc)) {
			head_clear(h);
			found = -SQLITE_NOMEM;
		}
	} else if (rc != SQLITE_DONE) {
		sqlite3_reset(q);
		return -rc;
	}
	sqlite3_reset(q);
	return found;
}

/* The state a change is stored in, at time `now`. */
static int change_state(const ags_pattern *p, int64_t now)
{
	if (ags_pattern_is_tombstone(p))
		return AGS_RECORD_TOMBSTONE;
	int64_t exp = ags_pattern_expires_at(p);
	/* Every node would expire it: store the marker directly, so all converge. */
	return exp && exp <= now ? AGS_RECORD_EXPIRED : AGS_RECORD_LIVE;
}

/* The outcome of a change against what the store holds for its id. */
static int decide(const ags_pattern *p, const struct head *h)
{
	int c = compare_with_row(p, h);
	if (ags_pattern_version(p) != h->version)
		return c > 0 ? AGS_APPLY_UPDATED : AGS_APPLY_STALE;
	if (h->st == AGS_RECORD_EXPIRED)
		return AGS_APPLY_STALE; /* an expired record never comes back */
	return c == 0  ? AGS_APPLY_DUPLICATE
	       : c > 0 ? AGS_APPLY_CONFLICT_WON
	               : AGS_APPLY_CONFLICT_LOST;
}

/*
 * The record clock a change is stored with: the clock it came with, or for a
 * local write the stored record's clock with the writer's entry set to its
 * tick (`stored_vc` may be NULL). *out is malloc'd, or NULL for none.
 * Returns 0 or AGS_ERR_NOMEM (a stored clock that does not parse is replaced).
 */
static int effective_vc(const ags_change_clock *m, const char *stored_vc, char **out)
{
	*out = NULL;
	if (!m || (!m->vc && !m->writer))
		return 0;
	if (m->vc) {
		*out = strdup(m->vc);
		return *out ? 0 : AGS_ERR_NOMEM;
	}
	ags_vclock *v = NULL;
	int r = stored_vc ? ags_vclock_from_json(stored_vc, strlen(stored_vc), &v, NULL) : 1;
	if (r == AGS_ERR_NOMEM)
		return r;
	if (r && (r = ags_vclock_new(&v)))
		return r;
	uint64_t have = 0;
	ags_vclock_get(v, m->writer, &have);
	if (have < m->tick && ags_vclock_set(v, m->writer, m->tick) != 0) {
		/* The record clock is full (AGS_VCLOCK_MAX writers): start it afresh. */
		ags_vclock_del(v);
		if ((r = ags_vclock_new(&v)) || (r = ags_vclock_set(v, m->writer, m->tick))) {
			ags_vclock_del(v);
			return r == AGS_ERR_NOMEM ? r : 0;
		}
	}
	r = ags_vclock_to_json(v, out, NULL);
	ags_vclock_del(v);
	return r;
}

/* Whether two record clocks (JSON) are concurrent; 0 when either is absent or unreadable. */
static int clocks_concurrent(const char *a, const char *b)
{
	if (!a || !b)
		return 0;
	ags_vclock *x = NULL, *y = NULL;
	int c = 0;
	if (ags_vclock_from_json(a, strlen(a), &x, NULL) == 0 &&
	    ags_vclock_from_json(b, strlen(b), &y, NULL) == 0)
		c = ags_vclock_compare(x, y) == AGS_VC_CONCURRENT;
	ags_vclock_del(x);
	ags_vclock_del(y);
	return c;
}

/*
 * Keeps the loser of a conflict between change p (clock vc) and the stored
 * row h, before the winner is written. Returns a SQLite code.
 */
static int record_conflict(ags_store *s, const ags_pattern *p, const ags_change_meta *m,
                           const char *vc, const struct head *h, int incoming_won, int64_t now,
                           uint64_t *cseq)
{
	sqlite3_stmt *q;
	int rc;
	if (incoming_won) {
		q = s->st[ST_CONFLICT_STORED];
		sqlite3_bind_int64(q, 1, h->seq);
		sqlite3_bind_int64(q, 2, now);
		sqlite3_bind_int64(q, 3, ags_pattern_version(p));
		sqlite3_bind_text(q, 4, ags_pattern_checksum(p), -1, SQLITE_STATIC);
		if (m && m->origin)
			sqlite3_bind_text(q, 5, m->origin, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(q, 5);
	} else {
		q = s->st[ST_CONFLICT_INCOMING];
		sqlite3_bind_text(q, 1, ags_pattern_id(p), -1, SQLITE_STATIC);
		sqlite3_bind_int64(q, 2, now);
		sqlite3_bind_int64(q, 3, h->version);
		sqlite3_bind_text(q, 4, h->checksum, -1, SQLITE_STATIC);
		if (h->origin)
			sqlite3_bind_text(q, 5, h->origin, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(q, 5);
		sqlite3_bind_int64(q, 6, ags_pattern_version(p));
		sqlite3_bind_int64(q, 7, ags_pattern_timestamp(p));
		sqlite3_bind_text(q, 8, ags_pattern_checksum(p), -1, SQLITE_STATIC);
		if (m && m->origin)
			sqlite3_bind_text(q, 9, m->origin, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(q, 9);
		if (vc)
			sqlite3_bind_text(q, 10, vc, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(q, 10);
		int st = ags_pattern_is_tombstone(p) ? AGS_RECORD_TOMBSTONE : AGS_RECORD_LIVE;
		sqlite3_bind_int(q, 11, st);
		if (st == AGS_RECORD_LIVE) {
			size_t blen = 0;
			const char *body = ags_pattern_json(p, &blen);
			sqlite3_bind_text64(q, 12, body, blen, SQLITE_STATIC, SQLITE_UTF8);
		} else {
			sqlite3_bind_null(q, 12);
		}
	}
	rc = step_done(q);
	sqlite3_clear_bindings(q);
	if (rc == SQLITE_OK)
		*cseq = (uint64_t)sqlite3_last_insert_rowid(s->db);
	return rc;
}

/*
 * Before the stored row h is replaced by change p (stored in state st): keeps
 * h as p's delta base when both are live and h is large, else forgets any
 * base of that id. Returns a SQLite code.
 */
static int keep_prev(ags_store *s, const ags_pattern *p, const struct head *h, int st)
{
	sqlite3_stmt *q;
	if (st == AGS_RECORD_LIVE && h->st == AGS_RECORD_LIVE) {
		q = s->st[ST_PREV_SAVE];
		sqlite3_bind_int64(q, 1, h->seq);
		sqlite3_bind_int64(q, 2, AGS_DELTA_MIN_BYTES);
		int rc = step_done(q);
		sqlite3_clear_bindings(q);
		if (rc != SQLITE_OK || sqlite3_changes(s->db) > 0)
			return rc;
	}
	q = s->st[ST_PREV_DEL];
	sqlite3_bind_text(q, 1, ags_pattern_id(p), -1, SQLITE_STATIC);
	int rc = step_done(q);
	sqlite3_clear_bindings(q);
	return rc;
}

/* Applies one change inside the open transaction. Returns a SQLite code. */
static int apply_one(ags_store *s, const ags_pattern *p, const ags_change_meta *m,
                     const ags_change_clock *ck, int64_t now, ags_apply_result *r,
                     ags_apply_info *info)
{
	int st = change_state(p, now);
	uint64_t seq = s->seq + 1;
	r->outcome = AGS_APPLY_INSERTED;
	r->seq = 0;
	info->conflict = 0;
	info->conflict_seq = 0;
	struct head h = {0};
	char *vc = NULL;
	if (effective_vc(ck, NULL, &vc))
		return SQLITE_NOMEM;
	/* Try the insert first (it does nothing for a known id): a new id then
	 * costs one statement, and only a known id pays for the lookup. */
	sqlite3_stmt *q = s->st[ST_INSERT];
	bind_row(q, p, seq, st, m, vc);
	int rc = step_done(q);
	if (rc != SQLITE_OK)
		goto out;
	int found = sqlite3_changes(s->db) == 0;
	if (found) {
		int hr = read_head(s, ags_pattern_id(p), &h);
		if (hr <= 0) {
			rc = hr < 0 ? -hr : SQLITE_CORRUPT; /* the insert saw the id */
			goto out;
		}
		if (ck && !ck->vc && ck->writer) {
			/* A local write: its clock follows the stored record's. */
			free(vc);
			if (effective_vc(ck, h.vc, &vc)) {
				rc = SQLITE_NOMEM;
				goto out_head;
			}
		}
		r->outcome = decide(p, &h);
		int won = r->outcome == AGS_APPLY_UPDATED || r->outcome == AGS_APPLY_CONFLICT_WON;
		if (h.st != AGS_RECORD_EXPIRED &&
		    (r->outcome == AGS_APPLY_CONFLICT_WON ||
		     r->outcome == AGS_APPLY_CONFLICT_LOST ||
		     (r->outcome != AGS_APPLY_DUPLICATE && clocks_concurrent(vc, h.vc)))) {
			info->conflict = 1;
			if ((rc = record_conflict(s, p, m, vc, &h, won, now, &info->conflict_seq)))
				goto out_head;
		}
		if (!won)
			goto out_head;
		if ((rc = keep_prev(s, p, &h, st)) != SQLITE_OK)
			goto out_head;
		q = s->st[ST_REPLACE];
		bind_row(q, p, seq, st, m, vc);
		sqlite3_bind_int64(q, 11, h.seq);
		if ((rc = step_done(q)) != SQLITE_OK)
			goto out_head;
	}

	uint8_t t[32];
	if (found && h.st == AGS_RECORD_LIVE) {
		digest_term(s, ags_pattern_id(p), h.version, h.checksum, t);
		digest_sub(s->digest, t);
		s->live--;
	}
	if (st == AGS_RECORD_LIVE) {
		digest_term(s, ags_pattern_id(p), ags_pattern_version(p), ags_pattern_checksum(p),
		            t);
		digest_add(s->digest, t);
		s->live++;
	}
	s->seq = seq;
	r->seq = seq;
out_head:
out:
	head_clear(&h);
	free(vc);
	return rc;
}

/* Writes seq, digest and live count to the meta table (inside the transaction). */
static int put_meta(ags_store *s)
{
	sqlite3_stmt *q = s->st[ST_META_PUT];
	sqlite3_bind_int64(q, 1, (int64_t)s->seq);
	sqlite3_bind_blob(q, 2, s->digest, 32, SQLITE_STATIC);
	sqlite3_bind_int64(q, 3, (int64_t)s->live);
	int rc = step_done(q);
	sqlite3_clear_bindings(q);
	return rc;
}

/* Writes (value != NULL) or deletes a state key; returns a SQLite code. */
static int put_state(ags_store *s, const char *key, const char *value)
{
	sqlite3_stmt *q = s->st[value ? ST_STATE_PUT : ST_STATE_DEL];
	sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
	if (value)
		sqlite3_bind_text(q, 2, value, -1, SQLITE_STATIC);
	int rc = step_done(q);
	sqlite3_clear_bindings(q);
	return rc;
}

static int check_str(const char *v, size_t max)
{
	return !v || strnlen(v, max + 1) <= max;
}

static void snap_take(const ags_store *s, struct snapshot *sn)
{
	sn->seq = s->seq;
	sn->live = s->live;
	memcpy(sn->digest, s->digest, 32);
}

static void snap_restore(ags_store *s, const struct snapshot *sn)
{
	s->seq = sn->seq;
	s->live = sn->live;
	memcpy(s->digest, sn->digest, 32);
}

/* Ends a failed write transaction: keeps SQLite's message, rolls back, restores counters. */
static int abort_txn(ags_store *s, int rc, const struct snapshot *sn, ags_error *err)
{
	int r = store_fail(s, rc, err);
	if (!sqlite3_get_autocommit(s->db))
		step_done(s->st[ST_ROLLBACK]);
	snap_restore(s, sn);
	return r;
}

int ags_store_apply_batch_kv(ags_store *s, const ags_pattern *const *p, const ags_change_meta *meta,
                             const ags_change_clock *clocks, size_t n, const ags_store_kv *kv,
                             size_t n_kv, ags_apply_result *res, ags_apply_info *info,
                             ags_error *err)
{
	if (!s || (n && !p) || (n_kv && !kv))
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "store and changes are required");
	for (size_t i = 0; i < n; i++) {
		if (!p[i])
			return ags_error_set(err, AGS_ERR_INVALID, NULL, "change %zu is NULL", i);
		if (strlen(ags_pattern_id(p[i])) > AGS_PATTERN_ID_MAX)
			return ags_error_set(err, AGS_ERR_INVALID, "id", "change %zu: id too long",
			                     i);
		if (meta && (!check_str(meta[i].origin, AGS_STORE_META_MAX) ||
		             !check_str(meta[i].scope, AGS_STORE_META_MAX)))
			return ags_error_set(err, AGS_ERR_INVALID, NULL,
			                     "change %zu: origin or scope too long", i);
		if (clocks && (!check_str(clocks[i].writer, AGS_STORE_META_MAX) ||
		               !check_str(clocks[i].vc, AGS_STORE_STATE_MAX) ||
		               (clocks[i].writer && clocks[i].tick == 0)))
			return ags_error_set(
			    err, AGS_ERR_INVALID, NULL,
			    "change %zu: writer or vector clock too long, or tick 0", i);
	}
	for (size_t i = 0; i < n_kv; i++)
		if (!kv[i].key || !check_str(kv[i].value, AGS_STORE_STATE_MAX))
			return ags_error_set(err, AGS_ERR_INVALID, NULL,
			                     "state value without key, or too long");
	if (n == 0 && n_kv == 0)
		return 0;

	struct snapshot sn;
	snap_take(s, &sn);
	int64_t now = ags_now_ms();
	int rc = s->group ? SQLITE_OK : step_done(s->st[ST_BEGIN]);
	if (rc != SQLITE_OK)
		return abort_txn(s, rc, &sn, err);
	for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
		ags_apply_result tmp;
		ags_apply_info itmp;
		rc = apply_one(s, p[i], meta ? &meta[i] : NULL, clocks ? &clocks[i] : NULL, now,
		               res ? &res[i] : &tmp, info ? &info[i] : &itmp);
	}
	if (rc == SQLITE_OK && s->seq != sn.seq)
		rc = put_meta(s);
	for (size_t i = 0; i < n_kv && rc == SQLITE_OK; i++)
		rc = put_state(s, kv[i].key, kv[i].value);
	if (rc == SQLITE_OK && !s->group)
		rc = step_done(s->st[ST_COMMIT]);
	if (rc == SQLITE_OK && !s->group)
		__atomic_store_n(&s->committed, s->seq, __ATOMIC_RELEASE);
	if (rc != SQLITE_OK) {
		if (res)
			memset(res, 0, n * sizeof(*res));
		if (info)
			memset(info, 0, n * sizeof(*info));
		/* In a group, the rollback is ags_store_group_abort's. */
		return s->group ? store_fail(s, rc, err) : abort_txn(s, rc, &sn, err);
	}
	return 0;
}

void ags_store_set_ckpt_limits(ags_store *s, const ags_ckpt_limits *lim)
{
	s->ckpt_lim = *lim;
}

uint64_t ags_store_ckpt_runs(const ags_store *s)
{
	struct ags_ckpt *c = __atomic_load_n(&s->ckpt, __ATOMIC_ACQUIRE);
	return c ? ags_ckpt_runs(c) : 0;
}

void ags_store_ckpt_defer(ags_store *s)
{
	struct ags_ckpt *c = s ? __atomic_load_n(&s->ckpt, __ATOMIC_ACQUIRE) : NULL;
	if (c)
		ags_ckpt_defer(c);
}

int ags_store_group_begin(ags_store *s, ags_error *err)
{
	if (!s || s->group)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "no store, or a group is open");
	int rc = step_done(s->st[ST_BEGIN]);
	if (rc != SQLITE_OK)
		return store_fail(s, rc, err);
	snap_take(s, &s->group_sn);
	s->group = 1;
	return 0;
}

int ags_store_group_commit(ags_store *s, ags_error *err)
{
	if (!s || !s->group)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "no group is open");
	s->group = 0;
	int rc = step_done(s->st[ST_COMMIT]);
	if (rc != SQLITE_OK)
		return abort_txn(s, rc, &s->group_sn, err);
	__atomic_store_n(&s->committed, s->seq, __ATOMIC_RELEASE);
	return 0;
}

void ags_store_group_abort(ags_store *s)
{
	if (!s || !s->group)
		return;
	s->group = 0;
	if (!sqlite3_get_autocommit(s->db))
		step_done(s->st[ST_ROLLBACK]);
	snap_restore(s, &s->group_sn);
}

int ags_store_apply_batch_ex(ags_store *s, const ags_pattern *const *p, const ags_change_meta *meta,
                             size_t n, const char *state_key, const char *state_value,
                             ags_apply_result *res, ags_error *err)
{
	if (state_value && !state_key)
		return ags_error_set(err, AGS_ERR_INVALID, NULL,
		                     "state value without key, or too long");
	ags_store_kv kv = {state_key, state_value};
	return ags_store_apply_batch_kv(s, p, meta, NULL, n, &kv, state_key ? 1 : 0, res, NULL,
	                                err);
}

AGS_EXPORT int ags_store_apply_batch(ags_store *s, const ags_pattern *const *p, size_t n,
                                     ags_apply_result *res, ags_error *err)
{
	return ags_store_apply_batch_ex(s, p, NULL, n, NULL, NULL, res, err);
}

AGS_EXPORT int ags_store_apply(ags_store *s, const ags_pattern *p, ags_apply_result *res,
                               ags_error *err)
{
	if (!p)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "change is NULL");
	return ags_store_apply_batch_ex(s, &p, NULL, 1, NULL, NULL, res, err);
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * Makes the pattern of a listed row (columns as ROW_COLS). Returns 0, or
 * AGS_ERR_NOMEM / AGS_ERR_STORE (a body we cannot read back).
 */
static int row_pattern(ags_store *s, sqlite3_stmt *q, ags_pattern **out)
{
	int st = sqlite3_column_int(q, 4);
	int r;
	if (st == AGS_RECORD_TOMBSTONE) {
		const char *id = (const char *)sqlite3_column_text(q, 1);
		r = ags_pattern_new_tombstone(id ? id : "", sqlite3_column_int64(q, 2),
		                              sqlite3_column_int64(q, 3), out);
	} else {
		const char *body = (const char *)sqlite3_column_text(q, 5);
		r = body ? ags_pattern_parse_trusted(body, (size_t)sqlite3_column_bytes(q, 5), out)
		         : AGS_ERR_PATTERN;
	}
	if (r == 0 || r == AGS_ERR_NOMEM)
		return r;
	snprintf(s->errmsg, sizeof(s->errmsg), "stored record at seq %lld is unreadable (%s)",
	         (long long)sqlite3_column_int64(q, 0), ags_strerror(r));
	return AGS_ERR_STORE;
}

AGS_EXPORT int ags_store_get(ags_store *s, const char *id, ags_pattern **out)
{
	if (!s || !id || !out)
		return AGS_ERR_INVALID;
	*out = NULL;
	sqlite3_stmt *q = s->st[ST_GET];
	sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, ags_now_ms());
	int rc = sqlite3_step(q), r;
	if (rc == SQLITE_ROW) {
		const char *body = (const char *)sqlite3_column_text(q, 1);
		r = body ? ags_pattern_parse_trusted(body, (size_t)sqlite3_column_bytes(q, 1), out)
		         : AGS_ERR_STORE;
		if (r && r != AGS_ERR_NOMEM) {
			snprintf(s->errmsg, sizeof(s->errmsg), "stored record %s is unreadable",
			         id);
			r = AGS_ERR_STORE;
		}
	} else if (rc == SQLITE_DONE) {
		r = AGS_ERR_NOT_FOUND;
	} else {
		r = store_fail(s, rc, NULL);
	}
	sqlite3_reset(q);
	return r;
}

/* A listing's statement: the cached one, or a fresh one if a callback re-entered. */
static int take_stmt(ags_store *s, int which, sqlite3_stmt **out)
{
	if (!s->busy[which]) {
		s->busy[which] = 1;
		*out = s->st[which];
		return 0;
	}
	int rc = sqlite3_prepare_v2(s->db, stmt_sql[which], -1, out, NULL);
	return rc == SQLITE_OK ? 0 : store_fail(s, rc, NULL);
}

static void give_stmt(ags_store *s, int which, sqlite3_stmt *q)
{
	if (q == s->st[which]) {
		sqlite3_reset(q);
		sqlite3_clear_bindings(q);
		s->busy[which] = 0;
	} else {
		sqlite3_finalize(q);
	}
}

/* The caller's callback of a listing. */
struct emit {
	ags_pattern_cb cb;
	void *user;
};

/* Whether p passes the query's filters, checked exactly (SQL only narrows). */
static int query_match(const ags_query *f, const ags_pattern *p)
{
	return !f || ((!f->type || strcmp(f->type, ags_pattern_type(p)) == 0) &&
	              (!f->agent_id || strcmp(f->agent_id, ags_pattern_agent_id(p)) == 0) &&
	              (!f->tag || ags_pattern_has_tag(p, f->tag)));
}

/*
 * Steps a bound listing statement, making each row's pattern and emitting it,
 * at most `limit` (0: all). `filter` (or NULL) is checked on each pattern.
 */
static int run_listing(ags_store *s, sqlite3_stmt *q, size_t limit, const ags_query *filter,
                       const struct emit *e)
{
	size_t done = 0;
	int rc = SQLITE_DONE;
	while ((limit == 0 || done < limit) && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		ags_pattern *p = NULL;
		int r = row_pattern(s, q, &p);
		if (r)
			return r;
		if (!query_match(filter, p)) {
			ags_pattern_del(p);
			continue;
		}
		r = e->cb(e->user, p, (uint64_t)sqlite3_column_int64(q, 0));
		ags_pattern_del(p);
		if (r)
			return r;
		done++;
	}
	if (limit && done >= limit)
		return 0;
	return rc == SQLITE_DONE ? 0 : store_fail(s, rc, NULL);
}

/*
 * Binds to parameter i the text that a body holding the JSON string `value`
 * after `prefix` must contain: prefix "value" as the canonical (compact)
 * serialisation writes it. Only for values that JSON writes verbatim (no
 * quote, backslash or control character); otherwise binds nothing and the
 * exact check alone decides. Returns 0 or AGS_ERR_NOMEM.
 */
static int bind_needle(sqlite3_stmt *q, int i, const char *prefix, const char *value)
{
	if (!value)
		return 0;
	for (const unsigned char *c = (const unsigned char *)value; *c; c++)
		if (*c < 0x20 || *c == '"' || *c == '\\')
			return 0;
	char *n = sqlite3_mprintf("%s\"%s\"", prefix, value);
	if (!n)
		return AGS_ERR_NOMEM;
	sqlite3_bind_text(q, i, n, -1, sqlite3_free);
	return 0;
}

AGS_EXPORT int ags_store_query(ags_store *s, const ags_query *q, ags_pattern_cb cb, void *user_data)
{
	if (!s || !cb)
		return AGS_ERR_INVALID;
	ags_query all = {0};
	if (!q)
		q = &all;
	sqlite3_stmt *st;
	int r = take_stmt(s, ST_QUERY, &st);
	if (r)
		return r;
	sqlite3_bind_int64(st, 1, clamp_seq(q->after_seq));
	sqlite3_bind_int64(st, 2, ags_now_ms());
	/* Keys are sorted and the body compact, so "type":"x" is how a type x
	 * appears; the same text elsewhere in the body is weeded out by query_match. */
	if (!(r = bind_needle(st, 3, "\"type\":", q->type)) &&
	    !(r = bind_needle(st, 4, "\"agentId\":", q->agent_id)) &&
	    !(r = bind_needle(st, 5, "", q->tag))) {
		struct emit e = {.cb = cb, .user = user_data};
		r = run_listing(s, st, q->limit, q, &e);
	}
	give_stmt(s, ST_QUERY, st);
	return r;
}

/* Lists the change log after `after_seq` through `emit`. */
static int list_changes(ags_store *s, uint64_t after_seq, size_t limit, const struct emit *e)
{
	sqlite3_stmt *st;
	int r = take_stmt(s, ST_CHANGES, &st);
	if (r)
		return r;
	sqlite3_bind_int64(st, 1, clamp_seq(after_seq));
	sqlite3_bind_int64(st, 2, ags_now_ms());
	r = run_listing(s, st, limit, NULL, e);
	give_stmt(s, ST_CHANGES, st);
	return r;
}

AGS_EXPORT int ags_store_changes(ags_store *s, uint64_t after_seq, size_t limit, ags_pattern_cb cb,
                                 void *user_data)
{
	if (!s || !cb)
		return AGS_ERR_INVALID;
	struct emit e = {.cb = cb, .user = user_data};
	return list_changes(s, after_seq, limit, &e);
}

int ags_store_rows(ags_store *s, uint64_t after_seq, size_t limit, const char *skip_origin,
                   ags_row_cb cb, void *user_data, uint64_t *upto)
{
	if (!s || !cb || !upto || limit == 0)
		return AGS_ERR_INVALID;
	*upto = after_seq;
	/* One read transaction: the rows and the head they are measured against
	 * come from the same snapshot (on a connection of its own, a writer on
	 * another one is never waited for). */
	int own_tx = sqlite3_get_autocommit(s->db);
	if (own_tx) {
		int rc = sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			return store_fail(s, rc, NULL);
	}
	sqlite3_stmt *q;
	int r = take_stmt(s, ST_ROWS, &q);
	if (r)
		goto done;
	sqlite3_bind_int64(q, 1, clamp_seq(after_seq));
	sqlite3_bind_int64(q, 2, ags_now_ms());
	if (skip_origin)
		sqlite3_bind_text(q, 3, skip_origin, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 4, limit > INT64_MAX ? INT64_MAX : (sqlite3_int64)limit);
	size_t n = 0;
	uint64_t last = after_seq;
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		ags_change_row row = {
		    .seq = (uint64_t)sqlite3_column_int64(q, 0),
		    .id = (const char *)sqlite3_column_text(q, 1),
		    .version = sqlite3_column_int64(q, 2),
		    .timestamp = sqlite3_column_int64(q, 3),
		    .tombstone = sqlite3_column_int(q, 4) == AGS_RECORD_TOMBSTONE,
		    .body = (const char *)sqlite3_column_text(q, 5),
		    .body_len = (size_t)sqlite3_column_bytes(q, 5),
		    .origin = (const char *)sqlite3_column_text(q, 6),
		    .scope = (const char *)sqlite3_column_text(q, 7),
		    .vc = (const char *)sqlite3_column_text(q, 8),
		    .priority = sqlite3_column_int(q, 9),
		};
		if (!row.id || (!row.tombstone && !row.body)) {
			snprintf(s->errmsg, sizeof(s->errmsg),
			         "stored record at seq %llu is unreadable",
			         (unsigned long long)row.seq);
			r = AGS_ERR_STORE;
			break;
		}
		last = row.seq;
		n++;
		if ((r = cb(user_data, &row)) != 0)
			break;
	}
	if (!r && rc != SQLITE_DONE && rc != SQLITE_ROW)
		r = store_fail(s, rc, NULL);
	give_stmt(s, ST_ROWS, q);
	if (!r && n < limit) {
		/* Everything up to the head was seen, listed or not. */
		sqlite3_stmt *m = s->st[ST_META_SEQ];
		rc = sqlite3_step(m);
		if (rc == SQLITE_ROW)
			last = (uint64_t)sqlite3_column_int64(m, 0);
		else
			r = store_fail(s, rc, NULL);
		sqlite3_reset(m);
	}
	if (!r || r > 0)
		*upto = last > after_seq ? last : after_seq;
done:
	if (own_tx)
		sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	return r;
}

int ags_store_next_seq(ags_store *s, uint64_t after_seq, uint64_t *out)
{
	if (!s || !out)
		return AGS_ERR_INVALID;
	sqlite3_stmt *q = s->st[ST_NEXT_SEQ];
	sqlite3_bind_int64(q, 1, clamp_seq(after_seq));
	sqlite3_bind_int64(q, 2, ags_now_ms());
	int rc = sqlite3_step(q), r = 0;
	if (rc == SQLITE_ROW)
		*out = (uint64_t)sqlite3_column_int64(q, 0);
	else
		r = rc == SQLITE_DONE ? AGS_ERR_NOT_FOUND : store_fail(s, rc, NULL);
	sqlite3_reset(q);
	return r;
}

int ags_store_head(ags_store *s, const char *id, ags_record_head *out)
{
	return ags_store_head_vc(s, id, out, NULL);
}

int ags_store_head_vc(ags_store *s, const char *id, ags_record_head *out, char **vc)
{
	if (!s || !id || !out)
		return AGS_ERR_INVALID;
	if (vc)
		*vc = NULL;
	struct head h = {0};
	int found = read_head(s, id, &h);
	if (found < 0)
		return found == -SQLITE_NOMEM ? AGS_ERR_NOMEM : store_fail(s, -found, NULL);
	if (!found)
		return AGS_ERR_NOT_FOUND;
	out->seq = (uint64_t)h.seq;
	out->version = h.version;
	out->timestamp = h.ts;
	out->state = h.st;
	out->expires_at = h.expires_at;
	memcpy(out->checksum, h.checksum, sizeof(out->checksum));
	if (vc) {
		*vc = h.vc;
		h.vc = NULL;
	}
	head_clear(&h);
	return 0;
}

AGS_EXPORT int ags_store_count(ags_store *s, uint64_t *out)
{
	if (!s || !out)
		return AGS_ERR_INVALID;
	/* The live count includes rows past expiresAt that no sweep has reached yet;
	 * take those out (the partial index makes this O(expiring rows)). */
	sqlite3_stmt *q = s->st[ST_EXPIRED_COUNT];
	sqlite3_bind_int64(q, 1, ags_now_ms());
	int rc = sqlite3_step(q), r = 0;
	if (rc == SQLITE_ROW) {
		uint64_t gone = (uint64_t)sqlite3_column_int64(q, 0);
		*out = gone < s->live ? s->live - gone : 0;
	} else {
		r = store_fail(s, rc, NULL);
	}
	sqlite3_reset(q);
	return r;
}

AGS_EXPORT uint64_t ags_store_seq(const ags_store *s)
{
	return s ? s->seq : 0;
}

uint64_t ags_store_seq_committed(const ags_store *s)
{
	return s ? __atomic_load_n(&s->committed, __ATOMIC_ACQUIRE) : 0;
}

AGS_EXPORT void ags_store_digest(const ags_store *s, char out[65])
{
	if (!out)
		return;
	if (!s) {
		memset(out, '0', 64);
		out[64] = '\0';
		return;
	}
	hex_encode(s->digest, 32, out);
}

int ags_store_verify(ags_store *s, char digest[65], uint64_t *live)
{
	if (!s)
		return AGS_ERR_INVALID;
	sqlite3_stmt *q = NULL;
	int rc = sqlite3_prepare_v2(
	    s->db, "SELECT id, version, checksum FROM patterns WHERE st = 0", -1, &q, NULL);
	if (rc != SQLITE_OK)
		return store_fail(s, rc, NULL);
	uint8_t acc[32] = {0}, t[32];
	uint64_t n = 0;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(q, 0);
		const char *cs = (const char *)sqlite3_column_text(q, 2);
		digest_term(s, id ? id : "", sqlite3_column_int64(q, 1), cs ? cs : "", t);
		digest_add(acc, t);
		n++;
	}
	int r = rc == SQLITE_DONE ? 0 : store_fail(s, rc, NULL);
	sqlite3_finalize(q);
	if (r)
		return r;
	if (digest)
		hex_encode(acc, 32, digest);
	if (live)
		*live = n;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Expiry                                                                   */
/* ------------------------------------------------------------------------ */

AGS_EXPORT int ags_store_sweep(ags_store *s, int64_t now_ms, uint64_t *purged)
{
	if (!s)
		return AGS_ERR_INVALID;
	struct snapshot sn;
	snap_take(s, &sn);
	uint64_t n = 0;
	int rc = step_done(s->st[ST_BEGIN]);
	if (rc != SQLITE_OK)
		return abort_txn(s, rc, &sn, NULL);
	sqlite3_stmt *q = s->st[ST_SWEEP];
	sqlite3_bind_int64(q, 1, now_ms);
	/* With RETURNING, every row is updated by the first step; the rows then
	 * listed are the purged ones, whose digest terms we take out. */
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(q, 0);
		const char *cs = (const char *)sqlite3_column_text(q, 2);
		uint8_t t[32];
		digest_term(s, id ? id : "", sqlite3_column_int64(q, 1), cs ? cs : "", t);
		digest_sub(s->digest, t);
		s->live--;
		n++;
	}
	sqlite3_reset(q);
	rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
	if (rc == SQLITE_OK && n)
		rc = put_meta(s);
	if (rc == SQLITE_OK && n)
		rc = step_done(s->st[ST_PREV_SWEEP]); /* expired records keep no delta base */
	if (rc == SQLITE_OK)
		rc = step_done(s->st[ST_COMMIT]);
	if (rc != SQLITE_OK)
		return abort_txn(s, rc, &sn, NULL);
	__atomic_store_n(&s->committed, s->seq, __ATOMIC_RELEASE);
	if (purged)
		*purged = n;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* State                                                                    */
/* ------------------------------------------------------------------------ */

AGS_EXPORT int ags_store_state_set(ags_store *s, const char *key, const char *value)
{
	if (!s || !key || !check_str(value, AGS_STORE_STATE_MAX))
		return AGS_ERR_INVALID;
	int rc = put_state(s, key, value);
	return rc == SQLITE_OK ? 0 : store_fail(s, rc, NULL);
}

AGS_EXPORT int ags_store_state_get(ags_store *s, const char *key, char *buf, size_t cap)
{
	if (!s || !key || (!buf && cap))
		return AGS_ERR_INVALID;
	sqlite3_stmt *q = s->st[ST_STATE_GET];
	sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q), r = 0;
	if (rc == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(q, 0);
		size_t vl = (size_t)sqlite3_column_bytes(q, 0);
		if (vl + 1 > cap) {
			r = AGS_ERR_TOO_LARGE;
		} else {
			memcpy(buf, v ? v : "", vl);
			buf[vl] = '\0';
		}
	} else {
		r = rc == SQLITE_DONE ? AGS_ERR_NOT_FOUND : store_fail(s, rc, NULL);
	}
	sqlite3_reset(q);
	return r;
}

/* ------------------------------------------------------------------------ */
/* Conflicts                                                                */
/* ------------------------------------------------------------------------ */

int ags_store_conflicts(ags_store *s, uint64_t after_cseq, const char *involving, size_t limit,
                        ags_conflict_cb cb, void *user_data)
{
	if (!s || !cb)
		return AGS_ERR_INVALID;
	sqlite3_stmt *q;
	int r = take_stmt(s, ST_CONFLICTS, &q);
	if (r)
		return r;
	sqlite3_bind_int64(q, 1, clamp_seq(after_cseq));
	if (involving)
		sqlite3_bind_text(q, 2, involving, -1, SQLITE_STATIC);
	size_t done = 0;
	int rc = SQLITE_DONE;
	while ((limit == 0 || done < limit) && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(q, 1);
		ags_pattern *loser = NULL;
		int st = sqlite3_column_int(q, 11);
		if (st == AGS_RECORD_TOMBSTONE) {
			r = ags_pattern_new_tombstone(id ? id : "", sqlite3_column_int64(q, 6),
			                              sqlite3_column_int64(q, 7), &loser);
		} else {
			const char *body = (const char *)sqlite3_column_text(q, 12);
			r = body ? ags_pattern_parse_trusted(
			               body, (size_t)sqlite3_column_bytes(q, 12), &loser)
			         : 0; /* an expired loser keeps no content */
		}
		if (r)
			break;
		ags_conflict_info c = {
		    .cseq = (uint64_t)sqlite3_column_int64(q, 0),
		    .id = id ? id : "",
		    .at_ms = sqlite3_column_int64(q, 2),
		    .winner_version = sqlite3_column_int64(q, 3),
		    .winner_checksum = (const char *)sqlite3_column_text(q, 4),
		    .winner_origin = (const char *)sqlite3_column_text(q, 5),
		    .loser_version = sqlite3_column_int64(q, 6),
		    .loser_checksum = (const char *)sqlite3_column_text(q, 8),
		    .loser_origin = (const char *)sqlite3_column_text(q, 9),
		    .loser_vc = (const char *)sqlite3_column_text(q, 10),
		    .loser = loser,
		};
		r = cb(user_data, &c);
		ags_pattern_del(loser);
		if (r)
			break;
		done++;
	}
	if (!r && !(limit && done >= limit) && rc != SQLITE_DONE)
		r = store_fail(s, rc, NULL);
	give_stmt(s, ST_CONFLICTS, q);
	return r;
}

int ags_store_conflict_count(ags_store *s, uint64_t *count, uint64_t *max_cseq)
{
	if (!s)
		return AGS_ERR_INVALID;
	sqlite3_stmt *q = s->st[ST_CONFLICT_COUNT];
	int rc = sqlite3_step(q), r = 0;
	if (rc == SQLITE_ROW) {
		if (count)
			*count = (uint64_t)sqlite3_column_int64(q, 0);
		if (max_cseq)
			*max_cseq = (uint64_t)sqlite3_column_int64(q, 1);
	} else {
		r = store_fail(s, rc, NULL);
	}
	sqlite3_reset(q);
	return r;
}

int ags_store_prev_get(ags_store *s, const char *id, int64_t *version, char checksum[65],
                       uint64_t *seq, char **body, size_t *len)
{
	if (!s || !id || !version || !checksum || !seq || !body || !len)
		return AGS_ERR_INVALID;
	*body = NULL;
	*len = 0;
	sqlite3_stmt *q = s->st[ST_PREV_GET];
	sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q), r = 0;
	if (rc == SQLITE_ROW) {
		*version = sqlite3_column_int64(q, 0);
		const char *cs = (const char *)sqlite3_column_text(q, 1);
		snprintf(checksum, 65, "%s", cs ? cs : "");
		*seq = (uint64_t)sqlite3_column_int64(q, 2);
		const char *b = (const char *)sqlite3_column_text(q, 3);
		size_t n = (size_t)sqlite3_column_bytes(q, 3);
		*body = b ? malloc(n + 1) : NULL;
		if (!*body) {
			r = AGS_ERR_NOMEM;
		} else {
			memcpy(*body, b, n);
			(*body)[n] = '\0';
			*len = n;
		}
	} else if (rc == SQLITE_DONE) {
		r = AGS_ERR_NOT_FOUND;
	} else {
		r = store_fail(s, rc, NULL);
	}
	sqlite3_reset(q);
	return r;
}
