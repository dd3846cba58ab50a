/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pattern codec: parse and validate pattern JSON, build its canonical
 * serialisation and SHA-256 checksum, make tombstones, and compare versions.
 * Pure functions: no I/O, no global state. The format is specified in
 * docs/PROTOCOL.md ("Patterns"). The canonical writer is in pattern_canon.c.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <yyjson.h>

#include "agentsync/agentsync.h"
#include "error.h"
#include "pattern.h"

#include "pattern_int.h"

/* ------------------------------------------------------------------------ */
/* Error helpers                                                            */
/* ------------------------------------------------------------------------ */

/* Describes a JSON value for an error message ("a string", "1.5"). */
static const char *describe(yyjson_val *v, char *buf, size_t cap)
{
	switch (yyjson_get_type(v)) {
	case YYJSON_TYPE_NULL:
		return "null";
	case YYJSON_TYPE_BOOL:
		return yyjson_get_bool(v) ? "true" : "false";
	case YYJSON_TYPE_STR:
		return "a string";
	case YYJSON_TYPE_ARR:
		return "an array";
	case YYJSON_TYPE_OBJ:
		return "an object";
	case YYJSON_TYPE_NUM: {
		size_t n = 0;
		char *s = yyjson_val_write(v, 0, &n);
		if (!s)
			return "a number";
		snprintf(buf, cap, "%s", s);
		free(s);
		return buf;
	}
	default:
		return "nothing";
	}
}

/* Sets an AGS_ERR_PATTERN for `field`: "is required". */
static int missing(ags_error *err, const char *field)
{
	return ags_error_set(err, AGS_ERR_PATTERN, field, "is required");
}

/* ------------------------------------------------------------------------ */
/* Field validation                                                         */
/* ------------------------------------------------------------------------ */

/* Checks that v is a string without NUL of `min`..`max` bytes; stores it in *out. */
static int check_str(yyjson_val *v, const char *field, size_t min, size_t max, struct pstr *out,
                     ags_error *err)
{
	char buf[64];
	if (!v)
		return missing(err, field);
	if (!yyjson_is_str(v))
		return ags_error_set(err, AGS_ERR_PATTERN, field, "must be a string, got %s",
		                     describe(v, buf, sizeof(buf)));
	out->s = yyjson_get_str(v);
	out->len = yyjson_get_len(v);
	if (out->len < min)
		return ags_error_set(err, AGS_ERR_PATTERN, field, "must not be empty");
	if (out->len > max)
		return ags_error_set(err, AGS_ERR_PATTERN, field,
		                     "must be at most %zu bytes long, got %zu bytes", max,
		                     out->len);
	/* Strings the API hands out as C strings cannot hold a NUL. */
	if (memchr(out->s, '\0', out->len))
		return ags_error_set(err, AGS_ERR_PATTERN, field,
		                     "must not contain the NUL character (\\u0000)");
	return 0;
}

/* Checks that v is an integer (not a real) from min to max; stores it in *out. */
static int check_int(yyjson_val *v, const char *field, int64_t min, int64_t max, int64_t *out,
                     ags_error *err)
{
	char buf[64];
	int ok = 0;
	if (!v)
		return missing(err, field);
	if (yyjson_is_uint(v)) {
		uint64_t u = yyjson_get_uint(v);
		ok = u <= (uint64_t)max && (int64_t)u >= min;
		*out = (int64_t)u;
	} else if (yyjson_is_sint(v)) {
		int64_t s = yyjson_get_sint(v);
		ok = s >= min && s <= max;
		*out = s;
	}
	if (!ok)
		return ags_error_set(err, AGS_ERR_PATTERN, field,
		                     "must be an integer from %lld to %lld, got %s", (long long)min,
		                     (long long)max, describe(v, buf, sizeof(buf)));
	return 0;
}

/* Whether s is HEX_LEN hexadecimal digits. */
static int is_hex(const char *s)
{
	/*
	 * Without branches (a checksum's digits are random, so a branch on
	 * "digit or letter" is mispredicted half the time), over a fixed
	 * length the compiler vectorises.
	 */
	unsigned char bad = 0;
	for (size_t i = 0; i < HEX_LEN; i++) {
		unsigned char c = (unsigned char)s[i];
		bad |= (unsigned char)(c - '0') > 9 && (unsigned char)((c | 0x20) - 'a') > 5;
	}
	return !bad;
}

/*
 * Finds, in one pass over object `obj`, the first member named by each of
 * the `n` names (lens[i] bytes each): out[i] is its value, or NULL. The same
 * members yyjson_obj_get() would find, without a scan per name.
 */
static void obj_pick(yyjson_val *obj, const char *const *names, const size_t *lens, size_t n,
                     yyjson_val **out)
{
	yyjson_obj_iter it = yyjson_obj_iter_with(obj);
	yyjson_val *k;

	for (size_t i = 0; i < n; i++)
		out[i] = NULL;
	while ((k = yyjson_obj_iter_next(&it))) {
		const char *ks = yyjson_get_str(k);
		size_t kl = yyjson_get_len(k);
		for (size_t i = 0; i < n; i++) {
			if (kl == lens[i] && ks[0] == names[i][0] && !out[i] &&
			    memcmp(ks, names[i], kl) == 0) {
				out[i] = yyjson_obj_iter_get_val(k);
				break;
			}
		}
	}
}

/* The members of metadata that check_metadata reads, in obj_pick order. */
enum { MD_SOURCE, MD_TAGS, MD_PRIORITY, MD_EXPIRES_AT, MD_CHECKSUM, MD_N };

/* The offset of the first control character (under 0x20, or 0x7f) in s, or -1. */
static long first_ctl(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return (long)i;
	return -1;
}

/*
 * check_str for names (id, type, agentId, source, tags): no control characters either,
 * as these end up in logs, file names of exports and terminals (docs/PROTOCOL.md).
 */
static int check_name(yyjson_val *v, const char *field, size_t min, size_t max, struct pstr *out,
                      ags_error *err)
{
	int rc = check_str(v, field, min, max, out, err);
	if (rc)
		return rc;
	long at = first_ctl(out->s, out->len);
	if (at >= 0)
		return ags_error_set(
		    err, AGS_ERR_PATTERN, field,
		    "must not contain control characters (byte 0x%02x at offset %ld)",
		    (unsigned char)out->s[at], at);
	return 0;
}

/* Validates metadata (an object) into f. */
static int check_metadata(yyjson_val *md, struct fields *f, ags_error *err)
{
	static const char *const names[MD_N] = {"source", "tags", "priority", "expiresAt",
	                                        "checksum"};
	static const size_t lens[MD_N] = {6, 4, 8, 9, 8};
	yyjson_val *m[MD_N], *v;
	char buf[64];
	int rc;

	obj_pick(md, names, lens, MD_N, m);
	rc = check_name(m[MD_SOURCE], "metadata.source", 0, SIZE_MAX, &f->source, err);
	if (rc)
		return rc;

	v = m[MD_TAGS];
	if (!v)
		return missing(err, "metadata.tags");
	if (!yyjson_is_arr(v))
		return ags_error_set(err, AGS_ERR_PATTERN, "metadata.tags",
		                     "must be an array of strings, got %s",
		                     describe(v, buf, sizeof(buf)));
	yyjson_arr_iter it = yyjson_arr_iter_with(v);
	yyjson_val *t;
	for (size_t i = 0; (t = yyjson_arr_iter_next(&it)); i++) {
		char field[40];
		struct pstr s;
		if (yyjson_is_str(t) && first_ctl(yyjson_get_str(t), yyjson_get_len(t)) < 0)
			continue;
		/* Only now, on the error path, is the field name worth formatting. */
		snprintf(field, sizeof(field), "metadata.tags[%zu]", i);
		return check_name(t, field, 0, SIZE_MAX, &s, err);
	}
	f->tags = v;

	v = m[MD_PRIORITY];
	if (v) {
		int64_t pr;
		rc = check_int(v, "metadata.priority", 1, 10, &pr, err);
		if (rc)
			return rc;
		f->priority = (int)pr;
	}
	v = m[MD_EXPIRES_AT];
	if (v) {
		rc = check_int(v, "metadata.expiresAt", 0, INT64_MAX, &f->expires_at, err);
		if (rc)
			return rc;
	}
	v = m[MD_CHECKSUM];
	if (v) {
		if (!yyjson_is_str(v) || yyjson_get_len(v) != HEX_LEN || !is_hex(yyjson_get_str(v)))
			return ags_error_set(err, AGS_ERR_PATTERN, "metadata.checksum",
			                     "must be 64 hexadecimal digits (a SHA-256), got %s",
			                     yyjson_is_str(v) ? "other text"
			                                      : describe(v, buf, sizeof(buf)));
		f->checksum = v;
	}
	return 0;
}

/* Validates a tombstone object: exactly deleted:true, id, timestamp, version. */
static int check_tombstone(yyjson_val *root, struct fields *f, ags_error *err)
{
	static const char *const keys[] = {"deleted", "id", "timestamp", "version"};
	unsigned seen = 0;
	yyjson_obj_iter it = yyjson_obj_iter_with(root);
	yyjson_val *k, *v;
	char buf[64];
	int rc;

	v = yyjson_obj_get(root, "deleted");
	if (!yyjson_is_true(v))
		return ags_error_set(
		    err, AGS_ERR_PATTERN, "deleted",
		    "must be true (a record with \"deleted\" is a tombstone), got %s",
		    describe(v, buf, sizeof(buf)));
	while ((k = yyjson_obj_iter_next(&it))) {
		unsigned j;
		for (j = 0; j < 4; j++)
			if (yyjson_equals_str(k, keys[j]))
				break;
		if (j == 4)
			return ags_error_set(err, AGS_ERR_PATTERN, yyjson_get_str(k),
			                     "is not allowed in a tombstone (a record with "
			                     "\"deleted\"), which has only deleted, id, "
			                     "timestamp and version");
		if (seen & (1u << j))
			return ags_error_set(err, AGS_ERR_PATTERN, keys[j], "duplicate key \"%s\"",
			                     keys[j]);
		seen |= 1u << j;
	}
	rc = check_name(yyjson_obj_get(root, "id"), "id", 1, AGS_PATTERN_ID_MAX, &f->id, err);
	if (!rc)
		rc = check_int(yyjson_obj_get(root, "timestamp"), "timestamp", 0, INT64_MAX,
		               &f->timestamp, err);
	if (!rc)
		rc = check_int(yyjson_obj_get(root, "version"), "version", 1, INT64_MAX,
		               &f->version, err);
	f->tombstone = 1;
	return rc;
}

/* The top-level members check_fields reads, in obj_pick order. */
enum { F_ID, F_AGENT_ID, F_TYPE, F_DATA, F_METADATA, F_TIMESTAMP, F_VERSION, F_DELETED, F_N };

/*
 * Validates the fields of a pattern or tombstone (not depth, duplicate keys
 * or the checksum value: the canonical writer checks those) into f.
 */
static int check_fields(yyjson_val *root, struct fields *f, ags_error *err)
{
	static const char *const names[F_N] = {"id",       "agentId",   "type",    "data",
	                                       "metadata", "timestamp", "version", "deleted"};
	static const size_t lens[F_N] = {2, 7, 4, 4, 8, 9, 7, 7};
	yyjson_val *m[F_N], *v;
	char buf[64];
	int rc;

	memset(f, 0, sizeof(*f));
	if (!yyjson_is_obj(root))
		return ags_error_set(err, AGS_ERR_PATTERN, "", "must be a JSON object, got %s",
		                     describe(root, buf, sizeof(buf)));
	obj_pick(root, names, lens, F_N, m);
	if (m[F_DELETED])
		return check_tombstone(root, f, err);

	rc = check_name(m[F_ID], "id", 1, AGS_PATTERN_ID_MAX, &f->id, err);
	if (rc)
		return rc;
	rc = check_name(m[F_AGENT_ID], "agentId", 0, SIZE_MAX, &f->agent_id, err);
	if (rc)
		return rc;
	rc = check_name(m[F_TYPE], "type", 0, SIZE_MAX, &f->type, err);
	if (rc)
		return rc;
	if (!m[F_DATA])
		return missing(err, "data");
	v = m[F_METADATA];
	if (!v)
		return missing(err, "metadata");
	if (!yyjson_is_obj(v))
		return ags_error_set(err, AGS_ERR_PATTERN, "metadata", "must be an object, got %s",
		                     describe(v, buf, sizeof(buf)));
	rc = check_metadata(v, f, err);
	if (rc)
		return rc;
	rc = check_int(m[F_TIMESTAMP], "timestamp", 0, INT64_MAX, &f->timestamp, err);
	if (rc)
		return rc;
	return check_int(m[F_VERSION], "version", 1, INT64_MAX, &f->version, err);
}

/* ------------------------------------------------------------------------ */
/* Building a pattern                                                       */
/* ------------------------------------------------------------------------ */

static char *put(char **cur, const char *s, size_t len)
{
	char *d = *cur;
	if (len)
		memcpy(d, s, len);
	d[len] = '\0';
	*cur = d + len + 1;
	return d;
}

/*
 * Makes the pattern block from validated fields, its checksum, and its JSON
 * given as up to three pieces that are concatenated.
 */
static int pattern_build(const struct fields *f, const char hex[65], const struct pstr json[3],
                         ags_pattern **out, ags_error *err)
{
	size_t ntags = f->tags ? yyjson_arr_size(f->tags) : 0, i;
	size_t size = sizeof(ags_pattern) + ntags * sizeof(char *);
	size_t json_len = json[0].len + json[1].len + json[2].len;
	yyjson_val *t;

	size += f->id.len + f->agent_id.len + f->type.len + f->source.len + 4 + json_len + 1;
	yyjson_arr_iter it = yyjson_arr_iter_with(f->tags);
	while ((t = yyjson_arr_iter_next(&it)))
		size += yyjson_get_len(t) + 1;

	ags_pattern *p = malloc(size);
	if (!p)
		return ags_error_set(err, AGS_ERR_NOMEM, NULL, "out of memory");
	char *cur = (char *)p + sizeof(*p) + ntags * sizeof(char *);
	p->version = f->version;
	p->timestamp = f->timestamp;
	p->expires_at = f->expires_at;
	p->priority = f->priority;
	p->tombstone = f->tombstone;
	p->id = put(&cur, f->id.s, f->id.len);
	p->agent_id = put(&cur, f->agent_id.s, f->agent_id.len);
	p->type = put(&cur, f->type.s, f->type.len);
	p->source = put(&cur, f->source.s, f->source.len);
	p->tags = (const char **)(p + 1);
	p->ntags = ntags;
	it = yyjson_arr_iter_with(f->tags);
	for (i = 0; (t = yyjson_arr_iter_next(&it)); i++)
		p->tags[i] = put(&cur, yyjson_get_str(t), yyjson_get_len(t));
	char *j = cur;
	for (i = 0; i < 3; i++) {
		if (json[i].len)
			memcpy(cur, json[i].s, json[i].len);
		cur += json[i].len;
	}
	*cur = '\0';
	p->json = j;
	p->json_len = json_len;
	p->size = size;
	memcpy(p->checksum, hex, 65);
	*out = p;
	return 0;
}

static size_t max_bytes(const ags_pattern_opts *opts)
{
	return opts && opts->max_bytes ? opts->max_bytes : AGS_PATTERN_MAX_BYTES_DEFAULT;
}

static int too_large(ags_error *err, size_t len, size_t max)
{
	return ags_error_set(err, AGS_ERR_TOO_LARGE, NULL,
	                     "pattern is %zu bytes, over the limit of %zu bytes", len, max);
}

/* Makes a tombstone from validated fields (id, version, timestamp). */
static int tombstone_build(struct fields *f, size_t max, ags_pattern **out, ags_error *err)
{
	yyjson_mut_doc *doc = yyjson_mut_doc_new(NULL);
	yyjson_mut_val *root;
	char *json = NULL, hex[65];
	size_t len = 0;
	int rc = AGS_ERR_NOMEM;

	if (!doc)
		goto fail;
	root = yyjson_mut_obj(doc);
	if (!root)
		goto fail;
	yyjson_mut_doc_set_root(doc, root);
	/* Keys in sorted order, so this is the canonical form. */
	if (!yyjson_mut_obj_add_true(doc, root, "deleted") ||
	    !yyjson_mut_obj_add_strn(doc, root, "id", f->id.s, f->id.len) ||
	    !yyjson_mut_obj_add_int(doc, root, "timestamp", f->timestamp) ||
	    !yyjson_mut_obj_add_int(doc, root, "version", f->version))
		goto fail;
	json = yyjson_mut_write(doc, YYJSON_WRITE_NOFLAG, &len);
	if (!json) {
		/* The only other failure is an id that is not valid UTF-8. */
		rc = ags_error_set(err, AGS_ERR_INVALID, "id", "must be valid UTF-8");
		goto out;
	}
	if (len > max) {
		rc = too_large(err, len, max);
		goto out;
	}
	rc = ags_pattern_sha256_hex(json, len, hex);
	if (rc)
		goto out;
	f->tombstone = 1;
	f->agent_id = f->type = f->source = (struct pstr){"", 0};
	f->tags = NULL;
	rc = pattern_build(f, hex, (struct pstr[3]){{json, len}, {NULL, 0}, {NULL, 0}}, out, err);
	goto out;
fail:
	rc = ags_error_set(err, AGS_ERR_NOMEM, NULL, "out of memory");
out:
	free(json);
	yyjson_mut_doc_free(doc);
	return rc;
}

int ags_pattern_from_val(yyjson_val *v, const ags_pattern_opts *opts, ags_pattern **out,
                         ags_error *err)
{
	struct fields f;
	struct ags_pattern_buf b;
	char hex[65];
	size_t max = max_bytes(opts), cut = 0, stored_len;
	char ins[CHECKSUM_KEY_LEN + HEX_LEN + 4];
	size_t ins_len = CHECKSUM_KEY_LEN + HEX_LEN + 3;
	int rc;

	if (!out)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "out is NULL");
	*out = NULL;
	if (!v)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "no JSON value");
	rc = check_fields(v, &f, err);
	if (rc)
		return rc;
	if (f.tombstone)
		return tombstone_build(&f, max, out, err);

	/*
	 * yyjson may ask for up to 6 bytes per string byte (escapes) before it
	 * knows, so the shortcut's buffer is bounded well above max; past that
	 * the pattern goes to canon_write, which says how large it is.
	 */
	ags_pattern_buf_init(&b, max > SIZE_MAX / 8 - 4096 ? SIZE_MAX : max * 8 + 4096);
	rc = ags_pattern_canon(v, &b, &cut, err);
	if (rc)
		goto out;
	/* b is the canonical form; the stored form has the checksum member at `cut`. */
	stored_len = b.len + ins_len;
	if (stored_len > max) {
		rc = too_large(err, stored_len, max);
		goto out;
	}
	rc = ags_pattern_sha256_hex(b.p, b.len, hex);
	if (rc)
		goto out;
	if (f.checksum && strncasecmp(yyjson_get_str(f.checksum), hex, HEX_LEN) != 0) {
		rc = ags_error_set(err, AGS_ERR_CHECKSUM, "metadata.checksum",
		                   "does not match the content, whose checksum is %s", hex);
		goto out;
	}
	memcpy(ins, CHECKSUM_KEY "\"", CHECKSUM_KEY_LEN + 1);
	memcpy(ins + CHECKSUM_KEY_LEN + 1, hex, HEX_LEN);
	memcpy(ins + CHECKSUM_KEY_LEN + 1 + HEX_LEN, "\",", 2);
	rc = pattern_build(&f, hex,
	                   (struct pstr[3]){{b.p, cut}, {ins, ins_len}, {b.p + cut, b.len - cut}},
	                   out, err);
out:
	ags_pattern_buf_free(&b);
	return rc;
}

/* Reads JSON text, translating yyjson's error. */
static yyjson_doc *read_json(const char *json, size_t len, ags_error *err, int *rc)
{
	yyjson_read_err rerr;
	yyjson_doc *doc;

	if (len == 0) {
		*rc = ags_error_set(err, AGS_ERR_JSON, NULL, "malformed JSON: the input is empty");
		if (err)
			err->offset = 0;
		return NULL;
	}
	/* Without YYJSON_READ_INSITU the input is only read, never written. */
	doc = yyjson_read_opts((char *)(uintptr_t)json, len, YYJSON_READ_NOFLAG, NULL, &rerr);
	if (doc)
		return doc;
	if (rerr.code == YYJSON_READ_ERROR_MEMORY_ALLOCATION) {
		*rc = ags_error_set(err, AGS_ERR_NOMEM, NULL, "out of memory");
		return NULL;
	}
	*rc = ags_error_set(
	    err, AGS_ERR_JSON, NULL, "malformed JSON at byte %zu: %s%s", rerr.pos, rerr.msg,
	    strcasestr(rerr.msg, "utf") && !strstr(rerr.msg, "UTF-8") ? " (invalid UTF-8)" : "");
	if (err)
		err->offset = rerr.pos;
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* Public API                                                               */
/* ------------------------------------------------------------------------ */

AGS_EXPORT int ags_pattern_parse(const char *json, size_t len, const ags_pattern_opts *opts,
                                 ags_pattern **out, ags_error *err)
{
	size_t max = max_bytes(opts);
	yyjson_doc *doc;
	int rc = 0;

	if (!out || (!json && len))
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "json or out is NULL");
	*out = NULL;
	if (len > max)
		return too_large(err, len, max);
	doc = read_json(json, len, err, &rc);
	if (!doc)
		return rc;
	rc = ags_pattern_from_val(yyjson_doc_get_root(doc), opts, out, err);
	yyjson_doc_free(doc);
	return rc;
}

/* Puts "[i]" (and a dot) in front of err->field, cut to fit. */
static void prefix_index(ags_error *err, size_t i)
{
	if (!err)
		return;
	char head[32];
	int hn = snprintf(head, sizeof(head), "[%zu]%s", i, err->field[0] ? "." : "");
	size_t cap = sizeof(err->field), fl = strlen(err->field);
	if ((size_t)hn + fl >= cap)
		fl = cap - 1 - (size_t)hn;
	memmove(err->field + hn, err->field, fl);
	memcpy(err->field, head, (size_t)hn);
	err->field[(size_t)hn + fl] = '\0';
}

AGS_EXPORT int ags_pattern_parse_array(const char *json, size_t len, const ags_pattern_opts *opts,
                                       ags_pattern ***out, size_t *n, ags_error *err)
{
	if (!out || !n || (!json && len))
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "json, out or n is NULL");
	*out = NULL;
	*n = 0;
	int rc = 0;
	yyjson_doc *doc = read_json(json, len, err, &rc);
	if (!doc)
		return rc;
	yyjson_val *root = yyjson_doc_get_root(doc);
	if (!yyjson_is_arr(root)) {
		yyjson_doc_free(doc);
		return ags_error_set(err, AGS_ERR_PATTERN, NULL, "must be an array of patterns");
	}
	size_t cnt = yyjson_arr_size(root), i, imax;
	ags_pattern **ps = calloc(cnt ? cnt : 1, sizeof(*ps));
	if (!ps) {
		yyjson_doc_free(doc);
		return ags_error_set(err, AGS_ERR_NOMEM, NULL, "out of memory");
	}
	yyjson_val *v;
	yyjson_arr_foreach(root, i, imax, v)
	{
		rc = ags_pattern_from_val(v, opts, &ps[i], err);
		if (rc) {
			prefix_index(err, i);
			ags_pattern_array_del(ps, i);
			yyjson_doc_free(doc);
			return rc;
		}
	}
	yyjson_doc_free(doc);
	*out = ps;
	*n = cnt;
	return 0;
}

AGS_EXPORT void ags_pattern_array_del(ags_pattern **ps, size_t n)
{
	if (!ps)
		return;
	for (size_t i = 0; i < n; i++)
		ags_pattern_del(ps[i]);
	free(ps);
}

int ags_pattern_parse_trusted(const char *json, size_t len, ags_pattern **out)
{
	struct fields f;
	yyjson_doc *doc;
	char hex[65];
	int rc = 0;

	if (!out || (!json && len))
		return AGS_ERR_INVALID;
	*out = NULL;
	doc = read_json(json, len, NULL, &rc);
	if (!doc)
		return rc;
	rc = check_fields(yyjson_doc_get_root(doc), &f, NULL);
	if (rc)
		goto out;
	if (f.tombstone) {
		rc = tombstone_build(&f, SIZE_MAX, out, NULL);
		goto out;
	}
	if (!f.checksum) {
		rc = AGS_ERR_PATTERN;
		goto out;
	}
	/*
	 * Lowercased so that compare() orders it like a computed one. The
	 * digits are hexadecimal (checked), and setting bit 0x20 lowercases
	 * A-F while leaving 0-9 as they are: 8 at a time.
	 */
	memcpy(hex, yyjson_get_str(f.checksum), HEX_LEN);
	for (int i = 0; i < HEX_LEN; i += 8) {
		uint64_t w;
		memcpy(&w, hex + i, 8);
		w |= 0x2020202020202020ull;
		memcpy(hex + i, &w, 8);
	}
	hex[HEX_LEN] = '\0';
	rc = pattern_build(&f, hex, (struct pstr[3]){{json, len}, {NULL, 0}, {NULL, 0}}, out, NULL);
out:
	yyjson_doc_free(doc);
	return rc;
}

AGS_EXPORT int ags_pattern_new_tombstone(const char *id, int64_t version, int64_t timestamp_ms,
                                         ags_pattern **out)
{
	struct fields f;
	size_t len;

	if (!out)
		return AGS_ERR_INVALID;
	*out = NULL;
	if (!id || version < 1 || timestamp_ms < 0)
		return AGS_ERR_INVALID;
	len = strlen(id);
	if (len == 0 || len > AGS_PATTERN_ID_MAX)
		return AGS_ERR_INVALID;
	memset(&f, 0, sizeof(f));
	f.id = (struct pstr){id, len};
	f.version = version;
	f.timestamp = timestamp_ms;
	return tombstone_build(&f, SIZE_MAX, out, NULL);
}

AGS_EXPORT void ags_pattern_del(ags_pattern *p)
{
	free(p);
}

AGS_EXPORT ags_pattern *ags_pattern_dup(const ags_pattern *p)
{
	if (!p)
		return NULL;
	ags_pattern *d = malloc(p->size);
	if (!d)
		return NULL;
	memcpy(d, p, p->size);
	/* Every pointer points into the block: move it by the same offset. */
#define RELOCATE(ptr) ((ptr) = (char *)d + ((const char *)(ptr) - (const char *)p))
	RELOCATE(d->id);
	RELOCATE(d->agent_id);
	RELOCATE(d->type);
	RELOCATE(d->source);
	RELOCATE(d->json);
	d->tags = (const char **)(d + 1);
	for (size_t i = 0; i < d->ntags; i++)
		RELOCATE(d->tags[i]);
#undef RELOCATE
	return d;
}

AGS_EXPORT const char *ags_pattern_id(const ags_pattern *p)
{
	return p->id;
}

AGS_EXPORT const char *ags_pattern_agent_id(const ags_pattern *p)
{
	return p->agent_id;
}

AGS_EXPORT const char *ags_pattern_type(const ags_pattern *p)
{
	return p->type;
}

AGS_EXPORT const char *ags_pattern_source(const ags_pattern *p)
{
	return p->source;
}

AGS_EXPORT int64_t ags_pattern_version(const ags_pattern *p)
{
	return p->version;
}

AGS_EXPORT int64_t ags_pattern_timestamp(const ags_pattern *p)
{
	return p->timestamp;
}

AGS_EXPORT int ags_pattern_priority(const ags_pattern *p)
{
	return p->priority;
}

AGS_EXPORT int64_t ags_pattern_expires_at(const ags_pattern *p)
{
	return p->expires_at;
}

AGS_EXPORT size_t ags_pattern_tag_count(const ags_pattern *p)
{
	return p->ntags;
}

AGS_EXPORT const char *ags_pattern_tag(const ags_pattern *p, size_t i)
{
	return i < p->ntags ? p->tags[i] : NULL;
}

AGS_EXPORT int ags_pattern_has_tag(const ags_pattern *p, const char *tag)
{
	if (!p || !tag)
		return 0;
	for (size_t i = 0; i < p->ntags; i++)
		if (strcmp(p->tags[i], tag) == 0)
			return 1;
	return 0;
}

AGS_EXPORT const char *ags_pattern_checksum(const ags_pattern *p)
{
	return p->checksum;
}

AGS_EXPORT int ags_pattern_is_tombstone(const ags_pattern *p)
{
	return p->tombstone;
}

AGS_EXPORT const char *ags_pattern_json(const ags_pattern *p, size_t *len)
{
	if (len)
		*len = p->json_len;
	return p->json;
}

AGS_EXPORT int ags_pattern_compare(const ags_pattern *a, const ags_pattern *b)
{
	if (a->version != b->version)
		return a->version > b->version ? 1 : -1;
	int c = strcmp(a->checksum, b->checksum);
	if (c == 0)
		return 0;
	if (a->timestamp != b->timestamp)
		return a->timestamp > b->timestamp ? 1 : -1;
	return c > 0 ? 1 : -1;
}
