/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP API's guard against slow clients (slowloris, issue 17.2).
 * libmicrohttpd serves each connection on a thread of its own and times a
 * connection out only after 120 s without a byte, so clients trickling
 * header bytes could hold every slot. Here:
 *   - a connection is "waiting" from its accept until its request head is
 *     complete (and again between keep-alive requests); waiting connections
 *     have a budget of their own (AGS_API_WAITING_MAX of the 256 slots), so
 *     the others always serve whole requests (authenticated ones first:
 *     nothing else is answered but 401);
 *   - one client address may have AGS_API_WAITING_PER_ADDR waiting at once;
 *     more are refused at accept;
 *   - when the budget is full, the oldest waiting connection is closed for a
 *     new one, and a watchdog closes any that waited AGS_API_HEAD_TIMEOUT_S
 *     for its request head, however slowly the bytes came;
 *   - the pressure is logged, at most once every 10 s, with the counts.
 * A connection is closed with shutdown(2) on its socket: its thread then
 * reads the end of the stream and libmicrohttpd closes it as usual.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "api_int.h"

/* The pressure is logged at most this often. */
#define PRESSURE_LOG_MS 10000u

struct ags_api_gconn {
	struct ags_api_gconn *next, *prev; /* waiting list, newest first */
	int fd;
	struct sockaddr_storage addr;
	uint64_t since_ms;
	unsigned waiting : 1;
	unsigned closing : 1;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int same_ip(const struct sockaddr *a, const struct sockaddr_storage *b)
{
	if (a->sa_family != b->ss_family)
		return 0;
	if (a->sa_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	if (a->sa_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		              &((const struct sockaddr_in6 *)b)->sin6_addr,
		              sizeof(struct in6_addr)) == 0;
	return 0;
}

/* Under g->mu. */
static void unlink_waiting(struct ags_api_guard *g, struct ags_api_gconn *c)
{
	if (!c->waiting)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		g->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		g->tail = c->prev;
	c->next = c->prev = NULL;
	c->waiting = 0;
	g->waiting--;
}

/* Under g->mu. */
static void link_waiting(struct ags_api_guard *g, struct ags_api_gconn *c)
{
	if (c->waiting)
		return;
	c->since_ms = mono_ms();
	c->prev = NULL;
	c->next = g->head;
	if (g->head)
		g->head->prev = c;
	else
		g->tail = c;
	g->head = c;
	c->waiting = 1;
	g->waiting++;
}

/* Ends a waiting connection (under g->mu): its thread sees the stream end. */
static void close_waiting(struct ags_api_guard *g, struct ags_api_gconn *c)
{
	unlink_waiting(g, c);
	c->closing = 1;
	(void)shutdown(c->fd, SHUT_RDWR);
}

/* Logs what the guard did since the last report, at most every 10 s (under g->mu). */
static void report(ags_api *api, struct ags_api_guard *g, uint64_t now)
{
	if (now - g->logged_ms < PRESSURE_LOG_MS)
		return;
	uint64_t by_addr = g->refused_addr - g->said_addr, evicted = g->evicted - g->said_evicted,
	         slow = g->timed_out - g->said_timed_out;
	if (!by_addr && !evicted && !slow)
		return;
	g->logged_ms = now;
	g->said_addr = g->refused_addr;
	g->said_evicted = g->evicted;
	g->said_timed_out = g->timed_out;
	ags_api_logf(api, AGS_LOG_WARN,
	             "HTTP API under pressure from clients that do not finish their requests: %zu "
	             "waiting now (at most %d, %d per address); since the last report %llu refused "
	             "(too many from one address), %llu closed for newer ones, %llu closed after "
	             "%d s without a whole request head",
	             g->waiting, AGS_API_WAITING_MAX, AGS_API_WAITING_PER_ADDR,
	             (unsigned long long)by_addr, (unsigned long long)evicted,
	             (unsigned long long)slow, AGS_API_HEAD_TIMEOUT_S);
}

enum MHD_Result ags_api_guard_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	ags_api *api = cls;
	struct ags_api_guard *g = &api->guard;
	(void)addrlen;
	pthread_mutex_lock(&g->mu);
	size_t same = 0;
	for (struct ags_api_gconn *c = g->head; c; c = c->next)
		same += same_ip(addr, &c->addr);
	enum MHD_Result ok = MHD_YES;
	if (same >= AGS_API_WAITING_PER_ADDR) {
		g->refused_addr++;
		ok = MHD_NO;
	} else if (g->waiting >= AGS_API_WAITING_MAX && g->tail) {
		g->evicted++;
		close_waiting(g, g->tail);
	}
	report(api, g, mono_ms());
	pthread_mutex_unlock(&g->mu);
	return ok;
}

void ags_api_guard_notify(void *cls, struct MHD_Connection *connection, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
	ags_api *api = cls;
	struct ags_api_guard *g = &api->guard;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		struct ags_api_gconn *c = calloc(1, sizeof(*c));
		if (!c)
			return; /* unguarded: MHD's own limits still hold */
		const union MHD_ConnectionInfo *fd =
		    MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
		const union MHD_ConnectionInfo *ad =
		    MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		c->fd = fd ? fd->connect_fd : -1;
		if (ad && ad->client_addr) {
			size_t n = ad->client_addr->sa_family == AF_INET6
			               ? sizeof(struct sockaddr_in6)
			               : sizeof(struct sockaddr_in);
			memcpy(&c->addr, ad->client_addr, n);
		}
		pthread_mutex_lock(&g->mu);
		link_waiting(g, c);
		pthread_mutex_unlock(&g->mu);
		*socket_context = c;
		return;
	}
	struct ags_api_gconn *c = *socket_context;
	if (!c)
		return;
	pthread_mutex_lock(&g->mu);
	unlink_waiting(g, c);
	pthread_mutex_unlock(&g->mu);
	free(c);
	*socket_context = NULL;
}

static struct ags_api_gconn *gconn_of(struct MHD_Connection *connection)
{
	const union MHD_ConnectionInfo *i =
	    MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return i ? i->socket_context : NULL;
}

void ags_api_guard_head_done(ags_api *api, struct MHD_Connection *connection)
{
	struct ags_api_gconn *c = gconn_of(connection);
	if (!c)
		return;
	pthread_mutex_lock(&api->guard.mu);
	unlink_waiting(&api->guard, c);
	pthread_mutex_unlock(&api->guard.mu);
}

void ags_api_guard_request_done(ags_api *api, struct MHD_Connection *connection)
{
	struct ags_api_gconn *c = gconn_of(connection);
	if (!c)
		return;
	pthread_mutex_lock(&api->guard.mu);
	if (!c->closing)
		link_waiting(&api->guard, c); /* keep-alive: the next head has the same deadline */
	pthread_mutex_unlock(&api->guard.mu);
}

static void *watchdog(void *arg)
{
	ags_api *api = arg;
	struct ags_api_guard *g = &api->guard;
	pthread_mutex_lock(&g->mu);
	while (!g->stop) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += 1;
		(void)pthread_cond_timedwait(&g->cv, &g->mu, &ts);
		uint64_t now = mono_ms();
		while (g->tail && now - g->tail->since_ms >= AGS_API_HEAD_TIMEOUT_S * 1000u) {
			g->timed_out++;
			close_waiting(g, g->tail);
		}
		report(api, g, now);
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

int ags_api_guard_start(ags_api *api)
{
	struct ags_api_guard *g = &api->guard;
	pthread_condattr_t ca;
	if (pthread_mutex_init(&g->mu, NULL) != 0)
		return -1;
	if (pthread_condattr_init(&ca) != 0 ||
	    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&g->cv, &ca) != 0) {
		pthread_mutex_destroy(&g->mu);
		return -1;
	}
	pthread_condattr_destroy(&ca);
	g->stop = 0;
	if (pthread_create(&g->thread, NULL, watchdog, api) != 0) {
		pthread_cond_destroy(&g->cv);
		pthread_mutex_destroy(&g->mu);
		return -1;
	}
	g->running = 1;
	return 0;
}

void ags_api_guard_stop(ags_api *api)
{
	struct ags_api_guard *g = &api->guard;
	if (!g->running)
		return;
	pthread_mutex_lock(&g->mu);
	g->stop = 1;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
	pthread_join(g->thread, NULL);
	g->running = 0;
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->mu);
}
