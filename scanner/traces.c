/* SPDX-License-Identifier: MIT
 *
 * traces.c -- birth sites from tracemalloc (traces.h).
 *
 * The walk may not create objects (it would allocate per object and add
 * to the collector's lists being walked), so the lookup happens between
 * the collecting pass and the real one, in one of two ways:
 *
 * - 3.12+, the pointer path: tracemalloc's state lives in
 *   _PyRuntime.tracemalloc, and it interns its tracebacks, so the
 *   traceback pointer of an object's trace names its traceback.  Each
 *   object's trace is read in place (cpython.c, ml__tm_*: the layouts,
 *   checked at run time) under tracemalloc's lock, the pointer mapped to
 *   an id by a table allocated once per snapshot, and the frames of each
 *   distinct traceback built once: nothing is allocated per object.
 * - 3.9-3.11 (their tables are static variables of
 *   Modules/_tracemalloc.c, out of reach), or when cpython.c refuses the
 *   layout or the first objects' answers differ from CPython's own: the
 *   tuple path, through _PyTraceMalloc_GetTraceback (exported by
 *   3.9-3.15; declared in a public header until 3.12, in an internal one
 *   after), which builds a tuple of frame tuples per object; the tuples
 *   are interned here by value.
 *
 * Both ask at the object's allocation start (alloc_start), not through
 * _tracemalloc._get_object_traceback: 3.11's subtracts the GC header only,
 * so it answers None for every instance of a Python class (their managed
 * dict pointers sit before the GC header).  Both give one id per distinct
 * list of frames, in order of first appearance in the collecting pass.
 */
#include "pyinc.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cpython.h"
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

/* The int of _tracemalloc.<name>(): is_tracing (0/1) or
 * get_traceback_limit.  -1 with an exception set. */
static int
call_int(PyObject *mod, const char *name)
{
    PyObject *r = PyObject_CallMethod(mod, name, NULL);
    long v;

    if (r == NULL)
        return -1;
    v = PyLong_AsLong(r);
    Py_DECREF(r);
    if (v == -1 && PyErr_Occurred())
        return -1;
    return v < 0 || v > INT_MAX ? 0 : (int)v;
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

/* The id of traceback tuple tb, interned by value in ids (appended to
 * t->tracebacks the first time): tracemalloc keeps apart tracebacks of
 * the same frames.  -1 with an exception set. */
static Py_ssize_t
tb_id(struct ml_traces *t, PyObject *ids, PyObject *tb)
{
    PyObject *id = PyDict_GetItemWithError(ids, tb);
    Py_ssize_t n;

    if (id != NULL)
        return PyLong_AsSsize_t(id);
    if (PyErr_Occurred())
        return -1;
    n = PyList_GET_SIZE(t->tracebacks);
    id = PyLong_FromSsize_t(n);
    if (id == NULL || PyList_Append(t->tracebacks, tb) < 0
        || PyDict_SetItem(ids, tb, id) < 0) {
        Py_XDECREF(id);
        return -1;
    }
    Py_DECREF(id);
    return n;
}

/* ------------------------------------------------------------------ */
/* The tuple path (3.9-3.11, or when ml__tm_open refuses): one tuple per
 * object from _PyTraceMalloc_GetTraceback, interned by value in ids. */

static int
lookup_tuples(struct ml_traces *t, PyObject *ids)
{
    for (size_t k = 0; k < t->nobjs; k++) {
        PyObject *op = (PyObject *)t->objs[k], *tb;
        Py_ssize_t n;

        /* domain 0: the Python allocators' */
        if ((tb = _PyTraceMalloc_GetTraceback(0, alloc_start(op))) == NULL)
            return ML_EPYTHON;
        if (!PyTuple_Check(tb) || PyTuple_GET_SIZE(tb) == 0) {
            Py_DECREF(tb);      /* None: allocated before tracing began */
            continue;
        }
        n = tb_id(t, ids, tb);
        Py_DECREF(tb);
        if (n < 0)
            return ML_EPYTHON;
        insert(t, (uintptr_t)op, (uint32_t)n);
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* The pointer path (3.12+): tracemalloc interns its tracebacks, so the
 * traceback pointer of an object's trace names its traceback.  Under
 * tracemalloc's lock, each object's pointer is looked up in a table
 * pointer -> provisional id, and the frames of each new pointer are copied
 * out (plain memory: nothing may go through Python's allocators under
 * that lock); then, with the lock released, one tuple is built per
 * distinct pointer and interned by value (two pointers can hold equal
 * frames: tracemalloc also tells tracebacks apart by their total depth),
 * and the provisional ids in the address table become the final ones.
 * Ids are given in order of first appearance, as the tuple path does, so
 * both paths number a heap's tracebacks alike. */

#define ML_TM_NONE UINT32_MAX   /* a traceback without frames */

struct tm_frame {
    PyObject *file;     /* 3.12-3.14: a new reference, taken under the lock */
    size_t name;        /* 3.15: offset of the UTF-8 name in tm.names */
    unsigned int line;
};

struct tm_map {
    uintptr_t *keys;    /* traceback pointers, 0 empty */
    uint32_t *vals;     /* provisional id, or ML_TM_NONE */
    size_t mask, n;
    struct tm_frame *frames;    /* every distinct traceback's, in order */
    size_t nframes, capframes;
    size_t *first;      /* provisional id -> its first frame; one more */
    size_t nids, capids;
    char *names;        /* 3.15: the file names, NUL-terminated */
    size_t nnames, capnames;
};

static size_t
tm_slot(const struct tm_map *m, uintptr_t key)
{
    size_t i = (size_t)(((uint64_t)key * 0x9E3779B97F4A7C15u) >> 20) & m->mask;

    while (m->keys[i] != 0 && m->keys[i] != key)
        i = (i + 1) & m->mask;
    return i;
}

/* Room for a key more: the table stays at most half full. */
static int
tm_grow(struct tm_map *m)
{
    size_t cap = m->keys ? (m->mask + 1) * 2 : 1024;
    struct tm_map old = *m;

    if (m->keys != NULL && (m->n + 1) * 2 <= m->mask + 1)
        return 0;
    m->keys = calloc(cap, sizeof(*m->keys));
    m->vals = malloc(cap * sizeof(*m->vals));
    if (m->keys == NULL || m->vals == NULL) {
        free(m->keys);
        free(m->vals);
        m->keys = old.keys;
        m->vals = old.vals;
        return -ENOMEM;
    }
    m->mask = cap - 1;
    for (size_t i = 0; old.keys != NULL && i <= old.mask; i++) {
        if (old.keys[i] != 0) {
            size_t j = tm_slot(m, old.keys[i]);

            m->keys[j] = old.keys[i];
            m->vals[j] = old.vals[i];
        }
    }
    free(old.keys);
    free(old.vals);
    return 0;
}

static int
grow_array(void **p, size_t *cap, size_t need, size_t elem)
{
    size_t ncap = *cap ? *cap : 64;
    void *n;

    if (need <= *cap)
        return 0;
    while (ncap < need)
        ncap *= 2;
    if ((n = realloc(*p, ncap * elem)) == NULL)
        return -ENOMEM;
    *p = n;
    *cap = ncap;
    return 0;
}

/* Under the lock: copies tb's frames as the next provisional id.  Only
 * libc memory. */
static int
tm_copy(struct tm_map *m, const void *tb, int nframe)
{
    struct ml_tm_frame fr;

    if (grow_array((void **)&m->first, &m->capids, m->nids + 2,
                   sizeof(*m->first)) < 0
        || grow_array((void **)&m->frames, &m->capframes,
                      m->nframes + (size_t)nframe, sizeof(*m->frames)) < 0)
        return -ENOMEM;
    m->first[m->nids] = m->nframes;
    for (int i = 0; i < nframe; i++) {
        struct tm_frame *f = &m->frames[m->nframes + (size_t)i];

        ml__tm_frames(tb, i, &fr);
        f->line = fr.lineno;
        f->file = NULL;
        f->name = 0;
        if (fr.filename != NULL) {
            f->file = fr.filename;
            Py_INCREF(f->file);     /* no allocation */
        } else {
            size_t len = strlen(fr.filename_utf8) + 1;

            if (grow_array((void **)&m->names, &m->capnames,
                           m->nnames + len, 1) < 0) {
                /* the references taken so far are given back by
                 * tm_free, after the lock: count these frames */
                m->nframes += (size_t)i;
                return -ENOMEM;
            }
            memcpy(m->names + m->nnames, fr.filename_utf8, len);
            f->name = m->nnames;
            m->nnames += len;
        }
    }
    m->nframes += (size_t)nframe;
    m->first[++m->nids] = m->nframes;
    return 0;
}

static void
tm_free(struct tm_map *m)
{
    for (size_t i = 0; i < m->nframes; i++)
        Py_XDECREF(m->frames[i].file);
    free(m->keys);
    free(m->vals);
    free(m->frames);
    free(m->first);
    free(m->names);
}

/* Under the lock: every object's provisional id into t's address table.
 * 0 or -ENOMEM. */
static int
tm_scan(struct ml_traces *t, struct tm_map *m)
{
    for (size_t k = 0; k < t->nobjs; k++) {
        uintptr_t op = t->objs[k];
        const void *tb = ml__tm_find(alloc_start((PyObject *)op));
        size_t i;
        uint32_t id;

        if (tb == NULL)
            continue;   /* allocated before tracing began */
        i = tm_slot(m, (uintptr_t)tb);
        if (m->keys[i] != 0) {
            id = m->vals[i];
        } else {
            int nframe = ml__tm_frames(tb, -1, NULL);

            if (nframe > 0) {
                if (tm_copy(m, tb, nframe) < 0)
                    return -ENOMEM;
                id = (uint32_t)(m->nids - 1);
            } else {
                id = ML_TM_NONE;
            }
            m->keys[i] = (uintptr_t)tb;
            m->vals[i] = id;
            m->n++;
            if (tm_grow(m) < 0)
                return -ENOMEM;
        }
        if (id != ML_TM_NONE)
            insert(t, op, id);
    }
    return 0;
}

/* The tuple of provisional id `id`, as _PyTraceMalloc_GetTraceback builds
 * it: ((filename, lineno), ...), the allocating frame first. */
static PyObject *
tm_tuple(const struct tm_map *m, size_t id)
{
    size_t a = m->first[id], b = m->first[id + 1];
    PyObject *tb = PyTuple_New((Py_ssize_t)(b - a));

    if (tb == NULL)
        return NULL;
    for (size_t i = a; i < b; i++) {
        const struct tm_frame *f = &m->frames[i];
        PyObject *file, *fr;

        if (f->file != NULL) {
            file = Py_NewRef(f->file);
        } else {
            const char *s = m->names + f->name;

            /* 3.15 keeps file names as UTF-8 encoded with surrogatepass */
            file = PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s),
                                        "surrogatepass");
        }
        if (file == NULL
            || (fr = Py_BuildValue("(NI)", file, f->line)) == NULL) {
            Py_DECREF(tb);
            return NULL;
        }
        PyTuple_SET_ITEM(tb, (Py_ssize_t)(i - a), fr);
    }
    return tb;
}

int ml__traces_tuple_only;
int ml__traces_fake_mismatch;

/* How many objects' answers are checked against CPython's own function:
 * a layout ml__tm_open's checks cannot see (trace_t is private to
 * Python/tracemalloc.c) shows here, and the tuple path is used. */
#define ML_TM_VERIFY 16

/* 1 when the first objects (and the first ones with a traceback) get the
 * same traceback from t (pointer path) as from _PyTraceMalloc_GetTraceback,
 * 0 if not, ML_EPYTHON. */
static int
tm_verify(const struct ml_traces *t)
{
    size_t any = 0, traced = 0;

    for (size_t k = 0; k < t->nobjs; k++) {
        PyObject *op = (PyObject *)t->objs[k], *want, *got = NULL;
        int64_t id;
        int same;

        if (any >= ML_TM_VERIFY && traced >= ML_TM_VERIFY)
            break;
        id = ml__traces_find(t, op);
        if (any >= ML_TM_VERIFY && id < 0)
            continue;
        any++;
        traced += id >= 0;
        if ((want = _PyTraceMalloc_GetTraceback(0, alloc_start(op))) == NULL)
            return ML_EPYTHON;
        if (id >= 0)
            got = PyList_GET_ITEM(t->tracebacks, id);
        if (!PyTuple_Check(want) || PyTuple_GET_SIZE(want) == 0)
            same = got == NULL;
        else
            same = got != NULL
                ? PyObject_RichCompareBool(want, got, Py_EQ) : 0;
        if (ml__traces_fake_mismatch && traced > 0 && same > 0)
            same = 0;
        Py_DECREF(want);
        if (same <= 0)
            return same < 0 ? ML_EPYTHON : 0;
    }
    return 1;
}

/* 1 when done, 0 when the caller must use the tuple path (t reset),
 * -ENOMEM or ML_EPYTHON. */
static int
lookup_pointers(struct ml_traces *t, PyObject *ids, int limit)
{
    struct tm_map m;
    uint32_t *canon = NULL;
    int rc;

    memset(&m, 0, sizeof(m));
    if (!ml__tm_open(limit))
        return 0;
    if ((rc = tm_grow(&m)) < 0)
        goto out;
    ml__tm_lock();
    rc = tm_scan(t, &m);
    ml__tm_unlock();
    if (rc < 0)
        goto out;
    rc = -ENOMEM;
    if (m.nids > 0 && (canon = malloc(m.nids * sizeof(*canon))) == NULL)
        goto out;
    rc = ML_EPYTHON;
    for (size_t p = 0; p < m.nids; p++) {
        PyObject *tb = tm_tuple(&m, p);
        Py_ssize_t n;

        if (tb == NULL)
            goto out;
        n = tb_id(t, ids, tb);
        Py_DECREF(tb);
        if (n < 0)
            goto out;
        canon[p] = (uint32_t)n;
    }
    for (size_t i = 0; i <= t->mask; i++)
        if (t->keys[i] != 0)
            t->vals[i] = canon[t->vals[i]];
    if ((rc = tm_verify(t)) == 0) {
        /* not the interpreter this module was built for: start again */
        memset(t->keys, 0, (t->mask + 1) * sizeof(*t->keys));
        if (PyList_SetSlice(t->tracebacks, 0,
                            PyList_GET_SIZE(t->tracebacks), NULL) < 0)
            rc = ML_EPYTHON;
        PyDict_Clear(ids);
    }
out:
    free(canon);
    tm_free(&m);
    return rc;
}

const char *ml__traces_last_path;

int
ml__traces_lookup(struct ml_traces *t, PyObject *resolver)
{
    PyObject *mod = NULL, *ids = NULL, *codes = NULL;
    size_t cap = 16;
    int rc = ML_EPYTHON, on, limit;

    t->path = NULL;
    ml__traces_last_path = NULL;
    if ((mod = PyImport_ImportModule("_tracemalloc")) == NULL)
        goto out;
    if ((on = call_int(mod, "is_tracing")) < 0)
        goto out;
    rc = 0;
    if (!on)
        goto out;       /* no keys: the walk writes no birth sites */
    rc = ML_EPYTHON;
    if ((limit = call_int(mod, "get_traceback_limit")) < 0)
        goto out;
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
    /* code objects name the frames (meliae._births) */
    for (size_t k = 0; k < t->nobjs; k++) {
        PyObject *op = (PyObject *)t->objs[k];

        if (PyCode_Check(op) && PyList_Append(codes, op) < 0)
            goto out;
    }
    rc = ml__traces_tuple_only ? 0 : lookup_pointers(t, ids, limit);
    if (rc < 0)
        goto out;
    t->path = rc == 1 ? "pointer" : "tuple";
    ml__traces_last_path = t->path;
    if (rc == 0 && (rc = lookup_tuples(t, ids)) < 0)
        goto out;
    rc = ML_EPYTHON;
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
