/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzzes JWT verification (ags_jwt_verify), the hub's check of every AUTH
 * an agent sends. The verifier accepts HS256, RS256 and ES256 with keys made
 * once at start, and a fixed time. The first input byte picks a mode:
 *   0: the rest is a token, verified as it is;
 *   1: the rest is a claims object, signed with HS256 and the hub's secret,
 *      then verified (the claim checks, with a good signature);
 *   2: the same claims signed with another secret: never accepted.
 * Oracles: a refusal is one of the documented codes with a message; an
 * accepted token has a sub and a tenant of the allowed characters and an
 * exp after the time; a token accepted once is accepted again the same way.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "jwtauth.h"

#define NOW_S        1700000000
#define SECRET       "fuzz-secret-fuzz-secret-fuzz-secret!"
#define OTHER_SECRET "another-secret-another-secret-another"

static ags_jwt_config cfg;
static char *rs_pem, *es_pem;

/* A public key in PEM for a new private key of `alg` (GnuTLS), or NULL. */
static char *public_pem(gnutls_pk_algorithm_t alg, unsigned bits)
{
	gnutls_x509_privkey_t x;
	gnutls_privkey_t priv;
	gnutls_pubkey_t pub;
	gnutls_datum_t out = {NULL, 0};
	char *pem = NULL;
	if (gnutls_x509_privkey_init(&x) < 0)
		return NULL;
	if (gnutls_x509_privkey_generate(x, alg, bits, 0) == 0 && gnutls_privkey_init(&priv) == 0) {
		if (gnutls_privkey_import_x509(priv, x, 0) == 0 && gnutls_pubkey_init(&pub) == 0) {
			if (gnutls_pubkey_import_privkey(pub, priv, 0, 0) == 0 &&
			    gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_PEM, &out) == 0) {
				pem = malloc(out.size + 1);
				if (pem) {
					memcpy(pem, out.data, out.size);
					pem[out.size] = '\0';
				}
				gnutls_free(out.data);
			}
			gnutls_pubkey_deinit(pub);
		}
		gnutls_privkey_deinit(priv);
	}
	gnutls_x509_privkey_deinit(x);
	return pem;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	rs_pem = public_pem(GNUTLS_PK_RSA, 2048);
	es_pem = public_pem(GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1));
	if (!rs_pem || !es_pem)
		abort();
	cfg.algs = AGS_JWT_HS256 | AGS_JWT_RS256 | AGS_JWT_ES256;
	cfg.hs_secret = (const uint8_t *)SECRET;
	cfg.hs_secret_len = strlen(SECRET);
	cfg.rs_public_pem = rs_pem;
	cfg.es_public_pem = es_pem;
	cfg.issuer = "https://issuer.example";
	cfg.audience = "agentsync-hub";
	if (ags_jwt_config_check(&cfg, NULL) != 0)
		abort();
	return 0;
}

static int id_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n < 1 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == ':' || c == '@' || c == '-'))
			return 0;
	}
	return 1;
}

/* Verifies `token` and checks what comes back. Returns the result. */
static int verify(const char *token)
{
	ags_jwt_claims c, again;
	ags_error e;
	ags_error_clear(&e);
	memset(&c, 0, sizeof(c));
	int rv = ags_jwt_verify(&cfg, token, NOW_S, &c, &e);
	if (rv == 0) {
		if (!id_ok(c.sub, AGS_JWT_SUB_MAX) || !id_ok(c.tenant, AGS_JWT_TENANT_MAX) ||
		    c.exp <= NOW_S - AGS_JWT_SKEW_DEFAULT || c.nbf > NOW_S + AGS_JWT_SKEW_DEFAULT)
			abort();
		if (strcmp(c.alg, "HS256") != 0 && strcmp(c.alg, "RS256") != 0 &&
		    strcmp(c.alg, "ES256") != 0)
			abort();
		/* Pure: the same token at the same time gives the same claims. */
		if (ags_jwt_verify(&cfg, token, NOW_S, &again, NULL) != 0 ||
		    memcmp(&c, &again, sizeof(c)) != 0)
			abort();
		return 0;
	}
	if (rv != AGS_ERR_AUTH && rv != AGS_ERR_TOO_LARGE && rv != AGS_ERR_NOMEM &&
	    rv != AGS_ERR_CONFIG)
		abort();
	if (rv != AGS_ERR_NOMEM && (e.code != rv || e.message[0] == '\0'))
		abort();
	return rv;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 2 * AGS_JWT_MAX_BYTES)
		return 0;
	char *text = malloc(size);
	if (!text)
		return 0;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	int mode = data[0] % 3;
	if (mode == 0) {
		verify(text);
	} else {
		const char *secret = mode == 1 ? SECRET : OTHER_SECRET;
		char *token = NULL;
		if (ags_jwt_sign_json(AGS_JWT_HS256, (const uint8_t *)secret, strlen(secret), text,
		                      &token) == 0) {
			int rv = verify(token);
			if (mode == 2 && rv == 0)
				abort(); /* signed with a key the hub does not have */
			free(token);
		}
	}
	free(text);
	return 0;
}
