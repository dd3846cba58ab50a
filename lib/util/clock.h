/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The library's clocks. Every duration and deadline is measured on one
 * clock, CLOCK_MONOTONIC, read by ags_mono_ns (the others are that value in
 * coarser units); wall-clock time, for timestamps a person or a peer reads,
 * is ags_now_ms (public, agentsync.h). The sync engine reads neither: its
 * callers pass the time in.
 */
#ifndef AGS_CLOCK_H
#define AGS_CLOCK_H

#include <stdint.h>

#include "agentsync/agentsync.h"

/* Nanoseconds from the monotonic clock (ngtcp2's timestamps, libuv's uv_hrtime). */
uint64_t ags_mono_ns(void);

/* Microseconds from the monotonic clock. */
static inline uint64_t ags_mono_us(void)
{
	return ags_mono_ns() / 1000u;
}

/* Milliseconds from the monotonic clock. */
static inline uint64_t ags_mono_ms(void)
{
	return ags_mono_ns() / 1000000u;
}

#endif
