/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agentsync's smaller commands: get, list, delete, status, peers, sync and
 * certs init.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yyjson.h>

#include "agentsync/certs.h"
#include "cli.h"

int wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return 0;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return 1;
	}
	return 0;
}

/* Answers an unknown option or a wrong number of arguments. */
static int bad_usage(const char *text)
{
	fputs(text, stderr);
	return EXIT_USAGE;
}

static int is_2xx(const struct http_resp *r)
{
	return r->status >= 200 && r->status <= 299;
}

/* ------------------------------------------------------------------------ */
/* get, delete                                                              */
/* ------------------------------------------------------------------------ */

static const char get_help[] = "Usage: agentsync get ID\n"
                               "Prints the pattern ID as JSON.\n"
                               "Exit status: 0 found, 4 no such pattern, 1 error, 3 daemon "
                               "unreachable.\n";

int cmd_get(const struct cli *c, int argc, char **argv)
{
	if (wants_help(argc, argv)) {
		fputs(get_help, stdout);
		return EXIT_OK;
	}
	if (argc != 2)
		return bad_usage(get_help);
	char *id = http_escape(argv[1]), path[1200];
	if (!id)
		return EXIT_ERROR;
	snprintf(path, sizeof(path), "/v1/patterns/%s", id);
	free(id);
	struct http_resp r;
	int rc = http_request(c, "get", "GET", path, NULL, NULL, 0, &r);
	if (rc == EXIT_OK && !is_2xx(&r))
		rc = http_fail("get", &r);
	else if (rc == EXIT_OK)
		fwrite(r.body, 1, r.len, stdout);
	http_resp_free(&r);
	return rc;
}

static const char delete_help[] = "Usage: agentsync delete ID\n"
                                  "Deletes the pattern ID (a tombstone that syncs to every peer).\n"
                                  "Exit status: 0 deleted, 4 no such pattern, 1 error, 3 daemon "
                                  "unreachable.\n";

int cmd_delete(const struct cli *c, int argc, char **argv)
{
	if (wants_help(argc, argv)) {
		fputs(delete_help, stdout);
		return EXIT_OK;
	}
	if (argc != 2)
		return bad_usage(delete_help);
	char *id = http_escape(argv[1]), path[1200];
	if (!id)
		return EXIT_ERROR;
	snprintf(path, sizeof(path), "/v1/patterns/%s", id);
	free(id);
	struct http_resp r;
	int rc = http_request(c, "delete", "DELETE", path, NULL, NULL, 0, &r);
	if (rc == EXIT_OK && !is_2xx(&r))
		rc = http_fail("delete", &r);
	else if (rc == EXIT_OK)
		printf("deleted %s\n", argv[1]);
	http_resp_free(&r);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* list                                                                     */
/* ------------------------------------------------------------------------ */

static const char list_help[] =
    "Usage: agentsync list [--type T] [--tag X] [--agent A] [--since S] [--limit N] [--json]\n"
    "Prints stored patterns, one JSON object per line (NDJSON), in change order.\n"
    "  --type T    only patterns of type T\n"
    "  --tag X     only patterns tagged X\n"
    "  --agent A   only patterns with agentId A\n"
    "  --since S   only patterns changed after change-log sequence S (see status: seq)\n"
    "  --limit N   at most N patterns\n"
    "  --json      one JSON array instead of NDJSON\n";

static int to_stdout(void *ud, const char *data, size_t len)
{
	return fwrite(data, 1, len, stdout) == len ? 0 : 1;
}

/* Appends "&key=escaped(value)" to the query string q. */
static int add_arg(char *q, size_t cap, const char *key, const char *value)
{
	char *e = http_escape(value);
	if (!e)
		return -1;
	size_t used = strlen(q);
	int n = snprintf(q + used, cap - used, "%s%s=%s", used ? "&" : "?", key, e);
	free(e);
	return n < 0 || (size_t)n >= cap - used ? -1 : 0;
}

int cmd_list(const struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'},        {"type", required_argument, NULL, 't'},
	    {"tag", required_argument, NULL, 'g'},   {"agent", required_argument, NULL, 'a'},
	    {"since", required_argument, NULL, 's'}, {"limit", required_argument, NULL, 'n'},
	    {"json", no_argument, NULL, 'j'},        {NULL, 0, NULL, 0}};
	char q[2048] = "";
	int json = 0, opt, bad = 0;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			fputs(list_help, stdout);
			return EXIT_OK;
		case 't':
			bad |= add_arg(q, sizeof(q), "type", optarg);
			break;
		case 'g':
			bad |= add_arg(q, sizeof(q), "tag", optarg);
			break;
		case 'a':
			bad |= add_arg(q, sizeof(q), "agentId", optarg);
			break;
		case 's':
			bad |= add_arg(q, sizeof(q), "since", optarg);
			break;
		case 'n':
			bad |= add_arg(q, sizeof(q), "limit", optarg);
			break;
		case 'j':
			json = 1;
			break;
		default:
			return bad_usage(list_help);
		}
	}
	if (optind < argc || bad)
		return bad_usage(list_help);
	if (add_arg(q, sizeof(q), "format", json ? "json" : "ndjson") < 0)
		return bad_usage(list_help);
	char path[2200];
	snprintf(path, sizeof(path), "/v1/patterns%s", q);
	struct http_resp r;
	int rc = http_stream(c, "list", path, NULL, to_stdout, NULL, NULL, &r, NULL);
	if (rc == EXIT_OK && !is_2xx(&r))
		rc = http_fail("list", &r);
	http_resp_free(&r);
	fflush(stdout);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* status, peers                                                            */
/* ------------------------------------------------------------------------ */

static const char status_help[] =
    "Usage: agentsync status [--json]\n"
    "Shows the node: its store (patterns, sequence, digest), sync statistics and one\n"
    "row per peer (and, for a hub, one row per tenant). Two nodes in sync show the\n"
    "same digest.\n"
    "  --json   the daemon's GET /v1/state answer as it is\n";

static double num(yyjson_val *o, const char *k)
{
	return yyjson_get_num(yyjson_obj_get(o, k));
}

static unsigned long long uns(yyjson_val *o, const char *k)
{
	return (unsigned long long)yyjson_get_uint(yyjson_obj_get(o, k));
}

static const char *str(yyjson_val *o, const char *k)
{
	const char *s = yyjson_get_str(yyjson_obj_get(o, k));
	return s ? s : "";
}

static void print_peers(yyjson_val *peers)
{
	printf("%-20s %-9s %-8s %-24s %8s %7s %10s %8s\n", "PEER", "CONNECTED", "HEALTH", "ADDRESS",
	       "SYNCS", "ERRORS", "LATENCY", "LAG");
	size_t i, imax;
	yyjson_val *k, *p;
	yyjson_obj_foreach(peers, i, imax, k, p)
	{
		printf("%-20s %-9s %-8s %-24s %8llu %7llu %8.2fms %8llu\n", yyjson_get_str(k),
		       yyjson_get_bool(yyjson_obj_get(p, "connected")) ? "yes" : "no",
		       yyjson_get_bool(yyjson_obj_get(p, "degraded")) ? "degraded" : "ok",
		       str(p, "address"), uns(p, "syncCount"), uns(p, "errorCount"),
		       num(p, "latency"), uns(p, "lag"));
	}
	if (yyjson_obj_size(peers) == 0)
		printf("(no peers)\n");
}

/* The hub's tenants, when the node is a hub. */
static void print_hub(yyjson_val *hub)
{
	if (!yyjson_get_bool(yyjson_obj_get(hub, "enabled")))
		return;
	printf("\nhub         %llu agent%s connected, %llu authenticated, %llu refused\n",
	       uns(hub, "agentsConnected"), uns(hub, "agentsConnected") == 1 ? "" : "s",
	       uns(hub, "authOk"), uns(hub, "authRefused"));
	printf("%-24s %7s %9s %9s %9s %9s %-16s\n", "TENANT", "AGENTS", "PATTERNS", "CHANGES",
	       "RECEIVED", "CONFLICTS", "DIGEST");
	size_t i, imax;
	yyjson_val *t;
	yyjson_arr_foreach(yyjson_obj_get(hub, "tenants"), i, imax, t)
	{
		printf("%-24s %7llu %9llu %9llu %9llu %9llu %.16s\n", str(t, "tenant"),
		       uns(t, "agentsConnected"), uns(t, "patterns"), uns(t, "changes"),
		       uns(t, "changesReceived"), uns(t, "conflicts"), str(t, "digest"));
	}
}

/* GETs `path` and parses it as JSON. Returns an exit code; *doc set on EXIT_OK. */
static int get_json(const struct cli *c, const char *what, const char *path, struct http_resp *r,
                    yyjson_doc **doc)
{
	int rc = http_request(c, what, "GET", path, NULL, NULL, 0, r);
	if (rc != EXIT_OK)
		return rc;
	if (!is_2xx(r))
		return http_fail(what, r);
	*doc = yyjson_read(r->body, r->len, 0);
	if (!*doc) {
		fprintf(stderr, "agentsync: %s: the daemon's answer is not JSON\n", what);
		return EXIT_ERROR;
	}
	return EXIT_OK;
}

int cmd_status(const struct cli *c, int argc, char **argv)
{
	int json = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(status_help, stdout);
			return EXIT_OK;
		}
		if (strcmp(argv[i], "--json") != 0)
			return bad_usage(status_help);
		json = 1;
	}
	struct http_resp r;
	yyjson_doc *doc = NULL;
	int rc = get_json(c, "status", "/v1/state", &r, &doc);
	if (rc == EXIT_OK && json) {
		fwrite(r.body, 1, r.len, stdout);
	} else if (rc == EXIT_OK) {
		yyjson_val *st = yyjson_doc_get_root(doc);
		yyjson_val *store = yyjson_obj_get(st, "store");
		yyjson_val *stats = yyjson_obj_get(st, "stats");
		printf("node        %s (%s, %llu connection%s)\n", str(st, "nodeId"),
		       yyjson_get_bool(yyjson_obj_get(st, "running")) ? "running" : "stopped",
		       uns(st, "connections"), uns(st, "connections") == 1 ? "" : "s");
		printf("store       %s\n", str(store, "id"));
		printf("patterns    %llu\n", uns(store, "patterns"));
		printf("seq         %llu\n", uns(store, "seq"));
		printf("digest      %s\n", str(store, "digest"));
		printf("syncs       %llu total, %llu ok, %llu failed, average latency %.2f ms\n",
		       uns(stats, "totalSyncs"), uns(stats, "successfulSyncs"),
		       uns(stats, "failedSyncs"), num(stats, "averageLatency"));
		printf("traffic     %llu bytes, compression ratio %.3f\n",
		       uns(stats, "bytesTransferred"), num(stats, "compressionRatio"));
		printf("\n");
		print_peers(yyjson_obj_get(st, "peers"));
		print_hub(yyjson_obj_get(st, "hub"));
	}
	yyjson_doc_free(doc);
	http_resp_free(&r);
	return rc;
}

static const char peers_help[] =
    "Usage: agentsync peers [--json]\n"
    "       agentsync peers add ID HOST PORT     (see agentsync peers add --help)\n"
    "       agentsync peers remove ID            (see agentsync peers remove --help)\n"
    "Lists the node's peers: connected, address, lag, errors, latency, bytes.\n"
    "  --json   the daemon's GET /v1/peers answer as it is\n"
    "Exit status: 0 ok, 1 error, 2 usage, 3 daemon unreachable.\n";

static const char peers_add_help[] =
    "Usage: agentsync peers add ID HOST PORT\n"
    "Adds the peer ID at HOST:PORT (UDP) to the running node, which dials it at once\n"
    "(POST /v1/peers). Not saved in the config file: add it to quic.peers and send\n"
    "SIGHUP to make it last.\n"
    "Exit status: 0 added, 1 error (e.g. a peer ID exists already), 2 usage, 3 daemon\n"
    "unreachable.\n";

static const char peers_remove_help[] =
    "Usage: agentsync peers remove ID\n"
    "Disconnects the peer ID and forgets it (DELETE /v1/peers/ID), until a SIGHUP\n"
    "re-reads quic.peers.\n"
    "Exit status: 0 removed, 4 no such peer, 1 error, 2 usage, 3 daemon unreachable.\n";

int cmd_peers(const struct cli *c, int argc, char **argv)
{
	/* Each form has its own help: `peers add --help` is about adding. */
	const char *help = peers_help;
	if (argc >= 2 && strcmp(argv[1], "add") == 0)
		help = peers_add_help;
	else if (argc >= 2 && strcmp(argv[1], "remove") == 0)
		help = peers_remove_help;
	if (wants_help(argc, argv)) {
		fputs(help, stdout);
		return EXIT_OK;
	}
	struct http_resp r;
	int rc;
	if (argc >= 2 && strcmp(argv[1], "add") == 0) {
		if (argc != 5)
			return bad_usage(peers_add_help);
		char *end;
		long port = strtol(argv[4], &end, 10);
		if (*end || port < 1 || port > 65535)
			return bad_usage(peers_add_help);
		yyjson_mut_doc *d = yyjson_mut_doc_new(NULL);
		yyjson_mut_val *o = yyjson_mut_obj(d);
		yyjson_mut_doc_set_root(d, o);
		yyjson_mut_obj_add_str(d, o, "id", argv[2]);
		yyjson_mut_obj_add_str(d, o, "address", argv[3]);
		yyjson_mut_obj_add_int(d, o, "port", port);
		size_t len = 0;
		char *body = yyjson_mut_write(d, 0, &len);
		yyjson_mut_doc_free(d);
		if (!body)
			return EXIT_ERROR;
		rc = http_request(c, "peers add", "POST", "/v1/peers", "application/json", body,
		                  len, &r);
		free(body);
		if (rc == EXIT_OK && !is_2xx(&r))
			rc = http_fail("peers add", &r);
		else if (rc == EXIT_OK)
			printf("added peer %s at %s:%ld\n", argv[2], argv[3], port);
		http_resp_free(&r);
		return rc;
	}
	if (argc >= 2 && strcmp(argv[1], "remove") == 0) {
		if (argc != 3)
			return bad_usage(peers_remove_help);
		char *id = http_escape(argv[2]), path[1200];
		if (!id)
			return EXIT_ERROR;
		snprintf(path, sizeof(path), "/v1/peers/%s", id);
		free(id);
		rc = http_request(c, "peers remove", "DELETE", path, NULL, NULL, 0, &r);
		if (rc == EXIT_OK && !is_2xx(&r))
			rc = http_fail("peers remove", &r);
		else if (rc == EXIT_OK)
			printf("removed peer %s\n", argv[2]);
		http_resp_free(&r);
		return rc;
	}
	int json = argc == 2 && strcmp(argv[1], "--json") == 0;
	if (argc > 2 || (argc == 2 && !json))
		return bad_usage(peers_help);
	yyjson_doc *doc = NULL;
	rc = get_json(c, "peers", "/v1/peers", &r, &doc);
	if (rc == EXIT_OK && json)
		fwrite(r.body, 1, r.len, stdout);
	else if (rc == EXIT_OK)
		print_peers(yyjson_doc_get_root(doc));
	yyjson_doc_free(doc);
	http_resp_free(&r);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* sync, certs                                                              */
/* ------------------------------------------------------------------------ */

static const char sync_help[] =
    "Usage: agentsync sync\n"
    "       agentsync sync --hub quic://HOST:PORT (--token T | --token-file F) ...\n"
    "Without --hub: asks the node (through its API) to send pending changes to every\n"
    "peer now. With --hub: runs one sync of an agent with a federation hub, no daemon\n"
    "involved (see agentsync sync --hub X --help).\n";

/* Whether argv asks for the agent's sync with a hub (--hub or --hub=...). */
static int has_hub(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return 0;
		if (strcmp(argv[i], "--hub") == 0 || strncmp(argv[i], "--hub=", 6) == 0)
			return 1;
	}
	return 0;
}

int cmd_sync(const struct cli *c, int argc, char **argv)
{
	if (has_hub(argc, argv))
		return cmd_hub_sync(argc, argv);
	if (wants_help(argc, argv)) {
		fputs(sync_help, stdout);
		return EXIT_OK;
	}
	if (argc != 1)
		return bad_usage(sync_help);
	struct http_resp r;
	int rc = http_request(c, "sync", "POST", "/v1/sync", NULL, NULL, 0, &r);
	if (rc == EXIT_OK && !is_2xx(&r))
		rc = http_fail("sync", &r);
	else if (rc == EXIT_OK)
		printf("sync requested\n");
	http_resp_free(&r);
	return rc;
}

static const char certs_help[] =
    "Usage: agentsync certs init --dir DIR --nodes ID[,ID...] [--key-type ed25519|p256]\n"
    "Makes (or completes) a private CA in DIR and a certificate for each node:\n"
    "DIR/ca.pem, DIR/ca-key.pem, DIR/ID.pem, DIR/ID-key.pem. An existing CA is kept,\n"
    "so nodes can be added later. Runs locally: no daemon needed.\n"
    "In a node's config: \"tls\": {\"cert\": \"DIR/ID.pem\", \"key\": \"DIR/ID-key.pem\",\n"
    "\"ca\": \"DIR/ca.pem\", \"rejectUnauthorized\": true}.\n";

int cmd_certs(const struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
	                                     {"dir", required_argument, NULL, 'd'},
	                                     {"nodes", required_argument, NULL, 'n'},
	                                     {"key-type", required_argument, NULL, 'k'},
	                                     {NULL, 0, NULL, 0}};
	if (wants_help(argc, argv)) {
		fputs(certs_help, stdout);
		return EXIT_OK;
	}
	if (argc < 2 || strcmp(argv[1], "init") != 0)
		return bad_usage(certs_help);
	const char *dir = NULL, *nodes = NULL;
	int key_type = AGS_CERTS_ED25519, opt;
	optind = 0;
	while ((opt = getopt_long(argc - 1, argv + 1, "+h", opts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			dir = optarg;
			break;
		case 'n':
			nodes = optarg;
			break;
		case 'k':
			if (strcmp(optarg, "ed25519") == 0)
				key_type = AGS_CERTS_ED25519;
			else if (strcmp(optarg, "p256") == 0)
				key_type = AGS_CERTS_P256;
			else
				return bad_usage(certs_help);
			break;
		default:
			return bad_usage(certs_help);
		}
	}
	if (!dir || !nodes || optind < argc - 1)
		return bad_usage(certs_help);
	/* Splits the comma list in a copy; empty items are refused by ags_certs_init. */
	char *list = strdup(nodes);
	size_t n = 1;
	for (const char *p = nodes; *p; p++)
		n += *p == ',';
	const char **ids = calloc(n, sizeof(*ids));
	if (!list || !ids) {
		free(list);
		free(ids);
		return EXIT_ERROR;
	}
	size_t k = 0;
	ids[k++] = list;
	for (char *p = list; *p; p++) {
		if (*p == ',') {
			*p = '\0';
			ids[k++] = p + 1;
		}
	}
	ags_error err;
	ags_error_clear(&err);
	int rc = ags_certs_init(dir, ids, n, key_type, &err);
	if (rc < 0) {
		fprintf(stderr, "agentsync: certs init: %s%s%s\n", err.field,
		        err.field[0] ? ": " : "", err.message[0] ? err.message : ags_strerror(rc));
	} else {
		printf("certificates in %s: ca.pem", dir);
		for (size_t i = 0; i < n; i++)
			printf(", %s.pem", ids[i]);
		printf("\n");
	}
	free(ids);
	free(list);
	return rc < 0 ? EXIT_ERROR : EXIT_OK;
}
