/* SPDX-License-Identifier: Apache-2.0 */
/* The addon's modules: the two classes and what they share besides nh.h. */
#ifndef AGS_NODE_ADDON_H
#define AGS_NODE_ADDON_H

#include "agentsync/agent.h"
#include "nh.h"

/* Most bytes of pattern JSON one query() or getCachedPatterns() returns. */
#define ADDON_QUERY_MAX_BYTES (512u * 1024u * 1024u)

/* The classes, for the module's exports. */
napi_value server_class(napi_env env);
napi_value agent_class(napi_env env);

/* How a kind reads its local store (QUICServer: the node; FederationHub: the agent). */
struct reader {
	int (*query)(void *impl, const ags_query *q, ags_pattern_cb cb, void *ud);
	int (*get)(void *impl, const char *id, ags_pattern **out);
	const char *not_open; /* the message for AGS_ERR_STATE */
};

/*
 * query(filter?): the live patterns matching {type, tag, agentId, since,
 * limit} as one JSON array text (JavaScript parses it in one go).
 */
napi_value reader_query(napi_env env, napi_callback_info info, const struct reader *r);

/* get(id): the live pattern's JSON text, or undefined. */
napi_value reader_get(napi_env env, napi_callback_info info, const struct reader *r);

/* setEvents(mask), ref(), unref(), closeSync(): the same for every handle. */
napi_value m_set_events(napi_env env, napi_callback_info info);
napi_value m_close_sync(napi_env env, napi_callback_info info);
napi_value m_ref(napi_env env, napi_callback_info info);
napi_value m_unref(napi_env env, napi_callback_info info);

#endif
