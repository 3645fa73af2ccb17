/* SPDX-License-Identifier: MIT
 *
 * objinfo.c -- kinds, sizes and referents of single objects; see
 * objinfo.h.  The size rules mirror each type's C __sizeof__; the ones that
 * need private layouts are in cpython.c.
 */
#include "pyinc.h"

#include <errno.h>
#include <string.h>

#include "addrset.h"
#include "cpython.h"
#include "hidden.h"
#include "ml-common.h"
#include "numpy.h"
#include "objinfo.h"

/* ------------------------------------------------------------------ */
/* Kinds.                                                              */

/* Direct-mapped cache of type -> info.  Protected by the GIL; reset at
 * every public entry point. */
#define KIND_CACHE 1024
static struct ml_typeinfo kind_cache[KIND_CACHE];

void
ml__kind_reset(void)
{
    memset(kind_cache, 0, sizeof(kind_cache));
    ml__numpy_reset();
    ml__hidden_reset();
}

/* Types defined in extension modules, known by name because their
 * structs are private; the sizes read their fields (see below). */
static enum ml_kind
named_kind(PyTypeObject *tp)
{
    for (; tp != NULL; tp = tp->tp_base) {
        if (strcmp(tp->tp_name, "collections.deque") == 0)
            return ML_K_DEQUE;
        if (strcmp(tp->tp_name, "array.array") == 0)
            return ML_K_ARRAY;
        if (strcmp(tp->tp_name, "collections.OrderedDict") == 0)
            return ML_K_ODICT;
        if (strcmp(tp->tp_name, "numpy.ndarray") == 0)
            return ML_K_NDARRAY;
    }
    return ML_K_OTHER;
}

static enum ml_kind
compute_kind(PyTypeObject *tp)
{
    unsigned long f = tp->tp_flags;

    if (tp == &PyBool_Type)
        return ML_K_BOOL;
    if (f & Py_TPFLAGS_LONG_SUBCLASS)
        return ML_K_INT;
    if (f & Py_TPFLAGS_UNICODE_SUBCLASS)
        return ML_K_STR;
    if (f & Py_TPFLAGS_BYTES_SUBCLASS)
        return ML_K_BYTES;
    if (f & Py_TPFLAGS_TUPLE_SUBCLASS)
        return ML_K_TUPLE;
    if (f & Py_TPFLAGS_LIST_SUBCLASS)
        return ML_K_LIST;
    if (f & Py_TPFLAGS_DICT_SUBCLASS)
        return named_kind(tp) == ML_K_ODICT ? ML_K_ODICT : ML_K_DICT;
#if PY_VERSION_HEX >= 0x030F0000
    /* 3.15's frozendict: a dict's layout, not a dict subclass. */
    if (PyType_IsSubtype(tp, &PyFrozenDict_Type))
        return ML_K_DICT;
#endif
    if (f & Py_TPFLAGS_TYPE_SUBCLASS)
        return ML_K_TYPE;
    if (tp == Py_TYPE(Py_None))
        return ML_K_NONE;
    if (PyType_IsSubtype(tp, &PyFloat_Type))
        return ML_K_FLOAT;
    if (PyType_IsSubtype(tp, &PyByteArray_Type))
        return ML_K_BYTEARRAY;
    if (PyType_IsSubtype(tp, &PySet_Type)
            || PyType_IsSubtype(tp, &PyFrozenSet_Type))
        return ML_K_SET;
    if (tp == &PyCode_Type)
        return ML_K_CODE;
    if (PyType_IsSubtype(tp, &PyModule_Type))
        return ML_K_MODULE;
    if (tp == &PyFrame_Type)
        return ML_K_FRAME;
    if (tp == &PyGen_Type || tp == &PyCoro_Type || tp == &PyAsyncGen_Type)
        return ML_K_GEN;
    if (tp == &PyFunction_Type)
        return ML_K_FUNCTION;
    if (PyType_IsSubtype(tp, &PyCFunction_Type))
        return ML_K_CFUNCTION;
    return named_kind(tp);
}

/* Types whose __sizeof__ the size rules below reproduce. */
static int
sized_here(PyTypeObject *t)
{
    return t == &PyBaseObject_Type || t == &PyLong_Type
        || t == &PyUnicode_Type || t == &PyByteArray_Type
        || t == &PyList_Type || t == &PyDict_Type || t == &PySet_Type
        || t == &PyFrozenSet_Type || t == &PyType_Type
        || t == &PyCode_Type || t == &PyFrame_Type || t == &PyGen_Type
        || t == &PyCoro_Type || t == &PyAsyncGen_Type
        || strcmp(t->tp_name, "collections.deque") == 0
        || strcmp(t->tp_name, "array.array") == 0
        || strcmp(t->tp_name, "collections.OrderedDict") == 0;
}

/* The nearest C __sizeof__ in tp's base chain, if it is not one that the
 * size rules reproduce.  A class statement's __sizeof__ is Python code and
 * lives in the type's dict, never in tp_methods: it is not found here. */
static PyCFunction
find_csizeof(PyTypeObject *tp)
{
    for (PyTypeObject *t = tp; t != NULL; t = t->tp_base) {
        if (sized_here(t))
            return NULL;
        for (PyMethodDef *m = t->tp_methods; m != NULL && m->ml_name != NULL; m++) {
            if (strcmp(m->ml_name, "__sizeof__") != 0)
                continue;
            if ((m->ml_flags & ~METH_COEXIST) == METH_NOARGS)
                return m->ml_meth;
            return NULL;
        }
    }
    return NULL;
}

static struct ml_typeinfo *
typeinfo(PyTypeObject *tp)
{
    struct ml_typeinfo *ti = &kind_cache[((uintptr_t)tp >> 4) & (KIND_CACHE - 1)];

    if (ti->tp != tp) {
        const char *n = tp->tp_name;

        ti->tp = tp;
        ti->kind = compute_kind(tp);
        ti->csizeof = find_csizeof(tp);
        ti->hidden = ti->csizeof == NULL ? ml__hidden_rule(tp) : NULL;
        ti->name_len = strlen(n);
        ti->name_plain = 1;
        for (size_t i = 0; i < ti->name_len; i++)
            if (n[i] < 0x20 || n[i] >= 0x7f || n[i] == '"' || n[i] == '\\')
                ti->name_plain = 0;
    }
    return ti;
}

const struct ml_typeinfo *
ml__typeinfo(PyTypeObject *tp)
{
    return typeinfo(tp);
}

enum ml_kind
ml__kind(PyTypeObject *tp)
{
    return typeinfo(tp)->kind;
}

/* ------------------------------------------------------------------ */
/* Private layouts of extension types (stable from 3.9 to 3.15).       */

/* Modules/_collectionsmodule.c */
#define DEQUE_BLOCKLEN 64
struct ml_deque {
    PyObject_VAR_HEAD
    void *leftblock;
    void *rightblock;
    Py_ssize_t leftindex;
};
#define DEQUE_BLOCK_SIZE ((DEQUE_BLOCKLEN + 2) * sizeof(void *))

/* Modules/arraymodule.c */
struct ml_arraydescr {
    char typecode;
    int itemsize;
};
struct ml_array {
    PyObject_VAR_HEAD
    char *ob_item;
    Py_ssize_t allocated;
    const struct ml_arraydescr *ob_descr;
};

/* Objects/odictobject.c */
struct ml_odict {
    PyDictObject od_dict;
    void *od_first;
    void *od_last;
    void **od_fast_nodes;
    Py_ssize_t od_fast_nodes_size;
};
#define ODICT_NODE_SIZE (4 * sizeof(void *))   /* key, hash, next, prev */

/* ------------------------------------------------------------------ */
/* Sizes.                                                              */

static size_t
default_sizeof(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    size_t res = (size_t)tp->tp_basicsize;

    if (tp->tp_itemsize > 0) {
        Py_ssize_t n = Py_SIZE(op);

        res += (size_t)(n < 0 ? -n : n) * (size_t)tp->tp_itemsize;
    }
    return res;
}

/* Calls an extension type's C __sizeof__: CPython's or a C extension's
 * own code, never Python code.  Its result is the one Python object the
 * walk creates, and it is freed at once.  0 if it failed. */
static size_t
call_csizeof(PyCFunction f, PyObject *op)
{
    PyObject *r = f(op, NULL);
    Py_ssize_t n;

    if (r == NULL) {
        PyErr_Clear();
        return 0;
    }
    n = PyLong_AsSsize_t(r);
    Py_DECREF(r);
    if (n < 0) {
        PyErr_Clear();
        return 0;
    }
    return (size_t)n;
}

size_t
ml__size_of(PyObject *op, enum ml_kind kind)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyCFunction csizeof = typeinfo(tp)->csizeof;
    size_t res;

    if (csizeof != NULL && (res = call_csizeof(csizeof, op)) > 0)
        return res + ml__preheader_size(op) + ml__inline_values_size(op);

    switch (kind) {
    case ML_K_INT:
    case ML_K_BOOL:
        res = ml__long_sizeof(op);
        break;
    case ML_K_STR:
        res = ml__unicode_sizeof(op);
        break;
    case ML_K_BYTEARRAY:
        res = (size_t)tp->tp_basicsize
            + (size_t)((PyByteArrayObject *)op)->ob_alloc;
#if PY_VERSION_HEX >= 0x030F0000
        /* 3.15 keeps the buffer in a bytes object of ob_alloc bytes
         * (ob_bytes_object): its header is counted too. */
        if (((PyByteArrayObject *)op)->ob_alloc > 0)
            res += offsetof(PyBytesObject, ob_sval) + 1;
#endif
        break;
    case ML_K_LIST:
        res = (size_t)tp->tp_basicsize
            + (size_t)((PyListObject *)op)->allocated * sizeof(PyObject *);
        break;
    case ML_K_DICT:
        res = ml__dict_sizeof(op);
        break;
    case ML_K_ODICT: {
        struct ml_odict *od = (struct ml_odict *)op;

        res = ml__dict_sizeof(op)
            + (size_t)od->od_fast_nodes_size * sizeof(void *);
        if (od->od_first != NULL)
            res += ODICT_NODE_SIZE * (size_t)PyDict_GET_SIZE(op);
        break;
    }
    case ML_K_SET: {
        PySetObject *so = (PySetObject *)op;

        res = (size_t)tp->tp_basicsize;
        if (so->table != so->smalltable)
            res += (size_t)(so->mask + 1) * sizeof(setentry);
        break;
    }
    case ML_K_TYPE:
        res = ml__type_sizeof(op);
        break;
    case ML_K_CODE:
        res = ml__code_sizeof(op);
        break;
    case ML_K_FRAME:
        res = ml__frame_sizeof(op);
        break;
    case ML_K_GEN:
        res = ml__gen_sizeof(op);
        break;
    case ML_K_DEQUE: {
        struct ml_deque *d = (struct ml_deque *)op;
        size_t blocks = (size_t)(d->leftindex + Py_SIZE(op)
                                 + DEQUE_BLOCKLEN - 1) / DEQUE_BLOCKLEN;

        res = (size_t)tp->tp_basicsize + blocks * DEQUE_BLOCK_SIZE;
        break;
    }
    case ML_K_ARRAY: {
        struct ml_array *a = (struct ml_array *)op;

        res = (size_t)tp->tp_basicsize
            + (size_t)a->allocated * (size_t)a->ob_descr->itemsize;
        break;
    }
    default:
        res = default_sizeof(op);
        if (typeinfo(tp)->hidden != NULL)
            res += typeinfo(tp)->hidden(op);
        break;
    }
    return res + ml__preheader_size(op) + ml__inline_values_size(op);
}

static int
count_local(PyObject *name, PyObject *value, void *arg)
{
    (void)name;
    (void)value;
    (*(Py_ssize_t *)arg)++;
    return 0;
}

Py_ssize_t
ml__len_of(PyObject *op, enum ml_kind kind)
{
    switch (kind) {
    case ML_K_STR:
        return PyUnicode_IS_READY(op) ? PyUnicode_GET_LENGTH(op) : -1;
    case ML_K_BYTES:
    case ML_K_BYTEARRAY:
    case ML_K_TUPLE:
    case ML_K_LIST:
    case ML_K_DEQUE:
    case ML_K_ARRAY:
        return Py_SIZE(op);
    case ML_K_DICT:
    case ML_K_ODICT:
        return PyDict_GET_SIZE(op);
    case ML_K_SET:
        return PySet_GET_SIZE(op);
    case ML_K_NDARRAY:
        return ml__ndarray_len(op);
    case ML_K_GEN: {
        /* the (name, value) pairs that start its refs */
        struct ml_frame fr;
        Py_ssize_t n = 0;

        if (!ml__gen_frame(op, &fr))
            return -1;
        ml__frame_locals(&fr, count_local, &n);
        return n;
    }
    default:
        return -1;
    }
}

/* ------------------------------------------------------------------ */
/* Referents.                                                          */

/* Scratch set for dedup of dict-subclass referents.  Protected by the
 * GIL; kept between calls so its blocks are reused. */
static struct ml_addrset scratch;

void
ml__refs_release(void)
{
    ml_addrset_free(&scratch);
}

struct filter {
    visitproc visit;
    void *arg;
    const struct ml_inline_values *iv;  /* skip these values, or NULL */
    int use_scratch;                    /* skip members of scratch */
    const struct ml_frame *fr;          /* skip these locals, or NULL */
};

struct local_find {
    PyObject *ref;
};

static int
local_is(PyObject *name, PyObject *value, void *arg)
{
    (void)name;
    return value == ((struct local_find *)arg)->ref;
}

static int
filter_visit(PyObject *ref, void *arg)
{
    struct filter *f = arg;

    if (f->use_scratch && ml_addrset_has(&scratch, (uintptr_t)ref))
        return 0;
    if (f->iv != NULL) {
        for (Py_ssize_t i = 0; i < f->iv->n; i++)
            if (f->iv->values[i] == ref)
                return 0;
    }
    if (f->fr != NULL) {
        struct local_find lf = { ref };

        if (ml__frame_locals(f->fr, local_is, &lf) != 0)
            return 0;
    }
    return f->visit(ref, f->arg);
}

static int
visit_dict(PyObject *op, enum ml_kind kind, visitproc visit, void *arg,
           int dedup)
{
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    int rc;

    while (PyDict_Next(op, &pos, &k, &v)) {
        if ((rc = visit(k, arg)) != 0 || (rc = visit(v, arg)) != 0)
            return rc;
    }
    if (Py_IS_TYPE(op, &PyDict_Type) || Py_TYPE(op)->tp_traverse == NULL)
        return 0;
#if PY_VERSION_HEX >= 0x030F0000
    if (Py_IS_TYPE(op, &PyFrozenDict_Type))
        return 0;
#endif

    /* A subclass holds more than its items (its type, a default_factory,
     * an instance dict...): add what its traverse gives, but not the items
     * a second time. */
    if (!dedup)
        return Py_TYPE(op)->tp_traverse(op, visit, arg);
    {
        struct filter f = { visit, arg, NULL, 1, NULL };

        pos = 0;
        while (PyDict_Next(op, &pos, &k, &v)) {
            if (ml_addrset_add(&scratch, (uintptr_t)k) < 0
                    || ml_addrset_add(&scratch, (uintptr_t)v) < 0) {
                rc = -ENOMEM;
                goto out_clear;
            }
        }
        rc = Py_TYPE(op)->tp_traverse(op, filter_visit, &f);
out_clear:
        pos = 0;
        while (PyDict_Next(op, &pos, &k, &v)) {
            ml_addrset_del(&scratch, (uintptr_t)k);
            ml_addrset_del(&scratch, (uintptr_t)v);
        }
        (void)kind;
        return rc;
    }
}

static int
visit_static_type(PyTypeObject *tp, visitproc visit, void *arg)
{
    /* Never tp_traverse a static type: type_traverse() aborts the process
     * for non-heap types ("type_traverse() called on non-heap type"). */
    Py_VISIT(ml__static_type_dict(tp));
    Py_VISIT(tp->tp_bases);
    Py_VISIT(tp->tp_mro);
    return 0;
}

struct gen_pairs {
    visitproc visit;
    void *arg;
};

static int
visit_pair(PyObject *name, PyObject *value, void *arg)
{
    struct gen_pairs *gp = arg;
    int rc = gp->visit(name, gp->arg);

    return rc != 0 ? rc : gp->visit(value, gp->arg);
}

int
ml__visit_refs(PyObject *op, enum ml_kind kind, visitproc visit, void *arg,
               int dedup)
{
    PyTypeObject *tp = Py_TYPE(op);
    struct ml_inline_values iv;
    int rc;

    switch (kind) {
    case ML_K_DICT:
    case ML_K_ODICT:
        return visit_dict(op, kind, visit, arg, dedup);
    case ML_K_CODE:
        return ml__code_visit(op, visit, arg);
    case ML_K_TUPLE:
        /* tupletraverse() goes backwards; the dump lists items in order,
         * so that refs[i] is t[i]. */
        if (Py_IS_TYPE(op, &PyTuple_Type)) {
            for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(op); i++)
                Py_VISIT(PyTuple_GET_ITEM(op, i));
            return 0;
        }
        break;
    case ML_K_LIST:
        /* list_traverse() goes backwards too: refs[i] is l[i], so that a
         * path can say [17] (common/paths.c).  The GIL is held and no
         * code runs: the list cannot change under the loop. */
        if (Py_IS_TYPE(op, &PyList_Type)) {
            for (Py_ssize_t i = 0; i < PyList_GET_SIZE(op); i++)
                Py_VISIT(PyList_GET_ITEM(op, i));
            return 0;
        }
        break;
    case ML_K_TYPE:
        if (!(((PyTypeObject *)op)->tp_flags & Py_TPFLAGS_HEAPTYPE))
            return visit_static_type((PyTypeObject *)op, visit, arg);
        break;
    case ML_K_GEN: {
        /* A generator's (or coroutine's) locals by name, as a thread's
         * frame lists them, then what gen_traverse visits but those. */
        struct ml_frame fr;
        struct gen_pairs gp = { visit, arg };
        struct filter f = { visit, arg, NULL, 0, &fr };

        if (!ml__gen_frame(op, &fr))
            break;
        if ((rc = ml__frame_locals(&fr, visit_pair, &gp)) != 0)
            return rc;
        if (tp->tp_traverse != NULL)
            return tp->tp_traverse(op, dedup ? filter_visit : visit,
                                   dedup ? (void *)&f : arg);
        return 0;
    }
    case ML_K_NDARRAY:
        /* No tp_traverse on ndarray itself; a Python subclass's traverse
         * (its __dict__, its type) follows below. */
        if ((rc = ml__ndarray_visit(op, visit, arg)) != 0)
            return rc;
        break;
    default:
        break;
    }

    switch (ml__inline_values(op, &iv)) {
    case 2:
        /* 3.13: the dict holds the attributes; list it, as other versions
         * do, then what tp_traverse gives (which includes the values). */
        if ((rc = visit(iv.dict, arg)) != 0)
            return rc;
        break;
    case 1: {
        struct filter f = { visit, arg, &iv, 0, NULL };

        for (Py_ssize_t i = 0; i < iv.n; i++) {
            PyObject *name = ml__inline_name(&iv, i);

            if (iv.values[i] == NULL)
                continue;
            if ((rc = visit(name, arg)) != 0
                    || (rc = visit(iv.values[i], arg)) != 0)
                return rc;
        }
        if (tp->tp_traverse != NULL)
            return tp->tp_traverse(op, dedup ? filter_visit : visit,
                                   dedup ? (void *)&f : arg);
        return 0;
    }
    default:
        break;
    }

    if (tp->tp_traverse != NULL && (rc = tp->tp_traverse(op, visit, arg)) != 0)
        return rc;

    if (kind == ML_K_TYPE) {
        /* type_traverse() leaves out what cannot form cycles. */
        PyHeapTypeObject *ht = (PyHeapTypeObject *)op;

        Py_VISIT(ht->ht_name);
        Py_VISIT(ht->ht_qualname);
        Py_VISIT(ht->ht_slots);
    }
    return 0;
}
