/* SPDX-License-Identifier: Apache-2.0 */
/* Checks of PROTOCOL.md "TLS and QUIC": mutual TLS 1.3, ALPN, identity, parameters, 0-RTT. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <ngtcp2/ngtcp2.h>

#include "conform.h"
#include "daemonutil.h"
#include "testutil.h"

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond))                                                                       \
			return failed(__VA_ARGS__);                                                \
	} while (0)

/* Expects the handshake with these options to be refused with TLS alert `alert`. */
static const char *refused(const char *id, const struct cq_opts *o, unsigned alert)
{
	struct sess *s = sess_connect(id, o, NULL);
	CHECK(s, "could not even start the connection");
	const struct cq_end *e = cq_end(s->c);
	CHECK(e->closed, "the handshake was accepted");
	CHECK(!e->app && e->code == 0x100u + alert,
	      "refused with %s code 0x%llx ('%s'), want the TLS alert %u (0x%x)",
	      e->app ? "application" : "transport", (unsigned long long)e->code, e->reason, alert,
	      0x100u + alert);
	return NULL;
}

static const char *tls_handshake(void)
{
	const char *why;
	struct sess *s = sess_open("c", NULL, &why);
	CHECK(s, "%s", why);
	gnutls_session_t t = cq_tls(s->c);
	CHECK(gnutls_protocol_get_version(t) == GNUTLS_TLS1_3, "not TLS 1.3");
	gnutls_datum_t alpn;
	CHECK(gnutls_alpn_get_selected_protocol(t, &alpn) == 0 && alpn.size == 11 &&
	          memcmp(alpn.data, "agentsync/1", 11) == 0,
	      "ALPN agentsync/1 not selected");
	return NULL;
}

static const char *tls_server_identity(void)
{
	const char *why;
	struct sess *s = sess_connect("c", NULL, &why);
	CHECK(s, "%s", why);
	unsigned n = 0;
	const gnutls_datum_t *certs = gnutls_certificate_get_peers(cq_tls(s->c), &n);
	CHECK(certs && n >= 1, "no server certificate");
	gnutls_x509_crt_t crt;
	gnutls_x509_crt_init(&crt);
	gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER);
	char cn[256];
	size_t sz = sizeof(cn);
	int g = gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &sz);
	unsigned crit;
	char oid[128];
	size_t osz;
	int server_eku = 0;
	for (unsigned i = 0;
	     osz = sizeof(oid), gnutls_x509_crt_get_key_purpose_oid(crt, i, oid, &osz, &crit) == 0;
	     i++)
		server_eku |= strcmp(oid, GNUTLS_KP_TLS_WWW_SERVER) == 0;
	gnutls_x509_crt_deinit(crt);
	CHECK(g == 0 && strcmp(cn, "d") == 0, "the server certificate does not name 'd'");
	CHECK(server_eku, "the server certificate has no serverAuth key purpose");
	/* Its HELLO names the same id. */
	send_json(s, F_HELLO, hello_json(s, NULL));
	CHECK(read_frame(s, WAIT_MS) == 1 && s->type == F_HELLO, "no HELLO");
	CHECK(yyjson_equals_str(yyjson_obj_get(frame_json(s), "node"), "d"),
	      "HELLO node is not the certificate's id");
	return NULL;
}

static const char *tls_client_cert_required(void)
{
	struct cq_opts o = {.cert = NULL};
	return refused(NULL, &o, 116); /* certificate_required */
}

static const char *tls_unknown_ca(void)
{
	struct cert_spec sp = {.name = "foreign",
	                       .cn = "c",
	                       .dns = {"c"},
	                       .eku_client = 1,
	                       .eku_server = 1,
	                       .foreign_ca = 1};
	CHECK(cert_make(&sp) == 0, "cannot make a certificate");
	struct cq_opts o = {.cert = cert_path("foreign"), .key = key_path("foreign")};
	return refused("foreign", &o, 42); /* bad_certificate */
}

static const char *tls_client_eku(void)
{
	struct cert_spec sp = {
	    .name = "srvonly", .cn = "srvonly", .dns = {"srvonly"}, .eku_server = 1};
	CHECK(cert_make(&sp) == 0, "cannot make a certificate");
	return refused("srvonly", NULL, 42);
}

static const char *tls_no_eku_accepted(void)
{
	struct cert_spec sp = {.name = "noeku", .cn = "noeku"};
	CHECK(cert_make(&sp) == 0, "cannot make a certificate");
	const char *why;
	struct sess *s = sess_open("noeku", NULL, &why);
	CHECK(s, "a client certificate without extended key usage was refused: %s", why);
	return NULL;
}

static const char *tls_alpn_missing(void)
{
	struct cq_opts o = {.alpn = ""};
	return refused("c", &o, 120); /* no_application_protocol */
}

static const char *tls_alpn_wrong(void)
{
	struct cq_opts o = {.alpn = "h3"};
	return refused("c", &o, 120);
}

static const char *tls_sni_ignored(void)
{
	const char *why;
	struct cq_opts o = {.sni = "anything.example"};
	struct sess *s = sess_connect("c", &o, &why);
	CHECK(s, "a ClientHello with SNI was refused: %s", why);
	return NULL;
}

/* The id is the CN; without a CN, the first DNS SAN. */
static const char *tls_id_from_dns_san(void)
{
	struct cert_spec sp = {.name = "sanonly", .dns = {"san-a", "san-b"}, .eku_client = 1};
	CHECK(cert_make(&sp) == 0, "cannot make a certificate");
	const char *why;
	struct sess *s = sess_connect("sanonly", NULL, &why);
	CHECK(s, "%s", why);
	snprintf(s->id, sizeof(s->id), "san-a");
	send_json(s, F_HELLO, hello_json(s, NULL));
	CHECK(read_frame(s, WAIT_MS) == 1 && s->type == F_HELLO,
	      "HELLO node 'san-a' (first DNS SAN, no CN) was not accepted (close 0x%llx '%s')",
	      (unsigned long long)cq_end(s->c)->code, cq_end(s->c)->reason);
	struct sess *s2 = sess_connect("sanonly", NULL, &why);
	CHECK(s2, "%s", why);
	snprintf(s2->id, sizeof(s2->id), "san-b");
	send_json(s2, F_HELLO, hello_json(s2, NULL));
	int64_t code = wait_close(s2, WAIT_MS);
	CHECK(code == E_BAD_HELLO,
	      "HELLO node 'san-b' (second DNS SAN): close %lld, want BAD_HELLO", (long long)code);
	return NULL;
}

static const char *tls_no_node_id(void)
{
	struct cert_spec sp = {.name = "noname", .eku_client = 1};
	CHECK(cert_make(&sp) == 0, "cannot make a certificate");
	return refused("noname", NULL, 42);
}

static const char *tls_transport_params(void)
{
	const char *why;
	struct sess *s = sess_connect("c", NULL, &why);
	CHECK(s, "%s", why);
	const ngtcp2_transport_params *p = cq_remote_params(s->c);
	uint64_t win = E.max_frame + 65536;
	CHECK(p->initial_max_streams_bidi == 100 && p->initial_max_streams_uni == 0,
	      "streams bidi %llu uni %llu, want 100 and 0",
	      (unsigned long long)p->initial_max_streams_bidi,
	      (unsigned long long)p->initial_max_streams_uni);
	CHECK(p->initial_max_stream_data_bidi_remote == win &&
	          p->initial_max_stream_data_bidi_local == win && p->initial_max_data == 2 * win,
	      "stream window %llu / %llu, connection %llu, want %llu and %llu",
	      (unsigned long long)p->initial_max_stream_data_bidi_remote,
	      (unsigned long long)p->initial_max_stream_data_bidi_local,
	      (unsigned long long)p->initial_max_data, (unsigned long long)win,
	      (unsigned long long)(2 * win));
	CHECK(p->max_idle_timeout == 30 * NGTCP2_SECONDS, "idle timeout %llu ms, want 30000",
	      (unsigned long long)(p->max_idle_timeout / NGTCP2_MILLISECONDS));
	CHECK(p->active_connection_id_limit == 4, "active_connection_id_limit %llu, want 4",
	      (unsigned long long)p->active_connection_id_limit);
	return NULL;
}

static int has_ticket(struct cq_conn *c)
{
	return gnutls_session_get_flags(cq_tls(c)) & GNUTLS_SFLAGS_SESSION_TICKET;
}

/* A first session that leaves a ticket; the second resumes with HELLO as 0-RTT. */
static const char *resume(const char *id, int seconds_clock, int want_early)
{
	const char *why;
	struct cq_opts o = {.ticket_time_in_seconds = seconds_clock};
	if (seconds_clock) {
		/* Receive the ticket in the middle of a second, so that a receipt time kept in
		 * whole seconds is about 500 ms early. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		tu_sleep_ms((unsigned)((1500000000L - ts.tv_nsec) % 1000000000L / 1000000L));
	}
	struct sess *s = sess_connect(id, &o, &why);
	CHECK(s, "%s", why);
	send_json(s, F_HELLO, hello_json(s, NULL));
	cq_pump(s->c, WAIT_MS, has_ticket);
	struct cq_ticket t;
	CHECK(cq_save_ticket(s->c, &t), "the daemon sent no session ticket");
	tu_sleep_ms(200);
	struct cq_opts r = {.resume = &t};
	struct sess *s2 = sess_connect(id, &r, &why);
	if (!s2) {
		cq_ticket_free(&t);
		return why;
	}
	send_json(s2, F_HELLO, hello_json(s2, NULL)); /* before the handshake: 0-RTT */
	int got = read_frame(s2, WAIT_MS);
	cq_ticket_free(&t);
	CHECK(got == 1 && s2->type == F_HELLO, "no HELLO on the resumed connection");
	CHECK(cq_resumed(s2->c), "the session was not resumed");
	if (want_early)
		CHECK(cq_early_accepted(s2->c), "the daemon rejected the early data");
	else
		CHECK(!cq_early_accepted(s2->c),
		      "early data accepted although the ticket age was overstated");
	return NULL;
}

/* A session of `id` that leaves a ticket in t. */
static const char *get_ticket(const char *id, struct cq_ticket *t)
{
	const char *why;
	struct sess *s = sess_connect(id, NULL, &why);
	CHECK(s, "%s", why);
	send_json(s, F_HELLO, hello_json(s, NULL));
	cq_pump(s->c, WAIT_MS, has_ticket);
	CHECK(cq_save_ticket(s->c, t), "the daemon sent no session ticket");
	return NULL;
}

/* Resumes with t, HELLO in 0-RTT; *accepted says whether the early data was. */
static const char *resume_with(const char *id, struct cq_ticket *t, int *accepted)
{
	const char *why;
	struct cq_opts r = {.resume = t};
	struct sess *s = sess_connect(id, &r, &why);
	CHECK(s, "%s", why);
	send_json(s, F_HELLO, hello_json(s, NULL));
	CHECK(read_frame(s, WAIT_MS) == 1 && s->type == F_HELLO,
	      "no HELLO on the resumed connection");
	CHECK(cq_resumed(s->c), "the session was not resumed");
	*accepted = cq_early_accepted(s->c);
	return NULL;
}

/* A ticket issued before the anti-replay window last started anew carries no early data. */
static const char *tls_0rtt_window(void)
{
	struct cq_ticket old = {0}, fresh = {0};
	const char *r = get_ticket("c5", &old);
	int acc = 0;
	if (!r) {
		tu_sleep_ms(10500); /* longer than the 10 s window */
		r = get_ticket("c6", &fresh);
	}
	if (!r) /* this attempt starts a new window (and is itself accepted) */
		r = resume_with("c6", &fresh, &acc);
	if (!r && !acc)
		r = failed("a fresh ticket's early data was rejected");
	if (!r)
		r = resume_with("c5", &old, &acc);
	if (!r && acc)
		r = failed("early data accepted with a ticket older than the anti-replay window");
	cq_ticket_free(&old);
	cq_ticket_free(&fresh);
	return r;
}

static const char *tls_resume_0rtt(void)
{
	return resume("c3", 0, 1);
}

static const char *tls_0rtt_ticket_age(void)
{
	return resume("c4", 1, 0);
}

const struct check checks_tls[] = {
    {"tls.handshake", tls_handshake, "QUIC v1, TLS 1.3, ALPN agentsync/1, mutual certificates"},
    {"tls.server_identity", tls_server_identity,
     "the server's certificate chains to the CA, names its node id, has serverAuth"},
    {"tls.client_cert_required", tls_client_cert_required,
     "a client without a certificate is refused (certificate_required)"},
    {"tls.unknown_ca", tls_unknown_ca, "a client certificate from another CA is refused"},
    {"tls.client_eku", tls_client_eku,
     "a client certificate whose extended key usage excludes clientAuth is refused"},
    {"tls.no_eku_accepted", tls_no_eku_accepted,
     "a client certificate without extended key usage is accepted"},
    {"tls.alpn_missing", tls_alpn_missing, "a ClientHello without ALPN is refused"},
    {"tls.alpn_wrong", tls_alpn_wrong, "a ClientHello with another ALPN is refused"},
    {"tls.sni_ignored", tls_sni_ignored, "SNI is neither needed nor checked"},
    {"tls.id_from_dns_san", tls_id_from_dns_san, "without a CN the node id is the first DNS SAN"},
    {"tls.no_node_id", tls_no_node_id, "a certificate with neither CN nor DNS SAN is refused"},
    {"tls.transport_params", tls_transport_params,
     "the QUIC transport parameters the daemon announces"},
    {"tls.resume_0rtt", tls_resume_0rtt,
     "a resumed session's early data (HELLO in 0-RTT) is accepted"},
    {"tls.0rtt_ticket_age", tls_0rtt_ticket_age,
     "early data is refused when the client's ticket age exceeds the server's"},
    {"tls.0rtt_window", tls_0rtt_window,
     "early data is refused with a ticket issued before the anti-replay window restarted"},
    {NULL, NULL, NULL},
};
