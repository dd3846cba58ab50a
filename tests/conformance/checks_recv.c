/* SPDX-License-Identifier: Apache-2.0 */
/* Checks of PROTOCOL.md with the daemon receiving: BATCH, codecs, ACK, refusals, patterns. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canon.h"
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

static uint64_t next_id = 1000;

static char *put_entry(const char *id, const char *type)
{
	return autofree(tu_sprintf("{\"p\":%s}", pattern(id, type, 0, 1)));
}

static uint64_t store_seq(void)
{
	yyjson_doc *st = autodoc(api_state());
	return yyjson_get_uint(yyjson_ptr_get(yyjson_doc_get_root(st), "/store/seq"));
}

/* Sends two puts with `codec` and checks the ACK and the store. */
static const char *apply_with(uint8_t codec, int multiframe)
{
	OPEN(s, "c", NULL);
	const char *a = uniq("codec-"), *b2 = uniq("codec-");
	/* Long enough that compression pays (the codec rule does not bind a receiver anyway). */
	char *raw = autofree(tu_sprintf("[%s,%s]", put_entry(a, "conf"), put_entry(b2, "conf")));
	struct batch b = {.request_id = ++next_id, .source = s->id, .raw = raw, .codec = codec};
	uint8_t *two = NULL;
	if (multiframe) { /* two zstd frames, one per half of the raw body */
		size_t half = strlen(raw) / 2, l1, l2;
		uint8_t *f1 = autofree(zstd_bytes(raw, half, &l1));
		uint8_t *f2 = autofree(zstd_bytes(raw + half, strlen(raw) - half, &l2));
		two = autofree(malloc(l1 + l2));
		memcpy(two, f1, l1);
		memcpy(two + l1, f2, l2);
		b.body = two;
		b.body_len = l1 + l2;
	}
	yyjson_val *ack = send_batch(s, &b, &why);
	CHECK(ack, "%s", why);
	CHECK(yyjson_get_bool(yyjson_obj_get(ack, "success")), "ACK success false: %.300s",
	      (const char *)s->payload);
	CHECK(yyjson_get_uint(yyjson_obj_get(ack, "receivedCount")) == 2 &&
	          yyjson_get_uint(yyjson_obj_get(ack, "applied")) == 2,
	      "ACK receivedCount/applied not 2/2: %.300s", (const char *)s->payload);
	uint64_t seq = yyjson_get_uint(yyjson_obj_get(ack, "seq"));
	/* An ACK means durably stored: both are readable now. */
	CHECK(api_get(a) && api_get(b2), "an acknowledged pattern is not in the store");
	CHECK(seq == store_seq(), "ACK seq %llu is not the store's sequence %llu",
	      (unsigned long long)seq, (unsigned long long)store_seq());
	return NULL;
}

static const char *recv_codec_none(void)
{
	return apply_with(CODEC_NONE, 0);
}
static const char *recv_codec_gzip(void)
{
	return apply_with(CODEC_GZIP, 0);
}
static const char *recv_codec_zstd(void)
{
	return apply_with(CODEC_ZSTD, 0);
}
static const char *recv_zstd_frames(void)
{
	return apply_with(CODEC_ZSTD, 1);
}

static const char *recv_ack_request_id(void)
{
	OPEN(s, "c", NULL);
	struct batch b = {.request_id = UINT64_MAX, .source = s->id, .raw = "[]"};
	yyjson_val *ack = send_batch(s, &b, &why);
	CHECK(ack, "requestId 2^64-1: %s", why);
	yyjson_val *m;
	const char *need[] = {"requestId", "success", "receivedCount", "applied", "errors", "seq"};
	for (int i = 0; i < 6; i++)
		CHECK((m = yyjson_obj_get(ack, need[i])), "ACK has no %s", need[i]);
	CHECK(yyjson_is_arr(yyjson_obj_get(ack, "errors")), "errors is not an array");
	return NULL;
}

static const char *recv_duplicate(void)
{
	OPEN(s, "c", NULL);
	char *raw = autofree(tu_sprintf("[%s]", put_entry(uniq("dup-"), "conf")));
	struct batch b = {.request_id = ++next_id, .source = s->id, .raw = raw};
	CHECK(send_batch(s, &b, &why), "%s", why);
	b.request_id = ++next_id;
	yyjson_val *ack = send_batch(s, &b, &why);
	CHECK(ack, "%s", why);
	CHECK(yyjson_get_bool(yyjson_obj_get(ack, "success")) &&
	          yyjson_get_uint(yyjson_obj_get(ack, "applied")) == 0,
	      "the same change again: %.300s, want success with applied 0",
	      (const char *)s->payload);
	return NULL;
}

static const char *recv_tombstone(void)
{
	OPEN(s, "c", NULL);
	const char *id = uniq("del-");
	char *raw = autofree(tu_sprintf(
	    "[%s,{\"d\":{\"id\":\"%s\",\"version\":2,\"timestamp\":1700000000001},\"nr\":true}]",
	    put_entry(id, "conf"), id));
	struct batch b = {.request_id = ++next_id, .source = s->id, .raw = raw};
	yyjson_val *ack = send_batch(s, &b, &why);
	CHECK(ack, "%s", why);
	CHECK(yyjson_get_bool(yyjson_obj_get(ack, "success")), "%.300s", (const char *)s->payload);
	CHECK(!api_get(id), "the deleted pattern is still there");
	return NULL;
}

/* The receiver accepts any spelling and stores the canonical form with the checksum. */
static const char *check_stored(struct sess *s, const char *id, const char *json)
{
	const char *why;
	char *raw = autofree(tu_sprintf("[{\"p\":%s}]", json));
	struct batch b = {.request_id = ++next_id, .source = s->id, .raw = raw};
	yyjson_val *ack = send_batch(s, &b, &why);
	CHECK(ack, "%s", why);
	CHECK(yyjson_get_bool(yyjson_obj_get(ack, "success")), "refused: %.300s",
	      (const char *)s->payload);
	char *stored = api_get(id);
	CHECK(stored, "not stored");
	stored[strcspn(stored, "\n")] = '\0';
	char *want = autofree(canon_pattern(json, 1, NULL));
	CHECK(strcmp(stored, want) == 0, "stored\n        %s\n      want\n        %s", stored,
	      want);
	return NULL;
}

static const char *recv_noncanonical(void)
{
	OPEN(s, "c", NULL);
	const char *id = uniq("spell-");
	char *json = autofree(tu_sprintf(
	    "{ \"version\" : 1, \"timestamp\":17e0 , \"type\":\"t\",\"metadata\":{\"tags\":[\"b\","
	    "\"a\"],\"source\":\"s\\u0041\",\"priority\":3},\"id\":\"%s\",\"data\":{\"z\":[1.50,"
	    "1E2,-0,-0.0,1e21,1e-7,0.000001,5e-324,18446744073709551616],\"\\u00e9\":\"\\/\\u2028"
	    "\\u007f\\u001f\\t\"},\"agentId\":\"a\"}",
	    id));
	/* timestamp 17e0 is not an integer: the pattern is refused for that alone; use 17. */
	char *fixed = autofree(tu_replace(json, "17e0", "17"));
	return check_stored(s, id, fixed);
}

static const char *recv_key_order(void)
{
	OPEN(s, "c", NULL);
	const char *id = uniq("keys-");
	char *json = autofree(tu_sprintf(
	    "{\"id\":\"%s\",\"agentId\":\"a\",\"type\":\"t\",\"data\":{\"b\":1,\"\\u00e9\":2,"
	    "\"ab\":3,\"a\":4,\"Z\":5,\"A\":6,\"\":7},\"metadata\":{\"source\":\"s\",\"tags\":[],"
	    "\"zz\":1,\"aa\":2},\"timestamp\":1,\"version\":1,\"extra\":null}",
	    id));
	return check_stored(s, id, json);
}

static const char *recv_integers(void)
{
	OPEN(s, "c", NULL);
	const char *id = uniq("ints-");
	char *json = autofree(tu_sprintf(
	    "{\"id\":\"%s\",\"agentId\":\"a\",\"type\":\"t\",\"data\":[18446744073709551615,"
	    "-9223372036854775808,-9223372036854775809,9223372036854775808,0,-0,1.0],"
	    "\"metadata\":{\"source\":\"s\",\"tags\":[],\"expiresAt\":9223372036854775807},"
	    "\"timestamp\":9223372036854775807,\"version\":9223372036854775807}",
	    id));
	return check_stored(s, id, json);
}

static const char *recv_checksum(void)
{
	OPEN(s, "c", NULL);
	const char *id = uniq("sum-");
	char hex[65];
	char *plain = pattern(id, "conf", 2, 1);
	autofree(canon_pattern(plain, 0, hex));
	for (int i = 0; hex[i]; i++) /* either case is accepted */
		if (hex[i] >= 'a' && hex[i] <= 'f')
			hex[i] = (char)(hex[i] - 'a' + 'A');
	char *with = autofree(tu_replace(plain, "\"source\":", ""));
	with = autofree(tu_sprintf("%.*s\"checksum\":\"%s\",\"source\":%s",
	                           (int)(strstr(plain, "\"source\":") - plain), plain, hex,
	                           strstr(plain, "\"source\":") + 9));
	const char *r = check_stored(s, id, with);
	if (r)
		return r;
	/* A wrong checksum: that entry alone is refused, with AGS_ERR_CHECKSUM. */
	const char *id2 = uniq("sum-");
	char *bad = autofree(tu_replace(pattern(id2, "conf", 2, 1), "\"source\":",
	                                "\"checksum\":\"00000000000000000000000000000000000000000"
	                                "00000000000000000000000\",\"source\":"));
	char *raw = autofree(tu_sprintf("[{\"p\":%s},%s]", bad, put_entry(uniq("sum-"), "conf")));
	struct batch b = {.request_id = ++next_id, .source = s->id, .raw = raw};
	yyjson_val *ack = send_batch(s, &b, &why);
	CHECK(ack, "%s", why);
	yyjson_val *e0 = yyjson_arr_get(yyjson_obj_get(ack, "errors"), 0);
	CHECK(!yyjson_get_bool(yyjson_obj_get(ack, "success")) &&
	          yyjson_get_uint(yyjson_obj_get(ack, "applied")) == 1 &&
	          yyjson_get_sint(yyjson_obj_get(e0, "code")) == ERR_CHECKSUM &&
	          yyjson_equals_str(yyjson_obj_get(e0, "patternId"), id2),
	      "a wrong checksum: %.400s", (const char *)s->payload);
	return NULL;
}

static const char *recv_invalid_pattern(void)
{
	OPEN(s, "c", NULL);
	const char *id = uniq("bad-");
	char *raw = autofree(tu_sprintf("[{\"p\":%s},%s]", pattern(id, "conf", 11, 1),
	                                put_entry(uniq("good-"), "conf")));
	struct batch b = {.request_id = ++next_id, .source = s->id, .raw = raw};
	yyjson_val *ack = send_batch(s, &b, &why);
	CHECK(ack, "%s", why);
	yyjson_val *errs = yyjson_obj_get(ack, "errors");
	yyjson_val *e0 = yyjson_arr_get(errs, 0);
	CHECK(!yyjson_get_bool(yyjson_obj_get(ack, "success")) &&
	          yyjson_get_uint(yyjson_obj_get(ack, "receivedCount")) == 2 &&
	          yyjson_get_uint(yyjson_obj_get(ack, "applied")) == 1 &&
	          yyjson_arr_size(errs) == 1 &&
	          yyjson_get_sint(yyjson_obj_get(e0, "code")) == ERR_PATTERN &&
	          yyjson_equals_str(yyjson_obj_get(e0, "patternId"), id),
	      "priority 11 in one of two puts: %.400s", (const char *)s->payload);
	CHECK(!api_get(id), "the invalid pattern was stored");
	return NULL;
}

/* An entry refused for good is counted against the peer that sent it. */
static const char *recv_rejected_counted(void)
{
	OPEN(s, "c9", NULL);
	char *raw = autofree(tu_sprintf("[{\"p\":%s}]", pattern(uniq("rej-"), "conf", 11, 1)));
	struct batch b = {.request_id = ++next_id, .source = s->id, .raw = raw};
	CHECK(send_batch(s, &b, &why), "%s", why);
	yyjson_doc *st = autodoc(api_state());
	yyjson_val *n = yyjson_ptr_get(yyjson_doc_get_root(st), "/peers/c9/rejected");
	CHECK(yyjson_get_uint(n) >= 1, "/v1/state has no peers.c9.rejected count after a refused "
	                               "pattern");
	return NULL;
}

static const char *recv_error_path(void)
{
	OPEN(s, "c", NULL);
	char *raw =
	    autofree(tu_sprintf("[{\"d\":{\"id\":\"x\",\"version\":0,\"timestamp\":1}},{\"p\":%s}]",
	                        pattern(uniq("path-"), "conf", 11, 1)));
	struct batch b = {.request_id = ++next_id, .source = s->id, .raw = raw};
	yyjson_val *ack = send_batch(s, &b, &why);
	CHECK(ack, "%s", why);
	const char *all = (const char *)s->payload;
	CHECK(strstr(all, "entries[0].d.version"),
	      "the ACK does not name entries[0].d.version: %.400s", all);
	CHECK(strstr(all, "entries[1].p.metadata.priority"),
	      "the ACK does not name entries[1].p.metadata.priority: %.400s", all);
	return NULL;
}

static const char *canon_vectors(void)
{
	const char *in =
	    "{\"id\":\"p1\",\"agentId\":\"a\",\"type\":\"t\",\"data\":{\"z\":1,\"a\":[1.50,{\"y\":"
	    "null,\"b\":true}]},\n \"metadata\":{\"source\":\"s\",\"tags\":[\"x\",\"y\"],"
	    "\"priority\":3},\"timestamp\":5,\"version\":1,\n \"extra\":\"\\u00e9\"}";
	const char *want =
	    "{\"agentId\":\"a\",\"data\":{\"a\":[1.5,{\"b\":true,\"y\":null}],\"z\":1},"
	    "\"extra\":\"\xc3\xa9\",\"id\":\"p1\",\"metadata\":{\"priority\":3,"
	    "\"source\":\"s\",\"tags\":[\"x\",\"y\"]},\"timestamp\":5,\"type\":\"t\","
	    "\"version\":1}";
	char hex[65];
	char *got = autofree(canon_pattern(in, 0, hex));
	CHECK(got && strcmp(got, want) == 0, "this client's canonical form differs: %s", got);
	CHECK(strcmp(hex, "df267237525a1a3aaeffbeb0782f8eaac78690e0e8a6bc9d93905dcffad6cc4f") == 0,
	      "the document's checksum differs: %s", hex);
	autofree(
	    canon_pattern("{\"deleted\":true,\"id\":\"x\",\"timestamp\":9,\"version\":2}", 0, hex));
	CHECK(strcmp(hex, "c7b5c5a74b40dfb7b922845aa744ceb7c1aa7d5e13f3ecb3434c46b26bb77793") == 0,
	      "the tombstone checksum differs: %s", hex);
	/* The daemon stores the vector with exactly that checksum. */
	OPEN(s, "c", NULL);
	char *json = autofree(tu_replace(in, "\"p1\"", "\"vector-p1\""));
	const char *r = check_stored(s, "vector-p1", json);
	if (r)
		return r;
	char *stored = api_get("vector-p1");
	char vhex[65];
	autofree(canon_pattern(json, 0, vhex));
	CHECK(strstr(stored, vhex), "the stored checksum is not the canonical form's SHA-256");
	return NULL;
}

/* ---- refusals of a whole BATCH ---- */

static const char *refused(struct batch *b, int code, const char *what)
{
	OPEN(s, "c", NULL);
	b->request_id = ++next_id;
	b->source = b->source ? b->source : s->id;
	uint64_t before = store_seq();
	yyjson_val *ack = send_batch(s, b, &why);
	CHECK(ack, "%s: %s", what, why);
	yyjson_val *e0 = yyjson_arr_get(yyjson_obj_get(ack, "errors"), 0);
	CHECK(!yyjson_get_bool(yyjson_obj_get(ack, "success")) &&
	          yyjson_get_uint(yyjson_obj_get(ack, "applied")) == 0 &&
	          yyjson_get_sint(yyjson_obj_get(e0, "code")) == code,
	      "%s: ACK %.300s, want success false, applied 0 and code %d", what,
	      (const char *)s->payload, code);
	CHECK(store_seq() == before, "%s: something was applied", what);
	CHECK(!cq_end(s->c)->closed, "%s: the connection closed", what);
	return NULL;
}

static char *two_puts(void)
{
	return autofree(
	    tu_sprintf("[%s,%s]", put_entry(uniq("r-"), "conf"), put_entry(uniq("r-"), "conf")));
}

static const char *refuse_header_cut(void)
{
	struct batch b = {.raw = "[]", .truncate_to = 20};
	return refused(&b, ERR_PROTO, "a payload cut after uptoSeq");
}

static const char *refuse_no_request_id(void)
{
	OPEN(s, "c", NULL);
	uint8_t p[4] = {0, 0, 0, 1};
	send_frame(s, F_BATCH, p, 4);
	int64_t code = wait_close(s, WAIT_MS);
	CHECK(code == E_PROTOCOL, "a 4-byte BATCH: closed with %lld, want PROTOCOL_ERROR",
	      (long long)code);
	return NULL;
}

static const char *refuse_codec(void)
{
	struct batch b = {.raw = "[]", .codec = 3, .body = (const uint8_t *)"[]", .body_len = 2};
	return refused(&b, ERR_UNSUPPORTED, "codec 3");
}

static const char *refuse_flags(void)
{
	struct batch b = {.raw = "[]", .flags = 1};
	return refused(&b, ERR_PROTO, "BATCH flags 1");
}

static const char *refuse_source(void)
{
	struct batch b = {.raw = "[]", .source = "", .source_len = 0};
	b.source = "x";
	char long_src[258];
	memset(long_src, 'a', 257);
	long_src[257] = 0;
	struct batch b1 = {.raw = "[]", .source = long_src};
	const char *r = refused(&b1, ERR_PROTO, "sourceLen 257");
	if (r)
		return r;
	struct batch b2 = {.raw = "[]", .source = "c\x01"};
	r = refused(&b2, ERR_PROTO, "a control character in source");
	if (r)
		return r;
	(void)b;
	return NULL;
}

static const char *refuse_count_limit(void)
{
	/* max_count (10,000) + 1, announced in the header; the body is never looked at. */
	struct batch b = {.raw = "[]", .set_count = 1, .count = 10001};
	return refused(&b, ERR_TOO_LARGE, "count 10001");
}

static const char *refuse_raw_limit(void)
{
	/* max_raw is 128 MiB: one byte more is over the limit; exactly 128 MiB is not (that body
	 * is refused for decompressing to 2 bytes instead). */
	struct batch b = {
	    .raw = "[]", .set_raw_len = 1, .raw_len_field = (128u << 20) + 1, .codec = CODEC_ZSTD};
	const char *r = refused(&b, ERR_TOO_LARGE, "rawLen 128 MiB + 1");
	if (r)
		return r;
	struct batch b2 = {
	    .raw = "[]", .set_raw_len = 1, .raw_len_field = 128u << 20, .codec = CODEC_ZSTD};
	return refused(&b2, ERR_COMPRESS, "rawLen 128 MiB (2 bytes of zstd output)");
}

static const char *refuse_raw_len(void)
{
	struct batch b = {.raw = "[]", .set_raw_len = 1, .raw_len_field = 3};
	return refused(&b, ERR_PROTO, "codec 0 with rawLen != body length");
}

static const char *refuse_gzip_trailing(void)
{
	const char *raw = two_puts();
	size_t n;
	uint8_t *gz = autofree(gzip_bytes(raw, strlen(raw), &n));
	uint8_t *body = autofree(malloc(n + 1));
	memcpy(body, gz, n);
	body[n] = 0;
	struct batch b = {.raw = raw, .codec = CODEC_GZIP, .body = body, .body_len = n + 1};
	return refused(&b, ERR_COMPRESS, "a byte after the gzip member");
}

static const char *refuse_gzip_corrupt(void)
{
	const char *raw = two_puts();
	size_t n;
	uint8_t *gz = autofree(gzip_bytes(raw, strlen(raw), &n));
	gz[n / 2] ^= 0xff;
	struct batch b = {.raw = raw, .codec = CODEC_GZIP, .body = gz, .body_len = n};
	return refused(&b, ERR_COMPRESS, "corrupt gzip");
}

static const char *refuse_zstd_bomb(void)
{
	/* 1 MiB of spaces compresses to a few bytes; rawLen says 100. */
	size_t big = 1 << 20, n;
	char *sp = autofree(malloc(big));
	memset(sp, ' ', big);
	uint8_t *z = autofree(zstd_bytes(sp, big, &n));
	struct batch b = {.raw = "[]",
	                  .codec = CODEC_ZSTD,
	                  .body = z,
	                  .body_len = n,
	                  .set_raw_len = 1,
	                  .raw_len_field = 100};
	return refused(&b, ERR_COMPRESS, "zstd output past rawLen");
}

static const char *refuse_zstd_short(void)
{
	const char *raw = two_puts();
	size_t n;
	uint8_t *z = autofree(zstd_bytes(raw, strlen(raw), &n));
	struct batch b = {.raw = raw,
	                  .codec = CODEC_ZSTD,
	                  .body = z,
	                  .body_len = n,
	                  .set_raw_len = 1,
	                  .raw_len_field = (uint32_t)strlen(raw) + 10};
	return refused(&b, ERR_COMPRESS, "zstd output shorter than rawLen");
}

static const char *refuse_sha256(void)
{
	struct batch b = {.raw = two_puts(), .bad_sha = 1};
	return refused(&b, ERR_CHECKSUM, "a wrong sha256");
}

static const char *refuse_not_json(void)
{
	struct batch b = {.raw = "[{\"p\":", .set_count = 1, .count = 1};
	return refused(&b, ERR_JSON, "a raw body that is not JSON");
}

static const char *refuse_not_array(void)
{
	struct batch b = {.raw = "{}", .set_count = 1, .count = 0};
	return refused(&b, ERR_PROTO, "a raw body that is an object");
}

static const char *refuse_count_mismatch(void)
{
	struct batch b = {.raw = two_puts(), .set_count = 1, .count = 3};
	return refused(&b, ERR_PROTO, "count 3 for two entries");
}

/* An entry of the wrong shape is refused alone; the other entries are applied. */
static const char *refuse_entry_shape(void)
{
	const char *bad[] = {"{\"p\":{},\"d\":{\"id\":\"x\",\"version\":1,\"timestamp\":1}}",
	                     "{\"q\":1}", "{\"d\":{\"id\":\"x\",\"version\":0,\"timestamp\":1}}"};
	for (int i = 0; i < 3; i++) {
		OPEN(s, "c", NULL);
		const char *good = uniq("shape-");
		char *raw = autofree(tu_sprintf("[%s,%s]", bad[i], put_entry(good, "conf")));
		struct batch b = {.request_id = ++next_id, .source = s->id, .raw = raw};
		yyjson_val *ack = send_batch(s, &b, &why);
		CHECK(ack, "%s", why);
		yyjson_val *e0 = yyjson_arr_get(yyjson_obj_get(ack, "errors"), 0);
		CHECK(!yyjson_get_bool(yyjson_obj_get(ack, "retry")) &&
		          yyjson_get_uint(yyjson_obj_get(ack, "receivedCount")) == 2 &&
		          yyjson_get_uint(yyjson_obj_get(ack, "applied")) == 1 &&
		          yyjson_get_sint(yyjson_obj_get(e0, "code")) == ERR_PROTO,
		      "entry %s next to a valid put: ACK %.300s, want that entry alone refused "
		      "(AGS_ERR_PROTO) and the put applied",
		      bad[i], (const char *)s->payload);
		CHECK(api_get(good), "the valid put was not applied");
	}
	return NULL;
}

/* The ranges of the pattern fields and the pattern size limit. */
static const char *recv_pattern_limits(void)
{
	OPEN(s, "c", NULL);
	char id257[258];
	memset(id257, 'i', 257);
	id257[257] = 0;
	char *big = autofree(malloc((1u << 20) + 16));
	memset(big, 'x', 1u << 20);
	big[1u << 20] = 0;
	const char *cases[][2] = {
	    {"version 2^63", "\"version\":9223372036854775808"},
	    {"timestamp -1", "\"timestamp\":-1"},
	    {"id of 257 bytes", NULL},
	    {"a pattern over 1 MiB", NULL},
	};
	int codes[] = {ERR_PATTERN, ERR_PATTERN, ERR_PATTERN, ERR_TOO_LARGE};
	for (int i = 0; i < 4; i++) {
		const char *id = uniq("lim-");
		char *p = pattern(id, "conf", 0, 1);
		if (i == 0)
			p = autofree(tu_replace(p, "\"version\":1", cases[0][1]));
		else if (i == 1)
			p = autofree(tu_replace(p, "\"timestamp\":1700000000000", cases[1][1]));
		else if (i == 2)
			p = autofree(tu_replace(p, id, id257));
		else
			p = autofree(
			    tu_replace(p, "{\"n\":1}", autofree(tu_sprintf("\"%s\"", big))));
		char *raw = autofree(tu_sprintf("[{\"p\":%s}]", p));
		struct batch b = {.request_id = ++next_id, .source = s->id, .raw = raw};
		yyjson_val *ack = send_batch(s, &b, &why);
		CHECK(ack, "%s: %s", cases[i][0], why);
		yyjson_val *e0 = yyjson_arr_get(yyjson_obj_get(ack, "errors"), 0);
		CHECK(!yyjson_get_bool(yyjson_obj_get(ack, "success")) &&
		          yyjson_get_sint(yyjson_obj_get(e0, "code")) == codes[i],
		      "%s: ACK %.300s, want that entry refused with %d", cases[i][0],
		      (const char *)s->payload, codes[i]);
	}
	return NULL;
}

static const char *refuse_received_count(void)
{
	OPEN(s, "c", NULL);
	struct batch b = {
	    .request_id = ++next_id, .source = s->id, .raw = two_puts(), .bad_sha = 1};
	yyjson_val *ack = send_batch(s, &b, &why);
	CHECK(ack, "%s", why);
	CHECK(yyjson_get_uint(yyjson_obj_get(ack, "receivedCount")) == 0,
	      "receivedCount of a batch refused whole is not 0: %.300s", (const char *)s->payload);
	return NULL;
}

static const char *refuse_retry(void)
{
	OPEN(s, "c", NULL);
	struct batch b = {
	    .request_id = ++next_id, .source = s->id, .raw = two_puts(), .bad_sha = 1};
	yyjson_val *ack = send_batch(s, &b, &why);
	CHECK(ack, "%s", why);
	CHECK(yyjson_get_bool(yyjson_obj_get(ack, "retry")),
	      "the ACK of a batch refused whole does not say \"retry\":true: %.300s",
	      (const char *)s->payload);
	return NULL;
}

/* The receiver's cursor never moves past a batch it refused whole. */
static const char *refuse_cursor_kept(void)
{
	const char *why;
	struct sess *s = sess_open("c8", NULL, &why);
	CHECK(s, "%s", why);
	char store[33];
	snprintf(store, sizeof(store), "%s", s->store);
	struct batch b1 = {
	    .request_id = ++next_id, .source = s->id, .raw = two_puts(), .bad_sha = 1, .upto = 5};
	CHECK(send_batch(s, &b1, &why), "%s", why);
	struct batch b2 = {.request_id = ++next_id, .source = s->id, .raw = two_puts(), .upto = 7};
	CHECK(send_batch(s, &b2, &why), "%s", why);
	cq_close(s->c, 0);
	s->c = NULL;
	tu_sleep_ms(200);
	struct sess *s2 = sess_connect("c8", NULL, &why);
	CHECK(s2, "%s", why);
	memcpy(s2->store, store, sizeof(store));
	send_json(s2, F_HELLO, hello_json(s2, NULL));
	CHECK(read_frame(s2, WAIT_MS) == 1 && s2->type == F_HELLO, "no HELLO");
	yyjson_val *cur = yyjson_obj_get(frame_json(s2), "cursor");
	uint64_t seq = yyjson_get_uint(yyjson_obj_get(cur, "seq"));
	CHECK(!(yyjson_equals_str(yyjson_obj_get(cur, "store"), store) && seq >= 5),
	      "after refusing changes 1-5, the daemon's HELLO cursor says it holds up to %llu",
	      (unsigned long long)seq);
	return NULL;
}

static const char *recv_cursor_saved(void)
{
	const char *why;
	struct sess *s = sess_open("c8", NULL, &why);
	CHECK(s, "%s", why);
	char store[33];
	snprintf(store, sizeof(store), "%s", s->store);
	struct batch b = {.request_id = ++next_id, .source = s->id, .raw = "[]", .upto = 42};
	CHECK(send_batch(s, &b, &why), "%s", why);
	struct batch b0 = {.request_id = ++next_id, .source = s->id, .raw = two_puts(), .upto = 0};
	CHECK(send_batch(s, &b0, &why), "%s", why); /* uptoSeq 0 leaves the cursor */
	cq_close(s->c, 0);
	s->c = NULL;
	tu_sleep_ms(200);
	struct sess *s2 = sess_connect("c8", NULL, &why);
	CHECK(s2, "%s", why);
	memcpy(s2->store, store, sizeof(store));
	send_json(s2, F_HELLO, hello_json(s2, NULL));
	CHECK(read_frame(s2, WAIT_MS) == 1 && s2->type == F_HELLO, "no HELLO");
	yyjson_val *cur = yyjson_obj_get(frame_json(s2), "cursor");
	CHECK(yyjson_equals_str(yyjson_obj_get(cur, "store"), store) &&
	          yyjson_get_uint(yyjson_obj_get(cur, "seq")) == 42,
	      "after an empty batch with uptoSeq 42 the daemon's cursor is %.200s",
	      (const char *)s2->payload);
	return NULL;
}

static const char *recv_batch_size(void)
{
	OPEN(s, "c", NULL);
	uint64_t n = E.batch_size;
	/* One delete repeated: the first is applied, the others are duplicates, so the
	 * daemon's log (which the send checks read) gains one change, not n. */
	const char *id = uniq("bs-");
	char *one =
	    autofree(tu_sprintf("{\"d\":{\"id\":\"%s\",\"version\":1,\"timestamp\":1}}", id));
	size_t el = strlen(one) + 1;
	size_t cap = (n + 1) * el + 16, len = 1;
	char *raw = autofree(malloc(cap));
	raw[0] = '[';
	for (uint64_t i = 0; i <= n; i++)
		len += (size_t)snprintf(raw + len, cap - len, "%s%s", i ? "," : "", one);
	snprintf(raw + len, cap - len, "]");
	/* batchSize entries: accepted. */
	char *exact = autofree(strdup(raw));
	exact[1 + n * el - 1] = ']';
	exact[1 + n * el] = '\0';
	struct batch b = {.request_id = ++next_id, .source = s->id, .raw = exact};
	yyjson_val *ack = send_batch(s, &b, &why);
	CHECK(ack && yyjson_get_bool(yyjson_obj_get(ack, "success")),
	      "a batch of the announced batchSize (%llu) entries was not accepted",
	      (unsigned long long)n);
	struct batch b2 = {.request_id = ++next_id, .source = s->id, .raw = raw};
	ack = send_batch(s, &b2, &why);
	CHECK(ack, "%s", why);
	CHECK(!yyjson_get_bool(yyjson_obj_get(ack, "success")) &&
	          yyjson_get_uint(yyjson_obj_get(ack, "applied")) == 0,
	      "a batch of batchSize + 1 = %llu entries was accepted (the daemon announced %llu)",
	      (unsigned long long)n + 1, (unsigned long long)n);
	return NULL;
}

const struct check checks_recv[] = {
    {"recv.codec_none", recv_codec_none, "codec 0 (none) batches are applied and ACKed"},
    {"recv.codec_gzip", recv_codec_gzip, "codec 1 (gzip) batches are applied"},
    {"recv.codec_zstd", recv_codec_zstd, "codec 2 (zstd) batches are applied"},
    {"recv.zstd_frames", recv_zstd_frames, "a zstd body of several frames is accepted"},
    {"recv.ack_fields", recv_ack_request_id, "the ACK echoes a u64 requestId and has every member"},
    {"recv.duplicate", recv_duplicate, "a change already held: success, applied 0"},
    {"recv.tombstone", recv_tombstone, "a delete (with nr) removes the record"},
    {"recv.noncanonical", recv_noncanonical,
     "a put in any spelling is stored in canonical form with its checksum"},
    {"recv.key_order", recv_key_order, "members are ordered by their UTF-8 bytes"},
    {"recv.integers", recv_integers, "64-bit integer ranges and their spelling"},
    {"recv.checksum", recv_checksum,
     "a matching checksum (any case) is accepted, a wrong one refuses that entry"},
    {"recv.invalid_pattern", recv_invalid_pattern,
     "an invalid put is listed in errors; the others are applied"},
    {"recv.rejected_counted", recv_rejected_counted,
     "an entry refused for good is counted (peers.<id>.rejected in /v1/state)"},
    {"recv.error_path", recv_error_path, "ACK errors name the JSON path of the value at fault"},
    {"canon.vectors", canon_vectors, "the document's test vectors, here and in the daemon"},
    {"refuse.header_cut", refuse_header_cut, "a cut header: whole batch refused, AGS_ERR_PROTO"},
    {"refuse.no_request_id", refuse_no_request_id,
     "a BATCH too short for a requestId: close PROTOCOL_ERROR"},
    {"refuse.codec", refuse_codec, "codec > 2: refused, AGS_ERR_UNSUPPORTED"},
    {"refuse.flags", refuse_flags, "BATCH flags != 0: refused, AGS_ERR_PROTO"},
    {"refuse.source", refuse_source, "sourceLen 257 or a control character: AGS_ERR_PROTO"},
    {"refuse.count_limit", refuse_count_limit, "count over 10,000: AGS_ERR_TOO_LARGE"},
    {"refuse.raw_limit", refuse_raw_limit, "rawLen over max_raw (128 MiB): AGS_ERR_TOO_LARGE"},
    {"refuse.raw_len", refuse_raw_len, "codec 0 and rawLen != body: AGS_ERR_PROTO"},
    {"refuse.gzip_trailing", refuse_gzip_trailing, "bytes after the gzip member: AGS_ERR_COMPRESS"},
    {"refuse.gzip_corrupt", refuse_gzip_corrupt, "corrupt gzip: AGS_ERR_COMPRESS"},
    {"refuse.zstd_bomb", refuse_zstd_bomb, "output past rawLen: AGS_ERR_COMPRESS"},
    {"refuse.zstd_short", refuse_zstd_short, "output short of rawLen: AGS_ERR_COMPRESS"},
    {"refuse.sha256", refuse_sha256, "SHA-256 mismatch: AGS_ERR_CHECKSUM"},
    {"refuse.not_json", refuse_not_json, "raw body not JSON: AGS_ERR_JSON"},
    {"refuse.not_array", refuse_not_array, "raw body not an array: AGS_ERR_PROTO"},
    {"refuse.count_mismatch", refuse_count_mismatch, "array size != count: AGS_ERR_PROTO"},
    {"refuse.entry_shape", refuse_entry_shape,
     "an entry of the wrong shape is refused alone (AGS_ERR_PROTO); the others are applied"},
    {"recv.pattern_limits", recv_pattern_limits,
     "version 2^63, timestamp -1, an id of 257 bytes, a pattern over 1 MiB: refused"},
    {"refuse.received_count", refuse_received_count,
     "receivedCount counts the entries decoded: 0 for a batch refused whole"},
    {"refuse.retry", refuse_retry, "a batch refused whole is ACKed with \"retry\": true"},
    {"refuse.cursor_kept", refuse_cursor_kept,
     "the receiver's cursor never moves past a batch it refused whole"},
    {"recv.cursor_saved", recv_cursor_saved,
     "uptoSeq is saved as the sender's cursor; uptoSeq 0 leaves it"},
    {"recv.batch_size", recv_batch_size,
     "a node accepts batchSize entries and refuses more than it announced"},
    {NULL, NULL, NULL},
};
