/* SPDX-License-Identifier: MIT
 *
 * hidden.h -- bytes that compression objects (zlib, bz2, lzma) hold
 * outside their Python object, read from the libraries' own state
 * (hidden.c; the table is in docs/dump-format.md).
 */
#ifndef ML_HIDDEN_H
#define ML_HIDDEN_H

#include "pyinc.h"

/* Returns the bytes op holds beside its object, or 0 when that cannot be
 * told safely. */
typedef size_t (*ml_hidden_fn)(PyObject *op);

/* The rule for instances of tp, or NULL. */
ml_hidden_fn ml__hidden_rule(PyTypeObject *tp);

/* Forgets what was learned of the zlib in use; with ml__kind_reset(). */
void ml__hidden_reset(void);

#endif /* ML_HIDDEN_H */
