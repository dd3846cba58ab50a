/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agentsync put [FILE|-]: sends patterns (one JSON object, a JSON array, or
 * NDJSON) to POST /v1/patterns. Large input goes in NDJSON chunks under the
 * daemon's body limit (smaller chunks are tried when the daemon answers 413),
 * with a progress bar on stderr when it is a terminal.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yyjson.h>

#include "cli.h"

#define CHUNK_DEFAULT (1024u * 1024u)

struct rec {
	const char *p;
	size_t len;
	char *own; /* set when p was written by us (array elements) */
};

struct put {
	const struct cli *c;
	const char *name; /* the input's name, for messages */
	struct rec *v;
	size_t n, cap;
	/* What the daemon did with each record: stored (inserted, updated,
	 * conflict_won), unchanged (duplicate, stale, conflict_lost), rejected. */
	size_t stored, duplicate, stale, conflict_lost, rejected;
	size_t chunk;
	int progress;
	int single; /* one document, sent as it is (it may span lines) */
	size_t total_bytes, sent_bytes;
};

static void put_usage(FILE *f)
{
	fprintf(f,
	        "Usage: agentsync put [FILE|-]\n"
	        "Stores patterns in the daemon, which syncs them to its peers.\n"
	        "Input (FILE, or standard input when FILE is - or absent): one pattern object,\n"
	        "a JSON array of them, or NDJSON (one per line).\n"
	        "Prints one line per rejected record, then\n"
	        "  \"stored N, unchanged M (D duplicate, S stale, C conflict lost), rejected R\":\n"
	        "stored: inserted or updated (or won a conflict); unchanged: the store already\n"
	        "held it (duplicate), held a newer version (stale) or a concurrent version won\n"
	        "(conflict lost); rejected: invalid, nothing stored.\n"
	        "  --chunk-bytes N   largest request body sent at once (default 1 MiB)\n"
	        "Exit status: 0 every record stored or already held (duplicate), 6 none rejected\n"
	        "but some not stored (stale or conflict lost), 5 some rejected, 1 error,\n"
	        "3 daemon unreachable.\n");
}

int cli_read_input(const char *what, const char *file, char **out, size_t *len)
{
	FILE *f = (!file || strcmp(file, "-") == 0) ? stdin : fopen(file, "rb");
	if (!f) {
		fprintf(stderr, "agentsync: %s: cannot open %s: %m\n", what, file);
		return EXIT_ERROR;
	}
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	int oom = buf == NULL;
	while (!oom) {
		if (n + 1 == cap) {
			char *b = realloc(buf, cap * 2);
			if (!b) {
				oom = 1;
				break;
			}
			buf = b;
			cap *= 2;
		}
		size_t r = fread(buf + n, 1, cap - n - 1, f);
		if (r == 0)
			break;
		n += r;
	}
	int bad = oom || ferror(f);
	if (f != stdin)
		fclose(f);
	if (bad) {
		free(buf);
		fprintf(stderr, "agentsync: %s: cannot read %s\n", what,
		        file ? file : "standard input");
		return EXIT_ERROR;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return EXIT_OK;
}

static int add_rec(struct put *p, const char *s, size_t len, char *own)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 1024;
		struct rec *v = realloc(p->v, cap * sizeof(*v));
		if (!v)
			return -1;
		p->v = v;
		p->cap = cap;
	}
	p->v[p->n++] = (struct rec){s, len, own};
	p->total_bytes += len + 1;
	return 0;
}

static int is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* Splits NDJSON into records, one per non-blank line (as the daemon counts them). */
static int split_lines(struct put *p, const char *buf, size_t len)
{
	size_t i = 0;
	while (i < len) {
		size_t s = i;
		while (i < len && buf[i] != '\n')
			i++;
		size_t e = i++;
		while (s < e && is_space(buf[s]))
			s++;
		while (e > s && is_space(buf[e - 1]))
			e--;
		if (s < e && add_rec(p, buf + s, e - s, NULL) < 0)
			return -1;
	}
	return 0;
}

static void show_progress(struct put *p, size_t done)
{
	if (!p->progress)
		return;
	int width = 30;
	double f = p->total_bytes ? (double)p->sent_bytes / (double)p->total_bytes : 1;
	int fill = (int)(f * width);
	fprintf(stderr, "\r[%.*s%*s] %3d%% %zu/%zu records", fill, "##############################",
	        width - fill, "", (int)(f * 100), done, p->n);
	fflush(stderr);
}

/* Reads one answer of POST /v1/patterns; `base` is the index of its first record. */
static int take_answer(struct put *p, const struct http_resp *r, size_t base)
{
	yyjson_doc *doc = yyjson_read(r->body, r->len, 0);
	yyjson_val *root = yyjson_doc_get_root(doc);
	yyjson_val *acc = yyjson_obj_get(root, "accepted");
	yyjson_val *rej = yyjson_obj_get(root, "rejected");
	if (!yyjson_is_arr(acc) || !yyjson_is_arr(rej)) {
		yyjson_doc_free(doc);
		return -1;
	}
	yyjson_val *outcomes = yyjson_obj_get(root, "outcomes");
	size_t i, imax;
	yyjson_val *e;
	if (yyjson_arr_size(outcomes) != yyjson_arr_size(acc)) {
		yyjson_doc_free(doc);
		return -1;
	}
	yyjson_arr_foreach(outcomes, i, imax, e)
	{
		const char *o = yyjson_get_str(e);
		if (!o)
			o = "";
		if (strcmp(o, "duplicate") == 0)
			p->duplicate++;
		else if (strcmp(o, "stale") == 0)
			p->stale++;
		else if (strcmp(o, "conflict_lost") == 0)
			p->conflict_lost++;
		else
			p->stored++; /* inserted, updated, conflict_won */
	}
	yyjson_arr_foreach(rej, i, imax, e)
	{
		const char *id = yyjson_get_str(yyjson_obj_get(e, "id"));
		const char *field = yyjson_get_str(yyjson_obj_get(e, "field"));
		const char *error = yyjson_get_str(yyjson_obj_get(e, "error"));
		if (p->progress)
			fputs("\r\033[K", stderr);
		printf("rejected #%llu%s%s: %s%s%s\n",
		       (unsigned long long)base + yyjson_get_uint(yyjson_obj_get(e, "index")),
		       id ? " id=" : "", id ? id : "", field && *field ? field : "",
		       field && *field ? ": " : "", error ? error : "rejected");
		p->rejected++;
	}
	/* The daemon details at most its first rejections: rejectedCount has them all. */
	yyjson_val *count = yyjson_obj_get(root, "rejectedCount");
	size_t listed = yyjson_arr_size(rej);
	if (yyjson_is_uint(count) && yyjson_get_uint(count) > listed) {
		uint64_t more = yyjson_get_uint(count) - listed;
		if (p->progress)
			fputs("\r\033[K", stderr);
		printf("rejected: %llu more records of this request (not listed by the daemon)\n",
		       (unsigned long long)more);
		p->rejected += (size_t)more;
	}
	yyjson_doc_free(doc);
	return 0;
}

/* Sends records [from, from + count) as one NDJSON body. */
static int send_chunk(struct put *p, size_t from, size_t count, struct http_resp *r)
{
	size_t len = 0;
	for (size_t i = from; i < from + count; i++)
		len += p->v[i].len + 1;
	char *body = malloc(len + 1), *w = body;
	if (!body) {
		fprintf(stderr, "agentsync: put: out of memory\n");
		return EXIT_ERROR;
	}
	for (size_t i = from; i < from + count; i++) {
		memcpy(w, p->v[i].p, p->v[i].len);
		w += p->v[i].len;
		*w++ = '\n';
	}
	int rc =
	    http_request(p->c, "put", "POST", "/v1/patterns",
	                 p->single ? "application/json" : "application/x-ndjson", body, len, r);
	free(body);
	return rc;
}

static int send_records(struct put *p)
{
	size_t i = 0;
	while (i < p->n) {
		size_t count = 0, bytes = 0;
		while (i + count < p->n &&
		       (count == 0 || bytes + p->v[i + count].len + 1 <= p->chunk)) {
			bytes += p->v[i + count].len + 1;
			count++;
		}
		struct http_resp r;
		int rc = send_chunk(p, i, count, &r);
		if (rc != EXIT_OK)
			return rc;
		if (r.status == 413 && count > 1) {
			/* Over the daemon's body limit: try again in smaller pieces. */
			p->chunk = bytes / 4 ? bytes / 4 : 1;
			http_resp_free(&r);
			continue;
		}
		if (r.status == 413) {
			if (p->progress)
				fputs("\r\033[K", stderr);
			printf(
			    "rejected #%zu: larger than the daemon's request limit (%zu bytes)\n",
			    i, p->v[i].len);
			p->rejected++;
		} else if (take_answer(p, &r, i) < 0) {
			if (p->progress)
				fputs("\n", stderr);
			rc = http_fail("put", &r);
			http_resp_free(&r);
			return rc;
		}
		http_resp_free(&r);
		i += count;
		p->sent_bytes += bytes;
		show_progress(p, i);
	}
	if (p->progress)
		fputs("\r\033[K", stderr);
	return EXIT_OK;
}

int cmd_put(const struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
	                                     {"chunk-bytes", required_argument, NULL, 'c'},
	                                     {NULL, 0, NULL, 0}};
	struct put p = {.c = c, .chunk = CHUNK_DEFAULT};
	int opt;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		if (opt == 'h') {
			put_usage(stdout);
			return EXIT_OK;
		}
		if (opt == 'c') {
			char *end;
			unsigned long long v = strtoull(optarg, &end, 10);
			if (*end || v == 0) {
				fprintf(stderr, "agentsync: put: --chunk-bytes must be a positive "
				                "number\n");
				return EXIT_USAGE;
			}
			p.chunk = (size_t)v;
			continue;
		}
		put_usage(stderr);
		return EXIT_USAGE;
	}
	if (argc - optind > 1) {
		put_usage(stderr);
		return EXIT_USAGE;
	}
	const char *file = optind < argc ? argv[optind] : NULL;
	p.name = file && strcmp(file, "-") != 0 ? file : "standard input";
	char *buf = NULL;
	size_t len = 0;
	int rc = cli_read_input("put", file, &buf, &len);
	if (rc != EXIT_OK)
		return rc;
	size_t s = 0;
	while (s < len && is_space(buf[s]))
		s++;
	if (s == len) {
		fprintf(stderr, "agentsync: put: %s is empty\n", p.name);
		free(buf);
		return EXIT_ERROR;
	}
	yyjson_read_err rerr;
	yyjson_doc *doc = yyjson_read_opts(buf, len, 0, NULL, &rerr);
	yyjson_val *root = yyjson_doc_get_root(doc);
	if (yyjson_is_arr(root)) {
		size_t i, imax;
		yyjson_val *e;
		yyjson_arr_foreach(root, i, imax, e)
		{
			size_t n = 0;
			char *one = yyjson_val_write(e, 0, &n);
			if (!one || add_rec(&p, one, n, one) < 0) {
				free(one);
				rc = EXIT_ERROR;
				fprintf(stderr, "agentsync: put: out of memory\n");
				break;
			}
		}
	} else if (root) {
		/* One object (or another value, which the daemon refuses): sent as it is. */
		p.single = 1;
		if (add_rec(&p, buf + s, len - s, NULL) < 0)
			rc = EXIT_ERROR;
	} else {
		/* NDJSON is several documents: its first line parses on its own. */
		size_t e = s;
		while (e < len && buf[e] != '\n')
			e++;
		yyjson_doc *first = yyjson_read(buf + s, e - s, 0);
		if (first) {
			if (split_lines(&p, buf, len) < 0)
				rc = EXIT_ERROR;
		} else {
			fprintf(stderr, "agentsync: put: %s: malformed JSON at byte %zu: %s\n",
			        p.name, rerr.pos, rerr.msg);
			rc = EXIT_ERROR;
		}
		yyjson_doc_free(first);
	}
	yyjson_doc_free(doc);
	if (rc == EXIT_OK) {
		p.progress = isatty(2) && p.total_bytes > p.chunk;
		rc = send_records(&p);
	}
	if (rc == EXIT_OK) {
		printf("stored %zu, unchanged %zu (%zu duplicate, %zu stale, %zu conflict lost), "
		       "rejected %zu\n",
		       p.stored, p.duplicate + p.stale + p.conflict_lost, p.duplicate, p.stale,
		       p.conflict_lost, p.rejected);
		if (p.rejected)
			rc = EXIT_REJECTED;
		else if (p.stale || p.conflict_lost)
			rc = EXIT_NOT_STORED;
	}
	for (size_t i = 0; i < p.n; i++)
		free(p.v[i].own);
	free(p.v);
	free(buf);
	return rc;
}
