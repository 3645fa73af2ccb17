/* SPDX-License-Identifier: MIT
 *
 * accum.h -- the accumulation points of the new objects of a snapshot
 * against an earlier one: for each new object, the first old object
 * reached walking up from it through new holders, i.e. where the new
 * structure hangs off what existed before, and how many hops below it the
 * object is.  A module's list that gained new Nodes, each holding a new
 * Block holding a new bytes, is the accumulation point of all three (at
 * 1, 2 and 3 hops).  One implementation for whoever has the two graphs:
 * the store's diff (store/report_diff.c) today, the loader's tomorrow.
 *
 * Algorithm: a breadth-first search down the edges among new objects
 * (given as (parent, child) pairs, sorted here by a counting sort into
 * CSR), from every new object that an old one refers to (depth 1, its
 * anchor given by the caller: its first old referrer), so each new object
 * gets its nearest old ancestor.  Then from the new objects nothing refers
 * to (a module imported since, a thread's new frame), each the anchor of
 * what hangs off it (itself at depth 0); a new root with nothing new
 * below it, and what only new cycles reach, get ML_ACCUM_NONE.  Two
 * uint32 arrays of n + 2 and one of nedge while it runs; no recursion.
 */
#ifndef ML_ACCUM_H
#define ML_ACCUM_H

#include <stddef.h>
#include <stdint.h>

#define ML_ACCUM_NONE UINT32_MAX

struct ml_accum {
    size_t n;                   /* objects; < UINT32_MAX - 2 */
    const uint8_t *isnew;       /* n: nonzero if new */
    const uint8_t *referred;    /* n: nonzero if anything refers to it */
    const uint32_t (*edge)[2];  /* nedge (parent, child), both new, < n */
    size_t nedge;               /* < UINT32_MAX */
    /* n.  In: for each new object, its first old referrer (it hangs off
     * that one, 1 hop below), else ML_ACCUM_NONE; ignored for old ones.
     * Out: each new object's accumulation point, or ML_ACCUM_NONE; old
     * objects get ML_ACCUM_NONE. */
    uint32_t *anchor;
    uint32_t *depth;            /* n, out: hops below the anchor */
    /* Optional: where the search's own arrays (three of n + 2 uint32, one
     * of nedge) come from, zeroed, and go back to; NULL: calloc, free.
     * The store passes its sparse temporary files (store/scratch.h), so
     * that a diff of 80M objects costs the daemon no memory of its size. */
    void *(*alloc)(size_t len);
    void (*release)(void *p);
};

/* Fills a->anchor and a->depth.  0, -ENOMEM, or -E2BIG (n or nedge too
 * big for uint32 indexes; nothing changed then). */
int ml_accum_search(struct ml_accum *a);

#endif /* ML_ACCUM_H */
