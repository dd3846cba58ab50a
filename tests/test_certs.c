/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for certificate generation (lib/transport/certs.c), checked with GnuTLS's own parsers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "testutil.h"
#include "agentsync/agentsync.h"
#include "agentsync/certs.h"

static gnutls_x509_crt_t load_crt(const char *path)
{
	gnutls_datum_t pem;
	gnutls_x509_crt_t crt;
	assert_int_equal(gnutls_load_file(path, &pem), 0);
	assert_int_equal(gnutls_x509_crt_init(&crt), 0);
	assert_int_equal(gnutls_x509_crt_import(crt, &pem, GNUTLS_X509_FMT_PEM), 0);
	gnutls_free(pem.data);
	return crt;
}

static void cn_is(gnutls_x509_crt_t crt, const char *want)
{
	char cn[256];
	size_t sz = sizeof(cn);
	assert_int_equal(
	    gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &sz), 0);
	assert_string_equal(cn, want);
}

static int mode_of(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return (int)(st.st_mode & 07777);
}

/* Verifies node.pem against ca.pem with a trust list, for both TLS purposes. */
static void chains_to_ca(const char *dir, const char *node)
{
	char *ca_path = tu_sprintf("%s/ca.pem", dir);
	char *crt_path = tu_sprintf("%s/%s.pem", dir, node);
	gnutls_x509_crt_t ca = load_crt(ca_path);
	gnutls_x509_crt_t crt = load_crt(crt_path);
	gnutls_x509_trust_list_t tl;
	assert_int_equal(gnutls_x509_trust_list_init(&tl, 0), 0);
	assert_int_equal(gnutls_x509_trust_list_add_cas(tl, &ca, 1, 0), 1);
	const char *purposes[] = {GNUTLS_KP_TLS_WWW_SERVER, GNUTLS_KP_TLS_WWW_CLIENT};
	for (int i = 0; i < 2; i++) {
		gnutls_typed_vdata_st vd = {GNUTLS_DT_KEY_PURPOSE_OID, (unsigned char *)purposes[i],
		                            0};
		unsigned status = 1;
		assert_int_equal(
		    gnutls_x509_trust_list_verify_crt2(tl, &crt, 1, &vd, 1, 0, &status, NULL), 0);
		assert_int_equal(status, 0);
	}
	/* The same with the plain one-step verifier. */
	unsigned status = 1;
	assert_int_equal(gnutls_x509_crt_verify(crt, &ca, 1, 0, &status), 0);
	assert_int_equal(status, 0);
	gnutls_x509_trust_list_deinit(tl, 1); /* frees ca */
	gnutls_x509_crt_deinit(crt);
	free(ca_path);
	free(crt_path);
}

/* Checks everything a node certificate must have. */
static void node_cert_ok(const char *dir, const char *node, int pk_want)
{
	char *crt_path = tu_sprintf("%s/%s.pem", dir, node);
	char *key_path = tu_sprintf("%s/%s-key.pem", dir, node);
	gnutls_x509_crt_t crt = load_crt(crt_path);
	cn_is(crt, node);

	int dns = 0, ip4 = 0, ip6 = 0;
	for (unsigned i = 0;; i++) {
		unsigned char san[256];
		size_t sz = sizeof(san);
		int t = gnutls_x509_crt_get_subject_alt_name(crt, i, san, &sz, NULL);
		if (t == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			break;
		assert_true(t >= 0);
		if (t == GNUTLS_SAN_DNSNAME && sz == strlen(node) && memcmp(san, node, sz) == 0)
			dns = 1;
		if (t == GNUTLS_SAN_IPADDRESS && sz == 4 && memcmp(san, "\x7f\0\0\x01", 4) == 0)
			ip4 = 1;
		if (t == GNUTLS_SAN_IPADDRESS && sz == 16 &&
		    memcmp(san, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01", 16) == 0)
			ip6 = 1;
	}
	assert_true(dns && ip4 && ip6);

	unsigned ku = 0;
	assert_true(gnutls_x509_crt_get_key_usage(crt, &ku, NULL) >= 0);
	assert_true(ku & GNUTLS_KEY_DIGITAL_SIGNATURE);
	assert_false(ku & GNUTLS_KEY_KEY_CERT_SIGN);
	int server = 0, client = 0;
	for (unsigned i = 0;; i++) {
		char oid[128];
		size_t sz = sizeof(oid);
		if (gnutls_x509_crt_get_key_purpose_oid(crt, i, oid, &sz, NULL) < 0)
			break;
		server |= strcmp(oid, GNUTLS_KP_TLS_WWW_SERVER) == 0;
		client |= strcmp(oid, GNUTLS_KP_TLS_WWW_CLIENT) == 0;
	}
	assert_true(server && client);
	unsigned ca_flag = 1;
	assert_int_equal(gnutls_x509_crt_get_basic_constraints(crt, NULL, &ca_flag, NULL), 0);
	assert_int_equal(ca_flag, 0);
	assert_int_equal(gnutls_x509_crt_get_pk_algorithm(crt, NULL), pk_want);
	time_t exp = gnutls_x509_crt_get_expiration_time(crt);
	assert_true(exp > time(NULL) + 700L * 86400 && exp < time(NULL) + 740L * 86400);

	/* Key and certificate load together in GnuTLS (which checks they match). */
	gnutls_certificate_credentials_t cred;
	assert_int_equal(gnutls_certificate_allocate_credentials(&cred), 0);
	assert_true(gnutls_certificate_set_x509_key_file(cred, crt_path, key_path,
	                                                 GNUTLS_X509_FMT_PEM) >= 0);
	gnutls_certificate_free_credentials(cred);
	assert_int_equal(mode_of(key_path), 0600);

	chains_to_ca(dir, node);
	gnutls_x509_crt_deinit(crt);
	free(crt_path);
	free(key_path);
}

static void ca_ok(const char *dir, int pk_want)
{
	char *crt_path = tu_sprintf("%s/ca.pem", dir);
	char *key_path = tu_sprintf("%s/ca-key.pem", dir);
	gnutls_x509_crt_t ca = load_crt(crt_path);
	cn_is(ca, "agentsync CA");
	unsigned ca_flag = 0;
	assert_true(gnutls_x509_crt_get_basic_constraints(ca, NULL, &ca_flag, NULL) > 0);
	assert_int_equal(ca_flag, 1);
	unsigned ku = 0;
	assert_true(gnutls_x509_crt_get_key_usage(ca, &ku, NULL) >= 0);
	assert_true(ku & GNUTLS_KEY_KEY_CERT_SIGN);
	assert_true(ku & GNUTLS_KEY_CRL_SIGN);
	assert_int_equal(gnutls_x509_crt_get_pk_algorithm(ca, NULL), pk_want);
	assert_true(gnutls_x509_crt_get_expiration_time(ca) > time(NULL) + 3600L * 86400);
	assert_int_equal(mode_of(key_path), 0600);
	gnutls_x509_crt_deinit(ca);
	free(crt_path);
	free(key_path);
}

static void makes_ca_and_nodes_ed25519(void **state)
{
	(void)state;
	char *tmp = tu_mkdtemp("certs");
	char *dir = tu_sprintf("%s/deep/certs", tmp); /* parents are created too */
	const char *nodes[] = {"alpha", "beta.example", "node_3-x"};
	ags_error e;
	assert_int_equal(ags_certs_init(dir, nodes, 3, AGS_CERTS_ED25519, &e), 0);
	assert_int_equal(mode_of(dir), 0700);
	ca_ok(dir, GNUTLS_PK_EDDSA_ED25519);
	for (int i = 0; i < 3; i++)
		node_cert_ok(dir, nodes[i], GNUTLS_PK_EDDSA_ED25519);
	tu_rmrf(tmp);
	free(dir);
	free(tmp);
}

static void makes_p256(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp("certs");
	const char *nodes[] = {"p1", "p2"};
	assert_int_equal(ags_certs_init(dir, nodes, 2, AGS_CERTS_P256, NULL), 0);
	ca_ok(dir, GNUTLS_PK_ECDSA);
	node_cert_ok(dir, "p1", GNUTLS_PK_ECDSA);
	node_cert_ok(dir, "p2", GNUTLS_PK_ECDSA);
	tu_rmrf(dir);
	free(dir);
}

static void second_call_reuses_ca_and_adds_a_node(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp("certs");
	const char *first[] = {"a", "b"};
	assert_int_equal(ags_certs_init(dir, first, 2, AGS_CERTS_ED25519, NULL), 0);
	char *ca_path = tu_sprintf("%s/ca.pem", dir);
	char *a_path = tu_sprintf("%s/a.pem", dir);
	size_t ca_len, a_len;
	char *ca1 = tu_read_file(ca_path, &ca_len);
	char *a1 = tu_read_file(a_path, &a_len);
	assert_non_null(ca1);
	assert_non_null(a1);

	/* Adding c, with another key type: the CA and a stay byte for byte. */
	const char *second[] = {"a", "c"};
	assert_int_equal(ags_certs_init(dir, second, 2, AGS_CERTS_P256, NULL), 0);
	size_t ca2_len, a2_len;
	char *ca2 = tu_read_file(ca_path, &ca2_len);
	char *a2 = tu_read_file(a_path, &a2_len);
	assert_int_equal(ca_len, ca2_len);
	assert_memory_equal(ca1, ca2, ca_len);
	assert_int_equal(a_len, a2_len);
	assert_memory_equal(a1, a2, a_len);
	node_cert_ok(dir, "c", GNUTLS_PK_ECDSA);
	node_cert_ok(dir, "a", GNUTLS_PK_EDDSA_ED25519);
	ca_ok(dir, GNUTLS_PK_EDDSA_ED25519);

	free(ca1);
	free(ca2);
	free(a1);
	free(a2);
	free(ca_path);
	free(a_path);
	tu_rmrf(dir);
	free(dir);
}

static void unreadable_node_cert_is_replaced(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp("certs");
	const char *nodes[] = {"n1"};
	assert_int_equal(ags_certs_init(dir, nodes, 1, AGS_CERTS_ED25519, NULL), 0);
	char *path = tu_sprintf("%s/n1.pem", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n", f);
	fclose(f);
	assert_int_equal(ags_certs_init(dir, nodes, 1, AGS_CERTS_ED25519, NULL), 0);
	node_cert_ok(dir, "n1", GNUTLS_PK_EDDSA_ED25519);
	free(path);
	tu_rmrf(dir);
	free(dir);
}

static void bad_node_ids_are_refused_by_name(void **state)
{
	(void)state;
	char *tmp = tu_mkdtemp("certs");
	char *dir = tu_sprintf("%s/out", tmp);
	char long_id[70];
	memset(long_id, 'x', 65);
	long_id[65] = '\0';
	const char *bad[] = {"bad/id", "", long_id, "ca", "sp ace", "dollar$"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *nodes[] = {"good", bad[i]};
		ags_error e;
		ags_error_clear(&e);
		assert_int_equal(ags_certs_init(dir, nodes, 2, AGS_CERTS_ED25519, &e),
		                 AGS_ERR_INVALID);
		assert_int_equal(e.code, AGS_ERR_INVALID);
		assert_string_equal(e.field, "nodes[1]");
		char *quoted = tu_sprintf("'%s'", bad[i]);
		if (bad[i][0] && strlen(bad[i]) < 64)
			assert_non_null(strstr(e.message, quoted));
		free(quoted);
		/* Nothing was written, not even the directory. */
		assert_int_not_equal(access(dir, F_OK), 0);
	}
	const char *ok[] = {"A-z_0.9"};
	assert_int_equal(ags_certs_init(dir, ok, 1, AGS_CERTS_ED25519, NULL), 0);
	node_cert_ok(dir, "A-z_0.9", GNUTLS_PK_EDDSA_ED25519);
	assert_int_equal(ags_certs_init(dir, ok, 1, 7, NULL), AGS_ERR_INVALID);
	assert_int_equal(ags_certs_init(NULL, ok, 1, AGS_CERTS_ED25519, NULL), AGS_ERR_INVALID);
	tu_rmrf(tmp);
	free(dir);
	free(tmp);
}

static void half_a_ca_is_an_error(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp("certs");
	const char *nodes[] = {"x"};
	assert_int_equal(ags_certs_init(dir, nodes, 1, AGS_CERTS_ED25519, NULL), 0);
	char *key = tu_sprintf("%s/ca-key.pem", dir);
	char *crt = tu_sprintf("%s/ca.pem", dir);
	size_t len1;
	char *before = tu_read_file(crt, &len1);
	assert_int_equal(unlink(key), 0);
	ags_error e;
	const char *more[] = {"y"};
	assert_int_equal(ags_certs_init(dir, more, 1, AGS_CERTS_ED25519, &e), AGS_ERR_NOT_FOUND);
	assert_non_null(strstr(e.message, "ca-key.pem"));
	/* The CA certificate was not replaced, and y was not made. */
	size_t len2;
	char *after = tu_read_file(crt, &len2);
	assert_int_equal(len1, len2);
	assert_memory_equal(before, after, len1);
	char *y = tu_sprintf("%s/y.pem", dir);
	assert_int_not_equal(access(y, F_OK), 0);
	free(before);
	free(after);
	free(y);
	free(key);
	free(crt);
	tu_rmrf(dir);
	free(dir);
}

static void self_signed_for_a_lone_daemon(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp("certs");
	assert_int_equal(ags_certs_self_signed(dir, "solo", NULL), 0);
	ca_ok(dir, GNUTLS_PK_EDDSA_ED25519);
	node_cert_ok(dir, "solo", GNUTLS_PK_EDDSA_ED25519);
	ags_error e;
	assert_int_equal(ags_certs_self_signed(dir, "no/slash", &e), AGS_ERR_INVALID);
	assert_non_null(strstr(e.message, "no/slash"));
	tu_rmrf(dir);
	free(dir);
}

static void pin_is_the_spki_sha256(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp("certs");
	const char *nodes[] = {"p", "q"};
	assert_int_equal(ags_certs_init(dir, nodes, 2, AGS_CERTS_ED25519, NULL), 0);
	char *p_path = tu_sprintf("%s/p.pem", dir);
	char *q_path = tu_sprintf("%s/q.pem", dir);
	char pin_p[65], pin_q[65];
	assert_int_equal(ags_certs_pin(p_path, pin_p, NULL), 0);
	assert_int_equal(ags_certs_pin(q_path, pin_q, NULL), 0);
	assert_int_equal(strlen(pin_p), 64);
	assert_string_not_equal(pin_p, pin_q);

	/* GnuTLS's SHA-256 key id is the hash of the DER SubjectPublicKeyInfo too. */
	gnutls_x509_crt_t crt = load_crt(p_path);
	unsigned char id[32];
	size_t sz = sizeof(id);
	assert_int_equal(gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, id, &sz), 0);
	assert_int_equal(sz, 32);
	char hex[65];
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", id[i]);
	assert_string_equal(hex, pin_p);
	gnutls_x509_crt_deinit(crt);

	ags_error e;
	char *missing = tu_sprintf("%s/none.pem", dir);
	assert_int_equal(ags_certs_pin(missing, pin_p, &e), AGS_ERR_IO);
	assert_non_null(strstr(e.message, missing));
	free(missing);
	free(p_path);
	free(q_path);
	tu_rmrf(dir);
	free(dir);
}

static void node_id_is_the_certificates_name(void **state)
{
	(void)state;
	char *dir = tu_mkdtemp("certs");
	const char *nodes[] = {"agent-1", "n.b_2"};
	assert_int_equal(ags_certs_init(dir, nodes, 2, AGS_CERTS_ED25519, NULL), 0);
	char id[AGS_CERTS_ID_MAX + 1];
	for (size_t i = 0; i < 2; i++) {
		char *path = tu_sprintf("%s/%s.pem", dir, nodes[i]);
		assert_int_equal(ags_certs_node_id(path, id, NULL), 0);
		assert_string_equal(id, nodes[i]);
		free(path);
	}
	/* The CA's CN ("agentsync CA") is no node id. */
	ags_error e;
	char *ca = tu_sprintf("%s/ca.pem", dir);
	assert_int_equal(ags_certs_node_id(ca, id, &e), AGS_ERR_NOT_FOUND);
	assert_non_null(strstr(e.message, "agentsync CA"));
	/* A key is not a certificate; a missing file is named. */
	char *key = tu_sprintf("%s/agent-1-key.pem", dir);
	assert_int_equal(ags_certs_node_id(key, id, &e), AGS_ERR_TLS);
	char *missing = tu_sprintf("%s/none.pem", dir);
	assert_int_equal(ags_certs_node_id(missing, id, &e), AGS_ERR_IO);
	assert_non_null(strstr(e.message, missing));
	free(ca);
	free(key);
	free(missing);
	tu_rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(makes_ca_and_nodes_ed25519),
	    cmocka_unit_test(makes_p256),
	    cmocka_unit_test(second_call_reuses_ca_and_adds_a_node),
	    cmocka_unit_test(unreadable_node_cert_is_replaced),
	    cmocka_unit_test(bad_node_ids_are_refused_by_name),
	    cmocka_unit_test(half_a_ca_is_an_error),
	    cmocka_unit_test(self_signed_for_a_lone_daemon),
	    cmocka_unit_test(pin_is_the_spki_sha256),
	    cmocka_unit_test(node_id_is_the_certificates_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
