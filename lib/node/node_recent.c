/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The node's recent local writes, kept in memory for its senders: a live
 * write through the API wakes the loop, whose senders would otherwise read
 * back from the store the rows just committed (a read transaction and a WAL
 * page on their connection, about a tenth of a one-pattern round trip).
 *
 * Only what is certain is kept: rows of small API calls that inserted new
 * ids (the record clock is then the writer's entry alone), with contiguous
 * sequences. Anything else written (an update, a batch from a peer, a large
 * call) leaves a gap, and a sender whose range the rows do not cover
 * entirely reads the store as before.
 */
#include <stdlib.h>
#include <string.h>

#include "node_int.h"
#include "pattern.h"
#include "vclock.h"

static void row_free(struct ags_recent_row *r)
{
	free(r->mem);
	memset(r, 0, sizeof(*r));
}

void ags_node_recent_clear(struct ags_node *n)
{
	for (size_t i = 0; i < n->recent_n; i++)
		row_free(&n->recent[i]);
	n->recent_n = 0;
}

/* One row as the store wrote it for a new id (see effective_vc in lib/store/store_apply.c). */
static int row_make(struct ags_recent_row *r, const ags_pattern *p, uint64_t seq, const char *scope,
                    const char *vc)
{
	const char *id = ags_pattern_id(p);
	int tomb = ags_pattern_is_tombstone(p);
	size_t body_len = 0;
	const char *body = tomb ? NULL : ags_pattern_json(p, &body_len);
	size_t id_len = strlen(id), vc_len = strlen(vc), scope_len = scope ? strlen(scope) : 0;
	char *m = malloc(id_len + 1 + body_len + 1 + vc_len + 1 + (scope ? scope_len + 1 : 0));
	if (!m)
		return AGS_ERR_NOMEM;
	r->mem = m;
	memset(&r->row, 0, sizeof(r->row));
	r->row.seq = seq;
	r->row.id = memcpy(m, id, id_len + 1);
	m += id_len + 1;
	if (body) {
		memcpy(m, body, body_len);
		m[body_len] = '\0';
		r->row.body = m;
		r->row.body_len = body_len;
		m += body_len + 1;
	}
	r->row.vc = memcpy(m, vc, vc_len + 1);
	m += vc_len + 1;
	if (scope)
		r->row.scope = memcpy(m, scope, scope_len + 1);
	r->row.version = ags_pattern_version(p);
	r->row.timestamp = ags_pattern_timestamp(p);
	r->row.tombstone = tomb;
	r->row.priority = tomb ? 0 : ags_pattern_priority(p);
	return 0;
}

void ags_node_recent_add(struct ags_node *n, const ags_pattern *const *p, size_t cnt,
                         const char *scope, const ags_apply_result *res, uint64_t tick)
{
	pthread_mutex_lock(&n->recent_mu);
	int keep = res && cnt <= AGS_NODE_RECENT_CALL_MAX;
	for (size_t i = 0; keep && i < cnt; i++)
		keep = res[i].outcome == AGS_APPLY_INSERTED && !ags_pattern_expires_at(p[i]);
	char *vc = NULL;
	ags_vclock *v = NULL;
	if (keep && (ags_vclock_new(&v) || ags_vclock_set(v, n->node_id, tick) ||
	             ags_vclock_to_json(v, &vc, NULL)))
		keep = 0;
	ags_vclock_del(v);
	if (!keep) {
		/* What was written is not kept: the rows before it no longer reach the head. */
		ags_node_recent_clear(n);
		pthread_mutex_unlock(&n->recent_mu);
		free(vc);
		return;
	}
	for (size_t i = 0; i < cnt; i++) {
		struct ags_recent_row *last = n->recent_n ? &n->recent[n->recent_n - 1] : NULL;
		if (last && last->row.seq + 1 != res[i].seq)
			ags_node_recent_clear(n); /* a gap: someone else wrote in between */
		if (n->recent_n == AGS_NODE_RECENT_MAX) {
			row_free(&n->recent[0]);
			memmove(n->recent, n->recent + 1, (n->recent_n - 1) * sizeof(n->recent[0]));
			n->recent_n--;
		}
		if (row_make(&n->recent[n->recent_n], p[i], res[i].seq, scope, vc)) {
			ags_node_recent_clear(n);
			break;
		}
		n->recent_n++;
	}
	pthread_mutex_unlock(&n->recent_mu);
	free(vc);
}

int ags_node_recent_rows(void *ud, uint64_t after, uint64_t head, ags_row_cb cb, void *cb_ud)
{
	struct ags_node *n = ud;
	int rv = 0;
	pthread_mutex_lock(&n->recent_mu);
	if (n->recent_n && head > after && n->recent[0].row.seq <= after + 1 &&
	    n->recent[n->recent_n - 1].row.seq >= head) {
		rv = 1;
		for (size_t i = 0; i < n->recent_n && rv == 1; i++) {
			const ags_change_row *r = &n->recent[i].row;
			if (r->seq > after && r->seq <= head && cb(cb_ud, r) != 0)
				rv = -1;
		}
	}
	pthread_mutex_unlock(&n->recent_mu);
	return rv;
}
