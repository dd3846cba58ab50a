/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The hub protocol of a sync session (docs/PROTOCOL.md, "Federation hub"): PULL and
 * PULL_DONE, the store's vector clock, record clocks in batch entries, and
 * the conflicts a hub reports to an agent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "store.h"
#include "sync_int.h"
#include "wire.h"

void ags_sync_conflict_key(const ags_sync *s, char *buf, size_t cap)
{
	snprintf(buf, cap, "conflicts/%s", s->peer_id);
}

void ags_sync_pull_clear(struct ags_sync_pull_req *p)
{
	ags_vclock_del(p->clock);
	for (size_t i = 0; i < p->n_conflicts; i++)
		free(p->conflicts[i]);
	free(p->conflicts);
	memset(p, 0, sizeof(*p));
}

/* ---- clocks ---- */

int ags_sync_clock_load(ags_store *store, ags_vclock **out)
{
	size_t cap = 64 * 1024;
	for (;;) {
		char *buf = malloc(cap);
		if (!buf)
			return AGS_ERR_NOMEM;
		int rv = ags_store_state_get(store, AGS_STORE_CLOCK_KEY, buf, cap);
		if (rv == AGS_ERR_TOO_LARGE && cap < AGS_VCLOCK_JSON_MAX + 1) {
			free(buf);
			cap = AGS_VCLOCK_JSON_MAX + 1;
			continue;
		}
		if (rv == AGS_ERR_NOT_FOUND) {
			free(buf);
			return ags_vclock_new(out);
		}
		if (rv == 0)
			rv = ags_vclock_from_json(buf, strlen(buf), out, NULL);
		free(buf);
		return rv == AGS_ERR_JSON ? AGS_ERR_PROTO : rv;
	}
}

int ags_sync_clock_tick(const ags_sync_host *h, const char *writer, ags_vclock **next, char **json,
                        uint64_t *tick)
{
	if (!h->clock)
		return AGS_ERR_INVALID;
	ags_vclock *n = ags_vclock_dup(h->clock);
	if (!n)
		return AGS_ERR_NOMEM;
	int rv = ags_vclock_tick(n, writer);
	if (rv == 0)
		rv = ags_vclock_get(n, writer, tick);
	if (rv == 0)
		rv = ags_vclock_to_json(n, json, NULL);
	if (rv) {
		ags_vclock_del(n);
		return rv;
	}
	*next = n;
	return 0;
}

void ags_sync_clock_commit(const ags_sync_host *h, ags_vclock *next)
{
	/* Out of memory here only leaves the in-memory clock behind the saved one. */
	if (h->clock && next)
		(void)ags_vclock_merge(h->clock, next);
	ags_vclock_del(next);
}

int ags_sync_entry_vc(ags_sync *s, yyjson_val *vc, char **out, ags_vclock **acc, ags_error *err)
{
	*out = NULL;
	size_t n = yyjson_obj_size(vc);
	if (n == 0)
		return 0; /* {} is no clock */
	if (n > AGS_VCLOCK_MAX)
		return ags_error_set(err, AGS_ERR_PROTO, "vc", "bad vector clock: over %d entries",
		                     AGS_VCLOCK_MAX);
	/* Straight from the parsed batch: ags_vclock_from_arrays checks ids and order. */
	const char **agents = calloc(n, sizeof(*agents));
	uint64_t *counters = calloc(n, sizeof(*counters));
	ags_vclock *v = NULL;
	ags_error ve;
	ags_error_clear(&ve);
	int rv = agents && counters ? 0 : AGS_ERR_NOMEM;
	yyjson_obj_iter it;
	yyjson_val *k;
	yyjson_obj_iter_init(vc, &it);
	for (size_t i = 0; rv == 0 && (k = yyjson_obj_iter_next(&it)); i++) {
		yyjson_val *c = yyjson_obj_iter_get_val(k);
		agents[i] = yyjson_get_str(k);
		if (!yyjson_is_uint(c) || memchr(agents[i], '\0', yyjson_get_len(k)))
			rv = ags_error_set(
			    &ve, AGS_ERR_PROTO, NULL,
			    "entry %zu: a counter must be an integer from 0 to 2^64-1", i);
		else
			counters[i] = yyjson_get_uint(c);
	}
	if (rv == 0)
		rv = ags_vclock_from_arrays(agents, counters, n, &v, &ve);
	free(agents);
	free(counters);
	if (rv)
		return ags_error_set(err, rv == AGS_ERR_NOMEM ? rv : AGS_ERR_PROTO, "vc",
		                     "bad vector clock: %s%s%s", ve.field, ve.field[0] ? ": " : "",
		                     ve.message);
	rv = ags_vclock_to_json(v, out, NULL);
	if (rv == 0 && s->h->clock) {
		/* The batch's clocks only: the host's is merged in when the batch is
		 * applied, under the store lock (not taken here). */
		if (!*acc)
			rv = ags_vclock_new(acc);
		/* A store clock full of agents stops growing; record clocks still work. */
		if (rv == 0 && ags_vclock_merge(*acc, v) == AGS_ERR_NOMEM)
			rv = AGS_ERR_NOMEM;
	}
	ags_vclock_del(v);
	if (rv) {
		free(*out);
		*out = NULL;
		return ags_error_set(err, rv, "vc", "out of memory");
	}
	return 0;
}

/* The clock's entries as parallel arrays (pointing into v), for the wire codec. */
static int clock_arrays(const ags_vclock *v, const char ***agents, uint64_t **counters, size_t *n)
{
	*n = ags_vclock_count(v);
	*agents = calloc(*n ? *n : 1, sizeof(**agents));
	*counters = calloc(*n ? *n : 1, sizeof(**counters));
	if (!*agents || !*counters) {
		free(*agents);
		free(*counters);
		*agents = NULL; /* the callers free them too */
		*counters = NULL;
		return AGS_ERR_NOMEM;
	}
	for (size_t i = 0; i < *n; i++) {
		(*agents)[i] = ags_vclock_agent(v, i);
		(*counters)[i] = ags_vclock_value(v, i);
	}
	return 0;
}

/* ---- agent side ---- */

int ags_sync_pull(ags_sync *s)
{
	if (s->role != AGS_SYNC_ROLE_UPSTREAM || !s->hello_recv)
		return AGS_ERR_STATE;
	ags_wire_vclock m;
	memset(&m, 0, sizeof(m));
	char key[AGS_WIRE_NODE_MAX + 16], val[96] = "";
	ags_sync_conflict_key(s, key, sizeof(key));
	ags_frame_buf fb;
	ags_frame_buf_init(&fb, 0);
	int rv = 0;
	pthread_mutex_lock(s->h->store_mu);
	if (s->h->clock)
		rv = clock_arrays(s->h->clock, &m.agents, &m.counters, &m.n);
	char store[33];
	unsigned long long seq = 0;
	if (rv == 0 && ags_store_state_get(s->h->store, key, val, sizeof(val)) == 0 &&
	    sscanf(val, "%32s %llu", store, &seq) == 2 && strcmp(store, s->peer_store) == 0) {
		m.has_conflict_seq = 1;
		m.conflict_seq = seq;
	}
	if (rv == 0)
		rv = ags_wire_vclock_encode_ex(AGS_FRAME_PULL, &m, &fb, NULL);
	pthread_mutex_unlock(s->h->store_mu);
	free(m.agents);
	free(m.counters);
	if (rv) {
		ags_frame_buf_free(&fb);
		return rv == AGS_ERR_NOMEM ? rv : AGS_ERR_INTERNAL;
	}
	ags_sync_send_buf(s, &fb);
	return 0;
}

int ags_sync_on_pull_done(ags_sync *s, const uint8_t *payload, size_t len, uint64_t *code,
                          char *reason, size_t cap)
{
	ags_wire_vclock m;
	ags_error err;
	ags_error_clear(&err);
	int rv = ags_wire_vclock_decode(payload, len, &m, &err);
	ags_vclock *hub = NULL;
	if (rv == 0)
		rv = ags_vclock_from_arrays(m.agents, m.counters, m.n, &hub, &err);
	if (rv) {
		ags_wire_vclock_free(&m);
		*code = rv == AGS_ERR_NOMEM ? AGS_APP_INTERNAL_ERROR : AGS_APP_PROTOCOL_ERROR;
		snprintf(reason, cap, "bad PULL_DONE: %s%s%s", err.field, err.field[0] ? ": " : "",
		         err.message);
		return rv;
	}
	char key[AGS_WIRE_NODE_MAX + 16], val[96];
	ags_sync_conflict_key(s, key, sizeof(key));
	snprintf(val, sizeof(val), "%s %llu", s->peer_store, (unsigned long long)m.conflict_seq);
	ags_store_kv kv[2];
	size_t n_kv = 0;
	ags_vclock *next = NULL;
	char *json = NULL;
	pthread_mutex_lock(s->h->store_mu);
	if (s->h->clock && (next = ags_vclock_dup(s->h->clock)) != NULL) {
		(void)ags_vclock_merge(next, hub); /* a full clock keeps what it has */
		if (ags_vclock_to_json(next, &json, NULL) == 0)
			kv[n_kv++] = (ags_store_kv){AGS_STORE_CLOCK_KEY, json};
	}
	if (m.has_conflict_seq)
		kv[n_kv++] = (ags_store_kv){key, val};
	ags_error ae;
	ags_error_clear(&ae);
	rv = n_kv ? ags_store_apply_batch_kv(s->h->store, NULL, NULL, NULL, 0, kv, n_kv, NULL, NULL,
	                                     &ae)
	          : 0;
	if (rv == 0 && json) {
		ags_sync_clock_commit(s->h, next);
		next = NULL;
	}
	pthread_mutex_unlock(s->h->store_mu);
	ags_vclock_del(next);
	ags_vclock_del(hub);
	free(json);
	if (rv)
		ags_sync_log(s, AGS_LOG_ERROR, "saving the clock of %s failed: %s", s->peer_id,
		             ae.message);
	for (size_t i = 0; i < m.n_conflicts; i++) {
		ags_event ev = {.type = AGS_EV_PATTERN_CONFLICT,
		                .pattern_id = m.conflicts[i],
		                .source_id = s->peer_id,
		                .error = "the hub reports a conflict"};
		s->st.conflicts++;
		ags_sync_emit(s, &ev);
	}
	ags_sync_log(s, AGS_LOG_DEBUG, "PULL_DONE from %s: %zu clock entries, %zu conflicts",
	             s->peer_id, m.n, m.n_conflicts);
	ags_wire_vclock_free(&m);
	s->st.pulls_done++;
	if (s->h->pulled)
		s->h->pulled(s->h->ud, s->sud);
	return 0;
}

/* ---- hub side ---- */

struct conflict_ids {
	struct ags_sync_pull_req *r;
	size_t cap;
	uint64_t last;
};

static int collect_conflict(void *ud, const ags_conflict_info *c)
{
	struct conflict_ids *x = ud;
	struct ags_sync_pull_req *r = x->r;
	x->last = c->cseq;
	/* One id once, even when it conflicted several times. */
	for (size_t i = 0; i < r->n_conflicts; i++)
		if (strcmp(r->conflicts[i], c->id) == 0)
			return 0;
	if (r->n_conflicts == x->cap) {
		size_t cap = x->cap ? x->cap * 2 : 16;
		char **a = realloc(r->conflicts, cap * sizeof(*a));
		if (!a)
			return AGS_ERR_NOMEM;
		r->conflicts = a;
		x->cap = cap;
	}
	if (!(r->conflicts[r->n_conflicts] = strdup(c->id)))
		return AGS_ERR_NOMEM;
	r->n_conflicts++;
	return 0;
}

int ags_sync_on_pull(ags_sync *s, const uint8_t *payload, size_t len, uint64_t now, uint64_t *code,
                     char *reason, size_t cap)
{
	if (!s->hello_recv) {
		*code = AGS_APP_PROTOCOL_ERROR;
		snprintf(reason, cap, "PULL before HELLO");
		return AGS_ERR_PROTO;
	}
	ags_wire_vclock m;
	ags_error err;
	ags_error_clear(&err);
	int rv = ags_wire_vclock_decode(payload, len, &m, &err);
	if (rv) {
		*code = rv == AGS_ERR_NOMEM ? AGS_APP_INTERNAL_ERROR : AGS_APP_PROTOCOL_ERROR;
		snprintf(reason, cap, "bad PULL: %s%s%s", err.field, err.field[0] ? ": " : "",
		         err.message);
		return rv;
	}
	struct ags_sync_pull_req r;
	memset(&r, 0, sizeof(r));
	struct conflict_ids ci = {.r = &r};
	uint64_t after = m.has_conflict_seq ? m.conflict_seq : 0, max_cseq = 0;
	pthread_mutex_lock(s->h->store_mu);
	r.target = ags_store_seq(s->h->store);
	if (s->h->clock && !(r.clock = ags_vclock_dup(s->h->clock)))
		rv = AGS_ERR_NOMEM;
	if (rv == 0)
		rv = ags_store_conflicts(s->h->store, after, s->peer_id,
		                         AGS_SYNC_PULL_CONFLICTS_MAX, collect_conflict, &ci);
	if (rv == 0)
		rv = ags_store_conflict_count(s->h->store, NULL, &max_cseq);
	pthread_mutex_unlock(s->h->store_mu);
	size_t agent_entries = m.n;
	ags_wire_vclock_free(&m);
	if (rv) {
		ags_sync_pull_clear(&r);
		*code = AGS_APP_INTERNAL_ERROR;
		snprintf(reason, cap, "answering PULL failed: %s", ags_strerror(rv));
		return rv;
	}
	/* A full list goes up to its last conflict; otherwise the agent has seen them all. */
	r.conflict_seq = r.n_conflicts >= AGS_SYNC_PULL_CONFLICTS_MAX ? ci.last
	                 : max_cseq > after                           ? max_cseq
	                                                              : after;
	r.pending = 1;
	ags_sync_pull_clear(&s->pull);
	s->pull = r;
	ags_sync_log(s, AGS_LOG_DEBUG,
	             "PULL from %s (clock of %zu agents): sending up to seq %llu, then PULL_DONE",
	             s->peer_id, agent_entries, (unsigned long long)r.target);
	s->gate_open = 1;
	ags_sync_pump(s, now);
	return 0;
}

void ags_sync_pull_check(ags_sync *s)
{
	struct ags_sync_pull_req *r = &s->pull;
	if (!r->pending || s->chunk_pos < s->chunk_n)
		return;
	if (s->sent_seq < r->target) {
		/* Done too when nothing the log lists lies between (superseded, expired). */
		uint64_t next = 0;
		pthread_mutex_lock(s->h->store_mu);
		int nr = ags_store_next_seq(s->h->store, s->sent_seq, &next);
		pthread_mutex_unlock(s->h->store_mu);
		if (nr == 0 && next <= r->target)
			return;
		if (nr != 0 && nr != AGS_ERR_NOT_FOUND)
			return;
	}
	ags_wire_vclock m;
	memset(&m, 0, sizeof(m));
	int rv = r->clock ? clock_arrays(r->clock, &m.agents, &m.counters, &m.n) : 0;
	m.has_conflict_seq = 1;
	m.conflict_seq = r->conflict_seq;
	m.n_conflicts = r->n_conflicts;
	m.conflicts = (const char **)r->conflicts;
	ags_frame_buf fb;
	ags_frame_buf_init(&fb, 0);
	if (rv == 0)
		rv = ags_wire_vclock_encode_ex(AGS_FRAME_PULL_DONE, &m, &fb, NULL);
	free(m.agents);
	free(m.counters);
	if (rv) {
		ags_frame_buf_free(&fb);
		ags_sync_log(s, AGS_LOG_ERROR, "PULL_DONE to %s failed: %s", s->peer_id,
		             ags_strerror(rv));
		return; /* tried again at the next pump */
	}
	ags_sync_send_buf(s, &fb);
	s->st.pulls_done++;
	ags_sync_log(s, AGS_LOG_DEBUG, "PULL_DONE to %s at seq %llu (%zu conflicts)", s->peer_id,
	             (unsigned long long)s->sent_seq, r->n_conflicts);
	ags_sync_pull_clear(r);
}
