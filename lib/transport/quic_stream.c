/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Streams of a QUIC connection. ngtcp2 does not copy stream data, so each
 * write is a chunk that references the caller's buffer from the moment it
 * is queued until the peer acknowledged all of it; then its done callback
 * runs. Receive credit is returned only when the app consumes bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "quic_int.h"

ags_quic_stream *ags_quic_stream_find(ags_quic_conn *c, int64_t id)
{
	if (c->cache && c->cache->id == id)
		return c->cache;
	for (ags_quic_stream *s = c->streams; s; s = s->next) {
		if (s->id == id) {
			c->cache = s;
			return s;
		}
	}
	return NULL;
}

ags_quic_stream *ags_quic_stream_new(ags_quic_conn *c, int64_t id)
{
	ags_quic_stream *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->id = id;
	s->next = c->streams;
	if (c->streams)
		c->streams->prev = s;
	c->streams = s;
	ngtcp2_conn_set_stream_user_data(c->qc, id, s);
	return s;
}

void ags_quic_sendq_remove(ags_quic_conn *c, ags_quic_stream *s)
{
	if (!s->in_sendq)
		return;
	if (s->sprev)
		s->sprev->snext = s->snext;
	else
		c->sendq_head = s->snext;
	if (s->snext)
		s->snext->sprev = s->sprev;
	else
		c->sendq_tail = s->sprev;
	s->snext = s->sprev = NULL;
	s->in_sendq = 0;
}

void ags_quic_sendq_add(ags_quic_conn *c, ags_quic_stream *s)
{
	if (s->in_sendq)
		return;
	s->snext = NULL;
	s->sprev = c->sendq_tail;
	if (c->sendq_tail)
		c->sendq_tail->snext = s;
	else
		c->sendq_head = s;
	c->sendq_tail = s;
	s->in_sendq = 1;
}

/* Runs the done callbacks of a detached list of chunks and frees them. */
static void complete(ags_quic_chunk *list, int status)
{
	while (list) {
		ags_quic_chunk *ch = list;
		list = ch->next;
		if (ch->done)
			ch->done(ch->done_ud, status);
		free(ch);
	}
}

void ags_quic_stream_free(ags_quic_conn *c, ags_quic_stream *s, int status)
{
	ags_quic_sendq_remove(c, s);
	if (s->prev)
		s->prev->next = s->next;
	else
		c->streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
	if (c->cache == s)
		c->cache = NULL;
	if (c->qc && c->state == AGS_QC_ACTIVE)
		ngtcp2_conn_set_stream_user_data(c->qc, s->id, NULL);
	uint64_t pending = s->written - s->acked;
	c->unacked = c->unacked > pending ? c->unacked - pending : 0;
	/* Chunks fully acknowledged complete with 0, the rest with `status`. */
	ags_quic_chunk *ok = NULL, **okt = &ok;
	while (s->head && s->head->end <= s->acked && s->head != s->send) {
		ags_quic_chunk *ch = s->head;
		s->head = ch->next;
		ch->next = NULL;
		*okt = ch;
		okt = &ch->next;
	}
	ags_quic_chunk *rest = s->head;
	free(s);
	/* The app may write or close from these callbacks: s is gone by now. */
	complete(ok, 0);
	complete(rest, status);
	ags_quic_conn_maybe_writable(c);
}

size_t ags_quic_stream_pending(ags_quic_stream *s, ngtcp2_vec *v, size_t max, int *fin)
{
	size_t n = 0;
	ags_quic_chunk *ch = s->send;
	size_t off = s->send_off;
	for (; ch && n < max; ch = ch->next, off = 0) {
		if (ch->len > off) {
			v[n].base = (uint8_t *)ch->data + off;
			v[n].len = ch->len - off;
			n++;
		}
	}
	*fin = s->fin_queued && !s->fin_sent && !ch;
	return n;
}

void ags_quic_stream_advance(ags_quic_conn *c, ags_quic_stream *s, size_t n, int fin)
{
	while (n > 0 && s->send) {
		size_t avail = s->send->len - s->send_off;
		size_t take = n < avail ? n : avail;
		s->send_off += take;
		n -= take;
		if (s->send_off == s->send->len) {
			s->send = s->send->next;
			s->send_off = 0;
		}
	}
	/* Only a FIN-only chunk has no bytes; it is "given" once the FIN is. */
	if (fin) {
		s->fin_sent = 1;
		s->send = NULL;
		s->send_off = 0;
	}
	if (!s->send && (!s->fin_queued || s->fin_sent))
		ags_quic_sendq_remove(c, s);
}

void ags_quic_stream_drop_unsent(ags_quic_conn *c, ags_quic_stream *s)
{
	/* The chunks stay until the stream closes, then complete as closed. */
	s->send = NULL;
	s->send_off = 0;
	s->fin_queued = 1;
	s->fin_sent = 1;
	ags_quic_sendq_remove(c, s);
}

void ags_quic_stream_acked(ags_quic_conn *c, ags_quic_stream *s, uint64_t n)
{
	s->acked += n;
	c->unacked = c->unacked > n ? c->unacked - n : 0;
	ags_quic_chunk *done = NULL, **tail = &done;
	while (s->head && s->head->end <= s->acked && s->head != s->send) {
		ags_quic_chunk *ch = s->head;
		s->head = ch->next;
		ch->next = NULL;
		*tail = ch;
		tail = &ch->next;
	}
	if (!s->head)
		s->tail = NULL;
	complete(done, 0);
	ags_quic_conn_maybe_writable(c);
}

void ags_quic_conn_maybe_writable(ags_quic_conn *c)
{
	if (!c->want_writable || c->state != AGS_QC_ACTIVE || c->close_requested ||
	    c->closed_reported || c->unacked >= c->ep->cfg.max_unacked)
		return;
	c->want_writable = 0;
	if (c->ep->cbs.on_writable)
		c->ep->cbs.on_writable(c->ep->cbs.user_data, c);
}

/* Whether c accepts stream calls now. */
static int usable(const ags_quic_conn *c)
{
	return c->state == AGS_QC_ACTIVE && !c->close_requested && !c->closed_reported;
}

int ags_quic_stream_open(ags_quic_conn *c, int64_t *stream_id)
{
	if (!c || !stream_id)
		return AGS_ERR_INVALID;
	if (!usable(c))
		return AGS_ERR_CLOSED;
	int64_t id;
	int rv = ngtcp2_conn_open_bidi_stream(c->qc, &id, NULL);
	if (rv == NGTCP2_ERR_STREAM_ID_BLOCKED) {
		c->want_writable = 1;
		return AGS_ERR_AGAIN;
	}
	if (rv != 0)
		return AGS_ERR_QUIC;
	if (!ags_quic_stream_new(c, id)) {
		(void)ngtcp2_conn_shutdown_stream(c->qc, 0, id, 0);
		return AGS_ERR_NOMEM;
	}
	*stream_id = id;
	return 0;
}

int ags_quic_stream_write(ags_quic_conn *c, int64_t stream_id, const uint8_t *data, size_t len,
                          int fin, ags_quic_done_cb done, void *done_ud)
{
	if (!c || (len && !data) || (!len && !fin))
		return AGS_ERR_INVALID;
	if (!usable(c))
		return AGS_ERR_CLOSED;
	ags_quic_stream *s = ags_quic_stream_find(c, stream_id);
	if (!s || s->fin_queued)
		return AGS_ERR_INVALID;
	if (c->unacked >= c->ep->cfg.max_unacked) {
		c->want_writable = 1;
		return AGS_ERR_AGAIN;
	}
	ags_quic_chunk *ch = malloc(sizeof(*ch));
	if (!ch)
		return AGS_ERR_NOMEM;
	ch->next = NULL;
	ch->data = data;
	ch->len = len;
	ch->done = done;
	ch->done_ud = done_ud;
	s->written += len;
	ch->end = s->written;
	if (s->tail)
		s->tail->next = ch;
	else
		s->head = ch;
	s->tail = ch;
	if (!s->send) {
		s->send = ch;
		s->send_off = 0;
	}
	if (fin)
		s->fin_queued = 1;
	c->unacked += len;
	if (!s->blocked)
		ags_quic_sendq_add(c, s);
	ags_quic_ep_mark_dirty(c->ep, c);
	return 0;
}

void ags_quic_stream_consume(ags_quic_conn *c, int64_t stream_id, size_t n)
{
	if (!c || !n || c->state != AGS_QC_ACTIVE)
		return;
	(void)ngtcp2_conn_extend_max_stream_offset(c->qc, stream_id, n);
	ngtcp2_conn_extend_max_offset(c->qc, n);
	ags_quic_ep_mark_dirty(c->ep, c);
}

int ags_quic_stream_reset(ags_quic_conn *c, int64_t stream_id, uint64_t code)
{
	if (!c)
		return AGS_ERR_INVALID;
	if (!usable(c))
		return AGS_ERR_CLOSED;
	ags_quic_stream *s = ags_quic_stream_find(c, stream_id);
	if (!s)
		return AGS_ERR_INVALID;
	ags_quic_stream_drop_unsent(c, s);
	(void)ngtcp2_conn_shutdown_stream(c->qc, 0, stream_id, code);
	ags_quic_ep_mark_dirty(c->ep, c);
	return 0;
}
