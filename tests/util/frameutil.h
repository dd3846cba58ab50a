/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers for tests that handle the library's frames themselves (they use
 * lib/codec; the conformance client, which must not, does not link this).
 */
#ifndef AGS_FRAMEUTIL_H
#define AGS_FRAMEUTIL_H

#include <stddef.h>
#include <stdint.h>

/*
 * Removes the first frame of the `*len` bytes at data, which must be of
 * frame type `type` (fails the test otherwise).
 */
void tu_frame_drop(uint8_t *data, size_t *len, int type);

#endif
