/* SPDX-License-Identifier: Apache-2.0 */
/* Reconnection backoff with jitter, and token buckets for rate limits. */
#include <math.h>

#include "backoff.h"

uint32_t ags_backoff_delay_ms(const ags_backoff_cfg *cfg, uint32_t attempt, uint32_t rnd)
{
	double base = cfg->base_delay_ms ? cfg->base_delay_ms : 1;
	double max = cfg->max_delay_ms ? cfg->max_delay_ms : base;
	double mult = cfg->multiplier >= 1.0 ? cfg->multiplier : 1.0;
	double d;

	if (attempt == 0)
		attempt = 1;
	if (ags_backoff_is_down(cfg, attempt))
		d = max;
	else
		d = fmin(base * pow(mult, (double)(attempt - 1)), max);
	/* Jitter into [d/2, d]. */
	double j = d / 2 + (d / 2) * ((double)rnd / 4294967295.0);
	uint32_t ms = (uint32_t)j;
	return ms ? ms : 1;
}

int ags_backoff_is_down(const ags_backoff_cfg *cfg, uint32_t attempt)
{
	return cfg->max_attempts > 0 && attempt > cfg->max_attempts;
}

void ags_bucket_init(ags_bucket *b, double rate, double burst, uint64_t now_us)
{
	b->rate = rate > 0 ? rate : 0;
	b->burst = burst > 0 ? burst : (rate > 0 ? rate : 0);
	b->tokens = b->burst;
	b->last_us = now_us;
}

uint64_t ags_bucket_take(ags_bucket *b, double n, uint64_t now_us)
{
	if (b->rate <= 0)
		return 0;
	if (now_us > b->last_us) {
		b->tokens =
		    fmin(b->burst, b->tokens + b->rate * (double)(now_us - b->last_us) / 1e6);
		b->last_us = now_us;
	}
	double need = n <= b->burst ? n : b->burst;
	if (b->tokens >= need) {
		b->tokens -= n;
		return 0;
	}
	return (uint64_t)ceil((need - b->tokens) / b->rate * 1e6);
}

double ags_bucket_available(ags_bucket *b, uint64_t now_us)
{
	if (b->rate <= 0)
		return 1e18;
	if (now_us > b->last_us) {
		b->tokens =
		    fmin(b->burst, b->tokens + b->rate * (double)(now_us - b->last_us) / 1e6);
		b->last_us = now_us;
	}
	return b->tokens;
}

void ags_bucket_spend(ags_bucket *b, double n)
{
	if (b->rate > 0)
		b->tokens -= n;
}

uint64_t ags_bucket_wait_us(const ags_bucket *b, double n)
{
	if (b->rate <= 0 || b->tokens >= n)
		return 0;
	return (uint64_t)ceil((n - b->tokens) / b->rate * 1e6);
}

static void repeat_restart(ags_repeat *r, uint64_t now_ms)
{
	r->held = 0;
	r->kinds = 0;
	r->start_ms = now_ms;
}

int ags_repeat_take(ags_repeat *r, const char *kind, uint32_t burst, uint64_t window_ms,
                    uint64_t now_ms, uint64_t *held_before)
{
	*held_before = 0;
	if (now_ms - r->start_ms >= window_ms || now_ms < r->start_ms) {
		*held_before = r->held;
		repeat_restart(r, now_ms);
	}
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)(kind ? kind : ""); *p; p++)
		h = (h ^ *p) * 16777619u;
	size_t i = 0;
	while (i < r->kinds && r->hash[i] != h)
		i++;
	if (i == r->kinds) {
		if (r->kinds == AGS_REPEAT_KINDS)
			i = AGS_REPEAT_KINDS - 1; /* too many kinds: they share the last */
		else
			r->hash[r->kinds++] = h, r->lines[i] = 0;
	}
	if (r->lines[i] < burst) {
		r->lines[i]++;
		return 1;
	}
	r->held++;
	return 0;
}

uint64_t ags_repeat_flush(ags_repeat *r, uint64_t window_ms, uint64_t now_ms)
{
	if (!r->held || now_ms - r->start_ms < window_ms)
		return 0;
	uint64_t held = r->held;
	repeat_restart(r, now_ms);
	return held;
}
