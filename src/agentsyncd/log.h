/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agentsyncd's log: one line per event or message on stderr, as text
 *   2026-11-21T20:00:00.123Z INFO peer:connected peer=b address=127.0.0.1:4434
 * or as JSON lines
 *   {"time":"2026-11-21T20:00:00.123Z","level":"info","event":"peer:connected",...}
 * Lines are written whole with one write(2), from any thread.
 */
#ifndef AGENTSYNCD_LOG_H
#define AGENTSYNCD_LOG_H

#include <stddef.h>

#include "agentsync/node.h"

/* Sets the format (an ags_log_format) and the most verbose level written (AGS_LOG_*). */
void dlog_setup(int format, int level);

/* Whether lines of `level` are written. */
int dlog_enabled(int level);

/* A message line: `event` names what it is about ("config", "daemon", "node", "api"). */
void dlog(int level, const char *event, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * A key/value line: kv holds n pairs (key, value); a NULL value leaves the
 * pair out.
 */
void dlog_kv(int level, const char *event, const char *const *kv, size_t n);

/*
 * Logs a node event (level by type: warnings for errors, debug for per-pattern noise).
 * Refusals and timeouts (connection:refused, connection:timeout) are limited to 5 lines per
 * reason per 10 s; the count of those held back is logged once the 10 s are over.
 */
void dlog_event(const ags_event *ev);

/* Logs the count of refusal lines held back, once their 10 s are over. Call periodically. */
void dlog_flush(void);

#endif
