/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The conformance runner: starts agentsyncd with certificates from
 * `agentsync certs init`, runs every check of the table against it and
 * compares the results with tests/conformance/known-failures.txt:
 *
 *   PASS   the daemon did what PROTOCOL.md says
 *   XFAIL  it did not, and the disagreement is listed (fine for now)
 *   FAIL   it did not, and nothing lists it: the run fails
 *   XPASS  it did, but the check is listed: the run fails until the line goes
 *
 * Usage: conformance [--list] [CHECK...]   (default: every check)
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "conform.h"
#include "daemonutil.h"
#include "testutil.h"

struct env E;

static struct tu_daemon daemon_d;
static struct tu_daemon extra[8];
static size_t n_extra;

/* ---- per-check resources ---- */

#define MAX_AUTO 512
static void *autos[MAX_AUTO];
static yyjson_doc *autodocs[MAX_AUTO];
static struct sess *sessions[64];
static size_t n_autos, n_autodocs, n_sessions;
static char fail_buf[2048];

const char *failed(const char *fmt, ...)
{
	/* Formatted aside first: an argument may be an earlier failure's text (fail_buf). */
	char tmp[sizeof(fail_buf)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	memcpy(fail_buf, tmp, sizeof(fail_buf));
	return fail_buf;
}

void *autofree(void *p)
{
	if (p && n_autos < MAX_AUTO)
		autos[n_autos++] = p;
	return p;
}

yyjson_doc *autodoc(yyjson_doc *d)
{
	if (d && n_autodocs < MAX_AUTO)
		autodocs[n_autodocs++] = d;
	return d;
}

static void sess_free(struct sess *s)
{
	cq_close(s->c, E_NO_ERROR);
	yyjson_doc_free(s->hello);
	yyjson_doc_free(s->errorf);
	free(s->payload);
	free(s);
}

static void cleanup_check(void)
{
	for (size_t i = 0; i < n_sessions; i++)
		sess_free(sessions[i]);
	for (size_t i = 0; i < n_autos; i++)
		free(autos[i]);
	for (size_t i = 0; i < n_autodocs; i++)
		yyjson_doc_free(autodocs[i]);
	n_sessions = n_autos = n_autodocs = 0;
}

const char *uniq(const char *prefix)
{
	static unsigned n;
	return autofree(tu_sprintf("%s%u", prefix, ++n));
}

/* ---- certificates ---- */

size_t daemon_log_count(const char *needle)
{
	char *log = tu_read_file(daemon_d.err_path, NULL);
	size_t n = 0;
	for (const char *p = log; p && (p = strstr(p, needle)); p += strlen(needle))
		n++;
	free(log);
	return n;
}

char *cert_path(const char *id)
{
	return autofree(tu_sprintf("%s/%s.pem", E.certs, id));
}

char *key_path(const char *id)
{
	return autofree(tu_sprintf("%s/%s-key.pem", E.certs, id));
}

static int write_datum(const char *path, const gnutls_datum_t *d)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	size_t n = fwrite(d->data, 1, d->size, f);
	return fclose(f) == 0 && n == d->size ? 0 : -1;
}

static int load_ca(gnutls_x509_crt_t *crt, gnutls_x509_privkey_t *key)
{
	gnutls_datum_t d;
	int g = gnutls_load_file(autofree(tu_sprintf("%s/ca.pem", E.certs)), &d);
	if (g == 0) {
		gnutls_x509_crt_init(crt);
		g = gnutls_x509_crt_import(*crt, &d, GNUTLS_X509_FMT_PEM);
		gnutls_free(d.data);
	}
	if (g == 0)
		g = gnutls_load_file(autofree(tu_sprintf("%s/ca-key.pem", E.certs)), &d);
	if (g == 0) {
		gnutls_x509_privkey_init(key);
		g = gnutls_x509_privkey_import(*key, &d, GNUTLS_X509_FMT_PEM);
		gnutls_free(d.data);
	}
	return g;
}

static void crt_basics(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key)
{
	unsigned char serial[16];
	gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial));
	serial[0] &= 0x7f;
	time_t now = time(NULL);
	gnutls_x509_crt_set_version(crt, 3);
	gnutls_x509_crt_set_serial(crt, serial, sizeof(serial));
	gnutls_x509_crt_set_activation_time(crt, now - 3600);
	gnutls_x509_crt_set_expiration_time(crt, now + 86400);
	gnutls_x509_crt_set_key(crt, key);
}

int cert_make(const struct cert_spec *sp)
{
	gnutls_x509_crt_t ca = NULL, crt = NULL;
	gnutls_x509_privkey_t ca_key = NULL, key = NULL;
	gnutls_datum_t out = {NULL, 0};
	int g;
	if (sp->foreign_ca) {
		gnutls_x509_privkey_init(&ca_key);
		gnutls_x509_privkey_generate(ca_key, GNUTLS_PK_EDDSA_ED25519, 0, 0);
		gnutls_x509_crt_init(&ca);
		crt_basics(ca, ca_key);
		gnutls_x509_crt_set_dn_by_oid(ca, GNUTLS_OID_X520_COMMON_NAME, 0, "foreign CA", 10);
		gnutls_x509_crt_set_basic_constraints(ca, 1, -1);
		gnutls_x509_crt_set_key_usage(ca, GNUTLS_KEY_KEY_CERT_SIGN);
		g = gnutls_x509_crt_sign2(ca, ca, ca_key, GNUTLS_DIG_UNKNOWN, 0);
	} else {
		g = load_ca(&ca, &ca_key);
	}
	if (g == 0)
		g = gnutls_x509_privkey_init(&key);
	if (g == 0)
		g = gnutls_x509_privkey_generate(key, GNUTLS_PK_EDDSA_ED25519, 0, 0);
	if (g == 0)
		g = gnutls_x509_crt_init(&crt);
	if (g == 0) {
		crt_basics(crt, key);
		gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_ORGANIZATION_NAME, 0, "t", 1);
		if (sp->cn)
			gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, sp->cn,
			                              (unsigned)strlen(sp->cn));
		for (int i = 0; i < 3 && sp->dns[i]; i++)
			gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, sp->dns[i],
			                                     (unsigned)strlen(sp->dns[i]),
			                                     GNUTLS_FSAN_APPEND);
		gnutls_x509_crt_set_basic_constraints(crt, 0, -1);
		gnutls_x509_crt_set_key_usage(crt, sp->key_usage ? sp->key_usage
		                                                 : GNUTLS_KEY_DIGITAL_SIGNATURE);
		if (sp->eku_server)
			gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0);
		if (sp->eku_client)
			gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_CLIENT, 0);
		g = gnutls_x509_crt_sign2(crt, ca, ca_key, GNUTLS_DIG_UNKNOWN, 0);
	}
	if (g == 0)
		g = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &out);
	if (g == 0)
		g = write_datum(cert_path(sp->name), &out);
	gnutls_free(out.data);
	out.data = NULL;
	if (g == 0)
		g = gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL, 0, &out);
	if (g == 0)
		g = write_datum(key_path(sp->name), &out);
	gnutls_free(out.data);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_crt_deinit(ca);
	gnutls_x509_privkey_deinit(key);
	gnutls_x509_privkey_deinit(ca_key);
	return g;
}

/* ---- sessions ---- */

struct sess *sess_connect(const char *id, const struct cq_opts *extra_opts, const char **why)
{
	struct cq_opts o = {0};
	if (extra_opts)
		o = *extra_opts;
	o.port = o.port ? o.port : E.port;
	if (!o.ca)
		o.ca = autofree(tu_sprintf("%s/ca.pem", E.certs));
	if (!o.cert && id) {
		o.cert = cert_path(id);
		o.key = key_path(id);
	}
	struct sess *s = calloc(1, sizeof(*s));
	char err[256];
	s->c = cq_connect(&o, err, sizeof(err));
	if (!s->c) {
		free(s);
		if (why)
			*why = failed("connect: %s", err);
		return NULL;
	}
	snprintf(s->id, sizeof(s->id), "%s", id ? id : "");
	uint8_t r[16];
	gnutls_rnd(GNUTLS_RND_NONCE, r, sizeof(r));
	for (int i = 0; i < 16; i++)
		snprintf(s->store + 2 * i, 3, "%02x", r[i]);
	if (n_sessions < 64)
		sessions[n_sessions++] = s;
	if (o.resume) /* 0-RTT: the caller writes before the handshake */
		return s;
	if (!cq_wait_connected(s->c, WAIT_MS)) {
		if (!why) /* the caller looks at how it ended */
			return s;
		const struct cq_end *e = cq_end(s->c);
		*why = failed("handshake failed: code 0x%llx %s", (unsigned long long)e->code,
		              e->reason);
		return NULL;
	}
	return s;
}

char *hello_json(const struct sess *s, const char *extra_members)
{
	return autofree(tu_sprintf("{\"proto\":1,\"node\":\"%s\",\"tenant\":\"default\","
	                           "\"store\":\"%s\",\"codecs\":[\"zstd\",\"gzip\"],"
	                           "\"maxFrame\":16777216,\"batchSize\":1000%s}",
	                           s->id, s->store, extra_members ? extra_members : ""));
}

int send_frame(struct sess *s, uint8_t type, const void *payload, size_t len)
{
	uint8_t h[8];
	frame_header(h, type, (uint32_t)len);
	uint8_t *buf = malloc(8 + len);
	if (!buf)
		return -1;
	memcpy(buf, h, 8);
	if (len)
		memcpy(buf + 8, payload, len);
	int rv = cq_send(s->c, buf, 8 + len);
	free(buf);
	return rv;
}

int send_json(struct sess *s, uint8_t type, const char *json)
{
	return send_frame(s, type, json, strlen(json));
}

static int frame_complete(struct cq_conn *c)
{
	size_t n;
	const uint8_t *d = cq_data(c, &n);
	if (n < 8)
		return 0;
	uint32_t len = (uint32_t)d[4] << 24 | (uint32_t)d[5] << 16 | (uint32_t)d[6] << 8 | d[7];
	return n >= 8 + (size_t)len;
}

int read_frame(struct sess *s, int ms)
{
	cq_pump(s->c, ms, frame_complete);
	if (!frame_complete(s->c))
		return cq_end(s->c)->closed ? -1 : 0;
	size_t n;
	const uint8_t *d = cq_data(s->c, &n);
	s->type = d[0];
	s->len = (uint32_t)d[4] << 24 | (uint32_t)d[5] << 16 | (uint32_t)d[6] << 8 | d[7];
	free(s->payload);
	s->payload = malloc(s->len + 1);
	memcpy(s->payload, d + 8, s->len);
	s->payload[s->len] = 0;
	cq_consume(s->c, 8 + (size_t)s->len);
	if (s->type == F_ERROR && !s->errorf)
		s->errorf = yyjson_read((const char *)s->payload, s->len, 0);
	return 1;
}

int read_until(struct sess *s, uint8_t type, int ms)
{
	for (int i = 0; i < 100000; i++) {
		int r = read_frame(s, ms);
		if (r != 1 || s->type == type)
			return r;
	}
	return 0;
}

yyjson_val *frame_json(struct sess *s)
{
	yyjson_doc *d = autodoc(yyjson_read((const char *)s->payload, s->len, 0));
	return d ? yyjson_doc_get_root(d) : NULL;
}

struct sess *sess_open(const char *id, const char *extra_members, const char **why)
{
	struct sess *s = sess_connect(id, NULL, why);
	if (!s)
		return NULL;
	if (send_json(s, F_HELLO, hello_json(s, extra_members)) != 0) {
		*why = failed("cannot send HELLO");
		return NULL;
	}
	int r = read_frame(s, WAIT_MS);
	if (r != 1 || s->type != F_HELLO) {
		const struct cq_end *e = cq_end(s->c);
		*why = r == 1 ? failed("first frame from the daemon is type 0x%02x, not HELLO",
		                       s->type)
		              : failed("no HELLO from the daemon (closed %d, code 0x%llx '%s')",
		                       e->closed, (unsigned long long)e->code, e->reason);
		return NULL;
	}
	s->hello = yyjson_read((const char *)s->payload, s->len, 0);
	return s;
}

static int is_closed(struct cq_conn *c)
{
	return cq_end(c)->closed;
}

int64_t wait_close(struct sess *s, int ms)
{
	/* Frames that arrive before the close (an ERROR frame) are read and kept, also
	 * those still buffered when the close has been seen already. */
	for (int i = 0; i < 1000; i++)
		if (read_frame(s, ms) != 1)
			break;
	cq_pump(s->c, 50, is_closed);
	const struct cq_end *e = cq_end(s->c);
	if (!e->closed)
		return -1;
	return e->app ? (int64_t)e->code : -2;
}

yyjson_val *send_batch(struct sess *s, const struct batch *b, const char **why)
{
	size_t n;
	uint8_t *p = batch_encode(b, &n);
	if (!p || send_frame(s, F_BATCH, p, n) != 0) {
		free(p);
		*why = failed("cannot send BATCH");
		return NULL;
	}
	free(p);
	for (int i = 0; i < 10000; i++) {
		int r = read_until(s, F_ACK, WAIT_MS);
		if (r != 1) {
			const struct cq_end *e = cq_end(s->c);
			*why = r == 0 ? failed("no ACK for BATCH %llu",
			                       (unsigned long long)b->request_id)
			              : failed("closed instead of an ACK: code 0x%llx '%s'",
			                       (unsigned long long)e->code, e->reason);
			return NULL;
		}
		yyjson_val *ack = frame_json(s);
		if (!ack) {
			*why = failed("ACK is not JSON: %.200s", (const char *)s->payload);
			return NULL;
		}
		if (yyjson_get_uint(yyjson_obj_get(ack, "requestId")) == b->request_id)
			return ack;
	}
	*why = failed("no ACK");
	return NULL;
}

int read_batch(struct sess *s, struct rbatch *b, int ms, const char **why)
{
	memset(b, 0, sizeof(*b));
	int r = read_until(s, F_BATCH, ms);
	if (r != 1)
		return r;
	char err[256];
	if (batch_decode(s->payload, s->len, 64u << 20, b, err, sizeof(err)) != 0) {
		*why = failed("the daemon sent an invalid BATCH: %s", err);
		rbatch_free(b);
		return -1;
	}
	return 1;
}

int ack_batch(struct sess *s, const struct rbatch *b)
{
	char *ack = tu_sprintf("{\"requestId\":%llu,\"success\":true,\"receivedCount\":%u,"
	                       "\"applied\":%u,\"errors\":[],\"seq\":0}",
	                       (unsigned long long)b->request_id, b->count, b->count);
	int rv = send_json(s, F_ACK, ack);
	free(ack);
	return rv;
}

/* ---- HTTP API ---- */

int api(const char *method, const char *path, const char *body, char **out)
{
	char *url = tu_sprintf("http://%s%s", E.api, path);
	char *resp = NULL;
	int st;
	if (body) {
		char *file = tu_sprintf("%s/body.json", E.dir);
		tu_write_file(file, body);
		char *at = tu_sprintf("@%s", file);
		st = tu_curl(&resp, "-X", method, "-H", "Content-Type: application/json",
		             "--data-binary", at, url, (char *)NULL);
		free(at);
		free(file);
	} else {
		st = tu_curl(&resp, "-X", method, url, (char *)NULL);
	}
	free(url);
	if (out)
		*out = autofree(resp);
	else
		free(resp);
	return st;
}

int api_put(const char *json)
{
	char *out = NULL;
	int st = api("POST", "/v1/patterns", json, &out);
	if (st != 200)
		fprintf(stderr, "api put: %d %s\n", st, out ? out : "");
	return st == 200 ? 0 : -1;
}

yyjson_doc *api_state(void)
{
	char *out = NULL;
	if (api("GET", "/v1/state", NULL, &out) != 200 || !out)
		return NULL;
	return yyjson_read(out, strlen(out), 0);
}

char *api_get(const char *id)
{
	char *out = NULL;
	char *path = autofree(tu_sprintf("/v1/patterns/%s", id));
	return api("GET", path, NULL, &out) == 200 ? out : NULL;
}

char *pattern(const char *id, const char *type, int priority, int version)
{
	char prio[32] = "";
	if (priority)
		snprintf(prio, sizeof(prio), ",\"priority\":%d", priority);
	return autofree(tu_sprintf(
	    "{\"id\":\"%s\",\"agentId\":\"conformance\",\"type\":\"%s\",\"data\":{\"n\":1},"
	    "\"metadata\":{\"source\":\"conformance\",\"tags\":[\"t\"]%s},"
	    "\"timestamp\":1700000000000,\"version\":%d}",
	    id, type, prio, version));
}

/* ---- daemons ---- */

static char *daemon_config(const char *name, int port, int api_port, const char *extra_keys)
{
	char *path = tu_sprintf("%s/%s.json", E.dir, name);
	char *text = tu_sprintf(
	    "{\"quic\":{\"nodeId\":\"%s\",\"host\":\"127.0.0.1\",\"port\":%d,"
	    "\"dataDir\":\"%s/%s-data\",\"api\":{\"listen\":\"127.0.0.1:%d\"},"
	    "\"tls\":{\"cert\":\"%s/%s.pem\",\"key\":\"%s/%s-key.pem\",\"ca\":\"%s/ca.pem\","
	    "\"rejectUnauthorized\":true},\"log\":{\"level\":\"debug\"}%s}}\n",
	    name, port, E.dir, name, api_port, E.certs, name, E.certs, name, E.certs,
	    extra_keys ? extra_keys : "");
	tu_write_file(path, text);
	free(text);
	return path;
}

int extra_daemon(const char *name, const char *extra_keys, int hub, int *st, char *api_out)
{
	if (n_extra >= 8)
		return -1;
	int port = tu_free_port(1), api_port = tu_free_port(0);
	char *cfg = daemon_config(name, port, api_port, extra_keys);
	char *argv[] = {(char *)"--config", cfg, hub ? (char *)"--hub" : NULL, NULL};
	struct tu_daemon *d = &extra[n_extra];
	int rv = tu_daemon_start(d, E.dir, name, NULL, argv);
	free(cfg);
	if (rv != 0) {
		*st = d->exit_status;
		return -1;
	}
	n_extra++;
	if (api_out)
		snprintf(api_out, 64, "%s", d->api);
	return port;
}

void extra_daemons_stop(void)
{
	for (size_t i = 0; i < n_extra; i++)
		tu_daemon_stop(&extra[i], SIGTERM);
	n_extra = 0;
}

static void setup(void)
{
	E.dir = tu_mkdtemp("conform");
	E.certs = tu_sprintf("%s/certs", E.dir);
	char *cli = tu_program("agentsync");
	char *init[] = {cli,
	                (char *)"certs",
	                (char *)"init",
	                (char *)"--dir",
	                E.certs,
	                (char *)"--nodes",
	                (char *)"d,hub,c,c2,c3,c4,c5,c6,c7,c8,c9,e1,e2,agent",
	                NULL};
	char *out = NULL;
	if (tu_run(init, NULL, NULL, &out) != 0) {
		fprintf(stderr, "agentsync certs init failed: %s\n", out);
		exit(1);
	}
	free(out);
	free(cli);
	E.port = tu_free_port(1);
	int api_port = tu_free_port(0);
	char *cfg = daemon_config("d", E.port, api_port, NULL);
	char *argv[] = {(char *)"--config", cfg, NULL};
	if (tu_daemon_start(&daemon_d, E.dir, "d", NULL, argv) != 0) {
		fprintf(stderr, "agentsyncd did not start (see %s)\n", daemon_d.err_path);
		exit(1);
	}
	free(cfg);
	snprintf(E.api, sizeof(E.api), "%s", daemon_d.api);
	/* What the daemon announces, for checks that depend on it. */
	const char *why = NULL;
	struct sess *s = sess_open("c9", NULL, &why);
	if (!s || !s->hello) {
		fprintf(stderr, "cannot open a session with the daemon: %s\n", why ? why : "");
		exit(1);
	}
	yyjson_val *h = yyjson_doc_get_root(s->hello);
	const char *store = yyjson_get_str(yyjson_obj_get(h, "store"));
	snprintf(E.store, sizeof(E.store), "%s", store ? store : "");
	E.batch_size = yyjson_get_uint(yyjson_obj_get(h, "batchSize"));
	E.max_frame = yyjson_get_uint(yyjson_obj_get(h, "maxFrame"));
	cleanup_check();
}

/* ---- known failures and the run ---- */

struct known {
	char name[128];
	char why[512];
	int seen;
};

static size_t load_known(const char *path, struct known *k, size_t cap)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "cannot read %s\n", path);
		exit(1);
	}
	char line[1024];
	size_t n = 0;
	while (fgets(line, sizeof(line), f) && n < cap) {
		line[strcspn(line, "\n")] = '\0';
		if (!line[0] || line[0] == '#')
			continue;
		size_t w = strcspn(line, " \t");
		snprintf(k[n].name, sizeof(k[n].name), "%.*s", (int)w, line);
		snprintf(k[n].why, sizeof(k[n].why), "%s", line + w + strspn(line + w, " \t"));
		k[n].seen = 0;
		n++;
	}
	fclose(f);
	return n;
}

static const struct check *const tables[] = {checks_tls, checks_session, checks_recv, checks_send,
                                             checks_hub};

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	int list = argc > 1 && strcmp(argv[1], "--list") == 0;
	if (list) {
		for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
			for (const struct check *c = tables[t]; c->name; c++)
				printf("%-36s %s\n", c->name, c->what);
		return 0;
	}
	const char *src = getenv("AGS_SOURCE_DIR");
	char *kpath = tu_sprintf("%s/tests/conformance/known-failures.txt", src ? src : ".");
	static struct known known[256];
	size_t n_known = load_known(kpath, known, 256);
	free(kpath);
	gnutls_global_init();
	setup();

	int passed = 0, failed = 0, xfail = 0, xpass = 0;
	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
		for (const struct check *c = tables[t]; c->name; c++) {
			int wanted = argc <= 1;
			for (int i = 1; i < argc; i++)
				if (strcmp(argv[i], c->name) == 0)
					wanted = 1;
			if (!wanted)
				continue;
			const char *msg = c->fn();
			char copy[2048];
			snprintf(copy, sizeof(copy), "%s", msg ? msg : "");
			cleanup_check();
			struct known *k = NULL;
			for (size_t i = 0; i < n_known; i++)
				if (strcmp(known[i].name, c->name) == 0)
					k = &known[i];
			if (k)
				k->seen = 1;
			if (!msg && !k) {
				printf("PASS  %s\n", c->name);
				passed++;
			} else if (!msg) {
				printf(
				    "XPASS %s: listed in known-failures.txt but passes now: remove "
				    "the line (%s)\n",
				    c->name, k->why);
				xpass++;
			} else if (k) {
				printf("XFAIL %s: %s\n      known: %s\n", c->name, copy, k->why);
				xfail++;
			} else {
				printf("FAIL  %s: %s\n      (%s)\n", c->name, copy, c->what);
				failed++;
			}
		}
	}
	for (size_t i = 0; i < n_known && argc <= 1; i++)
		if (!known[i].seen) {
			printf("FAIL  known-failures.txt names '%s', which is no check\n",
			       known[i].name);
			failed++;
		}
	extra_daemons_stop();
	tu_daemon_stop(&daemon_d, SIGTERM);
	printf("conformance: %d checks pass, %d known failures, %d unlisted failures, %d listed "
	       "checks that pass\n",
	       passed, xfail, failed, xpass);
	printf("%d passed, %d failed\n", passed + xfail, failed + xpass);
	if (failed + xpass == 0)
		tu_rmrf(E.dir);
	else
		printf("logs kept in %s\n", E.dir);
	return failed + xpass ? 1 : 0;
}
