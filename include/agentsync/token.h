/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agentsync tokens: JSON Web Tokens for the federation hub's agents
 * (docs/PROTOCOL.md, "Hub authentication"). A hub verifies them; these
 * functions make them, for the CLI's `agentsync token`, tests and small
 * set-ups (a real deployment has its own issuer). Pure functions (the caller
 * passes the times), thread-safe.
 */
#ifndef AGENTSYNC_TOKEN_H
#define AGENTSYNC_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "agentsync/agentsync.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Shortest HS256 secret, in bytes: the hash size (RFC 7518 3.2). */
#define AGS_JWT_HS_SECRET_MIN 32

/*
 * Signs a token with claims {sub, tenant, iss?, aud?, iat, exp} (iss and aud
 * left out when NULL), with HS256 and `secret` (at least 32 bytes). sub and
 * tenant must pass the verifier's rules. On success *out is a NUL-terminated
 * token the caller frees with free().
 * Errors: AGS_ERR_INVALID (a NULL, a bad claim, a short secret), AGS_ERR_NOMEM.
 */
AGS_EXPORT int ags_jwt_sign_hs256(const uint8_t *secret, size_t len, const char *sub,
                                  const char *tenant, const char *iss, const char *aud, int64_t iat,
                                  int64_t exp, char **out);

/*
 * As ags_jwt_sign_hs256, with RS256 and a PEM private RSA key (>= 2048 bits).
 * Errors: AGS_ERR_INVALID (also: the key is not such a key), AGS_ERR_NOMEM.
 */
AGS_EXPORT int ags_jwt_sign_rs256(const char *private_pem, const char *sub, const char *tenant,
                                  const char *iss, const char *aud, int64_t iat, int64_t exp,
                                  char **out);

/*
 * As ags_jwt_sign_hs256, with ES256 and a PEM private EC P-256 key. The
 * signature is the standard 64-byte r||s (libjwt 1.10's GnuTLS flavour
 * writes 132 bytes; this fixes it up).
 * Errors: AGS_ERR_INVALID (also: the key is not such a key), AGS_ERR_NOMEM,
 * AGS_ERR_INTERNAL (libjwt produced a signature of an unexpected form).
 */
AGS_EXPORT int ags_jwt_sign_es256(const char *private_pem, const char *sub, const char *tenant,
                                  const char *iss, const char *aud, int64_t iat, int64_t exp,
                                  char **out);

#ifdef __cplusplus
}
#endif

#endif /* AGENTSYNC_TOKEN_H */
