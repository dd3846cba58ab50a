/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agentsync agent: seed 004's FederationHub client. An agent keeps a local
 * store of patterns and synchronises it with a federation hub (a node in hub
 * mode) over QUIC with mutual TLS, authenticating with a JSON Web Token that
 * names the agent (claim "sub") and its tenant (claim "tenant").
 *
 *   ags_agent_config c;
 *   ags_agent_config_init(&c);
 *   c.endpoint = "quic://hub.example:4433";
 *   c.token = jwt;                      // sub = agent id, tenant = tenant id
 *   c.cert = "agent.pem"; c.key = "agent-key.pem"; c.ca = "ca.pem";
 *   c.data_dir = "./agent-data";
 *   ags_agent *a;
 *   ags_agent_new(&c, &a, &err);
 *   ags_agent_put(a, pattern, NULL, &err); // local write, pushed on the next sync
 *   ags_agent_connect(a, &err);
 *   ags_agent_sync(a, &result, &err);      // push, pull: {pulled, pushed, conflicts, ms}
 *   ags_agent_disconnect(a);
 *   ags_agent_del(a);
 *
 * Semantics (docs/PROTOCOL.md, "Federation hub"): a sync sends the hub every local change it
 * has not acknowledged yet, then asks (PULL) for every change of the tenant
 * the agent lacks, and returns once the hub says it has sent them all
 * (PULL_DONE, with the hub's vector clock, merged into the agent's). While
 * connected after its first sync, the agent also receives other agents'
 * changes live. Changes of the same record made concurrently (their record
 * vector clocks are concurrent) are conflicts: every node keeps the same
 * winner (the store's deterministic rule), the loser goes to the conflicts
 * table, and both agents are told (pattern:conflict events, and the count
 * in the sync result).
 *
 * The TLS session is resumed across runs: the resumption state is kept in
 * data_dir, and a later process connects with 0-RTT.
 *
 * Threads: every function is safe to call from any thread; connect, sync and
 * disconnect are serialised. Callbacks run on the agent's network thread and
 * must not call ags_agent_del().
 */
#ifndef AGENTSYNC_AGENT_H
#define AGENTSYNC_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include "agentsync/agentsync.h"
#include "agentsync/node.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ags_agent ags_agent;

#define AGS_AGENT_CONFIG_VERSION 1

/* Agent configuration. ags_agent_config_init() sets the defaults; strings are copied. */
typedef struct ags_agent_config {
	int version; /* AGS_AGENT_CONFIG_VERSION, set by ags_agent_config_init */

	const char *endpoint;  /* required: the hub, "quic://host:port" (port default 4433) */
	const char *token;     /* required: the JWT for AUTH */
	const char *agent_id;  /* optional: must equal the token's sub (default: the sub) */
	const char *tenant_id; /* optional: must equal the token's tenant (default: it) */
	const char *data_dir;  /* local store and resumption state; default "./agentsync-agent" */
	const char *cert, *key,
	    *ca;             /* required: PEM files; the certificate may be shared by agents */
	const char *hub_id;  /* optional: the id the hub's certificate must name (default: any
	                        the CA vouches for, then the one first seen is remembered) */
	uint32_t timeout_ms; /* longest wait of connect and sync; default 30000 */
	uint32_t batch_size; /* patterns per batch; default 100 */
	int compression;     /* 1 (default): compress batches when it pays */

	/* Events (pattern:received, pattern:conflict, peer:connected, ...) and log lines. */
	void (*on_event)(ags_agent *a, const ags_event *ev, void *user_data);
	void (*on_log)(ags_agent *a, int level, const char *message, void *user_data);
	void *user_data;
} ags_agent_config;

/* Fills cfg with the defaults. */
AGS_EXPORT void ags_agent_config_init(ags_agent_config *cfg);

/*
 * Makes an agent: opens its store in data_dir (created if needed) and
 * starts its network thread; nothing is sent until ags_agent_connect().
 * The token is read (not verified: that is the hub's job) for its sub and
 * tenant. On success *out belongs to the caller (ags_agent_del).
 * Errors: AGS_ERR_INVALID, AGS_ERR_CONFIG (err names the field: endpoint,
 * token, agentId, tenantId, ...), AGS_ERR_STORE, AGS_ERR_TLS, AGS_ERR_IO,
 * AGS_ERR_NOMEM.
 */
AGS_EXPORT int ags_agent_new(const ags_agent_config *cfg, ags_agent **out, ags_error *err);

/* Disconnects (saving the resumption state), stops and frees. NULL is a no-op. */
AGS_EXPORT void ags_agent_del(ags_agent *a);

/* The agent's id (the token's sub), owned by the agent. */
AGS_EXPORT const char *ags_agent_id(const ags_agent *a);

/*
 * Connects to the hub: QUIC handshake (resumed, with 0-RTT, when a previous
 * run left resumption state), AUTH, HELLO. Returns once the hub accepted the
 * agent, or with the hub's reason. A no-op when connected.
 * Errors: AGS_ERR_AUTH (the hub refused the token or the HELLO: err has its
 * reason), AGS_ERR_TLS (handshake refused), AGS_ERR_CLOSED, AGS_ERR_TIMEOUT,
 * AGS_ERR_NOT_FOUND (the host does not resolve), AGS_ERR_NOMEM.
 */
AGS_EXPORT int ags_agent_connect(ags_agent *a, ags_error *err);

/* Result of one sync (seed 004's sync). */
typedef struct ags_agent_sync_result {
	uint64_t pulled;    /* changes from the hub applied locally since the last sync */
	uint64_t pushed;    /* local changes the hub acknowledged since the last sync */
	uint64_t conflicts; /* records with a conflict reported since the last sync */
	double duration_ms;
} ags_agent_sync_result;

/*
 * Pushes every local change the hub has not acknowledged, then pulls every
 * change of the tenant the agent lacks; returns when both are durable on
 * both sides. `res` may be NULL.
 * Errors: AGS_ERR_STATE (not connected), AGS_ERR_CLOSED (the connection
 * dropped: connect again; nothing is lost), AGS_ERR_TIMEOUT, AGS_ERR_NOMEM.
 */
AGS_EXPORT int ags_agent_sync(ags_agent *a, ags_agent_sync_result *res, ags_error *err);

/*
 * Closes the connection to the hub (saving the resumption state) and returns
 * once it is closed: ags_agent_is_connected() is then 0, and a connect()
 * dials anew. Idempotent. Errors: AGS_ERR_INVALID, AGS_ERR_TIMEOUT (not
 * closed within timeout_ms), AGS_ERR_NOMEM.
 */
AGS_EXPORT int ags_agent_disconnect(ags_agent *a);

/*
 * Whether the agent is connected to the hub (HELLO exchanged). 0 as soon as
 * ags_agent_disconnect() returns, while the connection may still be closing.
 */
AGS_EXPORT int ags_agent_is_connected(ags_agent *a);

/* Seed 004's getSyncStats, and how the last connection was made. */
typedef struct ags_agent_sync_stats {
	int64_t last_sync_time_ms; /* wall clock of the last completed sync, 0 if none */
	char *vector_clock_json;   /* the agent's vector clock, {"agent":n,...}; malloc'd */
	int resumed;               /* the last connection resumed a TLS session */
	int early_data;            /* ... and the hub accepted its 0-RTT data */
} ags_agent_sync_stats;

/*
 * Fills *out (free its vector_clock_json with ags_agent_sync_stats_free).
 * Errors: AGS_ERR_INVALID, AGS_ERR_NOMEM.
 */
AGS_EXPORT int ags_agent_get_sync_stats(ags_agent *a, ags_agent_sync_stats *out);
AGS_EXPORT void ags_agent_sync_stats_free(ags_agent_sync_stats *st);

/*
 * Local writes (seed 004's insert/update/delete): applied to the agent's
 * store at once and durably, pushed on the next sync (at once when
 * connected). See ags_node_sync_pattern and ags_node_delete.
 */
AGS_EXPORT int ags_agent_put(ags_agent *a, const ags_pattern *p, ags_apply_result *res,
                             ags_error *err);
AGS_EXPORT int ags_agent_delete(ags_agent *a, const char *id, ags_apply_result *res,
                                ags_error *err);

/* Local reads; see ags_store_get and ags_store_query. */
AGS_EXPORT int ags_agent_get(ags_agent *a, const char *id, ags_pattern **out);
AGS_EXPORT int ags_agent_query(ags_agent *a, const ags_query *q, ags_pattern_cb cb,
                               void *user_data);

/* The agent's store: live patterns, change-log sequence, digest. Errors: AGS_ERR_NOMEM. */
AGS_EXPORT int ags_agent_store_state(ags_agent *a, uint64_t *patterns, uint64_t *seq,
                                     char digest[65]);

#ifdef __cplusplus
}
#endif

#endif /* AGENTSYNC_AGENT_H */
