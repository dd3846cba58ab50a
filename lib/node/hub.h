/*
 * The federation hub (seed 004; docs/parts/hub.md): a node in hub mode
 * accepts agents over the same QUIC protocol as the mesh. Each agent's first
 * frame is AUTH {token}; the token (lib/jwtauth.h) names the agent (sub) and
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

#include "agentsync/agentsync.h"
#include "agentsync/node.h"

struct ags_node;
struct ags_link;
struct ags_hub;
struct ags_hub_tenant;

/* Longest tenant name (bytes); names are [A-Za-z0-9._-], not starting with '.'. */
#define AGS_HUB_TENANT_MAX 128

/* Whether `t` is a valid tenant name (it becomes a directory name). */
int ags_hub_tenant_name_ok(const char *t);

/*
 * The path of tenant `t`'s store under data_dir: "<data_dir>/tenants/<t>/store.db",
 * creating the directories. Errors: AGS_ERR_INVALID (bad name), AGS_ERR_TOO_LARGE
 * (path over cap), AGS_ERR_IO (err has errno's text).
 */
int ags_hub_tenant_path(const char *data_dir, const char *t, char *buf, size_t cap, ags_error *err);

/*
 * Makes the hub of node `n` (hub mode on): loads the JWT keys named in its
 * configuration and checks them (ags_jwt_config_check), and registers the
 * node's own store (already open, host initialised) as the tenant of
 * cfg.tenant. On success *out belongs to the node (ags_hub_del).
 * Errors: AGS_ERR_CONFIG (err names the field), AGS_ERR_IO, AGS_ERR_NOMEM.
 */
int ags_hub_new(struct ags_node *n, struct ags_hub **out, ags_error *err);

/* Closes every tenant store but the node's own, frees the hub. NULL is a no-op. */
void ags_hub_del(struct ags_hub *h);

/* Most connections the hub's endpoint should allow (agents plus a margin). */
size_t ags_hub_max_conns(const struct ags_hub *h);

/* A tenant's name (owned by the tenant), or NULL for NULL. */
const char *ags_hub_tenant_name(const struct ags_hub_tenant *t);

/* A connection from an agent completed its handshake: wait for AUTH. */
void ags_hub_on_connected(struct ags_hub *h, struct ags_link *l);

/*
 * Stream data of an agent before its AUTH was accepted: reads the AUTH
 * frame, verifies the token, binds the link to its tenant and starts its
 * sync session (l->sync). *used gets the bytes taken; what is left belongs
 * to the session. Returns 0, or a negative AGS_ERR_* when the link was
 * refused (the hub has sent ERROR and is closing it; drop the rest).
 */
int ags_hub_preauth(struct ags_hub *h, struct ags_link *l, const uint8_t *data, size_t len,
                    size_t *used);

/* The HELLO of an agent's session arrived (ags_sync_host.hello); 0 to go on. */
int ags_hub_hello(struct ags_hub *h, struct ags_link *l, const char *instance);

/* An agent's connection closed: forget its link (the caller frees it). */
void ags_hub_on_closed(struct ags_hub *h, struct ags_link *l);

/* Lets every session of the node's own tenant send what is new. */
void ags_hub_pump_default(struct ags_hub *h);

/* Housekeeping: pumps every session, closes refused links whose time is up, sweeps. */
void ags_hub_tick(struct ags_hub *h, uint64_t now_ms, int sweep);

/* Closes every agent connection (the node is stopping). */
void ags_hub_close_all(struct ags_hub *h);

/* Fills `st` (its tenants array malloc'd). */
void ags_hub_fill_stats(struct ags_hub *h, ags_hub_stats *st);

#endif
