/* SPDX-License-Identifier: MIT
 *
 * dominators.h -- the dominator tree and retained sizes of a dump graph,
 * off the app process: one implementation for the loader (meliae._loader
 * on common/graph.h) and the store (store/report_dominators.c).
 *
 * The graph is given as two CSR arrays over node ids 0..n-1 (successors:
 * the refs; predecessors: the referrers); entries >= n (dangling refs) are
 * skipped.  A virtual root (docs/retained.md) has as children:
 *   - every node nothing refers to (held by C code or the interpreter),
 *   - every node for which is_root() says so (modules),
 *   - then, so that every node gets a dominator, the lowest id of each
 *     source strongly connected component of what is still unreached
 *     (cycles held only from C), found with Kosaraju's two passes.
 * x dominates y when every path from the root to y goes through x; the
 * retained size of x is the sum of the sizes of the nodes it dominates, x
 * included.  The retained sizes of the root's children add up to the
 * total size.
 *
 * Algorithm: semi-NCA (Georgiadis; the variant LLVM uses) with path
 * compression by pointer reversal: near-linear, iterative (no recursion:
 * explicit stacks kept in arrays the later phases reuse), six uint32
 * arrays of n + 1, i.e. at most 24 bytes per node at the peak, allocated
 * as five blocks whatever n is (malloc'd, or in->alloc's: the store
 * maps files); 12 bytes per node stay (idom and retained).
 */
#ifndef ML_DOMINATORS_H
#define ML_DOMINATORS_H

#include <stddef.h>
#include <stdint.h>

/* In idom[]: the node's immediate dominator is the virtual root. */
#define ML_DOM_ROOT UINT32_MAX

struct ml_dom_input {
    size_t n;                           /* nodes; < UINT32_MAX - 2 */
    const uint32_t *succ_start, *succ;  /* CSR, n + 1 starts */
    const uint32_t *pred_start, *pred;  /* CSR, n + 1 starts */
    /* Optional (0: 1): the k-th referrer is pred[k * pred_stride].  The
     * store's commit reads them out of its edges (child << 32 | parent,
     * sorted by child) where they are, without a copy. */
    size_t pred_stride;
    const uint64_t *size;               /* n sizes */
    /* Optional (NULL): node v is a root even if something refers to it. */
    int (*is_root)(void *arg, uint32_t v);
    void *arg;
    /* Optional (has_root_type 0): so is every node of type root_type (the
     * modules), without a call per node. */
    int has_root_type;
    uint32_t root_type;
    /* Optional (NULL): node types, for the per-type totals. */
    const uint32_t *type;
    size_t ntypes;
    /* Optional (NULL: malloc and free): where the O(n) arrays live, the
     * work arrays and the idom and retained results alike.  The store's
     * commit maps files (store/retained.c): the daemon's memory must not
     * grow with the snapshot.  alloc returns uninitialised memory of
     * bytes, or NULL; release gets the same bytes back. */
    void *(*alloc)(void *arg, size_t bytes);
    void (*release)(void *arg, void *p, size_t bytes);
    void *alloc_arg;
};

struct ml_dom {
    size_t n;
    uint32_t *idom;             /* n: immediate dominator, or ML_DOM_ROOT */
    uint64_t *retained;         /* n: retained size */
    /* With in->type: per type, the retained sizes of its nodes that no
     * other node of the same type dominates (so nothing is counted twice
     * within a type), and how many such nodes. */
    uint64_t *type_retained;    /* ntypes */
    uint64_t *type_top;         /* ntypes */
    size_t ntypes;
    /* What the root's children were. */
    uint64_t nroots;            /* unreferred or is_root() nodes */
    uint64_t nleftover;         /* picked among unreached cycles */
    uint64_t total;             /* sum of sizes */
    /* How idom and retained were allocated (in->alloc's), for
     * ml_dom_free. */
    void (*release)(void *arg, void *p, size_t bytes);
    void *alloc_arg;
};

/* Computes out (zeroed or freed first by the caller: it is overwritten).
 * 0, -ENOMEM, or ML_ETOOBIG (n too large for 32-bit ids). */
int ml_dom_compute(struct ml_dom *out, const struct ml_dom_input *in);

void ml_dom_free(struct ml_dom *d);

/* The up to k nodes of largest retained size, largest first (ties: lower
 * id first), into top (room for k); returns how many.  O(n log k). */
size_t ml_dom_top(const struct ml_dom *d, uint32_t *top, size_t k);

#endif /* ML_DOMINATORS_H */
