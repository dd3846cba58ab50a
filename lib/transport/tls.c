/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS 1.3 for QUIC with GnuTLS and ngtcp2_crypto_gnutls: credentials,
 * session setup, peer checks, resumption and 0-RTT anti-replay (the sessions
 * themselves are made in tls_session.c).
 *
 * Where each check happens during a handshake:
 *   - Server, ClientHello received (handshake hook, PRE): the client must
 *     offer ALPN agentsync/1; otherwise the handshake is refused with the
 *     reason "no ALPN offered" or "ALPN '<x>' not supported" (GnuTLS itself
 *     would accept a ClientHello that has no ALPN extension at all).
 *   - Both sides, after the peer's CertificateVerify (the session's verify
 *     function): chain to the CA, identity, allow-list, pins.
 *   - Both sides, peer's Finished received (handshake hook, POST): ALPN
 *     agentsync/1 was selected, and the peer checks have run. On a resumed
 *     handshake GnuTLS skips the verify function, so the checks run here:
 *     the server on the client certificate stored in the ticket, the client
 *     on the peer id and pin saved with the ticket (see ticket_unwrap).
 * A refusal records its reason in the session's private state (reached with
 * gnutls_db_get_ptr, because gnutls_session_get_ptr belongs to
 * ngtcp2_crypto_gnutls) and makes the hook or verify function fail, which
 * aborts the handshake with a TLS alert.
 *
 * Key log: GnuTLS's default per-session key log function writes to the file
 * named by SSLKEYLOGFILE. In GnuTLS 3.7 (lib/kx.c) it reads the variable
 * lazily, through gnutls_once, the first time that default function is
 * called, not at library init. Every session made here replaces that
 * function with our own (gnutls_session_set_keylog_function, right after
 * gnutls_init) before any secret exists, so the variable is never read and
 * no file is opened unless cfg->keylog_file asks for one. No unsetenv (which
 * is not thread-safe) is needed.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include "agentsync/certs.h"
#include "error.h"
#include "file.h"
#include "tls.h"
#include "tls_int.h"

/* Largest PEM file read (certificate chain, key, CA bundle). */
#define PEM_MAX (4u * 1024u * 1024u)

/*
 * TLS 1.3 only, without middlebox compatibility mode (QUIC forbids it), with
 * the AEADs and groups QUIC implementations use.
 */
static const char PRIORITY[] =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"
    "+CHACHA20-POLY1305:+AES-128-CCM:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:"
    "+GROUP-SECP384R1:+GROUP-SECP521R1:%DISABLE_TLS13_COMPAT_MODE";

int ags_tls_err(ags_error *err, const char *field, const char *what, int grv)
{
	return ags_error_set(err, AGS_ERR_TLS, field, "%s: %s", what, gnutls_strerror(grv));
}

static char *dup_str(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void free_strv(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

int ags_tls_read_pem(const char *path, size_t max, const char *field, gnutls_datum_t *out,
                     ags_error *err)
{
	char *buf = NULL;
	size_t len = 0;
	int rv = ags_file_read_setting(path, max, field, AGS_ERR_IO, &buf, &len, err);
	if (rv)
		return rv;
	if (len == 0) {
		free(buf);
		return ags_error_set(err, AGS_ERR_IO, field, "\"%.120s\" is empty", path);
	}
	out->data = (unsigned char *)buf;
	out->size = (unsigned)len;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Names and keys in certificates                                         */
/* ---------------------------------------------------------------------- */

struct cert_names {
	char cn[ID_MAX + 1]; /* "" when absent */
	char dns[SAN_MAX][ID_MAX + 1];
	size_t n_dns;
};

/* Reads the CN and the DNS SANs of crt. Values with a NUL inside or too long are skipped. */
static void cert_names_get(gnutls_x509_crt_t crt, struct cert_names *nm)
{
	memset(nm, 0, sizeof(*nm));
	size_t sz = sizeof(nm->cn);
	if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, nm->cn, &sz) !=
	        0 ||
	    strlen(nm->cn) != sz)
		nm->cn[0] = '\0';
	for (unsigned i = 0; i < 1024 && nm->n_dns < SAN_MAX; i++) {
		char *d = nm->dns[nm->n_dns];
		sz = ID_MAX;
		unsigned crit = 0;
		int t = gnutls_x509_crt_get_subject_alt_name(crt, i, d, &sz, &crit);
		if (t == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			break;
		if (t != GNUTLS_SAN_DNSNAME || sz == 0 || sz > ID_MAX)
			continue;
		d[sz] = '\0';
		if (strlen(d) == sz)
			nm->n_dns++;
	}
}

/* The id a certificate names first: its CN, else its first DNS SAN, else "". */
static const char *cert_names_primary(const struct cert_names *nm)
{
	if (nm->cn[0])
		return nm->cn;
	return nm->n_dns ? nm->dns[0] : "";
}

void ags_tls_crt_primary_id(gnutls_x509_crt_t crt, char *out, size_t cap)
{
	struct cert_names nm;
	cert_names_get(crt, &nm);
	snprintf(out, cap, "%s", cert_names_primary(&nm));
}

static int cert_names_has(const struct cert_names *nm, const char *id)
{
	if (!id[0])
		return 0;
	if (strcmp(nm->cn, id) == 0)
		return 1;
	for (size_t i = 0; i < nm->n_dns; i++)
		if (strcmp(nm->dns[i], id) == 0)
			return 1;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Peer checks                                                            */
/* ---------------------------------------------------------------------- */

static void refuse(struct ags_tls_sess *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void refuse(struct ags_tls_sess *st, const char *fmt, ...)
{
	if (st->reason[0])
		return; /* keep the first reason */
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(st->reason, sizeof(st->reason), fmt, ap);
	va_end(ap);
}

/* Copies the peer's unverified leaf certificate id into st->peer_id (or ""). */
static void peer_id_unverified(gnutls_session_t s, struct ags_tls_sess *st)
{
	unsigned n = 0;
	const gnutls_datum_t *peers = gnutls_certificate_get_peers(s, &n);
	gnutls_x509_crt_t crt = NULL;
	st->peer_id[0] = '\0';
	if (!peers || n == 0 || gnutls_x509_crt_init(&crt) != 0)
		return;
	if (gnutls_x509_crt_import(crt, &peers[0], GNUTLS_X509_FMT_DER) == 0) {
		struct cert_names nm;
		cert_names_get(crt, &nm);
		snprintf(st->peer_id, sizeof(st->peer_id), "%s", cert_names_primary(&nm));
		if (ags_certs_crt_pin(crt, st->peer_pin) != 0)
			st->peer_pin[0] = '\0';
	}
	gnutls_x509_crt_deinit(crt);
}

/* Whether `pin` is allowed: always when no pins are configured. */
static int pin_allowed(const ags_tls_ctx *ctx, const char *pin)
{
	if (!ctx->n_pins)
		return 1;
	for (size_t i = 0; i < ctx->n_pins; i++)
		if (strcmp(ctx->pins[i], pin) == 0)
			return 1;
	return 0;
}

/*
 * Client, resumed handshake: GnuTLS reports the server's certificate only
 * once the handshake is over, and the verify function does not run. The
 * server proved it holds the ticket key of the peer whose id and pin were
 * verified when the ticket was issued (and saved with it by
 * ags_tls_session_ticket), so the checks run on those.
 */
static int check_resumed_client(struct ags_tls_sess *st)
{
	ags_tls_ctx *ctx = st->ctx;
	if (ctx->reject_unauthorized) {
		if (st->expected[0] && strcmp(st->expected, st->ticket_id) != 0) {
			refuse(st, "id mismatch: expected '%s', the resumed session is with '%s'",
			       st->expected, st->ticket_id);
			return GNUTLS_E_CERTIFICATE_ERROR;
		}
		if (!pin_allowed(ctx, st->ticket_pin)) {
			refuse(st, "pin mismatch: peer '%s' key sha256 %s is not pinned",
			       st->ticket_id, st->ticket_pin);
			return GNUTLS_E_CERTIFICATE_ERROR;
		}
	}
	snprintf(st->peer_id, sizeof(st->peer_id), "%s", st->ticket_id);
	snprintf(st->peer_pin, sizeof(st->peer_pin), "%s", st->ticket_pin);
	st->checked = 1;
	return 0;
}

/* Describes a failed chain verification in st->reason. */
static void refuse_status(struct ags_tls_sess *st, unsigned status)
{
	gnutls_datum_t txt = {NULL, 0};
	const char *what = "untrusted certificate";
	if (status & GNUTLS_CERT_SIGNER_NOT_FOUND)
		what = "unknown CA";
	else if (status & GNUTLS_CERT_EXPIRED)
		what = "certificate expired";
	else if (status & GNUTLS_CERT_NOT_ACTIVATED)
		what = "certificate not yet valid";
	else if (status & GNUTLS_CERT_PURPOSE_MISMATCH)
		what = "certificate not meant for this use";
	if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &txt, 0) == 0) {
		refuse(st, "%s: %s", what, (const char *)txt.data);
		gnutls_free(txt.data);
	} else {
		refuse(st, "%s", what);
	}
}

/*
 * Runs every check on the peer's certificate and fills st->peer_id. Returns
 * 0, or a negative GnuTLS code after recording the reason.
 */
static int check_peer(gnutls_session_t s, struct ags_tls_sess *st)
{
	ags_tls_ctx *ctx = st->ctx;
	if (!ctx->reject_unauthorized) {
		peer_id_unverified(s, st);
		st->checked = 1;
		return 0;
	}

	unsigned n = 0;
	const gnutls_datum_t *peers = gnutls_certificate_get_peers(s, &n);
	if (!peers || n == 0) {
		if (st->server) {
			refuse(st, "no client certificate");
			return GNUTLS_E_CERTIFICATE_REQUIRED;
		}
		refuse(st, "no server certificate");
		return GNUTLS_E_CERTIFICATE_ERROR;
	}

	/* Chain to the CA, validity dates, and the extended key usage for this side; no hostname:
	 * identity is checked below against node ids. */
	gnutls_typed_vdata_st purpose = {
	    .type = GNUTLS_DT_KEY_PURPOSE_OID,
	    .data =
	        (unsigned char *)(st->server ? GNUTLS_KP_TLS_WWW_CLIENT : GNUTLS_KP_TLS_WWW_SERVER),
	    .size = 0,
	};
	unsigned status = 0;
	int rv = gnutls_certificate_verify_peers(s, &purpose, 1, &status);
	if (rv < 0) {
		refuse(st, "certificate verification failed: %s", gnutls_strerror(rv));
		return GNUTLS_E_CERTIFICATE_ERROR;
	}
	if (status != 0) {
		refuse_status(st, status);
		return GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR;
	}

	gnutls_x509_crt_t crt = NULL;
	if (gnutls_x509_crt_init(&crt) != 0)
		return GNUTLS_E_MEMORY_ERROR;
	rv = gnutls_x509_crt_import(crt, &peers[0], GNUTLS_X509_FMT_DER);
	if (rv != 0) {
		gnutls_x509_crt_deinit(crt);
		refuse(st, "unreadable peer certificate: %s", gnutls_strerror(rv));
		return GNUTLS_E_CERTIFICATE_ERROR;
	}
	struct cert_names nm;
	cert_names_get(crt, &nm);
	const char *primary = cert_names_primary(&nm);
	rv = GNUTLS_E_CERTIFICATE_ERROR;

	if (!primary[0]) {
		refuse(st, "peer certificate names no node id (no CN or DNS SAN)");
		goto out;
	}
	if (!st->server && st->expected[0]) {
		if (!cert_names_has(&nm, st->expected)) {
			refuse(st, "id mismatch: expected '%s', certificate is for '%s'",
			       st->expected, primary);
			goto out;
		}
		primary = st->expected;
	}
	if (st->server && ctx->n_allowed) {
		const char *hit = NULL;
		for (size_t i = 0; i < ctx->n_allowed && !hit; i++)
			if (cert_names_has(&nm, ctx->allowed[i]))
				hit = ctx->allowed[i];
		if (!hit) {
			refuse(st, "peer '%s' not in allow-list", primary);
			goto out;
		}
		primary = hit;
	}
	char pin[65];
	if (ags_certs_crt_pin(crt, pin) != 0) {
		refuse(st, "cannot hash the peer's public key");
		goto out;
	}
	if (!pin_allowed(ctx, pin)) {
		refuse(st, "pin mismatch: peer '%s' key sha256 %s is not pinned", primary, pin);
		goto out;
	}
	snprintf(st->peer_pin, sizeof(st->peer_pin), "%s", pin);
	snprintf(st->peer_id, sizeof(st->peer_id), "%s", primary);
	st->checked = 1;
	rv = 0;
out:
	gnutls_x509_crt_deinit(crt);
	return rv;
}

/* The session's verify function: runs after the peer's CertificateVerify. */
int ags_tls_verify_cb(gnutls_session_t s)
{
	struct ags_tls_sess *st = gnutls_db_get_ptr(s);
	if (!st)
		return -1;
	int rv = check_peer(s, st);
	/* GnuTLS passes codes below -1 through as the handshake error (so the alert fits); -1
	 * becomes GNUTLS_E_CERTIFICATE_ERROR. */
	return rv == 0 ? 0 : (rv < -1 ? rv : -1);
}

struct alpn_scan {
	int present;
	int malformed;
	int ok;
	char first[64]; /* first protocol offered, printable, for the reason */
};

/* gnutls_ext_raw_parse callback: looks at the ALPN extension (16) of a ClientHello. */
static int alpn_ext_cb(void *vctx, unsigned tls_id, const unsigned char *d, unsigned len)
{
	struct alpn_scan *a = vctx;
	if (tls_id != 16)
		return 0;
	a->present = 1;
	if (len < 3 || (unsigned)((d[0] << 8) | d[1]) != len - 2) {
		a->malformed = 1;
		return 0;
	}
	const size_t want = sizeof(AGS_ALPN) - 1;
	for (unsigned p = 2; p < len;) {
		unsigned l = d[p++];
		if (l == 0 || l > len - p) {
			a->malformed = 1;
			break;
		}
		if (l == want && memcmp(d + p, AGS_ALPN, want) == 0)
			a->ok = 1;
		if (!a->first[0]) {
			size_t k = 0;
			for (unsigned i = 0; i < l && k + 1 < sizeof(a->first); i++)
				a->first[k++] =
				    (d[p + i] >= 0x20 && d[p + i] < 0x7f) ? (char)d[p + i] : '?';
			a->first[k] = '\0';
		}
		p += l;
	}
	return 0;
}

/* Server: refuses a ClientHello that does not offer agentsync/1. */
static int check_client_hello(struct ags_tls_sess *st, const gnutls_datum_t *msg)
{
	struct alpn_scan a = {0};
	/* A malformed ClientHello or ALPN extension is left to GnuTLS, which refuses it with a
	 * decode_error alert. */
	if (gnutls_ext_raw_parse(&a, alpn_ext_cb, msg, GNUTLS_EXT_RAW_FLAG_TLS_CLIENT_HELLO) < 0 ||
	    a.malformed)
		return 0;
	if (!a.present) {
		refuse(st, "no ALPN offered");
		return GNUTLS_E_NO_APPLICATION_PROTOCOL;
	}
	if (!a.ok) {
		refuse(st, "ALPN '%s' not supported", a.first);
		return GNUTLS_E_NO_APPLICATION_PROTOCOL;
	}
	return 0;
}

/* Both sides: the peer's Finished arrived. Last chance to refuse. */
static int check_finished(gnutls_session_t s, struct ags_tls_sess *st)
{
	gnutls_datum_t sel = {NULL, 0};
	if (gnutls_alpn_get_selected_protocol(s, &sel) != 0 || sel.size != sizeof(AGS_ALPN) - 1 ||
	    memcmp(sel.data, AGS_ALPN, sel.size) != 0) {
		refuse(st, st->server ? "no ALPN offered" : "server did not select ALPN " AGS_ALPN);
		return GNUTLS_E_NO_APPLICATION_PROTOCOL;
	}
	if (!st->checked) {
		int rv = (!st->server && st->resuming && gnutls_session_is_resumed(s))
		             ? check_resumed_client(st)
		             : check_peer(s, st);
		if (rv != 0)
			return rv;
	}
	st->finished = 1;
	return 0;
}

int ags_tls_hook_cb(gnutls_session_t s, unsigned htype, unsigned when, unsigned incoming,
                    const gnutls_datum_t *msg)
{
	struct ags_tls_sess *st = gnutls_db_get_ptr(s);
	if (!st || !incoming)
		return 0;
	if (htype == GNUTLS_HANDSHAKE_CLIENT_HELLO && when == GNUTLS_HOOK_PRE && st->server)
		return check_client_hello(st, msg);
	if (htype == GNUTLS_HANDSHAKE_FINISHED && when == GNUTLS_HOOK_POST && !st->finished)
		return check_finished(s, st);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Key log                                                                */
/* ---------------------------------------------------------------------- */

/*
 * Replaces GnuTLS's default key log function on every session (see the top
 * of this file): writes NSS key log lines when a key log file is configured,
 * nothing otherwise.
 */
int ags_tls_keylog_cb(gnutls_session_t s, const char *label, const gnutls_datum_t *secret)
{
	struct ags_tls_sess *st = gnutls_db_get_ptr(s);
	if (!st || !st->ctx->keylog || secret->size > 64)
		return 0;
	gnutls_datum_t crand = {NULL, 0};
	gnutls_session_get_random(s, &crand, NULL);
	char rhex[2 * 32 + 1], shex[2 * 64 + 1];
	size_t rsz = sizeof(rhex), ssz = sizeof(shex);
	if (crand.size > 32 || gnutls_hex_encode(&crand, rhex, &rsz) != 0 ||
	    gnutls_hex_encode(secret, shex, &ssz) != 0)
		return 0;
	fprintf(st->ctx->keylog, "%s %s %s\n", label, rhex, shex);
	fflush(st->ctx->keylog);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* 0-RTT anti-replay                                                      */
/* ---------------------------------------------------------------------- */

/*
 * The key GnuTLS hands us ends with the PSK binder, an HMAC, so its last
 * bytes are already uniformly distributed: use them as the hash.
 */
static size_t replay_slot(const unsigned char *key, unsigned len)
{
	uint32_t h = 0;
	for (unsigned i = len - 4; i < len; i++)
		h = (h << 8) | key[i];
	return h & (REPLAY_SLOTS - 1);
}

static void replay_put(struct ags_tls_replay *tab, const unsigned char *key, unsigned len,
                       time_t exp)
{
	size_t i = replay_slot(key, len);
	while (tab[i].exp)
		i = (i + 1) & (REPLAY_SLOTS - 1);
	tab[i].exp = exp;
	tab[i].len = len;
	memcpy(tab[i].key, key, len);
}

/* Rebuilds the table without the entries that expired before `now`. */
static void replay_purge(ags_tls_ctx *ctx, time_t now)
{
	struct ags_tls_replay *fresh = calloc(REPLAY_SLOTS, sizeof(*fresh));
	if (!fresh)
		return;
	size_t used = 0;
	for (size_t i = 0; i < REPLAY_SLOTS; i++) {
		struct ags_tls_replay *e = &ctx->replay[i];
		if (e->exp && e->exp >= now) {
			replay_put(fresh, e->key, e->len, e->exp);
			used++;
		}
	}
	free(ctx->replay);
	ctx->replay = fresh;
	ctx->replay_used = used;
}

/*
 * gnutls_anti_replay add function: records a ClientHello that carries early
 * data; GNUTLS_E_DB_ENTRY_EXISTS for one seen before (GnuTLS then refuses its
 * early data; the handshake goes on in 1-RTT). When the table is full of live
 * entries, early data is refused too, which is safe.
 */
static int replay_add_cb(void *ptr, time_t exp, const gnutls_datum_t *key,
                         const gnutls_datum_t *data)
{
	ags_tls_ctx *ctx = ptr;
	(void)data;
	if (key->size < 4 || key->size > REPLAY_KEY_MAX)
		return GNUTLS_E_DB_ERROR;
	if (!ctx->replay) {
		ctx->replay = calloc(REPLAY_SLOTS, sizeof(*ctx->replay));
		if (!ctx->replay)
			return GNUTLS_E_MEMORY_ERROR;
	}
	if (ctx->replay_used >= REPLAY_LIVE_MAX) {
		replay_purge(ctx, time(NULL));
		if (ctx->replay_used >= REPLAY_LIVE_MAX)
			return GNUTLS_E_DB_ENTRY_EXISTS;
	}
	for (size_t i = replay_slot(key->data, key->size); ctx->replay[i].exp;
	     i = (i + 1) & (REPLAY_SLOTS - 1)) {
		struct ags_tls_replay *e = &ctx->replay[i];
		if (e->len == key->size && memcmp(e->key, key->data, key->size) == 0)
			return GNUTLS_E_DB_ENTRY_EXISTS;
	}
	replay_put(ctx->replay, key->data, key->size, exp > 0 ? exp : 1);
	ctx->replay_used++;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Context                                                                */
/* ---------------------------------------------------------------------- */

static int copy_strv(const char *const *src, size_t n, char ***out)
{
	*out = NULL;
	if (!n)
		return 0;
	char **v = calloc(n, sizeof(*v));
	if (!v)
		return AGS_ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		v[i] = strdup(src[i] ? src[i] : "");
		if (!v[i]) {
			free_strv(v, i);
			return AGS_ERR_NOMEM;
		}
	}
	*out = v;
	return 0;
}

/* Lowercases and checks the pins: each must be 64 hex digits. */
static int normalize_pins(char **pins, size_t n, ags_error *err)
{
	for (size_t i = 0; i < n; i++) {
		char field[32];
		snprintf(field, sizeof(field), "pins[%zu]", i);
		size_t len = strlen(pins[i]);
		for (size_t k = 0; k < len; k++) {
			char c = pins[i][k];
			if (c >= 'A' && c <= 'F')
				pins[i][k] = (char)(c - 'A' + 'a');
			else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
				len = 0; /* not hex: reported below */
		}
		if (len != 64)
			return ags_error_set(err, AGS_ERR_INVALID, field,
			                     "a pin must be 64 hex digits (SHA-256 of the "
			                     "SubjectPublicKeyInfo), got '%.80s'",
			                     pins[i]);
	}
	return 0;
}

/* Loads the CA certificates of `path` as the trust list of cred. */
static int load_ca(gnutls_certificate_credentials_t cred, const char *path, ags_error *err)
{
	gnutls_datum_t pem = {NULL, 0};
	int rv = ags_tls_read_pem(path, PEM_MAX, "ca_file", &pem, err);
	if (rv)
		return rv;
	int n = gnutls_certificate_set_x509_trust_mem(cred, &pem, GNUTLS_X509_FMT_PEM);
	free(pem.data);
	if (n < 0)
		return ags_error_set(err, AGS_ERR_TLS, "ca_file", "%s: not a valid PEM CA: %s",
		                     path, gnutls_strerror(n));
	if (n == 0)
		return ags_error_set(err, AGS_ERR_TLS, "ca_file", "%s: no certificate found", path);
	return 0;
}

/* Loads the node's certificate chain and key into cred, and its own id into ctx. */
static int load_own(ags_tls_ctx *ctx, const ags_tls_config *cfg, ags_error *err)
{
	gnutls_datum_t cpem = {NULL, 0}, kpem = {NULL, 0};
	gnutls_x509_crt_t *list = NULL;
	gnutls_x509_privkey_t key = NULL;
	unsigned char kid1[64], kid2[64];
	size_t kid1_len = sizeof(kid1), kid2_len = sizeof(kid2);
	unsigned n = 0;
	int rv = ags_tls_read_pem(cfg->cert_file, PEM_MAX, "cert_file", &cpem, err);
	if (rv)
		return rv;
	rv = ags_tls_read_pem(cfg->key_file, PEM_MAX, "key_file", &kpem, err);
	if (rv)
		goto out;
	int g = gnutls_x509_crt_list_import2(&list, &n, &cpem, GNUTLS_X509_FMT_PEM,
	                                     GNUTLS_X509_CRT_LIST_FAIL_IF_UNSORTED);
	if (g < 0 || n == 0) {
		rv = ags_error_set(err, AGS_ERR_TLS, "cert_file",
		                   "%s: not a valid PEM certificate: %s", cfg->cert_file,
		                   gnutls_strerror(g < 0 ? g : GNUTLS_E_NO_CERTIFICATE_FOUND));
		goto out;
	}
	g = gnutls_x509_privkey_init(&key);
	if (g == 0)
		g = gnutls_x509_privkey_import2(key, &kpem, GNUTLS_X509_FMT_PEM, NULL, 0);
	if (g < 0) {
		rv = ags_error_set(err, AGS_ERR_TLS, "key_file",
		                   "%s: not a valid PEM private key: %s", cfg->key_file,
		                   gnutls_strerror(g));
		goto out;
	}
	/* GnuTLS 3.7's own key/certificate match check signs a test message with SHA-256, which
	 * Ed25519 cannot do, and then skips the check: compare the public key ids instead. */
	if (gnutls_x509_crt_get_key_id(list[0], GNUTLS_KEYID_USE_SHA256, kid1, &kid1_len) < 0 ||
	    gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, kid2, &kid2_len) < 0 ||
	    kid1_len != kid2_len || memcmp(kid1, kid2, kid1_len) != 0) {
		rv = ags_error_set(err, AGS_ERR_TLS, "key_file",
		                   "%s does not match the certificate in %s", cfg->key_file,
		                   cfg->cert_file);
		goto out;
	}
	g = gnutls_certificate_set_x509_key_mem2(ctx->cred, &cpem, &kpem, GNUTLS_X509_FMT_PEM, NULL,
	                                         0);
	if (g < 0) {
		rv = ags_error_set(err, AGS_ERR_TLS, "key_file", "cannot load %s with %s: %s",
		                   cfg->key_file, cfg->cert_file, gnutls_strerror(g));
		goto out;
	}
	struct cert_names nm;
	cert_names_get(list[0], &nm);
	snprintf(ctx->own_id, sizeof(ctx->own_id), "%s", cert_names_primary(&nm));
	rv = 0;
out:
	if (key)
		gnutls_x509_privkey_deinit(key);
	for (unsigned i = 0; i < n; i++)
		gnutls_x509_crt_deinit(list[i]);
	gnutls_free(list);
	if (kpem.data) {
		gnutls_memset(kpem.data, 0, kpem.size);
		free(kpem.data);
	}
	free(cpem.data);
	return rv;
}

static int open_keylog(ags_tls_ctx *ctx, const char *path, ags_error *err)
{
	char eb[128];
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return ags_error_set(err, AGS_ERR_IO, "keylog_file", "cannot open %s: %s", path,
		                     strerror_r(errno, eb, sizeof(eb)));
	ctx->keylog = fdopen(fd, "a");
	if (!ctx->keylog) {
		close(fd);
		return ags_error_set(err, AGS_ERR_NOMEM, "keylog_file", "cannot open %s", path);
	}
	return 0;
}

int ags_tls_ctx_new(const ags_tls_config *cfg, ags_tls_ctx **out, ags_error *err)
{
	int rv, g;
	if (!cfg || !out)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "cfg and out are required");
	*out = NULL;
	if (!cfg->cert_file || !cfg->key_file)
		return ags_error_set(err, AGS_ERR_INVALID,
		                     cfg->cert_file ? "key_file" : "cert_file",
		                     "a certificate and a key file are required");
	if (cfg->reject_unauthorized && !cfg->ca_file)
		return ags_error_set(err, AGS_ERR_INVALID, "ca_file",
		                     "a CA file is required to verify peers");
	if (cfg->client_alpn && strlen(cfg->client_alpn) > 255)
		return ags_error_set(err, AGS_ERR_INVALID, "client_alpn", "longer than 255 bytes");

	ags_tls_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return ags_error_set(err, AGS_ERR_NOMEM, NULL, "out of memory");
	ctx->reject_unauthorized = cfg->reject_unauthorized;
	rv = AGS_ERR_NOMEM;
	if (copy_strv(cfg->allowed_ids, cfg->allowed_ids ? cfg->n_allowed_ids : 0, &ctx->allowed) ||
	    copy_strv(cfg->pins, cfg->pins ? cfg->n_pins : 0, &ctx->pins)) {
		ags_error_set(err, rv, NULL, "out of memory");
		goto fail;
	}
	ctx->n_allowed = cfg->allowed_ids ? cfg->n_allowed_ids : 0;
	ctx->n_pins = cfg->pins ? cfg->n_pins : 0;
	if (cfg->client_alpn && !(ctx->client_alpn = dup_str(cfg->client_alpn))) {
		ags_error_set(err, rv, NULL, "out of memory");
		goto fail;
	}
	rv = normalize_pins(ctx->pins, ctx->n_pins, err);
	if (rv)
		goto fail;

	g = gnutls_certificate_allocate_credentials(&ctx->cred);
	if (g < 0) {
		rv = ags_tls_err(err, NULL, "gnutls_certificate_allocate_credentials", g);
		goto fail;
	}
	rv = load_own(ctx, cfg, err);
	if (rv)
		goto fail;
	if (cfg->ca_file) {
		rv = load_ca(ctx->cred, cfg->ca_file, err);
		if (rv)
			goto fail;
	}
	if (cfg->client_no_cert) {
		g = gnutls_certificate_allocate_credentials(&ctx->nocert);
		if (g < 0) {
			rv = ags_tls_err(err, NULL, "gnutls_certificate_allocate_credentials", g);
			goto fail;
		}
		if (cfg->ca_file && (rv = load_ca(ctx->nocert, cfg->ca_file, err)) != 0)
			goto fail;
	}

	const char *epos = NULL;
	g = gnutls_priority_init(&ctx->prio, PRIORITY, &epos);
	if (g < 0) {
		rv = ags_tls_err(err, NULL, "gnutls_priority_init", g);
		goto fail;
	}
	g = gnutls_session_ticket_key_generate(&ctx->ticket_key);
	if (g < 0) {
		rv = ags_tls_err(err, NULL, "gnutls_session_ticket_key_generate", g);
		goto fail;
	}
	g = gnutls_anti_replay_init(&ctx->anti_replay);
	if (g < 0) {
		rv = ags_tls_err(err, NULL, "gnutls_anti_replay_init", g);
		goto fail;
	}
	gnutls_anti_replay_set_add_function(ctx->anti_replay, replay_add_cb);
	gnutls_anti_replay_set_ptr(ctx->anti_replay, ctx);

	if (cfg->keylog_file && cfg->keylog_file[0]) {
		rv = open_keylog(ctx, cfg->keylog_file, err);
		if (rv)
			goto fail;
	}
	*out = ctx;
	return 0;
fail:
	ags_tls_ctx_del(ctx);
	return rv;
}

void ags_tls_ctx_del(ags_tls_ctx *ctx)
{
	if (!ctx)
		return;
	if (ctx->keylog)
		fclose(ctx->keylog);
	if (ctx->anti_replay)
		gnutls_anti_replay_deinit(ctx->anti_replay);
	if (ctx->ticket_key.data) {
		gnutls_memset(ctx->ticket_key.data, 0, ctx->ticket_key.size);
		gnutls_free(ctx->ticket_key.data);
	}
	if (ctx->prio)
		gnutls_priority_deinit(ctx->prio);
	if (ctx->nocert)
		gnutls_certificate_free_credentials(ctx->nocert);
	if (ctx->cred)
		gnutls_certificate_free_credentials(ctx->cred);
	free(ctx->replay);
	free_strv(ctx->allowed, ctx->n_allowed);
	free_strv(ctx->pins, ctx->n_pins);
	free(ctx->client_alpn);
	free(ctx);
}

const char *ags_tls_ctx_own_id(const ags_tls_ctx *ctx)
{
	return ctx ? ctx->own_id : "";
}
