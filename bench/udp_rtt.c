/* SPDX-License-Identifier: Apache-2.0 */
/*
 * udp_rtt [N]: the machine's floor for a request/response on loopback.
 *
 * Two processes bounce a 200-byte UDP datagram N times (default 20,000),
 * first with both sleeping in a blocking recv (what a loop sleeping in epoll
 * pays: a thread wake-up per message), then with both polling (non-blocking
 * recv in a loop, no wake-up). Prints one line per mode:
 *
 *   udp_rtt mode=sleep round_trips=N p50_us=X p99_us=Y
 *   udp_rtt mode=poll round_trips=N p50_us=X p99_us=Y
 *
 * The difference is what busy polling (busyPoll) can save per message.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A UDP socket on 127.0.0.1, any port; its address in *at. */
static int open_udp(struct sockaddr_in *at)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	memset(at, 0, sizeof(*at));
	at->sin_family = AF_INET;
	at->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(*at);
	if (fd < 0 || bind(fd, (struct sockaddr *)at, sizeof(*at)) != 0 ||
	    getsockname(fd, (struct sockaddr *)at, &len) != 0) {
		perror("udp socket");
		exit(1);
	}
	return fd;
}

static void receive(int fd, int poll, char *buf, size_t cap)
{
	for (;;) {
		ssize_t n = recv(fd, buf, cap, poll ? MSG_DONTWAIT : 0);
		if (n >= 0)
			return;
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			perror("recv");
			exit(1);
		}
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void run(int poll, long n)
{
	struct sockaddr_in a_at, b_at;
	int a = open_udp(&a_at), b = open_udp(&b_at);
	char buf[2048];
	memset(buf, 'x', sizeof(buf));
	pid_t pid = fork();
	if (pid == 0) {
		for (long i = 0; i < n; i++) {
			receive(b, poll, buf, sizeof(buf));
			if (sendto(b, buf, 200, 0, (struct sockaddr *)&a_at, sizeof(a_at)) != 200)
				_exit(1);
		}
		_exit(0);
	}
	uint64_t *lat = calloc((size_t)n, sizeof(*lat));
	if (!lat)
		exit(1);
	for (long i = 0; i < n; i++) {
		uint64_t t0 = mono_ns();
		if (sendto(a, buf, 200, 0, (struct sockaddr *)&b_at, sizeof(b_at)) != 200) {
			perror("sendto");
			exit(1);
		}
		receive(a, poll, buf, sizeof(buf));
		lat[i] = mono_ns() - t0;
	}
	waitpid(pid, NULL, 0);
	qsort(lat, (size_t)n, sizeof(*lat), cmp_u64);
	printf("udp_rtt mode=%s round_trips=%ld p50_us=%.1f p99_us=%.1f\n", poll ? "poll" : "sleep",
	       n, (double)lat[n / 2] / 1000.0, (double)lat[(n * 99) / 100] / 1000.0);
	free(lat);
	close(a);
	close(b);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 20000;
	if (n < 1) {
		fprintf(stderr, "usage: udp_rtt [N >= 1]\n");
		return 2;
	}
	run(0, n);
	run(1, n);
	return 0;
}
