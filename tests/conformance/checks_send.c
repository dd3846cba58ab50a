/* SPDX-License-Identifier: Apache-2.0 */
/* Checks of PROTOCOL.md with the daemon sending: catch-up, priority, batches, window, resume. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>

#include "canon.h"
#include "conform.h"
#include "daemonutil.h"
#include "testutil.h"

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond))                                                                       \
			return failed(__VA_ARGS__);                                                \
	} while (0)

/* Puts n patterns of type `type` through the API (priorities from prio[], or none). */
static const char *put_n(const char *type, int n, const int *prio, const char *data)
{
	size_t cap = (size_t)n * (400 + (data ? strlen(data) : 0)) + 16, len = 1;
	char *all = autofree(malloc(cap));
	all[0] = '[';
	for (int i = 0; i < n; i++) {
		char p[32] = "";
		if (prio && prio[i])
			snprintf(p, sizeof(p), ",\"priority\":%d", prio[i]);
		len += (size_t)snprintf(
		    all + len, cap - len,
		    "%s{\"id\":\"%s-%d\",\"agentId\":\"conformance\",\"type\":\"%s\",\"data\":%s,"
		    "\"metadata\":{\"source\":\"s\",\"tags\":[\"%s\"]%s},\"timestamp\":"
		    "1700000000000,"
		    "\"version\":1}",
		    i ? "," : "", type, i, type, data ? data : "{\"n\":1}", type, p);
	}
	snprintf(all + len, cap - len, "]");
	CHECK(api_put(all) == 0, "the API refused the patterns");
	return NULL;
}

static char *filter_for(const char *type)
{
	return autofree(tu_sprintf(",\"filter\":{\"types\":[\"%s\"]}", type));
}

/* Reads batches until `want` entries came (ACKing each unless no_ack); entries appended. */
struct got {
	char *ids[512];
	int prio[512];
	int n, batches, max_entries, codecs[3], empty;
	size_t max_frame;
	uint64_t last_upto;
	char err[512];
};

static const char *collect(struct sess *s, struct got *g, int want, int ack)
{
	const char *why = NULL;
	while (g->n < want) {
		struct rbatch b;
		int r = read_batch(s, &b, WAIT_MS, &why);
		if (r != 1)
			return r == 0 ? failed("got %d of %d entries, then nothing", g->n, want)
			              : (why ? why
			                     : failed("closed after %d of %d entries", g->n, want));
		if (strstr(b.raw, "\"p\"")) { /* batches of deletes only are other checks' */
			g->batches++;
			g->codecs[b.codec]++;
		}
		if (b.count == 0)
			g->empty++;
		if ((int)b.count > g->max_entries)
			g->max_entries = (int)b.count;
		if (b.frame_len > g->max_frame)
			g->max_frame = b.frame_len;
		if (b.upto)
			g->last_upto = b.upto;
		yyjson_val *root = yyjson_doc_get_root(b.doc), *e;
		size_t i, max;
		yyjson_arr_foreach(root, i, max, e)
		{
			/* Deletes pass every filter: those of other checks come along; skip them.
			 */
			yyjson_val *p = yyjson_obj_get(e, "p"), *rec = p;
			if (!p)
				continue;
			if (g->n < 512) {
				g->ids[g->n] =
				    autofree(strdup(yyjson_get_str(yyjson_obj_get(rec, "id"))));
				g->prio[g->n] =
				    (int)yyjson_get_sint(yyjson_ptr_get(rec, "/metadata/priority"));
			}
			g->n++;
			if (p) {
				/* Every put is the serialised form, and its checksum is right. */
				char *txt = autofree(yyjson_val_write(p, 0, NULL));
				char *want_txt = autofree(canon_pattern(txt, 1, NULL));
				if (strcmp(txt, want_txt) != 0) {
					rbatch_free(&b);
					return failed(
					    "a put is not in serialised form:\n  %.300s\n  want\n  "
					    "%.300s",
					    txt, want_txt);
				}
			}
		}
		if (ack)
			ack_batch(s, &b);
		rbatch_free(&b);
	}
	return NULL;
}

/* Opens a session with our HELLO `extra` members replacing the defaults' batchSize etc. */
static struct sess *open_with(const char *id, const char *members, const char **why)
{
	struct sess *s = sess_connect(id, NULL, why);
	if (!s)
		return NULL;
	char *h = autofree(tu_sprintf("{\"proto\":1,\"node\":\"%s\",\"tenant\":\"default\","
	                              "\"store\":\"%s\"%s}",
	                              s->id, s->store, members));
	send_json(s, F_HELLO, h);
	if (read_frame(s, WAIT_MS) != 1 || s->type != F_HELLO) {
		*why = failed("no HELLO from the daemon (0x%llx '%s')",
		              (unsigned long long)cq_end(s->c)->code, cq_end(s->c)->reason);
		return NULL;
	}
	s->hello = yyjson_read((const char *)s->payload, s->len, 0);
	return s;
}

static const char *send_all_after_cursor(void)
{
	const char *type = uniq("cu-");
	const char *r = put_n(type, 30, NULL, NULL);
	if (r)
		return r;
	const char *why;
	struct sess *s =
	    open_with("c",
	              autofree(tu_sprintf(",\"codecs\":[],\"maxFrame\":65536,\"batchSize\":7%s",
	                                  filter_for(type))),
	              &why);
	CHECK(s, "%s", why);
	struct got g = {0};
	r = collect(s, &g, 30, 1);
	if (r)
		return r;
	for (int i = 0; i < 30; i++)
		CHECK(strcmp(g.ids[i], autofree(tu_sprintf("%s-%d", type, i))) == 0,
		      "entry %d is %s, want log order", i, g.ids[i]);
	CHECK(g.max_entries <= 7, "a batch held %d entries, over our batchSize 7", g.max_entries);
	CHECK(g.codecs[1] == 0 && g.codecs[2] == 0, "compressed although we listed no codec");
	yyjson_doc *st = autodoc(api_state());
	uint64_t seq = yyjson_get_uint(yyjson_ptr_get(yyjson_doc_get_root(st), "/store/seq"));
	/* The stream is complete up to the daemon's sequence once its last batch is applied. */
	for (int i = 0; i < 20 && g.last_upto < seq; i++) {
		struct rbatch b;
		if (read_batch(s, &b, 300, &why) != 1)
			break;
		if (b.upto)
			g.last_upto = b.upto;
		ack_batch(s, &b);
		rbatch_free(&b);
	}
	CHECK(g.last_upto == seq, "last uptoSeq %llu, the daemon's sequence is %llu",
	      (unsigned long long)g.last_upto, (unsigned long long)seq);
	return NULL;
}

static const char *send_priority(void)
{
	const char *type = uniq("prio-");
	int prio[8] = {1, 5, 0, 10, 5, 3, 0, 10};
	const char *r = put_n(type, 8, prio, NULL);
	if (r)
		return r;
	const char *why;
	struct sess *s =
	    open_with("c",
	              autofree(tu_sprintf(",\"codecs\":[],\"maxFrame\":65536,\"batchSize\":100%s",
	                                  filter_for(type))),
	              &why);
	CHECK(s, "%s", why);
	struct got g = {0};
	r = collect(s, &g, 8, 1);
	if (r)
		return r;
	/* Highest first, then log order; no priority counts as 0 (after 1). */
	const char *want[8] = {"-3", "-7", "-1", "-4", "-5", "-0", "-2", "-6"};
	char order[256] = "";
	int ok = 1;
	for (int i = 0; i < 8; i++) {
		snprintf(order + strlen(order), sizeof(order) - strlen(order), " %s",
		         strrchr(g.ids[i], '-'));
		ok &= strcmp(strrchr(g.ids[i], '-'), want[i]) == 0;
	}
	CHECK(ok, "order%s, want -3 -7 -1 -4 -5 -0 -2 -6", order);
	return NULL;
}

static const char *send_codecs(void)
{
	const char *type = uniq("zip-");
	/* Compressible data: every batch pays. */
	const char *r = put_n(type, 20, NULL,
	                      "{\"text\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	                      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}");
	if (r)
		return r;
	const char *lists[] = {"[\"gzip\"]", "[\"zstd\",\"gzip\"]", "[\"brotli\"]"};
	int want[] = {CODEC_GZIP, CODEC_ZSTD, CODEC_NONE};
	for (int k = 0; k < 3; k++) {
		const char *why;
		struct sess *s = open_with(
		    autofree(tu_sprintf("c%d", 2 + k)),
		    autofree(tu_sprintf(",\"codecs\":%s,\"maxFrame\":65536,\"batchSize\":10%s",
		                        lists[k], filter_for(type))),
		    &why);
		CHECK(s, "%s", why);
		struct got g = {0};
		r = collect(s, &g, 20, 1);
		if (r)
			return r;
		CHECK(g.codecs[want[k]] == g.batches,
		      "codecs %s: %d none, %d gzip, %d zstd batches; want all codec %d", lists[k],
		      g.codecs[0], g.codecs[1], g.codecs[2], want[k]);
	}
	return NULL;
}

static const char *send_small_uncompressed(void)
{
	const char *type = uniq("sm-");
	const char *r = put_n(type, 1, NULL, "1");
	if (r)
		return r;
	const char *why;
	struct sess *s =
	    open_with("c",
	              autofree(tu_sprintf(",\"codecs\":[\"zstd\",\"gzip\"],\"maxFrame\":65536,"
	                                  "\"batchSize\":1%s",
	                                  filter_for(type))),
	              &why);
	CHECK(s, "%s", why);
	struct rbatch b;
	CHECK(read_batch(s, &b, WAIT_MS, &why) == 1, "no batch");
	int codec = b.codec;
	uint32_t raw = b.raw_len;
	rbatch_free(&b);
	CHECK(raw >= 256 || codec == CODEC_NONE, "a raw body of %u bytes was compressed", raw);
	return NULL;
}

static const char *send_max_frame(void)
{
	/* 12 patterns of ~20 KB of incompressible text: batches must split at 64 KiB. */
	const char *type = uniq("big-");
	char *data = autofree(malloc(20000 + 3));
	data[0] = '"';
	uint8_t rnd[10000];
	gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof(rnd));
	for (int i = 0; i < 10000; i++)
		snprintf(data + 1 + 2 * i, 3, "%02x", rnd[i]);
	data[20001] = '"';
	data[20002] = '\0';
	const char *r = put_n(type, 12, NULL, data);
	if (r)
		return r;
	const char *why;
	struct sess *s =
	    open_with("c",
	              autofree(tu_sprintf(",\"codecs\":[],\"maxFrame\":65536,\"batchSize\":100%s",
	                                  filter_for(type))),
	              &why);
	CHECK(s, "%s", why);
	struct got g = {0};
	r = collect(s, &g, 12, 1);
	if (r)
		return r;
	CHECK(g.max_frame <= 65536, "a frame of %zu bytes, over our maxFrame 65536", g.max_frame);
	return NULL;
}

static const char *send_window(void)
{
	const char *type = uniq("win-");
	const char *r = put_n(type, 40, NULL, NULL);
	if (r)
		return r;
	const char *why;
	struct sess *s =
	    open_with("c",
	              autofree(tu_sprintf(",\"codecs\":[],\"maxFrame\":65536,\"batchSize\":1%s",
	                                  filter_for(type))),
	              &why);
	CHECK(s, "%s", why);
	/* 16 batches come (each read waits as long as it takes), then nothing more. */
	struct rbatch held[32];
	int n = 0;
	while (n < 32 && read_batch(s, &held[n], n < 16 ? WAIT_MS : QUIET_MS, &why) == 1)
		n++;
	int first = n;
	if (n > 0) { /* one ACK lets exactly one more go */
		ack_batch(s, &held[0]);
		struct rbatch b;
		while (n < 40 && read_batch(s, &b, n == first ? WAIT_MS : QUIET_MS, &why) == 1) {
			n++;
			rbatch_free(&b);
		}
	}
	for (int i = 0; i < first; i++)
		rbatch_free(&held[i]);
	CHECK(first == 16, "%d batches came unacknowledged, want the window of 16", first);
	CHECK(n == 17, "one ACK let %d more go, want 1", n - first);
	return NULL;
}

static const char *send_resume_cursor(void)
{
	const char *type = uniq("res-");
	const char *r = put_n(type, 3, NULL, NULL);
	if (r)
		return r;
	yyjson_doc *st = autodoc(api_state());
	uint64_t seq = yyjson_get_uint(yyjson_ptr_get(yyjson_doc_get_root(st), "/store/seq"));
	r = put_n(autofree(tu_sprintf("%sb", type)), 2, NULL, NULL);
	if (r)
		return r;
	const char *why;
	char *filter = autofree(tu_sprintf(",\"filter\":{\"types\":[\"%s\",\"%sb\"]}", type, type));
	struct sess *s =
	    open_with("c",
	              autofree(tu_sprintf(",\"codecs\":[],\"maxFrame\":65536,\"batchSize\":100,"
	                                  "\"cursor\":{\"store\":\"%s\",\"seq\":%llu}%s",
	                                  E.store, (unsigned long long)seq, filter)),
	              &why);
	CHECK(s, "%s", why);
	struct got g = {0};
	r = collect(s, &g, 2, 1);
	if (r)
		return r;
	CHECK(strstr(g.ids[0], "b-") && strstr(g.ids[1], "b-"),
	      "after cursor %llu got %s and %s, want only the two later ones",
	      (unsigned long long)seq, g.ids[0], g.ids[1]);
	struct rbatch b;
	int more = 0;
	while (read_batch(s, &b, QUIET_MS, &why) == 1) {
		more += (int)b.count;
		ack_batch(s, &b);
		rbatch_free(&b);
	}
	CHECK(more == 0, "%d more entries than the changes after the cursor", more);
	/* A cursor of another store: everything from the beginning. */
	struct sess *s2 = open_with(
	    "c2",
	    autofree(tu_sprintf(",\"codecs\":[],\"maxFrame\":65536,\"batchSize\":100,"
	                        "\"cursor\":{\"store\":\"00000000000000000000000000000000\","
	                        "\"seq\":%llu}%s",
	                        (unsigned long long)seq, filter)),
	    &why);
	CHECK(s2, "%s", why);
	struct got g2 = {0};
	return collect(s2, &g2, 5, 1);
}

static const char *send_tombstone(void)
{
	const char *type = uniq("tomb-");
	const char *r = put_n(type, 1, NULL, NULL);
	if (r)
		return r;
	char *path = autofree(tu_sprintf("/v1/patterns/%s-0", type));
	CHECK(api("DELETE", path, NULL, NULL) == 200, "the API did not delete");
	const char *why;
	/* A delete passes any filter: ask for another type. */
	struct sess *s =
	    open_with("c",
	              autofree(tu_sprintf(",\"codecs\":[],\"maxFrame\":65536,\"batchSize\":100%s",
	                                  filter_for("no-such-type"))),
	              &why);
	CHECK(s, "%s", why);
	for (int i = 0; i < 200; i++) {
		struct rbatch b;
		if (read_batch(s, &b, WAIT_MS, &why) != 1)
			break;
		yyjson_val *e;
		size_t k, max;
		yyjson_arr_foreach(yyjson_doc_get_root(b.doc), k, max, e)
		{
			yyjson_val *d = yyjson_obj_get(e, "d");
			if (d && yyjson_equals_str(yyjson_obj_get(d, "id"),
			                           autofree(tu_sprintf("%s-0", type)))) {
				int ok = yyjson_get_sint(yyjson_obj_get(d, "version")) >= 2 &&
				         yyjson_is_int(yyjson_obj_get(d, "timestamp"));
				rbatch_free(&b);
				CHECK(ok, "the delete's version or timestamp is wrong");
				return NULL;
			}
			CHECK(!yyjson_obj_get(e, "p") ||
			          yyjson_equals_str(yyjson_ptr_get(e, "/p/type"), "no-such-type"),
			      "a put of a type the filter excludes was sent");
		}
		ack_batch(s, &b);
		rbatch_free(&b);
	}
	return failed("the delete never came");
}

static const char *send_no_echo(void)
{
	const char *why;
	const char *type = uniq("echo-");
	struct sess *s =
	    open_with("c6",
	              autofree(tu_sprintf(",\"codecs\":[],\"maxFrame\":65536,\"batchSize\":100%s",
	                                  filter_for(type))),
	              &why);
	CHECK(s, "%s", why);
	char *raw = autofree(tu_sprintf("[{\"p\":%s}]", pattern(uniq("echo-"), type, 0, 1)));
	struct batch b = {.request_id = 77, .source = s->id, .raw = raw};
	CHECK(send_batch(s, &b, &why), "%s", why);
	struct rbatch rb;
	while (read_batch(s, &rb, QUIET_MS, &why) == 1) {
		int n = (int)rb.count;
		ack_batch(s, &rb);
		rbatch_free(&rb);
		CHECK(n == 0, "our own change came back to us");
	}
	return NULL;
}

static const char *send_live(void)
{
	const char *why;
	const char *type = uniq("live-");
	struct sess *s =
	    open_with("c",
	              autofree(tu_sprintf(",\"codecs\":[],\"maxFrame\":65536,\"batchSize\":100%s",
	                                  filter_for(type))),
	              &why);
	CHECK(s, "%s", why);
	struct rbatch b;
	while (read_batch(s, &b, QUIET_MS, &why) == 1) {
		ack_batch(s, &b);
		rbatch_free(&b);
	}
	const char *r = put_n(type, 1, NULL, NULL);
	if (r)
		return r;
	struct got g = {0};
	return collect(s, &g, 1, 1);
}

static const char *send_filter_tags(void)
{
	const char *type = uniq("tag-");
	const char *r = put_n(type, 2, NULL, NULL); /* tag = type */
	if (r)
		return r;
	const char *why;
	struct sess *s =
	    open_with("c",
	              autofree(tu_sprintf(",\"codecs\":[],\"maxFrame\":65536,\"batchSize\":100,"
	                                  "\"filter\":{\"tags\":[\"zz\",\"%s\"]}",
	                                  type)),
	              &why);
	CHECK(s, "%s", why);
	struct got g = {0};
	r = collect(s, &g, 2, 1);
	if (r)
		return r;
	CHECK(strstr(g.ids[0], type) && strstr(g.ids[1], type), "another tag came: %s %s", g.ids[0],
	      g.ids[1]);
	return NULL;
}

static const char *ack_unknown_request(void)
{
	const char *why;
	struct sess *s = sess_open("c", NULL, &why);
	CHECK(s, "%s", why);
	send_json(s, F_ACK,
	          "{\"requestId\":987654321,\"success\":true,\"receivedCount\":0,"
	          "\"applied\":0,\"errors\":[],\"seq\":0}");
	int64_t code = wait_close(s, WAIT_MS);
	CHECK(code == E_PROTOCOL, "an ACK for no batch: closed with %lld", (long long)code);
	CHECK(strstr(cq_end(s->c)->reason, "987654321"),
	      "the close reason '%s' does not name 987654321", cq_end(s->c)->reason);
	return NULL;
}

static const char *ack_malformed(void)
{
	const char *why;
	struct sess *s = sess_open("c", NULL, &why);
	CHECK(s, "%s", why);
	send_json(s, F_ACK, "{\"requestId\":1}");
	int64_t code = wait_close(s, WAIT_MS);
	CHECK(code == E_PROTOCOL, "an ACK without its members: closed with %lld", (long long)code);
	return NULL;
}

static const char *ack_refusal_resent(void)
{
	const char *type = uniq("rs-");
	const char *r = put_n(type, 3, NULL, NULL);
	if (r)
		return r;
	const char *why;
	struct sess *s =
	    open_with("c",
	              autofree(tu_sprintf(",\"codecs\":[],\"maxFrame\":65536,\"batchSize\":100%s",
	                                  filter_for(type))),
	              &why);
	CHECK(s, "%s", why);
	struct rbatch b;
	int got = 0;
	while (!got && read_batch(s, &b, WAIT_MS, &why) == 1) {
		if (!strstr(b.raw, "\"p\"")) { /* only deletes of other checks */
			ack_batch(s, &b);
			rbatch_free(&b);
			continue;
		}
		yyjson_val *e;
		size_t k, max;
		yyjson_arr_foreach(yyjson_doc_get_root(b.doc), k, max, e) got +=
		    !!yyjson_obj_get(e, "p");
		/* Refuse it whole, as a receiver whose store failed would. */
		char *ack = autofree(tu_sprintf(
		    "{\"requestId\":%llu,\"success\":false,\"retry\":true,\"receivedCount\":0,"
		    "\"applied\":0,\"errors\":[{\"patternId\":\"\",\"error\":\"store busy\","
		    "\"code\":-7}],\"seq\":0}",
		    (unsigned long long)b.request_id));
		send_json(s, F_ACK, ack);
		rbatch_free(&b);
	}
	CHECK(got == 3, "the first batch had %d puts", got);
	struct got g = {0};
	r = collect(s, &g, 3, 1);
	if (r) {
		char why2[512];
		snprintf(why2, sizeof(why2), "%s", r);
		return failed("after a refusal with retry, the entries were not sent again: %s",
		              why2);
	}
	return NULL;
}

/*
 * Store epochs: a cursor of the daemon's store in its current epoch resumes
 * after its seq; in an epoch the daemon does not know (its store went back
 * past it), from the beginning.
 */
static const char *send_cursor_epoch(void)
{
	const char *type = uniq("ep-");
	const char *r = put_n(type, 2, NULL, NULL);
	if (r)
		return r;
	yyjson_doc *st = autodoc(api_state());
	uint64_t seq = yyjson_get_uint(yyjson_ptr_get(yyjson_doc_get_root(st), "/store/seq"));
	const char *why;
	struct sess *s0 = sess_open("c3", NULL, &why);
	CHECK(s0, "%s", why);
	yyjson_val *eps = yyjson_obj_get(yyjson_doc_get_root(s0->hello), "epochs");
	size_t n = yyjson_arr_size(eps);
	yyjson_val *cur = yyjson_arr_get(eps, n ? n - 1 : 0);
	const char *id = yyjson_get_str(yyjson_obj_get(cur, "id"));
	uint64_t start = yyjson_get_uint(yyjson_obj_get(cur, "start"));
	CHECK(n >= 1 && n <= 32 && id && strlen(id) == 16 && start >= 1 && start <= seq + 1,
	      "the daemon's HELLO epochs are not 1-32 {id, start} with its current one last "
	      "starting at or below its sequence + 1");
	char *filter = autofree(tu_sprintf(",\"filter\":{\"types\":[\"%s\"]}", type));
	/* Its current epoch: nothing before the cursor comes. */
	struct sess *s = open_with(
	    "c4",
	    autofree(tu_sprintf(",\"codecs\":[],\"maxFrame\":65536,\"batchSize\":100,"
	                        "\"cursor\":{\"store\":\"%s\",\"seq\":%llu,\"epoch\":\"%s\"}%s",
	                        E.store, (unsigned long long)seq, id, filter)),
	    &why);
	CHECK(s, "%s", why);
	struct rbatch b;
	int puts = 0;
	while (read_batch(s, &b, QUIET_MS, &why) == 1) {
		puts += strstr(b.raw, "\"p\"") != NULL;
		ack_batch(s, &b);
		rbatch_free(&b);
	}
	CHECK(puts == 0, "a cursor at the daemon's sequence in its current epoch: old puts came");
	/* An epoch it does not know: everything again. */
	struct sess *s2 =
	    open_with("c5",
	              autofree(tu_sprintf(",\"codecs\":[],\"maxFrame\":65536,\"batchSize\":100,"
	                                  "\"cursor\":{\"store\":\"%s\",\"seq\":%llu,"
	                                  "\"epoch\":\"0123456789abcdef\"}%s",
	                                  E.store, (unsigned long long)seq, filter)),
	              &why);
	CHECK(s2, "%s", why);
	struct got g = {0};
	r = collect(s2, &g, 2, 1);
	if (r) {
		char w[512];
		snprintf(w, sizeof(w), "%s", r);
		return failed("a cursor in an epoch the daemon does not know: %s", w);
	}
	return NULL;
}

/* A chunk with nothing for the peer still moves its cursor: a BATCH carries uptoSeq. */
static const char *send_upto_filtered(void)
{
	const char *r = put_n(uniq("flt-"), 3, NULL, NULL);
	if (r)
		return r;
	yyjson_doc *st = autodoc(api_state());
	uint64_t seq = yyjson_get_uint(yyjson_ptr_get(yyjson_doc_get_root(st), "/store/seq"));
	const char *why;
	struct sess *s =
	    open_with("c7",
	              autofree(tu_sprintf(",\"codecs\":[],\"maxFrame\":65536,\"batchSize\":100%s",
	                                  filter_for("nothing-matches"))),
	              &why);
	CHECK(s, "%s", why);
	uint64_t upto = 0;
	for (int i = 0; i < 100 && upto < seq; i++) {
		struct rbatch b;
		if (read_batch(s, &b, WAIT_MS, &why) != 1)
			break;
		int puts = strstr(b.raw, "\"p\"") != NULL;
		if (b.upto)
			upto = b.upto;
		ack_batch(s, &b);
		rbatch_free(&b);
		CHECK(!puts, "a put the filter excludes was sent");
	}
	CHECK(upto >= seq, "no BATCH carried uptoSeq %llu (last %llu)", (unsigned long long)seq,
	      (unsigned long long)upto);
	return NULL;
}

/* We refuse one put for good: the daemon counts it and goes on past it. */
static const char *ack_rejected_counted(void)
{
	const char *type = uniq("rj-");
	const char *r = put_n(type, 1, NULL, NULL);
	if (r)
		return r;
	const char *why;
	struct sess *s =
	    open_with("c9",
	              autofree(tu_sprintf(",\"codecs\":[],\"maxFrame\":65536,\"batchSize\":1000%s",
	                                  filter_for(type))),
	              &why);
	CHECK(s, "%s", why);
	struct rbatch b;
	int refused = 0;
	for (int i = 0; i < 100 && !refused && read_batch(s, &b, WAIT_MS, &why) == 1; i++) {
		if (strstr(b.raw, "\"p\"")) {
			char *ack = autofree(tu_sprintf("{\"requestId\":%llu,\"success\":false,"
			                                "\"receivedCount\":%u,\"applied\":%u,"
			                                "\"errors\":[{\"patternId\":\"%s-0\","
			                                "\"error\":\"entries[0].p.type: not "
			                                "wanted\",\"code\":-4}],\"seq\":0}",
			                                (unsigned long long)b.request_id, b.count,
			                                b.count - 1, type));
			send_json(s, F_ACK, ack);
			refused = 1;
		} else {
			ack_batch(s, &b);
		}
		rbatch_free(&b);
	}
	CHECK(refused, "no put came");
	/* The stream goes on past the refused entry: a later change arrives. */
	r = put_n(autofree(tu_sprintf("%s", type)), 2, NULL, NULL);
	if (r)
		return r;
	struct got g = {0};
	r = collect(s, &g, 1, 1);
	if (r)
		return r;
	yyjson_doc *st = autodoc(api_state());
	CHECK(yyjson_get_uint(yyjson_ptr_get(yyjson_doc_get_root(st), "/peers/c9/rejected")) >= 1,
	      "/v1/state has no peers.c9.rejected count after the peer refused a pattern for good");
	return NULL;
}

const struct check checks_send[] = {
    {"send.upto_filtered", send_upto_filtered,
     "changes filtered out still move the cursor: a BATCH (maybe count 0) carries uptoSeq"},
    {"send.catchup", send_all_after_cursor,
     "every change in log order, within our batchSize, uncompressed without codecs, uptoSeq"},
    {"send.priority", send_priority, "inside a chunk: highest priority first, then log order"},
    {"send.codecs", send_codecs, "compressed only with a codec we listed, zstd before gzip"},
    {"send.small_uncompressed", send_small_uncompressed,
     "a raw body under 256 bytes goes uncompressed"},
    {"send.max_frame", send_max_frame, "no frame larger than our maxFrame"},
    {"send.window", send_window, "at most 16 batches unacknowledged; each ACK lets one more go"},
    {"send.resume_cursor", send_resume_cursor,
     "our cursor of its store: only later changes; another store: all"},
    {"send.tombstone", send_tombstone, "deletes are sent as d entries and pass filters"},
    {"send.cursor_epoch", send_cursor_epoch,
     "HELLO epochs; a cursor in the current epoch resumes, in an unknown one starts over"},
    {"send.no_echo", send_no_echo, "changes from the peer itself are never sent back"},
    {"send.live", send_live, "a change made after catch-up is sent"},
    {"send.filter_tags", send_filter_tags, "a tag filter sends patterns with one of its tags"},
    {"ack.unknown_request", ack_unknown_request,
     "an ACK for no batch: close PROTOCOL_ERROR naming the requestId"},
    {"ack.malformed", ack_malformed, "an ACK without its members: close PROTOCOL_ERROR"},
    {"ack.rejected_counted", ack_rejected_counted,
     "an entry the peer refused for good is counted; the stream goes on past it"},
    {"ack.refusal_resent", ack_refusal_resent,
     "a batch refused with retry is sent again; nothing is skipped"},
    {NULL, NULL, NULL},
};
