/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The QUIC endpoint: one UDP socket on a libuv loop, datagrams routed to
 * connections by connection ID, new connections (with optional Retry),
 * stateless reset and version negotiation for what matches no connection,
 * resumption state per peer, and the flush scheduling that sends what
 * connections have queued once per loop phase.
 */
#include <errno.h>
#include <netinet/udp.h>
#include <sys/timerfd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include "clock.h"
#include "error.h"
#include "quic_int.h"

/* Stateless resets per second at most (a token bucket). */
#define RESET_RATE 64
/* Reports per second of connections refused before they existed. */
#define REFUSED_REPORTS 10
/* Lifetime of a Retry token. */
#define RETRY_TOKEN_TIMEOUT (10 * NGTCP2_SECONDS)

#define DEFAULT_IDLE_MS       30000u
#define DEFAULT_STREAM_WINDOW (1024u * 1024u)
#define DEFAULT_CONN_WINDOW   (4u * 1024u * 1024u)
#define DEFAULT_MAX_STREAMS   100
#define DEFAULT_MAX_UNACKED   (8u * 1024u * 1024u)
#define DEFAULT_MAX_CONNS     1024
#define DEFAULT_HANDSHAKE_MS  10000u
#define DEFAULT_MAX_HS        256
#define DEFAULT_MAX_HS_ADDR   32

/* Blob of ags_quic_ep_export_resumption(): magic, then two length-prefixed parts. */
static const uint8_t RESUME_MAGIC[4] = {'A', 'G', 'Q', '1'};

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* ---- connection ID map ---- */

static size_t cid_slot(const ags_quic_ep *ep, const uint8_t *p, size_t n)
{
	uint64_t h = ep->hkey ^ n;
	for (size_t i = 0; i < n; i += 8) {
		uint64_t w = 0;
		memcpy(&w, p + i, n - i < 8 ? n - i : 8);
		h ^= w;
		h *= 0x9e3779b97f4a7c15ull;
		h ^= h >> 29;
	}
	return (size_t)(h & (ep->ncap - 1));
}

static ags_quic_conn *cid_find(const ags_quic_ep *ep, const uint8_t *p, size_t n)
{
	for (ags_quic_cident *e = ep->cids[cid_slot(ep, p, n)]; e; e = e->next)
		if (e->cid.datalen == n && memcmp(e->cid.data, p, n) == 0)
			return e->c;
	return NULL;
}

static void cid_grow(ags_quic_ep *ep)
{
	size_t ncap = ep->ncap * 2;
	ags_quic_cident **tab = calloc(ncap, sizeof(*tab));
	if (!tab)
		return; /* longer chains, still correct */
	ags_quic_cident **old = ep->cids;
	size_t ocap = ep->ncap;
	ep->cids = tab;
	ep->ncap = ncap;
	for (size_t i = 0; i < ocap; i++) {
		while (old[i]) {
			ags_quic_cident *e = old[i];
			old[i] = e->next;
			size_t s = cid_slot(ep, e->cid.data, e->cid.datalen);
			e->next = tab[s];
			tab[s] = e;
		}
	}
	free(old);
}

int ags_quic_ep_cid_add(ags_quic_ep *ep, const ngtcp2_cid *cid, ags_quic_conn *c)
{
	size_t s = cid_slot(ep, cid->data, cid->datalen);
	for (ags_quic_cident *e = ep->cids[s]; e; e = e->next) {
		if (e->cid.datalen == cid->datalen &&
		    memcmp(e->cid.data, cid->data, cid->datalen) == 0)
			/* Never re-route: a client could pick another connection's ID as its first.
			 */
			return e->c == c ? 0 : AGS_ERR_EXISTS;
	}
	ags_quic_cident *e = malloc(sizeof(*e));
	if (!e)
		return AGS_ERR_NOMEM;
	e->cid = *cid;
	e->c = c;
	e->next = ep->cids[s];
	ep->cids[s] = e;
	if (++ep->ncids > ep->ncap)
		cid_grow(ep);
	return 0;
}

void ags_quic_ep_cid_remove(ags_quic_ep *ep, const ngtcp2_cid *cid)
{
	ags_quic_cident **pp = &ep->cids[cid_slot(ep, cid->data, cid->datalen)];
	for (; *pp; pp = &(*pp)->next) {
		ags_quic_cident *e = *pp;
		if (e->cid.datalen == cid->datalen &&
		    memcmp(e->cid.data, cid->data, cid->datalen) == 0) {
			*pp = e->next;
			free(e);
			ep->ncids--;
			return;
		}
	}
}

/* ---- flush scheduling ---- */

void ags_quic_ep_mark_dirty(ags_quic_ep *ep, ags_quic_conn *c)
{
	if (c->dirty || c->state == AGS_QC_DEAD)
		return;
	c->dirty = 1;
	c->dnext = ep->dirty;
	ep->dirty = c;
}

void ags_quic_ep_flush(ags_quic_ep *ep)
{
	while (ep->dirty && !ep->deleting) {
		ags_quic_conn *c = ep->dirty;
		ep->dirty = c->dnext;
		c->dnext = NULL;
		c->dirty = 0;
		ags_quic_conn_flush(c);
	}
}

static void on_prepare(uv_prepare_t *h)
{
	ags_quic_ep_flush(h->data);
}

static void on_check(uv_check_t *h)
{
	ags_quic_ep_flush(h->data);
}

/*
 * libuv timers have millisecond resolution, but pacing and loss timers on a
 * fast path are due sooner: such connections are flagged "soon" and served
 * from one timerfd (nanosecond resolution) armed for the earliest of them.
 */
static void soon_arm(ags_quic_ep *ep, uint64_t at)
{
	if (at >= ep->soon_at)
		return;
	ep->soon_at = at;
	if (at == 0)
		at = 1; /* an all-zero it_value would disarm */
	struct itimerspec its;
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = (time_t)(at / 1000000000u);
	its.it_value.tv_nsec = (long)(at % 1000000000u);
	(void)timerfd_settime(ep->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void on_soon(uv_poll_t *h, int status, int events)
{
	ags_quic_ep *ep = h->data;
	uint64_t ticks;
	if (read(ep->tfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		return;
	ep->soon_at = UINT64_MAX;
	uint64_t now = ags_mono_ns();
	ags_quic_conn *next;
	for (ags_quic_conn *c = ep->conns; c && ep->nsoon && !ep->deleting; c = next) {
		next = c->next;
		if (c->in_soon && ags_quic_conn_expiry(c) <= now) {
			ags_quic_ep_soon_remove(ep, c);
			ags_quic_conn_expire(c);
		}
	}
	/* Re-arm for those still waiting (expire() re-armed for the ones it re-flagged). */
	for (ags_quic_conn *c = ep->conns; c && ep->nsoon && !ep->deleting; c = c->next)
		if (c->in_soon)
			soon_arm(ep, ags_quic_conn_expiry(c));
	ags_quic_ep_flush(ep);
}

void ags_quic_ep_soon_add(ags_quic_ep *ep, ags_quic_conn *c, uint64_t at)
{
	if (ep->deleting)
		return;
	if (!c->in_soon) {
		c->in_soon = 1;
		ep->nsoon++;
	}
	soon_arm(ep, at);
}

void ags_quic_ep_soon_remove(ags_quic_ep *ep, ags_quic_conn *c)
{
	/* The timerfd may still fire for it: on_soon then finds nothing due. */
	if (!c->in_soon)
		return;
	c->in_soon = 0;
	ep->nsoon--;
}

static void on_poll(uv_poll_t *h, int status, int events);

void ags_quic_ep_want_write(ags_quic_ep *ep, int on)
{
	int ev = UV_READABLE | (on ? UV_WRITABLE : 0);
	if (ev == ep->poll_events || ep->deleting)
		return;
	ep->poll_events = ev;
	uv_poll_start(&ep->poll, ev, on_poll);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	ags_quic_ep *ep = h->data;
	if (status < 0)
		events = UV_READABLE; /* a socket error: a read surfaces and clears it */
	if (events & UV_WRITABLE) {
		int still = 0;
		ags_quic_ep_want_write(ep, 0);
		for (ags_quic_conn *c = ep->conns; c; c = c->next) {
			if (c->tx_blocked) {
				ags_quic_conn_on_writable(c);
				still |= c->tx_blocked;
			}
		}
		if (still)
			ags_quic_ep_want_write(ep, 1);
	}
	if (events & UV_READABLE)
		ags_quic_udp_read(ep);
	ags_quic_ep_flush(ep);
}

/* ---- stateless replies ---- */

static void send_stateless(ags_quic_ep *ep, const ags_quic_addr *to, const uint8_t *p, size_t n)
{
	size_t sent;
	(void)ags_quic_udp_send(ep, to, p, n, n, &sent); /* best effort: the peer retries */
}

static void send_version_negotiation(ags_quic_ep *ep, const ags_quic_addr *to,
                                     const ngtcp2_version_cid *vc)
{
	uint8_t buf[AGS_QUIC_STATELESS_MAX];
	uint32_t sv[2];
	/* A reserved version (0x?a?a?a?a) greases the list, as RFC 9000 6.3 suggests. */
	sv[0] = (uint32_t)((xorshift(&ep->rng) & 0xf0f0f0f0u) | 0x0a0a0a0au);
	sv[1] = NGTCP2_PROTO_VER_V1;
	ngtcp2_ssize n = ngtcp2_pkt_write_version_negotiation(
	    buf, sizeof(buf), (uint8_t)xorshift(&ep->rng), vc->scid, vc->scidlen, vc->dcid,
	    vc->dcidlen, sv, 2);
	if (n > 0)
		send_stateless(ep, to, buf, (size_t)n);
}

static void send_stateless_reset(ags_quic_ep *ep, const ags_quic_addr *to, const uint8_t *dcid,
                                 size_t dcidlen, size_t pktlen)
{
	uint64_t now = uv_now(ep->loop);
	if (now - ep->reset_refill_ms >= 1000) {
		ep->reset_refill_ms = now;
		ep->reset_tokens = RESET_RATE;
	}
	if (ep->reset_tokens == 0)
		return;
	ep->reset_tokens--;

	ngtcp2_cid cid;
	ngtcp2_cid_init(&cid, dcid, dcidlen);
	uint8_t token[NGTCP2_STATELESS_RESET_TOKENLEN];
	if (ngtcp2_crypto_generate_stateless_reset_token(token, ep->secret, sizeof(ep->secret),
	                                                 &cid) != 0)
		return;
	/* Smaller than what triggered it, so two endpoints cannot loop (RFC 9000 10.3.3). */
	size_t randlen = pktlen - NGTCP2_STATELESS_RESET_TOKENLEN - 1;
	if (randlen > 40)
		randlen = 40;
	uint8_t rnd[40];
	if (gnutls_rnd(GNUTLS_RND_NONCE, rnd, randlen) != 0)
		return;
	uint8_t buf[AGS_QUIC_STATELESS_MAX];
	ngtcp2_ssize n = ngtcp2_pkt_write_stateless_reset(buf, sizeof(buf), token, rnd, randlen);
	if (n > 0)
		send_stateless(ep, to, buf, (size_t)n);
}

static void send_retry(ags_quic_ep *ep, const ags_quic_addr *to, const ngtcp2_pkt_hd *hd,
                       size_t pktlen)
{
	ngtcp2_cid scid;
	scid.datalen = AGS_QUIC_SCIDLEN;
	if (gnutls_rnd(GNUTLS_RND_RANDOM, scid.data, scid.datalen) != 0)
		return;
	uint8_t token[NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN2];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t t = (uint64_t)ts.tv_sec * NGTCP2_SECONDS + (uint64_t)ts.tv_nsec;
	ngtcp2_ssize tlen = ngtcp2_crypto_generate_retry_token2(
	    token, ep->secret, sizeof(ep->secret), hd->version, (const ngtcp2_sockaddr *)&to->ss,
	    to->len, &scid, &hd->dcid, t);
	if (tlen < 0)
		return;
	uint8_t buf[AGS_QUIC_STATELESS_MAX];
	/* Retry must not amplify: at most 3x what the client sent. */
	size_t cap = pktlen * 3 < sizeof(buf) ? pktlen * 3 : sizeof(buf);
	ngtcp2_ssize n = ngtcp2_crypto_write_retry(buf, cap, hd->version, &hd->scid, &scid,
	                                           &hd->dcid, token, (size_t)tlen);
	if (n > 0)
		send_stateless(ep, to, buf, (size_t)n);
}

static void send_stateless_close(ags_quic_ep *ep, const ags_quic_addr *to, const ngtcp2_pkt_hd *hd,
                                 uint64_t code)
{
	uint8_t buf[AGS_QUIC_STATELESS_MAX];
	ngtcp2_ssize n = ngtcp2_crypto_write_connection_close(buf, sizeof(buf), hd->version,
	                                                      &hd->scid, &hd->dcid, code, NULL, 0);
	if (n > 0)
		send_stateless(ep, to, buf, (size_t)n);
}

/* ---- handshake budget ---- */

void ags_quic_ep_hs_remove(ags_quic_ep *ep, ags_quic_conn *c)
{
	if (!c->in_hs)
		return;
	if (c->hprev)
		c->hprev->hnext = c->hnext;
	else
		ep->hs_head = c->hnext;
	if (c->hnext)
		c->hnext->hprev = c->hprev;
	else
		ep->hs_tail = c->hprev;
	c->hnext = c->hprev = NULL;
	c->in_hs = 0;
	ep->nhs--;
}

static void hs_add(ags_quic_ep *ep, ags_quic_conn *c)
{
	c->hprev = NULL;
	c->hnext = ep->hs_head;
	if (ep->hs_head)
		ep->hs_head->hprev = c;
	else
		ep->hs_tail = c;
	ep->hs_head = c;
	c->in_hs = 1;
	ep->nhs++;
}

size_t ags_quic_ep_established(const ags_quic_ep *ep)
{
	return ep->nconns - ep->nhs;
}

/* Whether two addresses share the IP address (the port may differ). */
static int same_ip(const ags_quic_addr *a, const ags_quic_addr *b)
{
	if (a->ss.ss_family != b->ss.ss_family)
		return 0;
	if (a->ss.ss_family == AF_INET)
		return ((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)&b->ss)->sin_addr.s_addr;
	return memcmp(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr,
	              &((const struct sockaddr_in6 *)&b->ss)->sin6_addr,
	              sizeof(struct in6_addr)) == 0;
}

/* Incoming handshakes in progress from the IP address of `from` (bounded by max_handshakes). */
static size_t hs_from(const ags_quic_ep *ep, const ags_quic_addr *from)
{
	size_t n = 0;
	for (const ags_quic_conn *c = ep->hs_head; c; c = c->hnext)
		n += same_ip(&c->remote, from);
	return n;
}

/* Tells the app, at most REFUSED_REPORTS times a second, of an Initial that made no connection. */
static void report_refused(ags_quic_ep *ep, const ags_quic_addr *from, const char *reason)
{
	uint64_t now = uv_now(ep->loop);
	if (now - ep->refused_ms >= 1000) {
		ep->refused_ms = now;
		ep->refused_n = 0;
	}
	if (ep->cbs.on_refused && ep->refused_n++ < REFUSED_REPORTS) {
		char addr[AGS_QUIC_ADDR_MAX];
		ags_quic_addr_text(from, addr, sizeof(addr));
		ep->cbs.on_refused(ep->cbs.user_data, NULL, addr, reason);
	}
}

/*
 * A first Initial packet from a client. Handshakes have their own budget
 * (max_handshakes, max_handshakes_per_addr), apart from max_conns, which
 * only counts established connections: half-open connections can never
 * take the place of an established or authenticated peer.
 */
static void ep_accept(ags_quic_ep *ep, const ags_quic_addr *from, const uint8_t *data, size_t len)
{
	ngtcp2_pkt_hd hd;
	if (ngtcp2_accept(&hd, data, len) != 0)
		return;
	ngtcp2_cid ocid, *pocid = NULL;
	ngtcp2_token_type token_type = NGTCP2_TOKEN_TYPE_UNKNOWN;
	if (hd.tokenlen > 0 && hd.token[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY2) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t t = (uint64_t)ts.tv_sec * NGTCP2_SECONDS + (uint64_t)ts.tv_nsec;
		int rv = ngtcp2_crypto_verify_retry_token2(
		    &ocid, hd.token, hd.tokenlen, ep->secret, sizeof(ep->secret), hd.version,
		    (const ngtcp2_sockaddr *)&from->ss, from->len, &hd.dcid, RETRY_TOKEN_TIMEOUT,
		    t);
		if (rv == 0) {
			pocid = &ocid;
			token_type = NGTCP2_TOKEN_TYPE_RETRY;
		} else if (rv == NGTCP2_CRYPTO_ERR_VERIFY_TOKEN) {
			ep->stats.bad_tokens++;
			send_stateless_close(ep, from, &hd, NGTCP2_INVALID_TOKEN);
			return;
		}
	}
	/* Under pressure, only addresses that answered a Retry make state. */
	if ((ep->cfg.retry || ep->nhs >= ep->cfg.retry_threshold) && !pocid) {
		ep->stats.retries_sent++;
		send_retry(ep, from, &hd, len);
		return;
	}
	if (hs_from(ep, from) >= ep->cfg.max_handshakes_per_addr) {
		ep->stats.hs_refused_addr++;
		send_stateless_close(ep, from, &hd, NGTCP2_CONNECTION_REFUSED);
		report_refused(ep, from, "too many handshakes in progress from this address");
		return;
	}
	if (ep->nhs >= ep->cfg.max_handshakes && ep->hs_tail) {
		ep->stats.hs_evicted++;
		ags_quic_conn_evict(ep->hs_tail);
	}
	if (!pocid) {
		hd.token = NULL;
		hd.tokenlen = 0;
	}
	ags_quic_conn *c = NULL;
	if (ags_quic_conn_accept(ep, from, &hd, pocid, token_type, data, len, &c) == 0 && c &&
	    c->state == AGS_QC_ACTIVE && !c->handshake_done && !c->connected_reported)
		hs_add(ep, c);
}

void ags_quic_ep_get_stats(const ags_quic_ep *ep, ags_quic_ep_stats *out)
{
	if (!out)
		return;
	memset(out, 0, sizeof(*out));
	if (!ep)
		return;
	*out = ep->stats;
	out->handshakes = ep->nhs;
	out->handshakes_max = ep->cfg.max_handshakes;
}

void ags_quic_ep_on_datagram(ags_quic_ep *ep, const ags_quic_addr *from, const uint8_t *data,
                             size_t len)
{
	if (ep->cfg.test_drop_permille &&
	    xorshift(&ep->rng) % 1000 < (uint64_t)ep->cfg.test_drop_permille)
		return;
	ngtcp2_version_cid vc;
	int rv = ngtcp2_pkt_decode_version_cid(&vc, data, len, AGS_QUIC_SCIDLEN);
	if (rv == NGTCP2_ERR_VERSION_NEGOTIATION) {
		/* Only for datagrams big enough to be a client's first flight (no amplification).
		 */
		if (len >= NGTCP2_MAX_UDP_PAYLOAD_SIZE)
			send_version_negotiation(ep, from, &vc);
		return;
	}
	if (rv != 0)
		return;
	ags_quic_conn *c = cid_find(ep, vc.dcid, vc.dcidlen);
	if (c) {
		ags_quic_conn_recv(c, from, data, len);
		return;
	}
	if (!(data[0] & 0x80)) {
		/* A short-header packet for a connection we do not know (any more). */
		if (len >= AGS_QUIC_SCIDLEN + 22)
			send_stateless_reset(ep, from, vc.dcid, vc.dcidlen, len);
		return;
	}
	ep_accept(ep, from, data, len);
}

/* ---- resumption state ---- */

ags_quic_ticket *ags_quic_ep_ticket_find(ags_quic_ep *ep, const char *peer_id)
{
	if (!peer_id)
		return NULL;
	for (ags_quic_ticket *t = ep->tickets; t; t = t->next)
		if (strcmp(t->peer_id, peer_id) == 0)
			return t;
	return NULL;
}

ags_quic_ticket *ags_quic_ep_ticket_get(ags_quic_ep *ep, const char *peer_id)
{
	ags_quic_ticket *t = ags_quic_ep_ticket_find(ep, peer_id);
	if (t) {
		t->stamp = ++ep->ticket_stamp;
		return t;
	}
	if (strlen(peer_id) >= AGS_QUIC_PEER_ID_MAX)
		return NULL;
	if (ep->ntickets >= AGS_QUIC_TICKETS_MAX) {
		ags_quic_ticket **oldest = &ep->tickets;
		for (ags_quic_ticket **pp = &ep->tickets; *pp; pp = &(*pp)->next)
			if ((*pp)->stamp < (*oldest)->stamp)
				oldest = pp;
		t = *oldest;
		if (t) {
			*oldest = t->next;
			gnutls_free(t->ticket);
			free(t);
			ep->ntickets--;
		}
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	snprintf(t->peer_id, sizeof(t->peer_id), "%s", peer_id);
	t->stamp = ++ep->ticket_stamp;
	t->next = ep->tickets;
	ep->tickets = t;
	ep->ntickets++;
	return t;
}

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int ags_quic_ep_export_resumption(ags_quic_ep *ep, const char *peer_id, uint8_t **out, size_t *len)
{
	if (!ep || !peer_id || !out || !len)
		return AGS_ERR_INVALID;
	ags_quic_ticket *t = ags_quic_ep_ticket_find(ep, peer_id);
	if (!t || !t->ticket || t->tp_len == 0)
		return AGS_ERR_NOT_FOUND;
	size_t n = sizeof(RESUME_MAGIC) + 4 + t->ticket_len + 4 + t->tp_len;
	uint8_t *p = malloc(n);
	if (!p)
		return AGS_ERR_NOMEM;
	uint8_t *w = p;
	memcpy(w, RESUME_MAGIC, sizeof(RESUME_MAGIC));
	w += sizeof(RESUME_MAGIC);
	put_u32(w, (uint32_t)t->ticket_len);
	memcpy(w + 4, t->ticket, t->ticket_len);
	w += 4 + t->ticket_len;
	put_u32(w, (uint32_t)t->tp_len);
	memcpy(w + 4, t->tp, t->tp_len);
	*out = p;
	*len = n;
	return 0;
}

int ags_quic_ep_import_resumption(ags_quic_ep *ep, const char *peer_id, const uint8_t *data,
                                  size_t len)
{
	if (!ep || !peer_id || !*peer_id || !data || strlen(peer_id) >= AGS_QUIC_PEER_ID_MAX)
		return AGS_ERR_INVALID;
	size_t m = sizeof(RESUME_MAGIC);
	if (len < m + 8 || memcmp(data, RESUME_MAGIC, m) != 0)
		return AGS_ERR_PROTO;
	size_t tlen = get_u32(data + m);
	if (tlen == 0 || tlen > AGS_QUIC_TICKET_MAX || tlen > len - m - 8)
		return AGS_ERR_PROTO;
	size_t plen = get_u32(data + m + 4 + tlen);
	if (plen == 0 || plen > AGS_QUIC_TP_MAX || plen != len - m - 8 - tlen)
		return AGS_ERR_PROTO;
	uint8_t *copy = gnutls_malloc(tlen);
	if (!copy)
		return AGS_ERR_NOMEM;
	ags_quic_ticket *t = ags_quic_ep_ticket_get(ep, peer_id);
	if (!t) {
		gnutls_free(copy);
		return AGS_ERR_NOMEM;
	}
	memcpy(copy, data + m + 4, tlen);
	gnutls_free(t->ticket);
	t->ticket = copy;
	t->ticket_len = tlen;
	memcpy(t->tp, data + m + 8 + tlen, plen);
	t->tp_len = plen;
	return 0;
}

/* ---- endpoint lifecycle ---- */

static void ep_free(ags_quic_ep *ep)
{
	while (ep->tickets) {
		ags_quic_ticket *t = ep->tickets;
		ep->tickets = t->next;
		gnutls_free(t->ticket);
		free(t);
	}
	if (ep->cids) {
		for (size_t i = 0; i < ep->ncap; i++) {
			while (ep->cids[i]) {
				ags_quic_cident *e = ep->cids[i];
				ep->cids[i] = e->next;
				free(e);
			}
		}
		free(ep->cids);
	}
	free(ep->rxbuf);
	free(ep);
}

static void on_handle_closed(uv_handle_t *h)
{
	ags_quic_ep *ep = h->data;
	if (h == (uv_handle_t *)&ep->poll && ep->fd >= 0) {
		close(ep->fd);
		ep->fd = -1;
	}
	if (h == (uv_handle_t *)&ep->tpoll && ep->tfd >= 0) {
		close(ep->tfd);
		ep->tfd = -1;
	}
	if (--ep->handles_open == 0)
		ep_free(ep);
}

void ags_quic_ep_conn_freed(ags_quic_ep *ep)
{
	if (--ep->handles_open == 0 && ep->deleting)
		ep_free(ep);
}

static void apply_defaults(ags_quic_config *c)
{
	if (!c->idle_timeout_ms)
		c->idle_timeout_ms = DEFAULT_IDLE_MS;
	if (!c->stream_window)
		c->stream_window = DEFAULT_STREAM_WINDOW;
	if (!c->conn_window)
		c->conn_window = DEFAULT_CONN_WINDOW;
	if (c->conn_window < c->stream_window)
		c->conn_window = c->stream_window;
	if (!c->max_streams)
		c->max_streams = DEFAULT_MAX_STREAMS;
	if (!c->max_unacked)
		c->max_unacked = DEFAULT_MAX_UNACKED;
	if (!c->max_conns)
		c->max_conns = DEFAULT_MAX_CONNS;
	if (!c->handshake_timeout_ms)
		c->handshake_timeout_ms = DEFAULT_HANDSHAKE_MS;
	if (c->handshake_timeout_ms > c->idle_timeout_ms)
		c->handshake_timeout_ms = c->idle_timeout_ms;
	if (!c->max_handshakes)
		c->max_handshakes = DEFAULT_MAX_HS;
	if (!c->max_handshakes_per_addr)
		c->max_handshakes_per_addr = DEFAULT_MAX_HS_ADDR;
	if (!c->retry_threshold)
		c->retry_threshold = c->max_handshakes / 4 ? c->max_handshakes / 4 : 1;
}

int ags_quic_ep_new(uv_loop_t *loop, const ags_quic_config *cfg, const ags_quic_callbacks *cbs,
                    ags_quic_ep **out, ags_error *err)
{
	if (!loop || !cfg || !out)
		return ags_error_set(err, AGS_ERR_INVALID, NULL,
		                     "loop, config and out are required");
	if (!cfg->tls)
		return ags_error_set(err, AGS_ERR_INVALID, "tls", "a TLS context is required");
	if (cbs && cbs->version != AGS_QUIC_CALLBACKS_VERSION)
		return ags_error_set(err, AGS_ERR_INVALID, "callbacks",
		                     "callbacks version %u, expected %u", cbs->version,
		                     AGS_QUIC_CALLBACKS_VERSION);
	if (cfg->test_drop_permille > 1000)
		return ags_error_set(err, AGS_ERR_CONFIG, "test_drop_permille", "must be 0-1000");
	ags_quic_addr local;
	if (ags_quic_addr_parse(cfg->host, cfg->port, &local) != 0)
		return ags_error_set(err, AGS_ERR_CONFIG, "host",
		                     "'%s' is not a numeric IPv4 or IPv6 address", cfg->host);

	ags_quic_ep *ep = calloc(1, sizeof(*ep));
	if (!ep)
		return ags_error_set(err, AGS_ERR_NOMEM, NULL, "out of memory");
	ep->fd = -1;
	ep->tfd = -1;
	ep->soon_at = UINT64_MAX;
	ep->loop = loop;
	ep->cfg = *cfg;
	ep->cfg.host = NULL; /* not kept: the caller's memory */
	ep->cfg.static_secret = NULL;
	apply_defaults(&ep->cfg);
	if (cbs)
		ep->cbs = *cbs;
	ep->local = local;
	ep->ncap = 64;
	ep->cids = calloc(ep->ncap, sizeof(*ep->cids));
	ep->rxbuf = malloc((size_t)AGS_QUIC_RX_MSGS * (size_t)AGS_QUIC_RX_BUFSZ);
	int rv = AGS_ERR_NOMEM;
	if (!ep->cids || !ep->rxbuf) {
		ags_error_set(err, rv, NULL, "out of memory");
		goto fail;
	}
	if (cfg->static_secret && cfg->static_secret_len >= 16) {
		/* Whatever its length, the secret becomes 32 bytes. */
		if (gnutls_hash_fast(GNUTLS_DIG_SHA256, cfg->static_secret, cfg->static_secret_len,
		                     ep->secret) != 0) {
			rv = ags_error_set(err, AGS_ERR_TLS, "static_secret", "cannot hash it");
			goto fail;
		}
	} else if (cfg->static_secret) {
		rv = ags_error_set(err, AGS_ERR_CONFIG, "static_secret", "shorter than 16 bytes");
		goto fail;
	} else if (gnutls_rnd(GNUTLS_RND_KEY, ep->secret, sizeof(ep->secret)) != 0) {
		rv = ags_error_set(err, AGS_ERR_TLS, NULL, "no randomness");
		goto fail;
	}
	if (gnutls_rnd(GNUTLS_RND_RANDOM, &ep->hkey, sizeof(ep->hkey)) != 0 ||
	    gnutls_rnd(GNUTLS_RND_NONCE, &ep->rng, sizeof(ep->rng)) != 0) {
		rv = ags_error_set(err, AGS_ERR_TLS, NULL, "no randomness");
		goto fail;
	}
	ep->rng |= 1;
	rv = ags_quic_udp_open(&ep->local, &ep->fd, &ep->dual_stack, &ep->gro, err);
	if (rv != 0)
		goto fail;
	ep->port = ntohs(ep->local.ss.ss_family == AF_INET
	                     ? ((struct sockaddr_in *)&ep->local.ss)->sin_port
	                     : ((struct sockaddr_in6 *)&ep->local.ss)->sin6_port);
	if (!cfg->no_gso) {
		int seg = 0;
		socklen_t sl = sizeof(seg);
		ep->gso = getsockopt(ep->fd, IPPROTO_UDP, UDP_SEGMENT, &seg, &sl) == 0;
	}
	ep->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (ep->tfd < 0) {
		rv = ags_error_set(err, AGS_ERR_IO, NULL, "timerfd_create: %m");
		goto fail;
	}
	/*
	 * The handles. Once the first exists the endpoint cannot be freed here:
	 * libuv frees a handle's loop entry only in its close callback. If a
	 * later one fails, the handles made are closed and the last close
	 * callback frees the endpoint (and its descriptors) when the caller
	 * runs the loop, as after ags_quic_ep_del.
	 */
	const char *what = NULL;
	int made = 0, urv;
	if ((urv = uv_poll_init(loop, &ep->poll, ep->fd)) != 0)
		what = "uv_poll_init (socket)";
	else if (made++, (urv = uv_poll_init(loop, &ep->tpoll, ep->tfd)) != 0)
		what = "uv_poll_init (timer)";
	else if (made++, (urv = uv_prepare_init(loop, &ep->prepare)) != 0)
		what = "uv_prepare_init";
	else if (made++, (urv = uv_check_init(loop, &ep->check)) != 0)
		what = "uv_check_init";
	else
		made++;
	ep->poll.data = ep;
	ep->tpoll.data = ep;
	ep->prepare.data = ep;
	ep->check.data = ep;
	if (what) {
		rv = ags_error_set(err, AGS_ERR_IO, NULL, "%s failed: %s", what, uv_strerror(urv));
		if (made == 0)
			goto fail;
		/* A descriptor whose poll handle was not made is closed here, the others by
		 * their handle's close callback. */
		if (made < 2) {
			close(ep->tfd);
			ep->tfd = -1;
		}
		ep->handles_open = made;
		ep->deleting = 1;
		uv_handle_t *hs[] = {(uv_handle_t *)&ep->poll, (uv_handle_t *)&ep->tpoll,
		                     (uv_handle_t *)&ep->prepare, (uv_handle_t *)&ep->check};
		for (int i = 0; i < made; i++)
			uv_close(hs[i], on_handle_closed);
		return rv;
	}
	/* From here on the handles own the cleanup (ags_quic_ep_del). */
	ep->handles_open = 4;
	uv_prepare_start(&ep->prepare, on_prepare);
	uv_check_start(&ep->check, on_check);
	/* Flush hooks alone must not keep the loop running. */
	uv_unref((uv_handle_t *)&ep->prepare);
	uv_unref((uv_handle_t *)&ep->check);
	ep->poll_events = UV_READABLE;
	uv_poll_start(&ep->poll, UV_READABLE, on_poll);
	uv_poll_start(&ep->tpoll, UV_READABLE, on_soon);
	ep->reset_tokens = RESET_RATE;
	ep->reset_refill_ms = uv_now(loop);
	*out = ep;
	return 0;
fail:
	if (ep->fd >= 0)
		close(ep->fd);
	if (ep->tfd >= 0)
		close(ep->tfd);
	ep_free(ep);
	return rv;
}

void ags_quic_ep_del(ags_quic_ep *ep)
{
	if (!ep || ep->deleting)
		return;
	/* No new connections, reads or flushes from here on. */
	ep->deleting = 1;
	while (ep->conns)
		ags_quic_conn_shutdown(ep->conns);
	ep->dirty = NULL;
	uv_close((uv_handle_t *)&ep->poll, on_handle_closed);
	uv_close((uv_handle_t *)&ep->prepare, on_handle_closed);
	uv_close((uv_handle_t *)&ep->check, on_handle_closed);
	uv_close((uv_handle_t *)&ep->tpoll, on_handle_closed);
}

int ags_quic_ep_set_tls(ags_quic_ep *ep, ags_tls_ctx *tls)
{
	if (!ep || !tls)
		return AGS_ERR_INVALID;
	ep->cfg.tls = tls;
	return 0;
}

uint64_t ags_quic_ep_activity(const ags_quic_ep *ep)
{
	return ep ? ep->rx_batches : 0;
}

uint16_t ags_quic_ep_port(const ags_quic_ep *ep)
{
	return ep ? ep->port : 0;
}

const char *ags_quic_ep_own_id(const ags_quic_ep *ep)
{
	return ep ? ags_tls_ctx_own_id(ep->cfg.tls) : "";
}
