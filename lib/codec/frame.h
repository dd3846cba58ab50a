/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Frames: the unit of the agentsync wire protocol (docs/PROTOCOL.md, "Wire
 * format").
 *
 * Both peers exchange frames on one bidirectional QUIC stream, opened by the
 * connecting side. A frame is an 8-byte header and a payload:
 *
 *   u8 type | u8 flags (0) | u16 reserved (0) | u32 payload length
 *
 * all big-endian. This module encodes headers, reads frames incrementally from
 * arbitrary chunks (as QUIC delivers stream data), and names the frame types
 * and the QUIC application error codes used to close a connection.
 *
 * Pure functions and plain structs: no I/O, no clock, no threads.
 */
#ifndef AGS_FRAME_H
#define AGS_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "agentsync/agentsync.h"

/* Bytes in a frame header. */
#define AGS_FRAME_HEADER_LEN 8
/* Default largest payload a receiver accepts: 16 MiB. */
#define AGS_FRAME_MAX_DEFAULT (16u * 1024u * 1024u)
/* No receiver accepts a payload larger than this, whatever it is configured to: 64 MiB. */
#define AGS_FRAME_MAX_HARD (64u * 1024u * 1024u)
/* Smallest max frame size a node may announce or configure: 64 KiB. */
#define AGS_FRAME_MAX_MIN (64u * 1024u)

/* Frame types (the header's first byte). Any other value is refused. */
typedef enum ags_frame_type {
	AGS_FRAME_HELLO = 0x01,     /* JSON: who I am, what I can do, what I want (wire.h) */
	AGS_FRAME_BATCH = 0x02,     /* binary: a batch of changes (batch.h) */
	AGS_FRAME_ACK = 0x03,       /* JSON: the outcome of one batch (wire.h) */
	AGS_FRAME_ERROR = 0x04,     /* JSON: why the sender is about to close (wire.h) */
	AGS_FRAME_AUTH = 0x05,      /* JSON: {"token": JWT}, to a hub (wire.h) */
	AGS_FRAME_PULL = 0x06,      /* JSON: hub, reserved: {"vectorClock": {...}} */
	AGS_FRAME_PULL_DONE = 0x07, /* JSON: hub, reserved: {"vectorClock": {...}} */
	AGS_FRAME_AE_TREE = 0x08,   /* JSON: anti-entropy digests of id-hash prefixes (optional) */
	AGS_FRAME_AE_IDS = 0x09,    /* JSON: anti-entropy records under one prefix (optional) */
} ags_frame_type;

/* The highest frame type this version knows (0x08 and 0x09 only when both HELLOs said
 * "antiEntropy": true; the session refuses them otherwise). */
#define AGS_FRAME_TYPE_MAX AGS_FRAME_AE_IDS

/*
 * QUIC application error codes, sent in CONNECTION_CLOSE (type 0x1d) by
 * either side. AGS_APP_NO_ERROR is a normal close.
 */
typedef enum ags_app_error {
	AGS_APP_NO_ERROR = 0x0,
	AGS_APP_PROTOCOL_ERROR = 0x101,   /* the peer broke the protocol */
	AGS_APP_FRAME_TOO_LARGE = 0x102,  /* a frame was over the receiver's max frame size */
	AGS_APP_UNKNOWN_FRAME = 0x103,    /* a frame of an unknown type */
	AGS_APP_AUTH_FAILED = 0x104,      /* authentication or authorisation refused */
	AGS_APP_VERSION_MISMATCH = 0x105, /* no protocol version in common */
	AGS_APP_INTERNAL_ERROR = 0x106,   /* the sender failed (store, memory) */
	AGS_APP_SHUTTING_DOWN = 0x107,    /* the sender is stopping */
	AGS_APP_BAD_HELLO = 0x108,        /* the HELLO was malformed or refused */
	AGS_APP_DUPLICATE_ID = 0x109,     /* DUPLICATE_NODE_ID: another process has this node id */
} ags_app_error;

/* Returns a static name for a frame type ("HELLO", ...), "UNKNOWN" for any other value. */
const char *ags_frame_type_name(int type);

/* Whether `type` is a frame type this version knows (0x01-0x07). */
int ags_frame_type_known(int type);

/*
 * Returns a static name for an application error code ("NO_ERROR",
 * "PROTOCOL_ERROR", ...), "UNKNOWN" for any other value.
 */
const char *ags_app_error_name(uint64_t code);

/*
 * The application error code to close with after a codec function returned
 * `err` for a frame received from the peer: AGS_ERR_TOO_LARGE ->
 * FRAME_TOO_LARGE, AGS_ERR_UNSUPPORTED -> VERSION_MISMATCH, AGS_ERR_AUTH ->
 * AUTH_FAILED, AGS_ERR_NOMEM and AGS_ERR_INTERNAL -> INTERNAL_ERROR, other
 * errors -> PROTOCOL_ERROR, 0 -> NO_ERROR. The frame reader knows more (an
 * unknown frame type): prefer ags_frame_reader_close_code() for its errors.
 */
uint64_t ags_app_error_from_err(int err);

/* A decoded frame header. */
typedef struct ags_frame_header {
	uint8_t type;
	uint8_t flags;
	uint16_t reserved;
	uint32_t length; /* payload bytes after the header */
} ags_frame_header;

/* Writes the header of a frame of `type` with `len` payload bytes (flags and reserved 0). */
void ags_frame_header_put(uint8_t out[AGS_FRAME_HEADER_LEN], uint8_t type, uint32_t len);

/*
 * Decodes and checks a header against a receiver's `max_frame` (0 means
 * AGS_FRAME_MAX_DEFAULT; values over AGS_FRAME_MAX_HARD are clamped to it).
 * *h is filled in even on failure (so a caller can log what came), and
 * *close_code (may be NULL) gets the application error code to close with.
 * Errors: AGS_ERR_TOO_LARGE (length over the max), AGS_ERR_PROTO (unknown
 * type, nonzero flags or reserved bits).
 */
int ags_frame_header_check(const uint8_t in[AGS_FRAME_HEADER_LEN], size_t max_frame,
                           ags_frame_header *h, uint64_t *close_code, ags_error *err);

/*
 * Writes a whole frame (header + payload) into `out` of `cap` bytes;
 * *written gets AGS_FRAME_HEADER_LEN + len.
 * Errors: AGS_ERR_INVALID (NULL out, or payload NULL with len > 0),
 * AGS_ERR_TOO_LARGE (len over AGS_FRAME_MAX_HARD, or the frame does not fit
 * in cap).
 */
int ags_frame_encode(uint8_t *out, size_t cap, uint8_t type, const void *payload, size_t len,
                     size_t *written);

/*
 * A growable byte buffer with a hard maximum, for frames being built.
 * Embedded: ags_frame_buf_init, then ags_frame_buf_free.
 */
typedef struct ags_frame_buf {
	uint8_t *data; /* owned; NULL until something is reserved */
	size_t len;    /* bytes in use */
	size_t cap;    /* bytes allocated */
	size_t max;    /* len never goes past this */
} ags_frame_buf;

/* Starts an empty buffer that will never hold more than `max` bytes (0: AGS_FRAME_MAX_HARD +
 * header). */
void ags_frame_buf_init(ags_frame_buf *b, size_t max);

/* Frees the buffer's memory; it is then empty and may be reused. NULL is a no-op. */
void ags_frame_buf_free(ags_frame_buf *b);

/* Empties the buffer, keeping its memory. */
void ags_frame_buf_reset(ags_frame_buf *b);

/*
 * Makes room for `n` more bytes after len (growing geometrically).
 * Errors: AGS_ERR_TOO_LARGE (len + n over max), AGS_ERR_NOMEM.
 */
int ags_frame_buf_reserve(ags_frame_buf *b, size_t n);

/* Appends `n` bytes. Errors: as ags_frame_buf_reserve. */
int ags_frame_buf_append(ags_frame_buf *b, const void *p, size_t n);

/*
 * Appends a whole frame (header + payload).
 * Errors: AGS_ERR_INVALID, AGS_ERR_TOO_LARGE (payload over
 * AGS_FRAME_MAX_HARD, or the buffer's max), AGS_ERR_NOMEM.
 */
int ags_frame_append(ags_frame_buf *b, uint8_t type, const void *payload, size_t len);

/* A complete frame yielded by the reader. */
typedef struct ags_frame {
	uint8_t type;
	uint32_t len;
	/* The payload, owned by the reader: valid until the next feed, take or free. */
	const uint8_t *payload;
} ags_frame;

/*
 * Incremental frame reader. Feed it stream data in whatever chunks QUIC
 * delivers; it yields one complete frame at a time. It holds at most one
 * frame (header + payload, bounded by its max frame size) and refuses an
 * oversize frame from its header alone, before any payload is buffered.
 * The payload buffer grows with the data actually received (never to the
 * declared length up front), so a peer that announces 16 MiB and sends 8
 * bytes costs 8 bytes.
 *
 * Embedded: ags_frame_reader_init, then ags_frame_reader_free. Once a feed
 * has failed, the reader stays failed (every later feed returns the same
 * error); the connection is to be closed with ags_frame_reader_close_code().
 */
typedef struct ags_frame_reader {
	size_t max_frame;
	uint8_t hdr[AGS_FRAME_HEADER_LEN];
	size_t hdr_len;       /* header bytes gathered so far */
	ags_frame_header cur; /* valid once hdr_len == AGS_FRAME_HEADER_LEN */
	uint8_t *buf;         /* payload being gathered */
	size_t buf_cap;
	size_t have;         /* payload bytes gathered */
	int ready;           /* a frame was yielded; the next feed starts a new one */
	int error;           /* sticky error, 0 if none */
	uint64_t close_code; /* application error code for `error` */
	uint64_t frames;     /* frames yielded so far */
} ags_frame_reader;

/*
 * Starts a reader accepting payloads up to `max_frame` bytes (0 means
 * AGS_FRAME_MAX_DEFAULT). Errors: AGS_ERR_INVALID (max_frame over
 * AGS_FRAME_MAX_HARD or under AGS_FRAME_HEADER_LEN); the reader is then unusable.
 */
int ags_frame_reader_init(ags_frame_reader *r, size_t max_frame);

/* Frees the reader's buffer. NULL is a no-op. */
void ags_frame_reader_free(ags_frame_reader *r);

/*
 * Feeds up to `len` bytes of stream data. *consumed gets how many bytes the
 * reader took (the caller may return that much QUIC flow-control credit and
 * must pass the rest in the next call).
 *
 * Returns 1 when a frame is complete: *frame describes it, and *consumed
 * stops right after its last byte (so data for the next frame is left to the
 * next call); 0 when all `len` bytes were taken and no frame is complete yet;
 * or a negative error, with *consumed the bytes taken before it (the
 * offending header). Errors: AGS_ERR_INVALID (NULL arguments),
 * AGS_ERR_TOO_LARGE (declared length over max frame: close with
 * FRAME_TOO_LARGE), AGS_ERR_PROTO (unknown type: UNKNOWN_FRAME; nonzero
 * flags or reserved: PROTOCOL_ERROR), AGS_ERR_NOMEM (INTERNAL_ERROR).
 */
int ags_frame_reader_feed(ags_frame_reader *r, const uint8_t *data, size_t len, size_t *consumed,
                          ags_frame *frame, ags_error *err);

/*
 * Takes ownership of the payload of the frame just yielded (so it can be
 * queued without a copy): *payload gets a malloc'd buffer of frame.len
 * bytes (free with free(); NULL for an empty payload), and the reader forgets it.
 * Errors: AGS_ERR_STATE (no frame was just yielded).
 */
int ags_frame_reader_take(ags_frame_reader *r, uint8_t **payload);

/* The application error code to close the connection with after a failed feed. */
uint64_t ags_frame_reader_close_code(const ags_frame_reader *r);

/* Whether the reader is between frames (no partial frame buffered): a clean place to stop. */
int ags_frame_reader_idle(const ags_frame_reader *r);

#endif
