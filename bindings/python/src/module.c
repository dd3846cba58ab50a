/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The module agentsync._agentsync: errors, certificates, constants. See
 * pyags.h for the whole extension.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "pyags.h"

#include "agentsync/certs.h"

/*
 * agentsync._errors._from_library(code, message, field, offset, index, ctx):
 * makes the exception object. Looked up once, when the module is imported.
 */
static PyObject *make_error;

/* Every error code by its C name, for Error.code. */
static const struct {
	int code;
	const char *name;
} error_names[] = {
#define E(x)                                                                                       \
	{                                                                                          \
		x, #x                                                                              \
	}
    E(AGS_ERR_INVALID),   E(AGS_ERR_NOMEM),    E(AGS_ERR_JSON),     E(AGS_ERR_PATTERN),
    E(AGS_ERR_TOO_LARGE), E(AGS_ERR_CHECKSUM), E(AGS_ERR_STORE),    E(AGS_ERR_IO),
    E(AGS_ERR_NOT_FOUND), E(AGS_ERR_TLS),      E(AGS_ERR_QUIC),     E(AGS_ERR_PROTO),
    E(AGS_ERR_CLOSED),    E(AGS_ERR_TIMEOUT),  E(AGS_ERR_AUTH),     E(AGS_ERR_CONFIG),
    E(AGS_ERR_STATE),     E(AGS_ERR_AGAIN),    E(AGS_ERR_COMPRESS), E(AGS_ERR_UNSUPPORTED),
    E(AGS_ERR_EXISTS),    E(AGS_ERR_INTERNAL),
#undef E
};

PyObject *pyags_raise(const ags_error *err, int rc, int ctx, Py_ssize_t index)
{
	int code = err && err->code ? err->code : rc;
	if (code == AGS_ERR_NOMEM)
		return PyErr_NoMemory();
	const char *msg = err && err->message[0] ? err->message : ags_strerror(code);
	const char *field = err && err->field[0] ? err->field : NULL;
	/* In a batch, the path starts at the pattern's place: "[3].metadata.priority". */
	char path[sizeof(err->field) + 32];
	if (index >= 0) {
		int k = snprintf(path, sizeof(path), "[%zd]%s%s", index, field ? "." : "",
		                 field ? field : "");
		field = k > 0 ? path : field;
	}
	PyObject *offset = err && err->code == AGS_ERR_JSON && err->offset != (size_t)-1
	                       ? PyLong_FromSize_t(err->offset)
	                       : Py_NewRef(Py_None);
	PyObject *idx = index >= 0 ? PyLong_FromSsize_t(index) : Py_NewRef(Py_None);
	/* Messages can quote input (file names, ids) that is not UTF-8. */
	PyObject *m = PyUnicode_DecodeUTF8(msg, (Py_ssize_t)strlen(msg), "replace");
	PyObject *f = field ? PyUnicode_DecodeUTF8(field, (Py_ssize_t)strlen(field), "replace")
	                    : Py_NewRef(Py_None);
	PyObject *exc = NULL;
	if (offset && idx && m && f)
		exc = PyObject_CallFunction(make_error, "iOOOOi", code, m, f, offset, idx, ctx);
	Py_XDECREF(offset);
	Py_XDECREF(idx);
	Py_XDECREF(m);
	Py_XDECREF(f);
	if (exc) {
		PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
		Py_DECREF(exc);
	}
	return NULL;
}

PyObject *pyags_raisef(int rc, int ctx, const char *field, const char *fmt, ...)
{
	ags_error e;
	ags_error_clear(&e);
	e.code = rc;
	if (field)
		snprintf(e.field, sizeof(e.field), "%s", field);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e.message, sizeof(e.message), fmt, ap);
	va_end(ap);
	return pyags_raise(&e, rc, ctx, -1);
}

/* init_certs(directory, node_ids, p256=False): ags_certs_init. */
static PyObject *py_init_certs(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"directory", "node_ids", "p256", NULL};
	const char *dir;
	PyObject *ids;
	int p256 = 0;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "sO|p", kwlist, &dir, &ids, &p256))
		return NULL;
	PyObject *list = PySequence_List(ids);
	if (!list)
		return NULL;
	Py_ssize_t n = PyList_Size(list);
	const char **names = PyMem_Calloc(n ? (size_t)n : 1, sizeof(*names));
	if (!names) {
		Py_DECREF(list);
		return PyErr_NoMemory();
	}
	for (Py_ssize_t i = 0; i < n; i++) {
		PyObject *s = PyList_GetItem(list, i);
		names[i] = s && PyUnicode_Check(s) ? PyUnicode_AsUTF8AndSize(s, NULL) : NULL;
		if (!names[i]) {
			PyMem_Free(names);
			Py_DECREF(list);
			if (!PyErr_Occurred())
				PyErr_Format(PyExc_TypeError, "node_ids[%zd] must be a str", i);
			return NULL;
		}
	}
	ags_error err;
	ags_error_clear(&err);
	int rc;
	Py_BEGIN_ALLOW_THREADS;
	rc = ags_certs_init(dir, names, (size_t)n, p256 ? AGS_CERTS_P256 : AGS_CERTS_ED25519, &err);
	Py_END_ALLOW_THREADS;
	PyMem_Free(names);
	Py_DECREF(list);
	if (rc < 0)
		return pyags_raise(&err, rc, PYAGS_CTX_ANY, -1);
	Py_RETURN_NONE;
}

/* cert_pin(path): ags_certs_pin, the SPKI SHA-256 pin of a PEM certificate. */
static PyObject *py_cert_pin(PyObject *self, PyObject *args)
{
	const char *path;
	if (!PyArg_ParseTuple(args, "s", &path))
		return NULL;
	char pin[65];
	ags_error err;
	ags_error_clear(&err);
	int rc;
	Py_BEGIN_ALLOW_THREADS;
	rc = ags_certs_pin(path, pin, &err);
	Py_END_ALLOW_THREADS;
	if (rc < 0)
		return pyags_raise(&err, rc, PYAGS_CTX_ANY, -1);
	return PyUnicode_FromString(pin);
}

static PyMethodDef methods[] = {
    {"init_certs", (PyCFunction)(void (*)(void))py_init_certs, METH_VARARGS | METH_KEYWORDS,
     "init_certs(directory, node_ids, p256=False): a CA and one certificate per node id."},
    {"cert_pin", py_cert_pin, METH_VARARGS, "cert_pin(path): the SPKI SHA-256 pin, hex."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT,
    "_agentsync",
    "The agentsync library, embedded (use the agentsync package, not this module).",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

/* PyModule_AddObjectRef, taking the reference (PyModule_Add is 3.13's). */
static int add_obj(PyObject *m, const char *name, PyObject *obj)
{
	int rc = obj ? PyModule_AddObjectRef(m, name, obj) : -1;
	Py_XDECREF(obj);
	return rc;
}

static int add_error_names(PyObject *m)
{
	PyObject *d = PyDict_New();
	if (!d)
		return -1;
	for (size_t i = 0; i < sizeof(error_names) / sizeof(error_names[0]); i++) {
		PyObject *k = PyLong_FromLong(error_names[i].code);
		PyObject *v = PyUnicode_FromString(error_names[i].name);
		int rc = k && v ? PyDict_SetItem(d, k, v) : -1;
		Py_XDECREF(k);
		Py_XDECREF(v);
		if (rc < 0) {
			Py_DECREF(d);
			return -1;
		}
	}
	return add_obj(m, "ERROR_NAMES", d);
}

PyMODINIT_FUNC PyInit__agentsync(void);

PyMODINIT_FUNC PyInit__agentsync(void)
{
	PyObject *m = PyModule_Create(&moduledef);
	if (!m)
		return NULL;
	PyObject *errors = PyImport_ImportModule("agentsync._errors");
	if (!errors)
		goto fail;
	make_error = PyObject_GetAttrString(errors, "_from_library");
	Py_DECREF(errors);
	if (!make_error)
		goto fail;
	if (add_error_names(m) < 0 || add_obj(m, "EVENT_TYPES", pyags_event_types()) < 0 ||
	    PyModule_AddStringConstant(m, "VERSION", AGS_VERSION_STRING) < 0 ||
	    PyModule_AddIntConstant(m, "MASK_LOG", (long)PYAGS_MASK_LOG) < 0 ||
	    PyModule_AddIntConstant(m, "QUEUE_MAX_EVENTS", PYAGS_QUEUE_MAX_EVENTS) < 0 ||
	    PyModule_AddIntConstant(m, "PATTERN_MAX_DEPTH", AGS_PATTERN_MAX_DEPTH) < 0 ||
	    pyags_node_add_type(m) < 0 || pyags_agent_add_type(m) < 0)
		goto fail;
	return m;
fail:
	Py_DECREF(m);
	return NULL;
}
