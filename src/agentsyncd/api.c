/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The local HTTP API: the libmicrohttpd server, routing, bearer-token
 * authentication, request bodies, and the small peer and sync endpoints.
 * Patterns, events and state are served by src/agentsyncd/api_patterns.c,
 * src/agentsyncd/api_events.c and src/agentsyncd/api_state.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <yyjson.h>

#include "api_int.h"
#include "config.h"
#include "error.h"

/* Largest body accepted by the endpoints that take a small JSON object. */
#define SMALL_BODY_MAX (64u * 1024u)

enum route {
	R_NONE,
	R_HEALTHZ,
	R_METRICS,
	R_STATE,
	R_EVENTS,
	R_SYNC,
	R_PEERS,
	R_PEER,
	R_PATTERNS,
	R_PATTERN,
	R_BACKUP,
};

/* One request's state, kept across the calls libmicrohttpd makes for it. */
struct req {
	int route;
	const char *id; /* R_PEER, R_PATTERN: points into the URL */
	char *body;
	size_t len, cap, limit;
	int too_large;
};

void ags_api_logf(ags_api *api, int level, const char *fmt, ...)
{
	if (!api->log)
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	api->log(api->log_user_data, level, msg);
}

/* ------------------------------------------------------------------------ */
/* Responses                                                                */
/* ------------------------------------------------------------------------ */

enum MHD_Result ags_api_reply(struct MHD_Connection *c, unsigned status, char *body, size_t len,
                              const char *ctype)
{
	return ags_api_reply_hdr(c, status, body, len, ctype, NULL, NULL);
}

enum MHD_Result ags_api_reply_hdr(struct MHD_Connection *c, unsigned status, char *body, size_t len,
                                  const char *ctype, const char *hdr, const char *value)
{
	/* A NULL body (out of memory) is sent empty, never handed to free(). */
	struct MHD_Response *resp =
	    body ? MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE)
	         : MHD_create_response_from_buffer(0, (void *)(uintptr_t) "",
	                                           MHD_RESPMEM_PERSISTENT);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
		                        "Bearer realm=\"agentsync\"");
	if (hdr && value)
		MHD_add_response_header(resp, hdr, value);
	enum MHD_Result r = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return r;
}

enum MHD_Result ags_api_reply_doc(struct MHD_Connection *c, unsigned status, yyjson_mut_doc *doc)
{
	size_t len = 0;
	char *s = doc ? yyjson_mut_write(doc, 0, &len) : NULL;
	yyjson_mut_doc_free(doc);
	if (!s) {
		static const char oom[] = "{\"error\":\"out of memory\",\"field\":\"\"}\n";
		struct MHD_Response *resp = MHD_create_response_from_buffer(
		    sizeof(oom) - 1, (void *)(uintptr_t)oom, MHD_RESPMEM_PERSISTENT);
		if (!resp)
			return MHD_NO;
		enum MHD_Result r = MHD_queue_response(c, MHD_HTTP_INTERNAL_SERVER_ERROR, resp);
		MHD_destroy_response(resp);
		return r;
	}
	/* A newline, so that `curl` output and NDJSON tools read it as a line. */
	char *nl = realloc(s, len + 2);
	if (nl) {
		s = nl;
		s[len++] = '\n';
		s[len] = '\0';
	}
	return ags_api_reply(c, status, s, len, "application/json");
}

enum MHD_Result ags_api_reply_error(struct MHD_Connection *c, unsigned status, const char *field,
                                    size_t offset, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	yyjson_mut_doc *doc = yyjson_mut_doc_new(NULL);
	yyjson_mut_val *root = doc ? yyjson_mut_obj(doc) : NULL;
	if (root) {
		yyjson_mut_doc_set_root(doc, root);
		yyjson_mut_obj_add_strcpy(doc, root, "error", msg);
		yyjson_mut_obj_add_strcpy(doc, root, "field", field ? field : "");
		if (offset != (size_t)-1)
			yyjson_mut_obj_add_uint(doc, root, "offset", offset);
	}
	return ags_api_reply_doc(c, status, doc);
}

enum MHD_Result ags_api_reply_405(struct MHD_Connection *c, const char *method, const char *url,
                                  const char *allow)
{
	char msg[512];
	snprintf(msg, sizeof(msg), "%.16s is not allowed on %.200s (allowed: %s)", method, url,
	         allow);
	yyjson_mut_doc *doc = yyjson_mut_doc_new(NULL);
	yyjson_mut_val *root = doc ? yyjson_mut_obj(doc) : NULL;
	char *body = NULL;
	size_t len = 0;
	if (root) {
		yyjson_mut_doc_set_root(doc, root);
		yyjson_mut_obj_add_strcpy(doc, root, "error", msg);
		yyjson_mut_obj_add_str(doc, root, "field", "");
		body = yyjson_mut_write(doc, 0, &len);
	}
	yyjson_mut_doc_free(doc);
	return ags_api_reply_hdr(c, MHD_HTTP_METHOD_NOT_ALLOWED, body, len, "application/json",
	                         MHD_HTTP_HEADER_ALLOW, allow);
}

char *ags_api_escape_path(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *out = malloc(n * 3 + 1), *w = out;
	if (!out)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
			*w++ = (char)*p;
		} else {
			*w++ = '%';
			*w++ = hex[*p >> 4];
			*w++ = hex[*p & 15];
		}
	}
	*w = '\0';
	return out;
}

unsigned ags_api_status_of(int code)
{
	switch (code) {
	case AGS_ERR_INVALID:
	case AGS_ERR_JSON:
	case AGS_ERR_PATTERN:
	case AGS_ERR_CHECKSUM:
	case AGS_ERR_CONFIG:
		return MHD_HTTP_BAD_REQUEST;
	case AGS_ERR_TOO_LARGE:
		return MHD_HTTP_CONTENT_TOO_LARGE;
	case AGS_ERR_NOT_FOUND:
		return MHD_HTTP_NOT_FOUND;
	case AGS_ERR_EXISTS:
		return MHD_HTTP_CONFLICT;
	case AGS_ERR_AUTH:
		return MHD_HTTP_UNAUTHORIZED;
	case AGS_ERR_STATE:
	case AGS_ERR_AGAIN:
	case AGS_ERR_CLOSED:
		return MHD_HTTP_SERVICE_UNAVAILABLE;
	case AGS_ERR_TIMEOUT:
		return MHD_HTTP_GATEWAY_TIMEOUT;
	default:
		return MHD_HTTP_INTERNAL_SERVER_ERROR;
	}
}

enum MHD_Result ags_api_reply_agserr(struct MHD_Connection *c, const ags_error *err)
{
	const char *msg = err->message[0] ? err->message : ags_strerror(err->code);
	return ags_api_reply_error(c, ags_api_status_of(err->code), err->field, err->offset, "%s",
	                           msg);
}

/* ------------------------------------------------------------------------ */
/* Authentication                                                           */
/* ------------------------------------------------------------------------ */

static int sha256(const char *s, size_t len, unsigned char out[32])
{
	return gnutls_hash_fast(GNUTLS_DIG_SHA256, s, len, out) == 0 ? 0 : AGS_ERR_INTERNAL;
}

int ags_api_set_token(ags_api *api, const char *token)
{
	if (!api)
		return AGS_ERR_INVALID;
	unsigned char h[32];
	if (token && sha256(token, strlen(token), h) < 0)
		return AGS_ERR_INTERNAL;
	pthread_mutex_lock(&api->mu);
	api->has_token = token != NULL;
	if (token)
		memcpy(api->token_hash, h, sizeof(h));
	pthread_mutex_unlock(&api->mu);
	return 0;
}

/*
 * Checks the Authorization header. The tokens are compared as SHA-256
 * digests, byte by byte without an early exit, so the time taken says
 * nothing about the token, not even its length. Returns NULL when the
 * request may go on, else the reason it may not.
 */
static const char *check_auth(ags_api *api, struct MHD_Connection *c)
{
	unsigned char want[32], got[32];
	pthread_mutex_lock(&api->mu);
	int has = api->has_token;
	memcpy(want, api->token_hash, sizeof(want));
	pthread_mutex_unlock(&api->mu);
	if (!has)
		return NULL;
	const char *h =
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (!h)
		return "missing bearer token (Authorization: Bearer TOKEN)";
	if (strncasecmp(h, "Bearer ", 7) != 0)
		return "the Authorization header must be \"Bearer TOKEN\"";
	h += 7;
	while (*h == ' ')
		h++;
	size_t n = strlen(h);
	while (n && h[n - 1] == ' ')
		n--;
	if (sha256(h, n, got) < 0)
		return "cannot check the token";
	unsigned diff = 0;
	for (size_t i = 0; i < sizeof(got); i++)
		diff |= (unsigned)(got[i] ^ want[i]);
	return diff ? "wrong bearer token" : NULL;
}

static void client_address(struct MHD_Connection *c, char *out, size_t cap)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	char host[INET6_ADDRSTRLEN] = "?";
	if (ci && ci->client_addr) {
		const struct sockaddr *sa = ci->client_addr;
		if (sa->sa_family == AF_INET) {
			const struct sockaddr_in *a = (const void *)sa;
			inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
			snprintf(out, cap, "%s:%u", host, ntohs(a->sin_port));
			return;
		}
		if (sa->sa_family == AF_INET6) {
			const struct sockaddr_in6 *a = (const void *)sa;
			inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
			snprintf(out, cap, "[%s]:%u", host, ntohs(a->sin6_port));
			return;
		}
	}
	snprintf(out, cap, "%s", host);
}

/* ------------------------------------------------------------------------ */
/* Peers and sync                                                           */
/* ------------------------------------------------------------------------ */

/* POST /v1/peers {"address": "...", "port": N, "id": "..."}. */
static enum MHD_Result post_peer(ags_api *api, struct MHD_Connection *c, const char *body,
                                 size_t len)
{
	yyjson_read_err rerr;
	yyjson_doc *doc = yyjson_read_opts((char *)(uintptr_t)body, len, 0, NULL, &rerr);
	if (!doc)
		return ags_api_reply_error(c, MHD_HTTP_BAD_REQUEST, "", rerr.pos,
		                           "malformed JSON at byte %zu: %s", rerr.pos, rerr.msg);
	yyjson_val *root = yyjson_doc_get_root(doc);
	yyjson_val *id = yyjson_obj_get(root, "id");
	yyjson_val *address = yyjson_obj_get(root, "address");
	yyjson_val *port = yyjson_obj_get(root, "port");
	enum MHD_Result r;
	if (!yyjson_is_obj(root))
		r = ags_api_reply_error(c, MHD_HTTP_BAD_REQUEST, "", (size_t)-1,
		                        "must be an object {\"id\", \"address\", \"port\"}");
	else if (!yyjson_is_str(id) || !ags_config_id_valid(yyjson_get_str(id)))
		r = ags_api_reply_error(c, MHD_HTTP_BAD_REQUEST, "id", (size_t)-1,
		                        "must be an id: 1 to %d letters, digits, '.', '_' or '-'",
		                        AGS_NODE_ID_MAX);
	else if (!yyjson_is_str(address) || yyjson_get_len(address) == 0 ||
	         yyjson_get_len(address) > 253)
		r = ags_api_reply_error(c, MHD_HTTP_BAD_REQUEST, "address", (size_t)-1,
		                        "must be a host name or IP address");
	else if (!yyjson_is_uint(port) || yyjson_get_uint(port) < 1 ||
	         yyjson_get_uint(port) > 65535)
		r = ags_api_reply_error(c, MHD_HTTP_BAD_REQUEST, "port", (size_t)-1,
		                        "must be an integer from 1 to 65535");
	else {
		int rc = ags_node_connect_peer(api->node, yyjson_get_str(address),
		                               (uint16_t)yyjson_get_uint(port), yyjson_get_str(id));
		if (rc == AGS_ERR_EXISTS)
			r = ags_api_reply_error(c, MHD_HTTP_CONFLICT, "id", (size_t)-1,
			                        "peer \"%s\" already exists", yyjson_get_str(id));
		else if (rc < 0)
			r = ags_api_reply_error(c, ags_api_status_of(rc), "", (size_t)-1,
			                        "cannot add peer: %s", ags_strerror(rc));
		else {
			ags_api_logf(api, AGS_LOG_INFO, "peer added id=%s address=%s:%u",
			             yyjson_get_str(id), yyjson_get_str(address),
			             (unsigned)yyjson_get_uint(port));
			yyjson_mut_doc *out = yyjson_mut_doc_new(NULL);
			yyjson_mut_val *o = out ? yyjson_mut_obj(out) : NULL;
			if (o) {
				yyjson_mut_doc_set_root(out, o);
				yyjson_mut_obj_add_strcpy(out, o, "id", yyjson_get_str(id));
				yyjson_mut_obj_add_strcpy(out, o, "address",
				                          yyjson_get_str(address));
				yyjson_mut_obj_add_uint(out, o, "port", yyjson_get_uint(port));
			}
			char *answer = NULL, loc[128];
			size_t blen = 0;
			if (out)
				answer = yyjson_mut_write(out, 0, &blen);
			yyjson_mut_doc_free(out);
			char *esc = ags_api_escape_path(yyjson_get_str(id));
			snprintf(loc, sizeof(loc), "/v1/peers/%s", esc ? esc : yyjson_get_str(id));
			free(esc);
			r = ags_api_reply_hdr(c, MHD_HTTP_CREATED, answer, blen, "application/json",
			                      MHD_HTTP_HEADER_LOCATION, loc);
		}
	}
	yyjson_doc_free(doc);
	return r;
}

static enum MHD_Result delete_peer(ags_api *api, struct MHD_Connection *c, const char *id)
{
	int rc = ags_node_disconnect_peer(api->node, id);
	if (rc == AGS_ERR_NOT_FOUND)
		return ags_api_reply_error(c, MHD_HTTP_NOT_FOUND, "id", (size_t)-1,
		                           "no peer \"%s\"", id);
	if (rc < 0)
		return ags_api_reply_error(c, ags_api_status_of(rc), "", (size_t)-1,
		                           "cannot remove peer: %s", ags_strerror(rc));
	ags_api_logf(api, AGS_LOG_INFO, "peer removed id=%s", id);
	yyjson_mut_doc *out = yyjson_mut_doc_new(NULL);
	yyjson_mut_val *o = out ? yyjson_mut_obj(out) : NULL;
	if (o) {
		yyjson_mut_doc_set_root(out, o);
		yyjson_mut_obj_add_strcpy(out, o, "id", id);
		yyjson_mut_obj_add_bool(out, o, "removed", true);
	}
	return ags_api_reply_doc(c, MHD_HTTP_OK, out);
}

static enum MHD_Result post_sync(ags_api *api, struct MHD_Connection *c)
{
	int rc = ags_node_sync_now(api->node);
	if (rc < 0)
		return ags_api_reply_error(c, ags_api_status_of(rc), "", (size_t)-1,
		                           "cannot sync: %s", ags_strerror(rc));
	char *s = strdup("{\"ok\":true}\n");
	return ags_api_reply(c, MHD_HTTP_ACCEPTED, s, s ? strlen(s) : 0, "application/json");
}

/* ------------------------------------------------------------------------ */
/* Routing                                                                  */
/* ------------------------------------------------------------------------ */

/* Which endpoint `url` names; *id gets the {id} part of /v1/peers/{id} and /v1/patterns/{id}. */
static int route_of(const char *url, const char **id)
{
	static const struct {
		const char *path;
		int route;
	} fixed[] = {
	    {"/healthz", R_HEALTHZ},      {"/metrics", R_METRICS},  {"/v1/state", R_STATE},
	    {"/v1/events", R_EVENTS},     {"/v1/sync", R_SYNC},     {"/v1/peers", R_PEERS},
	    {"/v1/patterns", R_PATTERNS}, {"/v1/backup", R_BACKUP},
	};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (strcmp(url, fixed[i].path) == 0)
			return fixed[i].route;
	if (strncmp(url, "/v1/peers/", 10) == 0 && url[10]) {
		*id = url + 10;
		return R_PEER;
	}
	if (strncmp(url, "/v1/patterns/", 13) == 0 && url[13]) {
		*id = url + 13;
		return R_PATTERN;
	}
	return R_NONE;
}

/* The methods each route accepts, for 405 answers. */
static const char *allowed_methods(int route)
{
	switch (route) {
	case R_HEALTHZ:
	case R_METRICS:
	case R_STATE:
	case R_EVENTS:
	case R_BACKUP:
		return "GET, HEAD";
	case R_SYNC:
		return "POST";
	case R_PEERS:
	case R_PATTERNS:
		return "GET, HEAD, POST";
	case R_PEER:
		return "DELETE";
	case R_PATTERN:
		return "GET, HEAD, DELETE";
	default:
		return "";
	}
}

static int method_allowed(int route, const char *method)
{
	const char *list = allowed_methods(route);
	if (strcmp(method, "HEAD") == 0)
		method = "GET"; /* HEAD wherever GET: libmicrohttpd sends the headers only */
	size_t n = strlen(method);
	for (const char *p = strstr(list, method); p; p = strstr(p + 1, method))
		if ((p == list || p[-1] == ' ') && (p[n] == '\0' || p[n] == ','))
			return 1;
	return 0;
}

static int takes_body(int route, const char *method)
{
	return strcmp(method, "POST") == 0 && (route == R_PATTERNS || route == R_PEERS);
}

/* The query parameters each route's GET knows (NULL: none); anything else is a 400. */
static const char *known_params(int route, int get)
{
	if (route == R_PATTERNS && get)
		return "type tag agentId since limit format";
	if (route == R_EVENTS)
		return "type lastEventId";
	return NULL;
}

struct unknown_params {
	const char *known;
	char names[256];
	size_t n;
};

static enum MHD_Result collect_unknown(void *cls, enum MHD_ValueKind kind, const char *key,
                                       const char *value)
{
	struct unknown_params *u = cls;
	size_t k = strlen(key);
	const char *p = u->known;
	for (; p && (p = strstr(p, key)) != NULL; p += k)
		if ((p == u->known || p[-1] == ' ') && (p[k] == '\0' || p[k] == ' '))
			return MHD_YES;
	size_t used = strlen(u->names);
	snprintf(u->names + used, sizeof(u->names) - used, "%s%.60s", used ? ", " : "", key);
	u->n++;
	return MHD_YES;
}

/* Answers a request that has all it needs (URL, headers, and the body if any). */
static enum MHD_Result dispatch(ags_api *api, struct MHD_Connection *c, struct req *r,
                                const char *method)
{
	int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0,
	    del = strcmp(method, "DELETE") == 0;
	struct unknown_params u = {.known = known_params(r->route, get)};
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_unknown, &u);
	if (u.n) {
		const char *first_comma = strchr(u.names, ',');
		char field[64];
		snprintf(field, sizeof(field), "%.*s",
		         (int)(first_comma ? (size_t)(first_comma - u.names) : strlen(u.names)),
		         u.names);
		return ags_api_reply_error(c, MHD_HTTP_BAD_REQUEST, field, (size_t)-1,
		                           "unknown query parameter%s %s (%s knows: %s)",
		                           u.n > 1 ? "s" : "", u.names, method,
		                           u.known ? u.known : "none");
	}
	switch (r->route) {
	case R_HEALTHZ: {
		char *s = strdup("ok\n");
		return ags_api_reply(c, MHD_HTTP_OK, s, s ? 3 : 0, "text/plain");
	}
	case R_METRICS:
		return ags_api_serve_metrics(api, c);
	case R_STATE:
		return ags_api_serve_state(api, c);
	case R_EVENTS:
		return ags_api_serve_events(api, c);
	case R_BACKUP:
		return ags_api_serve_backup(api, c);
	case R_SYNC:
		return post_sync(api, c);
	case R_PEERS:
		return get ? ags_api_serve_peers(api, c) : post_peer(api, c, r->body, r->len);
	case R_PEER:
		return delete_peer(api, c, r->id);
	case R_PATTERNS:
		return get ? ags_api_list_patterns(api, c)
		           : ags_api_post_patterns(api, c, r->body, r->len);
	case R_PATTERN:
		return del ? ags_api_delete_pattern(api, c, r->id)
		           : ags_api_get_pattern(api, c, r->id);
	default:
		return ags_api_reply_error(c, MHD_HTTP_NOT_FOUND, "", (size_t)-1,
		                           "no such endpoint");
	}
}

/* Appends upload data to the request body, up to its limit (past it: counts, keeps nothing). */
static void take_upload(struct req *r, const char *data, size_t n)
{
	if (r->too_large)
		return;
	if (n > r->limit - r->len) {
		r->too_large = 1;
		free(r->body);
		r->body = NULL;
		r->len = r->cap = 0;
		return;
	}
	if (r->len + n + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : 64 * 1024;
		while (cap < r->len + n + 1)
			cap *= 2;
		if (cap > r->limit + 1)
			cap = r->limit + 1;
		char *b = realloc(r->body, cap);
		if (!b) {
			r->too_large = 1; /* answered as 413: we cannot hold it */
			free(r->body);
			r->body = NULL;
			r->len = r->cap = 0;
			return;
		}
		r->body = b;
		r->cap = cap;
	}
	memcpy(r->body + r->len, data, n);
	r->len += n;
	r->body[r->len] = '\0';
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
	ags_api *api = cls;
	struct req *r = *con_cls;
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		*con_cls = r;
		ags_api_guard_head_done(api, c);
		r->route = route_of(url, &r->id);
		/* The token first, even for unknown paths: without it nothing, not even which
		 * endpoints exist, can be learnt. */
		if (r->route != R_HEALTHZ) {
			const char *why = check_auth(api, c);
			if (why) {
				char from[80];
				client_address(c, from, sizeof(from));
				ags_api_logf(api, AGS_LOG_WARN, "refused %s %s from %s: %s", method,
				             url, from, why);
				return ags_api_reply_error(c, MHD_HTTP_UNAUTHORIZED,
				                           "Authorization", (size_t)-1, "%s", why);
			}
		}
		if (r->route == R_NONE)
			return ags_api_reply_error(c, MHD_HTTP_NOT_FOUND, "", (size_t)-1,
			                           "no such endpoint: %s", url);
		if (!method_allowed(r->route, method))
			return ags_api_reply_405(c, method, url, allowed_methods(r->route));
		if (!takes_body(r->route, method))
			return dispatch(api, c, r, method);
		r->limit = r->route == R_PATTERNS ? api->max_body_bytes : SMALL_BODY_MAX;
		const char *cl =
		    MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl) {
			char *end;
			errno = 0;
			unsigned long long v = strtoull(cl, &end, 10);
			/* Refused before reading any of it: the client does not send it all. */
			if (errno || *end || v > r->limit)
				return ags_api_reply_error(
				    c, MHD_HTTP_CONTENT_TOO_LARGE, "", (size_t)-1,
				    "the body (%s bytes) is over the limit of %zu bytes", cl,
				    r->limit);
		}
		return MHD_YES;
	}
	if (*upload_size) {
		take_upload(r, upload, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->too_large)
		return ags_api_reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "", (size_t)-1,
		                           "the body is over the limit of %zu bytes", r->limit);
	return dispatch(api, c, r, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct req *r = *con_cls;
	ags_api_guard_request_done(cls, c);
	if (r) {
		free(r->body);
		free(r);
		*con_cls = NULL;
	}
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	ags_api *api = cls;
	char msg[400];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	ags_api_logf(api, AGS_LOG_DEBUG, "libmicrohttpd: %s", msg);
}

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                */
/* ------------------------------------------------------------------------ */

int ags_api_new(ags_node *node, const ags_api_config *cfg, ags_api **out, ags_error *err)
{
	if (!node || !cfg || !out)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, NULL);
	*out = NULL;
	ags_api *api = calloc(1, sizeof(*api));
	if (!api)
		return ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
	api->node = node;
	snprintf(api->host, sizeof(api->host), "%s", cfg->host ? cfg->host : "127.0.0.1");
	api->port = cfg->port;
	api->max_pattern_bytes =
	    cfg->max_pattern_bytes ? cfg->max_pattern_bytes : AGS_PATTERN_MAX_BYTES_DEFAULT;
	api->max_body_bytes = cfg->max_body_bytes ? cfg->max_body_bytes
	                                          : api->max_pattern_bytes * AGS_API_BODY_FACTOR;
	api->log = cfg->log;
	api->log_user_data = cfg->log_user_data;
	if (cfg->data_dir && strlen(cfg->data_dir) >= sizeof(api->data_dir)) {
		free(api);
		return ags_error_set(err, AGS_ERR_INVALID, "dataDir", "path too long");
	}
	snprintf(api->data_dir, sizeof(api->data_dir), "%s", cfg->data_dir ? cfg->data_dir : "");
	int rc;
	if (pthread_mutex_init(&api->mu, NULL) != 0) {
		free(api);
		return ags_error_set(err, AGS_ERR_NOMEM, NULL, NULL);
	}
	/* Streams wait on cv with CLOCK_MONOTONIC deadlines. */
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	int crc = pthread_cond_init(&api->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (crc != 0) {
		rc = AGS_ERR_NOMEM;
		goto fail_mu;
	}
	rc =
	    ags_api_ring_init(&api->ring, cfg->ring_events ? cfg->ring_events : AGS_API_RING_EVENTS,
	                      cfg->ring_bytes ? cfg->ring_bytes : AGS_API_RING_BYTES);
	if (rc < 0)
		goto fail_cv;
	rc = ags_api_set_token(api, cfg->token);
	if (rc < 0)
		goto fail_ring;
	*out = api;
	return 0;
fail_ring:
	ags_api_ring_free(&api->ring);
fail_cv:
	pthread_cond_destroy(&api->cv);
fail_mu:
	pthread_mutex_destroy(&api->mu);
	free(api);
	return ags_error_set(err, rc, NULL, NULL);
}

/* Makes the listening socket for host:port; returns it, or -1 with err set. */
static int listen_socket(ags_api *api, int *ipv6, ags_error *err)
{
	char port[8];
	snprintf(port, sizeof(port), "%u", api->port);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV},
	                *res = NULL;
	int gai = getaddrinfo(api->host, port, &hints, &res);
	if (gai != 0) {
		ags_error_set(err, AGS_ERR_IO, "api.listen", "cannot resolve \"%s\": %s", api->host,
		              gai_strerror(gai));
		return -1;
	}
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 128) < 0) {
		ags_error_set(err, AGS_ERR_IO, "api.listen", "cannot listen on %s:%s: %m",
		              api->host, port);
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return -1;
	}
	*ipv6 = res->ai_family == AF_INET6;
	freeaddrinfo(res);
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		api->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
		                                           : ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

int ags_api_start(ags_api *api, ags_error *err)
{
	if (!api)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, NULL);
	if (api->mhd)
		return ags_error_set(err, AGS_ERR_STATE, NULL, "already started");
	int ipv6 = 0;
	int fd = listen_socket(api, &ipv6, err);
	if (fd < 0)
		return AGS_ERR_IO;
	unsigned flags = MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD |
	                 MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
	if (ipv6)
		flags |= MHD_USE_IPv6;
	pthread_mutex_lock(&api->mu);
	api->stopping = 0;
	pthread_mutex_unlock(&api->mu);
	if (ags_api_guard_start(api) != 0) {
		close(fd);
		return ags_error_set(err, AGS_ERR_INTERNAL, "api.listen", "cannot start a thread");
	}
	/* The logger goes first, so that libmicrohttpd never prints on its own. Slow clients
	 * are held to a budget and a deadline by api_guard.c. */
	api->mhd = MHD_start_daemon(
	    flags, 0, ags_api_guard_accept, api, on_request, api, MHD_OPTION_EXTERNAL_LOGGER,
	    mhd_log, api, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
	    api, MHD_OPTION_NOTIFY_CONNECTION, ags_api_guard_notify, api,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)256, MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned)120, MHD_OPTION_END);
	if (!api->mhd) {
		ags_api_guard_stop(api);
		close(fd);
		return ags_error_set(err, AGS_ERR_INTERNAL, "api.listen",
		                     "libmicrohttpd did not start on %s:%u", api->host, api->port);
	}
	return 0;
}

uint16_t ags_api_port(const ags_api *api)
{
	return api && api->mhd ? api->port : 0;
}

void ags_api_stop(ags_api *api)
{
	if (!api || !api->mhd)
		return;
	pthread_mutex_lock(&api->mu);
	api->stopping = 1;
	pthread_cond_broadcast(&api->cv);
	pthread_mutex_unlock(&api->mu);
	MHD_stop_daemon(api->mhd);
	api->mhd = NULL;
	ags_api_guard_stop(api);
}

void ags_api_del(ags_api *api)
{
	if (!api)
		return;
	ags_api_stop(api);
	ags_api_ring_free(&api->ring);
	pthread_cond_destroy(&api->cv);
	pthread_mutex_destroy(&api->mu);
	free(api);
}
