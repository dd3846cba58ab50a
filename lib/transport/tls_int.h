/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TLS layer's own structures, shared by tls.c (names in certificates,
 * peer checks, key log, anti-replay, contexts) and tls_session.c (sessions).
 */
#ifndef AGS_TLS_INT_H
#define AGS_TLS_INT_H

#include <stdio.h>
#include <time.h>

#include <gnutls/gnutls.h>

#include "tls.h"

/* Longest node id taken from a certificate (node ids are at most 64 bytes). */
#define ID_MAX 255
/* Most DNS SANs looked at in one certificate. */
#define SAN_MAX 32
/* Anti-replay table: slots (a power of two) and most live entries. */
#define REPLAY_SLOTS    2048u
#define REPLAY_LIVE_MAX (REPLAY_SLOTS / 2u)
/* GnuTLS's anti-replay key: 12 bytes of window start, then a binder of up to 64 bytes. */
#define REPLAY_KEY_MAX 80u

struct ags_tls_replay {
	time_t exp; /* 0: free slot */
	unsigned len;
	unsigned char key[REPLAY_KEY_MAX];
};

struct ags_tls_ctx {
	gnutls_certificate_credentials_t cred;   /* own certificate and key, CA */
	gnutls_certificate_credentials_t nocert; /* CA only, for client_no_cert; else NULL */
	gnutls_priority_t prio;
	gnutls_datum_t ticket_key;
	gnutls_anti_replay_t anti_replay;
	struct ags_tls_replay *replay; /* REPLAY_SLOTS entries, allocated on first 0-RTT */
	size_t replay_used;
	FILE *keylog;
	int reject_unauthorized;
	char **allowed;
	size_t n_allowed;
	char **pins; /* lowercase hex */
	size_t n_pins;
	char *client_alpn; /* NULL: AGS_ALPN */
	char own_id[ID_MAX + 1];
};

/* Private per-session state, reached through gnutls_db_get_ptr(). */
struct ags_tls_sess {
	ags_tls_ctx *ctx;
	int server;
	int checked;               /* the peer checks passed */
	int finished;              /* the peer's Finished was received and every check passed */
	char expected[ID_MAX + 1]; /* client: expected server id, "" for any */
	char peer_id[ID_MAX + 1];
	char peer_pin[65];          /* pin of the peer's certificate, "" when unknown */
	char ticket_id[ID_MAX + 1]; /* client resuming: the peer id the ticket was issued by */
	char ticket_pin[65];        /* and that peer's pin */
	int resuming;               /* client: a ticket was set */
	char reason[256];           /* refusal reason, "" when none */
};

/* AGS_ERR_TLS with `what` and GnuTLS's message for grv. */
int ags_tls_err(ags_error *err, const char *field, const char *what, int grv);
/* A session's hooks (tls.c): the peer checks after CertificateVerify, the
 * ALPN and Finished checks, and the key log. */
int ags_tls_verify_cb(gnutls_session_t s);
int ags_tls_hook_cb(gnutls_session_t s, unsigned htype, unsigned when, unsigned incoming,
                    const gnutls_datum_t *msg);
int ags_tls_keylog_cb(gnutls_session_t s, const char *label, const gnutls_datum_t *secret);

#endif
