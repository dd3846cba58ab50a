/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzzes the incremental frame reader. The input's first 8 bytes seed the
 * chunking; the rest is the stream. The stream is read twice, once whole and
 * once in random chunks (1 to 300 bytes), and both readings must yield the
 * same frames, the same error and the same consumed count: the reader's
 * result must not depend on how QUIC happens to split the data.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

#define MAX_FRAME 4096 /* small, so that oversize frames are common */
#define MAX_SEEN  1024

typedef struct reading {
	size_t n;
	uint8_t type[MAX_SEEN];
	uint32_t len[MAX_SEEN];
	uint64_t hash[MAX_SEEN];
	int rc;          /* final error, 0 if none */
	uint64_t code;   /* close code after an error */
	size_t consumed; /* total bytes taken */
} reading;

static uint64_t fnv(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211u;
	return h;
}

static void record(reading *r, const ags_frame *f)
{
	if (f->len > MAX_FRAME)
		abort(); /* the reader must never yield an oversize frame */
	if (r->n < MAX_SEEN) {
		r->type[r->n] = f->type;
		r->len[r->n] = f->len;
		r->hash[r->n] = fnv(f->payload, f->len);
	}
	r->n++;
}

/* Reads `data` in chunks chosen by `seed` (0: all at once). */
static void read_stream(const uint8_t *data, size_t len, uint64_t seed, reading *out)
{
	ags_frame_reader rd;
	memset(out, 0, sizeof(*out));
	if (ags_frame_reader_init(&rd, MAX_FRAME))
		abort();
	size_t off = 0;
	while (off < len) {
		size_t chunk = len - off;
		if (seed) {
			seed ^= seed << 13;
			seed ^= seed >> 7;
			seed ^= seed << 17;
			size_t c = 1 + (size_t)(seed % 300);
			if (c < chunk)
				chunk = c;
		}
		size_t end = off + chunk;
		while (off < end) {
			ags_frame f;
			size_t used = 0;
			int rc = ags_frame_reader_feed(&rd, data + off, end - off, &used, &f, NULL);
			if (used > end - off)
				abort();
			off += used;
			out->consumed += used;
			if (rc < 0) {
				out->rc = rc;
				out->code = ags_frame_reader_close_code(&rd);
				if (out->code == AGS_APP_NO_ERROR)
					abort();
				ags_frame_reader_free(&rd);
				return;
			}
			if (rc == 1) {
				record(out, &f);
				/* Now and then take the payload, as a queueing caller would. */
				if (f.len > 0 && (f.payload[0] & 1)) {
					uint8_t *mine = NULL;
					if (ags_frame_reader_take(&rd, &mine) || !mine)
						abort();
					free(mine);
				}
			} else if (off != end) {
				abort(); /* 0 means every byte offered was taken */
			}
		}
	}
	ags_frame_reader_free(&rd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 8)
		return 0;
	uint64_t seed = 0;
	memcpy(&seed, data, 8);
	seed |= 1;
	static reading whole, chunked;
	read_stream(data + 8, size - 8, 0, &whole);
	read_stream(data + 8, size - 8, seed, &chunked);
	if (whole.n != chunked.n || whole.rc != chunked.rc || whole.code != chunked.code ||
	    whole.consumed != chunked.consumed)
		abort();
	size_t n = whole.n < MAX_SEEN ? whole.n : MAX_SEEN;
	for (size_t i = 0; i < n; i++)
		if (whole.type[i] != chunked.type[i] || whole.len[i] != chunked.len[i] ||
		    whole.hash[i] != chunked.hash[i])
			abort();
	return 0;
}
