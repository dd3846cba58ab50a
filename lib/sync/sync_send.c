/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sender of a sync session (sync.h): the change log after the peer's
 * cursor, filtered (the peer's HELLO filter, what came from it, scopes),
 * read from the host's shared tail or recent rows when they cover it,
 * ordered by priority within each chunk of the backlog, batched, windowed
 * and rate limited; the cursor-only batches.
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

/* ---- sender ---- */

#define CHUNK_MIN       4096
#define CHUNK_MAX_BYTES (16u * 1024 * 1024)
#define CHUNK_FULL      1 /* chunk_add's "stop, the chunk is full" */

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

void ags_sync_chunk_clear(ags_sync *s)
{
	for (size_t i = 0; i < s->chunk_n; i++)
		free(s->chunk[i].id); /* json and vc live in the same block */
	s->chunk_n = s->chunk_pos = 0;
	s->chunk_recovery = 0;
}

static ags_sync_filter peer_filter(const ags_sync *s)
{
	ags_sync_filter f = {.types = (const char *const *)s->f_types,
	                     .n_types = s->n_f_types,
	                     .tags = (const char *const *)s->f_tags,
	                     .n_tags = s->n_f_tags};
	return f;
}

static int chunk_add(void *ud, const ags_change_row *r)
{
	ags_sync *s = ud;
	ags_sync_filter f = peer_filter(s);
	int from_peer = r->origin && strcmp(r->origin, s->peer_id) == 0;
	if (from_peer != s->chunk_recovery)
		return 0; /* a recovery scan sends only the peer's own changes; others never */
	ags_change_row own = *r;
	if (from_peer)
		own.origin = NULL; /* recovery: the peer's own changes are what it lost */
	int w = ags_sync_row_wanted(&f, s->peer_id, &own);
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
	ags_sync_chunk_clear(s);
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
			ags_sync_chunk_clear(s); /* cut short: read the store instead */
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
		ags_sync_chunk_clear(s);
		s->chunk_upto = s->sent_seq;
		return rv;
	}
	/* Priority queue (seed): within the backlog read, higher priority first. */
	if (s->chunk_n > 1)
		qsort(s->chunk, s->chunk_n, sizeof(*s->chunk), by_priority);
	return 0;
}

/*
 * Fills the chunk with the next part of a recovery scan (docs/PROTOCOL.md,
 * "Store epochs"): the records of our log whose origin is the peer, after
 * recover_after. Ends the scan when it reached the end of the log.
 */
static int chunk_load_recovery(ags_sync *s)
{
	ags_sync_chunk_clear(s);
	s->chunk_recovery = 1;
	s->chunk_bytes = 0;
	uint64_t head = ags_store_seq_committed(s->h->store);
	uint64_t upto = 0;
	int rv = read_rows(s, s->recover_after, CHUNK_MIN, NULL, chunk_add, s, &upto);
	if (rv == CHUNK_FULL)
		rv = 0;
	if (rv) {
		ags_sync_chunk_clear(s);
		return rv;
	}
	s->chunk_upto = upto > s->recover_after ? upto : s->recover_after;
	if (s->chunk_upto >= head) {
		s->recover = 0; /* this is the last part */
		ags_sync_log(s, AGS_LOG_INFO, "recovery scan for %s reached our log's end (%llu)",
		             s->peer_id, (unsigned long long)s->chunk_upto);
	}
	if (s->chunk_n == 0) {
		s->recover_after = s->chunk_upto;
		ags_sync_chunk_clear(s);
	} else if (s->chunk_n > 1) {
		qsort(s->chunk, s->chunk_n, sizeof(*s->chunk), by_priority);
	}
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
	/* After refusals of the same changes: half as large each time, down to one. */
	max_n = s->retry_level >= 32 ? 1 : max_n >> s->retry_level;
	if (max_n < 1)
		max_n = 1;
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
	q->gen = s->send_gen;
	size_t start_pos = s->chunk_pos;
	while (s->chunk_pos < s->chunk_n && ags_batch_encoder_count(s->enc) < max_n) {
		struct ags_sync_pending *c = &s->chunk[s->chunk_pos];
		if (!q->first_seq || c->seq < q->first_seq)
			q->first_seq = c->seq;
		if (c->seq > q->last_seq)
			q->last_seq = c->seq;
		int rv = c->tombstone || s->chunk_recovery ? 0 : ags_sync_delta_add(s, c, q);
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
	/* A recovery scan's batches are outside the log's order: they move no cursor. */
	q->upto_seq = last && !early && !s->chunk_recovery ? s->chunk_upto : 0;
	if (early)
		s->st.early_batches++;
	int rv = ags_sync_batch_send(s, q, now);
	if (rv)
		return rv;
	if (q->upto_seq)
		s->cursor_since = 0; /* this batch carries the cursor */
	if (last) {
		if (s->chunk_recovery)
			s->recover_after = s->chunk_upto;
		else
			s->sent_seq = s->chunk_upto;
		ags_sync_chunk_clear(s);
	}
	return 0;
}

void ags_sync_rewind(ags_sync *s, uint64_t now_us, uint64_t delay_us)
{
	s->send_gen++;
	ags_sync_chunk_clear(s);
	s->sent_seq = s->st.acked_seq;
	if (s->recover_req) {
		/* The recovery scan goes again too (its batches may have been refused). */
		s->recover = 1;
		s->recover_after = 0;
	}
	s->cursor_since = 0;
	s->caught_up = 0;
	s->retry_at = (now_us ? now_us : 1) + delay_us;
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
	if (count) {
		s->st.raw_bytes_out += bs.raw_len;
		s->st.wire_bytes_patterns_out += bs.wire_len;
	}
	s->st.wire_bytes_out += bs.wire_len;
	s->st.codec_bytes_out[bs.codec_used >= 0 && bs.codec_used < AGS_SYNC_CODECS - 1
	                          ? bs.codec_used
	                          : AGS_SYNC_CODECS - 1] += bs.wire_len;
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
	ags_sync_chunk_clear(s);
	s->chunk_upto = s->sent_seq;
	send_batch(s, now_us, &wait); /* on failure the next pump tries again */
	return 0;
}

static uint64_t pump(ags_sync *s, uint64_t now_us)
{
	if ((!s->hello_recv && !s->early) || !s->gate_open)
		return 0;
	if (s->retry_at) {
		/* The peer refused changes whole: they go again after the backoff. */
		if (now_us < s->retry_at)
			return s->retry_at - now_us;
		s->retry_at = 0;
	}
	if (s->cursor_owed && s->hello_recv && s->chunk_pos >= s->chunk_n &&
	    s->n_inflight < s->h->window) {
		/* The 0-RTT hint held: tell the peer its cursor now covers the early batches. */
		uint64_t wait = 0;
		s->cursor_owed = 0;
		ags_sync_chunk_clear(s);
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
		if (s->chunk_pos >= s->chunk_n && s->recover && !s->early) {
			/* The peer's store went back: first what it lost of its own. */
			int lr = chunk_load_recovery(s);
			if (lr != 0) {
				ags_sync_log(s, AGS_LOG_ERROR, "reading the log for %s failed: %s",
				             s->peer_id, ags_strerror(lr));
				return 0;
			}
			if (s->chunk_n == 0)
				continue; /* nothing of it in this part */
			s->caught_up = 0;
		}
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
				ags_sync_chunk_clear(s);
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
	ags_sync_ae_pump(s, now_us);
	return wait;
}

int ags_sync_sending(const ags_sync *s)
{
	return s->n_inflight || s->chunk_pos < s->chunk_n || s->recover ||
	       (s->hello_recv && s->sent_seq < ags_store_seq_committed(s->h->store));
}

int ags_sync_push_idle(ags_sync *s)
{
	if (!s->hello_recv || s->n_inflight || s->chunk_pos < s->chunk_n || s->n_resend ||
	    s->recover)
		return 0;
	pthread_mutex_lock(s->h->store_mu);
	uint64_t head = ags_store_seq(s->h->store), next = 0;
	int idle = head <= s->sent_seq ||
	           ags_store_next_seq(s->h->store, s->sent_seq, &next) == AGS_ERR_NOT_FOUND;
	pthread_mutex_unlock(s->h->store_mu);
	return idle;
}
