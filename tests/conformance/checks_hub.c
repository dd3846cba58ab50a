/* SPDX-License-Identifier: Apache-2.0 */
/* Checks of PROTOCOL.md "Hub authentication" and "Federation hub": AUTH, tokens, PULL. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "conform.h"
#include "daemonutil.h"
#include "testutil.h"

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond))                                                                       \
			return failed(__VA_ARGS__);                                                \
	} while (0)

static const char SECRET[] = "conformance-hs256-secret-of-more-than-32-bytes";

/* base64url without padding (RFC 7515) of data; malloc'd (autofree). */
static char *b64url(const void *data, size_t len)
{
	gnutls_datum_t in = {(unsigned char *)data, (unsigned)len}, out = {NULL, 0};
	if (gnutls_base64_encode2(&in, &out) != 0)
		return NULL;
	char *s = autofree(malloc(out.size + 1));
	size_t n = 0;
	for (unsigned i = 0; i < out.size; i++) {
		char c = (char)out.data[i];
		if (c == '=' || c == '\n' || c == '\r')
			continue;
		s[n++] = c == '+' ? '-' : c == '/' ? '_' : c;
	}
	s[n] = '\0';
	gnutls_free(out.data);
	return s;
}

/* An HS256 JWT with these claims, signed with `key` (NULL: the hub's secret). */
static char *token(const char *alg, const char *claims, const char *key)
{
	char *h = autofree(tu_sprintf("{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg));
	char *signing =
	    autofree(tu_sprintf("%s.%s", b64url(h, strlen(h)), b64url(claims, strlen(claims))));
	if (strcmp(alg, "none") == 0)
		return autofree(tu_sprintf("%s.", signing));
	unsigned char mac[32];
	key = key ? key : SECRET;
	gnutls_hmac_fast(GNUTLS_MAC_SHA256, key, strlen(key), signing, strlen(signing), mac);
	return autofree(tu_sprintf("%s.%s", signing, b64url(mac, 32)));
}

static char *claims(const char *sub, const char *tenant, long exp_delta)
{
	return autofree(tu_sprintf("{\"sub\":\"%s\",\"tenant\":\"%s\",\"exp\":%lld}", sub, tenant,
	                           (long long)time(NULL) + exp_delta));
}

static char hub_api[64]; /* the hub daemon's HTTP API, host:port */

static int hub_up(void)
{
	if (E.hub_port > 0)
		return E.hub_port;
	char *path = autofree(tu_sprintf("%s/hub-secret", E.dir));
	tu_write_file(path, SECRET);
	int st = 0;
	E.hub_port = extra_daemon(
	    "hub",
	    autofree(tu_sprintf(",\"hub\":{\"algorithms\":[\"HS256\"],\"hs256SecretFile\":"
	                        "\"%s\"}",
	                        path)),
	    1, &st, hub_api);
	return E.hub_port;
}

/* The hub's count of refused AUTHs (/v1/state hub.authRefused), or -1. */
static long long hub_auth_refused(void)
{
	char *resp = NULL;
	char *url = autofree(tu_sprintf("http://%s/v1/state", hub_api));
	if (tu_curl(&resp, "-X", "GET", url, (char *)NULL) != 200 || !resp) {
		free(resp);
		return -1;
	}
	yyjson_doc *d = autodoc(yyjson_read(resp, strlen(resp), 0));
	free(resp);
	yyjson_val *v = yyjson_ptr_get(yyjson_doc_get_root(d), "/hub/authRefused");
	return yyjson_is_uint(v) ? (long long)yyjson_get_uint(v) : -1;
}

/* After a refusal: the hub counted exactly one more refused AUTH (issue 17, item 6). */
static const char *refusal_counted(long long before, const char *what)
{
	long long after = before;
	for (int i = 0; i < 100 && after == before; i++) { /* until the refusal is counted */
		tu_sleep_ms(50);
		after = hub_auth_refused();
	}
	CHECK(before >= 0 && after == before + 1,
	      "%s: the hub's authRefused went from %lld to %lld, want one more", what, before,
	      after);
	return NULL;
}

static struct sess *agent(const char **why)
{
	if (hub_up() < 0) {
		*why = failed("the hub did not start");
		return NULL;
	}
	struct cq_opts o = {.port = E.hub_port};
	return sess_connect("agent", &o, why);
}

static char *agent_hello(const struct sess *s, const char *node, const char *tenant)
{
	return autofree(
	    tu_sprintf("{\"proto\":1,\"node\":\"%s\",\"tenant\":\"%s\",\"store\":\"%s\","
	               "\"codecs\":[],\"maxFrame\":65536,\"batchSize\":100}",
	               node, tenant, s->store));
}

/* Expects the hub to close with AUTH_FAILED, after an ERROR frame with that code. */
static const char *auth_failed(struct sess *s, const char *what)
{
	int64_t code = wait_close(s, WAIT_MS);
	CHECK(code == E_AUTH_FAILED, "%s: closed with %lld ('%s'), want AUTH_FAILED", what,
	      (long long)code, cq_end(s->c)->reason);
	CHECK(s->errorf, "%s: no ERROR frame before the close", what);
	CHECK(yyjson_get_uint(yyjson_obj_get(yyjson_doc_get_root(s->errorf), "code")) ==
	          E_AUTH_FAILED,
	      "%s: the ERROR frame's code is not 0x104", what);
	return NULL;
}

static const char *hub_auth_first(void)
{
	const char *why;
	struct sess *s = agent(&why);
	CHECK(s, "%s", why);
	send_json(s, F_HELLO, agent_hello(s, "a1", "t1"));
	return auth_failed(s, "HELLO before AUTH");
}

static const char *hub_token_refused(void)
{
	const char *cases[][3] = {
	    {"bad signature", "HS256", "wrong-secret-wrong-secret-wrong-secret"},
	    {"alg none", "none", NULL},
	    {"expired", "HS256", NULL},
	    {"alg HS512", "HS512", NULL},
	};
	for (int i = 0; i < 4; i++) {
		const char *why;
		struct sess *s = agent(&why);
		CHECK(s, "%s", why);
		const char *cl = claims("a1", "t1", i == 2 ? -3600 : 3600);
		char *t = token(cases[i][1], cl, cases[i][2]);
		send_json(s, F_AUTH, autofree(tu_sprintf("{\"token\":\"%s\"}", t)));
		send_json(s, F_HELLO, agent_hello(s, "a1", "t1"));
		const char *r = auth_failed(s, cases[i][0]);
		if (r)
			return r;
	}
	return NULL;
}

static const char *hub_token_limit(void)
{
	const char *why;
	struct sess *s = agent(&why);
	CHECK(s, "%s", why);
	char *big = autofree(malloc(8200));
	memset(big, 'a', 8193);
	big[8193] = '\0';
	send_json(s, F_AUTH, autofree(tu_sprintf("{\"token\":\"%s\"}", big)));
	return auth_failed(s, "a token of 8193 bytes");
}

/* AUTH + HELLO as agent `sub` of tenant t1; the hub's HELLO read. */
static struct sess *agent_in(const char *sub, const char **why)
{
	struct sess *s = agent(why);
	if (!s)
		return NULL;
	send_json(s, F_AUTH,
	          autofree(tu_sprintf("{\"token\":\"%s\"}",
	                              token("HS256", claims(sub, "t1", 3600), NULL))));
	snprintf(s->id, sizeof(s->id), "%s", sub);
	send_json(s, F_HELLO, agent_hello(s, sub, "t1"));
	if (read_frame(s, WAIT_MS) != 1 || s->type != F_HELLO) {
		*why = failed("no HELLO from the hub after AUTH (0x%llx '%s')",
		              (unsigned long long)cq_end(s->c)->code, cq_end(s->c)->reason);
		return NULL;
	}
	return s;
}

static const char *hub_auth_ok(void)
{
	const char *why;
	struct sess *s = agent_in("a1", &why);
	CHECK(s, "%s", why);
	yyjson_val *h = frame_json(s);
	CHECK(yyjson_equals_str(yyjson_obj_get(h, "tenant"), "t1"),
	      "the hub's HELLO tenant is not t1");
	return NULL;
}

static const char *hub_hello_is_sub(void)
{
	const char *why;
	struct sess *s = agent(&why);
	CHECK(s, "%s", why);
	send_json(s, F_AUTH,
	          autofree(tu_sprintf("{\"token\":\"%s\"}",
	                              token("HS256", claims("a1", "t1", 3600), NULL))));
	long long before = hub_auth_refused();
	send_json(s, F_HELLO, agent_hello(s, "a2", "t1"));
	const char *r = auth_failed(s, "HELLO node other than the token's sub");
	return r ? r : refusal_counted(before, "HELLO node other than the token's sub");
}

static const char *hub_second_auth(void)
{
	const char *why;
	struct sess *s = agent_in("a1", &why);
	CHECK(s, "%s", why);
	long long before = hub_auth_refused();
	send_json(s, F_AUTH,
	          autofree(tu_sprintf("{\"token\":\"%s\"}",
	                              token("HS256", claims("a1", "t1", 3600), NULL))));
	const char *r = auth_failed(s, "a second AUTH");
	return r ? r : refusal_counted(before, "a second AUTH");
}

static const char *hub_pull(void)
{
	const char *why;
	/* Agent a3 pushes one change; agent a4 pulls it. */
	struct sess *s = agent_in("a3", &why);
	CHECK(s, "%s", why);
	const char *id = uniq("hub-");
	char *raw = autofree(tu_sprintf("[{\"p\":%s,\"vc\":{\"a3\":1}}]", pattern(id, "h", 0, 1)));
	struct batch b = {.request_id = 1, .source = "a3", .raw = raw};
	yyjson_val *ack = send_batch(s, &b, &why);
	CHECK(ack && yyjson_get_bool(yyjson_obj_get(ack, "success")),
	      "the hub did not take a push: %s", ack ? (const char *)s->payload : why);
	struct sess *p = agent_in("a4", &why);
	CHECK(p, "%s", why);
	/* Nothing before the first PULL. */
	CHECK(read_frame(p, QUIET_MS) == 0, "the hub sent a frame (type 0x%02x) before PULL",
	      p->type);
	send_json(p, F_PULL, "{\"vectorClock\":{}}");
	int seen = 0;
	for (int i = 0; i < 100; i++) {
		CHECK(read_frame(p, WAIT_MS) == 1, "no PULL_DONE");
		if (p->type == F_BATCH) {
			struct rbatch rb;
			char err[256];
			CHECK(batch_decode(p->payload, p->len, 64u << 20, &rb, err, sizeof(err)) ==
			          0,
			      "%s", err);
			seen |= strstr(rb.raw, id) != NULL;
			ack_batch(p, &rb);
			rbatch_free(&rb);
		} else if (p->type == F_PULL_DONE) {
			CHECK(yyjson_is_obj(yyjson_obj_get(frame_json(p), "vectorClock")),
			      "PULL_DONE has no vectorClock");
			CHECK(seen, "PULL_DONE came before the other agent's change");
			return NULL;
		}
	}
	return failed("no PULL_DONE");
}

static const char *hub_vclock_limit(void)
{
	const char *why;
	struct sess *s = agent_in("a5", &why);
	CHECK(s, "%s", why);
	size_t cap = 4097 * 24 + 64, len = 0;
	char *pull = autofree(malloc(cap));
	len += (size_t)snprintf(pull, cap, "{\"vectorClock\":{");
	for (int i = 0; i < 4097; i++)
		len += (size_t)snprintf(pull + len, cap - len, "%s\"a%d\":1", i ? "," : "", i);
	snprintf(pull + len, cap - len, "}}");
	send_json(s, F_PULL, pull);
	int64_t code = wait_close(s, WAIT_MS);
	CHECK(code == E_PROTOCOL,
	      "a PULL clock of 4097 entries: closed with %lld ('%s'), want "
	      "PROTOCOL_ERROR",
	      (long long)code, cq_end(s->c)->reason);
	return NULL;
}

const struct check checks_hub[] = {
    {"hub.vclock_limit", hub_vclock_limit, "a vector clock over 4096 entries: PROTOCOL_ERROR"},
    {"hub.auth_first", hub_auth_first,
     "a frame other than AUTH first: ERROR then close AUTH_FAILED"},
    {"hub.token_refused", hub_token_refused,
     "bad signature, alg none, expired, a disallowed alg: AUTH_FAILED"},
    {"hub.token_limit", hub_token_limit, "a token over 8192 bytes: AUTH_FAILED"},
    {"hub.auth_ok", hub_auth_ok, "a valid token, then HELLO node = sub: the hub's HELLO"},
    {"hub.hello_is_sub", hub_hello_is_sub, "HELLO node other than sub: AUTH_FAILED"},
    {"hub.second_auth", hub_second_auth, "a second AUTH: AUTH_FAILED"},
    {"hub.pull", hub_pull,
     "nothing before PULL; then the tenant's changes and PULL_DONE with a vectorClock"},
    {NULL, NULL, NULL},
};
