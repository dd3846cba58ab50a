/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pattern codec's own structures, shared by pattern.c (validation,
 * building, the public API) and pattern_canon.c (the canonical writer).
 */
#ifndef AGS_PATTERN_INT_H
#define AGS_PATTERN_INT_H

#include <stddef.h>
#include <stdint.h>

#include <yyjson.h>

#include "agentsync/agentsync.h"

/*
 * A pattern is one malloc'd block: this struct, then the tag pointer array,
 * then every string (NUL-terminated), then the serialised JSON. All pointers
 * point into the block, so ags_pattern_dup is one memcpy plus relocation.
 */
struct ags_pattern {
	int64_t version;
	int64_t timestamp;
	int64_t expires_at;
	int priority;
	int tombstone;
	const char *id;
	const char *agent_id;
	const char *type;
	const char *source;
	const char **tags;
	size_t ntags;
	const char *json;
	size_t json_len;
	size_t size; /* bytes in the block */
	char checksum[65];
};

/* A string that need not be NUL-terminated. */
struct pstr {
	const char *s;
	size_t len;
};

/* The validated fields of a pattern, pointing into the parsed document. */
struct fields {
	struct pstr id, agent_id, type, source;
	yyjson_val *tags;     /* an array of strings, or NULL for a tombstone */
	yyjson_val *checksum; /* metadata.checksum as supplied, or NULL */
	int64_t version, timestamp, expires_at;
	int priority;
	int tombstone;
};

#define HEX_LEN 64
/*
 * Stand-in for metadata.checksum while writing: a raw byte that yyjson never
 * emits itself (it escapes control characters inside strings), so its single
 * occurrence in the output marks where the checksum goes.
 */
#define PLACEHOLDER      '\x01'
#define CHECKSUM_KEY     "\"checksum\":"
#define CHECKSUM_KEY_LEN (sizeof(CHECKSUM_KEY) - 1)
/* Objects with at most this many keys are sorted by insertion sort. */
#define SMALL_SORT 16
/*
 * An output buffer, inline first, that also serves as yyjson's allocator:
 * the allocation it lends is its own free tail, so yyjson writes a value in
 * place and nothing is copied. `max` bounds its capacity.
 */
struct ags_pattern_buf {
	char *p;
	size_t len, cap, max;
	int lent; /* the tail is lent to yyjson */
	char inl[2048];
};

/* ---- pattern_canon.c ---- */
/* An empty buffer that may grow to max bytes. */
void ags_pattern_buf_init(struct ags_pattern_buf *b, size_t max);
void ags_pattern_buf_free(struct ags_pattern_buf *b);
/*
 * Writes the canonical form of pattern `root` (validated) into b, without
 * metadata.checksum; *cut is where that member goes in the stored form.
 * Errors: AGS_ERR_PATTERN (err names the value), AGS_ERR_TOO_LARGE, AGS_ERR_NOMEM.
 */
int ags_pattern_canon(yyjson_val *root, struct ags_pattern_buf *b, size_t *cut, ags_error *err);
/* Lowercase hex SHA-256 of buf into hex[65]. 0, or AGS_ERR_INTERNAL (GnuTLS failed). */
int ags_pattern_sha256_hex(const void *buf, size_t len, char hex[65]);

#endif
