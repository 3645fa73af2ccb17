/* SPDX-License-Identifier: MIT
 *
 * hugemem.h -- asks for transparent huge pages on a big array that is
 * read at random (ml_graph_finish's address index and refs).
 *
 * Why: finish's ref lookups touch the index at random, and with 4 KiB
 * pages nearly every access is also a TLB miss (80 MB of keys at 1e7
 * objects is 20 000 pages).  With THP in "madvise" mode (a common
 * default) nothing is huge unless asked.  Only the 2 MiB-aligned ranges
 * inside the block are advised, and the kernel backs a range with a huge
 * page only when all of it lies in the mapping, so no page is made
 * resident that the array does not use.  Advice only: failures are
 * ignored.
 */
#ifndef ML_HUGEMEM_H
#define ML_HUGEMEM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

#define ML_HUGEMEM_PAGE ((uintptr_t)2 << 20)
/* Below this a block is in the heap or too small to gain. */
#define ML_HUGEMEM_MIN ((size_t)8 << 20)

static inline void
ml_hugemem_advise(void *p, size_t bytes)
{
#ifdef MADV_HUGEPAGE
    uintptr_t a, e;

    if (p == NULL || bytes < ML_HUGEMEM_MIN)
        return;
    a = ((uintptr_t)p + ML_HUGEMEM_PAGE - 1) & ~(ML_HUGEMEM_PAGE - 1);
    e = ((uintptr_t)p + bytes) & ~(ML_HUGEMEM_PAGE - 1);
    if (e > a)
        (void)madvise((void *)a, e - a, MADV_HUGEPAGE);
#else
    (void)p;
    (void)bytes;
#endif
}

#endif
