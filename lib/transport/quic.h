/* SPDX-License-Identifier: Apache-2.0 */
/*
 * QUIC transport (ngtcp2 + GnuTLS through lib/transport/tls.h) on a libuv loop.
 *
 * One endpoint (ags_quic_ep) owns one non-blocking UDP socket and serves
 * incoming and outgoing connections on it; datagrams are routed to
 * connections by destination connection ID. Connections (ags_quic_conn)
 * carry bidirectional streams.
 *
 * Threading: everything here runs on the thread that runs the uv_loop_t
 * given to ags_quic_ep_new(). No function may be called from another
 * thread, and every callback is called on the loop thread. Callbacks may
 * call any function of this header except ags_quic_ep_del().
 *
 * Lifecycle of a connection, as the application sees it:
 *   - Outgoing: ags_quic_connect() returns the handle at once. Later comes
 *     either on_connected (handshake done, peer verified) or on_refused
 *     (handshake failed, with the reason), and in the end exactly one
 *     on_closed.
 *   - Incoming: the first callback naming the connection is on_connected
 *     (or on_refused when its handshake fails); exactly one on_closed
 *     follows either of them.
 *   - A client reports on_connected once the handshake is confirmed (the
 *     server's HANDSHAKE_DONE), so a server that refuses our certificate
 *     shows as on_refused. Streams may be used as soon as the TLS handshake
 *     completed on our side (and before, with 0-RTT): ags_quic_stream_open()
 *     fails with AGS_ERR_AGAIN until then, and on_writable fires when it
 *     can succeed.
 *   - After on_closed returns, the handle is invalid. Internally the
 *     connection may live on for the QUIC closing/draining period (3 PTO),
 *     invisible to the application.
 *
 * Writing: stream data is NOT copied. A buffer passed to
 * ags_quic_stream_write() must stay valid and unchanged until its done
 * callback runs: with status 0 once the peer acknowledged every byte of it,
 * or with a negative AGS_ERR_* when it never will be (stream reset,
 * connection closed, early data rejected). If ags_quic_stream_write() fails,
 * the done callback is never called (the libuv rule). Memory is bounded by a
 * per-connection cap on bytes written but not yet acknowledged: past it
 * writes fail with AGS_ERR_AGAIN and on_writable fires when room frees up.
 *
 * Reading (backpressure): on_stream_data hands over bytes that are only
 * valid during the call. Flow-control credit is returned to the peer only
 * when the application calls ags_quic_stream_consume() for bytes it has
 * dealt with, so a slow reader holds at most the configured windows of
 * unconsumed data per stream and per connection. Once the application has
 * called ags_quic_conn_close(), on_stream_data is not called again: what
 * the peer still sends (the rest of a refused session) is dropped unread.
 *
 * Idle timeout: a connection that has received nothing from its peer for
 * idle_timeout_ms ends (on_closed with AGS_QUIC_CODE_IDLE_TIMEOUT), even
 * when three probe timeouts are longer (RFC 9000, 10.1 lets them stretch
 * it: a peer that stalled inflates the RTT estimate and kept a dead
 * connection for many idle timeouts). Keep-alives well under it keep a
 * live connection heard.
 *
 * Resumption and 0-RTT: the endpoint remembers, per peer id, the newest TLS
 * session ticket and the server's transport parameters. ags_quic_connect()
 * to a peer id it has a ticket for resumes the session, and the connection
 * then accepts stream opens and writes before the handshake completes
 * (0-RTT; see ags_quic_conn_info.early_data_possible). If the server
 * rejects the early data, every write made in 0-RTT completes with
 * AGS_ERR_AGAIN, the streams are gone, and on_early_data_rejected fires:
 * open new streams and resend after on_connected. Applications that do not
 * care simply open streams after on_connected.
 *
 * Shutting down: call ags_quic_ep_del(), which closes every connection
 * (CONNECTION_CLOSE is sent; on_closed and pending done callbacks are
 * called before it returns) and closes the libuv handles. The endpoint's
 * memory is released from the handles' close callbacks, so the caller must
 * then run the loop (uv_run(loop, UV_RUN_DEFAULT) returns once nothing else
 * is active) before uv_loop_close().
 */
#ifndef AGS_QUIC_H
#define AGS_QUIC_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "agentsync/agentsync.h"
#include "tls.h"

typedef struct ags_quic_ep ags_quic_ep;
typedef struct ags_quic_conn ags_quic_conn;

/* The version of ags_quic_callbacks this header describes. */
#define AGS_QUIC_CALLBACKS_VERSION 1

/* Longest peer id kept by a connection, including the NUL. */
#define AGS_QUIC_PEER_ID_MAX 256
/* Longest reason text passed to or from the transport, including the NUL. */
#define AGS_QUIC_REASON_MAX 256
/* Longest address text ("[v6]:port"), including the NUL. */
#define AGS_QUIC_ADDR_MAX 64

/*
 * Application error code used when the endpoint closes its connections on
 * ags_quic_ep_del() (those not closed with ags_quic_conn_close() before,
 * which keep the code given there): SHUTTING_DOWN, the same number as
 * AGS_APP_SHUTTING_DOWN of docs/PROTOCOL.md.
 */
#define AGS_QUIC_CODE_SHUTDOWN 0x107
/* Error code reported in on_closed when the connection timed out (idle timeout, no close frame). */
#define AGS_QUIC_CODE_IDLE_TIMEOUT UINT64_MAX

/*
 * Called when a write completes: status 0 when every byte was acknowledged,
 * else a negative AGS_ERR_* (AGS_ERR_CLOSED: the stream or connection closed
 * first; AGS_ERR_AGAIN: 0-RTT data that the server rejected). The buffer may
 * be freed or reused from here on.
 */
typedef void (*ags_quic_done_cb)(void *done_ud, int status);

/*
 * Events. Zero-initialise, set version to AGS_QUIC_CALLBACKS_VERSION and
 * any callbacks needed (NULL ones are skipped). `user_data` is passed as the
 * first argument of every callback; each connection has its own pointer as
 * well (ags_quic_conn_user_data()).
 */
typedef struct ags_quic_callbacks {
	unsigned version;
	void *user_data;

	/*
	 * The handshake completed and the peer is verified: `peer_id` is its
	 * id from the certificate, `peer_addr` its address ("127.0.0.1:4433",
	 * "[::1]:4433"). Both strings are only valid during the call.
	 * For an incoming connection this is the first time the app sees it.
	 * On a server that accepted 0-RTT data, this fires when that data
	 * first arrives (identity from the resumed session), just before the
	 * first on_stream_open, so the app always learns the peer first.
	 */
	void (*on_connected)(void *user_data, ags_quic_conn *c, const char *peer_id,
	                     const char *peer_addr);

	/*
	 * The handshake failed or was refused. `reason` says why, e.g.
	 * "client id 'x' not in allow-list" (our own TLS checks refused the
	 * peer), "peer refused the handshake: TLS alert bad_certificate:
	 * claimed id not in the certificate" (the peer refused us; the peer's
	 * reason text is included when it sent one), "handshake timed out".
	 * `c` is NULL when no connection was made at all (e.g. max_conns
	 * reached; such reports are rate-limited); then no on_closed follows,
	 * otherwise on_closed follows. Not called for a connection the app
	 * closed itself, nor during ags_quic_ep_del().
	 */
	void (*on_refused)(void *user_data, ags_quic_conn *c, const char *peer_addr,
	                   const char *reason);

	/*
	 * The connection is closed; `c` is invalid once this returns. `code`
	 * and `reason` are the application (or transport) error code and
	 * reason text of the CONNECTION_CLOSE, or AGS_QUIC_CODE_IDLE_TIMEOUT
	 * and "idle timeout"; `by_peer` is non-zero when the peer closed it.
	 * Pending writes have had their done callbacks called before this.
	 */
	void (*on_closed)(void *user_data, ags_quic_conn *c, uint64_t code, const char *reason,
	                  int by_peer);

	/* The peer opened bidirectional stream `stream_id`. */
	void (*on_stream_open)(void *user_data, ags_quic_conn *c, int64_t stream_id);

	/*
	 * Bytes arrived on a stream, in order. `data` is valid only during the
	 * call; `fin` is non-zero when this is the end of the peer's side
	 * (len may then be 0). Call ags_quic_stream_consume() for the bytes
	 * once processed (now or later) to let the peer send more.
	 */
	void (*on_stream_data)(void *user_data, ags_quic_conn *c, int64_t stream_id,
	                       const uint8_t *data, size_t len, int fin);

	/*
	 * The stream is gone: both sides finished, or one side reset it
	 * (`app_code` is the reset's code, 0 after a clean finish). Pending
	 * writes on it have completed. The stream id must not be used again.
	 */
	void (*on_stream_close)(void *user_data, ags_quic_conn *c, int64_t stream_id,
	                        uint64_t app_code);

	/*
	 * A write or stream open failed with AGS_ERR_AGAIN earlier and there
	 * is room again (unacknowledged bytes fell under the cap, or the peer
	 * allowed more streams).
	 */
	void (*on_writable)(void *user_data, ags_quic_conn *c);

	/*
	 * Client only: the server rejected our 0-RTT data. Streams opened
	 * before the handshake are gone and their writes completed with
	 * AGS_ERR_AGAIN; resend after on_connected.
	 */
	void (*on_early_data_rejected)(void *user_data, ags_quic_conn *c);

	/*
	 * A long burst of reads pauses (every 200 us of it) to send what it
	 * produced: the app may first hand over work finished elsewhere
	 * meanwhile (answers to earlier requests). May be NULL.
	 */
	void (*on_read_pause)(void *user_data);

	/*
	 * Client only: the handshake of an outgoing connection did not complete within
	 * handshake_timeout_ms (no answer, or no complete answer). This is not a refusal:
	 * it replaces on_refused for that case (on_refused is called when this is NULL);
	 * on_closed follows. Incoming handshakes that time out are only counted
	 * (ags_quic_ep_get_stats()), never reported one by one.
	 */
	void (*on_handshake_timeout)(void *user_data, ags_quic_conn *c, const char *peer_addr);
} ags_quic_callbacks;

/*
 * Endpoint configuration. Zero-initialise, then set what you need; zero
 * means the default given for each field.
 */
typedef struct ags_quic_config {
	/* Address to bind: numeric IPv4 or IPv6 ("127.0.0.1", "::"); NULL means "0.0.0.0".
	 * The family of the socket follows it; "::" also serves IPv4 (dual stack). */
	const char *host;
	/* UDP port; 0 picks an ephemeral one (see ags_quic_ep_port()). */
	uint16_t port;
	/* TLS context for every connection (required; must outlive the endpoint). */
	ags_tls_ctx *tls;
	/* Non-zero: a server answers every first Initial with a stateless Retry (address
	 * validation). Zero: only under handshake pressure (see retry_threshold). */
	int retry;
	/* Idle timeout in ms of an established connection (default 30000). */
	uint64_t idle_timeout_ms;
	/* How long a handshake may take, in ms, in and out (default 10000; at most the idle
	 * timeout). A dial that gets no answer ends with on_handshake_timeout after it. */
	uint64_t handshake_timeout_ms;
	/*
	 * Handshake budget of a server, separate from max_conns: incoming connections whose
	 * handshake is not complete. At most max_handshakes at once (default 256); when full,
	 * the oldest half-open one is dropped for a new one. At most max_handshakes_per_addr
	 * (default 32) from one IP address (any port); more are refused. With retry_threshold
	 * (default max_handshakes / 4) or more in progress, a first Initial without a valid
	 * Retry token is answered with a Retry, so spoofed sources make no state at all.
	 * Established connections are never dropped for a handshake.
	 */
	size_t max_handshakes;
	size_t max_handshakes_per_addr;
	size_t retry_threshold;
	/* Send PINGs when idle for this long, in ms, to keep connections open (default 0: off). */
	uint64_t keep_alive_ms;
	/* Receive window per stream, in bytes: the most unconsumed data a peer may send
	 * on one stream (default 1 MiB). */
	uint64_t stream_window;
	/* Receive window per connection, over all streams (default 4 MiB). */
	uint64_t conn_window;
	/* Bidirectional streams a peer may have open at once (default 100). */
	uint64_t max_streams;
	/* Bytes written but not yet acknowledged, per connection, past which writes fail with
	 * AGS_ERR_AGAIN (default 8 MiB). A single write larger than this is accepted when nothing
	 * is pending. */
	size_t max_unacked;
	/* Most established connections at once, in and out (default 1024): an incoming
	 * handshake that completes past it is refused; handshakes have their own budget. */
	size_t max_conns;
	/* Non-zero: do not use UDP GSO even where the kernel supports it (for comparisons). */
	int no_gso;
	/* TEST ONLY: drop this many per mille (0-1000) of received datagrams at random. */
	unsigned test_drop_permille;
	/* Optional secret (at least 16 bytes, copied) for Retry and stateless-reset tokens. Give
	 * one that survives restarts (e.g. derived from the node's private key) and peers of a
	 * restarted node learn at once, from a stateless reset, that their connection is gone.
	 * NULL: a random secret per endpoint. */
	const uint8_t *static_secret;
	size_t static_secret_len;
} ags_quic_config;

/* Counters and state of one connection, from ags_quic_conn_info(). */
typedef struct ags_quic_info {
	uint64_t srtt_us;        /* smoothed round-trip time */
	uint64_t min_rtt_us;     /* smallest round-trip time seen */
	uint64_t cwnd;           /* congestion window, bytes */
	uint64_t bytes_in;       /* UDP payload bytes received */
	uint64_t bytes_out;      /* UDP payload bytes sent */
	uint64_t unacked;        /* stream bytes written but not yet acknowledged */
	int is_server;           /* non-zero when the peer connected to us */
	int handshake_done;      /* non-zero once the handshake completed */
	int resumed;             /* the TLS session was resumed from a ticket */
	int early_data_possible; /* client: streams may be opened and written before on_connected */
	int early_data_accepted; /* 0-RTT data was sent (client) / received (server) and accepted */
	uint64_t pto_us;         /* probe timeout (3 of them would stretch ngtcp2's idle timeout) */
} ags_quic_info;

/* Counters of an endpoint's handshake budget, from ags_quic_ep_get_stats(); they only grow
 * but for `handshakes`. */
typedef struct ags_quic_ep_stats {
	uint64_t handshakes;        /* incoming handshakes in progress now */
	uint64_t handshakes_max;    /* the budget (max_handshakes) */
	uint64_t retries_sent;      /* first Initials answered with a Retry */
	uint64_t hs_timed_out;      /* incoming handshakes that did not complete in time */
	uint64_t hs_evicted;        /* half-open handshakes dropped for newer ones (budget full) */
	uint64_t hs_refused_addr;   /* Initials refused: too many handshakes from that address */
	uint64_t refused_max_conns; /* completed handshakes refused: max_conns established */
	uint64_t bad_tokens;        /* Initials with an invalid or expired Retry token */
} ags_quic_ep_stats;

/* Fills `out` with the endpoint's handshake counters. */
void ags_quic_ep_get_stats(const ags_quic_ep *ep, ags_quic_ep_stats *out);

/*
 * Makes an endpoint on `loop`: binds the UDP socket and starts reading.
 * `cfg` and `cbs` are copied (cfg->tls is only referenced).
 * On success *out owns the endpoint (see ags_quic_ep_del()).
 * Errors: AGS_ERR_INVALID (NULL argument, no tls, bad callbacks version),
 * AGS_ERR_CONFIG (host is not a numeric address, test_drop_permille over
 * 1000, static_secret shorter than 16 bytes; err->field names it),
 * AGS_ERR_IO (socket, bind, timerfd or a libuv handle failed; err has the
 * errno or libuv text), AGS_ERR_TLS (no randomness), AGS_ERR_NOMEM.
 * On failure no callback of `cbs` is ever called and *out is not set; when
 * libuv handles had been made already, they are closed and the endpoint's
 * memory is freed by their close callbacks: as after ags_quic_ep_del(), run
 * the loop before uv_loop_close() (which otherwise fails with UV_EBUSY).
 */
int ags_quic_ep_new(uv_loop_t *loop, const ags_quic_config *cfg, const ags_quic_callbacks *cbs,
                    ags_quic_ep **out, ags_error *err);

/*
 * Closes every connection (sending CONNECTION_CLOSE with
 * AGS_QUIC_CODE_SHUTDOWN; their pending done callbacks and on_closed are
 * called before this returns), closes the socket and starts closing the
 * libuv handles. The memory is freed from their close callbacks: run the
 * loop afterwards. Must not be called from a callback of this endpoint.
 * NULL is a no-op.
 */
void ags_quic_ep_del(ags_quic_ep *ep);

/* The bound UDP port (useful after binding port 0). */
uint16_t ags_quic_ep_port(const ags_quic_ep *ep);

/* Grows whenever the endpoint has read datagrams: a loop that polls sees input arrive. */
uint64_t ags_quic_ep_activity(const ags_quic_ep *ep);

/*
 * Makes every connection started or accepted from now on use `tls` (new
 * certificate, key, CA or policy: seed "rotate keys"). Connections already
 * made keep the context they were made with, so the caller must keep the old
 * context alive until the endpoint is freed.
 * Errors: AGS_ERR_INVALID (NULL argument).
 */
int ags_quic_ep_set_tls(ags_quic_ep *ep, ags_tls_ctx *tls);

/* The TLS id of this endpoint (from its certificate). Owned by the TLS context. */
const char *ags_quic_ep_own_id(const ags_quic_ep *ep);

/*
 * Exports the resumption state kept for `peer_id` (TLS session ticket and
 * 0-RTT transport parameters) as an opaque blob, to be stored and given to
 * ags_quic_ep_import_resumption() by a later process. On success *out is
 * malloc'd (the caller frees it) with *len bytes.
 * Errors: AGS_ERR_INVALID, AGS_ERR_NOT_FOUND (no ticket for that peer yet),
 * AGS_ERR_NOMEM.
 */
int ags_quic_ep_export_resumption(ags_quic_ep *ep, const char *peer_id, uint8_t **out, size_t *len);

/*
 * Loads a blob from ags_quic_ep_export_resumption() for `peer_id`, replacing
 * what was kept for it. The next ags_quic_connect() to that peer resumes.
 * Errors: AGS_ERR_INVALID, AGS_ERR_PROTO (not such a blob, or damaged),
 * AGS_ERR_NOMEM.
 */
int ags_quic_ep_import_resumption(ags_quic_ep *ep, const char *peer_id, const uint8_t *data,
                                  size_t len);

/*
 * Starts a connection to host:port (numeric address, or a name resolved
 * synchronously with getaddrinfo in the endpoint's address family). The
 * server must prove it is `expected_peer_id` (NULL: any id the CA vouches
 * for; no resumption then). When the endpoint has a ticket for
 * `expected_peer_id`, the session is resumed and 0-RTT may be used. `conn_ud` becomes the
 * connection's user data. The first packets are sent from the loop, not from this call; the
 * handshake outcome comes as on_connected or on_refused, then on_closed.
 * On success *out is the handle (owned by the endpoint).
 * Errors: AGS_ERR_INVALID (also: an address of the other family on an
 * IPv6-only or IPv4 endpoint), AGS_ERR_NOT_FOUND (name does not resolve),
 * AGS_ERR_AGAIN (max_conns reached), AGS_ERR_CLOSED (endpoint shutting
 * down), AGS_ERR_TLS (session setup failed), AGS_ERR_QUIC, AGS_ERR_NOMEM.
 */
int ags_quic_connect(ags_quic_ep *ep, const char *host, uint16_t port, const char *expected_peer_id,
                     void *conn_ud, ags_quic_conn **out, ags_error *err);

/*
 * Closes the connection with application error `code` and `reason` (may be
 * NULL; truncated to AGS_QUIC_REASON_MAX - 1 bytes), sent in
 * CONNECTION_CLOSE. Stream data written before the call and not yet sent
 * (an ERROR frame: docs/PROTOCOL.md, "ERROR before close") is sent first, for
 * at most 200 ms (pacing, congestion); then the close goes, with or without
 * it. Nothing can be written after this call. Pending writes complete with
 * AGS_ERR_CLOSED and on_closed (by_peer 0) follows from the loop, not from
 * this call; no on_stream_data comes in between. Closing an already closing
 * connection is a no-op.
 */
void ags_quic_conn_close(ags_quic_conn *c, uint64_t code, const char *reason);

/* The connection's user data (set by ags_quic_connect() or the setter; NULL at first). */
void *ags_quic_conn_user_data(const ags_quic_conn *c);
void ags_quic_conn_set_user_data(ags_quic_conn *c, void *ud);

/* The peer's verified id; "" before on_connected. Owned by the connection. */
const char *ags_quic_conn_peer_id(const ags_quic_conn *c);

/* The peer's address text ("127.0.0.1:4433"). Owned by the connection. */
const char *ags_quic_conn_peer_addr(const ags_quic_conn *c);

/* Fills `out` with the connection's counters and state. */
void ags_quic_conn_info(const ags_quic_conn *c, ags_quic_info *out);

/*
 * Opens a bidirectional stream; *stream_id gets its id. Allowed after
 * on_connected, or before it when info.early_data_possible (0-RTT).
 * Errors: AGS_ERR_AGAIN (none may be opened yet: the peer's stream limit is
 * reached, or the handshake has not completed and 0-RTT is not possible;
 * on_writable fires when one can be), AGS_ERR_CLOSED, AGS_ERR_QUIC,
 * AGS_ERR_NOMEM.
 */
int ags_quic_stream_open(ags_quic_conn *c, int64_t *stream_id);

/*
 * Queues `len` bytes of `data` on the stream, with FIN after them when
 * `fin` (len may be 0 only with fin, to just finish). The data is not copied: it must stay
 * valid until done(done_ud, status) is called (done may be NULL when the
 * buffer is static or outlives the connection). Sending happens from the
 * loop, right after the current callback or loop phase.
 * Errors (done is then never called): AGS_ERR_INVALID (unknown stream,
 * already finished, len 0 without fin), AGS_ERR_AGAIN (over max_unacked: retry on on_writable),
 * AGS_ERR_CLOSED (connection closing), AGS_ERR_NOMEM.
 */
int ags_quic_stream_write(ags_quic_conn *c, int64_t stream_id, const uint8_t *data, size_t len,
                          int fin, ags_quic_done_cb done, void *done_ud);

/*
 * Tells the transport that `n` bytes delivered by on_stream_data on this
 * stream have been processed, which extends the stream's and the
 * connection's flow-control credit by n. Unknown or closed streams are
 * ignored for the stream part (the connection credit is still returned).
 */
void ags_quic_stream_consume(ags_quic_conn *c, int64_t stream_id, size_t n);

/*
 * Abandons the stream in both directions with application error `code`
 * (RESET_STREAM + STOP_SENDING). Pending writes complete with
 * AGS_ERR_CLOSED; on_stream_close follows.
 * Errors: AGS_ERR_INVALID (unknown stream), AGS_ERR_CLOSED.
 */
int ags_quic_stream_reset(ags_quic_conn *c, int64_t stream_id, uint64_t code);

#endif
