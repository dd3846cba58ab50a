/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The canonical form and checksum of a pattern, as PROTOCOL.md ("Canonical
 * serialisation") defines them, written from the document alone.
 */
#ifndef CONF_CANON_H
#define CONF_CANON_H

#include <stddef.h>

/*
 * The canonical form of the JSON text `json` (metadata.checksum removed,
 * members sorted, compact, the document's string and number spelling).
 * With `serialised`, the checksum is inserted in metadata: the stored form.
 * hex (may be NULL) gets the checksum. malloc'd; NULL if json is not JSON.
 */
char *canon_pattern(const char *json, int serialised, char hex[65]);

/* The canonical spelling of one JSON number token (e.g. "1E2" -> "100.0"). */
void canon_number(const char *tok, size_t len, char *out, size_t cap);

#endif
