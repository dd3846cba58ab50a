/* SPDX-License-Identifier: Apache-2.0 */
/* Certificate generation for nodes: a private CA and one certificate per node (GnuTLS). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "agentsync/certs.h"
#include "error.h"
#include "file.h"
#include "tls.h"

#define DAY_S     (24 * 60 * 60)
#define CA_DAYS   3650
#define NODE_DAYS 730
/* Certificates are valid from an hour ago, for peers whose clocks are a little behind. */
#define BACKDATE_S (60 * 60)
#define CA_CN      "agentsync CA"

/* A loaded or freshly made CA. */
struct ca {
	gnutls_x509_crt_t crt;
	gnutls_x509_privkey_t key;
};

static void ca_free(struct ca *ca)
{
	if (ca->crt)
		gnutls_x509_crt_deinit(ca->crt);
	if (ca->key)
		gnutls_x509_privkey_deinit(ca->key);
	ca->crt = NULL;
	ca->key = NULL;
}

static int g_err(ags_error *err, const char *what, const char *path, int g)
{
	return ags_error_set(err, AGS_ERR_TLS, NULL, "%s%s%s: %s", what, path ? " " : "",
	                     path ? path : "", gnutls_strerror(g));
}

/* Checks a node id: 1-64 bytes of [A-Za-z0-9._-], not "ca". */
static int check_id(const char *id, size_t i, ags_error *err)
{
	char field[32];
	snprintf(field, sizeof(field), "nodes[%zu]", i);
	if (!id)
		return ags_error_set(err, AGS_ERR_INVALID, field, "node id %zu is missing", i);
	size_t len = strlen(id);
	if (len == 0 || len > AGS_CERTS_ID_MAX)
		return ags_error_set(err, AGS_ERR_INVALID, field,
		                     "node id '%.80s' must be 1 to %d bytes long", id,
		                     AGS_CERTS_ID_MAX);
	for (size_t k = 0; k < len; k++) {
		char c = id[k];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return ags_error_set(
			    err, AGS_ERR_INVALID, field,
			    "node id '%.80s' has a character outside [A-Za-z0-9._-]", id);
	}
	if (strcmp(id, "ca") == 0)
		return ags_error_set(err, AGS_ERR_INVALID, field,
		                     "node id 'ca' is reserved (its files would be the CA's)");
	return 0;
}

/* Creates dir and its missing parents; dirs created get mode 0700. */
static int mkdir_p(const char *dir, ags_error *err)
{
	char eb[128];
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path))
		return ags_error_set(err, AGS_ERR_INVALID, "dir", "directory path too long");
	for (char *p = path + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(path, 0700) != 0 && errno != EEXIST)
			return ags_error_set(err, AGS_ERR_IO, "dir", "cannot create %s: %s", path,
			                     strerror_r(errno, eb, sizeof(eb)));
		*p = c;
		if (c == '\0')
			break;
	}
	struct stat st;
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return ags_error_set(err, AGS_ERR_IO, "dir", "%s is not a directory", dir);
	return 0;
}

static int join(char *out, size_t cap, const char *dir, const char *name, const char *suffix,
                ags_error *err)
{
	if (snprintf(out, cap, "%s/%s%s", dir, name, suffix) >= (int)cap)
		return ags_error_set(err, AGS_ERR_INVALID, "dir", "path too long for %s%s", name,
		                     suffix);
	return 0;
}

static int exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* Writes data to path through a temporary file in the same directory, then renames it. */
static int write_atomic(const char *path, const gnutls_datum_t *data, mode_t mode, ags_error *err)
{
	char eb[128];
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp))
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "path too long: %s", path);
	int fd = mkstemp(tmp); /* mode 0600 */
	if (fd < 0)
		return ags_error_set(err, AGS_ERR_IO, NULL, "cannot create %s: %s", tmp,
		                     strerror_r(errno, eb, sizeof(eb)));
	size_t off = 0;
	int e = 0;
	if (fchmod(fd, mode) != 0)
		e = errno;
	while (!e && off < data->size) {
		ssize_t w = write(fd, data->data + off, data->size - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			e = errno;
		else
			off += (size_t)w;
	}
	if (!e && fsync(fd) != 0)
		e = errno;
	if (close(fd) != 0 && !e)
		e = errno;
	if (!e && rename(tmp, path) != 0)
		e = errno;
	if (e) {
		unlink(tmp);
		return ags_error_set(err, AGS_ERR_IO, NULL, "cannot write %s: %s", path,
		                     strerror_r(e, eb, sizeof(eb)));
	}
	return 0;
}

/* Reads a PEM file of at most 1 MiB into a malloc'd datum; AGS_ERR_IO naming it. */
static int load(const char *path, gnutls_datum_t *out, ags_error *err)
{
	return ags_tls_read_pem(path, AGS_FILE_KEY_MAX, NULL, out, err);
}

static int load_crt(const char *path, gnutls_x509_crt_t *out, ags_error *err)
{
	gnutls_datum_t pem = {NULL, 0};
	int rv = load(path, &pem, err);
	if (rv)
		return rv;
	int g = gnutls_x509_crt_init(out);
	if (g == 0) {
		g = gnutls_x509_crt_import(*out, &pem, GNUTLS_X509_FMT_PEM);
		if (g < 0) {
			gnutls_x509_crt_deinit(*out);
			*out = NULL;
		}
	}
	free(pem.data);
	return g < 0 ? g_err(err, "cannot load certificate", path, g) : 0;
}

static int load_key(const char *path, gnutls_x509_privkey_t *out, ags_error *err)
{
	gnutls_datum_t pem = {NULL, 0};
	int rv = load(path, &pem, err);
	if (rv)
		return rv;
	int g = gnutls_x509_privkey_init(out);
	if (g == 0) {
		g = gnutls_x509_privkey_import2(*out, &pem, GNUTLS_X509_FMT_PEM, NULL, 0);
		if (g < 0) {
			gnutls_x509_privkey_deinit(*out);
			*out = NULL;
		}
	}
	gnutls_memset(pem.data, 0, pem.size);
	free(pem.data);
	return g < 0 ? g_err(err, "cannot load key", path, g) : 0;
}

static int gen_key(int key_type, gnutls_x509_privkey_t *out, ags_error *err)
{
	gnutls_pk_algorithm_t pk = GNUTLS_PK_EDDSA_ED25519;
	unsigned bits = GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_ED25519);
	if (key_type == AGS_CERTS_P256) {
		pk = GNUTLS_PK_ECDSA;
		bits = GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1);
	}
	int g = gnutls_x509_privkey_init(out);
	if (g == 0) {
		g = gnutls_x509_privkey_generate2(*out, pk, bits, 0, NULL, 0);
		if (g < 0) {
			gnutls_x509_privkey_deinit(*out);
			*out = NULL;
		}
	}
	return g < 0 ? g_err(err, "cannot generate a key", NULL, g) : 0;
}

/* The digest a key signs with: Ed25519 is defined with SHA-512, ECDSA P-256 uses SHA-256. */
static gnutls_digest_algorithm_t sign_dig(gnutls_x509_privkey_t key)
{
	return gnutls_x509_privkey_get_pk_algorithm(key) == GNUTLS_PK_EDDSA_ED25519
	           ? GNUTLS_DIG_SHA512
	           : GNUTLS_DIG_SHA256;
}

/*
 * Fills the fields every certificate made here has: version 3, a random
 * positive serial, CN, validity from an hour ago for `days`, the public key
 * and its subject key id.
 */
static int crt_base(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key, const char *cn, int days)
{
	unsigned char serial[16];
	unsigned char kid[64];
	size_t kid_len = sizeof(kid);
	time_t now = time(NULL);
	int g = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial));
	if (g < 0)
		return g;
	serial[0] = (unsigned char)((serial[0] & 0x7f) | 0x40); /* positive, no leading zero */
	if ((g = gnutls_x509_crt_set_version(crt, 3)) < 0 ||
	    (g = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial))) < 0 ||
	    (g = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
	                                       (unsigned)strlen(cn))) < 0 ||
	    (g = gnutls_x509_crt_set_activation_time(crt, now - BACKDATE_S)) < 0 ||
	    (g = gnutls_x509_crt_set_expiration_time(crt, now + (time_t)days * DAY_S)) < 0 ||
	    (g = gnutls_x509_crt_set_key(crt, key)) < 0 ||
	    (g = gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA1, kid, &kid_len)) < 0 ||
	    (g = gnutls_x509_crt_set_subject_key_id(crt, kid, kid_len)) < 0)
		return g;
	return 0;
}

/* Exports crt and key as PEM and writes them: key (0600) first, then certificate (0644). */
static int write_pair(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key, const char *crt_path,
                      const char *key_path, ags_error *err)
{
	gnutls_datum_t kpem = {NULL, 0}, cpem = {NULL, 0};
	int g = gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN,
	                                          &kpem);
	if (g < 0)
		return g_err(err, "cannot export key", key_path, g);
	g = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &cpem);
	if (g < 0) {
		gnutls_memset(kpem.data, 0, kpem.size);
		gnutls_free(kpem.data);
		return g_err(err, "cannot export certificate", crt_path, g);
	}
	int rv = write_atomic(key_path, &kpem, 0600, err);
	if (!rv)
		rv = write_atomic(crt_path, &cpem, 0644, err);
	gnutls_memset(kpem.data, 0, kpem.size);
	gnutls_free(kpem.data);
	gnutls_free(cpem.data);
	return rv;
}

static int ca_create(struct ca *ca, int key_type, const char *crt_path, const char *key_path,
                     ags_error *err)
{
	int rv = gen_key(key_type, &ca->key, err);
	if (rv)
		return rv;
	int g = gnutls_x509_crt_init(&ca->crt);
	if (g < 0)
		return g_err(err, "cannot make the CA certificate", NULL, g);
	if ((g = crt_base(ca->crt, ca->key, CA_CN, CA_DAYS)) < 0 ||
	    (g = gnutls_x509_crt_set_basic_constraints(ca->crt, 1, -1)) < 0 ||
	    (g = gnutls_x509_crt_set_key_usage(ca->crt, GNUTLS_KEY_KEY_CERT_SIGN |
	                                                    GNUTLS_KEY_CRL_SIGN)) < 0 ||
	    (g = gnutls_x509_crt_sign2(ca->crt, ca->crt, ca->key, sign_dig(ca->key), 0)) < 0)
		return g_err(err, "cannot make the CA certificate", NULL, g);
	return write_pair(ca->crt, ca->key, crt_path, key_path, err);
}

/* Loads the CA from dir, or creates it when neither of its files exists. */
static int ca_get(const char *dir, int key_type, struct ca *ca, ags_error *err)
{
	char crt_path[PATH_MAX], key_path[PATH_MAX];
	int rv = join(crt_path, sizeof(crt_path), dir, "ca", ".pem", err);
	if (!rv)
		rv = join(key_path, sizeof(key_path), dir, "ca", "-key.pem", err);
	if (rv)
		return rv;
	int have_crt = exists(crt_path), have_key = exists(key_path);
	if (!have_crt && !have_key)
		return ca_create(ca, key_type, crt_path, key_path, err);
	if (!have_crt || !have_key)
		return ags_error_set(err, AGS_ERR_NOT_FOUND, NULL,
		                     "%s exists but %s is missing: cannot use or replace the CA",
		                     have_crt ? crt_path : key_path,
		                     have_crt ? key_path : crt_path);
	rv = load_crt(crt_path, &ca->crt, err);
	if (!rv)
		rv = load_key(key_path, &ca->key, err);
	if (rv)
		return rv;
	/* The key must be the certificate's. */
	unsigned char a[64], b[64];
	size_t al = sizeof(a), bl = sizeof(b);
	if (gnutls_x509_crt_get_key_id(ca->crt, GNUTLS_KEYID_USE_SHA256, a, &al) < 0 ||
	    gnutls_x509_privkey_get_key_id(ca->key, GNUTLS_KEYID_USE_SHA256, b, &bl) < 0 ||
	    al != bl || memcmp(a, b, al) != 0)
		return ags_error_set(err, AGS_ERR_TLS, NULL, "%s does not match %s", key_path,
		                     crt_path);
	return 0;
}

/* Whether the node's existing files can be kept: readable, matching, issued by this CA, valid. */
static int node_usable(const struct ca *ca, const char *crt_path, const char *key_path)
{
	gnutls_x509_crt_t crt = NULL;
	gnutls_x509_privkey_t key = NULL;
	int ok = 0;
	if (!exists(crt_path) || !exists(key_path) || load_crt(crt_path, &crt, NULL) != 0 ||
	    load_key(key_path, &key, NULL) != 0)
		goto out;
	unsigned char a[64], b[64];
	size_t al = sizeof(a), bl = sizeof(b);
	unsigned status = 0;
	if (gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, a, &al) < 0 ||
	    gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, b, &bl) < 0 || al != bl ||
	    memcmp(a, b, al) != 0)
		goto out;
	if (gnutls_x509_crt_verify(crt, &ca->crt, 1, 0, &status) < 0 || status != 0)
		goto out;
	ok = 1;
out:
	if (crt)
		gnutls_x509_crt_deinit(crt);
	if (key)
		gnutls_x509_privkey_deinit(key);
	return ok;
}

static int node_create(const struct ca *ca, const char *id, int key_type, const char *crt_path,
                       const char *key_path, ags_error *err)
{
	static const unsigned char lo4[4] = {127, 0, 0, 1};
	static const unsigned char lo6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
	gnutls_x509_privkey_t key = NULL;
	gnutls_x509_crt_t crt = NULL;
	unsigned char aki[64];
	size_t aki_len = sizeof(aki);
	unsigned crit = 0;
	int rv = gen_key(key_type, &key, err);
	if (rv)
		return rv;
	int g = gnutls_x509_crt_init(&crt);
	if (g < 0 || (g = crt_base(crt, key, id, NODE_DAYS)) < 0 ||
	    (g = gnutls_x509_crt_set_basic_constraints(crt, 0, -1)) < 0 ||
	    (g = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0 ||
	    (g = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0)) < 0 ||
	    (g = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_CLIENT, 0)) < 0 ||
	    (g = gnutls_x509_crt_set_subject_alt_name(
	         crt, GNUTLS_SAN_DNSNAME, id, (unsigned)strlen(id), GNUTLS_FSAN_APPEND)) < 0 ||
	    (g = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, lo4, sizeof(lo4),
	                                              GNUTLS_FSAN_APPEND)) < 0 ||
	    (g = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, lo6, sizeof(lo6),
	                                              GNUTLS_FSAN_APPEND)) < 0) {
		rv = g_err(err, "cannot make the certificate of", id, g);
		goto out;
	}
	if (gnutls_x509_crt_get_subject_key_id(ca->crt, aki, &aki_len, &crit) == 0 &&
	    (g = gnutls_x509_crt_set_authority_key_id(crt, aki, aki_len)) < 0) {
		rv = g_err(err, "cannot make the certificate of", id, g);
		goto out;
	}
	g = gnutls_x509_crt_sign2(crt, ca->crt, ca->key, sign_dig(ca->key), 0);
	if (g < 0) {
		rv = g_err(err, "cannot sign the certificate of", id, g);
		goto out;
	}
	rv = write_pair(crt, key, crt_path, key_path, err);
out:
	if (crt)
		gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
	return rv;
}

AGS_EXPORT int ags_certs_init(const char *dir, const char *const *nodes, size_t n, int key_type,
                              ags_error *err)
{
	if (!dir || !dir[0])
		return ags_error_set(err, AGS_ERR_INVALID, "dir", "a directory is required");
	if (n && !nodes)
		return ags_error_set(err, AGS_ERR_INVALID, "nodes", "node ids are required");
	if (key_type != AGS_CERTS_ED25519 && key_type != AGS_CERTS_P256)
		return ags_error_set(err, AGS_ERR_INVALID, "key_type", "unknown key type %d",
		                     key_type);
	for (size_t i = 0; i < n; i++) {
		int rv = check_id(nodes[i], i, err);
		if (rv)
			return rv;
	}
	int rv = mkdir_p(dir, err);
	if (rv)
		return rv;
	struct ca ca = {NULL, NULL};
	rv = ca_get(dir, key_type, &ca, err);
	for (size_t i = 0; !rv && i < n; i++) {
		char crt_path[PATH_MAX], key_path[PATH_MAX];
		rv = join(crt_path, sizeof(crt_path), dir, nodes[i], ".pem", err);
		if (!rv)
			rv = join(key_path, sizeof(key_path), dir, nodes[i], "-key.pem", err);
		if (!rv && !node_usable(&ca, crt_path, key_path))
			rv = node_create(&ca, nodes[i], key_type, crt_path, key_path, err);
	}
	ca_free(&ca);
	return rv;
}

AGS_EXPORT int ags_certs_self_signed(const char *dir, const char *node, ags_error *err)
{
	return ags_certs_init(dir, &node, 1, AGS_CERTS_ED25519, err);
}

int ags_certs_crt_pin(gnutls_x509_crt_t crt, char out[65])
{
	gnutls_pubkey_t pk = NULL;
	gnutls_datum_t der = {NULL, 0};
	unsigned char dig[32];
	int g = gnutls_pubkey_init(&pk);
	if (g == 0)
		g = gnutls_pubkey_import_x509(pk, crt, 0);
	if (g == 0)
		g = gnutls_pubkey_export2(pk, GNUTLS_X509_FMT_DER, &der);
	if (g == 0)
		g = gnutls_hash_fast(GNUTLS_DIG_SHA256, der.data, der.size, dig);
	if (g == 0) {
		gnutls_datum_t d = {dig, sizeof(dig)};
		size_t sz = 65;
		g = gnutls_hex_encode(&d, out, &sz);
	}
	gnutls_free(der.data);
	if (pk)
		gnutls_pubkey_deinit(pk);
	return g;
}

AGS_EXPORT int ags_certs_pin(const char *cert_file, char out[65], ags_error *err)
{
	if (!cert_file || !out)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "cert_file and out are required");
	gnutls_x509_crt_t crt = NULL;
	int rv = load_crt(cert_file, &crt, err);
	if (rv)
		return rv;
	int g = ags_certs_crt_pin(crt, out);
	gnutls_x509_crt_deinit(crt);
	return g < 0 ? g_err(err, "cannot hash the public key of", cert_file, g) : 0;
}

AGS_EXPORT int ags_certs_node_id(const char *cert_file, char out[AGS_CERTS_ID_MAX + 1],
                                 ags_error *err)
{
	if (!cert_file || !out)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "cert_file and out are required");
	gnutls_x509_crt_t crt = NULL;
	int rv = load_crt(cert_file, &crt, err);
	if (rv)
		return rv;
	char id[256];
	ags_tls_crt_primary_id(crt, id, sizeof(id));
	gnutls_x509_crt_deinit(crt);
	if (check_id(id, 0, NULL) != 0)
		return ags_error_set(err, AGS_ERR_NOT_FOUND, NULL,
		                     "%s names no node id (its CN or first DNS SAN must be 1 to %d "
		                     "letters, digits, '.', '_' or '-'; got \"%.80s\")",
		                     cert_file, AGS_CERTS_ID_MAX, id);
	memcpy(out, id, strlen(id) + 1); /* check_id: at most AGS_CERTS_ID_MAX bytes */
	return 0;
}
