/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for JWT verification and signing. The RSA and EC keys are made
 * here with GnuTLS for each run; nothing is read from files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "testutil.h"
#include "agentsync/agentsync.h"
#include "jwtauth.h"
/* libjwt itself, to show that the attack tokens below are real ones. */
#include <jwt.h>

#define NOW      INT64_C(1767225600) /* 2026-01-01T00:00:00Z */
#define SECRET   "0123456789abcdef0123456789abcdef-hub-secret"
#define SECRET_2 "another secret, also long enough to be used!"

/* Keys made once for the whole group. */
static char *rsa_priv, *rsa_pub, *ec_priv, *ec_pub;

/* Generates a key pair; returns private and public PEM (malloc'd). */
static void make_key(gnutls_pk_algorithm_t pk, unsigned bits, char **priv, char **pub)
{
	gnutls_x509_privkey_t x;
	gnutls_privkey_t pk_key;
	gnutls_pubkey_t pub_key;
	gnutls_datum_t d;

	assert_int_equal(gnutls_x509_privkey_init(&x), 0);
	assert_int_equal(gnutls_x509_privkey_generate2(x, pk, bits, 0, NULL, 0), 0);
	assert_int_equal(gnutls_x509_privkey_export2(x, GNUTLS_X509_FMT_PEM, &d), 0);
	*priv = strndup((char *)d.data, d.size);
	gnutls_free(d.data);
	assert_int_equal(gnutls_privkey_init(&pk_key), 0);
	assert_int_equal(gnutls_privkey_import_x509(pk_key, x, 0), 0);
	assert_int_equal(gnutls_pubkey_init(&pub_key), 0);
	assert_int_equal(gnutls_pubkey_import_privkey(pub_key, pk_key, 0, 0), 0);
	assert_int_equal(gnutls_pubkey_export2(pub_key, GNUTLS_X509_FMT_PEM, &d), 0);
	*pub = strndup((char *)d.data, d.size);
	gnutls_free(d.data);
	gnutls_pubkey_deinit(pub_key);
	gnutls_privkey_deinit(pk_key);
	gnutls_x509_privkey_deinit(x);
	assert_non_null(*priv);
	assert_non_null(*pub);
}

static int setup(void **state)
{
	(void)state;
	make_key(GNUTLS_PK_RSA, 2048, &rsa_priv, &rsa_pub);
	make_key(GNUTLS_PK_EC, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), &ec_priv, &ec_pub);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(rsa_priv);
	free(rsa_pub);
	free(ec_priv);
	free(ec_pub);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Hand-made tokens                                                         */
/* ------------------------------------------------------------------------ */

/* base64url without padding of n bytes (malloc'd). */
static char *b64url(const void *data, size_t n)
{
	gnutls_datum_t in = {(unsigned char *)(uintptr_t)data, (unsigned)n}, out;
	assert_int_equal(gnutls_base64_encode2(&in, &out), 0);
	char *s = malloc(out.size + 1);
	size_t j = 0;
	for (size_t i = 0; i < out.size; i++) {
		char c = (char)out.data[i];
		if (c == '=' || c == '\n')
			continue;
		s[j++] = c == '+' ? '-' : c == '/' ? '_' : c;
	}
	s[j] = '\0';
	gnutls_free(out.data);
	return s;
}

/*
 * A token with exactly this header and payload text. With `hs_key` its
 * signature is a correct HMAC-SHA256 under that key, otherwise it is `sig`
 * as given (already base64url, may be "").
 */
static char *craft(const char *header, const char *payload, const char *hs_key, const char *sig)
{
	char *h = b64url(header, strlen(header)), *p = b64url(payload, strlen(payload));
	char *signing = tu_sprintf("%s.%s", h, p), *s;
	if (hs_key) {
		uint8_t mac[32];
		assert_int_equal(gnutls_hmac_fast(GNUTLS_MAC_SHA256, hs_key, strlen(hs_key),
		                                  signing, strlen(signing), mac),
		                 0);
		s = b64url(mac, sizeof(mac));
	} else {
		s = strdup(sig);
	}
	char *t = tu_sprintf("%s.%s", signing, s);
	free(h);
	free(p);
	free(signing);
	free(s);
	return t;
}

/* Good claims at NOW, as JSON. */
#define GOOD_CLAIMS                                                                                \
	"{\"sub\":\"agent-1\",\"tenant\":\"acme\",\"iat\":1767225600,\"exp\":1767229200,"          \
	"\"iss\":\"hub-ca\",\"aud\":\"agentsync\"}"

static ags_jwt_config hs_cfg(void)
{
	ags_jwt_config c = {0};
	c.algs = AGS_JWT_HS256;
	c.hs_secret = (const uint8_t *)SECRET;
	c.hs_secret_len = strlen(SECRET);
	return c;
}

static ags_jwt_config all_cfg(void)
{
	ags_jwt_config c = hs_cfg();
	c.algs = AGS_JWT_HS256 | AGS_JWT_RS256 | AGS_JWT_ES256;
	c.rs_public_pem = rsa_pub;
	c.es_public_pem = ec_pub;
	return c;
}

/* Verifies and expects refusal with `code`, err.field `field` (or NULL) and `text` in the message.
 */
static void refused(const ags_jwt_config *cfg, const char *token, int64_t now, int code,
                    const char *field, const char *text)
{
	ags_jwt_claims claims;
	ags_error err;
	memset(&claims, 0x5a, sizeof(claims));
	ags_error_clear(&err);
	int rc = ags_jwt_verify(cfg, token, now, &claims, &err);
	if (rc != code || !strstr(err.message, text))
		fail_msg("got %d \"%s\", want %d with \"%s\"", rc, err.message, code, text);
	assert_int_equal(err.code, code);
	if (field)
		assert_string_equal(err.field, field);
	/* Nothing is written to the claims on refusal. */
	assert_int_equal(claims.sub[0], 0x5a);
}

static void accepted(const ags_jwt_config *cfg, const char *token, int64_t now,
                     ags_jwt_claims *claims)
{
	ags_error err;
	ags_error_clear(&err);
	int rc = ags_jwt_verify(cfg, token, now, claims, &err);
	if (rc)
		fail_msg("refused (%d): %s [%s]", rc, err.message, err.field);
}

/* ------------------------------------------------------------------------ */
/* Accepted                                                                 */
/* ------------------------------------------------------------------------ */

static void good_tokens_of_each_algorithm(void **state)
{
	(void)state;
	ags_jwt_config cfg = all_cfg();
	ags_jwt_claims c;
	char *t;

	cfg.issuer = "hub-ca";
	cfg.audience = "agentsync";
	assert_int_equal(ags_jwt_sign_hs256((const uint8_t *)SECRET, strlen(SECRET), "agent-1",
	                                    "acme", "hub-ca", "agentsync", NOW - 10, NOW + 3600,
	                                    &t),
	                 0);
	accepted(&cfg, t, NOW, &c);
	assert_string_equal(c.sub, "agent-1");
	assert_string_equal(c.tenant, "acme");
	assert_string_equal(c.alg, "HS256");
	assert_int_equal(c.exp, NOW + 3600);
	assert_int_equal(c.iat, NOW - 10);
	assert_int_equal(c.nbf, 0);
	free(t);

	assert_int_equal(ags_jwt_sign_rs256(rsa_priv, "node.7:x@y_z-w", "tenant-b", "hub-ca",
	                                    "agentsync", NOW, NOW + 60, &t),
	                 0);
	accepted(&cfg, t, NOW, &c);
	assert_string_equal(c.sub, "node.7:x@y_z-w");
	assert_string_equal(c.tenant, "tenant-b");
	assert_string_equal(c.alg, "RS256");
	/* Only RS256 allowed, with no other key set: still fine. */
	ags_jwt_config rs_only = {0};
	rs_only.algs = AGS_JWT_RS256;
	rs_only.rs_public_pem = rsa_pub;
	accepted(&rs_only, t, NOW, &c);
	free(t);

	assert_int_equal(ags_jwt_sign_es256(ec_priv, "agent-2", "acme", "hub-ca", "agentsync", NOW,
	                                    NOW + 60, &t),
	                 0);
	/* The standard ES256 signature: 64 bytes, 86 base64url characters. */
	assert_int_equal(strlen(strrchr(t, '.') + 1), 86);
	accepted(&cfg, t, NOW, &c);
	assert_string_equal(c.sub, "agent-2");
	assert_string_equal(c.alg, "ES256");
	/* r or s with leading zero bytes (1 in 128 signatures) still come out right. */
	for (int i = 0; i < 256; i++) {
		char *u;
		assert_int_equal(ags_jwt_sign_es256(ec_priv, "a", "t", "hub-ca", "agentsync", NOW,
		                                    NOW + 1 + i, &u),
		                 0);
		accepted(&cfg, u, NOW, &c);
		free(u);
	}
	/* libjwt reads it too. */
	jwt_t *j = NULL;
	assert_int_equal(jwt_decode(&j, t, (const unsigned char *)ec_pub, (int)strlen(ec_pub)), 0);
	jwt_free(j);
	free(t);

	/* Without iss and aud when the config does not ask for them; out may be NULL. */
	ags_jwt_config plain = hs_cfg();
	assert_int_equal(ags_jwt_sign_hs256((const uint8_t *)SECRET, strlen(SECRET), "a", "t", NULL,
	                                    NULL, NOW, NOW + 1, &t),
	                 0);
	assert_int_equal(ags_jwt_verify(&plain, t, NOW, NULL, NULL), 0);
	free(t);

	/* aud as an array, nbf in the past, extra claims and typ "jwt" are fine. */
	t = craft("{\"alg\":\"HS256\",\"typ\":\"jwt\",\"kid\":\"k1\"}",
	          "{\"sub\":\"a\",\"tenant\":\"t\",\"exp\":1767225700,\"nbf\":1767225000,"
	          "\"aud\":[\"other\",\"agentsync\"],\"iss\":\"hub-ca\",\"scope\":[1,2]}",
	          SECRET, NULL);
	cfg.algs = AGS_JWT_HS256;
	accepted(&cfg, t, NOW, &c);
	assert_int_equal(c.nbf, NOW - 600);
	free(t);
}

static void time_limits_and_skew(void **state)
{
	(void)state;
	ags_jwt_config cfg = hs_cfg();
	ags_jwt_claims c;
	char *t;

	/* exp: accepted while exp + skew (30 s by default) > now. */
	assert_int_equal(ags_jwt_sign_hs256((const uint8_t *)SECRET, strlen(SECRET), "a", "t", NULL,
	                                    NULL, NOW - 100, NOW, &t),
	                 0);
	accepted(&cfg, t, NOW + 29, &c);
	refused(&cfg, t, NOW + 30, AGS_ERR_AUTH, "exp", "token expired at 2026-01-01T00:00:00Z");
	refused(&cfg, t, NOW + 9999, AGS_ERR_AUTH, "exp", "token expired");
	cfg.skew_s = -1; /* no skew */
	refused(&cfg, t, NOW, AGS_ERR_AUTH, "exp", "token expired");
	accepted(&cfg, t, NOW - 1, &c);
	cfg.skew_s = 300;
	accepted(&cfg, t, NOW + 299, &c);
	refused(&cfg, t, NOW + 300, AGS_ERR_AUTH, "exp", "token expired");
	free(t);

	/* nbf: accepted once nbf <= now + skew. */
	cfg.skew_s = 0;
	t = craft("{\"alg\":\"HS256\"}",
	          "{\"sub\":\"a\",\"tenant\":\"t\",\"exp\":1767229200,\"nbf\":1767225660}", SECRET,
	          NULL);
	refused(&cfg, t, NOW, AGS_ERR_AUTH, "nbf", "token not valid before 2026-01-01T00:01:00Z");
	refused(&cfg, t, NOW + 29, AGS_ERR_AUTH, "nbf", "not valid before");
	accepted(&cfg, t, NOW + 30, &c);
	free(t);

	/* Extreme values do not overflow. */
	t = craft("{\"alg\":\"HS256\"}",
	          "{\"sub\":\"a\",\"tenant\":\"t\",\"exp\":9223372036854775807,"
	          "\"nbf\":-9223372036854775808}",
	          SECRET, NULL);
	accepted(&cfg, t, NOW, &c);
	accepted(&cfg, t, INT64_MAX - 1, &c);
	free(t);
	t = craft("{\"alg\":\"HS256\"}",
	          "{\"sub\":\"a\",\"tenant\":\"t\",\"exp\":-9223372036854775808}", SECRET, NULL);
	refused(&cfg, t, NOW, AGS_ERR_AUTH, "exp", "token expired");
	free(t);
}

/* ------------------------------------------------------------------------ */
/* Refused                                                                  */
/* ------------------------------------------------------------------------ */

static void bad_signatures(void **state)
{
	(void)state;
	ags_jwt_config cfg = all_cfg();
	char *t, *u;

	/* HS256 under another secret. */
	assert_int_equal(ags_jwt_sign_hs256((const uint8_t *)SECRET_2, strlen(SECRET_2), "a", "t",
	                                    NULL, NULL, NOW, NOW + 60, &t),
	                 0);
	refused(&cfg, t, NOW, AGS_ERR_AUTH, NULL, "bad signature");
	free(t);

	/* One signature character changed, for each algorithm. */
	for (int alg = 0; alg < 3; alg++) {
		int rc = alg == 0 ? ags_jwt_sign_hs256((const uint8_t *)SECRET, strlen(SECRET), "a",
		                                       "t", NULL, NULL, NOW, NOW + 60, &t)
		         : alg == 1
		             ? ags_jwt_sign_rs256(rsa_priv, "a", "t", NULL, NULL, NOW, NOW + 60, &t)
		             : ags_jwt_sign_es256(ec_priv, "a", "t", NULL, NULL, NOW, NOW + 60, &t);
		assert_int_equal(rc, 0);
		assert_int_equal(ags_jwt_verify(&cfg, t, NOW, NULL, NULL), 0);
		char *s = strrchr(t, '.') + 5;
		*s = *s == 'A' ? 'B' : 'A';
		refused(&cfg, t, NOW, AGS_ERR_AUTH, NULL, "bad signature");
		/* No signature at all. */
		strrchr(t, '.')[1] = '\0';
		refused(&cfg, t, NOW, AGS_ERR_AUTH, NULL, "bad signature");
		free(t);
	}

	/* A valid signature moved onto another payload. */
	assert_int_equal(ags_jwt_sign_rs256(rsa_priv, "a", "t", NULL, NULL, NOW, NOW + 60, &t), 0);
	assert_int_equal(ags_jwt_sign_rs256(rsa_priv, "root", "t", NULL, NULL, NOW, NOW + 60, &u),
	                 0);
	char *mix = tu_sprintf("%.*s%s", (int)(strrchr(u, '.') - u), u, strrchr(t, '.'));
	refused(&cfg, mix, NOW, AGS_ERR_AUTH, NULL, "bad signature");
	free(mix);
	free(t);
	free(u);

	/* ES256 in libjwt 1.10's own 132-byte form is not the standard: refused. */
	uint8_t sig[132] = {0};
	char *s = b64url(sig, sizeof(sig));
	t = craft("{\"alg\":\"ES256\"}", "{\"sub\":\"a\",\"tenant\":\"t\",\"exp\":1767229200}",
	          NULL, s);
	refused(&cfg, t, NOW, AGS_ERR_AUTH, NULL, "ES256 needs 64 bytes");
	free(s);
	free(t);
}

static void alg_none_is_refused(void **state)
{
	(void)state;
	ags_jwt_config cfg = all_cfg();
	static const char *const headers[] = {"{\"alg\":\"none\"}",
	                                      "{\"alg\":\"none\",\"typ\":\"JWT\"}",
	                                      "{\"alg\":\"NONE\"}", "{\"alg\":\"None\"}"};
	for (size_t i = 0; i < 4; i++) {
		char *t = craft(headers[i], GOOD_CLAIMS, NULL, "");
		/* libjwt on its own, given no key, takes this token as valid. */
		jwt_t *j = NULL;
		if (i < 2) {
			assert_int_equal(jwt_decode(&j, t, NULL, 0), 0);
			assert_int_equal(jwt_get_alg(j), JWT_ALG_NONE);
			jwt_free(j);
		}
		refused(&cfg, t, NOW, AGS_ERR_AUTH, "alg", "is not allowed");
		free(t);
	}
	char *t = craft("{\"alg\":\"none\"}", GOOD_CLAIMS, NULL, "");
	refused(&cfg, t, NOW, AGS_ERR_AUTH, "alg", "algorithm 'none' is not allowed");
	/* Refused before any key is looked at: even with no usable key configured. */
	ags_jwt_config nokey = {0};
	nokey.algs = AGS_JWT_RS256;
	refused(&nokey, t, NOW, AGS_ERR_AUTH, "alg", "algorithm 'none' is not allowed");
	free(t);
	/* With a signature part, too. */
	t = craft("{\"alg\":\"none\"}", GOOD_CLAIMS, SECRET, NULL);
	refused(&cfg, t, NOW, AGS_ERR_AUTH, "alg", "algorithm 'none' is not allowed");
	free(t);
}

static void algorithm_not_allowed(void **state)
{
	(void)state;
	ags_jwt_config cfg = hs_cfg();
	char *t;

	assert_int_equal(ags_jwt_sign_rs256(rsa_priv, "a", "t", NULL, NULL, NOW, NOW + 60, &t), 0);
	refused(&cfg, t, NOW, AGS_ERR_AUTH, "alg",
	        "algorithm 'RS256' is not allowed (allowed: HS256)");
	free(t);
	assert_int_equal(ags_jwt_sign_es256(ec_priv, "a", "t", NULL, NULL, NOW, NOW + 60, &t), 0);
	refused(&cfg, t, NOW, AGS_ERR_AUTH, "alg",
	        "algorithm 'ES256' is not allowed (allowed: HS256)");
	cfg.algs = AGS_JWT_HS256 | AGS_JWT_RS256;
	cfg.rs_public_pem = rsa_pub;
	refused(&cfg, t, NOW, AGS_ERR_AUTH, "alg", "(allowed: HS256, RS256)");
	free(t);

	/* Names are exact: libjwt would take "hs256" as HS256; this verifier does not. */
	cfg = hs_cfg();
	t = craft("{\"alg\":\"hs256\"}", GOOD_CLAIMS, SECRET, NULL);
	jwt_t *j = NULL;
	assert_int_equal(jwt_decode(&j, t, (const unsigned char *)SECRET, (int)strlen(SECRET)), 0);
	jwt_free(j);
	refused(&cfg, t, NOW, AGS_ERR_AUTH, "alg", "algorithm 'hs256' is not allowed");
	free(t);
	/* Other HMAC strengths and unknown names. */
	t = craft("{\"alg\":\"HS512\"}", GOOD_CLAIMS, NULL, "AAAA");
	refused(&cfg, t, NOW, AGS_ERR_AUTH, "alg", "algorithm 'HS512' is not allowed");
	free(t);
	t = craft("{\"alg\":\"PS256\\n\"}", GOOD_CLAIMS, NULL, "AAAA");
	refused(&cfg, t, NOW, AGS_ERR_AUTH, "alg", "algorithm 'PS256?' is not allowed");
	free(t);
	t = craft("{\"typ\":\"JWT\"}", GOOD_CLAIMS, SECRET, NULL);
	refused(&cfg, t, NOW, AGS_ERR_AUTH, "alg", "no 'alg'");
	free(t);
	t = craft("{\"alg\":256}", GOOD_CLAIMS, SECRET, NULL);
	refused(&cfg, t, NOW, AGS_ERR_AUTH, "alg", "must be a string");
	free(t);
	t = craft("{\"alg\":\"HS256\",\"alg\":\"none\"}", GOOD_CLAIMS, SECRET, NULL);
	refused(&cfg, t, NOW, AGS_ERR_AUTH, "alg", "given twice");
	free(t);
}

static void key_confusion_is_refused(void **state)
{
	(void)state;
	/*
	 * The classic attack: take the hub's RS256 public key (public
	 * knowledge) and use its PEM text as an HS256 secret. A verifier that
	 * hands "the key" to whatever algorithm the header names accepts it.
	 */
	char *t = NULL;
	assert_int_equal(ags_jwt_sign_json(AGS_JWT_HS256, (const uint8_t *)rsa_pub, strlen(rsa_pub),
	                                   GOOD_CLAIMS, &t),
	                 0);
	jwt_t *j = NULL;
	assert_int_equal(jwt_decode(&j, t, (const unsigned char *)rsa_pub, (int)strlen(rsa_pub)),
	                 0);
	jwt_free(j);

	/* Only RS256 allowed: HS256 is refused by name. */
	ags_jwt_config cfg = {0};
	cfg.algs = AGS_JWT_RS256;
	cfg.rs_public_pem = rsa_pub;
	refused(&cfg, t, NOW, AGS_ERR_AUTH, "alg",
	        "algorithm 'HS256' is not allowed (allowed: RS256)");
	/* Both allowed: HS256 is checked with the HS256 secret only. */
	cfg = all_cfg();
	refused(&cfg, t, NOW, AGS_ERR_AUTH, NULL, "bad signature");
	free(t);

	/* And the other way: an RS256 token is never checked with the HMAC secret. */
	assert_int_equal(ags_jwt_sign_rs256(rsa_priv, "a", "t", NULL, NULL, NOW, NOW + 60, &t), 0);
	cfg.rs_public_pem = ec_pub; /* the wrong kind of key for RS256 */
	refused(&cfg, t, NOW, AGS_ERR_CONFIG, "rs_public_pem", "RSA");
	free(t);
}

static void issuer_and_audience(void **state)
{
	(void)state;
	ags_jwt_config cfg = hs_cfg();
	char *t;
	cfg.issuer = "hub-ca";
	cfg.audience = "agentsync";

	assert_int_equal(ags_jwt_sign_hs256((const uint8_t *)SECRET, strlen(SECRET), "a", "t",
	                                    "evil-ca", "agentsync", NOW, NOW + 60, &t),
	                 0);
	refused(&cfg, t, NOW, AGS_ERR_AUTH, "iss", "issuer 'evil-ca' is not 'hub-ca'");
	free(t);
	assert_int_equal(ags_jwt_sign_hs256((const uint8_t *)SECRET, strlen(SECRET), "a", "t", NULL,
	                                    "agentsync", NOW, NOW + 60, &t),
	                 0);
	refused(&cfg, t, NOW, AGS_ERR_AUTH, "iss", "missing claim 'iss'");
	free(t);
	assert_int_equal(ags_jwt_sign_hs256((const uint8_t *)SECRET, strlen(SECRET), "a", "t",
	                                    "hub-ca", "other", NOW, NOW + 60, &t),
	                 0);
	refused(&cfg, t, NOW, AGS_ERR_AUTH, "aud", "audience does not include 'agentsync'");
	free(t);
	assert_int_equal(ags_jwt_sign_hs256((const uint8_t *)SECRET, strlen(SECRET), "a", "t",
	                                    "hub-ca", NULL, NOW, NOW + 60, &t),
	                 0);
	refused(&cfg, t, NOW, AGS_ERR_AUTH, "aud", "missing claim 'aud'");
	free(t);

	t = craft("{\"alg\":\"HS256\"}",
	          "{\"sub\":\"a\",\"tenant\":\"t\",\"exp\":1767229200,\"iss\":\"hub-ca\","
	          "\"aud\":[\"x\",\"agentsyncX\",\"agentsyn\"]}",
	          SECRET, NULL);
	refused(&cfg, t, NOW, AGS_ERR_AUTH, "aud", "audience does not include 'agentsync'");
	free(t);
	t = craft("{\"alg\":\"HS256\"}",
	          "{\"sub\":\"a\",\"tenant\":\"t\",\"exp\":1767229200,\"iss\":\"hub-ca\","
	          "\"aud\":[\"agentsync\",7]}",
	          SECRET, NULL);
	refused(&cfg, t, NOW, AGS_ERR_AUTH, "aud", "strings only");
	free(t);
	t = craft("{\"alg\":\"HS256\"}",
	          "{\"sub\":\"a\",\"tenant\":\"t\",\"exp\":1767229200,\"iss\":[\"hub-ca\"],"
	          "\"aud\":\"agentsync\"}",
	          SECRET, NULL);
	refused(&cfg, t, NOW, AGS_ERR_AUTH, "iss", "must be a string");
	free(t);
}

static void required_claims(void **state)
{
	(void)state;
	ags_jwt_config cfg = hs_cfg();
	static const struct {
		const char *payload, *field, *text;
	} cases[] = {
	    {"{\"sub\":\"a\",\"exp\":1767229200}", "tenant", "missing claim 'tenant'"},
	    {"{\"tenant\":\"t\",\"exp\":1767229200}", "sub", "missing claim 'sub'"},
	    {"{\"sub\":\"a\",\"tenant\":\"t\"}", "exp", "missing claim 'exp'"},
	    {"{\"sub\":\"a\",\"tenant\":\"t\",\"exp\":\"1767229200\"}", "exp",
	     "must be an integer"},
	    {"{\"sub\":\"a\",\"tenant\":\"t\",\"exp\":1767229200.5}", "exp", "must be an integer"},
	    /* Past 2^63: libjwt's JSON parser cannot read it, nor would the claim be allowed. */
	    {"{\"sub\":\"a\",\"tenant\":\"t\",\"exp\":18446744073709551615}", NULL,
	     "libjwt cannot read the payload"},
	    {"{\"sub\":\"a\",\"tenant\":\"t\",\"exp\":1767229200,\"nbf\":true}", "nbf",
	     "must be an integer"},
	    {"{\"sub\":\"a\",\"tenant\":\"t\",\"exp\":1767229200,\"iat\":null}", "iat",
	     "must be an integer"},
	    {"{\"sub\":\"\",\"tenant\":\"t\",\"exp\":1767229200}", "sub", "1-256 bytes"},
	    {"{\"sub\":\"a b\",\"tenant\":\"t\",\"exp\":1767229200}", "sub", "[A-Za-z0-9._:@-]"},
	    {"{\"sub\":\"a/b\",\"tenant\":\"t\",\"exp\":1767229200}", "sub", "[A-Za-z0-9._:@-]"},
	    {"{\"sub\":7,\"tenant\":\"t\",\"exp\":1767229200}", "sub", "must be a string"},
	    {"{\"sub\":\"a\",\"tenant\":\"t\\u00e9\",\"exp\":1767229200}", "tenant", "1-128 bytes"},
	    {"{\"sub\":\"a\",\"tenant\":\"t\",\"exp\":1767229200,\"tenant\":\"u\"}", "tenant",
	     "given twice"},
	    {"{\"sub\":\"a\",\"tenant\":\"t\",\"exp\":1767229200,\"exp\":1}", "exp", "given twice"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *t =
		    craft("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", cases[i].payload, SECRET, NULL);
		refused(&cfg, t, NOW, AGS_ERR_AUTH, cases[i].field, cases[i].text);
		free(t);
	}

	/* Length limits: 256 bytes of sub and 128 of tenant are fine, one more is not. */
	char sub[300], tenant[200];
	memset(sub, 's', 256);
	sub[256] = '\0';
	memset(tenant, 't', 128);
	tenant[128] = '\0';
	char *payload =
	    tu_sprintf("{\"sub\":\"%s\",\"tenant\":\"%s\",\"exp\":1767229200}", sub, tenant);
	char *t = craft("{\"alg\":\"HS256\"}", payload, SECRET, NULL);
	ags_jwt_claims c;
	accepted(&cfg, t, NOW, &c);
	assert_int_equal(strlen(c.sub), 256);
	assert_int_equal(strlen(c.tenant), 128);
	free(t);
	free(payload);
	payload = tu_sprintf("{\"sub\":\"%ss\",\"tenant\":\"t\",\"exp\":1767229200}", sub);
	t = craft("{\"alg\":\"HS256\"}", payload, SECRET, NULL);
	refused(&cfg, t, NOW, AGS_ERR_AUTH, "sub", "1-256 bytes");
	free(t);
	free(payload);
	payload = tu_sprintf("{\"sub\":\"s\",\"tenant\":\"%st\",\"exp\":1767229200}", tenant);
	t = craft("{\"alg\":\"HS256\"}", payload, SECRET, NULL);
	refused(&cfg, t, NOW, AGS_ERR_AUTH, "tenant", "1-128 bytes");
	free(t);
	free(payload);
}

static void garbage_and_oversize(void **state)
{
	(void)state;
	ags_jwt_config cfg = hs_cfg();
	static const char *const bad[] = {
	    "",
	    "garbage",
	    "a.b",
	    "a.b.c.d",
	    ".eyJ9.sig",
	    "eyJ9..sig",
	    "e yJ9.eyJ9.sig",
	    "eyJ9.eyJ9.si+g",
	    "eyJ9.eyJ9.si=",
	    "eyJhbGciOiJIUzI1NiJ9\n.eyJ9.x",
	    "a.eyJ9.x", /* one base64 character is no whole byte */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		refused(&cfg, bad[i], NOW, AGS_ERR_AUTH, NULL, "malformed token");

	/* Base64url fine, but not a JSON object. */
	char *t = craft("{\"alg\":\"HS256\"", GOOD_CLAIMS, NULL, "AAAA");
	refused(&cfg, t, NOW, AGS_ERR_AUTH, NULL, "header is not JSON");
	free(t);
	t = craft("[\"HS256\"]", GOOD_CLAIMS, NULL, "AAAA");
	refused(&cfg, t, NOW, AGS_ERR_AUTH, NULL, "header is not a JSON object");
	free(t);
	t = craft("{\"alg\":\"HS256\"}", "not json", SECRET, NULL);
	refused(&cfg, t, NOW, AGS_ERR_AUTH, NULL, "payload is not JSON");
	free(t);
	t = craft("{\"alg\":\"HS256\"}", "\"a string\"", SECRET, NULL);
	refused(&cfg, t, NOW, AGS_ERR_AUTH, NULL, "payload is not a JSON object");
	free(t);

	/* Header members this verifier does not accept. */
	t = craft("{\"alg\":\"HS256\",\"typ\":\"JWE\"}", GOOD_CLAIMS, SECRET, NULL);
	refused(&cfg, t, NOW, AGS_ERR_AUTH, "typ", "'typ' must be 'JWT'");
	free(t);
	t = craft("{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", GOOD_CLAIMS, SECRET, NULL);
	refused(&cfg, t, NOW, AGS_ERR_AUTH, "crit", "'crit'");
	free(t);

	/* 8 KiB is the limit: one byte more is too large; at the limit it is only malformed. */
	char *big = malloc(AGS_JWT_MAX_BYTES + 2);
	memset(big, 'A', AGS_JWT_MAX_BYTES + 1);
	big[AGS_JWT_MAX_BYTES + 1] = '\0';
	refused(&cfg, big, NOW, AGS_ERR_TOO_LARGE, NULL, "8192");
	big[AGS_JWT_MAX_BYTES] = '\0';
	refused(&cfg, big, NOW, AGS_ERR_AUTH, NULL, "malformed token");
	free(big);
	/* A properly signed token with a huge claim is also too large. */
	char *pad = malloc(7000);
	memset(pad, 'x', 6999);
	pad[6999] = '\0';
	char *payload =
	    tu_sprintf("{\"sub\":\"a\",\"tenant\":\"t\",\"exp\":1767229200,\"junk\":\"%s\"}", pad);
	t = craft("{\"alg\":\"HS256\"}", payload, SECRET, NULL);
	assert_true(strlen(t) > AGS_JWT_MAX_BYTES);
	refused(&cfg, t, NOW, AGS_ERR_TOO_LARGE, NULL, "over the limit");
	free(t);
	free(payload);
	free(pad);

	assert_int_equal(ags_jwt_verify(NULL, "a.b.c", NOW, NULL, NULL), AGS_ERR_INVALID);
	assert_int_equal(ags_jwt_verify(&cfg, NULL, NOW, NULL, NULL), AGS_ERR_INVALID);
}

static void configuration(void **state)
{
	(void)state;
	ags_error err;
	ags_jwt_config cfg = all_cfg();
	assert_int_equal(ags_jwt_config_check(&cfg, &err), 0);

	cfg.algs = 0;
	assert_int_equal(ags_jwt_config_check(&cfg, &err), AGS_ERR_CONFIG);
	assert_string_equal(err.field, "algs");
	cfg.algs = 1u << 5;
	assert_int_equal(ags_jwt_config_check(&cfg, &err), AGS_ERR_CONFIG);

	cfg = all_cfg();
	cfg.hs_secret_len = AGS_JWT_HS_SECRET_MIN - 1;
	assert_int_equal(ags_jwt_config_check(&cfg, &err), AGS_ERR_CONFIG);
	assert_string_equal(err.field, "hs_secret");
	cfg = all_cfg();
	cfg.rs_public_pem = NULL;
	assert_int_equal(ags_jwt_config_check(&cfg, &err), AGS_ERR_CONFIG);
	assert_string_equal(err.field, "rs_public_pem");
	cfg.rs_public_pem = "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n";
	assert_int_equal(ags_jwt_config_check(&cfg, &err), AGS_ERR_CONFIG);
	cfg.rs_public_pem = ec_pub;
	assert_int_equal(ags_jwt_config_check(&cfg, &err), AGS_ERR_CONFIG);
	cfg = all_cfg();
	cfg.es_public_pem = rsa_pub;
	assert_int_equal(ags_jwt_config_check(&cfg, &err), AGS_ERR_CONFIG);
	assert_string_equal(err.field, "es_public_pem");
	/* A private key is not a public key. */
	cfg.es_public_pem = ec_priv;
	assert_int_equal(ags_jwt_config_check(&cfg, &err), AGS_ERR_CONFIG);

	/* An allowed token whose algorithm has no usable key: a configuration error. */
	char *t;
	assert_int_equal(ags_jwt_sign_hs256((const uint8_t *)SECRET, strlen(SECRET), "a", "t", NULL,
	                                    NULL, NOW, NOW + 60, &t),
	                 0);
	cfg = hs_cfg();
	cfg.hs_secret_len = 8;
	refused(&cfg, t, NOW, AGS_ERR_CONFIG, "hs_secret", "at least 32 bytes");
	free(t);
	assert_int_equal(ags_jwt_config_check(NULL, &err), AGS_ERR_INVALID);
}

static void signer_refusals(void **state)
{
	(void)state;
	char *t = (char *)0x1;
	const uint8_t *s = (const uint8_t *)SECRET;
	size_t n = strlen(SECRET);

	assert_int_equal(ags_jwt_sign_hs256(s, 31, "a", "t", NULL, NULL, 0, 1, &t),
	                 AGS_ERR_INVALID);
	assert_int_equal(ags_jwt_sign_hs256(s, n, "a b", "t", NULL, NULL, 0, 1, &t),
	                 AGS_ERR_INVALID);
	assert_int_equal(ags_jwt_sign_hs256(s, n, "a", "", NULL, NULL, 0, 1, &t), AGS_ERR_INVALID);
	assert_int_equal(ags_jwt_sign_hs256(s, n, NULL, "t", NULL, NULL, 0, 1, &t),
	                 AGS_ERR_INVALID);
	assert_int_equal(ags_jwt_sign_hs256(NULL, n, "a", "t", NULL, NULL, 0, 1, &t),
	                 AGS_ERR_INVALID);
	assert_int_equal(ags_jwt_sign_rs256(ec_priv, "a", "t", NULL, NULL, 0, 1, &t),
	                 AGS_ERR_INVALID);
	assert_int_equal(ags_jwt_sign_es256(rsa_priv, "a", "t", NULL, NULL, 0, 1, &t),
	                 AGS_ERR_INVALID);
	assert_int_equal(ags_jwt_sign_rs256(rsa_pub, "a", "t", NULL, NULL, 0, 1, &t),
	                 AGS_ERR_INVALID);
	assert_int_equal(ags_jwt_sign_es256("junk", "a", "t", NULL, NULL, 0, 1, &t),
	                 AGS_ERR_INVALID);
	assert_int_equal(ags_jwt_sign_json(AGS_JWT_HS256, s, n, "[1]", &t), AGS_ERR_INVALID);
	assert_int_equal(ags_jwt_sign_json(0, s, n, "{}", &t), AGS_ERR_INVALID);
	assert_int_equal(ags_jwt_sign_json(AGS_JWT_HS256 | AGS_JWT_RS256, s, n, "{}", &t),
	                 AGS_ERR_INVALID);
	assert_null(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(good_tokens_of_each_algorithm),
	    cmocka_unit_test(time_limits_and_skew),
	    cmocka_unit_test(bad_signatures),
	    cmocka_unit_test(alg_none_is_refused),
	    cmocka_unit_test(algorithm_not_allowed),
	    cmocka_unit_test(key_confusion_is_refused),
	    cmocka_unit_test(issuer_and_audience),
	    cmocka_unit_test(required_claims),
	    cmocka_unit_test(garbage_and_oversize),
	    cmocka_unit_test(configuration),
	    cmocka_unit_test(signer_refusals),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
