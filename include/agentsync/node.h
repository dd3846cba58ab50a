/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agentsync node: seed 000's QUICServer. A node owns a store, listens on
 * QUIC (UDP), keeps connections to its peers and keeps every peer's store in
 * sync with its own: a pattern given to any node reaches every peer, durably.
 *
 * Threads: a started node runs its libuv loop on a thread of its own. Every
 * function here is safe to call from any thread. Callbacks (events, logs) are
 * called on the node's loop thread: they must not block for long and must not
 * call ags_node_stop() or ags_node_del() (any other function is fine).
 */
#ifndef AGENTSYNC_NODE_H
#define AGENTSYNC_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "agentsync/agentsync.h"
#include "agentsync/event.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AGS_NODE_ID_MAX 64

typedef struct ags_node ags_node;

/* A configured peer (seed 000: peers[{id, address, port, priority}]). */
typedef struct ags_peer_config {
	const char *id;
	const char *address;
	uint16_t port;
	int priority;
} ags_peer_config;

/*
 * Node configuration. Initialise with ags_node_config_init() (which sets the
 * defaults below), then set fields. Strings are copied by ags_node_new().
 */
typedef struct ags_node_config {
	int version; /* AGS_NODE_CONFIG_VERSION, set by ags_node_config_init */

	const char *node_id;  /* required: this node's id (must match its certificate) */
	const char *host;     /* bind address; default "127.0.0.1" */
	uint16_t port;        /* UDP port; default 4433; 0 picks a free one */
	const char *data_dir; /* store directory; default "./agentsync-data" */
	const char *tenant;   /* default "default" */

	const ags_peer_config *peers; /* peers connected at start */
	size_t n_peers;
	/* Only these peer ids may connect (seed "whitelist peers"); NULL/0: any
	 * id the CA vouches for. */
	const char *const *allowed_ids;
	size_t n_allowed_ids;

	uint32_t sync_interval_ms; /* resend/flush interval; default 1000 */
	uint32_t batch_size;       /* patterns per batch; default 100 */
	int compression;           /* 1 (default): gzip or zstd when it pays; 0: never */
	uint32_t window;           /* unacknowledged batches in flight per peer; default 16 */

	struct {
		const char *cert, *key, *ca; /* PEM files */
		int reject_unauthorized;     /* default 1 */
		const char *const *pins;     /* SPKI SHA-256 hex pins, optional */
		size_t n_pins;
		const char *keylog_file; /* optional NSS key log; SSLKEYLOGFILE is ignored */
	} tls;

	struct {
		uint32_t max_attempts;     /* default 3 */
		uint32_t base_delay_ms;    /* default 1000 */
		uint32_t max_delay_ms;     /* default 10000 */
		double backoff_multiplier; /* default 2 */
	} retry;

	uint32_t health_interval_ms;   /* default 30000 */
	uint32_t degrade_after_errors; /* default 5 */
	uint32_t idle_timeout_ms;      /* default 30000 */
	uint32_t keepalive_ms;         /* default 10000 */
	int stateless_retry;           /* address validation with Retry; default 0 */
	/*
	 * Handshakes (docs/SECURITY.md): each may take handshake_timeout_ms (default 10000), in
	 * and out; a dial without an answer by then counts as a failure (peer:error) and
	 * is retried on the retry schedule. Incoming handshakes have their own budget apart
	 * from established connections: max_handshakes at once (default 256), of which
	 * max_handshakes_per_addr from one IP address (default 32); past a quarter of the budget
	 * new ones must first answer a Retry (address validation).
	 */
	uint32_t handshake_timeout_ms;
	uint32_t max_handshakes;
	uint32_t max_handshakes_per_addr;

	/* Per-peer outgoing rate limits; 0 = unlimited. Excess waits. */
	double rate_patterns_per_s;
	double rate_bytes_per_s;

	/* What this node asks its peers to send it (seed "pattern filtering");
	 * NULL/0 = everything. */
	const char *const *filter_types;
	size_t n_filter_types;
	const char *const *filter_tags;
	size_t n_filter_tags;

	size_t max_pattern_bytes;   /* default AGS_PATTERN_MAX_BYTES_DEFAULT */
	size_t max_frame_bytes;     /* default 16 MiB */
	int fsync_full;             /* store durability, see ags_store_opts */
	uint32_t sweep_interval_ms; /* expiry sweep; default 60000 */
	/*
	 * After input, the loop thread keeps polling without sleeping for this
	 * many microseconds before it blocks: a reply that comes within it is
	 * read without a thread wake-up (tens of microseconds on a VM). Costs up
	 * to that much CPU per burst of input. Default 200; 0 = always sleep.
	 */
	uint32_t busy_poll_us;

	unsigned test_drop_permille; /* TEST ONLY: drop this many per mille of received datagrams */

	/*
	 * Federation hub (seed 004; docs/PROTOCOL.md, "Federation hub"). With `enabled`, the node
	 * serves agents: each connects with mutual TLS (any certificate the CA
	 * vouches for; agents may share one), sends AUTH {token} first, and is
	 * bound to the token's tenant for the life of the connection. Each tenant
	 * has its own store (dataDir/tenants/<tenant>/store.db); the node's own
	 * store is the one of `tenant`. Strings and the secret are copied.
	 */
	struct {
		int enabled;
		/* Allowed JWT algorithms ("HS256", "RS256", "ES256"); NULL/0: every
		 * algorithm a key is configured for. */
		const char *const *algorithms;
		size_t n_algorithms;
		const uint8_t *hs256_secret; /* HS256 secret, at least 32 bytes, or NULL */
		size_t hs256_secret_len;
		const char
		    *hs256_secret_file; /* or a file holding it (one final newline dropped) */
		const char *rs256_public_key_file; /* PEM RSA public key (>= 2048 bits), or NULL */
		const char *es256_public_key_file; /* PEM EC P-256 public key, or NULL */
		const char *issuer;                /* required "iss", or NULL: not checked */
		const char *audience;              /* required in "aud", or NULL: not checked */
		int64_t skew_s;                    /* exp/nbf skew; 0: 30 s; negative: none */
		uint32_t max_agents;               /* agent connections at once; default 10000 */
		uint32_t max_tenants;              /* tenants with an open store; default 1000 */
		/*
		 * Keep a hub as this node's upstream (any node, hub or not): the node
		 * dials it, sends AUTH {token} and HELLO, pushes its log, pulls
		 * everything it lacks, then stays connected, pushing and receiving
		 * live; it redials with the retry schedule. The token's sub must be
		 * node_id and its tenant `tenant`; node_id may then be any valid sub
		 * (1-256 bytes of [A-Za-z0-9._:@-]).
		 */
		struct {
			const char *endpoint; /* "quic://host:port" (port default 4433), or NULL */
			const char *token;    /* the JWT */
			const char
			    *hub_id; /* the hub certificate's id, or NULL: any the CA vouches for */
		} upstream;
		/*
		 * Encryption at rest per tenant: the store of tenant key_tenants[i]
		 * is encrypted with the key in key_files[i] (n_tenant_keys pairs;
		 * see ags_store_opts.key_file), so one tenant's data cannot be read
		 * with another's key. A tenant not listed uses store_key_file.
		 */
		const char *const *key_tenants;
		const char *const *key_files;
		size_t n_tenant_keys;
	} hub;

	/*
	 * Encryption at rest (docs/ARCHITECTURE.md, "Encryption at rest"): the
	 * file holding the store's 256-bit key, or NULL (default) for a plain
	 * SQLite store. See ags_store_opts.key_file; a store that the key does
	 * not open makes ags_node_start fail, naming the files.
	 */
	const char *store_key_file;
} ags_node_config;

#define AGS_NODE_CONFIG_VERSION 1

/* Fills cfg with the defaults. */
AGS_EXPORT void ags_node_config_init(ags_node_config *cfg);

#define AGS_NODE_CALLBACKS_VERSION 1

/* Callbacks, called on the node's loop thread. Any may be NULL. */
typedef struct ags_node_callbacks {
	int version; /* AGS_NODE_CALLBACKS_VERSION */
	void (*on_event)(ags_node *node, const ags_event *ev, void *user_data);
	void (*on_log)(ags_node *node, int level, const char *message, void *user_data);
} ags_node_callbacks;

/*
 * Makes a node from cfg (copied). Nothing is opened or bound until
 * ags_node_start(). `cb` (copied; may be NULL) and `user_data` receive events.
 * Errors: AGS_ERR_INVALID, AGS_ERR_CONFIG (err names the field), AGS_ERR_NOMEM.
 */
AGS_EXPORT int ags_node_new(const ags_node_config *cfg, const ags_node_callbacks *cb,
                            void *user_data, ags_node **out, ags_error *err);

/*
 * Runs every check ags_node_start runs before it binds a port, changing
 * nothing: the configuration (as ags_node_new), the TLS files (certificate,
 * a key that matches it, a CA file holding a certificate, pins), that the
 * certificate names cfg->node_id when peers are authenticated, and that
 * dataDir is a writable directory or can be created. err->field names the
 * key (tls.cert, tls.key, tls.ca, dataDir, ...). Without tls.cert and tls.key
 * (a caller that makes its own certificates before it starts) TLS is not
 * checked. For `agentsyncd --check`.
 * Errors: AGS_ERR_INVALID, AGS_ERR_CONFIG, AGS_ERR_TLS, AGS_ERR_IO, AGS_ERR_NOMEM.
 */
AGS_EXPORT int ags_node_check(const ags_node_config *cfg, ags_error *err);

/*
 * Opens the store, loads TLS credentials, binds the UDP socket, starts the
 * loop thread and connects the configured peers. Returns when the node is
 * listening. Errors: AGS_ERR_STATE (already started), AGS_ERR_STORE,
 * AGS_ERR_TLS, AGS_ERR_IO (bind failed), AGS_ERR_NOMEM.
 */
AGS_EXPORT int ags_node_start(ags_node *node, ags_error *err);

/*
 * Stops the node: closes every connection with a reason, waits for the loop
 * thread, closes the store. Changes already applied are durable. Idempotent.
 */
AGS_EXPORT int ags_node_stop(ags_node *node);

/* Stops (if needed) and frees the node. NULL is a no-op. */
AGS_EXPORT void ags_node_del(ags_node *node);

/* The UDP port the node is bound to (after start), or 0. */
AGS_EXPORT uint16_t ags_node_port(ags_node *node);

/* The node's id (owned by the node). */
AGS_EXPORT const char *ags_node_id(ags_node *node);

/*
 * Adds a peer and connects to it; failures are retried with exponential
 * backoff and jitter (retry config), and after max_attempts the peer is
 * marked down and still retried every max_delay until removed.
 * Errors: AGS_ERR_INVALID, AGS_ERR_EXISTS (already a peer), AGS_ERR_STATE.
 */
AGS_EXPORT int ags_node_connect_peer(ags_node *node, const char *address, uint16_t port,
                                     const char *id);

/* Closes the connection to peer `id` and forgets it. Errors: AGS_ERR_NOT_FOUND. */
AGS_EXPORT int ags_node_disconnect_peer(ags_node *node, const char *id);

/*
 * Applies `p` to the local store durably, then syncs it: to every peer when
 * peer_ids is NULL, else only to those peers (who do not relay it further).
 * `res` (may be NULL) gets the local apply result. Returns once the change is
 * durable locally; delivery to peers is asynchronous (see events and lag).
 * Errors: AGS_ERR_STATE (not started), AGS_ERR_STORE, AGS_ERR_INVALID.
 */
AGS_EXPORT int ags_node_sync_pattern(ags_node *node, const ags_pattern *p,
                                     const char *const *peer_ids, size_t n_peer_ids,
                                     ags_apply_result *res, ags_error *err);

/* Batched form of ags_node_sync_pattern to every peer: one transaction. */
AGS_EXPORT int ags_node_sync_patterns(ags_node *node, const ags_pattern *const *p, size_t cnt,
                                      ags_apply_result *res, ags_error *err);

/*
 * Deletes record `id`: writes a tombstone one version above the stored one
 * and syncs it. Errors: AGS_ERR_NOT_FOUND, AGS_ERR_STORE, AGS_ERR_STATE.
 */
AGS_EXPORT int ags_node_delete(ags_node *node, const char *id, ags_apply_result *res,
                               ags_error *err);

/*
 * Reloads the TLS certificate, key and CA from the configured files (seed
 * "rotate keys"): new connections use them; existing ones are kept.
 * Errors: AGS_ERR_STATE (not started), AGS_ERR_IO, AGS_ERR_TLS (the files
 * are not usable; the old credentials stay in force).
 */
AGS_EXPORT int ags_node_reload_tls(ags_node *node, ags_error *err);

/*
 * An online, consistent copy of the node's store (in hub mode: of its own
 * tenant's store) into the new file `dst`, made while the node runs; see
 * ags_store_backup (which this calls on the store's file). The copy keeps
 * the store's identity. `info` (may be NULL) gets what it holds.
 * Errors: AGS_ERR_STATE (not started), and those of ags_store_backup.
 */
AGS_EXPORT int ags_node_backup(ags_node *node, const char *dst, ags_store_info *info,
                               ags_error *err);

/* Wakes every peer's sender now (normally driven by changes and the interval). */
AGS_EXPORT int ags_node_sync_now(ags_node *node);

/* Reads from the store (a read connection; safe from any thread). See ags_store_get. */
AGS_EXPORT int ags_node_get(ags_node *node, const char *id, ags_pattern **out);
/* See ags_store_query. The callback runs on the calling thread. */
AGS_EXPORT int ags_node_query(ags_node *node, const ags_query *q, ags_pattern_cb cb,
                              void *user_data);

typedef struct ags_peer_state {
	char id[AGS_NODE_ID_MAX + 1];
	char address[80]; /* "host:port" */
	int connected;
	int degraded;
	uint64_t sync_count; /* batches acknowledged by the peer */
	uint64_t error_count;
	double latency_ms; /* smoothed RTT from QUIC */
	uint64_t lag;      /* changes not yet acknowledged by the peer */
	uint64_t bytes_in, bytes_out;
	uint64_t acked_seq;         /* our change-log sequence the peer has acknowledged */
	uint64_t patterns_received; /* entries of batches received from the peer, since start */
	/* Entries refused for good, both ways (ours it refused, its we refused), since start
	 * (docs/PROTOCOL.md, "Refusals"). */
	uint64_t rejected;
	/* store:rollback events with the peer since start: our store or its went back
	 * (docs/PROTOCOL.md, "Store epochs"). */
	uint64_t rollbacks;
} ags_peer_state;

/*
 * Slots of ags_node_state's per-codec byte counters: the BATCH codec byte
 * (0 none, 1 gzip, 2 zstd; docs/PROTOCOL.md), then 3 for received frames
 * too short to have one or with an unknown one.
 */
#define AGS_NODE_CODECS 4

typedef struct ags_node_state {
	int running;
	size_t connections;
	struct {
		uint64_t total_syncs, successful_syncs, failed_syncs;
		double average_latency_ms;
		uint64_t bytes_transferred; /* wire bytes of batch frames, both directions */
		double compression_ratio;   /* wire bytes / raw bytes of batches sent */
		/* bytes_transferred by direction and codec (AGS_NODE_CODECS slots): they add
		 * up to it. */
		uint64_t codec_bytes_out[AGS_NODE_CODECS], codec_bytes_in[AGS_NODE_CODECS];
	} stats;
	ags_peer_state *peers;
	size_t n_peers;
	struct {
		char id[33];
		uint64_t patterns, seq;
		char digest[65];
	} store;
} ags_node_state;

/* One tenant of a hub (ags_node_get_hub_stats). */
typedef struct ags_hub_tenant_stats {
	char tenant[129];
	size_t agents_connected;   /* authenticated agent connections now */
	uint64_t patterns;         /* live records in the tenant's store */
	uint64_t changes;          /* the tenant store's change-log sequence (changes stored) */
	uint64_t changes_received; /* changes from agents that altered the store, since start */
	uint64_t conflicts;        /* rows in the tenant's conflicts table */
	char digest[65];           /* the tenant store's digest */
} ags_hub_tenant_stats;

/* A hub's per-tenant state, for /v1/state and /metrics. */
typedef struct ags_hub_stats {
	int enabled;                   /* hub mode is on */
	size_t agents_connected;       /* over all tenants */
	uint64_t auth_ok;              /* AUTHs accepted since start */
	uint64_t auth_refused;         /* connections refused before or at AUTH since start */
	ags_hub_tenant_stats *tenants; /* tenants with an open store, by name */
	size_t n_tenants;
} ags_hub_stats;

/*
 * A snapshot of the hub's tenants (enabled 0 and no tenants when hub mode
 * is off); free with ags_node_hub_stats_del. Tenants are opened when their
 * first agent connects (and the node's own tenant at start).
 * Errors: AGS_ERR_INVALID, AGS_ERR_NOMEM, AGS_ERR_STATE (not started).
 */
AGS_EXPORT int ags_node_get_hub_stats(ags_node *node, ags_hub_stats **out);
AGS_EXPORT void ags_node_hub_stats_del(ags_hub_stats *st);

/* A snapshot of the node's state; free with ags_node_state_del. Errors: AGS_ERR_NOMEM. */
AGS_EXPORT int ags_node_get_state(ags_node *node, ags_node_state **out);
AGS_EXPORT void ags_node_state_del(ags_node_state *st);

#ifdef __cplusplus
}
#endif

#endif /* AGENTSYNC_NODE_H */
