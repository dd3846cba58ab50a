/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agentsync watch: follows GET /v1/events (Server-Sent Events) and prints
 * each event's JSON as one line on stdout, until interrupted. When the
 * stream breaks it reconnects with Last-Event-ID, so nothing is missed; if
 * the daemon no longer has every event since then, it says so (the daemon's
 * `reset` event is printed too).
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* Largest line accepted in the stream (an event carries at most one pattern). */
#define LINE_MAX_BYTES (80u * 1024u * 1024u)

static volatile int stop_flag;

static void on_signal(int sig)
{
	stop_flag = 1;
}

struct watch {
	char *line;
	size_t len, cap;
	char *data;
	size_t dlen, dcap;
	int has_data;
	char event[64];
	char last_id[32];
	unsigned long long count, max_count;
	int connected;
	int broken; /* a line over the limit: the stream is dropped */
};

static void watch_usage(FILE *f)
{
	fprintf(f, "Usage: agentsync watch [--type T[,T...]] [--last-event-id ID] [--count N]\n"
	           "Prints the daemon's events as NDJSON on stdout until interrupted (Ctrl-C).\n"
	           "Event types: peer:connected, peer:disconnected, peer:error,\n"
	           "peer:health:degraded, peer:health:recovered, sync:completed, sync:failed,\n"
	           "pattern:received, pattern:conflict, connection:refused, pattern:stored,\n"
	           "pattern:deleted. Each line has \"id\"; after a disconnection the stream is\n"
	           "resumed from the last id. If the daemon no longer keeps every event since\n"
	           "then, a {\"type\":\"reset\",...} line says so.\n"
	           "  --type T           only these event types (comma list; repeatable)\n"
	           "  --last-event-id ID start after this event id\n"
	           "  --count N          exit after N events\n");
}

static int grow(char **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	if (need > LINE_MAX_BYTES)
		return -1;
	size_t c = *cap ? *cap : 4096;
	while (c < need)
		c *= 2;
	char *b = realloc(*buf, c);
	if (!b)
		return -1;
	*buf = b;
	*cap = c;
	return 0;
}

/* Ends one event (a blank line): prints its data. Returns non-zero to stop. */
static int dispatch(struct watch *w)
{
	if (w->has_data) {
		w->data[w->dlen] = '\0';
		if (strcmp(w->event, "reset") == 0)
			fprintf(stderr,
			        "agentsync: watch: the daemon does not have every event after %s "
			        "any more (see the reset line)\n",
			        w->last_id[0] ? w->last_id : "the start");
		fwrite(w->data, 1, w->dlen, stdout);
		fputc('\n', stdout);
		fflush(stdout);
		w->count++;
	}
	w->has_data = 0;
	w->dlen = 0;
	w->event[0] = '\0';
	return w->max_count && w->count >= w->max_count;
}

static int take_line(struct watch *w, char *l, size_t n)
{
	if (n && l[n - 1] == '\r')
		l[--n] = '\0';
	if (n == 0)
		return dispatch(w);
	if (l[0] == ':')
		return 0;
	char *colon = memchr(l, ':', n);
	size_t klen = colon ? (size_t)(colon - l) : n;
	const char *v = colon ? colon + 1 : l + n;
	if (*v == ' ')
		v++;
	size_t vlen = (size_t)(l + n - v);
	if (klen == 2 && memcmp(l, "id", 2) == 0) {
		snprintf(w->last_id, sizeof(w->last_id), "%.*s", (int)vlen, v);
	} else if (klen == 5 && memcmp(l, "event", 5) == 0) {
		snprintf(w->event, sizeof(w->event), "%.*s", (int)vlen, v);
	} else if (klen == 4 && memcmp(l, "data", 4) == 0) {
		if (grow(&w->data, &w->dcap, w->dlen + vlen + 2) < 0)
			return -1;
		if (w->has_data)
			w->data[w->dlen++] = '\n';
		memcpy(w->data + w->dlen, v, vlen);
		w->dlen += vlen;
		w->has_data = 1;
	}
	return 0;
}

static int sink(void *ud, const char *data, size_t len)
{
	struct watch *w = ud;
	w->connected = 1;
	for (size_t i = 0; i < len; i++) {
		if (data[i] != '\n') {
			if (grow(&w->line, &w->cap, w->len + 2) < 0) {
				w->broken = 1;
				return 1;
			}
			w->line[w->len++] = data[i];
			continue;
		}
		if (grow(&w->line, &w->cap, w->len + 1) < 0) {
			w->broken = 1;
			return 1;
		}
		w->line[w->len] = '\0';
		int rc = take_line(w, w->line, w->len);
		w->len = 0;
		if (rc)
			return rc;
	}
	return 0;
}

static void nap_ms(unsigned ms)
{
	while (ms && !stop_flag) {
		unsigned step = ms < 100 ? ms : 100;
		struct timespec ts = {0, (long)step * 1000000L};
		nanosleep(&ts, NULL);
		ms -= step;
	}
}

/* Appends ",t" (or "t" to an empty list) to types. */
static int append_type(char *types, size_t cap, const char *t)
{
	size_t used = strlen(types);
	int n = snprintf(types + used, cap - used, "%s%s", used ? "," : "", t);
	return n < 0 || (size_t)n >= cap - used ? -1 : 0;
}

int cmd_watch(const struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
	                                     {"type", required_argument, NULL, 't'},
	                                     {"last-event-id", required_argument, NULL, 'l'},
	                                     {"count", required_argument, NULL, 'n'},
	                                     {NULL, 0, NULL, 0}};
	struct watch w = {0};
	char types[1024] = "";
	int opt;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			watch_usage(stdout);
			return EXIT_OK;
		case 't':
			if (append_type(types, sizeof(types), optarg) < 0) {
				fprintf(stderr, "agentsync: watch: too many --type values\n");
				return EXIT_USAGE;
			}
			break;
		case 'l':
			snprintf(w.last_id, sizeof(w.last_id), "%s", optarg);
			break;
		case 'n':
			w.max_count = strtoull(optarg, NULL, 10);
			break;
		default:
			watch_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		watch_usage(stderr);
		return EXIT_USAGE;
	}
	char path[1200] = "/v1/events";
	if (types[0]) {
		char *e = http_escape(types);
		if (!e)
			return EXIT_ERROR;
		snprintf(path, sizeof(path), "/v1/events?type=%s", e);
		free(e);
	}
	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	int rc = EXIT_OK, ever = 0;
	unsigned backoff = 250;
	for (;;) {
		struct http_resp r;
		w.connected = 0;
		w.len = w.dlen = 0;
		w.has_data = 0;
		w.event[0] = '\0';
		rc = http_stream(c, "watch", path, w.last_id[0] ? w.last_id : NULL, sink, &w,
		                 &stop_flag, &r);
		if (r.status && (r.status < 200 || r.status > 299)) {
			rc = http_fail("watch", &r);
			http_resp_free(&r);
			break;
		}
		http_resp_free(&r);
		if (stop_flag || (w.max_count && w.count >= w.max_count)) {
			rc = EXIT_OK;
			break;
		}
		if (w.broken) {
			fprintf(stderr, "agentsync: watch: a line of the stream is over %u bytes\n",
			        LINE_MAX_BYTES);
			rc = EXIT_ERROR;
			break;
		}
		if (w.connected) {
			ever = 1;
			backoff = 250;
		}
		if (!ever && rc == EXIT_UNREACHABLE)
			break;
		fprintf(stderr, "agentsync: watch: disconnected; reconnecting%s%s\n",
		        w.last_id[0] ? " after event " : "", w.last_id);
		nap_ms(backoff);
		backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
		if (stop_flag) {
			rc = EXIT_OK;
			break;
		}
	}
	free(w.line);
	free(w.data);
	return rc;
}
