/* SPDX-License-Identifier: Apache-2.0 */
/* The CLI's HTTP client: libcurl requests to the daemon's local API. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <yyjson.h>

#include "cli.h"

void http_resp_free(struct http_resp *r)
{
	free(r->body);
	r->body = NULL;
	r->len = 0;
}

struct collector {
	struct http_resp *r;
	int over;
};

static int append(struct http_resp *r, const char *p, size_t n)
{
	if (r->len + n > CLI_BODY_MAX)
		return -1;
	char *b = realloc(r->body, r->len + n + 1);
	if (!b)
		return -1;
	memcpy(b + r->len, p, n);
	r->body = b;
	r->len += n;
	r->body[r->len] = '\0';
	return 0;
}

static size_t collect(char *p, size_t sz, size_t n, void *ud)
{
	struct collector *col = ud;
	if (append(col->r, p, sz * n) < 0) {
		col->over = 1;
		return 0;
	}
	return sz * n;
}

static struct curl_slist *auth_headers(const struct cli *c, const char *ctype)
{
	struct curl_slist *h = NULL;
	char line[4200];
	if (c->token) {
		snprintf(line, sizeof(line), "Authorization: Bearer %s", c->token);
		h = curl_slist_append(h, line);
	}
	if (ctype) {
		snprintf(line, sizeof(line), "Content-Type: %s", ctype);
		h = curl_slist_append(h, line);
	}
	return h;
}

/* Maps a libcurl failure to an exit code, printing why. */
static int transfer_failed(const struct cli *c, const char *what, CURLcode rc, const char *errbuf)
{
	const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);
	if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
	    rc == CURLE_OPERATION_TIMEDOUT) {
		fprintf(stderr, "agentsync: %s: cannot reach the daemon at %s: %s\n", what, c->base,
		        detail);
		return EXIT_UNREACHABLE;
	}
	fprintf(stderr, "agentsync: %s: request to %s failed: %s\n", what, c->base, detail);
	return EXIT_ERROR;
}

int http_request(const struct cli *c, const char *what, const char *method, const char *path,
                 const char *ctype, const char *body, size_t len, struct http_resp *r)
{
	memset(r, 0, sizeof(*r));
	CURL *h = curl_easy_init();
	if (!h) {
		fprintf(stderr, "agentsync: %s: cannot start libcurl\n", what);
		return EXIT_ERROR;
	}
	char url[2048], errbuf[CURL_ERROR_SIZE] = "";
	snprintf(url, sizeof(url), "%s%s", c->base, path);
	struct curl_slist *hdr =
	    auth_headers(c, body ? (ctype ? ctype : "application/json") : NULL);
	struct collector col = {r, 0};
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &col);
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	}
	if (strcmp(method, "GET") != 0 && !(body && strcmp(method, "POST") == 0)) {
		if (strcmp(method, "POST") == 0) {
			curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
		} else {
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
		}
	}
	CURLcode rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	if (col.over) {
		fprintf(stderr, "agentsync: %s: the answer is larger than %u bytes\n", what,
		        CLI_BODY_MAX);
		return EXIT_ERROR;
	}
	/* An answer that came while the body was still being sent (e.g. 413) still counts. */
	if (rc != CURLE_OK && r->status == 0)
		return transfer_failed(c, what, rc, errbuf);
	if (!r->body)
		append(r, "", 0);
	return EXIT_OK;
}

struct streamer {
	CURL *h;
	int (*sink)(void *, const char *, size_t);
	void *ud;
	volatile int *stop;
	struct http_resp *r;
	int stopped;
};

static size_t stream_write(char *p, size_t sz, size_t n, void *ud)
{
	struct streamer *s = ud;
	long status = 0;
	curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status > 299) {
		if (s->r->len < 64 * 1024)
			append(s->r, p, sz * n);
		return sz * n;
	}
	if (s->sink(s->ud, p, sz * n) != 0) {
		s->stopped = 1;
		return 0;
	}
	return sz * n;
}

static int stream_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct streamer *s = ud;
	if (s->stop && *s->stop) {
		s->stopped = 1;
		return 1;
	}
	return 0;
}

int http_stream(const struct cli *c, const char *what, const char *path, const char *last_event_id,
                int (*sink)(void *ud, const char *data, size_t len), void *ud, volatile int *stop,
                struct http_resp *r, char *why)
{
	if (why)
		why[0] = '\0';
	memset(r, 0, sizeof(*r));
	CURL *h = curl_easy_init();
	if (!h) {
		fprintf(stderr, "agentsync: %s: cannot start libcurl\n", what);
		return EXIT_ERROR;
	}
	char url[2048], errbuf[CURL_ERROR_SIZE] = "", line[128];
	snprintf(url, sizeof(url), "%s%s", c->base, path);
	struct curl_slist *hdr = auth_headers(c, NULL);
	if (last_event_id) {
		snprintf(line, sizeof(line), "Last-Event-ID: %s", last_event_id);
		hdr = curl_slist_append(hdr, line);
	}
	struct streamer s = {h, sink, ud, stop, r, 0};
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, stream_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, stream_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, &s);
	CURLcode rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	if (!r->body)
		append(r, "", 0);
	if (s.stopped)
		return EXIT_OK;
	const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);
	if (rc != CURLE_OK && r->status == 0 && why) {
		if (snprintf(why, CLI_WHY_MAX, "cannot reach the daemon at %s: %s", c->base,
		             detail) >= CLI_WHY_MAX) {
			/* cut: the start names the daemon, which is what matters */
		}
		return rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
		               rc == CURLE_OPERATION_TIMEDOUT
		           ? EXIT_UNREACHABLE
		           : EXIT_ERROR;
	}
	if (rc != CURLE_OK && r->status == 0)
		return transfer_failed(c, what, rc, errbuf);
	if (rc != CURLE_OK && r->status >= 200 && r->status <= 299) {
		if (why)
			snprintf(why, CLI_WHY_MAX, "the stream broke: %s", detail);
		else
			fprintf(stderr, "agentsync: %s: the stream broke: %s\n", what, detail);
		return EXIT_ERROR;
	}
	if (rc == CURLE_OK && why && r->status >= 200 && r->status <= 299)
		snprintf(why, CLI_WHY_MAX, "the daemon closed the stream");
	return EXIT_OK;
}

char *http_escape(const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0);
	if (!e)
		return NULL;
	char *copy = strdup(e);
	curl_free(e);
	return copy;
}

int http_fail(const char *what, const struct http_resp *r)
{
	yyjson_doc *doc = r->body ? yyjson_read(r->body, r->len, 0) : NULL;
	yyjson_val *root = yyjson_doc_get_root(doc);
	const char *error = yyjson_get_str(yyjson_obj_get(root, "error"));
	const char *field = yyjson_get_str(yyjson_obj_get(root, "field"));
	if (error)
		fprintf(stderr, "agentsync: %s: %s%s%s (HTTP %ld)\n", what, field ? field : "",
		        field && *field ? ": " : "", error, r->status);
	else
		fprintf(stderr, "agentsync: %s: HTTP %ld%s%.200s\n", what, r->status,
		        r->len ? ": " : "", r->body ? r->body : "");
	if (r->status == 401)
		fprintf(stderr, "agentsync: %s: check --token or AGENTSYNC_TOKEN\n", what);
	yyjson_doc_free(doc);
	return r->status == 404 ? EXIT_NOT_FOUND : EXIT_ERROR;
}
