/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agsagent: an agent (include/agentsync/agent.h) in a process of its own,
 * for black-box tests of the federation hub. Prints events and log lines to
 * stdout (one line each, flushed) and takes commands on stdin:
 *
 *   connect                         connect to the hub; "connect ok resumed=R early=E"
 *                                   or "connect error CODE MESSAGE"
 *   sync                            "sync ok pulled=N pushed=N conflicts=N" or "sync error ..."
 *   put N PREFIX                    write N generated patterns (ids PREFIX-0..), one call
 *   putv ID VERSION [VALUE]         write one pattern at a version, data {"value": VALUE}
 *   del ID                          delete a pattern
 *   get ID                          "get ID VERSION VALUE" or "get ID none"
 *   state                           "state {"patterns":N,"seq":N,"digest":"..."}"
 *   stats                           "stats {"lastSyncTime":N,"vectorClock":{...},...}"
 *   connected                       "connected 0|1"
 *   disconnect                      "disconnect ok connected=0|1" (asked right after)
 *   quit                            stop cleanly and exit 0
 *
 * Usage: agsagent --endpoint quic://HOST:PORT --token-file F --data DIR --certs DIR
 *        --cert-name NAME [--hub-id ID] [--timeout-ms N] [--quiet-received]
 * The certificate is DIR/NAME.pem with DIR/NAME-key.pem and DIR/ca.pem.
 */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentsync/agent.h"

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

static void on_event(ags_agent *a, const ags_event *ev, void *ud)
{
	(void)a;
	(void)ud;
	if (quiet_received && ev->type == AGS_EV_PATTERN_RECEIVED)
		return;
	out("event %s peer=%s pattern=%s source=%s error=%s\n", ev->name,
	    ev->peer_id ? ev->peer_id : "-", ev->pattern_id ? ev->pattern_id : "-",
	    ev->source_id ? ev->source_id : "-", ev->error ? ev->error : "-");
}

static void on_log(ags_agent *a, int level, const char *msg, void *ud)
{
	(void)a;
	(void)ud;
	static const char *names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
	out("log %s %s\n", names[level & 3], msg);
}

static char *read_token(const char *path)
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

static int make_pattern(const char *id, int64_t version, const char *value, ags_pattern **p)
{
	char json[1024];
	snprintf(json, sizeof(json),
	         "{\"id\":\"%s\",\"agentId\":\"agent\",\"type\":\"test_execution\","
	         "\"data\":{\"value\":\"%s\"},\"metadata\":{\"source\":\"agsagent\",\"tags\":[]},"
	         "\"timestamp\":1761100000000,\"version\":%" PRId64 "}",
	         id, value, version);
	ags_error err;
	int rv = ags_pattern_parse(json, strlen(json), NULL, p, &err);
	if (rv)
		out("error parse %s: %s %s\n", id, err.field, err.message);
	return rv;
}

static void cmd_put(ags_agent *a, long count, const char *prefix)
{
	long done = 0;
	for (; done < count; done++) {
		char id[128], val[64];
		snprintf(id, sizeof(id), "%s-%ld", prefix, done);
		snprintf(val, sizeof(val), "v%ld", done);
		ags_pattern *p = NULL;
		if (make_pattern(id, 1, val, &p) != 0)
			break;
		ags_error err;
		int rv = ags_agent_put(a, p, NULL, &err);
		ags_pattern_del(p);
		if (rv) {
			out("put error %s\n", err.message);
			return;
		}
	}
	out("put ok %ld\n", done);
}

static void cmd_get(ags_agent *a, const char *id)
{
	ags_pattern *p = NULL;
	if (ags_agent_get(a, id, &p) != 0) {
		out("get %s none\n", id);
		return;
	}
	const char *json = ags_pattern_json(p, NULL);
	const char *v = strstr(json, "\"value\":\"");
	char val[128] = "-";
	if (v) {
		v += 9;
		size_t l = strcspn(v, "\"");
		snprintf(val, sizeof(val), "%.*s", (int)(l < 100 ? l : 100), v);
	}
	out("get %s %" PRId64 " %s\n", id, ags_pattern_version(p), val);
	ags_pattern_del(p);
}

int main(int argc, char **argv)
{
	ags_agent_config cfg;
	ags_agent_config_init(&cfg);
	const char *token_file = NULL, *certs = NULL, *name = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--quiet-received")) {
			quiet_received = 1;
			continue;
		}
		if (!v) {
			fprintf(stderr, "agsagent: %s needs a value\n", a);
			return 2;
		}
		if (!strcmp(a, "--endpoint"))
			cfg.endpoint = v;
		else if (!strcmp(a, "--token-file"))
			token_file = v;
		else if (!strcmp(a, "--data"))
			cfg.data_dir = v;
		else if (!strcmp(a, "--certs"))
			certs = v;
		else if (!strcmp(a, "--cert-name"))
			name = v;
		else if (!strcmp(a, "--hub-id"))
			cfg.hub_id = v;
		else if (!strcmp(a, "--timeout-ms"))
			cfg.timeout_ms = (uint32_t)atoi(v);
		else {
			fprintf(stderr, "agsagent: unknown option %s\n", a);
			return 2;
		}
		i++;
	}
	if (!cfg.endpoint || !token_file || !certs || !name) {
		fprintf(stderr,
		        "agsagent: --endpoint, --token-file, --certs, --cert-name needed\n");
		return 2;
	}
	char cert[1024], key[1024], ca[1024];
	snprintf(cert, sizeof(cert), "%s/%s.pem", certs, name);
	snprintf(key, sizeof(key), "%s/%s-key.pem", certs, name);
	snprintf(ca, sizeof(ca), "%s/ca.pem", certs);
	cfg.cert = cert;
	cfg.key = key;
	cfg.ca = ca;
	char *token = read_token(token_file);
	if (!token) {
		out("fatal cannot read %s\n", token_file);
		return 1;
	}
	cfg.token = token;
	cfg.on_event = on_event;
	cfg.on_log = on_log;
	signal(SIGPIPE, SIG_IGN);

	ags_agent *ag = NULL;
	ags_error err;
	ags_error_clear(&err);
	if (ags_agent_new(&cfg, &ag, &err) != 0) {
		out("fatal %s: %s\n", err.field, err.message);
		free(token);
		return 1;
	}
	out("ready id=%s port=0\n", ags_agent_id(ag));
	char line[1024];
	while (fgets(line, sizeof(line), stdin)) {
		char a[256] = "", b[256] = "", c[256] = "", d[256] = "";
		(void)sscanf(line, "%255s %255s %255s %255s", a, b, c, d);
		ags_error_clear(&err);
		if (!strcmp(a, "connect")) {
			int rv = ags_agent_connect(ag, &err);
			if (rv) {
				out("connect error %s %s\n", ags_strerror(rv), err.message);
			} else {
				ags_agent_sync_stats st;
				ags_agent_get_sync_stats(ag, &st);
				out("connect ok resumed=%d early=%d\n", st.resumed, st.early_data);
				ags_agent_sync_stats_free(&st);
			}
		} else if (!strcmp(a, "sync")) {
			ags_agent_sync_result r;
			int rv = ags_agent_sync(ag, &r, &err);
			if (rv)
				out("sync error %s %s\n", ags_strerror(rv), err.message);
			else
				out("sync ok pulled=%" PRIu64 " pushed=%" PRIu64
				    " conflicts=%" PRIu64 "\n",
				    r.pulled, r.pushed, r.conflicts);
		} else if (!strcmp(a, "put")) {
			cmd_put(ag, atol(b), c[0] ? c : "p");
		} else if (!strcmp(a, "putv")) {
			ags_pattern *p = NULL;
			if (make_pattern(b, atoll(c), d[0] ? d : "x", &p) == 0) {
				ags_apply_result r;
				int rv = ags_agent_put(ag, p, &r, &err);
				out("putv %s %s\n", rv ? "error" : "ok",
				    rv ? err.message : ags_apply_outcome_name(r.outcome));
				ags_pattern_del(p);
			}
		} else if (!strcmp(a, "del")) {
			int rv = ags_agent_delete(ag, b, NULL, &err);
			out("del %s\n", rv ? err.message : "ok");
		} else if (!strcmp(a, "get")) {
			cmd_get(ag, b);
		} else if (!strcmp(a, "state")) {
			uint64_t pats = 0, seq = 0;
			char digest[65] = "";
			ags_agent_store_state(ag, &pats, &seq, digest);
			out("state {\"patterns\":%" PRIu64 ",\"seq\":%" PRIu64
			    ",\"digest\":\"%s\"}\n",
			    pats, seq, digest);
		} else if (!strcmp(a, "stats")) {
			ags_agent_sync_stats st;
			if (ags_agent_get_sync_stats(ag, &st) == 0)
				out("stats {\"lastSyncTime\":%" PRId64
				    ",\"vectorClock\":%s,\"resumed\":%d,\"earlyData\":%d}\n",
				    st.last_sync_time_ms, st.vector_clock_json, st.resumed,
				    st.early_data);
			ags_agent_sync_stats_free(&st);
		} else if (!strcmp(a, "connected")) {
			out("connected %d\n", ags_agent_is_connected(ag));
		} else if (!strcmp(a, "disconnect")) {
			ags_agent_disconnect(ag);
			/* Asked at once: disconnect() returned, so not connected. */
			out("disconnect ok connected=%d\n", ags_agent_is_connected(ag));
		} else if (!strcmp(a, "quit")) {
			break;
		} else if (a[0]) {
			out("unknown command %s\n", a);
		}
	}
	ags_agent_del(ag);
	free(token);
	out("bye\n");
	return 0;
}
