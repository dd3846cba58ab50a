/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzzes delta application (ags_delta_apply), which rebuilds a pattern from
 * a peer's zstd delta against the version we hold. The input is
 *   byte 0: mode; bytes 1-3: `size` (big-endian, 24 bits); bytes 4-5: the
 *   base's length L (big-endian, cut to what is there); then the base (L
 *   bytes), then the rest.
 * Mode even: the rest is a delta (base64 text) applied to the base; whatever
 * is accepted is exactly `size` bytes, NUL-terminated, and applying it again
 * gives the same. Mode odd: the rest is a new version; ags_delta_make makes
 * its delta against the base, which must apply back to exactly that version.
 * (A delta applied to another base of the same length may well decode to
 * other bytes: the sync engine checks the rebuilt pattern's checksum.)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "delta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_apply(const char *base, size_t base_len, const char *b64, size_t b64_len,
                        size_t want)
{
	char *out = NULL, *again = NULL;
	int rv = ags_delta_apply(base, base_len, b64, b64_len, want, &out);
	if (rv != 0) {
		if (out)
			abort(); /* nothing is returned on failure */
		return;
	}
	if (!out || out[want] != '\0')
		abort();
	if (ags_delta_apply(base, base_len, b64, b64_len, want, &again) != 0 ||
	    memcmp(out, again, want + 1) != 0)
		abort();
	free(out);
	free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 6)
		return 0;
	int mode = data[0] & 1;
	size_t want = (size_t)data[1] << 16 | (size_t)data[2] << 8 | data[3];
	size_t base_len = (size_t)data[4] << 8 | data[5];
	const uint8_t *rest = data + 6;
	size_t n = size - 6;
	if (base_len > n)
		base_len = n;
	const char *base = (const char *)rest;
	const char *tail = base + base_len;
	size_t tail_len = n - base_len;
	if (mode == 0) {
		check_apply(base, base_len, tail, tail_len, want);
		return 0;
	}
	char *b64 = NULL;
	size_t b64_len = 0;
	/* A generous max_len: the point is the round trip, not whether a delta pays. */
	if (ags_delta_make(base, base_len, tail, tail_len, tail_len * 2 + 256, &b64, &b64_len) != 0)
		return 0;
	if (!ags_delta_b64_ok(b64, b64_len))
		abort();
	char *out = NULL;
	if (ags_delta_apply(base, base_len, b64, b64_len, tail_len, &out) != 0 ||
	    memcmp(out, tail, tail_len) != 0 || out[tail_len] != '\0')
		abort();
	free(out);
	free(b64);
	return 0;
}
