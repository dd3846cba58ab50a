/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals of the QUIC transport, shared by lib/quic_*.c only:
 *
 *   quic_udp.c     the socket: bind, recvmmsg with GRO, sendmsg with GSO,
 *                  address parsing and printing.
 *   quic_ep.c      the endpoint: datagram routing by connection ID, new
 *                  connections, Retry, stateless reset, version
 *                  negotiation, resumption state, flush scheduling.
 *   quic_conn.c    one connection: creation, reading, writing (GSO
 *                  batches, pacing), timers, close and draining.
 *   quic_events.c  the ngtcp2 callbacks and what the app is told.
 *   quic_stream.c  streams: write queues that reference the caller's
 *                  buffers until acknowledged, receive credit.
 *
 * Everything runs on the endpoint's loop thread.
 */
#ifndef AGS_QUIC_INT_H
#define AGS_QUIC_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <uv.h>

#include "quic.h"

/* Length of the connection IDs we issue. */
#define AGS_QUIC_SCIDLEN 16
/* Bytes of one GSO batch: what one sendmsg may carry (below the 65507-byte UDP limit). */
#define AGS_QUIC_TXBUF 65000
/* Most segments in one GSO batch (the kernel's UDP_MAX_SEGMENTS). */
#define AGS_QUIC_GSO_MAX_SEGS 64
/* Datagrams per recvmmsg call, and the size of each receive buffer (room for a GRO batch). */
#define AGS_QUIC_RX_MSGS  16
#define AGS_QUIC_RX_BUFSZ 65536
/* Largest datagram we build outside a connection (Retry, reset, close, VN). */
#define AGS_QUIC_STATELESS_MAX 1500
/* Largest stored resumption ticket and transport parameters. */
#define AGS_QUIC_TICKET_MAX (32 * 1024)
#define AGS_QUIC_TP_MAX     1024
/* Peers whose resumption state an endpoint keeps. */
#define AGS_QUIC_TICKETS_MAX 256

/* A socket address with its length. */
typedef struct ags_quic_addr {
	struct sockaddr_storage ss;
	socklen_t len;
} ags_quic_addr;

/* One write: a caller's buffer, referenced until the peer acknowledged it. */
typedef struct ags_quic_chunk {
	struct ags_quic_chunk *next;
	const uint8_t *data;
	size_t len;
	uint64_t end; /* stream offset just past this chunk */
	ags_quic_done_cb done;
	void *done_ud;
} ags_quic_chunk;

/* One bidirectional stream. */
typedef struct ags_quic_stream {
	struct ags_quic_stream *next, *prev;   /* conn->streams */
	struct ags_quic_stream *snext, *sprev; /* conn->sendq (has bytes or FIN to hand over) */
	int64_t id;
	ags_quic_chunk *head, *tail; /* written, not yet acknowledged */
	ags_quic_chunk *send;        /* first chunk with bytes not yet given to ngtcp2 */
	size_t send_off;             /* bytes of *send already given */
	uint64_t written;            /* stream offset after the last write */
	uint64_t acked;              /* contiguous bytes acknowledged */
	unsigned fin_queued : 1;     /* the app finished its side */
	unsigned fin_sent : 1;       /* ngtcp2 has the FIN */
	unsigned blocked : 1;        /* peer's flow control blocks it */
	unsigned in_sendq : 1;
} ags_quic_stream;

/*
 * Stream events that arrive before the peer is reported (server: 0-RTT data,
 * the identity is only verified with the client's Finished; client: data
 * before HANDSHAKE_DONE), held and replayed in order after on_connected.
 * Bounded by the connection's flow-control window, not extended meanwhile.
 */
enum { AGS_QUIC_EARLY_OPEN, AGS_QUIC_EARLY_DATA, AGS_QUIC_EARLY_CLOSE };

typedef struct ags_quic_early {
	struct ags_quic_early *next;
	int64_t sid;
	int kind; /* AGS_QUIC_EARLY_OPEN, _DATA or _CLOSE */
	int fin;
	uint64_t code; /* _CLOSE: the stream's application error code */
	size_t len;
	uint8_t data[];
} ags_quic_early;

/* Connection states, in order. */
enum {
	AGS_QC_ACTIVE = 0, /* handshaking or open */
	AGS_QC_CLOSING,    /* we sent CONNECTION_CLOSE; resend it on input until 3 PTO pass */
	AGS_QC_DRAINING,   /* the peer closed; stay silent until 3 PTO pass */
	AGS_QC_DEAD,       /* to be freed from its timer */
};

struct ags_quic_conn {
	ags_quic_ep *ep;
	struct ags_quic_conn *next, *prev; /* ep->conns */
	struct ags_quic_conn *dnext;       /* ep->dirty */
	ngtcp2_conn *qc;
	ngtcp2_crypto_conn_ref ref;
	gnutls_session_t tls;
	uv_timer_t timer;
	ags_quic_addr remote;
	ngtcp2_cid odcid;   /* server: the client's first DCID, kept in the CID map */
	ngtcp2_ccerr ccerr; /* what we send when we close */
	int state;
	unsigned is_server : 1;
	unsigned linked : 1; /* on ep->conns */
	unsigned dirty : 1;
	unsigned in_soon : 1;
	unsigned app_known : 1; /* the app has been given this handle */
	unsigned connected_reported : 1;
	unsigned closed_reported : 1;
	unsigned ccerr_set : 1;
	unsigned close_requested : 1; /* ags_quic_conn_close() was called */
	unsigned want_writable : 1;
	unsigned handshake_done : 1;
	unsigned early_attempted : 1;
	unsigned early_accepted : 1;
	unsigned early_rejected : 1;
	unsigned resumed : 1;
	unsigned ticket_saved : 1;
	unsigned got_reset : 1;  /* a stateless reset ended it */
	unsigned tx_blocked : 1; /* a batch waits for the socket to be writable */
	unsigned in_hs : 1;      /* server: counted in the endpoint's handshake budget */
	unsigned quiet : 1;      /* server: a half-open handshake that ends unreported */
	unsigned hs_timeout : 1; /* client: the handshake timed out (on_handshake_timeout) */
	struct ags_quic_conn *hnext, *hprev; /* ep->hs_head..hs_tail, newest first */
	ags_quic_stream *streams;
	ags_quic_stream *cache; /* last looked-up stream */
	ags_quic_stream *sendq_head, *sendq_tail;
	ags_quic_early *early, *early_tail;
	uint64_t unacked;
	uint64_t bytes_in, bytes_out;
	/* When a packet of the peer was last read (ags_mono_ns; the connection's start
	 * before that): the connection ends idle_timeout_ms after it, whatever 3 PTO is. */
	uint64_t last_rx_ns;
	uint8_t *txbuf;                /* AGS_QUIC_TXBUF bytes */
	size_t tx_off, tx_len, tx_gso; /* a blocked batch: txbuf[tx_off, tx_len) */
	ags_quic_addr tx_to;
	uint8_t *closebuf; /* our CONNECTION_CLOSE packet, during the closing period */
	size_t closelen;
	uint64_t close_rx; /* datagrams received while closing */
	uint64_t close_code;
	/* After ags_quic_conn_close(): stream data written before it goes out first,
	 * until this time (ns, monotonic) at most; then CONNECTION_CLOSE. */
	uint64_t close_by_ns;
	char close_reason[AGS_QUIC_REASON_MAX];
	char refusal[AGS_QUIC_REASON_MAX];
	char peer_id[AGS_QUIC_PEER_ID_MAX];
	char expected_id[AGS_QUIC_PEER_ID_MAX];
	char peer_addr[AGS_QUIC_ADDR_MAX];
	void *ud;
};

/* One entry of the connection ID map. */
typedef struct ags_quic_cident {
	struct ags_quic_cident *next;
	ngtcp2_cid cid;
	ags_quic_conn *c;
} ags_quic_cident;

/* Resumption state kept per peer id. */
typedef struct ags_quic_ticket {
	struct ags_quic_ticket *next;
	char peer_id[AGS_QUIC_PEER_ID_MAX];
	uint8_t *ticket;
	size_t ticket_len;
	uint8_t tp[AGS_QUIC_TP_MAX];
	size_t tp_len;
	uint64_t stamp; /* for evicting the oldest */
} ags_quic_ticket;

struct ags_quic_ep {
	uv_loop_t *loop;
	ags_quic_config cfg;
	ags_quic_callbacks cbs;
	int fd;
	uint64_t rx_batches; /* receive calls that returned datagrams (ags_quic_ep_activity) */
	ags_quic_addr local;
	uint16_t port;
	int dual_stack; /* IPv6 socket that also serves IPv4 (v4-mapped addresses) */
	int gso, gro;
	uv_poll_t poll;
	int poll_events;
	uv_prepare_t prepare;
	uv_check_t check;
	int tfd; /* timerfd for expiries under 1 ms */
	uv_poll_t tpoll;
	uint64_t soon_at; /* when tfd is armed for (ngtcp2 time), UINT64_MAX: not */
	int handles_open; /* libuv handles not yet closed, conn timers included */
	int deleting;
	uint8_t secret[32]; /* static secret: Retry tokens, stateless reset tokens */
	uint64_t hkey;      /* CID map hash key */
	ags_quic_cident **cids;
	size_t ncap, ncids;
	ags_quic_conn *conns;
	size_t nconns;
	ags_quic_conn *dirty;
	size_t nsoon; /* connections flagged in_soon */
	ags_quic_ticket *tickets;
	size_t ntickets;
	uint64_t ticket_stamp;
	uint8_t *rxbuf; /* AGS_QUIC_RX_MSGS * AGS_QUIC_RX_BUFSZ */
	unsigned reset_tokens;
	uint64_t reset_refill_ms;
	unsigned refused_n; /* on_refused(NULL) reports in the current second */
	uint64_t refused_ms;
	ags_quic_conn *hs_head, *hs_tail; /* incoming handshakes in progress, newest first */
	size_t nhs;
	ags_quic_ep_stats stats;
	uint64_t rng;
};

/* ---- quic_udp.c ---- */

/*
 * Parses a numeric IPv4/IPv6 address `host` (NULL: "0.0.0.0") and `port`.
 * Errors: AGS_ERR_CONFIG (not a numeric address).
 */
int ags_quic_addr_parse(const char *host, uint16_t port, ags_quic_addr *out);

/*
 * Resolves host:port for a socket of `family` (dual: an IPv6 socket that
 * takes IPv4 as v4-mapped). Names go through getaddrinfo (blocking).
 * Errors: AGS_ERR_NOT_FOUND, AGS_ERR_INVALID.
 */
int ags_quic_addr_resolve(const char *host, uint16_t port, int family, int dual, ags_quic_addr *out,
                          ags_error *err);

/* Writes "a.b.c.d:port" or "[v6]:port" (v4-mapped shown as IPv4) into buf. */
void ags_quic_addr_text(const ags_quic_addr *a, char *buf, size_t cap);

/*
 * Makes the endpoint's non-blocking UDP socket bound to `local` (updated
 * with the bound port): dual stack for "::", don't-fragment for PMTUD,
 * large buffers, GRO when available (*gro set).
 * Errors: AGS_ERR_IO.
 */
int ags_quic_udp_open(ags_quic_addr *local, int *fd, int *dual, int *gro, ags_error *err);

/*
 * Sends `len` bytes made of segments of `seg` bytes (the last may be
 * shorter) to `to`, with one GSO sendmsg when ep->gso, else one datagram
 * each. Turns ep->gso off and falls back when the kernel refuses GSO.
 * *sent gets the bytes handed to the kernel (whole segments).
 * Returns 0, AGS_ERR_AGAIN (socket full: retry the rest when writable) or
 * AGS_ERR_IO (datagrams dropped; QUIC recovers as from loss).
 */
int ags_quic_udp_send(ags_quic_ep *ep, const ags_quic_addr *to, const uint8_t *data, size_t len,
                      size_t seg, size_t *sent);

/*
 * Reads what is waiting on the socket (bounded per call) and hands each
 * datagram (GRO batches split) to ags_quic_ep_on_datagram().
 */
void ags_quic_udp_read(ags_quic_ep *ep);

/* ---- quic_ep.c ---- */

/* Routes one received datagram. */
void ags_quic_ep_on_datagram(ags_quic_ep *ep, const ags_quic_addr *from, const uint8_t *data,
                             size_t len);

/*
 * Adds/removes a connection ID -> connection route. Add errors: AGS_ERR_NOMEM,
 * AGS_ERR_EXISTS (the ID routes to another connection; it is left alone).
 */
int ags_quic_ep_cid_add(ags_quic_ep *ep, const ngtcp2_cid *cid, ags_quic_conn *c);
void ags_quic_ep_cid_remove(ags_quic_ep *ep, const ngtcp2_cid *cid);

/* Sends what the connections marked dirty have queued (the end of every loop turn). */
void ags_quic_ep_flush(ags_quic_ep *ep);

/* Queues c for a flush (sending, pending closes) after the current loop phase. */
void ags_quic_ep_mark_dirty(ags_quic_ep *ep, ags_quic_conn *c);

/*
 * Flags c as due at `at` (ngtcp2 time), under 1 ms away: served from the
 * endpoint's timerfd, as libuv timers only have millisecond resolution.
 */
void ags_quic_ep_soon_add(ags_quic_ep *ep, ags_quic_conn *c, uint64_t at);
void ags_quic_ep_soon_remove(ags_quic_ep *ep, ags_quic_conn *c);

/* Asks for (or stops asking for) writability of the socket. */
void ags_quic_ep_want_write(ags_quic_ep *ep, int on);

/* The resumption entry for a peer id, or NULL. */
ags_quic_ticket *ags_quic_ep_ticket_find(ags_quic_ep *ep, const char *peer_id);

/* The entry for a peer id, made (evicting the oldest) if absent; NULL when out of memory. */
ags_quic_ticket *ags_quic_ep_ticket_get(ags_quic_ep *ep, const char *peer_id);

/* A connection's timer has closed and its memory is freed (the endpoint may now go). */
void ags_quic_ep_conn_freed(ags_quic_ep *ep);

/* Takes c out of the handshake budget (its handshake completed or it ended). */
void ags_quic_ep_hs_remove(ags_quic_ep *ep, ags_quic_conn *c);

/* Established connections now (linked, not in the handshake budget). */
size_t ags_quic_ep_established(const ags_quic_ep *ep);

/* ---- quic_conn.c ---- */

/* Ends a half-open incoming connection at once, without a word to anyone (budget full). */
void ags_quic_conn_evict(ags_quic_conn *c);

/*
 * Makes a server connection for a first Initial packet `hd` from `from`
 * (`ocid`: the original DCID when a Retry token was validated, else NULL;
 * `token`/`token_type` as validated) and feeds it the datagram. On success
 * *out is the connection (it may have ended already: check its state).
 * Errors: AGS_ERR_NOMEM, AGS_ERR_TLS, AGS_ERR_QUIC.
 */
int ags_quic_conn_accept(ags_quic_ep *ep, const ags_quic_addr *from, const ngtcp2_pkt_hd *hd,
                         const ngtcp2_cid *ocid, ngtcp2_token_type token_type, const uint8_t *data,
                         size_t len, ags_quic_conn **out);

/* Feeds one datagram to a connection. */
void ags_quic_conn_recv(ags_quic_conn *c, const ags_quic_addr *from, const uint8_t *data,
                        size_t len);

/* Sends what the connection has to send and applies pending closes, then re-arms its timer. */
void ags_quic_conn_flush(ags_quic_conn *c);

/* Serves the connection's expiry (its timer or the endpoint's timerfd). */
void ags_quic_conn_expire(ags_quic_conn *c);
/* When the connection next needs its timer: ngtcp2's expiry, or the idle deadline if
 * sooner (ngtcp2 stretches the idle timeout to 3 PTO; this transport does not). */
uint64_t ags_quic_conn_expiry(ags_quic_conn *c);

/* Resends a blocked batch once the socket is writable. */
void ags_quic_conn_on_writable(ags_quic_conn *c);

/*
 * Shuts the connection down for ags_quic_ep_del(): sends CONNECTION_CLOSE,
 * reports the end to the app and frees it (its timer's close callback
 * releases the memory).
 */
void ags_quic_conn_shutdown(ags_quic_conn *c);

/* ---- quic_events.c ---- */

/* Sets the ngtcp2 callbacks of a server (server != 0) or client connection. */
void ags_quic_fill_callbacks(ngtcp2_callbacks *cb, int server);

/* Sets the settings and transport parameters every connection of ep uses. */
void ags_quic_fill_settings(const ags_quic_ep *ep, ngtcp2_settings *s, ngtcp2_transport_params *p);

/*
 * The connection is over for the app: completes its writes, then calls
 * on_refused (never connected, not closed by the app) and on_closed. Once.
 */
void ags_quic_report_end(ags_quic_conn *c, uint64_t code, const char *reason, int by_peer);

/* Frees the held 0-RTT stream events of a server connection. */
void ags_quic_early_free(ags_quic_conn *c);

/* Copies peer-supplied text into dst (NUL-terminated), printable ASCII only. */
void ags_quic_copy_text(char *dst, size_t cap, const uint8_t *src, size_t n);

/* ---- quic_stream.c ---- */

/* The stream `id` of c, or NULL. */
ags_quic_stream *ags_quic_stream_find(ags_quic_conn *c, int64_t id);

/* Makes the state of stream `id` and attaches it to ngtcp2. NULL when out of memory. */
ags_quic_stream *ags_quic_stream_new(ags_quic_conn *c, int64_t id);

/*
 * Ends a stream's state: completes its writes (0 when all acknowledged,
 * else `status`) and frees it. Does not tell ngtcp2 or the app.
 */
void ags_quic_stream_free(ags_quic_conn *c, ags_quic_stream *s, int status);

/* Fills up to `max` vectors with bytes not yet given to ngtcp2; *fin when FIN goes with them. */
size_t ags_quic_stream_pending(ags_quic_stream *s, ngtcp2_vec *v, size_t max, int *fin);

/* Records that ngtcp2 took `n` bytes (and the FIN when `fin`). */
void ags_quic_stream_advance(ags_quic_conn *c, ags_quic_stream *s, size_t n, int fin);

/* Drops bytes not yet given to ngtcp2 (write side shut); they complete as closed. */
void ags_quic_stream_drop_unsent(ags_quic_conn *c, ags_quic_stream *s);

/* Handles an acknowledgement of `n` more contiguous bytes. */
void ags_quic_stream_acked(ags_quic_conn *c, ags_quic_stream *s, uint64_t n);

/* Removes s from the send queue / adds it at the tail. */
void ags_quic_sendq_remove(ags_quic_conn *c, ags_quic_stream *s);
void ags_quic_sendq_add(ags_quic_conn *c, ags_quic_stream *s);

/* Fires on_writable when the app was refused and there is room again. */
void ags_quic_conn_maybe_writable(ags_quic_conn *c);

#endif
