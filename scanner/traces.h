/* SPDX-License-Identifier: MIT
 *
 * traces.h -- birth sites: each object's allocation traceback, as
 * tracemalloc recorded it, for the walk to write (docs/dump-format.md,
 * "Birth sites").
 *
 * How, on every CPython 3.9-3.15 alike: a collecting pass notes
 * every object it will write (an array of addresses, no Python object);
 * then, with no walk in progress, ml__traces_lookup finds each one's
 * traceback (traces.c: from tracemalloc's own tables on 3.12+, one
 * tuple per object from _PyTraceMalloc_GetTraceback before), interns the
 * distinct tracebacks and fills a table address -> traceback id; a
 * resolver (Python code, meliae._births) names the function of each
 * frame.  The real pass then only looks addresses up: it creates nothing
 * per object.
 */
#ifndef ML_TRACES_H
#define ML_TRACES_H

#include "pyinc.h"

#include "jsonw.h"

struct ml_traces {
    uintptr_t *objs;            /* the collecting pass's objects */
    size_t nobjs, capobjs;
    uint64_t *keys;             /* open addressing: address + 1, 0 empty */
    uint32_t *vals;             /* traceback id */
    size_t mask;
    PyObject *tracebacks;       /* list: id -> tuple of (file, line) */
    PyObject *functions;        /* list: id -> list of str or None */
    const char *path;           /* how ml__traces_lookup found them:
                                 * "pointer" or "tuple" (traces.c) */
};

/* Non-zero: ml__traces_lookup takes the tuple path on every version (the
 * tests compare both paths on one heap). */
extern int ml__traces_tuple_only;

/* Non-zero: the pointer path's check against CPython's answers fails at
 * the first traced object, as it would on a layout cpython.c does not
 * know (the tests see the fallback to the tuple path work). */
extern int ml__traces_fake_mismatch;

/* The path of the last successful ml__traces_lookup, or NULL. */
extern const char *ml__traces_last_path;

/* The table whole-heap walks write, prepared by _scanner.prepare_traces
 * (ml__walk_traces) before the walk, or NULL.  A forked child inherits
 * it: the parent pays for the lookup, the child only reads the table. */
extern struct ml_traces *ml__traces_ready;

/* The collecting pass: notes op.  0 or -ENOMEM. */
int ml__traces_note(struct ml_traces *t, PyObject *op);

/* Between the passes: looks every noted object's traceback up and names
 * the frames.  No walk may be in progress (this creates Python objects);
 * the noted objects must still be alive (nothing ran since the pass).
 * 0, -ENOMEM, or ML_EPYTHON with an exception set. */
int ml__traces_lookup(struct ml_traces *t, PyObject *resolver);

/* The traceback id of op, or -1 when tracemalloc has none for it. */
static inline int64_t
ml__traces_find(const struct ml_traces *t, PyObject *op)
{
    uint64_t key = (uint64_t)(uintptr_t)op + 1;

    if (t->keys == NULL)
        return -1;
    for (size_t i = ((uintptr_t)op >> 4) & t->mask; t->keys[i] != 0;
         i = (i + 1) & t->mask)
        if (t->keys[i] == key)
            return t->vals[i];
    return -1;
}

/* Writes the table lines ({"traceback": K, "frames": [...]}), one per
 * distinct traceback.  Returns w->err. */
int ml__traces_write_table(const struct ml_traces *t, struct ml_jsonw *w);

void ml__traces_free(struct ml_traces *t);

#endif /* ML_TRACES_H */
