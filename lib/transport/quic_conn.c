/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One QUIC connection: creation (client and server), reading datagrams,
 * writing packets in GSO batches with pacing, the timer, and the end of a
 * connection (closing and draining periods, 3 PTO each). The ngtcp2
 * callbacks are in quic_events.c.
 *
 * Teardown rule: a connection's memory is only released from its timer's
 * close callback, and the connection is only destroyed from its own timer
 * callback (or by the endpoint's shutdown), so a handle stays valid for the
 * rest of any loop phase in which it ended.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include "clock.h"
#include "error.h"
#include "quic_int.h"

/* GSO batches one flush may send before yielding to the loop. */
#define FLUSH_BATCHES 4
/* How long a close waits for the stream data written before it (an ERROR frame). */
#define CLOSE_FLUSH_NS (200 * NGTCP2_MILLISECONDS)
/* Client's first destination connection ID length (>= NGTCP2_MIN_INITIAL_DCIDLEN). */
#define CLIENT_DCIDLEN 18

static void conn_on_error(ags_quic_conn *c, int rv);

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref)
{
	ags_quic_conn *c = ref->user_data;
	return c->qc;
}

/* ---- lifecycle ---- */

static void on_timer(uv_timer_t *t);

static void on_timer_closed(uv_handle_t *h)
{
	ags_quic_conn *c = h->data;
	ags_quic_ep *ep = c->ep;
	free(c);
	ags_quic_ep_conn_freed(ep);
}

static ags_quic_conn *conn_alloc(ags_quic_ep *ep, const ags_quic_addr *remote)
{
	ags_quic_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->txbuf = malloc(AGS_QUIC_TXBUF);
	if (!c->txbuf) {
		free(c);
		return NULL;
	}
	c->ep = ep;
	c->remote = *remote;
	ags_quic_addr_text(remote, c->peer_addr, sizeof(c->peer_addr));
	c->ref.get_conn = get_conn;
	c->ref.user_data = c;
	ngtcp2_ccerr_default(&c->ccerr);
	if (uv_timer_init(ep->loop, &c->timer) != 0) {
		/* Nothing was made in the loop: the connection can go at once. */
		free(c->txbuf);
		free(c);
		return NULL;
	}
	c->timer.data = c;
	ep->handles_open++;
	return c;
}

static void conn_link(ags_quic_conn *c)
{
	ags_quic_ep *ep = c->ep;
	c->prev = NULL;
	c->next = ep->conns;
	if (ep->conns)
		ep->conns->prev = c;
	ep->conns = c;
	ep->nconns++;
	c->linked = 1;
	c->last_rx_ns = ags_mono_ns();
}

/* Frees everything but the memory of c, which its timer's close callback releases. */
static void conn_destroy(ags_quic_conn *c)
{
	ags_quic_ep *ep = c->ep;
	if (c->linked) {
		if (c->prev)
			c->prev->next = c->next;
		else
			ep->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
		c->linked = 0;
		ep->nconns--;
	}
	if (c->dirty) {
		for (ags_quic_conn **pp = &ep->dirty; *pp; pp = &(*pp)->dnext) {
			if (*pp == c) {
				*pp = c->dnext;
				break;
			}
		}
		c->dirty = 0;
	}
	ags_quic_ep_soon_remove(ep, c);
	ags_quic_ep_hs_remove(ep, c);
	/* Every route to c: its own IDs and the client's first DCID. */
	for (size_t i = 0; i < ep->ncap; i++) {
		for (ags_quic_cident **pp = &ep->cids[i]; *pp;) {
			if ((*pp)->c == c) {
				ags_quic_cident *e = *pp;
				*pp = e->next;
				free(e);
				ep->ncids--;
			} else {
				pp = &(*pp)->next;
			}
		}
	}
	while (c->streams)
		ags_quic_stream_free(c, c->streams, AGS_ERR_CLOSED);
	ags_quic_early_free(c);
	if (c->qc)
		ngtcp2_conn_del(c->qc);
	c->qc = NULL;
	if (c->tls)
		ags_tls_session_del(c->tls);
	c->tls = NULL;
	free(c->txbuf);
	c->txbuf = NULL;
	free(c->closebuf);
	c->closebuf = NULL;
	c->state = AGS_QC_DEAD;
	uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

/* Ends c without sending anything; it is destroyed from its timer. */
static void conn_kill(ags_quic_conn *c)
{
	c->state = AGS_QC_DEAD;
	ags_quic_ep_soon_remove(c->ep, c);
	uv_timer_start(&c->timer, on_timer, 0, 0);
}

void ags_quic_conn_evict(ags_quic_conn *c)
{
	ags_quic_ep_hs_remove(c->ep, c);
	if (c->state != AGS_QC_ACTIVE)
		return;
	c->quiet = 1;
	c->state = AGS_QC_DEAD;
	ags_quic_report_end(c, 0, "handshake dropped (handshake budget full)", 0);
	conn_kill(c);
}

/* Waits 3 PTO (closing or draining period), then destroys c. */
static void conn_linger(ags_quic_conn *c, int state)
{
	c->state = state;
	ags_quic_ep_soon_remove(c->ep, c);
	uint64_t ms = 3 * ngtcp2_conn_get_pto(c->qc) / NGTCP2_MILLISECONDS + 1;
	uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* Writes our CONNECTION_CLOSE (c->ccerr) into closebuf and sends it. Returns its length. */
static size_t send_close(ags_quic_conn *c)
{
	c->closebuf = malloc(AGS_QUIC_STATELESS_MAX);
	if (!c->closebuf)
		return 0;
	ngtcp2_path_storage ps;
	ngtcp2_path_storage_zero(&ps);
	ngtcp2_pkt_info pi;
	ngtcp2_ssize n = ngtcp2_conn_write_connection_close(
	    c->qc, &ps.path, &pi, c->closebuf, AGS_QUIC_STATELESS_MAX, &c->ccerr, ags_mono_ns());
	if (n <= 0)
		return 0;
	c->closelen = (size_t)n;
	const ngtcp2_path *p = ngtcp2_conn_get_path(c->qc);
	ags_quic_addr to;
	memcpy(&to.ss, p->remote.addr, p->remote.addrlen);
	to.len = p->remote.addrlen;
	size_t sent;
	(void)ags_quic_udp_send(c->ep, &to, c->closebuf, c->closelen, c->closelen, &sent);
	c->bytes_out += sent;
	return c->closelen;
}

/* We end the connection with c->ccerr: send CONNECTION_CLOSE, tell the app, linger. */
static void conn_start_closing(ags_quic_conn *c)
{
	if (c->state != AGS_QC_ACTIVE)
		return;
	if (!c->close_reason[0])
		snprintf(c->close_reason, sizeof(c->close_reason), "closed");
	size_t n = send_close(c);
	c->state = AGS_QC_CLOSING;
	ags_quic_ep_hs_remove(c->ep, c); /* no longer a handshake in progress */
	ags_quic_report_end(c, c->ccerr.error_code, c->close_reason, 0);
	if (n > 0)
		conn_linger(c, AGS_QC_CLOSING);
	else
		conn_kill(c);
}

/* Text for a CONNECTION_CLOSE the peer sent. */
static void peer_close_text(ags_quic_conn *c, const ngtcp2_ccerr *ce, char *buf, size_t cap)
{
	char reason[AGS_QUIC_REASON_MAX];
	ags_quic_copy_text(reason, sizeof(reason), ce->reason, ce->reasonlen);
	if (c->got_reset) {
		snprintf(buf, cap, "stateless reset from peer");
	} else if (ce->type == NGTCP2_CCERR_TYPE_APPLICATION) {
		snprintf(buf, cap, "%s", reason[0] ? reason : "closed by peer");
	} else if (ce->error_code >= NGTCP2_CRYPTO_ERROR && ce->error_code <= 0x1ff) {
		const char *alert =
		    gnutls_alert_get_name((gnutls_alert_description_t)(ce->error_code & 0xff));
		if (reason[0])
			snprintf(buf, cap, "%.200s (TLS alert: %s)", reason, alert ? alert : "?");
		else
			snprintf(buf, cap, "TLS alert: %s", alert ? alert : "?");
	} else if (reason[0]) {
		snprintf(buf, cap, "%.200s (transport error 0x%llx)", reason,
		         (unsigned long long)ce->error_code);
	} else {
		snprintf(buf, cap, "transport error 0x%llx", (unsigned long long)ce->error_code);
	}
}

/* The peer closed (or reset) the connection: tell the app, stay silent for 3 PTO. */
static void conn_enter_draining(ags_quic_conn *c)
{
	const ngtcp2_ccerr *ce = ngtcp2_conn_get_ccerr(c->qc);
	char text[AGS_QUIC_REASON_MAX];
	peer_close_text(c, ce, text, sizeof(text));
	if (!c->connected_reported && !c->refusal[0])
		snprintf(c->refusal, sizeof(c->refusal), "peer refused the handshake: %.200s",
		         text);
	snprintf(c->close_reason, sizeof(c->close_reason), "%s", text);
	c->state = AGS_QC_DRAINING;
	ags_quic_ep_hs_remove(c->ep, c);
	ags_quic_report_end(c, ce->error_code, c->close_reason, 1);
	conn_linger(c, AGS_QC_DRAINING);
}

static void conn_on_error(ags_quic_conn *c, int rv)
{
	if (c->state != AGS_QC_ACTIVE)
		return;
	switch (rv) {
	case NGTCP2_ERR_DRAINING:
		conn_enter_draining(c);
		return;
	case NGTCP2_ERR_IDLE_CLOSE:
	case NGTCP2_ERR_HANDSHAKE_TIMEOUT:
		if (!c->handshake_done && !c->connected_reported) {
			snprintf(c->refusal, sizeof(c->refusal),
			         "handshake timed out (no answer from the peer)");
			if (c->is_server) {
				/* A half-open handshake: counted, not reported one by one. */
				c->quiet = 1;
				c->ep->stats.hs_timed_out++;
			} else {
				c->hs_timeout = 1;
			}
		}
		ags_quic_ep_hs_remove(c->ep, c);
		c->state = AGS_QC_DEAD;
		ags_quic_report_end(c, AGS_QUIC_CODE_IDLE_TIMEOUT, "idle timeout", 0);
		conn_kill(c);
		return;
	case NGTCP2_ERR_DROP_CONN:
		c->state = AGS_QC_DEAD;
		ags_quic_report_end(c, 0, "connection dropped (invalid packet)", 0);
		conn_kill(c);
		return;
	case NGTCP2_ERR_CRYPTO:
		if (!c->ccerr_set) {
			uint8_t alert = ngtcp2_conn_get_tls_alert(c->qc);
			const char *why = c->tls ? ags_tls_session_refusal(c->tls) : NULL;
			if (why && *why) {
				ags_quic_copy_text(c->refusal, sizeof(c->refusal),
				                   (const uint8_t *)why, strlen(why));
			} else {
				const char *name =
				    gnutls_alert_get_name((gnutls_alert_description_t)alert);
				snprintf(c->refusal, sizeof(c->refusal),
				         "TLS handshake failed (alert %s)", name ? name : "?");
			}
			snprintf(c->close_reason, sizeof(c->close_reason), "%s", c->refusal);
			ngtcp2_ccerr_set_tls_alert(&c->ccerr, alert,
			                           (const uint8_t *)c->close_reason,
			                           strlen(c->close_reason));
			c->ccerr_set = 1;
		}
		break;
	default:
		if (!c->ccerr_set) {
			snprintf(c->close_reason, sizeof(c->close_reason), "QUIC error: %s",
			         ngtcp2_strerror(rv));
			ngtcp2_ccerr_set_liberr(&c->ccerr, rv, (const uint8_t *)c->close_reason,
			                        strlen(c->close_reason));
			c->ccerr_set = 1;
		}
		break;
	}
	conn_start_closing(c);
}

/* ---- reading ---- */

void ags_quic_conn_recv(ags_quic_conn *c, const ags_quic_addr *from, const uint8_t *data,
                        size_t len)
{
	c->bytes_in += len;
	if (c->state == AGS_QC_CLOSING) {
		/* Answer with our CONNECTION_CLOSE again, backing off: 1st, 2nd, 4th, 8th... */
		c->close_rx++;
		if (c->closelen && (c->close_rx & (c->close_rx - 1)) == 0) {
			size_t sent;
			(void)ags_quic_udp_send(c->ep, from, c->closebuf, c->closelen, c->closelen,
			                        &sent);
		}
		return;
	}
	if (c->state != AGS_QC_ACTIVE)
		return;
	ngtcp2_path path = {
	    .local = {.addr = (ngtcp2_sockaddr *)&c->ep->local.ss, .addrlen = c->ep->local.len},
	    .remote = {.addr = (ngtcp2_sockaddr *)&from->ss, .addrlen = from->len},
	};
	ngtcp2_pkt_info pi = {0};
	uint64_t now = ags_mono_ns();
	int rv = ngtcp2_conn_read_pkt(c->qc, &path, &pi, data, len, now);
	if (rv != 0) {
		conn_on_error(c, rv);
		return;
	}
	c->last_rx_ns = now;
	ags_quic_ep_mark_dirty(c->ep, c);
}

/* ---- writing ---- */

/* Sends txbuf[0, len) in segments of `seg`. Returns 1 when the socket is full. */
static int tx_send(ags_quic_conn *c, size_t len, size_t seg)
{
	size_t sent = 0;
	int rv = ags_quic_udp_send(c->ep, &c->tx_to, c->txbuf, len, seg, &sent);
	c->bytes_out += sent;
	if (rv == AGS_ERR_AGAIN) {
		c->tx_blocked = 1;
		c->tx_off = sent;
		c->tx_len = len;
		c->tx_gso = seg;
		ags_quic_ep_want_write(c->ep, 1);
		return 1;
	}
	return 0; /* AGS_ERR_IO: the datagrams are lost; QUIC recovers as from loss */
}

void ags_quic_conn_on_writable(ags_quic_conn *c)
{
	if (!c->tx_blocked || c->state != AGS_QC_ACTIVE) {
		c->tx_blocked = 0;
		return;
	}
	size_t sent = 0;
	int rv = ags_quic_udp_send(c->ep, &c->tx_to, c->txbuf + c->tx_off, c->tx_len - c->tx_off,
	                           c->tx_gso, &sent);
	c->bytes_out += sent;
	c->tx_off += sent;
	if (rv == AGS_ERR_AGAIN)
		return;
	c->tx_blocked = 0;
	ags_quic_ep_mark_dirty(c->ep, c);
}

/*
 * Writes packets into txbuf and sends them as one GSO batch of equal-sized
 * segments (only the last may be shorter). One batch per call: ngtcp2's
 * pacing then sets the expiry for the next one (ngtcp2_conn_update_pkt_tx_time).
 */
static void conn_write(ags_quic_conn *c)
{
	if (c->tx_blocked || c->state != AGS_QC_ACTIVE)
		return;
	ngtcp2_conn *qc = c->qc;
	ngtcp2_tstamp ts = ags_mono_ns();
	size_t maxpkt = ngtcp2_conn_get_max_tx_udp_payload_size(qc);
	size_t pathmax = ngtcp2_conn_get_path_max_tx_udp_payload_size(qc);
	size_t cap = ngtcp2_conn_get_send_quantum(qc);
	if (cap < pathmax)
		cap = pathmax;
	if (cap > AGS_QUIC_TXBUF)
		cap = AGS_QUIC_TXBUF;
	if (cap > AGS_QUIC_GSO_MAX_SEGS * maxpkt)
		cap = AGS_QUIC_GSO_MAX_SEGS * maxpkt;
	size_t off = 0, seg = 0;
	ngtcp2_path_storage ps;
	ngtcp2_path_storage_zero(&ps);
	ngtcp2_pkt_info pi;

	for (;;) {
		ags_quic_stream *s = c->sendq_head;
		ngtcp2_vec vec[16];
		size_t nv = 0, total = 0;
		int fin = 0;
		int64_t sid = -1;
		uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
		if (s) {
			nv = ags_quic_stream_pending(s, vec, 16, &fin);
			for (size_t i = 0; i < nv; i++)
				total += vec[i].len;
			sid = s->id;
			if (fin)
				flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
		}
		size_t buflen = cap - off >= maxpkt ? maxpkt : pathmax;
		ngtcp2_ssize nd = -1;
		ngtcp2_ssize n =
		    ngtcp2_conn_writev_stream(qc, &ps.path, &pi, c->txbuf + off, buflen, &nd, flags,
		                              sid, nv ? vec : NULL, nv, ts);
		if (n < 0) {
			if (s && n == NGTCP2_ERR_STREAM_DATA_BLOCKED) {
				s->blocked = 1;
				ags_quic_sendq_remove(c, s);
				continue;
			}
			if (s &&
			    (n == NGTCP2_ERR_STREAM_SHUT_WR || n == NGTCP2_ERR_STREAM_NOT_FOUND)) {
				ags_quic_stream_drop_unsent(c, s);
				continue;
			}
			if (s && n == NGTCP2_ERR_WRITE_MORE) {
				ags_quic_stream_advance(c, s, (size_t)nd,
				                        fin && (size_t)nd == total);
				continue;
			}
			if (off > 0)
				(void)tx_send(c, off, seg);
			conn_on_error(c, (int)n);
			return;
		}
		if (s && nd >= 0) {
			ags_quic_stream_advance(c, s, (size_t)nd, fin && (size_t)nd == total);
			/* Round robin between streams, one packet each. */
			if (s->in_sendq && c->sendq_head != c->sendq_tail) {
				ags_quic_sendq_remove(c, s);
				ags_quic_sendq_add(c, s);
			}
		}
		if (n == 0) {
			if (off > 0)
				(void)tx_send(c, off, seg);
			ngtcp2_conn_update_pkt_tx_time(qc, ts);
			return;
		}
		if (off == 0) {
			memcpy(&c->tx_to.ss, ps.path.remote.addr, ps.path.remote.addrlen);
			c->tx_to.len = ps.path.remote.addrlen;
			seg = (size_t)n;
		}
		off += (size_t)n;
		/* A shorter packet ends the batch, as does a full buffer. */
		if ((size_t)n < seg || cap - off < maxpkt) {
			(void)tx_send(c, off, seg);
			ngtcp2_conn_update_pkt_tx_time(qc, ts);
			return;
		}
	}
}

/*
 * The idle deadline. ngtcp2 keeps a connection for max(idle timeout, 3 PTO)
 * after the peer was last heard (RFC 9000, 10.1), and a peer that stalled
 * (SIGSTOP, a long pause) inflates the RTT estimate and with it the PTO: a
 * dead connection then lived on for many idle timeouts, and a newer one of
 * the same peer was refused meanwhile. Here a connection ends when nothing
 * came from the peer for the configured idle timeout, whatever the PTO.
 */
static uint64_t idle_deadline(const ags_quic_conn *c)
{
	return c->last_rx_ns + c->ep->cfg.idle_timeout_ms * NGTCP2_MILLISECONDS;
}

uint64_t ags_quic_conn_expiry(ags_quic_conn *c)
{
	ngtcp2_tstamp exp = ngtcp2_conn_get_expiry(c->qc);
	uint64_t idle = idle_deadline(c);
	return idle < exp ? idle : exp;
}

/* Arms the timer from the connection's expiry; expiries under 1 ms go to the endpoint's
 * timerfd. */
static void conn_arm(ags_quic_conn *c)
{
	if (c->state != AGS_QC_ACTIVE)
		return;
	ngtcp2_tstamp exp = ags_quic_conn_expiry(c);
	ngtcp2_tstamp now = ags_mono_ns();
	if (exp == UINT64_MAX) {
		ags_quic_ep_soon_remove(c->ep, c);
		uv_timer_stop(&c->timer);
	} else if (exp <= now + NGTCP2_MILLISECONDS) {
		uv_timer_stop(&c->timer);
		ags_quic_ep_soon_add(c->ep, c, exp);
	} else {
		ags_quic_ep_soon_remove(c->ep, c);
		uv_timer_start(&c->timer, on_timer, (exp - now) / NGTCP2_MILLISECONDS, 0);
	}
}

void ags_quic_conn_flush(ags_quic_conn *c)
{
	if (c->state != AGS_QC_ACTIVE)
		return;
	if (c->close_requested) {
		/* Stream data written before the close (an ERROR frame) goes out first:
		 * pacing may hold it for a moment, so the close waits for it, briefly. */
		conn_write(c);
		if (c->state != AGS_QC_ACTIVE)
			return;
		ngtcp2_tstamp now = ags_mono_ns();
		if (c->sendq_head && now < c->close_by_ns) {
			conn_arm(c);
			if (ngtcp2_conn_get_expiry(c->qc) > c->close_by_ns) {
				ags_quic_ep_soon_remove(c->ep, c);
				uv_timer_start(&c->timer, on_timer,
				               (c->close_by_ns - now) / NGTCP2_MILLISECONDS + 1, 0);
			}
			return;
		}
		conn_start_closing(c);
		return;
	}
	/*
	 * After a batch, ngtcp2's pacing timestamp is usually already due on a
	 * fast path: serve it here, a few batches at most, rather than through
	 * another wake-up of the loop.
	 */
	for (int i = 0; i < FLUSH_BATCHES; i++) {
		conn_write(c);
		if (c->state != AGS_QC_ACTIVE || c->tx_blocked)
			return;
		ngtcp2_tstamp now = ags_mono_ns();
		if (ags_quic_conn_expiry(c) > now)
			break;
		if (now >= idle_deadline(c)) {
			conn_on_error(c, NGTCP2_ERR_IDLE_CLOSE);
			return;
		}
		int rv = ngtcp2_conn_handle_expiry(c->qc, now);
		if (rv != 0) {
			conn_on_error(c, rv);
			return;
		}
	}
	conn_arm(c);
}

void ags_quic_conn_expire(ags_quic_conn *c)
{
	if (c->state != AGS_QC_ACTIVE)
		return;
	uint64_t now = ags_mono_ns();
	if (now >= idle_deadline(c)) {
		conn_on_error(c, NGTCP2_ERR_IDLE_CLOSE);
		return;
	}
	int rv = ngtcp2_conn_handle_expiry(c->qc, now);
	if (rv != 0) {
		conn_on_error(c, rv);
		return;
	}
	ags_quic_conn_flush(c);
}

static void on_timer(uv_timer_t *t)
{
	ags_quic_conn *c = t->data;
	if (c->state != AGS_QC_ACTIVE)
		conn_destroy(c);
	else
		ags_quic_conn_expire(c);
}

void ags_quic_conn_shutdown(ags_quic_conn *c)
{
	if (c->state == AGS_QC_ACTIVE) {
		if (c->close_requested) {
			/* Closed by the application just before: its code, after what it wrote. */
			conn_write(c);
		} else {
			snprintf(c->close_reason, sizeof(c->close_reason), "endpoint shut down");
			ngtcp2_ccerr_set_application_error(&c->ccerr, AGS_QUIC_CODE_SHUTDOWN,
			                                   (const uint8_t *)c->close_reason,
			                                   strlen(c->close_reason));
		}
	}
	if (c->state == AGS_QC_ACTIVE) {
		(void)send_close(c);
		c->state = AGS_QC_CLOSING;
		ags_quic_report_end(c, c->ccerr.error_code, c->close_reason, 0);
	}
	conn_destroy(c);
}

/* ---- creation ---- */

int ags_quic_conn_accept(ags_quic_ep *ep, const ags_quic_addr *from, const ngtcp2_pkt_hd *hd,
                         const ngtcp2_cid *ocid, ngtcp2_token_type token_type, const uint8_t *data,
                         size_t len, ags_quic_conn **out)
{
	ags_quic_conn *c = conn_alloc(ep, from);
	if (!c)
		return AGS_ERR_NOMEM;
	c->is_server = 1;
	int rv = AGS_ERR_QUIC;
	ngtcp2_cid scid;
	scid.datalen = AGS_QUIC_SCIDLEN;
	if (gnutls_rnd(GNUTLS_RND_RANDOM, scid.data, scid.datalen) != 0)
		goto fail;
	ngtcp2_callbacks cb;
	ngtcp2_settings settings;
	ngtcp2_transport_params params;
	ags_quic_fill_callbacks(&cb, 1);
	ags_quic_fill_settings(ep, &settings, &params);
	settings.token = hd->token;
	settings.tokenlen = hd->tokenlen;
	settings.token_type = token_type;
	params.original_dcid_present = 1;
	if (ocid) {
		params.original_dcid = *ocid;
		params.retry_scid = hd->dcid;
		params.retry_scid_present = 1;
	} else {
		params.original_dcid = hd->dcid;
	}
	params.stateless_reset_token_present = 1;
	if (ngtcp2_crypto_generate_stateless_reset_token(params.stateless_reset_token, ep->secret,
	                                                 sizeof(ep->secret), &scid) != 0)
		goto fail;
	ngtcp2_path path = {
	    .local = {.addr = (ngtcp2_sockaddr *)&ep->local.ss, .addrlen = ep->local.len},
	    .remote = {.addr = (ngtcp2_sockaddr *)&c->remote.ss, .addrlen = c->remote.len},
	};
	if (ngtcp2_conn_server_new(&c->qc, &hd->scid, &scid, &path, hd->version, &cb, &settings,
	                           &params, NULL, c) != 0) {
		c->qc = NULL;
		goto fail;
	}
	ags_error e;
	if (ags_tls_session_server(ep->cfg.tls, &c->ref, &c->tls, &e) != 0) {
		c->tls = NULL;
		rv = AGS_ERR_TLS;
		goto fail;
	}
	ngtcp2_conn_set_tls_native_handle(c->qc, c->tls);
	if (ep->cfg.keep_alive_ms)
		ngtcp2_conn_set_keep_alive_timeout(c->qc,
		                                   ep->cfg.keep_alive_ms * NGTCP2_MILLISECONDS);
	c->odcid = hd->dcid;
	if (ags_quic_ep_cid_add(ep, &scid, c) != 0 || ags_quic_ep_cid_add(ep, &hd->dcid, c) != 0) {
		rv = AGS_ERR_NOMEM;
		goto fail;
	}
	conn_link(c);
	*out = c;
	ags_quic_conn_recv(c, from, data, len);
	return 0;
fail:
	c->state = AGS_QC_DEAD;
	conn_destroy(c);
	return rv;
}

int ags_quic_connect(ags_quic_ep *ep, const char *host, uint16_t port, const char *expected_peer_id,
                     void *conn_ud, ags_quic_conn **out, ags_error *err)
{
	if (!ep || !host || !out)
		return ags_error_set(err, AGS_ERR_INVALID, NULL,
		                     "endpoint, host and out are required");
	if (ep->deleting)
		return ags_error_set(err, AGS_ERR_CLOSED, NULL, "endpoint is shutting down");
	if (expected_peer_id && strlen(expected_peer_id) >= AGS_QUIC_PEER_ID_MAX)
		return ags_error_set(err, AGS_ERR_INVALID, "expected_peer_id", "too long");
	if (ags_quic_ep_established(ep) >= ep->cfg.max_conns)
		return ags_error_set(err, AGS_ERR_AGAIN, NULL, "max_conns (%zu) reached",
		                     ep->cfg.max_conns);
	ags_quic_addr remote;
	int rv =
	    ags_quic_addr_resolve(host, port, ep->local.ss.ss_family, ep->dual_stack, &remote, err);
	if (rv != 0)
		return rv;
	ags_quic_conn *c = conn_alloc(ep, &remote);
	if (!c)
		return ags_error_set(err, AGS_ERR_NOMEM, NULL, "out of memory");
	if (expected_peer_id)
		snprintf(c->expected_id, sizeof(c->expected_id), "%s", expected_peer_id);
	ngtcp2_cid dcid, scid;
	dcid.datalen = CLIENT_DCIDLEN;
	scid.datalen = AGS_QUIC_SCIDLEN;
	if (gnutls_rnd(GNUTLS_RND_RANDOM, dcid.data, dcid.datalen) != 0 ||
	    gnutls_rnd(GNUTLS_RND_RANDOM, scid.data, scid.datalen) != 0) {
		rv = ags_error_set(err, AGS_ERR_TLS, NULL, "no randomness");
		goto fail;
	}
	ngtcp2_callbacks cb;
	ngtcp2_settings settings;
	ngtcp2_transport_params params;
	ags_quic_fill_callbacks(&cb, 0);
	ags_quic_fill_settings(ep, &settings, &params);
	ngtcp2_path path = {
	    .local = {.addr = (ngtcp2_sockaddr *)&ep->local.ss, .addrlen = ep->local.len},
	    .remote = {.addr = (ngtcp2_sockaddr *)&c->remote.ss, .addrlen = c->remote.len},
	};
	int qrv = ngtcp2_conn_client_new(&c->qc, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1, &cb,
	                                 &settings, &params, NULL, c);
	if (qrv != 0) {
		c->qc = NULL;
		rv = ags_error_set(err, AGS_ERR_QUIC, NULL, "ngtcp2_conn_client_new: %s",
		                   ngtcp2_strerror(qrv));
		goto fail;
	}
	ags_quic_ticket *t = ags_quic_ep_ticket_find(ep, expected_peer_id);
	gnutls_datum_t ticket = {NULL, 0};
	if (t && t->ticket && t->tp_len) {
		ticket.data = t->ticket;
		ticket.size = (unsigned)t->ticket_len;
	}
	rv = ags_tls_session_client(ep->cfg.tls, &c->ref, expected_peer_id,
	                            ticket.data ? &ticket : NULL, &c->tls, err);
	if (rv != 0 && ticket.data) {
		/* A ticket GnuTLS cannot use (expired, damaged import): forget it, go without. */
		gnutls_free(t->ticket);
		t->ticket = NULL;
		t->ticket_len = 0;
		ticket.data = NULL;
		rv = ags_tls_session_client(ep->cfg.tls, &c->ref, expected_peer_id, NULL, &c->tls,
		                            err);
	}
	if (rv != 0) {
		c->tls = NULL;
		goto fail;
	}
	ngtcp2_conn_set_tls_native_handle(c->qc, c->tls);
	if (ticket.data &&
	    ngtcp2_conn_decode_and_set_0rtt_transport_params(c->qc, t->tp, t->tp_len) == 0)
		c->early_attempted = 1;
	if (ep->cfg.keep_alive_ms)
		ngtcp2_conn_set_keep_alive_timeout(c->qc,
		                                   ep->cfg.keep_alive_ms * NGTCP2_MILLISECONDS);
	if (ags_quic_ep_cid_add(ep, &scid, c) != 0) {
		rv = ags_error_set(err, AGS_ERR_NOMEM, NULL, "out of memory");
		goto fail;
	}
	conn_link(c);
	c->app_known = 1;
	c->ud = conn_ud;
	ags_quic_ep_mark_dirty(ep, c);
	*out = c;
	return 0;
fail:
	c->state = AGS_QC_DEAD;
	conn_destroy(c);
	return rv;
}

/* ---- small accessors ---- */

void ags_quic_conn_close(ags_quic_conn *c, uint64_t code, const char *reason)
{
	if (!c || c->state != AGS_QC_ACTIVE || c->close_requested || c->closed_reported)
		return;
	c->close_requested = 1;
	c->close_code = code;
	c->close_by_ns = ags_mono_ns() + CLOSE_FLUSH_NS;
	snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason ? reason : "");
	ngtcp2_ccerr_set_application_error(&c->ccerr, code, (const uint8_t *)c->close_reason,
	                                   strlen(c->close_reason));
	c->ccerr_set = 1;
	ags_quic_ep_mark_dirty(c->ep, c);
}

void *ags_quic_conn_user_data(const ags_quic_conn *c)
{
	return c ? c->ud : NULL;
}

void ags_quic_conn_set_user_data(ags_quic_conn *c, void *ud)
{
	if (c)
		c->ud = ud;
}

const char *ags_quic_conn_peer_id(const ags_quic_conn *c)
{
	return c && c->connected_reported ? c->peer_id : "";
}

const char *ags_quic_conn_peer_addr(const ags_quic_conn *c)
{
	return c ? c->peer_addr : "";
}

void ags_quic_conn_info(const ags_quic_conn *c, ags_quic_info *out)
{
	if (!out)
		return;
	memset(out, 0, sizeof(*out));
	if (!c)
		return;
	if (c->qc) {
		ngtcp2_conn_info ci;
		ngtcp2_conn_get_conn_info(c->qc, &ci);
		out->srtt_us = ci.smoothed_rtt / NGTCP2_MICROSECONDS;
		out->min_rtt_us = ci.min_rtt == UINT64_MAX ? 0 : ci.min_rtt / NGTCP2_MICROSECONDS;
		out->cwnd = ci.cwnd;
		out->pto_us = ngtcp2_conn_get_pto(c->qc) / NGTCP2_MICROSECONDS;
	}
	out->bytes_in = c->bytes_in;
	out->bytes_out = c->bytes_out;
	out->unacked = c->unacked;
	out->is_server = c->is_server;
	out->handshake_done = c->handshake_done;
	out->resumed = c->resumed;
	out->early_data_possible = !c->is_server && c->early_attempted && !c->handshake_done &&
	                           !c->early_rejected && c->state == AGS_QC_ACTIVE;
	out->early_data_accepted = c->early_accepted;
}
