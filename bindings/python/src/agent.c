/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agentsync._agentsync._Agent: one ags_agent (seed 004's FederationHub
 * client, include/agentsync/agent.h). The constructor opens the agent's
 * store and starts its network thread; close() stops and frees it.
 *
 * Locking as _Node's (node.c): `life` is held for writing by close() and for
 * reading by every call into the agent, always with the GIL released.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pyags.h"

#include "agentsync/agent.h"

typedef struct {
	PyObject_HEAD;
	ags_agent *agent; /* NULL once closed */
	struct pyags_queue *q;
	pthread_rwlock_t life;
	int inited;
	size_t max_pattern_bytes;
} AgentObject;

static void on_event(ags_agent *a, const ags_event *ev, void *ud)
{
	pyags_queue_event(ud, ev);
}

static void on_log(ags_agent *a, int level, const char *message, void *ud)
{
	pyags_queue_log(ud, level, message);
}

static int agent_init(PyObject *op, PyObject *args, PyObject *kw)
{
	AgentObject *self = (AgentObject *)op;
	static char *kwlist[] = {"endpoint",   "token",
	                         "agent_id",   "tenant_id",
	                         "data_dir",   "cert",
	                         "key",        "ca",
	                         "hub_id",     "timeout_ms",
	                         "batch_size", "compression",
	                         "log_level",  "max_queued_events",
	                         NULL};
	ags_agent_config c;
	ags_agent_config_init(&c);
	unsigned int timeout_ms = c.timeout_ms, batch_size = c.batch_size;
	int compression = c.compression, log_level = AGS_LOG_INFO;
	Py_ssize_t max_events = PYAGS_QUEUE_MAX_EVENTS;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "zz|zzzzzzzIIpin", kwlist, &c.endpoint, &c.token,
	                                 &c.agent_id, &c.tenant_id, &c.data_dir, &c.cert, &c.key,
	                                 &c.ca, &c.hub_id, &timeout_ms, &batch_size, &compression,
	                                 &log_level, &max_events))
		return -1;
	if (max_events < 1 || max_events > PYAGS_QUEUE_MAX_EVENTS) {
		pyags_raisef(AGS_ERR_INVALID, PYAGS_CTX_ANY, "max_queued_events",
		             "must be from 1 to %d, got %zd", PYAGS_QUEUE_MAX_EVENTS, max_events);
		return -1;
	}
	if (self->inited) {
		PyErr_SetString(PyExc_RuntimeError, "_Agent is already initialised");
		return -1;
	}
	c.timeout_ms = timeout_ms;
	c.batch_size = batch_size;
	c.compression = compression;
	self->q = pyags_queue_new((size_t)max_events, PYAGS_QUEUE_MAX_BYTES);
	if (!self->q) {
		PyErr_NoMemory();
		return -1;
	}
	atomic_store(&self->q->log_level, log_level);
	c.on_event = on_event;
	c.on_log = on_log;
	c.user_data = self->q;
	ags_error err;
	ags_error_clear(&err);
	int rc;
	Py_BEGIN_ALLOW_THREADS;
	rc = ags_agent_new(&c, &self->agent, &err);
	Py_END_ALLOW_THREADS;
	if (rc < 0) {
		pyags_queue_del(self->q);
		self->q = NULL;
		pyags_raise(&err, rc, rc == AGS_ERR_CONFIG ? PYAGS_CTX_CONFIG : PYAGS_CTX_ANY, -1);
		return -1;
	}
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	rc = pthread_rwlock_init(&self->life, &ra);
	pthread_rwlockattr_destroy(&ra);
	if (rc != 0) {
		Py_BEGIN_ALLOW_THREADS;
		ags_agent_del(self->agent);
		Py_END_ALLOW_THREADS;
		self->agent = NULL;
		pyags_queue_del(self->q);
		self->q = NULL;
		PyErr_NoMemory();
		return -1;
	}
	self->max_pattern_bytes = AGS_PATTERN_MAX_BYTES_DEFAULT;
	self->inited = 1;
	return 0;
}

static void agent_close_now(AgentObject *self)
{
	ags_agent *a;
	Py_BEGIN_ALLOW_THREADS;
	pthread_rwlock_wrlock(&self->life);
	a = self->agent;
	self->agent = NULL;
	ags_agent_del(a);
	pthread_rwlock_unlock(&self->life);
	Py_END_ALLOW_THREADS;
}

static void agent_dealloc(PyObject *op)
{
	AgentObject *self = (AgentObject *)op;
	PyTypeObject *tp = Py_TYPE(op);
	if (self->inited) {
		agent_close_now(self);
		pthread_rwlock_destroy(&self->life);
	}
	pyags_queue_del(self->q);
	freefunc tp_free = (freefunc)PyType_GetSlot(tp, Py_tp_free);
	tp_free(op);
	Py_DECREF(tp);
}

/* Runs the statements with the GIL released and the agent held; AGS_ERR_STATE once closed. */
#define WITH_AGENT(self, rc, err, ...)                                                             \
	do {                                                                                       \
		Py_BEGIN_ALLOW_THREADS;                                                            \
		pthread_rwlock_rdlock(&(self)->life);                                              \
		if (!(self)->agent) {                                                              \
			rc = AGS_ERR_STATE;                                                        \
			snprintf((err).message, sizeof((err).message),                             \
			         "the FederationHub is closed");                                   \
		} else {                                                                           \
			__VA_ARGS__;                                                               \
		}                                                                                  \
		pthread_rwlock_unlock(&(self)->life);                                              \
		Py_END_ALLOW_THREADS;                                                              \
	} while (0)

static int ready(AgentObject *self)
{
	if (!self->inited) {
		PyErr_SetString(PyExc_RuntimeError, "_Agent is not initialised");
		return 0;
	}
	return 1;
}

static PyObject *agent_close(PyObject *op, PyObject *unused)
{
	AgentObject *self = (AgentObject *)op;
	if (!ready(self))
		return NULL;
	agent_close_now(self);
	pyags_queue_set_closed(self->q, 1);
	Py_RETURN_NONE;
}

static PyObject *agent_connect(PyObject *op, PyObject *unused)
{
	AgentObject *self = (AgentObject *)op;
	if (!ready(self))
		return NULL;
	ags_error err;
	ags_error_clear(&err);
	int rc = 0;
	WITH_AGENT(self, rc, err, rc = ags_agent_connect(self->agent, &err));
	if (rc < 0)
		return pyags_raise(&err, rc, PYAGS_CTX_ANY, -1);
	Py_RETURN_NONE;
}

static PyObject *agent_sync(PyObject *op, PyObject *unused)
{
	AgentObject *self = (AgentObject *)op;
	if (!ready(self))
		return NULL;
	ags_error err;
	ags_error_clear(&err);
	ags_agent_sync_result res = {0};
	int rc = 0;
	WITH_AGENT(self, rc, err, rc = ags_agent_sync(self->agent, &res, &err));
	if (rc < 0)
		return pyags_raise(&err, rc, PYAGS_CTX_ANY, -1);
	return Py_BuildValue("{s:K,s:K,s:K,s:d}", "pulled", (unsigned long long)res.pulled,
	                     "pushed", (unsigned long long)res.pushed, "conflicts",
	                     (unsigned long long)res.conflicts, "durationMs", res.duration_ms);
}

static PyObject *agent_disconnect(PyObject *op, PyObject *unused)
{
	AgentObject *self = (AgentObject *)op;
	if (!ready(self))
		return NULL;
	ags_error err;
	ags_error_clear(&err);
	int rc = 0;
	WITH_AGENT(self, rc, err, rc = ags_agent_disconnect(self->agent));
	if (rc < 0 && rc != AGS_ERR_STATE)
		return pyags_raise(&err, rc, PYAGS_CTX_ANY, -1);
	Py_RETURN_NONE;
}

static PyObject *agent_is_connected(PyObject *op, PyObject *unused)
{
	AgentObject *self = (AgentObject *)op;
	if (!ready(self))
		return NULL;
	ags_error err;
	ags_error_clear(&err);
	int rc = 0, connected = 0;
	WITH_AGENT(self, rc, err, connected = ags_agent_is_connected(self->agent));
	return PyBool_FromLong(rc == 0 && connected);
}

static PyObject *agent_get_sync_stats(PyObject *op, PyObject *unused)
{
	AgentObject *self = (AgentObject *)op;
	if (!ready(self))
		return NULL;
	ags_error err;
	ags_error_clear(&err);
	ags_agent_sync_stats st = {0};
	int rc = 0;
	WITH_AGENT(self, rc, err, rc = ags_agent_get_sync_stats(self->agent, &st));
	if (rc < 0)
		return pyags_raise(&err, rc, PYAGS_CTX_ANY, -1);
	const char *vc = st.vector_clock_json ? st.vector_clock_json : "{}";
	PyObject *clock = pyags_from_json(vc, strlen(vc));
	ags_agent_sync_stats_free(&st);
	if (!clock)
		return NULL;
	return Py_BuildValue("{s:L,s:N,s:O,s:O}", "lastSyncTime", (long long)st.last_sync_time_ms,
	                     "vectorClock", clock, "resumed", st.resumed ? Py_True : Py_False,
	                     "earlyData", st.early_data ? Py_True : Py_False);
}

static PyObject *agent_put(PyObject *op, PyObject *pobj)
{
	AgentObject *self = (AgentObject *)op;
	if (!ready(self))
		return NULL;
	char *json = NULL;
	size_t len = 0;
	ags_pattern *p = NULL;
	if (pyags_pattern_text(pobj, -1, &json, &len) < 0)
		return NULL;
	ags_pattern_opts po = {.max_bytes = self->max_pattern_bytes};
	char *texts[1] = {json};
	if (pyags_parse_texts(texts, &len, 1, (size_t)-1, &po, &p) < 0)
		return NULL;
	ags_error err;
	ags_error_clear(&err);
	ags_apply_result res = {0};
	int rc = 0;
	WITH_AGENT(self, rc, err, rc = ags_agent_put(self->agent, p, &res, &err));
	ags_pattern_del(p);
	if (rc < 0)
		return pyags_raise(&err, rc, PYAGS_CTX_PATTERN, -1);
	return pyags_apply_result(&res);
}

static PyObject *agent_delete(PyObject *op, PyObject *args)
{
	AgentObject *self = (AgentObject *)op;
	const char *id;
	if (!ready(self) || !PyArg_ParseTuple(args, "s", &id))
		return NULL;
	ags_error err;
	ags_error_clear(&err);
	ags_apply_result res = {0};
	int rc = 0;
	WITH_AGENT(self, rc, err, rc = ags_agent_delete(self->agent, id, &res, &err));
	if (rc < 0)
		return pyags_raise(&err, rc, PYAGS_CTX_ANY, -1);
	return pyags_apply_result(&res);
}

static PyObject *agent_get(PyObject *op, PyObject *args)
{
	AgentObject *self = (AgentObject *)op;
	const char *id;
	if (!ready(self) || !PyArg_ParseTuple(args, "s", &id))
		return NULL;
	ags_error err;
	ags_error_clear(&err);
	ags_pattern *p = NULL;
	int rc = 0;
	WITH_AGENT(self, rc, err, rc = ags_agent_get(self->agent, id, &p));
	if (rc == AGS_ERR_NOT_FOUND)
		Py_RETURN_NONE;
	if (rc < 0)
		return pyags_raise(&err, rc, PYAGS_CTX_ANY, -1);
	PyObject *d = pyags_pattern_dict(p);
	ags_pattern_del(p);
	return d;
}

static int query_agent(void *obj, const ags_query *q, ags_pattern_cb cb, void *ud)
{
	return ags_agent_query(obj, q, cb, ud);
}

static PyObject *agent_query(PyObject *op, PyObject *args, PyObject *kw)
{
	AgentObject *self = (AgentObject *)op;
	ags_query q;
	if (!ready(self) || pyags_parse_query(args, kw, &q) < 0)
		return NULL;
	int open;
	Py_BEGIN_ALLOW_THREADS;
	pthread_rwlock_rdlock(&self->life);
	open = self->agent != NULL;
	if (!open)
		pthread_rwlock_unlock(&self->life);
	Py_END_ALLOW_THREADS;
	if (!open)
		return pyags_raisef(AGS_ERR_STATE, PYAGS_CTX_ANY, NULL,
		                    "the FederationHub is closed");
	PyObject *list = pyags_query_list(query_agent, self->agent, &q);
	Py_BEGIN_ALLOW_THREADS;
	pthread_rwlock_unlock(&self->life);
	Py_END_ALLOW_THREADS;
	return list;
}

static PyObject *agent_store_state(PyObject *op, PyObject *unused)
{
	AgentObject *self = (AgentObject *)op;
	if (!ready(self))
		return NULL;
	ags_error err;
	ags_error_clear(&err);
	uint64_t patterns = 0, seq = 0;
	char digest[65] = "";
	int rc = 0;
	WITH_AGENT(self, rc, err, rc = ags_agent_store_state(self->agent, &patterns, &seq, digest));
	if (rc < 0)
		return pyags_raise(&err, rc, PYAGS_CTX_ANY, -1);
	return Py_BuildValue("{s:K,s:K,s:s}", "patterns", (unsigned long long)patterns, "seq",
	                     (unsigned long long)seq, "digest", digest);
}

static PyObject *agent_next_events(PyObject *op, PyObject *args)
{
	AgentObject *self = (AgentObject *)op;
	Py_ssize_t max = 256;
	double timeout = -1;
	if (!ready(self) || !PyArg_ParseTuple(args, "|nd", &max, &timeout))
		return NULL;
	return pyags_queue_take(self->q, max, timeout);
}

static PyObject *agent_set_event_mask(PyObject *op, PyObject *arg)
{
	AgentObject *self = (AgentObject *)op;
	unsigned long m = PyLong_AsUnsignedLongMask(arg);
	if (!ready(self) || PyErr_Occurred())
		return NULL;
	atomic_store(&self->q->mask, (unsigned)m);
	Py_RETURN_NONE;
}

static PyObject *agent_get_agent_id(PyObject *op, void *closure)
{
	AgentObject *self = (AgentObject *)op;
	if (!ready(self))
		return NULL;
	PyObject *r = NULL;
	char id[300] = "";
	int open;
	Py_BEGIN_ALLOW_THREADS;
	pthread_rwlock_rdlock(&self->life);
	open = self->agent != NULL;
	if (open)
		snprintf(id, sizeof(id), "%s", ags_agent_id(self->agent));
	pthread_rwlock_unlock(&self->life);
	Py_END_ALLOW_THREADS;
	if (!open)
		Py_RETURN_NONE;
	r = PyUnicode_DecodeUTF8(id, (Py_ssize_t)strlen(id), "replace");
	return r;
}

static PyObject *agent_get_closed(PyObject *op, void *closure)
{
	AgentObject *self = (AgentObject *)op;
	return PyBool_FromLong(self->agent == NULL);
}

static PyMethodDef agent_methods[] = {
    {"connect", agent_connect, METH_NOARGS, NULL},
    {"sync", agent_sync, METH_NOARGS, NULL},
    {"disconnect", agent_disconnect, METH_NOARGS, NULL},
    {"is_connected", agent_is_connected, METH_NOARGS, NULL},
    {"get_sync_stats", agent_get_sync_stats, METH_NOARGS, NULL},
    {"put", agent_put, METH_O, NULL},
    {"delete", agent_delete, METH_VARARGS, NULL},
    {"get", agent_get, METH_VARARGS, NULL},
    {"query", (PyCFunction)(void (*)(void))agent_query, METH_VARARGS | METH_KEYWORDS, NULL},
    {"store_state", agent_store_state, METH_NOARGS, NULL},
    {"close", agent_close, METH_NOARGS, NULL},
    {"next_events", agent_next_events, METH_VARARGS, NULL},
    {"set_event_mask", agent_set_event_mask, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef agent_getset[] = {
    {"agent_id", agent_get_agent_id, NULL, NULL, NULL},
    {"closed", agent_get_closed, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot agent_slots[] = {
    {Py_tp_doc, "An embedded agentsync hub agent (use agentsync.FederationHub)."},
    {Py_tp_init, agent_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, agent_dealloc},
    {Py_tp_methods, agent_methods},
    {Py_tp_getset, agent_getset},
    {0, NULL},
};

static PyType_Spec agent_spec = {
    "agentsync._agentsync._Agent", sizeof(AgentObject), 0, Py_TPFLAGS_DEFAULT, agent_slots,
};

int pyags_agent_add_type(PyObject *module)
{
	PyObject *t = PyType_FromSpec(&agent_spec);
	if (!t)
		return -1;
	int rc = PyModule_AddObjectRef(module, "_Agent", t);
	Py_DECREF(t);
	return rc;
}
