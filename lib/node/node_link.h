/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A node's connections (lib/node/node_link.c). Every QUIC connection of a
 * node is a link with one sync session on one stream. What a link does with
 * the transport's events depends on its kind, and each kind is one table of
 * operations, not a role tested where it matters:
 *
 *   ags_node_peer_ops      a mesh peer, either way (lib/node/node_peer.c)
 *   ags_node_upstream_ops  our connection to a hub (lib/node/node_upstream.c)
 *   ags_hub_agent_ops      hub mode: an agent that connected to us (lib/node/hub.c)
 *
 * node_link.c holds what is the same for every kind (the transport's
 * callbacks, which call the table; frames waiting for room; feeding the
 * session), and calls nothing of a kind by name. Everything here runs on the
 * node's loop thread.
 */
#ifndef AGS_NODE_LINK_H
#define AGS_NODE_LINK_H

#include <stddef.h>
#include <stdint.h>

#include "agentsync/agentsync.h"
#include "quic.h"
#include "sync.h"

struct ags_node;
struct ags_peer;
struct ags_link;

/* One kind of link. Only `dial`, `data` and `writable` may be NULL. */
struct ags_link_ops {
	const char *kind; /* "peer", "upstream", "agent": for logs */
	/* Dials peer p with a link of this kind (kinds we dial: peers, upstream). */
	void (*dial)(struct ags_node *n, struct ags_peer *p);
	/* Makes (and starts) the session of a link whose stream is open; 0 or an error
	 * (the connection was closed). */
	int (*start)(struct ags_link *l);
	/* The TLS handshake is done; peer_id is the id the certificate verified. */
	void (*connected)(struct ags_link *l, const char *peer_id, const char *addr);
	/* The peer opened stream sid. */
	void (*stream_open)(struct ags_link *l, int64_t sid);
	/*
	 * Bytes on the link's stream while it has no session (an agent's AUTH):
	 * *used gets what was taken, the rest is the session's once l->sync is
	 * set. Non-zero: drop everything (the link is being refused).
	 */
	int (*data)(struct ags_link *l, const uint8_t *data, size_t len, size_t *used);
	/* The session's peer sent HELLO (ags_sync_host.hello): 0 to go on. */
	int (*hello)(struct ags_link *l, const char *instance);
	/* The connection closed; the link is freed right after. */
	void (*closed)(struct ags_link *l, uint64_t code, const char *reason, int by_peer);
	/* The transport had room again, the waiting frames went and the session was pumped. */
	void (*writable)(struct ags_link *l);
	/*
	 * Optional: the session refused its peer with AUTH_FAILED (at a hub: a HELLO
	 * naming another agent or tenant than the token, a second AUTH). The kind
	 * closes the connection itself; NULL: closed as any other violation.
	 */
	void (*refuse)(struct ags_link *l, uint64_t code, const char *reason);
};

extern const struct ags_link_ops ags_node_peer_ops;
extern const struct ags_link_ops ags_node_upstream_ops;
extern const struct ags_link_ops ags_hub_agent_ops;

/* A frame waiting for room in the transport (the write returned AGS_ERR_AGAIN). */
struct ags_pending {
	uint8_t *frame;
	size_t len;
	struct ags_pending *next;
};

/* One QUIC connection, with its sync session. */
struct ags_link {
	struct ags_node *node;
	const struct ags_link_ops *ops;
	void *owner;           /* what serves links of this kind (the hub for agents) */
	void *kind_data;       /* the kind's own state of this link (an agent's AUTH, tenant) */
	struct ags_peer *peer; /* mesh and upstream links: NULL until the peer is known */
	ags_quic_conn *conn;
	int64_t sid;     /* the sync stream, or -1 */
	int outgoing;    /* we dialled it */
	int established; /* on_connected has fired */
	int announced;   /* peer:connected was emitted for it */
	int early;       /* its session started before the handshake, from the peer's resume hint */
	int error_counted; /* this connection's failure is counted already (one error per close) */
	int closing;       /* we closed it: what still arrives is dropped, not parsed */
	ags_sync *sync;
	struct ags_pending *pend_head, *pend_tail;
	char instance[40]; /* the peer's per-process id, from its HELLO */
};

/* The transport's callbacks of a node (user_data: the node). */
extern const ags_quic_callbacks ags_node_quic_callbacks;

/* A new link of kind `ops` served by `owner` (outgoing: we dial it); NULL when out of memory. */
struct ags_link *ags_node_link_new(struct ags_node *n, ags_quic_conn *c, int outgoing,
                                   const struct ags_link_ops *ops, void *owner);

/*
 * Once every 10 s at most, logs what the transport's handshake budget did
 * since the last time (Retry under pressure, half-open handshakes that timed
 * out or were dropped, refusals), when it did anything. From the tick.
 */
void ags_node_link_tick(struct ags_node *n, uint64_t now_ms);

/* Frees a link that is no longer attached to anything (its session too). */
void ags_node_link_free(struct ags_link *l);

/* Opens the sync stream of an outgoing link and starts its session (again on writable). */
void ags_node_link_start_stream(struct ags_link *l);

/*
 * Closes a link's connection with `code` and `reason`: for any code but
 * NO_ERROR, after an ERROR frame with the same code and reason on the sync
 * stream, when it is open (docs/PROTOCOL.md, "ERROR before close"). What
 * arrives afterwards is dropped. Frames waiting for room are dropped.
 */
void ags_node_link_close(struct ags_link *l, uint64_t code, const char *reason);

/* Feeds stream data to a link's sync session, closing the connection on error. */
void ags_node_link_data(struct ags_link *l, const uint8_t *data, size_t len);

/* Lets the link's session send, unless frames still wait for room. */
void ags_node_link_pump(struct ags_link *l, uint64_t now_us);

/* Drops the frames waiting for room (they went nowhere). */
void ags_node_link_drop_pending(struct ags_link *l);

/* Sync host functions of every link, whatever the host (session_ud is the link). */
void ags_node_host_send(void *ud, void *session_ud, uint8_t *frame, size_t len);
int ags_node_host_hello(void *ud, void *session_ud, const char *instance);

#endif
