/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals of the HTTP API shared by its files: src/agentsyncd/api.c (server, routing,
 * authentication, peers), src/agentsyncd/api_patterns.c (patterns in and out),
 * src/agentsyncd/api_events.c (event ring, Server-Sent Events) and src/agentsyncd/api_state.c
 * (state and metrics).
 */
#ifndef AGS_API_INT_H
#define AGS_API_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>
#include <yyjson.h>

#include "agentsync/agentsync.h"
#include "agentsync/node.h"
#include "api.h"

/* Upper bounds (seconds) of the sync latency histogram buckets. */
#define AGS_API_LATENCY_BUCKETS 12

/* One recorded event. `json` is the event's JSON object without its '{'. */
struct ags_api_slot {
	uint64_t id;
	char name[40];
	char *json;
	size_t len;
};

/*
 * The ring of recent events: ids are consecutive, the ring holds
 * [oldest, next_id). Ids start at the API's start time in microseconds, so
 * a restarted daemon never reuses an id a client may still hold.
 */
struct ags_api_ring {
	struct ags_api_slot *slots;
	size_t cap, head, count; /* head: index of the oldest */
	size_t bytes, max_bytes;
	uint64_t next_id;
	uint64_t first_id; /* the first id this daemon gives (its start time in µs) */
};

/* The guard against slow clients (api_guard.c). */
#define AGS_API_WAITING_MAX      64 /* connections without a whole request head, of 256 */
#define AGS_API_WAITING_PER_ADDR 16 /* of them from one client address */
#define AGS_API_HEAD_TIMEOUT_S   10 /* to send a whole request head */

struct ags_api_gconn;

struct ags_api_guard {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	int running, stop;
	struct ags_api_gconn *head, *tail; /* waiting connections, newest first */
	size_t waiting;
	uint64_t refused_addr, evicted, timed_out;
	uint64_t said_addr, said_evicted, said_timed_out, logged_ms;
};

struct ags_api {
	ags_node *node;
	char host[256];
	uint16_t port;
	size_t max_pattern_bytes, max_body_bytes;
	ags_api_log_fn log;
	void *log_user_data;
	struct MHD_Daemon *mhd;
	char data_dir[4096]; /* where GET /v1/backup makes its copy; "": no backups */

	/* Guards the token, the ring, the histogram and `stopping`. */
	pthread_mutex_t mu;
	pthread_cond_t cv; /* signalled on every new event and on stop */
	int has_token;
	unsigned char token_hash[32];
	struct ags_api_ring ring;
	int stopping;

	uint64_t hist[AGS_API_LATENCY_BUCKETS + 1]; /* last: +Inf */
	uint64_t hist_count;
	double hist_sum;

	struct ags_api_guard guard;
};

/* ---- api_guard.c: slow clients ---- */

/* Starts / stops the guard's watchdog thread (start before the daemon, stop after it). */
int ags_api_guard_start(ags_api *api);
void ags_api_guard_stop(ags_api *api);

/* libmicrohttpd's accept policy and connection notifications (cls: the api). */
enum MHD_Result ags_api_guard_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen);
void ags_api_guard_notify(void *cls, struct MHD_Connection *connection, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe);

/* A request head arrived whole on the connection / its request is over (keep-alive). */
void ags_api_guard_head_done(ags_api *api, struct MHD_Connection *connection);
void ags_api_guard_request_done(ags_api *api, struct MHD_Connection *connection);

/* Bucket bounds of the latency histogram, in seconds. */
extern const double ags_api_latency_bounds[AGS_API_LATENCY_BUCKETS];

/* Logs through the configured callback (if any). */
void ags_api_logf(ags_api *api, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Queues a response with `body` (malloc'd, ownership taken in every case) of
 * `len` bytes and Content-Type `ctype`. Returns MHD's result.
 */
enum MHD_Result ags_api_reply(struct MHD_Connection *c, unsigned status, char *body, size_t len,
                              const char *ctype);

/* ags_api_reply with one more header (hdr NULL: none). */
enum MHD_Result ags_api_reply_hdr(struct MHD_Connection *c, unsigned status, char *body, size_t len,
                                  const char *ctype, const char *hdr, const char *value);
/* 405 with the JSON error and the Allow header listing `allow`. */
enum MHD_Result ags_api_reply_405(struct MHD_Connection *c, const char *method, const char *url,
                                  const char *allow);
/* `s` percent-encoded for a URL path segment (malloc'd; NULL when out of memory). */
char *ags_api_escape_path(const char *s);
/*
 * Queues an error response {"error": message, "field": field} (plus
 * "offset" when offset != (size_t)-1) with `status`.
 */
enum MHD_Result ags_api_reply_error(struct MHD_Connection *c, unsigned status, const char *field,
                                    size_t offset, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Queues an error response made from `err` with the status that fits err->code. */
enum MHD_Result ags_api_reply_agserr(struct MHD_Connection *c, const ags_error *err);

/* The HTTP status for an AGS_ERR_* code (400, 404, 409, 413, 503, 500...). */
unsigned ags_api_status_of(int code);

/*
 * Writes `doc` compactly, frees it, and queues it as application/json (a 500
 * when out of memory).
 */
enum MHD_Result ags_api_reply_doc(struct MHD_Connection *c, unsigned status, yyjson_mut_doc *doc);

/* Handlers (api_patterns.c). `body` is the request body, owned by the caller. */
enum MHD_Result ags_api_post_patterns(ags_api *api, struct MHD_Connection *c, const char *body,
                                      size_t len);
enum MHD_Result ags_api_get_pattern(ags_api *api, struct MHD_Connection *c, const char *id);
enum MHD_Result ags_api_list_patterns(ags_api *api, struct MHD_Connection *c);
enum MHD_Result ags_api_delete_pattern(ags_api *api, struct MHD_Connection *c, const char *id);

/* Handlers (api_events.c, api_state.c). */
enum MHD_Result ags_api_serve_events(ags_api *api, struct MHD_Connection *c);
enum MHD_Result ags_api_serve_state(ags_api *api, struct MHD_Connection *c);
enum MHD_Result ags_api_serve_peers(ags_api *api, struct MHD_Connection *c);
enum MHD_Result ags_api_serve_metrics(ags_api *api, struct MHD_Connection *c);
enum MHD_Result ags_api_serve_backup(ags_api *api, struct MHD_Connection *c); /* api_backup.c */

/* A growing text (the /metrics answer); oom is set once an allocation failed. */
struct ags_api_text {
	char *s;
	size_t len, cap;
	int oom;
};

/* Appends printf-style text (api_state.c). */
void ags_api_text_add(struct ags_api_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* agentsync_build_info and process_* (api_process.c). */
void ags_api_emit_process(struct ags_api_text *t);

/* Event ring (api_events.c). init returns AGS_ERR_NOMEM on failure. */
int ags_api_ring_init(struct ags_api_ring *r, size_t cap, size_t max_bytes);
void ags_api_ring_free(struct ags_api_ring *r);

/*
 * Records an event made by the API itself (name e.g. AGS_API_EV_PATTERN_STORED)
 * with the fields of `ev` that apply.
 */
void ags_api_emit(ags_api *api, const char *name, const ags_event *ev);

#endif
