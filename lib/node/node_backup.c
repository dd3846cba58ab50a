/* SPDX-License-Identifier: Apache-2.0 */
/* ags_node_backup: an online copy of a running node's store. */
#include <pthread.h>
#include <stdio.h>

#include <gnutls/gnutls.h>

#include "error.h"
#include "node_int.h"
#include "store.h"

AGS_EXPORT int ags_node_backup(ags_node *n, const char *dst, ags_store_info *info, ags_error *err)
{
	if (!n || !dst)
		return ags_error_set(err, AGS_ERR_INVALID, NULL, "node and dst are required");
	char src[4200];
	uint8_t key[AGS_STORE_KEY_BYTES];
	int keyed = 0;
	/* The path (and the key of an encrypted store) are copied under the read
	 * store's lock; the copy runs without any lock. */
	pthread_mutex_lock(&n->rstore_mu);
	int open = n->rstore != NULL;
	if (open) {
		snprintf(src, sizeof(src), "%s", ags_store_path(n->rstore));
		keyed = ags_store_key_of(n->rstore, key);
	}
	pthread_mutex_unlock(&n->rstore_mu);
	if (!open)
		return ags_error_set(err, AGS_ERR_STATE, NULL, "the node is not started");
	int rv = ags_store_backup_raw(src, keyed ? key : NULL, dst, info, err);
	gnutls_memset(key, 0, sizeof(key));
	return rv;
}
