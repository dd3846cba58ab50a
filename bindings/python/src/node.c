/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agentsync._agentsync._Node: one ags_node, configured by the daemon's own
 * parser (config.h), so names, defaults and validation are agentsyncd's.
 *
 * Lifecycle: the constructor parses and checks the configuration and writes
 * nothing. start() makes (when quic.tls.cert is not set, as agentsyncd does)
 * a self-signed CA and certificate in dataDir/certs, then a fresh ags_node,
 * and starts it; stop() stops it and keeps it, so that get_state() still
 * answers for the last run; the next start() replaces it.
 *
 * Locking: `life` is a writer-preferring read/write lock. start() and stop()
 * hold it for writing; every other call that uses the node holds it for
 * reading while it calls the library. It is only ever taken with the GIL
 * released, so the two locks never wait on each other.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pyags.h"

#include "agentsync/certs.h"
#include "agentsyncd/config.h"

/* Patterns per library call (one transaction each) in sync_patterns. */
#define APPLY_CHUNK 1000

typedef struct {
	PyObject_HEAD;
	ags_config *cfg;
	ags_node *node; /* NULL before the first start() */
	struct pyags_queue *q;
	pthread_rwlock_t life;
	int running;
	int own_certs_made;
	/* The last run's statistics, as of its stop(). */
	int have_last;
	ags_node_state last;
} NodeObject;

static void on_event(ags_node *n, const ags_event *ev, void *ud)
{
	pyags_queue_event(ud, ev);
}

static void on_log(ags_node *n, int level, const char *message, void *ud)
{
	pyags_queue_log(ud, level, message);
}

/* ---- construction ---- */

static int node_init(PyObject *op, PyObject *args, PyObject *kw)
{
	NodeObject *self = (NodeObject *)op;
	static char *kwlist[] = {"config_json",       "path", "node_id", "data_dir",
	                         "max_queued_events", NULL};
	const char *json = NULL, *path = NULL, *node_id = NULL, *data_dir = NULL;
	Py_ssize_t json_len = 0, max_events = PYAGS_QUEUE_MAX_EVENTS;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|z#zzzn", kwlist, &json, &json_len, &path,
	                                 &node_id, &data_dir, &max_events))
		return -1;
	if (max_events < 1 || max_events > PYAGS_QUEUE_MAX_EVENTS) {
		pyags_raisef(AGS_ERR_INVALID, PYAGS_CTX_ANY, "max_queued_events",
		             "must be from 1 to %d, got %zd", PYAGS_QUEUE_MAX_EVENTS, max_events);
		return -1;
	}
	if (self->cfg) {
		PyErr_SetString(PyExc_RuntimeError, "_Node is already initialised");
		return -1;
	}
	if (!json == !path) {
		PyErr_SetString(PyExc_TypeError, "give config_json or path");
		return -1;
	}
	ags_config_overrides ov;
	ags_config_overrides_init(&ov);
	ov.node_id = node_id;
	ov.data_dir = data_dir;
	ags_error err;
	ags_error_clear(&err);
	ags_config *cfg = NULL;
	int rc;
	Py_BEGIN_ALLOW_THREADS;
	if (json)
		rc = ags_config_parse(json, (size_t)json_len, &ov, &cfg, &err);
	else
		rc = ags_config_load(path, &ov, &cfg, &err);
	if (rc == 0)
		rc = ags_config_check_files(cfg, &err);
	if (rc == 0)
		rc = ags_config_load_files(cfg, &err);
	Py_END_ALLOW_THREADS;
	if (rc < 0) {
		ags_config_del(cfg);
		pyags_raise(&err, rc, PYAGS_CTX_CONFIG, -1);
		return -1;
	}
	self->q = pyags_queue_new((size_t)max_events, PYAGS_QUEUE_MAX_BYTES);
	if (!self->q) {
		ags_config_del(cfg);
		PyErr_NoMemory();
		return -1;
	}
	atomic_store(&self->q->log_level, cfg->log.level);
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	rc = pthread_rwlock_init(&self->life, &ra);
	pthread_rwlockattr_destroy(&ra);
	if (rc != 0) {
		pyags_queue_del(self->q);
		self->q = NULL;
		ags_config_del(cfg);
		PyErr_NoMemory();
		return -1;
	}
	self->cfg = cfg;
	return 0;
}

static void node_dealloc(PyObject *op)
{
	NodeObject *self = (NodeObject *)op;
	PyTypeObject *tp = Py_TYPE(op);
	ags_node *n = self->node;
	self->node = NULL;
	Py_BEGIN_ALLOW_THREADS;
	ags_node_del(n); /* stops it first when it runs */
	Py_END_ALLOW_THREADS;
	if (self->cfg) {
		pthread_rwlock_destroy(&self->life);
		ags_config_del(self->cfg);
	}
	pyags_queue_del(self->q);
	freefunc tp_free = (freefunc)PyType_GetSlot(tp, Py_tp_free);
	tp_free(op);
	Py_DECREF(tp);
}

static int ready(NodeObject *self)
{
	if (!self->cfg) {
		PyErr_SetString(PyExc_RuntimeError, "_Node is not initialised");
		return 0;
	}
	return 1;
}

/* ---- start, stop ---- */

/*
 * As agentsyncd does without quic.tls.cert: a self-signed CA and a
 * certificate for this node in dataDir/certs (made once, reused after).
 */
static int make_own_certs(NodeObject *self, ags_error *err)
{
	ags_config *c = self->cfg;
	char dir[4200], cert[4400], key[4400], ca[4400];
	snprintf(dir, sizeof(dir), "%s/certs", c->node.data_dir);
	int rc = ags_certs_self_signed(dir, c->node.node_id, err);
	if (rc < 0)
		return rc;
	snprintf(cert, sizeof(cert), "%s/%s.pem", dir, c->node.node_id);
	snprintf(key, sizeof(key), "%s/%s-key.pem", dir, c->node.node_id);
	snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
	if ((rc = ags_config_set_str(c, &c->node.tls.cert, cert)) < 0 ||
	    (rc = ags_config_set_str(c, &c->node.tls.key, key)) < 0 ||
	    (rc = ags_config_set_str(c, &c->node.tls.ca, ca)) < 0)
		return rc;
	self->own_certs_made = 1;
	return 0;
}

static PyObject *node_start(PyObject *op, PyObject *unused)
{
	NodeObject *self = (NodeObject *)op;
	if (!ready(self))
		return NULL;
	ags_error err;
	ags_error_clear(&err);
	int rc = 0;
	Py_BEGIN_ALLOW_THREADS;
	pthread_rwlock_wrlock(&self->life);
	if (self->running) {
		rc = AGS_ERR_STATE;
		snprintf(err.message, sizeof(err.message), "the node is already started");
	}
	if (rc == 0 && !self->cfg->tls_from_file && !self->own_certs_made)
		rc = make_own_certs(self, &err);
	if (rc == 0) {
		ags_node_del(self->node);
		self->node = NULL;
		ags_node_callbacks cb = {AGS_NODE_CALLBACKS_VERSION, on_event, on_log};
		pyags_queue_set_closed(self->q, 0);
		rc = ags_node_new(&self->cfg->node, &cb, self->q, &self->node, &err);
		if (rc == 0)
			rc = ags_node_start(self->node, &err);
		if (rc < 0) {
			ags_node_del(self->node);
			self->node = NULL;
		} else {
			self->running = 1;
		}
	}
	pthread_rwlock_unlock(&self->life);
	Py_END_ALLOW_THREADS;
	if (rc < 0)
		return pyags_raise(&err, rc,
		                   rc == AGS_ERR_CONFIG ? PYAGS_CTX_CONFIG : PYAGS_CTX_ANY, -1);
	Py_RETURN_NONE;
}

static PyObject *node_stop(PyObject *op, PyObject *unused)
{
	NodeObject *self = (NodeObject *)op;
	if (!ready(self))
		return NULL;
	Py_BEGIN_ALLOW_THREADS;
	pthread_rwlock_wrlock(&self->life);
	if (self->running) {
		ags_node_state *st = NULL;
		if (ags_node_get_state(self->node, &st) == 0) {
			self->last = *st;
			self->last.peers = NULL;
			self->last.n_peers = 0;
			self->have_last = 1;
			ags_node_state_del(st);
		}
		ags_node_stop(self->node);
		self->running = 0;
	}
	pthread_rwlock_unlock(&self->life);
	Py_END_ALLOW_THREADS;
	Py_RETURN_NONE;
}

/*
 * Runs `body` with the GIL released and the node held for reading; sets
 * `rc` to AGS_ERR_STATE (and says so in `err`) when the node is not running.
 */
#define WITH_NODE(self, rc, err, ...)                                                              \
	do {                                                                                       \
		Py_BEGIN_ALLOW_THREADS;                                                            \
		pthread_rwlock_rdlock(&(self)->life);                                              \
		if (!(self)->running) {                                                            \
			rc = AGS_ERR_STATE;                                                        \
			snprintf((err).message, sizeof((err).message),                             \
			         "the node is not started (call start() first)");                  \
		} else {                                                                           \
			__VA_ARGS__;                                                               \
		}                                                                                  \
		pthread_rwlock_unlock(&(self)->life);                                              \
		Py_END_ALLOW_THREADS;                                                              \
	} while (0)

/* ---- peers ---- */

static PyObject *node_connect_peer(PyObject *op, PyObject *args, PyObject *kw)
{
	NodeObject *self = (NodeObject *)op;
	static char *kwlist[] = {"address", "port", "peer_id", NULL};
	const char *address, *id;
	int port;
	if (!ready(self) ||
	    !PyArg_ParseTupleAndKeywords(args, kw, "sis", kwlist, &address, &port, &id))
		return NULL;
	if (port < 1 || port > 65535)
		return pyags_raisef(AGS_ERR_INVALID, PYAGS_CTX_ANY, "port",
		                    "must be from 1 to 65535, got %d", port);
	ags_error err;
	ags_error_clear(&err);
	int rc = 0;
	WITH_NODE(self, rc, err,
	          rc = ags_node_connect_peer(self->node, address, (uint16_t)port, id));
	if (rc == AGS_ERR_EXISTS)
		return pyags_raisef(rc, PYAGS_CTX_ANY, "peer_id", "'%s' is already a peer", id);
	if (rc == AGS_ERR_INVALID)
		return pyags_raisef(rc, PYAGS_CTX_ANY, "peer_id",
		                    "'%s' / '%s' is not a valid peer id and address", id, address);
	if (rc < 0)
		return pyags_raise(&err, rc, PYAGS_CTX_ANY, -1);
	Py_RETURN_NONE;
}

static PyObject *node_disconnect_peer(PyObject *op, PyObject *args)
{
	NodeObject *self = (NodeObject *)op;
	const char *id;
	if (!ready(self) || !PyArg_ParseTuple(args, "s", &id))
		return NULL;
	ags_error err;
	ags_error_clear(&err);
	int rc = 0;
	WITH_NODE(self, rc, err, rc = ags_node_disconnect_peer(self->node, id));
	if (rc == AGS_ERR_NOT_FOUND)
		return pyags_raisef(rc, PYAGS_CTX_ANY, "peer_id", "no peer '%s'", id);
	if (rc < 0)
		return pyags_raise(&err, rc, PYAGS_CTX_ANY, -1);
	Py_RETURN_NONE;
}

/* ---- writes ---- */

static const ags_pattern_opts *pattern_opts(NodeObject *self, ags_pattern_opts *o)
{
	o->max_bytes = self->cfg->node.max_pattern_bytes;
	return o;
}

static PyObject *node_sync_pattern(PyObject *op, PyObject *args, PyObject *kw)
{
	NodeObject *self = (NodeObject *)op;
	static char *kwlist[] = {"pattern", "peer_ids", NULL};
	PyObject *pobj, *ids_obj = Py_None;
	if (!ready(self) || !PyArg_ParseTupleAndKeywords(args, kw, "O|O", kwlist, &pobj, &ids_obj))
		return NULL;
	/* A tuple of our own keeps the id strings (and their UTF-8) alive without the GIL. */
	PyObject *ids = ids_obj == Py_None ? NULL : PySequence_Tuple(ids_obj);
	if (ids_obj != Py_None && !ids)
		return NULL;
	Py_ssize_t n_ids = ids ? PyTuple_Size(ids) : 0;
	const char **idv = PyMem_Calloc(n_ids ? (size_t)n_ids : 1, sizeof(*idv));
	char *json = NULL;
	size_t len = 0;
	ags_pattern *p = NULL;
	PyObject *result = NULL;
	if (!idv) {
		PyErr_NoMemory();
		goto done;
	}
	for (Py_ssize_t i = 0; i < n_ids; i++) {
		PyObject *s = PyTuple_GetItem(ids, i);
		idv[i] = s && PyUnicode_Check(s) ? PyUnicode_AsUTF8AndSize(s, NULL) : NULL;
		if (!idv[i]) {
			if (!PyErr_Occurred())
				PyErr_Format(PyExc_TypeError, "peer_ids[%zd] must be a str", i);
			goto done;
		}
	}
	if (pyags_pattern_text(pobj, -1, &json, &len) < 0)
		goto done;
	ags_pattern_opts po;
	char *texts[1] = {json};
	json = NULL; /* freed by the parse */
	if (pyags_parse_texts(texts, &len, 1, (size_t)-1, pattern_opts(self, &po), &p) < 0)
		goto done;
	ags_error err;
	ags_error_clear(&err);
	ags_apply_result res = {0};
	int rc = 0;
	WITH_NODE(
	    self, rc, err,
	    rc = ags_node_sync_pattern(self->node, p, ids ? idv : NULL, (size_t)n_ids, &res, &err));
	if (rc < 0)
		pyags_raise(&err, rc, PYAGS_CTX_PATTERN, -1);
	else
		result = pyags_apply_result(&res);
done:
	ags_pattern_del(p);
	free(json);
	PyMem_Free(idv);
	Py_XDECREF(ids);
	return result;
}

static PyObject *node_sync_patterns(PyObject *op, PyObject *seq)
{
	NodeObject *self = (NodeObject *)op;
	if (!ready(self))
		return NULL;
	ags_pattern **ps = NULL;
	size_t n = 0;
	ags_pattern_opts po;
	if (pyags_patterns_from_seq(seq, pattern_opts(self, &po), &ps, &n) < 0)
		return NULL;
	ags_apply_result *res = calloc(n ? n : 1, sizeof(*res));
	if (!res) {
		pyags_free_patterns(ps, n);
		return PyErr_NoMemory();
	}
	ags_error err;
	ags_error_clear(&err);
	int rc = 0;
	size_t done = 0;
	/*
	 * Every pattern is valid by now. They go in transactions of APPLY_CHUNK,
	 * as the library's own batch writers do, so that the first ones are on
	 * their way to the peers while the rest are written.
	 */
	WITH_NODE(self, rc, err, {
		for (; rc == 0 && done < n; done += APPLY_CHUNK) {
			size_t k = n - done < APPLY_CHUNK ? n - done : APPLY_CHUNK;
			rc = ags_node_sync_patterns(
			    self->node, (const ags_pattern *const *)ps + done, k, res + done, &err);
			if (rc < 0)
				break;
		}
	});
	PyObject *out = NULL;
	if (rc < 0) {
		if (done > 0 && err.message[0]) {
			/* Say what is already stored (durably): nothing is lost silently. */
			char m[sizeof(err.message)];
			int k = snprintf(m, sizeof(m), "%s (the first %zu patterns are stored)",
			                 err.message, done);
			if (k > 0)
				memcpy(err.message, m, sizeof(m));
		}
		pyags_raise(&err, rc, PYAGS_CTX_ANY, -1);
	} else {
		out = pyags_outcome_counts(res, n);
	}
	free(res);
	Py_BEGIN_ALLOW_THREADS;
	pyags_free_patterns(ps, n);
	Py_END_ALLOW_THREADS;
	return out;
}

static PyObject *node_delete(PyObject *op, PyObject *args)
{
	NodeObject *self = (NodeObject *)op;
	const char *id;
	if (!ready(self) || !PyArg_ParseTuple(args, "s", &id))
		return NULL;
	ags_error err;
	ags_error_clear(&err);
	ags_apply_result res = {0};
	int rc = 0;
	WITH_NODE(self, rc, err, rc = ags_node_delete(self->node, id, &res, &err));
	if (rc < 0)
		return pyags_raise(&err, rc, PYAGS_CTX_ANY, -1);
	return pyags_apply_result(&res);
}

/* ---- reads ---- */

static PyObject *node_get(PyObject *op, PyObject *args)
{
	NodeObject *self = (NodeObject *)op;
	const char *id;
	if (!ready(self) || !PyArg_ParseTuple(args, "s", &id))
		return NULL;
	ags_error err;
	ags_error_clear(&err);
	ags_pattern *p = NULL;
	int rc = 0;
	WITH_NODE(self, rc, err, rc = ags_node_get(self->node, id, &p));
	if (rc == AGS_ERR_NOT_FOUND)
		Py_RETURN_NONE;
	if (rc < 0) {
		if (!err.message[0])
			snprintf(err.message, sizeof(err.message), "cannot read '%s': %s", id,
			         ags_strerror(rc));
		return pyags_raise(&err, rc, PYAGS_CTX_ANY, -1);
	}
	PyObject *d = pyags_pattern_dict(p);
	ags_pattern_del(p);
	return d;
}

int pyags_parse_query(PyObject *args, PyObject *kw, ags_query *q)
{
	static char *kwlist[] = {"type", "tag", "agent_id", "since", "limit", NULL};
	unsigned long long since = 0;
	Py_ssize_t limit = 0;
	memset(q, 0, sizeof(*q));
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|zzzKn", kwlist, &q->type, &q->tag,
	                                 &q->agent_id, &since, &limit))
		return -1;
	if (limit < 0) {
		pyags_raisef(AGS_ERR_INVALID, PYAGS_CTX_ANY, "limit", "must be >= 0, got %zd",
		             limit);
		return -1;
	}
	q->after_seq = since;
	q->limit = (size_t)limit;
	return 0;
}

static int query_node(void *obj, const ags_query *q, ags_pattern_cb cb, void *ud)
{
	return ags_node_query(obj, q, cb, ud);
}

static PyObject *node_query(PyObject *op, PyObject *args, PyObject *kw)
{
	NodeObject *self = (NodeObject *)op;
	ags_query q;
	if (!ready(self) || pyags_parse_query(args, kw, &q) < 0)
		return NULL;
	/* The read lock is taken without the GIL, and the list made after it is released. */
	int running;
	Py_BEGIN_ALLOW_THREADS;
	pthread_rwlock_rdlock(&self->life);
	running = self->running;
	if (!running)
		pthread_rwlock_unlock(&self->life);
	Py_END_ALLOW_THREADS;
	if (!running)
		return pyags_raisef(AGS_ERR_STATE, PYAGS_CTX_ANY, NULL,
		                    "the node is not started (call start() first)");
	PyObject *list = pyags_query_list(query_node, self->node, &q);
	Py_BEGIN_ALLOW_THREADS;
	pthread_rwlock_unlock(&self->life);
	Py_END_ALLOW_THREADS;
	return list;
}

/* ---- state ---- */

static int set_item(PyObject *d, const char *k, PyObject *v)
{
	int rc = v ? PyDict_SetItemString(d, k, v) : -1;
	Py_XDECREF(v);
	return rc;
}

static PyObject *peer_dict(const ags_peer_state *p)
{
	return Py_BuildValue(
	    "{s:O,s:K,s:K,s:d,s:K,s:s,s:O,s:K,s:K,s:K}", "connected",
	    p->connected ? Py_True : Py_False, "syncCount", (unsigned long long)p->sync_count,
	    "errorCount", (unsigned long long)p->error_count, "latency", p->latency_ms, "lag",
	    (unsigned long long)p->lag, "address", p->address, "degraded",
	    p->degraded ? Py_True : Py_False, "bytesIn", (unsigned long long)p->bytes_in,
	    "bytesOut", (unsigned long long)p->bytes_out, "ackedSeq",
	    (unsigned long long)p->acked_seq);
}

static PyObject *hub_dict(const ags_hub_stats *hs)
{
	if (!hs || !hs->enabled)
		return Py_BuildValue("{s:O}", "enabled", Py_False);
	PyObject *tenants = PyList_New(0);
	for (size_t i = 0; tenants && i < hs->n_tenants; i++) {
		const ags_hub_tenant_stats *t = &hs->tenants[i];
		PyObject *to = Py_BuildValue("{s:s,s:n,s:K,s:K,s:K,s:K,s:s}", "tenant", t->tenant,
		                             "agentsConnected", (Py_ssize_t)t->agents_connected,
		                             "patterns", (unsigned long long)t->patterns, "changes",
		                             (unsigned long long)t->changes, "changesReceived",
		                             (unsigned long long)t->changes_received, "conflicts",
		                             (unsigned long long)t->conflicts, "digest", t->digest);
		if (!to || PyList_Append(tenants, to) < 0)
			Py_CLEAR(tenants);
		Py_XDECREF(to);
	}
	if (!tenants)
		return NULL;
	return Py_BuildValue("{s:O,s:n,s:K,s:K,s:N}", "enabled", Py_True, "agentsConnected",
	                     (Py_ssize_t)hs->agents_connected, "authOk",
	                     (unsigned long long)hs->auth_ok, "authRefused",
	                     (unsigned long long)hs->auth_refused, "tenants", tenants);
}

/* What a stopped node's store holds, read from its file (NULL: none yet, or a hub's). */
struct store_info {
	int have;
	char id[33];
	uint64_t patterns, seq;
	char digest[65];
};

static void read_store(const ags_config *c, struct store_info *si)
{
	char path[4200];
	si->have = 0;
	if (c->node.hub.enabled)
		return; /* a hub's store is per tenant */
	snprintf(path, sizeof(path), "%s/store.db", c->node.data_dir);
	if (access(path, F_OK) != 0)
		return;
	ags_store *s = NULL;
	if (ags_store_open(path, NULL, &s, NULL) < 0)
		return;
	if (ags_store_count(s, &si->patterns) == 0) {
		snprintf(si->id, sizeof(si->id), "%s", ags_store_id(s));
		si->seq = ags_store_seq(s);
		ags_store_digest(s, si->digest);
		si->have = 1;
	}
	ags_store_close(s);
}

static PyObject *node_get_state(PyObject *op, PyObject *unused)
{
	NodeObject *self = (NodeObject *)op;
	if (!ready(self))
		return NULL;
	ags_node_state *st = NULL;
	ags_hub_stats *hs = NULL;
	struct store_info si = {0};
	int rc = 0, running;
	ags_node_state last = {0};
	Py_BEGIN_ALLOW_THREADS;
	pthread_rwlock_rdlock(&self->life);
	running = self->running;
	if (self->node)
		rc = ags_node_get_state(self->node, &st);
	if (rc == 0 && running && self->cfg->node.hub.enabled &&
	    ags_node_get_hub_stats(self->node, &hs) < 0)
		hs = NULL;
	if (!running) {
		if (self->have_last)
			last = self->last;
		read_store(self->cfg, &si);
	}
	pthread_rwlock_unlock(&self->life);
	Py_END_ALLOW_THREADS;
	if (rc < 0)
		return pyags_raisef(rc, PYAGS_CTX_ANY, NULL, "cannot read the node's state: %s",
		                    ags_strerror(rc));
	const ags_config *c = self->cfg;
	/* Statistics of the running node, or of the last run as of its stop(). */
	const ags_node_state *stats = running && st ? st : &last;
	PyObject *d = PyDict_New(), *peers = PyDict_New(), *store = NULL, *hub = NULL;
	if (!d || !peers)
		goto fail;
	if (st) {
		for (size_t i = 0; i < st->n_peers; i++)
			if (set_item(peers, st->peers[i].id, peer_dict(&st->peers[i])) < 0)
				goto fail;
	} else {
		/* Never started: the configured peers, not connected. */
		for (size_t i = 0; i < c->node.n_peers; i++) {
			ags_peer_state p = {0};
			snprintf(p.address, sizeof(p.address), "%s:%u", c->node.peers[i].address,
			         c->node.peers[i].port);
			if (set_item(peers, c->node.peers[i].id, peer_dict(&p)) < 0)
				goto fail;
		}
	}
	if (running && st)
		store =
		    Py_BuildValue("{s:s,s:K,s:K,s:s}", "id", st->store.id, "patterns",
		                  (unsigned long long)st->store.patterns, "seq",
		                  (unsigned long long)st->store.seq, "digest", st->store.digest);
	else if (si.have)
		store = Py_BuildValue("{s:s,s:K,s:K,s:s}", "id", si.id, "patterns",
		                      (unsigned long long)si.patterns, "seq",
		                      (unsigned long long)si.seq, "digest", si.digest);
	else
		store = Py_NewRef(Py_None);
	hub = hub_dict(hs);
	if (!store || !hub)
		goto fail;
	PyObject *statsd = Py_BuildValue(
	    "{s:K,s:K,s:K,s:d,s:K,s:d}", "totalSyncs", (unsigned long long)stats->stats.total_syncs,
	    "successfulSyncs", (unsigned long long)stats->stats.successful_syncs, "failedSyncs",
	    (unsigned long long)stats->stats.failed_syncs, "averageLatency",
	    stats->stats.average_latency_ms, "bytesTransferred",
	    (unsigned long long)stats->stats.bytes_transferred, "compressionRatio",
	    stats->stats.compression_ratio);
	if (set_item(d, "nodeId", PyUnicode_FromString(c->node.node_id)) < 0 ||
	    set_item(d, "running", PyBool_FromLong(running)) < 0 ||
	    set_item(d, "connections", PyLong_FromSize_t(running && st ? st->connections : 0)) <
	        0 ||
	    set_item(d, "stats", statsd) < 0 || PyDict_SetItemString(d, "peers", peers) < 0 ||
	    PyDict_SetItemString(d, "store", store) < 0 || PyDict_SetItemString(d, "hub", hub) < 0)
		goto fail;
	Py_DECREF(peers);
	Py_DECREF(store);
	Py_DECREF(hub);
	ags_node_state_del(st);
	ags_node_hub_stats_del(hs);
	return d;
fail:
	Py_XDECREF(d);
	Py_XDECREF(peers);
	Py_XDECREF(store);
	Py_XDECREF(hub);
	ags_node_state_del(st);
	ags_node_hub_stats_del(hs);
	return NULL;
}

/* ---- misc ---- */

static PyObject *node_sync_now(PyObject *op, PyObject *unused)
{
	NodeObject *self = (NodeObject *)op;
	if (!ready(self))
		return NULL;
	ags_error err;
	ags_error_clear(&err);
	int rc = 0;
	WITH_NODE(self, rc, err, rc = ags_node_sync_now(self->node));
	if (rc < 0)
		return pyags_raise(&err, rc, PYAGS_CTX_ANY, -1);
	Py_RETURN_NONE;
}

static PyObject *node_reload_tls(PyObject *op, PyObject *unused)
{
	NodeObject *self = (NodeObject *)op;
	if (!ready(self))
		return NULL;
	ags_error err;
	ags_error_clear(&err);
	int rc = 0;
	WITH_NODE(self, rc, err, rc = ags_node_reload_tls(self->node, &err));
	if (rc < 0)
		return pyags_raise(&err, rc, PYAGS_CTX_ANY, -1);
	Py_RETURN_NONE;
}

static PyObject *node_next_events(PyObject *op, PyObject *args)
{
	NodeObject *self = (NodeObject *)op;
	Py_ssize_t max = 256;
	double timeout = -1;
	if (!ready(self) || !PyArg_ParseTuple(args, "|nd", &max, &timeout))
		return NULL;
	return pyags_queue_take(self->q, max, timeout);
}

static PyObject *node_close_events(PyObject *op, PyObject *unused)
{
	NodeObject *self = (NodeObject *)op;
	if (!ready(self))
		return NULL;
	pyags_queue_set_closed(self->q, 1);
	Py_RETURN_NONE;
}

static PyObject *node_set_event_mask(PyObject *op, PyObject *arg)
{
	NodeObject *self = (NodeObject *)op;
	unsigned long m = PyLong_AsUnsignedLongMask(arg);
	if (!ready(self) || PyErr_Occurred())
		return NULL;
	atomic_store(&self->q->mask, (unsigned)m);
	Py_RETURN_NONE;
}

static PyObject *node_get_port(PyObject *op, void *closure)
{
	NodeObject *self = (NodeObject *)op;
	if (!ready(self))
		return NULL;
	unsigned port = 0;
	Py_BEGIN_ALLOW_THREADS;
	pthread_rwlock_rdlock(&self->life);
	if (self->running)
		port = ags_node_port(self->node);
	pthread_rwlock_unlock(&self->life);
	Py_END_ALLOW_THREADS;
	return PyLong_FromUnsignedLong(port);
}

static PyObject *node_get_running(PyObject *op, void *closure)
{
	NodeObject *self = (NodeObject *)op;
	return PyBool_FromLong(self->running);
}

static PyObject *node_get_node_id(PyObject *op, void *closure)
{
	NodeObject *self = (NodeObject *)op;
	if (!ready(self))
		return NULL;
	return PyUnicode_FromString(self->cfg->node.node_id);
}

static PyObject *node_get_data_dir(PyObject *op, void *closure)
{
	NodeObject *self = (NodeObject *)op;
	if (!ready(self))
		return NULL;
	return PyUnicode_FromString(self->cfg->node.data_dir);
}

static PyObject *node_get_log_level(PyObject *op, void *closure)
{
	NodeObject *self = (NodeObject *)op;
	if (!ready(self))
		return NULL;
	return PyLong_FromLong(self->cfg->log.level);
}

static PyObject *node_get_warnings(PyObject *op, void *closure)
{
	NodeObject *self = (NodeObject *)op;
	if (!ready(self))
		return NULL;
	PyObject *l = PyList_New(0);
	for (size_t i = 0; l && i < self->cfg->n_warnings; i++) {
		PyObject *s = PyUnicode_DecodeUTF8(
		    self->cfg->warnings[i], (Py_ssize_t)strlen(self->cfg->warnings[i]), "replace");
		if (!s || PyList_Append(l, s) < 0)
			Py_CLEAR(l);
		Py_XDECREF(s);
	}
	return l;
}

static PyMethodDef node_methods[] = {
    {"start", node_start, METH_NOARGS, NULL},
    {"stop", node_stop, METH_NOARGS, NULL},
    {"connect_peer", (PyCFunction)(void (*)(void))node_connect_peer, METH_VARARGS | METH_KEYWORDS,
     NULL},
    {"disconnect_peer", node_disconnect_peer, METH_VARARGS, NULL},
    {"sync_pattern", (PyCFunction)(void (*)(void))node_sync_pattern, METH_VARARGS | METH_KEYWORDS,
     NULL},
    {"sync_patterns", node_sync_patterns, METH_O, NULL},
    {"delete", node_delete, METH_VARARGS, NULL},
    {"get", node_get, METH_VARARGS, NULL},
    {"query", (PyCFunction)(void (*)(void))node_query, METH_VARARGS | METH_KEYWORDS, NULL},
    {"get_state", node_get_state, METH_NOARGS, NULL},
    {"sync_now", node_sync_now, METH_NOARGS, NULL},
    {"reload_tls", node_reload_tls, METH_NOARGS, NULL},
    {"next_events", node_next_events, METH_VARARGS, NULL},
    {"close_events", node_close_events, METH_NOARGS, NULL},
    {"set_event_mask", node_set_event_mask, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef node_getset[] = {
    {"port", node_get_port, NULL, NULL, NULL},
    {"running", node_get_running, NULL, NULL, NULL},
    {"node_id", node_get_node_id, NULL, NULL, NULL},
    {"data_dir", node_get_data_dir, NULL, NULL, NULL},
    {"log_level", node_get_log_level, NULL, NULL, NULL},
    {"warnings", node_get_warnings, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot node_slots[] = {
    {Py_tp_doc, "An embedded agentsync node (use agentsync.Node)."},
    {Py_tp_init, node_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, node_dealloc},
    {Py_tp_methods, node_methods},
    {Py_tp_getset, node_getset},
    {0, NULL},
};

static PyType_Spec node_spec = {
    "agentsync._agentsync._Node", sizeof(NodeObject), 0, Py_TPFLAGS_DEFAULT, node_slots,
};

int pyags_node_add_type(PyObject *module)
{
	PyObject *t = PyType_FromSpec(&node_spec);
	if (!t)
		return -1;
	int rc = PyModule_AddObjectRef(module, "_Node", t);
	Py_DECREF(t);
	return rc;
}
