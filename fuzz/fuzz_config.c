/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the daemon's configuration parser (src/agentsyncd/config.c) on
 * arbitrary bytes. It must never crash or leak, and a configuration it
 * accepts must carry a valid node id (when one is given) and sane limits.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agentsyncd/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ags_config *c = NULL;
	ags_error err;
	ags_config_overrides ov;
	ags_config_overrides_init(&ov);
	int rc = ags_config_parse((const char *)data, size, &ov, &c, &err);
	if (rc == 0) {
		if (!c)
			abort();
		const ags_node_config *n = &c->node;
		if (n->node_id && !ags_config_id_valid(n->node_id))
			abort();
		if (n->batch_size == 0 || n->window == 0)
			abort();
		ags_config_del(c);
	} else if (c) {
		abort(); /* nothing is returned on failure */
	}
	return 0;
}
