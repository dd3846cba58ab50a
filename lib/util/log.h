/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Log lines for the layers that report through a host's log function (the
 * sync engine, the hub): one formatter, so every line is cut the same way.
 */
#ifndef AGS_LOG_H
#define AGS_LOG_H

#include <stdarg.h>

/* A host's log function: its user data, a level (AGS_LOG_*), the line. */
typedef void (*ags_log_fn)(void *ud, int level, const char *msg);

/* Longest line handed on, in bytes (longer ones are cut). */
#define AGS_LOG_LINE_MAX 511

/* Formats a line and hands it to fn (nothing when fn is NULL). */
void ags_vlogf(ags_log_fn fn, void *ud, int level, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

#endif
