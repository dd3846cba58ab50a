/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal interface of the pattern codec (lib/codec/pattern.c): entry points for
 * layers that already hold parsed JSON (the batch decoder) or that read back
 * records they wrote themselves (the store), and the canonical serialiser.
 * The canonical form and checksum are specified in docs/PROTOCOL.md.
 */
#ifndef AGS_PATTERN_H
#define AGS_PATTERN_H

#include <stddef.h>

#include <yyjson.h>

#include "agentsync/agentsync.h"

/*
 * Validates the already parsed JSON value `v` as a pattern (or tombstone),
 * exactly as ags_pattern_parse() does, and makes a pattern of it. The size
 * limit (opts->max_bytes, 0 or NULL opts for the default) applies to the
 * serialised form, i.e. the length of ags_pattern_json() of the result.
 * `v` is only read; it must stay valid during the call only (every string the
 * pattern needs is copied).
 *
 * On success *out owns a new pattern (free with ags_pattern_del); on failure
 * *out is NULL and `err` (may be NULL) says why.
 * Errors: AGS_ERR_INVALID (v or out NULL), AGS_ERR_NOMEM, AGS_ERR_PATTERN
 * (err->field set), AGS_ERR_TOO_LARGE, AGS_ERR_CHECKSUM.
 */
int ags_pattern_from_val(yyjson_val *v, const ags_pattern_opts *opts, ags_pattern **out,
                         ags_error *err);

/*
 * Fast path for records read back from our own store: `json` (`len` bytes,
 * need not be NUL-terminated) must be the output of ags_pattern_json(), i.e.
 * canonical JSON with metadata.checksum inside, or a tombstone. The fields
 * are checked for type and range, but the canonical form and the checksum
 * are NOT recomputed: the checksum is taken from metadata.checksum, and
 * ags_pattern_json() of the result returns `json` byte for byte. Depth and
 * duplicate keys are not checked. Memory-safe on any input.
 *
 * On success *out owns a new pattern (free with ags_pattern_del).
 * Errors: AGS_ERR_INVALID (out NULL, or json NULL with len > 0),
 * AGS_ERR_NOMEM, AGS_ERR_JSON (not JSON), AGS_ERR_PATTERN (not a stored
 * pattern: a field has the wrong type or metadata.checksum is missing).
 */
int ags_pattern_parse_trusted(const char *json, size_t len, ags_pattern **out);

/*
 * Writes the canonical serialisation of any JSON value `v`: compact, every
 * object's keys sorted by their UTF-8 bytes (memcmp order, a prefix first),
 * strings and numbers as yyjson writes them. Nothing is removed (unlike the
 * pattern checksum, which leaves out metadata.checksum).
 *
 * On success *out is a NUL-terminated malloc'd string the caller frees with
 * free(), and *len (may be NULL) its length.
 * Errors: AGS_ERR_INVALID (v or out NULL), AGS_ERR_NOMEM, AGS_ERR_PATTERN
 * (nesting deeper than AGS_PATTERN_MAX_DEPTH, or a duplicate key, which
 * would make the canonical form ambiguous).
 */
int ags_json_canonical(yyjson_val *v, char **out, size_t *len);

#endif
