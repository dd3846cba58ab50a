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
#include <unistd.h>

#include <yyjson.h>

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
	int text;   /* --format text: one line for a person per event */
};

static void watch_usage(FILE *f)
{
	fprintf(f, "Usage: agentsync watch [--type T[,T...]] [--last-event-id ID] [--count N]\n"
	           "                       [--format text|json]\n"
	           "Prints the daemon's events on stdout until interrupted (Ctrl-C).\n"
	           "Event types: peer:connected, peer:disconnected, peer:error,\n"
	           "peer:health:degraded, peer:health:recovered, sync:completed, sync:failed,\n"
	           "pattern:received, pattern:conflict, connection:refused, pattern:stored,\n"
	           "pattern:deleted. After a disconnection the stream is resumed from the last\n"
	           "event id (one line on stderr says so). If the daemon no longer keeps every\n"
	           "event since then, a reset event says so (reason behind: further behind than\n"
	           "the daemon keeps; unknown: an id this daemon did not give, e.g. after a\n"
	           "restart).\n"
	           "  --type T           only these event types (comma list; repeatable)\n"
	           "  --last-event-id ID start after this event id\n"
	           "  --count N          exit after N events\n"
	           "  --format F         text: one line per event for a person (time, type,\n"
	           "                     peer, pattern, ...), the default when stdout is a\n"
	           "                     terminal; json: the event's JSON (with its \"id\"), one\n"
	           "                     per line (NDJSON), the default otherwise\n"
	           "Exit status: 0 interrupted or --count reached, 1 error, 2 usage, 3 daemon\n"
	           "unreachable at the start.\n");
}

/* Prints one event as a line for a person: "HH:MM:SS.mmm TYPE details". */
static void print_text(const char *json, size_t len)
{
	yyjson_doc *doc = yyjson_read(json, len, 0);
	yyjson_val *o = yyjson_doc_get_root(doc);
	if (!yyjson_is_obj(o)) {
		fwrite(json, 1, len, stdout);
		fputc('\n', stdout);
		yyjson_doc_free(doc);
		return;
	}
	char when[32] = "";
	yyjson_val *t = yyjson_obj_get(o, "time");
	if (yyjson_is_int(t)) {
		int64_t ms = yyjson_get_sint(t);
		time_t secs = (time_t)(ms / 1000);
		struct tm tm;
		localtime_r(&secs, &tm);
		snprintf(when, sizeof(when), "%02d:%02d:%02d.%03d ", tm.tm_hour, tm.tm_min,
		         tm.tm_sec, (int)(ms % 1000));
	}
	const char *type = yyjson_get_str(yyjson_obj_get(o, "type"));
	printf("%s%-22s", when, type ? type : "?");
	yyjson_val *pat = yyjson_obj_get(o, "pattern");
	const char *pid = yyjson_get_str(yyjson_obj_get(o, "patternId"));
	if (!pid)
		pid = yyjson_get_str(yyjson_obj_get(pat, "id"));
	if (pid)
		printf(" %s", pid);
	const char *ptype = yyjson_get_str(yyjson_obj_get(pat, "type"));
	if (ptype)
		printf(" (%s)", ptype);
	static const struct {
		const char *key, *label;
	} strs[] = {{"sourceId", "from"}, {"peerId", "peer"},   {"address", "at"},
	            {"tenant", "tenant"}, {"reason", "reason"}, {"error", "error"},
	            {"message", NULL}};
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		const char *v = yyjson_get_str(yyjson_obj_get(o, strs[i].key));
		if (v && strs[i].label)
			printf(" %s %s", strs[i].label, v);
		else if (v)
			printf(": %s", v);
	}
	yyjson_val *n = yyjson_obj_get(o, "patternCount");
	if (yyjson_is_uint(n))
		printf(" %llu pattern%s", (unsigned long long)yyjson_get_uint(n),
		       yyjson_get_uint(n) == 1 ? "" : "s");
	yyjson_val *lat = yyjson_obj_get(o, "latency");
	if (yyjson_is_num(lat))
		printf(" in %.1f ms", yyjson_get_num(lat));
	fputc('\n', stdout);
	yyjson_doc_free(doc);
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
		if (w->text) {
			print_text(w->data, w->dlen);
		} else {
			fwrite(w->data, 1, w->dlen, stdout);
			fputc('\n', stdout);
		}
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
	                                     {"format", required_argument, NULL, 'f'},
	                                     {NULL, 0, NULL, 0}};
	struct watch w = {0};
	w.text = isatty(1);
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
		case 'f':
			if (strcmp(optarg, "text") == 0) {
				w.text = 1;
			} else if (strcmp(optarg, "json") == 0) {
				w.text = 0;
			} else {
				fprintf(stderr,
				        "agentsync: watch: --format must be text or json, got "
				        "\"%s\"\n",
				        optarg);
				return EXIT_USAGE;
			}
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
	char why[CLI_WHY_MAX];
	for (;;) {
		struct http_resp r;
		w.connected = 0;
		w.len = w.dlen = 0;
		w.has_data = 0;
		w.event[0] = '\0';
		rc = http_stream(c, "watch", path, w.last_id[0] ? w.last_id : NULL, sink, &w,
		                 &stop_flag, &r, why);
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
		if (!ever && rc == EXIT_UNREACHABLE) {
			fprintf(stderr, "agentsync: watch: %s\n", why);
			break;
		}
		/* One line per reconnection attempt: why, and from where it resumes. */
		fprintf(stderr, "agentsync: watch: %s; reconnecting in %u ms%s%s\n",
		        why[0] ? why : "disconnected", backoff, w.last_id[0] ? " after event " : "",
		        w.last_id);
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
