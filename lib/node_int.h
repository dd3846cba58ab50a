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
#include "quic.h"
#include "sync.h"
#include "tls.h"

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
	int64_t sid;       /* the sync stream, or -1 */
	int outgoing;      /* we dialled it */
	int established;   /* on_connected has fired */
	int announced;     /* peer:connected was emitted for it */
	int error_counted; /* on_refused counted this connection's failure already */
	ags_sync *sync;
	struct ags_pending *pend_head, *pend_tail;
	char instance[40]; /* the peer's per-process id, from its HELLO */
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
};

enum ags_cmd_type { CMD_CONNECT, CMD_DISCONNECT, CMD_WAKE, CMD_STATE, CMD_RELOAD_TLS, CMD_STOP };

struct ags_cmd {
	int type;
	char *id, *address;
	uint16_t port;
	ags_node_state *state;
	int result;
	int sync; /* the caller waits for done */
	int done;
	struct ags_cmd *next;
};

struct ags_node {
	/* Configuration (strings owned through `owned`). */
	ags_node_config cfg;
	char **owned;
	size_t n_owned, cap_owned;
	ags_node_callbacks cb;
	void *user_data;
	char node_id[AGS_NODE_ID_MAX + 1];
	char instance[40];

	int started;
	int running; /* the loop thread is up */
	uint16_t port;

	ags_store *store; /* written by the loop thread and by API callers, under store_mu */
	pthread_mutex_t store_mu;
	ags_store *rstore; /* reads from API callers, under rstore_mu */
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

/* node_peer.c: loop-thread side. */
extern const ags_quic_callbacks ags_node_quic_callbacks;
struct ags_peer *ags_node_peer_find(struct ags_node *n, const char *id);
struct ags_peer *ags_node_peer_add(struct ags_node *n, const char *id, const char *address,
                                   uint16_t port, int dial);
void ags_node_peer_remove(struct ags_node *n, struct ags_peer *p);
void ags_node_tick(struct ags_node *n);
void ags_node_pump_all(struct ags_node *n);
void ags_node_fill_state(struct ags_node *n, ags_node_state *st);
void ags_node_close_all(struct ags_node *n);
void ags_node_sync_host_init(struct ags_node *n);

#endif
