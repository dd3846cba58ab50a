/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal extras of the store (lib/store/), for the sync engine and for
 * tests. The public store API is in agentsync/agentsync.h; the schema, the
 * apply rules and the digest are described in docs/ARCHITECTURE.md (Store).
 */
#ifndef AGS_STORE_H
#define AGS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "agentsync/agentsync.h"
#include "store_ckpt.h"

/* The file name the store was opened with (owned by the store; store_backup.c). */
const char *ags_store_path(const ags_store *s);

/* Bytes of a store key (AES-256). */
#define AGS_STORE_KEY_BYTES 32

/*
 * The key the store was opened with, copied into key (the caller wipes it):
 * 1, or 0 for a plain store (key untouched).
 */
int ags_store_key_of(const ags_store *s, uint8_t key[AGS_STORE_KEY_BYTES]);

/*
 * ags_store_backup of a store encrypted with `key` (AGS_STORE_KEY_BYTES
 * bytes; NULL: plain); the copy keeps the key. For a node, which has the
 * key of its open store (ags_store_key_of) rather than its file.
 */
int ags_store_backup_raw(const char *src, const uint8_t *key, const char *dst, ags_store_info *info,
                         ags_error *err);

/* The steps of ags_store_rekey, in order (for tests that stop it at each one). */
enum ags_rekey_step {
	AGS_REKEY_LOCKED = 1, /* the old store is open, keyed and locked */
	AGS_REKEY_SINGLE,     /* its WAL is checkpointed and gone (journal mode DELETE) */
	AGS_REKEY_EXPORTED,   /* the copy is written (not yet synced) */
	AGS_REKEY_SYNCED,     /* the copy is closed and synced */
	AGS_REKEY_CHECKED,    /* the copy checks against the old store */
	AGS_REKEY_RENAMED,    /* the copy is the store (directory not yet synced) */
	AGS_REKEY_DONE,       /* the directory is synced */
};

/*
 * ags_store_rekey calling step(ud, s) as each step is reached (step may be
 * NULL; it may kill the process, which is what the tests do).
 */
int ags_store_rekey_steps(const char *path, const char *old_key_file, const char *new_key_file,
                          ags_store_info *info, void (*step)(void *ud, int s), void *ud,
                          ags_error *err);

/* Schema version this build writes (PRAGMA user_version). */
#define AGS_STORE_SCHEMA_VERSION 5

/*
 * Store epochs (docs/PROTOCOL.md, "Store epochs"): a store may go back in
 * sequence under the same id (a restored backup, a power loss with fsync
 * off), after which its sequence numbers mean other changes. An epoch names
 * a stretch of the log in which they do not: (a random id, the first
 * sequence it numbers). A new one starts at every open by the node, at the
 * store's sequence + 1; the last AGS_STORE_EPOCHS_MAX are kept in the state
 * key AGS_STORE_EPOCHS_KEY.
 */
#define AGS_STORE_EPOCHS_MAX   32
#define AGS_STORE_EPOCH_ID_LEN 16
#define AGS_STORE_EPOCHS_KEY   "epochs"

typedef struct ags_store_epoch {
	char id[AGS_STORE_EPOCH_ID_LEN + 1]; /* 16 lowercase hex digits */
	uint64_t start;                      /* the first sequence it numbers */
} ags_store_epoch;

/*
 * Starts a new epoch at the store's sequence + 1 and saves the list; `out`
 * (room for AGS_STORE_EPOCHS_MAX) gets the kept epochs, oldest first, the new
 * one last, and *n their number. Call once per open, by the store's owner
 * only (not by a second connection that only reads).
 * Errors: AGS_ERR_STORE, AGS_ERR_NOMEM.
 */
int ags_store_epoch_begin(ags_store *s, ags_store_epoch *out, size_t *n, ags_error *err);

/* Largest value accepted by ags_store_state_set, in bytes. */
#define AGS_STORE_STATE_MAX (1024u * 1024u)

/* Longest origin or scope string stored with a change, in bytes. */
#define AGS_STORE_META_MAX 1024u

/*
 * Where a change came from and who may receive it, stored with its row.
 * Strings are borrowed for the duration of the call only.
 */
typedef struct ags_change_meta {
	const char *origin; /* Node id the change came from; NULL = made locally. */
	const char *scope;  /* NULL = every peer; otherwise who may receive it ("" = nobody:
	                       do not relay). The format is the sync engine's business. */
} ags_change_meta;

/*
 * The record clock of a change (strings borrowed for the call only).
 *
 * Record clocks (docs/PROTOCOL.md, "Federation hub", "Conflicts"): every row may carry a
 * vector clock (JSON object text, as ags_vclock_to_json writes it). A
 * received change brings its clock in `vc`, stored as is. A local write names
 * its `writer` and the writer's `tick` instead: the row's clock becomes the
 * stored row's clock with writer's entry raised to tick. When a change and the
 * stored row of the same id both have clocks and the clocks are concurrent,
 * or when they have the same version and other content, the two are a
 * conflict: the store's deterministic rule still picks the winner, and the
 * loser is kept in the conflicts table (ags_store_conflicts).
 */
typedef struct ags_change_clock {
	const char *vc;     /* The change's record clock (JSON), or NULL for none. */
	const char *writer; /* A local write: the writer's clock entry (with tick), or NULL. */
	uint64_t tick;      /* The writer's counter for this write (>= 1). */
} ags_change_clock;

/* One state key/value written with a batch; value NULL deletes the key. */
typedef struct ags_store_kv {
	const char *key;
	const char *value;
} ags_store_kv;

/* What applying one change did besides its outcome. */
typedef struct ags_apply_info {
	int conflict;          /* the change and the stored version conflicted (see above) */
	uint64_t conflict_seq; /* the loser's row in the conflicts table, when conflict */
} ags_apply_info;

/*
 * ags_store_apply_batch_ex with record clocks (`clocks`: an array of n, or
 * NULL for none), any number of state keys (`n_kv` of `kv`), all written in
 * the same transaction as the changes, and per-change `info` (an array of
 * n, or NULL). With n == 0, only the state is written.
 * Errors: as ags_store_apply_batch_ex; on failure res and info are zeroed.
 */
int ags_store_apply_batch_kv(ags_store *s, const ags_pattern *const *p, const ags_change_meta *meta,
                             const ags_change_clock *clocks, size_t n, const ags_store_kv *kv,
                             size_t n_kv, ags_apply_result *res, ags_apply_info *info,
                             ags_error *err);

/*
 * Like ags_store_apply_batch, plus per-change `meta` (an array of `n`, or NULL for
 * all-local, all-peers) stored with each row that the change replaces or inserts, and an
 * optional state key/value (`state_key` NULL for none; `state_value` NULL deletes the
 * key) written in the SAME transaction, so that a sync cursor is saved atomically with
 * the batch it covers. With n == 0 and a state key, only the state is written.
 * `res` (may be NULL) gets n results; on failure its contents are zeroed and the store
 * (rows, sequence, digest, count, state) is as it was before the call.
 * Errors: AGS_ERR_INVALID (NULL store, NULL change, id too long, origin or scope over
 * AGS_STORE_META_MAX, state value over AGS_STORE_STATE_MAX), AGS_ERR_STORE (err has
 * SQLite's message).
 */
int ags_store_apply_batch_ex(ags_store *s, const ags_pattern *const *p, const ags_change_meta *meta,
                             size_t n, const char *state_key, const char *state_value,
                             ags_apply_result *res, ags_error *err);

/*
 * A group: the batches applied between ags_store_group_begin and
 * ags_store_group_commit share one transaction (one commit for many, as the
 * applier writes a backlog). Within it ags_store_apply_batch_kv neither
 * begins nor commits; the group is all or nothing. After a failure inside a
 * group (any ags_store_apply_batch_kv error but AGS_ERR_INVALID, which
 * writes nothing) only ags_store_group_abort may follow. A commit that fails
 * rolls the group back itself.
 */
int ags_store_group_begin(ags_store *s, ags_error *err);
int ags_store_group_commit(ags_store *s, ags_error *err);
void ags_store_group_abort(ags_store *s);

/*
 * Checkpoints (lib/store/store_ckpt.c): the WAL of a connection that writes is
 * copied into the database file by a thread of the store's own, started on
 * the first commit that leaves the WAL over lim->soft_frames. The limits
 * are the defaults unless set (before that commit; for tests).
 */
void ags_store_set_ckpt_limits(ags_store *s, const ags_ckpt_limits *lim);
/* Checkpoints the thread has run. */
uint64_t ags_store_ckpt_runs(const ags_store *s);
/*
 * The store is busy although nobody writes (its log is being sent): the
 * checkpointer's pause starts again. Any thread.
 */
void ags_store_ckpt_defer(ags_store *s);

/*
 * The store's sequence as of its last commit. Unlike ags_store_seq, safe
 * to call from any thread without the caller's store lock (a reader on
 * another connection sees exactly what was committed).
 */
uint64_t ags_store_seq_committed(const ags_store *s);

/* A change as the log holds it (for senders: nothing parsed). Strings valid during the call. */
typedef struct ags_change_row {
	uint64_t seq;
	const char *id;
	int64_t version, timestamp;
	int tombstone;    /* a deletion: no body */
	const char *body; /* the canonical JSON of a live record */
	size_t body_len;
	const char *origin; /* NULL = made locally */
	const char *scope;  /* NULL = every peer */
	const char *vc;     /* the record clock (JSON), NULL = none */
	int priority;       /* metadata.priority, 0 = none */
} ags_change_row;

/* One record as anti-entropy sees it (ags_store_ae_rows); valid during the callback. */
typedef struct ags_ae_row {
	const char *id;
	int64_t version;
	const char *checksum;
	uint8_t term[32]; /* SHA-256(id 0x00 version 0x00 checksum): the digest's term */
	uint8_t hid[32];  /* SHA-256(id): where the record sits in the digest tree */
} ags_ae_row;

/* acc += t modulo 2^256 (big-endian): how digest terms add up. */
void ags_store_digest_add(uint8_t acc[32], const uint8_t t[32]);

/* Called once per record by ags_store_ae_rows; non-zero stops it (and is returned). */
typedef int (*ags_ae_row_cb)(void *ud, const ags_ae_row *r);

/*
 * Every record anti-entropy compares (docs/PROTOCOL.md, "Anti-entropy"):
 * live ones not expired and tombstones, without a scope, in no order.
 * Errors: AGS_ERR_INVALID, AGS_ERR_STORE, or the callback's value.
 */
int ags_store_ae_rows(ags_store *s, ags_ae_row_cb cb, void *ud);

/*
 * Puts the records `ids` (those that exist, live or tombstones) at the end
 * of the change log again, each under a new sequence and with no origin, in
 * one transaction: every sender sends them again, with the normal rules,
 * to every peer (anti-entropy's repair). *moved gets how many moved.
 * Errors: AGS_ERR_INVALID, AGS_ERR_STORE (nothing moved).
 */
int ags_store_relog(ags_store *s, const char *const *ids, size_t n, size_t *moved, ags_error *err);

/* Called once per row by ags_store_rows; non-zero stops the listing (and is returned). */
typedef int (*ags_row_cb)(void *user_data, const ags_change_row *row);

/*
 * Lists what ags_store_changes would (with origin, scope and clock), as stored rows, at most
 * `limit`
 * (> 0), leaving out changes whose origin is `skip_origin` (NULL: none left
 * out). *upto is the sequence the listing covers: the last row's when it
 * stopped at `limit` or a callback stopped it, else the store's sequence in
 * the same read (rows left out and gaps included). Reads in one transaction
 * of its own unless one is open, so a connection used only for this never
 * waits for a writer (WAL).
 * Errors: AGS_ERR_INVALID, AGS_ERR_STORE, or the callback's non-zero value.
 */
int ags_store_rows(ags_store *s, uint64_t after_seq, size_t limit, const char *skip_origin,
                   ags_row_cb cb, void *user_data, uint64_t *upto);

/*
 * Counts in *count the rows ags_store_rows would list after after_seq that
 * peer `peer_id` is to get: not those whose origin is peer_id, nor those
 * whose scope leaves it out (one SQL count, no row read).
 * Errors: AGS_ERR_INVALID, AGS_ERR_STORE.
 */
int ags_store_rows_for_count(ags_store *s, uint64_t after_seq, const char *peer_id,
                             uint64_t *count);

/*
 * The lowest sequence > after_seq that ags_store_changes would list (a live,
 * unexpired record or a tombstone), in *out. Lets a sender skip over gaps
 * left by superseded and expired changes.
 * Errors: AGS_ERR_INVALID, AGS_ERR_NOT_FOUND (nothing after after_seq),
 * AGS_ERR_STORE.
 */
int ags_store_next_seq(ags_store *s, uint64_t after_seq, uint64_t *out);

/* The state of a stored row. */
enum ags_record_state {
	AGS_RECORD_LIVE = 0,      /* A pattern (perhaps past its expiresAt, not yet swept). */
	AGS_RECORD_TOMBSTONE = 1, /* A deletion. */
	AGS_RECORD_EXPIRED = 2,   /* An expired pattern: content dropped, marker kept. */
};

/* What the store holds for one id, whatever its state. */
typedef struct ags_record_head {
	uint64_t seq;
	int64_t version;
	int64_t timestamp;
	int64_t expires_at; /* 0 when none */
	int state;          /* an ags_record_state */
	char checksum[65];
} ags_record_head;

/*
 * Looks up what the store holds for `id` (live, tombstone or expired), so a
 * caller can tell whether a change would be news without applying it.
 * Errors: AGS_ERR_INVALID, AGS_ERR_NOT_FOUND, AGS_ERR_STORE.
 */
int ags_store_head(ags_store *s, const char *id, ags_record_head *out);

/*
 * ags_store_head, plus the record clock: *vc (may be NULL) gets a malloc'd
 * copy of the row's clock JSON, or NULL when it has none.
 * Errors: as ags_store_head, and AGS_ERR_NOMEM.
 */
int ags_store_head_vc(ags_store *s, const char *id, ags_record_head *out, char **vc);

/*
 * Recomputes the digest and the live count from the rows themselves (a full
 * scan), for tests and consistency checks; compare with ags_store_digest and
 * the in-memory count. `digest` and `live` may be NULL.
 * Errors: AGS_ERR_INVALID, AGS_ERR_STORE.
 */
int ags_store_verify(ags_store *s, char digest[65], uint64_t *live);

/*
 * The message of the last SQLite failure on this store ("" if none), owned
 * by the store, for functions that have no ags_error parameter.
 */
const char *ags_store_errmsg(const ags_store *s);

/* One row of the conflicts table, as listed by ags_store_conflicts. */
typedef struct ags_conflict_info {
	uint64_t cseq; /* its sequence in the conflicts table */
	const char *id;
	int64_t at_ms; /* when it was recorded */
	int64_t winner_version;
	const char *winner_checksum;
	const char *winner_origin; /* NULL = written locally */
	int64_t loser_version;
	const char *loser_checksum;
	const char *loser_origin; /* NULL = written locally */
	const char *loser_vc;     /* NULL = none */
	const ags_pattern *loser; /* the losing version; NULL when it had expired */
} ags_conflict_info;

/* Called once per conflict; strings and the pattern are valid during the call only. */
typedef int (*ags_conflict_cb)(void *user_data, const ags_conflict_info *c);

/*
 * Lists the conflicts with cseq > after_cseq in order, at most `limit` (0:
 * all); with `involving` set, only those whose winner or loser came from that
 * origin. Errors: AGS_ERR_INVALID, AGS_ERR_STORE, AGS_ERR_NOMEM, or the
 * callback's non-zero value.
 */
int ags_store_conflicts(ags_store *s, uint64_t after_cseq, const char *involving, size_t limit,
                        ags_conflict_cb cb, void *user_data);

/*
 * Number of rows in the conflicts table and the highest cseq (either may be
 * NULL). Errors: AGS_ERR_INVALID, AGS_ERR_STORE.
 */
int ags_store_conflict_count(ags_store *s, uint64_t *count, uint64_t *max_cseq);

/*
 * The delta base kept for `id` (docs/PROTOCOL.md, "Delta sync"): when an
 * apply replaces a live record whose stored JSON is at least
 * AGS_DELTA_MIN_BYTES (lib/codec/delta.h) with a newer live version, the replaced
 * version is kept in the same transaction (one per id; the next update
 * overwrites it; a delete, an expiry or an update from a small record drops
 * it). Gives its version, checksum, the sequence it had in the change log
 * (*seq), and its JSON in *body (malloc'd, NUL-terminated; the caller
 * frees it) of *len bytes.
 * Errors: AGS_ERR_INVALID, AGS_ERR_NOT_FOUND (no base kept), AGS_ERR_STORE,
 * AGS_ERR_NOMEM.
 */
int ags_store_prev_get(ags_store *s, const char *id, int64_t *version, char checksum[65],
                       uint64_t *seq, char **body, size_t *len);

#endif
