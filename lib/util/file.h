/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reading a small file whole: the one reader of the hub's key files
 * (lib/node/hub.c), the daemon's configuration file and the key and token
 * files it names (src/agentsyncd/config*.c), so that every one of them has
 * the same limits and says the same things when it cannot.
 */
#ifndef AGS_FILE_H
#define AGS_FILE_H

#include <stddef.h>

#include "agentsync/agentsync.h"

/* Largest key, secret or token file read (the hub's and the daemon's limit). */
#define AGS_FILE_KEY_MAX (1024u * 1024u)

/*
 * Reads the regular file `path`, at most `max` bytes, into a malloc'd buffer
 * (*out, the caller frees it) of *len bytes plus a NUL. err->message is the
 * reason alone, for the caller to put after the file's name: errno's text
 * ("No such file or directory"), "not a regular file", or "is N bytes, more
 * than the MAX accepted"; err->field is left empty.
 * Errors: AGS_ERR_INVALID (path or out NULL), AGS_ERR_NOT_FOUND (no such
 * file), AGS_ERR_IO (cannot open or read it, or not a regular file),
 * AGS_ERR_TOO_LARGE (over max), AGS_ERR_NOMEM.
 */
int ags_file_read(const char *path, size_t max, char **out, size_t *len, ags_error *err);

/*
 * ags_file_read of a file that setting `field` names: a failure is `code`
 * (AGS_ERR_NOMEM stays itself) with err->field = field and a message that
 * names the file: `cannot read "PATH": reason` or `"PATH" is N bytes, more
 * than the MAX accepted`.
 */
int ags_file_read_setting(const char *path, size_t max, const char *field, int code, char **out,
                          size_t *len, ags_error *err);

/*
 * fsync of a file (dir 0) or a directory (dir 1) by name, as a crash-safe
 * rename needs for the new file and then its directory. 0, or -1 with errno
 * set.
 */
int ags_file_sync(const char *path, int dir);

#endif
