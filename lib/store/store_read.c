/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store's reads (store_int.h): single records, queries, the change log
 * for the senders, expiry, key/value state, conflicts and delta bases.
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
/* Reading                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * Makes the pattern of a listed row (columns as ROW_COLS). Returns 0, or
 * AGS_ERR_NOMEM / AGS_ERR_STORE (a body we cannot read back).
 */
static int row_pattern(ags_store *s, sqlite3_stmt *q, ags_pattern **out)
{
	int st = sqlite3_column_int(q, 4);
	int r;
	if (st == AGS_RECORD_TOMBSTONE) {
		const char *id = (const char *)sqlite3_column_text(q, 1);
		r = ags_pattern_new_tombstone(id ? id : "", sqlite3_column_int64(q, 2),
		                              sqlite3_column_int64(q, 3), out);
	} else {
		const char *body = (const char *)sqlite3_column_text(q, 5);
		r = body ? ags_pattern_parse_trusted(body, (size_t)sqlite3_column_bytes(q, 5), out)
		         : AGS_ERR_PATTERN;
	}
	if (r == 0 || r == AGS_ERR_NOMEM)
		return r;
	snprintf(s->errmsg, sizeof(s->errmsg), "stored record at seq %lld is unreadable (%s)",
	         (long long)sqlite3_column_int64(q, 0), ags_strerror(r));
	return AGS_ERR_STORE;
}

AGS_EXPORT int ags_store_get(ags_store *s, const char *id, ags_pattern **out)
{
	if (!s || !id || !out)
		return AGS_ERR_INVALID;
	*out = NULL;
	sqlite3_stmt *q = s->st[ST_GET];
	sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, ags_now_ms());
	int rc = sqlite3_step(q), r;
	if (rc == SQLITE_ROW) {
		const char *body = (const char *)sqlite3_column_text(q, 1);
		r = body ? ags_pattern_parse_trusted(body, (size_t)sqlite3_column_bytes(q, 1), out)
		         : AGS_ERR_STORE;
		if (r && r != AGS_ERR_NOMEM) {
			snprintf(s->errmsg, sizeof(s->errmsg), "stored record %s is unreadable",
			         id);
			r = AGS_ERR_STORE;
		}
	} else if (rc == SQLITE_DONE) {
		r = AGS_ERR_NOT_FOUND;
	} else {
		r = ags_store_fail(s, rc, NULL);
	}
	sqlite3_reset(q);
	return r;
}

/* A listing's statement: the cached one, or a fresh one if a callback re-entered. */
static int take_stmt(ags_store *s, int which, sqlite3_stmt **out)
{
	if (!s->busy[which]) {
		s->busy[which] = 1;
		*out = s->st[which];
		return 0;
	}
	int rc = sqlite3_prepare_v2(s->db, ags_store_sql[which], -1, out, NULL);
	return rc == SQLITE_OK ? 0 : ags_store_fail(s, rc, NULL);
}

static void give_stmt(ags_store *s, int which, sqlite3_stmt *q)
{
	if (q == s->st[which]) {
		sqlite3_reset(q);
		sqlite3_clear_bindings(q);
		s->busy[which] = 0;
	} else {
		sqlite3_finalize(q);
	}
}

/* The caller's callback of a listing. */
struct emit {
	ags_pattern_cb cb;
	void *user;
};

/* Whether p passes the query's filters, checked exactly (SQL only narrows). */
static int query_match(const ags_query *f, const ags_pattern *p)
{
	return !f || ((!f->type || strcmp(f->type, ags_pattern_type(p)) == 0) &&
	              (!f->agent_id || strcmp(f->agent_id, ags_pattern_agent_id(p)) == 0) &&
	              (!f->tag || ags_pattern_has_tag(p, f->tag)));
}

/*
 * Steps a bound listing statement, making each row's pattern and emitting it,
 * at most `limit` (0: all). `filter` (or NULL) is checked on each pattern.
 */
static int run_listing(ags_store *s, sqlite3_stmt *q, size_t limit, const ags_query *filter,
                       const struct emit *e)
{
	size_t done = 0;
	int rc = SQLITE_DONE;
	while ((limit == 0 || done < limit) && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		ags_pattern *p = NULL;
		int r = row_pattern(s, q, &p);
		if (r)
			return r;
		if (!query_match(filter, p)) {
			ags_pattern_del(p);
			continue;
		}
		r = e->cb(e->user, p, (uint64_t)sqlite3_column_int64(q, 0));
		ags_pattern_del(p);
		if (r)
			return r;
		done++;
	}
	if (limit && done >= limit)
		return 0;
	return rc == SQLITE_DONE ? 0 : ags_store_fail(s, rc, NULL);
}

/*
 * Binds to parameter i the text that a body holding the JSON string `value`
 * after `prefix` must contain: prefix "value" as the canonical (compact)
 * serialisation writes it. Only for values that JSON writes verbatim (no
 * quote, backslash or control character); otherwise binds nothing and the
 * exact check alone decides. Returns 0 or AGS_ERR_NOMEM.
 */
static int bind_needle(sqlite3_stmt *q, int i, const char *prefix, const char *value)
{
	if (!value)
		return 0;
	for (const unsigned char *c = (const unsigned char *)value; *c; c++)
		if (*c < 0x20 || *c == '"' || *c == '\\')
			return 0;
	char *n = sqlite3_mprintf("%s\"%s\"", prefix, value);
	if (!n)
		return AGS_ERR_NOMEM;
	sqlite3_bind_text(q, i, n, -1, sqlite3_free);
	return 0;
}

AGS_EXPORT int ags_store_query(ags_store *s, const ags_query *q, ags_pattern_cb cb, void *user_data)
{
	if (!s || !cb)
		return AGS_ERR_INVALID;
	ags_query all = {0};
	if (!q)
		q = &all;
	sqlite3_stmt *st;
	int r = take_stmt(s, ST_QUERY, &st);
	if (r)
		return r;
	sqlite3_bind_int64(st, 1, ags_store_clamp_seq(q->after_seq));
	sqlite3_bind_int64(st, 2, ags_now_ms());
	/* Keys are sorted and the body compact, so "type":"x" is how a type x
	 * appears; the same text elsewhere in the body is weeded out by query_match. */
	if (!(r = bind_needle(st, 3, "\"type\":", q->type)) &&
	    !(r = bind_needle(st, 4, "\"agentId\":", q->agent_id)) &&
	    !(r = bind_needle(st, 5, "", q->tag))) {
		struct emit e = {.cb = cb, .user = user_data};
		r = run_listing(s, st, q->limit, q, &e);
	}
	give_stmt(s, ST_QUERY, st);
	return r;
}

/* Lists the change log after `after_seq` through `emit`. */
static int list_changes(ags_store *s, uint64_t after_seq, size_t limit, const struct emit *e)
{
	sqlite3_stmt *st;
	int r = take_stmt(s, ST_CHANGES, &st);
	if (r)
		return r;
	sqlite3_bind_int64(st, 1, ags_store_clamp_seq(after_seq));
	sqlite3_bind_int64(st, 2, ags_now_ms());
	r = run_listing(s, st, limit, NULL, e);
	give_stmt(s, ST_CHANGES, st);
	return r;
}

AGS_EXPORT int ags_store_changes(ags_store *s, uint64_t after_seq, size_t limit, ags_pattern_cb cb,
                                 void *user_data)
{
	if (!s || !cb)
		return AGS_ERR_INVALID;
	struct emit e = {.cb = cb, .user = user_data};
	return list_changes(s, after_seq, limit, &e);
}

int ags_store_rows(ags_store *s, uint64_t after_seq, size_t limit, const char *skip_origin,
                   ags_row_cb cb, void *user_data, uint64_t *upto)
{
	if (!s || !cb || !upto || limit == 0)
		return AGS_ERR_INVALID;
	*upto = after_seq;
	/* One read transaction: the rows and the head they are measured against
	 * come from the same snapshot (on a connection of its own, a writer on
	 * another one is never waited for). */
	int own_tx = sqlite3_get_autocommit(s->db);
	if (own_tx) {
		int rc = sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			return ags_store_fail(s, rc, NULL);
	}
	sqlite3_stmt *q;
	int r = take_stmt(s, ST_ROWS, &q);
	if (r)
		goto done;
	sqlite3_bind_int64(q, 1, ags_store_clamp_seq(after_seq));
	sqlite3_bind_int64(q, 2, ags_now_ms());
	if (skip_origin)
		sqlite3_bind_text(q, 3, skip_origin, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 4, limit > INT64_MAX ? INT64_MAX : (sqlite3_int64)limit);
	size_t n = 0;
	uint64_t last = after_seq;
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		ags_change_row row = {
		    .seq = (uint64_t)sqlite3_column_int64(q, 0),
		    .id = (const char *)sqlite3_column_text(q, 1),
		    .version = sqlite3_column_int64(q, 2),
		    .timestamp = sqlite3_column_int64(q, 3),
		    .tombstone = sqlite3_column_int(q, 4) == AGS_RECORD_TOMBSTONE,
		    .body = (const char *)sqlite3_column_text(q, 5),
		    .body_len = (size_t)sqlite3_column_bytes(q, 5),
		    .origin = (const char *)sqlite3_column_text(q, 6),
		    .scope = (const char *)sqlite3_column_text(q, 7),
		    .vc = (const char *)sqlite3_column_text(q, 8),
		    .priority = sqlite3_column_int(q, 9),
		};
		if (!row.id || (!row.tombstone && !row.body)) {
			snprintf(s->errmsg, sizeof(s->errmsg),
			         "stored record at seq %llu is unreadable",
			         (unsigned long long)row.seq);
			r = AGS_ERR_STORE;
			break;
		}
		last = row.seq;
		n++;
		if ((r = cb(user_data, &row)) != 0)
			break;
	}
	if (!r && rc != SQLITE_DONE && rc != SQLITE_ROW)
		r = ags_store_fail(s, rc, NULL);
	give_stmt(s, ST_ROWS, q);
	if (!r && n < limit) {
		/* Everything up to the head was seen, listed or not. */
		sqlite3_stmt *m = s->st[ST_META_SEQ];
		rc = sqlite3_step(m);
		if (rc == SQLITE_ROW)
			last = (uint64_t)sqlite3_column_int64(m, 0);
		else
			r = ags_store_fail(s, rc, NULL);
		sqlite3_reset(m);
	}
	if (!r || r > 0)
		*upto = last > after_seq ? last : after_seq;
done:
	if (own_tx)
		sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	return r;
}

int ags_store_rows_for_count(ags_store *s, uint64_t after_seq, const char *peer_id, uint64_t *count)
{
	if (!s || !peer_id || !count)
		return AGS_ERR_INVALID;
	sqlite3_stmt *q;
	int r = take_stmt(s, ST_ROWS_FOR, &q);
	if (r)
		return r;
	sqlite3_bind_int64(q, 1, ags_store_clamp_seq(after_seq));
	sqlite3_bind_int64(q, 2, ags_now_ms());
	sqlite3_bind_text(q, 3, peer_id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		*count = (uint64_t)sqlite3_column_int64(q, 0);
	else
		r = ags_store_fail(s, rc, NULL);
	give_stmt(s, ST_ROWS_FOR, q);
	return r;
}

int ags_store_next_seq(ags_store *s, uint64_t after_seq, uint64_t *out)
{
	if (!s || !out)
		return AGS_ERR_INVALID;
	sqlite3_stmt *q = s->st[ST_NEXT_SEQ];
	sqlite3_bind_int64(q, 1, ags_store_clamp_seq(after_seq));
	sqlite3_bind_int64(q, 2, ags_now_ms());
	int rc = sqlite3_step(q), r = 0;
	if (rc == SQLITE_ROW)
		*out = (uint64_t)sqlite3_column_int64(q, 0);
	else
		r = rc == SQLITE_DONE ? AGS_ERR_NOT_FOUND : ags_store_fail(s, rc, NULL);
	sqlite3_reset(q);
	return r;
}

int ags_store_head(ags_store *s, const char *id, ags_record_head *out)
{
	return ags_store_head_vc(s, id, out, NULL);
}

int ags_store_head_vc(ags_store *s, const char *id, ags_record_head *out, char **vc)
{
	if (!s || !id || !out)
		return AGS_ERR_INVALID;
	if (vc)
		*vc = NULL;
	struct ags_store_row_head h = {0};
	int found = ags_store_read_head(s, id, &h);
	if (found < 0)
		return found == -SQLITE_NOMEM ? AGS_ERR_NOMEM : ags_store_fail(s, -found, NULL);
	if (!found)
		return AGS_ERR_NOT_FOUND;
	out->seq = (uint64_t)h.seq;
	out->version = h.version;
	out->timestamp = h.ts;
	out->state = h.st;
	out->expires_at = h.expires_at;
	memcpy(out->checksum, h.checksum, sizeof(out->checksum));
	if (vc) {
		*vc = h.vc;
		h.vc = NULL;
	}
	ags_store_head_clear(&h);
	return 0;
}

AGS_EXPORT int ags_store_count(ags_store *s, uint64_t *out)
{
	if (!s || !out)
		return AGS_ERR_INVALID;
	/* The live count includes rows past expiresAt that no sweep has reached yet;
	 * take those out (the partial index makes this O(expiring rows)). */
	sqlite3_stmt *q = s->st[ST_EXPIRED_COUNT];
	sqlite3_bind_int64(q, 1, ags_now_ms());
	int rc = sqlite3_step(q), r = 0;
	if (rc == SQLITE_ROW) {
		uint64_t gone = (uint64_t)sqlite3_column_int64(q, 0);
		*out = gone < s->live ? s->live - gone : 0;
	} else {
		r = ags_store_fail(s, rc, NULL);
	}
	sqlite3_reset(q);
	return r;
}

AGS_EXPORT uint64_t ags_store_seq(const ags_store *s)
{
	return s ? s->seq : 0;
}

uint64_t ags_store_seq_committed(const ags_store *s)
{
	return s ? __atomic_load_n(&s->committed, __ATOMIC_ACQUIRE) : 0;
}

AGS_EXPORT void ags_store_digest(const ags_store *s, char out[65])
{
	if (!out)
		return;
	if (!s) {
		memset(out, '0', 64);
		out[64] = '\0';
		return;
	}
	ags_store_hex(s->digest, 32, out);
}

int ags_store_verify(ags_store *s, char digest[65], uint64_t *live)
{
	if (!s)
		return AGS_ERR_INVALID;
	sqlite3_stmt *q = NULL;
	int rc = sqlite3_prepare_v2(
	    s->db, "SELECT id, version, checksum FROM patterns WHERE st = 0", -1, &q, NULL);
	if (rc != SQLITE_OK)
		return ags_store_fail(s, rc, NULL);
	uint8_t acc[32] = {0}, t[32];
	uint64_t n = 0;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(q, 0);
		const char *cs = (const char *)sqlite3_column_text(q, 2);
		ags_store_digest_term(s, id ? id : "", sqlite3_column_int64(q, 1), cs ? cs : "", t);
		ags_store_digest_add(acc, t);
		n++;
	}
	int r = rc == SQLITE_DONE ? 0 : ags_store_fail(s, rc, NULL);
	sqlite3_finalize(q);
	if (r)
		return r;
	if (digest)
		ags_store_hex(acc, 32, digest);
	if (live)
		*live = n;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Conflicts                                                                */
/* ------------------------------------------------------------------------ */

int ags_store_conflicts(ags_store *s, uint64_t after_cseq, const char *involving, size_t limit,
                        ags_conflict_cb cb, void *user_data)
{
	if (!s || !cb)
		return AGS_ERR_INVALID;
	sqlite3_stmt *q;
	int r = take_stmt(s, ST_CONFLICTS, &q);
	if (r)
		return r;
	sqlite3_bind_int64(q, 1, ags_store_clamp_seq(after_cseq));
	if (involving)
		sqlite3_bind_text(q, 2, involving, -1, SQLITE_STATIC);
	size_t done = 0;
	int rc = SQLITE_DONE;
	while ((limit == 0 || done < limit) && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(q, 1);
		ags_pattern *loser = NULL;
		int st = sqlite3_column_int(q, 11);
		if (st == AGS_RECORD_TOMBSTONE) {
			r = ags_pattern_new_tombstone(id ? id : "", sqlite3_column_int64(q, 6),
			                              sqlite3_column_int64(q, 7), &loser);
		} else {
			const char *body = (const char *)sqlite3_column_text(q, 12);
			r = body ? ags_pattern_parse_trusted(
			               body, (size_t)sqlite3_column_bytes(q, 12), &loser)
			         : 0; /* an expired loser keeps no content */
		}
		if (r)
			break;
		ags_conflict_info c = {
		    .cseq = (uint64_t)sqlite3_column_int64(q, 0),
		    .id = id ? id : "",
		    .at_ms = sqlite3_column_int64(q, 2),
		    .winner_version = sqlite3_column_int64(q, 3),
		    .winner_checksum = (const char *)sqlite3_column_text(q, 4),
		    .winner_origin = (const char *)sqlite3_column_text(q, 5),
		    .loser_version = sqlite3_column_int64(q, 6),
		    .loser_checksum = (const char *)sqlite3_column_text(q, 8),
		    .loser_origin = (const char *)sqlite3_column_text(q, 9),
		    .loser_vc = (const char *)sqlite3_column_text(q, 10),
		    .loser = loser,
		};
		r = cb(user_data, &c);
		ags_pattern_del(loser);
		if (r)
			break;
		done++;
	}
	if (!r && !(limit && done >= limit) && rc != SQLITE_DONE)
		r = ags_store_fail(s, rc, NULL);
	give_stmt(s, ST_CONFLICTS, q);
	return r;
}

int ags_store_conflict_count(ags_store *s, uint64_t *count, uint64_t *max_cseq)
{
	if (!s)
		return AGS_ERR_INVALID;
	sqlite3_stmt *q = s->st[ST_CONFLICT_COUNT];
	int rc = sqlite3_step(q), r = 0;
	if (rc == SQLITE_ROW) {
		if (count)
			*count = (uint64_t)sqlite3_column_int64(q, 0);
		if (max_cseq)
			*max_cseq = (uint64_t)sqlite3_column_int64(q, 1);
	} else {
		r = ags_store_fail(s, rc, NULL);
	}
	sqlite3_reset(q);
	return r;
}

int ags_store_prev_get(ags_store *s, const char *id, int64_t *version, char checksum[65],
                       uint64_t *seq, char **body, size_t *len)
{
	if (!s || !id || !version || !checksum || !seq || !body || !len)
		return AGS_ERR_INVALID;
	*body = NULL;
	*len = 0;
	sqlite3_stmt *q = s->st[ST_PREV_GET];
	sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q), r = 0;
	if (rc == SQLITE_ROW) {
		*version = sqlite3_column_int64(q, 0);
		const char *cs = (const char *)sqlite3_column_text(q, 1);
		snprintf(checksum, 65, "%s", cs ? cs : "");
		*seq = (uint64_t)sqlite3_column_int64(q, 2);
		const char *b = (const char *)sqlite3_column_text(q, 3);
		size_t n = (size_t)sqlite3_column_bytes(q, 3);
		*body = b ? malloc(n + 1) : NULL;
		if (!*body) {
			r = AGS_ERR_NOMEM;
		} else {
			memcpy(*body, b, n);
			(*body)[n] = '\0';
			*len = n;
		}
	} else if (rc == SQLITE_DONE) {
		r = AGS_ERR_NOT_FOUND;
	} else {
		r = ags_store_fail(s, rc, NULL);
	}
	sqlite3_reset(q);
	return r;
}

int ags_store_ae_rows(ags_store *s, ags_ae_row_cb cb, void *ud)
{
	if (!s || !cb)
		return AGS_ERR_INVALID;
	sqlite3_stmt *q = NULL;
	int rc = sqlite3_prepare_v2(s->db,
	                            "SELECT id, version, checksum FROM patterns WHERE scope IS NULL"
	                            " AND (st = 1 OR (st = 0 AND (expires_at IS NULL OR"
	                            " expires_at > ?1)))",
	                            -1, &q, NULL);
	if (rc != SQLITE_OK)
		return ags_store_fail(s, rc, NULL);
	sqlite3_bind_int64(q, 1, ags_now_ms());
	int r = 0;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		ags_ae_row row;
		row.id = (const char *)sqlite3_column_text(q, 0);
		row.version = sqlite3_column_int64(q, 1);
		row.checksum = (const char *)sqlite3_column_text(q, 2);
		if (!row.id || !row.checksum)
			continue;
		ags_store_digest_term(s, row.id, row.version, row.checksum, row.term);
		gnutls_hash(s->sha, row.id, strlen(row.id));
		gnutls_hash_output(s->sha, row.hid);
		if ((r = cb(ud, &row)) != 0)
			break;
	}
	if (!r && rc != SQLITE_DONE)
		r = ags_store_fail(s, rc, NULL);
	sqlite3_finalize(q);
	return r;
}
