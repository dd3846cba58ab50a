/* SPDX-License-Identifier: Apache-2.0 */
/* The clocks (clock.h): CLOCK_MONOTONIC for durations, CLOCK_REALTIME for timestamps. */
#include <time.h>

#include "clock.h"

uint64_t ags_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

AGS_EXPORT int64_t ags_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
