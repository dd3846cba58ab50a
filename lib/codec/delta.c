/* SPDX-License-Identifier: Apache-2.0 */
/* Deltas of pattern JSON: zstd with the base version as dictionary, in base64 (see delta.h). */
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "agentsync/agentsync.h"
#include "delta.h"

/* zstd level for deltas: the dictionary does most of the work. */
#define DELTA_LEVEL 3

static int b64_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

int ags_delta_b64_ok(const char *s, size_t len)
{
	if (!s || len == 0 || len % 4 != 0)
		return 0;
	size_t pad = 0;
	if (s[len - 1] == '=')
		pad = s[len - 2] == '=' ? 2 : 1;
	for (size_t i = 0; i < len - pad; i++)
		if (!b64_char((unsigned char)s[i]))
			return 0;
	return 1;
}

int ags_delta_make(const char *base, size_t base_len, const char *full, size_t full_len,
                   size_t max_len, char **b64, size_t *b64_len)
{
	if (!base || !base_len || !full || !full_len || full_len > AGS_DELTA_SIZE_MAX || !b64 ||
	    !b64_len)
		return AGS_ERR_INVALID;
	*b64 = NULL;
	*b64_len = 0;
	/* Base64 makes 4 of 3: the frame must stay under 3/4 of max_len. */
	size_t cap = max_len / 4 * 3;
	if (cap == 0)
		return AGS_ERR_TOO_LARGE;
	uint8_t *frame = malloc(cap);
	ZSTD_CCtx *c = ZSTD_createCCtx();
	int rc = AGS_ERR_NOMEM;
	if (!frame || !c)
		goto out;
	size_t r =
	    ZSTD_compress_usingDict(c, frame, cap, full, full_len, base, base_len, DELTA_LEVEL);
	if (ZSTD_isError(r)) {
		rc = ZSTD_getErrorCode(r) == ZSTD_error_dstSize_tooSmall    ? AGS_ERR_TOO_LARGE
		     : ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation ? AGS_ERR_NOMEM
		                                                            : AGS_ERR_COMPRESS;
		goto out;
	}
	gnutls_datum_t in = {frame, (unsigned)r}, enc = {NULL, 0};
	if (gnutls_base64_encode2(&in, &enc) < 0) {
		rc = AGS_ERR_NOMEM;
		goto out;
	}
	if (enc.size >= max_len || !ags_delta_b64_ok((const char *)enc.data, enc.size)) {
		rc = enc.size >= max_len ? AGS_ERR_TOO_LARGE : AGS_ERR_COMPRESS;
		gnutls_free(enc.data);
		goto out;
	}
	*b64 = malloc(enc.size + 1);
	if (*b64) {
		memcpy(*b64, enc.data, enc.size);
		(*b64)[enc.size] = '\0';
		*b64_len = enc.size;
		rc = 0;
	}
	gnutls_free(enc.data);
out:
	ZSTD_freeCCtx(c);
	free(frame);
	return rc;
}

int ags_delta_apply(const char *base, size_t base_len, const char *b64, size_t b64_len, size_t size,
                    char **out)
{
	if (!base || !b64 || !out || size == 0 || size > AGS_DELTA_SIZE_MAX)
		return AGS_ERR_INVALID;
	*out = NULL;
	if (!ags_delta_b64_ok(b64, b64_len) || b64_len > UINT32_MAX)
		return AGS_ERR_PROTO;
	gnutls_datum_t in = {(unsigned char *)(uintptr_t)b64, (unsigned)b64_len}, raw = {NULL, 0};
	int g = gnutls_base64_decode2(&in, &raw);
	if (g < 0)
		return g == GNUTLS_E_MEMORY_ERROR ? AGS_ERR_NOMEM : AGS_ERR_PROTO;
	int rc = AGS_ERR_NOMEM;
	ZSTD_DCtx *d = ZSTD_createDCtx();
	char *dst = malloc(size + 1);
	if (!d || !dst)
		goto fail;
	/* Only standard frames (no legacy formats), as for batch bodies. */
	rc = AGS_ERR_COMPRESS;
	if (raw.size < 4 || raw.data[0] != 0x28 || raw.data[1] != 0xb5 || raw.data[2] != 0x2f ||
	    raw.data[3] != 0xfd)
		goto fail;
	/* Room for size + 1 bytes: filling the last one means it inflates to more. */
	size_t r = ZSTD_decompress_usingDict(d, dst, size + 1, raw.data, raw.size, base, base_len);
	if (ZSTD_isError(r)) {
		if (ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation)
			rc = AGS_ERR_NOMEM;
		goto fail;
	}
	if (r != size)
		goto fail;
	dst[size] = '\0';
	*out = dst;
	ZSTD_freeDCtx(d);
	gnutls_free(raw.data);
	return 0;
fail:
	free(dst);
	ZSTD_freeDCtx(d);
	gnutls_free(raw.data);
	return rc;
}
