/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS 1.3 for QUIC (GnuTLS + ngtcp2_crypto_gnutls): credentials, session
 * setup, peer identity checks, session resumption.
 *
 * A ags_tls_ctx holds what is shared by every connection of a node: its
 * certificate and key, the CA it trusts, the policy (mutual TLS, allow-list,
 * pins), the session-ticket key and the anti-replay state for 0-RTT.
 * Sessions are made per QUIC connection by the transport (lib/transport/quic_conn.c).
 *
 * Identity: a node's id is the CN or a DNS SAN of its certificate. With
 * reject_unauthorized (the default), every peer's certificate must chain to
 * the CA, and on the client side must name the expected peer id; on the server
 * side the client must present a certificate (mutual TLS) and, when an
 * allow-list is set, its id must be in it. With reject_unauthorized off,
 * nothing is verified (encrypted but unauthenticated) and the peer id is taken
 * from the certificate unverified, or "" when there is none.
 *
 * Not thread-safe by itself: used from the node's loop thread.
 */
#ifndef AGS_TLS_H
#define AGS_TLS_H

#include <stddef.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include "agentsync/agentsync.h"

/* The only ALPN protocol agentsync speaks. */
#define AGS_ALPN "agentsync/1"

typedef struct ags_tls_config {
	const char *cert_file;   /* PEM certificate chain of this node */
	const char *key_file;    /* PEM private key of this node */
	const char *ca_file;     /* PEM CA certificate(s) peers must chain to */
	int reject_unauthorized; /* 1 (default): verify peers; 0: encrypt only */
	/* Peer ids allowed to connect (server side), or NULL/0 for any id the CA vouches for. */
	const char *const *allowed_ids;
	size_t n_allowed_ids;
	/* Optional pins: lowercase hex SHA-256 of a peer's SubjectPublicKeyInfo; when set, a
	 * peer's key must match one of them (in addition to the CA check). */
	const char *const *pins;
	size_t n_pins;
	/* Write TLS secrets here in NSS key log format, or NULL (SSLKEYLOGFILE is ignored). */
	const char *keylog_file;
	/* ALPN to offer as a client; NULL means AGS_ALPN. For tests of refusal only. "" offers
	 * none. */
	const char *client_alpn;
	/* Client side: present no certificate (tests of refusal only). */
	int client_no_cert;
} ags_tls_config;

typedef struct ags_tls_ctx ags_tls_ctx;

/*
 * Loads the certificate, key and CA, generates the session-ticket key and
 * the anti-replay state. The strings in cfg are copied.
 * Errors: AGS_ERR_INVALID, AGS_ERR_NOMEM, AGS_ERR_IO (a file cannot be read;
 * err names it), AGS_ERR_TLS (a file is not valid PEM, the key does not match
 * the certificate; err has GnuTLS's message).
 */
int ags_tls_ctx_new(const ags_tls_config *cfg, ags_tls_ctx **out, ags_error *err);

/* Frees the context. Sessions made from it must be gone first. NULL is a no-op. */
void ags_tls_ctx_del(ags_tls_ctx *ctx);

/* The id in this node's own certificate (CN, else first DNS SAN). Owned by ctx. */
const char *ags_tls_ctx_own_id(const ags_tls_ctx *ctx);

/*
 * Writes to `out` (cap bytes) the id certificate `crt` names first, as a
 * peer reads it (ags_tls_session_peer_id): its CN, else its first DNS SAN,
 * else "". Cut to cap - 1 bytes.
 */
void ags_tls_crt_primary_id(gnutls_x509_crt_t crt, char *out, size_t cap);

/*
 * Makes a server-side session for one QUIC connection: TLS 1.3 only,
 * ALPN agentsync/1 mandatory (a ClientHello with another ALPN or none is
 * refused), client certificate required when reject_unauthorized, session
 * tickets sent explicitly at handshake completion, 0-RTT accepted with
 * anti-replay. `ref` must outlive the session; gnutls_session_get_ptr()
 * returns it (as ngtcp2_crypto_gnutls needs).
 * Errors: AGS_ERR_NOMEM, AGS_ERR_TLS.
 */
int ags_tls_session_server(ags_tls_ctx *ctx, ngtcp2_crypto_conn_ref *ref, gnutls_session_t *out,
                           ags_error *err);

/*
 * Makes a client-side session that expects the server to be `expected_id`
 * (may be NULL to accept any id the CA vouches for). `ticket` (may be NULL)
 * is session data from ags_tls_session_ticket() of an earlier connection to
 * the same peer: the session is then resumed and 0-RTT may be used.
 * Errors: AGS_ERR_NOMEM, AGS_ERR_TLS.
 */
int ags_tls_session_client(ags_tls_ctx *ctx, ngtcp2_crypto_conn_ref *ref, const char *expected_id,
                           const gnutls_datum_t *ticket, gnutls_session_t *out, ags_error *err);

/*
 * After the handshake: the peer's verified id (copied into buf), or the
 * reason it is refused. The verify callback installed by the session
 * functions already aborts the handshake on failure; this returns the same
 * verdict for logging, plus the id.
 * Errors: AGS_ERR_AUTH with a message naming the reason (no certificate,
 * unknown CA, id mismatch, not in allow-list, pin mismatch, no ALPN).
 */
int ags_tls_session_peer_id(gnutls_session_t s, char *buf, size_t cap, ags_error *err);

/*
 * The reason the last handshake on `s` was refused by our checks, or NULL.
 * Owned by the session; valid until the session is freed.
 */
const char *ags_tls_session_refusal(gnutls_session_t s);

/*
 * Session data for resuming later (malloc'd into *out, free with
 * gnutls_free(out->data)). Errors: AGS_ERR_NOT_FOUND (no ticket yet), AGS_ERR_TLS.
 */
int ags_tls_session_ticket(gnutls_session_t s, gnutls_datum_t *out);

/* Frees a session made by the functions above (and its private state). */
void ags_tls_session_del(gnutls_session_t s);

/*
 * Reads the PEM file `path` (at most max bytes, not empty; ags_file_read) into
 * a malloc'd datum (free out->data with free()). Errors: AGS_ERR_IO naming
 * `field` (may be NULL) and the file, AGS_ERR_NOMEM.
 */
int ags_tls_read_pem(const char *path, size_t max, const char *field, gnutls_datum_t *out,
                     ags_error *err);

/*
 * Writes the pin of crt (as ags_certs_pin, lib/transport/certs.c) to out.
 * Returns 0 or a negative GnuTLS error code.
 */
int ags_certs_crt_pin(gnutls_x509_crt_t crt, char out[65]);

#endif
