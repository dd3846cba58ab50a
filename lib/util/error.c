/* SPDX-License-Identifier: Apache-2.0 */
/* Error names and error details. */
#include <stdio.h>
#include <string.h>

#include "agentsync/agentsync.h"
#include "error.h"

AGS_EXPORT const char *ags_strerror(int err)
{
	switch (err) {
	case AGS_OK:
		return "success";
	case AGS_ERR_INVALID:
		return "invalid argument";
	case AGS_ERR_NOMEM:
		return "out of memory";
	case AGS_ERR_JSON:
		return "malformed JSON";
	case AGS_ERR_PATTERN:
		return "invalid pattern";
	case AGS_ERR_TOO_LARGE:
		return "too large";
	case AGS_ERR_CHECKSUM:
		return "checksum mismatch";
	case AGS_ERR_STORE:
		return "store error";
	case AGS_ERR_IO:
		return "I/O error";
	case AGS_ERR_NOT_FOUND:
		return "not found";
	case AGS_ERR_TLS:
		return "TLS error";
	case AGS_ERR_QUIC:
		return "QUIC error";
	case AGS_ERR_PROTO:
		return "protocol error";
	case AGS_ERR_CLOSED:
		return "closed";
	case AGS_ERR_TIMEOUT:
		return "timed out";
	case AGS_ERR_AUTH:
		return "authentication refused";
	case AGS_ERR_CONFIG:
		return "configuration error";
	case AGS_ERR_STATE:
		return "wrong state";
	case AGS_ERR_AGAIN:
		return "try again";
	case AGS_ERR_COMPRESS:
		return "compression error";
	case AGS_ERR_UNSUPPORTED:
		return "not supported";
	case AGS_ERR_EXISTS:
		return "already exists";
	case AGS_ERR_INTERNAL:
		return "internal error";
	default:
		return "unknown error";
	}
}

AGS_EXPORT void ags_error_clear(ags_error *e)
{
	if (!e)
		return;
	e->code = AGS_OK;
	e->field[0] = '\0';
	e->offset = (size_t)-1;
	e->message[0] = '\0';
}

int ags_error_set(ags_error *e, int code, const char *field, const char *fmt, ...)
{
	if (!e)
		return code;
	ags_error_clear(e);
	e->code = code;
	if (field)
		snprintf(e->field, sizeof(e->field), "%s", field);
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(e->message, sizeof(e->message), fmt, ap);
		va_end(ap);
	} else {
		snprintf(e->message, sizeof(e->message), "%s", ags_strerror(code));
	}
	return code;
}
