/*
 * Internal structure of a sync session, shared by lib/sync.c (HELLO, sender,
 * receiver, ACK) and lib/sync_pull.c (the hub protocol: PULL, PULL_DONE,
 * vector clocks).
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
	struct ags_sync_inflight *next;
};

/* A change read from the log, waiting to be batched. */
struct ags_sync_pending {
	uint64_t seq;
	int priority;
	int no_relay;
	int tombstone;
	int64_t version, timestamp;
	char *id;   /* tombstones */
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
	int enc_shared;
	char cursor_key[AGS_WIRE_NODE_MAX + 16];

	int hello_recv;
	char peer_store[33];
	int codec;
	size_t peer_max_frame;
	uint32_t peer_batch;
	char **f_types, **f_tags;
	size_t n_f_types, n_f_tags;

	int gate_open;       /* HUB: the agent has pulled, changes may flow */
	int early;           /* sending from a resume hint, the peer's HELLO not yet here */
	uint64_t early_from; /* the cursor the hint assumed */
	int cursor_owed;     /* the hint held: a count-0 batch must carry the cursor */
	int caught_up;       /* the last look at the log found nothing new to send */
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

	ags_sync_stats st;
};

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
int ags_sync_on_pull(ags_sync *s, const uint8_t *payload, size_t len, uint64_t *code, char *reason,
                     size_t cap);

/* PULL_DONE received (UPSTREAM). As ags_sync_on_pull. */
int ags_sync_on_pull_done(ags_sync *s, const uint8_t *payload, size_t len, uint64_t *code,
                          char *reason, size_t cap);

/* After a pump (HUB): sends PULL_DONE when the pending PULL is answered. */
void ags_sync_pull_check(ags_sync *s);

/* Frees what a pending PULL holds. */
void ags_sync_pull_clear(struct ags_sync_pull_req *p);

/*
 * Turns a record clock received in a batch entry into its canonical JSON
 * (*out malloc'd) and merges it into *acc (made on first use from the host's
 * clock; may stay NULL when the host keeps none). Errors: AGS_ERR_PROTO
 * (err names the reason), AGS_ERR_TOO_LARGE, AGS_ERR_NOMEM.
 */
int ags_sync_entry_vc(ags_sync *s, yyjson_val *vc, char **out, ags_vclock **acc, ags_error *err);

#endif
