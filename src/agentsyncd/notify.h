/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tells the service manager the daemon's state (sd_notify, when built with
 * libsystemd; no-ops otherwise). See packaging/systemd/agentsyncd.service.in.
 */
#ifndef AGS_NOTIFY_H
#define AGS_NOTIFY_H

/* The daemon listens and serves: READY=1 with STATUS=status. */
void dnotify_ready(const char *status);
/* A SIGHUP reload begins (RELOADING=1); call dnotify_ready when it is done. */
void dnotify_reloading(void);
/* The daemon stops (STOPPING=1). */
void dnotify_stopping(void);

#endif
