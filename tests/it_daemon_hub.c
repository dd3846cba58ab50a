/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Black-box tests of the federation hub through the programs: agentsyncd
 * --hub with a config file (HS256 secret, certificates from `agentsync certs
 * init`), agents run as `agentsync sync --hub` / `agentsync agent put`,
 * tokens from `agentsync token`, state through /v1/state, /metrics, the SSE
 * stream and the daemon's log. A long-lived agent (tests/tools/agsagent) is
 * used where an agent must stay connected while the hub is looked at.
 * Waits are bounded polls; nothing asserts on time.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <yyjson.h>

#include "agentproc.h"
#include "agentsync/agentsync.h"
#include "daemonutil.h"
#include "testutil.h"

#define SECRET   "it-daemon-hub: a shared secret of more than 32 bytes"
#define SECRET_2 "another secret, long enough, that the hub does not know"
#define ISSUER   "agentsync-it"
#define AUDIENCE "hub"

struct fixture {
	char *dir, *certs, *secret, *secret2;
	char *cert, *key, *ca;
	struct tu_daemon hub;
	char ep[64];
};

static char *cli_prog;

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->dir = tu_mkdtemp("itdh");
	f->certs = tu_sprintf("%s/certs", f->dir);
	cli_prog = tu_program("agentsync");
	char *out = NULL;
	char *argv[] = {cli_prog, (char *)"certs",   (char *)"init",         (char *)"--dir",
	                f->certs, (char *)"--nodes", (char *)"hub,agent,n1", NULL};
	if (tu_run(argv, NULL, NULL, &out) != 0)
		fail_msg("certs init: %s", out);
	free(out);
	f->cert = tu_sprintf("%s/agent.pem", f->certs);
	f->key = tu_sprintf("%s/agent-key.pem", f->certs);
	f->ca = tu_sprintf("%s/ca.pem", f->certs);
	f->secret = tu_sprintf("%s/secret", f->dir);
	tu_write_file(f->secret, SECRET "\n");
	f->secret2 = tu_sprintf("%s/secret2", f->dir);
	tu_write_file(f->secret2, SECRET_2 "\n");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	tu_kill_tracked();
	tu_rmrf(f->dir);
	free(f->dir);
	free(f->certs);
	free(f->cert);
	free(f->key);
	free(f->ca);
	free(f->secret);
	free(f->secret2);
	free(f);
	free(cli_prog);
	cli_prog = NULL;
	return 0;
}

/* Runs `agentsync ARGS...` (no daemon API involved); *out gets stdout+stderr. */
static int run_cli(char **out, char *const args[])
{
	char *argv[48];
	size_t n = 0;
	argv[n++] = cli_prog;
	for (size_t i = 0; args[i] && n < 47; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	return tu_run(argv, NULL, NULL, out);
}

/*
 * Writes the hub's config: `algs` the JSON of quic.hub.algorithms (NULL:
 * ["HS256"]), `hub_extra` more quic.hub keys, each with a leading comma.
 */
static char *hub_config(struct fixture *f, const char *name, const char *algs,
                        const char *hub_extra)
{
	char *path = tu_sprintf("%s/%s.json", f->dir, name);
	char *text = tu_sprintf(
	    "{\"quic\":{\"nodeId\":\"hub\",\"host\":\"127.0.0.1\",\"port\":0,"
	    "\"dataDir\":\"%s/%s-data\",\"api\":{\"listen\":\"127.0.0.1:0\"},"
	    "\"tls\":{\"cert\":\"%s/hub.pem\",\"key\":\"%s/hub-key.pem\",\"ca\":\"%s/ca.pem\"},"
	    "\"hub\":{\"algorithms\":%s,\"hs256SecretFile\":\"%s\",\"issuer\":\"" ISSUER
	    "\",\"audience\":\"" AUDIENCE "\"%s}}}\n",
	    f->dir, name, f->certs, f->certs, f->certs, algs ? algs : "[\"HS256\"]", f->secret,
	    hub_extra ? hub_extra : "");
	tu_write_file(path, text);
	free(text);
	return path;
}

static void start_hub(struct fixture *f, const char *name)
{
	char *config = hub_config(f, name, NULL, NULL);
	char *argv[] = {(char *)"--config", config, (char *)"--hub", NULL};
	if (tu_daemon_start(&f->hub, f->dir, name, NULL, argv) != 0)
		fail_msg("agentsyncd --hub did not start (status %d), see %s", f->hub.exit_status,
		         f->hub.err_path);
	snprintf(f->ep, sizeof(f->ep), "quic://127.0.0.1:%d", f->hub.quic_port);
	free(config);
}

static void stop_ok(struct tu_daemon *d)
{
	int st = tu_daemon_stop(d, SIGTERM);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* `agentsync token` for agent `sub` of `tenant`, signed with `secret_file`. */
static char *make_token(const char *secret_file, const char *sub, const char *tenant)
{
	char *out = NULL;
	char *args[] = {(char *)"token",     (char *)"--sub",  (char *)sub,
	                (char *)"--tenant",  (char *)tenant,   (char *)"--secret-file",
	                (char *)secret_file, (char *)"--iss",  (char *)ISSUER,
	                (char *)"--aud",     (char *)AUDIENCE, NULL};
	if (run_cli(&out, args) != 0)
		fail_msg("agentsync token: %s", out);
	size_t n = strlen(out);
	while (n && out[n - 1] == '\n')
		out[--n] = '\0';
	/* A compact JWS: three dot-separated parts, nothing else. */
	assert_int_equal(tu_count_lines_with(out, "."), 1);
	char *d1 = strchr(out, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	assert_non_null(d2);
	assert_null(strchr(d2 + 1, '.'));
	return out;
}

static char *write_token(struct fixture *f, const char *name, const char *token)
{
	char *path = tu_sprintf("%s/%s.jwt", f->dir, name);
	char *text = tu_sprintf("%s\n", token);
	tu_write_file(path, text);
	free(text);
	return path;
}

/*
 * `agentsync sync --hub EP --token T --data DIR/agent-NAME ...` plus `extra`
 * (e.g. "--json", or NULL). Returns the exit code; *out gets the output.
 */
static int hub_sync(struct fixture *f, const char *name, const char *token, const char *extra,
                    char **out)
{
	char *data = tu_sprintf("%s/agent-%s", f->dir, name);
	char *args[] = {(char *)"sync",
	                (char *)"--hub",
	                f->ep,
	                (char *)"--token",
	                (char *)token,
	                (char *)"--data",
	                data,
	                (char *)"--cert",
	                f->cert,
	                (char *)"--key",
	                f->key,
	                (char *)"--ca",
	                f->ca,
	                (char *)"--timeout-ms",
	                (char *)"60000",
	                (char *)extra,
	                NULL};
	int rc = run_cli(out, args);
	free(data);
	return rc;
}

/* Parses the one JSON line of `sync --hub --json` output (stdout only has it). */
static yyjson_doc *json_line(const char *out)
{
	const char *p = strchr(out, '{');
	assert_non_null(p);
	yyjson_doc *d = yyjson_read(p, strcspn(p, "\n"), 0);
	if (!d)
		fail_msg("not a JSON line: %s", out);
	return d;
}

static uint64_t juint(yyjson_val *o, const char *k)
{
	yyjson_val *v = yyjson_obj_get(o, k);
	if (!yyjson_is_uint(v))
		fail_msg("%s is not an unsigned integer", k);
	return yyjson_get_uint(v);
}

/* GET http://API/path into *body; returns the HTTP status. */
static int get(const struct tu_daemon *d, const char *path, char **body)
{
	char *url = tu_sprintf("http://%s%s", d->api, path);
	int status = tu_curl(body, url, NULL);
	free(url);
	return status;
}

/* The tenant `name` in /v1/state's hub section (doc kept in *doc), or NULL. */
static yyjson_val *state_tenant(const struct tu_daemon *d, const char *name, yyjson_doc **doc,
                                yyjson_val **hub)
{
	char *body = NULL;
	assert_int_equal(get(d, "/v1/state", &body), 200);
	*doc = yyjson_read(body, strlen(body), 0);
	free(body);
	assert_non_null(*doc);
	*hub = yyjson_obj_get(yyjson_doc_get_root(*doc), "hub");
	assert_true(yyjson_get_bool(yyjson_obj_get(*hub, "enabled")));
	size_t i, imax;
	yyjson_val *t;
	yyjson_arr_foreach(yyjson_obj_get(*hub, "tenants"), i, imax, t)
	{
		if (yyjson_equals_str(yyjson_obj_get(t, "tenant"), name))
			return t;
	}
	return NULL;
}

struct tenant_wait {
	const struct tu_daemon *d;
	const char *tenant;
	uint64_t agents;
};

static int tenant_has_agents(void *arg)
{
	struct tenant_wait *w = arg;
	yyjson_doc *doc;
	yyjson_val *hub;
	yyjson_val *t = state_tenant(w->d, w->tenant, &doc, &hub);
	int ok = t && yyjson_get_uint(yyjson_obj_get(t, "agentsConnected")) == w->agents;
	yyjson_doc_free(doc);
	return ok;
}

static void agents_share_a_pattern_through_the_hub(void **state)
{
	struct fixture *f = *state;
	start_hub(f, "hub");
	assert_true(tu_daemon_log_has(&f->hub, "hub mode: agents authenticate with HS256 tokens"));
	assert_true(tu_daemon_log_has(&f->hub, "mode=hub"));

	char *t1 = make_token(f->secret, "a1", "acme");
	char *t2 = make_token(f->secret, "a2", "acme");
	char *tf1 = write_token(f, "a1", t1);

	/* Agent a1 writes a pattern locally: nothing reaches the hub yet. */
	char *pfile = tu_sprintf("%s/p1.json", f->dir);
	char *pjson = tu_pattern_json("p1", "shared", 42);
	tu_write_file(pfile, pjson);
	free(pjson);
	char *a1data = tu_sprintf("%s/agent-a1", f->dir);
	char *out = NULL;
	char *put[] = {(char *)"agent",
	               (char *)"put",
	               (char *)"--token-file",
	               tf1,
	               (char *)"--data",
	               a1data,
	               (char *)"--cert",
	               f->cert,
	               (char *)"--key",
	               f->key,
	               (char *)"--ca",
	               f->ca,
	               pfile,
	               NULL};
	if (run_cli(&out, put) != 0 || !strstr(out, "accepted 1, rejected 0"))
		fail_msg("agent put: %s", out);
	free(out);

	/* a1 syncs: its write is pushed. */
	assert_int_equal(hub_sync(f, "a1", t1, NULL, &out), 0);
	if (!strstr(out, "pushed      1") || !strstr(out, "pulled      0") ||
	    !strstr(out, "agent       a1") || !strstr(out, "vectorClock {\"a1\":1}"))
		fail_msg("a1 sync: %s", out);
	free(out);

	/* a2 (another process, another store) syncs: it pulls the pattern. */
	assert_int_equal(hub_sync(f, "a2", t2, "--json", &out), 0);
	yyjson_doc *doc = json_line(out);
	yyjson_val *r = yyjson_doc_get_root(doc);
	assert_true(yyjson_get_bool(yyjson_obj_get(r, "ok")));
	assert_string_equal(yyjson_get_str(yyjson_obj_get(r, "agent")), "a2");
	assert_int_equal(juint(r, "pulled"), 1);
	assert_int_equal(juint(r, "pushed"), 0);
	assert_int_equal(juint(r, "conflicts"), 0);
	assert_true(yyjson_is_num(yyjson_obj_get(r, "durationMs")));
	assert_int_equal(yyjson_get_uint(yyjson_obj_get(yyjson_obj_get(r, "vectorClock"), "a1")),
	                 1);
	assert_false(yyjson_get_bool(yyjson_obj_get(r, "resumed")));
	yyjson_doc_free(doc);
	free(out);

	char *a2data = tu_sprintf("%s/agent-a2", f->dir);
	char *get_args[] = {(char *)"agent", (char *)"get", (char *)"--data",
	                    a2data,          (char *)"p1",  NULL};
	assert_int_equal(run_cli(&out, get_args), 0);
	assert_non_null(strstr(out, "\"id\":\"p1\""));
	assert_non_null(strstr(out, "\"data\":{\"n\":42}"));
	free(out);
	char *missing[] = {(char *)"agent", (char *)"get", (char *)"--data",
	                   a2data,          (char *)"p2",  NULL};
	assert_int_equal(run_cli(&out, missing), 4);
	free(out);
	char *status_args[] = {(char *)"agent", (char *)"status", (char *)"--data",
	                       a2data,          (char *)"--json", NULL};
	assert_int_equal(run_cli(&out, status_args), 0);
	assert_non_null(strstr(out, "\"patterns\":1"));
	assert_non_null(strstr(out, "\"vectorClock\":{\"a1\":1}"));
	free(out);

	/* a1 again, in a new process: the TLS session is resumed. */
	assert_int_equal(hub_sync(f, "a1", t1, NULL, &out), 0);
	if (!strstr(out, "session     resumed"))
		fail_msg("a1's second sync did not resume its session: %s", out);
	free(out);
	assert_int_equal(hub_sync(f, "a1", t1, "--json", &out), 0);
	doc = json_line(out);
	assert_true(yyjson_get_bool(yyjson_obj_get(yyjson_doc_get_root(doc), "resumed")));
	assert_int_equal(juint(yyjson_doc_get_root(doc), "pulled"), 0);
	yyjson_doc_free(doc);
	free(out);

	/* The hub's events carry the tenant, in its log and in the SSE stream. */
	assert_true(tu_daemon_wait_log(&f->hub, "tenant=acme"));
	char *url = tu_sprintf("http://%s/v1/events", f->hub.api);
	char *raw = NULL;
	tu_curl(&raw, "-N", "--max-time", "2", "-H", "Last-Event-ID: 1", url, NULL);
	assert_non_null(strstr(raw, "\"type\":\"pattern:received\""));
	assert_non_null(strstr(raw, "\"tenant\":\"acme\""));
	free(raw);
	free(url);

	stop_ok(&f->hub);
	free(a2data);
	free(a1data);
	free(pfile);
	free(tf1);
	free(t2);
	free(t1);
}

static void bad_token_is_refused_with_its_reason(void **state)
{
	struct fixture *f = *state;
	start_hub(f, "hub-refuse");
	char *bad = make_token(f->secret2, "intruder", "acme");
	char *out = NULL;
	assert_int_equal(hub_sync(f, "intruder", bad, NULL, &out), 1);
	if (!strstr(out, "agentsync: sync: connect with quic://") ||
	    !strstr(out, "token refused: bad signature"))
		fail_msg("expected the hub's refusal reason, got: %s", out);
	free(out);
	assert_int_equal(hub_sync(f, "intruder", bad, "--json", &out), 1);
	yyjson_doc *doc = json_line(out);
	yyjson_val *r = yyjson_doc_get_root(doc);
	assert_false(yyjson_get_bool(yyjson_obj_get(r, "ok")));
	assert_string_equal(yyjson_get_str(yyjson_obj_get(r, "stage")), "connect");
	/* The agent API reports it as an authentication refusal (AGS_ERR_AUTH). */
	assert_string_equal(yyjson_get_str(yyjson_obj_get(r, "error")), ags_strerror(AGS_ERR_AUTH));
	assert_non_null(strstr(yyjson_get_str(yyjson_obj_get(r, "message")), "bad signature"));
	yyjson_doc_free(doc);
	free(out);
	assert_true(
	    tu_daemon_wait_log(&f->hub, "refused (AUTH_FAILED): token refused: bad signature"));
	assert_true(tu_daemon_log_has(&f->hub, "connection:refused"));

	/* Counted as refusals, and nothing was stored for that tenant. */
	char *metrics = NULL;
	assert_int_equal(get(&f->hub, "/metrics", &metrics), 200);
	assert_non_null(strstr(metrics, "agentsync_hub_auth_total{outcome=\"refused\"} 2\n"));
	assert_non_null(strstr(metrics, "agentsync_hub_auth_total{outcome=\"ok\"} 0\n"));
	assert_null(strstr(metrics, "tenant=\"acme\""));
	free(metrics);
	stop_ok(&f->hub);
	free(bad);
}

static void state_and_metrics_show_the_tenants(void **state)
{
	struct fixture *f = *state;
	start_hub(f, "hub-state");
	/* Before any agent: hub mode on, only the hub's own tenant. */
	char *body = NULL;
	assert_int_equal(get(&f->hub, "/v1/state", &body), 200);
	assert_non_null(strstr(body, "\"hub\":{\"enabled\":true,\"agentsConnected\":0"));
	free(body);

	char *t1 = make_token(f->secret, "w1", "umbrella");
	char *out = NULL;
	char *pfile = tu_sprintf("%s/p.ndjson", f->dir);
	char *p1 = tu_pattern_json("u1", "t", 1), *p2 = tu_pattern_json("u2", "t", 2);
	char *nd = tu_sprintf("%s\n%s\n", p1, p2);
	tu_write_file(pfile, nd);
	char *w1data = tu_sprintf("%s/agent-w1", f->dir);
	char *put[] = {(char *)"agent",
	               (char *)"put",
	               (char *)"--token",
	               t1,
	               (char *)"--data",
	               w1data,
	               (char *)"--cert",
	               f->cert,
	               (char *)"--key",
	               f->key,
	               (char *)"--ca",
	               f->ca,
	               pfile,
	               NULL};
	if (run_cli(&out, put) != 0 || !strstr(out, "accepted 2, rejected 0"))
		fail_msg("agent put: %s", out);
	free(out);
	assert_int_equal(hub_sync(f, "w1", t1, NULL, &out), 0);
	assert_non_null(strstr(out, "pushed      2"));
	free(out);

	/* A long-lived agent of the tenant stays connected while we look. */
	char *t2 = make_token(f->secret, "w2", "umbrella");
	char *tf2 = write_token(f, "w2", t2);
	char *w2data = tu_sprintf("%s/agent-w2", f->dir);
	const char *args[] = {"--endpoint",       f->ep,   "--token-file", tf2,
	                      "--data",           w2data,  "--certs",      f->certs,
	                      "--cert-name",      "agent", "--timeout-ms", "60000",
	                      "--quiet-received", NULL};
	np_node *w2 = np_start_prog("agsagent", "w2", args);
	char *r = ap_ask(w2, "connect", "connect ", 1200);
	assert_non_null(r);
	assert_non_null(strstr(r, "connect ok"));
	free(r);
	r = ap_ask(w2, "sync", "sync ", 1200);
	assert_non_null(r);
	assert_non_null(strstr(r, "sync ok pulled=2"));
	free(r);

	struct tenant_wait w = {&f->hub, "umbrella", 1};
	assert_true(tu_wait_for(tenant_has_agents, &w, 600, 50));
	yyjson_doc *doc;
	yyjson_val *hub;
	yyjson_val *t = state_tenant(&f->hub, "umbrella", &doc, &hub);
	assert_non_null(t);
	assert_int_equal(juint(hub, "agentsConnected"), 1);
	assert_int_equal(juint(hub, "authOk"), 2);
	assert_int_equal(juint(hub, "authRefused"), 0);
	assert_int_equal(juint(t, "agentsConnected"), 1);
	assert_int_equal(juint(t, "patterns"), 2);
	assert_int_equal(juint(t, "changes"), 2);
	assert_int_equal(juint(t, "changesReceived"), 2);
	assert_int_equal(juint(t, "conflicts"), 0);
	assert_int_equal(strlen(yyjson_get_str(yyjson_obj_get(t, "digest"))), 64);
	/* The agent that pulled everything holds the same digest as the tenant. */
	r = ap_ask(w2, "state", "state {", 1200);
	assert_non_null(r);
	assert_non_null(strstr(r, yyjson_get_str(yyjson_obj_get(t, "digest"))));
	free(r);
	yyjson_doc_free(doc);

	char *metrics = NULL;
	assert_int_equal(get(&f->hub, "/metrics", &metrics), 200);
	static const char *const lines[] = {
	    "# TYPE agentsync_hub_agents_connected gauge\n",
	    "agentsync_hub_agents_connected{tenant=\"umbrella\"} 1\n",
	    "agentsync_hub_patterns{tenant=\"umbrella\"} 2\n",
	    "agentsync_hub_changes{tenant=\"umbrella\"} 2\n",
	    "# TYPE agentsync_hub_changes_received_total counter\n",
	    "agentsync_hub_changes_received_total{tenant=\"umbrella\"} 2\n",
	    "agentsync_hub_conflicts{tenant=\"umbrella\"} 0\n",
	    "agentsync_hub_auth_total{outcome=\"ok\"} 2\n",
	    "agentsync_hub_auth_total{outcome=\"refused\"} 0\n",
	};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		if (!strstr(metrics, lines[i]))
			fail_msg("/metrics lacks \"%s\":\n%s", lines[i], metrics);
	free(metrics);

	/* agentsync status shows the tenants too. */
	assert_int_equal(tu_cli(f->hub.api, NULL, &out, "status", NULL), 0);
	assert_non_null(strstr(out, "1 agent connected, 2 authenticated, 0 refused"));
	assert_non_null(strstr(out, "umbrella"));
	free(out);

	assert_int_equal(np_quit(w2), 0);
	w.agents = 0;
	assert_true(tu_wait_for(tenant_has_agents, &w, 600, 50));
	stop_ok(&f->hub);
	free(w2data);
	free(tf2);
	free(t2);
	free(w1data);
	free(nd);
	free(p2);
	free(p1);
	free(pfile);
	free(t1);
}

static void daemon_keeps_the_hub_as_upstream(void **state)
{
	struct fixture *f = *state;
	start_hub(f, "hub-up");
	/* Node n1 of tenant acme keeps the hub as its upstream, token from a file. */
	char *tok = make_token(f->secret, "n1", "acme");
	char *tf = write_token(f, "n1", tok);
	char *config = tu_sprintf("%s/n1.json", f->dir);
	char *text = tu_sprintf(
	    "{\"quic\":{\"nodeId\":\"n1\",\"tenant\":\"acme\",\"host\":\"127.0.0.1\",\"port\":0,"
	    "\"dataDir\":\"%s/n1-data\",\"api\":{\"listen\":\"127.0.0.1:0\"},"
	    "\"tls\":{\"cert\":\"%s/n1.pem\",\"key\":\"%s/n1-key.pem\",\"ca\":\"%s/ca.pem\"},"
	    "\"hub\":{\"upstream\":{\"endpoint\":\"%s\",\"tokenFile\":\"%s\",\"hubId\":\"hub\"}}}}"
	    "\n",
	    f->dir, f->certs, f->certs, f->certs, f->ep, tf);
	tu_write_file(config, text);
	struct tu_daemon n1;
	char *argv[] = {(char *)"--config", config, NULL};
	assert_int_equal(tu_daemon_start(&n1, f->dir, "n1", NULL, argv), 0);
	assert_true(tu_daemon_log_has(&n1, "upstream hub quic://127.0.0.1:"));
	if (!tu_daemon_wait_log(&n1, "synced with hub hub"))
		fail_msg("n1 did not sync with the hub (see %s)", n1.err_path);

	/* A write through n1's API reaches an agent of the tenant. */
	char *pfile = tu_sprintf("%s/from-node.json", f->dir);
	char *pjson = tu_pattern_json("from-node", "t", 7);
	tu_write_file(pfile, pjson);
	char *out = NULL;
	assert_int_equal(tu_cli(n1.api, NULL, &out, "put", pfile, NULL), 0);
	free(out);
	char *t = make_token(f->secret, "reader", "acme");
	char *rdata = tu_sprintf("%s/agent-reader", f->dir);
	char *get_args[] = {(char *)"agent", (char *)"get",       (char *)"--data",
	                    rdata,           (char *)"from-node", NULL};
	int found = 0;
	for (int i = 0; i < 100 && !found; i++) {
		assert_int_equal(hub_sync(f, "reader", t, NULL, &out), 0);
		free(out);
		found = run_cli(&out, get_args) == 0;
		free(out);
		if (!found)
			tu_sleep_ms(100);
	}
	assert_true(found);
	stop_ok(&n1);
	stop_ok(&f->hub);
	free(rdata);
	free(t);
	free(pjson);
	free(pfile);
	free(text);
	free(config);
	free(tf);
	free(tok);
}

/* Runs agentsyncd with `args` (NULL-terminated); expects exit 2 and both needles. */
static void daemon_refuses(const char *const *args, const char *path, const char *msg)
{
	char *argv[16];
	size_t n = 0;
	argv[n++] = tu_program("agentsyncd");
	for (size_t i = 0; args[i] && n < 15; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;
	char *out = NULL;
	int rc = tu_run(argv, NULL, NULL, &out);
	if (rc != 2 || !strstr(out, path) || !strstr(out, msg))
		fail_msg("expected exit 2 with \"%s\" and \"%s\", got %d:\n%s", path, msg, rc, out);
	free(out);
	free(argv[0]);
}

static void hub_misconfigurations_are_refused(void **state)
{
	struct fixture *f = *state;
	/* The good config passes --check in hub mode. */
	char *good = hub_config(f, "good", NULL, NULL);
	char *prog = tu_program("agentsyncd"), *out = NULL;
	char *check[] = {prog, (char *)"--config", good, (char *)"--hub", (char *)"--check", NULL};
	assert_int_equal(tu_run(check, NULL, NULL, &out), 0);
	assert_non_null(strstr(out, "valid (node hub, hub mode)"));
	free(out);

	/* --hub without any key. */
	char *plain = tu_sprintf("%s/plain.json", f->dir);
	tu_write_file(plain, "{\"quic\":{\"nodeId\":\"p\",\"port\":0}}");
	const char *a1[] = {"--config", plain, "--hub", NULL};
	daemon_refuses(a1, "quic.hub", "needs a key to verify the agents' tokens");
	/* An allowed algorithm without its key. */
	char *rs = hub_config(f, "rs", "[\"HS256\",\"RS256\"]", NULL);
	const char *a2[] = {"--config", rs, "--hub", NULL};
	daemon_refuses(a2, "quic.hub.rs256PublicKeyFile", "allows RS256");
	/* A secret too short to sign with. */
	char *shortsec = tu_sprintf("%s/short", f->dir);
	tu_write_file(shortsec, "too short\n");
	char *sc = tu_sprintf("%s/short.json", f->dir);
	char *sctext = tu_sprintf("{\"quic\":{\"nodeId\":\"p\",\"hub\":{\"enabled\":true,"
	                          "\"hs256SecretFile\":\"%s\"}}}",
	                          shortsec);
	tu_write_file(sc, sctext);
	const char *a3[] = {"--config", sc, NULL};
	daemon_refuses(a3, "quic.hub.hs256SecretFile", "at least 32 bytes");
	/* A bad value inside hub names its path. */
	char *bad = hub_config(f, "bad", NULL, ",\"maxAgents\":0");
	const char *a4[] = {"--config", bad, "--hub", NULL};
	daemon_refuses(a4, "quic.hub.maxAgents", "got 0");

	/* The CLI's usage errors. */
	char *s1[] = {(char *)"sync", (char *)"--hub", (char *)"quic://127.0.0.1:1", NULL};
	assert_int_equal(run_cli(&out, s1), 2);
	assert_non_null(strstr(out, "--token"));
	free(out);
	char *s2[] = {(char *)"token", (char *)"--sub", (char *)"x", NULL};
	assert_int_equal(run_cli(&out, s2), 2);
	free(out);
	char *s3[] = {(char *)"token", (char *)"--sub",         (char *)"x", (char *)"--tenant",
	              (char *)"t",     (char *)"--secret-file", shortsec,    NULL};
	assert_int_equal(run_cli(&out, s3), 1);
	assert_non_null(strstr(out, "HS256 needs at least 32"));
	free(out);
	char *h1[] = {(char *)"sync", (char *)"--hub", (char *)"x", (char *)"--help", NULL};
	assert_int_equal(run_cli(&out, h1), 0);
	assert_non_null(strstr(out, "--token-file F"));
	free(out);

	free(bad);
	free(sctext);
	free(sc);
	free(shortsec);
	free(rs);
	free(plain);
	free(prog);
	free(good);
}

/* An agent of `tenant` puts a pattern whose data holds `text` and syncs it to the hub. */
static void tenant_push(struct fixture *f, const char *sub, const char *tenant, const char *id,
                        const char *text)
{
	char *tok = make_token(f->secret, sub, tenant);
	char *tf = write_token(f, sub, tok);
	char *pfile = tu_sprintf("%s/%s.json", f->dir, id);
	char *pjson = tu_sprintf("{\"id\":\"%s\",\"agentId\":\"%s\",\"type\":\"note\","
	                         "\"data\":{\"text\":\"%s\"},\"metadata\":{\"source\":\"it\","
	                         "\"tags\":[\"t\"]},\"timestamp\":1700000000000,\"version\":1}",
	                         id, sub, text);
	tu_write_file(pfile, pjson);
	char *data = tu_sprintf("%s/agent-%s", f->dir, sub);
	char *out = NULL;
	char *put[] = {(char *)"agent",
	               (char *)"put",
	               (char *)"--token-file",
	               tf,
	               (char *)"--data",
	               data,
	               (char *)"--cert",
	               f->cert,
	               (char *)"--key",
	               f->key,
	               (char *)"--ca",
	               f->ca,
	               pfile,
	               NULL};
	if (run_cli(&out, put) != 0)
		fail_msg("agent put: %s", out);
	free(out);
	assert_int_equal(hub_sync(f, sub, tok, NULL, &out), 0);
	if (!strstr(out, "pushed      1"))
		fail_msg("%s sync: %s", sub, out);
	free(out);
	free(data);
	free(pjson);
	free(pfile);
	free(tf);
	free(tok);
}

/* 1 when the store at path opens with key_file and holds `id`. */
static int tenant_store_opens(const char *path, const char *key_file, const char *id)
{
	ags_store_opts o = {.key_file = key_file};
	ags_store *s = NULL;
	if (ags_store_open(path, &o, &s, NULL))
		return 0;
	ags_pattern *p = NULL;
	int ok = ags_store_get(s, id, &p) == 0;
	ags_pattern_del(p);
	ags_store_close(s);
	return ok;
}

/* quic.hub.tenants.<t>.keyFile: each tenant's store is encrypted with its own key. */
static void each_tenant_has_its_own_key(void **state)
{
	struct fixture *f = *state;
	char *ka = tu_sprintf("%s/acme.key", f->dir), *kb = tu_sprintf("%s/beta.key", f->dir);
	tu_write_file(ka, "a1a2a3a4a5a6a7a8a9b0b1b2b3b4b5b6b7b8b9c0c1c2c3c4c5c6c7c8c9d0d1d2\n");
	tu_write_file(kb, "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0\n");
	char *extra = tu_sprintf(",\"tenants\":{\"acme\":{\"keyFile\":\"%s\"},"
	                         "\"beta\":{\"keyFile\":\"%s\"}}",
	                         ka, kb);
	char *config = hub_config(f, "hubkeys", NULL, extra);
	char *argv[] = {(char *)"--config", config, (char *)"--hub", NULL};
	if (tu_daemon_start(&f->hub, f->dir, "hubkeys", NULL, argv) != 0)
		fail_msg("agentsyncd --hub did not start, see %s", f->hub.err_path);
	snprintf(f->ep, sizeof(f->ep), "quic://127.0.0.1:%d", f->hub.quic_port);
	tenant_push(f, "a1", "acme", "pa", "acme-secret-walnut");
	tenant_push(f, "b1", "beta", "pb", "beta-secret-hazel");
	tenant_push(f, "c1", "gamma", "pc", "gamma-plain-text");
	char *data = tu_sprintf("%s/hubkeys-data", f->dir);
	/* While the hub runs: no text of an encrypted tenant in its data directory. */
	const char *secret_texts[] = {"acme-secret-walnut", "beta-secret-hazel"};
	for (int i = 0; i < 2; i++) {
		char *hit = tu_tree_holds(data, secret_texts[i], NULL);
		if (hit)
			fail_msg("%s holds \"%s\"", hit, secret_texts[i]);
	}
	stop_ok(&f->hub);
	char *sa = tu_sprintf("%s/tenants/acme/store.db", data);
	char *sb = tu_sprintf("%s/tenants/beta/store.db", data);
	char *sc = tu_sprintf("%s/tenants/gamma/store.db", data);
	assert_true(tenant_store_opens(sa, ka, "pa"));
	assert_false(tenant_store_opens(sa, kb, "pa")); /* another tenant's key */
	assert_false(tenant_store_opens(sa, NULL, "pa"));
	assert_true(tenant_store_opens(sb, kb, "pb"));
	assert_false(tenant_store_opens(sb, ka, "pb"));
	/* A tenant without a key of its own (and no storage.encryption.keyFile): plain. */
	assert_true(tenant_store_opens(sc, NULL, "pc"));
	char *hit = tu_tree_holds(data, "gamma-plain-text", NULL);
	assert_non_null(hit);
	free(hit);
	free(sa);
	free(sb);
	free(sc);
	free(data);
	free(config);
	free(extra);
	free(ka);
	free(kb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(agents_share_a_pattern_through_the_hub, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(bad_token_is_refused_with_its_reason, setup, teardown),
	    cmocka_unit_test_setup_teardown(state_and_metrics_show_the_tenants, setup, teardown),
	    cmocka_unit_test_setup_teardown(daemon_keeps_the_hub_as_upstream, setup, teardown),
	    cmocka_unit_test_setup_teardown(hub_misconfigurations_are_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(each_tenant_has_its_own_key, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
