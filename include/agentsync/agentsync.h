/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agentsync: real-time, loss-free synchronisation of patterns (JSON records
 * that AI agents learn and share) between agents, over QUIC with TLS 1.3.
 *
 * This header is the whole public API. It has three layers, each usable on
 * its own:
 *
 *   - Patterns: parse, validate, checksum and serialise pattern records
 *     (ags_pattern_*). Pure functions, no I/O.
 *   - Store: a durable SQLite store of patterns with an idempotent,
 *     deterministic apply and a change log (ags_store_*).
 *   - Node: a QUIC node that keeps a store in sync with its peers
 *     (ags_node_*), declared in agentsync/node.h.
 *
 * Conventions, throughout:
 *   - Functions return 0 (AGS_OK) on success or a negative AGS_ERR_* code;
 *     ags_strerror() names each code.
 *   - Where a person needs to know what went wrong, a function takes an
 *     optional ags_error *, filled in on failure with the code, the field or
 *     JSON path at fault, a byte offset where one applies, and a sentence.
 *   - Ownership moves only on success: an object returned through an out
 *     parameter belongs to the caller, who frees it with the matching _del
 *     function; on failure nothing is returned and nothing needs freeing.
 *   - The library never prints and never exits.
 */
#ifndef AGENTSYNC_H
#define AGENTSYNC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(AGS_BUILDING_LIBRARY)
#define AGS_EXPORT __attribute__((visibility("default")))
#else
#define AGS_EXPORT
#endif

#define AGS_VERSION_STRING "0.1.0"

/*
 * Error codes. Every function that can fail returns one of these (negative)
 * or AGS_OK.
 */
typedef enum ags_err {
	AGS_OK = 0,
	AGS_ERR_INVALID = -1,   /* An argument is invalid (NULL, out of range). */
	AGS_ERR_NOMEM = -2,     /* Out of memory. */
	AGS_ERR_JSON = -3,      /* Malformed JSON (the error detail has the byte offset). */
	AGS_ERR_PATTERN = -4,   /* Well-formed JSON, but not a valid pattern. */
	AGS_ERR_TOO_LARGE = -5, /* Over a configured size limit. */
	AGS_ERR_CHECKSUM = -6,  /* A supplied checksum does not match the content. */
	AGS_ERR_STORE = -7,     /* The SQLite store failed (the detail has SQLite's message). */
	AGS_ERR_IO = -8,        /* A file or socket operation failed (detail has errno text). */
	AGS_ERR_NOT_FOUND = -9, /* No such record, peer or file. */
	AGS_ERR_TLS = -10,      /* TLS failed: handshake, certificate, key. */
	AGS_ERR_QUIC = -11,     /* The QUIC layer failed. */
	AGS_ERR_PROTO = -12,    /* The peer broke the wire protocol. */
	AGS_ERR_CLOSED = -13,   /* The connection or object is closed. */
	AGS_ERR_TIMEOUT = -14,  /* An operation did not complete in time. */
	AGS_ERR_AUTH = -15,     /* Authentication or authorisation refused. */
	AGS_ERR_CONFIG = -16,   /* A configuration value is wrong (detail has its path). */
	AGS_ERR_STATE = -17,    /* The call does not fit the object's state (e.g. not started). */
	AGS_ERR_AGAIN = -18,    /* Try again later (flow control, full queue). */
	AGS_ERR_COMPRESS = -19, /* Compression or decompression failed, or output limit hit. */
	AGS_ERR_UNSUPPORTED = -20, /* Not supported by this build or by the peer. */
	AGS_ERR_EXISTS = -21,      /* Already exists. */
	AGS_ERR_INTERNAL = -22,    /* A bug: an invariant did not hold. */
} ags_err;

/* Returns a static, human-readable name for an error code. Never NULL. */
AGS_EXPORT const char *ags_strerror(int err);

/*
 * Details of a failure, for a person. Filled in by functions that take one,
 * on failure only. `field` is the JSON path of the offending value (e.g.
 * "metadata.priority"), empty when none applies; `offset` is the byte offset
 * in the input for malformed JSON, or (size_t)-1.
 */
typedef struct ags_error {
	int code;
	char field[96];
	size_t offset;
	char message[256];
} ags_error;

/* Resets an ags_error to "no error". */
AGS_EXPORT void ags_error_clear(ags_error *e);

/* Milliseconds since the Unix epoch, from the real-time clock. */
AGS_EXPORT int64_t ags_now_ms(void);

/* ------------------------------------------------------------------------ */
/* Patterns                                                                 */
/* ------------------------------------------------------------------------ */

/* Default largest serialised pattern accepted: 1 MiB. */
#define AGS_PATTERN_MAX_BYTES_DEFAULT (1024u * 1024u)
/* Longest id, in bytes. */
#define AGS_PATTERN_ID_MAX 256
/* Deepest nesting of arrays and objects accepted anywhere in a pattern. */
#define AGS_PATTERN_MAX_DEPTH 64

/*
 * A parsed, validated, immutable pattern: seed 000's
 *
 *   { id, agentId, type, data, metadata: { source, tags[], priority?,
 *     expiresAt?, checksum? }, timestamp, version }
 *
 * plus any unknown top-level fields, which are kept. A pattern can also be a
 * tombstone (a deletion of `id` at `version`), which has no content.
 * Immutable once made, so it can be shared between threads for reading.
 */
typedef struct ags_pattern ags_pattern;

typedef struct ags_pattern_opts {
	/* Largest accepted input in bytes; 0 means AGS_PATTERN_MAX_BYTES_DEFAULT. */
	size_t max_bytes;
} ags_pattern_opts;

/*
 * Parses and validates one pattern from JSON text `json` of `len` bytes (it
 * need not be NUL-terminated). `opts` may be NULL for the defaults.
 *
 * Validation: id present, a non-empty string of at most 256 bytes; agentId
 * and type strings; version an integer >= 1; timestamp an integer >= 0;
 * metadata an object with source a string, tags an array of strings,
 * priority (optional) an integer 1-10, expiresAt (optional) an integer,
 * checksum (optional) 64 hex digits equal to the computed checksum; data
 * present (any JSON value); valid UTF-8; nesting at most
 * AGS_PATTERN_MAX_DEPTH; no duplicate keys in any object; at most max_bytes.
 *
 * The checksum is SHA-256 (hex) over the canonical serialisation described
 * in docs/PROTOCOL.md.
 *
 * On success *out owns a new pattern (free with ags_pattern_del).
 * Errors: AGS_ERR_INVALID, AGS_ERR_NOMEM, AGS_ERR_JSON (err->offset set),
 * AGS_ERR_PATTERN (err->field set), AGS_ERR_TOO_LARGE, AGS_ERR_CHECKSUM.
 */
AGS_EXPORT int ags_pattern_parse(const char *json, size_t len, const ags_pattern_opts *opts,
                                 ags_pattern **out, ags_error *err);

/*
 * Parses and validates a JSON array of patterns (`len` bytes of `json`),
 * each element exactly as ags_pattern_parse() does, except that the size
 * limit (opts->max_bytes) applies to each pattern's serialised form. One
 * parse of the whole text, which costs less than one call per pattern.
 * All of them or none: on success *out is a new array of *n patterns (free
 * it with ags_pattern_array_del); on failure *out is NULL, *n is 0 and
 * err->field names the element at fault ("[3].metadata.priority").
 * Errors: AGS_ERR_INVALID, AGS_ERR_NOMEM, AGS_ERR_JSON (err->offset set),
 * AGS_ERR_PATTERN (also when the root is not an array), AGS_ERR_TOO_LARGE,
 * AGS_ERR_CHECKSUM.
 */
AGS_EXPORT int ags_pattern_parse_array(const char *json, size_t len, const ags_pattern_opts *opts,
                                       ags_pattern ***out, size_t *n, ags_error *err);

/* Frees the n patterns of ps and ps itself (from ags_pattern_parse_array). NULL is a no-op. */
AGS_EXPORT void ags_pattern_array_del(ags_pattern **ps, size_t n);

/*
 * Makes a tombstone: the deletion of `id` at `version` (>= 1), made at
 * `timestamp_ms`. Its checksum covers id, version and timestamp.
 * Errors: AGS_ERR_INVALID (bad id or version), AGS_ERR_NOMEM.
 */
AGS_EXPORT int ags_pattern_new_tombstone(const char *id, int64_t version, int64_t timestamp_ms,
                                         ags_pattern **out);

/* Frees a pattern. NULL is a no-op. */
AGS_EXPORT void ags_pattern_del(ags_pattern *p);

/* Returns a deep copy of p (free with ags_pattern_del), or NULL when out of memory. */
AGS_EXPORT ags_pattern *ags_pattern_dup(const ags_pattern *p);

/* Accessors. Strings are owned by the pattern and NUL-terminated. */
AGS_EXPORT const char *ags_pattern_id(const ags_pattern *p);
AGS_EXPORT const char *ags_pattern_agent_id(const ags_pattern *p); /* "" for a tombstone */
AGS_EXPORT const char *ags_pattern_type(const ags_pattern *p);     /* "" for a tombstone */
AGS_EXPORT const char *ags_pattern_source(const ags_pattern *p);   /* "" for a tombstone */
AGS_EXPORT int64_t ags_pattern_version(const ags_pattern *p);
AGS_EXPORT int64_t ags_pattern_timestamp(const ags_pattern *p);
/* metadata.priority, or 0 when absent. */
AGS_EXPORT int ags_pattern_priority(const ags_pattern *p);
/* metadata.expiresAt in ms, or 0 when absent. */
AGS_EXPORT int64_t ags_pattern_expires_at(const ags_pattern *p);
AGS_EXPORT size_t ags_pattern_tag_count(const ags_pattern *p);
AGS_EXPORT const char *ags_pattern_tag(const ags_pattern *p, size_t i); /* NULL past the end */
/* Whether the pattern has the tag `tag`. */
AGS_EXPORT int ags_pattern_has_tag(const ags_pattern *p, const char *tag);
/* 64 lowercase hex digits of the content checksum. */
AGS_EXPORT const char *ags_pattern_checksum(const ags_pattern *p);
/* Non-zero for a tombstone. */
AGS_EXPORT int ags_pattern_is_tombstone(const ags_pattern *p);

/*
 * The pattern serialised as compact JSON, with metadata.checksum set to the
 * computed checksum; unknown top-level fields are kept. For a tombstone, its
 * canonical form {"deleted":true,"id":...,"timestamp":...,"version":...}.
 * The string is owned by the pattern; *len (if not NULL) gets its length.
 */
AGS_EXPORT const char *ags_pattern_json(const ags_pattern *p, size_t *len);

/*
 * Compares two versions of one record with the store's deterministic rule:
 * higher version wins; at equal versions, later timestamp wins, then the
 * greater checksum (byte-wise on the hex text). Returns > 0 when a wins,
 * < 0 when b wins, 0 when they are the same change (same version and
 * checksum).
 */
AGS_EXPORT int ags_pattern_compare(const ags_pattern *a, const ags_pattern *b);

/* ------------------------------------------------------------------------ */
/* Store                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * A durable store of patterns in one SQLite database (WAL mode). A store
 * handle is not thread-safe: use it from one thread at a time.
 */
typedef struct ags_store ags_store;

typedef struct ags_store_opts {
	/*
	 * 0 (default): synchronous=NORMAL, a committed change survives the
	 * process being killed. 1: synchronous=FULL, it also survives power
	 * loss, at the cost of an fsync per commit.
	 */
	int fsync_full;
	/*
	 * Encryption at rest: NULL (default) for an ordinary SQLite 3 file, or
	 * a file holding the store's 256-bit key (64 hex digits and an optional
	 * newline, or 32 raw bytes). With a key every page of the database and
	 * of its WAL is encrypted (SQLCipher). A store is opened with the key it
	 * was made with: a wrong key or a key for a plain store is AGS_ERR_AUTH,
	 * no key for an encrypted store AGS_ERR_STORE; nothing is written.
	 */
	const char *key_file;
} ags_store_opts;

/*
 * Opens (creating if needed) the store database at `path`. A new store gets
 * a random 128-bit identity, so a reader can tell a wiped store from an old
 * one. `opts` may be NULL.
 * Errors: AGS_ERR_INVALID (also: the key file is not one), AGS_ERR_NOMEM,
 * AGS_ERR_STORE, AGS_ERR_IO, AGS_ERR_AUTH (the key does not open the store;
 * see ags_store_opts.key_file).
 */
AGS_EXPORT int ags_store_open(const char *path, const ags_store_opts *opts, ags_store **out,
                              ags_error *err);

/* Closes the store. NULL is a no-op. */
AGS_EXPORT void ags_store_close(ags_store *s);

/* The store's identity, 32 lowercase hex digits, owned by the store. */
AGS_EXPORT const char *ags_store_id(const ags_store *s);

/* What applying one change did. */
typedef enum ags_apply_outcome {
	AGS_APPLY_INSERTED = 1,      /* Unknown id: stored. */
	AGS_APPLY_UPDATED = 2,       /* Higher version: replaced the stored one. */
	AGS_APPLY_STALE = 3,         /* Lower version (or already expired): ignored. */
	AGS_APPLY_DUPLICATE = 4,     /* Same version and checksum: nothing to do. */
	AGS_APPLY_CONFLICT_WON = 5,  /* Same version, other content; this one won and replaced. */
	AGS_APPLY_CONFLICT_LOST = 6, /* Same version, other content; the stored one won. */
} ags_apply_outcome;

/* Returns a static name for an outcome ("inserted", "updated", ...). */
AGS_EXPORT const char *ags_apply_outcome_name(int outcome);

typedef struct ags_apply_result {
	int outcome;  /* an ags_apply_outcome */
	uint64_t seq; /* the change-log sequence given to it, 0 when nothing changed */
} ags_apply_result;

/*
 * Applies one change (a pattern or a tombstone) durably; see the batch form.
 */
AGS_EXPORT int ags_store_apply(ags_store *s, const ags_pattern *p, ags_apply_result *res,
                               ags_error *err);

/*
 * Applies `n` changes in one transaction: all of them or none. Apply is
 * idempotent and deterministic (every store that sees the same set of
 * changes, in any order, ends in the same state): unknown id -> insert;
 * higher version -> replace; lower version -> ignored; equal version and
 * checksum -> duplicate; equal version and other content -> the winner of
 * ags_pattern_compare() stays, and the outcome says a conflict happened. A
 * record that has expired never comes back from a change of the same or an
 * older version. `res` (may be NULL) gets one result per change.
 * Every change that alters the store gets the next sequence number.
 * When this returns 0, the changes are committed.
 * Errors: AGS_ERR_INVALID, AGS_ERR_STORE (nothing applied).
 */
AGS_EXPORT int ags_store_apply_batch(ags_store *s, const ags_pattern *const *p, size_t n,
                                     ags_apply_result *res, ags_error *err);

/*
 * Gets the live record `id` (not deleted, not expired). On success *out owns
 * a new pattern. Errors: AGS_ERR_NOT_FOUND, AGS_ERR_STORE, AGS_ERR_NOMEM.
 */
AGS_EXPORT int ags_store_get(ags_store *s, const char *id, ags_pattern **out);

/*
 * Called once per record by the listing functions, with its change-log
 * sequence. The pattern is only valid during the call (ags_pattern_dup it to
 * keep it). Return 0 to go on, anything else to stop (the listing then
 * returns that value).
 */
typedef int (*ags_pattern_cb)(void *user_data, const ags_pattern *p, uint64_t seq);

/* Filters for ags_store_query. Zero-initialise, then set what you need. */
typedef struct ags_query {
	const char *type;     /* only this type, or NULL */
	const char *tag;      /* only records with this tag, or NULL */
	const char *agent_id; /* only this agentId, or NULL */
	uint64_t after_seq;   /* only records whose sequence is greater */
	size_t limit;         /* at most this many; 0 means no limit */
} ags_query;

/*
 * Lists live records matching `q` (NULL for all) in sequence order.
 * Errors: AGS_ERR_STORE, AGS_ERR_NOMEM, or the callback's non-zero value.
 */
AGS_EXPORT int ags_store_query(ags_store *s, const ags_query *q, ags_pattern_cb cb,
                               void *user_data);

/*
 * The change log: every change with a sequence greater than `after_seq`, in
 * sequence order, at most `limit` (0: all). Live records and tombstones are
 * listed; the log keeps only the newest change of each id (older ones are
 * superseded), and expired records are left out (every node expires them
 * itself). Errors as ags_store_query.
 */
AGS_EXPORT int ags_store_changes(ags_store *s, uint64_t after_seq, size_t limit, ags_pattern_cb cb,
                                 void *user_data);

/* Number of live records. Errors: AGS_ERR_STORE. */
AGS_EXPORT int ags_store_count(ags_store *s, uint64_t *out);

/* The highest sequence number given so far (0 for an empty store). */
AGS_EXPORT uint64_t ags_store_seq(const ags_store *s);

/*
 * An order-independent digest of the live content, 64 hex digits plus NUL
 * written to out: the sum modulo 2^256 of SHA-256(id, version, checksum)
 * over live records, kept up to date on every change so reading it is O(1).
 * Two stores with the same live records have the same digest.
 */
AGS_EXPORT void ags_store_digest(const ags_store *s, char out[65]);

/*
 * Purges records whose metadata.expiresAt is at or before `now_ms`: their
 * content is dropped and a marker kept so that the same or an older version
 * is never applied again. *purged (may be NULL) gets how many.
 * Errors: AGS_ERR_STORE.
 */
AGS_EXPORT int ags_store_sweep(ags_store *s, int64_t now_ms, uint64_t *purged);

/*
 * Small key/value state kept in the store, for layers above (sync cursors,
 * vector clocks). Keys and values are strings. ags_store_state_get writes
 * at most `cap` bytes including the NUL; Errors: AGS_ERR_NOT_FOUND,
 * AGS_ERR_TOO_LARGE (cap too small), AGS_ERR_STORE.
 */
AGS_EXPORT int ags_store_state_set(ags_store *s, const char *key, const char *value);
AGS_EXPORT int ags_store_state_get(ags_store *s, const char *key, char *buf, size_t cap);

/* What ags_store_backup and ags_store_inspect found in a store file. */
typedef struct ags_store_info {
	char id[33];       /* the store's identity (32 hex digits) */
	uint64_t seq;      /* its change-log sequence */
	uint64_t patterns; /* live records */
	int schema;        /* schema version (PRAGMA user_version) */
	uint64_t bytes;    /* size of the file */
} ags_store_info;

/*
 * Copies the store database at `src` into a new file `dst`, online and
 * consistent: SQLite's backup API reads every page in one read transaction
 * of a connection of its own, so a node may go on writing to `src` (its WAL
 * is read too) and the copy is the store as of one commit. The copy is
 * written to a temporary file beside `dst` (mode 0600), turned into a single
 * file (journal mode DELETE), checked (PRAGMA quick_check and the store's
 * meta table), synced, and then renamed to `dst`; nothing is left at `dst`
 * when it fails. The copy keeps the store's identity. `info` (may be NULL)
 * gets what the copy holds. Also the way to restore: copy a backup into a
 * new data directory's store.db.
 * Errors: AGS_ERR_INVALID, AGS_ERR_EXISTS (dst exists), AGS_ERR_NOT_FOUND
 * (no src), AGS_ERR_IO, AGS_ERR_STORE (src is not a readable agentsync
 * store, or the copy is damaged; the message says which file and why),
 * AGS_ERR_NOMEM.
 */
AGS_EXPORT int ags_store_backup(const char *src, const char *dst, ags_store_info *info,
                                ags_error *err);

/*
 * ags_store_backup of a store encrypted with the key in `key_file` (NULL:
 * a plain store, as ags_store_backup): the copy is encrypted with the same
 * key. Errors: those of ags_store_backup, and those of the key file and
 * AGS_ERR_AUTH as ags_store_open.
 */
AGS_EXPORT int ags_store_backup_key(const char *src, const char *key_file, const char *dst,
                                    ags_store_info *info, ags_error *err);

/*
 * Encrypts (old_key_file NULL), re-keys, or decrypts (new_key_file NULL) the
 * store at `path`, which no process may have open (a running node is
 * refused: AGS_ERR_STATE). The store is copied into "<path>.rekey" with the
 * new key (SQLCipher's sqlcipher_export), the copy checked against the
 * original (PRAGMA quick_check; same id, sequence and live count) and
 * synced, then renamed over `path`. Crash-safe: a process killed at any
 * point leaves at `path` either the old store or the new one, whole, and
 * never a WAL of one beside the other (the old store's WAL is checkpointed
 * and removed first); a "<path>.rekey" left over is removed by the next
 * call. `info` (may be NULL) gets what the new store holds.
 * Errors: AGS_ERR_INVALID (same file for both keys, no key at all),
 * AGS_ERR_NOT_FOUND (no store at path), AGS_ERR_STATE (in use),
 * AGS_ERR_AUTH (old key does not open it), those of the key files as
 * ags_store_open, AGS_ERR_IO, AGS_ERR_STORE, AGS_ERR_NOMEM.
 */
AGS_EXPORT int ags_store_rekey(const char *path, const char *old_key_file, const char *new_key_file,
                               ags_store_info *info, ags_error *err);

/* ags_store_inspect of a store encrypted with the key in `key_file` (NULL: plain). */
AGS_EXPORT int ags_store_inspect_key(const char *path, const char *key_file, ags_store_info *info,
                                     ags_error *err);

/*
 * Opens the store database at `path` read-only, checks it (PRAGMA
 * quick_check, the meta table, the schema version) and fills `info`.
 * Changes nothing. Errors: AGS_ERR_INVALID, AGS_ERR_NOT_FOUND, AGS_ERR_IO,
 * AGS_ERR_STORE (not an agentsync store, damaged, or of a newer schema).
 */
AGS_EXPORT int ags_store_inspect(const char *path, ags_store_info *info, ags_error *err);

/*
 * The state key under which a synced store keeps its vector clock: a JSON
 * object {"writer": counter, ...} (docs/PROTOCOL.md, "Federation hub").
 */
#define AGS_STORE_CLOCK_KEY "vclock"

#ifdef __cplusplus
}
#endif

#endif /* AGENTSYNC_H */
