/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for reconnection backoff and token buckets. */
#include <stdio.h>

#include "testutil.h"
#include "backoff.h"

static const ags_backoff_cfg seed = {3, 1000, 10000, 2.0};

static void delays_follow_the_seed_formula(void **state)
{
	(void)state;
	/* With rnd at its maximum the jitter leaves the full delay. */
	assert_int_equal(ags_backoff_delay_ms(&seed, 1, UINT32_MAX), 1000);
	assert_int_equal(ags_backoff_delay_ms(&seed, 2, UINT32_MAX), 2000);
	assert_int_equal(ags_backoff_delay_ms(&seed, 3, UINT32_MAX), 4000);
	/* Past max_attempts the peer is down and retried every max_delay. */
	assert_false(ags_backoff_is_down(&seed, 3));
	assert_true(ags_backoff_is_down(&seed, 4));
	assert_int_equal(ags_backoff_delay_ms(&seed, 4, UINT32_MAX), 10000);
	assert_int_equal(ags_backoff_delay_ms(&seed, 100, UINT32_MAX), 10000);
	ags_backoff_cfg many = {20, 1000, 10000, 2.0};
	assert_int_equal(ags_backoff_delay_ms(&many, 5, UINT32_MAX), 10000); /* capped: 16000 */
}

static void jitter_stays_within_half_and_full(void **state)
{
	(void)state;
	assert_int_equal(ags_backoff_delay_ms(&seed, 2, 0), 1000);
	for (uint32_t r = 0; r < 1000; r++) {
		uint32_t d = ags_backoff_delay_ms(&seed, 3, r * 4294967u);
		assert_in_range(d, 2000, 4000);
	}
	ags_backoff_cfg zero = {0, 0, 0, 0};
	assert_true(ags_backoff_delay_ms(&zero, 1, 0) >= 1);
}

static void bucket_limits_and_refills(void **state)
{
	(void)state;
	ags_bucket b;
	ags_bucket_init(&b, 100, 100, 0); /* 100/s, burst 100 */
	assert_int_equal(ags_bucket_take(&b, 100, 0), 0);
	uint64_t wait = ags_bucket_take(&b, 50, 0);
	assert_int_equal(wait, 500000); /* 50 tokens at 100/s */
	assert_true(ags_bucket_take(&b, 50, 250000) > 0);
	assert_int_equal(ags_bucket_take(&b, 50, 500000), 0);
	/* Larger than the burst: allowed once full, then in debt. */
	ags_bucket_init(&b, 10, 10, 0);
	assert_int_equal(ags_bucket_take(&b, 25, 0), 0);
	assert_true(ags_bucket_take(&b, 1, 0) > 1000000);
	/* Unlimited. */
	ags_bucket_init(&b, 0, 0, 0);
	assert_int_equal(ags_bucket_take(&b, 1e9, 0), 0);
}

static void bucket_debt_delays_the_next_spend(void **state)
{
	(void)state;
	ags_bucket b;
	ags_bucket_init(&b, 1000, 1000, 0); /* bytes/s */
	assert_true(ags_bucket_available(&b, 0) >= 999.0);
	ags_bucket_spend(&b, 3000); /* one large frame: 2000 in debt */
	assert_true(ags_bucket_available(&b, 0) < 0);
	assert_int_equal(ags_bucket_wait_us(&b, 1), 2001000);
	assert_true(ags_bucket_available(&b, 2001000) >= 1.0 - 1e-9);
	ags_bucket_init(&b, 0, 0, 0);
	assert_true(ags_bucket_available(&b, 5) > 1e17);
	assert_int_equal(ags_bucket_wait_us(&b, 1e9), 0);
}

/* Refusal lines under a flood: a burst per window, then a count said once. */
static void repeats_are_counted_then_said_once(void **state)
{
	(void)state;
	ags_repeat r = {0};
	uint64_t held = 99;
	int written = 0;
	for (int i = 0; i < 1000; i++)
		written += ags_repeat_take(&r, "same", 5, 10000, 20000 + (uint64_t)i, &held);
	assert_int_equal(written, 5);
	assert_int_equal(held, 0);
	assert_int_equal(ags_repeat_flush(&r, 10000, 29999), 0); /* window not over */
	assert_int_equal(ags_repeat_flush(&r, 10000, 30000), 995);
	assert_int_equal(ags_repeat_flush(&r, 10000, 50000), 0); /* said once */
	for (int i = 0; i < 7; i++)
		(void)ags_repeat_take(&r, "same", 5, 10000, 50001, &held);
	/* Another reason is another kind: it has its own lines. */
	assert_int_equal(ags_repeat_take(&r, "other", 5, 10000, 50002, &held), 1);
	assert_int_equal(ags_repeat_take(&r, "same", 5, 10000, 60001, &held), 1);
	assert_int_equal(held, 2); /* the next line after the window says the count first */
	/* More kinds than it tells apart share the last one, and stay bounded. */
	written = 0;
	for (int i = 0; i < 100; i++) {
		char kind[16];
		snprintf(kind, sizeof(kind), "k%d", i);
		written += ags_repeat_take(&r, kind, 5, 10000, 80000, &held);
	}
	assert_int_equal(written, AGS_REPEAT_KINDS - 1 + 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(delays_follow_the_seed_formula),
	    cmocka_unit_test(jitter_stays_within_half_and_full),
	    cmocka_unit_test(bucket_limits_and_refills),
	    cmocka_unit_test(bucket_debt_delays_the_next_spend),
	    cmocka_unit_test(repeats_are_counted_then_said_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
