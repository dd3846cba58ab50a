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
	rc = check_str(m[MD_SOURCE], "metadata.source", 0, SIZE_MAX, &f->source, err);
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
		if (yyjson_is_str(t) && !memchr(yyjson_get_str(t), '\0', yyjson_get_len(t)))
			continue;
		/* Only now, on the error path, is the field name worth formatting. */
		snprintf(field, sizeof(field), "metadata.tags[%zu]", i);
		return check_str(t, field, 0, SIZE_MAX, &s, err);
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

	rc = check_str(m[F_ID], "id", 1, AGS_PATTERN_ID_MAX, &f->id, err);
	if (rc)
		return rc;
	rc = check_str(m[F_AGENT_ID], "agentId", 0, SIZE_MAX, &f->agent_id, err);
	if (rc)
		return rc;
	rc = check_str(m[F_TYPE], "type", 0, SIZE_MAX, &f->type, err);
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

static inline int member_cmp(const struct member *a, const struct member *b)
{
	size_t n = a->klen < b->klen ? a->klen : b->klen;
	/* Keys mostly differ in their first byte: no call to memcmp then. */
	if (n && a->k[0] != b->k[0])
		return (unsigned char)a->k[0] - (unsigned char)b->k[0];
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

/* ------------------------------------------------------------------------ */
/* Canonical writer, shortcut for input that is canonical already          */
/* ------------------------------------------------------------------------ */

/*
 * Patterns a node passes on are in their stored form, which is canonical:
 * every key sorted. For those, yyjson writes each top-level value as it is
 * and the mutable document is not needed. Anything else (unsorted keys,
 * duplicates, too deep, values yyjson cannot write) takes the writer above,
 * which also produces every error.
 */

/*
 * An output buffer, inline first, that also serves as yyjson's allocator:
 * the allocation it lends is its own free tail, so yyjson writes a value in
 * place and nothing is copied. `max` bounds its capacity.
 */
struct obuf {
	char *p;
	size_t len, cap, max;
	int lent; /* the tail is lent to yyjson */
	char inl[2048];
};

static void obuf_init(struct obuf *b, size_t max)
{
	b->p = b->inl;
	b->len = 0;
	b->cap = sizeof(b->inl);
	b->max = max;
	b->lent = 0;
}

static void obuf_free(struct obuf *b)
{
	if (b->p != b->inl)
		free(b->p);
}

/* Grows b to hold n more bytes after len, keeping all cap bytes; 0 or -1. */
static int obuf_grow(struct obuf *b, size_t n)
{
	if (n > b->max - b->len)
		return -1;
	size_t cap = b->cap * 2;
	if (cap - b->len < n)
		cap = b->len + n;
	if (cap > b->max)
		cap = b->max;
	char *p;
	if (b->p == b->inl) {
		p = malloc(cap);
		if (p)
			memcpy(p, b->inl, b->cap);
	} else {
		p = realloc(b->p, cap);
	}
	if (!p)
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

/* Makes room for n more bytes after len; 0 or -1. */
static inline int obuf_reserve(struct obuf *b, size_t n)
{
	return b->cap - b->len >= n ? 0 : obuf_grow(b, n);
}

static int obuf_add(struct obuf *b, const char *s, size_t n)
{
	if (obuf_reserve(b, n))
		return -1;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	return 0;
}

static void *obuf_alc_malloc(void *ctx, size_t size)
{
	struct obuf *b = ctx;
	if (b->lent || obuf_reserve(b, size))
		return NULL;
	b->lent = 1;
	return b->p + b->len;
}

static void *obuf_alc_realloc(void *ctx, void *ptr, size_t old_size, size_t size)
{
	struct obuf *b = ctx;
	(void)old_size;
	if (!b->lent || ptr != b->p + b->len || obuf_reserve(b, size))
		return NULL;
	return b->p + b->len;
}

static void obuf_alc_free(void *ctx, void *ptr)
{
	struct obuf *b = ctx;
	(void)ptr;
	b->lent = 0;
}

/* Appends v as yyjson writes it (compact, no flags); 0 or -1. */
static int obuf_write(struct obuf *b, yyjson_val *v)
{
	const yyjson_alc alc = {obuf_alc_malloc, obuf_alc_realloc, obuf_alc_free, b};
	size_t n = 0;
	char *s = yyjson_val_write_opts(v, YYJSON_WRITE_NOFLAG, &alc, &n, NULL);
	b->lent = 0;
	if (!s)
		return -1;
	if (s != b->p + b->len)
		return -1; /* cannot happen: the only memory it can get is the tail */
	b->len += n;
	return 0;
}

/*
 * Appends string value or key v. yyjson copies a string marked
 * YYJSON_SUBTYPE_NOESC between quotes as it is (is_canonical has made sure
 * that this is what canon_write would write), so this does the same; it
 * writes any other string itself.
 */
static int obuf_str(struct obuf *b, yyjson_val *v)
{
	if (!(yyjson_get_subtype(v) & YYJSON_SUBTYPE_NOESC))
		return obuf_write(b, v);
	const char *s = yyjson_get_str(v);
	size_t n = yyjson_get_len(v);
	if (obuf_reserve(b, n + 2))
		return -1;
	b->p[b->len] = '"';
	memcpy(b->p + b->len + 1, s, n);
	b->p[b->len + 1 + n] = '"';
	b->len += n + 2;
	return 0;
}

/* Whether any of the n bytes at s is not ASCII. */
static inline int has_high_byte(const char *s, size_t n)
{
	/* A word at a time, the last one overlapping: most strings are short. */
	uint64_t acc = 0, w;
	uint32_t h, t;
	if (n >= 8) {
		for (size_t i = 0; i + 8 < n; i += 8) {
			memcpy(&w, s + i, 8);
			acc |= w;
		}
		memcpy(&w, s + n - 8, 8);
		acc |= w;
	} else if (n >= 4) {
		memcpy(&h, s, 4);
		memcpy(&t, s + n - 4, 4);
		acc = h | t;
	} else {
		for (size_t i = 0; i < n; i++)
			acc |= (unsigned char)s[i];
	}
	return (acc & 0x8080808080808080ull) != 0;
}

/*
 * Whether yyjson writes string (or key) v the same way in a mutable
 * document. The reader marks strings without escapes YYJSON_SUBTYPE_NOESC,
 * and yyjson copies those as they are, where a mutable document's string is
 * checked for valid UTF-8 as it is written. A reader given
 * YYJSON_READ_ALLOW_INVALID_UNICODE marks invalid UTF-8 NOESC too, so a NOESC
 * string that is not ASCII is checked here the way canon_write would: by
 * yyjson writing a copy of it without the mark (into b's free tail).
 */
static inline int str_same(yyjson_val *v, struct obuf *b)
{
	if (!(yyjson_get_subtype(v) & YYJSON_SUBTYPE_NOESC) ||
	    !has_high_byte(yyjson_get_str(v), yyjson_get_len(v)))
		return 1;
	yyjson_val copy = *v;
	copy.tag &= ~(uint64_t)YYJSON_SUBTYPE_NOESC;
	size_t len = b->len;
	int rc = obuf_write(b, &copy);
	b->len = len;
	return rc == 0;
}

static int is_canonical(yyjson_val *v, int depth, struct obuf *b);

/* is_canonical for a value inside a container at depth `depth`. */
static inline int member_is_canonical(yyjson_val *v, int depth, struct obuf *b)
{
	switch (yyjson_get_type(v)) {
	case YYJSON_TYPE_OBJ:
	case YYJSON_TYPE_ARR:
		return is_canonical(v, depth + 1, b);
	case YYJSON_TYPE_STR:
		return str_same(v, b);
	case YYJSON_TYPE_NUM:
	case YYJSON_TYPE_BOOL:
	case YYJSON_TYPE_NULL:
		return 1;
	default:
		return 0;
	}
}

/*
 * Whether v (at depth `depth`, the root being 1) is in canonical form and
 * yyjson writes it as canon_write would: every object's keys strictly
 * increasing (so no duplicates), no container deeper than
 * AGS_PATTERN_MAX_DEPTH, only plain JSON values, strings as str_same says.
 * b is scratch space.
 */
static int is_canonical(yyjson_val *v, int depth, struct obuf *b)
{
	yyjson_val *k, *e;

	if (!yyjson_is_ctn(v))
		return member_is_canonical(v, 0, b);
	if (depth > AGS_PATTERN_MAX_DEPTH)
		return 0;
	if (yyjson_is_arr(v)) {
		yyjson_arr_iter it = yyjson_arr_iter_with(v);
		while ((e = yyjson_arr_iter_next(&it)))
			if (!member_is_canonical(e, depth, b))
				return 0;
		return 1;
	}
	yyjson_obj_iter it = yyjson_obj_iter_with(v);
	struct member prev = {0}, cur;
	for (size_t i = 0; (k = yyjson_obj_iter_next(&it)); i++) {
		cur = (struct member){yyjson_get_str(k), yyjson_get_len(k), NULL};
		if ((i && member_cmp(&prev, &cur) >= 0) || !str_same(k, b) ||
		    !member_is_canonical(yyjson_obj_iter_get_val(k), depth, b))
			return 0;
		prev = cur;
	}
	return 1;
}

/*
 * Writes the canonical form of pattern `root` (an object with a metadata
 * object, as check_fields makes sure) into b, without metadata.checksum;
 * *cut is where that member goes in the stored form. Returns 0, or -1 if the
 * shortcut does not apply (the caller then takes canon_write).
 */
static int canon_fast(yyjson_val *root, struct obuf *b, size_t *cut)
{
	yyjson_obj_iter it;
	yyjson_val *k, *v;
	int first = 1, have_md = 0;

	if (!is_canonical(root, 1, b) || obuf_add(b, "{", 1))
		return -1;
	yyjson_obj_iter_init(root, &it);
	while ((k = yyjson_obj_iter_next(&it))) {
		v = yyjson_obj_iter_get_val(k);
		if ((!first && obuf_add(b, ",", 1)) || obuf_str(b, k) || obuf_add(b, ":", 1))
			return -1;
		first = 0;
		if (yyjson_is_str(v)) {
			if (obuf_str(b, v))
				return -1;
			continue;
		}
		if (yyjson_get_len(k) != 8 || memcmp(yyjson_get_str(k), "metadata", 8) != 0) {
			if (obuf_write(b, v))
				return -1;
			continue;
		}
		/*
		 * metadata: the checksum member, there or not, must come first
		 * (no key before "checksum"), so that it sits right after the
		 * brace; it is always followed by a comma (source and tags).
		 */
		yyjson_obj_iter mi = yyjson_obj_iter_with(v);
		yyjson_val *mk = yyjson_obj_iter_next(&mi);
		struct member sum = {"checksum", 8, NULL}, m0;
		size_t at = b->len;
		if (!mk)
			return -1;
		m0 = (struct member){yyjson_get_str(mk), yyjson_get_len(mk), NULL};
		int c = member_cmp(&m0, &sum);
		if (c < 0 || obuf_write(b, v))
			return -1;
		*cut = at + 1;
		have_md = 1;
		if (c == 0) {
			/* `"checksum":"<64 digits>",` as yyjson wrote it, cut out. */
			size_t n = CHECKSUM_KEY_LEN + HEX_LEN + 3;
			if (b->len - *cut < n || memcmp(b->p + *cut, CHECKSUM_KEY "\"", 12) != 0 ||
			    b->p[*cut + n - 1] != ',')
				return -1;
			memmove(b->p + *cut, b->p + *cut + n, b->len - *cut - n);
			b->len -= n;
		}
	}
	return have_md ? obuf_add(b, "}", 1) : -1;
}

/*
 * Writes the canonical form of pattern `root` (validated by check_fields)
 * into b, without metadata.checksum; *cut is where that member goes in the
 * stored form. Errors are canon_write's.
 */
static int canon_pattern(yyjson_val *root, struct obuf *b, size_t *cut, ags_error *err)
{
	char *w = NULL, *ph;
	size_t wlen = 0, cut_end;
	int rc;

	if (canon_fast(root, b, cut) == 0)
		return 0;
	b->len = 0;
	rc = canon_write(root, 1, &w, &wlen, err);
	if (rc)
		return rc;
	/*
	 * w is the stored form with PLACEHOLDER as the checksum's value. Cut
	 * the member out to get the canonical form. metadata always has
	 * "source" and "tags", which sort after "checksum", so the member is
	 * always followed by a comma: the cut is `"checksum":<PLACEHOLDER>,`.
	 */
	ph = memchr(w, PLACEHOLDER, wlen);
	if (!ph || (size_t)(ph - w) < CHECKSUM_KEY_LEN || ph[1] != ',') {
		rc = ags_error_set(err, AGS_ERR_INTERNAL, NULL, "checksum placeholder not found");
		goto out;
	}
	*cut = (size_t)(ph - w) - CHECKSUM_KEY_LEN;
	cut_end = (size_t)(ph - w) + 2;
	b->max = SIZE_MAX;
	if (obuf_add(b, w, *cut) || obuf_add(b, w + cut_end, wlen - cut_end))
		rc = ags_error_set(err, AGS_ERR_NOMEM, NULL, "out of memory");
out:
	free(w);
	return rc;
}

int ags_json_canonical(yyjson_val *v, char **out, size_t *len)
{
	size_t n = 0;
	if (!v || !out)
		return AGS_ERR_INVALID;
	*out = NULL;
	/* Canonical already: yyjson writes it as it is. */
	struct obuf b;
	obuf_init(&b, SIZE_MAX);
	int canonical = is_canonical(v, 1, &b);
	obuf_free(&b);
	if (canonical) {
		*out = yyjson_val_write_opts(v, YYJSON_WRITE_NOFLAG, NULL, &n, NULL);
		if (*out) {
			if (len)
				*len = n;
			return 0;
		}
	}
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
	struct obuf b;
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
	obuf_init(&b, max > SIZE_MAX / 8 - 4096 ? SIZE_MAX : max * 8 + 4096);
	rc = canon_pattern(v, &b, &cut, err);
	if (rc)
		goto out;
	/* b is the canonical form; the stored form has the checksum member at `cut`. */
	stored_len = b.len + ins_len;
	if (stored_len > max) {
		rc = too_large(err, stored_len, max);
		goto out;
	}
	rc = sha256_hex(b.p, b.len, hex);
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
	obuf_free(&b);
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
