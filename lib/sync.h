/*
 * The sync engine: one session per connection to a peer, speaking the
 * protocol of docs/PROTOCOL.md over frames. It does no I/O: the node hands
 * it received frames and the time, and it hands back frames to send (through
 * the host's send function) and events. Both directions run in one session:
 *
 *   - Sending: the change log of our store after the peer's cursor, minus
 *     what the peer does not want (its filter), what came from the peer
 *     itself, and what is scoped to other peers; sorted by priority inside
 *     each chunk of the backlog; batched (batch_size), compressed when it
 *     pays, at most `window` batches unacknowledged, paced by the rate limits.
 *   - Receiving: each batch is checked (checksum, limits), its patterns
 *     validated and applied in one transaction together with the cursor it
 *     completes, then acknowledged. An acknowledgement therefore means
 *     "durably stored".
 *
 * Called on the node's loop thread only.
 */
#ifndef AGS_SYNC_H
#define AGS_SYNC_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "agentsync/agentsync.h"
#include "agentsync/node.h"
#include "backoff.h"

/* What the node provides to every session. Pointers must outlive the sessions. */
typedef struct ags_sync_host {
	ags_store *store;
	pthread_mutex_t *store_mu; /* held around every use of store */
	const char *node_id;
	const char *store_id;
	const char *tenant;
	uint32_t batch_size;
	uint32_t window;
	int compression;
	size_t max_frame;
	size_t max_pattern;
	double rate_patterns_per_s;
	double rate_bytes_per_s;
	const char *const *filter_types; /* what we ask peers for */
	size_t n_filter_types;
	const char *const *filter_tags;
	size_t n_filter_tags;
	void *ud;
	/* Sends one whole frame; takes ownership of `frame` (malloc'd). */
	void (*send)(void *ud, void *session_ud, uint8_t *frame, size_t len);
	/* Reports an event (the session fills peer_id). */
	void (*event)(void *ud, const ags_event *ev);
	/* The store changed because of a received batch: wake the other senders. */
	void (*changed)(void *ud, void *session_ud);
	/*
	 * The peer's HELLO arrived: `instance` is its random per-process id
	 * (a restarted peer has a new one). Return 0 to go on, non-zero to
	 * refuse this connection (the node keeps another one).
	 */
	int (*hello)(void *ud, void *session_ud, const char *instance);
	/* A log line. */
	void (*log)(void *ud, int level, const char *msg);
	/* This node's random per-process id, sent in HELLO. */
	const char *instance;
} ags_sync_host;

typedef struct ags_sync ags_sync;

/* Session counters, for the node's state. */
typedef struct ags_sync_stats {
	uint64_t batches_acked;  /* our batches the peer acknowledged (syncCount) */
	uint64_t batches_failed; /* our batches refused or with errors */
	uint64_t patterns_sent, patterns_received;
	uint64_t acked_seq; /* our sequence the peer has durably stored */
	uint64_t raw_bytes_out, wire_bytes_out, wire_bytes_in;
	double latency_sum_ms; /* over acknowledged batches */
	int hello_done;
} ags_sync_stats;

/*
 * Makes a session with peer `peer_id` (its verified id). `session_ud` is
 * passed back to the host's send and changed functions. Sends our HELLO.
 * Errors: AGS_ERR_NOMEM.
 */
int ags_sync_new(const ags_sync_host *host, const char *peer_id, void *session_ud, ags_sync **out);

/* Frees the session; batches in flight are forgotten (the peer's cursor makes them resend). */
void ags_sync_del(ags_sync *s);

/*
 * Feeds received stream bytes. Returns 0, or a negative AGS_ERR_* after
 * which the connection must be closed with the QUIC application error code
 * put in *close_code and the reason in `reason` (cap bytes).
 */
int ags_sync_on_data(ags_sync *s, const uint8_t *data, size_t len, uint64_t *close_code,
                     char *reason, size_t cap);

/*
 * Sends what can be sent now. Returns 0 when nothing waits on the rate
 * limiter, else how many microseconds until the limiter allows more.
 */
uint64_t ags_sync_pump(ags_sync *s, uint64_t now_us);

/* Fills the counters. */
void ags_sync_get_stats(const ags_sync *s, ags_sync_stats *out);

/* Changes of ours after the peer's acknowledged cursor that it has not acknowledged. */
uint64_t ags_sync_lag(ags_sync *s);

/* Whether a change scope (store meta) lets `peer_id` receive it. */
int ags_sync_scope_allows(const char *scope, const char *peer_id);

/*
 * Builds the scope string for a change sent only to `peer_ids` (which must
 * not relay it). Returns a malloc'd string, or NULL when out of memory.
 */
char *ags_sync_scope_make(const char *const *peer_ids, size_t n);

#endif
