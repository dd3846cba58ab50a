/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store's writes (store_int.h): the apply rule (version, timestamp,
 * checksum; vector clocks and conflicts), batches in one transaction, groups
 * of batches, key/value state written with them, delta bases. See
 * docs/ARCHITECTURE.md, section "Store".
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <sqlite3.h>

#include "agentsync/agentsync.h"
#include "delta.h"
#include "error.h"
#include "pattern.h"
#include "store.h"
#include "store_ckpt.h"
#include "vclock.h"
#include "store_int.h"

/* ------------------------------------------------------------------------ */
/* Apply                                                                    */
/* ------------------------------------------------------------------------ */

void ags_store_head_clear(struct ags_store_row_head *h)
{
	free(h->origin);
	free(h->vc);
	h->origin = h->vc = NULL;
}

/*
 * The rule of ags_pattern_compare(), on a stored row (b) and a change (a):
 * higher version; then, unless the checksums are equal (same change), later
 * timestamp; then greater checksum text.
 */
static int compare_with_row(const ags_pattern *a, const struct ags_store_row_head *b)
{
	int64_t va = ags_pattern_version(a);
	if (va != b->version)
		return va > b->version ? 1 : -1;
	const char *ca = ags_pattern_checksum(a);
	int c = strcmp(ca, b->checksum);
	if (c == 0)
		return 0;
	int64_t ta = ags_pattern_timestamp(a);
	if (ta != b->ts)
		return ta > b->ts ? 1 : -1;
	return c > 0 ? 1 : -1;
}

/* Binds the row of change p (sequence seq, state st, clock vc) to ST_INSERT or ST_REPLACE. */
static void bind_row(sqlite3_stmt *q, const ags_pattern *p, uint64_t seq, int st,
                     const ags_change_meta *m, const char *vc)
{
	int64_t exp = st == AGS_RECORD_TOMBSTONE ? 0 : ags_pattern_expires_at(p);
	sqlite3_bind_int64(q, 1, (int64_t)seq);
	sqlite3_bind_text(q, 2, ags_pattern_id(p), -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 3, ags_pattern_version(p));
	sqlite3_bind_int64(q, 4, ags_pattern_timestamp(p));
	sqlite3_bind_text(q, 5, ags_pattern_checksum(p), -1, SQLITE_STATIC);
	sqlite3_bind_int(q, 6, st);
	if (exp)
		sqlite3_bind_int64(q, 7, exp);
	else
		sqlite3_bind_null(q, 7);
	if (m && m->origin)
		sqlite3_bind_text(q, 8, m->origin, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(q, 8);
	if (m && m->scope)
		sqlite3_bind_text(q, 9, m->scope, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(q, 9);
	if (st == AGS_RECORD_LIVE) {
		size_t blen = 0;
		const char *body = ags_pattern_json(p, &blen);
		sqlite3_bind_text64(q, 10, body, blen, SQLITE_STATIC, SQLITE_UTF8);
		if (ags_pattern_priority(p))
			sqlite3_bind_int(q, 13, ags_pattern_priority(p));
		else
			sqlite3_bind_null(q, 13);
	} else {
		sqlite3_bind_null(q, 13);
		/* A tombstone is rebuilt from id, version and timestamp; an expired
		 * record keeps no content. */
		sqlite3_bind_null(q, 10);
	}
	if (vc)
		sqlite3_bind_text(q, 12, vc, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(q, 12);
}

static char *col_dup(sqlite3_stmt *q, int i)
{
	const char *t = (const char *)sqlite3_column_text(q, i);
	return t ? strdup(t) : NULL;
}

/*
 * Reads what the store holds for id into *h (origin and vc malloc'd: ags_store_head_clear);
 * returns 1 found, 0 not, or a negative SQLite code.
 */
int ags_store_read_head(ags_store *s, const char *id, struct ags_store_row_head *h)
{
	sqlite3_stmt *q = s->st[ST_HEAD];
	sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q), found = 0;
	if (rc == SQLITE_ROW) {
		h->seq = sqlite3_column_int64(q, 0);
		h->version = sqlite3_column_int64(q, 1);
		h->ts = sqlite3_column_int64(q, 2);
		const char *cs = (const char *)sqlite3_column_text(q, 3);
		snprintf(h->checksum, sizeof(h->checksum), "%s", cs ? cs : "");
		h->st = sqlite3_column_int(q, 4);
		h->expires_at = sqlite3_column_int64(q, 5);
		h->origin = col_dup(q, 6);
		h->vc = col_dup(q, 7);
		found = 1;
		if ((sqlite3_column_type(q, 6) != SQLITE_NULL && !h->origin) ||
		    (sqlite3_column_type(q, 7) != SQLITE_NULL && !h->vc)) {
			ags_store_head_clear(h);
			found = -SQLITE_NOMEM;
		}
	} else if (rc != SQLITE_DONE) {
		sqlite3_reset(q);
		return -rc;
	}
	sqlite3_reset(q);
	return found;
}

/* The state a change is stored in, at time `now`. */
static int change_state(const ags_pattern *p, int64_t now)
{
	if (ags_pattern_is_tombstone(p))
		return AGS_RECORD_TOMBSTONE;
	int64_t exp = ags_pattern_expires_at(p);
	/* Every node would expire it: store the marker directly, so all converge. */
	return exp && exp <= now ? AGS_RECORD_EXPIRED : AGS_RECORD_LIVE;
}

/* The outcome of a change against what the store holds for its id. */
static int decide(const ags_pattern *p, const struct ags_store_row_head *h)
{
	int c = compare_with_row(p, h);
	if (ags_pattern_version(p) != h->version)
		return c > 0 ? AGS_APPLY_UPDATED : AGS_APPLY_STALE;
	if (h->st == AGS_RECORD_EXPIRED)
		return AGS_APPLY_STALE; /* an expired record never comes back */
	return c == 0  ? AGS_APPLY_DUPLICATE
	       : c > 0 ? AGS_APPLY_CONFLICT_WON
	               : AGS_APPLY_CONFLICT_LOST;
}

/*
 * The record clock a change is stored with: the clock it came with, or for a
 * local write the stored record's clock with the writer's entry set to its
 * tick (`stored_vc` may be NULL). *out is malloc'd, or NULL for none.
 * Returns 0 or AGS_ERR_NOMEM (a stored clock that does not parse is replaced).
 */
static int effective_vc(const ags_change_clock *m, const char *stored_vc, char **out)
{
	*out = NULL;
	if (!m || (!m->vc && !m->writer))
		return 0;
	if (m->vc) {
		*out = strdup(m->vc);
		return *out ? 0 : AGS_ERR_NOMEM;
	}
	ags_vclock *v = NULL;
	int r = stored_vc ? ags_vclock_from_json(stored_vc, strlen(stored_vc), &v, NULL) : 1;
	if (r == AGS_ERR_NOMEM)
		return r;
	if (r && (r = ags_vclock_new(&v)))
		return r;
	uint64_t have = 0;
	ags_vclock_get(v, m->writer, &have);
	if (have < m->tick && ags_vclock_set(v, m->writer, m->tick) != 0) {
		/* The record clock is full (AGS_VCLOCK_MAX writers): start it afresh. */
		ags_vclock_del(v);
		if ((r = ags_vclock_new(&v)) || (r = ags_vclock_set(v, m->writer, m->tick))) {
			ags_vclock_del(v);
			return r == AGS_ERR_NOMEM ? r : 0;
		}
	}
	r = ags_vclock_to_json(v, out, NULL);
	ags_vclock_del(v);
	return r;
}

/* Whether two record clocks (JSON) are concurrent; 0 when either is absent or unreadable. */
static int clocks_concurrent(const char *a, const char *b)
{
	if (!a || !b)
		return 0;
	ags_vclock *x = NULL, *y = NULL;
	int c = 0;
	if (ags_vclock_from_json(a, strlen(a), &x, NULL) == 0 &&
	    ags_vclock_from_json(b, strlen(b), &y, NULL) == 0)
		c = ags_vclock_compare(x, y) == AGS_VC_CONCURRENT;
	ags_vclock_del(x);
	ags_vclock_del(y);
	return c;
}

/*
 * Keeps the loser of a conflict between change p (clock vc) and the stored
 * row h, before the winner is written. Returns a SQLite code.
 */
static int record_conflict(ags_store *s, const ags_pattern *p, const ags_change_meta *m,
                           const char *vc, const struct ags_store_row_head *h, int incoming_won,
                           int64_t now, uint64_t *cseq)
{
	sqlite3_stmt *q;
	int rc;
	if (incoming_won) {
		q = s->st[ST_CONFLICT_STORED];
		sqlite3_bind_int64(q, 1, h->seq);
		sqlite3_bind_int64(q, 2, now);
		sqlite3_bind_int64(q, 3, ags_pattern_version(p));
		sqlite3_bind_text(q, 4, ags_pattern_checksum(p), -1, SQLITE_STATIC);
		if (m && m->origin)
			sqlite3_bind_text(q, 5, m->origin, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(q, 5);
	} else {
		q = s->st[ST_CONFLICT_INCOMING];
		sqlite3_bind_text(q, 1, ags_pattern_id(p), -1, SQLITE_STATIC);
		sqlite3_bind_int64(q, 2, now);
		sqlite3_bind_int64(q, 3, h->version);
		sqlite3_bind_text(q, 4, h->checksum, -1, SQLITE_STATIC);
		if (h->origin)
			sqlite3_bind_text(q, 5, h->origin, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(q, 5);
		sqlite3_bind_int64(q, 6, ags_pattern_version(p));
		sqlite3_bind_int64(q, 7, ags_pattern_timestamp(p));
		sqlite3_bind_text(q, 8, ags_pattern_checksum(p), -1, SQLITE_STATIC);
		if (m && m->origin)
			sqlite3_bind_text(q, 9, m->origin, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(q, 9);
		if (vc)
			sqlite3_bind_text(q, 10, vc, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(q, 10);
		int st = ags_pattern_is_tombstone(p) ? AGS_RECORD_TOMBSTONE : AGS_RECORD_LIVE;
		sqlite3_bind_int(q, 11, st);
		if (st == AGS_RECORD_LIVE) {
			size_t blen = 0;
			const char *body = ags_pattern_json(p, &blen);
			sqlite3_bind_text64(q, 12, body, blen, SQLITE_STATIC, SQLITE_UTF8);
		} else {
			sqlite3_bind_null(q, 12);
		}
	}
	rc = ags_store_step_done(q);
	sqlite3_clear_bindings(q);
	if (rc == SQLITE_OK)
		*cseq = (uint64_t)sqlite3_last_insert_rowid(s->db);
	return rc;
}

/*
 * Before the stored row h is replaced by change p (stored in state st): keeps
 * h as p's delta base when both are live and h is large, else forgets any
 * base of that id. Returns a SQLite code.
 */
static int keep_prev(ags_store *s, const ags_pattern *p, const struct ags_store_row_head *h, int st)
{
	sqlite3_stmt *q;
	if (st == AGS_RECORD_LIVE && h->st == AGS_RECORD_LIVE) {
		q = s->st[ST_PREV_SAVE];
		sqlite3_bind_int64(q, 1, h->seq);
		sqlite3_bind_int64(q, 2, AGS_DELTA_MIN_BYTES);
		int rc = ags_store_step_done(q);
		sqlite3_clear_bindings(q);
		if (rc != SQLITE_OK || sqlite3_changes(s->db) > 0)
			return rc;
	}
	q = s->st[ST_PREV_DEL];
	sqlite3_bind_text(q, 1, ags_pattern_id(p), -1, SQLITE_STATIC);
	int rc = ags_store_step_done(q);
	sqlite3_clear_bindings(q);
	return rc;
}

/* Applies one change inside the open transaction. Returns a SQLite code. */
static int apply_one(ags_store *s, const ags_pattern *p, const ags_change_meta *m,
                     const ags_change_clock *ck, int64_t now, ags_apply_result *r,
                     ags_apply_info *info)
{
	int st = change_state(p, now);
	uint64_t seq = s->seq + 1;
	r->outcome = AGS_APPLY_INSERTED;
	r->seq = 0;
	info->conflict = 0;
	info->conflict_seq = 0;
	struct ags_store_row_head h = {0};
	char *vc = NULL;
	if (effective_vc(ck, NULL, &vc))
		return SQLITE_NOMEM;
	/* Try the insert first (it does nothing for a known id): a new id then
	 * costs one statement, and only a known id pays for the lookup. */
	sqlite3_stmt *q = s->st[ST_INSERT];
	bind_row(q, p, seq, st, m, vc);
	int rc = ags_store_step_done(q);
	if (rc != SQLITE_OK)
		goto out;
	int found = sqlite3_changes(s->db) == 0;
	if (found) {
		int hr = ags_store_read_head(s, ags_pattern_id(p), &h);
		if (hr <= 0) {
			rc = hr < 0 ? -hr : SQLITE_CORRUPT; /* the insert saw the id */
			goto out;
		}
		if (ck && !ck->vc && ck->writer) {
			/* A local write: its clock follows the stored record's. */
			free(vc);
			if (effective_vc(ck, h.vc, &vc)) {
				rc = SQLITE_NOMEM;
				goto out_head;
			}
		}
		r->outcome = decide(p, &h);
		int won = r->outcome == AGS_APPLY_UPDATED || r->outcome == AGS_APPLY_CONFLICT_WON;
		if (h.st != AGS_RECORD_EXPIRED &&
		    (r->outcome == AGS_APPLY_CONFLICT_WON ||
		     r->outcome == AGS_APPLY_CONFLICT_LOST ||
		     (r->outcome != AGS_APPLY_DUPLICATE && clocks_concurrent(vc, h.vc)))) {
			info->conflict = 1;
			if ((rc = record_conflict(s, p, m, vc, &h, won, now, &info->conflict_seq)))
				goto out_head;
		}
		if (!won)
			goto out_head;
		if ((rc = keep_prev(s, p, &h, st)) != SQLITE_OK)
			goto out_head;
		q = s->st[ST_REPLACE];
		bind_row(q, p, seq, st, m, vc);
		sqlite3_bind_int64(q, 11, h.seq);
		if ((rc = ags_store_step_done(q)) != SQLITE_OK)
			goto out_head;
	}

	uint8_t t[32];
	if (found && h.st == AGS_RECORD_LIVE) {
		ags_store_digest_term(s, ags_pattern_id(p), h.version, h.checksum, t);
		ags_store_digest_sub(s->digest, t);
		s->live--;
	}
	if (st == AGS_RECORD_LIVE) {
		ags_store_digest_term(s, ags_pattern_id(p), ags_pattern_version(p),
		                      ags_pattern_checksum(p), t);
		ags_store_digest_add(s->digest, t);
		s->live++;
	}
	s->seq = seq;
	r->seq = seq;
out_head:
out:
	ags_store_head_clear(&h);
	free(vc);
	return rc;
}

/* Writes seq, digest and live count to the meta table (inside the transaction). */
static int put_meta(ags_store *s)
{
	sqlite3_stmt *q = s->st[ST_META_PUT];
	sqlite3_bind_int64(q, 1, (int64_t)s->seq);
	sqlite3_bind_blob(q, 2, s->digest, 32, SQLITE_STATIC);
	sqlite3_bind_int64(q, 3, (int64_t)s->live);
	int rc = ags_store_step_done(q);
	sqlite3_clear_bindings(q);
	return rc;
}

/* Writes (value != NULL) or deletes a state key; returns a SQLite code. */
static int put_state(ags_store *s, const char *key, const char *value)
{
	sqlite3_stmt *q = s->st[value ? ST_STATE_PUT : ST_STATE_DEL];
	sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
	if (value)
		sqlite3_bind_text(q, 2, value, -1, SQLITE_STATIC);
	int rc = ags_store_step_done(q);
	sqlite3_clear_bindings(q);
	return rc;
}

static int check_str(const char *v, size_t max)
{
	return !v || strnlen(v, max + 1) <= max;
}

static void snap_take(const ags_store *s, struct snapshot *sn)
{
	sn->seq = s->seq;
	sn->live = s->live;
	memcpy(sn->digest, s->digest, 32);
}

static void snap_restore(ags_store *s, const struct snapshot *sn)
{
	s->seq = sn->seq;
	s->live = sn->live;
	memcpy(s->digest, sn->digest, 32);
}

/* Ends a failed write transaction: keeps SQLite's message, rolls back, restores counters. */
static int abort_txn(ags_store *s, int rc, const struct snapshot *sn, ags_error *err)
{
	int r = ags_store_fail(s, rc, err);
	if (!sqlite3_get_autocommit(s->db))
		ags_store_step_done(s->st[ST_ROLLBACK]);
	snap_restore(s, sn);
	return r;
}

int ags_store_apply_batch_kv(ags_store *s, const ags_pattern *const *p, const ags_change_meta *meta,
                             const ags_change_clock *clocks, size_t n, const ags_store_kv *kv,
                             size_t n_kv, ags_apply_result *res, ags_apply_info *info,
                             ags_error *err)
{
	if (!s || (n && !p) || (n_kv && !kv))
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "store and changes are required");
	for (size_t i = 0; i < n; i++) {
		if (!p[i])
			return ags_error_set(err, AGS_ERR_INVALID, NULL, "change %zu is NULL", i);
		if (strlen(ags_pattern_id(p[i])) > AGS_PATTERN_ID_MAX)
			return ags_error_set(err, AGS_ERR_INVALID, "id", "change %zu: id too long",
			                     i);
		if (meta && (!check_str(meta[i].origin, AGS_STORE_META_MAX) ||
		             !check_str(meta[i].scope, AGS_STORE_META_MAX)))
			return ags_error_set(err, AGS_ERR_INVALID, NULL,
			                     "change %zu: origin or scope too long", i);
		if (clocks && (!check_str(clocks[i].writer, AGS_STORE_META_MAX) ||
		               !check_str(clocks[i].vc, AGS_STORE_STATE_MAX) ||
		               (clocks[i].writer && clocks[i].tick == 0)))
			return ags_error_set(
			    err, AGS_ERR_INVALID, NULL,
			    "change %zu: writer or vector clock too long, or tick 0", i);
	}
	for (size_t i = 0; i < n_kv; i++)
		if (!kv[i].key || !check_str(kv[i].value, AGS_STORE_STATE_MAX))
			return ags_error_set(err, AGS_ERR_INVALID, NULL,
			                     "state value without key, or too long");
	if (n == 0 && n_kv == 0)
		return 0;

	struct snapshot sn;
	snap_take(s, &sn);
	int64_t now = ags_now_ms();
	int rc = s->group ? SQLITE_OK : ags_store_step_done(s->st[ST_BEGIN]);
	if (rc != SQLITE_OK)
		return abort_txn(s, rc, &sn, err);
	for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
		ags_apply_result tmp;
		ags_apply_info itmp;
		rc = apply_one(s, p[i], meta ? &meta[i] : NULL, clocks ? &clocks[i] : NULL, now,
		               res ? &res[i] : &tmp, info ? &info[i] : &itmp);
	}
	if (rc == SQLITE_OK && s->seq != sn.seq)
		rc = put_meta(s);
	for (size_t i = 0; i < n_kv && rc == SQLITE_OK; i++)
		rc = put_state(s, kv[i].key, kv[i].value);
	if (rc == SQLITE_OK && !s->group)
		rc = ags_store_step_done(s->st[ST_COMMIT]);
	if (rc == SQLITE_OK && !s->group)
		__atomic_store_n(&s->committed, s->seq, __ATOMIC_RELEASE);
	if (rc != SQLITE_OK) {
		if (res)
			memset(res, 0, n * sizeof(*res));
		if (info)
			memset(info, 0, n * sizeof(*info));
		/* In a group, the rollback is ags_store_group_abort's. */
		return s->group ? ags_store_fail(s, rc, err) : abort_txn(s, rc, &sn, err);
	}
	return 0;
}

void ags_store_set_ckpt_limits(ags_store *s, const ags_ckpt_limits *lim)
{
	s->ckpt_lim = *lim;
}

uint64_t ags_store_ckpt_runs(const ags_store *s)
{
	struct ags_ckpt *c = __atomic_load_n(&s->ckpt, __ATOMIC_ACQUIRE);
	return c ? ags_ckpt_runs(c) : 0;
}

void ags_store_ckpt_defer(ags_store *s)
{
	struct ags_ckpt *c = s ? __atomic_load_n(&s->ckpt, __ATOMIC_ACQUIRE) : NULL;
	if (c)
		ags_ckpt_defer(c);
}

int ags_store_group_begin(ags_store *s, ags_error *err)
{
	if (!s || s->group)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "no store, or a group is open");
	int rc = ags_store_step_done(s->st[ST_BEGIN]);
	if (rc != SQLITE_OK)
		return ags_store_fail(s, rc, err);
	snap_take(s, &s->group_sn);
	s->group = 1;
	return 0;
}

int ags_store_group_commit(ags_store *s, ags_error *err)
{
	if (!s || !s->group)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "no group is open");
	s->group = 0;
	int rc = ags_store_step_done(s->st[ST_COMMIT]);
	if (rc != SQLITE_OK)
		return abort_txn(s, rc, &s->group_sn, err);
	__atomic_store_n(&s->committed, s->seq, __ATOMIC_RELEASE);
	return 0;
}

void ags_store_group_abort(ags_store *s)
{
	if (!s || !s->group)
		return;
	s->group = 0;
	if (!sqlite3_get_autocommit(s->db))
		ags_store_step_done(s->st[ST_ROLLBACK]);
	snap_restore(s, &s->group_sn);
}

int ags_store_apply_batch_ex(ags_store *s, const ags_pattern *const *p, const ags_change_meta *meta,
                             size_t n, const char *state_key, const char *state_value,
                             ags_apply_result *res, ags_error *err)
{
	if (state_value && !state_key)
		return ags_error_set(err, AGS_ERR_INVALID, NULL,
		                     "state value without key, or too long");
	ags_store_kv kv = {state_key, state_value};
	return ags_store_apply_batch_kv(s, p, meta, NULL, n, &kv, state_key ? 1 : 0, res, NULL,
	                                err);
}

AGS_EXPORT int ags_store_apply_batch(ags_store *s, const ags_pattern *const *p, size_t n,
                                     ags_apply_result *res, ags_error *err)
{
	return ags_store_apply_batch_ex(s, p, NULL, n, NULL, NULL, res, err);
}

AGS_EXPORT int ags_store_apply(ags_store *s, const ags_pattern *p, ags_apply_result *res,
                               ags_error *err)
{
	if (!p)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "change is NULL");
	return ags_store_apply_batch_ex(s, &p, NULL, 1, NULL, NULL, res, err);
}

/* ------------------------------------------------------------------------ */
/* Expiry                                                                   */
/* ------------------------------------------------------------------------ */

AGS_EXPORT int ags_store_sweep(ags_store *s, int64_t now_ms, uint64_t *purged)
{
	if (!s)
		return AGS_ERR_INVALID;
	struct snapshot sn;
	snap_take(s, &sn);
	uint64_t n = 0;
	int rc = ags_store_step_done(s->st[ST_BEGIN]);
	if (rc != SQLITE_OK)
		return abort_txn(s, rc, &sn, NULL);
	sqlite3_stmt *q = s->st[ST_SWEEP];
	sqlite3_bind_int64(q, 1, now_ms);
	/* With RETURNING, every row is updated by the first step; the rows then
	 * listed are the purged ones, whose digest terms we take out. */
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(q, 0);
		const char *cs = (const char *)sqlite3_column_text(q, 2);
		uint8_t t[32];
		ags_store_digest_term(s, id ? id : "", sqlite3_column_int64(q, 1), cs ? cs : "", t);
		ags_store_digest_sub(s->digest, t);
		s->live--;
		n++;
	}
	sqlite3_reset(q);
	rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
	if (rc == SQLITE_OK && n)
		rc = put_meta(s);
	if (rc == SQLITE_OK && n)
		rc = ags_store_step_done(
		    s->st[ST_PREV_SWEEP]); /* expired records keep no delta base */
	if (rc == SQLITE_OK)
		rc = ags_store_step_done(s->st[ST_COMMIT]);
	if (rc != SQLITE_OK)
		return abort_txn(s, rc, &sn, NULL);
	__atomic_store_n(&s->committed, s->seq, __ATOMIC_RELEASE);
	if (purged)
		*purged = n;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* State                                                                    */
/* ------------------------------------------------------------------------ */

AGS_EXPORT int ags_store_state_set(ags_store *s, const char *key, const char *value)
{
	if (!s || !key || !check_str(value, AGS_STORE_STATE_MAX))
		return AGS_ERR_INVALID;
	int rc = put_state(s, key, value);
	return rc == SQLITE_OK ? 0 : ags_store_fail(s, rc, NULL);
}

AGS_EXPORT int ags_store_state_get(ags_store *s, const char *key, char *buf, size_t cap)
{
	if (!s || !key || (!buf && cap))
		return AGS_ERR_INVALID;
	sqlite3_stmt *q = s->st[ST_STATE_GET];
	sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q), r = 0;
	if (rc == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(q, 0);
		size_t vl = (size_t)sqlite3_column_bytes(q, 0);
		if (vl + 1 > cap) {
			r = AGS_ERR_TOO_LARGE;
		} else {
			memcpy(buf, v ? v : "", vl);
			buf[vl] = '\0';
		}
	} else {
		r = rc == SQLITE_DONE ? AGS_ERR_NOT_FOUND : ags_store_fail(s, rc, NULL);
	}
	sqlite3_reset(q);
	return r;
}

int ags_store_relog(ags_store *s, const char *const *ids, size_t n, size_t *moved, ags_error *err)
{
	if (moved)
		*moved = 0;
	if (!s || (n && !ids))
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "no store or no ids");
	if (n == 0)
		return 0;
	sqlite3_stmt *q = NULL;
	int rc = sqlite3_prepare_v2(s->db,
	                            "UPDATE patterns SET seq = ?1, origin = NULL WHERE id = ?2"
	                            " AND (st = 1 OR (st = 0 AND (expires_at IS NULL OR"
	                            " expires_at > ?3)))",
	                            -1, &q, NULL);
	if (rc != SQLITE_OK)
		return ags_store_fail(s, rc, err);
	struct snapshot sn;
	snap_take(s, &sn);
	size_t m = 0;
	int64_t now = ags_now_ms();
	rc = ags_store_step_done(s->st[ST_BEGIN]);
	for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
		sqlite3_bind_int64(q, 1, (int64_t)(s->seq + 1));
		sqlite3_bind_text(q, 2, ids[i], -1, SQLITE_STATIC);
		sqlite3_bind_int64(q, 3, now);
		rc = ags_store_step_done(q);
		if (rc == SQLITE_OK && sqlite3_changes(s->db) > 0) {
			s->seq++;
			m++;
		}
	}
	sqlite3_finalize(q);
	if (rc == SQLITE_OK && m)
		rc = put_meta(s);
	if (rc == SQLITE_OK)
		rc = ags_store_step_done(s->st[ST_COMMIT]);
	if (rc != SQLITE_OK)
		return abort_txn(s, rc, &sn, err);
	__atomic_store_n(&s->committed, s->seq, __ATOMIC_RELEASE);
	if (moved)
		*moved = m;
	return 0;
}
