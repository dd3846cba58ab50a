/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A node under a flood of QUIC handshakes that never complete (issue 17,
 * item 1): real agentsyncd daemons on 127.0.0.1 and real quicflood
 * processes sending real client Initials from other loopback addresses
 * (127.0.0.2 and up), some answering the server's Retry as a client at a
 * real address would. While the flood runs, the established peer keeps
 * syncing and a new peer connects and syncs: half-open handshakes have
 * their own budget and never take an established connection's place.
 * Waits are bounded; the assertion is on order (the new peer synced while
 * both floods were still running), not on time.
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

struct fx {
	char *dir, *certs, *other;
	int quic[3], api[3];
	char *config[3];
	struct tu_daemon d[3];
	pid_t flood[2];
	char *flood_log[2];
};

static const char *const names[3] = {"a", "b", "c"};

static void write_config(struct fx *f, int i)
{
	/* a dials nobody; b and c dial a. a's idle timeout is long (2 min): without a
	 * handshake timeout of their own, half-open handshakes would hold their slots that
	 * long, longer than any wait of this test. */
	char *peers =
	    i == 0 ? strdup("")
	           : tu_sprintf("{\"id\":\"a\",\"address\":\"127.0.0.1\",\"port\":%d}", f->quic[0]);
	char *text = tu_sprintf(
	    "{\"quic\":{\"nodeId\":\"%s\",\"host\":\"127.0.0.1\",\"port\":%d,"
	    "\"dataDir\":\"%s/%s-data\",\"api\":{\"listen\":\"127.0.0.1:%d\"},%s"
	    "\"peers\":[%s],\"retry\":{\"maxAttempts\":1000,\"baseDelay\":100,\"maxDelay\":500},"
	    "\"tls\":{\"cert\":\"%s/%s.pem\",\"key\":\"%s/%s-key.pem\","
	    "\"ca\":\"%s/ca.pem\",\"rejectUnauthorized\":true}}}\n",
	    names[i], f->quic[i], f->dir, names[i], f->api[i],
	    i == 0 ? "\"idleTimeout\":120000," : "", peers, f->certs, names[i], f->certs, names[i],
	    f->certs);
	tu_write_file(f->config[i], text);
	free(text);
	free(peers);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	f->dir = tu_mkdtemp("itflood");
	f->certs = tu_sprintf("%s/certs", f->dir);
	f->other = tu_sprintf("%s/other", f->dir);
	char *cli = tu_program("agentsync");
	char *init[] = {cli,      (char *)"certs",   (char *)"init",  (char *)"--dir",
	                f->certs, (char *)"--nodes", (char *)"a,b,c", NULL};
	assert_int_equal(tu_run(init, NULL, NULL, NULL), 0);
	/* The flood's certificate is from another CA: it has no credentials here. */
	char *init2[] = {cli,      (char *)"certs",   (char *)"init", (char *)"--dir",
	                 f->other, (char *)"--nodes", (char *)"x",    NULL};
	assert_int_equal(tu_run(init2, NULL, NULL, NULL), 0);
	free(cli);
	for (int i = 0; i < 3; i++) {
		f->quic[i] = tu_free_port(1);
		f->api[i] = tu_free_port(0);
		f->config[i] = tu_sprintf("%s/%s.json", f->dir, names[i]);
		write_config(f, i);
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	for (int i = 0; i < 2; i++) {
		if (f->flood[i] > 0)
			tu_kill_wait(f->flood[i], SIGKILL);
		free(f->flood_log[i]);
	}
	tu_kill_tracked();
	for (int i = 0; i < 3; i++)
		free(f->config[i]);
	tu_rmrf(f->dir);
	free(f->dir);
	free(f->certs);
	free(f->other);
	free(f);
	return 0;
}

static void start(struct fx *f, int i)
{
	char *argv[] = {(char *)"--config", f->config[i], NULL};
	assert_int_equal(tu_daemon_start(&f->d[i], f->dir, names[i], NULL, argv), 0);
}

static void put(struct fx *f, int i, const char *id)
{
	char *p = tu_pattern_json(id, "flood_test", 1);
	char *path = tu_sprintf("%s/%s.json", f->dir, id), *out = NULL;
	tu_write_file(path, p);
	int rc = tu_cli(f->d[i].api, NULL, &out, "put", path, NULL);
	if (rc != 0)
		fail_msg("put %s on %s: %d %s", id, names[i], rc, out);
	free(out);
	free(path);
	free(p);
}

struct has {
	struct fx *f;
	int node;
	const char *id;
};

static int has_pattern(void *arg)
{
	struct has *h = arg;
	char *out = NULL;
	int rc = tu_cli(h->f->d[h->node].api, NULL, &out, "get", h->id, NULL);
	free(out);
	return rc == 0;
}

/*
 * Waits for node to have id. The bound (400 polls, 20-40 s) stays under a's idle timeout
 * (2 min), which is how long the flood's half-open handshakes would otherwise hold slots.
 */
static void wait_has(struct fx *f, int node, const char *id)
{
	struct has h = {f, node, id};
	if (!tu_wait_for(has_pattern, &h, 400, 50))
		fail_msg("%s never got %s; log of a:\n%s", names[node], id,
		         tu_read_file(f->d[0].err_path, NULL));
}

/* Starts a flood process: `addrs` source addresses from `from`, `rate` Initials a second. */
static void flood_start(struct fx *f, int k, const char *from, int answer_retry)
{
	char *prog = tu_program("quicflood");
	char *conn = tu_sprintf("127.0.0.1:%d", f->quic[0]);
	char *cert = tu_sprintf("%s/x.pem", f->other), *key = tu_sprintf("%s/x-key.pem", f->other);
	char *ca = tu_sprintf("%s/ca.pem", f->other);
	f->flood_log[k] = tu_sprintf("%s/flood%d.log", f->dir, k);
	char *argv[] = {prog,
	                (char *)"--connect",
	                conn,
	                (char *)"--cert",
	                cert,
	                (char *)"--key",
	                key,
	                (char *)"--ca",
	                ca,
	                (char *)"--from",
	                (char *)from,
	                (char *)"--addrs",
	                (char *)"20",
	                (char *)"--rate",
	                (char *)"300",
	                answer_retry ? (char *)"--answer-retry" : NULL,
	                NULL};
	f->flood[k] = tu_spawn(argv, f->flood_log[k]);
	free(prog);
	free(conn);
	free(cert);
	free(key);
	free(ca);
}

static int alive(pid_t pid)
{
	int st;
	return waitpid(pid, &st, WNOHANG) == 0;
}

/* Whether flood k has sent at least 1500 Initials (the old default budget was 1024). */
static int flood_sent_enough(void *arg)
{
	const char *log = arg;
	char *s = tu_read_file(log, NULL);
	unsigned long long best = 0;
	for (const char *p = s; p && (p = strstr(p, "sent ")); p += 5) {
		unsigned long long n = strtoull(p + 5, NULL, 10);
		if (n > best)
			best = n;
	}
	free(s);
	return best >= 1500;
}

static void new_peer_syncs_during_a_handshake_flood(void **state)
{
	struct fx *f = *state;
	start(f, 0);
	start(f, 1);
	put(f, 0, "before");
	wait_has(f, 1, "before");

	flood_start(f, 0, "127.0.0.2", 0);
	flood_start(f, 1, "127.0.0.100", 1);
	for (int k = 0; k < 2; k++)
		if (!tu_wait_for(flood_sent_enough, f->flood_log[k], 1200, 50))
			fail_msg("flood %d did not get going:\n%s", k,
			         tu_read_file(f->flood_log[k], NULL));

	/* The established peer keeps syncing, both ways. */
	put(f, 0, "during-a");
	wait_has(f, 1, "during-a");
	put(f, 1, "during-b");
	wait_has(f, 0, "during-b");

	/* A new peer gets in and syncs. */
	start(f, 2);
	wait_has(f, 2, "before");
	wait_has(f, 2, "during-b");
	put(f, 2, "during-c");
	wait_has(f, 0, "during-c");
	wait_has(f, 1, "during-c");
	for (int k = 0; k < 2; k++)
		if (!alive(f->flood[k]))
			fail_msg("flood %d ended before the checks:\n%s", k,
			         tu_read_file(f->flood_log[k], NULL));
	for (int k = 0; k < 2; k++) {
		tu_kill_wait(f->flood[k], SIGTERM);
		f->flood[k] = 0;
	}
	/* The pressure is logged: Retry answered the raw flood, the budget dropped or
	 * refused the one that answers Retry. */
	if (!tu_daemon_wait_log(&f->d[0], "handshake pressure: "))
		fail_msg("no pressure line in a's log:\n%s", tu_read_file(f->d[0].err_path, NULL));
	char *log = tu_read_file(f->d[0].err_path, NULL);
	size_t refusals = tu_count_lines_with(log, "connection:refused");
	/* Refusals of the flood are counted, not logged one by one. */
	if (refusals > 50)
		fail_msg("%zu refusal lines in a's log", refusals);
	free(log);
}

/*
 * A peer that never answers (issue 15, item 4): each dial ends after quic.handshakeTimeout
 * with a connection:timeout event (not a refusal) and counts as a peer error, while the idle
 * timeout (2 min) would have kept the attempt waiting longer than this test's waits.
 */
static void silent_peer_is_a_timeout_not_a_refusal(void **state)
{
	struct fx *f = *state;
	int silent = tu_free_port(1);
	char *text = tu_sprintf(
	    "{\"quic\":{\"nodeId\":\"a\",\"host\":\"127.0.0.1\",\"port\":%d,"
	    "\"dataDir\":\"%s/a-data\",\"api\":{\"listen\":\"127.0.0.1:%d\"},"
	    "\"idleTimeout\":120000,\"handshakeTimeout\":300,"
	    "\"peers\":[{\"id\":\"b\",\"address\":\"127.0.0.1\",\"port\":%d}],"
	    "\"retry\":{\"maxAttempts\":1000,\"baseDelay\":100,\"maxDelay\":200},"
	    "\"tls\":{\"cert\":\"%s/a.pem\",\"key\":\"%s/a-key.pem\",\"ca\":\"%s/ca.pem\"}}}\n",
	    f->quic[0], f->dir, f->api[0], silent, f->certs, f->certs, f->certs);
	tu_write_file(f->config[0], text);
	free(text);
	start(f, 0);
	if (!tu_daemon_wait_log(&f->d[0], "connection:timeout peer=b address=127.0.0.1:"))
		fail_msg("no timeout event:\n%s", tu_read_file(f->d[0].err_path, NULL));
	assert_true(tu_daemon_wait_log(&f->d[0], "peer:error peer=b error=\"no answer within the "
	                                         "handshake timeout (300 ms)\""));
	char *log = tu_read_file(f->d[0].err_path, NULL);
	if (strstr(log, "connection:refused"))
		fail_msg("a timeout logged as a refusal:\n%s", log);
	free(log);
	char *out = NULL;
	assert_int_equal(tu_cli(f->d[0].api, NULL, &out, "status", "--json", NULL), 0);
	yyjson_doc *doc = yyjson_read(out, strlen(out), 0);
	assert_non_null(doc);
	yyjson_val *peers = yyjson_obj_get(yyjson_doc_get_root(doc), "peers");
	yyjson_val *b = yyjson_arr_get_first(peers);
	if (yyjson_is_obj(peers))
		b = yyjson_obj_get(peers, "b");
	if (yyjson_get_uint(yyjson_obj_get(b, "errorCount")) < 1)
		fail_msg("errors not counted: %s", out);
	yyjson_doc_free(doc);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(new_peer_syncs_during_a_handshake_flood, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(silent_peer_is_a_timeout_not_a_refusal, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
