/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agsnode: a node in a process of its own, for black-box tests. It runs one
 * ags_node from command-line options, prints every event and log line to
 * stdout (one line each, flushed), and takes commands on stdin:
 *
 *   put N PREFIX [TYPE [PRIORITY [TAG]]]  write N generated patterns (ids PREFIX-0..N-1),
 *                                         in batches of 1000; prints "put ok N"
 *   putv ID VERSION [TYPE]                write one pattern at a given version
 *   to PEER ID                            write one pattern only for PEER (no relay)
 *   del ID                                delete a pattern
 *   get ID                                print "get ok ID" or "get missing ID"
 *   connect ID HOST PORT                  add a peer
 *   disconnect ID                         remove a peer
 *   state                                 print "state {json}"
 *   quit                                  stop cleanly and exit 0
 *
 * Usage: agsnode --id ID --certs DIR --data DIR [--port P] [--peer ID@HOST:PORT]...
 *        [--batch N] [--window N] [--rate-patterns R] [--rate-bytes R]
 *        [--filter-type T]... [--filter-tag T]... [--allow ID]... [--drop-permille N]
 *        [--no-compression] [--quiet-received] [--idle-ms MS]
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentsync/agentsync.h"
#include "agentsync/node.h"

static int quiet_received;
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&out_mu);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
	pthread_mutex_unlock(&out_mu);
}

static void on_event(ags_node *n, const ags_event *ev, void *ud)
{
	(void)n;
	(void)ud;
	if (quiet_received && ev->type == AGS_EV_PATTERN_RECEIVED)
		return;
	out("event %s peer=%s address=%s pattern=%s source=%s count=%u error=%s tenant=%s\n",
	    ev->name, ev->peer_id ? ev->peer_id : "-", ev->address ? ev->address : "-",
	    ev->pattern_id ? ev->pattern_id : "-", ev->source_id ? ev->source_id : "-",
	    ev->pattern_count, ev->error ? ev->error : "-", ev->tenant ? ev->tenant : "-");
}

static void on_log(ags_node *n, int level, const char *msg, void *ud)
{
	(void)n;
	(void)ud;
	static const char *names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
	out("log %s %s\n", names[level & 3], msg);
}

static int make_pattern(const char *id, int64_t version, const char *type, int priority,
                        const char *tag, ags_pattern **p)
{
	char json[1024];
	char prio[32] = "";
	if (priority > 0)
		snprintf(prio, sizeof(prio), ",\"priority\":%d", priority);
	snprintf(json, sizeof(json),
	         "{\"id\":\"%s\",\"agentId\":\"test-generator\",\"type\":\"%s\","
	         "\"data\":{\"testCase\":\"UserLogin-%s\",\"result\":\"passed\",\"duration\":1234,"
	         "\"errors\":[],\"coverage\":{\"lines\":87.5,\"branches\":71.2}},"
	         "\"metadata\":{\"source\":\"test-generator\",\"tags\":[\"unit\",\"%s\"]%s},"
	         "\"timestamp\":1761100000000,\"version\":%" PRId64 "}",
	         id, type, id, tag, prio, version);
	ags_error err;
	int rv = ags_pattern_parse(json, strlen(json), NULL, p, &err);
	if (rv)
		out("error parse %s: %s %s\n", id, err.field, err.message);
	return rv;
}

static void print_state(ags_node *n)
{
	ags_node_state *st = NULL;
	if (ags_node_get_state(n, &st) != 0) {
		out("state error\n");
		return;
	}
	char peers[8192] = "";
	size_t off = 0;
	for (size_t i = 0; i < st->n_peers && off < sizeof(peers) - 256; i++) {
		ags_peer_state *p = &st->peers[i];
		off += (size_t)snprintf(
		    peers + off, sizeof(peers) - off,
		    "%s\"%s\":{\"connected\":%s,\"syncCount\":%" PRIu64 ",\"errorCount\":%" PRIu64
		    ",\"lag\":%" PRIu64 ",\"ackedSeq\":%" PRIu64 ",\"degraded\":%s}",
		    i ? "," : "", p->id, p->connected ? "true" : "false", p->sync_count,
		    p->error_count, p->lag, p->acked_seq, p->degraded ? "true" : "false");
	}
	out("state {\"running\":%s,\"connections\":%zu,\"patterns\":%" PRIu64 ",\"seq\":%" PRIu64
	    ",\"digest\":\"%s\",\"successfulSyncs\":%" PRIu64 ",\"failedSyncs\":%" PRIu64
	    ",\"compressionRatio\":%.4f,\"bytesTransferred\":%" PRIu64 ",\"peers\":{%s}}\n",
	    st->running ? "true" : "false", st->connections, st->store.patterns, st->store.seq,
	    st->store.digest, st->stats.successful_syncs, st->stats.failed_syncs,
	    st->stats.compression_ratio, st->stats.bytes_transferred, peers);
	ags_node_state_del(st);
}

static void print_hub(ags_node *n)
{
	ags_hub_stats *st = NULL;
	if (ags_node_get_hub_stats(n, &st) != 0) {
		out("hub error\n");
		return;
	}
	char tenants[16384] = "";
	size_t off = 0;
	for (size_t i = 0; i < st->n_tenants && off < sizeof(tenants) - 512; i++) {
		ags_hub_tenant_stats *t = &st->tenants[i];
		off += (size_t)snprintf(tenants + off, sizeof(tenants) - off,
		                        "%s\"%s\":{\"agents\":%zu,\"patterns\":%" PRIu64
		                        ",\"changes\":%" PRIu64 ",\"received\":%" PRIu64
		                        ",\"conflicts\":%" PRIu64 ",\"digest\":\"%s\"}",
		                        i ? "," : "", t->tenant, t->agents_connected, t->patterns,
		                        t->changes, t->changes_received, t->conflicts, t->digest);
	}
	out("hub {\"enabled\":%s,\"agents\":%zu,\"authOk\":%" PRIu64 ",\"authRefused\":%" PRIu64
	    ",\"tenants\":{%s}}\n",
	    st->enabled ? "true" : "false", st->agents_connected, st->auth_ok, st->auth_refused,
	    tenants);
	ags_node_hub_stats_del(st);
}

static char *read_small_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = calloc(1, 16384);
	size_t n = buf ? fread(buf, 1, 16383, f) : 0;
	fclose(f);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	return buf;
}

static void cmd_put(ags_node *n, long count, const char *prefix, const char *type, int prio,
                    const char *tag)
{
	enum { CHUNK = 1000 };
	ags_pattern *ps[CHUNK];
	long done = 0;
	while (done < count) {
		size_t k = 0;
		for (; k < CHUNK && done + (long)k < count; k++) {
			char id[128];
			snprintf(id, sizeof(id), "%s-%ld", prefix, done + (long)k);
			if (make_pattern(id, 1, type, prio, tag, &ps[k]) != 0)
				break;
		}
		ags_error err;
		int rv = ags_node_sync_patterns(n, (const ags_pattern *const *)ps, k, NULL, &err);
		for (size_t i = 0; i < k; i++)
			ags_pattern_del(ps[i]);
		if (rv) {
			out("put error %s\n", err.message);
			return;
		}
		done += (long)k;
	}
	out("put ok %ld\n", done);
}

int main(int argc, char **argv)
{
	ags_node_config cfg;
	ags_node_config_init(&cfg);
	ags_peer_config peers[32];
	char *peer_bufs[32];
	size_t np = 0;
	const char *types[16], *tags[16], *allow[32], *algs[4];
	size_t nt = 0, ng = 0, na = 0, nalg = 0;
	char *up_token = NULL;
	const char *certs = NULL;
	cfg.port = 0;
	cfg.retry.base_delay_ms = 200;
	cfg.retry.max_delay_ms = 2000;
	cfg.health_interval_ms = 1000;
	cfg.idle_timeout_ms = 10000;
	cfg.keepalive_ms = 1000;
	cfg.sweep_interval_ms = 1000;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v && strcmp(a, "--no-compression") && strcmp(a, "--quiet-received") &&
		    strcmp(a, "--hub")) {
			fprintf(stderr, "agsnode: %s needs a value\n", a);
			return 2;
		}
		if (!strcmp(a, "--id"))
			cfg.node_id = v;
		else if (!strcmp(a, "--port"))
			cfg.port = (uint16_t)atoi(v);
		else if (!strcmp(a, "--data"))
			cfg.data_dir = v;
		else if (!strcmp(a, "--certs"))
			certs = v;
		else if (!strcmp(a, "--batch"))
			cfg.batch_size = (uint32_t)atoi(v);
		else if (!strcmp(a, "--window"))
			cfg.window = (uint32_t)atoi(v);
		else if (!strcmp(a, "--rate-patterns"))
			cfg.rate_patterns_per_s = atof(v);
		else if (!strcmp(a, "--rate-bytes"))
			cfg.rate_bytes_per_s = atof(v);
		else if (!strcmp(a, "--idle-ms"))
			cfg.idle_timeout_ms = (uint32_t)atoi(v);
		else if (!strcmp(a, "--drop-permille"))
			cfg.test_drop_permille = (unsigned)atoi(v);
		else if (!strcmp(a, "--filter-type") && nt < 16)
			types[nt++] = v;
		else if (!strcmp(a, "--filter-tag") && ng < 16)
			tags[ng++] = v;
		else if (!strcmp(a, "--allow") && na < 32)
			allow[na++] = v;
		else if (!strcmp(a, "--tenant"))
			cfg.tenant = v;
		else if (!strcmp(a, "--jwt-secret-file"))
			cfg.hub.hs256_secret_file = v;
		else if (!strcmp(a, "--jwt-rs-key"))
			cfg.hub.rs256_public_key_file = v;
		else if (!strcmp(a, "--jwt-es-key"))
			cfg.hub.es256_public_key_file = v;
		else if (!strcmp(a, "--jwt-alg") && nalg < 4)
			algs[nalg++] = v;
		else if (!strcmp(a, "--issuer"))
			cfg.hub.issuer = v;
		else if (!strcmp(a, "--audience"))
			cfg.hub.audience = v;
		else if (!strcmp(a, "--max-agents"))
			cfg.hub.max_agents = (uint32_t)atoi(v);
		else if (!strcmp(a, "--upstream"))
			cfg.hub.upstream.endpoint = v;
		else if (!strcmp(a, "--hub-id"))
			cfg.hub.upstream.hub_id = v;
		else if (!strcmp(a, "--upstream-token-file")) {
			up_token = read_small_file(v);
			cfg.hub.upstream.token = up_token;
		} else if (!strcmp(a, "--hub")) {
			cfg.hub.enabled = 1;
			i--;
		} else if (!strcmp(a, "--no-compression")) {
			cfg.compression = 0;
			i--;
		} else if (!strcmp(a, "--quiet-received")) {
			quiet_received = 1;
			i--;
		} else if (!strcmp(a, "--peer") && np < 32) {
			char *b = strdup(v);
			char *at = strchr(b, '@'), *colon = strrchr(b, ':');
			if (!at || !colon || colon < at) {
				fprintf(stderr, "agsnode: --peer wants ID@HOST:PORT\n");
				return 2;
			}
			*at = *colon = '\0';
			peer_bufs[np] = b;
			peers[np] = (ags_peer_config){b, at + 1, (uint16_t)atoi(colon + 1), 1};
			np++;
		} else {
			fprintf(stderr, "agsnode: unknown option %s\n", a);
			return 2;
		}
		i++;
	}
	if (!cfg.node_id || !certs || !cfg.data_dir) {
		fprintf(stderr, "agsnode: --id, --certs and --data are required\n");
		return 2;
	}
	char cert[1024], key[1024], ca[1024];
	snprintf(cert, sizeof(cert), "%s/%s.pem", certs, cfg.node_id);
	snprintf(key, sizeof(key), "%s/%s-key.pem", certs, cfg.node_id);
	snprintf(ca, sizeof(ca), "%s/ca.pem", certs);
	cfg.tls.cert = cert;
	cfg.tls.key = key;
	cfg.tls.ca = ca;
	cfg.peers = peers;
	cfg.n_peers = np;
	cfg.filter_types = types;
	cfg.n_filter_types = nt;
	cfg.filter_tags = tags;
	cfg.n_filter_tags = ng;
	cfg.allowed_ids = allow;
	cfg.n_allowed_ids = na;
	cfg.hub.algorithms = algs;
	cfg.hub.n_algorithms = nalg;
	signal(SIGPIPE, SIG_IGN);

	ags_node_callbacks cb = {AGS_NODE_CALLBACKS_VERSION, on_event, on_log};
	ags_node *n = NULL;
	ags_error err;
	if (ags_node_new(&cfg, &cb, NULL, &n, &err) != 0 || ags_node_start(n, &err) != 0) {
		out("fatal %s: %s\n", err.field, err.message);
		return 1;
	}
	out("ready id=%s port=%u\n", cfg.node_id, ags_node_port(n));

	char line[1024];
	while (fgets(line, sizeof(line), stdin)) {
		char a[256] = "", b[256] = "", c[256] = "", d[256] = "", e[256] = "";
		int k = sscanf(line, "%255s %255s %255s %255s %255s", a, b, c, d, e);
		(void)k;
		if (!strcmp(a, "put")) {
			cmd_put(n, atol(b), c[0] ? c : "p", d[0] ? d : "test_execution",
			        e[0] ? atoi(e) : 0, "auth");
		} else if (!strcmp(a, "get")) {
			ags_pattern *p = NULL;
			int rv = ags_node_get(n, b, &p);
			out("get %s %s\n", rv == 0 ? "ok" : "missing", b);
			ags_pattern_del(p);
		} else if (!strcmp(a, "putv")) {
			ags_pattern *p = NULL;
			if (make_pattern(b, atoll(c), d[0] ? d : "test_execution", 0, "auth", &p) ==
			    0) {
				ags_apply_result r;
				int rv = ags_node_sync_pattern(n, p, NULL, 0, &r, &err);
				out("putv %s %s\n", rv ? "error" : "ok",
				    rv ? err.message : ags_apply_outcome_name(r.outcome));
				ags_pattern_del(p);
			}
		} else if (!strcmp(a, "to")) {
			ags_pattern *p = NULL;
			if (make_pattern(c, 1, "test_execution", 0, "auth", &p) == 0) {
				const char *ids[1] = {b};
				int rv = ags_node_sync_pattern(n, p, ids, 1, NULL, &err);
				out("to %s\n", rv ? err.message : "ok");
				ags_pattern_del(p);
			}
		} else if (!strcmp(a, "del")) {
			int rv = ags_node_delete(n, b, NULL, &err);
			out("del %s\n", rv ? err.message : "ok");
		} else if (!strcmp(a, "connect")) {
			int rv = ags_node_connect_peer(n, c, (uint16_t)atoi(d), b);
			out("connect %s\n", rv ? ags_strerror(rv) : "ok");
		} else if (!strcmp(a, "disconnect")) {
			int rv = ags_node_disconnect_peer(n, b);
			out("disconnect %s\n", rv ? ags_strerror(rv) : "ok");
		} else if (!strcmp(a, "state")) {
			print_state(n);
		} else if (!strcmp(a, "hub")) {
			print_hub(n);
		} else if (!strcmp(a, "quit")) {
			break;
		} else if (a[0]) {
			out("unknown command %s\n", a);
		}
	}
	ags_node_del(n);
	for (size_t i = 0; i < np; i++)
		free(peer_bufs[i]);
	free(up_token);
	out("bye\n");
	return 0;
}
