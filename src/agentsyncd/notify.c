/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Readiness for the service manager: with libsystemd (AGS_HAVE_SYSTEMD),
 * sd_notify tells systemd (Type=notify) when the daemon listens, reloads and
 * stops; without it, or outside systemd (no $NOTIFY_SOCKET), nothing is sent.
 */
#include <inttypes.h>
#include <stdint.h>
#include <time.h>

#ifdef AGS_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "notify.h"

void dnotify_ready(const char *status)
{
#ifdef AGS_HAVE_SYSTEMD
	sd_notifyf(0, "READY=1\nSTATUS=%s", status);
#else
	(void)status;
#endif
}

void dnotify_reloading(void)
{
#ifdef AGS_HAVE_SYSTEMD
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64,
	           (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
#endif
}

void dnotify_stopping(void)
{
#ifdef AGS_HAVE_SYSTEMD
	sd_notify(0, "STOPPING=1");
#endif
}
