/* SPDX-License-Identifier: MIT
 *
 * numpy.c -- what a numpy.ndarray holds, read without importing numpy.
 *
 * numpy's arrays are not GC objects and have no tp_traverse, so
 * gc.get_referents() of an array is empty: the base of a view and the
 * elements of an object array (a pandas column of strings, an Index,
 * the categories of a Categorical) would be unreachable in the dump.  The
 * array's own size is right already: ndarray's C __sizeof__ counts the
 * data it owns (objinfo.c calls it).
 *
 * The fields read here are the head of numpy's PyArrayObject_fields,
 * unchanged from numpy 1.7 to 2.x: data, nd, dimensions, strides, base,
 * descr, flags; and of PyArray_Descr the type number, at the same offset
 * in numpy 1 and 2.  Structured dtypes need the descriptor's elsize and
 * fields, whose offsets differ between numpy 1 and 2: the running
 * numpy's C-API version tells which (numpy_abi below).  Nothing here
 * runs Python code, allocates, or touches a reference count: it is safe
 * in the forked child of a fork snapshot.
 */
#include "pyinc.h"

#include <string.h>

#include "numpy.h"

/* numpy's type numbers (NPY_TYPES): stable since numpy 1.0. */
#define NPY_OBJECT 17
#define NPY_VOID 20

#define NPY_MAXDIMS_ANY 64      /* numpy 2's NPY_MAXDIMS; 1.x has 32 */
#define FIELDS_DEPTH 8          /* nested structured dtypes followed */

struct np_array {               /* PyArrayObject_fields, its head */
    PyObject_HEAD
    char *data;
    int nd;
    Py_ssize_t *dimensions;
    Py_ssize_t *strides;
    PyObject *base;
    PyObject *descr;
    int flags;
};

struct np_descr_head {          /* PyArray_Descr, numpy 1 and 2 alike */
    PyObject_HEAD
    PyTypeObject *typeobj;
    char kind, type, byteorder, flags;
    int type_num;
};

struct np1_descr {              /* numpy 1.x */
    struct np_descr_head h;
    int elsize;
    int alignment;
    void *subarray;
    PyObject *fields;
    PyObject *names;
};

struct np2_descr {              /* numpy 2.x: _PyArray_LegacyDescr */
    struct np_descr_head h;
    uint64_t flags;
    Py_ssize_t elsize;
    Py_ssize_t alignment;
    PyObject *metadata;
    Py_hash_t hash;
    void *reserved_null[2];
    void *subarray;
    PyObject *fields;
    PyObject *names;
};

/* The running numpy's ABI major version (1 or 2), 0 if unknown, -1 not
 * looked up yet since the last ml__numpy_reset(). */
static int abi = -1;

void
ml__numpy_reset(void)
{
    abi = -1;
}

/* Value of key name in dict d, scanning rather than looking up: a lookup
 * could call __eq__ of a hostile key (identity, never equality). */
static PyObject *
scan_dict(PyObject *d, const char *name)
{
    Py_ssize_t pos = 0;
    PyObject *k, *v;

    if (d == NULL || !PyDict_Check(d))
        return NULL;
    while (PyDict_Next(d, &pos, &k, &v))
        if (PyUnicode_CheckExact(k) && PyUnicode_CompareWithASCIIString(k, name) == 0)
            return v;
    return NULL;
}

/* numpy's C-API table (the _ARRAY_API capsule of its multiarray module,
 * already imported: numpy made the array) starts with
 * PyArray_GetNDArrayCVersion, which returns NPY_ABI_VERSION:
 * 0x01000009 for numpy 1.x, 0x02000000 for 2.x.  A C function of numpy's:
 * no Python code runs. */
static int
numpy_abi(void)
{
    static const char *const mods[] = {
        "numpy._core._multiarray_umath",        /* numpy 2 */
        "numpy.core._multiarray_umath",         /* numpy 1 */
    };

    if (abi >= 0)
        return abi;
    abi = 0;
    for (size_t i = 0; i < sizeof(mods) / sizeof(mods[0]); i++) {
        PyObject *m = scan_dict(PyImport_GetModuleDict(), mods[i]);
        PyObject *cap;
        void **api;
        unsigned int version;

        if (m == NULL || !PyModule_Check(m))
            continue;
        cap = scan_dict(PyModule_GetDict(m), "_ARRAY_API");
        if (cap == NULL || !PyCapsule_IsValid(cap, NULL))
            continue;
        api = PyCapsule_GetPointer(cap, NULL);
        if (api == NULL || api[0] == NULL) {
            PyErr_Clear();
            continue;
        }
        version = ((unsigned int (*)(void))api[0])();
        if (version >> 24 == 1 || version >> 24 == 2)
            abi = (int)(version >> 24);
        break;
    }
    return abi;
}

/* tp or one of its bases is named name (numpy's types are static types
 * of numpy's own extension, known by their tp_name). */
static int
named_in_bases(PyTypeObject *tp, const char *name)
{
    for (; tp != NULL; tp = tp->tp_base)
        if (strcmp(tp->tp_name, name) == 0)
            return 1;
    return 0;
}

int
ml__is_ndarray_type(PyTypeObject *tp)
{
    return named_in_bases(tp, "numpy.ndarray");
}

static int
descr_type_num(PyObject *descr)
{
    return ((struct np_descr_head *)descr)->type_num;
}

/* elsize and fields of a structured descriptor; 0 if not known. */
static int
descr_fields(PyObject *descr, Py_ssize_t *elsize, PyObject **fields)
{
    switch (numpy_abi()) {
    case 1:
        *elsize = ((struct np1_descr *)descr)->elsize;
        *fields = ((struct np1_descr *)descr)->fields;
        return 1;
    case 2:
        *elsize = ((struct np2_descr *)descr)->elsize;
        *fields = ((struct np2_descr *)descr)->fields;
        return 1;
    default:
        return 0;
    }
}

/* Visits the objects in one element of dtype descr at p: the element
 * itself for object dtypes; each object field (at its offset, nested
 * structures followed to FIELDS_DEPTH) for structured ones.  A field is
 * (dtype, offset[, title]) in the descriptor's fields dict. */
static int
visit_element(PyObject *descr, const char *p, int depth, visitproc visit,
              void *arg)
{
    int tn = descr_type_num(descr);
    Py_ssize_t elsize, pos = 0;
    PyObject *fields, *k, *v;
    int rc;

    if (tn == NPY_OBJECT) {
        PyObject *o;

        memcpy(&o, p, sizeof(o));           /* may be unaligned */
        return o != NULL ? visit(o, arg) : 0;
    }
    if (tn != NPY_VOID || depth >= FIELDS_DEPTH
            || !descr_fields(descr, &elsize, &fields)
            || fields == NULL || !PyDict_Check(fields))
        return 0;
    while (PyDict_Next(fields, &pos, &k, &v)) {
        PyObject *fd, *off;
        Py_ssize_t o;

        if (!PyTuple_Check(v) || PyTuple_GET_SIZE(v) < 2)
            continue;
        fd = PyTuple_GET_ITEM(v, 0);
        off = PyTuple_GET_ITEM(v, 1);
        /* A titled field is listed twice, under its name and its title:
         * only the entry whose key is the name (the tuple's third item is
         * the title) is followed. */
        if (PyTuple_GET_SIZE(v) >= 3 && PyTuple_GET_ITEM(v, 2) == k)
            continue;
        /* numpy 2 gives each dtype a class of its own (ObjectDType,
         * VoidDType...), all subclasses of numpy.dtype. */
        if (!PyLong_CheckExact(off) || !named_in_bases(Py_TYPE(fd), "numpy.dtype"))
            continue;
        o = PyLong_AsSsize_t(off);
        if (o < 0 || o >= elsize) {
            PyErr_Clear();
            continue;
        }
        if ((rc = visit_element(fd, p + o, depth + 1, visit, arg)) != 0)
            return rc;
    }
    return 0;
}

/* 1 when elements of dtype descr may hold objects. */
static int
holds_objects(PyObject *descr)
{
    int tn = descr_type_num(descr);

    return tn == NPY_OBJECT || tn == NPY_VOID;
}

int
ml__ndarray_visit(PyObject *op, visitproc visit, void *arg)
{
    struct np_array *a = (struct np_array *)op;
    Py_ssize_t idx[NPY_MAXDIMS_ANY];
    int nd = a->nd, rc;

    /* A view keeps its base (the array, bytes or buffer owner) alive. */
    Py_VISIT(a->base);
    Py_VISIT(a->descr);
    if (a->descr == NULL || !named_in_bases(Py_TYPE(a->descr), "numpy.dtype")
            || a->data == NULL || !holds_objects(a->descr)
            || nd < 0 || nd > NPY_MAXDIMS_ANY)
        return 0;
    for (int k = 0; k < nd; k++) {
        if (a->dimensions[k] <= 0)
            return 0;                       /* no elements */
        idx[k] = 0;
    }
    /* Every element in C order, by strides (views, transposes, negative
     * strides alike), with a counter per dimension: no allocation. */
    for (;;) {
        const char *p = a->data;
        int k;

        for (k = 0; k < nd; k++)
            p += idx[k] * a->strides[k];
        if ((rc = visit_element(a->descr, p, 0, visit, arg)) != 0)
            return rc;
        for (k = nd - 1; k >= 0; k--) {
            if (++idx[k] < a->dimensions[k])
                break;
            idx[k] = 0;
        }
        if (k < 0)
            return 0;
    }
}

Py_ssize_t
ml__ndarray_len(PyObject *op)
{
    struct np_array *a = (struct np_array *)op;

    return a->nd >= 1 ? a->dimensions[0] : -1;
}
