/* SPDX-License-Identifier: Apache-2.0 */
/* agentsyncd's log lines, as text or JSON, on stderr. */
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <yyjson.h>

#include "config.h"
#include "log.h"

static int log_format = AGS_LOG_FORMAT_TEXT;
static int log_level = AGS_LOG_INFO;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

void dlog_setup(int format, int level)
{
	pthread_mutex_lock(&log_mu);
	log_format = format;
	log_level = level;
	pthread_mutex_unlock(&log_mu);
}

int dlog_enabled(int level)
{
	pthread_mutex_lock(&log_mu);
	int on = level <= log_level;
	pthread_mutex_unlock(&log_mu);
	return on;
}

static void timestamp(char out[48])
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 48 - n, ".%03uZ", (unsigned)(ts.tv_nsec / 1000000) % 1000u);
}

static const char *level_lower(int level)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	return level >= 0 && level < 4 ? names[level] : "info";
}

/* Writes one whole line to stderr; line[len] (the NUL, or spare room) becomes the newline. */
static void put_line(char *line, size_t len)
{
	line[len++] = '\n';
	pthread_mutex_lock(&log_mu);
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(2, line + off, len - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	pthread_mutex_unlock(&log_mu);
}

/*
 * The length of the UTF-8 sequence at p (1-4) with its code point in *cp, or
 * 0 when the bytes there are not valid UTF-8 (overlong, surrogate, cut).
 */
static size_t utf8_seq(const unsigned char *p, uint32_t *cp)
{
	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	}
	size_t n = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;
	if (n == 0 || p[0] > 0xf4)
		return 0;
	uint32_t c = p[0] & (0x7f >> n);
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (p[i] & 0x3f);
	}
	static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
	if (c < min[n] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

/*
 * Code points that change how a line reads (C0 and C1 controls, DEL, line
 * and paragraph separators, bidirectional overrides and isolates, BOM).
 */
static int layout_cp(uint32_t c)
{
	return c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) || c == 0x2028 || c == 0x2029 ||
	       (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069) || c == 0xfeff;
}

/*
 * Writes s to a text line with every byte that could forge or hide a line
 * escaped as \xNN (invalid UTF-8 too), and backslashes doubled (so an
 * escape always reads as one); in quotes, '"' as \".
 */
static void put_text(FILE *f, const char *s, int in_quotes)
{
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		uint32_t cp = 0;
		size_t n = utf8_seq(p, &cp);
		if (n == 0 || layout_cp(cp)) {
			for (size_t i = 0; i < (n ? n : 1); i++)
				fprintf(f, "\\x%02x", p[i]);
			p += n ? n : 1;
		} else if (*p == '\\' || (in_quotes && *p == '"')) {
			fputc('\\', f);
			fputc(*p++, f);
		} else {
			fwrite(p, 1, n, f);
			p += n;
		}
	}
}

/* A text value, quoted when it would not read back as one plain token. */
static void text_value(FILE *f, const char *v)
{
	int quote = *v == '\0';
	for (const unsigned char *p = (const unsigned char *)v; *p && !quote; p++)
		if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p >= 0x7f)
			quote = 1;
	if (!quote) {
		fputs(v, f);
		return;
	}
	fputc('"', f);
	put_text(f, v, 1);
	fputc('"', f);
}

/*
 * JSON strings must be valid UTF-8 (yyjson refuses to write others, which
 * would lose the line): a copy with each invalid byte spelled \xNN, or NULL
 * when s is valid already (or out of memory: the line then goes without it).
 */
static char *json_clean(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	uint32_t cp;
	size_t bad = 0, len = 0;
	for (size_t n; p[len]; len += n ? n : 1)
		if ((n = utf8_seq(p + len, &cp)) == 0)
			bad++;
	if (!bad)
		return NULL;
	char *out = malloc(len + 3 * bad + 1), *w = out;
	if (!out)
		return NULL;
	for (size_t i = 0, n; i < len; i += n ? n : 1) {
		if ((n = utf8_seq(p + i, &cp)) == 0) {
			snprintf(w, 5, "\\x%02x", p[i]);
			w += 4;
		} else {
			memcpy(w, p + i, n);
			w += n;
		}
	}
	*w = '\0';
	return out;
}

/* Adds key: value to a JSON log line, made valid UTF-8 first. */
static void json_add(yyjson_mut_doc *d, yyjson_mut_val *o, const char *key, const char *v)
{
	char *clean = json_clean(v);
	yyjson_mut_obj_add_strcpy(d, o, key, clean ? clean : v);
	free(clean);
}

static void emit(int level, const char *event, const char *msg, const char *const *kv, size_t n)
{
	if (!dlog_enabled(level))
		return;
	char ts[48];
	timestamp(ts);
	pthread_mutex_lock(&log_mu);
	int fmt = log_format;
	pthread_mutex_unlock(&log_mu);
	char *line = NULL;
	size_t len = 0;
	if (fmt == AGS_LOG_FORMAT_JSON) {
		yyjson_mut_doc *d = yyjson_mut_doc_new(NULL);
		yyjson_mut_val *o = d ? yyjson_mut_obj(d) : NULL;
		if (!o) {
			yyjson_mut_doc_free(d);
			return;
		}
		yyjson_mut_doc_set_root(d, o);
		yyjson_mut_obj_add_strcpy(d, o, "time", ts);
		yyjson_mut_obj_add_str(d, o, "level", level_lower(level));
		yyjson_mut_obj_add_strcpy(d, o, "event", event);
		if (msg)
			json_add(d, o, "msg", msg);
		for (size_t i = 0; i < n; i++)
			if (kv[2 * i + 1])
				json_add(d, o, kv[2 * i], kv[2 * i + 1]);
		char *s = yyjson_mut_write(d, 0, &len);
		yyjson_mut_doc_free(d);
		if (!s)
			return;
		line = malloc(len + 2);
		if (line)
			memcpy(line, s, len);
		free(s);
		if (!line)
			return;
	} else {
		FILE *f = open_memstream(&line, &len);
		if (!f)
			return;
		fprintf(f, "%s %s %s", ts, ags_config_log_level_name(level), event);
		if (msg) {
			fputc(' ', f);
			put_text(f, msg, 0);
		}
		for (size_t i = 0; i < n; i++) {
			if (!kv[2 * i + 1])
				continue;
			fprintf(f, " %s=", kv[2 * i]);
			text_value(f, kv[2 * i + 1]);
		}
		/* The stream's NUL terminator makes room for put_line's newline. */
		if (fclose(f) != 0) {
			free(line);
			return;
		}
	}
	put_line(line, len);
	free(line);
}

void dlog(int level, const char *event, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	emit(level, event, msg, NULL, 0);
}

void dlog_kv(int level, const char *event, const char *const *kv, size_t n)
{
	emit(level, event, NULL, kv, n);
}

/* Refusal lines (connection:refused, connection:timeout): a few per window, then a count. */
#define REFUSAL_LINES     5
#define REFUSAL_WINDOW_MS 10000u

#define REFUSAL_KINDS 16

/* Lines per reason text in the current window (more kinds share the last). Under log_mu. */
static struct {
	uint64_t start_ms, held;
	uint32_t hash[REFUSAL_KINDS];
	unsigned lines[REFUSAL_KINDS];
	size_t kinds;
} refusals;

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The lines held back in a window that is over (then restarted), else 0. Under log_mu. */
static uint64_t refusals_over(uint64_t now)
{
	if (now - refusals.start_ms < REFUSAL_WINDOW_MS)
		return 0;
	uint64_t held = refusals.held;
	refusals.held = 0;
	refusals.kinds = 0;
	refusals.start_ms = now;
	return held;
}

static void say_held(uint64_t held)
{
	if (held)
		dlog(AGS_LOG_WARN, "connection:refused",
		     "%llu more refusals and timeouts in the last %u s were not logged",
		     (unsigned long long)held, REFUSAL_WINDOW_MS / 1000);
}

void dlog_flush(void)
{
	pthread_mutex_lock(&log_mu);
	uint64_t held = refusals.held ? refusals_over(mono_ms()) : 0;
	pthread_mutex_unlock(&log_mu);
	say_held(held);
}

/*
 * Whether a refusal line with this reason may be written now (5 per reason per 10 s); says
 * first what an ended window held back.
 */
static int refusal_line_ok(const char *reason)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)(reason ? reason : ""); *p; p++)
		h = (h ^ *p) * 16777619u;
	pthread_mutex_lock(&log_mu);
	uint64_t held = refusals_over(mono_ms());
	size_t i = 0;
	while (i < refusals.kinds && refusals.hash[i] != h)
		i++;
	if (i == refusals.kinds) {
		if (refusals.kinds == REFUSAL_KINDS) {
			i = REFUSAL_KINDS - 1;
		} else {
			refusals.hash[refusals.kinds++] = h;
			refusals.lines[i] = 0;
		}
	}
	int ok = refusals.lines[i] < REFUSAL_LINES;
	if (ok)
		refusals.lines[i]++;
	else
		refusals.held++;
	pthread_mutex_unlock(&log_mu);
	say_held(held);
	return ok;
}

void dlog_event(const ags_event *ev)
{
	int level = AGS_LOG_INFO;
	switch (ev->type) {
	case AGS_EV_PEER_ERROR:
	case AGS_EV_SYNC_FAILED:
	case AGS_EV_SYNC_REJECTED:
	case AGS_EV_STORE_ROLLBACK:
	case AGS_EV_CONNECTION_REFUSED:
	case AGS_EV_CONNECTION_TIMEOUT:
	case AGS_EV_PEER_HEALTH_DEGRADED:
		level = AGS_LOG_WARN;
		break;
	case AGS_EV_PATTERN_RECEIVED:
	case AGS_EV_SYNC_COMPLETED:
		level = AGS_LOG_DEBUG; /* one per pattern or batch: too many for info */
		break;
	default:
		break;
	}
	if (!dlog_enabled(level))
		return;
	if ((ev->type == AGS_EV_CONNECTION_REFUSED || ev->type == AGS_EV_CONNECTION_TIMEOUT) &&
	    !refusal_line_ok(ev->error))
		return;
	char count[24] = "", latency[32] = "";
	if (ev->type == AGS_EV_SYNC_COMPLETED) {
		snprintf(count, sizeof(count), "%u", ev->pattern_count);
		snprintf(latency, sizeof(latency), "%.3fms", ev->latency_ms);
	}
	const char *pattern = ev->pattern_id;
	if (!pattern && ev->pattern)
		pattern = ags_pattern_id(ev->pattern);
	const char *kv[] = {
	    "peer",    ev->peer_id,
	    "address", ev->address,
	    "pattern", pattern,
	    "source",  ev->source_id,
	    "count",   count[0] ? count : NULL,
	    "latency", latency[0] ? latency : NULL,
	    "error",   ev->error,
	    "state",   ev->state,
	    "tenant",  ev->tenant,
	};
	const char *name = ev->name ? ev->name : ags_event_name(ev->type);
	dlog_kv(level, name ? name : "event", kv, sizeof(kv) / sizeof(kv[0]) / 2);
}
