/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the choice between two live connections of one peer
 * (ags_node_peer_keep_new, lib/node/node_peer.c). Both ends must choose the
 * same connection, and a connection dialled again by the side that dialled
 * the old one must win at once (issue 13 item 1: the old one is dead on the
 * dialler's side, and keeping it refused the peer until it timed out).
 */
#include "testutil.h"
#include "node_int.h"

/* From a's side and from b's side, for one pair of connections. */
static void both_sides_agree(void **state)
{
	(void)state;
	/* Both dialled at once: a->b is outgoing at a and incoming at b. Whatever arrives
	 * second, both keep the one dialled by the smaller id ("a"). */
	/* At a: old = a's dial (outgoing), new = b's dial (incoming): keep old. */
	assert_int_equal(ags_node_peer_keep_new("a", "b", 1, 1, 0), 0);
	/* At a: old = b's dial, new = a's dial: keep new. */
	assert_int_equal(ags_node_peer_keep_new("a", "b", 1, 0, 1), 1);
	/* At b: old = a's dial (incoming at b), new = b's dial (outgoing): keep old. */
	assert_int_equal(ags_node_peer_keep_new("b", "a", 1, 0, 1), 0);
	/* At b: old = b's dial, new = a's dial: keep new. */
	assert_int_equal(ags_node_peer_keep_new("b", "a", 1, 1, 0), 1);
}

static void same_dialler_newer_wins(void **state)
{
	(void)state;
	/* Only b dials a (b > a). At a both are incoming: the newer is b's redial. */
	assert_int_equal(ags_node_peer_keep_new("a", "b", 1, 0, 0), 1);
	/* And where the larger id is the one that holds them. */
	assert_int_equal(ags_node_peer_keep_new("b", "a", 1, 0, 0), 1);
	/* The dialler's side (it redialled: its old one is gone, but be consistent). */
	assert_int_equal(ags_node_peer_keep_new("b", "a", 1, 1, 1), 1);
	assert_int_equal(ags_node_peer_keep_new("a", "b", 1, 1, 1), 1);
}

static void newer_process_wins(void **state)
{
	(void)state;
	for (int o = 0; o < 2; o++)
		for (int nw = 0; nw < 2; nw++) {
			assert_int_equal(ags_node_peer_keep_new("a", "b", 0, o, nw), 1);
			assert_int_equal(ags_node_peer_keep_new("b", "a", 0, o, nw), 1);
		}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(both_sides_agree),
	    cmocka_unit_test(same_dialler_newer_wins),
	    cmocka_unit_test(newer_process_wins),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
