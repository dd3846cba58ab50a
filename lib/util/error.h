/* SPDX-License-Identifier: Apache-2.0 */
/* Internal helpers for errors, shared by every module. */
#ifndef AGS_ERROR_H
#define AGS_ERROR_H

#include <stdarg.h>
#include <stdint.h>

#include "agentsync/agentsync.h"

/*
 * Fills `e` (which may be NULL) with `code`, the JSON path `field` (may be
 * NULL) and a printf-style message. Returns `code`, so callers can write
 * `return ags_error_set(err, AGS_ERR_PATTERN, "id", "must be a string");`.
 */
int ags_error_set(ags_error *e, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
