/* SPDX-License-Identifier: Apache-2.0 */
/* Vector clocks: a sorted map agent id -> counter. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yyjson.h>

#include "error.h"
#include "vclock.h"

typedef struct vc_entry {
	char *agent;
	uint64_t value;
} vc_entry;

struct ags_vclock {
	vc_entry *e; /* sorted by agent (strcmp), no agent twice */
	size_t n, cap;
};

/* Whether s (n bytes) is a usable agent id: 1..256 bytes, no control characters. */
static int agent_ok(const char *s, size_t n)
{
	if (n < 1 || n > AGS_VCLOCK_AGENT_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}

/* Index of `agent` in v, or where it would go (*found says which). */
static size_t find(const ags_vclock *v, const char *agent, int *found)
{
	size_t lo = 0, hi = v->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(v->e[mid].agent, agent);
		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = 0;
	return lo;
}

/* Makes room for at least `want` entries. */
static int reserve(ags_vclock *v, size_t want)
{
	if (want <= v->cap)
		return 0;
	size_t cap = v->cap ? v->cap * 2 : 8;
	while (cap < want)
		cap *= 2;
	vc_entry *e = realloc(v->e, cap * sizeof(*e));
	if (!e)
		return AGS_ERR_NOMEM;
	v->e = e;
	v->cap = cap;
	return 0;
}

int ags_vclock_new(ags_vclock **out)
{
	if (!out)
		return AGS_ERR_INVALID;
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : AGS_ERR_NOMEM;
}

void ags_vclock_del(ags_vclock *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->n; i++)
		free(v->e[i].agent);
	free(v->e);
	free(v);
}

ags_vclock *ags_vclock_dup(const ags_vclock *v)
{
	ags_vclock *d;
	if (!v || ags_vclock_new(&d))
		return NULL;
	if (reserve(d, v->n))
		goto fail;
	for (size_t i = 0; i < v->n; i++) {
		if (!(d->e[i].agent = strdup(v->e[i].agent)))
			goto fail;
		d->e[i].value = v->e[i].value;
		d->n = i + 1;
	}
	return d;
fail:
	ags_vclock_del(d);
	return NULL;
}

int ags_vclock_get(const ags_vclock *v, const char *agent, uint64_t *out)
{
	int found;
	if (!v || !agent || !out)
		return AGS_ERR_INVALID;
	size_t i = find(v, agent, &found);
	*out = found ? v->e[i].value : 0;
	return 0;
}

int ags_vclock_set(ags_vclock *v, const char *agent, uint64_t value)
{
	int found;
	if (!v || !agent || !agent_ok(agent, strlen(agent)))
		return AGS_ERR_INVALID;
	size_t i = find(v, agent, &found);
	if (found) {
		v->e[i].value = value;
		return 0;
	}
	if (v->n >= AGS_VCLOCK_MAX)
		return AGS_ERR_TOO_LARGE;
	char *copy = strdup(agent);
	if (!copy || reserve(v, v->n + 1)) {
		free(copy);
		return AGS_ERR_NOMEM;
	}
	memmove(&v->e[i + 1], &v->e[i], (v->n - i) * sizeof(*v->e));
	v->e[i].agent = copy;
	v->e[i].value = value;
	v->n++;
	return 0;
}

int ags_vclock_tick(ags_vclock *v, const char *agent)
{
	uint64_t cur;
	int rc;
	if ((rc = ags_vclock_get(v, agent, &cur)))
		return rc;
	if (cur == UINT64_MAX)
		return AGS_ERR_TOO_LARGE;
	return ags_vclock_set(v, agent, cur + 1);
}

int ags_vclock_merge(ags_vclock *v, const ags_vclock *other)
{
	if (!v || !other)
		return AGS_ERR_INVALID;
	if (v == other)
		return 0;

	/* Count the agents only `other` has: when none, merge in place. */
	size_t extra = 0;
	for (size_t i = 0, j = 0; j < other->n;) {
		int c = i < v->n ? strcmp(v->e[i].agent, other->e[j].agent) : 1;
		if (c < 0) {
			i++;
		} else if (c == 0) {
			i++;
			j++;
		} else {
			extra++;
			j++;
		}
	}
	if (v->n + extra > AGS_VCLOCK_MAX)
		return AGS_ERR_TOO_LARGE;

	if (extra == 0) {
		for (size_t i = 0, j = 0; j < other->n; i++) {
			if (strcmp(v->e[i].agent, other->e[j].agent) == 0) {
				if (other->e[j].value > v->e[i].value)
					v->e[i].value = other->e[j].value;
				j++;
			}
		}
		return 0;
	}

	/* Build the union in a new array so that a failure leaves v as it was. */
	size_t total = v->n + extra, k = 0;
	vc_entry *e = malloc(total * sizeof(*e));
	if (!e)
		return AGS_ERR_NOMEM;
	size_t i = 0, j = 0;
	while (i < v->n || j < other->n) {
		int c = i >= v->n       ? 1
		        : j >= other->n ? -1
		                        : strcmp(v->e[i].agent, other->e[j].agent);
		if (c < 0) {
			e[k++] = v->e[i++];
		} else if (c == 0) {
			e[k] = v->e[i++];
			if (other->e[j].value > e[k].value)
				e[k].value = other->e[j].value;
			k++;
			j++;
		} else {
			if (!(e[k].agent = strdup(other->e[j].agent)))
				goto fail;
			e[k++].value = other->e[j++].value;
		}
	}
	free(v->e);
	v->e = e;
	v->n = v->cap = total;
	return 0;
fail:
	/* Free only the copies made here (agents v lacks); the rest still belong to v. */
	for (size_t x = 0; x < k; x++) {
		int found;
		find(v, e[x].agent, &found);
		if (!found)
			free(e[x].agent);
	}
	free(e);
	return AGS_ERR_NOMEM;
}

int ags_vclock_compare(const ags_vclock *a, const ags_vclock *b)
{
	static const ags_vclock empty = {NULL, 0, 0};
	int a_ahead = 0, b_ahead = 0;
	if (!a)
		a = &empty;
	if (!b)
		b = &empty;
	size_t i = 0, j = 0;
	while (i < a->n || j < b->n) {
		uint64_t x, y;
		int c = i >= a->n ? 1 : j >= b->n ? -1 : strcmp(a->e[i].agent, b->e[j].agent);
		if (c < 0) {
			x = a->e[i++].value;
			y = 0;
		} else if (c > 0) {
			x = 0;
			y = b->e[j++].value;
		} else {
			x = a->e[i++].value;
			y = b->e[j++].value;
		}
		if (x > y)
			a_ahead = 1;
		else if (y > x)
			b_ahead = 1;
	}
	if (a_ahead && b_ahead)
		return AGS_VC_CONCURRENT;
	if (a_ahead)
		return AGS_VC_AFTER;
	if (b_ahead)
		return AGS_VC_BEFORE;
	return AGS_VC_EQUAL;
}

int ags_vclock_to_json(const ags_vclock *v, char **out, size_t *len)
{
	if (!v || !out)
		return AGS_ERR_INVALID;
	*out = NULL;
	yyjson_mut_doc *doc = yyjson_mut_doc_new(NULL);
	yyjson_mut_val *root = doc ? yyjson_mut_obj(doc) : NULL;
	if (!root)
		goto fail;
	yyjson_mut_doc_set_root(doc, root);
	for (size_t i = 0; i < v->n; i++)
		/* The strings outlive the document, so no copies are needed. */
		if (!yyjson_mut_obj_add_uint(doc, root, v->e[i].agent, v->e[i].value))
			goto fail;
	size_t n;
	char *s = yyjson_mut_write(doc, YYJSON_WRITE_NOFLAG, &n);
	if (!s)
		goto fail;
	yyjson_mut_doc_free(doc);
	*out = s;
	if (len)
		*len = n;
	return 0;
fail:
	yyjson_mut_doc_free(doc);
	return AGS_ERR_NOMEM;
}

static int cmp_entry(const void *x, const void *y)
{
	return strcmp(((const vc_entry *)x)->agent, ((const vc_entry *)y)->agent);
}

/* Copies an agent id into an error field, shortened to fit. */
static const char *field_of(char *buf, size_t cap, const char *agent)
{
	snprintf(buf, cap, "%s", agent);
	return buf;
}

/* Builds a clock from n ids (with their byte lengths) and counters; see from_arrays. */
static int build(const char *const *agents, const size_t *lens, const uint64_t *counters, size_t n,
                 ags_vclock **out, ags_error *err)
{
	char field[sizeof(((ags_error *)0)->field)];
	ags_vclock *v = NULL;
	int rc;

	if (n > AGS_VCLOCK_MAX)
		return ags_error_set(err, AGS_ERR_TOO_LARGE, NULL,
		                     "vector clock has %zu entries, over the limit of %d", n,
		                     AGS_VCLOCK_MAX);
	for (size_t i = 0; i < n; i++) {
		if (!agents[i])
			return ags_error_set(err, AGS_ERR_INVALID, NULL, "agent %zu is NULL", i);
		size_t len = lens ? lens[i] : strlen(agents[i]);
		if (!agent_ok(agents[i], len)) {
			snprintf(field, sizeof(field), "[%zu]", i);
			return ags_error_set(
			    err, AGS_ERR_PROTO, field,
			    "agent id must be 1-%d bytes without control characters",
			    AGS_VCLOCK_AGENT_MAX);
		}
	}
	if (ags_vclock_new(&v) != 0 || reserve(v, n) != 0)
		goto nomem;
	for (size_t i = 0; i < n; i++) {
		size_t len = lens ? lens[i] : strlen(agents[i]);
		if (!(v->e[i].agent = strndup(agents[i], len)))
			goto nomem;
		v->e[i].value = counters[i];
		v->n = i + 1;
	}
	if (v->n > 1)
		qsort(v->e, v->n, sizeof(*v->e), cmp_entry);
	for (size_t i = 1; i < v->n; i++) {
		if (strcmp(v->e[i - 1].agent, v->e[i].agent) == 0) {
			rc = ags_error_set(err, AGS_ERR_PROTO,
			                   field_of(field, sizeof(field), v->e[i].agent),
			                   "agent is given twice");
			ags_vclock_del(v);
			return rc;
		}
	}
	*out = v;
	return 0;
nomem:
	ags_vclock_del(v);
	return ags_error_set(err, AGS_ERR_NOMEM, NULL, "out of memory");
}

int ags_vclock_from_arrays(const char *const *agents, const uint64_t *counters, size_t n,
                           ags_vclock **out, ags_error *err)
{
	if (!out || (n > 0 && (!agents || !counters)))
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "NULL argument");
	return build(agents, NULL, counters, n, out, err);
}

int ags_vclock_from_json(const char *json, size_t len, ags_vclock **out, ags_error *err)
{
	char field[sizeof(((ags_error *)0)->field)];
	yyjson_read_err rerr;
	const char **agents = NULL;
	size_t *lens = NULL;
	uint64_t *counters = NULL;
	int rc;

	if (!out || (!json && len > 0))
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "NULL argument");
	if (len > AGS_VCLOCK_JSON_MAX)
		return ags_error_set(err, AGS_ERR_TOO_LARGE, NULL,
		                     "vector clock JSON is %zu bytes, over the limit of %u", len,
		                     AGS_VCLOCK_JSON_MAX);
	if (len == 0)
		return ags_error_set(err, AGS_ERR_JSON, NULL, "empty vector clock");
	yyjson_doc *doc =
	    yyjson_read_opts((char *)(uintptr_t)json, len, YYJSON_READ_NOFLAG, NULL, &rerr);
	if (!doc) {
		if (rerr.code == YYJSON_READ_ERROR_MEMORY_ALLOCATION)
			return ags_error_set(err, AGS_ERR_NOMEM, NULL, "out of memory");
		rc = ags_error_set(err, AGS_ERR_JSON, NULL, "vector clock: %s at byte %zu",
		                   rerr.msg, rerr.pos);
		if (err)
			err->offset = rerr.pos;
		return rc;
	}
	yyjson_val *root = yyjson_doc_get_root(doc);
	if (!yyjson_is_obj(root)) {
		rc = ags_error_set(err, AGS_ERR_PROTO, NULL, "vector clock must be a JSON object");
		goto done;
	}
	size_t n = yyjson_obj_size(root);
	if (n > AGS_VCLOCK_MAX) {
		rc = ags_error_set(err, AGS_ERR_TOO_LARGE, NULL,
		                   "vector clock has %zu entries, over the limit of %d", n,
		                   AGS_VCLOCK_MAX);
		goto done;
	}
	if (n > 0) {
		agents = calloc(n, sizeof(*agents));
		lens = calloc(n, sizeof(*lens));
		counters = calloc(n, sizeof(*counters));
		if (!agents || !lens || !counters) {
			rc = ags_error_set(err, AGS_ERR_NOMEM, NULL, "out of memory");
			goto done;
		}
	}
	yyjson_obj_iter it;
	yyjson_val *k;
	yyjson_obj_iter_init(root, &it);
	for (size_t i = 0; (k = yyjson_obj_iter_next(&it)); i++) {
		yyjson_val *val = yyjson_obj_iter_get_val(k);
		agents[i] = yyjson_get_str(k);
		lens[i] = yyjson_get_len(k);
		if (yyjson_is_uint(val)) {
			counters[i] = yyjson_get_uint(val);
		} else if (yyjson_is_sint(val) && yyjson_get_sint(val) == 0) {
			counters[i] = 0; /* "-0" */
		} else {
			/* A bad id is reported by build() below, with its index. */
			if (agent_ok(agents[i], lens[i]))
				field_of(field, sizeof(field), agents[i]);
			else
				snprintf(field, sizeof(field), "[%zu]", i);
			rc = ags_error_set(err, AGS_ERR_PROTO, field,
			                   "counter must be an integer from 0 to 2^64-1");
			goto done;
		}
	}
	rc = build(agents, lens, counters, n, out, err);
done:
	free(agents);
	free(lens);
	free(counters);
	yyjson_doc_free(doc);
	return rc;
}

size_t ags_vclock_count(const ags_vclock *v)
{
	return v ? v->n : 0;
}

const char *ags_vclock_agent(const ags_vclock *v, size_t i)
{
	return v && i < v->n ? v->e[i].agent : NULL;
}

uint64_t ags_vclock_value(const ags_vclock *v, size_t i)
{
	return v && i < v->n ? v->e[i].value : 0;
}
