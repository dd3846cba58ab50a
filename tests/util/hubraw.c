/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "frame.h"
#include "hubraw.h"
#include "quic.h"
#include "testutil.h"
#include "tls.h"
#include "wire.h"

struct hr {
	const uint8_t *bytes;
	size_t len;
	ags_quic_ep *ep;
	int64_t sid;
	ags_frame_reader rd;
	hr_result *res;
	int finished;
};

static void hr_connected(void *ud, ags_quic_conn *c, const char *peer_id, const char *addr)
{
	(void)peer_id;
	(void)addr;
	struct hr *h = ud;
	if (ags_quic_stream_open(c, &h->sid) == 0)
		ags_quic_stream_write(c, h->sid, h->bytes, h->len, 0, NULL, NULL);
}

static void hr_refused(void *ud, ags_quic_conn *c, const char *addr, const char *reason)
{
	(void)c;
	(void)addr;
	struct hr *h = ud;
	h->res->refused = 1;
	snprintf(h->res->reason, sizeof(h->res->reason), "%s", reason ? reason : "");
}

static void hr_closed(void *ud, ags_quic_conn *c, uint64_t code, const char *reason, int by_peer)
{
	(void)c;
	(void)by_peer;
	struct hr *h = ud;
	h->res->closed = 1;
	h->res->code = code;
	if (!h->res->refused)
		snprintf(h->res->reason, sizeof(h->res->reason), "%s", reason ? reason : "");
	h->finished = 1;
}

static void hr_data(void *ud, ags_quic_conn *c, int64_t sid, const uint8_t *data, size_t len,
                    int fin)
{
	(void)fin;
	struct hr *h = ud;
	ags_quic_stream_consume(c, sid, len);
	while (len > 0) {
		size_t used = 0;
		ags_frame f;
		if (ags_frame_reader_feed(&h->rd, data, len, &used, &f, NULL) <= 0)
			return;
		data += used;
		len -= used;
		if (f.type == AGS_FRAME_HELLO)
			h->res->got_hello = 1;
		if (f.type == AGS_FRAME_ERROR) {
			ags_wire_error e;
			if (ags_wire_error_decode(f.payload, f.len, &e, NULL) == 0) {
				snprintf(h->res->error, sizeof(h->res->error), "%s", e.text);
				h->res->error_code = e.code;
				ags_wire_error_free(&e);
			}
		}
	}
}

void hr_session(const char *certs, const char *name, uint16_t port, const uint8_t *bytes,
                size_t len, hr_result *out)
{
	memset(out, 0, sizeof(*out));
	struct hr h = {.bytes = bytes, .len = len, .sid = -1, .res = out};
	assert_int_equal(ags_frame_reader_init(&h.rd, 16u << 20), 0);
	char *cert = tu_sprintf("%s/%s.pem", certs, name);
	char *key = tu_sprintf("%s/%s-key.pem", certs, name);
	char *ca = tu_sprintf("%s/ca.pem", certs);
	ags_tls_config tc = {
	    .cert_file = cert, .key_file = key, .ca_file = ca, .reject_unauthorized = 1};
	ags_tls_ctx *tls = NULL;
	ags_error err;
	ags_error_clear(&err);
	if (ags_tls_ctx_new(&tc, &tls, &err) != 0)
		fail_msg("tls: %s", err.message);
	uv_loop_t loop;
	uv_loop_init(&loop);
	ags_quic_config qc = {.host = "127.0.0.1", .tls = tls, .idle_timeout_ms = 10000};
	ags_quic_callbacks cb = {.version = AGS_QUIC_CALLBACKS_VERSION,
	                         .user_data = &h,
	                         .on_connected = hr_connected,
	                         .on_refused = hr_refused,
	                         .on_closed = hr_closed,
	                         .on_stream_data = hr_data};
	if (ags_quic_ep_new(&loop, &qc, &cb, &h.ep, &err) != 0)
		fail_msg("endpoint: %s", err.message);
	ags_quic_conn *c = NULL;
	if (ags_quic_connect(h.ep, "127.0.0.1", port, NULL, NULL, &c, &err) != 0)
		fail_msg("connect: %s", err.message);
	/* Bounded: the idle timeout (10 s) ends the connection at the latest. */
	for (int i = 0; i < 2000 && !h.finished; i++)
		uv_run(&loop, UV_RUN_ONCE);
	ags_quic_ep_del(h.ep);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	ags_tls_ctx_del(tls);
	ags_frame_reader_free(&h.rd);
	free(cert);
	free(key);
	free(ca);
}
