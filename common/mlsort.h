/* SPDX-License-Identifier: MIT
 *
 * mlsort.h -- qsort for tables that may be empty.  qsort's base must not
 * be NULL even for no elements (C11 7.22.5; UBSan: "declared to never be
 * null"), and a table that was never grown is NULL: a table of fewer
 * than two rows is left as it is.
 */
#ifndef ML_SORT_H
#define ML_SORT_H

#include <stddef.h>
#include <stdlib.h>

static inline void
ml_sort(void *base, size_t n, size_t size,
        int (*cmp)(const void *, const void *))
{
    if (n > 1)
        qsort(base, n, size, cmp);
}

#endif /* ML_SORT_H */
