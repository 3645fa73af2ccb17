/* SPDX-License-Identifier: MIT
 *
 * accum.h -- the accumulation points of the new objects of a snapshot
 * against an earlier one: for each new object, the first old object
 * reached walking up from it through new holders, i.e. where the new
 * structure hangs off what existed before, and how many hops below it the
 * object is.  A module's list that gained new Nodes, each holding a new
 * Block holding a new bytes, is the accumulation point of all three (at
 * 1, 2 and 3 hops).  One implementation for whoever has the two graphs:
 * the store's diff (store/report_diff.c) and the loader's
 * (common/graph_diff.c, ObjManager.diff).
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

/* ---- the rule of "new" (docs/cli-json.md, diff) ----
 *
 * An object of b is old when a has one at its address with its type (its
 * size may differ: a list that grew is the list that was there), unless
 * only new objects refer to it: then it is a new one where an old one was
 * freed (a new instance's __dict__ at a reused address).  The caller
 * marks each object OLD or NEW (or PASS: new but not counted) by address
 * and type, then gives each object's referrers to ml_accum_referrers,
 * then calls ml_accum_settle; the side is then ready for ml_accum_search
 * (isnew = state, referred, edge, anchor, depth). */
enum {
    ML_ACCUM_OLD = 0,
    ML_ACCUM_NEW = 1,
    ML_ACCUM_PASS = 2,          /* new, walked through, not counted */
    ML_ACCUM_REUSED = 3,        /* until ml_accum_settle */
};

struct ml_accum_side {
    size_t n;
    uint8_t *state;             /* n: ML_ACCUM_* (nonzero: new) */
    uint8_t *referred;          /* n, zeroed: set if anything refers */
    uint32_t *anchor;           /* n, ML_ACCUM_NONE: first old referrer */
    uint32_t *depth;            /* n, zeroed */
    uint32_t (*edge)[2];        /* (parent, child), both new; malloc'd */
    size_t nedge, edgecap;
};

/* Object child of s and its referrers par[n] (each once; indexes >= s->n
 * are ignored).  0 or -ENOMEM. */
int ml_accum_referrers(struct ml_accum_side *s, uint32_t child,
                       const uint32_t *par, size_t n);

/* After every object's referrers: a new object anchored at a REUSED one
 * hangs off it instead (an edge), and each REUSED object becomes NEW,
 * reused(ctx, i) told first (the caller counts it, and forgets a's object
 * at its address).  0, -ENOMEM, or reused()'s error. */
int ml_accum_settle(struct ml_accum_side *s,
                    int (*reused)(void *ctx, uint32_t i), void *ctx);

/* One (accumulation point, type) of the new objects: the grouping's row.
 * The caller makes one per counted new object (count 1, bytes its size,
 * depth its hops, example its index); ml_accum_group sums them. */
struct ml_accum_row {
    uint32_t anchor, type, depth, example;
    uint64_t count, bytes;
};

/* The rows of one accumulation point. */
struct ml_accum_group {
    uint32_t anchor;            /* ML_ACCUM_NONE: only new cycles reach */
    size_t first, n;            /* its rows, biggest bytes first */
    uint64_t count, bytes;
    uint32_t depth;             /* its deepest row */
};

/* Groups rows[*nr] (one per object, as above) in place into one row per
 * (anchor, type): count and bytes summed, depth the fewest hops, example
 * the lowest index; then one group per anchor, its rows biggest first,
 * and the groups biggest first (*groups malloc'd, *ngroups of them).  The
 * one answer of "what accumulated where" for the store and the loader.
 * *nr becomes the number of rows left.  0, or -ENOMEM (*groups NULL). */
int ml_accum_group(struct ml_accum_row *rows, size_t *nr,
                   struct ml_accum_group **groups, size_t *ngroups);

#endif /* ML_ACCUM_H */
