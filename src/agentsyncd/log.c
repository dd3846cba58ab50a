/* SPDX-License-Identifier: Apache-2.0 */
/* agentsyncd's log lines, as text or JSON, on stderr. */
#include <pthread.h>
#include <stdarg.h>
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

/* A text value, quoted when it would not read back as one token. */
static void text_value(FILE *f, const char *v)
{
	int quote = *v == '\0';
	for (const char *p = v; *p && !quote; p++)
		if (*p == ' ' || *p == '"' || *p == '=' || (unsigned char)*p < 0x20)
			quote = 1;
	if (!quote) {
		fputs(v, f);
		return;
	}
	fputc('"', f);
	for (const char *p = v; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if ((unsigned char)*p < 0x20)
			fprintf(f, "\\x%02x", (unsigned char)*p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
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
			yyjson_mut_obj_add_strcpy(d, o, "msg", msg);
		for (size_t i = 0; i < n; i++)
			if (kv[2 * i + 1])
				yyjson_mut_obj_add_strcpy(d, o, kv[2 * i], kv[2 * i + 1]);
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
		if (msg)
			fprintf(f, " %s", msg);
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

void dlog_event(const ags_event *ev)
{
	int level = AGS_LOG_INFO;
	switch (ev->type) {
	case AGS_EV_PEER_ERROR:
	case AGS_EV_SYNC_FAILED:
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
