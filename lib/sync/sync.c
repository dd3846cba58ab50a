/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sync engine (see sync.h): sessions (make, start, free), the HELLO
 * exchange, ACKs, and the frame dispatch of received data. The sender
 * (change log -> filtered, prioritised, compressed batches, windowed and
 * rate limited) is in sync_send.c, the receiver (checked batch -> validated
 * patterns -> one transaction with the cursor and the merged clock -> ACK)
 * in sync_recv.c, delta sync in sync_delta.c, the hub protocol (PULL,
 * PULL_DONE) in sync_pull.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "batch.h"
#include "error.h"
#include "frame.h"
#include "log.h"
#include "pattern.h"
#include "store.h"
#include "sync.h"
#include "sync_int.h"
#include "wire.h"

/* ---- helpers ---- */

void ags_sync_log(ags_sync *s, int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ags_vlogf(s->h->log, s->h->ud, level, fmt, ap);
	va_end(ap);
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
	char cur_store[33] = "", cur_epoch[AGS_STORE_EPOCH_ID_LEN + 1] = "";
	uint64_t cur_seq = 0;
	pthread_mutex_lock(host->store_mu);
	int rv = ags_store_state_get(host->store, s->cursor_key, cur, sizeof(cur));
	pthread_mutex_unlock(host->store_mu);
	if (rv == 0) {
		/* "<store> <seq>" or, with the peer's epoch, "<store> <seq> <epoch>". */
		unsigned long long q = 0;
		int k = sscanf(cur, "%32s %llu %16[0-9a-f]", cur_store, &q, cur_epoch);
		if (k >= 2)
			cur_seq = q;
		else
			cur_store[0] = '\0';
		if (k < 3 || strlen(cur_epoch) != AGS_STORE_EPOCH_ID_LEN)
			cur_epoch[0] = '\0';
	}
	snprintf(s->my_cur_store, sizeof(s->my_cur_store), "%s", cur_store);
	snprintf(s->my_cur_epoch, sizeof(s->my_cur_epoch), "%s", cur_epoch);
	s->my_cur_seq = cur_seq;
	ags_wire_hello hello;
	memset(&hello, 0, sizeof(hello));
	hello.proto = AGS_PROTO_VERSION;
	hello.node = host->node_id;
	hello.tenant = host->tenant;
	hello.store = host->store_id;
	hello.codecs = host->compression ? (1u << AGS_CODEC_ZSTD) | (1u << AGS_CODEC_GZIP) : 0;
	hello.max_frame = (uint32_t)host->max_frame;
	hello.batch_size = AGS_SYNC_MAX_COUNT; /* what we accept; we send host->batch_size */
	hello.has_cursor = 1;
	hello.cursor_store = cur_store;
	hello.cursor_seq = cur_seq;
	hello.cursor_epoch = cur_epoch[0] ? cur_epoch : NULL;
	/* The last AGS_WIRE_EPOCHS_MAX of our store's epochs, oldest first. */
	size_t e0 = host->n_epochs > AGS_WIRE_EPOCHS_MAX ? host->n_epochs - AGS_WIRE_EPOCHS_MAX : 0;
	for (size_t i = e0; host->epochs && i < host->n_epochs; i++) {
		hello.epoch_ids[hello.n_epochs] = host->epochs[i].id;
		hello.epoch_starts[hello.n_epochs] = host->epochs[i].start;
		hello.n_epochs++;
	}
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
	hello.anti_entropy = role == AGS_SYNC_ROLE_PEER && !host->no_anti_entropy &&
	                     !host->n_filter_types && !host->n_filter_tags;
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
		/* The counts go with the lists at once: a failure frees what was copied. */
		s->f_types = dup_list((const char *const *)r->types, r->n_types);
		s->n_f_types = s->f_types ? r->n_types : 0;
		s->f_tags = dup_list((const char *const *)r->tags, r->n_tags);
		s->n_f_tags = s->f_tags ? r->n_tags : 0;
		if (!s->f_types || !s->f_tags)
			goto fail;
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
		if (types)
			free_list(types, s->n_f_types);
		if (tags)
			free_list(tags, s->n_f_tags);
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
	ags_sync_chunk_clear(s);
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
	ags_sync_filter f = {.types = (const char *const *)s->f_types,
	                     .n_types = s->n_f_types,
	                     .tags = (const char *const *)s->f_tags,
	                     .n_tags = s->n_f_tags};
	uint64_t n = 0;
	if (s->h->log_store) {
		if (ags_sync_backlog(s->h->log_store, s->st.acked_seq, s->peer_id, &f, &n))
			n = 0;
		return n;
	}
	pthread_mutex_lock(s->h->store_mu);
	if (ags_sync_backlog(s->h->store, s->st.acked_seq, s->peer_id, &f, &n))
		n = 0;
	pthread_mutex_unlock(s->h->store_mu);
	return n;
}

/* ---- receiver ---- */

/* Reports a store going back (ours or the peer's), as a store:rollback event. */
static void rollback_event(ags_sync *s, const char *msg)
{
	s->st.rollbacks++;
	ags_sync_log(s, AGS_LOG_WARN, "%s", msg);
	ags_event ev = {.type = AGS_EV_STORE_ROLLBACK, .error = msg};
	ags_sync_emit(s, &ev);
}

/*
 * Where sending to the peer starts, given its cursor of our store (seq q, in
 * our epoch `epoch`, or NULL when it names none): docs/PROTOCOL.md, "Store
 * epochs". Its copy is of our log as it is now only up to where the epoch
 * after `epoch` began: past that our sequence numbers mean other changes.
 */
static uint64_t resume_point(ags_sync *s, uint64_t q, const char *epoch)
{
	const ags_sync_host *h = s->h;
	if (!h->n_epochs || !h->epochs)
		return q; /* a store without epochs: as the peer says */
	uint64_t head = ags_store_seq_committed(h->store);
	char msg[512];
	if (!epoch) {
		/* A cursor of an older version: trust it unless it is ahead of our log. */
		if (q <= head)
			return q;
		snprintf(msg, sizeof(msg),
		         "%.256s holds our log up to %llu, past its end %llu: our store went back; "
		         "sending it everything",
		         s->peer_id, (unsigned long long)q, (unsigned long long)head);
		rollback_event(s, msg);
		return 0;
	}
	size_t i = 0;
	while (i < h->n_epochs && strcmp(h->epochs[i].id, epoch) != 0)
		i++;
	if (i == h->n_epochs) {
		snprintf(msg, sizeof(msg),
		         "%.256s holds our log up to %llu in epoch %.16s, which this store does "
		         "not know "
		         "(it went back, or is older than our last %d): sending it everything",
		         s->peer_id, (unsigned long long)q, epoch, AGS_STORE_EPOCHS_MAX);
		rollback_event(s, msg);
		return 0;
	}
	uint64_t valid = q;
	if (i + 1 < h->n_epochs && h->epochs[i + 1].start - 1 < valid)
		valid = h->epochs[i + 1].start - 1;
	if (valid > head)
		valid = head;
	if (valid < q) {
		snprintf(msg, sizeof(msg),
		         "%.256s holds our log up to %llu, but our store went back to %llu since: "
		         "sending it everything after %llu",
		         s->peer_id, (unsigned long long)q, (unsigned long long)valid,
		         (unsigned long long)valid);
		rollback_event(s, msg);
	}
	return valid;
}

/*
 * The peer's HELLO shows its store went back below what we hold of it (an
 * epoch after the one our cursor was received in started at or below our
 * cursor, or our cursor's epoch is gone from its list): it lost changes it
 * made, which we hold and never echo. Send them back, once.
 */
static void peer_rollback_check(ags_sync *s, const ags_wire_hello *m)
{
	if (!m->n_epochs || !s->my_cur_store[0] || strcmp(s->my_cur_store, m->store) != 0 ||
	    s->role != AGS_SYNC_ROLE_PEER)
		return;
	size_t i = 0;
	if (s->my_cur_epoch[0]) {
		while (i < m->n_epochs && strcmp(m->epoch_ids[i], s->my_cur_epoch) != 0)
			i++;
		if (i == m->n_epochs - 1)
			return; /* the same epoch: nothing went back */
		if (i < m->n_epochs) {
			/* A later epoch began: did it begin at or below what we hold? */
			if (m->epoch_starts[i + 1] > s->my_cur_seq)
				return;
		}
		/* Our cursor's epoch is not in its list: its store went back to before that
		 * epoch began (or it restarted more than AGS_WIRE_EPOCHS_MAX times since). */
	} else if (m->epoch_starts[m->n_epochs - 1] > s->my_cur_seq) {
		return; /* a cursor of an older version, and the peer's log reaches past it */
	}
	char msg[512];
	snprintf(msg, sizeof(msg),
	         "%.256s's store went back (we hold its log up to %llu; its epoch %.16s starts at "
	         "%llu): sending it back the changes it made",
	         s->peer_id, (unsigned long long)s->my_cur_seq, m->epoch_ids[m->n_epochs - 1],
	         (unsigned long long)m->epoch_starts[m->n_epochs - 1]);
	rollback_event(s, msg);
	s->recover = s->recover_req = 1;
	s->recover_after = 0;
}

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
	/* Resume where the peer's durable copy of our log stands (same store only), as far
	 * as our store's epochs say that copy is of our log as it is now. */
	uint64_t cursor = m.has_cursor && strcmp(m.cursor_store, s->h->store_id) == 0
	                      ? resume_point(s, m.cursor_seq, m.cursor_epoch)
	                      : 0;
	snprintf(s->peer_epoch, sizeof(s->peer_epoch), "%s",
	         m.n_epochs ? m.epoch_ids[m.n_epochs - 1] : "");
	peer_rollback_check(s, &m);
	if (cursor && s->h->n_epochs && s->h->epochs &&
	    (!m.cursor_epoch || strcmp(m.cursor_epoch, s->h->epochs[s->h->n_epochs - 1].id) != 0))
		/* Its cursor names an older epoch of ours: even with nothing new to send, a
		 * count-0 batch moves it into the current one, before the old one is
		 * forgotten (after AGS_STORE_EPOCHS_MAX more opens). */
		s->cursor_since = now ? now : 1;
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
			ags_sync_chunk_clear(s);
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
		s->n_f_types = s->f_types ? m.n_types : 0;
		s->f_tags = dup_list(m.tags, m.n_tags);
		s->n_f_tags = s->f_tags ? m.n_tags : 0;
		if (!s->f_types || !s->f_tags) {
			ags_wire_hello_free(&m);
			*code = AGS_APP_INTERNAL_ERROR;
			snprintf(reason, cap, "out of memory");
			return AGS_ERR_NOMEM;
		}
	}
	s->peer_delta = m.delta;
	s->peer_ae = m.anti_entropy;
	char instance[40];
	snprintf(instance, sizeof(instance), "%s", m.instance ? m.instance : "");
	ags_wire_hello_free(&m);
	int hv = s->h->hello ? s->h->hello(s->h->ud, s->sud, instance) : 0;
	if (hv == AGS_ERR_CONFIG) {
		*code = AGS_APP_DUPLICATE_ID;
		snprintf(reason, cap, "another process with node id '%s' is connected", s->peer_id);
		return AGS_ERR_EXISTS;
	}
	if (hv != 0) {
		*code = AGS_APP_NO_ERROR;
		snprintf(reason, cap, "duplicate connection");
		return AGS_ERR_EXISTS;
	}
	s->hello_recv = 1;
	ags_sync_ae_hello(s, now);
	ags_sync_log(s, AGS_LOG_DEBUG, "HELLO from %s: resuming our log after %llu, codec %s",
	             s->peer_id, (unsigned long long)s->sent_seq, ags_codec_name(s->codec));
	ags_sync_pump(s, now);
	return 0;
}

/* Most refusals in a row of a batch of one change before the connection is closed. */
#define REFUSALS_MAX 5

/*
 * The peer refused batch q whole (ACK retry): its changes, and everything
 * after the peer's acknowledged cursor, go again after a backoff, in batches
 * half as large after each further refusal, down to one change; the fifth
 * refusal in a row of one change closes the connection (docs/PROTOCOL.md,
 * "Refusals"). Returns 0, or an error with *code and reason set (close).
 */
static int on_refusal(ags_sync *s, const struct ags_sync_inflight *q, const ags_wire_ack *m,
                      uint64_t now, uint64_t *code, char *reason, size_t cap)
{
	const char *why = m->n_errors ? m->errors[0].error : "no reason given";
	s->st.batches_failed++;
	s->st.refusals++;
	if (s->retry_n == 0)
		s->retry_floor = s->st.acked_seq;
	else if (s->retry_level < 32)
		s->retry_level++; /* the same changes again: smaller batches */
	s->retry_n++;
	if (q->count <= 1)
		s->retry_ones++;
	char range[64];
	if (q->first_seq)
		snprintf(range, sizeof(range), "changes %llu..%llu",
		         (unsigned long long)q->first_seq, (unsigned long long)q->last_seq);
	else
		snprintf(range, sizeof(range), "a batch of no change (uptoSeq %llu)",
		         (unsigned long long)q->upto_seq);
	ags_event ev = {.type = AGS_EV_SYNC_FAILED, .error = why};
	ags_sync_emit(s, &ev);
	if (s->retry_ones >= REFUSALS_MAX) {
		*code = AGS_APP_INTERNAL_ERROR;
		snprintf(reason, cap, "peer refused %s %u times: %s", range, s->retry_ones, why);
		return AGS_ERR_PROTO;
	}
	ags_backoff_cfg bc = s->h->retry;
	if (!bc.base_delay_ms) {
		bc.base_delay_ms = 1000;
		bc.max_delay_ms = 30000;
		bc.multiplier = 2.0;
	}
	if (!bc.max_attempts)
		bc.max_attempts = UINT32_MAX;
	uint32_t d = ags_backoff_delay_ms(&bc, s->retry_n, (uint32_t)(q->request_id * 2654435761u));
	ags_sync_log(s, AGS_LOG_WARN,
	             "%s refused %s (batch %llu) whole: %s; sending again from %llu in %u ms",
	             s->peer_id, range, (unsigned long long)q->request_id, why,
	             (unsigned long long)s->st.acked_seq, d);
	ags_sync_rewind(s, now, (uint64_t)d * 1000);
	return 0;
}

static int on_ack(ags_sync *s, const uint8_t *payload, size_t len, uint64_t now, uint64_t *code,
                  char *reason, size_t cap)
{
	if (!s->hello_recv) {
		*code = AGS_APP_BAD_HELLO;
		snprintf(reason, cap, "ACK before HELLO");
		return AGS_ERR_PROTO;
	}
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
		/* Named before the free, which empties m. */
		*code = AGS_APP_PROTOCOL_ERROR;
		snprintf(reason, cap, "ACK for unknown batch %llu",
		         (unsigned long long)m.request_id);
		ags_wire_ack_free(&m);
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
	if (q->gen != s->send_gen) {
		/* Sent before we rewound after a refusal: its changes go again, so its
		 * answer moves nothing (neither the cursor nor the counters). */
		ags_sync_inflight_clear(q);
		free(q);
		ags_wire_ack_free(&m);
		ags_sync_pump(s, now);
		return 0;
	}
	if (m.retry) {
		rv = on_refusal(s, q, &m, now, code, reason, cap);
		ags_sync_inflight_clear(q);
		free(q);
		ags_wire_ack_free(&m);
		if (rv == 0)
			ags_sync_pump(s, now);
		return rv;
	}
	if (q->upto_seq > s->st.acked_seq)
		s->st.acked_seq = q->upto_seq;
	if (s->retry_n && s->st.acked_seq > s->retry_floor) {
		/* The cursor moved past the refused changes: back to full batches. */
		s->retry_n = s->retry_level = s->retry_ones = 0;
	}
	size_t n_resent = 0;
	for (size_t i = 0; i < m.n_errors; i++) {
		int rr = ags_sync_delta_refused(s, q, m.errors[i].pattern_id, m.errors[i].code);
		if (rr != 0) {
			n_resent++; /* it goes again whole: not a failure */
			continue;
		}
		/* Refused for good: the peer will refuse those bytes every time. Seed 000's
		 * sync:failed names the pattern; sync:rejected counts it (both ways). */
		ags_event fev = {.type = AGS_EV_SYNC_FAILED,
		                 .pattern_id = m.errors[i].pattern_id,
		                 .error = m.errors[i].error};
		ags_sync_emit(s, &fev);
		s->st.rejected++;
		ags_event ev = {.type = AGS_EV_SYNC_REJECTED,
		                .pattern_id = m.errors[i].pattern_id,
		                .source_id = s->h->node_id,
		                .error = m.errors[i].error,
		                .code = m.errors[i].code};
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
	if ((m.success || (m.n_errors > 0 && n_resent == m.n_errors)) && q->count == 0) {
		/* A cursor-only batch: no pattern was synced, so no sync is counted
		 * (the cursor it carried is in acked_seq). */
		s->st.cursor_batches_acked++;
	} else if (m.success || (m.n_errors > 0 && n_resent == m.n_errors)) {
		s->st.batches_acked++;
		s->st.patterns_acked += q->count;
		s->st.latency_sum_ms += latency;
		ags_event ev = {.type = AGS_EV_SYNC_COMPLETED,
		                .pattern_count = q->count,
		                .latency_ms = latency};
		ags_sync_emit(s, &ev);
	} else {
		/* Delivered, except the entries refused for good (counted above). */
		s->st.batches_failed++;
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
		case AGS_FRAME_AE_TREE:
		case AGS_FRAME_AE_IDS:
			if (s->hello_recv && ags_sync_ae_enabled(s)) {
				rv = f.type == AGS_FRAME_AE_TREE
				         ? ags_sync_on_ae_tree(s, f.payload, f.len, now_us,
				                               close_code, reason, cap)
				         : ags_sync_on_ae_ids(s, f.payload, f.len, now_us,
				                              close_code, reason, cap);
				break;
			}
			*close_code = AGS_APP_UNKNOWN_FRAME;
			snprintf(reason, cap,
			         "unexpected %s frame: anti-entropy was not agreed in HELLO",
			         ags_frame_type_name(f.type));
			rv = AGS_ERR_PROTO;
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
