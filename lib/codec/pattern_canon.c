/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The canonical serialisation of a pattern (docs/PROTOCOL.md, "Patterns"):
 * members sorted, no insignificant white space, the checksum's place marked
 * while writing; and a shortcut for input that is canonical already.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <yyjson.h>

#include "agentsync/agentsync.h"
#include "error.h"
#include "pattern.h"
#include "pattern_int.h"

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

void ags_pattern_buf_init(struct ags_pattern_buf *b, size_t max)
{
	b->p = b->inl;
	b->len = 0;
	b->cap = sizeof(b->inl);
	b->max = max;
	b->lent = 0;
}

void ags_pattern_buf_free(struct ags_pattern_buf *b)
{
	if (b->p != b->inl)
		free(b->p);
}

/* Grows b to hold n more bytes after len, keeping all cap bytes; 0 or -1. */
static int obuf_grow(struct ags_pattern_buf *b, size_t n)
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
static inline int obuf_reserve(struct ags_pattern_buf *b, size_t n)
{
	return b->cap - b->len >= n ? 0 : obuf_grow(b, n);
}

static int obuf_add(struct ags_pattern_buf *b, const char *s, size_t n)
{
	if (obuf_reserve(b, n))
		return -1;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	return 0;
}

static void *obuf_alc_malloc(void *ctx, size_t size)
{
	struct ags_pattern_buf *b = ctx;
	if (b->lent || obuf_reserve(b, size))
		return NULL;
	b->lent = 1;
	return b->p + b->len;
}

static void *obuf_alc_realloc(void *ctx, void *ptr, size_t old_size, size_t size)
{
	struct ags_pattern_buf *b = ctx;
	(void)old_size;
	if (!b->lent || ptr != b->p + b->len || obuf_reserve(b, size))
		return NULL;
	return b->p + b->len;
}

static void obuf_alc_free(void *ctx, void *ptr)
{
	struct ags_pattern_buf *b = ctx;
	(void)ptr;
	b->lent = 0;
}

/* Appends v as yyjson writes it (compact, no flags); 0 or -1. */
static int obuf_write(struct ags_pattern_buf *b, yyjson_val *v)
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
static int obuf_str(struct ags_pattern_buf *b, yyjson_val *v)
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
static inline int str_same(yyjson_val *v, struct ags_pattern_buf *b)
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

static int is_canonical(yyjson_val *v, int depth, struct ags_pattern_buf *b);

/* is_canonical for a value inside a container at depth `depth`. */
static inline int member_is_canonical(yyjson_val *v, int depth, struct ags_pattern_buf *b)
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
static int is_canonical(yyjson_val *v, int depth, struct ags_pattern_buf *b)
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
static int canon_fast(yyjson_val *root, struct ags_pattern_buf *b, size_t *cut)
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

/* ------------------------------------------------------------------------ */
/* Canonical writer straight into the buffer, for keys out of order         */
/* ------------------------------------------------------------------------ */

/*
 * Input from a client (the HTTP API) is rarely sorted, so canon_fast does
 * not apply; canon_write would copy it into a mutable document and write
 * that. This writes the same bytes directly: each object's members sorted
 * on the stack, every sorted subtree, key and scalar as yyjson writes it
 * (canon_fast's reasoning). Anything unusual (a duplicate key, an object of
 * more than SORT_MEMBERS members or deeper than SORT_DEPTH, a string
 * str_same refuses, a checksum member sorting last) returns -1 and the
 * caller takes canon_write, which also produces every error.
 */
#define SORT_MEMBERS 64
#define SORT_DEPTH   8

static int sort_val(yyjson_val *v, int depth, struct ags_pattern_buf *b);

/*
 * Object v at depth `depth` (root 1). cut != NULL: v is the pattern's
 * metadata; its checksum member is left out and *cut is set to where it
 * goes. Returns 0 or -1.
 */
static int sort_obj(yyjson_val *v, int depth, struct ags_pattern_buf *b, size_t *cut,
                    size_t *md_cut)
{
	struct member m[SORT_MEMBERS], sum = {"checksum", 8, NULL};
	yyjson_obj_iter it = yyjson_obj_iter_with(v);
	yyjson_val *k;
	size_t n = 0;
	int skipped = 0;

	if (depth > SORT_DEPTH || yyjson_obj_size(v) > SORT_MEMBERS)
		return -1;
	while ((k = yyjson_obj_iter_next(&it))) {
		struct member x = {yyjson_get_str(k), yyjson_get_len(k),
		                   yyjson_obj_iter_get_val(k)};
		if (cut && !skipped && member_cmp(&x, &sum) == 0) {
			skipped = 1;
			continue;
		}
		if (!str_same(k, b))
			return -1;
		m[n++] = x;
	}
	members_sort(m, n);
	if (cut)
		*cut = SIZE_MAX;
	if (obuf_add(b, "{", 1))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (i && (member_cmp(&m[i - 1], &m[i]) == 0 || obuf_add(b, ",", 1)))
			return -1;
		if (cut && *cut == SIZE_MAX) {
			int c = member_cmp(&sum, &m[i]);
			if (c == 0)
				return -1;
			if (c < 0)
				*cut = b->len;
		}
		/* The key is the value just before its value (yyjson's layout). */
		if (obuf_str(b, m[i].v - 1) || obuf_add(b, ":", 1))
			return -1;
		int md = md_cut && depth == 1 && m[i].klen == 8 && !memcmp(m[i].k, "metadata", 8);
		if (md ? (!yyjson_is_obj(m[i].v) || sort_obj(m[i].v, 2, b, md_cut, NULL))
		       : sort_val(m[i].v, depth + 1, b))
			return -1;
	}
	if (cut && *cut == SIZE_MAX)
		return -1;
	return obuf_add(b, "}", 1);
}

/* An integer as yyjson writes it: the decimal digits, '-' first when negative. */
static int obuf_int(struct ags_pattern_buf *b, yyjson_val *v)
{
	char d[24];
	size_t i = sizeof(d);
	uint64_t u = yyjson_get_uint(v);
	int neg = yyjson_is_sint(v) && yyjson_get_sint(v) < 0;
	if (neg)
		u = (uint64_t)0 - u;
	do {
		d[--i] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (neg)
		d[--i] = '-';
	return obuf_add(b, d + i, sizeof(d) - i);
}

static int sort_arr(yyjson_val *v, int depth, struct ags_pattern_buf *b)
{
	yyjson_arr_iter it = yyjson_arr_iter_with(v);
	yyjson_val *e;

	if (depth > SORT_DEPTH || obuf_add(b, "[", 1))
		return -1;
	for (size_t i = 0; (e = yyjson_arr_iter_next(&it)); i++)
		if ((i && obuf_add(b, ",", 1)) || sort_val(e, depth + 1, b))
			return -1;
	return obuf_add(b, "]", 1);
}

/* Value v at depth `depth`: a sorted subtree or a scalar as yyjson writes it. */
static int sort_val(yyjson_val *v, int depth, struct ags_pattern_buf *b)
{
	switch (yyjson_get_type(v)) {
	case YYJSON_TYPE_OBJ:
		return is_canonical(v, depth, b) ? obuf_write(b, v)
		                                 : sort_obj(v, depth, b, NULL, NULL);
	case YYJSON_TYPE_ARR:
		return is_canonical(v, depth, b) ? obuf_write(b, v) : sort_arr(v, depth, b);
	case YYJSON_TYPE_STR:
		return str_same(v, b) ? obuf_str(b, v) : -1;
	case YYJSON_TYPE_NUM:
		if (!yyjson_is_real(v))
			return obuf_int(b, v);
		return obuf_write(b, v);
	case YYJSON_TYPE_BOOL:
		return yyjson_get_bool(v) ? obuf_add(b, "true", 4) : obuf_add(b, "false", 5);
	case YYJSON_TYPE_NULL:
		return obuf_add(b, "null", 4);
	default:
		return -1;
	}
}

/* The canonical form of pattern `root` by sort_obj; 0, or -1 (take canon_write). */
static int canon_sorted(yyjson_val *root, struct ags_pattern_buf *b, size_t *cut)
{
	*cut = SIZE_MAX;
	if (sort_obj(root, 1, b, NULL, cut) || *cut == SIZE_MAX)
		return -1;
	return 0;
}

/*
 * Writes the canonical form of pattern `root` (validated by check_fields)
 * into b, without metadata.checksum; *cut is where that member goes in the
 * stored form. Errors are canon_write's.
 */
int ags_pattern_canon(yyjson_val *root, struct ags_pattern_buf *b, size_t *cut, ags_error *err)
{
	char *w = NULL, *ph;
	size_t wlen = 0, cut_end;
	int rc;

	if (canon_fast(root, b, cut) == 0)
		return 0;
	b->len = 0;
	if (canon_sorted(root, b, cut) == 0)
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
	struct ags_pattern_buf b;
	ags_pattern_buf_init(&b, SIZE_MAX);
	int canonical = is_canonical(v, 1, &b);
	ags_pattern_buf_free(&b);
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
int ags_pattern_sha256_hex(const void *buf, size_t len, char hex[65])
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
