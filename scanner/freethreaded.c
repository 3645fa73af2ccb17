/* SPDX-License-Identifier: MIT
 *
 * freethreaded.c -- meliae._scanner and meliae._loader on a free-threaded
 * CPython (3.13t, 3.14t: Py_GIL_DISABLED).
 *
 * The heap walk reads objects, dicts and the collector's lists directly and
 * relies on the GIL to keep every other thread from changing them while it
 * does.  Without a GIL that is a use-after-free, and the collector's lists
 * are replaced by mimalloc's heaps, which the walk does not know.  So on
 * such a build both modules are built from this file alone: importing
 * them raises ImportError with the reason, rather than crashing or writing
 * a wrong dump.  ML_MODULE is the module's short name (_scanner, _loader).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#ifndef ML_MODULE
#  error "ML_MODULE must name the module (_scanner or _loader)"
#endif

#define ML_CAT2(a, b) a##b
#define ML_CAT(a, b) ML_CAT2(a, b)
#define ML_STR2(a) #a
#define ML_STR(a) ML_STR2(a)

#define ML_FT_MESSAGE \
    "meliae." ML_STR(ML_MODULE) ": free-threaded CPython builds " \
    "(Py_GIL_DISABLED, e.g. python3.14t) are not supported yet: the heap " \
    "walk reads objects and the collector's lists directly and needs the " \
    "GIL to keep other threads from changing them while it does (a " \
    "stop-the-world walk of the mimalloc heaps would be needed); use the " \
    "default build of CPython"

PyMODINIT_FUNC ML_CAT(PyInit_, ML_MODULE)(void);

PyMODINIT_FUNC
ML_CAT(PyInit_, ML_MODULE)(void)
{
    PyErr_SetString(PyExc_ImportError, ML_FT_MESSAGE);
    return NULL;
}
