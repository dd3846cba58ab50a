/* SPDX-License-Identifier: Apache-2.0 */
/* Canonical serialisation of patterns (see canon.h and PROTOCOL.md). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yyjson.h>

#include "canon.h"
#include "wire.h"

struct out {
	char *p;
	size_t len, cap;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->len + n + 1 > o->cap) {
		size_t cap = o->cap ? o->cap : 256;
		while (cap < o->len + n + 1)
			cap *= 2;
		char *p = realloc(o->p, cap);
		if (!p)
			abort();
		o->p = p;
		o->cap = cap;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

/* Rule 4: strings. */
static void put_string(struct out *o, const char *s, size_t n)
{
	put(o, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		char esc[8];
		const char *e = NULL;
		switch (ch) {
		case '"':
			e = "\\\"";
			break;
		case '\\':
			e = "\\\\";
			break;
		case 0x08:
			e = "\\b";
			break;
		case 0x09:
			e = "\\t";
			break;
		case 0x0a:
			e = "\\n";
			break;
		case 0x0c:
			e = "\\f";
			break;
		case 0x0d:
			e = "\\r";
			break;
		default:
			if (ch < 0x20) {
				snprintf(esc, sizeof(esc), "\\u%04X", ch);
				e = esc;
			}
		}
		if (e)
			put(o, e, strlen(e));
		else
			put(o, (const char *)&ch, 1);
	}
	put(o, "\"", 1);
}

/* Rule 7: the shortest digits that read back as d, in ECMAScript's layout. */
static void put_double(char *out, size_t cap, double d)
{
	if (d == 0) {
		snprintf(out, cap, "%s", signbit(d) ? "-0.0" : "0.0");
		return;
	}
	char buf[40], digits[24];
	int prec, exp10 = 0;
	for (prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*e", prec - 1, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	/* buf is [-]D[.DDD]e[+-]XX: collect the digits and the exponent. */
	size_t k = 0;
	const char *p = buf + (buf[0] == '-');
	for (; *p && *p != 'e'; p++)
		if (*p >= '0' && *p <= '9')
			digits[k++] = *p;
	digits[k] = '\0';
	exp10 = atoi(p + 1);
	while (k > 1 && digits[k - 1] == '0') /* "%.*e" may pad with zeros */
		digits[--k] = '\0';
	int n = exp10 + 1; /* value = 0.DIGITS x 10^n */
	const char *sign = d < 0 ? "-" : "";
	if ((int)k <= n && n <= 21) {
		snprintf(out, cap, "%s%s%0*d.0", sign, digits, n - (int)k, 0);
		if (n == (int)k) /* %0*d with width 0 still prints "0" */
			snprintf(out, cap, "%s%s.0", sign, digits);
	} else if (0 < n && n <= 21) {
		snprintf(out, cap, "%s%.*s.%s", sign, n, digits, digits + n);
	} else if (-6 < n && n <= 0) {
		snprintf(out, cap, "%s0.%0*d%s", sign, -n, 0, digits);
		if (n == 0)
			snprintf(out, cap, "%s0.%s", sign, digits);
	} else if (k == 1) {
		snprintf(out, cap, "%s%se%d", sign, digits, n - 1);
	} else {
		snprintf(out, cap, "%s%c.%se%d", sign, digits[0], digits + 1, n - 1);
	}
}

void canon_number(const char *tok, size_t len, char *out, size_t cap)
{
	char t[400];
	snprintf(t, sizeof(t), "%.*s", (int)len, tok);
	int integer = strpbrk(t, ".eE") == NULL;
	if (integer) {
		/* Rule 6, for integers that fit in 64 bits: -2^63 .. 2^64-1. */
		errno = 0;
		if (t[0] == '-') {
			long long v = strtoll(t, NULL, 10);
			if (errno == 0) {
				snprintf(out, cap, "%lld", v);
				return;
			}
		} else {
			unsigned long long v = strtoull(t, NULL, 10);
			if (errno == 0) {
				snprintf(out, cap, "%llu", v);
				return;
			}
		}
	}
	put_double(out, cap, strtod(t, NULL));
}

struct member {
	const char *name;
	size_t len;
	yyjson_val *val; /* NULL: the checksum member, value in `str` */
	const char *str;
};

static int member_cmp(const void *a, const void *b)
{
	const struct member *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->name, y->name, n);
	return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Writes v canonically; at depth 1 member `metadata` is handled with `checksum`. */
static void put_value(struct out *o, yyjson_val *v, int depth, int in_metadata,
                      const char *checksum)
{
	if (yyjson_is_obj(v)) {
		size_t n = yyjson_obj_size(v) + 1, k = 0, i, max;
		struct member *m = calloc(n, sizeof(*m));
		yyjson_val *key, *val;
		yyjson_obj_foreach(v, i, max, key, val)
		{
			if (in_metadata && yyjson_equals_strn(key, "checksum", 8))
				continue; /* rule 1 */
			m[k++] =
			    (struct member){yyjson_get_str(key), yyjson_get_len(key), val, NULL};
		}
		if (in_metadata && checksum)
			m[k++] = (struct member){"checksum", 8, NULL, checksum};
		qsort(m, k, sizeof(*m), member_cmp);
		put(o, "{", 1);
		for (i = 0; i < k; i++) {
			if (i)
				put(o, ",", 1);
			put_string(o, m[i].name, m[i].len);
			put(o, ":", 1);
			if (!m[i].val)
				put_string(o, m[i].str, strlen(m[i].str));
			else
				put_value(o, m[i].val, depth + 1,
				          depth == 1 && m[i].len == 8 &&
				              memcmp(m[i].name, "metadata", 8) == 0,
				          checksum);
		}
		put(o, "}", 1);
		free(m);
	} else if (yyjson_is_arr(v)) {
		size_t i, max;
		yyjson_val *e;
		put(o, "[", 1);
		yyjson_arr_foreach(v, i, max, e)
		{
			if (i)
				put(o, ",", 1);
			put_value(o, e, depth + 1, 0, NULL);
		}
		put(o, "]", 1);
	} else if (yyjson_is_str(v)) {
		put_string(o, yyjson_get_str(v), yyjson_get_len(v));
	} else if (yyjson_is_raw(v)) {
		char num[64];
		canon_number(yyjson_get_raw(v), yyjson_get_len(v), num, sizeof(num));
		put(o, num, strlen(num));
	} else if (yyjson_is_true(v)) {
		put(o, "true", 4);
	} else if (yyjson_is_false(v)) {
		put(o, "false", 5);
	} else {
		put(o, "null", 4);
	}
}

char *canon_pattern(const char *json, int serialised, char hex[65])
{
	yyjson_doc *doc = yyjson_read(json, strlen(json), YYJSON_READ_NUMBER_AS_RAW);
	if (!doc)
		return NULL;
	yyjson_val *root = yyjson_doc_get_root(doc);
	struct out o = {0};
	char h[65];
	put_value(&o, root, 1, 0, NULL);
	sha256_hex(o.p, o.len, h);
	if (hex)
		memcpy(hex, h, 65);
	/* A tombstone has no metadata: its serialised form is its canonical form. */
	if (serialised && yyjson_obj_get(root, "metadata")) {
		free(o.p);
		o = (struct out){0};
		put_value(&o, root, 1, 0, h);
	}
	yyjson_doc_free(doc);
	return o.p;
}
