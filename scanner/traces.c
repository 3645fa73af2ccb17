/* SPDX-License-Identifier: MIT
 *
 * traces.c -- birth sites from tracemalloc (traces.h).
 *
 * Why not read tracemalloc's tables directly during the walk: 3.9-3.11
 * keep them in static variables of Modules/_tracemalloc.c, out of reach,
 * and the one exported per-pointer lookup (_PyTraceMalloc_GetTraceback)
 * builds a tuple, which the walk may not do (it would allocate per object
 * and add to the collector's lists being walked).  So the lookup happens
 * between the collecting pass and the real one, where creating objects is
 * allowed, through _PyTraceMalloc_GetTraceback (exported by 3.9-3.15;
 * declared in a public header until 3.12, in an internal one after) at
 * the object's allocation start.  Not through
 * _tracemalloc._get_object_traceback: 3.11's subtracts the GC header
 * only, so it answers None for every instance of a Python class (their
 * managed dict pointers sit before the GC header).  The tuples are
 * interned here by value: one id per distinct traceback.
 */
#include "pyinc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ml-common.h"
#include "traces.h"

/* Characters of a file or function name kept in a table line. */
#define ML_TRACE_NAME_MAX 1000

struct ml_traces *ml__traces_ready;

PyAPI_FUNC(PyObject *) _PyTraceMalloc_GetTraceback(unsigned int domain,
                                                   uintptr_t ptr);

/* Where op's memory block starts: CPython's _PyType_PreHeaderSize, per
 * version.  The GC header is two words on every supported version
 * (cpython.h); 3.11 puts the managed dict's two words before it, 3.12+
 * the managed dict's and weakref's (Py_TPFLAGS_PREHEADER). */
static uintptr_t
alloc_start(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    uintptr_t pre = 0;

    if (PyType_HasFeature(tp, Py_TPFLAGS_HAVE_GC))
        pre += 2 * sizeof(void *);
#if PY_VERSION_HEX >= 0x030C0000
    if (PyType_HasFeature(tp, Py_TPFLAGS_PREHEADER))
        pre += 2 * sizeof(PyObject *);
#elif PY_VERSION_HEX >= 0x030B0000
    if (PyType_HasFeature(tp, Py_TPFLAGS_MANAGED_DICT))
        pre += 2 * sizeof(PyObject *);
#endif
    return (uintptr_t)op - pre;
}

int
ml__traces_note(struct ml_traces *t, PyObject *op)
{
    if (t->nobjs == t->capobjs) {
        size_t ncap = t->capobjs ? t->capobjs * 2 : 4096;
        uintptr_t *n = realloc(t->objs, ncap * sizeof(*n));

        if (n == NULL)
            return -ENOMEM;
        t->objs = n;
        t->capobjs = ncap;
    }
    t->objs[t->nobjs++] = (uintptr_t)op;
    return 0;
}

static void
insert(struct ml_traces *t, uintptr_t op, uint32_t id)
{
    size_t i;

    for (i = (op >> 4) & t->mask;
         t->keys[i] != 0 && t->keys[i] != (uint64_t)op + 1;
         i = (i + 1) & t->mask)
        ;
    t->keys[i] = (uint64_t)op + 1;
    t->vals[i] = id;
}

/* 1 if tracemalloc is tracing, 0 if not, -1 with an exception set. */
static int
is_tracing(PyObject *mod)
{
    PyObject *r = PyObject_CallMethod(mod, "is_tracing", NULL);
    int on;

    if (r == NULL)
        return -1;
    on = PyObject_IsTrue(r);
    Py_DECREF(r);
    return on;
}

/* The resolver's answer must be a list of one list per traceback, each
 * with one [file (str), function (str or None)] per frame: the table
 * writer trusts it. */
static int
check_functions(PyObject *tbs, PyObject *fns)
{
    if (!PyList_Check(fns) || PyList_GET_SIZE(fns) != PyList_GET_SIZE(tbs))
        goto bad;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(fns); k++) {
        PyObject *f = PyList_GET_ITEM(fns, k);
        PyObject *tb = PyList_GET_ITEM(tbs, k);

        if (!PyList_Check(f) || PyList_GET_SIZE(f) != PyTuple_GET_SIZE(tb))
            goto bad;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(f); i++) {
            PyObject *s = PyList_GET_ITEM(f, i);

            if (!PyList_Check(s) || PyList_GET_SIZE(s) != 2
                || !PyUnicode_Check(PyList_GET_ITEM(s, 0))
                || (PyList_GET_ITEM(s, 1) != Py_None
                    && !PyUnicode_Check(PyList_GET_ITEM(s, 1))))
                goto bad;
        }
    }
    return 0;
bad:
    PyErr_SetString(PyExc_TypeError, "traces resolver must return a list "
                    "of one list ([file, function or None] per frame) per "
                    "traceback");
    return -1;
}

int
ml__traces_lookup(struct ml_traces *t, PyObject *resolver)
{
    PyObject *mod = NULL, *ids = NULL, *codes = NULL;
    size_t cap = 16;
    int rc = ML_EPYTHON, on;

    if ((mod = PyImport_ImportModule("_tracemalloc")) == NULL)
        goto out;
    if ((on = is_tracing(mod)) < 0)
        goto out;
    rc = 0;
    if (!on)
        goto out;       /* no keys: the walk writes no birth sites */
    rc = ML_EPYTHON;
    if ((ids = PyDict_New()) == NULL
        || (codes = PyList_New(0)) == NULL
        || (t->tracebacks = PyList_New(0)) == NULL)
        goto out;
    while (cap < t->nobjs * 2)
        cap *= 2;
    t->keys = calloc(cap, sizeof(*t->keys));
    t->vals = malloc(cap * sizeof(*t->vals));
    if (t->keys == NULL || t->vals == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    t->mask = cap - 1;
    for (size_t k = 0; k < t->nobjs; k++) {
        PyObject *op = (PyObject *)t->objs[k], *tb, *id;
        Py_ssize_t n;

        /* code objects name the frames (meliae._births) */
        if (PyCode_Check(op) && PyList_Append(codes, op) < 0)
            goto out;
        /* domain 0: the Python allocators' */
        if ((tb = _PyTraceMalloc_GetTraceback(0, alloc_start(op))) == NULL)
            goto out;
        if (!PyTuple_Check(tb) || PyTuple_GET_SIZE(tb) == 0) {
            Py_DECREF(tb);      /* None: allocated before tracing began */
            continue;
        }
        id = PyDict_GetItemWithError(ids, tb);
        if (id != NULL) {
            n = PyLong_AsSsize_t(id);
        } else if (PyErr_Occurred()) {
            Py_DECREF(tb);
            goto out;
        } else {
            n = PyList_GET_SIZE(t->tracebacks);
            id = PyLong_FromSsize_t(n);
            if (id == NULL || PyList_Append(t->tracebacks, tb) < 0
                || PyDict_SetItem(ids, tb, id) < 0) {
                Py_XDECREF(id);
                Py_DECREF(tb);
                goto out;
            }
            Py_DECREF(id);
        }
        Py_DECREF(tb);
        insert(t, (uintptr_t)op, (uint32_t)n);
    }
    t->functions = PyObject_CallFunctionObjArgs(resolver, t->tracebacks,
                                                codes, NULL);
    if (t->functions == NULL
        || check_functions(t->tracebacks, t->functions) < 0)
        goto out;
    rc = 0;
out:
    Py_XDECREF(mod);
    Py_XDECREF(ids);
    Py_XDECREF(codes);
    return rc;
}

#define PUT_LIT(w, s) ml_jsonw_put((w), (s), sizeof(s) - 1)

static void
put_str(struct ml_jsonw *w, PyObject *s)
{
    if (!PyUnicode_Check(s) || !PyUnicode_IS_READY(s)) {
        PUT_LIT(w, "null");
        return;
    }
    ml_jsonw_str_ucs(w, PyUnicode_KIND(s), PyUnicode_DATA(s),
                     (size_t)PyUnicode_GET_LENGTH(s), ML_TRACE_NAME_MAX);
}

/* A table line stays under the daemon's line buffer (docs/protocol.md,
 * ML_PROTO_LONG_LINE, 64 KiB): frames past this many bytes of the line
 * are left out (one frame is at most two names of ML_TRACE_NAME_MAX
 * characters of up to 6 bytes, about 12 KiB). */
#define ML_TRACE_LINE_BUDGET (40u << 10)

int
ml__traces_write_table(const struct ml_traces *t, struct ml_jsonw *w)
{
    if (t->tracebacks == NULL || t->functions == NULL)
        return w->err;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(t->tracebacks); k++) {
        PyObject *tb = PyList_GET_ITEM(t->tracebacks, k);
        PyObject *fn = PyList_GET_ITEM(t->functions, k);
        uint64_t start = w->nflushed + w->len;

        PUT_LIT(w, "{\"traceback\": ");
        ml_jsonw_u64(w, (uint64_t)k);
        PUT_LIT(w, ", \"frames\": [");
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(tb); i++) {
            PyObject *fr = PyTuple_GET_ITEM(tb, i);
            PyObject *names = PyList_GET_ITEM(fn, i);
            long line = -1;

            if (w->nflushed + w->len - start > ML_TRACE_LINE_BUDGET)
                break;
            if (PyTuple_Check(fr) && PyTuple_GET_SIZE(fr) >= 2) {
                line = PyLong_AsLong(PyTuple_GET_ITEM(fr, 1));
                if (line == -1 && PyErr_Occurred())
                    PyErr_Clear();
            }
            if (i > 0)
                PUT_LIT(w, ", ");
            /* the names the resolver made safe (valid UTF-8, no NUL) */
            PUT_LIT(w, "[");
            put_str(w, PyList_GET_ITEM(names, 0));
            PUT_LIT(w, ", ");
            ml_jsonw_u64(w, line < 0 ? 0 : (uint64_t)line);
            PUT_LIT(w, ", ");
            put_str(w, PyList_GET_ITEM(names, 1));
            PUT_LIT(w, "]");
        }
        PUT_LIT(w, "]}\n");
    }
    return w->err;
}

void
ml__traces_free(struct ml_traces *t)
{
    free(t->objs);
    free(t->keys);
    free(t->vals);
    Py_XDECREF(t->tracebacks);
    Py_XDECREF(t->functions);
    memset(t, 0, sizeof(*t));
}
