/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sync_bench: pattern sync between two node processes on 127.0.0.1.
 *
 *   W1  node A is given N patterns (~450 B) through the C API; seconds until
 *       node B holds all of them durably; patterns/s.
 *   W2  one pattern at a time, A -> B applied -> ACK back at A: p50, p99.
 *   W3  B offline while A takes N patterns; seconds from B's start until it
 *       holds them all.
 *   Wire bytes per pattern against raw JSON bytes (from A's counters).
 *
 * B runs in a child process (this program again, exec'd: A's threads are
 * running when it starts, and a fork alone would inherit the locks they
 * hold) and reports "held N at <monotonic us>" through a pipe when its store
 * reaches the count (it waits for its own pattern:received events, then
 * checks the store), so nothing polls another process.
 * Usage: sync_bench [N] [W2 count]; SB_BATCH / SB_WINDOW / SB_BUSY_POLL in
 * the environment override batchSize, the window of unacknowledged batches
 * and busyPoll (microseconds, 0 = off); SB_ONLY=w1, w2
 * or w3 runs one workload (w2 runs after a W1 of N patterns), for profiles;
 * SB_TRACE=1 has B print its count (stderr) at every tenth of N; SB_KEY_FILE
 * names a store key file: both nodes' stores are then encrypted at rest.
 */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agentsync/agentsync.h"
#include "agentsync/node.h"
#include "agentsync/certs.h"

static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static char dir[256];

static void node_cfg(ags_node_config *c, const char *id, char *cert, char *key, char *ca,
                     char *data)
{
	ags_node_config_init(c);
	snprintf(cert, 512, "%s/certs/%s.pem", dir, id);
	snprintf(key, 512, "%s/certs/%s-key.pem", dir, id);
	snprintf(ca, 512, "%s/certs/ca.pem", dir);
	snprintf(data, 512, "%s/%s", dir, id);
	c->node_id = id;
	c->port = 0;
	c->data_dir = data;
	/* Encryption at rest for both nodes' stores (B inherits the environment). */
	c->store_key_file = getenv("SB_KEY_FILE");
	c->tls.cert = cert;
	c->tls.key = key;
	c->tls.ca = ca;
	c->retry.base_delay_ms = 50;
	c->retry.max_delay_ms = 500;
	c->sweep_interval_ms = 3600000;
	/* SB_BATCH and SB_WINDOW override batchSize and the window, for comparisons. */
	if (getenv("SB_BATCH"))
		c->batch_size = (uint32_t)atoi(getenv("SB_BATCH"));
	if (getenv("SB_WINDOW"))
		c->window = (uint32_t)atoi(getenv("SB_WINDOW"));
	if (getenv("SB_BUSY_POLL"))
		c->busy_poll_us = (uint32_t)atoi(getenv("SB_BUSY_POLL"));
}

static ags_pattern *make(const char *prefix, long i)
{
	char json[1024];
	int len = snprintf(
	    json, sizeof(json),
	    "{\"id\":\"%s-%08ld\",\"agentId\":\"test-generator\",\"type\":\"test_execution\","
	    "\"data\":{\"testCase\":\"UserLogin-%ld\",\"result\":\"passed\",\"duration\":%ld,"
	    "\"errors\":[],\"file\":\"src/auth/login.test.ts\",\"assertions\":17,"
	    "\"coverage\":{\"lines\":87.5,\"branches\":71.25,\"functions\":92.1},"
	    "\"env\":{\"node\":\"20.11\",\"os\":\"linux\"}},"
	    "\"metadata\":{\"source\":\"test-generator\",\"tags\":[\"unit\",\"auth\",\"login\"],"
	    "\"priority\":%ld},\"timestamp\":%" PRId64 ",\"version\":1}",
	    prefix, i, i, 100 + i % 900, 1 + i % 10, (int64_t)1761100000000 + i);
	ags_pattern *p = NULL;
	ags_error err;
	if (ags_pattern_parse(json, (size_t)len, NULL, &p, &err) != 0) {
		fprintf(stderr, "parse: %s\n", err.message);
		exit(1);
	}
	return p;
}

/* ---- B, in a child process ---- */

/* Patterns B applied (pattern:received, emitted after the commit): B's main
 * thread sleeps on this instead of polling B's state, which would wake B's
 * loop thousands of times a second and slow what is measured. */
static pthread_mutex_t b_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t b_cv = PTHREAD_COND_INITIALIZER;
static uint64_t b_received, b_want;

static void b_event(ags_node *n, const ags_event *ev, void *ud)
{
	(void)n;
	(void)ud;
	if (ev->type != AGS_EV_PATTERN_RECEIVED)
		return;
	pthread_mutex_lock(&b_mu);
	if (++b_received == b_want)
		pthread_cond_signal(&b_cv);
	pthread_mutex_unlock(&b_mu);
}

static void run_b(uint16_t a_port, uint64_t want, int fd)
{
	char cert[512], key[512], ca[512], data[512];
	ags_node_config c;
	node_cfg(&c, "b", cert, key, ca, data);
	ags_peer_config peer = {"a", "127.0.0.1", a_port, 1};
	c.peers = &peer;
	c.n_peers = 1;
	uint64_t t0 = mono_us();
	ags_node *n = NULL;
	ags_error err;
	ags_node_callbacks cb = {.version = AGS_NODE_CALLBACKS_VERSION, .on_event = b_event};
	b_want = want;
	if (ags_node_new(&c, &cb, NULL, &n, &err) || ags_node_start(n, &err)) {
		fprintf(stderr, "b: %s\n", err.message);
		_exit(1);
	}
	char line[128];
	int len = snprintf(line, sizeof(line), "started %" PRIu64 "\n", t0);
	if (write(fd, line, (size_t)len) < 0)
		_exit(1);
	uint64_t next_mark = want / 10;
	for (;;) {
		/* Until every pattern is in, and then to be sure: the store's count
		 * (also every 10 ms, should events not add up, e.g. duplicates). */
		pthread_mutex_lock(&b_mu);
		if (b_received < want) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 10 * 1000 * 1000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&b_cv, &b_mu, &ts);
		}
		pthread_mutex_unlock(&b_mu);
		ags_node_state *st = NULL;
		if (ags_node_get_state(n, &st) == 0) {
			uint64_t have = st->store.patterns;
			ags_node_state_del(st);
			if (getenv("SB_TRACE") && have >= next_mark && next_mark < want) {
				fprintf(stderr, "b holds %" PRIu64 " at %" PRIu64 "\n", have,
				        mono_us());
				next_mark += want / 10;
			}
			if (have >= want) {
				len = snprintf(line, sizeof(line), "held %" PRIu64 " %" PRIu64 "\n",
				               have, mono_us());
				if (write(fd, line, (size_t)len) < 0)
					_exit(1);
				break;
			}
		}
	}
	/* Stay up until the parent is done with us. */
	pause();
	_exit(0);
}

static pid_t spawn_b(uint16_t a_port, uint64_t want, FILE **from)
{
	int p[2];
	if (pipe(p) < 0)
		exit(1);
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		char port[16], count[32], fd[16];
		snprintf(port, sizeof(port), "%u", (unsigned)a_port);
		snprintf(count, sizeof(count), "%" PRIu64, want);
		snprintf(fd, sizeof(fd), "%d", p[1]);
		execl("/proc/self/exe", "sync_bench", "--b", dir, port, count, fd, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	*from = fdopen(p[0], "r");
	return pid;
}

/* ---- A's events: count acknowledged batches for W2 ---- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static uint64_t completed, connected;

static void on_event(ags_node *n, const ags_event *ev, void *ud)
{
	(void)n;
	(void)ud;
	pthread_mutex_lock(&mu);
	if (ev->type == AGS_EV_SYNC_COMPLETED)
		completed++;
	if (ev->type == AGS_EV_PEER_CONNECTED)
		connected++;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void run_tag(char *data_dir_tag)
{
	snprintf(dir, sizeof(dir), "/tmp/ags-syncbench-%s-%d", data_dir_tag, getpid());
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s", dir, dir);
	if (system(cmd) != 0)
		exit(1);
	char certs[300];
	snprintf(certs, sizeof(certs), "%s/certs", dir);
	const char *ids[] = {"a", "b"};
	ags_error err;
	if (ags_certs_init(certs, ids, 2, AGS_CERTS_ED25519, &err)) {
		fprintf(stderr, "certs: %s\n", err.message);
		exit(1);
	}
}

static void cleanup(void)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup failed\n");
}

static ags_node *start_a(void)
{
	char cert[512], key[512], ca[512], data[512];
	ags_node_config c;
	node_cfg(&c, "a", cert, key, ca, data);
	ags_node_callbacks cb = {AGS_NODE_CALLBACKS_VERSION, on_event, NULL};
	ags_node *n = NULL;
	ags_error err;
	if (ags_node_new(&c, &cb, NULL, &n, &err) || ags_node_start(n, &err)) {
		fprintf(stderr, "a: %s\n", err.message);
		exit(1);
	}
	return n;
}

/* The caller's patterns, parsed before any clock starts (that is the caller's work). */
static ags_pattern **prepare(const char *prefix, long n)
{
	ags_pattern **ps = malloc((size_t)n * sizeof(*ps));
	if (!ps)
		exit(1);
	for (long i = 0; i < n; i++)
		ps[i] = make(prefix, i);
	return ps;
}

static void give(ags_node *a, ags_pattern **ps, long n)
{
	enum { CHUNK = 1000 };
	for (long i = 0; i < n; i += CHUNK) {
		long k = n - i < CHUNK ? n - i : CHUNK;
		ags_error err;
		if (ags_node_sync_patterns(a, (const ags_pattern *const *)ps + i, (size_t)k, NULL,
		                           &err)) {
			fprintf(stderr, "sync_patterns: %s\n", err.message);
			exit(1);
		}
	}
}

static void release(ags_pattern **ps, long n)
{
	for (long i = 0; i < n; i++)
		ags_pattern_del(ps[i]);
	free(ps);
}

static uint64_t read_held(FILE *f)
{
	char line[256];
	while (fgets(line, sizeof(line), f)) {
		unsigned long long have, t;
		if (sscanf(line, "held %llu %llu", &have, &t) == 2)
			return t;
	}
	fprintf(stderr, "b died\n");
	exit(1);
}

/* W1 on a fresh pair; returns A with B (pid *b, pipe *from) still running. */
static ags_node *w1(long n, pid_t *b, FILE **from)
{
	run_tag("w1");
	ags_node *a = start_a();
	*b = spawn_b(ags_node_port(a), (uint64_t)n, from);
	pthread_mutex_lock(&mu);
	while (!connected)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	ags_pattern **ps = prepare("w1", n);
	uint64_t t0 = mono_us();
	give(a, ps, n);
	uint64_t tgive = mono_us();
	if (getenv("SB_TRACE"))
		fprintf(stderr, "start %" PRIu64 " given %" PRIu64 "\n", t0, tgive);
	uint64_t t1 = read_held(*from);
	double secs = (double)(t1 - t0) / 1e6;
	ags_node_state *st = NULL;
	ags_node_get_state(a, &st);
	printf(
	    "sync_bench W1 patterns=%ld seconds=%.3f patterns_per_s=%.0f (api apply took %.3f s) "
	    "wire_ratio=%.3f\n",
	    n, secs, (double)n / secs, (double)(tgive - t0) / 1e6,
	    st ? st->stats.compression_ratio : 0.0);
	ags_node_state_del(st);
	release(ps, n);
	return a;
}

/* W2 on the pair W1 left. */
static void w2(ags_node *a, long w2n)
{
	uint64_t *lat = calloc((size_t)w2n, sizeof(*lat));
	if (!lat)
		exit(1);
	for (long i = 0; i < w2n; i++) {
		ags_pattern *p = make("w2", i);
		pthread_mutex_lock(&mu);
		uint64_t before = completed;
		pthread_mutex_unlock(&mu);
		uint64_t s0 = mono_us();
		ags_node_sync_pattern(a, p, NULL, 0, NULL, NULL);
		pthread_mutex_lock(&mu);
		while (completed == before)
			pthread_cond_wait(&cv, &mu);
		pthread_mutex_unlock(&mu);
		lat[i] = mono_us() - s0;
		ags_pattern_del(p);
	}
	qsort(lat, (size_t)w2n, sizeof(*lat), cmp_u64);
	printf("sync_bench W2 round_trips=%ld p50_us=%" PRIu64 " p99_us=%" PRIu64 "\n", w2n,
	       lat[w2n / 2], lat[(w2n * 99) / 100]);
	free(lat);
}

/* W3: B offline while A takes N. */
static void w3(long n)
{
	run_tag("w3");
	ags_node *a = start_a();
	ags_pattern **ps = prepare("w3", n);
	give(a, ps, n);
	release(ps, n);
	FILE *from = NULL;
	pid_t b = spawn_b(ags_node_port(a), (uint64_t)n, &from);
	char line[256];
	unsigned long long started = 0;
	if (!fgets(line, sizeof(line), from) || sscanf(line, "started %llu", &started) != 1) {
		fprintf(stderr, "b did not start\n");
		exit(1);
	}
	uint64_t t1 = read_held(from);
	double secs = (double)(t1 - started) / 1e6;
	printf("sync_bench W3 patterns=%ld catchup_seconds=%.3f patterns_per_s=%.0f\n", n, secs,
	       (double)n / secs);
	kill(b, SIGKILL);
	waitpid(b, NULL, 0);
	fclose(from);
	ags_node_del(a);
	cleanup();
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 100000;
	long w2n = argc > 2 ? atol(argv[2]) : 2000;
	const char *only = getenv("SB_ONLY");
	signal(SIGPIPE, SIG_IGN);
	if (argc == 6 && strcmp(argv[1], "--b") == 0) {
		/* The child spawn_b starts: node B. */
		snprintf(dir, sizeof(dir), "%s", argv[2]);
		run_b((uint16_t)atoi(argv[3]), strtoull(argv[4], NULL, 10), atoi(argv[5]));
	}
	if (n < 1) {
		fprintf(stderr, "usage: sync_bench [N >= 1] [W2 count]\n");
		return 2;
	}

	if (!only || strcmp(only, "w1") == 0 || strcmp(only, "w2") == 0) {
		pid_t b;
		FILE *from = NULL;
		ags_node *a = w1(n, &b, &from);
		if ((!only || strcmp(only, "w2") == 0) && w2n > 0)
			w2(a, w2n);
		kill(b, SIGKILL);
		waitpid(b, NULL, 0);
		fclose(from);
		ags_node_del(a);
		cleanup();
	}
	if (!only || strcmp(only, "w3") == 0)
		w3(n);
	return 0;
}
