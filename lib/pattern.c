/*
 * The pattern codec: parse and validate pattern JSON, build its canonical
 * serialisation and SHA-256 checksum, make tombstones, and compare versions.
 * Pure functions: no I/O, no global state. The format is specified in
 * docs/PROTOCOL.md ("Patterns").
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

/* Whether s is `len` hexadecimal digits. */
static int is_hex(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
			return 0;
	}
	return 1;
}

/* Validates metadata (an object) into f. */
static int check_metadata(yyjson_val *md, struct fields *f, ags_error *err)
{
	char buf[64];
	int rc;
	yyjson_val *v;

	rc = check_str(yyjson_obj_get(md, "source"), "metadata.source", 0, SIZE_MAX, &f->source,
	               err);
	if (rc)
		return rc;

	v = yyjson_obj_get(md, "tags");
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
		if (yyjson_is_str(t) && !memchr(yyjson_get_str(t), '\0', yyjson_get_len(t)))
			continue;
		/* Only now, on the error path, is the field name worth formatting. */
		snprintf(field, sizeof(field), "metadata.tags[%zu]", i);
		return check_str(t, field, 0, SIZE_MAX, &s, err);
	}
	f->tags = v;

	v = yyjson_obj_get(md, "priority");
	if (v) {
		int64_t pr;
		rc = check_int(v, "metadata.priority", 1, 10, &pr, err);
		if (rc)
			return rc;
		f->priority = (int)pr;
	}
	v = yyjson_obj_get(md, "expiresAt");
	if (v) {
		rc = check_int(v, "metadata.expiresAt", 0, INT64_MAX, &f->expires_at, err);
		if (rc)
			return rc;
	}
	v = yyjson_obj_get(md, "checksum");
	if (v) {
		if (!yyjson_is_str(v) || yyjson_get_len(v) != HEX_LEN ||
		    !is_hex(yyjson_get_str(v), HEX_LEN))
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
	rc = check_str(yyjson_obj_get(root, "id"), "id", 1, AGS_PATTERN_ID_MAX, &f->id, err);
	if (!rc)
		rc = check_int(yyjson_obj_get(root, "timestamp"), "timestamp", 0, INT64_MAX,
		               &f->timestamp, err);
	if (!rc)
		rc = check_int(yyjson_obj_get(root, "version"), "version", 1, INT64_MAX,
		               &f->version, err);
	f->tombstone = 1;
	return rc;
}

/*
 * Validates the fields of a pattern or tombstone (not depth, duplicate keys
 * or the checksum value: the canonical writer checks those) into f.
 */
static int check_fields(yyjson_val *root, struct fields *f, ags_error *err)
{
	char buf[64];
	yyjson_val *v;
	int rc;

	memset(f, 0, sizeof(*f));
	if (!yyjson_is_obj(root))
		return ags_error_set(err, AGS_ERR_PATTERN, "", "must be a JSON object, got %s",
		                     describe(root, buf, sizeof(buf)));
	if (yyjson_obj_get(root, "deleted"))
		return check_tombstone(root, f, err);

	rc = check_str(yyjson_obj_get(root, "id"), "id", 1, AGS_PATTERN_ID_MAX, &f->id, err);
	if (rc)
		return rc;
	rc = check_str(yyjson_obj_get(root, "agentId"), "agentId", 0, SIZE_MAX, &f->agent_id, err);
	if (rc)
		return rc;
	rc = check_str(yyjson_obj_get(root, "type"), "type", 0, SIZE_MAX, &f->type, err);
	if (rc)
		return rc;
	if (!yyjson_obj_get(root, "data"))
		return missing(err, "data");
	v = yyjson_obj_get(root, "metadata");
	if (!v)
		return missing(err, "metadata");
	if (!yyjson_is_obj(v))
		return ags_error_set(err, AGS_ERR_PATTERN, "metadata", "must be an object, got %s",
		                     describe(v, buf, sizeof(buf)));
	rc = check_metadata(v, f, err);
	if (rc)
		return rc;
	rc = check_int(yyjson_obj_get(root, "timestamp"), "timestamp", 0, INT64_MAX, &f->timestamp,
	               err);
	if (rc)
		return rc;
	return check_int(yyjson_obj_get(root, "version"), "version", 1, INT64_MAX, &f->version,
	                 err);
}

/* ------------------------------------------------------------------------ */
/* Canonical writer                                                         */
/* ------------------------------------------------------------------------ */

/* One member of an object being sorted. v == NULL stands for the checksum placeholder. */
struct member {
	const char *k;
	size_t klen;
	yyjson_val *v;
};

/* One step of the path from the root to the value being written. */
struct segment {
	const char *key; /* NULL for an array element */
	size_t klen;
	size_t idx;
};

struct canon {
	yyjson_mut_doc *doc;
	/*
	 * A stack of members shared by all levels (each object takes a slice
	 * above its parent's); addressed by index since growing may move it.
	 */
	struct member *m;
	size_t m_cap, m_top;
	/* path[d] is the step taken from the container at depth d (root is 1). */
	struct segment path[AGS_PATTERN_MAX_DEPTH + 1];
	int pattern; /* put the placeholder in place of metadata.checksum */
	ags_error *err;
	struct member m_inline[48];
};

static int member_cmp(const struct member *a, const struct member *b)
{
	size_t n = a->klen < b->klen ? a->klen : b->klen;
	int r = memcmp(a->k, b->k, n);
	if (r)
		return r;
	return (a->klen > b->klen) - (a->klen < b->klen);
}

static int member_qsort_cmp(const void *a, const void *b)
{
	return member_cmp(a, b);
}

static void members_sort(struct member *m, size_t n)
{
	if (n > SMALL_SORT) {
		qsort(m, n, sizeof(*m), member_qsort_cmp);
		return;
	}
	for (size_t i = 1; i < n; i++) {
		struct member x = m[i];
		size_t j = i;
		while (j > 0 && member_cmp(&m[j - 1], &x) > 0) {
			m[j] = m[j - 1];
			j--;
		}
		m[j] = x;
	}
}

/* Makes room for `n` more members above m_top. */
static int members_reserve(struct canon *c, size_t n)
{
	if (c->m_cap - c->m_top >= n)
		return 0;
	size_t cap = c->m_cap * 2;
	while (cap - c->m_top < n)
		cap *= 2;
	struct member *m;
	if (c->m == c->m_inline) {
		m = malloc(cap * sizeof(*m));
		if (m)
			memcpy(m, c->m, c->m_top * sizeof(*m));
	} else {
		m = realloc(c->m, cap * sizeof(*m));
	}
	if (!m)
		return ags_error_set(c->err, AGS_ERR_NOMEM, NULL, "out of memory");
	c->m = m;
	c->m_cap = cap;
	return 0;
}

/*
 * Writes the JSON path of the container at `depth` (path steps 1..depth-1),
 * followed by `key` if not NULL, into buf, truncating if needed.
 */
static void format_path(const struct canon *c, int depth, const char *key, size_t klen, char *buf,
                        size_t cap)
{
	size_t pos = 0;
	buf[0] = '\0';
	for (int d = 1; d <= depth && pos < cap; d++) {
		struct segment s;
		int n;
		if (d < depth)
			s = c->path[d];
		else if (key)
			s = (struct segment){.key = key, .klen = klen};
		else
			break;
		if (s.key)
			n = snprintf(buf + pos, cap - pos, "%s%.*s", pos ? "." : "",
			             (int)(s.klen > 64 ? 64 : s.klen), s.key);
		else
			n = snprintf(buf + pos, cap - pos, "[%zu]", s.idx);
		if (n < 0)
			break;
		pos += (size_t)n;
	}
}

static int canon_val(struct canon *c, yyjson_val *v, int depth, int metadata, yyjson_mut_val **out);

static int too_deep(struct canon *c, int depth)
{
	char field[sizeof(((ags_error *)0)->field)];
	format_path(c, depth, NULL, 0, field, sizeof(field));
	return ags_error_set(c->err, AGS_ERR_PATTERN, field[0] ? field : "data",
	                     "nests arrays and objects deeper than the limit of %d levels",
	                     AGS_PATTERN_MAX_DEPTH);
}

static int canon_obj(struct canon *c, yyjson_val *v, int depth, int metadata, yyjson_mut_val **out)
{
	size_t n = yyjson_obj_size(v), base = c->m_top, i, cnt;
	yyjson_val *k, *val;
	yyjson_obj_iter it;
	int have_sum = 0, rc;

	rc = members_reserve(c, n + 1);
	if (rc)
		return rc;
	yyjson_obj_iter_init(v, &it);
	for (i = 0; (k = yyjson_obj_iter_next(&it)); i++) {
		struct member *m = &c->m[base + i];
		val = yyjson_obj_iter_get_val(k);
		m->k = yyjson_get_str(k);
		m->klen = yyjson_get_len(k);
		m->v = val;
		if (metadata && !have_sum && m->klen == 8 && !memcmp(m->k, "checksum", 8)) {
			m->v = NULL;
			have_sum = 1;
		}
	}
	cnt = n;
	if (metadata && !have_sum)
		c->m[base + cnt++] = (struct member){.k = "checksum", .klen = 8, .v = NULL};
	members_sort(c->m + base, cnt);
	for (i = 1; i < cnt; i++) {
		struct member *m = &c->m[base + i];
		if (member_cmp(m - 1, m) == 0) {
			char field[sizeof(((ags_error *)0)->field)];
			format_path(c, depth, m->k, m->klen, field, sizeof(field));
			return ags_error_set(c->err, AGS_ERR_PATTERN, field,
			                     "duplicate key \"%.*s\" in an object",
			                     (int)(m->klen > 64 ? 64 : m->klen), m->k);
		}
	}
	c->m_top = base + cnt;

	yyjson_mut_val *obj = yyjson_mut_obj(c->doc);
	if (!obj)
		goto nomem;
	for (i = 0; i < cnt; i++) {
		/* Re-read by index: writing a child may have moved the stack. */
		struct member m = c->m[base + i];
		yyjson_mut_val *mk = yyjson_mut_strn(c->doc, m.k, m.klen), *mv;
		if (!m.v) {
			mv = yyjson_mut_rawn(c->doc, "\x01", 1);
		} else {
			c->path[depth] = (struct segment){.key = m.k, .klen = m.klen};
			rc = canon_val(c, m.v, depth + 1,
			               c->pattern && depth == 1 && m.klen == 8 &&
			                   !memcmp(m.k, "metadata", 8),
			               &mv);
			if (rc)
				return rc;
		}
		if (!yyjson_mut_obj_add(obj, mk, mv))
			goto nomem;
	}
	c->m_top = base;
	*out = obj;
	return 0;
nomem:
	return ags_error_set(c->err, AGS_ERR_NOMEM, NULL, "out of memory");
}

static int canon_arr(struct canon *c, yyjson_val *v, int depth, yyjson_mut_val **out)
{
	yyjson_mut_val *arr = yyjson_mut_arr(c->doc), *mv;
	yyjson_arr_iter it;
	yyjson_val *e;
	size_t i;
	int rc;

	if (!arr)
		goto nomem;
	yyjson_arr_iter_init(v, &it);
	for (i = 0; (e = yyjson_arr_iter_next(&it)); i++) {
		c->path[depth] = (struct segment){.idx = i};
		rc = canon_val(c, e, depth + 1, 0, &mv);
		if (rc)
			return rc;
		if (!yyjson_mut_arr_append(arr, mv))
			goto nomem;
	}
	*out = arr;
	return 0;
nomem:
	return ags_error_set(c->err, AGS_ERR_NOMEM, NULL, "out of memory");
}

/*
 * Converts v (at nesting depth `depth`, the root being 1) into a mutable
 * value with sorted keys. Strings are referenced, not copied. Recursion stops
 * at AGS_PATTERN_MAX_DEPTH.
 */
static int canon_val(struct canon *c, yyjson_val *v, int depth, int metadata, yyjson_mut_val **out)
{
	yyjson_mut_val *m = NULL;

	switch (yyjson_get_type(v)) {
	case YYJSON_TYPE_OBJ:
		if (depth > AGS_PATTERN_MAX_DEPTH)
			return too_deep(c, depth);
		return canon_obj(c, v, depth, metadata, out);
	case YYJSON_TYPE_ARR:
		if (depth > AGS_PATTERN_MAX_DEPTH)
			return too_deep(c, depth);
		return canon_arr(c, v, depth, out);
	case YYJSON_TYPE_STR:
		m = yyjson_mut_strn(c->doc, yyjson_get_str(v), yyjson_get_len(v));
		break;
	case YYJSON_TYPE_NUM:
		if (yyjson_is_uint(v))
			m = yyjson_mut_uint(c->doc, yyjson_get_uint(v));
		else if (yyjson_is_sint(v))
			m = yyjson_mut_sint(c->doc, yyjson_get_sint(v));
		else
			m = yyjson_mut_real(c->doc, yyjson_get_real(v));
		break;
	case YYJSON_TYPE_BOOL:
		m = yyjson_mut_bool(c->doc, yyjson_get_bool(v));
		break;
	case YYJSON_TYPE_NULL:
		m = yyjson_mut_null(c->doc);
		break;
	default:
		return ags_error_set(c->err, AGS_ERR_PATTERN, NULL,
		                     "holds a value that is not plain JSON");
	}
	if (!m)
		return ags_error_set(c->err, AGS_ERR_NOMEM, NULL, "out of memory");
	*out = m;
	return 0;
}

/*
 * Writes v in canonical form into a malloc'd string. In pattern mode the
 * value of metadata.checksum (present or not) is the PLACEHOLDER byte.
 */
static int canon_write(yyjson_val *v, int pattern, char **out, size_t *len, ags_error *err)
{
	struct canon c;
	yyjson_mut_val *root;
	yyjson_write_err werr;
	int rc;

	c.doc = yyjson_mut_doc_new(NULL);
	if (!c.doc)
		return ags_error_set(err, AGS_ERR_NOMEM, NULL, "out of memory");
	c.m = c.m_inline;
	c.m_cap = sizeof(c.m_inline) / sizeof(c.m_inline[0]);
	c.m_top = 0;
	c.pattern = pattern;
	c.err = err;
	rc = canon_val(&c, v, 1, 0, &root);
	if (rc)
		goto out;
	yyjson_mut_doc_set_root(c.doc, root);
	*out = yyjson_mut_write_opts(c.doc, YYJSON_WRITE_NOFLAG, NULL, len, &werr);
	if (!*out)
		rc = ags_error_set(err,
		                   werr.code == YYJSON_WRITE_ERROR_MEMORY_ALLOCATION
		                       ? AGS_ERR_NOMEM
		                       : AGS_ERR_PATTERN,
		                   NULL, "cannot be written as JSON: %s", werr.msg);
out:
	if (c.m != c.m_inline)
		free(c.m);
	yyjson_mut_doc_free(c.doc);
	return rc;
}

int ags_json_canonical(yyjson_val *v, char **out, size_t *len)
{
	size_t n = 0;
	if (!v || !out)
		return AGS_ERR_INVALID;
	*out = NULL;
	int rc = canon_write(v, 0, out, &n, NULL);
	if (!rc && len)
		*len = n;
	return rc;
}

/* Lowercase hex SHA-256 of buf into hex[65]. */
static int sha256_hex(const void *buf, size_t len, char hex[65])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char d[32];
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, buf, len, d) < 0)
		return AGS_ERR_INTERNAL;
	for (int i = 0; i < 32; i++) {
		hex[2 * i] = digits[d[i] >> 4];
		hex[2 * i + 1] = digits[d[i] & 15];
	}
	hex[64] = '\0';
	return 0;
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
	rc = sha256_hex(json, len, hex);
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
	char *w = NULL, *ph, hex[65];
	size_t wlen = 0, max = max_bytes(opts), cut, cut_end, stored_len;
	char ins[CHECKSUM_KEY_LEN + HEX_LEN + 4];
	size_t ins_len;
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

	rc = canon_write(v, 1, &w, &wlen, err);
	if (rc)
		return rc;
	/*
	 * w is the stored form with PLACEHOLDER as the checksum's value. Cut
	 * the member out to get the canonical form, hash that, then splice the
	 * real member back. metadata always has "source" and "tags", which
	 * sort after "checksum", so the member is always followed by a comma:
	 * the cut is `"checksum":<PLACEHOLDER>,`.
	 */
	ph = memchr(w, PLACEHOLDER, wlen);
	if (!ph || (size_t)(ph - w) < CHECKSUM_KEY_LEN || ph[1] != ',') {
		rc = ags_error_set(err, AGS_ERR_INTERNAL, NULL, "checksum placeholder not found");
		goto out;
	}
	cut = (size_t)(ph - w) - CHECKSUM_KEY_LEN;
	cut_end = (size_t)(ph - w) + 2;
	memmove(w + cut, w + cut_end, wlen - cut_end);
	wlen -= cut_end - cut;
	ins_len = CHECKSUM_KEY_LEN + HEX_LEN + 3;
	stored_len = wlen + ins_len;
	if (stored_len > max) {
		rc = too_large(err, stored_len, max);
		goto out;
	}
	rc = sha256_hex(w, wlen, hex);
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
	rc = pattern_build(
	    &f, hex, (struct pstr[3]){{w, cut}, {ins, ins_len}, {w + cut, wlen - cut}}, out, err);
out:
	free(w);
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
	/* Lowercased so that compare() orders it like a computed one. */
	for (int i = 0; i < HEX_LEN; i++) {
		char c = yyjson_get_str(f.checksum)[i];
		hex[i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
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
