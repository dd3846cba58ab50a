/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agentsync events: what a node (agentsync/node.h) or an agent
 * (agentsync/agent.h) reports to its callbacks, with seed 000's names, and
 * the levels of its log lines. Every event a node reports has its `name`
 * filled in.
 */
#ifndef AGENTSYNC_EVENT_H
#define AGENTSYNC_EVENT_H

#include <stdint.h>

#include "agentsync/agentsync.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Event types, with seed 000's names (ags_event_name). */
typedef enum ags_event_type {
	AGS_EV_PEER_CONNECTED = 1,    /* "peer:connected" {peer_id, address} */
	AGS_EV_PEER_DISCONNECTED,     /* "peer:disconnected" {peer_id, error} */
	AGS_EV_PEER_ERROR,            /* "peer:error" {peer_id, error} */
	AGS_EV_PEER_HEALTH_DEGRADED,  /* "peer:health:degraded" {peer_id, state} */
	AGS_EV_PEER_HEALTH_RECOVERED, /* "peer:health:recovered" {peer_id, state} */
	AGS_EV_SYNC_COMPLETED,        /* "sync:completed" {peer_id, pattern_count, latency_ms} */
	AGS_EV_SYNC_FAILED,           /* "sync:failed" {peer_id, pattern_id, error} */
	AGS_EV_PATTERN_RECEIVED,      /* "pattern:received" {pattern, source_id} */
	AGS_EV_CONNECTION_REFUSED,    /* "connection:refused" {address, error} */
	AGS_EV_PATTERN_CONFLICT,      /* "pattern:conflict" {pattern, source_id, error} */
	/* "sync:rejected" {peer_id, pattern_id, source_id, error, code}: an entry refused for
	 * good (an invalid pattern...), by us (source_id is the peer) or by the peer (source_id
	 * is this node); `error` is "<JSON path>: <reason>", `code` its AGS_ERR_* number. */
	AGS_EV_SYNC_REJECTED,
	/* "store:rollback" {peer_id, error}: a store went back in sequence under the same id
	 * (a restored backup, a power loss with fsync off): ours, found from the peer's
	 * cursor, or the peer's, found from its HELLO (docs/PROTOCOL.md, "Store epochs"). */
	AGS_EV_STORE_ROLLBACK,
	/* "connection:timeout" {peer_id, address, error}: a dial got no (complete) answer within
	 * the handshake timeout. Not a refusal: nobody said no. Counts as a peer error. */
	AGS_EV_CONNECTION_TIMEOUT,
} ags_event_type;

/* An event. Pointers are valid only during the callback. */
typedef struct ags_event {
	int type;                   /* ags_event_type */
	const char *name;           /* e.g. "peer:connected" */
	const char *peer_id;        /* or NULL */
	const char *address;        /* "host:port", or NULL */
	const char *error;          /* or NULL */
	const char *state;          /* peer state as JSON for health events, or NULL */
	const ags_pattern *pattern; /* or NULL */
	const char *pattern_id;     /* or NULL */
	const char *source_id;      /* node the pattern came from, or NULL */
	uint32_t pattern_count;
	double latency_ms;
	const char *tenant; /* hub mode: the tenant the event belongs to, or NULL */
	int code;           /* sync:rejected: the AGS_ERR_* number of the refusal, else 0 */
} ags_event;

/*
 * Returns seed 000's name of an event type ("peer:connected", ...), or
 * "unknown" for a value that is not an ags_event_type. Static, never NULL.
 */
AGS_EXPORT const char *ags_event_name(int type);

/* Levels of log lines (ags_node_callbacks.on_log), most severe first. */
enum { AGS_LOG_ERROR = 0, AGS_LOG_WARN = 1, AGS_LOG_INFO = 2, AGS_LOG_DEBUG = 3 };

#ifdef __cplusplus
}
#endif

#endif /* AGENTSYNC_EVENT_H */
