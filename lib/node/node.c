/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The node: configuration, lifecycle (start, stop), the loop thread, and the
 * thread-safe public API. API calls from other threads reach the loop thread
 * through a command queue and a uv_async_t; store writes from API callers
 * happen on the calling thread under the store mutex, then wake the loop so
 * the senders pick the change up.
 */
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "clock.h"
#include "error.h"
#include "hub.h"
#include "node_agent.h"
#include "node_int.h"
#include "store.h"
#include "sync.h"

#define TICK_MS 50

/*
 * How long a batch that only moves a peer's cursor over changes it does not
 * get (what came from it) waits for one with content to carry it: a node
 * that receives a stream does not answer every batch with one of its own.
 * The node's tick (50 ms) sends it when due.
 */
#define CURSOR_DELAY_US 100000

AGS_EXPORT void ags_node_config_init(ags_node_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->version = AGS_NODE_CONFIG_VERSION;
	cfg->host = "127.0.0.1";
	cfg->port = 4433;
	cfg->data_dir = "./agentsync-data";
	cfg->tenant = "default";
	cfg->sync_interval_ms = 1000;
	cfg->batch_size = 100;
	cfg->compression = 1;
	cfg->window = 16;
	cfg->tls.reject_unauthorized = 1;
	cfg->retry.max_attempts = 3;
	cfg->retry.base_delay_ms = 1000;
	cfg->retry.max_delay_ms = 10000;
	cfg->retry.backoff_multiplier = 2.0;
	cfg->health_interval_ms = 30000;
	cfg->degrade_after_errors = 5;
	cfg->idle_timeout_ms = 30000;
	cfg->handshake_timeout_ms = 10000;
	cfg->max_handshakes = 256;
	cfg->max_handshakes_per_addr = 32;
	cfg->keepalive_ms = 10000;
	cfg->max_pattern_bytes = AGS_PATTERN_MAX_BYTES_DEFAULT;
	cfg->max_frame_bytes = 16u * 1024 * 1024;
	cfg->sweep_interval_ms = 60000;
	cfg->busy_poll_us = 200;
}

void ags_node_vlog(struct ags_node *n, int level, const char *fmt, va_list ap)
{
	if (!n->cb.on_log)
		return;
	char buf[512];
	vsnprintf(buf, sizeof(buf), fmt, ap);
	n->cb.on_log(n, level, buf, n->user_data);
}

void ags_node_log(struct ags_node *n, int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ags_node_vlog(n, level, fmt, ap);
	va_end(ap);
}

void ags_node_emit(struct ags_node *n, const ags_event *ev)
{
	if (!n->cb.on_event)
		return;
	/* Every event leaves the library here: its name is filled in once, from its type. */
	ags_event e = *ev;
	e.name = ags_event_name(e.type);
	n->cb.on_event(n, &e, n->user_data);
}

static void hub_emit(void *ud, const ags_event *ev)
{
	ags_node_emit(ud, ev);
}

/* ---- the applier's side on the loop ---- */

static void host_submit(void *ud, struct ags_sync_job *j)
{
	ags_applier_submit(&((struct ags_node *)ud)->applier, j);
}

/* Finishes a list of applied jobs in order (ACK, events; or only frees them). */
static void finish_jobs(struct ags_sync_job *j)
{
	uint64_t now = ags_mono_us();
	while (j) {
		struct ags_sync_job *next = ags_sync_job_next(j);
		ags_sync_job_finish(j, now);
		j = next;
	}
}

/* The applier's done function: what it wrote, back on the loop thread. */
static void applied(void *ud, struct ags_sync_job *jobs)
{
	struct ags_node *n = ud;
	/* Senders look at the log once, after every job of the list is answered:
	 * pumped after the first, one would read the rows of the others (a
	 * group's commit made them visible) that their sessions then step over. */
	n->delivering = 1;
	finish_jobs(jobs);
	n->delivering = 0;
	if (n->pump_due) {
		n->pump_due = 0;
		ags_node_pump_all(n);
	}
}

void ags_node_deliver(void *ud)
{
	ags_applier_deliver(&((struct ags_node *)ud)->applier);
}

/* After the loop ended: the applier's last jobs (their sessions are closed). */
static void stop_applier(struct ags_node *n)
{
	finish_jobs(ags_applier_stop(&n->applier));
	n->host.submit = NULL;
}

/* ---- configuration copy ---- */

static const char *own(struct ags_node *n, const char *s)
{
	if (!s)
		return NULL;
	if (n->n_owned == n->cap_owned) {
		size_t cap = n->cap_owned ? n->cap_owned * 2 : 32;
		char **o = realloc(n->owned, cap * sizeof(*o));
		if (!o)
			return NULL;
		n->owned = o;
		n->cap_owned = cap;
	}
	char *d = strdup(s);
	if (d)
		n->owned[n->n_owned++] = d;
	return d;
}

static const char *const *own_list(struct ags_node *n, const char *const *list, size_t cnt,
                                   int *oom)
{
	if (!list || cnt == 0)
		return NULL;
	const char **l = calloc(cnt, sizeof(*l));
	if (!l || !own(n, "")) {
		free(l);
		*oom = 1;
		return NULL;
	}
	/* The array itself is kept in `owned` too (it was allocated as a block). */
	free(n->owned[--n->n_owned]);
	n->owned[n->n_owned++] = (char *)l;
	for (size_t i = 0; i < cnt; i++) {
		l[i] = own(n, list[i]);
		if (!l[i])
			*oom = 1;
	}
	return l;
}

int ags_node_valid_id(const char *id)
{
	size_t len = id ? strlen(id) : 0;
	if (len == 0 || len > AGS_NODE_ID_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* A token's sub (the id a node has towards a hub): 1-256 of [A-Za-z0-9._:@-]. */
static int valid_sub(const char *id)
{
	size_t len = id ? strlen(id) : 0;
	if (len == 0 || len > AGS_JWT_SUB_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-' || c == ':' || c == '@'))
			return 0;
	}
	return 1;
}

static int check_hub_config(const ags_node_config *c, ags_error *err)
{
	if (c->hub.enabled) {
		if (!ags_hub_tenant_name_ok(c->tenant ? c->tenant : "default"))
			return ags_error_set(err, AGS_ERR_CONFIG, "tenant",
			                     "a hub's tenant must be 1-128 of [A-Za-z0-9._-], not "
			                     "starting with '.'");
		if (c->hub.hs256_secret && c->hub.hs256_secret_len < AGS_JWT_HS_SECRET_MIN)
			return ags_error_set(err, AGS_ERR_CONFIG, "hub.hs256Secret",
			                     "must be at least %d bytes", AGS_JWT_HS_SECRET_MIN);
		if (c->hub.n_algorithms && !c->hub.algorithms)
			return ags_error_set(err, AGS_ERR_CONFIG, "hub.algorithms", "is NULL");
		if (c->hub.n_tenant_keys && (!c->hub.key_tenants || !c->hub.key_files))
			return ags_error_set(err, AGS_ERR_CONFIG, "hub.tenants", "is NULL");
		for (size_t i = 0; i < c->hub.n_tenant_keys; i++) {
			const char *t = c->hub.key_tenants[i];
			if (!t || !ags_hub_tenant_name_ok(t) || !c->hub.key_files[i] ||
			    !*c->hub.key_files[i])
				return ags_error_set(
				    err, AGS_ERR_CONFIG, "hub.tenants",
				    "entry %zu ('%.64s'): a tenant name (1-128 of "
				    "[A-Za-z0-9._-], not starting with '.') and a key "
				    "file are required",
				    i, t ? t : "");
		}
	}
	if (c->hub.upstream.endpoint) {
		char host[256];
		uint16_t port;
		if (ags_node_parse_endpoint(c->hub.upstream.endpoint, host, sizeof(host), &port))
			return ags_error_set(err, AGS_ERR_CONFIG, "hub.upstream.endpoint",
			                     "must be quic://host:port");
		if (!c->hub.upstream.token || !*c->hub.upstream.token)
			return ags_error_set(err, AGS_ERR_CONFIG, "hub.upstream.token",
			                     "is required with hub.upstream.endpoint");
	}
	return 0;
}

int ags_node_check_config(const ags_node_config *c, ags_error *err)
{
	if (c->version != AGS_NODE_CONFIG_VERSION)
		return ags_error_set(err, AGS_ERR_CONFIG, "version",
		                     "config not initialised with ags_node_config_init");
	/* Towards a hub a node is its token's sub, which allows a few more characters. */
	if (!ags_node_valid_id(c->node_id) && !(c->hub.upstream.endpoint && valid_sub(c->node_id)))
		return ags_error_set(err, AGS_ERR_CONFIG, "nodeId",
		                     "must be 1-%d characters of A-Z a-z 0-9 . _ -",
		                     AGS_NODE_ID_MAX);
	if (!c->tls.cert || !c->tls.key || !c->tls.ca)
		return ags_error_set(err, AGS_ERR_CONFIG,
		                     !c->tls.cert  ? "tls.cert"
		                     : !c->tls.key ? "tls.key"
		                                   : "tls.ca",
		                     "is required (agentsync certs init makes one)");
	if (c->batch_size == 0 || c->batch_size > 10000)
		return ags_error_set(err, AGS_ERR_CONFIG, "batchSize", "must be 1-10000, got %u",
		                     c->batch_size);
	if (c->window == 0 || c->window > 1024)
		return ags_error_set(err, AGS_ERR_CONFIG, "window", "must be 1-1024, got %u",
		                     c->window);
	if (c->retry.backoff_multiplier < 1.0)
		return ags_error_set(err, AGS_ERR_CONFIG, "retry.backoffMultiplier",
		                     "must be at least 1");
	/* The wire's range (docs/PROTOCOL.md, Frames): a peer refuses a HELLO maxFrame
	 * outside it, so a node configured outside it could never connect. */
	if (c->max_frame_bytes < 65536 || c->max_frame_bytes > 64u * 1024 * 1024)
		return ags_error_set(err, AGS_ERR_CONFIG, "limits.maxFrameBytes",
		                     "must be 65536 (64 KiB) to 67108864 (64 MiB), got %zu",
		                     (size_t)c->max_frame_bytes);
	for (size_t i = 0; i < c->n_peers; i++) {
		char f[48];
		snprintf(f, sizeof(f), "peers[%zu].id", i);
		if (!ags_node_valid_id(c->peers[i].id))
			return ags_error_set(err, AGS_ERR_CONFIG, f, "is not a valid node id");
		if (!c->peers[i].address || !*c->peers[i].address) {
			snprintf(f, sizeof(f), "peers[%zu].address", i);
			return ags_error_set(err, AGS_ERR_CONFIG, f, "is required");
		}
		if (c->peers[i].port == 0) {
			snprintf(f, sizeof(f), "peers[%zu].port", i);
			return ags_error_set(err, AGS_ERR_CONFIG, f, "must be 1-65535");
		}
	}
	return check_hub_config(c, err);
}

AGS_EXPORT int ags_node_new(const ags_node_config *cfg, const ags_node_callbacks *cb,
                            void *user_data, ags_node **out, ags_error *err)
{
	if (!cfg || !out)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "cfg and out are required");
	int rv = ags_node_check_config(cfg, err);
	if (rv)
		return rv;
	struct ags_node *n = calloc(1, sizeof(*n));
	if (!n)
		return ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
	int oom = 0;
	n->cfg = *cfg;
	ags_node_config *c = &n->cfg;
	c->node_id = own(n, cfg->node_id);
	c->host = own(n, cfg->host ? cfg->host : "127.0.0.1");
	c->data_dir = own(n, cfg->data_dir ? cfg->data_dir : "./agentsync-data");
	c->tenant = own(n, cfg->tenant ? cfg->tenant : "default");
	c->tls.cert = own(n, cfg->tls.cert);
	c->tls.key = own(n, cfg->tls.key);
	c->tls.ca = own(n, cfg->tls.ca);
	c->tls.keylog_file = own(n, cfg->tls.keylog_file);
	c->tls.pins = own_list(n, cfg->tls.pins, cfg->tls.n_pins, &oom);
	c->allowed_ids = own_list(n, cfg->allowed_ids, cfg->n_allowed_ids, &oom);
	c->filter_types = own_list(n, cfg->filter_types, cfg->n_filter_types, &oom);
	c->filter_tags = own_list(n, cfg->filter_tags, cfg->n_filter_tags, &oom);
	c->peers = NULL;
	c->n_peers = 0;
	c->hub.algorithms = own_list(n, cfg->hub.algorithms, cfg->hub.n_algorithms, &oom);
	c->hub.hs256_secret_file = own(n, cfg->hub.hs256_secret_file);
	c->hub.rs256_public_key_file = own(n, cfg->hub.rs256_public_key_file);
	c->hub.es256_public_key_file = own(n, cfg->hub.es256_public_key_file);
	c->hub.issuer = own(n, cfg->hub.issuer);
	c->hub.audience = own(n, cfg->hub.audience);
	c->hub.upstream.endpoint = own(n, cfg->hub.upstream.endpoint);
	c->hub.upstream.token = own(n, cfg->hub.upstream.token);
	c->hub.upstream.hub_id = own(n, cfg->hub.upstream.hub_id);
	c->hub.key_tenants = own_list(n, cfg->hub.key_tenants, cfg->hub.n_tenant_keys, &oom);
	c->hub.key_files = own_list(n, cfg->hub.key_files, cfg->hub.n_tenant_keys, &oom);
	if (!c->hub.key_tenants || !c->hub.key_files)
		c->hub.n_tenant_keys = 0;
	c->store_key_file = own(n, cfg->store_key_file);
	c->hub.hs256_secret = NULL;
	c->hub.hs256_secret_len = 0;
	if (cfg->hub.hs256_secret && cfg->hub.hs256_secret_len) {
		/* Kept in `owned` like the strings (it may hold NUL bytes). */
		char *sec = malloc(cfg->hub.hs256_secret_len);
		if (!sec || !own(n, "")) {
			free(sec);
			goto nomem;
		}
		free(n->owned[n->n_owned - 1]);
		n->owned[n->n_owned - 1] = sec;
		memcpy(sec, cfg->hub.hs256_secret, cfg->hub.hs256_secret_len);
		c->hub.hs256_secret = (const uint8_t *)sec;
		c->hub.hs256_secret_len = cfg->hub.hs256_secret_len;
	}
	if (oom || !c->node_id || !c->host || !c->data_dir || !c->tenant)
		goto nomem;
	if ((cfg->hub.hs256_secret_file && !c->hub.hs256_secret_file) ||
	    (cfg->hub.rs256_public_key_file && !c->hub.rs256_public_key_file) ||
	    (cfg->hub.es256_public_key_file && !c->hub.es256_public_key_file) ||
	    (cfg->hub.issuer && !c->hub.issuer) || (cfg->hub.audience && !c->hub.audience) ||
	    (cfg->hub.upstream.endpoint && !c->hub.upstream.endpoint) ||
	    (cfg->hub.upstream.token && !c->hub.upstream.token) ||
	    (cfg->hub.upstream.hub_id && !c->hub.upstream.hub_id) ||
	    (cfg->store_key_file && !c->store_key_file))
		goto nomem;
	snprintf(n->node_id, sizeof(n->node_id), "%s", c->node_id);
	if (cb) {
		n->cb = *cb;
	}
	n->user_data = user_data;
	pthread_mutex_init(&n->store_mu, NULL);
	pthread_mutex_init(&n->rstore_mu, NULL);
	pthread_mutex_init(&n->recent_mu, NULL);
	ags_applier_init(&n->applier);
	pthread_mutex_init(&n->cmd_mu, NULL);
	pthread_cond_init(&n->cmd_cv, NULL);
	for (size_t i = 0; i < cfg->n_peers; i++) {
		const ags_peer_config *pc = &cfg->peers[i];
		if (ags_node_peer_find(n, pc->id))
			continue;
		struct ags_peer *p = ags_node_peer_add(n, pc->id, pc->address, pc->port, 1);
		if (!p)
			goto nomem;
		p->priority = pc->priority;
	}
	if ((rv = ags_node_upstream_init(n, err))) {
		ags_node_del(n);
		return rv;
	}
	*out = n;
	return 0;
nomem:
	ags_node_del(n);
	return ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
}

/* ---- lifecycle ---- */

/* The sync host of the node's own store, shared by its mesh and upstream sessions. */
static void sync_host_init(struct ags_node *n)
{
	ags_sync_host *h = &n->host;
	memset(h, 0, sizeof(*h));
	h->store = n->store;
	h->store_mu = &n->store_mu;
	h->log_store = n->lstore;
	h->cursor_delay_us = CURSOR_DELAY_US;
	h->node_id = n->node_id;
	h->store_id = n->store_id;
	h->epochs = n->epochs;
	h->n_epochs = n->n_epochs;
	h->tenant = n->cfg.tenant;
	h->batch_size = n->cfg.batch_size;
	h->window = n->cfg.window;
	h->retry = (ags_backoff_cfg){n->cfg.retry.max_attempts, n->cfg.retry.base_delay_ms,
	                             n->cfg.retry.max_delay_ms, n->cfg.retry.backoff_multiplier};
	h->compression = n->cfg.compression;
	h->max_frame = n->cfg.max_frame_bytes;
	h->max_pattern = n->cfg.max_pattern_bytes;
	h->rate_patterns_per_s = n->cfg.rate_patterns_per_s;
	h->rate_bytes_per_s = n->cfg.rate_bytes_per_s;
	h->filter_types = n->cfg.filter_types;
	h->n_filter_types = n->cfg.n_filter_types;
	h->filter_tags = n->cfg.filter_tags;
	h->n_filter_tags = n->cfg.n_filter_tags;
	h->ud = n;
	h->send = ags_node_host_send;
	h->event = ags_node_host_event;
	h->changed = ags_node_host_changed;
	h->hello = ags_node_host_hello;
	h->log = ags_node_host_log;
	h->wall_ms = ags_node_host_wall_ms;
	h->instance = n->instance;
	h->clock = n->clock;
	h->cache = &n->cache;
	h->recent = ags_node_recent_rows;
	h->pulled = ags_node_upstream_pulled;
}

static int mkdir_p(const char *path)
{
	char buf[4096];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			if (mkdir(buf, 0700) < 0 && errno != EEXIST)
				return -1;
			*p = '/';
		}
	}
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/*
 * The data directory holds the store (every pattern) and is for this user
 * only: one that other users may enter (mode 0755, as systemd's
 * StateDirectory= or a plain mkdir makes it) is narrowed to 0700, with a
 * warning; one that cannot be (another owner) is refused.
 */
static int private_dir(struct ags_node *n, ags_error *err)
{
	const char *dir = n->cfg.data_dir;
	struct stat st;
	if (stat(dir, &st) != 0)
		return ags_error_set(err, AGS_ERR_IO, "dataDir", "%s: %m", dir);
	if (!S_ISDIR(st.st_mode))
		return ags_error_set(err, AGS_ERR_IO, "dataDir", "%s is not a directory", dir);
	if (!(st.st_mode & 077))
		return 0;
	if (chmod(dir, st.st_mode & 0700) != 0)
		return ags_error_set(
		    err, AGS_ERR_IO, "dataDir",
		    "%s is open to other users (mode %04o) and cannot be made 0700 "
		    "(%m; its owner is uid %u): the store in it holds every pattern. "
		    "Run chmod 700 on it, or choose another dataDir",
		    dir, (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
	ags_node_log(
	    n, AGS_LOG_WARN,
	    "dataDir %s was open to other users (mode %04o): made it 0700, as the store in "
	    "it holds every pattern",
	    dir, (unsigned)(st.st_mode & 07777));
	return 0;
}

/*
 * A secret that survives restarts, for stateless resets: SHA-256 of a label
 * and the node's private key file. After a restart the node's resets carry
 * tokens its peers already know, so they drop dead connections at once.
 */
static int reset_secret(struct ags_node *n, uint8_t out[32])
{
	FILE *f = fopen(n->cfg.tls.key, "rb");
	if (!f)
		return -1;
	gnutls_hash_hd_t h;
	if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0) {
		fclose(f);
		return -1;
	}
	static const char label[] = "agentsync stateless reset v1";
	gnutls_hash(h, label, sizeof(label));
	uint8_t buf[4096];
	size_t r;
	while ((r = fread(buf, 1, sizeof(buf), f)) > 0)
		gnutls_hash(h, buf, r);
	fclose(f);
	gnutls_hash_deinit(h, out);
	return 0;
}

int ags_node_make_tls(struct ags_node *n, ags_tls_ctx **out, ags_error *err)
{
	return ags_node_tls_new(&n->cfg, n->agent_mode ? NULL : n->node_id, out, err);
}

/* Start, step 1: the data directory, the store's three connections, its clock. */
static int open_stores(struct ags_node *n, ags_error *err)
{
	int rv;
	char path[4096];
	if (mkdir_p(n->cfg.data_dir) < 0)
		return ags_error_set(err, AGS_ERR_IO, "dataDir", "cannot create %s: %m",
		                     n->cfg.data_dir);
	if ((rv = private_dir(n, err)))
		return rv;
	/* A hub keeps one store per tenant; its own is the one of its tenant. */
	if (n->cfg.hub.enabled) {
		if ((rv = ags_hub_tenant_path(n->cfg.data_dir, n->cfg.tenant, path, sizeof(path),
		                              err)))
			return rv;
	} else {
		snprintf(path, sizeof(path), "%s/store.db", n->cfg.data_dir);
	}
	/*
	 * The API thread reads through rstore as soon as it is set, so it is set
	 * last, under its lock, once the other connections ran their schema check
	 * (BEGIN IMMEDIATE) and the clock is loaded: nothing of another thread
	 * touches the database while the start does (issue 13 item 5), and a read
	 * before that is a plain AGS_ERR_STATE (503), never a wait.
	 */
	ags_store_opts so = {.fsync_full = n->cfg.fsync_full,
	                     .key_file = n->cfg.hub.enabled
	                                     ? ags_hub_tenant_key_file(&n->cfg, n->cfg.tenant)
	                                     : n->cfg.store_key_file};
	ags_store *rs = NULL;
	if ((rv = ags_store_open(path, &so, &n->store, err)) ||
	    (rv = ags_store_open(path, &so, &n->lstore, err)))
		return rv;
	snprintf(n->store_id, sizeof(n->store_id), "%s", ags_store_id(n->store));
	/* Every open may follow a rollback (a restored backup, a power loss): a new epoch. */
	if ((rv = ags_store_epoch_begin(n->store, n->epochs, &n->n_epochs, err)))
		return rv;
	if ((rv = ags_sync_clock_load(n->store, &n->clock)))
		return ags_error_set(err, rv, NULL, "cannot read the store's vector clock: %s",
		                     ags_strerror(rv));
	if ((rv = ags_store_open(path, &so, &rs, err)))
		return rv;
	pthread_mutex_lock(&n->rstore_mu);
	n->rstore = rs;
	pthread_mutex_unlock(&n->rstore_mu);
	ags_node_recent_clear(n); /* rows of a store opened before are not this one's */
	return 0;
}

/* Fails a libuv call: AGS_ERR_IO naming it, with libuv's message. */
static int uv_fail(ags_error *err, const char *what, int urv)
{
	return ags_error_set(err, AGS_ERR_IO, NULL, "%s failed: %s", what, uv_strerror(urv));
}

/*
 * Start, step 2: TLS, the process instance, the node's sync host and hub,
 * then the loop with its wake-up and tick handles, the endpoint (the UDP
 * socket) and the applier.
 */
static int start_transport(struct ags_node *n, ags_error *err)
{
	int rv, urv;
	/* An agent may share its client certificate with others: its id is its token's. */
	if ((rv = ags_node_make_tls(n, &n->tls, err)))
		return rv;
	if (!n->cfg.tls.reject_unauthorized)
		ags_node_log(n, AGS_LOG_WARN,
		             "tls.rejectUnauthorized is false: connections are encrypted but peers "
		             "are NOT authenticated");
	uint8_t rnd[16];
	gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof(rnd));
	for (int i = 0; i < 16; i++)
		snprintf(n->instance + 2 * i, 3, "%02x", rnd[i]);
	sync_host_init(n);
	if (n->cfg.hub.enabled) {
		ags_hub_env env = {.cfg = &n->cfg,
		                   .store = n->store,
		                   .store_mu = &n->store_mu,
		                   .clock = n->clock,
		                   .store_id = n->store_id,
		                   .host = &n->host,
		                   .emit = hub_emit,
		                   .log = ags_node_host_log,
		                   .ud = n};
		if ((rv = ags_hub_new(&env, &n->hub, err)))
			return rv;
	}
	/* Who may connect: agents (hub mode), peers, or nobody (an agent's node). */
	n->incoming_ops = n->agent_mode ? NULL : n->hub ? &ags_hub_agent_ops : &ags_node_peer_ops;
	n->incoming_owner = n->hub ? (void *)n->hub : (void *)n;
	n->event_tenant = n->hub ? n->cfg.tenant : NULL;

	if ((urv = uv_loop_init(&n->loop)) != 0)
		return uv_fail(err, "uv_loop_init", urv);
	n->loop_open = 1;
	if ((urv = uv_async_init(&n->loop, &n->async, ags_node_on_async)) != 0)
		return uv_fail(err, "uv_async_init", urv);
	n->async_open = 1;
	n->async.data = n;
	if ((urv = uv_timer_init(&n->loop, &n->tick)) != 0)
		return uv_fail(err, "uv_timer_init", urv);
	n->tick_open = 1;
	n->tick.data = n;
	ags_quic_config qc;
	memset(&qc, 0, sizeof(qc));
	qc.host = n->cfg.host;
	qc.port = n->cfg.port;
	qc.tls = n->tls;
	qc.retry = n->cfg.stateless_retry;
	qc.idle_timeout_ms = n->cfg.idle_timeout_ms;
	qc.handshake_timeout_ms = n->cfg.handshake_timeout_ms;
	qc.max_handshakes = n->cfg.max_handshakes;
	qc.max_handshakes_per_addr = n->cfg.max_handshakes_per_addr;
	qc.keep_alive_ms = n->cfg.keepalive_ms;
	qc.test_drop_permille = n->cfg.test_drop_permille;
	qc.stream_window = n->cfg.max_frame_bytes + 64 * 1024;
	qc.conn_window = qc.stream_window * 2;
	if (n->hub)
		qc.max_conns = ags_hub_max_conns(n->hub, n->n_peers);
	uint8_t secret[32];
	if (reset_secret(n, secret) == 0) {
		qc.static_secret = secret;
		qc.static_secret_len = sizeof(secret);
	}
	ags_quic_callbacks qcb = ags_node_quic_callbacks;
	qcb.user_data = n;
	if ((rv = ags_quic_ep_new(&n->loop, &qc, &qcb, &n->ep, err)))
		return rv; /* handles it made are freed when the teardown runs the loop */
	n->port = ags_quic_ep_port(n->ep);
	if (!n->hub && (rv = ags_applier_start(&n->applier, &n->loop, applied, n)) != 0)
		ags_node_log(n, AGS_LOG_WARN,
		             "no applier thread (%s): batches are written on the loop",
		             ags_strerror(rv));
	n->host.submit = ags_applier_running(&n->applier) ? host_submit : NULL;
	return 0;
}

/* Start, step 3: the tick, then the loop thread. */
static int start_loop(struct ags_node *n, ags_error *err)
{
	int urv = uv_timer_start(&n->tick, ags_node_on_tick, TICK_MS, TICK_MS);
	if (urv != 0)
		return uv_fail(err, "uv_timer_start", urv);
	uint64_t now = ags_mono_ms();
	n->next_health_ms = now + n->cfg.health_interval_ms;
	n->next_sweep_ms = now;
	n->started = 1;
	n->running = 1;
	if ((urv = uv_thread_create(&n->thread, ags_node_loop_main, n)) != 0) {
		n->running = 0;
		n->started = 0;
		return ags_error_set(err, AGS_ERR_IO, NULL, "cannot start the loop thread: %s",
		                     uv_strerror(urv));
	}
	return 0;
}

/*
 * Undoes what ags_node_start did, whatever it got to, in reverse; with the
 * loop thread not running (never started, or joined by ags_node_stop). The
 * loop's handles still open are closed and the loop is run until their
 * close callbacks ran (an endpoint frees itself there, also one whose
 * ags_quic_ep_new failed half-way), then the applier is stopped and the loop
 * closed; then TLS, the hub, the store's connections and clock.
 */
static void teardown(struct ags_node *n)
{
	if (n->loop_open) {
		if (n->ep) {
			ags_quic_ep_del(n->ep);
			n->ep = NULL;
		}
		if (n->async_open)
			uv_close((uv_handle_t *)&n->async, NULL);
		if (n->tick_open)
			uv_close((uv_handle_t *)&n->tick, NULL);
		n->async_open = n->tick_open = 0;
		ags_applier_close(&n->applier);
		uv_run(&n->loop, UV_RUN_DEFAULT);
		stop_applier(n);
		int urv = uv_loop_close(&n->loop);
		if (urv != 0)
			ags_node_log(n, AGS_LOG_ERROR, "closing the loop failed: %s",
			             uv_strerror(urv));
		n->loop_open = 0;
	}
	ags_tls_ctx_del(n->tls);
	n->tls = NULL;
	for (size_t i = 0; i < n->n_retired_tls; i++)
		ags_tls_ctx_del(n->retired_tls[i]);
	free(n->retired_tls);
	n->retired_tls = NULL;
	n->n_retired_tls = 0;
	ags_hub_del(n->hub);
	n->hub = NULL;
	pthread_mutex_lock(&n->store_mu);
	ags_sync_cache_free(&n->cache);
	ags_store_close(n->store);
	n->store = NULL;
	ags_vclock_del(n->clock);
	n->clock = NULL;
	n->host.clock = NULL;
	pthread_mutex_unlock(&n->store_mu);
	ags_store_close(n->lstore);
	n->lstore = NULL;
	pthread_mutex_lock(&n->rstore_mu);
	ags_store_close(n->rstore);
	n->rstore = NULL;
	pthread_mutex_unlock(&n->rstore_mu);
}

AGS_EXPORT int ags_node_start(ags_node *n, ags_error *err)
{
	if (!n)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "node is NULL");
	if (n->started)
		return ags_error_set(err, AGS_ERR_STATE, NULL, "node already started");
	int rv = open_stores(n, err);
	if (rv == 0)
		rv = start_transport(n, err);
	if (rv == 0)
		rv = start_loop(n, err);
	if (rv) {
		teardown(n);
		return rv;
	}
	ags_node_log(n, AGS_LOG_INFO, "node %s listening on %s:%u (store %s)%s", n->node_id,
	             n->cfg.host, n->port, n->store_id,
	             n->hub ? ", hub mode: agents authenticate with AUTH" : "");
	/* The first tick dials every configured peer. */
	uv_async_send(&n->async);
	return 0;
}

AGS_EXPORT int ags_node_stop(ags_node *n)
{
	if (!n || !n->started)
		return 0;
	struct ags_cmd *c = calloc(1, sizeof(*c));
	if (!c)
		return AGS_ERR_NOMEM;
	c->type = CMD_STOP;
	if (ags_node_post(n, c) != 0)
		ags_node_cmd_free(c);
	uv_thread_join(&n->thread);
	pthread_mutex_lock(&n->cmd_mu);
	n->running = 0;
	/* Commands that raced with the stop: complete them as refused. */
	while (n->cmd_head) {
		struct ags_cmd *q = n->cmd_head;
		n->cmd_head = q->next;
		if (q->sync) {
			q->result = AGS_ERR_STATE;
			q->done = 1;
		} else {
			ags_node_cmd_free(q);
		}
	}
	n->cmd_tail = NULL;
	pthread_cond_broadcast(&n->cmd_cv);
	pthread_mutex_unlock(&n->cmd_mu);
	teardown(n);
	n->started = 0;
	ags_node_log(n, AGS_LOG_INFO, "node %s stopped", n->node_id);
	return 0;
}

AGS_EXPORT void ags_node_del(ags_node *n)
{
	if (!n)
		return;
	ags_node_stop(n);
	while (n->n_peers)
		ags_node_peer_remove(n, n->peers[n->n_peers - 1]);
	free(n->peers);
	for (size_t i = 0; i < n->n_owned; i++)
		free(n->owned[i]);
	free(n->owned);
	pthread_mutex_destroy(&n->store_mu);
	pthread_mutex_destroy(&n->rstore_mu);
	ags_node_recent_clear(n);
	pthread_mutex_destroy(&n->recent_mu);
	ags_applier_free(&n->applier);
	pthread_mutex_destroy(&n->cmd_mu);
	pthread_cond_destroy(&n->cmd_cv);
	free(n);
}
