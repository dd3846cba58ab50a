/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentproc.h"
#include "testutil.h"

/* Counts lines of n's output that start with prefix. */
static size_t count_lines(np_node *n, const char *prefix, const char **last)
{
	size_t c = 0, pl = strlen(prefix);
	*last = NULL;
	for (const char *p = n->buf; p && *p;) {
		if (strncmp(p, prefix, pl) == 0) {
			c++;
			*last = p;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return c;
}

char *ap_ask(np_node *n, const char *cmd, const char *prefix, unsigned tries)
{
	const char *last;
	pthread_mutex_lock(&n->mu);
	size_t before = count_lines(n, prefix, &last);
	pthread_mutex_unlock(&n->mu);
	np_cmd(n, "%s", cmd);
	for (unsigned i = 0; i <= tries; i++) {
		pthread_mutex_lock(&n->mu);
		size_t now = count_lines(n, prefix, &last);
		if (now > before && last) {
			size_t l = strcspn(last, "\n");
			char *r = strndup(last, l);
			pthread_mutex_unlock(&n->mu);
			return r;
		}
		int eof = n->eof;
		pthread_mutex_unlock(&n->mu);
		if (eof)
			return NULL;
		tu_sleep_ms(100);
	}
	return NULL;
}
