/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The conformance run: a real agentsyncd, sessions with it over QUIC, and
 * the table of checks (one per MUST of docs/PROTOCOL.md, see its
 * "Conformance" section). Each check returns NULL when the daemon did what
 * the document says, else a sentence saying what it did instead.
 */
#ifndef CONF_CONFORM_H
#define CONF_CONFORM_H

#include <stddef.h>
#include <stdint.h>

#include <yyjson.h>

#include "quic.h"
#include "wire.h"

/* Bounds of every wait (they stop a check that would hang; nothing asserts on time). */
#define WAIT_MS  10000
#define QUIET_MS 400 /* how long "nothing more arrives" is watched */

/* The daemon under test and the files the checks use. */
struct env {
	char *dir;   /* scratch directory */
	char *certs; /* agentsync certs init output */
	int port;    /* the daemon's UDP port */
	char api[64];
	char store[33];                 /* the daemon's store id, from its HELLO */
	uint64_t batch_size, max_frame; /* what the daemon announced */
	int hub_port;
	char hub_secret[64];
};
extern struct env E;

/* One connection and its stream. Sessions are closed by the runner after each check. */
struct sess {
	struct cq_conn *c;
	char id[300];       /* our node id (the certificate's) */
	char store[33];     /* our store id */
	yyjson_doc *hello;  /* the daemon's HELLO, once read */
	yyjson_doc *errorf; /* an ERROR frame the daemon sent, if any */
	uint8_t *payload;   /* the last frame read */
	uint8_t type;
	uint32_t len;
	int closed_seen;
};

/* A failure message (printf-like); checks return it. */
const char *failed(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* How many times `needle` occurs in the daemon's log so far. */
size_t daemon_log_count(const char *needle);

/* Paths of a certificate and key made for node `id` (certs init, or certs_make). */
char *cert_path(const char *id);
char *key_path(const char *id);

/* Connects with `id`'s certificate (NULL opts: defaults) and waits for the handshake.
 * NULL on failure (reason in *why); with why NULL the session is returned anyway. */
struct sess *sess_connect(const char *id, const struct cq_opts *extra, const char **why);

/* The default HELLO of node `id`, with `extra` (",\"k\":v..." or NULL) appended. malloc'd. */
char *hello_json(const struct sess *s, const char *extra);

/* Sends one frame; 0 or -1. */
int send_frame(struct sess *s, uint8_t type, const void *payload, size_t len);
int send_json(struct sess *s, uint8_t type, const char *json);

/* Reads the next frame (at most ms): 1 got one (s->type, s->payload, s->len), 0 none, -1 closed.
 * ERROR frames are kept in s->errorf and returned like any other. */
int read_frame(struct sess *s, int ms);

/* Reads frames until one of `type` (others are skipped); 1, 0 timeout, -1 closed. */
int read_until(struct sess *s, uint8_t type, int ms);

/* Connects as `id`, sends the default HELLO (plus extra) and reads the daemon's. NULL + *why. */
struct sess *sess_open(const char *id, const char *extra, const char **why);

/* Waits for the close; returns its code (-1 if still open, -2 if it was not an app close). */
int64_t wait_close(struct sess *s, int ms);

/* The JSON of the last frame (parsed); NULL when it is not JSON. Freed by the runner. */
yyjson_val *frame_json(struct sess *s);

/* Sends a BATCH; reads until its ACK (requestId). The ACK's root, or NULL (+ *why). */
yyjson_val *send_batch(struct sess *s, const struct batch *b, const char **why);

/* Reads the daemon's next BATCH (decoded, checked); 1, 0 timeout, -1 closed or invalid. */
int read_batch(struct sess *s, struct rbatch *b, int ms, const char **why);

/* Sends the ACK of a received batch (success, receivedCount = applied = count). */
int ack_batch(struct sess *s, const struct rbatch *b);

/* HTTP API of the daemon (curl): returns the status; *body malloc'd (may be NULL). */
int api(const char *method, const char *path, const char *body, char **out);
/* Puts patterns (JSON array text) through the API; 0 on 200. */
int api_put(const char *json);
/* The daemon's /v1/state as a document (free with yyjson_doc_free). */
yyjson_doc *api_state(void);
/* The stored JSON of a pattern (malloc'd) or NULL when 404. */
char *api_get(const char *id);

/* A put entry {"p":{...}} for a small pattern; malloc'd. */
char *pattern(const char *id, const char *type, int priority, int version);

/* Keeps a pointer to free after the check. */
void *autofree(void *p);
yyjson_doc *autodoc(yyjson_doc *d);

/* A unique name for this run ("t17"), for ids and types that no other check uses. */
const char *uniq(const char *prefix);

/* Starts another daemon with extra config keys (",\"k\":v"); its UDP port, or -1 (exit status in
 * *st). */
int extra_daemon(const char *name, const char *extra_keys, int hub, int *st, char *api_out);
void extra_daemons_stop(void);

/* Makes a certificate signed by the run's CA (or a new CA when foreign) for tests of identity. */
struct cert_spec {
	const char *name;   /* file name: DIR/certs/<name>.pem, <name>-key.pem */
	const char *cn;     /* NULL: none */
	const char *dns[3]; /* DNS SANs */
	int eku_client, eku_server;
	unsigned key_usage; /* 0: digitalSignature */
	int foreign_ca;
};
int cert_make(const struct cert_spec *spec);

/* The checks. */
struct check {
	const char *name;
	const char *(*fn)(void);
	const char *what; /* the MUST it tests */
};
extern const struct check checks_tls[], checks_session[], checks_recv[], checks_send[],
    checks_hub[];

#endif
