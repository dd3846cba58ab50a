/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The JSON messages of the wire protocol (docs/PROTOCOL.md, "Messages"):
 * HELLO, ACK, ERROR, AUTH, and the hub's PULL / PULL_DONE.
 *
 * Each message is one frame (frame.h) whose payload is one compact JSON
 * object (UTF-8). Encoders build it with yyjson and append the whole frame
 * (header + JSON) to an ags_frame_buf; decoders take the frame payload,
 * parse it with yyjson (strict RFC 8259), and check every field's type and
 * bounds, naming the field at fault in ags_error.field. Unknown members are
 * ignored (so later minor revisions may add some); a known member given
 * twice is refused.
 *
 * Decoded structs point into a yyjson document they own: release them with
 * the matching _free function (harmless on a struct a decoder refused or
 * on one the caller filled in for encoding, whose `doc` is NULL).
 * Pure functions, no I/O.
 */
#ifndef AGS_WIRE_H
#define AGS_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <yyjson.h>

#include "agentsync/agentsync.h"
#include "frame.h"

/* The protocol's major version: HELLO "proto". */
#define AGS_PROTO_VERSION 1

#define AGS_WIRE_NODE_MAX        256      /* node ids (HELLO node, vector clock agents) */
#define AGS_WIRE_TENANT_MAX      128      /* HELLO tenant */
#define AGS_WIRE_STORE_ID_LEN    32       /* store ids: 32 lowercase hex digits */
#define AGS_WIRE_FILTER_MAX      64       /* entries in each of filter.types and filter.tags */
#define AGS_WIRE_FILTER_ITEM_MAX 256      /* bytes in one filter entry */
#define AGS_WIRE_CODECS_MAX      16       /* entries in HELLO codecs */
#define AGS_WIRE_CODEC_NAME_MAX  32       /* bytes in one codec name */
#define AGS_WIRE_BATCH_SIZE_MAX  1000000u /* HELLO batchSize */
#define AGS_WIRE_TEXT_MAX        1024     /* ERROR error, ACK errors[].error */
#define AGS_WIRE_TOKEN_MAX       8192     /* AUTH token */
#define AGS_WIRE_VCLOCK_MAX      4096     /* entries in a vector clock */
#define AGS_WIRE_INSTANCE_MAX    64       /* HELLO instance */
#define AGS_WIRE_EPOCH_LEN       16       /* HELLO epochs[].id, cursor.epoch: hex digits */
#define AGS_WIRE_EPOCHS_MAX      32       /* HELLO epochs */
#define AGS_WIRE_CONFLICTS_MAX   10000    /* ids in ACK / PULL_DONE "conflicts" */
/* Largest QUIC varint, the bound of an application error code. */
#define AGS_WIRE_APP_CODE_MAX ((UINT64_C(1) << 62) - 1)

/* The HELLO message: the first frame each side sends. */
typedef struct ags_wire_hello {
	int proto;          /* AGS_PROTO_VERSION */
	const char *node;   /* this node's id, 1..256 bytes, no control characters */
	const char *tenant; /* 1..128 bytes, no control characters; "default" by convention */
	const char *store;  /* this node's store id, 32 lowercase hex */
	/* Codecs this node can decode: bit (1u << AGS_CODEC_x). "none" is always
	 * understood and never listed. Unknown names on the wire are ignored. */
	unsigned codecs;
	uint32_t max_frame;  /* largest frame payload it accepts, 64 KiB..64 MiB */
	uint32_t batch_size; /* most entries it accepts per batch, 1..AGS_WIRE_BATCH_SIZE_MAX */
	int has_cursor;      /* "cursor" present */
	const char *cursor_store; /* the peer store it last synced from: "" or 32 hex */
	uint64_t cursor_seq;      /* up to which sequence of that store it holds everything */
	int has_filter;           /* "filter" present */
	size_t n_types;           /* filter.types: only these pattern types, if any */
	const char *types[AGS_WIRE_FILTER_MAX];
	size_t n_tags; /* filter.tags: only patterns with one of these tags, if any */
	const char *tags[AGS_WIRE_FILTER_MAX];
	/* Optional "instance": a random id of the sending process (1..64 bytes, no control
	 * characters), new at every start, so a peer can tell a restarted node's connection
	 * from a stale one. NULL when absent. */
	const char *instance;
	/* Optional "delta": true when the sender accepts delta entries in batches
	 * (see PROTOCOL.md, delta sync). Encoded only when set. */
	int delta;
	/* Optional "epochs" [{id, start}, ...]: the sender's store epochs (PROTOCOL.md,
	 * "Store epochs"), oldest first, the last the current one: each an id of 16
	 * lowercase hex digits and the first sequence of the sender's log it numbers
	 * (starts never go down). 1..AGS_WIRE_EPOCHS_MAX entries; n_epochs 0: absent. */
	size_t n_epochs;
	const char *epoch_ids[AGS_WIRE_EPOCHS_MAX];
	uint64_t epoch_starts[AGS_WIRE_EPOCHS_MAX];
	/* Optional "cursor.epoch": the epoch of the peer's store in which cursor_seq was
	 * received (16 lowercase hex), or NULL. */
	const char *cursor_epoch;
	/* Optional "antiEntropy": true when the sender takes part in anti-entropy
	 * (frames AE_TREE and AE_IDS; PROTOCOL.md, "Anti-entropy"). Encoded only when set. */
	int anti_entropy;
	yyjson_doc *doc; /* set by decode: owns the strings */
} ags_wire_hello;

/*
 * Appends a HELLO frame for `h` (its doc is ignored) to `out`.
 * Errors: AGS_ERR_INVALID (a field out of bounds; err->field names it),
 * AGS_ERR_TOO_LARGE (out's max), AGS_ERR_NOMEM.
 */
int ags_wire_hello_encode(const ags_wire_hello *h, ags_frame_buf *out, ags_error *err);

/*
 * Decodes a HELLO payload. "proto" is checked first: not an integer is
 * AGS_ERR_PROTO, an integer other than AGS_PROTO_VERSION is
 * AGS_ERR_UNSUPPORTED (answer ERROR and close with VERSION_MISMATCH).
 * Required: proto, node, tenant, store, codecs, maxFrame, batchSize;
 * optional: cursor {store, seq}, filter {types?, tags?}, instance, delta.
 * On success *out owns its strings (ags_wire_hello_free).
 * Errors: AGS_ERR_INVALID, AGS_ERR_NOMEM, AGS_ERR_JSON (err->offset),
 * AGS_ERR_UNSUPPORTED, AGS_ERR_PROTO (err->field names the field; close with BAD_HELLO).
 */
int ags_wire_hello_decode(const uint8_t *json, size_t len, ags_wire_hello *out, ags_error *err);

/* Releases a decoded HELLO and empties it. NULL is a no-op. */
void ags_wire_hello_free(ags_wire_hello *h);

/* One refused entry of a batch, in an ACK. */
typedef struct ags_wire_ack_error {
	const char *pattern_id; /* 0..256 bytes ("" when the entry had no usable id) */
	const char *error;      /* 0..1024 bytes, human-readable */
	int code;               /* an AGS_ERR_* code */
} ags_wire_ack_error;

/* The ACK message: the receiver's answer to one BATCH. */
typedef struct ags_wire_ack {
	uint64_t request_id;     /* the batch's requestId */
	int success;             /* every entry was valid and the batch is durably applied */
	uint64_t received_count; /* entries received in the batch */
	uint64_t applied;        /* entries that changed the receiver's store (<= received_count) */
	uint64_t seq;            /* the receiver's store sequence after applying */
	/* Optional "retry": the batch was refused whole, nothing of it applied, and
	 * the sender must send its changes again (docs/PROTOCOL.md, "Refusals").
	 * Encode: written as "retry": true when set; decode: 0 when absent. */
	int retry;
	size_t n_errors;            /* set by decode */
	ags_wire_ack_error *errors; /* set by decode: owned array, strings in doc */
	/* Optional "conflicts": ids of entries of the batch that conflicted with the
	 * receiver's version (hub protocol). Encode: given by the caller (omitted when
	 * 0); decode: owned array, strings in doc. */
	size_t n_conflicts;
	const char **conflicts;
	yyjson_doc *doc;
} ags_wire_ack;

/*
 * Appends an ACK frame for `a` (its n_errors, errors and doc are ignored)
 * with the `n_errors` errors of `errors` to `out`.
 * Errors: AGS_ERR_INVALID (err->field names the bad field), AGS_ERR_TOO_LARGE, AGS_ERR_NOMEM.
 */
int ags_wire_ack_encode(const ags_wire_ack *a, const ags_wire_ack_error *errors, size_t n_errors,
                        ags_frame_buf *out, ags_error *err);

/*
 * Decodes an ACK payload. All of requestId, success, receivedCount, applied,
 * errors, seq are required; "errors" holds at most `max_errors` entries (0:
 * AGS_BATCH_MAX_COUNT_DEFAULT). On success *out owns its errors (ags_wire_ack_free).
 * Errors: AGS_ERR_INVALID, AGS_ERR_NOMEM, AGS_ERR_JSON, AGS_ERR_TOO_LARGE
 * (too many errors), AGS_ERR_PROTO (err->field names the field).
 */
int ags_wire_ack_decode(const uint8_t *json, size_t len, size_t max_errors, ags_wire_ack *out,
                        ags_error *err);

/* Releases a decoded ACK and empties it. NULL is a no-op. */
void ags_wire_ack_free(ags_wire_ack *a);

/* The ERROR message: why the sender is about to close the connection. */
typedef struct ags_wire_error {
	uint64_t
	    code; /* an ags_app_error code (any value up to AGS_WIRE_APP_CODE_MAX is accepted) */
	const char *text; /* 0..1024 bytes, human-readable */
	yyjson_doc *doc;
} ags_wire_error;

/* Appends an ERROR frame. Errors: AGS_ERR_INVALID, AGS_ERR_TOO_LARGE, AGS_ERR_NOMEM. */
int ags_wire_error_encode(uint64_t code, const char *text, ags_frame_buf *out, ags_error *err);

/*
 * Decodes an ERROR payload {"code", "error"} (both required).
 * Errors: AGS_ERR_INVALID, AGS_ERR_NOMEM, AGS_ERR_JSON, AGS_ERR_PROTO.
 */
int ags_wire_error_decode(const uint8_t *json, size_t len, ags_wire_error *out, ags_error *err);

/* Releases a decoded ERROR and empties it. NULL is a no-op. */
void ags_wire_error_free(ags_wire_error *e);

/* The AUTH message, to a hub: {"token": "<JWT>"}. */
typedef struct ags_wire_auth {
	const char *token; /* 1..8192 bytes, no control characters; not verified here */
	yyjson_doc *doc;
} ags_wire_auth;

/* Appends an AUTH frame. Errors: AGS_ERR_INVALID, AGS_ERR_TOO_LARGE, AGS_ERR_NOMEM. */
int ags_wire_auth_encode(const char *token, ags_frame_buf *out, ags_error *err);

/* Decodes an AUTH payload. Errors: AGS_ERR_INVALID, AGS_ERR_NOMEM, AGS_ERR_JSON, AGS_ERR_PROTO. */
int ags_wire_auth_decode(const uint8_t *json, size_t len, ags_wire_auth *out, ags_error *err);

/* Releases a decoded AUTH and empties it. NULL is a no-op. */
void ags_wire_auth_free(ags_wire_auth *a);

/*
 * PULL and PULL_DONE (hub; semantics in the hub section of PROTOCOL.md):
 * {"vectorClock": {"<agentId>": n, ...}}, agent ids 1..256 bytes without
 * control characters, counters unsigned 64-bit, at most AGS_WIRE_VCLOCK_MAX
 * entries, no agent twice.
 */
typedef struct ags_wire_vclock {
	size_t n;
	const char **agents; /* set by decode: owned array, strings in doc */
	uint64_t *counters;  /* set by decode: owned array */
	/* Optional "conflictSeq": where the agent's view of the hub's conflicts
	 * stands (PULL) / up to which conflict this answer reports (PULL_DONE). */
	int has_conflict_seq;
	uint64_t conflict_seq;
	/* Optional "conflicts" (PULL_DONE): ids of records with conflicts that
	 * involve the agent, at most AGS_WIRE_CONFLICTS_MAX. Decode: owned array. */
	size_t n_conflicts;
	const char **conflicts;
	yyjson_doc *doc;
} ags_wire_vclock;

/*
 * Appends a PULL or PULL_DONE frame (`type`) with the clock of `n` entries.
 * Errors: AGS_ERR_INVALID (bad type, agent id, or a repeated agent), AGS_ERR_TOO_LARGE,
 * AGS_ERR_NOMEM.
 */
int ags_wire_vclock_encode(uint8_t type, const char *const *agents, const uint64_t *counters,
                           size_t n, ags_frame_buf *out, ags_error *err);

/*
 * ags_wire_vclock_encode with the optional members of `v` (its agents,
 * counters, n, conflict_seq if has_conflict_seq, conflicts; doc ignored).
 * Errors: as ags_wire_vclock_encode (AGS_ERR_INVALID also for a bad or
 * over-long conflicts list).
 */
int ags_wire_vclock_encode_ex(uint8_t type, const ags_wire_vclock *v, ags_frame_buf *out,
                              ags_error *err);

/*
 * Decodes a PULL or PULL_DONE payload. On success *out owns its arrays
 * (ags_wire_vclock_free). Errors: AGS_ERR_INVALID, AGS_ERR_NOMEM, AGS_ERR_JSON,
 * AGS_ERR_TOO_LARGE (too many entries), AGS_ERR_PROTO.
 */
int ags_wire_vclock_decode(const uint8_t *json, size_t len, ags_wire_vclock *out, ags_error *err);

/* Releases a decoded vector clock and empties it. NULL is a no-op. */
void ags_wire_vclock_free(ags_wire_vclock *v);

#endif
