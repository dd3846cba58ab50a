/* SPDX-License-Identifier: Apache-2.0 */
/* The store's checkpointer thread (lib/store/store_ckpt.c). */
#ifndef AGS_STORE_CKPT_H
#define AGS_STORE_CKPT_H

#include <stdint.h>

typedef struct ags_ckpt_limits {
	int soft_frames;   /* a WAL this long is checkpointed when the writer pauses */
	int hard_frames;   /* ... or at once when this long */
	int writer_frames; /* the writer checkpoints itself past this (the thread fell behind) */
	int quiet_ms;      /* how long a pause must be */
	int max_wait_ms;   /* the longest a WAL over soft_frames waits for a pause */
} ags_ckpt_limits;

struct ags_ckpt;

/*
 * Starts a checkpointer on its own connection to the database at path, keyed
 * with the store's 32-byte key (NULL: a plain store); 0 or -1.
 */
int ags_ckpt_start(const char *path, const uint8_t *key, const ags_ckpt_limits *lim,
                   struct ags_ckpt **out);
/* After every commit of the writer: the WAL now holds `frames` frames. */
void ags_ckpt_note(struct ags_ckpt *c, int frames);
/* Counts as a commit for the pause the checkpointer waits for (the store is in use). */
void ags_ckpt_defer(struct ags_ckpt *c);
/* Checkpoints run so far. */
uint64_t ags_ckpt_runs(struct ags_ckpt *c);
/* Stops and frees (NULL is fine). */
void ags_ckpt_stop(struct ags_ckpt *c);

#endif
