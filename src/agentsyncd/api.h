/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The local HTTP API of agentsyncd (lib/api*.c), served with libmicrohttpd
 * over a node: patterns in and out, peers, state, metrics, and a stream of
 * the node's events as Server-Sent Events. The endpoints are described in
 * docs/ARCHITECTURE.md, "Daemon, HTTP API and CLI".
 *
 * Lifecycle: ags_api_new (nothing bound) -> ags_api_start (binds, serves on
 * threads of its own) -> ags_api_stop -> ags_api_del. Events reach the API
 * through ags_api_on_event(), which the daemon calls from the node's event
 * callback; they are kept in a bounded ring so that an SSE client can resume
 * with Last-Event-ID.
 *
 * Threads: libmicrohttpd runs one thread per connection. Every function here
 * may be called from any thread, except that ags_api_stop and ags_api_del
 * must not run concurrently with anything else on the same API.
 */
#ifndef AGS_API_H
#define AGS_API_H

#include <stddef.h>
#include <stdint.h>

#include "agentsync/agentsync.h"
#include "agentsync/node.h"

/* Body limit = max_pattern_bytes * this, unless set explicitly. */
#define AGS_API_BODY_FACTOR 64
/* Events kept for Last-Event-ID resumption, by count and by bytes. */
#define AGS_API_RING_EVENTS 65536
#define AGS_API_RING_BYTES  (64u * 1024u * 1024u)

/* API-made events, besides the node's (seed 000 names). */
#define AGS_API_EV_PATTERN_STORED  "pattern:stored"  /* a record written through POST */
#define AGS_API_EV_PATTERN_DELETED "pattern:deleted" /* a record deleted through DELETE */

typedef struct ags_api ags_api;

/* Called for the API's log lines (refused requests, errors); message valid during the call. */
typedef void (*ags_api_log_fn)(void *user_data, int level, const char *message);

typedef struct ags_api_config {
	const char *host;         /* address to bind (IP literal or name); NULL: "127.0.0.1" */
	uint16_t port;            /* TCP port; 0 picks a free one */
	const char *token;        /* bearer token every request but /healthz needs; NULL: none */
	size_t max_pattern_bytes; /* largest record; 0: AGS_PATTERN_MAX_BYTES_DEFAULT */
	size_t max_body_bytes;    /* largest request body; 0: max_pattern_bytes * 64 */
	size_t ring_events;       /* 0: AGS_API_RING_EVENTS */
	size_t ring_bytes;        /* 0: AGS_API_RING_BYTES */
	const char *data_dir;     /* where GET /v1/backup makes its copy; NULL: no backups */
	ags_api_log_fn log;       /* may be NULL */
	void *log_user_data;
} ags_api_config;

/*
 * Makes an API over `node` (borrowed: it must outlive the API) with `cfg`
 * (copied). Nothing is bound until ags_api_start. On success *out owns it
 * (free with ags_api_del).
 * Errors: AGS_ERR_INVALID, AGS_ERR_NOMEM.
 */
int ags_api_new(ags_node *node, const ags_api_config *cfg, ags_api **out, ags_error *err);

/*
 * Binds host:port and starts serving.
 * Errors: AGS_ERR_STATE (already started), AGS_ERR_IO (address cannot be
 * resolved or bound; message has the reason), AGS_ERR_INTERNAL
 * (libmicrohttpd refused to start).
 */
int ags_api_start(ags_api *api, ags_error *err);

/* The TCP port the API is bound to (after start), or 0. */
uint16_t ags_api_port(const ags_api *api);

/* Replaces the bearer token (NULL: none required). Errors: AGS_ERR_INVALID. */
int ags_api_set_token(ags_api *api, const char *token);

/*
 * Records a node event (its pointers are only read during the call) in the
 * ring, for SSE clients and metrics. Cheap; never blocks for long.
 */
void ags_api_on_event(ags_api *api, const ags_event *ev);

/* Stops serving: ends event streams, closes connections, joins threads. Idempotent. */
void ags_api_stop(ags_api *api);

/* Stops (if needed) and frees. NULL is a no-op. */
void ags_api_del(ags_api *api);

/*
 * The JSON of a node event, seed 000's shape with camelCase keys:
 * {"id":N (omitted when 0),"type":"peer:connected","time":ms,"peerId":..,
 * "address":..,"error":..,"state":{..},"pattern":{..},"patternId":..,
 * "sourceId":..,"patternCount":n,"latency":ms,"tenant":..}; absent fields
 * are left out ("tenant" is set by a hub for its tenants' events).
 * Returns a malloc'd NUL-terminated string (*len its length, len may be
 * NULL), or NULL when out of memory.
 */
char *ags_api_event_json(const ags_event *ev, uint64_t id, int64_t time_ms, size_t *len);

#endif
