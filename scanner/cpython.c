/* SPDX-License-Identifier: MIT
 *
 * cpython.c -- the version-specific knowledge of CPython's object layouts.
 *
 * This is the only file built with Py_BUILD_CORE_MODULE, which exposes
 * CPython's internal headers.  Each function mirrors a CPython routine
 * (named in its comment) without calling it, because those routines either
 * are not exported, allocate, or run Python code.  When a new CPython
 * version changes a layout, this file and pyinc.h's version gate change
 * together; the zoo test (tests/py/test_scanner_sizes.py) compares every
 * result with sys.getsizeof on each supported version.
 */
#define Py_BUILD_CORE_MODULE 1
#include "pyinc.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wcast-align"
#include "internal/pycore_interp.h"
#include "internal/pycore_object.h"
#if PY_VERSION_HEX >= 0x030B0000
#  include "internal/pycore_dict.h"
#  include "internal/pycore_code.h"
#  include "internal/pycore_frame.h"
#endif
#if PY_VERSION_HEX >= 0x030E0000
#  include "internal/pycore_interpframe.h"
#  include "internal/pycore_genobject.h"
#endif
#if PY_VERSION_HEX >= 0x030C0000
#  include "internal/pycore_moduleobject.h"
#  include "internal/pycore_runtime.h"
#  include "internal/pycore_hashtable.h"
#  include "internal/pycore_tracemalloc.h"
#endif
#if PY_VERSION_HEX >= 0x030E0000
#  include "internal/pycore_lock.h"
#endif
#pragma GCC diagnostic pop

#include "cpython.h"

/* ------------------------------------------------------------------ */
/* Private structures of 3.9 and 3.10 that no header exposes.          */

#if PY_VERSION_HEX < 0x030B0000
/* Objects/dict-common.h */
struct ml_dictkeys {
    Py_ssize_t dk_refcnt;
    Py_ssize_t dk_size;
    void *dk_lookup;
    Py_ssize_t dk_usable;
    Py_ssize_t dk_nentries;
    char dk_indices[];
};
struct ml_dictentry {
    Py_hash_t me_hash;
    PyObject *me_key;
    PyObject *me_value;
};
#endif

#if PY_VERSION_HEX < 0x030C0000
/* Objects/moduleobject.c; pycore_moduleobject.h from 3.12 on. */
typedef struct {
    PyObject_HEAD
    PyObject *md_dict;
    struct PyModuleDef *md_def;
    void *md_state;
    PyObject *md_weaklist;
    PyObject *md_name;
} PyModuleObject;
#endif

/* ------------------------------------------------------------------ */
/* The collector's lists.                                              */

#define ML_FROM_GC(g) ((PyObject *)((PyGC_Head *)(g) + 1))

/* The next link of a list member.  3.14.0 to 3.14.4 shipped the
 * incremental collector, which keeps an object's old-space bit in bit 0 of
 * _gc_next even between collections (_PyGC_NEXT_MASK_OLD_SPACE_1); 3.14.5
 * went back to the generational one, which sets its flag bits there only
 * while it collects.  The headers of a later 3.14 do not say which one the
 * running interpreter is, and the links are at least 8-byte aligned, so
 * the low bits are always masked off.  Both collectors keep the same
 * _gc_runtime_state layout (3.14.5 kept the incremental fields as dummies,
 * and young + old[2] overlay generations[3]): walking the three lists and
 * the permanent one visits every tracked object under either. */
#define ML_GC_NEXT(g) ((PyGC_Head *)((g)->_gc_next & ~(uintptr_t)3))

int
ml__gc_foreach(ml_gc_fn fn, void *arg)
{
    struct _gc_runtime_state *gc = &PyInterpreterState_Get()->gc;
    PyGC_Head *heads[NUM_GENERATIONS + 1];
    int rc;

    for (int i = 0; i < NUM_GENERATIONS; i++)
        heads[i] = &gc->generations[i].head;
    heads[NUM_GENERATIONS] = &gc->permanent_generation.head;

    for (int i = 0; i <= NUM_GENERATIONS; i++) {
        PyGC_Head *head = heads[i];
        PyGC_Head *g = ML_GC_NEXT(head);

        while (g != head) {
            PyObject *op = ML_FROM_GC(g);

            /* fn may run a registered special-size callable (Python code),
             * so keep op alive and read the next link only afterwards. */
            Py_INCREF(op);
            rc = fn(op, arg);
            g = ML_GC_NEXT(g);
            Py_DECREF(op);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

int
ml__gc_disable(void)
{
    struct _gc_runtime_state *gc = &PyInterpreterState_Get()->gc;
    int was = gc->enabled;

    gc->enabled = 0;
    return was;
}

void
ml__gc_restore(int enabled)
{
    PyInterpreterState_Get()->gc.enabled = enabled;
}

/* ------------------------------------------------------------------ */
/* Dicts and inline values.                                            */

#if PY_VERSION_HEX >= 0x030B0000
/* dictobject.c: _PyDict_KeysSize() */
static size_t
keys_size(PyDictKeysObject *keys)
{
    size_t es = keys->dk_kind == DICT_KEYS_GENERAL
        ? sizeof(PyDictKeyEntry) : sizeof(PyDictUnicodeEntry);
    size_t usable = (size_t)((((int64_t)1 << keys->dk_log2_size) << 1) / 3);

    return sizeof(PyDictKeysObject) + ((size_t)1 << keys->dk_log2_index_bytes)
        + usable * es;
}

static Py_ssize_t
shared_usable(PyDictKeysObject *keys)
{
    return keys->dk_nentries + keys->dk_usable;
}
#endif

/* dictobject.c: _PyDict_SizeOf() */
size_t
ml__dict_sizeof(PyObject *op)
{
    PyDictObject *mp = (PyDictObject *)op;
    size_t res = (size_t)Py_TYPE(op)->tp_basicsize;

#if PY_VERSION_HEX < 0x030B0000
    struct ml_dictkeys *keys = (struct ml_dictkeys *)mp->ma_keys;
    size_t size = (size_t)keys->dk_size;
    size_t usable = (size << 1) / 3;
    size_t ixsize = size <= 0xff ? 1 : size <= 0xffff ? 2
        : size <= 0xffffffffu ? 4 : sizeof(int64_t);

    if (mp->ma_values != NULL)
        res += usable * sizeof(PyObject *);
    if (keys->dk_refcnt == 1)
        res += sizeof(struct ml_dictkeys) + ixsize * size
            + sizeof(struct ml_dictentry) * usable;
#else
    PyDictKeysObject *keys = mp->ma_keys;

    /* Counted even when the values are embedded in an instance (3.13);
     * ml__inline_values_size() then leaves them out of the instance. */
    if (mp->ma_values != NULL)
        res += (size_t)shared_usable(keys) * sizeof(PyObject *);
    if (keys->dk_refcnt == 1)
        res += keys_size(keys);
#endif
    return res;
}

int
ml__inline_values(PyObject *op, struct ml_inline_values *iv)
{
#if PY_VERSION_HEX < 0x030B0000
    (void)op;
    (void)iv;
    return 0;
#else
    PyTypeObject *tp = Py_TYPE(op);
    PyDictKeysObject *keys;
    PyDictValues *values;

    if (!(tp->tp_flags & Py_TPFLAGS_HEAPTYPE))
        return 0;
#  if PY_VERSION_HEX >= 0x030D0000
    if (!(tp->tp_flags & Py_TPFLAGS_INLINE_VALUES))
        return 0;
    values = _PyObject_InlineValues(op);
    if (!values->valid)
        return 0;           /* a dict took them over; traverse visits it */
    iv->dict = (PyObject *)_PyObject_GetManagedDict(op);
#    if PY_VERSION_HEX >= 0x030E0000
    /* 3.14's subtype_traverse visits a materialised dict instead of the
     * values it shares (gc.get_referents shows it): nothing to add. */
    if (iv->dict != NULL)
        return 0;
#    endif
#  elif PY_VERSION_HEX >= 0x030C0000
    if (!(tp->tp_flags & Py_TPFLAGS_MANAGED_DICT))
        return 0;
    {
        PyDictOrValues dorv = *_PyObject_DictOrValuesPointer(op);

        if (!_PyDictOrValues_IsValues(dorv))
            return 0;
        values = _PyDictOrValues_GetValues(dorv);
    }
#  else
    if (!(tp->tp_flags & Py_TPFLAGS_MANAGED_DICT))
        return 0;
    values = *_PyObject_ValuesPointer(op);
#  endif
    keys = ((PyHeapTypeObject *)tp)->ht_cached_keys;
    if (values == NULL || keys == NULL)
        return 0;
    iv->values = values->values;
    iv->n = keys->dk_nentries;
    iv->keys = keys;
#  if PY_VERSION_HEX >= 0x030D0000
    if (iv->dict != NULL)
        return 2;
#  else
    iv->dict = NULL;
#  endif
    return 1;
#endif
}

PyObject *
ml__inline_name(const struct ml_inline_values *iv, Py_ssize_t i)
{
#if PY_VERSION_HEX < 0x030B0000
    (void)iv;
    (void)i;
    return NULL;
#else
    PyDictKeysObject *dk = iv->keys;
    /* DK_UNICODE_ENTRIES(), spelled out: the 3.11 macro does not
     * parenthesise its argument. */
    PyDictUnicodeEntry *entries = (PyDictUnicodeEntry *)
        (dk->dk_indices + ((size_t)1 << dk->dk_log2_index_bytes));

    return entries[i].me_key;
#endif
}

size_t
ml__inline_values_size(PyObject *op)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyTypeObject *tp = Py_TYPE(op);
    PyDictKeysObject *keys = ((PyHeapTypeObject *)tp)->ht_cached_keys;
    PyDictValues *values;
    PyDictObject *dict;
    size_t cap, size;

    if (!(tp->tp_flags & Py_TPFLAGS_INLINE_VALUES) || keys == NULL)
        return 0;
    /* The values live inside the object's own allocation for its whole
     * life, even once a dict has taken them over.  The allocation is
     * _PyInlineValuesSize() of the shared keys as they were then; their
     * usable size then is the capacity recorded in the values. */
    values = _PyObject_InlineValues(op);
    /* The object was allocated before _PyObject_InitInlineValues() took
     * one slot off the keys' usable size, which it does while more than
     * one is left: then the allocation had one slot more than capacity. */
    cap = values->capacity + (keys->dk_usable > 1 ? 1 : 0);
    size = _Py_SIZE_ROUND_UP(cap, sizeof(PyObject *)) + (cap + 1) * sizeof(PyObject *);
    /* A materialised dict still using the embedded values reports their
     * slots as its own (sys.getsizeof(obj.__dict__) does): count only
     * the rest here, so that nothing is counted twice. */
    dict = _PyObject_GetManagedDict(op);
    if (dict != NULL && dict->ma_values == values) {
        size_t counted = (size_t)shared_usable(keys) * sizeof(PyObject *);

        size = size > counted ? size - counted : 0;
    }
    return size;
#elif PY_VERSION_HEX >= 0x030B0000
    struct ml_inline_values iv;
    size_t prefix, cap;

    if (!ml__inline_values(op, &iv))
        return 0;
    /* dictobject.c: new_values() allocates prefix + cap slots, where
     * prefix = round8(cap + 2) is stored in the byte before the first
     * value and cap was the keys' usable size at the time, which only
     * shrinks afterwards: so cap is the larger of today's usable size
     * and the least cap that prefix allows. */
    prefix = ((uint8_t *)iv.values)[-1];
    cap = (size_t)shared_usable(iv.keys);
    if (prefix >= 9 && cap < prefix - 9)
        cap = prefix - 9;
    return prefix + cap * sizeof(PyObject *);
#else
    (void)op;
    return 0;
#endif
}

/* ------------------------------------------------------------------ */
/* Other sizes.                                                        */

/* sysmodule.c: _PySys_GetSizeOf() adds the GC header (and from 3.11 the
 * managed dict/weakref pointers) to __sizeof__. */
size_t
ml__preheader_size(PyObject *op)
{
#if PY_VERSION_HEX >= 0x030D0000
    /* 3.13 counts no pre-header for static types (they have none). */
    if (Py_IS_TYPE(op, &PyType_Type)
            && !(((PyTypeObject *)op)->tp_flags & Py_TPFLAGS_HEAPTYPE))
        return 0;
    return _PyType_PreHeaderSize(Py_TYPE(op));
#elif PY_VERSION_HEX >= 0x030B0000
    /* By the type's flags: a static type object gets the GC header too. */
    return _PyType_PreHeaderSize(Py_TYPE(op));
#else
    return PyObject_IS_GC(op) ? sizeof(PyGC_Head) : 0;
#endif
}

/* typeobject.c: type___sizeof___impl() */
size_t
ml__type_sizeof(PyObject *op)
{
    PyTypeObject *tp = (PyTypeObject *)op;
    size_t size;

    if (!(tp->tp_flags & Py_TPFLAGS_HEAPTYPE))
        return sizeof(PyTypeObject);
    size = sizeof(PyHeapTypeObject);
    if (((PyHeapTypeObject *)tp)->ht_cached_keys != NULL) {
#if PY_VERSION_HEX >= 0x030B0000
        size += keys_size(((PyHeapTypeObject *)tp)->ht_cached_keys);
#else
        struct ml_dictkeys *k = (struct ml_dictkeys *)
            ((PyHeapTypeObject *)tp)->ht_cached_keys;
        size_t ksize = (size_t)k->dk_size;
        size_t ixsize = ksize <= 0xff ? 1 : ksize <= 0xffff ? 2
            : ksize <= 0xffffffffu ? 4 : sizeof(int64_t);

        size += sizeof(struct ml_dictkeys) + ixsize * ksize
            + sizeof(struct ml_dictentry) * ((ksize << 1) / 3);
#endif
    }
    return size;
}

/* codeobject.c: code_sizeof() */
size_t
ml__code_sizeof(PyObject *op)
{
    PyCodeObject *co = (PyCodeObject *)op;
    size_t res;
    /* codeobject.c: _PyCodeObjectExtra */
    struct ml_code_extra {
        Py_ssize_t ce_size;
        void *ce_extras[1];
    } *extra = co->co_extra;

#if PY_VERSION_HEX >= 0x030B0000
    res = _PyObject_VAR_SIZE(Py_TYPE(op), Py_SIZE(op));
#else
    res = sizeof(PyCodeObject);
    if (co->co_cell2arg != NULL && co->co_cellvars != NULL)
        res += (size_t)PyTuple_GET_SIZE(co->co_cellvars) * sizeof(Py_ssize_t);
    /* The opcode cache: one byte per instruction plus its entries
     * (_PyOpcache is 32 bytes on 64-bit builds). */
    if (co->co_opcache != NULL)
        res += (size_t)PyBytes_GET_SIZE(co->co_code) / sizeof(_Py_CODEUNIT)
            + (size_t)co->co_opcache_size * 4 * sizeof(void *);
#endif
    if (extra != NULL)
        res += sizeof(*extra)
            + (size_t)(extra->ce_size - 1) * sizeof(extra->ce_extras[0]);
    return res;
}

PyObject *
ml__module_name(PyObject *op)
{
    PyObject *dict = ((PyModuleObject *)op)->md_dict;
    Py_ssize_t pos = 0;
    PyObject *k, *v;

    /* module.__name__, as users see it, found by scanning rather than by a
     * lookup, which could call __eq__ of a hostile key.  It is normally
     * the first key (module_init_dict() puts it there). */
    if (dict == NULL || !PyDict_Check(dict))
        return NULL;
    while (PyDict_Next(dict, &pos, &k, &v)) {
        if (PyUnicode_CheckExact(k)
                && PyUnicode_CompareWithASCIIString(k, "__name__") == 0)
            return PyUnicode_Check(v) ? v : NULL;
    }
    return NULL;
}

/* longobject.c: int___sizeof___impl() */
size_t
ml__long_sizeof(PyObject *op)
{
#if PY_VERSION_HEX >= 0x030C0000
    size_t ndigits = ((PyLongObject *)op)->long_value.lv_tag >> _PyLong_NON_SIZE_BITS;

    /* Zero still has room for one digit. */
    return offsetof(PyLongObject, long_value.ob_digit)
        + (ndigits > 0 ? ndigits : 1) * sizeof(digit);
#else
    Py_ssize_t n = Py_SIZE(op);
    size_t res = offsetof(PyLongObject, ob_digit)
        + (size_t)(n < 0 ? -n : n) * sizeof(digit);
#  if PY_VERSION_HEX >= 0x030B0000
    /* 3.11 allocates zero with one digit too. */
    if (n == 0)
        res += sizeof(digit);
#  endif
    return res;
#endif
}

/* unicodeobject.c: unicode_sizeof_impl() */
size_t
ml__unicode_sizeof(PyObject *op)
{
    size_t size;

    if (PyUnicode_IS_COMPACT_ASCII(op)) {
        size = sizeof(PyASCIIObject) + (size_t)PyUnicode_GET_LENGTH(op) + 1;
    } else if (PyUnicode_IS_COMPACT(op)) {
        size = sizeof(PyCompactUnicodeObject)
            + (size_t)(PyUnicode_GET_LENGTH(op) + 1) * PyUnicode_KIND(op);
    } else {
        size = sizeof(PyUnicodeObject);
        if (((PyUnicodeObject *)op)->data.any != NULL)
            size += (size_t)(PyUnicode_GET_LENGTH(op) + 1) * PyUnicode_KIND(op);
    }
#if PY_VERSION_HEX < 0x030C0000
    {
        PyASCIIObject *a = (PyASCIIObject *)op;

        /* The wchar_t cache, unless it is the string's own data. */
        if (a->wstr != NULL && (!PyUnicode_IS_READY(op)
                || (void *)a->wstr != PyUnicode_DATA(op)))
            size += (size_t)(((PyCompactUnicodeObject *)op)->wstr_length + 1)
                * sizeof(wchar_t);
    }
#endif
    if (!PyUnicode_IS_COMPACT_ASCII(op)) {
        PyCompactUnicodeObject *c = (PyCompactUnicodeObject *)op;

        if (c->utf8 != NULL && c->utf8 != PyUnicode_DATA(op))
            size += (size_t)c->utf8_length + 1;
    }
    return size;
}

/* frameobject.c: frame_sizeof() */
size_t
ml__frame_sizeof(PyObject *op)
{
    PyFrameObject *f = (PyFrameObject *)op;
#if PY_VERSION_HEX >= 0x030E0000
    /* f_executable is a tagged _PyStackRef from 3.14 on. */
    PyCodeObject *code = _PyFrame_GetCode(f->f_frame);
#elif PY_VERSION_HEX >= 0x030D0000
    PyCodeObject *code = (PyCodeObject *)f->f_frame->f_executable;
#elif PY_VERSION_HEX >= 0x030B0000
    PyCodeObject *code = f->f_frame->f_code;
#else
    PyCodeObject *code = f->f_code;
#endif

#if PY_VERSION_HEX >= 0x030B0000
    return offsetof(PyFrameObject, _f_frame_data)
        + offsetof(_PyInterpreterFrame, localsplus)
        + (size_t)(code->co_nlocalsplus + code->co_stacksize) * sizeof(PyObject *);
#else
    /* From the code, not ob_size: a reused frame can be larger.  The first
     * slot of f_localsplus is inside the struct. */
    size_t extras = (size_t)(code->co_stacksize + code->co_nlocals
                             + PyTuple_GET_SIZE(code->co_cellvars)
                             + PyTuple_GET_SIZE(code->co_freevars));

    return sizeof(PyFrameObject) + (extras - 1) * sizeof(PyObject *);
#endif
}

/* genobject.c: gen_sizeof(), for generators, coroutines and async
 * generators; before 3.11 they use object.__sizeof__. */
size_t
ml__gen_sizeof(PyObject *op)
{
#if PY_VERSION_HEX >= 0x030B0000
    PyGenObject *gen = (PyGenObject *)op;
#  if PY_VERSION_HEX >= 0x030E0000
    /* The frame is a struct member from 3.14 on, no longer an array. */
    _PyInterpreterFrame *f = &gen->gi_iframe;
#  else
    _PyInterpreterFrame *f = (_PyInterpreterFrame *)gen->gi_iframe;
#  endif
#  if PY_VERSION_HEX >= 0x030E0000
    PyCodeObject *code = _PyFrame_GetCode(f);
#  elif PY_VERSION_HEX >= 0x030D0000
    PyCodeObject *code = (PyCodeObject *)f->f_executable;
#  else
    PyCodeObject *code = f->f_code;
#  endif
    return offsetof(PyGenObject, gi_iframe)
        + offsetof(_PyInterpreterFrame, localsplus)
        + (size_t)(code->co_nlocalsplus + code->co_stacksize) * sizeof(PyObject *);
#else
    return (size_t)Py_TYPE(op)->tp_basicsize;
#endif
}

/* The __dict__ of a static type: from 3.12 it lives in the interpreter's
 * state, not in tp_dict.  Borrowed. */
PyObject *
ml__static_type_dict(PyTypeObject *tp)
{
#if PY_VERSION_HEX >= 0x030C0000
    /* PyType_GetDict returns a new reference to a dict the interpreter
     * keeps alive: give the reference back at once. */
    PyObject *d = PyType_GetDict(tp);

    Py_XDECREF(d);
    return d;
#else
    return tp->tp_dict;
#endif
}

/* ------------------------------------------------------------------ */
/* Code objects: not GC objects, so no tp_traverse, on every version.  */

PyObject *
ml__code_name(PyObject *op)
{
    return ((PyCodeObject *)op)->co_name;
}

int
ml__code_visit(PyObject *op, visitproc visit, void *arg)
{
    PyCodeObject *co = (PyCodeObject *)op;

    Py_VISIT(co->co_consts);
    Py_VISIT(co->co_names);
    Py_VISIT(co->co_filename);
    Py_VISIT(co->co_name);
#if PY_VERSION_HEX >= 0x030B0000
    Py_VISIT(co->co_qualname);
    Py_VISIT(co->co_localsplusnames);
    Py_VISIT(co->co_localspluskinds);
    Py_VISIT(co->co_linetable);
    Py_VISIT(co->co_exceptiontable);
#  if PY_VERSION_HEX >= 0x030C0000
    if (co->_co_cached != NULL) {
        Py_VISIT(co->_co_cached->_co_code);
        Py_VISIT(co->_co_cached->_co_varnames);
        Py_VISIT(co->_co_cached->_co_cellvars);
        Py_VISIT(co->_co_cached->_co_freevars);
    }
#  else
    Py_VISIT(co->_co_code);
#  endif
#else
    Py_VISIT(co->co_code);
    Py_VISIT(co->co_varnames);
    Py_VISIT(co->co_freevars);
    Py_VISIT(co->co_cellvars);
#  if PY_VERSION_HEX >= 0x030A0000
    Py_VISIT(co->co_linetable);
#  else
    Py_VISIT(co->co_lnotab);
#  endif
#endif
    return 0;
}

/* ------------------------------------------------------------------ */
/* Thread stacks: every frame of every thread of this interpreter.     */

/* The code a frame runs, or NULL for the interpreter's own entry frames
 * (3.11+: shims, incomplete frames) that the walk leaves out. */
static PyCodeObject *
frame_code(const void *fp)
{
#if PY_VERSION_HEX >= 0x030B0000
    _PyInterpreterFrame *f = (_PyInterpreterFrame *)fp;

    if (_PyFrame_IsIncomplete(f))
        return NULL;
#  if PY_VERSION_HEX >= 0x030E0000
    {
        PyObject *ex = PyStackRef_AsPyObjectBorrow(f->f_executable);

        return ex != NULL && PyCode_Check(ex) ? (PyCodeObject *)ex : NULL;
    }
#  elif PY_VERSION_HEX >= 0x030D0000
    return f->f_executable != NULL && PyCode_Check(f->f_executable)
        ? (PyCodeObject *)f->f_executable : NULL;
#  else
    return f->f_code;
#  endif
#else
    return ((PyFrameObject *)fp)->f_code;
#endif
}

static int
frame_line(const void *fp)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyUnstable_InterpreterFrame_GetLine((_PyInterpreterFrame *)fp);
#elif PY_VERSION_HEX >= 0x030B0000
    _PyInterpreterFrame *f = (_PyInterpreterFrame *)fp;

    return PyCode_Addr2Line(f->f_code,
                            _PyInterpreterFrame_LASTI(f) * (int)sizeof(_Py_CODEUNIT));
#else
    return PyFrame_GetLineNumber((PyFrameObject *)fp);
#endif
}

/* The frame that called fp, or NULL. */
static const void *
frame_back(const void *fp)
{
#if PY_VERSION_HEX >= 0x030B0000
    return ((_PyInterpreterFrame *)fp)->previous;
#else
    return ((PyFrameObject *)fp)->f_back;
#endif
}

static const void *
thread_top_frame(PyThreadState *ts)
{
#if PY_VERSION_HEX >= 0x030D0000
    return ts->current_frame;
#elif PY_VERSION_HEX >= 0x030B0000
    return ts->cframe != NULL ? ts->cframe->current_frame : NULL;
#else
    return ts->frame;
#endif
}

int
ml__frames_foreach(ml_frame_fn fn, void *arg)
{
    PyInterpreterState *interp = PyInterpreterState_Get();
    PyThreadState *ts;
    int rc;

    for (ts = PyInterpreterState_ThreadHead(interp); ts != NULL;
         ts = PyThreadState_Next(ts)) {
        int depth = 0;

        for (const void *fp = thread_top_frame(ts); fp != NULL;
             fp = frame_back(fp)) {
            struct ml_frame fr;

            if ((fr.code = (PyObject *)frame_code(fp)) == NULL)
                continue;
            fr.frame = fp;
            fr.thread_id = (unsigned long)ts->thread_id;
            fr.line = frame_line(fp);
            fr.depth = depth++;
            if ((rc = fn(&fr, arg)) != 0)
                return rc;
        }
    }
    return 0;
}

/* The name of local i of code co (co_localsplusnames; before 3.11
 * co_varnames, then co_cellvars, then co_freevars, as f_localsplus is
 * laid out), and the count of locals. */
static Py_ssize_t
code_nlocals(PyCodeObject *co)
{
#if PY_VERSION_HEX >= 0x030B0000
    return co->co_nlocalsplus;
#else
    return co->co_nlocals + PyTuple_GET_SIZE(co->co_cellvars)
        + PyTuple_GET_SIZE(co->co_freevars);
#endif
}

static PyObject *
code_local_name(PyCodeObject *co, Py_ssize_t i)
{
#if PY_VERSION_HEX >= 0x030B0000
    return PyTuple_GET_ITEM(co->co_localsplusnames, i);
#else
    Py_ssize_t nc = PyTuple_GET_SIZE(co->co_cellvars);

    if (i < co->co_nlocals)
        return PyTuple_GET_ITEM(co->co_varnames, i);
    i -= co->co_nlocals;
    if (i < nc)
        return PyTuple_GET_ITEM(co->co_cellvars, i);
    return PyTuple_GET_ITEM(co->co_freevars, i - nc);
#endif
}

int
ml__frame_locals(const struct ml_frame *fr, ml_local_fn fn, void *arg)
{
    PyCodeObject *co = (PyCodeObject *)fr->code;
    Py_ssize_t n = code_nlocals(co);
    int rc;

    for (Py_ssize_t i = 0; i < n; i++) {
#if PY_VERSION_HEX >= 0x030E0000
        _PyStackRef ref = ((_PyInterpreterFrame *)fr->frame)->localsplus[i];
        PyObject *v;

        /* a tagged int is no object (3.14's loops keep their index so) */
        if (PyStackRef_IsNull(ref) || PyStackRef_IsTaggedInt(ref))
            continue;
        v = PyStackRef_AsPyObjectBorrow(ref);
#elif PY_VERSION_HEX >= 0x030B0000
        PyObject *v = ((_PyInterpreterFrame *)fr->frame)->localsplus[i];
#else
        PyObject *v = ((PyFrameObject *)fr->frame)->f_localsplus[i];
#endif
        if (v == NULL)
            continue;
        if ((rc = fn(code_local_name(co, i), v, arg)) != 0)
            return rc;
    }
    return 0;
}

PyObject *
ml__code_qualname(PyObject *op)
{
#if PY_VERSION_HEX >= 0x030B0000
    return ((PyCodeObject *)op)->co_qualname;
#else
    return ((PyCodeObject *)op)->co_name;
#endif
}

PyObject *
ml__code_filename(PyObject *op)
{
    return ((PyCodeObject *)op)->co_filename;
}

/* The frame of a generator, coroutine or async generator that has not
 * finished (created, suspended or running), as a frame of no thread:
 * 1 and fr filled, or 0. */
int
ml__gen_frame(PyObject *op, struct ml_frame *fr)
{
    PyGenObject *gen = (PyGenObject *)op;
    const void *fp;

#if PY_VERSION_HEX >= 0x030B0000
#  ifdef FRAME_STATE_FINISHED
    if (FRAME_STATE_FINISHED(gen->gi_frame_state))
        return 0;
#  else
    if (gen->gi_frame_state >= FRAME_COMPLETED)
        return 0;
#  endif
#  if PY_VERSION_HEX >= 0x030E0000
    fp = &gen->gi_iframe;
#  else
    fp = gen->gi_iframe;
#  endif
    {
        PyCodeObject *co;
#  if PY_VERSION_HEX >= 0x030E0000
        PyObject *ex = PyStackRef_AsPyObjectBorrow(((_PyInterpreterFrame *)fp)->f_executable);

        co = ex != NULL && PyCode_Check(ex) ? (PyCodeObject *)ex : NULL;
#  elif PY_VERSION_HEX >= 0x030D0000
        PyObject *ex = ((_PyInterpreterFrame *)fp)->f_executable;

        co = ex != NULL && PyCode_Check(ex) ? (PyCodeObject *)ex : NULL;
#  else
        co = ((_PyInterpreterFrame *)fp)->f_code;
#  endif
        if (co == NULL)
            return 0;
        fr->code = (PyObject *)co;
    }
#else
    if ((fp = gen->gi_frame) == NULL)
        return 0;
    fr->code = (PyObject *)((PyFrameObject *)fp)->f_code;
#endif
    fr->frame = fp;
    fr->thread_id = 0;
    fr->depth = 0;
    fr->line = frame_line(fp);
    return 1;
}

/* ------------------------------------------------------------------ */
/* tracemalloc's tables, 3.12+ (cpython.h, "tracemalloc's own tables"). */

#if PY_VERSION_HEX >= 0x030C0000
/* Python/tracemalloc.c: trace_t, private to that file (the same from 3.4
 * to 3.15): the value of the traces table, keyed by the block's address.
 * A different layout would show in ml__tm_open's caller's check against
 * _PyTraceMalloc_GetTraceback (traces.c). */
struct ml_tm_trace {
    size_t size;
    struct tracemalloc_traceback *traceback;
};

/* What the copy of the frames relies on: nframe frames of (filename,
 * lineno) right after the header, as the headers of 3.12-3.15 say. */
_Static_assert(sizeof(((struct tracemalloc_frame *)0)->lineno)
               == sizeof(unsigned int), "tracemalloc_frame.lineno");
_Static_assert(sizeof(((struct tracemalloc_traceback *)0)->nframe)
               == sizeof(uint16_t), "tracemalloc_traceback.nframe");
#endif

int
ml__tm_open(int limit)
{
#if PY_VERSION_HEX >= 0x030C0000
    struct _tracemalloc_runtime_state *tm = &_PyRuntime.tracemalloc;
    _Py_hashtable_t *ht;

    /* The module only loads into the minor version it was built for, but
     * _PyRuntimeState can differ between builds of it: the core may be
     * built with defines an extension does not see (Debian's 3.15 adds
     * -D_Py_JIT -D_Py_TIER2, which grow the main interpreter's state at
     * the end of _PyRuntimeState by 8 bytes).  What must match is the
     * part up to tracemalloc: the runtime's pointer to its own embedded
     * main interpreter, which follows it, gives the size of that part. */
    if ((Py_Version >> 16) != (PY_VERSION_HEX >> 16)
        || (uintptr_t)_PyRuntime.interpreters.main - (uintptr_t)&_PyRuntime
           != offsetof(_PyRuntimeState, _main_interpreter))
        return 0;
#  if PY_VERSION_HEX >= 0x030D0000
    /* 3.13+: the runtime's record of its first fields, for debuggers. */
    if (memcmp(_PyRuntime.debug_offsets.cookie, _Py_Debug_Cookie,
               sizeof(_PyRuntime.debug_offsets.cookie)) != 0
        || (_PyRuntime.debug_offsets.version >> 16) != (PY_VERSION_HEX >> 16)
        || _PyRuntime.debug_offsets.runtime_state.finalizing
           != offsetof(_PyRuntimeState, _finalizing)
        || _PyRuntime.debug_offsets.runtime_state.interpreters_head
           != offsetof(_PyRuntimeState, interpreters.head))
        return 0;
#  endif
    /* The config the _tracemalloc module reported, here too: the state
     * sits where this module's headers put it. */
    if (tm->config.initialized != TRACEMALLOC_INITIALIZED
        || tm->config.tracing != 1 || tm->config.max_nframe != limit)
        return 0;
#  if PY_VERSION_HEX < 0x030E0000
    if (tm->tables_lock == NULL)
        return 0;
#  endif
    /* tracemalloc_create_traces_table(): keyed by address */
    ht = tm->traces;
    if (ht == NULL || ht->hash_func != _Py_hashtable_hash_ptr
        || ht->compare_func != _Py_hashtable_compare_direct
        || ht->get_entry_func == NULL)
        return 0;
    return 1;
#else
    (void)limit;
    return 0;
#endif
}

/* Python/tracemalloc.c: TABLES_LOCK() and TABLES_UNLOCK().  3.12 and 3.13
 * look the trace up under this lock and read the interned traceback under
 * the GIL only (both held here); 3.14+ read both under the lock. */
void
ml__tm_lock(void)
{
#if PY_VERSION_HEX >= 0x030E0000
    PyMutex_LockFlags(&_PyRuntime.tracemalloc.tables_lock,
                      _Py_LOCK_DONT_DETACH);
#elif PY_VERSION_HEX >= 0x030C0000
    PyThread_acquire_lock(_PyRuntime.tracemalloc.tables_lock, 1);
#endif
}

void
ml__tm_unlock(void)
{
#if PY_VERSION_HEX >= 0x030E0000
    PyMutex_Unlock(&_PyRuntime.tracemalloc.tables_lock);
#elif PY_VERSION_HEX >= 0x030C0000
    PyThread_release_lock(_PyRuntime.tracemalloc.tables_lock);
#endif
}

/* tracemalloc_get_traceback_unlocked(DEFAULT_DOMAIN, ptr) */
const void *
ml__tm_find(uintptr_t ptr)
{
#if PY_VERSION_HEX >= 0x030C0000
    const struct ml_tm_trace *trace =
        _Py_hashtable_get(_PyRuntime.tracemalloc.traces, (const void *)ptr);

    return trace != NULL ? trace->traceback : NULL;
#else
    (void)ptr;
    return NULL;
#endif
}

/* traceback_to_pyobject(), without the objects */
int
ml__tm_frames(const void *tbp, int i, struct ml_tm_frame *fr)
{
#if PY_VERSION_HEX >= 0x030C0000
    const struct tracemalloc_traceback *tb = tbp;

    /* fields read one by one: the structures are packed */
    if (i >= 0 && i < tb->nframe) {
#  if PY_VERSION_HEX >= 0x030F0000
        fr->filename = NULL;
        fr->filename_utf8 = tb->frames[i].filename;
#  else
        fr->filename = tb->frames[i].filename;
        fr->filename_utf8 = NULL;
#  endif
        fr->lineno = tb->frames[i].lineno;
    }
    return tb->nframe;
#else
    (void)tbp;
    (void)i;
    (void)fr;
    return 0;
#endif
}
