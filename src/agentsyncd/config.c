/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon's configuration file: seed 000's quic.json plus agentsync's
 * keys, parsed with yyjson into an ags_config. The keys are described by
 * tables (one per JSON object), so the parser, the unknown-key warnings and
 * the error paths all come from one place.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yyjson.h>

#include "config.h"
#include "error.h"
#include "file.h"

/* How a key's value is checked and where it goes. */
enum kind {
	K_BOOL,    /* int, 0 or 1 */
	K_U16,     /* uint16_t */
	K_U32,     /* uint32_t */
	K_SIZE,    /* size_t */
	K_INT,     /* int */
	K_NUM,     /* double */
	K_STR,     /* const char *, min..max bytes */
	K_ID,      /* const char *, a valid id */
	K_IP,      /* const char *, an IPv4 or IPv6 literal */
	K_STRLIST, /* const char *const * + size_t count */
	K_IDLIST,  /* same, every element a valid id */
	K_OBJ,     /* a nested object described by `sub` */
	K_PEERS,   /* quic.peers */
	K_LISTEN,  /* api.listen */
	K_LOGFMT,  /* log.format */
	K_LOGLVL,  /* log.level */
	K_ALGS,    /* hub.algorithms: a non-empty array of JWT algorithm names */
	K_SKEW,    /* hub.skewSeconds: int64_t, 0 in the file meaning none (-1) */
	K_TENANTS, /* hub.tenants: {"TENANT": {"keyFile": path}, ...} */
	K_ENDPOINT /* hub.upstream.endpoint: "quic://HOST[:PORT]" */
};

struct obj_def;

struct key_def {
	const char *name;
	int kind;
	size_t off;   /* offset of the value in ags_config */
	size_t off_n; /* lists: offset of the count */
	double min, max;
	const struct obj_def *sub;
};

struct obj_def {
	const struct key_def *keys;
	size_t n;
};

#define OFF(m) offsetof(ags_config, m)
#define DEF(keys)                                                                                  \
	{                                                                                          \
		keys, sizeof(keys) / sizeof((keys)[0])                                             \
	}
#define MS_MAX 86400000.0 /* a day, in ms: the longest interval accepted */

static const struct key_def tls_keys[] = {
    {"cert", K_STR, OFF(node.tls.cert), 0, 1, 4096, NULL},
    {"key", K_STR, OFF(node.tls.key), 0, 1, 4096, NULL},
    {"ca", K_STR, OFF(node.tls.ca), 0, 1, 4096, NULL},
    {"rejectUnauthorized", K_BOOL, OFF(node.tls.reject_unauthorized), 0, 0, 1, NULL},
};
static const struct obj_def tls_def = DEF(tls_keys);

static const struct key_def retry_keys[] = {
    {"maxAttempts", K_U32, OFF(node.retry.max_attempts), 0, 1, 1000000, NULL},
    {"baseDelay", K_U32, OFF(node.retry.base_delay_ms), 0, 1, MS_MAX, NULL},
    {"maxDelay", K_U32, OFF(node.retry.max_delay_ms), 0, 1, MS_MAX, NULL},
    {"backoffMultiplier", K_NUM, OFF(node.retry.backoff_multiplier), 0, 1, 1000, NULL},
};
static const struct obj_def retry_def = DEF(retry_keys);

static const struct key_def api_keys[] = {
    {"listen", K_LISTEN, OFF(api.listen), 0, 0, 0, NULL},
    {"token", K_STR, OFF(api.token), 0, 1, 4096, NULL},
};
static const struct obj_def api_def = DEF(api_keys);

static const struct key_def limits_keys[] = {
    {"maxPatternBytes", K_SIZE, OFF(node.max_pattern_bytes), 0, 256, 64.0 * 1024 * 1024, NULL},
    {"maxFrameBytes", K_SIZE, OFF(node.max_frame_bytes), 0, 65536, 64.0 * 1024 * 1024, NULL},
    {"maxHandshakes", K_U32, OFF(node.max_handshakes), 0, 1, 1000000, NULL},
    {"maxHandshakesPerAddress", K_U32, OFF(node.max_handshakes_per_addr), 0, 1, 1000000, NULL},
};
static const struct obj_def limits_def = DEF(limits_keys);

static const struct key_def rate_keys[] = {
    {"patternsPerSecond", K_NUM, OFF(node.rate_patterns_per_s), 0, 0, 1e12, NULL},
    {"bytesPerSecond", K_NUM, OFF(node.rate_bytes_per_s), 0, 0, 1e15, NULL},
};
static const struct obj_def rate_def = DEF(rate_keys);

static const struct key_def filter_keys[] = {
    {"types", K_STRLIST, OFF(node.filter_types), OFF(node.n_filter_types), 1, 256, NULL},
    {"tags", K_STRLIST, OFF(node.filter_tags), OFF(node.n_filter_tags), 1, 256, NULL},
};
static const struct obj_def filter_def = DEF(filter_keys);

static const struct key_def log_keys[] = {
    {"format", K_LOGFMT, OFF(log.format), 0, 0, 0, NULL},
    {"level", K_LOGLVL, OFF(log.level), 0, 0, 0, NULL},
};
static const struct obj_def log_def = DEF(log_keys);

static const struct key_def upstream_keys[] = {
    {"endpoint", K_ENDPOINT, OFF(node.hub.upstream.endpoint), 0, 0, 0, NULL},
    {"token", K_STR, OFF(node.hub.upstream.token), 0, 1, AGS_CONFIG_TOKEN_MAX, NULL},
    {"tokenFile", K_STR, OFF(hub_token_file), 0, 1, 4096, NULL},
    {"hubId", K_ID, OFF(node.hub.upstream.hub_id), 0, 0, 0, NULL},
};
static const struct obj_def upstream_def = DEF(upstream_keys);

static const struct key_def encryption_keys[] = {
    {"keyFile", K_STR, OFF(node.store_key_file), 0, 1, 4096, NULL},
};
static const struct obj_def encryption_def = DEF(encryption_keys);

static const struct key_def storage_keys[] = {
    {"encryption", K_OBJ, 0, 0, 0, 0, &encryption_def},
};
static const struct obj_def storage_def = DEF(storage_keys);

/* One entry of hub.tenants (offsets into struct tenant_entry). */
struct tenant_entry {
	const char *key_file;
};
static const struct key_def tenant_keys[] = {
    {"keyFile", K_STR, offsetof(struct tenant_entry, key_file), 0, 1, 4096, NULL},
};
static const struct obj_def tenant_def = DEF(tenant_keys);

static const struct key_def hub_keys[] = {
    {"enabled", K_BOOL, OFF(node.hub.enabled), 0, 0, 1, NULL},
    {"algorithms", K_ALGS, OFF(node.hub.algorithms), OFF(node.hub.n_algorithms), 0, 0, NULL},
    {"hs256SecretFile", K_STR, OFF(node.hub.hs256_secret_file), 0, 1, 4096, NULL},
    {"rs256PublicKeyFile", K_STR, OFF(node.hub.rs256_public_key_file), 0, 1, 4096, NULL},
    {"es256PublicKeyFile", K_STR, OFF(node.hub.es256_public_key_file), 0, 1, 4096, NULL},
    {"issuer", K_STR, OFF(node.hub.issuer), 0, 1, 1024, NULL},
    {"audience", K_STR, OFF(node.hub.audience), 0, 1, 1024, NULL},
    {"skewSeconds", K_SKEW, OFF(node.hub.skew_s), 0, 0, 86400, NULL},
    {"maxAgents", K_U32, OFF(node.hub.max_agents), 0, 1, 1000000, NULL},
    {"maxTenants", K_U32, OFF(node.hub.max_tenants), 0, 1, 100000, NULL},
    {"upstream", K_OBJ, 0, 0, 0, 0, &upstream_def},
    {"tenants", K_TENANTS, 0, 0, 0, 0, NULL},
};
static const struct obj_def hub_def = DEF(hub_keys);

static const struct key_def quic_keys[] = {
    /* Seed 000. */
    {"enabled", K_BOOL, OFF(enabled), 0, 0, 1, NULL},
    {"port", K_U16, OFF(node.port), 0, 0, 65535, NULL},
    {"host", K_IP, OFF(node.host), 0, 0, 0, NULL},
    {"peers", K_PEERS, 0, 0, 0, 0, NULL},
    {"syncInterval", K_U32, OFF(node.sync_interval_ms), 0, 1, MS_MAX, NULL},
    {"batchSize", K_U32, OFF(node.batch_size), 0, 1, 10000, NULL},
    {"compression", K_BOOL, OFF(node.compression), 0, 0, 1, NULL},
    {"tls", K_OBJ, 0, 0, 0, 0, &tls_def},
    {"retry", K_OBJ, 0, 0, 0, 0, &retry_def},
    /* agentsync. */
    {"nodeId", K_ID, OFF(node.node_id), 0, 0, 0, NULL},
    {"dataDir", K_STR, OFF(node.data_dir), 0, 1, 4096, NULL},
    {"tenant", K_ID, OFF(node.tenant), 0, 0, 0, NULL},
    {"allow", K_IDLIST, OFF(node.allowed_ids), OFF(node.n_allowed_ids), 0, 0, NULL},
    {"window", K_U32, OFF(node.window), 0, 1, 65536, NULL},
    {"api", K_OBJ, 0, 0, 0, 0, &api_def},
    {"limits", K_OBJ, 0, 0, 0, 0, &limits_def},
    {"rateLimit", K_OBJ, 0, 0, 0, 0, &rate_def},
    {"filter", K_OBJ, 0, 0, 0, 0, &filter_def},
    {"healthInterval", K_U32, OFF(node.health_interval_ms), 0, 100, MS_MAX, NULL},
    {"statelessRetry", K_BOOL, OFF(node.stateless_retry), 0, 0, 1, NULL},
    {"idleTimeout", K_U32, OFF(node.idle_timeout_ms), 0, 100, MS_MAX, NULL},
    {"handshakeTimeout", K_U32, OFF(node.handshake_timeout_ms), 0, 100, MS_MAX, NULL},
    {"keepAlive", K_U32, OFF(node.keepalive_ms), 0, 0, MS_MAX, NULL},
    {"fsync", K_BOOL, OFF(node.fsync_full), 0, 0, 1, NULL},
    {"busyPoll", K_U32, OFF(node.busy_poll_us), 0, 0, 100000, NULL},
    {"storage", K_OBJ, 0, 0, 0, 0, &storage_def},
    {"log", K_OBJ, 0, 0, 0, 0, &log_def},
    {"hub", K_OBJ, 0, 0, 0, 0, &hub_def},
};
static const struct obj_def quic_def = DEF(quic_keys);

static const struct key_def peer_keys[] = {
    {"id", K_ID, offsetof(ags_peer_config, id), 0, 0, 0, NULL},
    {"address", K_STR, offsetof(ags_peer_config, address), 0, 1, 253, NULL},
    {"port", K_U16, offsetof(ags_peer_config, port), 0, 1, 65535, NULL},
    {"priority", K_INT, offsetof(ags_peer_config, priority), 0, 0, 1000000, NULL},
};
static const struct obj_def peer_def = DEF(peer_keys);

/* State of one parse. `base` is where the current table's offsets point. */
struct pctx {
	ags_config *c;
	ags_error *err;
};

/* ------------------------------------------------------------------------ */
/* Ownership                                                                */
/* ------------------------------------------------------------------------ */

/* Records p as owned by c. On failure frees p and returns NULL. */
static void *own(ags_config *c, void *p)
{
	if (!p)
		return NULL;
	if (c->n_owned == c->cap_owned) {
		size_t cap = c->cap_owned ? c->cap_owned * 2 : 32;
		void **o = realloc(c->owned, cap * sizeof(*o));
		if (!o) {
			free(p);
			return NULL;
		}
		c->owned = o;
		c->cap_owned = cap;
	}
	c->owned[c->n_owned++] = p;
	return p;
}

static char *own_strndup(ags_config *c, const char *s, size_t len)
{
	return own(c, strndup(s, len));
}

int ags_config_set_str(ags_config *c, const char **slot, const char *value)
{
	if (!c || !slot)
		return AGS_ERR_INVALID;
	if (!value) {
		*slot = NULL;
		return 0;
	}
	char *s = own_strndup(c, value, strlen(value));
	if (!s)
		return AGS_ERR_NOMEM;
	*slot = s;
	return 0;
}

static int add_warning(ags_config *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int add_warning(ags_config *c, const char *fmt, ...)
{
	char **w = realloc(c->warnings, (c->n_warnings + 1) * sizeof(*w));
	if (!w)
		return AGS_ERR_NOMEM;
	c->warnings = w;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&w[c->n_warnings], fmt, ap);
	va_end(ap);
	if (n < 0)
		return AGS_ERR_NOMEM;
	c->n_warnings++;
	return 0;
}

void ags_config_overrides_init(ags_config_overrides *ov)
{
	memset(ov, 0, sizeof(*ov));
	ov->port = -1;
	ov->log_format = -1;
	ov->hub = -1;
}

int ags_config_new(ags_config **out)
{
	if (!out)
		return AGS_ERR_INVALID;
	*out = NULL;
	ags_config *c = calloc(1, sizeof(*c));
	if (!c)
		return AGS_ERR_NOMEM;
	ags_node_config_init(&c->node);
	c->enabled = 1;
	c->log.format = AGS_LOG_FORMAT_TEXT;
	c->log.level = AGS_LOG_INFO;
	c->api.listen = AGS_CONFIG_API_LISTEN_DEFAULT;
	if (ags_config_split_hostport(c->api.listen, c->api.host, sizeof(c->api.host),
	                              &c->api.port) < 0) {
		ags_config_del(c);
		return AGS_ERR_INTERNAL;
	}
	*out = c;
	return 0;
}

void ags_config_del(ags_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_owned; i++)
		free(c->owned[i]);
	free(c->owned);
	for (size_t i = 0; i < c->n_warnings; i++)
		free(c->warnings[i]);
	free(c->warnings);
	free(c);
}

static int ip_literal(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];
	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* ------------------------------------------------------------------------ */
/* Values                                                                   */
/* ------------------------------------------------------------------------ */

/* A short description of a JSON value for messages: 70000, "abc", an array, ... */
static const char *describe(yyjson_val *v, char *buf, size_t cap)
{
	switch (yyjson_get_type(v)) {
	case YYJSON_TYPE_NULL:
		return "null";
	case YYJSON_TYPE_BOOL:
		return yyjson_get_bool(v) ? "true" : "false";
	case YYJSON_TYPE_ARR:
		return "an array";
	case YYJSON_TYPE_OBJ:
		return "an object";
	case YYJSON_TYPE_STR:
	case YYJSON_TYPE_NUM: {
		size_t n = 0;
		char *s = yyjson_val_write(v, 0, &n);
		if (!s)
			return "a value";
		if (n > 40)
			snprintf(buf, cap, "%.37s...", s);
		else
			snprintf(buf, cap, "%s", s);
		free(s);
		return buf;
	}
	default:
		return "a value";
	}
}

static int bad(struct pctx *pc, const char *path, yyjson_val *v, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Fails with AGS_ERR_CONFIG at `path`: the message, then ", got <v>" when v is given. */
static int bad(struct pctx *pc, const char *path, yyjson_val *v, const char *fmt, ...)
{
	char msg[200], got[64];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (v)
		return ags_error_set(pc->err, AGS_ERR_CONFIG, path, "%s, got %s", msg,
		                     describe(v, got, sizeof(got)));
	return ags_error_set(pc->err, AGS_ERR_CONFIG, path, "%s", msg);
}

/* An integer value in [min, max], or an error at path. */
static int get_int(struct pctx *pc, yyjson_val *v, const char *path, double min, double max,
                   int64_t *out)
{
	int64_t x;
	if (yyjson_is_uint(v) && yyjson_get_uint(v) <= (uint64_t)INT64_MAX)
		x = (int64_t)yyjson_get_uint(v);
	else if (yyjson_is_sint(v))
		x = yyjson_get_sint(v);
	else
		x = INT64_MIN;
	if (x == INT64_MIN || (double)x < min || (double)x > max)
		return bad(pc, path, v, "must be an integer from %.0f to %.0f", min, max);
	*out = x;
	return 0;
}

/* A string of min..max bytes without NUL, copied into the config. */
static int get_str(struct pctx *pc, yyjson_val *v, const char *path, size_t min, size_t max,
                   const char **out)
{
	if (!yyjson_is_str(v))
		return bad(pc, path, v, "must be a string");
	size_t n = yyjson_get_len(v);
	const char *s = yyjson_get_str(v);
	if (memchr(s, '\0', n))
		return bad(pc, path, NULL, "must not contain a NUL character");
	if (n < min)
		return bad(pc, path, NULL, "must not be empty");
	if (n > max)
		return bad(pc, path, NULL, "must be at most %zu bytes, got %zu", max, n);
	char *copy = own_strndup(pc->c, s, n);
	if (!copy)
		return ags_error_set(pc->err, AGS_ERR_NOMEM, path, NULL);
	*out = copy;
	return 0;
}

static int get_id(struct pctx *pc, yyjson_val *v, const char *path, const char **out)
{
	const char *s;
	if (!yyjson_is_str(v) || !ags_config_id_valid(yyjson_get_str(v)) ||
	    strlen(yyjson_get_str(v)) != yyjson_get_len(v))
		return bad(pc, path, v,
		           "must be an id: 1 to %d letters, digits, '.', '_' or '-' (not first)",
		           AGS_NODE_ID_MAX);
	int rc = get_str(pc, v, path, 1, AGS_NODE_ID_MAX, &s);
	if (rc == 0)
		*out = s;
	return rc;
}

/* An array of strings (ids when `ids`), each min..max bytes, at most 1024 of them. */
static int get_list(struct pctx *pc, yyjson_val *v, const char *path, int ids, size_t min,
                    size_t max, const char *const **out, size_t *n_out)
{
	if (!yyjson_is_arr(v))
		return bad(pc, path, v,
		           ids ? "must be an array of ids" : "must be an array of strings");
	size_t n = yyjson_arr_size(v);
	if (n > 1024)
		return bad(pc, path, NULL, "must have at most 1024 elements, got %zu", n);
	const char **list = own(pc->c, calloc(n ? n : 1, sizeof(*list)));
	if (!list)
		return ags_error_set(pc->err, AGS_ERR_NOMEM, path, NULL);
	size_t i, imax;
	yyjson_val *e;
	yyjson_arr_foreach(v, i, imax, e)
	{
		char p[128];
		snprintf(p, sizeof(p), "%.96s[%zu]", path, i);
		int rc = ids ? get_id(pc, e, p, &list[i]) : get_str(pc, e, p, min, max, &list[i]);
		if (rc < 0)
			return rc;
	}
	*out = list;
	*n_out = n;
	return 0;
}

/* hub.algorithms: a non-empty array of "HS256", "RS256", "ES256", each at most once. */
static int get_algs(struct pctx *pc, yyjson_val *v, const char *path, const char *const **out,
                    size_t *n_out)
{
	static const char *const names[] = {"HS256", "RS256", "ES256"};
	if (!yyjson_is_arr(v) || yyjson_arr_size(v) == 0)
		return bad(pc, path, v,
		           "must be a non-empty array of \"HS256\", \"RS256\" and \"ES256\"");
	size_t n = yyjson_arr_size(v);
	if (n > 3)
		return bad(pc, path, NULL, "must name each algorithm at most once, got %zu", n);
	const char **list = own(pc->c, calloc(n, sizeof(*list)));
	if (!list)
		return ags_error_set(pc->err, AGS_ERR_NOMEM, path, NULL);
	size_t i, imax;
	yyjson_val *e;
	yyjson_arr_foreach(v, i, imax, e)
	{
		char p[128];
		snprintf(p, sizeof(p), "%.96s[%zu]", path, i);
		size_t k = 0;
		while (k < 3 && !(yyjson_is_str(e) && yyjson_equals_str(e, names[k])))
			k++;
		if (k == 3)
			return bad(pc, p, e, "must be \"HS256\", \"RS256\" or \"ES256\"");
		for (size_t j = 0; j < i; j++)
			if (list[j] == names[k])
				return bad(pc, p, e, "is listed twice");
		list[i] = names[k];
	}
	*out = list;
	*n_out = n;
	return 0;
}

static int parse_object(struct pctx *pc, yyjson_val *obj, const char *path,
                        const struct obj_def *def, void *base);

/* quic.peers: an array of {id, address, port, priority}. */
static int parse_peers(struct pctx *pc, yyjson_val *v, const char *path)
{
	if (!yyjson_is_arr(v))
		return bad(pc, path, v, "must be an array of peer objects");
	size_t n = yyjson_arr_size(v);
	if (n > AGS_CONFIG_MAX_PEERS)
		return bad(pc, path, NULL, "must have at most %d peers, got %zu",
		           AGS_CONFIG_MAX_PEERS, n);
	ags_peer_config *peers = own(pc->c, calloc(n ? n : 1, sizeof(*peers)));
	if (!peers)
		return ags_error_set(pc->err, AGS_ERR_NOMEM, path, NULL);
	size_t i, imax;
	yyjson_val *e;
	yyjson_arr_foreach(v, i, imax, e)
	{
		char p[128];
		snprintf(p, sizeof(p), "%.96s[%zu]", path, i);
		if (!yyjson_is_obj(e))
			return bad(pc, p, e, "must be an object {id, address, port, priority}");
		int rc = parse_object(pc, e, p, &peer_def, &peers[i]);
		if (rc < 0)
			return rc;
		static const char *const required[] = {"id", "address", "port"};
		for (size_t k = 0; k < 3; k++) {
			if (!yyjson_obj_get(e, required[k])) {
				char f[160];
				snprintf(f, sizeof(f), "%s.%s", p, required[k]);
				return bad(pc, f, NULL, "required");
			}
		}
	}
	pc->c->node.peers = peers;
	pc->c->node.n_peers = n;
	return 0;
}

/* hub.tenants: an object of tenant name -> {keyFile}, at most 1024 tenants. */
static int parse_tenants(struct pctx *pc, yyjson_val *v, const char *path)
{
	if (!yyjson_is_obj(v))
		return bad(pc, path, v, "must be an object: {\"TENANT\": {\"keyFile\": PATH}}");
	size_t n = yyjson_obj_size(v);
	if (n > 1024)
		return bad(pc, path, NULL, "must have at most 1024 tenants, got %zu", n);
	const char **names = own(pc->c, calloc(n ? n : 1, sizeof(*names)));
	const char **files = own(pc->c, calloc(n ? n : 1, sizeof(*files)));
	if (!names || !files)
		return ags_error_set(pc->err, AGS_ERR_NOMEM, path, NULL);
	size_t i, imax;
	yyjson_val *k, *e;
	yyjson_obj_foreach(v, i, imax, k, e)
	{
		char p[256];
		snprintf(p, sizeof(p), "%.96s.%.128s", path, yyjson_get_str(k));
		/* The node checks the name (a tenant directory's) again. */
		size_t kl = yyjson_get_len(k);
		if (kl == 0 || kl > 128 || strlen(yyjson_get_str(k)) != kl ||
		    strspn(yyjson_get_str(k), "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		                              "0123456789._-") != kl ||
		    yyjson_get_str(k)[0] == '.')
			return bad(pc, p, NULL,
			           "is not a tenant name (1-128 of [A-Za-z0-9._-], not starting "
			           "with '.')");
		for (size_t j = 0; j < i; j++)
			if (strcmp(names[j], yyjson_get_str(k)) == 0)
				return bad(pc, p, NULL, "duplicate key");
		if (!yyjson_is_obj(e))
			return bad(pc, p, e, "must be an object {keyFile}");
		struct tenant_entry t = {NULL};
		int rc = parse_object(pc, e, p, &tenant_def, &t);
		if (rc < 0)
			return rc;
		if (!t.key_file) {
			char f[300];
			snprintf(f, sizeof(f), "%s.keyFile", p);
			return bad(pc, f, NULL, "required");
		}
		names[i] = own_strndup(pc->c, yyjson_get_str(k), kl);
		if (!names[i])
			return ags_error_set(pc->err, AGS_ERR_NOMEM, p, NULL);
		files[i] = t.key_file;
	}
	pc->c->node.hub.key_tenants = names;
	pc->c->node.hub.key_files = files;
	pc->c->node.hub.n_tenant_keys = n;
	return 0;
}

/* One value of kind def->kind at `path`, stored at base + def->off. */
static int parse_value(struct pctx *pc, yyjson_val *v, const char *path, const struct key_def *def,
                       void *base)
{
	char *slot = (char *)base + def->off;
	int64_t x = 0;
	int rc;
	switch (def->kind) {
	case K_BOOL:
		if (!yyjson_is_bool(v))
			return bad(pc, path, v, "must be true or false");
		*(int *)slot = yyjson_get_bool(v) ? 1 : 0;
		return 0;
	case K_U16:
	case K_U32:
	case K_SIZE:
	case K_INT:
		rc = get_int(pc, v, path, def->min, def->max, &x);
		if (rc < 0)
			return rc;
		if (def->kind == K_U16)
			*(uint16_t *)slot = (uint16_t)x;
		else if (def->kind == K_U32)
			*(uint32_t *)slot = (uint32_t)x;
		else if (def->kind == K_SIZE)
			*(size_t *)slot = (size_t)x;
		else
			*(int *)slot = (int)x;
		return 0;
	case K_NUM:
		if (!yyjson_is_num(v) || yyjson_get_num(v) < def->min ||
		    yyjson_get_num(v) > def->max)
			return bad(pc, path, v, "must be a number from %g to %g", def->min,
			           def->max);
		double d = yyjson_get_num(v);
		memcpy(slot, &d, sizeof(d));
		return 0;
	case K_STR:
		return get_str(pc, v, path, (size_t)def->min, (size_t)def->max,
		               (const char **)slot);
	case K_ID:
		return get_id(pc, v, path, (const char **)slot);
	case K_IP:
		if (!yyjson_is_str(v) || !ip_literal(yyjson_get_str(v)))
			return bad(pc, path, v, "must be an IPv4 or IPv6 address");
		return get_str(pc, v, path, 1, 64, (const char **)slot);
	case K_STRLIST:
	case K_IDLIST:
		return get_list(pc, v, path, def->kind == K_IDLIST, (size_t)def->min,
		                (size_t)def->max, (const char *const **)slot,
		                (size_t *)((char *)base + def->off_n));
	case K_OBJ:
		if (!yyjson_is_obj(v))
			return bad(pc, path, v, "must be an object");
		return parse_object(pc, v, path, def->sub, base);
	case K_PEERS:
		return parse_peers(pc, v, path);
	case K_LISTEN: {
		ags_config *c = pc->c;
		if (!yyjson_is_str(v) ||
		    ags_config_split_hostport(yyjson_get_str(v), c->api.host, sizeof(c->api.host),
		                              &c->api.port) < 0)
			return bad(pc, path, v,
			           "must be \"HOST:PORT\" (\"[::1]:PORT\" for IPv6) with a port "
			           "from 0 to 65535");
		return get_str(pc, v, path, 1, 128, &c->api.listen);
	}
	case K_LOGFMT: {
		const char *s = yyjson_get_str(v);
		if (s && strcmp(s, "text") == 0)
			*(int *)slot = AGS_LOG_FORMAT_TEXT;
		else if (s && strcmp(s, "json") == 0)
			*(int *)slot = AGS_LOG_FORMAT_JSON;
		else
			return bad(pc, path, v, "must be \"text\" or \"json\"");
		return 0;
	}
	case K_LOGLVL: {
		int level = ags_config_log_level(yyjson_get_str(v));
		if (level < 0)
			return bad(pc, path, v,
			           "must be \"error\", \"warn\", \"info\" or \"debug\"");
		*(int *)slot = level;
		return 0;
	}
	case K_ALGS:
		return get_algs(pc, v, path, (const char *const **)slot,
		                (size_t *)((char *)base + def->off_n));
	case K_SKEW:
		rc = get_int(pc, v, path, def->min, def->max, &x);
		if (rc < 0)
			return rc;
		/* The node reads 0 as "the default"; in the file 0 means no skew at all. */
		*(int64_t *)slot = x ? x : -1;
		return 0;
	case K_ENDPOINT:
		if (!yyjson_is_str(v) || !ags_config_endpoint_valid(yyjson_get_str(v)))
			return bad(pc, path, v,
			           "must be \"quic://HOST:PORT\" (\"quic://[::1]:PORT\" for IPv6; "
			           "the port defaults to 4433)");
		return get_str(pc, v, path, 1, 4096, (const char **)slot);
	case K_TENANTS:
		return parse_tenants(pc, v, path);
	default:
		return ags_error_set(pc->err, AGS_ERR_INTERNAL, path, "unknown key kind");
	}
}

/* The file's top level: only "quic" (for the suggestions of warn_unknown). */
static const struct key_def root_keys[] = {{"quic", K_OBJ, 0, 0, 0, 0, NULL}};
static const struct obj_def root_def = DEF(root_keys);

/* Edit distance of a and b (optimal string alignment, ASCII case ignored), capped at 9. */
static size_t key_distance(const char *a, size_t la, const char *b)
{
	size_t lb = strlen(b);
	if (la > 40 || lb > 40)
		return 9;
	size_t d[41][41];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			int ca = tolower((unsigned char)a[i - 1]),
			    cb = tolower((unsigned char)b[j - 1]);
			size_t best = d[i - 1][j - 1] + (ca != cb);
			if (d[i - 1][j] + 1 < best)
				best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
			    tolower((unsigned char)a[i - 2]) == cb && d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1; /* two letters swapped */
			d[i][j] = best;
		}
	}
	return d[la][lb] < 9 ? d[la][lb] : 9;
}

/*
 * Warns about an unknown key at `path` (its name `name`, len bytes), with
 * the closest known key of `def` when one is a likely typo of it.
 */
static int warn_unknown(ags_config *c, const char *path, const char *name, size_t len,
                        const struct obj_def *def)
{
	const char *best = NULL;
	size_t best_d = len / 3 > 1 ? (len / 3 < 3 ? len / 3 : 3) : 1; /* the most accepted */
	for (size_t i = 0; def && i < def->n; i++) {
		size_t dist = key_distance(name, len, def->keys[i].name);
		if (dist <= best_d && (!best || dist < best_d)) {
			best = def->keys[i].name;
			best_d = dist;
		}
	}
	if (!best)
		return add_warning(c, "%s: unknown key, ignored", path);
	size_t plen = strlen(path) - len; /* the parent's path and its dot */
	return add_warning(c, "%s: unknown key, ignored; did you mean %.*s%s?", path, (int)plen,
	                   path, best);
}

/*
 * Parses the keys of `obj` with the table `def`: each known key once (a
 * repeated key is an error: JSON leaves its meaning open), each unknown key
 * a warning.
 */
static int parse_object(struct pctx *pc, yyjson_val *obj, const char *path,
                        const struct obj_def *def, void *base)
{
	uint64_t seen = 0; /* tables have fewer than 64 keys */
	size_t i, imax;
	yyjson_val *k, *v;
	yyjson_obj_foreach(obj, i, imax, k, v)
	{
		const char *name = yyjson_get_str(k);
		char p[128];
		snprintf(p, sizeof(p), "%s.%s", path, name);
		size_t d = 0;
		while (d < def->n &&
		       !(strcmp(def->keys[d].name, name) == 0 && strlen(name) == yyjson_get_len(k)))
			d++;
		if (d == def->n) {
			if (warn_unknown(pc->c, p, name, yyjson_get_len(k), def) < 0)
				return ags_error_set(pc->err, AGS_ERR_NOMEM, p, NULL);
			continue;
		}
		if (seen & (1ull << d))
			return bad(pc, p, NULL, "duplicate key");
		seen |= 1ull << d;
		int rc = parse_value(pc, v, p, &def->keys[d], base);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Whole-file checks                                                        */
/* ------------------------------------------------------------------------ */

/* Applies the command-line overrides, each checked like the key it replaces. */
static int apply_overrides(ags_config *c, const ags_config_overrides *ov, ags_error *err)
{
	if (!ov)
		return 0;
	if (ov->node_id) {
		if (!ags_config_id_valid(ov->node_id))
			return ags_error_set(err, AGS_ERR_CONFIG, "--node-id",
			                     "must be an id: 1 to %d letters, digits, '.', '_' or "
			                     "'-' (not first), got \"%.80s\"",
			                     AGS_NODE_ID_MAX, ov->node_id);
		if (ags_config_set_str(c, &c->node.node_id, ov->node_id) < 0)
			return ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
	}
	if (ov->host) {
		if (!ip_literal(ov->host))
			return ags_error_set(err, AGS_ERR_CONFIG, "--host",
			                     "must be an IPv4 or IPv6 address, got \"%.80s\"",
			                     ov->host);
		if (ags_config_set_str(c, &c->node.host, ov->host) < 0)
			return ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
	}
	if (ov->data_dir) {
		if (!*ov->data_dir)
			return ags_error_set(err, AGS_ERR_CONFIG, "--data", "must not be empty");
		if (ags_config_set_str(c, &c->node.data_dir, ov->data_dir) < 0)
			return ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
	}
	if (ov->port >= 0) {
		if (ov->port > 65535)
			return ags_error_set(err, AGS_ERR_CONFIG, "--port",
			                     "must be an integer from 0 to 65535, got %d",
			                     ov->port);
		c->node.port = (uint16_t)ov->port;
	}
	if (ov->log_format >= 0)
		c->log.format = ov->log_format;
	if (ov->hub > 0)
		c->node.hub.enabled = 1;
	if (ov->store_key_file) {
		if (!*ov->store_key_file)
			return ags_error_set(err, AGS_ERR_CONFIG, "AGENTSYNC_STORE_KEY_FILE",
			                     "must not be empty (unset it for a plain store)");
		if (ags_config_set_str(c, &c->node.store_key_file, ov->store_key_file) < 0)
			return ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
	}
	if (ov->api_listen) {
		if (ags_config_split_hostport(ov->api_listen, c->api.host, sizeof(c->api.host),
		                              &c->api.port) < 0)
			return ags_error_set(
			    err, AGS_ERR_CONFIG, "--api",
			    "must be \"HOST:PORT\" (\"[::1]:PORT\" for IPv6) with a "
			    "port from 0 to 65535, got \"%.80s\"",
			    ov->api_listen);
		if (ags_config_set_str(c, &c->api.listen, ov->api_listen) < 0)
			return ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
	}
	return 0;
}

/* Checks that need several keys at once (keys may come in any order). */
static int check_whole(ags_config *c, ags_error *err)
{
	const ags_node_config *n = &c->node;
	if (!n->node_id)
		return ags_error_set(err, AGS_ERR_CONFIG, "quic.nodeId",
		                     "required: a config file must name its node (set quic.nodeId "
		                     "or pass --node-id; only with no config at all is the id "
		                     "taken from the host name)");
	for (size_t i = 0; i < n->n_peers; i++) {
		char p[64];
		snprintf(p, sizeof(p), "quic.peers[%zu].id", i);
		if (strcmp(n->peers[i].id, n->node_id) == 0)
			return ags_error_set(err, AGS_ERR_CONFIG, p,
			                     "\"%s\" is this node's own id (quic.nodeId)",
			                     n->peers[i].id);
		for (size_t j = 0; j < i; j++)
			if (strcmp(n->peers[i].id, n->peers[j].id) == 0)
				return ags_error_set(err, AGS_ERR_CONFIG, p,
				                     "duplicate peer id \"%s\" (also "
				                     "quic.peers[%zu].id)",
				                     n->peers[i].id, j);
	}
	if (n->retry.max_delay_ms < n->retry.base_delay_ms)
		return ags_error_set(err, AGS_ERR_CONFIG, "quic.retry.maxDelay",
		                     "must be at least retry.baseDelay (%u), got %u",
		                     n->retry.base_delay_ms, n->retry.max_delay_ms);
	if (n->max_frame_bytes < n->max_pattern_bytes)
		return ags_error_set(err, AGS_ERR_CONFIG, "quic.limits.maxFrameBytes",
		                     "must be at least limits.maxPatternBytes (%zu), got %zu",
		                     n->max_pattern_bytes, n->max_frame_bytes);
	if (n->tls.key && !n->tls.cert)
		return ags_error_set(err, AGS_ERR_CONFIG, "quic.tls.cert",
		                     "required when tls.key is set");
	if (n->tls.cert && !n->tls.key)
		return ags_error_set(err, AGS_ERR_CONFIG, "quic.tls.key",
		                     "required when tls.cert is set");
	if (n->tls.cert && n->tls.reject_unauthorized && !n->tls.ca)
		return ags_error_set(err, AGS_ERR_CONFIG, "quic.tls.ca",
		                     "required when tls.rejectUnauthorized is true (the CA that "
		                     "signs the peers' certificates)");
	int rc = ags_config_check_hub(c, err);
	if (rc < 0)
		return rc;
	c->tls_from_file = n->tls.cert != NULL;
	return 0;
}

/* Fills in line and column (both from 1) of byte `off` in json. */
static void line_col(const char *json, size_t len, size_t off, size_t *line, size_t *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < off && i < len; i++) {
		if (json[i] == '\n') {
			(*line)++;
			*col = 1;
		} else {
			(*col)++;
		}
	}
}

/*
 * An API open to the network without a token lets anyone read and change every pattern:
 * allowed (a firewall may guard it), but said. Returns 0, or -1 when out of memory.
 */
static int warn_open_api(ags_config *c)
{
	struct in6_addr a6;
	struct in_addr a4;
	const char *h = c->api.host;
	int loopback = strcmp(h, "localhost") == 0 ||
	               (inet_pton(AF_INET, h, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127) ||
	               (inet_pton(AF_INET6, h, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6));
	if (loopback || (c->api.token && *c->api.token))
		return 0;
	return add_warning(
	    c,
	    "quic.api.listen: %s is not a loopback address and quic.api.token is "
	    "not set: anyone who can reach it can read and change every pattern; set "
	    "quic.api.token, or listen on 127.0.0.1",
	    c->api.listen ? c->api.listen : h);
}

int ags_config_parse(const char *json, size_t len, const ags_config_overrides *ov, ags_config **out,
                     ags_error *err)
{
	if (!out || (!json && len))
		return ags_error_set(err, AGS_ERR_INVALID, NULL, NULL);
	*out = NULL;
	if (len > AGS_CONFIG_MAX_BYTES)
		return ags_error_set(err, AGS_ERR_TOO_LARGE, NULL,
		                     "the file is %zu bytes, more than the %u accepted", len,
		                     AGS_CONFIG_MAX_BYTES);
	yyjson_read_err rerr;
	/* Without YYJSON_READ_INSITU the input is only read. */
	yyjson_doc *doc = yyjson_read_opts((char *)(uintptr_t)json, len, 0, NULL, &rerr);
	if (!doc) {
		if (rerr.code == YYJSON_READ_ERROR_MEMORY_ALLOCATION)
			return ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
		size_t line, col;
		line_col(json, len, rerr.pos, &line, &col);
		ags_error_set(err, AGS_ERR_JSON, NULL,
		              "malformed JSON at byte %zu (line %zu, column %zu): %s", rerr.pos,
		              line, col, rerr.msg ? rerr.msg : "syntax error");
		if (err)
			err->offset = rerr.pos;
		return AGS_ERR_JSON;
	}
	ags_config *c = NULL;
	int rc = ags_config_new(&c);
	if (rc < 0)
		goto fail;
	struct pctx pc = {c, err};
	yyjson_val *root = yyjson_doc_get_root(doc);
	if (!yyjson_is_obj(root)) {
		rc = bad(&pc, "(root)", root, "must be an object holding a \"quic\" object");
		goto fail;
	}
	size_t i, imax;
	yyjson_val *k, *v, *quic = NULL;
	yyjson_obj_foreach(root, i, imax, k, v)
	{
		if (strcmp(yyjson_get_str(k), "quic") == 0 && yyjson_get_len(k) == 4) {
			if (quic) {
				rc = bad(&pc, "quic", NULL, "duplicate key");
				goto fail;
			}
			quic = v;
		} else if (warn_unknown(c, yyjson_get_str(k), yyjson_get_str(k), yyjson_get_len(k),
		                        &root_def) < 0) {
			rc = ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
			goto fail;
		}
	}
	if (!quic) {
		rc = bad(&pc, "quic", NULL, "required: the settings live in a \"quic\" object");
		goto fail;
	}
	if (!yyjson_is_obj(quic)) {
		rc = bad(&pc, "quic", quic, "must be an object");
		goto fail;
	}
	rc = parse_object(&pc, quic, "quic", &quic_def, c);
	if (rc < 0)
		goto fail;
	rc = apply_overrides(c, ov, err);
	if (rc < 0)
		goto fail;
	rc = check_whole(c, err);
	if (rc < 0)
		goto fail;
	if (warn_open_api(c) < 0) {
		rc = ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
		goto fail;
	}
	yyjson_doc_free(doc);
	*out = c;
	return 0;
fail:
	ags_config_del(c);
	yyjson_doc_free(doc);
	return rc;
}

int ags_config_load(const char *path, const ags_config_overrides *ov, ags_config **out,
                    ags_error *err)
{
	if (!path || !out)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, NULL);
	*out = NULL;
	char *buf = NULL;
	size_t n = 0;
	ags_error e;
	ags_error_clear(&e);
	int rc = ags_file_read(path, AGS_CONFIG_MAX_BYTES, &buf, &n, &e);
	if (rc == AGS_ERR_NOMEM)
		return ags_error_set(err, rc, NULL, NULL);
	if (rc == AGS_ERR_TOO_LARGE)
		return ags_error_set(err, rc, NULL, "the file %s", e.message);
	if (rc)
		return ags_error_set(err, rc, NULL, "cannot read: %s", e.message);
	rc = ags_config_parse(buf, n, ov, out, err);
	free(buf);
	return rc;
}

int ags_config_new_default(const char *hostname, const ags_config_overrides *ov, ags_config **out,
                           ags_error *err)
{
	if (!out)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, NULL);
	*out = NULL;
	char host[256] = "";
	if (!hostname) {
		if (gethostname(host, sizeof(host) - 1) < 0)
			host[0] = '\0';
		hostname = host;
	}
	char id[AGS_NODE_ID_MAX + 1];
	ags_config_sanitize_id(hostname, id, sizeof(id));
	ags_config *c = NULL;
	int rc = ags_config_new(&c);
	if (rc < 0)
		return ags_error_set(err, rc, NULL, NULL);
	if (ags_config_set_str(c, &c->node.node_id, id) < 0 ||
	    ags_config_set_str(c, &c->node.data_dir, AGS_CONFIG_DATA_DIR_DEFAULT) < 0) {
		rc = ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
		goto fail;
	}
	rc = apply_overrides(c, ov, err);
	if (rc < 0)
		goto fail;
	rc = ags_config_check_hub(c, err);
	if (rc < 0)
		goto fail;
	if (warn_open_api(c) < 0) {
		rc = ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
		goto fail;
	}
	c->tls_from_file = 0;
	*out = c;
	return 0;
fail:
	ags_config_del(c);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* The list of keys                                                         */
/* ------------------------------------------------------------------------ */

static void keys_of(const struct obj_def *def, const char *prefix,
                    void (*cb)(const char *path, void *ud), void *ud)
{
	for (size_t i = 0; i < def->n; i++) {
		const struct key_def *k = &def->keys[i];
		char path[256];
		snprintf(path, sizeof(path), "%s.%s", prefix, k->name);
		if (k->kind == K_OBJ) {
			keys_of(k->sub, path, cb, ud);
			continue;
		}
		cb(path, ud);
		if (k->kind == K_PEERS) {
			char each[260];
			snprintf(each, sizeof(each), "%s[]", path);
			keys_of(&peer_def, each, cb, ud);
		}
		if (k->kind == K_TENANTS) {
			char each[270];
			snprintf(each, sizeof(each), "%s.TENANT", path);
			keys_of(&tenant_def, each, cb, ud);
		}
	}
}

void ags_config_keys(void (*cb)(const char *path, void *ud), void *ud)
{
	keys_of(&quic_def, "quic", cb, ud);
}
