/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reconnection backoff and rate limiting: pure arithmetic, no clocks of their
 * own (callers pass the time), so both are unit-tested without waiting.
 */
#ifndef AGS_BACKOFF_H
#define AGS_BACKOFF_H

#include <stddef.h>
#include <stdint.h>

/* Seed 000's retry settings. */
typedef struct ags_backoff_cfg {
	uint32_t max_attempts;
	uint32_t base_delay_ms;
	uint32_t max_delay_ms;
	double multiplier;
} ags_backoff_cfg;

/*
 * The delay before attempt number `attempt` + 1, after `attempt` (>= 1)
 * consecutive failures: min(base * multiplier^(attempt-1), max), then
 * jittered into [delay/2, delay] with `rnd` (a uniformly random 32-bit
 * value) so that peers restarting together do not retry in lockstep. Once
 * attempt > max_attempts the peer is down and the delay is max_delay
 * (jittered the same way). Never 0.
 */
uint32_t ags_backoff_delay_ms(const ags_backoff_cfg *cfg, uint32_t attempt, uint32_t rnd);

/* Whether a peer that failed `attempt` times in a row is "down". */
int ags_backoff_is_down(const ags_backoff_cfg *cfg, uint32_t attempt);

/*
 * A token bucket: `rate` tokens per second, holding at most `burst` tokens.
 * A rate of 0 means unlimited.
 */
typedef struct ags_bucket {
	double rate;
	double burst;
	double tokens;
	uint64_t last_us;
} ags_bucket;

/* Initialises a full bucket at time now_us. */
void ags_bucket_init(ags_bucket *b, double rate, double burst, uint64_t now_us);

/*
 * Takes `n` tokens at time now_us. Returns 0 when they were available (and
 * takes them), otherwise the number of microseconds to wait before they will
 * be (and takes nothing). A request larger than the burst is allowed once the
 * bucket is full, leaving it in debt, so a single large item is never stuck.
 */
uint64_t ags_bucket_take(ags_bucket *b, double n, uint64_t now_us);

/* Tokens available at now_us (refilled first; may be negative after a debt). Unlimited: huge. */
double ags_bucket_available(ags_bucket *b, uint64_t now_us);

/* Spends `n` tokens unconditionally (the bucket may go into debt). */
void ags_bucket_spend(ags_bucket *b, double n);

/* Microseconds until at least `n` tokens are available (0 if they are now). */
uint64_t ags_bucket_wait_us(const ags_bucket *b, double n);

/* Refusal log lines: at most this many per window of this length, then a count. */
#define AGS_REFUSAL_LINES     5
#define AGS_REFUSAL_WINDOW_MS 10000u

/* Kinds of repeated line told apart in one window; more share the last one. */
#define AGS_REPEAT_KINDS 16

/*
 * Repeats of log lines (refusals under a flood): at most `burst` lines of
 * one kind (the same reason text) per window, the rest only counted, and
 * the count said once the window is over. Zero-initialise.
 */
typedef struct ags_repeat {
	uint64_t start_ms; /* the current window began then */
	uint32_t hash[AGS_REPEAT_KINDS], lines[AGS_REPEAT_KINDS];
	size_t kinds;  /* kinds seen in the window */
	uint64_t held; /* lines held back in it */
} ags_repeat;

/*
 * Whether a line of kind `kind` (e.g. the reason) at now_ms may be written:
 * at most `burst` of each kind per `window_ms`. *held_before gets the number
 * of lines held back in a window that has just ended (say it first), else 0.
 */
int ags_repeat_take(ags_repeat *r, const char *kind, uint32_t burst, uint64_t window_ms,
                    uint64_t now_ms, uint64_t *held_before);

/* For a periodic call: the lines held back in a window that is over (then 0), else 0. */
uint64_t ags_repeat_flush(ags_repeat *r, uint64_t window_ms, uint64_t now_ms);

#endif
