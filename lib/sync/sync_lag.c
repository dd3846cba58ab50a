/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a peer should get of the log (sync.h): the one rule the sender
 * applies to every change (not the peer's own, its scope allows the peer,
 * the peer's HELLO filter passes it), and the lag it gives: how many of the
 * changes after the peer's acknowledged cursor it would be sent.
 */
#include <string.h>

#include "error.h"
#include "pattern.h"
#include "store.h"
#include "sync.h"

static int listed(const char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], s) == 0)
			return 1;
	return 0;
}

int ags_sync_pattern_wanted(const ags_sync_filter *f, const ags_pattern *p)
{
	if (ags_pattern_is_tombstone(p))
		return 1;
	if (f->n_types && !listed(f->types, f->n_types, ags_pattern_type(p)))
		return 0;
	if (f->n_tags) {
		size_t i;
		for (i = 0; i < f->n_tags; i++)
			if (ags_pattern_has_tag(p, f->tags[i]))
				break;
		if (i == f->n_tags)
			return 0;
	}
	return 1;
}

int ags_sync_row_wanted(const ags_sync_filter *f, const char *peer_id, const ags_change_row *r)
{
	if (r->origin && strcmp(r->origin, peer_id) == 0)
		return 0; /* it came from this peer */
	if (!ags_sync_scope_allows(r->scope, peer_id))
		return 0;
	if (r->tombstone || (!f->n_types && !f->n_tags))
		return 1;
	/* Only a filter needs the body parsed. */
	ags_pattern *p = NULL;
	int rv = ags_pattern_parse_trusted(r->body, r->body_len, &p);
	if (rv)
		return rv == AGS_ERR_NOMEM ? rv : 0;
	rv = ags_sync_pattern_wanted(f, p);
	ags_pattern_del(p);
	return rv;
}

struct backlog {
	const ags_sync_filter *f;
	const char *peer_id;
	uint64_t count;
	size_t seen;
};

static int count_row(void *ud, const ags_change_row *r)
{
	struct backlog *b = ud;
	b->seen++;
	int w = ags_sync_row_wanted(b->f, b->peer_id, r);
	if (w < 0)
		return w;
	b->count += (uint64_t)w;
	return 0;
}

#define BACKLOG_CHUNK 4096

int ags_sync_backlog(ags_store *store, uint64_t after_seq, const char *peer_id,
                     const ags_sync_filter *f, uint64_t *count)
{
	static const ags_sync_filter none;
	struct backlog b = {.f = f ? f : &none, .peer_id = peer_id, .count = 0};
	*count = 0;
	/* Without a filter no body needs a look: the store counts in SQL. */
	if (!b.f->n_types && !b.f->n_tags)
		return ags_store_rows_for_count(store, after_seq, peer_id, count);
	for (;;) {
		uint64_t upto = after_seq;
		b.seen = 0;
		int rv =
		    ags_store_rows(store, after_seq, BACKLOG_CHUNK, peer_id, count_row, &b, &upto);
		if (rv)
			return rv;
		if (b.seen < BACKLOG_CHUNK || upto <= after_seq)
			break;
		after_seq = upto;
	}
	*count = b.count;
	return 0;
}
