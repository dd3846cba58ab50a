/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Patterns through the HTTP API: POST /v1/patterns (one object, an array, or
 * NDJSON), GET /v1/patterns/{id}, GET /v1/patterns (streamed listing) and
 * DELETE /v1/patterns/{id}.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yyjson.h>

#include "api_int.h"
#include "error.h"
#include "pattern.h"

/* Records read from the store per query while listing, and bytes gathered per read. */
#define LIST_PAGE  256
#define LIST_CHUNK (256u * 1024u)

/* ------------------------------------------------------------------------ */
/* POST /v1/patterns                                                        */
/* ------------------------------------------------------------------------ */

/* The records of one POST: those that parsed, and the answer being built. */
struct batch {
	ags_api *api;
	ags_pattern_opts opts;
	ags_pattern **p;
	size_t n, cap;
	size_t total; /* records seen, accepted or not */
	yyjson_mut_doc *out;
	yyjson_mut_val *rejected;
	size_t n_rejected;
	size_t n_too_large; /* rejected for being over the record limit */
	char first_field[96];
};

static int batch_add(struct batch *b, ags_pattern *p)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		ags_pattern **np = realloc(b->p, cap * sizeof(*np));
		if (!np)
			return AGS_ERR_NOMEM;
		b->p = np;
		b->cap = cap;
	}
	b->p[b->n++] = p;
	return 0;
}

/*
 * Rejections detailed in an answer; the others are only counted (rejectedCount), so that a
 * body of a million bad lines costs a bounded answer, not a million objects (issue 17.3).
 */
#define REJECTIONS_MAX 100

/* Adds {"index", "id", "error", "field"[, "offset"]} to the rejections (the first ones). */
static void reject(struct batch *b, size_t index, yyjson_val *id, const char *error,
                   const char *field, size_t offset)
{
	if (b->n_rejected++ == 0)
		snprintf(b->first_field, sizeof(b->first_field), "%s", field ? field : "");
	if (b->n_rejected > REJECTIONS_MAX)
		return;
	yyjson_mut_doc *d = b->out;
	yyjson_mut_val *o = yyjson_mut_obj(d);
	if (!o)
		return;
	yyjson_mut_obj_add_uint(d, o, "index", index);
	if (yyjson_is_str(id))
		yyjson_mut_obj_add_strncpy(d, o, "id", yyjson_get_str(id), yyjson_get_len(id));
	else
		yyjson_mut_obj_add_null(d, o, "id");
	yyjson_mut_obj_add_strcpy(d, o, "error", error);
	yyjson_mut_obj_add_strcpy(d, o, "field", field ? field : "");
	if (offset != (size_t)-1)
		yyjson_mut_obj_add_uint(d, o, "offset", offset);
	yyjson_mut_arr_append(b->rejected, o);
}

/* Validates one parsed record; a valid one joins the batch, an invalid one is rejected. */
static int take_val(struct batch *b, yyjson_val *v)
{
	size_t index = b->total++;
	ags_pattern *p = NULL;
	ags_error err;
	ags_error_clear(&err);
	int rc = ags_pattern_from_val(v, &b->opts, &p, &err);
	if (rc == AGS_ERR_NOMEM)
		return rc;
	if (rc < 0) {
		char msg[300];
		snprintf(msg, sizeof(msg), "%s%s", err.message[0] ? err.message : ags_strerror(rc),
		         rc == AGS_ERR_TOO_LARGE ? " (quic.limits.maxPatternBytes)" : "");
		if (rc == AGS_ERR_TOO_LARGE)
			b->n_too_large++;
		reject(b, index, yyjson_is_obj(v) ? yyjson_obj_get(v, "id") : NULL, msg, err.field,
		       (size_t)-1);
		return 0;
	}
	if (batch_add(b, p) < 0) {
		ags_pattern_del(p);
		return AGS_ERR_NOMEM;
	}
	return 0;
}

/* NDJSON: one record per line; a malformed line rejects that record only. */
static int take_ndjson(struct batch *b, const char *body, size_t len)
{
	size_t i = 0;
	while (i < len) {
		size_t start = i;
		while (i < len && body[i] != '\n')
			i++;
		size_t end = i++;
		while (start < end &&
		       (body[start] == ' ' || body[start] == '\t' || body[start] == '\r'))
			start++;
		while (end > start &&
		       (body[end - 1] == ' ' || body[end - 1] == '\t' || body[end - 1] == '\r'))
			end--;
		if (start == end)
			continue;
		yyjson_read_err rerr;
		yyjson_doc *doc =
		    yyjson_read_opts((char *)(uintptr_t)body + start, end - start, 0, NULL, &rerr);
		if (!doc) {
			if (rerr.code == YYJSON_READ_ERROR_MEMORY_ALLOCATION)
				return AGS_ERR_NOMEM;
			char msg[300];
			snprintf(msg, sizeof(msg), "malformed JSON at byte %zu of the body: %s",
			         start + rerr.pos, rerr.msg);
			reject(b, b->total++, NULL, msg, "", start + rerr.pos);
			continue;
		}
		int rc = take_val(b, yyjson_doc_get_root(doc));
		yyjson_doc_free(doc);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int is_ndjson_type(const char *ct)
{
	return ct && (strncasecmp(ct, "application/x-ndjson", 20) == 0 ||
	              strncasecmp(ct, "application/jsonl", 17) == 0);
}

static int changed(int outcome)
{
	return outcome == AGS_APPLY_INSERTED || outcome == AGS_APPLY_UPDATED ||
	       outcome == AGS_APPLY_CONFLICT_WON;
}

/* Applies the batch through the node and writes the answer. */
static enum MHD_Result finish_post(struct batch *b, struct MHD_Connection *c)
{
	ags_api *api = b->api;
	ags_apply_result *res = NULL;
	if (b->n) {
		res = calloc(b->n, sizeof(*res));
		if (!res)
			return ags_api_reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "",
			                           (size_t)-1, "out of memory");
		ags_error err;
		ags_error_clear(&err);
		int rc = ags_node_sync_patterns(api->node, (const ags_pattern *const *)b->p, b->n,
		                                res, &err);
		if (rc < 0) {
			free(res);
			if (!err.message[0])
				ags_error_set(&err, rc, NULL, "cannot store: %s", ags_strerror(rc));
			ags_api_logf(api, AGS_LOG_ERROR, "POST /v1/patterns: %s", err.message);
			return ags_api_reply_agserr(c, &err);
		}
	}
	yyjson_mut_doc *d = b->out;
	yyjson_mut_val *root = yyjson_mut_doc_get_root(d);
	yyjson_mut_val *acc = yyjson_mut_arr(d), *outc = yyjson_mut_arr(d);
	for (size_t i = 0; i < b->n; i++) {
		yyjson_mut_arr_add_strcpy(d, acc, ags_pattern_id(b->p[i]));
		yyjson_mut_arr_add_str(d, outc, ags_apply_outcome_name(res[i].outcome));
		if (!changed(res[i].outcome))
			continue;
		ags_event ev = {0};
		ev.source_id = ags_node_id(api->node);
		if (ags_pattern_is_tombstone(b->p[i])) {
			ev.pattern_id = ags_pattern_id(b->p[i]);
			ags_api_emit(api, AGS_API_EV_PATTERN_DELETED, &ev);
		} else {
			ev.pattern = b->p[i];
			ags_api_emit(api, AGS_API_EV_PATTERN_STORED, &ev);
		}
	}
	yyjson_mut_obj_add_val(d, root, "accepted", acc);
	yyjson_mut_obj_add_val(d, root, "outcomes", outc);
	yyjson_mut_obj_add_val(d, root, "rejected", b->rejected);
	yyjson_mut_obj_add_uint(d, root, "rejectedCount", b->n_rejected);
	free(res);
	ags_api_logf(api, AGS_LOG_DEBUG, "POST /v1/patterns accepted=%zu rejected=%zu", b->n,
	             b->n_rejected);
	unsigned status = MHD_HTTP_OK;
	if (b->n == 0 && b->n_rejected) {
		/* Nothing stored: an error answer, which still lists every rejection; 413
		 * when a record was over the record limit (named, as the fix is there). */
		status = b->n_too_large ? MHD_HTTP_CONTENT_TOO_LARGE : MHD_HTTP_BAD_REQUEST;
		char msg[200];
		if (b->n_too_large)
			snprintf(
			    msg, sizeof(msg),
			    "every record was rejected (%zu), %zu over the record limit of %zu "
			    "bytes (quic.limits.maxPatternBytes)",
			    b->n_rejected, b->n_too_large, b->opts.max_bytes);
		else
			snprintf(msg, sizeof(msg), "every record was rejected (%zu)",
			         b->n_rejected);
		yyjson_mut_obj_add_strcpy(d, root, "error", msg);
		yyjson_mut_obj_add_strcpy(d, root, "field", b->first_field);
	}
	b->out = NULL;
	return ags_api_reply_doc(c, status, d);
}

enum MHD_Result ags_api_post_patterns(ags_api *api, struct MHD_Connection *c, const char *body,
                                      size_t len)
{
	size_t lead = 0;
	while (lead < len && (body[lead] == ' ' || body[lead] == '\t' || body[lead] == '\r' ||
	                      body[lead] == '\n'))
		lead++;
	if (lead == len)
		return ags_api_reply_error(
		    c, MHD_HTTP_BAD_REQUEST, "", (size_t)-1,
		    "empty body: send a pattern object, an array of them, or "
		    "NDJSON");
	struct batch b = {.api = api};
	b.opts.max_bytes = api->max_pattern_bytes;
	b.out = yyjson_mut_doc_new(NULL);
	yyjson_mut_val *root = b.out ? yyjson_mut_obj(b.out) : NULL;
	b.rejected = b.out ? yyjson_mut_arr(b.out) : NULL;
	if (!root || !b.rejected) {
		yyjson_mut_doc_free(b.out);
		return ags_api_reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "", (size_t)-1,
		                           "out of memory");
	}
	yyjson_mut_doc_set_root(b.out, root);

	enum MHD_Result r;
	int rc = 0;
	yyjson_doc *doc = NULL;
	const char *ct =
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	if (is_ndjson_type(ct)) {
		rc = take_ndjson(&b, body, len);
	} else {
		yyjson_read_err rerr;
		doc = yyjson_read_opts((char *)(uintptr_t)body, len, 0, NULL, &rerr);
		if (!doc && rerr.code == YYJSON_READ_ERROR_UNEXPECTED_CONTENT) {
			/* More than one document: NDJSON sent without its content type. */
			rc = take_ndjson(&b, body, len);
		} else if (!doc) {
			r = ags_api_reply_error(c, MHD_HTTP_BAD_REQUEST, "", rerr.pos,
			                        "malformed JSON at byte %zu: %s", rerr.pos,
			                        rerr.msg);
			goto out;
		} else {
			yyjson_val *v = yyjson_doc_get_root(doc);
			if (yyjson_is_arr(v)) {
				size_t i, imax;
				yyjson_val *e;
				yyjson_arr_foreach(v, i, imax, e)
				{
					if ((rc = take_val(&b, e)) < 0)
						break;
				}
			} else if (yyjson_is_obj(v)) {
				rc = take_val(&b, v);
			} else {
				r = ags_api_reply_error(c, MHD_HTTP_BAD_REQUEST, "", (size_t)-1,
				                        "the body must be a pattern object, an "
				                        "array of them, or NDJSON");
				goto out;
			}
		}
	}
	if (rc < 0)
		r = ags_api_reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "", (size_t)-1,
		                        "out of memory");
	else
		r = finish_post(&b, c);
out:
	yyjson_doc_free(doc);
	for (size_t i = 0; i < b.n; i++)
		ags_pattern_del(b.p[i]);
	free(b.p);
	yyjson_mut_doc_free(b.out);
	return r;
}

/* ------------------------------------------------------------------------ */
/* One pattern                                                              */
/* ------------------------------------------------------------------------ */

enum MHD_Result ags_api_get_pattern(ags_api *api, struct MHD_Connection *c, const char *id)
{
	ags_pattern *p = NULL;
	int rc = ags_node_get(api->node, id, &p);
	if (rc == AGS_ERR_NOT_FOUND)
		return ags_api_reply_error(c, MHD_HTTP_NOT_FOUND, "id", (size_t)-1,
		                           "no pattern \"%.200s\"", id);
	if (rc < 0)
		return ags_api_reply_error(c, ags_api_status_of(rc), "", (size_t)-1,
		                           "cannot read: %s", ags_strerror(rc));
	size_t n = 0;
	const char *j = ags_pattern_json(p, &n);
	char *s = malloc(n + 2);
	if (s) {
		memcpy(s, j, n);
		s[n++] = '\n';
		s[n] = '\0';
	}
	ags_pattern_del(p);
	if (!s)
		return ags_api_reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "", (size_t)-1,
		                           "out of memory");
	return ags_api_reply(c, MHD_HTTP_OK, s, n, "application/json");
}

enum MHD_Result ags_api_delete_pattern(ags_api *api, struct MHD_Connection *c, const char *id)
{
	ags_apply_result res = {0};
	ags_error err;
	ags_error_clear(&err);
	int rc = ags_node_delete(api->node, id, &res, &err);
	if (rc == AGS_ERR_NOT_FOUND)
		return ags_api_reply_error(c, MHD_HTTP_NOT_FOUND, "id", (size_t)-1,
		                           "no pattern \"%.200s\"", id);
	if (rc < 0) {
		if (!err.message[0])
			ags_error_set(&err, rc, NULL, "cannot delete: %s", ags_strerror(rc));
		return ags_api_reply_agserr(c, &err);
	}
	ags_event ev = {0};
	ev.pattern_id = id;
	ev.source_id = ags_node_id(api->node);
	ags_api_emit(api, AGS_API_EV_PATTERN_DELETED, &ev);
	yyjson_mut_doc *d = yyjson_mut_doc_new(NULL);
	yyjson_mut_val *o = d ? yyjson_mut_obj(d) : NULL;
	if (o) {
		yyjson_mut_doc_set_root(d, o);
		yyjson_mut_obj_add_strcpy(d, o, "id", id);
		yyjson_mut_obj_add_bool(d, o, "deleted", true);
		yyjson_mut_obj_add_uint(d, o, "seq", res.seq);
	}
	return ags_api_reply_doc(c, MHD_HTTP_OK, d);
}

/* ------------------------------------------------------------------------ */
/* GET /v1/patterns: a listing streamed page by page                        */
/* ------------------------------------------------------------------------ */

struct lister {
	ags_api *api;
	ags_query q;
	char *type, *tag, *agent;
	uint64_t after;   /* sequence of the last record written */
	size_t remaining; /* records still wanted */
	size_t got;       /* records in the current page */
	size_t written;   /* records written so far */
	int ndjson;
	int page;      /* format=page: {"items":[{"seq","pattern"}...],"next"} */
	int finished;  /* the store has nothing more, or the limit is reached */
	int exhausted; /* the store has nothing more after `after` */
	int closed;    /* the closing bracket is written */
	char *buf;
	size_t len, pos, cap;
};

static int lister_add(struct lister *l, const char *s, size_t n)
{
	if (l->len + n > l->cap) {
		size_t cap = l->cap ? l->cap : 64 * 1024;
		while (cap < l->len + n)
			cap *= 2;
		char *b = realloc(l->buf, cap);
		if (!b)
			return AGS_ERR_NOMEM;
		l->buf = b;
		l->cap = cap;
	}
	memcpy(l->buf + l->len, s, n);
	l->len += n;
	return 0;
}

static int list_cb(void *user_data, const ags_pattern *p, uint64_t seq)
{
	struct lister *l = user_data;
	size_t n = 0;
	const char *j = ags_pattern_json(p, &n);
	char head[48];
	int hn = l->page ? snprintf(head, sizeof(head),
	                            "{\"seq\":%llu,\"pattern\":", (unsigned long long)seq)
	                 : 0;
	if ((!l->ndjson && l->written && lister_add(l, ",", 1) < 0) ||
	    (hn > 0 && lister_add(l, head, (size_t)hn) < 0) || lister_add(l, j, n) < 0 ||
	    (l->page && lister_add(l, "}", 1) < 0) || (l->ndjson && lister_add(l, "\n", 1) < 0))
		return AGS_ERR_NOMEM;
	l->after = seq;
	l->got++;
	l->written++;
	l->remaining--;
	/* A positive value stops this page; the next one goes on after `seq`. */
	return l->len >= LIST_CHUNK ? 1 : 0;
}

/* Reads the next page into the buffer. Returns 0 or a negative error. */
static int lister_fill(struct lister *l)
{
	size_t page = l->remaining < LIST_PAGE ? l->remaining : LIST_PAGE;
	l->q.after_seq = l->after;
	l->q.limit = page;
	l->got = 0;
	int rc = ags_node_query(l->api->node, &l->q, list_cb, l);
	if (rc < 0)
		return rc;
	if (rc == 0 && l->got < page)
		l->exhausted = 1;
	if (l->exhausted || l->remaining == 0)
		l->finished = 1;
	return 0;
}

static ssize_t list_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct lister *l = cls;
	while (l->pos == l->len) {
		l->pos = l->len = 0;
		if (l->closed)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (l->finished) {
			char tail[64];
			int tn;
			/* The cursor of the next page: null once the store had nothing more. */
			if (!l->page)
				tn = snprintf(tail, sizeof(tail), "]\n");
			else if (l->exhausted)
				tn = snprintf(tail, sizeof(tail), "],\"next\":null}\n");
			else
				tn = snprintf(tail, sizeof(tail), "],\"next\":%llu}\n",
				              (unsigned long long)l->after);
			if (!l->ndjson && lister_add(l, tail, (size_t)tn) < 0)
				return MHD_CONTENT_READER_END_WITH_ERROR;
			l->closed = 1;
		} else if (lister_fill(l) < 0) {
			ags_api_logf(l->api, AGS_LOG_ERROR, "listing failed after %zu records",
			             l->written);
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
	}
	size_t n = l->len - l->pos;
	if (n > max)
		n = max;
	memcpy(out, l->buf + l->pos, n);
	l->pos += n;
	return (ssize_t)n;
}

static void list_free(void *cls)
{
	struct lister *l = cls;
	free(l->type);
	free(l->tag);
	free(l->agent);
	free(l->buf);
	free(l);
}

static int parse_u64(const char *v, uint64_t *out)
{
	if (!v || !*v)
		return -1;
	char *end;
	errno = 0;
	unsigned long long x = strtoull(v, &end, 10);
	if (errno || *end || v[0] == '-')
		return -1;
	*out = x;
	return 0;
}

static char *dup_arg(struct MHD_Connection *c, const char *key, int *oom)
{
	const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
	if (!v || !*v)
		return NULL;
	char *s = strdup(v);
	if (!s)
		*oom = 1;
	return s;
}

enum MHD_Result ags_api_list_patterns(ags_api *api, struct MHD_Connection *c)
{
	uint64_t since = 0, limit = 0;
	const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "since");
	if (v && parse_u64(v, &since) < 0)
		return ags_api_reply_error(c, MHD_HTTP_BAD_REQUEST, "since", (size_t)-1,
		                           "must be a change-log sequence number, got \"%.60s\"",
		                           v);
	v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
	if (v && parse_u64(v, &limit) < 0)
		return ags_api_reply_error(c, MHD_HTTP_BAD_REQUEST, "limit", (size_t)-1,
		                           "must be a non-negative integer, got \"%.60s\"", v);
	int ndjson = 0, page = 0;
	v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "format");
	if (v && strcmp(v, "ndjson") == 0)
		ndjson = 1;
	else if (v && strcmp(v, "page") == 0)
		page = 1;
	else if (v && strcmp(v, "json") != 0)
		return ags_api_reply_error(c, MHD_HTTP_BAD_REQUEST, "format", (size_t)-1,
		                           "must be \"json\", \"ndjson\" or \"page\", got "
		                           "\"%.60s\"",
		                           v);
	const char *accept =
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
	if (!v && accept && strstr(accept, "application/x-ndjson"))
		ndjson = 1;

	struct lister *l = calloc(1, sizeof(*l));
	if (!l)
		return MHD_NO;
	int oom = 0;
	l->api = api;
	l->ndjson = ndjson;
	l->page = page;
	l->type = dup_arg(c, "type", &oom);
	l->tag = dup_arg(c, "tag", &oom);
	l->agent = dup_arg(c, "agentId", &oom);
	l->q.type = l->type;
	l->q.tag = l->tag;
	l->q.agent_id = l->agent;
	l->after = since;
	l->remaining = limit ? (size_t)limit : SIZE_MAX;
	if (oom || (!ndjson && lister_add(l, page ? "{\"items\":[" : "[", page ? 10 : 1) < 0)) {
		list_free(l);
		return ags_api_reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "", (size_t)-1,
		                           "out of memory");
	}
	/* The first page is read now, so that a failure still gets a proper status. */
	int rc = lister_fill(l);
	if (rc < 0) {
		list_free(l);
		return ags_api_reply_error(c, ags_api_status_of(rc), "", (size_t)-1,
		                           "cannot list: %s", ags_strerror(rc));
	}
	struct MHD_Response *resp =
	    MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, list_read, l, list_free);
	if (!resp) {
		list_free(l);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	                        ndjson ? "application/x-ndjson" : "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	enum MHD_Result r = MHD_queue_response(c, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return r;
}
