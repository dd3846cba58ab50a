/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sync engine: one session per connection to a peer, speaking the
 * protocol of docs/PROTOCOL.md over frames. It does no I/O and reads no
 * clock: the node hands it received frames and the time (every call that
 * needs it takes `now_us`, microseconds of a monotonic clock), and it hands
 * back frames to send (through the host's send function) and events.
 *
 * Lifecycle: ags_sync_new_ex makes a session and calls nothing of the host;
 * ags_sync_start then sends its AUTH (towards a hub) and HELLO; frames
 * received go to ags_sync_on_data, and ags_sync_pump sends what can be sent;
 * ags_sync_del frees it. If ags_sync_new_ex fails, no host function was
 * called for that session. Both directions run in one session:
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
#include "batch.h"
#include "store.h"
#include "vclock.h"

/*
 * Most entries a session accepts in one received BATCH (the decoder's
 * max_count), announced as HELLO batchSize (docs/PROTOCOL.md, HELLO). How
 * many it sends per batch is the host's batch_size, within the peer's value.
 */
#define AGS_SYNC_MAX_COUNT 10000u

/* Most conflict ids a hub reports in one PULL_DONE. */
#define AGS_SYNC_PULL_CONFLICTS_MAX 1000

/* One change of the log, as a cache holds it. */
struct ags_sync_tail_item;

/*
 * What the sessions of one host share (they all run on one thread and use it
 * only inside one call), so that a hub with a thousand agents does not do the
 * same work a thousand times: one batch encoder (one compression context),
 * and the tail of the change log last read (at most AGS_SYNC_TAIL_MAX
 * changes), valid while the store's sequence has not moved: when one change
 * fans out to every session, the log is read and parsed once.
 * Zero-initialise; free with ags_sync_cache_free.
 */
typedef struct ags_sync_cache {
	ags_batch_encoder *enc;
	size_t max_frame, max_count; /* what enc was made for */
	struct ags_sync_tail_item *tail;
	size_t n_tail, cap_tail;
	size_t users; /* sessions sharing it (the tail is read only when > 1) */
	int tail_valid;
	uint64_t tail_after, tail_head; /* changes after tail_after, store sequence tail_head */
	uint64_t tail_at_us;            /* when it was read */
} ags_sync_cache;

/* Most changes the shared tail holds. */
#define AGS_SYNC_TAIL_MAX 256

/* Frees what the cache holds and empties it. NULL is a no-op. */
void ags_sync_cache_free(ags_sync_cache *c);

/* The role of a session (docs/PROTOCOL.md, "Federation hub"). */
enum ags_sync_role {
	/* Mesh peers: both sides stream their change logs at once. */
	AGS_SYNC_ROLE_PEER = 0,
	/* A hub's side of an agent connection (after AUTH): sends nothing until the
	 * agent's first PULL, answers each PULL with PULL_DONE once it has sent
	 * everything it held when the PULL came, then stays live; refuses AUTH. */
	AGS_SYNC_ROLE_HUB = 1,
	/* An agent's (or a node's) side of a hub connection: AUTH before HELLO,
	 * PULL on request (ags_sync_pull), merges the hub's clock on PULL_DONE. */
	AGS_SYNC_ROLE_UPSTREAM = 2,
};

/* Options of a session. Zero-initialise: a mesh peer. */
/*
 * What a session learned about its peer, kept by the node for the next
 * connection to it. With it, a resumed connection's first batches can go in
 * 0-RTT, before the peer's HELLO arrives: they start at the cursor the peer
 * last acknowledged and carry uptoSeq 0, so they never move the peer's
 * cursor on an assumption; the peer's HELLO then confirms the hint (and a
 * count-0 batch carries the cursor) or the sender rewinds to the real cursor.
 */
typedef struct ags_sync_resume {
	int valid;
	char peer_store[33];
	uint64_t acked_seq; /* the peer durably held our log up to here */
	int codec;
	uint32_t max_frame, batch_size;
	char **types, **tags; /* the peer's filter */
	size_t n_types, n_tags;
} ags_sync_resume;

/* Frees what a hint holds and marks it invalid. */
void ags_sync_resume_free(ags_sync_resume *r);

typedef struct ags_sync_opts {
	int role;          /* an ags_sync_role */
	const char *token; /* UPSTREAM: the JWT sent in AUTH (copied into the frame at once) */
	/* PEER: a hint from the last session with this peer; sending starts before its HELLO. */
	const ags_sync_resume *resume;
} ags_sync_opts;

/* What the node provides to every session. Pointers must outlive the sessions. */
struct ags_sync_job;

typedef struct ags_sync_host {
	ags_store *store;
	pthread_mutex_t *store_mu; /* held around every use of store */
	/*
	 * A second connection to the same store, used only on the sessions'
	 * thread to read the change log for sending (no lock: WAL readers never
	 * wait for the writer), or NULL to read through `store`.
	 */
	ags_store *log_store;
	const char *node_id;
	const char *store_id;
	/* The store's epochs, oldest first, the last the current one (ags_store_epoch_begin;
	 * docs/PROTOCOL.md, "Store epochs"), or NULL/0 for none: sent in HELLO, and a peer's
	 * cursor of our store is checked against them. */
	const ags_store_epoch *epochs;
	size_t n_epochs;
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
	/*
	 * The host's recent writes, or NULL: calls cb with every change of the
	 * log in (after, head], in order, and returns 1 when it holds all of
	 * them (a sender then reads nothing from the store); 0 without calling
	 * cb when it does not; -1 when cb returned non-zero. Any thread.
	 */
	int (*recent)(void *ud, uint64_t after, uint64_t head, ags_row_cb cb, void *cb_ud);
	/* The store changed because of a received batch: wake the other senders. */
	void (*changed)(void *ud, void *session_ud);
	/*
	 * The peer's HELLO arrived: `instance` is its random per-process id
	 * (a restarted peer has a new one). Return 0 to go on, non-zero to
	 * refuse this connection: AGS_ERR_CONFIG closes it DUPLICATE_NODE_ID
	 * (another process with the peer's node id is connected), any other
	 * value NO_ERROR "duplicate connection" (the node keeps another one).
	 * The session then fails with AGS_ERR_EXISTS; the host has said why.
	 */
	int (*hello)(void *ud, void *session_ud, const char *instance);
	/* A log line. */
	void (*log)(void *ud, int level, const char *msg);
	/*
	 * The wall-clock time stamped on the batches sent (milliseconds since
	 * the epoch; the receiver does not use it), or NULL to stamp 0.
	 */
	int64_t (*wall_ms)(void *ud);
	/* This node's random per-process id, sent in HELLO. */
	const char *instance;
	/*
	 * The store's vector clock (under store_mu), or NULL to keep none: merged
	 * with the record clock of every change applied from a peer and with a
	 * hub's clock on PULL_DONE, persisted under AGS_STORE_CLOCK_KEY in the same
	 * transaction. Owned by the host's owner (ags_sync_clock_load).
	 */
	ags_vclock *clock;
	/* Shared encoder, or NULL: each session makes its own. */
	ags_sync_cache *cache;
	/* UPSTREAM sessions: a PULL_DONE was processed (may be NULL). */
	void (*pulled)(void *ud, void *session_ud);
	/*
	 * The backoff before changes the peer refused whole (ACK retry) go again:
	 * the peer's retry schedule (attempt n: base * multiplier^(n-1), at most
	 * max). Zero base: 1 s, doubling, at most 30 s.
	 */
	ags_backoff_cfg retry;
	/* Non-zero: neither advertise nor send deltas (docs/PROTOCOL.md, "Delta sync"). */
	int no_delta;
	/* Non-zero: do not take part in anti-entropy (docs/PROTOCOL.md, "Anti-entropy"). */
	int no_anti_entropy;
	/* Milliseconds between two anti-entropy comparisons a session starts (0: 60000). */
	uint32_t ae_interval_ms;
	/*
	 * PEER sessions: how long a count-0 batch that only moves the peer's
	 * cursor over changes it does not get may wait for a batch with content
	 * to carry it instead (microseconds; 0 = send it at once).
	 */
	uint64_t cursor_delay_us;
	/*
	 * PEER sessions: queues a received batch for ags_sync_job_apply on
	 * another thread, then ags_sync_job_finish back on the sessions' thread,
	 * both in submission order; NULL = apply and answer at once.
	 */
	void (*submit)(void *ud, struct ags_sync_job *job);
} ags_sync_host;

typedef struct ags_sync ags_sync;

/* A received batch on its way to the store (lib/sync/sync_recv.c). */
typedef struct ags_sync_job ags_sync_job;

/*
 * Applies a job's batch in one transaction (takes store_mu). Any thread;
 * the jobs of one session in the order they were submitted.
 */
void ags_sync_job_apply(ags_sync_job *j);

/*
 * Applies a list of jobs (linked by ags_sync_job_set_next, all of the same
 * host) in one transaction, each batch still all or nothing: if writing any
 * of them fails, the group is rolled back and every job applied alone.
 * Takes store_mu once. Finish each job afterwards, in list order.
 */
void ags_sync_jobs_apply(ags_sync_job *first);

/*
 * After ags_sync_job_apply, on the sessions' thread, in submission order, at
 * time now_us: sends the ACK, reports events, frees the job (and a deleted
 * session whose last job this was).
 */
void ags_sync_job_finish(ags_sync_job *j, uint64_t now_us);

/* The link a host's queue keeps jobs in. */
ags_sync_job *ags_sync_job_next(const ags_sync_job *j);
void ags_sync_job_set_next(ags_sync_job *j, ags_sync_job *next);

/*
 * Copies what session `s` knows of its peer into *r, replacing what r held.
 * Leaves r as it was when no HELLO came or the session is not a peer session.
 */
void ags_sync_resume_save(const ags_sync *s, ags_sync_resume *r);

/* Slots of the per-codec byte counters: the codec byte (none, gzip, zstd), then unknown. */
#define AGS_SYNC_CODECS 4

/* Session counters, for the node's state. */
/* The counters of a session; docs/ARCHITECTURE.md "Statistics" says what each node-level stat is.
 */
typedef struct ags_sync_stats {
	uint64_t batches_acked;        /* our batches with >= 1 pattern the peer acknowledged */
	uint64_t cursor_batches_acked; /* our cursor-only (count 0) batches it acknowledged */
	uint64_t batches_failed;       /* our batches refused or with errors */
	uint64_t patterns_sent, patterns_received;
	uint64_t acked_seq; /* our sequence the peer has durably stored */
	/* BATCH frame bytes sent (all) and received (all); raw_bytes_out and
	 * wire_bytes_patterns_out: the uncompressed and the sent size of our
	 * batches that carry patterns (the compression ratio's terms). */
	uint64_t raw_bytes_out, wire_bytes_patterns_out, wire_bytes_out, wire_bytes_in;
	double latency_sum_ms; /* over batches_acked */
	int hello_done;
	uint64_t patterns_acked;    /* entries of our batches the peer acknowledged as a success */
	uint64_t patterns_applied;  /* entries received that changed our store */
	uint64_t conflicts;         /* conflicts seen by this session (detected or reported) */
	uint64_t pulls_done;        /* PULL answered (HUB) or PULL_DONE received (UPSTREAM) */
	uint64_t early_batches;     /* batches sent before the peer's HELLO (0-RTT resumption) */
	uint64_t patterns_delta;    /* entries sent as a delta (docs/PROTOCOL.md, "Delta sync") */
	uint64_t delta_bytes_saved; /* bytes of raw body those deltas saved over full records */
	uint64_t delta_resent;      /* refused deltas resent whole */
	/* Entries refused for good, both ways: ours the peer refused, and the peer's we
	 * refused (docs/PROTOCOL.md, "Refusals"). */
	uint64_t rejected;
	uint64_t refusals;  /* our batches the peer refused whole (ACK retry) */
	uint64_t rollbacks; /* store:rollback events: our store or the peer's went back */
	/* wire_bytes_out and wire_bytes_in by the batch's codec byte (slot 3: a
	 * received frame too short to have one, or an unknown one). */
	uint64_t codec_bytes_out[AGS_SYNC_CODECS], codec_bytes_in[AGS_SYNC_CODECS];
	/* Anti-entropy: comparisons this side started, AE_TREE and AE_IDS bytes (headers
	 * included) sent and received, our records put in the log again for the peer. */
	uint64_t ae_rounds, ae_bytes_out, ae_bytes_in, ae_relogged;
} ags_sync_stats;

/*
 * Makes a session with peer `peer_id` (its verified id). `session_ud` is
 * passed back to the host's send and changed functions. Sends nothing (see
 * ags_sync_start) and calls no host function. On success *out is the
 * caller's (ags_sync_del). Errors: AGS_ERR_NOMEM.
 */
int ags_sync_new(const ags_sync_host *host, const char *peer_id, void *session_ud, ags_sync **out);

/*
 * ags_sync_new with options (NULL: a mesh peer). An UPSTREAM session sends
 * AUTH {token} before its HELLO. A HUB session's peer_id is the agent id (the
 * token's sub): the agent's HELLO must name it and the host's tenant, else
 * the connection closes with AUTH_FAILED.
 * Errors: AGS_ERR_INVALID (UPSTREAM without a usable token), AGS_ERR_NOMEM.
 */
int ags_sync_new_ex(const ags_sync_host *host, const char *peer_id, const ags_sync_opts *opts,
                    void *session_ud, ags_sync **out);

/*
 * Starts a session made by ags_sync_new[_ex] at time now_us: hands the host
 * its AUTH (UPSTREAM) and HELLO frames, and starts the rate limiters. Cannot
 * fail (everything was made by new); a second call does nothing.
 */
void ags_sync_start(ags_sync *s, uint64_t now_us);

/* Frees the session; batches in flight are forgotten (the peer's cursor makes them resend). */
void ags_sync_del(ags_sync *s);

/*
 * Feeds received stream bytes at time now_us. Returns 0, or a negative
 * AGS_ERR_* after which the connection must be closed with the QUIC
 * application error code put in *close_code and the reason in `reason`
 * (cap bytes).
 */
int ags_sync_on_data(ags_sync *s, const uint8_t *data, size_t len, uint64_t now_us,
                     uint64_t *close_code, char *reason, size_t cap);

/*
 * Sends what can be sent now. Returns 0 when nothing waits on the rate
 * limiter, else how many microseconds until the limiter allows more.
 */
uint64_t ags_sync_pump(ags_sync *s, uint64_t now_us);

/* Fills the counters. */
void ags_sync_get_stats(const ags_sync *s, ags_sync_stats *out);

/*
 * The peer's lag: how many changes of the log after its acknowledged cursor
 * it would be sent (ags_sync_backlog with its HELLO filter). Changes that came
 * from it, that its filter excludes or that a scope keeps from it are not lag.
 * Reads through the host's log reader when it has one, else the store under
 * store_mu. 0 also when the log cannot be read.
 */
uint64_t ags_sync_lag(ags_sync *s);

/* A peer's HELLO filter: types and tags it wants (none listed: everything). Borrowed strings. */
typedef struct ags_sync_filter {
	const char *const *types;
	size_t n_types;
	const char *const *tags;
	size_t n_tags;
} ags_sync_filter;

/* Whether a parsed pattern passes filter f (a tombstone always does). */
int ags_sync_pattern_wanted(const ags_sync_filter *f, const ags_pattern *p);

/*
 * The sender's rule for one change of the log: 1 when peer_id is to get it
 * (not from that peer, its scope allows the peer, it passes f), 0 when not.
 * Errors: AGS_ERR_NOMEM.
 */
int ags_sync_row_wanted(const ags_sync_filter *f, const char *peer_id, const ags_change_row *r);

/*
 * Counts in *count the changes after after_seq that peer_id is to get (the
 * rule of ags_sync_row_wanted; f NULL: no filter): a disconnected peer's lag,
 * from the cursor it last acknowledged. Reads `store` (the caller holds the
 * lock its connection needs) in chunks, O(changes after after_seq).
 * Errors: as ags_store_rows, AGS_ERR_NOMEM.
 */
int ags_sync_backlog(ags_store *store, uint64_t after_seq, const char *peer_id,
                     const ags_sync_filter *f, uint64_t *count);

/*
 * UPSTREAM: sends PULL with the host's clock (and where our view of the hub's
 * conflicts stands). The hub answers with everything we lack, then
 * PULL_DONE (host->pulled). Errors: AGS_ERR_STATE (not an UPSTREAM session,
 * or before the hub's HELLO), AGS_ERR_NOMEM.
 */
int ags_sync_pull(ags_sync *s);

/*
 * Whether everything of our log the peer should get is acknowledged: HELLO
 * done, no batch in flight, nothing left to send.
 */
int ags_sync_push_idle(ags_sync *s);

/* Whether the session has batches in flight or committed changes not yet sent (no lock). */
int ags_sync_sending(const ags_sync *s);

/* The session's peer id (owned by the session). */
const char *ags_sync_peer_id(const ags_sync *s);

/*
 * Reads the clock saved in `store` under AGS_STORE_CLOCK_KEY (an empty clock
 * when there is none) into *out (the caller's: ags_vclock_del).
 * Errors: AGS_ERR_STORE, AGS_ERR_NOMEM, AGS_ERR_PROTO (a saved clock that
 * does not parse).
 */
int ags_sync_clock_load(ags_store *store, ags_vclock **out);

/*
 * For a local write on the host's store (call under store_mu): the clock
 * after `writer`'s tick in *next (the caller's), its JSON in *json (malloc'd)
 * and the writer's new counter in *tick. Write the changes with meta.writer =
 * writer, meta.tick = *tick and the state key AGS_STORE_CLOCK_KEY = *json in
 * one transaction, then ags_sync_clock_commit(host, *next).
 * Errors: AGS_ERR_INVALID (no clock), AGS_ERR_TOO_LARGE, AGS_ERR_NOMEM.
 */
int ags_sync_clock_tick(const ags_sync_host *h, const char *writer, ags_vclock **next, char **json,
                        uint64_t *tick);

/* Makes the host's clock `next` (merged in; call under store_mu) and frees next. */
void ags_sync_clock_commit(const ags_sync_host *h, ags_vclock *next);

/* Whether a change scope (store meta) lets `peer_id` receive it. */
int ags_sync_scope_allows(const char *scope, const char *peer_id);

/*
 * Builds the scope string for a change sent only to `peer_ids` (which must
 * not relay it). Returns a malloc'd string, or NULL when out of memory.
 */
char *ags_sync_scope_make(const char *const *peer_ids, size_t n);

#endif
