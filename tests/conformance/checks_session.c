/* SPDX-License-Identifier: Apache-2.0 */
/* Checks of PROTOCOL.md: connection and stream, frames, HELLO, ERROR, close codes. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conform.h"
#include "daemonutil.h"
#include "testutil.h"

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond))                                                                       \
			return failed(__VA_ARGS__);                                                \
	} while (0)
#define OPEN(s, id, extra)                                                                         \
	const char *why = NULL;                                                                    \
	struct sess *s = sess_open(id, extra, &why);                                               \
	if (!s)                                                                                    \
		return why;

/* Sends raw bytes after our HELLO and expects the close `want`. */
static const char *expect_close_after(const char *id, const void *bytes, size_t len, int64_t want)
{
	OPEN(s, id, NULL);
	cq_send(s->c, bytes, len);
	int64_t code = wait_close(s, WAIT_MS);
	CHECK(code == want, "closed with %lld (0x%llx, '%s'), want 0x%llx", (long long)code,
	      (unsigned long long)cq_end(s->c)->code, cq_end(s->c)->reason,
	      (unsigned long long)want);
	return NULL;
}

/* Connects, sends `hello` as the first frame, expects the close `want`. */
static const char *bad_hello(const char *hello, int64_t want)
{
	const char *why;
	struct sess *s = sess_connect("c", NULL, &why);
	CHECK(s, "%s", why);
	send_json(s, F_HELLO, hello);
	int64_t code = wait_close(s, WAIT_MS);
	CHECK(code == want, "HELLO %.120s: closed with %lld ('%s'), want 0x%llx", hello,
	      (long long)code, cq_end(s->c)->reason, (unsigned long long)want);
	return NULL;
}

static char *hello_with(const char *node, const char *members)
{
	return autofree(tu_sprintf("{\"proto\":1,\"node\":\"%s\",%s}", node, members));
}

#define HELLO_REST                                                                                 \
	"\"tenant\":\"default\",\"store\":\"0123456789abcdef0123456789abcdef\","                   \
	"\"codecs\":[],\"batchSize\":100"

/* ---- connection and stream ---- */

static const char *stream_other_reset(void)
{
	OPEN(s, "c", NULL);
	uint8_t h[8];
	frame_header(h, F_HELLO, 0);
	int64_t sid = cq_send_other_stream(s->c, h, sizeof(h));
	CHECK(sid >= 0, "cannot open a second stream");
	uint64_t code = 0;
	for (int i = 0; i < 50 && !cq_stream_reset(s->c, sid, &code); i++)
		cq_pump(s->c, 100, NULL);
	CHECK(cq_stream_reset(s->c, sid, &code), "stream %lld was not reset", (long long)sid);
	CHECK(!cq_end(s->c)->closed, "the connection closed");
	/* Stream 0 still works. */
	struct batch b = {.request_id = 1, .source = s->id, .raw = "[]"};
	yyjson_val *ack = send_batch(s, &b, &why);
	CHECK(ack, "stream 0 after the reset: %s", why);
	return NULL;
}

static const char *frame_split_coalesced(void)
{
	const char *why;
	struct sess *s = sess_connect("c", NULL, &why);
	CHECK(s, "%s", why);
	/* HELLO and an empty BATCH in one write, then the BATCH's ACK; then a HELLO split. */
	const char *h = hello_json(s, NULL);
	struct batch b = {.request_id = 7, .source = s->id, .raw = "[]"};
	size_t bl;
	uint8_t *bp = autofree(batch_encode(&b, &bl));
	size_t hl = strlen(h), n = 16 + hl + bl;
	uint8_t *buf = autofree(malloc(n));
	frame_header(buf, F_HELLO, (uint32_t)hl);
	memcpy(buf + 8, h, hl);
	frame_header(buf + 8 + hl, F_BATCH, (uint32_t)bl);
	memcpy(buf + 16 + hl, bp, bl);
	/* One byte per write for the first 40 bytes, pumping in between: many packets. */
	for (size_t i = 0; i < 40; i++) {
		cq_send(s->c, buf + i, 1);
		cq_pump(s->c, 2, NULL);
	}
	cq_send(s->c, buf + 40, n - 40);
	CHECK(read_until(s, F_ACK, WAIT_MS) == 1, "no ACK for a BATCH sent in pieces");
	CHECK(yyjson_get_uint(yyjson_obj_get(frame_json(s), "requestId")) == 7, "wrong ACK");
	return NULL;
}

/* ---- frames ---- */

static const char *frame_unknown_type(void)
{
	uint8_t h[8];
	frame_header(h, 0x09, 0);
	return expect_close_after("c", h, 8, E_UNKNOWN_FRAME);
}

static const char *frame_unknown_type_first(void)
{
	uint8_t h[8];
	frame_header(h, 0x80, 0xffffffffu); /* unknown type wins over the length */
	return expect_close_after("c", h, 8, E_UNKNOWN_FRAME);
}

static const char *frame_flags(void)
{
	uint8_t h[8];
	frame_header(h, F_ACK, 0);
	h[1] = 1;
	return expect_close_after("c", h, 8, E_PROTOCOL);
}

static const char *frame_reserved(void)
{
	uint8_t h[8];
	frame_header(h, F_ACK, 0);
	h[3] = 1;
	return expect_close_after("c", h, 8, E_PROTOCOL);
}

static const char *frame_too_large(void)
{
	uint8_t h[8];
	frame_header(h, F_BATCH, (uint32_t)E.max_frame + 1); /* no payload follows: header only */
	return expect_close_after("c", h, 8, E_FRAME_TOO_LARGE);
}

static const char *frame_max_accepted(void)
{
	OPEN(s, "c", NULL);
	/* A BATCH of exactly maxFrame bytes: an empty array padded with spaces. */
	size_t hdr = 68 + strlen(s->id), raw_len = E.max_frame - hdr;
	char *raw = autofree(malloc(raw_len + 1));
	memset(raw, ' ', raw_len);
	raw[0] = '[';
	raw[raw_len - 1] = ']';
	raw[raw_len] = '\0';
	struct batch b = {.request_id = 11, .source = s->id, .raw = raw, .raw_len = raw_len};
	size_t n;
	free(batch_encode(&b, &n));
	CHECK(n == E.max_frame, "built %zu bytes, not maxFrame", n);
	yyjson_val *ack = send_batch(s, &b, &why);
	CHECK(ack, "a frame of exactly maxFrame (%llu) bytes: %s", (unsigned long long)E.max_frame,
	      why);
	CHECK(yyjson_get_bool(yyjson_obj_get(ack, "success")), "ACK success is not true");
	return NULL;
}

/* ---- HELLO ---- */

static int is_hex32(const char *s)
{
	if (!s || strlen(s) != 32)
		return 0;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return 0;
	return 1;
}

static const char *hello_daemon(void)
{
	OPEN(s, "c", NULL);
	yyjson_val *h = yyjson_doc_get_root(s->hello);
	CHECK(yyjson_is_obj(h), "HELLO is not a JSON object");
	CHECK(yyjson_get_uint(yyjson_obj_get(h, "proto")) == 1 &&
	          yyjson_is_int(yyjson_obj_get(h, "proto")),
	      "proto is not 1");
	CHECK(yyjson_equals_str(yyjson_obj_get(h, "node"), "d"), "node is not d");
	CHECK(yyjson_equals_str(yyjson_obj_get(h, "tenant"), "default"), "tenant is not default");
	CHECK(is_hex32(yyjson_get_str(yyjson_obj_get(h, "store"))), "store is not 32 hex digits");
	yyjson_val *codecs = yyjson_obj_get(h, "codecs");
	CHECK(yyjson_is_arr(codecs) && yyjson_arr_size(codecs) <= 16, "codecs is not an array");
	uint64_t mf = yyjson_get_uint(yyjson_obj_get(h, "maxFrame"));
	uint64_t bs = yyjson_get_uint(yyjson_obj_get(h, "batchSize"));
	CHECK(mf >= 65536 && mf <= 67108864, "maxFrame %llu out of range", (unsigned long long)mf);
	CHECK(bs >= 1 && bs <= 1000000, "batchSize %llu out of range", (unsigned long long)bs);
	yyjson_val *inst = yyjson_obj_get(h, "instance");
	CHECK(!inst ||
	          (yyjson_is_str(inst) && yyjson_get_len(inst) >= 1 && yyjson_get_len(inst) <= 64),
	      "instance is not a string of 1..64 bytes");
	yyjson_val *delta = yyjson_obj_get(h, "delta");
	CHECK(!delta || yyjson_is_bool(delta), "delta is not a boolean");
	return NULL;
}

static const char *hello_version_mismatch(void)
{
	return bad_hello("{\"proto\":2,\"node\":\"c\"," HELLO_REST ",\"maxFrame\":65536}",
	                 E_VERSION_MISMATCH);
}

static const char *hello_version_error_frame(void)
{
	const char *why;
	struct sess *s = sess_connect("c", NULL, &why);
	CHECK(s, "%s", why);
	send_json(s, F_HELLO, "{\"proto\":2}");
	int64_t code = wait_close(s, WAIT_MS);
	CHECK(code == E_VERSION_MISMATCH, "closed with %lld, want VERSION_MISMATCH",
	      (long long)code);
	CHECK(s->errorf, "no ERROR frame before the close");
	yyjson_val *e = yyjson_doc_get_root(s->errorf);
	CHECK(yyjson_get_uint(yyjson_obj_get(e, "code")) == E_VERSION_MISMATCH &&
	          yyjson_is_str(yyjson_obj_get(e, "error")),
	      "ERROR frame is not {code: 261, error: ...}");
	return NULL;
}

static const char *hello_version_first(void)
{
	/* proto 2 with every other member wrong: still a version mismatch. */
	return bad_hello("{\"node\":5,\"proto\":2,\"tenant\":[]}", E_VERSION_MISMATCH);
}

static const char *hello_proto_not_integer(void)
{
	const char *r = bad_hello(
	    "{\"proto\":\"1\",\"node\":\"c\"," HELLO_REST ",\"maxFrame\":65536}", E_BAD_HELLO);
	if (!r)
		r = bad_hello("{\"proto\":1.0,\"node\":\"c\"," HELLO_REST ",\"maxFrame\":65536}",
		              E_BAD_HELLO);
	return r;
}

static const char *hello_member_missing(void)
{
	return bad_hello("{\"proto\":1,\"node\":\"c\",\"tenant\":\"default\","
	                 "\"store\":\"0123456789abcdef0123456789abcdef\",\"codecs\":[],"
	                 "\"maxFrame\":65536}",
	                 E_BAD_HELLO); /* no batchSize */
}

static const char *hello_node_mismatch(void)
{
	return bad_hello(hello_with("c2", HELLO_REST ",\"maxFrame\":65536"), E_BAD_HELLO);
}

static const char *hello_tenant_mismatch(void)
{
	return bad_hello("{\"proto\":1,\"node\":\"c\",\"tenant\":\"other\","
	                 "\"store\":\"0123456789abcdef0123456789abcdef\",\"codecs\":[],"
	                 "\"maxFrame\":65536,\"batchSize\":1}",
	                 E_BAD_HELLO);
}

static const char *hello_duplicate_member(void)
{
	return bad_hello(hello_with("c", HELLO_REST ",\"maxFrame\":65536,\"maxFrame\":65536"),
	                 E_BAD_HELLO);
}

static const char *hello_unknown_member(void)
{
	OPEN(s, "c", ",\"futureMember\":{\"x\":[1,2]}");
	return NULL;
}

static const char *hello_max_frame_range(void)
{
	const char *r = bad_hello(hello_with("c", HELLO_REST ",\"maxFrame\":65535"), E_BAD_HELLO);
	if (!r)
		r = bad_hello(hello_with("c", HELLO_REST ",\"maxFrame\":67108865"), E_BAD_HELLO);
	return r;
}

static const char *hello_batch_size_range(void)
{
	const char *base = "{\"proto\":1,\"node\":\"c\",\"tenant\":\"default\","
	                   "\"store\":\"0123456789abcdef0123456789abcdef\",\"codecs\":[],"
	                   "\"maxFrame\":65536,\"batchSize\":";
	const char *r = bad_hello(autofree(tu_sprintf("%s0}", base)), E_BAD_HELLO);
	if (!r)
		r = bad_hello(autofree(tu_sprintf("%s1000001}", base)), E_BAD_HELLO);
	return r;
}

static const char *hello_store_format(void)
{
	return bad_hello("{\"proto\":1,\"node\":\"c\",\"tenant\":\"default\",\"store\":\"ABC\","
	                 "\"codecs\":[],\"maxFrame\":65536,\"batchSize\":1}",
	                 E_BAD_HELLO);
}

static const char *hello_codecs_limit(void)
{
	char list[1024] = "";
	for (int i = 0; i < 17; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s\"c%d\"",
		         i ? "," : "", i);
	const char *r = bad_hello(
	    autofree(tu_sprintf("{\"proto\":1,\"node\":\"c\",\"tenant\":\"default\","
	                        "\"store\":\"0123456789abcdef0123456789abcdef\",\"codecs\":[%s],"
	                        "\"maxFrame\":65536,\"batchSize\":1}",
	                        list)),
	    E_BAD_HELLO);
	if (!r)
		r = bad_hello("{\"proto\":1,\"node\":\"c\",\"tenant\":\"default\","
		              "\"store\":\"0123456789abcdef0123456789abcdef\",\"codecs\":"
		              "[\"abcdefghijklmnopqrstuvwxyz0123456\"],\"maxFrame\":65536,"
		              "\"batchSize\":1}",
		              E_BAD_HELLO);
	return r;
}

static const char *hello_filter_limit(void)
{
	char list[2048] = "";
	for (int i = 0; i < 65; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s\"t%d\"",
		         i ? "," : "", i);
	return bad_hello(
	    autofree(tu_sprintf("{\"proto\":1,\"node\":\"c\",\"tenant\":\"default\","
	                        "\"store\":\"0123456789abcdef0123456789abcdef\",\"codecs\":[],"
	                        "\"maxFrame\":65536,\"batchSize\":1,\"filter\":{\"types\":[%s]}}",
	                        list)),
	    E_BAD_HELLO);
}

static const char *hello_cursor_range(void)
{
	/* cursor.seq is unsigned: 2^64-1 is valid, 2^64 is not. */
	OPEN(s, "c",
	     autofree(tu_sprintf(",\"cursor\":{\"store\":\"%s\",\"seq\":"
	                         "18446744073709551615}",
	                         E.store)));
	(void)s;
	return bad_hello(hello_with("c", HELLO_REST ",\"maxFrame\":65536,\"cursor\":{\"store\":"
	                                            "\"\",\"seq\":18446744073709551616}"),
	                 E_BAD_HELLO);
}

static const char *hello_second(void)
{
	OPEN(s, "c", NULL);
	send_json(s, F_HELLO, hello_json(s, NULL));
	int64_t code = wait_close(s, WAIT_MS);
	CHECK(code == E_PROTOCOL, "a second HELLO: closed with %lld, want PROTOCOL_ERROR",
	      (long long)code);
	return NULL;
}

static const char *hello_batch_first(void)
{
	for (int i = 0; i < 2; i++) {
		const char *why;
		struct sess *s = sess_connect("c", NULL, &why);
		CHECK(s, "%s", why);
		if (i == 0) {
			struct batch b = {.request_id = 1, .source = "c", .raw = "[]"};
			size_t n;
			uint8_t *p = autofree(batch_encode(&b, &n));
			send_frame(s, F_BATCH, p, n);
		} else {
			send_json(s, F_ACK,
			          "{\"requestId\":1,\"success\":true,\"receivedCount\":0,"
			          "\"applied\":0,\"errors\":[],\"seq\":0}");
		}
		int64_t code = wait_close(s, WAIT_MS);
		CHECK(code == E_BAD_HELLO,
		      "%s before HELLO: closed with %lld (0x%llx), want BAD_HELLO",
		      i ? "ACK" : "BATCH", (long long)code, (unsigned long long)code);
	}
	return NULL;
}

/* ---- ERROR frames and closes ---- */

static const char *error_frame_before_close(void)
{
	const char *cases[] = {"unknown frame", "flags", "batch before hello"};
	for (int i = 0; i < 3; i++) {
		const char *why;
		struct sess *s =
		    i == 2 ? sess_connect("c", NULL, &why) : sess_open("c", NULL, &why);
		CHECK(s, "%s", why);
		uint8_t h[8];
		frame_header(h, i == 0 ? 0x09 : F_BATCH, 0);
		if (i == 1)
			h[1] = 1;
		cq_send(s->c, h, 8);
		int64_t code = wait_close(s, WAIT_MS);
		CHECK(code > 0, "%s: not closed with an error", cases[i]);
		CHECK(s->errorf, "%s: closed with 0x%llx without an ERROR frame", cases[i],
		      (unsigned long long)code);
		CHECK(yyjson_get_uint(yyjson_obj_get(yyjson_doc_get_root(s->errorf), "code")) ==
		          (uint64_t)code,
		      "%s: the ERROR frame's code is not the close code", cases[i]);
	}
	return NULL;
}

static const char *close_mesh_refuses_hub_frames(void)
{
	uint8_t f[64];
	const char *types[] = {"AUTH", "PULL", "PULL_DONE"};
	const char *bodies[] = {"{\"token\":\"a.b.c\"}", "{\"vectorClock\":{}}",
	                        "{\"vectorClock\":{}}"};
	for (int i = 0; i < 3; i++) {
		size_t n = strlen(bodies[i]);
		frame_header(f, (uint8_t)(F_AUTH + i), (uint32_t)n);
		memcpy(f + 8, bodies[i], n);
		const char *r = expect_close_after("c", f, 8 + n, E_PROTOCOL);
		if (r) {
			char why[512];
			snprintf(why, sizeof(why), "%s", r);
			return failed("%s to a mesh node: %s", types[i], why);
		}
	}
	return NULL;
}

static const char *close_duplicate(void)
{
	OPEN(s1, "c5", NULL);
	struct sess *s2 = sess_open("c5", NULL, &why);
	CHECK(s2, "%s", why);
	/* One of the two is closed with NO_ERROR. */
	for (int i = 0; i < 50 && !cq_end(s1->c)->closed && !cq_end(s2->c)->closed; i++) {
		cq_pump(s1->c, 50, NULL);
		cq_pump(s2->c, 50, NULL);
	}
	const struct cq_end *e = cq_end(s1->c)->closed ? cq_end(s1->c) : cq_end(s2->c);
	CHECK(e->closed, "two connections of one node both stay open");
	CHECK(e->app && e->code == E_NO_ERROR, "the duplicate was closed with 0x%llx ('%s')",
	      (unsigned long long)e->code, e->reason);
	return NULL;
}

/* Pumps both sessions until one of them is closed (bounded). */
static void pump_two(struct sess *a, struct sess *b)
{
	for (int i = 0; i < 60 && !cq_end(a->c)->closed && !cq_end(b->c)->closed; i++) {
		cq_pump(a->c, 50, NULL);
		cq_pump(b->c, 50, NULL);
	}
}

/* A session is alive: an empty BATCH gets its ACK. */
static const char *alive(struct sess *s, uint64_t request_id)
{
	const char *why = NULL;
	struct batch b = {.request_id = request_id, .source = s->id, .raw = "[]"};
	return send_batch(s, &b, &why) ? NULL : why;
}

/* e1 > d: the old rule (keep the one dialled by the smaller id) kept the old one here. */
static const char *close_same_dialler_replaces(void)
{
	OPEN(s1, "e1", ",\"instance\":\"e1-one-process\"");
	struct sess *s2 = sess_open("e1", ",\"instance\":\"e1-one-process\"", &why);
	CHECK(s2, "%s", why);
	pump_two(s1, s2);
	const struct cq_end *e1 = cq_end(s1->c), *e2 = cq_end(s2->c);
	CHECK(!e2->closed, "the newer connection of the same dialler was closed (0x%llx '%s')",
	      (unsigned long long)e2->code, e2->reason);
	CHECK(e1->closed && e1->app && e1->code == E_NO_ERROR,
	      "the older connection was not closed with NO_ERROR (closed %d, 0x%llx '%s')",
	      e1->closed, (unsigned long long)e1->code, e1->reason);
	const char *dead = alive(s2, 41);
	CHECK(!dead, "the newer connection does not work: %s", dead);
	return NULL;
}

/* Two processes with one node id: instance A, then B (a restart, replaces A), then A
 * again, which a restart cannot explain. */
static const char *close_duplicate_node_id(void)
{
	size_t logged = daemon_log_count("two processes use node id e2");
	OPEN(a, "e2", ",\"instance\":\"e2-process-a\"");
	struct sess *b = sess_open("e2", ",\"instance\":\"e2-process-b\"", &why);
	CHECK(b, "%s", why);
	pump_two(a, b);
	CHECK(cq_end(a->c)->closed && !cq_end(b->c)->closed,
	      "a newer process's connection did not replace the older one");
	for (int round = 0; round < 2; round++) {
		struct sess *a2 = sess_connect("e2", NULL, &why);
		CHECK(a2, "%s", why);
		send_json(a2, F_HELLO, hello_json(a2, ",\"instance\":\"e2-process-a\""));
		int64_t code = wait_close(a2, WAIT_MS);
		CHECK(code == E_DUPLICATE_NODE_ID,
		      "the returning process was closed with %lld (0x%llx '%s'), want "
		      "DUPLICATE_NODE_ID",
		      (long long)code, (unsigned long long)cq_end(a2->c)->code,
		      cq_end(a2->c)->reason);
		cq_pump(b->c, 100, NULL);
		const struct cq_end *eb = cq_end(b->c);
		CHECK(!eb->closed, "the connection kept was closed (0x%llx '%s'): the two flap",
		      (unsigned long long)eb->code, eb->reason);
	}
	const char *dead = alive(b, 42);
	CHECK(!dead, "the kept connection does not work: %s", dead);
	CHECK(daemon_log_count("two processes use node id e2") == logged + 1,
	      "the duplicate node id was logged %zu times, want once",
	      daemon_log_count("two processes use node id e2") - logged);
	return NULL;
}

/* ---- anti-entropy ---- */

static const char *ae_hello(void)
{
	OPEN(s, "c", NULL);
	yyjson_val *ae = yyjson_obj_get(yyjson_doc_get_root(s->hello), "antiEntropy");
	CHECK(yyjson_is_true(ae), "the daemon's HELLO does not say \"antiEntropy\": true");
	return NULL;
}

static const char *ae_tree_answered(void)
{
	CHECK(api_put(autofree(tu_sprintf("[%s]", pattern(uniq("ae"), "t", 0, 1)))) == 0,
	      "cannot put a pattern");
	OPEN(s, "c8", ",\"antiEntropy\":true");
	/* Our store is empty: its root digest is 0, count 0; the daemon's is not. */
	const char *root = "{\"nodes\":[{\"p\":\"\",\"d\":\"00000000000000000000000000000000\","
	                   "\"n\":0}]}";
	CHECK(send_json(s, F_AE_TREE, root) == 0, "cannot send AE_TREE");
	for (int i = 0; i < 200; i++) {
		int r = read_frame(s, WAIT_MS);
		CHECK(r == 1, "no answer to AE_TREE (closed: 0x%llx '%s')",
		      (unsigned long long)cq_end(s->c)->code, cq_end(s->c)->reason);
		if (s->type == F_AE_TREE || s->type == F_AE_IDS) {
			yyjson_val *j = frame_json(s);
			CHECK(yyjson_is_obj(j) && (yyjson_is_arr(yyjson_obj_get(j, "nodes")) ||
			                           yyjson_is_arr(yyjson_obj_get(j, "leaves"))),
			      "the answer is neither AE_TREE nodes nor AE_IDS leaves");
			return NULL;
		}
	}
	return failed("no AE_TREE or AE_IDS among the daemon's frames");
}

static const char *close_shutting_down(void)
{
	int st = 0;
	char api_addr[64];
	int port = extra_daemon("c6", NULL, 0, &st, api_addr);
	CHECK(port > 0, "a second daemon did not start (status %d)", st);
	struct cq_opts o = {.port = port};
	const char *why;
	struct sess *s = sess_connect("c", &o, &why);
	CHECK(s, "%s", why);
	send_json(s, F_HELLO, hello_json(s, NULL));
	CHECK(read_frame(s, WAIT_MS) == 1, "no HELLO from the second daemon");
	extra_daemons_stop(); /* SIGTERM */
	int64_t code = wait_close(s, WAIT_MS);
	CHECK(code == E_SHUTTING_DOWN, "a stopping daemon closed with %lld, want SHUTTING_DOWN",
	      (long long)code);
	return NULL;
}

static uint64_t error_count(const char *peer)
{
	yyjson_doc *st = autodoc(api_state());
	char *ptr = autofree(tu_sprintf("/peers/%s/errorCount", peer));
	return yyjson_get_uint(yyjson_ptr_get(yyjson_doc_get_root(st), ptr));
}

static const char *close_error_counted_once(void)
{
	OPEN(s, "c7", NULL);
	uint64_t before = error_count("c7"), after = before;
	uint8_t h[8];
	frame_header(h, 0x09, 0);
	cq_send(s->c, h, 8);
	wait_close(s, WAIT_MS);
	for (int i = 0; i < 100 && after == before; i++) { /* until the close is counted */
		tu_sleep_ms(50);
		after = error_count("c7");
	}
	tu_sleep_ms(QUIET_MS); /* and nothing more comes */
	after = error_count("c7");
	CHECK(after == before + 1, "one violation moved errorCount from %llu to %llu",
	      (unsigned long long)before, (unsigned long long)after);
	return NULL;
}

static const char *limit_max_frame_config(void)
{
	/* A node configured below the wire's floor must either refuse to start or still
	 * announce (and accept) at least 65,536. */
	int st = 0;
	int port = extra_daemon(
	    "c8", ",\"limits\":{\"maxFrameBytes\":8192,\"maxPatternBytes\":4096}", 0, &st, NULL);
	if (port < 0)
		return NULL; /* refused at start: fine */
	struct cq_opts o = {.port = port};
	const char *why;
	struct sess *s = sess_connect("c", &o, &why);
	CHECK(s, "%s", why);
	send_json(s, F_HELLO, hello_json(s, NULL));
	int r = read_frame(s, WAIT_MS);
	extra_daemons_stop();
	CHECK(r == 1 && s->type == F_HELLO,
	      "a daemon started with maxFrameBytes 8192 closes every session (0x%llx '%s')",
	      (unsigned long long)cq_end(s->c)->code, cq_end(s->c)->reason);
	uint64_t mf = yyjson_get_uint(yyjson_obj_get(frame_json(s), "maxFrame"));
	CHECK(mf >= 65536, "it announces maxFrame %llu", (unsigned long long)mf);
	return NULL;
}

const struct check checks_session[] = {
    {"stream.other_reset", stream_other_reset,
     "a stream other than the first is reset; the session goes on"},
    {"frame.split_coalesced", frame_split_coalesced,
     "a frame may be split over packets and share them with others"},
    {"frame.unknown_type", frame_unknown_type, "type 0x08-0xff: close UNKNOWN_FRAME (0x103)"},
    {"frame.unknown_type_first", frame_unknown_type_first,
     "an unknown type is reported as such whatever its length"},
    {"frame.flags", frame_flags, "flags != 0: close PROTOCOL_ERROR"},
    {"frame.reserved", frame_reserved, "reserved != 0: close PROTOCOL_ERROR"},
    {"frame.too_large", frame_too_large,
     "length > maxFrame: close FRAME_TOO_LARGE from the header alone"},
    {"frame.max_accepted", frame_max_accepted, "a frame of exactly maxFrame bytes is accepted"},
    {"hello.daemon", hello_daemon, "the daemon's HELLO has every required member, in range"},
    {"hello.version_mismatch", hello_version_mismatch, "proto 2: close VERSION_MISMATCH"},
    {"hello.version_error_frame", hello_version_error_frame,
     "proto 2: an ERROR frame with code 0x105 comes before the close"},
    {"hello.version_first", hello_version_first, "proto is checked before any other member"},
    {"hello.proto_not_integer", hello_proto_not_integer, "proto not an integer: BAD_HELLO"},
    {"hello.member_missing", hello_member_missing, "a required member missing: BAD_HELLO"},
    {"hello.node_mismatch", hello_node_mismatch, "node not the certificate's id: BAD_HELLO"},
    {"hello.tenant_mismatch", hello_tenant_mismatch, "another tenant: BAD_HELLO"},
    {"hello.duplicate_member", hello_duplicate_member, "a member given twice: BAD_HELLO"},
    {"hello.unknown_member", hello_unknown_member, "unknown members are ignored"},
    {"hello.max_frame_range", hello_max_frame_range, "maxFrame outside 65,536..64 MiB: BAD_HELLO"},
    {"hello.batch_size_range", hello_batch_size_range, "batchSize outside 1..1,000,000: BAD_HELLO"},
    {"hello.store_format", hello_store_format, "store not 32 lowercase hex: BAD_HELLO"},
    {"hello.codecs_limit", hello_codecs_limit,
     "more than 16 codecs, or a name over 32 bytes: BAD_HELLO"},
    {"hello.filter_limit", hello_filter_limit, "more than 64 filter types: BAD_HELLO"},
    {"hello.cursor_range", hello_cursor_range,
     "cursor.seq is unsigned 64-bit: 2^64-1 accepted, 2^64 BAD_HELLO"},
    {"hello.second", hello_second, "a second HELLO: close PROTOCOL_ERROR"},
    {"hello.batch_first", hello_batch_first, "BATCH or ACK before HELLO: close BAD_HELLO"},
    {"error.frame_before_close", error_frame_before_close,
     "every close for a violation is preceded by an ERROR frame with its code"},
    {"close.hub_frames_to_mesh", close_mesh_refuses_hub_frames,
     "AUTH, PULL, PULL_DONE to a mesh node: close PROTOCOL_ERROR"},
    {"close.duplicate", close_duplicate,
     "a second connection of the same node: one is closed with NO_ERROR"},
    {"close.same_dialler_replaces", close_same_dialler_replaces,
     "between two connections of one process, a newer one from the same dialler replaces the "
     "older (NO_ERROR)"},
    {"close.duplicate_node_id", close_duplicate_node_id,
     "a process instance that was replaced and comes back is refused with DUPLICATE_NODE_ID "
     "(0x109); the kept connection stays"},
    {"ae.hello", ae_hello, "a mesh node's HELLO says \"antiEntropy\": true"},
    {"ae.tree_answered", ae_tree_answered,
     "with antiEntropy agreed, an AE_TREE root that differs is answered with AE_TREE or AE_IDS"},
    {"close.shutting_down", close_shutting_down, "a stopping node closes with SHUTTING_DOWN"},
    {"close.error_counted_once", close_error_counted_once,
     "a violation counts one error against the peer"},
    {"limit.max_frame_config", limit_max_frame_config,
     "a node never works with a max frame under 65,536"},
    {NULL, NULL, NULL},
};
