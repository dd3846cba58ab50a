/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Black-box tests of the federation hub (seed 004) with real processes on
 * 127.0.0.1: a hub (tests/tools/agsnode --hub) and agents
 * (tests/tools/agsagent, over include/agentsync/agent.h), plus an in-process
 * raw client (tests/util/hubraw) for frames no well-behaved agent sends.
 * Refusals (each reason seen by the agent and in the hub's log), tenant
 * isolation, conflicts, catch-up, live delivery, TLS resumption with 0-RTT,
 * and a long-running node keeping the hub as its upstream.
 * Waits are bounded polls; nothing asserts on time.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "agentproc.h"
#include "agentsync/agentsync.h"
#include "frame.h"
#include "hubraw.h"
#include "jwtauth.h"
#include "nodeproc.h"
#include "testutil.h"
#include "wire.h"

#define SECRET   "it-hub secret: at least thirty-two bytes long!"
#define SECRET_2 "some other secret, also long enough to sign with"
#define ISSUER   "agentsync-it"
#define AUDIENCE "hub"

struct env {
	char *dir;
	char *certs;
	char *secret_file;
	np_node *hub;
	int n_tokens;
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	e->dir = tu_mkdtemp("hub");
	e->certs = tu_sprintf("%s/certs", e->dir);
	/* Every agent uses the one "agent" certificate: identity comes from the token. */
	const char *ids[] = {"hub", "agent", "n1"};
	np_certs(e->certs, ids, 3);
	e->secret_file = tu_sprintf("%s/secret", e->dir);
	FILE *f = fopen(e->secret_file, "w");
	assert_non_null(f);
	fputs(SECRET "\n", f);
	fclose(f);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	tu_rmrf(e->dir);
	free(e->certs);
	free(e->secret_file);
	free(e->dir);
	free(e);
	return 0;
}

static void dump(np_node *n)
{
	char *o = np_output(n);
	size_t len = strlen(o);
	fprintf(stderr, "---- %s (last 4000 bytes) ----\n%s\n", n->id,
	        len > 4000 ? o + len - 4000 : o);
	free(o);
}

/* ---- tokens ---- */

static char *b64url(const void *data, size_t n)
{
	gnutls_datum_t in = {(unsigned char *)(uintptr_t)data, (unsigned)n}, out;
	assert_int_equal(gnutls_base64_encode2(&in, &out), 0);
	char *s = malloc(out.size + 1);
	size_t j = 0;
	for (size_t i = 0; i < out.size; i++) {
		char c = (char)out.data[i];
		if (c == '=' || c == '\n')
			continue;
		s[j++] = c == '+' ? '-' : c == '/' ? '_' : c;
	}
	s[j] = '\0';
	gnutls_free(out.data);
	return s;
}

/* A token with this header and payload, HMAC-SHA256-signed with `key` (or signature "x"). */
static char *craft(const char *header, const char *payload, const char *key)
{
	char *h = b64url(header, strlen(header)), *p = b64url(payload, strlen(payload));
	char *signing = tu_sprintf("%s.%s", h, p), *s;
	if (key) {
		uint8_t mac[32];
		assert_int_equal(gnutls_hmac_fast(GNUTLS_MAC_SHA256, key, strlen(key), signing,
		                                  strlen(signing), mac),
		                 0);
		s = b64url(mac, sizeof(mac));
	} else {
		s = strdup("eA");
	}
	char *t = tu_sprintf("%s.%s", signing, s);
	free(h);
	free(p);
	free(signing);
	free(s);
	return t;
}

static int64_t now_s(void)
{
	return ags_now_ms() / 1000;
}

/* A good HS256 token for agent `sub` of `tenant`. */
static char *good_token(const char *sub, const char *tenant)
{
	char *t = NULL;
	assert_int_equal(ags_jwt_sign_hs256((const uint8_t *)SECRET, strlen(SECRET), sub, tenant,
	                                    ISSUER, AUDIENCE, now_s(), now_s() + 3600, &t),
	                 0);
	return t;
}

/* Writes a token to a new file under the test dir; returns its path. */
static char *token_file(struct env *e, const char *token)
{
	char *path = tu_sprintf("%s/token-%d", e->dir, e->n_tokens++);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(token, f);
	fclose(f);
	return path;
}

/* ---- processes ---- */

static np_node *start_hub(struct env *e, const char *tag)
{
	char *data = tu_sprintf("%s/hub-%s", e->dir, tag);
	const char *args[] = {"--id",
	                      "hub",
	                      "--certs",
	                      e->certs,
	                      "--data",
	                      data,
	                      "--hub",
	                      "--jwt-secret-file",
	                      e->secret_file,
	                      "--jwt-alg",
	                      "HS256",
	                      "--issuer",
	                      ISSUER,
	                      "--audience",
	                      AUDIENCE,
	                      "--quiet-received",
	                      NULL};
	np_node *n = np_start("hub", args);
	free(data);
	return n;
}

static char *endpoint(np_node *hub)
{
	return tu_sprintf("quic://127.0.0.1:%u", hub->port);
}

/*
 * Starts an agent process `name` with `token`, data in dir/agent-<name>; with
 * `verbose` it prints a line for every pattern it receives.
 */
static np_node *start_agent_v(struct env *e, np_node *hub, const char *name, const char *token,
                              int verbose)
{
	char *tf = token_file(e, token);
	char *data = tu_sprintf("%s/agent-%s", e->dir, name);
	char *ep = endpoint(hub);
	const char *args[] = {"--endpoint",
	                      ep,
	                      "--token-file",
	                      tf,
	                      "--data",
	                      data,
	                      "--certs",
	                      e->certs,
	                      "--cert-name",
	                      "agent",
	                      "--timeout-ms",
	                      "60000",
	                      verbose ? NULL : "--quiet-received",
	                      NULL};
	np_node *a = np_start_prog("agsagent", name, args);
	free(tf);
	free(data);
	free(ep);
	return a;
}

static np_node *start_agent(struct env *e, np_node *hub, const char *name, const char *token)
{
	return start_agent_v(e, hub, name, token, 0);
}

static np_node *agent_for(struct env *e, np_node *hub, const char *name, const char *tenant)
{
	char *t = good_token(name, tenant);
	np_node *a = start_agent(e, hub, name, t);
	free(t);
	return a;
}

/* Runs `cmd` on agent a and returns its answer line (prefix), failing the test when none comes. */
static char *ask(np_node *a, const char *cmd, const char *prefix)
{
	char *r = ap_ask(a, cmd, prefix, 1200);
	if (!r) {
		dump(a);
		fail_msg("%s: no answer to '%s'", a->id, cmd);
	}
	return r;
}

static void must(np_node *a, const char *cmd, const char *prefix, const char *expect)
{
	char *r = ask(a, cmd, prefix);
	if (!strstr(r, expect)) {
		dump(a);
		fail_msg("%s: '%s' answered '%s', expected '%s'", a->id, cmd, r, expect);
	}
	free(r);
}

static void connect_sync(np_node *a)
{
	must(a, "connect", "connect ", "connect ok");
	must(a, "sync", "sync ", "sync ok");
}

static uint64_t field_u64(const char *line, const char *key)
{
	char *k = tu_sprintf("%s=", key);
	const char *p = strstr(line, k);
	free(k);
	return p ? strtoull(p + strlen(key) + 1, NULL, 10) : UINT64_MAX;
}

/* The agent's store: patterns and digest. */
static void agent_state(np_node *a, uint64_t *patterns, char digest[65])
{
	char *r = ask(a, "state", "state {");
	const char *p = strstr(r, "\"patterns\":");
	*patterns = p ? strtoull(p + 11, NULL, 10) : UINT64_MAX;
	p = strstr(r, "\"digest\":\"");
	digest[0] = '\0';
	if (p)
		snprintf(digest, 65, "%.64s", p + 10);
	free(r);
}

/* A hub tenant's patterns, conflicts and digest from "hub {...}". */
static int hub_tenant(np_node *hub, const char *tenant, uint64_t *patterns, uint64_t *conflicts,
                      char digest[65])
{
	char *r = ask(hub, "hub", "hub {");
	char *key = tu_sprintf("\"%s\":{", tenant);
	const char *t = strstr(r, key);
	free(key);
	int found = t != NULL;
	if (t) {
		const char *p = strstr(t, "\"patterns\":");
		*patterns = p ? strtoull(p + 11, NULL, 10) : UINT64_MAX;
		p = strstr(t, "\"conflicts\":");
		if (conflicts)
			*conflicts = p ? strtoull(p + 12, NULL, 10) : UINT64_MAX;
		p = strstr(t, "\"digest\":\"");
		if (digest)
			snprintf(digest, 65, "%.64s", p ? p + 10 : "");
	}
	free(r);
	return found;
}

/* ---- refusals ---- */

/* An agent with `token` is refused: its error and the hub's log both carry `reason`. */
static void refused_with(struct env *e, const char *name, const char *token, const char *reason)
{
	np_node *a = start_agent(e, e->hub, name, token);
	char *r = ask(a, "connect", "connect ");
	if (!strstr(r, "connect error") || !strstr(r, reason)) {
		dump(a);
		dump(e->hub);
		fail_msg("%s: expected a refusal with '%s', got '%s'", name, reason, r);
	}
	free(r);
	char *needle = tu_sprintf("refused (AUTH_FAILED): token refused: %s", reason);
	if (!np_wait(e->hub, needle, 300)) {
		dump(e->hub);
		fail_msg("the hub did not log '%s'", needle);
	}
	free(needle);
	assert_int_equal(np_quit(a), 0);
}

static void bad_tokens_are_refused_with_their_reason(void **state)
{
	struct env *e = *state;
	e->hub = start_hub(e, "auth");
	int64_t t = now_s();
	char claims[512];
	char *tok;

	/* Signed with another secret. */
	assert_int_equal(ags_jwt_sign_hs256((const uint8_t *)SECRET_2, strlen(SECRET_2), "r1",
	                                    "acme", ISSUER, AUDIENCE, t, t + 3600, &tok),
	                 0);
	refused_with(e, "r1", tok, "bad signature");
	free(tok);

	/* Expired an hour ago (well past the 30 s skew). */
	assert_int_equal(ags_jwt_sign_hs256((const uint8_t *)SECRET, strlen(SECRET), "r2", "acme",
	                                    ISSUER, AUDIENCE, t - 7200, t - 3600, &tok),
	                 0);
	refused_with(e, "r2", tok, "token expired at");
	free(tok);

	/* Not valid for another hour. */
	snprintf(claims, sizeof(claims),
	         "{\"sub\":\"r3\",\"tenant\":\"acme\",\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
	         "\",\"exp\":%" PRId64 ",\"nbf\":%" PRId64 "}",
	         t + 7200, t + 3600);
	tok = craft("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", claims, SECRET);
	refused_with(e, "r3", tok, "token not valid before");
	free(tok);

	/* alg none, unsigned. */
	snprintf(claims, sizeof(claims),
	         "{\"sub\":\"r4\",\"tenant\":\"acme\",\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE
	         "\",\"exp\":%" PRId64 "}",
	         t + 3600);
	tok = craft("{\"alg\":\"none\"}", claims, NULL);
	refused_with(e, "r4", tok, "algorithm 'none' is not allowed");
	free(tok);

	/* An algorithm the hub does not allow (only HS256 is). */
	tok = craft("{\"alg\":\"RS256\"}", claims, NULL);
	refused_with(e, "r5", tok, "algorithm 'RS256' is not allowed");
	free(tok);

	/* Wrong issuer, wrong audience. */
	assert_int_equal(ags_jwt_sign_hs256((const uint8_t *)SECRET, strlen(SECRET), "r6", "acme",
	                                    "someone-else", AUDIENCE, t, t + 3600, &tok),
	                 0);
	refused_with(e, "r6", tok, "issuer 'someone-else' is not '" ISSUER "'");
	free(tok);
	assert_int_equal(ags_jwt_sign_hs256((const uint8_t *)SECRET, strlen(SECRET), "r7", "acme",
	                                    ISSUER, "not-the-hub", t, t + 3600, &tok),
	                 0);
	refused_with(e, "r7", tok, "audience does not include '" AUDIENCE "'");
	free(tok);

	/* No tenant claim. */
	snprintf(claims, sizeof(claims),
	         "{\"sub\":\"r8\",\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE "\",\"exp\":%" PRId64
	         "}",
	         t + 3600);
	tok = craft("{\"alg\":\"HS256\"}", claims, SECRET);
	refused_with(e, "r8", tok, "missing claim 'tenant'");
	free(tok);

	/* A good token still gets in. */
	np_node *ok = agent_for(e, e->hub, "r9", "acme");
	connect_sync(ok);
	assert_int_equal(np_quit(ok), 0);
	assert_int_equal(np_quit(e->hub), 0);
}

/* HELLO frame bytes for agent `node` of `tenant`. */
static void add_hello(ags_frame_buf *fb, const char *node, const char *tenant)
{
	ags_wire_hello h;
	memset(&h, 0, sizeof(h));
	h.proto = AGS_PROTO_VERSION;
	h.node = node;
	h.tenant = tenant;
	h.store = "0123456789abcdef0123456789abcdef";
	h.max_frame = 16u << 20;
	h.batch_size = 100;
	assert_int_equal(ags_wire_hello_encode(&h, fb, NULL), 0);
}

static void raw_refused(struct env *e, ags_frame_buf *fb, const char *reason)
{
	hr_result r;
	hr_session(e->certs, "agent", e->hub->port, fb->data, fb->len, &r);
	if (!r.closed || r.code != AGS_APP_AUTH_FAILED || !strstr(r.reason, reason)) {
		dump(e->hub);
		fail_msg(
		    "expected AUTH_FAILED with '%s'; closed=%d code=0x%llx reason='%s' error='%s'",
		    reason, r.closed, (unsigned long long)r.code, r.reason, r.error);
	}
	/* The ERROR frame says the same, before the close. */
	if (r.error[0])
		assert_non_null(strstr(r.error, reason));
	assert_true(np_wait(e->hub, reason, 300));
	ags_frame_buf_reset(fb);
}

static void protocol_refusals(void **state)
{
	struct env *e = *state;
	e->hub = start_hub(e, "raw");
	ags_frame_buf fb;
	ags_frame_buf_init(&fb, 0);
	char *acme = good_token("raw-1", "acme");
	char *other = good_token("raw-1", "globex");

	/* A frame before AUTH. */
	add_hello(&fb, "raw-1", "acme");
	raw_refused(e, &fb, "AUTH must be the first frame, got HELLO");

	/* A second AUTH switching tenant, after a good one: the connection stays bound. */
	assert_int_equal(ags_wire_auth_encode(acme, &fb, NULL), 0);
	add_hello(&fb, "raw-1", "acme");
	assert_int_equal(ags_wire_auth_encode(other, &fb, NULL), 0);
	raw_refused(e, &fb,
	            "a second AUTH is refused: this connection is bound to agent 'raw-1' "
	            "of tenant 'acme'");

	/* HELLO naming another tenant than the token's, or another agent. */
	assert_int_equal(ags_wire_auth_encode(acme, &fb, NULL), 0);
	add_hello(&fb, "raw-1", "globex");
	raw_refused(e, &fb, "tenant 'globex' is not the token's ('acme')");
	assert_int_equal(ags_wire_auth_encode(acme, &fb, NULL), 0);
	add_hello(&fb, "raw-2", "acme");
	raw_refused(e, &fb, "claimed node id 'raw-2' is not the token's sub 'raw-1'");

	/* A tenant name that cannot be a directory. */
	char *dotdot = good_token("raw-1", "..");
	assert_int_equal(ags_wire_auth_encode(dotdot, &fb, NULL), 0);
	raw_refused(e, &fb, "tenant '..' is not a tenant name");
	free(dotdot);

	/* Nothing of any of that reached a store. */
	uint64_t pats = 0;
	assert_false(hub_tenant(e->hub, "globex", &pats, NULL, NULL));
	free(acme);
	free(other);
	ags_frame_buf_free(&fb);
	assert_int_equal(np_quit(e->hub), 0);
}

/* ---- tenants ---- */

static void tenants_are_isolated(void **state)
{
	struct env *e = *state;
	e->hub = start_hub(e, "iso");
	np_node *a1 = agent_for(e, e->hub, "a1", "acme");
	char *t2 = good_token("a2", "acme");
	np_node *a2 = start_agent_v(e, e->hub, "a2", t2, 1); /* prints what it receives */
	free(t2);
	np_node *b1 = agent_for(e, e->hub, "b1", "globex");

	must(a1, "put 50 a", "put ", "put ok 50");
	must(a1, "putv shared 1 acme-value", "putv ", "putv ok");
	must(b1, "put 30 b", "put ", "put ok 30");
	/* Same id in the other tenant, at a higher version: must not touch acme's. */
	must(b1, "putv shared 5 globex-value", "putv ", "putv ok");
	must(b1, "putv a-0 9 globex-value", "putv ", "putv ok");
	connect_sync(a1);
	connect_sync(b1);

	/* a2 pulls: exactly acme's 51 records, acme's versions. */
	connect_sync(a2);
	uint64_t pats;
	char da[65], db[65], dh[65];
	agent_state(a2, &pats, da);
	assert_int_equal(pats, 51);
	must(a2, "get shared", "get shared", "get shared 1 acme-value");
	must(a2, "get a-0", "get a-0", "get a-0 1 v0");
	must(a2, "get b-0", "get b-0", "get b-0 none");

	/* b1 pulled only its own. */
	must(b1, "sync", "sync ", "sync ok");
	agent_state(b1, &pats, db);
	assert_int_equal(pats, 32);
	must(b1, "get a-1", "get a-1", "get a-1 none");

	/* The hub's two stores match their agents. */
	uint64_t hp;
	assert_true(hub_tenant(e->hub, "acme", &hp, NULL, dh));
	assert_int_equal(hp, 51);
	assert_string_equal(dh, da);
	assert_true(hub_tenant(e->hub, "globex", &hp, NULL, dh));
	assert_int_equal(hp, 32);
	assert_string_equal(dh, db);

	/* Live: a2 stays connected and sees a1's next write as it happens, never b1's. */
	must(b1, "putv late-b 1 b", "putv ", "putv ok");
	must(b1, "sync", "sync ", "sync ok");
	must(a1, "putv late-a 1 a", "putv ", "putv ok");
	must(a1, "sync", "sync ", "sync ok");
	for (int i = 0; i < 300; i++) {
		char *r = ask(a2, "get late-a", "get late-a");
		int have = strstr(r, "none") == NULL;
		free(r);
		if (have)
			break;
		tu_sleep_ms(100);
	}
	must(a2, "get late-a", "get late-a", "get late-a 1 a");
	must(a2, "get late-b", "get late-b", "get late-b none");
	/* What a2 received, change by change: acme's, never globex's. */
	assert_true(np_has(a2, "event pattern:received peer=hub pattern=late-a "));
	assert_true(np_has(a2, "event pattern:received peer=hub pattern=a-49 "));
	assert_false(np_has(a2, "pattern=b-"));
	assert_false(np_has(a2, "pattern=late-b"));
	assert_false(np_has(a2, "globex-value"));

	assert_int_equal(np_quit(a1), 0);
	assert_int_equal(np_quit(a2), 0);
	assert_int_equal(np_quit(b1), 0);
	assert_int_equal(np_quit(e->hub), 0);
}

/* ---- conflicts ---- */

static void concurrent_updates_conflict_everywhere(void **state)
{
	struct env *e = *state;
	e->hub = start_hub(e, "conflict");
	np_node *c1 = agent_for(e, e->hub, "c1", "initech");
	np_node *c2 = agent_for(e, e->hub, "c2", "initech");
	must(c1, "putv rec 1 base", "putv ", "putv ok");
	connect_sync(c1);
	connect_sync(c2);
	must(c2, "get rec", "get rec", "get rec 1 base");
	must(c1, "disconnect", "disconnect", "disconnect ok");
	must(c2, "disconnect", "disconnect", "disconnect ok");

	/* Both update version 1 to version 2 without seeing each other. */
	must(c1, "putv rec 2 from-c1", "putv ", "putv ok");
	must(c2, "putv rec 2 from-c2", "putv ", "putv ok");
	connect_sync(c1);
	char *r = ask(c2, "connect", "connect ");
	free(r);
	char *s2 = ask(c2, "sync", "sync ");
	char *s1 = ask(c1, "sync", "sync ");
	/* c2 pushed second: the hub told it at once; c1 hears at its next sync. */
	if (field_u64(s2, "conflicts") < 1 || field_u64(s1, "conflicts") < 1) {
		dump(c1);
		dump(c2);
		dump(e->hub);
		fail_msg("conflict not reported to both: c1 '%s', c2 '%s'", s1, s2);
	}
	free(s1);
	free(s2);
	assert_true(np_has(c1, "event pattern:conflict peer=hub pattern=rec"));
	assert_true(np_has(c2, "event pattern:conflict peer=hub pattern=rec"));
	assert_true(np_wait(e->hub, "event pattern:conflict", 100));

	/* Everyone keeps the same winner. */
	must(c1, "sync", "sync ", "sync ok");
	must(c2, "sync", "sync ", "sync ok");
	char *g1 = ask(c1, "get rec", "get rec");
	char *g2 = ask(c2, "get rec", "get rec");
	assert_string_equal(g1, g2);
	assert_true(strstr(g1, "from-c1") || strstr(g1, "from-c2"));
	free(g1);
	free(g2);
	uint64_t p1, p2, ph, conflicts;
	char d1[65], d2[65], dh[65];
	agent_state(c1, &p1, d1);
	agent_state(c2, &p2, d2);
	assert_true(hub_tenant(e->hub, "initech", &ph, &conflicts, dh));
	assert_string_equal(d1, d2);
	assert_string_equal(d1, dh);
	assert_true(conflicts >= 1);
	assert_int_equal(np_quit(c1), 0);
	assert_int_equal(np_quit(c2), 0);
	assert_int_equal(np_quit(e->hub), 0);
}

/* ---- catch-up and resumption ---- */

static void offline_agent_catches_up_in_one_sync(void **state)
{
	struct env *e = *state;
	e->hub = start_hub(e, "catchup");
	np_node *d1 = agent_for(e, e->hub, "d1", "umbrella");
	np_node *d2 = agent_for(e, e->hub, "d2", "umbrella");
	connect_sync(d1);
	must(d1, "connected", "connected ", "connected 1");
	/* Once disconnect returns the agent is not connected, even while the connection closes. */
	must(d1, "disconnect", "disconnect", "disconnect ok connected=0");
	must(d1, "connected", "connected ", "connected 0");

	must(d2, "put 10000 bulk", "put ", "put ok 10000");
	connect_sync(d2);

	/* d1 comes back: one sync brings exactly the 10,000 changes. */
	must(d1, "connect", "connect ", "connect ok");
	char *s = ask(d1, "sync", "sync ");
	if (field_u64(s, "pulled") != 10000) {
		dump(d1);
		fail_msg("d1: %s", s);
	}
	free(s);
	uint64_t p1, ph;
	char d[65], dh[65];
	agent_state(d1, &p1, d);
	assert_int_equal(p1, 10000);
	assert_true(hub_tenant(e->hub, "umbrella", &ph, NULL, dh));
	assert_string_equal(d, dh);

	/* A second process of d1 resumes the TLS session and sends 0-RTT. */
	assert_int_equal(np_quit(d1), 0);
	char *t = good_token("d1", "umbrella");
	d1 = start_agent(e, e->hub, "d1", t);
	free(t);
	char *c = ask(d1, "connect", "connect ");
	if (!strstr(c, "connect ok resumed=1 early=1")) {
		dump(d1);
		fail_msg("d1 second run: %s", c);
	}
	free(c);
	s = ask(d1, "sync", "sync ");
	assert_int_equal(field_u64(s, "pulled"), 0);
	free(s);
	char *st = ask(d1, "stats", "stats {");
	assert_non_null(strstr(st, "\"d2\":"));
	free(st);
	assert_int_equal(np_quit(d1), 0);
	assert_int_equal(np_quit(d2), 0);
	assert_int_equal(np_quit(e->hub), 0);
}

/* ---- a long-running node with the hub as upstream ---- */

static void node_keeps_the_hub_as_upstream(void **state)
{
	struct env *e = *state;
	e->hub = start_hub(e, "upstream");
	char *tok = good_token("n1", "acme");
	char *tf = token_file(e, tok);
	free(tok);
	char *ep = endpoint(e->hub);
	char *data = tu_sprintf("%s/n1", e->dir);
	const char *args[] = {"--id",
	                      "n1",
	                      "--certs",
	                      e->certs,
	                      "--data",
	                      data,
	                      "--tenant",
	                      "acme",
	                      "--upstream",
	                      ep,
	                      "--upstream-token-file",
	                      tf,
	                      "--quiet-received",
	                      NULL};
	np_node *n1 = np_start("n1", args);
	free(tf);
	free(ep);
	free(data);
	if (!np_wait(n1, "synced with hub hub", 300)) {
		dump(n1);
		dump(e->hub);
		fail_msg("n1 did not sync with the hub");
	}
	/* The node's writes reach the hub's tenant and its agents... */
	np_cmd(n1, "put 100 fromnode");
	np_node *a = agent_for(e, e->hub, "a", "acme");
	connect_sync(a);
	uint64_t pats = 0;
	char d[65];
	for (int i = 0; i < 300; i++) {
		must(a, "sync", "sync ", "sync ok");
		agent_state(a, &pats, d);
		if (pats == 100)
			break;
		tu_sleep_ms(100);
	}
	assert_int_equal(pats, 100);
	/* ... and the agents' writes reach the node live. */
	must(a, "putv from-agent 1 hello", "putv ", "putv ok");
	must(a, "sync", "sync ", "sync ok");
	if (!np_wait_patterns(n1, 101, 300)) {
		dump(n1);
		fail_msg("n1 did not receive the agent's write");
	}
	np_state st;
	assert_int_equal(np_state_get(n1, &st), 0);
	agent_state(a, &pats, d);
	assert_string_equal(st.digest, d);
	assert_int_equal(np_quit(a), 0);
	assert_int_equal(np_quit(n1), 0);
	assert_int_equal(np_quit(e->hub), 0);
}

/* ---- disconnect, then connect at once ---- */

static void reconnect_at_once(void **state)
{
	struct env *e = *state;
	e->hub = start_hub(e, "reconnect");
	np_node *r1 = agent_for(e, e->hub, "r1", "wayne");
	connect_sync(r1);
	for (int i = 0; i < 5; i++) {
		/* Commands sent in one write run back to back: once disconnect returned,
		 * the agent is not connected, and a connect dials anew. */
		must(r1, "disconnect\nconnected", "connected ", "connected 0");
		must(r1, "connect\nsync", "sync ", "sync ok");
		must(r1, "disconnect\nconnect\nsync", "sync ", "sync ok");
	}
	must(r1, "connected", "connected ", "connected 1");
	assert_int_equal(np_quit(r1), 0);
	assert_int_equal(np_quit(e->hub), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(bad_tokens_are_refused_with_their_reason, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(protocol_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(tenants_are_isolated, setup, teardown),
	    cmocka_unit_test_setup_teardown(concurrent_updates_conflict_everywhere, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(offline_agent_catches_up_in_one_sync, setup, teardown),
	    cmocka_unit_test_setup_teardown(node_keeps_the_hub_as_upstream, setup, teardown),
	    cmocka_unit_test_setup_teardown(reconnect_at_once, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
