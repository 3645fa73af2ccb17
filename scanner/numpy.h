/* SPDX-License-Identifier: MIT
 *
 * numpy.h -- numpy.ndarray's referents and len, read from its struct
 * without importing numpy (numpy.c).
 */
#ifndef ML_NUMPY_H
#define ML_NUMPY_H

#include "pyinc.h"

/* 1 if tp is numpy.ndarray or a subclass of it. */
int ml__is_ndarray_type(PyTypeObject *tp);

/* Visits the array's base (what a view keeps alive), its dtype, and, for
 * object and structured dtypes, every object its elements hold, in C
 * order.  Returns the first non-zero value of visit, else 0. */
int ml__ndarray_visit(PyObject *op, visitproc visit, void *arg);

/* len(a): its first dimension; -1 for a 0-d array. */
Py_ssize_t ml__ndarray_len(PyObject *op);

/* Forgets what was learned of the running numpy (its ABI version); called
 * at every public entry point, with ml__kind_reset(). */
void ml__numpy_reset(void);

#endif /* ML_NUMPY_H */
