/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agentsync wire format as docs/PROTOCOL.md ("Wire format") states it:
 * the 8-byte frame header, BATCH payloads in both directions with their
 * three codecs, and SHA-256. Written from the document alone.
 */
#ifndef CONF_WIRE_H
#define CONF_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <yyjson.h>

enum {
	F_HELLO = 0x01,
	F_BATCH = 0x02,
	F_ACK = 0x03,
	F_ERROR = 0x04,
	F_AUTH = 0x05,
	F_PULL = 0x06,
	F_PULL_DONE = 0x07,
	F_AE_TREE = 0x08, /* only when both HELLOs said "antiEntropy": true */
	F_AE_IDS = 0x09,
};

enum { CODEC_NONE = 0, CODEC_GZIP = 1, CODEC_ZSTD = 2 };

/* QUIC application error codes (PROTOCOL.md, "QUIC application error codes"). */
enum {
	E_NO_ERROR = 0x000,
	E_PROTOCOL = 0x101,
	E_FRAME_TOO_LARGE = 0x102,
	E_UNKNOWN_FRAME = 0x103,
	E_AUTH_FAILED = 0x104,
	E_VERSION_MISMATCH = 0x105,
	E_INTERNAL = 0x106,
	E_SHUTTING_DOWN = 0x107,
	E_BAD_HELLO = 0x108,
	E_DUPLICATE_NODE_ID = 0x109,
};

/* AGS_ERR_* numbers an ACK carries (PROTOCOL.md, "ACK"). */
enum {
	ERR_JSON = -3,
	ERR_PATTERN = -4,
	ERR_TOO_LARGE = -5,
	ERR_CHECKSUM = -6,
	ERR_PROTO = -12,
	ERR_COMPRESS = -19,
	ERR_UNSUPPORTED = -20,
};

/* Writes the 8-byte header of a frame: type, flags 0, reserved 0, length. */
void frame_header(uint8_t out[8], uint8_t type, uint32_t len);

/* A BATCH to send. Fields left 0 take their natural value (see batch_encode). */
struct batch {
	uint64_t request_id;
	int64_t timestamp; /* 0: now */
	uint64_t upto;
	uint8_t codec, flags;
	const char *source; /* the sender's node id */
	size_t source_len;  /* 0: strlen(source) */
	const char *raw;    /* the raw body (a JSON array) */
	size_t raw_len;     /* 0: strlen(raw) */
	/* Corruptions, for the refusal checks: */
	int set_count; /* announce `count` instead of the array's size */
	uint32_t count;
	int set_raw_len; /* announce `raw_len_field` instead of the raw body's size */
	uint32_t raw_len_field;
	int bad_sha;         /* flip a bit of the SHA-256 */
	const uint8_t *body; /* non-NULL: send these bytes as the body, as they are */
	size_t body_len;
	size_t truncate_to; /* non-zero: cut the payload to this many bytes */
};

/* Builds a BATCH payload (no frame header); malloc'd, *len set. NULL on failure. */
uint8_t *batch_encode(const struct batch *b, size_t *len);

/* A BATCH received, decoded and checked. */
struct rbatch {
	uint64_t request_id, upto;
	int64_t timestamp;
	uint8_t codec, flags;
	char source[257];
	uint32_t count, raw_len;
	size_t frame_len; /* payload bytes */
	char *raw;        /* the raw body, NUL-terminated */
	yyjson_doc *doc;  /* raw parsed */
};

/*
 * Decodes a BATCH payload as a receiver must: header, codec, bounded
 * decompression, SHA-256, JSON array of `count` objects. 0, or -1 with a
 * sentence in err.
 */
int batch_decode(const uint8_t *p, size_t len, size_t max_raw, struct rbatch *out, char *err,
                 size_t errlen);
void rbatch_free(struct rbatch *b);

/* Compresses with gzip (zlib, windowBits 15+16, level 6) or zstd (level 1). malloc'd. */
uint8_t *gzip_bytes(const void *in, size_t len, size_t *out_len);
uint8_t *zstd_bytes(const void *in, size_t len, size_t *out_len);

/* SHA-256 of data as 32 bytes / 64 lower-case hex digits. */
void sha256(const void *data, size_t len, uint8_t out[32]);
void sha256_hex(const void *data, size_t len, char out[65]);

#endif
