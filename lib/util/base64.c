/* SPDX-License-Identifier: Apache-2.0 */
/* base64url without padding (base64.h), over GnuTLS's base64. */
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>

#include "agentsync/agentsync.h"
#include "base64.h"

int ags_base64url_valid(const char *s, size_t n)
{
	if (n % 4 == 1)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

int ags_base64url_decode(const char *s, size_t n, uint8_t **out, size_t *len)
{
	if (!ags_base64url_valid(s, n))
		return AGS_ERR_INVALID;
	/* Standard, padded base64 for GnuTLS. */
	size_t padded = (n + 3) / 4 * 4;
	char *b = malloc(padded + 1);
	if (!b)
		return AGS_ERR_NOMEM;
	for (size_t i = 0; i < n; i++)
		b[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
	memset(b + n, '=', padded - n);
	b[padded] = '\0';
	gnutls_datum_t in = {(unsigned char *)b, (unsigned)padded}, raw = {NULL, 0};
	int rc = gnutls_base64_decode2(&in, &raw);
	free(b);
	if (rc < 0)
		return rc == GNUTLS_E_MEMORY_ERROR ? AGS_ERR_NOMEM : AGS_ERR_INVALID;
	uint8_t *d = malloc((size_t)raw.size + 1);
	if (d) {
		if (raw.size)
			memcpy(d, raw.data, raw.size);
		d[raw.size] = '\0';
		*out = d;
		*len = raw.size;
	}
	gnutls_free(raw.data);
	return d ? 0 : AGS_ERR_NOMEM;
}

int ags_base64url_encode(const uint8_t *d, size_t n, char **out)
{
	gnutls_datum_t in = {(unsigned char *)(uintptr_t)d, (unsigned)n}, b64;
	int rc = gnutls_base64_encode2(&in, &b64);
	if (rc < 0)
		return rc == GNUTLS_E_MEMORY_ERROR ? AGS_ERR_NOMEM : AGS_ERR_INTERNAL;
	char *s = malloc((size_t)b64.size + 1);
	if (!s) {
		gnutls_free(b64.data);
		return AGS_ERR_NOMEM;
	}
	size_t j = 0;
	for (size_t i = 0; i < b64.size; i++) {
		char c = (char)b64.data[i];
		if (c == '=' || c == '\n' || c == '\r')
			continue;
		s[j++] = c == '+' ? '-' : c == '/' ? '_' : c;
	}
	s[j] = '\0';
	gnutls_free(b64.data);
	*out = s;
	return 0;
}
