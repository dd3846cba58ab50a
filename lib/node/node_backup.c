/* SPDX-License-Identifier: Apache-2.0 */
/* ags_node_backup: an online copy of a running node's store. */
#include <pthread.h>
#include <stdio.h>

#include "error.h"
#include "node_int.h"
#include "store.h"

AGS_EXPORT int ags_node_backup(ags_node *n, const char *dst, ags_store_info *info, ags_error *err)
{
	if (!n || !dst)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "node and dst are required");
	char src[4200];
	/* The path is copied under the read store's lock; the copy runs without any lock. */
	pthread_mutex_lock(&n->rstore_mu);
	int open = n->rstore != NULL;
	if (open)
		snprintf(src, sizeof(src), "%s", ags_store_path(n->rstore));
	pthread_mutex_unlock(&n->rstore_mu);
	if (!open)
		return ags_error_set(err, AGS_ERR_STATE, NULL, "the node is not started");
	return ags_store_backup(src, dst, info, err);
}
