/* SPDX-License-Identifier: Apache-2.0 */
/*
 * W1 on NATS JetStream for bench/compare.sh: publishes every line of an NDJSON
 * file to a file-store stream with asynchronous publishes and waits for every
 * acknowledgement (a JetStream ack means the message is stored). Not part of
 * the build (it needs libnats-dev, which only bench/compare.sh installs).
 *
 *   nats_w1 URL FILE
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

static void die(const char *what, natsStatus s)
{
	fprintf(stderr, "nats_w1: %s: %s\n", what, natsStatus_GetText(s));
	exit(1);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: nats_w1 URL FILE\n");
		return 2;
	}
	FILE *f = fopen(argv[2], "rb");
	if (!f) {
		perror(argv[2]);
		return 1;
	}
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	jsOptions jo;
	jsStreamConfig sc;
	jsErrCode jerr = 0;
	natsStatus s = natsConnection_ConnectTo(&nc, argv[1]);
	if (s != NATS_OK)
		die("connect", s);
	jsOptions_Init(&jo);
	jo.PublishAsync.MaxPending = 4096;
	if ((s = natsConnection_JetStream(&js, nc, &jo)) != NATS_OK)
		die("jetstream", s);
	jsStreamConfig_Init(&sc);
	const char *subjects[] = {"w1.>"};
	sc.Name = "W1";
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	sc.Storage = js_FileStorage;
	if ((s = js_AddStream(NULL, js, &sc, NULL, &jerr)) != NATS_OK)
		die("add stream", s);
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	long n = 0;
	while ((len = getline(&line, &cap, f)) > 0) {
		if (line[len - 1] == '\n')
			len--;
		if ((s = js_PublishAsync(js, "w1.p", line, (int)len, NULL)) != NATS_OK)
			die("publish", s);
		n++;
	}
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = 600000;
	if ((s = js_PublishAsyncComplete(js, &po)) != NATS_OK)
		die("publish complete", s);
	printf("published %ld\n", n);
	free(line);
	fclose(f);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	return 0;
}
