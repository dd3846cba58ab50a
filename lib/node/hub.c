/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The federation hub (see hub.h): agent links (ags_hub_agent_ops: AUTH and
 * the JWT, then a session bound to the token's tenant), the tenant registry
 * (one store, clock and sync host per tenant), and per-tenant statistics.
 * It knows the node only through its environment (ags_hub_env).
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "backoff.h"
#include "clock.h"
#include "error.h"
#include "file.h"
#include "frame.h"
#include "hub.h"
#include "jwtauth.h"
#include "log.h"
#include "node_link.h"
#include "store.h"
#include "wire.h"

/* An agent's AUTH frame is small: the token is at most 8 KiB. */
#define PREAUTH_MAX_FRAME (16u * 1024)
/* How long a refused agent gets to receive its ERROR frame before the close. */
#define REFUSE_LINGER_MS 2000
/* How long a connection may go without AUTH (keep-alives would hold it open). */
#define AUTH_DEADLINE_MS    10000
#define MAX_AGENTS_DEFAULT  10000u
#define MAX_TENANTS_DEFAULT 1000u

/* An agent's link (ags_link.kind_data). */
struct ags_hub_agent {
	ags_frame_reader rd;           /* its frames before AUTH */
	int reading;                   /* rd is in use (AUTH not accepted yet) */
	struct ags_hub_tenant *tenant; /* after AUTH */
	char id[AGS_JWT_SUB_MAX + 1];  /* the token's sub, after AUTH */
	int refused;                   /* refused at AUTH: waiting for the ERROR frame to go out */
	uint64_t
	    close_at_ms; /* close by then: no AUTH yet, or refused and ERROR not acknowledged */
};

static struct ags_hub_agent *agent_of(const struct ags_link *l)
{
	return l->kind_data;
}

struct ags_hub_tenant {
	struct ags_hub *hub;
	char name[AGS_HUB_TENANT_MAX + 1];
	int is_default; /* the node's own store, host and mutex */
	ags_store *store;
	pthread_mutex_t own_mu;
	pthread_mutex_t *mu;
	char store_id[33];
	ags_sync_host own_host;
	ags_sync_host *host;
	ags_vclock *clock;
	ags_sync_cache cache;
	struct ags_link **links; /* authenticated agents */
	size_t n_links, cap_links;
	uint64_t applied_base; /* changes from agents of closed sessions */
};

struct ags_hub {
	ags_hub_env env;
	ags_jwt_config jwt;
	uint8_t *secret;
	char *rs_pem, *es_pem;
	struct ags_hub_tenant **tenants;
	size_t n_tenants, cap_tenants;
	struct ags_link **pending; /* connected, AUTH not accepted yet */
	size_t n_pending, cap_pending;
	size_t n_agents;
	uint32_t max_agents, max_tenants;
	uint64_t auth_ok, auth_refused;
	ags_repeat refusal_lines; /* refusals logged: a few per window, then counted */
};

static void hub_log(struct ags_hub *h, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void hub_log(struct ags_hub *h, int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ags_vlogf(h->env.log, h->env.ud, level, fmt, ap);
	va_end(ap);
}

static void hub_emit(struct ags_hub *h, const ags_event *ev)
{
	if (h->env.emit)
		h->env.emit(h->env.ud, ev);
}

/* ---- names and paths ---- */

int ags_hub_tenant_name_ok(const char *t)
{
	size_t n = t ? strlen(t) : 0;
	if (n == 0 || n > AGS_HUB_TENANT_MAX || t[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = t[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

static int mkdir_one(const char *p, ags_error *err)
{
	if (mkdir(p, 0700) < 0 && errno != EEXIST)
		return ags_error_set(err, AGS_ERR_IO, "dataDir", "cannot create %s: %m", p);
	return 0;
}

int ags_hub_tenant_path(const char *data_dir, const char *t, char *buf, size_t cap, ags_error *err)
{
	if (!ags_hub_tenant_name_ok(t))
		return ags_error_set(err, AGS_ERR_INVALID, "tenant",
		                     "'%.64s' is not a tenant name (1-128 of [A-Za-z0-9._-], not "
		                     "starting with '.')",
		                     t ? t : "");
	int rv;
	if ((size_t)snprintf(buf, cap, "%s/tenants", data_dir) >= cap)
		return ags_error_set(err, AGS_ERR_TOO_LARGE, "dataDir", "path too long");
	if ((rv = mkdir_one(buf, err)))
		return rv;
	/* Names that differ only in case would share one directory on a case-insensitive file
	 * system (and so one store): the first one keeps the name, the others are refused. */
	DIR *d = opendir(buf);
	for (struct dirent *e; d && (e = readdir(d));) {
		if (strcasecmp(e->d_name, t) == 0 && strcmp(e->d_name, t) != 0) {
			rv = ags_error_set(
			    err, AGS_ERR_EXISTS, "tenant",
			    "'%.64s' differs only in case from the tenant '%.64s' this "
			    "hub already has: tenant names must differ in more than case",
			    t, e->d_name);
			break;
		}
	}
	if (d)
		closedir(d);
	if (rv)
		return rv;
	if ((size_t)snprintf(buf, cap, "%s/tenants/%s", data_dir, t) >= cap)
		return ags_error_set(err, AGS_ERR_TOO_LARGE, "dataDir", "path too long");
	if ((rv = mkdir_one(buf, err)))
		return rv;
	if ((size_t)snprintf(buf, cap, "%s/tenants/%s/store.db", data_dir, t) >= cap)
		return ags_error_set(err, AGS_ERR_TOO_LARGE, "dataDir", "path too long");
	return 0;
}

const char *ags_hub_tenant_key_file(const ags_node_config *cfg, const char *t)
{
	for (size_t i = 0; i < cfg->hub.n_tenant_keys; i++)
		if (strcmp(cfg->hub.key_tenants[i], t) == 0)
			return cfg->hub.key_files[i];
	return cfg->store_key_file;
}

/* ---- lists ---- */

static int list_add(struct ags_link ***arr, size_t *n, size_t *cap, struct ags_link *l)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		struct ags_link **a = realloc(*arr, c * sizeof(*a));
		if (!a)
			return AGS_ERR_NOMEM;
		*arr = a;
		*cap = c;
	}
	(*arr)[(*n)++] = l;
	return 0;
}

static int list_remove(struct ags_link **arr, size_t *n, struct ags_link *l)
{
	for (size_t i = 0; i < *n; i++) {
		if (arr[i] == l) {
			arr[i] = arr[--*n];
			return 1;
		}
	}
	return 0;
}

/* ---- keys ---- */

/* Reads a key file (the reader and limit the daemon's configuration checks with). */
static int read_file(const char *path, const char *field, char **out, size_t *len, ags_error *err)
{
	return ags_file_read_setting(path, AGS_FILE_KEY_MAX, field, AGS_ERR_IO, out, len, err);
}

static unsigned alg_bit(const char *name)
{
	if (strcmp(name, "HS256") == 0)
		return AGS_JWT_HS256;
	if (strcmp(name, "RS256") == 0)
		return AGS_JWT_RS256;
	if (strcmp(name, "ES256") == 0)
		return AGS_JWT_ES256;
	return 0;
}

static int load_keys(struct ags_hub *h, const ags_node_config *c, ags_error *err)
{
	int rv;
	size_t len = 0;
	if (c->hub.hs256_secret && c->hub.hs256_secret_len) {
		h->secret = malloc(c->hub.hs256_secret_len);
		if (!h->secret)
			return ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
		memcpy(h->secret, c->hub.hs256_secret, c->hub.hs256_secret_len);
		h->jwt.hs_secret_len = c->hub.hs256_secret_len;
	} else if (c->hub.hs256_secret_file) {
		char *s = NULL;
		if ((rv =
		         read_file(c->hub.hs256_secret_file, "hub.hs256SecretFile", &s, &len, err)))
			return rv;
		if (len > 0 && s[len - 1] == '\n')
			len--;
		if (len > 0 && s[len - 1] == '\r')
			len--;
		h->secret = (uint8_t *)s;
		h->jwt.hs_secret_len = len;
	}
	h->jwt.hs_secret = h->secret;
	if (c->hub.rs256_public_key_file &&
	    (rv = read_file(c->hub.rs256_public_key_file, "hub.rs256PublicKeyFile", &h->rs_pem,
	                    &len, err)))
		return rv;
	if (c->hub.es256_public_key_file &&
	    (rv = read_file(c->hub.es256_public_key_file, "hub.es256PublicKeyFile", &h->es_pem,
	                    &len, err)))
		return rv;
	h->jwt.rs_public_pem = h->rs_pem;
	h->jwt.es_public_pem = h->es_pem;
	if (c->hub.n_algorithms) {
		for (size_t i = 0; i < c->hub.n_algorithms; i++) {
			unsigned b = c->hub.algorithms[i] ? alg_bit(c->hub.algorithms[i]) : 0;
			if (!b) {
				char f[48];
				snprintf(f, sizeof(f), "hub.algorithms[%zu]", i);
				return ags_error_set(err, AGS_ERR_CONFIG, f,
				                     "must be HS256, RS256 or ES256");
			}
			h->jwt.algs |= b;
		}
	} else {
		h->jwt.algs = (h->secret ? AGS_JWT_HS256 : 0) | (h->rs_pem ? AGS_JWT_RS256 : 0) |
		              (h->es_pem ? AGS_JWT_ES256 : 0);
		if (!h->jwt.algs)
			return ags_error_set(
			    err, AGS_ERR_CONFIG, "hub",
			    "a hub needs a key to verify tokens with "
			    "(hs256Secret, rs256PublicKeyFile or es256PublicKeyFile)");
	}
	h->jwt.issuer = c->hub.issuer;
	h->jwt.audience = c->hub.audience;
	h->jwt.skew_s = c->hub.skew_s;
	ags_error e;
	ags_error_clear(&e);
	if (ags_jwt_config_check(&h->jwt, &e) != 0) {
		const char *field = strcmp(e.field, "algs") == 0 ? "hub.algorithms" : "hub";
		return ags_error_set(err, AGS_ERR_CONFIG, field, "%s%s%s", e.field,
		                     e.field[0] ? ": " : "", e.message);
	}
	return 0;
}

/* ---- tenants ---- */

static void t_event(void *ud, const ags_event *ev)
{
	struct ags_hub_tenant *t = ud;
	ags_event e = *ev;
	e.tenant = t->name;
	hub_emit(t->hub, &e);
}

static void pump_tenant(struct ags_hub_tenant *t)
{
	uint64_t now = ags_mono_us();
	for (size_t i = 0; i < t->n_links; i++)
		ags_node_link_pump(t->links[i], now);
}

static void t_changed(void *ud, void *session_ud)
{
	(void)session_ud;
	pump_tenant(ud);
}

static void t_log(void *ud, int level, const char *msg)
{
	struct ags_hub_tenant *t = ud;
	hub_log(t->hub, level, "[%s] %s", t->name, msg);
}

static void tenant_free(struct ags_hub_tenant *t)
{
	if (!t)
		return;
	if (!t->is_default) {
		ags_sync_cache_free(&t->cache);
		ags_store_close(t->store);
		ags_vclock_del(t->clock);
		pthread_mutex_destroy(&t->own_mu);
	}
	free(t->links);
	free(t);
}

static int tenant_add(struct ags_hub *h, struct ags_hub_tenant *t)
{
	if (h->n_tenants == h->cap_tenants) {
		size_t c = h->cap_tenants ? h->cap_tenants * 2 : 8;
		struct ags_hub_tenant **a = realloc(h->tenants, c * sizeof(*a));
		if (!a)
			return AGS_ERR_NOMEM;
		h->tenants = a;
		h->cap_tenants = c;
	}
	h->tenants[h->n_tenants++] = t;
	return 0;
}

static struct ags_hub_tenant *tenant_find(struct ags_hub *h, const char *name)
{
	for (size_t i = 0; i < h->n_tenants; i++)
		if (strcmp(h->tenants[i]->name, name) == 0)
			return h->tenants[i];
	return NULL;
}

/* The tenant `name`, opening its store on first use. */
static int tenant_get(struct ags_hub *h, const char *name, struct ags_hub_tenant **out,
                      ags_error *err)
{
	const ags_node_config *cfg = h->env.cfg;
	if ((*out = tenant_find(h, name)))
		return 0;
	if (h->n_tenants >= h->max_tenants)
		return ags_error_set(err, AGS_ERR_AGAIN, "tenant",
		                     "the hub serves at most %u tenants", h->max_tenants);
	char path[4096];
	int rv = ags_hub_tenant_path(cfg->data_dir, name, path, sizeof(path), err);
	if (rv)
		return rv;
	struct ags_hub_tenant *t = calloc(1, sizeof(*t));
	if (!t)
		return ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
	t->hub = h;
	snprintf(t->name, sizeof(t->name), "%s", name);
	pthread_mutex_init(&t->own_mu, NULL);
	t->mu = &t->own_mu;
	ags_store_opts so = {.fsync_full = cfg->fsync_full,
	                     .key_file = ags_hub_tenant_key_file(cfg, name)};
	if ((rv = ags_store_open(path, &so, &t->store, err)))
		goto fail;
	if ((rv = ags_sync_clock_load(t->store, &t->clock))) {
		rv = ags_error_set(err, rv, "tenant", "cannot read the clock of tenant %s: %s",
		                   name, ags_strerror(rv));
		goto fail;
	}
	snprintf(t->store_id, sizeof(t->store_id), "%s", ags_store_id(t->store));
	t->own_host = *h->env.host; /* the node's settings; the hello and send of every link */
	t->host = &t->own_host;
	t->host->store = t->store;
	t->host->store_mu = t->mu;
	if (!t->is_default) {
		/* The node's epochs are of its own store (a tenant's store keeps none). */
		t->host->epochs = NULL;
		t->host->n_epochs = 0;
	}
	t->host->log_store = NULL; /* the node's reader is of the node's store */
	t->host->submit = NULL;
	t->host->recent = NULL; /* the node's writes are not the tenant's */
	t->host->store_id = t->store_id;
	t->host->tenant = t->name;
	t->host->clock = t->clock;
	t->host->cache = &t->cache;
	t->host->ud = t;
	t->host->event = t_event;
	t->host->changed = t_changed;
	t->host->log = t_log;
	t->host->pulled = NULL;
	if ((rv = tenant_add(h, t))) {
		rv = ags_error_set(err, rv, NULL, NULL);
		goto fail;
	}
	hub_log(h, AGS_LOG_INFO, "tenant %s opened (store %s)", name, t->store_id);
	*out = t;
	return 0;
fail:
	tenant_free(t);
	return rv;
}

/* ---- lifecycle ---- */

int ags_hub_new(const ags_hub_env *env, struct ags_hub **out, ags_error *err)
{
	struct ags_hub *h = calloc(1, sizeof(*h));
	if (!h)
		return ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
	h->env = *env;
	const ags_node_config *cfg = env->cfg;
	h->max_agents = cfg->hub.max_agents ? cfg->hub.max_agents : MAX_AGENTS_DEFAULT;
	h->max_tenants = cfg->hub.max_tenants ? cfg->hub.max_tenants : MAX_TENANTS_DEFAULT;
	int rv = load_keys(h, cfg, err);
	if (rv)
		goto fail;
	struct ags_hub_tenant *t = calloc(1, sizeof(*t));
	if (!t) {
		rv = ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
		goto fail;
	}
	t->hub = h;
	t->is_default = 1;
	snprintf(t->name, sizeof(t->name), "%s", cfg->tenant);
	t->store = env->store;
	t->mu = env->store_mu;
	snprintf(t->store_id, sizeof(t->store_id), "%s", env->store_id);
	t->host = env->host;
	t->clock = env->clock;
	if ((rv = tenant_add(h, t))) {
		free(t);
		rv = ags_error_set(err, rv, NULL, NULL);
		goto fail;
	}
	*out = h;
	return 0;
fail:
	ags_hub_del(h);
	return rv;
}

void ags_hub_del(struct ags_hub *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->n_tenants; i++)
		tenant_free(h->tenants[i]);
	free(h->tenants);
	free(h->pending);
	if (h->secret) {
		memset(h->secret, 0, h->jwt.hs_secret_len);
		free(h->secret);
	}
	free(h->rs_pem);
	free(h->es_pem);
	free(h);
}

size_t ags_hub_max_conns(const struct ags_hub *h, size_t n_peers)
{
	return (size_t)h->max_agents + n_peers + 64;
}

/* ---- agents ---- */

/* A connection from an agent completed its handshake: wait for AUTH. */
static void agent_connected(struct ags_link *l, const char *peer_id, const char *addr)
{
	(void)peer_id; /* who an agent is comes from its token, not its certificate */
	(void)addr;
	struct ags_hub *h = l->owner;
	struct ags_hub_agent *a = calloc(1, sizeof(*a));
	if (a && ags_frame_reader_init(&a->rd, PREAUTH_MAX_FRAME) == 0)
		a->reading = 1;
	l->kind_data = a;
	if (!a || !a->reading || list_add(&h->pending, &h->n_pending, &h->cap_pending, l) != 0) {
		ags_quic_conn_close(l->conn, AGS_APP_INTERNAL_ERROR, "out of memory");
		return;
	}
	a->close_at_ms = ags_mono_ms() + AUTH_DEADLINE_MS;
	hub_log(h, AGS_LOG_DEBUG,
	        "agent connection from %s (certificate '%s'): waiting "
	        "for AUTH",
	        ags_quic_conn_peer_addr(l->conn), ags_quic_conn_peer_id(l->conn));
}

/* AUTH is over (accepted or refused): the frame reader is not needed any more. */
static void reader_free(struct ags_hub_agent *a)
{
	if (a && a->reading) {
		ags_frame_reader_free(&a->rd);
		a->reading = 0;
	}
}

struct refusal {
	uint8_t *frame;
	ags_quic_conn *conn;
	uint64_t code;
	char reason[AGS_QUIC_REASON_MAX];
};

static void refusal_done(void *ud, int status)
{
	(void)status;
	struct refusal *r = ud;
	/* The agent has the ERROR frame (or never will): now close. */
	ags_quic_conn_close(r->conn, r->code, r->reason);
	free(r->frame);
	free(r);
}

/* Refuses an agent: log, event, ERROR frame, then a close with `code`. Returns AGS_ERR_AUTH. */
static int refuse(struct ags_hub *h, struct ags_link *l, uint64_t code, const char *why)
{
	/* A reason may quote the agent's token (a claim, a key): no control characters, which an
	 * ERROR frame may not carry (PROTOCOL.md) and a log line must not show. */
	char reason[256];
	size_t k = 0;
	for (; why[k] && k + 1 < sizeof(reason); k++)
		reason[k] = (unsigned char)why[k] < 0x20 || why[k] == 0x7f ? '?' : why[k];
	reason[k] = '\0';
	struct ags_hub_agent *a = agent_of(l);
	const char *addr = ags_quic_conn_peer_addr(l->conn);
	h->auth_refused++;
	a->refused = 1;
	a->close_at_ms = ags_mono_ms() + REFUSE_LINGER_MS;
	uint64_t held;
	if (ags_repeat_take(&h->refusal_lines, reason, AGS_REFUSAL_LINES, AGS_REFUSAL_WINDOW_MS,
	                    ags_mono_ms(), &held)) {
		if (held)
			hub_log(h, AGS_LOG_WARN,
			        "%llu more agent refusals in the last %u s were not logged",
			        (unsigned long long)held, AGS_REFUSAL_WINDOW_MS / 1000);
		hub_log(h, AGS_LOG_WARN, "agent from %s refused (%s): %s", addr,
		        ags_app_error_name(code), reason);
	}
	ags_event ev = {.type = AGS_EV_CONNECTION_REFUSED, .address = addr, .error = reason};
	hub_emit(h, &ev);
	ags_frame_buf fb;
	ags_frame_buf_init(&fb, 0);
	struct refusal *r = calloc(1, sizeof(*r));
	if (r && l->sid >= 0 && ags_wire_error_encode(code, reason, &fb, NULL) == 0) {
		r->frame = fb.data;
		r->conn = l->conn;
		r->code = code;
		snprintf(r->reason, sizeof(r->reason), "%s", reason);
		if (ags_quic_stream_write(l->conn, l->sid, fb.data, fb.len, 0, refusal_done, r) ==
		    0)
			return AGS_ERR_AUTH;
	}
	ags_frame_buf_free(&fb);
	free(r);
	ags_quic_conn_close(l->conn, code, reason);
	return AGS_ERR_AUTH;
}

static int on_auth(struct ags_hub *h, struct ags_link *l, const ags_frame *f)
{
	struct ags_hub_agent *a = agent_of(l);
	char reason[AGS_QUIC_REASON_MAX];
	if (f->type != AGS_FRAME_AUTH) {
		snprintf(reason, sizeof(reason), "AUTH must be the first frame, got %s",
		         ags_frame_type_name(f->type));
		return refuse(h, l, AGS_APP_AUTH_FAILED, reason);
	}
	ags_wire_auth auth;
	ags_error e;
	ags_error_clear(&e);
	if (ags_wire_auth_decode(f->payload, f->len, &auth, &e) != 0) {
		snprintf(reason, sizeof(reason), "bad AUTH: %.40s%s%.180s", e.field,
		         e.field[0] ? ": " : "", e.message);
		return refuse(h, l, AGS_APP_AUTH_FAILED, reason);
	}
	ags_jwt_claims claims;
	int rv = ags_jwt_verify(&h->jwt, auth.token, ags_now_ms() / 1000, &claims, &e);
	ags_wire_auth_free(&auth);
	if (rv) {
		if (e.field[0])
			snprintf(reason, sizeof(reason), "token refused: %.180s (%.40s)", e.message,
			         e.field);
		else
			snprintf(reason, sizeof(reason), "token refused: %.200s", e.message);
		return refuse(h, l,
		              rv == AGS_ERR_CONFIG ? AGS_APP_INTERNAL_ERROR : AGS_APP_AUTH_FAILED,
		              reason);
	}
	if (!ags_hub_tenant_name_ok(claims.tenant)) {
		snprintf(reason, sizeof(reason),
		         "tenant '%s' is not a tenant name this hub serves (1-128 of "
		         "[A-Za-z0-9._-], not starting with '.')",
		         claims.tenant);
		return refuse(h, l, AGS_APP_AUTH_FAILED, reason);
	}
	if (h->n_agents >= h->max_agents) {
		snprintf(reason, sizeof(reason), "the hub is full (%u agents)", h->max_agents);
		return refuse(h, l, AGS_APP_INTERNAL_ERROR, reason);
	}
	struct ags_hub_tenant *t = NULL;
	ags_error_clear(&e);
	if (tenant_get(h, claims.tenant, &t, &e) != 0) {
		snprintf(reason, sizeof(reason), "cannot serve tenant '%.64s': %.150s",
		         claims.tenant, e.message);
		return refuse(h, l, AGS_APP_INTERNAL_ERROR, reason);
	}
	ags_sync_opts so = {.role = AGS_SYNC_ROLE_HUB};
	if (list_add(&t->links, &t->n_links, &t->cap_links, l) != 0 ||
	    ags_sync_new_ex(t->host, claims.sub, &so, l, &l->sync) != 0) {
		list_remove(t->links, &t->n_links, l);
		return refuse(h, l, AGS_APP_INTERNAL_ERROR, "out of memory");
	}
	list_remove(h->pending, &h->n_pending, l);
	a->tenant = t;
	snprintf(a->id, sizeof(a->id), "%s", claims.sub);
	h->n_agents++;
	ags_sync_start(l->sync, ags_mono_us());
	hub_log(h, AGS_LOG_INFO, "agent %s of tenant %s authenticated from %s (%s token)",
	        claims.sub, claims.tenant, ags_quic_conn_peer_addr(l->conn), claims.alg);
	return 0;
}

/*
 * Stream data of an agent before its AUTH was accepted: reads the AUTH
 * frame, verifies the token, binds the link to its tenant and starts its
 * session (l->sync); what is left of `data` belongs to the session.
 */
static int agent_data(struct ags_link *l, const uint8_t *data, size_t len, size_t *used)
{
	struct ags_hub *h = l->owner;
	struct ags_hub_agent *a = agent_of(l);
	*used = 0;
	if (!a || a->refused || !a->reading) {
		*used = len;
		return AGS_ERR_AUTH;
	}
	while (*used < len && !l->sync) {
		size_t u = 0;
		ags_frame f;
		ags_error e;
		ags_error_clear(&e);
		int rv = ags_frame_reader_feed(&a->rd, data + *used, len - *used, &u, &f, &e);
		*used += u;
		if (rv < 0) {
			char reason[AGS_QUIC_REASON_MAX];
			snprintf(reason, sizeof(reason), "before AUTH: %.200s",
			         e.message[0] ? e.message : ags_strerror(rv));
			*used = len;
			return refuse(h, l, AGS_APP_AUTH_FAILED, reason);
		}
		if (rv == 0)
			break;
		rv = on_auth(h, l, &f);
		reader_free(a);
		if (rv) {
			*used = len;
			return rv;
		}
	}
	return 0;
}

/* The HELLO of an agent's session arrived (ags_sync_host.hello); 0 to go on. */
static int agent_hello(struct ags_link *l, const char *instance)
{
	struct ags_hub *h = l->owner;
	struct ags_hub_agent *a = agent_of(l);
	struct ags_hub_tenant *t = a ? a->tenant : NULL;
	snprintf(l->instance, sizeof(l->instance), "%s", instance ? instance : "");
	if (!t)
		return -1;
	/* One connection per agent: a newer one (a restarted agent) replaces the old. */
	for (size_t i = 0; i < t->n_links; i++) {
		struct ags_link *o = t->links[i];
		if (o != l && o->announced && strcmp(agent_of(o)->id, a->id) == 0)
			ags_quic_conn_close(o->conn, AGS_APP_NO_ERROR,
			                    "replaced by a newer connection of the same agent");
	}
	l->announced = 1;
	/* Accepted only now: a HELLO naming another agent or tenant is a refusal. */
	h->auth_ok++;
	ags_event ev = {.type = AGS_EV_PEER_CONNECTED,
	                .peer_id = a->id,
	                .address = ags_quic_conn_peer_addr(l->conn),
	                .tenant = t->name};
	hub_log(h, AGS_LOG_INFO, "agent %s of tenant %s connected from %s", a->id, t->name,
	        ev.address);
	hub_emit(h, &ev);
	return 0;
}

/* An agent's connection closed: peer:disconnected, and the hub forgets the link. */
static void agent_closed(struct ags_link *l, uint64_t code, const char *reason, int by_peer)
{
	struct ags_hub *h = l->owner;
	struct ags_hub_agent *a = agent_of(l);
	if (l->announced && a) {
		char err[320];
		snprintf(err, sizeof(err), "%s (code 0x%llx, by %s)",
		         reason && *reason ? reason : "closed", (unsigned long long)code,
		         by_peer ? "agent" : "us");
		ags_event ev = {.type = AGS_EV_PEER_DISCONNECTED,
		                .peer_id = a->id,
		                .error = err,
		                .tenant = a->tenant ? a->tenant->name : NULL};
		hub_log(h, AGS_LOG_INFO, "agent %s disconnected: %s", a->id, err);
		hub_emit(h, &ev);
	}
	list_remove(h->pending, &h->n_pending, l);
	struct ags_hub_tenant *t = a ? a->tenant : NULL;
	if (t && list_remove(t->links, &t->n_links, l))
		h->n_agents--;
	if (t && l->sync) {
		ags_sync_stats ss;
		ags_sync_get_stats(l->sync, &ss);
		t->applied_base += ss.patterns_applied;
	}
	reader_free(a);
	free(a);
	l->kind_data = NULL;
}

/* Agents open the stream: the session starts once AUTH is accepted. */
static void agent_stream_open(struct ags_link *l, int64_t sid)
{
	if (l->sid >= 0) {
		ags_quic_stream_reset(l->conn, sid, AGS_APP_PROTOCOL_ERROR);
		return;
	}
	l->sid = sid;
}

/*
 * The agent's session refused it (a HELLO naming another agent or tenant than
 * its token, a second AUTH): refused like a bad AUTH, and closed by the tick
 * if the agent does not acknowledge the ERROR frame.
 */
static void agent_refuse(struct ags_link *l, uint64_t code, const char *reason)
{
	struct ags_hub *h = l->owner;
	if (!agent_of(l)) {
		ags_quic_conn_close(l->conn, code, reason);
		return;
	}
	(void)refuse(h, l, code, reason);
	if (list_add(&h->pending, &h->n_pending, &h->cap_pending, l) != 0)
		ags_quic_conn_close(l->conn, code, reason);
}

/* An agent's session is made when its AUTH is accepted (agent_data), never on a stream. */
static int agent_start(struct ags_link *l)
{
	ags_quic_conn_close(l->conn, AGS_APP_PROTOCOL_ERROR, "no stream is opened to an agent");
	return AGS_ERR_STATE;
}

const struct ags_link_ops ags_hub_agent_ops = {
    .kind = "agent",
    .start = agent_start,
    .connected = agent_connected,
    .stream_open = agent_stream_open,
    .data = agent_data,
    .hello = agent_hello,
    .closed = agent_closed,
    .refuse = agent_refuse,
};

void ags_hub_pump_default(struct ags_hub *h)
{
	if (h->n_tenants)
		pump_tenant(h->tenants[0]);
}

void ags_hub_tick(struct ags_hub *h, uint64_t now_ms, int sweep)
{
	uint64_t held = ags_repeat_flush(&h->refusal_lines, AGS_REFUSAL_WINDOW_MS, now_ms);
	if (held)
		hub_log(h, AGS_LOG_WARN,
		        "%llu more agent refusals in the last %u s were not logged",
		        (unsigned long long)held, AGS_REFUSAL_WINDOW_MS / 1000);
	for (size_t i = 0; i < h->n_pending; i++) {
		struct ags_link *l = h->pending[i];
		struct ags_hub_agent *a = agent_of(l);
		if (!a->close_at_ms || now_ms < a->close_at_ms)
			continue;
		a->close_at_ms = 0;
		if (a->refused)
			ags_quic_conn_close(l->conn, AGS_APP_AUTH_FAILED, "refused");
		else
			refuse(h, l, AGS_APP_AUTH_FAILED, "no AUTH within 10 s");
	}
	for (size_t i = 0; i < h->n_tenants; i++) {
		struct ags_hub_tenant *t = h->tenants[i];
		pump_tenant(t);
		if (!sweep || t->is_default)
			continue; /* the node sweeps its own store */
		uint64_t purged = 0;
		pthread_mutex_lock(t->mu);
		int rv = ags_store_sweep(t->store, ags_now_ms(), &purged);
		pthread_mutex_unlock(t->mu);
		if (rv)
			hub_log(h, AGS_LOG_ERROR, "[%s] expiry sweep failed: %s", t->name,
			        ags_strerror(rv));
		else if (purged)
			pump_tenant(t);
	}
}

void ags_hub_close_all(struct ags_hub *h)
{
	for (size_t i = 0; i < h->n_pending; i++)
		ags_quic_conn_close(h->pending[i]->conn, AGS_APP_SHUTTING_DOWN,
		                    "hub shutting down");
	for (size_t i = 0; i < h->n_tenants; i++)
		for (size_t j = 0; j < h->tenants[i]->n_links; j++)
			ags_quic_conn_close(h->tenants[i]->links[j]->conn, AGS_APP_SHUTTING_DOWN,
			                    "hub shutting down");
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const ags_hub_tenant_stats *)a)->tenant,
	              ((const ags_hub_tenant_stats *)b)->tenant);
}

void ags_hub_fill_stats(struct ags_hub *h, ags_hub_stats *st)
{
	st->enabled = 1;
	st->agents_connected = h->n_agents;
	st->auth_ok = h->auth_ok;
	st->auth_refused = h->auth_refused;
	st->tenants = calloc(h->n_tenants ? h->n_tenants : 1, sizeof(*st->tenants));
	if (!st->tenants)
		return;
	for (size_t i = 0; i < h->n_tenants; i++) {
		struct ags_hub_tenant *t = h->tenants[i];
		ags_hub_tenant_stats *ts = &st->tenants[i];
		snprintf(ts->tenant, sizeof(ts->tenant), "%s", t->name);
		ts->agents_connected = t->n_links;
		ts->changes_received = t->applied_base;
		for (size_t j = 0; j < t->n_links; j++) {
			if (!t->links[j]->sync)
				continue;
			ags_sync_stats ss;
			ags_sync_get_stats(t->links[j]->sync, &ss);
			ts->changes_received += ss.patterns_applied;
		}
		pthread_mutex_lock(t->mu);
		ags_store_count(t->store, &ts->patterns);
		ts->changes = ags_store_seq(t->store);
		ags_store_digest(t->store, ts->digest);
		ags_store_conflict_count(t->store, &ts->conflicts, NULL);
		pthread_mutex_unlock(t->mu);
	}
	st->n_tenants = h->n_tenants;
	qsort(st->tenants, st->n_tenants, sizeof(*st->tenants), by_name);
}
