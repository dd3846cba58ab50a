/*
 * Starting test tools other than agsnode (e.g. tests/tools/agsagent) as
 * np_node processes, so the nodeproc.h helpers (np_cmd, np_wait, np_has,
 * np_quit, np_kill, np_output) drive them too.
 */
#ifndef AGS_AGENTPROC_H
#define AGS_AGENTPROC_H

#include "nodeproc.h"

/*
 * Starts test tool `prog` (found through tu_program) with `args`
 * (NULL-terminated, without the program name) and waits for its
 * "ready id=" line. Fails the test if it does not come.
 */
np_node *ap_start(const char *prog, const char *id, const char *const *args);

/*
 * Sends `cmd` and waits for the next line starting with `prefix` (bounded:
 * tries x 100 ms). Returns a malloc'd copy of that line (without the
 * newline), or NULL when none came.
 */
char *ap_ask(np_node *n, const char *cmd, const char *prefix, unsigned tries);

#endif
