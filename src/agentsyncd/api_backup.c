/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GET /v1/backup: an online, consistent copy of the node's store, made with
 * ags_node_backup (SQLite's backup API on a read connection of its own, so
 * the node goes on writing) into a temporary file in the data directory,
 * then sent as the response body (application/vnd.sqlite3). The file is
 * unlinked as soon as it is open, so nothing is left behind, whatever the
 * client does.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api_int.h"

enum MHD_Result ags_api_serve_backup(ags_api *api, struct MHD_Connection *c)
{
	if (!api->data_dir[0])
		return ags_api_reply_error(c, MHD_HTTP_NOT_FOUND, "", (size_t)-1,
		                           "this API has no data directory to make a backup in");
	static unsigned counter;
	char tmp[sizeof(api->data_dir) + 64];
	snprintf(tmp, sizeof(tmp), "%s/.backup-%ld-%u.db", api->data_dir, (long)getpid(),
	         __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED));
	ags_error err;
	ags_error_clear(&err);
	ags_store_info info;
	int rc = ags_node_backup(api->node, tmp, &info, &err);
	if (rc < 0) {
		ags_api_logf(api, AGS_LOG_ERROR, "backup failed: %s", err.message);
		return ags_api_reply_error(c, ags_api_status_of(rc), "", (size_t)-1,
		                           "backup failed: %s", err.message);
	}
	int fd = open(tmp, O_RDONLY | O_CLOEXEC);
	unlink(tmp);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) < 0) {
		if (fd >= 0)
			close(fd);
		return ags_api_reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "", (size_t)-1,
		                           "backup failed: cannot read the copy back: %m");
	}
	/* libmicrohttpd closes fd when the response is destroyed. */
	struct MHD_Response *resp = MHD_create_response_from_fd((uint64_t)sb.st_size, fd);
	if (!resp) {
		close(fd);
		return MHD_NO;
	}
	char v[96];
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/vnd.sqlite3");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	snprintf(v, sizeof(v), "attachment; filename=\"agentsync-%s-%" PRIu64 ".db\"", info.id,
	         info.seq);
	MHD_add_response_header(resp, "Content-Disposition", v);
	MHD_add_response_header(resp, "X-Agentsync-Store-Id", info.id);
	snprintf(v, sizeof(v), "%" PRIu64, info.seq);
	MHD_add_response_header(resp, "X-Agentsync-Store-Seq", v);
	snprintf(v, sizeof(v), "%" PRIu64, info.patterns);
	MHD_add_response_header(resp, "X-Agentsync-Patterns", v);
	ags_api_logf(api, AGS_LOG_INFO,
	             "backup of store %s: %" PRIu64 " patterns, seq %" PRIu64 ", %" PRIu64 " bytes",
	             info.id, info.patterns, info.seq, info.bytes);
	enum MHD_Result r = MHD_queue_response(c, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return r;
}
