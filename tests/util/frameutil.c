/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers for tests that handle frames (frameutil.h). */
#include <string.h>

#include "frame.h"
#include "frameutil.h"
#include "testutil.h"

void tu_frame_drop(uint8_t *data, size_t *len, int type)
{
	assert_true(*len >= AGS_FRAME_HEADER_LEN);
	assert_int_equal(data[0], type);
	size_t n = AGS_FRAME_HEADER_LEN +
	           ((size_t)data[4] << 24 | (size_t)data[5] << 16 | (size_t)data[6] << 8 | data[7]);
	assert_true(n <= *len);
	memmove(data, data + n, *len - n);
	*len -= n;
}
