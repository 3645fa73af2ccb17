/* SPDX-License-Identifier: MIT
 *
 * cpython.h -- what the scanner needs from CPython's private layouts.
 *
 * Everything that depends on a CPython version's internal structures is in
 * cpython.c behind these functions, so the rest of the scanner uses only
 * the public C API.  None of these functions runs Python code, creates a
 * Python object or touches a reference count.
 */
#ifndef ML_CPYTHON_H
#define ML_CPYTHON_H

#include "pyinc.h"

/* Calls fn(op, arg) for every object in the collector's lists (all
 * generations and the permanent one, i.e. gc.freeze()d objects) until fn
 * returns non-zero; returns that value or 0. */
typedef int (*ml_gc_fn)(PyObject *op, void *arg);
int ml__gc_foreach(ml_gc_fn fn, void *arg);

/* 1 if op is a GC object currently tracked by the collector.  Inline: the
 * walk asks for every referent.  The collector's header (PyGC_Head, two
 * words) sits just before the object, and _gc_next, its first word, is 0
 * exactly when the object is untracked (_PyObject_GC_IS_TRACKED) on every
 * supported version. */
static inline int
ml__gc_is_tracked(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);

    if (!(tp->tp_flags & Py_TPFLAGS_HAVE_GC))
        return 0;
    if (tp->tp_is_gc != NULL && !tp->tp_is_gc(op))
        return 0;
    return ((const uintptr_t *)op)[-2] != 0;
}

/* Turns automatic collection off and returns the previous state (1/0). */
int ml__gc_disable(void);
void ml__gc_restore(int enabled);

/* Attribute values stored in an array of the instance (3.11+).  Returns 1
 * and fills iv when op has live values there and no dict object: the
 * attributes are then the pairs (name i, value i).  Returns 2 on 3.13 when
 * a __dict__ was materialised over the embedded values: tp_traverse then
 * visits the values but not that dict, iv->dict (3.14 traverses the dict
 * itself: 0 there).  Else 0. */
struct ml_inline_values {
    PyObject **values;      /* values[i] may be NULL (attribute deleted) */
    Py_ssize_t n;           /* entries to look at */
    void *keys;             /* the type's shared keys: names */
    PyObject *dict;         /* with 2: the materialised dict */
};
int ml__inline_values(PyObject *op, struct ml_inline_values *iv);
PyObject *ml__inline_name(const struct ml_inline_values *iv, Py_ssize_t i);

/* Bytes held by op's values array that sys.getsizeof(op) leaves out. */
size_t ml__inline_values_size(PyObject *op);

/* The exact __sizeof__ of objects whose size depends on private layouts. */
size_t ml__dict_sizeof(PyObject *op);
size_t ml__type_sizeof(PyObject *op);
size_t ml__code_sizeof(PyObject *op);
size_t ml__long_sizeof(PyObject *op);
size_t ml__unicode_sizeof(PyObject *op);
size_t ml__frame_sizeof(PyObject *op);
size_t ml__gen_sizeof(PyObject *op);

/* What sys.getsizeof adds to __sizeof__: the GC header and the pre-header
 * of managed dict/weakref pointers. */
size_t ml__preheader_size(PyObject *op);

/* Referents that CPython keeps but does not expose through tp_traverse. */
int ml__code_visit(PyObject *op, visitproc visit, void *arg);
PyObject *ml__module_name(PyObject *op);     /* borrowed; NULL if none */
PyObject *ml__code_name(PyObject *op);       /* borrowed */
PyObject *ml__static_type_dict(PyTypeObject *tp);   /* borrowed; may be NULL */

/* A frame on a thread's stack (3.11+ an _PyInterpreterFrame, before a
 * PyFrameObject); the interpreter's own entry frames are skipped. */
struct ml_frame {
    const void *frame;
    PyObject *code;             /* borrowed */
    unsigned long thread_id;    /* threading.get_ident() of its thread */
    int line;
    int depth;                  /* 0 for the innermost frame of its thread */
};
typedef int (*ml_frame_fn)(const struct ml_frame *fr, void *arg);
/* Calls fn for every frame of every thread, innermost first; stops at
 * fn's first non-zero return, which it returns.  Allocates nothing and
 * runs no Python code. */
int ml__frames_foreach(ml_frame_fn fn, void *arg);

/* Calls fn(name, value) for the frame's locals that are set (arguments,
 * locals, cells, free variables), in co_localsplusnames order. */
typedef int (*ml_local_fn)(PyObject *name, PyObject *value, void *arg);
int ml__frame_locals(const struct ml_frame *fr, ml_local_fn fn, void *arg);

/* The frame of a generator, coroutine or async generator (ML_K_GEN) that
 * has not finished: 1 with fr filled (thread_id 0), else 0. */
int ml__gen_frame(PyObject *op, struct ml_frame *fr);

/* co_qualname (co_name before 3.11) and co_filename of a code object. */
PyObject *ml__code_qualname(PyObject *op);
PyObject *ml__code_filename(PyObject *op);

/* tracemalloc's own tables, read in place (3.12+, where they live in
 * _PyRuntime.tracemalloc; 3.9-3.11 keep them in statics of
 * Modules/_tracemalloc.c, out of reach).  traces.c finds an object's
 * traceback through these without building a tuple per object.
 *
 * ml__tm_open(limit): 1 when the tables can be read here: 3.12 to 3.15,
 * the layout this module was built for (runtime checks: the runtime's own
 * record of its size, tracemalloc's config against what the caller got
 * from the _tracemalloc module, the traces table's hash functions),
 * tracemalloc tracing with `limit` frames.  0 otherwise: the caller uses
 * _PyTraceMalloc_GetTraceback.
 *
 * ml__tm_lock / ml__tm_unlock: tracemalloc's TABLES_LOCK, taken as
 * CPython takes it (without releasing the GIL).  While it is held nothing
 * may allocate through Python's allocators: tracemalloc's hooks take the
 * same lock, which is not reentrant.
 *
 * ml__tm_find(ptr): under the lock, the interned traceback of the memory
 * block at ptr (domain 0), or NULL.  Interned: one pointer per distinct
 * (frames, total depth), valid until tracemalloc clears its traces (Python
 * code: tracemalloc.stop or clear_traces).
 *
 * ml__tm_frames(tb, i, fr): under the lock, the number of frames of tb,
 * and frame i (0: the allocating one) in *fr when i is below it. */
struct ml_tm_frame {
    PyObject *filename;         /* 3.12-3.14: tracemalloc's str, borrowed */
    const char *filename_utf8;  /* 3.15: its UTF-8 (surrogatepass), borrowed */
    unsigned int lineno;
};
int ml__tm_open(int limit);
void ml__tm_lock(void);
void ml__tm_unlock(void);
const void *ml__tm_find(uintptr_t ptr);
int ml__tm_frames(const void *tb, int i, struct ml_tm_frame *fr);

#endif /* ML_CPYTHON_H */
