/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Black-box tests of daemons syncing with each other: three agentsyncd on
 * 127.0.0.1 in a full mesh with certificates from `agentsync certs init`,
 * driven by the CLI. Events are watched with `agentsync watch`.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <yyjson.h>

#include "daemonutil.h"
#include "testutil.h"

#define N 3

struct mesh {
	char *dir;
	char *config[N];
	int quic[N], api[N];
	struct tu_daemon d[N];
};

static const char *const names[N] = {"a", "b", "c"};

/* Writes node i's config: TLS from DIR/certs, the other nodes as peers, extra keys. */
static void write_node_config(struct mesh *m, int i, const char *extra)
{
	char peers[1024] = "";
	size_t used = 0;
	for (int j = 0; j < N; j++) {
		if (j == i)
			continue;
		used += (size_t)snprintf(peers + used, sizeof(peers) - used,
		                         "%s{\"id\":\"%s\",\"address\":\"127.0.0.1\",\"port\":%d}",
		                         used ? "," : "", names[j], m->quic[j]);
	}
	char *text = tu_sprintf(
	    "{\"quic\":{\"nodeId\":\"%s\",\"host\":\"127.0.0.1\",\"port\":%d,"
	    "\"dataDir\":\"%s/%s-data\",\"api\":{\"listen\":\"127.0.0.1:%d\"},"
	    "\"peers\":[%s],\"retry\":{\"maxAttempts\":100,\"baseDelay\":100,\"maxDelay\":500},"
	    "\"tls\":{\"cert\":\"%s/certs/%s.pem\",\"key\":\"%s/certs/%s-key.pem\","
	    "\"ca\":\"%s/certs/ca.pem\",\"rejectUnauthorized\":true}%s}}\n",
	    names[i], m->quic[i], m->dir, names[i], m->api[i], peers, m->dir, names[i], m->dir,
	    names[i], m->dir, extra ? extra : "");
	tu_write_file(m->config[i], text);
	free(text);
}

static void start_node(struct mesh *m, int i, const char *logname)
{
	char *argv[] = {(char *)"--config", m->config[i], NULL};
	assert_int_equal(tu_daemon_start(&m->d[i], m->dir, logname, NULL, argv), 0);
}

static int setup(void **state)
{
	struct mesh *m = calloc(1, sizeof(*m));
	m->dir = tu_mkdtemp("itsync");
	char *certs = tu_sprintf("%s/certs", m->dir), *cli = tu_program("agentsync");
	char *init[] = {cli,   (char *)"certs",   (char *)"init",  (char *)"--dir",
	                certs, (char *)"--nodes", (char *)"a,b,c", NULL};
	assert_int_equal(tu_run(init, NULL, NULL, NULL), 0);
	free(cli);
	free(certs);
	for (int i = 0; i < N; i++) {
		m->quic[i] = tu_free_port(1);
		m->api[i] = tu_free_port(0);
		m->config[i] = tu_sprintf("%s/%s.json", m->dir, names[i]);
	}
	for (int i = 0; i < N; i++)
		write_node_config(m, i, NULL);
	*state = m;
	return 0;
}

static int teardown(void **state)
{
	struct mesh *m = *state;
	tu_kill_tracked();
	for (int i = 0; i < N; i++)
		free(m->config[i]);
	tu_rmrf(m->dir);
	free(m->dir);
	free(m);
	return 0;
}

static yyjson_doc *state_of(const struct tu_daemon *d)
{
	char *out = NULL;
	int rc = tu_cli(d->api, NULL, &out, "status", "--json", NULL);
	if (rc != 0)
		fail_msg("status failed (%d): %s", rc, out);
	yyjson_doc *doc = yyjson_read(out, strlen(out), 0);
	free(out);
	if (!doc)
		fail_msg("status --json is not JSON");
	return doc;
}

static unsigned long long connections(const struct tu_daemon *d)
{
	yyjson_doc *doc = state_of(d);
	unsigned long long n =
	    yyjson_get_uint(yyjson_obj_get(yyjson_doc_get_root(doc), "connections"));
	yyjson_doc_free(doc);
	return n;
}

/* tu_wait_for condition: the daemon has at least one connection. */
static int mesh_up_one(void *arg)
{
	return connections(arg) >= 1;
}

static char *digest_of(const struct tu_daemon *d, unsigned long long *patterns)
{
	yyjson_doc *doc = state_of(d);
	yyjson_val *store = yyjson_obj_get(yyjson_doc_get_root(doc), "store");
	char *s = strdup(yyjson_get_str(yyjson_obj_get(store, "digest")));
	if (patterns)
		*patterns = yyjson_get_uint(yyjson_obj_get(store, "patterns"));
	yyjson_doc_free(doc);
	return s;
}

struct converge {
	struct mesh *m;
	int nodes; /* how many of the first nodes to compare */
	unsigned long long want;
};

/* Whether the first `nodes` daemons hold `want` patterns with the same digest. */
static int converged(void *arg)
{
	struct converge *c = arg;
	unsigned long long n0 = 0, n = 0;
	char *d0 = digest_of(&c->m->d[0], &n0);
	int same = n0 == c->want;
	for (int i = 1; i < c->nodes && same; i++) {
		char *di = digest_of(&c->m->d[i], &n);
		same = n == c->want && strcmp(d0, di) == 0;
		free(di);
	}
	free(d0);
	return same;
}

struct all_connected {
	struct mesh *m;
};

static int mesh_up(void *arg)
{
	struct mesh *m = ((struct all_connected *)arg)->m;
	for (int i = 0; i < N; i++)
		if (connections(&m->d[i]) < N - 1)
			return 0;
	return 1;
}

static char *write_patterns(const char *dir, const char *name, const char *prefix, int first, int n)
{
	char *path = tu_sprintf("%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	for (int i = first; i < first + n; i++) {
		char *id = tu_sprintf("%s%d", prefix, i);
		char *p = tu_pattern_json(id, "test_execution", i);
		fprintf(f, "%s\n", p);
		free(p);
		free(id);
	}
	fclose(f);
	return path;
}

struct file_lines {
	const char *path;
	const char *needle;
	size_t want;
};

static int file_has_lines(void *arg)
{
	struct file_lines *w = arg;
	char *s = tu_read_file(w->path, NULL);
	size_t n = tu_count_lines_with(s, w->needle);
	free(s);
	return n >= w->want;
}

static void three_daemons_converge_and_report_events(void **state)
{
	struct mesh *m = *state;
	for (int i = 0; i < N; i++)
		start_node(m, i, names[i]);
	struct all_connected ac = {m};
	assert_true(tu_wait_for(mesh_up, &ac, 1200, 50));
	assert_true(tu_daemon_wait_log(&m->d[0], "peer:connected peer=b"));
	assert_true(tu_daemon_wait_log(&m->d[0], "peer:connected peer=c"));

	/* Watchers on b and c, connected before anything is written (probed). */
	char *cli = tu_program("agentsync");
	char *wlog[N];
	pid_t w[N] = {0};
	for (int i = 1; i < N; i++) {
		wlog[i] = tu_sprintf("%s/watch-%s.out", m->dir, names[i]);
		char *argv[] = {cli,
		                (char *)"--api",
		                m->d[i].api,
		                (char *)"watch",
		                (char *)"--type",
		                (char *)"pattern:received",
		                NULL};
		w[i] = tu_spawn(argv, wlog[i]);
		tu_track_pid(w[i]);
	}
	int ready = 0;
	for (int k = 0; k < 100 && !ready; k++) {
		char *id = tu_sprintf("probe%d", k), *p = tu_pattern_json(id, "probe", k);
		char *pf = tu_sprintf("%s/probe.json", m->dir), *out = NULL;
		tu_write_file(pf, p);
		assert_int_equal(tu_cli(m->d[0].api, NULL, &out, "put", pf, NULL), 0);
		struct file_lines b = {wlog[1], "\"type\":\"probe\"", 1};
		struct file_lines c = {wlog[2], "\"type\":\"probe\"", 1};
		ready = tu_wait_for(file_has_lines, &b, 100, 50) &&
		        tu_wait_for(file_has_lines, &c, 100, 50);
		free(out);
		free(pf);
		free(p);
		free(id);
	}
	assert_true(ready);

	char *file = write_patterns(m->dir, "p.ndjson", "p", 1, 200), *out = NULL;
	assert_int_equal(tu_cli(m->d[0].api, NULL, &out, "put", file, NULL), 0);
	assert_non_null(strstr(out, "stored 200, unchanged 0"));
	free(out);
	for (int i = 1; i < N; i++) {
		struct file_lines fl = {wlog[i], "\"type\":\"test_execution\"", 200};
		assert_true(tu_wait_for(file_has_lines, &fl, 1200, 50));
		char *seen = tu_read_file(wlog[i], NULL);
		assert_non_null(strstr(seen, "\"sourceId\":\"a\""));
		free(seen);
	}
	unsigned long long probes = 0;
	char *d0 = digest_of(&m->d[0], &probes);
	free(d0);
	struct converge cv = {m, N, probes};
	assert_true(probes >= 200);
	assert_true(tu_wait_for(converged, &cv, 1200, 50));

	/* The same digest shows in `agentsync status` of every node. */
	char *digest = digest_of(&m->d[0], NULL);
	for (int i = 0; i < N; i++) {
		assert_int_equal(tu_cli(m->d[i].api, NULL, &out, "status", NULL), 0);
		assert_non_null(strstr(out, digest));
		free(out);
	}
	free(digest);

	/* A delete on b reaches a and c. */
	assert_int_equal(tu_cli(m->d[1].api, NULL, &out, "delete", "p7", NULL), 0);
	free(out);
	cv.want = probes - 1;
	assert_true(tu_wait_for(converged, &cv, 1200, 50));
	assert_int_equal(tu_cli(m->d[2].api, NULL, &out, "get", "p7", NULL), 4);
	free(out);

	for (int i = 1; i < N; i++) {
		int st = tu_kill_wait(w[i], SIGTERM);
		tu_untrack_pid(w[i]);
		assert_true(WIFEXITED(st));
		free(wlog[i]);
	}
	for (int i = 0; i < N; i++) {
		int st = tu_daemon_stop(&m->d[i], SIGTERM);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	free(file);
	free(cli);
}

static void restarted_node_catches_up(void **state)
{
	struct mesh *m = *state;
	for (int i = 0; i < N; i++)
		start_node(m, i, names[i]);
	struct all_connected ac = {m};
	assert_true(tu_wait_for(mesh_up, &ac, 1200, 50));
	char *one = write_patterns(m->dir, "one.ndjson", "x", 1, 50), *out = NULL;
	assert_int_equal(tu_cli(m->d[0].api, NULL, &out, "put", one, NULL), 0);
	free(out);
	struct converge cv = {m, N, 50};
	assert_true(tu_wait_for(converged, &cv, 1200, 50));

	/* c goes away; a gets more; c comes back with its data and catches up. */
	int st = tu_daemon_stop(&m->d[2], SIGTERM);
	assert_true(WIFEXITED(st));
	char *two = write_patterns(m->dir, "two.ndjson", "x", 51, 100);
	assert_int_equal(tu_cli(m->d[0].api, NULL, &out, "put", two, NULL), 0);
	free(out);
	start_node(m, 2, "c2");
	cv.want = 150;
	assert_true(tu_wait_for(converged, &cv, 1200, 50));
	assert_int_equal(tu_cli(m->d[2].api, NULL, &out, "get", "x150", NULL), 0);
	free(out);
	for (int i = 0; i < N; i++)
		tu_daemon_stop(&m->d[i], SIGTERM);
	free(two);
	free(one);
}

/* Runs `cp -a from to` (a whole data directory). */
static void copy_dir(const char *from, const char *to)
{
	char *argv[] = {(char *)"cp", (char *)"-a", (char *)from, (char *)to, NULL};
	assert_int_equal(tu_run(argv, NULL, NULL, NULL), 0);
}

/*
 * Issue 13 item 4 (docs/PROTOCOL.md, "Store epochs"): a's store goes back in
 * sequence under the same store id (its data directory restored from a copy
 * taken while it was stopped, as after a restored backup or a power loss with
 * fsync off). Its peers' cursors of its store are then ahead of its log, and
 * its new writes take sequence numbers they believe they hold; and a lost
 * writes of its own that only its peers hold, which they never echo. Nothing
 * may be lost either way: every node ends with every write.
 */
static void store_rollback_loses_nothing(void **state)
{
	struct mesh *m = *state;
	for (int i = 0; i < N; i++)
		start_node(m, i, names[i]);
	struct all_connected ac = {m};
	assert_true(tu_wait_for(mesh_up, &ac, 1200, 50));
	char *out = NULL;
	char *before = write_patterns(m->dir, "before.ndjson", "before-", 0, 200);
	assert_int_equal(tu_cli(m->d[0].api, NULL, &out, "put", before, NULL), 0);
	free(out);
	struct converge cv = {m, N, 200};
	assert_true(tu_wait_for(converged, &cv, 1200, 50));

	/* The copy of a's data directory, taken while a is stopped. */
	char *data = tu_sprintf("%s/a-data", m->dir), *snap = tu_sprintf("%s/a-snapshot", m->dir);
	assert_true(WIFEXITED(tu_daemon_stop(&m->d[0], SIGTERM)));
	copy_dir(data, snap);
	start_node(m, 0, "a2");
	assert_true(tu_wait_for(mesh_up, &ac, 1200, 50));
	char *lost = write_patterns(m->dir, "lost.ndjson", "lost-", 0, 300);
	assert_int_equal(tu_cli(m->d[0].api, NULL, &out, "put", lost, NULL), 0);
	free(out);
	cv.want = 500;
	assert_true(tu_wait_for(converged, &cv, 1200, 50));

	/* a goes back to the copy: same store id, sequence back at 200. */
	assert_true(WIFEXITED(tu_daemon_stop(&m->d[0], SIGTERM)));
	tu_rmrf(data);
	copy_dir(snap, data);
	start_node(m, 0, "a3");
	char *after = write_patterns(m->dir, "after.ndjson", "after-", 0, 250);
	assert_int_equal(tu_cli(m->d[0].api, NULL, &out, "put", after, NULL), 0);
	free(out);
	/* b and c get a's new writes; a gets back the 300 it lost. */
	cv.want = 750;
	assert_true(tu_wait_for(converged, &cv, 1200, 50));
	assert_true(tu_daemon_log_has(&m->d[1], "store:rollback"));
	/* Counted: b found a's store went back (peers.a.rollbacks in /v1/state). */
	yyjson_doc *st = state_of(&m->d[1]);
	assert_true(
	    yyjson_get_uint(yyjson_ptr_get(yyjson_doc_get_root(st), "/peers/a/rollbacks")) >= 1);
	yyjson_doc_free(st);
	for (int i = 0; i < N; i++)
		tu_daemon_stop(&m->d[i], SIGTERM);
	free(after);
	free(lost);
	free(before);
	free(snap);
	free(data);
}

/* Copies file `from` over `to` (the daemon re-reads it on SIGHUP). */
static void copy_file(const char *from, const char *to)
{
	size_t len = 0;
	char *text = tu_read_file(from, &len);
	assert_non_null(text);
	FILE *f = fopen(to, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	fclose(f);
	free(text);
}

static void sighup_rotates_certificates(void **state)
{
	struct mesh *m = *state;
	/* A second CA with certificates for a and b. */
	char *certs2 = tu_sprintf("%s/certs2", m->dir), *cli = tu_program("agentsync");
	char *init[] = {cli,    (char *)"certs",   (char *)"init", (char *)"--dir",
	                certs2, (char *)"--nodes", (char *)"a,b",  NULL};
	assert_int_equal(tu_run(init, NULL, NULL, NULL), 0);
	/* b runs on the new CA from the start; a still has the old one, so they refuse each other.
	 */
	char *config = tu_sprintf("%s/b2.json", m->dir);
	char *text = tu_sprintf(
	    "{\"quic\":{\"nodeId\":\"b\",\"host\":\"127.0.0.1\",\"port\":%d,\"dataDir\":"
	    "\"%s/b2-data\",\"api\":{\"listen\":\"127.0.0.1:%d\"},\"peers\":[{\"id\":\"a\","
	    "\"address\":\"127.0.0.1\",\"port\":%d}],\"retry\":{\"maxAttempts\":100,"
	    "\"baseDelay\":100,\"maxDelay\":300},\"tls\":{\"cert\":\"%s/b.pem\",\"key\":"
	    "\"%s/b-key.pem\",\"ca\":\"%s/ca.pem\"}}}",
	    m->quic[1], m->dir, m->api[1], m->quic[0], certs2, certs2, certs2);
	tu_write_file(config, text);
	/* a's own copy of its files, so replacing them touches no other node. */
	char *a_cert = tu_sprintf("%s/a-cert.pem", m->dir),
	     *a_key = tu_sprintf("%s/a-key.pem", m->dir), *a_ca = tu_sprintf("%s/a-ca.pem", m->dir),
	     *old = tu_sprintf("%s/certs", m->dir);
	char *p;
	copy_file(p = tu_sprintf("%s/a.pem", old), a_cert), free(p);
	copy_file(p = tu_sprintf("%s/a-key.pem", old), a_key), free(p);
	copy_file(p = tu_sprintf("%s/ca.pem", old), a_ca), free(p);
	char *extra = tu_sprintf(",\"tls\":{\"cert\":\"%s\",\"key\":\"%s\",\"ca\":\"%s\"}", a_cert,
	                         a_key, a_ca);
	char *acfg =
	    tu_sprintf("{\"quic\":{\"nodeId\":\"a\",\"host\":\"127.0.0.1\",\"port\":%d,\"dataDir\":"
	               "\"%s/a-data\",\"api\":{\"listen\":\"127.0.0.1:%d\"},\"peers\":[]%s}}",
	               m->quic[0], m->dir, m->api[0], extra);
	tu_write_file(m->config[0], acfg);
	start_node(m, 0, "a");
	char *argv[] = {(char *)"--config", config, NULL};
	assert_int_equal(tu_daemon_start(&m->d[1], m->dir, "b2", NULL, argv), 0);
	assert_true(tu_daemon_wait_log(&m->d[0], "connection:refused"));
	assert_int_equal(connections(&m->d[0]), 0);
	/* After several refusals, the advice on the fix has been said once (issue 15.11). */
	struct file_lines refusals = {m->d[0].err_path, "node refused ", 3};
	assert_true(tu_wait_for(file_has_lines, &refusals, 600, 50));
	char *alog = tu_read_file(m->d[0].err_path, NULL);
	if (tu_count_lines_with(alog, "certificates from different CAs") != 1)
		fail_msg("the CA advice should come once:\n%s", alog);
	assert_int_equal(tu_count_lines_with(alog, "agentsync certs init --dir DIR"), 1);
	free(alog);

	/* Rotate a's certificate, key and CA in place, then SIGHUP: b gets in. */
	copy_file(p = tu_sprintf("%s/a.pem", certs2), a_cert), free(p);
	copy_file(p = tu_sprintf("%s/a-key.pem", certs2), a_key), free(p);
	copy_file(p = tu_sprintf("%s/ca.pem", certs2), a_ca), free(p);
	kill(m->d[0].pid, SIGHUP);
	assert_true(tu_daemon_wait_log(&m->d[0], "reloaded"));
	int up = tu_wait_for(mesh_up_one, &m->d[0], 300, 100);
	assert_true(up);
	tu_daemon_stop(&m->d[1], SIGTERM);
	tu_daemon_stop(&m->d[0], SIGTERM);
	free(acfg);
	free(extra);
	free(a_cert);
	free(a_key);
	free(a_ca);
	free(old);
	free(text);
	free(config);
	free(cli);
	free(certs2);
}

static void foreign_certificate_is_refused_and_logged(void **state)
{
	struct mesh *m = *state;
	start_node(m, 0, "a");
	/* x trusts a's CA but has a certificate from another CA, and dials a: a refuses it. */
	char *certs = tu_sprintf("%s/other-certs", m->dir), *cli = tu_program("agentsync");
	char *init[] = {cli,   (char *)"certs",   (char *)"init", (char *)"--dir",
	                certs, (char *)"--nodes", (char *)"b",    NULL};
	assert_int_equal(tu_run(init, NULL, NULL, NULL), 0);
	char *config = tu_sprintf("%s/x.json", m->dir);
	char *text = tu_sprintf(
	    "{\"quic\":{\"nodeId\":\"b\",\"host\":\"127.0.0.1\",\"port\":%d,\"dataDir\":"
	    "\"%s/x-data\",\"api\":{\"listen\":\"127.0.0.1:%d\"},\"peers\":[{\"id\":\"a\","
	    "\"address\":\"127.0.0.1\",\"port\":%d}],\"tls\":{\"cert\":\"%s/b.pem\",\"key\":"
	    "\"%s/b-key.pem\",\"ca\":\"%s/certs/ca.pem\"}}}",
	    tu_free_port(1), m->dir, tu_free_port(0), m->quic[0], certs, certs, m->dir);
	tu_write_file(config, text);
	char *argv[] = {(char *)"--config", config, NULL};
	struct tu_daemon x;
	assert_int_equal(tu_daemon_start(&x, m->dir, "x", NULL, argv), 0);
	assert_true(tu_daemon_wait_log(&m->d[0], "connection:refused"));
	assert_int_equal(connections(&m->d[0]), 0);
	tu_daemon_stop(&x, SIGTERM);
	tu_daemon_stop(&m->d[0], SIGTERM);
	free(text);
	free(config);
	free(cli);
	free(certs);
}

/* Node i's lag for peer `peer` in its state (status --json), or -1 when not listed. */
static long long lag_of(const struct tu_daemon *d, const char *peer)
{
	yyjson_doc *doc = state_of(d);
	yyjson_val *ps = yyjson_obj_get(yyjson_doc_get_root(doc), "peers");
	yyjson_val *p = yyjson_obj_get(ps, peer);
	long long lag = p ? (long long)yyjson_get_uint(yyjson_obj_get(p, "lag")) : -1;
	yyjson_doc_free(doc);
	return lag;
}

struct lag_is {
	const struct tu_daemon *d;
	const char *peer;
	long long want;
};

static int lag_is(void *arg)
{
	struct lag_is *w = arg;
	return lag_of(w->d, w->peer) == w->want;
}

/* Appends n patterns of type `type` with ids prefix<first..> to file `path`. */
static void append_patterns(const char *path, const char *prefix, const char *type, int first,
                            int n)
{
	FILE *f = fopen(path, "a");
	assert_non_null(f);
	for (int i = first; i < first + n; i++) {
		char *id = tu_sprintf("%s%d", prefix, i);
		char *pj = tu_pattern_json(id, type, i);
		fprintf(f, "%s\n", pj);
		free(pj);
		free(id);
	}
	fclose(f);
}

/*
 * Issue 15.1: a peer's lag is what it has not acknowledged, connected or not;
 * changes that came from it, or that its filter excludes, are not lag.
 */
static void lag_counts_what_a_peer_has_not_acknowledged(void **state)
{
	struct mesh *m = *state;
	/* b wants test_execution only; c is configured but never starts. */
	write_node_config(m, 1, ",\"filter\":{\"types\":[\"test_execution\"]}");
	start_node(m, 0, "a");
	start_node(m, 1, "b");
	assert_true(tu_wait_for(mesh_up_one, &m->d[0], 1200, 50));
	char *mine = tu_sprintf("%s/b.ndjson", m->dir), *theirs = tu_sprintf("%s/a.ndjson", m->dir);
	char *more = tu_sprintf("%s/a2.ndjson", m->dir), *out = NULL;
	append_patterns(mine, "y", "test_execution", 1, 3);
	assert_int_equal(tu_cli(m->d[1].api, NULL, &out, "put", mine, NULL), 0);
	free(out);
	append_patterns(theirs, "x", "test_execution", 1, 5);
	append_patterns(theirs, "o", "other", 1, 2);
	assert_int_equal(tu_cli(m->d[0].api, NULL, &out, "put", theirs, NULL), 0);
	free(out);
	/* b holds all it asked for; its own 3 and the 2 it filters out are no lag. */
	struct lag_is w = {&m->d[0], "b", 0};
	if (!tu_wait_for(lag_is, &w, 1200, 50)) {
		tu_cli(m->d[0].api, NULL, &out, "status", "--json", NULL);
		fail_msg("lag of b stays %lld: %s", lag_of(&m->d[0], "b"), out);
	}
	/* c never acknowledged anything: all 10 are to go to it. */
	assert_int_equal(lag_of(&m->d[0], "c"), 10);

	/* b goes away; a gets 4 it wants and 1 it does not. */
	int st = tu_daemon_stop(&m->d[1], SIGTERM);
	assert_true(WIFEXITED(st));
	append_patterns(more, "x", "test_execution", 6, 4);
	append_patterns(more, "o", "other", 3, 1);
	assert_int_equal(tu_cli(m->d[0].api, NULL, &out, "put", more, NULL), 0);
	free(out);
	assert_int_equal(lag_of(&m->d[0], "b"), 4);
	assert_int_equal(lag_of(&m->d[0], "c"), 15);
	char *body = NULL;
	char *url = tu_sprintf("http://%s/metrics", m->d[0].api);
	assert_int_equal(tu_curl(&body, url, NULL), 200);
	assert_non_null(strstr(body, "agentsync_peer_lag{peer=\"b\"} 4\n"));
	assert_non_null(strstr(body, "agentsync_peer_lag{peer=\"c\"} 15\n"));
	free(body);
	free(url);

	/* b comes back and catches up: no lag. */
	start_node(m, 1, "b2");
	assert_true(tu_wait_for(lag_is, &w, 1200, 50));
	for (int i = 0; i < 2; i++)
		tu_daemon_stop(&m->d[i], SIGTERM);
	free(more);
	free(theirs);
	free(mine);
}

/* A stat of the daemon's state: stats.KEY, or peers.PEER.KEY when peer is set. */
static double stat_of(const struct tu_daemon *d, const char *peer, const char *key)
{
	yyjson_doc *doc = state_of(d);
	yyjson_val *root = yyjson_doc_get_root(doc);
	yyjson_val *o = peer ? yyjson_obj_get(yyjson_obj_get(root, "peers"), peer)
	                     : yyjson_obj_get(root, "stats");
	yyjson_val *v = yyjson_obj_get(o, key);
	double x = v ? yyjson_get_num(v) : -1;
	yyjson_doc_free(doc);
	return x;
}

struct acked_all {
	const struct tu_daemon *d;
	const char *peer;
};

/* Whether the peer acknowledged the daemon's whole log (its cursor-only batches included). */
static int acked_all(void *arg)
{
	struct acked_all *w = arg;
	yyjson_doc *doc = state_of(w->d);
	yyjson_val *root = yyjson_doc_get_root(doc);
	uint64_t seq = yyjson_get_uint(yyjson_obj_get(yyjson_obj_get(root, "store"), "seq"));
	yyjson_val *p = yyjson_obj_get(yyjson_obj_get(root, "peers"), w->peer);
	int ok = seq > 0 && yyjson_get_uint(yyjson_obj_get(p, "ackedSeq")) == seq;
	yyjson_doc_free(doc);
	return ok;
}

/*
 * Issue 15.2: a node that only receives reports no compression (1.0, not
 * wire/raw of its cursor-only batches), counts no syncs and emits no
 * sync:completed with patternCount 0; the sender's stats are those of what
 * it sent.
 */
static void stats_are_true_on_sender_and_receiver(void **state)
{
	struct mesh *m = *state;
	start_node(m, 0, "a");
	start_node(m, 1, "b");
	assert_true(tu_wait_for(mesh_up_one, &m->d[0], 1200, 50));
	assert_true(tu_wait_for(mesh_up_one, &m->d[1], 1200, 50));
	char *file = write_patterns(m->dir, "p.ndjson", "p", 1, 200), *out = NULL;
	assert_int_equal(tu_cli(m->d[0].api, NULL, &out, "put", file, NULL), 0);
	free(out);
	struct converge cv = {m, 2, 200};
	assert_true(tu_wait_for(converged, &cv, 1200, 50));
	/* b has nothing of its own: its cursor-only batches carry a's log back. */
	struct acked_all aa = {&m->d[1], "a"};
	assert_true(tu_wait_for(acked_all, &aa, 1200, 50));
	/* Every event since the start (Last-Event-ID 0), as NDJSON. */
	char *cli = tu_program("agentsync");
	char *wlog[2];
	pid_t w[2];
	for (int i = 0; i < 2; i++) {
		wlog[i] = tu_sprintf("%s/watch-%s.out", m->dir, names[i]);
		char *argv[] = {cli,
		                (char *)"--api",
		                m->d[i].api,
		                (char *)"watch",
		                (char *)"--type",
		                (char *)"sync:completed,pattern:received",
		                (char *)"--last-event-id",
		                (char *)"0",
		                NULL};
		w[i] = tu_spawn(argv, wlog[i]);
		tu_track_pid(w[i]);
	}
	struct file_lines fl = {wlog[0], "\"type\":\"sync:completed\"", 1};
	assert_true(tu_wait_for(file_has_lines, &fl, 1200, 50));
	struct file_lines fb = {wlog[1], "\"type\":\"pattern:received\"", 200};
	assert_true(tu_wait_for(file_has_lines, &fb, 1200, 50));

	assert_true(stat_of(&m->d[0], NULL, "successfulSyncs") >= 1);
	double ra = stat_of(&m->d[0], NULL, "compressionRatio");
	assert_true(ra > 0 && ra < 1); /* 200 similar patterns compress */
	assert_true(stat_of(&m->d[0], NULL, "bytesTransferred") > 0);
	assert_true(stat_of(&m->d[0], "b", "syncCount") >= 1);
	assert_true(stat_of(&m->d[1], NULL, "compressionRatio") == 1.0);
	assert_true(stat_of(&m->d[1], NULL, "successfulSyncs") == 0);
	assert_true(stat_of(&m->d[1], NULL, "totalSyncs") == 0);
	assert_true(stat_of(&m->d[1], NULL, "averageLatency") == 0);
	assert_true(stat_of(&m->d[1], "a", "syncCount") == 0);
	assert_true(stat_of(&m->d[1], "a", "patternsReceived") == 200);
	assert_true(stat_of(&m->d[0], "b", "patternsReceived") == 0);
	assert_true(stat_of(&m->d[1], NULL, "bytesTransferred") > 0);

	for (int i = 0; i < 2; i++) {
		int st = tu_kill_wait(w[i], SIGTERM);
		tu_untrack_pid(w[i]);
		assert_true(WIFEXITED(st));
	}
	char *seen_a = tu_read_file(wlog[0], NULL), *seen_b = tu_read_file(wlog[1], NULL);
	assert_null(strstr(seen_a, "\"patternCount\":0,"));
	assert_null(strstr(seen_b, "\"type\":\"sync:completed\""));
	free(seen_b);
	free(seen_a);
	for (int i = 0; i < 2; i++) {
		free(wlog[i]);
		tu_daemon_stop(&m->d[i], SIGTERM);
	}
	free(file);
	free(cli);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(three_daemons_converge_and_report_events, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(restarted_node_catches_up, setup, teardown),
	    cmocka_unit_test_setup_teardown(store_rollback_loses_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(lag_counts_what_a_peer_has_not_acknowledged, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(stats_are_true_on_sender_and_receiver, setup, teardown),
	    cmocka_unit_test_setup_teardown(foreign_certificate_is_refused_and_logged, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(sighup_rotates_certificates, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
