/* SPDX-License-Identifier: Apache-2.0 */
/*
 * JSON Web Tokens for the federation hub's AUTH message (docs/PROTOCOL.md,
 * "Hub authentication"): verification of HS256, RS256 and ES256 tokens, and
 * signing helpers for tests, the CLI's `agentsync token` and benchmarks (the
 * signing of well-formed tokens is public: include/agentsync/token.h).
 *
 * Signatures are computed and checked by libjwt 1.10 (GnuTLS flavour). What
 * libjwt 1.10 does not do safely on its own is done here, before the token
 * reaches it: the header's "alg" is read first (base64url by GnuTLS, JSON by
 * yyjson), "none" and algorithms outside the allowed set are refused before
 * any key is touched, and the token is then verified with the key of that
 * algorithm only, so a token can never be checked as another algorithm
 * (HS256 keyed with an RS256 public key: the classic key confusion). The
 * claims are read from the payload with yyjson (strict types, no claim
 * twice) and checked here; libjwt 1.10 has no claim validation.
 *
 * Pure functions (the caller passes the time), no I/O, thread-safe.
 */
#ifndef AGS_JWT_H
#define AGS_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "agentsync/agentsync.h"
#include "agentsync/token.h"

/* Algorithms, as bits of ags_jwt_config.algs. */
#define AGS_JWT_HS256 (1u << 0) /* HMAC SHA-256 with a shared secret */
#define AGS_JWT_RS256 (1u << 1) /* RSASSA-PKCS1-v1_5 SHA-256, RSA >= 2048 bits */
#define AGS_JWT_ES256 (1u << 2) /* ECDSA P-256 SHA-256, 64-byte r||s signature */

#define AGS_JWT_MAX_BYTES    8192 /* longest token accepted (AGS_WIRE_TOKEN_MAX) */
#define AGS_JWT_SKEW_DEFAULT 30   /* seconds of clock skew allowed for exp and nbf */
#define AGS_JWT_RSA_BITS_MIN 2048 /* smallest RSA key (RFC 7518 3.3) */
#define AGS_JWT_SUB_MAX      256  /* bytes in "sub" (the agent id) */
#define AGS_JWT_TENANT_MAX   128  /* bytes in "tenant" */

/* What the verifier accepts. Zero-initialise, then set what you need. */
typedef struct ags_jwt_config {
	unsigned algs; /* allowed algorithms: AGS_JWT_HS256 | AGS_JWT_RS256 | AGS_JWT_ES256 */
	const uint8_t *hs_secret; /* HS256 secret, at least AGS_JWT_HS_SECRET_MIN bytes */
	size_t hs_secret_len;
	const char *rs_public_pem; /* PEM public key (RSA, >= 2048 bits) for RS256, or NULL */
	const char *es_public_pem; /* PEM public key (EC P-256) for ES256, or NULL */
	const char *issuer;        /* required "iss", or NULL: not checked */
	const char *audience;      /* required in "aud" (a string or an array), or NULL */
	/* Clock skew allowed for exp and nbf, in seconds: 0 means
	 * AGS_JWT_SKEW_DEFAULT; a negative value means none. */
	int64_t skew_s;
} ags_jwt_config;

/* The claims of a verified token. */
typedef struct ags_jwt_claims {
	char sub[AGS_JWT_SUB_MAX + 1];       /* the agent id */
	char tenant[AGS_JWT_TENANT_MAX + 1]; /* the tenant it may use */
	int64_t exp;                         /* expiry, seconds since the epoch */
	int64_t nbf;                         /* not before, or 0 when absent */
	int64_t iat;                         /* issued at, or 0 when absent */
	char alg[16];                        /* "HS256", "RS256" or "ES256" */
} ags_jwt_claims;

/*
 * Checks a configuration: at least one algorithm and no unknown bit, and for
 * each allowed algorithm a usable key (HS256: a secret of at least 32 bytes;
 * RS256: an RSA public key of at least 2048 bits; ES256: an EC P-256 public
 * key). A hub calls it at start-up; ags_jwt_verify checks the key of the
 * token's algorithm again on each call.
 * Errors: AGS_ERR_INVALID (cfg NULL), AGS_ERR_CONFIG (err->field names the
 * member at fault), AGS_ERR_NOMEM.
 */
int ags_jwt_config_check(const ags_jwt_config *cfg, ags_error *err);

/*
 * Verifies `token` (NUL-terminated, compact JWS) at time `now_s` (seconds
 * since the epoch), in this order:
 *   1. at most AGS_JWT_MAX_BYTES bytes (else AGS_ERR_TOO_LARGE);
 *   2. three base64url segments, header and payload JSON objects;
 *   3. header "alg": "none" and any algorithm not in cfg->algs are refused,
 *      before any key is used; "typ", if present, is "JWT"; no "crit";
 *   4. the signature, with the key of that algorithm only (libjwt);
 *   5. claims: "exp" required, exp > now - skew; "nbf" (optional) <= now +
 *      skew; "iss" equal to cfg->issuer and "aud" containing cfg->audience
 *      when those are set; "sub" 1..256 bytes and "tenant" 1..128 bytes of
 *      [A-Za-z0-9._:@-]; exp, nbf, iat integers; no claim twice.
 * On success fills *out (may be NULL). On refusal err->message names the
 * reason (e.g. "token expired at 2026-01-02T03:04:05Z", "algorithm 'none'
 * is not allowed", "bad signature", "missing claim 'tenant'") and err->field
 * the header member or claim at fault ("alg", "exp", "tenant", ...).
 * Errors: AGS_ERR_INVALID (cfg or token NULL), AGS_ERR_TOO_LARGE,
 * AGS_ERR_CONFIG (the configuration cannot check this token: see
 * ags_jwt_config_check), AGS_ERR_AUTH (refused), AGS_ERR_NOMEM.
 */
int ags_jwt_verify(const ags_jwt_config *cfg, const char *token, int64_t now_s, ags_jwt_claims *out,
                   ags_error *err);

/*
 * Signs an arbitrary claims object `claims_json` (a JSON object, not
 * checked against the verifier's rules: tests use it to make bad tokens)
 * with one algorithm `alg` (an AGS_JWT_* bit) and `key`: the secret for
 * HS256 (at least 32 bytes), a NUL-terminated PEM private key for RS256 and
 * ES256 (`key_len` its length without the NUL). On success *out is a token
 * the caller frees with free().
 * Errors: AGS_ERR_INVALID (bad alg, key, or claims not a JSON object),
 * AGS_ERR_NOMEM, AGS_ERR_INTERNAL.
 */
int ags_jwt_sign_json(unsigned alg, const uint8_t *key, size_t key_len, const char *claims_json,
                      char **out);

#endif
