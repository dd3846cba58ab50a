/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Delta sync (docs/PROTOCOL.md, "Delta sync"): a new version of a large
 * pattern goes as a zstd delta against the version the peer acknowledged;
 * the receiver rebuilds and fully validates it, or refuses the entry with
 * AGS_ERR_NOT_FOUND, and the sender then resends the record whole. While a
 * refused delta waits, the receiver does not move its durable cursor past it,
 * so that a connection lost in between loses nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delta.h"
#include "error.h"
#include "pattern.h"
#include "store.h"
#include "sync.h"
#include "sync_int.h"

int ags_sync_delta_enabled(const ags_sync *s)
{
	return s->role == AGS_SYNC_ROLE_PEER && !s->h->no_delta;
}

void ags_sync_delta_free(ags_sync *s)
{
	for (size_t i = 0; i < s->n_resend; i++)
		free(s->resend[i].id);
	free(s->resend);
	s->resend = NULL;
	s->n_resend = 0;
	for (size_t i = 0; i < s->n_held; i++)
		free(s->held[i]);
	free(s->held);
	s->held = NULL;
	s->n_held = 0;
}

/* ---- sender ---- */

int ags_sync_delta_add(ags_sync *s, const struct ags_sync_pending *c, struct ags_sync_inflight *q)
{
	if (!s->peer_delta || s->delta_off || !ags_sync_delta_enabled(s) || !s->hello_recv ||
	    c->tombstone || c->len < AGS_DELTA_MIN_BYTES || c->len > AGS_DELTA_SIZE_MAX)
		return 0;
	int64_t bver = 0;
	char bsum[65];
	uint64_t bseq = 0;
	char *base = NULL, *b64 = NULL;
	size_t blen = 0, b64_len = 0;
	int rv = 0;
	pthread_mutex_lock(s->h->store_mu);
	int r = ags_store_prev_get(s->h->store, c->id, &bver, bsum, &bseq, &base, &blen);
	pthread_mutex_unlock(s->h->store_mu);
	/* The base must be a version the peer durably held: ours, up to its cursor. */
	if (r != 0 || bseq > s->st.acked_seq || bver >= c->version || bver < 1)
		goto out;
	if (ags_delta_make(base, blen, c->json, c->len, c->len / 2, &b64, &b64_len) != 0)
		goto out;
	struct ags_sync_delta_sent *d = realloc(q->deltas, (q->n_deltas + 1) * sizeof(*d));
	if (!d) {
		rv = AGS_ERR_NOMEM;
		goto out;
	}
	q->deltas = d;
	d = &q->deltas[q->n_deltas];
	d->id = strdup(c->id);
	if (!d->id) {
		rv = AGS_ERR_NOMEM;
		goto out;
	}
	d->version = c->version;
	d->no_relay = c->no_relay;
	size_t before = ags_batch_encoder_raw_len(s->enc);
	rv = ags_batch_encoder_add_delta(s->enc, d->id, c->version, bver, bsum, b64, b64_len,
	                                 c->len, c->no_relay, c->vc, c->vc_len);
	if (rv) {
		free(d->id);
		goto out;
	}
	size_t used = ags_batch_encoder_raw_len(s->enc) - before;
	q->n_deltas++;
	s->st.patterns_delta++;
	/* A put entry costs the JSON plus about 8 bytes of wrapping. */
	if (c->len + 8 > used)
		s->st.delta_bytes_saved += c->len + 8 - used;
	rv = 1;
out:
	free(base);
	free(b64);
	return rv;
}

/* Rewinds to where the peer's cursor surely stands and sends no more deltas. */
static void delta_give_up(ags_sync *s, uint64_t floor)
{
	ags_sync_log(s, AGS_LOG_WARN,
	             "too many refused deltas for %s: resending from %llu without deltas",
	             s->peer_id, (unsigned long long)floor);
	s->delta_off = 1;
	if (floor < s->sent_seq || s->chunk_pos < s->chunk_n) {
		s->sent_seq = floor < s->sent_seq ? floor : s->sent_seq;
		s->chunk_pos = s->chunk_n; /* the next chunk_load clears it */
	}
	if (floor < s->st.acked_seq)
		s->st.acked_seq = floor;
}

int ags_sync_delta_refused(ags_sync *s, struct ags_sync_inflight *q, const char *id, int code)
{
	if (code != AGS_ERR_NOT_FOUND || !id)
		return 0;
	for (size_t i = 0; i < q->n_deltas; i++) {
		struct ags_sync_delta_sent *d = &q->deltas[i];
		if (!d->id || strcmp(d->id, id) != 0)
			continue;
		for (size_t j = 0; j < s->n_resend; j++)
			if (strcmp(s->resend[j].id, id) == 0) {
				if (d->version > s->resend[j].version)
					s->resend[j].version = d->version;
				return 1;
			}
		if (s->n_resend >= AGS_SYNC_RESEND_MAX || s->delta_off) {
			/* Everything after the cursor the peer had then goes again. */
			delta_give_up(s, q->acked_at_send);
			return 1;
		}
		struct ags_sync_delta_sent *r =
		    realloc(s->resend, (s->n_resend + 1) * sizeof(*s->resend));
		if (!r) {
			delta_give_up(s, q->acked_at_send);
			return 1;
		}
		s->resend = r;
		s->resend[s->n_resend++] = *d;
		d->id = NULL; /* moved */
		ags_sync_log(s, AGS_LOG_DEBUG,
		             "%s does not hold the base of %s: resending it whole", s->peer_id, id);
		return 1;
	}
	return 0;
}

/*
 * Adds the current state of resend item r to the open batch. Returns 0 (added
 * or nothing to add: a newer change of the id is in the log anyway), or an
 * encoder error.
 */
static int resend_one(ags_sync *s, const struct ags_sync_delta_sent *r)
{
	ags_record_head h;
	char *vc = NULL;
	ags_pattern *p = NULL;
	pthread_mutex_lock(s->h->store_mu);
	int rv = ags_store_head_vc(s->h->store, r->id, &h, &vc);
	if (rv == 0 && h.state == AGS_RECORD_LIVE && h.version == r->version)
		rv = ags_store_get(s->h->store, r->id, &p);
	pthread_mutex_unlock(s->h->store_mu);
	if (rv == AGS_ERR_NOMEM)
		return rv;
	size_t vlen = vc ? strlen(vc) : 0;
	if (rv == 0 && p) {
		size_t len = 0;
		const char *json = ags_pattern_json(p, &len);
		rv = ags_batch_encoder_add_put_vc(s->enc, json, len, r->no_relay, vc, vlen);
	} else if (rv == 0 && h.state == AGS_RECORD_TOMBSTONE && h.version >= r->version) {
		rv = ags_batch_encoder_add_del_vc(s->enc, r->id, h.version, h.timestamp,
		                                  r->no_relay, vc, vlen);
	} else {
		rv = 0;
	}
	ags_pattern_del(p);
	free(vc);
	return rv;
}

int ags_sync_delta_resend(ags_sync *s, uint64_t now)
{
	if (!s->n_resend || !s->enc)
		return 0;
	struct ags_sync_inflight *q = calloc(1, sizeof(*q));
	if (!q)
		return AGS_ERR_NOMEM;
	ags_batch_encoder_begin(s->enc);
	size_t done = 0;
	for (; done < s->n_resend; done++) {
		int rv = resend_one(s, &s->resend[done]);
		if (rv == AGS_ERR_TOO_LARGE && ags_batch_encoder_count(s->enc) > 0)
			break; /* the rest in the next batch */
		if (rv == AGS_ERR_NOMEM) {
			free(q);
			return rv;
		}
		if (rv)
			ags_sync_log(s, AGS_LOG_ERROR, "%s cannot be resent to %s: %s",
			             s->resend[done].id, s->peer_id, ags_strerror(rv));
		else
			s->st.delta_resent++;
	}
	for (size_t i = 0; i < done; i++)
		free(s->resend[i].id);
	memmove(s->resend, s->resend + done, (s->n_resend - done) * sizeof(*s->resend));
	s->n_resend -= done;
	/* Whole records only, outside the log's order: it moves no cursor. */
	q->request_id = s->next_request++;
	q->upto_seq = 0;
	q->acked_at_send = s->st.acked_seq;
	int rv = ags_sync_batch_send(s, q, now);
	return rv ? rv : 1;
}

/* ---- receiver ---- */

int ags_sync_delta_rebuild(ags_sync *s, const ags_batch_entry *e, const ags_pattern_opts *po,
                           ags_pattern **out, ags_error *err)
{
	char id[AGS_PATTERN_ID_MAX + 1];
	snprintf(id, sizeof(id), "%.*s", (int)e->id_len, e->id);
	*out = NULL;
	ags_record_head h;
	ags_pattern *base = NULL;
	pthread_mutex_lock(s->h->store_mu);
	int rv = ags_store_head(s->h->store, id, &h);
	if (rv == 0 && h.state == AGS_RECORD_LIVE && h.version == e->base_version &&
	    strcmp(h.checksum, e->base_checksum) == 0)
		rv = ags_store_get(s->h->store, id, &base);
	pthread_mutex_unlock(s->h->store_mu);
	if (rv == AGS_ERR_NOMEM)
		return ags_error_set(err, rv, "x", "out of memory");
	if (!base)
		return ags_error_set(err, AGS_ERR_NOT_FOUND, "x.base", "delta base not held");
	size_t blen = 0;
	const char *bjson = ags_pattern_json(base, &blen);
	char *full = NULL;
	rv = ags_delta_apply(bjson, blen, e->delta, e->delta_len, e->size, &full);
	ags_pattern_del(base);
	if (rv == AGS_ERR_NOMEM)
		return ags_error_set(err, rv, "x", "out of memory");
	if (rv)
		return ags_error_set(err, AGS_ERR_NOT_FOUND, "x.delta",
		                     "delta does not apply to the base: %s", ags_strerror(rv));
	ags_pattern *p = NULL;
	ags_error pe;
	ags_error_clear(&pe);
	rv = ags_pattern_parse(full, e->size, po, &p, &pe);
	free(full);
	if (rv == AGS_ERR_NOMEM)
		return ags_error_set(err, rv, "x", "out of memory");
	if (rv)
		return ags_error_set(err, AGS_ERR_NOT_FOUND, "x.delta",
		                     "delta gives an invalid pattern: %s%s%s", pe.field,
		                     pe.field[0] ? ": " : "", pe.message);
	if (ags_pattern_is_tombstone(p) || ags_pattern_version(p) != e->version ||
	    strcmp(ags_pattern_id(p), id) != 0) {
		ags_pattern_del(p);
		return ags_error_set(err, AGS_ERR_NOT_FOUND, "x.delta",
		                     "delta gives another pattern than x.id at x.version");
	}
	*out = p;
	return 0;
}

static int held_find(const ags_sync *s, const char *id)
{
	for (size_t i = 0; i < s->n_held; i++)
		if (strcmp(s->held[i], id) == 0)
			return (int)i;
	return -1;
}

int ags_sync_delta_hold(ags_sync *s, const char *const *ok, size_t n_ok, const char *const *refused,
                        size_t n_ref, uint64_t batch_upto, uint64_t *upto)
{
	*upto = batch_upto;
	if (!s->n_held && !n_ref && !s->hold_all)
		return 1;
	for (size_t i = 0; i < n_ok && s->n_held; i++) {
		int k = held_find(s, ok[i]);
		if (k >= 0) {
			free(s->held[k]);
			s->held[k] = s->held[--s->n_held];
		}
	}
	for (size_t i = 0; i < n_ref; i++) {
		if (held_find(s, refused[i]) >= 0)
			continue;
		char *d = s->n_held < AGS_SYNC_RESEND_MAX ? strdup(refused[i]) : NULL;
		char **h = d ? realloc(s->held, (s->n_held + 1) * sizeof(*h)) : NULL;
		if (!h) {
			/* Too many, or no memory: never save the cursor again in this session. */
			free(d);
			s->hold_all = 1;
			continue;
		}
		s->held = h;
		s->held[s->n_held++] = d;
	}
	if (batch_upto > s->held_upto)
		s->held_upto = batch_upto;
	if (s->n_held || s->hold_all)
		return 0;
	/* Every refused delta came whole: everything up to the highest cursor is here. */
	*upto = s->held_upto;
	s->held_upto = 0;
	return 1;
}
