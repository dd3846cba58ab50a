/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store's own structure, shared by its files: store.c (helpers, digest,
 * open and close), store_apply.c (writes), store_read.c (reads, expiry,
 * state, conflicts). Only the store touches SQLite.
 */
#ifndef AGS_STORE_INT_H
#define AGS_STORE_INT_H

#include <stdint.h>

#include <gnutls/crypto.h>
#include <sqlite3.h>

#include "store.h"
#include "store_ckpt.h"

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
	ST_ROWS_FOR,
	ST__COUNT
};

/* Columns listed by ST_QUERY and ST_CHANGES, in this order. */
#define ROW_COLS "seq, id, version, ts, st, body, origin, scope, vc"

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
	int keyed;       /* encrypted with `key` (store_key.c) */
	uint8_t key[AGS_STORE_KEY_BYTES];
};

/* What the store holds for one id, as read by ST_HEAD. */
struct ags_store_row_head {
	int64_t seq, version, ts, expires_at;
	int st;
	char checksum[65];
	char *origin; /* malloc'd, or NULL */
	char *vc;     /* malloc'd, or NULL */
};

/* The SQL of each prepared statement (store.c). */
extern const char *const ags_store_sql[ST__COUNT];

/* ---- store_key.c: encryption at rest ---- */
/*
 * Reads the 256-bit key of `key_file` (64 hex digits and an optional newline,
 * or 32 raw bytes) into key. Errors: AGS_ERR_INVALID (not a key file),
 * AGS_ERR_IO (cannot read it), AGS_ERR_NOMEM; the message names the file.
 */
int ags_store_key_load(const char *key_file, uint8_t key[AGS_STORE_KEY_BYTES], ags_error *err);
/*
 * Checks that SQLite is SQLCipher, then gives the database `schema` of db the
 * raw key (NULL: none, the file is plain SQLite). First thing on a connection.
 * Errors: AGS_ERR_STORE (no SQLCipher, SQLCipher refused), AGS_ERR_NOMEM.
 */
int ags_store_key_attach(sqlite3 *db, const char *schema, const uint8_t *key, const char *path,
                         ags_error *err);
/* The cipher settings of a keyed database `schema` (after its key). */
int ags_store_key_settings(sqlite3 *db, const char *schema, const char *path, ags_error *err);
/*
 * Reads page 1: whether the key (key_file names it; NULL: no key) fits.
 * Errors: AGS_ERR_AUTH (with a key: a wrong key, a plain file, not a
 * database), AGS_ERR_STORE (without: an encrypted store or not a database;
 * other SQLite failures), AGS_ERR_IO.
 */
int ags_store_key_check(sqlite3 *db, const char *path, const char *key_file, ags_error *err);
/*
 * sqlite3_open_v2(path, flags) with extended result codes, keyed and
 * checked as above; a connection that fails the check is closed without a
 * checkpoint (nothing written). Errors: those of both, AGS_ERR_IO.
 */
int ags_store_key_open(const char *path, int flags, const uint8_t *key, const char *key_file,
                       sqlite3 **out, ags_error *err);

/* ---- store_backup.c ---- */
/*
 * PRAGMA quick_check, the schema version and the meta table (id, seq,
 * patterns) of an open connection into info; the messages name `path`.
 * Errors: AGS_ERR_STORE (damaged, not a store, newer schema), AGS_ERR_NOMEM.
 */
int ags_store_read_info(sqlite3 *db, const char *path, ags_store_info *info, ags_error *err);

/* ---- store.c ---- */
/* Lowercase hex of n bytes into out (2n + 1 bytes). */
void ags_store_hex(const uint8_t *in, size_t n, char *out);
/* Remembers SQLite's message for `rc` and returns AGS_ERR_STORE (filling err if given). */
int ags_store_fail(ags_store *s, int rc, ags_error *err);
/* Steps a statement that returns no rows, then resets it. Returns the SQLite code. */
int ags_store_step_done(sqlite3_stmt *st);
/* A sequence as SQLite's signed integer. */
int64_t ags_store_clamp_seq(uint64_t seq);
/* The digest term of one live record: SHA-256(id 0x00 version 0x00 checksum) into out. */
void ags_store_digest_term(ags_store *s, const char *id, int64_t version, const char *checksum,
                           uint8_t out[32]);
/* acc -= t, modulo 2^256 (the digest is the sum of the terms of live records; the
 * addition, ags_store_digest_add, is in store.h). */
void ags_store_digest_sub(uint8_t acc[32], const uint8_t t[32]);

/* ---- store_apply.c ---- */
/* Frees what a head holds. */
void ags_store_head_clear(struct ags_store_row_head *h);
/*
 * Reads what the store holds for id into *h (origin and vc malloc'd:
 * ags_store_head_clear); returns 1 found, 0 not, or a negative SQLite code.
 */
int ags_store_read_head(ags_store *s, const char *id, struct ags_store_row_head *h);

#endif
