/* SPDX-License-Identifier: MIT
 *
 * walk.h -- the heap walks behind dump_all_objects, dump_gc_objects,
 * dump_all_referenced and get_recursive_size.
 *
 * Each walk writes one line per object (docs/dump-format.md) through a
 * jsonw writer, or only counts.  The GIL is held throughout; the walk runs
 * no Python code (except special-size callables the user registered),
 * creates no Python object and does not recurse without bound.
 */
#ifndef ML_WALK_H
#define ML_WALK_H

#include "pyinc.h"

#include "jsonw.h"

enum ml_walk_mode {
    ML_WALK_ALL,        /* every GC object and what they reach, once each */
    ML_WALK_GC,         /* GC objects + their direct untracked referents */
    ML_WALK_CLOSURE,    /* everything reachable from one object, once */
    ML_WALK_PENDING,    /* the closure of a list's items, without the list */
};

/* What object lines say of values (docs/protocol.md, header key
 * "values"): file dumps always use ML_VALUES_TRUNCATED. */
enum ml_values {
    ML_VALUES_NONE,         /* no "value" key on any line */
    ML_VALUES_TRUNCATED,    /* str and bytes cut to 100 characters */
    ML_VALUES_FULL,         /* str and bytes uncut */
};

/* A size registered with add_special_size for objects whose type's
 * tp_name equals name: a fixed size, or callable(obj) -> int. */
struct ml_special {
    char *name;
    Py_ssize_t size;            /* used when callable == NULL */
    PyObject *callable;
};

struct ml_walk_result {
    uint64_t nobj;
    uint64_t nbytes;
};

/* Runs a walk.  w == NULL only counts (get_recursive_size).  root is the
 * start object for ML_WALK_CLOSURE, a list of them for ML_WALK_PENDING; values says which "value" keys the
 * lines get.  res->nbytes is the sum of the "size" of the lines written.  Returns 0, a negative errno from the
 * writer, -ENOMEM, or ML_EPYTHON with a Python exception set (a special
 * size callable failed). */
int ml__walk(enum ml_walk_mode mode, PyObject *root, struct ml_jsonw *w,
             enum ml_values values, const struct ml_special *specials,
             size_t nspecials, struct ml_walk_result *res);

struct ml_traces;

/* Birth sites (traces.h): a collecting pass over the whole heap, then
 * every object's tracemalloc traceback looked up into t and its frames
 * named by resolver(tracebacks, code_objects).  Creates Python objects
 * (never inside a walk).  0, -ENOMEM or ML_EPYTHON (exception set).
 * While ml__traces_ready points to such a t, ML_WALK_ALL dumps write
 * its table and each object's "trace". */
int ml__walk_traces(struct ml_traces *t, PyObject *resolver);

/* The size the dump records for op, special sizes included (a callable
 * that returns -1 means the usual size).  Returns -1 with a Python
 * exception set if a special-size callable failed. */
Py_ssize_t ml__object_size(PyObject *op, const struct ml_special *specials,
                           size_t nspecials);

#endif /* ML_WALK_H */
