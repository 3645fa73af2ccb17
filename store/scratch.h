/* SPDX-License-Identifier: MIT
 *
 * scratch.h -- the queries' arrays of a snapshot's size (a slot per
 * object), in a sparse temporary file mapped shared: their pages belong
 * to the page cache, not to the daemon's anonymous memory, which then
 * does not grow with the snapshots it answers for (docs/architecture.md),
 * and only the pages a query touches exist.  Where no temporary file can
 * be made, plain calloc.
 */
#ifndef ML_STORE_SCRATCH_H
#define ML_STORE_SCRATCH_H

#include <stddef.h>

/* len zeroed bytes, 64-byte aligned, or NULL (out of memory, or of
 * address space). */
void *st_scratch(size_t len);

/* Frees what st_scratch returned (NULL: nothing). */
void st_scratch_free(void *p);

#endif /* ML_STORE_SCRATCH_H */
