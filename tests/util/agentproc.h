/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Asking test tools started with np_start_prog (e.g. tests/tools/agsagent)
 * a question and reading the answer line.
 */
#ifndef AGS_AGENTPROC_H
#define AGS_AGENTPROC_H

#include "nodeproc.h"

/*
 * Sends `cmd` and waits for the next line starting with `prefix` (bounded:
 * tries x 100 ms). Returns a malloc'd copy of that line (without the
 * newline), or NULL when none came.
 */
char *ap_ask(np_node *n, const char *cmd, const char *prefix, unsigned tries);

#endif
