/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon's configuration file (src/agentsyncd/config.c, config_hub.c;
 * CMake target agentsyncd_config, no HTTP): seed 000's
 * `.agentic-qe/config/quic.json`, as it stands, plus agentsync's own keys in
 * the same "quic" object (the full table is in docs/ARCHITECTURE.md, "Daemon, HTTP API and CLI").
 *
 * A parsed configuration is an ags_config: an ags_node_config ready for
 * ags_node_new() plus the daemon's API and log settings. The config owns
 * every string and array the node config points to, so it must outlive any
 * use of `node` (ags_node_new() copies what it needs).
 *
 * Paths in the file (tls.cert, tls.key, tls.ca, dataDir, the hub's key and
 * token files) are used as written:
 * a relative path is relative to the daemon's working directory, not to the
 * directory of the config file (as in seed 000, where the file is read from
 * the project directory).
 *
 * Errors follow one rule: a wrong type or value is AGS_ERR_CONFIG with
 * err->field set to the JSON path of the value ("quic.peers[1].port") and a
 * message saying what was expected and what was found ("must be an integer
 * from 1 to 65535, got 70000"); malformed JSON is AGS_ERR_JSON with
 * err->offset set to the byte offset. Unknown keys are not errors: each one
 * adds a warning ("quic.foo: unknown key, ignored").
 */
#ifndef AGS_CONFIG_H
#define AGS_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "agentsync/agentsync.h"
#include "agentsync/node.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest configuration file read, in bytes. */
#define AGS_CONFIG_MAX_BYTES (1024u * 1024u)

/* Where the HTTP API listens unless api.listen says otherwise. */
#define AGS_CONFIG_API_LISTEN_DEFAULT "127.0.0.1:7433"

/* Where seed 000 keeps the file; agentsyncd reads it when --config is not given. */
#define AGS_CONFIG_SEED_PATH ".agentic-qe/config/quic.json"

/* Data directory when neither the file nor the command line names one. */
#define AGS_CONFIG_DATA_DIR_DEFAULT "./agentsync-data"

/* Longest JWT accepted in quic.hub.upstream.token or its tokenFile (AGS_JWT_MAX_BYTES). */
#define AGS_CONFIG_TOKEN_MAX 8192

/* Most peers a file may list. */
#define AGS_CONFIG_MAX_PEERS 1024

/* Log line formats (log.format). Levels are node.h's AGS_LOG_*. */
enum ags_log_format { AGS_LOG_FORMAT_TEXT = 0, AGS_LOG_FORMAT_JSON = 1 };

/* A parsed configuration. Read the fields; change them only through the functions below. */
typedef struct ags_config {
	/* For ags_node_new(). node.node_id is NULL only for a config that has none yet. */
	ags_node_config node;
	int enabled;       /* quic.enabled (default 1) */
	int tls_from_file; /* 1 when quic.tls.cert was given; 0 means "make a self-signed one" */

	struct {
		const char
		    *listen;   /* "HOST:PORT" as written (default AGS_CONFIG_API_LISTEN_DEFAULT) */
		char host[64]; /* HOST part of listen, without IPv6 brackets */
		uint16_t port; /* PORT part of listen; 0 picks a free port */
		const char *token; /* bearer token required by the API, or NULL for none */
	} api;

	struct {
		int format; /* an ags_log_format (default text) */
		int level;  /* AGS_LOG_ERROR .. AGS_LOG_DEBUG (default AGS_LOG_INFO) */
	} log;

	/*
	 * quic.hub.upstream.tokenFile, or NULL. ags_config_load_files() reads it
	 * into node.hub.upstream.token.
	 */
	const char *hub_token_file;

	/* Warnings found while parsing ("quic.foo: unknown key, ignored"), owned by the config. */
	char **warnings;
	size_t n_warnings;

	/* Private: every allocation the config owns. */
	void **owned;
	size_t n_owned, cap_owned;
} ags_config;

/*
 * Values from the command line that replace the file's (NULL or -1: keep
 * the file's). They are applied before the checks that need them (a
 * required nodeId, a peer that names the node itself).
 */
typedef struct ags_config_overrides {
	const char *node_id;    /* --node-id */
	const char *host;       /* --host */
	const char *data_dir;   /* --data */
	int port;               /* --port, 0-65535, or -1 */
	int log_format;         /* --log-format, an ags_log_format, or -1 */
	const char *api_listen; /* --api, "HOST:PORT" */
	int hub; /* --hub: 1 turns hub mode on (quic.hub.enabled); -1 keeps the file's */
	/* $AGENTSYNC_STORE_KEY_FILE: replaces quic.storage.encryption.keyFile; NULL keeps it */
	const char *store_key_file;
} ags_config_overrides;

/* Sets every override to "none". */
void ags_config_overrides_init(ags_config_overrides *ov);

/*
 * Makes a configuration with every default and no node id (nodeId is then
 * the caller's business, e.g. ags_config_set_str(c, &c->node.node_id, ...)).
 * On success *out owns it (free with ags_config_del).
 * Errors: AGS_ERR_INVALID (out NULL), AGS_ERR_NOMEM.
 */
int ags_config_new(ags_config **out);

/* Frees a configuration and everything it owns. NULL is a no-op. */
void ags_config_del(ags_config *c);

/*
 * Parses and validates the configuration text `json` (`len` bytes, need not
 * be NUL-terminated), applies `ov` (may be NULL), and checks the result:
 * quic.nodeId is required (a file must name its node; only agentsyncd with
 * no config at all takes the id from the host name), peer ids are unique
 * and differ from nodeId, retry.maxDelay >= retry.baseDelay,
 * limits.maxFrameBytes >= limits.maxPatternBytes, and the hub's settings
 * fit together (ags_config_check_hub).
 *
 * On success *out owns a new configuration (free with ags_config_del) whose
 * `warnings` list unknown keys; on failure *out is NULL.
 * Errors: AGS_ERR_INVALID (json or out NULL), AGS_ERR_NOMEM,
 * AGS_ERR_TOO_LARGE (over AGS_CONFIG_MAX_BYTES), AGS_ERR_JSON (err->offset
 * set; the message gives line and column too), AGS_ERR_CONFIG (err->field is
 * the JSON path, or the option name for a bad override such as "--node-id").
 */
int ags_config_parse(const char *json, size_t len, const ags_config_overrides *ov, ags_config **out,
                     ags_error *err);

/*
 * Reads the file at `path` and parses it as ags_config_parse() does. Messages
 * do not repeat the path; callers print it.
 * Errors: those of ags_config_parse(), and AGS_ERR_IO / AGS_ERR_NOT_FOUND
 * when the file cannot be read (message has the errno text).
 */
int ags_config_load(const char *path, const ags_config_overrides *ov, ags_config **out,
                    ags_error *err);

/*
 * The configuration used when there is no file at all: every default, node
 * id from `hostname` made into a valid id (ags_config_sanitize_id; NULL
 * means gethostname()), unless ov->node_id is set, and data in
 * AGS_CONFIG_DATA_DIR_DEFAULT unless ov->data_dir is set. tls_from_file is
 * 0: the caller makes a self-signed CA and certificate.
 * Errors: AGS_ERR_INVALID, AGS_ERR_NOMEM, AGS_ERR_CONFIG (bad override, or
 * --hub without a key: see ags_config_check_hub).
 */
int ags_config_new_default(const char *hostname, const ags_config_overrides *ov, ags_config **out,
                           ags_error *err);

/*
 * Checks what can be checked on disk without writing anything: that the TLS
 * files named by the config can be read, that dataDir, when it exists, is
 * a directory, and in hub mode that the key files can be read and hold
 * usable keys (ags_config_check_hub_files). err->field is the config path
 * at fault ("quic.tls.cert").
 * Errors: AGS_ERR_CONFIG, AGS_ERR_NOMEM.
 */
int ags_config_check_files(const ags_config *c, ags_error *err);

/*
 * Reads what the configuration names but the node wants as contents: the
 * upstream token from quic.hub.upstream.tokenFile (trailing white space
 * dropped; 1 to AGS_CONFIG_TOKEN_MAX bytes without control characters) into
 * node.hub.upstream.token. A no-op when no file is named.
 * Errors: AGS_ERR_INVALID, AGS_ERR_CONFIG (err->field is the path:
 * unreadable, empty, too long, bad characters), AGS_ERR_NOMEM.
 */
int ags_config_load_files(ags_config *c, ags_error *err);

/*
 * The hub checks that need several keys (src/agentsyncd/config_hub.c; part of
 * ags_config_parse): in hub mode (quic.hub.enabled or --hub) every
 * algorithm in hub.algorithms has its key file, or, without that list, at
 * least one key file is named; hub.upstream has an endpoint exactly when it
 * has a token or tokenFile, and not both of those.
 * Errors: AGS_ERR_CONFIG (err->field is the JSON path).
 */
int ags_config_check_hub(const ags_config *c, ags_error *err);

/*
 * In hub mode, reads the key files (each at most 1 MiB) and checks the keys
 * the allowed algorithms need with ags_jwt_config_check: an HS256 secret of
 * at least 32 bytes (one final newline dropped, as the hub does), an RSA
 * public key of at least 2048 bits, an EC P-256 public key. Also checks
 * that hub.upstream.tokenFile can be read. A no-op outside hub mode except
 * for the token file.
 * Errors: AGS_ERR_CONFIG (err->field the key's JSON path), AGS_ERR_NOMEM.
 */
int ags_config_check_hub_files(const ags_config *c, ags_error *err);

/*
 * Whether `s` is "quic://HOST[:PORT]" with a non-empty host (IPv6 in
 * brackets) and a port from 1 to 65535 when given.
 */
int ags_config_endpoint_valid(const char *s);

/*
 * Sets the string at `*slot` (which must be a `const char *` inside c, such
 * as &c->node.tls.cert) to a copy of `value` (NULL allowed) owned by c.
 * Errors: AGS_ERR_INVALID, AGS_ERR_NOMEM.
 */
int ags_config_set_str(ags_config *c, const char **slot, const char *value);

/*
 * Writes into out (cap bytes, at least 2) a valid node id made from `in`:
 * lowercase letters, digits, '.', '_' and '-', others replaced by '-', cut
 * to AGS_NODE_ID_MAX bytes; "node" when nothing is left. Returns the length.
 */
size_t ags_config_sanitize_id(const char *in, char *out, size_t cap);

/*
 * Whether `id` is a valid node or peer id: 1 to AGS_NODE_ID_MAX bytes of
 * ASCII letters, digits, '.', '_' and '-', not starting with '.' or '-'.
 */
int ags_config_id_valid(const char *id);

/*
 * Splits "HOST:PORT" (IPv6 as "[::1]:PORT") into host (cap bytes) and port.
 * Errors: AGS_ERR_CONFIG (not of that form, port not 0-65535, host too long).
 */
int ags_config_split_hostport(const char *s, char *host, size_t cap, uint16_t *port);

/* Returns the AGS_LOG_* level named `name` ("error", "warn", "info", "debug"), or -1. */
int ags_config_log_level(const char *name);

/*
 * Calls cb with the path of every key the parser knows ("quic.port",
 * "quic.tls.cert", "quic.peers", "quic.peers[].id", ...), in table order:
 * objects are not listed themselves, only their keys. For `agentsyncd
 * --config-keys` and the test that keeps agentsync.json(5) complete.
 */
void ags_config_keys(void (*cb)(const char *path, void *ud), void *ud);

/* Returns the name of an AGS_LOG_* level ("ERROR", "WARN", "INFO", "DEBUG"). */
const char *ags_config_log_level_name(int level);

#ifdef __cplusplus
}
#endif

#endif
