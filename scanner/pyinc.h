/* SPDX-License-Identifier: MIT
 *
 * pyinc.h -- the one way scanner files include Python.h.
 *
 * The scanner reads CPython's object layouts directly (that is how it sizes
 * objects and walks the collector's lists without running Python code), so
 * it supports exactly the versions whose layouts cpython.c knows.  Anything
 * else fails here, at build time, rather than mis-measuring at run time.
 */
#ifndef ML_PYINC_H
#define ML_PYINC_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#if PY_VERSION_HEX < 0x030B0000
#  include <frameobject.h>      /* PyFrameObject, PyFrame_Type */
#endif
#include <stddef.h>

#if PY_VERSION_HEX < 0x03090000 || PY_VERSION_HEX >= 0x03100000
#  error "meliae's scanner supports CPython 3.9 to 3.15; cpython.c must learn the object layouts of this version first"
#endif
#ifdef Py_GIL_DISABLED
/* meson builds freethreaded.c alone for such an interpreter. */
#  error "free-threaded CPython is not supported: the heap walk relies on the GIL to keep the heap still"
#endif
#if SIZEOF_VOID_P != 8 && SIZEOF_VOID_P != 4
#  error "unsupported pointer size"
#endif

#if PY_VERSION_HEX < 0x030A0000
/* 3.10 API used by the scanner, for 3.9. */
static inline PyObject *
Py_NewRef(PyObject *o)
{
    Py_INCREF(o);
    return o;
}
#endif

#endif /* ML_PYINC_H */
