/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A raw client of a federation hub for black-box tests: connects over real
 * QUIC with mutual TLS, sends the given bytes (hand-built frames) on one
 * stream, and reports how the hub answered: the ERROR frame's text and the
 * close code and reason. In-process, on a libuv loop of its own.
 */
#ifndef AGS_HUBRAW_H
#define AGS_HUBRAW_H

#include <stddef.h>
#include <stdint.h>

typedef struct hr_result {
	int closed;          /* the hub closed the connection */
	int refused;         /* the handshake failed */
	uint64_t code;       /* the close's application code */
	char reason[256];    /* the close's reason */
	char error[1100];    /* the text of an ERROR frame received, or "" */
	uint64_t error_code; /* its code */
	int got_hello;       /* a HELLO frame came back */
} hr_result;

/*
 * Connects to 127.0.0.1:port as certificate `name` of `certs` (ca.pem,
 * NAME.pem, NAME-key.pem), writes `len` bytes of `bytes` on stream 0 and
 * waits (at most about 10 s) for the hub to close. Fails the test when the
 * connection cannot even be attempted.
 */
void hr_session(const char *certs, const char *name, uint16_t port, const uint8_t *bytes,
                size_t len, hr_result *out);

#endif
