/* SPDX-License-Identifier: MIT
 *
 * objinfo.h -- what the dump says about one object: its kind, size and
 * referents.  Shared by the walk (walk.c) and the single-object functions
 * (size_of, get_referents).  Nothing here runs Python code, creates a
 * Python object or changes a reference count.
 */
#ifndef ML_OBJINFO_H
#define ML_OBJINFO_H

#include "pyinc.h"

/* Builtin layouts the scanner treats specially.  Subclasses map to their
 * builtin base's kind. */
enum ml_kind {
    ML_K_OTHER = 0,
    ML_K_INT, ML_K_BOOL, ML_K_FLOAT, ML_K_NONE,
    ML_K_STR, ML_K_BYTES, ML_K_BYTEARRAY,
    ML_K_TUPLE, ML_K_LIST, ML_K_DICT, ML_K_ODICT, ML_K_SET,
    ML_K_TYPE, ML_K_CODE, ML_K_MODULE, ML_K_FRAME, ML_K_GEN,
    ML_K_FUNCTION, ML_K_CFUNCTION,
    ML_K_DEQUE, ML_K_ARRAY,
    ML_K_NDARRAY,               /* numpy.ndarray: see numpy.h */
};

/* What the scanner knows of a type, cached per type; the cache must be
 * reset with ml__kind_reset() before each public entry point, since a
 * type's address can be reused once it is freed. */
struct ml_typeinfo {
    PyTypeObject *tp;
    enum ml_kind kind;
    /* The C __sizeof__ of an extension type whose size no rule here knows
     * (an io buffer, a ctypes StgDict...), or NULL. */
    PyCFunction csizeof;
    /* Bytes a compression object holds outside itself (hidden.h), or
     * NULL. */
    size_t (*hidden)(PyObject *);
    /* tp_name needs no JSON escaping (printable ASCII): written as is. */
    int name_plain;
    size_t name_len;
};

const struct ml_typeinfo *ml__typeinfo(PyTypeObject *tp);

/* The kind of tp's instances. */
enum ml_kind ml__kind(PyTypeObject *tp);
void ml__kind_reset(void);

/* What sys.getsizeof(op) returns for builtin layouts (without calling
 * __sizeof__), plus the documented additions (inline values arrays). */
size_t ml__size_of(PyObject *op, enum ml_kind kind);

/* len for sized builtins; -1 when the dump has no "len" for op. */
Py_ssize_t ml__len_of(PyObject *op, enum ml_kind kind);

/* Calls visit(ref, arg) for each referent the dump records for op, in
 * order: for dicts [key0, value0, ...] then anything else the object holds;
 * for instances with inline values [name0, value0, ..., type, ...]; for code
 * objects the fields of ml__code_visit.  With dedup set, referents already
 * given as a pair are not repeated (this uses the scratch set, so a visitor
 * must not call ml__visit_refs with dedup itself).  Returns the first
 * non-zero value visit returned, or a negative ml_err. */
int ml__visit_refs(PyObject *op, enum ml_kind kind, visitproc visit,
                   void *arg, int dedup);

/* Frees the scratch set used by dedup. */
void ml__refs_release(void);

#endif /* ML_OBJINFO_H */
