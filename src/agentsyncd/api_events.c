/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Events for the HTTP API: the JSON of an event, a bounded ring of recent
 * events, and GET /v1/events (Server-Sent Events) with resumption from
 * Last-Event-ID. A client further behind than the ring gets an explicit
 * `event: reset`, never a silent gap.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <yyjson.h>

#include "api_int.h"
#include "error.h"

/* How long an idle stream waits before sending a comment, so proxies and clients see it alive. */
#define KEEPALIVE_S 15
/* Bytes of events gathered per read of the stream (at least one event is always sent). */
#define CHUNK_BYTES (64u * 1024u)

const double ags_api_latency_bounds[AGS_API_LATENCY_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};

static uint64_t realtime_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ------------------------------------------------------------------------ */
/* Event JSON                                                               */
/* ------------------------------------------------------------------------ */

static void add_str(yyjson_mut_doc *d, yyjson_mut_val *o, const char *k, const char *v)
{
	if (v)
		yyjson_mut_obj_add_strcpy(d, o, k, v);
}

/* A string field `,"k":"v"` written as yyjson writes it, or -1 when v holds a
 * byte that needs more than a backslash (control or non-ASCII: left to yyjson). */
static int put_str(char *w, size_t *at, const char *k, const char *v)
{
	if (!v)
		return 0;
	size_t n = *at, kn = strlen(k);
	w[n++] = ',';
	w[n++] = '"';
	memcpy(w + n, k, kn);
	n += kn;
	memcpy(w + n, "\":\"", 3);
	n += 3;
	for (const unsigned char *c = (const unsigned char *)v; *c; c++) {
		if (*c < 0x20 || *c >= 0x80)
			return -1;
		if (*c == '"' || *c == '\\')
			w[n++] = '\\';
		w[n++] = (char)*c;
	}
	w[n++] = '"';
	*at = n;
	return 0;
}

/* The JSON of a pattern event (pattern:received, pattern:stored: the pattern
 * and a few short strings) written straight into one buffer, byte for byte
 * what the yyjson document below makes; NULL when the event is of another
 * kind or a string needs escaping beyond a backslash. Once per pattern on
 * the daemon path, where the document's pools cost more than the copy. */
static char *event_json_fast(const ags_event *ev, const char *name, uint64_t id, int64_t time_ms,
                             size_t *len)
{
	if (!ev->pattern || ev->state || ev->type == AGS_EV_SYNC_COMPLETED || ev->pattern_count ||
	    ev->latency_ms > 0)
		return NULL;
	size_t pn = 0;
	const char *pj = ags_pattern_json(ev->pattern, &pn);
	const char *strs[] = {name,           ev->peer_id,   ev->address, ev->error,
	                      ev->pattern_id, ev->source_id, ev->tenant};
	size_t cap = pn + 160;
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		cap += strs[i] ? 2 * strlen(strs[i]) + 16 : 0; /* escaped, key, quotes */
	char *w = malloc(cap);
	if (!w)
		return NULL;
	size_t n = 0;
	int rc = 0;
	if (id)
		n += (size_t)snprintf(w + n, cap - n, ",\"id\":%" PRIu64, id);
	rc |= put_str(w, &n, "type", name);
	n += (size_t)snprintf(w + n, cap - n, ",\"time\":%" PRId64, time_ms);
	rc |= put_str(w, &n, "peerId", ev->peer_id);
	rc |= put_str(w, &n, "address", ev->address);
	rc |= put_str(w, &n, "error", ev->error);
	memcpy(w + n, ",\"pattern\":", 11);
	n += 11;
	memcpy(w + n, pj, pn);
	n += pn;
	rc |= put_str(w, &n, "patternId", ev->pattern_id);
	rc |= put_str(w, &n, "sourceId", ev->source_id);
	rc |= put_str(w, &n, "tenant", ev->tenant);
	if (rc) {
		free(w);
		return NULL;
	}
	w[0] = '{';
	w[n++] = '}';
	w[n] = '\0';
	*len = n;
	return w;
}

char *ags_api_event_json(const ags_event *ev, uint64_t id, int64_t time_ms, size_t *len)
{
	const char *ename = ev->name ? ev->name : ags_event_name(ev->type);
	char *fast = event_json_fast(ev, ename ? ename : "unknown", id, time_ms, len);
	if (fast)
		return fast;
	yyjson_mut_doc *d = yyjson_mut_doc_new(NULL);
	yyjson_mut_val *o = d ? yyjson_mut_obj(d) : NULL;
	if (!o) {
		yyjson_mut_doc_free(d);
		return NULL;
	}
	yyjson_mut_doc_set_root(d, o);
	if (id)
		yyjson_mut_obj_add_uint(d, o, "id", id);
	const char *name = ev->name ? ev->name : ags_event_name(ev->type);
	add_str(d, o, "type", name ? name : "unknown");
	yyjson_mut_obj_add_sint(d, o, "time", time_ms);
	add_str(d, o, "peerId", ev->peer_id);
	add_str(d, o, "address", ev->address);
	add_str(d, o, "error", ev->error);
	if (ev->state) {
		/* The node gives its peer state as JSON; anything else is kept as a string. */
		yyjson_doc *sd = yyjson_read(ev->state, strlen(ev->state), 0);
		if (sd)
			yyjson_mut_obj_add_val(d, o, "state",
			                       yyjson_val_mut_copy(d, yyjson_doc_get_root(sd)));
		else
			add_str(d, o, "state", ev->state);
		yyjson_doc_free(sd);
	}
	if (ev->pattern) {
		size_t n = 0;
		const char *pj = ags_pattern_json(ev->pattern, &n);
		yyjson_mut_obj_add_val(d, o, "pattern", yyjson_mut_rawncpy(d, pj, n));
	}
	add_str(d, o, "patternId", ev->pattern_id);
	add_str(d, o, "sourceId", ev->source_id);
	add_str(d, o, "tenant", ev->tenant);
	if (ev->type == AGS_EV_SYNC_COMPLETED || ev->pattern_count)
		yyjson_mut_obj_add_uint(d, o, "patternCount", ev->pattern_count);
	if (ev->type == AGS_EV_SYNC_COMPLETED || ev->latency_ms > 0)
		yyjson_mut_obj_add_real(d, o, "latency", ev->latency_ms);
	if (ev->type == AGS_EV_SYNC_REJECTED)
		yyjson_mut_obj_add_int(d, o, "code", ev->code);
	char *s = yyjson_mut_write(d, 0, len);
	yyjson_mut_doc_free(d);
	return s;
}

/* ------------------------------------------------------------------------ */
/* Ring                                                                     */
/* ------------------------------------------------------------------------ */

int ags_api_ring_init(struct ags_api_ring *r, size_t cap, size_t max_bytes)
{
	memset(r, 0, sizeof(*r));
	r->slots = calloc(cap, sizeof(*r->slots));
	if (!r->slots)
		return AGS_ERR_NOMEM;
	r->cap = cap;
	r->max_bytes = max_bytes;
	r->next_id = r->first_id = realtime_us();
	return 0;
}

static void ring_drop_oldest(struct ags_api_ring *r)
{
	struct ags_api_slot *s = &r->slots[r->head];
	free(s->json);
	r->bytes -= s->len;
	memset(s, 0, sizeof(*s));
	r->head = (r->head + 1) % r->cap;
	r->count--;
}

void ags_api_ring_free(struct ags_api_ring *r)
{
	while (r->count)
		ring_drop_oldest(r);
	free(r->slots);
	r->slots = NULL;
}

static uint64_t ring_oldest(const struct ags_api_ring *r)
{
	return r->next_id - r->count;
}

/* Adds an event (json malloc'd, ownership taken) under api->mu and wakes the streams. */
static void ring_push(ags_api *api, const char *name, char *json, size_t len)
{
	struct ags_api_ring *r = &api->ring;
	pthread_mutex_lock(&api->mu);
	while (r->count && (r->count == r->cap || r->bytes + len > r->max_bytes))
		ring_drop_oldest(r);
	struct ags_api_slot *s = &r->slots[(r->head + r->count) % r->cap];
	s->id = r->next_id++;
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->json = json;
	s->len = len;
	r->count++;
	r->bytes += len;
	pthread_cond_broadcast(&api->cv);
	pthread_mutex_unlock(&api->mu);
}

static void record(ags_api *api, const ags_event *ev)
{
	size_t len = 0;
	char *json = ags_api_event_json(ev, 0, ags_now_ms(), &len);
	if (!json) {
		ags_api_logf(api, AGS_LOG_ERROR, "out of memory: event %s not recorded", ev->name);
		return;
	}
	ring_push(api, ev->name, json, len);
}

void ags_api_on_event(ags_api *api, const ags_event *ev)
{
	if (!api || !ev)
		return;
	ags_event e = *ev;
	if (!e.name)
		e.name = ags_event_name(e.type);
	if (!e.name)
		e.name = "unknown";
	if (e.type == AGS_EV_SYNC_COMPLETED) {
		double s = e.latency_ms / 1000.0;
		pthread_mutex_lock(&api->mu);
		size_t b = 0;
		while (b < AGS_API_LATENCY_BUCKETS && s > ags_api_latency_bounds[b])
			b++;
		api->hist[b]++;
		api->hist_count++;
		api->hist_sum += s;
		pthread_mutex_unlock(&api->mu);
	}
	record(api, &e);
}

void ags_api_emit(ags_api *api, const char *name, const ags_event *ev)
{
	ags_event e = *ev;
	e.type = 0;
	e.name = name;
	record(api, &e);
}

/* ------------------------------------------------------------------------ */
/* Server-Sent Events                                                       */
/* ------------------------------------------------------------------------ */

struct sse {
	ags_api *api;
	uint64_t next;     /* id of the next event to send */
	char *types;       /* ",a,b," filter, or NULL for every type */
	int reset_unknown; /* the client's Last-Event-ID is not one we gave */
	uint64_t last;     /* the client's Last-Event-ID */
	char *buf;
	size_t len, pos, cap;
};

static int buf_reserve(struct sse *s, size_t more)
{
	if (s->len + more <= s->cap)
		return 0;
	size_t cap = s->cap ? s->cap : 4096;
	while (cap < s->len + more)
		cap *= 2;
	char *b = realloc(s->buf, cap);
	if (!b)
		return AGS_ERR_NOMEM;
	s->buf = b;
	s->cap = cap;
	return 0;
}

static int buf_add(struct sse *s, const char *data, size_t n)
{
	if (buf_reserve(s, n) < 0)
		return AGS_ERR_NOMEM;
	memcpy(s->buf + s->len, data, n);
	s->len += n;
	return 0;
}

static int buf_printf(struct sse *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int buf_printf(struct sse *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || buf_reserve(s, (size_t)n + 1) < 0)
		return AGS_ERR_NOMEM;
	va_start(ap, fmt);
	vsnprintf(s->buf + s->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	s->len += (size_t)n;
	return 0;
}

static int wanted(const struct sse *s, const char *name)
{
	if (!s->types)
		return 1;
	char key[48];
	snprintf(key, sizeof(key), ",%s,", name);
	return strstr(s->types, key) != NULL;
}

/* Writes an `event: reset` for a client whose next event (s->next) is gone or unknown. */
static int write_reset(struct sse *s, const char *reason, uint64_t last, uint64_t oldest)
{
	return buf_printf(s,
	                  "event: reset\ndata: {\"type\":\"reset\",\"reason\":\"%s\","
	                  "\"lastEventId\":%" PRIu64 ",\"oldestId\":%" PRIu64 ","
	                  "\"message\":\"events after %" PRIu64 " are not kept; the stream goes "
	                  "on from %" PRIu64 ", re-read what you need with GET /v1/patterns\"}\n\n",
	                  reason, last, oldest, last, oldest);
}

/*
 * Gathers, under api->mu, the events from s->next on (those the filter
 * wants) into s->buf, up to CHUNK_BYTES. Returns 0, or AGS_ERR_NOMEM.
 */
static int gather(struct sse *s)
{
	struct ags_api_ring *r = &s->api->ring;
	uint64_t oldest = ring_oldest(r);
	if (s->next < oldest) {
		int rc = write_reset(s, "behind", s->next - 1, oldest);
		s->next = oldest;
		if (rc < 0)
			return rc;
	}
	while (s->next < r->next_id && s->len < CHUNK_BYTES) {
		const struct ags_api_slot *e = &r->slots[(r->head + (s->next - oldest)) % r->cap];
		s->next++;
		if (!wanted(s, e->name))
			continue;
		/* e->json is "{...}": the id goes in first, so that data holds it too. */
		if (buf_printf(s, "id: %" PRIu64 "\nevent: %s\ndata: {\"id\":%" PRIu64 "%s", e->id,
		               e->name, e->id, e->len > 2 ? "," : "") < 0 ||
		    buf_add(s, e->json + 1, e->len - 1) < 0 || buf_add(s, "\n\n", 2) < 0)
			return AGS_ERR_NOMEM;
	}
	return 0;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct sse *s = cls;
	ags_api *api = s->api;
	if (s->pos == s->len) {
		s->pos = s->len = 0;
		pthread_mutex_lock(&api->mu);
		if (s->reset_unknown) {
			s->reset_unknown = 0;
			s->next = ring_oldest(&api->ring);
			write_reset(s, "unknown", s->last, s->next);
		}
		while (s->len == 0 && !api->stopping) {
			if (gather(s) < 0)
				break;
			if (s->len)
				break;
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += KEEPALIVE_S;
			if (pthread_cond_timedwait(&api->cv, &api->mu, &ts) == ETIMEDOUT) {
				if (gather(s) == 0 && s->len == 0)
					buf_printf(s, ": keepalive\n\n");
				break;
			}
		}
		int stopping = api->stopping;
		pthread_mutex_unlock(&api->mu);
		if (s->len == 0)
			return stopping ? MHD_CONTENT_READER_END_OF_STREAM
			                : MHD_CONTENT_READER_END_WITH_ERROR;
	}
	size_t n = s->len - s->pos;
	if (n > max)
		n = max;
	memcpy(out, s->buf + s->pos, n);
	s->pos += n;
	return (ssize_t)n;
}

static void sse_free(void *cls)
{
	struct sse *s = cls;
	free(s->types);
	free(s->buf);
	free(s);
}

/* Parses a decimal event id; returns 0 on success. */
static int parse_id(const char *v, uint64_t *out)
{
	if (!v || !*v)
		return -1;
	uint64_t x = 0;
	for (const char *p = v; *p; p++) {
		if (*p < '0' || *p > '9' || x > (UINT64_MAX - 9) / 10)
			return -1;
		x = x * 10 + (uint64_t)(*p - '0');
	}
	*out = x;
	return 0;
}

enum MHD_Result ags_api_serve_events(ags_api *api, struct MHD_Connection *c)
{
	const char *lei = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
	const char *field = "Last-Event-ID";
	if (!lei) {
		lei = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "lastEventId");
		field = "lastEventId";
	}
	uint64_t last = 0;
	if (lei && parse_id(lei, &last) < 0)
		return ags_api_reply_error(c, MHD_HTTP_BAD_REQUEST, field, (size_t)-1,
		                           "must be an event id (a decimal number), got \"%.60s\"",
		                           lei);
	struct sse *s = calloc(1, sizeof(*s));
	if (!s)
		return MHD_NO;
	s->api = api;
	const char *types = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "type");
	if (types && *types) {
		size_t n = strlen(types);
		s->types = malloc(n + 3);
		if (!s->types) {
			sse_free(s);
			return MHD_NO;
		}
		snprintf(s->types, n + 3, ",%s,", types);
	}
	pthread_mutex_lock(&api->mu);
	if (!lei) {
		s->next = api->ring.next_id;
	} else if (last == 0) {
		/* 0: from this daemon's first event (a reset if some are gone already). */
		s->next = api->ring.first_id;
	} else if (last >= api->ring.next_id || last + 1 < api->ring.first_id) {
		/* Not an id this daemon gave (another daemon's, one from before a restart). */
		s->reset_unknown = 1;
		s->last = last;
	} else {
		s->next = last + 1;
	}
	pthread_mutex_unlock(&api->mu);
	/* Sent first, so a client knows at once that the stream is open. */
	buf_printf(s, "retry: 1000\n: agentsync events\n\n");
	struct MHD_Response *resp =
	    MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024, sse_read, s, sse_free);
	if (!resp) {
		sse_free(s);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	enum MHD_Result r = MHD_queue_response(c, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return r;
}
