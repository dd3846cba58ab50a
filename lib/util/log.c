/* SPDX-License-Identifier: Apache-2.0 */
/* Log lines through a host's log function (log.h). */
#include <stdio.h>

#include "log.h"

void ags_vlogf(ags_log_fn fn, void *ud, int level, const char *fmt, va_list ap)
{
	if (!fn)
		return;
	char buf[AGS_LOG_LINE_MAX + 1];
	vsnprintf(buf, sizeof(buf), fmt, ap);
	fn(ud, level, buf);
}
