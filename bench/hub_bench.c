/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hub_bench: fan-out through a federation hub (seed 004).
 *
 * A hub (ags_node in hub mode) runs in a forked child. This process is the
 * load: N agents (default 1000) of one tenant, each a real QUIC connection
 * with mutual TLS from one endpoint on one libuv loop, speaking the agent
 * protocol by hand (AUTH, HELLO, PULL; ACK for every BATCH). When all are
 * live, one agent at a time pushes one pattern carrying its send time
 * (CLOCK_MONOTONIC, shared by both processes); every other agent records
 * when it arrives. Printed: p50/p99/max of the single deliveries and of the
 * time until the last agent of a push has it, and the hub child's VmRSS and
 * VmHWM (from /proc/<pid>/status).
 *
 * Usage: hub_bench [agents] [pushes]
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "agentsync/agentsync.h"
#include "agentsync/node.h"
#include "batch.h"
#include "agentsync/certs.h"
#include "frame.h"
#include "jwtauth.h"
#include "quic.h"
#include "tls.h"
#include "wire.h"

#define SECRET "hub-bench secret, comfortably over thirty-two bytes"
#define TENANT "bench"

static char dir[256];

static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- the hub, in a child ---- */

static void run_hub(int port_fd, int stop_fd, unsigned agents)
{
	char cert[512], key[512], ca[512], data[512];
	snprintf(cert, sizeof(cert), "%s/certs/hub.pem", dir);
	snprintf(key, sizeof(key), "%s/certs/hub-key.pem", dir);
	snprintf(ca, sizeof(ca), "%s/certs/ca.pem", dir);
	snprintf(data, sizeof(data), "%s/hub", dir);
	ags_node_config c;
	ags_node_config_init(&c);
	c.node_id = "hub";
	c.port = 0;
	c.data_dir = data;
	c.tenant = "hub";
	c.tls.cert = cert;
	c.tls.key = key;
	c.tls.ca = ca;
	c.idle_timeout_ms = 60000;
	c.hub.enabled = 1;
	c.hub.hs256_secret = (const uint8_t *)SECRET;
	c.hub.hs256_secret_len = strlen(SECRET);
	c.hub.max_agents = agents + 16;
	ags_node *n = NULL;
	ags_error err;
	if (ags_node_new(&c, NULL, NULL, &n, &err) || ags_node_start(n, &err)) {
		fprintf(stderr, "hub: %s\n", err.message);
		_exit(1);
	}
	uint16_t port = ags_node_port(n);
	if (write(port_fd, &port, sizeof(port)) != sizeof(port))
		_exit(1);
	char b;
	while (read(stop_fd, &b, 1) > 0) {
	}
	ags_node_del(n);
	_exit(0);
}

/* ---- the load ---- */

struct agent {
	int idx;
	char id[32];
	ags_quic_conn *conn;
	int64_t sid;
	ags_frame_reader rd;
	int ready; /* PULL_DONE received */
	uint64_t next_req;
};

static uv_loop_t *loop;
static ags_quic_ep *ep;
static struct agent *agents;
static unsigned n_agents, n_connecting, n_started, n_ready, n_failed;
static uint16_t hub_port;
static uint64_t *lat; /* single deliveries, us */
static size_t n_lat, cap_lat;
static uint64_t *round_lat; /* last delivery of each push, us */
static unsigned rounds, round_no, round_got;
static uint64_t round_sent_us, round_last_us;
static int round_active;
static uv_timer_t driver;
static pid_t hub_pid;

static void free_cb(void *ud, int status)
{
	(void)status;
	free(ud);
}

static void write_frame(struct agent *a, ags_frame_buf *fb)
{
	uint8_t *copy = malloc(fb->len);
	memcpy(copy, fb->data, fb->len);
	if (ags_quic_stream_write(a->conn, a->sid, copy, fb->len, 0, free_cb, copy) != 0)
		free(copy);
	ags_frame_buf_reset(fb);
}

static void send_ack(struct agent *a, uint64_t rid, uint32_t count)
{
	ags_frame_buf fb;
	ags_frame_buf_init(&fb, 0);
	ags_wire_ack ack = {
	    .request_id = rid, .success = 1, .received_count = count, .applied = count, .seq = 0};
	if (ags_wire_ack_encode(&ack, NULL, 0, &fb, NULL) == 0) {
		if (ags_quic_stream_write(a->conn, a->sid, fb.data, fb.len, 0, free_cb, fb.data) ==
		    0)
			fb.data = NULL;
	}
	ags_frame_buf_free(&fb);
}

static void on_batch(struct agent *a, const uint8_t *p, size_t len)
{
	ags_batch b;
	if (ags_batch_decode(p, len, NULL, &b, NULL) != 0)
		return;
	uint64_t now = mono_us();
	for (size_t i = 0; i < b.n_entries; i++) {
		yyjson_val *d =
		    b.entries[i].pattern ? yyjson_obj_get(b.entries[i].pattern, "data") : NULL;
		yyjson_val *t = d ? yyjson_obj_get(d, "t") : NULL;
		yyjson_val *r = d ? yyjson_obj_get(d, "round") : NULL;
		if (!t || !r || !round_active || yyjson_get_uint(r) != round_no)
			continue;
		if (n_lat == cap_lat) {
			cap_lat = cap_lat ? cap_lat * 2 : 65536;
			lat = realloc(lat, cap_lat * sizeof(*lat));
		}
		lat[n_lat++] = now - yyjson_get_uint(t);
		round_got++;
		round_last_us = now;
	}
	send_ack(a, b.hdr.request_id, (uint32_t)b.n_entries);
	ags_batch_free(&b);
}

static void q_data(void *ud, ags_quic_conn *c, int64_t sid, const uint8_t *data, size_t len,
                   int fin)
{
	(void)ud;
	(void)fin;
	struct agent *a = ags_quic_conn_user_data(c);
	ags_quic_stream_consume(c, sid, len);
	while (len > 0) {
		size_t used = 0;
		ags_frame f;
		int rv = ags_frame_reader_feed(&a->rd, data, len, &used, &f, NULL);
		if (rv < 0)
			return;
		data += used;
		len -= used;
		if (rv == 0)
			break;
		if (f.type == AGS_FRAME_BATCH)
			on_batch(a, f.payload, f.len);
		else if (f.type == AGS_FRAME_PULL_DONE && !a->ready) {
			a->ready = 1;
			n_ready++;
		}
	}
}

static void q_connected(void *ud, ags_quic_conn *c, const char *peer, const char *addr)
{
	(void)ud;
	(void)peer;
	(void)addr;
	struct agent *a = ags_quic_conn_user_data(c);
	n_connecting--;
	if (ags_quic_stream_open(c, &a->sid) != 0)
		return;
	char *tok = NULL;
	int64_t now = ags_now_ms() / 1000;
	ags_jwt_sign_hs256((const uint8_t *)SECRET, strlen(SECRET), a->id, TENANT, NULL, NULL, now,
	                   now + 3600, &tok);
	ags_frame_buf fb;
	ags_frame_buf_init(&fb, 0);
	ags_wire_auth_encode(tok, &fb, NULL);
	free(tok);
	ags_wire_hello h;
	memset(&h, 0, sizeof(h));
	h.proto = AGS_PROTO_VERSION;
	h.node = a->id;
	h.tenant = TENANT;
	h.store = "00000000000000000000000000000000";
	h.max_frame = 1u << 20;
	h.batch_size = 100;
	ags_wire_hello_encode(&h, &fb, NULL);
	ags_wire_vclock_encode(AGS_FRAME_PULL, NULL, NULL, 0, &fb, NULL);
	write_frame(a, &fb);
	ags_frame_buf_free(&fb);
}

static void q_closed(void *ud, ags_quic_conn *c, uint64_t code, const char *reason, int by_peer)
{
	(void)ud;
	(void)by_peer;
	struct agent *a = ags_quic_conn_user_data(c);
	if (a && !a->ready) {
		n_failed++;
		if (n_failed < 5)
			fprintf(stderr, "agent %s closed: 0x%llx %s\n", a->id,
			        (unsigned long long)code, reason);
	}
	if (a)
		a->conn = NULL;
}

static void push(struct agent *a)
{
	ags_batch_encoder *e = NULL;
	ags_batch_encoder_new(NULL, &e);
	ags_batch_encoder_begin(e);
	char json[512];
	round_sent_us = mono_us();
	int n =
	    snprintf(json, sizeof(json),
	             "{\"id\":\"push-%u\",\"agentId\":\"%s\",\"type\":\"bench\","
	             "\"data\":{\"round\":%u,\"t\":%" PRIu64 "},\"metadata\":{\"source\":\"bench\","
	             "\"tags\":[]},\"timestamp\":%" PRId64 ",\"version\":1}",
	             round_no, a->id, round_no, round_sent_us, ags_now_ms());
	ags_batch_encoder_add_put(e, json, (size_t)n, 0);
	const uint8_t *frame;
	size_t flen;
	ags_batch_encoder_finish(e, ++a->next_req, ags_now_ms(), 0, a->id, AGS_CODEC_NONE, &frame,
	                         &flen, NULL);
	uint8_t *copy = malloc(flen);
	memcpy(copy, frame, flen);
	if (ags_quic_stream_write(a->conn, a->sid, copy, flen, 0, free_cb, copy) != 0)
		free(copy);
	ags_batch_encoder_del(e);
}

static long rss_kb(const char *field)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)hub_pid);
	FILE *f = fopen(path, "r");
	long v = -1;
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, field, strlen(field)) == 0)
			v = strtol(line + strlen(field), NULL, 10);
	if (f)
		fclose(f);
	return v;
}

static long rss_connected = -1;
static double cpu_connected = -1;

/* The hub child's CPU time (user + system) in seconds, from /proc/<pid>/stat. */
static double hub_cpu_s(void)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)hub_pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *p = strrchr(buf, ')');
	unsigned long ut = 0, st = 0;
	/* After the command: state and 11 more fields, then utime and stime. */
	if (!p ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void on_driver(uv_timer_t *t)
{
	(void)t;
	/* Connect in waves so the handshakes do not all land at once. */
	while (n_started < n_agents && n_connecting < 64) {
		struct agent *a = &agents[n_started++];
		ags_error err;
		if (ags_quic_connect(ep, "127.0.0.1", hub_port, "hub", a, &a->conn, &err) != 0) {
			fprintf(stderr, "connect %s: %s\n", a->id, err.message);
			n_failed++;
			continue;
		}
		n_connecting++;
	}
	if (n_ready + n_failed < n_agents)
		return;
	if (rss_connected < 0) {
		rss_connected = rss_kb("VmRSS:");
		cpu_connected = hub_cpu_s();
	}
	uint64_t now = mono_us();
	if (round_active) {
		unsigned want = n_ready - 1;
		if (round_got < want && now - round_sent_us < 5000000)
			return;
		round_lat[round_no] =
		    round_got == want ? round_last_us - round_sent_us : UINT64_MAX;
		round_active = 0;
		round_no++;
		if (round_no >= rounds) {
			uv_stop(loop);
			return;
		}
		return; /* next push on the next tick: the hub settles its ACKs */
	}
	struct agent *a = &agents[(round_no * 7919u) % n_agents];
	if (!a->ready || !a->conn) {
		round_no++;
		return;
	}
	round_got = 0;
	round_active = 1;
	push(a);
}

static int cmp_u64(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
	return a < b ? -1 : a > b;
}

static double pct(uint64_t *v, size_t n, double p)
{
	if (!n)
		return 0;
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);
	return (double)v[i] / 1000.0;
}

int main(int argc, char **argv)
{
	n_agents = argc > 1 ? (unsigned)atoi(argv[1]) : 1000;
	rounds = argc > 2 ? (unsigned)atoi(argv[2]) : 100;
	if (n_agents < 2 || rounds < 1)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	snprintf(dir, sizeof(dir), "%s/hub_bench.XXXXXX",
	         getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(dir))
		return 1;
	char certs[300];
	snprintf(certs, sizeof(certs), "%.256s/certs", dir);
	const char *ids[] = {"hub", "agent"};
	ags_error err;
	if (ags_certs_init(certs, ids, 2, AGS_CERTS_ED25519, &err) != 0) {
		fprintf(stderr, "certs: %s\n", err.message);
		return 1;
	}
	int port_pipe[2], stop_pipe[2];
	if (pipe(port_pipe) || pipe(stop_pipe))
		return 1;
	hub_pid = fork();
	if (hub_pid == 0) {
		close(port_pipe[0]);
		close(stop_pipe[1]);
		run_hub(port_pipe[1], stop_pipe[0], n_agents);
	}
	close(port_pipe[1]);
	close(stop_pipe[0]);
	if (read(port_pipe[0], &hub_port, sizeof(hub_port)) != sizeof(hub_port))
		return 1;
	long rss_idle = rss_kb("VmRSS:");

	char cert[600], key[600], ca[600];
	snprintf(cert, sizeof(cert), "%s/agent.pem", certs);
	snprintf(key, sizeof(key), "%s/agent-key.pem", certs);
	snprintf(ca, sizeof(ca), "%s/ca.pem", certs);
	ags_tls_config tc = {
	    .cert_file = cert, .key_file = key, .ca_file = ca, .reject_unauthorized = 1};
	ags_tls_ctx *tls = NULL;
	if (ags_tls_ctx_new(&tc, &tls, &err) != 0) {
		fprintf(stderr, "tls: %s\n", err.message);
		return 1;
	}
	loop = uv_default_loop();
	ags_quic_config qc = {
	    .host = "127.0.0.1", .tls = tls, .idle_timeout_ms = 60000, .max_conns = n_agents + 16};
	ags_quic_callbacks cb = {.version = AGS_QUIC_CALLBACKS_VERSION,
	                         .on_connected = q_connected,
	                         .on_closed = q_closed,
	                         .on_stream_data = q_data};
	if (ags_quic_ep_new(loop, &qc, &cb, &ep, &err) != 0) {
		fprintf(stderr, "endpoint: %s\n", err.message);
		return 1;
	}
	agents = calloc(n_agents, sizeof(*agents));
	round_lat = calloc(rounds, sizeof(*round_lat));
	for (unsigned i = 0; i < n_agents; i++) {
		agents[i].idx = (int)i;
		snprintf(agents[i].id, sizeof(agents[i].id), "agent-%u", i);
		agents[i].sid = -1;
		ags_frame_reader_init(&agents[i].rd, 1u << 20);
	}
	uint64_t t0 = mono_us();
	uv_timer_init(loop, &driver);
	uv_timer_start(&driver, on_driver, 1, 1);
	uv_run(loop, UV_RUN_DEFAULT);
	uint64_t t1 = mono_us();
	long rss_end = rss_kb("VmRSS:"), hwm = rss_kb("VmHWM:");
	double cpu_pushes = hub_cpu_s() - cpu_connected;

	uv_timer_stop(&driver);
	uv_close((uv_handle_t *)&driver, NULL);
	ags_quic_ep_del(ep);
	uv_run(loop, UV_RUN_DEFAULT);
	close(stop_pipe[1]);
	int st = 0;
	waitpid(hub_pid, &st, 0);
	ags_tls_ctx_del(tls);
	for (unsigned i = 0; i < n_agents; i++)
		ags_frame_reader_free(&agents[i].rd);

	qsort(lat, n_lat, sizeof(*lat), cmp_u64);
	unsigned complete = 0;
	for (unsigned i = 0; i < rounds; i++)
		if (round_lat[i] != UINT64_MAX && round_lat[i])
			round_lat[complete++] = round_lat[i];
	qsort(round_lat, complete, sizeof(*round_lat), cmp_u64);
	printf("hub_bench agents=%u ready=%u pushes=%u complete=%u deliveries=%zu "
	       "delivery_p50=%.2fms delivery_p99=%.2fms delivery_max=%.2fms "
	       "fanout_p50=%.2fms fanout_p99=%.2fms hub_rss_idle=%ldKB hub_rss_connected=%ldKB "
	       "hub_rss_end=%ldKB hub_hwm=%ldKB hub_cpu_per_push=%.2fms wall=%.1fs\n",
	       n_agents, n_ready, rounds, complete, n_lat, pct(lat, n_lat, 0.50),
	       pct(lat, n_lat, 0.99), n_lat ? (double)lat[n_lat - 1] / 1000.0 : 0,
	       pct(round_lat, complete, 0.50), pct(round_lat, complete, 0.99), rss_idle,
	       rss_connected, rss_end, hwm, cpu_pushes * 1000.0 / rounds, (double)(t1 - t0) / 1e6);
	free(lat);
	free(round_lat);
	free(agents);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		return 1;
	return 0;
}
