/*
 * Internal structure of a node (lib/node.c: lifecycle and public API;
 * lib/node_peer.c: peers, connections, backoff, health).
 */
#ifndef AGS_NODE_INT_H
#define AGS_NODE_INT_H

#include <pthread.h>
#include <stdint.h>

#include <uv.h>

#include "agentsync/agentsync.h"
#include "agentsync/node.h"
#include "backoff.h"
#include "jwtauth.h"
#include "quic.h"
#include "sync.h"
#include "tls.h"

struct ags_hub;
struct ags_hub_tenant;
struct ags_hub_pre;

/* What a connection is for. */
enum ags_link_role {
	AGS_LINK_PEER = 0,     /* a mesh peer */
	AGS_LINK_AGENT = 1,    /* hub mode: an agent that connected to us (AUTH first) */
	AGS_LINK_UPSTREAM = 2, /* our connection to a hub (hub.upstream, or an ags_agent) */
};

/* A frame waiting for room in the transport (the write returned AGS_ERR_AGAIN). */
struct ags_pending {
	uint8_t *frame;
	size_t len;
	struct ags_pending *next;
};

/* One QUIC connection to a peer, with its sync session. */
struct ags_link {
	struct ags_node *node;
	struct ags_peer *peer; /* NULL until the peer is known */
	ags_quic_conn *conn;
	int64_t sid;     /* the sync stream, or -1 */
	int outgoing;    /* we dialled it */
	int established; /* on_connected has fired */
	int announced;   /* peer:connected was emitted for it */
	int early;       /* its session started before the handshake, from the peer's resume hint */
	ags_sync *sync;
	struct ags_pending *pend_head, *pend_tail;
	char instance[40]; /* the peer's per-process id, from its HELLO */
	int role;          /* an ags_link_role */
	/* AGS_LINK_AGENT: before AUTH, its frame reader; after, its tenant and id. */
	struct ags_hub_pre *pre;
	struct ags_hub_tenant *tenant;
	char agent_id[AGS_JWT_SUB_MAX + 1];
	int refused;          /* refused at AUTH: waiting for the ERROR frame to go out */
	int error_counted;    /* on_refused counted this connection's failure already */
	uint64_t close_at_ms; /* refused: close by then even if the ERROR is not acknowledged */
};

/* A peer: configured (we dial it) or one that dialled us. */
struct ags_peer {
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
	int degraded;
	char last_error[160];
	/* Counters of closed sessions, added to the live one. */
	uint64_t base_acked, base_failed, base_bytes_in, base_bytes_out;
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

	ags_store *store; /* written by the loop thread and by API callers, under store_mu */
	pthread_mutex_t store_mu;
	ags_store *rstore; /* reads from API callers, under rstore_mu */
	ags_store *lstore; /* the loop thread's change-log reads for sending (no lock) */
	pthread_mutex_t rstore_mu;
	char store_id[33];

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

	/* The applier (lib/node_apply.c): batches from peers are written on a
	 * thread of their own while the loop validates the next ones. */
	pthread_t apply_thread;
	pthread_mutex_t apply_mu;
	pthread_cond_t apply_cv, apply_space;
	size_t apply_queued; /* jobs in apply_head's list, under apply_mu */
	struct ags_sync_job *apply_head, *apply_tail; /* to apply, under apply_mu */
	struct ags_sync_job *done_head, *done_tail;   /* applied, to finish on the loop */
	int apply_running, apply_stop, apply_closed;  /* under apply_mu */
	/* Recent local writes for the senders (lib/node_recent.c), under recent_mu. */
	pthread_mutex_t recent_mu;
	struct ags_recent_row recent[AGS_NODE_RECENT_MAX];
	size_t recent_n;
	uint64_t wakes; /* commands and applied batches seen (loop thread) */
	/* Finishing what the applier wrote: senders are pumped once at the end
	 * (pump_due), not after each job (loop thread). */
	int delivering, pump_due;
	uv_async_t apply_async;

	struct ags_hub *hub;    /* hub mode, or NULL */
	struct ags_peer *up;    /* the upstream hub, or NULL */
	int agent_mode;         /* run by an ags_agent: no incoming connections, dial on demand */
	struct ags_up_op up_op; /* under cmd_mu */
	int64_t last_sync_ms;   /* wall clock of the last completed upstream sync */

	pthread_mutex_t cmd_mu;
	pthread_cond_t cmd_cv;
	struct ags_cmd *cmd_head, *cmd_tail;

	struct ags_peer **peers;
	size_t n_peers, cap_peers;

	uint64_t next_health_ms, next_sweep_ms;
	/* Totals of closed sessions (node-wide stats). */
	uint64_t base_failed, base_raw_out, base_wire_out, base_wire_in, base_sent;
	double base_latency_sum;
	uint64_t base_acked;
};

/* node.c */
void ags_node_log(struct ags_node *n, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ags_node_emit(struct ags_node *n, const ags_event *ev);
uint64_t ags_node_now_ms(void);

/*
 * node_apply.c: the applier. ags_node_apply_start (before the loop thread
 * runs) starts its thread and sets host.submit; ags_node_apply_close (on the
 * loop thread, when it stops) closes its wake-up handle; ags_node_apply_stop
 * (after the loop thread ended) writes what is queued and frees the jobs of
 * the sessions closed meanwhile. Start returns 0 or an AGS_ERR_* code (the
 * node then applies on the loop thread).
 */
int ags_node_apply_start(struct ags_node *n);
void ags_node_apply_close(struct ags_node *n);
void ags_node_apply_stop(struct ags_node *n);
/* Loop thread: finishes (ACK, events) the jobs the applier has written. */
void ags_node_apply_deliver(void *n);

/* node_peer.c: loop-thread side. */
extern const ags_quic_callbacks ags_node_quic_callbacks;
struct ags_peer *ags_node_peer_find(struct ags_node *n, const char *id);
struct ags_peer *ags_node_peer_add(struct ags_node *n, const char *id, const char *address,
                                   uint16_t port, int dial);
void ags_node_peer_remove(struct ags_node *n, struct ags_peer *p);
void ags_node_tick(struct ags_node *n);
void ags_node_pump_all(struct ags_node *n);

/* lib/node_recent.c: small API writes kept for the senders (host.recent). */
void ags_node_recent_add(struct ags_node *n, const ags_pattern *const *p, size_t cnt,
                         const char *scope, const ags_apply_result *res, uint64_t tick);
int ags_node_recent_rows(void *ud, uint64_t after, uint64_t head, ags_row_cb cb, void *cb_ud);
void ags_node_recent_clear(struct ags_node *n);
void ags_node_fill_state(struct ags_node *n, ags_node_state *st);
void ags_node_close_all(struct ags_node *n);
void ags_node_sync_host_init(struct ags_node *n);
/* Host callbacks shared with the hub's tenant hosts. */
void ags_node_host_send(void *ud, void *session_ud, uint8_t *frame, size_t len);
void ags_node_host_log(void *ud, int level, const char *msg);
/* A new link (outgoing: we dial it); NULL when out of memory. */
struct ags_link *ags_node_link_new(struct ags_node *n, ags_quic_conn *c, int outgoing);
/* Counts an error against a peer (events, health). */
void ags_node_peer_error(struct ags_node *n, struct ags_peer *p, const char *error);
/* Schedules the next dial of a peer we keep connected (backoff). */
void ags_node_peer_retry(struct ags_node *n, struct ags_peer *p);
/* Frees a link that is no longer attached to anything. */
void ags_node_link_free(struct ags_link *l);
/* Feeds stream data to a link's sync session, closing it on error. */
void ags_node_link_data(struct ags_node *n, struct ags_link *l, const uint8_t *data, size_t len);
/* Whether valid_id() would take id (node ids: 1-64 of [A-Za-z0-9._-]). */
int ags_node_valid_id(const char *id);

/* node_upstream.c: the upstream hub (loop thread unless said otherwise). */
/* Parses "quic://host:port" (or "host:port"); host gets at most cap bytes. */
int ags_node_parse_endpoint(const char *endpoint, char *host, size_t cap, uint16_t *port);
/* Adds the upstream peer at start (from cfg.hub.upstream). */
int ags_node_upstream_init(struct ags_node *n, ags_error *err);
/* Dials the upstream hub (with 0-RTT when it can). */
void ags_node_upstream_dial(struct ags_node *n, struct ags_peer *p);
/* The upstream link's session: AUTH + HELLO on its stream. */
int ags_node_upstream_start(struct ags_node *n, struct ags_link *l);
/* The upstream's HELLO arrived (host_hello). */
void ags_node_upstream_ready(struct ags_node *n, struct ags_link *l);
/* An upstream attempt or connection ended. */
void ags_node_upstream_closed(struct ags_node *n, struct ags_link *l, uint64_t code,
                              const char *reason);
/* Drives the sync state machine (after pumps and acks). */
void ags_node_upstream_step(struct ags_node *n);
/* Commands. */
void ags_node_upstream_cmd(struct ags_node *n, struct ags_cmd *c);
/* Completes n->up_op (takes cmd_mu). */
void ags_node_up_op_finish(struct ags_node *n, int result, const char *reason);
/* Posts a command and waits for it (any thread). Returns its result or AGS_ERR_STATE. */
int ags_node_post_sync(struct ags_node *n, struct ags_cmd *c);

#endif
