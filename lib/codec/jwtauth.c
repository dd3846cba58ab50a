/* SPDX-License-Identifier: Apache-2.0 */
/* JSON Web Tokens: verification and signing over libjwt 1.10 (GnuTLS flavour). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <yyjson.h>

#include "base64.h"
#include "error.h"
#include "jwtauth.h"
/* libjwt's header, through lib/codec/jwtauth.h (which has the same name; see there). */
#include <jwt.h>

#define ALL_ALGS      (AGS_JWT_HS256 | AGS_JWT_RS256 | AGS_JWT_ES256)
#define ES256_SIG_LEN 64
/* libjwt 1.10's GnuTLS signer pads r and s to 66 bytes each (ES512's size). */
#define LIBJWT_ES_HALF 66

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

static const char *alg_name(unsigned alg)
{
	switch (alg) {
	case AGS_JWT_HS256:
		return "HS256";
	case AGS_JWT_RS256:
		return "RS256";
	case AGS_JWT_ES256:
		return "ES256";
	default:
		return "?";
	}
}

/* The names of the algorithms in `algs`, as "HS256, RS256", into buf. */
static const char *alg_list(char *buf, size_t cap, unsigned algs)
{
	size_t n = 0;
	buf[0] = '\0';
	for (unsigned bit = AGS_JWT_HS256; bit <= AGS_JWT_ES256; bit <<= 1)
		if ((algs & bit) && n < cap)
			n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? ", " : "",
			                      alg_name(bit));
	if (!buf[0])
		snprintf(buf, cap, "none");
	return buf;
}

/*
 * Copies untrusted text (n bytes) into buf for a message: at most 64 bytes,
 * control characters and quotes replaced by '?', "..." when cut.
 */
static const char *printable(char *buf, size_t cap, const char *s, size_t n)
{
	size_t keep = n > 64 ? 64 : n, j = 0;
	for (size_t i = 0; i < keep && j + 1 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		buf[j++] = (c < 0x20 || c == 0x7f || c == '\'') ? '?' : (char)c;
	}
	buf[j] = '\0';
	if (keep < n && j + 4 < cap)
		memcpy(buf + j, "...", 4);
	return buf;
}

/* Seconds since the epoch as "2026-01-02T03:04:05Z" (or the number, out of range). */
static const char *fmt_time(char *buf, size_t cap, int64_t t)
{
	struct tm tm;
	time_t tt = (time_t)t;
	if ((int64_t)tt != t || !gmtime_r(&tt, &tm) ||
	    !strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, cap, "%lld", (long long)t);
	return buf;
}

static int64_t sat_add(int64_t a, int64_t b)
{
	int64_t r;
	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

/* Whether s (n bytes) is 1..max bytes of [A-Za-z0-9._:@-]. */
static int id_ok(const char *s, size_t n, size_t max)
{
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

/*
 * Finds member `key` of obj (*out NULL when absent). A member given twice is
 * refused: libjwt's JSON parser and yyjson might not pick the same one.
 */
static int member(yyjson_val *obj, const char *key, yyjson_val **out, ags_error *err)
{
	size_t n = strlen(key);
	yyjson_obj_iter it;
	yyjson_val *k;
	*out = NULL;
	yyjson_obj_iter_init(obj, &it);
	while ((k = yyjson_obj_iter_next(&it))) {
		if (yyjson_get_len(k) != n || memcmp(yyjson_get_str(k), key, n) != 0)
			continue;
		if (*out)
			return ags_error_set(err, AGS_ERR_AUTH, key, "'%s' is given twice", key);
		*out = yyjson_obj_iter_get_val(k);
	}
	return 0;
}

/* Decodes one base64url segment holding a JSON object; *doc owns it. */
static int segment_json(const char *s, size_t n, const char *what, yyjson_doc **doc, ags_error *err)
{
	uint8_t *raw = NULL;
	size_t raw_len = 0;
	yyjson_read_err rerr;
	int rc = ags_base64url_decode(s, n, &raw, &raw_len);
	if (rc == AGS_ERR_NOMEM)
		return ags_error_set(err, rc, NULL, "out of memory");
	if (rc)
		return ags_error_set(err, AGS_ERR_AUTH, NULL,
		                     "malformed token: %s is not base64url", what);
	*doc = yyjson_read_opts((char *)raw, raw_len, YYJSON_READ_NOFLAG, NULL, &rerr);
	free(raw);
	if (!*doc) {
		if (rerr.code == YYJSON_READ_ERROR_MEMORY_ALLOCATION)
			return ags_error_set(err, AGS_ERR_NOMEM, NULL, "out of memory");
		return ags_error_set(err, AGS_ERR_AUTH, NULL,
		                     "malformed token: %s is not JSON (%s)", what, rerr.msg);
	}
	if (!yyjson_is_obj(yyjson_doc_get_root(*doc))) {
		yyjson_doc_free(*doc);
		*doc = NULL;
		return ags_error_set(err, AGS_ERR_AUTH, NULL,
		                     "malformed token: %s is not a JSON object", what);
	}
	return 0;
}

/*
 * Reads integer claim `name`: *present says whether it is there; a value
 * that is not an integer of int64 range is refused.
 */
static int int_claim(yyjson_val *obj, const char *name, int64_t *v, int *present, ags_error *err)
{
	yyjson_val *x;
	int rc = member(obj, name, &x, err);
	*present = 0;
	*v = 0;
	if (rc || !x)
		return rc;
	if (yyjson_is_sint(x))
		*v = yyjson_get_sint(x);
	else if (yyjson_is_uint(x) && yyjson_get_uint(x) <= INT64_MAX)
		*v = (int64_t)yyjson_get_uint(x);
	else
		return ags_error_set(err, AGS_ERR_AUTH, name,
		                     "claim '%s' must be an integer (seconds since the epoch)",
		                     name);
	*present = 1;
	return 0;
}

/* Reads a required id claim (sub, tenant) into buf (max bytes + NUL). */
static int id_claim(yyjson_val *obj, const char *name, size_t max, char *buf, ags_error *err)
{
	yyjson_val *x;
	int rc = member(obj, name, &x, err);
	if (rc)
		return rc;
	if (!x)
		return ags_error_set(err, AGS_ERR_AUTH, name, "missing claim '%s'", name);
	if (!yyjson_is_str(x))
		return ags_error_set(err, AGS_ERR_AUTH, name, "claim '%s' must be a string", name);
	size_t n = yyjson_get_len(x);
	if (!id_ok(yyjson_get_str(x), n, max))
		return ags_error_set(err, AGS_ERR_AUTH, name,
		                     "claim '%s' must be 1-%zu bytes of [A-Za-z0-9._:@-]", name,
		                     max);
	memcpy(buf, yyjson_get_str(x), n);
	buf[n] = '\0';
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Keys                                                                     */
/* ------------------------------------------------------------------------ */

/* Checks that pem is a public key fit for alg (RS256 or ES256); errors carry `code`. */
static int check_pubkey(const char *pem, unsigned alg, const char *field, int code, ags_error *err)
{
	gnutls_pubkey_t pub;
	unsigned bits = 0;
	if (!pem)
		return ags_error_set(err, code, field, "%s is allowed but no public key is set",
		                     alg_name(alg));
	if (gnutls_pubkey_init(&pub) < 0)
		return ags_error_set(err, AGS_ERR_NOMEM, field, "out of memory");
	gnutls_datum_t d = {(unsigned char *)(uintptr_t)pem, (unsigned)strlen(pem)};
	int rc = gnutls_pubkey_import(pub, &d, GNUTLS_X509_FMT_PEM);
	int pk = rc < 0 ? rc : gnutls_pubkey_get_pk_algorithm(pub, &bits);
	gnutls_pubkey_deinit(pub);
	if (rc < 0)
		return ags_error_set(err, code, field, "not a PEM public key: %s",
		                     gnutls_strerror(rc));
	if (alg == AGS_JWT_RS256 && (pk != GNUTLS_PK_RSA || bits < AGS_JWT_RSA_BITS_MIN))
		return ags_error_set(err, code, field, "RS256 needs an RSA key of at least %d bits",
		                     AGS_JWT_RSA_BITS_MIN);
	/* GnuTLS's only 256-bit EC curve for ECDSA is P-256. */
	if (alg == AGS_JWT_ES256 && (pk != GNUTLS_PK_EC || bits != 256))
		return ags_error_set(err, code, field, "ES256 needs an EC P-256 key");
	return 0;
}

/* Checks that pem is a private key fit for alg (RS256 or ES256), as libjwt will read it. */
static int check_privkey(const char *pem, size_t len, unsigned alg)
{
	gnutls_x509_privkey_t key;
	unsigned bits = 0;
	if (gnutls_x509_privkey_init(&key) < 0)
		return AGS_ERR_NOMEM;
	gnutls_datum_t d = {(unsigned char *)(uintptr_t)pem, (unsigned)len};
	int rc = gnutls_x509_privkey_import(key, &d, GNUTLS_X509_FMT_PEM);
	int pk = rc < 0 ? rc : gnutls_x509_privkey_get_pk_algorithm2(key, &bits);
	gnutls_x509_privkey_deinit(key);
	if (rc < 0)
		return AGS_ERR_INVALID;
	if (alg == AGS_JWT_RS256 && (pk != GNUTLS_PK_RSA || bits < AGS_JWT_RSA_BITS_MIN))
		return AGS_ERR_INVALID;
	if (alg == AGS_JWT_ES256 && (pk != GNUTLS_PK_EC || bits != 256))
		return AGS_ERR_INVALID;
	return 0;
}

/* Checks the configuration for one algorithm; errors carry `code`. */
static int check_alg_key(const ags_jwt_config *cfg, unsigned alg, int code, ags_error *err)
{
	switch (alg) {
	case AGS_JWT_HS256:
		if (!cfg->hs_secret || cfg->hs_secret_len < AGS_JWT_HS_SECRET_MIN)
			return ags_error_set(err, code, "hs_secret",
			                     "HS256 needs a secret of at least %d bytes",
			                     AGS_JWT_HS_SECRET_MIN);
		return 0;
	case AGS_JWT_RS256:
		return check_pubkey(cfg->rs_public_pem, alg, "rs_public_pem", code, err);
	default:
		return check_pubkey(cfg->es_public_pem, alg, "es_public_pem", code, err);
	}
}

int ags_jwt_config_check(const ags_jwt_config *cfg, ags_error *err)
{
	int rc;
	if (!cfg)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "NULL argument");
	if (!cfg->algs || (cfg->algs & ~ALL_ALGS))
		return ags_error_set(err, AGS_ERR_CONFIG, "algs",
		                     "must be a non-empty set of HS256, RS256, ES256");
	for (unsigned bit = AGS_JWT_HS256; bit <= AGS_JWT_ES256; bit <<= 1)
		if ((cfg->algs & bit) && (rc = check_alg_key(cfg, bit, AGS_ERR_CONFIG, err)))
			return rc;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Verification                                                             */
/* ------------------------------------------------------------------------ */

/* Reads the header: the algorithm (refused unless allowed), typ, crit. */
static int check_header(const ags_jwt_config *cfg, yyjson_val *h, unsigned *alg, ags_error *err)
{
	char buf[80], list[32];
	yyjson_val *a, *typ, *crit;
	int rc;

	if ((rc = member(h, "alg", &a, err)))
		return rc;
	if (!a)
		return ags_error_set(err, AGS_ERR_AUTH, "alg", "header has no 'alg'");
	if (!yyjson_is_str(a))
		return ags_error_set(err, AGS_ERR_AUTH, "alg", "header 'alg' must be a string");
	const char *s = yyjson_get_str(a);
	size_t n = yyjson_get_len(a);
	/* libjwt matches names without regard to case: so must the refusal of none. */
	if (n == 4 && strncasecmp(s, "none", 4) == 0)
		return ags_error_set(err, AGS_ERR_AUTH, "alg", "algorithm '%s' is not allowed",
		                     printable(buf, sizeof(buf), s, n));
	*alg = 0;
	for (unsigned bit = AGS_JWT_HS256; bit <= AGS_JWT_ES256; bit <<= 1)
		if (n == 5 && memcmp(s, alg_name(bit), 5) == 0)
			*alg = bit;
	if (!*alg || !(cfg->algs & *alg))
		return ags_error_set(err, AGS_ERR_AUTH, "alg",
		                     "algorithm '%s' is not allowed (allowed: %s)",
		                     printable(buf, sizeof(buf), s, n),
		                     alg_list(list, sizeof(list), cfg->algs & ALL_ALGS));
	if ((rc = member(h, "typ", &typ, err)))
		return rc;
	if (typ && (!yyjson_is_str(typ) || yyjson_get_len(typ) != 3 ||
	            strncasecmp(yyjson_get_str(typ), "JWT", 3) != 0))
		return ags_error_set(err, AGS_ERR_AUTH, "typ", "header 'typ' must be 'JWT'");
	if ((rc = member(h, "crit", &crit, err)))
		return rc;
	if (crit)
		return ags_error_set(err, AGS_ERR_AUTH, "crit",
		                     "header 'crit' names extensions this verifier does not know");
	return 0;
}

/*
 * Verifies the signature with libjwt, with the key of `alg` only. On success
 * *jout is libjwt's view of the token (jwt_free it).
 */
static int check_signature(const ags_jwt_config *cfg, const char *token, unsigned alg,
                           const char *sig, size_t sig_len, jwt_t **jout, ags_error *err)
{
	const unsigned char *key;
	size_t key_len;
	jwt_alg_t want;
	jwt_t *j = NULL;

	if (sig_len == 0)
		return ags_error_set(err, AGS_ERR_AUTH, NULL, "bad signature: the token has none");
	if (alg == AGS_JWT_ES256) {
		/* RFC 7518 3.4: exactly r||s of 32 bytes each; libjwt also takes other sizes. */
		uint8_t *raw = NULL;
		size_t raw_len = 0;
		int rc = ags_base64url_decode(sig, sig_len, &raw, &raw_len);
		if (rc == AGS_ERR_NOMEM)
			return ags_error_set(err, rc, NULL, "out of memory");
		free(raw);
		if (rc || raw_len != ES256_SIG_LEN)
			return ags_error_set(err, AGS_ERR_AUTH, NULL,
			                     "bad signature: ES256 needs 64 bytes");
	}
	switch (alg) {
	case AGS_JWT_HS256:
		want = JWT_ALG_HS256;
		key = cfg->hs_secret;
		key_len = cfg->hs_secret_len;
		break;
	case AGS_JWT_RS256:
		want = JWT_ALG_RS256;
		key = (const unsigned char *)cfg->rs_public_pem;
		key_len = strlen(cfg->rs_public_pem);
		break;
	default:
		want = JWT_ALG_ES256;
		key = (const unsigned char *)cfg->es_public_pem;
		key_len = strlen(cfg->es_public_pem);
		break;
	}
	if (key_len > INT32_MAX)
		return ags_error_set(err, AGS_ERR_CONFIG, NULL, "key too long");
	int rc = jwt_decode(&j, token, key, (int)key_len);
	if (rc == ENOMEM)
		return ags_error_set(err, AGS_ERR_NOMEM, NULL, "out of memory");
	if (rc || !j) {
		/*
		 * libjwt gives the same EINVAL when its JSON parser (jansson)
		 * refuses the payload yyjson took, e.g. an integer past 2^63.
		 * Without a key it only parses, which tells the two apart.
		 */
		jwt_t *parsed = NULL;
		rc = jwt_decode(&parsed, token, NULL, 0);
		jwt_free(parsed);
		if (rc == ENOMEM)
			return ags_error_set(err, AGS_ERR_NOMEM, NULL, "out of memory");
		if (rc)
			return ags_error_set(err, AGS_ERR_AUTH, NULL,
			                     "malformed token: libjwt cannot read the payload");
		return ags_error_set(err, AGS_ERR_AUTH, NULL, "bad signature");
	}
	/* The header was read here first; make sure libjwt saw the same algorithm. */
	if (jwt_get_alg(j) != want) {
		jwt_free(j);
		return ags_error_set(err, AGS_ERR_AUTH, "alg", "bad signature: algorithm mismatch");
	}
	*jout = j;
	return 0;
}

/*
 * Checks that libjwt (whose JSON parser is jansson) reads the identity
 * claims as yyjson did, so no parser difference can change who is let in.
 */
static int same_identity(jwt_t *j, const ags_jwt_claims *c, ags_error *err)
{
	const char *sub = jwt_get_grant(j, "sub"), *tenant = jwt_get_grant(j, "tenant");
	if (!sub || strcmp(sub, c->sub) != 0)
		return ags_error_set(err, AGS_ERR_AUTH, "sub",
		                     "claim 'sub' reads differently to libjwt");
	if (!tenant || strcmp(tenant, c->tenant) != 0)
		return ags_error_set(err, AGS_ERR_AUTH, "tenant",
		                     "claim 'tenant' reads differently to libjwt");
	return 0;
}

/* Checks the claims at time now; fills *out. */
static int check_claims(const ags_jwt_config *cfg, yyjson_val *c, int64_t now, ags_jwt_claims *out,
                        ags_error *err)
{
	char b1[80], b2[80];
	yyjson_val *x;
	int present, rc;
	int64_t skew = cfg->skew_s == 0 ? AGS_JWT_SKEW_DEFAULT : cfg->skew_s < 0 ? 0 : cfg->skew_s;

	if ((rc = int_claim(c, "exp", &out->exp, &present, err)))
		return rc;
	if (!present)
		return ags_error_set(err, AGS_ERR_AUTH, "exp", "missing claim 'exp'");
	if (sat_add(out->exp, skew) <= now)
		return ags_error_set(err, AGS_ERR_AUTH, "exp", "token expired at %s (now %s)",
		                     fmt_time(b1, sizeof(b1), out->exp),
		                     fmt_time(b2, sizeof(b2), now));
	if ((rc = int_claim(c, "nbf", &out->nbf, &present, err)))
		return rc;
	if (present && out->nbf > sat_add(now, skew))
		return ags_error_set(err, AGS_ERR_AUTH, "nbf", "token not valid before %s (now %s)",
		                     fmt_time(b1, sizeof(b1), out->nbf),
		                     fmt_time(b2, sizeof(b2), now));
	if ((rc = int_claim(c, "iat", &out->iat, &present, err)))
		return rc;

	if (cfg->issuer) {
		if ((rc = member(c, "iss", &x, err)))
			return rc;
		if (!x)
			return ags_error_set(err, AGS_ERR_AUTH, "iss", "missing claim 'iss'");
		if (!yyjson_is_str(x))
			return ags_error_set(err, AGS_ERR_AUTH, "iss",
			                     "claim 'iss' must be a string");
		if (strlen(cfg->issuer) != yyjson_get_len(x) ||
		    memcmp(cfg->issuer, yyjson_get_str(x), yyjson_get_len(x)) != 0)
			return ags_error_set(
			    err, AGS_ERR_AUTH, "iss", "issuer '%s' is not '%s'",
			    printable(b1, sizeof(b1), yyjson_get_str(x), yyjson_get_len(x)),
			    printable(b2, sizeof(b2), cfg->issuer, strlen(cfg->issuer)));
	}
	if (cfg->audience) {
		size_t alen = strlen(cfg->audience), idx, max;
		int found = 0;
		yyjson_val *item;
		if ((rc = member(c, "aud", &x, err)))
			return rc;
		if (!x)
			return ags_error_set(err, AGS_ERR_AUTH, "aud", "missing claim 'aud'");
		if (yyjson_is_str(x)) {
			found = yyjson_get_len(x) == alen &&
			        memcmp(yyjson_get_str(x), cfg->audience, alen) == 0;
		} else if (yyjson_is_arr(x)) {
			yyjson_arr_foreach(x, idx, max, item)
			{
				if (!yyjson_is_str(item))
					return ags_error_set(err, AGS_ERR_AUTH, "aud",
					                     "claim 'aud' must hold strings only");
				if (yyjson_get_len(item) == alen &&
				    memcmp(yyjson_get_str(item), cfg->audience, alen) == 0)
					found = 1;
			}
		} else {
			return ags_error_set(err, AGS_ERR_AUTH, "aud",
			                     "claim 'aud' must be a string or an array of strings");
		}
		if (!found)
			return ags_error_set(err, AGS_ERR_AUTH, "aud",
			                     "audience does not include '%s'",
			                     printable(b1, sizeof(b1), cfg->audience, alen));
	}
	if ((rc = id_claim(c, "sub", AGS_JWT_SUB_MAX, out->sub, err)))
		return rc;
	return id_claim(c, "tenant", AGS_JWT_TENANT_MAX, out->tenant, err);
}

int ags_jwt_verify(const ags_jwt_config *cfg, const char *token, int64_t now_s, ags_jwt_claims *out,
                   ags_error *err)
{
	yyjson_doc *hdoc = NULL, *pdoc = NULL;
	jwt_t *j = NULL;
	ags_jwt_claims claims;
	unsigned alg = 0;
	int rc;

	if (!cfg || !token)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "NULL argument");
	size_t len = strnlen(token, AGS_JWT_MAX_BYTES + 1);
	if (len > AGS_JWT_MAX_BYTES)
		return ags_error_set(err, AGS_ERR_TOO_LARGE, NULL,
		                     "token is over the limit of %d bytes", AGS_JWT_MAX_BYTES);

	/* Compact form: header.payload.signature, each base64url. */
	const char *d1 = memchr(token, '.', len);
	const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
	if (!d1 || !d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)))
		return ags_error_set(err, AGS_ERR_AUTH, NULL,
		                     "malformed token: not three dot-separated parts");
	size_t hlen = (size_t)(d1 - token), plen = (size_t)(d2 - d1 - 1);
	size_t slen = len - (size_t)(d2 + 1 - token);
	if (!hlen || !plen || !ags_base64url_valid(token, hlen) ||
	    !ags_base64url_valid(d1 + 1, plen) || !ags_base64url_valid(d2 + 1, slen))
		return ags_error_set(err, AGS_ERR_AUTH, NULL,
		                     "malformed token: a part is empty or not base64url");

	if ((rc = segment_json(token, hlen, "header", &hdoc, err)))
		goto done;
	if ((rc = check_header(cfg, yyjson_doc_get_root(hdoc), &alg, err)))
		goto done;
	if ((rc = check_alg_key(cfg, alg, AGS_ERR_CONFIG, err)))
		goto done;
	if ((rc = segment_json(d1 + 1, plen, "payload", &pdoc, err)))
		goto done;
	if ((rc = check_signature(cfg, token, alg, d2 + 1, slen, &j, err)))
		goto done;
	memset(&claims, 0, sizeof(claims));
	if ((rc = check_claims(cfg, yyjson_doc_get_root(pdoc), now_s, &claims, err)) ||
	    (rc = same_identity(j, &claims, err)))
		goto done;
	snprintf(claims.alg, sizeof(claims.alg), "%s", alg_name(alg));
	if (out)
		*out = claims;
done:
	jwt_free(j);
	yyjson_doc_free(hdoc);
	yyjson_doc_free(pdoc);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Signing                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * Rewrites an ES256 token signed by libjwt 1.10 (r and s each zero-padded to
 * 66 bytes) with the standard 64-byte signature. *tok is replaced on success.
 */
static int es256_fix(char **tok)
{
	static const uint8_t zero[LIBJWT_ES_HALF - 32];
	char *dot = strrchr(*tok, '.'), *b64 = NULL;
	uint8_t *raw = NULL, rs[ES256_SIG_LEN];
	size_t slen = strlen(dot + 1), raw_len = 0;

	int rc = ags_base64url_decode(dot + 1, slen, &raw, &raw_len);
	if (rc)
		return rc == AGS_ERR_NOMEM ? rc : AGS_ERR_INTERNAL;
	if (raw_len == ES256_SIG_LEN) { /* a libjwt that gets it right */
		free(raw);
		return 0;
	}
	if (raw_len != 2 * LIBJWT_ES_HALF || memcmp(raw, zero, sizeof(zero)) != 0 ||
	    memcmp(raw + LIBJWT_ES_HALF, zero, sizeof(zero)) != 0) {
		free(raw);
		return AGS_ERR_INTERNAL;
	}
	memcpy(rs, raw + sizeof(zero), 32);
	memcpy(rs + 32, raw + LIBJWT_ES_HALF + sizeof(zero), 32);
	free(raw);
	if ((rc = ags_base64url_encode(rs, sizeof(rs), &b64)))
		return rc;
	size_t head = (size_t)(dot + 1 - *tok), n = head + strlen(b64) + 1;
	char *t = malloc(n);
	if (!t) {
		free(b64);
		return AGS_ERR_NOMEM;
	}
	memcpy(t, *tok, head);
	memcpy(t + head, b64, strlen(b64) + 1);
	free(b64);
	free(*tok);
	*tok = t;
	return 0;
}

/* Signs the claims in j with alg and key; on success *out is the token. */
static int encode(jwt_t *j, unsigned alg, const uint8_t *key, size_t key_len, char **out)
{
	jwt_alg_t a;
	int rc;

	if (!key || key_len > INT32_MAX)
		return AGS_ERR_INVALID;
	switch (alg) {
	case AGS_JWT_HS256:
		if (key_len < AGS_JWT_HS_SECRET_MIN)
			return AGS_ERR_INVALID;
		a = JWT_ALG_HS256;
		break;
	case AGS_JWT_RS256:
	case AGS_JWT_ES256:
		if ((rc = check_privkey((const char *)key, key_len, alg)))
			return rc;
		a = alg == AGS_JWT_RS256 ? JWT_ALG_RS256 : JWT_ALG_ES256;
		break;
	default:
		return AGS_ERR_INVALID;
	}
	if ((rc = jwt_set_alg(j, a, key, (int)key_len)))
		return rc == ENOMEM ? AGS_ERR_NOMEM : AGS_ERR_INVALID;
	errno = 0;
	char *t = jwt_encode_str(j);
	if (!t)
		return errno == ENOMEM ? AGS_ERR_NOMEM : AGS_ERR_INVALID;
	if (alg == AGS_JWT_ES256 && (rc = es256_fix(&t))) {
		free(t);
		return rc;
	}
	*out = t;
	return 0;
}

static int add_str(jwt_t *j, const char *name, const char *v)
{
	int rc = jwt_add_grant(j, name, v);
	return rc == ENOMEM ? AGS_ERR_NOMEM : rc ? AGS_ERR_INVALID : 0;
}

static int add_int(jwt_t *j, const char *name, int64_t v)
{
	int rc = jwt_add_grant_int(j, name, (long)v);
	return rc == ENOMEM ? AGS_ERR_NOMEM : rc ? AGS_ERR_INVALID : 0;
}

/* The three named signers: the standard claims, checked as the verifier would. */
static int sign_claims(unsigned alg, const uint8_t *key, size_t key_len, const char *sub,
                       const char *tenant, const char *iss, const char *aud, int64_t iat,
                       int64_t exp, char **out)
{
	jwt_t *j = NULL;
	int rc;

	if (!out || !sub || !tenant)
		return AGS_ERR_INVALID;
	*out = NULL;
	if (!id_ok(sub, strlen(sub), AGS_JWT_SUB_MAX) ||
	    !id_ok(tenant, strlen(tenant), AGS_JWT_TENANT_MAX))
		return AGS_ERR_INVALID;
	if (jwt_new(&j))
		return AGS_ERR_NOMEM;
	if ((rc = add_str(j, "sub", sub)) || (rc = add_str(j, "tenant", tenant)) ||
	    (iss && (rc = add_str(j, "iss", iss))) || (aud && (rc = add_str(j, "aud", aud))) ||
	    (rc = add_int(j, "iat", iat)) || (rc = add_int(j, "exp", exp)))
		goto done;
	rc = encode(j, alg, key, key_len, out);
done:
	jwt_free(j);
	return rc;
}

AGS_EXPORT int ags_jwt_sign_hs256(const uint8_t *secret, size_t len, const char *sub,
                                  const char *tenant, const char *iss, const char *aud, int64_t iat,
                                  int64_t exp, char **out)
{
	return sign_claims(AGS_JWT_HS256, secret, len, sub, tenant, iss, aud, iat, exp, out);
}

AGS_EXPORT int ags_jwt_sign_rs256(const char *private_pem, const char *sub, const char *tenant,
                                  const char *iss, const char *aud, int64_t iat, int64_t exp,
                                  char **out)
{
	if (!private_pem)
		return AGS_ERR_INVALID;
	return sign_claims(AGS_JWT_RS256, (const uint8_t *)private_pem, strlen(private_pem), sub,
	                   tenant, iss, aud, iat, exp, out);
}

AGS_EXPORT int ags_jwt_sign_es256(const char *private_pem, const char *sub, const char *tenant,
                                  const char *iss, const char *aud, int64_t iat, int64_t exp,
                                  char **out)
{
	if (!private_pem)
		return AGS_ERR_INVALID;
	return sign_claims(AGS_JWT_ES256, (const uint8_t *)private_pem, strlen(private_pem), sub,
	                   tenant, iss, aud, iat, exp, out);
}

int ags_jwt_sign_json(unsigned alg, const uint8_t *key, size_t key_len, const char *claims_json,
                      char **out)
{
	jwt_t *j = NULL;
	int rc;

	if (!out || !claims_json)
		return AGS_ERR_INVALID;
	*out = NULL;
	if (jwt_new(&j))
		return AGS_ERR_NOMEM;
	if (jwt_add_grants_json(j, claims_json))
		rc = AGS_ERR_INVALID;
	else
		rc = encode(j, alg, key, key_len, out);
	jwt_free(j);
	return rc;
}
