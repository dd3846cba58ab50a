/* SPDX-License-Identifier: Apache-2.0 */
/* Event names (include/agentsync/event.h). */
#include "agentsync/event.h"

AGS_EXPORT const char *ags_event_name(int type)
{
	switch (type) {
	case AGS_EV_PEER_CONNECTED:
		return "peer:connected";
	case AGS_EV_PEER_DISCONNECTED:
		return "peer:disconnected";
	case AGS_EV_PEER_ERROR:
		return "peer:error";
	case AGS_EV_PEER_HEALTH_DEGRADED:
		return "peer:health:degraded";
	case AGS_EV_PEER_HEALTH_RECOVERED:
		return "peer:health:recovered";
	case AGS_EV_SYNC_COMPLETED:
		return "sync:completed";
	case AGS_EV_SYNC_FAILED:
		return "sync:failed";
	case AGS_EV_PATTERN_RECEIVED:
		return "pattern:received";
	case AGS_EV_CONNECTION_REFUSED:
		return "connection:refused";
	case AGS_EV_PATTERN_CONFLICT:
		return "pattern:conflict";
	case AGS_EV_SYNC_REJECTED:
		return "sync:rejected";
	case AGS_EV_STORE_ROLLBACK:
		return "store:rollback";
	case AGS_EV_CONNECTION_TIMEOUT:
		return "connection:timeout";
	default:
		return "unknown";
	}
}
