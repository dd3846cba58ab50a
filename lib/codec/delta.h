/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Deltas of pattern JSON (docs/PROTOCOL.md, "BATCH", delta entries): a new
 * version of a large pattern compressed with zstd using the version the peer
 * holds as a raw-content dictionary, carried as base64 text. Pure functions,
 * no I/O.
 */
#ifndef AGS_DELTA_H
#define AGS_DELTA_H

#include <stddef.h>

/* Patterns whose JSON is shorter than this are never sent as a delta, and
 * the store keeps no previous version of them. */
#define AGS_DELTA_MIN_BYTES 2048u
/* Largest full pattern a delta may rebuild ("size"), whatever the limits. */
#define AGS_DELTA_SIZE_MAX (16u * 1024u * 1024u)

/*
 * Compresses `full` (full_len bytes) with `base` (base_len bytes) as the
 * dictionary and writes the zstd frame as base64 into *b64 (malloc'd,
 * NUL-terminated; the caller frees it), its length in *b64_len. Only
 * succeeds when the base64 text is shorter than `max_len` bytes: the caller
 * sends the full record otherwise.
 * Errors: AGS_ERR_INVALID (empty input, full_len over AGS_DELTA_SIZE_MAX),
 * AGS_ERR_TOO_LARGE (would not be shorter than max_len), AGS_ERR_COMPRESS,
 * AGS_ERR_NOMEM.
 */
int ags_delta_make(const char *base, size_t base_len, const char *full, size_t full_len,
                   size_t max_len, char **b64, size_t *b64_len);

/*
 * Rebuilds a full pattern from a delta: decodes `b64` (b64_len bytes),
 * decompresses it with `base` as the dictionary into a buffer of size + 1
 * bytes (never more), and requires exactly `size` bytes to come out. On
 * success *out (malloc'd, NUL-terminated; the caller frees it) holds them.
 * Errors: AGS_ERR_INVALID (size 0 or over AGS_DELTA_SIZE_MAX), AGS_ERR_PROTO
 * (not base64), AGS_ERR_COMPRESS (not a zstd frame, corrupt, wrong
 * dictionary, or not exactly `size` bytes), AGS_ERR_NOMEM.
 */
int ags_delta_apply(const char *base, size_t base_len, const char *b64, size_t b64_len, size_t size,
                    char **out);

/* Whether `s` (len bytes) is canonical padded base64 (RFC 4648, section 4), non-empty. */
int ags_delta_b64_ok(const char *s, size_t len);

#endif
