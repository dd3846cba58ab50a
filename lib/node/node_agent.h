/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What an ags_agent (lib/agent/agent.c) asks of the node it runs on, and
 * nothing more: the agent sees this and the public node API, never the
 * node's structure or locks. Implemented in lib/node/node_upstream.c.
 *
 * An agent's node is an ordinary node configured with an upstream hub
 * (ags_node_config.hub.upstream) and put in agent mode before it starts. All
 * functions are safe to call from any thread except ags_node_agent_mode.
 */
#ifndef AGS_NODE_AGENT_H
#define AGS_NODE_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include "agentsync/agentsync.h"
#include "agentsync/node.h"

/*
 * Agent mode, before ags_node_start: the node accepts no connections, does
 * not dial its upstream hub until ags_node_agent_run(CONNECT), does not
 * pull by itself after connecting, and its certificate need not name its id
 * (agents may share one: their id is their token's).
 * Errors: AGS_ERR_STATE (started already, or no upstream configured).
 */
int ags_node_agent_mode(ags_node *n);

/* What ags_node_agent_run reports. */
typedef struct ags_node_agent_result {
	int resumed, early_data; /* CONNECT: the TLS session was resumed, 0-RTT accepted */
	uint64_t pulled, pushed, conflicts; /* SYNC: since the previous sync */
	double duration_ms;                 /* from the call to the end of the operation */
} ags_node_agent_result;

enum { AGS_NODE_AGENT_CONNECT = 1, AGS_NODE_AGENT_SYNC = 2, AGS_NODE_AGENT_DISCONNECT = 3 };

/*
 * Runs one operation with the upstream hub on the loop thread and waits for
 * its end, at most timeout_ms: CONNECT (dial, AUTH, HELLO), SYNC (push
 * everything, PULL, PULL_DONE) or DISCONNECT (close the connection to the
 * hub, stop dialling, and wait until no connection is left). One at a time (the caller serialises).
 * *res (may be NULL) is filled on success. err has the reason of a failure,
 * the hub's when it refused.
 * Errors: AGS_ERR_STATE (not started, or SYNC while not connected),
 * AGS_ERR_TIMEOUT, AGS_ERR_TLS (handshake), AGS_ERR_AUTH, AGS_ERR_CLOSED,
 * AGS_ERR_NOMEM, or the dial's error.
 */
int ags_node_agent_run(ags_node *n, int op, uint32_t timeout_ms, ags_node_agent_result *res,
                       ags_error *err);

/* Closes the connection to the hub and stops dialling. Errors: AGS_ERR_STATE, AGS_ERR_NOMEM. */
int ags_node_agent_disconnect(ags_node *n);

/*
 * The hub's id and the TLS resumption state of its last session: *hub_id and
 * *blob malloc'd (the caller frees both). Errors: AGS_ERR_NOT_FOUND (no hub
 * id known yet, or no session to resume), AGS_ERR_STATE, AGS_ERR_NOMEM.
 */
int ags_node_agent_export(ags_node *n, char **hub_id, uint8_t **blob, size_t *len);

/*
 * Gives the node resumption state saved by ags_node_agent_export (of hub
 * `hub_id`), for a 0-RTT reconnection. Errors: AGS_ERR_INVALID (bad id, or
 * the configured hub is another one, or the state does not parse),
 * AGS_ERR_STATE, AGS_ERR_NOMEM.
 */
int ags_node_agent_import(ags_node *n, const char *hub_id, const uint8_t *blob, size_t len);

/* The store's vector clock as JSON (*json malloc'd). Errors: AGS_ERR_STATE, AGS_ERR_NOMEM. */
int ags_node_agent_clock(ags_node *n, char **json);

/*
 * The store's live patterns, sequence and digest (each may be NULL).
 * Errors: AGS_ERR_STATE (not started), AGS_ERR_STORE.
 */
int ags_node_agent_store_state(ags_node *n, uint64_t *patterns, uint64_t *seq, char digest[65]);

/* A log line through the node's on_log (which an agent hands to its own). */
void ags_node_agent_log(ags_node *n, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Parses "quic://host:port" (or "host:port"); host gets at most cap bytes. 0 or AGS_ERR_INVALID. */
int ags_node_parse_endpoint(const char *endpoint, char *host, size_t cap, uint16_t *port);

#endif
