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
#include "node_int.h"
#include "store.h"
#include "sync.h"

#define TICK_MS 50

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
	cfg->keepalive_ms = 10000;
	cfg->max_pattern_bytes = AGS_PATTERN_MAX_BYTES_DEFAULT;
	cfg->max_frame_bytes = 16u * 1024 * 1024;
	cfg->sweep_interval_ms = 60000;
	cfg->busy_poll_us = 200;
}

void ags_node_log(struct ags_node *n, int level, const char *fmt, ...)
{
	if (!n->cb.on_log)
		return;
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	n->cb.on_log(n, level, buf, n->user_data);
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

static int check_config(const ags_node_config *c, ags_error *err)
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
	if (c->max_frame_bytes < 4096 || c->max_frame_bytes > 64u * 1024 * 1024)
		return ags_error_set(err, AGS_ERR_CONFIG, "limits.maxFrameBytes",
		                     "must be 4 KiB to 64 MiB");
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
	int rv = check_config(cfg, err);
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
	    (cfg->hub.upstream.hub_id && !c->hub.upstream.hub_id))
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

/* ---- commands (any thread -> loop thread) ---- */

static int post(struct ags_node *n, struct ags_cmd *cmd)
{
	pthread_mutex_lock(&n->cmd_mu);
	if (!n->running) {
		pthread_mutex_unlock(&n->cmd_mu);
		return AGS_ERR_STATE;
	}
	cmd->next = NULL;
	if (n->cmd_tail)
		n->cmd_tail->next = cmd;
	else
		n->cmd_head = cmd;
	n->cmd_tail = cmd;
	uv_async_send(&n->async);
	int rv = 0;
	if (cmd->sync) {
		while (!cmd->done)
			pthread_cond_wait(&n->cmd_cv, &n->cmd_mu);
		rv = cmd->result;
	}
	pthread_mutex_unlock(&n->cmd_mu);
	return rv;
}

static void free_cmd(struct ags_cmd *c)
{
	free(c->id);
	free(c->address);
	free(c->blob);
	free(c);
}

int ags_node_post_sync(struct ags_node *n, struct ags_cmd *c)
{
	c->sync = 1;
	int rv = post(n, c);
	return rv == 0 || c->done ? c->result : rv;
}

static int reload_tls_locked(struct ags_node *n, ags_error *err);

static void run_cmd(struct ags_node *n, struct ags_cmd *c)
{
	switch (c->type) {
	case CMD_CONNECT: {
		struct ags_peer *p = ags_node_peer_find(n, c->id);
		if (p && p->dial) {
			c->result = AGS_ERR_EXISTS;
			break;
		}
		if (p) {
			/* It dialled us; from now on we keep it connected too. */
			free(p->address);
			p->address = strdup(c->address);
			p->port = c->port;
			p->dial = 1;
		} else if (!ags_node_peer_add(n, c->id, c->address, c->port, 1)) {
			c->result = AGS_ERR_NOMEM;
		}
		break;
	}
	case CMD_DISCONNECT: {
		struct ags_peer *p = ags_node_peer_find(n, c->id);
		if (!p)
			c->result = AGS_ERR_NOT_FOUND;
		else
			ags_node_peer_remove(n, p);
		break;
	}
	case CMD_WAKE:
		break;
	case CMD_STATE:
		ags_node_fill_state(n, c->state);
		break;
	case CMD_RELOAD_TLS:
		c->result = reload_tls_locked(n, NULL);
		break;
	case CMD_HUB_STATS:
		if (n->hub)
			ags_hub_fill_stats(n->hub, c->hub_stats);
		break;
	case CMD_UP_OP:
	case CMD_UP_DISCONNECT:
	case CMD_UP_EXPORT:
	case CMD_UP_IMPORT:
		ags_node_upstream_cmd(n, c);
		break;
	case CMD_STOP:
		ags_node_close_all(n);
		ags_applier_close(&n->applier);
		uv_close((uv_handle_t *)&n->async, NULL);
		uv_close((uv_handle_t *)&n->tick, NULL);
		break;
	}
}

static void on_async(uv_async_t *h)
{
	struct ags_node *n = h->data;
	n->wakes++;
	for (;;) {
		pthread_mutex_lock(&n->cmd_mu);
		struct ags_cmd *c = n->cmd_head;
		if (c) {
			n->cmd_head = c->next;
			if (!n->cmd_head)
				n->cmd_tail = NULL;
		}
		pthread_mutex_unlock(&n->cmd_mu);
		if (!c)
			break;
		int stop = c->type == CMD_STOP;
		run_cmd(n, c);
		pthread_mutex_lock(&n->cmd_mu);
		if (c->sync) {
			c->done = 1;
			pthread_cond_broadcast(&n->cmd_cv);
		} else {
			free_cmd(c);
		}
		pthread_mutex_unlock(&n->cmd_mu);
		if (stop)
			return;
	}
	/* Any wake-up may mean new local changes: let every sender look. */
	ags_node_pump_all(n);
}

static void on_tick(uv_timer_t *t)
{
	ags_node_tick(t->data);
}

/* Input the loop has seen: datagrams read, commands, applied batches. */
static uint64_t activity(const struct ags_node *n)
{
	return ags_quic_ep_activity(n->ep) + n->wakes + n->applier.wakes;
}

/*
 * The loop thread. With busy polling (busy_poll_us > 0), after input the
 * loop keeps polling without sleeping until none has come for that long,
 * then blocks: on a VM, waking a thread that sleeps in epoll costs tens of
 * microseconds per message, most of a request/response on loopback. It
 * yields the CPU between polls, so a thread with work on the same core goes
 * first.
 */
static void loop_main(void *arg)
{
	struct ags_node *n = arg;
	uint64_t spin = n->cfg.busy_poll_us;
	if (!spin) {
		uv_run(&n->loop, UV_RUN_DEFAULT);
		return;
	}
	for (;;) {
		uint64_t before = activity(n);
		if (!uv_run(&n->loop, UV_RUN_ONCE))
			return;
		if (activity(n) == before)
			continue; /* a timer: nothing to expect, sleep again */
		uint64_t seen = activity(n), idle_since = ags_mono_us();
		for (;;) {
			if (!uv_run(&n->loop, UV_RUN_NOWAIT))
				return;
			uint64_t a = activity(n), now = ags_mono_us();
			if (a != seen) {
				seen = a;
				idle_since = now;
			} else if (now - idle_since >= spin) {
				break;
			} else {
				sched_yield();
			}
		}
	}
}

/* ---- lifecycle ---- */

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

static int make_tls(struct ags_node *n, ags_tls_ctx **out, ags_error *err)
{
	ags_tls_config tc;
	memset(&tc, 0, sizeof(tc));
	tc.cert_file = n->cfg.tls.cert;
	tc.key_file = n->cfg.tls.key;
	tc.ca_file = n->cfg.tls.ca;
	tc.reject_unauthorized = n->cfg.tls.reject_unauthorized;
	tc.allowed_ids = n->cfg.allowed_ids;
	tc.n_allowed_ids = n->cfg.n_allowed_ids;
	tc.pins = n->cfg.tls.pins;
	tc.n_pins = n->cfg.tls.n_pins;
	tc.keylog_file = n->cfg.tls.keylog_file;
	return ags_tls_ctx_new(&tc, out, err);
}

AGS_EXPORT int ags_node_start(ags_node *n, ags_error *err)
{
	if (!n)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "node is NULL");
	if (n->started)
		return ags_error_set(err, AGS_ERR_STATE, NULL, "node already started");
	int rv;
	char path[4096];
	if (mkdir_p(n->cfg.data_dir) < 0)
		return ags_error_set(err, AGS_ERR_IO, "dataDir", "cannot create %s: %m",
		                     n->cfg.data_dir);
	/* A hub keeps one store per tenant; its own is the one of its tenant. */
	if (n->cfg.hub.enabled) {
		if ((rv = ags_hub_tenant_path(n->cfg.data_dir, n->cfg.tenant, path, sizeof(path),
		                              err)))
			return rv;
	} else {
		snprintf(path, sizeof(path), "%s/store.db", n->cfg.data_dir);
	}
	ags_store_opts so = {.fsync_full = n->cfg.fsync_full};
	if ((rv = ags_store_open(path, &so, &n->store, err)))
		return rv;
	if ((rv = ags_store_open(path, &so, &n->rstore, err)))
		goto fail;
	if ((rv = ags_store_open(path, &so, &n->lstore, err)))
		goto fail;
	snprintf(n->store_id, sizeof(n->store_id), "%s", ags_store_id(n->store));
	if ((rv = ags_sync_clock_load(n->store, &n->clock))) {
		rv = ags_error_set(err, rv, NULL, "cannot read the store's vector clock: %s",
		                   ags_strerror(rv));
		goto fail;
	}
	if ((rv = make_tls(n, &n->tls, err)))
		goto fail;
	/* An agent may share its client certificate with others: its id is its token's. */
	if (!n->agent_mode && strcmp(ags_tls_ctx_own_id(n->tls), n->node_id) != 0 &&
	    n->cfg.tls.reject_unauthorized) {
		rv = ags_error_set(err, AGS_ERR_CONFIG, "tls.cert",
		                   "certificate is for '%s' but nodeId is '%s'",
		                   ags_tls_ctx_own_id(n->tls), n->node_id);
		goto fail;
	}
	if (!n->cfg.tls.reject_unauthorized)
		ags_node_log(n, AGS_LOG_WARN,
		             "tls.rejectUnauthorized is false: connections are encrypted but peers "
		             "are NOT authenticated");
	uint8_t rnd[16];
	gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof(rnd));
	for (int i = 0; i < 16; i++)
		snprintf(n->instance + 2 * i, 3, "%02x", rnd[i]);
	ags_node_sync_host_init(n);
	if (n->cfg.hub.enabled && (rv = ags_hub_new(n, &n->hub, err)))
		goto fail;

	if (uv_loop_init(&n->loop) != 0) {
		rv = ags_error_set(err, AGS_ERR_IO, NULL, "uv_loop_init failed");
		goto fail;
	}
	ags_quic_config qc;
	memset(&qc, 0, sizeof(qc));
	qc.host = n->cfg.host;
	qc.port = n->cfg.port;
	qc.tls = n->tls;
	qc.retry = n->cfg.stateless_retry;
	qc.idle_timeout_ms = n->cfg.idle_timeout_ms;
	qc.keep_alive_ms = n->cfg.keepalive_ms;
	qc.test_drop_permille = n->cfg.test_drop_permille;
	qc.stream_window = n->cfg.max_frame_bytes + 64 * 1024;
	qc.conn_window = qc.stream_window * 2;
	if (n->hub)
		qc.max_conns = ags_hub_max_conns(n->hub);
	uint8_t secret[32];
	if (reset_secret(n, secret) == 0) {
		qc.static_secret = secret;
		qc.static_secret_len = sizeof(secret);
	}
	ags_quic_callbacks qcb = ags_node_quic_callbacks;
	qcb.user_data = n;
	if ((rv = ags_quic_ep_new(&n->loop, &qc, &qcb, &n->ep, err))) {
		uv_loop_close(&n->loop);
		goto fail;
	}
	n->port = ags_quic_ep_port(n->ep);
	uv_async_init(&n->loop, &n->async, on_async);
	n->async.data = n;
	if (!n->hub && (rv = ags_applier_start(&n->applier, &n->loop, applied, n)) != 0)
		ags_node_log(n, AGS_LOG_WARN,
		             "no applier thread (%s): batches are written on the loop",
		             ags_strerror(rv));
	n->host.submit = ags_applier_running(&n->applier) ? host_submit : NULL;
	uv_timer_init(&n->loop, &n->tick);
	n->tick.data = n;
	uv_timer_start(&n->tick, on_tick, TICK_MS, TICK_MS);
	uint64_t now = ags_mono_ms();
	n->next_health_ms = now + n->cfg.health_interval_ms;
	n->next_sweep_ms = now;
	ags_node_recent_clear(n); /* rows of a store opened before are not this one's */
	n->started = 1;
	n->running = 1;
	if (uv_thread_create(&n->thread, loop_main, n) != 0) {
		n->running = 0;
		n->started = 0;
		ags_quic_ep_del(n->ep);
		n->ep = NULL;
		uv_close((uv_handle_t *)&n->async, NULL);
		uv_close((uv_handle_t *)&n->tick, NULL);
		ags_applier_close(&n->applier);
		uv_run(&n->loop, UV_RUN_DEFAULT);
		stop_applier(n);
		uv_loop_close(&n->loop);
		rv = ags_error_set(err, AGS_ERR_IO, NULL, "cannot start the loop thread");
		goto fail;
	}
	ags_node_log(n, AGS_LOG_INFO, "node %s listening on %s:%u (store %s)%s", n->node_id,
	             n->cfg.host, n->port, n->store_id,
	             n->hub ? ", hub mode: agents authenticate with AUTH" : "");
	/* The first tick dials every configured peer. */
	uv_async_send(&n->async);
	return 0;
fail:
	ags_hub_del(n->hub);
	n->hub = NULL;
	ags_tls_ctx_del(n->tls);
	n->tls = NULL;
	ags_vclock_del(n->clock);
	n->clock = NULL;
	ags_store_close(n->lstore);
	n->lstore = NULL;
	ags_store_close(n->rstore);
	n->rstore = NULL;
	ags_store_close(n->store);
	n->store = NULL;
	return rv;
}

AGS_EXPORT int ags_node_stop(ags_node *n)
{
	if (!n || !n->started)
		return 0;
	struct ags_cmd *c = calloc(1, sizeof(*c));
	if (!c)
		return AGS_ERR_NOMEM;
	c->type = CMD_STOP;
	if (post(n, c) != 0)
		free_cmd(c);
	uv_thread_join(&n->thread);
	stop_applier(n);
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
			free_cmd(q);
		}
	}
	n->cmd_tail = NULL;
	pthread_cond_broadcast(&n->cmd_cv);
	pthread_mutex_unlock(&n->cmd_mu);
	uv_loop_close(&n->loop);
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

AGS_EXPORT uint16_t ags_node_port(ags_node *n)
{
	return n && n->started ? n->port : 0;
}

AGS_EXPORT const char *ags_node_id(ags_node *n)
{
	return n ? n->node_id : NULL;
}

/* ---- peers ---- */

AGS_EXPORT int ags_node_connect_peer(ags_node *n, const char *address, uint16_t port,
                                     const char *id)
{
	if (!n || !address || !*address || !port || !ags_node_valid_id(id))
		return AGS_ERR_INVALID;
	struct ags_cmd *c = calloc(1, sizeof(*c));
	if (!c)
		return AGS_ERR_NOMEM;
	c->type = CMD_CONNECT;
	c->id = strdup(id);
	c->address = strdup(address);
	c->port = port;
	c->sync = 1;
	if (!c->id || !c->address) {
		free_cmd(c);
		return AGS_ERR_NOMEM;
	}
	int rv = post(n, c);
	if (rv == 0 || c->done)
		rv = c->result;
	free_cmd(c);
	return rv;
}

AGS_EXPORT int ags_node_disconnect_peer(ags_node *n, const char *id)
{
	if (!n || !id)
		return AGS_ERR_INVALID;
	struct ags_cmd *c = calloc(1, sizeof(*c));
	if (!c)
		return AGS_ERR_NOMEM;
	c->type = CMD_DISCONNECT;
	c->id = strdup(id);
	c->sync = 1;
	int rv = c->id ? post(n, c) : AGS_ERR_NOMEM;
	if (rv == 0)
		rv = c->result;
	free_cmd(c);
	return rv;
}

AGS_EXPORT int ags_node_sync_now(ags_node *n)
{
	if (!n)
		return AGS_ERR_INVALID;
	pthread_mutex_lock(&n->cmd_mu);
	int running = n->running;
	if (running)
		uv_async_send(&n->async);
	pthread_mutex_unlock(&n->cmd_mu);
	return running ? 0 : AGS_ERR_STATE;
}

static int reload_tls_locked(struct ags_node *n, ags_error *err)
{
	ags_tls_ctx *fresh = NULL;
	int rv = make_tls(n, &fresh, err);
	if (rv) {
		ags_node_log(n, AGS_LOG_ERROR, "TLS reload failed; keeping the old credentials");
		return rv;
	}
	ags_tls_ctx **r = realloc(n->retired_tls, (n->n_retired_tls + 1) * sizeof(*r));
	if (!r) {
		ags_tls_ctx_del(fresh);
		return AGS_ERR_NOMEM;
	}
	n->retired_tls = r;
	rv = ags_quic_ep_set_tls(n->ep, fresh);
	if (rv) {
		ags_tls_ctx_del(fresh);
		return rv;
	}
	/* Open sessions still use the old context: keep it until the node stops. */
	n->retired_tls[n->n_retired_tls++] = n->tls;
	n->tls = fresh;
	ags_node_log(n, AGS_LOG_INFO, "TLS credentials reloaded (certificate for '%s')",
	             ags_tls_ctx_own_id(fresh));
	return 0;
}

AGS_EXPORT int ags_node_reload_tls(ags_node *n, ags_error *err)
{
	if (!n)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "node is NULL");
	/* Check the files on the caller's thread first, for a useful error. */
	ags_tls_ctx *probe = NULL;
	int rv = make_tls(n, &probe, err);
	if (rv)
		return rv;
	ags_tls_ctx_del(probe);
	struct ags_cmd *c = calloc(1, sizeof(*c));
	if (!c)
		return ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
	c->type = CMD_RELOAD_TLS;
	c->sync = 1;
	rv = post(n, c);
	if (rv == 0)
		rv = c->result;
	free_cmd(c);
	if (rv)
		ags_error_set(err, rv, NULL, "TLS reload failed: %s", ags_strerror(rv));
	return rv;
}

/* ---- patterns ---- */

static void wake(struct ags_node *n)
{
	pthread_mutex_lock(&n->cmd_mu);
	if (n->running)
		uv_async_send(&n->async);
	pthread_mutex_unlock(&n->cmd_mu);
}

static int apply_local(struct ags_node *n, const ags_pattern *const *p, size_t cnt,
                       const char *scope, ags_apply_result *res, ags_error *err)
{
	if (!n->started)
		return ags_error_set(err, AGS_ERR_STATE, NULL, "node not started");
	ags_change_meta *meta = NULL;
	ags_change_clock *clocks = calloc(cnt ? cnt : 1, sizeof(*clocks));
	if (!clocks)
		return ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
	if (scope) {
		meta = calloc(cnt ? cnt : 1, sizeof(*meta));
		if (!meta) {
			free(clocks);
			return ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
		}
		for (size_t i = 0; i < cnt; i++)
			meta[i].scope = scope;
	}
	int rv;
	ags_vclock *next = NULL;
	char *json = NULL;
	uint64_t tick = 0;
	/* The outcomes are needed to keep the rows for the senders. */
	ags_apply_result own[AGS_NODE_RECENT_CALL_MAX];
	if (!res && cnt <= AGS_NODE_RECENT_CALL_MAX)
		res = own;
	pthread_mutex_lock(&n->store_mu);
	if (!n->store) {
		rv = ags_error_set(err, AGS_ERR_STATE, NULL, "node stopped");
	} else if ((rv = ags_sync_clock_tick(&n->host, n->node_id, &next, &json, &tick))) {
		rv = ags_error_set(err, rv, NULL, "cannot advance the vector clock: %s",
		                   ags_strerror(rv));
	} else {
		/* One tick per write call: every change of it gets the writer's new counter. */
		for (size_t i = 0; i < cnt; i++) {
			clocks[i].writer = n->node_id;
			clocks[i].tick = tick;
		}
		ags_store_kv kv = {AGS_STORE_CLOCK_KEY, json};
		rv = ags_store_apply_batch_kv(n->store, p, meta, clocks, cnt, &kv, 1, res, NULL,
		                              err);
		if (rv == 0) {
			ags_sync_clock_commit(&n->host, next);
			next = NULL;
			/* Under the store lock: rows are kept in the order of their sequences. */
			ags_node_recent_add(n, p, cnt, scope, res, tick);
		}
	}
	pthread_mutex_unlock(&n->store_mu);
	ags_vclock_del(next);

	free(json);
	free(meta);
	free(clocks);
	if (rv == 0)
		wake(n);
	return rv;
}

AGS_EXPORT int ags_node_sync_pattern(ags_node *n, const ags_pattern *p, const char *const *peer_ids,
                                     size_t n_peer_ids, ags_apply_result *res, ags_error *err)
{
	if (!n || !p)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "node and pattern are required");
	char *scope = NULL;
	if (peer_ids) {
		scope = ags_sync_scope_make(peer_ids, n_peer_ids);
		if (!scope)
			return ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
	}
	int rv = apply_local(n, &p, 1, scope, res, err);
	free(scope);
	return rv;
}

AGS_EXPORT int ags_node_sync_patterns(ags_node *n, const ags_pattern *const *p, size_t cnt,
                                      ags_apply_result *res, ags_error *err)
{
	if (!n || (!p && cnt))
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "node and patterns are required");
	return apply_local(n, p, cnt, NULL, res, err);
}

AGS_EXPORT int ags_node_delete(ags_node *n, const char *id, ags_apply_result *res, ags_error *err)
{
	if (!n || !id)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "node and id are required");
	if (!n->started)
		return ags_error_set(err, AGS_ERR_STATE, NULL, "node not started");
	ags_record_head head;
	pthread_mutex_lock(&n->store_mu);
	int rv = ags_store_head(n->store, id, &head);
	pthread_mutex_unlock(&n->store_mu);
	if (rv == AGS_ERR_NOT_FOUND || (rv == 0 && head.state != AGS_RECORD_LIVE))
		return ags_error_set(err, AGS_ERR_NOT_FOUND, "id", "no pattern '%s'", id);
	if (rv)
		return ags_error_set(err, rv, NULL, "store: %s", ags_store_errmsg(n->store));
	ags_pattern *t = NULL;
	int64_t ts = ags_now_ms();
	if (ts <= head.timestamp)
		ts = head.timestamp + 1;
	if ((rv = ags_pattern_new_tombstone(id, head.version + 1, ts, &t)))
		return ags_error_set(err, rv, "id", "cannot make a tombstone");
	const ags_pattern *tp = t;
	rv = apply_local(n, &tp, 1, NULL, res, err);
	ags_pattern_del(t);
	return rv;
}

AGS_EXPORT int ags_node_get(ags_node *n, const char *id, ags_pattern **out)
{
	if (!n || !id || !out)
		return AGS_ERR_INVALID;
	pthread_mutex_lock(&n->rstore_mu);
	int rv = n->rstore ? ags_store_get(n->rstore, id, out) : AGS_ERR_STATE;
	pthread_mutex_unlock(&n->rstore_mu);
	return rv;
}

AGS_EXPORT int ags_node_query(ags_node *n, const ags_query *q, ags_pattern_cb cb, void *user_data)
{
	if (!n || !cb)
		return AGS_ERR_INVALID;
	pthread_mutex_lock(&n->rstore_mu);
	int rv = n->rstore ? ags_store_query(n->rstore, q, cb, user_data) : AGS_ERR_STATE;
	pthread_mutex_unlock(&n->rstore_mu);
	return rv;
}

/* ---- state ---- */

AGS_EXPORT int ags_node_get_state(ags_node *n, ags_node_state **out)
{
	if (!n || !out)
		return AGS_ERR_INVALID;
	ags_node_state *st = calloc(1, sizeof(*st));
	if (!st)
		return AGS_ERR_NOMEM;
	struct ags_cmd *c = calloc(1, sizeof(*c));
	if (!c) {
		free(st);
		return AGS_ERR_NOMEM;
	}
	c->type = CMD_STATE;
	c->state = st;
	c->sync = 1;
	int rv = post(n, c);
	free_cmd(c);
	if (rv == AGS_ERR_STATE) {
		/* Not running: configured peers, no connections. */
		rv = 0;
		st->peers = calloc(n->n_peers ? n->n_peers : 1, sizeof(*st->peers));
		if (!st->peers)
			rv = AGS_ERR_NOMEM;
		for (size_t i = 0; st->peers && i < n->n_peers; i++) {
			snprintf(st->peers[i].id, sizeof(st->peers[i].id), "%s", n->peers[i]->id);
			snprintf(st->peers[i].address, sizeof(st->peers[i].address), "%s:%u",
			         n->peers[i]->address ? n->peers[i]->address : "",
			         n->peers[i]->port);
		}
		st->n_peers = n->n_peers;
	}
	if (rv) {
		ags_node_state_del(st);
		return rv;
	}
	*out = st;
	return 0;
}

AGS_EXPORT void ags_node_state_del(ags_node_state *st)
{
	if (!st)
		return;
	free(st->peers);
	free(st);
}

/* ---- hub ---- */

AGS_EXPORT int ags_node_get_hub_stats(ags_node *n, ags_hub_stats **out)
{
	if (!n || !out)
		return AGS_ERR_INVALID;
	ags_hub_stats *st = calloc(1, sizeof(*st));
	struct ags_cmd *c = calloc(1, sizeof(*c));
	if (!st || !c) {
		free(st);
		free(c);
		return AGS_ERR_NOMEM;
	}
	c->type = CMD_HUB_STATS;
	c->hub_stats = st;
	int rv = ags_node_post_sync(n, c);
	free_cmd(c);
	if (rv) {
		ags_node_hub_stats_del(st);
		return rv;
	}
	if (st->enabled && !st->tenants) {
		ags_node_hub_stats_del(st);
		return AGS_ERR_NOMEM;
	}
	*out = st;
	return 0;
}

AGS_EXPORT void ags_node_hub_stats_del(ags_hub_stats *st)
{
	if (!st)
		return;
	free(st->tenants);
	free(st);
}
