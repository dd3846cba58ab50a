/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Vector clocks for the federation hub (seed 004): a small map from agent id
 * to an unsigned 64-bit counter, kept sorted by agent id (byte order).
 *
 * An entry that is absent counts as 0 everywhere (get, compare, merge), so a
 * clock with {"a":0} equals the empty clock. Agent ids are 1..AGS_VCLOCK_AGENT_MAX
 * bytes without control characters (the wire's rule for node ids); a clock
 * holds at most AGS_VCLOCK_MAX entries, so anything it holds can be sent in
 * a PULL / PULL_DONE message (wire.h). Pure functions, no I/O; an ags_vclock
 * is not thread-safe.
 */
#ifndef AGS_VCLOCK_H
#define AGS_VCLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "agentsync/agentsync.h"

#define AGS_VCLOCK_AGENT_MAX 256  /* bytes in an agent id */
#define AGS_VCLOCK_MAX       4096 /* entries in a clock (AGS_WIRE_VCLOCK_MAX) */
/* Largest JSON text ags_vclock_from_json reads: 4096 ids of 256 bytes, each
 * written as \uXXXX escapes, plus counters and some whitespace. */
#define AGS_VCLOCK_JSON_MAX (8u * 1024u * 1024u)

typedef struct ags_vclock ags_vclock;

/* How two clocks relate (ags_vclock_compare). */
enum {
	AGS_VC_EQUAL = 0,      /* Same counter for every agent. */
	AGS_VC_BEFORE = 1,     /* a <= b everywhere and a < b somewhere: a happened before b. */
	AGS_VC_AFTER = 2,      /* b happened before a. */
	AGS_VC_CONCURRENT = 3, /* Each is ahead somewhere: neither saw the other. */
};

/*
 * Makes an empty clock; on success *out belongs to the caller (ags_vclock_del).
 * Errors: AGS_ERR_INVALID (out NULL), AGS_ERR_NOMEM.
 */
int ags_vclock_new(ags_vclock **out);

/* Frees a clock. NULL is a no-op. */
void ags_vclock_del(ags_vclock *v);

/* A deep copy of v (free with ags_vclock_del), or NULL when v is NULL or out of memory. */
ags_vclock *ags_vclock_dup(const ags_vclock *v);

/*
 * The counter of `agent` into *out, 0 when absent.
 * Errors: AGS_ERR_INVALID (an argument NULL).
 */
int ags_vclock_get(const ags_vclock *v, const char *agent, uint64_t *out);

/*
 * Sets the counter of `agent` (copied) to `value`, adding the entry if absent.
 * Errors: AGS_ERR_INVALID (NULL, or agent not 1..256 bytes without control
 * characters), AGS_ERR_TOO_LARGE (a new entry past AGS_VCLOCK_MAX),
 * AGS_ERR_NOMEM. On failure v is unchanged.
 */
int ags_vclock_set(ags_vclock *v, const char *agent, uint64_t value);

/*
 * Increments the counter of `agent` (its own entry, before it sends a
 * change): absent counts as 0, so the first tick gives 1.
 * Errors: as ags_vclock_set, and AGS_ERR_TOO_LARGE when the counter is
 * already UINT64_MAX. On failure v is unchanged.
 */
int ags_vclock_tick(ags_vclock *v, const char *agent);

/*
 * Merges `other` into v: each counter becomes the larger of the two (seed
 * 004's updateVectorClock). Errors: AGS_ERR_INVALID (NULL), AGS_ERR_TOO_LARGE
 * (the union would pass AGS_VCLOCK_MAX entries), AGS_ERR_NOMEM. On failure v
 * is unchanged.
 */
int ags_vclock_merge(ags_vclock *v, const ags_vclock *other);

/*
 * Compares a with b over the union of their agents, an absent entry counting
 * as 0 on either side (seed 004's detectConflict only looked at the remote
 * keys, so a local-only entry could not make a clock "after"). Returns one of
 * AGS_VC_EQUAL, AGS_VC_BEFORE (a before b), AGS_VC_AFTER, AGS_VC_CONCURRENT.
 * NULL counts as the empty clock.
 */
int ags_vclock_compare(const ags_vclock *a, const ags_vclock *b);

/*
 * Serialises v as a compact JSON object {"agent":n,...}, members in agent
 * order. On success *out is a NUL-terminated string the caller frees with
 * free(), and *len (may be NULL) gets its length without the NUL.
 * Errors: AGS_ERR_INVALID (NULL), AGS_ERR_NOMEM.
 */
int ags_vclock_to_json(const ags_vclock *v, char **out, size_t *len);

/*
 * Parses a clock from a JSON object of `len` bytes (need not be
 * NUL-terminated): members are agent ids (1..256 bytes, no control
 * characters, none twice) with non-negative integer counters (up to
 * UINT64_MAX), at most AGS_VCLOCK_MAX of them. On success *out belongs to
 * the caller (ags_vclock_del).
 * Errors: AGS_ERR_INVALID (NULL argument), AGS_ERR_NOMEM, AGS_ERR_JSON
 * (malformed; err->offset set), AGS_ERR_PROTO (not an object, a bad id or
 * counter, an id twice; err->field names the agent), AGS_ERR_TOO_LARGE
 * (over AGS_VCLOCK_JSON_MAX bytes or AGS_VCLOCK_MAX entries).
 */
int ags_vclock_from_json(const char *json, size_t len, ags_vclock **out, ags_error *err);

/*
 * Builds a clock from `n` parallel agent ids and counters, e.g. those of a
 * decoded PULL message (ags_wire_vclock). Same rules and errors as
 * ags_vclock_from_json (without AGS_ERR_JSON); on success *out belongs to the caller.
 */
int ags_vclock_from_arrays(const char *const *agents, const uint64_t *counters, size_t n,
                           ags_vclock **out, ags_error *err);

/* Number of entries (0 for NULL). */
size_t ags_vclock_count(const ags_vclock *v);

/* The agent id of entry i (in agent order), owned by v; NULL past the end. */
const char *ags_vclock_agent(const ags_vclock *v, size_t i);

/* The counter of entry i; 0 past the end. */
uint64_t ags_vclock_value(const ags_vclock *v, size_t i);

#endif
