/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The receiver of the sync engine: a BATCH is checked, decoded and every
 * pattern validated on the session's thread (ags_sync_on_batch), applied in
 * one transaction with the peer's cursor and the merged clock
 * (ags_sync_job_apply, on whatever thread the host chooses), then answered
 * with an ACK on the session's thread again (ags_sync_job_finish). A host
 * with a submit function applies on its own thread, so that a peer's next
 * batch is validated while the last one is written; the jobs of one session
 * are applied and answered in the order they came.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "batch.h"
#include "error.h"
#include "pattern.h"
#include "store.h"
#include "sync.h"
#include "sync_int.h"
#include "wire.h"

/* Most patterns a batch may hold to be written without the applier. */
#define AGS_SYNC_INLINE_MAX 8

struct ags_sync_job {
	struct ags_sync_job *next; /* the host's queue */
	ags_sync *s;
	const ags_sync_host *h;
	uint64_t request_id;
	size_t n; /* entries received */
	/* Refused as a whole before anything was applied (decode failed). */
	int refused;
	int refuse_code;
	ags_error refuse; /* why (field and message) */
	/* What is applied. */
	size_t nv;
	ags_pattern **pats;
	ags_change_meta *meta;
	ags_change_clock *clocks;
	char **vcs;        /* n slots */
	ags_vclock *clock; /* the entries' clocks merged (with the host's), or NULL */
	char *clock_json;
	char cursor[80];
	int has_cursor;
	/* Entries refused one by one (allocated on the first). */
	size_t ne;
	ags_wire_ack_error *errs;
	char (*err_ids)[AGS_PATTERN_ID_MAX + 1];
	char (*err_msgs)[AGS_WIRE_TEXT_MAX];
	/* The outcome. */
	int rv;
	ags_error ae;
	uint64_t seq_before; /* the store's sequence before it (rows seq_before+1 .. seq are its) */
	uint64_t seq;
	ags_apply_result *res;
	ags_apply_info *info;
};

ags_sync_job *ags_sync_job_next(const ags_sync_job *j)
{
	return j->next;
}

void ags_sync_job_set_next(ags_sync_job *j, ags_sync_job *next)
{
	j->next = next;
}

static void job_free(ags_sync_job *j)
{
	for (size_t i = 0; j->pats && i < j->nv; i++)
		ags_pattern_del(j->pats[i]);
	free(j->pats);
	free(j->meta);
	free(j->clocks);
	for (size_t i = 0; j->vcs && i < j->n; i++)
		free(j->vcs[i]);
	free(j->vcs);
	ags_vclock_del(j->clock);
	free(j->clock_json);
	free(j->errs);
	free(j->err_ids);
	free(j->err_msgs);
	free(j->res);
	free(j->info);
	free(j);
}

static void send_ack(ags_sync *s, const ags_wire_ack *ack, const ags_wire_ack_error *errs, size_t n)
{
	ags_frame_buf fb;
	ags_frame_buf_init(&fb, 0);
	if (ags_wire_ack_encode(ack, errs, n, &fb, NULL) == 0)
		ags_sync_send_buf(s, &fb);
	else
		ags_frame_buf_free(&fb);
}

static void id_of(yyjson_val *v, char *buf, size_t cap)
{
	yyjson_val *id = yyjson_obj_get(v, "id");
	if (yyjson_is_str(id))
		snprintf(buf, cap, "%s", yyjson_get_str(id));
	else
		buf[0] = '\0';
}

/* The next slot for an entry refused on its own; SIZE_MAX when out of memory. */
static size_t entry_error(ags_sync_job *j)
{
	if (!j->errs) {
		size_t n = j->n ? j->n : 1;
		j->errs = calloc(n, sizeof(*j->errs));
		j->err_ids = malloc(n * sizeof(*j->err_ids));
		j->err_msgs = malloc(n * sizeof(*j->err_msgs));
		if (!j->errs || !j->err_ids || !j->err_msgs)
			return SIZE_MAX;
	}
	return j->ne++;
}

/*
 * Validates every entry of a decoded batch into j (on the session's thread:
 * delta bases and held ids are session state). Returns 0 or AGS_ERR_NOMEM.
 */
static int job_prepare(ags_sync *s, ags_sync_job *j, const ags_batch *b)
{
	size_t n = j->n;
	size_t cap = n ? n : 1;
	j->pats = calloc(cap, sizeof(*j->pats));
	j->meta = calloc(cap, sizeof(*j->meta));
	j->clocks = calloc(cap, sizeof(*j->clocks));
	j->vcs = calloc(cap, sizeof(*j->vcs));
	j->res = calloc(cap, sizeof(*j->res));
	j->info = calloc(cap, sizeof(*j->info));
	const char **refused = calloc(cap, sizeof(*refused)); /* deltas to get whole */
	const char **ok_ids = calloc(cap, sizeof(*ok_ids));
	size_t n_ref = 0;
	int rv = 0;
	if (!j->pats || !j->meta || !j->clocks || !j->vcs || !j->res || !j->info || !refused ||
	    !ok_ids) {
		rv = AGS_ERR_NOMEM;
		goto out;
	}
	ags_pattern_opts po = {.max_bytes = s->h->max_pattern};
	for (size_t i = 0; i < n; i++) {
		ags_batch_entry *e = &b->entries[i];
		ags_pattern *p = NULL;
		ags_error pe;
		ags_error_clear(&pe);
		int prv;
		/* The JSON path of the entry's member that the error's field is in. */
		char where[40];
		snprintf(where, sizeof(where), "entries[%zu].%s", i,
		         e->kind == AGS_BATCH_PUT   ? "p"
		         : e->kind == AGS_BATCH_DEL ? "d"
		                                    : "");
		if (e->kind == AGS_BATCH_BAD) {
			pe = *e->bad; /* its field is the whole path already */
			prv = pe.code;
			where[0] = '\0';
		} else if (e->kind == AGS_BATCH_PUT) {
			prv = ags_pattern_from_val(e->pattern, &po, &p, &pe);
		} else if (e->kind == AGS_BATCH_DELTA) {
			prv = ags_sync_delta_rebuild(s, e, &po, &p, &pe);
		} else {
			char id[AGS_PATTERN_ID_MAX + 1];
			snprintf(id, sizeof(id), "%.*s", (int)e->id_len, e->id);
			prv = ags_pattern_new_tombstone(id, e->version, e->timestamp, &p);
			if (prv)
				ags_error_set(&pe, prv, "", "invalid delete");
		}
		if (prv == 0 && e->vc &&
		    (prv = ags_sync_entry_vc(s, e->vc, &j->vcs[j->nv], &j->clock, &pe)) != 0) {
			ags_pattern_del(p);
			p = NULL;
			snprintf(where, sizeof(where), "entries[%zu].", i); /* pe.field is "vc" */
		}
		if (prv == AGS_ERR_NOMEM) {
			ags_pattern_del(p);
			rv = prv;
			goto out;
		}
		if (prv) {
			size_t k = entry_error(j);
			if (k == SIZE_MAX) {
				rv = AGS_ERR_NOMEM;
				goto out;
			}
			if (e->kind == AGS_BATCH_PUT)
				id_of(e->pattern, j->err_ids[k], sizeof(j->err_ids[k]));
			else
				snprintf(j->err_ids[k], sizeof(j->err_ids[k]), "%.*s",
				         (int)e->id_len, e->id ? e->id : "");
			/* entries[i].p + "." + the pattern's own path (docs/PROTOCOL.md, step 5).
			 */
			size_t wl = strlen(where);
			const char *dot = pe.field[0] && wl && where[wl - 1] != '.' ? "." : "";
			if (!pe.field[0] && wl && where[wl - 1] == '.')
				where[wl - 1] = '\0';
			snprintf(j->err_msgs[k], sizeof(j->err_msgs[k]), "%s%s%s: %s", where, dot,
			         pe.field, pe.message);
			j->errs[k].pattern_id = j->err_ids[k];
			j->errs[k].error = j->err_msgs[k];
			j->errs[k].code = prv;
			if (e->kind == AGS_BATCH_DELTA && prv == AGS_ERR_NOT_FOUND)
				refused[n_ref++] = j->err_ids[k];
			continue;
		}
		j->pats[j->nv] = p;
		j->meta[j->nv].origin = s->peer_id;
		j->meta[j->nv].scope = e->no_relay ? "" : NULL;
		j->clocks[j->nv].vc = j->vcs[j->nv];
		j->nv++;
	}
	for (size_t i = 0; i < j->nv; i++)
		ok_ids[i] = ags_pattern_id(j->pats[i]);
	/* While a refused delta waits to come whole, the cursor must not pass it. */
	uint64_t upto = 0;
	rv = ags_sync_delta_hold(s, ok_ids, j->nv, refused, n_ref, b->hdr.upto_seq, &upto);
	if (rv < 0)
		goto out;
	if (rv == 1 && upto) {
		/* With the peer's epoch: the sequence means that epoch's log (PROTOCOL.md). */
		snprintf(j->cursor, sizeof(j->cursor), "%s %llu%s%s", s->peer_store,
		         (unsigned long long)upto, s->peer_epoch[0] ? " " : "", s->peer_epoch);
		j->has_cursor = 1;
	}
	rv = 0;
out:
	free(refused);
	free(ok_ids);
	return rv;
}

/*
 * ags_sync_job_apply with store_mu held: the entries' clocks are merged with
 * `base` (the store's clock, or a group's copy of it), which then takes this
 * batch's in turn.
 */
static void job_apply_locked(ags_sync_job *j, ags_vclock *base)
{
	const ags_sync_host *h = j->h;
	j->seq_before = ags_store_seq(h->store);
	if (j->refused || j->rv) {
		/* Decided here, in apply order: no later batch of this session saves a
		 * cursor past the changes refused (docs/PROTOCOL.md, "Refusals"). */
		j->s->refused_whole = 1;
		j->seq = j->seq_before;
		return;
	}
	ags_store_kv kv[2];
	size_t n_kv = 0;
	if (j->has_cursor && !j->s->refused_whole)
		kv[n_kv++] = (ags_store_kv){j->s->cursor_key, j->cursor};
	ags_error_clear(&j->ae);
	if (j->clock && base) {
		/* Merged here, under the lock, so that what is saved also holds
		 * every batch applied since this one was read. */
		free(j->clock_json);
		j->clock_json = NULL;
		if (ags_vclock_merge(j->clock, base) == AGS_ERR_NOMEM ||
		    ags_vclock_to_json(j->clock, &j->clock_json, NULL)) {
			j->rv = ags_error_set(&j->ae, AGS_ERR_NOMEM, NULL, NULL);
			j->seq = j->seq_before;
			return;
		}
		kv[n_kv++] = (ags_store_kv){AGS_STORE_CLOCK_KEY, j->clock_json};
	}
	j->rv = ags_store_apply_batch_kv(h->store, (const ags_pattern *const *)j->pats, j->meta,
	                                 j->clocks, j->nv, kv, n_kv, j->res, j->info, &j->ae);
	j->seq = ags_store_seq(h->store);
	if (j->rv)
		j->s->refused_whole = 1;
	/* Out of memory here only leaves the in-memory clock behind the saved one. */
	if (j->rv == 0 && j->clock && base)
		(void)ags_vclock_merge(base, j->clock);
}

void ags_sync_job_apply(ags_sync_job *j)
{
	pthread_mutex_lock(j->h->store_mu);
	job_apply_locked(j, j->h->clock);
	pthread_mutex_unlock(j->h->store_mu);
}

/* Writes the list in one transaction; 0, or -1 when it was rolled back (nothing written). */
static int jobs_apply_group(ags_sync_job *first)
{
	const ags_sync_host *h = first->h;
	ags_vclock *gc = NULL;
	if (h->clock && !(gc = ags_vclock_dup(h->clock)))
		return -1;
	if (ags_store_group_begin(h->store, NULL)) {
		ags_vclock_del(gc);
		return -1;
	}
	int failed = 0;
	for (ags_sync_job *j = first; j && !failed; j = j->next) {
		job_apply_locked(j, gc); /* a refused one only marks the session */
		failed = !j->refused && j->rv != 0;
	}
	if (failed)
		ags_store_group_abort(h->store);
	else if (ags_store_group_commit(h->store, NULL))
		failed = 1;
	if (failed) {
		ags_vclock_del(gc);
		return -1;
	}
	ags_sync_clock_commit(h, gc);
	return 0;
}

void ags_sync_jobs_apply(ags_sync_job *first)
{
	if (!first)
		return;
	const ags_sync_host *h = first->h;
	int same = 1;
	for (ags_sync_job *j = first->next; j && same; j = j->next)
		same = j->h == h;
	if (first->next && same) {
		pthread_mutex_lock(h->store_mu);
		int rv = jobs_apply_group(first);
		pthread_mutex_unlock(h->store_mu);
		if (rv == 0)
			return;
	}
	/* One at a time: a batch that cannot be written fails alone. */
	for (ags_sync_job *j = first; j; j = j->next) {
		j->rv = 0;
		ags_sync_job_apply(j);
	}
}

/*
 * The rows a job wrote came from this session's peer, which its sender
 * leaves out: when the sender had everything before them, it moves past
 * them without reading them back from the log (the cursor batch that tells
 * the peer so waits, as in pump()).
 */
static void skip_own(ags_sync *s, const ags_sync_job *j, uint64_t now)
{
	if (j->seq <= j->seq_before || s->sent_seq != j->seq_before || s->chunk_pos < s->chunk_n ||
	    !s->hello_recv || s->early || s->cursor_owed || s->role != AGS_SYNC_ROLE_PEER)
		return;
	s->sent_seq = j->seq;
	if (!s->cursor_since)
		s->cursor_since = now ? now : 1;
}

void ags_sync_job_finish(ags_sync_job *j, uint64_t now_us)
{
	ags_sync *s = j->s;
	s->jobs--;
	if (s->dead) {
		/* The connection is gone: what was applied stays, the ACK has nowhere to go. */
		job_free(j);
		if (s->jobs == 0)
			ags_sync_release(s);
		return;
	}
	ags_wire_ack ack = {.request_id = j->request_id, .received_count = j->n, .seq = j->seq};
	if (j->refused || j->rv) {
		/* Nothing applied: one error for the whole batch, and the sender must send
		 * these changes again. */
		const ags_error *why = j->refused ? &j->refuse : &j->ae;
		char text[AGS_WIRE_TEXT_MAX];
		snprintf(text, sizeof(text), "%s%s%s", why->field, why->field[0] ? ": " : "",
		         why->message[0] ? why->message : ags_strerror(j->rv));
		ags_wire_ack_error e = {
		    .pattern_id = "", .error = text, .code = j->refused ? j->refuse_code : j->rv};
		ack.received_count = j->refused ? 0 : j->n;
		ack.retry = 1;
		if (j->refused)
			ags_sync_log(s, AGS_LOG_WARN, "batch %llu from %s refused: %s%s%s",
			             (unsigned long long)j->request_id, s->peer_id, j->refuse.field,
			             j->refuse.field[0] ? ": " : "", j->refuse.message);
		else
			ags_sync_log(s, AGS_LOG_ERROR, "applying batch from %s failed: %s",
			             s->peer_id, j->ae.message);
		send_ack(s, &ack, &e, 1);
		job_free(j);
		return;
	}
	uint32_t applied = 0;
	size_t n_conf = 0;
	const char *conflicts[AGS_WIRE_CONFLICTS_MAX];
	for (size_t i = 0; i < j->nv; i++) {
		int o = j->res[i].outcome;
		int won = o == AGS_APPLY_INSERTED || o == AGS_APPLY_UPDATED ||
		          o == AGS_APPLY_CONFLICT_WON;
		if (won) {
			applied++;
			ags_event ev = {.type = AGS_EV_PATTERN_RECEIVED,
			                .pattern = j->pats[i],
			                .pattern_id = ags_pattern_id(j->pats[i]),
			                .source_id = s->peer_id};
			ags_sync_emit(s, &ev);
		}
		if (j->info[i].conflict) {
			ags_event ev = {.type = AGS_EV_PATTERN_CONFLICT,
			                .pattern = j->pats[i],
			                .pattern_id = ags_pattern_id(j->pats[i]),
			                .source_id = s->peer_id,
			                .error =
			                    won ? "incoming version won" : "stored version won"};
			s->st.conflicts++;
			ags_sync_emit(s, &ev);
			if (n_conf < AGS_WIRE_CONFLICTS_MAX)
				conflicts[n_conf++] = ags_pattern_id(j->pats[i]);
		}
	}
	for (size_t i = 0; i < j->ne; i++) {
		if (j->errs[i].code == AGS_ERR_NOT_FOUND)
			continue; /* a delta we lack the base of: it comes again whole */
		/* Refused for good: the same bytes would be refused again. */
		s->st.rejected++;
		ags_event ev = {.type = AGS_EV_SYNC_REJECTED,
		                .pattern_id = j->errs[i].pattern_id,
		                .source_id = s->peer_id,
		                .error = j->errs[i].error,
		                .code = j->errs[i].code};
		ags_sync_emit(s, &ev);
	}
	s->st.patterns_applied += applied;
	s->st.patterns_received += j->n;
	ack.success = j->ne == 0;
	ack.applied = applied;
	ack.conflicts = conflicts;
	ack.n_conflicts = n_conf;
	send_ack(s, &ack, j->errs, j->ne);
	skip_own(s, j, now_us);
	if (applied && s->h->changed)
		s->h->changed(s->h->ud, s->sud);
	job_free(j);
}

/*
 * Hands a job to the host's applier, or applies and answers it at once: a
 * small batch with nothing of its session queued before it (live traffic,
 * where two thread hand-offs would cost more than the overlap saves) is
 * written right here if the store is free at once; a backlog's batches, and
 * any batch when a writer holds the store, go to the applier (the loop
 * thread never waits for another writer).
 */
static void job_run(ags_sync *s, ags_sync_job *j, uint64_t now)
{
	int async = s->h->submit && s->role == AGS_SYNC_ROLE_PEER;
	s->jobs++;
	if (!async) {
		ags_sync_job_apply(j);
		ags_sync_job_finish(j, now);
		return;
	}
	if (s->jobs == 1 && j->nv <= AGS_SYNC_INLINE_MAX &&
	    pthread_mutex_trylock(s->h->store_mu) == 0) {
		job_apply_locked(j, s->h->clock);
		pthread_mutex_unlock(s->h->store_mu);
		ags_sync_job_finish(j, now);
		return;
	}
	s->h->submit(s->h->ud, j);
}

int ags_sync_on_batch(ags_sync *s, const uint8_t *payload, size_t len, uint64_t now, uint64_t *code,
                      char *reason, size_t cap)
{
	if (!s->hello_recv) {
		*code = AGS_APP_BAD_HELLO;
		snprintf(reason, cap, "BATCH before HELLO");
		return AGS_ERR_PROTO;
	}
	if (len < 8) {
		*code = AGS_APP_PROTOCOL_ERROR;
		snprintf(reason, cap, "truncated BATCH");
		return AGS_ERR_PROTO;
	}
	s->st.wire_bytes_in += len + AGS_FRAME_HEADER_LEN;
	s->st.codec_bytes_in[len > 24 && payload[24] < AGS_SYNC_CODECS - 1 ? payload[24]
	                                                                   : AGS_SYNC_CODECS - 1] +=
	    len + AGS_FRAME_HEADER_LEN;
	ags_sync_job *j = calloc(1, sizeof(*j));
	if (!j) {
		*code = AGS_APP_INTERNAL_ERROR;
		snprintf(reason, cap, "%s", ags_strerror(AGS_ERR_NOMEM));
		return AGS_ERR_NOMEM;
	}
	j->s = s;
	j->h = s->h;
	ags_batch b;
	memset(&b, 0, sizeof(b));
	if (!s->dctx)
		s->dctx = ZSTD_createDCtx(); /* NULL is fine: the decoder then makes its own */
	ags_batch_limits lim = {
	    .max_raw = s->h->max_frame * 8, .max_count = AGS_SYNC_MAX_COUNT, .zstd_dctx = s->dctx};
	ags_error err;
	ags_error_clear(&err);
	int rv = ags_batch_decode(payload, len, &lim, &b, &err);
	if (rv) {
		/* The batch as a whole is refused: nothing applied, an error ACK. */
		for (int i = 0; i < 8; i++)
			j->request_id = j->request_id << 8 | payload[i];
		j->refused = 1;
		j->refuse_code = rv;
		j->refuse = err;
		ags_batch_free(&b);
		job_run(s, j, now);
		return 0;
	}
	j->request_id = b.hdr.request_id;
	j->n = b.n_entries;
	rv = job_prepare(s, j, &b);
	ags_batch_free(&b);
	if (rv) {
		job_free(j);
		*code = AGS_APP_INTERNAL_ERROR;
		snprintf(reason, cap, "%s", ags_strerror(rv));
		return rv;
	}
	job_run(s, j, now);
	return 0;
}
