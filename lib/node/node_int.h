/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal structure of a node, shared by the node layer's files:
 *   node.c          configuration, lifecycle (start, stop), the node's sync host
 *   node_loop.c     the loop thread: commands, tick, pumps
 *   node_api.c      the thread-safe public API (peers, patterns, state)
 *   node_link.c     links, whatever their kind (node_link.h)
 *   node_peer.c     mesh peers: backoff, health, their links
 *   node_upstream.c a hub as upstream, and what an ags_agent asks of its node
 *   node_apply.c    the applier thread (node_apply.h)
 *   node_recent.c   recent local writes kept for the senders
 * The hub (hub.c) sees links (node_link.h) and its environment, not this.
 */
#ifndef AGS_NODE_INT_H
#define AGS_NODE_INT_H

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>

#include <uv.h>

#include "agentsync/agentsync.h"
#include "agentsync/node.h"
#include "backoff.h"
#include "node_apply.h"
#include "jwtauth.h"
#include "node_link.h"
#include "quic.h"
#include "sync.h"
#include "tls.h"

struct ags_hub;

/* Replaced process instances remembered per peer. */
#define AGS_PEER_GONE_MAX 4

/* A peer: configured (we dial it) or one that dialled us. */
struct ags_peer {
	const struct ags_link_ops *ops; /* the kind of its links (peer or upstream) */
	char id[AGS_NODE_ID_MAX + 1];
	char *address;
	uint16_t port;
	int priority;
	int dial;                 /* we keep a connection to it (configured or connect_peer) */
	struct ags_link *link;    /* the active connection, or NULL */
	struct ags_link *dialing; /* an outgoing attempt under way, or NULL */
	uint32_t attempts;        /* consecutive failed attempts */
	int down;                 /* past max_attempts */
	uint64_t retry_at_ms;     /* next dial (monotonic ms), 0 = now */
	uint64_t error_count, consecutive_errors;
	uint64_t rejected;  /* entries refused for good, both ways (sync:rejected events) */
	uint64_t rollbacks; /* store:rollback events (our store or the peer's went back) */
	int degraded;
	char last_error[160];
	/* Counters of closed sessions, added to the live one. */
	uint64_t base_acked, base_failed, base_bytes_in, base_bytes_out, base_received;
	uint64_t acked_seq;
	/* A hub we keep as upstream (hub.upstream or an ags_agent). */
	int upstream;
	int id_known;        /* id is the hub's verified id (not a placeholder yet) */
	int auto_sync;       /* pull after each (re)connection's first push (long-running node) */
	int sync_state;      /* an ags_up_state */
	uint64_t pulls_seen; /* the session's pulls_done when our PULL went out */
	uint64_t base_applied, base_patterns_acked, base_conflicts; /* of closed sessions */
	uint64_t mark_applied, mark_acked, mark_conflicts;          /* at the last completed sync */
	ags_sync_resume resume; /* what the last session learned: lets a redial send in 0-RTT */
	/* Process instances of this peer that another instance replaced (a ring): one
	 * that comes back means two processes share the node id (ags_node_peer_hello). */
	char gone[AGS_PEER_GONE_MAX][40];
	unsigned n_gone;
	int dup_logged;        /* the duplicate node id was logged (once per peer) */
	uint32_t dup_refusals; /* DUPLICATE_NODE_ID closes in a row: our backoff */
};

/* The upstream's sync: push everything, then PULL, then PULL_DONE. */
enum ags_up_state { AGS_UP_IDLE = 0, AGS_UP_PUSHING = 1, AGS_UP_PULLING = 2 };

/* What an ags_agent call waits for (one at a time; under cmd_mu). */
enum ags_up_op_kind { AGS_UP_OP_CONNECT = 1, AGS_UP_OP_SYNC = 2, AGS_UP_OP_DISCONNECT = 3 };

struct ags_up_op {
	int kind;
	int active; /* the caller still waits */
	int done;
	int result; /* 0 or an AGS_ERR_* */
	char reason[256];
	uint64_t pulled, pushed, conflicts;
	int resumed, early_data;
	uint64_t started_us;
	double duration_ms;
};

enum ags_cmd_type {
	CMD_CONNECT,
	CMD_DISCONNECT,
	CMD_WAKE,
	CMD_STATE,
	CMD_RELOAD_TLS,
	CMD_STOP,
	CMD_HUB_STATS,
	CMD_UP_OP,         /* start n->up_op */
	CMD_UP_DISCONNECT, /* close the upstream connection, stop dialling */
	CMD_UP_EXPORT,     /* resumption state of the upstream hub */
	CMD_UP_IMPORT,
};

struct ags_cmd {
	int type;
	char *id, *address;
	uint16_t port;
	ags_node_state *state;
	ags_hub_stats *hub_stats;
	uint8_t *blob; /* CMD_UP_EXPORT / IMPORT */
	size_t blob_len;
	int result;
	int sync; /* the caller waits for done */
	int done;
	struct ags_cmd *next;
};

/* A recent local write as its row in the log (strings in mem). */
#define AGS_NODE_RECENT_MAX 64
/* API calls with more patterns than this are not kept. */
#define AGS_NODE_RECENT_CALL_MAX 16
struct ags_recent_row {
	ags_change_row row;
	char *mem;
};

struct ags_node {
	/* Configuration (strings owned through `owned`). */
	ags_node_config cfg;
	char **owned;
	size_t n_owned, cap_owned;
	ags_node_callbacks cb;
	void *user_data;
	char node_id[AGS_JWT_SUB_MAX + 1];
	char instance[40];

	int started;
	int running; /* the loop thread is up */
	uint16_t port;
	/* What of the loop exists (ags_node_start's teardown closes what does). */
	int loop_open, async_open, tick_open;

	ags_store *store; /* written by the loop thread and by API callers, under store_mu */
	pthread_mutex_t store_mu;
	ags_store *rstore; /* reads from API callers, under rstore_mu */
	ags_store *lstore; /* the loop thread's change-log reads for sending (no lock) */
	pthread_mutex_t rstore_mu;
	char store_id[33];
	ags_store_epoch epochs[AGS_STORE_EPOCHS_MAX]; /* of store, oldest first (PROTOCOL.md) */
	size_t n_epochs;

	ags_tls_ctx *tls;
	ags_tls_ctx **retired_tls; /* replaced by reloads; sessions may still use them */
	size_t n_retired_tls;
	uv_loop_t loop;
	uv_thread_t thread;
	uv_async_t async;
	uv_timer_t tick;
	ags_quic_ep *ep;
	ags_sync_host host;
	ags_vclock *clock;    /* the store's vector clock (host.clock), under store_mu */
	ags_sync_cache cache; /* host.cache */

	/* The applier (lib/node/node_apply.h): batches from peers are written on
	 * a thread of their own while the loop validates the next ones. */
	ags_applier applier;
	/* Recent local writes for the senders (lib/node/node_recent.c), under recent_mu. */
	pthread_mutex_t recent_mu;
	struct ags_recent_row recent[AGS_NODE_RECENT_MAX];
	size_t recent_n;
	uint64_t wakes; /* commands and applied batches seen (loop thread) */
	/* Finishing what the applier wrote: senders are pumped once at the end
	 * (pump_due), not after each job (loop thread). */
	int delivering, pump_due;

	/* Links made for incoming connections: peers, or agents in hub mode (served
	 * by incoming_owner), or none (an agent). */
	const struct ags_link_ops *incoming_ops;
	void *incoming_owner;
	const char *event_tenant; /* hub mode: the tenant of events of the node's own store */
	struct ags_hub *hub;      /* hub mode, or NULL */
	struct ags_peer *up;      /* the upstream hub, or NULL */
	int agent_mode;           /* run by an ags_agent: no incoming connections, dial on demand */
	struct ags_up_op up_op;   /* under cmd_mu */
	int64_t last_sync_ms;     /* wall clock of the last completed upstream sync */

	pthread_mutex_t cmd_mu;
	pthread_cond_t cmd_cv;
	struct ags_cmd *cmd_head, *cmd_tail;

	struct ags_peer **peers;
	size_t n_peers, cap_peers;

	uint64_t next_health_ms, next_sweep_ms;
	/* Totals of closed sessions (node-wide stats). */
	uint64_t base_failed, base_raw_out, base_wire_out, base_wire_in, base_sent;
	uint64_t base_ratio_wire_out;
	double base_latency_sum;
	uint64_t base_codec_out[AGS_SYNC_CODECS], base_codec_in[AGS_SYNC_CODECS];
	uint64_t base_acked;
	/* Handshake budget counters last logged (lib/node/node_link.c, ags_node_link_tick). */
	ags_quic_ep_stats hs_logged;
	uint64_t hs_log_at_ms;
	ags_repeat refusal_lines; /* refusals logged: a few per window, then counted */
	int ca_hint_said;         /* the unknown-CA advice was logged (once per node) */
};

/* ---- node.c ---- */
void ags_node_log(struct ags_node *n, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ags_node_vlog(struct ags_node *n, int level, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
/* Reports an event to the node's on_event (the name is filled in here, from the type). */
void ags_node_emit(struct ags_node *n, const ags_event *ev);
/* Whether valid_id() would take id (node ids: 1-64 of [A-Za-z0-9._-]). */
int ags_node_valid_id(const char *id);
/* Loop thread: finishes (ACK, events) the jobs the applier has written (on_read_pause). */
void ags_node_deliver(void *ud);
/* Any thread: wakes the loop when it runs. */
void ags_node_wake(struct ags_node *n);
/* Makes a TLS context from the node's configuration (start and reloads). */
int ags_node_make_tls(struct ags_node *n, ags_tls_ctx **out, ags_error *err);
/*
 * A TLS context from c (node_check.c), errors naming the config key
 * (tls.cert, tls.key, tls.ca, ...); with node_id, the certificate must name
 * it when peers are authenticated. Errors: as ags_tls_ctx_new, AGS_ERR_CONFIG.
 */
int ags_node_tls_new(const ags_node_config *c, const char *node_id, ags_tls_ctx **out,
                     ags_error *err);
/* The checks of ags_node_new on a configuration (node.c). Errors: AGS_ERR_CONFIG. */
int ags_node_check_config(const ags_node_config *c, ags_error *err);

/* ---- node_api.c ---- */
/* Loop thread: the TLS reload itself (CMD_RELOAD_TLS). */
int ags_node_reload_tls_loop(struct ags_node *n, ags_error *err);

/* ---- node_loop.c: commands (any thread -> loop thread) and the loop's housekeeping ---- */
/* Posts a command; with c->sync waits for it. 0 or its result; AGS_ERR_STATE when stopped. */
int ags_node_post(struct ags_node *n, struct ags_cmd *c);
/* Posts a command and waits for it (any thread). Returns its result or AGS_ERR_STATE. */
int ags_node_post_sync(struct ags_node *n, struct ags_cmd *c);
/* Frees a command and what it holds. */
void ags_node_cmd_free(struct ags_cmd *c);
/* The loop thread's body (uv_thread_create). */
void ags_node_loop_main(void *arg);
/* The command queue's wake-up (uv_async_t) and the 50 ms tick. */
void ags_node_on_async(uv_async_t *h);
void ags_node_on_tick(uv_timer_t *t);
/* Lets every session send what is new (after a local write or applied batches). */
void ags_node_pump_all(struct ags_node *n);
/* Closes every connection and the endpoint (the loop then ends). */
void ags_node_close_all(struct ags_node *n);

/* ---- node_peer.c: mesh peers (and what upstream links share with them) ---- */
struct ags_peer *ags_node_peer_find(struct ags_node *n, const char *id);
/* A new peer record, dialled (dial) with links of ags_node_peer_ops; NULL when out of memory. */
struct ags_peer *ags_node_peer_add(struct ags_node *n, const char *id, const char *address,
                                   uint16_t port, int dial);
void ags_node_peer_remove(struct ags_node *n, struct ags_peer *p);
/* Counts an error against a peer (events, health). */
void ags_node_peer_error(struct ags_node *n, struct ags_peer *p, const char *error);
/* Schedules the next dial of a peer we keep connected (backoff). */
void ags_node_peer_retry(struct ags_node *n, struct ags_peer *p);
/* Emits health events of a peer whose state changed (also every health interval). */
void ags_node_peer_check_health(struct ags_node *n, struct ags_peer *p);
/* Link operations of a peer's links, shared with upstream links. */
void ags_node_link_established(struct ags_link *l, const char *peer_id, const char *addr);
void ags_node_peer_stream_open(struct ags_link *l, int64_t sid);
/* The peer's HELLO: 0 to go on, AGS_ERR_EXISTS (another connection of the peer is
 * kept) or AGS_ERR_CONFIG (another process with the peer's node id is connected). */
int ags_node_peer_hello(struct ags_link *l, const char *instance);
/* Between two live connections of one peer: 1 to keep the new one, 0 the old one. */
int ags_node_peer_keep_new(const char *self, const char *peer, int same_instance, int old_outgoing,
                           int new_outgoing);
void ags_node_peer_closed(struct ags_link *l, uint64_t code, const char *reason, int by_peer);
/* The node's sync host (set up at start): events, changes, log lines, the wall clock. */
void ags_node_host_event(void *ud, const ags_event *ev);
void ags_node_host_changed(void *ud, void *session_ud);
void ags_node_host_log(void *ud, int level, const char *msg);
int64_t ags_node_host_wall_ms(void *ud);
/* Fills st's peers and totals (loop thread). */
void ags_node_fill_state(struct ags_node *n, ags_node_state *st);

/* ---- node_recent.c: small API writes kept for the senders (host.recent) ---- */
void ags_node_recent_add(struct ags_node *n, const ags_pattern *const *p, size_t cnt,
                         const char *scope, const ags_apply_result *res, uint64_t tick);
int ags_node_recent_rows(void *ud, uint64_t after, uint64_t head, ags_row_cb cb, void *cb_ud);
void ags_node_recent_clear(struct ags_node *n);

/* ---- node_upstream.c: the upstream hub (loop thread unless said otherwise) ---- */
/* Adds the upstream peer at ags_node_new (from cfg.hub.upstream). */
int ags_node_upstream_init(struct ags_node *n, ags_error *err);
/* Drives the sync state machine (after pumps and acks). */
void ags_node_upstream_step(struct ags_node *n);
/* A PULL_DONE arrived (ags_sync_host.pulled). */
void ags_node_upstream_pulled(void *ud, void *session_ud);
/* The upstream's commands (CMD_UP_*). */
void ags_node_upstream_cmd(struct ags_node *n, struct ags_cmd *c);

#endif
