/* SPDX-License-Identifier: Apache-2.0 */
/*
 * BATCH frames: a batch of changes (puts and deletes) sent from one node to a
 * peer (docs/PROTOCOL.md, "BATCH").
 *
 * Payload, big-endian, after the 8-byte frame header:
 *
 *   off  size
 *   0    8   requestId      u64, the sender's id for this batch (echoed in the ACK)
 *   8    8   timestamp      i64, ms since the epoch, when the batch was made
 *   16   8   uptoSeq        u64, the sender's change-log sequence up to which
 *                           the stream is complete after this batch (0: none)
 *   24   1   codec          0 none, 1 gzip, 2 zstd
 *   25   1   flags          0
 *   26   2   sourceLen      1..256
 *   28   S   source         the sender's node id (no control characters)
 *   28+S 4   count          entries in the body
 *   32+S 4   rawLen         bytes of the raw (uncompressed) body
 *   36+S 32  sha256         SHA-256 of the raw body
 *   68+S ..  body           the raw body compressed per codec, to the end
 *
 * The raw body is a JSON array of `count` entries, each either
 *   {"p": <pattern object>}                                 a put, or
 *   {"d": {"id": s, "version": n, "timestamp": n}}          a delete (tombstone), or
 *   {"x": {"id": s, "version": n, "base": {"version": n, "checksum": "64hex"},
 *          "delta": "base64", "size": n}}                   a delta (lib/codec/delta.h):
 *   the new version `version` of pattern `id`, whose full JSON is `size` bytes,
 *   as a zstd frame compressed with the JSON of the base version as dictionary;
 * optionally with "nr": true (no relay: the receiver must not forward it) and
 * "vc": {...} (the change's record clock, an object; see docs/PROTOCOL.md, "Federation hub").
 *
 * This module checks the framing, the codec, the sizes, the checksum and the
 * shape of the entries; it does not validate pattern content (the sync
 * engine does, with ags_pattern_from_val). Pure functions, no I/O.
 */
#ifndef AGS_BATCH_H
#define AGS_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include <yyjson.h>

#include "agentsync/agentsync.h"
#include "frame.h"

/* Body codecs (the codec byte). */
typedef enum ags_codec {
	AGS_CODEC_NONE = 0,
	AGS_CODEC_GZIP = 1, /* RFC 1952 gzip (zlib deflate, windowBits 15+16) */
	AGS_CODEC_ZSTD = 2, /* Zstandard frame(s), RFC 8878 */
} ags_codec;

/* Bytes of the payload header before the source. */
#define AGS_BATCH_FIXED_HEAD 28
/* Bytes of the payload header after the source. */
#define AGS_BATCH_FIXED_TAIL 40
/* Longest source (sender node id), in bytes. */
#define AGS_BATCH_SOURCE_MAX 256
/* Largest payload header: fixed parts plus the longest source. */
#define AGS_BATCH_HEADER_MAX (AGS_BATCH_FIXED_HEAD + AGS_BATCH_SOURCE_MAX + AGS_BATCH_FIXED_TAIL)
/* Default largest raw body a decoder accepts: 64 MiB. */
#define AGS_BATCH_MAX_RAW_DEFAULT (64u * 1024u * 1024u)
/* Default most entries a decoder accepts in one batch. */
#define AGS_BATCH_MAX_COUNT_DEFAULT 10000u
/* Raw bodies shorter than this are sent uncompressed. */
#define AGS_BATCH_COMPRESS_MIN 256u

/* Returns "none", "gzip", "zstd", or "unknown". */
const char *ags_codec_name(int codec);

/* The codec called `name` (as in HELLO "codecs"), or -1 when unknown. */
int ags_codec_from_name(const char *name);

/* The fields of a payload header. */
typedef struct ags_batch_header {
	uint64_t request_id;
	int64_t timestamp_ms;
	uint64_t upto_seq;
	uint8_t codec;
	uint8_t flags;
	const char *source; /* not NUL-terminated on writing; see ags_batch for decoding */
	uint16_t source_len;
	uint32_t count;
	uint32_t raw_len;
	uint8_t sha256[32];
} ags_batch_header;

/*
 * Appends the payload header `h` to `out`, byte for byte, without checking
 * the values (tests and fuzzers use it to build malformed batches; the
 * encoder for real ones). Errors: AGS_ERR_INVALID (NULL source with
 * source_len > 0), AGS_ERR_TOO_LARGE, AGS_ERR_NOMEM.
 */
int ags_batch_header_write(const ags_batch_header *h, ags_frame_buf *out);

/* Decoder limits. Zero fields mean the defaults. */
typedef struct ags_batch_limits {
	size_t max_raw;   /* largest rawLen accepted; default AGS_BATCH_MAX_RAW_DEFAULT */
	size_t max_count; /* most entries accepted; default AGS_BATCH_MAX_COUNT_DEFAULT */
	/* Optional ZSTD_DCtx (from <zstd.h>) to reuse across batches instead of making one per
	 * batch; owned by the caller, used from one thread at a time. NULL: one per call. */
	void *zstd_dctx;
} ags_batch_limits;

typedef enum ags_batch_kind {
	AGS_BATCH_PUT = 1,
	AGS_BATCH_DEL = 2,
	AGS_BATCH_DELTA = 3,
	/* An entry of the wrong shape (not an object, not exactly one of p, d, x,
	 * a d or x member out of range): refused alone, `bad` says why. */
	AGS_BATCH_BAD = 4,
} ags_batch_kind;

/* One decoded entry. Pointers are owned by the batch (its yyjson document). */
typedef struct ags_batch_entry {
	int kind;            /* AGS_BATCH_PUT, AGS_BATCH_DEL or AGS_BATCH_DELTA */
	int no_relay;        /* "nr": true */
	yyjson_val *pattern; /* PUT: the pattern object, not validated; NULL for DEL */
	const char *id;      /* DEL, DELTA: the id (1..256 bytes, no NUL inside); NULL for PUT */
	size_t id_len;
	int64_t version;      /* DEL, DELTA: >= 1 */
	int64_t timestamp;    /* DEL: >= 0 */
	yyjson_val *vc;       /* "vc": the record clock object, not validated; NULL when absent */
	int64_t base_version; /* DELTA: base.version, >= 1 and < version */
	const char *base_checksum; /* DELTA: base.checksum, 64 lowercase hex */
	const char *delta;         /* DELTA: the base64 text (checked syntax only) */
	size_t delta_len;
	size_t
	    size; /* DELTA: bytes of the full pattern JSON, 1..min(max_raw, AGS_DELTA_SIZE_MAX) */
	/* BAD: why (code AGS_ERR_PROTO or AGS_ERR_TOO_LARGE, field entries[i]...); owned by
	 * the batch. id is set when the entry had a usable one. */
	ags_error *bad;
} ags_batch_entry;

/*
 * A decoded batch. Embedded: filled by ags_batch_decode, released with
 * ags_batch_free. hdr.source points to `source` (NUL-terminated).
 */
typedef struct ags_batch {
	ags_batch_header hdr;
	char source[AGS_BATCH_SOURCE_MAX + 1];
	size_t n_entries; /* == hdr.count */
	ags_batch_entry *entries;
	yyjson_doc *doc; /* the parsed raw body; owns the entries' values */
	size_t wire_len; /* bytes of the payload as received */
} ags_batch;

/*
 * Decodes a BATCH payload of `len` bytes (the frame's payload, without the
 * frame header). `lim` may be NULL for the defaults. Steps, each refusing:
 * the header is parsed strictly (AGS_ERR_PROTO naming the field that is
 * truncated or wrong: flags, sourceLen, source); an unknown codec is
 * AGS_ERR_UNSUPPORTED; count over max_count or rawLen over max_raw is
 * AGS_ERR_TOO_LARGE (before anything is allocated); the body is decompressed
 * into a buffer of rawLen + 1 bytes, never more, and must come to exactly
 * rawLen bytes (more: a decompression bomb; fewer; or corrupt data: all
 * AGS_ERR_COMPRESS); for codec none the body must be exactly rawLen bytes
 * (AGS_ERR_PROTO); the SHA-256 of the raw body must equal the header's
 * (AGS_ERR_CHECKSUM); the raw body must be JSON (AGS_ERR_JSON, err->offset
 * set) holding an array of exactly `count` entries of the two shapes
 * (AGS_ERR_PROTO, err->field like "entries[3].d.version").
 *
 * Unknown members in an entry (or in "d") are ignored; a member of an entry
 * given twice is refused.
 *
 * On success *out owns the entries and the document (ags_batch_free). On
 * failure *out is left empty (ags_batch_free on it is harmless).
 * Errors: as above, plus AGS_ERR_INVALID (NULL arguments), AGS_ERR_NOMEM.
 */
int ags_batch_decode(const uint8_t *payload, size_t len, const ags_batch_limits *lim,
                     ags_batch *out, ags_error *err);

/* Releases a decoded batch and empties it. NULL is a no-op. */
void ags_batch_free(ags_batch *b);

/* Options of a batch encoder. Zero fields mean the defaults. */
typedef struct ags_batch_encoder_opts {
	/* Largest frame payload the peer accepts (its HELLO maxFrame);
	 * default AGS_FRAME_MAX_DEFAULT, at most AGS_FRAME_MAX_HARD. */
	size_t max_frame;
	/* Largest raw body; default and ceiling max_frame - AGS_BATCH_HEADER_MAX, so
	 * that a finished batch always fits in a frame even uncompressed. */
	size_t max_raw;
	/* Most entries in one batch (the peer's HELLO batchSize); default
	 * AGS_BATCH_MAX_COUNT_DEFAULT. */
	size_t max_count;
	int zstd_level; /* 1..3; default 1 */
	int gzip_level; /* 1..6; default 6 */
} ags_batch_encoder_opts;

/* What finishing a batch produced. */
typedef struct ags_batch_stats {
	uint32_t count;  /* entries */
	size_t raw_len;  /* bytes of the raw JSON body */
	size_t wire_len; /* bytes of the whole frame: header + payload */
	int codec_used;  /* the codec actually used */
} ags_batch_stats;

/*
 * A reusable batch encoder: keeps a zstd context, a gzip stream and its
 * buffers (each with a maximum) across batches. Lifecycle: new; then for
 * each batch: begin, add_put / add_del..., finish; del.
 * Not thread-safe; use one per thread.
 */
typedef struct ags_batch_encoder ags_batch_encoder;

/*
 * Makes an encoder. `opts` may be NULL. On success *out owns it
 * (ags_batch_encoder_del).
 * Errors: AGS_ERR_INVALID (a level or size out of range), AGS_ERR_NOMEM,
 * AGS_ERR_COMPRESS (zlib or zstd refused to initialise).
 */
int ags_batch_encoder_new(const ags_batch_encoder_opts *opts, ags_batch_encoder **out);

/* Frees an encoder. NULL is a no-op. */
void ags_batch_encoder_del(ags_batch_encoder *e);

/* Starts a new, empty batch (forgets any unfinished one and the last frame). */
void ags_batch_encoder_begin(ags_batch_encoder *e);

/*
 * Adds a put of the pattern whose JSON object text is `json` (`len` bytes,
 * need not be NUL-terminated), spliced into the body as is: it must be one
 * valid JSON object, such as ags_pattern_json() returns (only its first and
 * last non-blank characters are checked). `no_relay` sets "nr": true.
 * Errors: AGS_ERR_INVALID (not an object), AGS_ERR_STATE (no begin),
 * AGS_ERR_TOO_LARGE (the batch is full: max_count entries, or the body would
 * pass max_raw; the entry is not added, finish this batch and put it in the
 * next one), AGS_ERR_NOMEM.
 */
int ags_batch_encoder_add_put(ags_batch_encoder *e, const char *json, size_t len, int no_relay);

/*
 * Adds a delete of `id` (NUL-terminated, 1..256 bytes) at `version` (>= 1)
 * made at `timestamp_ms` (>= 0). Errors: as add_put.
 */
int ags_batch_encoder_add_del(ags_batch_encoder *e, const char *id, int64_t version,
                              int64_t timestamp_ms, int no_relay);

/*
 * add_put and add_del with the change's record clock: `vc` (`vc_len` bytes,
 * one JSON object such as ags_vclock_to_json writes; spliced in as is) is
 * written as the entry's "vc" member. vc NULL: none, as add_put / add_del.
 * Errors: as add_put (AGS_ERR_INVALID also when vc is not an object).
 */
int ags_batch_encoder_add_put_vc(ags_batch_encoder *e, const char *json, size_t len, int no_relay,
                                 const char *vc, size_t vc_len);
int ags_batch_encoder_add_del_vc(ags_batch_encoder *e, const char *id, int64_t version,
                                 int64_t timestamp_ms, int no_relay, const char *vc, size_t vc_len);

/*
 * Adds a delta entry: the new version `version` of `id` (NUL-terminated,
 * 1..256 bytes), whose full JSON is `size` bytes, as base64 text `delta`
 * (`delta_len` bytes, as ags_delta_make writes) against the base version
 * `base_version` (< version) with checksum `base_checksum` (64 hex). `vc` as
 * for add_put_vc (NULL: none).
 * Errors: as add_put (AGS_ERR_INVALID for any argument out of range).
 */
int ags_batch_encoder_add_delta(ags_batch_encoder *e, const char *id, int64_t version,
                                int64_t base_version, const char *base_checksum, const char *delta,
                                size_t delta_len, size_t size, int no_relay, const char *vc,
                                size_t vc_len);

/* Entries added since begin. */
size_t ags_batch_encoder_count(const ags_batch_encoder *e);

/* Bytes of the raw body so far, including the closing bracket still to come. */
size_t ags_batch_encoder_raw_len(const ags_batch_encoder *e);

/*
 * Finishes the batch: closes the body, hashes it, compresses it with
 * `codec` when that pays (raw body of AGS_BATCH_COMPRESS_MIN bytes or more,
 * and compressed < 90% of raw; otherwise codec none is used), and builds the
 * whole BATCH frame (frame header + payload). `source` is this node's id
 * (1..256 bytes, no control characters). *frame (owned by the encoder, valid
 * until the next begin or del) and *frame_len get the frame; `stats` (may
 * be NULL) what was done. The encoder then needs a begin for the next batch.
 * Errors: AGS_ERR_INVALID (bad source or codec), AGS_ERR_STATE (no begin, or
 * already finished), AGS_ERR_COMPRESS, AGS_ERR_NOMEM.
 */
int ags_batch_encoder_finish(ags_batch_encoder *e, uint64_t request_id, int64_t timestamp_ms,
                             uint64_t upto_seq, const char *source, int codec,
                             const uint8_t **frame, size_t *frame_len, ags_batch_stats *stats);

/* Shared by the decoder (batch.c) and the encoder (batch_enc.c). */
/* Whether `s` (n bytes) is a usable node id: 1..256 bytes, no control characters. */
int ags_batch_source_ok(const char *s, size_t n);
/* Whether s (n bytes) is 64 hexadecimal digits (a SHA-256). */
int ags_batch_hex64_ok(const char *s, size_t n);

#endif
