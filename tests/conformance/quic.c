/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The conformance client's QUIC transport (see quic.h). Written from the
 * ngtcp2 and GnuTLS documentation only: it shares no code with agentsync.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include "quic.h"

#define MAX_STREAMS 4
#define RECV_MAX    (256u * 1024u * 1024u) /* most unconsumed stream-0 bytes held */
#define WINDOW      (64u * 1024u * 1024u)  /* our flow-control windows */

/*
 * GnuTLS's clock hook (exported as GNUTLS_PRIVATE_3_4, used by GnuTLS's own
 * tests). Only the 0-RTT check that emulates a client measuring ticket age
 * from a receipt time kept in whole seconds uses it.
 */
extern void _gnutls_global_set_gettime_function(void (*fn)(struct timespec *));

struct chunk {
	struct chunk *next;
	size_t len, off; /* off: bytes handed to ngtcp2 */
	uint8_t data[];
};

struct stream {
	int64_t id; /* -1: not open (yet) */
	struct chunk *head, *tail;
	int reset;
	uint64_t reset_code;
};

struct cq_conn {
	int fd;
	struct sockaddr_in local, remote;
	ngtcp2_path path;
	ngtcp2_conn *qc;
	ngtcp2_crypto_conn_ref ref;
	gnutls_session_t tls;
	gnutls_certificate_credentials_t cred;
	struct stream st[MAX_STREAMS]; /* st[0]: the agentsync stream */
	uint8_t *rbuf;
	size_t rlen, rcap;
	struct cq_end end;
	int handshake_done, confirmed, early_attempted, early_rejected, seconds_clock;
};

static ngtcp2_tstamp now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ngtcp2_tstamp)ts.tv_sec * NGTCP2_SECONDS + (ngtcp2_tstamp)ts.tv_nsec;
}

static void precise_clock(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
}

static void seconds_clock(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_nsec = 0;
}

static void set_end(struct cq_conn *c, int by_peer, int app, uint64_t code, const uint8_t *reason,
                    size_t len)
{
	if (c->end.closed)
		return;
	c->end.closed = 1;
	c->end.by_peer = by_peer;
	c->end.app = app;
	c->end.code = code;
	size_t n = len < sizeof(c->end.reason) - 1 ? len : sizeof(c->end.reason) - 1;
	for (size_t i = 0; i < n; i++)
		c->end.reason[i] = (reason[i] >= 0x20 && reason[i] < 0x7f) ? (char)reason[i] : '?';
	c->end.reason[n] = '\0';
}

static struct stream *stream_of(struct cq_conn *c, int64_t sid)
{
	for (int i = 0; i < MAX_STREAMS; i++)
		if (c->st[i].id == sid)
			return &c->st[i];
	return NULL;
}

/* ---- ngtcp2 callbacks ---- */

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref)
{
	return ((struct cq_conn *)ref->user_data)->qc;
}

static void rand_cb(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *ctx)
{
	(void)ctx;
	gnutls_rnd(GNUTLS_RND_RANDOM, dest, len);
}

static int new_cid_cb(ngtcp2_conn *qc, ngtcp2_cid *cid, uint8_t *token, size_t cidlen, void *ud)
{
	(void)qc;
	(void)ud;
	if (gnutls_rnd(GNUTLS_RND_RANDOM, cid->data, cidlen) != 0 ||
	    gnutls_rnd(GNUTLS_RND_RANDOM, token, NGTCP2_STATELESS_RESET_TOKENLEN) != 0)
		return NGTCP2_ERR_CALLBACK_FAILURE;
	cid->datalen = cidlen;
	return 0;
}

static int recv_crypto_cb(ngtcp2_conn *qc, ngtcp2_encryption_level level, uint64_t offset,
                          const uint8_t *data, size_t len, void *ud)
{
	struct cq_conn *c = ud;
	/* A NewSessionTicket comes at the 1-RTT level; GnuTLS notes its arrival time. */
	int hook = c->seconds_clock && level == NGTCP2_ENCRYPTION_LEVEL_1RTT;
	if (hook)
		_gnutls_global_set_gettime_function(seconds_clock);
	int rv = ngtcp2_crypto_recv_crypto_data_cb(qc, level, offset, data, len, ud);
	if (hook) /* GnuTLS calls the hook unconditionally: put a precise clock back */
		_gnutls_global_set_gettime_function(precise_clock);
	return rv;
}

static int recv_stream_cb(ngtcp2_conn *qc, uint32_t flags, int64_t sid, uint64_t offset,
                          const uint8_t *data, size_t len, void *ud, void *sud)
{
	(void)flags;
	(void)offset;
	(void)sud;
	struct cq_conn *c = ud;
	if (sid == c->st[0].id && len) {
		if (c->rlen + len > RECV_MAX)
			return NGTCP2_ERR_CALLBACK_FAILURE;
		if (c->rlen + len > c->rcap) {
			size_t cap = c->rcap ? c->rcap : 65536;
			while (cap < c->rlen + len)
				cap *= 2;
			uint8_t *p = realloc(c->rbuf, cap);
			if (!p)
				return NGTCP2_ERR_CALLBACK_FAILURE;
			c->rbuf = p;
			c->rcap = cap;
		}
		memcpy(c->rbuf + c->rlen, data, len);
		c->rlen += len;
	}
	/* Everything is buffered at once, so credit goes back at once. */
	ngtcp2_conn_extend_max_stream_offset(qc, sid, len);
	ngtcp2_conn_extend_max_offset(qc, len);
	return 0;
}

static int stream_reset_cb(ngtcp2_conn *qc, int64_t sid, uint64_t final_size, uint64_t code,
                           void *ud, void *sud)
{
	(void)qc;
	(void)final_size;
	(void)sud;
	struct stream *s = stream_of(ud, sid);
	if (s && !s->reset) {
		s->reset = 1;
		s->reset_code = code;
	}
	return 0;
}

static int stop_sending_cb(ngtcp2_conn *qc, int64_t sid, uint64_t code, void *ud, void *sud)
{
	return stream_reset_cb(qc, sid, 0, code, ud, sud);
}

static int stream_close_cb(ngtcp2_conn *qc, uint32_t flags, int64_t sid, uint64_t code, void *ud,
                           void *sud)
{
	if (flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET)
		return stream_reset_cb(qc, sid, 0, code, ud, sud);
	return 0;
}

/* Early data the server refused: ngtcp2 dropped the streams; everything goes again. */
static void restart_streams(struct cq_conn *c)
{
	for (int i = 0; i < MAX_STREAMS; i++) {
		if (c->st[i].id < 0)
			continue;
		c->st[i].id = i == 0 ? -2 : -1; /* -2: stream 0 to be reopened */
		for (struct chunk *k = c->st[i].head; k; k = k->next)
			k->off = 0;
	}
}

static int handshake_completed_cb(ngtcp2_conn *qc, void *ud)
{
	struct cq_conn *c = ud;
	c->handshake_done = 1;
	if (c->early_attempted && !(gnutls_session_get_flags(c->tls) & GNUTLS_SFLAGS_EARLY_DATA)) {
		c->early_rejected = 1;
		if (!ngtcp2_conn_get_tls_early_data_rejected(qc) &&
		    ngtcp2_conn_tls_early_data_rejected(qc) != 0)
			return NGTCP2_ERR_CALLBACK_FAILURE;
		restart_streams(c);
	}
	return 0;
}

static int handshake_confirmed_cb(ngtcp2_conn *qc, void *ud)
{
	(void)qc;
	((struct cq_conn *)ud)->confirmed = 1;
	return 0;
}

static int early_rejected_cb(ngtcp2_conn *qc, void *ud)
{
	(void)qc;
	struct cq_conn *c = ud;
	c->early_rejected = 1;
	restart_streams(c);
	return 0;
}

/* ---- setup ---- */

static int tls_setup(struct cq_conn *c, const struct cq_opts *o, char *err, size_t errlen)
{
	int g = gnutls_certificate_allocate_credentials(&c->cred);
	if (g == 0 && o->ca)
		g = gnutls_certificate_set_x509_trust_file(c->cred, o->ca, GNUTLS_X509_FMT_PEM) > 0
		        ? 0
		        : GNUTLS_E_FILE_ERROR;
	if (g == 0 && o->cert)
		g = gnutls_certificate_set_x509_key_file(c->cred, o->cert, o->key,
		                                         GNUTLS_X509_FMT_PEM);
	if (g == 0)
		g = gnutls_init(&c->tls, GNUTLS_CLIENT | GNUTLS_ENABLE_EARLY_DATA |
		                             GNUTLS_NO_END_OF_EARLY_DATA);
	if (g == 0)
		g = gnutls_priority_set_direct(
		    c->tls, "NORMAL:-VERS-ALL:+VERS-TLS1.3:%DISABLE_TLS13_COMPAT_MODE", NULL);
	if (g == 0)
		g = gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, c->cred);
	if (g != 0) {
		snprintf(err, errlen, "TLS setup: %s", gnutls_strerror(g));
		return -1;
	}
	if (ngtcp2_crypto_gnutls_configure_client_session(c->tls) != 0) {
		snprintf(err, errlen, "ngtcp2_crypto_gnutls_configure_client_session failed");
		return -1;
	}
	/* The server's chain must lead to our CA (no host name: node ids are not host names). */
	gnutls_session_set_verify_cert(c->tls, NULL, 0);
	const char *alpn = o->alpn ? o->alpn : "agentsync/1";
	if (alpn[0]) {
		gnutls_datum_t d = {(unsigned char *)alpn, (unsigned)strlen(alpn)};
		gnutls_alpn_set_protocols(c->tls, &d, 1, 0);
	}
	if (o->sni)
		gnutls_server_name_set(c->tls, GNUTLS_NAME_DNS, o->sni, strlen(o->sni));
	if (o->resume && o->resume->data &&
	    gnutls_session_set_data(c->tls, o->resume->data, o->resume->len) != 0) {
		snprintf(err, errlen, "cannot set the saved session");
		return -1;
	}
	c->ref.get_conn = get_conn;
	c->ref.user_data = c;
	gnutls_session_set_ptr(c->tls, &c->ref);
	return 0;
}

struct cq_conn *cq_connect(const struct cq_opts *o, char *err, size_t errlen)
{
	struct cq_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (int i = 0; i < MAX_STREAMS; i++)
		c->st[i].id = -1;
	c->st[0].id = -2;
	c->seconds_clock = o->ticket_time_in_seconds;
	c->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	c->remote.sin_family = AF_INET;
	c->remote.sin_port = htons((uint16_t)o->port);
	c->remote.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof(c->local);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&c->remote, sizeof(c->remote)) != 0 ||
	    getsockname(c->fd, (struct sockaddr *)&c->local, &sl) != 0) {
		char eb[128];
		snprintf(err, errlen, "UDP socket: %s", strerror_r(errno, eb, sizeof(eb)));
		goto fail;
	}
	if (tls_setup(c, o, err, errlen) != 0)
		goto fail;

	ngtcp2_callbacks cb = {
	    .client_initial = ngtcp2_crypto_client_initial_cb,
	    .recv_crypto_data = recv_crypto_cb,
	    .encrypt = ngtcp2_crypto_encrypt_cb,
	    .decrypt = ngtcp2_crypto_decrypt_cb,
	    .hp_mask = ngtcp2_crypto_hp_mask_cb,
	    .recv_retry = ngtcp2_crypto_recv_retry_cb,
	    .update_key = ngtcp2_crypto_update_key_cb,
	    .delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
	    .delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
	    .get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
	    .version_negotiation = ngtcp2_crypto_version_negotiation_cb,
	    .rand = rand_cb,
	    .get_new_connection_id = new_cid_cb,
	    .recv_stream_data = recv_stream_cb,
	    .stream_reset = stream_reset_cb,
	    .stream_stop_sending = stop_sending_cb,
	    .stream_close = stream_close_cb,
	    .handshake_completed = handshake_completed_cb,
	    .handshake_confirmed = handshake_confirmed_cb,
	    .tls_early_data_rejected = early_rejected_cb,
	};
	ngtcp2_settings settings;
	ngtcp2_settings_default(&settings);
	settings.initial_ts = now_ns();
	ngtcp2_transport_params params;
	ngtcp2_transport_params_default(&params);
	params.initial_max_stream_data_bidi_local = WINDOW;
	params.initial_max_stream_data_bidi_remote = WINDOW;
	params.initial_max_data = WINDOW;
	params.initial_max_streams_bidi = 4;
	params.max_idle_timeout = 30 * NGTCP2_SECONDS;
	ngtcp2_cid dcid, scid;
	dcid.datalen = 16;
	scid.datalen = 16;
	gnutls_rnd(GNUTLS_RND_RANDOM, dcid.data, dcid.datalen);
	gnutls_rnd(GNUTLS_RND_RANDOM, scid.data, scid.datalen);
	c->path.local.addr = (ngtcp2_sockaddr *)&c->local;
	c->path.local.addrlen = sizeof(c->local);
	c->path.remote.addr = (ngtcp2_sockaddr *)&c->remote;
	c->path.remote.addrlen = sizeof(c->remote);
	if (ngtcp2_conn_client_new(&c->qc, &dcid, &scid, &c->path, NGTCP2_PROTO_VER_V1, &cb,
	                           &settings, &params, NULL, c) != 0) {
		snprintf(err, errlen, "ngtcp2_conn_client_new failed");
		goto fail;
	}
	ngtcp2_conn_set_tls_native_handle(c->qc, c->tls);
	if (o->resume && o->resume->tp_len &&
	    ngtcp2_conn_decode_and_set_0rtt_transport_params(c->qc, o->resume->tp,
	                                                     o->resume->tp_len) == 0)
		c->early_attempted = 1;
	return c;
fail:
	cq_close(c, 0);
	return NULL;
}

/* ---- I/O ---- */

static void open_streams(struct cq_conn *c)
{
	if (c->st[0].id == -2 && (c->early_attempted || c->handshake_done) && !c->end.closed) {
		int64_t sid;
		if (ngtcp2_conn_open_bidi_stream(c->qc, &sid, NULL) == 0)
			c->st[0].id = sid;
	}
}

static void fail_local(struct cq_conn *c, int rv)
{
	if (rv == NGTCP2_ERR_CRYPTO) {
		c->end.local_tls = 1;
		char r[64];
		snprintf(r, sizeof(r), "our TLS refused the peer (alert %u)",
		         ngtcp2_conn_get_tls_alert(c->qc));
		set_end(c, 0, 0, 0x100u + ngtcp2_conn_get_tls_alert(c->qc), (const uint8_t *)r,
		        strlen(r));
	} else {
		const char *r = ngtcp2_strerror(rv);
		set_end(c, 0, 0, 0, (const uint8_t *)r, strlen(r));
	}
}

static void write_all(struct cq_conn *c)
{
	uint8_t buf[1500];
	if (c->end.closed)
		return;
	open_streams(c);
	int blocked[MAX_STREAMS] = {0};
	for (int guard = 0; guard < 4096; guard++) {
		struct stream *s = NULL;
		struct chunk *k = NULL;
		for (int i = 0; i < MAX_STREAMS && !s; i++) {
			if (c->st[i].id < 0 || blocked[i])
				continue;
			for (k = c->st[i].head; k && k->off == k->len; k = k->next)
				;
			if (k)
				s = &c->st[i];
		}
		ngtcp2_vec v = {0};
		if (s) {
			v.base = k->data + k->off;
			v.len = k->len - k->off;
		}
		ngtcp2_ssize nd = -1;
		ngtcp2_pkt_info pi;
		ngtcp2_ssize n = ngtcp2_conn_writev_stream(
		    c->qc, &c->path, &pi, buf, sizeof(buf), &nd, NGTCP2_WRITE_STREAM_FLAG_NONE,
		    s ? s->id : -1, s ? &v : NULL, s ? 1 : 0, now_ns());
		if (n < 0) {
			if (s &&
			    (n == NGTCP2_ERR_STREAM_DATA_BLOCKED ||
			     n == NGTCP2_ERR_STREAM_SHUT_WR || n == NGTCP2_ERR_STREAM_NOT_FOUND)) {
				blocked[s - c->st] = 1;
				continue;
			}
			fail_local(c, (int)n);
			return;
		}
		if (nd > 0)
			k->off += (size_t)nd;
		if (n == 0) {
			if (s && nd <= 0) {
				blocked[s - c->st] = 1; /* congestion or flow control: later */
				continue;
			}
			break;
		}
		if (send(c->fd, buf, (size_t)n, 0) < 0 && errno != EAGAIN)
			break;
	}
}

static void read_all(struct cq_conn *c)
{
	uint8_t buf[65536];
	for (;;) {
		ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
		if (n <= 0)
			return;
		ngtcp2_pkt_info pi = {0};
		int rv = ngtcp2_conn_read_pkt(c->qc, &c->path, &pi, buf, (size_t)n, now_ns());
		if (rv == NGTCP2_ERR_DRAINING || rv == NGTCP2_ERR_CLOSING) {
			const ngtcp2_ccerr *e = ngtcp2_conn_get_ccerr(c->qc);
			set_end(c, 1, e->type == NGTCP2_CCERR_TYPE_APPLICATION, e->error_code,
			        e->reason, e->reasonlen);
			return;
		}
		if (rv != 0) {
			fail_local(c, rv);
			/* Tell the peer, as a TLS stack would. */
			ngtcp2_ccerr ce;
			ngtcp2_ccerr_default(&ce);
			if (rv == NGTCP2_ERR_CRYPTO)
				ngtcp2_ccerr_set_tls_alert(&ce, ngtcp2_conn_get_tls_alert(c->qc),
				                           NULL, 0);
			ngtcp2_pkt_info cpi;
			ngtcp2_ssize m = ngtcp2_conn_write_connection_close(
			    c->qc, &c->path, &cpi, buf, sizeof(buf), &ce, now_ns());
			if (m > 0)
				(void)send(c->fd, buf, (size_t)m, 0);
			return;
		}
	}
}

void cq_pump(struct cq_conn *c, int ms, int (*until)(struct cq_conn *c))
{
	ngtcp2_tstamp deadline = now_ns() + (ngtcp2_tstamp)ms * NGTCP2_MILLISECONDS;
	while (!c->end.closed) {
		write_all(c);
		if (until && until(c))
			return;
		ngtcp2_tstamp now = now_ns();
		if (now >= deadline)
			return;
		ngtcp2_tstamp exp = ngtcp2_conn_get_expiry(c->qc);
		ngtcp2_tstamp wake = exp < deadline ? exp : deadline;
		int wait_ms =
		    wake > now ? (int)((wake - now + NGTCP2_MILLISECONDS - 1) / NGTCP2_MILLISECONDS)
		               : 0;
		struct pollfd p = {c->fd, POLLIN, 0};
		if (poll(&p, 1, wait_ms) > 0)
			read_all(c);
		if (c->end.closed)
			return;
		if (ngtcp2_conn_get_expiry(c->qc) <= now_ns()) {
			int rv = ngtcp2_conn_handle_expiry(c->qc, now_ns());
			if (rv == NGTCP2_ERR_IDLE_CLOSE) {
				c->end.timed_out = 1;
				set_end(c, 0, 0, 0, (const uint8_t *)"idle timeout", 12);
			} else if (rv != 0) {
				fail_local(c, rv);
			}
		}
	}
}

static int is_confirmed(struct cq_conn *c)
{
	return c->confirmed;
}

int cq_wait_connected(struct cq_conn *c, int ms)
{
	cq_pump(c, ms, is_confirmed);
	return c->confirmed && !c->end.closed;
}

static int queue(struct stream *s, const void *data, size_t len)
{
	struct chunk *k = malloc(sizeof(*k) + len);
	if (!k)
		return -1;
	k->next = NULL;
	k->len = len;
	k->off = 0;
	memcpy(k->data, data, len);
	if (s->tail)
		s->tail->next = k;
	else
		s->head = k;
	s->tail = k;
	return 0;
}

int cq_send(struct cq_conn *c, const void *data, size_t len)
{
	if (c->end.closed || queue(&c->st[0], data, len) != 0)
		return -1;
	write_all(c);
	return 0;
}

int64_t cq_send_other_stream(struct cq_conn *c, const void *data, size_t len)
{
	for (int i = 1; i < MAX_STREAMS; i++) {
		if (c->st[i].id != -1 || c->st[i].head)
			continue;
		int64_t sid;
		if (ngtcp2_conn_open_bidi_stream(c->qc, &sid, NULL) != 0)
			return -1;
		c->st[i].id = sid;
		if (queue(&c->st[i], data, len) != 0)
			return -1;
		write_all(c);
		return sid;
	}
	return -1;
}

int cq_stream_reset(struct cq_conn *c, int64_t sid, uint64_t *code)
{
	struct stream *s = stream_of(c, sid);
	if (!s || !s->reset)
		return 0;
	if (code)
		*code = s->reset_code;
	return 1;
}

const uint8_t *cq_data(struct cq_conn *c, size_t *len)
{
	*len = c->rlen;
	return c->rbuf;
}

void cq_consume(struct cq_conn *c, size_t n)
{
	if (n > c->rlen)
		n = c->rlen;
	memmove(c->rbuf, c->rbuf + n, c->rlen - n);
	c->rlen -= n;
}

const struct cq_end *cq_end(struct cq_conn *c)
{
	return &c->end;
}

int cq_resumed(struct cq_conn *c)
{
	return c->tls && gnutls_session_is_resumed(c->tls);
}

int cq_early_accepted(struct cq_conn *c)
{
	return c->early_attempted && c->handshake_done && !c->early_rejected;
}

void *cq_tls(struct cq_conn *c)
{
	return c->tls;
}

const void *cq_remote_params(struct cq_conn *c)
{
	return ngtcp2_conn_get_remote_transport_params(c->qc);
}

int cq_save_ticket(struct cq_conn *c, struct cq_ticket *t)
{
	memset(t, 0, sizeof(*t));
	if (!(gnutls_session_get_flags(c->tls) & GNUTLS_SFLAGS_SESSION_TICKET))
		return 0;
	gnutls_datum_t d = {NULL, 0};
	if (gnutls_session_get_data2(c->tls, &d) != 0)
		return 0;
	t->data = malloc(d.size);
	if (!t->data) {
		gnutls_free(d.data);
		return 0;
	}
	memcpy(t->data, d.data, d.size);
	t->len = d.size;
	gnutls_free(d.data);
	ngtcp2_ssize n = ngtcp2_conn_encode_0rtt_transport_params(c->qc, t->tp, sizeof(t->tp));
	t->tp_len = n > 0 ? (size_t)n : 0;
	return 1;
}

void cq_ticket_free(struct cq_ticket *t)
{
	free(t->data);
	memset(t, 0, sizeof(*t));
}

void cq_close(struct cq_conn *c, uint64_t app_code)
{
	if (!c)
		return;
	if (c->qc && !c->end.closed && c->handshake_done) {
		uint8_t buf[1500];
		ngtcp2_ccerr ce;
		ngtcp2_ccerr_set_application_error(&ce, app_code, NULL, 0);
		ngtcp2_pkt_info pi;
		ngtcp2_ssize n = ngtcp2_conn_write_connection_close(c->qc, &c->path, &pi, buf,
		                                                    sizeof(buf), &ce, now_ns());
		if (n > 0)
			(void)send(c->fd, buf, (size_t)n, 0);
	}
	for (int i = 0; i < MAX_STREAMS; i++)
		for (struct chunk *k = c->st[i].head; k;) {
			struct chunk *next = k->next;
			free(k);
			k = next;
		}
	if (c->qc)
		ngtcp2_conn_del(c->qc);
	if (c->tls)
		gnutls_deinit(c->tls);
	if (c->cred)
		gnutls_certificate_free_credentials(c->cred);
	if (c->fd >= 0)
		close(c->fd);
	free(c->rbuf);
	free(c);
}
