/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small, blocking QUIC client for the conformance checks: ngtcp2 with
 * ngtcp2_crypto_gnutls, one UDP socket per connection, one bidirectional
 * stream (client stream 0) carrying the agentsync frames. Nothing here knows
 * agentsync's frames; it moves bytes and reports how the connection ended.
 *
 * Everything is driven by cq_pump(), which reads, writes and runs timers for
 * at most the time it is given. Every wait is bounded.
 */
#ifndef CONF_QUIC_H
#define CONF_QUIC_H

#include <stddef.h>
#include <stdint.h>

/* A TLS session saved after a connection, to resume the next one (0-RTT). */
struct cq_ticket {
	unsigned char *data; /* gnutls_session_get_data2() */
	size_t len;
	uint8_t tp[256]; /* the server's transport parameters, for 0-RTT */
	size_t tp_len;
};

struct cq_opts {
	int port;                       /* UDP port on 127.0.0.1 */
	const char *cert, *key, *ca;    /* PEM files; cert NULL: no client certificate */
	const char *alpn;               /* NULL: "agentsync/1"; "": offer none */
	const char *sni;                /* server name to send; NULL: none */
	const struct cq_ticket *resume; /* resume this session and send early data */
	/* Test hook: the client's TLS clock, in whole seconds while a ticket is received. */
	int ticket_time_in_seconds;
};

/* How a connection ended, as far as this side knows. */
struct cq_end {
	int closed;       /* 1 once the connection is over */
	int by_peer;      /* the peer sent CONNECTION_CLOSE */
	int app;          /* application close (else transport / TLS) */
	uint64_t code;    /* the error code (TLS alerts are 0x100 + alert) */
	char reason[256]; /* reason phrase, printable */
	int timed_out;    /* idle timeout, no close received */
	int local_tls;    /* our TLS refused the peer (alert in `code`) */
};

struct cq_conn;

/*
 * Opens a connection to 127.0.0.1:o->port and starts the handshake. With
 * o->resume, stream 0 may be written at once (0-RTT). Returns NULL and a
 * sentence in err on failure.
 */
struct cq_conn *cq_connect(const struct cq_opts *o, char *err, size_t errlen);

/* Runs the connection for at most `ms` milliseconds, or until `until(c)` is true. */
void cq_pump(struct cq_conn *c, int ms, int (*until)(struct cq_conn *c));

/* Waits (at most ms) for the handshake to be confirmed; 1 if it was, 0 if not. */
int cq_wait_connected(struct cq_conn *c, int ms);

/* Queues bytes on stream 0 (opening it on first use); they are copied. 0 or -1. */
int cq_send(struct cq_conn *c, const void *data, size_t len);

/* Opens another bidirectional stream and writes `len` bytes on it; its id, or -1. */
int64_t cq_send_other_stream(struct cq_conn *c, const void *data, size_t len);

/* Whether the peer reset or stopped stream `sid` (and its code). */
int cq_stream_reset(struct cq_conn *c, int64_t sid, uint64_t *code);

/* Bytes received on stream 0 and not yet consumed (pointer valid until the next pump). */
const uint8_t *cq_data(struct cq_conn *c, size_t *len);

/* Drops the first n received bytes. */
void cq_consume(struct cq_conn *c, size_t n);

/* How the connection ended (closed == 0 while it is open). */
const struct cq_end *cq_end(struct cq_conn *c);

/* After the handshake: whether it resumed a session and whether early data was accepted. */
int cq_resumed(struct cq_conn *c);
int cq_early_accepted(struct cq_conn *c);

/* The GnuTLS session (gnutls_session_t). */
void *cq_tls(struct cq_conn *c);

/* The server's transport parameters (after the handshake). */
const void *cq_remote_params(struct cq_conn *c); /* const ngtcp2_transport_params * */

/* Copies the session ticket received (if any) into t; 1 when there was one. */
int cq_save_ticket(struct cq_conn *c, struct cq_ticket *t);
void cq_ticket_free(struct cq_ticket *t);

/* Closes with an application code (sends CONNECTION_CLOSE once) and frees everything. */
void cq_close(struct cq_conn *c, uint64_t app_code);

#endif
