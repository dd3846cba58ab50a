/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The federation hub (seed 004; docs/PROTOCOL.md, "Federation hub"): a node in hub mode
 * accepts agents over the same QUIC protocol as the mesh. Each agent's first
 * frame is AUTH {token}; the token (lib/codec/jwtauth.h) names the agent (sub) and
 * its tenant, and the connection is bound to that tenant for life. Each
 * tenant has its own store, vector clock and sync host, shared by the
 * sessions of its agents: an agent can only ever read and write its
 * tenant's store, and a change wakes only its tenant's sessions.
 *
 * Everything here runs on the node's loop thread, except ags_hub_new and
 * ags_hub_del (start and stop, with the loop not running).
 */
#ifndef AGS_HUB_H
#define AGS_HUB_H

#include <stddef.h>
#include <stdint.h>

#include <pthread.h>

#include "agentsync/agentsync.h"
#include "agentsync/node.h"
#include "store.h"
#include "sync.h"
#include "vclock.h"

struct ags_hub;
struct ags_hub_tenant;

/*
 * What the hub uses of the node that runs it (copied by ags_hub_new;
 * pointers must outlive the hub). The node's own store is the store of its
 * tenant (cfg->tenant); the other tenants' hosts start as copies of `host`.
 */
typedef struct ags_hub_env {
	const ags_node_config *cfg; /* hub settings, data_dir, tenant, fsync_full */
	ags_store *store;           /* the node's store, */
	pthread_mutex_t *store_mu;  /* its lock, */
	ags_vclock *clock;          /* its vector clock (under store_mu), */
	const char *store_id;       /* its id, */
	ags_sync_host *host;        /* and its sync host */
	/* Reports an event (tenant set) and a log line, as the node does. */
	void (*emit)(void *ud, const ags_event *ev);
	void (*log)(void *ud, int level, const char *msg);
	void *ud;
} ags_hub_env;

/* Longest tenant name (bytes); names are [A-Za-z0-9._-], not starting with '.'. */
#define AGS_HUB_TENANT_MAX 128

/* Whether `t` is a valid tenant name (it becomes a directory name). */
int ags_hub_tenant_name_ok(const char *t);

/*
 * The path of tenant `t`'s store under data_dir: "<data_dir>/tenants/<t>/store.db",
 * creating the directories. Errors: AGS_ERR_INVALID (bad name), AGS_ERR_TOO_LARGE
 * (path over cap), AGS_ERR_IO (err has errno's text), AGS_ERR_EXISTS (another tenant
 * has the same name but for case: on a case-insensitive file system they would share it).
 */
int ags_hub_tenant_path(const char *data_dir, const char *t, char *buf, size_t cap, ags_error *err);

/*
 * The key file of tenant `t`'s store: its own (cfg->hub.key_files), else
 * cfg->store_key_file; NULL for a plain store.
 */
const char *ags_hub_tenant_key_file(const ags_node_config *cfg, const char *t);

/*
 * Makes a hub (hub mode on) in environment `env`: loads the JWT keys named in
 * env->cfg and checks them (ags_jwt_config_check), and registers the node's
 * own store (already open, host initialised) as the tenant of cfg->tenant.
 * Agents' links are then of kind ags_hub_agent_ops (node_link.h) with the
 * hub as their owner. On success *out is the caller's (ags_hub_del).
 * Errors: AGS_ERR_CONFIG (err names the field), AGS_ERR_IO, AGS_ERR_NOMEM.
 */
int ags_hub_new(const ags_hub_env *env, struct ags_hub **out, ags_error *err);

/* Closes every tenant store but the node's own, frees the hub. NULL is a no-op. */
void ags_hub_del(struct ags_hub *h);

/* Most connections the hub's endpoint should allow (agents, n_peers, and a margin). */
size_t ags_hub_max_conns(const struct ags_hub *h, size_t n_peers);

/* Lets every session of the node's own tenant send what is new. */
void ags_hub_pump_default(struct ags_hub *h);

/* Housekeeping: pumps every session, closes refused links whose time is up, sweeps. */
void ags_hub_tick(struct ags_hub *h, uint64_t now_ms, int sweep);

/* Closes every agent connection (the node is stopping). */
void ags_hub_close_all(struct ags_hub *h);

/* Fills `st` (its tenants array malloc'd). */
void ags_hub_fill_stats(struct ags_hub *h, ags_hub_stats *st);

#endif
