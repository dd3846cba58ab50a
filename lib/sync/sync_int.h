/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal structure of a sync session, shared by the engine's files:
 * lib/sync/sync.c (sessions, HELLO, ACK, frame dispatch), sync_send.c (the
 * sender), sync_recv.c (the receiver), sync_delta.c (delta sync), sync_ae.c (anti-entropy) and
 * sync_pull.c (the hub protocol: PULL, PULL_DONE, vector clocks).
 */
#ifndef AGS_SYNC_INT_H
#define AGS_SYNC_INT_H

#include <stdint.h>

#include "batch.h"
#include "frame.h"
#include "sync.h"
#include "vclock.h"
#include "wire.h"

/* A batch sent and not yet acknowledged. */
struct ags_sync_inflight {
	uint64_t request_id;
	uint64_t upto_seq;
	uint32_t count;
	uint64_t sent_us;
	uint64_t acked_at_send; /* the peer's acknowledged cursor when it went */
	uint64_t gen;           /* s->send_gen when it went: older ones were sent before a rewind */
	uint64_t first_seq, last_seq; /* lowest and highest log sequence of its entries (0: none) */
	/* Entries of the batch sent as deltas (lib/sync/sync_delta.c): resent whole if refused. */
	struct ags_sync_delta_sent *deltas;
	size_t n_deltas;
	struct ags_sync_inflight *next;
};

/* A change sent as a delta, or one to resend whole. */
struct ags_sync_delta_sent {
	char *id;
	int64_t version;
	int no_relay;
};

/* Most ids a session keeps to resend whole, or holds the cursor for. */
#define AGS_SYNC_RESEND_MAX 256

/* A change read from the log, waiting to be batched. */
struct ags_sync_pending {
	uint64_t seq;
	int priority;
	int no_relay;
	int tombstone;
	int64_t version, timestamp;
	char *id;
	char *json; /* puts */
	size_t len;
	char *vc; /* the record clock, or NULL */
	size_t vc_len;
};

/* A PULL the hub has to answer. */
struct ags_sync_pull_req {
	int pending;
	uint64_t target;   /* our store sequence when the PULL came */
	ags_vclock *clock; /* our clock then */
	char **conflicts;  /* ids of conflicts involving the agent */
	size_t n_conflicts;
	uint64_t conflict_seq; /* up to which conflict they go */
};

struct ags_sync {
	const ags_sync_host *h;
	int role;
	char peer_id[AGS_WIRE_NODE_MAX + 1]; /* at a hub, the agent's token sub */
	void *sud;
	ags_frame_reader rd;
	ags_batch_encoder *enc; /* own, or the host cache's when enc_shared */
	void *dctx; /* ZSTD_DCtx reused for every batch this session receives, or NULL */
	int enc_shared;
	char cursor_key[AGS_WIRE_NODE_MAX + 16];

	int hello_recv;
	char peer_store[33];
	/* Store epochs (docs/PROTOCOL.md, "Store epochs"): the peer's current one (from its
	 * HELLO, "" for none), saved with the cursor of its store; and the cursor of its
	 * store we held when the session began. */
	char peer_epoch[AGS_STORE_EPOCH_ID_LEN + 1];
	char my_cur_store[33], my_cur_epoch[AGS_STORE_EPOCH_ID_LEN + 1];
	uint64_t my_cur_seq;
	/* Sender: the peer's store went back and lost changes it made: send it every
	 * record of the log whose origin is the peer, once (a scan of our log after
	 * recover_after; chunk_recovery: the chunk is of that scan). */
	uint64_t recover_after;
	int recover, recover_req, chunk_recovery;
	int codec;
	size_t peer_max_frame;
	uint32_t peer_batch;
	char **f_types, **f_tags;
	size_t n_f_types, n_f_tags;

	int gate_open;         /* HUB: the agent has pulled, changes may flow */
	int early;             /* sending from a resume hint, the peer's HELLO not yet here */
	uint64_t early_from;   /* the cursor the hint assumed */
	int cursor_owed;       /* the hint held: a count-0 batch must carry the cursor */
	int caught_up;         /* the last look at the log found nothing new to send */
	uint64_t cursor_since; /* when sent_seq passed changes the peer was not sent, or 0 */
	uint64_t sent_seq;
	uint64_t next_request;
	struct ags_sync_inflight *q_head, *q_tail;
	uint32_t n_inflight;
	struct ags_sync_pending *chunk;
	size_t chunk_n, chunk_pos, chunk_cap;
	uint64_t chunk_upto;
	size_t chunk_bytes;
	ags_bucket rate_p, rate_b;

	struct ags_sync_pull_req pull;

	/* Delta sync (lib/sync/sync_delta.c). Sender: */
	int peer_delta;                     /* the peer's HELLO said "delta": true */
	int delta_off;                      /* stopped for this session (resend overflow) */
	struct ags_sync_delta_sent *resend; /* refused deltas to resend whole */
	size_t n_resend;
	/* Receiver: ids whose delta we refused; the cursor is not saved until the
	 * sender has resent them all (hold_all: never again in this session). */
	char **held;
	size_t n_held;
	int hold_all;
	uint64_t held_upto; /* the highest uptoSeq received while holding */

	/* Sender, after the peer refused a batch whole (ACK retry; docs/PROTOCOL.md,
	 * "Refusals"): everything after its acknowledged cursor goes again. */
	uint64_t send_gen;    /* bumped at each rewind; ACKs of older batches move nothing */
	uint64_t retry_at;    /* no batch before this time (backoff), or 0 */
	uint64_t retry_floor; /* the acknowledged cursor when the refusals began */
	unsigned retry_n;     /* refusals since the cursor last moved past retry_floor */
	unsigned retry_level; /* batches are batch size >> retry_level (at least 1) */
	unsigned retry_ones;  /* refusals of batches of at most one change, likewise */
	/* Receiver: a batch of this session was refused whole (or failed to apply), so
	 * no later one saves the peer's cursor. Read and written under store_mu, in
	 * apply order (lib/sync/sync_recv.c). */
	int refused_whole;
	/* Anti-entropy (lib/sync/sync_ae.c). */
	int peer_ae;         /* the peer's HELLO said "antiEntropy": true */
	uint64_t ae_next_us; /* when this side next starts a comparison (the smaller id) */

	ags_frame_buf start_frames; /* AUTH and HELLO, made by new, sent by ags_sync_start */
	int started;

	ags_sync_stats st;
	size_t jobs; /* received batches not yet answered (lib/sync/sync_recv.c) */
	int dead;    /* ags_sync_del was called: freed when the last job is finished */
};

/*
 * Sender (sync_send.c): the peer refused a batch whole. Everything after its
 * acknowledged cursor goes again, read from the log anew, from now_us +
 * delay_us; batches in flight now move nothing when acknowledged.
 */
void ags_sync_rewind(ags_sync *s, uint64_t now_us, uint64_t delay_us);

/* Empties the chunk of changes waiting to be batched (sync_send.c). */
void ags_sync_chunk_clear(ags_sync *s);

/* Frees a session (ags_sync_del, or the last job of a deleted one). */
void ags_sync_release(ags_sync *s);

/*
 * BATCH received (lib/sync/sync_recv.c): decoded and validated here, applied and
 * answered through the host's submit or at once. Returns 0, or an error with
 * *code and reason set (close).
 */
int ags_sync_on_batch(ags_sync *s, const uint8_t *payload, size_t len, uint64_t now, uint64_t *code,
                      char *reason, size_t cap);

/* A log line through the host. */
void ags_sync_log(ags_sync *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Hands a frame built in `b` to the host (which takes the memory); empties b. */
void ags_sync_send_buf(ags_sync *s, ags_frame_buf *b);

/* Reports an event through the host, with the session's peer id. */
void ags_sync_emit(ags_sync *s, ags_event *ev);

/* The key under which an UPSTREAM session keeps its view of the hub's conflicts. */
void ags_sync_conflict_key(const ags_sync *s, char *buf, size_t cap);

/* PULL received (HUB). Returns 0, or an error with *code and reason set (close). */
int ags_sync_on_pull(ags_sync *s, const uint8_t *payload, size_t len, uint64_t now, uint64_t *code,
                     char *reason, size_t cap);

/* PULL_DONE received (UPSTREAM). As ags_sync_on_pull. */
int ags_sync_on_pull_done(ags_sync *s, const uint8_t *payload, size_t len, uint64_t *code,
                          char *reason, size_t cap);

/* After a pump (HUB): sends PULL_DONE when the pending PULL is answered. */
void ags_sync_pull_check(ags_sync *s);

/* Frees what a pending PULL holds. */
void ags_sync_pull_clear(struct ags_sync_pull_req *p);

/*
 * Turns a record clock received in a batch entry into its canonical JSON
 * (*out malloc'd) and merges it into *acc (made empty on first use; the
 * host's clock is merged in when the batch is applied, under the store lock;
 * stays NULL when the host keeps no clock). Errors: AGS_ERR_PROTO
 * (err names the reason), AGS_ERR_TOO_LARGE, AGS_ERR_NOMEM.
 */
int ags_sync_entry_vc(ags_sync *s, yyjson_val *vc, char **out, ags_vclock **acc, ags_error *err);

/* ---- delta sync (lib/sync/sync_delta.c) ---- */

/*
 * Finishes the batch in s->enc as request q->request_id with uptoSeq `upto`,
 * hands it to the host and queues q as in flight (the session takes q, also
 * on failure). Returns 0 or an error.
 */
int ags_sync_batch_send(ags_sync *s, struct ags_sync_inflight *q, uint64_t now);

/* Frees what a batch in flight holds besides itself. */
void ags_sync_inflight_clear(struct ags_sync_inflight *q);

/* Frees the session's delta state. */
void ags_sync_delta_free(ags_sync *s);

/* Whether this session advertises and sends deltas (a mesh peer, not disabled by the host). */
int ags_sync_delta_enabled(const ags_sync *s);

/*
 * Sender: adds pending change c to the open batch as a delta when that pays
 * (see docs/PROTOCOL.md, "Delta sync") and records it in q. Returns 1 when
 * added, 0 when the caller must add the full record, or an encoder error
 * (AGS_ERR_TOO_LARGE: the batch is full).
 */
int ags_sync_delta_add(ags_sync *s, const struct ags_sync_pending *c, struct ags_sync_inflight *q);

/*
 * Sender: an ACK of batch q refused entry `id` with `code`. Returns 1 when it
 * was a delta that will be resent whole (no failure to report), else 0.
 */
int ags_sync_delta_refused(ags_sync *s, struct ags_sync_inflight *q, const char *id, int code);

/*
 * Sender: sends one batch of the records to resend whole, when there are
 * any and the window allows. Returns 1 when a batch went, 0 when none, or an error.
 */
int ags_sync_delta_resend(ags_sync *s, uint64_t now);

/*
 * Receiver: rebuilds the pattern of delta entry e against our stored
 * version. On success *out owns it. Errors: AGS_ERR_NOMEM, or
 * AGS_ERR_NOT_FOUND for everything else (err says why: the base is not held,
 * the delta does not decode, the result is not the promised pattern).
 */
int ags_sync_delta_rebuild(ags_sync *s, const ags_batch_entry *e, const ags_pattern_opts *po,
                           ags_pattern **out, ags_error *err);

/*
 * Receiver: before applying a batch. `ok` (n_ok ids) are the entries that
 * will be applied, `refused` (n_ref ids) the deltas refused. Returns whether
 * the batch may save the peer's cursor, and in *upto the cursor to save
 * (the batch's, or a higher one held back earlier). Errors: AGS_ERR_NOMEM.
 */
int ags_sync_delta_hold(ags_sync *s, const char *const *ok, size_t n_ok, const char *const *refused,
                        size_t n_ref, uint64_t batch_upto, uint64_t *upto);

/* ---- anti-entropy (lib/sync/sync_ae.c) ---- */

/* Whether this session takes part: a mesh peer, both HELLOs said so, no filter either way. */
int ags_sync_ae_enabled(const ags_sync *s);
/* The peer's HELLO arrived: the first comparison is due shortly. */
void ags_sync_ae_hello(ags_sync *s, uint64_t now_us);
/* After a pump: starts a comparison when one is due and our log is sent. */
void ags_sync_ae_pump(ags_sync *s, uint64_t now_us);
/* AE_TREE / AE_IDS received (enabled sessions). 0, or an error with *code and reason set. */
int ags_sync_on_ae_tree(ags_sync *s, const uint8_t *payload, size_t len, uint64_t now_us,
                        uint64_t *code, char *reason, size_t cap);
int ags_sync_on_ae_ids(ags_sync *s, const uint8_t *payload, size_t len, uint64_t now_us,
                       uint64_t *code, char *reason, size_t cap);

#endif
