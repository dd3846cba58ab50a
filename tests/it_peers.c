/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Black-box tests of the peer lifecycle with real node processes on
 * 127.0.0.1: a peer SIGKILLed and restarted is reconnected by the other
 * under the backoff schedule with its events in order; a peer that cannot be
 * reached is degraded after 5 errors and recovers once it is up. Waits are
 * bounded polls; delays are checked against the schedule from the node's own
 * log lines, never against a clock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodeproc.h"
#include "testutil.h"

struct env {
	char *dir;
	char *certs;
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	e->dir = tu_mkdtemp("peers");
	e->certs = tu_sprintf("%s/certs", e->dir);
	const char *ids[] = {"a", "b"};
	np_certs(e->certs, ids, 2);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	tu_rmrf(e->dir);
	free(e->certs);
	free(e->dir);
	free(e);
	return 0;
}

static np_node *start(struct env *e, const char *id, const char *const *extra)
{
	char *data = tu_sprintf("%s/%s", e->dir, id);
	const char *args[32] = {"--id",   id,   "--certs",         e->certs,
	                        "--data", data, "--quiet-received"};
	size_t k = 7;
	for (size_t i = 0; extra && extra[i] && k < 31; i++)
		args[k++] = extra[i];
	args[k] = NULL;
	np_node *n = np_start(id, args);
	free(data);
	return n;
}

/* Position of the n-th (1-based) occurrence of needle in s, or NULL. */
static const char *nth(const char *s, const char *needle, int n)
{
	const char *p = s;
	for (int i = 0; i < n; i++) {
		p = strstr(p, needle);
		if (!p)
			return NULL;
		if (i + 1 < n)
			p += strlen(needle);
	}
	return p;
}

/*
 * Every "peer b: attempt N in D ms" line must have D within the seed's
 * schedule with jitter: [d/2, d] for d = min(base * 2^(N-2), max), where
 * base = 200 and max = 2000 (agsnode's settings) and attempts past
 * maxAttempts (3) use max. Returns how many lines were checked.
 */
static int check_schedule(const char *out)
{
	int checked = 0;
	for (const char *p = out; (p = strstr(p, "peer b: attempt ")); p++) {
		unsigned attempt = 0, delay = 0;
		if (sscanf(p, "peer b: attempt %u in %u ms", &attempt, &delay) != 2)
			continue;
		unsigned failures = attempt - 1;
		double d = failures > 3 ? 2000.0 : 200.0;
		for (unsigned i = 1; failures <= 3 && i < failures; i++)
			d *= 2;
		if (d > 2000)
			d = 2000;
		if (delay < (unsigned)(d / 2) || delay > (unsigned)d)
			fail_msg("attempt %u delayed %u ms, schedule allows %.0f-%.0f", attempt,
			         delay, d / 2, d);
		checked++;
	}
	return checked;
}

static void restarted_peer_is_reconnected_in_order(void **state)
{
	struct env *e = *state;
	int port = tu_free_port(1);
	char *ps = tu_sprintf("%d", port);
	const char *bx[] = {"--port", ps, NULL};
	np_node *b = start(e, "b", bx);
	char *pb = tu_sprintf("b@127.0.0.1:%d", port);
	const char *ax[] = {"--peer", pb, "--idle-ms", "3000", NULL};
	np_node *a = start(e, "a", ax);
	assert_true(np_wait(a, "event peer:connected peer=b", 300));
	np_cmd(a, "put 10 before");
	assert_true(np_wait_patterns(b, 10, 300));

	np_kill(b);
	b = start(e, "b", bx); /* same port, same key, same data */
	/* a notices the old connection is gone and dials b again. */
	unsigned tries = 0;
	while (np_count(a, "event peer:connected peer=b") < 2 && tries++ < 300)
		tu_sleep_ms(100);
	char *out = np_output(a);
	const char *c1 = nth(out, "event peer:connected peer=b", 1);
	const char *d1 = nth(out, "event peer:disconnected peer=b", 1);
	const char *c2 = nth(out, "event peer:connected peer=b", 2);
	if (!c1 || !d1 || !c2)
		fail_msg("events missing:\n%s", out);
	/* In order: connected, disconnected, connected. */
	assert_true(c1 < d1);
	assert_true(d1 < c2);
	check_schedule(out);
	free(out);

	/* And it syncs again: a change made now reaches the restarted b. */
	np_cmd(a, "put 5 after");
	assert_true(np_wait_patterns(b, 15, 300));
	np_quit(a);
	np_quit(b);
	free(ps);
	free(pb);
}

static void unreachable_peer_degrades_then_recovers(void **state)
{
	struct env *e = *state;
	int port = tu_free_port(1);
	char *pb = tu_sprintf("b@127.0.0.1:%d", port);
	/* Nothing listens on `port`: each attempt fails at the 300 ms handshake timeout. */
	const char *ax[] = {"--peer", pb, "--idle-ms", "300", NULL};
	np_node *a = start(e, "a", ax);
	if (!np_wait(a, "event peer:health:degraded peer=b", 600)) {
		char *o = np_output(a);
		fail_msg("no degraded event:\n%s", o);
	}
	char *out = np_output(a);
	const char *deg = strstr(out, "event peer:health:degraded peer=b");
	/* It took 5 errors to get there. */
	const char *e5 = nth(out, "event peer:error peer=b", 5);
	assert_non_null(e5);
	assert_true(e5 < deg);
	assert_null(nth(out, "event peer:health:degraded peer=b", 2));
	/* Past maxAttempts (3) the peer is down but still retried. */
	assert_non_null(strstr(out, "peer b marked down after"));
	assert_true(check_schedule(out) >= 4);
	free(out);

	char *ps = tu_sprintf("%d", port);
	const char *bx[] = {"--port", ps, NULL};
	np_node *b = start(e, "b", bx);
	assert_true(np_wait(a, "event peer:connected peer=b", 600));
	assert_true(np_wait(a, "event peer:health:recovered peer=b", 100));
	out = np_output(a);
	assert_true(strstr(out, "event peer:health:recovered peer=b") >
	            strstr(out, "event peer:health:degraded peer=b"));
	free(out);
	np_quit(a);
	np_quit(b);
	free(ps);
	free(pb);
}

static void resumed_connection_sends_its_first_batches_in_0rtt(void **state)
{
	struct env *e = *state;
	int port = tu_free_port(1);
	char *ps = tu_sprintf("%d", port);
	const char *bx[] = {"--port", ps, NULL};
	np_node *b = start(e, "b", bx);
	char *pb = tu_sprintf("b@127.0.0.1:%d", port);
	const char *ax[] = {"--peer", pb, NULL};
	np_node *a = start(e, "a", ax);
	assert_true(np_wait(a, "event peer:connected peer=b", 300));
	np_cmd(a, "put 10 first");
	assert_true(np_wait_patterns(b, 10, 300));
	/* b drops a; a keeps b as a peer, holds a session ticket and dials again. */
	np_cmd(b, "disconnect a");
	assert_true(np_wait(a, "event peer:disconnected peer=b", 300));
	np_cmd(a, "put 5 late");
	assert_true(np_wait(a, "put ok 5", 300));
	assert_true(np_wait(a, "resuming with b in 0-RTT", 300));
	assert_true(np_wait_patterns(b, 15, 300));
	/* b's HELLO confirmed where a assumed b stood, so nothing was resent from the start. */
	assert_true(np_wait(a, "0-RTT hint for b held", 300));
	assert_false(np_has(a, "was stale"));
	/* The early batches were counted, and a later write still syncs. */
	assert_false(np_has(a, "0-RTT hint for b held: 0 batches"));
	np_cmd(a, "put 3 after");
	assert_true(np_wait_patterns(b, 18, 300));
	np_quit(a);
	np_quit(b);
	free(ps);
	free(pb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(restarted_peer_is_reconnected_in_order, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(unreachable_peer_degrades_then_recovers, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(resumed_connection_sends_its_first_batches_in_0rtt,
	                                    setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
