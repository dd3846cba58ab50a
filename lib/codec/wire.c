/* SPDX-License-Identifier: Apache-2.0 */
/* The JSON messages: HELLO, ACK, ERROR, AUTH, PULL / PULL_DONE. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "error.h"
#include "wire.h"

/* ------------------------------------------------------------------------ */
/* Shared checks                                                            */
/* ------------------------------------------------------------------------ */

/* Whether s (n bytes) has no control characters (which includes NUL). */
static int no_ctl(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}

/* Whether s is exactly 32 lowercase hex digits. */
static int is_store_id(const char *s, size_t n)
{
	if (n != AGS_WIRE_STORE_ID_LEN)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* Whether s (n bytes) is a store epoch id: 16 lowercase hex digits. */
static int is_epoch_id(const char *s, size_t n)
{
	if (n != AGS_WIRE_EPOCH_LEN)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

enum { STR_ANY = 0, STR_NO_CTL = 1 };

/*
 * Checks a string for an encoder: non-NULL, min..max bytes, no NUL, and no
 * control characters when `mode` is STR_NO_CTL.
 */
static int enc_str(const char *s, const char *path, size_t min, size_t max, int mode,
                   ags_error *err)
{
	if (!s)
		return ags_error_set(err, AGS_ERR_INVALID, path, "is missing");
	size_t n = strlen(s);
	if (n < min || n > max)
		return ags_error_set(err, AGS_ERR_INVALID, path, "must be %zu-%zu bytes, is %zu",
		                     min, max, n);
	if (mode == STR_NO_CTL && !no_ctl(s, n))
		return ags_error_set(err, AGS_ERR_INVALID, path,
		                     "must not contain control characters");
	return 0;
}

/* Parses a payload that must be one JSON object; *doc owns it on success. */
static int parse_obj(const uint8_t *json, size_t len, const char *what, yyjson_doc **doc,
                     yyjson_val **root, ags_error *err)
{
	yyjson_read_err rerr;
	*doc = NULL;
	if (!json && len > 0)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "NULL payload");
	if (len == 0)
		return ags_error_set(err, AGS_ERR_JSON, NULL, "empty %s payload", what);
	yyjson_doc *d =
	    yyjson_read_opts((char *)(uintptr_t)json, len, YYJSON_READ_NOFLAG, NULL, &rerr);
	if (!d) {
		if (rerr.code == YYJSON_READ_ERROR_MEMORY_ALLOCATION)
			return ags_error_set(err, AGS_ERR_NOMEM, NULL, "out of memory parsing %s",
			                     what);
		int rc = ags_error_set(err, AGS_ERR_JSON, NULL, "%s: %s at byte %zu", what,
		                       rerr.msg, rerr.pos);
		if (err)
			err->offset = rerr.pos;
		return rc;
	}
	*root = yyjson_doc_get_root(d);
	if (!yyjson_is_obj(*root)) {
		yyjson_doc_free(d);
		return ags_error_set(err, AGS_ERR_PROTO, NULL, "%s must be a JSON object", what);
	}
	*doc = d;
	return 0;
}

/* Joins a parent path and a member name into buf. */
static const char *path_join(char *buf, size_t cap, const char *parent, const char *key)
{
	if (parent && parent[0])
		snprintf(buf, cap, "%s.%s", parent, key);
	else
		snprintf(buf, cap, "%s", key);
	return buf;
}

/*
 * Finds member `key` of `obj` (*out NULL when absent). A member given twice
 * is refused: readers that keep the first and readers that keep the last
 * would otherwise see different messages.
 */
static int member(yyjson_val *obj, const char *parent, const char *key, int required,
                  yyjson_val **out, ags_error *err)
{
	char path[96];
	size_t n = strlen(key);
	yyjson_obj_iter it;
	yyjson_val *k;

	*out = NULL;
	yyjson_obj_iter_init(obj, &it);
	while ((k = yyjson_obj_iter_next(&it))) {
		if (yyjson_get_len(k) != n || memcmp(yyjson_get_str(k), key, n) != 0)
			continue;
		if (*out)
			return ags_error_set(err, AGS_ERR_PROTO,
			                     path_join(path, sizeof(path), parent, key),
			                     "is given twice");
		*out = yyjson_obj_iter_get_val(k);
	}
	if (!*out && required)
		return ags_error_set(err, AGS_ERR_PROTO, path_join(path, sizeof(path), parent, key),
		                     "is required");
	return 0;
}

/* Checks a decoded string: min..max bytes, no NUL inside, no control characters if asked. */
static int dec_str(yyjson_val *v, const char *path, size_t min, size_t max, int mode,
                   const char **out, ags_error *err)
{
	if (!yyjson_is_str(v))
		return ags_error_set(err, AGS_ERR_PROTO, path, "must be a string");
	const char *s = yyjson_get_str(v);
	size_t n = yyjson_get_len(v);
	if (n < min || n > max)
		return ags_error_set(err, AGS_ERR_PROTO, path, "must be %zu-%zu bytes, is %zu", min,
		                     max, n);
	if (memchr(s, '\0', n))
		return ags_error_set(err, AGS_ERR_PROTO, path, "must not contain NUL");
	if (mode == STR_NO_CTL && !no_ctl(s, n))
		return ags_error_set(err, AGS_ERR_PROTO, path,
		                     "must not contain control characters");
	*out = s;
	return 0;
}

/* Checks a decoded unsigned integer in min..max. */
static int dec_u64(yyjson_val *v, const char *path, uint64_t min, uint64_t max, uint64_t *out,
                   ags_error *err)
{
	if (!yyjson_is_uint(v) || yyjson_get_uint(v) < min || yyjson_get_uint(v) > max)
		return ags_error_set(err, AGS_ERR_PROTO, path,
		                     "must be an integer from %llu to %llu",
		                     (unsigned long long)min, (unsigned long long)max);
	*out = yyjson_get_uint(v);
	return 0;
}

/* Writes `doc` compactly and appends it as a frame of `type`; frees doc. */
static int emit(yyjson_mut_doc *doc, uint8_t type, ags_frame_buf *out, ags_error *err)
{
	yyjson_write_err werr;
	size_t len = 0;
	char *text = yyjson_mut_write_opts(doc, YYJSON_WRITE_NOFLAG, NULL, &len, &werr);
	yyjson_mut_doc_free(doc);
	if (!text) {
		if (werr.code == YYJSON_WRITE_ERROR_MEMORY_ALLOCATION)
			return ags_error_set(err, AGS_ERR_NOMEM, NULL, "out of memory");
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "cannot write %s: %s",
		                     ags_frame_type_name(type), werr.msg);
	}
	int rc = ags_frame_append(out, type, text, len);
	free(text);
	if (rc)
		return ags_error_set(err, rc, NULL, "cannot append a %zu-byte %s frame", len,
		                     ags_frame_type_name(type));
	return 0;
}

/* Starts a mutable document with an object root. */
static yyjson_mut_doc *new_obj_doc(yyjson_mut_val **root)
{
	yyjson_mut_doc *doc = yyjson_mut_doc_new(NULL);
	if (!doc)
		return NULL;
	*root = yyjson_mut_obj(doc);
	if (!*root) {
		yyjson_mut_doc_free(doc);
		return NULL;
	}
	yyjson_mut_doc_set_root(doc, *root);
	return doc;
}

/* ------------------------------------------------------------------------ */
/* HELLO                                                                    */
/* ------------------------------------------------------------------------ */

/* Codecs in the order a HELLO lists them (most preferred first). */
static const int codec_order[] = {AGS_CODEC_ZSTD, AGS_CODEC_GZIP};

static int check_list(const char *const *items, size_t n, const char *path, ags_error *err)
{
	char p[96];
	if (n > AGS_WIRE_FILTER_MAX)
		return ags_error_set(err, AGS_ERR_INVALID, path, "at most %d entries, got %zu",
		                     AGS_WIRE_FILTER_MAX, n);
	for (size_t i = 0; i < n; i++) {
		snprintf(p, sizeof(p), "%s[%zu]", path, i);
		int rc = enc_str(items[i], p, 1, AGS_WIRE_FILTER_ITEM_MAX, STR_NO_CTL, err);
		if (rc)
			return rc;
	}
	return 0;
}

static int hello_check(const ags_wire_hello *h, ags_error *err)
{
	int rc;
	if (h->proto != AGS_PROTO_VERSION)
		return ags_error_set(err, AGS_ERR_INVALID, "proto", "must be %d",
		                     AGS_PROTO_VERSION);
	if ((rc = enc_str(h->node, "node", 1, AGS_WIRE_NODE_MAX, STR_NO_CTL, err)) ||
	    (rc = enc_str(h->tenant, "tenant", 1, AGS_WIRE_TENANT_MAX, STR_NO_CTL, err)))
		return rc;
	if (!h->store || !is_store_id(h->store, strlen(h->store)))
		return ags_error_set(err, AGS_ERR_INVALID, "store",
		                     "must be 32 lowercase hex digits");
	if (h->max_frame < AGS_FRAME_MAX_MIN || h->max_frame > AGS_FRAME_MAX_HARD)
		return ags_error_set(err, AGS_ERR_INVALID, "maxFrame", "must be %u-%u",
		                     AGS_FRAME_MAX_MIN, AGS_FRAME_MAX_HARD);
	if (h->batch_size < 1 || h->batch_size > AGS_WIRE_BATCH_SIZE_MAX)
		return ags_error_set(err, AGS_ERR_INVALID, "batchSize", "must be 1-%u",
		                     AGS_WIRE_BATCH_SIZE_MAX);
	if (h->has_cursor &&
	    (!h->cursor_store ||
	     (h->cursor_store[0] && !is_store_id(h->cursor_store, strlen(h->cursor_store)))))
		return ags_error_set(err, AGS_ERR_INVALID, "cursor.store",
		                     "must be \"\" or 32 lowercase hex digits");
	if (h->has_filter && ((rc = check_list(h->types, h->n_types, "filter.types", err)) ||
	                      (rc = check_list(h->tags, h->n_tags, "filter.tags", err))))
		return rc;
	if (h->instance &&
	    (rc = enc_str(h->instance, "instance", 1, AGS_WIRE_INSTANCE_MAX, STR_NO_CTL, err)))
		return rc;
	if (h->n_epochs > AGS_WIRE_EPOCHS_MAX)
		return ags_error_set(err, AGS_ERR_INVALID, "epochs", "at most %d entries",
		                     AGS_WIRE_EPOCHS_MAX);
	for (size_t i = 0; i < h->n_epochs; i++)
		if (!h->epoch_ids[i] || !is_epoch_id(h->epoch_ids[i], strlen(h->epoch_ids[i])) ||
		    h->epoch_starts[i] < 1 || (i && h->epoch_starts[i] < h->epoch_starts[i - 1]))
			return ags_error_set(err, AGS_ERR_INVALID, "epochs",
			                     "entry %zu: id of 16 lowercase hex digits, start >= 1 "
			                     "and not below the one before",
			                     i);
	if (h->has_cursor && h->cursor_epoch &&
	    !is_epoch_id(h->cursor_epoch, strlen(h->cursor_epoch)))
		return ags_error_set(err, AGS_ERR_INVALID, "cursor.epoch",
		                     "must be 16 lowercase hex digits");
	return 0;
}

int ags_wire_hello_encode(const ags_wire_hello *h, ags_frame_buf *out, ags_error *err)
{
	if (!h || !out)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "NULL argument");
	int rc = hello_check(h, err);
	if (rc)
		return rc;

	yyjson_mut_val *root, *arr, *obj;
	yyjson_mut_doc *doc = new_obj_doc(&root);
	if (!doc)
		goto nomem;
	if (!yyjson_mut_obj_add_int(doc, root, "proto", h->proto) ||
	    !yyjson_mut_obj_add_str(doc, root, "node", h->node) ||
	    !yyjson_mut_obj_add_str(doc, root, "tenant", h->tenant) ||
	    !yyjson_mut_obj_add_str(doc, root, "store", h->store) ||
	    !(arr = yyjson_mut_obj_add_arr(doc, root, "codecs")))
		goto nomem_doc;
	for (size_t i = 0; i < sizeof(codec_order) / sizeof(codec_order[0]); i++)
		if ((h->codecs & (1u << codec_order[i])) &&
		    !yyjson_mut_arr_add_str(doc, arr, ags_codec_name(codec_order[i])))
			goto nomem_doc;
	if (!yyjson_mut_obj_add_uint(doc, root, "maxFrame", h->max_frame) ||
	    !yyjson_mut_obj_add_uint(doc, root, "batchSize", h->batch_size))
		goto nomem_doc;
	if (h->has_cursor) {
		if (!(obj = yyjson_mut_obj_add_obj(doc, root, "cursor")) ||
		    !yyjson_mut_obj_add_str(doc, obj, "store", h->cursor_store) ||
		    !yyjson_mut_obj_add_uint(doc, obj, "seq", h->cursor_seq) ||
		    (h->cursor_epoch &&
		     !yyjson_mut_obj_add_str(doc, obj, "epoch", h->cursor_epoch)))
			goto nomem_doc;
	}
	if (h->has_filter) {
		if (!(obj = yyjson_mut_obj_add_obj(doc, root, "filter")))
			goto nomem_doc;
		if (!(arr = yyjson_mut_obj_add_arr(doc, obj, "types")))
			goto nomem_doc;
		for (size_t i = 0; i < h->n_types; i++)
			if (!yyjson_mut_arr_add_str(doc, arr, h->types[i]))
				goto nomem_doc;
		if (!(arr = yyjson_mut_obj_add_arr(doc, obj, "tags")))
			goto nomem_doc;
		for (size_t i = 0; i < h->n_tags; i++)
			if (!yyjson_mut_arr_add_str(doc, arr, h->tags[i]))
				goto nomem_doc;
	}
	if (h->instance && !yyjson_mut_obj_add_str(doc, root, "instance", h->instance))
		goto nomem_doc;
	if (h->delta && !yyjson_mut_obj_add_bool(doc, root, "delta", true))
		goto nomem_doc;
	if (h->n_epochs) {
		if (!(arr = yyjson_mut_obj_add_arr(doc, root, "epochs")))
			goto nomem_doc;
		for (size_t i = 0; i < h->n_epochs; i++)
			if (!(obj = yyjson_mut_arr_add_obj(doc, arr)) ||
			    !yyjson_mut_obj_add_str(doc, obj, "id", h->epoch_ids[i]) ||
			    !yyjson_mut_obj_add_uint(doc, obj, "start", h->epoch_starts[i]))
				goto nomem_doc;
	}
	if (h->anti_entropy && !yyjson_mut_obj_add_bool(doc, root, "antiEntropy", true))
		goto nomem_doc;
	return emit(doc, AGS_FRAME_HELLO, out, err);

nomem_doc:
	yyjson_mut_doc_free(doc);
nomem:
	return ags_error_set(err, AGS_ERR_NOMEM, NULL, "out of memory");
}

static int dec_list(yyjson_val *obj, const char *key, size_t *n, const char **items, ags_error *err)
{
	char path[96];
	yyjson_val *arr, *v;
	int rc;

	path_join(path, sizeof(path), "filter", key);
	if ((rc = member(obj, "filter", key, 0, &arr, err)))
		return rc;
	*n = 0;
	if (!arr)
		return 0;
	if (!yyjson_is_arr(arr))
		return ags_error_set(err, AGS_ERR_PROTO, path, "must be an array of strings");
	if (yyjson_arr_size(arr) > AGS_WIRE_FILTER_MAX)
		return ags_error_set(err, AGS_ERR_PROTO, path, "at most %d entries, got %zu",
		                     AGS_WIRE_FILTER_MAX, yyjson_arr_size(arr));
	yyjson_arr_iter it;
	yyjson_arr_iter_init(arr, &it);
	for (size_t i = 0; (v = yyjson_arr_iter_next(&it)); i++) {
		char p[112];
		snprintf(p, sizeof(p), "%.80s[%zu]", path, i);
		if ((rc = dec_str(v, p, 1, AGS_WIRE_FILTER_ITEM_MAX, STR_NO_CTL, &items[i], err)))
			return rc;
		*n = i + 1;
	}
	return 0;
}

static int hello_fields(yyjson_val *root, ags_wire_hello *h, ags_error *err)
{
	yyjson_val *v;
	uint64_t u;
	int rc;

	/* The version first: a later version may change everything else. */
	if ((rc = member(root, NULL, "proto", 1, &v, err)))
		return rc;
	if (!yyjson_is_int(v))
		return ags_error_set(err, AGS_ERR_PROTO, "proto", "must be an integer");
	if (yyjson_is_sint(v))
		return ags_error_set(err, AGS_ERR_UNSUPPORTED, "proto",
		                     "protocol version %lld is not supported (this node speaks %d)",
		                     (long long)yyjson_get_sint(v), AGS_PROTO_VERSION);
	if (yyjson_get_uint(v) != AGS_PROTO_VERSION)
		return ags_error_set(err, AGS_ERR_UNSUPPORTED, "proto",
		                     "protocol version %llu is not supported (this node speaks %d)",
		                     (unsigned long long)yyjson_get_uint(v), AGS_PROTO_VERSION);
	h->proto = AGS_PROTO_VERSION;

	if ((rc = member(root, NULL, "node", 1, &v, err)) ||
	    (rc = dec_str(v, "node", 1, AGS_WIRE_NODE_MAX, STR_NO_CTL, &h->node, err)) ||
	    (rc = member(root, NULL, "tenant", 1, &v, err)) ||
	    (rc = dec_str(v, "tenant", 1, AGS_WIRE_TENANT_MAX, STR_NO_CTL, &h->tenant, err)) ||
	    (rc = member(root, NULL, "store", 1, &v, err)))
		return rc;
	if (!yyjson_is_str(v) || !is_store_id(yyjson_get_str(v), yyjson_get_len(v)))
		return ags_error_set(err, AGS_ERR_PROTO, "store",
		                     "must be 32 lowercase hex digits");
	h->store = yyjson_get_str(v);

	if ((rc = member(root, NULL, "codecs", 1, &v, err)))
		return rc;
	if (!yyjson_is_arr(v))
		return ags_error_set(err, AGS_ERR_PROTO, "codecs", "must be an array of strings");
	if (yyjson_arr_size(v) > AGS_WIRE_CODECS_MAX)
		return ags_error_set(err, AGS_ERR_PROTO, "codecs", "at most %d entries",
		                     AGS_WIRE_CODECS_MAX);
	yyjson_arr_iter it;
	yyjson_val *c;
	yyjson_arr_iter_init(v, &it);
	for (size_t i = 0; (c = yyjson_arr_iter_next(&it)); i++) {
		char p[32];
		const char *name;
		snprintf(p, sizeof(p), "codecs[%zu]", i);
		if ((rc = dec_str(c, p, 1, AGS_WIRE_CODEC_NAME_MAX, STR_NO_CTL, &name, err)))
			return rc;
		int codec = ags_codec_from_name(name);
		if (codec > AGS_CODEC_NONE)
			h->codecs |= 1u << codec;
	}

	if ((rc = member(root, NULL, "maxFrame", 1, &v, err)) ||
	    (rc = dec_u64(v, "maxFrame", AGS_FRAME_MAX_MIN, AGS_FRAME_MAX_HARD, &u, err)))
		return rc;
	h->max_frame = (uint32_t)u;
	if ((rc = member(root, NULL, "batchSize", 1, &v, err)) ||
	    (rc = dec_u64(v, "batchSize", 1, AGS_WIRE_BATCH_SIZE_MAX, &u, err)))
		return rc;
	h->batch_size = (uint32_t)u;

	if ((rc = member(root, NULL, "cursor", 0, &v, err)))
		return rc;
	if (v) {
		yyjson_val *s;
		if (!yyjson_is_obj(v))
			return ags_error_set(err, AGS_ERR_PROTO, "cursor", "must be an object");
		if ((rc = member(v, "cursor", "store", 1, &s, err)))
			return rc;
		if (!yyjson_is_str(s) ||
		    (yyjson_get_len(s) != 0 && !is_store_id(yyjson_get_str(s), yyjson_get_len(s))))
			return ags_error_set(err, AGS_ERR_PROTO, "cursor.store",
			                     "must be \"\" or 32 lowercase hex digits");
		h->cursor_store = yyjson_get_str(s);
		if ((rc = member(v, "cursor", "seq", 1, &s, err)) ||
		    (rc = dec_u64(s, "cursor.seq", 0, UINT64_MAX, &h->cursor_seq, err)) ||
		    (rc = member(v, "cursor", "epoch", 0, &s, err)))
			return rc;
		if (s && (!yyjson_is_str(s) || !is_epoch_id(yyjson_get_str(s), yyjson_get_len(s))))
			return ags_error_set(err, AGS_ERR_PROTO, "cursor.epoch",
			                     "must be 16 lowercase hex digits");
		h->cursor_epoch = s ? yyjson_get_str(s) : NULL;
		h->has_cursor = 1;
	}

	if ((rc = member(root, NULL, "filter", 0, &v, err)))
		return rc;
	if (v) {
		if (!yyjson_is_obj(v))
			return ags_error_set(err, AGS_ERR_PROTO, "filter", "must be an object");
		if ((rc = dec_list(v, "types", &h->n_types, h->types, err)) ||
		    (rc = dec_list(v, "tags", &h->n_tags, h->tags, err)))
			return rc;
		h->has_filter = 1;
	}

	if ((rc = member(root, NULL, "instance", 0, &v, err)))
		return rc;
	if (v &&
	    (rc = dec_str(v, "instance", 1, AGS_WIRE_INSTANCE_MAX, STR_NO_CTL, &h->instance, err)))
		return rc;
	if ((rc = member(root, NULL, "delta", 0, &v, err)))
		return rc;
	if (v && !yyjson_is_bool(v))
		return ags_error_set(err, AGS_ERR_PROTO, "delta", "must be true or false");
	h->delta = v && yyjson_is_true(v);
	if ((rc = member(root, NULL, "epochs", 0, &v, err)))
		return rc;
	if (v) {
		if (!yyjson_is_arr(v) || yyjson_arr_size(v) < 1 ||
		    yyjson_arr_size(v) > AGS_WIRE_EPOCHS_MAX)
			return ags_error_set(err, AGS_ERR_PROTO, "epochs",
			                     "must be an array of 1-%d objects",
			                     AGS_WIRE_EPOCHS_MAX);
		yyjson_arr_iter ei;
		yyjson_val *e;
		yyjson_arr_iter_init(v, &ei);
		for (size_t i = 0; (e = yyjson_arr_iter_next(&ei)); i++) {
			char p[48];
			yyjson_val *s;
			snprintf(p, sizeof(p), "epochs[%zu]", i);
			if (!yyjson_is_obj(e))
				return ags_error_set(err, AGS_ERR_PROTO, p, "must be an object");
			if ((rc = member(e, p, "id", 1, &s, err)))
				return rc;
			if (!yyjson_is_str(s) || !is_epoch_id(yyjson_get_str(s), yyjson_get_len(s)))
				return ags_error_set(err, AGS_ERR_PROTO, p,
				                     "id must be 16 lowercase hex digits");
			h->epoch_ids[i] = yyjson_get_str(s);
			char sp[64];
			snprintf(sp, sizeof(sp), "epochs[%zu].start", i);
			if ((rc = member(e, p, "start", 1, &s, err)) ||
			    (rc = dec_u64(s, sp, 1, UINT64_MAX, &h->epoch_starts[i], err)))
				return rc;
			if (i && h->epoch_starts[i] < h->epoch_starts[i - 1])
				return ags_error_set(err, AGS_ERR_PROTO, sp,
				                     "must not be below the one before");
			h->n_epochs = i + 1;
		}
	}
	if ((rc = member(root, NULL, "antiEntropy", 0, &v, err)))
		return rc;
	if (v && !yyjson_is_bool(v))
		return ags_error_set(err, AGS_ERR_PROTO, "antiEntropy", "must be true or false");
	h->anti_entropy = v && yyjson_is_true(v);
	return 0;
}

int ags_wire_hello_decode(const uint8_t *json, size_t len, ags_wire_hello *out, ags_error *err)
{
	yyjson_val *root = NULL;
	if (!out)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "NULL argument");
	memset(out, 0, sizeof(*out));
	int rc = parse_obj(json, len, "HELLO", &out->doc, &root, err);
	if (rc)
		return rc;
	if ((rc = hello_fields(root, out, err)))
		ags_wire_hello_free(out);
	return rc;
}

void ags_wire_hello_free(ags_wire_hello *h)
{
	if (!h)
		return;
	yyjson_doc_free(h->doc);
	memset(h, 0, sizeof(*h));
}

/* ------------------------------------------------------------------------ */
/* ACK                                                                      */
/* ------------------------------------------------------------------------ */

/*
 * Adds member `key`: an array of the `n` pattern ids of `ids` (each 1..256
 * bytes, at most AGS_WIRE_CONFLICTS_MAX). Errors: AGS_ERR_INVALID, AGS_ERR_NOMEM.
 */
static int add_id_list(yyjson_mut_doc *doc, yyjson_mut_val *obj, const char *key,
                       const char *const *ids, size_t n, ags_error *err)
{
	char path[64];
	if (!ids || n > AGS_WIRE_CONFLICTS_MAX)
		return ags_error_set(err, AGS_ERR_INVALID, key, "at most %d ids",
		                     AGS_WIRE_CONFLICTS_MAX);
	yyjson_mut_val *arr = yyjson_mut_obj_add_arr(doc, obj, key);
	if (!arr)
		return ags_error_set(err, AGS_ERR_NOMEM, NULL, "out of memory");
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s[%zu]", key, i);
		int rc = enc_str(ids[i], path, 1, AGS_PATTERN_ID_MAX, STR_ANY, err);
		if (rc)
			return rc;
		if (!yyjson_mut_arr_add_str(doc, arr, ids[i]))
			return ags_error_set(err, AGS_ERR_NOMEM, NULL, "out of memory");
	}
	return 0;
}

/* Decodes an optional array of pattern ids (`v` may be NULL: absent). */
static int dec_id_list(yyjson_val *v, const char *key, size_t *n, const char ***out, ags_error *err)
{
	char path[64];
	*n = 0;
	if (!v)
		return 0;
	if (!yyjson_is_arr(v))
		return ags_error_set(err, AGS_ERR_PROTO, key, "must be an array");
	size_t cnt = yyjson_arr_size(v);
	if (cnt > AGS_WIRE_CONFLICTS_MAX)
		return ags_error_set(err, AGS_ERR_TOO_LARGE, key, "%zu ids, over the limit of %d",
		                     cnt, AGS_WIRE_CONFLICTS_MAX);
	if (cnt == 0)
		return 0;
	*out = calloc(cnt, sizeof(**out));
	if (!*out)
		return ags_error_set(err, AGS_ERR_NOMEM, key, "out of memory");
	yyjson_arr_iter it;
	yyjson_val *e;
	yyjson_arr_iter_init(v, &it);
	for (size_t i = 0; (e = yyjson_arr_iter_next(&it)); i++) {
		snprintf(path, sizeof(path), "%s[%zu]", key, i);
		int rc = dec_str(e, path, 1, AGS_PATTERN_ID_MAX, STR_ANY, &(*out)[i], err);
		if (rc)
			return rc;
		*n = i + 1;
	}
	return 0;
}

int ags_wire_ack_encode(const ags_wire_ack *a, const ags_wire_ack_error *errors, size_t n_errors,
                        ags_frame_buf *out, ags_error *err)
{
	char path[64];
	int rc;

	if (!a || !out || (!errors && n_errors > 0))
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "NULL argument");
	if (a->applied > a->received_count)
		return ags_error_set(err, AGS_ERR_INVALID, "applied",
		                     "must not be more than receivedCount");
	for (size_t i = 0; i < n_errors; i++) {
		snprintf(path, sizeof(path), "errors[%zu].patternId", i);
		if ((rc = enc_str(errors[i].pattern_id, path, 0, AGS_PATTERN_ID_MAX, STR_ANY, err)))
			return rc;
		snprintf(path, sizeof(path), "errors[%zu].error", i);
		if ((rc = enc_str(errors[i].error, path, 0, AGS_WIRE_TEXT_MAX, STR_ANY, err)))
			return rc;
	}

	yyjson_mut_val *root, *arr, *obj;
	yyjson_mut_doc *doc = new_obj_doc(&root);
	if (!doc)
		return ags_error_set(err, AGS_ERR_NOMEM, NULL, "out of memory");
	if (!yyjson_mut_obj_add_uint(doc, root, "requestId", a->request_id) ||
	    !yyjson_mut_obj_add_bool(doc, root, "success", a->success != 0) ||
	    !yyjson_mut_obj_add_uint(doc, root, "receivedCount", a->received_count) ||
	    !yyjson_mut_obj_add_uint(doc, root, "applied", a->applied) ||
	    !(arr = yyjson_mut_obj_add_arr(doc, root, "errors")))
		goto nomem;
	for (size_t i = 0; i < n_errors; i++) {
		if (!(obj = yyjson_mut_arr_add_obj(doc, arr)) ||
		    !yyjson_mut_obj_add_str(doc, obj, "patternId", errors[i].pattern_id) ||
		    !yyjson_mut_obj_add_str(doc, obj, "error", errors[i].error) ||
		    !yyjson_mut_obj_add_int(doc, obj, "code", errors[i].code))
			goto nomem;
	}
	if (!yyjson_mut_obj_add_uint(doc, root, "seq", a->seq))
		goto nomem;
	if (a->retry && !yyjson_mut_obj_add_bool(doc, root, "retry", true))
		goto nomem;
	if (a->n_conflicts) {
		rc = add_id_list(doc, root, "conflicts", a->conflicts, a->n_conflicts, err);
		if (rc) {
			yyjson_mut_doc_free(doc);
			return rc;
		}
	}
	return emit(doc, AGS_FRAME_ACK, out, err);

nomem:
	yyjson_mut_doc_free(doc);
	return ags_error_set(err, AGS_ERR_NOMEM, NULL, "out of memory");
}

static int ack_error_fields(yyjson_val *v, size_t i, ags_wire_ack_error *e, ags_error *err)
{
	char parent[32], path[64];
	yyjson_val *m;
	int rc;

	snprintf(parent, sizeof(parent), "errors[%zu]", i);
	if (!yyjson_is_obj(v))
		return ags_error_set(err, AGS_ERR_PROTO, parent, "must be an object");
	if ((rc = member(v, parent, "patternId", 1, &m, err)) ||
	    (rc = dec_str(m, path_join(path, sizeof(path), parent, "patternId"), 0,
	                  AGS_PATTERN_ID_MAX, STR_ANY, &e->pattern_id, err)) ||
	    (rc = member(v, parent, "error", 1, &m, err)) ||
	    (rc = dec_str(m, path_join(path, sizeof(path), parent, "error"), 0, AGS_WIRE_TEXT_MAX,
	                  STR_ANY, &e->error, err)) ||
	    (rc = member(v, parent, "code", 1, &m, err)))
		return rc;
	if (!yyjson_is_int(m) || (yyjson_is_uint(m) && yyjson_get_uint(m) > INT_MAX) ||
	    (yyjson_is_sint(m) && yyjson_get_sint(m) < INT_MIN))
		return ags_error_set(err, AGS_ERR_PROTO,
		                     path_join(path, sizeof(path), parent, "code"),
		                     "must be a 32-bit integer");
	e->code = yyjson_is_uint(m) ? (int)yyjson_get_uint(m) : (int)yyjson_get_sint(m);
	return 0;
}

static int ack_fields(yyjson_val *root, size_t max_errors, ags_wire_ack *a, ags_error *err)
{
	yyjson_val *v;
	int rc;

	if ((rc = member(root, NULL, "requestId", 1, &v, err)) ||
	    (rc = dec_u64(v, "requestId", 0, UINT64_MAX, &a->request_id, err)) ||
	    (rc = member(root, NULL, "success", 1, &v, err)))
		return rc;
	if (!yyjson_is_bool(v))
		return ags_error_set(err, AGS_ERR_PROTO, "success", "must be true or false");
	a->success = yyjson_get_bool(v);
	if ((rc = member(root, NULL, "receivedCount", 1, &v, err)) ||
	    (rc = dec_u64(v, "receivedCount", 0, UINT64_MAX, &a->received_count, err)) ||
	    (rc = member(root, NULL, "applied", 1, &v, err)) ||
	    (rc = dec_u64(v, "applied", 0, a->received_count, &a->applied, err)) ||
	    (rc = member(root, NULL, "seq", 1, &v, err)) ||
	    (rc = dec_u64(v, "seq", 0, UINT64_MAX, &a->seq, err)) ||
	    (rc = member(root, NULL, "errors", 1, &v, err)))
		return rc;
	if (!yyjson_is_arr(v))
		return ags_error_set(err, AGS_ERR_PROTO, "errors", "must be an array");
	size_t n = yyjson_arr_size(v);
	if (n > max_errors)
		return ags_error_set(err, AGS_ERR_TOO_LARGE, "errors",
		                     "%zu errors, over the limit of %zu", n, max_errors);
	if (n > 0) {
		a->errors = calloc(n, sizeof(*a->errors));
		if (!a->errors)
			return ags_error_set(err, AGS_ERR_NOMEM, "errors", "out of memory");
	}
	yyjson_arr_iter it;
	yyjson_val *e;
	yyjson_arr_iter_init(v, &it);
	for (size_t i = 0; (e = yyjson_arr_iter_next(&it)); i++) {
		if ((rc = ack_error_fields(e, i, &a->errors[i], err)))
			return rc;
	}
	a->n_errors = n;
	if ((rc = member(root, NULL, "retry", 0, &v, err)))
		return rc;
	if (v && !yyjson_is_bool(v))
		return ags_error_set(err, AGS_ERR_PROTO, "retry", "must be true or false");
	a->retry = v && yyjson_get_bool(v);
	if ((rc = member(root, NULL, "conflicts", 0, &v, err)))
		return rc;
	return dec_id_list(v, "conflicts", &a->n_conflicts, &a->conflicts, err);
}

int ags_wire_ack_decode(const uint8_t *json, size_t len, size_t max_errors, ags_wire_ack *out,
                        ags_error *err)
{
	yyjson_val *root = NULL;
	if (!out)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "NULL argument");
	memset(out, 0, sizeof(*out));
	if (max_errors == 0)
		max_errors = AGS_BATCH_MAX_COUNT_DEFAULT;
	int rc = parse_obj(json, len, "ACK", &out->doc, &root, err);
	if (rc)
		return rc;
	if ((rc = ack_fields(root, max_errors, out, err)))
		ags_wire_ack_free(out);
	return rc;
}

void ags_wire_ack_free(ags_wire_ack *a)
{
	if (!a)
		return;
	free(a->errors);
	free(a->conflicts);
	yyjson_doc_free(a->doc);
	memset(a, 0, sizeof(*a));
}

/* ------------------------------------------------------------------------ */
/* ERROR and AUTH                                                           */
/* ------------------------------------------------------------------------ */

int ags_wire_error_encode(uint64_t code, const char *text, ags_frame_buf *out, ags_error *err)
{
	if (!out)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "NULL argument");
	if (code > AGS_WIRE_APP_CODE_MAX)
		return ags_error_set(err, AGS_ERR_INVALID, "code", "must be under 2^62");
	int rc = enc_str(text, "error", 0, AGS_WIRE_TEXT_MAX, STR_NO_CTL, err);
	if (rc)
		return rc;
	yyjson_mut_val *root;
	yyjson_mut_doc *doc = new_obj_doc(&root);
	if (!doc || !yyjson_mut_obj_add_uint(doc, root, "code", code) ||
	    !yyjson_mut_obj_add_str(doc, root, "error", text)) {
		yyjson_mut_doc_free(doc);
		return ags_error_set(err, AGS_ERR_NOMEM, NULL, "out of memory");
	}
	return emit(doc, AGS_FRAME_ERROR, out, err);
}

int ags_wire_error_decode(const uint8_t *json, size_t len, ags_wire_error *out, ags_error *err)
{
	yyjson_val *root = NULL, *v;
	if (!out)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "NULL argument");
	memset(out, 0, sizeof(*out));
	int rc = parse_obj(json, len, "ERROR", &out->doc, &root, err);
	if (rc)
		return rc;
	if ((rc = member(root, NULL, "code", 1, &v, err)) ||
	    (rc = dec_u64(v, "code", 0, AGS_WIRE_APP_CODE_MAX, &out->code, err)) ||
	    (rc = member(root, NULL, "error", 1, &v, err)) ||
	    (rc = dec_str(v, "error", 0, AGS_WIRE_TEXT_MAX, STR_NO_CTL, &out->text, err)))
		ags_wire_error_free(out);
	return rc;
}

void ags_wire_error_free(ags_wire_error *e)
{
	if (!e)
		return;
	yyjson_doc_free(e->doc);
	memset(e, 0, sizeof(*e));
}

int ags_wire_auth_encode(const char *token, ags_frame_buf *out, ags_error *err)
{
	if (!out)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "NULL argument");
	int rc = enc_str(token, "token", 1, AGS_WIRE_TOKEN_MAX, STR_NO_CTL, err);
	if (rc)
		return rc;
	yyjson_mut_val *root;
	yyjson_mut_doc *doc = new_obj_doc(&root);
	if (!doc || !yyjson_mut_obj_add_str(doc, root, "token", token)) {
		yyjson_mut_doc_free(doc);
		return ags_error_set(err, AGS_ERR_NOMEM, NULL, "out of memory");
	}
	return emit(doc, AGS_FRAME_AUTH, out, err);
}

int ags_wire_auth_decode(const uint8_t *json, size_t len, ags_wire_auth *out, ags_error *err)
{
	yyjson_val *root = NULL, *v;
	if (!out)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "NULL argument");
	memset(out, 0, sizeof(*out));
	int rc = parse_obj(json, len, "AUTH", &out->doc, &root, err);
	if (rc)
		return rc;
	if ((rc = member(root, NULL, "token", 1, &v, err)) ||
	    (rc = dec_str(v, "token", 1, AGS_WIRE_TOKEN_MAX, STR_NO_CTL, &out->token, err)))
		ags_wire_auth_free(out);
	return rc;
}

void ags_wire_auth_free(ags_wire_auth *a)
{
	if (!a)
		return;
	yyjson_doc_free(a->doc);
	memset(a, 0, sizeof(*a));
}

/* ------------------------------------------------------------------------ */
/* PULL / PULL_DONE                                                         */
/* ------------------------------------------------------------------------ */

int ags_wire_vclock_encode(uint8_t type, const char *const *agents, const uint64_t *counters,
                           size_t n, ags_frame_buf *out, ags_error *err)
{
	ags_wire_vclock v;
	memset(&v, 0, sizeof(v));
	v.n = n;
	v.agents = (const char **)(uintptr_t)agents;
	v.counters = (uint64_t *)(uintptr_t)counters;
	return ags_wire_vclock_encode_ex(type, &v, out, err);
}

int ags_wire_vclock_encode_ex(uint8_t type, const ags_wire_vclock *v, ags_frame_buf *out,
                              ags_error *err)
{
	char path[64];
	int rc;

	if (!out || !v || (v->n > 0 && (!v->agents || !v->counters)))
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "NULL argument");
	if (type != AGS_FRAME_PULL && type != AGS_FRAME_PULL_DONE)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "type must be PULL or PULL_DONE");
	if (v->n > AGS_WIRE_VCLOCK_MAX)
		return ags_error_set(err, AGS_ERR_INVALID, "vectorClock", "at most %d entries",
		                     AGS_WIRE_VCLOCK_MAX);
	yyjson_mut_val *root, *obj;
	yyjson_mut_doc *doc = new_obj_doc(&root);
	if (!doc || !(obj = yyjson_mut_obj_add_obj(doc, root, "vectorClock"))) {
		yyjson_mut_doc_free(doc);
		return ags_error_set(err, AGS_ERR_NOMEM, NULL, "out of memory");
	}
	for (size_t i = 0; i < v->n; i++) {
		const char *agent = v->agents[i];
		snprintf(path, sizeof(path), "vectorClock[%zu]", i);
		if ((rc = enc_str(agent, path, 1, AGS_WIRE_NODE_MAX, STR_NO_CTL, err)))
			goto fail;
		/* yyjson's object lookup is by content, so this finds an earlier equal key. */
		if (yyjson_mut_obj_get(obj, agent)) {
			rc = ags_error_set(err, AGS_ERR_INVALID, path,
			                   "agent \"%s\" is given twice", agent);
			goto fail;
		}
		if (!yyjson_mut_obj_add_uint(doc, obj, agent, v->counters[i])) {
			rc = ags_error_set(err, AGS_ERR_NOMEM, NULL, "out of memory");
			goto fail;
		}
	}
	if (v->has_conflict_seq &&
	    !yyjson_mut_obj_add_uint(doc, root, "conflictSeq", v->conflict_seq)) {
		rc = ags_error_set(err, AGS_ERR_NOMEM, NULL, "out of memory");
		goto fail;
	}
	if (v->n_conflicts &&
	    (rc = add_id_list(doc, root, "conflicts", v->conflicts, v->n_conflicts, err)))
		goto fail;
	return emit(doc, type, out, err);
fail:
	yyjson_mut_doc_free(doc);
	return rc;
}

/* Whether key k appears among the first `upto` keys of obj (vector clocks are small). */
static int seen_before(yyjson_val *obj, yyjson_val *k, size_t upto)
{
	yyjson_obj_iter it;
	yyjson_val *x;
	yyjson_obj_iter_init(obj, &it);
	for (size_t i = 0; i < upto && (x = yyjson_obj_iter_next(&it)); i++)
		if (yyjson_get_len(x) == yyjson_get_len(k) &&
		    memcmp(yyjson_get_str(x), yyjson_get_str(k), yyjson_get_len(k)) == 0)
			return 1;
	return 0;
}

static int vclock_fields(yyjson_val *root, ags_wire_vclock *vc, ags_error *err)
{
	yyjson_val *obj, *k;
	char path[64];
	int rc;

	if ((rc = member(root, NULL, "vectorClock", 1, &obj, err)))
		return rc;
	if (!yyjson_is_obj(obj))
		return ags_error_set(err, AGS_ERR_PROTO, "vectorClock", "must be an object");
	size_t n = yyjson_obj_size(obj);
	if (n > AGS_WIRE_VCLOCK_MAX)
		return ags_error_set(err, AGS_ERR_TOO_LARGE, "vectorClock",
		                     "%zu entries, over the limit of %d", n, AGS_WIRE_VCLOCK_MAX);
	if (n > 0) {
		vc->agents = calloc(n, sizeof(*vc->agents));
		vc->counters = calloc(n, sizeof(*vc->counters));
		if (!vc->agents || !vc->counters)
			return ags_error_set(err, AGS_ERR_NOMEM, "vectorClock", "out of memory");
	}
	yyjson_obj_iter it;
	yyjson_obj_iter_init(obj, &it);
	for (size_t i = 0; (k = yyjson_obj_iter_next(&it)); i++) {
		snprintf(path, sizeof(path), "vectorClock[%zu]", i);
		if ((rc = dec_str(k, path, 1, AGS_WIRE_NODE_MAX, STR_NO_CTL, &vc->agents[i], err)))
			return rc;
		if (seen_before(obj, k, i))
			return ags_error_set(err, AGS_ERR_PROTO, path, "agent is given twice");
		if ((rc = dec_u64(yyjson_obj_iter_get_val(k), path, 0, UINT64_MAX, &vc->counters[i],
		                  err)))
			return rc;
		vc->n = i + 1;
	}
	yyjson_val *v;
	if ((rc = member(root, NULL, "conflictSeq", 0, &v, err)))
		return rc;
	if (v) {
		if ((rc = dec_u64(v, "conflictSeq", 0, UINT64_MAX, &vc->conflict_seq, err)))
			return rc;
		vc->has_conflict_seq = 1;
	}
	if ((rc = member(root, NULL, "conflicts", 0, &v, err)))
		return rc;
	return dec_id_list(v, "conflicts", &vc->n_conflicts, &vc->conflicts, err);
}

int ags_wire_vclock_decode(const uint8_t *json, size_t len, ags_wire_vclock *out, ags_error *err)
{
	yyjson_val *root = NULL;
	if (!out)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "NULL argument");
	memset(out, 0, sizeof(*out));
	int rc = parse_obj(json, len, "vector clock", &out->doc, &root, err);
	if (rc)
		return rc;
	if ((rc = vclock_fields(root, out, err)))
		ags_wire_vclock_free(out);
	return rc;
}

void ags_wire_vclock_free(ags_wire_vclock *v)
{
	if (!v)
		return;
	free(v->agents);
	free(v->counters);
	free(v->conflicts);
	yyjson_doc_free(v->doc);
	memset(v, 0, sizeof(*v));
}
