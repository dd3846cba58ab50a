/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The node's loop thread: commands from other threads (a queue and a
 * uv_async_t), the 50 ms tick (dials, health, expiry, the hub's deadlines),
 * the pumps that let every session send, and the loop itself with its busy
 * polling.
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "hub.h"
#include "node_int.h"
#include "node_link.h"
#include "store.h"

/* ---- housekeeping ---- */

void ags_node_pump_all(struct ags_node *n)
{
	uint64_t now = ags_mono_us();
	for (size_t i = 0; i < n->n_peers; i++) {
		if (n->peers[i]->link)
			ags_node_link_pump(n->peers[i]->link, now);
		/* A resumed connection still in its handshake sends in 0-RTT. */
		if (n->peers[i]->dialing)
			ags_node_link_pump(n->peers[i]->dialing, now);
	}
	if (n->hub)
		ags_hub_pump_default(n->hub);
	if (n->up)
		ags_node_upstream_step(n);
}

static void tick(struct ags_node *n)
{
	uint64_t now = ags_mono_ms();
	for (size_t i = 0; i < n->n_peers; i++) {
		struct ags_peer *p = n->peers[i];
		if (p->dial && !p->link && !p->dialing && p->retry_at_ms <= now && p->address)
			p->ops->dial(n, p);
	}
	ags_node_pump_all(n);
	ags_node_link_tick(n, now);
	/* While the log is being sent the store is not idle: no checkpoint yet. */
	for (size_t i = 0; i < n->n_peers; i++) {
		struct ags_link *l = n->peers[i]->link;
		if (l && l->sync && ags_sync_sending(l->sync)) {
			ags_store_ckpt_defer(n->store);
			break;
		}
	}
	int sweep = now >= n->next_sweep_ms;
	if (n->hub)
		ags_hub_tick(n->hub, now, sweep);
	if (now >= n->next_health_ms) {
		n->next_health_ms = now + n->cfg.health_interval_ms;
		for (size_t i = 0; i < n->n_peers; i++)
			ags_node_peer_check_health(n, n->peers[i]);
	}
	if (now >= n->next_sweep_ms) {
		n->next_sweep_ms = now + n->cfg.sweep_interval_ms;
		uint64_t purged = 0;
		pthread_mutex_lock(&n->store_mu);
		int rv = ags_store_sweep(n->store, ags_now_ms(), &purged);
		pthread_mutex_unlock(&n->store_mu);
		if (rv)
			ags_node_log(n, AGS_LOG_ERROR, "expiry sweep failed: %s", ags_strerror(rv));
		else if (purged)
			ags_node_log(n, AGS_LOG_INFO, "expiry sweep purged %llu patterns",
			             (unsigned long long)purged);
	}
}

void ags_node_close_all(struct ags_node *n)
{
	if (n->hub)
		ags_hub_close_all(n->hub);
	for (size_t i = 0; i < n->n_peers; i++) {
		struct ags_peer *p = n->peers[i];
		/* ERROR frames first; connections not named here close with SHUTTING_DOWN too. */
		if (p->link)
			ags_node_link_close(p->link, AGS_APP_SHUTTING_DOWN, "node shutting down");
		if (p->dialing)
			ags_node_link_close(p->dialing, AGS_APP_SHUTTING_DOWN,
			                    "node shutting down");
	}
	/* Sends CONNECTION_CLOSE, runs on_closed for every connection, closes handles. */
	ags_quic_ep_del(n->ep);
	n->ep = NULL;
}

/* ---- commands (any thread -> loop thread) ---- */

int ags_node_post(struct ags_node *n, struct ags_cmd *cmd)
{
	pthread_mutex_lock(&n->cmd_mu);
	if (!n->running) {
		pthread_mutex_unlock(&n->cmd_mu);
		return AGS_ERR_STATE;
	}
	cmd->next = NULL;
	if (n->cmd_tail)
		n->cmd_tail->next = cmd;
	else
		n->cmd_head = cmd;
	n->cmd_tail = cmd;
	uv_async_send(&n->async);
	int rv = 0;
	if (cmd->sync) {
		while (!cmd->done)
			pthread_cond_wait(&n->cmd_cv, &n->cmd_mu);
		rv = cmd->result;
	}
	pthread_mutex_unlock(&n->cmd_mu);
	return rv;
}

void ags_node_cmd_free(struct ags_cmd *c)
{
	free(c->id);
	free(c->address);
	free(c->blob);
	free(c);
}

int ags_node_post_sync(struct ags_node *n, struct ags_cmd *c)
{
	c->sync = 1;
	int rv = ags_node_post(n, c);
	return rv == 0 || c->done ? c->result : rv;
}

static void run_cmd(struct ags_node *n, struct ags_cmd *c)
{
	switch (c->type) {
	case CMD_CONNECT: {
		struct ags_peer *p = ags_node_peer_find(n, c->id);
		if (p && p->dial) {
			c->result = AGS_ERR_EXISTS;
			break;
		}
		if (p) {
			/* It dialled us; from now on we keep it connected too. */
			free(p->address);
			p->address = strdup(c->address);
			p->port = c->port;
			p->dial = 1;
		} else if (!ags_node_peer_add(n, c->id, c->address, c->port, 1)) {
			c->result = AGS_ERR_NOMEM;
		}
		break;
	}
	case CMD_DISCONNECT: {
		struct ags_peer *p = ags_node_peer_find(n, c->id);
		if (!p)
			c->result = AGS_ERR_NOT_FOUND;
		else
			ags_node_peer_remove(n, p);
		break;
	}
	case CMD_WAKE:
		break;
	case CMD_STATE:
		ags_node_fill_state(n, c->state);
		break;
	case CMD_RELOAD_TLS:
		c->result = ags_node_reload_tls_loop(n, NULL);
		break;
	case CMD_HUB_STATS:
		if (n->hub)
			ags_hub_fill_stats(n->hub, c->hub_stats);
		break;
	case CMD_UP_OP:
	case CMD_UP_DISCONNECT:
	case CMD_UP_EXPORT:
	case CMD_UP_IMPORT:
		ags_node_upstream_cmd(n, c);
		break;
	case CMD_STOP:
		ags_node_close_all(n);
		ags_applier_close(&n->applier);
		uv_close((uv_handle_t *)&n->async, NULL);
		uv_close((uv_handle_t *)&n->tick, NULL);
		n->async_open = n->tick_open = 0;
		break;
	}
}

void ags_node_on_async(uv_async_t *h)
{
	struct ags_node *n = h->data;
	n->wakes++;
	for (;;) {
		pthread_mutex_lock(&n->cmd_mu);
		struct ags_cmd *c = n->cmd_head;
		if (c) {
			n->cmd_head = c->next;
			if (!n->cmd_head)
				n->cmd_tail = NULL;
		}
		pthread_mutex_unlock(&n->cmd_mu);
		if (!c)
			break;
		int stop = c->type == CMD_STOP;
		run_cmd(n, c);
		pthread_mutex_lock(&n->cmd_mu);
		if (c->sync) {
			c->done = 1;
			pthread_cond_broadcast(&n->cmd_cv);
		} else {
			ags_node_cmd_free(c);
		}
		pthread_mutex_unlock(&n->cmd_mu);
		if (stop)
			return;
	}
	/* Any wake-up may mean new local changes: let every sender look. */
	ags_node_pump_all(n);
}

void ags_node_on_tick(uv_timer_t *t)
{
	tick(t->data);
}

/* Input the loop has seen: datagrams read, commands, applied batches. */
static uint64_t activity(const struct ags_node *n)
{
	return ags_quic_ep_activity(n->ep) + n->wakes + n->applier.wakes;
}

/*
 * The loop thread. With busy polling (busy_poll_us > 0), after input the
 * loop keeps polling without sleeping until none has come for that long,
 * then blocks: on a VM, waking a thread that sleeps in epoll costs tens of
 * microseconds per message, most of a request/response on loopback. It
 * yields the CPU between polls, so a thread with work on the same core goes
 * first.
 */
void ags_node_loop_main(void *arg)
{
	struct ags_node *n = arg;
	uint64_t spin = n->cfg.busy_poll_us;
	if (!spin) {
		uv_run(&n->loop, UV_RUN_DEFAULT);
		return;
	}
	for (;;) {
		uint64_t before = activity(n);
		if (!uv_run(&n->loop, UV_RUN_ONCE))
			return;
		if (activity(n) == before)
			continue; /* a timer: nothing to expect, sleep again */
		uint64_t seen = activity(n), idle_since = ags_mono_us();
		for (;;) {
			if (!uv_run(&n->loop, UV_RUN_NOWAIT))
				return;
			uint64_t a = activity(n), now = ags_mono_us();
			if (a != seen) {
				seen = a;
				idle_since = now;
			} else if (now - idle_since >= spin) {
				break;
			} else {
				sched_yield();
			}
		}
	}
}
