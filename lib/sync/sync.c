/*
 * The sync engine (see sync.h): HELLO exchange, the sender (change log ->
 * filtered, prioritised, compressed batches, windowed and rate limited) and
 * the receiver (checked batch -> validated patterns -> one transaction with
 * the cursor and the merged clock -> ACK). The hub protocol (PULL,
 * PULL_DONE) is in sync_pull.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "batch.h"
#include "error.h"
#include "frame.h"
#include "pattern.h"
#include "store.h"
#include "sync.h"
#include "sync_int.h"
#include "wire.h"

#define CHUNK_MIN       4096
#define CHUNK_MAX_BYTES (16u * 1024 * 1024)
#define CHUNK_FULL      1 /* chunk_add's "stop, the chunk is full" */

/* ---- helpers ---- */

void ags_sync_log(ags_sync *s, int level, const char *fmt, ...)
{
	if (!s->h->log)
		return;
	char buf[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	s->h->log(s->h->ud, level, buf);
}

void ags_sync_send_buf(ags_sync *s, ags_frame_buf *b)
{
	if (b->len == 0 || !b->data) {
		ags_frame_buf_free(b);
		return;
	}
	s->h->send(s->h->ud, s->sud, b->data, b->len);
	b->data = NULL;
	b->len = b->cap = 0;
}

static char **dup_list(const char *const *l, size_t n)
{
	char **d = calloc(n ? n : 1, sizeof(*d));
	for (size_t i = 0; d && i < n; i++) {
		d[i] = strdup(l[i]);
		if (!d[i]) {
			while (i--)
				free(d[i]);
			free(d);
			return NULL;
		}
	}
	return d;
}

void ags_sync_emit(ags_sync *s, ags_event *ev)
{
	ev->peer_id = s->peer_id;
	if (s->h->event)
		s->h->event(s->h->ud, ev);
}

int ags_sync_scope_allows(const char *scope, const char *peer_id)
{
	if (!scope)
		return 1;
	size_t n = strlen(peer_id);
	/* Scope format: "\x1f" + ids joined by "\x1f" + "\x1f"; "" allows nobody. */
	for (const char *p = scope; (p = strstr(p, peer_id)) != NULL; p++) {
		if (p > scope && p[-1] == '\x1f' && p[n] == '\x1f')
			return 1;
	}
	return 0;
}

char *ags_sync_scope_make(const char *const *peer_ids, size_t n)
{
	size_t len = 2;
	for (size_t i = 0; i < n; i++)
		len += strlen(peer_ids[i]) + 1;
	char *s = malloc(len);
	if (!s)
		return NULL;
	char *p = s;
	*p++ = '\x1f';
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(peer_ids[i]);
		memcpy(p, peer_ids[i], l);
		p += l;
		*p++ = '\x1f';
	}
	*p = '\0';
	return s;
}

static void chunk_clear(ags_sync *s)
{
	for (size_t i = 0; i < s->chunk_n; i++)
		free(s->chunk[i].id); /* json and vc live in the same block */
	s->chunk_n = s->chunk_pos = 0;
}

static void free_list(char **l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(l[i]);
	free(l);
}

/* ---- lifecycle ---- */

int ags_sync_new(const ags_sync_host *host, const char *peer_id, void *session_ud, ags_sync **out)
{
	return ags_sync_new_ex(host, peer_id, NULL, session_ud, out);
}

int ags_sync_new_ex(const ags_sync_host *host, const char *peer_id, const ags_sync_opts *opts,
                    void *session_ud, ags_sync **out)
{
	int role = opts ? opts->role : AGS_SYNC_ROLE_PEER;
	if (role == AGS_SYNC_ROLE_UPSTREAM && (!opts->token || !*opts->token))
		return AGS_ERR_INVALID;
	ags_sync *s = calloc(1, sizeof(*s));
	if (!s)
		return AGS_ERR_NOMEM;
	s->h = host;
	if (host->cache)
		host->cache->users++;
	s->role = role;
	s->gate_open = role != AGS_SYNC_ROLE_HUB;
	s->sud = session_ud;
	snprintf(s->peer_id, sizeof(s->peer_id), "%s", peer_id);
	snprintf(s->cursor_key, sizeof(s->cursor_key), "cursor/%s", peer_id);
	s->next_request = 1;
	if (ags_frame_reader_init(&s->rd, host->max_frame) != 0)
		goto fail;

	/* Our HELLO: who we are, and where our copy of the peer's log stands. */
	char cur[128] = "";
	char cur_store[33] = "";
	uint64_t cur_seq = 0;
	pthread_mutex_lock(host->store_mu);
	int rv = ags_store_state_get(host->store, s->cursor_key, cur, sizeof(cur));
	pthread_mutex_unlock(host->store_mu);
	if (rv == 0) {
		unsigned long long q = 0;
		if (sscanf(cur, "%32s %llu", cur_store, &q) == 2)
			cur_seq = q;
		else
			cur_store[0] = '\0';
	}
	ags_wire_hello hello;
	memset(&hello, 0, sizeof(hello));
	hello.proto = AGS_PROTO_VERSION;
	hello.node = host->node_id;
	hello.tenant = host->tenant;
	hello.store = host->store_id;
	hello.codecs = host->compression ? (1u << AGS_CODEC_ZSTD) | (1u << AGS_CODEC_GZIP) : 0;
	hello.max_frame = (uint32_t)host->max_frame;
	hello.batch_size = host->batch_size;
	hello.has_cursor = 1;
	hello.cursor_store = cur_store;
	hello.cursor_seq = cur_seq;
	hello.instance = host->instance;
	if (host->n_filter_types || host->n_filter_tags) {
		hello.has_filter = 1;
		hello.n_types = host->n_filter_types < AGS_WIRE_FILTER_MAX ? host->n_filter_types
		                                                           : AGS_WIRE_FILTER_MAX;
		for (size_t i = 0; i < hello.n_types; i++)
			hello.types[i] = host->filter_types[i];
		hello.n_tags = host->n_filter_tags < AGS_WIRE_FILTER_MAX ? host->n_filter_tags
		                                                         : AGS_WIRE_FILTER_MAX;
		for (size_t i = 0; i < hello.n_tags; i++)
			hello.tags[i] = host->filter_tags[i];
	}
	/* Made now, sent by ags_sync_start: towards a hub AUTH goes first, HELLO in the same
	 * flight. */
	ags_frame_buf_init(&s->start_frames, 0);
	int erv = 0;
	if (role == AGS_SYNC_ROLE_UPSTREAM)
		erv = ags_wire_auth_encode(opts->token, &s->start_frames, NULL);
	hello.delta = ags_sync_delta_enabled(s);
	if (erv == 0)
		erv = ags_wire_hello_encode(&hello, &s->start_frames, NULL);
	if (erv != 0) {
		if (erv == AGS_ERR_INVALID) {
			ags_sync_del(s);
			return AGS_ERR_INVALID;
		}
		goto fail;
	}
	const ags_sync_resume *r = opts ? opts->resume : NULL;
	if (role == AGS_SYNC_ROLE_PEER && r && r->valid) {
		/* 0-RTT: send from where the peer stood last time, before its HELLO. */
		snprintf(s->peer_store, sizeof(s->peer_store), "%s", r->peer_store);
		s->codec = host->compression ? r->codec : AGS_CODEC_NONE;
		s->peer_max_frame = r->max_frame;
		s->peer_batch = r->batch_size;
		s->f_types = dup_list((const char *const *)r->types, r->n_types);
		s->f_tags = dup_list((const char *const *)r->tags, r->n_tags);
		if (!s->f_types || !s->f_tags)
			goto fail;
		s->n_f_types = r->n_types;
		s->n_f_tags = r->n_tags;
		s->sent_seq = s->st.acked_seq = s->early_from = r->acked_seq;
		s->early = 1;
	}
	*out = s;
	return 0;
fail:
	ags_sync_del(s);
	return AGS_ERR_NOMEM;
}

void ags_sync_start(ags_sync *s, uint64_t now_us)
{
	if (s->started)
		return;
	s->started = 1;
	const ags_sync_host *h = s->h;
	ags_bucket_init(&s->rate_p, h->rate_patterns_per_s, h->rate_patterns_per_s, now_us);
	ags_bucket_init(&s->rate_b, h->rate_bytes_per_s, h->rate_bytes_per_s, now_us);
	ags_sync_send_buf(s, &s->start_frames);
}

void ags_sync_resume_free(ags_sync_resume *r)
{
	for (size_t i = 0; i < r->n_types; i++)
		free(r->types[i]);
	for (size_t i = 0; i < r->n_tags; i++)
		free(r->tags[i]);
	free(r->types);
	free(r->tags);
	memset(r, 0, sizeof(*r));
}

void ags_sync_resume_save(const ags_sync *s, ags_sync_resume *r)
{
	if (s->role != AGS_SYNC_ROLE_PEER || !s->hello_recv)
		return;
	char **types = dup_list((const char *const *)s->f_types, s->n_f_types);
	char **tags = dup_list((const char *const *)s->f_tags, s->n_f_tags);
	if (!types || !tags) {
		free(types);
		free(tags);
		return;
	}
	ags_sync_resume_free(r);
	r->valid = 1;
	snprintf(r->peer_store, sizeof(r->peer_store), "%s", s->peer_store);
	r->acked_seq = s->st.acked_seq;
	r->codec = s->codec;
	r->max_frame = (uint32_t)s->peer_max_frame;
	r->batch_size = s->peer_batch;
	r->types = types;
	r->n_types = s->n_f_types;
	r->tags = tags;
	r->n_tags = s->n_f_tags;
}

const char *ags_sync_peer_id(const ags_sync *s)
{
	return s->peer_id;
}

struct ags_sync_tail_item {
	ags_change_row row; /* strings owned: id, body, origin, scope, vc */
};

static void row_free(ags_change_row *r)
{
	free((char *)r->id);
	free((char *)r->body);
	free((char *)r->origin);
	free((char *)r->scope);
	free((char *)r->vc);
}

static void tail_clear(ags_sync_cache *c)
{
	for (size_t i = 0; i < c->n_tail; i++)
		row_free(&c->tail[i].row);
	c->n_tail = 0;
	c->tail_valid = 0;
}

void ags_sync_cache_free(ags_sync_cache *c)
{
	if (!c)
		return;
	ags_batch_encoder_del(c->enc);
	c->enc = NULL;
	tail_clear(c);
	free(c->tail);
	c->tail = NULL;
	c->cap_tail = 0;
}

void ags_sync_del(ags_sync *s)
{
	if (!s || s->dead)
		return;
	if (s->h->cache && s->h->cache->users)
		s->h->cache->users--;
	s->dead = 1;
	if (s->jobs == 0)
		ags_sync_release(s); /* else the last job's finish does */
}

void ags_sync_release(ags_sync *s)
{
	ZSTD_freeDCtx(s->dctx);
	ags_frame_buf_free(&s->start_frames);
	ags_frame_reader_free(&s->rd);
	if (!s->enc_shared)
		ags_batch_encoder_del(s->enc);
	ags_sync_pull_clear(&s->pull);
	while (s->q_head) {
		struct ags_sync_inflight *q = s->q_head;
		s->q_head = q->next;
		ags_sync_inflight_clear(q);
		free(q);
	}
	ags_sync_delta_free(s);
	chunk_clear(s);
	free(s->chunk);
	free_list(s->f_types, s->n_f_types);
	free_list(s->f_tags, s->n_f_tags);
	free(s);
}

void ags_sync_get_stats(const ags_sync *s, ags_sync_stats *out)
{
	*out = s->st;
	out->hello_done = s->hello_recv;
}

uint64_t ags_sync_lag(ags_sync *s)
{
	pthread_mutex_lock(s->h->store_mu);
	uint64_t seq = ags_store_seq(s->h->store);
	pthread_mutex_unlock(s->h->store_mu);
	return seq > s->st.acked_seq ? seq - s->st.acked_seq : 0;
}

/* ---- sender ---- */

static int wanted(ags_sync *s, const ags_pattern *p)
{
	if (ags_pattern_is_tombstone(p))
		return 1;
	if (s->n_f_types) {
		size_t i;
		for (i = 0; i < s->n_f_types; i++)
			if (strcmp(s->f_types[i], ags_pattern_type(p)) == 0)
				break;
		if (i == s->n_f_types)
			return 0;
	}
	if (s->n_f_tags) {
		size_t i;
		for (i = 0; i < s->n_f_tags; i++)
			if (ags_pattern_has_tag(p, s->f_tags[i]))
				break;
		if (i == s->n_f_tags)
			return 0;
	}
	return 1;
}

/* Whether a live row passes the peer's HELLO filters (only then is the body parsed). */
static int row_wanted(ags_sync *s, const ags_change_row *r)
{
	if (r->tombstone || (!s->n_f_types && !s->n_f_tags))
		return 1;
	ags_pattern *p = NULL;
	int rv = ags_pattern_parse_trusted(r->body, r->body_len, &p);
	if (rv)
		return rv == AGS_ERR_NOMEM ? rv : 0;
	rv = wanted(s, p);
	ags_pattern_del(p);
	return rv;
}

static int chunk_add(void *ud, const ags_change_row *r)
{
	ags_sync *s = ud;
	if (r->origin && strcmp(r->origin, s->peer_id) == 0)
		return 0; /* it came from this peer */
	if (!ags_sync_scope_allows(r->scope, s->peer_id))
		return 0;
	int w = row_wanted(s, r);
	if (w <= 0)
		return w;
	if (s->chunk_n == s->chunk_cap) {
		size_t cap = s->chunk_cap ? s->chunk_cap * 2 : 256;
		struct ags_sync_pending *c = realloc(s->chunk, cap * sizeof(*c));
		if (!c)
			return AGS_ERR_NOMEM;
		s->chunk = c;
		s->chunk_cap = cap;
	}
	struct ags_sync_pending *c = &s->chunk[s->chunk_n];
	memset(c, 0, sizeof(*c));
	c->seq = r->seq;
	c->priority = r->priority;
	c->no_relay = r->scope != NULL;
	c->version = r->version;
	c->timestamp = r->timestamp;
	c->tombstone = r->tombstone;
	/* One block: id, then body, then clock (a chunk is thousands of rows). */
	size_t id_len = strlen(r->id);
	size_t body_len = r->tombstone ? 0 : r->body_len;
	size_t vc_len = r->vc ? strlen(r->vc) : 0;
	char *m = malloc(id_len + 1 + body_len + (r->vc ? vc_len + 1 : 0));
	if (!m)
		return AGS_ERR_NOMEM;
	memcpy(m, r->id, id_len + 1);
	c->id = m;
	if (!r->tombstone) {
		c->json = m + id_len + 1;
		if (body_len)
			memcpy(c->json, r->body, body_len);
		c->len = body_len;
	}
	if (r->vc) {
		c->vc = m + id_len + 1 + body_len;
		memcpy(c->vc, r->vc, vc_len + 1);
		c->vc_len = vc_len;
	}
	s->chunk_bytes += c->len + c->vc_len;
	s->chunk_n++;
	return s->chunk_bytes >= CHUNK_MAX_BYTES ? CHUNK_FULL : 0;
}

static int by_priority(const void *a, const void *b)
{
	const struct ags_sync_pending *x = a, *y = b;
	if (x->priority != y->priority)
		return y->priority - x->priority; /* higher first */
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int tail_add(void *ud, const ags_change_row *r)
{
	ags_sync_cache *c = ud;
	if (c->n_tail == c->cap_tail) {
		size_t cap = c->cap_tail ? c->cap_tail * 2 : 16;
		struct ags_sync_tail_item *t = realloc(c->tail, cap * sizeof(*t));
		if (!t)
			return AGS_ERR_NOMEM;
		c->tail = t;
		c->cap_tail = cap;
	}
	ags_change_row *d = &c->tail[c->n_tail].row;
	*d = *r;
	d->id = strdup(r->id);
	d->body = r->body ? strndup(r->body, r->body_len) : NULL;
	d->origin = r->origin ? strdup(r->origin) : NULL;
	d->scope = r->scope ? strdup(r->scope) : NULL;
	d->vc = r->vc ? strdup(r->vc) : NULL;
	if (!d->id || (r->body && !d->body) || (r->origin && !d->origin) ||
	    (r->scope && !d->scope) || (r->vc && !d->vc)) {
		row_free(d);
		return AGS_ERR_NOMEM;
	}
	c->n_tail++;
	return 0;
}

/*
 * Lists the log after `after` into cb through the host's log reader (its own
 * connection, used only on the session's thread) or else the store.
 */
static int read_rows(ags_sync *s, uint64_t after, size_t limit, const char *skip_origin,
                     ags_row_cb cb, void *ud, uint64_t *upto)
{
	if (s->h->log_store)
		return ags_store_rows(s->h->log_store, after, limit, skip_origin, cb, ud, upto);
	pthread_mutex_lock(s->h->store_mu);
	int rv = ags_store_rows(s->h->store, after, limit, skip_origin, cb, ud, upto);
	pthread_mutex_unlock(s->h->store_mu);
	return rv;
}

/*
 * Fills the chunk from the host's shared tail when it covers the changes
 * after sent_seq up to the store's current sequence `head` (reading it once
 * for every session that is at the same place). Only worth it when sessions
 * share the host: one session reads the log itself, leaving out in SQL what
 * came from its peer. Returns 1 when it did, 0 when the caller must read the
 * store, or an error.
 */
static int chunk_from_tail(ags_sync *s, uint64_t head, uint64_t now)
{
	ags_sync_cache *c = s->h->cache;
	if (!c || c->users < 2 || head - s->sent_seq > AGS_SYNC_TAIL_MAX)
		return 0;
	/* Short-lived on purpose: expiry can take rows out of the log without a new sequence. */
	if (!c->tail_valid || c->tail_after != s->sent_seq || c->tail_head != head ||
	    now - c->tail_at_us > 100000) {
		tail_clear(c);
		uint64_t upto = 0;
		int rv = read_rows(s, s->sent_seq, AGS_SYNC_TAIL_MAX, NULL, tail_add, c, &upto);
		if (rv) {
			tail_clear(c);
			return rv;
		}
		c->tail_valid = 1;
		c->tail_after = s->sent_seq;
		c->tail_head = upto;
		c->tail_at_us = now;
	}
	for (size_t i = 0; i < c->n_tail; i++) {
		if (c->tail[i].row.seq > s->chunk_upto)
			s->chunk_upto = c->tail[i].row.seq;
		int rv = chunk_add(s, &c->tail[i].row);
		if (rv == CHUNK_FULL)
			return 1; /* the rest goes in the next chunk */
		if (rv)
			return rv;
	}
	/* Everything up to the store's sequence then is covered, listed or not. */
	if (c->tail_head > s->chunk_upto)
		s->chunk_upto = c->tail_head;
	return 1;
}

static int chunk_load(ags_sync *s, uint64_t now)
{
	chunk_clear(s);
	s->chunk_upto = s->sent_seq;
	/* A chunk is the part of the backlog ordered by priority: a few windows'
	 * worth, at least CHUNK_MIN changes, at most CHUNK_MAX_BYTES of JSON. */
	size_t limit = (size_t)s->h->window * s->h->batch_size * 4;
	if (limit < CHUNK_MIN)
		limit = CHUNK_MIN;
	s->chunk_bytes = 0;
	uint64_t head = ags_store_seq_committed(s->h->store);
	int rv = chunk_from_tail(s, head, now);
	if (rv == 0 && s->h->recent) {
		/* Just written through the API: the rows are still in memory. */
		rv = s->h->recent(s->h->ud, s->sent_seq, head, chunk_add, s);
		if (rv == 1) {
			s->chunk_upto = head;
		} else if (rv < 0) {
			chunk_clear(s); /* cut short: read the store instead */
			s->chunk_bytes = 0;
			rv = 0;
		}
	}
	if (rv == 0) {
		uint64_t upto = 0;
		rv = read_rows(s, s->sent_seq, limit, s->peer_id, chunk_add, s, &upto);
		if ((rv == 0 || rv == CHUNK_FULL) && upto > s->chunk_upto)
			s->chunk_upto = upto;
	} else if (rv == 1) {
		rv = 0;
	}
	if (rv == CHUNK_FULL)
		rv = 0;
	if (rv) {
		chunk_clear(s);
		s->chunk_upto = s->sent_seq;
		return rv;
	}
	/* Priority queue (seed): within the backlog read, higher priority first. */
	if (s->chunk_n > 1)
		qsort(s->chunk, s->chunk_n, sizeof(*s->chunk), by_priority);
	return 0;
}

static int ensure_encoder(ags_sync *s)
{
	if (s->enc)
		return 0;
	ags_batch_encoder_opts o;
	memset(&o, 0, sizeof(o));
	o.max_frame = s->peer_max_frame;
	o.max_count = s->peer_batch < s->h->batch_size ? s->peer_batch : s->h->batch_size;
	ags_sync_cache *c = s->h->cache;
	if (c && c->enc && c->max_frame == o.max_frame && c->max_count == o.max_count) {
		s->enc = c->enc;
		s->enc_shared = 1;
		return 0;
	}
	int rv = ags_batch_encoder_new(&o, &s->enc);
	if (rv == 0 && c && !c->enc) {
		/* The first session's limits are the usual ones: share its encoder. */
		c->enc = s->enc;
		c->max_frame = o.max_frame;
		c->max_count = o.max_count;
		s->enc_shared = 1;
	}
	return rv;
}

/* Builds and sends one batch from the chunk. Returns 0, 1 when rate limited (*wait set). */
static int send_batch(ags_sync *s, uint64_t now, uint64_t *wait)
{
	size_t remaining = s->chunk_n - s->chunk_pos;
	size_t max_n = s->h->batch_size;
	if (s->peer_batch && s->peer_batch < max_n)
		max_n = s->peer_batch;
	if (remaining) {
		double ap = ags_bucket_available(&s->rate_p, now);
		double ab = ags_bucket_available(&s->rate_b, now);
		if (ap < 1.0 || ab < 1.0) {
			uint64_t w1 = ags_bucket_wait_us(&s->rate_p, 1.0);
			uint64_t w2 = ags_bucket_wait_us(&s->rate_b, 1.0);
			*wait = w1 > w2 ? w1 : w2;
			return 1;
		}
		if (ap < (double)max_n)
			max_n = (size_t)ap;
	}
	if (ensure_encoder(s))
		return AGS_ERR_NOMEM;
	ags_batch_encoder_begin(s->enc);
	struct ags_sync_inflight *q = calloc(1, sizeof(*q));
	if (!q)
		return AGS_ERR_NOMEM;
	q->acked_at_send = s->st.acked_seq;
	size_t start_pos = s->chunk_pos;
	while (s->chunk_pos < s->chunk_n && ags_batch_encoder_count(s->enc) < max_n) {
		struct ags_sync_pending *c = &s->chunk[s->chunk_pos];
		int rv = c->tombstone ? 0 : ags_sync_delta_add(s, c, q);
		if (rv == 1) {
			s->chunk_pos++;
			continue;
		}
		if (rv == 0)
			rv = c->tombstone
			         ? ags_batch_encoder_add_del_vc(s->enc, c->id, c->version,
			                                        c->timestamp, c->no_relay, c->vc,
			                                        c->vc_len)
			         : ags_batch_encoder_add_put_vc(s->enc, c->json, c->len,
			                                        c->no_relay, c->vc, c->vc_len);
		if (rv == AGS_ERR_NOMEM) {
			/* Nothing of this batch went: the next try starts it again. */
			s->chunk_pos = start_pos;
			ags_sync_inflight_clear(q);
			free(q);
			return rv;
		}
		if (rv == AGS_ERR_TOO_LARGE && ags_batch_encoder_count(s->enc) > 0)
			break;
		if (rv) {
			/* A single change that does not fit a frame: skip it, loudly. */
			ags_sync_log(s, AGS_LOG_ERROR, "change seq %llu cannot be sent to %s: %s",
			             (unsigned long long)c->seq, s->peer_id, ags_strerror(rv));
			s->chunk_pos++;
			continue;
		}
		s->chunk_pos++;
	}
	int last = s->chunk_pos >= s->chunk_n;
	q->request_id = s->next_request++;
	/* Batches sent before the peer's HELLO never move its cursor (see ags_sync_resume). */
	int early = s->early && !s->hello_recv;
	q->upto_seq = last && !early ? s->chunk_upto : 0;
	if (early)
		s->st.early_batches++;
	int rv = ags_sync_batch_send(s, q, now);
	if (rv)
		return rv;
	if (q->upto_seq)
		s->cursor_since = 0; /* this batch carries the cursor */
	if (last) {
		s->sent_seq = s->chunk_upto;
		chunk_clear(s);
	}
	return 0;
}

void ags_sync_inflight_clear(struct ags_sync_inflight *q)
{
	for (size_t i = 0; i < q->n_deltas; i++)
		free(q->deltas[i].id);
	free(q->deltas);
	q->deltas = NULL;
	q->n_deltas = 0;
}

int ags_sync_batch_send(ags_sync *s, struct ags_sync_inflight *q, uint64_t now)
{
	uint32_t count = (uint32_t)ags_batch_encoder_count(s->enc);
	q->count = count;
	q->sent_us = now;
	const uint8_t *frame = NULL;
	size_t flen = 0;
	ags_batch_stats bs;
	int64_t wall = s->h->wall_ms ? s->h->wall_ms(s->h->ud) : 0;
	int rv = ags_batch_encoder_finish(s->enc, q->request_id, wall, q->upto_seq, s->h->node_id,
	                                  s->codec, &frame, &flen, &bs);
	uint8_t *copy = rv ? NULL : malloc(flen);
	if (!copy) {
		ags_sync_inflight_clear(q);
		free(q);
		return rv ? rv : AGS_ERR_NOMEM;
	}
	memcpy(copy, frame, flen);
	s->h->send(s->h->ud, s->sud, copy, flen);
	ags_bucket_spend(&s->rate_p, count);
	ags_bucket_spend(&s->rate_b, (double)flen);
	s->st.patterns_sent += count;
	s->st.raw_bytes_out += bs.raw_len;
	s->st.wire_bytes_out += bs.wire_len;
	if (s->q_tail)
		s->q_tail->next = q;
	else
		s->q_head = q;
	s->q_tail = q;
	s->n_inflight++;
	return 0;
}

/*
 * Sends the count-0 batch that moves the peer's cursor over changes it does
 * not get, once host->cursor_delay_us has passed since the first of them was
 * skipped (a batch with content carries the cursor before that). Returns the
 * microseconds left to wait, or 0.
 */
static uint64_t cursor_flush(ags_sync *s, uint64_t now_us)
{
	if (!s->cursor_since)
		return 0;
	uint64_t due = s->cursor_since + s->h->cursor_delay_us;
	if (now_us < due)
		return due - now_us;
	uint64_t wait = 0;
	chunk_clear(s);
	s->chunk_upto = s->sent_seq;
	send_batch(s, now_us, &wait); /* on failure the next pump tries again */
	return 0;
}

static uint64_t pump(ags_sync *s, uint64_t now_us)
{
	if ((!s->hello_recv && !s->early) || !s->gate_open)
		return 0;
	if (s->cursor_owed && s->hello_recv && s->chunk_pos >= s->chunk_n &&
	    s->n_inflight < s->h->window) {
		/* The 0-RTT hint held: tell the peer its cursor now covers the early batches. */
		uint64_t wait = 0;
		s->cursor_owed = 0;
		chunk_clear(s);
		s->chunk_upto = s->sent_seq;
		if (send_batch(s, now_us, &wait) < 0)
			return 0;
	}
	while (s->n_resend && s->n_inflight < s->h->window) {
		/* Refused deltas go again whole, ahead of the rest of the log. */
		int rv = ags_sync_delta_resend(s, now_us);
		if (rv < 0) {
			ags_sync_log(s, AGS_LOG_ERROR, "resending to %s failed: %s", s->peer_id,
			             ags_strerror(rv));
			return 0;
		}
		if (rv == 0)
			break;
	}
	while (s->n_inflight < s->h->window) {
		if (s->chunk_pos >= s->chunk_n) {
			/* The store's sequence is in memory: an idle session (most of a
			 * hub's) needs no query to learn that nothing is new, and no
			 * lock a writer in a long transaction would hold it up on. */
			uint64_t head = ags_store_seq_committed(s->h->store);
			if (head <= s->sent_seq) {
				s->caught_up = 1;
				return cursor_flush(s, now_us);
			}
			int lr = chunk_load(s, now_us);
			if (lr != 0) {
				ags_sync_log(s, AGS_LOG_ERROR, "reading the log for %s failed: %s",
				             s->peer_id, ags_strerror(lr));
				return 0;
			}
			if (s->chunk_upto <= s->sent_seq) {
				s->caught_up = 1;
				return cursor_flush(s, now_us); /* nothing new */
			}
			if (s->chunk_n == 0 && s->h->cursor_delay_us && !s->early &&
			    s->role == AGS_SYNC_ROLE_PEER) {
				/* Only changes this peer does not get (most often its own,
				 * relayed back to us): a batch just to say so can wait. */
				s->sent_seq = s->chunk_upto;
				chunk_clear(s);
				if (!s->cursor_since)
					s->cursor_since = now_us ? now_us : 1;
				continue;
			}
			s->caught_up = 0;
		}
		uint64_t wait = 0;
		int rv = send_batch(s, now_us, &wait);
		if (rv == 1)
			return wait ? wait : 1000;
		if (rv < 0) {
			ags_sync_log(s, AGS_LOG_ERROR, "sending to %s failed: %s", s->peer_id,
			             ags_strerror(rv));
			return 0;
		}
	}
	return 0;
}

uint64_t ags_sync_pump(ags_sync *s, uint64_t now_us)
{
	uint64_t wait = pump(s, now_us);
	if (s->pull.pending)
		ags_sync_pull_check(s);
	return wait;
}

int ags_sync_sending(const ags_sync *s)
{
	return s->n_inflight || s->chunk_pos < s->chunk_n ||
	       (s->hello_recv && s->sent_seq < ags_store_seq_committed(s->h->store));
}

int ags_sync_push_idle(ags_sync *s)
{
	if (!s->hello_recv || s->n_inflight || s->chunk_pos < s->chunk_n || s->n_resend)
		return 0;
	pthread_mutex_lock(s->h->store_mu);
	uint64_t head = ags_store_seq(s->h->store), next = 0;
	int idle = head <= s->sent_seq ||
	           ags_store_next_seq(s->h->store, s->sent_seq, &next) == AGS_ERR_NOT_FOUND;
	pthread_mutex_unlock(s->h->store_mu);
	return idle;
}

/* ---- receiver ---- */

static int on_hello(ags_sync *s, const uint8_t *payload, size_t len, uint64_t now, uint64_t *code,
                    char *reason, size_t cap)
{
	if (s->hello_recv) {
		*code = AGS_APP_PROTOCOL_ERROR;
		snprintf(reason, cap, "second HELLO");
		return AGS_ERR_PROTO;
	}
	ags_wire_hello m;
	ags_error err;
	ags_error_clear(&err);
	int rv = ags_wire_hello_decode(payload, len, &m, &err);
	if (rv) {
		*code = rv == AGS_ERR_UNSUPPORTED ? AGS_APP_VERSION_MISMATCH : AGS_APP_BAD_HELLO;
		snprintf(reason, cap, "bad HELLO: %s%s%s", err.field, err.field[0] ? ": " : "",
		         err.message);
		return rv;
	}
	rv = 0;
	int hub = s->role == AGS_SYNC_ROLE_HUB;
	if (strcmp(m.node, s->peer_id) != 0) {
		/* At a hub the agent is who its token says (agents may share a certificate). */
		*code = hub ? AGS_APP_AUTH_FAILED : AGS_APP_BAD_HELLO;
		snprintf(reason, cap, "claimed node id '%s' is not the %s '%s'", m.node,
		         hub ? "token's sub" : "certificate's", s->peer_id);
		rv = AGS_ERR_AUTH;
	} else if (strcmp(m.tenant, s->h->tenant) != 0) {
		*code = hub ? AGS_APP_AUTH_FAILED : AGS_APP_BAD_HELLO;
		snprintf(reason, cap, "tenant '%s' is not %s ('%s')", m.tenant,
		         hub ? "the token's" : "ours", s->h->tenant);
		rv = AGS_ERR_AUTH;
	}
	if (rv) {
		ags_wire_hello_free(&m);
		return rv;
	}
	snprintf(s->peer_store, sizeof(s->peer_store), "%s", m.store);
	s->peer_max_frame = m.max_frame;
	s->peer_batch = m.batch_size;
	s->codec = AGS_CODEC_NONE;
	if (s->h->compression) {
		if (m.codecs & (1u << AGS_CODEC_ZSTD))
			s->codec = AGS_CODEC_ZSTD;
		else if (m.codecs & (1u << AGS_CODEC_GZIP))
			s->codec = AGS_CODEC_GZIP;
	}
	/* Resume where the peer's durable copy of our log stands (same store only). */
	uint64_t cursor =
	    m.has_cursor && strcmp(m.cursor_store, s->h->store_id) == 0 ? m.cursor_seq : 0;
	if (s->early && cursor == s->early_from) {
		/* The 0-RTT hint held: go on from where the early batches got to. */
		if (s->sent_seq > cursor)
			s->cursor_owed = 1;
		ags_sync_log(s, AGS_LOG_INFO,
		             "0-RTT hint for %s held: %llu batches went before its HELLO",
		             s->peer_id, (unsigned long long)s->st.early_batches);
	} else {
		if (s->early) {
			ags_sync_log(
			    s, AGS_LOG_INFO,
			    "0-RTT hint for %s was stale (cursor %llu, assumed %llu): rewinding",
			    s->peer_id, (unsigned long long)cursor,
			    (unsigned long long)s->early_from);
			chunk_clear(s);
		}
		s->sent_seq = cursor;
	}
	s->early = 0;
	s->st.acked_seq = cursor;
	free_list(s->f_types, s->n_f_types);
	free_list(s->f_tags, s->n_f_tags);
	s->f_types = s->f_tags = NULL;
	s->n_f_types = s->n_f_tags = 0;
	if (m.has_filter) {
		s->f_types = dup_list(m.types, m.n_types);
		s->f_tags = dup_list(m.tags, m.n_tags);
		if (!s->f_types || !s->f_tags) {
			ags_wire_hello_free(&m);
			*code = AGS_APP_INTERNAL_ERROR;
			snprintf(reason, cap, "out of memory");
			return AGS_ERR_NOMEM;
		}
		s->n_f_types = m.n_types;
		s->n_f_tags = m.n_tags;
	}
	s->peer_delta = m.delta;
	char instance[40];
	snprintf(instance, sizeof(instance), "%s", m.instance ? m.instance : "");
	ags_wire_hello_free(&m);
	if (s->h->hello && s->h->hello(s->h->ud, s->sud, instance) != 0) {
		*code = AGS_APP_NO_ERROR;
		snprintf(reason, cap, "duplicate connection");
		return AGS_ERR_EXISTS;
	}
	s->hello_recv = 1;
	ags_sync_log(s, AGS_LOG_DEBUG, "HELLO from %s: resuming our log after %llu, codec %s",
	             s->peer_id, (unsigned long long)s->sent_seq, ags_codec_name(s->codec));
	ags_sync_pump(s, now);
	return 0;
}

static int on_ack(ags_sync *s, const uint8_t *payload, size_t len, uint64_t now, uint64_t *code,
                  char *reason, size_t cap)
{
	ags_wire_ack m;
	ags_error err;
	ags_error_clear(&err);
	int rv = ags_wire_ack_decode(payload, len, 0, &m, &err);
	if (rv) {
		*code = AGS_APP_PROTOCOL_ERROR;
		snprintf(reason, cap, "bad ACK: %s %s", err.field, err.message);
		return rv;
	}
	struct ags_sync_inflight *q = s->q_head, *prev = NULL;
	while (q && q->request_id != m.request_id) {
		prev = q;
		q = q->next;
	}
	if (!q) {
		ags_wire_ack_free(&m);
		*code = AGS_APP_PROTOCOL_ERROR;
		snprintf(reason, cap, "ACK for unknown batch %llu",
		         (unsigned long long)m.request_id);
		return AGS_ERR_PROTO;
	}
	if (prev)
		prev->next = q->next;
	else
		s->q_head = q->next;
	if (s->q_tail == q)
		s->q_tail = prev;
	s->n_inflight--;
	double latency = (double)(now - q->sent_us) / 1000.0;
	if (q->upto_seq > s->st.acked_seq)
		s->st.acked_seq = q->upto_seq;
	size_t n_resent = 0;
	for (size_t i = 0; i < m.n_errors; i++) {
		int rr = ags_sync_delta_refused(s, q, m.errors[i].pattern_id, m.errors[i].code);
		if (rr != 0) {
			n_resent++; /* it goes again whole: not a failure */
			continue;
		}
		ags_event ev = {.type = AGS_EV_SYNC_FAILED,
		                .pattern_id = m.errors[i].pattern_id,
		                .error = m.errors[i].error};
		ags_sync_emit(s, &ev);
	}
	if (s->role == AGS_SYNC_ROLE_UPSTREAM) {
		/* The hub found these of our changes concurrent with another agent's. */
		for (size_t i = 0; i < m.n_conflicts; i++) {
			ags_event ev = {.type = AGS_EV_PATTERN_CONFLICT,
			                .pattern_id = m.conflicts[i],
			                .source_id = s->peer_id,
			                .error = "the hub reports a conflict"};
			s->st.conflicts++;
			ags_sync_emit(s, &ev);
		}
	}
	if (m.success || (m.n_errors > 0 && n_resent == m.n_errors)) {
		s->st.batches_acked++;
		s->st.patterns_acked += q->count;
		s->st.latency_sum_ms += latency;
		ags_event ev = {.type = AGS_EV_SYNC_COMPLETED,
		                .pattern_count = q->count,
		                .latency_ms = latency};
		ags_sync_emit(s, &ev);
	} else {
		s->st.batches_failed++;
		if (m.n_errors == 0) {
			ags_event ev = {.type = AGS_EV_SYNC_FAILED,
			                .error = "batch refused by the peer"};
			ags_sync_emit(s, &ev);
		}
	}
	ags_sync_inflight_clear(q);
	free(q);
	ags_wire_ack_free(&m);
	ags_sync_pump(s, now);
	return 0;
}

static int on_error_frame(ags_sync *s, const uint8_t *payload, size_t len, uint64_t *code,
                          char *reason, size_t cap)
{
	ags_wire_error m;
	*code = AGS_APP_NO_ERROR;
	if (ags_wire_error_decode(payload, len, &m, NULL) == 0) {
		ags_sync_log(s, AGS_LOG_WARN, "%s reports error %s: %s", s->peer_id,
		             ags_app_error_name(m.code), m.text);
		snprintf(reason, cap, "peer error: %s", m.text);
		/* Close with the peer's own code, so what it meant (e.g. AUTH_FAILED) reaches
		 * whoever waits on this connection. */
		if (strcmp(ags_app_error_name(m.code), "UNKNOWN") != 0)
			*code = m.code;
		ags_wire_error_free(&m);
	} else {
		snprintf(reason, cap, "peer sent an unreadable ERROR");
	}
	return AGS_ERR_CLOSED;
}

int ags_sync_on_data(ags_sync *s, const uint8_t *data, size_t len, uint64_t now_us,
                     uint64_t *close_code, char *reason, size_t cap)
{
	while (len > 0) {
		size_t used = 0;
		ags_frame f;
		ags_error err;
		ags_error_clear(&err);
		int rv = ags_frame_reader_feed(&s->rd, data, len, &used, &f, &err);
		if (rv < 0) {
			*close_code = ags_frame_reader_close_code(&s->rd);
			snprintf(reason, cap, "%s",
			         err.message[0] ? err.message : ags_strerror(rv));
			return rv;
		}
		data += used;
		len -= used;
		if (rv == 0)
			break;
		switch (f.type) {
		case AGS_FRAME_HELLO:
			rv = on_hello(s, f.payload, f.len, now_us, close_code, reason, cap);
			break;
		case AGS_FRAME_BATCH:
			rv =
			    ags_sync_on_batch(s, f.payload, f.len, now_us, close_code, reason, cap);
			break;
		case AGS_FRAME_ACK:
			rv = on_ack(s, f.payload, f.len, now_us, close_code, reason, cap);
			break;
		case AGS_FRAME_ERROR:
			rv = on_error_frame(s, f.payload, f.len, close_code, reason, cap);
			break;
		case AGS_FRAME_AUTH:
			if (s->role == AGS_SYNC_ROLE_HUB) {
				*close_code = AGS_APP_AUTH_FAILED;
				snprintf(reason, cap,
				         "a second AUTH is refused: this connection is bound to "
				         "agent '%s' of tenant '%s'",
				         s->peer_id, s->h->tenant);
				rv = AGS_ERR_AUTH;
			} else {
				*close_code = AGS_APP_PROTOCOL_ERROR;
				snprintf(reason, cap,
				         "unexpected AUTH frame: this node is not a hub");
				rv = AGS_ERR_PROTO;
			}
			break;
		case AGS_FRAME_PULL:
			if (s->role == AGS_SYNC_ROLE_HUB) {
				rv = ags_sync_on_pull(s, f.payload, f.len, now_us, close_code,
				                      reason, cap);
			} else {
				*close_code = AGS_APP_PROTOCOL_ERROR;
				snprintf(reason, cap,
				         "unexpected PULL frame: this node is not a hub");
				rv = AGS_ERR_PROTO;
			}
			break;
		case AGS_FRAME_PULL_DONE:
			if (s->role == AGS_SYNC_ROLE_UPSTREAM) {
				rv = ags_sync_on_pull_done(s, f.payload, f.len, close_code, reason,
				                           cap);
			} else {
				*close_code = AGS_APP_PROTOCOL_ERROR;
				snprintf(reason, cap,
				         "unexpected PULL_DONE frame: no PULL was sent");
				rv = AGS_ERR_PROTO;
			}
			break;
		default:
			*close_code = AGS_APP_UNKNOWN_FRAME;
			snprintf(reason, cap, "unexpected %s frame on a peer connection",
			         ags_frame_type_name(f.type));
			rv = AGS_ERR_PROTO;
		}
		if (rv)
			return rv;
	}
	return 0;
}
