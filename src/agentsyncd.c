/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agentsyncd: one agentsync node with its local HTTP API.
 *
 * Reads the configuration (seed 000's quic.json), validates all of it before
 * binding or writing anything, starts the node and the API, prints
 * "listening quic=HOST:PORT api=HOST:PORT node=ID" on stdout once ready, and
 * runs until SIGTERM or SIGINT. SIGHUP re-reads the configuration: peers are
 * added and removed, the API token and log settings change, and the TLS
 * files are re-read. See docs/ARCHITECTURE.md, "Daemon, HTTP API and CLI". With --hub (or
 * quic.hub.enabled) the node is a federation hub serving agents (seed 004;
 * docs/ARCHITECTURE.md, "The federation hub in agentsyncd and the CLI").
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agentsync/agentsync.h"
#include "agentsync/node.h"
#include "agentsyncd/log.h"
#include "agentsyncd/api.h"
#include "agentsync/certs.h"
#include "agentsyncd/config.h"
#include "agentsyncd/notify.h"

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

struct daemon {
	const char *config_path; /* NULL when running with no config at all */
	ags_config_overrides ov;
	int log_level_override; /* -1: the config's */
	ags_config *cfg;
	ags_node *node;
	ags_api *api;
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: agentsyncd [OPTIONS]\n"
	           "Runs one agentsync node and its local HTTP API.\n"
	           "\n"
	           "  --config FILE      configuration file (seed 000's quic.json); default:\n"
	           "                     " AGS_CONFIG_SEED_PATH " when it exists, else none\n"
	           "  --node-id ID       this node's id (replaces quic.nodeId)\n"
	           "  --host ADDR        QUIC bind address (replaces quic.host)\n"
	           "  --port N           QUIC UDP port, 0 picks one (replaces quic.port)\n"
	           "  --api HOST:PORT    HTTP API address (replaces quic.api.listen)\n"
	           "  --data DIR         data directory (replaces quic.dataDir)\n"
	           "  --log-format F     text or json (replaces quic.log.format)\n"
	           "  --log-level L      error, warn, info or debug (replaces quic.log.level)\n"
	           "  --check            run every check a start runs short of binding ports\n"
	           "                     (config, TLS files, certificate vs nodeId, dataDir)\n"
	           "                     and exit\n"
	           "  --config-keys      list every configuration key and exit\n"
	           "  --hub              run as a federation hub for agents (replaces\n"
	           "                     quic.hub.enabled; needs a key in quic.hub)\n"
	           "  -h, --help         this help\n"
	           "  --version          print the version\n"
	           "\n"
	           "With no configuration at all: node id from the host name, data "
	           "in\n" AGS_CONFIG_DATA_DIR_DEFAULT
	           ", a self-signed CA and certificate made in DATA/certs.\n"
	           "Relative paths in the configuration are relative to the working directory.\n"
	           "\n"
	           "Signals: SIGTERM/SIGINT stop cleanly; SIGHUP re-reads the configuration.\n"
	           "Exit status: 0 stopped cleanly (or --check passed), 1 runtime error,\n"
	           "2 usage or configuration error.\n");
}

static void print_key(const char *path, void *ud)
{
	puts(path);
}

static void on_event(ags_node *node, const ags_event *ev, void *user_data)
{
	struct daemon *d = user_data;
	dlog_event(ev);
	if (d->api)
		ags_api_on_event(d->api, ev);
}

static void on_node_log(ags_node *node, int level, const char *message, void *user_data)
{
	dlog(level, "node", "%s", message);
}

static void on_api_log(void *user_data, int level, const char *message)
{
	dlog(level, "api", "%s", message);
}

/* Logs a configuration failure as "config FILE: FIELD: MESSAGE". */
static void log_config_error(const char *path, const ags_error *err)
{
	dlog(AGS_LOG_ERROR, "config", "%s: %s%s%s", path ? path : "(no file)", err->field,
	     err->field[0] ? ": " : "", err->message[0] ? err->message : ags_strerror(err->code));
}

/*
 * Logs a failure of the node library as a config error: its fields are
 * keys of the node's object, "quic" in the file ("tls.key" is quic.tls.key).
 */
static void log_node_error(const char *path, const ags_error *err)
{
	int bare = err->field[0] && strncmp(err->field, "quic.", 5) != 0;
	dlog(AGS_LOG_ERROR, "config", "%s: %s%s%s%s", path ? path : "(no config file)",
	     bare ? "quic." : "", err->field, err->field[0] ? ": " : "",
	     err->message[0] ? err->message : ags_strerror(err->code));
}

/*
 * --check: every check a start makes short of binding ports (the files,
 * the certificate against nodeId, the data directory). Returns 0 or -1.
 */
static int check_startable(struct daemon *d)
{
	ags_config *c = d->cfg;
	if (!c->tls_from_file) {
		/* The start makes its CA in dataDir/certs unless it is there: check it if it is. */
		char cert[4200], key[4200], ca[4200];
		snprintf(cert, sizeof(cert), "%s/certs/%s.pem", c->node.data_dir, c->node.node_id);
		snprintf(key, sizeof(key), "%s/certs/%s-key.pem", c->node.data_dir,
		         c->node.node_id);
		snprintf(ca, sizeof(ca), "%s/certs/ca.pem", c->node.data_dir);
		if (access(cert, F_OK) == 0 &&
		    (ags_config_set_str(c, &c->node.tls.cert, cert) < 0 ||
		     ags_config_set_str(c, &c->node.tls.key, key) < 0 ||
		     ags_config_set_str(c, &c->node.tls.ca, ca) < 0))
			return -1;
	}
	ags_error err;
	ags_error_clear(&err);
	if (ags_node_check(&c->node, &err) < 0) {
		log_node_error(d->config_path, &err);
		return -1;
	}
	return 0;
}

/* Loads the configuration the command line asks for; logs and returns an error on failure. */
static int load_config(struct daemon *d, ags_config **out)
{
	ags_error err;
	ags_error_clear(&err);
	int rc;
	if (d->config_path)
		rc = ags_config_load(d->config_path, &d->ov, out, &err);
	else
		rc = ags_config_new_default(NULL, &d->ov, out, &err);
	if (rc == 0)
		rc = ags_config_check_files(*out, &err);
	if (rc == 0)
		rc = ags_config_load_files(*out, &err);
	if (rc < 0) {
		log_config_error(d->config_path, &err);
		ags_config_del(*out);
		*out = NULL;
		return rc;
	}
	return 0;
}

static void apply_log_settings(struct daemon *d)
{
	int level = d->log_level_override >= 0 ? d->log_level_override : d->cfg->log.level;
	dlog_setup(d->cfg->log.format, level);
}

/* mkdir -p with mode 0700 for what it creates. */
static int mkdir_p(const char *path)
{
	char buf[4096];
	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -1;
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/*
 * With no TLS files configured: a self-signed CA and a certificate for this
 * node, made (or reused) in DATA/certs. rejectUnauthorized stays as it is
 * (on by default): peers then need certificates from this CA.
 */
static int make_own_certs(struct daemon *d)
{
	ags_config *c = d->cfg;
	char dir[4096], cert[4200], key[4200], ca[4200];
	snprintf(dir, sizeof(dir), "%s/certs", c->node.data_dir);
	ags_error err;
	ags_error_clear(&err);
	if (mkdir_p(c->node.data_dir) < 0) {
		dlog(AGS_LOG_ERROR, "daemon", "cannot create data directory %s: %m",
		     c->node.data_dir);
		return -1;
	}
	if (ags_certs_self_signed(dir, c->node.node_id, &err) < 0) {
		dlog(AGS_LOG_ERROR, "daemon", "cannot make a certificate in %s: %s", dir,
		     err.message);
		return -1;
	}
	snprintf(cert, sizeof(cert), "%s/%s.pem", dir, c->node.node_id);
	snprintf(key, sizeof(key), "%s/%s-key.pem", dir, c->node.node_id);
	snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
	if (ags_config_set_str(c, &c->node.tls.cert, cert) < 0 ||
	    ags_config_set_str(c, &c->node.tls.key, key) < 0 ||
	    ags_config_set_str(c, &c->node.tls.ca, ca) < 0)
		return -1;
	dlog(AGS_LOG_INFO, "daemon",
	     "%s: using a self-signed CA and certificate for node %s in %s "
	     "(rejectUnauthorized is %s%s)",
	     d->config_path ? "quic.tls.cert is not set" : "no config file", c->node.node_id, dir,
	     c->node.tls.reject_unauthorized ? "on" : "off",
	     c->node.tls.reject_unauthorized
	         ? ": peers need a certificate from this CA, e.g. from agentsync certs init"
	         : "");
	return 0;
}

/* "HOST:PORT", with IPv6 hosts in brackets. */
static void host_port(char *out, size_t cap, const char *host, unsigned port)
{
	if (strchr(host, ':'))
		snprintf(out, cap, "[%s]:%u", host, port);
	else
		snprintf(out, cap, "%s:%u", host, port);
}

/* Says how the hub authenticates agents and where its tenants live. */
static void log_hub_mode(const ags_config *c)
{
	const ags_node_config *n = &c->node;
	char algs[64] = "";
	size_t used = 0;
	if (n->hub.n_algorithms) {
		for (size_t i = 0; i < n->hub.n_algorithms; i++)
			used += (size_t)snprintf(algs + used, sizeof(algs) - used, "%s%s",
			                         i ? "," : "", n->hub.algorithms[i]);
	} else {
		const char *names[] = {n->hub.hs256_secret_file ? "HS256" : NULL,
		                       n->hub.rs256_public_key_file ? "RS256" : NULL,
		                       n->hub.es256_public_key_file ? "ES256" : NULL};
		for (size_t i = 0; i < 3; i++)
			if (names[i])
				used += (size_t)snprintf(algs + used, sizeof(algs) - used, "%s%s",
				                         used ? "," : "", names[i]);
	}
	dlog(AGS_LOG_INFO, "daemon",
	     "hub mode: agents authenticate with %s tokens%s%s%s%s; tenant stores in "
	     "%s/tenants (own tenant %s)",
	     algs, n->hub.issuer ? ", issuer " : "", n->hub.issuer ? n->hub.issuer : "",
	     n->hub.audience ? ", audience " : "", n->hub.audience ? n->hub.audience : "",
	     n->data_dir, n->tenant ? n->tenant : "default");
}

static int start(struct daemon *d)
{
	ags_config *c = d->cfg;
	ags_error err;
	ags_error_clear(&err);
	if (!d->config_path)
		dlog(AGS_LOG_INFO, "daemon", "no config file: node id %s %s, data in %s",
		     c->node.node_id, d->ov.node_id ? "(--node-id)" : "from the host name",
		     c->node.data_dir);
	if (!c->tls_from_file && make_own_certs(d) < 0)
		return -1;
	if (mkdir_p(c->node.data_dir) < 0) {
		dlog(AGS_LOG_ERROR, "daemon", "cannot create data directory %s: %m",
		     c->node.data_dir);
		return -1;
	}
	ags_node_callbacks cb = {AGS_NODE_CALLBACKS_VERSION, on_event, on_node_log};
	if (ags_node_new(&c->node, &cb, d, &d->node, &err) < 0) {
		log_node_error(d->config_path, &err);
		return -1;
	}
	ags_api_config ac = {
	    .host = c->api.host,
	    .port = c->api.port,
	    .token = c->api.token,
	    .max_pattern_bytes = c->node.max_pattern_bytes,
	    .data_dir = c->node.data_dir,
	    .log = on_api_log,
	    .log_user_data = d,
	};
	if (ags_api_new(d->node, &ac, &d->api, &err) < 0 || ags_api_start(d->api, &err) < 0) {
		dlog(AGS_LOG_ERROR, "api", "cannot start the HTTP API on %s: %s", c->api.listen,
		     err.message);
		return -1;
	}
	if (ags_node_start(d->node, &err) < 0) {
		int bare = err.field[0] && strncmp(err.field, "quic.", 5) != 0;
		dlog(AGS_LOG_ERROR, "node", "cannot start node %s: %s%s%s%s", c->node.node_id,
		     bare ? "quic." : "", err.field, err.field[0] ? ": " : "", err.message);
		return -1;
	}
	char quic[300], api[300];
	host_port(quic, sizeof(quic), c->node.host, ags_node_port(d->node));
	host_port(api, sizeof(api), c->api.host, ags_api_port(d->api));
	if (c->node.hub.enabled)
		log_hub_mode(c);
	if (c->node.hub.upstream.endpoint)
		dlog(AGS_LOG_INFO, "daemon", "upstream hub %s (tenant %s)",
		     c->node.hub.upstream.endpoint, c->node.tenant ? c->node.tenant : "default");
	const char *kv[] = {"quic", quic,
	                    "api",  api,
	                    "node", c->node.node_id,
	                    "mode", c->node.hub.enabled ? "hub" : NULL};
	dlog_kv(AGS_LOG_INFO, "listening", kv, 4);
	printf("listening quic=%s api=%s node=%s\n", quic, api, c->node.node_id);
	fflush(stdout);
	char status[700];
	snprintf(status, sizeof(status), "node %s: QUIC on %s, API on %s", c->node.node_id, quic,
	         api);
	dnotify_ready(status);
	return 0;
}

static const ags_peer_config *find_peer(const ags_config *c, const char *id)
{
	for (size_t i = 0; i < c->node.n_peers; i++)
		if (strcmp(c->node.peers[i].id, id) == 0)
			return &c->node.peers[i];
	return NULL;
}

static int same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Warns about a setting that changed but only takes effect after a restart. */
static void needs_restart(const char *key, int changed)
{
	if (changed)
		dlog(AGS_LOG_WARN, "config", "reload: %s changed: it takes effect after a restart",
		     key);
}

/* Whether any hub setting differs (they are read when the node starts). */
static int tenant_keys_changed(const ags_node_config *a, const ags_node_config *b)
{
	if (a->hub.n_tenant_keys != b->hub.n_tenant_keys)
		return 1;
	for (size_t i = 0; i < a->hub.n_tenant_keys; i++)
		if (!same_str(a->hub.key_tenants[i], b->hub.key_tenants[i]) ||
		    !same_str(a->hub.key_files[i], b->hub.key_files[i]))
			return 1;
	return 0;
}

static int hub_changed(const ags_node_config *a, const ags_node_config *b)
{
	if (a->hub.enabled != b->hub.enabled || a->hub.n_algorithms != b->hub.n_algorithms ||
	    a->hub.skew_s != b->hub.skew_s || a->hub.max_agents != b->hub.max_agents ||
	    a->hub.max_tenants != b->hub.max_tenants)
		return 1;
	for (size_t i = 0; i < a->hub.n_algorithms; i++)
		if (!same_str(a->hub.algorithms[i], b->hub.algorithms[i]))
			return 1;
	return !same_str(a->hub.hs256_secret_file, b->hub.hs256_secret_file) ||
	       !same_str(a->hub.rs256_public_key_file, b->hub.rs256_public_key_file) ||
	       !same_str(a->hub.es256_public_key_file, b->hub.es256_public_key_file) ||
	       !same_str(a->hub.issuer, b->hub.issuer) ||
	       !same_str(a->hub.audience, b->hub.audience) ||
	       !same_str(a->hub.upstream.endpoint, b->hub.upstream.endpoint) ||
	       !same_str(a->hub.upstream.token, b->hub.upstream.token) ||
	       !same_str(a->hub.upstream.hub_id, b->hub.upstream.hub_id) ||
	       tenant_keys_changed(a, b);
}

/* SIGHUP: re-reads the configuration and applies what can change while running. */
static void reload(struct daemon *d)
{
	dlog(AGS_LOG_INFO, "config", "SIGHUP: re-reading %s",
	     d->config_path ? d->config_path : "(no config file)");
	ags_config *n = NULL;
	if (d->config_path) {
		if (load_config(d, &n) < 0) {
			dlog(AGS_LOG_ERROR, "config", "reload: keeping the running configuration");
			return;
		}
		for (size_t i = 0; i < n->n_warnings; i++)
			dlog(AGS_LOG_WARN, "config", "%s: %s", d->config_path, n->warnings[i]);
	}
	ags_config *o = d->cfg;
	if (n) {
		const ags_node_config *a = &o->node, *b = &n->node;
		/* Peers: removed or moved ones first, so that a moved one can be added back. */
		for (size_t i = 0; i < a->n_peers; i++) {
			const ags_peer_config *p = &a->peers[i], *q = find_peer(n, p->id);
			if (q && same_str(p->address, q->address) && p->port == q->port)
				continue;
			int rc = ags_node_disconnect_peer(d->node, p->id);
			dlog(rc < 0 ? AGS_LOG_WARN : AGS_LOG_INFO, "config",
			     "reload: peer %s removed (%s:%u)%s%s", p->id, p->address, p->port,
			     rc < 0 ? ": " : "", rc < 0 ? ags_strerror(rc) : "");
		}
		for (size_t i = 0; i < b->n_peers; i++) {
			const ags_peer_config *q = &b->peers[i], *p = find_peer(o, q->id);
			if (p && same_str(p->address, q->address) && p->port == q->port)
				continue;
			int rc = ags_node_connect_peer(d->node, q->address, q->port, q->id);
			dlog(rc < 0 ? AGS_LOG_WARN : AGS_LOG_INFO, "config",
			     "reload: peer %s added (%s:%u)%s%s", q->id, q->address, q->port,
			     rc < 0 ? ": " : "", rc < 0 ? ags_strerror(rc) : "");
		}
		if (!same_str(o->api.token, n->api.token)) {
			ags_api_set_token(d->api, n->api.token);
			dlog(AGS_LOG_INFO, "config", "reload: API token %s",
			     n->api.token ? "changed" : "removed");
		}
		needs_restart("quic.nodeId", !same_str(a->node_id, b->node_id));
		needs_restart("quic.host", !same_str(a->host, b->host));
		needs_restart("quic.port", a->port != b->port);
		needs_restart("quic.dataDir", !same_str(a->data_dir, b->data_dir));
		needs_restart("quic.tenant", !same_str(a->tenant, b->tenant));
		needs_restart("quic.api.listen", !same_str(o->api.listen, n->api.listen));
		needs_restart("quic.hub", hub_changed(a, b));
		needs_restart("quic.storage.encryption.keyFile",
		              !same_str(a->store_key_file, b->store_key_file));
		needs_restart("quic.tls (file names)",
		              n->tls_from_file && (!same_str(a->tls.cert, b->tls.cert) ||
		                                   !same_str(a->tls.key, b->tls.key) ||
		                                   !same_str(a->tls.ca, b->tls.ca)));
		if (!n->tls_from_file) {
			/* Keep using the self-signed files made at start. */
			ags_config_set_str(n, &n->node.tls.cert, a->tls.cert);
			ags_config_set_str(n, &n->node.tls.key, a->tls.key);
			ags_config_set_str(n, &n->node.tls.ca, a->tls.ca);
		}
		d->cfg = n;
		ags_config_del(o);
		apply_log_settings(d);
	}
	/* Certificates renewed in place (same file names) are picked up here. */
	ags_error err;
	ags_error_clear(&err);
	if (ags_node_reload_tls(d->node, &err) < 0)
		dlog(AGS_LOG_ERROR, "config",
		     "reload: TLS files not reloaded (the old ones stay): %s", err.message);
	else
		dlog(AGS_LOG_INFO, "config", "reload: TLS certificate, key and CA re-read");
}

static void stop(struct daemon *d)
{
	ags_api_stop(d->api);
	if (d->node)
		ags_node_stop(d->node);
	ags_api_del(d->api);
	d->api = NULL;
	ags_node_del(d->node);
	d->node = NULL;
}

int main(int argc, char **argv)
{
	struct daemon d = {0};
	ags_config_overrides_init(&d.ov);
	/* Encryption at rest: the key file may come from the environment (e.g. a
	 * systemd credential), never the key itself. */
	d.ov.store_key_file = getenv("AGENTSYNC_STORE_KEY_FILE");
	d.log_level_override = -1;
	int check = 0;
	enum {
		O_CONFIG = 256,
		O_NODE,
		O_HOST,
		O_PORT,
		O_API,
		O_DATA,
		O_FMT,
		O_LVL,
		O_CHECK,
		O_HUB,
		O_KEYS,
		O_VERSION
	};
	static const struct option opts[] = {
	    {"config", required_argument, NULL, O_CONFIG},
	    {"node-id", required_argument, NULL, O_NODE},
	    {"host", required_argument, NULL, O_HOST},
	    {"port", required_argument, NULL, O_PORT},
	    {"api", required_argument, NULL, O_API},
	    {"data", required_argument, NULL, O_DATA},
	    {"log-format", required_argument, NULL, O_FMT},
	    {"log-level", required_argument, NULL, O_LVL},
	    {"check", no_argument, NULL, O_CHECK},
	    {"hub", no_argument, NULL, O_HUB},
	    {"config-keys", no_argument, NULL, O_KEYS},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, O_VERSION},
	    {NULL, 0, NULL, 0},
	};
	int opt;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		char *end;
		long v;
		switch (opt) {
		case O_CONFIG:
			d.config_path = optarg;
			break;
		case O_NODE:
			d.ov.node_id = optarg;
			break;
		case O_HOST:
			d.ov.host = optarg;
			break;
		case O_PORT:
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || *end || v < 0 || v > 65535) {
				fprintf(stderr, "agentsyncd: --port must be 0-65535, got \"%s\"\n",
				        optarg);
				return EXIT_USAGE;
			}
			d.ov.port = (int)v;
			break;
		case O_API:
			d.ov.api_listen = optarg;
			break;
		case O_DATA:
			d.ov.data_dir = optarg;
			break;
		case O_FMT:
			if (strcmp(optarg, "text") == 0)
				d.ov.log_format = AGS_LOG_FORMAT_TEXT;
			else if (strcmp(optarg, "json") == 0)
				d.ov.log_format = AGS_LOG_FORMAT_JSON;
			else {
				fprintf(
				    stderr,
				    "agentsyncd: --log-format must be text or json, got \"%s\"\n",
				    optarg);
				return EXIT_USAGE;
			}
			break;
		case O_LVL:
			d.log_level_override = ags_config_log_level(optarg);
			if (d.log_level_override < 0) {
				fprintf(
				    stderr,
				    "agentsyncd: --log-level must be error, warn, info or debug, "
				    "got \"%s\"\n",
				    optarg);
				return EXIT_USAGE;
			}
			break;
		case O_CHECK:
			check = 1;
			break;
		case O_HUB:
			d.ov.hub = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case O_KEYS:
			ags_config_keys(print_key, NULL);
			return 0;
		case O_VERSION:
			printf("agentsyncd %s\n", AGS_VERSION_STRING);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "agentsyncd: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	dlog_setup(d.ov.log_format >= 0 ? d.ov.log_format : AGS_LOG_FORMAT_TEXT,
	           d.log_level_override >= 0 ? d.log_level_override : AGS_LOG_INFO);
	if (!d.config_path && access(AGS_CONFIG_SEED_PATH, F_OK) == 0)
		d.config_path = AGS_CONFIG_SEED_PATH;

	/* Signals are blocked before any thread starts, so every thread inherits the mask. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (load_config(&d, &d.cfg) < 0)
		return EXIT_USAGE;
	apply_log_settings(&d);
	for (size_t i = 0; i < d.cfg->n_warnings; i++)
		dlog(AGS_LOG_WARN, "config", "%s: %s", d.config_path, d.cfg->warnings[i]);
	if (check) {
		if (check_startable(&d) < 0) {
			ags_config_del(d.cfg);
			return EXIT_USAGE;
		}
		dlog(AGS_LOG_INFO, "config", "%s: valid (node %s%s)",
		     d.config_path ? d.config_path : "(no config file)", d.cfg->node.node_id,
		     d.cfg->node.hub.enabled ? ", hub mode" : "");
		ags_config_del(d.cfg);
		return 0;
	}
	if (!d.cfg->enabled) {
		dlog(AGS_LOG_INFO, "config", "%s: quic.enabled is false: nothing to run",
		     d.config_path);
		ags_config_del(d.cfg);
		return 0;
	}
	if (d.config_path)
		dlog(AGS_LOG_INFO, "config", "%s: node %s", d.config_path, d.cfg->node.node_id);

	int status = 0;
	if (start(&d) < 0) {
		status = EXIT_RUNTIME;
	} else {
		for (;;) {
			/* Wakes every 10 s to say how many refusal lines were held back. */
			struct timespec wake = {10, 0};
			int sig = sigtimedwait(&set, NULL, &wake);
			dlog_flush();
			if (sig < 0)
				continue;
			if (sig == SIGHUP) {
				dnotify_reloading();
				reload(&d);
				dnotify_ready("running (configuration re-read)");
				continue;
			}
			dlog(AGS_LOG_INFO, "daemon", "%s: stopping",
			     sig == SIGTERM ? "SIGTERM" : "SIGINT");
			dnotify_stopping();
			break;
		}
	}
	stop(&d);
	ags_config_del(d.cfg);
	if (status == 0)
		dlog(AGS_LOG_INFO, "daemon", "stopped");
	return status;
}
