/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent commands (seed 004's ephemeral agent, over include/agentsync/agent.h):
 *
 *   agentsync sync --hub quic://HOST:PORT ...   connect, sync once, report, leave
 *   agentsync agent sync ...                    the same
 *   agentsync agent put ... [FILE|-]            local writes, pushed on the next sync
 *   agentsync agent get --data DIR ID           a pattern from the agent's store
 *   agentsync agent status --data DIR           the agent's store and vector clock
 *
 * No daemon is involved: the command is the agent. Its store, cursors and
 * TLS resumption state live in --data, so a later run continues where the
 * last one stopped (and resumes the TLS session with 0-RTT).
 */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <yyjson.h>

#include "agentsync/agent.h"
#include "agentsync/agentsync.h"
#include "cli.h"

/* Conflict lines kept for the report; more are counted, not listed. */
#define CONFLICTS_LISTED 50

/* The agent's settings, from the command line (and AGENTSYNC_CERT/KEY/CA). */
struct agent_opts {
	const char *what; /* "sync", "agent put", ... for messages */
	const char *endpoint, *token, *token_file, *data, *cert, *key, *ca, *hub_id;
	uint32_t timeout_ms;
	int json, verbose;
	char *token_buf; /* the token read from token_file */
	/* Whether cert, key and ca came from $AGENTSYNC_CERT/KEY/CA (for messages). */
	int cert_env, key_env, ca_env;
};

/* Conflicts reported by the agent's events (on its network thread). */
struct conflicts {
	pthread_mutex_t mu;
	char *lines[CONFLICTS_LISTED];
	size_t n, dropped;
};

static const char agent_opts_help[] =
    "  --hub quic://HOST:PORT  the hub (port default 4433)\n"
    "  --token T               the agent's JWT (sub = agent id, tenant = tenant)\n"
    "  --token-file F          ... or a file holding it\n"
    "  --data DIR              the agent's store and session (default ./agentsync-agent)\n"
    "  --cert C --key K --ca CA  TLS client certificate, its key, and the CA of the hub\n"
    "                          (default $AGENTSYNC_CERT, $AGENTSYNC_KEY, $AGENTSYNC_CA)\n"
    "  --hub-id ID             the id the hub's certificate must name (default: any the\n"
    "                          CA vouches for; the first one seen is remembered)\n"
    "  --timeout-ms N          longest wait for the hub (default 30000)\n"
    "  --verbose               the agent's log lines on stderr\n";

static const char sync_hub_help_head[] =
    "Usage: agentsync sync --hub quic://HOST:PORT (--token T | --token-file F)\n"
    "                      [--data DIR] [--cert C --key K --ca CA] [--hub-id ID]\n"
    "                      [--timeout-ms N] [--json]\n"
    "Runs one sync of an agent with a federation hub (seed 004): connect (mutual TLS,\n"
    "AUTH with the token), push every local change the hub lacks, pull every change\n"
    "of the tenant the agent lacks, then leave. Prints pulled, pushed, conflicts,\n"
    "duration, the agent's vector clock, and whether the TLS session was resumed\n"
    "(and 0-RTT data accepted). The agent's state stays in --data for the next run.\n";

static const char sync_hub_help_tail[] =
    "  --json                  one JSON line instead of the text report\n"
    "Exit status: 0 synced, 1 failed (the reason, e.g. the hub's refusal, is printed),\n"
    "2 usage.\n";

static const char agent_help[] =
    "Usage: agentsync agent put [OPTIONS] [FILE|-]\n"
    "       agentsync agent sync [OPTIONS] [--json]     (= agentsync sync --hub ...)\n"
    "       agentsync agent get --data DIR ID\n"
    "       agentsync agent status --data DIR [--json]\n"
    "An ephemeral agent of a federation hub, its state in --data (no daemon needed).\n"
    "  put     writes patterns (a JSON object, an array, or NDJSON) into the agent's\n"
    "          store; the next sync pushes them. Needs the token (its sub is the\n"
    "          writer in the vector clocks) and the TLS files; --hub is optional.\n"
    "  sync    connects, pushes, pulls, reports (see agentsync sync --help)\n"
    "  get     prints one pattern of the agent's store as JSON\n"
    "  status  the agent's store: patterns, sequence, digest, vector clock\n"
    "Options of put and sync:\n";

static const char agent_put_help[] =
    "Usage: agentsync agent put [OPTIONS] [FILE|-]\n"
    "Writes patterns (a JSON object, an array, or NDJSON; FILE, or standard input\n"
    "when FILE is - or absent) into the agent's store in --data; the next\n"
    "`agentsync agent sync` pushes them. Needs the token (its sub is the writer in\n"
    "the vector clocks) and the TLS files; --hub is optional. Prints\n"
    "\"accepted N, rejected M (K changed the store; ...)\" and one line per rejected\n"
    "record. No daemon is involved.\n"
    "Options:\n";

static const char agent_put_help_tail[] =
    "Exit status: 0 all accepted, 5 some rejected, 1 error, 2 usage.\n";

static const char agent_get_help[] =
    "Usage: agentsync agent get [--data DIR] ID\n"
    "Prints the pattern ID of the agent's store as JSON (local: no hub, no daemon).\n"
    "  --data DIR   the agent's store and session (default ./agentsync-agent)\n"
    "Exit status: 0 found, 4 no such pattern, 1 error (e.g. no agent store in DIR),\n"
    "2 usage.\n";

static const char agent_status_help[] =
    "Usage: agentsync agent status [--data DIR] [--json]\n"
    "The agent's store (local: no hub, no daemon): patterns, sequence, digest and its\n"
    "vector clock.\n"
    "  --data DIR   the agent's store and session (default ./agentsync-agent)\n"
    "  --json       one JSON object instead of the text report\n"
    "Exit status: 0 ok, 1 error (e.g. no agent store in DIR), 2 usage.\n";

static int usage_error(const char *what, const char *msg)
{
	fprintf(stderr, "agentsync: %s: %s (see --help)\n", what, msg);
	return EXIT_USAGE;
}

/* Reads a token file: at most 16 KiB, trailing white space dropped. */
static char *read_token_file(const char *what, const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "agentsync: %s: cannot read %s: %m\n", what, path);
		return NULL;
	}
	char *buf = calloc(1, 16385);
	size_t n = buf ? fread(buf, 1, 16384, f) : 0;
	int bad = ferror(f) || !feof(f);
	fclose(f);
	if (!buf || bad) {
		fprintf(stderr, "agentsync: %s: cannot read %s (or it is over 16 KiB)\n", what,
		        path);
		free(buf);
		return NULL;
	}
	while (n > 0 && strchr(" \t\r\n", buf[n - 1]))
		buf[--n] = '\0';
	if (n == 0) {
		fprintf(stderr, "agentsync: %s: %s holds no token\n", what, path);
		free(buf);
		return NULL;
	}
	return buf;
}

enum { O_HUB = 256, O_TOKEN, O_TOKEN_FILE, O_DATA, O_CERT, O_KEY, O_CA, O_HUB_ID, O_TIMEOUT };

/*
 * Parses the agent options of argv (getopt_long from argv[0], the command
 * name); leaves optind at the first operand. Returns EXIT_OK, or the exit
 * code to return (help printed: *done set).
 */
static int parse_agent_opts(int argc, char **argv, struct agent_opts *o, const char *help_head,
                            const char *help_tail, int *done)
{
	static const struct option opts[] = {
	    {"hub", required_argument, NULL, O_HUB},
	    {"token", required_argument, NULL, O_TOKEN},
	    {"token-file", required_argument, NULL, O_TOKEN_FILE},
	    {"data", required_argument, NULL, O_DATA},
	    {"cert", required_argument, NULL, O_CERT},
	    {"key", required_argument, NULL, O_KEY},
	    {"ca", required_argument, NULL, O_CA},
	    {"hub-id", required_argument, NULL, O_HUB_ID},
	    {"timeout-ms", required_argument, NULL, O_TIMEOUT},
	    {"json", no_argument, NULL, 'j'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	*done = 0;
	o->cert = getenv("AGENTSYNC_CERT");
	o->key = getenv("AGENTSYNC_KEY");
	o->ca = getenv("AGENTSYNC_CA");
	o->cert_env = o->cert != NULL;
	o->key_env = o->key != NULL;
	o->ca_env = o->ca != NULL;
	int opt;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "+hv", opts, NULL)) != -1) {
		char *end;
		unsigned long v;
		switch (opt) {
		case O_HUB:
			o->endpoint = optarg;
			break;
		case O_TOKEN:
			o->token = optarg;
			break;
		case O_TOKEN_FILE:
			o->token_file = optarg;
			break;
		case O_DATA:
			o->data = optarg;
			break;
		case O_CERT:
			o->cert = optarg;
			o->cert_env = 0;
			break;
		case O_KEY:
			o->key = optarg;
			o->key_env = 0;
			break;
		case O_CA:
			o->ca = optarg;
			o->ca_env = 0;
			break;
		case O_HUB_ID:
			o->hub_id = optarg;
			break;
		case O_TIMEOUT:
			v = strtoul(optarg, &end, 10);
			if (*end || v == 0 || v > 3600000)
				return usage_error(o->what,
				                   "--timeout-ms must be from 1 to 3600000");
			o->timeout_ms = (uint32_t)v;
			break;
		case 'j':
			o->json = 1;
			break;
		case 'v':
			o->verbose = 1;
			break;
		case 'h':
			fputs(help_head, stdout);
			fputs(agent_opts_help, stdout);
			fputs(help_tail, stdout);
			*done = 1;
			return EXIT_OK;
		default:
			fputs(help_head, stderr);
			fputs(agent_opts_help, stderr);
			fputs(help_tail, stderr);
			return EXIT_USAGE;
		}
	}
	return EXIT_OK;
}

/* Checks what every agent needs and reads the token file. */
static int agent_opts_ready(struct agent_opts *o, int need_endpoint)
{
	if (need_endpoint && !o->endpoint)
		return usage_error(o->what, "--hub quic://HOST:PORT is required");
	if (!o->token == !o->token_file)
		return usage_error(o->what, "give --token or --token-file (one of them)");
	const struct {
		const char *value, *option, *var;
		int env;
	} files[] = {{o->cert, "--cert", "AGENTSYNC_CERT", o->cert_env},
	             {o->key, "--key", "AGENTSYNC_KEY", o->key_env},
	             {o->ca, "--ca", "AGENTSYNC_CA", o->ca_env}};
	for (size_t i = 0; i < 3; i++) {
		if (files[i].value && !files[i].value[0]) {
			char msg[160];
			if (files[i].env)
				snprintf(msg, sizeof(msg),
				         "$%s is set but empty: give %s FILE, or set $%s to a file",
				         files[i].var, files[i].option, files[i].var);
			else
				snprintf(msg, sizeof(msg), "%s is empty: give it a file",
				         files[i].option);
			return usage_error(o->what, msg);
		}
	}
	if (!o->cert || !o->key || !o->ca)
		return usage_error(o->what,
		                   "--cert, --key and --ca are required (or $AGENTSYNC_CERT, "
		                   "$AGENTSYNC_KEY, $AGENTSYNC_CA)");
	if (o->token_file) {
		o->token_buf = read_token_file(o->what, o->token_file);
		if (!o->token_buf)
			return EXIT_ERROR;
		o->token = o->token_buf;
	}
	return EXIT_OK;
}

static void on_event(ags_agent *a, const ags_event *ev, void *ud)
{
	struct conflicts *c = ud;
	if (ev->type != AGS_EV_PATTERN_CONFLICT || !c)
		return;
	char *line = NULL;
	if (asprintf(&line, "%s: %s", ev->pattern_id ? ev->pattern_id : "?",
	             ev->error ? ev->error : "conflict") < 0)
		line = NULL;
	pthread_mutex_lock(&c->mu);
	if (line && c->n < CONFLICTS_LISTED)
		c->lines[c->n++] = line;
	else {
		c->dropped++;
		free(line);
	}
	pthread_mutex_unlock(&c->mu);
}

static void on_log(ags_agent *a, int level, const char *message, void *ud)
{
	static const char *const names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
	fprintf(stderr, "agent %s %s\n", names[level & 3], message);
}

/* Prints a failure of the agent API as "agentsync: WHAT: DOING: ERROR: MESSAGE". */
static void agent_fail(const struct agent_opts *o, const char *doing, int rc, const ags_error *err)
{
	/* The node names its TLS inputs by config key: say which option or variable it was. */
	const char *field = err->field;
	if (strcmp(field, "tls.cert") == 0)
		field = o->cert_env ? "--cert ($AGENTSYNC_CERT)" : "--cert";
	else if (strcmp(field, "tls.key") == 0)
		field = o->key_env ? "--key ($AGENTSYNC_KEY)" : "--key";
	else if (strcmp(field, "tls.ca") == 0)
		field = o->ca_env ? "--ca ($AGENTSYNC_CA)" : "--ca";
	fprintf(stderr, "agentsync: %s: %s: %s%s%s%s%s\n", o->what, doing, ags_strerror(rc),
	        err->message[0] ? ": " : "", err->message, field[0] ? " at " : "", field);
}

/* Makes the agent (nothing is sent yet). */
static int make_agent(struct agent_opts *o, struct conflicts *c, ags_agent **out)
{
	ags_agent_config cfg;
	ags_agent_config_init(&cfg);
	/* put needs no hub: any well-formed endpoint will do, nothing is dialled. */
	cfg.endpoint = o->endpoint ? o->endpoint : "quic://127.0.0.1:4433";
	cfg.token = o->token;
	if (o->data)
		cfg.data_dir = o->data;
	cfg.cert = o->cert;
	cfg.key = o->key;
	cfg.ca = o->ca;
	cfg.hub_id = o->hub_id;
	if (o->timeout_ms)
		cfg.timeout_ms = o->timeout_ms;
	cfg.on_event = on_event;
	cfg.on_log = o->verbose ? on_log : NULL;
	cfg.user_data = c;
	ags_error err;
	ags_error_clear(&err);
	int rc = ags_agent_new(&cfg, out, &err);
	if (rc < 0) {
		agent_fail(o, "cannot start the agent", rc, &err);
		return EXIT_ERROR;
	}
	return EXIT_OK;
}

/* ------------------------------------------------------------------------ */
/* sync                                                                     */
/* ------------------------------------------------------------------------ */

static void print_json_result(const struct agent_opts *o, ags_agent *a,
                              const ags_agent_sync_result *r, const ags_agent_sync_stats *st,
                              const struct conflicts *c)
{
	yyjson_mut_doc *d = yyjson_mut_doc_new(NULL);
	yyjson_mut_val *root = d ? yyjson_mut_obj(d) : NULL;
	if (!root) {
		yyjson_mut_doc_free(d);
		return;
	}
	yyjson_mut_doc_set_root(d, root);
	yyjson_mut_obj_add_bool(d, root, "ok", true);
	yyjson_mut_obj_add_strcpy(d, root, "agent", ags_agent_id(a));
	yyjson_mut_obj_add_strcpy(d, root, "hub", o->endpoint);
	yyjson_mut_obj_add_uint(d, root, "pulled", r->pulled);
	yyjson_mut_obj_add_uint(d, root, "pushed", r->pushed);
	yyjson_mut_obj_add_uint(d, root, "conflicts", r->conflicts);
	yyjson_mut_obj_add_real(d, root, "durationMs", r->duration_ms);
	yyjson_doc *vc = st->vector_clock_json
	                     ? yyjson_read(st->vector_clock_json, strlen(st->vector_clock_json), 0)
	                     : NULL;
	yyjson_mut_obj_add_val(d, root, "vectorClock",
	                       vc ? yyjson_val_mut_copy(d, yyjson_doc_get_root(vc))
	                          : yyjson_mut_obj(d));
	yyjson_doc_free(vc);
	yyjson_mut_obj_add_sint(d, root, "lastSyncTime", st->last_sync_time_ms);
	yyjson_mut_obj_add_bool(d, root, "resumed", st->resumed != 0);
	yyjson_mut_obj_add_bool(d, root, "earlyData", st->early_data != 0);
	yyjson_mut_val *ids = yyjson_mut_arr(d);
	for (size_t i = 0; ids && i < c->n; i++)
		yyjson_mut_arr_add_strcpy(d, ids, c->lines[i]);
	if (ids)
		yyjson_mut_obj_add_val(d, root, "conflictReports", ids);
	char *s = yyjson_mut_write(d, 0, NULL);
	yyjson_mut_doc_free(d);
	if (s)
		printf("%s\n", s);
	free(s);
}

static void print_json_error(const struct agent_opts *o, const char *doing, int rc,
                             const ags_error *err)
{
	yyjson_mut_doc *d = yyjson_mut_doc_new(NULL);
	yyjson_mut_val *root = d ? yyjson_mut_obj(d) : NULL;
	if (!root) {
		yyjson_mut_doc_free(d);
		return;
	}
	yyjson_mut_doc_set_root(d, root);
	yyjson_mut_obj_add_bool(d, root, "ok", false);
	yyjson_mut_obj_add_str(d, root, "hub", o->endpoint);
	yyjson_mut_obj_add_str(d, root, "stage", doing);
	yyjson_mut_obj_add_str(d, root, "error", ags_strerror(rc));
	yyjson_mut_obj_add_strcpy(d, root, "message", err->message);
	if (err->field[0])
		yyjson_mut_obj_add_strcpy(d, root, "field", err->field);
	char *s = yyjson_mut_write(d, 0, NULL);
	yyjson_mut_doc_free(d);
	if (s)
		printf("%s\n", s);
	free(s);
}

static const char *session_text(const ags_agent_sync_stats *st)
{
	if (!st->resumed)
		return "new (full handshake)";
	return st->early_data ? "resumed, 0-RTT data accepted"
	                      : "resumed (0-RTT data not accepted)";
}

/* connect, sync, report. */
static int run_sync(struct agent_opts *o)
{
	struct conflicts c = {.mu = PTHREAD_MUTEX_INITIALIZER};
	ags_agent *a = NULL;
	int rc = make_agent(o, &c, &a);
	if (rc != EXIT_OK)
		return rc;
	ags_error err;
	ags_error_clear(&err);
	const char *doing = "connect";
	ags_agent_sync_result r = {0};
	int arc = ags_agent_connect(a, &err);
	if (arc == 0) {
		doing = "sync";
		arc = ags_agent_sync(a, &r, &err);
	}
	ags_agent_sync_stats st = {0};
	if (arc == 0 && ags_agent_get_sync_stats(a, &st) < 0) {
		doing = "read the sync statistics";
		arc = AGS_ERR_NOMEM;
		ags_error_clear(&err);
	}
	if (arc < 0) {
		char what[128];
		snprintf(what, sizeof(what), "%s with %s", doing, o->endpoint);
		agent_fail(o, what, arc, &err);
		if (o->json)
			print_json_error(o, doing, arc, &err);
		rc = EXIT_ERROR;
	} else if (o->json) {
		print_json_result(o, a, &r, &st, &c);
	} else {
		printf("agent       %s\n", ags_agent_id(a));
		printf("hub         %s\n", o->endpoint);
		printf("session     %s\n", session_text(&st));
		printf("pulled      %" PRIu64 "\n", r.pulled);
		printf("pushed      %" PRIu64 "\n", r.pushed);
		printf("conflicts   %" PRIu64 "\n", r.conflicts);
		for (size_t i = 0; i < c.n; i++)
			printf("  conflict  %s\n", c.lines[i]);
		if (c.dropped)
			printf("  ... and %zu more conflict reports\n", c.dropped);
		printf("duration    %.2f ms\n", r.duration_ms);
		printf("vectorClock %s\n", st.vector_clock_json ? st.vector_clock_json : "{}");
	}
	ags_agent_sync_stats_free(&st);
	/* Disconnects, saving the TLS session for the next run. */
	ags_agent_del(a);
	for (size_t i = 0; i < c.n; i++)
		free(c.lines[i]);
	return rc;
}

int cmd_hub_sync(int argc, char **argv)
{
	struct agent_opts o = {.what = "sync"};
	int done,
	    rc = parse_agent_opts(argc, argv, &o, sync_hub_help_head, sync_hub_help_tail, &done);
	if (rc != EXIT_OK || done)
		return rc;
	if (optind < argc)
		return usage_error(o.what, "unexpected argument");
	rc = agent_opts_ready(&o, 1);
	if (rc == EXIT_OK)
		rc = run_sync(&o);
	free(o.token_buf);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* put                                                                      */
/* ------------------------------------------------------------------------ */

struct put_count {
	size_t accepted, rejected, changed;
};

/* Parses one record and writes it through the agent. */
static void put_one(ags_agent *a, const char *json, size_t len, size_t index, struct put_count *pc)
{
	ags_pattern *p = NULL;
	ags_error err;
	ags_error_clear(&err);
	ags_apply_result res = {0};
	int rc = ags_pattern_parse(json, len, NULL, &p, &err);
	if (rc == 0)
		rc = ags_agent_put(a, p, &res, &err);
	if (rc < 0) {
		printf("rejected #%zu%s%s: %s%s%s\n", index, p ? " id=" : "",
		       p ? ags_pattern_id(p) : "", err.field, err.field[0] ? ": " : "",
		       err.message[0] ? err.message : ags_strerror(rc));
		pc->rejected++;
	} else {
		pc->accepted++;
		pc->changed += res.outcome == AGS_APPLY_INSERTED ||
		               res.outcome == AGS_APPLY_UPDATED ||
		               res.outcome == AGS_APPLY_CONFLICT_WON;
	}
	ags_pattern_del(p);
}

/* Writes every record of buf (an object, an array, or NDJSON). */
static int put_all(ags_agent *a, const char *name, const char *buf, size_t len,
                   struct put_count *pc)
{
	size_t s = 0;
	while (s < len && strchr(" \t\r\n", buf[s]))
		s++;
	if (s == len) {
		fprintf(stderr, "agentsync: agent put: %s is empty\n", name);
		return EXIT_ERROR;
	}
	yyjson_read_err rerr;
	yyjson_doc *doc = yyjson_read_opts((char *)(uintptr_t)buf, len, 0, NULL, &rerr);
	yyjson_val *root = yyjson_doc_get_root(doc);
	int rc = EXIT_OK;
	if (yyjson_is_arr(root)) {
		size_t i, imax;
		yyjson_val *e;
		yyjson_arr_foreach(root, i, imax, e)
		{
			size_t n = 0;
			char *one = yyjson_val_write(e, 0, &n);
			if (!one) {
				fprintf(stderr, "agentsync: agent put: out of memory\n");
				rc = EXIT_ERROR;
				break;
			}
			put_one(a, one, n, i, pc);
			free(one);
		}
	} else if (root) {
		put_one(a, buf + s, len - s, 0, pc);
	} else {
		/* NDJSON: one record per non-blank line. */
		size_t i = 0, index = 0;
		while (i < len) {
			size_t b = i;
			while (i < len && buf[i] != '\n')
				i++;
			size_t e = i++;
			while (b < e && strchr(" \t\r", buf[b]))
				b++;
			while (e > b && strchr(" \t\r", buf[e - 1]))
				e--;
			if (b < e)
				put_one(a, buf + b, e - b, index++, pc);
		}
	}
	yyjson_doc_free(doc);
	return rc;
}

static int agent_put(int argc, char **argv)
{
	struct agent_opts o = {.what = "agent put"};
	int done, rc = parse_agent_opts(argc, argv, &o, agent_put_help, agent_put_help_tail, &done);
	if (rc != EXIT_OK || done)
		return rc;
	if (argc - optind > 1)
		return usage_error(o.what, "at most one FILE");
	const char *file = optind < argc ? argv[optind] : NULL;
	rc = agent_opts_ready(&o, 0);
	char *buf = NULL;
	size_t len = 0;
	if (rc == EXIT_OK)
		rc = cli_read_input("agent put", file, &buf, &len);
	ags_agent *a = NULL;
	if (rc == EXIT_OK)
		rc = make_agent(&o, NULL, &a);
	struct put_count pc = {0};
	if (rc == EXIT_OK)
		rc = put_all(a, file && strcmp(file, "-") != 0 ? file : "standard input", buf, len,
		             &pc);
	if (rc == EXIT_OK) {
		printf("accepted %zu, rejected %zu (%zu changed the store; pushed on the next "
		       "sync)\n",
		       pc.accepted, pc.rejected, pc.changed);
		if (pc.rejected)
			rc = EXIT_REJECTED;
	}
	ags_agent_del(a);
	free(buf);
	free(o.token_buf);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* get, status: read the agent's store directly                             */
/* ------------------------------------------------------------------------ */

/* Opens DIR/store.db, refusing to create one where there is no agent. */
static int open_agent_store(const char *what, const char *dir, ags_store **out)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/store.db", dir ? dir : "./agentsync-agent");
	struct stat st;
	if (stat(path, &st) < 0) {
		fprintf(stderr, "agentsync: %s: no agent store at %s: %m\n", what, path);
		return EXIT_ERROR;
	}
	ags_error err;
	ags_error_clear(&err);
	int rc = ags_store_open(path, NULL, out, &err);
	if (rc < 0) {
		fprintf(stderr, "agentsync: %s: cannot open %s: %s: %s\n", what, path,
		        ags_strerror(rc), err.message);
		return EXIT_ERROR;
	}
	return EXIT_OK;
}

/* Parses --data DIR and --json for get and status; the rest are operands. */
static int local_opts(int argc, char **argv, const char *help, const char **data, int *json,
                      int *done)
{
	static const struct option opts[] = {{"data", required_argument, NULL, 'd'},
	                                     {"json", no_argument, NULL, 'j'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	int opt;
	*done = 0;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		if (opt == 'd') {
			*data = optarg;
		} else if (opt == 'j' && json) {
			*json = 1;
		} else if (opt == 'h') {
			fputs(help, stdout);
			*done = 1;
			return EXIT_OK;
		} else {
			fputs(help, stderr);
			return EXIT_USAGE;
		}
	}
	return EXIT_OK;
}

static int agent_get(int argc, char **argv)
{
	const char *data = NULL;
	int done, rc = local_opts(argc, argv, agent_get_help, &data, NULL, &done);
	if (rc != EXIT_OK || done)
		return rc;
	if (argc - optind != 1)
		return usage_error("agent get", "one ID is required");
	ags_store *s = NULL;
	rc = open_agent_store("agent get", data, &s);
	if (rc != EXIT_OK)
		return rc;
	ags_pattern *p = NULL;
	int grc = ags_store_get(s, argv[optind], &p);
	if (grc == AGS_ERR_NOT_FOUND || (grc == 0 && ags_pattern_is_tombstone(p))) {
		fprintf(stderr, "agentsync: agent get: no pattern %s\n", argv[optind]);
		rc = EXIT_NOT_FOUND;
	} else if (grc < 0) {
		fprintf(stderr, "agentsync: agent get: %s\n", ags_strerror(grc));
		rc = EXIT_ERROR;
	} else {
		size_t n = 0;
		const char *json = ags_pattern_json(p, &n);
		fwrite(json, 1, n, stdout);
		fputc('\n', stdout);
	}
	ags_pattern_del(p);
	ags_store_close(s);
	return rc;
}

static int agent_status(int argc, char **argv)
{
	const char *data = NULL;
	int json = 0, done, rc = local_opts(argc, argv, agent_status_help, &data, &json, &done);
	if (rc != EXIT_OK || done)
		return rc;
	if (optind < argc)
		return usage_error("agent status", "unexpected argument");
	ags_store *s = NULL;
	rc = open_agent_store("agent status", data, &s);
	if (rc != EXIT_OK)
		return rc;
	uint64_t patterns = 0;
	char digest[65];
	size_t cap = 1024 * 1024; /* a clock has at most 4096 entries */
	char *clock = malloc(cap);
	ags_store_digest(s, digest);
	int crc = clock ? ags_store_count(s, &patterns) : AGS_ERR_NOMEM;
	if (clock && ags_store_state_get(s, AGS_STORE_CLOCK_KEY, clock, cap) < 0)
		snprintf(clock, cap, "{}");
	if (crc < 0) {
		fprintf(stderr, "agentsync: agent status: %s\n", ags_strerror(crc));
		rc = EXIT_ERROR;
	} else if (json) {
		/* The clock is the store's own JSON object; anything else shows as {}. */
		yyjson_doc *vc = yyjson_read(clock, strlen(clock), 0);
		printf("{\"store\":\"%s\",\"patterns\":%" PRIu64 ",\"seq\":%" PRIu64
		       ",\"digest\":\"%s\",\"vectorClock\":%s}\n",
		       ags_store_id(s), patterns, ags_store_seq(s), digest,
		       yyjson_is_obj(yyjson_doc_get_root(vc)) ? clock : "{}");
		yyjson_doc_free(vc);
	} else {
		printf("store       %s\n", ags_store_id(s));
		printf("patterns    %" PRIu64 "\n", patterns);
		printf("seq         %" PRIu64 "\n", ags_store_seq(s));
		printf("digest      %s\n", digest);
		printf("vectorClock %s\n", clock);
	}
	free(clock);
	ags_store_close(s);
	return rc;
}

int cmd_agent(const struct cli *c, int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(agent_help, argc < 2 ? stderr : stdout);
		fputs(agent_opts_help, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	const char *sub = argv[1];
	if (strcmp(sub, "put") == 0)
		return agent_put(argc - 1, argv + 1);
	if (strcmp(sub, "sync") == 0)
		return cmd_hub_sync(argc - 1, argv + 1);
	if (strcmp(sub, "get") == 0)
		return agent_get(argc - 1, argv + 1);
	if (strcmp(sub, "status") == 0)
		return agent_status(argc - 1, argv + 1);
	fprintf(stderr, "agentsync: agent: unknown command \"%s\"\n", sub);
	fputs(agent_help, stderr);
	return EXIT_USAGE;
}
