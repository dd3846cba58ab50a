/* SPDX-License-Identifier: Apache-2.0 */
/*
 * base64url without padding (RFC 4648 section 5), as JSON Web Tokens use it:
 * the one codec for the JWT verifier and signer (lib/codec/jwtauth.c) and the
 * agent's reading of its own token (lib/agent/agent.c). The work is GnuTLS's
 * base64; these functions translate the alphabet and the padding.
 */
#ifndef AGS_BASE64_H
#define AGS_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Whether s (n bytes) is base64url without padding: [A-Za-z0-9_-], n % 4 != 1. */
int ags_base64url_valid(const char *s, size_t n);

/*
 * Decodes base64url text s (n bytes). On success *out is a malloc'd buffer of
 * *len bytes plus a NUL (so text can be read as a string); the caller frees it.
 * Errors: AGS_ERR_INVALID (not base64url without padding), AGS_ERR_NOMEM.
 */
int ags_base64url_decode(const char *s, size_t n, uint8_t **out, size_t *len);

/*
 * Encodes n bytes as base64url without padding. On success *out is a malloc'd,
 * NUL-terminated string the caller frees.
 * Errors: AGS_ERR_NOMEM, AGS_ERR_INTERNAL (GnuTLS refused the input).
 */
int ags_base64url_encode(const uint8_t *d, size_t n, char **out);

#endif
