/* SPDX-License-Identifier: Apache-2.0 */
/* Frames: header encoding and checking, growable buffers, the incremental reader. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "frame.h"

/* A reader keeps its payload buffer between frames only up to this size. */
#define READER_KEEP_BYTES (256u * 1024u)
/* First allocation of a reader's or buffer's memory. */
#define MIN_ALLOC 4096u

const char *ags_frame_type_name(int type)
{
	switch (type) {
	case AGS_FRAME_HELLO:
		return "HELLO";
	case AGS_FRAME_BATCH:
		return "BATCH";
	case AGS_FRAME_ACK:
		return "ACK";
	case AGS_FRAME_ERROR:
		return "ERROR";
	case AGS_FRAME_AUTH:
		return "AUTH";
	case AGS_FRAME_PULL:
		return "PULL";
	case AGS_FRAME_PULL_DONE:
		return "PULL_DONE";
	case AGS_FRAME_AE_TREE:
		return "AE_TREE";
	case AGS_FRAME_AE_IDS:
		return "AE_IDS";
	default:
		return "UNKNOWN";
	}
}

int ags_frame_type_known(int type)
{
	return type >= AGS_FRAME_HELLO && type <= AGS_FRAME_TYPE_MAX;
}

const char *ags_app_error_name(uint64_t code)
{
	switch (code) {
	case AGS_APP_NO_ERROR:
		return "NO_ERROR";
	case AGS_APP_PROTOCOL_ERROR:
		return "PROTOCOL_ERROR";
	case AGS_APP_FRAME_TOO_LARGE:
		return "FRAME_TOO_LARGE";
	case AGS_APP_UNKNOWN_FRAME:
		return "UNKNOWN_FRAME";
	case AGS_APP_AUTH_FAILED:
		return "AUTH_FAILED";
	case AGS_APP_VERSION_MISMATCH:
		return "VERSION_MISMATCH";
	case AGS_APP_INTERNAL_ERROR:
		return "INTERNAL_ERROR";
	case AGS_APP_SHUTTING_DOWN:
		return "SHUTTING_DOWN";
	case AGS_APP_BAD_HELLO:
		return "BAD_HELLO";
	case AGS_APP_DUPLICATE_ID:
		return "DUPLICATE_NODE_ID";
	default:
		return "UNKNOWN";
	}
}

uint64_t ags_app_error_from_err(int err)
{
	switch (err) {
	case AGS_OK:
		return AGS_APP_NO_ERROR;
	case AGS_ERR_TOO_LARGE:
		return AGS_APP_FRAME_TOO_LARGE;
	case AGS_ERR_UNSUPPORTED:
		return AGS_APP_VERSION_MISMATCH;
	case AGS_ERR_AUTH:
		return AGS_APP_AUTH_FAILED;
	case AGS_ERR_NOMEM:
	case AGS_ERR_INTERNAL:
		return AGS_APP_INTERNAL_ERROR;
	default:
		return AGS_APP_PROTOCOL_ERROR;
	}
}

void ags_frame_header_put(uint8_t out[AGS_FRAME_HEADER_LEN], uint8_t type, uint32_t len)
{
	out[0] = type;
	out[1] = 0;
	out[2] = 0;
	out[3] = 0;
	out[4] = (uint8_t)(len >> 24);
	out[5] = (uint8_t)(len >> 16);
	out[6] = (uint8_t)(len >> 8);
	out[7] = (uint8_t)len;
}

static size_t effective_max(size_t max_frame)
{
	if (max_frame == 0)
		return AGS_FRAME_MAX_DEFAULT;
	return max_frame > AGS_FRAME_MAX_HARD ? AGS_FRAME_MAX_HARD : max_frame;
}

int ags_frame_header_check(const uint8_t in[AGS_FRAME_HEADER_LEN], size_t max_frame,
                           ags_frame_header *h, uint64_t *close_code, ags_error *err)
{
	ags_frame_header tmp;
	uint64_t code = AGS_APP_NO_ERROR;
	int rc = 0;

	if (!h)
		h = &tmp;
	h->type = in[0];
	h->flags = in[1];
	h->reserved = (uint16_t)((in[2] << 8) | in[3]);
	h->length =
	    (uint32_t)in[4] << 24 | (uint32_t)in[5] << 16 | (uint32_t)in[6] << 8 | (uint32_t)in[7];
	max_frame = effective_max(max_frame);

	/* The type is checked first: a frame of an unknown type is refused as such,
	 * whatever its length. */
	if (!ags_frame_type_known(h->type)) {
		code = AGS_APP_UNKNOWN_FRAME;
		rc = ags_error_set(err, AGS_ERR_PROTO, "frame.type", "unknown frame type 0x%02x",
		                   h->type);
	} else if (h->flags != 0) {
		code = AGS_APP_PROTOCOL_ERROR;
		rc = ags_error_set(err, AGS_ERR_PROTO, "frame.flags",
		                   "flags must be 0 in a %s frame, got 0x%02x",
		                   ags_frame_type_name(h->type), h->flags);
	} else if (h->reserved != 0) {
		code = AGS_APP_PROTOCOL_ERROR;
		rc = ags_error_set(err, AGS_ERR_PROTO, "frame.reserved",
		                   "reserved bits must be 0, got 0x%04x", h->reserved);
	} else if (h->length > max_frame) {
		code = AGS_APP_FRAME_TOO_LARGE;
		rc = ags_error_set(err, AGS_ERR_TOO_LARGE, "frame.length",
		                   "%s frame of %u bytes is over the maximum of %zu",
		                   ags_frame_type_name(h->type), h->length, max_frame);
	}
	if (close_code)
		*close_code = code;
	return rc;
}

int ags_frame_encode(uint8_t *out, size_t cap, uint8_t type, const void *payload, size_t len,
                     size_t *written)
{
	if (!out || (!payload && len > 0))
		return AGS_ERR_INVALID;
	if (len > AGS_FRAME_MAX_HARD || cap < AGS_FRAME_HEADER_LEN ||
	    cap - AGS_FRAME_HEADER_LEN < len)
		return AGS_ERR_TOO_LARGE;
	ags_frame_header_put(out, type, (uint32_t)len);
	if (len > 0)
		memcpy(out + AGS_FRAME_HEADER_LEN, payload, len);
	if (written)
		*written = AGS_FRAME_HEADER_LEN + len;
	return 0;
}

void ags_frame_buf_init(ags_frame_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max ? max : (size_t)AGS_FRAME_MAX_HARD + AGS_FRAME_HEADER_LEN;
}

void ags_frame_buf_free(ags_frame_buf *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void ags_frame_buf_reset(ags_frame_buf *b)
{
	b->len = 0;
}

int ags_frame_buf_reserve(ags_frame_buf *b, size_t n)
{
	if (n > b->max || b->len > b->max - n)
		return AGS_ERR_TOO_LARGE;
	size_t need = b->len + n;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : MIN_ALLOC;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	if (cap > b->max)
		cap = b->max;
	uint8_t *p = realloc(b->data, cap);
	if (!p)
		return AGS_ERR_NOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int ags_frame_buf_append(ags_frame_buf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	int rc = ags_frame_buf_reserve(b, n);
	if (rc)
		return rc;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int ags_frame_append(ags_frame_buf *b, uint8_t type, const void *payload, size_t len)
{
	if (!b || (!payload && len > 0))
		return AGS_ERR_INVALID;
	if (len > AGS_FRAME_MAX_HARD)
		return AGS_ERR_TOO_LARGE;
	int rc = ags_frame_buf_reserve(b, AGS_FRAME_HEADER_LEN + len);
	if (rc)
		return rc;
	ags_frame_header_put(b->data + b->len, type, (uint32_t)len);
	b->len += AGS_FRAME_HEADER_LEN;
	if (len > 0) {
		memcpy(b->data + b->len, payload, len);
		b->len += len;
	}
	return 0;
}

int ags_frame_reader_init(ags_frame_reader *r, size_t max_frame)
{
	if (!r)
		return AGS_ERR_INVALID;
	memset(r, 0, sizeof(*r));
	if (max_frame == 0)
		max_frame = AGS_FRAME_MAX_DEFAULT;
	if (max_frame > AGS_FRAME_MAX_HARD || max_frame < AGS_FRAME_HEADER_LEN) {
		r->error = AGS_ERR_INVALID;
		r->close_code = AGS_APP_INTERNAL_ERROR;
		return AGS_ERR_INVALID;
	}
	r->max_frame = max_frame;
	return 0;
}

void ags_frame_reader_free(ags_frame_reader *r)
{
	if (!r)
		return;
	free(r->buf);
	r->buf = NULL;
	r->buf_cap = 0;
	r->have = 0;
}

/* Grows the payload buffer to hold `need` bytes of a payload of `total` bytes. */
static int reader_grow(ags_frame_reader *r, size_t need, size_t total)
{
	if (need <= r->buf_cap)
		return 0;
	/* Double what is held, but never past the declared length: memory follows
	 * the bytes that actually arrived, within a factor of two. */
	size_t cap = r->buf_cap ? r->buf_cap * 2 : MIN_ALLOC;
	if (cap < need)
		cap = need;
	if (cap > total)
		cap = total;
	uint8_t *p = realloc(r->buf, cap);
	if (!p)
		return AGS_ERR_NOMEM;
	r->buf = p;
	r->buf_cap = cap;
	return 0;
}

int ags_frame_reader_feed(ags_frame_reader *r, const uint8_t *data, size_t len, size_t *consumed,
                          ags_frame *frame, ags_error *err)
{
	static const uint8_t empty[1];
	size_t off = 0;
	int rc;

	if (!r || !consumed || !frame || (!data && len > 0))
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "NULL argument");
	*consumed = 0;
	if (r->error)
		return ags_error_set(err, r->error, NULL, "the frame reader failed earlier (%s)",
		                     ags_strerror(r->error));
	if (r->ready) {
		r->ready = 0;
		r->hdr_len = 0;
		r->have = 0;
		if (r->buf_cap > READER_KEEP_BYTES) {
			free(r->buf);
			r->buf = NULL;
			r->buf_cap = 0;
		}
	}

	if (r->hdr_len < AGS_FRAME_HEADER_LEN) {
		size_t n = AGS_FRAME_HEADER_LEN - r->hdr_len;
		if (n > len)
			n = len;
		if (n > 0)
			memcpy(r->hdr + r->hdr_len, data, n);
		r->hdr_len += n;
		off += n;
		if (r->hdr_len < AGS_FRAME_HEADER_LEN) {
			*consumed = off;
			return 0;
		}
		rc = ags_frame_header_check(r->hdr, r->max_frame, &r->cur, &r->close_code, err);
		if (rc) {
			r->error = rc;
			*consumed = off;
			return rc;
		}
	}

	size_t want = r->cur.length - r->have;
	size_t n = len - off < want ? len - off : want;
	if (n > 0) {
		rc = reader_grow(r, r->have + n, r->cur.length);
		if (rc) {
			r->error = rc;
			r->close_code = AGS_APP_INTERNAL_ERROR;
			*consumed = off;
			return ags_error_set(err, rc, "frame.payload",
			                     "out of memory buffering a %u-byte frame",
			                     r->cur.length);
		}
		memcpy(r->buf + r->have, data + off, n);
		r->have += n;
		off += n;
	}
	*consumed = off;
	if (r->have < r->cur.length)
		return 0;
	frame->type = r->cur.type;
	frame->len = r->cur.length;
	frame->payload = r->cur.length ? r->buf : empty;
	r->ready = 1;
	r->frames++;
	return 1;
}

int ags_frame_reader_take(ags_frame_reader *r, uint8_t **payload)
{
	if (!r || !payload)
		return AGS_ERR_INVALID;
	if (!r->ready || r->error)
		return AGS_ERR_STATE;
	if (r->cur.length == 0) {
		*payload = NULL;
		return 0;
	}
	if (!r->buf)
		return AGS_ERR_STATE; /* already taken */
	*payload = r->buf;
	r->buf = NULL;
	r->buf_cap = 0;
	r->have = 0;
	return 0;
}

uint64_t ags_frame_reader_close_code(const ags_frame_reader *r)
{
	return r->error ? r->close_code : AGS_APP_NO_ERROR;
}

int ags_frame_reader_idle(const ags_frame_reader *r)
{
	return r->ready || r->hdr_len == 0;
}
