/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the durable store (lib/store/store.c) on real SQLite files. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <sqlite3.h>

#include "testutil.h"
#include "agentsync/agentsync.h"
#include "store.h"
#include "store_ckpt.h"

/* ------------------------------------------------------------------------ */
/* Fixtures                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct fx {
	char *dir;
	char *path;
	ags_store *s;
} fx;

static ags_store *open_at(const char *path)
{
	ags_store *s = NULL;
	ags_error err;
	int r = ags_store_open(path, NULL, &s, &err);
	if (r)
		fail_msg("ags_store_open %s: %s: %s", path, ags_strerror(r), err.message);
	return s;
}

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	f->dir = tu_mkdtemp("store");
	f->path = tu_sprintf("%s/store.db", f->dir);
	f->s = open_at(f->path);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	ags_store_close(f->s);
	tu_rmrf(f->dir);
	free(f->path);
	free(f->dir);
	free(f);
	return 0;
}

/* A pattern with everything chosen; `tags` and `data` are JSON text; expires 0 = none. */
static ags_pattern *mkfull(const char *id, int64_t version, int64_t ts, const char *type,
                           const char *agent, const char *tags, const char *data, int64_t expires)
{
	char exp[64] = "";
	if (expires)
		snprintf(exp, sizeof(exp), ",\"expiresAt\":%" PRId64, expires);
	char *json = tu_sprintf("{\"id\":\"%s\",\"agentId\":\"%s\",\"type\":\"%s\",\"data\":%s,"
	                        "\"metadata\":{\"source\":\"test\",\"tags\":%s%s},"
	                        "\"timestamp\":%" PRId64 ",\"version\":%" PRId64 "}",
	                        id, agent, type, data, tags, exp, ts, version);
	ags_pattern *p = NULL;
	ags_error err;
	int r = ags_pattern_parse(json, strlen(json), NULL, &p, &err);
	if (r)
		fail_msg("parse %s: %s", json, err.message);
	free(json);
	return p;
}

/* A plain pattern whose content is `data` (JSON text). */
static ags_pattern *mk(const char *id, int64_t version, int64_t ts, const char *data)
{
	return mkfull(id, version, ts, "t", "agent", "[\"x\"]", data, 0);
}

static ags_pattern *tomb(const char *id, int64_t version, int64_t ts)
{
	ags_pattern *p = NULL;
	assert_int_equal(ags_pattern_new_tombstone(id, version, ts, &p), 0);
	return p;
}

/* A trigger that makes SQLite refuse any change with id "poison" ('poisoned change'). */
#define POISON_SQL                                                                                 \
	"CREATE TRIGGER poison BEFORE INSERT ON patterns WHEN NEW.id = 'poison' BEGIN"             \
	" SELECT RAISE(ABORT, 'poisoned change'); END"

/* Applies one change, consuming it; returns the outcome (and the seq via *seq). */
static int apply1(ags_store *s, ags_pattern *p, uint64_t *seq)
{
	ags_apply_result res = {0};
	ags_error err;
	int r = ags_store_apply(s, p, &res, &err);
	if (r)
		fail_msg("apply %s: %s", ags_pattern_id(p), err.message);
	ags_pattern_del(p);
	if (seq)
		*seq = res.seq;
	return res.outcome;
}

static uint64_t count_of(ags_store *s)
{
	uint64_t n = 0;
	assert_int_equal(ags_store_count(s, &n), 0);
	return n;
}

/* Checks that the in-memory digest and count match a recomputation from the rows. */
static void assert_consistent(ags_store *s)
{
	char mem[65], rows[65];
	uint64_t live = 0;
	ags_store_digest(s, mem);
	assert_int_equal(ags_store_verify(s, rows, &live), 0);
	assert_string_equal(mem, rows);
}

static const char zero_digest[] =
    "0000000000000000000000000000000000000000000000000000000000000000";

/* Collects (id, seq, checksum) of listed records. */
typedef struct listing {
	size_t n;
	char id[64][64];
	uint64_t seq[64];
	int tomb[64];
	char origin[64][32];
	char scope[64][32];
	int prio[64];       /* ags_store_rows listings only */
	char body[64][512]; /* ditto */
	int stop_after;     /* stop (return 7) after this many, 0 = never */
} listing;

static int collect(void *ud, const ags_pattern *p, uint64_t seq)
{
	listing *l = ud;
	assert_true(l->n < 64);
	snprintf(l->id[l->n], sizeof(l->id[0]), "%s", ags_pattern_id(p));
	l->seq[l->n] = seq;
	l->tomb[l->n] = ags_pattern_is_tombstone(p);
	l->n++;
	return l->stop_after && l->n >= (size_t)l->stop_after ? 7 : 0;
}

/* collect() for ags_store_rows, with origin, scope, priority and body. */
static int collect_ex(void *ud, const ags_change_row *r)
{
	listing *l = ud;
	assert_true(l->n < 64);
	size_t i = l->n++;
	snprintf(l->id[i], sizeof(l->id[0]), "%s", r->id);
	l->seq[i] = r->seq;
	l->tomb[i] = r->tombstone;
	snprintf(l->origin[i], sizeof(l->origin[0]), "%s", r->origin ? r->origin : "(null)");
	snprintf(l->scope[i], sizeof(l->scope[0]), "%s", r->scope ? r->scope : "(null)");
	l->prio[i] = r->priority;
	snprintf(l->body[i], sizeof(l->body[0]), "%.*s", (int)r->body_len, r->body ? r->body : "");
	return l->stop_after && l->n >= (size_t)l->stop_after ? 7 : 0;
}

/* ------------------------------------------------------------------------ */
/* Apply outcomes                                                           */
/* ------------------------------------------------------------------------ */

/*
 * Store epochs (docs/PROTOCOL.md, "Store epochs"): each begin starts one at
 * the sequence + 1, kept across opens, the last 32; a copy of the file taken
 * earlier (a restore) lacks the epochs begun after it, and its next one
 * starts at its own (lower) sequence + 1.
 */
static void epochs_start_at_every_open(void **state)
{
	fx *f = *state;
	ags_store_epoch e[AGS_STORE_EPOCHS_MAX], e2[AGS_STORE_EPOCHS_MAX];
	size_t n = 0, n2 = 0;
	ags_error err;
	assert_int_equal(ags_store_epoch_begin(f->s, e, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(e[0].start, 1);
	assert_int_equal(strlen(e[0].id), AGS_STORE_EPOCH_ID_LEN);
	uint64_t seq;
	assert_int_equal(apply1(f->s, mk("a", 1, 100, "1"), &seq), AGS_APPLY_INSERTED);
	assert_int_equal(apply1(f->s, mk("b", 1, 100, "1"), &seq), AGS_APPLY_INSERTED);
	/* The copy a restore would bring back: one epoch, sequence 2. */
	char *copy = tu_sprintf("%s/copy.db", f->dir);
	ags_store_info info;
	assert_int_equal(ags_store_backup(f->path, copy, &info, &err), 0);
	ags_store_close(f->s);
	f->s = open_at(f->path);
	assert_int_equal(ags_store_epoch_begin(f->s, e2, &n2, &err), 0);
	assert_int_equal(n2, 2);
	assert_string_equal(e2[0].id, e[0].id);
	assert_int_equal(e2[1].start, 3);
	assert_string_not_equal(e2[1].id, e[0].id);
	assert_int_equal(apply1(f->s, mk("c", 1, 100, "1"), &seq), AGS_APPLY_INSERTED);
	/* The restored copy goes on from its own sequence, without the epoch begun since. */
	ags_store *r = open_at(copy);
	assert_int_equal(ags_store_epoch_begin(r, e, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(e[0].id, e2[0].id);
	assert_int_equal(e[1].start, 3);
	assert_string_not_equal(e[1].id, e2[1].id);
	ags_store_close(r);
	/* The last 32 are kept, oldest dropped first. */
	for (int i = 0; i < 40; i++)
		assert_int_equal(ags_store_epoch_begin(f->s, e, &n, &err), 0);
	assert_int_equal(n, AGS_STORE_EPOCHS_MAX);
	assert_int_equal(e[n - 1].start, 4);
	assert_string_not_equal(e[0].id, e2[0].id);
	free(copy);
}

static void each_outcome(void **state)
{
	fx *f = *state;
	uint64_t seq = 99;
	assert_int_equal(apply1(f->s, mk("a", 1, 100, "1"), &seq), AGS_APPLY_INSERTED);
	assert_int_equal(seq, 1);
	assert_int_equal(apply1(f->s, mk("a", 1, 100, "1"), &seq), AGS_APPLY_DUPLICATE);
	assert_int_equal(seq, 0);
	assert_int_equal(apply1(f->s, mk("a", 2, 200, "2"), &seq), AGS_APPLY_UPDATED);
	assert_int_equal(seq, 2);
	assert_int_equal(apply1(f->s, mk("a", 1, 300, "3"), &seq), AGS_APPLY_STALE);
	assert_int_equal(seq, 0);
	/* Same version, later timestamp: wins. */
	assert_int_equal(apply1(f->s, mk("a", 2, 201, "4"), &seq), AGS_APPLY_CONFLICT_WON);
	assert_int_equal(seq, 3);
	/* Same version, earlier timestamp: loses. */
	assert_int_equal(apply1(f->s, mk("a", 2, 199, "5"), &seq), AGS_APPLY_CONFLICT_LOST);
	assert_int_equal(seq, 0);
	assert_int_equal(ags_store_seq(f->s), 3);

	ags_pattern *got = NULL;
	assert_int_equal(ags_store_get(f->s, "a", &got), 0);
	assert_int_equal(ags_pattern_version(got), 2);
	assert_int_equal(ags_pattern_timestamp(got), 201);
	ags_pattern_del(got);
	assert_int_equal(ags_store_get(f->s, "nope", &got), AGS_ERR_NOT_FOUND);
	assert_null(got);
	assert_int_equal(count_of(f->s), 1);
	assert_consistent(f->s);

	assert_string_equal(ags_apply_outcome_name(AGS_APPLY_CONFLICT_LOST), "conflict_lost");
	assert_string_equal(ags_apply_outcome_name(0), "unknown");
}

/* At equal version and timestamp the greater checksum wins, as ags_pattern_compare says. */
static void equal_timestamp_conflict_follows_compare(void **state)
{
	fx *f = *state;
	ags_pattern *x = mk("c", 5, 500, "\"x\""), *y = mk("c", 5, 500, "\"y\"");
	int cmp = ags_pattern_compare(y, x);
	assert_int_not_equal(cmp, 0);
	char want_cs[65];
	snprintf(want_cs, sizeof(want_cs), "%s", ags_pattern_checksum(cmp > 0 ? y : x));
	assert_int_equal(apply1(f->s, x, NULL), AGS_APPLY_INSERTED);
	assert_int_equal(apply1(f->s, y, NULL),
	                 cmp > 0 ? AGS_APPLY_CONFLICT_WON : AGS_APPLY_CONFLICT_LOST);
	ags_pattern *got = NULL;
	assert_int_equal(ags_store_get(f->s, "c", &got), 0);
	assert_string_equal(ags_pattern_checksum(got), want_cs);
	ags_pattern_del(got);
}

static void batch_of_mixed_outcomes(void **state)
{
	fx *f = *state;
	assert_int_equal(apply1(f->s, mk("b", 1, 10, "\"b1\""), NULL), AGS_APPLY_INSERTED);
	ags_pattern *p[] = {
	    mk("a", 1, 10, "1"),      /* inserted */
	    mk("a", 1, 10, "1"),      /* duplicate of the one just before */
	    mk("a", 3, 30, "3"),      /* updated */
	    mk("a", 2, 20, "2"),      /* stale */
	    mk("b", 1, 11, "\"b2\""), /* conflict won (later timestamp) */
	    mk("b", 1, 9, "\"b0\""),  /* conflict lost */
	    tomb("c", 1, 5),          /* inserted (a tombstone for an unknown id) */
	    mk("c", 1, 4, "0"),       /* conflict lost against the tombstone */
	};
	size_t n = sizeof(p) / sizeof(p[0]);
	ags_apply_result res[8];
	ags_error err;
	assert_int_equal(ags_store_apply_batch(f->s, (const ags_pattern *const *)p, n, res, &err),
	                 0);
	int want[] = {AGS_APPLY_INSERTED, AGS_APPLY_DUPLICATE,    AGS_APPLY_UPDATED,
	              AGS_APPLY_STALE,    AGS_APPLY_CONFLICT_WON, AGS_APPLY_CONFLICT_LOST,
	              AGS_APPLY_INSERTED, AGS_APPLY_CONFLICT_LOST};
	uint64_t want_seq[] = {2, 0, 3, 0, 4, 0, 5, 0};
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(res[i].outcome, want[i]);
		assert_int_equal(res[i].seq, want_seq[i]);
		ags_pattern_del(p[i]);
	}
	assert_int_equal(ags_store_seq(f->s), 5);
	assert_int_equal(count_of(f->s), 2); /* a and b; c is deleted */
	assert_consistent(f->s);
}

static void tombstone_beats_late_older_insert(void **state)
{
	fx *f = *state;
	assert_int_equal(apply1(f->s, mk("t", 1, 1, "1"), NULL), AGS_APPLY_INSERTED);
	assert_int_equal(apply1(f->s, tomb("t", 2, 2), NULL), AGS_APPLY_UPDATED);
	ags_pattern *got = NULL;
	assert_int_equal(ags_store_get(f->s, "t", &got), AGS_ERR_NOT_FOUND);
	/* The older insert arrives late, from a slow peer: it must not come back. */
	assert_int_equal(apply1(f->s, mk("t", 1, 1, "1"), NULL), AGS_APPLY_STALE);
	assert_int_equal(ags_store_get(f->s, "t", &got), AGS_ERR_NOT_FOUND);
	/* A delete seen before any insert also keeps the insert out. */
	assert_int_equal(apply1(f->s, tomb("u", 3, 3), NULL), AGS_APPLY_INSERTED);
	assert_int_equal(apply1(f->s, mk("u", 2, 2, "2"), NULL), AGS_APPLY_STALE);
	assert_int_equal(count_of(f->s), 0);
	char d[65];
	ags_store_digest(f->s, d);
	assert_string_equal(d, zero_digest);
	/* A higher version after the delete brings the id back. */
	assert_int_equal(apply1(f->s, mk("t", 3, 3, "3"), NULL), AGS_APPLY_UPDATED);
	assert_int_equal(ags_store_get(f->s, "t", &got), 0);
	assert_int_equal(ags_pattern_version(got), 3);
	ags_pattern_del(got);
	assert_consistent(f->s);
}

static void conflict_resolves_the_same_in_either_order(void **state)
{
	fx *f = *state;
	char *path2 = tu_sprintf("%s/other.db", f->dir);
	ags_store *s2 = open_at(path2);
	/* Same version and timestamp, so the checksum decides; and a pair where the
	 * timestamp decides. */
	const char *data[][2] = {{"\"left\"", "\"right\""}, {"{\"k\":1}", "{\"k\":2}"}};
	for (int i = 0; i < 2; i++) {
		char id[8];
		snprintf(id, sizeof(id), "k%d", i);
		int64_t ts2 = i == 0 ? 7 : 8;
		ags_pattern *x = mk(id, 4, 7, data[i][0]), *y = mk(id, 4, ts2, data[i][1]);
		int y_wins = ags_pattern_compare(y, x) > 0;
		int o1 = apply1(f->s, ags_pattern_dup(x), NULL);
		int o2 = apply1(f->s, ags_pattern_dup(y), NULL);
		int o3 = apply1(s2, ags_pattern_dup(y), NULL);
		int o4 = apply1(s2, ags_pattern_dup(x), NULL);
		assert_int_equal(o1, AGS_APPLY_INSERTED);
		assert_int_equal(o3, AGS_APPLY_INSERTED);
		assert_int_equal(o2, y_wins ? AGS_APPLY_CONFLICT_WON : AGS_APPLY_CONFLICT_LOST);
		assert_int_equal(o4, y_wins ? AGS_APPLY_CONFLICT_LOST : AGS_APPLY_CONFLICT_WON);
		ags_pattern *g1 = NULL, *g2 = NULL;
		assert_int_equal(ags_store_get(f->s, id, &g1), 0);
		assert_int_equal(ags_store_get(s2, id, &g2), 0);
		assert_string_equal(ags_pattern_checksum(g1), ags_pattern_checksum(g2));
		assert_string_equal(ags_pattern_checksum(g1), ags_pattern_checksum(y_wins ? y : x));
		ags_pattern_del(g1);
		ags_pattern_del(g2);
		ags_pattern_del(x);
		ags_pattern_del(y);
	}
	char d1[65], d2[65];
	ags_store_digest(f->s, d1);
	ags_store_digest(s2, d2);
	assert_string_equal(d1, d2);
	ags_store_close(s2);
	free(path2);
}

static void rejects_invalid_arguments(void **state)
{
	fx *f = *state;
	ags_pattern *p[2] = {mk("a", 1, 1, "1"), NULL};
	ags_error err;
	assert_int_equal(ags_store_apply_batch(f->s, (const ags_pattern *const *)p, 2, NULL, &err),
	                 AGS_ERR_INVALID);
	assert_int_equal(err.code, AGS_ERR_INVALID);
	assert_int_equal(ags_store_apply_batch(NULL, (const ags_pattern *const *)p, 1, NULL, &err),
	                 AGS_ERR_INVALID);
	assert_int_equal(ags_store_apply(f->s, NULL, NULL, &err), AGS_ERR_INVALID);
	assert_int_equal(ags_store_seq(f->s), 0);
	assert_int_equal(count_of(f->s), 0);
	/* An empty batch is fine and changes nothing. */
	assert_int_equal(ags_store_apply_batch(f->s, NULL, 0, NULL, &err), 0);
	assert_int_equal(ags_store_seq(f->s), 0);
	ags_pattern_del(p[0]);
	ags_store *s = NULL;
	assert_int_equal(ags_store_open(NULL, NULL, &s, &err), AGS_ERR_INVALID);
	assert_int_equal(ags_store_open(f->path, NULL, NULL, &err), AGS_ERR_INVALID);
	assert_int_equal(ags_store_open("/nonexistent-dir/x/y.db", NULL, &s, &err), AGS_ERR_IO);
	assert_null(s);
}

/* ------------------------------------------------------------------------ */
/* Expiry                                                                   */
/* ------------------------------------------------------------------------ */

static void expired_on_arrival_is_not_returned(void **state)
{
	fx *f = *state;
	uint64_t seq = 0;
	/* expiresAt in 1970: every node stores it directly as expired. */
	ags_pattern *p = mkfull("e", 1, 1, "t", "a", "[]", "1", 1000);
	assert_int_equal(apply1(f->s, p, &seq), AGS_APPLY_INSERTED);
	assert_true(seq > 0);
	ags_pattern *got = NULL;
	assert_int_equal(ags_store_get(f->s, "e", &got), AGS_ERR_NOT_FOUND);
	assert_int_equal(count_of(f->s), 0);
	char d[65];
	ags_store_digest(f->s, d);
	assert_string_equal(d, zero_digest);
	listing l = {0};
	assert_int_equal(ags_store_changes(f->s, 0, 0, collect, &l), 0);
	assert_int_equal(l.n, 0);
	ags_record_head h;
	assert_int_equal(ags_store_head(f->s, "e", &h), 0);
	assert_int_equal(h.state, AGS_RECORD_EXPIRED);
	assert_int_equal(h.expires_at, 1000);
	/* The same version again, even with other content, stays out. */
	assert_int_equal(apply1(f->s, mkfull("e", 1, 1, "t", "a", "[]", "1", 1000), NULL),
	                 AGS_APPLY_STALE);
	assert_int_equal(apply1(f->s, mk("e", 1, 9, "2"), NULL), AGS_APPLY_STALE);
	assert_int_equal(ags_store_get(f->s, "e", &got), AGS_ERR_NOT_FOUND);
	/* A higher version that is already expired replaces a live record. */
	assert_int_equal(apply1(f->s, mk("f", 1, 1, "1"), NULL), AGS_APPLY_INSERTED);
	assert_int_equal(apply1(f->s, mkfull("f", 2, 2, "t", "a", "[]", "1", 1000), NULL),
	                 AGS_APPLY_UPDATED);
	assert_int_equal(ags_store_get(f->s, "f", &got), AGS_ERR_NOT_FOUND);
	assert_int_equal(count_of(f->s), 0);
	ags_store_digest(f->s, d);
	assert_string_equal(d, zero_digest);
	assert_consistent(f->s);
}

static void sweep_purges_and_only_a_higher_version_returns(void **state)
{
	fx *f = *state;
	int64_t now = ags_now_ms();
	int64_t exp = now + 3600 * 1000;
	assert_int_equal(apply1(f->s, mkfull("x", 1, 1, "t", "a", "[]", "1", exp), NULL),
	                 AGS_APPLY_INSERTED);
	assert_int_equal(apply1(f->s, mk("keep", 1, 1, "1"), NULL), AGS_APPLY_INSERTED);
	char before[65], after[65], only_keep[65];
	ags_store_digest(f->s, before);
	ags_pattern *got = NULL;
	assert_int_equal(ags_store_get(f->s, "x", &got), 0);
	ags_pattern_del(got);
	assert_int_equal(count_of(f->s), 2);

	uint64_t purged = 99;
	assert_int_equal(ags_store_sweep(f->s, now, &purged), 0);
	assert_int_equal(purged, 0);
	assert_int_equal(ags_store_sweep(f->s, exp + 1000, &purged), 0);
	assert_int_equal(purged, 1);
	assert_int_equal(ags_store_get(f->s, "x", &got), AGS_ERR_NOT_FOUND);
	assert_int_equal(count_of(f->s), 1);
	ags_store_digest(f->s, after);
	assert_string_not_equal(before, after);
	assert_consistent(f->s);
	/* The digest is now that of a store holding only "keep". */
	char *p2 = tu_sprintf("%s/keep.db", f->dir);
	ags_store *s2 = open_at(p2);
	assert_int_equal(apply1(s2, mk("keep", 1, 1, "1"), NULL), AGS_APPLY_INSERTED);
	ags_store_digest(s2, only_keep);
	assert_string_equal(after, only_keep);
	ags_store_close(s2);
	free(p2);

	uint64_t seq_before = ags_store_seq(f->s);
	/* The same version applied again after the sweep stays gone. */
	assert_int_equal(apply1(f->s, mkfull("x", 1, 1, "t", "a", "[]", "1", exp), NULL),
	                 AGS_APPLY_STALE);
	assert_int_equal(ags_store_get(f->s, "x", &got), AGS_ERR_NOT_FOUND);
	assert_int_equal(ags_store_seq(f->s), seq_before);
	/* A higher version comes back. */
	assert_int_equal(apply1(f->s, mk("x", 2, 2, "2"), NULL), AGS_APPLY_UPDATED);
	assert_int_equal(ags_store_get(f->s, "x", &got), 0);
	assert_int_equal(ags_pattern_version(got), 2);
	ags_pattern_del(got);
	assert_int_equal(count_of(f->s), 2);
	assert_int_equal(ags_store_sweep(f->s, INT64_MAX, &purged), 0);
	assert_int_equal(purged, 0); /* nothing else can expire */
	assert_consistent(f->s);
}

static int gone(void *arg)
{
	fx *f = arg;
	ags_pattern *got = NULL;
	int r = ags_store_get(f->s, "soon", &got);
	ags_pattern_del(got);
	return r == AGS_ERR_NOT_FOUND;
}

/* Past expiresAt but not yet swept: hidden from reads, still in the digest until a sweep. */
static void unswept_expired_is_hidden_but_counted_in_digest(void **state)
{
	fx *f = *state;
	int64_t exp = ags_now_ms() + 150;
	assert_int_equal(apply1(f->s, mkfull("soon", 1, 1, "t", "a", "[]", "1", exp), NULL),
	                 AGS_APPLY_INSERTED);
	char d1[65], d2[65];
	ags_store_digest(f->s, d1);
	assert_string_not_equal(d1, zero_digest);
	assert_true(tu_wait_for(gone, f, 200, 20));
	while (ags_now_ms() <= exp)
		tu_sleep_ms(5);
	assert_int_equal(count_of(f->s), 0);
	listing l = {0};
	assert_int_equal(ags_store_changes(f->s, 0, 0, collect, &l), 0);
	assert_int_equal(l.n, 0);
	ags_store_digest(f->s, d2);
	assert_string_equal(d1, d2);
	uint64_t purged = 0;
	assert_int_equal(ags_store_sweep(f->s, ags_now_ms(), &purged), 0);
	assert_int_equal(purged, 1);
	ags_store_digest(f->s, d2);
	assert_string_equal(d2, zero_digest);
}

/* ------------------------------------------------------------------------ */
/* Digest                                                                   */
/* ------------------------------------------------------------------------ */

#define NCH 500

static uint64_t rnd_state;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

/* 500 changes over 60 ids: versions 1-5, tombstones, and same-version conflicts. */
static void make_changes(ags_pattern **c)
{
	for (int i = 0; i < NCH; i++) {
		char id[16];
		snprintf(id, sizeof(id), "id%d", i % 60);
		int64_t ver = 1 + (i / 60) % 5;
		int64_t ts = 1000 + (i * 7919) % 13;
		if (i % 11 == 0) {
			c[i] = tomb(id, ver, ts);
		} else {
			char data[32];
			snprintf(data, sizeof(data), "{\"n\":%d}", i % 3); /* conflicts at i%3 */
			c[i] = mk(id, ver, ts, data);
		}
	}
}

static void apply_shuffled(ags_store *s, ags_pattern **c, uint64_t seed)
{
	const ags_pattern *order[NCH];
	for (int i = 0; i < NCH; i++)
		order[i] = c[i];
	rnd_state = seed;
	for (int i = NCH - 1; i > 0; i--) {
		int j = (int)(rnd() % (uint64_t)(i + 1));
		const ags_pattern *t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	/* Batches of varying size, including single applies. */
	ags_error err;
	for (int i = 0; i < NCH;) {
		int m = 1 + (int)(rnd() % 40);
		if (m > NCH - i)
			m = NCH - i;
		assert_int_equal(ags_store_apply_batch(s, order + i, (size_t)m, NULL, &err), 0);
		i += m;
	}
}

static void digest_is_order_independent(void **state)
{
	fx *f = *state;
	ags_pattern *c[NCH];
	make_changes(c);
	char first[65] = "";
	uint64_t first_count = 0;
	for (int round = 0; round < 5; round++) {
		char *path = tu_sprintf("%s/order%d.db", f->dir, round);
		ags_store *s = open_at(path);
		apply_shuffled(s, c, 0x1234567u + (uint64_t)round * 977);
		char d[65];
		ags_store_digest(s, d);
		assert_consistent(s);
		uint64_t n = count_of(s);
		if (round == 0) {
			memcpy(first, d, sizeof(first));
			first_count = n;
			assert_string_not_equal(d, zero_digest);
			assert_true(n > 0 && n < 60);
		} else {
			assert_string_equal(d, first);
			assert_int_equal(n, first_count);
		}
		/* Same records, same winners. */
		for (int i = 0; i < 60; i++) {
			char id[16];
			snprintf(id, sizeof(id), "id%d", i);
			ags_pattern *g = NULL;
			int r = ags_store_get(s, id, &g);
			ags_record_head h;
			assert_int_equal(ags_store_head(s, id, &h), 0);
			assert_int_equal(r == 0, h.state == AGS_RECORD_LIVE);
			if (g)
				assert_string_equal(ags_pattern_checksum(g), h.checksum);
			ags_pattern_del(g);
		}
		ags_store_close(s);
		free(path);
	}
	/* The same set with one change's content altered gives another digest. */
	ags_pattern_del(c[NCH - 1]);
	c[NCH - 1] = mk("id59", 99, 1, "\"different\"");
	char *path = tu_sprintf("%s/altered.db", f->dir);
	ags_store *s = open_at(path);
	apply_shuffled(s, c, 42);
	char d[65];
	ags_store_digest(s, d);
	assert_string_not_equal(d, first);
	ags_store_close(s);
	free(path);
	for (int i = 0; i < NCH; i++)
		ags_pattern_del(c[i]);
}

/* The digest is exactly the documented sum, computed here independently. */
static void digest_matches_definition(void **state)
{
	fx *f = *state;
	ags_pattern *a = mk("alpha", 3, 1, "1"), *b = mk("beta", 12, 2, "2");
	uint8_t sum[32] = {0};
	const ags_pattern *both[] = {a, b};
	for (int i = 0; i < 2; i++) {
		const ags_pattern *p = both[i];
		char *in = tu_sprintf("%s%c%" PRId64 "%c%s", ags_pattern_id(p), 0,
		                      ags_pattern_version(p), 0, ags_pattern_checksum(p));
		size_t len = strlen(ags_pattern_id(p)) + 1 +
		             (size_t)snprintf(NULL, 0, "%" PRId64, ags_pattern_version(p)) + 1 + 64;
		uint8_t h[32];
		assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, in, len, h), 0);
		unsigned carry = 0;
		for (int k = 31; k >= 0; k--) { /* big-endian 256-bit addition */
			unsigned v = (unsigned)sum[k] + h[k] + carry;
			sum[k] = (uint8_t)v;
			carry = v >> 8;
		}
		free(in);
	}
	char want[65];
	for (int k = 0; k < 32; k++)
		snprintf(want + 2 * k, 3, "%02x", sum[k]);
	assert_int_equal(apply1(f->s, a, NULL), AGS_APPLY_INSERTED);
	assert_int_equal(apply1(f->s, b, NULL), AGS_APPLY_INSERTED);
	char d[65];
	ags_store_digest(f->s, d);
	assert_string_equal(d, want);
}

/* ------------------------------------------------------------------------ */
/* Listings                                                                 */
/* ------------------------------------------------------------------------ */

static void changes_in_order_without_superseded_or_expired(void **state)
{
	fx *f = *state;
	apply1(f->s, mk("a", 1, 1, "1"), NULL);                           /* 1 */
	apply1(f->s, mk("b", 1, 1, "1"), NULL);                           /* 2 */
	apply1(f->s, mk("c", 1, 1, "1"), NULL);                           /* 3 */
	apply1(f->s, mk("a", 2, 2, "2"), NULL);                           /* 4: supersedes 1 */
	apply1(f->s, tomb("b", 2, 2), NULL);                              /* 5: supersedes 2 */
	apply1(f->s, mkfull("d", 1, 1, "t", "a", "[]", "1", 1000), NULL); /* 6: expired */
	apply1(f->s, mk("e", 1, 1, "1"), NULL);                           /* 7 */

	listing l = {0};
	assert_int_equal(ags_store_changes(f->s, 0, 0, collect, &l), 0);
	const char *ids[] = {"c", "a", "b", "e"};
	uint64_t seqs[] = {3, 4, 5, 7};
	assert_int_equal(l.n, 4);
	for (size_t i = 0; i < 4; i++) {
		assert_string_equal(l.id[i], ids[i]);
		assert_int_equal(l.seq[i], seqs[i]);
		assert_int_equal(l.tomb[i], strcmp(ids[i], "b") == 0);
	}
	memset(&l, 0, sizeof(l));
	assert_int_equal(ags_store_changes(f->s, 4, 0, collect, &l), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.id[0], "b");
	memset(&l, 0, sizeof(l));
	assert_int_equal(ags_store_changes(f->s, 0, 2, collect, &l), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.id[1], "a");
	memset(&l, 0, sizeof(l));
	l.stop_after = 1;
	assert_int_equal(ags_store_changes(f->s, 0, 0, collect, &l), 7);
	assert_int_equal(l.n, 1);
	memset(&l, 0, sizeof(l));
	assert_int_equal(ags_store_changes(f->s, 7, 0, collect, &l), 0);
	assert_int_equal(l.n, 0);

	uint64_t next = 0;
	assert_int_equal(ags_store_next_seq(f->s, 0, &next), 0);
	assert_int_equal(next, 3);
	assert_int_equal(ags_store_next_seq(f->s, 5, &next), 0);
	assert_int_equal(next, 7);
	assert_int_equal(ags_store_next_seq(f->s, 7, &next), AGS_ERR_NOT_FOUND);
}

static int reenter(void *ud, const ags_pattern *p, uint64_t seq)
{
	ags_store *s = ud;
	/* A callback may use the store, even the same listing. */
	uint64_t n = 0;
	listing inner = {0};
	assert_int_equal(ags_store_changes(s, 0, 0, collect, &inner), 0);
	n = inner.n;
	assert_int_equal(n, 2);
	ags_pattern *g = NULL;
	assert_int_equal(ags_store_get(s, ags_pattern_id(p), &g), 0);
	ags_pattern_del(g);
	return 0;
}

static void listing_callback_may_reenter(void **state)
{
	fx *f = *state;
	apply1(f->s, mk("a", 1, 1, "1"), NULL);
	apply1(f->s, mk("b", 1, 1, "1"), NULL);
	assert_int_equal(ags_store_changes(f->s, 0, 0, reenter, f->s), 0);
}

static size_t query_ids(ags_store *s, const ags_query *q, char *out, size_t cap)
{
	listing l = {0};
	assert_int_equal(ags_store_query(s, q, collect, &l), 0);
	out[0] = '\0';
	size_t o = 0;
	for (size_t i = 0; i < l.n; i++)
		o += (size_t)snprintf(out + o, cap - o, "%s%s", i ? "," : "", l.id[i]);
	return l.n;
}

static void query_filters_and_limit(void **state)
{
	fx *f = *state;
	apply1(f->s, mkfull("p1", 1, 1, "lint", "ann", "[\"go\",\"fast\"]", "1", 0), NULL);
	apply1(f->s, mkfull("p2", 1, 1, "test", "bob", "[\"go\"]", "1", 0), NULL);
	apply1(f->s, mkfull("p3", 1, 1, "lint", "bob", "[\"gopher\"]", "1", 0), NULL);
	apply1(f->s, mkfull("p4", 1, 1, "lint", "ann", "[]", "1", 0), NULL);
	apply1(f->s, mkfull("p5", 1, 1, "lint", "ann", "[\"go\"]", "1", 1000), NULL); /* expired */
	apply1(f->s, mkfull("p6", 1, 1, "test", "ann", "[\"go\"]", "1", 0), NULL);
	apply1(f->s, tomb("p6", 2, 2), NULL);
	apply1(f->s, mkfull("p1", 2, 2, "lint", "ann", "[\"go\",\"fast\"]", "2", 0), NULL);

	char ids[256];
	assert_int_equal(query_ids(f->s, NULL, ids, sizeof(ids)), 4);
	assert_string_equal(ids, "p2,p3,p4,p1");
	ags_query q = {.type = "lint"};
	query_ids(f->s, &q, ids, sizeof(ids));
	assert_string_equal(ids, "p3,p4,p1");
	q = (ags_query){.tag = "go"};
	query_ids(f->s, &q, ids, sizeof(ids));
	assert_string_equal(ids, "p2,p1"); /* not "gopher" */
	q = (ags_query){.tag = "fast", .agent_id = "ann"};
	query_ids(f->s, &q, ids, sizeof(ids));
	assert_string_equal(ids, "p1");
	q = (ags_query){.agent_id = "bob"};
	query_ids(f->s, &q, ids, sizeof(ids));
	assert_string_equal(ids, "p2,p3");
	q = (ags_query){.type = "lint", .agent_id = "bob", .tag = "go"};
	assert_int_equal(query_ids(f->s, &q, ids, sizeof(ids)), 0);
	q = (ags_query){.after_seq = 3};
	query_ids(f->s, &q, ids, sizeof(ids));
	assert_string_equal(ids, "p4,p1");
	q = (ags_query){.type = "lint", .limit = 2};
	query_ids(f->s, &q, ids, sizeof(ids));
	assert_string_equal(ids, "p3,p4");
	q = (ags_query){.tag = "nope"};
	assert_int_equal(query_ids(f->s, &q, ids, sizeof(ids)), 0);
	assert_int_equal(count_of(f->s), 4);
	listing l = {.stop_after = 2};
	assert_int_equal(ags_store_query(f->s, NULL, collect, &l), 7);
	assert_int_equal(ags_store_query(f->s, NULL, NULL, NULL), AGS_ERR_INVALID);

	/* The same words inside data do not make a match. */
	apply1(f->s,
	       mkfull("p7", 1, 1, "test", "bob", "[]",
	              "{\"type\":\"lint\",\"agentId\":\"ann\",\"x\":[\"fast\"]}", 0),
	       NULL);
	q = (ags_query){.type = "lint"};
	query_ids(f->s, &q, ids, sizeof(ids));
	assert_string_equal(ids, "p3,p4,p1");
	q = (ags_query){.agent_id = "ann"};
	query_ids(f->s, &q, ids, sizeof(ids));
	assert_string_equal(ids, "p4,p1");
	q = (ags_query){.tag = "fast"};
	query_ids(f->s, &q, ids, sizeof(ids));
	assert_string_equal(ids, "p1");
	/* Values JSON must escape are matched too. */
	apply1(
	    f->s,
	    mkfull("p8", 1, 1, "a\\\"b", "c\\\\d", "[\"e,f\",\"\\u00e9t\\u00e9\",\"a/b\"]", "1", 0),
	    NULL);
	q = (ags_query){.type = "a\"b", .agent_id = "c\\d", .tag = "e,f"};
	query_ids(f->s, &q, ids, sizeof(ids));
	assert_string_equal(ids, "p8");
	q = (ags_query){.tag = "\xc3\xa9t\xc3\xa9"};
	query_ids(f->s, &q, ids, sizeof(ids));
	assert_string_equal(ids, "p8");
	q = (ags_query){.tag = "a/b"};
	query_ids(f->s, &q, ids, sizeof(ids));
	assert_string_equal(ids, "p8");
}

/* ------------------------------------------------------------------------ */
/* Identity, persistence, state                                             */
/* ------------------------------------------------------------------------ */

static void identity_and_counters_persist(void **state)
{
	fx *f = *state;
	char id[33], d[65], d2[65];
	snprintf(id, sizeof(id), "%s", ags_store_id(f->s));
	assert_int_equal(strlen(id), 32);
	assert_int_equal(strspn(id, "0123456789abcdef"), 32);
	apply1(f->s, mk("a", 1, 1, "1"), NULL);
	apply1(f->s, mk("b", 1, 1, "1"), NULL);
	apply1(f->s, mk("a", 2, 1, "2"), NULL);
	ags_store_digest(f->s, d);
	ags_store_close(f->s);

	f->s = open_at(f->path);
	assert_string_equal(ags_store_id(f->s), id);
	assert_int_equal(ags_store_seq(f->s), 3);
	assert_int_equal(count_of(f->s), 2);
	ags_store_digest(f->s, d2);
	assert_string_equal(d, d2);
	assert_consistent(f->s);
	uint64_t seq = 0;
	assert_int_equal(apply1(f->s, mk("c", 1, 1, "1"), &seq), AGS_APPLY_INSERTED);
	assert_int_equal(seq, 4);

	char *other = tu_sprintf("%s/new.db", f->dir);
	ags_store *s2 = open_at(other);
	assert_string_not_equal(ags_store_id(s2), id);
	ags_store_close(s2);
	free(other);
}

static void newer_schema_is_refused(void **state)
{
	fx *f = *state;
	ags_store_close(f->s);
	f->s = NULL;
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	ags_error err;
	ags_store *s = NULL;
	assert_int_equal(ags_store_open(f->path, NULL, &s, &err), AGS_ERR_STORE);
	assert_null(s);
	assert_non_null(strstr(err.message, "newer"));
	/* Not a database at all. */
	char *junk = tu_sprintf("%s/junk.db", f->dir);
	FILE *fp = fopen(junk, "w");
	assert_non_null(fp);
	for (int i = 0; i < 200; i++)
		fputs("this is not an SQLite database. ", fp);
	fclose(fp);
	assert_int_equal(ags_store_open(junk, NULL, &s, &err), AGS_ERR_STORE);
	assert_null(s);
	free(junk);
}

static void state_get_set(void **state)
{
	fx *f = *state;
	char buf[16];
	assert_int_equal(ags_store_state_get(f->s, "cursor", buf, sizeof(buf)), AGS_ERR_NOT_FOUND);
	assert_int_equal(ags_store_state_set(f->s, "cursor", "12"), 0);
	assert_int_equal(ags_store_state_get(f->s, "cursor", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "12");
	assert_int_equal(ags_store_state_set(f->s, "cursor", "0123456789abcdef"), 0);
	assert_int_equal(ags_store_state_get(f->s, "cursor", buf, sizeof(buf)), AGS_ERR_TOO_LARGE);
	char big[17];
	assert_int_equal(ags_store_state_get(f->s, "cursor", big, sizeof(big)), 0);
	assert_string_equal(big, "0123456789abcdef");
	assert_int_equal(ags_store_state_set(f->s, "cursor", NULL), 0); /* deletes */
	assert_int_equal(ags_store_state_get(f->s, "cursor", buf, sizeof(buf)), AGS_ERR_NOT_FOUND);
	assert_int_equal(ags_store_state_set(f->s, NULL, "x"), AGS_ERR_INVALID);
	/* State survives a reopen. */
	assert_int_equal(ags_store_state_set(f->s, "vc", "{\"n1\":3}"), 0);
	ags_store_close(f->s);
	f->s = open_at(f->path);
	assert_int_equal(ags_store_state_get(f->s, "vc", big, sizeof(big)), 0);
	assert_string_equal(big, "{\"n1\":3}");
}

static void apply_ex_stores_meta_and_state_atomically(void **state)
{
	fx *f = *state;
	ags_pattern *p[] = {mk("a", 1, 1, "1"), mk("b", 1, 1, "1"), mk("c", 1, 1, "1")};
	ags_change_meta meta[] = {{"node-7", NULL}, {NULL, ""}, {"node-8", "peers:a,b"}};
	ags_apply_result res[3];
	ags_error err;
	assert_int_equal(ags_store_apply_batch_ex(f->s, (const ags_pattern *const *)p, meta, 3,
	                                          "cursor:node-7", "42", res, &err),
	                 0);
	uint64_t upto = 0;
	listing l = {0};
	assert_int_equal(ags_store_rows(f->s, 0, 64, NULL, collect_ex, &l, &upto), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.origin[0], "node-7");
	assert_string_equal(l.scope[0], "(null)");
	assert_string_equal(l.origin[1], "(null)");
	assert_string_equal(l.scope[1], "");
	assert_string_equal(l.origin[2], "node-8");
	assert_string_equal(l.scope[2], "peers:a,b");
	char buf[8];
	assert_int_equal(ags_store_state_get(f->s, "cursor:node-7", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "42");
	for (int i = 0; i < 3; i++)
		ags_pattern_del(p[i]);

	/* A replacing change takes the new meta; a losing one leaves the old. */
	ags_pattern *q[] = {mk("a", 2, 1, "2"), mk("c", 1, 0, "0")};
	ags_change_meta m2[] = {{"node-9", NULL}, {"node-9", NULL}};
	assert_int_equal(ags_store_apply_batch_ex(f->s, (const ags_pattern *const *)q, m2, 2, NULL,
	                                          NULL, res, &err),
	                 0);
	assert_int_equal(res[1].outcome, AGS_APPLY_CONFLICT_LOST);
	memset(&l, 0, sizeof(l));
	assert_int_equal(ags_store_rows(f->s, 0, 64, NULL, collect_ex, &l, &upto), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.id[1], "c");
	assert_string_equal(l.origin[1], "node-8");
	assert_string_equal(l.id[2], "a");
	assert_string_equal(l.origin[2], "node-9");
	for (int i = 0; i < 2; i++)
		ags_pattern_del(q[i]);

	/* A state key alone, with no changes. */
	assert_int_equal(
	    ags_store_apply_batch_ex(f->s, NULL, NULL, 0, "cursor:node-7", "43", NULL, &err), 0);
	assert_int_equal(ags_store_state_get(f->s, "cursor:node-7", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "43");
}

/*
 * A batch that fails half-way (a trigger added through a second connection
 * aborts on one id) applies nothing: rows, seq, digest, count and the state
 * key are as before, and the error carries SQLite's message.
 */
static void failed_batch_changes_nothing(void **state)
{
	fx *f = *state;
	apply1(f->s, mk("a", 1, 1, "1"), NULL);
	assert_int_equal(ags_store_state_set(f->s, "cursor", "1"), 0);
	char d_before[65];
	ags_store_digest(f->s, d_before);

	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, POISON_SQL, NULL, NULL, NULL), SQLITE_OK);

	ags_pattern *p[] = {mk("b", 1, 1, "1"), mk("a", 2, 1, "2"), tomb("c", 1, 1),
	                    mk("poison", 1, 1, "1"), mk("d", 1, 1, "1")};
	ags_apply_result res[5];
	memset(res, 0xff, sizeof(res));
	ags_error err;
	int r = ags_store_apply_batch_ex(f->s, (const ags_pattern *const *)p, NULL, 5, "cursor",
	                                 "2", res, &err);
	assert_int_equal(r, AGS_ERR_STORE);
	assert_int_equal(err.code, AGS_ERR_STORE);
	assert_non_null(strstr(err.message, "poisoned change"));
	for (int i = 0; i < 5; i++) {
		assert_int_equal(res[i].outcome, 0);
		assert_int_equal(res[i].seq, 0);
	}

	char d[65];
	ags_store_digest(f->s, d);
	assert_string_equal(d, d_before);
	assert_int_equal(ags_store_seq(f->s), 1);
	assert_int_equal(count_of(f->s), 1);
	ags_pattern *got = NULL;
	assert_int_equal(ags_store_get(f->s, "b", &got), AGS_ERR_NOT_FOUND);
	assert_int_equal(ags_store_get(f->s, "a", &got), 0);
	assert_int_equal(ags_pattern_version(got), 1);
	ags_pattern_del(got);
	char buf[8];
	assert_int_equal(ags_store_state_get(f->s, "cursor", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "1");
	assert_consistent(f->s);

	/* Without the poison the same batch goes through, numbered from 2. */
	assert_int_equal(sqlite3_exec(db, "DROP TRIGGER poison", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(ags_store_apply_batch_ex(f->s, (const ags_pattern *const *)p, NULL, 5,
	                                          "cursor", "2", res, &err),
	                 0);
	assert_int_equal(res[0].seq, 2);
	assert_int_equal(res[4].seq, 6);
	assert_int_equal(count_of(f->s), 4);
	assert_consistent(f->s);
	for (int i = 0; i < 5; i++)
		ags_pattern_del(p[i]);

	/* After a reopen, the persisted counters agree too. */
	ags_store_digest(f->s, d);
	ags_store_close(f->s);
	f->s = open_at(f->path);
	ags_store_digest(f->s, d_before);
	assert_string_equal(d, d_before);
	assert_int_equal(ags_store_seq(f->s), 6);
}

/*
 * A single apply that SQLite refuses (a unique index added through a second
 * connection, which the change violates) fails with SQLite's message and
 * keeps the store's counters.
 */
static void refused_apply_fails_cleanly(void **state)
{
	fx *f = *state;
	apply1(f->s, mk("a", 1, 1, "1"), NULL);
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(db, "CREATE UNIQUE INDEX only_one_ts ON patterns(ts)", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	ags_pattern *p = mk("b", 1, 1, "1"); /* same ts as "a": violates the index */
	ags_apply_result res;
	ags_error err;
	assert_int_equal(ags_store_apply(f->s, p, &res, &err), AGS_ERR_STORE);
	assert_non_null(strstr(err.message, "UNIQUE"));
	assert_int_equal(ags_store_seq(f->s), 1);
	assert_int_equal(count_of(f->s), 1);
	assert_consistent(f->s);
	ags_pattern_del(p);
}

/* What another connection sees: the number of pattern rows, or -1. */
static int64_t rows_seen(const char *path)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t n = -1;
	if (sqlite3_open(path, &db) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT count(*) FROM patterns", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

/*
 * A group: batches applied in it are one transaction (nobody sees them
 * before the group's commit); a failure in one batch lets the caller roll
 * back the whole group, counters included, and the store goes on.
 */
static void group_is_one_transaction(void **state)
{
	fx *f = *state;
	apply1(f->s, mk("a", 1, 1, "1"), NULL);
	ags_error err;
	ags_pattern *p1[] = {mk("b", 1, 1, "1"), mk("c", 1, 1, "1")};
	ags_pattern *p2[] = {mk("d", 1, 1, "1")};
	ags_apply_result res[2];
	assert_int_equal(ags_store_group_begin(f->s, &err), 0);
	assert_int_equal(ags_store_group_begin(f->s, &err), AGS_ERR_INVALID);
	assert_int_equal(ags_store_apply_batch_kv(f->s, (const ags_pattern *const *)p1, NULL, NULL,
	                                          2, NULL, 0, res, NULL, &err),
	                 0);
	assert_int_equal(res[1].seq, 3);
	ags_store_kv kv = {"cursor", "7"};
	assert_int_equal(ags_store_apply_batch_kv(f->s, (const ags_pattern *const *)p2, NULL, NULL,
	                                          1, &kv, 1, res, NULL, &err),
	                 0);
	assert_int_equal(res[0].seq, 4);
	/* Written, not committed. */
	assert_int_equal(ags_store_seq(f->s), 4);
	assert_int_equal(ags_store_seq_committed(f->s), 1);
	assert_int_equal(rows_seen(f->path), 1);
	assert_int_equal(ags_store_group_commit(f->s, &err), 0);
	assert_int_equal(ags_store_seq_committed(f->s), 4);
	assert_int_equal(rows_seen(f->path), 4);
	char buf[8];
	assert_int_equal(ags_store_state_get(f->s, "cursor", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "7");
	assert_consistent(f->s);

	/* A poisoned second batch: the group is rolled back, the first batch too. */
	char d_before[65];
	ags_store_digest(f->s, d_before);
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, POISON_SQL, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	ags_pattern *q1[] = {mk("e", 1, 1, "1"), mk("a", 2, 1, "2")};
	ags_pattern *q2[] = {mk("poison", 1, 1, "1")};
	assert_int_equal(ags_store_group_begin(f->s, &err), 0);
	assert_int_equal(ags_store_apply_batch_kv(f->s, (const ags_pattern *const *)q1, NULL, NULL,
	                                          2, NULL, 0, res, NULL, &err),
	                 0);
	assert_int_equal(ags_store_apply_batch_kv(f->s, (const ags_pattern *const *)q2, NULL, NULL,
	                                          1, NULL, 0, res, NULL, &err),
	                 AGS_ERR_STORE);
	assert_non_null(strstr(err.message, "poisoned change"));
	ags_store_group_abort(f->s);
	ags_store_group_abort(f->s); /* a second abort does nothing */
	char d[65];
	ags_store_digest(f->s, d);
	assert_string_equal(d, d_before);
	assert_int_equal(ags_store_seq(f->s), 4);
	assert_int_equal(rows_seen(f->path), 4);
	ags_pattern *got = NULL;
	assert_int_equal(ags_store_get(f->s, "e", &got), AGS_ERR_NOT_FOUND);
	assert_int_equal(ags_store_get(f->s, "a", &got), 0);
	assert_int_equal(ags_pattern_version(got), 1);
	ags_pattern_del(got);
	assert_consistent(f->s);
	/* Outside a group, writes commit as before. */
	assert_int_equal(ags_store_group_commit(f->s, &err), AGS_ERR_INVALID);
	assert_int_equal(ags_store_apply_batch_kv(f->s, (const ags_pattern *const *)q1, NULL, NULL,
	                                          2, NULL, 0, res, NULL, &err),
	                 0);
	assert_int_equal(rows_seen(f->path), 5);
	for (int i = 0; i < 2; i++) {
		ags_pattern_del(p1[i]);
		ags_pattern_del(q1[i]);
	}
	ags_pattern_del(p2[0]);
	ags_pattern_del(q2[0]);
}

/* Writes n patterns of about 450 bytes, in batches of 50. */
static void write_many(ags_store *s, int from, int n)
{
	char data[400];
	memset(data, 'x', sizeof(data));
	snprintf(data, sizeof(data), "\"%0380d\"", 0);
	for (int i = from; i < from + n; i += 50) {
		ags_pattern *p[50];
		int k = 0;
		for (; k < 50 && i + k < from + n; k++) {
			char id[32];
			snprintf(id, sizeof(id), "w%d", i + k);
			p[k] = mk(id, 1, 1, data);
		}
		ags_error err;
		if (ags_store_apply_batch(s, (const ags_pattern *const *)p, (size_t)k, NULL, &err))
			fail_msg("apply: %s", err.message);
		for (int j = 0; j < k; j++)
			ags_pattern_del(p[j]);
	}
}

/* The main database file's size in bytes. */
static long long file_size(const char *path)
{
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return -1;
	fseek(fp, 0, SEEK_END);
	long long n = ftell(fp);
	fclose(fp);
	return n;
}

/*
 * Waits (bounded: 20 s) until the database file (not the WAL) holds at least
 * `bytes`: only a checkpoint puts committed pages there. Returns whether it
 * did.
 */
static int wait_file(ags_store *s, const char *path, long long bytes)
{
	for (int i = 0; i < 2000; i++) {
		if (ags_store_ckpt_runs(s) > 0 && file_size(path) >= bytes)
			return 1;
		tu_sleep_ms(10);
	}
	return 0;
}

/*
 * Writes go to the WAL; the checkpointer copies them into the database file
 * once the writer pauses (the writer itself never does below the hard size).
 */
static void checkpoint_follows_a_pause(void **state)
{
	fx *f = *state;
	ags_ckpt_limits lim = {.soft_frames = 4,
	                       .hard_frames = 1 << 30,
	                       .writer_frames = 1 << 30,
	                       .quiet_ms = 30,
	                       .max_wait_ms = 3600 * 1000};
	ags_store_set_ckpt_limits(f->s, &lim);
	long long before = file_size(f->path);
	/* ~450 KB; each batch of 50 adds more than soft_frames, so whatever the
	 * last one finds, a pause follows it with the WAL over soft_frames. */
	write_many(f->s, 0, 1000);
	assert_true(wait_file(f->s, f->path, before + 400 * 1000));
	assert_int_equal(count_of(f->s), 1000);
	assert_consistent(f->s);
}

/* With no pause, the WAL's hard size (or the longest wait) starts one anyway. */
static void checkpoint_without_a_pause(void **state)
{
	fx *f = *state;
	ags_ckpt_limits lim = {.soft_frames = 4,
	                       .hard_frames = 40,
	                       .writer_frames = 1 << 30,
	                       .quiet_ms = 3600 * 1000,
	                       .max_wait_ms = 3600 * 1000};
	ags_store_set_ckpt_limits(f->s, &lim);
	write_many(f->s, 0, 1000);
	assert_true(wait_file(f->s, f->path, 100 * 1000)); /* one hard size's worth, at least */

	/* A second store: below the hard size, the longest wait ends it. */
	char *p2 = tu_sprintf("%s/second.db", f->dir);
	ags_store *s2 = open_at(p2);
	lim.hard_frames = 1 << 30;
	lim.max_wait_ms = 30;
	ags_store_set_ckpt_limits(s2, &lim);
	write_many(s2, 0, 100);
	assert_true(wait_file(s2, p2, 40 * 1000));
	ags_store_close(s2);
	free(p2);
}

/* 10,000 changes are one transaction: a failure at the last one leaves none of them. */
static void large_batch_is_one_transaction(void **state)
{
	fx *f = *state;
	enum { N = 10000 };
	ags_pattern **p = calloc(N, sizeof(*p));
	assert_non_null(p);
	for (int i = 0; i < N; i++) {
		char id[16];
		snprintf(id, sizeof(id), i == N - 1 ? "poison" : "big%d", i);
		p[i] = mk(id, 1, i, "1");
	}
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, POISON_SQL, NULL, NULL, NULL), SQLITE_OK);
	ags_error err;
	assert_int_equal(ags_store_apply_batch(f->s, (const ags_pattern *const *)p, N, NULL, &err),
	                 AGS_ERR_STORE);
	assert_int_equal(ags_store_seq(f->s), 0);
	assert_int_equal(count_of(f->s), 0);
	ags_pattern *got = NULL;
	assert_int_equal(ags_store_get(f->s, "big0", &got), AGS_ERR_NOT_FOUND);
	assert_int_equal(sqlite3_exec(db, "DROP TRIGGER poison", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(ags_store_apply_batch(f->s, (const ags_pattern *const *)p, N, NULL, &err),
	                 0);
	assert_int_equal(ags_store_seq(f->s), N);
	assert_int_equal(count_of(f->s), N);
	assert_consistent(f->s);
	for (int i = 0; i < N; i++)
		ags_pattern_del(p[i]);
	free(p);
}

/* Applies one change with a record clock (`vc` JSON, or writer/tick), consuming it. */
static int apply_vc(ags_store *s, ags_pattern *p, const char *origin, const char *vc,
                    const char *writer, uint64_t tick, ags_apply_info *info)
{
	const ags_pattern *pp = p;
	ags_change_meta m = {origin, NULL};
	ags_change_clock ck = {.vc = vc, .writer = writer, .tick = tick};
	ags_apply_result r;
	ags_error err;
	int rc = ags_store_apply_batch_kv(s, &pp, &m, &ck, 1, NULL, 0, &r, info, &err);
	ags_pattern_del(p);
	if (rc)
		fail_msg("apply: %s", err.message);
	return r.outcome;
}

static int list_one(void *ud, const ags_conflict_info *c)
{
	ags_conflict_info *out = ud;
	*out = *c;
	/* Only the scalar fields outlive the call. */
	out->id = NULL;
	out->winner_checksum = out->winner_origin = out->loser_checksum = out->loser_origin = NULL;
	out->loser_vc = NULL;
	assert_non_null(c->loser);
	assert_string_equal(ags_pattern_id(c->loser), "r");
	return 0;
}

static void record_clocks_detect_concurrent_writes(void **state)
{
	fx *f = *state;
	ags_apply_info info;
	ags_record_head h;
	char *vc = NULL;
	/* A local write: the writer's tick makes the record clock. */
	assert_int_equal(apply_vc(f->s, mk("r", 1, 10, "1"), NULL, NULL, "a", 4, &info),
	                 AGS_APPLY_INSERTED);
	assert_false(info.conflict);
	assert_int_equal(ags_store_head_vc(f->s, "r", &h, &vc), 0);
	assert_string_equal(vc, "{\"a\":4}");
	free(vc);
	/* A later local write by b follows what is stored. */
	assert_int_equal(apply_vc(f->s, mk("r", 2, 20, "2"), NULL, NULL, "b", 1, &info),
	                 AGS_APPLY_UPDATED);
	assert_false(info.conflict);
	assert_int_equal(ags_store_head_vc(f->s, "r", &h, &vc), 0);
	assert_string_equal(vc, "{\"a\":4,\"b\":1}");
	free(vc);
	/* A received change that saw only a's write is concurrent: a conflict, though its
	 * version is higher and so it wins. The stored version is kept as the loser. */
	assert_int_equal(
	    apply_vc(f->s, mk("r", 3, 5, "3"), "peer-c", "{\"a\":4,\"c\":1}", NULL, 0, &info),
	    AGS_APPLY_UPDATED);
	assert_true(info.conflict);
	uint64_t n = 0, max = 0;
	assert_int_equal(ags_store_conflict_count(f->s, &n, &max), 0);
	assert_int_equal(n, 1);
	assert_int_equal(max, info.conflict_seq);
	ags_conflict_info c;
	assert_int_equal(ags_store_conflicts(f->s, 0, NULL, 0, list_one, &c), 0);
	assert_int_equal(c.loser_version, 2);
	assert_int_equal(c.winner_version, 3);
	/* One that follows the stored clock is no conflict; a duplicate neither. */
	assert_int_equal(
	    apply_vc(f->s, mk("r", 4, 5, "4"), "peer-c", "{\"a\":4,\"c\":2}", NULL, 0, &info),
	    AGS_APPLY_UPDATED);
	assert_false(info.conflict);
	assert_int_equal(apply_vc(f->s, mk("r", 4, 5, "4"), "peer-d", "{\"d\":1}", NULL, 0, &info),
	                 AGS_APPLY_DUPLICATE);
	assert_false(info.conflict);
	/* Concurrent and older: stale, still a conflict, the incoming one is the loser. */
	assert_int_equal(
	    apply_vc(f->s, mk("r", 1, 5, "\"old\""), "peer-d", "{\"d\":1}", NULL, 0, &info),
	    AGS_APPLY_STALE);
	assert_true(info.conflict);
	/* Listing by origin: peer-d is in one, peer-c in one (winner), nobody else. */
	n = 0;
	assert_int_equal(ags_store_conflicts(f->s, 0, "peer-d", 0, list_one, &c), 0);
	assert_int_equal(c.loser_version, 1);
	assert_int_equal(ags_store_conflict_count(f->s, &n, NULL), 0);
	assert_int_equal(n, 2);
	/* Without clocks, same version and other content is a conflict as before. */
	assert_int_equal(apply1(f->s, mk("s", 1, 1, "1"), NULL), AGS_APPLY_INSERTED);
	assert_int_equal(apply_vc(f->s, mk("s", 1, 2, "2"), NULL, NULL, NULL, 0, &info),
	                 AGS_APPLY_CONFLICT_WON);
	assert_true(info.conflict);
}

/* SQL that puts a store's state back in the table versions 1 to 4 kept it in. */
#define TO_V4_STATE                                                                                \
	"CREATE TABLE state(k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;"                   \
	"INSERT INTO state SELECT substr(k, 3), v FROM meta WHERE k LIKE 's.%';"                   \
	"DELETE FROM meta WHERE k LIKE 's.%';"

/*
 * Rewrites the store as an older schema would have left it: closes it, puts
 * its state back in the state table versions 1 to 4 had, runs `sql` on the
 * file, and opens it again (which migrates it).
 */
static void as_old_version(fx *f, const char *sql)
{
	ags_store_close(f->s);
	f->s = NULL;
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, TO_V4_STATE, NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	f->s = open_at(f->path);
}

/* Version 4 kept the state in a table of its own; version 5 moves it into meta. */
static void version_4_store_moves_state_into_meta(void **state)
{
	fx *f = *state;
	assert_int_equal(apply1(f->s, mk("a", 1, 1, "1"), NULL), AGS_APPLY_INSERTED);
	assert_int_equal(ags_store_state_set(f->s, "cursor", "abc 7"), 0);
	assert_int_equal(ags_store_state_set(f->s, "seq", "not the sequence"), 0);
	char d_before[65];
	ags_store_digest(f->s, d_before);
	as_old_version(f, "PRAGMA user_version = 4");
	sqlite3 *db = NULL;
	char buf[32];
	assert_int_equal(ags_store_state_get(f->s, "cursor", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "abc 7");
	assert_int_equal(ags_store_state_get(f->s, "seq", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "not the sequence");
	assert_int_equal(ags_store_seq(f->s), 1); /* a state key named "seq" is not meta's */
	char d[65];
	ags_store_digest(f->s, d);
	assert_string_equal(d, d_before);
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	sqlite3_stmt *st = NULL;
	assert_int_equal(
	    sqlite3_prepare_v2(db,
	                       "SELECT (SELECT count(*) FROM sqlite_schema WHERE name ="
	                       " 'state'), (SELECT count(*) FROM meta WHERE k LIKE"
	                       " 's.%'), (SELECT user_version FROM pragma_user_version)",
	                       -1, &st, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 0);
	assert_int_equal(sqlite3_column_int(st, 1), 2);
	assert_int_equal(sqlite3_column_int(st, 2), AGS_STORE_SCHEMA_VERSION);
	sqlite3_finalize(st);
	sqlite3_close(db);
	assert_int_equal(ags_store_state_set(f->s, "cursor", NULL), 0);
	assert_int_equal(ags_store_state_get(f->s, "cursor", buf, sizeof(buf)), AGS_ERR_NOT_FOUND);
}

static void version_1_store_is_migrated(void **state)
{
	fx *f = *state;
	assert_int_equal(apply1(f->s, mk("old", 1, 1, "1"), NULL), AGS_APPLY_INSERTED);
	as_old_version(f, "ALTER TABLE patterns DROP COLUMN vc; DROP TABLE conflicts;"
	                  " DROP TABLE prev; ALTER TABLE patterns DROP COLUMN prio;"
	                  " PRAGMA user_version = 1");
	sqlite3 *db = NULL;
	ags_pattern *p = NULL;
	assert_int_equal(ags_store_get(f->s, "old", &p), 0);
	ags_pattern_del(p);
	ags_apply_info info;
	assert_int_equal(apply_vc(f->s, mk("old", 2, 1, "2"), "x", "{\"x\":1}", NULL, 0, &info),
	                 AGS_APPLY_UPDATED);
	uint64_t n = 1;
	assert_int_equal(ags_store_conflict_count(f->s, &n, NULL), 0);
	assert_int_equal(n, 0);
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), AGS_STORE_SCHEMA_VERSION);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* A pattern whose JSON is about `n` bytes of content plus `mark`. */
static ags_pattern *mk_big(const char *id, int64_t version, size_t n, const char *mark)
{
	char *fill = malloc(n + 1);
	memset(fill, 'z', n);
	fill[n] = '\0';
	char *data = tu_sprintf("{\"fill\":\"%s\",\"mark\":\"%s\"}", fill, mark);
	ags_pattern *p = mk(id, version, version, data);
	free(data);
	free(fill);
	return p;
}

static int prev_of(ags_store *s, const char *id, int64_t *version, uint64_t *seq, char **body)
{
	char cs[65];
	size_t len = 0;
	*body = NULL;
	int r = ags_store_prev_get(s, id, version, cs, seq, body, &len);
	if (r == 0)
		assert_int_equal(strlen(cs), 64);
	return r;
}

static void previous_version_of_large_records_is_kept(void **state)
{
	fx *f = *state;
	int64_t v = 0;
	uint64_t seq = 0, seq1 = 0;
	char *body = NULL;
	/* Small records keep nothing. */
	assert_int_equal(apply1(f->s, mk("small", 1, 1, "1"), NULL), AGS_APPLY_INSERTED);
	assert_int_equal(apply1(f->s, mk("small", 2, 2, "2"), NULL), AGS_APPLY_UPDATED);
	assert_int_equal(prev_of(f->s, "small", &v, &seq, &body), AGS_ERR_NOT_FOUND);
	/* A large record's replaced version is kept, with its sequence. */
	ags_pattern *p1 = mk_big("big", 1, 3000, "one");
	size_t l1 = 0;
	char *j1 = strdup(ags_pattern_json(p1, &l1));
	char cs1[65];
	snprintf(cs1, sizeof(cs1), "%s", ags_pattern_checksum(p1));
	assert_int_equal(apply1(f->s, p1, &seq1), AGS_APPLY_INSERTED);
	assert_int_equal(prev_of(f->s, "big", &v, &seq, &body), AGS_ERR_NOT_FOUND);
	assert_int_equal(apply1(f->s, mk_big("big", 2, 3000, "two"), NULL), AGS_APPLY_UPDATED);
	char cs[65];
	size_t len = 0;
	assert_int_equal(ags_store_prev_get(f->s, "big", &v, cs, &seq, &body, &len), 0);
	assert_int_equal(v, 1);
	assert_int_equal(seq, seq1);
	assert_string_equal(cs, cs1);
	assert_int_equal(len, l1);
	assert_memory_equal(body, j1, l1);
	free(body);
	/* A stale change keeps the base as it was; the next update overwrites it. */
	assert_int_equal(apply1(f->s, mk_big("big", 1, 3000, "old"), NULL), AGS_APPLY_STALE);
	assert_int_equal(prev_of(f->s, "big", &v, &seq, &body), 0);
	assert_int_equal(v, 1);
	free(body);
	assert_int_equal(apply1(f->s, mk_big("big", 3, 3000, "three"), NULL), AGS_APPLY_UPDATED);
	assert_int_equal(prev_of(f->s, "big", &v, &seq, &body), 0);
	assert_int_equal(v, 2);
	assert_non_null(strstr(body, "two"));
	free(body);
	/* Kept across a reopen. */
	ags_store_close(f->s);
	f->s = open_at(f->path);
	assert_int_equal(prev_of(f->s, "big", &v, &seq, &body), 0);
	assert_int_equal(v, 2);
	free(body);
	/* Replacing a small version drops it; so does a delete. */
	assert_int_equal(apply1(f->s, mk("big", 4, 4, "4"), NULL), AGS_APPLY_UPDATED);
	assert_int_equal(prev_of(f->s, "big", &v, &seq, &body), 0);
	assert_int_equal(v, 3);
	free(body);
	assert_int_equal(apply1(f->s, mk_big("big", 5, 3000, "five"), NULL), AGS_APPLY_UPDATED);
	assert_int_equal(prev_of(f->s, "big", &v, &seq, &body), AGS_ERR_NOT_FOUND);
	assert_int_equal(apply1(f->s, mk_big("big", 6, 3000, "six"), NULL), AGS_APPLY_UPDATED);
	assert_int_equal(prev_of(f->s, "big", &v, &seq, &body), 0);
	assert_int_equal(v, 5);
	free(body);
	assert_int_equal(apply1(f->s, tomb("big", 7, 7), NULL), AGS_APPLY_UPDATED);
	assert_int_equal(prev_of(f->s, "big", &v, &seq, &body), AGS_ERR_NOT_FOUND);
	free(j1);
}

static void version_2_store_is_migrated_to_delta_bases(void **state)
{
	fx *f = *state;
	assert_int_equal(apply1(f->s, mk_big("big", 1, 3000, "one"), NULL), AGS_APPLY_INSERTED);
	as_old_version(f, "DROP TABLE prev; ALTER TABLE patterns DROP COLUMN prio;"
	                  " PRAGMA user_version = 2");
	int64_t v = 0;
	uint64_t seq = 0;
	char *body = NULL;
	assert_int_equal(prev_of(f->s, "big", &v, &seq, &body), AGS_ERR_NOT_FOUND);
	assert_int_equal(apply1(f->s, mk_big("big", 2, 3000, "two"), NULL), AGS_APPLY_UPDATED);
	assert_int_equal(prev_of(f->s, "big", &v, &seq, &body), 0);
	assert_int_equal(v, 1);
	free(body);
	ags_store_close(f->s);
	f->s = open_at(f->path);
	assert_int_equal(prev_of(f->s, "big", &v, &seq, &body), 0);
	free(body);
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), AGS_STORE_SCHEMA_VERSION);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static ags_pattern *mk_prio(const char *id, int prio)
{
	char *json = tu_sprintf("{\"id\":\"%s\",\"agentId\":\"a\",\"type\":\"t\",\"data\":{},"
	                        "\"metadata\":{\"source\":\"s\",\"tags\":[],\"priority\":%d},"
	                        "\"timestamp\":1,\"version\":1}",
	                        id, prio);
	ags_pattern *p = NULL;
	ags_error err;
	if (ags_pattern_parse(json, strlen(json), NULL, &p, &err))
		fail_msg("parse: %s", err.message);
	free(json);
	return p;
}

static void rows_list_the_log_as_stored(void **state)
{
	fx *f = *state;
	ags_pattern *p[] = {mk("a", 1, 1, "1"), mk_prio("b", 9), mk("c", 1, 1, "3"),
	                    mk("d", 1, 1, "4")};
	ags_change_meta meta[] = {
	    {NULL, NULL}, {"peer-x", NULL}, {"peer-y", "peers:z"}, {"peer-x", NULL}};
	ags_apply_result res[4];
	ags_error err;
	assert_int_equal(ags_store_apply_batch_ex(f->s, (const ags_pattern *const *)p, meta, 4,
	                                          NULL, NULL, res, &err),
	                 0);
	for (int i = 0; i < 4; i++)
		ags_pattern_del(p[i]);
	assert_int_equal(apply1(f->s, tomb("a", 2, 2), NULL), AGS_APPLY_UPDATED);
	uint64_t head = ags_store_seq(f->s);
	assert_int_equal(head, 5);
	assert_int_equal(ags_store_seq_committed(f->s), head);

	/* Everything: a's tombstone moved to the end, bodies as stored, priorities. */
	listing l = {0};
	uint64_t upto = 0;
	assert_int_equal(ags_store_rows(f->s, 0, 100, NULL, collect_ex, &l, &upto), 0);
	assert_int_equal(l.n, 4);
	assert_string_equal(l.id[0], "b");
	assert_int_equal(l.prio[0], 9);
	assert_int_equal(l.prio[1], 0);
	assert_string_equal(l.id[3], "a");
	assert_true(l.tomb[3]);
	assert_string_equal(l.body[3], "");
	ags_pattern *got = NULL;
	assert_int_equal(ags_store_get(f->s, "c", &got), 0);
	assert_string_equal(l.body[1], ags_pattern_json(got, NULL));
	ags_pattern_del(got);
	assert_int_equal(upto, head);

	/* Leaving out one origin: its rows are not listed, but covered. */
	memset(&l, 0, sizeof(l));
	assert_int_equal(ags_store_rows(f->s, 0, 100, "peer-x", collect_ex, &l, &upto), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.id[0], "c");
	assert_string_equal(l.id[1], "a");
	assert_int_equal(upto, head);

	/* At the limit, the listing covers up to its last row only. */
	memset(&l, 0, sizeof(l));
	assert_int_equal(ags_store_rows(f->s, 0, 1, "peer-x", collect_ex, &l, &upto), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(upto, l.seq[0]);
	/* A callback that stops: its value, and the row it stopped on covered. */
	memset(&l, 0, sizeof(l));
	l.stop_after = 2;
	assert_int_equal(ags_store_rows(f->s, 0, 100, NULL, collect_ex, &l, &upto), 7);
	assert_int_equal(upto, l.seq[1]);
	/* Nothing after the head. */
	memset(&l, 0, sizeof(l));
	assert_int_equal(ags_store_rows(f->s, head, 100, NULL, collect_ex, &l, &upto), 0);
	assert_int_equal(l.n, 0);
	assert_int_equal(upto, head);
	assert_int_equal(ags_store_rows(f->s, 0, 0, NULL, collect_ex, &l, &upto), AGS_ERR_INVALID);
}

static void version_3_store_is_migrated_to_priorities(void **state)
{
	fx *f = *state;
	assert_int_equal(apply1(f->s, mk_prio("hi", 8), NULL), AGS_APPLY_INSERTED);
	assert_int_equal(apply1(f->s, mk("plain", 1, 1, "{\"priority\":5}"), NULL),
	                 AGS_APPLY_INSERTED);
	as_old_version(f, "ALTER TABLE patterns DROP COLUMN prio; PRAGMA user_version = 3");
	listing l = {0};
	uint64_t upto = 0;
	assert_int_equal(ags_store_rows(f->s, 0, 100, NULL, collect_ex, &l, &upto), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.prio[0], 8);
	/* A "priority" inside data is not metadata.priority. */
	assert_int_equal(l.prio[1], 0);
}

static unsigned mode_of(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0)
		fail_msg("%s: missing", path);
	return (unsigned)(st.st_mode & 07777);
}

/*
 * Issue 17.5: in a directory others may enter (0755, as systemd's StateDirectory makes
 * it) and with the usual umask 022, the store's files are still 0600: the database, its
 * WAL and shared memory. A file left with mode 0644 is narrowed when the store opens.
 */
static void store_files_are_private(void **state)
{
	fx *f = *state;
	char *dir = tu_sprintf("%s/open", f->dir), *path = tu_sprintf("%s/store.db", dir);
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(chmod(dir, 0755), 0);
	mode_t old = umask(022);
	ags_store *s = open_at(path);
	assert_int_equal(apply1(s, mk("secret", 1, 1, "{\"k\":1}"), NULL), AGS_APPLY_INSERTED);
	char *wal = tu_sprintf("%s-wal", path), *shm = tu_sprintf("%s-shm", path);
	assert_int_equal(mode_of(path), 0600);
	assert_int_equal(mode_of(wal), 0600);
	assert_int_equal(mode_of(shm), 0600);
	ags_store_close(s);
	assert_int_equal(chmod(path, 0644), 0);
	s = open_at(path);
	assert_int_equal(mode_of(path), 0600);
	ags_store_close(s);
	umask(old);
	free(wal);
	free(shm);
	free(path);
	free(dir);
}

static void expired_records_keep_no_delta_base(void **state)
{
	fx *f = *state;
	int64_t now = ags_now_ms();
	char *fill = malloc(3001);
	memset(fill, 'z', 3000);
	fill[3000] = '\0';
	char *data = tu_sprintf("{\"fill\":\"%s\"}", fill);
	assert_int_equal(apply1(f->s, mkfull("e", 1, 1, "t", "a", "[]", data, now + 3600000), NULL),
	                 AGS_APPLY_INSERTED);
	assert_int_equal(apply1(f->s, mkfull("e", 2, 2, "t", "a", "[]", data, now + 3600000), NULL),
	                 AGS_APPLY_UPDATED);
	free(data);
	free(fill);
	int64_t v = 0;
	uint64_t seq = 0, purged = 0;
	char *body = NULL;
	assert_int_equal(prev_of(f->s, "e", &v, &seq, &body), 0);
	free(body);
	assert_int_equal(ags_store_sweep(f->s, now + 7200000, &purged), 0);
	assert_int_equal(purged, 1);
	assert_int_equal(prev_of(f->s, "e", &v, &seq, &body), AGS_ERR_NOT_FOUND);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(each_outcome, setup, teardown),
	    cmocka_unit_test_setup_teardown(store_files_are_private, setup, teardown),
	    cmocka_unit_test_setup_teardown(equal_timestamp_conflict_follows_compare, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(batch_of_mixed_outcomes, setup, teardown),
	    cmocka_unit_test_setup_teardown(tombstone_beats_late_older_insert, setup, teardown),
	    cmocka_unit_test_setup_teardown(conflict_resolves_the_same_in_either_order, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(rejects_invalid_arguments, setup, teardown),
	    cmocka_unit_test_setup_teardown(expired_on_arrival_is_not_returned, setup, teardown),
	    cmocka_unit_test_setup_teardown(sweep_purges_and_only_a_higher_version_returns, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(unswept_expired_is_hidden_but_counted_in_digest, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(digest_is_order_independent, setup, teardown),
	    cmocka_unit_test_setup_teardown(digest_matches_definition, setup, teardown),
	    cmocka_unit_test_setup_teardown(changes_in_order_without_superseded_or_expired, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(listing_callback_may_reenter, setup, teardown),
	    cmocka_unit_test_setup_teardown(query_filters_and_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(identity_and_counters_persist, setup, teardown),
	    cmocka_unit_test_setup_teardown(newer_schema_is_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(previous_version_of_large_records_is_kept, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(version_2_store_is_migrated_to_delta_bases, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(expired_records_keep_no_delta_base, setup, teardown),
	    cmocka_unit_test_setup_teardown(state_get_set, setup, teardown),
	    cmocka_unit_test_setup_teardown(apply_ex_stores_meta_and_state_atomically, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(failed_batch_changes_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(refused_apply_fails_cleanly, setup, teardown),
	    cmocka_unit_test_setup_teardown(large_batch_is_one_transaction, setup, teardown),
	    cmocka_unit_test_setup_teardown(group_is_one_transaction, setup, teardown),
	    cmocka_unit_test_setup_teardown(checkpoint_follows_a_pause, setup, teardown),
	    cmocka_unit_test_setup_teardown(checkpoint_without_a_pause, setup, teardown),
	    cmocka_unit_test_setup_teardown(record_clocks_detect_concurrent_writes, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(version_1_store_is_migrated, setup, teardown),
	    cmocka_unit_test_setup_teardown(version_4_store_moves_state_into_meta, setup, teardown),
	    cmocka_unit_test_setup_teardown(rows_list_the_log_as_stored, setup, teardown),
	    cmocka_unit_test_setup_teardown(epochs_start_at_every_open, setup, teardown),
	    cmocka_unit_test_setup_teardown(version_3_store_is_migrated_to_priorities, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
